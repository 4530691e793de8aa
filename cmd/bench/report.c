/* SPDX-License-Identifier: BSD-2-Clause */
#include "config.h"

#include <inttypes.h>
#include <string.h>
#include <time.h>

#include "report.h"

const char *const bench_op_name[BENCH_NOPS] = {
	[BENCH_OP_CREATE] = "create", [BENCH_OP_REFRESH] = "refresh",
	[BENCH_OP_DELETE] = "delete", [BENCH_OP_LIST] = "list",
	[BENCH_OP_READ] = "read", [BENCH_OP_CHECK] = "check",
	[BENCH_OP_KEY] = "key",
};

const char *const bench_phase_name[BENCH_NPHASES] = {
	[BENCH_PH_CHECK1] = "check1", [BENCH_PH_WAIT] = "wait",
	[BENCH_PH_CREATE] = "create", [BENCH_PH_RECHECK] = "recheck",
	[BENCH_PH_CHECK2] = "check2", [BENCH_PH_TOTAL] = "total",
};

void bench_result_init(struct bench_result *r, const struct bench_job *job)
{
	memset(r, 0, sizeof(*r));
	r->job = job;
	r->asked = job->locks;
	for (int i = 0; i < BENCH_NOPS; i++)
		bench_hist_init(&r->ops[i].lat);
	bench_hist_init(&r->cancel);
	for (int i = 0; i < BENCH_NPHASES; i++)
		bench_hist_init(&r->acquire[i]);
}

static double per_sec(uint64_t n, int64_t window)
{
	return window > 0 ? (double)n * 1e9 / (double)window : 0;
}

static double pct_of(int64_t part, int64_t window)
{
	return window > 0 ? 100.0 * (double)part / (double)window : 0;
}

static double cpu_per(const struct bench_cpu *c, uint64_t n)
{
	return n ? (double)(c->usr + c->sys) / (double)n : 0;
}

/* -1 when the resident set could not be read */
static double bytes_per_lock(long after_kib, long before_kib, unsigned long locks)
{
	if (after_kib < 0 || before_kib < 0)
		return -1;
	return locks ? (double)(after_kib - before_kib) * 1024.0 / (double)locks : 0;
}

static double heap_per_lock(const struct bench_mem *m)
{
	return m->locks ? (double)(m->heap_held - m->heap_before) / (double)m->locks : 0;
}

static const struct bench_group *group_of(const struct bench_group *groups,
					  size_t ngroups, unsigned id)
{
	for (size_t i = 0; i < ngroups; i++)
		if (groups[i].id == id)
			return &groups[i];
	return NULL;
}

/* ------------------------------------------------------------- normal */

/* A unit that keeps V (ns) under five digits, as fio picks one. */
static const char *unit_for(int64_t v, double *div)
{
	if (v < 10000) {
		*div = 1;
		return "nsec";
	}
	if (v < 10000000) {
		*div = 1e3;
		return "usec";
	}
	if (v < INT64_C(10000000000)) {
		*div = 1e6;
		return "msec";
	}
	*div = 1e9;
	return "sec";
}

/* LABEL is "lat" or "cancel lat": fio's min/max/avg line and its
 * percentile block, four to a line. */
static void normal_lat(FILE *f, const char *indent, const char *label,
		       const struct bench_hist *h)
{
	double div;
	const char *unit = unit_for(h->max, &div);

	fprintf(f, "%s%s (%s): min=%.0f, max=%.0f, avg=%.2f, stdev=%.2f, N=%" PRIu64 "\n",
		indent, label, unit, (double)h->min / div, (double)h->max / div,
		h->mean / div, bench_hist_stdev(h) / div, h->n);
	unit = unit_for(bench_hist_percentile(h, bench_pct[BENCH_NPCT - 1]), &div);
	fprintf(f, "%s%s percentiles (%s):\n", indent, label, unit);
	for (int i = 0; i < BENCH_NPCT; i++) {
		if (i % 4 == 0)
			fprintf(f, "%s |", indent);
		fprintf(f, " %5.2fth=[%5.0f]%s", bench_pct[i],
			(double)bench_hist_percentile(h, bench_pct[i]) / div,
			i == BENCH_NPCT - 1 ? "\n" : i % 4 == 3 ? ",\n" : ",");
	}
}

