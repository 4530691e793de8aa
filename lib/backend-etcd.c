/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The etcd: backend, over etcd's v3 JSON gateway (etcd >= 3.4): POST
 * /v3/<service>/<call> with a JSON body, keys and values in base64, 64-bit
 * integers as strings.  A lock is the key PREFIX/locks/<id> holding the
 * record, attached to a lease of its own whose TTL is the stale timeout:
 *
 *   create     lease grant, then a txn that puts the key under the lease
 *              only if its create_revision is 0 (it does not exist); the
 *              key's create revision is the lock's fencing token
 *   keepalive  one POST to /v3/lease/keepalive (a stream of one message);
 *              a reply without a TTL means the lease is gone
 *   remove     lease revoke, which deletes the key with it; without a
 *              known lease, the key's lease is looked up, and revoked only
 *              if it holds that key alone (another tool's lease is not
 *              ours to end: then only the key is deleted)
 *   list       a range over PREFIX/locks/, keys only (records never change:
 *              the listing cache reads each once)
 *
 * A lease that is not kept alive expires on the server, which deletes the
 * key: a crashed holder leaves nothing behind.
 *
 * Members: a request goes to the member that answered last; when it does
 * not answer (connection refused or reset, a timeout, a 5xx) the request
 * moves on to the next, each try bounded so that all of them fit in the
 * request's deadline, and after a round over every member it waits a
 * little before the next.  Every step is safe to repeat: a create's txn
 * that landed on a try whose answer was lost is recognised by its lease
 * when the next try finds the key.
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "base64.h"
#include "etcd-reply.h"
#include "http.h"

/* Keys-only kvs of 100,000 locks take about 25 MB. */
#define LISTING_MAX (64u << 20)
/* A read's reply: etcd keeps values up to 1.5 MiB (--max-request-bytes). */
#define READ_MAX (4u << 20)
#define REPLY_MAX (64u << 10)
#define ERROR_BODY_MAX 512u
/* One try at one member: its share of the time left, within these. */
#define SLICE_MIN LW_SEC(1)
#define SLICE_MAX LW_SEC(10)
/* Wait after a round in which no member answered. */
#define ROUND_BACKOFF_FIRST LW_MSEC(100)
#define ROUND_BACKOFF_MAX LW_SEC(1)

struct etcd_backend {
	struct lw__http_pool pool;
	const struct lw__endpoint *ep; /* the repository's URL outlives us */
	unsigned n;
	unsigned cur;         /* the member requests go to first */
	char *prefix;         /* "backups/locks/" */
	size_t prefix_len;
	char *range;          /* "key" and "range_end" of PREFIX, for bodies */
	char where[300];      /* "host:port,host:port" */
};

enum step {
	ST_GRANT,      /* create: a lease */
	ST_PUT,        /* create: the key under it, if absent */
	ST_LIST,
	ST_READ,
	ST_COUNT,      /* exists, init */
	ST_KEEPALIVE,
	ST_REVOKE,     /* remove */
	ST_LOOKUP,     /* remove: the key's lease */
	ST_LEASE_KEYS, /* remove: what else that lease holds */
	ST_DELETE,     /* remove: the key alone */
};

static const char *const step_path[] = {
	[ST_GRANT] = "/v3/lease/grant",
	[ST_PUT] = "/v3/kv/txn",
	[ST_LIST] = "/v3/kv/range",
	[ST_READ] = "/v3/kv/range",
	[ST_COUNT] = "/v3/kv/range",
	[ST_KEEPALIVE] = "/v3/lease/keepalive",
	[ST_REVOKE] = "/v3/lease/revoke",
	[ST_LOOKUP] = "/v3/kv/range",
	[ST_LEASE_KEYS] = "/v3/lease/timetolive",
	[ST_DELETE] = "/v3/kv/deleterange",
};

