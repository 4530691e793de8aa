/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Faults around a holder, end to end with the built lockwatch on every
 * backend and engine: the holder stopped past its deadline while another
 * takes the lock, and the holder's wall clock stepping an hour forward or
 * back (tests/helpers/wallclock.c, CLOCK_REALTIME only) while it holds a lock: its
 * deadline stays where it was.
 */
#include "config.h"

#include "test.h"
#include <criterion/parameterized.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clitest.h"
#include "testing.h"

/* refresh every second, deadline 2.5 s after a refresh, stale after 4 s */
#define FAST "--refresh-interval", "1s", "--stale-timeout", "4s"

static char *path_in(const struct repo *r, const char *name)
{
	static __thread char bufs[4][600];
	static __thread int i;

	return clitest_path(bufs[i++ % 4], sizeof(bufs[0]), r->tmp, name);
}

static int64_t now_real(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * LW_NSEC_PER_SEC + ts.tv_nsec;
}

/* Waits until R's locks/ holds exactly one file, a lock file and not a
 * temporary one being written, and names it. */
static void one_lock(const struct repo *r, char name[256])
{
	int64_t until = clitest_now() + LW_SEC(10);

	while (!clitest_one_lock(r, name) || name[0] == '.') {
		cr_assert_lt(clitest_now(), until, "no single lock file in locks/");
		clitest_sleep_ms(10);
	}
}

/* The record time of the one lock file in R, as another host reads it. */
static int64_t record_time(const struct repo *r)
{
	char name[256], path[900];
	struct lw__record *rec;
	const char *why;
	int64_t t;
	int fd;
	ssize_t n;
	uint8_t buf[LW_RECORD_MAX + 1];

	one_lock(r, name);
	snprintf(path, sizeof(path), "%s/locks/%s", r->dir, name);
	fd = open(path, O_RDONLY);
	if (fd < 0) { /* replaced by a refresh meanwhile */
		clitest_sleep_ms(20);
		return record_time(r);
	}
	n = read(fd, buf, sizeof(buf));
	close(fd);
	cr_assert_gt(n, 0);
	cr_assert_eq(lw__record_decode(buf, (size_t)n, &rec, &why), 0, "%s", why);
	t = rec->time;
	free(rec);
	return t;
}

/* ------------------------------------------------------------ stopped */

/* How soon after SIGCONT the stopped holder exits: it ends its job (SIGTERM)
 * and deletes its own file.  Measured 1-7 ms, 11-66 ms under ASan with the
 * load average at 12 on the 2-core machine. */
#define RESUME_EXIT_BOUND_MS 250

/*
 * The holder (lockwatch and its job) is stopped, as a suspended machine
 * would be.  Its lock stays live to others until its record is older than
 * the stale timeout; then another holder takes it.  On resume the stopped
 * holder is past its deadline: it stops its job at once, exits 12, and its
 * cleanup leaves the new holder's lock alone.
 */
