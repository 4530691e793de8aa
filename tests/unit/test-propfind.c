/* SPDX-License-Identifier: BSD-2-Clause */
/* The PROPFIND multistatus parser of the dav: backend: pure code, no
 * server.  The replies are shaped as Apache, nginx's dav-ext and rclone
 * write them (tests/helpers/webdav.c records what each sends). */
#include "config.h"

#include "test.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/propfind.h"
#include "engine/engine.h"

#define A64 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define B63 "123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define B64 "0" B63
#define DIR "/backups/repo/locks/"

#define MS_OPEN "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<D:multistatus xmlns:D=\"DAV:\">"
#define MS_CLOSE "</D:multistatus>\n"
/* a member as Apache lists it */
#define FILE_AT(href)                                                          \
	"<D:response><D:href>" href "</D:href><D:propstat><D:prop>"           \
	"<D:resourcetype/><D:getcontentlength>312</D:getcontentlength>"       \
	"</D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>"
#define DIR_AT(href)                                                           \
	"<D:response><D:href>" href "</D:href><D:propstat><D:prop>"           \
	"<D:resourcetype><D:collection/></D:resourcetype></D:prop>"           \
	"<D:status>HTTP/1.1 200 OK</D:status></D:propstat>"                   \
	"<D:propstat><D:prop><D:getcontentlength/></D:prop>"                  \
	"<D:status>HTTP/1.1 404 Not Found</D:status></D:propstat></D:response>"

static char why[160];

static int parse_at(const char *dir, const char *s, size_t len, struct lw__id **ids,
		    uint8_t **types, size_t *n)
{
	why[0] = '\0';
	return lw__propfind_parse(s, len, dir, ids, types, n, why, sizeof(why));
}

/* The names parsed from S, as hex ("hex/" for a folder named like a lock),
 * space-separated; parsed without types too, which skips the folders. */
static const char *names_at(const char *dir, const char *s)
{
	static char out[2048];
	char files[2048] = "", hex[LW_ID_HEX + 1];
	struct lw__id *ids;
	uint8_t *types;
	size_t n, nfiles = 0;
	int r = parse_at(dir, s, strlen(s), &ids, &types, &n);

	cr_assert_eq(r, 0, "%s: %s", s, why);
	cr_assert_eq(!ids, !n);
	out[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		bool folder = types && types[i] == LW__FTYPE_DIR;

		cr_assert(!types || types[i] == LW__FTYPE_DIR || types[i] == LW__FTYPE_FILE);
		lw__id_hex(&ids[i], hex);
		strcat(out, i ? " " : "");
		strcat(out, hex);
		strcat(out, folder ? "/" : "");
		if (!folder) {
			strcat(files, nfiles++ ? " " : "");
			strcat(files, hex);
		}
	}
	cr_assert(!types || strchr(out, '/'), "types without a folder");
	free(ids);
	free(types);

	cr_assert_eq(parse_at(dir, s, strlen(s), &ids, NULL, &n), 0, "%s: %s", s, why);
	cr_assert_eq(n, nfiles, "untyped: %zu entries, not the %zu files", n, nfiles);
	for (size_t i = 0; i < n; i++) {
		lw__id_hex(&ids[i], hex);
		cr_assert_eq(strncmp(files + i * (LW_ID_HEX + 1), hex, LW_ID_HEX), 0,
			     "untyped: not the files, in order: %s", files);
	}
	free(ids);
	return out;
}

static const char *names(const char *s)
{
	return names_at(DIR, s);
}

static void refused_len(const char *s, size_t len, const char *reason)
{
	struct lw__id *ids = (void *)1;
	uint8_t *types = (void *)1;
	size_t n = 7;

	cr_assert_eq(parse_at(DIR, s, len, &ids, &types, &n), -EBADMSG, "accepted: %.200s", s);
	cr_assert_null(ids);
	cr_assert_null(types);
	cr_assert_eq(n, 0);
	cr_assert(strstr(why, reason), "%.200s: \"%s\" does not say \"%s\"", s, why, reason);
	cr_assert_null(strchr(why, '\n'), "one line: %s", why);
}

static void refused(const char *s, const char *reason)
{
	refused_len(s, strlen(s), reason);
}

/* Apache: D: prefix, paths, the collection itself first, a subfolder */
Test(propfind, apache_paths)
{
	cr_assert_str_eq(names(MS_OPEN DIR_AT(DIR) FILE_AT(DIR A64) DIR_AT(DIR "sub/")
			       FILE_AT(DIR B64) MS_CLOSE),
			 A64 " " B64);
}

