/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The lockwatch command, end to end: the built binary on a real repository
 * of each backend of tests/helpers/clitest.c (the WebDAV servers for what
 * a user of each does: CLI_TEST_ALL), on both engines.  Each case checks
 * what a user sees: the exit status, the messages, the job's behaviour and
 * the files left in locks/ (none, on every path).
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
#include <time.h>
#include <unistd.h>

#include "clitest.h"
#include "nginx.h"
#include "testing.h"

/* Refresh timing of the cases: refreshes every second, deadline 2.5 s
 * after the last one started. */
#define FAST "--refresh-interval", "1s", "--stale-timeout", "4s"

#define CLI_TEST(name, timeout_s) CLITEST(cli, name, timeout_s)
/* What a user of every server does (run, list, unlock, a stall): on the
 * WebDAV servers too */
#define CLI_TEST_ALL(name, timeout_s) CLITEST_ON(cli, name, timeout_s, clitest_all_params)

static char *tmpfile_(const struct repo *r, const char *name)
{
	static __thread char bufs[4][600];
	static __thread int i;
	char *b = bufs[i++ % 4];

	return clitest_path(b, sizeof(bufs[0]), r->tmp, name);
}

static void expect_no_locks(const struct repo *r, const char *when)
{
	cr_expect_eq(clitest_count_locks(r), 0, "%s (%s): files left in locks/", when,
		     r->be->name);
}

static void expect_err(const struct proc *pr, const char *needle)
{
	char *err = clitest_read(pr->err);

	cr_expect(strstr(err, needle), "stderr lacks \"%s\": %s", needle, err);
	free(err);
}

/* Starts a holder of an exclusive lock running JOB; returns once its lock
 * file exists. */
static void hold(struct proc *pr, const struct repo *r, const struct cli_param *p,
		 const char *job)
{
	const char *args[] = { "run", "--exclusive", "--purpose", "holder", "--", "sh", "-c",
			       job, NULL };
	int64_t until = clitest_now() + LW_SEC(10);

	clitest_start(pr, r->tmp, r, p, NULL, args);
	while (clitest_count_locks(r) != 1) {
		cr_assert_lt(clitest_now(), until, "the holder never got its lock");
		clitest_sleep_ms(10);
	}
	/* past its recheck: the lock is confirmed */
	clitest_sleep_ms(400);
}

/* -------------------------------------------------------- exit statuses */

CLI_TEST(exit_status_is_the_jobs, 60)
{
	const char *ok[] = { "run", "--", "true", NULL };
	const char *three[] = { "run", "--", "sh", "-c", "exit 3", NULL };
	const char *usr1[] = { "run", "--", "sh", "-c", "kill -USR1 $$", NULL };
	struct proc pr;

	cr_expect_eq(clitest_run(&pr, r->tmp, r, p, ok), 0);
	cr_expect_eq(clitest_run(&pr, r->tmp, r, p, three), 3);
	cr_expect_eq(clitest_run(&pr, r->tmp, r, p, usr1), 128 + SIGUSR1);
	expect_no_locks(r, "after three jobs");
}

CLI_TEST_ALL(job_sees_its_lock_and_our_stdio, 30)
{
	/* the lock file the job is told about is there while it runs */
	char job[900];
	const char *args[] = { "run", "--", "sh", "-c", job, NULL };
	struct proc pr;
	char *out, *err;

	snprintf(job, sizeof(job),
		 "test -f %s/locks/$LOCKWATCH_LOCK_ID && echo \"held $LOCKWATCH_LOCK_ID\"; "
		 "echo to-stderr >&2", r->dir);
	cr_assert_eq(clitest_run(&pr, r->tmp, r, p, args), 0);
	out = clitest_read(pr.out);
	err = clitest_read(pr.err);
	cr_expect(strncmp(out, "held ", 5) == 0 && strlen(out) == 5 + 64 + 1, "stdout: %s", out);
	cr_expect_str_eq(err, "to-stderr\n");
	free(out);
	free(err);
	expect_no_locks(r, "after the job");
}

CLI_TEST_ALL(locked_repository_exits_11, 60)
{
	const char *shared[] = { "run", "--", "true", NULL };
	struct proc holder, pr;

	hold(&holder, r, p, "sleep 30");
	cr_expect_eq(clitest_run(&pr, r->tmp, r, p, shared), 11);
	expect_err(&pr, "is locked by exclusive lock of");
	expect_err(&pr, "purpose: holder");
	cr_expect_eq(clitest_count_locks(r), 1, "the refused run left a file");
	kill(holder.pid, SIGTERM);
	cr_expect_eq(clitest_wait(&holder, 10000), 128 + SIGTERM);
	expect_no_locks(r, "after the holder");
}

CLI_TEST(retry_lock_waits_for_the_holder, 60)
{
	const char *args[] = { "run", "--retry-lock", "30s", "--", "true", NULL };
	struct proc holder, pr;
	char *err;

	hold(&holder, r, p, "sleep 2");
	cr_expect_eq(clitest_run(&pr, r->tmp, r, p, args), 0);
	cr_expect_eq(clitest_wait(&holder, 10000), 0);
	/* restic's backoff: the second attempt comes 5 s (plus jitter) later */
	cr_expect_geq(pr.ended - pr.started, LW_SEC(5));
	cr_expect_lt(pr.ended - pr.started, LW_SEC(15));
	err = clitest_read(pr.err);
	/* not a terminal: one line per attempt, naming the holder */
	cr_expect_eq(clitest_lines(err), 1, "stderr: %s", err);
	cr_expect(strstr(err, "locked by exclusive lock of") && strstr(err, "next attempt in") &&
		  strstr(err, "giving up in"), "stderr: %s", err);
	free(err);
	expect_no_locks(r, "after both");
}

