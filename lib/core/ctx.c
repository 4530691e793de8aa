/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Work contexts: the holder's cancellation token.  Reading one is an atomic
 * load from any thread; the eventfd exists only for contexts that ask for
 * it, so that 100,000 locks do not need 100,000 descriptors.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "core/protocol.h"

struct lw__ctx_cb {
	struct lw__ctx_cb *next;
	lw_ctx_fn fn;
	void *userdata;
	struct lw_ctx *ctx;
	struct lw__call call; /* registration, posted from any thread */
};

/* The descriptor is created rarely: one lock for all contexts. */
static pthread_mutex_t fd_mu = PTHREAD_MUTEX_INITIALIZER;

struct lw_ctx *lw__ctx_new(struct lw_loop *loop)
{
	struct lw_ctx *ctx = calloc(1, sizeof(*ctx));

	if (!ctx)
		return NULL;
	atomic_init(&ctx->refs, 1);
	atomic_init(&ctx->cause, LW_CAUSE_NONE);
	atomic_init(&ctx->held, false);
	atomic_init(&ctx->cancel_posted, false);
	ctx->fd = -1;
	/* an application may keep a context after the loop is freed */
	ctx->loop = lw__loop_ref(loop);
	return ctx;
}

void lw__ctx_on_cancel(struct lw_ctx *ctx, void (*fn)(void *owner), void *owner)
{
	ctx->cancel = fn;
	ctx->owner = owner;
}

LW_EXPORT struct lw_ctx *lw_ctx_ref(struct lw_ctx *ctx)
{
	if (ctx)
		atomic_fetch_add(&ctx->refs, 1);
	return ctx;
}

LW_EXPORT struct lw_ctx *lw_ctx_unref(struct lw_ctx *ctx)
{
	if (!ctx || atomic_fetch_sub(&ctx->refs, 1) > 1)
		return NULL;
	while (ctx->cbs) {
		struct lw__ctx_cb *cb = ctx->cbs;

		ctx->cbs = cb->next;
		free(cb);
	}
	if (ctx->fd >= 0)
		close(ctx->fd);
	free(ctx->msg);
	lw__loop_unref(ctx->loop);
	free(ctx);
	return NULL;
}

LW_EXPORT bool lw_ctx_done(const struct lw_ctx *ctx)
{
	return atomic_load_explicit(&ctx->cause, memory_order_acquire) != LW_CAUSE_NONE;
}

LW_EXPORT enum lw_cause lw_ctx_err(const struct lw_ctx *ctx)
{
	return (enum lw_cause)atomic_load_explicit(&ctx->cause, memory_order_acquire);
}

/* When even the message could not be allocated. */
static const char *cause_words(enum lw_cause cause)
{
	switch (cause) {
	case LW_CAUSE_RELEASED:
		return "lock released";
	case LW_CAUSE_CANCELLED:
		return "cancelled";
	case LW_CAUSE_DEADLINE:
		return "lock refresh deadline exceeded";
	case LW_CAUSE_REMOVED:
		return "lock removed by someone else";
	default:
		return NULL;
	}
}

LW_EXPORT const char *lw_ctx_cause(const struct lw_ctx *ctx)
{
	enum lw_cause cause = lw_ctx_err(ctx);

	if (cause == LW_CAUSE_NONE)
		return NULL;
	return ctx->msg ? ctx->msg : cause_words(cause);
}

static void signal_fd(int fd)
{
	static const uint64_t one = 1;

	(void)!write(fd, &one, sizeof(one));
}

LW_EXPORT int lw_ctx_fd(struct lw_ctx *ctx)
{
	int fd;

	pthread_mutex_lock(&fd_mu);
	if (ctx->fd < 0) {
		ctx->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		/* it stays readable: nobody reads it down */
		if (ctx->fd >= 0 && lw_ctx_done(ctx))
			signal_fd(ctx->fd);
	}
	fd = ctx->fd < 0 ? -errno : ctx->fd;
	pthread_mutex_unlock(&fd_mu);
	return fd;
}

static void run_callbacks(struct lw__defer *d)
{
	struct lw_ctx *ctx = LW_CONTAINER_OF(d, struct lw_ctx, run_cbs);

	while (ctx->cbs) {
		struct lw__ctx_cb *cb = ctx->cbs;

		ctx->cbs = cb->next;
		cb->fn(ctx, cb->userdata);
		free(cb);
	}
	lw_ctx_unref(ctx);
}