/* absolute URLs, as some servers (IIS, SabreDAV setups) write them */
Test(propfind, absolute_urls)
{
	cr_assert_str_eq(names(MS_OPEN FILE_AT("http://127.0.0.1:8080" DIR A64)
			       FILE_AT("https://[::1]" DIR B64) MS_CLOSE),
			 A64 " " B64);
	/* the URL's host is the server's business; its path decides */
	cr_assert_str_eq(names(MS_OPEN FILE_AT("http://elsewhere.example/other/locks/" A64)
			       MS_CLOSE),
			 "");
}

/* a relative reference is resolved against the collection */
Test(propfind, relative_hrefs)
{
	cr_assert_str_eq(names(MS_OPEN FILE_AT(A64) FILE_AT("locks/" B64) MS_CLOSE), A64);
}

/* the prefix is the document's choice: another one, or none */
Test(propfind, any_prefix)
{
	cr_assert_str_eq(names("<lp1:multistatus xmlns:lp1=\"DAV:\"><lp1:response>"
			       "<lp1:href>" DIR A64 "</lp1:href></lp1:response></lp1:multistatus>"),
			 A64);
	/* nginx dav-ext: a default namespace */
	cr_assert_str_eq(names("<?xml version=\"1.0\" encoding=\"utf-8\" ?>\n"
			       "<multistatus xmlns=\"DAV:\">\n<response>\n<href>" DIR "</href>\n"
			       "<propstat>\n<prop>\n<resourcetype><collection/></resourcetype>\n"
			       "</prop>\n<status>HTTP/1.1 200 OK</status>\n</propstat>\n</response>\n"
			       "<response>\n<href>" DIR B64 "</href>\n<propstat>\n<prop>\n"
			       "<resourcetype></resourcetype>\n<getcontentlength>5</getcontentlength>\n"
			       "</prop>\n<status>HTTP/1.1 200 OK</status>\n</propstat>\n</response>\n"
			       "</multistatus>\n"),
			 B64);
	/* a prefix bound to another namespace names other elements */
	cr_assert_str_eq(names("<D:multistatus xmlns:D=\"DAV:\" xmlns:X=\"urn:x\">"
			       "<X:response><D:href>" DIR A64 "</D:href></X:response>"
			       "<D:response><X:href>" DIR A64 "</X:href><D:href>" DIR B64
			       "</D:href></D:response></D:multistatus>"),
			 B64);
}

/* rclone writes paths percent-encoded, Apache too where it must */
Test(propfind, percent_encoding)
{
	cr_assert_str_eq(names_at("/my%20backups/locks/",
				  MS_OPEN FILE_AT("/my%20backups/locks/" A64)
				  FILE_AT("/my backups/locks/" B64) MS_CLOSE),
			 A64 " " B64);
	cr_assert_str_eq(names_at("/my backups/locks/",
				  MS_OPEN FILE_AT("/my%20backups/locks/%30" B63) MS_CLOSE),
			 B64);
	cr_assert_str_eq(names(MS_OPEN FILE_AT("/backups%2Frepo/locks/" A64)
			       FILE_AT(DIR "%2e%2e/locks/" A64) FILE_AT(DIR "%zz" A64)
			       FILE_AT(DIR "%00" A64) FILE_AT(DIR "%4") MS_CLOSE),
			 "");
	/* upper-case hex in an escape is still the same byte */
	cr_assert_str_eq(names(MS_OPEN FILE_AT("/backups/repo/lock%73/" B64) MS_CLOSE), B64);
}

/* the collection itself, with or without its slash, and other folders
 * are skipped; a folder named like a lock is one (by its resourcetype or
 * its trailing slash), for the listing to block on as "not a lock file" */
Test(propfind, collections)
{
	cr_assert_str_eq(names(MS_OPEN DIR_AT("/backups/repo/locks") DIR_AT(DIR)
			       DIR_AT(DIR "sub/") DIR_AT(DIR A64 "/") DIR_AT(DIR B64)
			       FILE_AT(DIR B64 "/") FILE_AT(DIR A64) MS_CLOSE),
			 A64 "/ " B64 "/ " B64 "/ " A64);
	/* DIR given without its slash means the same folder */
	cr_assert_str_eq(names_at("/backups/repo/locks", MS_OPEN FILE_AT(DIR A64) MS_CLOSE),
			 A64);
}

