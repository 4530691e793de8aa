/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The repository's listing, shared by every lock that checks for conflicts.
 *
 * restic reads every lock file at every check.  A process that acquires
 * thousands of locks on one repository cannot: that is quadratic.  Here a
 * listing serves every lock that asked for one before it started (and a
 * first check, the one in flight: lw__listing_join), lock files are read
 * once (their content never changes: a refresh writes a new file), and
 * locks of this process are known without reading, from before their file
 * is written: a listing that sees one mid-create does not read it back.  Each listing counts
 * the entries that block a shared and an exclusive lock, so a check is O(1).
 *
 * Where the backend keeps a view of locks/ (local, on file systems whose
 * changes the kernel reports: backend/local.c), a listing after the first
 * is what changed since the one before, and applying it costs what
 * changed, not what the folder holds.  The counts then come from the
 * entries' accounts (account), kept as each entry changes, unless some
 * entry shown is not this process's: records age into staleness and the
 * holders of same-host ones die, which no change announces, so such a
 * listing classifies every entry again, as a full one does.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/protocol.h"

/* Lock files read at once while a listing is built. */
#define READS_IN_FLIGHT 64

static void start(struct lw_repo *repo);

static int64_t op_deadline(struct lw_repo *repo)
{
	int64_t timeout;

	pthread_mutex_lock(&repo->mu);
	timeout = repo->timing->op_timeout;
	pthread_mutex_unlock(&repo->mu);
	return lw__add_sat(lw__now_boot(), timeout);
}

/* Adds (SIGN 1) or takes out (-1) what E, if the listing shows it, counts
 * for in the kept counts: around every change of an entry's state or
 * SEEN outside a full listing, which counts them all again. */
static void account(struct lw__listing *l, const struct lw__entry *e, int sign)
{
	size_t d = (size_t)(ssize_t)sign;

	if (e->seen != l->gen)
		return;
	if (e->state == LW__ENTRY_OWN) {
		l->n_own += d;
		if (e->own->exclusive)
			l->n_own_exclusive += d;
	} else if (e->state == LW__ENTRY_RECORD || e->state == LW__ENTRY_FOREIGN) {
		l->n_others += d;
	}
}

static void recount(struct lw__listing *l)
{
	l->n_own = l->n_own_exclusive = l->n_others = 0;
	for (size_t i = 0; i < l->map.cap; i++)
		if (l->map.slots[i])
			account(l, l->map.slots[i], 1);
}

static void entry_free(struct lw__entry *e)
{
	if (e->state == LW__ENTRY_RECORD)
		free(e->rec);
	free(e);
}

/* The entry of ID, added (unread, shown by no listing yet) if there is
 * none; NULL: out of memory. */
static struct lw__entry *entry_get(struct lw__listing *l, const struct lw__id *id)
{
	struct lw__entry *e = lw__idmap_get(&l->map, id);

	if (e)
		return e;
	e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	e->id = *id; /* the key, before insertion */
	e->ftype = LW__FTYPE_FILE;
	if (lw__idmap_put(&l->map, e) < 0) {
		free(e);
		return NULL;
	}
	return e;
}

static void set_state(struct lw__entry *e, enum lw__entry_state state)
{
	if (e->state == LW__ENTRY_RECORD)
		free(e->rec);
	e->state = (uint8_t)state;
	e->rec = NULL;
	e->blocks = LW__BLOCKS_NONE; /* until classified */
}

/* An entry named like a lock that is not a regular file (a symlink, a
 * folder, a FIFO): never read or followed, it blocks like a foreign lock;
 * `unlock --remove-all` removes a symlink or an empty folder itself. */
static void not_a_file(struct lw__entry *e, uint8_t ftype)
{
	set_state(e, LW__ENTRY_FOREIGN);
	e->ftype = ftype;
	e->invalid = false;
	e->why = ftype == LW__FTYPE_SYMLINK ? "not a lock file: a symbolic link" :
		 ftype == LW__FTYPE_DIR ? "not a lock file: a folder" :
		 "not a lock file: a FIFO, socket or device";
}

