/* SPDX-License-Identifier: BSD-2-Clause */
/* Who may hold a lock beside whom: shared and exclusive, foreign, empty
 * and stale lock files, and retry_lock. */
#include "config.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testing.h"
#include "lwtest.h"

#define REFRESH LW_SEC(1)
#define STALE LW_SEC(3)

/* A second holder on its own loop and repository object, as another
 * process would be; ASKED is acquired after HELD is held. */
static void pair(const struct lwt_param *p, unsigned held, unsigned asked, int expect,
		 const char *msg_has)
{
	struct lwt t, o;
	struct lw_lock *a, *b;

	lwt_start(&t, p, NULL, REFRESH, STALE);
	lwt_other(&t, &o);
	a = lwt_lock(t.repo, held, 0);
	b = lwt_lock(o.repo, asked, expect);
	if (msg_has)
		cr_expect(strstr(lw_errmsg(), msg_has), "message '%s' lacks '%s'",
			  lw_errmsg(), msg_has);
	/* the holder's refresh shows one more file while it runs: on a slow
	 * machine it may be under way now, so the count has to settle */
	cr_expect(lwt_wait_for(lwt_count(&t) == (expect ? 1 : 2), 2000),
		  "lock files after acquire: %d", lwt_count(&t));
	if (expect)
		cr_expect(lw_ctx_done(lw_lock_ctx(b)), "a failed acquire ends its context");
	else
		cr_expect(!lw_ctx_done(lw_lock_ctx(b)));
	cr_expect(!lw_ctx_done(lw_lock_ctx(a)), "the holder is untouched");
	lw_lock_free(b);
	lw_lock_free(a);
	lwt_other_stop(&o);
	cr_expect(lwt_wait_for(lwt_count(&t) == 0, 2000), "no lock file left behind");
	lwt_stop(&t);
}

LWT_MATRIX_TEST(conflict, shared_with_shared, .timeout = 30)
{
	pair(p, 0, 0, 0, NULL);
}

LWT_MATRIX_TEST(conflict, exclusive_after_shared, .timeout = 30)
{
	char want[600];

	snprintf(want, sizeof(want), "shared lock of %s@%s (pid %d)",
		 lw__self()->username, lw__self()->hostname, (int)getpid());
	pair(p, 0, LW_LOCK_EXCLUSIVE, -LW_ELOCKED, want);
}

LWT_MATRIX_TEST(conflict, shared_after_exclusive, .timeout = 30)
{
	pair(p, LW_LOCK_EXCLUSIVE, 0, -LW_ELOCKED, "is locked by exclusive lock of");
}

LWT_MATRIX_TEST(conflict, exclusive_after_exclusive, .timeout = 30)
{
	pair(p, LW_LOCK_EXCLUSIVE, LW_LOCK_EXCLUSIVE, -LW_ELOCKED,
	     "is locked by exclusive lock of");
}

/* Two exclusive locks of the same repository object conflict too. */
LWT_MATRIX_TEST(conflict, same_process_exclusive, .timeout = 30)
{
	struct lwt t;
	struct lw_lock *a, *b;

	lwt_start(&t, p, NULL, REFRESH, STALE);
	a = lwt_lock(t.repo, LW_LOCK_EXCLUSIVE, 0);
	b = lwt_lock(t.repo, 0, -LW_ELOCKED);
	cr_expect(strstr(lw_errmsg(), "of this process"), "%s", lw_errmsg());
	lw_lock_free(b);
	lw_lock_free(a);
	lwt_stop(&t);
}

/* A file in locks/ that is not a lockwatch record (restic's own encrypted
 * lock, say) blocks like an exclusive lock and is never removed. */
LWT_MATRIX_TEST(conflict, foreign_file_blocks, .timeout = 30)
{
	static const char junk[] = "\x8a\x01\x02 an encrypted restic lock, say";
	struct lwt t;
	struct lw_lock *l;
	char id[65];

	lwt_start(&t, p, NULL, REFRESH, STALE);
	lwt_plant_bytes(&t, junk, sizeof(junk), id);
	l = lwt_lock(t.repo, 0, -LW_ELOCKED);
	cr_expect(strstr(lw_errmsg(), "foreign lock file"), "%s", lw_errmsg());
	lw_lock_free(l);
	cr_expect(lwt_exists(&t, id), "a foreign file is never removed");
	cr_expect_eq(lwt_count(&t), 1);
	lwt_stop(&t);
}