/* hrefs elsewhere, or that only look like a lock file */
Test(propfind, foreign_hrefs)
{
	cr_assert_str_eq(names(MS_OPEN FILE_AT("/backups/other/locks/" A64)
			       FILE_AT(DIR "../locks/" A64) FILE_AT(DIR "./" A64)
			       FILE_AT(DIR "sub/" A64) FILE_AT("/backups/repo/" A64)
			       FILE_AT(DIR A64 "?x") FILE_AT(DIR A64 "#x")
			       FILE_AT(DIR "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
			       FILE_AT(DIR A64 "a") FILE_AT(DIR ".keep") FILE_AT("")
			       FILE_AT(DIR B64) MS_CLOSE),
			 B64);
}

/* whitespace around an href is layout; a member listed as gone is gone */
Test(propfind, layout_and_status)
{
	cr_assert_str_eq(names(MS_OPEN "<D:response><D:href>\n  " DIR A64 "\n</D:href>"
			       "<D:status>HTTP/1.1 200 OK</D:status></D:response>"
			       "<D:response><D:href>" DIR B64 "</D:href>"
			       "<D:status>HTTP/1.1 404 Not Found</D:status></D:response>"
			       "<D:response><D:href><![CDATA[" DIR "]]>" B64 "</D:href></D:response>"
			       "<D:responsedescription>fine</D:responsedescription>" MS_CLOSE),
			 A64 " " B64);
}

Test(propfind, empty_listing)
{
	cr_assert_str_eq(names(MS_OPEN MS_CLOSE), "");
	cr_assert_str_eq(names("<D:multistatus xmlns:D=\"DAV:\"/>"), "");
}

Test(propfind, not_a_multistatus)
{
	refused("", "empty");
	refused("<?xml version=\"1.0\"?><D:prop xmlns:D=\"DAV:\"/>", "not a DAV: multistatus");
	refused("<multistatus><response><href>" DIR A64 "</href></response></multistatus>",
		"not a DAV: multistatus");
	refused("[{\"name\":\"" A64 "\",\"type\":\"file\"}]", "invalid XML");
	refused(MS_OPEN "<D:response><D:propstat/></D:response>" MS_CLOSE, "without an href");
	refused(MS_OPEN "<D:response><D:href>" DIR A64 "</D:href><D:href>" DIR B64
		"</D:href></D:response>" MS_CLOSE, "two hrefs");
	refused(MS_OPEN MS_CLOSE "<D:multistatus xmlns:D=\"DAV:\"/>", "invalid XML");
}

/* what an error page in place of the listing looks like */
Test(propfind, html)
{
	refused("<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
		"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
		"</body>\r\n</html>\r\n", "an HTML page");
	refused("<!DOCTYPE HTML PUBLIC \"-//IETF//DTD HTML 2.0//EN\">\n<html><head>\n"
		"<title>401 Unauthorized</title>\n</head><body></body></html>\n", "an HTML page");
	refused("<!doctype html><html lang=en><title>x</title>", "an HTML page");
	refused("<html xmlns=\"http://www.w3.org/1999/xhtml\"><body/></html>", "an HTML page");
}

Test(propfind, truncated)
{
	const char *full = MS_OPEN FILE_AT(DIR A64) FILE_AT(DIR B64) MS_CLOSE;
	size_t len = strlen(full);

	/* cut anywhere, it is never taken for a shorter listing */
	for (size_t cut = 1; cut < len - 1; cut++) {
		struct lw__id *ids;
		size_t n;

		cr_assert_eq(parse_at(DIR, full, cut, &ids, NULL, &n), -EBADMSG, "cut at %zu", cut);
		cr_assert(strstr(why, "XML"), "cut at %zu: %s", cut, why);
	}
	refused_len(full, len - strlen(MS_CLOSE), "truncated XML");
}

/* no DTD at all: no entity is declared, expanded or fetched */
Test(propfind, doctype_and_entities)
{
	refused("<?xml version=\"1.0\"?>\n<!DOCTYPE lolz [\n<!ENTITY lol \"lol\">\n"
		"<!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n"
		"<!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">\n]>\n"
		"<D:multistatus xmlns:D=\"DAV:\"><D:response><D:href>&lol3;</D:href>"
		"</D:response></D:multistatus>", "DOCTYPE");
	refused("<?xml version=\"1.0\"?><!DOCTYPE m [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>"
		"<D:multistatus xmlns:D=\"DAV:\"><D:response><D:href>&x;</D:href>"
		"</D:response></D:multistatus>", "DOCTYPE");
	refused("<!DOCTYPE D:multistatus SYSTEM \"http://127.0.0.1:1/dtd\">"
		"<D:multistatus xmlns:D=\"DAV:\"/>", "DOCTYPE");
	/* an entity that nothing declared */
	refused(MS_OPEN "<D:response><D:href>&x;</D:href></D:response>" MS_CLOSE,
		"undefined entity");
	/* the five of XML itself are plain text */
	cr_assert_str_eq(names(MS_OPEN FILE_AT("/backups/repo/locks/&#48;" B63)
			       FILE_AT(DIR "&amp;" A64) MS_CLOSE),
			 B64);
}

