/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * A strict JSON reader for exactly one shape: an array of names or of
 * objects with a name.  Written here rather than taken from json-c or
 * jansson because those build a tree of every value (100,000 entries are
 * hundreds of thousands of allocations) while this needs none per entry,
 * bounds nesting, and is small enough to fuzz to exhaustion.  RFC 8259
 * grammar: strings may not hold raw control characters, escapes and
 * surrogate pairs are checked, numbers follow the JSON number syntax.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json-listing.h"

struct cursor {
	const char *p;
	const char *start;
	const char *end;
	char *why;
	size_t whysize;
	int err; /* set once, at the first problem */
};

/* A name as decoded: long enough for an id and one byte to spare. */
struct name {
	char s[LW_ID_HEX + 1];
	size_t len;
	bool too_long; /* or not plain ASCII, or holds a NUL: cannot be an id
			* nor a key we know */
};

static int bad(struct cursor *c, const char *fmt, ...) LW_PRINTF(2, 3);

static int bad(struct cursor *c, const char *fmt, ...)
{
	char what[96];
	va_list ap;

	if (c->err)
		return c->err;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (c->p >= c->end)
		snprintf(c->why, c->whysize, "truncated JSON listing (%zu bytes): %s",
			 (size_t)(c->end - c->start), what);
	else
		snprintf(c->why, c->whysize, "invalid JSON listing at byte %zu: %s",
			 (size_t)(c->p - c->start), what);
	c->err = -EBADMSG;
	return c->err;
}

static void skip_ws(struct cursor *c)
{
	while (c->p < c->end &&
	       (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
		c->p++;
}

#define END (-1)

/* The next significant byte, or END. */
static int peek(struct cursor *c)
{
	skip_ws(c);
	return c->p < c->end ? (unsigned char)*c->p : END;
}

static int expect(struct cursor *c, char ch)
{
	if (peek(c) != ch)
		return bad(c, "expected '%c'", ch);
	c->p++;
	return 0;
}

static int hex4(struct cursor *c, unsigned *out)
{
	*out = 0;
	for (int i = 0; i < 4; i++, c->p++) {
		char ch = c->p < c->end ? *c->p : 0;
		unsigned v;

		if (ch >= '0' && ch <= '9')
			v = (unsigned)(ch - '0');
		else if ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'f')
			v = (unsigned)((ch | 0x20) - 'a' + 10);
		else
			return bad(c, "bad \\u escape");
		*out = *out << 4 | v;
	}
	return 0;
}

/* A NUL ("\u0000") would end the C string early: "name\u0000x" is not "name". */
static void name_add(struct name *n, unsigned ch)
{
	if (ch == 0 || ch >= 0x80 || n->len >= sizeof(n->s) - 1) {
		n->too_long = true;
		return;
	}
	n->s[n->len++] = (char)ch;
	n->s[n->len] = '\0';
}

/* A string at the cursor; its decoded ASCII form goes to OUT if given. */
static int string(struct cursor *c, struct name *out)
{
	if (expect(c, '"') < 0)
		return c->err;
	for (;;) {
		unsigned char ch;
		unsigned u, lo;

		if (c->p >= c->end)
			return bad(c, "unterminated string");
		ch = (unsigned char)*c->p++;
		if (ch == '"')
			return 0;
		if (ch < 0x20)
			return bad(c, "control character in a string");
		if (ch != '\\') {
			if (out)
				name_add(out, ch);
			continue;
		}
		if (c->p >= c->end)
			return bad(c, "unterminated string");
		ch = (unsigned char)*c->p++;
		switch (ch) {
		case '"': case '\\': case '/':
			break;
		case 'b': ch = '\b'; break;
		case 'f': ch = '\f'; break;
		case 'n': ch = '\n'; break;
		case 'r': ch = '\r'; break;
		case 't': ch = '\t'; break;
		case 'u':
			if (hex4(c, &u) < 0)
				return c->err;
			if (u >= 0xdc00 && u <= 0xdfff)
				return bad(c, "lone low surrogate");
			if (u >= 0xd800 && u <= 0xdbff) {
				if (c->end - c->p < 2 || c->p[0] != '\\' || c->p[1] != 'u')
					return bad(c, "high surrogate without its pair");
				c->p += 2;
				if (hex4(c, &lo) < 0)
					return c->err;
				if (lo < 0xdc00 || lo > 0xdfff)
					return bad(c, "high surrogate without its pair");
				u = 0x10000;
			}
			if (out)
				name_add(out, u);
			continue;
		default:
			c->p--;
			return bad(c, "bad escape");
		}
		if (out)
			name_add(out, ch);
	}
}

static bool digit(const struct cursor *c)
{
	return c->p < c->end && *c->p >= '0' && *c->p <= '9';
}

static int number(struct cursor *c)
{
	if (c->p < c->end && *c->p == '-')
		c->p++;
	if (!digit(c))
		return bad(c, "bad number");
	if (*c->p++ != '0')
		while (digit(c))
			c->p++;
	if (c->p < c->end && *c->p == '.') {
		c->p++;
		if (!digit(c))
			return bad(c, "bad number");
		while (digit(c))
			c->p++;
	}
	if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
		c->p++;
		if (c->p < c->end && (*c->p == '+' || *c->p == '-'))
			c->p++;
		if (!digit(c))
			return bad(c, "bad number");
		while (digit(c))
			c->p++;
	}
	return 0;
}

