/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Worker threads for file operations that have no SQE (every one on the
 * epoll engine, readdir on io_uring).  A job owns copies of everything it
 * touches, so a thread stuck in a hung call can outlive the loop: when the
 * call returns it finds nobody waiting and cleans up after itself.
 */
#include "config.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <linux/openat2.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "engine/engine.h"

#define MAX_THREADS 4
/* A listing larger than this is refused rather than read into memory. */
#define MAX_NAMES_BYTES (256u << 20)

struct job {
	struct lw__qnode node;
	struct lw__fop *op; /* only touched on the loop thread */
	enum lw__fop_type type;
	int fd;
	int flags;
	unsigned mode;
	bool hang;
	bool beneath;
	int dirfd;  /* a copy of the operation's, or AT_FDCWD */
	char *path; /* the operation's NAME when it has one */
	char *path2;
	void *data;
	size_t len;
	uint64_t off;
	int res;
	char *names;
	size_t names_len;
};

struct lw__worker {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_cond_t gone; /* a thread exited */
	struct lw__queue todo;
	struct lw__queue done;
	struct lw__engine *e; /* NULL once the loop let go */
	int refs;             /* the loop's and one per thread */
	int threads;
	int idle;
};

static void job_free(struct job *j)
{
	if (j->dirfd >= 0)
		close(j->dirfd);
	free(j->path);
	free(j->path2);
	free(j->data);
	lw__names_free(j->names, j->names_len);
	free(j);
}

/* A job whose loop is gone: undo what it created. */
static void job_discard(struct job *j)
{
	if (j->type == LW__FOP_OPENAT && j->res >= 0)
		close(j->res);
	job_free(j);
}

/*
 * A listing's names live in a mapping of their own rather than in malloc:
 * they are read on a worker thread, and the thread's malloc arena would keep
 * the pages of the largest listing after it is freed (a listing of 100,000
 * locks is 6.5 MB, and the epoll engine's four workers each kept one: 21 MB
 * of RSS at 100,000 locks).  An unmapped listing goes back to the kernel.
 */
static size_t names_map_len(size_t len)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);

	return (len + page - 1) / page * page;
}

void lw__names_free(char *names, size_t len)
{
	if (names)
		munmap(names, names_map_len(len));
}

