/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * liblockwatch: repository locks that stay alive, and work that stops the
 * moment a lock can no longer be guaranteed.
 *
 * Every function that can fail returns 0 (or a non-negative value) on
 * success and a negative errno value, or a negated LW_E* code, on failure.
 * Blocking calls leave a longer description for lw_errmsg().  Times are
 * int64_t nanoseconds; instants are on CLOCK_BOOTTIME.
 *
 * Objects are used from any thread: calls post to the loop thread.  Callbacks
 * run on the loop thread and must not call the blocking functions.
 */
#ifndef LOCKWATCH_H
#define LOCKWATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LW_NSEC_PER_SEC INT64_C(1000000000)
#define LW_MSEC(n) ((int64_t)(n) * INT64_C(1000000))
#define LW_SEC(n) ((int64_t)(n) * LW_NSEC_PER_SEC)
/* The longest duration lockwatch takes, from a user or from another host's
 * lock record: 100 years (of 365.25 days).  Any instant plus it still fits
 * in an int64_t. */
#define LW_DURATION_MAX LW_SEC(INT64_C(3155760000))

/* ---------------------------------------------------------------- errors */

/* lockwatch's own error codes; functions return them negated. */
enum {
	LW_ELOCKED = 4096, /* the repository is locked by another holder */
	LW_ELOST,          /* the lock was lost while it was held */
	LW_EINVALID,       /* a lock record is invalid */
	LW_EBACKEND,       /* the backend failed; the message has the details */
};

/*
 * lw_strerror - a short text for a negative error code (errno or LW_E*).
 */
const char *lw_strerror(int err);

/*
 * lw_errmsg - the full message of the last failed blocking call made by
 * this thread (lw_loop_new, lw_repo_new, lw_lock_acquire, ...): for a
 * locked repository it names the holder.  Never NULL.
 */
const char *lw_errmsg(void);

/* ------------------------------------------------------------- durations */

/*
 * lw_duration_parse - parse a Go-style duration ("250ms", "30s", "5m",
 * "1h30m", "1.5h") into nanoseconds.  Units: ns, us (or µs), ms, s, m, h;
 * every number needs one, except a lone "0".  No sign, no spaces.
 *
 * Returns: 0, -EINVAL for anything else (empty, "5 minutes", "-1s", "1e9h"),
 * -ERANGE when it is longer than LW_DURATION_MAX (100 years).
 */
int lw_duration_parse(const char *s, int64_t *ns);

/*
 * lw_duration_format - NS for a person: "850us", "2.5ms", "1.5s", "3m12s",
 * "1h2m".  Returns BUF (32 bytes are always enough).
 */
char *lw_duration_format(int64_t ns, char *buf, size_t size);

/* ------------------------------------------------------------------ loop */

struct lw_loop;

enum lw_engine {
	LW_ENGINE_DEFAULT = 0, /* LOCKWATCH_ENGINE if set, else auto */
	LW_ENGINE_AUTO,        /* io_uring, falling back to epoll */
	LW_ENGINE_URING,
	LW_ENGINE_EPOLL,
};

/*
 * lw_loop_new - create an event loop on the given engine.
 *
 * Returns: 0, or -EPERM/-ENOSYS when io_uring was asked for and the kernel
 * refuses it, -EINVAL for a bad LOCKWATCH_ENGINE, -ENOMEM.
 */
int lw_loop_new(enum lw_engine engine, struct lw_loop **loopp);

/*
 * lw_loop_free - release every lock of the loop (waiting a bounded time for
 * their files to be deleted), stop its thread and free it.  Accepts NULL.
 */
void lw_loop_free(struct lw_loop *loop);

/* lw_loop_engine - the engine the loop runs on (URING or EPOLL). */
enum lw_engine lw_loop_engine(const struct lw_loop *loop);

/* lw_engine_name - "auto", "uring", "epoll" ("default" for DEFAULT). */
const char *lw_engine_name(enum lw_engine engine);

/* lw_engine_parse - the engine named by NAME; -EINVAL for another name. */
int lw_engine_parse(const char *name, enum lw_engine *enginep);

/*
 * lw_loop_start - run the loop on a thread of its own until lw_loop_free.
 *
 * Returns: 0, -EALREADY, or a negative errno from pthread_create.
 */
int lw_loop_start(struct lw_loop *loop);

/*
 * lw_loop_fd - a file descriptor that becomes readable when the loop has
 * work; an application that runs its own event loop polls it and calls
 * lw_loop_run_once.
 */
