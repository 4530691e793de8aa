/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The local directory backend, the embedded default.  A lock file is written
 * to a hidden temporary name, fsynced and renamed into locks/ with
 * RENAME_NOREPLACE, so that a reader never sees half a record and an
 * existing file is never overwritten.  Every step is one engine file
 * operation bounded by the request's deadline.
 *
 * Nothing under the repository is reached through a symlink: each request
 * first opens locks/ itself with O_NOFOLLOW (a locks/ that is a symlink is
 * refused: ENOTDIR), and then works on one name in that directory, opened
 * with openat2's RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH where the kernel has
 * it and O_NOFOLLOW otherwise; unlinkat and renameat never follow a last
 * component.  The directory is opened afresh by every request, so that a
 * locks/ replaced meanwhile is the one seen.  Its descriptor (O_PATH) is
 * closed on the loop thread as soon as the step that needs it is done:
 * closing an O_PATH descriptor never waits for the file system.
 */
#include "config.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "backend/backend.h"
#include "util/idmap.h"
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
	char *keys;  /* root/keys: a restic repository's */
	size_t locks_len;
	unsigned running;
	struct lw__list queue;
	struct lw__backend *be;
	struct dirwatch *dw;   /* locks/'s watch, NULL while there is none */
	struct lw__list wlink; /* in dw->repos (or in a list of lost ones) */
	struct lw__list alink; /* in the loop's watched repositories */
	/* The view (the watch section): what changed in locks/ since the
	 * last answer to a VIEW listing */
	uint8_t view;             /* enum view */
	struct lw__idmap changes; /* of struct change */
	size_t names;             /* about how many names locks/ holds */
	int64_t answered_at;      /* CLOCK_BOOTTIME of the last answer */
};

enum step {
	S_OPEN, S_WRITE, S_FSYNC, S_CLOSE, S_RENAME_DIR, S_RENAME, /* create */
	S_READ_OPEN, S_READ, S_READ_CLOSE,          /* read */
	S_UNLINK, S_RMDIR,                           /* remove */
	S_EXISTS,                                    /* exists */
	S_READDIR,                                   /* list */
	S_MKDIR_ROOT, S_MKDIR_LOCKS, S_CHECK_DIR,    /* init */
	S_DIR,                                       /* every request's first */
	S_VIEW,                                      /* list from the view */
	S_CLEAN_CLOSE, S_CLEAN_DIR, S_CLEAN_UNLINK,  /* after a failure */
};

/* A local repository's view of locks/ (the watch section). */
enum view {
	VIEW_NONE,   /* no basis: the next VIEW listing reads the folder */
	VIEW_BASING, /* a listing's readdir is under way; changes count */
	VIEW_VALID,  /* a basis was answered; CHANGES is everything since */
};

struct local_req;
static bool view_list(struct local_req *lr);
static int view_take(struct local_req *lr);