/* LOCKWATCH_RETRY_BACKOFF, for tests: the first wait is shorter. */
CLI_TEST(retry_backoff_from_the_environment, 60)
{
	const char *args[] = { "run", "--retry-lock", "30s", "--", "true", NULL };
	const char *fast[] = { "LOCKWATCH_RETRY_BACKOFF=200ms", NULL };
	const char *bad[] = { "LOCKWATCH_RETRY_BACKOFF=soon", NULL };
	struct proc holder, pr;

	hold(&holder, r, p, "sleep 2");
	clitest_start(&pr, r->tmp, r, p, fast, args);
	cr_expect_eq(clitest_wait(&pr, 20000), 0);
	cr_expect_eq(clitest_wait(&holder, 10000), 0);
	/* the holder ends about 1.6 s in; waits of 0.2 s doubling to 2.4 s
	 * come back soon after, where restic's 5 s would not */
	cr_expect_lt(pr.ended - pr.started, LW_MSEC(4800), "took %lld ms",
		     (long long)(pr.ended - pr.started) / 1000000);
	clitest_start(&pr, r->tmp, r, p, bad, args);
	cr_expect_eq(clitest_wait(&pr, 10000), 2);
	expect_err(&pr, "LOCKWATCH_RETRY_BACKOFF 'soon'");
	expect_no_locks(r, "after both");
}

CLI_TEST(retry_lock_gives_up, 60)
{
	const char *args[] = { "run", "--retry-lock", "1s", "--", "true", NULL };
	struct proc holder, pr;

	hold(&holder, r, p, "sleep 30");
	cr_expect_eq(clitest_run(&pr, r->tmp, r, p, args), 11);
	cr_expect_geq(pr.ended - pr.started, LW_SEC(1));
	cr_expect_lt(pr.ended - pr.started, LW_SEC(5));
	kill(holder.pid, SIGTERM);
	clitest_wait(&holder, 10000);
	expect_no_locks(r, "after both");
}

/* ------------------------------------------------------------ holding */

