/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * A PROPFIND multistatus, read with expat's streaming parser: no tree is
 * built, each element is judged by its parent as it opens, and what the
 * listing needs of a response (its href, its status, whether its
 * resourcetype holds a collection) is kept only until the response ends.
 *
 * Names arrive as "NAMESPACE-URI NAME" (XML_ParserCreateNS), so that any
 * prefix, or a default namespace, names the same DAV: element.  A DOCTYPE
 * stops the parser: a multistatus has none, and without one no entity can
 * be declared, so nothing expands and nothing external is fetched.
 */
#include "config.h"

#include <expat.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "backend/propfind.h"
#include "engine/engine.h" /* LW__FTYPE_* */

#define NS_SEP ' '
#define DAV_NS "DAV:"
/* multistatus/response/propstat/prop/resourcetype/collection is 6 deep;
 * the rest is room for properties that nest. */
#define DEPTH_MAX 32
#define ENTRIES_MAX 1000000
/* A path longer than this is no path of a repository's locks/. */
#define HREF_MAX 4096
#define STATUS_MAX 64

enum tag {
	T_OTHER,
	T_MULTISTATUS,
	T_RESPONSE,
	T_HREF,
	T_STATUS, /* the response's own, not a propstat's */
	T_PROPSTAT,
	T_PROP,
	T_RESOURCETYPE,
};

struct pf {
	XML_Parser xp;
	char dir[HREF_MAX + 2]; /* decoded, ending in '/' */
	size_t dirlen;
	enum tag stack[DEPTH_MAX];
	int depth;
	size_t entries;

	/* the response being read */
	char href[HREF_MAX + 1];
	size_t href_len;
	unsigned nhref;
	char status[STATUS_MAX];
	size_t status_len;
	bool has_status;
	bool collection;

	struct lw__id *ids;
	size_t nids, cap;
	bool typed;     /* keep collections named like a lock, with types */
	uint8_t *types; /* TYPED: once one is a collection */
	size_t tcap;
	int err;
	char *why;
	size_t whysize;
};

static void stop(struct pf *pf, int err, const char *fmt, ...) LW_PRINTF(3, 4);

static void stop(struct pf *pf, int err, const char *fmt, ...)
{
	va_list ap;

	if (pf->err)
		return;
	va_start(ap, fmt);
	vsnprintf(pf->why, pf->whysize, fmt, ap);
	va_end(ap);
	pf->err = err;
	XML_StopParser(pf->xp, XML_FALSE);
}

static bool is_dav(const char *name, const char *local)
{
	return strncmp(name, DAV_NS " ", sizeof(DAV_NS)) == 0 &&
	       strcmp(name + sizeof(DAV_NS), local) == 0;
}

/* <html>, in XHTML's namespace or none */
static bool is_html(const char *name)
{
	const char *local = strrchr(name, NS_SEP);

	return strcasecmp(local ? local + 1 : name, "html") == 0;
}

