/* SPDX-License-Identifier: BSD-2-Clause */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "http/http.h"

static const struct lw__backend_ops *const backends[] = {
	[LW__URL_LOCAL] = &lw__backend_local,
	[LW__URL_REST] = &lw__backend_rest,
	[LW__URL_DAV] = &lw__backend_dav,
	[LW__URL_ETCD] = &lw__backend_etcd,
};

void lw__backend_env_fini(struct lw__backend_env *env)
{
	lw__http_free(env->http);
	env->http = NULL;
	lw__inotify_free(env->inotify);
	env->inotify = NULL;
}

int lw__backend_open(const struct lw__url *url, struct lw__backend_env *env,
		     struct lw__backend **bep, char *err, size_t errsize)
{
	static const char *const names[] = {
		[LW__URL_LOCAL] = "local", [LW__URL_REST] = "rest",
		[LW__URL_DAV] = "dav", [LW__URL_ETCD] = "etcd",
	};
	const struct lw__backend_ops *ops =
		url->kind < LW_ARRAY_SIZE(backends) ? backends[url->kind] : NULL;
	struct lw__backend *be;
	int r;

	if (!ops) {
		snprintf(err, errsize, "the %s backend is not built in", names[url->kind]);
		return -EPROTONOSUPPORT;
	}
	be = calloc(1, sizeof(*be));
	if (!be)
		return -ENOMEM;
	be->ops = ops;
	be->env = env;
	be->engine = env->engine;
	be->log = env->log;
	r = ops->open(be, url);
	if (r < 0) {
		snprintf(err, errsize, "cannot open the %s backend: %s", ops->name,
			 be->open_err ? be->open_err : strerror(-r));
		free(be);
		return r;
	}
	*bep = be;
	return 0;
}

void lw__backend_close(struct lw__backend *be)
{
	if (!be)
		return;
	be->ops->close(be);
	free(be->opts.ca_file);
	free(be);
}

void lw__backend_configure(struct lw__backend *be)
{
	if (be->ops->configure)
		be->ops->configure(be);
}

int lw__backend_watch(struct lw__backend *be, lw__gone_fn fn, void *userdata)
{
	int r;

	if (!be->ops->watch)
		return -ENOTSUP;
	be->gone = fn;
	be->gone_data = userdata;
	be->watch_err = NULL;
	r = be->ops->watch(be);
	if (r == 0)
		be->watched = true;
	return r;
}

void lw__backend_configure_pool(struct lw__backend *be, struct lw__http_pool *pool)
{
	if (be->opts.tls_insecure && !pool->insecure)
		lw__warn(be->log, "TLS certificate verification is OFF for %s: anyone "
			 "on the way can pose as the server", be->where);
	pool->ca_file = be->opts.ca_file;
	pool->insecure = be->opts.tls_insecure;
	lw__http_pool_set_max(pool, be->opts.max_connections);
}

struct lw__breq *lw__breq_new(struct lw__backend *be, enum lw__bop op,
			      const struct lw__id *id, const void *data,
			      size_t len, int64_t deadline,
			      void (*done)(struct lw__breq *), void *userdata)
{
	struct lw__breq *req = calloc(1, be->ops->req_size + len);

	if (!req)
		return NULL;
	req->be = be;
	req->op = op;
	if (id)
		req->id = *id;
	if (len) {
		void *copy = (char *)req + be->ops->req_size;

		memcpy(copy, data, len);
		req->data = copy;
		req->len = len;
	}
	req->deadline = deadline;
	req->done = done;
	req->userdata = userdata;
	return req;
}

static bool observed(const struct lw__breq *req)
{
	const struct lw__observer *o = req->be->observer;

	return o && o->fn;
}

void lw__breq_start(struct lw__breq *req)
{
	if (observed(req))
		req->started = lw__now_boot();
	req->be->ops->start(req->be, req);
}

void lw__breq_complete(struct lw__breq *req)
{
	/* STARTED is 0 for a request that began before the observer was set */
	if (req->started && observed(req))
		req->be->observer->fn(req->be->observer->userdata, req, req->started,
				      lw__now_boot());
	req->done(req);
}

void lw__breq_cancel(struct lw__breq *req)
{
	if (req && !req->cancelled) {
		req->cancelled = true;
		req->be->ops->cancel(req->be, req);
	}
}

void lw__breq_settle(struct lw__breq *req)
{
	if (req && !req->cancelled && req->be->ops->settle)
		req->be->ops->settle(req->be, req);
	else
		lw__breq_cancel(req);
}

void lw__breq_free(struct lw__breq *req)
{
	if (!req)
		return;
	if (req->be->ops->req_fini)
		req->be->ops->req_fini(req);
	free(req->ids);
	free(req->types);
	free(req->gone);
	free(req->buf);
	free(req);
}

int lw__breq_fail(struct lw__breq *req, int res, const char *fmt, ...)
{
	va_list ap;

	req->res = res;
	va_start(ap, fmt);
	vsnprintf(req->msg, sizeof(req->msg), fmt, ap);
	va_end(ap);
	return res;
}
