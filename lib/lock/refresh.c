/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Refresh and the strict deadline.
 *
 * Backends cannot update a file, so a refresh writes a new record under a
 * new id and then deletes the old file.  The deadline moves to the instant
 * the successful write *started* plus refreshability_timeout
 * (stale_timeout - 1.5 x refresh_interval): others judge staleness by the
 * record time, which is taken before the write, and the 1.5 x interval
 * margin absorbs clock drift between hosts.  A failed refresh is retried at
 * once with backoff (1 s doubling, at most interval / 4), not at the next
 * tick.
 *
 * On a leased backend (etcd) a refresh is a keepalive of the lock's lease
 * and nothing else.  The server expires the lease a TTL (>= stale_timeout)
 * after it *received* the keepalive; the deadline runs from when it was
 * *sent*, and refreshability_timeout is shorter than the TTL, so the holder
 * stops strictly before the server lets its lock go.
 *
 * When the deadline passes, the context is cancelled on the spot by the
 * heap timer, whatever the request in flight is doing.
 *
 * If the old file is gone when we delete it, someone ran unlock (or judged
 * us stale): conflicting work may have started, and the lock is lost.  Only
 * the first delete attempt is evidence; a retried delete may follow a first
 * try that succeeded.  Where a delete of a missing file succeeds anyway
 * (rest-server), the old file is checked before each refresh instead.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lock/lock-internal.h"

#define BACKOFF_FIRST LW_SEC(1)

static void write_record(struct lw_lock *lock);
static void delete_old(struct lw_lock *lock);

static int64_t deadline_of(const struct lw_lock *lock)
{
	return atomic_load(&lock->deadline);
}

static void schedule(struct lw_lock *lock, int64_t when)
{
	lw__lock_phase(lock, LW__PH_IDLE);
	lock->check_tick = false;
	lw__timer_start(lock->loop->engine, &lock->step_timer, when);
}

/* How often a held lock's file is checked between refreshes: where
 * nothing tells us of a removal (HTTP; a local repository whose watch the
 * kernel refused, or that lost it), every check interval; where this
 * repository's watch is in place (local) or the server expires locks
 * (etcd), never. */
static int64_t check_interval(const struct lw_lock *lock)
{
	const struct lw__backend *be = lock->repo->backend;
	int64_t d = lock->own.timing->check_interval;

	if (be->ops->leased || be->watched)
		return 0;
	return d < 0 ? lock->own.timing->refresh_interval / 5 : d;
}

static void set_error(struct lw_lock *lock, const struct lw__breq *req,
		      const char *what)
{
	char msg[300];

	snprintf(msg, sizeof(msg), "%s: %s", what,
		 req->msg[0] ? req->msg : lw_strerror(req->res));
	free(lock->last_error);
	lock->last_error = strdup(msg);
}

/* A step failed: try again soon, well before the next tick. */
static void retry(struct lw_lock *lock, const struct lw__breq *req, const char *what)
{
	int64_t now = lw__now_boot();
	int64_t cap = LW_MAX(lock->own.timing->refresh_interval / 4, LW_MSEC(1));
	int64_t wait = LW_MIN(lock->backoff, cap);

	set_error(lock, req, what);
	lw__warn(&lock->loop->log, "%s; retrying in %s", lock->last_error,
		 lw__fmt_duration(wait, (char[32]){ 0 }, 32));
	lock->backoff = LW_MIN(2 * lock->backoff, cap);
	schedule(lock, now + wait);
	lw__lock_emit(lock, LW_EVENT_REFRESH_FAILED, req->res, now + wait, 0, "%s",
		      lock->last_error);
}

