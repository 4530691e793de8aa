/* SPDX-License-Identifier: BSD-2-Clause */
#include "config.h"

#include "test.h"
#include <criterion/parameterized.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clitest.h"
#include "runenv.h"
#include "nginx.h"
#include "webdav.h"

#ifndef LOCKWATCH_BIN
#error "LOCKWATCH_BIN must name the built lockwatch"
#endif

static const char *lockwatch_bin(void)
{
	const char *env = getenv("LOCKWATCH_BIN");

	return env && *env ? env : LOCKWATCH_BIN;
}

int64_t clitest_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_BOOTTIME, &ts);
	return (int64_t)ts.tv_sec * LW_NSEC_PER_SEC + ts.tv_nsec;
}

void clitest_sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

char *clitest_path(char *buf, size_t size, const char *tmp, const char *name)
{
	snprintf(buf, size, "%s/%s", tmp, name);
	return buf;
}

/* ------------------------------------------------------------ backends */

static void run_init(struct repo *r)
{
	struct proc p;
	const char *args[] = { "init", NULL };
	struct cli_param prm = { .engine = LW_ENGINE_AUTO };

	cr_assert_eq(clitest_run(&p, r->tmp, r, &prm, args), 0, "lockwatch init failed");
}

static void local_setup(struct repo *r)
{
	snprintf(r->dir, sizeof(r->dir), "%s/repo", r->tmp);
	snprintf(r->url, sizeof(r->url), "%s", r->dir);
	run_init(r);
}

static void local_teardown(struct repo *r)
{
}

/* A local file system that refuses new files: no descriptor is left to the
 * process (deleting needs none, so its files can still go). */
static void local_stall(struct repo *r, pid_t pid)
{
	struct rlimit old, none;

	cr_assert_eq(prlimit(pid, RLIMIT_NOFILE, NULL, &old), 0);
	r->saved[0] = (long)old.rlim_cur;
	none = (struct rlimit){ 0, old.rlim_max };
	cr_assert_eq(prlimit(pid, RLIMIT_NOFILE, &none, NULL), 0);
}

static void local_repair(struct repo *r, pid_t pid)
{
	struct rlimit old;

	if (prlimit(pid, RLIMIT_NOFILE, NULL, &old) < 0)
		return; /* it has ended */
	old.rlim_cur = (rlim_t)r->saved[0];
	prlimit(pid, RLIMIT_NOFILE, &old, NULL);
}

/* dav: nginx keeps the files in a folder of its root */
static void dav_setup(struct repo *r)
{
	r->ng = lwt_nginx_start();
	cr_assert(r->ng, "nginx did not start");
	snprintf(r->dir, sizeof(r->dir), "%s/repo", lwt_nginx_root(r->ng));
	snprintf(r->url, sizeof(r->url), "%s", lwt_nginx_url(r->ng, LWT_DAV, "/repo/"));
	run_init(r);
}

static void dav_teardown(struct repo *r)
{
	lwt_nginx_stop(r->ng);
	r->ng = NULL;
}

/* A server that takes connections and answers nothing. */
static void dav_stall(struct repo *r, pid_t pid)
{
	lwt_nginx_signal(r->ng, SIGSTOP);
}

static void dav_repair(struct repo *r, pid_t pid)
{
	lwt_nginx_signal(r->ng, SIGCONT);
}

/* dav: as WebDAV: the server keeps the files in a folder of its root */
static void webdav_setup(struct repo *r)
{
	r->wd = lwt_webdav_start(r->be->webdav - 1);
	cr_assert(r->wd, "%s did not start", r->be->name);
	snprintf(r->dir, sizeof(r->dir), "%s/repo", lwt_webdav_root(r->wd));
	snprintf(r->url, sizeof(r->url), "%s", lwt_webdav_url(r->wd, "/repo/"));
	run_init(r);
}

static void webdav_teardown(struct repo *r)
{
	lwt_webdav_stop(r->wd);
	r->wd = NULL;
}

static void webdav_stall(struct repo *r, pid_t pid)
{
	lwt_webdav_signal(r->wd, SIGSTOP);
}

