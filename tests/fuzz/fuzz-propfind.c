/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The PROPFIND multistatus parser on whatever a server sends back, as the
 * reply for /repo/locks/.  It accepts or refuses without crashing or
 * leaking; a refusal gives one printable line; and the ids and types of an
 * accepted listing, written out again as each server family writes a
 * multistatus (Apache's D: prefix and paths, nginx dav-ext's default
 * namespace, absolute URLs, relative references), folders as collections,
 * with the collection itself, a subfolder and hostile hrefs beside them,
 * parse back to the same ids and types in order; without types, to the
 * files alone.
 */
#include "config.h"

#include <errno.h>
#include <stdbool.h>

#include "fuzz.h"
#include "backend/propfind.h"
#include "engine/engine.h"

#define DIR "/repo/locks/"

enum format { APACHE, NGINX, URLS, RELATIVE, FORMATS };

/* The longest entry with its markup. */
#define ENTRY_MAX 400

static const char *const hostile[] = {
	DIR "../locks/", DIR "sub/", "/repo/other/", DIR "%2e/", "/repo%2Flocks/",
};

static char *entry(char *p, enum format f, const char *href, bool collection)
{
	if (f == APACHE || f == URLS)
		return p + sprintf(p, "<D:response><D:href>%s%s</D:href><D:propstat><D:prop>"
				   "<D:resourcetype>%s</D:resourcetype>"
				   "<D:getcontentlength>12</D:getcontentlength></D:prop>"
				   "<D:status>HTTP/1.1 200 OK</D:status></D:propstat>"
				   "</D:response>\n", f == URLS ? "http://127.0.0.1:8080" : "",
				   href, collection ? "<D:collection/>" : "");
	return p + sprintf(p, "<response><href>%s</href><propstat><prop>"
			   "<resourcetype>%s</resourcetype></prop>"
			   "<status>HTTP/1.1 200 OK</status></propstat></response>\n",
			   href, collection ? "<collection/>" : "");
}

static size_t render(enum format f, const struct lw__id *ids, const uint8_t *types,
		     size_t n, char *buf)
{
	char *p = buf, href[200];

	if (f == APACHE || f == URLS)
		p += sprintf(p, "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
			     "<D:multistatus xmlns:D=\"DAV:\" xmlns:ns0=\"DAV:\">\n");
	else
		p += sprintf(p, "<?xml version=\"1.0\" encoding=\"utf-8\" ?>\n"
			     "<multistatus xmlns=\"DAV:\">\n");
	p = entry(p, f, f == RELATIVE ? "" : DIR, true);
	for (size_t i = 0; i < n; i++) {
		bool folder = types && types[i] == LW__FTYPE_DIR, slash = folder && i % 2;
		char hex[LW_ID_HEX + 1];

		lw__id_hex(&ids[i], hex);
		/* a folder: by its resourcetype, its slash, or both */
		snprintf(href, sizeof(href), "%s%s%s", f == RELATIVE ? "" : DIR, hex,
			 slash ? "/" : "");
		p = entry(p, f, href, folder && (!slash || i % 3 != 1));
		/* the same name in a folder of its own, and where it is not ours */
		snprintf(href, sizeof(href), "%ssub/%s/", DIR, hex);
		p = entry(p, f, href, true);
		snprintf(href, sizeof(href), "%s%s", hostile[i % 5], hex);
		p = entry(p, f, href, false);
	}
	p += sprintf(p, f == APACHE || f == URLS ? "</D:multistatus>\n" : "</multistatus>\n");
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct lw__id *ids, *files;
	uint8_t *types;
	char why[128];
	size_t n, nfiles;
	int err;

	err = lw__propfind_parse((const char *)data, size, DIR, &ids, &types, &n, why,
				 sizeof(why));
	if (err < 0) {
		fuzz_assert(err == -EBADMSG || err == -ENOMEM);
		fuzz_assert(!ids && !types && n == 0);
		fuzz_assert(printable_line(why, sizeof(why)));
		return 0;
	}
	fuzz_assert(err == 0);
	fuzz_assert(!ids == !n);
	fuzz_assert(!types || n);

	/* without types: the same, less the folders */
	err = lw__propfind_parse((const char *)data, size, DIR, &files, NULL, &nfiles, why,
				 sizeof(why));
	fuzz_assert(err == 0);
	for (size_t i = 0, j = 0; i <= n; i++) {
		if (i == n) {
			fuzz_assert(j == nfiles);
			break;
		}
		fuzz_assert(!types || types[i] == LW__FTYPE_FILE || types[i] == LW__FTYPE_DIR);
		if (types && types[i] == LW__FTYPE_DIR)
			continue;
		fuzz_assert(j < nfiles && memcmp(&files[j++], &ids[i], sizeof(*ids)) == 0);
	}
	free(files);

	for (enum format f = 0; f < FORMATS; f++) {
		char *text = malloc((3 * n + 2) * ENTRY_MAX);
		struct lw__id *back;
		uint8_t *back_types;
		size_t len, m;

		fuzz_assert(text);
		len = render(f, ids, types, n, text);
		err = lw__propfind_parse(text, len, DIR, &back, &back_types, &m, why,
					 sizeof(why));
		fuzz_assert(err == 0);
		fuzz_assert(m == n);
		fuzz_assert(!n || memcmp(back, ids, n * sizeof(*ids)) == 0);
		fuzz_assert(!types == !back_types);
		fuzz_assert(!types || memcmp(back_types, types, n) == 0);
		free(back);
		free(back_types);
		free(text);
	}
	free(ids);
	free(types);
	return 0;
}