/* The lock file ID (or, leased, its lease) is gone: the lock is lost. */
static void lost(struct lw_lock *lock, const struct lw__id *id)
{
	bool leased = lock->repo->backend->ops->leased;
	char hex[LW_ID_HEX + 1];

	lw__id_hex(id, hex);
	lw__warn(&lock->loop->log, "%s %.12s in %s %s", leased ? "the lease of lock" : "lock file",
		 hex, lock->repo->url.display,
		 leased ? "expired on the server or was revoked" : "was removed by someone else");
	lw__lock_ref(lock);
	lw__lock_end(lock, 0, LW_CAUSE_REMOVED,
		     "lock removed by someone else%s: %s %.12s in %s is gone (%s); "
		     "conflicting work may have started",
		     leased ? " or expired on the server" : "",
		     leased ? "the lease of lock" : "lock file", hex, lock->repo->url.display,
		     leased ? "unlock --remove-all, or the server did not hear from us "
			      "for the stale timeout" :
			      "unlock --remove-all, or judged stale");
	lw__lock_emit(lock, LW_EVENT_LOST, -LW_ELOST, 0, 0, "%s", lw_ctx_cause(lock->ctx));
	lw__lock_unref(lock);
}

static void next_tick(struct lw_lock *lock)
{
	int64_t refresh_at = lw__add_sat(lock->own.created_at, lock->own.timing->refresh_interval);
	int64_t check = check_interval(lock), check_at = lw__add_sat(lw__now_boot(), check);

	lock->attempt = 0;
	lock->backoff = BACKOFF_FIRST;
	schedule(lock, check && check_at < refresh_at ? check_at : refresh_at);
	lock->check_tick = check && check_at < refresh_at;
}

/* What every reply of a refresh step opens with: the lock's request is
 * over.  One that completes after the deadline cancelled the context (and
 * before after_deadline ran) changes nothing: the lock is over, REQ is
 * freed and this returns true.  A file it may have written (a create, even
 * a failed one: a stalled server may still store it) or was removing goes
 * with the lock's own. */
static bool reply_over(struct lw__breq *req)
{
	struct lw_lock *lock = req->userdata;

	lock->req = NULL;
	if (!lw_ctx_done(lock->ctx))
		return false;
	if (req->op == LW__BOP_CREATE || req->op == LW__BOP_REMOVE)
		lw__lock_doom(lock, &req->id);
	lw__breq_free(req);
	return true;
}

/* A reply about the lock's current file (or, leased, its lease): gone, the
 * lock is lost; failed, the step is retried (WHAT says which).  Frees REQ;
 * returns whether it succeeded. */
static bool answered(struct lw_lock *lock, struct lw__breq *req, const char *what)
{
	int res = req->res;

	if (res == -ENOENT) {
		lw__breq_free(req);
		lost(lock, &lock->id);
		return false;
	}
	if (res < 0)
		retry(lock, req, what);
	lw__breq_free(req);
	return res >= 0;
}

/* A check between refreshes: a file that was ours and confirmed, now gone,
 * was removed by someone else.  A failed check proves nothing: the next
 * refresh, with its retries, is what keeps the deadline. */
static void on_alive(struct lw__breq *req)
{
	struct lw_lock *lock = req->userdata;
	int res = req->res;

	if (reply_over(req))
		return;
	lw__breq_free(req);
	if (res == -ENOENT) {
		lost(lock, &lock->id);
		return;
	}
	next_tick(lock);
}

static void check_now(struct lw_lock *lock)
{
	lw__lock_phase(lock, LW__PH_CHECK_OLD);
	lock->check_tick = false;
	/* a check that hangs must not hold up the next refresh */
	if (!lw__lock_request(lock, LW__BOP_EXISTS, &lock->id, NULL, 0,
			      LW_MIN(deadline_of(lock),
				     lw__add_sat(lock->own.created_at,
						 lock->own.timing->refresh_interval)),
			      on_alive))
		next_tick(lock);
}

/*
 * A watching backend saw lock file ID go.  Ours, current and held: someone
 * removed it, and the lock is lost now rather than at the next refresh.
 * Our own deletes (the old file of a refresh, a lock that ends) are not
 * the current file of a held lock.  ID NULL: removals may have gone
 * unseen; every held lock of the repository that waits for its next tick
 * checks its file now.
 */
