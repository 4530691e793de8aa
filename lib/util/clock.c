/* SPDX-License-Identifier: BSD-2-Clause */
#include "config.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

#include "util/internal.h"

static int64_t now(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * LW_NSEC_PER_SEC + ts.tv_nsec;
}

int64_t lw__now_boot(void)
{
	return now(CLOCK_BOOTTIME);
}

int64_t lw__now_real(void)
{
	return now(CLOCK_REALTIME);
}

void lw__cond_init_monotonic(pthread_cond_t *cv)
{
	pthread_condattr_t ca;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(cv, &ca);
	pthread_condattr_destroy(&ca);
}

static _Atomic int64_t slept;

int64_t lw__now_mono(void)
{
	return now(CLOCK_MONOTONIC) - atomic_load_explicit(&slept, memory_order_relaxed);
}

void lw__clock_simulate_suspend(int64_t ns)
{
	atomic_fetch_add(&slept, ns);
}

char *lw__fmt_duration(int64_t d, char *buf, size_t size)
{
	const char *sign = d < 0 ? "-" : "";
	uint64_t a = d < 0 ? -(uint64_t)d : (uint64_t)d;
	uint64_t s = (a + LW_NSEC_PER_SEC / 2) / LW_NSEC_PER_SEC; /* rounded */

	if (a < (uint64_t)LW_MSEC(1))
		snprintf(buf, size, "%s%" PRIu64 "us", sign, a / 1000);
	else if (a < (uint64_t)LW_SEC(1) - 500000) /* 999.5ms would print "1e+03ms" */
		snprintf(buf, size, "%s%.3gms", sign, (double)a / 1e6);
	else if (a < (uint64_t)LW_SEC(60) - LW_MSEC(50)) /* 59.95s would print "60s" */
		snprintf(buf, size, "%s%.3gs", sign, (double)a / 1e9);
	else if (s < 3600)
		snprintf(buf, size, "%s%" PRIu64 "m%" PRIu64 "s", sign, s / 60, s % 60);
	else
		snprintf(buf, size, "%s%" PRIu64 "h%" PRIu64 "m", sign, s / 3600,
			 s / 60 % 60);
	return buf;
}