struct etcd_breq {
	struct lw__breq base;
	struct lw__http_req http;
	struct lw__timer timer;  /* the wait between rounds */
	struct lw__defer defer;  /* completion outside start and cancel */
	enum step step;
	unsigned member;         /* the member of the try in flight */
	unsigned tried;          /* members that failed this round */
	int64_t backoff;
	bool reserved;           /* TIMER's place in the heap */
	bool waiting;            /* TIMER runs */
	bool finishing;          /* DEFER is queued */
	bool reached;            /* a try of this step may have reached etcd */
	bool earlier;            /* ... a try before the last one */
	unsigned tries;
	char *key64;             /* the lock's key, base64 */
	char *body;
};

static struct etcd_backend *priv(struct lw__backend *be)
{
	return be->priv;
}

static struct etcd_breq *ereq(struct lw__breq *req)
{
	return LW_CONTAINER_OF(req, struct etcd_breq, base);
}

static const char *op_name(enum lw__bop op)
{
	static const char *const names[] = {
		[LW__BOP_CREATE] = "create", [LW__BOP_LIST] = "list",
		[LW__BOP_READ] = "read", [LW__BOP_REMOVE] = "remove",
		[LW__BOP_EXISTS] = "check", [LW__BOP_INIT] = "init",
		[LW__BOP_KEEPALIVE] = "keepalive",
	};

	return names[op];
}

/* Fails REQ with RES and "etcd OP locks/0123456789ab on host:port: WHAT". */
static void fail(struct etcd_breq *er, int res, const char *fmt, ...) LW_PRINTF(3, 4);

static void fail(struct etcd_breq *er, int res, const char *fmt, ...)
{
	struct lw__breq *req = &er->base;
	const struct lw__endpoint *ep = &priv(req->be)->ep[er->member];
	bool whole = req->op == LW__BOP_LIST || req->op == LW__BOP_INIT;
	char what[200], hex[LW_ID_HEX + 1], tries[32] = "";
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	lw__id_hex(&req->id, hex);
	if (er->tries > 1)
		snprintf(tries, sizeof(tries), " (%u tries)", er->tries);
	lw__breq_fail(req, res, "etcd %s locks/%.*s on %s:%d: %s%s", op_name(req->op),
		      whole ? 0 : 12, hex, ep->host, ep->port, what, tries);
	lw__sanitize(req->msg);
}

/* ----------------------------------------------------------- completion */

static void complete(struct etcd_breq *er)
{
	struct lw__breq *req = &er->base;

	if (er->reserved)
		lw__engine_reserve(req->be->engine, -1);
	er->reserved = false;
	/* a create that failed after its txn may have landed left a key */
	req->ambiguous = req->op == LW__BOP_CREATE && req->res < 0 && er->reached &&
			 er->step == ST_PUT;
	req->done(req);
}

static void complete_deferred(struct lw__defer *d)
{
	struct etcd_breq *er = LW_CONTAINER_OF(d, struct etcd_breq, defer);

	er->finishing = false;
	complete(er);
}

/* Completes at the next turn: for results found inside start or cancel. */
static void complete_later(struct etcd_breq *er)
{
	er->finishing = true;
	lw__defer(er->base.be->engine, &er->defer, complete_deferred);
}

/* -------------------------------------------------------------- bodies */

static char *b64(const void *data, size_t len)
{
	char *s = malloc(lw__base64_len(len) + 1);

	if (s)
		lw__base64_encode(data, len, s);
	return s;
}

