/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * What the WebDAV servers of the dav: tests answer (tests/helpers/webdav.c
 * keeps the table): each started here, spoken to with plain libcurl, its
 * PROPFIND reply read by the parser the backend uses.  The dav: backend
 * relies on these answers; a server that changes them fails here first.
 */
#include "config.h"

#include "test.h"
#include <criterion/parameterized.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend/propfind.h"
#include "webdav.h"

#define A64 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define B64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

struct reply {
	long status;
	char body[65536];
	size_t len;
};

static size_t collect(char *p, size_t size, size_t n, void *arg)
{
	struct reply *r = arg;
	size_t take = size * n;

	cr_assert(take <= sizeof(r->body) - 1 - r->len, "reply too long for the test");
	memcpy(r->body + r->len, p, take);
	r->len += take;
	r->body[r->len] = '\0';
	return take;
}

/* METHOD on PATH of W with an optional BODY and one optional HEADER. */
static struct reply *call(const struct lwt_webdav *w, const char *method, const char *path,
			  const char *header, const char *body)
{
	static struct reply r;
	struct curl_slist *h = NULL;
	char url[512];
	CURL *c = curl_easy_init();

	cr_assert_not_null(c);
	memset(&r, 0, sizeof(r));
	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", lwt_webdav_port(w), path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (header)
		h = curl_slist_append(h, header);
	h = curl_slist_append(h, "Expect:");
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
	if (body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	}
	if (strcmp(method, "HEAD") == 0)
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
	cr_assert_eq(curl_easy_perform(c), CURLE_OK, "%s %s", method, url);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
	curl_slist_free_all(h);
	curl_easy_cleanup(c);
	return &r;
}

static long status(const struct lwt_webdav *w, const char *method, const char *path,
		   const char *header, const char *body)
{
	return call(w, method, path, header, body)->status;
}

/* The answers that differ, by server. */
struct expect {
	enum lwt_webdav_kind kind;
	long mkcol_existing;
	long put_if_none_match; /* If-None-Match: * on an existing file */
	bool put_kept;          /* ... and the file kept its content */
};

ParameterizedTestParameters(webdav, answers)
{
	static struct expect e[] = {
		{ LWT_WEBDAV_APACHE, 405, 412, true },
		{ LWT_WEBDAV_NGINX, 405, 204, false },
		{ LWT_WEBDAV_RCLONE, 201, 201, false },
	};

	return cr_make_param_array(struct expect, e, sizeof(e) / sizeof(e[0]));
}

