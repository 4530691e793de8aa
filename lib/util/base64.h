/* SPDX-License-Identifier: BSD-2-Clause */
/* Base64 with the standard alphabet and padding (RFC 4648, section 4): how
 * protobuf's JSON mapping, and so etcd's gateway, writes bytes. */
#pragma once

#include <stddef.h>

/* The length of N bytes encoded, without a terminator. */
static inline size_t lw__base64_len(size_t n)
{
	return (n + 2) / 3 * 4;
}

/* Writes SRC (N bytes) encoded into DST, which holds lw__base64_len(N) + 1
 * bytes, and a NUL. */
void lw__base64_encode(const void *src, size_t n, char *dst);

/*
 * lw__base64_decode - decode LEN characters of SRC into DST, keeping the
 * first CAP bytes; *OUTLEN gets how many were kept.  All of SRC is checked.
 *
 * Returns: 0, or -EBADMSG for a length that is not a multiple of 4, a
 * character outside the alphabet, or padding anywhere but at the end.
 */
int lw__base64_decode(const char *src, size_t len, void *dst, size_t cap,
		      size_t *outlen);
