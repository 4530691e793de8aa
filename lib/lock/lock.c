/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The lock object: its public calls, its one request in flight, and its end
 * (release, loss, failed acquire), which deletes every file the lock may
 * have written before anyone is told that it is over.  Acquire and refresh
 * live in acquire.c and refresh.c.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lock/lock-internal.h"

/* Attempts to delete each lock file while ending. */
#define DELETE_ATTEMPTS 3

static const char *const state_names[] = {
	[LW__LOCK_NEW] = "new",
	[LW__LOCK_ACQUIRING] = "acquiring",
	[LW__LOCK_HELD] = "held",
	[LW__LOCK_ENDING] = "ending",
	[LW__LOCK_DONE] = "done",
};

static const char *const phase_names[] = {
	[LW__PH_NONE] = "-",
	[LW__PH_CHECK1] = "check",
	[LW__PH_CREATE] = "create",
	[LW__PH_RECHECK] = "recheck",
	[LW__PH_BACKOFF] = "backoff",
	[LW__PH_UNDO] = "undo",
	[LW__PH_IDLE] = "idle",
	[LW__PH_CHECK_OLD] = "check-old",
	[LW__PH_WRITE] = "write",
	[LW__PH_KEEPALIVE] = "keepalive",
	[LW__PH_DELETE_OLD] = "delete-old",
	[LW__PH_CLEANUP] = "cleanup",
};

void lw__lock_go(struct lw_lock *lock, enum lw__lock_state state, enum lw__phase phase)
{
	if (lock->state == state && lock->phase == phase)
		return;
	if (lw__log_enabled(&lock->loop->log, LOG_DEBUG)) {
		char hex[LW_ID_HEX + 1] = "-";

		if (lock->has_id)
			lw__id_hex(&lock->id, hex);
		lw__dbg(&lock->loop->log, "lock %p (%.12s) on %s: %s/%s -> %s/%s", (void *)lock,
			hex, lock->repo->url.display, state_names[lock->state],
			phase_names[lock->phase], state_names[state], phase_names[phase]);
	}
	lock->state = state;
	lock->phase = phase;
}

void lw__lock_ref(struct lw_lock *lock)
{
	lock->refs++;
}

void lw__lock_unref(struct lw_lock *lock)
{
	struct lw_repo *repo = lock->repo;

	if (--lock->refs > 0)
		return;
	if (lock->reserved && lock->loop->engine)
		lw__engine_reserve(lock->loop->engine, -2);
	lw__ctx_on_cancel(lock->ctx, NULL, NULL);
	lw_ctx_unref(lock->ctx);
	lw__timing_unref(lock->own.timing);
	free(lock->doomed);
	free(lock->own.purpose);
	free(lock->last_error);
	free(lock);
	lw_repo_unref(repo);
}

void lw__lock_emit(struct lw_lock *lock, enum lw_event_type type, int err,
		   int64_t next, int64_t until, const char *fmt, ...)
{
	struct lw_event ev = {
		.type = type, .err = err, .at = lw__now_boot(), .next = next,
		.until = until,
	};
	char msg[600];
	va_list ap;

	if (!lock->event_fn || lock->app_gone)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	ev.msg = msg;
	lock->event_fn(lock, &ev, lock->event_data);
}

/* A request for LOCK, not started: a request about the lock's own key
 * carries its lease. */
static struct lw__breq *lock_breq(struct lw_lock *lock, enum lw__bop op,
				  const struct lw__id *id, const void *data, size_t len,
				  int64_t deadline, void (*done)(struct lw__breq *))
{
	struct lw__breq *req = lw__breq_new(lock->repo->backend, op, id, data, len,
					    deadline, done, lock);

	if (!req)
		return NULL;
	/* on a leased backend: a new lock's lease lasts the stale timeout,
	 * and a request about the lock's own key ends or renews its lease */
	req->ttl = lock->own.timing->stale_timeout;
	/* a create still under way when the lock ends is waited for, within
	 * the release timeout, before its file is deleted (lw__lock_end) */
	if (op == LW__BOP_CREATE)
		req->grace = lock->own.timing->release_timeout;
	if (lock->has_id && id && lw__id_eq(id, &lock->id))
		req->lease = lock->lease;
	req->refresh = lock->state == LW__LOCK_HELD;
	return req;
}

