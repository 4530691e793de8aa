/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Calling into the loop: other threads post calls to it through the
 * engine's eventfd; a blocking call waits on the loop's condition variable,
 * or runs the loop itself when nobody else does (an embedded loop).  The
 * loop's lifecycle is in loop.c.
 */
#include "config.h"

#include <time.h>

#include "core/protocol.h"

static __thread struct lw_loop *running;

bool lw__on_loop_thread(const struct lw_loop *loop)
{
	return running == loop;
}

struct lw_loop *lw__loop_enter(struct lw_loop *loop)
{
	struct lw_loop *prev = running;

	running = loop;
	return prev;
}

int lw__loop_run(struct lw_loop *loop, int timeout_ms)
{
	struct lw_loop *prev = lw__loop_enter(loop);
	int r;

	r = lw__engine_run_once(loop->engine, timeout_ms);
	lw__loop_enter(prev);
	return r;
}

/* Runs the calls of Q, signalling the synchronous ones done. */
static void run_call_list(struct lw_loop *loop, struct lw__queue *q)
{
	struct lw__qnode *n;

	while ((n = lw__queue_pop(q))) {
		struct lw__call *c = LW_CONTAINER_OF(n, struct lw__call, node);
		bool sync = c->sync;

		c->fn(c); /* may free an asynchronous call */
		if (sync)
			lw__loop_signal(loop, &c->done);
		lw__engine_urgent(loop->engine);
	}
}

void lw__loop_run_calls(void *userdata)
{
	struct lw_loop *loop = userdata;
	struct lw__queue q;

	pthread_mutex_lock(&loop->mu);
	lw__queue_move(&q, &loop->calls);
	pthread_mutex_unlock(&loop->mu);
	run_call_list(loop, &q);
}

void lw__loop_close_calls(struct lw_loop *loop)
{
	struct lw__queue q;

	pthread_mutex_lock(&loop->mu);
	loop->shutdown = true;
	lw__queue_move(&q, &loop->calls);
	pthread_mutex_unlock(&loop->mu);
	run_call_list(loop, &q);
}

int lw__post(struct lw_loop *loop, struct lw__call *c)
{
	c->done = false;
	pthread_mutex_lock(&loop->mu);
	if (loop->shutdown) {
		pthread_mutex_unlock(&loop->mu);
		return -ESHUTDOWN;
	}
	lw__queue_push(&loop->calls, &c->node);
	/* under the mutex: shutdown cannot free the engine meanwhile */
	lw__engine_wake(loop->engine);
	pthread_mutex_unlock(&loop->mu);
	return 0;
}

void lw__loop_signal(struct lw_loop *loop, bool *done)
{
	pthread_mutex_lock(&loop->mu);
	*done = true;
	pthread_cond_broadcast(&loop->cv);
	pthread_mutex_unlock(&loop->mu);
}

int lw__loop_wait_until(struct lw_loop *loop, const bool *done, int64_t until)
{
	int r = 0;

	if (lw__on_loop_thread(loop))
		return -EDEADLK;
	pthread_mutex_lock(&loop->mu);
	while (!*done) {
		struct timespec ts;

		if (until && lw__now_boot() >= until) {
			r = -ETIMEDOUT;
			break;
		}
		/* an embedded loop that nobody runs right now: run it */
		if (!loop->started && !loop->shutdown &&
		    pthread_mutex_trylock(&loop->run_mu) == 0) {
			pthread_mutex_unlock(&loop->mu);
			lw__loop_run(loop, 100);
			pthread_mutex_unlock(&loop->run_mu);
			pthread_mutex_lock(&loop->mu);
			continue;
		}
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += 100 * 1000000;
		if (ts.tv_nsec >= LW_NSEC_PER_SEC) {
			ts.tv_sec++;
			ts.tv_nsec -= LW_NSEC_PER_SEC;
		}
		pthread_cond_timedwait(&loop->cv, &loop->mu, &ts);
	}
	pthread_mutex_unlock(&loop->mu);
	return r;
}

int lw__loop_wait(struct lw_loop *loop, const bool *done)
{
	return lw__loop_wait_until(loop, done, 0);
}

int lw__call_sync(struct lw_loop *loop, struct lw__call *c)
{
	int r;

	if (lw__on_loop_thread(loop)) {
		c->fn(c);
		return 0;
	}
	c->sync = true;
	r = lw__post(loop, c);
	return r < 0 ? r : lw__loop_wait(loop, &c->done);
}
