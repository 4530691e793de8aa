/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The end of a lock, as lockwatch run shows it: on a stalled server the
 * deletes are bounded by --release-timeout and the files left behind are
 * named; a lock removed during the run is noticed (by the release at the
 * latest, sooner by inotify on a local folder and by HEAD checks on an
 * HTTP server) and the run exits 12.  Both engines.
 */
#include "config.h"

#include "test.h"
#include <criterion/parameterized.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clitest.h"

static char *tmpfile_(const struct repo *r, const char *name)
{
	static __thread char bufs[4][600];
	static __thread int i;
	char *b = bufs[i++ % 4];

	return clitest_path(b, sizeof(bufs[0]), r->tmp, name);
}

static void expect_err(const struct proc *pr, const char *needle)
{
	char *err = clitest_read(pr->err);

	cr_expect(strstr(err, needle), "stderr lacks \"%s\": %s", needle, err);
	free(err);
}

/* The cases of the backends named in NAMES (separated by spaces), on both
 * engines. */
static struct cli_param *params_of(const char *names, size_t *n)
{
	size_t all, k = 0;
	struct cli_param *p = clitest_all_params(&all);

	for (size_t i = 0; i < all; i++) {
		const char *name = clitest_backends[p[i].backend].name, *at = names;
		size_t len = strlen(name);

		while ((at = strstr(at, name)) &&
		       ((at > names && at[-1] != ' ') || (at[len] && at[len] != ' ')))
			at += len;
		if (at)
			p[k++] = p[i];
	}
	*n = k;
	return p;
}

#define BACKEND_TEST(backend, name, timeout_s)                                  \
	ParameterizedTestParameters(release, name)                              \
	{                                                                       \
		size_t n;                                                       \
		struct cli_param *p = params_of(backend, &n);                   \
		return cr_make_param_array(struct cli_param, p, n,             \
					   clitest_params_free);                \
	}                                                                       \
	static void name##_body(struct repo *r, const struct cli_param *p);     \
	ParameterizedTest(struct cli_param *p, release, name, .timeout = timeout_s) \
	{                                                                       \
		struct repo r;                                                  \
		clitest_repo(&r, p);                                            \
		name##_body(&r, p);                                             \
		clitest_repo_free(&r);                                          \
	}                                                                       \
	static void name##_body(struct repo *r, const struct cli_param *p)

/* The one lock file's name, once the run's lock is confirmed. */
static void wait_lock(const struct repo *r, char name[256])
{
	int64_t until = clitest_now() + LW_SEC(10);

	while (!clitest_one_lock(r, name)) {
		cr_assert_lt(clitest_now(), until, "the run never got its lock");
		clitest_sleep_ms(10);
	}
	clitest_sleep_ms(400); /* past the recheck */
	cr_assert(clitest_one_lock(r, name));
}

/* -------------------------------------------------- stalled server */

/* Refreshes every second, deadline 2.5 s after the last one started. */
#define FAST "--refresh-interval", "1s", "--stale-timeout", "4s"
#define KILL_AFTER_MS 1000
#define RELEASE_TIMEOUT_MS 2000

/* The server stopped (SIGSTOP; nginx's JSON index, Apache, nginx + dav-ext,
 * rclone): the loss comes at the deadline, the job gets SIGTERM, ignores it
 * and gets SIGKILL after --kill-after; the deletes (and the refresh's write
 * in flight, which is waited for) hang until --release-timeout and
 * lockwatch exits 12 within kill-after + release timeout + 1 s of the
 * deadline, naming the files it left. */
BACKEND_TEST("dav apache nginx-dav-ext rclone", stalled_server_exit_is_bounded, 60)
{
	char job[600], name[256];
	const char *args[] = { "run", FAST, "--kill-after", "1s", "--release-timeout", "2s",
			       "--", "sh", "-c", job, NULL };
	struct proc pr;
	int64_t termed, after;

	snprintf(job, sizeof(job), "trap 'echo TERM >> %s' TERM; while :; do sleep 0.05; done",
		 tmpfile_(r, "marker"));
	clitest_start(&pr, r->tmp, r, p, NULL, args);
	wait_lock(r, name);
	r->be->stall(r, pr.pid);
	cr_assert(clitest_wait_text(tmpfile_(r, "marker"), "TERM", 6000),
		  "the job got no SIGTERM");
	/* the job notes it within its 50 ms sleep: the deadline was then */
	termed = clitest_now();
	if (clitest_wait(&pr, 10000) != 12) {
		char *err = clitest_read(pr.err);

		cr_expect_fail("exit status %d, not 12; lockwatch said: %s", pr.status, err);
		free(err);
	}
	after = pr.ended - termed;
	cr_log_info("%s/%s: exit 12 %lld ms after SIGTERM (bound %d ms)", r->be->name,
		    lw_engine_name(p->engine), (long long)after / 1000000,
		    KILL_AFTER_MS + RELEASE_TIMEOUT_MS + 1000);
	cr_expect_lt(after, LW_MSEC(KILL_AFTER_MS + RELEASE_TIMEOUT_MS + 1000),
		     "lockwatch exited %lld ms after the loss", (long long)after / 1000000);
	/* the deletes really hung: nothing ended them before their bound */
	cr_expect_geq(after, LW_MSEC(RELEASE_TIMEOUT_MS - 200),
		      "lockwatch exited %lld ms after the loss, before the release timeout",
		      (long long)after / 1000000);
	expect_err(&pr, "lock refresh deadline exceeded");
	expect_err(&pr, "left behind");
	/* what it named is what is there (before the server resumes and carries
	 * out the deletes it was sent before it stopped) */
	cr_expect_geq(clitest_count_locks(r), 1, "no file left, yet one was named");
	if (clitest_one_lock(r, name)) {
		name[12] = '\0';
		expect_err(&pr, name);
	}
	r->be->repair(r, pr.pid);
}