static void normal_cpu(FILE *f, const char *indent, const struct bench_cpu *c,
		       uint64_t refreshes)
{
	fprintf(f, "%scpu (%s): usr=%.2f%%, sys=%.2f%%, ctx=%ld, majf=%ld, minf=%ld",
		indent, c->scope, pct_of(c->usr, c->window), pct_of(c->sys, c->window),
		c->ctx, c->majf, c->minf);
	if (refreshes)
		fprintf(f, ", per refresh=%.2fusec", cpu_per(c, refreshes) / 1e3);
	fputc('\n', f);
}

/* The acquire's phases, one line each: where an acquire's time went. */
static void normal_phases(FILE *f, const struct bench_result *r)
{
	static const char *const what[BENCH_NPHASES] = {
		[BENCH_PH_CHECK1] = "first check, and a place to create",
		[BENCH_PH_WAIT] = "the create's wait: descriptor or connection",
		[BENCH_PH_CREATE] = "the create",
		[BENCH_PH_RECHECK] = "recheck delay, as set",
		[BENCH_PH_CHECK2] = "second check, from the delay's end",
		[BENCH_PH_TOTAL] = "start to held",
	};
	const struct bench_hist *t = &r->acquire[BENCH_PH_TOTAL];

	if (!t->n)
		return;
	fprintf(f, "  acquire: N=%" PRIu64 ", phases (msec): %8s %8s %8s %8s\n", t->n,
		"avg", "p50", "p99", "max");
	for (int i = 0; i < BENCH_NPHASES; i++) {
		const struct bench_hist *h = &r->acquire[i];

		fprintf(f, "    %-7s %-44s %8.2f %8.2f %8.2f %8.2f\n", bench_phase_name[i],
			what[i], h->mean / 1e6,
			(double)bench_hist_percentile(h, 50) / 1e6,
			(double)bench_hist_percentile(h, 99) / 1e6, (double)h->max / 1e6);
	}
}

static void normal_job(FILE *f, const struct bench_result *r)
{
	const struct bench_job *j = r->job;

	fprintf(f, "%s: (groupid=%u, jobs=1): err=%3d: engine=%s, repo=%s\n", j->name,
		j->group, -r->error, r->engine ? r->engine : "-", r->repo[0] ? r->repo : j->repo);
	if (r->error) {
		fprintf(f, "  error: %s\n", r->errmsg);
		return;
	}
	for (int i = 0; i < BENCH_NOPS; i++) {
		const struct bench_opstat *o = &r->ops[i];

		if (o->lat.n == 0 && o->errors == 0)
			continue;
		fprintf(f, "  %-7s: IOPS=%.0f, errors=%" PRIu64 ", runtime=%" PRId64 "msec\n",
			bench_op_name[i], per_sec(o->lat.n, o->window), o->errors,
			o->window / 1000000);
		if (o->errors)
			fprintf(f, "    first error: %s\n", o->first_error);
		if (o->lat.n)
			normal_lat(f, "    ", "lat", &o->lat);
		if (i == BENCH_OP_KEY)
			fprintf(f, "    scrypt : N=%" PRIu64 ", r=%" PRIu64 ", p=%" PRIu64
				", mem=%.1fMiB (128*r*(N+p)), process peak rss after=%ldKiB\n",
				r->key.n, r->key.r, r->key.p, (double)r->key.memory / 1048576,
				r->key.rss_peak_kib);
	}
	fprintf(f, "  locks  : asked=%lu, held=%lu, lost=%lu, failed=%lu, missed=%lu\n",
		r->asked, r->held, r->lost, r->failed, r->missed);
	if (r->failed && r->errmsg[0])
		fprintf(f, "    first failure: %s\n", r->errmsg);
	normal_phases(f, r);
	if (r->cancel.n)
		normal_lat(f, "  ", "cancel lat", &r->cancel);
	if (r->warnings)
		fprintf(f, "  log    : warnings=%lu, first: %s\n", r->warnings, r->first_warning);
	normal_cpu(f, "  ", &r->cpu, r->ops[BENCH_OP_REFRESH].lat.n);
}