int lw_loop_fd(const struct lw_loop *loop);

/*
 * lw_loop_run_once - wait up to TIMEOUT_MS (0: not at all, -1: until
 * something happens) and handle what is due.  Only for loops that were not
 * started; one thread at a time.
 *
 * Returns: 0, -EBUSY when the loop runs on its own thread or another thread
 * is inside this call, -EDEADLK from inside a callback.
 */
int lw_loop_run_once(struct lw_loop *loop, int timeout_ms);

/*
 * lw_loop_set_fd_limit - how many file descriptors the loop's file
 * operations and HTTP connections may hold at once (0: the default, the
 * soft RLIMIT_NOFILE at this call less a quarter of it, at least 64, for
 * the application; never under 16).  A file operation beyond it waits in
 * line; HTTP connections take at most half of it.  EMFILE or ENFILE from
 * the kernel is back-pressure: the operation waits until a descriptor is
 * freed and tries again, within its deadline; an acquire never fails
 * because of it.  Loops of one process do not share the limit.
 *
 * Returns: 0, -EINVAL, -ESHUTDOWN.
 */
int lw_loop_set_fd_limit(struct lw_loop *loop, unsigned limit);

/* ----------------------------------------------------------------- log */

/* Called on the loop thread (or the calling thread) with a syslog priority
 * and one line of text without a trailing newline. */
typedef void (*lw_log_fn)(void *userdata, int priority, const char *msg);

/*
 * lw_loop_set_log_fn - send the loop's log lines to FN instead of stderr.
 * The default priority is LOG_WARNING; LOCKWATCH_LOG=debug|info|notice|...
 * overrides it at lw_loop_new.
 */
void lw_loop_set_log_fn(struct lw_loop *loop, lw_log_fn fn, void *userdata);
void lw_loop_set_log_priority(struct lw_loop *loop, int priority);
int lw_loop_get_log_priority(const struct lw_loop *loop);

/* ----------------------------------------------------------- repository */

struct lw_repo;

/*
 * lw_repo_new - open the repository at URL (NULL: $LOCKWATCH_REPOSITORY).
 * "/path" and "local:/path" are local directories;
 * "rest:http[s]://[user[:password]@]host[:port]/path/" is a restic REST
 * server and "dav:http[s]://[user[:password]@]host[:port]/path/" a WebDAV
 * server (PROPFIND listings, MKCOL at init; nginx's JSON index where
 * PROPFIND is not offered).  Without credentials in the URL,
 * LOCKWATCH_USER and LOCKWATCH_PASSWORD give them (Basic or Digest).
 * "etcd:http[s]://host:2379[,http://host2:2379...]/prefix" keeps locks as
 * keys under prefix/locks/ of an etcd (>= 3.4) cluster, each alive by a
 * lease that expires on the server; requests move on to the next member
 * when one does not answer.  Nothing is touched until a lock is acquired.
 *
 * Returns: 0, -EINVAL for a malformed URL, -EPROTONOSUPPORT for a backend
 * that is not built in, -ENOTSUP for a user name in an etcd URL (etcd's
 * own authentication is not supported), -ENOMEM.
 */
int lw_repo_new(struct lw_loop *loop, const char *url, struct lw_repo **repop);
struct lw_repo *lw_repo_ref(struct lw_repo *repo);
/* lw_repo_unref - drop a reference; NULL once freed.  Accepts NULL. */
struct lw_repo *lw_repo_unref(struct lw_repo *repo);

/* lw_repo_url - the URL with any password replaced by "***". */
const char *lw_repo_url(const struct lw_repo *repo);

/*
 * lw_repo_set_timing - how often locks acquired from now on are refreshed
 * and when others may treat them as stale (defaults 5 min and 30 min).  A
 * lock's deadline is the stale timeout minus 1.5 x the interval (for clock
 * drift) after its last refresh, and must come after its next refresh, so
 * the stale timeout must exceed 2.5 x the refresh interval.
 *
 * Returns: 0, or -EINVAL (-ERANGE for a duration over LW_DURATION_MAX)
 * with a message for lw_errmsg().  The other setters below refuse a
 * duration over LW_DURATION_MAX with -ERANGE too.
 */
int lw_repo_set_timing(struct lw_repo *repo, int64_t refresh_interval,
		       int64_t stale_timeout);
