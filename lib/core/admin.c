/* SPDX-License-Identifier: BSD-2-Clause */
/* What `lockwatch list` and `lockwatch unlock` see: every lock file of a
 * repository, described for a person, and the removal of stale ones. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/protocol.h"

/* Lock files removed at once by unlock. */
#define REMOVALS_IN_FLIGHT 32

struct inspect;

struct item {
	struct lw_lock_info info;
	struct lw__id id;
	uint8_t ftype;          /* LW__FTYPE_* */
	char why[96];
	struct lw__record *rec; /* a copy: the listing's may go meanwhile */
	struct inspect *in;
};

struct inspect {
	struct lw__call c;
	struct lw_repo *repo;
	struct lw__list_waiter waiter;
	bool unlock;
	bool all;
	bool done;
	int err;
	char msg[300];
	struct item *items;
	size_t n;
	size_t next;      /* unlock: next item to remove */
	size_t in_flight;
	size_t removed;
};

static struct lw__record *copy_record(const struct lw__record *r)
{
	size_t n = sizeof(*r);
	const char *const *strs[] = { &r->hostname, &r->username, &r->boot_id, &r->purpose };
	struct lw__record *c;
	char *p;

	for (size_t i = 0; i < LW_ARRAY_SIZE(strs); i++)
		n += *strs[i] ? strlen(*strs[i]) + 1 : 0;
	c = malloc(n);
	if (!c)
		return NULL;
	*c = *r;
	p = (char *)(c + 1);
	{
		const char **dst[] = { &c->hostname, &c->username, &c->boot_id, &c->purpose };

		for (size_t i = 0; i < LW_ARRAY_SIZE(strs); i++) {
			if (!*strs[i])
				continue;
			strcpy(p, *strs[i]);
			*dst[i] = p;
			p += strlen(p) + 1;
		}
	}
	return c;
}

static void fill(struct item *it, const struct lw__entry *e, int64_t now_real,
		 int64_t now_boot)
{
	const struct lw__self *self = lw__self();
	struct lw_lock_info *info = &it->info;

	it->id = e->id;
	it->ftype = e->ftype;
	lw__id_hex(&e->id, info->id);
	info->stale = e->stale;
	switch (e->state) {
	case LW__ENTRY_OWN:
		info->own = true;
		info->kind = e->own->exclusive ? LW_KIND_EXCLUSIVE : LW_KIND_SHARED;
		info->time = now_real - (now_boot - e->own->created_at);
		info->stale_timeout = e->own->timing->stale_timeout;
		info->pid = self->pid;
		info->uid = self->uid;
		info->gid = self->gid;
		info->hostname = self->hostname;
		info->username = self->username;
		info->boot_id = self->boot_id;
		info->purpose = e->own->purpose;
		info->tool = "lockwatch";
		break;
	case LW__ENTRY_RECORD:
		it->rec = copy_record(e->rec);
		if (!it->rec) {
			info->kind = LW_KIND_INVALID;
			info->why = "out of memory";
			break;
		}
		info->kind = it->rec->exclusive ? LW_KIND_EXCLUSIVE : LW_KIND_SHARED;
		info->time = it->rec->time;
		info->stale_timeout = it->rec->stale_timeout;
		info->pid = it->rec->pid;
		info->uid = it->rec->uid;
		info->gid = it->rec->gid;
		info->hostname = it->rec->hostname;
		info->username = it->rec->username;
		info->boot_id = it->rec->boot_id;
		info->purpose = it->rec->purpose;
		info->tool = it->rec->restic_written ? "restic" : "lockwatch";
		break;
	case LW__ENTRY_FOREIGN:
		info->kind = e->invalid ? LW_KIND_INVALID : LW_KIND_FOREIGN;
		info->why = e->why;
		/* say what it is: restic's own lock, say, is a foreign lock */
		if (!e->invalid && e->ftype == LW__FTYPE_FILE)
			info->why = lw__sfmt(it->why, sizeof(it->why), "foreign lock file (%s)",
					     e->why);
		break;
	default:
		info->kind = LW_KIND_EMPTY;
		break;
	}
	info->age = info->time ? lw__sub_sat(now_real, info->time) : 0;
}

static int by_time(const void *a, const void *b)
{
	const struct item *x = a, *y = b;

	return (x->info.time > y->info.time) - (x->info.time < y->info.time);
}

static void removal_next(struct inspect *in);

static void on_removed(struct lw__breq *req)
{
	struct item *it = req->userdata;
	struct inspect *in = it->in;

	it->info.err = req->res == -ENOENT ? 0 : req->res;
	if (it->info.err == 0) {
		in->removed++;
		lw__listing_forget(in->repo, &req->id);
	}
	lw__breq_free(req);
	in->in_flight--;
	removal_next(in);
}

