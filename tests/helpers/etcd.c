/* SPDX-License-Identifier: BSD-2-Clause */
#include "config.h"

#include "test.h"
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testing.h"
#include "etcd.h"
#include "nginx.h"

#define ETCD "/usr/bin/etcd"
#define SHARED_ENV "LWT_ETCD_CLUSTER"
#define START_MS 30000

struct lwt_etcd {
	int n;
	bool owner;             /* this process started the members */
	char dir[96];
	int client[LWT_ETCD_MAX];
	int peer[LWT_ETCD_MAX];
	pid_t pid[LWT_ETCD_MAX];
	char ep[LWT_ETCD_MAX][40];
	char endpoints[LWT_ETCD_MAX * 40];
};

static struct lwt_etcd *shared; /* in the process that runs the tests */

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

static int64_t now_ms(void)
{
	return lw__now_boot() / LW_MSEC(1);
}

/* ------------------------------------------------------------- talking */

struct buf {
	char *p;
	size_t len;
};

static size_t on_body(char *data, size_t size, size_t n, void *userp)
{
	struct buf *b = userp;
	char *p = realloc(b->p, b->len + size * n + 1);

	if (!p)
		return 0;
	memcpy(p + b->len, data, size * n);
	b->p = p;
	b->len += size * n;
	b->p[b->len] = '\0';
	return size * n;
}

/* GET (BODY NULL) or POST BODY to URL; the HTTP status, 0 for none. */
static long request(const char *url, const char *body, char **out, long timeout_ms)
{
	struct buf b = { 0 };
	long status = 0;
	CURL *e = curl_easy_init();

	if (out)
		*out = NULL;
	if (!e)
		return 0;
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 1000L);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
	if (body)
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
	if (curl_easy_perform(e) == CURLE_OK)
		curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(e);
	if (out)
		*out = b.p;
	else
		free(b.p);
	return status;
}

long lwt_etcd_post(const struct lwt_etcd *c, const char *path, const char *body,
		   char **out)
{
	for (int i = 0; i < c->n; i++) {
		char url[128];
		long st;

		snprintf(url, sizeof(url), "%s%s", c->ep[i], path);
		st = request(url, body, out, 10000);
		if (st > 0 && st < 500)
			return st;
		if (out) {
			free(*out);
			*out = NULL;
		}
	}
	return 0;
}

/* The integer after "NAME":" in S (0 if absent): protobuf's JSON writes
 * 64-bit integers as strings. */
static int64_t field(const char *s, const char *name)
{
	char pat[64];
	const char *p;

	snprintf(pat, sizeof(pat), "\"%s\":\"", name);
	p = s ? strstr(s, pat) : NULL;
	return p ? strtoll(p + strlen(pat), NULL, 10) : 0;
}

static char *b64(const char *s)
{
	char *out = malloc(lw__base64_len(strlen(s)) + 1);

	cr_assert_not_null(out);
	lw__base64_encode(s, strlen(s), out);
	return out;
}

/* "key":"..","range_end":".." for everything under PREFIX + SUFFIX ("/"). */
static char *range(const char *prefix, const char *suffix)
{
	char from[256], to[256], *a, *b, *out;

	snprintf(from, sizeof(from), "%s%s", prefix, suffix);
	snprintf(to, sizeof(to), "%s%s", prefix, suffix);
	to[strlen(to) - 1]++;
	a = b64(from);
	b = b64(to);
	cr_assert_geq(asprintf(&out, "\"key\":\"%s\",\"range_end\":\"%s\"", a, b), 0);
	free(a);
	free(b);
	return out;
}

int lwt_etcd_count(const struct lwt_etcd *c, const char *prefix)
{
	char *r = range(prefix, "/locks/"), *body, *out;
	long st;
	int n;

	cr_assert_geq(asprintf(&body, "{%s,\"count_only\":true}", r), 0);
	st = lwt_etcd_post(c, "/v3/kv/range", body, &out);
	cr_assert_eq(st, 200, "range: %ld %s", st, out ? out : "");
	n = (int)field(out, "count");
	free(out);
	free(body);
	free(r);
	return n;
}

