/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * A hash map from lock id to an object whose first member is its id: open
 * addressing, linear probing, deletion by backward shift (no tombstones).
 * Ids in a listing come from a server, so the hash is keyed with a random
 * per-process seed: a hostile listing cannot pile names into one chain.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "util/internal.h"

struct lw__idmap {
	void **slots; /* each points to an object starting with struct lw__id */
	size_t cap;   /* a power of two, or 0 */
	size_t n;
};

void lw__idmap_init(struct lw__idmap *m);
void lw__idmap_fini(struct lw__idmap *m);
void *lw__idmap_get(const struct lw__idmap *m, const struct lw__id *id);
/* Inserts OBJ (keyed by its leading id); replaces nothing.  Returns 0,
 * -EEXIST, -ENOMEM. */
int lw__idmap_put(struct lw__idmap *m, void *obj);
void *lw__idmap_del(struct lw__idmap *m, const struct lw__id *id);
/* Deletes the object in slot I.  Returns 1 when another object moved into
 * slot I: a loop over the slots that deletes as it goes looks at I again
 * (it may also see an object twice, never miss one). */
int lw__idmap_del_at(struct lw__idmap *m, size_t i);
