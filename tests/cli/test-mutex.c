/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Mutual exclusion under load, as a user sees it: many processes take
 * turns through `lockwatch run --retry-lock` on one repository, local and
 * dav:, half of them on each engine.
 *
 * Writers (--exclusive) do a read-modify-write increment of a counter kept
 * in the repository, a plain file next to locks/, with a pause between the
 * read and the write: two writers at once lose an update.  Readers (shared
 * locks) read it.  Every job notes its [start, end] from inside the lock.
 * The counter ends at exactly the number of writer runs, and no writer's
 * interval overlaps any other interval.
 *
 * Sizing (measured on the 2-core machine, lockwatch(1) defaults apart from
 * the retry backoff): one run takes about 260 ms from start to release, of
 * which 200 ms is the recheck delay of acquire, so 400 increments need at
 * least 104 s however they are scheduled.  With restic's retry backoff (5 s
 * doubling to 60 s) 20 x 20 increments had done 380 after 300 s: waiters
 * sleep while the lock is free.  LOCKWATCH_RETRY_BACKOFF=100ms (doubling
 * to 1.2 s) brings it to 104 s.
 */
#include "config.h"

#include "test.h"
#include <criterion/parameterized.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clitest.h"
#include "runenv.h"

#ifndef LOCKWATCH_BIN
#error "LOCKWATCH_BIN must name the built lockwatch"
#endif

#define BACKOFF "100ms"

/* A worker runs its jobs one after the other, each under its own
 * `lockwatch run`, and exits with the number of runs that failed.  The
 * timing is short, so that stale judgments are in play; a run holds its
 * lock for about 60 ms, far from its 2.5 s deadline.  $1:
 * lockwatch, $2: URL, $3: engine, $4: runs, $5: --exclusive or --shared
 * (not an option: dropped), $6: the job, $7: its interval file. */
static const char worker_script[] =
	"fails=0; i=0\n"
	"mode=$5; [ \"$mode\" = --shared ] && mode=\n"
	"while [ $i -lt $4 ]; do\n"
	"  \"$1\" -r \"$2\" --engine \"$3\" run $mode --retry-lock 5m"
	"    --refresh-interval 1s --stale-timeout 4s -- sh -c \"$6\" job \"$7\""
	"    || { echo \"run $i: exit $?\" >&2; fails=$((fails + 1)); }\n"
	"  i=$((i + 1))\n"
	"done\n"
	"exit $fails\n";

/* The read-modify-write, with a window for a second writer to slip in. */
static const char writer_job[] =
	"s=$(date +%s%N); read n < \"$COUNTER\"; sleep 0.01; "
	"echo $((n + 1)) > \"$COUNTER\"; echo \"W $s $(date +%s%N)\" >> \"$1\"";
static const char reader_job[] =
	"s=$(date +%s%N); read n < \"$COUNTER\"; sleep 0.05; "
	"echo \"R $s $(date +%s%N)\" >> \"$1\"";

struct interval {
	bool exclusive;
	long long start, end; /* CLOCK_REALTIME ns, from inside the job */
};

static pid_t start_worker(const struct repo *r, int i, bool writer, int runs)
{
	char counter[600], out[600], err[600], nruns[16];
	enum lw_engine e = i % 2 ? LW_ENGINE_EPOLL : LW_ENGINE_URING;
	const char *engine = lw_engine_name(lwt_engine_wanted(e) ? e : LW_ENGINE_EPOLL);
	pid_t pid;

	snprintf(counter, sizeof(counter), "%s/counter", r->dir);
	snprintf(out, sizeof(out), "%s/intervals.%d", r->tmp, i);
	snprintf(err, sizeof(err), "%s/worker.%d", r->tmp, i);
	snprintf(nruns, sizeof(nruns), "%d", runs);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		FILE *f = freopen(err, "w", stderr);

		(void)f;
		setenv("COUNTER", counter, 1);
		setenv("LOCKWATCH_RETRY_BACKOFF", BACKOFF, 1);
		execl("/bin/sh", "sh", "-c", worker_script, "worker", LOCKWATCH_BIN, r->url,
		      engine, nruns, writer ? "--exclusive" : "--shared",
		      writer ? writer_job : reader_job, out, (char *)NULL);
		_exit(127);
	}
	return pid;
}

