/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The loop's HTTP client: one libcurl multi handle driven through the multi
 * socket API.  curl's sockets are engine watches (POLL_ADD SQEs on
 * io_uring, epoll otherwise) and its one timer is a timer of the engine's
 * heap, so HTTP waits in the same single wait as every lock deadline.
 *
 * libcurl 7.88 refuses calls from inside its own callbacks
 * (CURLM_RECURSIVE_API_CALL), so its callbacks only note what curl wants
 * (a watch, a timer instant, bytes of a body).  curl is driven from engine
 * callbacks, and requests complete there, after curl has returned; a
 * timeout of 0 becomes a heap timer due now, which fires at the next turn.
 *
 * Retries: an answer of 5xx, 429 or 408, a reset and a timeout may be
 * transient; such an attempt is retried with backoff while the request's
 * deadline leaves room, a few times, so that a short outage costs nothing
 * while a long one is reported to the lock protocol, which has its own
 * retry policy.  Refused connections and other answers are final.
 */
#include "config.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http/http.h"

#define ATTEMPTS_MAX 5
#define BACKOFF_FIRST LW_MSEC(100)
#define BACKOFF_MAX LW_SEC(2)
/* One attempt may take the whole time left, but no more than this: a
 * connection that went silent is given up and retried on a fresh one. */
#define ATTEMPT_TIMEOUT LW_SEC(30)
#define CONNECT_TIMEOUT LW_SEC(10)
/* A body we do not keep (an error page) is read this far, to keep the
 * connection; past it the connection is dropped instead. */
#define DROPPED_MAX (64u << 10)
/* Header sets kept built: the backends ask for a few (a create's
 * If-None-Match, a listing's Accept or Depth), the same ones again and
 * again. */
#define HEADER_SETS 8

/* The headers of requests that ask for the same ones, built once: an
 * slist built and freed per request was three allocations and frees. */
struct header_set {
	bool upload;
	char *accept, *type, *extra; /* copies; NULL: none */
	struct curl_slist *list;
};

struct sock {
	struct lw__watch watch;
	struct lw__http *http;
};

