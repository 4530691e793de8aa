/* SPDX-License-Identifier: BSD-2-Clause */
/* Holding a lock: refresh replaces the file, the context stays live, and
 * every way of ending (release, cancel, removal, loop free) is observable
 * and leaves no file behind.
 *
 * Every timed test here has the same timeout, 30 s: Criterion 2.4's
 * sandbox (BoxFort's bxfi_push_timeout) inserts a test's timeout into its
 * list by deadline without linking the rest of the list after it, so a
 * test with an earlier deadline than one still running drops that one's
 * timeout, and LeakSanitizer reports it (48 bytes) when the runner exits. */
#include "config.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lwtest.h"

struct events {
	atomic_int refreshed;
	atomic_int lost;
	atomic_int released;
};

static void count(struct lw_lock *lock, const struct lw_event *ev, void *userdata)
{
	struct events *e = userdata;

	if (ev->type == LW_EVENT_REFRESHED) {
		cr_expect_gt(ev->next, ev->at, "the new deadline lies ahead");
		atomic_fetch_add(&e->refreshed, 1);
	} else if (ev->type == LW_EVENT_LOST) {
		atomic_fetch_add(&e->lost, 1);
	} else if (ev->type == LW_EVENT_RELEASED) {
		atomic_fetch_add(&e->released, 1);
	}
}

static struct lw_lock *held(struct lwt *t, unsigned flags, struct events *ev)
{
	struct lw_lock *lock;

	cr_assert_eq(lw_lock_new(t->repo, flags, "refresh test", &lock), 0);
	if (ev)
		cr_assert_eq(lw_lock_set_event_fn(lock, count, ev), 0);
	cr_assert_eq(lw_lock_acquire(lock), 0, "%s", lw_errmsg());
	return lock;
}

/* The record time in the lock file ID. */
static int64_t record_time(const struct lwt *t, const char *id)
{
	char path[PATH_MAX + 80];
	uint8_t buf[LW_RECORD_MAX + 1];
	struct lw__record *rec;
	const char *why;
	int64_t time;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "%s/locks/%s", t->dir, id);
	fd = open(path, O_RDONLY);
	cr_assert(fd >= 0, "%s exists", path);
	n = read(fd, buf, sizeof(buf));
	close(fd);
	cr_assert_eq(lw__record_decode(buf, (size_t)n, &rec, &why), 0);
	time = rec->time;
	free(rec);
	return time;
}

/* With a 1 s interval the file is replaced about every second (new id,
 * newer time, old file gone) and the context stays live throughout. */
LWT_FILES_TEST(refresh, replaces_the_file, .timeout = 30)
{
	struct events ev = { 0 };
	char first[65], id[65], last[65];
	int changes = 0;
	struct lw_lock *lock;
	struct lwt t;
	int64_t t0;

	lwt_start(&t, p, NULL, LW_SEC(1), LW_SEC(3));
	lock = held(&t, LW_LOCK_EXCLUSIVE, &ev);
	cr_assert_eq(lw_lock_id(lock, first), 0);
	t0 = record_time(&t, first);
	strcpy(last, first);
	for (int i = 0; i < 110; i++) {
		usleep(50 * 1000);
		cr_assert(!lw_ctx_done(lw_lock_ctx(lock)), "context ended: %s",
			  lw_ctx_cause(lw_lock_ctx(lock)));
		cr_assert_eq(lw_lock_id(lock, id), 0);
		if (strcmp(id, last) != 0) {
			changes++;
			strcpy(last, id);
		}
	}
	cr_expect_geq(changes, 4, "refreshed %d times in 5.5 s", changes);
	cr_expect_geq(atomic_load(&ev.refreshed), 4);
	cr_expect_eq(atomic_load(&ev.lost), 0);
	cr_expect(lwt_wait_for(lwt_count(&t) == 1, 1000), "the old files are gone");
	cr_expect(!lwt_exists(&t, first));
	cr_assert_eq(lw_lock_id(lock, id), 0);
	cr_expect_gt(record_time(&t, id), t0 + LW_SEC(3), "the record time moved on");
	cr_expect_gt(lw_lock_deadline(lock), lw__now_boot(), "the deadline lies ahead");
	cr_expect_eq(lw_lock_release(lock), 0);
	cr_expect_eq(lwt_count(&t), 0);
	lw_lock_free(lock);
	lwt_stop(&t);
}

