/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The HTTP layer, between the HTTP backends and the engine: one libcurl
 * multi handle per loop, driven through the multi socket API on the
 * engine's watches and timer heap.  Requests go through a pool (one per
 * repository) that caps how many run at once, so that keep-alive
 * connections are reused and 10,000 locks never open 10,000 connections.
 * Callers see no curl type.
 *
 * Everything here runs on the loop thread.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"
#include "util/list.h"

struct lw__http;

/* Requests of one repository at once, unless it says otherwise. */
#define LW__HTTP_DEFAULT_CONNECTIONS 8

/*
 * lw__http_get - the loop's HTTP client in *HP, created on first use (the
 * loop frees it with lw__http_free after closing its backends).
 *
 * Returns: 0, -ENOMEM.
 */
int lw__http_get(struct lw__http **hp, struct lw__engine *e,
		 const struct lw__log *log);
void lw__http_free(struct lw__http *h);
/* Takes the client's share of the loop's descriptor budget again, after
 * lw__fd_set_limit changed it: connections are descriptors. */
void lw__http_budget(struct lw__http *h);

/*
 * A server as one repository uses it: how many requests may run at once
 * (each holds a connection; the others wait in QUEUE), and the settings
 * every request to it gets.  The owner fills in the settings; strings stay
 * its own and must outlive the requests.
 */
struct lw__http_pool {
	struct lw__http *http;
	unsigned max_active;
	unsigned active;
	struct lw__list queue;   /* waiting for a free place */
	struct lw__list running; /* in curl, or waiting to retry */
	struct lw__list waiting; /* in the client's line for a connection */
	const char *user;        /* Basic or Digest auth, never put in a URL */
	const char *password;
	const char *ca_file;     /* NULL: the system's trust store */
	bool insecure;           /* skip TLS certificate verification */

	/* private: the scheme the server asked for (a CURLAUTH_ bit), once
	 * one has; 0 until then */
	long auth;
};

void lw__http_pool_init(struct lw__http_pool *p, struct lw__http *h);
/* Sets how many requests run at once (0: the default). */
void lw__http_pool_set_max(struct lw__http_pool *p, unsigned max);
/* Drops every request still in the pool without completing it: only at
 * loop shutdown, when nobody waits for them any more. */
void lw__http_pool_fini(struct lw__http_pool *p);

enum lw__http_state {
	LW__HTTP_IDLE,
	LW__HTTP_QUEUED,
	LW__HTTP_ACTIVE,
	LW__HTTP_BACKOFF,
	LW__HTTP_FINISHING, /* completes at the next turn */
	LW__HTTP_DONE,
};

/*
 * One request, retried inside its deadline when the failure may be
 * transient (a 5xx or 429 answer, a reset, a timeout).  DONE runs exactly
 * once, on the loop thread, never inside lw__http_start or
 * lw__http_cancel, never inside a curl callback.
 */
struct lw__http_req {
	/* set by the caller */
	struct lw__http_pool *pool;
	const char *method;     /* GET, HEAD, PUT, POST, DELETE, PROPFIND,
				   MKCOL */
	char *url;              /* without credentials; freed by _fini */
	/* what URL must ask for, checked as libcurl reads it before anything
	 * is sent: this path (NULL: not checked) and this query (NULL: none) */
	const char *path;
	const char *query;
	const void *body;       /* PUT, POST: sent as is, must stay valid */
	size_t body_len;
	const char *accept;     /* an Accept header, or NULL */
	const char *content_type; /* of BODY; NULL: application/octet-stream */
	const char *header;     /* one more header line ("Depth: 1"), or NULL */
	size_t max_body;        /* a 2xx body is kept up to this; 0: dropped */
	bool cut_ok;            /* keep the first MAX_BODY bytes of a longer
				   body instead of refusing it */
	/* a 2xx body handed over as it comes instead of kept (a stream:
	 * MAX_BODY unused).  It runs inside curl, so it must not call into
	 * this layer (defer instead); false stops the transfer, which then
	 * ends with RES 0. */
	bool (*on_body)(struct lw__http_req *r, const char *data, size_t len);
	size_t max_err_body;    /* the first bytes of any other body kept in
				   RESP, for messages; 0: dropped */
	int64_t deadline;       /* CLOCK_BOOTTIME; no attempt starts after it */
	/* how much longer than DEADLINE an attempt under way may wait for
	 * its answer (every attempt ends by DEADLINE + GRACE): for a write
	 * whose outcome is needed even when its owner gave up waiting */
	int64_t grace;
	int64_t attempt_timeout; /* one attempt's bound; 0: 30 s */
	unsigned attempts_max;  /* 0: 5; 1: the caller retries, elsewhere */
	void (*done)(struct lw__http_req *r);
	void *userdata;

	/* results, valid in DONE */
	int res;                /* 0: the server answered STATUS; or -ETIMEDOUT,
				   -ECONNREFUSED, -ECONNRESET, -EHOSTUNREACH,
				   -EFBIG (body over MAX_BODY), -ECANCELED,
				   -ENOMEM, -EIO (another failure, see ERR) */
	long status;
	char *resp;             /* a 2xx body (or the start of another, with
				   MAX_ERR_BODY), NUL-terminated; yours */
	size_t resp_len;
	bool cut;               /* the body was longer than MAX_BODY */
	bool reached;           /* some attempt may have reached the server */
	bool earlier_reached;   /* an attempt before the last one may have */
	bool settled;           /* lw__http_settle: out of its pool's count */
	bool abandoned;         /* an attempt that may have reached the server
				   ended without its answer (timed out, reset,
				   cancelled): what it asked for may still be
				   done, after anything sent later */
	unsigned attempts;
	int64_t began;          /* when the first attempt got a connection */
	char err[256];          /* for a person, when RES < 0 */

	/* private */
	enum lw__http_state state;
	struct lw__list link;   /* in the pool */
	struct lw__timer timer; /* deadline while queued, retry while backing off */
	struct lw__defer defer;
	void *easy;
	void *headers;          /* its own, with the headers asked for */
	void *connect_to;       /* the fault hook's, for this attempt */
	int64_t backoff;
	size_t resp_cap;
	size_t dropped;         /* bytes of a body not kept */
	bool reserved;          /* TIMER's place in the engine's heap */
	int sock_errno;         /* of the attempt's socket(), when it failed */
};

void lw__http_start(struct lw__http_req *r);
/* R sends no more attempts: the one under way goes on to its answer (by
 * its deadline and grace, or lw__http_cancel), one that waits (queued,
 * backing off) ends at once as by lw__http_cancel. */
void lw__http_settle(struct lw__http_req *r);
/* Ends R at once (removed from curl; its connection closed) with -ECANCELED
 * unless it has a result already.  DONE runs at the next turn. */
void lw__http_cancel(struct lw__http_req *r);
/* Frees what the request owns (URL, body).  Not while it runs. */
void lw__http_req_fini(struct lw__http_req *r);

/*
 * Fault injection for lockwatch-bench's HTTP stall mode, process-wide:
 * FN is asked as each attempt starts; it returns "HOST:PORT" to connect to
 * instead of the server (a listener that never answers), or NULL.  Only
 * the connection goes elsewhere: the request (URL, Host, TLS name) is
 * unchanged, and curl never reuses such a connection for other requests
 * or the server's connections for such a request.  NULL turns it off.
 */
typedef const char *(*lw__http_fault_fn)(const struct lw__http_req *r, void *userdata);
void lw__http_fault_set(lw__http_fault_fn fn, void *userdata);