bool lw__lock_request(struct lw_lock *lock, enum lw__bop op,
		      const struct lw__id *id, const void *data, size_t len,
		      int64_t deadline, void (*done)(struct lw__breq *))
{
	struct lw__breq *req = lock_breq(lock, op, id, data, len, deadline, done);

	if (!req)
		return false;
	lock->req = req;
	lock->req_started = lw__now_boot();
	lock->req_started_mono = lw__now_mono();
	lw__breq_start(req);
	return true;
}

size_t lw__lock_files(const struct lw_lock *lock, const struct lw__id *mine[LW__LOCK_FILES])
{
	size_t n = 0;

	if (lock->has_id)
		mine[n++] = &lock->id;
	if (lock->has_old)
		mine[n++] = &lock->old_id;
	for (int i = 0; i < lock->ndoomed; i++)
		mine[n++] = &lock->doomed[i].id;
	return n;
}

void lw__lock_set_id(struct lw_lock *lock, const struct lw__id *id)
{
	/* under the loop's mutex: lw_lock_id reads it from any thread */
	pthread_mutex_lock(&lock->loop->mu);
	lock->id = *id;
	lock->has_id = true;
	pthread_mutex_unlock(&lock->loop->mu);
}

/*
 * The time of a new record: the wall clock, but never behind the lock's
 * previous record time plus the CLOCK_BOOTTIME that has passed since.  A
 * holder whose clock steps back (an NTP correction, a VM restored with an
 * old clock) would otherwise write records that look that much older to
 * other hosts, which would judge a live lock stale and remove it while its
 * holder works on.  A clock that steps forward is taken as it is: records
 * that look younger than they are cost liveness (a dead holder's lock
 * blocks longer), never exclusion.
 */
static int64_t record_time(struct lw_lock *lock)
{
	int64_t real = lw__now_real(), boot = lw__now_boot();

	if (lock->rec_boot) {
		int64_t floor = lock->rec_real + (boot - lock->rec_boot);

		if (real < floor - LW_SEC(1) && !lock->clock_behind) {
			char d[32];

			lw__warn(&lock->loop->log, "the wall clock went back by %s while a "
				 "lock on %s was held; its records keep the clock they had, "
				 "so that others do not judge it stale",
				 lw__fmt_duration(floor - real, d, sizeof(d)),
				 lock->repo->url.display);
		}
		lock->clock_behind = real < floor - LW_SEC(1);
		real = LW_MAX(real, floor);
	}
	lock->rec_real = real;
	lock->rec_boot = boot;
	return real;
}

int lw__lock_file(struct lw_lock *lock, void *buf, size_t size, struct lw__id *id)
{
	const struct lw__self *self = lw__self();
	struct lw__id nonce;
	struct lw__record rec = {
		.time = record_time(lock),
		.stale_timeout = lock->own.timing->stale_timeout,
		.pid = self->pid, .uid = self->uid, .gid = self->gid,
		.pid_ns = self->pid_ns, .pid_start = self->pid_start,
		.exclusive = lock->own.exclusive,
		.hostname = self->hostname, .username = self->username,
		.boot_id = self->boot_id, .purpose = lock->own.purpose,
		.pgid = lock->pgid, .pgid_start = lock->pgid_start,
	};
	int r = lw__id_random(&nonce);

	if (r < 0)
		return r;
	memcpy(rec.nonce, nonce.b, sizeof(rec.nonce));
	return lw__format_encode(lock->repo, &rec, buf, size, id);
}

int64_t lw__backoff_jitter(int64_t d)
{
	struct lw__id r;

	/* up to 1/8 more, so that two holders that collided once do not
	 * collide again at every retry */
	if (d <= 0 || lw__id_random(&r) < 0)
		return d;
	return d + (int64_t)(((uint64_t)r.b[0] << 8 | r.b[1]) * (uint64_t)(d / 8) / 65536);
}

