/* SPDX-License-Identifier: BSD-2-Clause */
/* 10,000 locks held by one loop on a local repository with a short interval:
 * all acquired, all refreshed, none lost, none left behind.  And acquires
 * that end while they wait in line to create. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "lwtest.h"
#include "webdav.h"

#define N 10000

struct counts {
	atomic_int acquired;
	atomic_int failed;
	atomic_int refreshed;
	atomic_int lost;
};

struct per_lock {
	struct counts *all;
	atomic_int refreshes;
};

static void on_event(struct lw_lock *lock, const struct lw_event *ev, void *userdata)
{
	struct per_lock *p = userdata;

	if (ev->type == LW_EVENT_REFRESHED) {
		atomic_fetch_add(&p->refreshes, 1);
		atomic_fetch_add(&p->all->refreshed, 1);
	} else if (ev->type == LW_EVENT_LOST) {
		atomic_fetch_add(&p->all->lost, 1);
	}
}

static void on_acquired(struct lw_lock *lock, int err, const char *msg, void *userdata)
{
	struct per_lock *p = userdata;

	atomic_fetch_add(err ? &p->all->failed : &p->all->acquired, 1);
}

LWT_ENGINE_TEST(scale, ten_thousand_locks, .timeout = 60)
{
	struct counts c = { 0 };
	struct per_lock *per = calloc(N, sizeof(*per));
	struct lw_lock **locks = calloc(N, sizeof(*locks));
	int64_t t0, acquired_ms, least = INT32_MAX;
	struct lwt t;

	cr_assert(per && locks);
	/* tmpfs: the loop is under test here, not the disk's fsync rate.
	 * 2,500 refreshes a second, deadlines 10 s after each write. */
	lwt_start(&t, p, "/dev/shm", LW_SEC(4), LW_SEC(16));
	t0 = lwt_ms();
	for (int i = 0; i < N; i++) {
		per[i].all = &c;
		cr_assert_eq(lw_lock_new(t.repo, 0, NULL, &locks[i]), 0);
		cr_assert_eq(lw_lock_set_event_fn(locks[i], on_event, &per[i]), 0);
		cr_assert_eq(lw_lock_acquire_async(locks[i], on_acquired, &per[i]), 0);
	}
	cr_assert(lwt_wait_for(atomic_load(&c.acquired) + atomic_load(&c.failed) == N, 30000),
		  "%d of %d acquired", atomic_load(&c.acquired), N);
	acquired_ms = lwt_ms() - t0;
	cr_assert_eq(atomic_load(&c.failed), 0);
	cr_expect_eq(lwt_count(&t), N);

	/* three refresh intervals */
	usleep(12500 * 1000);
	for (int i = 0; i < N; i++) {
		least = LW_MIN(least, atomic_load(&per[i].refreshes));
		cr_assert(!lw_ctx_done(lw_lock_ctx(locks[i])), "lock %d: %s", i,
			  lw_ctx_cause(lw_lock_ctx(locks[i])));
	}
	cr_log_info("%s: %d locks acquired in %lld ms; %d refreshes in 12.5 s, every "
		    "lock at least %lld", lw_engine_name(p->engine), N,
		    (long long)acquired_ms, atomic_load(&c.refreshed), (long long)least);
	cr_expect_geq(least, 2, "every lock was refreshed at least twice");
	cr_expect_eq(atomic_load(&c.lost), 0);
	/* a lock mid-refresh has two files for a moment; no more pile up:
	 * the fewest files seen over a second */
	{
		int fewest = INT32_MAX;

		for (int i = 0; i < 10; i++) {
			fewest = LW_MIN(fewest, lwt_count(&t));
			usleep(100 * 1000);
		}
		cr_expect_geq(fewest, N);
		cr_expect_leq(fewest, N + N / 10, "old files are deleted (%d files)", fewest);
	}

	for (int i = 0; i < N; i++)
		lw_lock_free(locks[i]);
	cr_expect(lwt_wait_for(lwt_count(&t) == 0, 10000), "all released");
	lwt_stop(&t);
	free(per);
	free(locks);
}

/* Beyond the creates a repository runs at once, acquires wait in line with
 * nothing built yet (lib/lock/acquire.c).  Freeing locks that wait there, or
 * freeing the loop under them, leaves no file behind; the others in line
 * still get their locks. */
#define QUEUED 1000

LWT_FILES_TEST(scale, acquires_in_line_end_cleanly, .timeout = 60)
{
	struct counts kept = { 0 }, freed = { 0 };
	struct per_lock *per = calloc(QUEUED, sizeof(*per));
	struct lw_lock **locks = calloc(QUEUED, sizeof(*locks));
	struct lwt t;

	cr_assert(per && locks);
	/* rclone as users run it, with its listings cached: reading the disk
	 * at every request (what other tests need) makes its PROPFIND of a
	 * folder filling to 1,000 files take 19-64 s (webdav.h) */
	lwt_webdav_keep_listings(true);
	lwt_start(&t, p, "/dev/shm", LW_SEC(10), LW_SEC(60));
	for (int i = 0; i < QUEUED; i++) {
		per[i].all = i < QUEUED / 2 ? &kept : &freed;
		cr_assert_eq(lw_lock_new(t.repo, 0, NULL, &locks[i]), 0);
		cr_assert_eq(lw_lock_acquire_async(locks[i], on_acquired, &per[i]), 0);
	}
	/* the last ones are in line, most of them: each free waits for a
	 * turn of the busy loop, and a few may be held by then */
	for (int i = QUEUED / 2; i < QUEUED; i++) {
		lw_lock_free(locks[i]);
		locks[i] = NULL;
	}
	cr_assert(lwt_wait_for(atomic_load(&kept.acquired) + atomic_load(&kept.failed) ==
				       QUEUED / 2,
			       30000),
		  "%d acquired, %d failed", atomic_load(&kept.acquired),
		  atomic_load(&kept.failed));
	cr_expect_eq(atomic_load(&kept.failed), 0);
	cr_expect(lwt_wait_for(lwt_count(&t) == QUEUED / 2, 5000), "%d files", lwt_count(&t));

	/* and a loop freed while acquires wait in line */
	for (int i = QUEUED / 2; i < QUEUED; i++) {
		cr_assert_eq(lw_lock_new(t.repo, 0, NULL, &locks[i]), 0);
		cr_assert_eq(lw_lock_acquire_async(locks[i], on_acquired, &per[i]), 0);
	}
	while (lwt_count(&t) == QUEUED / 2)
		usleep(1000);
	lw_loop_free(t.loop);
	t.loop = NULL;
	cr_expect_eq(lwt_count(&t), 0, "nothing left behind");
	for (int i = 0; i < QUEUED; i++)
		lw_lock_free(locks[i]);
	lwt_stop(&t);
	free(per);
	free(locks);
}
