/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * One walk over a gateway reply picks out what any of the backend's
 * requests needs; the shapes nest (a keepalive's "result", a txn's
 * "responses"), so the same member function reads each level.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/base64.h"
#include "backend/etcd-reply.h"
#include "util/json.h"

struct parse {
	struct lw__etcd_reply *r;
	char *keytext;   /* a key's base64, as far as a lock key reaches */
	size_t keytext_cap;
	uint8_t *key;    /* ... decoded */
	size_t key_cap;
	char *valtext;   /* the first value's base64, as far as a record reaches */
	size_t valtext_cap;
	size_t kvs_cap;
};

static int reply_member(struct lw__json *c, const char *name, int depth, void *arg);

/* An integer member; null counts as left out. */
static int opt_int(struct lw__json *c, int64_t *v)
{
	if (lw__json_peek(c) == 'n')
		return lw__json_literal(c, "null");
	return lw__json_int(c, v);
}

static int add_kv(struct lw__json *c, struct parse *p, const struct lw__etcd_kv *kv)
{
	struct lw__etcd_reply *r = p->r;

	if (lw__grow(&r->kvs, &p->kvs_cap, r->nkvs, sizeof(*r->kvs), 16) < 0) {
		snprintf(c->why, c->whysize, "out of memory");
		return c->err = -ENOMEM;
	}
	r->kvs[r->nkvs++] = *kv;
	return 0;
}

/* Decodes base64 TEXT into DST (CAP bytes).  Text that did not fit is
 * decoded as far as it was kept; text that is not ASCII is no base64. */
static int decode(struct lw__json *c, const struct lw__json_str *text, void *dst,
		  size_t cap, size_t *n, const char *what)
{
	bool long_ok = text->over && text->len + 1 == text->cap;

	if ((text->over && !long_ok) ||
	    lw__base64_decode(text->s, long_ok ? text->len / 4 * 4 : text->len, dst, cap,
			      n) < 0)
		return lw__json_bad(c, "%s that is not base64", what);
	return 0;
}

/* Sorts a key out: a lock of ours, another key under the prefix, or one
 * outside it.  A key too long for a lock is decoded only as far as one
 * reaches. */
static int add_key(struct lw__json *c, struct parse *p, const struct lw__json_str *text,
		   struct lw__etcd_kv *kv)
{
	struct lw__etcd_reply *r = p->r;
	size_t n;

	if (decode(c, text, p->key, p->key_cap, &n, "a key") < 0)
		return c->err;
	r->nkeys++;
	if (n < r->prefix_len || memcmp(p->key, r->prefix, r->prefix_len) != 0) {
		r->outside++;
		return 0;
	}
	if (text->over || n - r->prefix_len != LW_ID_HEX ||
	    !lw__id_parse((const char *)p->key + r->prefix_len, LW_ID_HEX, &kv->id))
		return 0;
	return add_kv(c, p, kv);
}

struct kv {
	struct parse *p;
	struct lw__etcd_kv kv;
	struct lw__json_str key;
	struct lw__json_str value;
	bool has_key;
	bool has_value;
	bool first;
};

static int kv_member(struct lw__json *c, const char *name, int depth, void *arg)
{
	struct kv *k = arg;

	if (!name)
		return lw__json_value(c, depth);
	if (strcmp(name, "key") == 0) {
		if (k->has_key)
			return lw__json_bad(c, "two keys in one kv");
		k->has_key = true;
		if (lw__json_peek(c) != '"')
			return lw__json_bad(c, "a key that is not a string");
		return lw__json_string(c, &k->key);
	}
	if (strcmp(name, "value") == 0) {
		if (lw__json_peek(c) != '"')
			return lw__json_bad(c, "a value that is not a string");
		k->has_value = true;
		return lw__json_string(c, k->first ? &k->value : NULL);
	}
	if (strcmp(name, "create_revision") == 0)
		return opt_int(c, &k->kv.create_revision);
	if (strcmp(name, "mod_revision") == 0)
		return opt_int(c, &k->kv.mod_revision);
	if (strcmp(name, "lease") == 0)
		return opt_int(c, &k->kv.lease);
	return lw__json_value(c, depth);
}