/* ----------------------------------------------------------------- end */

static void finish_end(struct lw_lock *lock)
{
	lw_lock_fn fn;
	void *data;

	lw__lock_go(lock, LW__LOCK_DONE, LW__PH_NONE);
	lw__loop_del_active(lock->loop, &lock->active);
	lw__lock_ref(lock);
	if (lock->acquire_fn) {
		/* an acquire that did not succeed, told only now that its
		 * file is gone, so that a retry cannot meet it */
		fn = lock->acquire_fn;
		data = lock->acquire_data;
		lock->acquire_fn = NULL;
		if (!lock->app_gone)
			fn(lock, lock->result, lw_ctx_cause(lock->ctx), data);
		lock->result = 0;
	}
	lw__lock_emit(lock, LW_EVENT_RELEASED, lock->result, 0, 0, "%s",
		      lock->result ? lock->last_error : "lock files deleted");
	if (lock->release_fn) {
		fn = lock->release_fn;
		data = lock->release_data;
		lock->release_fn = NULL;
		if (!lock->app_gone)
			fn(lock, lock->result, lock->result ? lock->last_error : NULL, data);
	}
	lw__lock_unref(lock); /* this function's */
	lw__lock_unref(lock); /* the loop's, taken when the lock became active */
}

static void start_delete(struct lw_lock *lock, struct lw__doomed *d);
static void cleaned(struct lw_lock *lock);

/* The end is over once every delete is, and the request that was in
 * flight when the lock ended. */
static void maybe_cleaned(struct lw_lock *lock)
{
	if (lock->cleaning == 0 && !lock->req)
		cleaned(lock);
}

/* Every delete is over: say what is left, and whether the lock had been
 * removed by someone else. */
static void cleaned(struct lw_lock *lock)
{
	char left[LW__MAX_DOOMED * 14 + 1] = "", hex[LW_ID_HEX + 1], msg[600];
	size_t n = 0;

	for (int i = 0; i < lock->ndoomed; i++)
		if (lock->doomed[i].left) {
			lw__id_hex(&lock->doomed[i].id, hex);
			n += (size_t)snprintf(left + n, sizeof(left) - n, "%s%.12s",
					      n ? ", " : "", hex);
		}
	if (n) {
		lw__sfmt(msg, sizeof(msg), "lock file%s left behind in %s: %s (%s); %s",
			 strchr(left, ',') ? "s" : "", lock->repo->url.display, left,
			 lock->last_error ? lock->last_error : "not deleted in time",
			 strchr(left, ',') ? "they go stale by themselves" :
					     "it goes stale by itself");
		lw__warn(&lock->loop->log, "%s", msg);
		if (!lock->acquire_fn) {
			free(lock->last_error);
			lock->last_error = strdup(msg);
		}
	}
	if (lock->removed && !lock->acquire_fn) {
		lw__id_hex(&lock->id, hex);
		lw__sfmt(msg, sizeof(msg), "lock file %.12s in %s was removed by someone else "
			 "while it was held (unlock --remove-all, or judged stale); conflicting "
			 "work may have started%s%s", hex, lock->repo->url.display,
			 n ? "; " : "", n ? lock->last_error : "");
		free(lock->last_error);
		lock->last_error = strdup(msg);
		lock->result = -LW_ELOST;
	}
	lock->ndoomed = 0;
	lw__timer_stop(lock->loop->engine, &lock->step_timer);
	finish_end(lock);
}

