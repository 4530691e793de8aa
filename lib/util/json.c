/* SPDX-License-Identifier: BSD-2-Clause */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/json.h"

void lw__json_init(struct lw__json *c, const char *buf, size_t len,
		   const char *what, char *why, size_t whysize)
{
	*c = (struct lw__json){ .p = buf, .start = buf, .end = buf + len,
				.what = what, .why = why, .whysize = whysize };
}

int lw__json_bad(struct lw__json *c, const char *fmt, ...)
{
	char what[96];
	va_list ap;

	if (c->err)
		return c->err;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (c->p >= c->end)
		snprintf(c->why, c->whysize, "truncated JSON %s (%zu bytes): %s", c->what,
			 (size_t)(c->end - c->start), what);
	else
		snprintf(c->why, c->whysize, "invalid JSON %s at byte %zu: %s", c->what,
			 (size_t)(c->p - c->start), what);
	c->err = -EBADMSG;
	return c->err;
}

static void skip_ws(struct lw__json *c)
{
	while (c->p < c->end &&
	       (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
		c->p++;
}

int lw__json_peek(struct lw__json *c)
{
	skip_ws(c);
	return c->p < c->end ? (unsigned char)*c->p : LW__JSON_END;
}

int lw__json_expect(struct lw__json *c, char ch)
{
	if (lw__json_peek(c) != ch)
		return lw__json_bad(c, "expected '%c'", ch);
	c->p++;
	return 0;
}

static int hex4(struct lw__json *c, unsigned *out)
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
			return lw__json_bad(c, "bad \\u escape");
		*out = *out << 4 | v;
	}
	return 0;
}

/* A NUL ("\u0000") would end the C string early: "name\u0000x" is not "name". */
static void str_byte(struct lw__json_str *s, unsigned ch)
{
	if (!s || s->over)
		return;
	if (ch == 0 || (ch >= 0x80 && !s->utf8) || s->len + 1 >= s->cap) {
		s->over = true;
		return;
	}
	s->s[s->len++] = (char)ch;
	s->s[s->len] = '\0';
}

/* A character from an escape, as UTF-8 where the string keeps it. */
static void str_add(struct lw__json_str *s, unsigned ch)
{
	if (ch < 0x80 || !s || !s->utf8) {
		str_byte(s, ch < 0x80 ? ch : 0x80);
	} else if (ch < 0x800) {
		str_byte(s, 0xc0 | ch >> 6);
		str_byte(s, 0x80 | (ch & 0x3f));
	} else if (ch < 0x10000) {
		str_byte(s, 0xe0 | ch >> 12);
		str_byte(s, 0x80 | (ch >> 6 & 0x3f));
		str_byte(s, 0x80 | (ch & 0x3f));
	} else {
		str_byte(s, 0xf0 | ch >> 18);
		str_byte(s, 0x80 | (ch >> 12 & 0x3f));
		str_byte(s, 0x80 | (ch >> 6 & 0x3f));
		str_byte(s, 0x80 | (ch & 0x3f));
	}
}

int lw__json_string(struct lw__json *c, struct lw__json_str *out)
{
	if (out) {
		out->len = 0;
		out->over = out->cap == 0;
		if (out->cap)
			out->s[0] = '\0';
	}
	if (lw__json_expect(c, '"') < 0)
		return c->err;
	for (;;) {
		unsigned char ch;
		unsigned u, lo;

		if (c->p >= c->end)
			return lw__json_bad(c, "unterminated string");
		ch = (unsigned char)*c->p++;
		if (ch == '"')
			return 0;
		if (ch < 0x20)
			return lw__json_bad(c, "control character in a string");
		if (ch != '\\') {
			str_byte(out, ch);
			continue;
		}
		if (c->p >= c->end)
			return lw__json_bad(c, "unterminated string");
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
				return lw__json_bad(c, "lone low surrogate");
			if (u >= 0xd800 && u <= 0xdbff) {
				if (c->end - c->p < 2 || c->p[0] != '\\' || c->p[1] != 'u')
					return lw__json_bad(c, "high surrogate without its pair");
				c->p += 2;
				if (hex4(c, &lo) < 0)
					return c->err;
				if (lo < 0xdc00 || lo > 0xdfff)
					return lw__json_bad(c, "high surrogate without its pair");
				u = 0x10000 + ((u - 0xd800) << 10 | (lo - 0xdc00));
			}
			str_add(out, u);
			continue;
		default:
			c->p--;
			return lw__json_bad(c, "bad escape");
		}
		str_add(out, ch);
	}
}

static bool digit(const struct lw__json *c)
{
	return c->p < c->end && *c->p >= '0' && *c->p <= '9';
}

static int number(struct lw__json *c)
{
	if (c->p < c->end && *c->p == '-')
		c->p++;
	if (!digit(c))
		return lw__json_bad(c, "bad number");
	if (*c->p++ != '0')
		while (digit(c))
			c->p++;
	if (c->p < c->end && *c->p == '.') {
		c->p++;
		if (!digit(c))
			return lw__json_bad(c, "bad number");
		while (digit(c))
			c->p++;
	}
	if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
		c->p++;
		if (c->p < c->end && (*c->p == '+' || *c->p == '-'))
			c->p++;
		if (!digit(c))
			return lw__json_bad(c, "bad number");
		while (digit(c))
			c->p++;
	}
	return 0;
}

