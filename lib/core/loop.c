/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The loop object's lifecycle: one thread that owns the engine and every
 * lock of the loop, started, run and shut down here.  How other threads
 * call into it is in call.c.
 */
#include "config.h"

#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/protocol.h"
#include "http/http.h"

/* How long lw_loop_free (and exit) waits for lock files to be deleted. */
#define SHUTDOWN_WAIT LW_SEC(5)

static pthread_mutex_t loops_mu = PTHREAD_MUTEX_INITIALIZER;
static struct lw__list loops = { &loops, &loops };
static bool atexit_done;

struct lw_loop *lw__loop_ref(struct lw_loop *loop)
{
	atomic_fetch_add(&loop->refs, 1);
	return loop;
}

void lw__loop_unref(struct lw_loop *loop)
{
	if (atomic_fetch_sub(&loop->refs, 1) > 1)
		return;
	lw__log_fini(&loop->log);
	pthread_mutex_destroy(&loop->mu);
	pthread_mutex_destroy(&loop->run_mu);
	pthread_cond_destroy(&loop->cv);
	free(loop);
}

/* ------------------------------------------------------------ shutdown */

struct loop_call {
	struct lw__call c;
	struct lw_loop *loop;
};

void lw__loop_add_active(struct lw_loop *loop, struct lw__loop_hook *h)
{
	lw__list_add_tail(&loop->active, &h->link);
}

void lw__loop_del_active(struct lw_loop *loop, struct lw__loop_hook *h)
{
	lw__list_del(&h->link);
	if (lw__list_empty(&loop->active))
		lw__loop_signal(loop, &loop->drained);
}

void lw__loop_add_open(struct lw_loop *loop, struct lw__loop_hook *h)
{
	lw__list_add_tail(&loop->open, &h->link);
}

/* Ends every active lock (their owner's hooks release them). */
static void end_active(struct lw__call *c)
{
	struct lw_loop *loop = LW_CONTAINER_OF(c, struct loop_call, c)->loop;
	struct lw__list *n, *next;

	for (n = loop->active.next; n != &loop->active; n = next) {
		struct lw__loop_hook *h = LW_CONTAINER_OF(n, struct lw__loop_hook, link);

		next = n->next;
		h->fn(h);
	}
	if (lw__list_empty(&loop->active))
		lw__loop_signal(loop, &loop->drained);
}

static void shutdown_loop(struct lw_loop *loop)
{
	struct loop_call rc = { .c.fn = end_active, .loop = loop };

	pthread_mutex_lock(&loop->mu);
	if (loop->shutdown) {
		pthread_mutex_unlock(&loop->mu);
		return;
	}
	loop->drained = false;
	pthread_mutex_unlock(&loop->mu);

	/* release every lock; wait a bounded time for their files to go */
	if (lw__call_sync(loop, &rc.c) == 0 &&
	    lw__loop_wait_until(loop, &loop->drained, lw__now_boot() + SHUTDOWN_WAIT) < 0)
		lw__warn(&loop->log, "lock files still being deleted at shutdown");

	if (loop->started) {
		atomic_store(&loop->stop, true);
		lw__engine_wake(loop->engine);
		pthread_join(loop->thread, NULL);
		loop->started = false;
	}

	pthread_mutex_lock(&loop->run_mu);
	/* calls that arrived too late still run, so their callers return */
	lw__loop_enter(loop);
	lw__loop_close_calls(loop);
	while (!lw__list_empty(&loop->open)) {
		struct lw__loop_hook *h = LW_CONTAINER_OF(loop->open.next, struct lw__loop_hook,
							  link);

		h->fn(h); /* removes H */
	}
	lw__backend_env_fini(&loop->backends);
	lw__loop_enter(NULL);
	lw__engine_free(loop->engine);
	loop->engine = NULL;
	pthread_mutex_unlock(&loop->run_mu);

	pthread_mutex_lock(&loops_mu);
	lw__list_del(&loop->all);
	pthread_mutex_unlock(&loops_mu);
}

