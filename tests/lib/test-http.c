/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The rest: and dav: backends against a real nginx, on both engines: the
 * lock life cycle, TLS, basic auth, a server that is down, answers 500 for
 * a while, never answers or resets mid-answer, and bad replies.
 */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "http-test.h"

#define SHARED 0
#define EXCLUSIVE LW_LOCK_EXCLUSIVE

static bool file_exists(const char *path, const char *id)
{
	char p[512];
	struct stat st;

	snprintf(p, sizeof(p), "%s%slocks/%s", lwt_nginx_root(ng), path, id);
	return stat(p, &st) == 0;
}

/* ------------------------------------------------------------ life cycle */

LWT_PARAMS(http, lifecycle, LWT_CASES_BOTH)
ParameterizedTest(struct lwt_case *c, http, lifecycle, .init = lwt_nginx_setup,
		  .fini = lwt_nginx_teardown)
{
	struct lw_loop *loop = lwt_loop(c->engine);
	struct lw_repo *repo = lwt_repo(loop, lwt_nginx_url(ng, c->server, "/repo/"),
					LW_SEC(1), LW_SEC(4));
	struct lw_lock *a, *b, *x, *s;
	char id[65], prev[65];

	cr_assert_eq(lw_repo_init(repo), 0, "init: %s", lw_errmsg());
	cr_assert_eq(lwt_nginx_count_locks(ng, "/repo/"), 0);

	/* shared locks share; an exclusive one is refused, naming them */
	a = lwt_acquire(repo, SHARED);
	b = lwt_acquire(repo, SHARED);
	cr_assert_eq(lwt_nginx_count_locks(ng, "/repo/"), 2);
	cr_assert_eq(lwt_try_acquire(repo, EXCLUSIVE, &x), -LW_ELOCKED);
	cr_assert(strstr(lw_errmsg(), "shared lock"), "%s", lw_errmsg());
	cr_assert_eq(lwt_nginx_count_locks(ng, "/repo/"), 2, "the refused lock left a file");
	lwt_release(a);
	lwt_release(b);
	cr_assert_eq(lwt_nginx_count_locks(ng, "/repo/"), 0);

	/* an exclusive lock keeps shared ones out */
	x = lwt_acquire(repo, EXCLUSIVE);
	cr_assert_eq(lwt_try_acquire(repo, SHARED, &s), -LW_ELOCKED);
	cr_assert(strstr(lw_errmsg(), "exclusive lock"), "%s", lw_errmsg());

	/* each refresh writes a new file and deletes the old one */
	cr_assert_eq(lw_lock_id(x, prev), 0);
	for (int i = 0; i < 3; i++) {
		int64_t until = lwt_now() + LW_SEC(3);

		do {
			lwt_sleep(LW_MSEC(20));
			cr_assert_eq(lw_lock_id(x, id), 0);
		} while (strcmp(id, prev) == 0 && lwt_now() < until);
		cr_assert_str_neq(id, prev, "no refresh within 3 s");
		until = lwt_now() + LW_SEC(1);
		while ((file_exists("/repo/", prev) || lwt_nginx_count_locks(ng, "/repo/") != 1) &&
		       lwt_now() < until)
			lwt_sleep(LW_MSEC(10));
		cr_assert(!file_exists("/repo/", prev), "the old lock file is still there");
		cr_assert(file_exists("/repo/", id), "the new lock file is missing");
		cr_assert_eq(lwt_nginx_count_locks(ng, "/repo/"), 1);
		memcpy(prev, id, sizeof(id));
	}
	cr_assert(!lw_ctx_done(lw_lock_ctx(x)), "%s", lw_ctx_cause(lw_lock_ctx(x)));

	lwt_release(x);
	cr_assert_eq(lwt_nginx_count_locks(ng, "/repo/"), 0);
	lw_repo_unref(repo);
	lw_loop_free(loop);
}

/* ------------------------------------------------------------------- TLS */