/* Hands the finished listing (or its error) to the locks that waited. */
static void deliver(struct lw_repo *repo)
{
	struct lw__listing *l = &repo->listing;
	struct lw__list now;

	lw__list_init(&now);
	lw__list_splice(&now, &l->now);
	l->running = false;
	while (!lw__list_empty(&now)) {
		struct lw__list_waiter *w =
			LW_CONTAINER_OF(now.next, struct lw__list_waiter, link);

		lw__list_del(&w->link);
		w->fn(w, l->err, l->msg);
	}
	if (!l->running && !lw__list_empty(&l->next))
		start(repo);
}

static void on_stale_removed(struct lw__breq *req)
{
	struct lw_repo *repo = req->userdata;
	struct lw__entry *e = lw__idmap_get(&repo->listing.map, &req->id);
	char hex[LW_ID_HEX + 1];

	lw__id_hex(&req->id, hex);
	if (req->res == 0 || req->res == -ENOENT)
		lw__notice(&repo->loop->log, "removed stale lock %.12s from %s", hex,
			   repo->url.display);
	else
		lw__warn(&repo->loop->log, "cannot remove stale lock %.12s: %s", hex,
			 req->msg[0] ? req->msg : lw_strerror(req->res));
	if (e)
		e->removing = false;
	lw__breq_free(req);
	lw_repo_unref(repo);
}

static void remove_stale(struct lw_repo *repo, struct lw__entry *e)
{
	char desc[512];
	struct lw__breq *req;

	if (e->removing)
		return;
	lw__notice(&repo->loop->log, "removing stale %s",
		   lw__entry_describe(e, desc, sizeof(desc)));
	req = lw__breq_new(repo->backend, LW__BOP_REMOVE, &e->id, NULL, 0,
			   op_deadline(repo), on_stale_removed, lw_repo_ref(repo));
	if (!req) {
		lw_repo_unref(repo);
		return;
	}
	e->removing = true;
	lw__breq_start(req);
}

/* Classifies every entry of this generation and counts what blocks. */
static void classify(struct lw_repo *repo)
{
	struct lw__listing *l = &repo->listing;
	const struct lw__self *self = lw__self();
	int64_t now = lw__now_real();
	bool leased = repo->backend->ops->leased;
	bool remove;

	pthread_mutex_lock(&repo->mu);
	remove = repo->timing->remove_stale;
	pthread_mutex_unlock(&repo->mu);
	if (++l->class_gen == 0)
		l->class_gen = 1;
	l->n_blocks_shared = l->n_blocks_all = 0;
	l->stale = NULL;
	for (size_t i = 0; i < l->map.cap; i++) {
		struct lw__entry *e = l->map.slots[i];
		bool excl = true;

		if (!e || e->seen != l->gen)
			continue;
		e->stale = false;
		switch (e->state) {
		case LW__ENTRY_OWN:
			excl = e->own->exclusive;
			break;
		case LW__ENTRY_RECORD:
			excl = e->rec->exclusive;
			e->stale = leased ? lw__record_orphaned(e->rec, self) :
					    lw__record_stale(e->rec, now, self);
			break;
		case LW__ENTRY_FOREIGN:
			break;
		default:
			e->blocks = LW__BLOCKS_NONE;
			continue;
		}
		if (e->stale && remove) {
			/* it stops blocking once it is gone (acquire.c) */
			e->blocks = LW__BLOCKS_NONE;
			if (e->state == LW__ENTRY_RECORD)
				l->stale = e;
			continue;
		}
		e->blocks = excl ? LW__BLOCKS_ALL : LW__BLOCKS_SHARED;
		l->n_blocks_all++;
		if (excl)
			l->n_blocks_shared++;
	}
}

