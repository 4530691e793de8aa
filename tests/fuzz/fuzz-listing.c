/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The JSON listing parser on whatever a server sends back.  It accepts or
 * refuses without crashing or leaking; a refusal gives one printable line
 * that repeats nothing of the body; and the ids of an accepted listing,
 * written out again in each format the parser serves (restic REST v1 and
 * v2, nginx autoindex with a directory and a hostile name beside them),
 * parse back to the same ids in the same order.
 */
#include "config.h"

#include <errno.h>
#include <stdbool.h>

#include "fuzz.h"
#include "backend/json-listing.h"
#include "engine/engine.h"

enum format { REST_V1, REST_V2, AUTOINDEX, FORMATS };

/* The longest entry: an autoindex file entry with its separator. */
#define ENTRY_MAX 200

static size_t render(enum format f, const struct lw__id *ids, size_t n, char *buf)
{
	char *p = buf;

	p += sprintf(p, "[");
	if (f == AUTOINDEX)
		p += sprintf(p, "{ \"name\":\"..\", \"type\":\"directory\", "
			     "\"mtime\":\"Fri, 27 Nov 2026 10:51:18 GMT\" },\n");
	for (size_t i = 0; i < n; i++) {
		char hex[LW_ID_HEX + 1];
		const char *sep = i ? "," : "";

		lw__id_hex(&ids[i], hex);
		if (f == REST_V1)
			p += sprintf(p, "%s\"%s\"", sep, hex);
		else if (f == REST_V2)
			p += sprintf(p, "%s{\"name\":\"%s\",\"size\":%zu}", sep, hex, i);
		else
			p += sprintf(p, "%s{ \"name\":\"%s\", \"type\":\"file\", "
				     "\"mtime\":\"Fri, 27 Nov 2026 10:51:18 GMT\", "
				     "\"size\":%zu }\n", sep, hex, 100 + i);
	}
	if (f == AUTOINDEX)
		p += sprintf(p, "%s{ \"name\":\"%s\\/..\", \"type\":\"file\", \"size\":1 }",
			     n ? "," : "", "../locks");
	p += sprintf(p, "]");
	return (size_t)(p - buf);
}

static bool printable_line(const char *s, size_t size)
{
	size_t n = strnlen(s, size);

	if (n == 0 || n == size)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x20 || s[i] > 0x7e)
			return false;
	return true;
}

/* The HTTP backends' form keeps what is not a file, typed: its files are
 * the plain form's ids, in order, and every other entry has a type. */
static void check_typed(const uint8_t *data, size_t size, const struct lw__id *ids, size_t n)
{
	struct lw__id *all;
	uint8_t *types;
	char why[128];
	size_t m, files = 0;

	if (lw__json_listing_parse_typed((const char *)data, size, &all, &types, &m, why,
					 sizeof(why)) == -ENOMEM)
		return;
	fuzz_assert(m >= n);
	fuzz_assert(types || m == n);
	for (size_t i = 0; i < m; i++) {
		uint8_t t = types ? types[i] : LW__FTYPE_FILE;

		fuzz_assert(t == LW__FTYPE_FILE || t == LW__FTYPE_DIR || t == LW__FTYPE_OTHER);
		if (t != LW__FTYPE_FILE)
			continue;
		fuzz_assert(files < n && memcmp(&all[i], &ids[files], sizeof(*ids)) == 0);
		files++;
	}
	fuzz_assert(files == n);
	free(all);
	free(types);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct lw__id *ids;
	char why[128];
	size_t n;
	int err;

	err = lw__json_listing_parse((const char *)data, size, &ids, &n, why, sizeof(why));
	if (err < 0) {
		fuzz_assert(err == -EBADMSG || err == -ENOMEM);
		fuzz_assert(!ids && n == 0);
		fuzz_assert(printable_line(why, sizeof(why)));
		return 0;
	}
	fuzz_assert(err == 0);
	fuzz_assert(!ids == !n);

	check_typed(data, size, ids, n);
	for (enum format f = 0; f < FORMATS; f++) {
		char *text = malloc((n + 2) * ENTRY_MAX);
		struct lw__id *back;
		size_t len, m;

		fuzz_assert(text);
		len = render(f, ids, n, text);
		err = lw__json_listing_parse(text, len, &back, &m, why, sizeof(why));
		fuzz_assert(err == 0);
		fuzz_assert(m == n);
		fuzz_assert(!n || memcmp(back, ids, n * sizeof(*ids)) == 0);
		free(back);
		free(text);
	}
	free(ids);
	return 0;
}
