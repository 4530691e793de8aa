/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Why a process: PR_SET_PDEATHSIG reaches only the job's leader, and once
 * lockwatch is gone nothing of its own runs.  The guard holds one end of a
 * socket whose other end only lockwatch has; the kernel closes that end when
 * lockwatch dies, for any reason, and the guard's read returns 0 at once.
 * Then it sends SIGKILL to the job's group until no process of it is left.
 *
 * Why not in the job's group: signals for the job would reach it, and it
 * would keep the group alive.  Why a session of its own: a signal for
 * lockwatch's group (a terminal's ^C, a supervisor's kill -9 -PGID) must
 * not take it along.  It ignores every signal it can, so that what is meant
 * for lockwatch ("pkill lockwatch") leaves it be; SIGKILL of the guard alone
 * is seen by lockwatch, which starts another.
 *
 * The group is named by a pidfd of its leader where the kernel signals
 * groups through one (PIDFD_SIGNAL_PROCESS_GROUP, Linux 6.9): once the
 * group has ended, its number may name another group, the pidfd never.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "guard.h"

#ifndef PIDFD_SIGNAL_PROCESS_GROUP
#define PIDFD_SIGNAL_PROCESS_GROUP (1U << 2)
#endif

/* The kill is repeated this often until the group has ended. */
#define RETRY_NS 10000000L

static int kill_group(pid_t pgid, int pidfd)
{
	if (pidfd >= 0 &&
	    syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, PIDFD_SIGNAL_PROCESS_GROUP) == 0)
		return 0;
	if (pidfd >= 0 && errno == ESRCH)
		return -ESRCH;
	return kill(-pgid, SIGKILL) == 0 ? 0 : -errno;
}

/* Field 3 (state) and 5 (pgrp) of /proc/PID/stat, with plain syscalls. */
static bool live_member(const char *pid, pid_t pgid)
{
	char path[64] = "/proc/", buf[512], *p;
	long v = 0;
	ssize_t n;
	int fd;

	if (strlen(pid) > 20)
		return false;
	strcat(strcat(path, pid), "/stat");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	p = strrchr(buf, ')');
	if (!p || strlen(p) < 5 || p[2] == 'Z' || p[2] == 'X')
		return false;
	p = strchr(p + 4, ' '); /* after ") S PPID" */
	if (!p)
		return false;
	for (p++; *p >= '0' && *p <= '9'; p++)
		v = v * 10 + (*p - '0');
	return v == pgid;
}

/* Whether a process of PGID is left that is not a zombie: zombies do no
 * work, and a PID 1 that reaps nobody would keep them forever. */
static bool group_lives(pid_t pgid)
{
	char buf[4096];
	bool found = false;
	long n;
	int fd = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return true;
	while (!found && (n = syscall(SYS_getdents64, fd, buf, sizeof(buf))) > 0) {
		for (long off = 0; off < n && !found;) {
			struct dirent64 *de = (struct dirent64 *)(buf + off);

			if (de->d_name[0] >= '1' && de->d_name[0] <= '9')
				found = live_member(de->d_name, pgid);
			off += de->d_reclen;
		}
	}
	close(fd);
	return found;
}

/* Closes every descriptor from 3 on but A and B (B may be -1). */
static void close_others(int a, int b)
{
	int lo = b < 0 || a < b ? a : b, hi = b < 0 || a > b ? a : b;

	if (lo > 3)
		close_range(3, (unsigned)lo - 1, 0);
	if (hi > lo + 1)
		close_range((unsigned)lo + 1, (unsigned)hi - 1, 0);
	close_range((unsigned)hi + 1, ~0U, 0);
}

static _Noreturn void guard_main(int fd, pid_t pgid, int pidfd)
{
	struct sigaction ign = { .sa_handler = SIG_IGN };
	struct timespec pause = { 0, RETRY_NS };
	sigset_t none;
	char c;
	int null;

	setsid();
	for (int sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			sigaction(sig, &ign, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	prctl(PR_SET_NAME, "lockwatch-guard");
	/* nothing of lockwatch's stays open here but the two it needs: not
	 * its terminal, not a pipe somebody reads to its end */
	null = open("/dev/null", O_RDWR | O_CLOEXEC);
	for (int i = 0; i < 3; i++)
		if (null >= 0 && null != i)
			dup2(null, i);
	close_others(fd, pidfd);
	for (;;) {
		ssize_t n = read(fd, &c, 1);

		if (n == 1 && c == 'D')
			_exit(0);
		if (n == 0 || (n < 0 && errno != EINTR))
			break;
	}
	/* lockwatch is gone */
	for (int round = 0;; round++) {
		if (kill_group(pgid, pidfd) == -ESRCH)
			_exit(0);
		if (round % 10 == 9 && !group_lives(pgid))
			_exit(0);
		nanosleep(&pause, NULL);
	}
}

int guard_start(struct guard *g, pid_t pgid, int pidfd)
{
	int sv[2], err;
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	pid = fork();
	if (pid == 0)
		guard_main(sv[1], pgid, pidfd);
	err = -errno;
	close(sv[1]);
	if (pid < 0) {
		close(sv[0]);
		return err;
	}
	g->pid = pid;
	g->fd = sv[0];
	return 0;
}

void guard_done(struct guard *g)
{
	if (g->pid > 0)
		(void)!send(g->fd, "D", 1, MSG_NOSIGNAL);
	if (g->fd >= 0)
		close(g->fd);
	g->fd = -1;
	g->pid = 0;
}
