/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * lockwatch: run a job under a strict repository lock, and list, unlock or
 * initialise a repository's locks.  See lockwatch(1).
 *
 * This file: global options, dispatch, messages and opening the repository.
 * The commands live in run.c (run) and inspect.c (list, unlock, init).
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

static const char usage_text[] =
	"Usage: lockwatch [-r URL] [--engine auto|uring|epoll] [--format F]\n"
	"                 [--password-file FILE|--password-command CMD] [-v|-q] COMMAND [ARG...]\n"
	"\n"
	"Commands:\n"
	"  run [OPTION...] -- CMD [ARG...]  run CMD while holding a lock on the repository\n"
	"  list [--json]                    show every lock of the repository\n"
	"  unlock [--remove-all]            remove stale locks (every lock with --remove-all)\n"
	"  init                             create the repository's locks/ folder\n"
	"\n"
	"Options:\n"
	"  -r, --repo URL    repository: /path, local:/path, rest:http://host/path/,\n"
	"                    dav:http://host/path/, etcd:http://host:2379/prefix\n"
	"                    (default: $LOCKWATCH_REPOSITORY)\n"
	"      --engine E    event loop: auto (default, or $LOCKWATCH_ENGINE), uring, epoll\n"
	"      --format F    lock files: auto (restic's on a restic repository, else\n"
	"                    lockwatch's), lockwatch (invisible to restic), restic\n"
	"      --password-file FILE, --password-command CMD\n"
	"                    a restic repository's password, as restic takes it (default:\n"
	"                    $RESTIC_PASSWORD_COMMAND, $RESTIC_PASSWORD_FILE, $RESTIC_PASSWORD)\n"
	"  -v, --verbose     say more (twice: debug)\n"
	"  -q, --quiet       say only what went wrong\n"
	"  -h, --help        show this help ('lockwatch COMMAND --help' for a command)\n"
	"  -V, --version     show the version\n"
	"\n"
	"Exit status: the job's own (128+N if it died of signal N); 1 failure;\n"
	"2 usage error; 11 repository locked; 12 lock lost while the job ran;\n"
	"126 CMD not executable; 127 CMD not found.  See lockwatch(1).\n";

__attribute__((format(printf, 2, 0)))
static void vmsg(const struct cli *cli, const char *fmt, va_list ap)
{
	char line[1200];

	vsnprintf(line, sizeof(line), fmt, ap);
	flockfile(stderr);
	if (cli && cli->cmd)
		fprintf(stderr, "lockwatch %s: %s\n", cli->cmd, line);
	else
		fprintf(stderr, "lockwatch: %s\n", line);
	funlockfile(stderr);
}

void cli_error(const struct cli *cli, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmsg(cli, fmt, ap);
	va_end(ap);
}

void cli_note(const struct cli *cli, const char *fmt, ...)
{
	va_list ap;

	if (cli->verbosity < 0)
		return;
	va_start(ap, fmt);
	vmsg(cli, fmt, ap);
	va_end(ap);
}

int cli_usage_error(const struct cli *cli, const char *fmt, ...)
{
	char line[1000];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	cli_error(cli, "%s (see 'lockwatch%s%s --help')", line, cli->cmd ? " " : "",
		  cli->cmd ? cli->cmd : "");
	return EXIT_USAGE;
}

int cli_duration(const struct cli *cli, const char *name, const char *arg,
		 int64_t *ns)
{
	char safe[80];
	int r = lw_duration_parse(arg, ns);

	if (r == 0)
		return 0;
	return cli_usage_error(cli, "%s '%s': %s", name, text_term(arg, 40, safe, sizeof(safe)),
			       r == -ERANGE ? "longer than 100 years (876600h), the limit" :
			       "not a duration like 250ms, 30s, 5m or 1h30m");
}

int64_t cli_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_BOOTTIME, &ts);
	return (int64_t)ts.tv_sec * LW_NSEC_PER_SEC + ts.tv_nsec;
}

