/* SPDX-License-Identifier: BSD-2-Clause */
/* A deadline that falls due while the loop runs a batch of callbacks
 * (timers, deferred work, descriptor events) fires before the next
 * callback of the batch, not after the whole turn.  Each test makes the
 * first callback of a batch run past the deadline and asks the second
 * whether the deadline has fired: an order, not a time, so no bound to
 * tune for a loaded machine. */
#include "config.h"

#include <unistd.h>

#include "engine/engine.h"
#include "lwtest.h"

struct batch {
	struct lw__engine *e;
	struct lw__timer deadline;
	int64_t due;
	bool fired;
	int ran;           /* callbacks of the batch so far */
	bool fired_before; /* what the second callback saw */
};

static struct batch *current;

static void on_deadline(struct lw__timer *t)
{
	(void)t;
	current->fired = true;
}

/* The batch's callbacks: the first runs past the deadline, the second
 * looks. */
static void step(void)
{
	if (current->ran++ == 0) {
		while (lw__now_boot() <= current->due)
			;
	} else {
		current->fired_before = current->fired;
	}
}

static void start(struct batch *b, const struct lwt_param *p)
{
	static const struct lw__log log = { .priority = -1 };

	*b = (struct batch){ 0 };
	current = b;
	lwt_engine_case(p->engine);
	cr_assert_eq(lw__engine_new(p->engine, &log, NULL, NULL, &b->e), 0);
	lw__timer_init(&b->deadline, on_deadline);
	lw__timer_set_urgent(&b->deadline);
	b->due = lw__now_boot() + LW_MSEC(5);
	lw__timer_start(b->e, &b->deadline, b->due);
}

static void finish(struct batch *b)
{
	cr_assert_eq(b->ran, 2, "both callbacks of the batch ran (%d did)", b->ran);
	cr_assert(b->fired_before, "the deadline waited for the rest of the batch");
	lw__engine_free(b->e);
	current = NULL;
}

static void deferred(struct lw__defer *d)
{
	(void)d;
	step();
}

LWT_ENGINE_TEST(engine, deadline_between_deferred_calls, .timeout = 30)
{
	struct lw__defer d[2] = { 0 };
	struct batch b;

	start(&b, p);
	lw__defer(b.e, &d[0], deferred);
	lw__defer(b.e, &d[1], deferred);
	lw__engine_run_once(b.e, 0);
	finish(&b);
}

static void timer(struct lw__timer *t)
{
	(void)t;
	step();
}

LWT_ENGINE_TEST(engine, deadline_between_timers, .timeout = 30)
{
	struct lw__timer t[2];
	struct batch b;

	start(&b, p);
	for (int i = 0; i < 2; i++) {
		lw__timer_init(&t[i], timer);
		lw__timer_start(b.e, &t[i], lw__now_boot());
	}
	lw__engine_run_once(b.e, 0);
	finish(&b);
}

static void readable(struct lw__watch *w, unsigned revents)
{
	(void)revents;
	lw__watch_stop(current->e, w);
	step();
}

LWT_ENGINE_TEST(engine, deadline_between_descriptor_events, .timeout = 30)
{
	struct lw__watch w[2];
	int fds[2][2];
	struct batch b;

	start(&b, p);
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(pipe(fds[i]), 0);
		cr_assert_eq(write(fds[i][1], "x", 1), 1);
		cr_assert_eq(lw__watch_start(b.e, &w[i], fds[i][0], LW__IN, readable), 0);
	}
	while (b.ran == 0 && lw__now_boot() < b.due + LW_SEC(5))
		lw__engine_run_once(b.e, 100);
	/* both were readable before the wait: one batch */
	cr_assert_eq(b.ran, 2, "the two events came in %s", b.ran ? "two turns" : "no turn");
	for (int i = 0; i < 2; i++) {
		close(fds[i][0]);
		close(fds[i][1]);
	}
	finish(&b);
}