LWT_PARAMS(http, tls, LWT_CASES_ENGINES)
ParameterizedTest(struct lwt_case *c, http, tls, .init = lwt_nginx_setup,
		  .fini = lwt_nginx_teardown)
{
	struct lw_loop *loop = lwt_loop(c->engine);
	const char *url = lwt_nginx_url(ng, LWT_DAV_TLS, "/tls/");
	struct lw_repo *repo = lwt_repo(loop, url, LW_SEC(1), LW_SEC(4));
	struct lw_repo *insecure = lwt_repo(loop, url, LW_SEC(1), LW_SEC(4));
	struct lw_lock *lock;

	/* our own CA is not the system's: verification refuses the server */
	cr_assert_eq(lwt_try_acquire(repo, SHARED, &lock), -LW_EBACKEND);
	cr_assert(strstr(lw_errmsg(), "certificate"), "%s", lw_errmsg());

	cr_assert_eq(lw_repo_set_tls_ca_file(repo, lwt_nginx_ca_file(ng)), 0);
	cr_assert_eq(lw_repo_init(repo), 0, "%s", lw_errmsg());
	lock = lwt_acquire(repo, EXCLUSIVE);
	cr_assert_eq(lwt_nginx_count_locks(ng, "/tls/"), 1);
	lwt_release(lock);

	cr_assert_eq(lw_repo_set_tls_insecure_skip_verify(insecure, true), 0);
	lock = lwt_acquire(insecure, EXCLUSIVE);
	lwt_release(lock);
	cr_assert_eq(lwt_nginx_count_locks(ng, "/tls/"), 0);

	lw_repo_unref(insecure);
	lw_repo_unref(repo);
	lw_loop_free(loop);
}

/* ------------------------------------------------------------ basic auth */

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char log_text[1 << 16];

static void capture(void *userdata, int priority, const char *msg)
{
	pthread_mutex_lock(&log_mu);
	if (strlen(log_text) + strlen(msg) + 2 < sizeof(log_text)) {
		strcat(log_text, msg);
		strcat(log_text, "\n");
	}
	pthread_mutex_unlock(&log_mu);
}

static bool logged(const char *needle)
{
	bool found;

	pthread_mutex_lock(&log_mu);
	found = strstr(log_text, needle) != NULL;
	pthread_mutex_unlock(&log_mu);
	return found;
}

LWT_PARAMS(http, auth, LWT_CASES_ENGINES)
ParameterizedTest(struct lwt_case *c, http, auth, .init = lwt_nginx_setup,
		  .fini = lwt_nginx_teardown)
{
	struct lw_loop *loop = lwt_loop(c->engine);
	int port = lwt_nginx_port(ng, LWT_DAV_AUTH);
	struct lw_repo *none, *right, *wrong, *env;
	struct lw_lock *lock;
	char url[256];

	lw_loop_set_log_fn(loop, capture, NULL);
	lw_loop_set_log_priority(loop, LOG_DEBUG);

	snprintf(url, sizeof(url), "dav:http://127.0.0.1:%d/auth/", port);
	none = lwt_repo(loop, url, LW_SEC(1), LW_SEC(4));
	cr_assert_eq(lwt_try_acquire(none, SHARED, &lock), -LW_EBACKEND);
	cr_assert(strstr(lw_errmsg(), "401 Unauthorized"), "%s", lw_errmsg());

	snprintf(url, sizeof(url), "dav:http://alice:Wr0ngPass@127.0.0.1:%d/auth/", port);
	wrong = lwt_repo(loop, url, LW_SEC(1), LW_SEC(4));
	cr_assert(strstr(lw_repo_url(wrong), "alice:***@"), "%s", lw_repo_url(wrong));
	cr_assert_eq(lwt_try_acquire(wrong, SHARED, &lock), -LW_EBACKEND);
	cr_assert(strstr(lw_errmsg(), "401"), "%s", lw_errmsg());
	cr_assert(!strstr(lw_errmsg(), "Wr0ngPass"), "%s", lw_errmsg());

	snprintf(url, sizeof(url), "dav:http://%s:%s@127.0.0.1:%d/auth/", LWT_AUTH_USER,
		 LWT_AUTH_PASSWORD, port);
	right = lwt_repo_init(loop, url, LW_SEC(1), LW_SEC(4));
	lock = lwt_acquire(right, SHARED);
	lwt_sleep(LW_MSEC(1200)); /* a refresh, with its log lines */
	lwt_release(lock);
	/* the loop reuses the easy handles that carried the password */
	cr_assert_eq(lwt_try_acquire(none, SHARED, &lock), -LW_EBACKEND);
	cr_assert(strstr(lw_errmsg(), "401 Unauthorized"), "%s", lw_errmsg());

	setenv("LOCKWATCH_USER", LWT_AUTH_USER, 1);
	setenv("LOCKWATCH_PASSWORD", LWT_AUTH_PASSWORD, 1);
	snprintf(url, sizeof(url), "dav:http://127.0.0.1:%d/auth/", port);
	env = lwt_repo(loop, url, LW_SEC(1), LW_SEC(4));
	lwt_release(lwt_acquire(env, EXCLUSIVE));
	unsetenv("LOCKWATCH_PASSWORD");

	cr_assert(logged("GET http://127.0.0.1"), "no debug lines were captured");
	cr_assert(!logged("Wr0ngPass"), "a password reached the log");
	cr_assert(!logged(LWT_AUTH_PASSWORD), "a password reached the log");
	cr_assert_eq(lwt_nginx_count_locks(ng, "/auth/"), 0);
	lw_repo_unref(env);
	lw_repo_unref(right);
	lw_repo_unref(wrong);
	lw_repo_unref(none);
	lw_loop_free(loop);
}

