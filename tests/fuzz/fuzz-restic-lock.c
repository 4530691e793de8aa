/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The restic lock decoder on whatever a lock file may hold once it opens:
 * the input is a plaintext, sealed here under a fixed key so that the MAC
 * passes and everything after it (the encoding byte, zstd, the JSON, the
 * time) sees the fuzzer's bytes; the input as a file of its own is tried
 * too, and must be refused without a forged MAC.  Accepted locks keep the
 * limits, encode again, and decode -> encode is a fixed point: the
 * re-encoded lock decodes to the same fields and encodes to the same bytes.
 */
#include "config.h"

#include <errno.h>
#include <stdbool.h>

#include "fuzz.h"
#include "lockwatch.h"
#include "format/restic.h"

static const struct lw__restic_key key = {
	.encrypt = "0123456789abcdef0123456789abcdef",
	.mac_k = "fedcba9876543210",
	.mac_r = "0f1e2d3c4b5a6978",
};

static bool str_ok(const char *s)
{
	return s && strlen(s) <= LW_RECORD_STR_MAX;
}

static bool str_eq(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

/* restic's fields and lockwatch's; restic_written aside, which a
 * re-encoded restic lock loses (lockwatch writes its keys). */
static bool same(const struct lw__record *a, const struct lw__record *b)
{
	return a->time == b->time && a->stale_timeout == b->stale_timeout &&
	       a->pid == b->pid && a->uid == b->uid && a->gid == b->gid &&
	       a->pid_ns == b->pid_ns && a->pid_start == b->pid_start &&
	       a->pgid == b->pgid && a->pgid_start == b->pgid_start &&
	       a->exclusive == b->exclusive && str_eq(a->hostname, b->hostname) &&
	       str_eq(a->username, b->username) && str_eq(a->boot_id, b->boot_id) &&
	       str_eq(a->purpose, b->purpose);
}

static bool printable_line(const char *s, size_t size)
{
	size_t n = strnlen(s, size);

	if (n == 0 || n == size)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

static void refused(int err, const struct lw__record *r, const char *why, size_t size)
{
	fuzz_assert(!r);
	fuzz_assert(err == -EBADMSG || err == -LW_EINVALID || err == -ENOMEM);
	fuzz_assert(err == -ENOMEM || printable_line(why, size));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t file[LW_RECORD_MAX + 64];
	/* a lock re-encoded grows by lockwatch's keys, a longer time and
	 * uid and gid, never by its strings: twice the limit holds it */
	static char once[2 * LW_RECORD_MAX], twice[2 * LW_RECORD_MAX];
	struct lw__record *r, *back, *again;
	char why[256] = "";
	int err, n, m, len;

	/* as a file: nothing without the key opens */
	err = lw__restic_lock_open(&key, data, size, &r, why, sizeof(why));
	fuzz_assert(err < 0);
	refused(err, r, why, sizeof(why));

	if (size > sizeof(file) - LW_RESTIC_OVERHEAD)
		return FUZZ_REJECT;
	len = lw__restic_seal(&key, data, size, file, sizeof(file));
	fuzz_assert(len == (int)(size + LW_RESTIC_OVERHEAD));
	why[0] = '\0';
	err = lw__restic_lock_open(&key, file, (size_t)len, &r, why, sizeof(why));
	if (err < 0) {
		refused(err, r, why, sizeof(why));
		fuzz_assert(len <= LW_RECORD_MAX || err == -EBADMSG);
		return 0;
	}
	fuzz_assert(r && len <= LW_RECORD_MAX);
	fuzz_assert(r->pid > 0 && r->stale_timeout > 0);
	fuzz_assert(r->uid >= 0 && r->uid <= UINT32_MAX && r->gid >= 0 && r->gid <= UINT32_MAX);
	fuzz_assert(str_ok(r->hostname) && str_ok(r->username) && str_ok(r->boot_id));
	fuzz_assert(!r->purpose || str_ok(r->purpose));
	fuzz_assert(!r->restic_written || (!r->boot_id[0] && !r->purpose && !r->pid_ns &&
					   r->stale_timeout == LW_RESTIC_STALE_TIMEOUT));

	n = lw__restic_lock_encode(r, once, sizeof(once));
	fuzz_assert(n > 0);
	err = lw__restic_lock_decode(once, (size_t)n, &back, why, sizeof(why));
	fuzz_assert(err == 0);
	fuzz_assert(same(r, back) && !back->restic_written);
	m = lw__restic_lock_encode(back, twice, sizeof(twice));
	fuzz_assert(m == n && memcmp(once, twice, (size_t)n) == 0);
	/* and through a sealed file, as it would be written, where it fits */
	len = lw__restic_lock_seal(&key, back, file, sizeof(file));
	if (n + LW_RESTIC_OVERHEAD > LW_RECORD_MAX) {
		fuzz_assert(len == -ENOSPC);
	} else {
		fuzz_assert(len == n + LW_RESTIC_OVERHEAD);
		err = lw__restic_lock_open(&key, file, (size_t)len, &again, why, sizeof(why));
		fuzz_assert(err == 0 && same(back, again));
		free(again);
	}
	free(back);
	free(r);
	return 0;
}