CLITEST(cli_faults, stopped_holder, 60)
{
	char job[600], bjob[600];
	const char *args[] = { "run", "--exclusive", FAST, "--", "sh", "-c", job, NULL };
	const char *now[] = { "run", "--exclusive", "--", "true", NULL };
	const char *later[] = { "run", "--exclusive", "--retry-lock", "20s", FAST, "--",
				"sh", "-c", bjob, NULL };
	const char *backoff[] = { "LOCKWATCH_RETRY_BACKOFF=100ms", NULL };
	struct proc a, b, c;
	int64_t stopped, taken, resumed_real, resumed, last;
	char *s;
	pid_t group;

	clitest_ticker(job, sizeof(job), r->tmp);
	snprintf(bjob, sizeof(bjob), "date +%%s%%N > %s; sleep 3", path_in(r, "taken"));
	clitest_start(&a, r->tmp, r, p, NULL, args);
	group = clitest_ticker_group(r->tmp);
	clitest_sleep_ms(1200); /* a refresh or so */

	kill(a.pid, SIGSTOP);
	kill(-group, SIGSTOP);
	stopped = clitest_now();
	/* the process lives and its record is fresh: not stale yet */
	cr_expect_eq(clitest_run(&c, r->tmp, r, p, now), 11);
	clitest_start(&b, r->tmp, r, p, backoff, later);
	cr_assert(clitest_wait_file(path_in(r, "taken"), 15000), "nobody took the lock");
	taken = clitest_now();
	cr_log_info("%s/%s: taken %lld ms after the stop", r->be->name,
		    lw_engine_name(p->engine), (long long)(taken - stopped) / 1000000);
	/* its last record is at most a refresh interval (1 s) older than the
	 * stop; B looks again within 1.35 s of backoff (1.2 s, 1/8 jitter),
	 * and once it has removed the stale lock it lists again after the
	 * recheck delay (200 ms), then waits its recheck (200 ms): about 5 s
	 * after the stop, 8 s on a loaded machine.  Measured: 4.5-4.7 s. */
	cr_expect_geq(taken - stopped, LW_MSEC(2900), "taken before the record was stale");
	cr_expect_lt(taken - stopped, LW_MSEC(8000), "taken late");

	resumed_real = now_real();
	resumed = clitest_now();
	kill(a.pid, SIGCONT);
	kill(-group, SIGCONT);
	cr_expect_eq(clitest_wait(&a, 5000), 12);
	cr_log_info("%s/%s: exit 12 %lld ms after the resume", r->be->name,
		    lw_engine_name(p->engine), (long long)(a.ended - resumed) / 1000000);
	cr_expect_lt(a.ended - resumed, LW_MSEC(RESUME_EXIT_BOUND_MS),
		     "exit %lld ms after the resume", (long long)(a.ended - resumed) / 1000000);
	last = clitest_last_tick(r->tmp);
	cr_log_info("%s/%s: the job's last tick %lld ms after the resume", r->be->name,
		    lw_engine_name(p->engine), (long long)(last - resumed_real) / 1000000);
	cr_expect_lt(last - resumed_real, LW_MSEC(CLITEST_LOSS_BOUND_MS),
		     "the job worked on for %lld ms after the resume",
		     (long long)(last - resumed_real) / 1000000);
	s = clitest_read(a.err);
	cr_expect(strstr(s, "lost the lock on"), "%s", s);
	free(s);
	/* B kept its lock through A's cleanup: it ends normally */
	cr_expect_eq(clitest_wait(&b, 10000), 0);
	s = clitest_read(b.err);
	cr_expect(!strstr(s, "lost"), "%s", s);
	free(s);
	cr_expect_eq(clitest_count_locks(r), 0, "files left in locks/");
}

/* ---------------------------------------------------------- wall clock */

/*
 * Holds a lock with a wall clock that tests/helpers/wallclock.c moves by STEP
 * seconds 1.5 s in; CLOCK_MONOTONIC, CLOCK_BOOTTIME and kernel timers are
 * left alone, as a real clock step leaves them.  3 s later (past the
 * deadline the lock had at the step) the lock must still be held and live
 * to others; then the backend stalls and the lock must be lost at its
 * deadline, on time: a deadline on the wall clock would come an hour early
 * or an hour late.  Returns how far the holder's records moved off this
 * host's clock (ns, positive: they look younger than they are), and in
 * *ERRP what the holder said before the stall (free it).
 */