static void normal_group(FILE *f, const struct bench_group *g,
			 const struct bench_result *res, size_t nres)
{
	double refresh_iops = 0;
	const struct bench_mem *m = &g->mem;

	for (size_t i = 0; i < nres; i++)
		if (res[i].job->group == g->id)
			refresh_iops += per_sec(res[i].ops[BENCH_OP_REFRESH].lat.n,
						res[i].ops[BENCH_OP_REFRESH].window);
	fprintf(f, "\nRun status group %u (all jobs):\n", g->id);
	fprintf(f, "  refresh: IOPS=%.0f (%zu jobs ran), refreshes=%" PRIu64 "\n", refresh_iops,
		g->njobs, g->refreshes);
	normal_cpu(f, "  ", &g->cpu, g->refreshes);
	fprintf(f, "  mem (process): rss before=%ldKiB, held=%ldKiB, peak=%ldKiB; "
		"%lu locks held: %.0f bytes/lock (rss), %.0f bytes/lock (heap)\n",
		m->rss_before_kib, m->rss_held_kib, m->rss_peak_kib, m->locks,
		bytes_per_lock(m->rss_held_kib, m->rss_before_kib, m->locks),
		heap_per_lock(m));
}

/* -------------------------------------------------------------- JSON */

struct jw {
	FILE *f;
	int depth;
	bool first;
};

static void jw_string(struct jw *w, const char *s)
{
	fputc('"', w->f);
	for (const char *p = s; *p; p++) {
		unsigned char c = (unsigned char)*p;

		if (c == '"' || c == '\\')
			fprintf(w->f, "\\%c", c);
		else if (c < 0x20)
			fprintf(w->f, "\\u%04x", c);
		else
			fputc(c, w->f);
	}
	fputc('"', w->f);
}

/* Starts a member (KEY) or an array element (KEY NULL). */
static void jw_key(struct jw *w, const char *key)
{
	fprintf(w->f, "%s\n%*s", w->first ? "" : ",", 2 * w->depth, "");
	w->first = false;
	if (!key)
		return;
	jw_string(w, key);
	fputs(" : ", w->f);
}

static void jw_open(struct jw *w, const char *key, char brace)
{
	jw_key(w, key);
	fputc(brace, w->f);
	w->depth++;
	w->first = true;
}

static void jw_close(struct jw *w, char brace)
{
	w->depth--;
	if (!w->first)
		fprintf(w->f, "\n%*s", 2 * w->depth, "");
	fputc(brace, w->f);
	w->first = false;
}

static void jw_str(struct jw *w, const char *key, const char *s)
{
	jw_key(w, key);
	jw_string(w, s ? s : "");
}

static void jw_int(struct jw *w, const char *key, int64_t v)
{
	jw_key(w, key);
	fprintf(w->f, "%" PRId64, v);
}

static void jw_num(struct jw *w, const char *key, double v)
{
	jw_key(w, key);
	fprintf(w->f, "%.6f", v);
}

static void json_lat(struct jw *w, const char *key, const struct bench_hist *h)
{
	char pkey[32];

	jw_open(w, key, '{');
	jw_int(w, "min", h->min);
	jw_int(w, "max", h->max);
	jw_num(w, "mean", h->mean);
	jw_num(w, "stddev", bench_hist_stdev(h));
	jw_int(w, "N", (int64_t)h->n);
	if (h->n) {
		jw_open(w, "percentile", '{');
		for (int i = 0; i < BENCH_NPCT; i++) {
			snprintf(pkey, sizeof(pkey), "%f", bench_pct[i]);
			jw_int(w, pkey, bench_hist_percentile(h, bench_pct[i]));
		}
		jw_close(w, '}');
	}
	jw_close(w, '}');
}

