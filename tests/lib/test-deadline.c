/* SPDX-License-Identifier: BSD-2-Clause */
/* The strict deadline: when refreshes cannot succeed, the context ends at
 * the deadline, within milliseconds, whatever the file operation in flight
 * is doing; and the lock file does not outlive the lock. */
#include "config.h"

#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "testing.h"
#include "lwtest.h"

/* Generous for a loaded 2-core machine running tests in parallel under
 * sanitizers; typical values are below a millisecond (the tests log what
 * they measured).  A deadline that waited for the failing or hung
 * operation would be late by hundreds of milliseconds or more. */
#define LATENCY_BOUND LW_MSEC(50)

enum { PASS, FAIL_WRITES, HANG_WRITES };
static atomic_int mode;

/* Refreshes write a temporary file first: fail or hang exactly those. */
static int fault(const struct lw__fop *op, void *userdata)
{
	if (op->type != LW__FOP_OPENAT || !op->path || !strstr(op->path, "/.tmp-"))
		return 0;
	switch (atomic_load(&mode)) {
	case FAIL_WRITES:
		return -EIO;
	case HANG_WRITES:
		return LW__FAULT_HANG;
	}
	return 0;
}

static void setup(void)
{
	atomic_store(&mode, PASS);
	lw__fault_set(fault, NULL);
}

static void teardown(void)
{
	lw__fault_set(NULL, NULL);
	lw__fault_release();
}

struct events {
	atomic_int failed;
};

static void count(struct lw_lock *lock, const struct lw_event *ev, void *userdata)
{
	struct events *e = userdata;

	if (ev->type == LW_EVENT_REFRESH_FAILED)
		atomic_fetch_add(&e->failed, 1);
}

/* Waits for LOCK's context to end; returns how late after DEADLINE its
 * eventfd woke a waiting thread. */
static int64_t latency(const struct lwt *t, struct lw_lock *lock, int64_t deadline)
{
	int64_t woke = lwt_wait_fd(lw_ctx_fd(lw_lock_ctx(lock)),
				   (int)((deadline - lw__now_boot()) / LW_MSEC(1)) + 3000);

	cr_assert_neq(woke, 0, "the context ended");
	cr_log_info("%s: woken %lld us after the deadline", lw_engine_name(lw_loop_engine(t->loop)),
		    (long long)((woke - deadline) / 1000));
	return woke - deadline;
}

/* Refreshes fail (a write error on every attempt): they are retried, and
 * the context ends at the deadline with the cause. */
LWT_ENGINE_TEST(deadline, refreshes_fail, .init = setup, .fini = teardown, .timeout = 30)
{
	struct events ev = { 0 };
	struct lw_lock *lock;
	struct lwt t;
	int64_t deadline, late;

	lwt_start(&t, p, NULL, LW_SEC(1), LW_SEC(3));
	cr_assert_eq(lw_lock_new(t.repo, LW_LOCK_EXCLUSIVE, NULL, &lock), 0);
	cr_assert_eq(lw_lock_set_event_fn(lock, count, &ev), 0);
	cr_assert_eq(lw_lock_acquire(lock), 0, "%s", lw_errmsg());
	atomic_store(&mode, FAIL_WRITES);
	deadline = lw_lock_deadline(lock);
	late = latency(&t, lock, deadline);
	cr_expect_geq(late, 0, "never before the deadline (%lld ns)", (long long)late);
	cr_expect_lt(late, LATENCY_BOUND, "cancelled %lld us after the deadline",
		     (long long)(late / 1000));
	cr_expect_eq(lw_ctx_err(lw_lock_ctx(lock)), LW_CAUSE_DEADLINE);
	cr_expect(strstr(lw_ctx_cause(lw_lock_ctx(lock)), "lock refresh deadline exceeded"),
		  "%s", lw_ctx_cause(lw_lock_ctx(lock)));
	cr_expect_geq(atomic_load(&ev.failed), 2, "failed refreshes were retried");
	cr_expect(lwt_wait_for(lwt_count(&t) == 0, 2000), "the lock file was deleted");
	lw_lock_free(lock);
	lwt_stop(&t);
}

/* A refresh write hangs (an injected hang: on io_uring an SQE that never
 * completes by itself, on epoll a worker thread stuck in read(2)): the
 * deadline is not delayed by it. */