CLI_TEST(job_outlives_many_refreshes, 60)
{
	/* the job notes the lock file every 0.5 s for 5.5 s */
	char job[900];
	const char *args[] = { "run", FAST, "--", "sh", "-c", job, NULL };
	struct proc pr;
	char *names, *err, *line, *save = NULL;
	char seen[16][80];
	int nseen = 0;

	snprintf(job, sizeof(job), "for i in $(seq 11); do ls %s/locks >> %s; sleep 0.5; done",
		 r->dir, tmpfile_(r, "names"));
	cr_assert_eq(clitest_run(&pr, r->tmp, r, p, args), 0);
	err = clitest_read(pr.err);
	cr_expect_str_eq(err, "", "a healthy run says nothing");
	names = clitest_read(tmpfile_(r, "names"));
	for (line = strtok_r(names, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		bool known = false;

		for (int i = 0; i < nseen; i++)
			known |= strcmp(seen[i], line) == 0;
		if (!known && nseen < 16)
			snprintf(seen[nseen++], sizeof(seen[0]), "%.79s", line);
	}
	/* a new file at each refresh, about 5 of them */
	cr_expect_geq(nseen, 4, "only %d lock files seen", nseen);
	free(names);
	free(err);
	expect_no_locks(r, "after the job");
}

/* A job that notes SIGTERM, then ends. */
#define TERM_JOB(marker) "trap 'echo TERM >> " marker "; exit 5' TERM; while :; do sleep 0.05; done"

CLI_TEST(lost_by_removal, 30)
{
	char job[600], name[256], path[900];
	const char *args[] = { "run", FAST, "--", "sh", "-c", job, NULL };
	struct proc pr;

	snprintf(job, sizeof(job), TERM_JOB("%s"), tmpfile_(r, "marker"));
	clitest_start(&pr, r->tmp, r, p, NULL, args);
	while (!clitest_one_lock(r, name))
		clitest_sleep_ms(10);
	clitest_sleep_ms(300);
	cr_assert(clitest_one_lock(r, name));
	snprintf(path, sizeof(path), "%s/locks/%s", r->dir, name);
	/* someone ran unlock --remove-all */
	cr_assert_eq(unlink(path), 0);
	/* the next refresh (within 1 s) finds it gone */
	cr_expect_eq(clitest_wait(&pr, 5000), 12);
	expect_err(&pr, "lost the lock on");
	expect_err(&pr, "removed by someone else");
	expect_err(&pr, "SIGTERM sent to the job");
	cr_expect(clitest_wait_text(tmpfile_(r, "marker"), "TERM", 0), "the job got no SIGTERM");
	expect_no_locks(r, "after the loss");
}

CLI_TEST_ALL(lost_by_deadline, 30)
{
	char job[600];
	const char *args[] = { "run", FAST, "--", "sh", "-c", job, NULL };
	struct proc pr;
	int64_t stalled, latency;

	clitest_held_job(job, sizeof(job), r->tmp);
	clitest_start(&pr, r->tmp, r, p, NULL, args);
	while (clitest_count_locks(r) != 1)
		clitest_sleep_ms(10);
	clitest_sleep_ms(300);
	r->be->stall(r, pr.pid);
	stalled = clitest_now();
	cr_assert(clitest_wait_text(tmpfile_(r, "marker"), "TERM", 6000),
		  "the job was not stopped");
	/* the last write started before the stall: the deadline came at most
	 * 2.5 s after it */
	cr_expect_lt(clitest_now() - stalled, LW_MSEC(2500 + CLITEST_LOSS_BOUND_MS + 200));
	r->be->repair(r, pr.pid);
	clitest_let_job_end(r->tmp);
	if (clitest_wait(&pr, 5000) != 12) {
		char *err = clitest_read(pr.err);
		size_t n = strlen(err);

		cr_expect_fail("exit status %d, not 12; lockwatch said: ...%s", pr.status,
			       err + (n > 3000 ? n - 3000 : 0));
		free(err);
	}
	expect_err(&pr, "lock refresh deadline exceeded");
	latency = clitest_loss_latency(&pr);
	cr_expect(latency >= 0 && latency < LW_MSEC(CLITEST_LOSS_BOUND_MS),
		  "deadline to SIGTERM: %lld ns", (long long)latency);
	cr_log_info("%s/%s: SIGTERM %lld us after the deadline", r->be->name,
		    lw_engine_name(p->engine), (long long)latency / 1000);
	/* what the stopped server took in (Apache's and rclone's workers
	 * finish the refresh PUT after they wake) was waited for, and its
	 * file deleted after it landed */
	expect_no_locks(r, "after the loss");
}

CLI_TEST(kill_after_a_deaf_job, 30)
{
	char job[600];
	const char *args[] = { "run", FAST, "--kill-after", "500ms", "--", "sh", "-c", job, NULL };
	struct proc pr;
	int64_t termed;

	/* it notes SIGTERM and carries on */
	snprintf(job, sizeof(job), "trap 'echo TERM >> %s' TERM; while :; do sleep 0.05; done",
		 tmpfile_(r, "marker"));
	clitest_start(&pr, r->tmp, r, p, NULL, args);
	while (clitest_count_locks(r) != 1)
		clitest_sleep_ms(10);
	clitest_sleep_ms(300);
	r->be->stall(r, pr.pid);
	cr_assert(clitest_wait_text(tmpfile_(r, "marker"), "TERM", 6000));
	termed = clitest_now();
	r->be->repair(r, pr.pid);
	cr_expect_eq(clitest_wait(&pr, 5000), 12);
	cr_expect_geq(pr.ended - termed, LW_MSEC(400), "SIGKILL came too soon");
	cr_expect_lt(pr.ended - termed, LW_MSEC(2000), "SIGKILL came too late");
	expect_err(&pr, "SIGKILL follows in 500ms");
	expect_no_locks(r, "after the loss");
}

CLI_TEST(suspended_job_stops_on_resume, 40)
{
	char job[600];
	const char *args[] = { "run", FAST, "--", "sh", "-c", job, NULL };
	struct proc pr;
	struct timespec now;
	long long resumed_ns, last;
	pid_t group;

	clitest_ticker(job, sizeof(job), r->tmp);
	clitest_start(&pr, r->tmp, r, p, NULL, args);
	group = clitest_ticker_group(r->tmp);
	clitest_sleep_ms(300);

	/* the machine sleeps: lockwatch and the job's group stop together,
	 * for longer than the lock's deadline (2.5 s after a refresh) */
	kill(pr.pid, SIGSTOP);
	kill(-group, SIGSTOP);
	clitest_sleep_ms(4000);
	clock_gettime(CLOCK_REALTIME, &now);
	resumed_ns = (long long)now.tv_sec * 1000000000LL + now.tv_nsec;
	kill(pr.pid, SIGCONT);
	kill(-group, SIGCONT);

	cr_expect_eq(clitest_wait(&pr, 5000), 12);
	expect_err(&pr, "lock refresh deadline exceeded");
	last = clitest_last_tick(r->tmp);
	cr_expect_lt(last - resumed_ns, CLITEST_LOSS_BOUND_MS * 1000000LL,
		     "the job worked on for %lld ms after the resume",
		     (last - resumed_ns) / 1000000);
	expect_no_locks(r, "after the loss");
}

/* ---------------------------------------------------------- signals */

static void forward_one(const struct repo *r, const struct cli_param *p, int sig)
{
	char job[600];
	const char *args[] = { "run", "--", "sh", "-c", job, NULL };
	const char *deaf[] = { "run", "--", "sleep", "30", NULL };
	struct proc pr;
	char *marker;

	unlink(tmpfile_(r, "marker"));
	snprintf(job, sizeof(job), "trap 'echo got %d > %s; exit 7' %d; echo up > %s; "
		 "while :; do sleep 0.05; done", sig, tmpfile_(r, "marker"), sig,
		 tmpfile_(r, "up"));
	unlink(tmpfile_(r, "up"));
	clitest_start(&pr, r->tmp, r, p, NULL, args);
	cr_assert(clitest_wait_file(tmpfile_(r, "up"), 5000));
	kill(pr.pid, sig);
	cr_expect_eq(clitest_wait(&pr, 5000), 7, "signal %d", sig);
	marker = clitest_read(tmpfile_(r, "marker"));
	cr_expect_eq(atoi(marker + 4), sig, "the job got: %s", marker);
	free(marker);
	expect_no_locks(r, "after a trapped signal");

	/* a job that does not catch it dies of it, and so says lockwatch */
	clitest_start(&pr, r->tmp, r, p, NULL, deaf);
	while (clitest_count_locks(r) != 1)
		clitest_sleep_ms(10);
	clitest_sleep_ms(300);
	kill(pr.pid, sig);
	cr_expect_eq(clitest_wait(&pr, 5000), 128 + sig, "signal %d", sig);
	expect_no_locks(r, "after a deadly signal");
}

CLI_TEST(signals_are_forwarded, 60)
{
	forward_one(r, p, SIGINT);
	forward_one(r, p, SIGTERM);
	forward_one(r, p, SIGHUP);
}

CLI_TEST(signal_while_waiting_for_the_lock, 30)
{
	const char *args[] = { "run", "--retry-lock", "1m", "--", "true", NULL };
	struct proc holder, pr;

	hold(&holder, r, p, "sleep 30");
	clitest_start(&pr, r->tmp, r, p, NULL, args);
	cr_assert(clitest_wait_text(pr.err, "next attempt in", 5000));
	kill(pr.pid, SIGINT);
	cr_expect_eq(clitest_wait(&pr, 3000), 128 + SIGINT);
	cr_expect_eq(clitest_count_locks(r), 1, "the waiting run left a file");
	kill(holder.pid, SIGTERM);
	clitest_wait(&holder, 10000);
	expect_no_locks(r, "after both");
}

CLI_TEST(lock_held_until_the_group_ends, 30)
{
	/* the leader exits at once; a member of its group works on */
	char job[600];
	const char *args[] = { "run", "--", "sh", "-c", job, NULL };
	struct proc pr;
	struct stat st;

	snprintf(job, sizeof(job), "(sleep 1; echo done > %s) & exit 0", tmpfile_(r, "marker"));
	cr_expect_eq(clitest_run(&pr, r->tmp, r, p, args), 0);
	/* lockwatch ended after the member did */
	cr_expect_eq(stat(tmpfile_(r, "marker"), &st), 0, "lockwatch did not wait");
	cr_expect_geq(pr.ended - pr.started, LW_MSEC(900));
	expect_no_locks(r, "after the group");
}

CLI_TEST(command_not_runnable, 30)
{
	const char *missing[] = { "run", "--", "no-such-command-lockwatch", NULL };
	const char *noexec[] = { "run", "--", tmpfile_(r, "plain"), NULL };
	const char *badexec[] = { "run", "--", tmpfile_(r, "bad"), NULL };
	struct proc pr;

	cr_expect_eq(clitest_run(&pr, r->tmp, r, p, missing), 127);
	expect_err(&pr, "no-such-command-lockwatch: command not found");
	clitest_write(tmpfile_(r, "plain"), "true\n", 5);
	cr_expect_eq(clitest_run(&pr, r->tmp, r, p, noexec), 126);
	/* executable, but not a format the kernel runs: found out after the
	 * lock was taken, which must go again */
	clitest_write(tmpfile_(r, "bad"), "\x7f" "ELF garbage", 12);
	chmod(tmpfile_(r, "bad"), 0755);
	cr_expect_eq(clitest_run(&pr, r->tmp, r, p, badexec), 126);
	expect_err(&pr, "Exec format error");
	expect_no_locks(r, "after commands that did not run");
}

/* ------------------------------------------------------- list, unlock */

/* Plants a lock file with record REC under a random-looking NAME. */
static void plant(const struct repo *r, const char *name, const struct lw__record *rec)
{
	char path[900];
	uint8_t buf[LW_RECORD_MAX];
	int len = lw__record_encode(rec, buf, sizeof(buf));

	cr_assert_gt(len, 0);
	snprintf(path, sizeof(path), "%s/locks/%s", r->dir, name);
	clitest_write(path, buf, (size_t)len);
}

static void plant_raw(const struct repo *r, const char *name, const void *data, size_t len)
{
	char path[900];

	snprintf(path, sizeof(path), "%s/locks/%s", r->dir, name);
	clitest_write(path, data, len);
}

#define ID(c) c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c \
	      c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c c

static const char id_evil[] = ID("a"), id_long[] = ID("b"), id_stale[] = ID("c"),
		  id_foreign[] = ID("d"), id_invalid[] = ID("e");
static const char evil[] = "evil\033]0;pwned\007\033[2J\r\xe2\x80\xae" "txet\xc2\x9b" "31m\xff";

static int64_t now_real(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * LW_NSEC_PER_SEC + ts.tv_nsec;
}

/* Five lock files: a live record full of escape sequences, a live one with
 * a 255-byte host name, a stale one, a foreign file and an invalid record. */
static void plant_all(const struct repo *r, char longhost[256])
{
	/* msgpack {"v": 1, "time": "x"}: ours, but of the wrong type */
	static const uint8_t invalid[] = { 0x82, 0xa1, 'v', 0x01, 0xa4, 't', 'i', 'm', 'e',
					   0xa1, 'x' };
	struct lw__record rec = {
		.time = now_real(), .stale_timeout = LW_SEC(1800), .pid = 4242, .uid = 1,
		.gid = 1, .pid_ns = 1, .pid_start = 1, .exclusive = true,
		.hostname = evil, .username = evil, .purpose = evil,
		/* another boot: its process cannot be checked, so it is live */
		.boot_id = "00000000-0000-0000-0000-000000000000",
	};

	plant(r, id_evil, &rec);
	memset(longhost, 'h', 255);
	longhost[255] = '\0';
	rec.hostname = longhost;
	rec.username = "backup";
	rec.purpose = "nightly";
	rec.exclusive = false;
	rec.time -= LW_SEC(60);
	plant(r, id_long, &rec);
	rec.hostname = "gone";
	rec.time = now_real() - LW_SEC(7200);
	plant(r, id_stale, &rec);
	plant_raw(r, id_foreign, "\x00\x01restic-encrypted", 18);
	plant_raw(r, id_invalid, invalid, sizeof(invalid));
}

static void expect_terminal_safe(const char *s)
{
	for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
		cr_expect(*c >= 0x20 || *c == '\n', "control byte 0x%02x in: %s", *c, s);
		cr_expect(*c != 0x7f && *c != 0xff, "byte 0x%02x in: %s", *c, s);
		if (c[0] == 0xc2)
			cr_expect(c[1] < 0x80 || c[1] > 0x9f, "a C1 control in the output");
		if (c[0] == 0xe2 && c[1] == 0x80)
			cr_expect(c[2] != 0xae, "a right-to-left override in the output");
	}
}

