/* SPDX-License-Identifier: BSD-2-Clause */
/* What both engines share: choosing one, the timer heap, deferred work,
 * watch slots and the wake-up eventfd (fault injection: fault.c). */
#include "config.h"

#include <stdlib.h>
#include <limits.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

#include "engine/engine.h"

/* ------------------------------------------------------------ timers */

void lw__timer_init(struct lw__timer *t, void (*fn)(struct lw__timer *))
{
	lw__heap_node_init(&t->node);
	t->fn = fn;
}

static struct lw__heap *heap_of(struct lw__engine *e, const struct lw__timer *t)
{
	return t->node.urgent ? &e->urgent : &e->heap;
}

void lw__timer_start(struct lw__engine *e, struct lw__timer *t, int64_t when)
{
	lw__heap_push(heap_of(e, t), &t->node, when);
}

void lw__timer_stop(struct lw__engine *e, struct lw__timer *t)
{
	lw__heap_remove(heap_of(e, t), &t->node);
}

/* A reserved timer may be urgent or not: room in both heaps. */
int lw__engine_reserve(struct lw__engine *e, int delta)
{
	int r = lw__heap_reserve(&e->heap, delta);

	if (r < 0)
		return r;
	r = lw__heap_reserve(&e->urgent, delta);
	if (r < 0)
		lw__heap_reserve(&e->heap, -delta);
	return r;
}

struct lw__heap_node *lw__engine_next_timer(const struct lw__engine *e)
{
	struct lw__heap_node *a = lw__heap_min(&e->heap), *b = lw__heap_min(&e->urgent);

	if (!a || !b)
		return a ? a : b;
	return b->when <= a->when ? b : a;
}

/* Work done in one turn before the loop looks at its timers again. */
#define TIMER_BUDGET 256
#define DEFER_BUDGET 1024

/* Pops and runs the timers of H that are due, at most MAX of them, and
 * only those queued before this call (a timer that re-arms itself at
 * "now" waits for the next turn); between two of the others, the
 * deadlines that fell due meanwhile. */
static void fire_heap(struct lw__engine *e, struct lw__heap *h, size_t max)
{
	uint64_t limit = h->seq;
	int64_t now = lw__now_boot();
	struct lw__heap_node *n;

	for (size_t ran = 0; ran < max && (n = lw__heap_min(h)) && n->when <= now &&
			     n->seq < limit; ran++) {
		struct lw__timer *t = LW_CONTAINER_OF(n, struct lw__timer, node);

		lw__heap_remove(h, n);
		t->fn(t);
		if (h != &e->urgent)
			lw__engine_urgent(e);
	}
}

/*
 * Fires the timers that are due, the urgent ones first: when a stalled
 * server makes thousands of refresh retries and deadlines fall due
 * together, every deadline is cancelled before any retry is tried.  Other
 * timers run at most TIMER_BUDGET a turn and the rest stay in their heap.
 * Urgent timers have a heap of their own so that finding them costs
 * nothing: popping a whole backlog to find them, and pushing back what the
 * budget left, made a burst of 20,000 deadlines quadratic.
 */
static void fire_timers(struct lw__engine *e)
{
	fire_heap(e, &e->urgent, SIZE_MAX);
	fire_heap(e, &e->heap, TIMER_BUDGET);
}

/*
 * A deadline that falls due while a turn runs its batches (timers,
 * deferred work, completions, posted calls) waits for the callback running
 * then, not for the rest of the turn: every batch calls this between two
 * callbacks.  A turn that ended 256 locks (a log line and a delete each)
 * held a deadline up by milliseconds; the check is one clock read.
 */
void lw__engine_urgent(struct lw__engine *e)
{
	struct lw__heap_node *n = lw__heap_min(&e->urgent);

	if (n && n->when <= lw__now_boot())
		fire_heap(e, &e->urgent, SIZE_MAX);
}

/* ---------------------------------------------------------- deferred */

void lw__defer(struct lw__engine *e, struct lw__defer *d,
	       void (*fn)(struct lw__defer *))
{
	d->fn = fn;
	if (d->queued)
		return;
	d->queued = true;
	lw__queue_push(&e->deferred, &d->node);
}

