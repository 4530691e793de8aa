/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Backends store lock files: local, rest, dav, etcd.  One vtable; each
 * operation is a request that completes exactly once, on the loop thread.
 * The layer above (listing.c, lock.c) knows nothing of how.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"
#include "util/internal.h"
#include "util/url.h"

struct lw__backend;
struct lw__http;
struct lw__inotify;

/* What the backends of one loop share; the loop owns it. */
struct lw__backend_env {
	struct lw__engine *engine;
	const struct lw__log *log;
	struct lw__http *http; /* created by the first HTTP backend */
	/* the local backends' one inotify instance (local.c), created by
	 * the first watch */
	struct lw__inotify *inotify;
};

/* Frees what backends created in ENV; after every backend is closed. */
void lw__backend_env_fini(struct lw__backend_env *env);

/* A repository's settings for its backend; each backend reads those it
 * understands.  Changed on the loop thread, then lw__backend_configure. */
struct lw__backend_opts {
	char *ca_file;            /* TLS: trust these CAs, not the system's */
	bool tls_insecure;        /* TLS: skip certificate verification */
	unsigned max_connections; /* HTTP: requests at once; 0: the default */
};

enum lw__bop {
	LW__BOP_CREATE, /* write DATA as locks/ID; fails if it exists */
	LW__BOP_LIST,   /* ids of locks/ (or FILE's folder): IDS, NIDS; or,
			   VIEW set, what changed since the last such answer */
	LW__BOP_READ,   /* locks/ID (or FILE) into BUF, at most LW_RECORD_MAX + 1
			   bytes (LW__BFILE_MAX + 1 for the others) */
	LW__BOP_REMOVE, /* delete locks/ID; -ENOENT when it was not there */
	LW__BOP_EXISTS, /* 0 or -ENOENT */
	LW__BOP_INIT,   /* create the repository layout */
	LW__BOP_KEEPALIVE, /* leased backends: renew LEASE; -ENOENT when the
			      server let it expire (or it was revoked) */
};

/*
 * What READ and LIST reach besides lock files: the layout of a restic
 * repository, which tells its locks' format (core/format.c).  Leased
 * backends have none of it.
 */
enum lw__bfile {
	LW__BFILE_LOCKS = 0, /* locks/ID, locks/ */
	LW__BFILE_KEYS,      /* keys/ID, keys/ */
	LW__BFILE_CONFIG,    /* config (READ only; ID unused) */
};

/* The most of a key file or config that READ returns, and one byte more. */
#define LW__BFILE_MAX 16384

struct lw__breq {
	struct lw__backend *be;
	enum lw__bop op;
	uint8_t file;     /* enum lw__bfile, for READ and LIST */
	struct lw__id id;
	const void *data; /* CREATE: the record, copied into the request */
	size_t len;
	/* CLOCK_BOOTTIME instant by which the request gives up; for a held
	 * lock, its deadline */
	int64_t deadline;
	/* CREATE: how much longer an attempt under way at DEADLINE may wait
	 * for its answer (lw__breq_settle) */
	int64_t grace;
	void (*done)(struct lw__breq *req);
	void *userdata;

	/* results, valid in DONE */
	int res;            /* 0, -ENOENT, -ETIMEDOUT, -ECANCELED, -errno,
			       -LW_EBACKEND */
	char msg[160];      /* what went wrong, for a person; "" when fine */
	struct lw__id *ids; /* LIST */
	size_t nids;
	/* LIST: what each of IDS is (LW__FTYPE_*, engine.h); NULL when every
	 * one is a regular file.  Only regular files can be lock files. */
	uint8_t *types;
	/* LIST of locks/ by a caller that keeps what it was told (VIEW): the
	 * backend may answer with DELTA set, IDS then the names that appeared
	 * or changed since its last answer to a VIEW listing and GONE the
	 * names that went, each name in one of them at most.  A backend that
	 * answers so has seen every change made before the listing started.
	 * REBASE: the caller lost track (it could not apply an answer): a
	 * full listing, from which changes count again.  A VIEW listing that
	 * fails makes the next one full. */
	bool view, rebase, delta;
	struct lw__id *gone;
	size_t ngone;
	uint8_t *buf;       /* READ */
	size_t buflen;
	/* the request failed after the server may have acted on it (a
	 * timeout after sending): a CREATE may have left its file */
	bool ambiguous;
	/* some attempt may have reached the server and got no answer: what
	 * it asked for may still be done after anything sent later (a CREATE
	 * may land after a DELETE of its name) */
	bool unsettled;
	bool cancelled;

	/* Leased backends.  TTL: how long the server keeps a CREATE's lock
	 * without a keepalive (ns, rounded up to what the server counts in).
	 * LEASE: set by CREATE (even a failed one, if it got a lease), given
	 * to KEEPALIVE and REMOVE; a REMOVE without it finds the lease itself.
	 * TOKEN: set by CREATE, the lock's fencing token. */
	int64_t ttl;
	int64_t lease;
	int64_t token;

	/* CREATE: the new record of a held lock's refresh, not an acquire
	 * (for the observer only; backends ignore it) */
	bool refresh;
	int64_t started;    /* CLOCK_BOOTTIME at start, set only when observed */
	/* when it left the backend's lines (a descriptor, a connection) and
	 * began; set only when observed, 0 where a backend does not say */
	int64_t began;
};

/*
 * An observer of every backend request of a loop, for lockwatch-bench's
 * per-operation latencies.  FN runs on the loop thread as each request
 * completes, before its DONE, with the instants it started and ended.
 * Unset (FN NULL) it costs one test per request.
 */
struct lw__observer {
	void (*fn)(void *userdata, const struct lw__breq *req, int64_t started,
		   int64_t ended);
	void *userdata;
};