struct done_seen {
	atomic_int calls;
	enum lw_cause cause;
};

static void on_done(struct lw_ctx *ctx, void *userdata)
{
	struct done_seen *d = userdata;

	d->cause = lw_ctx_err(ctx);
	atomic_fetch_add(&d->calls, 1);
}

/* Release ends the context (fd readable, callback run, cause given) and
 * deletes the file before it returns. */
LWT_MATRIX_TEST(refresh, release, .timeout = 30)
{
	struct done_seen done = { 0 };
	struct events ev = { 0 };
	struct lw_lock *lock;
	struct lw_ctx *ctx;
	struct lwt t;
	int fd;

	lwt_start(&t, p, NULL, LW_SEC(1), LW_SEC(3));
	lock = held(&t, 0, &ev);
	ctx = lw_ctx_ref(lw_lock_ctx(lock));
	fd = lw_ctx_fd(ctx);
	cr_assert_geq(fd, 0);
	cr_assert_eq(lw_ctx_on_done(ctx, on_done, &done), 0);
	cr_expect_eq(lwt_wait_fd(fd, 0), 0, "not readable while held");
	cr_expect_eq(lw_ctx_err(ctx), LW_CAUSE_NONE);
	cr_expect_null(lw_ctx_cause(ctx));
	cr_assert_eq(lw_lock_release(lock), 0);
	cr_expect_eq(lwt_count(&t), 0, "release deleted the file");
	cr_expect_neq(lwt_wait_fd(fd, 1000), 0, "the fd is readable");
	cr_expect_neq(lwt_wait_fd(fd, 0), 0, "and stays readable");
	cr_expect_eq(lw_ctx_err(ctx), LW_CAUSE_RELEASED);
	cr_expect(strstr(lw_ctx_cause(ctx), "released"), "%s", lw_ctx_cause(ctx));
	cr_expect(lwt_wait_for(atomic_load(&done.calls) == 1, 1000), "on_done ran");
	cr_expect_eq(done.cause, LW_CAUSE_RELEASED);
	cr_expect_eq(atomic_load(&ev.released), 1);
	cr_expect_eq(lw_lock_release(lock), -EALREADY);
	lw_lock_free(lock);
	/* the context outlives the lock and the loop */
	lwt_stop(&t);
	cr_expect_eq(lw_ctx_err(ctx), LW_CAUSE_RELEASED);
	lw_ctx_unref(ctx);
}

/* An on_done callback registered after the end runs too. */
LWT_MATRIX_TEST(refresh, on_done_after_the_end, .timeout = 30)
{
	struct done_seen done = { 0 };
	struct lw_lock *lock;
	struct lwt t;

	lwt_start(&t, p, NULL, LW_SEC(1), LW_SEC(3));
	lock = held(&t, 0, NULL);
	cr_assert_eq(lw_lock_release(lock), 0);
	cr_assert_eq(lw_ctx_on_done(lw_lock_ctx(lock), on_done, &done), 0);
	cr_expect(lwt_wait_for(atomic_load(&done.calls) == 1, 1000));
	lw_lock_free(lock);
	lwt_stop(&t);
}

/* The application cancels: the lock is released and the cause says so. */
LWT_MATRIX_TEST(refresh, cancel, .timeout = 30)
{
	struct lw_lock *lock;
	struct lwt t;

	lwt_start(&t, p, NULL, LW_SEC(1), LW_SEC(3));
	lock = held(&t, LW_LOCK_EXCLUSIVE, NULL);
	lw_ctx_cancel(lw_lock_ctx(lock));
	cr_expect(lwt_wait_for(lw_ctx_done(lw_lock_ctx(lock)), 1000));
	cr_expect_eq(lw_ctx_err(lw_lock_ctx(lock)), LW_CAUSE_CANCELLED);
	cr_expect(lwt_wait_for(lwt_count(&t) == 0, 2000), "the file was deleted");
	lw_lock_free(lock);
	lwt_stop(&t);
}

/* Someone runs unlock --remove-all: at the next refresh the old file is
 * gone, the context ends with REMOVED, and the new file is deleted too. */
