/* SPDX-License-Identifier: BSD-2-Clause */
/* What the HTTP backend tests share: a real nginx per test (and, for the
 * cases that ask, a WebDAV server of tests/helpers/webdav.c), loops on both
 * engines, and small helpers around locks. */
#pragma once

#include "test.h"
#include <criterion/hooks.h>
#include <criterion/options.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <lockwatch.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "runenv.h"
#include "nginx.h"
#include "webdav.h"

struct lwt_case {
	enum lw_engine engine;
	enum lwt_server server; /* on nginx, unless WEBDAV says otherwise */
	int webdav;             /* 1 + enum lwt_webdav_kind: dav: on that server */
};

/* Every loop test runs on both engines; HTTP ones on both protocols. */
#define LWT_CASES_ENGINES                                                 \
	{ LW_ENGINE_URING, LWT_DAV }, { LW_ENGINE_EPOLL, LWT_DAV }
#define LWT_CASES_BOTH                                                    \
	{ LW_ENGINE_URING, LWT_DAV }, { LW_ENGINE_URING, LWT_REST },      \
	{ LW_ENGINE_EPOLL, LWT_DAV }, { LW_ENGINE_EPOLL, LWT_REST }

/* dav: on Apache, nginx + dav-ext and rclone, both engines */
#define LWT_WEBDAV_CASE(engine, kind) { engine, LWT_DAV, 1 + (kind) }
#define LWT_CASES_WEBDAV                                                  \
	LWT_WEBDAV_CASE(LW_ENGINE_URING, LWT_WEBDAV_APACHE),              \
	LWT_WEBDAV_CASE(LW_ENGINE_EPOLL, LWT_WEBDAV_APACHE),              \
	LWT_WEBDAV_CASE(LW_ENGINE_URING, LWT_WEBDAV_NGINX),               \
	LWT_WEBDAV_CASE(LW_ENGINE_EPOLL, LWT_WEBDAV_NGINX),               \
	LWT_WEBDAV_CASE(LW_ENGINE_URING, LWT_WEBDAV_RCLONE),              \
	LWT_WEBDAV_CASE(LW_ENGINE_EPOLL, LWT_WEBDAV_RCLONE)

#define LWT_PARAMS(suite, name, ...)                                      \
	ParameterizedTestParameters(suite, name)                          \
	{                                                                 \
		static struct lwt_case cases[] = { __VA_ARGS__ };         \
		return cr_make_param_array(struct lwt_case, cases,        \
			lwt_keep_wanted(cases, sizeof(cases) / sizeof(cases[0]), \
					sizeof(cases[0]),                 \
					offsetof(struct lwt_case, engine))); \
	}

static struct lwt_nginx *ng;
static struct lwt_webdav *wd;

static inline void lwt_nginx_setup(void)
{
	ng = lwt_nginx_start();
	cr_assert(ng, "nginx did not start");
}

static inline void lwt_nginx_teardown(void)
{
	lwt_nginx_stop(ng);
	ng = NULL;
	lwt_webdav_stop(wd);
	wd = NULL;
}

/* The case's server: nginx's (lwt_nginx_setup started it), or its WebDAV
 * server, which this starts (lwt_nginx_teardown stops it). */
static inline void lwt_server_start(const struct lwt_case *c)
{
	if (!c->webdav)
		return;
	wd = lwt_webdav_start(c->webdav - 1);
	cr_assert(wd, "%s did not start", lwt_webdav_name(c->webdav - 1));
}

static inline const char *lwt_server_name(const struct lwt_case *c)
{
	if (c->webdav)
		return lwt_webdav_name(c->webdav - 1);
	return c->server == LWT_REST ? "rest" : "dav";
}

/* "dav:http://127.0.0.1:PORT" PATH; static, as lwt_nginx_url's */
static inline const char *lwt_server_url(const struct lwt_case *c, const char *path)
{
	return c->webdav ? lwt_webdav_url(wd, path) : lwt_nginx_url(ng, c->server, path);
}

static inline int lwt_server_port(const struct lwt_case *c)
{
	return c->webdav ? lwt_webdav_port(wd) : lwt_nginx_port(ng, c->server);
}