static void on_deleted(struct lw__breq *req)
{
	struct lw_lock *lock = req->userdata;
	struct lw__doomed *d = NULL;
	char hex[LW_ID_HEX + 1];
	int res = req->res;

	if (lock->state == LW__LOCK_DONE) {
		/* after the release timeout: named as left behind already */
		if (res == 0 || res == -ENOENT)
			lw__listing_forget(lock->repo, &req->id);
		lw__breq_free(req);
		lw__lock_unref(lock); /* the request's */
		return;
	}
	for (int i = 0; i < lock->ndoomed && !d; i++)
		if (lw__id_eq(&lock->doomed[i].id, &req->id))
			d = &lock->doomed[i];
	lw__id_hex(&req->id, hex);
	lock->cleaning--;
	d->req = NULL;
	lw__lock_unref(lock); /* the request's; the loop's keeps it */
	if (req->op == LW__BOP_EXISTS) {
		/* the look before the delete on a server that hides a
		 * missing file: gone means removed, there (or no answer)
		 * means delete it */
		lw__breq_free(req);
		if (res == -ENOENT) {
			lock->removed = true;
			lw__warn(&lock->loop->log, "lock file %.12s in %s was removed by "
				 "someone else while it was held", hex, lock->repo->url.display);
			lw__listing_forget(lock->repo, &d->id);
		} else {
			start_delete(lock, d);
		}
		maybe_cleaned(lock);
		return;
	}
	/* the evidence rule of refresh: gone at the first try, it was
	 * removed; gone at a retry, the first try may have done it */
	if (res == -ENOENT && d->evidence && d->tries == 1) {
		lock->removed = true;
		lw__warn(&lock->loop->log, "lock file %.12s in %s was removed by someone else "
			 "while it was held", hex, lock->repo->url.display);
	}
	if (res < 0 && res != -ENOENT && res != -ETIMEDOUT && d->tries < DELETE_ATTEMPTS &&
	    lw__now_boot() < lock->clean_by) {
		lw__breq_free(req);
		start_delete(lock, d);
		return;
	}
	if (res < 0 && res != -ENOENT) {
		d->left = true;
		if (!lock->acquire_fn) {
			lock->result = res;
			free(lock->last_error);
			lock->last_error = strdup(req->msg[0] ? req->msg : lw_strerror(res));
		}
	} else {
		lw__dbg(&lock->loop->log, "deleted lock file %.12s", hex);
		lw__listing_forget(lock->repo, &req->id);
		/* deleted, unless its create lands later still */
		d->left = d->unsettled;
		if (d->unsettled && !lock->acquire_fn && lock->result == 0) {
			lock->result = -ETIMEDOUT;
			free(lock->last_error);
			lock->last_error = strdup("a create of it got no answer, and may "
						  "land after its delete");
		}
	}
	lw__breq_free(req);
	maybe_cleaned(lock);
}

static void start_delete(struct lw_lock *lock, struct lw__doomed *d)
{
	/* where a delete of a missing file succeeds (rest-server), the
	 * evidence comes from a look first, as refresh does it */
	bool look = d->evidence && d->tries == 0 &&
		    lock->repo->backend->ops->remove_hides_missing;
	struct lw__breq *req = lock_breq(lock, look ? LW__BOP_EXISTS : LW__BOP_REMOVE, &d->id,
					 NULL, 0, lock->clean_by, on_deleted);

	d->tries++;
	if (!req) {
		d->left = true; /* out of memory: nothing more can be done */
		return;
	}
	lock->cleaning++;
	d->req = req;
	lw__lock_ref(lock); /* the request's, until it completes */
	lw__breq_start(req);
}

void lw__lock_doom(struct lw_lock *lock, const struct lw__id *id)
{
	char hex[LW_ID_HEX + 1];

	for (int i = 0; i < lock->ndoomed; i++)
		if (lw__id_eq(&lock->doomed[i].id, id))
			return;
	/* most locks never need the list: allocated when they do */
	if (!lock->doomed)
		lock->doomed = malloc(LW__MAX_DOOMED * sizeof(*lock->doomed));
	if (lock->doomed && lock->ndoomed < LW__MAX_DOOMED) {
		lock->doomed[lock->ndoomed++] = (struct lw__doomed){ .id = *id };
		return;
	}
	lw__id_hex(id, hex);
	lw__err(&lock->loop->log, "lock file %.12s cannot be deleted: out of memory", hex);
}