void lw__defer_cancel(struct lw__engine *e, struct lw__defer *d)
{
	if (!d->queued)
		return;
	lw__queue_remove(&e->deferred, &d->node);
	d->queued = false;
}

/* Runs the work deferred before this call, at most DEFER_BUDGET of it (the
 * rest stays first in line); what it defers runs next turn. */
static void run_deferred(struct lw__engine *e)
{
	struct lw__queue now;
	struct lw__qnode *n;

	lw__queue_move(&now, &e->deferred);
	for (int i = 0; i < DEFER_BUDGET && (n = lw__queue_pop(&now)); i++) {
		struct lw__defer *d = LW_CONTAINER_OF(n, struct lw__defer, node);

		d->queued = false;
		d->fn(d);
		lw__engine_urgent(e);
	}
	lw__queue_prepend(&e->deferred, &now);
}

/* ------------------------------------------------------- watch slots */

static int slot_alloc(struct lw__engine *e, struct lw__watch *w)
{
	uint32_t i;

	for (i = 0; i < e->nslots; i++)
		if (!e->slots[i].w)
			break;
	if (i == e->nslots) {
		uint32_t n = e->nslots ? 2 * e->nslots : 16;
		struct lw__watch_slot *s = realloc(e->slots, n * sizeof(*s));

		if (!s)
			return -ENOMEM;
		memset(s + e->nslots, 0, (n - e->nslots) * sizeof(*s));
		e->slots = s;
		e->nslots = n;
	}
	e->slots[i].w = w;
	w->slot = i;
	w->gen = ++e->slots[i].gen;
	return 0;
}

struct lw__watch *lw__engine_watch(struct lw__engine *e, uint32_t slot,
				   uint32_t gen)
{
	if (slot >= e->nslots || e->slots[slot].gen != gen)
		return NULL;
	return e->slots[slot].w;
}

int lw__watch_start(struct lw__engine *e, struct lw__watch *w, int fd,
		    unsigned events, void (*fn)(struct lw__watch *, unsigned))
{
	int r;

	w->fd = fd;
	w->fn = fn;
	w->events = 0;
	w->armed = 0;
	r = slot_alloc(e, w);
	if (r < 0)
		return r;
	r = lw__watch_modify(e, w, events);
	if (r < 0)
		lw__watch_stop(e, w);
	return r;
}

int lw__watch_modify(struct lw__engine *e, struct lw__watch *w, unsigned events)
{
	int r = e->ops->watch_update(e, w, events);

	if (r == 0)
		w->events = events;
	return r;
}

void lw__watch_stop(struct lw__engine *e, struct lw__watch *w)
{
	if (w->slot >= e->nslots || e->slots[w->slot].w != w)
		return;
	e->ops->watch_stop(e, w);
	/* A new generation makes every completion still in flight for the
	 * old one unrecognisable. */
	e->slots[w->slot].gen++;
	e->slots[w->slot].w = NULL;
	w->events = 0;
}

/* ------------------------------------------------------ file operations */

static void fop_deferred(struct lw__defer *d)
{
	struct lw__fop *op = LW_CONTAINER_OF(d, struct lw__fop, defer);

	op->done(op, op->res);
}

void lw__fop_complete_later(struct lw__engine *e, struct lw__fop *op, int res)
{
	op->res = res;
	lw__defer(e, &op->defer, fop_deferred);
}

void lw__fop_submit(struct lw__engine *e, struct lw__fop *op)
{
	int r = 0;

	op->hang = false;
	op->names = NULL;
	op->names_len = 0;
	op->defer.queued = false;
	r = lw__fault_check(op);
	if (r < 0) {
		lw__fop_complete_later(e, op, r);
		return;
	}
	if (r == LW__FAULT_HANG) {
		if (lw__fault_hang_fd() < 0) {
			lw__fop_complete_later(e, op, -EMFILE);
			return;
		}
		op->hang = true;
	}
	e->ops->fop_submit(e, op);
}