CLI_TEST_ALL(list_is_safe_to_read, 30)
{
	const char *text[] = { "list", NULL }, *json[] = { "list", "--json", NULL };
	char longhost[256], *out, *line, *save = NULL;
	struct proc pr;
	int rows = 0;

	plant_all(r, longhost);
	cr_assert_eq(clitest_run(&pr, r->tmp, r, p, text), 0);
	out = clitest_read(pr.out);
	expect_terminal_safe(out);
	for (line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		cr_expect_lt(strlen(line), 200, "a line of %zu bytes", strlen(line));
		rows++;
	}
	free(out);
	cr_expect_eq(rows, 6, "a header and five locks");
	out = clitest_read(pr.out);
	cr_expect(strstr(out, "evil?]0;pwned??[2J??txet?31m?"), "%s", out);
	cr_expect(strstr(out, "hhhhhhhhhhhhhhhhhhhhh..."), "the long host is cut: %s", out);
	cr_expect(strstr(out, "2h0m  yes  ") && !strstr(out, "1m0s  yes"), "%s", out);
	cr_expect(strstr(out, "foreign") && strstr(out, "invalid"), "%s", out);
	cr_expect(strstr(out, "cccccccccccc  shared     gone"), "%s", out);
	free(out);

	cr_assert_eq(clitest_run(&pr, r->tmp, r, p, json), 0);
	out = clitest_read(pr.out);
	cr_expect(clitest_json_valid(out), "not JSON: %s", out);
	expect_terminal_safe(out);
	cr_expect(strstr(out, "\"evil\\u001b]0;pwned\\u0007\\u001b[2J\\u000d\\u202etxet"
			      "\\u009b31m\\ufffd\""), "%s", out);
	cr_expect(strstr(out, longhost), "the long host is whole in JSON");
	cr_expect(strstr(out, "\"kind\": \"foreign\"") && strstr(out, "\"kind\": \"invalid\""));
	cr_expect(strstr(out, "\"stale\": true"));
	free(out);
	cr_expect_eq(clitest_count_locks(r), 5, "list changed the repository");
}

