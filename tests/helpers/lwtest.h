/* SPDX-License-Identifier: BSD-2-Clause */
/* Test fixtures: a repository in a fresh directory, a loop on a given
 * engine, and ways to plant lock files of other holders. */
#pragma once

#include "test.h"
#include <criterion/parameterized.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "lockwatch.h"
#include "testing.h"
#include "runenv.h"

/* Where a test's repository lives.  nginx (tests/helpers/nginx.c) keeps the files
 * of dav: and rest: repositories in a directory on this machine, and so do
 * the WebDAV servers of tests/helpers/webdav.c: the tests
 * look at and plant lock files there for every backend alike.  etcd: lives
 * under a prefix of its own in the test binary's cluster (tests/helpers/etcd.c,
 * tests/helpers/etcd-shared.c), looked at through the gateway. */
enum lwt_backend {
	LWT_BE_LOCAL,
	LWT_BE_DAV,        /* dav: on a plain nginx: the JSON index */
	LWT_BE_REST,
	LWT_BE_APACHE,     /* dav: on WebDAV servers (tests/helpers/webdav.c) */
	LWT_BE_NGINX_DAV,
	LWT_BE_RCLONE,
	LWT_BE_ETCD,
};

struct lwt_param {
	enum lw_engine engine;
	enum lwt_backend backend;
};

/* Every test that touches the loop runs on both engines: LWT_ENGINE_TEST
 * on a local repository (tests of file operations), LWT_FILES_TEST on
 * local, rest: and dav: repositories, the latter on nginx's JSON index and
 * on Apache, nginx + dav-ext and rclone (what only lock files do: a refresh
 * writes a new one, record times age), LWT_MATRIX_TEST on those and etcd:.
 * LWT_FAULTS_TEST is local, dav: and rest: on tests/helpers/nginx.c's
 * nginx alone, whose faults (lwt_nginx_fault) a test can turn on.
 * The body sees P. */
struct criterion_test_params lwt_engine_params(void);
struct criterion_test_params lwt_faults_params(void);
struct criterion_test_params lwt_files_params(void);
struct criterion_test_params lwt_matrix_params(void);
/* etcd: on both engines, for what only it does (tests/lib/test-etcd*.c) */
struct criterion_test_params lwt_etcd_params(void);
#define LWT_ENGINE_TEST(suite, name, ...)                                      \
	ParameterizedTestParameters(suite, name) { return lwt_engine_params(); } \
	ParameterizedTest(struct lwt_param *p, suite, name, __VA_ARGS__)
#define LWT_FAULTS_TEST(suite, name, ...)                                      \
	ParameterizedTestParameters(suite, name) { return lwt_faults_params(); } \
	ParameterizedTest(struct lwt_param *p, suite, name, __VA_ARGS__)
#define LWT_FILES_TEST(suite, name, ...)                                       \
	ParameterizedTestParameters(suite, name) { return lwt_files_params(); } \
	ParameterizedTest(struct lwt_param *p, suite, name, __VA_ARGS__)
#define LWT_MATRIX_TEST(suite, name, ...)                                      \
	ParameterizedTestParameters(suite, name) { return lwt_matrix_params(); } \
	ParameterizedTest(struct lwt_param *p, suite, name, __VA_ARGS__)
#define LWT_ETCD_TEST(suite, name, ...)                                        \
	ParameterizedTestParameters(suite, name) { return lwt_etcd_params(); }  \
	ParameterizedTest(struct lwt_param *p, suite, name, __VA_ARGS__)

struct lwt_nginx;
struct lwt_webdav;
struct lwt_etcd;

struct lwt {
	struct lwt_param param;
	char dir[PATH_MAX]; /* the repository's files on this machine */
	char url[PATH_MAX]; /* the repository as the library sees it */
	struct lwt_nginx *ng;
	struct lwt_webdav *wd;
	struct lwt_etcd *etcd; /* etcd: the cluster, and the prefix in it */
	char prefix[32];
	struct lw_loop *loop;
	struct lw_repo *repo;
};

/* A started loop on P's engine and a new, initialised repository on P's
 * backend (a local one under BASE, NULL: $TMPDIR or /tmp), refreshing every
 * REFRESH with STALE as the stale timeout, rechecking after 50 ms. */
void lwt_start(struct lwt *t, const struct lwt_param *p, const char *base,
	       int64_t refresh, int64_t stale);
/* Frees the loop (releasing what is left) and removes the directory. */
void lwt_stop(struct lwt *t);
/* Another repository object on T's repository, on a loop of its own: a
 * second holder, as another process would be. */
void lwt_other(const struct lwt *t, struct lwt *other);
void lwt_other_stop(struct lwt *other);

/* The number of files in locks/ (temporary ones included; etcd: keys). */
int lwt_count(const struct lwt *t);
/* Whether locks/ID exists. */
bool lwt_exists(const struct lwt *t, const char *id);
/* Writes DATA as a lock file of a random name; ID gets the name. */
void lwt_plant_bytes(const struct lwt *t, const void *data, size_t len,
		     char id[65]);
/* A record of another holder on this host: a live pid that is not ours. */
struct lw__record lwt_record(bool exclusive);
void lwt_plant(const struct lwt *t, const struct lw__record *rec, char id[65]);

/* A new lock on REPO; acquires it and expects EXPECT (0 or negative). */
struct lw_lock *lwt_lock(struct lw_repo *repo, unsigned flags, int expect);

/* Milliseconds of CLOCK_BOOTTIME. */
int64_t lwt_ms(void);
/* Waits up to MS for COND to become true, polling every 5 ms. */
#define lwt_wait_for(cond, ms)                                          \
	({                                                              \
		int64_t lwt_end_ = lwt_ms() + (ms);                     \
		while (!(cond) && lwt_ms() < lwt_end_)                  \
			usleep(5000);                                   \
		(cond);                                                 \
	})
/* Waits until FD is readable or MS pass; returns the CLOCK_BOOTTIME ns at
 * which it became readable, or 0. */
int64_t lwt_wait_fd(int fd, int ms);
