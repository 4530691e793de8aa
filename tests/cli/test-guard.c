/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * A job never outlives its lock: lockwatch run killed outright (SIGKILL, as
 * the OOM killer or a supervisor does it) takes its job's whole process
 * group along within 1 s, and until that group is gone, the lock it held
 * keeps blocking on this host.  Every backend, both engines.
 */
#include "config.h"

#include "test.h"
#include <criterion/parameterized.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clitest.h"

/* Within this after lockwatch died, no process of its job's group is left. */
#define GROUP_BOUND_MS 1000

static char *tmpfile_(const struct repo *r, const char *name)
{
	static __thread char bufs[4][600];
	static __thread int i;
	char *b = bufs[i++ % 4];

	return clitest_path(b, sizeof(bufs[0]), r->tmp, name);
}

/* A job whose work is done by a second process of its group, as a shell
 * script's background job: its leader writes the group's id to TMP/pid, the
 * member notes CLOCK_REALTIME in TMP/ticks every 10 ms. */
static char *group_job(char *buf, size_t size, const char *tmp)
{
	snprintf(buf, size, "echo $$ > %s/pid; "
		 "sh -c 'while :; do date +%%s%%N >> %s/ticks; sleep 0.01; done' & wait",
		 tmp, tmp);
	return buf;
}

static long long now_real(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Whether a process of GROUP is left.  The orphans of a killed lockwatch
 * come to this process (a subreaper): reaped here, they do not linger as
 * zombies that kill(2) still finds. */
static bool group_left(pid_t group)
{
	siginfo_t si;

	for (;;) {
		si.si_pid = 0;
		if (waitid(P_PGID, (id_t)group, &si, WEXITED | WNOHANG) < 0 || si.si_pid == 0)
			break;
	}
	return kill(-group, 0) == 0;
}

/* The guard of lockwatch PID: its child named lockwatch-guard; 0 if none. */
static pid_t find_guard(pid_t lockwatch)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	pid_t found = 0;

	cr_assert(d);
	while (!found && (de = readdir(d))) {
		char path[300], *s, *p;
		int ppid;

		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
		s = clitest_read(path);
		p = strrchr(s, ')');
		if (p && strstr(s, "(lockwatch-guard)") && sscanf(p + 2, "%*c %d", &ppid) == 1 &&
		    ppid == lockwatch)
			found = atoi(de->d_name);
		free(s);
	}
	closedir(d);
	return found;
}

/* Starts an exclusive run of group_job; returns its group once it ticks. */
static pid_t start_holder(struct proc *pr, const struct repo *r, const struct cli_param *p,
			  char *job, size_t size)
{
	const char *args[] = { "run", "--exclusive", "--", "sh", "-c", job, NULL };
	pid_t group;

	group_job(job, size, r->tmp);
	clitest_start(pr, r->tmp, r, p, NULL, args);
	group = clitest_ticker_group(r->tmp);
	cr_assert(clitest_wait_file(tmpfile_(r, "ticks"), 5000), "the job did not work");
	return group;
}

/* An exclusive run that notes when its job started (CLOCK_REALTIME, ns) in
 * TMP/started, trying every 50 ms for up to 20 s. */
static void start_second(struct proc *pr, const struct repo *r, const struct cli_param *p)
{
	static char job[600];
	const char *args[] = { "run", "--exclusive", "--retry-lock", "20s", "--", "sh", "-c",
			       job, NULL };
	const char *env[] = { "LOCKWATCH_RETRY_BACKOFF=50ms", NULL };

	snprintf(job, sizeof(job), "date +%%s%%N > %s", tmpfile_(r, "started"));
	clitest_start(pr, r->tmp, r, p, env, args);
}

static long long read_ns(const char *path)
{
	char *s = clitest_read(path);
	long long v = atoll(s);

	free(s);
	return v;
}

CLITEST(guard, sigkill_takes_the_group_along, 60)
{
	char job[600];
	struct proc holder, second;
	pid_t group, guard, guard2;
	long long killed, gone = 0, started, last;

	prctl(PR_SET_CHILD_SUBREAPER, 1);
	group = start_holder(&holder, r, p, job, sizeof(job));
	clitest_sleep_ms(300);

	/* the guard itself killed: lockwatch starts another */
	guard = find_guard(holder.pid);
	cr_assert_gt(guard, 0, "no guard process");
	kill(guard, SIGKILL);
	for (int i = 0; i < 100 && ((guard2 = find_guard(holder.pid)) == 0 || guard2 == guard); i++)
		clitest_sleep_ms(10);
	cr_assert(guard2 > 0 && guard2 != guard, "no new guard after the first was killed");

	kill(holder.pid, SIGKILL);
	killed = now_real();
	clitest_wait(&holder, 5000);
	start_second(&second, r, p);
	while (now_real() - killed < 3000LL * 1000000) {
		if (!group_left(group)) {
			gone = now_real();
			break;
		}
		clitest_sleep_ms(2);
	}
	cr_assert_gt(gone, 0, "the job's group still runs 3 s after lockwatch was killed");
	cr_expect_lt(gone - killed, GROUP_BOUND_MS * 1000000LL,
		     "the group was gone %lld ms after lockwatch died", (gone - killed) / 1000000);
	cr_log_info("%s/%s: group gone %lld us after SIGKILL of lockwatch", r->be->name,
		    lw_engine_name(p->engine), (gone - killed) / 1000);
	cr_expect_eq(clitest_wait(&second, 25000), 0);
	started = read_ns(tmpfile_(r, "started"));
	last = clitest_last_tick(r->tmp);
	cr_expect_gt(started, last, "the second job started %lld ms before the first "
		     "stopped working", (last - started) / 1000000);
	/* the second run removed the stale one, then its own went */
	cr_expect_eq(clitest_count_locks(r), 0, "files left in locks/");
}

/* The group outlives lockwatch (its guard is stopped): the lock blocks. */
CLITEST(guard, lock_blocks_while_the_group_runs, 60)
{
	char job[600];
	struct proc holder, second;
	pid_t group, guard;
	long long resumed, gone = 0, started, last;

	prctl(PR_SET_CHILD_SUBREAPER, 1);
	group = start_holder(&holder, r, p, job, sizeof(job));
	clitest_sleep_ms(300);
	guard = find_guard(holder.pid);
	cr_assert_gt(guard, 0, "no guard process");
	kill(guard, SIGSTOP);
	kill(holder.pid, SIGKILL);
	clitest_wait(&holder, 5000);
	start_second(&second, r, p);

	/* the holder is gone, its job works on: not stale */
	clitest_sleep_ms(2000);
	cr_expect(group_left(group), "the group ended without its guard");
	cr_expect(!clitest_wait_file(tmpfile_(r, "started"), 0),
		  "a second exclusive run started while the first one's job worked");

	kill(guard, SIGCONT);
	resumed = now_real();
	while (now_real() - resumed < 3000LL * 1000000) {
		if (!group_left(group)) {
			gone = now_real();
			break;
		}
		clitest_sleep_ms(2);
	}
	cr_assert_gt(gone, 0, "the resumed guard did not end the group");
	cr_expect_lt(gone - resumed, GROUP_BOUND_MS * 1000000LL);
	cr_expect_eq(clitest_wait(&second, 25000), 0);
	started = read_ns(tmpfile_(r, "started"));
	last = clitest_last_tick(r->tmp);
	cr_expect_gt(started, last, "the second job started %lld ms before the first "
		     "stopped working", (last - started) / 1000000);
}