CLI_TEST_ALL(unlock_removes_stale_then_all, 30)
{
	const char *unlock[] = { "unlock", NULL }, *all[] = { "unlock", "--remove-all", NULL };
	const char *json[] = { "list", "--json", NULL };
	char longhost[256], *out;
	struct proc pr;

	plant_all(r, longhost);
	cr_assert_eq(clitest_run(&pr, r->tmp, r, p, unlock), 0);
	out = clitest_read(pr.out);
	cr_expect_eq(clitest_lines(out), 1, "%s", out);
	cr_expect(strstr(out, "removed cccccccccccc (stale shared lock of backup@gone"), "%s", out);
	free(out);
	cr_expect_eq(clitest_count_locks(r), 4);

	cr_assert_eq(clitest_run(&pr, r->tmp, r, p, unlock), 0);
	out = clitest_read(pr.out);
	cr_expect(strstr(out, "no stale locks to remove"), "%s", out);
	free(out);

	cr_assert_eq(clitest_run(&pr, r->tmp, r, p, all), 0);
	out = clitest_read(pr.out);
	expect_terminal_safe(out);
	cr_expect_eq(clitest_lines(out), 4, "%s", out);
	cr_expect(strstr(out, "removed dddddddddddd (foreign file)"), "%s", out);
	free(out);
	expect_no_locks(r, "after unlock --remove-all");

	cr_assert_eq(clitest_run(&pr, r->tmp, r, p, json), 0);
	out = clitest_read(pr.out);
	cr_expect_str_eq(out, "[]\n");
	free(out);
}

CLI_TEST_ALL(unlock_ends_a_live_holder, 30)
{
	char job[600];
	const char *args[] = { "run", FAST, "--", "sh", "-c", job, NULL };
	const char *all[] = { "unlock", "--remove-all", NULL };
	struct proc holder, pr;
	char *out;

	snprintf(job, sizeof(job), TERM_JOB("%s"), tmpfile_(r, "marker"));
	clitest_start(&holder, r->tmp, r, p, NULL, args);
	while (clitest_count_locks(r) != 1)
		clitest_sleep_ms(10);
	clitest_sleep_ms(300);
	cr_assert_eq(clitest_run(&pr, r->tmp, r, p, all), 0);
	out = clitest_read(pr.out);
	cr_expect(strstr(out, "(exclusive lock of") || strstr(out, "(shared lock of"), "%s", out);
	free(out);
	/* the holder finds out at its next refresh, and stops its job */
	cr_expect_eq(clitest_wait(&holder, 5000), 12);
	cr_expect(clitest_wait_text(tmpfile_(r, "marker"), "TERM", 0), "the job got no SIGTERM");
	expect_no_locks(r, "after the holder");
}

/* ---------------------------------------------------------- bad input */

struct bad_case {
	const char *args[12];
	int status;
	const char *says;
};

static void expect_bad(const struct repo *r, const struct cli_param *p, bool with_repo,
		       const struct bad_case *c, const char *const *env)
{
	struct proc pr;
	char *err, *out;

	clitest_start(&pr, r->tmp, with_repo ? r : NULL, p, env, c->args);
	cr_expect_eq(clitest_wait(&pr, 10000), c->status, "%s %s: status %d", c->args[0],
		     c->args[1] ? c->args[1] : "", pr.status);
	err = clitest_read(pr.err);
	out = clitest_read(pr.out);
	cr_expect_eq(clitest_lines(err), 1, "not one line: %s", err);
	cr_expect(strstr(err, c->says), "\"%s\" not in: %s", c->says, err);
	cr_expect_str_eq(out, "");
	free(err);
	free(out);
}

CLI_TEST(bad_input, 60)
{
	static char purpose[300];
	const struct bad_case with_repo[] = {
		{ { "--bogus", "list" }, 2, "unknown option --bogus" },
		{ { "run", "--bogus", "--", "true" }, 2, "unknown option --bogus" },
		{ { "run", "-x", "--", "true" }, 2, "unknown option -x" },
		{ { "frobnicate" }, 2, "unknown command 'frobnicate'" },
		{ { "run", "--retry-lock", "5 minutes", "--", "true" }, 2, "--retry-lock '5 minutes'" },
		{ { "run", "--kill-after", "-1s", "--", "true" }, 2, "--kill-after '-1s'" },
		{ { "run", "--refresh-interval", "1e9h", "--", "true" }, 2, "'1e9h'" },
		{ { "run", "--stale-timeout", "", "--", "true" }, 2, "--stale-timeout ''" },
		{ { "run", "--retry-lock", "99999999999h", "--", "true" }, 2, "100 years" },
		/* issue 12: now + 2562047h47m16s overflowed, SIGKILL came at once */
		{ { "run", "--kill-after", "2562047h47m16s", "--", "true" }, 2,
		  "--kill-after '2562047h47m16s': longer than 100 years (876600h), the limit" },
		{ { "run", "--stale-timeout", "2562047h", "--", "true" }, 2, "100 years" },
		{ { "run", "--refresh-interval", "876601h", "--", "true" }, 2, "100 years" },
		/* issue 12: 0 silently meant the default */
		{ { "run", "--refresh-interval", "0", "--", "true" }, 2,
		  "--refresh-interval 0: must be longer than 0" },
		{ { "run", "--stale-timeout", "0", "--", "true" }, 2,
		  "--stale-timeout 0: must be longer than 0" },
		{ { "run", "--refresh-interval", "1m", "--stale-timeout", "2m", "--", "true" }, 2,
		  "2.5 x the refresh interval" },
		{ { "run", "--retry-lock" }, 2, "--retry-lock needs a value" },
		{ { "run" }, 2, "no command to run" },
		{ { "run", "--" }, 2, "no command to run" },
		{ { "run", "--purpose", purpose, "--", "true" }, 2, "purpose longer than 255" },
		{ { "list", "extra" }, 2, "unexpected argument 'extra'" },
		{ { "unlock", "--json" }, 2, "unknown option --json" },
	};
	const struct bad_case without_repo[] = {
		{ { "list" }, 2, "no repository given" },
		{ { "-r", "s3:http://x/", "list" }, 2, "unsupported repository type" },
		{ { "-r", "dav:http://[::1/x/", "list" }, 2, "URL" },
		{ { "-r", "rest:gopher://x/", "list" }, 2, "expected http:// or https://" },
		{ { "-r", "/nonexistent/lockwatch-repo", "run", "--", "true" }, 1,
		  "no such repository" },
		{ { "-r", "/nonexistent/lockwatch-repo", "list" }, 1, "No such file" },
		{ { "--engine", "kqueue", "list" }, 2, "--engine 'kqueue'" },
		/* issue 12: said only "Operation not supported" */
		{ { "-r", "etcd:http://alice:pw@127.0.0.1:2379/p", "list" }, 1,
		  "etcd authentication is not supported" },
		{ { NULL } },
	};
	const char *bad_engine_env[] = { "LOCKWATCH_ENGINE=kqueue", NULL };
	const struct bad_case env_engine = { { "-r", r->url, "list" }, 2, "LOCKWATCH_ENGINE" };
	const char *no_repo_env[] = { "LOCKWATCH_REPOSITORY", NULL };

	memset(purpose, 'p', 299);
	for (size_t i = 0; i < sizeof(with_repo) / sizeof(with_repo[0]); i++)
		expect_bad(r, p, true, &with_repo[i], no_repo_env);
	for (size_t i = 0; without_repo[i].args[0]; i++)
		expect_bad(r, p, false, &without_repo[i], no_repo_env);
	expect_bad(r, p, false, &env_engine, bad_engine_env);
	expect_no_locks(r, "after bad input");
}

