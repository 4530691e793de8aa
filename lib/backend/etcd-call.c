/* SPDX-License-Identifier: BSD-2-Clause */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/etcd-call.h"

/* An error page is kept this far, for its message. */
#define ERROR_BODY_MAX 512u
/* One try at one member: its share of the time left, within these. */
#define SLICE_MIN LW_SEC(1)
#define SLICE_MAX LW_SEC(10)
/* Wait after a round in which no member answered. */
#define ROUND_BACKOFF_FIRST LW_MSEC(100)
#define ROUND_BACKOFF_MAX LW_SEC(1)

void lw__etcd_call_why(struct lw__etcd_call *c, int res, const char *fmt, ...)
{
	const struct lw__endpoint *ep = &c->cl->ep[c->member];
	size_t n;
	va_list ap;

	c->res = res;
	n = (size_t)snprintf(c->why, sizeof(c->why), "on %s:%d: ", ep->host, ep->port);
	va_start(ap, fmt);
	vsnprintf(c->why + LW_MIN(n, sizeof(c->why)), sizeof(c->why) - LW_MIN(n, sizeof(c->why)),
		  fmt, ap);
	va_end(ap);
	lw__sanitize(c->why);
}

static void call_failed_deferred(struct lw__defer *d)
{
	struct lw__etcd_call *c = LW_CONTAINER_OF(d, struct lw__etcd_call, defer);

	c->failed(c);
}

static void on_http_done(struct lw__http_req *r);

void lw__etcd_call_send(struct lw__etcd_call *c)
{
	struct lw__etcd_cluster *cl = c->cl;
	struct lw__http_req *r = &c->http;
	int64_t left = c->soonest - lw__now_boot();
	unsigned members_left = cl->n - c->tried;

	lw__http_req_fini(r);
	memset(r, 0, sizeof(*r));
	r->pool = &cl->pool;
	r->method = "POST";
	if (c->body && asprintf(&r->url, "%s%s", cl->ep[c->member].base, c->path) < 0)
		r->url = NULL; /* the HTTP layer fails a request without a URL */
	r->path = c->path; /* and refuses one that asks for anything else */
	r->body = c->body;
	r->body_len = c->body ? strlen(c->body) : 0;
	r->max_body = c->max_body;
	r->max_err_body = ERROR_BODY_MAX;
	r->deadline = c->deadline;
	/* a share of the time left for each member not yet tried, so that a
	 * member that takes the connection and says nothing cannot use all
	 * of it */
	r->attempt_timeout = LW_MIN(LW_MAX(left / (int64_t)LW_MAX(members_left, 1u),
					   SLICE_MIN), SLICE_MAX);
	r->attempts_max = 1;
	r->done = on_http_done;
	c->tries++;
	lw__http_start(r);
}

void lw__etcd_call_post(struct lw__etcd_call *c, const char *path, size_t max_body,
			char *body)
{
	free(c->body);
	c->body = body;
	c->path = path;
	c->max_body = max_body;
	c->tried = 0;
	c->reached = false;
	c->backoff = ROUND_BACKOFF_FIRST;
	c->member = c->cl->cur;
	lw__etcd_call_send(c);
}

static void on_round_timer(struct lw__timer *t)
{
	struct lw__etcd_call *c = LW_CONTAINER_OF(t, struct lw__etcd_call, timer);

	c->waiting = false;
	c->tried = 0;
	lw__etcd_call_send(c);
}

/* The next member gets the POST, after a little wait once every member has
 * failed it. */
void lw__etcd_call_member_failed(struct lw__etcd_call *c)
{
	struct lw__etcd_cluster *cl = c->cl;
	unsigned next = (c->member + 1) % cl->n;
	int64_t now = lw__now_boot(), wait = 0;

	if (cl->cur == c->member && cl->n > 1) {
		cl->cur = next;
		lw__warn(cl->log, "etcd %s %s; trying member %s:%d", c->path, c->why,
			 cl->ep[next].host, cl->ep[next].port);
	}
	if (++c->tried >= cl->n)
		wait = LW_MIN(c->backoff, ROUND_BACKOFF_MAX);
	if (now + wait >= c->deadline) {
		c->failed(c);
		return;
	}
	c->member = next;
	if (!wait) {
		lw__etcd_call_send(c);
		return;
	}
	c->backoff = LW_MIN(2 * c->backoff, ROUND_BACKOFF_MAX);
	c->waiting = true;
	lw__timer_start(cl->engine, &c->timer, now + wait);
}

