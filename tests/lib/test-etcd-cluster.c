/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * etcd: when members fail, each case on a three-member cluster of its own,
 * one case at a time (they are heavy: a thousand locks refreshed every
 * second).  The leader dies while 1,000 locks are held: none is lost and
 * refreshes go on.  Two of three members stop: the cluster cannot answer,
 * and every context is cancelled by its own deadline, on time.
 */
#include "config.h"

#include <criterion/hooks.h>
#include <criterion/options.h>
#include <signal.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "etcd.h"
#include "lwtest.h"
#include "testing.h"

#define REFRESH LW_SEC(1)
#define STALE LW_SEC(5)
/* A fast election (heartbeat 50 ms): the leader's death is noticed within
 * about a second, well inside the 3.5 s a lock has after a refresh. */
#define ELECTION_MS 500
/* As in test-deadline: generous for a loaded 2-core machine; the deadline
 * timer does not wait for any request. */
#define LATENCY_BOUND LW_MSEC(50)

#define CLUSTER_TEST(name, ...) LWT_ETCD_TEST(etcd_cluster, name, __VA_ARGS__)

struct held {
	struct lw_lock *lock;
	atomic_int refreshed;
	atomic_int failed;
	atomic_int_least64_t deadline; /* the last one announced */
	int64_t last;                  /* loop thread: the last refresh ... */
	atomic_int_least64_t max_gap;  /* ... and the longest wait for one */
	atomic_int_least64_t ended;    /* when the context ended */
	atomic_bool acquired;
	atomic_int err;
};

static void on_event(struct lw_lock *lock, const struct lw_event *ev, void *userdata)
{
	struct held *h = userdata;

	switch (ev->type) {
	case LW_EVENT_ACQUIRED:
	case LW_EVENT_REFRESHED:
		atomic_store(&h->deadline, ev->next);
		if (ev->type == LW_EVENT_REFRESHED)
			atomic_fetch_add(&h->refreshed, 1);
		if (h->last && ev->at - h->last > atomic_load(&h->max_gap))
			atomic_store(&h->max_gap, ev->at - h->last);
		h->last = ev->at;
		break;
	case LW_EVENT_REFRESH_FAILED:
		atomic_fetch_add(&h->failed, 1);
		break;
	default:
		break;
	}
}

static void on_done(struct lw_ctx *ctx, void *userdata)
{
	struct held *h = userdata;

	atomic_store(&h->ended, lw__ctx_done_at(ctx));
}

static void on_acquired(struct lw_lock *lock, int err, const char *msg, void *userdata)
{
	struct held *h = userdata;

	atomic_store(&h->err, err);
	atomic_store(&h->acquired, true);
}

struct setup {
	struct lwt_etcd *etcd;
	struct lw_loop *loop;
	struct lw_repo *repo;
	struct held *held;
	int n;
	char prefix[32];
};

/* N shared locks on a fresh cluster, acquired. */
static void hold(struct setup *s, const struct lwt_param *p, int n)
{
	char url[1024];
	int64_t start;

	s->n = n;
	s->etcd = lwt_etcd_start(3, ELECTION_MS);
	cr_assert_not_null(s->etcd, "etcd did not start");
	lwt_etcd_prefix(s->prefix);
	snprintf(url, sizeof(url), "etcd:%s/%s", lwt_etcd_endpoints(s->etcd), s->prefix);
	lwt_engine_case(p->engine);
	cr_assert_eq(lw_loop_new(p->engine, &s->loop), 0);
	cr_assert_eq(lw_loop_start(s->loop), 0);
	cr_assert_eq(lw_repo_new(s->loop, url, &s->repo), 0, "%s", lw_errmsg());
	cr_assert_eq(lw_repo_set_timing(s->repo, REFRESH, STALE), 0);
	cr_assert_eq(lw_repo_set_recheck_delay(s->repo, LW_MSEC(50)), 0);
	cr_assert_eq(lw_repo_set_max_connections(s->repo, 16), 0);
	s->held = calloc((size_t)n, sizeof(*s->held));
	cr_assert_not_null(s->held);
	start = lwt_ms();
	for (int i = 0; i < n; i++) {
		struct held *h = &s->held[i];

		cr_assert_eq(lw_lock_new(s->repo, 0, NULL, &h->lock), 0);
		cr_assert_eq(lw_lock_set_event_fn(h->lock, on_event, h), 0);
		cr_assert_eq(lw_ctx_on_done(lw_lock_ctx(h->lock), on_done, h), 0);
		cr_assert_eq(lw_lock_acquire_async(h->lock, on_acquired, h), 0);
	}
	for (int i = 0; i < n; i++) {
		cr_assert(lwt_wait_for(atomic_load(&s->held[i].acquired), 60000), "lock %d", i);
		cr_assert_eq(atomic_load(&s->held[i].err), 0, "lock %d", i);
	}
	cr_log_info("%d locks acquired in %lld ms", n, (long long)(lwt_ms() - start));
	cr_assert_eq(lwt_etcd_count(s->etcd, s->prefix), n);
}

