/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * etcd-bench: what keeping leases alive costs, lockwatch beside etcdctl, in
 * one run against one real three-member cluster (tests/helpers/etcd.c starts it).
 *
 *   lockwatch  LOCKS shared locks on one loop, refreshed every INTERVAL
 *              (stale timeout 5 x INTERVAL): keepalives per second (the
 *              locks' REFRESHED events), CPU of this process per keepalive
 *   etcdctl    LEASES leases of TTL 3 x INTERVAL, each kept alive by its own
 *              `etcdctl lease keep-alive` process, which renews every TTL/3
 *              = INTERVAL: keepalives per second (its output lines), CPU of
 *              those processes per keepalive
 *
 * Both also report the etcd members' CPU per keepalive, less what they use
 * idle (measured first).  CPU comes from getrusage(2) and /proc/PID/stat,
 * over SECONDS of steady state.  Locks are acquired DEPTH at a time: a lock
 * must be confirmed within its first deadline (3.5 intervals).
 *
 * Usage: etcd-bench [LOCKS [LEASES [SECONDS [INTERVAL_MS [ENGINE]]]]]
 * (defaults 1000 100 20 1000 auto).
 */
#include "config.h"

#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "etcd.h"
#include "testing.h"

#define ETCDCTL "/usr/bin/etcdctl"
#define DEPTH 500

/* The cluster's CPU per second when nobody talks to it. */
static double idle_ns_per_s;

static atomic_long refreshed, failed, acquired, acquire_errors;

static int64_t now_ns(void)
{
	return lw__now_boot();
}

/* CPU (user + system) of PID, from /proc: ns. */
static int64_t proc_cpu(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long long ut = 0, st = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	buf[fread(buf, 1, sizeof(buf) - 1, f)] = '\0';
	fclose(f);
	p = strrchr(buf, ')');
	/* fields 14 and 15 (utime, stime), after the name in parentheses */
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut,
			 &st) != 2)
		return 0;
	return (int64_t)(ut + st) * (LW_NSEC_PER_SEC / sysconf(_SC_CLK_TCK));
}

