/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The core objects the lock protocol is built on: loop (loop.c, call.c),
 * repository (repo.c), listing cache (listing.c) and work context (ctx.c).
 * Below it: backends and the engine; above it, the lock state machine
 * (lib/lock/lock-internal.h).
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
#include "util/queue.h"
#include "format/record.h"
#include "format/restic.h"

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
	struct lw__qnode node;    /* in loop->calls */
	void (*fn)(struct lw__call *c);
	bool sync;  /* a thread waits for it: DONE is set under loop->mu */
	bool done;
};

struct lw__key_derivation; /* format/restic-key.h */

struct lw_loop {
	struct lw__engine *engine;
	struct lw__log log;
	struct lw__backend_env backends; /* shared by the repositories' backends */
	atomic_int refs;          /* the application's, and one per repository */
	pthread_mutex_t mu;       /* calls, done flags, shutdown */
	pthread_cond_t cv;        /* broadcast when a waited-for thing is done */
	struct lw__queue calls;   /* of struct lw__call, under mu */
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
	/* of its repositories' key derivations (testing.h), on this thread */
	void (*key_observer)(void *userdata, const struct lw__key_derivation *kd);
	void *key_observer_data;
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
	int64_t release_timeout; /* the deletes of a lock's end, all at once */
	int64_t check_interval; /* HTTP: HEAD of a held lock's file between
				   refreshes; -1: refresh_interval / 5, 0: none */
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
	uint8_t ftype;    /* LW__FTYPE_*: anything but a file is FOREIGN */
	union {
		struct lw__record *rec;
		const struct lw__own *own;
		const char *why; /* FOREIGN */
	};
};

/* What the core knows of a lock of this process, for the listing's entries
 * of its files (LW__ENTRY_OWN): the lock (lib/lock/) embeds it and keeps it
 * current. */
struct lw__own {
	struct lw__timing *timing; /* the settings it was acquired with */
	int64_t created_at;        /* CLOCK_BOOTTIME: start of the last successful write */
	char *purpose;
	bool exclusive;
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
	bool running;
	struct lw__list now;  /* served by the listing in flight */
	struct lw__list next; /* asked after it started: served by the next */
	struct lw__breq *req;
	struct lw__entry **unread;
	size_t nunread, next_read, reads_in_flight;
	int err;
	char msg[320];
	struct lw__entry *stale; /* a stale lock of generation GEN, if any */
	size_t n_blocks_shared; /* entries of generation GEN that block ... */
	size_t n_blocks_all;    /* ... a shared lock / an exclusive lock */
	/* Kept as entries change (listing.c, account): of the entries a
	 * listing shows, this process's, its exclusive ones, and those that
	 * are records or foreign.  Without the last, the counts above need no
	 * pass over the map. */
	size_t n_own, n_own_exclusive, n_others;
	uint32_t class_gen;         /* counts classify()'s passes */
	uint32_t stale_removed_gen; /* CLASS_GEN whose stale ones went */
	bool delta;  /* the listing in flight is the backend's changes */
	bool rebase; /* the map missed an answer: ask for a full listing */
};

/* What a repository's lock files are (format.c). */
enum lw__format_state {
	LW__FORMAT_UNKNOWN,  /* not looked at yet, or the look failed */
	LW__FORMAT_PROBING,  /* reading config and keys/, deriving the key */
	LW__FORMAT_NATIVE,   /* lockwatch's records */
	LW__FORMAT_RESTIC,   /* restic's sealed JSON, under KEY */
	LW__FORMAT_REFUSED,  /* a restic repository without a password that
				opens it: ERR and MSG, until a setter changes */
};

struct lw__probe;

struct lw__format {
	/* the application's choices, under repo->mu; GEN counts changes */
	enum lw_format want;
	char *password;
	lw_password_fn password_fn;
	void *password_data;
	unsigned gen;
	/* the loop thread's */
	uint8_t state;                      /* enum lw__format_state */
	unsigned settled_gen;               /* GEN that REFUSED answered */
	const struct lw__restic_key *key;   /* in the process's key cache */
	struct lw__restic_sealer sealer;    /* KEY's contexts, for the loop */
	int err;
	char msg[300];
	struct lw__probe *probe;
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
	struct lw__format format;
	/* the lock layer said that removals are not watched (refresh.c):
	 * once per repository */
	bool watch_told;
};

int64_t lw__refreshability(const struct lw__timing *t);
/* The repository's current settings, with a reference for the caller. */
struct lw__timing *lw__repo_timing(struct lw_repo *repo);
void lw__timing_unref(struct lw__timing *t);
/* 0, or -EINVAL with a message when T would make every lock be lost. */
int lw__timing_check(const struct lw__timing *t, char *msg, size_t size);

/*
 * lw__format_prepare - settle REPO's format before its first listing: on a
 * backend with files, read config and keys/ and, on a restic repository,
 * derive its key on a worker thread.  Returns 1 when settled (NATIVE or
 * RESTIC), a negative errno when refused (-ENOKEY without a password,
 * -EACCES for one that opens no key; format.msg says why), 0 while it
 * works: then lw__listing_format_done follows.
 */
int lw__format_prepare(struct lw_repo *repo);
void lw__listing_format_done(struct lw_repo *repo, int err, const char *msg);
/* At repository close: the probe in flight lets go of it. */
void lw__format_fini(struct lw_repo *repo);
/* LOCK's record in REPO's format into BUF; *ID gets its name, the SHA-256
 * of it.  Returns the length, or a negative errno. */
int lw__format_encode(struct lw_repo *repo, const struct lw__record *rec, void *buf,
		      size_t size, struct lw__id *id);
/* A lock file's record: 0 with *REC, -ENOMEM, or another negative errno
 * with a static reason in *WHY (-LW_EINVALID: ours, but broken). */
int lw__format_decode(struct lw_repo *repo, const void *buf, size_t len,
		      struct lw__record **rec, const char **why);

/* Asks for a listing that starts after this call; W->fn runs with it. */
void lw__listing_request(struct lw_repo *repo, struct lw__list_waiter *w);
/* For a first check, which may see a snapshot taken a little before it
 * asked (the second check is what makes acquire sound): the listing in
 * flight, if any, serves W too. */
void lw__listing_join(struct lw_repo *repo, struct lw__list_waiter *w);
void lw__listing_cancel(struct lw_repo *repo, struct lw__list_waiter *w);
/* Whether ID was in the last listing. */
bool lw__listing_has(struct lw_repo *repo, const struct lw__id *id);
/* After W->fn was called with err 0: the first lock that blocks a lock of
 * kind EXCLUSIVE, other than the asking lock's own files, the NMINE ids
 * MINE. */
const struct lw__entry *lw__listing_conflict(struct lw_repo *repo,
					     const struct lw__id *const *mine, size_t nmine,
					     bool exclusive);
/* Stale locks do not block (their holders were strict and stopped at their
 * deadline) once they are gone: acquire removes those of the last listing
 * and logs it.  Returns one that is still there (its removal in flight, or
 * failed), or NULL: acquire looks again before it goes past them. */
const struct lw__entry *lw__listing_remove_stale(struct lw_repo *repo);
/* Describes a conflicting entry for a person. */
char *lw__entry_describe(const struct lw__entry *e, char *buf, size_t size);
/* The lock that file ID is of, or NULL. */
const struct lw__own *lw__listing_owner(struct lw_repo *repo, const struct lw__id *id);
/* Records that ID is a file of the lock OWN (so listings need not read it). */
int lw__listing_add_own(struct lw_repo *repo, const struct lw__id *id,
			const struct lw__own *own);
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
