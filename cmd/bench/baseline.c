/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * bench-baseline: the design most people write first, and the shape of
 * restic's goroutine-per-lock monitor: one thread per lock, each with its
 * own blocking libcurl easy handle, sleeping between refreshes.  It keeps
 * dav: and rest: locks with lockwatch's record format and refresh (write a
 * new file, then delete the old one), reads the same job files and reports
 * like lockwatch-bench, so that the two run side by side:
 *
 *   bench-baseline [--output-format=normal|json] [--KEY=VALUE...] [JOBFILE...]
 *
 * It uses repo, locks, exclusive, refresh_interval, stale_timeout, runtime
 * and ramp_time; engine, recheck_delay and acquire_depth mean nothing here
 * (no listing, no conflict check: the naive design does neither).  Jobs
 * run one after another, each a group of its own.  Benchmark-only: not
 * installed.
 */
#include "config.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "job.h"
#include "report.h"
#include "sys.h"
#include "testing.h"

#define PROGRAM "bench-baseline-" PACKAGE_VERSION

enum phase { PH_ACQUIRE, PH_RAMP, PH_MEASURE, PH_STOP };

struct job_run {
	const struct bench_job *job;
	struct bench_result *res;
	const char *create_method; /* PUT (dav) or POST (rest) */
	char *locks_url;           /* ends with "locks/" */
	const char *user, *password;
	pthread_mutex_t mu;        /* RES, PHASE changes, COND */
	pthread_cond_t cond;       /* the phase changed */
	enum phase phase;
	int64_t first_refresh;     /* when the refresh schedule starts */
	unsigned long settled;     /* creates that ended */
	atomic_ulong held;
};

/* One lock and its thread. */
struct lk {
	struct job_run *run;
	pthread_t thread;
	bool started;
	unsigned long idx;
};

static size_t discard(char *ptr, size_t size, size_t n, void *userdata)
{
	return size * n;
}

static CURL *easy_new(struct job_run *run, struct curl_slist *headers)
{
	CURL *c = curl_easy_init();

	if (!c)
		return NULL;
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
	/* as long as the lock can wait for a refresh: its deadline distance */
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS,
			 (long)((run->job->stale_timeout - run->job->refresh_interval / 2 * 3) /
				1000000));
	if (run->user) {
		curl_easy_setopt(c, CURLOPT_USERNAME, run->user);
		curl_easy_setopt(c, CURLOPT_PASSWORD, run->password ? run->password : "");
	}
	return c;
}

/* One request with BODY (LEN bytes, or none); returns the HTTP status,
 * or -1 when none came (and keeps the first such failure in the result). */
static long request(struct job_run *run, CURL *c, const char *url,
		    const char *method, const void *body, size_t len)
{
	long status = -1;
	CURLcode cc;

	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)len);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	}
	cc = curl_easy_perform(c);
	if (cc == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	if (status < 200 || (status >= 300 && status != 404)) {
		pthread_mutex_lock(&run->mu);
		if (!run->res->errmsg[0])
			snprintf(run->res->errmsg, sizeof(run->res->errmsg), "%s: %s", method,
				 cc != CURLE_OK ? curl_easy_strerror(cc) : "unexpected HTTP status");
		pthread_mutex_unlock(&run->mu);
	}
	return status;
}

static void lock_url(const struct job_run *run, const struct lw__id *id, char *buf,
		     size_t size)
{
	char hex[LW_ID_HEX + 1];

	lw__id_hex(id, hex);
	snprintf(buf, size, "%s%s", run->locks_url, hex);
}

/* Records a finished operation if the run is in its phase for it:
 * creates while acquiring, the others during runtime. */
static void note(struct job_run *run, enum bench_op op, bool ok, int64_t started)
{
	int64_t ended = bench_now();
	struct bench_opstat *o = &run->res->ops[op];

	pthread_mutex_lock(&run->mu);
	if (run->phase == (op == BENCH_OP_CREATE ? PH_ACQUIRE : PH_MEASURE)) {
		if (ok)
			bench_hist_add(&o->lat, ended - started);
		else if (o->errors++ == 0)
			snprintf(o->first_error, sizeof(o->first_error), "%.*s",
				 (int)sizeof(o->first_error) - 1, run->res->errmsg);
	}
	pthread_mutex_unlock(&run->mu);
}

