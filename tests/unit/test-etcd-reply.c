/* SPDX-License-Identifier: BSD-2-Clause */
/* The etcd gateway's replies as the backend reads them, and base64: pure
 * code, no server.  The replies are the gateway's own (etcd 3.4), as
 * captured with curl, then broken in every way a server or a proxy can. */
#include "config.h"

#include "test.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/base64.h"
#include "backend/etcd-reply.h"

#define HEADER "\"header\":{\"cluster_id\":\"15118495548433857066\",\"member_id\":" \
	       "\"13668033151171901709\",\"revision\":\"42\",\"raft_term\":\"2\"}"
#define A64 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define B64 "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

static char why[160];

static char *b64(const char *s)
{
	static char out[8][512];
	static int next;
	char *o = out[next++ % 8];

	lw__base64_encode(s, strlen(s), o);
	return o;
}

static int parse(const char *text, struct lw__etcd_reply *r)
{
	why[0] = '\0';
	memset(r, 0x55, sizeof(*r)); /* nothing is left as it was */
	r->prefix = "bk/locks/";
	r->prefix_len = strlen(r->prefix);
	return lw__etcd_reply_parse(text, strlen(text), r, why, sizeof(why));
}

static void refused(const char *text, const char *reason)
{
	struct lw__etcd_reply r;

	cr_assert_eq(parse(text, &r), -EBADMSG, "accepted: %.100s", text);
	cr_assert(strstr(why, reason), "%.100s: \"%s\" does not say \"%s\"", text, why, reason);
	lw__etcd_reply_fini(&r);
}