/* ------------------------------------------------------- a server down */

static int closed_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	cr_assert(fd >= 0);
	cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	close(fd);
	return ntohs(a.sin_port);
}

/* A server that comes up on the port as soon as the first attempt on it
 * was refused: a retry would reach it, and its backlog counts the retries.
 * The attempt's log line comes before the retry is decided
 * (lib/http/http.c, attempt_done): the listener is there in time. */
struct comeback {
	int port;
	atomic_int fd; /* the listener, -1 until the refusal */
};

static void comeback_log(void *userdata, int priority, const char *msg)
{
	struct comeback *cb = userdata;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(cb->port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd, on = 1;

	if (atomic_load(&cb->fd) >= 0 || !strstr(msg, "(attempt "))
		return;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) < 0 ||
	    bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 64) < 0) {
		fprintf(stderr, "server_down: cannot listen on port %d\n", cb->port);
		if (fd >= 0)
			close(fd);
		return;
	}
	atomic_store(&cb->fd, fd);
}

/* The connections waiting in FD's backlog. */
static int backlog(int fd)
{
	int n = 0, c;

	while ((c = accept(fd, NULL, NULL)) >= 0) {
		close(c);
		n++;
	}
	return n;
}

LWT_PARAMS(http, server_down, LWT_CASES_BOTH)
ParameterizedTest(struct lwt_case *c, http, server_down, .init = lwt_nginx_setup,
		  .fini = lwt_nginx_teardown)
{
	struct lw_loop *loop = lwt_loop(c->engine);
	struct comeback cb = { .port = closed_port(), .fd = -1 };
	int priority = lw_loop_get_log_priority(loop);
	struct lw_repo *nobody, *repo;
	struct lw_lock *lock;
	struct lw_ctx *ctx;
	char url[256];
	int64_t t0, deadline;

	/* nobody listens: a quick, clear failure, not retried */
	snprintf(url, sizeof(url), "%s:http://127.0.0.1:%d/repo/",
		 c->server == LWT_REST ? "rest" : "dav", cb.port);
	nobody = lwt_repo(loop, url, LW_SEC(1), LW_SEC(4));
	lw_loop_set_log_fn(loop, comeback_log, &cb);
	lw_loop_set_log_priority(loop, LOG_DEBUG);
	t0 = lwt_now();
	cr_assert_lt(lw_repo_list(nobody, NULL, NULL), 0);
	cr_assert(strstr(lw_errmsg(), "onnect"), "%s", lw_errmsg());
	cr_assert_lt(lwt_now() - t0, LW_SEC(1));
	lw_loop_set_log_priority(loop, priority);
	lw_loop_set_log_fn(loop, NULL, NULL);
	cr_assert_geq(atomic_load(&cb.fd), 0, "the refused attempt was logged");
	cr_assert_eq(backlog(atomic_load(&cb.fd)), 0,
		     "a refused connection is not retried (connections after it)");
	close(atomic_load(&cb.fd));

	/* the server goes away under a held lock: lost at its deadline,
	 * with the reason */
	repo = lwt_repo_init(loop, lwt_nginx_url(ng, c->server, "/repo/"), LW_SEC(1), LW_SEC(4));
	lock = lwt_acquire(repo, SHARED);
	ctx = lw_lock_ctx(lock);
	lwt_nginx_stop(ng);
	ng = NULL;
	deadline = lw_lock_deadline(lock);
	while (!lw_ctx_done(ctx) && lwt_now() < deadline + LW_SEC(1))
		lwt_sleep(LW_MSEC(10));
	cr_assert_eq(lw_ctx_err(ctx), LW_CAUSE_DEADLINE, "%s", lw_ctx_cause(ctx));
	cr_assert(strstr(lw_ctx_cause(ctx), "onnect"), "%s", lw_ctx_cause(ctx));
	lw_lock_free(lock);
	lw_repo_unref(repo);
	lw_repo_unref(nobody);
	lw_loop_free(loop);
}