struct lw__http {
	CURLM *multi;
	struct lw__engine *engine;
	const struct lw__log *log;
	struct lw__timer timer; /* curl's */
	struct sock **socks;    /* by descriptor */
	size_t nsocks;
	unsigned connections;   /* the pools' caps added up */
	unsigned nsettled;      /* settled requests under way, beyond them */
	/* Connections are descriptors of the loop's budget (engine.h): the
	 * client holds FD_HELD of them, at most half the budget, and curl
	 * may open no more connections than that; requests run at most
	 * that many at once (ACTIVE), the pools that wait for a place taking
	 * turns (WAITING). */
	struct lw__fd_waiter fdw;
	unsigned fd_held;
	unsigned nopen;         /* sockets curl has open */
	unsigned active;
	struct lw__list waiting;
	uint64_t rng;
	struct header_set header_sets[HEADER_SETS];
	unsigned nheader_sets;
	/* Easy handles of finished attempts, reset, for the next ones: making
	 * and freeing one per attempt took 8% of the loop's CPU at 10,000
	 * dav: locks, the reset takes 3%.  No more than CONNECTIONS are kept,
	 * as many as ever run at once. */
	CURL **spare;
	unsigned nspare;
	unsigned spare_cap;     /* SPARE's size */
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_res;
static pthread_mutex_t fault_mu = PTHREAD_MUTEX_INITIALIZER;
static lw__http_fault_fn fault_fn;
static void *fault_userdata;

static void global_init(void)
{
	global_res = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ------------------------------------------------------- driving curl */

static void attempt_done(struct lw__http_req *r, CURLcode cc);

static void drive(struct lw__http *h, curl_socket_t fd, int mask)
{
	CURLMcode mc;
	CURLMsg *m;
	int n;

	mc = curl_multi_socket_action(h->multi, fd, mask, &n);
	if (mc != CURLM_OK)
		lw__warn(h->log, "libcurl: %s", curl_multi_strerror(mc));
	while ((m = curl_multi_info_read(h->multi, &n))) {
		CURLcode cc = m->data.result;
		char *priv = NULL;

		if (m->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
		attempt_done((struct lw__http_req *)(void *)priv, cc);
	}
}

static void on_ready(struct lw__watch *w, unsigned revents)
{
	struct sock *s = LW_CONTAINER_OF(w, struct sock, watch);

	drive(s->http, w->fd, (revents & LW__IN ? CURL_CSELECT_IN : 0) |
				      (revents & LW__OUT ? CURL_CSELECT_OUT : 0) |
				      (revents & LW__ERR ? CURL_CSELECT_ERR : 0));
}

static void on_curl_timer(struct lw__timer *t)
{
	drive(LW_CONTAINER_OF(t, struct lw__http, timer), CURL_SOCKET_TIMEOUT, 0);
}

static void sock_drop(struct lw__http *h, curl_socket_t fd)
{
	struct sock *s = h->socks[fd];

	lw__watch_stop(h->engine, &s->watch);
	h->socks[fd] = NULL;
	free(s);
}

/* curl's socket callback: only engine calls, never curl's. */
static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp,
		     void *socketp)
{
	struct lw__http *h = userp;
	unsigned events = (what & CURL_POLL_IN ? LW__IN : 0) |
			  (what & CURL_POLL_OUT ? LW__OUT : 0);
	struct sock *s;

	if (fd < 0)
		return -1;
	s = (size_t)fd < h->nsocks ? h->socks[fd] : NULL;
	if (what == CURL_POLL_REMOVE) {
		/* before curl closes it: a pending poll would keep it open */
		if (s)
			sock_drop(h, fd);
		return 0;
	}
	if (s)
		return lw__watch_modify(h->engine, &s->watch, events) < 0 ? -1 : 0;
	if ((size_t)fd >= h->nsocks) {
		size_t n = LW_MAX((size_t)fd + 1, 2 * h->nsocks);
		struct sock **v = realloc(h->socks, n * sizeof(*v));

		if (!v)
			return -1;
		memset(v + h->nsocks, 0, (n - h->nsocks) * sizeof(*v));
		h->socks = v;
		h->nsocks = n;
	}
	s = calloc(1, sizeof(*s));
	if (!s)
		return -1;
	s->http = h;
	if (lw__watch_start(h->engine, &s->watch, fd, events, on_ready) < 0) {
		free(s);
		return -1;
	}
	h->socks[fd] = s;
	return 0;
}

/* curl's timer callback: a heap timer; 0 means at the next turn. */
static int on_timer(CURLM *multi, long timeout_ms, void *userp)
{
	struct lw__http *h = userp;

	if (timeout_ms < 0)
		lw__timer_stop(h->engine, &h->timer);
	else
		lw__timer_start(h->engine, &h->timer, lw__now_boot() + LW_MSEC(timeout_ms));
	return 0;
}

/* A request's headers (NULL: out of memory): no 100-continue round trip
 * for a record of a few hundred bytes, a body is bytes unless said
 * otherwise. */
static struct curl_slist *headers_new(bool upload, const char *accept, const char *type,
				      const char *extra)
{
	struct curl_slist *hdrs = curl_slist_append(NULL, "Expect:"), *next = hdrs;
	char line[128];

	if (next && upload) {
		snprintf(line, sizeof(line), "Content-Type: %s",
			 type ? type : "application/octet-stream");
		next = curl_slist_append(hdrs, line);
	}
	if (next && accept) {
		snprintf(line, sizeof(line), "Accept: %s", accept);
		next = curl_slist_append(hdrs, line);
	}
	if (next && extra)
		next = curl_slist_append(hdrs, extra);
	if (!next) {
		curl_slist_free_all(hdrs);
		return NULL;
	}
	return hdrs;
}

static bool same(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

/* R's headers: a set kept built, else its own (R->headers, freed with the
 * attempt) once HEADER_SETS are taken; NULL: out of memory. */
static struct curl_slist *headers_of(struct lw__http *h, struct lw__http_req *r, bool upload)
{
	struct header_set *hs;

	for (unsigned i = 0; i < h->nheader_sets; i++) {
		hs = &h->header_sets[i];
		if (hs->upload == upload && same(hs->accept, r->accept) &&
		    same(hs->type, r->content_type) && same(hs->extra, r->header))
			return hs->list;
	}
	if (h->nheader_sets == HEADER_SETS)
		return r->headers = headers_new(upload, r->accept, r->content_type, r->header);
	hs = &h->header_sets[h->nheader_sets];
	*hs = (struct header_set){ .upload = upload, .accept = lw__strdup0(r->accept),
				   .type = lw__strdup0(r->content_type),
				   .extra = lw__strdup0(r->header) };
	hs->list = headers_new(upload, r->accept, r->content_type, r->header);
	if (!hs->list || (r->accept && !hs->accept) || (r->content_type && !hs->type) ||
	    (r->header && !hs->extra)) {
		curl_slist_free_all(hs->list);
		free(hs->accept);
		free(hs->type);
		free(hs->extra);
		return NULL;
	}
	h->nheader_sets++;
	return hs->list;
}

static void on_fd_granted(struct lw__fd_waiter *w);

int lw__http_get(struct lw__http **hp, struct lw__engine *e,
		 const struct lw__log *log)
{
	struct lw__http *h;

	if (*hp)
		return 0;
	pthread_once(&global_once, global_init);
	if (global_res != CURLE_OK)
		return -ENOMEM;
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->multi = curl_multi_init();
	if (!h->multi || lw__engine_reserve(e, 1) < 0) {
		if (h->multi)
			curl_multi_cleanup(h->multi);
		free(h);
		return -ENOMEM;
	}
	h->engine = e;
	h->log = log;
	h->rng = (uint64_t)lw__now_boot() | 1;
	lw__timer_init(&h->timer, on_curl_timer);
	lw__fd_waiter_init(&h->fdw, on_fd_granted);
	lw__list_init(&h->waiting);
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, on_timer);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
	*hp = h;
	return 0;
}

void lw__http_free(struct lw__http *h)
{
	if (!h)
		return;
	while (h->nspare)
		curl_easy_cleanup(h->spare[--h->nspare]);
	free(h->spare);
	/* the watches go first: curl closes its sockets in the cleanup */
	for (size_t fd = 0; fd < h->nsocks; fd++)
		if (h->socks[fd])
			sock_drop(h, (curl_socket_t)fd);
	curl_multi_cleanup(h->multi);
	lw__fd_cancel(h->engine, &h->fdw);
	while (h->fd_held) {
		h->fd_held--;
		lw__fd_give(h->engine);
	}
	lw__timer_stop(h->engine, &h->timer);
	lw__engine_reserve(h->engine, -1);
	while (h->nheader_sets) {
		struct header_set *hs = &h->header_sets[--h->nheader_sets];

		curl_slist_free_all(hs->list);
		free(hs->accept);
		free(hs->type);
		free(hs->extra);
	}
	free(h->socks);
	free(h);
}

void lw__http_fault_set(lw__http_fault_fn fn, void *userdata)
{
	pthread_mutex_lock(&fault_mu);
	fault_fn = fn;
	fault_userdata = userdata;
	pthread_mutex_unlock(&fault_mu);
}

/* The fault hook's connection for R, as curl takes it ("::HOST:PORT":
 * any host and port of the URL), or NULL. */
static struct curl_slist *fault_connect_to(const struct lw__http_req *r)
{
	struct curl_slist *to = NULL;
	const char *where = NULL;
	char entry[300];

	pthread_mutex_lock(&fault_mu);
	if (fault_fn)
		where = fault_fn(r, fault_userdata);
	if (where) {
		snprintf(entry, sizeof(entry), "::%s", where);
		to = curl_slist_append(NULL, entry);
	}
	pthread_mutex_unlock(&fault_mu);
	return to;
}

/* A reset handle of an earlier attempt, or a new one. */
static CURL *easy_get(struct lw__http *h)
{
	return h->nspare ? h->spare[--h->nspare] : curl_easy_init();
}

/* Keeps E for a later attempt while there is room, else frees it.  The
 * reset forgets every option (this attempt's URL, headers, body, private
 * pointer, error buffer, credentials, CONNECT_TO) and the attempt's
 * answer and auth state; connections stay in the multi handle's cache. */
static void easy_put(struct lw__http *h, CURL *e)
{
	if (h->nspare == h->spare_cap && h->spare_cap < h->connections) {
		CURL **v = realloc(h->spare, h->connections * sizeof(*v));

		if (v) {
			h->spare = v;
			h->spare_cap = h->connections;
		}
	}
	if (h->nspare == LW_MIN(h->spare_cap, h->connections)) {
		curl_easy_cleanup(e);
		return;
	}
	curl_easy_reset(e);
	h->spare[h->nspare++] = e;
}

/* Frees the attempt's handle and what it uses; out of curl already. */
static void easy_free(struct lw__http_req *r)
{
	easy_put(r->pool->http, r->easy);
	r->easy = NULL;
	curl_slist_free_all(r->headers);
	r->headers = NULL;
	curl_slist_free_all(r->connect_to);
	r->connect_to = NULL;
}

/* ---------------------------------------------------------------- pools */

static void begin(struct lw__http_req *r);

/* Starts waiting requests while the client has room, a request of each
 * waiting pool in turn.  A request whose deadline passed in the queue
 * ends without taking a place, so one call may go through a thousand of
 * them when a stalled server's locks fall due together: it lets the
 * deadlines that fall due meanwhile fire (measured: one such call held
 * them up by 1.2 ms). */
static void kick(struct lw__http *h)
{
	while (h->active < h->fd_held && !lw__list_empty(&h->waiting)) {
		struct lw__http_pool *p = LW_CONTAINER_OF(h->waiting.next,
							  struct lw__http_pool, waiting);
		struct lw__http_req *r;

		lw__list_del(&p->waiting);
		if (lw__list_empty(&p->queue) || p->active >= p->max_active)
			continue;
		r = LW_CONTAINER_OF(p->queue.next, struct lw__http_req, link);
		lw__list_del(&r->link);
		lw__timer_stop(h->engine, &r->timer);
		begin(r);
		if (!lw__list_empty(&p->queue) && p->active < p->max_active)
			lw__list_add_tail(&h->waiting, &p->waiting);
		lw__engine_urgent(h->engine);
	}
}

/* P may have room: it joins the client's line, which moves on. */
static void dispatch(struct lw__http_pool *p)
{
	if (!lw__list_empty(&p->queue) && p->active < p->max_active &&
	    !lw__list_linked(&p->waiting))
		lw__list_add_tail(&p->http->waiting, &p->waiting);
	kick(p->http);
}

/*
 * Connections curl may have, open and idle: the pools' caps added up, as
 * far as the descriptor budget lets (half of it, the rest is for file
 * operations), and no more than the client holds of it.  The pools keep
 * within their caps by running no more requests than that, but a
 * transfer cancelled mid-way leaves its connection to be closed a little
 * later; the total bound makes curl wait for that instead of opening one
 * more meanwhile.
 */
static void apply_budget(struct lw__http *h)
{
	unsigned want = LW_MIN(h->connections + h->nsettled,
			       LW_MAX(lw__fd_limit(h->engine) / 2, 1u));
	long n;

	while (h->fd_held > want) {
		h->fd_held--;
		lw__fd_give(h->engine);
	}
	if (h->fd_held == want)
		lw__fd_cancel(h->engine, &h->fdw);
	while (h->fd_held < want && lw__fd_take(h->engine, &h->fdw))
		h->fd_held++;
	while (h->nspare > h->connections)
		curl_easy_cleanup(h->spare[--h->nspare]);
	n = (long)LW_MAX(h->fd_held, 1u);
	curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS, n);
	curl_multi_setopt(h->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, n);
	kick(h);
}

/* The kernel refused a socket (ERR): the client keeps to the connections
 * it has open (one at least), until the loop frees a descriptor
 * (engine.h). */
static void starve(struct lw__http *h, int err)
{
	long n;

	if (!h->fd_held)
		return;
	h->fd_held--;
	lw__fd_starved(h->engine, &h->fdw, err);
	while (h->fd_held > LW_MAX(h->nopen, 1u)) {
		h->fd_held--;
		lw__fd_give(h->engine);
	}
	n = (long)LW_MAX(h->fd_held, 1u);
	curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS, n);
	curl_multi_setopt(h->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, n);
}