LWT_ENGINE_TEST(deadline, hung_write, .init = setup, .fini = teardown, .timeout = 30)
{
	struct lw_lock *lock;
	struct lwt t;
	int64_t deadline, late;

	lwt_start(&t, p, NULL, LW_SEC(1), LW_SEC(3));
	lock = lwt_lock(t.repo, LW_LOCK_EXCLUSIVE, 0);
	atomic_store(&mode, HANG_WRITES);
	deadline = lw_lock_deadline(lock);
	late = latency(&t, lock, deadline);
	cr_expect_geq(late, 0);
	cr_expect_lt(late, LATENCY_BOUND, "cancelled %lld us after the deadline",
		     (long long)(late / 1000));
	cr_expect_eq(lw_ctx_err(lw_lock_ctx(lock)), LW_CAUSE_DEADLINE);
	cr_expect(strstr(lw_ctx_cause(lw_lock_ctx(lock)), "got no answer for"), "%s",
		  lw_ctx_cause(lw_lock_ctx(lock)));
	/* once the filesystem answers again, nothing is left behind */
	lw__fault_release();
	cr_expect(lwt_wait_for(lwt_count(&t) == 0, 3000), "the lock file was deleted");
	lw_lock_free(lock);
	lwt_stop(&t);
}

struct acquired {
	atomic_int n;
	atomic_int failed;
};

static void on_acquired(struct lw_lock *lock, int err, const char *msg, void *userdata)
{
	struct acquired *a = userdata;

	if (err)
		atomic_fetch_add(&a->failed, 1);
	atomic_fetch_add(&a->n, 1);
}

/* Many locks, all failing: each one is cancelled at its own deadline. */
LWT_ENGINE_TEST(deadline, many_locks, .init = setup, .fini = teardown, .timeout = 60)
{
	enum { N = 500 };
	struct acquired got = { 0 };
	struct lw_lock *locks[N];
	int64_t deadlines[N], worst = 0, sum = 0;
	struct lwt t;

	/* tmpfs: this is about deadlines, not about fsync throughput */
	lwt_start(&t, p, "/dev/shm", LW_SEC(2), LW_SEC(6));
	for (int i = 0; i < N; i++) {
		cr_assert_eq(lw_lock_new(t.repo, 0, NULL, &locks[i]), 0);
		cr_assert_eq(lw_lock_acquire_async(locks[i], on_acquired, &got), 0);
	}
	cr_assert(lwt_wait_for(atomic_load(&got.n) == N, 20000));
	cr_assert_eq(atomic_load(&got.failed), 0);
	atomic_store(&mode, FAIL_WRITES);
	/* a refresh that opened its file before the switch may still land */
	usleep(300 * 1000);
	for (int i = 0; i < N; i++)
		deadlines[i] = lw_lock_deadline(locks[i]);
	for (int i = 0; i < N; i++) {
		struct lw_ctx *ctx = lw_lock_ctx(locks[i]);
		int64_t late;

		cr_assert(lwt_wait_for(lw_ctx_done(ctx), 10000));
		late = lw__ctx_done_at(ctx) - deadlines[i];
		cr_expect_geq(late, 0);
		cr_expect_eq(lw_ctx_err(ctx), LW_CAUSE_DEADLINE);
		worst = LW_MAX(worst, late);
		sum += late;
	}
	cr_log_info("%s: %d locks: mean %lld us, worst %lld us after the deadline",
		    lw_engine_name(p->engine), N, (long long)(sum / N / 1000),
		    (long long)(worst / 1000));
	cr_expect_lt(worst, LATENCY_BOUND, "%d locks: mean %lld us, worst %lld us after "
		     "the deadline", N, (long long)(sum / N / 1000), (long long)(worst / 1000));
	cr_expect(lwt_wait_for(lwt_count(&t) == 0, 5000));
	for (int i = 0; i < N; i++)
		lw_lock_free(locks[i]);
	lwt_stop(&t);
}

/* A lock with a far deadline is held; then one with a near deadline is
 * taken on the same loop.  The loop was waiting for the far instant: the
 * near one must re-arm it (the eventfd path of the io_uring engine). */
LWT_ENGINE_TEST(deadline, earlier_deadline_rearms, .init = setup, .fini = teardown,
		.timeout = 30)
{
	struct lw_lock *far, *near;
	struct lw_repo *repo;
	struct lwt t;
	int64_t deadline, late;

	lwt_start(&t, p, NULL, LW_SEC(20), LW_SEC(60));
	far = lwt_lock(t.repo, 0, 0);
	cr_assert_eq(lw_repo_new(t.loop, t.url, &repo), 0);
	cr_assert_eq(lw_repo_set_timing(repo, LW_SEC(1), LW_SEC(3)), 0);
	usleep(100 * 1000); /* the loop now sleeps until far's refresh */
	near = lwt_lock(repo, 0, 0);
	atomic_store(&mode, FAIL_WRITES);
	deadline = lw_lock_deadline(near);
	cr_expect_lt(deadline, lw_lock_deadline(far));
	late = latency(&t, near, deadline);
	cr_expect_geq(late, 0);
	cr_expect_lt(late, LATENCY_BOUND, "cancelled %lld us after the deadline",
		     (long long)(late / 1000));
	cr_expect(!lw_ctx_done(lw_lock_ctx(far)), "the far lock is untouched");
	lw_lock_free(near);
	lw_lock_free(far);
	lw_repo_unref(repo);
	lwt_stop(&t);
}