static void webdav_repair(struct repo *r, pid_t pid)
{
	lwt_webdav_signal(r->wd, SIGCONT);
}

const struct backend clitest_backends[] = {
	{ "local", local_setup, local_teardown, local_stall, local_repair },
	{ "dav", dav_setup, dav_teardown, dav_stall, dav_repair },
	{ "apache", webdav_setup, webdav_teardown, webdav_stall, webdav_repair,
	  1 + LWT_WEBDAV_APACHE },
	{ "nginx-dav-ext", webdav_setup, webdav_teardown, webdav_stall, webdav_repair,
	  1 + LWT_WEBDAV_NGINX },
	{ "rclone", webdav_setup, webdav_teardown, webdav_stall, webdav_repair,
	  1 + LWT_WEBDAV_RCLONE },
};
const size_t clitest_nbackends = sizeof(clitest_backends) / sizeof(clitest_backends[0]);

void clitest_params_free(struct criterion_test_params *crp)
{
	cr_free(crp->params);
}

enum which { CORE, WEBDAV, ALL };

/* The backends that are WebDAV servers, those that are not, or all, on
 * both engines. */
static struct cli_param *params(size_t *n, enum which which)
{
	static const enum lw_engine engines[] = { LW_ENGINE_URING, LW_ENGINE_EPOLL };
	struct cli_param *p = cr_malloc(clitest_nbackends * 2 * sizeof(*p));

	*n = 0;
	for (size_t b = 0; b < clitest_nbackends; b++) {
		if (which != ALL && !clitest_backends[b].webdav != (which == CORE))
			continue;
		for (size_t e = 0; e < 2; e++) {
			if (lwt_engine_wanted(engines[e]))
				p[(*n)++] = (struct cli_param){ .backend = (int)b,
								.engine = engines[e] };
			else
				lwt_left_out++;
		}
	}
	return p;
}

struct cli_param *clitest_params(size_t *n)
{
	return params(n, CORE);
}

struct cli_param *clitest_webdav_params(size_t *n)
{
	return params(n, WEBDAV);
}

struct cli_param *clitest_all_params(size_t *n)
{
	return params(n, ALL);
}