struct lw__backend_ops {
	const char *name;
	size_t req_size; /* a backend's request embeds struct lw__breq first */
	/* A delete of a missing file succeeds (rest-server answers 200), so
	 * a refresh checks with EXISTS that the old file is still there. */
	bool remove_hides_missing;
	/* REMOVE of a folder removes it only when it is empty (rmdir).  Over
	 * HTTP a DELETE of a collection takes what is in it: never sent. */
	bool removes_empty_folders;
	/* The server keeps each lock alive by a lease that expires on its own
	 * (etcd): the record is written once, a refresh is KEEPALIVE (no new
	 * file, no delete), REMOVE ends the lease, and a lock whose holder
	 * went silent vanishes by itself, so record times do not age. */
	bool leased;
	int (*open)(struct lw__backend *be, const struct lw__url *url);
	void (*close)(struct lw__backend *be);
	/* Starts REQ; completes it (possibly with an error) later, never
	 * inside this call, with lw__breq_complete. */
	void (*start)(struct lw__backend *be, struct lw__breq *req);
	/* Makes REQ complete soon with -ECANCELED (or its real result if it
	 * already got one). */
	void (*cancel)(struct lw__backend *be, struct lw__breq *req);
	/* Makes REQ send nothing more but wait for the answer to what it
	 * sent, within its deadline and grace (optional: cancel where a
	 * backend has none; then a cancelled request must be settled, as a
	 * local file operation is, or leave nothing that outlives what
	 * follows, as an etcd key under a revoked lease). */
	void (*settle)(struct lw__backend *be, struct lw__breq *req);
	/* Frees what the backend allocated for REQ (optional). */
	void (*req_fini)(struct lw__breq *req);
	/* Applies a change of the backend's OPTS (optional). */
	void (*configure)(struct lw__backend *be);
	/* Starts reporting lock files that others remove, through be->gone
	 * (optional: local watches locks/ with inotify).  Called again while
	 * the watch is in place, it does nothing; after a failure, or once
	 * the watch was lost, it tries again.  Returns 0 or a negative
	 * errno. */
	int (*watch)(struct lw__backend *be);
};

/* What a watching backend reports: lock file ID was removed, by anyone.
 * ID NULL: removals may have been missed (the watch overflowed, or locks/
 * itself went): every lock file should be checked. */
typedef void (*lw__gone_fn)(void *userdata, const struct lw__id *id);

struct lw__backend {
	const struct lw__backend_ops *ops;
	struct lw__backend_env *env;
	struct lw__engine *engine;
	const struct lw__log *log;
	const char *where; /* for messages: "host:port", or the path */
	struct lw__backend_opts opts;
	const struct lw__observer *observer; /* the loop's, or NULL */
	lw__gone_fn gone;                    /* set by lw__backend_watch */
	void *gone_data;
	/* Every removal is reported through GONE: set when lw__backend_watch
	 * succeeds, cleared by a backend whose watch is lost (local: locks/
	 * removed or moved).  Without it a held lock checks its file. */
	bool watched;
	void *priv;
	const char *open_err; /* set by a failing OPEN: what to tell, static */
	const char *watch_err; /* set by a failing WATCH: likewise, or NULL */
};

extern const struct lw__backend_ops lw__backend_local;
/* Closes the inotify instance of ENV (accepts NULL); local.c. */
void lw__inotify_free(struct lw__inotify *ino);
extern const struct lw__backend_ops lw__backend_rest;
extern const struct lw__backend_ops lw__backend_dav;
extern const struct lw__backend_ops lw__backend_etcd;

/*
 * lw__backend_open - the backend for URL.
 *
 * Returns: 0, -EPROTONOSUPPORT when that backend is not built in, or the
 * backend's error with a message in ERR.
 */
int lw__backend_open(const struct lw__url *url, struct lw__backend_env *env,
		     struct lw__backend **bep, char *err, size_t errsize);
void lw__backend_close(struct lw__backend *be);
/* Tells the backend that its OPTS changed. */
void lw__backend_configure(struct lw__backend *be);
/* Asks the backend to report removals to FN (see lw__gone_fn); one watch
 * per backend, whatever the number of locks.  Returns 0 (be->watched is
 * set), -ENOTSUP where the backend cannot watch, or its error (the
 * kernel's refusal: EMFILE, ENOSPC, ENOMEM). */
int lw__backend_watch(struct lw__backend *be, lw__gone_fn fn, void *userdata);

struct lw__http_pool;
/* For HTTP backends: applies OPTS (TLS, connections) to their POOL. */
void lw__backend_configure_pool(struct lw__backend *be, struct lw__http_pool *pool);

/* A request for OP; DATA (CREATE) is copied.  NULL: out of memory. */
struct lw__breq *lw__breq_new(struct lw__backend *be, enum lw__bop op,
			      const struct lw__id *id, const void *data,
			      size_t len, int64_t deadline,
			      void (*done)(struct lw__breq *), void *userdata);
void lw__breq_start(struct lw__breq *req);
/* Backends end every request through this, exactly once, on the loop
 * thread: it tells the observer and calls REQ->done. */
void lw__breq_complete(struct lw__breq *req);
void lw__breq_cancel(struct lw__breq *req);
/* REQ ends with the answer to what it sent (or what it has), sending no
 * more: its outcome is settled before anything that follows it.  Where a
 * backend cannot, cancels. */
void lw__breq_settle(struct lw__breq *req);
void lw__breq_free(struct lw__breq *req);
/* Sets REQ's result and message; returns RES. */
int lw__breq_fail(struct lw__breq *req, int res, const char *fmt, ...)
	LW_PRINTF(3, 4);