static int note_why(const struct lw_lock_info *info, void *userdata)
{
	cr_expect_eq(info->kind, LW_KIND_FOREIGN);
	snprintf(userdata, 100, "%s", info->why ? info->why : "(none)");
	return 0;
}

/* restic's own lock file, IV || ciphertext || MAC, random from its first
 * byte (issue 12: listed as "trailing bytes after the record"). */
LWT_FILES_TEST(conflict, restic_lock_is_foreign, .timeout = 30)
{
	uint8_t restic[96];
	char why[100] = "";
	struct lwt t;
	char id[65];

	for (size_t i = 0; i < sizeof(restic); i++)
		restic[i] = (uint8_t)(i * 37 + 5);
	lwt_start(&t, p, NULL, REFRESH, STALE);
	lwt_plant_bytes(&t, restic, sizeof(restic), id);
	cr_expect_eq(lw_repo_list(t.repo, note_why, why), 0, "%s", lw_errmsg());
	cr_expect_str_eq(why, "foreign lock file (not a lockwatch record)");
	lwt_stop(&t);
}

/* Ours, but broken (a string where a bool belongs): invalid, and blocks. */
LWT_MATRIX_TEST(conflict, invalid_record_blocks, .timeout = 30)
{
	/* {"v":1,"exclusive":"yes"} */
	static const char bad[] = "\x82\xa1v\x01\xa9" "exclusive" "\xa3yes";
	struct lwt t;
	struct lw_lock *l;
	char id[65];

	lwt_start(&t, p, NULL, REFRESH, STALE);
	lwt_plant_bytes(&t, bad, sizeof(bad) - 1, id);
	l = lwt_lock(t.repo, 0, -LW_ELOCKED);
	cr_expect(strstr(lw_errmsg(), "invalid lock file"), "%s", lw_errmsg());
	lw_lock_free(l);
	cr_expect(lwt_exists(&t, id));
	lwt_stop(&t);
}

static int note_kind(const struct lw_lock_info *info, void *userdata)
{
	const struct lw_lock_info **seen = userdata;

	cr_expect_eq(info->kind, LW_KIND_INVALID, "%s listed as kind %d", info->id, info->kind);
	cr_expect(info->why && strstr(info->why, "100 years"), "why: %s",
		  info->why ? info->why : "(none)");
	*seen = info;
	return 0;
}

/* A record time far off this host's clock (issue 12: INT64_MIN overflowed
 * the age and made a lock that never went stale) is an invalid lock file:
 * it blocks, is listed as invalid, and no acquire removes it. */
LWT_FILES_TEST(conflict, record_time_far_off_is_invalid, .timeout = 30)
{
	int64_t now = lwt_record(true).time;
	const int64_t times[] = { INT64_MIN, INT64_MIN + 1, now - LW_DURATION_MAX - LW_SEC(3600),
				  INT64_MAX, now + LW_DURATION_MAX + LW_SEC(3600) };

	for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
		struct lw__record rec = lwt_record(true);
		const struct lw_lock_info *seen = NULL;
		struct lwt t;
		struct lw_lock *l;
		char id[65];

		rec.time = times[i];
		lwt_start(&t, p, NULL, REFRESH, STALE);
		lwt_plant(&t, &rec, id);
		l = lwt_lock(t.repo, 0, -LW_ELOCKED);
		cr_expect(strstr(lw_errmsg(), "invalid lock file") &&
			  strstr(lw_errmsg(), "100 years"), "time %lld: %s",
			  (long long)times[i], lw_errmsg());
		lw_lock_free(l);
		cr_expect(lwt_exists(&t, id), "time %lld: removed", (long long)times[i]);
		cr_expect_eq(lw_repo_list(t.repo, note_kind, &seen), 0);
		cr_expect(seen, "not listed");
		lwt_stop(&t);
	}
}

/* A zero-length lock file is ignored, as restic does. */
LWT_MATRIX_TEST(conflict, empty_file_ignored, .timeout = 30)
{
	struct lwt t;
	struct lw_lock *l;
	char id[65];

	lwt_start(&t, p, NULL, REFRESH, STALE);
	lwt_plant_bytes(&t, "", 0, id);
	l = lwt_lock(t.repo, LW_LOCK_EXCLUSIVE, 0);
	cr_expect(lwt_exists(&t, id), "an empty file is left alone");
	lw_lock_free(l);
	lwt_stop(&t);
}