static int kv_item(struct lw__json *c, int depth, void *arg)
{
	struct parse *p = arg;
	struct lw__etcd_reply *r = p->r;
	struct kv k = {
		.p = p,
		.key = { .s = p->keytext, .cap = p->keytext_cap },
		.value = { .s = p->valtext, .cap = p->valtext_cap },
		.first = r->nkeys == 0,
	};
	size_t nkvs = r->nkvs;

	if (lw__json_object(c, depth, kv_member, &k) < 0)
		return c->err;
	if (!k.has_key)
		return lw__json_bad(c, "a kv without a key");
	if (add_key(c, p, &k.key, &k.kv) < 0)
		return c->err;
	if (!k.first || r->nkvs == nkvs || !k.has_value)
		return 0;
	/* a value too long for a record is kept only as far as one reaches:
	 * the record decoder refuses it */
	if (decode(c, &k.value, r->value, sizeof(r->value), &r->value_len, "a value") < 0)
		return c->err;
	r->has_value = true;
	return 0;
}

/* timetolive's "keys": bare base64 strings */
static int key_item(struct lw__json *c, int depth, void *arg)
{
	struct parse *p = arg;
	struct lw__json_str key = { .s = p->keytext, .cap = p->keytext_cap };
	struct lw__etcd_kv kv = { .lease = p->r->id };

	if (lw__json_peek(c) != '"')
		return lw__json_bad(c, "a key that is not a string");
	if (lw__json_string(c, &key) < 0)
		return c->err;
	return add_key(c, p, &key, &kv);
}

/* A watch event: {"type": "DELETE", "kv": {...}}; PUT, protobuf's zero
 * value, comes without a type.  Only a DELETE's key is kept. */
struct event {
	struct parse *p;
	bool has_kv;
	bool is_delete;
};

static int event_member(struct lw__json *c, const char *name, int depth, void *arg)
{
	struct event *ev = arg;
	struct lw__json_str type;
	char text[16];

	if (!name)
		return lw__json_value(c, depth);
	if (strcmp(name, "type") == 0) {
		type = (struct lw__json_str){ .s = text, .cap = sizeof(text) };
		if (lw__json_peek(c) != '"')
			return lw__json_bad(c, "an event type that is not a string");
		if (lw__json_string(c, &type) < 0)
			return c->err;
		ev->is_delete = !type.over && strcmp(text, "DELETE") == 0;
		return 0;
	}
	if (strcmp(name, "kv") == 0) {
		if (ev->has_kv)
			return lw__json_bad(c, "two kvs in one event");
		ev->has_kv = true;
		return kv_item(c, depth, ev->p);
	}
	return lw__json_value(c, depth);
}

static int event_item(struct lw__json *c, int depth, void *arg)
{
	struct parse *p = arg;
	struct lw__etcd_reply *r = p->r;
	struct event ev = { .p = p };
	size_t nkvs = r->nkvs;

	if (lw__json_object(c, depth, event_member, &ev) < 0)
		return c->err;
	if (!ev.has_kv)
		return lw__json_bad(c, "an event without a kv");
	if (ev.is_delete) {
		r->ndeletes++;
	} else {
		r->nputs++;
		r->nkvs = nkvs; /* a put removes nothing */
	}
	return 0;
}

static int header_member(struct lw__json *c, const char *name, int depth, void *arg)
{
	struct lw__etcd_reply *r = arg;

	if (name && strcmp(name, "revision") == 0)
		return opt_int(c, &r->revision);
	return lw__json_value(c, depth);
}

static int nested_reply(struct lw__json *c, int depth, void *arg)
{
	return lw__json_object(c, depth, reply_member, arg);
}

static int array(struct lw__json *c, int depth,
		 int (*item)(struct lw__json *, int, void *), void *arg)
{
	if (lw__json_peek(c) == 'n')
		return lw__json_literal(c, "null");
	if (depth > LW__JSON_MAX_DEPTH)
		return lw__json_bad(c, "nested deeper than %d", LW__JSON_MAX_DEPTH);
	if (lw__json_expect(c, '[') < 0)
		return c->err;
	return lw__json_items(c, ']', item, depth + 1, arg);
}

/* A stream's error: {"grpc_code": 14, "message": "...", ...} */
static int error_member(struct lw__json *c, const char *name, int depth, void *arg)
{
	struct lw__json_str *msg = arg;

	if (name && strcmp(name, "message") == 0 && lw__json_peek(c) == '"')
		return lw__json_string(c, msg);
	return lw__json_value(c, depth);
}

static int error_value(struct lw__json *c, int depth, struct lw__etcd_reply *r)
{
	struct lw__json_str msg = { .s = r->error, .cap = sizeof(r->error) };
	int res;

	if (lw__json_peek(c) == '"')
		res = lw__json_string(c, &msg);
	else
		res = lw__json_object(c, depth, error_member, &msg);
	if (!r->error[0])
		snprintf(r->error, sizeof(r->error), "an error without a message");
	lw__sanitize(r->error);
	return res;
}

