/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * A wall clock that steps, for tests.  Preloaded (LD_PRELOAD), it adds to
 * CLOCK_REALTIME the number of seconds written in the file that
 * LWTEST_WALLCLOCK names ("3600", "-3600"), and leaves every other clock,
 * and every kernel timer, alone: what a step of the system clock does.
 *
 * Not libfaketime: it also rewrites the absolute deadline of every
 * timerfd, whatever its clock, and so moves a CLOCK_BOOTTIME deadline by
 * the step, which no real clock step does.
 */
#include "config.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define SHIM_EXPORT __attribute__((visibility("default")))
#define READ_EVERY_NS 20000000LL

typedef int clock_gettime_fn(clockid_t id, struct timespec *ts);

static clock_gettime_fn *real_clock_gettime(void)
{
	static _Atomic(clock_gettime_fn *) fn;
	clock_gettime_fn *f = atomic_load(&fn);

	if (!f) {
		f = (clock_gettime_fn *)dlsym(RTLD_NEXT, "clock_gettime");
		atomic_store(&fn, f);
	}
	return f;
}

/* The offset in seconds, read again at most every 20 ms; the last one
 * stays when the file cannot be read (a process out of descriptors). */
static long offset(void)
{
	static atomic_long off;
	static atomic_llong next_read;
	const char *path = getenv("LWTEST_WALLCLOCK");
	struct timespec now;
	long long t;
	char buf[32];
	ssize_t n;
	int fd;

	if (!path || real_clock_gettime()(CLOCK_MONOTONIC, &now) < 0)
		return atomic_load(&off);
	t = (long long)now.tv_sec * 1000000000LL + now.tv_nsec;
	if (t < atomic_load(&next_read))
		return atomic_load(&off);
	atomic_store(&next_read, t + READ_EVERY_NS);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return atomic_load(&off);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n > 0) {
		buf[n] = '\0';
		atomic_store(&off, strtol(buf, NULL, 10));
	}
	return atomic_load(&off);
}

SHIM_EXPORT int clock_gettime(clockid_t id, struct timespec *ts)
{
	int r = real_clock_gettime()(id, ts);

	if (r == 0 && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE))
		ts->tv_sec += offset();
	return r;
}