/* Locks are released at exit: their files must not outlive the process. */
static void at_exit(void)
{
	for (;;) {
		struct lw_loop *loop = NULL;

		pthread_mutex_lock(&loops_mu);
		for (struct lw__list *n = loops.next; n != &loops; n = n->next) {
			struct lw_loop *l = LW_CONTAINER_OF(n, struct lw_loop, all);

			if (!lw__on_loop_thread(l)) {
				loop = lw__loop_ref(l);
				break;
			}
		}
		pthread_mutex_unlock(&loops_mu);
		if (!loop)
			return;
		shutdown_loop(loop);
		lw__loop_unref(loop);
	}
}

/* A forked child has none of the parent's threads, and the parent's locks
 * are not its to release: it forgets the inherited loops. */
static void forget_loops_in_child(void)
{
	lw__list_init(&loops);
	pthread_mutex_init(&loops_mu, NULL);
}

/* ---------------------------------------------------------------- public */

LW_EXPORT const char *lw_engine_name(enum lw_engine engine)
{
	switch (engine) {
	case LW_ENGINE_DEFAULT:
		return "default";
	case LW_ENGINE_AUTO:
		return "auto";
	case LW_ENGINE_URING:
		return "uring";
	case LW_ENGINE_EPOLL:
		return "epoll";
	}
	return "?";
}

LW_EXPORT int lw_engine_parse(const char *name, enum lw_engine *enginep)
{
	static const enum lw_engine all[] = { LW_ENGINE_AUTO, LW_ENGINE_URING,
					      LW_ENGINE_EPOLL };

	for (size_t i = 0; name && i < LW_ARRAY_SIZE(all); i++) {
		if (strcasecmp(name, lw_engine_name(all[i])) == 0) {
			*enginep = all[i];
			return 0;
		}
	}
	return -EINVAL;
}

LW_EXPORT int lw_loop_new(enum lw_engine engine, struct lw_loop **loopp)
{
	struct lw_loop *loop;
	const char *env;
	int r;

	if (!loopp)
		return lw__fail(-EINVAL, "invalid arguments");
	if (engine == LW_ENGINE_DEFAULT) {
		env = getenv("LOCKWATCH_ENGINE");
		engine = LW_ENGINE_AUTO;
		if (env && *env && lw_engine_parse(env, &engine) < 0)
			return lw__fail(-EINVAL, "LOCKWATCH_ENGINE=%.32s: expected "
					"auto, uring or epoll", env);
	}
	loop = calloc(1, sizeof(*loop));
	if (!loop)
		return lw__fail(-ENOMEM, "out of memory");
	lw__log_init(&loop->log);
	atomic_init(&loop->refs, 1);
	atomic_init(&loop->stop, false);
	pthread_mutex_init(&loop->mu, NULL);
	pthread_mutex_init(&loop->run_mu, NULL);
	lw__cond_init_monotonic(&loop->cv);
	lw__queue_init(&loop->calls);
	lw__list_init(&loop->active);
	lw__list_init(&loop->open);
	r = lw__engine_new(engine, &loop->log, lw__loop_run_calls, loop, &loop->engine);
	if (r < 0) {
		lw__loop_unref(loop);
		return lw__fail(r, "cannot start the %s engine: %s", lw_engine_name(engine),
				strerror(-r));
	}
	loop->backends.engine = loop->engine;
	loop->backends.log = &loop->log;
	lw__dbg(&loop->log, "loop on the %s engine",
		lw_engine_name(lw__engine_kind(loop->engine)));
	pthread_mutex_lock(&loops_mu);
	lw__list_add_tail(&loops, &loop->all);
	if (!atexit_done)
		atexit_done = atexit(at_exit) == 0 &&
			      pthread_atfork(NULL, NULL, forget_loops_in_child) == 0;
	pthread_mutex_unlock(&loops_mu);
	*loopp = loop;
	return 0;
}

LW_EXPORT void lw_loop_free(struct lw_loop *loop)
{
	if (!loop)
		return;
	if (lw__on_loop_thread(loop)) {
		lw__err(&loop->log, "lw_loop_free called from a callback of its loop");
		return;
	}
	shutdown_loop(loop);
	lw__loop_unref(loop);
}