void clitest_repo(struct repo *r, const struct cli_param *p)
{
	memset(r, 0, sizeof(*r));
	lwt_engine_case(p->engine);
	r->be = &clitest_backends[p->backend];
	snprintf(r->tmp, sizeof(r->tmp), "/tmp/lockwatch-cli-XXXXXX");
	cr_assert_not_null(mkdtemp(r->tmp));
	r->be->setup(r);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

void clitest_repo_free(struct repo *r)
{
	if (r->be)
		r->be->teardown(r);
	nftw(r->tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* ----------------------------------------------------------- processes */

void clitest_start(struct proc *p, const char *tmp, const struct repo *r,
		   const struct cli_param *prm, const char *const *env,
		   const char *const *args)
{
	static unsigned seq;
	const char *argv[64];
	size_t n = 0;

	memset(p, 0, sizeof(*p));
	seq++;
	snprintf(p->out, sizeof(p->out), "%s/out.%u", tmp, seq);
	snprintf(p->err, sizeof(p->err), "%s/err.%u", tmp, seq);
	argv[n++] = lockwatch_bin();
	if (r) {
		argv[n++] = "-r";
		argv[n++] = r->url;
		argv[n++] = "--engine";
		argv[n++] = lw_engine_name(prm->engine);
	}
	while (*args && n < sizeof(argv) / sizeof(argv[0]) - 1)
		argv[n++] = *args++;
	argv[n] = NULL;
	p->started = clitest_now();
	p->pid = fork();
	cr_assert_geq(p->pid, 0);
	if (p->pid == 0) {
		sigset_t none;
		int in = open("/dev/null", O_RDONLY);
		int out = open(p->out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		int err = open(p->err, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		/* its own group, like a job started by a shell */
		setpgid(0, 0);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		for (int sig = 1; sig < NSIG; sig++)
			signal(sig, SIG_DFL);
		dup2(in, 0);
		dup2(out, 1);
		dup2(err, 2);
		for (; env && *env; env++) {
			const char *eq = strchr(*env, '=');

			if (eq) {
				char name[64];

				snprintf(name, sizeof(name), "%.*s", (int)(eq - *env), *env);
				setenv(name, eq + 1, 1);
			} else {
				unsetenv(*env);
			}
		}
		execv(argv[0], (char *const *)argv);
		_exit(99);
	}
	setpgid(p->pid, p->pid);
}

int clitest_wait(struct proc *p, int timeout_ms)
{
	int64_t until = clitest_now() + (int64_t)timeout_ms * 1000000;
	int st;

	for (;;) {
		pid_t r = waitpid(p->pid, &st, WNOHANG);

		if (r == p->pid)
			break;
		if (clitest_now() > until) {
			kill(p->pid, SIGKILL);
			waitpid(p->pid, &st, 0);
			cr_assert_fail("lockwatch (pid %d) still ran after %d ms", (int)p->pid,
				       timeout_ms);
		}
		clitest_sleep_ms(5);
	}
	p->ended = clitest_now();
	p->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	return p->status;
}

int clitest_run(struct proc *p, const char *tmp, const struct repo *r,
		const struct cli_param *prm, const char *const *args)
{
	clitest_start(p, tmp, r, prm, NULL, args);
	return clitest_wait(p, 30000);
}

/* --------------------------------------------------------------- files */

char *clitest_read(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t len = 0;

	if (f) {
		FILE *m = open_memstream(&buf, &len);
		char chunk[4096];
		size_t n;

		while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
			fwrite(chunk, 1, n, m);
		fclose(m);
		fclose(f);
	}
	return buf ? buf : strdup("");
}

void clitest_write(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");

	cr_assert_not_null(f, "%s: %s", path, strerror(errno));
	cr_assert_eq(fwrite(data, 1, len, f), len);
	cr_assert_eq(fclose(f), 0);
}

bool clitest_wait_file(const char *path, int timeout_ms)
{
	int64_t until = clitest_now() + (int64_t)timeout_ms * 1000000;
	struct stat st;

	while (stat(path, &st) < 0 || st.st_size == 0) {
		if (clitest_now() > until)
			return false;
		clitest_sleep_ms(5);
	}
	return true;
}

bool clitest_wait_text(const char *path, const char *needle, int timeout_ms)
{
	int64_t until = clitest_now() + (int64_t)timeout_ms * 1000000;

	for (;;) {
		char *s = clitest_read(path);
		bool found = strstr(s, needle) != NULL;

		free(s);
		if (found)
			return true;
		if (clitest_now() > until)
			return false;
		clitest_sleep_ms(5);
	}
}

static int scan_locks(const struct repo *r, char name[256])
{
	char path[600];
	struct dirent *d;
	DIR *dir;
	int n = 0;

	snprintf(path, sizeof(path), "%s/locks", r->dir);
	dir = opendir(path);
	cr_assert_not_null(dir, "%s: %s", path, strerror(errno));
	while ((d = readdir(dir))) {
		/* .keep: what dav: init puts there to make the folder */
		if (!strcmp(d->d_name, ".") || !strcmp(d->d_name, "..") ||
		    !strcmp(d->d_name, ".keep"))
			continue;
		if (name)
			snprintf(name, 256, "%s", d->d_name);
		n++;
	}
	closedir(dir);
	return n;
}

int clitest_count_locks(const struct repo *r)
{
	return scan_locks(r, NULL);
}

bool clitest_one_lock(const struct repo *r, char name[256])
{
	return scan_locks(r, name) == 1;
}

char *clitest_ticker(char *buf, size_t size, const char *tmp)
{
	snprintf(buf, size, "echo $$ > %s/pid; while :; do date +%%s%%N >> %s/ticks; sleep 0.01; done",
		 tmp, tmp);
	return buf;
}

char *clitest_held_job(char *buf, size_t size, const char *tmp)
{
	snprintf(buf, size,
		 "trap 'echo TERM >> %s/marker; i=0; "
		 "while [ ! -e %s/go ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; "
		 "exit 5' TERM; while :; do sleep 0.05; done",
		 tmp, tmp);
	return buf;
}

void clitest_let_job_end(const char *tmp)
{
	char path[300];

	clitest_write(clitest_path(path, sizeof(path), tmp, "go"), "", 0);
}

pid_t clitest_ticker_group(const char *tmp)
{
	char path[300], *s;
	pid_t group;

	cr_assert(clitest_wait_file(clitest_path(path, sizeof(path), tmp, "pid"), 10000),
		  "the job did not start");
	s = clitest_read(path);
	group = (pid_t)atoi(s);
	free(s);
	cr_assert_gt(group, 1);
	return group;
}

long long clitest_last_tick(const char *tmp)
{
	char path[300], *s, *line, *save = NULL;
	long long last = 0;

	s = clitest_read(clitest_path(path, sizeof(path), tmp, "ticks"));
	for (line = strtok_r(s, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		last = atoll(line);
	free(s);
	return last;
}

int clitest_lines(const char *s)
{
	int n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

int64_t clitest_loss_latency(const struct proc *pr)
{
	static const char head[] = "SIGTERM sent to the job ", tail[] = " after the deadline";
	char *err = clitest_read(pr->err), *s = strstr(err, head), *sp;
	int64_t ns = -1;

	if (s) {
		s += strlen(head);
		sp = strchr(s, ' ');
		if (sp && strncmp(sp, tail, strlen(tail)) == 0) {
			*sp = '\0';
			if (lw_duration_parse(s, &ns) < 0)
				ns = -1;
		}
	}
	free(err);
	return ns;
}

/* ---------------------------------------------------------------- JSON */

static const char *json_value(const char *p, int depth);

static const char *ws(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	return p;
}

static const char *json_string(const char *p)
{
	if (*p++ != '"')
		return NULL;
	while (*p != '"') {
		if ((unsigned char)*p < 0x20)
			return NULL; /* raw control characters are not allowed */
		if (*p == '\\') {
			p++;
			if (*p == 'u') {
				for (int i = 1; i <= 4; i++)
					if (!strchr("0123456789abcdefABCDEF", p[i]) || !p[i])
						return NULL;
				p += 4;
			} else if (!*p || !strchr("\"\\/bfnrt", *p)) {
				return NULL;
			}
		}
		p++;
	}
	return p + 1;
}

static const char *json_number(const char *p)
{
	const char *start;

	if (*p == '-')
		p++;
	start = p;
	while (*p >= '0' && *p <= '9')
		p++;
	if (p == start || (*start == '0' && p - start > 1))
		return NULL;
	if (*p == '.') {
		start = ++p;
		while (*p >= '0' && *p <= '9')
			p++;
		if (p == start)
			return NULL;
	}
	return p;
}

static const char *json_seq(const char *p, int depth, char close, bool object)
{
	p = ws(p + 1);
	if (*p == close)
		return p + 1;
	for (;;) {
		if (object) {
			p = json_string(ws(p));
			if (!p || *(p = ws(p)) != ':')
				return NULL;
			p++;
		}
		p = json_value(p, depth + 1);
		if (!p)
			return NULL;
		p = ws(p);
		if (*p == close)
			return p + 1;
		if (*p++ != ',')
			return NULL;
	}
}

static const char *json_value(const char *p, int depth)
{
	p = ws(p);
	if (depth > 32)
		return NULL;
	switch (*p) {
	case '{':
		return json_seq(p, depth, '}', true);
	case '[':
		return json_seq(p, depth, ']', false);
	case '"':
		return json_string(p);
	case 't':
		return strncmp(p, "true", 4) ? NULL : p + 4;
	case 'f':
		return strncmp(p, "false", 5) ? NULL : p + 5;
	case 'n':
		return strncmp(p, "null", 4) ? NULL : p + 4;
	default:
		return json_number(p);
	}
}

bool clitest_json_valid(const char *s)
{
	const char *end = json_value(s, 0);

	return end && *ws(end) == '\0';
}