/* A fresh record, as every refresh writes one. */
static int encode_record(const struct bench_job *j, uint8_t *buf, size_t size)
{
	const struct lw__self *self = lw__self();
	struct lw__record rec = {
		.time = lw__now_real(), .stale_timeout = j->stale_timeout,
		.pid = self->pid, .uid = self->uid, .gid = self->gid,
		.pid_ns = self->pid_ns, .pid_start = self->pid_start,
		.exclusive = j->exclusive, .hostname = self->hostname,
		.username = self->username, .boot_id = self->boot_id,
		.purpose = "bench-baseline",
	};

	return lw__record_encode(&rec, buf, size);
}

static bool create(struct job_run *run, CURL *c, const struct lw__id *id,
		   enum bench_op op)
{
	uint8_t record[LW_RECORD_MAX];
	char url[1024];
	int64_t t = bench_now();
	int len = encode_record(run->job, record, sizeof(record));
	long status = -1;

	lock_url(run, id, url, sizeof(url));
	if (len > 0)
		status = request(run, c, url, run->create_method, record, (size_t)len);
	note(run, op, status == 200 || status == 201 || status == 204, t);
	return status == 200 || status == 201 || status == 204;
}

/* Returns the status: 2xx deleted, 404 gone already. */
static long delete(struct job_run *run, CURL *c, const struct lw__id *id)
{
	char url[1024];
	int64_t t = bench_now();
	long status;

	lock_url(run, id, url, sizeof(url));
	status = request(run, c, url, "DELETE", NULL, 0);
	note(run, BENCH_OP_DELETE, status >= 200 && status < 300, t);
	return status;
}

/* Sleeps until WHEN (bench_now's CLOCK_BOOTTIME) or until the run stops;
 * returns the phase.  Condition variables wait on CLOCK_MONOTONIC, which
 * differs from BOOTTIME only by time spent suspended. */
static enum phase sleep_until(struct job_run *run, int64_t when)
{
	struct timespec ts;
	int64_t mono;
	enum phase ph;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	mono = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec + (when - bench_now());
	ts.tv_sec = mono / 1000000000;
	ts.tv_nsec = mono % 1000000000;

	pthread_mutex_lock(&run->mu);
	while (run->phase != PH_STOP && bench_now() < when)
		pthread_cond_timedwait(&run->cond, &run->mu, &ts);
	ph = run->phase;
	pthread_mutex_unlock(&run->mu);
	return ph;
}

static void *lock_main(void *arg)
{
	struct lk *lk = arg;
	struct job_run *run = lk->run;
	const struct bench_job *j = run->job;
	struct curl_slist *headers = curl_slist_append(NULL, "Expect:");
	struct lw__id id, next_id;
	int64_t next;
	bool held = false;
	CURL *c;

	headers = curl_slist_append(headers, "Content-Type: application/octet-stream");
	c = headers ? easy_new(run, headers) : NULL;
	if (c && lw__id_random(&id) == 0)
		held = create(run, c, &id, BENCH_OP_CREATE);
	pthread_mutex_lock(&run->mu);
	if (held)
		atomic_fetch_add(&run->held, 1);
	else
		run->res->failed++;
	run->settled++;
	pthread_cond_broadcast(&run->cond);
	while (run->phase == PH_ACQUIRE)
		pthread_cond_wait(&run->cond, &run->mu);
	/* spread over one interval, as locks taken over time would be */
	next = run->first_refresh + (int64_t)((double)j->refresh_interval *
					      (double)lk->idx / (double)j->locks);
	pthread_mutex_unlock(&run->mu);

	while (held && sleep_until(run, next) != PH_STOP) {
		int64_t started = bench_now();
		long status;

		if (lw__id_random(&next_id) < 0 || !create(run, c, &next_id, BENCH_OP_REFRESH)) {
			next = started + LW_SEC(1); /* try again soon */
			continue;
		}
		status = delete(run, c, &id);
		id = next_id;
		next = started + j->refresh_interval;
		if (status == 404) {
			/* the old file is gone: someone removed our lock */
			atomic_fetch_sub(&run->held, 1);
			pthread_mutex_lock(&run->mu);
			run->res->lost++;
			pthread_mutex_unlock(&run->mu);
			delete(run, c, &id);
			held = false;
		}
	}
	if (held)
		delete(run, c, &id);
	if (c)
		curl_easy_cleanup(c);
	curl_slist_free_all(headers);
	return NULL;
}

