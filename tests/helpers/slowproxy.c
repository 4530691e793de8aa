/* SPDX-License-Identifier: BSD-2-Clause */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "slowproxy.h"

#define MAX_CONNS 64

struct conn {
	struct lwt_slowproxy *p;
	pthread_t thread;
	int client, server;
};

struct lwt_slowproxy {
	int listen_fd, stop_fd, port, target;
	atomic_int_least64_t delay;
	pthread_t thread;
	pthread_mutex_t mu;
	struct conn *conns[MAX_CONNS];
	int nconns;
};

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_BOOTTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static bool pass_on(int from, int to)
{
	char buf[65536];
	ssize_t n = read(from, buf, sizeof(buf));

	for (ssize_t off = 0; n > 0 && off < n;) {
		ssize_t w = write(to, buf + off, (size_t)(n - off));

		if (w <= 0)
			return false;
		off += w;
	}
	return n > 0;
}

/* One connection: requests go through at once; the first bytes of each
 * answer start a hold of the current delay before any of it goes on. */
static void *conn_main(void *arg)
{
	struct conn *c = arg;
	bool asked = false;     /* a request went out since the last answer */
	int64_t answer_at = 0;  /* when the held answer began to arrive */

	for (;;) {
		struct pollfd fds[3] = {
			{ .fd = c->p->stop_fd, .events = POLLIN },
			{ .fd = c->client, .events = POLLIN },
			{ .fd = c->server, .events = answer_at ? 0 : POLLIN },
		};
		int timeout = -1;

		if (answer_at) {
			int64_t left = answer_at + atomic_load(&c->p->delay) - now_ns();

			if (left <= 0) {
				answer_at = 0;
				asked = false;
				if (!pass_on(c->server, c->client))
					break;
				continue;
			}
			/* short: a new delay takes effect soon */
			timeout = left < 10000000 ? (int)(left / 1000000) + 1 : 10;
		}
		if (poll(fds, 3, timeout) < 0 && errno != EINTR)
			break;
		if (fds[0].revents)
			break;
		if (fds[1].revents) {
			if (!pass_on(c->client, c->server))
				break;
			asked = true;
		}
		if (fds[2].revents) {
			if (asked && atomic_load(&c->p->delay) > 0) {
				answer_at = now_ns();
				continue;
			}
			asked = false;
			if (!pass_on(c->server, c->client))
				break;
		}
	}
	close(c->client);
	close(c->server);
	return NULL;
}

static int connect_target(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

static void *accept_main(void *arg)
{
	struct lwt_slowproxy *p = arg;

	for (;;) {
		struct pollfd fds[2] = { { .fd = p->stop_fd, .events = POLLIN },
					 { .fd = p->listen_fd, .events = POLLIN } };
		struct conn *c;
		int client;

		if (poll(fds, 2, -1) < 0 && errno != EINTR)
			break;
		if (fds[0].revents)
			break;
		client = accept4(p->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (client < 0)
			continue;
		c = calloc(1, sizeof(*c));
		if (!c || p->nconns == MAX_CONNS || (c->server = connect_target(p->target)) < 0) {
			close(client);
			free(c);
			continue;
		}
		c->p = p;
		c->client = client;
		if (pthread_create(&c->thread, NULL, conn_main, c) != 0) {
			close(client);
			close(c->server);
			free(c);
			continue;
		}
		pthread_mutex_lock(&p->mu);
		p->conns[p->nconns++] = c;
		pthread_mutex_unlock(&p->mu);
	}
	return NULL;
}

struct lwt_slowproxy *lwt_slowproxy_start(int target)
{
	struct lwt_slowproxy *p = calloc(1, sizeof(*p));
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);

	if (!p)
		return NULL;
	p->target = target;
	atomic_init(&p->delay, 0);
	pthread_mutex_init(&p->mu, NULL);
	p->stop_fd = eventfd(0, EFD_CLOEXEC);
	p->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (p->stop_fd < 0 || p->listen_fd < 0 ||
	    bind(p->listen_fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    listen(p->listen_fd, 64) < 0 ||
	    getsockname(p->listen_fd, (struct sockaddr *)&a, &len) < 0 ||
	    pthread_create(&p->thread, NULL, accept_main, p) != 0) {
		fprintf(stderr, "lwt_slowproxy: %s\n", strerror(errno));
		if (p->stop_fd >= 0)
			close(p->stop_fd);
		if (p->listen_fd >= 0)
			close(p->listen_fd);
		free(p);
		return NULL;
	}
	p->port = ntohs(a.sin_port);
	return p;
}

void lwt_slowproxy_stop(struct lwt_slowproxy *p)
{
	static const uint64_t one = 1;

	if (!p)
		return;
	(void)!write(p->stop_fd, &one, sizeof(one));
	pthread_join(p->thread, NULL);
	for (int i = 0; i < p->nconns; i++) {
		pthread_join(p->conns[i]->thread, NULL);
		free(p->conns[i]);
	}
	close(p->listen_fd);
	close(p->stop_fd);
	pthread_mutex_destroy(&p->mu);
	free(p);
}

int lwt_slowproxy_port(const struct lwt_slowproxy *p)
{
	return p->port;
}

void lwt_slowproxy_set_delay(struct lwt_slowproxy *p, int64_t ns)
{
	atomic_store(&p->delay, ns);
}
