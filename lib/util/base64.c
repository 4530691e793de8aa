/* SPDX-License-Identifier: BSD-2-Clause */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#include "util/base64.h"

static const char alphabet[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void lw__base64_encode(const void *src, size_t n, char *dst)
{
	const uint8_t *s = src;

	for (; n >= 3; n -= 3, s += 3) {
		*dst++ = alphabet[s[0] >> 2];
		*dst++ = alphabet[(s[0] & 3) << 4 | s[1] >> 4];
		*dst++ = alphabet[(s[1] & 15) << 2 | s[2] >> 6];
		*dst++ = alphabet[s[2] & 63];
	}
	if (n) {
		*dst++ = alphabet[s[0] >> 2];
		*dst++ = alphabet[(s[0] & 3) << 4 | (n > 1 ? s[1] >> 4 : 0)];
		*dst++ = n > 1 ? alphabet[(s[1] & 15) << 2] : '=';
		*dst++ = '=';
	}
	*dst = '\0';
}

static int value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int lw__base64_decode(const char *src, size_t len, void *dst, size_t cap,
		      size_t *outlen)
{
	uint8_t *d = dst;
	size_t kept = 0;

	*outlen = 0;
	if (len % 4)
		return -EBADMSG;
	for (size_t i = 0; i < len; i += 4) {
		bool last = i + 4 == len;
		int pad = last ? (src[i + 3] == '=') + (src[i + 2] == '=' && src[i + 3] == '=') : 0;
		int v[4];
		uint8_t out[3];

		for (int k = 0; k < 4 - pad; k++)
			if ((v[k] = value(src[i + k])) < 0)
				return -EBADMSG;
		for (int k = 4 - pad; k < 4; k++)
			v[k] = 0;
		out[0] = (uint8_t)(v[0] << 2 | v[1] >> 4);
		out[1] = (uint8_t)(v[1] << 4 | v[2] >> 2);
		out[2] = (uint8_t)(v[2] << 6 | v[3]);
		for (int k = 0; k < 3 - pad; k++)
			if (kept < cap)
				d[kept++] = out[k];
	}
	*outlen = kept;
	return 0;
}
