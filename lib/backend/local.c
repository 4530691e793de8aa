/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The local directory backend, the embedded default.  A lock file is written
 * to a hidden temporary name, fsynced and renamed into locks/ with
 * RENAME_NOREPLACE, so that a reader never sees half a record and an
 * existing file is never overwritten.  Every step is one engine file
 * operation bounded by the request's deadline.
 */
#include "config.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/backend.h"
#include "util/list.h"
#include "format/record.h"

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif

/* Requests running at once per repository; the rest wait in line.  A
 * create, a read or a listing also holds a descriptor, taken from the
 * loop's budget (engine.h) for the steps from its open to its close: 1,000
 * repositories of 64 creates each would otherwise hold 64,000 at once. */
#define MAX_RUNNING 64

struct local {
	char *root;  /* the repository */
	char *locks; /* root/locks */
	size_t locks_len;
	unsigned running;
	struct lw__list queue;
};

enum step {
	S_OPEN, S_WRITE, S_FSYNC, S_CLOSE, S_RENAME, /* create */
	S_READ_OPEN, S_READ, S_READ_CLOSE,          /* read */
	S_UNLINK,                                    /* remove */
	S_READDIR,                                   /* list */
	S_MKDIR_ROOT, S_MKDIR_LOCKS,                 /* init */
	S_CLEAN_CLOSE, S_CLEAN_UNLINK,               /* after a failure */
};

struct local_req {
	struct lw__breq base;
	struct lw__fop fop;
	struct lw__list link;   /* in the queue while it waits */
	struct lw__fd_waiter fdw; /* in the loop's line for a descriptor */
	bool running;
	bool fd_held;           /* one of the loop's budget */
	enum step step;
	int fd;
	size_t written;
	int err;        /* the failure being cleaned up after */
	char *path;     /* locks/ID */
	char *tmp;      /* locks/.tmp-ID */
};

static struct local *priv(struct lw__backend *be)
{
	return be->priv;
}

static void submit(struct local_req *lr, enum step step, enum lw__fop_type type)
{
	lr->step = step;
	lr->fop.type = type;
	lr->fop.deadline = lr->base.deadline;
	lw__fop_submit(lr->base.be->engine, &lr->fop);
}

static void run(struct local_req *lr);
static void fd_granted(struct lw__fd_waiter *w);

/* The descriptor is closed (or was never opened): back to the budget. */
static void fd_release(struct local_req *lr)
{
	if (lr->fd_held) {
		lr->fd_held = false;
		lw__fd_give(lr->base.be->engine);
	}
}

static void finish(struct local_req *lr, int res)
{
	struct local *l = priv(lr->base.be);

	fd_release(lr);
	if (lr->running) {
		lr->running = false;
		l->running--;
		if (!lw__list_empty(&l->queue)) {
			struct local_req *next =
				LW_CONTAINER_OF(l->queue.next, struct local_req, link);

			lw__list_del(&next->link);
			run(next);
		}
	}
	lr->base.res = res;
	lw__breq_complete(&lr->base);
}

/* After a failed or cancelled create: close the temporary file and remove
 * it, so that nothing is left behind; then report ERR. */
static void cleanup(struct local_req *lr, int err)
{
	lr->err = err;
	if (lr->fd >= 0) {
		lr->fop.fd = lr->fd;
		lr->fd = -1;
		submit(lr, S_CLEAN_CLOSE, LW__FOP_CLOSE);
		return;
	}
	lr->fop.path = lr->tmp;
	lr->fop.flags = 0;
	submit(lr, S_CLEAN_UNLINK, LW__FOP_UNLINKAT);
}

static void fail(struct local_req *lr, int res)
{
	static const char *const verbs[] = {
		[S_OPEN] = "creating", [S_WRITE] = "writing", [S_FSYNC] = "syncing",
		[S_CLOSE] = "closing", [S_RENAME] = "renaming into place",
		[S_READ_OPEN] = "opening", [S_READ] = "reading",
		[S_UNLINK] = "removing", [S_READDIR] = "listing",
		[S_MKDIR_ROOT] = "creating", [S_MKDIR_LOCKS] = "creating",
	};
	const char *path = lr->step <= S_RENAME ? lr->tmp : lr->fop.path;

	if (!lr->base.msg[0] && res != -ENOENT) {
		lw__breq_fail(&lr->base, res, "%s %s: %s", verbs[lr->step], path,
			      res == -ETIMEDOUT ? "no result by the deadline" :
			      res == -ECANCELED ? "cancelled" : strerror(-res));
		lw__sanitize(lr->base.msg);
	}
	if (lr->step <= S_RENAME) {
		cleanup(lr, res);
	} else if (lr->fd >= 0) {
		lr->err = res;
		lr->fop.fd = lr->fd;
		lr->fd = -1;
		submit(lr, S_READ_CLOSE, LW__FOP_CLOSE);
	} else {
		finish(lr, res);
	}
}