static void set_phase(struct job_run *run, enum phase ph)
{
	pthread_mutex_lock(&run->mu);
	run->phase = ph;
	pthread_cond_broadcast(&run->cond);
	pthread_mutex_unlock(&run->mu);
}

static int prepare(struct job_run *run, struct lw__url *url, char *err, size_t es)
{
	const struct bench_job *j = run->job;
	int r;

	r = lw__url_parse(j->repo, url, err, es);
	if (r < 0)
		return r;
	if (url->kind != LW__URL_DAV && url->kind != LW__URL_REST) {
		snprintf(err, es, "%s: the baseline speaks HTTP only (dav: or rest:)", j->repo);
		return -EPROTONOSUPPORT;
	}
	if (j->stall != BENCH_STALL_NONE) {
		snprintf(err, es, "stall mode is lockwatch-bench's only");
		return -EINVAL;
	}
	run->create_method = url->kind == LW__URL_DAV ? "PUT" : "POST";
	run->user = url->user;
	run->password = url->password;
	if (asprintf(&run->locks_url, "%s%slocks/", url->ep[0].base, url->path) < 0) {
		run->locks_url = NULL;
		return -ENOMEM;
	}
	return 0;
}

static void wait_settled(struct job_run *run, unsigned long n)
{
	pthread_mutex_lock(&run->mu);
	while (run->settled < n)
		pthread_cond_wait(&run->cond, &run->mu);
	pthread_mutex_unlock(&run->mu);
}

static void run_job(const struct bench_job *j, struct bench_result *res,
		    struct bench_group *g)
{
	struct job_run run = { .job = j, .res = res, .phase = PH_ACQUIRE };
	struct lk *lks = calloc(j->locks, sizeof(*lks));
	struct rusage ru0, ru1;
	struct lw__url url = { 0 };
	pthread_condattr_t ca;
	unsigned long started = 0;
	int64_t t0, t;

	bench_result_init(res, j);
	res->engine = "thread-per-lock";
	pthread_mutex_init(&run.mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&run.cond, &ca);
	pthread_condattr_destroy(&ca);
	atomic_init(&run.held, 0);
	res->error = lks ? prepare(&run, &url, res->errmsg, sizeof(res->errmsg)) : -ENOMEM;
	if (res->error)
		goto out;
	res->errmsg[0] = '\0';
	g->njobs = 1;
	snprintf(res->repo, sizeof(res->repo), "%s", url.display);

	g->mem.heap_before = bench_heap_bytes();
	g->mem.rss_before_kib = bench_rss_kib();
	bench_rss_peak_kib(); /* opens its descriptor while there are some */
	bench_rss_peak_reset();
	t0 = t = bench_now();
	for (unsigned long i = 0; i < j->locks; i++) {
		lks[i] = (struct lk){ .run = &run, .idx = i };
		/* default attributes: the design as people write it */
		lks[i].started = pthread_create(&lks[i].thread, NULL, lock_main, &lks[i]) == 0;
		if (!lks[i].started) {
			snprintf(res->errmsg, sizeof(res->errmsg),
				 "cannot start thread %lu: %s", i, strerror(errno));
			pthread_mutex_lock(&run.mu);
			res->failed++;
			run.settled++;
			pthread_mutex_unlock(&run.mu);
		}
		started += lks[i].started;
	}
	wait_settled(&run, j->locks);
	res->ops[BENCH_OP_CREATE].window = bench_now() - t;