Test(base64, round_trip)
{
	static const char *const plain[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
	static const char *const coded[] = { "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=",
					     "Zm9vYmFy" };

	for (size_t i = 0; i < 7; i++) {
		char enc[16], dec[16];
		size_t n;

		lw__base64_encode(plain[i], strlen(plain[i]), enc);
		cr_expect_str_eq(enc, coded[i]);
		cr_expect_eq(lw__base64_len(strlen(plain[i])), strlen(coded[i]));
		cr_assert_eq(lw__base64_decode(coded[i], strlen(coded[i]), dec, sizeof(dec), &n), 0);
		cr_expect_eq(n, strlen(plain[i]));
		cr_expect_eq(memcmp(dec, plain[i], n), 0);
	}
}

Test(base64, every_byte)
{
	unsigned char all[256], back[256];
	char enc[400];
	size_t n;

	for (int i = 0; i < 256; i++)
		all[i] = (unsigned char)i;
	lw__base64_encode(all, sizeof(all), enc);
	cr_assert_eq(lw__base64_decode(enc, strlen(enc), back, sizeof(back), &n), 0);
	cr_assert_eq(n, 256);
	cr_assert_eq(memcmp(all, back, 256), 0);
	/* a short buffer keeps the start, and the rest is still checked */
	cr_assert_eq(lw__base64_decode(enc, strlen(enc), back, 10, &n), 0);
	cr_assert_eq(n, 10);
	enc[100] = '*';
	cr_assert_eq(lw__base64_decode(enc, strlen(enc), back, 10, &n), -EBADMSG);
}

Test(base64, malformed)
{
	static const char *const bad[] = { "Zg=", "Zg", "Z===", "=Zg=", "Zg==Zg==", "Zm9v!A==",
					   "Zm-v", "Zm_v", "Zm9 v" };
	char out[16];
	size_t n;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_expect_eq(lw__base64_decode(bad[i], strlen(bad[i]), out, sizeof(out), &n),
			     -EBADMSG, "accepted %s", bad[i]);
}

Test(etcd_reply, lease_grant)
{
	struct lw__etcd_reply r;

	cr_assert_eq(parse("{" HEADER ",\"ID\":\"4111120279720601861\",\"TTL\":\"3\"}", &r), 0,
		     "%s", why);
	cr_expect_eq(r.id, 4111120279720601861);
	cr_expect_eq(r.ttl, 3);
	cr_expect_eq(r.revision, 42);
	cr_expect_eq(r.nkvs, 0);
	lw__etcd_reply_fini(&r);
}

Test(etcd_reply, keepalive)
{
	struct lw__etcd_reply r;

	cr_assert_eq(parse("{\"result\":{" HEADER ",\"ID\":\"7\",\"TTL\":\"5\"}}\n", &r), 0, "%s", why);
	cr_expect_eq(r.id, 7);
	cr_expect_eq(r.ttl, 5);
	lw__etcd_reply_fini(&r);
	/* the lease is gone: the TTL, at its zero value, is left out */
	cr_assert_eq(parse("{\"result\":{" HEADER ",\"ID\":\"7\"}}\n", &r), 0, "%s", why);
	cr_expect_eq(r.id, 7);
	cr_expect_eq(r.ttl, 0);
	cr_expect_eq(r.error[0], '\0');
	lw__etcd_reply_fini(&r);
}

Test(etcd_reply, stream_error)
{
	struct lw__etcd_reply r;

	cr_assert_eq(parse("{\"error\":{\"grpc_code\":14,\"http_code\":503,\"message\":"
			   "\"etcdserver: no leader\",\"http_status\":\"Service Unavailable\"}}", &r),
		     0, "%s", why);
	cr_expect_str_eq(r.error, "etcdserver: no leader");
	lw__etcd_reply_fini(&r);
	/* a message from the server is text for a terminal: made safe */
	cr_assert_eq(parse("{\"error\":{\"message\":\"bad\\u001b[2Jnews\"}}", &r), 0, "%s", why);
	cr_expect_str_eq(r.error, "bad?[2Jnews");
	lw__etcd_reply_fini(&r);
}

Test(etcd_reply, txn)
{
	struct lw__etcd_reply r;
	char text[2048];
	const char *key = b64("bk/locks/" A64);

	cr_assert_eq(parse("{" HEADER ",\"succeeded\":true,\"responses\":[{\"response_put\":"
			   "{\"header\":{\"revision\":\"42\"}}}]}", &r), 0, "%s", why);
	cr_expect(r.succeeded);
	cr_expect_eq(r.revision, 42);
	lw__etcd_reply_fini(&r);
	/* the compare failed: the failure branch's range comes back */
	snprintf(text, sizeof(text),
		 "{" HEADER ",\"responses\":[{\"response_range\":{\"header\":{\"revision\":\"42\"},"
		 "\"kvs\":[{\"key\":\"%s\",\"create_revision\":\"40\",\"mod_revision\":\"40\","
		 "\"version\":\"1\",\"lease\":\"99\"}],\"count\":\"1\"}}]}", key);
	cr_assert_eq(parse(text, &r), 0, "%s", why);
	cr_expect(!r.succeeded);
	cr_assert_eq(r.nkvs, 1);
	cr_expect_eq(r.kvs[0].create_revision, 40);
	cr_expect_eq(r.kvs[0].lease, 99);
	cr_expect_eq(r.kvs[0].id.b[0], 0xaa);
	lw__etcd_reply_fini(&r);
}

Test(etcd_reply, range)
{
	struct lw__etcd_reply r;
	char text[4096];

	/* two locks, a key under the prefix that is no lock, one without a
	 * lease, and one outside the prefix */
	snprintf(text, sizeof(text),
		 "{" HEADER ",\"kvs\":[{\"key\":\"%s\",\"create_revision\":\"5\",\"lease\":\"7\"},"
		 "{\"key\":\"%s\",\"create_revision\":\"6\"},{\"key\":\"%s\"},{\"key\":\"%s\"},"
		 "{\"key\":\"%s\"},{\"key\":\"%s\"}],\"count\":\"6\"}",
		 b64("bk/locks/" A64), b64("bk/locks/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"),
		 b64("bk/locks/README"), b64("bk/locks/" A64 "a"), b64("bk/locks/../" A64),
		 b64("other/locks/" A64));
	cr_assert_eq(parse(text, &r), 0, "%s", why);
	cr_expect_eq(r.count, 6);
	cr_expect_eq(r.nkeys, 6);
	cr_expect_eq(r.outside, 1);
	cr_assert_eq(r.nkvs, 2);
	cr_expect_eq(r.kvs[0].lease, 7);
	cr_expect_eq(r.kvs[1].lease, 0);
	cr_expect_eq(r.kvs[1].create_revision, 6);
	cr_expect_eq(r.kvs[1].id.b[0], 0x01);
	cr_expect(!r.has_value, "keys only");
	lw__etcd_reply_fini(&r);
	/* an empty range: kvs and count left out */
	cr_assert_eq(parse("{" HEADER "}", &r), 0, "%s", why);
	cr_expect_eq(r.nkvs, 0);
	cr_expect_eq(r.count, 0);
	lw__etcd_reply_fini(&r);
}

Test(etcd_reply, value)
{
	struct lw__etcd_reply r;
	char text[1024];

	snprintf(text, sizeof(text), "{" HEADER ",\"kvs\":[{\"key\":\"%s\",\"value\":\"%s\"}]}",
		 b64("bk/locks/" A64), b64("hello record"));
	cr_assert_eq(parse(text, &r), 0, "%s", why);
	cr_assert(r.has_value);
	cr_expect_eq(r.value_len, 12);
	cr_expect_eq(memcmp(r.value, "hello record", 12), 0);
	lw__etcd_reply_fini(&r);
}

/* A value larger than a record is kept only as far as a record reaches
 * (and one byte more, for the record decoder to refuse). */
Test(etcd_reply, oversized_value)
{
	size_t big = 1 << 20;
	char *plain = malloc(big), *coded = malloc(lw__base64_len(big) + 1);
	char *text = malloc(lw__base64_len(big) + 1024);
	struct lw__etcd_reply r;

	memset(plain, 'x', big);
	lw__base64_encode(plain, big, coded);
	sprintf(text, "{\"kvs\":[{\"key\":\"%s\",\"value\":\"%s\"}]}", b64("bk/locks/" A64), coded);
	cr_assert_eq(parse(text, &r), 0, "%s", why);
	cr_expect_eq(r.value_len, LW_RECORD_MAX + 1);
	lw__etcd_reply_fini(&r);
	strchr(strstr(text, "value"), ':')[100] = '!';
	refused(text, "not base64");
	free(text);
	free(coded);
	free(plain);
}

Test(etcd_reply, timetolive_keys)
{
	struct lw__etcd_reply r;
	char text[1024];

	snprintf(text, sizeof(text), "{" HEADER ",\"ID\":\"9\",\"TTL\":\"4\",\"grantedTTL\":\"5\","
		 "\"keys\":[\"%s\",\"%s\"]}", b64("bk/locks/" A64), b64("elsewhere"));
	cr_assert_eq(parse(text, &r), 0, "%s", why);
	cr_expect_eq(r.nkeys, 2);
	cr_expect_eq(r.outside, 1);
	cr_expect_eq(r.nkvs, 1);
	cr_expect_eq(r.ttl, 4);
	lw__etcd_reply_fini(&r);
}

/* A key longer than any lock's: decoded only as far as one reaches. */
Test(etcd_reply, long_keys)
{
	char key[8192], text[32768];
	struct lw__etcd_reply r;

	memset(key, 'k', sizeof(key) - 1);
	key[sizeof(key) - 1] = '\0';
	memcpy(key, "bk/locks/", 9);
	{
		char *coded = malloc(lw__base64_len(strlen(key)) + 1);

		lw__base64_encode(key, strlen(key), coded);
		/* the same key, and one without its first three bytes */
		snprintf(text, sizeof(text), "{\"kvs\":[{\"key\":\"%s\"},{\"key\":\"%s\"}]}", coded,
			 coded + 4);
		free(coded);
	}
	cr_assert_eq(parse(text, &r), 0, "%s", why);
	cr_expect_eq(r.nkeys, 2);
	cr_expect_eq(r.nkvs, 0);
	cr_expect_eq(r.outside, 1, "the second does not start with the prefix");
	lw__etcd_reply_fini(&r);
}

/* A watch stream's responses, as etcd 3.4's gateway wrote them: created,
 * a batch of events, the cancel of a compacted start. */
Test(etcd_reply, watch)
{
	struct lw__etcd_reply r;
	char text[1024];

	cr_assert_eq(parse("{\"result\":{" HEADER ",\"created\":true}}", &r), 0, "%s", why);
	cr_expect(r.created && !r.canceled && !r.fragment);
	cr_expect_eq(r.revision, 42);
	cr_expect_eq(r.nkvs, 0);
	lw__etcd_reply_fini(&r);

	/* a DELETE of a lock, a DELETE of another key under the prefix, and
	 * a PUT (type left out: protobuf's zero) which removes nothing */
	snprintf(text, sizeof(text),
		 "{\"result\":{" HEADER ",\"events\":[{\"type\":\"DELETE\",\"kv\":{\"key\":\"%s\","
		 "\"mod_revision\":\"41\"}},{\"type\":\"DELETE\",\"kv\":{\"key\":\"%s\","
		 "\"mod_revision\":\"41\"}},{\"kv\":{\"key\":\"%s\",\"create_revision\":\"42\","
		 "\"mod_revision\":\"42\",\"version\":\"1\",\"value\":\"eA==\"}}],\"fragment\":true}}",
		 b64("bk/locks/" A64), b64("bk/locks/x"), b64("bk/locks/" B64));
	cr_assert_eq(parse(text, &r), 0, "%s", why);
	cr_expect_eq(r.ndeletes, 2);
	cr_expect_eq(r.nputs, 1);
	cr_assert_eq(r.nkvs, 1, "only the deleted lock");
	cr_expect_eq(r.kvs[0].mod_revision, 41);
	cr_expect_eq(r.kvs[0].id.b[0], 0xaa);
	cr_expect(r.fragment && !r.created);
	lw__etcd_reply_fini(&r);

	cr_assert_eq(parse("{\"result\":{\"header\":{\"raft_term\":\"2\"},\"canceled\":true,"
			   "\"compact_revision\":\"4\"}}", &r), 0, "%s", why);
	cr_expect(r.canceled);
	cr_expect_eq(r.compact_revision, 4);
	lw__etcd_reply_fini(&r);

	refused("{\"result\":{\"events\":[{\"type\":\"DELETE\"}]}}", "an event without a kv");
	refused("{\"result\":{\"events\":[{\"type\":1,\"kv\":{\"key\":\"\"}}]}}",
		"an event type that is not a string");
	refused("{\"result\":{\"events\":[{\"kv\":{\"key\":\"\"},\"kv\":{\"key\":\"\"}}]}}",
		"two kvs in one event");
	refused("{\"result\":{\"events\":[{\"type\":\"DELETE\",\"kv\":{\"key\":\"not base64!\"}}]}}",
		"not base64");
}

Test(etcd_reply, malformed)
{
	char text[512];

	refused("", "empty body");
	refused("<html><head><title>404 Not Found</title></head></html>", "HTML page");
	refused("[]", "expected an object");
	refused("null", "expected an object");
	refused("{\"ID\":\"7\"", "truncated");
	refused("{\"result\":{" HEADER ",\"ID\":\"7\",\"TT", "truncated");
	refused("{\"ID\":\"7\"} {", "data after the reply");
	refused("{\"ID\":\"seven\"}", "integer");
	refused("{\"ID\":\"99999999999999999999\"}", "64-bit");
	refused("{\"ID\":1.5}", "64-bit");
	refused("{\"succeeded\":\"yes\"}", "true or false");
	refused("{\"kvs\":{}}", "expected '['");
	refused("{\"kvs\":[{\"value\":\"aGk=\"}]}", "without a key");
	refused("{\"kvs\":[{\"key\":7}]}", "not a string");
	refused("{\"kvs\":[{\"key\":\"a\"}]}", "not base64");
	refused("{\"kvs\":[{\"key\":\"\\u00e9\\u00e9\\u00e9\\u00e9\"}]}", "not base64");
	snprintf(text, sizeof(text), "{\"kvs\":[{\"key\":\"%s\",\"key\":\"%s\"}]}",
		 b64("bk/locks/" A64), b64("bk/locks/" A64));
	refused(text, "two keys");
	snprintf(text, sizeof(text), "{\"kvs\":[{\"key\":\"%s\",\"value\":\"a\"}]}",
		 b64("bk/locks/" A64));
	refused(text, "not base64");
	refused("{\"x\":[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]}", "nested deeper");
	refused("{\"result\":{\"result\":{\"result\":{\"result\":{\"result\":{\"result\":"
		"{\"result\":{\"result\":{\"result\":{\"result\":{\"result\":{\"result\":"
		"{\"result\":{\"result\":{\"result\":{\"result\":{\"result\":{}}}}}}}}}}}}}}}}}}",
		"nested deeper");
}

Test(etcd_reply, nul_byte_is_not_the_end)
{
	static const char s[] = "{\"ID\":\"1\"}\0{";
	struct lw__etcd_reply r = { .prefix = "bk/locks/", .prefix_len = 9 };

	cr_assert_eq(lw__etcd_reply_parse(s, sizeof(s) - 1, &r, why, sizeof(why)), -EBADMSG);
	lw__etcd_reply_fini(&r);
}

/* Every prefix of a valid reply is refused as cut, never read past its end
 * (ASan checks the reads: each prefix is its own allocation). */
Test(etcd_reply, every_prefix)
{
	char full[1024];
	size_t len;

	snprintf(full, sizeof(full), "{" HEADER ",\"kvs\":[{\"key\":\"%s\",\"create_revision\":"
		 "\"5\",\"value\":\"%s\",\"lease\":\"7\"}],\"count\":\"1\"}",
		 b64("bk/locks/" A64), b64("record"));
	len = strlen(full);
	for (size_t n = 0; n < len; n++) {
		char *p = malloc(n ? n : 1);
		struct lw__etcd_reply r = { .prefix = "bk/locks/", .prefix_len = 9 };

		memcpy(p, full, n);
		cr_assert_eq(lw__etcd_reply_parse(p, n, &r, why, sizeof(why)), -EBADMSG,
			     "a prefix of %zu bytes accepted", n);
		lw__etcd_reply_fini(&r);
		free(p);
	}
}

Test(etcd_reply, error_bodies)
{
	char msg[128];
	const char *unary = "{\"error\":\"etcdserver: requested lease not found\",\"message\":"
			    "\"etcdserver: requested lease not found\",\"code\":5}"
			    "Grpc-Trailer-Content-Type: application/grpc\r\n";
	const char *stream = "{\"error\":{\"grpc_code\":14,\"http_code\":503,\"message\":"
			     "\"etcdserver: no leader\",\"http_status\":\"Service Unavailable\"}}";

	lw__etcd_error_message(unary, strlen(unary), msg, sizeof(msg));
	cr_expect_str_eq(msg, "etcdserver: requested lease not found");
	lw__etcd_error_message(stream, strlen(stream), msg, sizeof(msg));
	cr_expect_str_eq(msg, "etcdserver: no leader");
	lw__etcd_error_message("<html>502</html>", 16, msg, sizeof(msg));
	cr_expect_str_eq(msg, "");
	lw__etcd_error_message("{\"error\":\"cut", 13, msg, sizeof(msg));
	cr_expect_str_eq(msg, "");
	lw__etcd_error_message("{\"code\":5}", 10, msg, sizeof(msg));
	cr_expect_str_eq(msg, "");
}

/* A hundred thousand keys, as a listing of that many locks brings. */
Test(etcd_reply, a_hundred_thousand_keys)
{
	const size_t count = 100000;
	char *text = malloc(count * 160 + 64), *p = text;
	struct lw__etcd_reply r;

	p += sprintf(p, "{" HEADER ",\"kvs\":[");
	for (size_t i = 0; i < count; i++) {
		char key[80];

		snprintf(key, sizeof(key), "bk/locks/%064zx", i);
		p += sprintf(p, "%s{\"key\":\"%s\",\"create_revision\":\"%zu\",\"lease\":\"%zu\"}",
			     i ? "," : "", b64(key), i + 1, i + 7);
	}
	sprintf(p, "],\"count\":\"%zu\"}", count);
	cr_assert_eq(parse(text, &r), 0, "%s", why);
	cr_assert_eq(r.nkvs, count);
	cr_expect_eq(r.kvs[count - 1].create_revision, (int64_t)count);
	cr_expect_eq(r.kvs[count - 1].id.b[LW_ID_LEN - 1], (count - 1) & 0xff);
	lw__etcd_reply_fini(&r);
	free(text);
}
