/* SPDX-License-Identifier: BSD-2-Clause */
/* lockwatch list, unlock and init: looking at a repository's locks. */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

/* Column widths, in code points, of the text fields of the table. */
#define W_HOST 24
#define W_USER 12
#define W_PURPOSE 48

static const char *kind_name(enum lw_lock_kind kind)
{
	switch (kind) {
	case LW_KIND_SHARED:
		return "shared";
	case LW_KIND_EXCLUSIVE:
		return "exclusive";
	case LW_KIND_FOREIGN:
		return "foreign";
	case LW_KIND_INVALID:
		return "invalid";
	case LW_KIND_EMPTY:
		return "empty";
	}
	return "?";
}

static bool has_record(const struct lw_lock_info *info)
{
	return info->kind == LW_KIND_SHARED || info->kind == LW_KIND_EXCLUSIVE;
}

/* Prints S padded to WIDTH code points (S is terminal-safe already). */
static void cell(const char *s, size_t width, bool last)
{
	size_t w = text_width(s);

	fputs(s, stdout);
	if (!last)
		printf("%*s", (int)(width > w ? width - w + 2 : 2), "");
}

static void print_row(const struct lw_lock_info *info)
{
	char host[4 * W_HOST], user[4 * W_USER], purpose[4 * W_PURPOSE], age[32];
	char pid[24], id[13];

	snprintf(id, sizeof(id), "%.12s", info->id);
	cell(id, 12, false);
	cell(kind_name(info->kind), 9, false);
	if (!has_record(info)) {
		/* a foreign or invalid file: what is wrong with it */
		text_term(info->why ? info->why : "", W_PURPOSE, purpose, sizeof(purpose));
		printf("%-*s  %-*s  %7s  %8s  %-5s  %-9s  %s\n", W_HOST, "-", W_USER, "-", "-",
		       "-", "-", "-", purpose);
		return;
	}
	snprintf(pid, sizeof(pid), "%" PRId64, info->pid);
	cell(text_term(info->hostname, W_HOST, host, sizeof(host)), W_HOST, false);
	cell(text_term(info->username, W_USER, user, sizeof(user)), W_USER, false);
	printf("%7s  %8s  %-5s  %-9s  ", pid, lw_duration_format(info->age, age, sizeof(age)),
	       info->stale ? "yes" : "no", info->tool ? info->tool : "-");
	cell(text_term(info->purpose, W_PURPOSE, purpose, sizeof(purpose)), 0, true);
	putchar('\n');
}

static int list_row(const struct lw_lock_info *info, void *userdata)
{
	int *n = userdata;

	if ((*n)++ == 0)
		printf("%-12s  %-9s  %-*s  %-*s  %7s  %8s  %-5s  %-9s  %s\n", "ID", "TYPE",
		       W_HOST, "HOST", W_USER, "USER", "PID", "AGE", "STALE", "TOOL", "PURPOSE");
	print_row(info);
	return 0;
}

static void json_field(const char *name, const char *value, bool *first)
{
	printf("%s\"%s\": ", *first ? "" : ", ", name);
	text_json(value);
	*first = false;
}

static void json_int(const char *name, int64_t value, bool *first)
{
	printf("%s\"%s\": %" PRId64, *first ? "" : ", ", name, value);
	*first = false;
}

static void json_bool(const char *name, bool value, bool *first)
{
	printf("%s\"%s\": %s", *first ? "" : ", ", name, value ? "true" : "false");
	*first = false;
}

static int list_json(const struct lw_lock_info *info, void *userdata)
{
	int *n = userdata;
	bool first = true;

	printf("%s\n  {", (*n)++ ? "," : "[");
	json_field("id", info->id, &first);
	json_field("kind", kind_name(info->kind), &first);
	json_bool("stale", info->stale, &first);
	json_bool("own", info->own, &first);
	if (has_record(info)) {
		json_bool("exclusive", info->kind == LW_KIND_EXCLUSIVE, &first);
		json_int("time_ns", info->time, &first);
		json_int("age_ns", info->age, &first);
		json_int("stale_timeout_ns", info->stale_timeout, &first);
		json_field("hostname", info->hostname, &first);
		json_field("username", info->username, &first);
		json_int("pid", info->pid, &first);
		json_int("uid", info->uid, &first);
		json_int("gid", info->gid, &first);
		json_field("boot_id", info->boot_id, &first);
		json_field("purpose", info->purpose, &first);
		json_field("tool", info->tool, &first);
	} else {
		json_field("why", info->why, &first);
	}
	putchar('}');
	return 0;
}

