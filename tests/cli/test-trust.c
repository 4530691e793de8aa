/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * What crosses a trust boundary (README, "Threat model"): the repository's
 * password never leaves the process except to the server (not in a log
 * line at any level, an error, list output or the command line that other
 * users see), and lock files are readable by the repository's other users
 * but written by nobody once in place.
 */
#include "config.h"

#include "test.h"
#include <criterion/parameterized.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clitest.h"
#include "lwtest.h"
#include "nginx.h"

/* base64("alice:s3cret"): what the Authorization header carries */
#define AUTH_HEADER "YWxpY2U6czNjcmV0"

static void expect_no_secret(const char *what, const char *text)
{
	cr_expect(!strstr(text, LWT_AUTH_PASSWORD), "%s shows the password: %s", what, text);
	cr_expect(!strstr(text, "Wr0ngPass"), "%s shows the password: %s", what, text);
	cr_expect(!strstr(text, AUTH_HEADER), "%s shows the Authorization header: %s", what,
		  text);
}

/* Runs lockwatch with ARGS; checks its stdout and stderr. */
static int run_clean(const char *tmp, const char *const *args, const char *const *env)
{
	struct cli_param prm = { .engine = LW_ENGINE_AUTO };
	struct proc pr;
	char *out, *err;

	clitest_start(&pr, tmp, NULL, &prm, env, args);
	clitest_wait(&pr, 30000);
	out = clitest_read(pr.out);
	err = clitest_read(pr.err);
	expect_no_secret(args[4], out);
	expect_no_secret(args[4], err);
	free(out);
	free(err);
	return pr.status;
}

/* The command with a password in its URL, at the highest verbosity and
 * with the library's debug lines, through a lock's life, list, unlock, a
 * wrong password and a malformed URL. */
Test(trust, cli_never_shows_the_password, .timeout = 60)
{
	struct lwt_nginx *ng = lwt_nginx_start();
	const char *env[] = { "LOCKWATCH_LOG=debug", "LOCKWATCH_ENGINE=epoll", NULL };
	char tmp[] = "/tmp/lwtrust-XXXXXX", url[256], wrong[256], bad[256], cmdline[4096];
	char job[600], pidfile[300];
	const char *init[] = { "-v", "-v", "-r", url, "init", NULL };
	const char *run[] = { "-v", "-v", "-r", url, "run", "--refresh-interval", "1s",
			      "--stale-timeout", "4s", "--", "sh", "-c", job, NULL };
	const char *list[] = { "-v", "-v", "-r", url, "list", NULL };
	const char *json[] = { "-v", "-v", "-r", url, "list", "--json", NULL };
	const char *unlock[] = { "-v", "-v", "-r", url, "unlock", "--remove-all", NULL };
	const char *denied[] = { "-v", "-v", "-r", wrong, "list", NULL };
	const char *malformed[] = { "-v", "-v", "-r", bad, "list", NULL };
	struct cli_param prm = { .engine = LW_ENGINE_AUTO };
	struct proc holder;
	char *s;
	int fd;
	ssize_t n;

	cr_assert(ng, "nginx did not start");
	cr_assert(mkdtemp(tmp));
	snprintf(url, sizeof(url), "dav:http://%s:%s@127.0.0.1:%d/trust/", LWT_AUTH_USER,
		 LWT_AUTH_PASSWORD, lwt_nginx_port(ng, LWT_DAV_AUTH));
	snprintf(wrong, sizeof(wrong), "dav:http://alice:Wr0ngPass@127.0.0.1:%d/trust/",
		 lwt_nginx_port(ng, LWT_DAV_AUTH));
	snprintf(bad, sizeof(bad), "dav:http://alice:" LWT_AUTH_PASSWORD "@[::1/trust/");
	snprintf(pidfile, sizeof(pidfile), "%s/up", tmp);
	snprintf(job, sizeof(job), "echo up > %s; sleep 2", pidfile);

	cr_expect_eq(run_clean(tmp, init, env), 0);
	/* held across refreshes; meanwhile list it, and look at its command
	 * line as any user of the machine can */
	clitest_start(&holder, tmp, NULL, &prm, env, run);
	cr_assert(clitest_wait_file(pidfile, 10000));
	snprintf(cmdline, sizeof(cmdline), "/proc/%d/cmdline", (int)holder.pid);
	fd = open(cmdline, O_RDONLY);
	cr_assert(fd >= 0);
	n = read(fd, cmdline, sizeof(cmdline) - 1);
	close(fd);
	cr_assert_gt(n, 0);
	for (ssize_t i = 0; i < n; i++)
		cmdline[i] = cmdline[i] ? cmdline[i] : ' ';
	cmdline[n] = '\0';
	/* under valgrind that is valgrind's own copy of the arguments */
	if (!getenv("LWT_VALGRIND")) {
		expect_no_secret("/proc/PID/cmdline", cmdline);
		cr_expect(strstr(cmdline, "alice:******@"), "%s", cmdline);
	}
	cr_expect_eq(run_clean(tmp, list, env), 0);
	cr_expect_eq(run_clean(tmp, json, env), 0);
	clitest_wait(&holder, 10000);
	cr_expect_eq(holder.status, 0);
	s = clitest_read(holder.err);
	cr_expect(strstr(s, "GET http://127.0.0.1"), "no debug lines: %s", s);
	cr_expect(strstr(s, "refreshed"), "no refresh lines: %s", s);
	expect_no_secret("run's stderr", s);
	free(s);
	cr_expect_eq(run_clean(tmp, unlock, env), 0);
	cr_expect_eq(run_clean(tmp, denied, env), 1);
	cr_expect_eq(run_clean(tmp, malformed, env), 2);

	lwt_nginx_stop(ng);
	snprintf(cmdline, sizeof(cmdline), "rm -rf '%s'", tmp);
	cr_expect_eq(system(cmdline), 0);
}