struct local_req {
	struct lw__breq base;
	struct lw__fop fop;
	struct lw__list link;   /* in the queue while it waits */
	struct lw__fd_waiter fdw; /* in the loop's line for a descriptor */
	bool running;
	/* Descriptors of the loop's budget it holds, as many as it has open
	 * at most at once (locks/ and a file), for its whole life; and the
	 * step that opens locks/ to go on with once it has them again after
	 * EMFILE (S_DIR: from the start). */
	unsigned fds, fds_want;
	enum step resume;
	enum step step;
	bool basing;    /* LIST: its readdir is the basis of a view */
	int fd;
	int dirfd;      /* locks/, opened without following a symlink */
	size_t written;
	int err;        /* the failure being cleaned up after */
	char *path;     /* locks/ID (or keys/ID, or config) */
	char *tmp;      /* locks/.tmp-ID */
	const char *name, *tmp_name; /* their last components */
	const char *dir; /* the folder of PATH: locks/, keys/ or the root */
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

/* Runs TYPE on NAME (shown as PATH) in the request's locks/. */
static void submit_in_dir(struct local_req *lr, enum step step, enum lw__fop_type type,
			  const char *path, const char *name)
{
	lr->fop.path = path;
	lr->fop.name = name;
	lr->fop.dirfd = lr->dirfd;
	submit(lr, step, type);
}

/* Opens locks/ for STEP (S_DIR, S_RENAME_DIR, S_CLEAN_DIR, S_CHECK_DIR):
 * O_NOFOLLOW with O_DIRECTORY fails on a symlink. */
static void open_dir(struct local_req *lr, enum step step)
{
	struct lw__fop *f = &lr->fop;

	f->path = lr->dir;
	f->name = NULL;
	f->beneath = false;
	f->flags = O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
	f->mode = 0;
	submit(lr, step, LW__FOP_OPENAT);
}

static void close_dir(struct local_req *lr)
{
	if (lr->dirfd >= 0)
		close(lr->dirfd); /* O_PATH: nothing to wait for */
	lr->dirfd = -1;
}

static void run(struct local_req *lr);
static void start_in_dir(struct local_req *lr);
static void fd_granted(struct lw__fd_waiter *w);

/* The request is over: its descriptors go back to the budget. */
static void fd_release(struct local_req *lr)
{
	while (lr->fds) {
		lr->fds--;
		lw__fd_give(lr->base.be->engine);
	}
}

/* Takes what the request still lacks: false when it waits in line.  One
 * that holds some already keeps its place first in line. */
static bool fd_take(struct local_req *lr)
{
	struct lw__engine *e = lr->base.be->engine;

	while (lr->fds < lr->fds_want) {
		if (!(lr->fds ? lw__fd_take_more(e, &lr->fdw) : lw__fd_take(e, &lr->fdw)))
			return false;
		lr->fds++;
	}
	return true;
}

/* The kernel said RES (EMFILE, ENFILE) at STEP: one descriptor goes back,
 * and the request waits first in line to go on at RESUME. */
static void starved(struct local_req *lr, int res, enum step resume)
{
	close_dir(lr);
	lr->resume = resume;
	lr->fds--;
	lw__fd_starved(lr->base.be->engine, &lr->fdw, res);
}

static void view_drop(struct local *l);

static void finish(struct local_req *lr, int res)
{
	struct local *l = priv(lr->base.be);

	if (res < 0 && lr->base.op == LW__BOP_LIST && lr->base.view)
		view_drop(l); /* its asker missed what it took: start afresh */
	close_dir(lr);
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
	if (lr->dirfd < 0) {
		open_dir(lr, S_CLEAN_DIR);
		return;
	}
	lr->fop.flags = 0;
	submit_in_dir(lr, S_CLEAN_UNLINK, LW__FOP_UNLINKAT, lr->tmp, lr->tmp_name);
}

static void fail(struct local_req *lr, int res)
{
	static const char *const verbs[] = {
		[S_OPEN] = "creating", [S_WRITE] = "writing", [S_FSYNC] = "syncing",
		[S_CLOSE] = "closing", [S_RENAME_DIR] = "opening",
		[S_RENAME] = "renaming into place",
		[S_READ_OPEN] = "opening", [S_READ] = "reading",
		[S_UNLINK] = "removing", [S_RMDIR] = "removing", [S_READDIR] = "listing",
		[S_EXISTS] = "looking up",
		[S_MKDIR_ROOT] = "creating", [S_MKDIR_LOCKS] = "creating",
		[S_CHECK_DIR] = "opening", [S_DIR] = "opening", [S_VIEW] = "listing",
	};
	bool dir = lr->step == S_DIR || lr->step == S_RENAME_DIR || lr->step == S_CHECK_DIR;
	const char *path = lr->step <= S_RENAME && !dir ? lr->tmp : lr->fop.path;

	if (dir && (res == -ENOTDIR || res == -ELOOP)) {
		/* a symlink (or a file) where locks/ belongs: never followed */
		res = -ENOTDIR;
		lw__breq_fail(&lr->base, res, "%s is not a folder (a symlink?): lockwatch "
			      "follows no symlink in a repository", path);
		lw__sanitize(lr->base.msg);
	}
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

/* The names in locks/ that are lock ids, and what each is; anything else
 * is not ours. */
static int parse_names(struct local_req *lr, const char *names, size_t len)
{
	struct lw__breq *req = &lr->base;
	size_t n = 0, cap = 0, tcap = 0;

	for (size_t off = 0; off < len;) {
		char type = names[off];
		const char *name = names + off + 1;
		size_t nlen = strlen(name);

		off += nlen + 2;
		if (nlen != LW_ID_HEX)
			continue;
		if (lw__grow(&req->ids, &cap, n, sizeof(*req->ids), 64) < 0)
			return -ENOMEM;
		if (!lw__id_parse(name, nlen, &req->ids[n]))
			continue;
		if (type != LW__FTYPE_FILE && !req->types) {
			/* the first that is not a file: the others so far were */
			tcap = LW_MAX(cap, (size_t)64);
			req->types = malloc(tcap);
			if (!req->types)
				return -ENOMEM;
			memset(req->types, LW__FTYPE_FILE, n);
		}
		if (req->types) {
			if (lw__grow(&req->types, &tcap, n, 1, 64) < 0)
				return -ENOMEM;
			req->types[n] = (uint8_t)type;
		}
		n++;
	}
	req->nids = n;
	return 0;
}

static void on_fop(struct lw__fop *f, int res)
{
	struct local_req *lr = LW_CONTAINER_OF(f, struct local_req, fop);

	f->name = f->name2 = NULL;
	f->beneath = false;
	if (res >= 0 && (lr->step == S_DIR || lr->step == S_RENAME_DIR ||
			 lr->step == S_CLEAN_DIR || lr->step == S_CHECK_DIR))
		lr->dirfd = res;
	switch (lr->step) {
	case S_CLEAN_UNLINK:
		if (lw__fd_exhausted(res)) {
			starved(lr, res, S_CLEAN_DIR);
			return;
		}
		finish(lr, lr->err);
		return;
	case S_CLEAN_DIR:
		if (lw__fd_exhausted(res)) {
			starved(lr, res, S_CLEAN_DIR);
			return;
		}
		if (res < 0) {
			finish(lr, lr->err);
			return;
		}
		lr->fop.flags = 0;
		submit_in_dir(lr, S_CLEAN_UNLINK, LW__FOP_UNLINKAT, lr->tmp, lr->tmp_name);
		return;
	case S_CLEAN_CLOSE:
		cleanup(lr, lr->err);
		return;
	case S_READ_CLOSE:
		finish(lr, lr->err);
		return;
	case S_DIR:
	case S_OPEN:
	case S_READ_OPEN:
	case S_EXISTS:
	case S_READDIR:
	case S_UNLINK:
	case S_RMDIR:
		/* back-pressure, not a failure: try again when the loop
		 * frees a descriptor (from the start: locks/ again too; a
		 * worker's step needs one for its copy of locks/) */
		if (lw__fd_exhausted(res) && !lr->base.cancelled) {
			starved(lr, res, S_DIR);
			return;
		}
		break;
	case S_RENAME_DIR:
	case S_RENAME:
	case S_CHECK_DIR:
		if (lw__fd_exhausted(res) && !lr->base.cancelled) {
			starved(lr, res, lr->step == S_RENAME ? S_RENAME_DIR : lr->step);
			return;
		}
		break;
	default:
		break;
	}
	/* a directory where a lock file was: remove it if it is empty,
	 * never what is in it */
	if (res == -EISDIR && lr->step == S_UNLINK) {
		lr->fop.flags = AT_REMOVEDIR;
		submit_in_dir(lr, S_RMDIR, LW__FOP_UNLINKAT, lr->path, lr->name);
		return;
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
	case S_DIR:
		start_in_dir(lr);
		return;
	case S_OPEN:
		lr->written = 0;
		close_dir(lr); /* opened again for the rename */
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
		open_dir(lr, S_RENAME_DIR);
		return;
	case S_RENAME_DIR:
		f->path2 = lr->path;
		f->name2 = lr->name;
		f->flags = RENAME_NOREPLACE;
		submit_in_dir(lr, S_RENAME, LW__FOP_RENAMEAT, lr->tmp, lr->tmp_name);
		return;
	case S_READ_OPEN: {
		/* one byte over the limit, so that the reader sees it is over */
		size_t max = (lr->base.file == LW__BFILE_LOCKS ? LW_RECORD_MAX :
			      LW__BFILE_MAX) + 1;

		close_dir(lr);
		lr->base.buf = malloc(max);
		if (!lr->base.buf) {
			fail(lr, -ENOMEM);
			return;
		}
		f->fd = lr->fd;
		f->buf = lr->base.buf;
		f->len = max;
		f->off = 0;
		submit(lr, S_READ, LW__FOP_READ);
		return;
	}
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
		if (res < 0) {
			fail(lr, res);
			return;
		}
		if (lr->basing && priv(lr->base.be)->view == VIEW_BASING) {
			priv(lr->base.be)->view = VIEW_VALID;
			priv(lr->base.be)->names = lr->base.nids;
		}
		finish(lr, 0);
		return;
	case S_VIEW:
		if (priv(lr->base.be)->view != VIEW_VALID) {
			/* lost while it waited for the drain: read the folder */
			open_dir(lr, S_DIR);
			return;
		}
		res = view_take(lr);
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
	case S_MKDIR_LOCKS:
		/* an existing locks/ must be a folder, not a symlink to one */
		open_dir(lr, S_CHECK_DIR);
		return;
	case S_EXISTS:
		close(res); /* O_PATH: nothing to wait for */
		finish(lr, 0);
		return;
	case S_UNLINK:
	case S_RMDIR:
	case S_CHECK_DIR:
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
	lr->dirfd = -1;
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

	lr->fds++;
	if (!fd_take(lr))
		return;
	if (lr->resume == S_DIR)
		begin(lr);
	else
		open_dir(lr, lr->resume);
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
	lr->name = lr->path + l->locks_len + 1;
	lr->tmp_name = lr->tmp + l->locks_len + 1;
	lr->dir = l->locks;
	/* a restic repository's layout, read the same way: keys/ is shorter
	 * than locks/, and config is a name in the root */
	if (req->file == LW__BFILE_KEYS) {
		lr->dir = l->keys;
		lr->name = lr->path + strlen(l->keys) + 1;
		sprintf(lr->path, "%s/%s", l->keys, hex);
	} else if (req->file == LW__BFILE_CONFIG) {
		lr->dir = l->root;
		sprintf(lr->path, "%s%sconfig", l->root,
			l->root[strlen(l->root) - 1] == '/' ? "" : "/");
		lr->name = strrchr(lr->path, '/') + 1;
	}
	lr->fop.path = lr->path;
	/* locks/, the copy of it a worker thread's step takes (engine
	 * worker.c), and a file or a listing's own descriptor of the folder */
	lr->fds_want = req->op == LW__BOP_CREATE || req->op == LW__BOP_READ ||
		       req->op == LW__BOP_EXISTS || req->op == LW__BOP_LIST ? 3 : 2;
	lr->resume = S_DIR;
	if (!fd_take(lr))
		return; /* fd_granted goes on */
	begin(lr);
}

/* The first step of the request; it holds its descriptor if it needs one. */
static void begin(struct local_req *lr)
{
	struct lw__breq *req = &lr->base;
	struct lw__fop *f = &lr->fop;

	if (req->started)
		req->began = lw__now_boot();
	switch (req->op) {
	case LW__BOP_CREATE:
	case LW__BOP_READ:
	case LW__BOP_REMOVE:
	case LW__BOP_EXISTS:
	case LW__BOP_LIST:
		open_dir(lr, S_DIR);
		return;
	case LW__BOP_INIT:
		f->path = priv(req->be)->root;
		f->mode = 0755;
		submit(lr, S_MKDIR_ROOT, LW__FOP_MKDIRAT);
		return;
	case LW__BOP_KEEPALIVE: /* files have no lease */
		break;
	}
	lr->step = S_UNLINK;
	lw__fop_complete_later(req->be->engine, f, -EOPNOTSUPP);
}

/* With locks/ open: the request's own step, on one name in it. */
static void start_in_dir(struct local_req *lr)
{
	struct lw__breq *req = &lr->base;
	struct lw__fop *f = &lr->fop;

	switch (req->op) {
	case LW__BOP_CREATE:
		f->flags = O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW;
		/* others must read locks to check conflicts; nobody writes a
		 * lock file once it is in place (the umask still applies) */
		f->mode = 0444;
		f->beneath = true;
		submit_in_dir(lr, S_OPEN, LW__FOP_OPENAT, lr->tmp, lr->tmp_name);
		return;
	case LW__BOP_READ:
		/* O_NONBLOCK: a FIFO planted in locks/ must not hang the open */
		f->flags = O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY;
		f->beneath = true;
		submit_in_dir(lr, S_READ_OPEN, LW__FOP_OPENAT, lr->path, lr->name);
		return;
	case LW__BOP_REMOVE:
		f->flags = 0;
		submit_in_dir(lr, S_UNLINK, LW__FOP_UNLINKAT, lr->path, lr->name);
		return;
	case LW__BOP_EXISTS:
		/* where a lock's watch was refused or lost (the watch section):
		 * the name itself, whatever it is, without following it */
		f->flags = O_PATH | O_NOFOLLOW | O_CLOEXEC;
		f->beneath = true;
		submit_in_dir(lr, S_EXISTS, LW__FOP_OPENAT, lr->path, lr->name);
		return;
	default: /* LIST */
		if (req->view && req->file == LW__BFILE_LOCKS && view_list(lr))
			return;
		submit_in_dir(lr, S_READDIR, LW__FOP_READDIR, lr->dir, ".");
		return;
	}
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
				 strcmp(url->path, "/") ? url->path : "") < 0)
		l->locks = NULL;
	if (!l->locks || asprintf(&l->keys, "%s/keys",
				  strcmp(url->path, "/") ? url->path : "") < 0) {
		free(l->locks);
		free(l->root);
		free(l);
		return -ENOMEM;
	}
	lw__list_init(&l->queue);
	lw__list_init(&l->wlink);
	lw__list_init(&l->alink);
	lw__idmap_init(&l->changes);
	l->be = be;
	l->locks_len = strlen(l->locks);
	be->priv = l;
	be->where = l->root;
	return 0;
}

/* ------------------------------------------------------------ watch */

/*
 * One inotify instance per loop, shared by its local repositories, and one
 * watch (wd) per repository's locks/, however many locks it holds: a lock
 * file that someone removes (unlock --remove-all, a plain rm) is reported
 * at once instead of at the next refresh.  An instance per repository ran
 * into fs.inotify.max_user_instances (128 by default) from the 129th
 * repository on; watches count against max_user_watches, which is far
 * larger.  Our own deletes are reported too; the layer above knows which
 * files are still ours.  Only this host's removals are seen on a network
 * filesystem: the refresh still finds the others.
 *
 * Where the kernel refuses (inotify_init1: EMFILE; inotify_add_watch:
 * ENOSPC, ENOMEM) or a watch is lost (locks/ removed, moved, unmounted),
 * be->watched is false and the repository's held locks check their files
 * every check interval instead (lock/refresh.c).
 *
 * The same events keep a view of locks/ for the listing above (VIEW
 * listings, backend.h): after one full listing, made while the watch was
 * already in place, a listing is what changed since the last one, not a
 * readdir of every lock file.  That is sound only where the watch sees
 * every change that completed before the listing began:
 *  - the kernel queues an event before the call that made the change
 *    returns, and a listing waits until the instance's queue, as it was
 *    when the listing began, has been read (FIONREAD, then the drain);
 *  - only on file systems where every change is made through this kernel:
 *    tmpfs, ext4, XFS, Btrfs, F2FS (statfs).  A network or FUSE file
 *    system changed elsewhere, or an overlay, is read in full every time;
 *  - the folder a listing opens is the one watched (device and inode):
 *    one replaced, or mounted over, is read in full;
 *  - a lost watch, a queue overflow, a failed listing, more changes
 *    between two listings than the folder holds names (VIEW_MIN at
 *    least), or a change after VIEW_IDLE without a listing end the view:
 *    the next listing reads the folder again, and changes count from its
 *    start.  Events
 *    already queued then are replayed after that readdir; the last event
 *    of a name decides, which is its state after the readdir too.
 * A lock file is announced by IN_MOVED_TO (ours and restic's later
 * versions: a rename into place) or IN_CREATE and IN_CLOSE_WRITE (written
 * in place, as restic 0.14 does: read again once written); a name that
 * appears or changes is read by the listing, one that goes is dropped.
 *
 * The kernel gives an inode one wd per instance: a folder opened as two
 * repositories shares it, and it is removed when the last of them closes.
 * Every watch ends with one IN_IGNORED, whoever removed it; until that has
 * come, what arrives for its wd is the old watch's.  wds are handed out
 * cyclically, so one comes back only after 2^31 others; it can.
 */
struct lw__inotify {
	struct lw__engine *engine;
	int fd;                /* -1 until a first watch, and after an error */
	struct lw__watch watch;
	struct lw__idmap wds;  /* of struct dirwatch */
	struct lw__list repos; /* every watched struct local, by alink */
	/* VIEW listings waiting for what was queued when they began to be
	 * read (struct local_req, by link) */
	struct lw__list syncing;
};

/* Changes kept between two VIEW listings of a repository, at most: as
 * many as the folder holds names, and at least VIEW_MIN (about 50 bytes
 * each with the map's slot).  More, and the view is dropped: the readdir
 * that follows costs less than the changes it replaces.  And a view
 * nobody asked for in VIEW_IDLE is dropped at its next change, so that
 * repositories whose locks are held, not acquired, keep nothing. */
#define VIEW_MIN 256
#define VIEW_IDLE LW_SEC(5)

struct change {
	struct lw__id id; /* first: the map's key */
	bool present;     /* appeared or changed (read it), or went */
};

struct dirwatch {
	struct lw__id key;     /* the wd, in the form the id map keys by */
	int wd;
	dev_t dev;             /* the folder watched; 0, 0: unknown */
	ino_t ino;
	unsigned n;            /* repositories that watch it */
	unsigned ignoring;     /* IN_IGNORED still to come for earlier watches */
	struct lw__list repos; /* of struct local, by wlink */
};

#define WATCH_MASK (IN_DELETE | IN_MOVED_FROM | IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE | \
		    IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR | IN_DONT_FOLLOW)

