/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The library on a restic repository made by restic 0.14, on both engines:
 * where the password comes from (setter, callback, RESTIC_PASSWORD_FILE,
 * RESTIC_PASSWORD_COMMAND), that the callback runs on a thread that is not
 * the loop's, that two repository objects of one repository derive the key
 * once, that no password and a wrong one are refused without a file
 * written, and that LW_FORMAT_LOCKWATCH writes lockwatch's own record.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "lockwatch.h"
#include "lwtest.h"
#include "resticbin.h"

static struct lwt_restic_repo repo;

static void teardown(void)
{
	lwt_restic_remove(&repo);
}

static atomic_int derivations;
static pthread_t loop_thread, password_thread;
static atomic_int password_calls;

static void count_derivations(void *userdata, int priority, const char *msg)
{
	if (strstr(msg, "key derivation for"))
		atomic_fetch_add(&derivations, 1);
}

static int give_password(char *buf, size_t size, void *userdata)
{
	password_thread = pthread_self();
	atomic_fetch_add(&password_calls, 1);
	return snprintf(buf, size, "%s", LWT_RESTIC_PASSWORD);
}

static struct lw_loop *loop_on(enum lw_engine engine)
{
	struct lw_loop *loop;

	cr_assert_eq(lw_loop_new(engine, &loop), 0, "%s", lw_errmsg());
	lw_loop_set_log_fn(loop, count_derivations, NULL);
	lw_loop_set_log_priority(loop, LOG_INFO);
	cr_assert_eq(lw_loop_start(loop), 0);
	return loop;
}