LWT_MATRIX_TEST(refresh, removed_by_someone_else, .timeout = 30)
{
	struct events ev = { 0 };
	struct lw_lock *lock;
	struct lw_ctx *ctx;
	struct lwt t, o;
	int64_t woke;

	lwt_start(&t, p, NULL, LW_SEC(1), LW_SEC(3));
	lock = held(&t, LW_LOCK_EXCLUSIVE, &ev);
	ctx = lw_lock_ctx(lock);
	lwt_other(&t, &o);
	cr_assert_eq(lw_repo_unlock(o.repo, LW_UNLOCK_ALL, NULL, NULL), 1);
	lwt_other_stop(&o);
	woke = lwt_wait_fd(lw_ctx_fd(ctx), 2500);
	cr_assert_neq(woke, 0, "the context ended within one interval");
	cr_expect_eq(lw_ctx_err(ctx), LW_CAUSE_REMOVED);
	cr_expect(strstr(lw_ctx_cause(ctx), "removed by someone else"), "%s",
		  lw_ctx_cause(ctx));
	cr_expect(lwt_wait_for(atomic_load(&ev.lost) == 1, 1000), "one LOST event");
	cr_expect(lwt_wait_for(lwt_count(&t) == 0, 2000), "no lock file left behind");
	lw_lock_free(lock);
	lwt_stop(&t);
}

/* lw_loop_free releases what the application did not. */
LWT_MATRIX_TEST(refresh, loop_free_releases, .timeout = 30)
{
	struct lw_lock *locks[3];
	struct lwt t;

	lwt_start(&t, p, NULL, LW_SEC(1), LW_SEC(3));
	for (int i = 0; i < 3; i++)
		locks[i] = held(&t, 0, NULL);
	cr_assert_eq(lwt_count(&t), 3);
	lw_repo_unref(t.repo);
	lw_loop_free(t.loop);
	t.repo = NULL;
	t.loop = NULL;
	cr_expect_eq(lwt_count(&t), 0);
	for (int i = 0; i < 3; i++) {
		cr_expect_eq(lw_ctx_err(lw_lock_ctx(locks[i])), LW_CAUSE_RELEASED);
		lw_lock_free(locks[i]);
	}
	lwt_stop(&t);
}

/* Timings under which a lock cannot live to its next refresh, with the
 * 1.5 x interval margin, are refused: with 1 s and 2 s the deadline would
 * come 0.5 s after each write, before the next refresh. */
LWT_ENGINE_TEST(refresh, invalid_timing, .timeout = 30)
{
	struct lwt t;

	lwt_start(&t, p, NULL, LW_SEC(1), LW_SEC(3));
	cr_expect_eq(lw_repo_set_timing(t.repo, LW_SEC(2), LW_SEC(3)), -EINVAL);
	cr_expect(strstr(lw_errmsg(), "2.5 x the refresh interval"), "%s", lw_errmsg());
	cr_expect_eq(lw_repo_set_timing(t.repo, LW_SEC(1), LW_SEC(2)), -EINVAL);
	cr_expect_eq(lw_repo_set_timing(t.repo, 0, LW_SEC(3)), -EINVAL);
	cr_expect_eq(lw_repo_set_timing(t.repo, LW_SEC(1), LW_SEC(3)), 0);
	/* over 100 years: refused, the limit named */
	cr_expect_eq(lw_repo_set_timing(t.repo, LW_SEC(1), INT64_MAX), -ERANGE);
	cr_expect(strstr(lw_errmsg(), "100 years"), "%s", lw_errmsg());
	cr_expect_eq(lw_repo_set_op_timeout(t.repo, LW_DURATION_MAX + 1), -ERANGE);
	cr_expect_eq(lw_repo_set_retry_lock(t.repo, LW_DURATION_MAX), 0);
	lwt_stop(&t);
}

/* A call that fails on a NULL argument says so: lw_errmsg() never shows
 * an earlier call's message (issue 12). */