/*
 * Every file at once, each bounded by the release timeout: a lock that
 * ends is no longer guaranteed, its files go stale by themselves, and
 * whoever waits for the end (lockwatch run's exit status, a supervisor)
 * should not wait a minute per file on a stalled server.  A failed delete
 * is tried again within that bound.
 */
static void cleanup(struct lw_lock *lock)
{
	int n = lock->ndoomed;

	lw__lock_phase(lock, LW__PH_CLEANUP);
	lock->attempt = 0;
	for (int i = 0; i < n; i++) {
		lock->doomed[i].evidence = lock->was_held && !lock->removed && lock->has_id &&
					   lw__id_eq(&lock->doomed[i].id, &lock->id);
		if (!lock->doomed[i].in_flight)
			start_delete(lock, &lock->doomed[i]);
	}
	maybe_cleaned(lock);
}

/* The request that was in flight when the lock ended has its answer (or
 * was cancelled): now the file it wrote or deleted can be deleted. */
static void on_in_flight_over(struct lw__breq *req)
{
	struct lw_lock *lock = req->userdata;
	struct lw__doomed *d = NULL;

	lock->req = NULL;
	if (lock->state == LW__LOCK_DONE) {
		/* the release timeout passed first: its file was named as
		 * left behind */
		lw__breq_free(req);
		lw__lock_unref(lock); /* the request's */
		return;
	}
	/* a create that got its lease: its key, if it lands, goes with it */
	if (req->op == LW__BOP_CREATE && req->lease) {
		lw__lock_set_id(lock, &req->id);
		lock->lease = req->lease;
	}
	for (int i = 0; i < lock->ndoomed && !d; i++)
		if (lock->doomed[i].in_flight && lw__id_eq(&lock->doomed[i].id, &req->id))
			d = &lock->doomed[i];
	if (d) {
		d->in_flight = false;
		d->unsettled = req->op == LW__BOP_CREATE && req->unsettled;
	}
	lw__breq_free(req);
	if (d)
		start_delete(lock, d);
	maybe_cleaned(lock);
	lw__lock_unref(lock); /* the request's */
}

/* The release timeout passed with files not deleted (a stalled server, an
 * operation hung in a worker thread, a request in flight that does not end):
 * the lock's end is over without them.  Their requests keep a reference to
 * the lock and find it over when they complete. */
static void on_clean_timeout(struct lw__timer *t)
{
	struct lw_lock *lock = LW_CONTAINER_OF(t, struct lw_lock, step_timer);
	struct lw__breq *busy[LW__MAX_DOOMED], *in_flight = lock->req;
	int n = 0;

	for (int i = 0; i < lock->ndoomed; i++) {
		if (lock->doomed[i].req || lock->doomed[i].in_flight)
			lock->doomed[i].left = true;
		if (lock->doomed[i].req)
			busy[n++] = lock->doomed[i].req;
	}
	if (!lock->acquire_fn) {
		lock->result = -ETIMEDOUT;
		free(lock->last_error);
		lock->last_error = strdup("no answer within the release timeout");
	}
	/* the lock is over first, so that their ends find it over */
	lw__lock_ref(lock);
	cleaned(lock);
	for (int i = 0; i < n; i++)
		lw__breq_cancel(busy[i]);
	lw__breq_cancel(in_flight);
	lw__lock_unref(lock);
}

