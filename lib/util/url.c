/* SPDX-License-Identifier: BSD-2-Clause */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/internal.h"
#include "util/url.h"

#define MAX_URL 4096

static int bad(char *err, size_t size, const char *fmt, ...) LW_PRINTF(3, 4);

static int bad(char *err, size_t size, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, size, fmt, ap);
	va_end(ap);
	lw__sanitize(err);
	return -EINVAL;
}

/* Spaces and what lw__sanitize would replace: C0, DEL, and C1 in UTF-8,
 * which a terminal obeys as readily as ESC (0xc2 0x9b is CSI). */
static bool has_ctl(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p <= 0x20 || *p == 0x7f || (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f))
			return true;
	return false;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent-decodes N bytes of S; NULL for a bad escape or a NUL. */
static char *pct_decode(const char *s, size_t n)
{
	char *out = malloc(n + 1), *o = out;

	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '%') {
			int hi = i + 2 < n ? hexval(s[i + 1]) : -1;
			int lo = hi >= 0 ? hexval(s[i + 2]) : -1;

			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
				free(out);
				return NULL;
			}
			*o++ = (char)(hi << 4 | lo);
			i += 2;
		} else {
			*o++ = s[i];
		}
	}
	*o = '\0';
	return out;
}

static bool host_ok(const char *h, size_t n, bool bracketed)
{
	if (n == 0 || n > 253)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = h[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  (c >= '0' && c <= '9') || c == '.' || c == '-' ||
			  (bracketed ? c == ':' : c == '_');

		if (!ok)
			return false;
	}
	return true;
}

/*
 * Parses "http[s]://[user[:pass]@]host[:port]" at S up to the first '/'
 * (or the end); *REST points after it.  Credentials go to U.
 */
static int parse_endpoint(const char *s, const char **rest, struct lw__endpoint *ep,
			  struct lw__url *u, bool creds_ok, char *err, size_t es)
{
	const char *auth, *end, *at, *host, *hend, *colon;
	char portbuf[8];
	size_t hlen;

	if (strncmp(s, "http://", 7) == 0) {
		auth = s + 7;
	} else if (strncmp(s, "https://", 8) == 0) {
		auth = s + 8;
		ep->tls = true;
	} else {
		return bad(err, es, "%s: expected http:// or https://", "URL");
	}
	end = auth + strcspn(auth, "/,");
	at = memchr(auth, '@', (size_t)(end - auth));
	host = auth;
	if (at) {
		const char *c = memchr(auth, ':', (size_t)(at - auth));

		if (!creds_ok)
			return bad(err, es, "%s: credentials belong in the first endpoint", "URL");
		if (memchr(at + 1, '@', (size_t)(end - at - 1)))
			return bad(err, es, "%s: more than one '@' in the host part", "URL");
		u->user = pct_decode(auth, (size_t)((c ? c : at) - auth));
		if (c)
			u->password = pct_decode(c + 1, (size_t)(at - c - 1));
		if (!u->user || (c && !u->password) || !*u->user)
			return bad(err, es, "%s: bad user name or password encoding", "URL");
		host = at + 1;
	}
	if (*host == '[') {
		hend = memchr(host, ']', (size_t)(end - host));
		if (!hend || !host_ok(host + 1, (size_t)(hend - host - 1), true))
			return bad(err, es, "%s: bad IPv6 address", "URL");
		ep->host = strndup(host + 1, (size_t)(hend - host - 1));
		colon = hend + 1 < end && hend[1] == ':' ? hend + 1 : NULL;
		if (hend + 1 != end && !colon)
			return bad(err, es, "%s: junk after the IPv6 address", "URL");
	} else {
		colon = memchr(host, ':', (size_t)(end - host));
		hlen = (size_t)((colon ? colon : end) - host);
		if (!host_ok(host, hlen, false))
			return bad(err, es, "%s: missing or invalid host name", "URL");
		ep->host = strndup(host, hlen);
	}
	if (!ep->host)
		return -ENOMEM;
	ep->port = ep->tls ? 443 : 80;
	if (colon) {
		size_t plen = (size_t)(end - colon - 1);
		char *pend;
		long port;

		if (plen == 0 || plen > 5)
			return bad(err, es, "%s: bad port", "URL");
		memcpy(portbuf, colon + 1, plen);
		portbuf[plen] = '\0';
		port = strtol(portbuf, &pend, 10);
		if (*pend || port < 1 || port > 65535)
			return bad(err, es, "%s: bad port", "URL");
		ep->port = (int)port;
	}
	if (asprintf(&ep->base, "%s://%s%s%s:%d", ep->tls ? "https" : "http",
		     strchr(ep->host, ':') ? "[" : "", ep->host,
		     strchr(ep->host, ':') ? "]" : "", ep->port) < 0) {
		ep->base = NULL;
		return -ENOMEM;
	}
	*rest = end;
	return 0;
}

