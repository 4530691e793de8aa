/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The lock record decoder on whatever bytes a lock file may hold (another
 * host, another tool, a truncated write, an attacker with write access to
 * the repository).  It accepts or refuses without crashing, leaking or
 * allocating past its limits; what it accepts keeps its own limits, encodes
 * again, and decode -> encode is a fixed point: the re-encoded record
 * decodes to the same record and encodes to the same bytes.  The rules
 * that judge a record (conflict.c: its time, its age, stale or not, its
 * description) run on every record decoded, at instants from one end of
 * int64_t to the other, where UBSan sees any overflow.
 */
#include "config.h"

#include <errno.h>
#include <stdbool.h>

#include "fuzz.h"
#include "lockwatch.h"
#include "core/conflict.h"
#include "format/record.h"
#include "util/internal.h"

static bool str_eq(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

static bool str_ok(const char *s)
{
	return s && strlen(s) <= LW_RECORD_STR_MAX;
}

static bool same(const struct lw__record *a, const struct lw__record *b)
{
	return a->time == b->time && a->stale_timeout == b->stale_timeout &&
	       a->pid == b->pid && a->uid == b->uid && a->gid == b->gid &&
	       a->pid_ns == b->pid_ns && a->pid_start == b->pid_start &&
	       a->exclusive == b->exclusive && str_eq(a->hostname, b->hostname) &&
	       str_eq(a->username, b->username) && str_eq(a->boot_id, b->boot_id) &&
	       str_eq(a->purpose, b->purpose);
}

static void check_rules(const struct lw__record *r)
{
	const int64_t nows[] = { INT64_MIN, -LW_DURATION_MAX, -1, 0, 1, lw__now_real(),
				 LW_DURATION_MAX, INT64_MAX };
	const struct lw__self *self = lw__self();
	char desc[512];

	fuzz_assert(r->stale_timeout > 0 && r->stale_timeout <= LW_DURATION_MAX);
	for (size_t i = 0; i < sizeof(nows) / sizeof(nows[0]); i++) {
		const char *bad = lw__record_time_invalid(r, nows[i]);
		bool stale = lw__record_stale(r, nows[i], self);

		lw__record_describe(r, nows[i], desc, sizeof(desc));
		fuzz_assert(*desc && strlen(desc) < sizeof(desc));
		if (bad)
			continue;
		/* a valid time is within 100 years: its age is exact */
		fuzz_assert(nows[i] - r->time >= -LW_DURATION_MAX &&
			    nows[i] - r->time <= LW_DURATION_MAX);
		if (nows[i] - r->time > r->stale_timeout)
			fuzz_assert(stale);
		else
			fuzz_assert(stale == lw__record_orphaned(r, self));
	}
	fuzz_assert(lw__conflicts(true, r->exclusive));
	fuzz_assert(lw__conflicts(false, r->exclusive) == r->exclusive);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t once[LW_RECORD_MAX], twice[LW_RECORD_MAX];
	struct lw__record *r, *back;
	const char *why = NULL;
	int err, n, m;

	err = lw__record_decode(data, size, &r, &why);
	if (err < 0) {
		fuzz_assert(!r);
		fuzz_assert(err == -EBADMSG || err == -LW_EINVALID || err == -ENOMEM);
		fuzz_assert(err == -ENOMEM || (why && *why));
		return 0;
	}
	fuzz_assert(r);
	fuzz_assert(r->pid > 0 && r->stale_timeout > 0);
	fuzz_assert(str_ok(r->hostname) && str_ok(r->username) && str_ok(r->boot_id));
	fuzz_assert(!r->purpose || str_ok(r->purpose));
	check_rules(r);

	n = lw__record_encode(r, once, sizeof(once));
	fuzz_assert(n > 0);
	err = lw__record_decode(once, (size_t)n, &back, &why);
	fuzz_assert(err == 0);
	fuzz_assert(same(r, back));
	m = lw__record_encode(back, twice, sizeof(twice));
	fuzz_assert(m == n && memcmp(once, twice, (size_t)n) == 0);
	free(back);
	free(r);
	return 0;
}