static void stale_removed(const struct lwt_param *p, struct lw__record *rec)
{
	struct lwt t;
	struct lw_lock *l;
	char id[65];

	lwt_start(&t, p, NULL, REFRESH, STALE);
	lwt_plant(&t, rec, id);
	l = lwt_lock(t.repo, LW_LOCK_EXCLUSIVE, 0);
	cr_expect(lwt_wait_for(!lwt_exists(&t, id), 2000), "the stale lock was removed");
	cr_expect_eq(lwt_count(&t), 1);
	lw_lock_free(l);
	lwt_stop(&t);
}

LWT_FILES_TEST(conflict, stale_by_age, .timeout = 30)
{
	struct lw__record rec = lwt_record(true);

	rec.time -= LW_SEC(3600);
	stale_removed(p, &rec);
}

/* A dead pid of this boot and pid namespace. */
static int64_t dead_pid(void)
{
	pid_t pid = fork();

	cr_assert(pid >= 0);
	if (pid == 0)
		_exit(0);
	waitpid(pid, NULL, 0);
	return pid;
}

LWT_MATRIX_TEST(conflict, stale_by_dead_process, .timeout = 30)
{
	struct lw__record rec = lwt_record(true);

	rec.boot_id = lw__self()->boot_id;
	rec.pid = dead_pid();
	rec.pid_start = 12345;
	stale_removed(p, &rec);
}

/* pid 1 is alive, but started at another time: the holder is gone and its
 * pid was recycled. */
LWT_MATRIX_TEST(conflict, stale_by_recycled_pid, .timeout = 30)
{
	struct lw__record rec = lwt_record(true);

	rec.boot_id = lw__self()->boot_id;
	rec.pid = 1;
	rec.pid_start = UINT64_MAX;
	stale_removed(p, &rec);
}

/* Same host and boot, another PID namespace (a neighbouring container):
 * its pid means nothing here, so the lock is live (restic #4922). */
LWT_MATRIX_TEST(conflict, other_pid_namespace_is_live, .timeout = 30)
{
	struct lw__record rec = lwt_record(true);
	struct lwt t;
	struct lw_lock *l;
	char id[65];

	rec.boot_id = lw__self()->boot_id;
	rec.pid_ns = lw__self()->pid_ns + 1;
	rec.pid = dead_pid();
	lwt_start(&t, p, NULL, REFRESH, STALE);
	lwt_plant(&t, &rec, id);
	l = lwt_lock(t.repo, 0, -LW_ELOCKED);
	cr_expect(strstr(lw_errmsg(), "alice@otherhost"), "%s", lw_errmsg());
	lw_lock_free(l);
	cr_expect(lwt_exists(&t, id));
	lwt_stop(&t);
}

/* With stale-lock removal off, a stale lock (of a process that is gone:
 * stale on every backend) blocks until unlock, as in restic;
 * lw_repo_unlock then removes it. */
LWT_MATRIX_TEST(conflict, stale_blocks_when_removal_off, .timeout = 30)
{
	struct lw__record rec = lwt_record(true);
	struct lwt t;
	struct lw_lock *l;
	char id[65];

	rec.boot_id = lw__self()->boot_id;
	rec.pid = dead_pid();
	rec.pid_start = 12345;
	lwt_start(&t, p, NULL, REFRESH, STALE);
	cr_assert_eq(lw_repo_set_remove_stale(t.repo, false), 0);
	lwt_plant(&t, &rec, id);
	l = lwt_lock(t.repo, 0, -LW_ELOCKED);
	lw_lock_free(l);
	cr_expect(lwt_exists(&t, id));
	cr_expect_eq(lw_repo_unlock(t.repo, 0, NULL, NULL), 1);
	cr_expect(!lwt_exists(&t, id));
	l = lwt_lock(t.repo, 0, 0);
	lw_lock_free(l);
	lwt_stop(&t);
}

struct retry_seen {
	atomic_int retries;
	char msg[600];
};

static void on_retry(struct lw_lock *lock, const struct lw_event *ev, void *userdata)
{
	struct retry_seen *seen = userdata;

	if (ev->type != LW_EVENT_RETRY)
		return;
	snprintf(seen->msg, sizeof(seen->msg), "%s", ev->msg);
	cr_expect_gt(ev->next, ev->at);
	cr_expect_leq(ev->next, ev->until);
	atomic_fetch_add(&seen->retries, 1);
}

struct acquired {
	atomic_int done;
	int err;
	int64_t at;
};

