/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The engine: one thread's event loop core.  It knows file descriptors,
 * instants and file operations, nothing of locks.  Two implementations share
 * this interface and the timer heap: io_uring (engine-uring.c) and epoll +
 * timerfd + a worker thread (engine-epoll.c).
 *
 * Everything here runs on the loop thread except lw__engine_wake().
 */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/heap.h"
#include "util/internal.h"
#include "util/queue.h"
#include "util/list.h"

struct lw__engine;
struct lw__worker;

/* ------------------------------------------------------------ timers */

struct lw__timer {
	struct lw__heap_node node;
	void (*fn)(struct lw__timer *t);
};

void lw__timer_init(struct lw__timer *t, void (*fn)(struct lw__timer *));
/* An urgent timer (a lock deadline) fires before the other timers that are
 * due in the same turn, and before the completions of that turn.  Set it
 * while the timer is stopped. */
static inline void lw__timer_set_urgent(struct lw__timer *t)
{
	t->node.urgent = true;
}
/* Fires FN at the CLOCK_BOOTTIME instant WHEN (ns); restarts an active
 * timer.  The caller reserved its slot with lw__engine_reserve(). */
void lw__timer_start(struct lw__engine *e, struct lw__timer *t, int64_t when);
void lw__timer_stop(struct lw__engine *e, struct lw__timer *t);
static inline bool lw__timer_active(const struct lw__timer *t)
{
	return lw__heap_queued(&t->node);
}
/* Makes room for DELTA more active timers; negative gives it back. */
int lw__engine_reserve(struct lw__engine *e, int delta);
/* The earliest active timer's node, or NULL: where the engine's wait ends. */
struct lw__heap_node *lw__engine_next_timer(const struct lw__engine *e);
/* Fires the urgent timers that are due; called between the callbacks of a
 * batch, so that a deadline never waits for a whole turn. */
void lw__engine_urgent(struct lw__engine *e);

/* ---------------------------------------------------------- deferred */

/* Work to run on the loop thread at the next turn, outside of whatever
 * callback queued it (libcurl, for one, refuses re-entry from its own
 * callbacks). */
struct lw__defer {
	struct lw__qnode node;
	void (*fn)(struct lw__defer *d);
	bool queued;
};

void lw__defer(struct lw__engine *e, struct lw__defer *d,
	       void (*fn)(struct lw__defer *));
void lw__defer_cancel(struct lw__engine *e, struct lw__defer *d);

/* --------------------------------------------------------- fd watches */

#define LW__IN 0x1u
#define LW__OUT 0x2u
#define LW__ERR 0x4u

/* Readiness of a descriptor the caller owns (libcurl's sockets).  The
 * engine holds no pointer to the watch once it is stopped: completions that
 * arrive later are matched by slot and generation and dropped. */
struct lw__watch {
	int fd;
	unsigned events;
	void (*fn)(struct lw__watch *w, unsigned revents);
	uint32_t slot;
	uint32_t gen;
	unsigned armed; /* uring: events of the poll in flight */
};

int lw__watch_start(struct lw__engine *e, struct lw__watch *w, int fd,
		    unsigned events, void (*fn)(struct lw__watch *, unsigned));
int lw__watch_modify(struct lw__engine *e, struct lw__watch *w, unsigned events);
/* Call before closing the descriptor. */
void lw__watch_stop(struct lw__engine *e, struct lw__watch *w);

/* ----------------------------------------------------- file operations */

enum lw__fop_type {
	LW__FOP_OPENAT,   /* path, flags, mode -> fd */
	LW__FOP_READ,     /* fd, buf, len, off -> bytes */
	LW__FOP_WRITE,    /* fd, buf, len, off -> bytes */
	LW__FOP_FSYNC,    /* fd */
	LW__FOP_CLOSE,    /* fd */
	LW__FOP_RENAMEAT, /* path -> path2, flags (renameat2) */
	LW__FOP_UNLINKAT, /* path, flags */
	LW__FOP_MKDIRAT,  /* path, mode */
	LW__FOP_READDIR,  /* path -> names: each a type byte (LW__FTYPE_*)
			     and the name, NUL-terminated; lw__names_free */
};

/* What a READDIR entry is, from d_type (or fstatat where it says nothing):
 * nothing but a regular file can be a lock file. */
enum lw__ftype {
	LW__FTYPE_FILE = 'f',
	LW__FTYPE_DIR = 'd',
	LW__FTYPE_SYMLINK = 'l',
	LW__FTYPE_OTHER = 'o', /* FIFO, socket, device */
};

