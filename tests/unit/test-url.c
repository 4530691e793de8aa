/* SPDX-License-Identifier: BSD-2-Clause */
/* Repository URLs: every accepted form, and clear errors that never repeat
 * a password. */
#include "config.h"

#include "test.h"
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "util/url.h"

static struct lw__url u;
static char err[256];

static void parse_ok(const char *s)
{
	int r = lw__url_parse(s, &u, err, sizeof(err));

	cr_assert_eq(r, 0, "\"%s\": %s", s, err);
}

static void parse_bad(const char *s, const char *err_has)
{
	int r = lw__url_parse(s, &u, err, sizeof(err));

	cr_expect_eq(r, -EINVAL, "\"%s\" was accepted", s);
	cr_expect(strstr(err, err_has), "\"%s\": error \"%s\" lacks \"%s\"", s, err, err_has);
	cr_expect(!strstr(err, "s3cret"), "the error repeats the password: %s", err);
	cr_expect_null(u.path, "nothing is left allocated on error");
}

static void fini(void)
{
	lw__url_fini(&u);
}

Test(url, local_paths, .fini = fini)
{
	char cwd[4096], want[4200];

	parse_ok("/srv/repo/");
	cr_expect_eq(u.kind, LW__URL_LOCAL);
	cr_expect_str_eq(u.path, "/srv/repo");
	cr_expect_str_eq(u.display, "/srv/repo");
	lw__url_fini(&u);
	parse_ok("local:/srv/repo");
	cr_expect_str_eq(u.path, "/srv/repo");
	lw__url_fini(&u);
	parse_ok("repo");
	cr_assert(getcwd(cwd, sizeof(cwd)));
	snprintf(want, sizeof(want), "%s/repo", cwd);
	cr_expect_str_eq(u.path, want, "relative paths are made absolute");
}

Test(url, rest_and_dav, .fini = fini)
{
	parse_ok("rest:http://backup.example:8000/repo");
	cr_expect_eq(u.kind, LW__URL_REST);
	cr_assert_eq(u.nep, 1);
	cr_expect_str_eq(u.ep[0].host, "backup.example");
	cr_expect_eq(u.ep[0].port, 8000);
	cr_expect(!u.ep[0].tls);
	cr_expect_str_eq(u.ep[0].base, "http://backup.example:8000");
	cr_expect_str_eq(u.path, "/repo/", "the path ends with a slash");
	lw__url_fini(&u);

	parse_ok("dav:https://h");
	cr_expect_eq(u.kind, LW__URL_DAV);
	cr_expect(u.ep[0].tls);
	cr_expect_eq(u.ep[0].port, 443, "default port of https");
	cr_expect_str_eq(u.path, "/");
	lw__url_fini(&u);

	parse_ok("dav:http://[::1]:8080/a/b/");
	cr_expect_str_eq(u.ep[0].host, "::1");
	cr_expect_str_eq(u.ep[0].base, "http://[::1]:8080");
	cr_expect_str_eq(u.path, "/a/b/");
}

Test(url, credentials, .fini = fini)
{
	parse_ok("rest:https://alice:s3cret%40x@host/repo/");
	cr_expect_str_eq(u.user, "alice");
	cr_expect_str_eq(u.password, "s3cret@x", "percent-decoded");
	cr_expect(!strstr(u.display, "s3cret"), "display: %s", u.display);
	cr_expect_str_eq(u.display, "rest:https://alice:***@host/repo/");
	cr_expect(!strstr(u.ep[0].base, "alice"), "the base URL carries no credentials");
	lw__url_fini(&u);
	parse_ok("dav:http://bob@host/");
	cr_expect_str_eq(u.user, "bob");
	cr_expect_null(u.password);
}

Test(url, etcd, .fini = fini)
{
	parse_ok("etcd:http://10.0.0.1:2379,http://10.0.0.2:2379,https://h3:2379/backups/");
	cr_expect_eq(u.kind, LW__URL_ETCD);
	cr_assert_eq(u.nep, 3);
	cr_expect_str_eq(u.ep[1].base, "http://10.0.0.2:2379");
	cr_expect(u.ep[2].tls);
	cr_expect_str_eq(u.path, "backups");
	lw__url_fini(&u);
	parse_ok("etcd:http://127.0.0.1:2379");
	cr_expect_str_eq(u.path, "");
}