bool lwt_etcd_get(const struct lwt_etcd *c, const char *prefix, const char *name,
		  int64_t *create_revision, int64_t *lease)
{
	char key[256], *k, *body, *out;
	bool found;
	long st;

	snprintf(key, sizeof(key), "%s/locks/%s", prefix, name);
	k = b64(key);
	cr_assert_geq(asprintf(&body, "{\"key\":\"%s\"}", k), 0);
	st = lwt_etcd_post(c, "/v3/kv/range", body, &out);
	cr_assert_eq(st, 200, "range: %ld %s", st, out ? out : "");
	found = out && strstr(out, "\"kvs\"");
	if (create_revision)
		*create_revision = field(out, "create_revision");
	if (lease)
		*lease = field(out, "lease");
	free(out);
	free(body);
	free(k);
	return found;
}

void lwt_etcd_put(const struct lwt_etcd *c, const char *prefix, const char *name,
		  const void *data, size_t len)
{
	char key[256], *k, *v, *body, *out;
	long st;

	snprintf(key, sizeof(key), "%s/locks/%s", prefix, name);
	k = b64(key);
	v = malloc(lw__base64_len(len) + 1);
	cr_assert_not_null(v);
	lw__base64_encode(data, len, v);
	cr_assert_geq(asprintf(&body, "{\"key\":\"%s\",\"value\":\"%s\"}", k, v), 0);
	st = lwt_etcd_post(c, "/v3/kv/put", body, &out);
	cr_assert_eq(st, 200, "put: %ld %s", st, out ? out : "");
	free(out);
	free(body);
	free(v);
	free(k);
}

void lwt_etcd_delete(const struct lwt_etcd *c, const char *prefix, const char *name)
{
	char key[256], *k, *body;

	snprintf(key, sizeof(key), "%s/locks/%s", prefix, name);
	k = b64(key);
	cr_assert_geq(asprintf(&body, "{\"key\":\"%s\"}", k), 0);
	cr_assert_eq(lwt_etcd_post(c, "/v3/kv/deleterange", body, NULL), 200);
	free(body);
	free(k);
}

int lwt_etcd_watchers(const struct lwt_etcd *c, int member)
{
	static const char name[] = "\netcd_debugging_mvcc_watcher_total ";
	int n = 0;

	for (int i = 0; i < c->n; i++) {
		char url[128], *out = NULL;
		const char *at;

		if ((member >= 0 && i != member) || (c->owner && !c->pid[i]))
			continue; /* not asked, or killed */
		snprintf(url, sizeof(url), "%s/metrics", c->ep[i]);
		cr_assert_eq(request(url, NULL, &out, 10000), 200, "metrics of member %d", i);
		at = strstr(out, name);
		cr_assert_not_null(at, "member %d has no %s", i, name + 1);
		n += atoi(at + sizeof(name) - 1);
		free(out);
	}
	return n;
}

void lwt_etcd_clear(const struct lwt_etcd *c, const char *prefix)
{
	char *r = range(prefix, "/"), *body;

	cr_assert_geq(asprintf(&body, "{%s}", r), 0);
	lwt_etcd_post(c, "/v3/kv/deleterange", body, NULL);
	free(body);
	free(r);
}

void lwt_etcd_prefix(char prefix[32])
{
	struct lw__id id;
	char hex[LW_ID_HEX + 1];

	cr_assert_eq(lw__id_random(&id), 0);
	lw__id_hex(&id, hex);
	snprintf(prefix, 32, "lwt-%.16s", hex);
}

int lwt_etcd_leader(const struct lwt_etcd *c, int ms)
{
	int64_t until = now_ms() + ms;

	do {
		for (int i = 0; i < c->n; i++) {
			char url[128], *out;
			int64_t self, leader;

			if (c->pid[i] <= 0)
				continue;
			snprintf(url, sizeof(url), "%s/v3/maintenance/status", c->ep[i]);
			if (request(url, "{}", &out, 2000) == 200) {
				self = field(out, "member_id");
				leader = field(out, "leader");
				free(out);
				if (self && self == leader)
					return i;
				continue;
			}
			free(out);
		}
		sleep_ms(50);
	} while (now_ms() < until);
	return -1;
}

