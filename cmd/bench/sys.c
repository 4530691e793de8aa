/* SPDX-License-Identifier: BSD-2-Clause */
#include "config.h"

#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sys.h"

int64_t bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_BOOTTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t tv_ns(const struct timeval *tv)
{
	return (int64_t)tv->tv_sec * 1000000000 + (int64_t)tv->tv_usec * 1000;
}

void bench_cpu_diff(struct bench_cpu *c, const char *scope, const struct rusage *a,
		    const struct rusage *b, int64_t window)
{
	c->scope = scope;
	c->usr = tv_ns(&b->ru_utime) - tv_ns(&a->ru_utime);
	c->sys = tv_ns(&b->ru_stime) - tv_ns(&a->ru_stime);
	c->ctx = (b->ru_nvcsw + b->ru_nivcsw) - (a->ru_nvcsw + a->ru_nivcsw);
	c->majf = b->ru_majflt - a->ru_majflt;
	c->minf = b->ru_minflt - a->ru_minflt;
	c->window = window;
}

/* Reads /proc/self/NAME into BUF through a descriptor opened on the first
 * call and kept: a benchmark that runs out of descriptors (the thread-per-
 * lock baseline does) can still read its memory. */
static const char *proc_read(int *fd, const char *name, char *buf, size_t size)
{
	ssize_t n;

	if (*fd < 0)
		*fd = open(name, O_RDONLY | O_CLOEXEC);
	n = *fd < 0 ? -1 : pread(*fd, buf, size - 1, 0);
	if (n < 0)
		return NULL;
	buf[n] = '\0';
	return buf;
}

long bench_rss_kib(void)
{
	static int fd = -1;
	char buf[256];
	long size, pages;

	if (!proc_read(&fd, "/proc/self/statm", buf, sizeof(buf)) ||
	    sscanf(buf, "%ld %ld", &size, &pages) != 2)
		return -1;
	return pages * (sysconf(_SC_PAGESIZE) / 1024);
}

long bench_rss_peak_kib(void)
{
	static int fd = -1;
	char buf[4096];
	const char *hwm;
	long kib;

	if (!proc_read(&fd, "/proc/self/status", buf, sizeof(buf)) ||
	    !(hwm = strstr(buf, "VmHWM:")) || sscanf(hwm, "VmHWM: %ld kB", &kib) != 1)
		return -1;
	return kib;
}

void bench_rss_peak_reset(void)
{
	int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);

	if (fd >= 0) {
		(void)!write(fd, "5", 1);
		close(fd);
	}
}

int64_t bench_heap_bytes(void)
{
	struct mallinfo2 mi;

	malloc_trim(0);
	mi = mallinfo2();
	return (int64_t)(mi.uordblks + mi.hblkhd);
}