static bool doomed(const struct inspect *in, const struct item *it)
{
	if (in->all)
		return true;
	return it->info.stale && (it->info.kind == LW_KIND_SHARED ||
				  it->info.kind == LW_KIND_EXCLUSIVE);
}

static void removal_next(struct inspect *in)
{
	int64_t timeout;

	pthread_mutex_lock(&in->repo->mu);
	timeout = in->repo->timing->op_timeout;
	pthread_mutex_unlock(&in->repo->mu);
	while (in->next < in->n && in->in_flight < REMOVALS_IN_FLIGHT) {
		struct item *it = &in->items[in->next++];
		struct lw__breq *req;

		if (!doomed(in, it))
			continue;
		if (it->ftype == LW__FTYPE_DIR && !in->repo->backend->ops->removes_empty_folders) {
			/* a DELETE of a collection would take what is in it */
			it->info.err = -EISDIR;
			continue;
		}
		req = lw__breq_new(in->repo->backend, LW__BOP_REMOVE, &it->id, NULL, 0,
				   lw__add_sat(lw__now_boot(), timeout), on_removed, it);
		if (!req) {
			it->info.err = -ENOMEM;
			continue;
		}
		in->in_flight++;
		lw__breq_start(req);
	}
	if (in->in_flight == 0 && in->next == in->n)
		lw__loop_signal(in->repo->loop, &in->done);
}

static void on_listing(struct lw__list_waiter *w, int err, const char *msg)
{
	struct inspect *in = LW_CONTAINER_OF(w, struct inspect, waiter);
	struct lw__listing *l = &in->repo->listing;
	int64_t now_real = lw__now_real(), now_boot = lw__now_boot();

	if (err) {
		in->err = err;
		snprintf(in->msg, sizeof(in->msg), "%s", msg);
		lw__loop_signal(in->repo->loop, &in->done);
		return;
	}
	in->items = calloc(l->map.n ? l->map.n : 1, sizeof(*in->items));
	if (!in->items) {
		in->err = -ENOMEM;
		snprintf(in->msg, sizeof(in->msg), "out of memory");
		lw__loop_signal(in->repo->loop, &in->done);
		return;
	}
	for (size_t i = 0; i < l->map.cap; i++) {
		const struct lw__entry *e = l->map.slots[i];

		if (e && e->seen == l->gen) {
			in->items[in->n].in = in;
			fill(&in->items[in->n++], e, now_real, now_boot);
		}
	}
	qsort(in->items, in->n, sizeof(*in->items), by_time);
	if (in->unlock)
		removal_next(in);
	else
		lw__loop_signal(in->repo->loop, &in->done);
}

static void start_on_loop(struct lw__call *c)
{
	struct inspect *in = LW_CONTAINER_OF(c, struct inspect, c);

	in->waiter.fn = on_listing;
	lw__list_init(&in->waiter.link);
	lw__listing_request(in->repo, &in->waiter);
}

static int inspect(struct lw_repo *repo, struct inspect *in, lw_info_fn fn,
		   void *userdata)
{
	int r = 0;

	if (!repo)
		return lw__fail(-EINVAL, "no repository (NULL)");
	if (lw__on_loop_thread(repo->loop))
		return lw__fail(-EDEADLK, "blocking call from a callback of the loop");
	in->c.fn = start_on_loop;
	in->repo = repo;
	r = lw__post(repo->loop, &in->c);
	if (r == 0)
		r = lw__loop_wait(repo->loop, &in->done);
	if (r == 0 && in->err)
		r = lw__fail(in->err, "%s", in->msg);
	for (size_t i = 0; r == 0 && i < in->n; i++)
		if (fn && (!in->unlock || doomed(in, &in->items[i])))
			r = fn(&in->items[i].info, userdata);
	for (size_t i = 0; i < in->n; i++)
		free(in->items[i].rec);
	free(in->items);
	return r;
}

LW_EXPORT int lw_repo_list(struct lw_repo *repo, lw_info_fn fn, void *userdata)
{
	struct inspect in = { 0 };

	return inspect(repo, &in, fn, userdata);
}

LW_EXPORT int lw_repo_unlock(struct lw_repo *repo, unsigned flags, lw_info_fn fn,
			     void *userdata)
{
	struct inspect in = { .unlock = true, .all = flags & LW_UNLOCK_ALL };
	int r = inspect(repo, &in, fn, userdata);

	return r < 0 ? r : (int)in.removed;
}
