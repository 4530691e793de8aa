/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The io_uring engine.  restic's per-lock monitor is a select over "a
 * refresh arrived" and "the timer ran out"; here one such select serves
 * every lock: the loop waits with a POLL_ADD on its wake-up eventfd linked
 * to a LINK_TIMEOUT (ABS | BOOTTIME) at the heap's earliest instant.  -ETIME
 * means deadlines are due; a readable eventfd means a call or a completion
 * arrived.  Both re-arm paths are O(1): no per-lock kernel timeout is ever
 * updated or removed, because the kernel finds those by walking a list.
 *
 * File operations are SQEs, each linked to a LINK_TIMEOUT shortly after its
 * deadline, so that an operation hung in the filesystem is reclaimed.  Not
 * at the deadline itself: the owner's deadline timer is the strict one, and
 * when thousands of linked timeouts expire at the very instant of their
 * locks' deadlines, the kernel cancels them in the loop thread's task work
 * before the wait returns (measured: cancellations 1 s to 5 s late with
 * 100,000 hung operations); a second later, every context has ended.
 */
#include "config.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <liburing.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"

/* user_data: a pointer or a small id in the high bits, a tag in the low 3 */
enum {
	TAG_IGNORE = 0, /* link timeouts of file operations, poll removals */
	TAG_FOP = 1,
	TAG_WATCH = 2,
	TAG_WAKE_POLL = 3,
	TAG_WAKE_TIMEOUT = 4,
};
#define TAG_MASK UINT64_C(7)
#define GEN_BITS 29
#define LINK_TIMEOUT_GRACE LW_SEC(1)
/* CQEs handled in one turn before the loop looks at its timers again */
#define CQE_BUDGET 1024

struct cqe_copy {
	uint64_t ud;
	int res;
};

struct uring_engine {
	struct lw__engine base;
	struct io_uring ring;
	struct cqe_copy *stash; /* CQEs moved out of a full ring, not yet handled */
	size_t nstash, stash_cap;
	int64_t armed_at;   /* the wait pair's timeout; INT64_MAX: none */
	int pair_pending;   /* CQEs of the wait pair not reaped yet */
	bool rearm_asked;   /* a wake was sent to re-arm the pair earlier */
	struct __kernel_timespec pair_ts;
};

_Static_assert(sizeof(((struct lw__fop *)0)->kts) == sizeof(struct __kernel_timespec),
	       "lw__fop.kts holds a __kernel_timespec");
_Static_assert(sizeof(((struct lw__fop *)0)->how) == sizeof(struct open_how),
	       "lw__fop.how holds a struct open_how");

static struct uring_engine *to_ue(struct lw__engine *e)
{
	return LW_CONTAINER_OF(e, struct uring_engine, base);
}

static void to_ts(int64_t when, struct __kernel_timespec *ts)
{
	ts->tv_sec = when / LW_NSEC_PER_SEC;
	ts->tv_nsec = when % LW_NSEC_PER_SEC;
}

static pthread_once_t probe_once = PTHREAD_ONCE_INIT;
static bool probe_ok;

/* The operations lockwatch needs arrived by 5.15 (MKDIRAT, BOOTTIME
 * timeouts); probed once per process, as libuv does. */
static void probe(void)
{
	static const int need[] = {
		IORING_OP_POLL_ADD, IORING_OP_POLL_REMOVE, IORING_OP_LINK_TIMEOUT,
		IORING_OP_OPENAT, IORING_OP_READ, IORING_OP_WRITE, IORING_OP_FSYNC,
		IORING_OP_CLOSE, IORING_OP_RENAMEAT, IORING_OP_UNLINKAT,
		IORING_OP_MKDIRAT, IORING_OP_OPENAT2,
	};
	struct io_uring_probe *p = io_uring_get_probe();

	probe_ok = p != NULL;
	for (size_t i = 0; p && i < LW_ARRAY_SIZE(need); i++)
		if (!io_uring_opcode_supported(p, need[i]))
			probe_ok = false;
	if (p)
		io_uring_free_probe(p);
}