/*
 * One file operation on absolute paths.  DONE runs exactly once, on the
 * loop thread, when the engine no longer touches the operation: a caller
 * that stops caring waits for it and cleans up there.  On io_uring every
 * operation is an SQE linked to a LINK_TIMEOUT at DEADLINE, so a hung
 * filesystem gets -ECANCELED; elsewhere a worker thread runs it and the
 * caller's own timers bound the wait.
 */
struct lw__fop {
	enum lw__fop_type type;
	int fd;
	int flags;
	unsigned mode;
	const char *path;
	const char *path2;
	/* When NAME is set the operation runs on NAME (and NAME2) in the
	 * directory DIRFD, and PATH (PATH2) only names it for messages and
	 * the fault hook: a name of one component in a directory opened
	 * without following a symlink reaches nothing outside it. */
	int dirfd;
	const char *name;
	const char *name2;
	/* OPENAT: resolve without any symlink and without leaving DIRFD
	 * (openat2 RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH where the kernel has
	 * it, O_NOFOLLOW otherwise) */
	bool beneath;
	void *buf;
	size_t len;
	uint64_t off;
	int64_t deadline; /* CLOCK_BOOTTIME; 0: none */
	char *names;      /* READDIR result */
	size_t names_len;
	void (*done)(struct lw__fop *op, int res);
	/* engine private */
	struct lw__defer defer;
	int64_t kts[2]; /* io_uring: the deadline as the kernel reads it */
	uint64_t how[3]; /* io_uring: openat2's struct open_how, likewise */
	int res;
	bool hang;
};

void lw__fop_submit(struct lw__engine *e, struct lw__fop *op);
/* Frees a READDIR result (NAMES, NAMES_LEN); accepts NULL. */
void lw__names_free(char *names, size_t len);

/* Fault injection for tests: called for every submitted operation.  Return
 * 0 to run it, a negative errno to fail it with that, or LW__FAULT_HANG to
 * make it hang (a read of a pipe nobody writes) until lw__fault_release. */
#define LW__FAULT_HANG 1
typedef int (*lw__fault_fn)(const struct lw__fop *op, void *userdata);
void lw__fault_set(lw__fault_fn fn, void *userdata);
/* Ends every injected hang; the hung operations complete with -ECANCELED. */
void lw__fault_release(void);
/* The read end of the hang pipe (engines use it to build the hang). */
int lw__fault_hang_fd(void);
/* What the hook says of OP: 0, a negative errno or LW__FAULT_HANG. */
int lw__fault_check(const struct lw__fop *op);

/* ------------------------------------------------------------ engine */

struct lw__engine_ops {
	enum lw_engine kind;
	size_t size;
	int (*init)(struct lw__engine *e);
	void (*fini)(struct lw__engine *e);
	int (*fd)(const struct lw__engine *e);
	/* Waits up to TIMEOUT ns (-1: forever) for anything, or until the
	 * earliest timer; keeps what arrived for DISPATCH. */
	int (*wait)(struct lw__engine *e, int64_t timeout);
	/* Runs the callbacks of what WAIT collected.  Due timers fire in
	 * between: a deadline is never late because of I/O that completed
	 * in the same turn. */
	void (*dispatch)(struct lw__engine *e);
	int (*watch_update)(struct lw__engine *e, struct lw__watch *w,
			    unsigned events);
	void (*watch_stop)(struct lw__engine *e, struct lw__watch *w);
	void (*fop_submit)(struct lw__engine *e, struct lw__fop *op);
};

struct lw__watch_slot {
	struct lw__watch *w; /* NULL: free */
	uint32_t gen;
};

struct lw__engine {
	const struct lw__engine_ops *ops;
	const struct lw__log *log;
	struct lw__heap heap;   /* timers */
	struct lw__heap urgent; /* urgent timers, kept apart: see fire_timers */
	struct lw__queue deferred; /* of struct lw__defer */
	struct lw__watch_slot *slots;
	uint32_t nslots;
	uint32_t free_slot; /* head of the free list threaded through gen */
	struct lw__worker *worker;
	int wake_fd; /* eventfd: posted calls and worker completions */
	atomic_bool wake_pending;
	void (*on_wake)(void *userdata);
	void *wake_userdata;
	/* the descriptor budget (below) */
	unsigned fd_limit;
	unsigned fd_cap;  /* FD_LIMIT, or less since EMFILE: what is granted */
	unsigned fd_used;
	int64_t fd_starved_at; /* the last EMFILE or ENFILE */
	struct lw__list fd_line;
	struct lw__timer fd_retry;
};

