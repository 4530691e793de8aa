/* SPDX-License-Identifier: BSD-2-Clause */
#include "config.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "resticbin.h"

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

/* Execs restic with ARGS after "-r PATH"; in the child, never returns. */
static _Noreturn void exec_restic(const char *path, const char *const *args)
{
	const char *argv[48];
	size_t n = 0;

	argv[n++] = "restic";
	argv[n++] = "-r";
	argv[n++] = path;
	argv[n++] = "--no-cache";
	while (*args && n < sizeof(argv) / sizeof(argv[0]) - 1)
		argv[n++] = *args++;
	argv[n] = NULL;
	setenv("RESTIC_PASSWORD", LWT_RESTIC_PASSWORD, 1);
	unsetenv("RESTIC_PASSWORD_FILE");
	unsetenv("RESTIC_PASSWORD_COMMAND");
	unsetenv("RESTIC_REPOSITORY");
	execvp(argv[0], (char *const *)argv);
	fprintf(stderr, "cannot run restic: %s (Debian: apt-get install restic)\n",
		strerror(errno));
	_exit(127);
}

static pid_t spawn(const char *path, const char *const *args, int in, const char *outfile)
{
	pid_t pid = fork();

	cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		int out = open(outfile, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		if (in < 0)
			in = open("/dev/null", O_RDONLY);
		dup2(in, 0);
		dup2(out, 1);
		dup2(out, 2);
		exec_restic(path, args);
	}
	return pid;
}

static int wait_status(pid_t pid, int timeout_ms)
{
	int st;

	for (int waited = 0;; waited += 10) {
		pid_t r = waitpid(pid, &st, WNOHANG);

		if (r == pid)
			break;
		if (waited > timeout_ms) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			cr_assert_fail("restic (pid %d) still ran after %d ms", (int)pid,
				       timeout_ms);
		}
		sleep_ms(10);
	}
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

ssize_t lwt_read_file(const char *path, void *buf, size_t size)
{
	int fd = open(path, O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, size);
	close(fd);
	return n;
}

int lwt_restic_run(const char *path, char *out, size_t size, const char *const *args)
{
	char outfile[] = "/tmp/lwt-restic-out.XXXXXX";
	int fd = mkstemp(outfile);
	ssize_t n;
	int status;

	cr_assert_geq(fd, 0, "mkstemp: %s", strerror(errno));
	close(fd);
	status = wait_status(spawn(path, args, -1, outfile), 120000);
	n = lwt_read_file(outfile, out, size - 1);
	out[n > 0 ? n : 0] = '\0';
	unlink(outfile);
	return status;
}

static void make_dir(struct lwt_restic_repo *r, int version)
{
	memset(r, 0, sizeof(*r));
	snprintf(r->dir, sizeof(r->dir), "/tmp/lwt-restic.XXXXXX");
	cr_assert_not_null(mkdtemp(r->dir), "mkdtemp: %s", strerror(errno));
	snprintf(r->disk, sizeof(r->disk), "%s/repo", r->dir);
	snprintf(r->path, sizeof(r->path), "%s", r->disk);
	r->version = version;
}

static bool port_answers(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;

	if (fd >= 0)
		close(fd);
	return ok;
}

static int free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port = -1;

	if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

static void init(struct lwt_restic_repo *r)
{
	char v[8], out[4096];
	const char *args[] = { "init", "--repository-version", v, NULL };
	int status, fd;

	snprintf(r->payload, sizeof(r->payload), "%s/payload", r->dir);
	fd = open(r->payload, O_WRONLY | O_CREAT | O_EXCL, 0600);
	cr_assert_geq(fd, 0, "%s: %s", r->payload, strerror(errno));
	cr_assert_eq(write(fd, "backed up\n", 10), 10);
	close(fd);
	snprintf(v, sizeof(v), "%d", r->version);
	status = lwt_restic_run(r->path, out, sizeof(out), args);
	cr_assert_eq(status, 0, "restic init -r %s --repository-version %d: exit %d: %s",
		     r->path, r->version, status, out);
}

void lwt_restic_init(struct lwt_restic_repo *r, int version)
{
	make_dir(r, version);
	init(r);
}

