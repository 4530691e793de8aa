/* SPDX-License-Identifier: BSD-2-Clause */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "job.h"

#define MAX_LOCKS 100000000ul
#define MAX_NUMJOBS 256ul
#define NSEC_PER_SEC 1000000000LL

/* ------------------------------------------------------------ values */

int bench_parse_duration(const char *s, int64_t *out)
{
	unsigned long long sec;
	char *end;

	/* fio's plain seconds; anything else is a Go-style duration */
	if (*s && strspn(s, "0123456789") == strlen(s)) {
		errno = 0;
		sec = strtoull(s, &end, 10);
		if (errno || sec > INT64_MAX / NSEC_PER_SEC)
			return -EINVAL;
		*out = (int64_t)sec * NSEC_PER_SEC;
		return 0;
	}
	return lw_duration_parse(s, out);
}

const char *bench_stall_name(enum bench_stall s)
{
	static const char *const names[] = {
		[BENCH_STALL_NONE] = "none", [BENCH_STALL_FAIL] = "fail",
		[BENCH_STALL_HANG] = "hang",
	};

	return names[s];
}

static int parse_count(const char *s, unsigned long max, bool zero_ok,
		       unsigned long *out)
{
	unsigned long long v;
	char *end;

	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v < (zero_ok ? 0 : 1) || v > max)
		return -EINVAL;
	*out = (unsigned long)v;
	return 0;
}

static int parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = { "1", "true", "yes", "on" };
	static const char *const no[] = { "0", "false", "no", "off" };

	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0 || strcasecmp(s, no[i]) == 0) {
			*out = strcasecmp(s, yes[i]) == 0;
			return 0;
		}
	}
	return -EINVAL;
}

/* -------------------------------------------------------------- keys */

enum kind { K_STR, K_ENGINE, K_COUNT, K_BOOL, K_DURATION, K_STALL };

struct key {
	const char *name;
	enum kind kind;
	size_t off;
	unsigned long max;  /* K_COUNT */
	bool zero_ok;       /* K_COUNT, K_DURATION */
	const char *expect; /* for the error message */
};

#define F(field) offsetof(struct bench_job, field)
static const struct key keys[] = {
	{ "repo", K_STR, F(repo), 0, false, "a repository URL" },
	{ "engine", K_ENGINE, F(engine), 0, false, "auto, uring or epoll" },
	{ "locks", K_COUNT, F(locks), MAX_LOCKS, false, "a count >= 1" },
	{ "repos", K_COUNT, F(repos), MAX_LOCKS, false, "a count >= 1" },
	{ "exclusive", K_BOOL, F(exclusive), 0, false, "0 or 1" },
	{ "refresh_interval", K_DURATION, F(refresh_interval), 0, false, NULL },
	{ "stale_timeout", K_DURATION, F(stale_timeout), 0, false, NULL },
	{ "recheck_delay", K_DURATION, F(recheck_delay), 0, true, NULL },
	{ "runtime", K_DURATION, F(runtime), 0, false, NULL },
	{ "ramp_time", K_DURATION, F(ramp_time), 0, true, NULL },
	{ "numjobs", K_COUNT, F(numjobs), MAX_NUMJOBS, false, "a count from 1 to 256" },
	{ "acquire_depth", K_COUNT, F(acquire_depth), MAX_LOCKS, false, "a count >= 1" },
	{ "acquire_rate", K_COUNT, F(acquire_rate), MAX_LOCKS, true, "a count, or 0" },
	{ "list_depth", K_COUNT, F(list_depth), 1024, true, "a count from 0 to 1024" },
	{ "stall", K_STALL, F(stall), 0, false, "none, fail or hang" },
	{ "stonewall", K_BOOL, F(stonewall), 0, false, "0 or 1" },
};
#undef F

static const struct key *find_key(const char *name)
{
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (strcmp(keys[i].name, name) == 0)
			return &keys[i];
	return NULL;
}

static void job_defaults(struct bench_job *j)
{
	*j = (struct bench_job){
		.engine = LW_ENGINE_AUTO,
		.locks = 1,
		.repos = 1,
		.refresh_interval = 5 * 60 * NSEC_PER_SEC, /* the library's */
		.stale_timeout = 30 * 60 * NSEC_PER_SEC,
		.recheck_delay = 200 * 1000000LL,
		.runtime = 10 * NSEC_PER_SEC,
		.numjobs = 1,
		.acquire_depth = 1024,
	};
}

