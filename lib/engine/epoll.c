/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The epoll engine, for kernels and containers without io_uring: one timerfd
 * on CLOCK_BOOTTIME armed at the heap's earliest instant, epoll on the
 * wake-up eventfd and on libcurl's sockets, and file operations on a worker
 * thread so that a hung write never holds up a deadline.
 */
#include "config.h"

#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "engine/engine.h"

#define TAG_TIMER UINT64_MAX
#define TAG_WAKE (UINT64_MAX - 1)

struct epoll_engine {
	struct lw__engine base;
	int epfd;
	int tfd;
	int64_t armed; /* instant the timerfd is set to; 0: disarmed */
	int nevents;   /* collected by ep_wait for ep_dispatch */
	struct epoll_event events[128];
};

static struct epoll_engine *to_ep(struct lw__engine *e)
{
	return LW_CONTAINER_OF(e, struct epoll_engine, base);
}

static int add(int epfd, int fd, uint64_t tag)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = tag };

	return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

static int ep_init(struct lw__engine *e)
{
	struct epoll_engine *ep = to_ep(e);
	int r;

	ep->tfd = -1;
	ep->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (ep->epfd < 0)
		return -errno;
	ep->tfd = timerfd_create(CLOCK_BOOTTIME, TFD_CLOEXEC | TFD_NONBLOCK);
	if (ep->tfd < 0) {
		r = -errno;
		goto fail;
	}
	r = add(ep->epfd, ep->tfd, TAG_TIMER);
	if (r == 0)
		r = add(ep->epfd, e->wake_fd, TAG_WAKE);
	if (r == 0)
		return 0;
fail:
	if (ep->tfd >= 0)
		close(ep->tfd);
	close(ep->epfd);
	return r;
}

static void ep_fini(struct lw__engine *e)
{
	struct epoll_engine *ep = to_ep(e);

	close(ep->tfd);
	close(ep->epfd);
}

static int ep_fd(const struct lw__engine *e)
{
	return LW_CONTAINER_OF(e, const struct epoll_engine, base)->epfd;
}

/* Keeps the timerfd at the heap's earliest instant; one syscall only when
 * that instant changed. */
static void arm_timer(struct epoll_engine *ep)
{
	struct lw__heap_node *min = lw__engine_next_timer(&ep->base);
	int64_t when = min ? LW_MAX(min->when, 1) : 0;
	struct itimerspec its = { 0 };

	if (when == ep->armed)
		return;
	its.it_value.tv_sec = when / LW_NSEC_PER_SEC;
	its.it_value.tv_nsec = when % LW_NSEC_PER_SEC;
	if (timerfd_settime(ep->tfd, TFD_TIMER_ABSTIME, &its, NULL) == 0)
		ep->armed = when;
}

static unsigned to_revents(uint32_t ev)
{
	return (ev & EPOLLIN ? LW__IN : 0) | (ev & EPOLLOUT ? LW__OUT : 0) |
	       (ev & (EPOLLERR | EPOLLHUP) ? LW__ERR : 0);
}

static int ep_wait(struct lw__engine *e, int64_t timeout)
{
	struct epoll_engine *ep = to_ep(e);
	int ms = timeout < 0 ? -1 : (int)LW_MIN((timeout + 999999) / 1000000, 1 << 30);
	int n;

	arm_timer(ep);
	ep->nevents = 0;
	n = epoll_wait(ep->epfd, ep->events, (int)LW_ARRAY_SIZE(ep->events), ms);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	ep->nevents = n;
	return 0;
}

static void ep_dispatch(struct lw__engine *e)
{
	struct epoll_engine *ep = to_ep(e);
	int n = ep->nevents;

	ep->nevents = 0;
	for (int i = 0; i < n; i++) {
		struct epoll_event *ev = &ep->events[i];
		uint64_t tag = ev->data.u64;
		struct lw__watch *w;
		uint64_t expirations;

		if (tag == TAG_TIMER) {
			(void)!read(ep->tfd, &expirations, sizeof(expirations));
			ep->armed = 0;
		} else if (tag == TAG_WAKE) {
			lw__engine_woken(e);
		} else if ((w = lw__engine_watch(e, (uint32_t)tag, (uint32_t)(tag >> 32)))) {
			w->fn(w, to_revents(ev->events));
		}
		lw__engine_urgent(e);
	}
}

static int ep_watch_update(struct lw__engine *e, struct lw__watch *w,
			   unsigned events)
{
	struct epoll_event ev = {
		.events = (events & LW__IN ? EPOLLIN : 0) |
			  (events & LW__OUT ? EPOLLOUT : 0),
		.data.u64 = (uint64_t)w->gen << 32 | w->slot,
	};
	int op = !w->armed ? EPOLL_CTL_ADD : events ? EPOLL_CTL_MOD : EPOLL_CTL_DEL;

	if (!w->armed && !events)
		return 0;
	if (epoll_ctl(to_ep(e)->epfd, op, w->fd, &ev) < 0)
		return -errno;
	w->armed = events;
	return 0;
}

static void ep_watch_stop(struct lw__engine *e, struct lw__watch *w)
{
	if (w->armed)
		epoll_ctl(to_ep(e)->epfd, EPOLL_CTL_DEL, w->fd, NULL);
	w->armed = 0;
}

const struct lw__engine_ops lw__engine_epoll = {
	.kind = LW_ENGINE_EPOLL,
	.size = sizeof(struct epoll_engine),
	.init = ep_init,
	.fini = ep_fini,
	.fd = ep_fd,
	.wait = ep_wait,
	.dispatch = ep_dispatch,
	.watch_update = ep_watch_update,
	.watch_stop = ep_watch_stop,
	.fop_submit = lw__fop_to_worker,
};