static struct lw__id wd_key(int wd)
{
	struct lw__id key = { 0 };

	memcpy(key.b, &wd, sizeof(wd));
	return key;
}

static void changes_clear(struct local *l)
{
	for (size_t i = 0; i < l->changes.cap; i++)
		free(l->changes.slots[i]);
	lw__idmap_fini(&l->changes);
	lw__idmap_init(&l->changes);
}

static void view_drop(struct local *l)
{
	l->view = VIEW_NONE;
	changes_clear(l);
}

/* ID appeared or changed (PRESENT), or went, in the folder DW watches:
 * every view of it keeps the last word. */
static void view_note(struct dirwatch *dw, const struct lw__id *id, bool present)
{
	int64_t now = 0;

	for (struct lw__list *n = dw->repos.next; n != &dw->repos; n = n->next) {
		struct local *l = LW_CONTAINER_OF(n, struct local, wlink);
		struct change *c;

		if (l->view == VIEW_NONE)
			continue;
		if (!now)
			now = lw__now_boot();
		if (now - l->answered_at > VIEW_IDLE) {
			view_drop(l);
			continue;
		}
		c = lw__idmap_get(&l->changes, id);
		if (!c && l->changes.n < LW_MAX(l->names, (size_t)VIEW_MIN) &&
		    (c = malloc(sizeof(*c)))) {
			c->id = *id;
			if (lw__idmap_put(&l->changes, c) < 0) {
				free(c);
				c = NULL;
			}
		}
		if (!c) {
			view_drop(l);
			continue;
		}
		c->present = present;
	}
}