static void drop(struct setup *s)
{
	for (int i = 0; i < s->n; i++)
		lw_lock_free(s->held[i].lock);
	lw_repo_unref(s->repo);
	lw_loop_free(s->loop);
	lwt_etcd_stop(s->etcd);
	free(s->held);
}

static int cmp64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/* The leader is killed while 1,000 locks are held: the requests move to
 * the other members (the ones sent to the dead leader are refused, those
 * at a follower wait for the election), and once there is a new leader
 * every lock is refreshed again; none is lost. */
CLUSTER_TEST(leader_killed, .timeout = 120)
{
	struct setup s;
	int *mid, leader, min_late = 1 << 30, failed = 0;
	int64_t gaps[1000];

	hold(&s, p, 1000);
	usleep(1500 * 1000);
	cr_expect_eq(lwt_etcd_watchers(s.etcd, -1), 1, "one watch for the 1,000 locks");
	leader = lwt_etcd_leader(s.etcd, 5000);
	cr_assert_geq(leader, 0, "a leader");
	for (int i = 0; i < s.n; i++)
		atomic_store(&s.held[i].max_gap, 0);
	lwt_etcd_kill(s.etcd, leader);
	usleep(3000 * 1000);
	mid = calloc((size_t)s.n, sizeof(*mid));
	for (int i = 0; i < s.n; i++)
		mid[i] = atomic_load(&s.held[i].refreshed);
	/* the stale timeout has passed since the kill when this ends: a lock
	 * that could not be refreshed after it would be lost by now */
	usleep(3000 * 1000);
	cr_assert_geq(lwt_etcd_leader(s.etcd, 5000), 0, "a new leader");
	for (int i = 0; i < s.n; i++) {
		struct held *h = &s.held[i];
		int late = atomic_load(&h->refreshed) - mid[i];

		cr_expect(!lw_ctx_done(lw_lock_ctx(h->lock)), "lock %d lost: %s", i,
			  lw_ctx_cause(lw_lock_ctx(h->lock)));
		min_late = late < min_late ? late : min_late;
		failed += atomic_load(&h->failed);
		gaps[i] = atomic_load(&h->max_gap);
	}
	qsort(gaps, (size_t)s.n, sizeof(gaps[0]), cmp64);
	fprintf(stderr, "etcd leader_killed (%s): no lock lost; longest wait for a refresh "
		"p50 %lld ms, p99 %lld ms, max %lld ms (deadline after 3500 ms); every lock "
		"refreshed >= %d times 3-6 s after the kill; %d failed refreshes retried\n",
		lw_engine_name(p->engine), (long long)(gaps[s.n / 2] / LW_MSEC(1)),
		(long long)(gaps[s.n * 99 / 100] / LW_MSEC(1)),
		(long long)(gaps[s.n - 1] / LW_MSEC(1)), min_late, failed);
	cr_expect_geq(min_late, 1, "refreshes went on after the election");
	cr_expect_eq(lwt_etcd_watchers(s.etcd, -1), 1, "still one watch after the kill");
	free(mid);
	drop(&s);
}

/* The member the repository's watch is on is killed: the locks are kept
 * (by keepalives to the others), the watch is made again on another member,
 * and a key deleted afterwards (which no keepalive notices: its lease
 * lives) ends its lock, and only that one, within WATCH_BOUND. */
#define WATCH_BOUND LW_MSEC(1500)