static void on_fd_granted(struct lw__fd_waiter *w)
{
	struct lw__http *h = LW_CONTAINER_OF(w, struct lw__http, fdw);

	h->fd_held++;
	apply_budget(h);
}

void lw__http_budget(struct lw__http *h)
{
	if (h)
		apply_budget(h);
}

static void set_connections(struct lw__http *h, int delta)
{
	h->connections = (unsigned)((int)h->connections + delta);
	apply_budget(h);
}

void lw__http_pool_init(struct lw__http_pool *p, struct lw__http *h)
{
	memset(p, 0, sizeof(*p));
	p->http = h;
	p->max_active = LW__HTTP_DEFAULT_CONNECTIONS;
	lw__list_init(&p->queue);
	lw__list_init(&p->running);
	lw__list_init(&p->waiting);
	set_connections(h, (int)p->max_active);
}

void lw__http_pool_set_max(struct lw__http_pool *p, unsigned max)
{
	if (!max)
		max = LW__HTTP_DEFAULT_CONNECTIONS;
	set_connections(p->http, (int)max - (int)p->max_active);
	p->max_active = max;
	dispatch(p);
}

static void unreserve(struct lw__http_req *r)
{
	if (r->reserved)
		lw__engine_reserve(r->pool->http->engine, -1);
	r->reserved = false;
}

