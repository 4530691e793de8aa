/* SPDX-License-Identifier: BSD-2-Clause */
/* The repository object: its URL, its backend and its settings. */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/protocol.h"

int64_t lw__refreshability(const struct lw__timing *t)
{
	return t->stale_timeout - t->refresh_interval / 2 * 3;
}

struct lw__timing *lw__repo_timing(struct lw_repo *repo)
{
	struct lw__timing *t;

	pthread_mutex_lock(&repo->mu);
	t = repo->timing;
	atomic_fetch_add(&t->refs, 1);
	pthread_mutex_unlock(&repo->mu);
	return t;
}

void lw__timing_unref(struct lw__timing *t)
{
	if (t && atomic_fetch_sub(&t->refs, 1) == 1)
		free(t);
}

/* Applies FN to a new copy of REPO's settings: locks keep the old one. */
static int change(struct lw_repo *repo, void (*fn)(struct lw__timing *, const void *),
		  const void *arg)
{
	struct lw__timing *t = malloc(sizeof(*t)), *old;

	if (!t)
		return lw__fail(-ENOMEM, "out of memory");
	pthread_mutex_lock(&repo->mu);
	old = repo->timing;
	*t = *old;
	atomic_init(&t->refs, 1);
	fn(t, arg);
	repo->timing = t;
	pthread_mutex_unlock(&repo->mu);
	lw__timing_unref(old);
	return 0;
}

int lw__timing_check(const struct lw__timing *t, char *msg, size_t size)
{
	char a[32], b[32];

	if (t->refresh_interval <= 0 || t->stale_timeout <= 0) {
		snprintf(msg, size, "refresh interval and stale timeout must be positive");
		return -EINVAL;
	}
	if (t->refresh_interval > LW_DURATION_MAX || t->stale_timeout > LW_DURATION_MAX) {
		snprintf(msg, size, "refresh interval and stale timeout must be at most "
			 "100 years (876600h)");
		return -ERANGE;
	}
	/* The deadline comes refreshability after a write, the next write one
	 * interval after it: the deadline must be the later, or every lock is
	 * lost at its first refresh.  (The bound on the interval keeps the
	 * arithmetic from overflowing.) */
	if (t->refresh_interval > INT64_MAX / 3 ||
	    lw__refreshability(t) <= t->refresh_interval) {
		snprintf(msg, size, "stale timeout %s must be longer than 2.5 x the "
			 "refresh interval %s: a lock must outlive its next refresh by "
			 "1.5 x the interval, for a failed refresh and clock drift",
			 lw__fmt_duration(t->stale_timeout, a, sizeof(a)),
			 lw__fmt_duration(t->refresh_interval, b, sizeof(b)));
		return -EINVAL;
	}
	return 0;
}

static void shutdown_repo(struct lw__loop_hook *h);

struct open_call {
	struct lw__call c;
	struct lw_repo *repo;
	int r;
	char err[256];
};

static void open_on_loop(struct lw__call *c)
{
	struct open_call *oc = LW_CONTAINER_OF(c, struct open_call, c);
	struct lw_repo *repo = oc->repo;
	struct lw_loop *loop = repo->loop;

	oc->r = lw__backend_open(&repo->url, &loop->backends, &repo->backend,
				 oc->err, sizeof(oc->err));
	if (oc->r == 0) {
		repo->backend->observer = &loop->observer;
		lw__loop_add_open(loop, &repo->open);
	}
}

LW_EXPORT int lw_repo_new(struct lw_loop *loop, const char *url,
			  struct lw_repo **repop)
{
	struct open_call oc = { .c.fn = open_on_loop };
	struct lw_repo *repo;
	char err[256];
	int r;

