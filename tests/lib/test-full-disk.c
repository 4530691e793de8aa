/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * A full disk under a local repository: a 1 MiB tmpfs that the test mounts
 * in a mount namespace of its own (so that nothing outlives it), filled by
 * a file of the test's until the kernel says ENOSPC.  No fault injection:
 * the real write(2) fails.
 *
 * Acquire fails with a message that says so and leaves no temporary file;
 * a held lock whose refreshes fail is retried and lost at its deadline;
 * space that comes back before the deadline keeps it.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

#include "lwtest.h"

#define REFRESH LW_SEC(1)
#define STALE LW_SEC(3) /* deadline 1.5 s after a refresh */
/* How late after its deadline a context may end; typical values are well
 * under a millisecond (logged).  Generous: a loaded 2-core machine. */
#define LATENCY_BOUND LW_MSEC(100)
/* How much later than announced a retry may fail: the file operation and
 * the loop's wake-up.  Measured 0.1-0.9 ms, up to 1.8 ms under ASan with
 * the load average at 12 on the 2-core machine. */
#define RETRY_SLACK LW_MSEC(50)

static char mnt[64];
static char filler[96];

/* The tmpfs, in a mount namespace of this test process alone.  Before
 * any thread exists: unshare(CLONE_NEWNS) refuses a threaded process. */
