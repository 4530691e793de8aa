/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Which format a repository's lock files have, settled before its first
 * listing (DESIGN.md, "restic repositories").  A repository with restic's
 * layout, a config file and a keys/ folder, is restic's: its locks are
 * restic's sealed JSON, so that restic and lockwatch see each other, and
 * that needs the repository's master key, which only a password opens.
 *
 * scrypt costs restic's 0.5 s and 60 MiB by design, so it never runs on the
 * loop thread: the loop reads config and the key files, a worker thread
 * gets the password (a command may take its time too) and derives, at most
 * KDF_AT_ONCE at a time in the process, and posts the result back.  The
 * master key is kept in a process-wide cache by repository and password:
 * a thousand lw_repo objects of one repository derive once.
 */
#include "config.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/protocol.h"
#include "format/restic-key.h"
#include "util/sha256.h"

/* Key files tried, as restic tries each until one opens. */
#define MAX_KEYS 20
/* Derivations at once in the process: each may take up to 1 GiB. */
#define KDF_AT_ONCE 2
/* The longest password taken from any source. */
#define PASSWORD_MAX 4096

extern char **environ;

/* ------------------------------------------------------------ setters */

static int set_format(struct lw_repo *repo, void (*fn)(struct lw__format *, const void *),
		      const void *arg)
{
	pthread_mutex_lock(&repo->mu);
	fn(&repo->format, arg);
	repo->format.gen++;
	pthread_mutex_unlock(&repo->mu);
	return 0;
}

static void apply_want(struct lw__format *f, const void *arg)
{
	f->want = *(const enum lw_format *)arg;
}

LW_EXPORT int lw_repo_set_format(struct lw_repo *repo, enum lw_format format)
{
	if (!repo || format < LW_FORMAT_AUTO || format > LW_FORMAT_RESTIC)
		return -EINVAL;
	return set_format(repo, apply_want, &format);
}

static void forget_password(struct lw__format *f)
{
	if (f->password)
		OPENSSL_cleanse(f->password, strlen(f->password));
	free(f->password);
	f->password = NULL;
}

static void apply_password(struct lw__format *f, const void *arg)
{
	forget_password(f);
	f->password = (char *)arg;
	f->password_fn = NULL;
}

LW_EXPORT int lw_repo_set_password(struct lw_repo *repo, const char *password)
{
	char *copy;

	if (!repo || !password)
		return -EINVAL;
	copy = strdup(password);
	if (!copy)
		return lw__fail(-ENOMEM, "out of memory");
	return set_format(repo, apply_password, copy);
}

struct password_fn {
	lw_password_fn fn;
	void *data;
};

static void apply_password_fn(struct lw__format *f, const void *arg)
{
	const struct password_fn *p = arg;

	forget_password(f);
	f->password_fn = p->fn;
	f->password_data = p->data;
}

LW_EXPORT int lw_repo_set_password_fn(struct lw_repo *repo, lw_password_fn fn,
				      void *userdata)
{
	struct password_fn p = { fn, userdata };

	if (!repo || !fn)
		return -EINVAL;
	return set_format(repo, apply_password_fn, &p);
}

/* --------------------------------------------------------- key cache */

/* One repository's master key, by its URL and the SHA-256 of the password
 * that opened it; PENDING while a worker derives it. */
struct cached_key {
	struct cached_key *next;
	char *url;
	struct lw__id password;
	struct lw__restic_key *key;
	bool pending;
};

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct cached_key *keys;
	unsigned deriving;
} kdf = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, 0 };

static struct cached_key *cache_find(const char *url, const struct lw__id *pw)
{
	for (struct cached_key *c = kdf.keys; c; c = c->next)
		if (strcmp(c->url, url) == 0 && lw__id_eq(&c->password, pw))
			return c;
	return NULL;
}

/* ------------------------------------------------------- the worker */

struct keyfile_buf {
	uint8_t *buf;
	size_t len;
};