/* The body of STEP, or NULL when out of memory. */
static char *make_body(struct etcd_breq *er)
{
	struct lw__breq *req = &er->base;
	const struct etcd_backend *eb = priv(req->be);
	char *body = NULL, *value;
	int n = -1;

	switch (er->step) {
	case ST_GRANT:
		/* whole seconds, rounded up: never shorter than asked */
		n = asprintf(&body, "{\"TTL\":\"%" PRId64 "\"}",
			     (req->ttl + LW_NSEC_PER_SEC - 1) / LW_NSEC_PER_SEC);
		break;
	case ST_PUT:
		value = b64(req->data, req->len);
		if (!value)
			return NULL;
		/* when the key exists, its lease says whether an earlier try
		 * of ours put it there */
		n = asprintf(&body,
			     "{\"compare\":[{\"key\":\"%1$s\",\"result\":\"EQUAL\","
			     "\"target\":\"CREATE\",\"create_revision\":\"0\"}],"
			     "\"success\":[{\"request_put\":{\"key\":\"%1$s\",\"value\":\"%2$s\","
			     "\"lease\":\"%3$" PRId64 "\"}}],"
			     "\"failure\":[{\"request_range\":{\"key\":\"%1$s\",\"keys_only\":true}}]}",
			     er->key64, value, req->lease);
		free(value);
		break;
	case ST_LIST:
		n = asprintf(&body, "{%s,\"keys_only\":true}", eb->range);
		break;
	case ST_READ:
		n = asprintf(&body, "{\"key\":\"%s\"}", er->key64);
		break;
	case ST_COUNT:
		if (req->op == LW__BOP_INIT)
			n = asprintf(&body, "{%s,\"count_only\":true}", eb->range);
		else
			n = asprintf(&body, "{\"key\":\"%s\",\"count_only\":true}", er->key64);
		break;
	case ST_LOOKUP:
		n = asprintf(&body, "{\"key\":\"%s\",\"keys_only\":true}", er->key64);
		break;
	case ST_DELETE:
		n = asprintf(&body, "{\"key\":\"%s\"}", er->key64);
		break;
	case ST_KEEPALIVE:
	case ST_REVOKE:
		n = asprintf(&body, "{\"ID\":\"%" PRId64 "\"}", req->lease);
		break;
	case ST_LEASE_KEYS:
		n = asprintf(&body, "{\"ID\":\"%" PRId64 "\",\"keys\":true}", req->lease);
		break;
	}
	return n < 0 ? NULL : body;
}

/* ------------------------------------------------------------- sending */

static void on_http_done(struct lw__http_req *r);

/* Sends the current step to the current member. */
static void send_try(struct etcd_breq *er)
{
	struct lw__breq *req = &er->base;
	struct etcd_backend *eb = priv(req->be);
	struct lw__http_req *r = &er->http;
	int64_t left = req->deadline - lw__now_boot();
	unsigned members_left = eb->n - er->tried;

	lw__http_req_fini(r);
	free(er->body);
	er->body = make_body(er);
	memset(r, 0, sizeof(*r));
	r->pool = &eb->pool;
	r->method = "POST";
	if (er->body && asprintf(&r->url, "%s%s", eb->ep[er->member].base,
				 step_path[er->step]) < 0)
		r->url = NULL; /* the HTTP layer fails a request without a URL */
	r->body = er->body;
	r->body_len = er->body ? strlen(er->body) : 0;
	r->max_body = er->step == ST_LIST ? LISTING_MAX :
		      er->step == ST_READ ? READ_MAX : REPLY_MAX;
	r->max_err_body = ERROR_BODY_MAX;
	r->deadline = req->deadline;
	/* a share of the time left for each member not yet tried, so that a
	 * member that takes the connection and says nothing cannot use all
	 * of it */
	r->attempt_timeout = LW_MIN(LW_MAX(left / (int64_t)LW_MAX(members_left, 1u),
					   SLICE_MIN), SLICE_MAX);
	r->attempts_max = 1;
	r->done = on_http_done;
	er->tries++;
	lw__http_start(r);
}

static void begin_step(struct etcd_breq *er, enum step step)
{
	er->step = step;
	er->tried = 0;
	er->reached = false;
	er->backoff = ROUND_BACKOFF_FIRST;
	send_try(er);
}

static void on_round_timer(struct lw__timer *t)
{
	struct etcd_breq *er = LW_CONTAINER_OF(t, struct etcd_breq, timer);

	er->waiting = false;
	er->tried = 0;
	send_try(er);
}

/* The member did not answer: the next one gets the request, after a
 * little wait once every member has failed it. */
