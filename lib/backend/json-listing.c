/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The one shape of a listing: an array of names or of objects with a name,
 * read with the strict reader of json.c.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/json-listing.h"
#include "engine/engine.h"
#include "util/json.h"

/* A name as decoded: long enough for an id and one byte to spare. */
struct name {
	char s[LW_ID_HEX + 1];
	struct lw__json_str str;
};

static struct lw__json_str *name_init(struct name *n)
{
	n->str = (struct lw__json_str){ .s = n->s, .cap = sizeof(n->s) };
	return &n->str;
}

struct entry {
	struct name name;
	bool has_name;
	bool has_type;
	bool is_file;
	bool is_dir;
};

static int entry_member(struct lw__json *c, const char *key, int depth, void *arg)
{
	struct entry *e = arg;

	if (key && strcmp(key, "name") == 0) {
		if (e->has_name)
			return lw__json_bad(c, "two names in one entry");
		e->has_name = true;
		if (lw__json_peek(c) != '"')
			return lw__json_bad(c, "a name that is not a string");
		return lw__json_string(c, name_init(&e->name));
	}
	if (key && strcmp(key, "type") == 0) {
		struct name type;

		if (e->has_type)
			return lw__json_bad(c, "two types in one entry");
		e->has_type = true;
		if (lw__json_peek(c) != '"')
			return lw__json_bad(c, "a type that is not a string");
		if (lw__json_string(c, name_init(&type)) < 0)
			return c->err;
		e->is_file = !type.str.over && strcmp(type.s, "file") == 0;
		e->is_dir = !type.str.over && strcmp(type.s, "directory") == 0;
		return 0;
	}
	return lw__json_value(c, depth);
}

struct ids {
	struct lw__id *v;
	size_t n, cap;
	bool typed;     /* keep what is not a file, with its type */
	uint8_t *types; /* TYPED: once one is not a file */
	size_t tcap;
};

static int add_id(struct lw__json *c, struct ids *ids, const struct name *name,
		  uint8_t type)
{
	struct lw__id id;

	if (name->str.over || !lw__id_parse(name->s, name->str.len, &id))
		return 0;
	if (lw__grow(&ids->v, &ids->cap, ids->n, sizeof(*ids->v), 64) < 0)
		goto nomem;
	if (type != LW__FTYPE_FILE && !ids->types) {
		ids->tcap = ids->cap;
		ids->types = malloc(ids->tcap);
		if (!ids->types)
			goto nomem;
		memset(ids->types, LW__FTYPE_FILE, ids->n);
	}
	if (ids->types) {
		if (lw__grow(&ids->types, &ids->tcap, ids->n, 1, 64) < 0)
			goto nomem;
		ids->types[ids->n] = type;
	}
	ids->v[ids->n++] = id;
	return 0;
nomem:
	snprintf(c->why, c->whysize, "out of memory");
	return c->err = -ENOMEM;
}

static int listing_entry(struct lw__json *c, int depth, void *arg)
{
	struct ids *ids = arg;
	struct entry e = { .is_file = true };

	switch (lw__json_peek(c)) {
	case '"': /* v1: a bare name */
		if (lw__json_string(c, name_init(&e.name)) < 0)
			return c->err;
		return add_id(c, ids, &e.name, LW__FTYPE_FILE);
	case '{':
		if (lw__json_object(c, depth, entry_member, &e) < 0)
			return c->err;
		if (!e.has_name)
			return lw__json_bad(c, "an entry without a name");
		if (e.is_file || ids->typed)
			return add_id(c, ids, &e.name, e.is_file ? LW__FTYPE_FILE :
						       e.is_dir ? LW__FTYPE_DIR : LW__FTYPE_OTHER);
		return 0;
	default:
		return lw__json_bad(c, "an entry that is neither a name nor an object");
	}
}

int lw__json_listing_parse(const char *buf, size_t len, struct lw__id **idsp,
			   size_t *np, char *why, size_t whysize)
{
	return lw__json_listing_parse_typed(buf, len, idsp, NULL, np, why, whysize);
}

int lw__json_listing_parse_typed(const char *buf, size_t len, struct lw__id **idsp,
				 uint8_t **typesp, size_t *np, char *why, size_t whysize)
{
	struct lw__json c;
	struct ids ids = { .typed = typesp != NULL };

	*idsp = NULL;
	*np = 0;
	if (typesp)
		*typesp = NULL;
	lw__json_init(&c, buf, len, "listing", why, whysize);
	switch (lw__json_begin(&c)) {
	case '[':
		c.p++;
		lw__json_items(&c, ']', listing_entry, 1, &ids);
		break;
	case 'n':
		lw__json_literal(&c, "null");
		break;
	case -EBADMSG:
		break;
	default:
		lw__json_bad(&c, "expected an array");
		break;
	}
	if (lw__json_finish(&c) < 0) {
		free(ids.v);
		free(ids.types);
		return c.err;
	}
	*idsp = ids.v;
	*np = ids.n;
	if (typesp)
		*typesp = ids.types;
	return 0;
}
