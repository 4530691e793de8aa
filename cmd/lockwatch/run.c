/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * lockwatch run: flock(1) for repository locks, but strict.  Acquire, run
 * the job in its own process group, keep the lock fresh, and when it is
 * lost signal the whole group at once: SIGTERM, then SIGKILL.  The lock is
 * released only once the group has ended, on every path.
 *
 * The library runs its loop on a thread of its own; this thread waits in
 * poll(2) for signals (signalfd: the job's exit and the signals to forward),
 * the lock's context (readable when the lock is lost) and the loop's news
 * (acquire done, retry countdown).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "guard.h"

extern char **environ;

#define DEFAULT_KILL_AFTER LW_SEC(10)
/* How often the group is checked after its leader exited. */
#define GROUP_POLL LW_MSEC(50)

enum { OPT_EXCLUSIVE = OPT_CMD_BASE, OPT_REFRESH, OPT_STALE, OPT_RETRY,
       OPT_KILL_AFTER, OPT_PURPOSE, OPT_RELEASE_TIMEOUT, OPT_CHECK_INTERVAL };

struct run {
	struct cli *cli;
	bool exclusive;
	int64_t refresh, stale, retry, kill_after; /* -1: not given */
	int64_t release_timeout, check_interval;   /* -1: not given */
	const char *purpose;
	char **argv;
	char *path;              /* the resolved command */
	struct lw_lock *lock;
	struct lw_ctx *ctx;
	int sigfd, notefd;
	sigset_t oldmask;

	/* written by the loop thread, under MU; NOTEFD says something changed */
	pthread_mutex_t mu;
	bool acquired;           /* the acquire finished */
	int acquire_err;
	char acquire_msg[1024];
	bool retrying;
	unsigned retry_seq, retry_shown;
	char holder[800];
	int64_t next_try, give_up;
	atomic_int_least64_t deadline; /* the last known one */

	/* the job: forked before the lock is taken, so that the lock's
	 * record names its group; it waits for GO_FD to say go (or close) */
	pid_t held;              /* its process, also its group */
	bool held_gone;          /* ... ended before it was let go */
	int go_fd, exec_fd;      /* "go, with this lock id"; exec's errno */
	int pidfd;               /* of HELD, for the guard; -1 */
	struct guard guard;
	pid_t pid;               /* HELD, once let go */
	bool tty_fg;             /* the job has the terminal */
	bool exited;
	int status;              /* the job's exit status, as a shell says it */
	int forwarded;           /* first signal forwarded or taken, 0: none */
	bool lost;
	int64_t kill_at;         /* SIGKILL the group then; 0: not planned */
	int64_t countdown_at;    /* next redraw of the retry countdown */
};

static const char help_text[] =
	"Usage: lockwatch [-r URL] run [OPTION...] -- CMD [ARG...]\n"
	"\n"
	"Acquire a lock on the repository, run CMD in its own process group with\n"
	"LOCKWATCH_LOCK_ID (and on etcd LOCKWATCH_FENCING_TOKEN) in its environment,\n"
	"keep the lock fresh, and release it when CMD and its group have ended.\n"
	"If the lock is lost (its refresh deadline passed, or someone removed it),\n"
	"the group gets SIGTERM at once and SIGKILL after --kill-after, and\n"
	"lockwatch exits with 12.  SIGINT, SIGTERM and SIGHUP are passed on to the\n"
	"group (not the SIGHUP with which restic 0.14 asks whether a holder lives).\n"
	"\n"
	"  --exclusive             take an exclusive lock (default: shared)\n"
	"  --refresh-interval D    refresh the lock every D (default 5m)\n"
	"  --stale-timeout D       others may remove the lock D after its last\n"
	"                          refresh (default 30m; more than 2.5 x the interval)\n"
	"  --retry-lock D          wait up to D for a locked repository (default 0)\n"
	"  --kill-after D          SIGKILL the group D after SIGTERM (default 10s)\n"
	"  --release-timeout D     give up deleting the lock files after D (default\n"
	"                          5s); what is left goes stale by itself\n"
	"  --check-interval D      rest:, dav: check the lock file is still there\n"
	"                          every D (default: refresh interval / 5; 0: never)\n"
	"  --purpose TEXT          stored in the lock, shown by 'lockwatch list'\n"
	"\n"
	"Durations: 250ms, 30s, 5m, 1h30m.  Exit status: CMD's own (128+N if it\n"
	"died of signal N); 11 repository locked; 12 lock lost; 2 usage; 1 failure;\n"
	"126 CMD not executable; 127 CMD not found.\n";

/* ---------------------------------------------------------- the command */

/* Finds NAME as execvp would; returns 0, or EXIT_NOTFOUND / EXIT_NOEXEC
 * after saying why, before any lock is taken. */
static int find_command(struct run *run, const char *name)
{
	const char *dirs = getenv("PATH");
	bool denied = false;
	struct stat st;

	if (!*name || strchr(name, '/')) {
		if (stat(name, &st) < 0) {
			cli_error(run->cli, "%s: %s", name, strerror(errno));
			return errno == ENOENT ? EXIT_NOTFOUND : EXIT_NOEXEC;
		}
		if (!S_ISREG(st.st_mode) || access(name, X_OK) < 0) {
			cli_error(run->cli, "%s: not an executable file", name);
			return EXIT_NOEXEC;
		}
		run->path = strdup(name);
		return run->path ? 0 : EXIT_FAIL;
	}
	if (!dirs || !*dirs)
		dirs = "/usr/local/bin:/usr/bin:/bin";
	while (*dirs) {
		size_t n = strcspn(dirs, ":");
		char *p;

		if (asprintf(&p, "%.*s/%s", (int)n, n ? dirs : ".", name) < 0)
			return EXIT_FAIL;
		if (stat(p, &st) == 0 && S_ISREG(st.st_mode)) {
			if (access(p, X_OK) == 0) {
				run->path = p;
				return 0;
			}
			denied = true;
		}
		free(p);
		dirs += n + (dirs[n] == ':');
	}
	cli_error(run->cli, "%s: %s", name, denied ? "permission denied" : "command not found");
	return denied ? EXIT_NOEXEC : EXIT_NOTFOUND;
}

/* The environment of the job: ours, with LOCKWATCH_LOCK_ID=ID and, where
 * the backend has one (etcd), LOCKWATCH_FENCING_TOKEN=TOKEN; never those
 * of an outer lockwatch run.  Built in the job's process, which execs it or
 * exits. */
static char **job_environ(const char *id, int64_t token)
{
	size_t n = 0, k = 1;
	char **env;

	while (environ[n])
		n++;
	env = calloc(n + 3, sizeof(*env));
	if (!env || asprintf(&env[0], "LOCKWATCH_LOCK_ID=%s", id) < 0) {
		free(env);
		return NULL;
	}
	if (token && asprintf(&env[k++], "LOCKWATCH_FENCING_TOKEN=%" PRId64, token) < 0) {
		free(env[0]);
		free(env);
		return NULL;
	}
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "LOCKWATCH_LOCK_ID=", 18) != 0 &&
		    strncmp(environ[i], "LOCKWATCH_FENCING_TOKEN=", 24) != 0)
			env[k++] = environ[i];
	return env;
}