struct lw__probe {
	struct lw_repo *repo;     /* a reference */
	struct lw__call call;     /* the worker's answer */
	struct lw__id *keys;
	size_t nkeys, next;
	struct keyfile_buf files[MAX_KEYS];
	size_t nfiles;
	char *url;
	char *password;           /* the setter's copy, or NULL */
	lw_password_fn password_fn;
	void *password_data;
	bool abandoned;           /* the repository closed meanwhile */
	/* the worker's result */
	struct lw__key_derivation kd; /* tried > 0: a derivation ran */
	const struct lw__restic_key *key;
	int err;
	char msg[300];
};

static void probe_free(struct lw__probe *p)
{
	for (size_t i = 0; i < p->nfiles; i++)
		free(p->files[i].buf);
	if (p->password)
		OPENSSL_cleanse(p->password, strlen(p->password));
	free(p->password);
	free(p->keys);
	free(p->url);
	free(p);
}

static void trim(char *s, size_t *len)
{
	size_t n = *len, start = 0;

	while (n && strchr(" \t\r\n\v\f", s[n - 1]))
		n--;
	while (start < n && strchr(" \t\r\n\v\f", s[start]))
		start++;
	memmove(s, s + start, n - start);
	s[n - start] = '\0';
	*len = n - start;
}

