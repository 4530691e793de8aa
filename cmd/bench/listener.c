/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The stall listener: one thread, one epoll set holding the listening
 * socket, a stop eventfd and every accepted connection.  Accepting (rather
 * than leaving connections in the backlog) matters: the client then sees a
 * connected server that received its request and is silent, the stall a
 * hung storage server gives, and a connection the client gives up on is
 * closed here too instead of filling the backlog until new connections
 * hang in their handshake.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "listener.h"

struct bench_listener {
	int lfd, efd, stopfd;
	bool reset;
	pthread_t thread;
	char address[32];
	atomic_ulong accepted;
	bool *open; /* by descriptor: a connection of ours */
	size_t nopen;
};

static void conn_close(struct bench_listener *l, int fd)
{
	epoll_ctl(l->efd, EPOLL_CTL_DEL, fd, NULL);
	close(fd);
	l->open[fd] = false;
}

static void conn_add(struct bench_listener *l, int fd)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP, .data.fd = fd };
	struct linger reset = { .l_onoff = 1, .l_linger = 0 };

	atomic_fetch_add_explicit(&l->accepted, 1, memory_order_relaxed);
	if (l->reset) {
		/* a zero linger turns close into a reset */
		setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof(reset));
		close(fd);
		return;
	}
	if ((size_t)fd >= l->nopen) {
		size_t n = (size_t)fd + 1 > 2 * l->nopen ? (size_t)fd + 1 : 2 * l->nopen;
		bool *v = realloc(l->open, n * sizeof(*v));

		if (!v) {
			close(fd);
			return;
		}
		memset(v + l->nopen, 0, (n - l->nopen) * sizeof(*v));
		l->open = v;
		l->nopen = n;
	}
	if (epoll_ctl(l->efd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		close(fd);
		return;
	}
	l->open[fd] = true;
}

/* Reads and drops what FD sent; closes it once the client has. */
static void conn_drain(struct bench_listener *l, int fd)
{
	char buf[4096];
	ssize_t n;

	while ((n = read(fd, buf, sizeof(buf))) > 0)
		;
	if (n == 0 || errno != EAGAIN)
		conn_close(l, fd);
}

static void *listener_main(void *arg)
{
	struct bench_listener *l = arg;
	struct epoll_event evs[64];

	for (;;) {
		int n = epoll_wait(l->efd, evs, 64, -1);

		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd, c;

			if (fd == l->stopfd)
				return NULL;
			if (fd != l->lfd) {
				conn_drain(l, fd);
				continue;
			}
			while ((c = accept4(l->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0)
				conn_add(l, c);
		}
	}
}

static int watch(struct bench_listener *l, int fd)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };

	return epoll_ctl(l->efd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

int bench_listener_start(bool reset, struct bench_listener **lp)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	struct bench_listener *l = calloc(1, sizeof(*l));
	int r;

	if (!l)
		return -ENOMEM;
	l->reset = reset;
	l->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	l->efd = epoll_create1(EPOLL_CLOEXEC);
	l->stopfd = eventfd(0, EFD_CLOEXEC);
	if (l->lfd < 0 || l->efd < 0 || l->stopfd < 0 ||
	    bind(l->lfd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    getsockname(l->lfd, (struct sockaddr *)&a, &len) < 0 ||
	    listen(l->lfd, SOMAXCONN) < 0)
		r = -errno;
	else if ((r = watch(l, l->lfd)) == 0 && (r = watch(l, l->stopfd)) == 0)
		r = -pthread_create(&l->thread, NULL, listener_main, l);
	if (r < 0) {
		if (l->lfd >= 0)
			close(l->lfd);
		if (l->efd >= 0)
			close(l->efd);
		if (l->stopfd >= 0)
			close(l->stopfd);
		free(l);
		return r;
	}
	snprintf(l->address, sizeof(l->address), "127.0.0.1:%d", ntohs(a.sin_port));
	*lp = l;
	return 0;
}

const char *bench_listener_address(const struct bench_listener *l)
{
	return l->address;
}

unsigned long bench_listener_accepted(const struct bench_listener *l)
{
	return atomic_load_explicit(&l->accepted, memory_order_relaxed);
}

void bench_listener_stop(struct bench_listener *l)
{
	if (!l)
		return;
	(void)!write(l->stopfd, &(uint64_t){ 1 }, sizeof(uint64_t));
	pthread_join(l->thread, NULL);
	for (size_t fd = 0; fd < l->nopen; fd++)
		if (l->open[fd])
			close((int)fd);
	close(l->lfd);
	close(l->efd);
	close(l->stopfd);
	free(l->open);
	free(l);
}