static int parse_local(const char *path, struct lw__url *u, char *err, size_t es)
{
	size_t n = strlen(path);
	char cwd[4096];

	if (n == 0)
		return bad(err, es, "%s: empty path", "repository");
	while (n > 1 && path[n - 1] == '/')
		n--;
	if (path[0] == '/') {
		u->path = strndup(path, n);
	} else {
		if (!getcwd(cwd, sizeof(cwd)))
			return bad(err, es, "%s: cannot resolve a relative path", "repository");
		if (asprintf(&u->path, "%s/%.*s", cwd, (int)n, path) < 0)
			u->path = NULL;
	}
	if (!u->path)
		return -ENOMEM;
	u->kind = LW__URL_LOCAL;
	u->display = strdup(u->path);
	return u->display ? 0 : -ENOMEM;
}

/* What a character of a path would do to a request, if it changes its
 * target; NULL for one that stands for itself. */
static const char *path_effect(unsigned char c)
{
	switch (c) {
	case '?': return "starts a query";
	case '#': return "starts a fragment";
	case '/': return "separates folders";
	case '.': return "can form a '.' or '..' segment";
	case '\\': return "separates folders on some servers";
	case ';': return "starts path parameters on some servers";
	case '%': return "starts an escape";
	default: return NULL;
	}
}

/* The characters that stand for themselves in a path on every server:
 * RFC 3986's unreserved ones, the sub-delimiters but ';', ':' and '@'. */
static bool path_plain(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || (c && strchr("-._~!$&'()*+,=:@/", c));
}

/*
 * Every request's path must be the repository's path plus locks/<id>:
 * libcurl ends the path at '?' or '#' and a server decodes "%2e%2e" to a
 * ".." segment, which would aim a DELETE at the repository itself.  So a
 * path holds only characters that stand for themselves, and escapes of
 * anything but the separators and dots (ESCAPES false: none at all, for an
 * etcd key prefix, which is not decoded).  The message names the first
 * character refused.
 */
static int path_check(const char *path, bool escapes, char *err, size_t es)
{
	for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
		int hi, lo;
		unsigned char c;

		if (path_plain(*p))
			continue;
		if (*p != '%' || !escapes) {
			if (path_effect(*p))
				return bad(err, es, "%s: '%c' in the path %s; such a path is refused",
					   "URL", *p, path_effect(*p));
			if (*p >= 0x80)
				return bad(err, es, "%s: byte 0x%02x in the path; percent-encode "
					   "characters outside ASCII", "URL", *p);
			return bad(err, es, "%s: '%c' in the path; %s", "URL", *p,
				   escapes ? "percent-encode it" : "an etcd prefix cannot hold it");
		}
		hi = hexval((char)p[1]);
		lo = hi >= 0 ? hexval((char)p[2]) : -1;
		if (hi < 0 || lo < 0)
			return bad(err, es, "%s: a '%%' in the path that is not an escape", "URL");
		c = (unsigned char)(hi << 4 | lo);
		if (c < 0x20 || c == 0x7f ||
		    (c == 0xc2 && p[3] == '%' && (p[4] == '8' || p[4] == '9')))
			return bad(err, es, "%s: '%.3s' in the path is a control character; such a path is refused",
				   "URL", (const char *)p);
		if (path_effect(c))
			return bad(err, es, "%s: '%.3s' in the path is an encoded '%c', which %s; "
				   "such a path is refused", "URL", (const char *)p, c,
				   path_effect(c));
		p += 2;
	}
	return 0;
}

static int parse_http(const char *s, struct lw__url *u, char *err, size_t es)
{
	const char *rest;
	size_t n;
	int r;

	u->ep = calloc(1, sizeof(*u->ep));
	if (!u->ep)
		return -ENOMEM;
	u->nep = 1;
	r = parse_endpoint(s, &rest, u->ep, u, true, err, es);
	if (r < 0)
		return r;
	if (*rest == ',')
		return bad(err, es, "%s: only etcd takes several endpoints", "URL");
	n = strlen(rest);
	if (asprintf(&u->path, "%s%s%s", *rest == '/' ? "" : "/", rest,
		     !n || rest[n - 1] == '/' ? "" : "/") < 0) {
		u->path = NULL;
		return -ENOMEM;
	}
	if (strstr(u->path, "/../") || strstr(u->path, "/./") || strstr(u->path, "//"))
		return bad(err, es, "%s: path with '.', '..' or '//' segments", "URL");
	return path_check(u->path, true, err, es);
}