/* What was queued has been read: the VIEW listings that waited go on. */
static void view_synced(struct lw__inotify *ino)
{
	while (!lw__list_empty(&ino->syncing)) {
		struct local_req *lr = LW_CONTAINER_OF(ino->syncing.next, struct local_req, link);

		lw__list_del(&lr->link);
		lw__fop_complete_later(ino->engine, &lr->fop, 0);
	}
}

/* Whether every change to a folder on a file system of TYPE is made
 * through this kernel, and so seen by its inotify. */
static bool sees_every_change(long type)
{
	switch ((unsigned long)type) {
	case TMPFS_MAGIC:
	case EXT4_SUPER_MAGIC: /* ext2 and ext3 too */
	case XFS_SUPER_MAGIC:
	case BTRFS_SUPER_MAGIC:
	case F2FS_SUPER_MAGIC:
		return true;
	default:
		return false;
	}
}

static int local_watch(struct lw__backend *be);

/* A VIEW listing with locks/ open: true when it answers from the view (at
 * S_VIEW, once what was queued when it began has been read), false when it
 * reads the folder, the basis of a new view where one can be sound. */
static bool view_list(struct local_req *lr)
{
	struct lw__backend *be = lr->base.be;
	struct local *l = priv(be);
	struct statfs sfs;
	struct stat st;
	int queued;

	if (!l->dw && local_watch(be) < 0)
		return false;
	if (fstat(lr->dirfd, &st) < 0 || st.st_dev != l->dw->dev || st.st_ino != l->dw->ino) {
		/* not the folder watched: replaced, or mounted over */
		view_drop(l);
		return false;
	}
	if (l->view == VIEW_VALID && !lr->base.rebase &&
	    ioctl(be->env->inotify->fd, FIONREAD, &queued) == 0) {
		close_dir(lr);
		lr->step = S_VIEW;
		if (queued)
			lw__list_add_tail(&be->env->inotify->syncing, &lr->link);
		else
			lw__fop_complete_later(be->engine, &lr->fop, 0);
		return true;
	}
	view_drop(l);
	if (fstatfs(lr->dirfd, &sfs) == 0 && sees_every_change((long)sfs.f_type)) {
		l->view = VIEW_BASING;
		l->answered_at = lw__now_boot();
		lr->basing = true;
	}
	return false;
}