ParameterizedTest(struct expect *e, webdav, answers, .timeout = 30)
{
	struct lwt_webdav *w = lwt_webdav_start(e->kind);
	const char *name = lwt_webdav_name(e->kind);
	struct lw__id *ids;
	struct reply *r;
	char why[160], hex[LW_ID_HEX + 1];
	size_t n;

	cr_assert_not_null(w, "%s did not start", name);
	cr_expect_eq(status(w, "MKCOL", "/my%20repo/", NULL, NULL), 201, "%s", name);
	cr_expect_eq(status(w, "MKCOL", "/my%20repo/locks/", NULL, NULL), 201, "%s", name);
	cr_expect_eq(status(w, "MKCOL", "/my%20repo/locks/sub/", NULL, NULL), 201, "%s", name);
	cr_expect_eq(status(w, "MKCOL", "/nothere/locks/", NULL, NULL), 409, "%s", name);
	cr_expect_eq(status(w, "PUT", "/my%20repo/locks/" A64, NULL, "one"), 201, "%s", name);
	cr_expect_eq(status(w, "PUT", "/my%20repo/locks/odd%20name%20%25", NULL, "x"), 201,
		     "%s", name);

	r = call(w, "PROPFIND", "/my%20repo/locks/", "Depth: 1", LW_PROPFIND_BODY);
	cr_assert_eq(r->status, 207, "%s: PROPFIND: %ld", name, r->status);
	cr_assert_eq(lw__propfind_parse(r->body, r->len, "/my%20repo/locks/", &ids, &n,
					why, sizeof(why)), 0, "%s: %s\n%s", name, why, r->body);
	cr_assert_eq(n, 1, "%s: %zu ids in\n%s", name, n, r->body);
	lw__id_hex(&ids[0], hex);
	cr_expect_str_eq(hex, A64, "%s", name);
	free(ids);

	cr_expect_eq(status(w, "PROPFIND", "/nothere/locks/", "Depth: 1", LW_PROPFIND_BODY),
		     404, "%s", name);
	cr_expect_eq(status(w, "MKCOL", "/my%20repo/locks/", NULL, NULL), e->mkcol_existing,
		     "%s: MKCOL on an existing folder", name);
	cr_expect_eq(status(w, "PUT", "/my%20repo/locks/" A64, "If-None-Match: *", "two"),
		     e->put_if_none_match, "%s: PUT If-None-Match: * on an existing file", name);
	r = call(w, "GET", "/my%20repo/locks/" A64, NULL, NULL);
	cr_expect_str_eq(r->body, e->put_kept ? "one" : "two", "%s", name);
	cr_expect_eq(status(w, "PUT", "/my%20repo/locks/" B64, "If-None-Match: *", "new"), 201,
		     "%s", name);
	cr_expect_eq(status(w, "DELETE", "/my%20repo/locks/" B64, NULL, NULL), 204, "%s", name);
	cr_expect_eq(status(w, "DELETE", "/my%20repo/locks/" B64, NULL, NULL), 404,
		     "%s: DELETE of a missing file", name);
	cr_expect_eq(status(w, "HEAD", "/my%20repo/locks/" B64, NULL, NULL), 404, "%s", name);
	lwt_webdav_stop(w);
}

/* A file planted on the server's disk is listed at once, and the server
 * can delete it (rclone caches no listing; Apache owns what it serves). */
ParameterizedTestParameters(webdav, planted)
{
	static enum lwt_webdav_kind k[] = { LWT_WEBDAV_APACHE, LWT_WEBDAV_NGINX,
					    LWT_WEBDAV_RCLONE };

	return cr_make_param_array(enum lwt_webdav_kind, k, sizeof(k) / sizeof(k[0]));
}

ParameterizedTest(enum lwt_webdav_kind *k, webdav, planted, .timeout = 30)
{
	struct lwt_webdav *w = lwt_webdav_start(*k);
	char path[512];
	struct lw__id *ids;
	struct reply *r;
	char why[160];
	size_t n;
	FILE *f;

	cr_assert_not_null(w);
	cr_assert_eq(status(w, "MKCOL", "/r/", NULL, NULL), 201);
	cr_assert_eq(status(w, "MKCOL", "/r/locks/", NULL, NULL), 201);
	r = call(w, "PROPFIND", "/r/locks/", "Depth: 1", LW_PROPFIND_BODY);
	cr_assert_eq(lw__propfind_parse(r->body, r->len, "/r/locks/", &ids, &n, why,
					sizeof(why)), 0, "%s", why);
	cr_assert_eq(n, 0);
	snprintf(path, sizeof(path), "%s/r/locks/" B64, lwt_webdav_root(w));
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs("planted", f);
	fclose(f);
	lwt_webdav_own(w, path);
	r = call(w, "PROPFIND", "/r/locks/", "Depth: 1", LW_PROPFIND_BODY);
	cr_assert_eq(lw__propfind_parse(r->body, r->len, "/r/locks/", &ids, &n, why,
					sizeof(why)), 0, "%s", why);
	cr_expect_eq(n, 1, "%s: the planted file is listed", lwt_webdav_name(*k));
	free(ids);
	cr_expect_eq(status(w, "DELETE", "/r/locks/" B64, NULL, NULL), 204);
	cr_expect_eq(access(path, F_OK), -1, "the server deleted it");
	lwt_webdav_stop(w);
}