void lw__lock_end(struct lw_lock *lock, int result, enum lw_cause cause,
		  const char *fmt, ...)
{
	char msg[600];
	va_list ap;

	if (lock->state != LW__LOCK_ACQUIRING && lock->state != LW__LOCK_HELD)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	lw__ctx_end(lock->ctx, cause, "%s", msg);
	lock->result = lock->state == LW__LOCK_ACQUIRING ? (result ? result : -ECANCELED) : 0;
	lock->was_held = lock->state == LW__LOCK_HELD;
	lock->removed = cause == LW_CAUSE_REMOVED;
	lw__lock_go(lock, LW__LOCK_ENDING, (enum lw__phase)lock->phase);
	lw__timer_stop(lock->loop->engine, &lock->deadline_timer);
	lw__timer_stop(lock->loop->engine, &lock->step_timer);
	lw__listing_cancel(lock->repo, &lock->waiter);
	lw__acquire_create_over(lock);
	atomic_store(&lock->deadline, 0);
	if (lock->has_id)
		lw__lock_doom(lock, &lock->id);
	if (lock->has_old)
		lw__lock_doom(lock, &lock->old_id);
	/* the whole end is bounded, the wait for the request in flight too */
	lock->clean_by = lw__add_sat(lw__now_boot(), lock->own.timing->release_timeout);
	lw__timer_init(&lock->step_timer, on_clean_timeout);
	lw__timer_start(lock->loop->engine, &lock->step_timer, lock->clean_by);
	if (lock->req) {
		/*
		 * The request in flight may still write its file, or was to
		 * delete one that may exist (a failed refresh's stray): that
		 * file is deleted once the request is over.  A create is not
		 * cut off but waited for: a server that took it in may store
		 * the file after a DELETE sent meanwhile has found nothing
		 * (a stalled Apache's or rclone's workers, woken, each finish
		 * their request in their own time), while its answer, even
		 * late, says that it is done.  A closed connection, or an
		 * answer on another one, would say nothing of that.
		 */
		struct lw__breq *req = lock->req;

		if (req->op == LW__BOP_CREATE || req->op == LW__BOP_REMOVE) {
			lw__lock_doom(lock, &req->id);
			for (int i = 0; i < lock->ndoomed; i++)
				if (lw__id_eq(&lock->doomed[i].id, &req->id))
					lock->doomed[i].in_flight = true;
		}
		req->done = on_in_flight_over;
		lw__lock_ref(lock); /* the request's, until it completes */
		if (req->op == LW__BOP_CREATE)
			lw__breq_settle(req);
		else
			lw__breq_cancel(req);
	}
	cleanup(lock);
}

/* ------------------------------------------------------------ public */

/* lw_ctx_cancel on the lock's context: a lock that is acquiring or held
 * ends; any other just sees the context end. */
static void cancel_lock(void *owner)
{
	lw__lock_end(owner, -ECANCELED, LW_CAUSE_CANCELLED, "cancelled by the application");
}

/* The loop shuts down (its ACTIVE hook): the lock ends as if released. */
static void shutdown_lock(struct lw__loop_hook *h)
{
	struct lw_lock *lock = LW_CONTAINER_OF(h, struct lw_lock, active);

	lw__lock_ref(lock);
	if (lock->state == LW__LOCK_ACQUIRING)
		lw__lock_end(lock, -ESHUTDOWN, LW_CAUSE_CANCELLED,
			     "acquire cancelled: the loop is shutting down");
	else
		lw__lock_end(lock, 0, LW_CAUSE_RELEASED,
			     "lock released: the loop is shutting down");
	lw__lock_unref(lock);
}

LW_EXPORT int lw_lock_new(struct lw_repo *repo, unsigned flags,
			  const char *purpose, struct lw_lock **lockp)
{
	struct lw_lock *lock;

	if (!repo || !lockp || (flags & ~LW_LOCK_EXCLUSIVE))
		return lw__fail(-EINVAL, "invalid arguments");
	if (purpose && strlen(purpose) > LW_RECORD_STR_MAX)
		return lw__fail(-EINVAL, "purpose longer than %d bytes", LW_RECORD_STR_MAX);
	lock = calloc(1, sizeof(*lock));
	if (!lock)
		return lw__fail(-ENOMEM, "out of memory");
	lock->own.purpose = lw__strdup0(purpose);
	lock->ctx = lw__ctx_new(repo->loop);
	if (!lock->ctx || (purpose && !lock->own.purpose)) {
		lw_ctx_unref(lock->ctx);
		free(lock->own.purpose);
		free(lock);
		return lw__fail(-ENOMEM, "out of memory");
	}
	lw__ctx_on_cancel(lock->ctx, cancel_lock, lock);
	lock->refs = 1;
	lock->loop = repo->loop;
	lock->repo = lw_repo_ref(repo);
	lock->own.exclusive = flags & LW_LOCK_EXCLUSIVE;
	lw__list_init(&lock->active.link);
	lock->active.fn = shutdown_lock;
	lw__list_init(&lock->waiter.link);
	atomic_init(&lock->deadline, 0);
	atomic_init(&lock->fencing_token, 0);
	atomic_init(&lock->acquire_called, false);
	atomic_init(&lock->release_called, false);
	*lockp = lock;
	return 0;
}

