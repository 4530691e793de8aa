/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The lock protocol and the public objects built on it: loop (loop.c),
 * repository (repo.c), listing cache (listing.c), lock (lock.c, acquire.c,
 * refresh.c) and work context (ctx.c).  Below it: backends and the engine.
 *
 * Unless a comment says otherwise, state here is touched only on the loop
 * thread.  Public functions reach it by posting a call (lw__post).
 */
#pragma once

#include <pthread.h>
#include <stdatomic.h>

#include "backend/backend.h"
#include "core/conflict.h"
#include "engine/engine.h"
#include "util/idmap.h"
#include "util/list.h"
#include "format/record.h"

/* -------------------------------------------------------------- loop */

/* What a loop's shutdown ends, registered by its owner, so that the loop
 * does not call up into locks and repositories: first every ACTIVE hook
 * (the locks, which leave with lw__loop_del_active once their files are
 * gone; shutdown waits for that, bounded), then, once the engine stopped,
 * every OPEN hook (the repositories' backends).  FN runs on the loop
 * thread; an OPEN hook's FN removes its hook. */
struct lw__loop_hook {
	struct lw__list link;
	void (*fn)(struct lw__loop_hook *h);
};

/* A function to run on the loop thread. */
struct lw__call {
	struct lw__call *next;
	void (*fn)(struct lw__call *c);
	bool sync;  /* a thread waits for it: DONE is set under loop->mu */
	bool done;
};

struct lw_loop {
	struct lw__engine *engine;
	struct lw__log log;
	struct lw__backend_env backends; /* shared by the repositories' backends */
	atomic_int refs;          /* the application's, and one per repository */
	pthread_mutex_t mu;       /* calls, done flags, shutdown */
	pthread_cond_t cv;        /* broadcast when a waited-for thing is done */
	struct lw__call *calls;
	struct lw__call **calls_tail;
	pthread_mutex_t run_mu;   /* held by whoever runs the loop */
	pthread_t thread;
	bool started;
	atomic_bool stop;
	bool shutdown;            /* under mu: no more calls are taken */
	struct lw__list active;   /* hooks: locks acquiring, held or ending */
	struct lw__list open;     /* hooks: repositories with an open backend */
	bool drained;             /* under mu: ACTIVE became empty */
	struct lw__list all;      /* link in the process's list of loops */
	struct lw__observer observer; /* of its backends' requests */
};

/* call.c: calling into the loop */
/* Whether the calling thread is running LOOP right now. */
bool lw__on_loop_thread(const struct lw_loop *loop);
/* Makes the calling thread the one running LOOP (NULL: none); returns the
 * loop it ran before. */
struct lw_loop *lw__loop_enter(struct lw_loop *loop);
/* One turn of LOOP's engine, as its thread. */
int lw__loop_run(struct lw_loop *loop, int timeout_ms);
/* ON_WAKE of the engine: runs the calls posted since the last turn. */
void lw__loop_run_calls(void *loop);
/* At shutdown: takes no more calls, and runs those that came too late. */
void lw__loop_close_calls(struct lw_loop *loop);
/* Runs C on the loop thread.  Returns 0, or -ESHUTDOWN. */
int lw__post(struct lw_loop *loop, struct lw__call *c);
/* Runs C on the loop thread and waits until it ran (runs it at once on the
 * loop thread itself).  Returns 0, or -ESHUTDOWN. */
int lw__call_sync(struct lw_loop *loop, struct lw__call *c);
/* Waits until *DONE (set under loop->mu by lw__loop_signal) becomes true,
 * running the loop meanwhile if nobody else does. */
int lw__loop_wait(struct lw_loop *loop, const bool *done);
/* The same, until the CLOCK_BOOTTIME instant UNTIL (0: none): -ETIMEDOUT. */
int lw__loop_wait_until(struct lw_loop *loop, const bool *done, int64_t until);
/* Sets *DONE under the loop's mutex and wakes waiters. */
void lw__loop_signal(struct lw_loop *loop, bool *done);

/* loop.c: the lifecycle */
void lw__loop_add_active(struct lw_loop *loop, struct lw__loop_hook *h);
/* H's lock is over; the last one to leave wakes the shutdown. */
void lw__loop_del_active(struct lw_loop *loop, struct lw__loop_hook *h);
void lw__loop_add_open(struct lw_loop *loop, struct lw__loop_hook *h);
struct lw_loop *lw__loop_ref(struct lw_loop *loop);
void lw__loop_unref(struct lw_loop *loop);
/* Sets the observer of every backend request of LOOP (lockwatch-bench);
 * FN NULL removes it.  Returns 0, or -ESHUTDOWN. */