/* Reads every worker's intervals into IV (at most MAX); returns how many. */
static size_t read_intervals(const struct repo *r, int nworkers, struct interval *iv,
			     size_t max)
{
	size_t n = 0;

	for (int i = 0; i < nworkers; i++) {
		char path[600], kind;
		long long s, e;
		FILE *f;

		snprintf(path, sizeof(path), "%s/intervals.%d", r->tmp, i);
		f = fopen(path, "r");
		cr_assert_not_null(f, "worker %d noted nothing", i);
		while (n < max && fscanf(f, " %c %lld %lld", &kind, &s, &e) == 3) {
			cr_expect_leq(s, e);
			iv[n++] = (struct interval){ kind == 'W', s, e };
		}
		fclose(f);
	}
	return n;
}

static void show_worker_errors(const struct repo *r, int i)
{
	char path[600], *err;

	snprintf(path, sizeof(path), "%s/worker.%d", r->tmp, i);
	err = clitest_read(path);
	if (*err)
		cr_log_error("worker %d:\n%s", i, err);
	free(err);
}

/*
 * WRITERS and READERS processes each do RUNS jobs at once on R; checks
 * the counter, the intervals and that nothing is left in locks/.
 */
static void take_turns(const struct repo *r, int writers, int readers, int runs,
		       int timeout_s)
{
	int nworkers = writers + readers, failed = 0, overlaps = 0, violations = 0;
	size_t max = (size_t)nworkers * runs, n, nw = 0;
	struct interval *iv = calloc(max, sizeof(*iv));
	pid_t *pids = calloc((size_t)nworkers, sizeof(*pids));
	char counter[600], *count;
	int64_t t0 = clitest_now(), until = t0 + LW_SEC(timeout_s);

	cr_assert(iv && pids);
	if (lwt_engine_wanted(LW_ENGINE_URING))
		lwt_engine_case(LW_ENGINE_URING);
	snprintf(counter, sizeof(counter), "%s/counter", r->dir);
	clitest_write(counter, "0\n", 2);
	/* workers alternate the engines: writers and readers use both */
	for (int i = 0; i < nworkers; i++)
		pids[i] = start_worker(r, i, i < writers, runs);
	for (int i = 0; i < nworkers; i++) {
		int st;

		while (waitpid(pids[i], &st, WNOHANG) == 0) {
			if (clitest_now() > until) {
				for (int k = i; k < nworkers; k++)
					kill(pids[k], SIGKILL);
				cr_assert_fail("still running after %d s", timeout_s);
			}
			clitest_sleep_ms(50);
		}
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			failed++;
			show_worker_errors(r, i);
		}
	}
	cr_log_info("%s: %d writers and %d readers x %d runs: %.1f s", r->be->name, writers,
		    readers, runs, (double)(clitest_now() - t0) / 1e9);
	cr_expect_eq(failed, 0, "%d workers had runs that failed", failed);

	count = clitest_read(counter);
	cr_expect_eq(atoll(count), (long long)writers * runs, "the counter is %s", count);
	free(count);

	n = read_intervals(r, nworkers, iv, max);
	cr_expect_eq(n, max, "%zu of %zu jobs noted their interval", n, max);
	for (size_t a = 0; a < n; a++) {
		nw += iv[a].exclusive;
		for (size_t b = a + 1; b < n; b++) {
			bool overlap = iv[a].start < iv[b].end && iv[b].start < iv[a].end;

			if (overlap && (iv[a].exclusive || iv[b].exclusive)) {
				if (violations++ < 10)
					cr_log_error("%s [%lld, %lld] overlaps %s [%lld, %lld]",
						     iv[a].exclusive ? "exclusive" : "shared",
						     iv[a].start, iv[a].end,
						     iv[b].exclusive ? "exclusive" : "shared",
						     iv[b].start, iv[b].end);
			} else {
				overlaps += overlap;
			}
		}
	}
	cr_expect_eq(violations, 0, "%d pairs of intervals overlapped an exclusive one",
		     violations);
	cr_expect_eq(nw, (size_t)writers * runs);
	/* shared holders do hold at once (a lock that excluded them would
	 * pass the checks above too) */
	if (readers > 1)
		cr_log_info("%s: %d pairs of shared intervals overlapped", r->be->name, overlaps);
	cr_expect_eq(clitest_count_locks(r), 0, "files left in locks/");
	free(iv);
	free(pids);
}