CLI_TEST(environment_gives_defaults, 30)
{
	char repo[600], engine[64];
	const char *env[] = { repo, engine, NULL };
	const char *args[] = { "run", "--", "sh", "-c", "test -n \"$LOCKWATCH_LOCK_ID\"", NULL };
	struct proc pr;

	snprintf(repo, sizeof(repo), "LOCKWATCH_REPOSITORY=%s", r->url);
	snprintf(engine, sizeof(engine), "LOCKWATCH_ENGINE=%s", lw_engine_name(p->engine));
	clitest_start(&pr, r->tmp, NULL, p, env, args);
	cr_expect_eq(clitest_wait(&pr, 10000), 0);
	expect_no_locks(r, "after the run");
}

/* One timing option alone brings the other along in restic's ratio of 6,
 * as lockwatch(1) says (issue 12: --refresh-interval 1s alone kept the 30m
 * stale timeout, a 29m58s deadline): what others see is the record's. */
CLI_TEST(one_timing_option_brings_the_other, 60)
{
	static const struct {
		const char *opt, *value;
		const char *stale_ns;
	} cases[] = {
		{ "--refresh-interval", "1s", "\"stale_timeout_ns\": 6000000000" },
		{ "--refresh-interval", "10m", "\"stale_timeout_ns\": 3600000000000" },
		{ "--stale-timeout", "12s", "\"stale_timeout_ns\": 12000000000" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *args[] = { "run", cases[i].opt, cases[i].value, "--", "sleep", "3",
				       NULL };
		const char *list[] = { "list", "--json", NULL };
		int64_t until = clitest_now() + LW_SEC(10);
		struct proc holder, pr;
		char *out;

		clitest_start(&holder, r->tmp, r, p, NULL, args);
		while (clitest_count_locks(r) != 1 && clitest_now() < until)
			clitest_sleep_ms(10);
		cr_expect_eq(clitest_run(&pr, r->tmp, r, p, list), 0);
		out = clitest_read(pr.out);
		cr_expect(strstr(out, cases[i].stale_ns), "%s %s: %s", cases[i].opt,
			  cases[i].value, out);
		free(out);
		cr_expect_eq(clitest_wait(&holder, 10000), 0);
	}
	expect_no_locks(r, "after the holders");
}

/* ------------------------------------------------------- help, version */

Test(cli, help_and_version)
{
	static const char *const cmds[][3] = {
		{ "--help" }, { "run", "--help" }, { "list", "--help" }, { "unlock", "--help" },
		{ "init", "--help" },
	};
	static const char *const usage[] = {
		"Usage: lockwatch [-r URL]", "Usage: lockwatch [-r URL] run",
		"Usage: lockwatch [-r URL] list", "Usage: lockwatch [-r URL] unlock",
		"Usage: lockwatch [-r URL] init",
	};
	const char *version[] = { "--version", NULL };
	char tmp[] = "/tmp/lockwatch-cli-XXXXXX", *out;
	struct proc pr;

	cr_assert_not_null(mkdtemp(tmp));
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		cr_expect_eq(clitest_run(&pr, tmp, NULL, NULL, (const char *const *)cmds[i]), 0);
		out = clitest_read(pr.out);
		cr_expect(strncmp(out, usage[i], strlen(usage[i])) == 0, "%s", out);
		free(out);
		unlink(pr.out);
		unlink(pr.err);
	}
	cr_expect_eq(clitest_run(&pr, tmp, NULL, NULL, version), 0);
	out = clitest_read(pr.out);
	cr_expect_str_eq(out, "lockwatch " PACKAGE_VERSION "\n");
	free(out);
	unlink(pr.out);
	unlink(pr.err);
	rmdir(tmp);
}

Test(cli, init_makes_the_layout)
{
	char tmp[] = "/tmp/lockwatch-cli-XXXXXX", url[600], path[600];
	const char *args[] = { "-r", url, "init", NULL };
	struct proc pr;
	struct stat st;

	cr_assert_not_null(mkdtemp(tmp));
	snprintf(url, sizeof(url), "%s/new/repo", tmp);
	/* a missing parent is an error, not a surprise tree */
	cr_expect_eq(clitest_run(&pr, tmp, NULL, NULL, args), 1);
	expect_err(&pr, "No such file");
	snprintf(url, sizeof(url), "local:%s/fresh", tmp);
	cr_expect_eq(clitest_run(&pr, tmp, NULL, NULL, args), 0);
	cr_expect_eq(stat(clitest_path(path, sizeof(path), tmp, "fresh/locks"), &st), 0);
	cr_expect(S_ISDIR(st.st_mode));
	/* again: nothing changes */
	cr_expect_eq(clitest_run(&pr, tmp, NULL, NULL, args), 0);
	snprintf(path, sizeof(path), "rm -rf '%s'", tmp);
	cr_expect_eq(system(path), 0);
}