	if (!loop || !repop)
		return lw__fail(-EINVAL, "invalid arguments");
	if (!url)
		url = getenv("LOCKWATCH_REPOSITORY");
	if (!url || !*url)
		return lw__fail(-EINVAL, "no repository given (use -r or LOCKWATCH_REPOSITORY)");
	repo = calloc(1, sizeof(*repo));
	if (!repo)
		return lw__fail(-ENOMEM, "out of memory");
	r = lw__url_parse(url, &repo->url, err, sizeof(err));
	if (r < 0) {
		free(repo);
		return lw__fail(r, "%s", err);
	}
	atomic_init(&repo->refs, 1);
	repo->loop = lw__loop_ref(loop);
	pthread_mutex_init(&repo->mu, NULL);
	repo->timing = malloc(sizeof(*repo->timing));
	if (!repo->timing) {
		lw__url_fini(&repo->url);
		free(repo);
		return lw__fail(-ENOMEM, "out of memory");
	}
	*repo->timing = (struct lw__timing){
		.refresh_interval = LW_SEC(5 * 60),
		.stale_timeout = LW_SEC(30 * 60),
		.recheck_delay = LW_MSEC(200),
		.retry_lock = 0,
		.retry_backoff = LW_SEC(5),
		.check_retry = LW_SEC(5),
		.op_timeout = LW_SEC(60),
		.release_timeout = LW_SEC(5),
		.check_interval = -1,
		.remove_stale = true,
	};
	atomic_init(&repo->timing->refs, 1);
	lw__idmap_init(&repo->listing.map);
	lw__idmap_init(&repo->listing.forgotten);
	lw__list_init(&repo->listing.now);
	lw__list_init(&repo->listing.next);
	lw__list_init(&repo->open.link);
	repo->open.fn = shutdown_repo;
	lw__list_init(&repo->create_queue);
	oc.repo = repo;
	r = lw__call_sync(loop, &oc.c);
	if (r == 0)
		r = oc.r;
	if (r < 0) {
		lw__url_fini(&repo->url);
		pthread_mutex_destroy(&repo->mu);
		lw__timing_unref(repo->timing);
		lw__loop_unref(repo->loop);
		free(repo);
		return lw__fail(r, "%s", oc.err[0] ? oc.err : strerror(-r));
	}
	*repop = repo;
	return 0;
}

LW_EXPORT struct lw_repo *lw_repo_ref(struct lw_repo *repo)
{
	if (repo)
		atomic_fetch_add(&repo->refs, 1);
	return repo;
}

static void close_on_loop(struct lw__call *c)
{
	struct open_call *oc = LW_CONTAINER_OF(c, struct open_call, c);
	struct lw_repo *repo = oc->repo;

	lw__list_del(&repo->open.link);
	lw__defer_cancel(repo->loop->engine, &repo->admit);
	lw__listing_fini(repo);
	lw__format_fini(repo);
	lw__backend_close(repo->backend);
	repo->backend = NULL;
}

/* At loop shutdown: closes the backend (the engine goes away). */
static void shutdown_repo(struct lw__loop_hook *h)
{
	struct open_call oc = { .repo = LW_CONTAINER_OF(h, struct lw_repo, open) };

	close_on_loop(&oc.c);
}

LW_EXPORT struct lw_repo *lw_repo_unref(struct lw_repo *repo)
{
	struct open_call oc = { .c.fn = close_on_loop };

	if (!repo || atomic_fetch_sub(&repo->refs, 1) > 1)
		return NULL;
	oc.repo = repo;
	/* after shutdown the backend is closed already */
	lw__call_sync(repo->loop, &oc.c);
	lw__url_fini(&repo->url);
	pthread_mutex_destroy(&repo->mu);
	lw__timing_unref(repo->timing);
	lw__loop_unref(repo->loop);
	free(repo);
	return NULL;
}

LW_EXPORT const char *lw_repo_url(const struct lw_repo *repo)
{
	return repo ? repo->url.display : NULL;
}

struct field {
	size_t off;
	int64_t value;
	bool is_flag;
};

static void set_field(struct lw__timing *t, const void *arg)
{
	const struct field *f = arg;

	if (f->is_flag)
		*(bool *)((char *)t + f->off) = f->value;
	else
		*(int64_t *)((char *)t + f->off) = f->value;
}