static void drop_all(struct lw__http_pool *p, struct lw__list *list)
{
	struct lw__http *h = p->http;

	while (!lw__list_empty(list)) {
		struct lw__http_req *r = LW_CONTAINER_OF(list->next, struct lw__http_req, link);

		lw__list_del(&r->link);
		lw__timer_stop(h->engine, &r->timer);
		if (r->easy) {
			curl_multi_remove_handle(h->multi, r->easy);
			easy_free(r);
			h->active--;
		}
		unreserve(r);
		r->state = LW__HTTP_DONE;
	}
}

void lw__http_pool_fini(struct lw__http_pool *p)
{
	if (!p->http)
		return;
	lw__list_del(&p->waiting);
	drop_all(p, &p->queue);
	drop_all(p, &p->running);
	set_connections(p->http, -(int)p->max_active);
	p->http = NULL;
}

/* ------------------------------------------------------------ requests */

static void complete(struct lw__http_req *r)
{
	r->state = LW__HTTP_DONE;
	unreserve(r);
	if (r->resp)
		r->resp[r->resp_len] = '\0';
	r->done(r);
}

static void set_result(struct lw__http_req *r, int res, const char *fmt, ...)
	LW_PRINTF(3, 4);

static void set_result(struct lw__http_req *r, int res, const char *fmt, ...)
{
	va_list ap;

	r->res = res;
	va_start(ap, fmt);
	vsnprintf(r->err, sizeof(r->err), fmt, ap);
	va_end(ap);
}

