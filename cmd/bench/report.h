/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * What a benchmark run measured, and its report in fio's two formats:
 * the normal text (per job, then per group) and JSON laid out as fio's
 * (jobs[].refresh.lat_ns.percentile["99.000000"] ...).  Shared by
 * lockwatch-bench and bench-baseline so that their numbers read alike.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "job.h"
#include "stats.h"

enum bench_op {
	BENCH_OP_CREATE,  /* a lock file written by an acquire */
	BENCH_OP_REFRESH, /* the new lock file of a refresh */
	BENCH_OP_DELETE,
	BENCH_OP_LIST,
	BENCH_OP_READ,    /* another holder's lock file, read at acquire */
	BENCH_OP_CHECK,   /* rest: does the old lock file still exist */
	BENCH_OP_KEY,     /* a restic repository's key derivation (scrypt) */
	BENCH_NOPS,
};

extern const char *const bench_op_name[BENCH_NOPS];

/* An acquire's time, phase by phase (lockwatch-bench, successful acquires
 * only): from the start to the create (the first check, and a place among
 * a repository's creates in flight), the create's wait for a descriptor or
 * a connection, the create itself, the recheck delay as set, and from its
 * end to the lock held (the second check; a late timer counts here). */
enum bench_phase {
	BENCH_PH_CHECK1,
	BENCH_PH_WAIT,
	BENCH_PH_CREATE,
	BENCH_PH_RECHECK,
	BENCH_PH_CHECK2,
	BENCH_PH_TOTAL,
	BENCH_NPHASES,
};

extern const char *const bench_phase_name[BENCH_NPHASES];

struct bench_opstat {
	struct bench_hist lat; /* of the successful ones */
	uint64_t errors;
	char first_error[160]; /* what the first failed one said */
	int64_t window;        /* ns during which they were counted */
};

struct bench_cpu {
	const char *scope;     /* "loop thread", "process" */
	int64_t usr, sys;      /* ns */
	int64_t window;        /* ns of wall time they were measured over */
	long ctx, majf, minf;
};

struct bench_mem {
	long rss_before_kib;   /* before the first lock */
	long rss_held_kib;     /* with every lock held, at the end of runtime */
	long rss_peak_kib;     /* VmHWM over the group's run */
	int64_t heap_before;   /* bytes malloc had handed out */
	int64_t heap_held;
	unsigned long locks;   /* held when RSS_HELD was read */
};

/* The key derivations of a job's restic repositories: what scrypt was
 * asked for, and the process's peak resident set once they had run. */
struct bench_key {
	uint64_t n, r, p;      /* of the last one */
	uint64_t memory;       /* the most scrypt allocated, bytes */
	long rss_peak_kib;     /* VmHWM after the last one (-1: unread) */
};

struct bench_result {
	const struct bench_job *job;
	const char *engine;    /* what it ran on */
	char repo[256];        /* display URL of its (first) repository */
	int error;             /* setup failed: negative errno */
	char errmsg[300];      /* of the setup, or of the first failed acquire */
	int64_t elapsed;       /* ns from setup to the end of runtime */
	struct bench_opstat ops[BENCH_NOPS];
	struct bench_key key;  /* with ops[BENCH_OP_KEY] */
	unsigned long asked, held, lost, failed;
	unsigned long missed;  /* still held well after their deadline */
	struct bench_hist cancel; /* deadline to the end of the context */
	struct bench_hist acquire[BENCH_NPHASES];
	struct bench_cpu cpu;
	unsigned long warnings;   /* the library's log lines, kept off stderr */
	char first_warning[300];
};

struct bench_group {
	unsigned id;
	struct bench_cpu cpu;  /* the process, over the common runtime */
	struct bench_mem mem;
	uint64_t refreshes;    /* by its jobs, during their runtime */
	size_t njobs;
};

/* Clears R for JOB (histograms empty). */
void bench_result_init(struct bench_result *r, const struct bench_job *job);

enum bench_format { BENCH_NORMAL, BENCH_JSON };

/* bench_report_header - "name: (g=0): repo=..., locks=..." per job and
 * "Starting N jobs", as fio says before it runs (normal format only). */
void bench_report_header(FILE *f, const char *program, const struct bench_config *cfg);

/*
 * bench_report - the results of every job and group in FORMAT.  PROGRAM
 * names the tool and its version in the JSON.
 */
void bench_report(FILE *f, enum bench_format format, const char *program,
		  const struct bench_config *cfg, const struct bench_result *res,
		  size_t nres, const struct bench_group *groups, size_t ngroups);