LW_EXPORT enum lw_engine lw_loop_engine(const struct lw_loop *loop)
{
	return loop->engine ? lw__engine_kind(loop->engine) : LW_ENGINE_DEFAULT;
}

static void *thread_main(void *arg)
{
	struct lw_loop *loop = arg;

	pthread_mutex_lock(&loop->run_mu);
	while (!atomic_load(&loop->stop))
		lw__loop_run(loop, -1);
	pthread_mutex_unlock(&loop->run_mu);
	return NULL;
}

LW_EXPORT int lw_loop_start(struct lw_loop *loop)
{
	sigset_t all, old;
	int r;

	if (!loop)
		return lw__fail(-EINVAL, "%s: a NULL argument", __func__);
	if (loop->started)
		return -EALREADY;
	/* the loop thread takes no signals: they belong to the application */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = -pthread_create(&loop->thread, NULL, thread_main, loop);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r == 0)
		loop->started = true;
	return r;
}

LW_EXPORT int lw_loop_fd(const struct lw_loop *loop)
{
	return loop && loop->engine ? lw__engine_fd(loop->engine) : -EINVAL;
}

LW_EXPORT int lw_loop_run_once(struct lw_loop *loop, int timeout_ms)
{
	int r;

	if (!loop)
		return lw__fail(-EINVAL, "%s: a NULL argument", __func__);
	if (lw__on_loop_thread(loop))
		return -EDEADLK;
	if (loop->started || loop->shutdown || pthread_mutex_trylock(&loop->run_mu) != 0)
		return -EBUSY;
	r = lw__loop_run(loop, timeout_ms);
	pthread_mutex_unlock(&loop->run_mu);
	return r;
}

struct log_call {
	struct lw__call c;
	struct lw_loop *loop;
	lw_log_fn fn;
	void *userdata;
	int priority;
	bool set_fn;
};

static void set_log(struct lw__call *c)
{
	struct log_call *lc = LW_CONTAINER_OF(c, struct log_call, c);

	if (lc->set_fn) {
		lc->loop->log.fn = lc->fn;
		lc->loop->log.userdata = lc->userdata;
	} else {
		lc->loop->log.priority = lc->priority;
	}
}

LW_EXPORT void lw_loop_set_log_fn(struct lw_loop *loop, lw_log_fn fn, void *userdata)
{
	struct log_call lc = { .c.fn = set_log, .loop = loop, .fn = fn,
			       .userdata = userdata, .set_fn = true };

	if (loop && lw__call_sync(loop, &lc.c) < 0)
		set_log(&lc.c);
}

LW_EXPORT void lw_loop_set_log_priority(struct lw_loop *loop, int priority)
{
	struct log_call lc = { .c.fn = set_log, .loop = loop, .priority = priority };

	if (loop && lw__call_sync(loop, &lc.c) < 0)
		set_log(&lc.c);
}

LW_EXPORT int lw_loop_get_log_priority(const struct lw_loop *loop)
{
	return loop ? loop->log.priority : -EINVAL;
}

struct fd_limit_call {
	struct lw__call c;
	struct lw_loop *loop;
	unsigned limit;
};

static void set_fd_limit(struct lw__call *c)
{
	struct fd_limit_call *fc = LW_CONTAINER_OF(c, struct fd_limit_call, c);

	lw__fd_set_limit(fc->loop->engine, fc->limit);
	lw__http_budget(fc->loop->backends.http);
}

LW_EXPORT int lw_loop_set_fd_limit(struct lw_loop *loop, unsigned limit)
{
	struct fd_limit_call fc = { .c.fn = set_fd_limit, .loop = loop, .limit = limit };

	if (!loop)
		return lw__fail(-EINVAL, "%s: a NULL argument", __func__);
	if (limit > INT_MAX)
		return lw__fail(-EINVAL, "a descriptor limit over INT_MAX");
	return lw__call_sync(loop, &fc.c);
}
