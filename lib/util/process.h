/* SPDX-License-Identifier: BSD-2-Clause */
/* Who this process is (for its lock records), and whether another process
 * of this host still lives. */
#pragma once

#include <stdint.h>

struct lw__self {
	char hostname[256];
	char username[256];
	char boot_id[64];
	int64_t pid, uid, gid;
	uint64_t pid_ns;
	uint64_t pid_start;
};

/* This process, read once (and again after a fork). */
const struct lw__self *lw__self(void);

/* lw__process_start - field 22 of /proc/PID/stat.  Returns 0 or -errno. */
int lw__process_start(int64_t pid, uint64_t *start);

/*
 * lw__process_alive - whether process PID of this PID namespace still runs
 * and is the one that started at START (field 22 of /proc/PID/stat), so that
 * a recycled pid does not keep a dead holder's lock alive.
 *
 * Returns: 1 alive, 0 gone, a negative errno when it cannot tell.
 */
int lw__process_alive(int64_t pid, uint64_t start);

/*
 * lw__group_alive - whether a process of process group PGID of this PID
 * namespace still runs (zombies do not count), the group whose leader
 * started at LEADER_START.  A process numbered PGID with another start
 * time proves that the number was reused, so the group is gone; a group
 * without its leader is taken as the same group (a wrong "alive" costs
 * only waiting).  Walks /proc when the group answers: for records whose
 * holder is gone, not for every lock.
 *
 * Returns: 1 alive, 0 gone, a negative errno when it cannot tell.
 */
int lw__group_alive(int64_t pgid, uint64_t leader_start);