/* The answer from the view: what changed since the last one. */
static int view_take(struct local_req *lr)
{
	struct lw__breq *req = &lr->base;
	struct local *l = priv(req->be);
	size_t n = l->changes.n ? l->changes.n : 1;

	req->ids = malloc(n * sizeof(*req->ids));
	req->gone = malloc(n * sizeof(*req->gone));
	if (!req->ids || !req->gone)
		return -ENOMEM; /* the view goes with the failure */
	for (size_t i = 0; i < l->changes.cap; i++) {
		struct change *c = l->changes.slots[i];

		if (c && c->present)
			req->ids[req->nids++] = c->id;
		else if (c)
			req->gone[req->ngone++] = c->id;
	}
	changes_clear(l);
	l->answered_at = lw__now_boot();
	/* each name that changed, counted as one that came or went */
	l->names = l->names + req->nids > req->ngone ? l->names + req->nids - req->ngone : 0;
	req->delta = true;
	return 0;
}

/* Tells every repository of LIST (linked by the member at OFF) that ID is
 * gone, each put back in LIST before it is told: a report may close any of
 * them (an event callback that frees its repository), which takes it out
 * of whichever list it is in. */
static void report(struct lw__list *list, size_t off, const struct lw__id *id)
{
	struct lw__list todo;

	lw__list_init(&todo);
	lw__list_splice(&todo, list);
	while (!lw__list_empty(&todo)) {
		struct lw__list *n = todo.next;
		struct local *l = (struct local *)(void *)((char *)n - off);

		lw__list_del(n);
		lw__list_add_tail(list, n);
		if (l->be->gone) /* NULL while only the view watches */
			l->be->gone(l->be->gone_data, id);
	}
}