static void finish(struct lw_repo *repo)
{
	struct lw__listing *l = &repo->listing;

	free(l->unread);
	l->unread = NULL;
	l->nunread = l->next_read = 0;
	if (l->err) {
		/* what it left unread would not be read again */
		l->rebase = true;
	} else if (l->delta && !l->n_others) {
		/* only ours, which never go stale: the counts are kept */
		l->n_blocks_shared = l->n_own_exclusive;
		l->n_blocks_all = l->n_own;
		l->stale = NULL;
	} else {
		classify(repo);
	}
	lw__dbg(&repo->loop->log, "listing of %s: %zu files, %zu block shared, %zu block exclusive locks",
		repo->url.display, l->map.n, l->n_blocks_shared, l->n_blocks_all);
	deliver(repo);
}

static void read_more(struct lw_repo *repo);

static void on_read(struct lw__breq *req)
{
	struct lw_repo *repo = req->userdata;
	struct lw__listing *l = &repo->listing;
	struct lw__entry *e = lw__idmap_get(&l->map, &req->id);
	struct lw__record *rec;
	const char *why;
	int r;

	l->reads_in_flight--;
	/* an unread entry counts for nothing: only what it becomes does */
	if (!e || e->state != LW__ENTRY_UNREAD) {
		e = NULL; /* gone meanwhile, or one of ours now: nothing to learn */
	} else if (req->res == -ENOENT) {
		e->seen = 0; /* deleted since the listing: it is gone */
	} else if (req->res == -ELOOP || req->res == -EISDIR || req->res == -ENXIO) {
		/* it became a symlink, a folder or a socket since the listing */
		not_a_file(e, req->res == -ELOOP ? LW__FTYPE_SYMLINK :
			      req->res == -EISDIR ? LW__FTYPE_DIR : LW__FTYPE_OTHER);
	} else if (req->res < 0) {
		if (!l->err) {
			l->err = req->res;
			snprintf(l->msg, sizeof(l->msg), "reading a lock file: %s",
				 req->msg[0] ? req->msg : lw_strerror(req->res));
		}
	} else if (req->buflen == 0) {
		set_state(e, LW__ENTRY_EMPTY);
	} else if ((r = lw__format_decode(repo, req->buf, req->buflen, &rec, &why)) == 0 &&
		   (why = lw__record_time_invalid(rec, lw__now_real()))) {
		free(rec);
		set_state(e, LW__ENTRY_FOREIGN);
		e->why = why;
		e->invalid = true;
	} else if (r == 0) {
		set_state(e, LW__ENTRY_RECORD);
		e->rec = rec;
	} else if (r == -ENOMEM) {
		if (!l->err) {
			l->err = r;
			snprintf(l->msg, sizeof(l->msg), "out of memory");
		}
	} else {
		set_state(e, LW__ENTRY_FOREIGN);
		e->why = why;
		e->invalid = r == -LW_EINVALID;
	}
	if (e)
		account(l, e, 1);
	lw__breq_free(req);
	read_more(repo);
	lw_repo_unref(repo);
}

static void read_more(struct lw_repo *repo)
{
	struct lw__listing *l = &repo->listing;

	while (!l->err && l->next_read < l->nunread &&
	       l->reads_in_flight < READS_IN_FLIGHT) {
		struct lw__entry *e = l->unread[l->next_read++];
		struct lw__breq *req;

		if (e->state != LW__ENTRY_UNREAD)
			continue; /* became ours since the listing */
		req = lw__breq_new(repo->backend, LW__BOP_READ, &e->id, NULL, 0,
				   op_deadline(repo), on_read, lw_repo_ref(repo));
		if (!req) {
			lw_repo_unref(repo);
			l->err = -ENOMEM;
			snprintf(l->msg, sizeof(l->msg), "out of memory");
			break;
		}
		l->reads_in_flight++;
		lw__breq_start(req);
	}
	if (l->reads_in_flight == 0)
		finish(repo);
}

/* Drops entries the listing no longer shows; lock files of this process
 * stay known until their lock forgets them. */