/* ----------------------------------------------- 500s, then recovery */

struct events {
	atomic_int refreshed;
	atomic_int failed;
};

static void count_event(struct lw_lock *lock, const struct lw_event *ev, void *userdata)
{
	struct events *e = userdata;

	if (ev->type == LW_EVENT_REFRESHED)
		atomic_fetch_add(&e->refreshed, 1);
	if (ev->type == LW_EVENT_REFRESH_FAILED)
		atomic_fetch_add(&e->failed, 1);
}

LWT_PARAMS(http, recovers_from_500s, LWT_CASES_BOTH)
ParameterizedTest(struct lwt_case *c, http, recovers_from_500s, .init = lwt_nginx_setup,
		  .fini = lwt_nginx_teardown)
{
	struct lw_loop *loop = lwt_loop(c->engine);
	/* refreshability 4.5 s: 1.5 s of errors fit well inside it */
	struct lw_repo *repo = lwt_repo_init(loop, lwt_nginx_url(ng, c->server, "/repo/"),
					LW_SEC(1), LW_SEC(6));
	struct events ev = { 0 };
	struct lw_lock *lock;
	int before;

	cr_assert_eq(lw_lock_new(repo, EXCLUSIVE, NULL, &lock), 0);
	cr_assert_eq(lw_lock_set_event_fn(lock, count_event, &ev), 0);
	cr_assert_eq(lw_lock_acquire(lock), 0, "%s", lw_errmsg());

	lwt_nginx_fault(ng, "fail500", true);
	lwt_sleep(LW_MSEC(1500));
	before = atomic_load(&ev.refreshed);
	lwt_nginx_fault(ng, "fail500", false);
	lwt_sleep(LW_MSEC(2500));

	cr_assert_gt(lwt_nginx_log_count(ng, " 500 "), 0, "the fault did not happen");
	cr_assert_gt(atomic_load(&ev.refreshed), before, "no refresh after the errors");
	cr_assert(!lw_ctx_done(lw_lock_ctx(lock)), "%s", lw_ctx_cause(lw_lock_ctx(lock)));
	lwt_release(lock);
	cr_assert_eq(lwt_nginx_count_locks(ng, "/repo/"), 0);
	lw_repo_unref(repo);
	lw_loop_free(loop);
}

/* 500s for longer than the deadline: retried until it, then lost at it,
 * with the server's answer as the cause. */