/* ------------------------------------------------- from the loop thread */

static void notify(struct run *run)
{
	static const uint64_t one = 1;

	(void)!write(run->notefd, &one, sizeof(one));
}

static void on_event(struct lw_lock *lock, const struct lw_event *ev, void *userdata)
{
	struct run *run = userdata;
	char a[32], b[32], safe[800];

	switch (ev->type) {
	case LW_EVENT_RETRY:
		pthread_mutex_lock(&run->mu);
		snprintf(run->holder, sizeof(run->holder), "%s", ev->msg);
		run->next_try = ev->next;
		run->give_up = ev->until;
		run->retry_seq++;
		pthread_mutex_unlock(&run->mu);
		notify(run);
		break;
	case LW_EVENT_ACQUIRED:
	case LW_EVENT_REFRESHED:
		atomic_store(&run->deadline, ev->next);
		if (ev->type == LW_EVENT_REFRESHED && run->cli->verbosity > 0)
			cli_error(run->cli, "%s; deadline in %s",
				  text_term(ev->msg, 200, safe, sizeof(safe)),
				  lw_duration_format(ev->next - ev->at, a, sizeof(a)));
		break;
	case LW_EVENT_REFRESH_FAILED:
		cli_note(run->cli, "warning: %s; retrying in %s, deadline in %s",
			 text_term(ev->msg, 200, safe, sizeof(safe)),
			 lw_duration_format(ev->next - ev->at, a, sizeof(a)),
			 lw_duration_format(atomic_load(&run->deadline) - ev->at, b, sizeof(b)));
		break;
	default:
		break;
	}
}

