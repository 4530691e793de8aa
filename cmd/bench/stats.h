/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Latency statistics for the benchmarks: exact count, min, max, mean and
 * standard deviation, and a log-linear histogram for percentiles, as fio
 * keeps them.  Recording is O(1) and never allocates, so it can run for
 * every request at tens of thousands of requests per second.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* Sub-buckets per power of two: a percentile is off by at most 1/128 of
 * its value (the midpoint of a bucket 1/64 wide); below 128 ns exact. */
#define BENCH_HIST_BITS 6
#define BENCH_HIST_SUB (1u << BENCH_HIST_BITS)
/* Values up to 2^44 ns (4.9 hours); longer ones count in the last bucket. */
#define BENCH_HIST_MAX_LOG2 44
#define BENCH_HIST_BUCKETS ((BENCH_HIST_MAX_LOG2 - BENCH_HIST_BITS + 1) * BENCH_HIST_SUB)

struct bench_hist {
	uint64_t n;
	int64_t min, max;
	double mean, m2; /* Welford's running mean and sum of squares */
	uint64_t buckets[BENCH_HIST_BUCKETS];
};

/* fio's default percentile list. */
#define BENCH_NPCT 17
extern const double bench_pct[BENCH_NPCT];

void bench_hist_init(struct bench_hist *h);
/* Records V (ns; negative counts as 0). */
void bench_hist_add(struct bench_hist *h, int64_t v);
double bench_hist_stdev(const struct bench_hist *h);
/*
 * bench_hist_percentile - the value at or below which P percent of the
 * samples lie (nearest rank), as the midpoint of its bucket clamped to
 * [min, max].  0 when the histogram is empty.
 */
int64_t bench_hist_percentile(const struct bench_hist *h, double p);
