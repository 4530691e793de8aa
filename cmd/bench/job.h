/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Benchmark jobs as fio describes them: INI job files with a [global]
 * section and one section per job, key=value lines, ';' and '#' comments,
 * and --key=value options on the command line (global until --name=JOB
 * starts a job there).  A [global] section applies to the jobs that follow
 * it; a job's own keys win.  numjobs clones a job; stonewall starts a new
 * group that runs after the previous one has finished.
 *
 * Every error is one line that names the file and line (or the option).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <lockwatch.h>

enum bench_stall {
	BENCH_STALL_NONE, /* refreshes work */
	BENCH_STALL_FAIL, /* after acquisition every refresh write fails */
	BENCH_STALL_HANG, /* ... or never completes */
};

struct bench_kv {
	char *key;
	char *value;
};

struct bench_job {
	char *name;
	char *repo;             /* "$jobnum" replaced by the clone's number */
	enum lw_engine engine;
	unsigned long locks;    /* held at once */
	unsigned long repos;    /* locks spread over REPO/0 .. REPO/N-1 if > 1 */
	bool exclusive;
	int64_t refresh_interval;
	int64_t stale_timeout;
	int64_t recheck_delay;
	int64_t runtime;
	int64_t ramp_time;
	unsigned long numjobs;
	unsigned long acquire_depth; /* acquires in flight at once */
	unsigned long acquire_rate;  /* acquires started per second; 0: no limit */
	unsigned long list_depth;    /* listings in flight during runtime */
	enum bench_stall stall;
	bool stonewall;
	/* set by bench_parse_finish */
	unsigned group;
	unsigned long jobnum;   /* clone number, 0 .. numjobs - 1 */
	struct bench_kv *opts;  /* the keys given for it, global ones first */
	size_t nopts;
};

struct bench_config {
	struct bench_job *jobs; /* numjobs clones expanded, in group order */
	size_t njobs;
	unsigned ngroups;
	struct bench_kv *global; /* command-line global options */
	size_t nglobal;
};

struct bench_parser;

struct bench_parser *bench_parser_new(void);
void bench_parser_free(struct bench_parser *p);

/*
 * bench_parse_text - parse the job file NAME whose content is TEXT.
 *
 * Returns: 0, or -EINVAL with a one-line message in ERR; -ENOMEM.
 */
int bench_parse_text(struct bench_parser *p, const char *name, const char *text,
		     char *err, size_t errsize);
/* bench_parse_file - read PATH and parse it ("-" is stdin). */
int bench_parse_file(struct bench_parser *p, const char *path, char *err,
		     size_t errsize);

/*
 * bench_parse_option - a command-line KEY=VALUE (without the dashes):
 * global, or for the job started by the last name=JOB.
 */
int bench_parse_option(struct bench_parser *p, const char *arg, char *err,
		       size_t errsize);

/*
 * bench_parse_finish - resolve every job (defaults, then global keys, then
 * its own), check it as a whole, clone it numjobs times and number the
 * groups.
 *
 * Returns: 0, or -EINVAL with a message in ERR naming the job.
 */
int bench_parse_finish(struct bench_parser *p, struct bench_config *cfg,
		       char *err, size_t errsize);
void bench_config_fini(struct bench_config *cfg);

/*
 * bench_parse_args - the jobs of a command line, as fio reads them: every
 * --key=value and --name=JOB in order, then every other argument as a job
 * file, so that command-line globals apply to every file.  OWN sees each
 * "--" argument first and returns 1 for one of the program's own
 * (--output-format, say), 0 for a job key, or -EINVAL with its message in
 * ERR.
 *
 * Returns: 0, or -EINVAL with a one-line message in ERR; -ENOMEM.
 */
int bench_parse_args(int argc, char **argv,
		     int (*own)(const char *arg, void *userdata, char *err, size_t es),
		     void *userdata, struct bench_config *cfg, char *err, size_t errsize);

/*
 * bench_parse_duration - a Go-style duration (lw_duration_parse) or, as fio
 * takes it, a bare number of seconds.
 *
 * Returns: 0, or -EINVAL.
 */
int bench_parse_duration(const char *s, int64_t *out);

const char *bench_stall_name(enum bench_stall s);