/* ------------------------------------------------- descriptor budget */

/*
 * The descriptors the loop's file operations and HTTP connections hold at
 * once are bounded, so that thousands of locks never run the process out
 * of descriptors: a request that needs one takes it from the budget or
 * waits in one line with every other (FIFO, across repositories).  The
 * bound comes from RLIMIT_NOFILE, minus a margin left to the application,
 * or from lw_loop_set_fd_limit().  EMFILE or ENFILE from the kernel (the
 * application, or another loop, holds the rest) is back-pressure: the
 * request gives its descriptor back and waits first in line, and the loop
 * grants no more than it holds until one of its own is freed (or, when it
 * holds nothing that will be, a moment later).
 */
struct lw__fd_waiter {
	struct lw__list link;
	/* Runs on the loop thread, inside whatever call freed the descriptor
	 * it now holds. */
	void (*fn)(struct lw__fd_waiter *w);
};

static inline void lw__fd_waiter_init(struct lw__fd_waiter *w,
				      void (*fn)(struct lw__fd_waiter *))
{
	lw__list_init(&w->link);
	w->fn = fn;
}
/* Takes a descriptor: true when W holds one now; false when it waits in
 * line (its FN runs once it holds one). */
bool lw__fd_take(struct lw__engine *e, struct lw__fd_waiter *w);
/* For a W that holds some and needs one more: it keeps its place first in
 * line (anything else would let half-served waiters hold the budget). */
bool lw__fd_take_more(struct lw__engine *e, struct lw__fd_waiter *w);
/* Gives one back; the first in line gets it. */
void lw__fd_give(struct lw__engine *e);
/* W leaves the line without a descriptor; accepts one not in line. */
void lw__fd_cancel(struct lw__engine *e, struct lw__fd_waiter *w);
/* The kernel said ERR (-EMFILE or -ENFILE) to W, which held a descriptor
 * of the budget: W gives it back and waits first in line to try again. */
void lw__fd_starved(struct lw__engine *e, struct lw__fd_waiter *w, int err);
/* The bound (0: the default, from RLIMIT_NOFILE); what it is now. */
void lw__fd_set_limit(struct lw__engine *e, unsigned limit);
static inline unsigned lw__fd_limit(const struct lw__engine *e)
{
	return e->fd_limit;
}
/* Whether ERR is the kernel's "no descriptor left". */
static inline bool lw__fd_exhausted(int err)
{
	return err == -EMFILE || err == -ENFILE;
}

/*
 * lw__engine_new - create an engine of KIND (AUTO tries io_uring, then
 * epoll).  ON_WAKE runs on the loop thread after lw__engine_wake().
 */
int lw__engine_new(enum lw_engine kind, const struct lw__log *log,
		   void (*on_wake)(void *), void *userdata,
		   struct lw__engine **ep);
void lw__engine_free(struct lw__engine *e);
static inline enum lw_engine lw__engine_kind(const struct lw__engine *e)
{
	return e->ops->kind;
}
static inline int lw__engine_fd(const struct lw__engine *e)
{
	return e->ops->fd(e);
}
/* Waits at most TIMEOUT_MS (-1: no limit) and runs what is due. */
int lw__engine_run_once(struct lw__engine *e, int timeout_ms);
/* Thread-safe: makes the loop turn and call ON_WAKE. */
void lw__engine_wake(struct lw__engine *e);

/* ------------------------------------------- for the engine implementations */

extern const struct lw__engine_ops lw__engine_uring;
extern const struct lw__engine_ops lw__engine_epoll;

/* Reads the wake eventfd, completes worker operations, calls ON_WAKE. */
void lw__engine_woken(struct lw__engine *e);
/* The watch in SLOT if its generation is still GEN. */
struct lw__watch *lw__engine_watch(struct lw__engine *e, uint32_t slot,
				   uint32_t gen);
/* Completes OP with RES at the next turn. */
void lw__fop_complete_later(struct lw__engine *e, struct lw__fop *op, int res);
/* Runs OP on a worker thread (created on first use). */
void lw__fop_to_worker(struct lw__engine *e, struct lw__fop *op);

/* worker.c */
struct lw__worker *lw__worker_new(struct lw__engine *e);
void lw__worker_submit(struct lw__worker *w, struct lw__fop *op);
/* Completes the operations the workers finished. */
void lw__worker_reap(struct lw__worker *w);
/* Detaches from the threads; a thread stuck in a hung call cleans up after
 * itself when the call returns. */
void lw__worker_free(struct lw__worker *w);
