/* SPDX-License-Identifier: BSD-2-Clause */
/* The deadline heap: pops in (instant, insertion) order, whatever mix of
 * pushes, moves and removals came before. */
#include "config.h"

#include "test.h"
#include <stdlib.h>

#include "util/heap.h"

#define N 2000

struct item {
	struct lw__heap_node node;
	int64_t when;
	uint64_t order; /* insertion order of its current instant */
	bool queued;
};

static struct item items[N];
static struct lw__heap heap;

static void setup(void)
{
	lw__heap_init(&heap);
	cr_assert_eq(lw__heap_reserve(&heap, N), 0);
	for (int i = 0; i < N; i++) {
		lw__heap_node_init(&items[i].node);
		items[i].queued = false;
	}
}

static void teardown(void)
{
	lw__heap_fini(&heap);
}

static uint64_t counter;

static void push(struct item *it, int64_t when)
{
	lw__heap_push(&heap, &it->node, when);
	it->when = when;
	it->order = counter++;
	it->queued = true;
}

/* Pops everything and checks the order against the model. */
static void drain_and_check(void)
{
	int64_t last_when = INT64_MIN;
	uint64_t last_order = 0;
	int expected = 0, popped = 0;
	struct lw__heap_node *n;

	for (int i = 0; i < N; i++)
		expected += items[i].queued;
	while ((n = lw__heap_min(&heap))) {
		struct item *it = (struct item *)n;

		cr_assert(it->queued, "popped an item that was removed");
		cr_assert_eq(n->when, it->when);
		cr_assert(it->when > last_when ||
				  (it->when == last_when && it->order > last_order),
			  "out of order at pop %d", popped);
		last_when = it->when;
		last_order = it->order;
		lw__heap_remove(&heap, n);
		cr_assert(!lw__heap_queued(n));
		it->queued = false;
		popped++;
	}
	cr_assert_eq(popped, expected);
	cr_assert_eq(heap.n, 0);
}

Test(heap, empty, .init = setup, .fini = teardown)
{
	cr_assert_null(lw__heap_min(&heap));
	lw__heap_remove(&heap, &items[0].node); /* not queued: nothing happens */
	cr_assert_null(lw__heap_min(&heap));
}

/* Equal instants pop in the order they were pushed. */
Test(heap, ties_are_fifo, .init = setup, .fini = teardown)
{
	for (int i = 0; i < 100; i++)
		push(&items[i], 42);
	for (int i = 0; i < 100; i++) {
		struct lw__heap_node *n = lw__heap_min(&heap);

		cr_assert_eq(n, &items[i].node, "pop %d", i);
		lw__heap_remove(&heap, n);
	}
}

Test(heap, random_operations, .init = setup, .fini = teardown)
{
	srand(1234);
	for (int round = 0; round < 20000; round++) {
		struct item *it = &items[rand() % N];
		int op = rand() % 4;

		if (op < 2)
			push(it, rand() % 500); /* push, or move if queued */
		else if (op == 2 && it->queued) {
			lw__heap_remove(&heap, &it->node);
			it->queued = false;
		} else if (op == 3 && lw__heap_min(&heap)) {
			struct item *min = (struct item *)lw__heap_min(&heap);

			for (int i = 0; i < N; i++)
				if (items[i].queued)
					cr_assert(items[i].when >= min->when);
		}
	}
	drain_and_check();
}

/* Reservation: the array never grows during a push. */
Test(heap, reserve, .init = setup, .fini = teardown)
{
	uint32_t cap = heap.cap;

	for (int i = 0; i < N; i++)
		push(&items[i], N - i);
	cr_assert_eq(heap.cap, cap, "pushing within the reservation reallocated");
	cr_assert_eq(lw__heap_reserve(&heap, -N), 0);
	cr_assert_eq(heap.reserved, 0);
	drain_and_check();
}
