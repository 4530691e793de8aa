/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * lockwatch and Debian's restic 0.14 on one restic repository, seeing each
 * other (issue 14): a local repository and one on a real restic REST
 * server (`rclone serve restic`, started here on a loopback port), made by
 * restic itself in format 1 and 2, every case on both engines.
 *
 * lockwatch's exclusive lock stops restic's backup and prune in restic's
 * own words; restic lists and prints it; a shared one lets a backup go on;
 * restic's backup lets a shared lockwatch run go on and makes an exclusive
 * one exit 11 naming it; restic unlock leaves a live lockwatch lock alone
 * and --remove-all makes its job stop with 12; no password, or a wrong one,
 * is refused and writes nothing; and every file lockwatch left on the
 * server's disk is named by the SHA-256 of its content.  Over dav:, a
 * repository restic made on disk is served by a real WebDAV server
 * (nginx with dav-ext, rclone serve webdav) and locked through it, restic
 * working on the directory itself.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clitest.h"
#include "resticbin.h"
#include "webdav.h"

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

struct rcase {
	bool rest;
	int version;
	enum lw_engine engine;
};

static const struct rcase all_cases[] = {
	{ false, 1, LW_ENGINE_URING }, { false, 1, LW_ENGINE_EPOLL },
	{ false, 2, LW_ENGINE_URING }, { false, 2, LW_ENGINE_EPOLL },
	{ true, 1, LW_ENGINE_URING },  { true, 1, LW_ENGINE_EPOLL },
	{ true, 2, LW_ENGINE_URING },  { true, 2, LW_ENGINE_EPOLL },
};

/* Every case, or those of the engine LOCKWATCH_ENGINE names. */
static struct criterion_test_params cases(void)
{
	static struct rcase kept[N_OF(all_cases)];
	const char *only = getenv("LOCKWATCH_ENGINE");
	enum lw_engine e;
	size_t n = 0;

	for (size_t i = 0; i < N_OF(all_cases); i++)
		if (!only || lw_engine_parse(only, &e) < 0 || e == LW_ENGINE_AUTO ||
		    e == all_cases[i].engine)
			kept[n++] = all_cases[i];
	return cr_make_param_array(struct rcase, kept, n);
}

/* What a case started, for its teardown, which runs after a failed
 * assertion too: nothing of it outlives it. */
static struct lwt_restic_repo repo;
static char scratch[128];
static pid_t started[8];
static size_t nstarted;
/* over_dav: the server, and the repository's URL there (lockwatch's) */
static struct lwt_webdav *dav;
static char dav_url[256];

static void teardown(void)
{
	char go[200];

	snprintf(go, sizeof(go), "%s/go", scratch);
	if (scratch[0])
		close(open(go, O_WRONLY | O_CREAT, 0600));
	/* only children not reaped yet: a reaped pid may be someone else's */
	for (size_t i = 0; i < nstarted; i++)
		if (waitpid(started[i], NULL, WNOHANG) == 0) {
			kill(started[i], SIGKILL);
			waitpid(started[i], NULL, 0);
		}
	lwt_restic_remove(&repo);
	lwt_webdav_stop(dav);
	dav = NULL;
	dav_url[0] = '\0';
}

#define RESTIC_TEST(name, timeout_s)                                             \
	ParameterizedTestParameters(restic_repo, name) { return cases(); }     \
	static void name##_body(struct lwt_restic_repo *r, const struct rcase *c, \
				const char *tmp);                                \
	ParameterizedTest(struct rcase *c, restic_repo, name, .timeout = timeout_s, \
			  .fini = teardown)                                      \
	{                                                                        \
		if (c->rest)                                                     \
			lwt_restic_init_rest(&repo, c->version);                 \
		else                                                             \
			lwt_restic_init(&repo, c->version);                      \
		snprintf(scratch, sizeof(scratch), "%s/t", repo.dir);            \
		cr_assert_eq(mkdir(scratch, 0700), 0);                           \
		name##_body(&repo, c, scratch);                                  \
	}                                                                        \
	static void name##_body(struct lwt_restic_repo *r, const struct rcase *c, \
				const char *tmp)

