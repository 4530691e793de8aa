/* SPDX-License-Identifier: BSD-2-Clause */
/* The lock record: a msgpack map, version 1 (lib/DESIGN.md). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LW_RECORD_MAX 4096    /* bytes; a larger file is invalid */
#define LW_RECORD_STR_MAX 255 /* bytes of any string in it */
#define LW_RECORD_NONCE 32    /* random bytes that make every record unique */

struct lw__record {
	int64_t time;          /* ns since the epoch, CLOCK_REALTIME */
	int64_t stale_timeout; /* ns */
	int64_t pid, uid, gid;
	uint64_t pid_ns;       /* inode of /proc/self/ns/pid */
	uint64_t pid_start;    /* field 22 of /proc/self/stat */
	/* the process group of the holder's job (lockwatch run), and the start
	 * time of its leader: the lock stays live on this host while any
	 * process of that group runs.  0 when absent (older records, library
	 * users without a job). */
	int64_t pgid;
	uint64_t pgid_start;
	bool exclusive;
	/* Decoded from a restic lock that has restic's keys only: no boot id,
	 * PID namespace or start time, so that its holder is never known to
	 * be gone, and restic's own stale timeout. */
	bool restic_written;
	const char *hostname;
	const char *username;
	const char *boot_id;
	const char *purpose;   /* NULL when absent */
	/* Lock files are named by the SHA-256 of their content: these random
	 * bytes keep two records of one process in one nanosecond apart.
	 * Zeros in a record written before them. */
	uint8_t nonce[LW_RECORD_NONCE];
};

/*
 * lw__record_encode - write R into BUF.
 *
 * Returns: the length, -EINVAL for a string over LW_RECORD_STR_MAX bytes,
 * -ENOSPC when BUF is too small.
 */
int lw__record_encode(const struct lw__record *r, void *buf, size_t size);

/*
 * lw__record_decode - parse a record with limits: at most LW_RECORD_MAX
 * bytes, nesting at most 8 deep, no trailing bytes, every known key of its
 * type, every string at most LW_RECORD_STR_MAX bytes without NULs.  Unknown
 * keys are ignored.  *OUT is one allocation (free() it).
 *
 * Returns: 0; -EBADMSG (with a reason in *WHY, a static string) for data
 * that is not a lockwatch record at all (another tool's lock); -LW_EINVALID
 * for a record that breaks the format; -ENOMEM.
 */
int lw__record_decode(const void *buf, size_t len, struct lw__record **out,
		      const char **why);