/* Returns 0, or EXIT_USAGE after printing the error. */
static int global_option(struct cli *cli, int c, const char *arg)
{
	char safe[64];

	switch (c) {
	case 'r':
		cli->url = arg;
		break;
	case OPT_ENGINE:
		if (lw_engine_parse(arg, &cli->engine) < 0)
			return cli_usage_error(cli, "--engine '%s': expected auto, uring or epoll",
					       text_term(arg, 32, safe, sizeof(safe)));
		break;
	case OPT_FORMAT:
		if (strcmp(arg, "auto") == 0)
			cli->format = LW_FORMAT_AUTO;
		else if (strcmp(arg, "lockwatch") == 0)
			cli->format = LW_FORMAT_LOCKWATCH;
		else if (strcmp(arg, "restic") == 0)
			cli->format = LW_FORMAT_RESTIC;
		else
			return cli_usage_error(cli, "--format '%s': expected auto, lockwatch or "
					       "restic", text_term(arg, 32, safe, sizeof(safe)));
		break;
	case OPT_PASSWORD_FILE:
	case OPT_PASSWORD_COMMAND:
		if (c == OPT_PASSWORD_FILE)
			cli->password_file = arg;
		else
			cli->password_command = arg;
		if (cli->password_file && cli->password_command)
			return cli_usage_error(cli, "--password-file and --password-command "
					       "exclude each other, as in restic");
		break;
	case 'v':
		cli->verbosity = cli->verbosity < 0 ? 1 : cli->verbosity + 1;
		break;
	case 'q':
		cli->verbosity = -1;
		break;
	}
	return 0;
}

int cli_getopt(struct cli *cli, int argc, char **argv, const char *shortopts,
	       const struct option *longopts)
{
	char safe[64];
	int c;

	for (;;) {
		c = getopt_long(argc, argv, shortopts, longopts, NULL);
		switch (c) {
		case ':':
			cli_usage_error(cli, "option %s needs a value",
					text_term(argv[optind - 1], 40, safe, sizeof(safe)));
			return '?';
		case '?':
			/* a short option by its letter, a long one as typed */
			if (optopt > ' ' && optopt < 0x7f)
				snprintf(safe, sizeof(safe), "-%c", optopt);
			else
				text_term(argv[optind - 1], 40, safe, sizeof(safe));
			cli_usage_error(cli, "unknown option %s", safe);
			return '?';
		case 'r':
		case 'v':
		case 'q':
		case OPT_ENGINE:
		case OPT_FORMAT:
		case OPT_PASSWORD_FILE:
		case OPT_PASSWORD_COMMAND:
			if (global_option(cli, c, optarg) != 0)
				return '?';
			break;
		default:
			return c;
		}
	}
}

static void log_line(void *userdata, int priority, const char *msg)
{
	const struct cli *cli = userdata;
	char safe[1100];

	/* library lines are sanitised already; this is a second fence */
	cli_error(cli, "%s%s", priority <= LOG_WARNING ? "warning: " : "",
		  text_term(msg, sizeof(safe) / 4, safe, sizeof(safe)));
}

int cli_status(int err)
{
	switch (-err) {
	case LW_ELOCKED:
		return EXIT_LOCKED;
	case LW_ELOST:
		return EXIT_LOST;
	case EINVAL:
	case EPROTONOSUPPORT:
		return EXIT_USAGE;
	}
	return EXIT_FAIL;
}

/* A password in the -r URL can be read by every local user in
 * /proc/PID/cmdline: once the library has its copy, overwrite it in argv
 * (a moment's window remains; LOCKWATCH_PASSWORD or LOCKWATCH_REPOSITORY
 * keep it out of the command line altogether). */
static void hide_password(char *url)
{
	char *auth = url ? strstr(url, "://") : NULL, *end, *colon;

	if (!auth)
		return;
	auth += 3;
	end = auth + strcspn(auth, "@/,");
	colon = *end == '@' ? memchr(auth, ':', (size_t)(end - auth)) : NULL;
	if (colon)
		memset(colon + 1, '*', (size_t)(end - colon - 1));
}