int lw__loop_observe(struct lw_loop *loop,
		     void (*fn)(void *userdata, const struct lw__breq *req,
				int64_t started, int64_t ended),
		     void *userdata);

/* --------------------------------------------------------- repository */

/* Settings of locks, shared: a lock keeps the ones it was acquired with,
 * and changing a repository's settings makes a new copy. */
struct lw__timing {
	atomic_int refs;
	int64_t refresh_interval;
	int64_t stale_timeout;
	int64_t recheck_delay;
	int64_t retry_lock;
	int64_t retry_backoff; /* first wait of retry_lock; doubles to 12 x */
	int64_t check_retry;
	int64_t op_timeout;
	bool remove_stale;
	bool suspend_recovery;
};

/* What a listing says about one lock file. */
enum lw__entry_state {
	LW__ENTRY_UNREAD,
	LW__ENTRY_RECORD,  /* a valid record: REC */
	LW__ENTRY_FOREIGN, /* undecodable: blocks like an exclusive lock */
	LW__ENTRY_EMPTY,   /* zero bytes: ignored, as restic does */
	LW__ENTRY_OWN,     /* a lock of this repository object: OWN */
};

enum lw__blocks { LW__BLOCKS_NONE, LW__BLOCKS_SHARED, LW__BLOCKS_ALL };

struct lw__entry {
	struct lw__id id; /* first: the map's key */
	uint32_t seen;    /* generation of the last listing that showed it */
	uint8_t state;
	uint8_t blocks;   /* enum lw__blocks, as of generation SEEN */
	bool stale;
	bool removing;    /* a stale-lock removal is in flight */
	bool invalid;     /* FOREIGN: ours, but breaking the format */
	union {
		struct lw__record *rec;
		struct lw_lock *own;
		const char *why; /* FOREIGN */
	};
};

/* A lock waiting for a listing. */
struct lw__list_waiter {
	struct lw__list link;
	void (*fn)(struct lw__list_waiter *w, int err, const char *msg);
};

struct lw__listing {
	struct lw__idmap map; /* id -> struct lw__entry */
	/* ids this process deleted since the listing in flight started: its
	 * directory snapshot may still show them */
	struct lw__idmap forgotten;
	uint32_t gen;
	uint32_t stale_removed_gen;
	bool running;
	struct lw__list now;  /* served by the listing in flight */
	struct lw__list next; /* asked after it started: served by the next */
	struct lw__breq *req;
	struct lw__entry **unread;
	size_t nunread, next_read, reads_in_flight;
	int err;
	char msg[200];
	struct lw__entry *stale; /* a stale lock of generation GEN, if any */
	size_t n_blocks_shared; /* entries of generation GEN that block ... */
	size_t n_blocks_all;    /* ... a shared lock / an exclusive lock */
};

struct lw_repo {
	atomic_int refs;
	struct lw_loop *loop;
	struct lw__url url;
	struct lw__backend *backend;
	pthread_mutex_t mu;       /* TIMING, read by any thread */
	struct lw__timing *timing;
	struct lw__listing listing;
	struct lw__loop_hook open; /* in loop->open while the backend is */
	/* acquires waiting for their turn to create, and creates in flight
	 * (acquire.c) */
	struct lw__list create_queue;
	unsigned creating;
	struct lw__defer admit;
};

int64_t lw__refreshability(const struct lw__timing *t);
/* The repository's current settings, with a reference for the caller. */
struct lw__timing *lw__repo_timing(struct lw_repo *repo);
void lw__timing_unref(struct lw__timing *t);
/* 0, or -EINVAL with a message when T would make every lock be lost. */
int lw__timing_check(const struct lw__timing *t, char *msg, size_t size);

/* Asks for a listing that starts after this call; W->fn runs with it. */
void lw__listing_request(struct lw_repo *repo, struct lw__list_waiter *w);
void lw__listing_cancel(struct lw_repo *repo, struct lw__list_waiter *w);
/* Whether ID was in the last listing. */
bool lw__listing_has(struct lw_repo *repo, const struct lw__id *id);
/* After W->fn was called with err 0: the first lock that blocks a lock of
 * kind EXCLUSIVE, other than SELF's own files (SELF may be NULL). */
