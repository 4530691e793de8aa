/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * A strict, bounded JSON reader for the few shapes servers send us (the
 * HTTP backends' listings, the etcd gateway's replies).  It walks the text
 * once and builds nothing: callers pick the members they want and every
 * other value is checked and skipped.  Written here rather than taken from
 * json-c or jansson because those build a tree of every value (100,000
 * entries are hundreds of thousands of allocations) while this needs none
 * per entry, bounds nesting, and is small enough to fuzz to exhaustion.
 * RFC 8259 grammar: strings may not hold raw control characters, escapes
 * and surrogate pairs are checked, numbers follow the JSON number syntax.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/internal.h"

/* Values nested deeper than this (inside keys we do not know) are refused. */
#define LW__JSON_MAX_DEPTH 16

/* What lw__json_peek returns at the end of the text. */
#define LW__JSON_END (-1)

struct lw__json {
	const char *p;
	const char *start;
	const char *end;
	const char *what; /* "listing", "reply": names the text in messages */
	char *why;
	size_t whysize;
	int err;          /* set once, at the first problem */
};

/*
 * A decoded string, kept if it is plain ASCII and fits: S holds up to CAP - 1
 * bytes and a NUL.  OVER is set for a longer string (S then holds its first
 * CAP - 1 bytes) or at the first other character, not ASCII or a NUL (S
 * holds those before).  With UTF8 set, other characters are kept too, as
 * UTF-8 (raw bytes as they come: the caller checks them), for text that
 * people write, such as the names in restic's locks.
 */
struct lw__json_str {
	char *s;
	size_t cap;
	size_t len;
	bool over;
	bool utf8;
};

void lw__json_init(struct lw__json *c, const char *buf, size_t len,
		   const char *what, char *why, size_t whysize);
/* Records the first problem (at the cursor) in WHY; returns -EBADMSG. */
int lw__json_bad(struct lw__json *c, const char *fmt, ...) LW_PRINTF(2, 3);
/* The next significant byte, or LW__JSON_END. */
int lw__json_peek(struct lw__json *c);
int lw__json_expect(struct lw__json *c, char ch);
int lw__json_literal(struct lw__json *c, const char *word);
/* A string at the cursor, decoded into OUT (may be NULL: checked only). */
int lw__json_string(struct lw__json *c, struct lw__json_str *out);
/* Any value at DEPTH, checked and skipped. */
int lw__json_value(struct lw__json *c, int depth);
/* After the opening bracket: calls ITEM for each element of an array
 * (CLOSE ']') or member of an object ('}'), which consumes it. */
int lw__json_items(struct lw__json *c, char close,
		   int (*item)(struct lw__json *c, int depth, void *arg),
		   int depth, void *arg);
/*
 * An object at DEPTH: for each member, MEMBER gets its name (NULL when it
 * is too long to be one we know) and consumes the value, with
 * lw__json_value when it does not want it.
 */
int lw__json_object(struct lw__json *c, int depth,
		    int (*member)(struct lw__json *c, const char *name, int depth,
				  void *arg),
		    void *arg);
/* An integer, as a number or as the string of one (how protobuf's JSON
 * mapping writes 64-bit integers). */
int lw__json_int(struct lw__json *c, int64_t *v);
int lw__json_bool(struct lw__json *c, bool *v);
/* The first byte of the text; an empty text or an HTML page (a proxy's
 * error page) is refused with a message that says so. */
int lw__json_begin(struct lw__json *c);
/* Nothing but white space may follow the value. */
int lw__json_finish(struct lw__json *c);