static void json_cpu(struct jw *w, const struct bench_cpu *c, uint64_t refreshes)
{
	jw_str(w, "cpu_scope", c->scope);
	jw_num(w, "usr_cpu", pct_of(c->usr, c->window));
	jw_num(w, "sys_cpu", pct_of(c->sys, c->window));
	jw_int(w, "usr_ns", c->usr);
	jw_int(w, "sys_ns", c->sys);
	jw_int(w, "ctx", c->ctx);
	jw_int(w, "majf", c->majf);
	jw_int(w, "minf", c->minf);
	jw_num(w, "cpu_per_refresh_ns", cpu_per(c, refreshes));
}

static void json_mem(struct jw *w, const char *key, const struct bench_mem *m)
{
	jw_open(w, key, '{');
	jw_str(w, "scope", "process, for the job's group");
	jw_int(w, "rss_before_kib", m->rss_before_kib);
	jw_int(w, "rss_held_kib", m->rss_held_kib);
	jw_int(w, "rss_peak_kib", m->rss_peak_kib);
	jw_int(w, "locks_held", (int64_t)m->locks);
	jw_num(w, "bytes_per_lock", bytes_per_lock(m->rss_held_kib, m->rss_before_kib,
						   m->locks));
	jw_num(w, "heap_bytes_per_lock", heap_per_lock(m));
	jw_close(w, '}');
}

static void json_kvs(struct jw *w, const char *key, const struct bench_kv *kv, size_t n)
{
	jw_open(w, key, '{');
	for (size_t i = 0; i < n; i++)
		jw_str(w, kv[i].key, kv[i].value);
	jw_close(w, '}');
}

static void json_job(struct jw *w, const struct bench_result *r,
		     const struct bench_group *g)
{
	const struct bench_job *j = r->job;

	jw_open(w, NULL, '{');
	jw_str(w, "jobname", j->name);
	jw_int(w, "groupid", j->group);
	jw_int(w, "jobnum", (int64_t)j->jobnum);
	jw_int(w, "error", -r->error);
	jw_str(w, "errmsg", r->errmsg);
	json_kvs(w, "job options", j->opts, j->nopts);
	jw_str(w, "engine", r->engine);
	jw_str(w, "repo", r->repo[0] ? r->repo : j->repo);
	jw_int(w, "elapsed", r->elapsed / 1000000000);
	for (int i = 0; i < BENCH_NOPS; i++) {
		const struct bench_opstat *o = &r->ops[i];

		jw_open(w, bench_op_name[i], '{');
		jw_int(w, "total_ios", (int64_t)o->lat.n);
		jw_int(w, "errors", (int64_t)o->errors);
		jw_str(w, "first_error", o->first_error);
		jw_int(w, "runtime", o->window / 1000000);
		jw_num(w, "iops", per_sec(o->lat.n, o->window));
		json_lat(w, "lat_ns", &o->lat);
		if (i == BENCH_OP_KEY) {
			jw_open(w, "scrypt", '{');
			jw_int(w, "N", (int64_t)r->key.n);
			jw_int(w, "r", (int64_t)r->key.r);
			jw_int(w, "p", (int64_t)r->key.p);
			jw_int(w, "memory_bytes", (int64_t)r->key.memory);
			jw_close(w, '}');
			jw_int(w, "rss_peak_kib", r->key.rss_peak_kib);
		}
		jw_close(w, '}');
	}
	jw_open(w, "locks", '{');
	jw_int(w, "asked", (int64_t)r->asked);
	jw_int(w, "held", (int64_t)r->held);
	jw_int(w, "lost", (int64_t)r->lost);
	jw_int(w, "failed", (int64_t)r->failed);
	jw_close(w, '}');
	jw_open(w, "acquire", '{');
	for (int i = 0; i < BENCH_NPHASES; i++) {
		jw_open(w, bench_phase_name[i], '{');
		json_lat(w, "lat_ns", &r->acquire[i]);
		jw_close(w, '}');
	}
	jw_close(w, '}');
	jw_open(w, "cancel", '{');
	jw_int(w, "missed", (int64_t)r->missed);
	json_lat(w, "lat_ns", &r->cancel);
	jw_close(w, '}');
	json_cpu(w, &r->cpu, r->ops[BENCH_OP_REFRESH].lat.n);
	jw_open(w, "log", '{');
	jw_int(w, "warnings", (int64_t)r->warnings);
	jw_str(w, "first", r->first_warning);
	jw_close(w, '}');
	if (g)
		json_mem(w, "mem", &g->mem);
	jw_close(w, '}');
}