static void member_failed(struct etcd_breq *er)
{
	struct lw__breq *req = &er->base;
	struct etcd_backend *eb = priv(req->be);
	unsigned next = (er->member + 1) % eb->n;
	int64_t now = lw__now_boot(), wait = 0;

	if (eb->cur == er->member && eb->n > 1) {
		eb->cur = next;
		lw__warn(req->be->log, "%s; trying etcd member %s:%d", req->msg,
			 eb->ep[next].host, eb->ep[next].port);
	}
	if (++er->tried >= eb->n)
		wait = LW_MIN(er->backoff, ROUND_BACKOFF_MAX);
	if (now + wait >= req->deadline) {
		complete(er);
		return;
	}
	er->member = next;
	if (!wait) {
		send_try(er);
		return;
	}
	er->backoff = LW_MIN(2 * er->backoff, ROUND_BACKOFF_MAX);
	er->waiting = true;
	lw__timer_start(req->be->engine, &er->timer, now + wait);
}

/* ------------------------------------------------------------- replies */

/* What a step's good reply means; completes or moves to the next step. */
static void on_reply(struct etcd_breq *er, struct lw__etcd_reply *rep)
{
	struct lw__breq *req = &er->base;
	struct etcd_backend *eb = priv(req->be);
	const struct lw__etcd_kv *kv = rep->nkvs == 1 ? &rep->kvs[0] : NULL;
	bool mine = kv && lw__id_eq(&kv->id, &req->id);

	if (rep->outside && er->step != ST_LEASE_KEYS) {
		fail(er, -LW_EBACKEND, "the reply holds a key outside %.*s", (int)eb->prefix_len,
		     eb->prefix);
		complete(er);
		return;
	}
	req->res = 0;
	req->msg[0] = '\0';
	switch (er->step) {
	case ST_GRANT:
		if (rep->id == 0 || rep->ttl <= 0) {
			fail(er, -LW_EBACKEND, "the lease grant's reply has no lease");
			break;
		}
		req->lease = rep->id;
		begin_step(er, ST_PUT);
		return;
	case ST_PUT:
		if (rep->succeeded)
			req->token = rep->revision;
		else if (mine && kv->lease == req->lease)
			req->token = kv->create_revision; /* an earlier try's */
		else
			fail(er, -EEXIST, "the key exists already");
		if (req->res == 0 && req->token <= 0)
			fail(er, -LW_EBACKEND, "the txn's reply has no revision");
		break;
	case ST_LIST:
		req->nids = rep->nkvs;
		req->ids = req->nids ? malloc(req->nids * sizeof(*req->ids)) : NULL;
		if (req->nids && !req->ids) {
			fail(er, -ENOMEM, "out of memory");
			break;
		}
		for (size_t i = 0; i < rep->nkvs; i++)
			req->ids[i] = rep->kvs[i].id;
		break;
	case ST_READ:
		if (rep->nkeys == 0) {
			fail(er, -ENOENT, "not found");
		} else if (!mine) {
			fail(er, -LW_EBACKEND, "the reply is about another key");
		} else if (rep->value_len) {
			req->buf = malloc(rep->value_len);
			if (!req->buf) {
				fail(er, -ENOMEM, "out of memory");
				break;
			}
			memcpy(req->buf, rep->value, rep->value_len);
			req->buflen = rep->value_len;
		}
		break;
	case ST_COUNT:
		if (req->op == LW__BOP_EXISTS && rep->count == 0)
			fail(er, -ENOENT, "not found");
		break;
	case ST_KEEPALIVE:
		if (rep->ttl <= 0)
			fail(er, -ENOENT, "the lease expired on the server, or was revoked");
		else if (rep->id != req->lease)
			fail(er, -LW_EBACKEND, "the reply is about another lease");
		break;
	case ST_LOOKUP:
		if (!mine) {
			fail(er, -ENOENT, "not found");
			break;
		}
		req->lease = kv->lease;
		begin_step(er, kv->lease ? ST_LEASE_KEYS : ST_DELETE);
		return;
	case ST_LEASE_KEYS:
		if (rep->ttl <= 0) {
			fail(er, -ENOENT, "not found: its lease expired");
			break;
		}
		/* a lease that holds other keys too is not ours to end */
		begin_step(er, rep->nkeys == 1 && mine ? ST_REVOKE : ST_DELETE);
		return;
	case ST_REVOKE:
		break;
	case ST_DELETE:
		/* a try whose answer was lost may have deleted it */
		if (rep->deleted == 0 && !er->earlier)
			fail(er, -ENOENT, "not found");
		break;
	}
	complete(er);
}

