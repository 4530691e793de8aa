/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Acquire, as restic does it: list -> check conflicts -> create our lock
 * file -> wait recheck_delay -> list -> check again.  Two holders that
 * create at the same moment both see each other at the second check and both
 * back off; a holder that created after our check sees us at its own.
 *
 * A listing that fails is retried after check_retry, then twice as long,
 * then four times.  A locked repository is retried for retry_lock with
 * restic's backoff (5 s doubling to 60 s, one last try at the end; tests
 * shorten the first wait, and the cap scales with it).
 *
 * Stale locks are removed, and looked past only once they are gone: a stale
 * lock whose removal failed still blocks.  That is what makes recovery
 * after a suspend sound (lw__acquire_recover, the same steps run in place
 * for a held lock): while a holder slept, anyone who took a conflicting
 * lock removed its file first.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lock/lock-internal.h"

#define CHECK_ATTEMPTS 3
/* Creates in flight per repository; the other acquires wait in line with
 * nothing allocated, their request built when their turn comes.  Built at
 * once, 100,000 acquires' requests (about 850 bytes each on a local
 * repository: the request, its record and two paths) waited in the
 * backend, which works 64 at a time, and malloc kept their pages after
 * they were freed.  At 100,000 acquires, 256 in flight created slower
 * (14,000-23,000 a second in 6 runs, against 22,000-25,000 in 2), and
 * 4,096 kept 100-160 bytes a lock more (2 runs).  A lock recovering after
 * a suspend does not wait. */
#define CREATES_AT_ONCE 1024
/* restic's 5 s doubling to 60 s, for any first wait */
#define BACKOFF_GROWTH 12

static void create(struct lw_lock *lock);

static void fail(struct lw_lock *lock, int err, const char *msg)
{
	if (lock->recovering) {
		lw__lock_end(lock, 0, err == -LW_ELOST ? LW_CAUSE_REMOVED : LW_CAUSE_DEADLINE,
			     "lock refresh deadline exceeded while the machine slept, "
			     "and the lock could not be kept: %s", msg);
		return;
	}
	lw__dbg(&lock->loop->log, "acquire failed: %s", msg);
	lw__lock_end(lock, err, LW_CAUSE_CANCELLED, "%s", msg);
}

/* The repository is locked by someone: wait and try again while retry_lock
 * lasts, else give up naming the holder. */
static void locked(struct lw_lock *lock, const char *holder)
{
	char msg[700];
	int64_t now = lw__now_boot(), wait;

	snprintf(msg, sizeof(msg), "repository %s is locked by %s",
		 lock->repo->url.display, holder);
	if (!lock->give_up_at || now >= lock->give_up_at || lock->recovering) {
		fail(lock, -LW_ELOCKED, msg);
		return;
	}
	wait = LW_MIN(lw__backoff_jitter(lock->backoff), lock->give_up_at - now);
	lock->backoff = LW_MIN(2 * lock->backoff,
			       BACKOFF_GROWTH * lock->own.timing->retry_backoff);
	lw__lock_phase(lock, LW__PH_BACKOFF);
	lw__timer_start(lock->loop->engine, &lock->step_timer, now + wait);
	lw__lock_emit(lock, LW_EVENT_RETRY, -LW_ELOCKED, now + wait, lock->give_up_at,
		      "%s", msg);
}

static void on_undone(struct lw__breq *req)
{
	struct lw_lock *lock = req->userdata;

	lock->req = NULL;
	if (req->res == 0 || req->res == -ENOENT) {
		lw__listing_forget(lock->repo, &lock->id);
		lock->has_id = false;
	}
	lw__breq_free(req);
	/* a file we could not remove stays doomed: it goes when we end */
	if (lock->has_id) {
		fail(lock, -LW_ELOCKED, lock->last_error);
		return;
	}
	locked(lock, lock->last_error);
}

/* Someone else created a conflicting lock while ours was being written:
 * remove ours before waiting or giving up. */
static void undo(struct lw_lock *lock, const struct lw__entry *holder)
{
	char desc[600];

	free(lock->last_error);
	lock->last_error = strdup(lw__entry_describe(holder, desc, sizeof(desc)));
	lw__lock_phase(lock, LW__PH_UNDO);
	if (!lock->last_error ||
	    !lw__lock_request(lock, LW__BOP_REMOVE, &lock->id, NULL, 0,
			      lw__add_sat(lw__now_boot(), lock->own.timing->op_timeout), on_undone))
		fail(lock, -ENOMEM, "out of memory");
}