const struct lw__entry *lw__listing_conflict(struct lw_repo *repo,
					     const struct lw_lock *self,
					     bool exclusive);
/* Stale locks do not block (their holders were strict and stopped at their
 * deadline) once they are gone: acquire removes those of the last listing
 * and logs it.  Returns one that is still there (its removal in flight, or
 * failed), or NULL: acquire looks again before it goes past them. */
const struct lw__entry *lw__listing_remove_stale(struct lw_repo *repo);
/* Describes a conflicting entry for a person. */
char *lw__entry_describe(const struct lw__entry *e, char *buf, size_t size);
/* Records that LOCK's file is ID (so listings need not read it). */
int lw__listing_add_own(struct lw_repo *repo, const struct lw__id *id,
			struct lw_lock *lock);
void lw__listing_forget(struct lw_repo *repo, const struct lw__id *id);
void lw__listing_fini(struct lw_repo *repo);

/* --------------------------------------------------------------- ctx */

struct lw__ctx_cb;

struct lw_ctx {
	atomic_int refs;
	atomic_int cause;        /* enum lw_cause; stored after MSG */
	atomic_bool held;        /* suspend recovery is checking the lock */
	int fd;                  /* eventfd, -1 until asked for */
	char *msg;               /* written before CAUSE is stored */
	int64_t done_at;         /* CLOCK_BOOTTIME when it ended */
	struct lw_loop *loop;
	/* what lw_ctx_cancel does besides ending the context, registered by
	 * its owner (the lock: end it); cleared when the owner goes */
	void (*cancel)(void *owner);
	void *owner;
	struct lw__ctx_cb *cbs;
	struct lw__defer run_cbs;
	atomic_bool cancel_posted;
};

struct lw_ctx *lw__ctx_new(struct lw_loop *loop);
/* On the loop thread: lw_ctx_cancel calls FN(OWNER) first; NULL: nothing. */
void lw__ctx_on_cancel(struct lw_ctx *ctx, void (*fn)(void *owner), void *owner);
/* Ends CTX with CAUSE and a message; later calls do nothing.  Returns
 * whether this call ended it. */
bool lw__ctx_end(struct lw_ctx *ctx, enum lw_cause cause, const char *fmt, ...)
	LW_PRINTF(3, 4);
/* Holds (or resumes) the context's work; lw_ctx_wait waits on it. */
void lw__ctx_hold(struct lw_ctx *ctx, bool held);

/* -------------------------------------------------------------- lock */

enum lw__lock_state {
	LW__LOCK_NEW,
	LW__LOCK_ACQUIRING,
	LW__LOCK_HELD,
	LW__LOCK_ENDING, /* the context ended; lock files are being deleted */
	LW__LOCK_DONE,
};

enum lw__phase {
	LW__PH_NONE,
	LW__PH_CHECK1,   /* acquire: first listing */
	LW__PH_CREATE,   /* acquire: creating the lock file */
	LW__PH_RECHECK,  /* acquire: waiting, then the second listing */
	LW__PH_BACKOFF,  /* acquire: waiting to retry */
	LW__PH_UNDO,     /* acquire: removing our file after a conflict */
	LW__PH_IDLE,     /* held: waiting for the next refresh */
	LW__PH_CHECK_OLD, /* refresh: is the old file still there? */
	LW__PH_WRITE,    /* refresh: writing the new record */
	LW__PH_KEEPALIVE, /* refresh: renewing the lease (leased backends) */
	LW__PH_DELETE_OLD, /* refresh: deleting the old file */
	LW__PH_CLEANUP,  /* ending: deleting files */
};

/* the current file, the old one, one in flight, one stray */
#define LW__MAX_DOOMED 4