static void finish_deferred(struct lw__defer *d)
{
	complete(LW_CONTAINER_OF(d, struct lw__http_req, defer));
}

/* Completes R at the next turn, with the result already set. */
static void finish_later(struct lw__http_req *r)
{
	r->state = LW__HTTP_FINISHING;
	lw__defer(r->pool->http->engine, &r->defer, finish_deferred);
}

static int64_t jitter(struct lw__http *h, int64_t d)
{
	/* xorshift: up to a quarter more, so that requests that failed
	 * together do not all come back together */
	h->rng ^= h->rng << 13;
	h->rng ^= h->rng >> 7;
	h->rng ^= h->rng << 17;
	return d + (int64_t)(h->rng % (uint64_t)(d / 4 + 1));
}

/* Appends WANT bytes of DATA to the body kept. */
static bool keep(struct lw__http_req *r, const char *data, size_t want)
{
	if (r->resp_len + want + 1 > r->resp_cap) {
		size_t cap = LW_MAX(r->resp_cap, (size_t)4096);
		char *p;

		while (cap < r->resp_len + want + 1)
			cap *= 2;
		cap = LW_MIN(cap, LW_MAX(r->max_body, r->max_err_body) + 1);
		p = realloc(r->resp, cap);
		if (!p) {
			r->res = -ENOMEM;
			return false;
		}
		r->resp = p;
		r->resp_cap = cap;
	}
	memcpy(r->resp + r->resp_len, data, want);
	r->resp_len += want;
	return true;
}

/* Keeps up to MAX_BODY bytes of a 2xx body, and the first MAX_ERR_BODY of
 * another; reads an unwanted body on, so that the connection stays usable,
 * but only so far. */
static size_t on_data(char *data, size_t size, size_t n, void *userp)
{
	struct lw__http_req *r = userp;
	size_t len = size * n, want, max;
	long status = 0;

	curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
	max = status >= 200 && status <= 299 ? r->max_body : 0;
	if (r->on_body && status >= 200 && status <= 299)
		return r->on_body(r, data, len) ? len : 0;
	if (max == 0) {
		want = LW_MIN(len, r->max_err_body - LW_MIN(r->max_err_body, r->resp_len));
		if (want && !keep(r, data, want))
			return 0;
		r->dropped += len - want;
		return r->dropped > DROPPED_MAX ? 0 : len;
	}
	want = LW_MIN(len, max - r->resp_len);
	if (want < len)
		r->cut = true;
	if (r->cut && !r->cut_ok)
		return 0;
	if (!keep(r, data, want))
		return 0;
	return r->cut ? 0 : len;
}

/* curl's socket(), to see why it failed: EMFILE and ENFILE are not the
 * server's fault but back-pressure (attempt_done). */
static curl_socket_t open_socket(void *userp, curlsocktype purpose,
				 struct curl_sockaddr *a)
{
	struct lw__http_req *r = userp;
	curl_socket_t fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);

	if (fd == CURL_SOCKET_BAD)
		r->sock_errno = errno;
	else
		r->pool->http->nopen++;
	return fd;
}

/* A connection's socket outlives the request that opened it. */
static int close_socket(void *userp, curl_socket_t fd)
{
	struct lw__http *h = userp;

	h->nopen--;
	return close(fd);
}