static int literal(struct cursor *c, const char *word)
{
	size_t n = strlen(word);

	if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n) != 0)
		return bad(c, "unexpected character");
	c->p += n;
	return 0;
}

static int value(struct cursor *c, int depth);

/* The members of an object or the elements of an array, after the opening
 * bracket: calls ITEM for each. */
static int items(struct cursor *c, char close, int (*item)(struct cursor *, int, void *),
		 int depth, void *arg)
{
	if (peek(c) == close) {
		c->p++;
		return 0;
	}
	for (;;) {
		int ch;

		if (item(c, depth, arg) < 0)
			return c->err;
		ch = peek(c);
		c->p++;
		if (ch == close)
			return 0;
		if (ch != ',') {
			c->p--;
			return bad(c, "expected ',' or '%c'", close);
		}
	}
}

static int member(struct cursor *c, int depth, void *arg)
{
	if (string(c, NULL) < 0 || expect(c, ':') < 0)
		return c->err;
	return value(c, depth);
}

static int element(struct cursor *c, int depth, void *arg)
{
	return value(c, depth);
}

/* Any JSON value, checked and skipped. */
static int value(struct cursor *c, int depth)
{
	if (depth > LW__JSON_MAX_DEPTH)
		return bad(c, "nested deeper than %d", LW__JSON_MAX_DEPTH);
	switch (peek(c)) {
	case '"':
		return string(c, NULL);
	case '{':
		c->p++;
		return items(c, '}', member, depth + 1, NULL);
	case '[':
		c->p++;
		return items(c, ']', element, depth + 1, NULL);
	case 't':
		return literal(c, "true");
	case 'f':
		return literal(c, "false");
	case 'n':
		return literal(c, "null");
	case '-': case '0': case '1': case '2': case '3': case '4':
	case '5': case '6': case '7': case '8': case '9':
		return number(c);
	default:
		return bad(c, "expected a value");
	}
}

struct entry {
	struct name name;
	bool has_name;
	bool has_type;
	bool is_file;
};

static int entry_member(struct cursor *c, int depth, void *arg)
{
	struct entry *e = arg;
	struct name key = { .len = 0 };

	if (string(c, &key) < 0 || expect(c, ':') < 0)
		return c->err;
	if (!key.too_long && strcmp(key.s, "name") == 0) {
		if (e->has_name)
			return bad(c, "two names in one entry");
		e->has_name = true;
		if (peek(c) != '"')
			return bad(c, "a name that is not a string");
		return string(c, &e->name);
	}
	if (!key.too_long && strcmp(key.s, "type") == 0) {
		struct name type = { .len = 0 };

		if (e->has_type)
			return bad(c, "two types in one entry");
		e->has_type = true;
		if (peek(c) != '"')
			return bad(c, "a type that is not a string");
		if (string(c, &type) < 0)
			return c->err;
		e->is_file = !type.too_long && strcmp(type.s, "file") == 0;
		return 0;
	}
	return value(c, depth);
}

struct ids {
	struct lw__id *v;
	size_t n, cap;
};

static int add_id(struct cursor *c, struct ids *ids, const struct name *name)
{
	struct lw__id id;

	if (name->too_long || !lw__id_parse(name->s, name->len, &id))
		return 0;
	if (ids->n == ids->cap) {
		size_t cap = ids->cap ? 2 * ids->cap : 64;
		struct lw__id *v = realloc(ids->v, cap * sizeof(*v));

		if (!v) {
			snprintf(c->why, c->whysize, "out of memory");
			return c->err = -ENOMEM;
		}
		ids->v = v;
		ids->cap = cap;
	}
	ids->v[ids->n++] = id;
	return 0;
}

static int listing_entry(struct cursor *c, int depth, void *arg)
{
	struct ids *ids = arg;
	struct entry e = { .is_file = true };

	switch (peek(c)) {
	case '"': /* v1: a bare name */
		if (string(c, &e.name) < 0)
			return c->err;
		return add_id(c, ids, &e.name);
	case '{':
		c->p++;
		if (items(c, '}', entry_member, depth + 1, &e) < 0)
			return c->err;
		if (!e.has_name)
			return bad(c, "an entry without a name");
		return e.is_file ? add_id(c, ids, &e.name) : 0;
	default:
		return bad(c, "an entry that is neither a name nor an object");
	}
}

int lw__json_listing_parse(const char *buf, size_t len, struct lw__id **idsp,
			   size_t *np, char *why, size_t whysize)
{
	struct cursor c = { .p = buf, .start = buf, .end = buf + len, .why = why,
			    .whysize = whysize };
	struct ids ids = { 0 };

	*idsp = NULL;
	*np = 0;
	switch (peek(&c)) {
	case '[':
		c.p++;
		items(&c, ']', listing_entry, 1, &ids);
		break;
	case 'n':
		literal(&c, "null");
		break;
	case '<':
		snprintf(why, whysize, "an HTML page, not a JSON listing");
		c.err = -EBADMSG;
		break;
	case END:
		snprintf(why, whysize, "an empty body, not a JSON listing");
		c.err = -EBADMSG;
		break;
	default:
		bad(&c, "expected an array");
		break;
	}
	if (!c.err && peek(&c) != END)
		bad(&c, "data after the listing");
	if (c.err) {
		free(ids.v);
		return c.err;
	}
	*idsp = ids.v;
	*np = ids.n;
	return 0;
}
