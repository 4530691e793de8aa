/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Repository URL parsing on whatever a user, a script or an environment
 * variable passes.  Beyond not crashing or leaking:
 *  - an error is one line without control characters;
 *  - a parsed URL is consistent (hosts, ports, paths of its kind); its
 *    display string holds nothing that lw__sanitize would replace (no C0,
 *    DEL or C1 control), and parses to the same repository with the
 *    password "***" and displays as itself;
 *  - every request stays under the repository: an HTTP path holds only
 *    characters that stand for themselves and escapes of what neither
 *    ends a path nor makes a segment ('?', '#', '/', '.', '\\', ';', '%'),
 *    and no segment is empty, "." or ".."; an etcd prefix holds no escape;
 *  - the password never shows: the input is parsed a second time with its
 *    password replaced by a marker whose byte 0xa7 nothing else in the URL
 *    holds, and neither the error nor the display may contain that byte.
 */
#include "config.h"

#include <errno.h>
#include <stdbool.h>

#include "fuzz.h"
#include "util/internal.h"
#include "util/url.h"

#define URL_MAX 4096 /* url.c refuses longer ones */

/* "§", raw and percent-encoded: the byte 0xa7 marks every part of it. */
#define MARK "\xc2\xa7%c2%a7\xc2\xa7"
#define MARK_DECODED "\xc2\xa7\xc2\xa7\xc2\xa7"

static bool one_line(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

static bool str_eq(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

static bool terminal_safe(const char *s)
{
	char *copy = strdup(s);
	bool same = copy && strcmp(lw__sanitize(copy), s) == 0;

	free(copy);
	return same;
}

static void check_parsed(const struct lw__url *u)
{
	fuzz_assert(u->path && u->display);
	fuzz_assert(terminal_safe(u->display));
	if (u->kind == LW__URL_LOCAL) {
		fuzz_assert(u->path[0] == '/' && u->nep == 0 && !u->user);
		return;
	}
	fuzz_assert(u->nep >= 1);
	if (u->kind != LW__URL_ETCD) {
		size_t n = strlen(u->path);

		fuzz_assert(u->nep == 1);
		fuzz_assert(u->path[0] == '/' && u->path[n - 1] == '/');
	}
	for (size_t i = 0; i < u->nep; i++) {
		const struct lw__endpoint *ep = &u->ep[i];

		fuzz_assert(ep->host && *ep->host);
		fuzz_assert(ep->port >= 1 && ep->port <= 65535);
		fuzz_assert(ep->base && !strchr(ep->base, '@'));
		fuzz_assert(strncmp(ep->base, ep->tls ? "https://" : "http://",
				    ep->tls ? 8 : 7) == 0);
	}
	fuzz_assert(!u->password || u->user);
}

static int hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* What a server makes of PATH is the folders it names, nothing else. */
static void check_stays(const struct lw__url *u)
{
	const char *p = u->path, *seg = u->path;

	for (; *p; p++) {
		unsigned char c = (unsigned char)*p;

		fuzz_assert(c > 0x20 && c < 0x7f && !strchr("?#\\;\"<>^`{|}[]", c));
		if (c == '/' && u->kind != LW__URL_ETCD) {
			size_t n = (size_t)(p - seg);

			/* an etcd key's segments are not a server's folders */
			fuzz_assert(p == u->path || n > 0);
			fuzz_assert(!(n == 1 && seg[0] == '.') &&
				    !(n == 2 && seg[0] == '.' && seg[1] == '.'));
			seg = p + 1;
			continue;
		}
		if (c != '%')
			continue;
		fuzz_assert(u->kind != LW__URL_ETCD);
		fuzz_assert(hex(p[1]) >= 0 && hex(p[2]) >= 0);
		c = (unsigned char)(hex(p[1]) << 4 | hex(p[2]));
		fuzz_assert(c >= 0x20 && c != 0x7f && !strchr("?#/.\\;%", c));
		p += 2;
	}
	fuzz_assert(u->kind == LW__URL_ETCD || seg == p);
}

/* The display string is the same repository, password hidden. */
static void check_display(const struct lw__url *u)
{
	struct lw__url d;
	char err[256];

	if (strlen(u->display) > URL_MAX)
		return; /* "***" made a shorter password longer */
	fuzz_assert(lw__url_parse(u->display, &d, err, sizeof(err)) == 0);
	fuzz_assert(d.kind == u->kind && d.nep == u->nep);
	fuzz_assert(str_eq(d.path, u->path) && str_eq(d.user, u->user));
	fuzz_assert(!d.password == !u->password);
	fuzz_assert(!d.password || strcmp(d.password, "***") == 0);
	fuzz_assert(strcmp(d.display, u->display) == 0);
	for (size_t i = 0; i < u->nep; i++) {
		fuzz_assert(str_eq(d.ep[i].host, u->ep[i].host));
		fuzz_assert(d.ep[i].port == u->ep[i].port && d.ep[i].tls == u->ep[i].tls);
	}
	lw__url_fini(&d);
}

/*
 * S with the password of its first "scheme://user:password@host" replaced
 * by MARK, or NULL when it has none or already holds the marker's byte.
 */
static char *with_marker(const char *s)
{
	const char *auth = strstr(s, "://"), *end, *at, *colon;
	char *out;

	if (strchr(s, '\xa7') || !auth)
		return NULL;
	auth += 3;
	end = auth + strcspn(auth, "/,");
	at = memchr(auth, '@', (size_t)(end - auth));
	colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
	if (!colon)
		return NULL;
	if (asprintf(&out, "%.*s%s%s", (int)(colon + 1 - s), s, MARK, at) < 0)
		abort();
	return out;
}

static void check_password_hidden(const char *s)
{
	char *marked = with_marker(s), err[256];
	struct lw__url u;

	if (!marked)
		return;
	if (lw__url_parse(marked, &u, err, sizeof(err)) < 0) {
		fuzz_assert(!strchr(err, '\xa7'));
	} else {
		/* local:/a://b:c@d is a path, and shows as one */
		fuzz_assert(!u.password || strcmp(u.password, MARK_DECODED) == 0);
		fuzz_assert(!u.password || !strchr(u.display, '\xa7'));
		lw__url_fini(&u);
	}
	free(marked);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_cstr(data, size), err[256];
	struct lw__url u;
	int r;

	if (!s)
		return FUZZ_REJECT;
	r = lw__url_parse(s, &u, err, sizeof(err));
	if (r < 0) {
		fuzz_assert(r == -EINVAL || r == -ENOMEM);
		fuzz_assert(one_line(err));
		fuzz_assert(!u.path && !u.ep && !u.password && !u.display);
	} else {
		fuzz_assert(r == 0);
		check_parsed(&u);
		if (u.kind != LW__URL_LOCAL)
			check_stays(&u);
		check_display(&u);
		lw__url_fini(&u);
	}
	check_password_hidden(s);
	free(s);
	return 0;
}