Test(refresh, null_argument_has_its_own_message)
{
	struct lw_loop *loop;
	struct lw_repo *repo;
	char dir[] = "/tmp/lwtest-null-XXXXXX";

	cr_assert(mkdtemp(dir));
	cr_assert_eq(lw_loop_new(LW_ENGINE_AUTO, &loop), 0, "%s", lw_errmsg());
	cr_assert_eq(lw_repo_new(loop, dir, &repo), 0, "%s", lw_errmsg());
	for (int i = 0; i < 6; i++) {
		int r;

		cr_assert_eq(lw_repo_set_timing(repo, LW_SEC(2), LW_SEC(3)), -EINVAL);
		cr_assert(strstr(lw_errmsg(), "2.5 x"), "%s", lw_errmsg());
		switch (i) {
		case 0: r = lw_repo_set_timing(NULL, LW_SEC(1), LW_SEC(3)); break;
		case 1: r = lw_repo_set_op_timeout(NULL, LW_SEC(1)); break;
		case 2: r = lw_repo_list(NULL, NULL, NULL); break;
		case 3: r = lw_lock_release(NULL); break;
		case 4: r = lw_repo_init(NULL); break;
		default: r = lw_loop_start(NULL); break;
		}
		cr_expect_eq(r, -EINVAL, "call %d", i);
		cr_expect(!strstr(lw_errmsg(), "2.5 x") && strstr(lw_errmsg(), "NULL"),
			  "call %d: lw_errmsg() says \"%s\"", i, lw_errmsg());
	}
	lw_repo_unref(repo);
	lw_loop_free(loop);
	rmdir(dir);
}

struct acquired {
	bool done;
	int err;
};

static void on_acquired(struct lw_lock *lock, int err, const char *msg, void *userdata)
{
	struct acquired *a = userdata;

	a->err = err;
	a->done = true;
}

static void run_for(struct lw_loop *loop, int ms, const bool *until)
{
	int64_t end = lwt_ms() + ms;
	struct pollfd p = { .fd = lw_loop_fd(loop), .events = POLLIN };

	while (lwt_ms() < end && !(until && *until)) {
		poll(&p, 1, 50);
		cr_assert_eq(lw_loop_run_once(loop, 0), 0);
	}
}

/* An application with its own event loop polls lw_loop_fd and calls
 * lw_loop_run_once: acquire, refreshes and release all happen. */
LWT_MATRIX_TEST(refresh, embedded_loop, .timeout = 30)
{
	struct acquired got = { 0 }, gone = { 0 };
	struct events ev = { 0 };
	struct lw_loop *loop;
	struct lw_repo *repo;
	struct lw_lock *lock;
	struct lwt t;

	lwt_start(&t, p, NULL, LW_SEC(1), LW_SEC(3));
	cr_assert_eq(lw_loop_new(p->engine, &loop), 0);
	cr_assert_eq(lw_repo_new(loop, t.url, &repo), 0);
	cr_assert_eq(lw_repo_set_timing(repo, LW_SEC(1), LW_SEC(3)), 0);
	cr_assert_geq(lw_loop_fd(loop), 0);
	cr_assert_eq(lw_lock_new(repo, 0, NULL, &lock), 0);
	cr_assert_eq(lw_lock_set_event_fn(lock, count, &ev), 0);
	cr_assert_eq(lw_lock_acquire_async(lock, on_acquired, &got), 0);
	run_for(loop, 5000, &got.done);
	cr_assert(got.done);
	cr_assert_eq(got.err, 0);
	run_for(loop, 3500, NULL);
	cr_expect_geq(atomic_load(&ev.refreshed), 2);
	cr_expect(!lw_ctx_done(lw_lock_ctx(lock)));
	cr_expect_eq(lw_loop_run_once(t.loop, 0), -EBUSY, "a started loop is not run");
	cr_assert_eq(lw_lock_release_async(lock, on_acquired, &gone), 0);
	run_for(loop, 5000, &gone.done);
	cr_expect_eq(gone.err, 0);
	cr_expect_eq(lwt_count(&t), 0);
	/* a blocking call on an embedded loop runs the loop itself */
	lw_lock_free(lock);
	lock = lwt_lock(repo, 0, 0);
	cr_expect_eq(lwt_count(&t), 1);
	lw_lock_free(lock);
	cr_expect(lwt_wait_for((lw_loop_run_once(loop, 0), lwt_count(&t) == 0), 2000));
	lw_repo_unref(repo);
	lw_loop_free(loop);
	lwt_stop(&t);
}

/*
 * The kernel's inotify limits, set for one run: a child process of a user
 * of its own (so that nobody else's instances count) in a user namespace of
 * its own, whose /proc/sys/user/max_inotify_instances and
 * max_inotify_watches it may lower (a namespace's limits only add to its
 * parent's).  The child uses no Criterion: it reports through a shared
 * page and leaves with _exit, so that no Criterion or LeakSanitizer exit
 * path runs in it.
 */
#define NS_UID 54321