/* L's watch is over (WHY): its locks check their files from now on, and
 * it goes to LOST to be told that removals may have been missed. */
static void detach(struct local *l, struct lw__list *lost, const char *why)
{
	l->dw = NULL;
	view_drop(l);
	lw__list_del(&l->alink);
	lw__list_del(&l->wlink);
	lw__list_add_tail(lost, &l->wlink);
	if (l->be->watched)
		lw__notice(l->be->log, "%s is no longer watched for removed locks (%s): its "
			   "held locks check their files every check interval instead",
			   l->locks, why);
	l->be->watched = false;
}

static void tell_lost(struct lw__list *lost)
{
	report(lost, offsetof(struct local, wlink), NULL);
	while (!lw__list_empty(lost))
		lw__list_del(lost->next);
}

static void lose(struct dirwatch *dw, const char *why)
{
	struct lw__list lost;

	lw__list_init(&lost);
	while (!lw__list_empty(&dw->repos))
		detach(LW_CONTAINER_OF(dw->repos.next, struct local, wlink), &lost, why);
	dw->n = 0;
	tell_lost(&lost);
}

static void forget(struct lw__inotify *ino, struct dirwatch *dw)
{
	lw__idmap_del(&ino->wds, &dw->key);
	free(dw);
}

/* Events were dropped, an IN_IGNORED among them maybe: no watch waits for
 * one any longer, and every repository checks its held locks' files. */