static void on_acquired(struct lw_lock *lock, int err, const char *msg, void *userdata)
{
	struct run *run = userdata;

	pthread_mutex_lock(&run->mu);
	run->acquired = true;
	run->acquire_err = err;
	snprintf(run->acquire_msg, sizeof(run->acquire_msg), "%s",
		 msg ? msg : lw_strerror(err));
	pthread_mutex_unlock(&run->mu);
	notify(run);
}

/* ------------------------------------------------------------ waiting */

/* The retry countdown: one line per attempt, and on a terminal a line
 * that counts down in place until the next one. */
static void show_retry(struct run *run, int64_t now)
{
	char holder[sizeof(run->holder)], next[40] = "now", left[32];
	int64_t next_try, give_up;
	bool fresh;

	pthread_mutex_lock(&run->mu);
	fresh = run->retry_seq != run->retry_shown;
	run->retry_shown = run->retry_seq;
	memcpy(holder, run->holder, sizeof(holder));
	next_try = run->next_try;
	give_up = run->give_up;
	pthread_mutex_unlock(&run->mu);
	if (!run->retry_shown || run->cli->verbosity < 0 || (!fresh && !run->cli->tty))
		return;
	/* whole seconds, rounded up: "in 0s" would be a lie */
	if (next_try > now) {
		memcpy(next, "in ", 3);
		lw_duration_format((next_try - now + LW_SEC(1) - 1) / LW_SEC(1) * LW_SEC(1),
				   next + 3, sizeof(next) - 3);
	}
	lw_duration_format((give_up - now + LW_SEC(1) - 1) / LW_SEC(1) * LW_SEC(1), left,
			   sizeof(left));
	flockfile(stderr);
	if (run->cli->tty) {
		if (fresh)
			fprintf(stderr, "\r\033[Klockwatch run: %s\n", holder);
		fprintf(stderr, "\r\033[Klockwatch run: waiting for the lock: next attempt %s, "
			"giving up in %s", next, left);
		/* redraw when the count of whole seconds changes */
		run->countdown_at = next_try > now ? now + 1 + (next_try - now - 1) % LW_SEC(1) : 0;
	} else {
		fprintf(stderr, "lockwatch run: %s; next attempt %s, giving up in %s\n",
			holder, next, left);
	}
	fflush(stderr);
	funlockfile(stderr);
}

static void clear_countdown(struct run *run)
{
	if (run->cli->tty && run->retry_shown && run->cli->verbosity >= 0)
		fputs("\r\033[K", stderr);
	run->countdown_at = 0;
}

/* Signals the job's whole group (a stopped group also gets SIGCONT, so
 * that it can act on SIG). */
static void signal_group(struct run *run, int sig)
{
	kill(-run->pid, sig);
	if (sig != SIGKILL && sig != SIGCONT)
		kill(-run->pid, SIGCONT);
}

