/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The guard of lockwatch run's job: a small process of its own that kills
 * the job's whole process group the moment lockwatch dies, however it dies
 * (SIGKILL, the OOM killer), so that no job outlives its lock's guarantee.
 */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

struct guard {
	pid_t pid;   /* 0: none */
	int fd;      /* our end of its socket; its EOF is our death */
};

/*
 * guard_start - start a guard of process group PGID (PIDFD: a pidfd of
 * the group's leader, or -1).  Only async-signal-safe calls happen in the
 * child, so that it can be started again from a process with threads.
 *
 * Returns: 0, or a negative errno.
 */
int guard_start(struct guard *g, pid_t pgid, int pidfd);

/* guard_done - the group has ended: the guard leaves without killing. */
void guard_done(struct guard *g);
