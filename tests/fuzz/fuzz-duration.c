/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Go-style duration parsing on whatever a command line or a configuration
 * holds.  A refusal leaves the output alone; an accepted duration is not
 * negative; and what lw_duration_format makes of it fits in 32 bytes,
 * parses back within the precision the format promises (three significant
 * digits below a minute, the second below an hour, the minute above), and
 * formats as itself again.
 */
#include "config.h"

#include <errno.h>

#include "fuzz.h"
#include "lockwatch.h"

/* How far the formatted form of NS may be from it. */
static int64_t precision(int64_t ns)
{
	if (ns < LW_MSEC(1))
		return 999; /* whole microseconds */
	if (ns < LW_SEC(60))
		return ns / 200 + 1; /* half a unit in the third digit */
	if (ns < LW_SEC(3600))
		return LW_SEC(1) - 1;
	return LW_SEC(60) - 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_cstr(data, size), text[64], again[64];
	int64_t ns = -42, back = -42;
	int r;

	if (!s)
		return FUZZ_REJECT;
	r = lw_duration_parse(s, &ns);
	free(s);
	if (r < 0) {
		fuzz_assert(r == -EINVAL || r == -ERANGE);
		fuzz_assert(ns == -42);
		return 0;
	}
	fuzz_assert(r == 0 && ns >= 0 && ns <= LW_DURATION_MAX);

	lw_duration_format(ns, text, sizeof(text));
	fuzz_assert(strlen(text) < 32);
	fuzz_assert(lw_duration_parse(text, &back) == 0);
	fuzz_assert((back > ns ? back - ns : ns - back) <= precision(ns));
	lw_duration_format(back, again, sizeof(again));
	fuzz_assert(strcmp(again, text) == 0);
	return 0;
}
