/* SPDX-License-Identifier: BSD-2-Clause */
#include "config.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "etcd.h"
#include "runenv.h"
#include "lwtest.h"
#include "nginx.h"
#include "testing.h"
#include "webdav.h"

/* the backends of lock files first, those on the fault nginx leading,
 * then etcd; each on both engines */
#define NFAULTS 6
#define NFILES 12
static const struct lwt_param matrix[] = {
	{ LW_ENGINE_URING, LWT_BE_LOCAL }, { LW_ENGINE_EPOLL, LWT_BE_LOCAL },
	{ LW_ENGINE_URING, LWT_BE_DAV }, { LW_ENGINE_EPOLL, LWT_BE_DAV },
	{ LW_ENGINE_URING, LWT_BE_REST }, { LW_ENGINE_EPOLL, LWT_BE_REST },
	{ LW_ENGINE_URING, LWT_BE_APACHE }, { LW_ENGINE_EPOLL, LWT_BE_APACHE },
	{ LW_ENGINE_URING, LWT_BE_NGINX_DAV }, { LW_ENGINE_EPOLL, LWT_BE_NGINX_DAV },
	{ LW_ENGINE_URING, LWT_BE_RCLONE }, { LW_ENGINE_EPOLL, LWT_BE_RCLONE },
	{ LW_ENGINE_URING, LWT_BE_ETCD }, { LW_ENGINE_EPOLL, LWT_BE_ETCD },
};

/* The N cases of the matrix from FIRST that run on a wanted engine, copied
 * into CASES (Criterion keeps a pointer to them: static storage). */
static struct criterion_test_params wanted(struct lwt_param *cases, size_t first, size_t n)
{
	memcpy(cases, matrix + first, n * sizeof(*cases));
	return cr_make_param_array(struct lwt_param, cases,
				   lwt_keep_wanted(cases, n, sizeof(*cases),
						   offsetof(struct lwt_param, engine)));
}

struct criterion_test_params lwt_engine_params(void)
{
	static struct lwt_param cases[2];

	return wanted(cases, 0, LW_ARRAY_SIZE(cases));
}

struct criterion_test_params lwt_faults_params(void)
{
	static struct lwt_param cases[NFAULTS];

	return wanted(cases, 0, LW_ARRAY_SIZE(cases));
}

struct criterion_test_params lwt_files_params(void)
{
	static struct lwt_param cases[NFILES];

	return wanted(cases, 0, LW_ARRAY_SIZE(cases));
}

struct criterion_test_params lwt_matrix_params(void)
{
	static struct lwt_param cases[LW_ARRAY_SIZE(matrix)];

	return wanted(cases, 0, LW_ARRAY_SIZE(cases));
}

struct criterion_test_params lwt_etcd_params(void)
{
	static struct lwt_param cases[LW_ARRAY_SIZE(matrix) - NFILES];

	return wanted(cases, NFILES, LW_ARRAY_SIZE(cases));
}

static void open_repo(struct lwt *t, int64_t refresh, int64_t stale)
{
	enum lw_engine engine = t->param.engine;

	cr_assert_eq(lw_loop_new(engine, &t->loop), 0, "loop: %s", lw_errmsg());
	cr_assert_eq(lw_loop_engine(t->loop), engine);
	cr_assert_eq(lw_loop_start(t->loop), 0);
	cr_assert_eq(lw_repo_new(t->loop, t->url, &t->repo), 0, "repo: %s", lw_errmsg());
	cr_assert_eq(lw_repo_set_timing(t->repo, refresh, stale), 0, "%s", lw_errmsg());
	cr_assert_eq(lw_repo_set_recheck_delay(t->repo, LW_MSEC(50)), 0);
	cr_assert_eq(lw_repo_set_check_retry(t->repo, LW_MSEC(100)), 0);
	cr_assert_eq(lw_repo_set_op_timeout(t->repo, lwt_op_timeout()), 0);
}

void lwt_start(struct lwt *t, const struct lwt_param *p, const char *base,
	       int64_t refresh, int64_t stale)
{
	lwt_engine_case(p->engine);
	memset(t, 0, sizeof(*t));
	t->param = *p;
	if (p->backend == LWT_BE_LOCAL) {
		if (!base)
			base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
		snprintf(t->dir, sizeof(t->dir), "%s/lwtest-XXXXXX", base);
		cr_assert(mkdtemp(t->dir), "mkdtemp %s", t->dir);
		snprintf(t->url, sizeof(t->url), "%s", t->dir);
	} else if (p->backend == LWT_BE_ETCD) {
		t->etcd = lwt_etcd_shared();
		lwt_etcd_prefix(t->prefix);
		snprintf(t->url, sizeof(t->url), "etcd:%s/%s", lwt_etcd_endpoints(t->etcd),
			 t->prefix);
	} else if (p->backend >= LWT_BE_APACHE) {
		static const enum lwt_webdav_kind kinds[] = {
			[LWT_BE_APACHE] = LWT_WEBDAV_APACHE,
			[LWT_BE_NGINX_DAV] = LWT_WEBDAV_NGINX,
			[LWT_BE_RCLONE] = LWT_WEBDAV_RCLONE,
		};

		t->wd = lwt_webdav_start(kinds[p->backend]);
		cr_assert(t->wd, "%s did not start", lwt_webdav_name(kinds[p->backend]));
		snprintf(t->dir, sizeof(t->dir), "%s/repo", lwt_webdav_root(t->wd));
		snprintf(t->url, sizeof(t->url), "%s", lwt_webdav_url(t->wd, "/repo/"));
	} else {
		t->ng = lwt_nginx_start();
		cr_assert(t->ng, "nginx did not start");
		snprintf(t->dir, sizeof(t->dir), "%s/repo", lwt_nginx_root(t->ng));
		snprintf(t->url, sizeof(t->url), "%s",
			 lwt_nginx_url(t->ng, p->backend == LWT_BE_DAV ? LWT_DAV : LWT_REST,
				       "/repo/"));
	}
	open_repo(t, refresh, stale);
	cr_assert_eq(lw_repo_init(t->repo), 0, "init: %s", lw_errmsg());
}