LWT_PARAMS(http, lost_to_500s, LWT_CASES_BOTH)
ParameterizedTest(struct lwt_case *c, http, lost_to_500s, .init = lwt_nginx_setup,
		  .fini = lwt_nginx_teardown)
{
	struct lw_loop *loop = lwt_loop(c->engine);
	struct lw_repo *repo = lwt_repo_init(loop, lwt_nginx_url(ng, c->server, "/repo/"),
					LW_SEC(1), LW_SEC(4));
	struct events ev = { 0 };
	struct lw_lock *lock;
	struct lw_ctx *ctx;
	struct pollfd pfd = { .events = POLLIN };
	int64_t deadline, late;

	cr_assert_eq(lw_lock_new(repo, EXCLUSIVE, NULL, &lock), 0);
	cr_assert_eq(lw_lock_set_event_fn(lock, count_event, &ev), 0);
	cr_assert_eq(lw_lock_acquire(lock), 0, "%s", lw_errmsg());
	ctx = lw_lock_ctx(lock);
	pfd.fd = lw_ctx_fd(ctx);
	lwt_nginx_fault(ng, "fail500", true);
	/* a refresh answered before the switch may still move the deadline;
	 * once the lock is lost it reads 0, which is not the deadline it had */
	deadline = lw_lock_deadline(lock);
	while (poll(&pfd, 1, 1) == 0 && lwt_now() < deadline + LW_SEC(1)) {
		int64_t moved = lw_lock_deadline(lock);

		if (moved > deadline)
			deadline = moved;
	}
	late = lwt_now() - deadline;
	lwt_nginx_fault(ng, "fail500", false);
	cr_assert_eq(lw_ctx_err(ctx), LW_CAUSE_DEADLINE, "%s", lw_ctx_cause(ctx));
	cr_assert(strstr(lw_ctx_cause(ctx), "500 Internal Server Error"), "%s",
		  lw_ctx_cause(ctx));
	cr_assert_geq(atomic_load(&ev.failed), 2, "the failures were retried");
	cr_assert_geq(late, 0);
	cr_assert_lt(late, LW_MSEC(100), "cancelled %lld us after the deadline",
		     (long long)late / 1000);
	lwt_release(lock);
	cr_assert_eq(lwt_nginx_count_locks(ng, "/repo/"), 0);
	lw_repo_unref(repo);
	lw_loop_free(loop);
}

/* ------------------------------------------------- servers that misbehave */

/* A fault injector, not a server: accepts, reads a request, sends the start
 * of an answer and resets the connection. */
struct resetter {
	int fd;
	int port;
	atomic_bool stop;
	atomic_int connections;
	pthread_t thread;
};

