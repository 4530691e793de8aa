/* SPDX-License-Identifier: BSD-2-Clause */
/* A binary min-heap of intrusive nodes ordered by (instant, sequence): equal
 * instants pop in the order they were pushed.  Push, remove and update are
 * O(log n); the minimum is O(1).  Capacity is reserved ahead, so pushing
 * never allocates and never fails. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#define LW_HEAP_NONE UINT32_MAX
/* Popped and about to run (the engine's timers, not the heap, use it). */
#define LW_HEAP_POPPED (UINT32_MAX - 1)

struct lw__heap_node {
	int64_t when;
	uint64_t seq;
	uint32_t idx; /* slot in the heap, LW_HEAP_NONE when not queued */
	bool urgent;  /* the owner's: fire before others due in the same turn */
};

struct lw__heap {
	struct lw__heap_node **v;
	uint32_t n;
	uint32_t cap;
	uint32_t reserved;
	uint64_t seq;
};

void lw__heap_init(struct lw__heap *h);
void lw__heap_fini(struct lw__heap *h);
/* Makes room for DELTA more nodes (negative gives it back).  Returns 0 or
 * -ENOMEM. */
int lw__heap_reserve(struct lw__heap *h, int delta);
static inline void lw__heap_node_init(struct lw__heap_node *node)
{
	node->idx = LW_HEAP_NONE;
	node->urgent = false;
}
static inline int lw__heap_queued(const struct lw__heap_node *node)
{
	return node->idx < LW_HEAP_POPPED;
}
/* Queues NODE at WHEN, moving it if it is queued already. */
void lw__heap_push(struct lw__heap *h, struct lw__heap_node *node, int64_t when);
void lw__heap_remove(struct lw__heap *h, struct lw__heap_node *node);
static inline struct lw__heap_node *lw__heap_min(const struct lw__heap *h)
{
	return h->n ? h->v[0] : 0;
}