/* Reads at most SIZE - 1 bytes of FD into BUF; the length, or -errno. */
static ssize_t read_all(int fd, char *buf, size_t size)
{
	size_t got = 0;

	while (got < size - 1) {
		ssize_t n = read(fd, buf + got, size - 1 - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	buf[got] = '\0';
	return (ssize_t)got;
}

/* RESTIC_PASSWORD_COMMAND's output, through /bin/sh -c. */
static int run_command(const char *cmd, char *buf, size_t size, char *msg, size_t msgsize)
{
	const char *argv[] = { "/bin/sh", "-c", cmd, NULL };
	posix_spawn_file_actions_t fa;
	int fds[2], st, err;
	ssize_t n;
	pid_t pid;

	if (pipe2(fds, O_CLOEXEC) < 0)
		return -errno;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
	err = posix_spawn(&pid, argv[0], &fa, NULL, (char *const *)argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(fds[1]);
	if (err) {
		close(fds[0]);
		snprintf(msg, msgsize, "cannot run RESTIC_PASSWORD_COMMAND: %s", strerror(err));
		return -err;
	}
	n = read_all(fds[0], buf, size);
	close(fds[0]);
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (n < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		snprintf(msg, msgsize, "RESTIC_PASSWORD_COMMAND failed (%s %d)",
			 WIFEXITED(st) ? "exit" : "signal",
			 WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
		return -ENOKEY;
	}
	return (int)n;
}

static int read_password_file(const char *path, char *buf, size_t size, char *msg,
			      size_t msgsize)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0) {
		snprintf(msg, msgsize, "RESTIC_PASSWORD_FILE %s: %s", path, strerror(errno));
		return -ENOKEY;
	}
	n = read_all(fd, buf, size);
	close(fd);
	if (n < 0) {
		snprintf(msg, msgsize, "RESTIC_PASSWORD_FILE %s: %s", path, strerror((int)-n));
		return -ENOKEY;
	}
	return (int)n;
}

/* The password, as restic takes it after the application's own; its
 * length, or -ENOKEY (P->msg says why) when there is none. */
static int get_password(struct lw__probe *p, char *buf, size_t size)
{
	const char *cmd = getenv("RESTIC_PASSWORD_COMMAND");
	const char *file = getenv("RESTIC_PASSWORD_FILE");
	const char *env = getenv("RESTIC_PASSWORD");
	size_t len;
	int n;

	if (p->password) {
		n = snprintf(buf, size, "%s", p->password);
	} else if (p->password_fn) {
		n = p->password_fn(buf, size, p->password_data);
		if (n < 0 || (size_t)n >= size) {
			snprintf(p->msg, sizeof(p->msg), "the password callback failed: %s",
				 n < 0 ? strerror(-n) : "too long");
			return -ENOKEY;
		}
		buf[n] = '\0';
	} else if (cmd && *cmd && file && *file) {
		snprintf(p->msg, sizeof(p->msg), "RESTIC_PASSWORD_COMMAND and "
			 "RESTIC_PASSWORD_FILE are both set; restic takes one of them");
		return -ENOKEY;
	} else if (cmd && *cmd) {
		n = run_command(cmd, buf, size, p->msg, sizeof(p->msg));
	} else if (file && *file) {
		n = read_password_file(file, buf, size, p->msg, sizeof(p->msg));
	} else if (env && *env) {
		n = snprintf(buf, size, "%s", env);
	} else {
		snprintf(p->msg, sizeof(p->msg), "%s is a restic repository and no password "
			 "was given (RESTIC_PASSWORD, RESTIC_PASSWORD_FILE, "
			 "RESTIC_PASSWORD_COMMAND, --password-file, --password-command): a "
			 "lock restic cannot read protects nothing; --format=lockwatch writes "
			 "lockwatch's own, which restic does not see", p->url);
		return -ENOKEY;
	}
	if (n < 0)
		return n;
	len = LW_MIN((size_t)n, size - 1);
	buf[len] = '\0';
	/* restic trims what a command or a file gives, not the others */
	if (!p->password && !p->password_fn && ((cmd && *cmd) || (file && *file)))
		trim(buf, &len);
	return (int)len;
}

/* Opens one of P's key files with PASSWORD; 0 with *KEY, or -EACCES. */
static int open_keys(struct lw__probe *p, const char *password, size_t len,
		     struct lw__restic_key **key)
{
	char why[200] = "";
	int err = -EACCES;

	for (size_t i = 0; i < p->nfiles && err == -EACCES; i++) {
		struct lw__restic_keyfile *kf = malloc(sizeof(*kf));
		int64_t t0 = lw__now_boot();

		if (!kf)
			return -ENOMEM;
		err = lw__restic_keyfile_parse(p->files[i].buf, p->files[i].len, kf, why,
					       sizeof(why));
		if (err == 0) {
			err = lw__restic_keyfile_open(kf, password, len, key, why, sizeof(why));
			if (!p->kd.tried++)
				p->kd.started = t0;
			p->kd.ended = lw__now_boot();
			p->kd.n = kf->n;
			p->kd.r = kf->r;
			p->kd.p = kf->p;
			p->kd.memory = LW_MAX(p->kd.memory, lw__restic_keyfile_memory(kf));
			lw__info(&p->repo->loop->log, "key derivation for %s: scrypt N=%llu "
				 "r=%llu p=%llu (%llu MiB) in %lld ms: %s", p->url,
				 (unsigned long long)kf->n, (unsigned long long)kf->r,
				 (unsigned long long)kf->p,
				 (unsigned long long)(lw__restic_keyfile_memory(kf) >> 20),
				 (long long)((p->kd.ended - t0) / 1000000),
				 err == 0 ? "opened" : why);
		} else {
			lw__warn(&p->repo->loop->log, "%s: a key file that is not one: %s",
				 p->url, why);
			err = -EACCES;
		}
		free(kf);
	}
	if (err == -EACCES)
		snprintf(p->msg, sizeof(p->msg), "wrong password for restic repository %s: "
			 "it opens none of its %zu key files", p->url, p->nfiles);
	else if (err < 0)
		snprintf(p->msg, sizeof(p->msg), "opening the key of %s: %s", p->url, why);
	return err;
}

static void derive(struct lw__probe *p)
{
	char *password = malloc(PASSWORD_MAX);
	struct lw__restic_key *key = NULL;
	struct cached_key *c;
	struct lw__id pwid;
	int n;

	if (!password) {
		p->err = -ENOMEM;
		snprintf(p->msg, sizeof(p->msg), "out of memory");
		return;
	}
	n = get_password(p, password, PASSWORD_MAX);
	if (n < 0 || lw__sha256(password, (size_t)n, &pwid) < 0) {
		p->err = n < 0 ? n : -EIO;
		goto out;
	}
	pthread_mutex_lock(&kdf.mu);
	while ((c = cache_find(p->url, &pwid)) && c->pending)
		pthread_cond_wait(&kdf.cv, &kdf.mu);
	if (c) {
		p->key = c->key;
		pthread_mutex_unlock(&kdf.mu);
		goto out;
	}
	c = calloc(1, sizeof(*c));
	if (!c || !(c->url = strdup(p->url))) {
		pthread_mutex_unlock(&kdf.mu);
		free(c);
		p->err = -ENOMEM;
		snprintf(p->msg, sizeof(p->msg), "out of memory");
		goto out;
	}
	c->password = pwid;
	c->pending = true;
	c->next = kdf.keys;
	kdf.keys = c;
	while (kdf.deriving >= KDF_AT_ONCE)
		pthread_cond_wait(&kdf.cv, &kdf.mu);
	kdf.deriving++;
	pthread_mutex_unlock(&kdf.mu);

	p->err = open_keys(p, password, (size_t)n, &key);

	pthread_mutex_lock(&kdf.mu);
	kdf.deriving--;
	c->pending = false;
	if (p->err == 0) {
		c->key = key;
		p->key = key;
	} else {
		/* not cached: the password may be set again */
		for (struct cached_key **pp = &kdf.keys; *pp; pp = &(*pp)->next)
			if (*pp == c) {
				*pp = c->next;
				break;
			}
		free(c->url);
		free(c);
	}
	pthread_cond_broadcast(&kdf.cv);
	pthread_mutex_unlock(&kdf.mu);
out:
	OPENSSL_cleanse(password, PASSWORD_MAX);
	free(password);
}

static void settle(struct lw__probe *p);

static void *worker(void *arg)
{
	struct lw__probe *p = arg;
	sigset_t all;

	/* the application's signals are for its own threads */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	derive(p);
	if (lw__post(p->repo->loop, &p->call) < 0) {
		lw_repo_unref(p->repo);
		probe_free(p);
	}
	return NULL;
}

static void on_derived(struct lw__call *call)
{
	settle(LW_CONTAINER_OF(call, struct lw__probe, call));
}

/* --------------------------------------------------------- the probe */

static int64_t op_deadline(struct lw_repo *repo)
{
	int64_t timeout;

	pthread_mutex_lock(&repo->mu);
	timeout = repo->timing->op_timeout;
	pthread_mutex_unlock(&repo->mu);
	return lw__now_boot() + timeout;
}

/* Ends the probe with STATE; tells the listing, unless the repository was
 * closed meanwhile. */
static void settle_with(struct lw__probe *p, enum lw__format_state state, int err)
{
	struct lw_repo *repo = p->repo;
	struct lw__format *f = &repo->format;
	bool abandoned = p->abandoned;

	if (!abandoned && p->kd.tried && repo->loop->key_observer) {
		p->kd.url = p->url;
		p->kd.err = p->err;
		repo->loop->key_observer(repo->loop->key_observer_data, &p->kd);
	}
	if (!abandoned) {
		if (state == LW__FORMAT_RESTIC) {
			f->key = p->key;
			lw__restic_sealer_fini(&f->sealer);
			err = lw__restic_sealer_init(&f->sealer, f->key);
			if (err < 0) {
				state = LW__FORMAT_UNKNOWN; /* tried again later */
				snprintf(p->msg, sizeof(p->msg), "libcrypto cannot use the key "
					 "of %s: %s", p->url, strerror(-err));
			}
		}
		f->probe = NULL;
		f->state = (uint8_t)state;
		f->err = err;
		snprintf(f->msg, sizeof(f->msg), "%s", p->msg);
		if (state == LW__FORMAT_RESTIC)
			lw__info(&repo->loop->log, "%s is a restic repository: its locks "
				 "are restic's", repo->url.display);
		else if (err)
			lw__dbg(&repo->loop->log, "%s: %s", repo->url.display, p->msg);
	}
	probe_free(p);
	if (!abandoned)
		lw__listing_format_done(repo, err, f->msg);
	lw_repo_unref(repo);
}

static void settle(struct lw__probe *p)
{
	if (p->err == 0)
		settle_with(p, LW__FORMAT_RESTIC, 0);
	else if (p->err == -ENOKEY || p->err == -EACCES)
		settle_with(p, LW__FORMAT_REFUSED, p->err);
	else
		settle_with(p, LW__FORMAT_UNKNOWN, p->err); /* tried again later */
}

/* A restic repository after all, or not one. */
static void not_restic(struct lw__probe *p, const char *what)
{
	struct lw_repo *repo = p->repo;
	enum lw_format want;

	pthread_mutex_lock(&repo->mu);
	want = repo->format.want;
	pthread_mutex_unlock(&repo->mu);
	if (want != LW_FORMAT_RESTIC) {
		settle_with(p, LW__FORMAT_NATIVE, 0);
		return;
	}
	snprintf(p->msg, sizeof(p->msg), "%s is not a restic repository (%s), and the "
		 "restic format was asked for", repo->url.display, what);
	settle_with(p, LW__FORMAT_REFUSED, -ENOKEY);
}

static void backend_failed(struct lw__probe *p, struct lw__breq *req, const char *what)
{
	snprintf(p->msg, sizeof(p->msg), "reading %s of %s: %s", what,
		 p->repo->url.display, req->msg[0] ? req->msg : lw_strerror(req->res));
	lw__breq_free(req);
	settle_with(p, LW__FORMAT_UNKNOWN, -LW_EBACKEND);
}

static bool read_next_key(struct lw__probe *p);

static void start_worker(struct lw__probe *p)
{
	pthread_attr_t attr;
	pthread_t t;
	int err;

	p->call.fn = on_derived;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	err = pthread_create(&t, &attr, worker, p);
	pthread_attr_destroy(&attr);
	if (err) {
		snprintf(p->msg, sizeof(p->msg), "cannot start a thread to derive the key: %s",
			 strerror(err));
		settle_with(p, LW__FORMAT_UNKNOWN, -err);
	}
}

static void on_key(struct lw__breq *req)
{
	struct lw__probe *p = req->userdata;

	if (p->abandoned) {
		lw__breq_free(req);
		settle_with(p, LW__FORMAT_UNKNOWN, -ECANCELED);
		return;
	}
	if (req->res == -ENOENT) {
		lw__breq_free(req); /* removed since the listing */
	} else if (req->res < 0) {
		backend_failed(p, req, "a key file");
		return;
	} else {
		p->files[p->nfiles].buf = req->buf;
		p->files[p->nfiles].len = req->buflen;
		p->nfiles++;
		req->buf = NULL;
		lw__breq_free(req);
	}
	if (read_next_key(p))
		return;
	if (p->nfiles == 0) {
		not_restic(p, "no key file");
		return;
	}
	start_worker(p);
}

/* Starts the read of the next key file; false when all were read. */
static bool read_next_key(struct lw__probe *p)
{
	struct lw_repo *repo = p->repo;
	struct lw__breq *req;

	if (p->next >= p->nkeys || p->nfiles >= MAX_KEYS)
		return false;
	req = lw__breq_new(repo->backend, LW__BOP_READ, &p->keys[p->next++], NULL, 0,
			   op_deadline(repo), on_key, p);
	if (!req) {
		snprintf(p->msg, sizeof(p->msg), "out of memory");
		settle_with(p, LW__FORMAT_UNKNOWN, -ENOMEM);
		return true;
	}
	req->file = LW__BFILE_KEYS;
	lw__breq_start(req);
	return true;
}

static void on_keys(struct lw__breq *req)
{
	struct lw__probe *p = req->userdata;

	if (p->abandoned) {
		lw__breq_free(req);
		settle_with(p, LW__FORMAT_UNKNOWN, -ECANCELED);
		return;
	}
	if (req->res == -ENOENT) {
		lw__breq_free(req);
		not_restic(p, "no keys/ folder");
		return;
	}
	if (req->res < 0) {
		backend_failed(p, req, "keys/");
		return;
	}
	p->keys = req->ids;
	p->nkeys = req->nids;
	req->ids = NULL;
	lw__breq_free(req);
	if (!read_next_key(p))
		not_restic(p, "no key file");
}

static void on_config(struct lw__breq *req)
{
	struct lw__probe *p = req->userdata;
	struct lw_repo *repo = p->repo;
	struct lw__breq *next;

	if (p->abandoned) {
		lw__breq_free(req);
		settle_with(p, LW__FORMAT_UNKNOWN, -ECANCELED);
		return;
	}
	if (req->res == -ENOENT) {
		lw__breq_free(req);
		not_restic(p, "no config file");
		return;
	}
	if (req->res < 0) {
		backend_failed(p, req, "config");
		return;
	}
	lw__breq_free(req);
	next = lw__breq_new(repo->backend, LW__BOP_LIST, NULL, NULL, 0,
			    op_deadline(repo), on_keys, p);
	if (!next) {
		snprintf(p->msg, sizeof(p->msg), "out of memory");
		settle_with(p, LW__FORMAT_UNKNOWN, -ENOMEM);
		return;
	}
	next->file = LW__BFILE_KEYS;
	lw__breq_start(next);
}

int lw__format_prepare(struct lw_repo *repo)
{
	struct lw__format *f = &repo->format;
	struct lw__probe *p;
	struct lw__breq *req;
	enum lw_format want;
	unsigned gen;

	pthread_mutex_lock(&repo->mu);
	want = f->want;
	gen = f->gen;
	pthread_mutex_unlock(&repo->mu);
	if (f->state == LW__FORMAT_REFUSED && f->settled_gen != gen)
		f->state = LW__FORMAT_UNKNOWN; /* a password came meanwhile */
	switch (f->state) {
	case LW__FORMAT_NATIVE:
	case LW__FORMAT_RESTIC:
		return 1;
	case LW__FORMAT_REFUSED:
		return f->err;
	case LW__FORMAT_PROBING:
		return 0;
	}
	/* a lease server has no files but locks */
	if (want == LW_FORMAT_LOCKWATCH || (repo->backend->ops->leased && want == LW_FORMAT_AUTO)) {
		f->state = LW__FORMAT_NATIVE;
		return 1;
	}
	p = calloc(1, sizeof(*p));
	if (!p || !(p->url = strdup(repo->url.display))) {
		free(p);
		return -ENOMEM;
	}
	pthread_mutex_lock(&repo->mu);
	p->password = lw__strdup0(f->password);
	p->password_fn = f->password_fn;
	p->password_data = f->password_data;
	pthread_mutex_unlock(&repo->mu);
	if (f->password && !p->password) {
		probe_free(p);
		return -ENOMEM;
	}
	req = lw__breq_new(repo->backend, LW__BOP_READ, NULL, NULL, 0,
			   op_deadline(repo), on_config, p);
	if (!req) {
		probe_free(p);
		return -ENOMEM;
	}
	req->file = LW__BFILE_CONFIG;
	p->repo = lw_repo_ref(repo);
	f->probe = p;
	f->state = LW__FORMAT_PROBING;
	f->settled_gen = gen;
	lw__breq_start(req);
	return 0;
}

void lw__format_fini(struct lw_repo *repo)
{
	struct lw__format *f = &repo->format;

	if (f->probe)
		f->probe->abandoned = true;
	f->probe = NULL;
	lw__restic_sealer_fini(&f->sealer);
	pthread_mutex_lock(&repo->mu);
	forget_password(f);
	pthread_mutex_unlock(&repo->mu);
}

/* ---------------------------------------------------- lock files */

int lw__format_encode(struct lw_repo *repo, const struct lw__record *rec, void *buf,
		      size_t size, struct lw__id *id)
{
	int n, r;

	if (repo->format.state == LW__FORMAT_RESTIC)
		n = lw__restic_sealer_lock_seal(&repo->format.sealer, rec, buf, size);
	else
		n = lw__record_encode(rec, buf, size);
	if (n < 0)
		return n;
	/* named by its content: what rest-server checks, what restic expects */
	r = lw__sha256(buf, (size_t)n, id);
	return r < 0 ? r : n;
}

int lw__format_decode(struct lw_repo *repo, const void *buf, size_t len,
		      struct lw__record **rec, const char **why)
{
	char reason[200];
	int r;

	if (repo->format.state != LW__FORMAT_RESTIC)
		return lw__record_decode(buf, len, rec, why);
	r = lw__restic_sealer_lock_open(&repo->format.sealer, buf, len, rec, reason,
					sizeof(reason));
	if (r == -EBADMSG) {
		/* a lockwatch record, written with --format=lockwatch */
		r = lw__record_decode(buf, len, rec, why);
		if (r == -EBADMSG)
			*why = "not a restic lock of this repository, nor a lockwatch record";
		return r;
	}
	if (r == -LW_EINVALID) {
		lw__dbg(&repo->loop->log, "an invalid restic lock in %s: %s",
			repo->url.display, reason);
		*why = "a restic lock that does not parse";
	}
	return r;
}
