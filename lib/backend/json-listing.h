/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The JSON directory listings of the HTTP backends: restic's REST v1 (an
 * array of names), REST v2 (an array of {"name", "size"}) and nginx's
 * autoindex (an array of {"name", "type", "mtime", "size"}).  The text comes
 * from a server, so the parser is strict and bounded; it is a pure function
 * of its input, the entry point for fuzzing.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "util/json.h"
#include "util/internal.h"

/*
 * lw__json_listing_parse - the lock ids named by the listing in BUF (LEN
 * bytes, no terminator needed).  Names that are not exactly 64 lowercase hex
 * characters ("../x", "a/b", "README") and objects whose "type" is not
 * "file" are skipped: a server cannot make the client touch another path.
 * A top-level null is an empty listing (Go encodes an empty slice so).
 *
 * Returns: 0 with *IDSP (malloc'd, NULL when empty; free it) and *NP;
 * -EBADMSG for anything that is not such a listing, with a one-line reason
 * in WHY; -ENOMEM.
 */
int lw__json_listing_parse(const char *buf, size_t len, struct lw__id **idsp,
			   size_t *np, char *why, size_t whysize);
/* The same, keeping the entries named like a lock whose "type" is not
 * "file", with *TYPESP (NULL when every one is a file; free it) telling
 * each one's type: LW__FTYPE_FILE, _DIR ("directory") or _OTHER. */
int lw__json_listing_parse_typed(const char *buf, size_t len, struct lw__id **idsp,
				 uint8_t **typesp, size_t *np, char *why, size_t whysize);
