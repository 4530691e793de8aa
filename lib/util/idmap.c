/* SPDX-License-Identifier: BSD-2-Clause */
#include "config.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "util/idmap.h"

static uint64_t seed[4];
static pthread_once_t seed_once = PTHREAD_ONCE_INIT;

static void seed_init(void)
{
	if (getrandom(seed, sizeof(seed), GRND_NONBLOCK) != sizeof(seed))
		seed[0] = (uint64_t)(uintptr_t)&seed ^ (uint64_t)lw__now_boot();
}

static uint64_t hash(const struct lw__id *id)
{
	uint64_t h = seed[0], w;

	for (size_t i = 0; i < LW_ID_LEN; i += 8) {
		memcpy(&w, id->b + i, 8);
		h ^= w ^ seed[1 + (i / 8) % 3];
		h *= UINT64_C(0x9e3779b97f4a7c15);
		h ^= h >> 29;
	}
	h *= UINT64_C(0xbf58476d1ce4e5b9);
	return h ^ (h >> 32);
}

void lw__idmap_init(struct lw__idmap *m)
{
	pthread_once(&seed_once, seed_init);
	*m = (struct lw__idmap){ 0 };
}

void lw__idmap_fini(struct lw__idmap *m)
{
	free(m->slots);
	*m = (struct lw__idmap){ 0 };
}

static const struct lw__id *key(const void *obj)
{
	return obj;
}

static size_t find(const struct lw__idmap *m, const struct lw__id *id)
{
	size_t i = hash(id) & (m->cap - 1);

	while (m->slots[i] && !lw__id_eq(key(m->slots[i]), id))
		i = (i + 1) & (m->cap - 1);
	return i;
}

void *lw__idmap_get(const struct lw__idmap *m, const struct lw__id *id)
{
	return m->cap ? m->slots[find(m, id)] : NULL;
}

static int grow(struct lw__idmap *m)
{
	struct lw__idmap bigger = { .cap = m->cap ? 2 * m->cap : 64 };

	bigger.slots = calloc(bigger.cap, sizeof(void *));
	if (!bigger.slots)
		return -ENOMEM;
	for (size_t i = 0; i < m->cap; i++)
		if (m->slots[i])
			bigger.slots[find(&bigger, key(m->slots[i]))] = m->slots[i];
	bigger.n = m->n;
	free(m->slots);
	*m = bigger;
	return 0;
}

int lw__idmap_put(struct lw__idmap *m, void *obj)
{
	size_t i;

	/* at most half full keeps probes short */
	if (2 * (m->n + 1) > m->cap && grow(m) < 0)
		return -ENOMEM;
	i = find(m, key(obj));
	if (m->slots[i])
		return -EEXIST;
	m->slots[i] = obj;
	m->n++;
	return 0;
}

int lw__idmap_del_at(struct lw__idmap *m, size_t i)
{
	size_t hole = i, j = i, mask = m->cap - 1;

	m->slots[i] = NULL;
	m->n--;
	/* Backward shift: a later member of the run moves into the hole unless
	 * its home slot lies cyclically in (hole, j], where it already is as
	 * close to home as it can be. */
	for (;;) {
		size_t home;
		bool stays;

		j = (j + 1) & mask;
		if (!m->slots[j])
			break;
		home = hash(key(m->slots[j])) & mask;
		stays = hole <= j ? hole < home && home <= j : hole < home || home <= j;
		if (!stays) {
			m->slots[hole] = m->slots[j];
			m->slots[j] = NULL;
			hole = j;
		}
	}
	return m->slots[i] != NULL;
}

void *lw__idmap_del(struct lw__idmap *m, const struct lw__id *id)
{
	size_t i;
	void *obj;

	if (!m->cap)
		return NULL;
	i = find(m, id);
	obj = m->slots[i];
	if (obj)
		lw__idmap_del_at(m, i);
	return obj;
}