/* Wait between creating a lock and the second conflict check (200 ms). */
int lw_repo_set_recheck_delay(struct lw_repo *repo, int64_t delay);
/* How long acquire retries a locked repository (0: fail at once). */
int lw_repo_set_retry_lock(struct lw_repo *repo, int64_t duration);
/* First wait between those retries (5 s, restic's; then doubling up to 12
 * times it, so 60 s).  Meant for tests, where many short-lived holders take
 * turns: shorter waits list the repository more often.
 * Returns: 0, -EINVAL below 1 ms or above 1 h. */
int lw_repo_set_retry_backoff(struct lw_repo *repo, int64_t first);
/* First wait before retrying a failed listing during acquire (5 s; then
 * twice, doubling). */
int lw_repo_set_check_retry(struct lw_repo *repo, int64_t delay);
/* Upper bound of one backend operation outside a lock's deadline (60 s). */
int lw_repo_set_op_timeout(struct lw_repo *repo, int64_t timeout);
/*
 * lw_repo_set_release_timeout - how long the deletes of a lock that ends
 * (released, lost, or a failed acquire) may take, for locks acquired from
 * now on (default 5 s).  They all start at once, and a failed one is tried
 * again within the bound; a create in flight (a refresh's write) is
 * waited for within it, and its file deleted once the server answered it.
 * What is not deleted by then is left behind (it goes stale by itself)
 * and named in the release's error.
 *
 * Returns: 0, -EINVAL below 1 ms or above 1 h.
 */
int lw_repo_set_release_timeout(struct lw_repo *repo, int64_t timeout);

/*
 * lw_repo_set_check_interval - on rest: and dav:, how often a held lock's
 * file is checked with HEAD between refreshes, so that a lock removed by
 * someone else is noticed sooner than the next refresh (default: the
 * refresh interval / 5; 0: no checks).  A local repository needs none
 * while its locks/ folder is watched with inotify (one instance per loop,
 * one watch per repository), and is checked so where the kernel refuses
 * the watch or it ends; on etcd one watch stream on the locks' keys per
 * repository does it.
 *
 * Returns: 0, -EINVAL for a negative value or one below 10 ms.
 */
int lw_repo_set_check_interval(struct lw_repo *repo, int64_t interval);

/* Remove stale locks at acquire (default true); false makes them block
 * until someone runs unlock, as restic does. */
int lw_repo_set_remove_stale(struct lw_repo *repo, bool remove);

/*
 * lw_repo_set_suspend_recovery - opt in to restic's recovery after a
 * suspend (default off).  When a deadline passes only because the machine
 * slept (CLOCK_BOOTTIME ran on while CLOCK_MONOTONIC stood still), the
 * context is first *held* (lw_ctx_held, lw_ctx_wait: no new work) while the
 * lock is checked: its file must still be there and no conflicting lock may
 * have appeared; then it is replaced with acquire's double check and the
 * context resumes.  Otherwise it ends as it would have.  Safe because
 * acquire only looks past a stale lock once it has removed it.  On etcd
 * the check is one keepalive: a lease that still lives proves that the
 * lock never left the server, and the lock goes on with its key and
 * fencing token; a lease that expired means the lock is lost.
 */
int lw_repo_set_suspend_recovery(struct lw_repo *repo, bool on);

/* Which format a repository's lock files have (lw_repo_set_format). */
enum lw_format {
	/* restic's on a restic repository (a config file and a keys/ folder),
	 * lockwatch's elsewhere: the default */
	LW_FORMAT_AUTO = 0,
	/* lockwatch's own, even on a restic repository: restic does not see
	 * such a lock (it skips files it cannot decrypt) */
	LW_FORMAT_LOCKWATCH,
	/* restic's; a repository that is not restic's is refused */
	LW_FORMAT_RESTIC,
};

/*
 * lw_repo_set_format - the format of the lock files this repository object
 * writes (default LW_FORMAT_AUTO); set it before the first acquire or
 * listing, which settle it.
 *
 * Returns: 0, -EINVAL.
 */
int lw_repo_set_format(struct lw_repo *repo, enum lw_format format);

/*
 * A source of a restic repository's password: writes it into BUF (SIZE
 * bytes) and returns its length, or a negative errno.  It runs on a worker
 * thread of lockwatch, never on the loop's, at most once per repository.
 */
typedef int (*lw_password_fn)(char *buf, size_t size, void *userdata);