/* A 2xx reply: read it. */
static void on_ok(struct etcd_breq *er)
{
	struct etcd_backend *eb = priv(er->base.be);
	struct lw__http_req *r = &er->http;
	struct lw__etcd_reply *rep = malloc(sizeof(*rep));
	char why[160];
	int res;

	if (!rep) {
		fail(er, -ENOMEM, "out of memory");
		complete(er);
		return;
	}
	rep->prefix = eb->prefix;
	rep->prefix_len = eb->prefix_len;
	res = lw__etcd_reply_parse(r->resp ? r->resp : "", r->resp_len, rep, why, sizeof(why));
	if (res < 0) {
		fail(er, res == -ENOMEM ? res : -LW_EBACKEND, "%s", why);
		complete(er);
	} else if (rep->error[0]) {
		/* a stream's error comes in a 200 reply: "no leader", say */
		fail(er, -LW_EBACKEND, "%s", rep->error);
		member_failed(er);
	} else {
		on_reply(er, rep);
	}
	lw__etcd_reply_fini(rep);
	free(rep);
}

static void on_http_done(struct lw__http_req *r)
{
	struct etcd_breq *er = LW_CONTAINER_OF(r, struct etcd_breq, http);
	long st = r->status;
	char msg[ERROR_BODY_MAX + 1] = "";

	er->earlier = er->reached;
	er->reached |= r->reached;
	if (r->res < 0) {
		fail(er, r->res == -EIO ? -LW_EBACKEND : r->res, "%s", r->err);
		switch (r->res) {
		case -ECANCELED:
		case -ENOMEM:
		case -EFBIG:
		case -EIO:
			complete(er);
			return;
		default: /* refused, reset, unreachable, timed out */
			member_failed(er);
			return;
		}
	}
	if (st >= 200 && st <= 299) {
		on_ok(er);
		return;
	}
	if (r->resp)
		lw__etcd_error_message(r->resp, r->resp_len, msg, sizeof(msg));
	if (st == 404 && er->step == ST_REVOKE && msg[0]) {
		/* "requested lease not found": the key went with it, maybe by
		 * a try of ours whose answer was lost */
		if (er->earlier) {
			er->base.res = 0;
			er->base.msg[0] = '\0';
		} else {
			fail(er, -ENOENT, "not found: %s", msg);
		}
		complete(er);
		return;
	}
	fail(er, st == 401 || st == 403 ? -EACCES : -LW_EBACKEND, "%ld%s%s", st,
	     msg[0] ? ": " : "", msg[0] ? msg : " (not an etcd v3 gateway?)");
	if (st >= 500 || st == 429 || st == 408)
		member_failed(er);
	else
		complete(er);
}

/* -------------------------------------------------------------- vtable */

static void eb_start(struct lw__backend *be, struct lw__breq *req)
{
	struct etcd_backend *eb = priv(be);
	struct etcd_breq *er = ereq(req);
	char key[4096 + 128], hex[LW_ID_HEX + 1];
	int n;

	lw__timer_init(&er->timer, on_round_timer);
	er->member = eb->cur;
	er->reserved = lw__engine_reserve(be->engine, 1) == 0;
	lw__id_hex(&req->id, hex);
	n = snprintf(key, sizeof(key), "%s%s", eb->prefix, hex);
	er->key64 = n > 0 && (size_t)n < sizeof(key) ? b64(key, (size_t)n) : NULL;
	if (!er->reserved || !er->key64) {
		fail(er, -ENOMEM, "out of memory");
		complete_later(er);
		return;
	}
	switch (req->op) {
	case LW__BOP_CREATE:
		begin_step(er, ST_GRANT);
		break;
	case LW__BOP_LIST:
		begin_step(er, ST_LIST);
		break;
	case LW__BOP_READ:
		begin_step(er, ST_READ);
		break;
	case LW__BOP_EXISTS:
	case LW__BOP_INIT:
		/* etcd needs no layout: init checks that the cluster answers */
		begin_step(er, ST_COUNT);
		break;
	case LW__BOP_KEEPALIVE:
		begin_step(er, ST_KEEPALIVE);
		break;
	case LW__BOP_REMOVE:
		begin_step(er, req->lease ? ST_REVOKE : ST_LOOKUP);
		break;
	}
}

