/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * What the WebDAV servers of the dav: tests answer (tests/helpers/webdav.c
 * keeps the table): each started here and spoken to with plain libcurl.
 * The dav: backend relies on these answers; a server that changes them
 * fails here first.
 * Then dav: on them through the library: init, what a listing ignores,
 * what the requests carry, authentication.
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

#include "http-test.h"
#include "webdav.h"

#define A64 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define B64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
/* what dav: asks for (lib/backend/propfind.h) */
#define PROPFIND_BODY                                                            \
	"<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<D:propfind xmlns:D=\"DAV:\"><D:prop>" \
	"<D:resourcetype/><D:getcontentlength/></D:prop></D:propfind>\n"

/* Occurrences of NEEDLE in S. */
static int count(const char *s, const char *needle)
{
	int n = 0;

	for (const char *p = s; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

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
	struct reply *r;

	cr_assert_not_null(w, "%s did not start", name);
	cr_expect_eq(status(w, "MKCOL", "/my%20repo/", NULL, NULL), 201, "%s", name);
	cr_expect_eq(status(w, "MKCOL", "/my%20repo/locks/", NULL, NULL), 201, "%s", name);
	cr_expect_eq(status(w, "MKCOL", "/my%20repo/locks/sub/", NULL, NULL), 201, "%s", name);
	cr_expect_eq(status(w, "MKCOL", "/nothere/locks/", NULL, NULL), 409, "%s", name);
	cr_expect_eq(status(w, "PUT", "/my%20repo/locks/" A64, NULL, "one"), 201, "%s", name);
	cr_expect_eq(status(w, "PUT", "/my%20repo/locks/odd%20name%20%25", NULL, "x"), 201,
		     "%s", name);

	/* the folder itself, its subfolder (as a collection, its href ending
	 * in '/'), both files, percent-encoded; the parser's side of it is
	 * dav::init_list_create and tests/unit/test-propfind.c */
	r = call(w, "PROPFIND", "/my%20repo/locks/", "Depth: 1", PROPFIND_BODY);
	cr_assert_eq(r->status, 207, "%s: PROPFIND: %ld", name, r->status);
	cr_expect_eq(count(r->body, "multistatus xmlns:D=\"DAV:\""), 1, "%s:\n%s", name, r->body);
	cr_expect_eq(count(r->body, "</D:response>"), 4, "%s: four members:\n%s", name, r->body);
	cr_expect_eq(count(r->body, ">/my%20repo/locks/</D:href>"), 1, "%s:\n%s", name, r->body);
	cr_expect_eq(count(r->body, ">/my%20repo/locks/sub/</D:href>"), 1, "%s", name);
	cr_expect_eq(count(r->body, ">/my%20repo/locks/" A64 "</D:href>"), 1, "%s", name);
	cr_expect_eq(count(r->body, ">/my%20repo/locks/odd%20name%20%25</D:href>"), 1, "%s",
		     name);
	cr_expect_eq(count(r->body, "collection"), 2, "%s: two collections:\n%s", name, r->body);

	cr_expect_eq(status(w, "PROPFIND", "/nothere/locks/", "Depth: 1", PROPFIND_BODY),
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
	struct reply *r;
	FILE *f;

	cr_assert_not_null(w);
	cr_assert_eq(status(w, "MKCOL", "/r/", NULL, NULL), 201);
	cr_assert_eq(status(w, "MKCOL", "/r/locks/", NULL, NULL), 201);
	r = call(w, "PROPFIND", "/r/locks/", "Depth: 1", PROPFIND_BODY);
	cr_assert_eq(r->status, 207);
	cr_assert_eq(count(r->body, B64), 0);
	snprintf(path, sizeof(path), "%s/r/locks/" B64, lwt_webdav_root(w));
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs("planted", f);
	fclose(f);
	lwt_webdav_own(w, path);
	r = call(w, "PROPFIND", "/r/locks/", "Depth: 1", PROPFIND_BODY);
	cr_assert_eq(r->status, 207);
	cr_expect_eq(count(r->body, ">/r/locks/" B64 "</D:href>"), 1,
		     "%s: the planted file is listed:\n%s", lwt_webdav_name(*k), r->body);
	cr_expect_eq(status(w, "DELETE", "/r/locks/" B64, NULL, NULL), 204);
	cr_expect_eq(access(path, F_OK), -1, "the server deleted it");
	lwt_webdav_stop(w);
}

/* ------------------------------------------------------ through the library */

static int count_info(const struct lw_lock_info *info, void *userdata)
{
	(*(int *)userdata)++;
	return 0;
}

static int list_count(struct lw_repo *repo)
{
	int n = 0;

	cr_assert_eq(lw_repo_list(repo, count_info, &n), 0, "list: %s", lw_errmsg());
	return n;
}

static void mkdir_as_server(const char *path)
{
	cr_assert_eq(mkdir(path, 0755), 0, "%s", path);
	lwt_webdav_own(wd, path);
}

/* init makes the folders with MKCOL (again: nothing changes); what else
 * is in locks/ and not named like a lock (a folder, a file) neither blocks
 * a lock nor is ever deleted (a folder named like one blocks:
 * conflict::folder_in_locks_blocks_everywhere); the listing is PROPFIND and
 * every create asks If-None-Match: * */
LWT_PARAMS(dav, init_list_create, LWT_CASES_WEBDAV)
ParameterizedTest(struct lwt_case *c, dav, init_list_create, .init = lwt_nginx_setup,
		  .fini = lwt_nginx_teardown, .timeout = 60)
{
	struct lw_loop *loop = lwt_loop(c->engine);
	struct lw_repo *repo;
	struct lw_lock *lock;
	struct stat st;
	char path[600], odd[600];
	FILE *f;

	lwt_server_start(c);
	repo = lwt_repo(loop, lwt_server_url(c, "/my%20repo/"), LW_SEC(1), LW_SEC(4));
	cr_assert_eq(lw_repo_init(repo), 0, "%s: init: %s", lwt_server_name(c), lw_errmsg());
	snprintf(path, sizeof(path), "%s/my repo/locks", lwt_webdav_root(wd));
	cr_assert_eq(stat(path, &st), 0, "%s: no %s", lwt_server_name(c), path);
	cr_assert(S_ISDIR(st.st_mode));
	snprintf(path, sizeof(path), "%s/my repo/locks/.keep", lwt_webdav_root(wd));
	cr_expect_neq(access(path, F_OK), 0, "MKCOL made the folder, not a PUT of .keep");
	cr_assert_eq(lw_repo_init(repo), 0, "%s: init again: %s", lwt_server_name(c),
		     lw_errmsg());

	snprintf(path, sizeof(path), "%s/my repo/locks/sub", lwt_webdav_root(wd));
	mkdir_as_server(path);
	snprintf(odd, sizeof(odd), "%s/my repo/locks/odd name %%.txt", lwt_webdav_root(wd));
	f = fopen(odd, "w");
	cr_assert_not_null(f);
	fputs("not a lock", f);
	fclose(f);
	lwt_webdav_own(wd, odd);

	cr_assert_eq(list_count(repo), 0, "%s", lwt_server_name(c));
	lock = lwt_acquire(repo, LW_LOCK_EXCLUSIVE);
	cr_assert_eq(list_count(repo), 1, "%s", lwt_server_name(c));
	cr_assert_eq(lwt_server_count_locks(c, "/my repo/"), 1);
	lwt_release(lock);
	cr_expect_eq(lwt_server_count_locks(c, "/my repo/"), 0);
	cr_expect_eq(lw_repo_unlock(repo, LW_UNLOCK_ALL, NULL, NULL), 0, "%s", lw_errmsg());
	cr_expect_eq(access(path, F_OK), 0, "the folder was deleted");
	cr_expect_eq(access(odd, F_OK), 0, "the file that is no lock was deleted");

	/* (rclone keeps no log; Apache logs the path decoded, nginx not) */
	if (lwt_webdav_log_count(wd, "") >= 0) {
		long propfinds = lwt_webdav_log_count(wd, "PROPFIND /my");

		cr_expect_gt(propfinds, 2);
		cr_expect_eq(lwt_webdav_log_count(wd, "locks/ 207"), propfinds);
		/* (a GET of config is the restic-format probe; a listing by GET
		 * would be the JSON index's "locks/ 200") */
		cr_expect_eq(lwt_webdav_log_count(wd, "locks/ 200"), 0, "a listing by GET");
		cr_expect_gt(lwt_webdav_log_count(wd, "PUT /my"), 0);
		cr_expect_eq(lwt_webdav_log_count(wd, "PUT /my"),
			     lwt_webdav_log_count(wd, "inm=*"), "a create without If-None-Match");
	}
	lw_repo_unref(repo);
	lw_loop_free(loop);
}

/* MKCOL needs the folder above: init says which is missing; a repository
 * nobody initialised says so too */
LWT_PARAMS(dav, not_there, LWT_CASES_WEBDAV)
ParameterizedTest(struct lwt_case *c, dav, not_there, .init = lwt_nginx_setup,
		  .fini = lwt_nginx_teardown, .timeout = 30)
{
	struct lw_loop *loop = lwt_loop(c->engine);
	struct lw_repo *repo;

	lwt_server_start(c);
	repo = lwt_repo(loop, lwt_server_url(c, "/no/such/repo/"), LW_SEC(1), LW_SEC(4));
	cr_assert_lt(lw_repo_init(repo), 0);
	cr_expect(strstr(lw_errmsg(), "MKCOL / on 127.0.0.1:") &&
		  strstr(lw_errmsg(), "409 Conflict: the folder that holds the repository "
			 "does not exist"), "%s: %s", lwt_server_name(c), lw_errmsg());
	cr_assert_eq(lw_repo_list(repo, NULL, NULL), -ENOENT, "%s", lw_errmsg());
	cr_expect(strstr(lw_errmsg(), "PROPFIND locks/") && strstr(lw_errmsg(), "run init"),
		  "%s: %s", lwt_server_name(c), lw_errmsg());
	lw_repo_unref(repo);
	lw_loop_free(loop);
}

/* A plain nginx answers PROPFIND 405: its JSON index is used, and that is
 * found out once per repository, not at every listing */
LWT_PARAMS(dav, json_index_found_once, LWT_CASES_ENGINES)
ParameterizedTest(struct lwt_case *c, dav, json_index_found_once, .init = lwt_nginx_setup,
		  .fini = lwt_nginx_teardown, .timeout = 30)
{
	struct lw_loop *loop = lwt_loop(c->engine);
	struct lw_repo *repo = lwt_repo_init(loop, lwt_nginx_url(ng, LWT_DAV, "/once/"),
					     LW_SEC(1), LW_SEC(4));
	struct lw_lock *lock = lwt_acquire(repo, 0);

	for (int i = 0; i < 5; i++)
		cr_assert_eq(list_count(repo), 1);
	lwt_release(lock);
	cr_expect_eq(lwt_nginx_log_count(ng, "PROPFIND /once/locks/ 405"), 1);
	cr_expect_eq(lwt_nginx_log_count(ng, "PROPFIND"), 1);
	cr_expect_geq(lwt_nginx_log_count(ng, "GET /once/locks/ 200"), 7);
	lw_repo_unref(repo);
	lw_loop_free(loop);
}

/* ------------------------------------------------------------ auth */

struct logged {
	char lines[64][400];
	int n;
};

static void keep_log(void *userdata, int priority, const char *msg)
{
	struct logged *l = userdata;

	if (l->n < 64)
		snprintf(l->lines[l->n++], sizeof(l->lines[0]), "%s", msg);
}

static void expect_secret_kept(const struct logged *l, const char *what)
{
	cr_expect_null(strstr(lw_errmsg(), LWT_WEBDAV_PASSWORD), "%s: %s", what, lw_errmsg());
	for (int i = 0; i < l->n; i++)
		cr_expect_null(strstr(l->lines[i], LWT_WEBDAV_PASSWORD), "%s: %s", what,
			       l->lines[i]);
}

struct auth_case {
	enum lw_engine engine;
	bool digest; /* Apache's /digest/, else /basic/ (no pointers: Criterion
			runs the case in a process of its own) */
};

ParameterizedTestParameters(dav, auth)
{
	static struct auth_case cases[] = {
		{ LW_ENGINE_URING, false }, { LW_ENGINE_EPOLL, false },
		{ LW_ENGINE_URING, true }, { LW_ENGINE_EPOLL, true },
	};

	return cr_make_param_array(struct auth_case, cases,
				   lwt_keep_wanted(cases, sizeof(cases) / sizeof(cases[0]),
						   sizeof(cases[0]),
						   offsetof(struct auth_case, engine)));
}

/* Basic and Digest, credentials in the URL or the environment, never in
 * a message; Basic goes with the first request once the server asked */
ParameterizedTest(struct auth_case *a, dav, auth, .timeout = 60)
{
	struct lw_loop *loop = lwt_loop(a->engine);
	struct lw_repo *repo;
	struct lw_lock *lock;
	static struct logged logged;
	const char *path = a->digest ? "/digest/" : "/basic/";
	char url[300], rpath[200];
	int port;

	wd = lwt_webdav_start(LWT_WEBDAV_APACHE);
	cr_assert_not_null(wd);
	port = lwt_webdav_port(wd);
	lw_loop_set_log_fn(loop, keep_log, &logged);
	snprintf(rpath, sizeof(rpath), "%s%s", lwt_webdav_root(wd), path);
	mkdir_as_server(rpath);

	/* none, or the wrong password: refused, and said so */
	snprintf(url, sizeof(url), "dav:http://127.0.0.1:%d%srepo/", port, path);
	repo = lwt_repo(loop, url, LW_SEC(1), LW_SEC(4));
	cr_assert_eq(lw_repo_init(repo), -EACCES, "%s", lw_errmsg());
	cr_expect(strstr(lw_errmsg(), "401 Unauthorized: permission denied (check the user "
			 "name and password)"), "%s", lw_errmsg());
	lw_repo_unref(repo);
	snprintf(url, sizeof(url), "dav:http://%s:Wr0ng@127.0.0.1:%d%srepo/", LWT_WEBDAV_USER,
		 port, path);
	repo = lwt_repo(loop, url, LW_SEC(1), LW_SEC(4));
	cr_assert_eq(lw_repo_init(repo), -EACCES, "%s", lw_errmsg());
	cr_expect_null(strstr(lw_errmsg(), "Wr0ng"), "%s", lw_errmsg());
	lw_repo_unref(repo);

	/* in the URL */
	snprintf(url, sizeof(url), "dav:http://%s:%s@127.0.0.1:%d%srepo/", LWT_WEBDAV_USER,
		 LWT_WEBDAV_PASSWORD, port, path);
	repo = lwt_repo_init(loop, url, LW_SEC(1), LW_SEC(4));
	lock = lwt_acquire(repo, LW_LOCK_EXCLUSIVE);
	lwt_sleep(LW_MSEC(1500)); /* a refresh */
	cr_expect(!lw_ctx_done(lw_lock_ctx(lock)), "%s", lw_ctx_cause(lw_lock_ctx(lock)));
	cr_assert_eq(list_count(repo), 1);
	lwt_release(lock);
	expect_secret_kept(&logged, "with the password in the URL");
	lw_repo_unref(repo);
	if (!a->digest) {
		long asked = lwt_webdav_log_count(wd, " 401 ");

		/* without a password 1, with the wrong one 2 (curl asks which
		 * scheme, then tries it), with the right one only the first
		 * request of the repository: Basic went with every other */
		cr_expect_eq(asked, 4, "%ld requests were answered 401", asked);
	}

	/* from the environment */
	setenv("LOCKWATCH_USER", LWT_WEBDAV_USER, 1);
	setenv("LOCKWATCH_PASSWORD", LWT_WEBDAV_PASSWORD, 1);
	snprintf(url, sizeof(url), "dav:http://127.0.0.1:%d%srepo/", port, path);
	repo = lwt_repo(loop, url, LW_SEC(1), LW_SEC(4));
	lock = lwt_acquire(repo, 0);
	cr_assert_eq(list_count(repo), 1);
	lwt_release(lock);
	expect_secret_kept(&logged, "with the password in the environment");
	unsetenv("LOCKWATCH_USER");
	unsetenv("LOCKWATCH_PASSWORD");
	lw_repo_unref(repo);
	snprintf(rpath, sizeof(rpath), "%srepo/", path);
	cr_expect_eq(lwt_count_locks_in(lwt_webdav_root(wd), rpath), 0);
	lw_loop_free(loop);
	lwt_webdav_stop(wd);
	wd = NULL;
}