/* One case per backend; the workers alternate the engines themselves. */
static struct criterion_test_params backends(void)
{
	static struct cli_param params[] = { { 0, LW_ENGINE_AUTO }, { 1, LW_ENGINE_AUTO } };

	return cr_make_param_array(struct cli_param, params, 2);
}

/* A test of WRITERS exclusive and READERS shared holders, RUNS turns each,
 * on every backend. */
#define MUTEX_TEST(name, writers, readers, runs)                              \
	ParameterizedTestParameters(mutex, name)                              \
	{                                                                     \
		return backends();                                            \
	}                                                                     \
	ParameterizedTest(struct cli_param *p, mutex, name, .timeout = 600)   \
	{                                                                     \
		struct repo r;                                                \
		clitest_repo(&r, p);                                          \
		take_turns(&r, writers, readers, runs, 550);                  \
		clitest_repo_free(&r);                                        \
	}

/*
 * Shared locks are held at the same time: SHARED `lockwatch run` jobs
 * (shared: the default) each note that they are in, then wait until all
 * are, at most BARRIER_S.  The barrier completes only if every lock is held at once: a
 * "shared" lock that excluded the others would pass the tests above (and
 * the readers' overlaps they log), not this one.  $1: the barrier folder,
 * $2: the job's number, $3: how many, $4: BARRIER_S.
 */
#define SHARED 5
#define BARRIER_S "10"
static const char barrier_job[] =
	"touch \"$1/in.$2\"; end=$(($(date +%s) + $4))\n"
	"while [ $(ls \"$1\" | grep -c '^in\\.') -lt \"$3\" ]; do\n"
	"  [ $(date +%s) -lt $end ] || exit 3; sleep 0.01\n"
	"done\n"
	"touch \"$1/all.$2\"\n";

CLITEST(mutex, shared_held_at_once, 60)
{
	struct proc pr[SHARED];
	char barrier[600], idx[SHARED][8], marker[700], n[8];

	snprintf(barrier, sizeof(barrier), "%s/barrier", r->tmp);
	cr_assert_eq(mkdir(barrier, 0700), 0);
	snprintf(n, sizeof(n), "%d", SHARED);
	for (int i = 0; i < SHARED; i++) {
		const char *args[] = { "run", "--retry-lock", "30s", "--", "sh", "-c",
				       barrier_job, "job", barrier, idx[i], n, BARRIER_S,
				       NULL };

		snprintf(idx[i], sizeof(idx[i]), "%d", i);
		clitest_start(&pr[i], r->tmp, r, p, NULL, args);
	}
	for (int i = 0; i < SHARED; i++) {
		int st = clitest_wait(&pr[i], 50000);
		char *err = clitest_read(pr[i].err);

		cr_expect_eq(st, 0, "job %d: exit %d (3: the others never held at once): %s", i,
			     st, err);
		free(err);
		snprintf(marker, sizeof(marker), "%s/all.%d", barrier, i);
		cr_expect_eq(access(marker, F_OK), 0, "job %d never saw all %d in", i, SHARED);
	}
	cr_expect_eq(clitest_count_locks(r), 0, "files left in locks/");
}

MUTEX_TEST(counter, 20, 0, 20)
MUTEX_TEST(shared_and_exclusive, 10, 10, 10)