struct ns_run {
	enum lw_engine engine;
	const char *instances, *watches; /* the limits to write; NULL: as they are */
	char dir[PATH_MAX];              /* the child's, made by the parent */
	atomic_int notices;              /* "cannot watch" lines logged */
	int64_t seen_after;              /* from a removal to the lock's end */
	char msg[PATH_MAX + 1024];        /* what failed; "" when all went well */
};

#define NS_CHECK(run, cond, ...)                                               \
	do {                                                                   \
		if (!(cond)) {                                                 \
			snprintf((run)->msg, sizeof((run)->msg), __VA_ARGS__); \
			return false;                                          \
		}                                                              \
	} while (0)

static bool write_limit(struct ns_run *run, const char *name, const char *value)
{
	char path[64];
	int fd;
	bool ok;

	snprintf(path, sizeof(path), "/proc/sys/user/%s", name);
	fd = open(path, O_WRONLY);
	NS_CHECK(run, fd >= 0, "open %s: %s", path, strerror(errno));
	ok = write(fd, value, strlen(value)) == (ssize_t)strlen(value);
	close(fd);
	NS_CHECK(run, ok, "write %s to %s: %s", value, path, strerror(errno));
	return true;
}

static void ns_log(void *userdata, int priority, const char *msg)
{
	struct ns_run *run = userdata;

	if (strstr(msg, "cannot watch"))
		atomic_fetch_add(&run->notices, 1);
}

/* A started loop on RUN's engine, whose notices RUN counts. */
static bool ns_loop(struct ns_run *run, struct lw_loop **loopp)
{
	NS_CHECK(run, lw_loop_new(run->engine, loopp) == 0, "loop: %s", lw_errmsg());
	lw_loop_set_log_fn(*loopp, ns_log, run);
	lw_loop_set_log_priority(*loopp, LOG_NOTICE);
	NS_CHECK(run, lw_loop_start(*loopp) == 0, "loop start: %s", lw_errmsg());
	return true;
}

/* A repository in RUN's directory, refreshed every 10 min, and its lock. */
static bool ns_repo(struct ns_run *run, struct lw_loop *loop, const char *name,
		    struct lw_repo **repop)
{
	char path[PATH_MAX + 16];

	snprintf(path, sizeof(path), "%s/%s", run->dir, name);
	NS_CHECK(run, lw_repo_new(loop, path, repop) == 0, "repo %s: %s", path, lw_errmsg());
	NS_CHECK(run, lw_repo_set_timing(*repop, LW_SEC(600), LW_SEC(1800)) == 0, "%s",
		 lw_errmsg());
	NS_CHECK(run, lw_repo_set_recheck_delay(*repop, LW_MSEC(50)) == 0, "%s", lw_errmsg());
	NS_CHECK(run, lw_repo_init(*repop) == 0, "init %s: %s", path, lw_errmsg());
	return true;
}

/* Removes LOCK's file as someone else would, and expects the lock lost
 * within MS. */
static bool ns_remove_and_see(struct ns_run *run, struct lw_lock *lock, const char *repo,
			      int ms)
{
	struct lw_ctx *ctx = lw_lock_ctx(lock);
	char id[65], path[PATH_MAX + 96];
	int64_t t0, woke;

	NS_CHECK(run, lw_lock_id(lock, id) == 0, "no lock id");
	snprintf(path, sizeof(path), "%s/%s/locks/%s", run->dir, repo, id);
	t0 = lw__now_boot();
	NS_CHECK(run, unlink(path) == 0, "unlink %s: %s", path, strerror(errno));
	woke = lwt_wait_fd(lw_ctx_fd(ctx), ms);
	NS_CHECK(run, woke, "the lock in %s was not lost within %d ms of its file's removal "
		 "(refresh interval 10 min)", repo, ms);
	NS_CHECK(run, lw_ctx_err(ctx) == LW_CAUSE_REMOVED, "ended, but not as removed: %s",
		 lw_ctx_cause(ctx));
	run->seen_after = woke - t0;
	return true;
}