static void json_report(FILE *f, const char *program, const struct bench_config *cfg,
			const struct bench_result *res, size_t nres,
			const struct bench_group *groups, size_t ngroups)
{
	struct jw w = { .f = f, .first = true };
	time_t now = time(NULL);
	char when[64];

	strftime(when, sizeof(when), "%a %b %e %H:%M:%S %Y", localtime(&now));
	fputc('{', f);
	w.depth = 1;
	jw_str(&w, "lockwatch-bench version", program);
	jw_int(&w, "timestamp", (int64_t)now);
	jw_str(&w, "time", when);
	json_kvs(&w, "global options", cfg->global, cfg->nglobal);
	jw_open(&w, "jobs", '[');
	for (size_t i = 0; i < nres; i++)
		json_job(&w, &res[i], group_of(groups, ngroups, res[i].job->group));
	jw_close(&w, ']');
	jw_open(&w, "groups", '[');
	for (size_t i = 0; i < ngroups; i++) {
		jw_open(&w, NULL, '{');
		jw_int(&w, "groupid", groups[i].id);
		jw_int(&w, "jobs", (int64_t)groups[i].njobs);
		jw_int(&w, "refreshes", (int64_t)groups[i].refreshes);
		jw_int(&w, "runtime", groups[i].cpu.window / 1000000);
		json_cpu(&w, &groups[i].cpu, groups[i].refreshes);
		json_mem(&w, "mem", &groups[i].mem);
		jw_close(&w, '}');
	}
	jw_close(&w, ']');
	fputs("\n}\n", f);
}

/* ------------------------------------------------------------ public */

void bench_report_header(FILE *f, const char *program, const struct bench_config *cfg)
{
	char a[32], b[32];

	for (size_t i = 0; i < cfg->njobs; i++) {
		const struct bench_job *j = &cfg->jobs[i];

		fprintf(f, "%s: (g=%u): repo=%s, engine=%s, locks=%lu, repos=%lu, "
			"exclusive=%d, refresh_interval=%s, stale_timeout=%s, stall=%s\n",
			j->name, j->group, j->repo, lw_engine_name(j->engine), j->locks,
			j->repos, j->exclusive, lw_duration_format(j->refresh_interval, a, sizeof(a)),
			lw_duration_format(j->stale_timeout, b, sizeof(b)),
			bench_stall_name(j->stall));
	}
	fprintf(f, "%s\nStarting %zu job%s\n", program, cfg->njobs, cfg->njobs == 1 ? "" : "s");
	fflush(f);
}

void bench_report(FILE *f, enum bench_format format, const char *program,
		  const struct bench_config *cfg, const struct bench_result *res,
		  size_t nres, const struct bench_group *groups, size_t ngroups)
{
	if (format == BENCH_JSON) {
		json_report(f, program, cfg, res, nres, groups, ngroups);
	} else {
		for (size_t i = 0; i < nres; i++)
			normal_job(f, &res[i]);
		for (size_t i = 0; i < ngroups; i++)
			if (groups[i].njobs)
				normal_group(f, &groups[i], res, nres);
	}
	fflush(f);
}