/* ------------------------------------------------------------- members */

static pid_t spawn(const struct lwt_etcd *c, int i, int election_ms)
{
	char name[16], data[160], log[160], client[48], peer[48], cluster[LWT_ETCD_MAX * 48];
	char heartbeat[16], election[16];
	size_t len = 0;
	pid_t pid;

	snprintf(name, sizeof(name), "m%d", i);
	snprintf(data, sizeof(data), "%s/m%d", c->dir, i);
	snprintf(log, sizeof(log), "%s/m%d.log", c->dir, i);
	snprintf(client, sizeof(client), "http://127.0.0.1:%d", c->client[i]);
	snprintf(peer, sizeof(peer), "http://127.0.0.1:%d", c->peer[i]);
	for (int k = 0; k < c->n; k++)
		len += (size_t)snprintf(cluster + len, sizeof(cluster) - len, "%sm%d=http://127.0.0.1:%d",
					k ? "," : "", k, c->peer[k]);
	snprintf(heartbeat, sizeof(heartbeat), "%d", election_ms ? election_ms / 10 : 100);
	snprintf(election, sizeof(election), "%d", election_ms ? election_ms : 1000);
	pid = fork();
	if (pid != 0)
		return pid;
	/* a member must not outlive the process that started it */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	setpgid(0, 0);
	{
		int fd = open(log, O_WRONLY | O_APPEND | O_CREAT, 0644);

		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
	}
	closefrom(3);
	execl(ETCD, "etcd", "--name", name, "--data-dir", data,
	      "--listen-client-urls", client, "--advertise-client-urls", client,
	      "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
	      "--initial-cluster", cluster, "--initial-cluster-state", "new",
	      "--initial-cluster-token", c->dir, "--heartbeat-interval", heartbeat,
	      "--election-timeout", election, "--logger", "zap", "--log-level", "warn",
	      (char *)NULL);
	_exit(127);
}

static bool healthy(const struct lwt_etcd *c, int i)
{
	char url[128], *out;
	bool ok;

	snprintf(url, sizeof(url), "%s/health", c->ep[i]);
	ok = request(url, NULL, &out, 2000) == 200 && out && strstr(out, "\"true\"");
	free(out);
	return ok;
}

static void show_logs(const struct lwt_etcd *c)
{
	char cmd[300];

	snprintf(cmd, sizeof(cmd), "tail -n 3 %s/m*.log >&2", c->dir);
	(void)!system(cmd);
}

static void stop_members(struct lwt_etcd *c)
{
	for (int i = 0; i < c->n; i++)
		if (c->pid[i] > 0) {
			kill(c->pid[i], SIGKILL);
			waitpid(c->pid[i], NULL, 0);
			c->pid[i] = 0;
		}
}

/* Picks 2 x N distinct free ports. */
static void pick_ports(struct lwt_etcd *c)
{
	int ports[2 * LWT_ETCD_MAX], k = 0;

	while (k < 2 * c->n) {
		int p = lwt_free_port();
		bool dup = p <= 0;

		for (int j = 0; j < k; j++)
			dup |= ports[j] == p;
		if (!dup)
			ports[k++] = p;
	}
	for (int i = 0; i < c->n; i++) {
		c->client[i] = ports[2 * i];
		c->peer[i] = ports[2 * i + 1];
	}
}

