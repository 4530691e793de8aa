/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Recovery after a suspend (lw_repo_set_suspend_recovery): when a deadline
 * passes only because the machine slept, the work is held, the lock is
 * checked and replaced with the double check, and the context resumes; a
 * lock that was removed, or met a conflicting one, ends instead.  Lock
 * files only: etcd's recovery is a keepalive of the lease (test-etcd.c).
 *
 * A suspend cannot be had in a test: refreshes are made to fail (a write
 * error on a local repository, 500s from nginx) while the clocks are made
 * to look as if the machine had slept (lw__clock_simulate_suspend).
 */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "testing.h"
#include "lwtest.h"
#include "nginx.h"

#define REFRESH LW_SEC(1)
#define STALE LW_SEC(4) /* deadline 2.5 s after each write */

static struct lwt t;
static atomic_bool blocked;

/* local: refresh writes fail while blocked */
static int fault(const struct lw__fop *op, void *userdata)
{
	if (atomic_load(&blocked) && op->type == LW__FOP_OPENAT && op->path &&
	    strstr(op->path, "/.tmp-"))
		return -EIO;
	return 0;
}

static void block(bool on)
{
	atomic_store(&blocked, on);
	if (t.ng)
		lwt_nginx_fault(t.ng, "fail500", on);
}

struct seen {
	atomic_int held, resumed, refreshed, lost;
};

static void on_event(struct lw_lock *lock, const struct lw_event *ev, void *userdata)
{
	struct seen *s = userdata;

	switch (ev->type) {
	case LW_EVENT_HELD:
		/* the machine is awake again: the server answers */
		block(false);
		atomic_fetch_add(&s->held, 1);
		break;
	case LW_EVENT_RESUMED:
		atomic_fetch_add(&s->resumed, 1);
		break;
	case LW_EVENT_REFRESHED:
		atomic_fetch_add(&s->refreshed, 1);
		break;
	case LW_EVENT_LOST:
		atomic_fetch_add(&s->lost, 1);
		break;
	default:
		break;
	}
}

static struct lw_lock *start(const struct lwt_param *p, struct seen *s, bool recovery)
{
	struct lw_lock *lock;

	lw__fault_set(fault, NULL);
	lwt_start(&t, p, NULL, REFRESH, STALE);
	cr_assert_eq(lw_repo_set_suspend_recovery(t.repo, recovery), 0);
	cr_assert_eq(lw_lock_new(t.repo, LW_LOCK_EXCLUSIVE, "suspend test", &lock), 0);
	cr_assert_eq(lw_lock_set_event_fn(lock, on_event, s), 0);
	cr_assert_eq(lw_lock_acquire(lock), 0, "%s", lw_errmsg());
	return lock;
}

static void stop(struct lw_lock *lock)
{
	lw_lock_free(lock);
	/* on the disk: the folder nginx serves is the test's (lwt_count) */
	cr_expect(lwt_wait_for(lwt_count(&t) == 0, 3000), "no lock file left: %d in %s/locks",
		  lwt_count(&t), t.dir);
	lwt_stop(&t);
	lw__fault_set(NULL, NULL);
}

/* Asleep past the deadline, nothing changed meanwhile: the work is held,
 * the lock replaced, and the context goes on. */
LWT_FAULTS_TEST(suspend, recovers, .timeout = 30)
{
	struct seen s = { 0 };
	struct lw_lock *lock = start(p, &s, true);
	struct lw_ctx *ctx = lw_lock_ctx(lock);
	char before[65], after[65];

	cr_assert_eq(lw_lock_id(lock, before), 0);
	block(true);
	lw__clock_simulate_suspend(LW_SEC(2));
	cr_assert(lwt_wait_for(atomic_load(&s.held) == 1, 4000), "the work was held");
	cr_assert(lwt_wait_for(atomic_load(&s.resumed) == 1, 4000), "and resumed: %s",
		  lw_ctx_done(ctx) ? lw_ctx_cause(ctx) : "still held");
	cr_expect_eq(lw_ctx_wait(ctx, 0), LW_CAUSE_NONE);
	cr_expect(!lw_ctx_held(ctx));
	cr_expect(!lw_ctx_done(ctx));
	cr_assert_eq(lw_lock_id(lock, after), 0);
	cr_expect_str_neq(before, after, "the lock file was replaced");
	cr_expect(lwt_wait_for(!lwt_exists(&t, before), 2000), "the old file is gone");
	cr_expect_gt(lw_lock_deadline(lock), lw__now_boot());
	/* and it lives on */
	s.refreshed = 0;
	usleep(2500 * 1000);
	cr_expect(!lw_ctx_done(ctx), "%s", lw_ctx_done(ctx) ? lw_ctx_cause(ctx) : "");
	cr_expect_geq(atomic_load(&s.refreshed), 1);
	cr_expect_eq(atomic_load(&s.lost), 0);
	stop(lock);
}