/* Sets KEY of J from VALUE; a message in ERR (without location) on error. */
static int job_set(struct bench_job *j, const char *name, const char *value,
		   char *err, size_t es)
{
	const struct key *k = find_key(name);
	void *field;
	int r = 0;

	if (!k) {
		snprintf(err, es, "unknown key '%s'", name);
		return -EINVAL;
	}
	field = (char *)j + k->off;
	switch (k->kind) {
	case K_STR:
		if (!*value) {
			r = -EINVAL;
			break;
		}
		free(*(char **)field);
		*(char **)field = strdup(value);
		if (!*(char **)field)
			return -ENOMEM;
		break;
	case K_ENGINE:
		r = lw_engine_parse(value, field);
		break;
	case K_COUNT:
		r = parse_count(value, k->max, k->zero_ok, field);
		break;
	case K_BOOL:
		r = parse_bool(value, field);
		break;
	case K_DURATION:
		r = bench_parse_duration(value, field);
		if (r == 0 && !k->zero_ok && *(int64_t *)field <= 0)
			r = -EINVAL;
		if (r < 0) {
			snprintf(err, es, "%s: bad duration '%s' (expected e.g. 250ms, 30s, "
				 "5m, 1h30m%s)", name, value, k->zero_ok ? ", or 0" : "");
			return r;
		}
		break;
	case K_STALL:
		r = -EINVAL;
		for (int s = BENCH_STALL_NONE; s <= BENCH_STALL_HANG; s++) {
			if (strcmp(value, bench_stall_name(s)) == 0) {
				*(enum bench_stall *)field = s;
				r = 0;
			}
		}
		break;
	}
	if (r < 0)
		snprintf(err, es, "%s: bad value '%s' (expected %s)", name, value, k->expect);
	return r;
}

static void job_fini(struct bench_job *j)
{
	free(j->name);
	free(j->repo);
	for (size_t i = 0; i < j->nopts; i++) {
		free(j->opts[i].key);
		free(j->opts[i].value);
	}
	free(j->opts);
}

/* ------------------------------------------------------------ parser */

struct kvlist {
	struct bench_kv *v;
	size_t n;
};

struct section {
	char *name;
	struct kvlist global; /* the global keys in force where it began */
	struct kvlist own;
	char *where;          /* "FILE:LINE" of its header, for messages */
};

struct bench_parser {
	struct kvlist cmdline;  /* command-line globals */
	struct kvlist global;   /* in force now (cmdline, then [global]s) */
	struct section *secs;
	size_t nsecs;
	bool cmdline_job;       /* --name= started a job */
};

static int kv_add(struct kvlist *l, const char *key, const char *value)
{
	struct bench_kv *v = realloc(l->v, (l->n + 1) * sizeof(*v));

	if (!v)
		return -ENOMEM;
	l->v = v;
	v[l->n].key = strdup(key);
	v[l->n].value = strdup(value);
	if (!v[l->n].key || !v[l->n].value) {
		free(v[l->n].key);
		free(v[l->n].value);
		return -ENOMEM;
	}
	l->n++;
	return 0;
}

static int kv_copy(struct kvlist *to, const struct kvlist *from)
{
	for (size_t i = 0; i < from->n; i++)
		if (kv_add(to, from->v[i].key, from->v[i].value) < 0)
			return -ENOMEM;
	return 0;
}

static void kv_fini(struct kvlist *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].key);
		free(l->v[i].value);
	}
	free(l->v);
	*l = (struct kvlist){ 0 };
}

struct bench_parser *bench_parser_new(void)
{
	return calloc(1, sizeof(struct bench_parser));
}

void bench_parser_free(struct bench_parser *p)
{
	if (!p)
		return;
	kv_fini(&p->cmdline);
	kv_fini(&p->global);
	for (size_t i = 0; i < p->nsecs; i++) {
		free(p->secs[i].name);
		free(p->secs[i].where);
		kv_fini(&p->secs[i].global);
		kv_fini(&p->secs[i].own);
	}
	free(p->secs);
	free(p);
}

static int add_section(struct bench_parser *p, const char *name, const char *where)
{
	struct section *s = realloc(p->secs, (p->nsecs + 1) * sizeof(*s));

	if (!s)
		return -ENOMEM;
	p->secs = s;
	s = &p->secs[p->nsecs];
	*s = (struct section){ .name = strdup(name), .where = strdup(where) };
	if (!s->name || !s->where || kv_copy(&s->global, &p->global) < 0) {
		free(s->name);
		free(s->where);
		kv_fini(&s->global);
		return -ENOMEM;
	}
	p->nsecs++;
	return 0;
}