struct lw_lock {
	int refs;                 /* the application's; the loop's while active */
	struct lw_loop *loop;
	struct lw_repo *repo;
	struct lw_ctx *ctx;
	char *purpose;
	int64_t pgid;             /* the job's process group, 0: none */
	uint64_t pgid_start;      /* ... and its leader's start time */
	bool exclusive;
	bool app_gone;            /* no more callbacks */
	uint8_t state;            /* enum lw__lock_state */
	uint8_t phase;            /* enum lw__phase */
	uint8_t attempt;          /* retries of the current step */
	uint8_t ndoomed;
	uint8_t stale_looks;      /* acquire: listings that still showed a stale
				     lock being removed */
	bool has_id;
	bool has_old;             /* OLD_ID still has to be deleted */
	bool reserved;            /* two timer slots in the engine's heap */
	bool recovering;          /* after a suspend: re-acquiring in place */
	atomic_bool acquire_called;
	atomic_bool release_called;
	int result;               /* of the acquire, or of the cleanup */
	struct lw__loop_hook active; /* in loop->active until it is done */
	struct lw__id id;         /* the current lock file */
	struct lw__id old_id;
	struct lw__id *doomed;    /* LW__MAX_DOOMED files to delete while ending,
				     allocated when the first is known */
	int64_t lease;            /* leased backends: what keeps ID alive */
	int64_t token;            /* ... and ID's fencing token */
	atomic_int_least64_t fencing_token; /* TOKEN, once acquired */
	struct lw__timing *timing;
	struct lw__timer deadline_timer;
	struct lw__timer step_timer;
	atomic_int_least64_t deadline;
	int64_t created_at;       /* start of the last successful write */
	int64_t rec_real, rec_boot; /* the last record's time, and boottime then */
	bool clock_behind;        /* the wall clock is behind REC_REAL's timeline */
	int64_t give_up_at;       /* acquire: end of retry_lock */
	int64_t backoff;
	struct lw__breq *req;     /* the one request in flight */
	int64_t req_started;
	int64_t req_started_mono; /* the same instant on CLOCK_MONOTONIC */
	int64_t created_mono;     /* CREATED_AT on CLOCK_MONOTONIC */
	char *last_error;         /* of the last failed refresh, for messages */
	struct lw__list_waiter waiter;
	struct lw__list create_link; /* repo->create_queue while it waits */
	bool create_slot;         /* holds one of the repository's creates */
	lw_lock_fn acquire_fn;
	void *acquire_data;
	lw_lock_fn release_fn;    /* loop thread only: set by release_on_loop */
	void *release_data;
	lw_event_fn event_fn;
	void *event_data;
	struct lw__call acquire_call;
};

/* lock.c */
void lw__lock_ref(struct lw_lock *lock);
void lw__lock_unref(struct lw_lock *lock);
void lw__lock_emit(struct lw_lock *lock, enum lw_event_type type, int err,
		   int64_t next, int64_t until, const char *fmt, ...)
	LW_PRINTF(6, 7);
/* Starts REQ for LOCK as its one request in flight. */
bool lw__lock_request(struct lw_lock *lock, enum lw__bop op,
		      const struct lw__id *id, const void *data, size_t len,
		      int64_t deadline, void (*done)(struct lw__breq *));
/*
 * lw__lock_end - end the lock: its context (with CAUSE and the message,
 * unless it ended already), its timers and its request in flight; then
 * delete every file it may have written, and only then call ACQUIRE_FN
 * (with RESULT, for an acquire that did not succeed) and RELEASE_FN.
 */
void lw__lock_end(struct lw_lock *lock, int result, enum lw_cause cause,
		  const char *fmt, ...) LW_PRINTF(4, 5);
/* ID is a file the lock may have written: it is deleted when the lock
 * ends. */
void lw__lock_doom(struct lw_lock *lock, const struct lw__id *id);
/* Encodes a fresh record for LOCK into BUF; returns its length.  Record
 * times never go back by more than the time that passed (lock.c). */
int lw__lock_record(struct lw_lock *lock, void *buf, size_t size);
void lw__lock_set_id(struct lw_lock *lock, const struct lw__id *id);
int64_t lw__backoff_jitter(int64_t d);

/* acquire.c */
void lw__acquire_start(struct lw_lock *lock);
/* After a suspend: acquire again in place, keeping the old file until the
 * new one passed the double check; then lw__refresh_resume. */
void lw__acquire_recover(struct lw_lock *lock, int64_t slept);
/* LOCK's create is over, or its wait for one (the lock ended): the next
 * acquire in its repository's line may create. */
void lw__acquire_create_over(struct lw_lock *lock);

/* refresh.c */
/* The lock was confirmed: its deadline runs from CREATED_AT. */
void lw__refresh_begin(struct lw_lock *lock);
/* Suspend recovery confirmed the lock: the context goes on. */
void lw__refresh_resume(struct lw_lock *lock);