CLUSTER_TEST(watch_member_killed, .timeout = 120)
{
	struct setup s;
	int on = -1, watchers = 0;
	int64_t start, took;
	char id[65];
	struct lw_ctx *ctx;

	hold(&s, p, 10);
	cr_assert(lwt_wait_for(lwt_etcd_watchers(s.etcd, -1) == 1, 5000), "one watch");
	for (int i = 0; i < lwt_etcd_members(s.etcd); i++)
		if (lwt_etcd_watchers(s.etcd, i) == 1)
			on = i;
	cr_assert_geq(on, 0);
	lwt_etcd_kill(s.etcd, on);
	/* back-off from 100 ms; a new leader within about a second */
	cr_expect(lwt_wait_for((watchers = lwt_etcd_watchers(s.etcd, -1)) == 1, 10000),
		  "the watch is made again on another member (%d watches)", watchers);
	usleep(STALE / 1000);
	for (int i = 0; i < s.n; i++)
		cr_assert(!lw_ctx_done(lw_lock_ctx(s.held[i].lock)), "lock %d lost: %s", i,
			  lw_ctx_cause(lw_lock_ctx(s.held[i].lock)));
	cr_assert_eq(lw_lock_id(s.held[3].lock, id), 0);
	ctx = lw_lock_ctx(s.held[3].lock);
	start = lw__now_boot();
	lwt_etcd_delete(s.etcd, s.prefix, id);
	cr_assert(lwt_wait_for(lw_ctx_done(ctx), 10000), "the removal was never noticed");
	took = lw__ctx_done_at(ctx) - start;
	cr_expect_eq(lw_ctx_err(ctx), LW_CAUSE_REMOVED, "%s", lw_ctx_cause(ctx));
	cr_expect_leq(took, WATCH_BOUND, "noticed %lld ms after the removal",
		      (long long)(took / LW_MSEC(1)));
	fprintf(stderr, "etcd watch_member_killed (%s): a key deleted after the watch's "
		"member was killed noticed in %lld us\n", lw_engine_name(p->engine),
		(long long)(took / 1000));
	usleep(200 * 1000);
	for (int i = 0; i < s.n; i++)
		cr_expect(i == 3 || !lw_ctx_done(lw_lock_ctx(s.held[i].lock)), "lock %d lost: %s",
			  i, lw_ctx_cause(lw_lock_ctx(s.held[i].lock)));
	drop(&s);
}

/* Two of three members stop (SIGSTOP: they take connections and say
 * nothing): no refresh can succeed, and every context ends at its own
 * deadline, on time, with the cause. */
CLUSTER_TEST(quorum_lost, .timeout = 120)
{
	struct setup s;
	int64_t lat[100], stopped;
	int leader, other;

	hold(&s, p, 100);
	usleep(1200 * 1000);
	leader = lwt_etcd_leader(s.etcd, 5000);
	other = (leader + 1) % 3;
	stopped = lwt_ms();
	lwt_etcd_signal(s.etcd, leader, SIGSTOP);
	lwt_etcd_signal(s.etcd, other, SIGSTOP);
	for (int i = 0; i < s.n; i++) {
		struct held *h = &s.held[i];
		struct lw_ctx *ctx = lw_lock_ctx(h->lock);

		cr_assert(lwt_wait_for(atomic_load(&h->ended) != 0, 8000), "lock %d lives on", i);
		cr_expect_eq(lw_ctx_err(ctx), LW_CAUSE_DEADLINE, "lock %d: %s", i, lw_ctx_cause(ctx));
		lat[i] = atomic_load(&h->ended) - atomic_load(&h->deadline);
		cr_expect_geq(lat[i], 0, "lock %d ended %lld us before its deadline", i,
			      (long long)(-lat[i] / 1000));
	}
	qsort(lat, (size_t)s.n, sizeof(lat[0]), cmp64);
	fprintf(stderr, "etcd quorum_lost (%s): all %d contexts ended %lld ms after the stop; "
		"late after their deadlines by p50 %lld us, p99 %lld us, max %lld us\n",
		lw_engine_name(p->engine), s.n, (long long)(lwt_ms() - stopped),
		(long long)(lat[s.n / 2] / 1000), (long long)(lat[s.n * 99 / 100] / 1000),
		(long long)(lat[s.n - 1] / 1000));
	cr_expect_leq(lat[s.n - 1], LATENCY_BOUND, "max latency %lld us",
		      (long long)(lat[s.n - 1] / 1000));
	lwt_etcd_signal(s.etcd, leader, SIGCONT);
	lwt_etcd_signal(s.etcd, other, SIGCONT);
	drop(&s);
}

/* One case at a time: each brings three etcd members and its locks. */
ReportHook(PRE_ALL)(struct criterion_test_set *set)
{
	criterion_options.jobs = 1;
}