/* ------------------------------------------- URLs that would leave locks/ */

#define PACK "data/00/00aa11bb22cc33dd44ee55ff66778899aabbccddeeff00112233445566778899"
#define ROOT_FILE "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define FOREIGN_LOCK "locks/cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"

static void plant_named(const char *repo, const char *name)
{
	char path[1024];

	snprintf(path, sizeof(path), "%s/%s", repo, name);
	clitest_write(path, name, strlen(name));
}

static void expect_planted(const char *repo, const char *name, const char *when)
{
	char path[1024], *got;

	snprintf(path, sizeof(path), "%s/%s", repo, name);
	got = clitest_read(path);
	cr_expect_str_eq(got, name, "%s: %s is gone or changed", when, name);
	free(got);
}

/*
 * A repository on nginx in restic's layout (config, a pack under data/, a
 * file at its root named like a lock, a foreign lock): with a URL whose path
 * would make a request leave locks/ (issue 12: with '#', `unlock
 * --remove-all` deleted the whole repository), every command fails at once
 * naming the character, nothing reaches the server, and all of it is there.
 */
Test(cli, urls_that_leave_locks_are_refused, .timeout = 120)
{
	static const char *const forms[][2] = {
		{ "/repo/#", "'#'" },          { "/repo/?", "'?'" },
		{ "/repo/?x=1", "'?'" },       { "/repo/%2e/", "'%2e'" },
		{ "/repo/x/%2E%2E/", "'%2E'" }, { "/repo/x/.%2e/", "'%2e'" },
		{ "/repo/%23/", "'%23'" },      { "/repo/%3f/", "'%3f'" },
		{ "/repo/x%2f..%2f", "'%2f'" }, { "/repo/x%5c..%5c", "'%5c'" },
		{ "/repo/%2525/", "'%25'" },    { "/repo/x%0a/", "'%0a'" },
		{ "/repo/;x/", "';'" },
	};
	static const char *const cmds[][4] = {
		{ "init" }, { "run", "--", "true" }, { "list" }, { "unlock" },
		{ "unlock", "--remove-all" },
	};
	static const enum lwt_server servers[] = { LWT_DAV, LWT_REST };
	static const char *const planted[] = { "config", PACK, ROOT_FILE, FOREIGN_LOCK };
	char tmp[] = "/tmp/lockwatch-cli-XXXXXX", repo[600], path[1400], url[700];
	struct lwt_nginx *ng = lwt_nginx_start();

	cr_assert(ng, "nginx did not start");
	cr_assert_not_null(mkdtemp(tmp));
	snprintf(repo, sizeof(repo), "%s/repo", lwt_nginx_root(ng));
	snprintf(path, sizeof(path), "mkdir -p '%s/data/00' '%s/locks'", repo, repo);
	cr_assert_eq(system(path), 0);
	for (size_t i = 0; i < sizeof(planted) / sizeof(planted[0]); i++)
		plant_named(repo, planted[i]);
	for (size_t s = 0; s < sizeof(servers) / sizeof(servers[0]); s++) {
		for (size_t f = 0; f < sizeof(forms) / sizeof(forms[0]); f++) {
			for (size_t c = 0; c < sizeof(cmds) / sizeof(cmds[0]); c++) {
				const char *args[8] = { "-r", url };
				struct proc pr;
				char *err, when[1024];
				int status;

				snprintf(url, sizeof(url), "%s",
					 lwt_nginx_url(ng, servers[s], forms[f][0]));
				for (size_t i = 0; cmds[c][i] && i < 4; i++)
					args[2 + i] = cmds[c][i];
				snprintf(when, sizeof(when), "lockwatch -r '%s' %s %s", url,
					 cmds[c][0], cmds[c][1] ? cmds[c][1] : "");
				status = clitest_run(&pr, tmp, NULL, NULL, args);
				err = clitest_read(pr.err);
				cr_expect_eq(status, 2, "%s: exit %d, stderr: %s", when, status, err);
				cr_expect(strstr(err, forms[f][1]) && strstr(err, "is refused") &&
					  clitest_lines(err) == 1,
					  "%s: stderr does not name %s in one line: %s", when,
					  forms[f][1], err);
				free(err);
				unlink(pr.out);
				unlink(pr.err);
				for (size_t i = 0; i < sizeof(planted) / sizeof(planted[0]); i++)
					expect_planted(repo, planted[i], when);
			}
		}
	}
	cr_expect_eq(lwt_nginx_log_count(ng, "/repo"), 0, "a request reached the server");
	lwt_nginx_stop(ng);
	rmdir(tmp);
}

/* ------------------------------------------- entries of locks/ that are not files */

#define FOLDER_ID "d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1"

/* A folder named like a lock in locks/ (issue 12: run printed nothing for
 * 38 s and exited 1; dav: skipped it): run refuses at once with exit 11
 * naming it, list calls it not a lock file, on every backend alike. */
CLI_TEST(folder_in_locks_blocks_at_once, 60)
{
	const char *run[] = { "run", "--", "true", NULL };
	const char *list[] = { "list", NULL };
	const char *unlock[] = { "unlock", "--remove-all", NULL };
	char path[700], *out;
	struct proc pr;
	struct stat st;

	snprintf(path, sizeof(path), "%s/locks/%s", r->dir, FOLDER_ID);
	cr_assert_eq(mkdir(path, 0755), 0);
	cr_expect_eq(clitest_run(&pr, r->tmp, r, p, run), 11);
	cr_expect_lt(pr.ended - pr.started, LW_SEC(5), "not at once");
	expect_err(&pr, "d1d1d1d1d1d1 in locks/, not a lock file: a folder");
	cr_expect_eq(clitest_run(&pr, r->tmp, r, p, list), 0);
	out = clitest_read(pr.out);
	cr_expect(strstr(out, "d1d1d1d1d1d1") && strstr(out, "not a lock file: a folder"), "%s",
		  out);
	free(out);
	/* locally an empty folder goes; a DELETE over HTTP would take what
	 * is in one, so it is never sent */
	clitest_run(&pr, r->tmp, r, p, unlock);
	if (strcmp(r->be->name, "local") == 0) {
		cr_expect_eq(pr.status, 0);
		cr_expect_neq(stat(path, &st), 0, "the empty folder is still there");
		cr_expect_eq(clitest_run(&pr, r->tmp, r, p, run), 0);
	} else {
		cr_expect_eq(pr.status, 1);
		expect_err(&pr, "could not remove d1d1d1d1d1d1");
		cr_expect_eq(stat(path, &st), 0, "the folder was deleted over HTTP");
	}
}