static int ns_child(struct ns_run *run, bool (*fn)(struct ns_run *))
{
	if (setgid(NS_UID) < 0 || setuid(NS_UID) < 0) {
		snprintf(run->msg, sizeof(run->msg), "setuid %d: %s", NS_UID, strerror(errno));
		return 1;
	}
	/* after setuid, which clears it: gone with the test if it times out */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (unshare(CLONE_NEWUSER) < 0) {
		snprintf(run->msg, sizeof(run->msg), "unshare(CLONE_NEWUSER): %s",
			 strerror(errno));
		return 1;
	}
	if ((run->instances && !write_limit(run, "max_inotify_instances", run->instances)) ||
	    (run->watches && !write_limit(run, "max_inotify_watches", run->watches)))
		return 1;
	return fn(run) ? 0 : 1;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	remove(path);
	return 0;
}

/* Runs FN in a child under RUN's limits (see above); fails with its message. */
static void in_userns(const struct lwt_param *p, struct ns_run *tmpl,
		      bool (*fn)(struct ns_run *))
{
	struct ns_run *run = mmap(NULL, sizeof(*run), PROT_READ | PROT_WRITE,
				  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	int status;
	pid_t pid;

	lwt_engine_case(p->engine);
	cr_assert_neq(run, MAP_FAILED);
	*run = *tmpl;
	run->engine = p->engine;
	snprintf(run->dir, sizeof(run->dir), "%s/lwtest-ns-XXXXXX", base);
	cr_assert(mkdtemp(run->dir), "mkdtemp %s", run->dir);
	cr_assert_eq(chown(run->dir, NS_UID, NS_UID), 0, "chown %s: %s", run->dir,
		     strerror(errno));
	fflush(NULL);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0)
		_exit(ns_child(run, fn));
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	nftw(run->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	*tmpl = *run;
	munmap(run, sizeof(*run));
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s",
		  tmpl->msg[0] ? tmpl->msg : "the child died");
	cr_log_info("%s: the removal was seen after %.1f ms", lw_engine_name(p->engine),
		    (double)tmpl->seen_after / 1e6);
}

struct many {
	atomic_int done, failed;
};

static void on_one_acquired(struct lw_lock *lock, int err, const char *msg, void *userdata)
{
	struct many *m = userdata;

	if (err)
		atomic_fetch_add(&m->failed, 1);
	atomic_fetch_add(&m->done, 1);
}

#define NREPOS 200

static bool hold_in_many(struct ns_run *run)
{
	static struct lw_repo *repos[NREPOS];
	static struct lw_lock *locks[NREPOS];
	struct many m = { 0 };
	struct lw_loop *loop;
	char name[16];

	if (!ns_loop(run, &loop))
		return false;
	for (int i = 0; i < NREPOS; i++) {
		snprintf(name, sizeof(name), "r%03d", i);
		if (!ns_repo(run, loop, name, &repos[i]))
			return false;
		NS_CHECK(run, lw_lock_new(repos[i], LW_LOCK_EXCLUSIVE, "many", &locks[i]) == 0,
			 "%s", lw_errmsg());
		NS_CHECK(run, lw_lock_acquire_async(locks[i], on_one_acquired, &m) == 0, "%s",
			 lw_errmsg());
	}
	NS_CHECK(run, lwt_wait_for(atomic_load(&m.done) == NREPOS, 30000),
		 "%d of %d acquired in 30 s", atomic_load(&m.done), NREPOS);
	NS_CHECK(run, atomic_load(&m.failed) == 0, "%d acquires failed",
		 atomic_load(&m.failed));
	snprintf(name, sizeof(name), "r%03d", NREPOS - 1);
	if (!ns_remove_and_see(run, locks[NREPOS - 1], name, 1000))
		return false;
	for (int i = 0; i < NREPOS - 1; i++)
		NS_CHECK(run, !lw_ctx_done(lw_lock_ctx(locks[i])), "the lock in r%03d ended: %s",
			 i, lw_ctx_cause(lw_lock_ctx(locks[i])));
	NS_CHECK(run, atomic_load(&run->notices) == 0, "%d repositories were not watched",
		 atomic_load(&run->notices));
	for (int i = 0; i < NREPOS; i++) {
		lw_lock_free(locks[i]);
		lw_repo_unref(repos[i]);
	}
	lw_loop_free(loop);
	return true;
}

/* 200 local repositories on one loop, more than the kernel's inotify
 * instances per user (fs.inotify.max_user_instances, 128 by default, set
 * so for the run): each holds a lock, refreshed every 10 min; a lock file
 * removed in the 200th is noticed within a second, and the other 199 are
 * still held. */