static char *repeat(const char *head, const char *unit, size_t times, const char *tail)
{
	size_t hl = strlen(head), ul = strlen(unit), tl = strlen(tail);
	char *s = malloc(hl + ul * times + tl + 1), *p = s;

	cr_assert_not_null(s);
	memcpy(p, head, hl);
	p += hl;
	for (size_t i = 0; i < times; i++, p += ul)
		memcpy(p, unit, ul);
	memcpy(p, tail, tl + 1);
	return s;
}

Test(propfind, bounds)
{
	struct lw__id *ids;
	size_t n;
	char *s;

	/* nesting: 32 levels are fine (28 inside prop), 33 are not */
	{
		char open[4096] = "", close[4096] = "";

		for (int i = 0; i < 28; i++) {
			strcat(open, "<p>");
			strcat(close, "</p>");
		}
		char *ok;

		cr_assert(asprintf(&ok, MS_OPEN "<D:response><D:href>" DIR A64 "</D:href>"
				   "<D:propstat><D:prop>%s%s</D:prop></D:propstat></D:response>"
				   MS_CLOSE, open, close) > 0);
		cr_assert_str_eq(names(ok), A64);
		free(ok);
		cr_assert(asprintf(&ok, MS_OPEN "<D:response><D:href>" DIR A64 "</D:href>"
				   "<D:propstat><D:prop><p>%s%s</p></D:prop></D:propstat></D:response>"
				   MS_CLOSE, open, close) > 0);
		refused(ok, "nested more than 32 deep");
		free(ok);
	}

	/* an href of 4,096 bytes is read, one more byte is refused */
	s = repeat(MS_OPEN "<D:response><D:href>/", "x", 4095, "</D:href></D:response>" MS_CLOSE);
	cr_assert_str_eq(names(s), "");
	free(s);
	s = repeat(MS_OPEN "<D:response><D:href>/", "x", 4096, "</D:href></D:response>" MS_CLOSE);
	refused(s, "an href over 4096 bytes");
	free(s);

	/* 100,000 locks are listed; a million entries are taken, one more is
	 * refused */
	s = repeat(MS_OPEN, FILE_AT(DIR A64), 100000, MS_CLOSE);
	cr_assert_eq(parse_at(DIR, s, strlen(s), &ids, NULL, &n), 0, "%s", why);
	cr_assert_eq(n, 100000);
	free(ids);
	free(s);
	s = repeat(MS_OPEN, "<D:response><D:href>x</D:href></D:response>", 1000000, MS_CLOSE);
	cr_assert_str_eq(names(s), "");
	free(s);
	s = repeat(MS_OPEN, "<D:response><D:href>x</D:href></D:response>", 1000001, MS_CLOSE);
	refused(s, "more than 1000000 entries");
	free(s);

	/* the whole reply: LW_PROPFIND_MAX bytes at most, refused unread */
	s = repeat(MS_OPEN, " ", LW_PROPFIND_MAX - strlen(MS_OPEN MS_CLOSE) + 1, MS_CLOSE);
	refused(s, "a multistatus over 67108864 bytes");
	free(s);
}

/* what the backend passes: the request's URL, or a path that is not one */
Test(propfind, dir_forms)
{
	cr_assert_str_eq(names_at("http://127.0.0.1:1/backups/repo/locks/",
				  MS_OPEN FILE_AT(DIR A64) MS_CLOSE),
			 A64);
	cr_assert_eq(parse_at("relative/", MS_OPEN MS_CLOSE, strlen(MS_OPEN MS_CLOSE),
			      &(struct lw__id *){ NULL }, NULL, &(size_t){ 0 }),
		     -EINVAL);
}