void lwt_restic_init_rest(struct lwt_restic_repo *r, int version)
{
	char root[128], addr[32], log[128];

	make_dir(r, version);
	snprintf(root, sizeof(root), "%s", r->dir);
	snprintf(log, sizeof(log), "%s/rclone.log", r->dir);
	r->port = free_port();
	cr_assert_gt(r->port, 0);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", r->port);
	r->rclone = fork();
	cr_assert_geq(r->rclone, 0);
	if (r->rclone == 0) {
		int out = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		dup2(out, 1);
		dup2(out, 2);
		/* the repository is DIR/repo: rclone serves DIR */
		execlp("rclone", "rclone", "serve", "restic", "--addr", addr, root, (char *)NULL);
		fprintf(stderr, "cannot run rclone: %s (Debian: apt-get install rclone)\n",
			strerror(errno));
		_exit(127);
	}
	for (int waited = 0; !port_answers(r->port); waited += 20) {
		char text[1024] = "";

		if (waited > 20000 || waitpid(r->rclone, NULL, WNOHANG) == r->rclone) {
			lwt_read_file(log, text, sizeof(text) - 1);
			cr_assert_fail("rclone serve restic did not start: %s", text);
		}
		sleep_ms(20);
	}
	snprintf(r->path, sizeof(r->path), "rest:http://127.0.0.1:%d/repo/", r->port);
	init(r);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

void lwt_restic_remove(struct lwt_restic_repo *r)
{
	if (r->rclone > 0) {
		kill(r->rclone, SIGTERM);
		waitpid(r->rclone, NULL, 0);
		r->rclone = 0;
	}
	if (r->dir[0])
		nftw(r->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	r->dir[0] = '\0';
}

/* The first lock file in PATH/locks/ into NAME, or false. */
static bool find_lock(const char *path, char name[65])
{
	char dir[256];
	struct dirent *e;
	DIR *d;
	bool found = false;

	snprintf(dir, sizeof(dir), "%s/locks", path);
	d = opendir(dir);
	if (!d)
		return false;
	while (!found && (e = readdir(d)))
		if (strlen(e->d_name) == 64) {
			memcpy(name, e->d_name, 65);
			found = true;
		}
	closedir(d);
	return found;
}

void lwt_restic_hold(struct lwt_restic_hold *h, const struct lwt_restic_repo *r)
{
	const char *path = r->disk;
	const char *args[] = { "backup", "--stdin", "--stdin-filename", "slow", NULL };
	int fds[2];
	int fd;

	memset(h, 0, sizeof(*h));
	snprintf(h->out, sizeof(h->out), "/tmp/lwt-restic-hold.XXXXXX");
	fd = mkstemp(h->out);
	cr_assert_geq(fd, 0);
	close(fd);
	cr_assert_eq(pipe2(fds, O_CLOEXEC), 0);
	h->pid = spawn(r->path, args, fds[0], h->out);
	close(fds[0]);
	h->pipe = fds[1];
	for (int waited = 0; !find_lock(path, h->lock); waited += 20) {
		char out[1024] = "";

		if (waited > 60000 || waitpid(h->pid, NULL, WNOHANG) == h->pid) {
			lwt_read_file(h->out, out, sizeof(out) - 1);
			kill(h->pid, SIGKILL);
			cr_assert_fail("restic backup --stdin made no lock: %s", out);
		}
		sleep_ms(20);
	}
	/* the name appears before restic has written all of the file (its
	 * local backend writes in place): the same length twice is the end */
	for (ssize_t last = -1, n;; last = n) {
		char file[512], buf[8192];

		snprintf(file, sizeof(file), "%s/locks/%s", path, h->lock);
		n = lwt_read_file(file, buf, sizeof(buf));
		if (n > 0 && n == last)
			break;
		sleep_ms(50);
	}
}

int lwt_restic_hold_end(struct lwt_restic_hold *h)
{
	int status;

	/* restic refuses to save an empty snapshot */
	cr_assert_eq(write(h->pipe, "held\n", 5), 5);
	close(h->pipe);
	status = wait_status(h->pid, 60000);
	unlink(h->out);
	return status;
}
