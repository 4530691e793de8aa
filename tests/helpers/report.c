/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * What a test binary says about the cases it did not run.  Criterion counts
 * a skipped case as passing and prints nothing about it; here every skip is
 * printed with its reason and counted at the end, a binary whose cases all
 * skipped exits 77 (automake's SKIP), and a run that LOCKWATCH_ENGINE
 * narrows to one engine says so.  Linked into every test of the engine
 * matrix (tests/Makefile.inc: TEST_COMMON and its siblings).
 */
#include "config.h"

#include "test.h"
#include <criterion/hooks.h>
#include <criterion/options.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runenv.h"
#include "testing.h"

size_t lwt_left_out;

static size_t ran, skipped;

void lwt_engine_case(enum lw_engine engine)
{
	const char *allow = getenv("LOCKWATCH_TEST_ALLOW_NO_URING");
	struct lw_loop *loop;
	int r;

	if (engine != LW_ENGINE_URING)
		return;
	r = lw_loop_new(engine, &loop);
	if (r == 0) {
		lw_loop_free(loop);
		return;
	}
	/* CI has io_uring: a case that cannot have it is a failure there,
	 * not a pass that tested nothing */
	if ((r == -EPERM || r == -ENOSYS) && allow && !strcmp(allow, "1"))
		cr_skip_test("io_uring cannot start here (%s); "
			     "LOCKWATCH_TEST_ALLOW_NO_URING=1 lets the case skip", lw_errmsg());
	cr_assert_fail("io_uring cannot start here: %s (LOCKWATCH_TEST_ALLOW_NO_URING=1 "
		       "skips the uring cases instead)", lw_errmsg());
}

ReportHook(PRE_ALL)(struct criterion_test_set *set)
{
	const char *only = getenv("LOCKWATCH_ENGINE");
	enum lw_engine e;

	if (only && lw_engine_parse(only, &e) == 0 && e != LW_ENGINE_AUTO)
		fprintf(stderr, "lwtest: LOCKWATCH_ENGINE=%s: only the %s cases run, the "
			"other engine's are left out\n", only, lw_engine_name(e));
}

ReportHook(POST_TEST)(struct criterion_test_stats *st)
{
	ran++;
	if (st->test_status != CR_STATUS_SKIPPED)
		return;
	skipped++;
	fprintf(stderr, "[SKIP] %s::%s: %s\n", st->test->category, st->test->name,
		st->message ? st->message : "(no reason given)");
}

/* Criterion's own main, with the summary after its synthesis.  (Exported:
 * criterion finds its test workers' entry through main.) */
LW_EXPORT int main(int argc, char *argv[])
{
	struct criterion_test_set *tests = criterion_initialize();
	int result = 0;

	if (criterion_handle_args(argc, argv, true))
		result = !criterion_run_all_tests(tests);
	criterion_finalize(tests);
	if (lwt_left_out)
		fprintf(stderr, "lwtest: %zu cases left out by LOCKWATCH_ENGINE=%s\n",
			lwt_left_out, getenv("LOCKWATCH_ENGINE"));
	if (skipped)
		fprintf(stderr, "lwtest: %zu of %zu cases skipped (reasons above, [SKIP])\n",
			skipped, ran);
	if (result == 0 && ran > 0 && skipped == ran)
		return 77;
	return result;
}