static void *reset_main(void *arg)
{
	static const char partial[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
				      "Content-Length: 1000\r\n\r\n[{\"name\":\"00112233";
	struct resetter *rs = arg;

	while (!atomic_load(&rs->stop)) {
		struct pollfd p = { .fd = rs->fd, .events = POLLIN };
		struct linger lg = { .l_onoff = 1, .l_linger = 0 };
		char buf[4096];
		int c;

		if (poll(&p, 1, 50) <= 0)
			continue;
		c = accept(rs->fd, NULL, NULL);
		if (c < 0)
			continue;
		atomic_fetch_add(&rs->connections, 1);
		(void)!read(c, buf, sizeof(buf));
		(void)!write(c, partial, sizeof(partial) - 1);
		setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		close(c);
	}
	return NULL;
}

static int listener(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cr_assert(fd >= 0);
	cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(listen(fd, 64), 0);
	return fd;
}

static int port_of(int fd)
{
	struct sockaddr_in a;
	socklen_t len = sizeof(a);

	cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	return ntohs(a.sin_port);
}

LWT_PARAMS(http, reset_mid_answer, LWT_CASES_ENGINES)
ParameterizedTest(struct lwt_case *c, http, reset_mid_answer)
{
	struct lw_loop *loop = lwt_loop(c->engine);
	struct resetter rs = { .fd = listener() };
	struct lw_repo *repo;
	char url[128];

	rs.port = port_of(rs.fd);
	cr_assert_eq(pthread_create(&rs.thread, NULL, reset_main, &rs), 0);
	snprintf(url, sizeof(url), "dav:http://127.0.0.1:%d/repo/", rs.port);
	repo = lwt_repo(loop, url, LW_SEC(1), LW_SEC(4));

	cr_assert_lt(lw_repo_list(repo, NULL, NULL), 0);
	cr_assert(strstr(lw_errmsg(), "reset") || strstr(lw_errmsg(), "closed"),
		  "%s", lw_errmsg());
	cr_assert(strstr(lw_errmsg(), "attempts"), "%s", lw_errmsg());
	cr_assert_gt(atomic_load(&rs.connections), 1, "a reset is retried");

	atomic_store(&rs.stop, true);
	pthread_join(rs.thread, NULL);
	close(rs.fd);
	lw_repo_unref(repo);
	lw_loop_free(loop);
}

LWT_PARAMS(http, never_answers, LWT_CASES_ENGINES)
ParameterizedTest(struct lwt_case *c, http, never_answers)
{
	struct lw_loop *loop = lwt_loop(c->engine);
	int fd = listener(); /* connections wait in its backlog for ever */
	struct lw_repo *repo;
	char url[128];
	int64_t t0, took;

	snprintf(url, sizeof(url), "rest:http://127.0.0.1:%d/repo/", port_of(fd));
	repo = lwt_repo(loop, url, LW_SEC(1), LW_SEC(4));
	cr_assert_eq(lw_repo_set_op_timeout(repo, LW_SEC(1)), 0);

	t0 = lwt_now();
	cr_assert_lt(lw_repo_list(repo, NULL, NULL), 0);
	took = lwt_now() - t0;
	cr_assert(strstr(lw_errmsg(), "timed out"), "%s", lw_errmsg());
	cr_assert_geq(took, LW_MSEC(950), "gave up before its deadline");
	cr_assert_lt(took, LW_MSEC(1500), "held past its deadline");

	close(fd);
	lw_repo_unref(repo);
	lw_loop_free(loop);
}

/* ------------------------------------------------------------ bad replies */

static int listing_error(struct lw_repo *repo, const char *expect)
{
	int r = lw_repo_list(repo, NULL, NULL);

	cr_assert_lt(r, 0, "a bad listing was accepted (%s)", expect);
	cr_assert(strstr(lw_errmsg(), expect), "\"%s\" does not say \"%s\"", lw_errmsg(), expect);
	cr_assert(!strchr(lw_errmsg(), '\n'));
	return r;
}

static struct lw_repo *fault_repo(struct lw_loop *loop, const char *path)
{
	return lwt_repo(loop, lwt_nginx_url(ng, LWT_DAV, path), LW_SEC(1), LW_SEC(4));
}

static int count_info(const struct lw_lock_info *info, void *userdata)
{
	(*(int *)userdata)++;
	return 0;
}

LWT_PARAMS(http, bad_replies, LWT_CASES_ENGINES)
ParameterizedTest(struct lwt_case *c, http, bad_replies, .init = lwt_nginx_setup,
		  .fini = lwt_nginx_teardown)
{
	struct lw_loop *loop = lwt_loop(c->engine);
	struct lw_repo *repo;
	struct lw_lock *lock;
	int64_t t0;
	int n = 0;

	repo = fault_repo(loop, "/html502/");
	listing_error(repo, "502 Bad Gateway");
	/* the first request that meets it (since restic repositories are
	 * detected, the GET of config) is retried, then given up */
	n = (int)lwt_nginx_log_count(ng, "/html502/");
	cr_assert(n >= 2 && n <= 5, "a 502 is retried a few times, not %d", n);
	n = 0;
	lw_repo_unref(repo);

	repo = fault_repo(loop, "/notjson/");
	listing_error(repo, "an HTML page, not a JSON listing");
	lw_repo_unref(repo);

	repo = fault_repo(loop, "/truncated/");
	listing_error(repo, "truncated JSON listing");
	lw_repo_unref(repo);

	/* refused from its Content-Length, before the body is read */
	repo = fault_repo(loop, "/big/");
	t0 = lwt_now();
	listing_error(repo, "refused");
	cr_assert_lt(lwt_now() - t0, LW_SEC(1));
	lw_repo_unref(repo);

	/* no length: refused once too much has arrived */
	repo = fault_repo(loop, "/bigchunked/");
	listing_error(repo, "refused");
	lw_repo_unref(repo);

	/* names with '/' and '..' are not lock files: nothing else is asked
	 * for, and locks work next to them */
	repo = fault_repo(loop, "/evil/");
	cr_assert_eq(lw_repo_list(repo, count_info, &n), 0, "%s", lw_errmsg());
	cr_assert_eq(n, 0);
	cr_assert_eq(lw_repo_init(repo), 0, "%s", lw_errmsg());
	lock = lwt_acquire(repo, EXCLUSIVE);
	lwt_release(lock);
	cr_assert_eq(lwt_nginx_count_locks(ng, "/evil/"), 0);
	cr_assert_eq(lwt_nginx_log_count(ng, ".."), 0, "a name from the listing was used");
	cr_assert_eq(lwt_nginx_log_count(ng, "locks/a/b"), 0, "a name from the listing was used");
	cr_assert_eq(lwt_nginx_log_count(ng, "AAAA"), 0, "a name from the listing was used");
	lw_repo_unref(repo);

	lw_loop_free(loop);
}