static bool is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool is_scheme_char(char c, bool first)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (!first && ((c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.'));
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/*
 * The path of S (N bytes: a path, or an absolute URL whose scheme and
 * authority are dropped), percent-decoded into OUT (room for N + 1).
 * False for what names no file of a repository: a query or fragment, a
 * malformed escape, one that decodes to NUL or '/' (a name with a slash
 * in it is not a path segment), a dot segment.
 */
static bool decode_path(const char *s, size_t n, char *out, size_t *outlen)
{
	const char *end = s + n, *p = s;
	size_t o = 0;

	while (p < end && is_scheme_char(*p, p == s))
		p++;
	if (p > s && end - p >= 3 && memcmp(p, "://", 3) == 0)
		s = p + 1; /* now at "//authority" */
	if (end - s >= 2 && s[0] == '/' && s[1] == '/') {
		s += 2;
		while (s < end && *s != '/')
			s++;
	}
	for (p = s; p < end; p++) {
		char c = *p;

		if (c == '?' || c == '#' || c == '\0')
			return false;
		if (c == '%') {
			int hi = end - p > 2 ? hexval(p[1]) : -1, lo = hi >= 0 ? hexval(p[2]) : -1;

			if (lo < 0)
				return false;
			c = (char)(hi << 4 | lo);
			if (c == '\0' || c == '/')
				return false;
			p += 2;
		}
		out[o++] = c;
	}
	out[o] = '\0';
	*outlen = o;
	return !strstr(out, "/./") && !strstr(out, "/../") &&
	       !(o >= 2 && strcmp(out + o - 2, "/.") == 0) &&
	       !(o >= 3 && strcmp(out + o - 3, "/..") == 0);
}

static void add_id(struct pf *pf, const struct lw__id *id, uint8_t type)
{
	if (lw__grow(&pf->ids, &pf->cap, pf->nids, sizeof(*pf->ids), 64) < 0)
		goto nomem;
	if (type != LW__FTYPE_FILE && !pf->types) {
		pf->tcap = pf->cap;
		pf->types = malloc(pf->tcap);
		if (!pf->types)
			goto nomem;
		memset(pf->types, LW__FTYPE_FILE, pf->nids);
	}
	if (pf->types) {
		if (lw__grow(&pf->types, &pf->tcap, pf->nids, 1, 64) < 0)
			goto nomem;
		pf->types[pf->nids] = type;
	}
	pf->ids[pf->nids++] = *id;
	return;
nomem:
	stop(pf, -ENOMEM, "out of memory");
}

/* A response has ended: is it a lock file directly in DIR? */
static void conclude_response(struct pf *pf)
{
	char path[HREF_MAX + 1];
	const char *h = pf->href, *name;
	size_t n = pf->href_len, len;
	struct lw__id id;
	bool folder;
	long code;

	if (pf->nhref == 0) {
		stop(pf, -EBADMSG, "a response without an href");
		return;
	}
	/* "HTTP/1.1 404 Not Found": a member that is listed as gone */
	pf->status[pf->status_len] = '\0';
	if (pf->has_status) {
		const char *sp = strchr(pf->status, ' ');

		code = sp ? strtol(sp + 1, NULL, 10) : 0;
		if (code < 200 || code > 299)
			return;
	}
	while (n && is_ws(*h)) {
		h++;
		n--;
	}
	while (n && is_ws(h[n - 1]))
		n--;
	if (!decode_path(h, n, path, &len))
		return;
	if (len && path[0] == '/') {
		if (len < pf->dirlen || memcmp(path, pf->dir, pf->dirlen) != 0)
			return;
		name = path + pf->dirlen;
		len -= pf->dirlen;
	} else {
		name = path; /* relative to DIR, which ends in '/' */
	}
	/* "ID/" is a collection, whatever its resourcetype said */
	folder = pf->collection || (len && name[len - 1] == '/');
	if (len && name[len - 1] == '/')
		len--;
	if (!lw__id_parse(name, len, &id) || (folder && !pf->typed))
		return;
	add_id(pf, &id, folder ? LW__FTYPE_DIR : LW__FTYPE_FILE);
}

static void XMLCALL on_start(void *arg, const XML_Char *name, const XML_Char **attrs)
{
	struct pf *pf = arg;
	enum tag tag = T_OTHER;

	/* expat may still call after XML_StopParser */
	if (pf->err)
		return;
	if (pf->depth == DEPTH_MAX) {
		stop(pf, -EBADMSG, "elements nested more than %d deep", DEPTH_MAX);
		return;
	}
	switch (pf->depth ? pf->stack[pf->depth - 1] : T_OTHER) {
	case T_OTHER:
		if (pf->depth > 0)
			break;
		if (is_dav(name, "multistatus"))
			tag = T_MULTISTATUS;
		else if (is_html(name))
			stop(pf, -EBADMSG, "an HTML page, not a multistatus");
		else
			stop(pf, -EBADMSG, "XML whose root is not a DAV: multistatus");
		break;
	case T_MULTISTATUS:
		if (!is_dav(name, "response"))
			break;
		if (++pf->entries > ENTRIES_MAX) {
			stop(pf, -EBADMSG, "more than %d entries", ENTRIES_MAX);
			break;
		}
		tag = T_RESPONSE;
		pf->href_len = pf->status_len = 0;
		pf->nhref = 0;
		pf->has_status = pf->collection = false;
		break;
	case T_RESPONSE:
		if (is_dav(name, "href")) {
			tag = T_HREF;
			if (++pf->nhref > 1)
				stop(pf, -EBADMSG, "a response with two hrefs");
		} else if (is_dav(name, "status")) {
			tag = T_STATUS;
			pf->has_status = true;
		} else if (is_dav(name, "propstat")) {
			tag = T_PROPSTAT;
		}
		break;
	case T_PROPSTAT:
		if (is_dav(name, "prop"))
			tag = T_PROP;
		break;
	case T_PROP:
		if (is_dav(name, "resourcetype"))
			tag = T_RESOURCETYPE;
		break;
	case T_RESOURCETYPE:
		if (is_dav(name, "collection"))
			pf->collection = true;
		break;
	default:
		break;
	}
	pf->stack[pf->depth++] = tag;
}

static void XMLCALL on_end(void *arg, const XML_Char *name)
{
	struct pf *pf = arg;

	if (!pf->err && pf->stack[--pf->depth] == T_RESPONSE)
		conclude_response(pf);
}

static void XMLCALL on_text(void *arg, const XML_Char *s, int len)
{
	struct pf *pf = arg;
	size_t n = (size_t)len;

	if (pf->err)
		return;
	switch (pf->depth ? pf->stack[pf->depth - 1] : T_OTHER) {
	case T_HREF:
		if (n > HREF_MAX - pf->href_len) {
			stop(pf, -EBADMSG, "an href over %d bytes", HREF_MAX);
			return;
		}
		memcpy(pf->href + pf->href_len, s, n);
		pf->href_len += n;
		break;
	case T_STATUS:
		/* "HTTP/1.1 200 OK" and a reason phrase: the code is early */
		n = LW_MIN(n, sizeof(pf->status) - 1 - pf->status_len);
		memcpy(pf->status + pf->status_len, s, n);
		pf->status_len += n;
		break;
	default:
		break;
	}
}

static void XMLCALL on_doctype(void *arg, const XML_Char *name, const XML_Char *sysid,
			       const XML_Char *pubid, int has_internal_subset)
{
	struct pf *pf = arg;

	if (strcasecmp(name, "html") == 0)
		stop(pf, -EBADMSG, "an HTML page, not a multistatus");
	else
		stop(pf, -EBADMSG, "a DOCTYPE, which a multistatus does not have");
}

/* Unreachable while a DOCTYPE stops the parser; kept so that no entity
 * is ever declared even if that changes. */
static void XMLCALL on_entity(void *arg, const XML_Char *name, int is_param,
			      const XML_Char *value, int value_len, const XML_Char *base,
			      const XML_Char *sysid, const XML_Char *pubid,
			      const XML_Char *notation)
{
	stop(arg, -EBADMSG, "an entity declaration");
}

static bool truncation(enum XML_Error e)
{
	return e == XML_ERROR_NO_ELEMENTS || e == XML_ERROR_UNCLOSED_TOKEN ||
	       e == XML_ERROR_PARTIAL_CHAR || e == XML_ERROR_UNCLOSED_CDATA_SECTION;
}

/* An error page in HTML is rarely XML (HTML5's "<!doctype html>" is not):
 * name it before expat calls it malformed. */
static bool looks_like_html(const char *buf, size_t len)
{
	static const char *const starts[] = { "<!doctype html", "<html" };

	while (len && is_ws(*buf)) {
		buf++;
		len--;
	}
	for (size_t i = 0; i < sizeof(starts) / sizeof(starts[0]); i++) {
		size_t n = strlen(starts[i]);

		if (len >= n && strncasecmp(buf, starts[i], n) == 0)
			return true;
	}
	return false;
}

static int parse(struct pf *pf, const char *buf, size_t len)
{
	enum XML_Error e;

	if (looks_like_html(buf, len)) {
		snprintf(pf->why, pf->whysize, "an HTML page, not a multistatus");
		return -EBADMSG;
	}
	if (len == 0) {
		snprintf(pf->why, pf->whysize, "an empty body, not a multistatus");
		return -EBADMSG;
	}
	if (len > LW_PROPFIND_MAX) {
		snprintf(pf->why, pf->whysize, "a multistatus over %u bytes", LW_PROPFIND_MAX);
		return -EBADMSG;
	}
	pf->xp = XML_ParserCreateNS(NULL, NS_SEP);
	if (!pf->xp) {
		snprintf(pf->why, pf->whysize, "out of memory");
		return -ENOMEM;
	}
	XML_SetUserData(pf->xp, pf);
	XML_SetElementHandler(pf->xp, on_start, on_end);
	XML_SetCharacterDataHandler(pf->xp, on_text);
	XML_SetStartDoctypeDeclHandler(pf->xp, on_doctype);
	XML_SetEntityDeclHandler(pf->xp, on_entity);
	XML_SetParamEntityParsing(pf->xp, XML_PARAM_ENTITY_PARSING_NEVER);
	if (XML_Parse(pf->xp, buf, (int)len, XML_TRUE) != XML_STATUS_OK && !pf->err) {
		e = XML_GetErrorCode(pf->xp);
		if (e == XML_ERROR_NO_MEMORY) {
			snprintf(pf->why, pf->whysize, "out of memory");
			pf->err = -ENOMEM;
		} else if (truncation(e)) {
			snprintf(pf->why, pf->whysize, "truncated XML (%zu bytes): %s", len,
				 XML_ErrorString(e));
			pf->err = -EBADMSG;
		} else {
			snprintf(pf->why, pf->whysize, "invalid XML at line %lu, column %lu: %s",
				 (unsigned long)XML_GetCurrentLineNumber(pf->xp),
				 (unsigned long)XML_GetCurrentColumnNumber(pf->xp) + 1,
				 XML_ErrorString(e));
			pf->err = -EBADMSG;
		}
	}
	XML_ParserFree(pf->xp);
	return pf->err;
}

int lw__propfind_parse(const char *buf, size_t len, const char *dir,
		       struct lw__id **idsp, uint8_t **typesp, size_t *np, char *why,
		       size_t whysize)
{
	struct pf *pf;
	size_t dirlen = strlen(dir);
	int r;

	*idsp = NULL;
	if (typesp)
		*typesp = NULL;
	*np = 0;
	if (whysize)
		why[0] = '\0';
	pf = calloc(1, sizeof(*pf));
	if (!pf)
		return -ENOMEM;
	pf->why = why;
	pf->whysize = whysize;
	pf->typed = typesp != NULL;
	if (dirlen > HREF_MAX || !decode_path(dir, dirlen, pf->dir, &pf->dirlen) ||
	    pf->dir[0] != '/') {
		free(pf);
		return -EINVAL;
	}
	if (pf->dir[pf->dirlen - 1] != '/')
		pf->dir[pf->dirlen++] = '/';
	pf->dir[pf->dirlen] = '\0';
	r = parse(pf, buf, len);
	if (r < 0) {
		free(pf->ids);
		free(pf->types);
	} else {
		*idsp = pf->ids;
		*np = pf->nids;
		if (typesp)
			*typesp = pf->types;
	}
	free(pf);
	return r;
}
