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
 *   keepalive  /v3/lease/keepalive, a stream: one POST carries the
 *              keepalives of every lock that is due while the previous
 *              POSTs are under way, one JSON object a line each way; a
 *              reply without a TTL means the lease is gone
 *   remove     lease revoke, which deletes the key with it; without a
 *              known lease, the key's lease is looked up, and revoked only
 *              if it holds that key alone (another tool's lease is not
 *              ours to end: then only the key is deleted)
 *   list       a range over PREFIX/locks/, keys only (records never change:
 *              the listing cache reads each once)
 *   watch      /v3/watch, one stream per repository over PREFIX/locks/
 *              for DELETE events, which report the removed locks (below)
 *
 * A lease that is not kept alive expires on the server, which deletes the
 * key: a crashed holder leaves nothing behind.
 *
 * Each POST moves from member to member until one answers (etcd-call.c).
 * Every step is safe to repeat: a create's txn that landed on a try whose
 * answer was lost is recognised by its lease when the next try finds the
 * key.
 */
#include "config.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "util/base64.h"
#include "backend/etcd-call.h"
#include "util/list.h"

/* Keys-only kvs of 100,000 locks take about 25 MB. */
#define LISTING_MAX (64u << 20)
/* A read's reply: etcd keeps values up to 1.5 MiB (--max-request-bytes). */
#define READ_MAX (4u << 20)
#define REPLY_MAX (64u << 10)
/* Keepalives in one POST; the reply takes about 200 bytes for each. */
#define BATCH_MAX 1000u
#define BATCH_REPLY_MAX (BATCH_MAX * 512u)

struct watch;

