/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The WebDAV listing of the dav: backend: a PROPFIND Depth: 1 reply, a 207
 * Multi-Status (RFC 4918, 13 and 14.16) whose responses name the members of
 * locks/.  The text comes from a server, so the parser is bounded and
 * refuses what it was not asked for (a DOCTYPE, entities); it is a pure
 * function of its input, the entry point for fuzzing, as json-listing.h.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "util/internal.h"

/* The largest reply taken: Apache's answer for 100,000 lock files, at
 * about 430 bytes each, is 43 MB. */
#define LW_PROPFIND_MAX (64u << 20)

/* The body of the PROPFIND request: only the two properties the listing
 * reads, not allprop (whose dead properties a server may have to fetch). */
#define LW_PROPFIND_BODY                                                 \
	"<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"                    \
	"<D:propfind xmlns:D=\"DAV:\"><D:prop>"                           \
	"<D:resourcetype/><D:getcontentlength/>"                          \
	"</D:prop></D:propfind>\n"

/*
 * lw__propfind_parse - the lock ids named by the multistatus in BUF (LEN
 * bytes, no terminator needed), the reply to a PROPFIND of the collection
 * at DIR (the request's path as sent, percent-encoded or not, with or
 * without its trailing slash).
 *
 * An entry is named like a lock when its href (an absolute URL or a path,
 * resolved against DIR when relative), percent-decoded, is DIR followed by
 * a last segment of exactly 64 lowercase hex characters (and a '/' for a
 * collection).  Everything else (the collection itself, other folders,
 * hrefs elsewhere on the server or with dot segments, entries whose status
 * is not 2xx) is skipped: a server cannot make the client touch another
 * path.  A collection named like a lock is a folder, not a lock file: with
 * TYPESP it is kept, and *TYPESP (NULL when every entry is a file; free
 * it) says LW__FTYPE_DIR for it and LW__FTYPE_FILE for the others, as
 * lw__json_listing_parse_typed does; with TYPESP NULL it is skipped.
 *
 * Returns: 0 with *IDSP (malloc'd, NULL when empty; free it) and *NP;
 * -EBADMSG for anything that is not such a multistatus (an HTML page,
 * truncated or malformed XML, a DOCTYPE, a reply over its bounds), with a
 * one-line reason in WHY; -ENOMEM.
 */
int lw__propfind_parse(const char *buf, size_t len, const char *dir,
		       struct lw__id **idsp, uint8_t **typesp, size_t *np, char *why,
		       size_t whysize);