static void lock_lost(struct run *run)
{
	int64_t now, deadline = atomic_load(&run->deadline);
	char id[65] = "?", late[32], kill_after[32], cause[800];

	run->lost = true;
	if (!run->pid || (run->exited && kill(-run->pid, 0) < 0))
		return;
	signal_group(run, SIGTERM);
	now = cli_now();
	/* at most 100 years (cli_duration): no overflow, saturated anyway */
	if (__builtin_add_overflow(now, run->kill_after, &run->kill_at))
		run->kill_at = INT64_MAX;
	lw_lock_id(run->lock, id);
	text_term(lw_ctx_cause(run->ctx), 400, cause, sizeof(cause));
	lw_duration_format(now > deadline ? now - deadline : deadline - now, late, sizeof(late));
	lw_duration_format(run->kill_after, kill_after, sizeof(kill_after));
	cli_error(run->cli, "lost the lock on %s (lock file %.12s): %s; SIGTERM sent to the "
		  "job %s %s the deadline, SIGKILL follows in %s", lw_repo_url(run->cli->repo),
		  id, cause, late, now > deadline ? "after" : "before", kill_after);
}

/* Reaps every child (lockwatch is the subreaper of the job's orphans). */
static void reap(struct run *run)
{
	pid_t pid;
	int st;

	while ((pid = waitpid(-1, &st, WNOHANG | WUNTRACED)) > 0) {
		if (pid == run->guard.pid && !WIFSTOPPED(st)) {
			/* killed alone (lockwatch lives on): another one */
			close(run->guard.fd);
			run->guard = (struct guard){ .fd = -1 };
			if (guard_start(&run->guard, run->held, run->pidfd) < 0)
				cli_error(run->cli, "the job's guard process died, and no other "
					  "can be started: %s", strerror(errno));
			else
				cli_note(run->cli, "warning: the job's guard process died; "
					 "started another");
			continue;
		}
		if (pid == run->held && !run->pid && !WIFSTOPPED(st)) {
			run->held_gone = true;
			continue;
		}
		if (pid != run->pid)
			continue;
		if (WIFSTOPPED(st)) {
			if (!run->tty_fg)
				continue;
			/* ^Z: stop with the job, as a shell expects of its
			 * foreground job; give the terminal back on resume */
			tcsetpgrp(STDIN_FILENO, getpgrp());
			kill(getpid(), SIGSTOP);
			tcsetpgrp(STDIN_FILENO, run->pid);
			kill(-run->pid, SIGCONT);
			continue;
		}
		run->exited = true;
		run->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	}
}

/* A signal for lockwatch: forwarded to the job's group, or while
 * acquiring, the end of the acquire. */
static void take_signal(struct run *run, int sig)
{
	if (!run->forwarded)
		run->forwarded = sig;
	if (run->pid)
		signal_group(run, sig);
	else
		lw_ctx_cancel(run->ctx);
}

/*
 * restic 0.14 tells whether a lock's holder on this host lives by sending it
 * SIGHUP (restic unlock does, for every such lock): on a restic repository
 * that would end the job of a live lock.  A SIGHUP that a process named
 * restic sent is that probe, not a hangup, and is not passed on.
 */
static bool restic_probe(const struct signalfd_siginfo *si)
{
	char path[64], comm[32] = "";
	FILE *f;

	if (si->ssi_signo != SIGHUP || si->ssi_code != SI_USER || si->ssi_pid == 0)
		return false;
	snprintf(path, sizeof(path), "/proc/%u/comm", si->ssi_pid);
	f = fopen(path, "re");
	if (!f)
		return false;
	if (!fgets(comm, sizeof(comm), f))
		comm[0] = '\0';
	fclose(f);
	return strcmp(comm, "restic\n") == 0;
}

static void read_signals(struct run *run)
{
	struct signalfd_siginfo si;

	while (read(run->sigfd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGCHLD)
			reap(run);
		else if (restic_probe(&si))
			cli_note(run->cli, "SIGHUP from restic (pid %u), which asks whether the "
				 "lock's holder lives: not passed on", si.ssi_pid);
		else
			take_signal(run, (int)si.ssi_signo);
	}
}

static bool group_alive(const struct run *run)
{
	return run->pid && kill(-run->pid, 0) == 0;
}

/* Waits for something to happen and handles it.  Returns false when the
 * run is over: the acquire failed, or the job's group has ended. */
#define MIN_NS(a, b) ((a) < (b) ? (a) : (b))