LWT_ENGINE_TEST(refresh, removal_seen_in_the_200th_repository, .timeout = 30)
{
	struct ns_run run = { .instances = "128\n" };

	in_userns(p, &run, hold_in_many);
}

static bool hold_unwatched(struct ns_run *run)
{
	struct lw_lock *locks[2];
	struct lw_loop *loop;
	struct lw_repo *repo;

	if (!ns_loop(run, &loop) || !ns_repo(run, loop, "repo", &repo))
		return false;
	NS_CHECK(run, lw_repo_set_check_interval(repo, LW_MSEC(200)) == 0, "%s", lw_errmsg());
	for (int i = 0; i < 2; i++) {
		NS_CHECK(run, lw_lock_new(repo, 0, "unwatched", &locks[i]) == 0, "%s",
			 lw_errmsg());
		NS_CHECK(run, lw_lock_acquire(locks[i]) == 0, "acquire: %s", lw_errmsg());
	}
	if (!ns_remove_and_see(run, locks[1], "repo", 1000))
		return false;
	NS_CHECK(run, !lw_ctx_done(lw_lock_ctx(locks[0])), "the other lock ended: %s",
		 lw_ctx_cause(lw_lock_ctx(locks[0])));
	NS_CHECK(run, atomic_load(&run->notices) == 1,
		 "%d \"cannot watch\" notices for one repository, not one",
		 atomic_load(&run->notices));
	for (int i = 0; i < 2; i++)
		lw_lock_free(locks[i]);
	lw_repo_unref(repo);
	lw_loop_free(loop);
	return true;
}

/* Where the kernel refuses the watch (no inotify instance left: EMFILE;
 * no watch left: ENOSPC), a held lock's file is checked every check
 * interval (200 ms here) as on rest: and dav:: its removal is noticed
 * within a second, not at the refresh 10 min later, and the repository's
 * notice says so once. */
LWT_ENGINE_TEST(refresh, removal_seen_where_the_kernel_refuses_the_watch, .timeout = 30)
{
	struct ns_run no_instance = { .instances = "0\n" };
	struct ns_run no_watch = { .watches = "0\n" };

	in_userns(p, &no_instance, hold_unwatched);
	in_userns(p, &no_watch, hold_unwatched);
}

/* One loop's repositories share its inotify instance: a repository closed
 * on the same folder (which shares its watch) and one on another folder
 * (whose watch's IN_IGNORED then arrives) take nothing from the one left,
 * whose lock is held still and whose lock file's removal is noticed within
 * a second (refresh interval 10 min, checks every 2 min). */
LWT_ENGINE_TEST(refresh, watch_outlives_the_repositories_closed_beside_it, .timeout = 30)
{
	struct lw_repo *same, *other;
	struct lw_lock *mine, *a, *b;
	char other_dir[PATH_MAX + 8], id[65], path[PATH_MAX + 80];
	struct lwt t;

	lwt_start(&t, p, NULL, LW_SEC(600), LW_SEC(1800));
	snprintf(other_dir, sizeof(other_dir), "%s/other", t.dir);
	cr_assert_eq(lw_repo_new(t.loop, t.url, &same), 0, "%s", lw_errmsg());
	cr_assert_eq(lw_repo_new(t.loop, other_dir, &other), 0, "%s", lw_errmsg());
	cr_assert_eq(lw_repo_init(other), 0, "%s", lw_errmsg());
	mine = lwt_lock(t.repo, 0, 0);
	a = lwt_lock(same, 0, 0);
	b = lwt_lock(other, 0, 0);
	lw_lock_free(a);
	lw_lock_free(b);
	lw_repo_unref(same);
	lw_repo_unref(other);
	usleep(100 * 1000); /* the IN_IGNORED comes and goes */
	cr_assert(!lw_ctx_done(lw_lock_ctx(mine)), "%s", lw_ctx_cause(lw_lock_ctx(mine)));
	cr_assert_eq(lw_lock_id(mine, id), 0);
	snprintf(path, sizeof(path), "%s/locks/%s", t.dir, id);
	cr_assert_eq(unlink(path), 0);
	cr_expect_neq(lwt_wait_fd(lw_ctx_fd(lw_lock_ctx(mine)), 1000), 0,
		      "the removal was noticed within 1 s");
	cr_expect_eq(lw_ctx_err(lw_lock_ctx(mine)), LW_CAUSE_REMOVED);
	lw_lock_free(mine);
	lwt_stop(&t);
}