static void eb_cancel(struct lw__backend *be, struct lw__breq *req)
{
	struct etcd_breq *er = ereq(req);

	if (er->waiting) {
		lw__timer_stop(be->engine, &er->timer);
		er->waiting = false;
		fail(er, -ECANCELED, "cancelled");
		complete_later(er);
		return;
	}
	if (!er->finishing)
		lw__http_cancel(&er->http); /* completes through on_http_done */
}

static void eb_req_fini(struct lw__breq *req)
{
	struct etcd_breq *er = ereq(req);

	lw__http_req_fini(&er->http);
	free(er->body);
	free(er->key64);
}

static void eb_configure(struct lw__backend *be)
{
	lw__backend_configure_pool(be, &priv(be)->pool);
}

static void eb_close(struct lw__backend *be)
{
	struct etcd_backend *eb = priv(be);

	lw__http_pool_fini(&eb->pool);
	free(eb->prefix);
	free(eb->range);
	free(eb);
}

/* "prefix/locks/" and the range body that lists it. */
static int make_prefix(struct etcd_backend *eb, const char *path)
{
	char *start, *end;
	int r;

	if (asprintf(&eb->prefix, "%s%slocks/", path, *path ? "/" : "") < 0) {
		eb->prefix = NULL;
		return -ENOMEM;
	}
	eb->prefix_len = strlen(eb->prefix);
	start = b64(eb->prefix, eb->prefix_len);
	/* the range's end: the prefix with its last byte ('/') one higher */
	eb->prefix[eb->prefix_len - 1]++;
	end = b64(eb->prefix, eb->prefix_len);
	eb->prefix[eb->prefix_len - 1]--;
	r = start && end ? asprintf(&eb->range, "\"key\":\"%s\",\"range_end\":\"%s\"",
				    start, end) : -1;
	free(start);
	free(end);
	if (r < 0) {
		eb->range = NULL;
		return -ENOMEM;
	}
	return 0;
}

static int eb_open(struct lw__backend *be, const struct lw__url *url)
{
	struct etcd_backend *eb;
	size_t len = 0;
	int r;

	if (url->user) {
		lw__warn(be->log, "etcd: user names and passwords are not supported "
			 "(etcd authentication needs tokens); leave them out of the URL");
		return -ENOTSUP;
	}
	r = lw__http_get(&be->env->http, be->engine, be->log);
	if (r < 0)
		return r;
	eb = calloc(1, sizeof(*eb));
	if (!eb)
		return -ENOMEM;
	eb->ep = url->ep;
	eb->n = (unsigned)url->nep;
	for (size_t i = 0; i < url->nep && len < sizeof(eb->where); i++) {
		bool v6 = strchr(url->ep[i].host, ':') != NULL;

		len += (size_t)snprintf(eb->where + len, sizeof(eb->where) - len, "%s%s%s%s:%d",
					i ? "," : "", v6 ? "[" : "", url->ep[i].host,
					v6 ? "]" : "", url->ep[i].port);
	}
	lw__http_pool_init(&eb->pool, be->env->http);
	be->priv = eb;
	be->where = eb->where;
	r = make_prefix(eb, url->path);
	if (r < 0) {
		eb_close(be);
		return r;
	}
	eb_configure(be);
	return 0;
}

const struct lw__backend_ops lw__backend_etcd = {
	.name = "etcd",
	.req_size = sizeof(struct etcd_breq),
	.leased = true,
	.open = eb_open,
	.close = eb_close,
	.start = eb_start,
	.cancel = eb_cancel,
	.req_fini = eb_req_fini,
	.configure = eb_configure,
};
