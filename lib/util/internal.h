/* SPDX-License-Identifier: BSD-2-Clause */
/* Declarations shared by every layer: export macro, time, ids, logging. */
#pragma once

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "lockwatch.h"

#define LW_EXPORT __attribute__((visibility("default")))
#define LW_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define LW_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define LW_CONTAINER_OF(ptr, type, member) \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))
#define LW_MIN(a, b) ((a) < (b) ? (a) : (b))
#define LW_MAX(a, b) ((a) > (b) ? (a) : (b))

/* Makes room for one more element after N in the array at *ARRAYP (a
 * pointer to the array's pointer) of *CAP elements of SIZE bytes: doubles
 * it, from FIRST.  0, or -ENOMEM with the array as it was. */
static inline int lw__grow(void *arrayp, size_t *cap, size_t n, size_t size, size_t first)
{
	size_t ncap = *cap ? 2 * *cap : first;
	void *v;

	if (n < *cap)
		return 0;
	if (ncap > SIZE_MAX / size)
		return -ENOMEM;
	memcpy(&v, arrayp, sizeof(v));
	v = realloc(v, ncap * size);
	if (!v)
		return -ENOMEM;
	memcpy(arrayp, &v, sizeof(v));
	*cap = ncap;
	return 0;
}

/* ------------------------------------------------------------- time */

/* CLOCK_BOOTTIME keeps counting while the machine is suspended and ignores
 * wall-clock steps, so a deadline measured on it cannot be cheated by a
 * sleeping laptop or an NTP jump.  Every deadline in lockwatch uses it. */
int64_t lw__now_boot(void);
/* A + B and A - B, saturated at the ends of int64_t rather than wrapped:
 * an instant plus a duration that came from a user or another host. */
static inline int64_t lw__add_sat(int64_t a, int64_t b)
{
	int64_t r;

	if (__builtin_add_overflow(a, b, &r))
		return b > 0 ? INT64_MAX : INT64_MIN;
	return r;
}

static inline int64_t lw__sub_sat(int64_t a, int64_t b)
{
	int64_t r;

	if (__builtin_sub_overflow(a, b, &r))
		return b < 0 ? INT64_MAX : INT64_MIN;
	return r;
}

/* Wall-clock time, only for record times that other hosts compare. */
int64_t lw__now_real(void);
/* CLOCK_MONOTONIC, which stands still while the machine is suspended:
 * BOOTTIME minus MONOTONIC grows by the time slept. */
int64_t lw__now_mono(void);
/* A condition variable whose timed waits run on CLOCK_MONOTONIC, which a
 * wall-clock step does not move. */
void lw__cond_init_monotonic(pthread_cond_t *cv);
/* Tests: makes the clocks look as if the machine had slept NS now (a
 * suspend cannot be had in a test: MONOTONIC is set back instead). */
void lw__clock_simulate_suspend(int64_t ns);
/* Formats D (ns) as "2.5s", "3m12s", "1h2m"; returns BUF. */
char *lw__fmt_duration(int64_t d, char *buf, size_t size);

/* -------------------------------------------------------------- ids */

#define LW_ID_LEN 32
#define LW_ID_HEX (2 * LW_ID_LEN)

struct lw__id {
	uint8_t b[LW_ID_LEN];
};

/* 256 random bits from getrandom(2). */
int lw__id_random(struct lw__id *id);
/* Writes 64 lowercase hex digits and a NUL. */
void lw__id_hex(const struct lw__id *id, char out[LW_ID_HEX + 1]);
/* Parses exactly 64 lowercase hex digits (the only valid lock file names);
 * LEN is the name's length.  Returns false for anything else. */
bool lw__id_parse(const char *s, size_t len, struct lw__id *id);
static inline bool lw__id_eq(const struct lw__id *a, const struct lw__id *b)
{
	for (size_t i = 0; i < LW_ID_LEN; i++)
		if (a->b[i] != b->b[i])
			return false;
	return true;
}

/* ----------------------------------------------------------- logging */

/* Identical lines in a row are told once, then counted: a read-only
 * repository must not fill stderr with dozens of warnings a second. */
struct lw__log_repeat {
	pthread_mutex_t mu;
	int priority;      /* of the last line told */
	unsigned repeats;  /* identical lines since, not told */
	int64_t told_at;   /* CLOCK_BOOTTIME of the last line told */
	char last[1024];
};

struct lw__log {
	lw_log_fn fn;
	void *userdata;
	int priority;
	struct lw__log_repeat *repeat; /* NULL: every line is told */
};

/* Sets LOG up (priority from LOCKWATCH_LOG, lines to stderr); _fini frees
 * what _init took. */
void lw__log_init(struct lw__log *log);
void lw__log_fini(struct lw__log *log);
void lw__logf(const struct lw__log *log, int priority, const char *fmt, ...)
	LW_PRINTF(3, 4);
#define lw__log_enabled(log, prio) ((log) && (prio) <= (log)->priority)
/* The arguments are evaluated only when PRIO passes the log's priority
 * (kmod's gating): a message nobody reads costs one comparison, not its
 * formatting, at every level.  They must have no side effects. */
#define lw__log_at(log, prio, ...)                         \
	do {                                               \
		if (lw__log_enabled(log, prio))           \
			lw__logf(log, prio, __VA_ARGS__);  \
	} while (0)
#define lw__err(log, ...) lw__log_at(log, LOG_ERR, __VA_ARGS__)
#define lw__warn(log, ...) lw__log_at(log, LOG_WARNING, __VA_ARGS__)
#define lw__notice(log, ...) lw__log_at(log, LOG_NOTICE, __VA_ARGS__)
#define lw__info(log, ...) lw__log_at(log, LOG_INFO, __VA_ARGS__)
#define lw__dbg(log, ...) lw__log_at(log, LOG_DEBUG, __VA_ARGS__)

/* ------------------------------------------------------------ errors */

/* Sets this thread's lw_errmsg() text and returns ERR, so that a failing
 * call reads `return lw__fail(-EINVAL, "...", ...);`. */
int lw__fail(int err, const char *fmt, ...) LW_PRINTF(2, 3);
void lw__set_errmsg(const char *msg);

/* snprintf that never overflows and always terminates; returns BUF. */
char *lw__sfmt(char *buf, size_t size, const char *fmt, ...) LW_PRINTF(3, 4);
/* Replaces control characters (C0, DEL and UTF-8 encoded C1) with '?' in
 * place, so that text from lock records cannot drive a terminal.  Returns S. */
char *lw__sanitize(char *s);
/* strdup that returns NULL for NULL. */
char *lw__strdup0(const char *s);