static void on_gone(void *userdata, const struct lw__id *id)
{
	struct lw_repo *repo = userdata;
	const struct lw__own *own;
	struct lw_lock *lock;

	if (id) {
		own = lw__listing_owner(repo, id);
		lock = own ? LW_CONTAINER_OF(own, struct lw_lock, own) : NULL;
		if (lock && lock->state == LW__LOCK_HELD && !lock->recovering &&
		    !lw_ctx_held(lock->ctx) && lock->has_id && lw__id_eq(&lock->id, id))
			lost(lock, id);
		return;
	}
	for (struct lw__list *n = repo->loop->active.next; n != &repo->loop->active; n = n->next) {
		lock = LW_CONTAINER_OF(n, struct lw_lock, active.link);
		if (lock->repo == repo && lock->state == LW__LOCK_HELD &&
		    lock->phase == LW__PH_IDLE && !lock->has_old && !lock->recovering) {
			lw__timer_start(lock->loop->engine, &lock->step_timer, 0);
			lock->check_tick = true;
		}
	}
}

static void on_old_deleted(struct lw__breq *req)
{
	struct lw_lock *lock = req->userdata;
	int res = req->res;

	if (reply_over(req))
		return;
	if (res == -ENOENT && lock->attempt == 0) {
		lw__breq_free(req);
		lost(lock, &lock->old_id);
		return;
	}
	if (res < 0 && res != -ENOENT) {
		lock->attempt++;
		retry(lock, req, "deleting the previous lock file");
		lw__breq_free(req);
		return;
	}
	lw__listing_forget(lock->repo, &lock->old_id);
	lock->has_old = false;
	lw__breq_free(req);
	next_tick(lock);
}

static void delete_old(struct lw_lock *lock)
{
	lw__lock_phase(lock, LW__PH_DELETE_OLD);
	if (!lw__lock_request(lock, LW__BOP_REMOVE, &lock->old_id, NULL, 0,
			      deadline_of(lock), on_old_deleted))
		schedule(lock, lw__now_boot() + lock->backoff);
}

static void on_stray_removed(struct lw__breq *req)
{
	struct lw_lock *lock = req->userdata;

	if (reply_over(req))
		return;
	/* still unremoved: it goes when the lock ends, at the latest */
	if (req->res < 0 && req->res != -ENOENT)
		lw__lock_doom(lock, &req->id);
	else
		lw__listing_forget(lock->repo, &req->id);
	lw__breq_free(req);
	schedule(lock, lw__now_boot() + LW_MIN(lock->backoff, lock->own.timing->refresh_interval / 4));
}

/* A refresh succeeded: the deadline runs from when it was sent. */
static void refreshed(struct lw_lock *lock, const char *what)
{
	int64_t deadline;
	char hex[LW_ID_HEX + 1];

	lock->own.created_at = lock->req_started;
	lock->created_mono = lock->req_started_mono;
	deadline = lw__add_sat(lock->own.created_at, lw__refreshability(lock->own.timing));
	if (deadline > deadline_of(lock)) {
		atomic_store(&lock->deadline, deadline);
		lw__timer_start(lock->loop->engine, &lock->deadline_timer, deadline);
	}
	free(lock->last_error);
	lock->last_error = NULL;
	lw__id_hex(&lock->id, hex);
	lw__dbg(&lock->loop->log, "refreshed lock %.12s: %s", hex, what);
	lw__lock_emit(lock, LW_EVENT_REFRESHED, 0, deadline_of(lock), 0,
		      "refreshed: %s %.12s", what, hex);
}

static void on_kept(struct lw__breq *req)
{
	struct lw_lock *lock = req->userdata;

	if (reply_over(req) || !answered(lock, req, "renewing the lock's lease"))
		return;
	refreshed(lock, "renewed the lease of lock");
	if (lock->state == LW__LOCK_HELD) /* else the event callback released it */
		next_tick(lock);
}

