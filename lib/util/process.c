/* SPDX-License-Identifier: BSD-2-Clause */
#include "config.h"

#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <pwd.h>
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

/* Field 22 (starttime) of /proc/PID/stat.  The command name in field 2 may
 * hold spaces and parentheses, so counting starts after its last ')'. */
static int start_time(int64_t pid, uint64_t *start)
{
	char path[64], buf[1024], *p, *end;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%" PRId64 "/stat", pid);
	n = read_small(path, buf, sizeof(buf));
	if (n < 0)
		return (int)n;
	p = strrchr(buf, ')');
	if (!p)
		return -EINVAL;
	for (int field = 2; field < 22; field++) {
		p = strchr(p + 1, ' ');
		if (!p)
			return -EINVAL;
	}
	errno = 0;
	*start = strtoull(p + 1, &end, 10);
	return errno || end == p + 1 ? -EINVAL : 0;
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
	if (start_time(self.pid, &self.pid_start) < 0)
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
	uint64_t now_start;
	int r;

	if (pid <= 0 || pid > INT32_MAX)
		return 0;
	r = start_time(pid, &now_start);
	if (r == -ENOENT || r == -ESRCH)
		return 0;
	if (r < 0)
		return r;
	return now_start == start;
}