/* ------------------------------------------------ removed while held */

/* A job that ends once TMP/go exists; notes SIGTERM in TMP/marker. */
static char *until_go(char *buf, size_t size, const struct repo *r)
{
	snprintf(buf, size, "trap 'echo TERM >> %s; exit 5' TERM; "
		 "while [ ! -e %s ]; do sleep 0.02; done",
		 tmpfile_(r, "marker"), tmpfile_(r, "go"));
	return buf;
}

static void remove_all(const struct repo *r, const struct cli_param *p)
{
	const char *args[] = { "unlock", "--remove-all", NULL };
	struct proc un;

	cr_assert_eq(clitest_run(&un, r->tmp, r, p, args), 0);
}

/* Polls stderr of PR for NEEDLE; the time it took, or -1 after LIMIT_MS. */
static int64_t time_to_text(const struct proc *pr, const char *needle, int limit_ms)
{
	int64_t from = clitest_now();

	while (clitest_now() - from < LW_MSEC(limit_ms)) {
		char *err = clitest_read(pr->err);
		bool found = strstr(err, needle) != NULL;

		free(err);
		if (found)
			return clitest_now() - from;
		clitest_sleep_ms(1);
	}
	return -1;
}

/* No check between refreshes, no refresh before the job ends: the
 * release's first delete finds the file gone, and says so. */
BACKEND_TEST("dav", removal_found_by_the_release, 30)
{
	char job[600], name[256];
	const char *args[] = { "run", "--check-interval", "0", "--", "sh", "-c", job, NULL };
	struct proc pr;

	until_go(job, sizeof(job), r);
	clitest_start(&pr, r->tmp, r, p, NULL, args);
	wait_lock(r, name);
	remove_all(r, p);
	clitest_sleep_ms(300);
	clitest_write(tmpfile_(r, "go"), "", 0);
	cr_expect_eq(clitest_wait(&pr, 10000), 12);
	expect_err(&pr, "the lock was removed during the run");
	cr_expect(!clitest_wait_text(tmpfile_(r, "marker"), "TERM", 0),
		  "the job was stopped: something noticed sooner than the release");
	cr_expect_eq(clitest_count_locks(r), 0);
}

/* A local locks/ folder is watched: a plain rm ends the lock at once. */
BACKEND_TEST("local", removal_noticed_by_inotify, 30)
{
	char job[600], name[256], path[900];
	const char *args[] = { "run", "--", "sh", "-c", job, NULL };
	struct proc pr;
	int64_t took;

	until_go(job, sizeof(job), r);
	clitest_start(&pr, r->tmp, r, p, NULL, args);
	wait_lock(r, name);
	snprintf(path, sizeof(path), "%s/locks/%s", r->dir, name);
	cr_assert_eq(unlink(path), 0);
	took = time_to_text(&pr, "SIGTERM sent to the job", 2000);
	cr_log_info("%s/%s: rm to SIGTERM %lld us", r->be->name, lw_engine_name(p->engine),
		    (long long)took / 1000);
	cr_expect(took >= 0 && took < LW_MSEC(100), "rm to SIGTERM: %lld us",
		  (long long)took / 1000);
	cr_expect_eq(clitest_wait(&pr, 5000), 12);
	expect_err(&pr, "removed by someone else");
	cr_expect(clitest_wait_text(tmpfile_(r, "marker"), "TERM", 1000), "the job got no SIGTERM");

	/* and so does lockwatch unlock --remove-all */
	unlink(tmpfile_(r, "marker"));
	clitest_start(&pr, r->tmp, r, p, NULL, args);
	wait_lock(r, name);
	remove_all(r, p);
	cr_expect_eq(clitest_wait(&pr, 5000), 12);
	cr_expect(clitest_wait_text(tmpfile_(r, "marker"), "TERM", 0), "the job got no SIGTERM");
	cr_expect_eq(clitest_count_locks(r), 0);
}

/* An HTTP server is asked with HEAD every --check-interval. */
BACKEND_TEST("dav", removal_noticed_by_head, 30)
{
	char job[600], name[256], path[900];
	const char *args[] = { "run", "--check-interval", "200ms", "--", "sh", "-c", job, NULL };
	struct proc pr;
	int64_t took;

	until_go(job, sizeof(job), r);
	clitest_start(&pr, r->tmp, r, p, NULL, args);
	wait_lock(r, name);
	snprintf(path, sizeof(path), "%s/locks/%s", r->dir, name);
	cr_assert_eq(unlink(path), 0);
	took = time_to_text(&pr, "SIGTERM sent to the job", 3000);
	cr_log_info("%s/%s: rm to SIGTERM %lld ms", r->be->name, lw_engine_name(p->engine),
		    (long long)took / 1000000);
	cr_expect(took >= 0 && took < LW_MSEC(200 + CLITEST_LOSS_BOUND_MS),
		  "rm to SIGTERM: %lld ms", (long long)took / 1000000);
	cr_expect_eq(clitest_wait(&pr, 5000), 12);
	expect_err(&pr, "removed by someone else");
	cr_expect_eq(clitest_count_locks(r), 0);
}