static CURL *make_easy(struct lw__http_req *r, int64_t left)
{
	const struct lw__http_pool *p = r->pool;
	int64_t bound = r->attempt_timeout ? r->attempt_timeout : ATTEMPT_TIMEOUT;
	long timeout = (long)((LW_MIN(lw__add_sat(left, r->grace), bound) + LW_MSEC(1) - 1) /
			      LW_MSEC(1));
	bool upload = r->body || strcmp(r->method, "PUT") == 0 ||
		      strcmp(r->method, "POST") == 0;
	struct curl_slist *hdrs;
	CURL *e;

	if (!r->url)
		return NULL;
	e = easy_get(p->http);
	if (!e)
		return NULL;
	/* timeouts end the attempt by the deadline (and grace), never later
	 * (ceil: a deadline timer of the protocol at the same instant goes
	 * first) */
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
			 LW_MIN(timeout, (long)(CONNECT_TIMEOUT / LW_MSEC(1))));
	curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)r);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->err);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, open_socket);
	curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, r);
	curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, close_socket);
	curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, p->http);
	if (strcmp(r->method, "HEAD") == 0)
		curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
	else if (strcmp(r->method, "GET") != 0 && strcmp(r->method, "POST") != 0)
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r->method);
	if (upload) {
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body ? r->body : "");
	}
	hdrs = headers_of(p->http, r, upload);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
	/* a larger body announced by Content-Length is refused unread */
	if (r->max_body && !r->cut_ok)
		curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)r->max_body);
	if (p->user) {
		/* Never in the URL, where it could reach a log or a message.
		 * Until the server has said which scheme it wants, curl is
		 * offered both and asks first (a 401 round trip); once it has,
		 * Basic goes with the first request. */
		curl_easy_setopt(e, CURLOPT_HTTPAUTH,
				 p->auth ? p->auth : (long)(CURLAUTH_BASIC | CURLAUTH_DIGEST));
		curl_easy_setopt(e, CURLOPT_USERNAME, p->user);
		curl_easy_setopt(e, CURLOPT_PASSWORD, p->password ? p->password : "");
	}
	if (p->ca_file)
		curl_easy_setopt(e, CURLOPT_CAINFO, p->ca_file);
	if (p->insecure) {
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (!hdrs || curl_easy_setopt(e, CURLOPT_URL, r->url) != CURLE_OK) {
		curl_slist_free_all(r->headers);
		r->headers = NULL;
		easy_put(p->http, e);
		return NULL;
	}
	r->connect_to = fault_connect_to(r);
	if (r->connect_to)
		curl_easy_setopt(e, CURLOPT_CONNECT_TO, r->connect_to);
	return e;
}

/* Starts an attempt; the pool has room for it. */
static void begin(struct lw__http_req *r)
{
	struct lw__http_pool *p = r->pool;
	int64_t left = r->deadline - lw__now_boot();
	char dur[32];

	if (left <= 0) {
		set_result(r, -ETIMEDOUT, "no answer by the deadline (waited %s for a "
			   "free connection)", lw__fmt_duration(-left, dur, sizeof(dur)));
		finish_later(r);
		return;
	}
	r->err[0] = '\0';
	r->res = 0;
	r->sock_errno = 0;
	r->resp_len = 0;
	r->cut = false;
	r->dropped = 0;
	r->easy = make_easy(r, left);
	if (!r->easy) {
		set_result(r, -ENOMEM, "out of memory");
		finish_later(r);
		return;
	}
	if (curl_multi_add_handle(p->http->multi, r->easy) != CURLM_OK) {
		easy_free(r);
		set_result(r, -ENOMEM, "cannot start a transfer");
		finish_later(r);
		return;
	}
	if (r->attempts++ == 0)
		r->began = lw__now_boot();
	r->state = LW__HTTP_ACTIVE;
	p->active++;
	p->http->active++;
	lw__list_add_tail(&p->running, &r->link);
}

/* Takes R out of curl; returns whether the attempt may have reached the
 * server (then a create may have landed, a delete may have deleted). */
static bool end_attempt(struct lw__http_req *r)
{
	struct lw__http_pool *p = r->pool;
	curl_off_t pretransfer = 0;
	long status = 0, sent = 0;
	bool reached;

	curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(r->easy, CURLINFO_PRETRANSFER_TIME_T, &pretransfer);
	curl_easy_getinfo(r->easy, CURLINFO_REQUEST_SIZE, &sent);
	r->status = status;
	if (p->user && !p->auth && status != 401) {
		long avail = 0;

		/* the schemes of the 401 that curl answered on its way here */
		curl_easy_getinfo(r->easy, CURLINFO_HTTPAUTH_AVAIL, &avail);
		/* both offered: Digest, as curl itself would choose */
		p->auth = avail & CURLAUTH_DIGEST ? CURLAUTH_DIGEST : avail & CURLAUTH_BASIC;
	}
	curl_multi_remove_handle(p->http->multi, r->easy);
	easy_free(r);
	lw__list_del(&r->link);
	p->http->active--;
	if (r->settled) {
		/* its extra descriptor goes back (apply_budget) */
		r->settled = false;
		p->http->nsettled--;
		apply_budget(p->http);
	} else {
		p->active--;
	}
	reached = status > 0 || pretransfer > 0 || sent > 0;
	r->reached |= reached;
	/* a server that answered is done with the request; one that did not
	 * may still act on it, on this connection or in a worker of its own */
	r->abandoned |= reached && status == 0;
	return reached;
}

