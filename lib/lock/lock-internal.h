/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The lock object and its state machine: lock.c (public calls, the request
 * in flight, the end), acquire.c and refresh.c.  Only they include this
 * header; the core below knows a lock through the hooks it registers and
 * the struct lw__own it embeds.
 *
 * State here is touched only on the loop thread unless a comment says
 * otherwise.
 */
#pragma once

#include "core/protocol.h"

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
/* what lw__lock_files reports: the current file, the old one, the doomed */
#define LW__LOCK_FILES (2 + LW__MAX_DOOMED)

/* A file to delete when the lock ends. */
struct lw__doomed {
	struct lw__id id;
	uint8_t tries;
	bool evidence;  /* the current file of a held lock: gone at the first
			   try means someone removed it */
	bool left;      /* could not be deleted in time */
	bool in_flight; /* the lock's request in flight writes or deletes it:
			   deleted once that request has its answer */
	bool unsettled; /* its create got no answer from the server: it may
			   land after the delete */
	struct lw__breq *req; /* its delete in flight, or NULL */
};

struct lw_lock {
	int refs;                 /* the application's; the loop's while active */
	struct lw_loop *loop;
	struct lw_repo *repo;
	struct lw_ctx *ctx;
	struct lw__own own;       /* timing, created_at, purpose, exclusive:
				     what the listing shows of its files */
	int64_t pgid;             /* the job's process group, 0: none */
	uint64_t pgid_start;      /* ... and its leader's start time */
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
	bool check_tick;          /* the step timer is for a check, not a
				     refresh (HTTP: lw_repo_set_check_interval) */
	atomic_bool acquire_called;
	atomic_bool release_called;
	int result;               /* of the acquire, or of the cleanup */
	struct lw__loop_hook active; /* in loop->active until it is done */
	struct lw__id id;         /* the current lock file */
	struct lw__id old_id;
	struct lw__doomed *doomed; /* LW__MAX_DOOMED files to delete while
				     ending, allocated when the first is known */
	uint8_t cleaning;         /* their deletes in flight */
	bool was_held;            /* ending a lock that was held */
	bool removed;             /* someone removed it while it was held */
	int64_t clean_by;         /* the deletes give up then (BOOTTIME) */
	int64_t lease;            /* leased backends: what keeps ID alive */
	int64_t token;            /* ... and ID's fencing token */
	atomic_int_least64_t fencing_token; /* TOKEN, once acquired */
	struct lw__timer deadline_timer;
	struct lw__timer step_timer;
	atomic_int_least64_t deadline;
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
/* Every change of LOCK's state or phase goes through here (one debug log
 * line each, as curl's multistate() does). */
void lw__lock_go(struct lw_lock *lock, enum lw__lock_state state, enum lw__phase phase);
/* A new phase in the same state. */
static inline void lw__lock_phase(struct lw_lock *lock, enum lw__phase phase)
{
	lw__lock_go(lock, (enum lw__lock_state)lock->state, phase);
}
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
/* Encodes a fresh record for LOCK into BUF, in its repository's format;
 * returns its length, and its name in *ID (the SHA-256 of it).  Record
 * times never go back by more than the time that passed (lock.c). */
int lw__lock_file(struct lw_lock *lock, void *buf, size_t size, struct lw__id *id);
/* Points MINE at every file of LOCK; returns how many. */
size_t lw__lock_files(const struct lw_lock *lock, const struct lw__id *mine[LW__LOCK_FILES]);
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