static void name_endpoints(struct lwt_etcd *c)
{
	size_t len = 0;

	for (int i = 0; i < c->n; i++) {
		snprintf(c->ep[i], sizeof(c->ep[i]), "http://127.0.0.1:%d", c->client[i]);
		len += (size_t)snprintf(c->endpoints + len, sizeof(c->endpoints) - len, "%s%s",
					i ? "," : "", c->ep[i]);
	}
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

struct lwt_etcd *lwt_etcd_start(int members, int election_ms)
{
	const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	struct lwt_etcd *c = calloc(1, sizeof(*c));

	if (!c || members < 1 || members > LWT_ETCD_MAX) {
		free(c);
		return NULL;
	}
	c->n = members;
	c->owner = true;
	/* traffic stays on loopback, whatever the environment says */
	unsetenv("http_proxy");
	unsetenv("HTTP_PROXY");
	curl_global_init(CURL_GLOBAL_DEFAULT);
	/* a port picked here may be taken before etcd binds it: try again */
	for (int attempt = 0; attempt < 3; attempt++) {
		int64_t until = now_ms() + START_MS;
		int up = 0;

		snprintf(c->dir, sizeof(c->dir), "%s/lwt-etcd-XXXXXX", base);
		if (!mkdtemp(c->dir)) {
			fprintf(stderr, "lwt_etcd: mkdtemp: %s\n", strerror(errno));
			break;
		}
		pick_ports(c);
		name_endpoints(c);
		for (int i = 0; i < c->n; i++)
			c->pid[i] = spawn(c, i, election_ms);
		while (up < c->n && now_ms() < until) {
			bool died = false;

			for (int i = 0; i < c->n; i++)
				died |= waitpid(c->pid[i], NULL, WNOHANG) == c->pid[i];
			if (died)
				break;
			up = 0;
			for (int i = 0; i < c->n; i++)
				up += healthy(c, i);
			if (up < c->n)
				sleep_ms(50);
		}
		if (up == c->n)
			return c;
		fprintf(stderr, "lwt_etcd: the cluster in %s did not come up:\n", c->dir);
		show_logs(c);
		stop_members(c);
		nftw(c->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	}
	free(c);
	return NULL;
}

void lwt_etcd_stop(struct lwt_etcd *c)
{
	if (!c)
		return;
	if (c->owner) {
		stop_members(c);
		nftw(c->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	}
	free(c);
}

void lwt_etcd_kill(struct lwt_etcd *c, int i)
{
	cr_assert(c->owner, "the shared cluster's members are not the test's to kill");
	kill(c->pid[i], SIGKILL);
	waitpid(c->pid[i], NULL, 0);
	c->pid[i] = 0;
}

void lwt_etcd_signal(const struct lwt_etcd *c, int i, int sig)
{
	cr_assert(c->owner, "the shared cluster's members are not the test's to stop");
	kill(c->pid[i], sig);
}

int lwt_etcd_members(const struct lwt_etcd *c)
{
	return c->n;
}

const char *lwt_etcd_endpoints(const struct lwt_etcd *c)
{
	return c->endpoints;
}

const char *lwt_etcd_endpoint(const struct lwt_etcd *c, int i)
{
	return c->ep[i];
}

pid_t lwt_etcd_pid(const struct lwt_etcd *c, int i)
{
	return c->pid[i];
}

/* -------------------------------------------------------------- shared */

void lwt_etcd_shared_start(void)
{
	char env[64 + LWT_ETCD_MAX * 24];
	size_t len;

	shared = lwt_etcd_start(3, 0);
	if (!shared)
		return;
	len = (size_t)snprintf(env, sizeof(env), "%d", shared->n);
	for (int i = 0; i < shared->n; i++)
		len += (size_t)snprintf(env + len, sizeof(env) - len, " %d %d",
					shared->client[i], (int)shared->pid[i]);
	setenv(SHARED_ENV, env, 1);
}

void lwt_etcd_shared_stop(void)
{
	lwt_etcd_stop(shared);
	shared = NULL;
	unsetenv(SHARED_ENV);
}

struct lwt_etcd *lwt_etcd_shared(void)
{
	const char *env = getenv(SHARED_ENV);
	struct lwt_etcd *c = calloc(1, sizeof(*c));
	int used;

	cr_assert_not_null(c);
	cr_assert(env, "no etcd cluster runs for this test binary (is etcd-server "
		  "installed? see the output before the first test)");
	cr_assert_eq(sscanf(env, "%d%n", &c->n, &used), 1);
	for (int i = 0; i < c->n; i++) {
		int pid, more;

		cr_assert_eq(sscanf(env + used, " %d %d%n", &c->client[i], &pid, &more), 2);
		c->pid[i] = pid;
		used += more;
	}
	name_endpoints(c);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	return c;
}
