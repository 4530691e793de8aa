/* SPDX-License-Identifier: BSD-2-Clause */
/* The hooks of testing.h that need the loop's objects.  The hooks sit
 * above every layer: this is the one file outside lib/lock/ that includes
 * lock-internal.h. */
#include "config.h"

#include "testing.h"
#include "core/protocol.h"
#include "lock/lock-internal.h"

struct observe_call {
	struct lw__call c;
	struct lw_loop *loop;
	struct lw__observer observer;
};

static void observe_on_loop(struct lw__call *c)
{
	struct observe_call *oc = LW_CONTAINER_OF(c, struct observe_call, c);

	oc->loop->observer = oc->observer;
}

int lw__loop_observe(struct lw_loop *loop,
		     void (*fn)(void *userdata, const struct lw__breq *req,
				int64_t started, int64_t ended),
		     void *userdata)
{
	struct observe_call oc = { .c.fn = observe_on_loop, .loop = loop,
				   .observer = { .fn = fn, .userdata = userdata } };

	return lw__call_sync(loop, &oc.c);
}

int64_t lw__ctx_done_at(const struct lw_ctx *ctx)
{
	return ctx->done_at;
}

void *lw__breq_event_data(const struct lw__breq *req)
{
	const struct lw_lock *lock = req->userdata;

	return lock->event_data;
}