void lw__fop_to_worker(struct lw__engine *e, struct lw__fop *op)
{
	if (!e->worker)
		e->worker = lw__worker_new(e);
	if (!e->worker) {
		lw__fop_complete_later(e, op, -ENOMEM);
		return;
	}
	lw__worker_submit(e->worker, op);
}

/* ------------------------------------------------- descriptor budget */

/* After EMFILE with nothing of ours about to be freed: try again then. */
#define FD_RETRY LW_MSEC(50)
/* After EMFILE: the bound grows back from what the loop held then after
 * this long without another. */
#define FD_PROBE_AFTER LW_SEC(1)

/*
 * The default bound: RLIMIT_NOFILE's soft limit less a quarter of it (at
 * least 64) for the application's own descriptors, the loop's fixed ones
 * (ring or epoll, eventfd, timerfd, the local backends' inotify instance,
 * libcurl's wake-up pair) and a context's eventfd wherever the application
 * asks for one; never under 16.
 */
static unsigned default_fd_limit(void)
{
	struct rlimit rl;
	rlim_t soft, margin;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 768;
	soft = LW_MIN(rl.rlim_cur, (rlim_t)(UINT_MAX / 2));
	margin = LW_MAX(soft / 4, (rlim_t)64);
	return soft > margin + 16 ? (unsigned)(soft - margin) : 16;
}

static void fd_grant(struct lw__engine *e)
{
	while (e->fd_used < e->fd_cap && !lw__list_empty(&e->fd_line)) {
		struct lw__fd_waiter *w =
			LW_CONTAINER_OF(e->fd_line.next, struct lw__fd_waiter, link);

		lw__list_del(&w->link);
		e->fd_used++;
		w->fn(w);
	}
}

bool lw__fd_take(struct lw__engine *e, struct lw__fd_waiter *w)
{
	if (e->fd_used < e->fd_cap && lw__list_empty(&e->fd_line)) {
		e->fd_used++;
		return true;
	}
	if (!lw__list_linked(&w->link))
		lw__list_add_tail(&e->fd_line, &w->link);
	return false;
}

bool lw__fd_take_more(struct lw__engine *e, struct lw__fd_waiter *w)
{
	if (e->fd_used < e->fd_cap) {
		e->fd_used++;
		return true;
	}
	lw__list_del(&w->link);
	lw__list_add(&e->fd_line, &w->link);
	return false;
}

void lw__fd_give(struct lw__engine *e)
{
	e->fd_used--;
	/* a second after EMFILE: one more than before with every descriptor
	 * freed, until the bound again or the kernel's next EMFILE (sooner,
	 * nearly every operation tried one too many) */
	if (e->fd_cap < e->fd_limit && lw__now_boot() - e->fd_starved_at > FD_PROBE_AFTER)
		e->fd_cap++;
	fd_grant(e);
}

void lw__fd_cancel(struct lw__engine *e, struct lw__fd_waiter *w)
{
	if (lw__list_linked(&w->link))
		lw__list_del(&w->link);
}

void lw__fd_starved(struct lw__engine *e, struct lw__fd_waiter *w, int err)
{
	lw__dbg(e->log, "no descriptor left (%s) with %u of the loop's %u held: "
		"waiting for one", err == -ENFILE ? "ENFILE" : "EMFILE", e->fd_used,
		e->fd_limit);
	e->fd_used--;
	e->fd_cap = e->fd_used;
	e->fd_starved_at = lw__now_boot();
	lw__list_del(&w->link); /* one that waited for more: first now */
	lw__list_add(&e->fd_line, &w->link);
	/* what frees a descriptor may not be ours (the application's, or a
	 * connection that stays open): the line moves on after a moment
	 * regardless */
	if (!lw__timer_active(&e->fd_retry))
		lw__timer_start(e, &e->fd_retry, lw__now_boot() + FD_RETRY);
}

static void on_fd_retry(struct lw__timer *t)
{
	struct lw__engine *e = LW_CONTAINER_OF(t, struct lw__engine, fd_retry);

	if (e->fd_cap <= e->fd_used && e->fd_cap < e->fd_limit)
		e->fd_cap = e->fd_used + 1;
	fd_grant(e);
}