static void on_acquired(struct lw_lock *lock, int err, const char *msg, void *userdata)
{
	struct acquired *a = userdata;

	a->err = err;
	a->at = lwt_ms();
	atomic_store(&a->done, 1);
}

/* retry_lock: the holder lets go after 1 s; the waiter gets the lock at its
 * first retry, 5 s after it started (restic's backoff). */
LWT_MATRIX_TEST(conflict, retry_lock_succeeds, .timeout = 40)
{
	struct retry_seen seen = { 0 };
	struct acquired got = { 0 };
	struct lwt t, o;
	struct lw_lock *a, *b;
	int64_t start;

	lwt_start(&t, p, NULL, REFRESH, STALE);
	lwt_other(&t, &o);
	a = lwt_lock(t.repo, LW_LOCK_EXCLUSIVE, 0);
	cr_assert_eq(lw_repo_set_retry_lock(o.repo, LW_SEC(20)), 0);
	cr_assert_eq(lw_lock_new(o.repo, LW_LOCK_EXCLUSIVE, NULL, &b), 0);
	cr_assert_eq(lw_lock_set_event_fn(b, on_retry, &seen), 0);
	start = lwt_ms();
	cr_assert_eq(lw_lock_acquire_async(b, on_acquired, &got), 0);
	cr_assert(lwt_wait_for(atomic_load(&seen.retries) == 1, 3000), "a retry event");
	cr_expect(strstr(seen.msg, "exclusive lock of"), "%s", seen.msg);
	usleep(1000 * 1000);
	cr_assert_eq(lw_lock_release(a), 0);
	cr_assert(lwt_wait_for(atomic_load(&got.done), 15000));
	cr_expect_eq(got.err, 0);
	cr_expect_geq(got.at - start, 4900, "first retry after about 5 s");
	cr_expect_lt(got.at - start, 8000);
	cr_expect_eq(lwt_count(&t), 1);
	lw_lock_free(a);
	lw_lock_free(b);
	lwt_other_stop(&o);
	lwt_stop(&t);
}

/* retry_lock runs out: one last try at the end, then a clear failure and no
 * file of the waiter left behind. */
LWT_MATRIX_TEST(conflict, retry_lock_gives_up, .timeout = 30)
{
	struct lwt t, o;
	struct lw_lock *a, *b;
	int64_t start, took;

	lwt_start(&t, p, NULL, REFRESH, STALE);
	lwt_other(&t, &o);
	a = lwt_lock(t.repo, LW_LOCK_EXCLUSIVE, 0);
	cr_assert_eq(lw_repo_set_retry_lock(o.repo, LW_SEC(2)), 0);
	start = lwt_ms();
	b = lwt_lock(o.repo, 0, -LW_ELOCKED);
	took = lwt_ms() - start;
	cr_expect_geq(took, 1950, "retried until retry_lock ran out (%lld ms)", (long long)took);
	cr_expect_lt(took, 4000);
	/* the holder's own refresh may show two files for a moment */
	cr_expect(lwt_wait_for(lwt_count(&t) == 1, 1000), "%d files", lwt_count(&t));
	lw_lock_free(b);
	lw_lock_free(a);
	lwt_other_stop(&o);
	lwt_stop(&t);
}

/* The child of other_process exits with the library's threads mid-call, on
 * purpose.  LeakSanitizer cannot scan a thread that still runs, and would
 * count what it holds then as lost (a file operation's job, seen under
 * load); the parent's own leaks are checked as usual. */
static bool exiting_child;

/* the sanitizer runtime looks it up in the program: exported */
__attribute__((visibility("default"))) int __lsan_is_turned_off(void);
int __lsan_is_turned_off(void)
{
	return exiting_child;
}

/* A real second process holds the lock, then exits without releasing it:
 * the library releases it at exit. */
