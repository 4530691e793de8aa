/* SPDX-License-Identifier: BSD-2-Clause */
#include "config.h"

#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "util/internal.h"
#include "format/record.h"

#define MAX_DEPTH 8

/* ------------------------------------------------------------ encode */

struct fixbuf {
	char *p;
	size_t len;
	size_t cap;
};

static int fix_write(void *data, const char *buf, size_t len)
{
	struct fixbuf *fb = data;

	if (len > fb->cap - fb->len)
		return -1;
	memcpy(fb->p + fb->len, buf, len);
	fb->len += len;
	return 0;
}

static int pack_str(msgpack_packer *pk, const char *s)
{
	size_t n = strlen(s);

	if (n > LW_RECORD_STR_MAX)
		return -1;
	return msgpack_pack_str(pk, n) || msgpack_pack_str_body(pk, s, n);
}

static int pack_key(msgpack_packer *pk, const char *key)
{
	return pack_str(pk, key);
}

static bool str_ok(const char *s)
{
	return strlen(s) <= LW_RECORD_STR_MAX;
}

int lw__record_encode(const struct lw__record *r, void *buf, size_t size)
{
	struct fixbuf fb = { .p = buf, .cap = size };
	msgpack_packer pk;
	int bad;

	if (!str_ok(r->hostname) || !str_ok(r->username) || !str_ok(r->boot_id) ||
	    (r->purpose && !str_ok(r->purpose)))
		return -EINVAL;
	msgpack_packer_init(&pk, &fb, fix_write);
	bad = msgpack_pack_map(&pk, 13 + (r->purpose != NULL) + 2 * (r->pgid > 0)) ||
	      pack_key(&pk, "v") || msgpack_pack_int(&pk, 1) ||
	      pack_key(&pk, "time") || msgpack_pack_int64(&pk, r->time) ||
	      pack_key(&pk, "exclusive") ||
	      (r->exclusive ? msgpack_pack_true(&pk) : msgpack_pack_false(&pk)) ||
	      pack_key(&pk, "hostname") || pack_str(&pk, r->hostname) ||
	      pack_key(&pk, "username") || pack_str(&pk, r->username) ||
	      pack_key(&pk, "pid") || msgpack_pack_int64(&pk, r->pid) ||
	      pack_key(&pk, "uid") || msgpack_pack_int64(&pk, r->uid) ||
	      pack_key(&pk, "gid") || msgpack_pack_int64(&pk, r->gid) ||
	      pack_key(&pk, "boot_id") || pack_str(&pk, r->boot_id) ||
	      pack_key(&pk, "pid_ns") || msgpack_pack_uint64(&pk, r->pid_ns) ||
	      pack_key(&pk, "pid_start") || msgpack_pack_uint64(&pk, r->pid_start) ||
	      pack_key(&pk, "stale_timeout") ||
	      msgpack_pack_int64(&pk, r->stale_timeout) ||
	      pack_key(&pk, "nonce") || msgpack_pack_bin(&pk, LW_RECORD_NONCE) ||
	      msgpack_pack_bin_body(&pk, r->nonce, LW_RECORD_NONCE) ||
	      (r->purpose && (pack_key(&pk, "purpose") || pack_str(&pk, r->purpose))) ||
	      (r->pgid > 0 && (pack_key(&pk, "pgid") || msgpack_pack_int64(&pk, r->pgid) ||
			       pack_key(&pk, "pgid_start") ||
			       msgpack_pack_uint64(&pk, r->pgid_start)));
	return bad ? -ENOSPC : (int)fb.len;
}

/* ------------------------------------------------------------ decode */

/*
 * msgpack-c allocates an array or map as soon as it reads its header and
 * believes the count it finds there, so a 10-byte file claiming 4 billion
 * elements asks for ~100 GB.  This walk checks the shape first, without
 * allocating: every count must fit in the bytes that remain (each element
 * takes at least one), nesting is bounded, and exactly one object fills
 * the buffer.
 */
struct scan {
	const uint8_t *p;
	size_t len;
	size_t pos;
};

static int need(struct scan *s, uint64_t n)
{
	if (n > s->len - s->pos)
		return -1;
	return 0;
}

static uint64_t be(struct scan *s, int n)
{
	uint64_t v = 0;

	for (int i = 0; i < n; i++)
		v = v << 8 | s->p[s->pos++];
	return v;
}

static int skip(struct scan *s, int depth);

static int skip_n(struct scan *s, uint64_t n, int depth)
{
	if (depth > MAX_DEPTH || need(s, n))
		return -1;
	while (n--)
		if (skip(s, depth))
			return -1;
	return 0;
}