/*
 * lw_repo_set_password - the password of a restic repository (copied), or
 * lw_repo_set_password_fn a function that gives it.  Without either, the
 * password comes as restic takes it: RESTIC_PASSWORD_COMMAND (run by
 * /bin/sh), else RESTIC_PASSWORD_FILE, else RESTIC_PASSWORD, with white
 * space around it removed.  The key it opens is derived once per repository
 * and process on a worker thread (scrypt: about 0.5 s and 60 MiB with
 * restic's parameters), never on the loop thread.  Without any password, a
 * lock on a restic repository is refused with -ENOKEY (a lock restic
 * cannot read protects nothing); with a wrong one, -EACCES.
 *
 * Returns: 0, -EINVAL, -ENOMEM.
 */
int lw_repo_set_password(struct lw_repo *repo, const char *password);
int lw_repo_set_password_fn(struct lw_repo *repo, lw_password_fn fn, void *userdata);

/*
 * lw_repo_set_max_connections - how many requests to the repository's
 * HTTP server run at once (default 8), each on its own keep-alive
 * connection; the others wait their turn, within their deadline, so that
 * thousands of locks share a few connections.
 *
 * Returns: 0, -EINVAL for 0 or more than 1024, -ESHUTDOWN.
 */
int lw_repo_set_max_connections(struct lw_repo *repo, unsigned n);

/*
 * lw_repo_set_tls_ca_file - trust the certificate authorities in the PEM
 * file PATH, instead of the system's, for an https:// repository (NULL:
 * the system's again).  The file is read at each new connection.
 *
 * Returns: 0, -ENOMEM, -ESHUTDOWN.
 */
int lw_repo_set_tls_ca_file(struct lw_repo *repo, const char *path);

/*
 * lw_repo_set_tls_insecure_skip_verify - DANGEROUS: accept any certificate
 * from an https:// repository's server, so that anyone on the network path
 * can pose as it, read the credentials sent to it and answer for it.  For
 * tests only; a warning is logged when it is turned on.  Prefer
 * lw_repo_set_tls_ca_file for a server with its own CA.
 *
 * Returns: 0, -ESHUTDOWN.
 */
int lw_repo_set_tls_insecure_skip_verify(struct lw_repo *repo, bool insecure);

/*
 * lw_repo_init - create the repository's locks/ folder (and the repository
 * folder itself on a local backend; etcd needs none: it checks that the
 * cluster answers).  Blocking.  Existing folders are fine.
 */
int lw_repo_init(struct lw_repo *repo);

/* What a lock file in the repository says, for list and unlock. */
enum lw_lock_kind {
	LW_KIND_SHARED,
	LW_KIND_EXCLUSIVE,
	LW_KIND_FOREIGN, /* not a lockwatch record (restic's own, say) */
	LW_KIND_INVALID, /* a lockwatch record that breaks the format */
	LW_KIND_EMPTY,   /* zero bytes: ignored by acquire */
};

/*
 * One lock file.  Strings come from the file as stored (NULL when unknown):
 * sanitise them before they reach a terminal.  Valid during the callback.
 */
struct lw_lock_info {
	char id[65];
	enum lw_lock_kind kind;
	bool stale;            /* old, or its process is gone on this host */
	bool own;              /* held by this process */
	int64_t time;          /* record time, ns since the epoch */
	int64_t age;           /* ns, by this host's clock */
	int64_t stale_timeout; /* ns, as the record says */
	int64_t pid, uid, gid;
	const char *hostname;
	const char *username;
	const char *boot_id;
	const char *purpose;
	const char *why;       /* FOREIGN, INVALID: what is wrong with it */
	int err;               /* lw_repo_unlock: 0, or why it was not removed */
	/* SHARED, EXCLUSIVE: which tool wrote it, "lockwatch" or "restic" (a
	 * restic lock carries no boot id: its holder is never known to be
	 * gone, only its age makes it stale) */
	const char *tool;
};

/* Called on the calling thread; a non-zero return stops the walk. */
typedef int (*lw_info_fn)(const struct lw_lock_info *info, void *userdata);

/*
 * lw_repo_list - call FN for every lock file of the repository, oldest
 * first.  Blocking.
 *
 * Returns: 0, FN's non-zero value, or a negative error (lw_errmsg()).
 */
int lw_repo_list(struct lw_repo *repo, lw_info_fn fn, void *userdata);

#define LW_UNLOCK_ALL 0x1u /* remove every lock, not only stale ones */