LWT_MATRIX_TEST(conflict, other_process, .timeout = 30)
{
	struct lwt t;
	struct lw_lock *l;
	int fds[2], go[2], status;
	pid_t pid;
	char c;

	/* the child exits with the library's threads mid-call, on purpose:
	 * valgrind would count what they hold then as lost */
	if (getenv("LWT_VALGRIND"))
		cr_skip_test("exits with threads mid-call, which valgrind counts as leaks");
	lwt_start(&t, p, NULL, REFRESH, STALE);
	cr_assert_eq(pipe(fds), 0);
	cr_assert_eq(pipe(go), 0);
	pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		struct lw_loop *loop;
		struct lw_repo *repo;
		struct lw_lock *lock;

		close(fds[0]);
		close(go[1]);
		if (lw_loop_new(p->engine, &loop) < 0 || lw_loop_start(loop) < 0 ||
		    lw_repo_new(loop, t.url, &repo) < 0 ||
		    lw_lock_new(repo, LW_LOCK_EXCLUSIVE, "child", &lock) < 0 ||
		    lw_lock_acquire(lock) < 0)
			_exit(1);
		(void)!write(fds[1], "x", 1);
		(void)!read(go[0], &c, 1); /* until the parent closes its end */
		exiting_child = true;
		exit(0); /* no release: atexit must do it */
	}
	close(fds[1]);
	close(go[0]);
	cr_assert_eq(read(fds[0], &c, 1), 1, "the child holds the lock");
	l = lwt_lock(t.repo, 0, -LW_ELOCKED);
	cr_expect(strstr(lw_errmsg(), "purpose: child"), "%s", lw_errmsg());
	lw_lock_free(l);
	close(fds[0]);
	close(go[1]);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	cr_expect_eq(lwt_count(&t), 0, "the child's lock was released at exit");
	l = lwt_lock(t.repo, LW_LOCK_EXCLUSIVE, 0);
	lw_lock_free(l);
	lwt_stop(&t);
}

/* Listing errors during the check: retried (after check_retry, then twice,
 * then four times as long) before acquire gives up. */
static atomic_int listing_failures;

static int fail_listings(const struct lw__fop *op, void *userdata)
{
	if (op->type == LW__FOP_READDIR && atomic_load(&listing_failures) > 0) {
		atomic_fetch_sub(&listing_failures, 1);
		return -EIO;
	}
	return 0;
}

static void no_faults(void)
{
	lw__fault_set(NULL, NULL);
}

LWT_ENGINE_TEST(conflict, listing_error_retried, .fini = no_faults, .timeout = 30)
{
	struct lwt t, o;
	struct lw_lock *l;
	int64_t start, took;

	lwt_start(&t, p, NULL, REFRESH, STALE);
	lw__fault_set(fail_listings, NULL);
	atomic_store(&listing_failures, 2);
	start = lwt_ms();
	l = lwt_lock(t.repo, 0, 0);
	took = lwt_ms() - start;
	cr_expect_eq(atomic_load(&listing_failures), 0, "both failures were met");
	/* check_retry is 100 ms in the fixture: 100 + 200 ms of waiting */
	cr_expect_geq(took, 290, "retried after 100 and 200 ms (%lld ms)", (long long)took);
	lw_lock_free(l);

	/* a repository that has listed once answers from its view, with no
	 * readdir: a new one reads the folder */
	lwt_other(&t, &o);
	atomic_store(&listing_failures, 1000);
	start = lwt_ms();
	l = lwt_lock(o.repo, 0, -LW_EBACKEND);
	took = lwt_ms() - start;
	cr_expect(strstr(lw_errmsg(), "listing locks of"), "%s", lw_errmsg());
	cr_expect(strstr(lw_errmsg(), "Input/output error"), "%s", lw_errmsg());
	cr_expect_geq(took, 690, "gave up after 100 + 200 + 400 ms (%lld ms)", (long long)took);
	cr_expect_lt(took, 3000);
	cr_expect_eq(lwt_count(&t), 0, "nothing left behind");
	lw_lock_free(l);
	lwt_other_stop(&o);
	lwt_stop(&t);
}

/* A stale lock is looked past only once it is gone: one whose removal
 * fails blocks (as restic's stale locks do), and stops blocking once it can
 * be removed.  This is what makes recovery after a suspend sound. */
static char unremovable[PATH_MAX + 80];

static int refuse_unlink(const struct lw__fop *op, void *userdata)
{
	if (op->type == LW__FOP_UNLINKAT && op->path && strcmp(op->path, unremovable) == 0)
		return -EIO;
	return 0;
}

