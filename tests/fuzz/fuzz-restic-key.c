/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The key file parser on whatever keys/ may hold.  It accepts or refuses
 * without crashing, leaking or allocating; what it accepts is a cost
 * scrypt may be asked to pay (N a power of two, memory and work within the
 * bounds) with a 64-byte salt and sealed data of a plausible size.  Where
 * that cost is small the key is derived too, with a password that opens
 * nothing the fuzzer can forge: the answer is a refusal, never a key.
 */
#include "config.h"

#include <errno.h>
#include <stdbool.h>

#include "fuzz.h"
#include "format/restic-key.h"

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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct lw__restic_keyfile kf;
	struct lw__restic_key *key = (void *)1;
	char why[256] = "";
	uint64_t mem;
	int err;

	err = lw__restic_keyfile_parse(data, size, &kf, why, sizeof(why));
	if (err < 0) {
		fuzz_assert(err == -EBADMSG);
		fuzz_assert(printable_line(why, sizeof(why)));
		return 0;
	}
	fuzz_assert(err == 0 && size <= LW_RESTIC_KEYFILE_MAX);
	fuzz_assert(kf.n >= 2 && (kf.n & (kf.n - 1)) == 0 && kf.r >= 1 && kf.p >= 1);
	mem = 128 * kf.n * kf.r;
	fuzz_assert(mem <= LW_RESTIC_SCRYPT_MEM_MAX);
	fuzz_assert(mem * kf.p <= LW_RESTIC_SCRYPT_WORK_MAX);
	fuzz_assert(kf.datalen >= LW_RESTIC_OVERHEAD && kf.datalen <= sizeof(kf.data));

	/* a millisecond of scrypt at most, so that fuzzing stays fast */
	if (mem * kf.p > (UINT64_C(256) << 10))
		return 0;
	why[0] = '\0';
	err = lw__restic_keyfile_open(&kf, "fuzz", 4, &key, why, sizeof(why));
	fuzz_assert(err == -EACCES && !key);
	fuzz_assert(printable_line(why, sizeof(why)));
	return 0;
}