	pthread_mutex_lock(&run.mu);
	run.first_refresh = bench_now();
	run.phase = PH_RAMP;
	pthread_cond_broadcast(&run.cond);
	pthread_mutex_unlock(&run.mu);
	sleep_until(&run, run.first_refresh + j->ramp_time);

	getrusage(RUSAGE_SELF, &ru0);
	t = bench_now();
	set_phase(&run, PH_MEASURE);
	sleep_until(&run, t + j->runtime);
	pthread_mutex_lock(&run.mu);
	run.phase = PH_STOP; /* no more recording; threads finish below */
	getrusage(RUSAGE_SELF, &ru1);
	t = bench_now() - t;
	bench_cpu_diff(&g->cpu, "process", &ru0, &ru1, t);
	res->cpu = g->cpu;
	res->ops[BENCH_OP_REFRESH].window = res->ops[BENCH_OP_DELETE].window = t;
	res->held = atomic_load(&run.held);
	g->refreshes = res->ops[BENCH_OP_REFRESH].lat.n;
	g->mem.locks = res->held;
	g->mem.rss_held_kib = bench_rss_kib();
	g->mem.rss_peak_kib = bench_rss_peak_kib();
	pthread_cond_broadcast(&run.cond);
	pthread_mutex_unlock(&run.mu);
	g->mem.heap_held = bench_heap_bytes();

	for (unsigned long i = 0; i < j->locks; i++)
		if (lks[i].started)
			pthread_join(lks[i].thread, NULL);
	res->elapsed = bench_now() - t0;
out:
	free(lks);
	free(run.locks_url);
	lw__url_fini(&url);
	pthread_cond_destroy(&run.cond);
	pthread_mutex_destroy(&run.mu);
}

static int own_option(const char *a, void *userdata, char *err, size_t es)
{
	enum bench_format *format = userdata;

	if (strncmp(a, "--output-format=", 16) != 0)
		return 0;
	if (strcmp(a + 16, "json") != 0 && strcmp(a + 16, "normal") != 0) {
		snprintf(err, es, "%s: expected normal or json", a);
		return -EINVAL;
	}
	*format = a[16] == 'j' ? BENCH_JSON : BENCH_NORMAL;
	return 1;
}

int main(int argc, char **argv)
{
	enum bench_format format = BENCH_NORMAL;
	struct bench_config cfg = { 0 };
	struct bench_result *res = NULL;
	struct bench_group *groups = NULL;
	char err[512];
	int status = 2, e;

	e = bench_parse_args(argc, argv, own_option, &format, &cfg, err, sizeof(err));
	if (e < 0) {
		fprintf(stderr, "bench-baseline: %s\n", err);
		return e == -ENOMEM ? 1 : 2;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		goto oom;
	res = calloc(cfg.njobs, sizeof(*res));
	groups = calloc(cfg.njobs, sizeof(*groups));
	if (!res || !groups)
		goto oom;
	/* one job at a time: each is a group of its own */
	for (size_t i = 0; i < cfg.njobs; i++)
		cfg.jobs[i].group = (unsigned)i;
	cfg.ngroups = (unsigned)cfg.njobs;
	if (format == BENCH_NORMAL)
		bench_report_header(stdout, PROGRAM, &cfg);
	status = 0;
	for (size_t i = 0; i < cfg.njobs; i++) {
		groups[i].id = (unsigned)i;
		run_job(&cfg.jobs[i], &res[i], &groups[i]);
		if (res[i].error) {
			fprintf(stderr, "bench-baseline: job '%s': %s\n", cfg.jobs[i].name,
				res[i].errmsg);
			status = 1;
		}
	}
	bench_report(stdout, format, PROGRAM, &cfg, res, cfg.njobs, groups, cfg.njobs);
	goto out;
oom:
	fprintf(stderr, "bench-baseline: out of memory\n");
	status = 1;
out:
	free(res);
	free(groups);
	bench_config_fini(&cfg);
	curl_global_cleanup();
	return status;
}