static void setup(void)
{
	snprintf(mnt, sizeof(mnt), "/tmp/lwfull-XXXXXX");
	cr_assert(mkdtemp(mnt));
	if (unshare(CLONE_NEWNS) < 0 ||
	    mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount("lwfull", mnt, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755") < 0) {
		int err = errno;

		rmdir(mnt);
		cr_skip_test("cannot mount a tmpfs for a full disk here (%s): needs root "
			     "or CAP_SYS_ADMIN", strerror(err));
	}
	snprintf(filler, sizeof(filler), "%s/filler", mnt);
}

static void teardown(void)
{
	umount2(mnt, MNT_DETACH);
	rmdir(mnt);
}

/* Fills the file system; returns the bytes written. */
static size_t fill(void)
{
	static char block[4096];
	int fd = open(filler, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	size_t total = 0;
	ssize_t n;

	cr_assert(fd >= 0, "%s: %s", filler, strerror(errno));
	while ((n = write(fd, block, sizeof(block))) > 0)
		total += (size_t)n;
	cr_assert_eq(errno, ENOSPC, "filling: %s", strerror(errno));
	close(fd);
	return total;
}

static void make_room(void)
{
	cr_assert_eq(unlink(filler), 0);
}

struct events {
	atomic_int refreshed, failed;
	char msg[300];
	/* the instants of the first failures, and the retries they announced */
	int64_t failed_at[8], retry_at[8];
};

static void count(struct lw_lock *lock, const struct lw_event *ev, void *userdata)
{
	struct events *e = userdata;

	if (ev->type == LW_EVENT_REFRESHED) {
		atomic_fetch_add(&e->refreshed, 1);
	} else if (ev->type == LW_EVENT_REFRESH_FAILED) {
		int i = atomic_fetch_add(&e->failed, 1);

		if (i == 0)
			snprintf(e->msg, sizeof(e->msg), "%s", ev->msg);
		if (i < (int)LW_ARRAY_SIZE(e->failed_at)) {
			e->failed_at[i] = ev->at;
			e->retry_at[i] = ev->next;
		}
	}
}

/* The longest time between two of the first failures in E. */
static int64_t max_gap(const struct events *e)
{
	int n = LW_MIN(atomic_load(&e->failed), (int)LW_ARRAY_SIZE(e->failed_at));
	int64_t gap = 0;

	for (int i = 1; i < n; i++)
		gap = LW_MAX(gap, e->failed_at[i] - e->failed_at[i - 1]);
	return gap;
}

/* A lock held on T when the disk fills up; returns once a refresh failed
 * (one that got its page before may still land). */
static struct lw_lock *held_on_full_disk(struct lwt *t, const struct lwt_param *p,
					 struct events *ev)
{
	struct lw_lock *lock;

	lwt_start(t, p, mnt, REFRESH, STALE);
	cr_assert_eq(lw_lock_new(t->repo, LW_LOCK_EXCLUSIVE, "full disk", &lock), 0);
	cr_assert_eq(lw_lock_set_event_fn(lock, count, ev), 0);
	cr_assert_eq(lw_lock_acquire(lock), 0, "%s", lw_errmsg());
	fill();
	cr_assert(lwt_wait_for(atomic_load(&ev->failed) > 0, 3000), "no refresh failed");
	return lock;
}

LWT_ENGINE_TEST(full_disk, acquire_fails_cleanly, .init = setup, .fini = teardown,
		.timeout = 30)
{
	struct lwt t;
	struct lw_lock *lock;

	lwt_start(&t, p, mnt, REFRESH, STALE);
	fill();
	lock = lwt_lock(t.repo, LW_LOCK_EXCLUSIVE, -LW_EBACKEND);
	cr_expect(strstr(lw_errmsg(), "No space left on device"), "%s", lw_errmsg());
	cr_expect(strstr(lw_errmsg(), "creating a lock file in"), "%s", lw_errmsg());
	cr_expect_eq(lwt_count(&t), 0, "a temporary file was left behind");
	cr_expect_eq(lw_ctx_err(lw_lock_ctx(lock)), LW_CAUSE_CANCELLED);
	lw_lock_free(lock);

	/* with room again, the same repository works */
	make_room();
	lock = lwt_lock(t.repo, LW_LOCK_EXCLUSIVE, 0);
	cr_expect_eq(lwt_count(&t), 1);
	lw_lock_free(lock);
	lwt_stop(&t);
}

LWT_ENGINE_TEST(full_disk, lost_at_the_deadline, .init = setup, .fini = teardown,
		.timeout = 30)
{
	struct events ev = { 0 };
	struct lw_lock *lock;
	struct lwt t;
	int64_t deadline, woke;
	int nfailed;

	lock = held_on_full_disk(&t, p, &ev);
	deadline = lw_lock_deadline(lock);
	woke = lwt_wait_fd(lw_ctx_fd(lw_lock_ctx(lock)),
			   (int)((deadline - lw__now_boot()) / LW_MSEC(1)) + 3000);
	cr_assert_neq(woke, 0, "the context did not end");
	fprintf(stderr, "%s: full disk: cancelled %lld us after the deadline, %d failed "
		"refreshes, %lld us apart at most\n", lw_engine_name(p->engine),
		(long long)(woke - deadline) / 1000, atomic_load(&ev.failed),
		(long long)max_gap(&ev) / 1000);
	cr_expect_geq(woke, deadline, "cancelled before the deadline");
	cr_expect_lt(woke - deadline, LATENCY_BOUND);
	cr_expect_eq(lw_ctx_err(lw_lock_ctx(lock)), LW_CAUSE_DEADLINE);
	cr_expect(strstr(ev.msg, "No space left on device"), "refresh failure: %s", ev.msg);
	cr_expect(strstr(lw_ctx_cause(lw_lock_ctx(lock)), "No space left on device"), "%s",
		  lw_ctx_cause(lw_lock_ctx(lock)));
	/* retried well before the deadline, every interval / 4 (250 ms; the
	 * backoff of 1 s is capped there): each failure announces its retry
	 * at most 250 ms on (counted from an instant just before the event's),
	 * and the retry fails no sooner than announced and less than
	 * RETRY_SLACK later than 250 ms after the failure before */
	nfailed = LW_MIN(atomic_load(&ev.failed), (int)LW_ARRAY_SIZE(ev.failed_at));
	cr_expect_geq(nfailed, 2);
	for (int i = 0; i < nfailed; i++) {
		int64_t wait = ev.retry_at[i] - ev.failed_at[i];

		cr_expect_leq(wait, REFRESH / 4, "failure %d announced its retry %lld us on", i,
			      (long long)wait / 1000);
		if (i == 0)
			continue;
		cr_expect_geq(ev.failed_at[i], ev.retry_at[i - 1],
			      "failure %d came before its announced retry", i);
		cr_expect_lt(ev.failed_at[i] - ev.failed_at[i - 1], REFRESH / 4 + RETRY_SLACK,
			     "failures %d and %d %lld us apart", i - 1, i,
			     (long long)(ev.failed_at[i] - ev.failed_at[i - 1]) / 1000);
	}
	/* deleting needs no space: the lock file goes, and no temporary file
	 * of the failed refreshes stays */
	cr_expect(lwt_wait_for(lwt_count(&t) == 0, 3000), "%d files left in locks/",
		  lwt_count(&t));
	lw_lock_free(lock);
	lwt_stop(&t);
}

LWT_ENGINE_TEST(full_disk, room_in_time_keeps_the_lock, .init = setup, .fini = teardown,
		.timeout = 30)
{
	struct events ev = { 0 };
	struct lw_lock *lock;
	struct lwt t;
	int64_t deadline;
	int refreshed;

	lock = held_on_full_disk(&t, p, &ev);
	deadline = lw_lock_deadline(lock);
	refreshed = atomic_load(&ev.refreshed);
	make_room();
	/* the retry (within interval / 4) lands before the deadline */
	cr_assert(lwt_wait_for(atomic_load(&ev.refreshed) > refreshed, 1000),
		  "no refresh succeeded after the disk had room");
	cr_expect_gt(lw_lock_deadline(lock), deadline, "the deadline moved on");
	usleep((useconds_t)((deadline - lw__now_boot()) / 1000) + 500 * 1000);
	cr_expect(!lw_ctx_done(lw_lock_ctx(lock)), "lost: %s", lw_ctx_cause(lw_lock_ctx(lock)));
	cr_expect_eq(lw_lock_release(lock), 0);
	cr_expect_eq(lwt_count(&t), 0);
	lw_lock_free(lock);
	lwt_stop(&t);
}
