/* SPDX-License-Identifier: BSD-2-Clause */
/* The rules that decide whether a lock record blocks an acquire. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/process.h"
#include "format/record.h"

/*
 * lw__record_stale - a lock is stale when its record is older than the
 * record's own stale_timeout, or when it was written in this boot and PID
 * namespace and its process (pid and start time) is gone, and with it every
 * process of its job's group (when the record names one).  Without the
 * namespace check, a live lock of a neighbouring container on the same host
 * would look stale (restic #4922).  A record time in the future is not old.
 */
bool lw__record_stale(const struct lw__record *rec, int64_t now_real,
		      const struct lw__self *self);
/*
 * lw__record_time_invalid - why REC's time cannot be a lock's (more than
 * LW_DURATION_MAX away from NOW_REAL, either way), or NULL.  Such a record
 * is invalid: it blocks like a foreign lock and is listed as invalid, and
 * no age is computed from it.
 */
const char *lw__record_time_invalid(const struct lw__record *rec, int64_t now_real);
/* The second half alone: written here, and its process is gone.  Where the
 * server expires locks (leased backends) record times do not age, and this
 * is all that makes a lock stale. */
bool lw__record_orphaned(const struct lw__record *rec, const struct lw__self *self);

/* Whether a lock of kind EXCLUSIVE conflicts with a live lock of kind
 * OTHER_EXCLUSIVE: only shared locks share. */
static inline bool lw__conflicts(bool exclusive, bool other_exclusive)
{
	return exclusive || other_exclusive;
}

/* "exclusive lock of alice@host1 (pid 4242), 3m12s old"; returns BUF. */
char *lw__record_describe(const struct lw__record *rec, int64_t now_real,
			  char *buf, size_t size);
