/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * What only the etcd: backend does, against the test binary's real
 * three-member cluster: locks kept alive by a lease (no new key), fencing
 * tokens, server-side expiry of a crashed or paused holder, members that
 * refuse or do not answer, keys and values nobody should have put there,
 * a server that is no etcd, and the command end to end.  (The conflict
 * and refresh suites run over etcd: too, through lwtest's matrix.)
 */
#include "config.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include "testing.h"
#include "clitest.h"
#include "etcd.h"
#include "lwtest.h"
#include "nginx.h"

#define REFRESH LW_SEC(1)
#define STALE LW_SEC(3)

#define ETCD_TEST(name, ...) LWT_ETCD_TEST(etcd, name, __VA_ARGS__)

struct events {
	atomic_int refreshed;
	atomic_int lost;
};

static void count(struct lw_lock *lock, const struct lw_event *ev, void *userdata)
{
	struct events *e = userdata;

	if (ev->type == LW_EVENT_REFRESHED)
		atomic_fetch_add(&e->refreshed, 1);
	else if (ev->type == LW_EVENT_LOST)
		atomic_fetch_add(&e->lost, 1);
}

/* The TTL the cluster has left for LEASE, -1 once it is gone. */
static int64_t lease_ttl(const struct lwt *t, int64_t lease)
{
	char body[64], *out;
	int64_t ttl;
	const char *p;

	snprintf(body, sizeof(body), "{\"ID\":\"%" PRId64 "\"}", lease);
	cr_assert_eq(lwt_etcd_post(t->etcd, "/v3/lease/timetolive", body, &out), 200);
	p = strstr(out, "\"TTL\":\"");
	ttl = p ? strtoll(p + 7, NULL, 10) : 0;
	free(out);
	return ttl;
}

/* A refresh renews the lease and nothing else: the key, its id and its
 * fencing token stay; release revokes the lease. */
ETCD_TEST(keepalive_keeps_the_key, .timeout = 30)
{
	struct events ev = { 0 };
	char first[65], id[65];
	int64_t revision, lease;
	struct lw_lock *lock;
	struct lwt t;

	lwt_start(&t, p, NULL, REFRESH, STALE);
	cr_assert_eq(lw_lock_new(t.repo, LW_LOCK_EXCLUSIVE, "keepalive", &lock), 0);
	cr_assert_eq(lw_lock_set_event_fn(lock, count, &ev), 0);
	cr_expect_eq(lw_lock_fencing_token(lock), 0, "no token before acquire");
	cr_assert_eq(lw_lock_acquire(lock), 0, "%s", lw_errmsg());
	cr_assert_eq(lw_lock_id(lock, first), 0);
	cr_assert(lwt_etcd_get(t.etcd, t.prefix, first, &revision, &lease));
	cr_expect_eq(lw_lock_fencing_token(lock), revision, "the token is the key's create revision");
	cr_expect_gt(lease, 0, "the key lives by a lease");
	cr_expect_geq(lease_ttl(&t, lease), 2, "with the stale timeout as its TTL");
	for (int i = 0; i < 110; i++) {
		usleep(50 * 1000);
		cr_assert(!lw_ctx_done(lw_lock_ctx(lock)), "%s", lw_ctx_cause(lw_lock_ctx(lock)));
		cr_assert_eq(lw_lock_id(lock, id), 0);
		cr_assert_str_eq(id, first, "a refresh makes no new key");
	}
	cr_expect_geq(atomic_load(&ev.refreshed), 4, "refreshed %d times in 5.5 s",
		      atomic_load(&ev.refreshed));
	cr_expect_eq(lwt_count(&t), 1);
	cr_expect(lwt_etcd_get(t.etcd, t.prefix, first, &revision, NULL));
	cr_expect_eq(lw_lock_fencing_token(lock), revision, "the key was never rewritten");
	cr_expect_gt(lw_lock_deadline(lock), lw__now_boot());
	cr_assert_eq(lw_lock_release(lock), 0);
	cr_expect_eq(lwt_count(&t), 0);
	cr_expect_eq(lease_ttl(&t, lease), -1, "release revoked the lease");
	cr_expect_neq(lw_lock_fencing_token(lock), 0, "the token stays after release");
	lw_lock_free(lock);
	lwt_stop(&t);
}

/* Every lock taken later has a larger token; files have none. */
ETCD_TEST(fencing_tokens_grow, .timeout = 30)
{
	struct lwt t, local;
	struct lw_lock *a, *b, *f;
	struct lwt_param lp = { p->engine, LWT_BE_LOCAL };
	int64_t ta, tb;

	lwt_start(&t, p, NULL, REFRESH, STALE);
	a = lwt_lock(t.repo, LW_LOCK_EXCLUSIVE, 0);
	ta = lw_lock_fencing_token(a);
	cr_assert_gt(ta, 0);
	cr_assert_eq(lw_lock_release(a), 0);
	b = lwt_lock(t.repo, LW_LOCK_EXCLUSIVE, 0);
	tb = lw_lock_fencing_token(b);
	cr_expect_gt(tb, ta, "%" PRId64 " after %" PRId64, tb, ta);
	lw_lock_free(b);
	lw_lock_free(a);
	lwt_stop(&t);

	lwt_start(&local, &lp, NULL, REFRESH, STALE);
	f = lwt_lock(local.repo, 0, 0);
	cr_expect_eq(lw_lock_fencing_token(f), 0, "a lock file has no token");
	lw_lock_free(f);
	lwt_stop(&local);
}

/* A child that holds a lock, then does what CMD says: 'k' kill itself
 * without releasing, 'w' wait until its context ends and report why.
 * It writes its token first. */
static pid_t holder(const struct lwt *t, const struct lwt_param *p, int fds[2], char cmd)
{
	pid_t pid;

	cr_assert_eq(pipe(fds), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct lw_loop *loop;
		struct lw_repo *repo;
		struct lw_lock *lock;
		struct pollfd pf;
		int64_t token;
		int cause;

		close(fds[0]);
		if (lw_loop_new(p->engine, &loop) < 0 || lw_loop_start(loop) < 0 ||
		    lw_repo_new(loop, t->url, &repo) < 0 ||
		    lw_repo_set_timing(repo, REFRESH, STALE) < 0 ||
		    lw_repo_set_recheck_delay(repo, LW_MSEC(50)) < 0 ||
		    lw_lock_new(repo, LW_LOCK_EXCLUSIVE, "child", &lock) < 0 ||
		    lw_lock_acquire(lock) < 0)
			_exit(1);
		token = lw_lock_fencing_token(lock);
		(void)!write(fds[1], &token, sizeof(token));
		if (cmd == 'k')
			raise(SIGKILL);
		pf = (struct pollfd){ .fd = lw_ctx_fd(lw_lock_ctx(lock)), .events = POLLIN };
		poll(&pf, 1, 30000);
		cause = lw_ctx_err(lw_lock_ctx(lock));
		(void)!write(fds[1], &cause, sizeof(cause));
		lw_lock_free(lock);
		lw_repo_unref(repo);
		lw_loop_free(loop);
		_exit(0);
	}
	close(fds[1]);
	return pid;
}

/* A holder that dies without a word leaves nothing behind: the server
 * lets its lease expire, a TTL after its last keepalive, and the key goes
 * with it.  (On this host its dead pid makes it stale at once: with
 * stale-lock removal off, only the server's expiry frees the lock.) */
ETCD_TEST(crashed_holder_leaves_nothing, .timeout = 30)
{
	struct lwt t;
	struct lw_lock *l;
	int fds[2], status;
	int64_t token, died, gone;
	pid_t pid;

	lwt_start(&t, p, NULL, REFRESH, STALE);
	cr_assert_eq(lw_repo_set_remove_stale(t.repo, false), 0);
	pid = holder(&t, p, fds, 'k');
	cr_assert_eq(read(fds[0], &token, sizeof(token)), sizeof(token), "the child holds the lock");
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	died = lwt_ms();
	cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	cr_expect_eq(lwt_count(&t), 1, "its key outlives it for a while");
	l = lwt_lock(t.repo, 0, -LW_ELOCKED);
	cr_expect(strstr(lw_errmsg(), "purpose: child"), "%s", lw_errmsg());
	lw_lock_free(l);
	cr_assert(lwt_wait_for(lwt_count(&t) == 0, 8000), "the server removed the lock");
	gone = lwt_ms() - died;
	/* the lease was granted at most a recheck delay before the child
	 * died, with a 3 s TTL */
	cr_expect_geq(gone, 1500, "the key went %lld ms after the holder: too soon", (long long)gone);
	cr_expect_leq(gone, 5000, "the key went %lld ms after the holder", (long long)gone);
	l = lwt_lock(t.repo, LW_LOCK_EXCLUSIVE, 0);
	cr_expect_gt(lw_lock_fencing_token(l), token);
	lw_lock_free(l);
	close(fds[0]);
	lwt_stop(&t);
}

/* The gap a deadline alone cannot close: a holder paused (SIGSTOP) past
 * its TTL loses its lock on the server, another holder takes it with a
 * larger fencing token, and the first is cancelled the moment it resumes. */
ETCD_TEST(paused_holder_is_fenced, .timeout = 40)
{
	struct lwt t;
	struct lw_lock *l;
	int fds[2], status, cause;
	int64_t token, resumed, told;
	pid_t pid;
	char id[65];

	lwt_start(&t, p, NULL, REFRESH, STALE);
	pid = holder(&t, p, fds, 'w');
	cr_assert_eq(read(fds[0], &token, sizeof(token)), sizeof(token), "the child holds the lock");
	cr_assert_gt(token, 0);
	kill(pid, SIGSTOP);
	cr_assert(lwt_wait_for(lwt_count(&t) == 0, 8000), "the lease expired on the server");
	l = lwt_lock(t.repo, LW_LOCK_EXCLUSIVE, 0);
	cr_expect_gt(lw_lock_fencing_token(l), token, "the new holder's token is larger");
	kill(pid, SIGCONT);
	resumed = lwt_ms();
	cr_assert_eq(read(fds[0], &cause, sizeof(cause)), sizeof(cause));
	told = lwt_ms() - resumed;
	cr_expect(cause == LW_CAUSE_DEADLINE || cause == LW_CAUSE_REMOVED, "cause %d", cause);
	cr_expect_lt(told, 1000, "the paused holder learnt it %lld ms after resuming",
		     (long long)told);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	/* the first holder's cleanup (its dead lease) left the new lock alone */
	cr_assert_eq(lw_lock_id(l, id), 0);
	cr_expect(lwt_exists(&t, id));
	cr_expect(!lw_ctx_done(lw_lock_ctx(l)));
	lw_lock_free(l);
	close(fds[0]);
	lwt_stop(&t);
}

/* On etcd a record's time does not age (a refresh does not rewrite it):
 * an hour-old record of another host is live as long as its key is. */
ETCD_TEST(old_record_is_live, .timeout = 30)
{
	struct lw__record rec = lwt_record(true);
	struct lwt t;
	struct lw_lock *l;
	char id[65];

	rec.time -= LW_SEC(3600);
	lwt_start(&t, p, NULL, REFRESH, STALE);
	lwt_plant(&t, &rec, id);
	l = lwt_lock(t.repo, 0, -LW_ELOCKED);
	cr_expect(strstr(lw_errmsg(), "alice@otherhost"), "%s", lw_errmsg());
	lw_lock_free(l);
	cr_expect(lwt_exists(&t, id), "not removed as stale");
	lwt_stop(&t);
}

/* A lease that holds another key besides one in locks/ is not ours to
 * revoke: unlock deletes the key in locks/ alone. */
ETCD_TEST(unlock_spares_a_foreign_lease, .timeout = 30)
{
	struct lw__record rec = lwt_record(false);
	uint8_t buf[LW_RECORD_MAX];
	char key[128], other[128], *k1, *k2, *v, body[2048], *out;
	int len = lw__record_encode(&rec, buf, sizeof(buf));
	int64_t lease;
	struct lwt t;
	struct lw__id rid;
	char id[65];

	lwt_start(&t, p, NULL, REFRESH, STALE);
	cr_assert_eq(lwt_etcd_post(t.etcd, "/v3/lease/grant", "{\"TTL\":\"60\"}", &out), 200);
	lease = strtoll(strstr(out, "\"ID\":\"") + 6, NULL, 10);
	free(out);
	cr_assert_eq(lw__id_random(&rid), 0);
	lw__id_hex(&rid, id);
	snprintf(key, sizeof(key), "%s/locks/%s", t.prefix, id);
	snprintf(other, sizeof(other), "%s/elsewhere", t.prefix);
	k1 = malloc(lw__base64_len(strlen(key)) + 1);
	k2 = malloc(lw__base64_len(strlen(other)) + 1);
	v = malloc(lw__base64_len((size_t)len) + 1);
	lw__base64_encode(key, strlen(key), k1);
	lw__base64_encode(other, strlen(other), k2);
	lw__base64_encode(buf, (size_t)len, v);
	snprintf(body, sizeof(body), "{\"key\":\"%s\",\"value\":\"%s\",\"lease\":\"%" PRId64 "\"}",
		 k1, v, lease);
	cr_assert_eq(lwt_etcd_post(t.etcd, "/v3/kv/put", body, NULL), 200);
	snprintf(body, sizeof(body), "{\"key\":\"%s\",\"value\":\"%s\",\"lease\":\"%" PRId64 "\"}",
		 k2, v, lease);
	cr_assert_eq(lwt_etcd_post(t.etcd, "/v3/kv/put", body, NULL), 200);
	cr_expect_eq(lw_repo_unlock(t.repo, LW_UNLOCK_ALL, NULL, NULL), 1, "%s", lw_errmsg());
	cr_expect(!lwt_exists(&t, id), "the lock's key is gone");
	snprintf(body, sizeof(body), "{\"key\":\"%s\",\"count_only\":true}", k2);
	cr_assert_eq(lwt_etcd_post(t.etcd, "/v3/kv/range", body, &out), 200);
	cr_expect(strstr(out, "\"count\":\"1\""), "the other key is still there: %s", out);
	free(out);
	cr_expect_gt(lease_ttl(&t, lease), 0, "and so is its lease");
	snprintf(body, sizeof(body), "{\"ID\":\"%" PRId64 "\"}", lease);
	lwt_etcd_post(t.etcd, "/v3/lease/revoke", body, NULL);
	free(v);
	free(k2);
	free(k1);
	lwt_stop(&t);
}

/* Keys beside and under locks/ that are no lock, and a value far larger
 * than a record: ignored, or blocking like a foreign file; nothing
 * crashes, nothing is removed that is not ours. */
ETCD_TEST(odd_keys_and_values, .timeout = 30)
{
	static char big[200 << 10];
	struct lwt t;
	struct lw_lock *l;
	char id[65];

	lwt_start(&t, p, NULL, REFRESH, STALE);
	lwt_etcd_put(t.etcd, t.prefix, "README", "not a lock", 10);
	lwt_etcd_put(t.etcd, t.prefix, "../escape", "x", 1);
	lwt_etcd_put(t.etcd, t.prefix, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		     "x", 1);
	cr_assert_eq(lwt_count(&t), 3);
	l = lwt_lock(t.repo, LW_LOCK_EXCLUSIVE, 0);
	lw_lock_free(l);
	cr_expect_eq(lw_repo_list(t.repo, NULL, NULL), 0);
	cr_expect_eq(lw_repo_unlock(t.repo, LW_UNLOCK_ALL, NULL, NULL), 0, "no lock to remove");
	cr_expect_eq(lwt_count(&t), 3, "and nothing removed");

	memset(big, 0x8a, sizeof(big));
	lwt_plant_bytes(&t, big, sizeof(big), id);
	l = lwt_lock(t.repo, 0, -LW_ELOCKED);
	cr_expect(strstr(lw_errmsg(), "larger than 4096 bytes"), "%s", lw_errmsg());
	lw_lock_free(l);
	cr_expect(lwt_exists(&t, id), "a foreign value is never removed");
	cr_expect_eq(lw_repo_list(t.repo, NULL, NULL), 0);
	lwt_stop(&t);
}

/* A URL whose server is no etcd (here nginx, answering with its HTML
 * error pages): a clear error that says so, and nothing else happens. */
ETCD_TEST(not_an_etcd_server, .timeout = 30)
{
	struct lw_loop *loop;
	struct lw_repo *repo;
	struct lw_lock *l;
	struct lwt_nginx *ng = lwt_nginx_start();
	char url[128];

	cr_assert_not_null(ng);
	snprintf(url, sizeof(url), "etcd:http://127.0.0.1:%d/p", lwt_nginx_port(ng, LWT_DAV));
	lwt_engine_case(p->engine);
	cr_assert_eq(lw_loop_new(p->engine, &loop), 0);
	cr_assert_eq(lw_loop_start(loop), 0);
	cr_assert_eq(lw_repo_new(loop, url, &repo), 0);
	cr_assert_eq(lw_repo_set_check_retry(repo, LW_MSEC(10)), 0);
	cr_expect_lt(lw_repo_init(repo), 0);
	cr_expect(strstr(lw_errmsg(), "not an etcd v3 gateway"), "%s", lw_errmsg());
	cr_assert_eq(lw_lock_new(repo, 0, NULL, &l), 0);
	cr_expect_eq(lw_lock_acquire(l), -LW_EBACKEND);
	cr_expect(strstr(lw_errmsg(), "etcd list locks/ on 127.0.0.1:"), "%s", lw_errmsg());
	lw_lock_free(l);
	lw_repo_unref(repo);
	lw_loop_free(loop);
	lwt_nginx_stop(ng);
}

/* A listening socket that never answers: a member that took the
 * connection and hangs. */
static int silent_member(int *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cr_assert_geq(fd, 0);
	cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(listen(fd, 64), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	*port = ntohs(a.sin_port);
	return fd;
}

/* Members first in the URL that refuse connections or never answer: each
 * request moves on to the next member, within its deadline, and later
 * requests go to the member that answered. */
static void failover(const struct lwt_param *p, bool silent)
{
	struct events ev = { 0 };
	struct lw_lock *l;
	struct lwt t;
	int port, fd = -1;
	int64_t start, took;
	char url[sizeof(t.url)];

	lwt_start(&t, p, NULL, REFRESH, STALE);
	if (silent)
		fd = silent_member(&port);
	else
		port = lwt_free_port();
	cr_assert_lt(snprintf(url, sizeof(url), "etcd:http://127.0.0.1:%d,%.3000s", port,
			      t.url + 5), (int)sizeof(url));
	lw_repo_unref(t.repo);
	cr_assert_eq(lw_repo_new(t.loop, url, &t.repo), 0, "%s", lw_errmsg());
	cr_assert_eq(lw_repo_set_timing(t.repo, REFRESH, STALE), 0);
	cr_assert_eq(lw_repo_set_recheck_delay(t.repo, LW_MSEC(50)), 0);
	/* a try gets its share of this: 1 s for each of three members */
	cr_assert_eq(lw_repo_set_op_timeout(t.repo, LW_SEC(3)), 0);
	cr_assert_eq(lw_lock_new(t.repo, LW_LOCK_EXCLUSIVE, NULL, &l), 0);
	cr_assert_eq(lw_lock_set_event_fn(l, count, &ev), 0);
	start = lwt_ms();
	cr_assert_eq(lw_lock_acquire(l), 0, "%s", lw_errmsg());
	took = lwt_ms() - start;
	/* silent: one try waits its share of the time left (at least 1 s) */
	if (silent)
		cr_expect(took >= 900 && took < 4000, "acquired in %lld ms", (long long)took);
	else
		cr_expect_lt(took, 1500, "acquired in %lld ms", (long long)took);
	cr_expect_eq(lwt_count(&t), 1);
	cr_expect(lwt_wait_for(atomic_load(&ev.refreshed) >= 3, 5000), "refreshes went on");
	cr_expect_eq(atomic_load(&ev.lost), 0);
	cr_expect_eq(lw_lock_release(l), 0);
	cr_expect_eq(lwt_count(&t), 0);
	lw_lock_free(l);
	if (fd >= 0)
		close(fd);
	lwt_stop(&t);
}

ETCD_TEST(refusing_member_is_skipped, .timeout = 30)
{
	failover(p, false);
}

ETCD_TEST(silent_member_is_skipped, .timeout = 30)
{
	failover(p, true);
}

/* -------------------------------------------------------------- suspend */

/* Recovery after a suspend (lw_repo_set_suspend_recovery), on a member of
 * its own that stops answering while the clocks are made to look as if the
 * machine had slept (see test-suspend.c); it answers again once the work
 * is held, after forgetting the lock's lease if REVOKE is set. */
struct asleep {
	struct lwt_etcd *etcd;
	int64_t revoke;
	atomic_int held, resumed, refreshed, lost;
};

static void on_wake(struct lw_lock *lock, const struct lw_event *ev, void *userdata)
{
	struct asleep *a = userdata;
	char body[64];

	switch (ev->type) {
	case LW_EVENT_HELD:
		lwt_etcd_signal(a->etcd, 0, SIGCONT);
		if (a->revoke) {
			snprintf(body, sizeof(body), "{\"ID\":\"%" PRId64 "\"}", a->revoke);
			lwt_etcd_post(a->etcd, "/v3/lease/revoke", body, NULL);
		}
		atomic_fetch_add(&a->held, 1);
		break;
	case LW_EVENT_RESUMED:
		atomic_fetch_add(&a->resumed, 1);
		break;
	case LW_EVENT_REFRESHED:
		atomic_fetch_add(&a->refreshed, 1);
		break;
	case LW_EVENT_LOST:
		atomic_fetch_add(&a->lost, 1);
		break;
	default:
		break;
	}
}

/* Sleeps past the deadline of a lock on a member of its own; returns
 * whether the lock lived on, with the same key and fencing token. */
static bool sleep_past_deadline(const struct lwt_param *p, bool revoke)
{
	struct asleep a = { .etcd = lwt_etcd_start(1, 0) };
	char prefix[32], url[1024], before[65], after[65];
	struct lw_loop *loop;
	struct lw_repo *repo;
	struct lw_lock *lock;
	struct lw_ctx *ctx;
	int64_t token, rev, lease;
	bool lived;

	cr_assert_not_null(a.etcd, "etcd did not start");
	lwt_etcd_prefix(prefix);
	snprintf(url, sizeof(url), "etcd:%s/%s", lwt_etcd_endpoints(a.etcd), prefix);
	lwt_engine_case(p->engine);
	cr_assert_eq(lw_loop_new(p->engine, &loop), 0);
	cr_assert_eq(lw_loop_start(loop), 0);
	cr_assert_eq(lw_repo_new(loop, url, &repo), 0, "%s", lw_errmsg());
	/* the deadline 4.5 s after a keepalive, the lease's expiry 6 s */
	cr_assert_eq(lw_repo_set_timing(repo, REFRESH, LW_SEC(6)), 0);
	cr_assert_eq(lw_repo_set_recheck_delay(repo, LW_MSEC(50)), 0);
	cr_assert_eq(lw_repo_set_suspend_recovery(repo, true), 0);
	cr_assert_eq(lw_lock_new(repo, LW_LOCK_EXCLUSIVE, "suspend", &lock), 0);
	cr_assert_eq(lw_lock_set_event_fn(lock, on_wake, &a), 0);
	cr_assert_eq(lw_lock_acquire(lock), 0, "%s", lw_errmsg());
	ctx = lw_lock_ctx(lock);
	token = lw_lock_fencing_token(lock);
	cr_assert_eq(lw_lock_id(lock, before), 0);
	cr_assert(lwt_etcd_get(a.etcd, prefix, before, &rev, &lease));
	if (revoke)
		a.revoke = lease;

	lwt_etcd_signal(a.etcd, 0, SIGSTOP);
	lw__clock_simulate_suspend(LW_SEC(3));
	cr_assert(lwt_wait_for(atomic_load(&a.held) == 1, 6000), "the work was held: %s",
		  lw_ctx_done(ctx) ? lw_ctx_cause(ctx) : "it goes on");
	cr_assert(lwt_wait_for(atomic_load(&a.resumed) == 1 || lw_ctx_done(ctx), 5000),
		  "neither resumed nor ended");
	lived = !lw_ctx_done(ctx);
	if (lived) {
		cr_expect(!lw_ctx_held(ctx));
		cr_expect_eq(lw_ctx_wait(ctx, 0), LW_CAUSE_NONE);
		cr_assert_eq(lw_lock_id(lock, after), 0);
		cr_expect_str_eq(after, before, "the same key");
		cr_expect_eq(lw_lock_fencing_token(lock), token, "the same fencing token");
		cr_expect_gt(lw_lock_deadline(lock), lw__now_boot());
		/* and it lives on */
		atomic_store(&a.refreshed, 0);
		usleep(2500 * 1000);
		cr_expect(!lw_ctx_done(ctx), "%s", lw_ctx_done(ctx) ? lw_ctx_cause(ctx) : "");
		cr_expect_geq(atomic_load(&a.refreshed), 1);
	} else {
		cr_expect_eq(lw_ctx_err(ctx), LW_CAUSE_REMOVED, "%s", lw_ctx_cause(ctx));
		cr_expect(strstr(lw_ctx_cause(ctx), "expired on the server"), "%s",
			  lw_ctx_cause(ctx));
		/* the event follows the cancel, from the loop thread */
		cr_expect(lwt_wait_for(atomic_load(&a.lost) == 1, 1000), "one LOST event");
		cr_expect_eq(atomic_load(&a.resumed), 0);
	}
	lw_lock_free(lock);
	cr_expect(lwt_wait_for(lwt_etcd_count(a.etcd, prefix) == 0, 3000), "nothing left behind");
	lw_repo_unref(repo);
	lw_loop_free(loop);
	lwt_etcd_stop(a.etcd);
	return lived;
}

/* Asleep past the deadline, but not past the lease: one keepalive shows
 * that the lock never left the server, and the work resumes. */
ETCD_TEST(suspend_recovers_with_its_lease, .timeout = 40)
{
	cr_expect(sleep_past_deadline(p, false), "the lock lived on");
}

/* The lease was gone when the machine woke: the lock is lost. */
ETCD_TEST(suspend_after_the_lease_is_lost, .timeout = 40)
{
	cr_expect(!sleep_past_deadline(p, true), "the lock ended");
}

/* --------------------------------------------------------------- watch */

/* Refreshes far apart: a removal noticed within WATCH_BOUND was noticed by
 * the watch, not by a keepalive (and a key deleted without its lease is
 * never noticed by one). */
#define WATCH_REFRESH LW_SEC(30)
#define WATCH_STALE LW_SEC(120)
/* From the other client's delete to the context's end: 2-6 ms under ASan
 * on the shared 2-core machine at load 4-12 (README: -O2), asserted with
 * room for valgrind and load. */
#define WATCH_BOUND LW_MSEC(1500)

enum removal { BY_DELETE, BY_REVOKE };

/* Another client removes a held lock's key (by deleting it, or by revoking
 * its lease): the lock goes LOST with its cause within WATCH_BOUND. */
static int64_t removed_by_another(const struct lwt_param *p, enum removal how)
{
	struct events ev = { 0 };
	struct lw_lock *lock;
	struct lw_ctx *ctx;
	int64_t lease, start, took;
	char id[65], body[64];
	struct lwt t;

	lwt_start(&t, p, NULL, WATCH_REFRESH, WATCH_STALE);
	cr_assert_eq(lw_lock_new(t.repo, LW_LOCK_EXCLUSIVE, "watched", &lock), 0);
	cr_assert_eq(lw_lock_set_event_fn(lock, count, &ev), 0);
	cr_assert_eq(lw_lock_acquire(lock), 0, "%s", lw_errmsg());
	ctx = lw_lock_ctx(lock);
	cr_assert_eq(lw_lock_id(lock, id), 0);
	cr_assert(lwt_etcd_get(t.etcd, t.prefix, id, NULL, &lease));
	/* the watch is made as the lock is held: let it be */
	usleep(500 * 1000);
	cr_assert(!lw_ctx_done(ctx), "%s", lw_ctx_cause(ctx));
	start = lw__now_boot();
	if (how == BY_REVOKE) {
		snprintf(body, sizeof(body), "{\"ID\":\"%" PRId64 "\"}", lease);
		cr_assert_eq(lwt_etcd_post(t.etcd, "/v3/lease/revoke", body, NULL), 200);
	} else {
		lwt_etcd_clear(t.etcd, t.prefix);
	}
	cr_assert(lwt_wait_for(lw_ctx_done(ctx), 10000), "the removal was never noticed");
	took = lw__ctx_done_at(ctx) - start;
	cr_expect_eq(lw_ctx_err(ctx), LW_CAUSE_REMOVED, "%s", lw_ctx_cause(ctx));
	/* the event follows the cancel, from the loop thread */
	cr_expect(lwt_wait_for(atomic_load(&ev.lost) == 1, 1000), "one LOST event");
	cr_expect_eq(atomic_load(&ev.refreshed), 0, "no keepalive came between");
	cr_expect_leq(took, WATCH_BOUND, "noticed %lld ms after the removal",
		      (long long)(took / LW_MSEC(1)));
	cr_expect_eq(lw_lock_release(lock), -LW_ELOST);
	lw_lock_free(lock);
	lwt_stop(&t);
	return took;
}

ETCD_TEST(watch_notices_a_deleted_key, .timeout = 30)
{
	int64_t took = removed_by_another(p, BY_DELETE);

	fprintf(stderr, "etcd watch (%s): a deleted key noticed in %lld us\n",
		lw_engine_name(p->engine), (long long)(took / 1000));
}

ETCD_TEST(watch_notices_a_revoked_lease, .timeout = 30)
{
	int64_t took = removed_by_another(p, BY_REVOKE);

	fprintf(stderr, "etcd watch (%s): a revoked lease noticed in %lld us\n",
		lw_engine_name(p->engine), (long long)(took / 1000));
}

/* A member whose /v3/watch answers 200 and an HTML page (a proxy's error
 * page), or garbage that is no JSON, while its other calls work: the
 * connections to it are counted. */
struct bad_watch {
	int fd;
	const char *reply;
	char where[32];
	atomic_bool on;
	atomic_int served;
	pthread_t thread;
	int nlog;              /* loop thread: warnings about the watch */
	pthread_mutex_t mu;
};

static void *bad_watch_serve(void *arg)
{
	struct bad_watch *b = arg;
	char req[4096];
	int c;

	while ((c = accept(b->fd, NULL, NULL)) >= 0) {
		/* the request and its small body come at once */
		(void)!read(c, req, sizeof(req));
		(void)!write(c, b->reply, strlen(b->reply));
		atomic_fetch_add(&b->served, 1);
		close(c);
	}
	return NULL;
}

static const char *bad_watch_fault(const struct lw__http_req *r, void *userdata)
{
	struct bad_watch *b = userdata;

	if (!atomic_load(&b->on) || !r->path || strcmp(r->path, "/v3/watch") != 0)
		return NULL;
	return b->where;
}

static void bad_watch_log(void *userdata, int priority, const char *msg)
{
	struct bad_watch *b = userdata;

	if (priority <= LOG_WARNING && strstr(msg, "etcd watch")) {
		pthread_mutex_lock(&b->mu);
		b->nlog++;
		pthread_mutex_unlock(&b->mu);
	}
}

/* The watch gets REPLY for a while: nothing crashes, the lock is kept by
 * its keepalives, the watch is tried again with back-off and told once;
 * once the member answers right, a removal is noticed again. */
static void bad_watch(const struct lwt_param *p, const char *reply)
{
	struct bad_watch b = { .reply = reply, .mu = PTHREAD_MUTEX_INITIALIZER };
	struct events ev = { 0 };
	struct lw_lock *lock;
	struct lw_ctx *ctx;
	int port, served, nlog;
	int64_t start, took;
	struct lwt t;

	b.fd = silent_member(&port);
	snprintf(b.where, sizeof(b.where), "127.0.0.1:%d", port);
	cr_assert_eq(pthread_create(&b.thread, NULL, bad_watch_serve, &b), 0);
	atomic_store(&b.on, true);
	lw__http_fault_set(bad_watch_fault, &b);
	lwt_start(&t, p, NULL, REFRESH, STALE);
	lw_loop_set_log_fn(t.loop, bad_watch_log, &b);
	cr_assert_eq(lw_lock_new(t.repo, LW_LOCK_EXCLUSIVE, NULL, &lock), 0);
	cr_assert_eq(lw_lock_set_event_fn(lock, count, &ev), 0);
	cr_assert_eq(lw_lock_acquire(lock), 0, "%s", lw_errmsg());
	ctx = lw_lock_ctx(lock);
	/* past the stale timeout: only keepalives can have kept it */
	usleep(3500 * 1000);
	cr_assert(!lw_ctx_done(ctx), "%s", lw_ctx_cause(ctx));
	cr_expect_geq(atomic_load(&ev.refreshed), 2);
	served = atomic_load(&b.served);
	/* 100 ms doubling: 0, 0.1, 0.3, 0.7, 1.5, 3.1 s */
	cr_expect(served >= 3 && served <= 8, "%d watches tried in 3.5 s", served);
	pthread_mutex_lock(&b.mu);
	nlog = b.nlog;
	pthread_mutex_unlock(&b.mu);
	cr_expect_eq(nlog, 1, "the broken watch told %d times", nlog);
	atomic_store(&b.on, false);
	/* the next try (by 6.3 s) reaches the member; a key deleted alone
	 * is noticed by no keepalive */
	usleep(3500 * 1000);
	cr_assert(!lw_ctx_done(ctx), "%s", lw_ctx_cause(ctx));
	start = lw__now_boot();
	lwt_etcd_clear(t.etcd, t.prefix);
	cr_assert(lwt_wait_for(lw_ctx_done(ctx), 10000), "the removal was never noticed");
	took = lw__ctx_done_at(ctx) - start;
	cr_expect_eq(lw_ctx_err(ctx), LW_CAUSE_REMOVED, "%s", lw_ctx_cause(ctx));
	cr_expect_leq(took, WATCH_BOUND, "noticed %lld ms after the removal",
		      (long long)(took / LW_MSEC(1)));
	lw_lock_free(lock);
	lwt_stop(&t);
	lw__http_fault_set(NULL, NULL);
	shutdown(b.fd, SHUT_RDWR);
	close(b.fd);
	pthread_join(b.thread, NULL);
}

ETCD_TEST(watch_html_reply, .timeout = 40)
{
	bad_watch(p, "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nConnection: close\r\n\r\n"
		     "<html><head><title>502 Bad Gateway</title></head>\n<body>nginx</body>\n"
		     "</html>\n");
}

ETCD_TEST(watch_garbage_reply, .timeout = 40)
{
	bad_watch(p, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n"
		     "{\"result\":{\"created\":true}}\n{\"result\":{\"events\":[{\"type\":"
		     "\"DELETE\",\"kv\":{\"key\":\"not base64!\"}}]}}\n\x01\x02{{{\n");
}

/* ------------------------------------------------------------- command */

struct cli_etcd {
	struct repo r;
	struct cli_param prm;
	struct lwt t;
};

static void cli_start(struct cli_etcd *c, const struct lwt_param *p)
{
	memset(c, 0, sizeof(*c));
	lwt_start(&c->t, p, NULL, REFRESH, STALE);
	cr_assert_lt(snprintf(c->r.url, sizeof(c->r.url), "%.500s", c->t.url),
		     (int)sizeof(c->r.url));
	snprintf(c->r.tmp, sizeof(c->r.tmp), "/tmp/lockwatch-cli-XXXXXX");
	cr_assert_not_null(mkdtemp(c->r.tmp));
	c->prm.engine = p->engine;
}

static void cli_stop(struct cli_etcd *c)
{
	char cmd[300];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", c->r.tmp);
	(void)!system(cmd);
	lwt_stop(&c->t);
}

static char *output(const struct proc *pr, bool err)
{
	return clitest_read(err ? pr->err : pr->out);
}

/* run gives the job its fencing token; list shows the lock; a second
 * exclusive run is refused with 11; nothing is left afterwards. */
ETCD_TEST(command_run_list, .timeout = 60)
{
	char script[600];
	const char *job[] = { "run", "--exclusive", "--refresh-interval", "1s", "--stale-timeout",
			      "3s", "--purpose", "etcd job", "--", "sh", "-c", script, NULL };
	const char *second[] = { "run", "--exclusive", "--", "true", NULL };
	const char *list[] = { "list", NULL }, *json[] = { "list", "--json", NULL };
	struct cli_etcd c;
	struct proc holder, pr;
	int64_t token = 0, revision = 0;
	char id[65] = "", *s;
	const char *line2;

	cli_start(&c, p);
	/* the job holds the lock until the test is done with it (30 s at
	 * most): under valgrind each command below takes seconds */
	snprintf(script, sizeof(script),
		 "echo $LOCKWATCH_FENCING_TOKEN $LOCKWATCH_LOCK_ID; i=0; "
		 "while [ ! -e %s/go ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done",
		 c.r.tmp);
	clitest_start(&holder, c.r.tmp, &c.r, &c.prm, NULL, job);
	cr_assert(clitest_wait_file(holder.out, 10000), "the job started");
	s = output(&holder, false);
	cr_assert_eq(sscanf(s, "%" SCNd64 " %64s", &token, id), 2, "job said: %s", s);
	free(s);
	cr_assert(lwt_etcd_get(c.t.etcd, c.t.prefix, id, &revision, NULL), "the job's key exists");
	cr_expect_eq(token, revision, "LOCKWATCH_FENCING_TOKEN is the key's create revision");
	cr_expect_eq(clitest_run(&pr, c.r.tmp, &c.r, &c.prm, second), 11);
	s = output(&pr, true);
	cr_expect(strstr(s, "purpose: etcd job"), "%s", s);
	free(s);
	cr_expect_eq(clitest_run(&pr, c.r.tmp, &c.r, &c.prm, list), 0);
	s = output(&pr, false);
	cr_expect(strstr(s, "exclusive") && strstr(s, "etcd job"), "%s", s);
	line2 = strchr(s, '\n');
	cr_expect(line2 && strncmp(line2 + 1, id, 12) == 0, "%s", s);
	free(s);
	cr_expect_eq(clitest_run(&pr, c.r.tmp, &c.r, &c.prm, json), 0);
	s = output(&pr, false);
	cr_expect(clitest_json_valid(s), "%s", s);
	cr_expect(strstr(s, id), "%s", s);
	free(s);
	clitest_let_job_end(c.r.tmp);
	cr_expect_eq(clitest_wait(&holder, 20000), 0);
	cr_expect_eq(lwt_count(&c.t), 0, "the job's lock was released");
	cli_stop(&c);
}

/* unlock --remove-all revokes the lease of a running job's lock: the job
 * is told (SIGTERM) and run exits 12; plain unlock removes only the stale
 * lock of a process that is gone. */
ETCD_TEST(command_unlock, .timeout = 60)
{
	const char *job[] = { "run", "--refresh-interval", "1s", "--stale-timeout", "3s", "--",
			      "sh", "-c", "echo started; sleep 20", NULL };
	const char *unlock[] = { "unlock", NULL }, *all[] = { "unlock", "--remove-all", NULL };
	struct lw__record rec = lwt_record(true);
	struct cli_etcd c;
	struct proc holder, pr;
	int64_t start;
	char dead[65], *s;
	pid_t pid;

	cli_start(&c, p);
	pid = fork();
	if (pid == 0)
		_exit(0);
	waitpid(pid, NULL, 0);
	rec.boot_id = lw__self()->boot_id;
	rec.pid = pid;
	rec.pid_start = 1;
	clitest_start(&holder, c.r.tmp, &c.r, &c.prm, NULL, job);
	cr_assert(clitest_wait_file(holder.out, 10000), "the job started");
	lwt_plant(&c.t, &rec, dead);
	cr_expect_eq(lwt_count(&c.t), 2);
	cr_expect_eq(clitest_run(&pr, c.r.tmp, &c.r, &c.prm, unlock), 0);
	cr_expect(!lwt_exists(&c.t, dead), "the dead process's lock is gone");
	cr_expect_eq(lwt_count(&c.t), 1, "the live one is not");
	cr_expect_eq(clitest_run(&pr, c.r.tmp, &c.r, &c.prm, all), 0);
	/* from when unlock is done: it runs for seconds under valgrind */
	start = clitest_now();
	cr_expect_eq(clitest_wait(&holder, 10000), 12, "run says the lock was lost");
	cr_expect_lt(clitest_now() - start, LW_MSEC(2500), "within about one interval");
	s = output(&holder, true);
	cr_expect(strstr(s, "the lease of lock"), "%s", s);
	free(s);
	cr_expect_eq(lwt_count(&c.t), 0);
	cli_stop(&c);
}

/* etcdctl del --prefix from another client while run holds the lock with
 * keepalives 30 s apart: the job is stopped and run exits 12 at once, not
 * at the next keepalive (which would not notice: the lease lives). */
ETCD_TEST(command_key_deleted, .timeout = 60)
{
	const char *job[] = { "run", "--refresh-interval", "30s", "--stale-timeout", "2m", "--",
			      "sh", "-c", "echo started; sleep 20", NULL };
	struct cli_etcd c;
	struct proc holder;
	int64_t start, took;
	char *s;

	cli_start(&c, p);
	clitest_start(&holder, c.r.tmp, &c.r, &c.prm, NULL, job);
	cr_assert(clitest_wait_file(holder.out, 10000), "the job started");
	/* the watch is made as the lock is held: let it be */
	usleep(500 * 1000);
	start = clitest_now();
	lwt_etcd_clear(c.t.etcd, c.t.prefix);
	cr_expect_eq(clitest_wait(&holder, 10000), 12, "run says the lock was lost");
	took = clitest_now() - start;
	fprintf(stderr, "etcd watch (%s): run exited 12 %lld ms after its key was deleted\n",
		lw_engine_name(p->engine), (long long)(took / LW_MSEC(1)));
	cr_expect_lt(took, WATCH_BOUND, "within %lld ms", (long long)(took / LW_MSEC(1)));
	s = output(&holder, true);
	cr_expect(strstr(s, "lock removed by someone else"), "%s", s);
	free(s);
	cli_stop(&c);
}
