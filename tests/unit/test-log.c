/* SPDX-License-Identifier: BSD-2-Clause */
/* The library's log: identical lines in a row are told once, then counted
 * (issue 12: dozens of identical warnings a second while a repository was
 * read-only). */
#include "config.h"

#include "test.h"
#include <stdio.h>
#include <string.h>

#include "util/internal.h"

struct seen {
	int n;
	char lines[8][200];
	int priorities[8];
};

static void capture(void *userdata, int priority, const char *msg)
{
	struct seen *s = userdata;

	if (s->n < 8) {
		snprintf(s->lines[s->n], sizeof(s->lines[0]), "%s", msg);
		s->priorities[s->n] = priority;
	}
	s->n++;
}

Test(log, identical_lines_are_counted)
{
	struct seen s = { 0 };
	struct lw__log logs, *log = &logs;

	lw__log_init(log);
	log->fn = capture;
	log->userdata = &s;
	log->priority = LOG_INFO;
	for (int i = 0; i < 50; i++)
		lw__warn(log, "cannot remove stale lock %s: %s", "0123456789ab",
			 "Read-only file system");
	cr_expect_eq(s.n, 1, "50 identical warnings made %d lines", s.n);
	lw__warn(log, "something else");
	lw__warn(log, "something else");
	lw__notice(log, "something else"); /* another priority: told */
	cr_assert_eq(s.n, 5, "lines: %d", s.n);
	cr_expect_str_eq(s.lines[0], "cannot remove stale lock 0123456789ab: Read-only file system");
	cr_expect_str_eq(s.lines[1], "the last message repeated 49 more times");
	cr_expect_eq(s.priorities[1], LOG_WARNING);
	cr_expect_str_eq(s.lines[2], "something else");
	cr_expect_str_eq(s.lines[3], "the last message repeated 1 more time");
	cr_expect_str_eq(s.lines[4], "something else");
	cr_expect_eq(s.priorities[4], LOG_NOTICE);
	lw__log_fini(log);
}

/* Debug lines follow what happens: every one is told. */
Test(log, debug_lines_are_all_told)
{
	struct seen s = { 0 };
	struct lw__log logs, *log = &logs;

	lw__log_init(log);
	log->fn = capture;
	log->userdata = &s;
	log->priority = LOG_DEBUG;
	for (int i = 0; i < 5; i++)
		lw__dbg(log, "listing");
	cr_expect_eq(s.n, 5);
	lw__log_fini(log);
}