static int parse_simple(struct cli *cli, int argc, char **argv, const char *help,
			const char *flag, bool *set)
{
	const struct option longopts[] = {
		CLI_GLOBAL_OPTIONS,
		{ flag ? flag : "-", no_argument, NULL, OPT_CMD_BASE },
		{ 0 },
	};
	int c;

	while ((c = cli_getopt(cli, argc, argv, "+:" CLI_GLOBAL_SHORT, longopts)) != -1) {
		if (c == 'h') {
			fputs(help, stdout);
			return -1;
		}
		if (c != OPT_CMD_BASE)
			return EXIT_USAGE;
		*set = true;
	}
	if (optind < argc) {
		char safe[64];

		return cli_usage_error(cli, "unexpected argument '%s'",
				       text_term(argv[optind], 32, safe, sizeof(safe)));
	}
	return cli_open(cli);
}

int cmd_list(struct cli *cli, int argc, char **argv)
{
	static const char help[] =
		"Usage: lockwatch [-r URL] list [--json]\n"
		"\n"
		"Show every lock file of the repository, oldest first: id, shared or\n"
		"exclusive, host, user, pid, age, whether it is stale, the tool that wrote it\n"
		"(lockwatch or restic, on a restic repository) and purpose.  Files\n"
		"that are not lockwatch records are shown as foreign (another tool's lock,\n"
		"which blocks like an exclusive lock) or invalid.\n"
		"\n"
		"  --json   one JSON array of objects, for programs\n";
	bool json = false;
	int n = 0, r = parse_simple(cli, argc, argv, help, "json", &json);

	if (r)
		return r < 0 ? 0 : r;
	r = lw_repo_list(cli->repo, json ? list_json : list_row, &n);
	if (r < 0) {
		cli_error(cli, "%s", lw_errmsg());
		cli_close(cli);
		return EXIT_FAIL;
	}
	if (json)
		fputs(n ? "\n]\n" : "[]\n", stdout);
	else if (n == 0)
		cli_note(cli, "no locks in %s", lw_repo_url(cli->repo));
	cli_close(cli);
	return fflush(stdout) == 0 ? 0 : EXIT_FAIL;
}

struct unlock_state {
	struct cli *cli;
	int failed;
};

static int unlock_row(const struct lw_lock_info *info, void *userdata)
{
	struct unlock_state *st = userdata;
	char host[4 * W_HOST], user[4 * W_USER], age[32], what[200];

	if (has_record(info))
		snprintf(what, sizeof(what), "%s%s lock of %s@%s, pid %" PRId64 ", age %s",
			 info->stale ? "stale " : "", kind_name(info->kind),
			 text_term(info->username, W_USER, user, sizeof(user)),
			 text_term(info->hostname, W_HOST, host, sizeof(host)), info->pid,
			 lw_duration_format(info->age, age, sizeof(age)));
	else
		snprintf(what, sizeof(what), "%s file", kind_name(info->kind));
	if (info->err) {
		cli_error(st->cli, "could not remove %.12s (%s): %s", info->id, what,
			  lw_strerror(info->err));
		st->failed++;
	} else if (st->cli->verbosity >= 0) {
		printf("removed %.12s (%s)\n", info->id, what);
	}
	return 0;
}

int cmd_unlock(struct cli *cli, int argc, char **argv)
{
	static const char help[] =
		"Usage: lockwatch [-r URL] unlock [--remove-all]\n"
		"\n"
		"Remove the stale locks of the repository: those whose record is older than\n"
		"its stale timeout, and those of processes that no longer run on this host.\n"
		"Their holders were strict and stopped working at their deadline.\n"
		"\n"
		"  --remove-all   remove every lock file, live, foreign or invalid too;\n"
		"                 the work of a live holder is stopped at its next refresh\n";
	struct unlock_state st = { .cli = cli };
	bool all = false;
	int r = parse_simple(cli, argc, argv, help, "remove-all", &all);

	if (r)
		return r < 0 ? 0 : r;
	r = lw_repo_unlock(cli->repo, all ? LW_UNLOCK_ALL : 0, unlock_row, &st);
	if (r < 0) {
		cli_error(cli, "%s", lw_errmsg());
		cli_close(cli);
		return EXIT_FAIL;
	}
	if (r == 0 && !st.failed && cli->verbosity >= 0)
		printf("no %slocks to remove in %s\n", all ? "" : "stale ", lw_repo_url(cli->repo));
	cli_close(cli);
	return st.failed ? EXIT_FAIL : 0;
}

int cmd_init(struct cli *cli, int argc, char **argv)
{
	static const char help[] =
		"Usage: lockwatch [-r URL] init\n"
		"\n"
		"Create the repository's locks/ folder (and, for a local repository, the\n"
		"repository folder itself).  An existing repository is left as it is.\n";
	bool unused = false;
	int r = parse_simple(cli, argc, argv, help, NULL, &unused);

	if (r)
		return r < 0 ? 0 : r;
	r = lw_repo_init(cli->repo);
	if (r < 0)
		cli_error(cli, "%s", lw_errmsg());
	else
		cli_note(cli, "initialised %s", lw_repo_url(cli->repo));
	cli_close(cli);
	return r < 0 ? EXIT_FAIL : 0;
}