static void on_http_done(struct lw__http_req *r)
{
	struct lw__etcd_call *c = LW_CONTAINER_OF(r, struct lw__etcd_call, http);
	long st = r->status;
	char msg[ERROR_BODY_MAX + 1] = "";

	c->earlier = c->reached;
	c->reached |= r->reached;
	if (r->res < 0) {
		lw__etcd_call_why(c, r->res == -EIO ? -LW_EBACKEND : r->res, "%s", r->err);
		/* a POST that never left the pool (the deadline came while it
		 * waited for a connection) says nothing about the member */
		if (!r->attempts) {
			c->failed(c);
			return;
		}
		switch (r->res) {
		case -ECANCELED:
		case -ENOMEM:
		case -EFBIG:
		case -EIO:
			c->failed(c);
			return;
		default: /* refused, reset, unreachable, timed out */
			if (c->salvage && st >= 200 && st <= 299 && c->salvage(c))
				return;
			lw__etcd_call_member_failed(c);
			return;
		}
	}
	if (st >= 200 && st <= 299) {
		c->answered(c);
		return;
	}
	if (r->resp)
		lw__etcd_error_message(r->resp, r->resp_len, msg, sizeof(msg));
	lw__etcd_call_why(c, st == 401 || st == 403 ? -EACCES : -LW_EBACKEND, "%ld%s%s", st,
		 msg[0] ? ": " : "", msg[0] ? msg : " (not an etcd v3 gateway?)");
	if (st >= 500 || st == 429 || st == 408)
		lw__etcd_call_member_failed(c);
	else
		c->answered(c);
}

int lw__etcd_call_init(struct lw__etcd_call *c, struct lw__etcd_cluster *cl,
		       int64_t deadline, void (*answered)(struct lw__etcd_call *),
		       void (*failed)(struct lw__etcd_call *))
{
	c->cl = cl;
	c->deadline = c->soonest = deadline;
	c->answered = answered;
	c->failed = failed;
	lw__timer_init(&c->timer, on_round_timer);
	c->reserved = lw__engine_reserve(cl->engine, 1) == 0;
	return c->reserved ? 0 : -ENOMEM;
}

void lw__etcd_call_cancel(struct lw__etcd_call *c)
{
	if (c->waiting) {
		lw__timer_stop(c->cl->engine, &c->timer);
		c->waiting = false;
		lw__etcd_call_why(c, -ECANCELED, "cancelled");
		lw__defer(c->cl->engine, &c->defer, call_failed_deferred);
		return;
	}
	lw__http_cancel(&c->http); /* ends through on_http_done, if it runs */
}

void lw__etcd_call_fini(struct lw__etcd_call *c)
{
	if (c->reserved)
		lw__engine_reserve(c->cl->engine, -1);
	c->reserved = false;
	lw__http_req_fini(&c->http);
	free(c->body);
	c->body = NULL;
}

bool lw__etcd_call_reply(struct lw__etcd_call *c, const char *text, size_t len,
			 struct lw__etcd_reply *rep, bool outside_ok)
{
	char why[160];
	int res;

	rep->prefix = c->cl->prefix;
	rep->prefix_len = c->cl->prefix_len;
	res = lw__etcd_reply_parse(text, len, rep, why, sizeof(why));
	if (res < 0) {
		lw__etcd_call_why(c, res == -ENOMEM ? res : -LW_EBACKEND, "%s", why);
		return false;
	}
	if (rep->outside && !outside_ok) {
		lw__etcd_call_why(c, -LW_EBACKEND, "the reply holds a key outside %.*s",
			 (int)c->cl->prefix_len, c->cl->prefix);
		return false;
	}
	return true;
}