static bool wait_once(struct run *run)
{
	struct pollfd fds[3] = {
		{ .fd = run->sigfd, .events = POLLIN },
		{ .fd = run->notefd, .events = POLLIN },
		{ .fd = lw_ctx_fd(run->ctx), .events = POLLIN },
	};
	int64_t now = cli_now(), until = 0;
	int timeout = -1;
	uint64_t n;
	bool done;

	if (run->countdown_at)
		until = run->countdown_at;
	if (run->kill_at && (!until || run->kill_at < until))
		until = run->kill_at;
	if (run->exited && (!until || now + GROUP_POLL < until))
		until = now + GROUP_POLL;
	if (until)
		/* an hour at most: a poll timeout is an int of milliseconds */
		timeout = until > now ? (int)((MIN_NS(until - now, LW_SEC(3600)) + LW_MSEC(1) - 1) /
					      LW_MSEC(1)) : 0;
	/* The context is watched only while the job runs: before, a failed
	 * acquire ends it too.  poll is only the wait: every source is
	 * checked below whatever it says, so that a failing poll (EINVAL
	 * once RLIMIT_NOFILE drops below NFDS) turns into a short sleep and
	 * never into leaving the job alone. */
	if (poll(fds, run->pid && !run->lost ? 3 : 2, timeout) < 0 && errno != EINTR)
		poll(NULL, 0, timeout < 0 || timeout > 10 ? 10 : timeout);
	now = cli_now();
	/* a loss seen with the job's exit counts: the job may have worked
	 * past the deadline */
	if (run->pid && !run->lost && lw_ctx_done(run->ctx))
		lock_lost(run);
	read_signals(run);
	if (read(run->notefd, &n, sizeof(n)) == sizeof(n))
		show_retry(run, now);
	else if (run->countdown_at && now >= run->countdown_at)
		show_retry(run, now);
	if (run->kill_at && now >= run->kill_at) {
		signal_group(run, SIGKILL);
		run->kill_at = 0;
	}
	if (run->pid)
		return !(run->exited && !group_alive(run));
	pthread_mutex_lock(&run->mu);
	done = run->acquired;
	pthread_mutex_unlock(&run->mu);
	return !done;
}

/* ------------------------------------------------------------ the job */

/* What the held job waits for: the lock is ours, here is its id. */
struct go_msg {
	char id[65];
	int64_t token;
};

/* In the held child: wait for the lock, then become the job.  The child
 * was forked before lockwatch had threads: it may allocate. */
static _Noreturn void held_child(struct run *run, int go_fd, int exec_fd)
{
	struct go_msg msg;
	size_t got = 0;
	char **env;
	int err;

	while (got < sizeof(msg)) {
		ssize_t n = read(go_fd, (char *)&msg + got, sizeof(msg) - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			_exit(EXIT_FAIL); /* no lock: lockwatch gave up, or died */
		got += (size_t)n;
	}
	close(go_fd);
	msg.id[64] = '\0';
	env = job_environ(msg.id, msg.token);
	if (env)
		execve(run->path, run->argv, env);
	err = env ? errno : ENOMEM;
	(void)!write(exec_fd, &err, sizeof(err));
	_exit(EXIT_NOEXEC);
}

/* Forks the job, held until the lock is acquired, and its guard.  Called
 * before the loop thread starts.  Returns 0 or a negative errno. */
static int prepare_job(struct run *run)
{
	pid_t parent = getpid(), pid;
	int go[2], ex[2], err;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, go) < 0)
		return -errno;
	if (pipe2(ex, O_CLOEXEC) < 0) {
		err = -errno;
		close(go[0]);
		close(go[1]);
		return err;
	}
	pid = fork();
	if (pid == 0) {
		close(go[0]);
		close(ex[0]);
		setpgid(0, 0);
		/* the leader goes with lockwatch at once; the guard takes
		 * the rest of the group */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(EXIT_FAIL);
		held_child(run, go[1], ex[1]);
	}
	err = -errno;
	close(go[1]);
	close(ex[1]);
	if (pid < 0) {
		close(go[0]);
		close(ex[0]);
		return err;
	}
	/* both sides set the group: whichever runs first wins the race
	 * with a signal sent to the group */
	setpgid(pid, pid);
	run->held = pid;
	run->go_fd = go[0];
	run->exec_fd = ex[0];
	run->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	return guard_start(&run->guard, pid, run->pidfd);
}