/*
 * lw_repo_unlock - remove the stale locks (every lock with LW_UNLOCK_ALL)
 * and call FN for each one it tried, with info->err set.  Foreign and
 * invalid files go only with LW_UNLOCK_ALL.  Blocking.
 *
 * Returns: the number of files removed, or a negative error.
 */
int lw_repo_unlock(struct lw_repo *repo, unsigned flags, lw_info_fn fn,
		   void *userdata);

/* ------------------------------------------------------------------ lock */

struct lw_lock;
struct lw_ctx;

#define LW_LOCK_EXCLUSIVE 0x1u

/*
 * lw_lock_new - a lock on REPO, not yet acquired.  FLAGS: LW_LOCK_EXCLUSIVE
 * or 0 for a shared lock.  PURPOSE (may be NULL) is stored in the record.
 */
int lw_lock_new(struct lw_repo *repo, unsigned flags, const char *purpose,
		struct lw_lock **lockp);

/*
 * lw_lock_free - release the lock if it is held (without waiting for the
 * file to be deleted; the loop finishes that), cancel a pending acquire, and
 * free the handle.  No callback of the lock runs after it returns.
 * Accepts NULL.
 */
void lw_lock_free(struct lw_lock *lock);

/* Callback of the asynchronous forms; ERR is 0 or negative, MSG says why. */
typedef void (*lw_lock_fn)(struct lw_lock *lock, int err, const char *msg,
			   void *userdata);

/*
 * lw_lock_acquire - acquire the lock: list, check conflicts, create the lock
 * file, wait the recheck delay, check again.  Retries a locked repository
 * for the repository's retry_lock time.  Blocking.
 *
 * Returns: 0, -LW_ELOCKED (lw_errmsg() names the holder), -LW_EBACKEND,
 * -EINVAL for invalid timing, -EALREADY, -EDEADLK on the loop thread.
 */
int lw_lock_acquire(struct lw_lock *lock);
int lw_lock_acquire_async(struct lw_lock *lock, lw_lock_fn fn, void *userdata);

/*
 * lw_lock_release - cancel the lock's context with LW_CAUSE_RELEASED, stop
 * refreshing and delete the lock's files, all at once, bounded by the
 * repository's release timeout.  Blocking.  After a loss the files were
 * being deleted already: it waits for that and reports it.
 *
 * Returns: 0; -LW_ELOST when the lock was removed by someone else while it
 * was held (found by a refresh, or by this release: its first delete found
 * the file already gone); otherwise the error of a delete that failed
 * (-ETIMEDOUT when the release timeout passed), also after a loss by
 * deadline.  lw_errmsg() names the files left behind.
 */
int lw_lock_release(struct lw_lock *lock);
int lw_lock_release_async(struct lw_lock *lock, lw_lock_fn fn, void *userdata);

/*
 * lw_lock_ctx - the lock's work context (borrowed: valid until lw_lock_free,
 * or take a reference with lw_ctx_ref).  It exists before acquire and is
 * cancelled when acquire fails.
 */
struct lw_ctx *lw_lock_ctx(struct lw_lock *lock);

/* lw_lock_id - copy the current lock file name (64 hex characters and a
 * NUL; it changes with every refresh).  -ENOENT before acquire. */
int lw_lock_id(struct lw_lock *lock, char id[65]);

/* lw_lock_deadline - the CLOCK_BOOTTIME instant (ns) at which the lock's
 * context is cancelled unless a refresh succeeds first; 0 when not held. */
int64_t lw_lock_deadline(const struct lw_lock *lock);

/*
 * lw_lock_fencing_token - a number that grows with every lock acquired on
 * the repository, for a storage service to refuse writes from a holder
 * whose lock has since been taken over: it keeps the largest token it has
 * seen and rejects requests that carry a smaller one.  On etcd it is the
 * lock key's create revision.
 *
 * Returns: the token once the lock was acquired (it stays after release),
 * 0 before, or where the backend has none (local, rest:, dav:).
 */
int64_t lw_lock_fencing_token(const struct lw_lock *lock);

/*
 * lw_lock_set_process_group - before acquire: the lock's work is done by
 * process group PGID, which may outlive this process (lockwatch run's job).
 * The record names the group and its leader's start time, and on this host
 * the lock is stale only once this process and every process of the group
 * are gone (zombies aside), not as soon as this process is.
 *
 * Returns: 0, -EINVAL for a PGID below 2, -ESRCH when no process of group
 * PGID runs, -EBUSY once acquire was called.
 */
