/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Slow answers: a proxy (tests/helpers/slowproxy.c) in front of the real nginx
 * holds every answer back.  Locks refresh every second and their deadline
 * is 4.5 s after a refresh started (stale timeout 6 s).
 *
 * Answers 0.8 s late make a refresh (write, delete, and on rest: a check
 * before) take 1.6-2.4 s, slower than the interval but well within the
 * deadline: the lock is kept.  Answers 6 s late make no refresh finish
 * before the deadline: the lock is lost at the deadline, not when an
 * answer comes.
 */
#include "config.h"

#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "http-test.h"
#include "slowproxy.h"

#define INTERVAL LW_SEC(1)
#define STALE LW_SEC(6)
/* How late after its deadline a context may end: typical values are well
 * under a millisecond (logged); margin for a loaded 2-core machine. */
#define BOUND LW_MSEC(100)

static struct lwt_slowproxy *proxy;

static void setup(void)
{
	lwt_nginx_setup();
}

static void teardown(void)
{
	lwt_slowproxy_stop(proxy);
	proxy = NULL;
	lwt_nginx_teardown();
}

/* C's repository, reached through a new slow proxy. */
static struct lw_repo *slow_repo(struct lw_loop *loop, const struct lwt_case *c)
{
	char url[128];

	proxy = lwt_slowproxy_start(lwt_nginx_port(ng, c->server));
	cr_assert(proxy, "the proxy did not start");
	snprintf(url, sizeof(url), "%s:http://127.0.0.1:%d/slow/",
		 c->server == LWT_REST ? "rest" : "dav", lwt_slowproxy_port(proxy));
	return lwt_repo_init(loop, url, INTERVAL, STALE);
}

struct refreshes {
	atomic_int n;
	_Atomic int64_t first, last;
};

static void on_event(struct lw_lock *lock, const struct lw_event *ev, void *userdata)
{
	struct refreshes *r = userdata;

	if (ev->type != LW_EVENT_REFRESHED)
		return;
	if (atomic_fetch_add(&r->n, 1) == 0)
		atomic_store(&r->first, ev->at);
	atomic_store(&r->last, ev->at);
}

LWT_PARAMS(http_slow, slower_than_the_interval, LWT_CASES_BOTH)
ParameterizedTest(struct lwt_case *c, http_slow, slower_than_the_interval,
		  .init = setup, .fini = teardown, .timeout = 60)
{
	struct lw_loop *loop = lwt_loop(c->engine);
	struct lw_repo *repo = slow_repo(loop, c);
	struct refreshes r = { 0 };
	struct lw_lock *lock;
	int64_t spacing;
	int n;

	cr_assert_eq(lw_lock_new(repo, LW_LOCK_EXCLUSIVE, "slow", &lock), 0);
	cr_assert_eq(lw_lock_set_event_fn(lock, on_event, &r), 0);
	cr_assert_eq(lw_lock_acquire(lock), 0, "%s", lw_errmsg());
	lwt_slowproxy_set_delay(proxy, LW_MSEC(800));
	lwt_sleep(LW_SEC(9)); /* twice the deadline distance */
	cr_assert(!lw_ctx_done(lw_lock_ctx(lock)), "lost: %s", lw_ctx_cause(lw_lock_ctx(lock)));
	n = atomic_load(&r.n);
	cr_assert_geq(n, 3, "%d refreshes in 9 s", n);
	spacing = (atomic_load(&r.last) - atomic_load(&r.first)) / (n - 1);
	fprintf(stderr, "slow %s %s: %d refreshes, %lld ms apart (interval 1 s)\n",
		lw_engine_name(c->engine), c->server == LWT_REST ? "rest" : "dav", n,
		(long long)spacing / 1000000);
	/* really slower than the interval: a write and a delete each wait */
	cr_expect_geq(spacing, LW_MSEC(1500), "refreshes %lld ms apart", (long long)spacing / 1000000);
	lwt_slowproxy_set_delay(proxy, 0);
	lwt_release(lock);
	cr_expect_eq(lwt_nginx_count_locks(ng, "/slow/"), 0, "lock files left behind");
	lw_repo_unref(repo);
	lw_loop_free(loop);
}

LWT_PARAMS(http_slow, slower_than_the_deadline, LWT_CASES_BOTH)
ParameterizedTest(struct lwt_case *c, http_slow, slower_than_the_deadline,
		  .init = setup, .fini = teardown, .timeout = 60)
{
	struct lw_loop *loop = lwt_loop(c->engine);
	struct lw_repo *repo = slow_repo(loop, c);
	struct lw_lock *lock = lwt_acquire(repo, LW_LOCK_EXCLUSIVE);
	struct lw_ctx *ctx = lw_lock_ctx(lock);
	struct pollfd pfd = { .fd = lw_ctx_fd(ctx), .events = POLLIN };
	int64_t deadline = 0, started, late;

	lwt_slowproxy_set_delay(proxy, LW_SEC(6));
	started = lwt_now();
	/* a refresh answered before the delay may still move the deadline */
	while (poll(&pfd, 1, 2) == 0 && lwt_now() < started + LW_SEC(10))
		deadline = lw_lock_deadline(lock);
	late = lwt_now() - deadline;
	cr_assert(lw_ctx_done(ctx), "still live 10 s into 6 s answers");
	fprintf(stderr, "slow %s %s: cancelled %lld us after the deadline, %lld ms into the "
		"slowness: %s\n", lw_engine_name(c->engine),
		c->server == LWT_REST ? "rest" : "dav", (long long)late / 1000,
		(long long)(lwt_now() - started) / 1000000, lw_ctx_cause(ctx));
	cr_expect_eq(lw_ctx_err(ctx), LW_CAUSE_DEADLINE, "%s", lw_ctx_cause(ctx));
	cr_expect(strstr(lw_ctx_cause(ctx), "got no answer"), "%s", lw_ctx_cause(ctx));
	cr_expect_geq(late, 0);
	cr_expect_leq(late, BOUND, "cancelled %lld us after the deadline", (long long)late / 1000);
	/* the server stored what the held answers were about: the lock's
	 * end deletes it once answers come again */
	lwt_slowproxy_set_delay(proxy, 0);
	lw_lock_release(lock);
	lw_lock_free(lock);
	cr_expect_eq(lwt_nginx_count_locks(ng, "/slow/"), 0, "lock files left behind");
	lw_repo_unref(repo);
	lw_loop_free(loop);
}

LWT_SERIAL