static int ue_init(struct lw__engine *e)
{
	struct uring_engine *ue = to_ue(e);
	struct io_uring_params p = {
		.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL |
			 IORING_SETUP_COOP_TASKRUN,
		.cq_entries = 65536,
	};
	int r;

	r = io_uring_queue_init_params(2048, &ue->ring, &p);
	if (r == -EINVAL) {
		/* kernels before 5.19 know neither SUBMIT_ALL nor COOP_TASKRUN */
		p = (struct io_uring_params){ .flags = IORING_SETUP_CQSIZE,
					      .cq_entries = 65536 };
		r = io_uring_queue_init_params(2048, &ue->ring, &p);
	}
	if (r < 0)
		return r;
	pthread_once(&probe_once, probe);
	if (!probe_ok || !(p.features & IORING_FEAT_NODROP)) {
		io_uring_queue_exit(&ue->ring);
		return -ENOSYS;
	}
	ue->armed_at = INT64_MAX;
	return 0;
}

static void ue_fini(struct lw__engine *e)
{
	io_uring_queue_exit(&to_ue(e)->ring);
	free(to_ue(e)->stash);
}

static int ue_fd(const struct lw__engine *e)
{
	return LW_CONTAINER_OF(e, const struct uring_engine, base)->ring.ring_fd;
}

/* Moves the CQEs out of the ring, to be handled at the next turn: the
 * kernel refuses submissions (-EBUSY) while completions it could not post
 * wait for room, and callbacks must not run from inside a submission. */
static int stash_cqes(struct uring_engine *ue)
{
	struct io_uring_cqe *cqe;
	unsigned head, n = 0;

	io_uring_for_each_cqe(&ue->ring, head, cqe) {
		if (lw__grow(&ue->stash, &ue->stash_cap, ue->nstash, sizeof(*ue->stash), 1024) < 0)
			break;
		ue->stash[ue->nstash++] = (struct cqe_copy){ cqe->user_data, cqe->res };
		n++;
	}
	io_uring_cq_advance(&ue->ring, n);
	return n ? 0 : -ENOMEM;
}

/* An SQE, with room for N in a row: a linked pair must not be split across
 * two submissions, or the kernel ends the chain at the first. */
static struct io_uring_sqe *get_sqe(struct uring_engine *ue, unsigned n)
{
	while (io_uring_sq_space_left(&ue->ring) < n) {
		int r = io_uring_submit(&ue->ring);

		if (r == -EBUSY && stash_cqes(ue) == 0)
			continue;
		if (r < 0 && r != -EINTR && r != -EAGAIN)
			break;
	}
	/* the prep helpers fill in every field */
	return io_uring_get_sqe(&ue->ring);
}

static void arm_pair(struct uring_engine *ue)
{
	struct lw__heap_node *min = lw__engine_next_timer(&ue->base);
	int64_t when = min ? min->when : INT64_MAX;
	struct io_uring_sqe *sqe = get_sqe(ue, 2);

	if (!sqe)
		return; /* the ring is broken; the next turn tries again */
	io_uring_prep_poll_add(sqe, ue->base.wake_fd, POLLIN);
	sqe->user_data = TAG_WAKE_POLL;
	ue->pair_pending = 1;
	ue->armed_at = when;
	ue->rearm_asked = false;
	if (when == INT64_MAX)
		return;
	sqe->flags |= IOSQE_IO_LINK;
	to_ts(when, &ue->pair_ts);
	sqe = io_uring_get_sqe(&ue->ring); /* room for it was made above */
	io_uring_prep_link_timeout(sqe, &ue->pair_ts,
				   IORING_TIMEOUT_ABS | IORING_TIMEOUT_BOOTTIME);
	sqe->user_data = TAG_WAKE_TIMEOUT;
	ue->pair_pending = 2;
}

static unsigned to_revents(int res)
{
	if (res < 0)
		return LW__ERR;
	return (res & POLLIN ? LW__IN : 0) | (res & POLLOUT ? LW__OUT : 0) |
	       (res & (POLLERR | POLLHUP) ? LW__ERR : 0);
}

static uint64_t watch_tag(const struct lw__watch *w)
{
	return ((uint64_t)(w->gen & ((1u << GEN_BITS) - 1)) << 32 | w->slot) << 3 |
	       TAG_WATCH;
}

static int arm_watch(struct uring_engine *ue, struct lw__watch *w)
{
	struct io_uring_sqe *sqe = get_sqe(ue, 1);

	if (!sqe)
		return -EAGAIN;
	io_uring_prep_poll_add(sqe, w->fd,
			       (w->events & LW__IN ? POLLIN : 0) |
				       (w->events & LW__OUT ? POLLOUT : 0));
	sqe->user_data = watch_tag(w);
	w->armed = w->events;
	return 0;
}

