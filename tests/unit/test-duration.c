/* SPDX-License-Identifier: BSD-2-Clause */
/* lw_duration_parse: Go's syntax, stricter; lw_duration_format. */
#include "test.h"
#include <errno.h>
#include <stdint.h>

#include "lockwatch.h"

#define MIN_NS LW_SEC(60)
#define HOUR_NS LW_SEC(3600)

static void ok(const char *s, int64_t want)
{
	int64_t got = -1;
	int r = lw_duration_parse(s, &got);

	cr_expect_eq(r, 0, "\"%s\": %d", s, r);
	cr_expect_eq(got, want, "\"%s\": %lld, want %lld", s, (long long)got,
		     (long long)want);
}

static void bad(const char *s, int want)
{
	int64_t got = 12345;
	int r = lw_duration_parse(s, &got);

	cr_expect_eq(r, want, "\"%s\": %d, want %d", s, r, want);
	cr_expect_eq(got, 12345, "\"%s\" changed the output on error", s);
}

Test(duration, units)
{
	ok("0", 0);
	ok("1ns", 1);
	ok("7us", 7000);
	ok("7\xc2\xb5s", 7000);
	ok("7\xce\xbcs", 7000);
	ok("250ms", LW_MSEC(250));
	ok("30s", LW_SEC(30));
	ok("5m", 5 * MIN_NS);
	ok("2h", 2 * HOUR_NS);
	ok("0s", 0);
	ok("000010s", LW_SEC(10));
}

Test(duration, compound_and_fractions)
{
	ok("1h30m", HOUR_NS + 30 * MIN_NS);
	ok("1h30m15s250ms", HOUR_NS + 30 * MIN_NS + LW_SEC(15) + LW_MSEC(250));
	ok("1.5h", HOUR_NS + 30 * MIN_NS);
	ok("1.5s", LW_MSEC(1500));
	ok(".5s", LW_MSEC(500));
	ok("5.s", LW_SEC(5));
	ok("0.000000001s", 1);
	ok("0.0000000009s", 0); /* below a nanosecond: truncated, as Go does */
	ok("1.0000000000000000000000001s", LW_SEC(1));
	ok("2m3m", 5 * MIN_NS); /* Go allows repeats; so do we */
}

Test(duration, limits)
{
	/* 100 years: what a user may give, and what any instant plus it
	 * still holds (issue 12: --kill-after 2562047h47m16s overflowed) */
	ok("876600h", LW_DURATION_MAX);
	ok("3155760000s", LW_DURATION_MAX);
	ok("876599h59m59.999999999s", LW_DURATION_MAX - 1);
	bad("876600h0.000000001s", -ERANGE);
	bad("876601h", -ERANGE);
	bad("2562047h47m16s", -ERANGE);
	bad("9223372036854775807ns", -ERANGE);
	bad("9223372036854775808ns", -ERANGE);
	bad("2562048h", -ERANGE);
	bad("2562047h47m16.854775808s", -ERANGE);
	bad("99999999999999999999999s", -ERANGE);
	bad("1e9h", -EINVAL);
}

Test(duration, rejected)
{
	static const char *const inputs[] = {
		"", " ", "5", "5 minutes", "5 m", " 5m", "5m ", "-1s", "+1s",
		"1e9h", "1.5", ".s", ".", "s", "5x", "5mins", "1h 30m", "5M",
		"5S", "0x10s", "1,5s", "5m\n", "5\xc2s", "\xc2\xb5s", "1d",
		"inf", "nan", "1__s",
	};

	for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++)
		bad(inputs[i], -EINVAL);
	cr_expect_eq(lw_duration_parse(NULL, &(int64_t){ 0 }), -EINVAL);
	cr_expect_eq(lw_duration_parse("1s", NULL), -EINVAL);
}

Test(duration, format_round_trip)
{
	static const struct { int64_t ns; const char *text; } cases[] = {
		{ 850000, "850us" }, { LW_MSEC(250), "250ms" }, { LW_MSEC(1500), "1.5s" },
		{ 3 * MIN_NS + LW_SEC(12), "3m12s" }, { HOUR_NS + 2 * MIN_NS, "1h2m" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char buf[32];
		int64_t back;

		cr_expect_str_eq(lw_duration_format(cases[i].ns, buf, sizeof(buf)),
				 cases[i].text);
		cr_expect_eq(lw_duration_parse(buf, &back), 0, "%s", buf);
		cr_expect_eq(back, cases[i].ns, "%s", buf);
	}
}

/* A value that rounds up to the next unit is written in that unit, so that
 * what is printed reads back and prints the same (59.96s was "60s", which
 * reads back as 1m0s). */
Test(duration, format_rounds_into_the_next_unit)
{
	static const struct { int64_t ns; const char *text; } cases[] = {
		{ LW_MSEC(59940), "59.9s" }, { LW_MSEC(59960), "1m0s" },
		{ LW_MSEC(119600), "2m0s" }, { LW_MSEC(3599600), "1h0m" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char buf[32], again[32];
		int64_t back;

		cr_expect_str_eq(lw_duration_format(cases[i].ns, buf, sizeof(buf)),
				 cases[i].text);
		cr_expect_eq(lw_duration_parse(buf, &back), 0, "%s", buf);
		cr_expect_str_eq(lw_duration_format(back, again, sizeof(again)), buf);
	}
}