struct free_call {
	struct lw__call c;
	struct lw_lock *lock;
};

static void free_on_loop(struct lw__call *c)
{
	struct lw_lock *lock = LW_CONTAINER_OF(c, struct free_call, c)->lock;

	lock->app_gone = true;
	if (lock->state == LW__LOCK_ACQUIRING)
		lw__lock_end(lock, -ECANCELED, LW_CAUSE_CANCELLED, "acquire cancelled");
	else if (lock->state == LW__LOCK_HELD)
		lw__lock_end(lock, 0, LW_CAUSE_RELEASED, "lock released");
	lw__lock_unref(lock);
}

LW_EXPORT void lw_lock_free(struct lw_lock *lock)
{
	struct free_call fc = { .c.fn = free_on_loop, .lock = lock };

	if (!lock)
		return;
	/* After shutdown no loop runs: nothing can race with us. */
	if (lw__call_sync(lock->loop, &fc.c) < 0)
		lw__lock_unref(lock);
}

static void acquire_on_loop(struct lw__call *c)
{
	lw__acquire_start(LW_CONTAINER_OF(c, struct lw_lock, acquire_call));
}

LW_EXPORT int lw_lock_acquire_async(struct lw_lock *lock, lw_lock_fn fn,
				    void *userdata)
{
	if (!lock || !fn)
		return lw__fail(-EINVAL, "%s: a NULL argument", __func__);
	if (atomic_exchange(&lock->acquire_called, true))
		return lw__fail(-EALREADY, "acquire was already called on this lock");
	lock->acquire_fn = fn;
	lock->acquire_data = userdata;
	lock->acquire_call.fn = acquire_on_loop;
	return lw__post(lock->loop, &lock->acquire_call);
}

struct waiter {
	struct lw_loop *loop;
	bool done;
	int err;
	char msg[1024];
};

static void wake_waiter(struct lw_lock *lock, int err, const char *msg, void *userdata)
{
	struct waiter *w = userdata;

	w->err = err;
	snprintf(w->msg, sizeof(w->msg), "%s", msg ? msg : "");
	lw__loop_signal(w->loop, &w->done);
}

static int wait_for(struct lw_lock *lock, int r, struct waiter *w)
{
	if (r == 0)
		r = lw__loop_wait(lock->loop, &w->done);
	if (r == 0 && w->err < 0)
		return lw__fail(w->err, "%s", w->msg[0] ? w->msg : lw_strerror(w->err));
	return r < 0 ? r : w->err;
}

/* The blocking form of ASYNC: start it, wait for its callback. */
static int blocking(struct lw_lock *lock,
		    int (*async)(struct lw_lock *, lw_lock_fn, void *))
{
	struct waiter w = { .loop = lock ? lock->loop : NULL };

	if (!lock)
		return lw__fail(-EINVAL, "%s: a NULL argument", __func__);
	if (lw__on_loop_thread(lock->loop))
		return lw__fail(-EDEADLK, "blocking call from a callback of the loop");
	return wait_for(lock, async(lock, wake_waiter, &w), &w);
}

LW_EXPORT int lw_lock_acquire(struct lw_lock *lock)
{
	return blocking(lock, lw_lock_acquire_async);
}

/* What lw_lock_release_async asks for, taken over on the loop thread: a
 * lock that is ending reads RELEASE_FN there. */
struct release_call {
	struct lw__call c;
	struct lw_lock *lock;
	lw_lock_fn fn;
	void *userdata;
};