static void on_written(struct lw__breq *req)
{
	struct lw_lock *lock = req->userdata;

	if (reply_over(req))
		return;
	if (req->res < 0) {
		struct lw__id stray = req->id;
		bool ambiguous = req->ambiguous;

		retry(lock, req, "refreshing the lock");
		lw__breq_free(req);
		if (!ambiguous)
			lw__listing_forget(lock->repo, &stray);
		/* a server may have stored what it failed to confirm */
		if (ambiguous)
			lw__lock_request(lock, LW__BOP_REMOVE, &stray, NULL, 0,
					 deadline_of(lock), on_stray_removed);
		return;
	}
	lock->old_id = lock->id;
	lock->has_old = true;
	lw__lock_set_id(lock, &req->id);
	lw__breq_free(req);
	if (lw__listing_add_own(lock->repo, &lock->id, &lock->own) < 0)
		lw__warn(&lock->loop->log, "out of memory");
	refreshed(lock, "lock file");
	if (lock->state != LW__LOCK_HELD)
		return; /* the event callback released it */
	lock->attempt = 0;
	delete_old(lock);
}

static void write_record(struct lw_lock *lock)
{
	uint8_t buf[LW_RECORD_MAX];
	struct lw__id id;
	int len = lw__lock_file(lock, buf, sizeof(buf), &id);

	lw__lock_phase(lock, LW__PH_WRITE);
	if (len < 0) {
		schedule(lock, lw__now_boot() + lock->backoff);
		return;
	}
	/* ours before it lands: a listing that sees it mid-create must not
	 * read it back */
	if (lw__listing_add_own(lock->repo, &id, &lock->own) < 0 ||
	    !lw__lock_request(lock, LW__BOP_CREATE, &id, buf, (size_t)len,
			      deadline_of(lock), on_written)) {
		lw__listing_forget(lock->repo, &id);
		schedule(lock, lw__now_boot() + lock->backoff);
	}
}

static void on_checked(struct lw__breq *req)
{
	struct lw_lock *lock = req->userdata;

	if (!reply_over(req) && answered(lock, req, "checking the lock file"))
		write_record(lock);
}

static void on_tick(struct lw__timer *t)
{
	struct lw_lock *lock = LW_CONTAINER_OF(t, struct lw_lock, step_timer);

	if (lock->check_tick) {
		check_now(lock);
	} else if (lock->repo->backend->ops->leased) {
		lw__lock_phase(lock, LW__PH_KEEPALIVE);
		if (!lw__lock_request(lock, LW__BOP_KEEPALIVE, &lock->id, NULL, 0,
				      deadline_of(lock), on_kept))
			schedule(lock, lw__now_boot() + lock->backoff);
	} else if (lock->has_old) {
		delete_old(lock);
	} else if (lock->repo->backend->ops->remove_hides_missing) {
		lw__lock_phase(lock, LW__PH_CHECK_OLD);
		if (!lw__lock_request(lock, LW__BOP_EXISTS, &lock->id, NULL, 0,
				      deadline_of(lock), on_checked))
			schedule(lock, lw__now_boot() + lock->backoff);
	} else {
		write_record(lock);
	}
}

/* What a deadline does besides cancelling, a turn later: when many
 * deadlines fall due together (a stalled server), every context is
 * cancelled before any of them is logged or cleaned up. */
static void after_deadline(struct lw__timer *t)
{
	struct lw_lock *lock = LW_CONTAINER_OF(t, struct lw_lock, step_timer);
	struct lw_ctx *ctx = lock->ctx;
	char late[32];

	lw__fmt_duration(ctx->done_at - deadline_of(lock), late, sizeof(late));
	lw__warn(&lock->loop->log, "%s (on %s, cancelled %s after the deadline)",
		 lw_ctx_cause(ctx), lock->repo->url.display, late);
	lw__lock_ref(lock);
	lw__lock_end(lock, 0, LW_CAUSE_DEADLINE, "%s", lw_ctx_cause(ctx));
	lw__lock_emit(lock, LW_EVENT_LOST, -LW_ELOST, 0, 0, "%s", lw_ctx_cause(ctx));
	lw__lock_unref(lock);
}

/* How long the machine slept since the last successful write started:
 * CLOCK_BOOTTIME counts a suspend, CLOCK_MONOTONIC does not, and otherwise
 * they run together. */
