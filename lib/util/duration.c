/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Go-style durations ("250ms", "30s", "1h30m", "1.5h"), as restic and the
 * lockwatch command take them.  Stricter than Go's time.ParseDuration: no
 * sign (a negative timeout is always a mistake), no spaces, and every number
 * needs its unit except a lone "0".
 */
#include "config.h"

#include <string.h>

#include "util/internal.h"

static const struct unit {
	const char *name;
	int64_t ns;
} units[] = {
	{ "ns", 1 },
	{ "us", 1000 },
	{ "\xc2\xb5s", 1000 }, /* U+00B5 micro sign */
	{ "\xce\xbcs", 1000 }, /* U+03BC Greek small mu */
	{ "ms", LW_MSEC(1) },
	{ "s", LW_SEC(1) },
	{ "m", LW_SEC(60) },
	{ "h", LW_SEC(3600) },
};

/* The unit at *P (longest match: "ms" before "m"); advances *P. */
static const struct unit *parse_unit(const char **p)
{
	const struct unit *best = NULL;
	size_t best_len = 0;

	for (size_t i = 0; i < LW_ARRAY_SIZE(units); i++) {
		size_t n = strlen(units[i].name);

		if (n > best_len && strncmp(*p, units[i].name, n) == 0) {
			best = &units[i];
			best_len = n;
		}
	}
	*p += best_len;
	return best;
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

LW_EXPORT int lw_duration_parse(const char *s, int64_t *ns)
{
	unsigned __int128 total = 0;
	const char *p = s;

	if (!s || !ns)
		return lw__fail(-EINVAL, "no duration");
	if (strcmp(s, "0") == 0) {
		*ns = 0;
		return 0;
	}
	if (!*p)
		return -EINVAL;
	while (*p) {
		unsigned __int128 whole = 0, frac = 0, scale = 1;
		bool digits = false;
		const struct unit *u;

		for (; is_digit(*p); p++, digits = true) {
			whole = whole * 10 + (unsigned)(*p - '0');
			if (whole > INT64_MAX)
				return -ERANGE;
		}
		if (*p == '.') {
			/* digits past nanosecond precision of an hour add
			 * nothing; they are read, not kept */
			for (p++; is_digit(*p); p++, digits = true) {
				if (scale < UINT64_C(1000000000000000000)) {
					frac = frac * 10 + (unsigned)(*p - '0');
					scale *= 10;
				}
			}
		}
		if (!digits)
			return -EINVAL;
		u = parse_unit(&p);
		if (!u)
			return -EINVAL;
		total += whole * (unsigned __int128)u->ns + frac * (unsigned __int128)u->ns / scale;
		if (total > LW_DURATION_MAX)
			return -ERANGE;
	}
	*ns = (int64_t)total;
	return 0;
}

LW_EXPORT char *lw_duration_format(int64_t ns, char *buf, size_t size)
{
	return lw__fmt_duration(ns, buf, size);
}
