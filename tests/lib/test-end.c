/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The end of a lock, as lw_lock_release reports it: a delete that failed
 * after a loss is an error, not 0; deletes that hang are given up at the
 * release timeout, the files named; a lock removed while held is -LW_ELOST,
 * whether a watch, a check or the release itself found it.
 */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "testing.h"
#include "lwtest.h"

enum { PASS, FAIL_ALL, HANG_UNLINKS };
static atomic_int mode;

/* FAIL_ALL: refresh writes and every delete fail; HANG_UNLINKS: deletes
 * hang. */
static int fault(const struct lw__fop *op, void *userdata)
{
	switch (atomic_load(&mode)) {
	case FAIL_ALL:
		if (op->type == LW__FOP_UNLINKAT ||
		    (op->type == LW__FOP_OPENAT && op->path && strstr(op->path, "/.tmp-")))
			return -EIO;
		break;
	case HANG_UNLINKS:
		if (op->type == LW__FOP_UNLINKAT)
			return LW__FAULT_HANG;
		break;
	}
	return 0;
}

static void setup(void)
{
	atomic_store(&mode, PASS);
	lw__fault_set(fault, NULL);
}

static void teardown(void)
{
	lw__fault_set(NULL, NULL);
	lw__fault_release();
}

/* Lost at its deadline, its file undeletable: release says so. */
LWT_ENGINE_TEST(end, release_after_a_loss_reports_the_delete, .init = setup,
		.fini = teardown, .timeout = 30)
{
	struct lw_lock *lock;
	struct lwt t;
	char id[65];
	int r;

	lwt_start(&t, p, NULL, LW_SEC(1), LW_SEC(3));
	lock = lwt_lock(t.repo, LW_LOCK_EXCLUSIVE, 0);
	cr_assert_eq(lw_lock_id(lock, id), 0);
	atomic_store(&mode, FAIL_ALL);
	cr_assert_neq(lwt_wait_fd(lw_ctx_fd(lw_lock_ctx(lock)), 5000), 0, "never lost");
	cr_expect_eq(lw_ctx_err(lw_lock_ctx(lock)), LW_CAUSE_DEADLINE);
	/* let the lock's end try its deletes and give up */
	usleep(300 * 1000);
	r = lw_lock_release(lock);
	cr_expect_eq(r, -EIO, "release after a failed delete: %d (%s)", r, lw_strerror(r));
	id[12] = '\0';
	cr_expect(strstr(lw_errmsg(), "left behind") && strstr(lw_errmsg(), id),
		  "the message names the file: %s", lw_errmsg());
	cr_expect_eq(lwt_count(&t), 1, "the file named is still there");
	atomic_store(&mode, PASS);
	lw_lock_free(lock);
	lwt_stop(&t);
}

/* Deletes that hang (an NFS server gone): release returns at the release
 * timeout on both engines, naming the file. */
LWT_ENGINE_TEST(end, hung_deletes_end_at_the_release_timeout, .init = setup,
		.fini = teardown, .timeout = 30)
{
	struct lw_lock *lock;
	struct lwt t;
	int64_t t0, took;
	char id[65];
	int r;

	lwt_start(&t, p, NULL, LW_SEC(1), LW_SEC(3));
	cr_assert_eq(lw_repo_set_release_timeout(t.repo, LW_MSEC(300)), 0);
	lock = lwt_lock(t.repo, LW_LOCK_EXCLUSIVE, 0);
	cr_assert_eq(lw_lock_id(lock, id), 0);
	atomic_store(&mode, HANG_UNLINKS);
	t0 = lw__now_boot();
	r = lw_lock_release(lock);
	took = lw__now_boot() - t0;
	cr_log_info("%s: release returned %lld ms after it was called",
		    lw_engine_name(p->engine), (long long)took / 1000000);
	cr_expect_eq(r, -ETIMEDOUT, "%d (%s): %s", r, lw_strerror(r), lw_errmsg());
	cr_expect_geq(took, LW_MSEC(290));
	cr_expect_lt(took, LW_MSEC(300 + 200), "release took %lld ms", (long long)took / 1000000);
	id[12] = '\0';
	cr_expect(strstr(lw_errmsg(), id), "the message names the file: %s", lw_errmsg());
	lw__fault_release();
	atomic_store(&mode, PASS);
	lw_lock_free(lock);
	lwt_stop(&t);
}

/* Removed behind the holder's back, then released at once: -LW_ELOST,
 * found by a watch (local), or by the release's first delete (dav:, rest:
 * with the checks off). */
LWT_FILES_TEST(end, removed_while_held_is_lost, .timeout = 30)
{
	struct lw_lock *lock;
	struct lwt t;
	char id[65], path[PATH_MAX + 80];
	int r;

	lwt_start(&t, p, NULL, LW_SEC(60), LW_SEC(300));
	cr_assert_eq(lw_repo_set_check_interval(t.repo, 0), 0);
	lock = lwt_lock(t.repo, LW_LOCK_EXCLUSIVE, 0);
	cr_assert_eq(lw_lock_id(lock, id), 0);
	snprintf(path, sizeof(path), "%s/locks/%s", t.dir, id);
	cr_assert_eq(unlink(path), 0, "%s", path);
	r = lw_lock_release(lock);
	cr_expect_eq(r, -LW_ELOST, "%d (%s)", r, lw_strerror(r));
	cr_expect(strstr(lw_errmsg(), "removed by someone else"), "%s", lw_errmsg());
	/* and a release of a lock nobody touched is 0 */
	lw_lock_free(lock);
	lock = lwt_lock(t.repo, LW_LOCK_EXCLUSIVE, 0);
	cr_expect_eq(lw_lock_release(lock), 0, "%s", lw_errmsg());
	cr_expect_eq(lwt_count(&t), 0);
	lw_lock_free(lock);
	lwt_stop(&t);
}