static void overflowed(struct lw__inotify *ino)
{
	for (size_t i = 0; i < ino->wds.cap; i++) {
		struct dirwatch *dw = ino->wds.slots[i];

		if (!dw)
			continue;
		dw->ignoring = 0;
		for (struct lw__list *n = dw->repos.next; n != &dw->repos; n = n->next)
			view_drop(LW_CONTAINER_OF(n, struct local, wlink));
		if (!dw->n) {
			free(dw);
			if (lw__idmap_del_at(&ino->wds, i))
				i--; /* another moved into slot I */
		}
	}
	report(&ino->repos, offsetof(struct local, alink), NULL);
}

static void on_event(struct lw__inotify *ino, const struct inotify_event *ev)
{
	struct lw__id key = wd_key(ev->wd), id;
	struct dirwatch *dw;

	if (ev->mask & IN_Q_OVERFLOW) {
		overflowed(ino);
		return;
	}
	dw = lw__idmap_get(&ino->wds, &key);
	if (!dw)
		return; /* a watch removed and forgotten */
	if (ev->mask & IN_IGNORED) {
		if (dw->ignoring)
			dw->ignoring--;
		else
			lose(dw, "the kernel ended the watch");
		if (!dw->n && !dw->ignoring)
			forget(ino, dw);
		return;
	}
	if (dw->ignoring)
		return; /* the old watch's, from before its IN_IGNORED */
	if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_UNMOUNT)) {
		/* its IN_IGNORED follows; a folder moved elsewhere would
		 * still be watched there */
		dw->ignoring++;
		if (ev->mask & IN_MOVE_SELF)
			inotify_rm_watch(ino->fd, dw->wd);
		lose(dw, ev->mask & IN_UNMOUNT ? "unmounted" :
			 ev->mask & IN_MOVE_SELF ? "moved" : "removed");
		return;
	}
	if (!ev->len || !lw__id_parse(ev->name, strlen(ev->name), &id))
		return; /* not a lock's name: a temporary file, say */
	if (ev->mask & (IN_DELETE | IN_MOVED_FROM)) {
		view_note(dw, &id, false);
		report(&dw->repos, offsetof(struct local, wlink), &id);
	} else {
		view_note(dw, &id, true);
	}
}

/* Closes the instance: every watch is lost (a later watch opens another). */
static void inotify_close(struct lw__inotify *ino)
{
	struct lw__list lost;

	lw__list_init(&lost);
	while (!lw__list_empty(&ino->repos))
		detach(LW_CONTAINER_OF(ino->repos.next, struct local, alink), &lost,
		       "inotify failed");
	for (size_t i = 0; i < ino->wds.cap; i++)
		free(ino->wds.slots[i]);
	lw__idmap_fini(&ino->wds);
	if (ino->fd >= 0) {
		lw__watch_stop(ino->engine, &ino->watch);
		close(ino->fd);
	}
	ino->fd = -1;
	view_synced(ino); /* they find their views gone */
	tell_lost(&lost);
}

