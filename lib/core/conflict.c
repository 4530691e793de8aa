/* SPDX-License-Identifier: BSD-2-Clause */
#include "config.h"

#include <inttypes.h>
#include <string.h>

#include "core/conflict.h"
#include "util/internal.h"

bool lw__record_stale(const struct lw__record *rec, int64_t now_real,
		      const struct lw__self *self)
{
	return lw__sub_sat(now_real, rec->time) > rec->stale_timeout ||
	       lw__record_orphaned(rec, self);
}

const char *lw__record_time_invalid(const struct lw__record *rec, int64_t now_real)
{
	int64_t off = lw__sub_sat(rec->time, now_real);

	if (off > LW_DURATION_MAX)
		return "its time is more than 100 years ahead of this host's clock";
	if (off < -LW_DURATION_MAX)
		return "its time is more than 100 years behind this host's clock";
	return NULL;
}

bool lw__record_orphaned(const struct lw__record *rec, const struct lw__self *self)
{
	if (!self->boot_id[0] || strcmp(rec->boot_id, self->boot_id) != 0 ||
	    rec->pid_ns != self->pid_ns)
		return false;
	if (rec->pid == self->pid && rec->pid_start == self->pid_start)
		return false;
	/* "cannot tell" keeps the lock: a wrong "stale" breaks exclusion */
	if (lw__process_alive(rec->pid, rec->pid_start) != 0)
		return false;
	/* the holder's job may work on after it (lockwatch run killed
	 * outright, its guard not yet done with the group) */
	return rec->pgid <= 0 || lw__group_alive(rec->pgid, rec->pgid_start) == 0;
}

char *lw__record_describe(const struct lw__record *rec, int64_t now_real,
			  char *buf, size_t size)
{
	char age[32];

	lw__fmt_duration(lw__sub_sat(now_real, rec->time), age, sizeof(age));
	lw__sfmt(buf, size, "%s lock of %s@%s (pid %" PRId64 "), %s old%s%s",
			rec->exclusive ? "exclusive" : "shared", rec->username,
			rec->hostname, rec->pid, age,
			rec->purpose ? ", purpose: " : "",
			rec->purpose ? rec->purpose : "");
	/* record strings come from other hosts: keep them off the terminal */
	return lw__sanitize(buf);
}