static const char *const with_password[] = { "RESTIC_PASSWORD=" LWT_RESTIC_PASSWORD, NULL };

static const char *hostname(void)
{
	static char name[256];

	gethostname(name, sizeof(name) - 1);
	return name;
}

/* lockwatch -r R --engine E ARGS..., with ENV. */
static void lockwatch(struct proc *p, const char *tmp, const struct lwt_restic_repo *r,
		      const struct rcase *c, const char *const *env,
		      const char *const *args)
{
	const char *argv[32] = { "-r", dav_url[0] ? dav_url : r->path, "--engine",
				 lw_engine_name(c->engine) };
	size_t n = 4;

	while (*args && n < N_OF(argv) - 1)
		argv[n++] = *args++;
	argv[n] = NULL;
	clitest_start(p, tmp, NULL, NULL, env, argv);
	if (nstarted < N_OF(started))
		started[nstarted++] = p->pid;
}

/* A job that says it runs (TMP/started) and waits for TMP/go. */
static const char *waiting_job(const char *tmp)
{
	static char job[512];

	snprintf(job, sizeof(job), "echo > %s/started; while [ ! -e %s/go ]; do sleep 0.05; done",
		 tmp, tmp);
	return job;
}

static void wait_started(const struct proc *p, const char *tmp)
{
	char path[256], *err;

	snprintf(path, sizeof(path), "%s/started", tmp);
	if (clitest_wait_file(path, 60000))
		return;
	err = clitest_read(p->err);
	cr_assert_fail("the job did not start: %s", err);
}

static void let_go(const char *tmp)
{
	char path[256];

	clitest_write(clitest_path(path, sizeof(path), tmp, "go"), "", 0);
}

/* Every file in R's locks/ on disk is named by the SHA-256 of its
 * content (what rest-server checks); returns how many there are. */
static int check_names(const struct lwt_restic_repo *r)
{
	char dir[256];
	struct dirent *e;
	DIR *d;
	int n = 0;

	snprintf(dir, sizeof(dir), "%s/locks", r->disk);
	d = opendir(dir);
	cr_assert_not_null(d);
	while ((e = readdir(d))) {
		char path[512], hex[65];
		unsigned char md[32], buf[8192];
		unsigned int mdlen = 0;
		ssize_t len;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		len = lwt_read_file(path, buf, sizeof(buf));
		cr_assert_geq(len, 0);
		cr_assert(EVP_Digest(buf, (size_t)len, md, &mdlen, EVP_sha256(), NULL));
		for (int i = 0; i < 32; i++)
			snprintf(hex + 2 * i, 3, "%02x", md[i]);
		cr_assert_str_eq(e->d_name, hex, "a lock file not named by its SHA-256");
		n++;
	}
	closedir(d);
	return n;
}

/* Whether child PID still runs (it is not reaped). */
static bool running(pid_t pid)
{
	siginfo_t info = { 0 };

	return waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
	       info.si_pid == 0;
}