static int64_t slept(const struct lw_lock *lock)
{
	return (lw__now_boot() - lock->own.created_at) - (lw__now_mono() - lock->created_mono);
}

static void on_recover_kept(struct lw__breq *req)
{
	struct lw_lock *lock = req->userdata;
	int res = req->res;
	char msg[300];

	if (reply_over(req))
		return;
	snprintf(msg, sizeof(msg), "%s", req->msg[0] ? req->msg : lw_strerror(res));
	lw__breq_free(req);
	if (res == -ENOENT) {
		lost(lock, &lock->id);
		return;
	}
	if (res < 0) {
		lw__lock_end(lock, 0, LW_CAUSE_DEADLINE,
			     "lock refresh deadline exceeded while the machine slept, "
			     "and the lease could not be renewed: %s", msg);
		return;
	}
	lock->recovering = false;
	lock->own.created_at = lock->req_started;
	lock->created_mono = lock->req_started_mono;
	lw__refresh_resume(lock);
}

/*
 * Files: the lock is taken again in place, with the double check.  A
 * lease: one keepalive tells all.  If the lease still lives, the key never
 * left the server and nobody can have held a conflicting lock meanwhile,
 * so the lock goes on with its key and fencing token; if it is gone, the
 * lock is lost.
 */
static void recover(struct lw_lock *lock)
{
	if (!lock->repo->backend->ops->leased) {
		lw__acquire_recover(lock, slept(lock));
		return;
	}
	lock->recovering = true;
	lw__timer_stop(lock->loop->engine, &lock->step_timer);
	lw__lock_phase(lock, LW__PH_KEEPALIVE);
	if (!lw__lock_request(lock, LW__BOP_KEEPALIVE, &lock->id, NULL, 0,
			      deadline_of(lock), on_recover_kept))
		lw__lock_end(lock, 0, LW_CAUSE_DEADLINE, "out of memory");
}

static void on_recover_cancelled(struct lw__breq *req)
{
	struct lw_lock *lock = req->userdata;

	lock->req = NULL;
	if (req->op == LW__BOP_CREATE || req->op == LW__BOP_REMOVE) {
		/* it may have landed: ours, deleted at the end at the latest */
		lw__listing_add_own(lock->repo, &req->id, &lock->own);
		lw__lock_doom(lock, &req->id);
	}
	lw__breq_free(req);
	recover(lock);
}

/* The deadline passed only because the machine slept: hold the work, and
 * check the lock before anything goes on (lw_repo_set_suspend_recovery). */
static void hold(struct lw_lock *lock)
{
	struct lw__engine *e = lock->loop->engine;
	int64_t bound = lw__add_sat(lw__now_boot(), lock->own.timing->op_timeout);
	char dur[32];

	lw__ctx_hold(lock->ctx, true);
	/* the check itself is bounded: a lock is not held forever */
	atomic_store(&lock->deadline, bound);
	lw__timer_start(e, &lock->deadline_timer, bound);
	lw__lock_emit(lock, LW_EVENT_HELD, 0, bound, 0,
		      "the machine slept %s: work held while the lock is checked",
		      lw__fmt_duration(slept(lock), dur, sizeof(dur)));
	if (lock->req) {
		lock->req->done = on_recover_cancelled;
		lw__breq_cancel(lock->req);
		return;
	}
	recover(lock);
}

void lw__refresh_resume(struct lw_lock *lock)
{
	int64_t deadline = lw__add_sat(lock->own.created_at, lw__refreshability(lock->own.timing));
	struct lw__engine *e = lock->loop->engine;
	char hex[LW_ID_HEX + 1];

	atomic_store(&lock->deadline, deadline);
	lw__timer_start(e, &lock->deadline_timer, deadline);
	lw__timer_init(&lock->step_timer, on_tick);
	lw__id_hex(&lock->id, hex);
	lw__notice(&lock->loop->log, "lock on %s checked after the machine slept: "
		   "resumed as %.12s", lock->repo->url.display, hex);
	lw__ctx_hold(lock->ctx, false);
	lw__lock_emit(lock, LW_EVENT_RESUMED, 0, deadline, 0, "resumed as lock file %.12s",
		      hex);
	if (lock->state != LW__LOCK_HELD)
		return; /* the event callback released it */
	if (lock->repo->backend->ops->leased) {
		next_tick(lock);
		return;
	}
	lock->attempt = 0;
	lock->backoff = BACKOFF_FIRST;
	delete_old(lock); /* gone already: someone removed it after our check */
}

