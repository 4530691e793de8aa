/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Harness for driving the built lockwatch command end to end: repositories
 * of every backend, processes with captured output, and the checks a user
 * would make (exit status, messages, files left in locks/).
 *
 * A backend is a small table entry: how to make an empty repository (its
 * URL, and the folder on disk whose locks/ holds the lock files), and how
 * to make refreshes fail for a while.  Every case runs on a local
 * repository and on a dav: repository served by a real nginx (tests/helpers/nginx.c)
 * whose stall is SIGSTOP; CLITEST_WEBDAV cases run on dav: as WebDAV, on
 * Apache, nginx + dav-ext and rclone (tests/helpers/webdav.c).
 */
#pragma once

struct criterion_test_params;
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "lockwatch.h"

struct repo;

struct backend {
	const char *name;
	/* Makes an empty, initialised repository under R->tmp. */
	void (*setup)(struct repo *r);
	void (*teardown)(struct repo *r);
	/* Makes the refreshes of process PID fail (or hang) until repair. */
	void (*stall)(struct repo *r, pid_t pid);
	void (*repair)(struct repo *r, pid_t pid);
	int webdav; /* 1 + enum lwt_webdav_kind: a WebDAV server's */
};

struct lwt_nginx;
struct lwt_webdav;

struct repo {
	const struct backend *be;
	struct lwt_nginx *ng;  /* dav: the server */
	struct lwt_webdav *wd; /* or this one */
	char tmp[256];  /* the test's scratch folder */
	char url[512];
	char dir[512];  /* on disk: DIR/locks/ holds the lock files */
	long saved[2];  /* for the backend's stall */
};

/* One case's parameters: a backend (index in clitest_backends) and an engine. */
struct cli_param {
	int backend;
	enum lw_engine engine;
};

extern const struct backend clitest_backends[];
extern const size_t clitest_nbackends;

/* Every backend (local, dav: on nginx) on both engines, for
 * ParameterizedTestParameters; the WebDAV servers on both engines; both. */
struct cli_param *clitest_params(size_t *n);
struct cli_param *clitest_webdav_params(size_t *n);
struct cli_param *clitest_all_params(size_t *n);
/* The cleanup of cr_make_param_array for clitest_params. */
void clitest_params_free(struct criterion_test_params *crp);
/*
 * CLITEST - a test of SUITE run on every backend and engine, with a fresh
 * repository: the body sees R (struct repo *) and P (struct cli_param *).
 * Needs <criterion/parameterized.h>.  CLITEST_WEBDAV: the same on the
 * WebDAV servers.
 */
#define CLITEST(suite, name, timeout_s) CLITEST_ON(suite, name, timeout_s, clitest_params)
#define CLITEST_WEBDAV(suite, name, timeout_s)                                  \
	CLITEST_ON(suite, name, timeout_s, clitest_webdav_params)
#define CLITEST_ON(suite, name, timeout_s, params)                              \
	ParameterizedTestParameters(suite, name)                                \
	{                                                                       \
		size_t n;                                                       \
		struct cli_param *p = params(&n);                               \
		return cr_make_param_array(struct cli_param, p, n,             \
					   clitest_params_free);                \
	}                                                                       \
	static void name##_body(struct repo *r, const struct cli_param *p);     \
	ParameterizedTest(struct cli_param *p, suite, name, .timeout = timeout_s) \
	{                                                                       \
		struct repo r;                                                  \
		clitest_repo(&r, p);                                            \
		name##_body(&r, p);                                             \
		clitest_repo_free(&r);                                          \
	}                                                                       \
	static void name##_body(struct repo *r, const struct cli_param *p)

/* Makes the repository of P (and R->tmp); clitest_repo_free removes both. */
void clitest_repo(struct repo *r, const struct cli_param *p);
void clitest_repo_free(struct repo *r);

struct proc {
	pid_t pid;
	int status;           /* as a shell says it: 128+N for signal N */
	char out[300], err[300]; /* files with its stdout and stderr */
	int64_t started, ended; /* CLOCK_BOOTTIME, ns */
};

/*
 * clitest_start - run lockwatch with -r URL --engine ENGINE (when R is not
 * NULL) and ARGS (NULL-terminated), stdin from /dev/null, output to files
 * in TMP.  ENV (NULL-terminated "NAME=value" or "NAME" to unset, may be
 * NULL) changes its environment.
 */
void clitest_start(struct proc *p, const char *tmp, const struct repo *r,
		   const struct cli_param *prm, const char *const *env,
		   const char *const *args);
/* Waits for P to end, at most TIMEOUT_MS; a process still running is
 * killed and the test fails.  Returns P->status. */
int clitest_wait(struct proc *p, int timeout_ms);
/* clitest_start + clitest_wait. */
int clitest_run(struct proc *p, const char *tmp, const struct repo *r,
		const struct cli_param *prm, const char *const *args);

/* The whole file at PATH (NUL-terminated; "" when missing).  free() it. */
char *clitest_read(const char *path);
void clitest_write(const char *path, const void *data, size_t len);
/* Waits until PATH exists and is not empty, at most TIMEOUT_MS. */
bool clitest_wait_file(const char *path, int timeout_ms);
/* Waits until FILE holds NEEDLE, at most TIMEOUT_MS. */
bool clitest_wait_text(const char *path, const char *needle, int timeout_ms);
/* Number of entries in R's locks/ (lock files, temporary files, anything). */
int clitest_count_locks(const struct repo *r);
/* Name of the one file in R's locks/ into NAME; false if not exactly one. */
bool clitest_one_lock(const struct repo *r, char name[256]);
/* A job for lockwatch run, into BUF: it writes its pid (its process
 * group's id) to TMP/pid, then notes CLOCK_REALTIME in ns in TMP/ticks
 * every 10 ms: it shows when work went on. */
char *clitest_ticker(char *buf, size_t size, const char *tmp);
/* The ticker's process group, once it runs (waits at most 10 s). */
pid_t clitest_ticker_group(const char *tmp);
/* The ticker's last tick (ns since the epoch), 0 if none. */
long long clitest_last_tick(const char *tmp);
/* A job for lockwatch run, into BUF, that notes SIGTERM in TMP/marker and
 * then ends only once clitest_let_job_end(TMP) was called (10 s at most).
 * A test that stalled a local repository (no descriptor left to lockwatch)
 * repairs it in between: lockwatch exits once its job has ended, and
 * LeakSanitizer dies at exit without a descriptor for /proc/self/maps. */
char *clitest_held_job(char *buf, size_t size, const char *tmp);
void clitest_let_job_end(const char *tmp);

/* Number of lines of S. */
int clitest_lines(const char *s);

/* How soon after its deadline a lost lock's job gets SIGTERM, at most.
 * Measured: well under a millisecond on an idle machine (lockwatch(1));
 * the margin is for a loaded two-core machine running tests in parallel. */
#define CLITEST_LOSS_BOUND_MS 250
/* The latency P's lockwatch reported for a lost lock ("SIGTERM sent to
 * the job 312us after the deadline"), in ns; -1 if it said none. */
int64_t clitest_loss_latency(const struct proc *pr);

int64_t clitest_now(void);
void clitest_sleep_ms(int ms);

/* Paths under TMP: BUF = TMP/NAME. */
char *clitest_path(char *buf, size_t size, const char *tmp, const char *name);

/* True if S is one valid JSON value (RFC 8259) and nothing else. */
bool clitest_json_valid(const char *s);