static void evict(struct lw__listing *l)
{
	for (size_t i = 0; i < l->map.cap; i++) {
		struct lw__entry *e = l->map.slots[i];

		while (e && e->seen != l->gen && e->state != LW__ENTRY_OWN &&
		       !e->removing) {
			int again = lw__idmap_del_at(&l->map, i);

			entry_free(e);
			e = again ? l->map.slots[i] : NULL;
		}
	}
}

static void forget_forgotten(struct lw__listing *l)
{
	for (size_t i = 0; i < l->forgotten.cap; i++)
		free(l->forgotten.slots[i]);
	lw__idmap_fini(&l->forgotten);
	lw__idmap_init(&l->forgotten);
}

/* Whether ID, which the listing in flight shows, is one this process
 * deleted after that listing began (its snapshot may still show it). */
static bool forgotten(const struct lw__listing *l, const struct lw__id *id)
{
	return lw__idmap_get(&l->forgotten, id) != NULL;
}

/* The backend's changes since the listing before: O(changes). */
static void apply_delta(struct lw__listing *l, const struct lw__breq *req)
{
	for (size_t i = 0; i < req->ngone; i++) {
		struct lw__entry *e = lw__idmap_get(&l->map, &req->gone[i]);

		if (!e)
			continue;
		account(l, e, -1);
		if (e->state == LW__ENTRY_OWN || e->removing)
			e->seen = 0; /* known still: ours, or its removal's */
		else
			entry_free(lw__idmap_del(&l->map, &req->gone[i]));
	}
	for (size_t i = 0; i < req->nids; i++) {
		struct lw__entry *e = lw__idmap_get(&l->map, &req->ids[i]);

		if (!e && forgotten(l, &req->ids[i]))
			continue;
		if (!e && !(e = entry_get(l, &req->ids[i]))) {
			l->err = -ENOMEM;
			return;
		}
		account(l, e, -1);
		e->seen = l->gen;
		if (e->state != LW__ENTRY_OWN) {
			/* new, or written again: what it is now */
			set_state(e, LW__ENTRY_UNREAD);
			e->ftype = LW__FTYPE_FILE;
			l->unread[l->nunread++] = e;
		}
		account(l, e, 1);
	}
}

/* A full listing: what it does not show goes. */
static void apply_snapshot(struct lw__listing *l, const struct lw__breq *req)
{
	if (++l->gen == 0)
		l->gen = 1;
	for (size_t i = 0; i < req->nids; i++) {
		struct lw__entry *e = lw__idmap_get(&l->map, &req->ids[i]);

		if (!e && forgotten(l, &req->ids[i]))
			continue; /* deleted by us after the snapshot was taken */
		if (!e && !(e = entry_get(l, &req->ids[i]))) {
			l->err = -ENOMEM;
			break;
		}
		e->seen = l->gen;
		if (req->types && req->types[i] != LW__FTYPE_FILE && e->state != LW__ENTRY_OWN)
			not_a_file(e, req->types[i]);
		else if (e->ftype != LW__FTYPE_FILE && e->state == LW__ENTRY_FOREIGN)
			set_state(e, LW__ENTRY_UNREAD); /* a file again: read it */
		if (e->state == LW__ENTRY_UNREAD) {
			e->ftype = LW__FTYPE_FILE;
			l->unread[l->nunread++] = e;
		}
	}
	evict(l);
	recount(l);
}

static void on_list(struct lw__breq *req)
{
	struct lw_repo *repo = req->userdata;
	struct lw__listing *l = &repo->listing;

	l->req = NULL;
	if (req->res < 0) {
		l->err = req->res;
		snprintf(l->msg, sizeof(l->msg), "listing locks of %s: %s",
			 repo->url.display, req->msg[0] ? req->msg : lw_strerror(req->res));
		lw__breq_free(req);
		deliver(repo);
		lw_repo_unref(repo);
		return;
	}
	l->delta = req->delta;
	l->unread = calloc(req->nids ? req->nids : 1, sizeof(*l->unread));
	if (!l->unread)
		l->err = -ENOMEM;
	else if (req->delta)
		apply_delta(l, req);
	else
		apply_snapshot(l, req);
	if (l->err)
		snprintf(l->msg, sizeof(l->msg), "out of memory");
	lw__breq_free(req);
	forget_forgotten(l);
	read_more(repo);
	lw_repo_unref(repo);
}