/* The job never started (no lock): its held process goes, and the guard. */
static void abandon_job(struct run *run)
{
	if (run->held && !run->pid) {
		kill(run->held, SIGKILL);
		while (!run->held_gone && waitpid(run->held, NULL, 0) < 0 && errno == EINTR)
			;
		run->held_gone = true;
	}
	guard_done(&run->guard);
}

static int start_job(struct run *run)
{
	struct go_msg msg = { .token = lw_lock_fencing_token(run->lock) };
	int err = 0;

	if (lw_lock_id(run->lock, msg.id) < 0)
		return -ENOMEM;
	reap(run);
	if (run->held_gone)
		return -ECHILD; /* somebody killed it while we waited */
	run->tty_fg = isatty(STDIN_FILENO) && tcgetpgrp(STDIN_FILENO) == getpgrp();
	if (run->tty_fg)
		tcsetpgrp(STDIN_FILENO, run->held);
	if (send(run->go_fd, &msg, sizeof(msg), MSG_NOSIGNAL) != (ssize_t)sizeof(msg))
		err = -errno;
	close(run->go_fd);
	run->go_fd = -1;
	if (err < 0) {
		abandon_job(run);
		return err;
	}
	run->pid = run->held;
	if (read(run->exec_fd, &err, sizeof(err)) == sizeof(err))
		err = -err; /* exec failed; the child exits at once */
	else
		err = 0;
	close(run->exec_fd);
	run->exec_fd = -1;
	return err;
}

/* --------------------------------------------------------------- main */

static int parse(struct run *run, int argc, char **argv)
{
	static const struct option longopts[] = {
		CLI_GLOBAL_OPTIONS,
		{ "exclusive", no_argument, NULL, OPT_EXCLUSIVE },
		{ "refresh-interval", required_argument, NULL, OPT_REFRESH },
		{ "stale-timeout", required_argument, NULL, OPT_STALE },
		{ "retry-lock", required_argument, NULL, OPT_RETRY },
		{ "kill-after", required_argument, NULL, OPT_KILL_AFTER },
		{ "purpose", required_argument, NULL, OPT_PURPOSE },
		{ "release-timeout", required_argument, NULL, OPT_RELEASE_TIMEOUT },
		{ "check-interval", required_argument, NULL, OPT_CHECK_INTERVAL },
		{ 0 },
	};
	struct cli *cli = run->cli;
	int c, r = 0;

	while (r == 0 && (c = cli_getopt(cli, argc, argv, "+:" CLI_GLOBAL_SHORT, longopts)) != -1) {
		switch (c) {
		case 'h':
			fputs(help_text, stdout);
			return -1;
		case OPT_EXCLUSIVE:
			run->exclusive = true;
			break;
		case OPT_REFRESH:
			r = cli_duration(cli, "--refresh-interval", optarg, &run->refresh);
			if (r == 0 && run->refresh == 0)
				r = cli_usage_error(cli, "--refresh-interval 0: must be longer "
						    "than 0 (the default is 5m)");
			break;
		case OPT_STALE:
			r = cli_duration(cli, "--stale-timeout", optarg, &run->stale);
			if (r == 0 && run->stale == 0)
				r = cli_usage_error(cli, "--stale-timeout 0: must be longer "
						    "than 0 (the default is 30m)");
			break;
		case OPT_RETRY:
			r = cli_duration(cli, "--retry-lock", optarg, &run->retry);
			break;
		case OPT_KILL_AFTER:
			r = cli_duration(cli, "--kill-after", optarg, &run->kill_after);
			break;
		case OPT_PURPOSE:
			run->purpose = optarg;
			break;
		case OPT_RELEASE_TIMEOUT:
			r = cli_duration(cli, "--release-timeout", optarg, &run->release_timeout);
			break;
		case OPT_CHECK_INTERVAL:
			r = cli_duration(cli, "--check-interval", optarg, &run->check_interval);
			break;
		default:
			return EXIT_USAGE;
		}
	}
	if (r)
		return r;
	if (optind >= argc)
		return cli_usage_error(cli, "no command to run (lockwatch run -- CMD [ARG...])");
	run->argv = argv + optind;
	return 0;
}