/* Checks KEY=VALUE on its own (so that the error names its line) and
 * stores it in L. */
static int set_checked(struct kvlist *l, const char *key, const char *value,
		       const char *where, char *err, size_t es)
{
	struct bench_job scratch;
	char msg[300];
	int r;

	job_defaults(&scratch);
	r = job_set(&scratch, key, value, msg, sizeof(msg));
	job_fini(&scratch);
	if (r == -EINVAL)
		snprintf(err, es, "%s: %s", where, msg);
	if (r < 0)
		return r;
	return kv_add(l, key, value);
}

static char *trim(char *s)
{
	char *e = s + strlen(s);

	while (isspace((unsigned char)*s))
		s++;
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

static int parse_line(struct bench_parser *p, char *line, struct kvlist **cur,
		      const char *where, char *err, size_t es)
{
	char *eq, *key;
	const char *value;

	line = trim(line);
	if (!*line || *line == ';' || *line == '#')
		return 0;
	if (*line == '[') {
		char *close = strchr(line, ']');

		if (!close || close[1] || close == line + 1) {
			snprintf(err, es, "%s: bad section header '%s' (expected [name])",
				 where, line);
			return -EINVAL;
		}
		*close = '\0';
		line = trim(line + 1);
		if (strcmp(line, "global") == 0) {
			*cur = &p->global;
			return 0;
		}
		if (add_section(p, line, where) < 0)
			return -ENOMEM;
		*cur = &p->secs[p->nsecs - 1].own;
		return 0;
	}
	eq = strchr(line, '=');
	if (eq)
		*eq = '\0';
	key = trim(line);
	/* a bare key is a boolean set to 1, as in fio */
	value = eq ? trim(eq + 1) : "1";
	if (!*cur) {
		snprintf(err, es, "%s: '%s' outside of a section (start with [global] "
			 "or [jobname])", where, key);
		return -EINVAL;
	}
	if (!*key || !find_key(key)) {
		snprintf(err, es, "%s: unknown key '%s'", where, key);
		return -EINVAL;
	}
	return set_checked(*cur, key, value, where, err, es);
}

int bench_parse_text(struct bench_parser *p, const char *name, const char *text,
		     char *err, size_t errsize)
{
	struct kvlist *cur = NULL;
	size_t nsecs = p->nsecs;
	unsigned lineno = 0;
	char where[300];
	int r = 0;

	while (*text && r == 0) {
		size_t n = strcspn(text, "\n");
		char *line = strndup(text, n);

		if (!line)
			return -ENOMEM;
		snprintf(where, sizeof(where), "%s:%u", name, ++lineno);
		r = parse_line(p, line, &cur, where, err, errsize);
		free(line);
		text += n + (text[n] == '\n');
	}
	if (r == 0 && p->nsecs == nsecs) {
		snprintf(err, errsize, "%s: defines no job (only [global] or nothing: "
			 "add a [jobname] section)", name);
		r = -EINVAL;
	}
	return r;
}

/* Job files are small: at most this much is read. */
#define MAX_JOBFILE (1u << 20)

int bench_parse_file(struct bench_parser *p, const char *path, char *err,
		     size_t errsize)
{
	FILE *f = strcmp(path, "-") ? fopen(path, "re") : stdin;
	char *text;
	size_t len;
	int r = 0;

	if (!f) {
		r = -errno;
		snprintf(err, errsize, "%s: %s", path, strerror(-r));
		return r;
	}
	text = malloc(MAX_JOBFILE + 1);
	if (!text) {
		r = -ENOMEM;
		goto out;
	}
	len = fread(text, 1, MAX_JOBFILE + 1, f);
	if (ferror(f)) {
		snprintf(err, errsize, "%s: %s", path, strerror(EIO));
		r = -EIO;
	} else if (len > MAX_JOBFILE) {
		snprintf(err, errsize, "%s: larger than 1 MiB: not a job file", path);
		r = -EINVAL;
	} else if (memchr(text, '\0', len)) {
		snprintf(err, errsize, "%s: not a text file", path);
		r = -EINVAL;
	} else {
		text[len] = '\0';
		r = bench_parse_text(p, path, text, err, errsize);
	}
out:
	free(text);
	if (f != stdin)
		fclose(f);
	return r;
}

int bench_parse_option(struct bench_parser *p, const char *arg, char *err,
		       size_t errsize)
{
	const char *eq = strchr(arg, '=');
	char where[300], key[64];
	size_t klen = eq ? (size_t)(eq - arg) : strlen(arg);
	const char *value = eq ? eq + 1 : "1";

	snprintf(where, sizeof(where), "--%s", arg);
	if (klen == 0 || klen >= sizeof(key)) {
		snprintf(err, errsize, "%s: expected --key=value", where);
		return -EINVAL;
	}
	memcpy(key, arg, klen);
	key[klen] = '\0';
	if (strcmp(key, "name") == 0) {
		if (!*value) {
			snprintf(err, errsize, "%s: a job needs a name", where);
			return -EINVAL;
		}
		p->cmdline_job = true;
		return add_section(p, value, where);
	}
	if (!find_key(key)) {
		snprintf(err, errsize, "%s: unknown key '%s'", where, key);
		return -EINVAL;
	}
	if (p->cmdline_job)
		return set_checked(&p->secs[p->nsecs - 1].own, key, value, where, err,
				   errsize);
	if (set_checked(&p->global, key, value, where, err, errsize) < 0)
		return -EINVAL;
	return kv_add(&p->cmdline, key, value);
}

/* ------------------------------------------------------------ finish */

static char *replace_jobnum(const char *s, unsigned long jobnum)
{
	const char *at = strstr(s, "$jobnum");
	char *out;

	if (!at)
		return strdup(s);
	if (asprintf(&out, "%.*s%lu%s", (int)(at - s), s, jobnum, at + 7) < 0)
		return NULL;
	return out;
}

/* Whole-job checks, after every key is known. */
static int job_check(const struct bench_job *j, char *msg, size_t ms)
{
	char a[32], b[32];

	if (!j->repo) {
		snprintf(msg, ms, "no repo given (repo=/path or repo=dav:http://...)");
		return -EINVAL;
	}
	if (j->stale_timeout - j->refresh_interval / 2 * 3 <= 0) {
		snprintf(msg, ms, "stale_timeout %s must be longer than 1.5 x "
			 "refresh_interval %s",
			 lw_duration_format(j->stale_timeout, a, sizeof(a)),
			 lw_duration_format(j->refresh_interval, b, sizeof(b)));
		return -EINVAL;
	}
	if (j->repos > j->locks) {
		snprintf(msg, ms, "repos=%lu is more than locks=%lu", j->repos, j->locks);
		return -EINVAL;
	}
	if (j->exclusive && j->repos != j->locks) {
		snprintf(msg, ms, "exclusive locks conflict with each other: give each "
			 "its own repository (repos=%lu)", j->locks);
		return -EINVAL;
	}
	return 0;
}

static int resolve(const struct section *s, struct bench_job *j, char *err,
		   size_t es)
{
	const struct kvlist *lists[] = { &s->global, &s->own };
	char msg[300];
	int r;

	job_defaults(j);
	j->name = strdup(s->name);
	if (!j->name)
		return -ENOMEM;
	for (size_t l = 0; l < 2; l++) {
		for (size_t i = 0; i < lists[l]->n; i++) {
			const struct bench_kv *kv = &lists[l]->v[i];
			struct kvlist opts = { j->opts, j->nopts };

			r = job_set(j, kv->key, kv->value, msg, sizeof(msg));
			if (r == 0)
				r = kv_add(&opts, kv->key, kv->value);
			j->opts = opts.v;
			j->nopts = opts.n;
			if (r < 0)
				return r; /* checked when it was read */
		}
	}
	r = job_check(j, msg, sizeof(msg));
	if (r < 0)
		snprintf(err, es, "%s: job '%s': %s", s->where, s->name, msg);
	return r;
}

static int clone_job(struct bench_job *to, const struct bench_job *from,
		     unsigned long jobnum)
{
	struct kvlist opts = { 0 };

	*to = *from;
	to->jobnum = jobnum;
	to->name = strdup(from->name);
	to->repo = replace_jobnum(from->repo, jobnum);
	to->opts = NULL;
	to->nopts = 0;
	for (size_t i = 0; i < from->nopts; i++)
		if (kv_add(&opts, from->opts[i].key, from->opts[i].value) < 0)
			break;
	to->opts = opts.v;
	to->nopts = opts.n;
	return to->name && to->repo && opts.n == from->nopts ? 0 : -ENOMEM;
}

/* A stall job's fault hook matches paths under its repository: another
 * job of its group in there would stall too. */
static int check_stall_overlap(const struct bench_config *cfg, char *err, size_t es)
{
	for (size_t i = 0; i < cfg->njobs; i++) {
		const struct bench_job *s = &cfg->jobs[i];

		if (s->stall == BENCH_STALL_NONE)
			continue;
		for (size_t k = 0; k < cfg->njobs; k++) {
			const struct bench_job *o = &cfg->jobs[k];

			if (o->group != s->group || o->stall == s->stall ||
			    strncmp(o->repo, s->repo, strlen(s->repo)) != 0)
				continue;
			snprintf(err, es, "job '%s' (stall=%s) and job '%s' (stall=%s) share "
				 "repository %s: give the stall job one of its own", s->name,
				 bench_stall_name(s->stall), o->name,
				 bench_stall_name(o->stall), s->repo);
			return -EINVAL;
		}
	}
	return 0;
}

int bench_parse_finish(struct bench_parser *p, struct bench_config *cfg,
		       char *err, size_t errsize)
{
	struct kvlist global = { 0 };
	size_t total = 0;
	int r = 0;

	*cfg = (struct bench_config){ 0 };
	if (p->nsecs == 0) {
		snprintf(err, errsize, "no jobs: give a job file or --name=JOB");
		return -EINVAL;
	}
	for (size_t i = 0; i < p->nsecs && r == 0; i++) {
		struct bench_job j;
		struct bench_job *jobs;

		r = resolve(&p->secs[i], &j, err, errsize);
		if (r == 0 && total + j.numjobs > MAX_NUMJOBS) {
			snprintf(err, errsize, "%s: more than %lu jobs in all",
				 p->secs[i].where, MAX_NUMJOBS);
			r = -EINVAL;
		}
		jobs = r == 0 ? realloc(cfg->jobs, (total + j.numjobs) * sizeof(*jobs)) : NULL;
		if (r == 0 && !jobs)
			r = -ENOMEM;
		if (r == 0) {
			cfg->jobs = jobs;
			if (j.stonewall && total > 0)
				cfg->ngroups++;
			j.group = cfg->ngroups;
			for (unsigned long c = 0; c < j.numjobs && r == 0; c++, total++) {
				cfg->njobs = total + 1;
				r = clone_job(&cfg->jobs[total], &j, c);
			}
		}
		job_fini(&j);
	}
	cfg->ngroups++;
	if (r == 0)
		r = check_stall_overlap(cfg, err, errsize);
	if (r == 0)
		r = kv_copy(&global, &p->cmdline);
	cfg->global = global.v;
	cfg->nglobal = global.n;
	if (r < 0)
		bench_config_fini(cfg);
	return r;
}

void bench_config_fini(struct bench_config *cfg)
{
	struct kvlist global = { cfg->global, cfg->nglobal };

	for (size_t i = 0; i < cfg->njobs; i++)
		job_fini(&cfg->jobs[i]);
	free(cfg->jobs);
	kv_fini(&global);
	*cfg = (struct bench_config){ 0 };
}

int bench_parse_args(int argc, char **argv,
		     int (*own)(const char *arg, void *userdata, char *err, size_t es),
		     void *userdata, struct bench_config *cfg, char *err, size_t errsize)
{
	struct bench_parser *p = bench_parser_new();
	int r = p ? 0 : -ENOMEM;

	*cfg = (struct bench_config){ 0 };
	for (int i = 1; i < argc && r == 0; i++) {
		if (strncmp(argv[i], "--", 2) != 0)
			continue;
		r = own(argv[i], userdata, err, errsize);
		if (r == 0)
			r = bench_parse_option(p, argv[i] + 2, err, errsize);
		else if (r > 0)
			r = 0;
	}
	for (int i = 1; i < argc && r == 0; i++)
		if (strncmp(argv[i], "--", 2) != 0)
			r = bench_parse_file(p, argv[i], err, errsize);
	if (r == 0)
		r = bench_parse_finish(p, cfg, err, errsize);
	if (r == -ENOMEM)
		snprintf(err, errsize, "out of memory");
	bench_parser_free(p);
	return r;
}