static int64_t hold_through_step(struct repo *r, const struct cli_param *p, int step,
				 char **errp)
{
	char preload[300], offset[600], text[16];
	const char *env[] = { preload, offset,
			      /* ASan wants to come first; the shim does no harm */
			      "ASAN_OPTIONS=verify_asan_link_order=0",
			      /* the library's warnings too */
			      "LOCKWATCH_LOG=warning", NULL };
	char job[600];
	const char *args[] = { "run", "--exclusive", FAST, "--", "sh", "-c",
			       clitest_held_job(job, sizeof(job), r->tmp), NULL };
	const char *other[] = { "run", "--exclusive", "--", "true", NULL };
	struct proc a, b;
	int64_t before, after, stalled, termed, latency;
	char *err;

	snprintf(preload, sizeof(preload), "LD_PRELOAD=%s", WALLCLOCK_SHIM);
	snprintf(offset, sizeof(offset), "LWTEST_WALLCLOCK=%s", path_in(r, "wallclock"));
	clitest_write(path_in(r, "wallclock"), "0\n", 2);
	clitest_start(&a, r->tmp, r, p, env, args);
	before = record_time(r) - now_real();
	cr_expect_lt(llabs(before), LW_SEC(2), "the holder's clock is off before the step");
	clitest_sleep_ms(1500);
	snprintf(text, sizeof(text), "%d\n", step);
	clitest_write(path_in(r, "wallclock"), text, strlen(text));

	/* past the deadline the lock had at the step, with two refreshes */
	clitest_sleep_ms(3000);
	after = record_time(r) - now_real();
	/* another holder, on this host's clock, sees a live lock */
	cr_expect_eq(clitest_run(&b, r->tmp, r, p, other), 11, "the lock was taken");
	err = clitest_read(a.err);
	cr_expect(!strstr(err, "lost"), "%s", err);

	r->be->stall(r, a.pid);
	stalled = clitest_now();
	cr_expect(clitest_wait_text(a.err, "SIGTERM sent to the job", 10000),
		  "the job was not stopped");
	termed = clitest_now();
	r->be->repair(r, a.pid);
	clitest_let_job_end(r->tmp);
	cr_expect_eq(clitest_wait(&a, 10000), 12);
	latency = clitest_loss_latency(&a);
	cr_log_info("%s/%s: clock %+d s: records moved by %lld s; lost %lld ms after the stall, "
		    "%lld us after the deadline; holder said: %s", r->be->name,
		    lw_engine_name(p->engine), step, (long long)(after / LW_NSEC_PER_SEC),
		    (long long)(termed - stalled) / 1000000, (long long)latency / 1000, err);
	/* the last refresh started at most 2.5 s before the deadline (cf.
	 * test-cli lost_by_deadline) */
	cr_expect_lt(termed - stalled, LW_MSEC(2500 + CLITEST_LOSS_BOUND_MS + 200),
		     "lost %lld ms after the stall", (long long)(termed - stalled) / 1000000);
	cr_expect(latency >= 0 && latency < LW_MSEC(CLITEST_LOSS_BOUND_MS),
		  "deadline to SIGTERM: %lld ns", (long long)latency);
	cr_expect_eq(clitest_count_locks(r), 0, "files left in locks/");
	*errp = err;
	return after;
}

/* Forward: the records look an hour younger; the deadline does not move. */
CLITEST(cli_faults, wall_clock_forward, 60)
{
	char *err;
	int64_t moved = hold_through_step(r, p, 3600, &err);

	cr_expect_str_eq(err, "", "nothing to say");
	free(err);
	cr_expect_gt(moved, LW_SEC(3600 - 60), "records moved by %lld s",
		     (long long)(moved / LW_NSEC_PER_SEC));
	cr_expect_lt(moved, LW_SEC(3600 + 60));
}

/* Back: the records keep the clock they had (they would look an hour old,
 * and stale, to everyone else); the holder says why; the deadline does not
 * move. */
CLITEST(cli_faults, wall_clock_back, 60)
{
	char *err;
	int64_t moved = hold_through_step(r, p, -3600, &err);

	cr_expect_lt(llabs(moved), LW_SEC(10), "records moved by %lld s",
		     (long long)(moved / LW_NSEC_PER_SEC));
	cr_expect(strstr(err, "the wall clock went back by 1h0m"), "%s", err);
	cr_expect_eq(clitest_lines(err), 1, "said once: %s", err);
	free(err);
}
