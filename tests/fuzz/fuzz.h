/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * What the fuzz targets share.  A target is one LLVMFuzzerTestOneInput:
 * libFuzzer drives it in a fuzzing build (make fuzz), and replay.c feeds it
 * the target's committed corpus in every build (make check).
 */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What a target returns for an input it does not take (libFuzzer then
 * keeps it out of the corpus). */
#define FUZZ_REJECT (-1)

/* A broken invariant is a finding: name it and abort, so that libFuzzer
 * saves the input and replay.c fails. */
#define fuzz_assert(cond) \
	((cond) ? (void)0 : fuzz_fail(#cond, __FILE__, __LINE__))

static inline _Noreturn void fuzz_fail(const char *what, const char *file, int line)
{
	fprintf(stderr, "%s:%d: invariant broken: %s\n", file, line, what);
	abort();
}

/* DATA as a C string (free it), or NULL when it holds a NUL: a C caller
 * cannot pass such a string, so the input is not one. */
static inline char *fuzz_cstr(const uint8_t *data, size_t size)
{
	char *s;

	if (size && memchr(data, '\0', size))
		return NULL;
	s = malloc(size + 1);
	if (!s)
		abort();
	if (size)
		memcpy(s, data, size);
	s[size] = '\0';
	return s;
}
