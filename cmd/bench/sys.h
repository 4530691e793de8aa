/* SPDX-License-Identifier: BSD-2-Clause */
/* What the process costs: CPU time from getrusage, resident memory from
 * /proc/self, heap bytes from malloc. */
#pragma once

#include <stdint.h>
#include <sys/resource.h>

#include "report.h"

/* Nanoseconds on CLOCK_BOOTTIME, the library's clock. */
int64_t bench_now(void);

/* C = the usage between A and B (getrusage of WHO) over WINDOW ns. */
void bench_cpu_diff(struct bench_cpu *c, const char *scope, const struct rusage *a,
		    const struct rusage *b, int64_t window);

/* Resident set size now, and its peak (VmHWM), in KiB; -1 if unknown.
 * Call both once early: they keep a descriptor open. */
long bench_rss_kib(void);
long bench_rss_peak_kib(void);
/* Starts a new peak at the current RSS (/proc/self/clear_refs, "5"). */
void bench_rss_peak_reset(void);
/* Bytes malloc has handed out (all arenas, mmapped chunks included),
 * after returning free memory to the system. */
int64_t bench_heap_bytes(void);
