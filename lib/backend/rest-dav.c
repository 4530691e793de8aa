/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The rest: and dav: backends.  Both keep a lock as one file under locks/
 * on an HTTP server; they differ only in a few verbs and answers, which the
 * flavour table below holds (lib/DESIGN.md's URL table):
 *
 *   rest: restic's REST server protocol.  POST creates (403: it exists);
 *         the listing is asked for in v2 form; DELETE of a missing file
 *         answers 200, so a refresh checks the old file with HEAD first;
 *         init is POST /?create=true.
 *   dav:  WebDAV (RFC 4918; tests/helpers/webdav.c has what Apache, nginx
 *         and rclone answer).  PUT creates, with If-None-Match: *, which
 *         only Apache honours (412): elsewhere the double check of acquire
 *         stays the guarantee, as it is everywhere.  The listing is
 *         PROPFIND Depth: 1, unless the server answers it 405 (nginx
 *         without dav-ext), which is learnt once per repository: from then
 *         on GET locks/ reads nginx's JSON autoindex.  DELETE of a missing
 *         file answers 404.  init is MKCOL of the repository and of
 *         locks/ (405: there already), then a listing to see that locks/
 *         exists: an nginx without MKCOL answers 405 too, and there a PUT
 *         of locks/.keep makes the folder (create_full_put_path; the
 *         autoindex hides dot files).
 *
 * Every request is one HTTP request (init a few in turn), retried by the
 * HTTP layer when the failure may be transient.  A retry can meet the effect of an attempt
 * whose answer was lost: a create then finds its own file (rest: 403,
 * Apache: 412) and a delete finds nothing (404).  With 256-bit random names neither can be
 * anyone else's doing, so both count as success, and only a 404 on the
 * first attempt is evidence that a lock file vanished.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "http/http.h"
#include "backend/json-listing.h"
#include "backend/propfind.h"
#include "format/record.h"

/* 100,000 locks in nginx's autoindex form take about 15 MB. */
#define LISTING_MAX (32u << 20)

struct flavour {
	const char *create;        /* the method that writes locks/ID */
	long exists;               /* CREATE's answer when the file exists */
	const char *create_header;
	/* the listing of a missing folder is an empty one (rclone serve
	 * restic): the repository's existence is checked apart, once */
	bool probe_repository;
	const char *list_accept;   /* the JSON listing's Accept header */
	bool webdav;               /* PROPFIND listings, MKCOL at init */
};

static const struct flavour rest = {
	.create = "POST",
	.exists = 403,
	.probe_repository = true,
	.list_accept = "application/vnd.x.restic.rest.v2",
};

static const struct flavour dav = {
	.create = "PUT",
	.exists = 412,
	.create_header = "If-None-Match: *",
	.webdav = true,
};

/* How a dav: server lists a folder, learnt from its first answer. */
enum listing { LISTING_UNKNOWN, LISTING_PROPFIND, LISTING_JSON };

/* The steps of init, one request each; rest: has only the first. */
enum init_step {
	INIT_FIRST,   /* rest: POST ?create=true; dav: MKCOL the repository */
	INIT_LOCKS,   /* dav: MKCOL locks/ */
	INIT_CHECK,   /* dav: list locks/ */
	INIT_KEEP,    /* dav: PUT locks/.keep, where MKCOL is not offered */
};

struct http_backend {
	const struct flavour *fl;
	enum listing listing;
	struct lw__http_pool pool;
	const char *origin; /* "http://host:port", no credentials */
	const char *path;   /* "/path/": every request's starts with it */
	char *user;
	char *password;
	char where[300]; /* "host:port" */
	bool exists;     /* the repository was seen (probe_repository) */
};

/* Before the first listing of a probing flavour: HEAD config (a restic
 * repository), else HEAD of the repository's folder. */
enum probe { PROBE_NONE, PROBE_CONFIG, PROBE_FOLDER };

struct http_breq {
	struct lw__breq base;
	struct lw__http_req http;
	char *path; /* what the request asks for: the repository's path + ... */
	enum init_step step;
	bool mkcol_405;    /* init: some MKCOL was refused */
	uint8_t probe;     /* enum probe: the request in flight is a LIST's probe */
};

static struct http_backend *priv(struct lw__backend *be)
{
	return be->priv;
}

static const char *status_text(long status)
{
	switch (status) {
	case 301: return " Moved Permanently";
	case 302: return " Found";
	case 303: return " See Other";
	case 307: return " Temporary Redirect";
	case 308: return " Permanent Redirect";
	case 400: return " Bad Request";
	case 401: return " Unauthorized";
	case 403: return " Forbidden";
	case 404: return " Not Found";
	case 405: return " Method Not Allowed";
	case 408: return " Request Timeout";
	case 409: return " Conflict";
	case 412: return " Precondition Failed";
	case 413: return " Content Too Large";
	case 429: return " Too Many Requests";
	case 500: return " Internal Server Error";
	case 501: return " Not Implemented";
	case 502: return " Bad Gateway";
	case 503: return " Service Unavailable";
	case 504: return " Gateway Timeout";
	case 507: return " Insufficient Storage";
	default: return "";
	}
}

/* Fails REQ with RES and "METHOD locks/0123456789ab on host:port: WHAT"
 * (the path after the repository's; "/" for the repository itself). */
static void fail(struct http_breq *hr, int res, const char *fmt, ...) LW_PRINTF(3, 4);

static void fail(struct http_breq *hr, int res, const char *fmt, ...)
{
	struct lw__breq *req = &hr->base;
	const struct lw__http_req *r = &hr->http;
	const char *base = priv(req->be)->path;
	size_t n = strlen(base);
	char what[200], target[48], attempts[32] = "";
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	/* an id's first 12 digits are enough to know it by */
	if (hr->probe)
		snprintf(target, sizeof(target), "%s", hr->probe == PROBE_CONFIG ? "config" :
			 "the repository's folder");
	else
		snprintf(target, sizeof(target), "%.18s%s%s",
			 hr->path && strncmp(hr->path, base, n) == 0 && hr->path[n] ?
				 hr->path + n : "/",
			 r->query ? "?" : "", r->query ? r->query : "");
	if (r->attempts > 1)
		snprintf(attempts, sizeof(attempts), " (%u attempts)", r->attempts);
	lw__breq_fail(req, res, "%s %s on %s: %s%s", r->method, target,
		      req->be->where, what, attempts);
	lw__sanitize(req->msg);
}

static void conclude_ok(struct http_breq *hr)
{
	struct lw__breq *req = &hr->base;
	struct lw__http_req *r = &hr->http;
	struct http_backend *hb = priv(req->be);
	bool propfind = strcmp(r->method, "PROPFIND") == 0;
	char why[160];
	int res;

	if (propfind)
		hb->listing = LISTING_PROPFIND;
	switch (req->op) {
	case LW__BOP_LIST:
		if (propfind)
			res = lw__propfind_parse(r->resp, r->resp_len, hr->path, &req->ids,
						 &req->types, &req->nids, why, sizeof(why));
		else
			res = lw__json_listing_parse_typed(r->resp, r->resp_len, &req->ids,
							   &req->types, &req->nids, why,
							   sizeof(why));
		if (res == -ENOMEM)
			fail(hr, res, "out of memory");
		else if (res < 0)
			fail(hr, -LW_EBACKEND, "%s", why);
		return;
	case LW__BOP_READ:
		/* a record over LW_RECORD_MAX arrives cut: the decoder rejects it */
		req->buf = (uint8_t *)r->resp;
		req->buflen = r->resp_len;
		r->resp = NULL;
		return;
	default:
		req->res = 0;
		return;
	}
}

/* Maps the HTTP layer's result to the backend's (lib/DESIGN.md's table). */
static void conclude(struct http_breq *hr)
{
	struct lw__breq *req = &hr->base;
	const struct lw__http_req *r = &hr->http;
	const struct flavour *fl = priv(req->be)->fl;
	long st = r->status;

	req->res = 0;
	if (r->res < 0) {
		fail(hr, r->res == -EIO ? -LW_EBACKEND : r->res, "%s", r->err);
	} else if (st >= 200 && st <= 299) {
		conclude_ok(hr);
	} else if (st == 404 && (req->op == LW__BOP_READ || req->op == LW__BOP_EXISTS)) {
		fail(hr, -ENOENT, "not found");
	} else if (st == 404 && req->op == LW__BOP_REMOVE) {
		/* after a lost answer, our own first try deleted it */
		if (!r->earlier_reached)
			fail(hr, -ENOENT, "not found");
	} else if (st == 404 && req->op == LW__BOP_LIST) {
		fail(hr, -ENOENT, req->file == LW__BFILE_KEYS ? "not found" :
		     "404 Not Found: the repository has no locks/ folder (run init)");
	} else if (st == fl->exists && req->op == LW__BOP_CREATE) {
		/* after a lost answer, it is the file our own first try wrote */
		if (!r->earlier_reached)
			fail(hr, -EEXIST, "%ld%s: the lock file exists already", st,
			     status_text(st));
	} else if (st == 409 && req->op == LW__BOP_INIT) {
		fail(hr, -LW_EBACKEND, "409 Conflict: the folder that holds the repository "
		     "does not exist");
	} else if (st == 401 || st == 403) {
		fail(hr, -EACCES, "%ld%s: permission denied%s", st, status_text(st),
		     st == 401 ? " (check the user name and password)" : "");
	} else if (st >= 300 && st <= 399) {
		fail(hr, -LW_EBACKEND, "%ld%s: redirects are not followed", st,
		     status_text(st));
	} else {
		fail(hr, -LW_EBACKEND, "%ld%s", st, status_text(st));
	}
	/* a create that failed may still have written its file */
	req->ambiguous = req->op == LW__BOP_CREATE && req->res < 0 && r->reached;
}

static void send(struct http_breq *hr);

/* A request of several steps goes on; false when it is complete. */
static bool next_step(struct http_breq *hr)
{
	struct lw__breq *req = &hr->base;
	const struct lw__http_req *r = &hr->http;
	struct http_backend *hb = priv(req->be);
	long st = r->status;

	/* cancelled: it ends now, with what it got */
	if (req->cancelled)
		return false;
	if (r->res == 0 && (st == 405 || st == 501) && strcmp(r->method, "PROPFIND") == 0 &&
	    hb->listing == LISTING_UNKNOWN) {
		lw__info(req->be->log, "dav: %s answers PROPFIND with %ld: listings "
			 "are read from its JSON index", req->be->where, st);
		hb->listing = LISTING_JSON;
		send(hr);
		return true;
	}
	if (req->op != LW__BOP_INIT || !hb->fl->webdav || r->res < 0)
		return false;
	switch (hr->step) {
	case INIT_FIRST:
	case INIT_LOCKS:
		if (st == 405) /* there already, or no MKCOL here: INIT_CHECK tells */
			hr->mkcol_405 = true;
		else if (st < 200 || st > 299)
			return false;
		hr->step++;
		break;
	case INIT_CHECK:
		if (st != 404 || !hr->mkcol_405 || hb->listing != LISTING_JSON)
			return false;
		hr->step = INIT_KEEP;
		break;
	case INIT_KEEP:
		return false;
	}
	send(hr);
	return true;
}

/*
 * A probe's answer: 2xx, the repository is there, and the listing goes on;
 * 404 on config, the folder is asked; 404 or 405 on the folder too, there
 * is no such repository (a typo must not put locks where nobody looks).
 * Returns whether REQ goes on.
 */
static bool probed(struct http_breq *hr)
{
	struct http_backend *hb = priv(hr->base.be);
	const struct lw__http_req *r = &hr->http;
	bool missing = r->res == 0 && (r->status == 404 || r->status == 405);

	if (hr->base.cancelled) {
		lw__breq_fail(&hr->base, -ECANCELED, "cancelled");
		return false;
	}
	if (r->res == 0 && r->status >= 200 && r->status <= 299) {
		hb->exists = true;
		hr->probe = PROBE_NONE;
		send(hr);
		return true;
	}
	if (missing && hr->probe == PROBE_CONFIG) {
		hr->probe = PROBE_FOLDER;
		send(hr);
		return true;
	}
	if (missing) {
		lw__breq_fail(&hr->base, -ENOENT, "no such repository on %s: no %sconfig, and %s",
			      hr->base.be->where, hb->path, r->status == 404 ?
			      "no such folder (create it with 'lockwatch init' or 'restic init')" :
			      "the server does not show folders (HEAD answered 405): "
			      "create it with 'restic init'");
		lw__sanitize(hr->base.msg);
		return false;
	}
	conclude(hr); /* the probe's own failure */
	return false;
}

static void on_http_done(struct lw__http_req *r)
{
	struct http_breq *hr = LW_CONTAINER_OF(r, struct http_breq, http);

	if (hr->probe && probed(hr))
		return;
	if (!hr->probe && next_step(hr))
		return;
	if (!hr->base.msg[0])
		conclude(hr);
	if (hr->base.started)
		hr->base.began = r->began;
	hr->base.unsettled = r->abandoned;
	lw__breq_complete(&hr->base);
}

/* The listing's request: PROPFIND where the server may answer it. */
static void list_request(struct http_backend *hb, struct lw__http_req *r)
{
	if (hb->fl->webdav && hb->listing != LISTING_JSON) {
		r->method = "PROPFIND";
		r->header = "Depth: 1";
		r->body = LW_PROPFIND_BODY;
		r->body_len = strlen(LW_PROPFIND_BODY);
		r->content_type = "application/xml; charset=utf-8";
		r->max_body = LW_PROPFIND_MAX;
	} else {
		r->method = "GET";
		r->accept = hb->fl->list_accept;
		r->max_body = LISTING_MAX;
	}
}

/* Sends REQ's request, or the request of its current step, afresh. */
static void send(struct http_breq *hr)
{
	struct lw__breq *req = &hr->base;
	struct http_backend *hb = priv(req->be);
	struct lw__http_req *r = &hr->http;
	char hex[LW_ID_HEX + 1], path[LW_ID_HEX + 16];

	lw__http_req_fini(r);
	free(hr->path);
	*r = (struct lw__http_req){ .pool = &hb->pool, .deadline = req->deadline,
				    .grace = req->grace, .done = on_http_done };
	lw__id_hex(&req->id, hex);
	if (req->file == LW__BFILE_CONFIG)
		snprintf(path, sizeof(path), "config");
	else
		snprintf(path, sizeof(path), "%s/%s",
			 req->file == LW__BFILE_KEYS ? "keys" : "locks", hex);
	switch (req->op) {
	case LW__BOP_CREATE:
		r->method = hb->fl->create;
		r->header = hb->fl->create_header;
		r->body = req->data;
		r->body_len = req->len;
		break;
	case LW__BOP_LIST:
		if (hr->probe) {
			r->method = "HEAD";
			snprintf(path, sizeof(path), "%s", hr->probe == PROBE_CONFIG ? "config" : "");
			break;
		}
		list_request(hb, r);
		snprintf(path, sizeof(path), "%s/",
			 req->file == LW__BFILE_KEYS ? "keys" : "locks");
		break;
	case LW__BOP_READ:
		r->method = "GET";
		r->max_body = (req->file == LW__BFILE_LOCKS ? LW_RECORD_MAX : LW__BFILE_MAX) + 1;
		r->cut_ok = true;
		break;
	case LW__BOP_REMOVE:
		r->method = "DELETE";
		break;
	case LW__BOP_EXISTS:
	case LW__BOP_KEEPALIVE: /* files have no lease: is it still there? */
		r->method = "HEAD";
		break;
	case LW__BOP_INIT:
		if (!hb->fl->webdav) {
			r->method = "POST";
			r->query = "create=true";
			path[0] = '\0';
		} else if (hr->step == INIT_FIRST || hr->step == INIT_LOCKS) {
			r->method = "MKCOL";
			snprintf(path, sizeof(path), "%s", hr->step == INIT_FIRST ? "" : "locks/");
		} else if (hr->step == INIT_CHECK) {
			list_request(hb, r);
			snprintf(path, sizeof(path), "locks/");
		} else {
			r->method = "PUT";
			snprintf(path, sizeof(path), "locks/.keep");
		}
		break;
	}
	/* out of memory: the HTTP layer fails a request without a URL; the
	 * HTTP layer checks that the URL asks for exactly this path */
	if (asprintf(&hr->path, "%s%s", hb->path, path) < 0)
		hr->path = NULL;
	else if (asprintf(&r->url, "%s%s%s%s", hb->origin, hr->path, r->query ? "?" : "",
			  r->query ? r->query : "") < 0)
		r->url = NULL;
	r->path = hr->path;
	lw__http_start(r);
}

static void hb_start(struct lw__backend *be, struct lw__breq *req)
{
	struct http_backend *hb = priv(be);
	struct http_breq *hr = LW_CONTAINER_OF(req, struct http_breq, base);

	hr->step = INIT_FIRST;
	if (req->op == LW__BOP_LIST && hb->fl->probe_repository && !hb->exists)
		hr->probe = PROBE_CONFIG;
	send(hr);
}

static void hb_cancel(struct lw__backend *be, struct lw__breq *req)
{
	lw__http_cancel(&LW_CONTAINER_OF(req, struct http_breq, base)->http);
}

static void hb_settle(struct lw__backend *be, struct lw__breq *req)
{
	lw__http_settle(&LW_CONTAINER_OF(req, struct http_breq, base)->http);
}

static void hb_req_fini(struct lw__breq *req)
{
	struct http_breq *hr = LW_CONTAINER_OF(req, struct http_breq, base);

	lw__http_req_fini(&hr->http);
	free(hr->path);
}

static void hb_configure(struct lw__backend *be)
{
	lw__backend_configure_pool(be, &priv(be)->pool);
}

static void hb_close(struct lw__backend *be)
{
	struct http_backend *hb = priv(be);

	lw__http_pool_fini(&hb->pool);
	if (hb->password)
		explicit_bzero(hb->password, strlen(hb->password));
	free(hb->password);
	free(hb->user);
	free(hb);
}

/* Credentials from the URL, else from the environment. */
static int credentials(struct http_backend *hb, const struct lw__url *url)
{
	const char *user = url->user, *password = url->password;

	if (!user || !*user)
		user = getenv("LOCKWATCH_USER");
	if (!user || !*user)
		return 0;
	if (!password)
		password = getenv("LOCKWATCH_PASSWORD");
	hb->user = strdup(user);
	hb->password = lw__strdup0(password);
	return hb->user && (hb->password || !password) ? 0 : -ENOMEM;
}

static int hb_open(struct lw__backend *be, const struct lw__url *url)
{
	const struct lw__endpoint *ep = &url->ep[0];
	bool v6 = strchr(ep->host, ':') != NULL;
	struct http_backend *hb;
	int r;

	r = lw__http_get(&be->env->http, be->engine, be->log);
	if (r < 0)
		return r;
	hb = calloc(1, sizeof(*hb));
	if (!hb)
		return -ENOMEM;
	hb->fl = url->kind == LW__URL_REST ? &rest : &dav;
	r = credentials(hb, url);
	/* the URL's: it outlives the backend */
	hb->origin = ep->base;
	hb->path = url->path;
	snprintf(hb->where, sizeof(hb->where), "%s%s%s:%d", v6 ? "[" : "", ep->host,
		 v6 ? "]" : "", ep->port);
	lw__http_pool_init(&hb->pool, be->env->http);
	hb->pool.user = hb->user;
	hb->pool.password = hb->password;
	be->priv = hb;
	be->where = hb->where;
	if (r < 0) {
		hb_close(be);
		return r;
	}
	hb_configure(be);
	return 0;
}

#define HTTP_BACKEND(NAME, HIDES_MISSING)               \
	{                                               \
		.name = NAME,                           \
		.req_size = sizeof(struct http_breq),   \
		.remove_hides_missing = HIDES_MISSING,  \
		.open = hb_open,                        \
		.close = hb_close,                      \
		.start = hb_start,                      \
		.cancel = hb_cancel,                    \
		.settle = hb_settle,                    \
		.req_fini = hb_req_fini,                \
		.configure = hb_configure,              \
	}

const struct lw__backend_ops lw__backend_rest = HTTP_BACKEND("rest", true);
const struct lw__backend_ops lw__backend_dav = HTTP_BACKEND("dav", false);
