/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * What the environment of a test run asks for.  Which engines the loop
 * tests run on: both, or only the one that LOCKWATCH_ENGINE names (make
 * check-valgrind sets it to epoll: valgrind does not model io_uring's
 * shared rings).  How long a backend operation may take outside a lock's
 * deadline: 5 s, ten times that under valgrind (LWT_VALGRIND, set by
 * tests/helpers/valgrind-check), where a TLS handshake alone takes seconds.
 * Whether a uring case may skip where io_uring cannot start
 * (LOCKWATCH_TEST_ALLOW_NO_URING=1; without it, it fails).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h> /* offsetof, for lwt_keep_wanted callers */
#include <stdlib.h>
#include <string.h>

#include <lockwatch.h>

/* Cases of the matrix that LOCKWATCH_ENGINE left out, counted for the
 * summary at the end (tests/helpers/report.c). */
extern size_t lwt_left_out;

/* At the start of a case on ENGINE: fails it, or skips it where
 * LOCKWATCH_TEST_ALLOW_NO_URING=1, when ENGINE is uring and io_uring
 * cannot start here. */
void lwt_engine_case(enum lw_engine engine);

static inline bool lwt_engine_wanted(enum lw_engine engine)
{
	const char *only = getenv("LOCKWATCH_ENGINE");
	enum lw_engine e;

	if (!only || lw_engine_parse(only, &e) < 0 || e == LW_ENGINE_AUTO)
		return true;
	return e == engine;
}

/* Keeps, in place and in order, those of the N cases of SIZE bytes at
 * CASES whose enum lw_engine at OFFSET is wanted; returns how many. */
static inline size_t lwt_keep_wanted(void *cases, size_t n, size_t size, size_t offset)
{
	char *c = cases;
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		enum lw_engine e;

		memcpy(&e, c + i * size + offset, sizeof(e));
		if (lwt_engine_wanted(e))
			memmove(c + k++ * size, c + i * size, size);
	}
	lwt_left_out += n - k;
	return k;
}

static inline int64_t lwt_op_timeout(void)
{
	return getenv("LWT_VALGRIND") ? LW_SEC(50) : LW_SEC(5);
}