static void list_locks(struct lw_repo *repo);

static void start(struct lw_repo *repo)
{
	struct lw__listing *l = &repo->listing;
	int r;

	l->running = true;
	l->err = 0;
	l->msg[0] = '\0';
	lw__list_splice(&l->now, &l->next);
	/* the first listing waits until the format is known: reading a lock
	 * file needs it */
	r = lw__format_prepare(repo);
	if (r < 0)
		lw__listing_format_done(repo, r, repo->format.msg[0] ? repo->format.msg :
					lw_strerror(r));
	else if (r > 0)
		list_locks(repo);
}

void lw__listing_format_done(struct lw_repo *repo, int err, const char *msg)
{
	struct lw__listing *l = &repo->listing;

	if (!err) {
		list_locks(repo);
		return;
	}
	l->err = err;
	snprintf(l->msg, sizeof(l->msg), "%s", msg);
	deliver(repo);
}

static void list_locks(struct lw_repo *repo)
{
	struct lw__listing *l = &repo->listing;
	struct lw__breq *req;

	req = lw__breq_new(repo->backend, LW__BOP_LIST, NULL, NULL, 0,
			   op_deadline(repo), on_list, lw_repo_ref(repo));
	if (!req) {
		lw_repo_unref(repo);
		l->err = -ENOMEM;
		snprintf(l->msg, sizeof(l->msg), "out of memory");
		deliver(repo);
		return;
	}
	req->view = true;
	req->rebase = l->rebase;
	l->rebase = false;
	l->req = req;
	lw__breq_start(req);
}

void lw__listing_request(struct lw_repo *repo, struct lw__list_waiter *w)
{
	struct lw__listing *l = &repo->listing;

	lw__list_add_tail(&l->next, &w->link);
	if (!l->running)
		start(repo);
}

void lw__listing_join(struct lw_repo *repo, struct lw__list_waiter *w)
{
	struct lw__listing *l = &repo->listing;

	if (l->running)
		lw__list_add_tail(&l->now, &w->link);
	else
		lw__listing_request(repo, w);
}

void lw__listing_cancel(struct lw_repo *repo, struct lw__list_waiter *w)
{
	lw__list_del(&w->link);
}

const struct lw__entry *lw__listing_remove_stale(struct lw_repo *repo)
{
	struct lw__listing *l = &repo->listing;

	/* once per listing: its stale entries were counted by classify */
	if (l->stale && l->stale_removed_gen != l->class_gen) {
		l->stale_removed_gen = l->class_gen;
		for (size_t i = 0; i < l->map.cap; i++) {
			struct lw__entry *e = l->map.slots[i];

			if (e && e->seen == l->gen && e->stale && e->state == LW__ENTRY_RECORD)
				remove_stale(repo, e);
		}
	}
	return l->stale;
}

bool lw__listing_has(struct lw_repo *repo, const struct lw__id *id)
{
	const struct lw__entry *e = lw__idmap_get(&repo->listing.map, id);

	return e && e->seen == repo->listing.gen;
}

/* Whether E is one of the asking lock's own files MINE (the current one,
 * the old one, one it may have written), which the listing knows as ours. */
static bool of(const struct lw__entry *e, const struct lw__id *const *mine, size_t nmine)
{
	if (e->state != LW__ENTRY_OWN)
		return false;
	for (size_t i = 0; i < nmine; i++)
		if (lw__id_eq(mine[i], &e->id))
			return true;
	return false;
}