static void release_on_loop(struct lw__call *c)
{
	struct release_call *rc = LW_CONTAINER_OF(c, struct release_call, c);
	struct lw_lock *lock = rc->lock;
	lw_lock_fn fn = rc->fn;
	void *userdata = rc->userdata;

	free(rc);
	lock->release_fn = fn;
	lock->release_data = userdata;
	switch (lock->state) {
	case LW__LOCK_ACQUIRING:
		lw__lock_end(lock, -ECANCELED, LW_CAUSE_RELEASED, "released while acquiring");
		break;
	case LW__LOCK_HELD:
		lw__lock_end(lock, 0, LW_CAUSE_RELEASED, "lock released");
		break;
	case LW__LOCK_ENDING:
		break; /* RELEASE_FN runs when the files are gone */
	default:
		/* never acquired, or over already (lost, say): nothing to
		 * delete, but what its end found is still news */
		lock->release_fn = NULL;
		fn(lock, lock->result, lock->result ? lock->last_error : NULL, userdata);
		break;
	}
}

LW_EXPORT int lw_lock_release_async(struct lw_lock *lock, lw_lock_fn fn,
				    void *userdata)
{
	struct release_call *rc;
	int r;

	if (!lock || !fn)
		return lw__fail(-EINVAL, "%s: a NULL argument", __func__);
	if (atomic_exchange(&lock->release_called, true))
		return lw__fail(-EALREADY, "release was already called on this lock");
	rc = malloc(sizeof(*rc));
	if (!rc)
		return lw__fail(-ENOMEM, "out of memory");
	*rc = (struct release_call){ .c.fn = release_on_loop, .lock = lock, .fn = fn,
				     .userdata = userdata };
	r = lw__post(lock->loop, &rc->c);
	if (r < 0)
		free(rc);
	return r;
}

LW_EXPORT int lw_lock_release(struct lw_lock *lock)
{
	return blocking(lock, lw_lock_release_async);
}

LW_EXPORT struct lw_ctx *lw_lock_ctx(struct lw_lock *lock)
{
	return lock ? lock->ctx : NULL;
}

LW_EXPORT int lw_lock_id(struct lw_lock *lock, char id[65])
{
	struct lw__id copy;
	bool has;

	if (!lock || !id)
		return lw__fail(-EINVAL, "%s: a NULL argument", __func__);
	pthread_mutex_lock(&lock->loop->mu);
	copy = lock->id;
	has = lock->has_id;
	pthread_mutex_unlock(&lock->loop->mu);
	if (!has)
		return -ENOENT;
	lw__id_hex(&copy, id);
	return 0;
}

LW_EXPORT int64_t lw_lock_deadline(const struct lw_lock *lock)
{
	return lock ? atomic_load(&lock->deadline) : 0;
}

LW_EXPORT int64_t lw_lock_fencing_token(const struct lw_lock *lock)
{
	return lock ? atomic_load(&lock->fencing_token) : 0;
}

LW_EXPORT int lw_lock_set_process_group(struct lw_lock *lock, int64_t pgid)
{
	uint64_t start;

	if (!lock || pgid <= 1 || pgid > INT32_MAX)
		return lw__fail(-EINVAL, "invalid arguments");
	if (atomic_load(&lock->acquire_called))
		return lw__fail(-EBUSY, "the lock was acquired already");
	/* the leader's start time tells the group from a later one that
	 * reuses its number */
	if (lw__process_start(pgid, &start) < 0 || lw__group_alive(pgid, start) != 1)
		return lw__fail(-ESRCH, "no process group %" PRId64, pgid);
	lock->pgid = pgid;
	lock->pgid_start = start;
	return 0;
}

LW_EXPORT int lw_lock_set_event_fn(struct lw_lock *lock, lw_event_fn fn,
				   void *userdata)
{
	if (!lock)
		return lw__fail(-EINVAL, "%s: a NULL argument", __func__);
	/* before acquire, the loop thread has not seen the lock yet */
	if (atomic_load(&lock->acquire_called))
		return -EBUSY;
	lock->event_fn = fn;
	lock->event_data = userdata;
	return 0;
}