int lw__json_literal(struct lw__json *c, const char *word)
{
	size_t n = strlen(word);

	if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n) != 0)
		return lw__json_bad(c, "unexpected character");
	c->p += n;
	return 0;
}

int lw__json_items(struct lw__json *c, char close,
		   int (*item)(struct lw__json *c, int depth, void *arg),
		   int depth, void *arg)
{
	if (lw__json_peek(c) == close) {
		c->p++;
		return 0;
	}
	for (;;) {
		int ch;

		if (item(c, depth, arg) < 0)
			return c->err;
		ch = lw__json_peek(c);
		c->p++;
		if (ch == close)
			return 0;
		if (ch != ',') {
			c->p--;
			return lw__json_bad(c, "expected ',' or '%c'", close);
		}
	}
}

struct object {
	int (*member)(struct lw__json *c, const char *name, int depth, void *arg);
	void *arg;
};

static int object_member(struct lw__json *c, int depth, void *arg)
{
	const struct object *o = arg;
	char buf[32];
	struct lw__json_str name = { .s = buf, .cap = sizeof(buf) };

	if (lw__json_string(c, &name) < 0 || lw__json_expect(c, ':') < 0)
		return c->err;
	return o->member(c, name.over ? NULL : name.s, depth, o->arg);
}

static int skip_member(struct lw__json *c, const char *name, int depth, void *arg)
{
	return lw__json_value(c, depth);
}

static int element(struct lw__json *c, int depth, void *arg)
{
	return lw__json_value(c, depth);
}

int lw__json_object(struct lw__json *c, int depth,
		    int (*member)(struct lw__json *c, const char *name, int depth,
				  void *arg),
		    void *arg)
{
	struct object o = { member, arg };

	if (depth > LW__JSON_MAX_DEPTH)
		return lw__json_bad(c, "nested deeper than %d", LW__JSON_MAX_DEPTH);
	if (lw__json_expect(c, '{') < 0)
		return c->err;
	return lw__json_items(c, '}', object_member, depth + 1, &o);
}

int lw__json_value(struct lw__json *c, int depth)
{
	if (depth > LW__JSON_MAX_DEPTH)
		return lw__json_bad(c, "nested deeper than %d", LW__JSON_MAX_DEPTH);
	switch (lw__json_peek(c)) {
	case '"':
		return lw__json_string(c, NULL);
	case '{':
		return lw__json_object(c, depth, skip_member, NULL);
	case '[':
		c->p++;
		return lw__json_items(c, ']', element, depth + 1, NULL);
	case 't':
		return lw__json_literal(c, "true");
	case 'f':
		return lw__json_literal(c, "false");
	case 'n':
		return lw__json_literal(c, "null");
	case '-': case '0': case '1': case '2': case '3': case '4':
	case '5': case '6': case '7': case '8': case '9':
		return number(c);
	default:
		return lw__json_bad(c, "expected a value");
	}
}

int lw__json_int(struct lw__json *c, int64_t *v)
{
	char buf[24];
	struct lw__json_str s = { .s = buf, .cap = sizeof(buf) };
	const char *start = NULL;
	char *end;

	if (lw__json_peek(c) == '"') {
		if (lw__json_string(c, &s) < 0)
			return c->err;
	} else {
		start = c->p;
		if (number(c) < 0)
			return c->err;
		s.len = (size_t)(c->p - start);
		s.over = s.len >= sizeof(buf);
		if (!s.over) {
			memcpy(buf, start, s.len);
			buf[s.len] = '\0';
		}
	}
	if (s.over || !s.len || !(buf[0] == '-' || (buf[0] >= '0' && buf[0] <= '9')))
		return lw__json_bad(c, "expected an integer");
	errno = 0;
	*v = strtoll(buf, &end, 10);
	if (*end || errno)
		return lw__json_bad(c, "expected a 64-bit integer");
	return 0;
}

int lw__json_bool(struct lw__json *c, bool *v)
{
	switch (lw__json_peek(c)) {
	case 't':
		*v = true;
		return lw__json_literal(c, "true");
	case 'f':
		*v = false;
		return lw__json_literal(c, "false");
	default:
		return lw__json_bad(c, "expected true or false");
	}
}

int lw__json_begin(struct lw__json *c)
{
	int ch = lw__json_peek(c);

	if (ch == '<')
		snprintf(c->why, c->whysize, "an HTML page, not a JSON %s", c->what);
	else if (ch == LW__JSON_END)
		snprintf(c->why, c->whysize, "an empty body, not a JSON %s", c->what);
	else
		return ch;
	c->err = -EBADMSG;
	return c->err;
}

int lw__json_finish(struct lw__json *c)
{
	if (!c->err && lw__json_peek(c) != LW__JSON_END)
		lw__json_bad(c, "data after the %s", c->what);
	return c->err;
}
