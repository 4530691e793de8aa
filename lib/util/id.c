/* SPDX-License-Identifier: BSD-2-Clause */
#include "config.h"

#include <sys/random.h>

#include "util/internal.h"

int lw__id_random(struct lw__id *id)
{
	size_t got = 0;

	while (got < sizeof(id->b)) {
		ssize_t n = getrandom(id->b + got, sizeof(id->b) - got, 0);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		got += (size_t)n;
	}
	return 0;
}

void lw__id_hex(const struct lw__id *id, char out[LW_ID_HEX + 1])
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < LW_ID_LEN; i++) {
		out[2 * i] = digits[id->b[i] >> 4];
		out[2 * i + 1] = digits[id->b[i] & 0xf];
	}
	out[LW_ID_HEX] = '\0';
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

bool lw__id_parse(const char *s, size_t len, struct lw__id *id)
{
	if (len != LW_ID_HEX)
		return false;
	for (size_t i = 0; i < LW_ID_LEN; i++) {
		int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return false;
		id->b[i] = (uint8_t)(hi << 4 | lo);
	}
	return true;
}