LWT_ENGINE_TEST(conflict, stale_but_unremovable_blocks, .fini = no_faults, .timeout = 30)
{
	struct lw__record rec = lwt_record(true);
	struct lwt t;
	struct lw_lock *l;
	char id[65];

	rec.time -= LW_SEC(3600);
	lwt_start(&t, p, NULL, REFRESH, STALE);
	lwt_plant(&t, &rec, id);
	snprintf(unremovable, sizeof(unremovable), "%s/locks/%s", t.dir, id);
	lw__fault_set(refuse_unlink, NULL);
	l = lwt_lock(t.repo, 0, -LW_ELOCKED);
	cr_expect(strstr(lw_errmsg(), "stale but not removable"), "%s", lw_errmsg());
	cr_expect(lwt_exists(&t, id));
	cr_expect_eq(lwt_count(&t), 1, "nothing of ours left");
	lw_lock_free(l);
	lw__fault_set(NULL, NULL);
	l = lwt_lock(t.repo, 0, 0);
	cr_expect(!lwt_exists(&t, id), "removed once it could be");
	lw_lock_free(l);
	lwt_stop(&t);
}

/* ------------------------------------------ entries of locks/ that are not files */

#define SYMLINK_ID "5151515151515151515151515151515151515151515151515151515151515151"
#define DIR_ID "d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1"
#define FULL_ID "f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0"
#define FIFO_ID "fefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefefe"

/* T's repository folder plus NAME, in one of a few static buffers. */
static char *repo_path(const struct lwt *t, const char *name)
{
	static __thread char bufs[4][PATH_MAX + 200];
	static __thread int n;
	char *b = bufs[n++ % 4];

	snprintf(b, sizeof(bufs[0]), "%s/%s", t->dir, name);
	return b;
}