static int skip(struct scan *s, int depth)
{
	static const uint8_t fixext[] = { 1, 2, 4, 8, 16 };
	uint8_t c;
	uint64_t n;

	if (need(s, 1))
		return -1;
	c = s->p[s->pos++];
	if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3)
		return 0;
	if (c >= 0x80 && c <= 0x8f)
		return skip_n(s, 2u * (c & 0xf), depth + 1);
	if (c >= 0x90 && c <= 0x9f)
		return skip_n(s, c & 0xf, depth + 1);
	if (c >= 0xa0 && c <= 0xbf)
		return need(s, c & 0x1f) ? -1 : (s->pos += c & 0x1f, 0);
	switch (c) {
	case 0xc4: case 0xc5: case 0xc6: /* bin */
	case 0xd9: case 0xda: case 0xdb: /* str */
	case 0xc7: case 0xc8: case 0xc9: /* ext */ {
		int w = c == 0xc4 || c == 0xc7 || c == 0xd9 ? 1 :
			c == 0xc5 || c == 0xc8 || c == 0xda ? 2 : 4;

		if (need(s, (uint64_t)w))
			return -1;
		n = be(s, w) + (c >= 0xc7 && c <= 0xc9); /* ext: a type byte */
		return need(s, n) ? -1 : (s->pos += n, 0);
	}
	case 0xca: case 0xcb:
	case 0xcc: case 0xcd: case 0xce: case 0xcf:
	case 0xd0: case 0xd1: case 0xd2: case 0xd3:
		n = c == 0xca ? 4 : c == 0xcb ? 8 : 1u << ((c - 0xcc) & 3);
		return need(s, n) ? -1 : (s->pos += n, 0);
	case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:
		n = 1u + fixext[c - 0xd4];
		return need(s, n) ? -1 : (s->pos += n, 0);
	case 0xdc: case 0xdd:
		if (need(s, c == 0xdc ? 2 : 4))
			return -1;
		return skip_n(s, be(s, c == 0xdc ? 2 : 4), depth + 1);
	case 0xde: case 0xdf:
		if (need(s, c == 0xde ? 2 : 4))
			return -1;
		n = be(s, c == 0xde ? 2 : 4);
		return skip_n(s, 2 * n, depth + 1);
	}
	return -1; /* 0xc1 is never used */
}

enum key {
	K_V, K_TIME, K_EXCLUSIVE, K_HOSTNAME, K_USERNAME, K_PID, K_UID, K_GID,
	K_BOOT_ID, K_PID_NS, K_PID_START, K_STALE_TIMEOUT, K_PURPOSE, K_PGID, K_PGID_START,
	K_NONCE, K_COUNT
};

static const char *const key_names[K_COUNT] = {
	"v", "time", "exclusive", "hostname", "username", "pid", "uid", "gid",
	"boot_id", "pid_ns", "pid_start", "stale_timeout", "purpose", "pgid", "pgid_start",
	"nonce",
};

/* optional: older records lack them */
static bool optional(int k)
{
	return k == K_PURPOSE || k == K_PGID || k == K_PGID_START || k == K_NONCE;
}

/* the string fields, in the order of struct lw__record's pointers */
static const enum key str_keys[] = { K_HOSTNAME, K_USERNAME, K_BOOT_ID, K_PURPOSE };

static int find_key(const msgpack_object_str *k)
{
	for (int i = 0; i < K_COUNT; i++)
		if (strlen(key_names[i]) == k->size &&
		    memcmp(key_names[i], k->ptr, k->size) == 0)
			return i;
	return -1;
}

static bool get_i64(const msgpack_object *o, int64_t *v)
{
	if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= INT64_MAX)
		*v = (int64_t)o->via.u64;
	else if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
		*v = o->via.i64;
	else
		return false;
	return true;
}

static bool str_valid(const msgpack_object *o)
{
	return o->type == MSGPACK_OBJECT_STR &&
	       o->via.str.size <= LW_RECORD_STR_MAX &&
	       !memchr(o->via.str.ptr, '\0', o->via.str.size);
}

static int invalid(const char **why, const char *reason)
{
	*why = reason;
	return -LW_EINVALID;
}

static int foreign(const char **why, const char *reason)
{
	*why = reason;
	return -EBADMSG;
}