static void confirmed(struct lw_lock *lock)
{
	int64_t deadline = lw__add_sat(lock->own.created_at, lw__refreshability(lock->own.timing));
	lw_lock_fn fn = lock->acquire_fn;
	char hex[LW_ID_HEX + 1];

	if (lock->recovering) {
		lock->recovering = false;
		lw__refresh_resume(lock);
		return;
	}
	if (lw__now_boot() >= deadline) {
		fail(lock, -LW_EBACKEND, "the lock could not be confirmed before its deadline");
		return;
	}
	lw__lock_go(lock, LW__LOCK_HELD, (enum lw__phase)lock->phase);
	atomic_store(&lock->fencing_token, lock->token);
	lw__refresh_begin(lock);
	lw__id_hex(&lock->id, hex);
	lw__info(&lock->loop->log, "acquired %s lock %.12s on %s",
		 lock->own.exclusive ? "exclusive" : "shared", hex, lock->repo->url.display);
	lock->acquire_fn = NULL;
	lw__lock_ref(lock);
	lw__lock_emit(lock, LW_EVENT_ACQUIRED, 0, deadline, 0, "acquired lock %.12s", hex);
	if (!lock->app_gone)
		fn(lock, 0, NULL, lock->acquire_data);
	lw__lock_unref(lock);
}

static void on_listing(struct lw__list_waiter *w, int err, const char *msg)
{
	struct lw_lock *lock = LW_CONTAINER_OF(w, struct lw_lock, waiter);
	const struct lw__entry *holder, *stale;
	const struct lw__id *mine[LW__LOCK_FILES];
	char desc[600];

	if (err) {
		/* a restic repository without its password: waiting brings none */
		if (err == -ENOKEY || err == -EACCES) {
			fail(lock, err, msg);
			return;
		}
		/* a repository that does not exist, or whose locks/ is a
		 * symlink or a file, stays so: no retry */
		if (lock->attempt >= CHECK_ATTEMPTS || err == -ENOTDIR || err == -ENOENT) {
			fail(lock, err == -ENOMEM ? err : -LW_EBACKEND, msg);
			return;
		}
		lw__warn(&lock->loop->log, "%s; retrying", msg);
		lw__timer_start(lock->loop->engine, &lock->step_timer,
				lw__now_boot() +
					lw__backoff_jitter(lock->own.timing->check_retry << lock->attempt));
		lock->attempt++;
		return;
	}
	lock->attempt = 0;
	if (lock->recovering && lock->phase == LW__PH_CHECK1 &&
	    !lw__listing_has(lock->repo, &lock->id)) {
		fail(lock, -LW_ELOST, "its file was removed meanwhile");
		return;
	}
	stale = lw__listing_remove_stale(lock->repo);
	if (stale && lock->phase == LW__PH_CHECK1 && lock->stale_looks++ < CHECK_ATTEMPTS) {
		/* look again once it is gone: a removal takes a round trip, so
		 * the first look comes after recheck_delay, not check_retry
		 * (which would add 5 s to every takeover of a stale lock) */
		int64_t wait = lock->stale_looks == 1 ?
				       lock->own.timing->recheck_delay :
				       lock->own.timing->check_retry << (lock->stale_looks - 2);

		lw__timer_start(lock->loop->engine, &lock->step_timer, lw__now_boot() + wait);
		return;
	}
	if (stale && lock->phase == LW__PH_CHECK1) {
		/* a stale lock that cannot be removed blocks, as in restic */
		lw__entry_describe(stale, desc, sizeof(desc) - 50);
		strcat(desc, ", stale but not removable");
		lock->stale_looks = 0;
		locked(lock, desc);
		return;
	}
	lock->stale_looks = 0;
	holder = lw__listing_conflict(lock->repo, mine, lw__lock_files(lock, mine),
				      lock->own.exclusive);
	if (holder && lock->phase == LW__PH_RECHECK && !lock->recovering)
		undo(lock, holder);
	else if (holder)
		locked(lock, lw__entry_describe(holder, desc, sizeof(desc)));
	else if (lock->phase == LW__PH_RECHECK)
		confirmed(lock);
	else
		create(lock);
}

static void on_created(struct lw__breq *req)
{
	struct lw_lock *lock = req->userdata;

	lock->req = NULL;
	lw__acquire_create_over(lock);
	/* even a failed create may have left a file (a server that wrote it
	 * and then timed out): it is ours to delete, with its lease if it
	 * got one */
	lw__lock_set_id(lock, &req->id);
	lock->lease = req->lease;
	lock->token = req->token;
	if (req->res < 0) {
		int err = req->res == -ENOMEM ? -ENOMEM : -LW_EBACKEND;
		char msg[300];

		snprintf(msg, sizeof(msg), "creating a lock file in %s: %s",
			 lock->repo->url.display,
			 req->msg[0] ? req->msg : lw_strerror(req->res));
		lw__breq_free(req);
		fail(lock, err, msg);
		return;
	}
	lock->own.created_at = lock->req_started;
	lock->created_mono = lock->req_started_mono;
	lw__breq_free(req);
	if (lw__listing_add_own(lock->repo, &lock->id, &lock->own) < 0) {
		fail(lock, -ENOMEM, "out of memory");
		return;
	}
	lw__lock_phase(lock, LW__PH_RECHECK);
	lock->attempt = 0;
	lw__timer_start(lock->loop->engine, &lock->step_timer,
			lw__add_sat(lw__now_boot(), lock->own.timing->recheck_delay));
}