/* ------------------------------------------------------ lock file mode */

static mode_t lock_mode(const struct lwt *t, struct lw_lock *lock)
{
	char id[65], path[PATH_MAX + 80];
	struct stat st;

	cr_assert_eq(lw_lock_id(lock, id), 0);
	snprintf(path, sizeof(path), "%s/locks/%s", t->dir, id);
	cr_assert_eq(stat(path, &st), 0, "%s", path);
	return st.st_mode & 07777;
}

/* Read-only for everyone, whatever the umask lets through: lock files are
 * never written once in place.  The umask can take reading away. */
LWT_ENGINE_TEST(trust, lock_file_mode, .timeout = 30)
{
	static const struct { mode_t umask, mode; } cases[] = {
		{ 022, 0444 }, { 0, 0444 }, { 027, 0440 }, { 077, 0400 },
	};
	struct lwt t;

	lwt_start(&t, p, NULL, LW_SEC(1), LW_SEC(4));
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		mode_t old = umask(cases[i].umask);
		struct lw_lock *lock = lwt_lock(t.repo, LW_LOCK_EXCLUSIVE, 0);

		umask(old);
		cr_expect_eq(lock_mode(&t, lock), cases[i].mode, "umask %03o: mode %03o",
			     (unsigned)cases[i].umask, (unsigned)lock_mode(&t, lock));
		lw_lock_free(lock);
		cr_assert(lwt_wait_for(lwt_count(&t) == 0, 2000));
	}
	lwt_stop(&t);
}

/* A lock file another user of the repository cannot read (its holder's
 * umask was 077) is not taken for absent: that user's listing fails, and
 * so would its acquire, with the reason. */
LWT_ENGINE_TEST(trust, unreadable_lock_fails_closed, .timeout = 30)
{
	struct lwt t;
	struct lw_lock *lock;
	char locks[PATH_MAX + 8];
	mode_t old;
	pid_t pid;
	int st;

	if (geteuid() != 0)
		cr_skip_test("needs root, to list as another user");
	lwt_start(&t, p, NULL, LW_SEC(1), LW_SEC(4));
	old = umask(077);
	lock = lwt_lock(t.repo, LW_LOCK_EXCLUSIVE, 0);
	umask(old);
	snprintf(locks, sizeof(locks), "%s/locks", t.dir);
	cr_assert_eq(chmod(t.dir, 0755), 0);
	cr_assert_eq(chmod(locks, 0777), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct lw_loop *loop;
		struct lw_repo *repo;
		int r;

		/* nobody, on a loop of its own, before any thread of its own */
		if (setgid(65534) < 0 || setuid(65534) < 0)
			_exit(90);
		if (lw_loop_new(p->engine, &loop) < 0 || lw_loop_start(loop) < 0 ||
		    lw_repo_new(loop, t.url, &repo) < 0)
			_exit(91);
		lw_repo_set_check_retry(repo, LW_MSEC(10));
		r = lw_repo_list(repo, NULL, NULL);
		if (r < 0)
			fprintf(stderr, "nobody's list: %s\n", lw_errmsg());
		r = r < 0 && strstr(lw_errmsg(), "Permission denied") ? 0 : 92;
		lw_repo_unref(repo);
		lw_loop_free(loop);
		_exit(r);
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "exit status %d",
		  WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	lw_lock_free(lock);
	lwt_stop(&t);
}
