/* SPDX-License-Identifier: BSD-2-Clause */
#include "config.h"

#include <math.h>
#include <string.h>

#include "stats.h"

const double bench_pct[BENCH_NPCT] = {
	1, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 99, 99.5, 99.9, 99.95, 99.99,
};

void bench_hist_init(struct bench_hist *h)
{
	memset(h, 0, sizeof(*h));
}

/*
 * Values below 2 x SUB have a bucket each.  Above, a value whose highest
 * set bit is BITS + S is cut to its top BITS + 1 bits M (SUB <= M < 2 x SUB)
 * and lands in bucket S x SUB + M: every bucket is 1/SUB of its power of
 * two, and the buckets of S follow those of S - 1 without a gap.
 */
static unsigned bucket_of(uint64_t v)
{
	unsigned shift, idx;

	if (v < 2 * BENCH_HIST_SUB)
		return (unsigned)v;
	shift = 63u - (unsigned)__builtin_clzll(v) - BENCH_HIST_BITS;
	idx = shift * BENCH_HIST_SUB + (unsigned)(v >> shift);
	return idx < BENCH_HIST_BUCKETS ? idx : BENCH_HIST_BUCKETS - 1;
}

/* The midpoint of bucket IDX. */
static uint64_t bucket_value(unsigned idx)
{
	unsigned shift;

	if (idx < 2 * BENCH_HIST_SUB)
		return idx;
	shift = idx / BENCH_HIST_SUB - 1;
	return ((uint64_t)(idx - shift * BENCH_HIST_SUB) << shift) +
	       ((uint64_t)1 << shift) / 2;
}

void bench_hist_add(struct bench_hist *h, int64_t v)
{
	double d;

	if (v < 0)
		v = 0;
	if (h->n == 0 || v < h->min)
		h->min = v;
	if (h->n == 0 || v > h->max)
		h->max = v;
	h->n++;
	d = (double)v - h->mean;
	h->mean += d / (double)h->n;
	h->m2 += d * ((double)v - h->mean);
	h->buckets[bucket_of((uint64_t)v)]++;
}

double bench_hist_stdev(const struct bench_hist *h)
{
	return h->n > 1 ? sqrt(h->m2 / (double)(h->n - 1)) : 0;
}

int64_t bench_hist_percentile(const struct bench_hist *h, double p)
{
	uint64_t rank, seen = 0;
	int64_t v;

	if (h->n == 0)
		return 0;
	rank = (uint64_t)ceil(p / 100.0 * (double)h->n);
	if (rank < 1)
		rank = 1;
	if (rank > h->n)
		rank = h->n;
	for (unsigned i = 0; i < BENCH_HIST_BUCKETS; i++) {
		seen += h->buckets[i];
		if (seen >= rank) {
			/* the last bucket also holds everything beyond it */
			if (i == BENCH_HIST_BUCKETS - 1)
				return h->max;
			v = (int64_t)bucket_value(i);
			return v < h->min ? h->min : v > h->max ? h->max : v;
		}
	}
	return h->max;
}
