/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * lockwatch-bench: fio for lock keeping.  Each job holds LOCKS locks on one
 * loop of its own, run by its own thread (embedded with lw_loop_run_once,
 * so that the thread's CPU time is the loop's), and measures what it costs:
 * per backend operation (through the library's internal request observer),
 * per lock (held, lost, deadline-to-cancel latency) and per group of jobs
 * (the process's CPU and memory).
 *
 * A job runs in phases: acquire every lock (create, list and read are
 * measured here), ramp_time, then runtime (refresh, delete and check are
 * measured here; with list_depth, listings of the whole repository kept in
 * flight back to back, and list is measured here instead), then release.  The jobs of a group start acquiring
 * together and start their ramp together once all of them hold their locks.
 *
 * Stall mode: once a job holds its locks, every refresh write fails or
 * hangs, so each lock is cancelled at its deadline; the latency from the
 * deadline to the end of the context is the deadline precision at scale.
 * On a local repository the library's file-operation fault hook does it.
 * Over HTTP (rest:, dav:) the job starts a listener on a free 127.0.0.1
 * port that accepts and never answers (bench-listener.c), and the HTTP
 * layer's fault hook sends the connections of refresh writes there once
 * armed: each write is a real request on a real connection that gets no
 * answer, so cancelling it at the deadline costs what it costs with a
 * hung server, while deletes still reach the server and clean up.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "job.h"
#include "listener.h"
#include "report.h"
#include "sys.h"
#include "testing.h"

#define PROGRAM "lockwatch-bench-" PACKAGE_VERSION
/* How often a waiting job thread looks at the group's state. */
#define POLL_MS 20
/* A lock still held this long after its deadline counts as missed. */
#define MISSED_SLACK LW_MSEC(100)
/* How long teardown waits for lock files to be deleted. */
#define RELEASE_WAIT LW_SEC(60)

enum phase {
	PH_SETUP,
	PH_READY,    /* set up; waits for the group to start */
	PH_ACQUIRE,
	PH_ACQUIRED, /* waits for every job of the group to hold its locks */
	PH_RAMP,
	PH_MEASURE,
	PH_MEASURED, /* waits for the group to finish */
	PH_TEARDOWN,
	PH_DONE,
};

/* What the main thread lets the jobs of a group do. */
enum go { GO_WAIT, GO_ACQUIRE, GO_HOLD, GO_TEARDOWN };

enum blk_state { B_NEW, B_ACQUIRING, B_HELD, B_LOST, B_FAILED };

struct run;

/* One lock of a job. */
struct blk {
	struct lw_lock *lock;
	struct run *run;
	int64_t deadline; /* as the last ACQUIRED/REFRESHED said */
	uint8_t state;
	bool released;
};

/* An acquire's instants, for its phases (report.h); apart from the locks'
 * blocks and freed once every acquire settled, so that the memory per
 * held lock is not the bench's. */
struct acq_times {
	int64_t start;   /* lw_lock_acquire_async */
	int64_t create;  /* its create request started */
	int64_t began;   /* ... left the backend's lines (0: not said) */
	int64_t created; /* ... ended */
};

struct group_ctl {
	atomic_int go;
	atomic_llong hold_at; /* CLOCK_BOOTTIME when ramps start */
};

struct run {
	const struct bench_job *job;
	struct bench_result *res;
	struct group_ctl *g;
	pthread_t thread;
	bool started;
	atomic_int phase;
	struct lw_loop *loop;
	struct lw_repo **repos;
	size_t nrepos;
	struct blk *blks;
	struct acq_times *acq; /* while acquiring */
	unsigned long next;      /* next lock to acquire */
	int64_t acquire_start;   /* for acquire_rate */
	unsigned long inflight;  /* acquires */
	unsigned long settled;   /* acquires that ended, either way */
	unsigned long released;
	atomic_ulong held, lost, refreshes; /* read by the progress line */
	const struct stall_ops *stall;
	char *stall_prefix;      /* paths or URLs under the repository */
	atomic_bool stall_armed;
	struct bench_listener *listener; /* HTTP */
	const char *stall_method;        /* HTTP: the method that writes */
	unsigned long listing;           /* list_depth: listings in flight */
};

/* ------------------------------------------------------------ stalls */

struct stall_ops {
	/* Makes the job's refresh writes stallable once STALL_ARMED is set. */
	int (*setup)(struct run *r, const struct lw__url *url);
};

/* Stall jobs of the running group, read by the fault hook. */
#define MAX_STALLS 256
static struct run *stalls[MAX_STALLS];
static atomic_size_t nstalls;
static pthread_mutex_t stalls_mu = PTHREAD_MUTEX_INITIALIZER;

/* The armed stall job whose repository holds TARGET (a path or URL). */
static struct run *stalled(const char *target)
{
	size_t n = atomic_load_explicit(&nstalls, memory_order_acquire);

	for (size_t i = 0; i < n; i++) {
		struct run *r = stalls[i];

		if (atomic_load_explicit(&r->stall_armed, memory_order_relaxed) &&
		    strncmp(target, r->stall_prefix, strlen(r->stall_prefix)) == 0)
			return r;
	}
	return NULL;
}

/* The library's fault hook: on the loop threads, for every file operation.
 * A local create opens locks/.tmp-ID with O_CREAT; failing or hanging that
 * open makes the write fail without leaving a file. */
static int stall_fault(const struct lw__fop *op, void *userdata)
{
	const char *base;
	struct run *r;

	if (op->type != LW__FOP_OPENAT || !(op->flags & O_CREAT))
		return 0;
	base = strrchr(op->path, '/');
	if (!base || strncmp(base + 1, ".tmp-", 5) != 0 || !(r = stalled(op->path)))
		return 0;
	return r->job->stall == BENCH_STALL_FAIL ? -EIO : LW__FAULT_HANG;
}

/* The HTTP layer's fault hook: on the loop threads, as each attempt
 * starts.  Once the locks are held, every write of the repository is a
 * refresh: its connection goes to the listener. */
static const char *http_stall_fault(const struct lw__http_req *req, void *userdata)
{
	struct run *r;

	if (!req->url || !(r = stalled(req->url)) || !r->listener ||
	    strcmp(req->method, r->stall_method) != 0)
		return NULL;
	return bench_listener_address(r->listener);
}

static void stall_add(struct run *r)
{
	size_t n;

	pthread_mutex_lock(&stalls_mu);
	n = atomic_load(&nstalls);
	if (n == 0) {
		lw__fault_set(stall_fault, NULL);
		lw__http_fault_set(http_stall_fault, NULL);
	}
	stalls[n] = r;
	atomic_store_explicit(&nstalls, n + 1, memory_order_release);
	pthread_mutex_unlock(&stalls_mu);
}

static int local_stall_setup(struct run *r, const struct lw__url *url)
{
	if (asprintf(&r->stall_prefix, "%s/", url->path) < 0) {
		r->stall_prefix = NULL;
		return -ENOMEM;
	}
	stall_add(r);
	return 0;
}

/* stall=fail: the listener resets each connection at once. */
static int http_stall_setup(struct run *r, const struct lw__url *url)
{
	int e = bench_listener_start(r->job->stall == BENCH_STALL_FAIL, &r->listener);

	if (e < 0)
		return e;
	/* the HTTP backend's URLs: the server, then the repository's path */
	if (asprintf(&r->stall_prefix, "%s%s", url->ep[0].base, url->path) < 0) {
		r->stall_prefix = NULL;
		return -ENOMEM;
	}
	r->stall_method = url->kind == LW__URL_REST ? "POST" : "PUT";
	stall_add(r);
	return 0;
}

/* At the end of a group, when no loop of it runs any more. */
static void stalls_clear(void)
{
	pthread_mutex_lock(&stalls_mu);
	atomic_store(&nstalls, 0);
	lw__fault_set(NULL, NULL);
	lw__http_fault_set(NULL, NULL);
	pthread_mutex_unlock(&stalls_mu);
}

static const struct stall_ops local_stall = {
	.setup = local_stall_setup,
};

static const struct stall_ops http_stall = {
	.setup = http_stall_setup,
};

/* By repository kind; NULL: not possible there. */
static const struct stall_ops *const stall_by_kind[] = {
	[LW__URL_LOCAL] = &local_stall,
	[LW__URL_REST] = &http_stall,
	[LW__URL_DAV] = &http_stall,
};

/* ----------------------------------------------------- observation */

static bool recording(const struct bench_job *j, enum phase ph, enum bench_op op)
{
	switch (op) {
	case BENCH_OP_LIST:
		return ph == (j->list_depth ? PH_MEASURE : PH_ACQUIRE);
	case BENCH_OP_CREATE:
	case BENCH_OP_READ:
		return ph == PH_ACQUIRE;
	case BENCH_OP_KEY: /* once per repository and process, when it comes */
		return true;
	default:
		return ph == PH_MEASURE;
	}
}

/* The library's request observer: on the loop thread, for every request. */
static void on_request(void *userdata, const struct lw__breq *req, int64_t started,
		       int64_t ended)
{
	struct run *r = userdata;
	enum phase ph = atomic_load_explicit(&r->phase, memory_order_relaxed);
	struct bench_opstat *o;
	enum bench_op op;

	switch (req->op) {
	case LW__BOP_CREATE:
		op = req->refresh ? BENCH_OP_REFRESH : BENCH_OP_CREATE;
		break;
	case LW__BOP_REMOVE:
		op = BENCH_OP_DELETE;
		break;
	case LW__BOP_LIST:
		op = BENCH_OP_LIST;
		break;
	case LW__BOP_READ:
		op = BENCH_OP_READ;
		break;
	case LW__BOP_EXISTS:
		op = BENCH_OP_CHECK;
		break;
	case LW__BOP_KEEPALIVE: /* a lease's refresh (etcd:) */
		op = BENCH_OP_REFRESH;
		break;
	default:
		return;
	}
	if (op == BENCH_OP_REFRESH && req->res == 0)
		atomic_fetch_add_explicit(&r->refreshes, 1, memory_order_relaxed);
	if (op == BENCH_OP_CREATE && r->acq) {
		struct blk *b = lw__breq_event_data(req);
		struct acq_times *a = &r->acq[b - r->blks];

		a->create = started;
		a->began = req->began;
		a->created = ended;
	}
	if (!recording(r->job, ph, op))
		return;
	o = &r->res->ops[op];
	if (req->res < 0 && o->errors++ == 0)
		snprintf(o->first_error, sizeof(o->first_error), "%s",
			 req->msg[0] ? req->msg : lw_strerror(req->res));
	else if (req->res >= 0)
		bench_hist_add(&o->lat, ended - started);
}

/* The library's key observer: on the loop thread, after a derivation. */
static void on_key(void *userdata, const struct lw__key_derivation *kd)
{
	struct run *r = userdata;
	struct bench_opstat *o = &r->res->ops[BENCH_OP_KEY];
	struct bench_key *k = &r->res->key;

	k->n = kd->n;
	k->r = kd->r;
	k->p = kd->p;
	k->memory = LW_MAX(k->memory, kd->memory);
	k->rss_peak_kib = bench_rss_peak_kib();
	if (kd->err < 0 && o->errors++ == 0)
		snprintf(o->first_error, sizeof(o->first_error), "%s: %s", kd->url,
			 lw_strerror(kd->err));
	else if (kd->err >= 0)
		bench_hist_add(&o->lat, kd->ended - kd->started);
}

static void on_event(struct lw_lock *lock, const struct lw_event *ev, void *userdata)
{
	struct blk *b = userdata;
	struct run *r = b->run;
	struct lw_ctx *ctx = lw_lock_ctx(lock);

	switch (ev->type) {
	case LW_EVENT_REFRESHED:
		b->deadline = ev->next;
		break;
	case LW_EVENT_LOST:
		if (b->state == B_HELD)
			atomic_fetch_sub(&r->held, 1);
		b->state = B_LOST;
		atomic_fetch_add(&r->lost, 1);
		/* done_at: when the context ended, on this thread's clock */
		if (lw_ctx_err(ctx) == LW_CAUSE_DEADLINE &&
		    atomic_load(&r->phase) < PH_TEARDOWN)
			bench_hist_add(&r->res->cancel, lw__ctx_done_at(ctx) - b->deadline);
		break;
	default:
		break;
	}
}

/* The library's log lines: thousands of locks failing at once would
 * drown the report, so they are counted and the first one kept. */
static void on_log(void *userdata, int priority, const char *msg)
{
	struct bench_result *res = userdata;

	if (res->warnings++ == 0)
		snprintf(res->first_warning, sizeof(res->first_warning), "%s", msg);
}

/* ----------------------------------------------------------- acquire */

static void acquire_more(struct run *r);

static void acquire_failed(struct run *r, struct blk *b, int err, const char *msg)
{
	b->state = B_FAILED;
	r->res->failed++;
	if (!r->res->errmsg[0])
		snprintf(r->res->errmsg, sizeof(r->res->errmsg), "%s",
			 msg && *msg ? msg : lw_strerror(err));
}

/* A held lock's acquire, phase by phase (report.h). */
static void add_phases(struct run *r, const struct acq_times *a)
{
	struct bench_hist *h = r->res->acquire;
	int64_t now = bench_now(), began = a->began ? a->began : a->create;
	int64_t delay = r->job->recheck_delay;

	if (!a->created)
		return;
	bench_hist_add(&h[BENCH_PH_CHECK1], a->create - a->start);
	bench_hist_add(&h[BENCH_PH_WAIT], began - a->create);
	bench_hist_add(&h[BENCH_PH_CREATE], a->created - began);
	bench_hist_add(&h[BENCH_PH_RECHECK], delay);
	bench_hist_add(&h[BENCH_PH_CHECK2], LW_MAX(now - a->created - delay, 0));
	bench_hist_add(&h[BENCH_PH_TOTAL], now - a->start);
}

static void on_acquired(struct lw_lock *lock, int err, const char *msg, void *userdata)
{
	struct blk *b = userdata;
	struct run *r = b->run;

	r->inflight--;
	r->settled++;
	if (err < 0) {
		acquire_failed(r, b, err, msg);
	} else {
		b->state = B_HELD;
		b->deadline = lw_lock_deadline(lock);
		atomic_fetch_add(&r->held, 1);
		if (r->acq)
			add_phases(r, &r->acq[b - r->blks]);
	}
	acquire_more(r);
}

/* How many acquires may have started by now: with acquire_rate, the
 * locks' deadlines are spread over time as a server taking work over time
 * spreads them, rather than falling due together. */
static unsigned long acquire_allowed(const struct run *r)
{
	const struct bench_job *j = r->job;
	int64_t since = bench_now() - r->acquire_start;

	if (!j->acquire_rate)
		return j->locks;
	return LW_MIN(j->locks, (unsigned long)(since / 1000 * (int64_t)j->acquire_rate /
						1000000) + 1);
}

/* Keeps acquire_depth acquires in flight, at most acquire_rate started a
 * second; from the job thread and from the acquire callbacks. */
static void acquire_more(struct run *r)
{
	const struct bench_job *j = r->job;
	unsigned long allowed = acquire_allowed(r);

	while (r->inflight < j->acquire_depth && r->next < allowed) {
		struct blk *b = &r->blks[r->next];
		int e;

		b->run = r;
		e = lw_lock_new(r->repos[r->next % r->nrepos],
				j->exclusive ? LW_LOCK_EXCLUSIVE : 0, "lockwatch-bench",
				&b->lock);
		if (e == 0)
			e = lw_lock_set_event_fn(b->lock, on_event, b);
		if (e == 0 && r->acq)
			r->acq[b - r->blks].start = bench_now();
		if (e == 0)
			e = lw_lock_acquire_async(b->lock, on_acquired, b);
		r->next++;
		if (e < 0) {
			r->settled++;
			acquire_failed(r, b, e, lw_errmsg());
			continue;
		}
		b->state = B_ACQUIRING;
		r->inflight++;
	}
}

/* --------------------------------------------------------- job thread */

static void run_for(struct run *r, int64_t ns)
{
	lw_loop_run_once(r->loop, (int)LW_MIN(LW_MAX(ns / 1000000, 0), POLL_MS));
}

static void wait_go(struct run *r, enum go go)
{
	while (atomic_load(&r->g->go) < (int)go)
		run_for(r, LW_MSEC(POLL_MS));
}

static char *repo_url(const struct bench_job *j, size_t i)
{
	size_t n = strlen(j->repo);
	char *url;

	if (j->repos == 1)
		return strdup(j->repo);
	if (asprintf(&url, "%s%s%zu%s", j->repo, j->repo[n - 1] == '/' ? "" : "/", i,
		     j->repo[n - 1] == '/' ? "/" : "") < 0)
		return NULL;
	return url;
}

static int setup_fail(struct run *r, int err, const char *msg)
{
	r->res->error = err;
	snprintf(r->res->errmsg, sizeof(r->res->errmsg), "%s", msg);
	return err;
}

/* Makes the folders of PATH up to and including it, as fio makes the
 * folders of its files; 0 when they are there. */
static int make_folders(const char *path)
{
	char *p = strdup(path);
	int e = 0;

	if (!p)
		return -ENOMEM;
	for (char *s = strchr(p + 1, '/');; s = strchr(s + 1, '/')) {
		if (s)
			*s = '\0';
		if (mkdir(p, 0755) < 0 && errno != EEXIST)
			e = -errno;
		if (!s || e < 0)
			break;
		*s = '/';
	}
	free(p);
	return e;
}

/* A local repository's parent folder (with repos > 1, the folder that
 * holds the repositories), made if missing: lw_repo_init makes only the
 * repository's own. */
static int make_parent(struct run *r)
{
	const struct bench_job *j = r->job;
	struct lw__url url;
	char err[256], msg[256], *slash;
	int e;

	e = lw__url_parse(j->repo, &url, err, sizeof(err));
	if (e < 0)
		return setup_fail(r, e, err);
	if (url.kind == LW__URL_LOCAL) {
		if (j->repos == 1 && (slash = strrchr(url.path, '/')))
			*slash = '\0';
		e = url.path[0] ? make_folders(url.path) : 0;
		if (e < 0)
			snprintf(msg, sizeof(msg), "creating %.200s: %s", url.path, strerror(-e));
	}
	lw__url_fini(&url);
	return e < 0 ? setup_fail(r, e, msg) : 0;
}

static int setup_stall(struct run *r)
{
	struct lw__url url;
	char err[256];
	int e;

	e = lw__url_parse(r->job->repo, &url, err, sizeof(err));
	if (e < 0)
		return setup_fail(r, e, err);
	r->stall = url.kind < LW_ARRAY_SIZE(stall_by_kind) ? stall_by_kind[url.kind] : NULL;
	e = r->stall ? r->stall->setup(r, &url) : -EPROTONOSUPPORT;
	lw__url_fini(&url);
	if (e == -EPROTONOSUPPORT)
		return setup_fail(r, e, "stall mode needs a local, rest: or dav: repository");
	return e < 0 ? setup_fail(r, e, strerror(-e)) : 0;
}

static int setup(struct run *r)
{
	const struct bench_job *j = r->job;
	int e;

	e = lw_loop_new(j->engine, &r->loop);
	if (e == 0)
		e = lw__loop_observe(r->loop, on_request, r);
	if (e == 0)
		e = lw__loop_observe_keys(r->loop, on_key, r);
	if (e < 0)
		return setup_fail(r, e, lw_errmsg());
	/* LOCKWATCH_LOG asks for the library's own log on stderr */
	if (!getenv("LOCKWATCH_LOG"))
		lw_loop_set_log_fn(r->loop, on_log, r->res);
	r->res->engine = lw_engine_name(lw_loop_engine(r->loop));
	e = make_parent(r);
	if (e < 0)
		return e;
	r->nrepos = j->repos;
	r->repos = calloc(r->nrepos, sizeof(*r->repos));
	if (!r->repos)
		return setup_fail(r, -ENOMEM, "out of memory");
	for (size_t i = 0; i < r->nrepos; i++) {
		char *url = repo_url(j, i);

		e = url ? lw_repo_new(r->loop, url, &r->repos[i]) : -ENOMEM;
		free(url);
		if (e == 0)
			e = lw_repo_set_timing(r->repos[i], j->refresh_interval, j->stale_timeout);
		if (e == 0)
			e = lw_repo_set_recheck_delay(r->repos[i], j->recheck_delay);
		if (e == 0)
			e = lw_repo_init(r->repos[i]);
		if (e < 0)
			return setup_fail(r, e, lw_errmsg());
	}
	snprintf(r->res->repo, sizeof(r->res->repo), "%s", lw_repo_url(r->repos[0]));
	return j->stall == BENCH_STALL_NONE ? 0 : setup_stall(r);
}

static unsigned long count_missed(struct run *r)
{
	int64_t now = bench_now();
	unsigned long missed = 0;

	for (unsigned long i = 0; i < r->next; i++)
		if (r->blks[i].state == B_HELD && r->blks[i].deadline < now - MISSED_SLACK)
			missed++;
	return missed;
}

static void on_released(struct lw_lock *lock, int err, const char *msg, void *userdata)
{
	struct blk *b = userdata;

	b->released = true;
	b->run->released++;
}

static void teardown(struct run *r)
{
	int64_t until = bench_now() + RELEASE_WAIT;
	unsigned long asked = 0;

	for (unsigned long i = 0; i < r->next; i++) {
		struct blk *b = &r->blks[i];

		if (b->lock && lw_lock_release_async(b->lock, on_released, b) == 0)
			asked++;
	}
	while (r->released < asked && bench_now() < until)
		run_for(r, LW_MSEC(POLL_MS));
	/* what is left is released, with a bounded wait, by the loop */
	lw_loop_free(r->loop);
	for (unsigned long i = 0; i < r->next; i++)
		lw_lock_free(r->blks[i].lock);
	for (size_t i = 0; i < r->nrepos; i++)
		lw_repo_unref(r->repos[i]);
	free(r->repos);
}

static void list_more(struct run *r);

/* list_depth: the backend's listing of the first repository, as acquire
 * asks for it (the records are not read: what is measured is the server's
 * answer and its parsing), started again as each one ends. */
static void on_listed(void *userdata, int res)
{
	struct run *r = userdata;

	r->listing--;
	if (atomic_load_explicit(&r->phase, memory_order_relaxed) == PH_MEASURE)
		list_more(r);
}

static void list_more(struct run *r)
{
	while (r->listing < r->job->list_depth && lw__repo_list_start(r->repos[0], on_listed, r) == 0)
		r->listing++;
}

static void measure(struct run *r)
{
	const struct bench_job *j = r->job;
	struct bench_result *res = r->res;
	int64_t start, end, now;
	struct rusage ru0, ru1;

	start = atomic_load(&r->g->hold_at) + j->ramp_time;
	atomic_store(&r->phase, PH_RAMP);
	if (j->stall != BENCH_STALL_NONE)
		atomic_store(&r->stall_armed, true);
	while ((now = bench_now()) < start)
		run_for(r, start - now);

	getrusage(RUSAGE_THREAD, &ru0);
	start = bench_now();
	end = start + j->runtime;
	atomic_store(&r->phase, PH_MEASURE);
	list_more(r);
	while ((now = bench_now()) < end &&
	       !(j->stall != BENCH_STALL_NONE && atomic_load(&r->held) == 0))
		run_for(r, end - now);
	now = bench_now();
	getrusage(RUSAGE_THREAD, &ru1);
	atomic_store(&r->phase, PH_MEASURED);

	bench_cpu_diff(&res->cpu, "loop thread", &ru0, &ru1, now - start);
	for (int op = 0; op < BENCH_NOPS; op++)
		if (!recording(j, PH_ACQUIRE, op))
			res->ops[op].window = now - start;
	while (r->listing > 0) /* the last ones, unrecorded */
		run_for(r, LW_MSEC(POLL_MS));
	res->held = atomic_load(&r->held);
	res->lost = atomic_load(&r->lost);
	res->missed = count_missed(r);
}

static void *run_main(void *arg)
{
	struct run *r = arg;
	int64_t t0 = bench_now(), t;

	if (setup(r) < 0) {
		if (r->loop)
			lw_loop_free(r->loop);
		for (size_t i = 0; i < r->nrepos; i++)
			lw_repo_unref(r->repos[i]);
		free(r->repos);
		atomic_store(&r->phase, PH_DONE);
		return NULL;
	}
	atomic_store(&r->phase, PH_READY);
	wait_go(r, GO_ACQUIRE);

	t = bench_now();
	atomic_store(&r->phase, PH_ACQUIRE);
	r->acquire_start = t;
	/* the observer reads it on the loop thread, which is this one */
	r->acq = calloc(r->job->locks, sizeof(*r->acq));
	acquire_more(r);
	while (r->settled < r->job->locks) {
		/* paced: wake up for the next acquire, a millisecond at least */
		run_for(r, r->job->acquire_rate && r->next < r->job->locks ?
				   LW_MSEC(1) : LW_MSEC(POLL_MS));
		acquire_more(r);
	}
	for (int op = 0; op < BENCH_NOPS; op++)
		if (recording(r->job, PH_ACQUIRE, op))
			r->res->ops[op].window = bench_now() - t;
	free(r->acq);
	r->acq = NULL;
	atomic_store(&r->phase, PH_ACQUIRED);
	wait_go(r, GO_HOLD);

	measure(r);
	r->res->elapsed = bench_now() - t0;
	wait_go(r, GO_TEARDOWN);
	atomic_store(&r->phase, PH_TEARDOWN);
	teardown(r);
	atomic_store(&r->phase, PH_DONE);
	return NULL;
}

/* ------------------------------------------------------- main thread */

struct progress {
	bool on;
	int64_t last;
	unsigned long last_refreshes;
	size_t width;
};

static void progress_line(struct progress *p, struct run *runs, size_t n, bool force)
{
	static const char letters[] = { [PH_SETUP] = 'S', [PH_READY] = 'S',
					[PH_ACQUIRE] = 'A', [PH_ACQUIRED] = 'A',
					[PH_RAMP] = 'R', [PH_MEASURE] = 'H',
					[PH_MEASURED] = 'H', [PH_TEARDOWN] = 'E',
					[PH_DONE] = '_' };
	int64_t now = bench_now(), left = 0;
	unsigned long held = 0, lost = 0, refreshes = 0, asked = 0, running = 0;
	char phases[64] = "", line[256];
	size_t len;

	if (!p->on || (!force && now - p->last < LW_SEC(1)))
		return;
	for (size_t i = 0; i < n; i++) {
		enum phase ph = atomic_load(&runs[i].phase);
		size_t l = strlen(phases);

		if (l + 2 < sizeof(phases)) {
			phases[l] = letters[ph];
			phases[l + 1] = '\0';
		}
		running += ph != PH_DONE;
		held += atomic_load(&runs[i].held);
		lost += atomic_load(&runs[i].lost);
		refreshes += atomic_load(&runs[i].refreshes);
		asked += runs[i].job->locks;
		if (ph <= PH_MEASURE)
			left = LW_MAX(left, runs[i].job->ramp_time + runs[i].job->runtime);
	}
	if (atomic_load(&runs[0].g->go) >= GO_HOLD)
		left = LW_MAX(0, atomic_load(&runs[0].g->hold_at) + left - now);
	snprintf(line, sizeof(line), "Jobs: %lu (f=%lu): [%s][held=%lu/%lu lost=%lu]"
		 "[refresh=%.0f/s][eta %02" PRId64 "m:%02" PRId64 "s]", running, running,
		 phases, held, asked, lost,
		 p->last ? (double)(refreshes - p->last_refreshes) * 1e9 / (double)(now - p->last) : 0.0,
		 left / LW_SEC(60), left / LW_SEC(1) % 60);
	len = strlen(line);
	printf("\r%s%*s", line, (int)(p->width > len ? p->width - len : 0), "");
	fflush(stdout);
	p->width = len;
	p->last = now;
	p->last_refreshes = refreshes;
}

static void progress_clear(struct progress *p)
{
	if (p->on && p->width)
		printf("\r%*s\r", (int)p->width, "");
	fflush(stdout);
	p->width = 0;
}

static void wait_phase(struct run *runs, size_t n, enum phase ph, struct progress *p)
{
	for (;;) {
		bool all = true;

		for (size_t i = 0; i < n; i++)
			all &= atomic_load(&runs[i].phase) >= (int)ph;
		if (all)
			return;
		progress_line(p, runs, n, false);
		usleep(POLL_MS * 1000);
	}
}

static void sleep_until(int64_t when)
{
	struct timespec ts = { .tv_sec = when / LW_NSEC_PER_SEC,
			       .tv_nsec = when % LW_NSEC_PER_SEC };

	while (clock_nanosleep(CLOCK_BOOTTIME, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

static int run_group(struct bench_job *jobs, size_t n, struct bench_result *res,
		     struct bench_group *g, struct progress *p)
{
	struct group_ctl ctl = { 0 };
	struct run *runs = calloc(n, sizeof(*runs));
	int64_t ramp = 0, t0;
	struct rusage ru0, ru1;
	bool hang = false;

	if (!runs)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		runs[i].job = &jobs[i];
		runs[i].res = &res[i];
		runs[i].g = &ctl;
		bench_result_init(&res[i], &jobs[i]);
		ramp = LW_MAX(ramp, jobs[i].ramp_time);
		hang |= jobs[i].stall == BENCH_STALL_HANG;
	}
	for (size_t i = 0; i < n; i++) {
		int r = 0;

		/* the benchmark's own per-lock state, resident before the
		 * baseline is read so that bytes per lock are the library's */
		runs[i].blks = calloc(jobs[i].locks, sizeof(struct blk));
		if (runs[i].blks)
			memset(runs[i].blks, 0, jobs[i].locks * sizeof(struct blk));
		else
			r = -ENOMEM;
		if (r == 0)
			r = -pthread_create(&runs[i].thread, NULL, run_main, &runs[i]);

		runs[i].started = r == 0;
		if (r < 0) {
			res[i].error = r;
			snprintf(res[i].errmsg, sizeof(res[i].errmsg), "%s", strerror(-r));
			atomic_store(&runs[i].phase, PH_DONE);
		}
	}

	wait_phase(runs, n, PH_READY, p);
	for (size_t i = 0; i < n; i++)
		g->njobs += atomic_load(&runs[i].phase) != PH_DONE;
	if (g->njobs == 0)
		goto join; /* none could be set up: nothing to measure */
	g->mem.heap_before = bench_heap_bytes();
	g->mem.rss_before_kib = bench_rss_kib();
	bench_rss_peak_reset();
	atomic_store(&ctl.go, GO_ACQUIRE);

	wait_phase(runs, n, PH_ACQUIRED, p);
	t0 = bench_now();
	atomic_store(&ctl.hold_at, t0);
	atomic_store(&ctl.go, GO_HOLD);
	sleep_until(t0 + ramp);
	getrusage(RUSAGE_SELF, &ru0);
	t0 = bench_now();

	wait_phase(runs, n, PH_MEASURED, p);
	getrusage(RUSAGE_SELF, &ru1);
	bench_cpu_diff(&g->cpu, "process", &ru0, &ru1, bench_now() - t0);
	g->mem.rss_held_kib = bench_rss_kib();
	g->mem.rss_peak_kib = bench_rss_peak_kib();
	g->mem.heap_held = bench_heap_bytes();
	for (size_t i = 0; i < n; i++) {
		g->mem.locks += res[i].held;
		g->refreshes += res[i].ops[BENCH_OP_REFRESH].lat.n;
	}
	/* hung refreshes end now, so that their locks can be cleaned up */
	for (size_t i = 0; i < n; i++)
		atomic_store(&runs[i].stall_armed, false);
	if (hang)
		lw__fault_release();
join:
	atomic_store(&ctl.go, GO_TEARDOWN);
	wait_phase(runs, n, PH_DONE, p);
	for (size_t i = 0; i < n; i++) {
		if (runs[i].started)
			pthread_join(runs[i].thread, NULL);
		free(runs[i].blks);
		free(runs[i].stall_prefix);
		bench_listener_stop(runs[i].listener);
	}
	stalls_clear();
	free(runs);
	return 0;
}

static void usage(FILE *f)
{
	fprintf(f, "Usage: lockwatch-bench [--output-format=normal|json] [--eta=auto|always|never]\n"
		"                       [--KEY=VALUE...] [--name=JOB --KEY=VALUE...] [JOBFILE...]\n"
		"Job keys: repo, engine, locks, repos, exclusive, refresh_interval,\n"
		"  stale_timeout, recheck_delay, runtime, ramp_time, numjobs, acquire_depth,\n"
		"  acquire_rate, list_depth, stall=none|fail|hang, stonewall.\n"
		"  See lockwatch-bench(1).\n");
}

struct cli {
	enum bench_format format;
	struct progress prog;
};

/* The program's own options; the rest are job keys. */
static int own_option(const char *a, void *userdata, char *err, size_t es)
{
	struct cli *cli = userdata;

	if (strncmp(a, "--output-format=", 16) == 0) {
		if (strcmp(a + 16, "json") != 0 && strcmp(a + 16, "normal") != 0) {
			snprintf(err, es, "%s: expected normal or json", a);
			return -EINVAL;
		}
		cli->format = a[16] == 'j' ? BENCH_JSON : BENCH_NORMAL;
		return 1;
	}
	if (strncmp(a, "--eta=", 6) == 0) {
		if (strcmp(a + 6, "always") == 0 || strcmp(a + 6, "never") == 0)
			cli->prog.on = a[6] == 'a';
		else if (strcmp(a + 6, "auto") != 0) {
			snprintf(err, es, "%s: expected auto, always or never", a);
			return -EINVAL;
		}
		return 1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct cli cli = { .format = BENCH_NORMAL, .prog.on = isatty(STDOUT_FILENO) };
	struct bench_config cfg = { 0 };
	struct bench_result *res = NULL;
	struct bench_group *groups = NULL;
	char err[512];
	int status = 2, e;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return 0;
		}
		if (strcmp(argv[i], "--version") == 0) {
			printf("%s\n", PROGRAM);
			return 0;
		}
	}
	e = bench_parse_args(argc, argv, own_option, &cli, &cfg, err, sizeof(err));
	if (e < 0) {
		fprintf(stderr, "lockwatch-bench: %s\n", err);
		return e == -ENOMEM ? 1 : 2;
	}
	res = calloc(cfg.njobs, sizeof(*res));
	groups = calloc(cfg.ngroups, sizeof(*groups));
	if (!res || !groups)
		goto oom;
	if (cli.format == BENCH_NORMAL)
		bench_report_header(stdout, PROGRAM, &cfg);
	/* opens its descriptor here, before job threads read it (on_key) */
	bench_rss_peak_kib();
	status = 0;
	for (unsigned g = 0, first = 0; g < cfg.ngroups; g++) {
		size_t n = 0;

		while (first + n < cfg.njobs && cfg.jobs[first + n].group == g)
			n++;
		groups[g].id = g;
		e = run_group(cfg.jobs + first, n, res + first, &groups[g], &cli.prog);
		if (e < 0) {
			progress_clear(&cli.prog);
			fprintf(stderr, "lockwatch-bench: group %u: %s\n", g, strerror(-e));
			status = 1;
			goto out;
		}
		for (size_t i = first; i < first + n; i++)
			if (res[i].error)
				status = 1;
		first += (unsigned)n;
	}
	progress_clear(&cli.prog);
	bench_report(stdout, cli.format, PROGRAM, &cfg, res, cfg.njobs, groups, cfg.ngroups);
	for (size_t i = 0; i < cfg.njobs; i++)
		if (res[i].error)
			fprintf(stderr, "lockwatch-bench: job '%s': %s\n", cfg.jobs[i].name,
				res[i].errmsg);
	goto out;
oom:
	fprintf(stderr, "lockwatch-bench: out of memory\n");
	status = 1;
out:
	free(res);
	free(groups);
	bench_config_fini(&cfg);
	return status;
}