static int parse_etcd(const char *s, struct lw__url *u, char *err, size_t es)
{
	const char *p = s;
	int r;

	for (;;) {
		struct lw__endpoint *ep = realloc(u->ep, (u->nep + 1) * sizeof(*ep));

		if (!ep)
			return -ENOMEM;
		u->ep = ep;
		memset(&ep[u->nep], 0, sizeof(*ep));
		r = parse_endpoint(p, &p, &ep[u->nep], u, u->nep == 0, err, es);
		u->nep++;
		if (r < 0)
			return r;
		if (*p != ',')
			break;
		p++;
	}
	if (*p && *p != '/')
		return bad(err, es, "%s: bad etcd endpoint list", "URL");
	/* the prefix, without the slashes around it: "/backups/" -> "backups" */
	while (*p == '/')
		p++;
	u->path = strdup(p);
	if (!u->path)
		return -ENOMEM;
	for (size_t n = strlen(u->path); n && u->path[n - 1] == '/'; n--)
		u->path[n - 1] = '\0';
	return path_check(u->path, false, err, es);
}

/* The URL as typed, with the password replaced. */
static int make_display(const char *s, struct lw__url *u)
{
	const char *at, *auth = strstr(s, "://"), *colon;

	if (!u->password || !auth) {
		u->display = strdup(s);
		return u->display ? 0 : -ENOMEM;
	}
	auth += 3;
	at = strchr(auth, '@');
	colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
	if (!colon) {
		u->display = strdup(s);
		return u->display ? 0 : -ENOMEM;
	}
	if (asprintf(&u->display, "%.*s:***%s", (int)(colon - s), s, at) < 0) {
		u->display = NULL;
		return -ENOMEM;
	}
	return 0;
}

int lw__url_parse(const char *s, struct lw__url *u, char *err, size_t es)
{
	static const struct {
		const char *prefix;
		enum lw__url_kind kind;
	} schemes[] = {
		{ "rest:", LW__URL_REST }, { "dav:", LW__URL_DAV },
		{ "etcd:", LW__URL_ETCD }, { "local:", LW__URL_LOCAL },
	};
	const char *colon, *slash;
	int r = -EINVAL;

	memset(u, 0, sizeof(*u));
	snprintf(err, es, "invalid URL");
	if (!s || !*s)
		return bad(err, es, "%s: empty", "repository URL");
	if (strlen(s) > MAX_URL)
		return bad(err, es, "%s: longer than 4096 bytes", "repository URL");
	if (has_ctl(s))
		return bad(err, es, "%s: holds spaces or control characters", "repository URL");
	for (size_t i = 0; i < LW_ARRAY_SIZE(schemes); i++) {
		size_t n = strlen(schemes[i].prefix);

		if (strncmp(s, schemes[i].prefix, n) != 0)
			continue;
		u->kind = schemes[i].kind;
		switch (u->kind) {
		case LW__URL_LOCAL:
			r = parse_local(s + n, u, err, es);
			break;
		case LW__URL_REST:
		case LW__URL_DAV:
			r = parse_http(s + n, u, err, es);
			break;
		case LW__URL_ETCD:
			r = parse_etcd(s + n, u, err, es);
			break;
		}
		goto done;
	}
	colon = strchr(s, ':');
	slash = strchr(s, '/');
	if (colon && (!slash || colon < slash)) {
		char scheme[32];

		snprintf(scheme, sizeof(scheme), "%.*s",
			 (int)LW_MIN((size_t)(colon - s), sizeof(scheme) - 1), s);
		r = bad(err, es, "unsupported repository type '%s' "
			"(expected a path, local:, rest:, dav: or etcd:)", scheme);
		goto done;
	}
	r = parse_local(s, u, err, es);
done:
	if (r == 0 && !u->display)
		r = make_display(s, u);
	if (r < 0)
		lw__url_fini(u);
	if (r == -ENOMEM)
		snprintf(err, es, "out of memory");
	return r;
}

void lw__url_fini(struct lw__url *u)
{
	for (size_t i = 0; i < u->nep; i++) {
		free(u->ep[i].host);
		free(u->ep[i].base);
	}
	free(u->ep);
	free(u->path);
	free(u->user);
	if (u->password)
		explicit_bzero(u->password, strlen(u->password));
	free(u->password);
	free(u->display);
	memset(u, 0, sizeof(*u));
}
