/* SPDX-License-Identifier: BSD-2-Clause */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/internal.h"
#include "util/process.h"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct lw__self self;

static ssize_t read_small(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, size - 1);
	if (n < 0)
		n = -errno;
	else
		buf[n] = '\0';
	close(fd);
	return n;
}

struct stat_fields {
	char state;        /* field 3: R, S, D, Z, ... */
	int64_t pgrp;      /* field 5 */
	uint64_t start;    /* field 22 */
};

/* Fields of /proc/PID/stat.  The command name in field 2 may hold spaces
 * and parentheses, so counting starts after its last ')'. */
static int read_stat(int64_t pid, struct stat_fields *f)
{
	char path[64], buf[1024], *p, *end;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%" PRId64 "/stat", pid);
	n = read_small(path, buf, sizeof(buf));
	if (n < 0)
		return (int)n;
	p = strrchr(buf, ')');
	if (!p || p[1] != ' ' || !p[2])
		return -EINVAL;
	f->state = p[2];
	for (int field = 2; field < 22; field++) {
		p = strchr(p + 1, ' ');
		if (!p)
			return -EINVAL;
		if (field == 4)
			f->pgrp = strtoll(p + 1, NULL, 10);
	}
	errno = 0;
	f->start = strtoull(p + 1, &end, 10);
	return errno || end == p + 1 ? -EINVAL : 0;
}

int lw__process_start(int64_t pid, uint64_t *start)
{
	struct stat_fields f;
	int r = read_stat(pid, &f);

	if (r == 0)
		*start = f.start;
	return r;
}

static void fill(void)
{
	struct passwd pw, *res = NULL;
	char pwbuf[4096];
	struct stat st;

	self.pid = getpid();
	self.uid = getuid();
	self.gid = getgid();
	if (gethostname(self.hostname, sizeof(self.hostname)) < 0)
		snprintf(self.hostname, sizeof(self.hostname), "unknown");
	self.hostname[sizeof(self.hostname) - 1] = '\0';
	if (getpwuid_r((uid_t)self.uid, &pw, pwbuf, sizeof(pwbuf), &res) == 0 && res)
		snprintf(self.username, sizeof(self.username), "%s", pw.pw_name);
	else
		snprintf(self.username, sizeof(self.username), "%" PRId64, self.uid);
	if (read_small("/proc/sys/kernel/random/boot_id", self.boot_id,
		       sizeof(self.boot_id)) > 0)
		self.boot_id[strcspn(self.boot_id, "\n")] = '\0';
	self.pid_ns = stat("/proc/self/ns/pid", &st) == 0 ? (uint64_t)st.st_ino : 0;
	if (lw__process_start(self.pid, &self.pid_start) < 0)
		self.pid_start = 0;
}

const struct lw__self *lw__self(void)
{
	pthread_mutex_lock(&mu);
	if (self.pid != getpid())
		fill();
	pthread_mutex_unlock(&mu);
	return &self;
}

int lw__process_alive(int64_t pid, uint64_t start)
{
	uint64_t now_start = 0;
	int r;

	if (pid <= 0 || pid > INT32_MAX)
		return 0;
	r = lw__process_start(pid, &now_start);
	if (r == -ENOENT || r == -ESRCH)
		return 0;
	if (r < 0)
		return r;
	return now_start == start;
}

/* Whether a process of group PGID runs, zombies aside: one walk of /proc. */
static int group_has_live_member(int64_t pgid)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	int found = 0;

	if (!d)
		return -errno;
	while (!found && (de = readdir(d))) {
		struct stat_fields f;
		char *end;
		long long pid = strtoll(de->d_name, &end, 10);

		if (*end || pid <= 0 || read_stat(pid, &f) < 0)
			continue; /* not a process, or gone meanwhile */
		found = f.pgrp == pgid && f.state != 'Z' && f.state != 'X';
	}
	closedir(d);
	return found;
}

int lw__group_alive(int64_t pgid, uint64_t leader_start)
{
	uint64_t start = 0;
	int r;

	if (pgid <= 1 || pgid > INT32_MAX)
		return 0;
	if (kill((pid_t)-pgid, 0) < 0 && errno == ESRCH)
		return 0;
	/* A process numbered PGID that started at another time proves that
	 * the number was free once, which it is not while any process of
	 * the old group lives: that group has ended. */
	r = lw__process_start(pgid, &start);
	if (r == 0 && start != leader_start)
		return 0;
	/* Zombies do no work, and a PID 1 that reaps nobody (a container's
	 * without an init) would keep them, and the lock, forever. */
	return group_has_live_member(pgid);
}
