/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * An intrusive singly linked FIFO with a tail pointer: O(1) push at the
 * end and pop at the front, and a whole queue handed over at once (the
 * calls posted to a loop, the engine's deferred work, a worker's jobs).
 * Removal from the middle is a walk, for the rare cancel.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

struct lw__qnode {
	struct lw__qnode *next;
};

struct lw__queue {
	struct lw__qnode *head;
	struct lw__qnode **tail; /* &HEAD when empty */
};

static inline void lw__queue_init(struct lw__queue *q)
{
	q->head = NULL;
	q->tail = &q->head;
}

static inline bool lw__queue_empty(const struct lw__queue *q)
{
	return !q->head;
}

static inline void lw__queue_push(struct lw__queue *q, struct lw__qnode *n)
{
	n->next = NULL;
	*q->tail = n;
	q->tail = &n->next;
}

/* The first node, taken out; NULL when Q is empty. */
static inline struct lw__qnode *lw__queue_pop(struct lw__queue *q)
{
	struct lw__qnode *n = q->head;

	if (n && !(q->head = n->next))
		q->tail = &q->head;
	return n;
}

/* Moves every node of FROM into TO, which is taken as empty; FROM is left
 * empty.  (A queue cannot be copied as a struct: its tail may point at its
 * own head.) */
static inline void lw__queue_move(struct lw__queue *to, struct lw__queue *from)
{
	to->head = from->head;
	to->tail = from->head ? from->tail : &to->head;
	lw__queue_init(from);
}

/* Moves every node of FROM to the front of Q, in their order. */
static inline void lw__queue_prepend(struct lw__queue *q, struct lw__queue *from)
{
	if (!from->head)
		return;
	*from->tail = q->head;
	if (!q->head)
		q->tail = from->tail;
	q->head = from->head;
	lw__queue_init(from);
}

/* Takes N out of Q; returns whether it was there. */
static inline bool lw__queue_remove(struct lw__queue *q, struct lw__qnode *n)
{
	for (struct lw__qnode **p = &q->head; *p; p = &(*p)->next) {
		if (*p == n) {
			*p = n->next;
			if (!*p)
				q->tail = p;
			return true;
		}
	}
	return false;
}
