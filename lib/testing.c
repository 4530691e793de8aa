/* SPDX-License-Identifier: BSD-2-Clause */
/* The hooks of testing.h that need the loop's objects.  The hooks sit
 * above every layer: this is the one file outside lib/lock/ that includes
 * lock-internal.h. */
#include "config.h"

#include <stdlib.h>

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

struct observe_keys_call {
	struct lw__call c;
	struct lw_loop *loop;
	void (*fn)(void *userdata, const struct lw__key_derivation *kd);
	void *userdata;
};

static void observe_keys_on_loop(struct lw__call *c)
{
	struct observe_keys_call *oc = LW_CONTAINER_OF(c, struct observe_keys_call, c);

	oc->loop->key_observer = oc->fn;
	oc->loop->key_observer_data = oc->userdata;
}

int lw__loop_observe_keys(struct lw_loop *loop,
			  void (*fn)(void *userdata, const struct lw__key_derivation *kd),
			  void *userdata)
{
	struct observe_keys_call oc = { .c.fn = observe_keys_on_loop, .loop = loop,
					.fn = fn, .userdata = userdata };

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

struct list_call {
	void (*done)(void *userdata, int res);
	void *userdata;
};

static void on_listed(struct lw__breq *req)
{
	struct list_call lc = *(struct list_call *)req->userdata;
	int res = req->res;

	free(req->userdata);
	lw__breq_free(req);
	lc.done(lc.userdata, res);
}

int lw__repo_list_start(struct lw_repo *repo, void (*done)(void *userdata, int res),
			void *userdata)
{
	struct list_call *lc = malloc(sizeof(*lc));
	struct lw__breq *req;

	if (!lc)
		return -ENOMEM;
	*lc = (struct list_call){ done, userdata };
	req = lw__breq_new(repo->backend, LW__BOP_LIST, NULL, NULL, 0,
			   lw__add_sat(lw__now_boot(), repo->timing->op_timeout), on_listed, lc);
	if (!req) {
		free(lc);
		return -ENOMEM;
	}
	lw__breq_start(req);
	return 0;
}