/* A pending poll holds a reference to its socket: libcurl's close would
 * not free it, so the poll is removed before the descriptor goes away. */
static void remove_poll(struct uring_engine *ue, struct lw__watch *w)
{
	struct io_uring_sqe *sqe = get_sqe(ue, 1);

	w->armed = 0;
	if (!sqe)
		return; /* the poll ends with the ring; its CQE is stale */
	io_uring_prep_poll_remove(sqe, watch_tag(w));
	sqe->user_data = TAG_IGNORE;
}

static void on_watch(struct uring_engine *ue, uint64_t ud, int res)
{
	uint32_t slot = (uint32_t)(ud >> 3);
	uint32_t gen = (uint32_t)(ud >> 35);
	struct lw__watch *w;

	if (slot >= ue->base.nslots)
		return;
	w = ue->base.slots[slot].w;
	if (!w || (ue->base.slots[slot].gen & ((1u << GEN_BITS) - 1)) != gen)
		return;
	w->armed = 0;
	if (res == -ECANCELED)
		return;
	w->fn(w, to_revents(res));
	/* the callback may have stopped or re-armed the watch */
	w = lw__engine_watch(&ue->base, slot, ue->base.slots[slot].gen);
	if (w && !w->armed && w->events)
		arm_watch(ue, w);
}

static int ue_watch_update(struct lw__engine *e, struct lw__watch *w,
			   unsigned events)
{
	struct uring_engine *ue = to_ue(e);

	if (w->armed == events)
		return 0;
	if (w->armed) {
		remove_poll(ue, w);
		/* a new generation for the new poll: the removed one's CQE
		 * is then recognised as stale */
		w->gen = ++e->slots[w->slot].gen;
	}
	w->events = events;
	return events ? arm_watch(ue, w) : 0;
}

static void ue_watch_stop(struct lw__engine *e, struct lw__watch *w)
{
	if (w->armed)
		remove_poll(to_ue(e), w);
}

static void ue_fop_submit(struct lw__engine *e, struct lw__fop *op)
{
	struct uring_engine *ue = to_ue(e);
	struct io_uring_sqe *sqe;
	/* kept in the operation: the kernel reads it at submission */
	struct __kernel_timespec *ts = (void *)op->kts;

	/* There is no getdents SQE. */
	if (op->type == LW__FOP_READDIR) {
		lw__fop_to_worker(e, op);
		return;
	}
	sqe = get_sqe(ue, 2);
	if (!sqe) {
		lw__fop_complete_later(e, op, -EAGAIN);
		return;
	}
	if (op->hang) {
		io_uring_prep_read(sqe, lw__fault_hang_fd(), &op->res, 1, 0);
	} else {
		int dfd = op->name ? op->dirfd : AT_FDCWD;
		const char *path = op->name ? op->name : op->path;
		const char *path2 = op->name ? op->name2 : op->path2;

		switch (op->type) {
		case LW__FOP_OPENAT:
			if (op->beneath) {
				struct open_how *how = (void *)op->how;

				*how = (struct open_how){
					.flags = (uint64_t)op->flags,
					.mode = op->flags & O_CREAT ? op->mode : 0,
					.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS,
				};
				io_uring_prep_openat2(sqe, dfd, path, how);
			} else {
				io_uring_prep_openat(sqe, dfd, path, op->flags, op->mode);
			}
			break;
		case LW__FOP_READ:
			io_uring_prep_read(sqe, op->fd, op->buf, (unsigned)op->len, op->off);
			break;
		case LW__FOP_WRITE:
			io_uring_prep_write(sqe, op->fd, op->buf, (unsigned)op->len, op->off);
			break;
		case LW__FOP_FSYNC:
			io_uring_prep_fsync(sqe, op->fd, 0);
			break;
		case LW__FOP_CLOSE:
			io_uring_prep_close(sqe, op->fd);
			break;
		case LW__FOP_RENAMEAT:
			io_uring_prep_renameat(sqe, dfd, path, dfd, path2, (unsigned)op->flags);
			break;
		case LW__FOP_UNLINKAT:
			io_uring_prep_unlinkat(sqe, dfd, path, op->flags);
			break;
		case LW__FOP_MKDIRAT:
			io_uring_prep_mkdirat(sqe, dfd, path, op->mode);
			break;
		case LW__FOP_READDIR:
			break;
		}
	}
	io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)op | TAG_FOP);
	if (!op->deadline)
		return;
	sqe->flags |= IOSQE_IO_LINK;
	to_ts(op->deadline + LINK_TIMEOUT_GRACE, ts);
	sqe = io_uring_get_sqe(&ue->ring); /* room for it was made above */
	io_uring_prep_link_timeout(sqe, ts,
				   IORING_TIMEOUT_ABS | IORING_TIMEOUT_BOOTTIME);
	sqe->user_data = TAG_IGNORE;
}