const struct lw__entry *lw__listing_conflict(struct lw_repo *repo,
					     const struct lw__id *const *mine, size_t nmine,
					     bool exclusive)
{
	struct lw__listing *l = &repo->listing;
	size_t n = exclusive ? l->n_blocks_all : l->n_blocks_shared;

	/* the counts include the asking lock's files: take them out, O(1)
	 * per file */
	for (size_t i = 0; i < nmine; i++) {
		const struct lw__entry *e = lw__idmap_get(&l->map, mine[i]);
		bool dup = false;

		for (size_t j = 0; j < i; j++)
			dup |= lw__id_eq(mine[j], mine[i]);
		if (dup || !e || e->state != LW__ENTRY_OWN || e->seen != l->gen ||
		    e->blocks == LW__BLOCKS_NONE)
			continue;
		if (exclusive || e->blocks == LW__BLOCKS_ALL)
			n--;
	}
	if (n == 0)
		return NULL;
	/* rare: find which one, for the message */
	for (size_t i = 0; i < l->map.cap; i++) {
		const struct lw__entry *e = l->map.slots[i];

		if (!e || of(e, mine, nmine) || e->seen != l->gen)
			continue;
		if (e->blocks == LW__BLOCKS_ALL ||
		    (exclusive && e->blocks == LW__BLOCKS_SHARED))
			return e;
	}
	return NULL;
}

char *lw__entry_describe(const struct lw__entry *e, char *buf, size_t size)
{
	char hex[LW_ID_HEX + 1];

	lw__id_hex(&e->id, hex);
	switch (e->state) {
	case LW__ENTRY_RECORD: {
		char desc[400];

		return lw__sfmt(buf, size, "%s (%.12s)",
				lw__record_describe(e->rec, lw__now_real(), desc, sizeof(desc)),
				hex);
	}
	case LW__ENTRY_OWN:
		return lw__sfmt(buf, size, "%s lock %.12s of this process",
				e->own->exclusive ? "exclusive" : "shared", hex);
	case LW__ENTRY_FOREIGN:
		if (e->ftype != LW__FTYPE_FILE)
			return lw__sfmt(buf, size, "%.12s in locks/, %s", hex, e->why);
		return lw__sfmt(buf, size, "%s lock file %.12s (%s)",
				e->invalid ? "invalid" : "foreign", hex, e->why);
	default:
		return lw__sfmt(buf, size, "lock file %.12s", hex);
	}
}

const struct lw__own *lw__listing_owner(struct lw_repo *repo, const struct lw__id *id)
{
	const struct lw__entry *e = lw__idmap_get(&repo->listing.map, id);

	return e && e->state == LW__ENTRY_OWN ? e->own : NULL;
}

int lw__listing_add_own(struct lw_repo *repo, const struct lw__id *id,
			const struct lw__own *own)
{
	struct lw__listing *l = &repo->listing;
	struct lw__entry *e = entry_get(l, id);

	if (!e)
		return -ENOMEM;
	account(l, e, -1);
	set_state(e, LW__ENTRY_OWN);
	e->own = own;
	e->blocks = own->exclusive ? LW__BLOCKS_ALL : LW__BLOCKS_SHARED;
	account(l, e, 1);
	return 0;
}

void lw__listing_forget(struct lw_repo *repo, const struct lw__id *id)
{
	struct lw__listing *l = &repo->listing;
	struct lw__entry *e = lw__idmap_get(&l->map, id);
	struct lw__id *copy;

	if (!e || e->state != LW__ENTRY_OWN)
		return;
	account(l, e, -1);
	entry_free(lw__idmap_del(&l->map, id));
	if (!l->running || !(copy = malloc(sizeof(*copy))))
		return;
	*copy = *id;
	if (lw__idmap_put(&l->forgotten, copy) < 0)
		free(copy);
}

void lw__listing_fini(struct lw_repo *repo)
{
	struct lw__listing *l = &repo->listing;

	for (size_t i = 0; i < l->map.cap; i++)
		if (l->map.slots[i])
			entry_free(l->map.slots[i]);
	lw__idmap_fini(&l->map);
	forget_forgotten(l);
	lw__idmap_fini(&l->forgotten);
	free(l->unread);
	l->unread = NULL;
}