static int lock_files(void)
{
	char dir[256];
	struct dirent *e;
	DIR *d;
	int n = 0;

	snprintf(dir, sizeof(dir), "%s/locks", repo.disk);
	d = opendir(dir);
	cr_assert_not_null(d);
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

struct acquired {
	bool done;
	int err;
	pthread_mutex_t mu;
	pthread_cond_t cv;
};

static void on_acquired(struct lw_lock *lock, int err, const char *msg, void *userdata)
{
	struct acquired *a = userdata;

	loop_thread = pthread_self();
	pthread_mutex_lock(&a->mu);
	a->err = err;
	a->done = true;
	pthread_cond_broadcast(&a->cv);
	pthread_mutex_unlock(&a->mu);
}

/* Acquires a shared lock on REPO_ from the loop thread's callback. */
static int acquire_async(struct lw_repo *r, struct lw_lock **lockp)
{
	struct acquired a = { .mu = PTHREAD_MUTEX_INITIALIZER,
			      .cv = PTHREAD_COND_INITIALIZER };

	cr_assert_eq(lw_lock_new(r, 0, "test-restic-lib", lockp), 0);
	cr_assert_eq(lw_lock_acquire_async(*lockp, on_acquired, &a), 0);
	pthread_mutex_lock(&a.mu);
	while (!a.done)
		pthread_cond_wait(&a.cv, &a.mu);
	pthread_mutex_unlock(&a.mu);
	return a.err;
}

/* The callback gives the password on a thread that is not the loop's; a
 * second repository object of the same repository does not derive again;
 * the locks are restic's (restic lists and obeys them elsewhere:
 * tests/cli/test-restic-repo.c) and named by their hash. */
LWT_ENGINE_TEST(restic_lib, callback_once, .timeout = 120, .fini = teardown)
{
	struct lw_loop *loop = loop_on(p->engine);
	struct lw_repo *a, *b;
	struct lw_lock *la, *lb;

	lwt_restic_init(&repo, 2);
	cr_assert_eq(lw_repo_new(loop, repo.path, &a), 0);
	cr_assert_eq(lw_repo_new(loop, repo.path, &b), 0);
	cr_assert_eq(lw_repo_set_password_fn(a, give_password, NULL), 0);
	cr_assert_eq(lw_repo_set_password_fn(b, give_password, NULL), 0);
	cr_assert_eq(acquire_async(a, &la), 0, "%s", lw_errmsg());
	cr_assert(!pthread_equal(password_thread, loop_thread),
		  "the password was asked for on the loop thread");
	cr_assert_eq(acquire_async(b, &lb), 0, "%s", lw_errmsg());
	cr_assert_eq(atomic_load(&password_calls), 2);
	cr_assert_eq(atomic_load(&derivations), 1, "the key was derived %d times",
		     atomic_load(&derivations));
	cr_assert_eq(lock_files(), 2);
	cr_assert_eq(lw_lock_release(la), 0);
	cr_assert_eq(lw_lock_release(lb), 0);
	cr_assert_eq(lock_files(), 0);
	lw_lock_free(la);
	lw_lock_free(lb);
	lw_repo_unref(a);
	lw_repo_unref(b);
	lw_loop_free(loop);
}

/* What restic reads, in restic's order, when the application sets none. */
LWT_ENGINE_TEST(restic_lib, environment, .timeout = 120, .fini = teardown)
{
	struct lw_loop *loop = loop_on(p->engine);
	struct lw_repo *r;
	struct lw_lock *lock;
	char pwfile[256], cmd[300];
	FILE *f;

	lwt_restic_init(&repo, 1);
	snprintf(pwfile, sizeof(pwfile), "%s/pw", repo.dir);
	f = fopen(pwfile, "w");
	cr_assert_not_null(f);
	fprintf(f, "  %s\n", LWT_RESTIC_PASSWORD);
	fclose(f);
	unsetenv("RESTIC_PASSWORD");
	unsetenv("RESTIC_PASSWORD_COMMAND");
	setenv("RESTIC_PASSWORD_FILE", pwfile, 1);
	cr_assert_eq(lw_repo_new(loop, repo.path, &r), 0);
	cr_assert_eq(lw_lock_new(r, LW_LOCK_EXCLUSIVE, NULL, &lock), 0);
	cr_assert_eq(lw_lock_acquire(lock), 0, "RESTIC_PASSWORD_FILE: %s", lw_errmsg());
	cr_assert_eq(lw_lock_release(lock), 0);
	lw_lock_free(lock);
	lw_repo_unref(r);

	unsetenv("RESTIC_PASSWORD_FILE");
	snprintf(cmd, sizeof(cmd), "cat %s", pwfile);
	setenv("RESTIC_PASSWORD_COMMAND", cmd, 1);
	cr_assert_eq(lw_repo_new(loop, repo.path, &r), 0);
	cr_assert_eq(lw_lock_new(r, LW_LOCK_EXCLUSIVE, NULL, &lock), 0);
	cr_assert_eq(lw_lock_acquire(lock), 0, "RESTIC_PASSWORD_COMMAND: %s", lw_errmsg());
	cr_assert_eq(lw_lock_release(lock), 0);
	lw_lock_free(lock);
	lw_repo_unref(r);

	setenv("RESTIC_PASSWORD_COMMAND", "exit 3", 1);
	cr_assert_eq(lw_repo_new(loop, repo.path, &r), 0);
	cr_assert_eq(lw_lock_new(r, LW_LOCK_EXCLUSIVE, NULL, &lock), 0);
	cr_assert_eq(lw_lock_acquire(lock), -ENOKEY);
	cr_assert(strstr(lw_errmsg(), "RESTIC_PASSWORD_COMMAND failed (exit 3)"), "%s",
		  lw_errmsg());
	lw_lock_free(lock);
	lw_repo_unref(r);
	unsetenv("RESTIC_PASSWORD_COMMAND");
	/* the file's password was derived once; the command's is the same */
	cr_assert_eq(atomic_load(&derivations), 1);
	cr_assert_eq(lock_files(), 0);
	lw_loop_free(loop);
}

/* No password: -ENOKEY, saying why; a wrong one: -EACCES; neither writes
 * a file.  A password set after the refusal is taken.  LW_FORMAT_LOCKWATCH
 * writes lockwatch's msgpack record, not restic's. */
LWT_ENGINE_TEST(restic_lib, refused, .timeout = 120, .fini = teardown)
{
	struct lw_loop *loop = loop_on(p->engine);
	struct lw_repo *r;
	struct lw_lock *lock;
	char path[512], buf[4200];
	struct dirent *e;
	size_t n;
	DIR *d;
	FILE *f;

	unsetenv("RESTIC_PASSWORD");
	unsetenv("RESTIC_PASSWORD_FILE");
	unsetenv("RESTIC_PASSWORD_COMMAND");
	lwt_restic_init(&repo, 2);
	cr_assert_eq(lw_repo_new(loop, repo.path, &r), 0);
	cr_assert_eq(lw_lock_new(r, 0, NULL, &lock), 0);
	cr_assert_eq(lw_lock_acquire(lock), -ENOKEY);
	cr_assert(strstr(lw_errmsg(), "is a restic repository and no password was given"),
		  "%s", lw_errmsg());
	cr_assert_eq(lock_files(), 0);
	lw_lock_free(lock);

	cr_assert_eq(lw_repo_set_password(r, "wrong"), 0);
	cr_assert_eq(lw_lock_new(r, 0, NULL, &lock), 0);
	cr_assert_eq(lw_lock_acquire(lock), -EACCES);
	cr_assert(strstr(lw_errmsg(), "wrong password"), "%s", lw_errmsg());
	cr_assert_eq(lock_files(), 0);
	lw_lock_free(lock);

	cr_assert_eq(lw_repo_set_password(r, LWT_RESTIC_PASSWORD), 0);
	cr_assert_eq(lw_lock_new(r, 0, NULL, &lock), 0);
	cr_assert_eq(lw_lock_acquire(lock), 0, "%s", lw_errmsg());
	cr_assert_eq(lw_lock_release(lock), 0);
	lw_lock_free(lock);
	lw_repo_unref(r);

	cr_assert_eq(lw_repo_new(loop, repo.path, &r), 0);
	cr_assert_eq(lw_repo_set_format(r, LW_FORMAT_LOCKWATCH), 0);
	cr_assert_eq(lw_lock_new(r, 0, NULL, &lock), 0);
	cr_assert_eq(lw_lock_acquire(lock), 0, "%s", lw_errmsg());
	snprintf(path, sizeof(path), "%s/locks", repo.disk);
	d = opendir(path);
	cr_assert_not_null(d);
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			snprintf(path, sizeof(path), "%s/locks/%.64s", repo.disk, e->d_name);
	closedir(d);
	f = fopen(path, "rb");
	cr_assert_not_null(f, "%s", path);
	n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	/* msgpack keeps the keys readable; restic's sealed JSON would not */
	cr_assert(memmem(buf, n, "\xa7" "boot_id", 8) && memmem(buf, n, "\xa5nonce", 6),
		  "not lockwatch's record");
	cr_assert_eq(lw_lock_release(lock), 0);
	lw_lock_free(lock);
	lw_repo_unref(r);
	lw_loop_free(loop);
}