/* Sets one duration of the repository's settings. */
static int set(struct lw_repo *repo, size_t off, int64_t value, int64_t min,
	       const char *name)
{
	if (!repo)
		return lw__fail(-EINVAL, "no repository (NULL)");
	if (value < min)
		return lw__fail(-EINVAL, "%s must be at least %" PRId64 " ns", name, min);
	if (value > LW_DURATION_MAX)
		return lw__fail(-ERANGE, "%s must be at most 100 years (876600h)", name);
	return change(repo, set_field, &(struct field){ .off = off, .value = value });
}

static int set_flag(struct lw_repo *repo, size_t off, bool value)
{
	if (!repo)
		return lw__fail(-EINVAL, "no repository (NULL)");
	return change(repo, set_field,
		      &(struct field){ .off = off, .value = value, .is_flag = true });
}

static void set_pair(struct lw__timing *t, const void *arg)
{
	const struct lw__timing *n = arg;

	t->refresh_interval = n->refresh_interval;
	t->stale_timeout = n->stale_timeout;
}

LW_EXPORT int lw_repo_set_timing(struct lw_repo *repo, int64_t refresh_interval,
				 int64_t stale_timeout)
{
	struct lw__timing t = { .refresh_interval = refresh_interval,
				.stale_timeout = stale_timeout };
	char msg[300];
	int r;

	if (!repo)
		return lw__fail(-EINVAL, "%s: a NULL argument", __func__);
	r = lw__timing_check(&t, msg, sizeof(msg));
	if (r < 0)
		return lw__fail(r, "%s", msg);
	return change(repo, set_pair, &t);
}

#define OFF(field) offsetof(struct lw__timing, field)

LW_EXPORT int lw_repo_set_recheck_delay(struct lw_repo *repo, int64_t delay)
{
	return set(repo, OFF(recheck_delay), delay, 0, "the recheck delay");
}

LW_EXPORT int lw_repo_set_retry_lock(struct lw_repo *repo, int64_t duration)
{
	return set(repo, OFF(retry_lock), duration, 0, "retry-lock");
}

LW_EXPORT int lw_repo_set_retry_backoff(struct lw_repo *repo, int64_t first)
{
	/* bounded so that doubling it to the cap cannot overflow */
	if (first > LW_SEC(3600))
		return lw__fail(-EINVAL, "the retry backoff must be at most 1h");
	return set(repo, OFF(retry_backoff), first, LW_MSEC(1), "the retry backoff");
}

LW_EXPORT int lw_repo_set_check_retry(struct lw_repo *repo, int64_t delay)
{
	return set(repo, OFF(check_retry), delay, 1, "the check retry delay");
}

LW_EXPORT int lw_repo_set_op_timeout(struct lw_repo *repo, int64_t timeout)
{
	return set(repo, OFF(op_timeout), timeout, 1, "the operation timeout");
}

LW_EXPORT int lw_repo_set_release_timeout(struct lw_repo *repo, int64_t timeout)
{
	if (timeout > LW_SEC(3600))
		return lw__fail(-EINVAL, "the release timeout must be at most 1h");
	return set(repo, OFF(release_timeout), timeout, LW_MSEC(1), "the release timeout");
}

LW_EXPORT int lw_repo_set_check_interval(struct lw_repo *repo, int64_t interval)
{
	if (interval > 0 && interval < LW_MSEC(10))
		return lw__fail(-EINVAL, "the check interval must be 0 (none) or at least 10ms");
	return set(repo, OFF(check_interval), interval, 0, "the check interval");
}

LW_EXPORT int lw_repo_set_remove_stale(struct lw_repo *repo, bool remove)
{
	return set_flag(repo, OFF(remove_stale), remove);
}

LW_EXPORT int lw_repo_set_suspend_recovery(struct lw_repo *repo, bool on)
{
	return set_flag(repo, OFF(suspend_recovery), on);
}

/* A change of the backend's settings, made on the loop thread. */
struct opts_call {
	struct lw__call c;
	struct lw_repo *repo;
	void (*apply)(struct lw__backend_opts *o, struct opts_call *oc);
	char *str;
	bool flag;
	unsigned n;
};