struct etcd_backend {
	struct lw__backend *be;
	struct watch *watch;   /* NULL until a lock is held */
	struct lw__etcd_cluster cl;
	char *prefix;          /* CL's: "backups/locks/" */
	char *range;           /* "key" and "range_end" of PREFIX, for bodies */
	struct lw__list due;   /* keepalives waiting for a batch */
	struct lw__list batches;
	unsigned nbatches;
	struct lw__defer flush;
	bool flush_queued;
	char where[300];       /* "host:port,host:port" */
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

/* ------------------------------------------------------------- requests */

struct etcd_breq {
	struct lw__breq base;
	struct lw__etcd_call call;   /* all but keepalives */
	enum step step;
	struct lw__defer defer;  /* completion outside start and cancel */
	struct lw__list link;    /* keepalive: in DUE or in a batch */
	struct batch *batch;
	char *key64;             /* the lock's key, base64 */
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

/* Sets REQ's result: "etcd OP locks/0123456789ab WHAT (N tries)". */
static void fail(struct etcd_breq *er, int res, const char *what, unsigned tries)
{
	struct lw__breq *req = &er->base;
	bool whole = req->op == LW__BOP_LIST || req->op == LW__BOP_INIT;
	char hex[LW_ID_HEX + 1], n[32] = "";

	lw__id_hex(&req->id, hex);
	if (tries > 1)
		snprintf(n, sizeof(n), " (%u tries)", tries);
	lw__breq_fail(req, res, "etcd %s locks/%.*s %s%s", op_name(req->op), whole ? 0 : 12, hex,
		      what, n);
}

/* REQ's result from its call's last failure. */
static void fail_call(struct etcd_breq *er, const struct lw__etcd_call *c)
{
	fail(er, c->res, c->why, c->tries);
}

static void complete(struct etcd_breq *er)
{
	struct lw__breq *req = &er->base;

	/* a create that failed after its txn may have landed left a key */
	req->ambiguous = req->op == LW__BOP_CREATE && req->res < 0 && er->call.reached &&
			 er->step == ST_PUT;
	lw__breq_complete(req);
}

static void complete_deferred(struct lw__defer *d)
{
	complete(LW_CONTAINER_OF(d, struct etcd_breq, defer));
}

/* Completes at the next turn: for results found inside start or cancel. */
static void complete_later(struct etcd_breq *er)
{
	lw__defer(er->base.be->engine, &er->defer, complete_deferred);
}

static char *b64(const void *data, size_t len)
{
	char *s = malloc(lw__base64_len(len) + 1);

	if (s)
		lw__base64_encode(data, len, s);
	return s;
}

/* The body of STEP for ER, or NULL when out of memory. */
static char *make_body(struct etcd_breq *er, enum step step)
{
	struct lw__breq *req = &er->base;
	const struct etcd_backend *eb = priv(req->be);
	char *body = NULL, *value;
	int n = -1;

	switch (step) {
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
	case ST_COUNT:
		if (req->op == LW__BOP_INIT)
			n = asprintf(&body, "{%s,\"count_only\":true}", eb->range);
		else
			n = asprintf(&body, "{\"key\":\"%s\",\"count_only\":true}", er->key64);
		break;
	case ST_READ:
	case ST_DELETE:
		n = asprintf(&body, "{\"key\":\"%s\"}", er->key64);
		break;
	case ST_LOOKUP:
		n = asprintf(&body, "{\"key\":\"%s\",\"keys_only\":true}", er->key64);
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

static size_t max_body(enum step step)
{
	return step == ST_LIST ? LISTING_MAX : step == ST_READ ? READ_MAX :
	       step == ST_KEEPALIVE ? BATCH_REPLY_MAX : REPLY_MAX;
}

static void next_step(struct etcd_breq *er, enum step step)
{
	er->step = step;
	lw__etcd_call_post(&er->call, step_path[step], max_body(step), make_body(er, step));
}

/* What a step's good reply means; completes or moves to the next step. */
static void on_reply(struct etcd_breq *er, const struct lw__etcd_reply *rep)
{
	struct lw__breq *req = &er->base;
	const struct lw__etcd_kv *kv = rep->nkvs == 1 ? &rep->kvs[0] : NULL;
	bool mine = kv && lw__id_eq(&kv->id, &req->id);
	unsigned tries = er->call.tries;

	switch (er->step) {
	case ST_GRANT:
		if (rep->id == 0 || rep->ttl <= 0) {
			fail(er, -LW_EBACKEND, "the lease grant's reply has no lease", tries);
			break;
		}
		req->lease = rep->id;
		next_step(er, ST_PUT);
		return;
	case ST_PUT:
		if (rep->succeeded)
			req->token = rep->revision;
		else if (mine && kv->lease == req->lease)
			req->token = kv->create_revision; /* an earlier try's */
		else
			fail(er, -EEXIST, "the key exists already", tries);
		if (req->res == 0 && req->token <= 0)
			fail(er, -LW_EBACKEND, "the txn's reply has no revision", tries);
		break;
	case ST_LIST:
		req->nids = rep->nkvs;
		req->ids = req->nids ? malloc(req->nids * sizeof(*req->ids)) : NULL;
		if (req->nids && !req->ids) {
			fail(er, -ENOMEM, "out of memory", tries);
			break;
		}
		for (size_t i = 0; i < rep->nkvs; i++)
			req->ids[i] = rep->kvs[i].id;
		break;
	case ST_READ:
		if (rep->nkeys == 0) {
			fail(er, -ENOENT, "not found", tries);
		} else if (!mine) {
			fail(er, -LW_EBACKEND, "the reply is about another key", tries);
		} else if (rep->value_len) {
			req->buf = malloc(rep->value_len);
			if (!req->buf) {
				fail(er, -ENOMEM, "out of memory", tries);
				break;
			}
			memcpy(req->buf, rep->value, rep->value_len);
			req->buflen = rep->value_len;
		}
		break;
	case ST_COUNT:
		if (req->op == LW__BOP_EXISTS && rep->count == 0)
			fail(er, -ENOENT, "not found", tries);
		break;
	case ST_LOOKUP:
		if (!mine) {
			fail(er, -ENOENT, "not found", tries);
			break;
		}
		req->lease = kv->lease;
		next_step(er, kv->lease ? ST_LEASE_KEYS : ST_DELETE);
		return;
	case ST_LEASE_KEYS:
		if (rep->ttl <= 0) {
			fail(er, -ENOENT, "not found: its lease expired", tries);
			break;
		}
		/* a lease that holds other keys too is not ours to end */
		next_step(er, rep->nkeys == 1 && mine ? ST_REVOKE : ST_DELETE);
		return;
	case ST_REVOKE:
	case ST_KEEPALIVE:
		break;
	case ST_DELETE:
		/* a try whose answer was lost may have deleted it */
		if (rep->deleted == 0 && !er->call.earlier)
			fail(er, -ENOENT, "not found", tries);
		break;
	}
	complete(er);
}

static void req_answered(struct lw__etcd_call *c)
{
	struct etcd_breq *er = LW_CONTAINER_OF(c, struct etcd_breq, call);
	const struct lw__http_req *r = &c->http;
	struct lw__etcd_reply rep; /* 4 KiB: a record's room */

	if (r->status == 404 && er->step == ST_REVOKE && r->resp &&
	    strstr(r->resp, "lease not found")) {
		/* the key went with its lease, maybe by a try of ours whose
		 * answer was lost */
		if (!c->earlier)
			fail(er, -ENOENT, "not found: the lease is gone", c->tries);
		complete(er);
		return;
	}
	if (r->status < 200 || r->status > 299) {
		fail_call(er, c);
		complete(er);
		return;
	}
	if (!lw__etcd_call_reply(c, r->resp ? r->resp : "", r->resp_len, &rep,
				 er->step == ST_LEASE_KEYS)) {
		fail_call(er, c);
		complete(er);
	} else {
		on_reply(er, &rep);
	}
	lw__etcd_reply_fini(&rep);
}

static void req_failed(struct lw__etcd_call *c)
{
	struct etcd_breq *er = LW_CONTAINER_OF(c, struct etcd_breq, call);

	fail_call(er, c);
	complete(er);
}

/* ------------------------------------------------------------- batches */

/* Keepalives sent together in one POST of the lease stream. */
struct batch {
	struct lw__etcd_call call;
	struct lw__list link;    /* eb->batches */
	struct lw__list members; /* waiting for their answer, in body order */
};

static void flush_due(struct etcd_backend *eb);

static void batch_free(struct batch *b)
{
	struct etcd_backend *eb = LW_CONTAINER_OF(b->call.cl, struct etcd_backend, cl);

	lw__list_del(&b->link);
	eb->nbatches--;
	lw__etcd_call_fini(&b->call);
	free(b);
	flush_due(eb);
}

static void leave(struct etcd_breq *er)
{
	lw__list_del(&er->link);
	er->batch = NULL;
}

/* Every member still waiting gets C's failure. */
static void batch_failed(struct lw__etcd_call *c)
{
	struct batch *b = LW_CONTAINER_OF(c, struct batch, call);

	while (!lw__list_empty(&b->members)) {
		struct etcd_breq *er = LW_CONTAINER_OF(b->members.next, struct etcd_breq, link);

		leave(er);
		fail_call(er, c);
		complete(er);
	}
	batch_free(b);
}

/* The body for B's members, one {"ID"} a line; their deadlines' range. */
static char *batch_body(struct batch *b, int64_t *soonest, int64_t *latest)
{
	size_t n = 0, len = 0;
	char *body;

	for (struct lw__list *l = b->members.next; l != &b->members; l = l->next)
		n++;
	body = malloc(n * 32 + 1);
	*soonest = INT64_MAX;
	*latest = 0;
	for (struct lw__list *l = b->members.next; body && l != &b->members; l = l->next) {
		const struct lw__breq *req = &LW_CONTAINER_OF(l, struct etcd_breq, link)->base;

		len += (size_t)sprintf(body + len, "{\"ID\":\"%" PRId64 "\"}\n", req->lease);
		*soonest = LW_MIN(*soonest, req->deadline);
		*latest = LW_MAX(*latest, req->deadline);
	}
	return body;
}

/* The member whose lease is ID: the first one, unless some left. */
static struct etcd_breq *batch_find(struct batch *b, int64_t id)
{
	for (struct lw__list *l = b->members.next; l != &b->members; l = l->next) {
		struct etcd_breq *er = LW_CONTAINER_OF(l, struct etcd_breq, link);

		if (er->base.lease == id)
			return er;
	}
	return NULL;
}

enum line { LINE_OK, LINE_BROKEN, LINE_BAD };

/* One line of the stream's reply: a member's answer, or the stream's end
 * (BROKEN: "no leader", say) or garbage (BAD). */
static enum line batch_line(struct batch *b, const char *text, size_t len)
{
	struct lw__etcd_call *c = &b->call;
	struct lw__etcd_reply rep;
	enum line res = LINE_BAD;
	struct etcd_breq *er;

	if (!lw__etcd_call_reply(c, text, len, &rep, false)) {
		/* LINE_BAD */
	} else if (rep.error[0]) {
		lw__etcd_call_why(c, -LW_EBACKEND, "%s", rep.error);
		res = LINE_BROKEN;
	} else {
		/* a member cancelled meanwhile is no longer there */
		er = batch_find(b, rep.id);
		if (er) {
			leave(er);
			if (rep.ttl <= 0)
				fail(er, -ENOENT, "the lease expired on the server, or was revoked",
				     c->tries);
			complete(er);
		}
		res = LINE_OK;
	}
	lw__etcd_reply_fini(&rep);
	return res;
}

/* Reads the answers in a reply (only whole lines unless WHOLE) and says
 * how many came. */
static enum line batch_read(struct batch *b, bool whole, unsigned *answered)
{
	const struct lw__http_req *r = &b->call.http;
	const char *p = r->resp ? r->resp : "", *end = p + r->resp_len;
	enum line res = LINE_OK;

	*answered = 0;
	/* one JSON object a line: a JSON string holds no raw newline */
	while (res == LINE_OK && p < end && !lw__list_empty(&b->members)) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = (size_t)((nl ? nl : end) - p);

		if (!nl && !whole)
			break;
		if (len) {
			res = batch_line(b, p, len);
			*answered += res == LINE_OK;
		}
		p += len + (nl != NULL);
	}
	return res;
}

/* The rest of B's members go again at once, to the same member. */
static void batch_resend(struct batch *b, unsigned answered)
{
	struct lw__etcd_call *c = &b->call;

	lw__dbg(c->cl->log, "etcd keepalive: %u answered in a POST that ended early; "
		"sending the rest again", answered);
	free(c->body);
	c->body = batch_body(b, &c->soonest, &c->deadline);
	lw__etcd_call_send(c);
}

/* The gateway (Go's HTTP/1 server) stops reading a body once its reply has
 * begun and throws the rest away: the keepalives it never read (it reads
 * at least the first) go again, to the same member. */
static void batch_answered(struct lw__etcd_call *c)
{
	struct batch *b = LW_CONTAINER_OF(c, struct batch, call);
	const struct lw__http_req *r = &c->http;
	unsigned answered;
	enum line res;

	if (r->status < 200 || r->status > 299) {
		batch_failed(c);
		return;
	}
	res = batch_read(b, true, &answered);
	if (lw__list_empty(&b->members)) {
		batch_free(b);
	} else if (res == LINE_BAD) {
		batch_failed(c);
	} else if (res == LINE_OK && answered) {
		batch_resend(b, answered);
	} else {
		if (res == LINE_OK)
			lw__etcd_call_why(c, -LW_EBACKEND, "the keepalive stream ended without an answer");
		free(c->body);
		c->body = batch_body(b, &c->soonest, &c->deadline);
		lw__etcd_call_member_failed(c);
	}
}

/* A POST that timed out or broke while its answers came: those that came
 * count, and the rest go again (a member that answers slowly still
 * answers).  Returns whether it took the POST over. */
static bool batch_salvage(struct lw__etcd_call *c)
{
	struct batch *b = LW_CONTAINER_OF(c, struct batch, call);
	int res = c->res;
	char why[sizeof(c->why)];
	unsigned answered;

	memcpy(why, c->why, sizeof(why));
	if (batch_read(b, false, &answered) == LINE_OK && answered) {
		if (lw__list_empty(&b->members))
			batch_free(b);
		else
			batch_resend(b, answered);
		return true;
	}
	/* the try's own failure stands, for the members not answered */
	c->res = res;
	memcpy(c->why, why, sizeof(why));
	if (answered) {
		free(c->body);
		c->body = batch_body(b, &c->soonest, &c->deadline);
	}
	if (!lw__list_empty(&b->members))
		return false;
	batch_free(b);
	return true;
}

/* Starts a POST with the keepalives that are due, up to BATCH_MAX. */
static void batch_start(struct etcd_backend *eb)
{
	struct batch *b = calloc(1, sizeof(*b));
	char *body;

	if (!b || lw__etcd_call_init(&b->call, &eb->cl, 0, batch_answered, batch_failed) < 0) {
		/* out of memory: the keepalives wait, and their locks' deadlines
		 * end them if it lasts */
		if (b)
			lw__etcd_call_fini(&b->call);
		free(b);
		return;
	}
	b->call.salvage = batch_salvage;
	lw__list_init(&b->members);
	lw__list_add_tail(&eb->batches, &b->link);
	eb->nbatches++;
	for (unsigned n = 0; n < BATCH_MAX && !lw__list_empty(&eb->due); n++) {
		struct etcd_breq *er = LW_CONTAINER_OF(eb->due.next, struct etcd_breq, link);

		leave(er);
		lw__list_add_tail(&b->members, &er->link);
		er->batch = b;
	}
	/* each member's own deadline ends it (its lock cancels it): the POST
	 * lasts for the latest, its tries are sliced for the soonest */
	body = batch_body(b, &b->call.soonest, &b->call.deadline);
	lw__etcd_call_post(&b->call, step_path[ST_KEEPALIVE], max_body(ST_KEEPALIVE), body);
}

/* Batches at once: room is left for acquires and removals. */
static unsigned batches_max(const struct etcd_backend *eb)
{
	return LW_MAX(eb->cl.pool.max_active / 2, 1u);
}

static void flush_deferred(struct lw__defer *d)
{
	struct etcd_backend *eb = LW_CONTAINER_OF(d, struct etcd_backend, flush);

	eb->flush_queued = false;
	while (!lw__list_empty(&eb->due) && eb->nbatches < batches_max(eb)) {
		unsigned before = eb->nbatches;

		batch_start(eb);
		if (eb->nbatches == before)
			break; /* out of memory */
	}
}

/* Keepalives due now join a batch at the next turn (those of the same turn
 * travel together), or wait until a batch in flight ends: the busier the
 * server, the more each POST carries. */
static void flush_due(struct etcd_backend *eb)
{
	if (eb->flush_queued || lw__list_empty(&eb->due) || eb->nbatches >= batches_max(eb))
		return;
	eb->flush_queued = true;
	lw__defer(eb->be->engine, &eb->flush, flush_deferred);
}

/* --------------------------------------------------------------- watch */

/*
 * One watch per repository, however many locks it holds: a POST of
 * /v3/watch over PREFIX/locks/ whose reply is a stream, one JSON object a
 * line (a response: created, canceled, or a batch of events).  Puts are
 * filtered out on the server; a DELETE (etcdctl del, a revoked or expired
 * lease, our own revokes) reports its key's lock through be->gone, and the
 * lock layer ends the lock whose key it was.  The stream only makes a
 * removal known sooner: the keepalives keep the locks and find an expired
 * lease without it.  So when it breaks (a member down, garbage, a reset)
 * nothing is lost: it is made again after a back-off, at the member the
 * backend's POSTs go to (or the next), from the revision after the last
 * one seen, and the server replays what happened meanwhile.  Where that
 * revision is compacted, removals may have gone unseen: gone(NULL) makes
 * every lock check its key.
 */

/* One response, at most: "fragment" splits a revision's events at the
 * server's --max-request-bytes (1.5 MiB by default), base64 and JSON make
 * that less than 4 MiB. */
#define WATCH_LINE_MAX (4u << 20)
/* What an error page or a stray answer may say, for the log. */
#define WATCH_ERR_BODY 512u
/* From the POST to "created". */
#define WATCH_CREATE_WAIT LW_SEC(5)
/* A stream is made again after this long: a member that stopped (SIGSTOP,
 * a partition) keeps the connection and says nothing, and the next stream
 * resumes where this one was. */
#define WATCH_RENEW LW_SEC(60)
/* A stream that lasted this long works: the back-off starts again from the
 * first wait, and a failure after it is told again.  (A member may answer
 * "created" and then garbage.) */
#define WATCH_STEADY LW_SEC(10)
#define WATCH_BACKOFF_FIRST LW_MSEC(100)
#define WATCH_BACKOFF_MAX LW_SEC(10)

enum watch_wait { WW_NONE, WW_CREATED, WW_STEADY, WW_RENEW, WW_BACKOFF };

struct watch {
	struct etcd_backend *eb;
	struct lw__http_pool pool;   /* its own place: never a request's */
	struct lw__http_req http;
	char *body;
	struct lw__timer timer;      /* what WAIT says */
	enum watch_wait wait;
	bool reserved;               /* TIMER's place in the engine's heap */
	struct lw__defer report;     /* GONE, out of curl's callback */
	char *line;                  /* the response being read */
	size_t len, cap;
	struct lw__id *gone;         /* removed, to report at the next turn */
	size_t ngone, gone_cap;
	bool gone_all;               /* removals may have gone unseen */
	int64_t from;                /* the next stream starts here; 0: now */
	unsigned member;             /* of the stream */
	int64_t backoff;
	bool created;                /* this stream's "created" came ... */
	int64_t created_at;          /* ... then */
	bool again;                  /* this stream ended, to be made again at once */
	bool first;                  /* no stream was made yet */
	bool broken;                 /* a failure was told; quiet until it works */
	char why[200];               /* what ended the stream */
};

static void watch_post(struct watch *w);

static void watch_why(struct watch *w, const char *fmt, ...) LW_PRINTF(2, 3);

static void watch_why(struct watch *w, const char *fmt, ...)
{
	va_list ap;

	if (w->why[0])
		return; /* the first reason stands */
	va_start(ap, fmt);
	vsnprintf(w->why, sizeof(w->why), fmt, ap);
	va_end(ap);
	lw__sanitize(w->why);
}

static void watch_report(struct lw__defer *d)
{
	struct watch *w = LW_CONTAINER_OF(d, struct watch, report);
	struct lw__backend *be = w->eb->be;
	struct lw__id *gone = w->gone;
	size_t n = w->ngone;
	bool all = w->gone_all;

	/* GONE ends locks, whose releases start requests: what the stream
	 * brings meanwhile goes into a list of its own, for the next turn */
	w->gone = NULL;
	w->ngone = w->gone_cap = 0;
	w->gone_all = false;
	if (all)
		be->gone(be->gone_data, NULL);
	for (size_t i = 0; i < n; i++)
		be->gone(be->gone_data, &gone[i]);
	free(gone);
}

static void watch_note_gone(struct watch *w, const struct lw__id *id)
{
	if (lw__grow(&w->gone, &w->gone_cap, w->ngone, sizeof(*w->gone), 16) < 0)
		w->gone_all = true; /* out of memory: every lock checks */
	else
		w->gone[w->ngone++] = *id;
}

static void watch_wait(struct watch *w, enum watch_wait what, int64_t when)
{
	w->wait = what;
	lw__timer_start(w->eb->be->engine, &w->timer, when);
}

/* "created" came: the stream is judged steady, then renewed. */
static void watch_created(struct watch *w)
{
	if (w->wait != WW_CREATED)
		return;
	w->created_at = lw__now_boot();
	watch_wait(w, WW_STEADY, w->created_at + WATCH_STEADY);
}

static void watch_steady(struct watch *w)
{
	const struct lw__endpoint *ep = &w->eb->cl.ep[w->member];

	if (w->broken)
		lw__notice(w->eb->be->log, "etcd watch on %s:%d works again", ep->host, ep->port);
	w->broken = false;
	w->backoff = WATCH_BACKOFF_FIRST;
}

/* One response of the stream; false when the stream is over. */
static bool watch_response(struct watch *w, const char *text, size_t len)
{
	struct etcd_backend *eb = w->eb;
	struct lw__etcd_reply rep;
	char why[160];
	int64_t last = 0;
	bool go_on = false;

	rep.prefix = eb->cl.prefix;
	rep.prefix_len = eb->cl.prefix_len;
	if (lw__etcd_reply_parse(text, len, &rep, why, sizeof(why)) < 0) {
		watch_why(w, "%s", why);
	} else if (rep.error[0]) {
		watch_why(w, "%s", rep.error);
	} else if (rep.canceled && rep.compact_revision > 0) {
		/* what came after FROM is gone from the server's history */
		watch_why(w, "revisions before %" PRId64 " are compacted", rep.compact_revision);
		w->from = rep.compact_revision;
		w->gone_all = true;
		w->again = true;
	} else if (rep.canceled) {
		watch_why(w, "the server cancelled the watch");
	} else if (rep.outside) {
		watch_why(w, "an event of a key outside %s", eb->prefix);
	} else {
		if (rep.created) {
			w->created = true;
			/* a stream made without a revision starts after this one;
			 * a lock held before it was made checks its key once */
			if (!w->from)
				w->from = rep.revision + 1;
			if (w->first)
				w->gone_all = true;
			w->first = false;
			watch_created(w);
		}
		for (size_t i = 0; i < rep.nkvs; i++) {
			last = LW_MAX(last, rep.kvs[i].mod_revision);
			watch_note_gone(w, &rep.kvs[i].id);
		}
		/* the events of a revision may be cut into fragments: a stream
		 * broken between them starts at that revision again */
		if (rep.nkvs && last > 0)
			w->from = LW_MAX(w->from, rep.fragment ? last : last + 1);
		go_on = true;
	}
	lw__etcd_reply_fini(&rep);
	if (w->ngone || w->gone_all)
		lw__defer(eb->be->engine, &w->report, watch_report);
	return go_on;
}

/* Room for N bytes of a response, doubling from 4 KiB. */
static bool watch_room(struct watch *w, size_t n)
{
	size_t cap = LW_MAX(w->cap, (size_t)4096);
	char *p;

	while (cap < n)
		cap *= 2;
	p = realloc(w->line, cap);
	if (!p)
		return false;
	w->line = p;
	w->cap = cap;
	return true;
}

/* The stream's bytes, inside curl: whole lines are read at once, the rest
 * kept for the next bytes, a line no longer than one response can be. */
static bool watch_data(struct lw__http_req *r, const char *data, size_t len)
{
	struct watch *w = LW_CONTAINER_OF(r, struct watch, http);

	while (len) {
		const char *nl = memchr(data, '\n', len);
		size_t take = nl ? (size_t)(nl - data) : len;

		if (w->len + take > WATCH_LINE_MAX) {
			watch_why(w, "a watch response over %u bytes", WATCH_LINE_MAX);
			return false;
		}
		if (w->len + take > w->cap && !watch_room(w, w->len + take)) {
			watch_why(w, "out of memory");
			return false;
		}
		memcpy(w->line + w->len, data, take);
		w->len += take;
		data += take + (nl != NULL);
		len -= take + (nl != NULL);
		if (!nl)
			break;
		if (w->len && !watch_response(w, w->line, w->len))
			return false;
		w->len = 0;
	}
	return true;
}

static void watch_done(struct lw__http_req *r)
{
	struct watch *w = LW_CONTAINER_OF(r, struct watch, http);
	struct etcd_backend *eb = w->eb;
	const struct lw__endpoint *ep = &eb->cl.ep[w->member];
	bool renewed = w->wait == WW_RENEW && r->res == -ECANCELED && !w->why[0];
	char msg[WATCH_ERR_BODY + 1] = "";

	lw__timer_stop(eb->be->engine, &w->timer);
	if (w->wait == WW_RENEW || (w->created && lw__now_boot() - w->created_at >= WATCH_STEADY))
		watch_steady(w);
	w->wait = WW_NONE;
	if (renewed || w->again) {
		/* due, or compacted: at once, the same member */
		if (w->again)
			lw__notice(eb->be->log, "etcd watch on %s:%d: %s; every lock checks its key",
				   ep->host, ep->port, w->why);
		watch_post(w);
		return;
	}
	if (r->res < 0)
		watch_why(w, "%s", r->err);
	else if (r->status >= 200 && r->status <= 299)
		watch_why(w, "the stream ended");
	if (!w->why[0]) {
		if (r->resp)
			lw__etcd_error_message(r->resp, r->resp_len, msg, sizeof(msg));
		watch_why(w, "%ld%s%s", r->status, msg[0] ? ": " : "",
			  msg[0] ? msg : " (not an etcd v3 gateway?)");
	}
	/* told once: the member after is tried quietly until one works */
	if (!w->broken)
		lw__warn(eb->be->log, "etcd watch on %s:%d failed: %s; the locks stay kept "
			 "by their keepalives, and removals are seen once it works again",
			 ep->host, ep->port, w->why);
	else
		lw__dbg(eb->be->log, "etcd watch on %s:%d failed: %s", ep->host, ep->port, w->why);
	w->broken = true;
	/* the member the backend's POSTs found to answer, else the next */
	w->member = eb->cl.cur != w->member ? eb->cl.cur : (w->member + 1) % eb->cl.n;
	watch_wait(w, WW_BACKOFF, lw__now_boot() + w->backoff);
	w->backoff = LW_MIN(2 * w->backoff, WATCH_BACKOFF_MAX);
}

static void watch_timer(struct lw__timer *t)
{
	struct watch *w = LW_CONTAINER_OF(t, struct watch, timer);

	switch (w->wait) {
	case WW_BACKOFF:
		w->wait = WW_NONE;
		watch_post(w);
		break;
	case WW_CREATED:
		watch_why(w, "no answer in %lld s", (long long)(WATCH_CREATE_WAIT / LW_SEC(1)));
		lw__http_cancel(&w->http);
		break;
	case WW_STEADY:
		watch_steady(w);
		watch_wait(w, WW_RENEW, w->created_at + WATCH_RENEW);
		break;
	case WW_RENEW:
		lw__http_cancel(&w->http);
		break;
	case WW_NONE:
		break;
	}
}

/* The POST that makes the stream, from FROM, at MEMBER. */
static void watch_post(struct watch *w)
{
	struct etcd_backend *eb = w->eb;
	struct lw__http_req *r = &w->http;
	char from[48] = "";
	int64_t now = lw__now_boot();

	lw__http_req_fini(r);
	memset(r, 0, sizeof(*r));
	free(w->body);
	if (w->from)
		snprintf(from, sizeof(from), ",\"start_revision\":\"%" PRId64 "\"", w->from);
	if (asprintf(&w->body, "{\"create_request\":{%s,\"filters\":[\"NOPUT\"],"
		     "\"fragment\":true%s}}", eb->range, from) < 0)
		w->body = NULL;
	w->len = 0;
	w->why[0] = '\0';
	w->created = w->again = false;
	r->pool = &w->pool;
	r->method = "POST";
	if (w->body && asprintf(&r->url, "%s/v3/watch", eb->cl.ep[w->member].base) < 0)
		r->url = NULL; /* the HTTP layer fails a request without a URL */
	r->path = "/v3/watch";
	r->body = w->body;
	r->body_len = w->body ? strlen(w->body) : 0;
	r->on_body = watch_data;
	r->max_err_body = WATCH_ERR_BODY;
	/* the renewal ends it first; curl's bound is only a backstop */
	r->deadline = now + WATCH_RENEW + WATCH_CREATE_WAIT;
	r->attempt_timeout = WATCH_RENEW + WATCH_CREATE_WAIT;
	r->attempts_max = 1;
	r->done = watch_done;
	watch_wait(w, WW_CREATED, now + WATCH_CREATE_WAIT);
	lw__http_start(r);
}

static void watch_free(struct watch *w)
{
	struct lw__engine *e = w->eb->be->engine;

	lw__http_pool_fini(&w->pool);
	lw__timer_stop(e, &w->timer);
	lw__defer_cancel(e, &w->report);
	if (w->reserved)
		lw__engine_reserve(e, -1);
	lw__http_req_fini(&w->http);
	free(w->body);
	free(w->line);
	free(w->gone);
	free(w);
}

static int eb_watch(struct lw__backend *be)
{
	struct etcd_backend *eb = priv(be);
	struct watch *w;

	if (eb->watch)
		return 0;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->eb = eb;
	w->first = true;
	w->member = eb->cl.cur;
	w->backoff = WATCH_BACKOFF_FIRST;
	lw__timer_init(&w->timer, watch_timer);
	lw__http_pool_init(&w->pool, be->env->http);
	lw__http_pool_set_max(&w->pool, 1);
	w->pool.ca_file = be->opts.ca_file;
	w->pool.insecure = be->opts.tls_insecure;
	w->reserved = lw__engine_reserve(be->engine, 1) == 0;
	if (!w->reserved) {
		watch_free(w);
		return -ENOMEM;
	}
	eb->watch = w;
	watch_post(w);
	return 0;
}

/* -------------------------------------------------------------- vtable */

static void eb_start(struct lw__backend *be, struct lw__breq *req)
{
	struct etcd_backend *eb = priv(be);
	struct etcd_breq *er = ereq(req);
	char key[4096 + 128], hex[LW_ID_HEX + 1];
	int n;

	lw__list_init(&er->link);
	if (req->op == LW__BOP_KEEPALIVE) {
		if (!req->lease) {
			fail(er, -EINVAL, "without a lease", 0);
			complete_later(er);
			return;
		}
		lw__list_add_tail(&eb->due, &er->link);
		flush_due(eb);
		return;
	}
	lw__id_hex(&req->id, hex);
	n = snprintf(key, sizeof(key), "%s%s", eb->prefix, hex);
	er->key64 = n > 0 && (size_t)n < sizeof(key) ? b64(key, (size_t)n) : NULL;
	if (lw__etcd_call_init(&er->call, &eb->cl, req->deadline, req_answered, req_failed) < 0 ||
	    !er->key64) {
		fail(er, -ENOMEM, "out of memory", 0);
		complete_later(er);
		return;
	}
	switch (req->op) {
	case LW__BOP_CREATE:
		next_step(er, ST_GRANT);
		break;
	case LW__BOP_LIST:
		next_step(er, ST_LIST);
		break;
	case LW__BOP_READ:
		next_step(er, ST_READ);
		break;
	case LW__BOP_EXISTS:
	case LW__BOP_INIT:
		/* etcd needs no layout: init checks that the cluster answers */
		next_step(er, ST_COUNT);
		break;
	case LW__BOP_REMOVE:
		next_step(er, req->lease ? ST_REVOKE : ST_LOOKUP);
		break;
	case LW__BOP_KEEPALIVE:
		break;
	}
}

static void eb_cancel(struct lw__backend *be, struct lw__breq *req)
{
	struct etcd_breq *er = ereq(req);
	struct batch *b = er->batch;

	if (req->op != LW__BOP_KEEPALIVE) {
		lw__etcd_call_cancel(&er->call);
		return;
	}
	if (!lw__list_linked(&er->link))
		return; /* it has its result */
	/* out of its batch, or of the keepalives due; a batch left empty
	 * has nobody to answer */
	lw__list_del(&er->link);
	er->batch = NULL;
	fail(er, -ECANCELED, "cancelled", 0);
	complete_later(er);
	if (b && lw__list_empty(&b->members))
		lw__etcd_call_cancel(&b->call);
}

static void eb_req_fini(struct lw__breq *req)
{
	struct etcd_breq *er = ereq(req);

	if (req->op != LW__BOP_KEEPALIVE)
		lw__etcd_call_fini(&er->call);
	free(er->key64);
}

static void eb_configure(struct lw__backend *be)
{
	struct watch *w = priv(be)->watch;

	lw__backend_configure_pool(be, &priv(be)->cl.pool);
	if (w) {
		w->pool.ca_file = be->opts.ca_file;
		w->pool.insecure = be->opts.tls_insecure;
	}
	flush_due(priv(be));
}

static void eb_close(struct lw__backend *be)
{
	struct etcd_backend *eb = priv(be);

	/* at loop shutdown: what is still under way is dropped unanswered */
	lw__defer_cancel(be->engine, &eb->flush);
	if (eb->watch)
		watch_free(eb->watch);
	lw__http_pool_fini(&eb->cl.pool);
	while (!lw__list_empty(&eb->batches)) {
		struct batch *b = LW_CONTAINER_OF(eb->batches.next, struct batch, link);

		lw__timer_stop(be->engine, &b->call.timer);
		lw__defer_cancel(be->engine, &b->call.defer);
		lw__list_del(&b->link);
		lw__etcd_call_fini(&b->call);
		free(b);
	}
	free(eb->prefix);
	free(eb->range);
	free(eb);
}

/* "prefix/locks/" and the range that lists it. */
static int make_prefix(struct etcd_backend *eb, const char *path)
{
	char *start, *end;
	size_t n;
	int r;

	if (asprintf(&eb->prefix, "%s%slocks/", path, *path ? "/" : "") < 0) {
		eb->prefix = NULL;
		return -ENOMEM;
	}
	n = strlen(eb->prefix);
	eb->cl.prefix = eb->prefix;
	eb->cl.prefix_len = n;
	start = b64(eb->prefix, n);
	/* the range's end: the prefix with its last byte ('/') one higher */
	eb->prefix[n - 1]++;
	end = b64(eb->prefix, n);
	eb->prefix[n - 1]--;
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
		be->open_err = "etcd authentication is not supported: leave the user "
			       "name and password out of the URL";
		return -ENOTSUP;
	}
	r = lw__http_get(&be->env->http, be->engine, be->log);
	if (r < 0)
		return r;
	eb = calloc(1, sizeof(*eb));
	if (!eb)
		return -ENOMEM;
	eb->be = be;
	eb->cl.engine = be->engine;
	eb->cl.log = be->log;
	eb->cl.ep = url->ep;
	eb->cl.n = (unsigned)url->nep;
	lw__list_init(&eb->due);
	lw__list_init(&eb->batches);
	for (size_t i = 0; i < url->nep && len < sizeof(eb->where); i++) {
		bool v6 = strchr(url->ep[i].host, ':') != NULL;

		len += (size_t)snprintf(eb->where + len, sizeof(eb->where) - len, "%s%s%s%s:%d",
					i ? "," : "", v6 ? "[" : "", url->ep[i].host,
					v6 ? "]" : "", url->ep[i].port);
	}
	lw__http_pool_init(&eb->cl.pool, be->env->http);
	be->priv = eb;
	be->where = eb->where;
	r = make_prefix(eb, url->path);
	if (r < 0) {
		eb_close(be);
		return r;
	}
	lw__backend_configure_pool(be, &eb->cl.pool);
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
	.watch = eb_watch,
};
