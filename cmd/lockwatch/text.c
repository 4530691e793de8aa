/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Text taken from lock records, on its way to a person or a program.  A
 * record is written by whoever can write to the repository: its host name
 * may hold an escape sequence that clears the screen or retitles the
 * terminal, a right-to-left override that reorders the line, or 255 bytes
 * that push the table apart.  None of that reaches the terminal.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "cli.h"

/* The code point at S (advancing *LEN bytes), or -1 for invalid UTF-8. */
static long utf8_next(const unsigned char *s, size_t *len)
{
	static const long min[] = { 0, 0, 0x80, 0x800, 0x10000 };
	size_t n = s[0] < 0x80 ? 1 : s[0] >= 0xc2 && s[0] <= 0xdf ? 2 :
		   s[0] >= 0xe0 && s[0] <= 0xef ? 3 : s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : 0;
	long c;

	*len = 1;
	if (n == 0)
		return -1;
	c = n == 1 ? s[0] : s[0] & (0x7f >> n);
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return -1;
		c = c << 6 | (s[i] & 0x3f);
	}
	if (c < min[n] || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return -1;
	*len = n;
	return c;
}

/* Code points that move the cursor, change modes or reorder text. */
static bool is_control(long c)
{
	return c < 0x20 || (c >= 0x7f && c <= 0x9f) ||
	       (c >= 0x200e && c <= 0x200f) || (c >= 0x202a && c <= 0x202e) ||
	       (c >= 0x2066 && c <= 0x2069) || c == 0x061c;
}

char *text_term(const char *s, size_t width, char *buf, size_t size)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t out = 0, cols = 0;

	if (!s)
		s = "-", p = (const unsigned char *)s;
	while (*p) {
		size_t n;
		long c = utf8_next(p, &n);

		/* room for this and, if more follows, the "..." */
		if (cols + 1 > width || out + n + 4 > size) {
			if (width >= 3 && out + 4 <= size) {
				while (cols > width - 3) {
					/* back up one code point */
					do
						out--;
					while (out > 0 && ((unsigned char)buf[out] & 0xc0) == 0x80);
					cols--;
				}
				memcpy(buf + out, "...", 3);
				out += 3;
			}
			break;
		}
		if (c < 0 || is_control(c)) {
			buf[out++] = '?';
		} else {
			memcpy(buf + out, p, n);
			out += n;
		}
		cols++;
		p += n;
	}
	buf[out] = '\0';
	return buf;
}

size_t text_width(const char *s)
{
	size_t cols = 0;

	for (; *s; s++)
		cols += ((unsigned char)*s & 0xc0) != 0x80;
	return cols;
}

void text_json(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	if (!s) {
		fputs("null", stdout);
		return;
	}
	putchar('"');
	while (*p) {
		size_t n;
		long c = utf8_next(p, &n);

		if (c < 0)
			fputs("\\ufffd", stdout);
		else if (c == '"' || c == '\\')
			printf("\\%c", (int)c);
		else if (is_control(c))
			printf("\\u%04lx", c); /* valid raw, but not on a terminal */
		else
			fwrite(p, 1, n, stdout);
		p += n;
	}
	putchar('"');
}
