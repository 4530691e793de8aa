/* SPDX-License-Identifier: BSD-2-Clause */
#include "config.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>

#include "util/heap.h"

void lw__heap_init(struct lw__heap *h)
{
	*h = (struct lw__heap){ 0 };
}

void lw__heap_fini(struct lw__heap *h)
{
	free(h->v);
	*h = (struct lw__heap){ 0 };
}

int lw__heap_reserve(struct lw__heap *h, int delta)
{
	uint64_t want = (uint64_t)h->reserved + (int64_t)delta;
	uint32_t cap = h->cap ? h->cap : 64;
	struct lw__heap_node **v;

	if (delta < 0) {
		h->reserved = (uint32_t)want;
		return 0;
	}
	if (want >= UINT32_MAX)
		return -ENOMEM;
	if (want > h->cap) {
		while (cap < want)
			cap = cap > UINT32_MAX / 2 ? UINT32_MAX - 1 : cap * 2;
		v = realloc(h->v, (size_t)cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		h->v = v;
		h->cap = cap;
	}
	h->reserved = (uint32_t)want;
	return 0;
}

static int less(const struct lw__heap_node *a, const struct lw__heap_node *b)
{
	return a->when < b->when || (a->when == b->when && a->seq < b->seq);
}

static void place(struct lw__heap *h, uint32_t i, struct lw__heap_node *node)
{
	h->v[i] = node;
	node->idx = i;
}

static void sift_up(struct lw__heap *h, uint32_t i)
{
	struct lw__heap_node *node = h->v[i];

	while (i > 0) {
		uint32_t parent = (i - 1) / 2;

		if (!less(node, h->v[parent]))
			break;
		place(h, i, h->v[parent]);
		i = parent;
	}
	place(h, i, node);
}

static void sift_down(struct lw__heap *h, uint32_t i)
{
	struct lw__heap_node *node = h->v[i];

	for (;;) {
		uint32_t c = 2 * i + 1;

		if (c >= h->n)
			break;
		if (c + 1 < h->n && less(h->v[c + 1], h->v[c]))
			c++;
		if (!less(h->v[c], node))
			break;
		place(h, i, h->v[c]);
		i = c;
	}
	place(h, i, node);
}

void lw__heap_push(struct lw__heap *h, struct lw__heap_node *node, int64_t when)
{
	if (lw__heap_queued(node))
		lw__heap_remove(h, node);
	assert(h->n < h->cap); /* callers reserve their nodes ahead */
	node->when = when;
	node->seq = h->seq++;
	place(h, h->n++, node);
	sift_up(h, node->idx);
}

void lw__heap_remove(struct lw__heap *h, struct lw__heap_node *node)
{
	uint32_t i = node->idx;
	struct lw__heap_node *last;

	if (!lw__heap_queued(node)) {
		node->idx = LW_HEAP_NONE; /* a popped node does not run */
		return;
	}
	node->idx = LW_HEAP_NONE;
	last = h->v[--h->n];
	if (i == h->n)
		return;
	place(h, i, last);
	if (i > 0 && less(last, h->v[(i - 1) / 2]))
		sift_up(h, i);
	else
		sift_down(h, i);
}