/* What curl's result CC means; *TRANSIENT when another try may do better. */
static int transport_result(struct lw__http_req *r, CURLcode cc, bool *transient)
{
	long oserr = 0;

	*transient = false;
	if (cc != CURLE_OK && !r->err[0])
		snprintf(r->err, sizeof(r->err), "%s", curl_easy_strerror(cc));
	lw__sanitize(r->err);
	switch (cc) {
	case CURLE_OK:
		return 0;
	case CURLE_WRITE_ERROR:
		/* we stopped reading: an unwanted body or a cut one */
		if (r->res == -ENOMEM)
			return -ENOMEM;
		if (!r->cut || r->cut_ok)
			return 0;
		/* fall through */
	case CURLE_FILESIZE_EXCEEDED:
		snprintf(r->err, sizeof(r->err), "a body over %zu bytes: refused",
			 r->max_body);
		return -EFBIG;
	case CURLE_OPERATION_TIMEDOUT:
		*transient = true;
		return -ETIMEDOUT;
	case CURLE_COULDNT_CONNECT:
		curl_easy_getinfo(r->easy, CURLINFO_OS_ERRNO, &oserr);
		return oserr > 0 ? -(int)oserr : -ECONNREFUSED;
	case CURLE_COULDNT_RESOLVE_HOST:
		return -EHOSTUNREACH;
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
		*transient = true;
		return -ECONNRESET;
	case CURLE_OUT_OF_MEMORY:
		return -ENOMEM;
	default:
		return -EIO;
	}
}

static void attempt_done(struct lw__http_req *r, CURLcode cc)
{
	struct lw__http_pool *p = r->pool;
	struct lw__http *h = p->http;
	bool transient, reached;
	int res = transport_result(r, cc, &transient);
	int64_t wait, now = lw__now_boot();
	char dur[32];

	reached = end_attempt(r);
	if (res == 0)
		transient = r->status >= 500 || r->status == 429 || r->status == 408;
	lw__dbg(h->log, "%s %s: %ld%s%s (attempt %u)", r->method, r->url, r->status,
		res ? ", " : "", res ? r->err : "", r->attempts);
	if (!reached && lw__fd_exhausted(-r->sock_errno) && now < r->deadline) {
		/* no descriptor for a socket (the application or another loop
		 * holds them): back-pressure, not a failed attempt.  The client
		 * keeps to the connections it has, and the request waits first
		 * in line for one of them. */
		lw__dbg(h->log, "%s %s: no descriptor for a socket (%s)", r->method, r->url,
			r->sock_errno == ENFILE ? "ENFILE" : "EMFILE");
		r->attempts--;
		starve(h, -r->sock_errno);
		r->state = LW__HTTP_QUEUED;
		lw__list_add(&p->queue, &r->link);
		lw__timer_start(h->engine, &r->timer, r->deadline);
		dispatch(p);
		return;
	}
	wait = transient ? jitter(h, r->backoff) : 0;
	if (transient && r->attempts < (r->attempts_max ? r->attempts_max : ATTEMPTS_MAX) &&
	    now + wait < r->deadline) {
		lw__dbg(h->log, "retrying %s %s in %s", r->method, r->url,
			lw__fmt_duration(wait, dur, sizeof(dur)));
		r->earlier_reached |= reached;
		r->backoff = LW_MIN(2 * r->backoff, BACKOFF_MAX);
		r->state = LW__HTTP_BACKOFF;
		lw__list_add_tail(&p->running, &r->link);
		lw__timer_start(h->engine, &r->timer, now + wait);
		dispatch(p);
		return;
	}
	r->res = res;
	/* the pool first: DONE may free the request, even the pool */
	dispatch(p);
	/* At its deadline the owner's own timer is due too (a lock's deadline):
	 * it goes first, and cancels a request it still sees in flight. */
	if (lw__now_boot() >= r->deadline)
		finish_later(r);
	else
		complete(r);
}

static void enqueue(struct lw__http_req *r)
{
	struct lw__http_pool *p = r->pool;

	if (p->active < p->max_active && lw__list_empty(&p->queue) &&
	    p->http->active < p->http->fd_held && lw__list_empty(&p->http->waiting)) {
		begin(r);
		return;
	}
	r->state = LW__HTTP_QUEUED;
	lw__list_add_tail(&p->queue, &r->link);
	lw__timer_start(p->http->engine, &r->timer, r->deadline);
	dispatch(p);
}