static bool exists_nofollow(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

static void write_pack(const char *path)
{
	FILE *f = fopen(path, "w");

	cr_assert(f, "%s", path);
	fputs("pack", f);
	cr_assert_eq(fclose(f), 0);
}

struct not_files {
	int n, removed, failed;
};

static int note_not_file(const struct lw_lock_info *info, void *userdata)
{
	struct not_files *nf = userdata;

	nf->n++;
	cr_expect_eq(info->kind, LW_KIND_FOREIGN, "%s: kind %d", info->id, info->kind);
	cr_expect(info->why && strncmp(info->why, "not a lock file: ", 17) == 0, "%s: why %s",
		  info->id, info->why ? info->why : "(none)");
	if (info->err)
		nf->failed++;
	else
		nf->removed++;
	return 0;
}

/* Symlinks, folders and FIFOs named like a lock in a local locks/ (issue
 * 12: list and unlock failed, run retried for 38 s): each one is "not a
 * lock file", blocks at once like a foreign lock, and unlock --remove-all
 * removes a symlink (never what it points to), an empty folder and a FIFO,
 * and leaves a folder with something in it. */
LWT_ENGINE_TEST(conflict, entries_that_are_not_files, .timeout = 30)
{
	struct lwt t;
	struct lw_lock *l;
	struct not_files nf = { 0 };
	int64_t start, took;

	lwt_start(&t, p, NULL, REFRESH, STALE);
	cr_assert_eq(mkdir(repo_path(&t, "data"), 0755), 0);
	write_pack(repo_path(&t, "data/pack"));
	cr_assert_eq(symlink("../data/pack", repo_path(&t, "locks/" SYMLINK_ID)), 0);
	cr_assert_eq(mkdir(repo_path(&t, "locks/" DIR_ID), 0755), 0);
	cr_assert_eq(mkdir(repo_path(&t, "locks/" FULL_ID), 0755), 0);
	write_pack(repo_path(&t, "locks/" FULL_ID "/pack"));
	cr_assert_eq(mkfifo(repo_path(&t, "locks/" FIFO_ID), 0644), 0);

	start = lwt_ms();
	l = lwt_lock(t.repo, 0, -LW_ELOCKED);
	took = lwt_ms() - start;
	cr_expect(strstr(lw_errmsg(), "not a lock file"), "%s", lw_errmsg());
	/* the fixture retries a failed listing after 100, 200, 400 ms */
	cr_expect_lt(took, 500, "blocked at once, not after retries (%lld ms)", (long long)took);
	lw_lock_free(l);

	cr_expect_eq(lw_repo_list(t.repo, note_not_file, &nf), 0, "%s", lw_errmsg());
	cr_expect_eq(nf.n, 4, "listed: %d", nf.n);
	nf = (struct not_files){ 0 };
	cr_expect_eq(lw_repo_unlock(t.repo, LW_UNLOCK_ALL, note_not_file, &nf), 3, "%s",
		     lw_errmsg());
	cr_expect_eq(nf.failed, 1, "the folder with something in it stays");
	cr_expect(!exists_nofollow(repo_path(&t, "locks/" SYMLINK_ID)), "the symlink is gone");
	cr_expect(exists_nofollow(repo_path(&t, "data/pack")), "what it pointed to is there");
	cr_expect(!exists_nofollow(repo_path(&t, "locks/" DIR_ID)), "the empty folder is gone");
	cr_expect(!exists_nofollow(repo_path(&t, "locks/" FIFO_ID)), "the FIFO is gone");
	cr_expect(exists_nofollow(repo_path(&t, "locks/" FULL_ID "/pack")),
		  "a folder with something in it is left whole");
	lwt_stop(&t);
}

/* locks/ itself a symlink (issue 12: `ln -s data/00 locks; unlock
 * --remove-all` deleted a pack): refused by every call, at once, and
 * nothing it points to is touched. */
LWT_ENGINE_TEST(conflict, locks_symlink_is_refused, .timeout = 30)
{
	struct lwt t;
	struct lw_lock *l;
	int64_t start, took;

	lwt_start(&t, p, NULL, REFRESH, STALE);
	cr_assert_eq(mkdir(repo_path(&t, "data"), 0755), 0);
	cr_assert_eq(rmdir(repo_path(&t, "locks")), 0);
	cr_assert_eq(symlink("data", repo_path(&t, "locks")), 0);
	write_pack(repo_path(&t, "data/" FULL_ID));
	start = lwt_ms();
	l = lwt_lock(t.repo, LW_LOCK_EXCLUSIVE, -LW_EBACKEND);
	took = lwt_ms() - start;
	cr_expect(strstr(lw_errmsg(), "not a folder") && strstr(lw_errmsg(), "symlink"), "%s",
		  lw_errmsg());
	cr_expect_lt(took, 500, "refused at once, not after retries (%lld ms)", (long long)took);
	lw_lock_free(l);
	cr_expect_eq(lw_repo_list(t.repo, NULL, NULL), -ENOTDIR, "%s", lw_errmsg());
	cr_expect_eq(lw_repo_unlock(t.repo, LW_UNLOCK_ALL, NULL, NULL), -ENOTDIR, "%s",
		     lw_errmsg());
	cr_expect_lt(lw_repo_init(t.repo), 0, "init accepts a symlinked locks/");
	cr_expect(exists_nofollow(repo_path(&t, "data/" FULL_ID)), "the pack is gone");
	lwt_stop(&t);
}

/* Over HTTP a folder named like a lock blocks as on a local repository
 * (dav: skipped it: the backends disagreed), and unlock --remove-all never
 * sends DELETE for it, which would take what is in it.  Locally an empty
 * one is removed. */
LWT_FILES_TEST(conflict, folder_in_locks_blocks_everywhere, .timeout = 30)
{
	struct lwt t;
	struct lw_lock *l;
	struct not_files nf = { 0 };

	lwt_start(&t, p, NULL, REFRESH, STALE);
	cr_assert_eq(mkdir(repo_path(&t, "locks/" FULL_ID), 0755), 0);
	write_pack(repo_path(&t, "locks/" FULL_ID "/pack"));
	cr_assert_eq(mkdir(repo_path(&t, "locks/" DIR_ID), 0755), 0);
	l = lwt_lock(t.repo, 0, -LW_ELOCKED);
	cr_expect(strstr(lw_errmsg(), "not a lock file: a folder"), "%s", lw_errmsg());
	lw_lock_free(l);
	cr_expect_eq(lw_repo_list(t.repo, note_not_file, &nf), 0, "%s", lw_errmsg());
	cr_expect_eq(nf.n, 2);
	nf = (struct not_files){ 0 };
	lw_repo_unlock(t.repo, LW_UNLOCK_ALL, note_not_file, &nf);
	cr_expect(exists_nofollow(repo_path(&t, "locks/" FULL_ID "/pack")), "a DELETE took it");
	cr_expect_eq(exists_nofollow(repo_path(&t, "locks/" DIR_ID)), p->backend != LWT_BE_LOCAL,
		     "an empty folder goes only from a local repository");
	lwt_stop(&t);
}

/* ------------------------------------------------------------ the view */

struct listings {
	atomic_int full, delta;
};

static void count_listings(void *userdata, const struct lw__breq *req, int64_t started,
			   int64_t ended)
{
	struct listings *n = userdata;

	(void)started;
	(void)ended;
	if (req->op == LW__BOP_LIST && req->view && req->res == 0)
		atomic_fetch_add(req->delta ? &n->delta : &n->full, 1);
}

/* An exclusive acquire on T refused because of what HAS names, and one
 * more listing answered from the view. */
static void refused(struct lwt *t, struct listings *n, const char *has)
{
	int before = atomic_load(&n->delta);
	struct lw_lock *l = lwt_lock(t->repo, LW_LOCK_EXCLUSIVE, -LW_ELOCKED);

	cr_expect(strstr(lw_errmsg(), has), "'%s' lacks '%s'", lw_errmsg(), has);
	cr_expect_gt(atomic_load(&n->delta), before, "not answered from the view");
	lw_lock_free(l);
}

static void granted(struct lwt *t, struct listings *n)
{
	int before = atomic_load(&n->delta);
	struct lw_lock *l = lwt_lock(t->repo, LW_LOCK_EXCLUSIVE, 0);

	cr_expect_gt(atomic_load(&n->delta), before, "not answered from the view");
	cr_expect_eq(lw_lock_release(l), 0, "%s", lw_errmsg()); /* its file gone */
	lw_lock_free(l);
}

/* After its first listing a local repository's listings are what changed
 * since the one before (inotify): every kind of change made by anyone
 * else is seen there, as a full listing would see it.  Each acquire below
 * lists twice, and only the very first listing reads the folder. */
LWT_ENGINE_TEST(conflict, the_view_sees_every_change, .timeout = 30)
{
	struct lw__record rec = lwt_record(true);
	struct listings n = { 0 };
	struct lwt t, o;
	struct lw_lock *l;
	char id[65], name[80], path[PATH_MAX + 200];
	int fd;

	lwt_start(&t, p, NULL, REFRESH, STALE);
	cr_assert_eq(lw__loop_observe(t.loop, count_listings, &n), 0);
	l = lwt_lock(t.repo, 0, 0);
	cr_expect_eq(lw_lock_release(l), 0, "%s", lw_errmsg());
	lw_lock_free(l);
	cr_expect_eq(atomic_load(&n.full), 1, "the basis");

	/* a record written in place, as restic 0.14 writes its locks */
	lwt_plant(&t, &rec, id);
	refused(&t, &n, "alice@otherhost");
	snprintf(name, sizeof(name), "locks/%s", id);
	cr_assert_eq(unlink(repo_path(&t, name)), 0);
	granted(&t, &n);

	/* renamed into place, as lockwatch and restic 0.16 write theirs */
	lwt_plant(&t, &rec, id);
	snprintf(name, sizeof(name), "locks/%s", id);
	snprintf(path, sizeof(path), "%s", repo_path(&t, name));
	cr_assert_eq(rename(path, repo_path(&t, "held-aside")), 0);
	granted(&t, &n);
	cr_assert_eq(rename(repo_path(&t, "held-aside"), path), 0);
	refused(&t, &n, "alice@otherhost");
	cr_assert_eq(unlink(path), 0);

	/* empty, then written: read again once written */
	cr_assert((fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644)) >= 0);
	granted(&t, &n);
	{
		uint8_t buf[LW_RECORD_MAX];
		int len = lw__record_encode(&rec, buf, sizeof(buf));

		cr_assert_gt(len, 0);
		cr_assert_eq(write(fd, buf, (size_t)len), len);
		cr_assert_eq(close(fd), 0);
	}
	refused(&t, &n, "alice@otherhost");
	cr_assert_eq(unlink(path), 0);

	/* what is not a file */
	cr_assert_eq(symlink("../config", repo_path(&t, "locks/" SYMLINK_ID)), 0);
	refused(&t, &n, "a symbolic link");
	cr_assert_eq(unlink(repo_path(&t, "locks/" SYMLINK_ID)), 0);
	cr_assert_eq(mkdir(repo_path(&t, "locks/" DIR_ID), 0755), 0);
	refused(&t, &n, "a folder");
	cr_assert_eq(rmdir(repo_path(&t, "locks/" DIR_ID)), 0);
	granted(&t, &n);

	/* another holder's lock, taken and given back */
	lwt_other(&t, &o);
	l = lwt_lock(o.repo, 0, 0);
	refused(&t, &n, "shared lock of");
	cr_expect_eq(lw_lock_release(l), 0, "%s", lw_errmsg());
	lw_lock_free(l);
	granted(&t, &n);
	lwt_other_stop(&o);

	cr_expect_eq(atomic_load(&n.full), 1, "one full listing, then changes (%d of them)",
		     atomic_load(&n.delta));
	lw__loop_observe(t.loop, NULL, NULL);
	lwt_stop(&t);
}
