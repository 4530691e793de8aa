/* SPDX-License-Identifier: BSD-2-Clause */
/* The JSON listing parser of the HTTP backends: pure code, no server. */
#include "config.h"

#include "test.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/json-listing.h"
#include "engine/engine.h"

#define A64 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define B64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static char why[160];

static int parse(const char *s, struct lw__id **ids, size_t *n)
{
	why[0] = '\0';
	return lw__json_listing_parse(s, strlen(s), ids, n, why, sizeof(why));
}

/* The names parsed from S, as hex, space-separated. */
static const char *names(const char *s)
{
	static char out[1024];
	struct lw__id *ids;
	size_t n;
	int r = parse(s, &ids, &n);

	cr_assert_eq(r, 0, "%s: %s", s, why);
	out[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		char hex[LW_ID_HEX + 1];

		lw__id_hex(&ids[i], hex);
		strcat(out, i ? " " : "");
		strcat(out, hex);
	}
	free(ids);
	return out;
}

static void refused(const char *s, const char *reason)
{
	struct lw__id *ids = (void *)1;
	size_t n = 7;

	cr_assert_eq(parse(s, &ids, &n), -EBADMSG, "accepted: %s", s);
	cr_assert_null(ids);
	cr_assert_eq(n, 0);
	cr_assert(strstr(why, reason), "%s: \"%s\" does not say \"%s\"", s, why, reason);
}

Test(json, restic_v1)
{
	cr_assert_str_eq(names("[\"" A64 "\", \"" B64 "\"]"), A64 " " B64);
}

Test(json, restic_v2)
{
	cr_assert_str_eq(names("[{\"name\":\"" A64 "\",\"size\":123}]"), A64);
}

Test(json, nginx_autoindex)
{
	cr_assert_str_eq(names("[\n{ \"name\":\"" A64 "\", \"type\":\"file\", "
			       "\"mtime\":\"Fri, 27 Nov 2026 10:51:18 GMT\", \"size\":5 },\n"
			       "{ \"name\":\"" B64 "\", \"type\":\"directory\", "
			       "\"mtime\":\"Fri, 27 Nov 2026 10:51:18 GMT\" }\n]"),
			 A64);
}

Test(json, empty_listings)
{
	cr_assert_str_eq(names("[]"), "");
	cr_assert_str_eq(names(" [ ] \n"), "");
	cr_assert_str_eq(names("null"), "");
}

Test(json, names_that_are_not_ids_are_skipped)
{
	cr_assert_str_eq(names("[\"../x\", \"a/b\", \"..\", \"" A64 "/../x\", "
			       "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\", "
			       "\"" A64 "a\", \"\", \".keep\", \"" B64 "\"]"),
			 B64);
	/* an escape cannot smuggle in what the plain form could not */
	cr_assert_str_eq(names("[\"..\\/" A64 "\", \"\\u0000" A64 "\"]"), "");
	/* but an escaped hex digit is that digit */
	cr_assert_str_eq(names("[\"\\u0061" A64 "\"]"), "");
	cr_assert_str_eq(names("[\"\\u0061" "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"]"),
			 A64);
}

/* A key or a type with an escaped NUL is not the key or type before it. */
Test(json, escaped_nul_ends_nothing)
{
	cr_assert_str_eq(names("[{\"name\":\"" A64 "\",\"type\":\"file\\u0000\"}]"), "");
	cr_assert_str_eq(names("[{\"name\\u0000\":\"" A64 "\",\"name\":\"" B64 "\"}]"), B64);
	refused("[{\"name\\u0000\":\"" A64 "\"}]", "without a name");
}

Test(json, unknown_values_are_checked_and_skipped)
{
	cr_assert_str_eq(names("[{\"x\":[1,-2.5e+3,{\"y\":[true,false,null]}],\"name\":\""
			       A64 "\",\"z\":\"\\u00e9\\ud83d\\ude00\"}]"),
			 A64);
}