static void on_req_timer(struct lw__timer *t)
{
	struct lw__http_req *r = LW_CONTAINER_OF(t, struct lw__http_req, timer);

	lw__list_del(&r->link);
	if (r->state == LW__HTTP_BACKOFF) {
		enqueue(r);
		return;
	}
	/* still waiting for a place at the deadline */
	r->status = 0;
	set_result(r, -ETIMEDOUT, "no free connection by the deadline (at most %u "
		   "requests at once)", r->pool->max_active);
	finish_later(r);
}

/*
 * Whether R's URL, read by libcurl as it will send it, asks for R->path and
 * R->query and nothing else.  The backends build their URLs from a
 * repository path that url.c checked; this is the second lock on the door:
 * a request whose target is not what the backend meant (a '?' that cuts
 * the path short, a ".." that climbs out of locks/) is never sent.
 */
static bool target_ok(const struct lw__http_req *r, char *why, size_t size)
{
	CURLU *u = curl_url();
	char *path = NULL, *query = NULL, *fragment = NULL;
	bool ok;

	if (!r->path) {
		curl_url_cleanup(u);
		return true;
	}
	ok = u && curl_url_set(u, CURLUPART_URL, r->url, 0) == CURLUE_OK &&
	     curl_url_get(u, CURLUPART_PATH, &path, 0) == CURLUE_OK;
	if (ok) {
		curl_url_get(u, CURLUPART_QUERY, &query, 0);
		curl_url_get(u, CURLUPART_FRAGMENT, &fragment, 0);
		ok = strcmp(path, r->path) == 0 && !fragment &&
		     (r->query ? query && strcmp(query, r->query) == 0 : !query);
	}
	snprintf(why, size, "refused to send a request for %s%s%s%s: it is not %s%s%s",
		 path ? path : "an unreadable URL", query ? "?" : "", query ? query : "",
		 fragment ? " with a fragment" : "", r->path, r->query ? "?" : "",
		 r->query ? r->query : "");
	curl_free(path);
	curl_free(query);
	curl_free(fragment);
	curl_url_cleanup(u);
	return ok;
}

void lw__http_start(struct lw__http_req *r)
{
	struct lw__http *h = r->pool->http;
	char why[sizeof(r->err)];

	lw__timer_init(&r->timer, on_req_timer);
	lw__list_init(&r->link);
	r->backoff = BACKOFF_FIRST;
	r->attempts = 0;
	r->reached = r->earlier_reached = r->abandoned = r->settled = false;
	/* a request's timer needs its place in the heap for its whole life */
	r->reserved = lw__engine_reserve(h->engine, 1) == 0;
	if (!r->reserved) {
		set_result(r, -ENOMEM, "out of memory");
		finish_later(r);
		return;
	}
	if (r->url && !target_ok(r, why, sizeof(why))) {
		set_result(r, -EINVAL, "%s", why);
		finish_later(r);
		return;
	}
	enqueue(r);
}

void lw__http_cancel(struct lw__http_req *r)
{
	struct lw__http_pool *p = r->pool;

	switch (r->state) {
	case LW__HTTP_ACTIVE:
		end_attempt(r);
		dispatch(p);
		break;
	case LW__HTTP_QUEUED:
	case LW__HTTP_BACKOFF:
		lw__list_del(&r->link);
		lw__timer_stop(p->http->engine, &r->timer);
		break;
	default:
		return; /* not started, or it has its result */
	}
	r->status = 0;
	set_result(r, -ECANCELED, "cancelled");
	finish_later(r);
}

void lw__http_settle(struct lw__http_req *r)
{
	if (r->state != LW__HTTP_ACTIVE) {
		lw__http_cancel(r);
		return;
	}
	/* no retry after this attempt; it keeps its own bound */
	r->deadline = LW_MIN(r->deadline, lw__now_boot());
	/*
	 * It keeps its connection only to learn whether the server stored its
	 * file, and gives its place in the pool to the requests that wait:
	 * the lock's deletes, above all, must not wait behind it for the
	 * release timeout when only its connection hangs.  A pool may so
	 * hold one connection beyond its cap for each lock that ended with
	 * its create under way (capping those at the pool's cap left every
	 * file of test-bench http_stall behind); the client takes a
	 * descriptor more for each from the loop's budget.
	 */
	if (!r->settled) {
		r->settled = true;
		r->pool->active--;
		r->pool->http->nsettled++;
		apply_budget(r->pool->http);
		dispatch(r->pool);
	}
}

void lw__http_req_fini(struct lw__http_req *r)
{
	free(r->url);
	free(r->resp);
	r->url = NULL;
	r->resp = NULL;
}