int lw_lock_set_process_group(struct lw_lock *lock, int64_t pgid);

/* What happened to a lock, for progress displays and statistics. */
enum lw_event_type {
	LW_EVENT_RETRY = 1,  /* acquire found the repository locked and waits */
	LW_EVENT_ACQUIRED,
	LW_EVENT_REFRESHED,  /* a new record was written; the deadline moved */
	LW_EVENT_REFRESH_FAILED, /* a refresh failed; it is retried */
	LW_EVENT_LOST,       /* the context was cancelled: deadline or removal */
	LW_EVENT_RELEASED,   /* the lock file was deleted after release */
	LW_EVENT_HELD,       /* after a suspend: work held while the lock is
				checked (see lw_repo_set_suspend_recovery) */
	LW_EVENT_RESUMED,    /* the check passed: the context goes on */
};

struct lw_event {
	enum lw_event_type type;
	int err;          /* REFRESH_FAILED, LOST: the error */
	const char *msg;  /* one line for a person */
	int64_t at;       /* CLOCK_BOOTTIME instant of the event */
	int64_t next;     /* RETRY: next attempt; REFRESHED: the new deadline */
	int64_t until;    /* RETRY: when retrying stops */
};

typedef void (*lw_event_fn)(struct lw_lock *lock, const struct lw_event *ev,
			    void *userdata);

/* lw_lock_set_event_fn - call FN on the loop thread for each event of the
 * lock.  Set it before acquiring. */
int lw_lock_set_event_fn(struct lw_lock *lock, lw_event_fn fn, void *userdata);

/* ------------------------------------------------------------------- ctx */

enum lw_cause {
	LW_CAUSE_NONE = 0,  /* still live */
	LW_CAUSE_RELEASED,  /* the lock was released */
	LW_CAUSE_CANCELLED, /* the application cancelled it, or acquire failed */
	LW_CAUSE_DEADLINE,  /* "lock refresh deadline exceeded" */
	LW_CAUSE_REMOVED,   /* someone else removed the lock file */
};

struct lw_ctx *lw_ctx_ref(struct lw_ctx *ctx);
/* lw_ctx_unref - drop a reference; NULL once freed.  Accepts NULL. */
struct lw_ctx *lw_ctx_unref(struct lw_ctx *ctx);

/* lw_ctx_done - true once the context is cancelled; an atomic load, cheap
 * enough to call between every unit of work, from any thread. */
bool lw_ctx_done(const struct lw_ctx *ctx);

/* lw_ctx_err - why the context ended, LW_CAUSE_NONE while it lives. */
enum lw_cause lw_ctx_err(const struct lw_ctx *ctx);

/* lw_ctx_cause - one line that says why the context ended (NULL while it
 * lives), e.g. "lock refresh deadline exceeded: ...". */
const char *lw_ctx_cause(const struct lw_ctx *ctx);

/*
 * lw_ctx_fd - an eventfd that becomes readable when the context ends and
 * stays readable.  Created on the first call (locks that never ask need no
 * descriptor); owned by the context.
 *
 * Returns: the descriptor, or a negative errno.
 */
int lw_ctx_fd(struct lw_ctx *ctx);

typedef void (*lw_ctx_fn)(struct lw_ctx *ctx, void *userdata);

/* lw_ctx_on_done - run FN on the loop thread once the context ends (soon,
 * if it already has). */
int lw_ctx_on_done(struct lw_ctx *ctx, lw_ctx_fn fn, void *userdata);

/* lw_ctx_cancel - end the context with LW_CAUSE_CANCELLED and release its
 * lock.  Does nothing to a context that has ended. */
void lw_ctx_cancel(struct lw_ctx *ctx);

/* lw_ctx_held - true while the lock is being checked after a suspend: start
 * no new work (only with lw_repo_set_suspend_recovery). */
bool lw_ctx_held(const struct lw_ctx *ctx);

/*
 * lw_ctx_wait - wait while the context is held, up to TIMEOUT_MS (-1: no
 * limit).  Call it between units of work instead of lw_ctx_done when
 * suspend recovery is on.
 *
 * Returns: LW_CAUSE_NONE when work may go on, the cause once the context
 * ended, -ETIMEDOUT while it is still held.
 */
int lw_ctx_wait(struct lw_ctx *ctx, int timeout_ms);

#ifdef __cplusplus
}
#endif

#endif