/* Starts LOCK's create; on failure, fails it (ending it gives its slot
 * back). */
static void start_create(struct lw_lock *lock)
{
	uint8_t buf[LW_RECORD_MAX];
	struct lw__id id;
	int len = lw__lock_file(lock, buf, sizeof(buf), &id);
	int r = len < 0 ? len : 0;
	const char *msg = "cannot make a lock record";

	if (r == 0) {
		if (lock->recovering) {
			/* the file that was: kept until the new one is confirmed */
			lock->old_id = lock->id;
			lock->has_old = true;
		}
		/* ours before it lands: a listing that sees it mid-create
		 * must not read it back */
		if (lw__listing_add_own(lock->repo, &id, &lock->own) == 0) {
			if (lw__lock_request(lock, LW__BOP_CREATE, &id, buf, (size_t)len,
					     lw__add_sat(lw__now_boot(), lock->own.timing->op_timeout),
					     on_created))
				return;
			lw__listing_forget(lock->repo, &id);
		}
		r = -ENOMEM;
		msg = "out of memory";
	}
	fail(lock, r, msg);
}

static void admit(struct lw__defer *d)
{
	struct lw_repo *repo = LW_CONTAINER_OF(d, struct lw_repo, admit);

	while (repo->creating < CREATES_AT_ONCE && !lw__list_empty(&repo->create_queue)) {
		struct lw_lock *lock = LW_CONTAINER_OF(repo->create_queue.next,
						       struct lw_lock, create_link);

		lw__list_del(&lock->create_link);
		lock->create_slot = true;
		repo->creating++;
		start_create(lock);
	}
}

static void create(struct lw_lock *lock)
{
	struct lw_repo *repo = lock->repo;

	lw__lock_phase(lock, LW__PH_CREATE);
	if (!lock->recovering) {
		if (repo->creating >= CREATES_AT_ONCE) {
			lw__list_add_tail(&repo->create_queue, &lock->create_link);
			return;
		}
		lock->create_slot = true;
		repo->creating++;
	}
	start_create(lock);
}

/* The next in line are started from a deferred call, never from inside the
 * end of another lock (which may be one of a loop's shutdown). */
void lw__acquire_create_over(struct lw_lock *lock)
{
	struct lw_repo *repo = lock->repo;

	lw__list_del(&lock->create_link);
	if (!lock->create_slot)
		return;
	lock->create_slot = false;
	repo->creating--;
	if (!lw__list_empty(&repo->create_queue))
		lw__defer(lock->loop->engine, &repo->admit, admit);
}

static void on_step(struct lw__timer *t)
{
	struct lw_lock *lock = LW_CONTAINER_OF(t, struct lw_lock, step_timer);

	if (lock->phase == LW__PH_BACKOFF)
		lw__lock_phase(lock, LW__PH_CHECK1);
	lw__listing_request(lock->repo, &lock->waiter);
}

void lw__acquire_recover(struct lw_lock *lock, int64_t slept)
{
	char dur[32];

	lw__notice(&lock->loop->log, "the machine slept %s past the deadline of a lock "
		   "on %s: holding its work while the lock is checked",
		   lw__fmt_duration(slept, dur, sizeof(dur)), lock->repo->url.display);
	lock->recovering = true;
	lock->attempt = 0;
	lw__lock_phase(lock, LW__PH_CHECK1);
	lw__timer_stop(lock->loop->engine, &lock->step_timer);
	lw__timer_init(&lock->step_timer, on_step);
	lw__listing_request(lock->repo, &lock->waiter);
}

void lw__acquire_start(struct lw_lock *lock)
{
	struct lw_loop *loop = lock->loop;
	char msg[300];
	int r;

	lock->own.timing = lw__repo_timing(lock->repo);
	r = lw__timing_check(lock->own.timing, msg, sizeof(msg));
	if (r == 0 && lw__engine_reserve(loop->engine, 2) < 0) {
		r = -ENOMEM;
		snprintf(msg, sizeof(msg), "out of memory");
	}
	if (r < 0) {
		lw__lock_go(lock, LW__LOCK_DONE, LW__PH_NONE);
		lw__ctx_end(lock->ctx, LW_CAUSE_CANCELLED, "%s", msg);
		lock->acquire_fn(lock, r, msg, lock->acquire_data);
		lock->acquire_fn = NULL;
		return;
	}
	lock->reserved = true;
	lw__timer_init(&lock->deadline_timer, NULL);
	lw__timer_init(&lock->step_timer, on_step);
	lw__lock_go(lock, LW__LOCK_ACQUIRING, LW__PH_CHECK1);
	lw__lock_ref(lock); /* the loop's, until the lock is done */
	lw__loop_add_active(loop, &lock->active);
	lock->give_up_at = lock->own.timing->retry_lock > 0 ?
				   lw__add_sat(lw__now_boot(), lock->own.timing->retry_lock) : 0;
	lock->backoff = lock->own.timing->retry_backoff;
	lock->waiter.fn = on_listing;
	lw__listing_join(lock->repo, &lock->waiter);
}