/* The strict monitor: it waits for nothing and asks no one. */
static void on_deadline(struct lw__timer *t)
{
	struct lw_lock *lock = LW_CONTAINER_OF(t, struct lw_lock, deadline_timer);
	struct lw__engine *e = lock->loop->engine;
	int64_t gap = slept(lock);
	bool checking = lock->phase != LW__PH_WRITE && lock->phase != LW__PH_KEEPALIVE &&
			lock->phase != LW__PH_DELETE_OLD;
	char why[400], dur[32];

	if (lock->own.timing->suspend_recovery && !lock->recovering &&
	    gap > LW_MSEC(10) && lw__now_boot() - gap < deadline_of(lock)) {
		hold(lock);
		return;
	}
	if (lock->recovering)
		snprintf(why, sizeof(why), "the machine slept %s and the lock could not "
			 "be checked in time", lw__fmt_duration(gap, dur, sizeof(dur)));
	/* a check under way says less than the refresh failure before it */
	else if (lock->req && !(checking && lock->last_error))
		snprintf(why, sizeof(why), "%s request to %s got no answer for %s",
			 lock->phase == LW__PH_WRITE ? "refresh" :
			 lock->phase == LW__PH_KEEPALIVE ? "keepalive" :
			 lock->phase == LW__PH_DELETE_OLD ? "delete" : "check",
			 lock->repo->backend->where,
			 lw__fmt_duration(lw__now_boot() - lock->req_started, dur, sizeof(dur)));
	else if (lock->last_error)
		snprintf(why, sizeof(why), "last refresh failed: %s", lock->last_error);
	else
		snprintf(why, sizeof(why), "no refresh succeeded in time");
	lw__ctx_end(lock->ctx, LW_CAUSE_DEADLINE, "lock refresh deadline exceeded: %s", why);
	lw__timer_stop(e, &lock->step_timer);
	lw__timer_init(&lock->step_timer, after_deadline);
	lw__timer_start(e, &lock->step_timer, 0); /* due: runs at the next turn */
}

void lw__refresh_begin(struct lw_lock *lock)
{
	int64_t deadline = lw__add_sat(lock->own.created_at, lw__refreshability(lock->own.timing));
	int r;

	atomic_store(&lock->deadline, deadline);
	lw__timer_init(&lock->deadline_timer, on_deadline);
	lw__timer_set_urgent(&lock->deadline_timer);
	lw__timer_init(&lock->step_timer, on_tick);
	lw__timer_start(lock->loop->engine, &lock->deadline_timer, deadline);
	/* one watch per repository; where there is none, checks (and
	 * refreshes) find a removal: the first tick depends on it */
	r = lw__backend_watch(lock->repo->backend, on_gone, lock->repo);
	if (r < 0 && r != -ENOTSUP && !lock->repo->watch_told) {
		const char *why = lock->repo->backend->watch_err;
		int64_t check = check_interval(lock);
		char dur[32];

		lock->repo->watch_told = true;
		if (check)
			lw__notice(&lock->loop->log, "cannot watch %s for removed locks (%s): "
				   "its held locks check their files every %s instead",
				   lock->repo->url.display, why ? why : strerror(-r),
				   lw__fmt_duration(check, dur, sizeof(dur)));
		else
			lw__notice(&lock->loop->log, "cannot watch %s for removed locks (%s), "
				   "and checks are off: the next refresh finds them",
				   lock->repo->url.display, why ? why : strerror(-r));
	}
	next_tick(lock);
}