/* Sets the repository up as the options say; returns 0 or an exit status. */
static int configure(struct run *run)
{
	struct cli *cli = run->cli;
	int64_t refresh = run->refresh > 0 ? run->refresh : LW_SEC(5 * 60);
	int64_t stale = run->stale > 0 ? run->stale : LW_SEC(30 * 60);
	int r;

	/* one given alone brings the other along, in restic's ratio of 6 (a
	 * 1s interval with the default 30m stale timeout would leave others
	 * waiting half an hour for a lock that lost its holder 2 s after) */
	if (run->refresh > 0 && run->stale < 0)
		stale = refresh <= LW_DURATION_MAX / 6 ? 6 * refresh : LW_DURATION_MAX;
	if (run->stale > 0 && run->refresh < 0)
		refresh = stale / 6;
	r = lw_repo_set_timing(cli->repo, refresh, stale);
	if (r == 0 && run->retry > 0)
		r = lw_repo_set_retry_lock(cli->repo, run->retry);
	if (r == 0 && run->release_timeout >= 0)
		r = lw_repo_set_release_timeout(cli->repo, run->release_timeout);
	if (r == 0 && run->check_interval >= 0)
		r = lw_repo_set_check_interval(cli->repo, run->check_interval);
	if (r < 0)
		return cli_usage_error(cli, "%s", lw_errmsg());
	/* for tests, where many short jobs take turns: not an option, so
	 * that nobody reaches for it to hammer a shared server */
	if (getenv("LOCKWATCH_RETRY_BACKOFF")) {
		int64_t first;

		r = cli_duration(cli, "LOCKWATCH_RETRY_BACKOFF", getenv("LOCKWATCH_RETRY_BACKOFF"),
				 &first);
		if (r)
			return r;
		if (lw_repo_set_retry_backoff(cli->repo, first) < 0)
			return cli_usage_error(cli, "LOCKWATCH_RETRY_BACKOFF: %s", lw_errmsg());
	}
	r = lw_lock_new(cli->repo, run->exclusive ? LW_LOCK_EXCLUSIVE : 0, run->purpose,
			&run->lock);
	if (r < 0)
		return cli_usage_error(cli, "%s", lw_errmsg());
	/* the lock stays live on this host while the job's group does */
	if (lw_lock_set_process_group(run->lock, run->held) < 0) {
		cli_error(cli, "cannot tie the lock to the job: %s", lw_errmsg());
		return EXIT_FAIL;
	}
	run->ctx = lw_lock_ctx(run->lock);
	if (lw_ctx_fd(run->ctx) < 0 || lw_lock_set_event_fn(run->lock, on_event, run) < 0) {
		cli_error(cli, "cannot watch the lock: %s", strerror(errno));
		return EXIT_FAIL;
	}
	/* a repository that does not exist fails now, not after the retries
	 * acquire allows a listing that fails */
	r = lw_repo_list(cli->repo, NULL, NULL);
	if (r == -ENOENT) {
		cli_error(cli, "%s: no such repository (create it with 'lockwatch init')",
			  lw_repo_url(cli->repo));
		return EXIT_FAIL;
	}
	if (r == -ENOTDIR) { /* locks/ is a symlink: refused, not retried */
		cli_error(cli, "%s", lw_errmsg());
		return EXIT_FAIL;
	}
	return 0;
}

/* Blocks the signals that poll(2) reads; the job gets the old mask. */
static int setup_signals(struct run *run)
{
	sigset_t mask;

	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, &run->oldmask);
	run->sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	sigaddset(&mask, SIGTTOU); /* to take the terminal back from the job */
	sigprocmask(SIG_BLOCK, &mask, NULL);
	run->notefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	/* the job's orphans come to us, so that none is left a zombie */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	return run->sigfd < 0 || run->notefd < 0 ? -errno : 0;
}