static void opts_on_loop(struct lw__call *c)
{
	struct opts_call *oc = LW_CONTAINER_OF(c, struct opts_call, c);
	struct lw__backend *be = oc->repo->backend;

	if (!be)
		return;
	oc->apply(&be->opts, oc);
	lw__backend_configure(be);
}

static int set_opts(struct lw_repo *repo, struct opts_call *oc)
{
	int r;

	oc->c.fn = opts_on_loop;
	oc->repo = repo;
	r = lw__call_sync(repo->loop, &oc->c);
	free(oc->str); /* the old value, or the new one if not taken */
	return r;
}

static void apply_max_connections(struct lw__backend_opts *o, struct opts_call *oc)
{
	o->max_connections = oc->n;
}

LW_EXPORT int lw_repo_set_max_connections(struct lw_repo *repo, unsigned n)
{
	struct opts_call oc = { .apply = apply_max_connections, .n = n };

	if (!repo)
		return lw__fail(-EINVAL, "%s: a NULL argument", __func__);
	if (n < 1 || n > 1024)
		return lw__fail(-EINVAL, "max connections must be between 1 and 1024");
	return set_opts(repo, &oc);
}

static void apply_ca_file(struct lw__backend_opts *o, struct opts_call *oc)
{
	char *old = o->ca_file;

	o->ca_file = oc->str;
	oc->str = old;
}

LW_EXPORT int lw_repo_set_tls_ca_file(struct lw_repo *repo, const char *path)
{
	struct opts_call oc = { .apply = apply_ca_file, .str = lw__strdup0(path) };

	if (!repo) {
		free(oc.str);
		return lw__fail(-EINVAL, "%s: a NULL argument", __func__);
	}
	if (path && !oc.str)
		return lw__fail(-ENOMEM, "out of memory");
	return set_opts(repo, &oc);
}

static void apply_insecure(struct lw__backend_opts *o, struct opts_call *oc)
{
	o->tls_insecure = oc->flag;
}

LW_EXPORT int lw_repo_set_tls_insecure_skip_verify(struct lw_repo *repo, bool insecure)
{
	struct opts_call oc = { .apply = apply_insecure, .flag = insecure };

	if (!repo)
		return lw__fail(-EINVAL, "%s: a NULL argument", __func__);
	return set_opts(repo, &oc);
}

struct init_call {
	struct lw__call c;
	struct lw_repo *repo;
	bool done;
	int r;
	char msg[200];
};

static void on_init(struct lw__breq *req)
{
	struct init_call *ic = req->userdata;

	ic->r = req->res;
	snprintf(ic->msg, sizeof(ic->msg), "%s", req->msg);
	lw__breq_free(req);
	lw__loop_signal(ic->repo->loop, &ic->done);
}

static void init_on_loop(struct lw__call *c)
{
	struct init_call *ic = LW_CONTAINER_OF(c, struct init_call, c);
	struct lw_repo *repo = ic->repo;
	struct lw__breq *req;

	req = lw__breq_new(repo->backend, LW__BOP_INIT, NULL, NULL, 0,
			   lw__add_sat(lw__now_boot(), repo->timing->op_timeout), on_init, ic);
	if (!req) {
		ic->r = -ENOMEM;
		lw__loop_signal(repo->loop, &ic->done);
		return;
	}
	lw__breq_start(req);
}

LW_EXPORT int lw_repo_init(struct lw_repo *repo)
{
	struct init_call ic = { .c.fn = init_on_loop, .repo = repo };
	int r;

	if (!repo)
		return lw__fail(-EINVAL, "%s: a NULL argument", __func__);
	if (lw__on_loop_thread(repo->loop))
		return lw__fail(-EDEADLK, "blocking call from a callback of the loop");
	r = lw__post(repo->loop, &ic.c);
	if (r == 0)
		r = lw__loop_wait(repo->loop, &ic.done);
	if (r == 0)
		r = ic.r;
	if (r < 0)
		return lw__fail(r, "initialising %s: %s", repo->url.display,
				ic.msg[0] ? ic.msg : lw_strerror(r));
	return 0;
}