/* Grows the mapping BUF of CAP bytes to hold at least NEED. */
static int names_grow(char **buf, size_t *cap, size_t need)
{
	size_t ncap = *cap ? 2 * *cap : 64u << 10;
	void *p;

	while (ncap < need)
		ncap *= 2;
	if (ncap > MAX_NAMES_BYTES)
		return -EFBIG;
	if (*buf)
		p = mremap(*buf, *cap, ncap, MREMAP_MAYMOVE);
	else
		p = mmap(NULL, ncap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return -ENOMEM;
	*buf = p;
	*cap = ncap;
	return 0;
}

/* The entry's type, asking the file system where readdir does not say. */
static char entry_type(DIR *d, const struct dirent *de)
{
	struct stat st;
	unsigned char t = de->d_type;

	if (t == DT_UNKNOWN && fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0)
		t = S_ISREG(st.st_mode) ? DT_REG : S_ISDIR(st.st_mode) ? DT_DIR :
		    S_ISLNK(st.st_mode) ? DT_LNK : DT_FIFO;
	switch (t) {
	case DT_REG:
	case DT_UNKNOWN: /* gone meanwhile, or unknowable: reading it will tell */
		return LW__FTYPE_FILE;
	case DT_DIR:
		return LW__FTYPE_DIR;
	case DT_LNK:
		return LW__FTYPE_SYMLINK;
	default:
		return LW__FTYPE_OTHER;
	}
}

static int read_names(int at, const char *path, char **namesp, size_t *lenp)
{
	int fd = openat(at, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	char *buf = NULL;
	size_t len = 0, cap = 0;
	struct dirent *de;
	int r = 0;

	if (!d) {
		r = -errno;
		if (fd >= 0)
			close(fd);
		return r;
	}
	while ((errno = 0, de = readdir(d))) {
		size_t n = strlen(de->d_name) + 1;

		if (de->d_name[0] == '.' && (n == 2 || (n == 3 && de->d_name[1] == '.')))
			continue;
		if (len + 1 + n > cap && (r = names_grow(&buf, &cap, len + 1 + n)) < 0)
			break;
		buf[len] = entry_type(d, de);
		memcpy(buf + len + 1, de->d_name, n);
		len += 1 + n;
	}
	if (!r && errno)
		r = -errno;
	closedir(d);
	if (r < 0 || len == 0) {
		if (buf)
			munmap(buf, cap);
		buf = NULL;
		len = 0;
	} else if (names_map_len(len) < cap) {
		/* to the size lw__names_free unmaps; shrinking stays in place */
		munmap(buf + names_map_len(len), cap - names_map_len(len));
	}
	if (r < 0)
		return r;
	*namesp = buf;
	*lenp = len;
	return 0;
}

/* openat2(2) where the kernel (or a seccomp filter) lets us. */
static atomic_bool no_openat2;

static int open_beneath(struct job *j)
{
	struct open_how how = {
		.flags = (uint64_t)j->flags,
		.mode = j->flags & O_CREAT ? j->mode : 0,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS,
	};
	long n;

	if (!atomic_load(&no_openat2)) {
		n = syscall(SYS_openat2, j->dirfd, j->path, &how, sizeof(how));
		if (n >= 0 || (errno != ENOSYS && errno != EPERM))
			return n < 0 ? -errno : (int)n;
		atomic_store(&no_openat2, true);
	}
	n = openat(j->dirfd, j->path, j->flags | O_NOFOLLOW, j->mode);
	return n < 0 ? -errno : (int)n;
}

static int run(struct job *j)
{
	ssize_t n;
	char c;

	if (j->hang) {
		/* the injected hang: a read of a pipe nobody writes */
		while ((n = read(j->fd, &c, 1)) < 0 && errno == EINTR)
			;
		return -ECANCELED;
	}
	switch (j->type) {
	case LW__FOP_OPENAT:
		if (j->beneath)
			return open_beneath(j);
		n = openat(j->dirfd, j->path, j->flags, j->mode);
		break;
	case LW__FOP_READ:
		n = pread(j->fd, j->data, j->len, (off_t)j->off);
		break;
	case LW__FOP_WRITE:
		n = pwrite(j->fd, j->data, j->len, (off_t)j->off);
		break;
	case LW__FOP_FSYNC:
		n = fsync(j->fd);
		break;
	case LW__FOP_CLOSE:
		n = close(j->fd);
		break;
	case LW__FOP_RENAMEAT:
		n = renameat2(j->dirfd, j->path, j->dirfd, j->path2, (unsigned)j->flags);
		break;
	case LW__FOP_UNLINKAT:
		n = unlinkat(j->dirfd, j->path, j->flags);
		break;
	case LW__FOP_MKDIRAT:
		n = mkdirat(j->dirfd, j->path, j->mode);
		break;
	case LW__FOP_READDIR:
		return read_names(j->dirfd, j->path, &j->names, &j->names_len);
	default:
		return -EINVAL;
	}
	return n < 0 ? -errno : (int)n;
}

static void unref(struct lw__worker *w)
{
	bool last;

	pthread_mutex_lock(&w->mu);
	last = --w->refs == 0;
	pthread_mutex_unlock(&w->mu);
	if (!last)
		return;
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->cv);
	pthread_cond_destroy(&w->gone);
	free(w);
}

static void *thread_main(void *arg)
{
	struct lw__worker *w = arg;

	pthread_mutex_lock(&w->mu);
	for (;;) {
		struct job *j;

		while (lw__queue_empty(&w->todo) && w->e) {
			w->idle++;
			pthread_cond_wait(&w->cv, &w->mu);
			w->idle--;
		}
		if (!w->e)
			break;
		j = LW_CONTAINER_OF(lw__queue_pop(&w->todo), struct job, node);
		pthread_mutex_unlock(&w->mu);

		j->res = run(j);

		pthread_mutex_lock(&w->mu);
		if (!w->e) {
			job_discard(j);
			break;
		}
		lw__queue_push(&w->done, &j->node);
		/* under the mutex: the engine cannot be freed meanwhile */
		lw__engine_wake(w->e);
	}
	w->threads--;
	pthread_cond_broadcast(&w->gone);
	pthread_mutex_unlock(&w->mu);
	unref(w);
	return NULL;
}

static int spawn(struct lw__worker *w)
{
	pthread_attr_t attr;
	sigset_t all, old;
	pthread_t t;
	int r;

	/* Workers take no signals: those belong to the application. */
	sigfillset(&all);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	/* small stacks: nothing here recurses (sanitizers want some room) */
	pthread_attr_setstacksize(&attr, 256 * 1024);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = -pthread_create(&t, &attr, thread_main, w);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	if (r == 0) {
		w->threads++;
		w->refs++;
	}
	return r;
}

struct lw__worker *lw__worker_new(struct lw__engine *e)
{
	struct lw__worker *w = calloc(1, sizeof(*w));

	if (!w)
		return NULL;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	lw__cond_init_monotonic(&w->gone);
	lw__queue_init(&w->todo);
	lw__queue_init(&w->done);
	w->e = e;
	w->refs = 1;
	return w;
}

static struct job *job_new(const struct lw__fop *op)
{
	struct job *j = calloc(1, sizeof(*j));
	int err;

	if (!j)
		return NULL;
	j->type = op->type;
	j->dirfd = AT_FDCWD;
	j->fd = op->fd;
	j->flags = op->flags;
	j->mode = op->mode;
	j->hang = op->hang;
	if (op->hang)
		j->fd = lw__fault_hang_fd();
	j->len = op->len;
	j->off = op->off;
	j->beneath = op->beneath;
	/* its own descriptor of the directory: a thread stuck in a hung
	 * call may outlive the operation's */
	if (op->name && (j->dirfd = fcntl(op->dirfd, F_DUPFD_CLOEXEC, 0)) < 0)
		goto fail;
	if (op->name ? (!(j->path = strdup(op->name)) ||
			(op->name2 && !(j->path2 = strdup(op->name2)))) :
		       ((op->path && !(j->path = strdup(op->path))) ||
			(op->path2 && !(j->path2 = strdup(op->path2)))))
		goto fail;
	if (op->type == LW__FOP_READ || op->type == LW__FOP_WRITE) {
		j->data = malloc(op->len ? op->len : 1);
		if (!j->data)
			goto fail;
		if (op->type == LW__FOP_WRITE)
			memcpy(j->data, op->buf, op->len);
	}
	return j;
fail:
	err = errno;
	job_free(j);
	errno = err;
	return NULL;
}

void lw__worker_submit(struct lw__worker *w, struct lw__fop *op)
{
	struct job *j = job_new(op);
	int r = 0;

	if (!j) {
		/* no descriptor for its copy of the directory is back-pressure */
		lw__fop_complete_later(w->e, op, errno == EMFILE || errno == ENFILE ?
					     -errno : -ENOMEM);
		return;
	}
	j->op = op;
	pthread_mutex_lock(&w->mu);
	if (w->idle == 0 && w->threads < MAX_THREADS)
		r = spawn(w);
	if (r < 0 && w->threads == 0) {
		pthread_mutex_unlock(&w->mu);
		job_free(j);
		lw__fop_complete_later(w->e, op, r);
		return;
	}
	lw__queue_push(&w->todo, &j->node);
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

void lw__worker_reap(struct lw__worker *w)
{
	struct lw__queue done;
	struct lw__qnode *n;

	pthread_mutex_lock(&w->mu);
	lw__queue_move(&done, &w->done);
	pthread_mutex_unlock(&w->mu);
	while ((n = lw__queue_pop(&done))) {
		struct job *j = LW_CONTAINER_OF(n, struct job, node);
		struct lw__fop *op = j->op;

		if (op->type == LW__FOP_READ && j->res > 0)
			memcpy(op->buf, j->data, (size_t)j->res);
		if (op->type == LW__FOP_READDIR && j->res == 0) {
			op->names = j->names;
			op->names_len = j->names_len;
			j->names = NULL;
		}
		op->done(op, j->res);
		job_free(j);
		lw__engine_urgent(w->e);
	}
}

void lw__worker_free(struct lw__worker *w)
{
	struct lw__qnode *n;

	pthread_mutex_lock(&w->mu);
	w->e = NULL;
	while ((n = lw__queue_pop(&w->todo)))
		job_free(LW_CONTAINER_OF(n, struct job, node));
	while ((n = lw__queue_pop(&w->done)))
		job_discard(LW_CONTAINER_OF(n, struct job, node));
	pthread_cond_broadcast(&w->cv);
	/* Threads that are not stuck in a hung call finish soon: wait a
	 * little for them, so that a process exiting right after leaves no
	 * thread behind.  A hung one is left to clean up after itself. */
	{
		struct timespec until;

		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += 1;
		while (w->threads > 0 &&
		       pthread_cond_timedwait(&w->gone, &w->mu, &until) == 0)
			;
	}
	pthread_mutex_unlock(&w->mu);
	unref(w);
}