/* The job's exit status, lockwatch's exit status. */
static int run_job(struct run *run)
{
	struct cli *cli = run->cli;
	int r;

	r = lw_lock_acquire_async(run->lock, on_acquired, run);
	if (r < 0) {
		cli_error(cli, "%s", lw_errmsg());
		return EXIT_FAIL;
	}
	while (wait_once(run))
		;
	clear_countdown(run);
	if (run->acquire_err < 0 || run->forwarded || lw_ctx_done(run->ctx))
		abandon_job(run);
	if (run->acquire_err < 0) {
		if (run->forwarded)
			return 128 + run->forwarded;
		cli_error(cli, "%s", run->acquire_msg);
		return cli_status(run->acquire_err);
	}
	/* with -v the library's own log line said "acquired" already */
	if (run->forwarded)
		return 128 + run->forwarded;
	if (lw_ctx_done(run->ctx)) {
		cli_error(cli, "lock lost before the job started: %s", lw_ctx_cause(run->ctx));
		return EXIT_LOST;
	}
	r = start_job(run);
	if (r < 0 && !run->pid) {
		guard_done(&run->guard);
		cli_error(cli, "cannot start %s: %s", run->argv[0], strerror(-r));
		return EXIT_FAIL;
	}
	if (r < 0)
		cli_error(cli, "%s: %s", run->argv[0], strerror(-r));
	while (wait_once(run))
		;
	/* the group has ended: nothing is left to guard */
	guard_done(&run->guard);
	if (run->tty_fg)
		tcsetpgrp(STDIN_FILENO, getpgrp());
	if (r < 0)
		return r == -ENOENT ? EXIT_NOTFOUND : EXIT_NOEXEC;
	return run->lost ? EXIT_LOST : run->status;
}

int cmd_run(struct cli *cli, int argc, char **argv)
{
	struct run run = {
		.cli = cli, .refresh = -1, .stale = -1, .retry = 0,
		.release_timeout = -1, .check_interval = -1,
		.kill_after = DEFAULT_KILL_AFTER, .sigfd = -1, .notefd = -1,
		.go_fd = -1, .exec_fd = -1, .pidfd = -1, .guard.fd = -1,
		.mu = PTHREAD_MUTEX_INITIALIZER,
	};
	int status, r;

	atomic_init(&run.deadline, 0);
	status = parse(&run, argc, argv);
	if (status)
		return status < 0 ? 0 : status;
	status = find_command(&run, run.argv[0]);
	if (status)
		return status;
	r = prepare_job(&run);
	if (r < 0) {
		cli_error(cli, "cannot start %s: %s", run.argv[0], strerror(-r));
		abandon_job(&run);
		free(run.path);
		return EXIT_FAIL;
	}
	status = cli_open(cli);
	if (status == 0)
		status = configure(&run);
	if (status == 0 && setup_signals(&run) < 0) {
		cli_error(cli, "cannot set up signals: %s", strerror(errno));
		status = EXIT_FAIL;
	}
	if (status == 0)
		status = run_job(&run);
	else
		abandon_job(&run);
	if (run.lock) {
		/* the group has ended: now the lock may go */
		r = lw_lock_release(run.lock);
		if (r == -LW_ELOST && run.acquire_err == 0 && run.acquired && !run.lost) {
			/* the job worked on while conflicting work may have
			 * run: as good as a loss seen during the run */
			cli_error(cli, "the lock was removed during the run: %s", lw_errmsg());
			status = EXIT_LOST;
		} else if (r < 0 && r != -LW_ELOST && run.acquire_err == 0 && run.acquired) {
			/* the job's work stands: it ended under its lock */
			cli_note(cli, "warning: releasing the lock: %s", lw_errmsg());
		}
		lw_lock_free(run.lock);
	}
	cli_close(cli);
	if (run.sigfd >= 0)
		close(run.sigfd);
	if (run.notefd >= 0)
		close(run.notefd);
	if (run.go_fd >= 0)
		close(run.go_fd);
	if (run.exec_fd >= 0)
		close(run.exec_fd);
	if (run.pidfd >= 0)
		close(run.pidfd);
	free(run.path);
	return status;
}