/* Lines of lockwatch's own in ERR (a sanitizer build adds its report). */
static int own_lines(const char *err)
{
	int n = 0;

	for (const char *p = err; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		n += strncmp(p, "lockwatch", 9) == 0;
	return n;
}

static int restic(const struct lwt_restic_repo *r, char *out, size_t size,
		  const char *const *args)
{
	return lwt_restic_run(r->path, out, size, args);
}

/* lockwatch's exclusive lock: backup, prune and check refuse, naming
 * lockwatch's pid and host; restic lists the file and prints its JSON;
 * after release nothing is left and restic check passes. */
RESTIC_TEST(exclusive_held, 240)
{
	const char *run[] = { "run", "--exclusive", "--", "sh", "-c", waiting_job(tmp), NULL };
	const char *backup[] = { "backup", r->payload, NULL };
	const char *prune[] = { "prune", NULL };
	const char *check[] = { "check", NULL };
	const char *list[] = { "list", "locks", "--no-lock", NULL };
	char out[8192], expect[512], name[65] = "", cat_id[65];
	const char *cat[] = { "cat", "lock", cat_id, "--no-lock", NULL };
	const char *const *refused[] = { backup, prune, check };
	struct proc p;
	int status;

	lockwatch(&p, tmp, r, c, with_password, run);
	wait_started(&p, tmp);
	snprintf(expect, sizeof(expect),
		 "repository is already locked exclusively by PID %d on %s", (int)p.pid,
		 hostname());
	for (size_t i = 0; i < N_OF(refused); i++) {
		status = restic(r, out, sizeof(out), refused[i]);
		cr_assert_neq(status, 0, "restic %s went ahead: %s", refused[i][0], out);
		cr_assert(strstr(out, expect), "restic %s said: %s", refused[i][0], out);
	}
	cr_assert_eq(restic(r, out, sizeof(out), list), 0, "%s", out);
	cr_assert_eq(strlen(out), 65, "restic list locks: %s", out);
	snprintf(cat_id, sizeof(cat_id), "%.64s", out);
	cr_assert_eq(check_names(r), 1);
	{
		char dir[256];
		DIR *d;
		struct dirent *e;

		snprintf(dir, sizeof(dir), "%s/locks", r->disk);
		d = opendir(dir);
		while ((e = readdir(d)))
			if (e->d_name[0] != '.')
				snprintf(name, sizeof(name), "%.64s", e->d_name);
		closedir(d);
	}
	cr_assert_str_eq(cat_id, name, "restic lists another file than is there");
	cr_assert_eq(restic(r, out, sizeof(out), cat), 0, "%s", out);
	snprintf(expect, sizeof(expect), "\"pid\": %d", (int)p.pid);
	cr_assert(strstr(out, expect), "restic cat lock: %s", out);
	snprintf(expect, sizeof(expect), "\"hostname\": \"%s\"", hostname());
	cr_assert(strstr(out, expect), "restic cat lock: %s", out);
	cr_assert(strstr(out, "\"exclusive\": true"), "restic cat lock: %s", out);

	let_go(tmp);
	cr_assert_eq(clitest_wait(&p, 30000), 0, "%s", clitest_read(p.err));
	cr_assert_eq(check_names(r), 0, "lock files left after the release");
	status = restic(r, out, sizeof(out), check);
	cr_assert_eq(status, 0, "restic check after the release: %s", out);
}

/* lockwatch's shared lock: a backup goes on beside it, a prune does not. */
RESTIC_TEST(shared_held, 240)
{
	const char *run[] = { "run", "--", "sh", "-c", waiting_job(tmp), NULL };
	const char *backup[] = { "backup", r->payload, NULL };
	const char *prune[] = { "prune", NULL };
	char out[8192], expect[512];
	struct proc p;
	int status;

	lockwatch(&p, tmp, r, c, with_password, run);
	wait_started(&p, tmp);
	status = restic(r, out, sizeof(out), backup);
	cr_assert_eq(status, 0, "restic backup beside a shared lock: %s", out);
	status = restic(r, out, sizeof(out), prune);
	snprintf(expect, sizeof(expect), "repository is already locked by PID %d on %s",
		 (int)p.pid, hostname());
	cr_assert_neq(status, 0, "restic prune went ahead: %s", out);
	cr_assert(strstr(out, expect), "restic prune said: %s", out);
	cr_assert_eq(check_names(r), 1);
	let_go(tmp);
	cr_assert_eq(clitest_wait(&p, 30000), 0, "%s", clitest_read(p.err));
	cr_assert_eq(check_names(r), 0);
}

/* restic's own lock (a backup reading a slow stdin): a shared run goes
 * ahead, an exclusive one exits 11 naming restic's pid, host and age, and
 * lockwatch list shows it decoded, written by restic. */
RESTIC_TEST(restic_held, 240)
{
	const char *shared[] = { "run", "--", "true", NULL };
	const char *exclusive[] = { "run", "--exclusive", "--", "true", NULL };
	const char *list[] = { "list", NULL };
	const char *json[] = { "list", "--json", NULL };
	char expect[512], *err, *out;
	struct lwt_restic_hold h;
	struct proc p;

	lwt_restic_hold(&h, r);
	started[nstarted++] = h.pid;
	lockwatch(&p, tmp, r, c, with_password, shared);
	cr_assert_eq(clitest_wait(&p, 60000), 0, "a shared run beside restic's backup: %s",
		     clitest_read(p.err));
	lockwatch(&p, tmp, r, c, with_password, exclusive);
	cr_assert_eq(clitest_wait(&p, 60000), 11);
	err = clitest_read(p.err);
	snprintf(expect, sizeof(expect), "is locked by shared lock of %s@%s (pid %d), ",
		 getpwuid(getuid())->pw_name, hostname(), (int)h.pid);
	cr_assert(strstr(err, expect), "%s", err);
	cr_assert(strstr(err, "s old"), "no age in: %s", err);
	free(err);

	lockwatch(&p, tmp, r, c, with_password, list);
	cr_assert_eq(clitest_wait(&p, 60000), 0, "%s", clitest_read(p.err));
	out = clitest_read(p.out);
	{
		char id[13], pid[24];

		snprintf(id, sizeof(id), "%.12s", h.lock);
		snprintf(pid, sizeof(pid), " %d ", (int)h.pid);
		cr_assert(strstr(out, id) && strstr(out, pid) && strstr(out, " restic ") &&
			  strstr(out, "shared"), "lockwatch list: %s", out);
	}
	free(out);
	lockwatch(&p, tmp, r, c, with_password, json);
	cr_assert_eq(clitest_wait(&p, 60000), 0);
	out = clitest_read(p.out);
	cr_assert(clitest_json_valid(out), "%s", out);
	snprintf(expect, sizeof(expect), "\"pid\": %d", (int)h.pid);
	cr_assert(strstr(out, expect) && strstr(out, "\"tool\": \"restic\"") &&
		  strstr(out, "\"boot_id\": \"\""), "lockwatch list --json: %s", out);
	free(out);
	cr_assert_eq(lwt_restic_hold_end(&h), 0);
}

/* restic unlock leaves a live lockwatch lock alone; --remove-all removes
 * it, and the job is stopped: lockwatch exits 12. */
RESTIC_TEST(unlock, 240)
{
	const char *run[] = { "run", "--refresh-interval", "1s", "--stale-timeout", "3s",
			      "--kill-after", "2s", "--", "sh", "-c", waiting_job(tmp), NULL };
	const char *unlock[] = { "unlock", NULL };
	const char *remove_all[] = { "unlock", "--remove-all", NULL };
	char out[8192];
	struct proc p;

	lockwatch(&p, tmp, r, c, with_password, run);
	wait_started(&p, tmp);
	cr_assert_eq(restic(r, out, sizeof(out), unlock), 0, "%s", out);
	/* (a refresh in flight shows two files for a moment) */
	cr_assert_geq(check_names(r), 1, "restic unlock removed a live lock");
	clitest_sleep_ms(1500); /* a refresh or two: the lock goes on */
	cr_assert(running(p.pid), "lockwatch ended: %s", clitest_read(p.err));
	cr_assert_geq(check_names(r), 1);
	cr_assert_eq(restic(r, out, sizeof(out), remove_all), 0, "%s", out);
	cr_assert_eq(clitest_wait(&p, 30000), 12, "%s", clitest_read(p.err));
	let_go(tmp);
}

/* Without a password, or with a wrong one, nothing is written and the
 * message says why in a line; --format=lockwatch goes ahead, invisibly to
 * restic. */
RESTIC_TEST(password, 240)
{
	static const char *const none[] = { "RESTIC_PASSWORD", "RESTIC_PASSWORD_FILE",
					    "RESTIC_PASSWORD_COMMAND", NULL };
	static const char *const wrong[] = { "RESTIC_PASSWORD=wrong", NULL };
	const char *run[] = { "run", "--exclusive", "--", "sh", "-c", "exit 7", NULL };
	const char *native[] = { "--format=lockwatch", "run", "--exclusive", "--", "sh", "-c",
				 waiting_job(tmp), NULL };
	const char *backup[] = { "backup", r->payload, NULL };
	char pwfile[256], pwarg[300], out[4096], *err;
	const char *by_file[] = { pwarg, "run", "--", "sh", "-c", "exit 7", NULL };
	struct proc p;

	lockwatch(&p, tmp, r, c, none, run);
	cr_assert_eq(clitest_wait(&p, 60000), 1);
	err = clitest_read(p.err);
	cr_assert(strstr(err, "is a restic repository and no password was given"), "%s", err);
	cr_assert_eq(own_lines(err), 1, "%s", err);
	free(err);

	lockwatch(&p, tmp, r, c, wrong, run);
	cr_assert_eq(clitest_wait(&p, 60000), 1);
	err = clitest_read(p.err);
	cr_assert(strstr(err, "wrong password"), "%s", err);
	cr_assert_eq(own_lines(err), 1, "%s", err);
	free(err);
	cr_assert_eq(check_names(r), 0);

	clitest_path(pwfile, sizeof(pwfile), tmp, "pw");
	clitest_write(pwfile, LWT_RESTIC_PASSWORD "\n", strlen(LWT_RESTIC_PASSWORD) + 1);
	snprintf(pwarg, sizeof(pwarg), "--password-file=%s", pwfile);
	lockwatch(&p, tmp, r, c, none, by_file);
	cr_assert_eq(clitest_wait(&p, 60000), 7, "%s", clitest_read(p.err));

	/* lockwatch's own format, named by its hash too, and invisible to
	 * restic 0.14, which skips what it cannot decrypt: an exclusive lock
	 * that a backup goes past (what --format=lockwatch documents) */
	lockwatch(&p, tmp, r, c, none, native);
	wait_started(&p, tmp);
	cr_assert_eq(check_names(r), 1);
	cr_assert_eq(restic(r, out, sizeof(out), backup), 0,
		     "restic 0.14 saw lockwatch's own format: %s", out);
	let_go(tmp);
	cr_assert_eq(clitest_wait(&p, 60000), 0, "%s", clitest_read(p.err));
	cr_assert_eq(check_names(r), 0);
}

struct dav_case {
	enum lwt_webdav_kind server;
	enum lw_engine engine;
};

ParameterizedTestParameters(restic_repo, over_dav)
{
	/* Apache runs as www-data here, and restic's files are its user's
	 * alone (0600): it could not read restic's locks */
	static struct dav_case dav_cases[] = {
		{ LWT_WEBDAV_NGINX, LW_ENGINE_URING }, { LWT_WEBDAV_NGINX, LW_ENGINE_EPOLL },
		{ LWT_WEBDAV_RCLONE, LW_ENGINE_URING }, { LWT_WEBDAV_RCLONE, LW_ENGINE_EPOLL },
	};
	const char *only = getenv("LOCKWATCH_ENGINE");
	static struct dav_case kept[N_OF(dav_cases)];
	enum lw_engine e;
	size_t n = 0;

	for (size_t i = 0; i < N_OF(dav_cases); i++)
		if (!only || lw_engine_parse(only, &e) < 0 || e == LW_ENGINE_AUTO ||
		    e == dav_cases[i].engine)
			kept[n++] = dav_cases[i];
	return cr_make_param_array(struct dav_case, kept, n);
}

/*
 * A repository restic 0.14 made on disk (format 2), served by a real
 * WebDAV server and locked by lockwatch through dav: in restic's format,
 * restic working on the directory: lockwatch's exclusive lock stops a
 * backup in restic's words and restic lists it; restic's lock (a backup
 * in progress) makes an exclusive lockwatch run exit 11 naming it, lets a
 * shared one go ahead, and lockwatch list decodes it; every file lockwatch
 * wrote is named by its SHA-256, and none is left after release.
 */
ParameterizedTest(struct dav_case *dc, restic_repo, over_dav, .timeout = 300,
		  .fini = teardown)
{
	const struct rcase c = { .version = 2, .engine = dc->engine };
	const struct lwt_restic_repo *r = &repo;
	char tmp[128], disk[sizeof(repo.disk)], out[8192], expect[512], *err;
	const char *hold_run[] = { "run", "--exclusive", "--", "sh", "-c", NULL, NULL };
	const char *backup[] = { "backup", repo.payload, NULL };
	const char *list_locks[] = { "list", "locks", "--no-lock", NULL };
	const char *shared[] = { "run", "--", "true", NULL };
	const char *exclusive[] = { "run", "--exclusive", "--", "true", NULL };
	const char *list[] = { "list", NULL };
	struct lwt_restic_hold h;
	struct proc p;
	int status;

	dav = lwt_webdav_start(dc->server);
	cr_assert_not_null(dav, "%s did not start", lwt_webdav_name(dc->server));
	lwt_restic_init(&repo, 2);
	snprintf(tmp, sizeof(tmp), "%s/t", repo.dir);
	cr_assert_eq(mkdir(tmp, 0700), 0);
	cr_assert_lt(snprintf(disk, sizeof(disk), "%s/repo", lwt_webdav_root(dav)),
		     (int)sizeof(disk));
	cr_assert_eq(rename(repo.disk, disk), 0, "%s -> %s: %s", repo.disk, disk,
		     strerror(errno));
	snprintf(repo.disk, sizeof(repo.disk), "%s", disk);
	snprintf(repo.path, sizeof(repo.path), "%s", disk);
	lwt_webdav_own(dav, disk);
	snprintf(dav_url, sizeof(dav_url), "%s", lwt_webdav_url(dav, "/repo/"));

	/* lockwatch's exclusive lock, seen by restic */
	hold_run[5] = waiting_job(tmp);
	lockwatch(&p, tmp, r, &c, with_password, hold_run);
	wait_started(&p, tmp);
	status = restic(r, out, sizeof(out), backup);
	snprintf(expect, sizeof(expect),
		 "repository is already locked exclusively by PID %d on %s", (int)p.pid,
		 hostname());
	cr_assert_neq(status, 0, "restic backup went ahead: %s", out);
	cr_assert(strstr(out, expect), "restic backup said: %s", out);
	cr_assert_eq(restic(r, out, sizeof(out), list_locks), 0, "%s", out);
	cr_assert_eq(strlen(out), 65, "restic list locks: %s", out);
	cr_assert_eq(check_names(r), 1);
	let_go(tmp);
	cr_assert_eq(clitest_wait(&p, 30000), 0, "%s", clitest_read(p.err));
	cr_assert_eq(check_names(r), 0, "lock files left after the release");
	/* through the server, which says so where it keeps a log (rclone: -1) */
	cr_assert_neq(lwt_webdav_log_count(dav, "PUT /repo/locks/"), 0);
	cr_assert_neq(lwt_webdav_log_count(dav, "GET /repo/config"), 0);

	/* restic's lock, seen by lockwatch */
	lwt_restic_hold(&h, r);
	started[nstarted++] = h.pid;
	lockwatch(&p, tmp, r, &c, with_password, exclusive);
	cr_assert_eq(clitest_wait(&p, 60000), 11, "%s", clitest_read(p.err));
	err = clitest_read(p.err);
	snprintf(expect, sizeof(expect), "is locked by shared lock of %s@%s (pid %d), ",
		 getpwuid(getuid())->pw_name, hostname(), (int)h.pid);
	cr_assert(strstr(err, expect), "%s", err);
	free(err);
	lockwatch(&p, tmp, r, &c, with_password, shared);
	cr_assert_eq(clitest_wait(&p, 60000), 0, "a shared run beside restic's backup: %s",
		     clitest_read(p.err));
	lockwatch(&p, tmp, r, &c, with_password, list);
	cr_assert_eq(clitest_wait(&p, 60000), 0, "%s", clitest_read(p.err));
	err = clitest_read(p.out);
	{
		char id[13], pid[24];

		snprintf(id, sizeof(id), "%.12s", h.lock);
		snprintf(pid, sizeof(pid), " %d ", (int)h.pid);
		cr_assert(strstr(err, id) && strstr(err, pid) && strstr(err, " restic ") &&
			  strstr(err, "shared"), "lockwatch list: %s", err);
	}
	free(err);
	/* restic's file is the one left, and it goes with restic */
	cr_assert_eq(check_names(r), 1);
	cr_assert_eq(lwt_restic_hold_end(&h), 0);
	cr_assert_eq(check_names(r), 0, "lock files left");
}