static int extract(const msgpack_object *root, struct lw__record **out,
		   const char **why)
{
	const msgpack_object *val[K_COUNT] = { 0 };
	size_t strbytes = 0;
	struct lw__record *r;
	char *strs;
	int64_t v;

	if (root->type != MSGPACK_OBJECT_MAP)
		return foreign(why, "not a msgpack map");
	for (uint32_t i = 0; i < root->via.map.size; i++) {
		const msgpack_object_kv *kv = &root->via.map.ptr[i];
		int k;

		if (kv->key.type != MSGPACK_OBJECT_STR)
			return invalid(why, "a key is not a string");
		k = find_key(&kv->key.via.str);
		if (k < 0)
			continue; /* unknown keys belong to newer writers */
		if (val[k])
			return invalid(why, "a key appears twice");
		val[k] = &kv->val;
	}
	if (!val[K_V])
		return foreign(why, "no version key");
	for (int k = 0; k < K_COUNT; k++)
		if (!val[k] && !optional(k))
			return invalid(why, "a required key is missing");
	if (!val[K_PGID] != !val[K_PGID_START])
		return invalid(why, "pgid without pgid_start, or the reverse");
	if (val[K_PGID_START] && val[K_PGID_START]->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
		return invalid(why, "pgid_start is not an unsigned integer");
	if (val[K_NONCE] && (val[K_NONCE]->type != MSGPACK_OBJECT_BIN ||
			     val[K_NONCE]->via.bin.size != LW_RECORD_NONCE))
		return invalid(why, "nonce is not 32 bytes");
	if (!get_i64(val[K_V], &v) || v != 1)
		return invalid(why, "unsupported record version");
	if (val[K_EXCLUSIVE]->type != MSGPACK_OBJECT_BOOLEAN)
		return invalid(why, "exclusive is not a bool");
	if (val[K_PID_NS]->type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
	    val[K_PID_START]->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
		return invalid(why, "pid_ns or pid_start is not an unsigned integer");
	for (size_t i = 0; i < LW_ARRAY_SIZE(str_keys); i++) {
		const msgpack_object *o = val[str_keys[i]];

		if (!o)
			continue;
		if (!str_valid(o))
			return invalid(why, "a string is too long, not a string, or holds NUL");
		strbytes += o->via.str.size + 1;
	}

	r = calloc(1, sizeof(*r) + strbytes);
	if (!r)
		return -ENOMEM;
	if (!get_i64(val[K_TIME], &r->time) ||
	    !get_i64(val[K_STALE_TIMEOUT], &r->stale_timeout) ||
	    !get_i64(val[K_PID], &r->pid) || !get_i64(val[K_UID], &r->uid) ||
	    !get_i64(val[K_GID], &r->gid)) {
		free(r);
		return invalid(why, "a number is not an int64");
	}
	if (r->stale_timeout <= 0 || r->pid <= 0) {
		free(r);
		return invalid(why, "stale_timeout or pid is not positive");
	}
	/* group 1 is init's: kill(-1) would mean every process */
	if (val[K_PGID] && (!get_i64(val[K_PGID], &r->pgid) || r->pgid <= 1 ||
			    r->pgid > INT32_MAX)) {
		free(r);
		return invalid(why, "pgid is not a process group id");
	}
	if (val[K_PGID_START])
		r->pgid_start = val[K_PGID_START]->via.u64;
	if (r->stale_timeout > LW_DURATION_MAX) {
		free(r);
		return invalid(why, "stale_timeout is over 100 years");
	}
	r->exclusive = val[K_EXCLUSIVE]->via.boolean;
	if (val[K_NONCE])
		memcpy(r->nonce, val[K_NONCE]->via.bin.ptr, LW_RECORD_NONCE);
	r->pid_ns = val[K_PID_NS]->via.u64;
	r->pid_start = val[K_PID_START]->via.u64;
	strs = (char *)(r + 1);
	{
		const char **dst[] = { &r->hostname, &r->username, &r->boot_id,
				       &r->purpose };

		for (size_t i = 0; i < LW_ARRAY_SIZE(str_keys); i++) {
			const msgpack_object *o = val[str_keys[i]];

			if (!o)
				continue;
			memcpy(strs, o->via.str.ptr, o->via.str.size);
			strs[o->via.str.size] = '\0';
			*dst[i] = strs;
			strs += o->via.str.size + 1;
		}
	}
	*out = r;
	return 0;
}

int lw__record_decode(const void *buf, size_t len, struct lw__record **out,
		      const char **why)
{
	struct scan s = { .p = buf, .len = len };
	const uint8_t *p = buf;
	msgpack_unpacked u;
	size_t off = 0;
	int r;

	*out = NULL;
	if (len == 0)
		return foreign(why, "empty");
	if (len > LW_RECORD_MAX)
		return foreign(why, "larger than 4096 bytes");
	/* a record is a map: anything else (restic's encrypted lock, whose
	 * first byte is random) is another tool's file, not a broken record */
	if (!((p[0] >= 0x80 && p[0] <= 0x8f) || p[0] == 0xde || p[0] == 0xdf))
		return foreign(why, "not a lockwatch record");
	if (skip(&s, 0))
		return foreign(why, "not msgpack, truncated or nested too deep");
	if (s.pos != len)
		return foreign(why, "trailing bytes after the record");
	msgpack_unpacked_init(&u);
	switch (msgpack_unpack_next(&u, buf, len, &off)) {
	case MSGPACK_UNPACK_SUCCESS:
		r = off == len ? extract(&u.data, out, why)
			       : invalid(why, "trailing bytes after the record");
		break;
	case MSGPACK_UNPACK_NOMEM_ERROR:
		r = -ENOMEM;
		break;
	default:
		r = foreign(why, "not msgpack");
		break;
	}
	msgpack_unpacked_destroy(&u);
	return r;
}
