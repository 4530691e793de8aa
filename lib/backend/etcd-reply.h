/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The replies of etcd's v3 JSON gateway (etcd >= 3.4), as the etcd backend
 * reads them: protobuf's JSON mapping, so 64-bit integers come as strings,
 * bytes as base64, and fields at their zero value are left out (a
 * keepalive's reply without a TTL means the lease is gone).  The text comes
 * from a server: the parser is strict and bounded, a pure function of its
 * input, an entry point for fuzzing.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/internal.h"
#include "format/record.h"

/* A key that names a lock: PREFIX and 64 lowercase hex characters. */
struct lw__etcd_kv {
	struct lw__id id;
	int64_t create_revision;
	int64_t mod_revision; /* a watch event's: the revision of the delete */
	int64_t lease; /* 0: none */
};

struct lw__etcd_reply {
	const char *prefix;    /* in: where lock keys live ("backups/locks/") */
	size_t prefix_len;

	int64_t revision;      /* header.revision */
	int64_t id;            /* a lease's ID (grant, keepalive, timetolive) */
	int64_t ttl;           /* a lease's TTL in seconds; 0 when left out */
	int64_t count;         /* range: keys in the range */
	int64_t deleted;       /* deleterange */
	bool succeeded;        /* txn: the compare held */
	struct lw__etcd_kv *kvs; /* range's kvs and timetolive's keys that
				    name a lock (malloc'd) */
	size_t nkvs;
	size_t nkeys;          /* every key seen */
	size_t outside;        /* keys not under PREFIX */
	bool has_value;        /* the first kv came with its value ... */
	size_t value_len;      /* ... of this many bytes, cut at
				  LW_RECORD_MAX + 1 */
	uint8_t value[LW_RECORD_MAX + 1];
	char error[160];       /* an error in a 200 reply (a stream's) */

	/* A watch stream's response (one JSON object a line): the watch
	 * was made, or ended by the server (at COMPACT_REVISION when the
	 * revision it was to start from is compacted); DELETE events, whose
	 * keys that name a lock are in KVS; FRAGMENT: more of the same
	 * revision follows. */
	bool created;
	bool canceled;
	bool fragment;
	int64_t compact_revision;
	size_t ndeletes;       /* DELETE events, lock keys or not */
	size_t nputs;          /* other events (a watch that filters them
				  gets none) */
};

/*
 * lw__etcd_reply_parse - read the reply in BUF (LEN bytes) into R, whose
 * PREFIX is set.  Keys under PREFIX that are not a lock name are counted
 * in NKEYS only; keys outside it in OUTSIDE too (whether that is wrong is
 * the caller's to say: a range never returns one, a lease may hold one).
 *
 * Returns: 0; -EBADMSG with a one-line reason in WHY for anything that is
 * not a JSON object of the known shape (garbage, an HTML page, a cut
 * reply, a key that is not base64); -ENOMEM.  Free R with
 * lw__etcd_reply_fini either way.
 */
int lw__etcd_reply_parse(const char *buf, size_t len, struct lw__etcd_reply *r,
			 char *why, size_t whysize);
void lw__etcd_reply_fini(struct lw__etcd_reply *r);

/*
 * lw__etcd_error_message - the message of the gateway's error body
 * ({"error": "...", "message": "...", "code": N}, which may be followed by
 * a stray trailer line) into MSG, sanitised; "" when BUF holds none.
 */
void lw__etcd_error_message(const char *buf, size_t len, char *msg, size_t size);
