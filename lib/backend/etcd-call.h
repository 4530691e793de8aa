/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The etcd backend's way to its cluster: one POST to the v3 gateway, sent
 * to the member that answered last and moved on to the next when one does
 * not answer (connection refused or reset, a timeout, a 5xx).  Each try is
 * bounded to a share of the time left, so that all of them fit in the
 * deadline, and after a round in which no member answered the call waits
 * a little before the next.  Everything here runs on the loop thread.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"
#include "backend/etcd-reply.h"
#include "http/http.h"
#include "util/url.h"

struct lw__etcd_cluster {
	struct lw__engine *engine;
	const struct lw__log *log;
	struct lw__http_pool pool;
	const struct lw__endpoint *ep; /* the repository's URL outlives us */
	unsigned n;
	unsigned cur;                  /* the member POSTs go to first */
	const char *prefix;            /* where lock keys live: "backups/locks/" */
	size_t prefix_len;
};

/*
 * One POST, until a member answers or DEADLINE passes.  ANSWERED gets a
 * 2xx reply or a final status in HTTP; FAILED gets the end of the tries
 * (RES and WHY say why) or a cancellation.  A try that broke off (a
 * timeout, a reset) after part of a streamed reply came goes to SALVAGE,
 * if there is one, which returns whether it took the call over.
 */
struct lw__etcd_call {
	struct lw__etcd_cluster *cl;
	struct lw__http_req http;
	const char *path;        /* "/v3/kv/range" */
	size_t max_body;         /* of a 2xx reply */
	char *body;              /* owned */
	int64_t deadline;
	int64_t soonest;         /* tries are sliced to end by this */
	unsigned tries;
	bool reached;            /* a try of this POST may have reached etcd */
	bool earlier;            /* ... a try before the last one */
	int res;                 /* the last failure */
	char why[200];           /* "on host:port: ..." */
	void (*answered)(struct lw__etcd_call *c);
	void (*failed)(struct lw__etcd_call *c);
	bool (*salvage)(struct lw__etcd_call *c);

	/* private */
	struct lw__timer timer;  /* the wait between rounds */
	struct lw__defer defer;  /* FAILED outside cancel */
	unsigned member;         /* of the try in flight */
	unsigned tried;          /* members that failed this round */
	int64_t backoff;
	bool reserved;           /* TIMER's place in the engine's heap */
	bool waiting;            /* TIMER runs */
};

/* Returns 0, or -ENOMEM when the engine has no room for C's timer. */
int lw__etcd_call_init(struct lw__etcd_call *c, struct lw__etcd_cluster *cl,
		       int64_t deadline, void (*answered)(struct lw__etcd_call *),
		       void (*failed)(struct lw__etcd_call *));
/* POSTs BODY (taken; NULL: out of memory, which the call reports) to PATH,
 * starting with the member that answered last. */
void lw__etcd_call_post(struct lw__etcd_call *c, const char *path, size_t max_body,
			char *body);
/* POSTs BODY (which the owner may have changed) again, to the same member. */
void lw__etcd_call_send(struct lw__etcd_call *c);
/* The member did not answer (the owner saw it in its reply): the next one
 * gets the POST, or FAILED runs at the deadline. */
void lw__etcd_call_member_failed(struct lw__etcd_call *c);
/* Makes C end soon through FAILED with -ECANCELED (or its real result). */
void lw__etcd_call_cancel(struct lw__etcd_call *c);
void lw__etcd_call_fini(struct lw__etcd_call *c);
/* Notes a failure of the try in flight: RES, "on host:port: WHAT". */
void lw__etcd_call_why(struct lw__etcd_call *c, int res, const char *fmt, ...)
	LW_PRINTF(3, 4);
/* Reads a 2xx reply into REP; false (with RES and WHY) if it is not one,
 * or if it holds a key outside the prefix and OUTSIDE_OK is false. */
bool lw__etcd_call_reply(struct lw__etcd_call *c, const char *text, size_t len,
			 struct lw__etcd_reply *rep, bool outside_ok);