bool lw__ctx_end(struct lw_ctx *ctx, enum lw_cause cause, const char *fmt, ...)
{
	char *msg = NULL;
	va_list ap;

	if (lw_ctx_done(ctx))
		return false;
	ctx->done_at = lw__now_boot();
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	ctx->msg = msg;
	/* the message is complete before anyone can see the cause */
	atomic_store_explicit(&ctx->cause, cause, memory_order_release);
	if (atomic_load(&ctx->held))
		lw__ctx_hold(ctx, false); /* lw_ctx_wait returns the cause */
	pthread_mutex_lock(&fd_mu);
	if (ctx->fd >= 0)
		signal_fd(ctx->fd);
	pthread_mutex_unlock(&fd_mu);
	if (ctx->cbs) {
		/* callbacks run at the next turn, outside the protocol code
		 * that ended the context */
		lw_ctx_ref(ctx);
		lw__defer(ctx->loop->engine, &ctx->run_cbs, run_callbacks);
	}
	return true;
}

void lw__ctx_hold(struct lw_ctx *ctx, bool held)
{
	pthread_mutex_lock(&ctx->loop->mu);
	atomic_store(&ctx->held, held);
	pthread_cond_broadcast(&ctx->loop->cv);
	pthread_mutex_unlock(&ctx->loop->mu);
}

LW_EXPORT bool lw_ctx_held(const struct lw_ctx *ctx)
{
	return atomic_load(&ctx->held);
}

LW_EXPORT int lw_ctx_wait(struct lw_ctx *ctx, int timeout_ms)
{
	struct timespec until;
	int r = 0;

	if (!ctx)
		return lw__fail(-EINVAL, "%s: a NULL argument", __func__);
	if (!atomic_load(&ctx->held))
		return lw_ctx_err(ctx);
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += timeout_ms / 1000;
	until.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (until.tv_nsec >= LW_NSEC_PER_SEC) {
		until.tv_sec++;
		until.tv_nsec -= LW_NSEC_PER_SEC;
	}
	pthread_mutex_lock(&ctx->loop->mu);
	while (atomic_load(&ctx->held) && r == 0) {
		if (timeout_ms < 0)
			pthread_cond_wait(&ctx->loop->cv, &ctx->loop->mu);
		else
			r = pthread_cond_timedwait(&ctx->loop->cv, &ctx->loop->mu, &until);
	}
	pthread_mutex_unlock(&ctx->loop->mu);
	return atomic_load(&ctx->held) ? -ETIMEDOUT : lw_ctx_err(ctx);
}

static void add_cb(struct lw__call *c)
{
	struct lw__ctx_cb *cb = LW_CONTAINER_OF(c, struct lw__ctx_cb, call);
	struct lw_ctx *ctx = cb->ctx;

	cb->next = ctx->cbs;
	ctx->cbs = cb;
	if (lw_ctx_done(ctx) && !ctx->run_cbs.queued) {
		lw_ctx_ref(ctx);
		lw__defer(ctx->loop->engine, &ctx->run_cbs, run_callbacks);
	}
	lw_ctx_unref(ctx);
}

LW_EXPORT int lw_ctx_on_done(struct lw_ctx *ctx, lw_ctx_fn fn, void *userdata)
{
	struct lw__ctx_cb *cb;
	int r;

	if (!ctx || !fn)
		return lw__fail(-EINVAL, "%s: a NULL argument", __func__);
	cb = calloc(1, sizeof(*cb));
	if (!cb)
		return -ENOMEM;
	cb->fn = fn;
	cb->userdata = userdata;
	cb->ctx = lw_ctx_ref(ctx);
	cb->call.fn = add_cb;
	r = lw__post(ctx->loop, &cb->call);
	if (r < 0) {
		lw_ctx_unref(ctx);
		free(cb);
	}
	return r;
}

struct cancel_call {
	struct lw__call c;
	struct lw_ctx *ctx;
};

static void cancel_call(struct lw__call *c)
{
	struct lw_ctx *ctx = LW_CONTAINER_OF(c, struct cancel_call, c)->ctx;

	free(LW_CONTAINER_OF(c, struct cancel_call, c));
	/* its owner first: a lock that is acquiring or held ends */
	if (ctx->cancel)
		ctx->cancel(ctx->owner);
	lw__ctx_end(ctx, LW_CAUSE_CANCELLED, "cancelled by the application");
	lw_ctx_unref(ctx);
}

LW_EXPORT void lw_ctx_cancel(struct lw_ctx *ctx)
{
	struct cancel_call *cc;

	if (!ctx || lw_ctx_done(ctx) || atomic_exchange(&ctx->cancel_posted, true))
		return;
	/* allocated here: few contexts are ever cancelled this way */
	cc = malloc(sizeof(*cc));
	if (!cc) {
		atomic_store(&ctx->cancel_posted, false);
		return;
	}
	*cc = (struct cancel_call){ .c.fn = cancel_call, .ctx = lw_ctx_ref(ctx) };
	if (lw__post(ctx->loop, &cc->c) < 0) {
		lw_ctx_unref(ctx);
		free(cc);
	}
}