/* --password-file and --password-command, read when the library asks: on
 * its worker thread, only for a restic repository.  White space around the
 * password goes, as restic does it. */
static int cli_password(char *buf, size_t size, void *userdata)
{
	const struct cli *cli = userdata;
	FILE *f = cli->password_command ? popen(cli->password_command, "r") :
					  fopen(cli->password_file, "re");
	size_t n, start = 0;
	int st;

	if (!f)
		return -errno;
	n = fread(buf, 1, size - 1, f);
	st = cli->password_command ? pclose(f) : fclose(f);
	if (cli->password_command && st != 0)
		return -ENOKEY;
	while (n && strchr(" \t\r\n\v\f", buf[n - 1]))
		n--;
	while (start < n && strchr(" \t\r\n\v\f", buf[start]))
		start++;
	memmove(buf, buf + start, n - start);
	return (int)(n - start);
}

int cli_open(struct cli *cli)
{
	int r = lw_loop_new(cli->engine, &cli->loop);

	if (r < 0) {
		cli_error(cli, "%s", lw_errmsg());
		return r == -EINVAL ? EXIT_USAGE : EXIT_FAIL;
	}
	lw_loop_set_log_fn(cli->loop, log_line, cli);
	/* the command reports lock events itself; the library's own lines
	 * come at -v, or as LOCKWATCH_LOG asks */
	if (!getenv("LOCKWATCH_LOG") || cli->verbosity > 0)
		lw_loop_set_log_priority(cli->loop, cli->verbosity > 1 ? LOG_DEBUG :
						    cli->verbosity > 0 ? LOG_INFO : LOG_ERR);
	r = lw_loop_start(cli->loop);
	if (r == 0)
		r = lw_repo_new(cli->loop, cli->url, &cli->repo);
	if (r == 0)
		r = lw_repo_set_format(cli->repo, cli->format);
	if (r == 0 && (cli->password_file || cli->password_command))
		r = lw_repo_set_password_fn(cli->repo, cli_password, cli);
	if (r < 0) {
		cli_error(cli, "%s", r == -EINVAL || r == -EPROTONOSUPPORT || r == -ENOTSUP ?
				     lw_errmsg() : lw_strerror(r));
		cli_close(cli);
		return cli_status(r);
	}
	hide_password((char *)cli->url); /* argv's own memory */
	return 0;
}

void cli_close(struct cli *cli)
{
	cli->repo = lw_repo_unref(cli->repo);
	lw_loop_free(cli->loop);
	cli->loop = NULL;
}

static const struct {
	const char *name;
	int (*fn)(struct cli *cli, int argc, char **argv);
} commands[] = {
	{ "run", cmd_run },
	{ "list", cmd_list },
	{ "unlock", cmd_unlock },
	{ "init", cmd_init },
};

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		CLI_GLOBAL_OPTIONS,
		{ "version", no_argument, NULL, 'V' },
		{ 0 },
	};
	struct cli cli = { .engine = LW_ENGINE_DEFAULT };
	char safe[64];
	int c;

	cli.tty = isatty(STDERR_FILENO);
	opterr = 0;
	/* '+': global options end at the command */
	while ((c = cli_getopt(&cli, argc, argv, "+:" CLI_GLOBAL_SHORT "V", longopts)) != -1) {
		switch (c) {
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		case 'V':
			printf("lockwatch %s\n", PACKAGE_VERSION);
			return 0;
		default:
			return EXIT_USAGE;
		}
	}
	if (optind >= argc)
		return cli_usage_error(&cli, "no command given: run, list, unlock or init");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (strcmp(argv[optind], commands[i].name) == 0) {
			cli.cmd = commands[i].name;
			argc -= optind;
			argv += optind;
			optind = 0; /* the command's getopt starts afresh */
			return commands[i].fn(&cli, argc, argv);
		}
	}
	return cli_usage_error(&cli, "unknown command '%s': expected run, list, unlock or init",
			       text_term(argv[optind], 32, safe, sizeof(safe)));
}