/* locks/ a symlink to a folder of packs (issue 12: unlock --remove-all
 * deleted a pack): every command refuses it at once; nothing is touched. */
Test(cli, symlinked_locks_is_refused, .timeout = 60)
{
	static const char *const cmds[][4] = {
		{ "run", "--", "true" }, { "list" }, { "unlock", "--remove-all" }, { "init" },
	};
	static const char *const engines[] = { "uring", "epoll" };
	char tmp[] = "/tmp/lockwatch-cli-XXXXXX", path[700], repo[64];
	struct stat st;

	cr_assert_not_null(mkdtemp(tmp));
	snprintf(repo, sizeof(repo), "%s/repo", tmp);
	snprintf(path, sizeof(path), "mkdir -p %s/data/00 && ln -s data/00 %s/locks", repo, repo);
	cr_assert_eq(system(path), 0);
	snprintf(path, sizeof(path), "%s/data/00/%s", repo, FOLDER_ID);
	clitest_write(path, "pack", 4);
	for (size_t e = 0; e < sizeof(engines) / sizeof(engines[0]); e++) {
		for (size_t c = 0; c < sizeof(cmds) / sizeof(cmds[0]); c++) {
			const char *args[8] = { "-r", repo, "--engine", engines[e] };
			struct proc pr;

			for (size_t i = 0; i < 3 && cmds[c][i]; i++)
				args[4 + i] = cmds[c][i];
			cr_expect_eq(clitest_run(&pr, tmp, NULL, NULL, args), 1, "%s %s", engines[e],
				     cmds[c][0]);
			cr_expect_lt(pr.ended - pr.started, LW_SEC(5), "%s %s: not at once",
				     engines[e], cmds[c][0]);
			expect_err(&pr, "locks is not a folder (a symlink?)");
			cr_expect_eq(stat(path, &st), 0, "%s %s: the pack is gone", engines[e],
				     cmds[c][0]);
		}
	}
	snprintf(path, sizeof(path), "rm -rf '%s'", tmp);
	cr_expect_eq(system(path), 0);
}

/* ------------------------------------------------ a repository that is not there */

/* rclone serve restic on a free port over DIR; its pid. */
static pid_t start_rclone(const char *dir, int *port)
{
	char addr[64];
	pid_t pid;

	*port = lwt_free_port();
	cr_assert_gt(*port, 0);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", *port);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);

		dup2(null, 1);
		dup2(null, 2);
		execlp("rclone", "rclone", "serve", "restic", "--addr", addr, dir, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 500 && !lwt_port_answers(*port); i++)
		clitest_sleep_ms(10);
	cr_assert(lwt_port_answers(*port), "rclone serve restic did not start (is rclone installed?)");
	return pid;
}

/*
 * A rest: or dav: repository that does not exist is refused before any
 * lock is taken, with the message of a missing local one (issue 12: rclone
 * answers an empty listing for a missing folder and creates it at the first
 * write, so a typo put locks where nobody looked).  rest: looks for
 * restic's config or the folder; dav: for locks/, which only init makes.
 */
Test(cli, missing_http_repository_is_refused, .timeout = 60)
{
	static const char *const engines[] = { "uring", "epoll" };
	char tmp[] = "/tmp/lockwatch-cli-XXXXXX", dir[64], path[200], typo[200], real[200];
	struct lwt_nginx *ng = lwt_nginx_start();
	struct stat st;
	int port, status;
	pid_t rclone;

	cr_assert(ng, "nginx did not start");
	cr_assert_not_null(mkdtemp(tmp));
	snprintf(dir, sizeof(dir), "%s/srv", tmp);
	snprintf(path, sizeof(path), "mkdir -p %s/real/locks", dir);
	cr_assert_eq(system(path), 0);
	snprintf(path, sizeof(path), "%s/real/config", dir);
	clitest_write(path, "a restic config", 15);
	rclone = start_rclone(dir, &port);
	for (size_t e = 0; e < sizeof(engines) / sizeof(engines[0]); e++) {
		const char *urls[] = { typo, lwt_nginx_url(ng, LWT_DAV, "/typo/") };

		snprintf(typo, sizeof(typo), "rest:http://127.0.0.1:%d/typo/", port);
		for (size_t u = 0; u < 2; u++) {
			const char *args[] = { "-r", u ? urls[1] : urls[0], "--engine", engines[e],
					       "run", "--", "true", NULL };
			struct proc pr;
			char *err;

			status = clitest_run(&pr, tmp, NULL, NULL, args);
			err = clitest_read(pr.err);
			cr_expect_eq(status, 1, "%s %s: exit %d: %s", engines[e], args[1], status, err);
			cr_expect(strstr(err, "no such repository (create it with 'lockwatch init')"),
				  "%s %s: %s", engines[e], args[1], err);
			cr_expect_lt(pr.ended - pr.started, LW_SEC(5), "not at once");
			free(err);
		}
		snprintf(path, sizeof(path), "%s/typo", dir);
		cr_expect_neq(stat(path, &st), 0, "rest: the typo's folder was made");
		snprintf(path, sizeof(path), "%s/typo", lwt_nginx_root(ng));
		cr_expect_neq(stat(path, &st), 0, "dav: the typo's folder was made");
		/* restic's config shows a repository */
		snprintf(real, sizeof(real), "rest:http://127.0.0.1:%d/real/", port);
		{
			const char *args[] = { "-r", real, "--engine", engines[e], "run", "--",
					       "true", NULL };
			struct proc pr;

			cr_expect_eq(clitest_run(&pr, tmp, NULL, NULL, args), 0, "%s: a real one",
				     engines[e]);
		}
	}
	kill(rclone, SIGTERM);
	waitpid(rclone, &status, 0);
	lwt_nginx_stop(ng);
	snprintf(path, sizeof(path), "rm -rf '%s'", tmp);
	cr_expect_eq(system(path), 0);
}