static void on_inotify(struct lw__watch *w, unsigned revents)
{
	struct lw__inotify *ino = LW_CONTAINER_OF(w, struct lw__inotify, watch);
	char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t n;

	while (ino->fd >= 0 && (n = read(ino->fd, buf, sizeof(buf))) > 0) {
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *ev = (const struct inotify_event *)p;

			p += sizeof(*ev) + ev->len;
			on_event(ino, ev);
		}
	}
	if (ino->fd >= 0 && (revents & LW__ERR))
		inotify_close(ino);
	else
		view_synced(ino);
}

void lw__inotify_free(struct lw__inotify *ino)
{
	if (!ino)
		return;
	inotify_close(ino);
	free(ino);
}

/* The loop's instance, opened if it is not. */
static int inotify_get(struct lw__backend *be, struct lw__inotify **inop)
{
	struct lw__inotify *ino = be->env->inotify;
	int r;

	if (!ino) {
		ino = calloc(1, sizeof(*ino));
		if (!ino)
			return -ENOMEM;
		ino->engine = be->engine;
		ino->fd = -1;
		lw__list_init(&ino->repos);
		lw__list_init(&ino->syncing);
		be->env->inotify = ino;
	}
	if (ino->fd < 0) {
		lw__idmap_init(&ino->wds);
		ino->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
		if (ino->fd < 0)
			return -errno;
		r = lw__watch_start(be->engine, &ino->watch, ino->fd, LW__IN, on_inotify);
		if (r < 0) {
			close(ino->fd);
			ino->fd = -1;
			return r;
		}
	}
	*inop = ino;
	return 0;
}

static int local_watch(struct lw__backend *be)
{
	struct local *l = priv(be);
	struct lw__inotify *ino = NULL;
	struct dirwatch *dw;
	struct lw__id key;
	struct stat st;
	int wd, r;

	if (l->dw)
		return 0;
	r = inotify_get(be, &ino);
	if (r == -EMFILE)
		be->watch_err = "no inotify instance left (fs.inotify.max_user_instances)";
	if (r < 0)
		return r;
	wd = inotify_add_watch(ino->fd, l->locks, WATCH_MASK);
	if (wd < 0 && errno == ENOSPC)
		be->watch_err = "no inotify watch left (fs.inotify.max_user_watches)";
	if (wd < 0)
		return -errno;
	key = wd_key(wd);
	dw = lw__idmap_get(&ino->wds, &key);
	if (!dw) {
		dw = calloc(1, sizeof(*dw));
		if (dw)
			dw->key = key;
		if (!dw || lw__idmap_put(&ino->wds, dw) < 0) {
			free(dw);
			inotify_rm_watch(ino->fd, wd); /* its IN_IGNORED: for no one */
			return -ENOMEM;
		}
		dw->wd = wd;
		lw__list_init(&dw->repos);
		/* what a view's listings compare the folder they open with;
		 * one replaced between the two calls ends this watch */
		if (stat(l->locks, &st) == 0) {
			dw->dev = st.st_dev;
			dw->ino = st.st_ino;
		}
	}
	dw->n++;
	lw__list_del(&l->wlink); /* from a list of lost watches being told */
	lw__list_add_tail(&dw->repos, &l->wlink);
	lw__list_add_tail(&ino->repos, &l->alink);
	l->dw = dw;
	return 0;
}

/* At close: the last repository of a watch removes it. */
static void unwatch(struct local *l)
{
	struct dirwatch *dw = l->dw;

	lw__list_del(&l->wlink);
	lw__list_del(&l->alink);
	if (!dw)
		return;
	l->dw = NULL;
	if (--dw->n == 0) {
		/* its IN_IGNORED follows, or came already and is unread */
		inotify_rm_watch(l->be->env->inotify->fd, dw->wd);
		dw->ignoring++;
	}
}

static void local_close(struct lw__backend *be)
{
	struct local *l = priv(be);

	view_drop(l);
	unwatch(l);
	free(l->root);
	free(l->locks);
	free(l->keys);
	free(l);
}

const struct lw__backend_ops lw__backend_local = {
	.name = "local",
	.req_size = sizeof(struct local_req),
	.removes_empty_folders = true,
	.open = local_open,
	.close = local_close,
	.start = local_start,
	.cancel = local_cancel,
	.req_fini = local_req_fini,
	.watch = local_watch,
};