static void on_fop(struct lw__fop *op, int res)
{
	if (op->hang)
		res = -ECANCELED;
	/* cancelled by its linked timeout: say what happened */
	if (res == -ECANCELED && op->deadline && lw__now_boot() >= op->deadline + LINK_TIMEOUT_GRACE)
		res = -ETIMEDOUT;
	op->done(op, res);
}

static void dispatch(struct uring_engine *ue, uint64_t ud, int res)
{
	switch (ud & TAG_MASK) {
	case TAG_FOP:
		on_fop((struct lw__fop *)(uintptr_t)(ud & ~TAG_MASK), res);
		break;
	case TAG_WATCH:
		on_watch(ue, ud, res);
		break;
	case TAG_WAKE_POLL:
		ue->pair_pending--;
		if (res > 0)
			lw__engine_woken(&ue->base);
		break;
	case TAG_WAKE_TIMEOUT:
		/* -ETIME: deadlines are due; the common code fires them */
		ue->pair_pending--;
		break;
	}
}

static int ue_wait(struct lw__engine *e, int64_t timeout)
{
	struct uring_engine *ue = to_ue(e);
	struct lw__heap_node *min = lw__engine_next_timer(e);
	struct io_uring_cqe *cqe;
	int r;

	if (ue->nstash)
		timeout = 0; /* completions are waiting already */
	if (ue->pair_pending == 0)
		arm_pair(ue);
	else if (min && min->when < ue->armed_at && !ue->rearm_asked) {
		/* An earlier instant entered the heap: a write to the
		 * eventfd completes the poll, and the pair is re-armed. */
		ue->rearm_asked = true;
		lw__engine_wake(e);
	}

	if (timeout == 0) {
		r = io_uring_submit(&ue->ring);
	} else if (timeout < 0) {
		r = io_uring_submit_and_wait(&ue->ring, 1);
	} else {
		struct __kernel_timespec ts;

		to_ts(timeout, &ts);
		r = io_uring_submit_and_wait_timeout(&ue->ring, &cqe, 1, &ts, NULL);
	}
	if (r < 0 && r != -EINTR && r != -ETIME && r != -EBUSY && r != -EAGAIN)
		return r;
	return 0;
}

static void ue_dispatch(struct lw__engine *e)
{
	struct uring_engine *ue = to_ue(e);
	struct io_uring_cqe *cqe;

	for (size_t i = 0; i < ue->nstash; i++) {
		struct cqe_copy c = ue->stash[i];

		dispatch(ue, c.ud, c.res);
		lw__engine_urgent(e);
	}
	ue->nstash = 0;

	/* Copy a batch out before dispatching: callbacks submit SQEs. */
	for (unsigned total = 0; total < CQE_BUDGET;) {
		struct cqe_copy batch[256];
		unsigned head, n = 0;

		io_uring_for_each_cqe(&ue->ring, head, cqe) {
			batch[n].ud = cqe->user_data;
			batch[n].res = cqe->res;
			if (++n == LW_ARRAY_SIZE(batch))
				break;
		}
		if (!n)
			break;
		io_uring_cq_advance(&ue->ring, n);
		total += n;
		for (unsigned i = 0; i < n; i++) {
			dispatch(ue, batch[i].ud, batch[i].res);
			lw__engine_urgent(e);
		}
		if (n < LW_ARRAY_SIZE(batch))
			break;
	}
}

const struct lw__engine_ops lw__engine_uring = {
	.kind = LW_ENGINE_URING,
	.size = sizeof(struct uring_engine),
	.init = ue_init,
	.fini = ue_fini,
	.fd = ue_fd,
	.wait = ue_wait,
	.dispatch = ue_dispatch,
	.watch_update = ue_watch_update,
	.watch_stop = ue_watch_stop,
	.fop_submit = ue_fop_submit,
};