/* Someone removed the lock while the holder slept: it ends, REMOVED. */
LWT_FAULTS_TEST(suspend, removed_while_asleep, .timeout = 30)
{
	struct seen s = { 0 };
	struct lw_lock *lock = start(p, &s, true);
	struct lw_ctx *ctx = lw_lock_ctx(lock);
	char id[65], path[PATH_MAX + 80];

	/* removed before the deadline can come: refreshes fail before they
	 * could notice, and the recovery finds it gone (removed after the
	 * deadline, the recovery may have listed it already) */
	block(true);
	cr_assert_eq(lw_lock_id(lock, id), 0);
	snprintf(path, sizeof(path), "%s/locks/%s", t.dir, id);
	cr_assert_eq(unlink(path), 0);
	if (p->backend == LWT_BE_LOCAL) {
		/* a local locks/ is watched: the removal ends the lock at
		 * once, before any sleep */
		cr_assert(lwt_wait_for(lw_ctx_done(ctx), 1000), "the watch did not see it");
		lw__clock_simulate_suspend(LW_SEC(2));
		cr_expect_eq(atomic_load(&s.held), 0);
	} else {
		lw__clock_simulate_suspend(LW_SEC(2));
		cr_assert(lwt_wait_for(lw_ctx_done(ctx), 5000));
		cr_expect_eq(atomic_load(&s.held), 1);
		cr_expect(strstr(lw_ctx_cause(ctx), "slept"), "%s", lw_ctx_cause(ctx));
	}
	cr_expect_eq(atomic_load(&s.resumed), 0);
	cr_expect_eq(lw_ctx_err(ctx), LW_CAUSE_REMOVED, "%s", lw_ctx_cause(ctx));
	cr_expect_eq(lw_ctx_wait(ctx, 0), LW_CAUSE_REMOVED);
	stop(lock);
}

/* Another holder took a conflicting lock while this one slept: it ends. */
LWT_FAULTS_TEST(suspend, conflict_while_asleep, .timeout = 30)
{
	struct lw__record rec = lwt_record(true);
	struct seen s = { 0 };
	struct lw_lock *lock = start(p, &s, true);
	struct lw_ctx *ctx = lw_lock_ctx(lock);
	char other[65];

	/* planted before the deadline can come, as above */
	block(true);
	lwt_plant(&t, &rec, other);
	lw__clock_simulate_suspend(LW_SEC(2));
	cr_assert(lwt_wait_for(lw_ctx_done(ctx), 5000));
	cr_expect_eq(atomic_load(&s.held), 1);
	cr_expect_eq(lw_ctx_err(ctx), LW_CAUSE_DEADLINE, "%s", lw_ctx_cause(ctx));
	cr_expect(strstr(lw_ctx_cause(ctx), "alice@otherhost"), "%s", lw_ctx_cause(ctx));
	cr_expect(lwt_wait_for(lwt_count(&t) == 1, 3000), "ours are gone, theirs stays");
	cr_expect(lwt_exists(&t, other));
	lw_lock_free(lock);
	lwt_stop(&t);
	lw__fault_set(NULL, NULL);
}

/* Refreshes failed but nobody slept: the deadline is final. */
LWT_FAULTS_TEST(suspend, no_sleep_no_recovery, .timeout = 30)
{
	struct seen s = { 0 };
	struct lw_lock *lock = start(p, &s, true);
	struct lw_ctx *ctx = lw_lock_ctx(lock);

	block(true);
	cr_assert(lwt_wait_for(lw_ctx_done(ctx), 5000));
	cr_expect_eq(atomic_load(&s.held), 0);
	cr_expect_eq(lw_ctx_err(ctx), LW_CAUSE_DEADLINE);
	block(false);
	stop(lock);
}

/* Off by default: a suspend past the deadline ends the context. */
LWT_FAULTS_TEST(suspend, off_by_default, .timeout = 30)
{
	struct seen s = { 0 };
	struct lw_lock *lock = start(p, &s, false);
	struct lw_ctx *ctx = lw_lock_ctx(lock);

	block(true);
	lw__clock_simulate_suspend(LW_SEC(2));
	cr_assert(lwt_wait_for(lw_ctx_done(ctx), 5000));
	cr_expect_eq(atomic_load(&s.held), 0);
	cr_expect_eq(lw_ctx_err(ctx), LW_CAUSE_DEADLINE);
	block(false);
	stop(lock);
}