/* The names in locks/ that are lock ids; anything else is not ours. */
static int parse_names(struct local_req *lr, const char *names, size_t len)
{
	size_t n = 0, cap = 0;

	for (size_t off = 0; off < len;) {
		const char *name = names + off;
		size_t nlen = strlen(name);

		off += nlen + 1;
		if (nlen != LW_ID_HEX)
			continue;
		if (lw__grow(&lr->base.ids, &cap, n, sizeof(*lr->base.ids), 64) < 0)
			return -ENOMEM;
		if (lw__id_parse(name, nlen, &lr->base.ids[n]))
			n++;
	}
	lr->base.nids = n;
	return 0;
}

static void on_fop(struct lw__fop *f, int res)
{
	struct local_req *lr = LW_CONTAINER_OF(f, struct local_req, fop);

	switch (lr->step) {
	case S_CLEAN_CLOSE:
		fd_release(lr);
		cleanup(lr, lr->err);
		return;
	case S_CLEAN_UNLINK:
	case S_READ_CLOSE:
		finish(lr, lr->err);
		return;
	case S_CLOSE:
		fd_release(lr);
		break;
	case S_OPEN:
	case S_READ_OPEN:
	case S_READDIR:
		/* back-pressure, not a failure: try again when the loop
		 * frees a descriptor */
		if (lw__fd_exhausted(res) && !lr->base.cancelled) {
			lr->fd_held = false;
			lw__fd_starved(lr->base.be->engine, &lr->fdw, res);
			return;
		}
		if (lr->step == S_READDIR)
			fd_release(lr);
		break;
	default:
		break;
	}
	if (res == -EEXIST && (lr->step == S_MKDIR_ROOT || lr->step == S_MKDIR_LOCKS))
		res = 0; /* init is idempotent */
	if (res >= 0 && (lr->step == S_OPEN || lr->step == S_READ_OPEN))
		lr->fd = res;
	if (res >= 0 && lr->step == S_RENAME) {
		/* in place, even if cancelled meanwhile: the caller must know */
		finish(lr, 0);
		return;
	}
	if (res == 0 && lr->step == S_WRITE)
		res = -EIO; /* a write that makes no progress */
	if (res >= 0 && lr->base.cancelled)
		res = -ECANCELED;
	if (res < 0) {
		fail(lr, res);
		return;
	}

	switch (lr->step) {
	case S_OPEN:
		lr->written = 0;
		/* fall through */
	case S_WRITE:
		if (lr->step == S_WRITE)
			lr->written += (size_t)res;
		f->fd = lr->fd;
		if (lr->written < lr->base.len) {
			f->buf = (void *)((const char *)lr->base.data + lr->written);
			f->len = lr->base.len - lr->written;
			f->off = lr->written;
			submit(lr, S_WRITE, LW__FOP_WRITE);
		} else {
			submit(lr, S_FSYNC, LW__FOP_FSYNC);
		}
		return;
	case S_FSYNC:
		f->fd = lr->fd;
		lr->fd = -1;
		submit(lr, S_CLOSE, LW__FOP_CLOSE);
		return;
	case S_CLOSE:
		f->path = lr->tmp;
		f->path2 = lr->path;
		f->flags = RENAME_NOREPLACE;
		submit(lr, S_RENAME, LW__FOP_RENAMEAT);
		return;
	case S_READ_OPEN:
		lr->base.buf = malloc(LW_RECORD_MAX + 1);
		if (!lr->base.buf) {
			fail(lr, -ENOMEM);
			return;
		}
		f->fd = lr->fd;
		f->buf = lr->base.buf;
		f->len = LW_RECORD_MAX + 1;
		f->off = 0;
		submit(lr, S_READ, LW__FOP_READ);
		return;
	case S_READ:
		lr->base.buflen = (size_t)res;
		lr->err = 0;
		f->fd = lr->fd;
		lr->fd = -1;
		submit(lr, S_READ_CLOSE, LW__FOP_CLOSE);
		return;
	case S_READDIR:
		res = parse_names(lr, f->names, f->names_len);
		lw__names_free(f->names, f->names_len);
		f->names = NULL;
		if (res < 0)
			fail(lr, res);
		else
			finish(lr, 0);
		return;
	case S_MKDIR_ROOT:
		f->path = priv(lr->base.be)->locks;
		f->mode = 0755;
		submit(lr, S_MKDIR_LOCKS, LW__FOP_MKDIRAT);
		return;
	case S_UNLINK:
	case S_MKDIR_LOCKS:
		finish(lr, 0);
		return;
	default:
		return;
	}
}

static void local_start(struct lw__backend *be, struct lw__breq *req)
{
	struct local_req *lr = LW_CONTAINER_OF(req, struct local_req, base);
	struct local *l = priv(be);

	lr->fd = -1;
	lr->fop.done = on_fop;
	lw__list_init(&lr->link);
	lw__fd_waiter_init(&lr->fdw, fd_granted);
	if (l->running >= MAX_RUNNING || !lw__list_empty(&l->queue)) {
		lw__list_add_tail(&l->queue, &lr->link);
		return;
	}
	run(lr);
}

static void begin(struct local_req *lr);

