/* SPDX-License-Identifier: BSD-2-Clause */
/* What the lockwatch command's files share.  Only the public API of
 * liblockwatch is used here, as any application would. */
#pragma once

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <lockwatch.h>

/* Exit statuses besides the job's own. */
enum {
	EXIT_FAIL = 1,      /* any other failure */
	EXIT_USAGE = 2,
	EXIT_LOCKED = 11,   /* could not acquire: the repository is locked */
	EXIT_LOST = 12,     /* the lock was lost while the job ran */
	EXIT_NOEXEC = 126,  /* the job could not be executed */
	EXIT_NOTFOUND = 127 /* the job's command was not found */
};

struct cli {
	const char *cmd;      /* "run", "list", ... for messages */
	const char *url;      /* -r; NULL: $LOCKWATCH_REPOSITORY */
	enum lw_engine engine;
	int verbosity;        /* -1 quiet, 0 normal, 1 verbose, 2 debug */
	bool tty;             /* stderr is a terminal */
	enum lw_format format;        /* --format */
	const char *password_file;    /* --password-file */
	const char *password_command; /* --password-command */
	struct lw_loop *loop;
	struct lw_repo *repo;
};

/* Options every command takes (-r, --engine, --format, --password-file,
 * --password-command, -v, -q), and their codes. */
#define CLI_GLOBAL_SHORT "r:vqh"
enum { OPT_ENGINE = 0x100, OPT_FORMAT, OPT_PASSWORD_FILE, OPT_PASSWORD_COMMAND,
       OPT_CMD_BASE = 0x200 };
#define CLI_GLOBAL_OPTIONS                                            \
	{ "repo", required_argument, NULL, 'r' },                      \
	{ "engine", required_argument, NULL, OPT_ENGINE },             \
	{ "format", required_argument, NULL, OPT_FORMAT },             \
	{ "password-file", required_argument, NULL, OPT_PASSWORD_FILE }, \
	{ "password-command", required_argument, NULL, OPT_PASSWORD_COMMAND }, \
	{ "verbose", no_argument, NULL, 'v' },                         \
	{ "quiet", no_argument, NULL, 'q' },                           \
	{ "help", no_argument, NULL, 'h' }

/*
 * cli_getopt - getopt_long for command CLI->cmd with the global options
 * folded in.  Returns the option of the command, -1 at the end, 'h' for
 * --help, or '?' after printing a one-line usage error.
 */
int cli_getopt(struct cli *cli, int argc, char **argv, const char *shortopts,
	       const struct option *longopts);

/* Prints "lockwatch CMD: ..." on stderr; returns EXIT_USAGE. */
int cli_usage_error(const struct cli *cli, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Prints "lockwatch[ CMD]: ..." on stderr. */
void cli_error(const struct cli *cli, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Like cli_error, unless -q. */
void cli_note(const struct cli *cli, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Parses the duration ARG of option NAME into *NS; prints the error. */
int cli_duration(const struct cli *cli, const char *name, const char *arg,
		 int64_t *ns);

/*
 * cli_open - start the loop and open the repository.  Returns 0, or the
 * exit status after printing why (2 for a bad URL or engine).
 */
int cli_open(struct cli *cli);
void cli_close(struct cli *cli);
/* Exit status for a failed library call ERR (after cli_open). */
int cli_status(int err);

/* CLOCK_BOOTTIME now, in ns, as the library's instants. */
int64_t cli_now(void);

int cmd_run(struct cli *cli, int argc, char **argv);
int cmd_list(struct cli *cli, int argc, char **argv);
int cmd_unlock(struct cli *cli, int argc, char **argv);
int cmd_init(struct cli *cli, int argc, char **argv);

/* ------------------------------------------------ text from lock records */

/*
 * text_term - S made safe for a terminal into BUF: control characters
 * (C0, DEL, C1), bidirectional overrides and invalid UTF-8 become '?', and
 * text wider than WIDTH code points ends in "...".  NULL becomes "-".
 * Returns BUF.
 */
char *text_term(const char *s, size_t width, char *buf, size_t size);
/* Writes S as a JSON string (null for NULL): controls (as text_term sees
 * them) escaped as \uXXXX, invalid UTF-8 as \ufffd. */
void text_json(const char *s);
/* Display width of S in code points (S is text_term output). */
size_t text_width(const char *s);