void lwt_other(const struct lwt *t, struct lwt *other)
{
	memset(other, 0, sizeof(*other));
	other->param = t->param;
	memcpy(other->dir, t->dir, sizeof(other->dir));
	memcpy(other->url, t->url, sizeof(other->url));
	open_repo(other, LW_SEC(1), LW_SEC(3));
}

void lwt_other_stop(struct lwt *other)
{
	lw_repo_unref(other->repo);
	lw_loop_free(other->loop);
	other->repo = NULL;
	other->loop = NULL;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	remove(path);
	return 0;
}

void lwt_stop(struct lwt *t)
{
	lw_repo_unref(t->repo);
	lw_loop_free(t->loop);
	t->repo = NULL;
	t->loop = NULL;
	if (t->etcd) {
		lwt_etcd_clear(t->etcd, t->prefix);
		lwt_etcd_stop(t->etcd); /* the handle: the cluster runs on */
	} else if (t->ng) {
		lwt_nginx_stop(t->ng); /* removes its directory too */
	} else if (t->wd) {
		lwt_webdav_stop(t->wd);
	} else {
		nftw(t->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	}
	t->ng = NULL;
	t->wd = NULL;
	t->etcd = NULL;
}

int lwt_count(const struct lwt *t)
{
	char path[PATH_MAX + 8];
	struct dirent *de;
	DIR *d;
	int n = 0;

	if (t->etcd)
		return lwt_etcd_count(t->etcd, t->prefix);
	snprintf(path, sizeof(path), "%s/locks", t->dir);
	d = opendir(path);
	cr_assert(d, "opendir %s", path);
	/* every file: a temporary file left by a create counts as left
	 * behind; only dav: init's .keep is no lock */
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") &&
		    strcmp(de->d_name, ".keep"))
			n++;
	closedir(d);
	return n;
}

bool lwt_exists(const struct lwt *t, const char *id)
{
	char path[PATH_MAX + 80];

	if (t->etcd)
		return lwt_etcd_get(t->etcd, t->prefix, id, NULL, NULL);
	snprintf(path, sizeof(path), "%s/locks/%s", t->dir, id);
	return access(path, F_OK) == 0;
}

void lwt_plant_bytes(const struct lwt *t, const void *data, size_t len, char id[65])
{
	char path[PATH_MAX + 80];
	struct lw__id rid;
	int fd;

	cr_assert_eq(lw__id_random(&rid), 0);
	lw__id_hex(&rid, id);
	if (t->etcd) {
		lwt_etcd_put(t->etcd, t->prefix, id, data, len);
		return;
	}
	snprintf(path, sizeof(path), "%s/locks/%s", t->dir, id);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
	cr_assert(fd >= 0, "open %s", path);
	cr_assert_eq(write(fd, data, len), (ssize_t)len);
	close(fd);
	if (t->wd)
		lwt_webdav_own(t->wd, path);
}

struct lw__record lwt_record(bool exclusive)
{
	const struct lw__self *self = lw__self();

	/* pid 1 lives as long as the machine: a holder that is never gone */
	return (struct lw__record){
		.time = lw__now_real(),
		.stale_timeout = LW_SEC(30 * 60),
		.pid = 1, .uid = 1000, .gid = 1000,
		.pid_ns = self->pid_ns,
		.pid_start = 0,
		.exclusive = exclusive,
		.hostname = "otherhost", .username = "alice",
		.boot_id = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
		.purpose = "a test holder",
	};
}

void lwt_plant(const struct lwt *t, const struct lw__record *rec, char id[65])
{
	uint8_t buf[LW_RECORD_MAX];
	int len = lw__record_encode(rec, buf, sizeof(buf));

	cr_assert_gt(len, 0);
	lwt_plant_bytes(t, buf, (size_t)len, id);
}

struct lw_lock *lwt_lock(struct lw_repo *repo, unsigned flags, int expect)
{
	struct lw_lock *lock;
	int r;

	cr_assert_eq(lw_lock_new(repo, flags, "lwtest", &lock), 0);
	r = lw_lock_acquire(lock);
	cr_assert_eq(r, expect, "acquire: %d (%s), expected %d", r, lw_errmsg(), expect);
	return lock;
}

int64_t lwt_ms(void)
{
	return lw__now_boot() / LW_MSEC(1);
}

int64_t lwt_wait_fd(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	if (poll(&p, 1, ms) == 1)
		return lw__now_boot();
	return 0;
}