static void fd_granted(struct lw__fd_waiter *w)
{
	struct local_req *lr = LW_CONTAINER_OF(w, struct local_req, fdw);

	lr->fd_held = true;
	begin(lr);
}

static void run(struct local_req *lr)
{
	struct lw__breq *req = &lr->base;
	struct lw__backend *be = req->be;
	struct local *l = priv(be);
	char hex[LW_ID_HEX + 1];

	lr->running = true;
	l->running++;
	lw__id_hex(&req->id, hex);
	/* both paths in one allocation: this runs for every request */
	lr->path = malloc(2 * (l->locks_len + LW_ID_HEX) + 9);
	if (!lr->path) {
		lr->step = S_UNLINK;
		lw__fop_complete_later(be->engine, &lr->fop, -ENOMEM);
		return;
	}
	lr->tmp = lr->path + l->locks_len + LW_ID_HEX + 2;
	sprintf(lr->path, "%s/%s", l->locks, hex);
	sprintf(lr->tmp, "%s/.tmp-%s", l->locks, hex);
	lr->fop.path = lr->path;
	if (req->op == LW__BOP_CREATE || req->op == LW__BOP_READ ||
	    req->op == LW__BOP_LIST) {
		if (!lw__fd_take(be->engine, &lr->fdw))
			return; /* fd_granted goes on */
		lr->fd_held = true;
	}
	begin(lr);
}

/* The first step of the request; it holds its descriptor if it needs one. */
static void begin(struct local_req *lr)
{
	struct lw__breq *req = &lr->base;
	struct lw__backend *be = req->be;
	struct local *l = priv(be);
	struct lw__fop *f = &lr->fop;

	if (req->started)
		req->began = lw__now_boot();
	switch (req->op) {
	case LW__BOP_CREATE:
		f->path = lr->tmp;
		f->flags = O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW;
		/* others must read locks to check conflicts; nobody writes a
		 * lock file once it is in place (the umask still applies) */
		f->mode = 0444;
		submit(lr, S_OPEN, LW__FOP_OPENAT);
		return;
	case LW__BOP_READ:
		f->path = lr->path;
		/* O_NONBLOCK: a FIFO planted in locks/ must not hang the open */
		f->flags = O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK;
		submit(lr, S_READ_OPEN, LW__FOP_OPENAT);
		return;
	case LW__BOP_REMOVE:
		f->path = lr->path;
		f->flags = 0;
		submit(lr, S_UNLINK, LW__FOP_UNLINKAT);
		return;
	case LW__BOP_LIST:
		f->path = l->locks;
		submit(lr, S_READDIR, LW__FOP_READDIR);
		return;
	case LW__BOP_INIT:
		f->path = l->root;
		f->mode = 0755;
		submit(lr, S_MKDIR_ROOT, LW__FOP_MKDIRAT);
		return;
	case LW__BOP_EXISTS:
	case LW__BOP_KEEPALIVE: /* files have no lease */
		break;
	}
	lr->step = S_UNLINK;
	lw__fop_complete_later(be->engine, f, -EOPNOTSUPP);
}

static void local_cancel(struct lw__backend *be, struct lw__breq *req)
{
	struct local_req *lr = LW_CONTAINER_OF(req, struct local_req, base);

	/* The operation in flight ends by itself (its linked timeout or the
	 * worker's return); the next step sees the flag and cleans up.  One
	 * still in line is told at the next turn. */
	if (lw__list_linked(&lr->link) || lw__list_linked(&lr->fdw.link)) {
		if (lw__list_linked(&lr->link))
			lw__list_del(&lr->link);
		lw__fd_cancel(be->engine, &lr->fdw);
		lr->step = S_UNLINK;
		lw__fop_complete_later(be->engine, &lr->fop, -ECANCELED);
	}
}

static void local_req_fini(struct lw__breq *req)
{
	struct local_req *lr = LW_CONTAINER_OF(req, struct local_req, base);

	lw__fd_cancel(req->be->engine, &lr->fdw);
	fd_release(lr);
	free(lr->path); /* and tmp, which lives in the same block */
}

static int local_open(struct lw__backend *be, const struct lw__url *url)
{
	struct local *l = calloc(1, sizeof(*l));

	if (!l)
		return -ENOMEM;
	l->root = strdup(url->path);
	if (!l->root || asprintf(&l->locks, "%s/locks",
				 strcmp(url->path, "/") ? url->path : "") < 0) {
		free(l->root);
		free(l);
		return -ENOMEM;
	}
	lw__list_init(&l->queue);
	l->locks_len = strlen(l->locks);
	be->priv = l;
	be->where = l->root;
	return 0;
}

static void local_close(struct lw__backend *be)
{
	struct local *l = priv(be);

	free(l->root);
	free(l->locks);
	free(l);
}

const struct lw__backend_ops lw__backend_local = {
	.name = "local",
	.req_size = sizeof(struct local_req),
	.open = local_open,
	.close = local_close,
	.start = local_start,
	.cancel = local_cancel,
	.req_fini = local_req_fini,
};
