/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The etcd gateway's reply parser on whatever a server sends back.  It
 * accepts or refuses without crashing or leaking; a refusal gives one
 * printable line; an accepted reply's lock keys, written out again as a
 * range reply, parse back to the same keys, revisions and leases.  The
 * error-body reader gives a printable message (or none) for any input.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>

#include "util/base64.h"
#include "backend/etcd-reply.h"
#include "fuzz.h"

#define PREFIX "backups/locks/"
/* The longest kv as render writes it. */
#define KV_MAX 320

static bool printable(const char *s, size_t size, bool empty_ok)
{
	size_t n = strnlen(s, size);

	if ((n == 0 && !empty_ok) || n == size)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

static size_t render(const struct lw__etcd_reply *r, char *buf)
{
	char *p = buf;

	p += sprintf(p, "{\"header\":{\"revision\":\"%" PRId64 "\"},\"kvs\":[", r->revision);
	for (size_t i = 0; i < r->nkvs; i++) {
		char key[sizeof(PREFIX) + LW_ID_HEX];

		memcpy(key, PREFIX, sizeof(PREFIX) - 1);
		lw__id_hex(&r->kvs[i].id, key + sizeof(PREFIX) - 1);
		p += sprintf(p, "%s{\"key\":\"", i ? "," : "");
		lw__base64_encode(key, strlen(key), p);
		p += strlen(p);
		p += sprintf(p, "\",\"create_revision\":\"%" PRId64 "\",\"mod_revision\":\"%"
			     PRId64 "\",\"lease\":\"%" PRId64 "\"}", r->kvs[i].create_revision,
			     r->kvs[i].mod_revision, r->kvs[i].lease);
	}
	p += sprintf(p, "],\"count\":\"%zu\"}", r->nkvs);
	return (size_t)(p - buf);
}

static int parse(const char *text, size_t len, struct lw__etcd_reply *r, char *why,
		 size_t size)
{
	memset(r, 0, sizeof(*r));
	r->prefix = PREFIX;
	r->prefix_len = sizeof(PREFIX) - 1;
	return lw__etcd_reply_parse(text, len, r, why, size);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct lw__etcd_reply *r = malloc(2 * sizeof(*r)), *back = r + 1;
	char why[160], msg[200];
	int err;

	fuzz_assert(r);
	lw__etcd_error_message((const char *)data, size, msg, sizeof(msg));
	fuzz_assert(printable(msg, sizeof(msg), true));

	err = parse((const char *)data, size, r, why, sizeof(why));
	if (err < 0) {
		fuzz_assert(err == -EBADMSG || err == -ENOMEM);
		fuzz_assert(printable(why, sizeof(why), false));
		lw__etcd_reply_fini(r);
		free(r);
		return 0;
	}
	fuzz_assert(err == 0);
	fuzz_assert(r->nkvs <= r->nkeys && r->outside <= r->nkeys);
	fuzz_assert(r->ndeletes + r->nputs <= r->nkeys);
	fuzz_assert(r->value_len <= sizeof(r->value));
	fuzz_assert(printable(r->error, sizeof(r->error), true));
	{
		char *text = malloc(64 + (r->nkvs + 1) * KV_MAX);
		size_t len;

		fuzz_assert(text);
		len = render(r, text);
		err = parse(text, len, back, why, sizeof(why));
		fuzz_assert(err == 0);
		fuzz_assert(back->revision == r->revision);
		fuzz_assert(back->nkvs == r->nkvs && back->nkeys == r->nkvs && !back->outside);
		fuzz_assert(!r->nkvs ||
			    memcmp(back->kvs, r->kvs, r->nkvs * sizeof(*r->kvs)) == 0);
		lw__etcd_reply_fini(back);
		free(text);
	}
	lw__etcd_reply_fini(r);
	free(r);
	return 0;
}