Test(url, errors, .fini = fini)
{
	parse_bad("", "empty");
	parse_bad("ftp://host/repo", "unsupported repository type 'ftp'");
	parse_bad("s3:bucket", "unsupported repository type 's3'");
	parse_bad("rest:ftp://host/", "expected http:// or https://");
	parse_bad("rest:http:///repo", "host");
	parse_bad("rest:http://ho st/", "spaces or control characters");
	parse_bad("rest:http://host:0/", "bad port");
	parse_bad("rest:http://host:65536/", "bad port");
	parse_bad("rest:http://host:80x/", "bad port");
	parse_bad("rest:http://host/a/../b", "'..'");
	parse_bad("rest:http://host//b", "'//'");
	parse_bad("rest:http://a:s3cret@b@host/", "more than one '@'");
	parse_bad("rest:http://alice:s3cret%zz@host/", "encoding");
	parse_bad("rest:http://h1,http://h2/", "only etcd");
	parse_bad("etcd:http://h1:2379,http://a:s3cret@h2:2379/p", "first endpoint");
	parse_bad("rest:http://[::1/", "IPv6");
	parse_bad("local:", "empty path");
	parse_bad("dav:http://host/\x1b[2J", "control characters");
	parse_bad("dav:http://host/\xc2\x9b" "2J", "control characters"); /* C1 CSI */
	parse_bad("/srv/\xc2\x85repo", "control characters");
}

/* What would make a request's path differ from the repository's path plus
 * locks/<id>: refused, naming the character (issue 12: a '#' aimed
 * DELETE at the repository itself). */
Test(url, path_must_stay_the_path, .fini = fini)
{
	static const char *const bad[][2] = {
		{ "dav:http://127.0.0.1:8080/repo/#", "'#' in the path starts a fragment" },
		{ "rest:http://127.0.0.1:8000/r/?", "'?' in the path starts a query" },
		{ "rest:http://h/r?x=1", "'?'" },
		{ "dav:http://h/repo/%2e%2e/", "'%2e' in the path is an encoded '.'" },
		{ "dav:http://h/repo/%2E./", "'%2E'" },
		{ "dav:http://h/a%2fb/", "'%2f' in the path is an encoded '/'" },
		{ "dav:http://h/a%2Fb/", "encoded '/'" },
		{ "dav:http://h/a%3fb/", "encoded '?'" },
		{ "dav:http://h/a%23b/", "encoded '#'" },
		{ "dav:http://h/a%252e/", "encoded '%'" },
		{ "dav:http://h/a%5c..%5cb/", "encoded '\\'" },
		{ "dav:http://h/a\\b/", "'\\' in the path" },
		{ "dav:http://h/a;b/", "';' in the path" },
		{ "dav:http://h/a%0ab/", "'%0a' in the path is a control character" },
		{ "dav:http://h/a%00b/", "control character" },
		{ "dav:http://h/a%c2%9bb/", "control character" },
		{ "dav:http://h/a%zzb/", "not an escape" },
		{ "dav:http://h/a%2/", "not an escape" },
		{ "dav:http://h/r\xc3\xa9po/", "byte 0xc3 in the path" },
		{ "dav:http://h/a\"b/", "'\"' in the path" },
		{ "dav:http://h/a{b}/", "'{'" },
		{ "etcd:http://h:2379/p?x", "'?' in the path" },
		{ "etcd:http://h:2379/p#x", "'#'" },
		{ "etcd:http://h:2379/p%2f", "'%'" },
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		parse_bad(bad[i][0], bad[i][1]);
	/* what stands for itself, and escapes of the rest, are fine */
	parse_ok("dav:http://h/r%C3%A9po/my%20repo/a-b_c.d~e!$&'()*+,=:@/");
	cr_expect_str_eq(u.path, "/r%C3%A9po/my%20repo/a-b_c.d~e!$&'()*+,=:@/");
	lw__url_fini(&u);
	parse_ok("etcd:http://h:2379/backups/host-1");
	cr_expect_str_eq(u.path, "backups/host-1");
}

/* An error never echoes the password, even when the URL is bad after it. */
Test(url, error_hides_password, .fini = fini)
{
	parse_bad("rest:http://alice:s3cret@host:99999/", "bad port");
}
