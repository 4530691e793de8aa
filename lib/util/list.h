/* SPDX-License-Identifier: BSD-2-Clause */
/* An intrusive circular doubly-linked list. */
#pragma once

#include <stdbool.h>

struct lw__list {
	struct lw__list *prev, *next;
};

static inline void lw__list_init(struct lw__list *l)
{
	l->prev = l->next = l;
}

static inline bool lw__list_empty(const struct lw__list *l)
{
	return l->next == l;
}

/* Whether NODE is in some list (an initialised node that was removed with
 * lw__list_del points to itself). */
static inline bool lw__list_linked(const struct lw__list *node)
{
	return node->next && node->next != node;
}

static inline void lw__list_add_tail(struct lw__list *head, struct lw__list *node)
{
	node->prev = head->prev;
	node->next = head;
	head->prev->next = node;
	head->prev = node;
}

/* At the front of HEAD. */
static inline void lw__list_add(struct lw__list *head, struct lw__list *node)
{
	lw__list_add_tail(head->next, node);
}

static inline void lw__list_del(struct lw__list *node)
{
	if (!lw__list_linked(node))
		return;
	node->prev->next = node->next;
	node->next->prev = node->prev;
	lw__list_init(node);
}

/* Moves every node of FROM to the end of TO. */
static inline void lw__list_splice(struct lw__list *to, struct lw__list *from)
{
	if (lw__list_empty(from))
		return;
	from->next->prev = to->prev;
	to->prev->next = from->next;
	from->prev->next = to;
	to->prev = from->prev;
	lw__list_init(from);
}