static int64_t self_cpu(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * LW_NSEC_PER_SEC +
	       ((int64_t)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000;
}

static int64_t members_cpu(const struct lwt_etcd *c)
{
	int64_t sum = 0;

	for (int i = 0; i < lwt_etcd_members(c); i++)
		sum += proc_cpu(lwt_etcd_pid(c, i));
	return sum;
}

static void on_event(struct lw_lock *lock, const struct lw_event *ev, void *userdata)
{
	if (ev->type == LW_EVENT_REFRESHED)
		atomic_fetch_add(&refreshed, 1);
	else if (ev->type == LW_EVENT_REFRESH_FAILED)
		atomic_fetch_add(&failed, 1);
}

static void on_acquired(struct lw_lock *lock, int err, const char *msg, void *userdata)
{
	if (err)
		fprintf(stderr, "acquire: %s\n", msg);
	atomic_fetch_add(err ? &acquire_errors : &acquired, 1);
}

static void report(const char *who, long n, long keepalives, int64_t ns, int64_t cpu,
		   int64_t server_cpu)
{
	double secs = (double)ns / 1e9;

	server_cpu -= (int64_t)(idle_ns_per_s * secs);

	printf("%-10s %6ld %10.0f %14.1f %16.1f\n", who, n, (double)keepalives / secs,
	       keepalives ? (double)cpu / 1000.0 / (double)keepalives : 0.0,
	       keepalives ? (double)server_cpu / 1000.0 / (double)keepalives : 0.0);
}

static int bench_lockwatch(const struct lwt_etcd *c, long n, int seconds, int64_t interval,
			   enum lw_engine engine)
{
	char url[1024], prefix[32];
	struct lw_lock **locks = calloc((size_t)n, sizeof(*locks));
	struct lw_loop *loop;
	struct lw_repo *repo;
	int64_t t0, cpu0, srv0, t1;
	long k0;

	lwt_etcd_prefix(prefix);
	snprintf(url, sizeof(url), "etcd:%s/%s", lwt_etcd_endpoints(c), prefix);
	if (!locks || lw_loop_new(engine, &loop) < 0 || lw_loop_start(loop) < 0 ||
	    lw_repo_new(loop, url, &repo) < 0 ||
	    lw_repo_set_timing(repo, interval, 5 * interval) < 0) {
		fprintf(stderr, "etcd-bench: %s\n", lw_errmsg());
		return -1;
	}
	lw_repo_set_recheck_delay(repo, LW_MSEC(50));
	for (long i = 0; i < n; i++) {
		while (i - atomic_load(&acquired) - atomic_load(&acquire_errors) >= DEPTH)
			usleep(1000);
		if (lw_lock_new(repo, 0, NULL, &locks[i]) < 0 ||
		    lw_lock_set_event_fn(locks[i], on_event, NULL) < 0 ||
		    lw_lock_acquire_async(locks[i], on_acquired, NULL) < 0)
			return -1;
	}
	while (atomic_load(&acquired) + atomic_load(&acquire_errors) < n)
		usleep(10000);
	if (atomic_load(&acquire_errors))
		return -1;
	/* a few intervals first: the refresh times of the locks spread out */
	usleep((useconds_t)(3 * interval / 1000));
	t0 = now_ns();
	k0 = atomic_load(&refreshed);
	cpu0 = self_cpu();
	srv0 = members_cpu(c);
	sleep((unsigned)seconds);
	t1 = now_ns();
	report("lockwatch", n, atomic_load(&refreshed) - k0, t1 - t0, self_cpu() - cpu0,
	       members_cpu(c) - srv0);
	for (long i = 0; i < n; i++)
		if (lw_ctx_done(lw_lock_ctx(locks[i])))
			fprintf(stderr, "etcd-bench: lock %ld lost: %s\n", i,
				lw_ctx_cause(lw_lock_ctx(locks[i])));
	if (atomic_load(&failed))
		fprintf(stderr, "etcd-bench: %ld refreshes failed (retried)\n",
			atomic_load(&failed));
	for (long i = 0; i < n; i++)
		lw_lock_free(locks[i]);
	lw_repo_unref(repo);
	lw_loop_free(loop);
	free(locks);
	return 0;
}

/* Lines of PATH that say a lease was kept alive. */
static long keepalives_in(const char *path)
{
	char line[256];
	long n = 0;
	FILE *f = fopen(path, "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		n += strstr(line, "keepalived with TTL") != NULL;
	fclose(f);
	return n;
}

static int bench_etcdctl(const struct lwt_etcd *c, long n, int seconds, int64_t interval)
{
	pid_t *pids = calloc((size_t)n, sizeof(*pids));
	char dir[] = "/tmp/etcd-bench-XXXXXX", path[64], body[64], *out;
	int64_t t0, t1, cpu0 = 0, cpu1 = 0, srv0, srv1;
	long k0 = 0, k1 = 0;

	if (!pids || !mkdtemp(dir))
		return -1;
	snprintf(body, sizeof(body), "{\"TTL\":\"%" PRId64 "\"}", 3 * interval / LW_NSEC_PER_SEC);
	for (long i = 0; i < n; i++) {
		char id[32];
		int64_t lease;

		if (lwt_etcd_post(c, "/v3/lease/grant", body, &out) != 200 || !strstr(out, "\"ID\":\""))
			return -1;
		lease = strtoll(strstr(out, "\"ID\":\"") + 6, NULL, 10);
		free(out);
		snprintf(id, sizeof(id), "%" PRIx64, (uint64_t)lease);
		snprintf(path, sizeof(path), "%s/%ld", dir, i);
		pids[i] = fork();
		if (pids[i] == 0) {
			int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

			dup2(fd, 1);
			dup2(fd, 2);
			execl(ETCDCTL, "etcdctl", "--endpoints", lwt_etcd_endpoints(c), "lease",
			      "keep-alive", id, (char *)NULL);
			_exit(127);
		}
	}
	usleep((useconds_t)(3 * interval / 1000));
	for (long i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%ld", dir, i);
		k0 += keepalives_in(path);
		cpu0 += proc_cpu(pids[i]);
	}
	srv0 = members_cpu(c);
	t0 = now_ns();
	sleep((unsigned)seconds);
	t1 = now_ns();
	srv1 = members_cpu(c);
	for (long i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%ld", dir, i);
		k1 += keepalives_in(path);
		cpu1 += proc_cpu(pids[i]);
		kill(pids[i], SIGTERM);
		waitpid(pids[i], NULL, 0);
		unlink(path);
	}
	rmdir(dir);
	report("etcdctl", n, k1 - k0, t1 - t0, cpu1 - cpu0, srv1 - srv0);
	free(pids);
	return 0;
}

int main(int argc, char **argv)
{
	long locks = argc > 1 ? atol(argv[1]) : 1000, leases = argc > 2 ? atol(argv[2]) : 100;
	int seconds = argc > 3 ? atoi(argv[3]) : 20;
	int64_t interval = LW_MSEC(argc > 4 ? atol(argv[4]) : 1000);
	enum lw_engine engine = LW_ENGINE_AUTO;
	struct lwt_etcd *c;
	int r = 0;

	if ((argc > 5 && lw_engine_parse(argv[5], &engine) < 0) || locks < 1 || leases < 0 ||
	    seconds < 1 || interval < LW_SEC(1)) {
		fprintf(stderr, "usage: etcd-bench [LOCKS [LEASES [SECONDS [INTERVAL_MS "
			"(>= 1000) [auto|uring|epoll]]]]]\n");
		return 2;
	}
	c = lwt_etcd_start(3, 0);
	if (!c)
		return 1;
	{
		int64_t t0 = now_ns(), cpu0 = members_cpu(c);

		sleep(3);
		idle_ns_per_s = (double)(members_cpu(c) - cpu0) / ((double)(now_ns() - t0) / 1e9);
	}
	printf("%ld s of steady state, one keepalive per lease every %" PRId64 " ms, "
	       "3-member etcd cluster on this machine\n", (long)seconds, interval / LW_MSEC(1));
	printf("(etcd's 3 members idle: %.1f ms of CPU a second, not counted below)\n",
	       idle_ns_per_s / 1e6);
	printf("%-10s %6s %10s %14s %16s\n", "client", "leases", "keepalive/s", "client us/ka",
	       "etcd us/ka");
	if (bench_lockwatch(c, locks, seconds, interval, engine) < 0 ||
	    (leases && bench_etcdctl(c, leases, seconds, interval) < 0)) {
		fprintf(stderr, "etcd-bench: a phase failed\n");
		r = 1;
	}
	lwt_etcd_stop(c);
	return r;
}