Test(json, malformed)
{
	refused("", "empty body");
	refused("<html><head><title>502 Bad Gateway</title></head></html>", "HTML page");
	refused("[\"" A64 "\"", "truncated");
	refused("[{\"name\":\"" A64 "\",\"type\":\"fi", "truncated");
	refused("[\"" A64 "\",]", "neither a name nor an object");
	refused("[\"" A64 "\"] x", "data after the listing");
	refused("{\"names\":[]}", "expected an array");
	refused("[1]", "neither a name nor an object");
	refused("[{\"size\":1}]", "without a name");
	refused("[{\"name\":\"" A64 "\",\"name\":\"" B64 "\"}]", "two names");
	refused("[{\"name\":1}]", "not a string");
	refused("[{\"name\":\"a\",\"type\":7}]", "not a string");
	refused("[{\"name\":\"a\",\"size\":01}]", "expected ',' or '}'");
	refused("[{\"name\":\"a\",\"size\":1.}]", "bad number");
	refused("[{\"name\":\"a\",\"x\":tru}]", "unexpected character");
	refused("[\"a\tb\"]", "control character");
	refused("[\"\\x\"]", "bad escape");
	refused("[\"\\u12g4\"]", "bad \\u escape");
	refused("[\"\\ud800\"]", "surrogate");
	refused("[\"\\udc00\"]", "surrogate");
	refused("nul", "unexpected character");
}

Test(json, nul_byte_is_not_the_end)
{
	static const char s[] = "[]\0[";
	struct lw__id *ids;
	size_t n;

	cr_assert_eq(lw__json_listing_parse(s, sizeof(s) - 1, &ids, &n, why, sizeof(why)),
		     -EBADMSG);
}

Test(json, nesting_is_bounded)
{
	char s[256] = "[{\"name\":\"a\",\"x\":";
	size_t n = strlen(s);

	for (int i = 0; i < LW__JSON_MAX_DEPTH + 2; i++)
		s[n++] = '[';
	s[n] = '\0';
	refused(s, "nested deeper");
}

/* Every prefix of a valid listing is refused as truncated, never read past
 * its end (ASan checks the reads: each prefix is its own allocation). */
Test(json, every_prefix)
{
	static const char full[] = "[{\"name\":\"" A64 "\",\"type\":\"file\",\"size\":12},\"" B64 "\"]";

	for (size_t len = 0; len < sizeof(full) - 1; len++) {
		char *p = malloc(len ? len : 1);
		struct lw__id *ids;
		size_t n;

		memcpy(p, full, len);
		cr_assert_eq(lw__json_listing_parse(p, len, &ids, &n, why, sizeof(why)),
			     -EBADMSG, "prefix of %zu bytes accepted", len);
		free(p);
	}
}

Test(json, a_hundred_thousand_entries)
{
	const size_t count = 100000;
	size_t per = strlen("{ \"name\":\"" A64 "\", \"type\":\"file\", \"size\":300 },\n");
	char *s = malloc(count * per + 8), *p = s;
	struct lw__id *ids;
	size_t n;

	*p++ = '[';
	for (size_t i = 0; i < count; i++) {
		char hex[LW_ID_HEX + 1];

		snprintf(hex, sizeof(hex), "%064zx", i);
		p += sprintf(p, "%s{ \"name\":\"%s\", \"type\":\"file\", \"size\":300 }",
			     i ? ",\n" : "", hex);
	}
	*p++ = ']';
	cr_assert_eq(lw__json_listing_parse(s, (size_t)(p - s), &ids, &n, why, sizeof(why)), 0,
		     "%s", why);
	cr_assert_eq(n, count);
	cr_assert_eq(ids[count - 1].b[LW_ID_LEN - 1], (count - 1) & 0xff);
	free(ids);
	free(s);
}

/* What the HTTP backends use: an entry named like a lock that is not a file
 * is kept, typed, so that it blocks like a foreign lock (issue 12: dav:
 * skipped it where the local backend failed on it). */
Test(json, typed_keeps_what_is_not_a_file)
{
	static const char s[] =
		"[{\"name\":\"" A64 "\",\"type\":\"file\"},"
		"{\"name\":\"" B64 "\",\"type\":\"directory\"},"
		"{\"name\":\"x\",\"type\":\"directory\"},"
		"{\"name\":\"cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc\","
		"\"type\":\"other\"}]";
	struct lw__id *ids;
	uint8_t *types;
	size_t n;

	cr_assert_eq(lw__json_listing_parse_typed(s, sizeof(s) - 1, &ids, &types, &n, why,
						  sizeof(why)), 0, "%s", why);
	cr_assert_eq(n, 3);
	cr_assert_not_null(types);
	cr_expect_eq(types[0], LW__FTYPE_FILE);
	cr_expect_eq(types[1], LW__FTYPE_DIR);
	cr_expect_eq(types[2], LW__FTYPE_OTHER);
	free(ids);
	free(types);
	cr_assert_eq(lw__json_listing_parse_typed("[\"" A64 "\"]", 68, &ids, &types, &n, why,
						  sizeof(why)), 0, "%s", why);
	cr_expect_eq(n, 1);
	cr_expect_null(types, "all files: no types");
	free(ids);
	/* the untyped form skips them, as before */
	cr_assert_str_eq(names(s), A64);
}