static int reply_member(struct lw__json *c, const char *name, int depth, void *arg)
{
	struct parse *p = arg;
	struct lw__etcd_reply *r = p->r;

	if (!name)
		return lw__json_value(c, depth);
	if (strcmp(name, "header") == 0)
		return lw__json_object(c, depth, header_member, r);
	if (strcmp(name, "result") == 0 || strcmp(name, "response_range") == 0)
		return lw__json_object(c, depth, reply_member, p);
	if (strcmp(name, "responses") == 0)
		return array(c, depth, nested_reply, p);
	if (strcmp(name, "kvs") == 0)
		return array(c, depth, kv_item, p);
	if (strcmp(name, "events") == 0)
		return array(c, depth, event_item, p);
	if (strcmp(name, "created") == 0)
		return lw__json_bool(c, &r->created);
	if (strcmp(name, "canceled") == 0)
		return lw__json_bool(c, &r->canceled);
	if (strcmp(name, "fragment") == 0)
		return lw__json_bool(c, &r->fragment);
	if (strcmp(name, "compact_revision") == 0)
		return opt_int(c, &r->compact_revision);
	if (strcmp(name, "keys") == 0)
		return array(c, depth, key_item, p);
	if (strcmp(name, "ID") == 0)
		return opt_int(c, &r->id);
	if (strcmp(name, "TTL") == 0)
		return opt_int(c, &r->ttl);
	if (strcmp(name, "count") == 0)
		return opt_int(c, &r->count);
	if (strcmp(name, "deleted") == 0)
		return opt_int(c, &r->deleted);
	if (strcmp(name, "succeeded") == 0)
		return lw__json_bool(c, &r->succeeded);
	if (strcmp(name, "error") == 0)
		return error_value(c, depth, r);
	return lw__json_value(c, depth);
}

int lw__etcd_reply_parse(const char *buf, size_t len, struct lw__etcd_reply *r,
			 char *why, size_t whysize)
{
	struct parse p = { .r = r };
	struct lw__json c;
	int ch;

	r->kvs = NULL;
	r->nkvs = r->nkeys = r->outside = 0;
	r->revision = r->id = r->ttl = r->count = r->deleted = 0;
	r->succeeded = r->has_value = false;
	r->created = r->canceled = r->fragment = false;
	r->compact_revision = 0;
	r->ndeletes = r->nputs = 0;
	r->value_len = 0;
	r->error[0] = '\0';
	p.key_cap = r->prefix_len + LW_ID_HEX + 1;
	p.keytext_cap = lw__base64_len(p.key_cap) + 1;
	p.valtext_cap = lw__base64_len(sizeof(r->value)) + 1;
	p.key = malloc(p.key_cap + p.keytext_cap + p.valtext_cap);
	if (!p.key) {
		snprintf(why, whysize, "out of memory");
		return -ENOMEM;
	}
	p.keytext = (char *)p.key + p.key_cap;
	p.valtext = p.keytext + p.keytext_cap;
	lw__json_init(&c, buf, len, "reply", why, whysize);
	ch = lw__json_begin(&c);
	if (ch == '{')
		lw__json_object(&c, 0, reply_member, &p);
	else if (ch >= 0)
		lw__json_bad(&c, "expected an object");
	lw__json_finish(&c);
	free(p.key);
	return c.err;
}

void lw__etcd_reply_fini(struct lw__etcd_reply *r)
{
	free(r->kvs);
	r->kvs = NULL;
	r->nkvs = 0;
}

static int error_body_member(struct lw__json *c, const char *name, int depth, void *arg)
{
	struct lw__json_str *msg = arg;

	/* "message" and "error" say the same; either will do.  A stream's
	 * error is an object with its own "message". */
	if (!name || (strcmp(name, "message") != 0 && strcmp(name, "error") != 0) ||
	    msg->len)
		return lw__json_value(c, depth);
	if (lw__json_peek(c) == '{')
		return lw__json_object(c, depth, error_member, msg);
	if (lw__json_peek(c) == '"')
		return lw__json_string(c, msg);
	return lw__json_value(c, depth);
}

void lw__etcd_error_message(const char *buf, size_t len, char *msg, size_t size)
{
	struct lw__json_str s = { .s = msg, .cap = size };
	char why[16];
	struct lw__json c;

	if (size)
		msg[0] = '\0';
	lw__json_init(&c, buf, len, "reply", why, sizeof(why));
	/* the gateway may append a trailer to the body: stop at the object's end */
	if (lw__json_peek(&c) == '{' && lw__json_object(&c, 0, error_body_member, &s) < 0 &&
	    size)
		msg[0] = '\0';
	if (size)
		lw__sanitize(msg);
}