/* SIG to every process of the server */
static inline void lwt_server_signal(const struct lwt_case *c, int sig)
{
	if (c->webdav)
		lwt_webdav_signal(wd, sig);
	else
		lwt_nginx_signal(ng, sig);
}

/* Lock files in PATH's locks/ on the server's disk; -1 without locks/. */
static inline int lwt_server_count_locks(const struct lwt_case *c, const char *path)
{
	return lwt_count_locks_in(c->webdav ? lwt_webdav_root(wd) : lwt_nginx_root(ng), path);
}

static inline int64_t lwt_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_BOOTTIME, &ts);
	return (int64_t)ts.tv_sec * LW_NSEC_PER_SEC + ts.tv_nsec;
}

static inline void lwt_sleep(int64_t ns)
{
	struct timespec ts = { ns / LW_NSEC_PER_SEC, ns % LW_NSEC_PER_SEC };

	nanosleep(&ts, NULL);
}

/* A started loop on ENGINE (lwt_engine_case: where io_uring cannot start,
 * a uring case fails unless allowed to skip). */
static inline struct lw_loop *lwt_loop(enum lw_engine engine)
{
	struct lw_loop *loop;
	int r;

	lwt_engine_case(engine);
	r = lw_loop_new(engine, &loop);
	cr_assert_eq(r, 0, "%s", lw_errmsg());
	cr_assert_eq(lw_loop_start(loop), 0);
	return loop;
}

/* A repository refreshed every INTERVAL, with quick checks and a 5 s
 * bound on operations outside a lock's deadline (lwt_op_timeout). */
static inline struct lw_repo *lwt_repo(struct lw_loop *loop, const char *url,
				       int64_t interval, int64_t stale)
{
	struct lw_repo *repo;

	cr_assert_eq(lw_repo_new(loop, url, &repo), 0, "%s: %s", url, lw_errmsg());
	cr_assert_eq(lw_repo_set_timing(repo, interval, stale), 0, "%s", lw_errmsg());
	lw_repo_set_recheck_delay(repo, LW_MSEC(10));
	lw_repo_set_check_retry(repo, LW_MSEC(10));
	lw_repo_set_op_timeout(repo, lwt_op_timeout());
	return repo;
}

/* The same, initialised. */
static inline struct lw_repo *lwt_repo_init(struct lw_loop *loop, const char *url,
					    int64_t interval, int64_t stale)
{
	struct lw_repo *repo = lwt_repo(loop, url, interval, stale);

	cr_assert_eq(lw_repo_init(repo), 0, "init %s: %s", url, lw_errmsg());
	return repo;
}

/* Tries to acquire; returns the result, and the lock in *LOCKP on success. */
static inline int lwt_try_acquire(struct lw_repo *repo, unsigned flags,
				  struct lw_lock **lockp)
{
	struct lw_lock *lock;
	int r;

	cr_assert_eq(lw_lock_new(repo, flags, "test", &lock), 0);
	r = lw_lock_acquire(lock);
	if (r < 0) {
		lw_lock_free(lock);
		lock = NULL;
	}
	*lockp = lock;
	return r;
}

static inline struct lw_lock *lwt_acquire(struct lw_repo *repo, unsigned flags)
{
	struct lw_lock *lock;
	int r = lwt_try_acquire(repo, flags, &lock);

	cr_assert_eq(r, 0, "acquire: %s", lw_errmsg());
	return lock;
}

/* Releases LOCK (asserting success) and frees it. */
static inline void lwt_release(struct lw_lock *lock)
{
	cr_assert_eq(lw_lock_release(lock), 0, "release: %s", lw_errmsg());
	lw_lock_free(lock);
}

/* Runs the binary's tests one at a time (a hook, not a main of our own:
 * Criterion's workers re-enter main): their timing bounds assume the
 * machine is not also busy with their siblings. */
#define LWT_SERIAL                                                  \
	ReportHook(PRE_ALL)(struct criterion_test_set *set)         \
	{                                                           \
		criterion_options.jobs = 1;                         \
	}
