/* SPDX-License-Identifier: BSD-2-Clause */
/* Holding a lock: refresh replaces the file, the context stays live, and
 * every way of ending (release, cancel, removal, loop free) is observable
 * and leaves no file behind. */
#include "config.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
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