void lw__fd_set_limit(struct lw__engine *e, unsigned limit)
{
	e->fd_limit = limit ? limit : default_fd_limit();
	e->fd_cap = e->fd_limit;
	fd_grant(e);
}

/* ------------------------------------------------------------ engine */

void lw__engine_wake(struct lw__engine *e)
{
	static const uint64_t one = 1;

	/* Only the first of many wakes between two turns writes. */
	if (!atomic_exchange(&e->wake_pending, true))
		(void)!write(e->wake_fd, &one, sizeof(one));
}

void lw__engine_woken(struct lw__engine *e)
{
	uint64_t n;

	/* Read, then clear, then drain.  Clearing first would let a wake that
	 * lands in between be read away while the flag stays set, and the
	 * next wake would skip its write: lost. */
	(void)!read(e->wake_fd, &n, sizeof(n));
	atomic_store(&e->wake_pending, false);
	if (e->worker)
		lw__worker_reap(e->worker);
	if (e->on_wake)
		e->on_wake(e->wake_userdata);
}

static int engine_create(const struct lw__engine_ops *ops,
			 const struct lw__log *log, void (*on_wake)(void *),
			 void *userdata, struct lw__engine **ep)
{
	struct lw__engine *e = calloc(1, ops->size);
	int r;

	if (!e)
		return -ENOMEM;
	e->ops = ops;
	e->log = log;
	e->on_wake = on_wake;
	e->wake_userdata = userdata;
	lw__queue_init(&e->deferred);
	lw__heap_init(&e->heap);
	lw__heap_init(&e->urgent);
	atomic_init(&e->wake_pending, false);
	lw__list_init(&e->fd_line);
	lw__timer_init(&e->fd_retry, on_fd_retry);
	e->fd_limit = e->fd_cap = default_fd_limit();
	e->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (e->wake_fd < 0) {
		r = -errno;
		free(e);
		return r;
	}
	r = lw__engine_reserve(e, 16 + 1); /* spare, and FD_RETRY */
	if (r == 0)
		r = ops->init(e);
	if (r < 0) {
		close(e->wake_fd);
		lw__heap_fini(&e->heap);
		lw__heap_fini(&e->urgent);
		free(e);
		return r;
	}
	*ep = e;
	return 0;
}

int lw__engine_new(enum lw_engine kind, const struct lw__log *log,
		   void (*on_wake)(void *), void *userdata,
		   struct lw__engine **ep)
{
	int r;

	switch (kind) {
	case LW_ENGINE_URING:
		return engine_create(&lw__engine_uring, log, on_wake, userdata, ep);
	case LW_ENGINE_EPOLL:
		return engine_create(&lw__engine_epoll, log, on_wake, userdata, ep);
	case LW_ENGINE_AUTO:
	case LW_ENGINE_DEFAULT:
		r = engine_create(&lw__engine_uring, log, on_wake, userdata, ep);
		if (r != -EPERM && r != -ENOSYS && r != -ENOMEM && r != -EINVAL)
			return r;
		lw__dbg(log, "io_uring unavailable (%s), using epoll", strerror(-r));
		return engine_create(&lw__engine_epoll, log, on_wake, userdata, ep);
	}
	return -EINVAL;
}

void lw__engine_free(struct lw__engine *e)
{
	if (!e)
		return;
	if (e->worker)
		lw__worker_free(e->worker);
	e->ops->fini(e);
	close(e->wake_fd);
	lw__heap_fini(&e->heap);
	lw__heap_fini(&e->urgent);
	free(e->slots);
	free(e);
}

int lw__engine_run_once(struct lw__engine *e, int timeout_ms)
{
	int64_t timeout = timeout_ms < 0 ? -1 : LW_MSEC(timeout_ms);
	struct lw__heap_node *min;
	int r;

	fire_timers(e);
	run_deferred(e);
	min = lw__engine_next_timer(e);
	if (!lw__queue_empty(&e->deferred) || (min && min->when <= lw__now_boot()))
		timeout = 0;
	r = e->ops->wait(e, timeout);
	fire_timers(e);
	e->ops->dispatch(e);
	run_deferred(e);
	return r;
}
