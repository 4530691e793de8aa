/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * lockwatch-bench: the job-file parser and the latency statistics on their
 * own, then short runs of the built binary on a local repository and on a
 * real nginx, on both engines, whose JSON output json-c reads back.
 */
#include "test.h"
#include <criterion/parameterized.h>
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "job.h"
#include "stats.h"
#include "nginx.h"
#include "resticbin.h"

#define NS_PER_MS 1000000LL
#define NS_PER_S 1000000000LL

/* ------------------------------------------------------------ durations */

Test(duration, go_style_and_plain_seconds)
{
	static const struct { const char *s; int64_t ns; } ok[] = {
		{ "250ms", 250 * NS_PER_MS }, { "30s", 30 * NS_PER_S },
		{ "5m", 300 * NS_PER_S }, { "1h30m", 5400 * NS_PER_S },
		{ "1.5s", 1500 * NS_PER_MS }, { "10", 10 * NS_PER_S }, { "0", 0 },
		{ "100us", 100000 }, { "7ns", 7 }, { "1m0.5s", 60500 * NS_PER_MS },
	};
	int64_t v;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		cr_assert_eq(bench_parse_duration(ok[i].s, &v), 0, "%s", ok[i].s);
		cr_assert_eq(v, ok[i].ns, "%s: %lld", ok[i].s, (long long)v);
	}
}

Test(duration, rejects_bad_input)
{
	static const char *const bad[] = { "", "10x", "-1s", "1h30", "s", "ms", "1.2.3s",
					   " 5s", "5s ", "1e3s", "99999999999999999999" };
	int64_t v = 42;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(bench_parse_duration(bad[i], &v), -EINVAL, "'%s' accepted", bad[i]);
	cr_assert_eq(v, 42, "a rejected duration changed the output");
}

/* ------------------------------------------------------------ job files */

struct parsed {
	struct bench_parser *p;
	struct bench_config cfg;
	char err[512];
	int r;
};

/* Parses TEXT (as "job.fio") after the command-line options OPTS. */
static void parse(struct parsed *ps, const char *text, const char *const *opts)
{
	memset(ps, 0, sizeof(*ps));
	ps->p = bench_parser_new();
	cr_assert(ps->p);
	for (; opts && *opts && ps->r == 0; opts++)
		ps->r = bench_parse_option(ps->p, *opts, ps->err, sizeof(ps->err));
	if (ps->r == 0 && text)
		ps->r = bench_parse_text(ps->p, "job.fio", text, ps->err, sizeof(ps->err));
	if (ps->r == 0)
		ps->r = bench_parse_finish(ps->p, &ps->cfg, ps->err, sizeof(ps->err));
}

static void parsed_fini(struct parsed *ps)
{
	bench_config_fini(&ps->cfg);
	bench_parser_free(ps->p);
}

static const char *opt(const struct bench_job *j, const char *key)
{
	const char *v = NULL;

	for (size_t i = 0; i < j->nopts; i++)
		if (strcmp(j->opts[i].key, key) == 0)
			v = j->opts[i].value;
	return v;
}

Test(jobfile, globals_jobs_comments_clones_groups)
{
	static const char text[] =
		"; a comment\n"
		"# another\n"
		"[global]\n"
		"repo = /tmp/r-$jobnum\n"
		"locks=100\n"
		"refresh_interval=10s\n"
		"stale_timeout=1m\n"
		"\n"
		"[a]\n"
		"engine=epoll\n"
		"acquire_rate=2500\n"
		"numjobs=2\n"
		"[b]\n"
		"stonewall\n"
		"acquire_rate=0\n"
		"locks=5\n"
		"repos=5\n"
		"exclusive\n"
		"stall=hang\n";
	static const char *const opts[] = { "runtime=3s", NULL };
	struct parsed ps;

	parse(&ps, text, opts);
	cr_assert_eq(ps.r, 0, "%s", ps.err);
	cr_assert_eq(ps.cfg.njobs, 3);
	cr_assert_eq(ps.cfg.ngroups, 2);
	for (int i = 0; i < 2; i++) {
		const struct bench_job *j = &ps.cfg.jobs[i];
		char repo[32];

		snprintf(repo, sizeof(repo), "/tmp/r-%d", i);
		cr_assert_str_eq(j->name, "a");
		cr_assert_str_eq(j->repo, repo);
		cr_assert_eq(j->jobnum, (unsigned long)i);
		cr_assert_eq(j->group, 0);
		cr_assert_eq(j->engine, LW_ENGINE_EPOLL);
		cr_assert_eq(j->locks, 100);
		cr_assert_eq(j->refresh_interval, 10 * NS_PER_S);
		cr_assert_eq(j->stale_timeout, 60 * NS_PER_S);
		cr_assert_eq(j->runtime, 3 * NS_PER_S, "the command line sets a global");
		cr_assert_eq(j->stall, BENCH_STALL_NONE);
		cr_assert_eq(j->acquire_rate, 2500);
		cr_assert_str_eq(opt(j, "engine"), "epoll");
	}
	cr_assert_str_eq(ps.cfg.jobs[2].name, "b");
	cr_assert_eq(ps.cfg.jobs[2].group, 1, "stonewall starts a group");
	cr_assert_eq(ps.cfg.jobs[2].locks, 5, "a job's own key wins");
	cr_assert(ps.cfg.jobs[2].exclusive, "a bare key is true");
	cr_assert_eq(ps.cfg.jobs[2].stall, BENCH_STALL_HANG);
	cr_assert_eq(ps.cfg.jobs[2].acquire_rate, 0, "0: no limit");
	cr_assert_eq(ps.cfg.jobs[2].engine, LW_ENGINE_AUTO, "the default engine");
	cr_assert_eq(ps.cfg.nglobal, 1);
	cr_assert_str_eq(ps.cfg.global[0].key, "runtime");
	parsed_fini(&ps);
}

Test(jobfile, command_line_jobs)
{
	static const char *const opts[] = { "locks=7", "name=one", "repo=/tmp/x",
					    "name=two", "repo=/tmp/y", "locks=9", NULL };
	struct parsed ps;

	parse(&ps, NULL, opts);
	cr_assert_eq(ps.r, 0, "%s", ps.err);
	cr_assert_eq(ps.cfg.njobs, 2);
	cr_assert_str_eq(ps.cfg.jobs[0].name, "one");
	cr_assert_eq(ps.cfg.jobs[0].locks, 7);
	cr_assert_str_eq(ps.cfg.jobs[1].repo, "/tmp/y");
	cr_assert_eq(ps.cfg.jobs[1].locks, 9);
	parsed_fini(&ps);
}

/* Bad input: the error is one line that says where and what. */
static void expect_error(const char *text, const char *const *opts, const char *want)
{
	struct parsed ps;

	parse(&ps, text, opts);
	cr_assert_eq(ps.r, -EINVAL, "accepted; wanted '%s'", want);
	cr_assert(strstr(ps.err, want), "error '%s' lacks '%s'", ps.err, want);
	cr_assert_null(strchr(ps.err, '\n'), "error is not one line: '%s'", ps.err);
	parsed_fini(&ps);
}

Test(jobfile, bad_input)
{
	static const char *const bad_opt[] = { "lokcs=5", NULL };
	static const char *const bad_opt_value[] = { "runtime=forever", NULL };

	expect_error("[j]\nrepo=/tmp/x\nlokcs=5\n", NULL, "job.fio:3: unknown key 'lokcs'");
	expect_error("[j]\nrepo=/tmp/x\nruntime=10x\n", NULL,
		     "job.fio:3: runtime: bad duration '10x'");
	expect_error("[j]\nrepo=/tmp/x\nrefresh_interval=0\n", NULL,
		     "refresh_interval: bad duration '0'");
	expect_error("[global]\nrepo=/tmp/x\n", NULL, "job.fio: defines no job");
	expect_error("", NULL, "job.fio: defines no job");
	expect_error("repo=/tmp/x\n[j]\n", NULL, "job.fio:1: 'repo' outside of a section");
	expect_error("[j\nrepo=/tmp/x\n", NULL, "job.fio:1: bad section header");
	expect_error("[]\n", NULL, "job.fio:1: bad section header");
	expect_error("[j]\nlocks=0\n", NULL, "locks: bad value '0'");
	expect_error("[j]\nlocks=12abc\n", NULL, "locks: bad value '12abc'");
	expect_error("[j]\nengine=kqueue\n", NULL, "engine: bad value 'kqueue'");
	expect_error("[j]\nexclusive=maybe\n", NULL, "exclusive: bad value 'maybe'");
	expect_error("[j]\nstall=sometimes\n", NULL, "stall: bad value 'sometimes'");
	expect_error("[j]\nacquire_rate=-1\n", NULL, "acquire_rate: bad value '-1'");
	expect_error("[j]\nlist_depth=1025\n", NULL, "list_depth: bad value '1025'");
	expect_error("[j]\nlocks=3\n", NULL, "job 'j': no repo given");
	expect_error("[j]\nrepo=/tmp/x\nrefresh_interval=10s\nstale_timeout=15s\n", NULL,
		     "must be longer than 1.5 x refresh_interval");
	expect_error("[j]\nrepo=/tmp/x\nlocks=4\nexclusive=1\n", NULL,
		     "exclusive locks conflict with each other");
	expect_error("[j]\nrepo=/tmp/x\nrepos=4\n", NULL, "repos=4 is more than locks=1");
	expect_error(NULL, bad_opt, "--lokcs=5: unknown key 'lokcs'");
	expect_error(NULL, bad_opt_value, "--runtime=forever: runtime: bad duration");
	expect_error(NULL, NULL, "no jobs");
	expect_error("[s]\nrepo=/tmp/x\nstall=hang\n[n]\nrepo=/tmp/x/sub\n", NULL,
		     "job 's' (stall=hang) and job 'n' (stall=none) share repository /tmp/x");
}

Test(jobfile, unreadable_file)
{
	struct bench_parser *p = bench_parser_new();
	char err[300];

	cr_assert_eq(bench_parse_file(p, "/nonexistent/job.fio", err, sizeof(err)), -ENOENT);
	cr_assert(strstr(err, "/nonexistent/job.fio: "), "%s", err);
	bench_parser_free(p);
}

/* ----------------------------------------------------------- percentiles */

Test(stats, small_values_are_exact)
{
	struct bench_hist *h = malloc(sizeof(*h));

	bench_hist_init(h);
	for (int v = 1; v <= 100; v++)
		bench_hist_add(h, v);
	cr_assert_eq(h->n, 100);
	cr_assert_eq(h->min, 1);
	cr_assert_eq(h->max, 100);
	cr_assert_float_eq(h->mean, 50.5, 1e-9);
	/* sample stdev of 1..100 */
	cr_assert_float_eq(bench_hist_stdev(h), sqrt(100.0 * 101.0 / 12.0), 1e-9);
	cr_assert_eq(bench_hist_percentile(h, 50), 50);
	cr_assert_eq(bench_hist_percentile(h, 1), 1);
	cr_assert_eq(bench_hist_percentile(h, 99), 99);
	cr_assert_eq(bench_hist_percentile(h, 99.99), 100);
	free(h);
}

Test(stats, large_values_within_one_percent)
{
	struct bench_hist *h = malloc(sizeof(*h));

	bench_hist_init(h);
	/* 1 us .. 10 ms in 1 us steps */
	for (int64_t v = 1; v <= 10000; v++)
		bench_hist_add(h, v * 1000);
	for (int i = 0; i < BENCH_NPCT; i++) {
		double want = ceil(bench_pct[i] / 100.0 * 10000) * 1000;
		double got = (double)bench_hist_percentile(h, bench_pct[i]);

		cr_assert(fabs(got - want) <= want / 128 + 1, "p%g: %.0f, want %.0f",
			  bench_pct[i], got, want);
	}
	cr_assert_eq(bench_hist_percentile(h, 100), 10000000, "clamped to max");
	free(h);
}

Test(stats, empty_single_and_huge)
{
	struct bench_hist *h = malloc(sizeof(*h));

	bench_hist_init(h);
	cr_assert_eq(bench_hist_percentile(h, 50), 0);
	cr_assert_float_eq(bench_hist_stdev(h), 0, 1e-12);
	bench_hist_add(h, 123456789);
	for (int i = 0; i < BENCH_NPCT; i++)
		cr_assert_eq(bench_hist_percentile(h, bench_pct[i]), 123456789,
			     "one sample is every percentile");
	bench_hist_add(h, INT64_MAX);
	bench_hist_add(h, -5);
	cr_assert_eq(h->max, INT64_MAX);
	cr_assert_eq(h->min, 0, "a negative latency counts as 0");
	cr_assert_eq(bench_hist_percentile(h, 99.99), INT64_MAX);
	free(h);
}

/* ----------------------------------------------- the binary, end to end */

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int count_lock_files(const char *repo)
{
	char path[700];
	struct dirent *de;
	DIR *d;
	int n = 0;

	snprintf(path, sizeof(path), "%s/locks", repo);
	d = opendir(path);
	cr_assert(d, "%s: %s", path, strerror(errno));
	while ((de = readdir(d)))
		n += de->d_name[0] != '.' || strncmp(de->d_name, ".tmp-", 5) == 0;
	closedir(d);
	return n;
}

/* Runs lockwatch-bench with ARGS (a shell word list); returns its exit
 * status and its stdout in *OUT (stderr in *ERR if ERR). */
static int run_bench(const char *args, char **out, char **err)
{
	char cmd[2048], errpath[] = "/tmp/lwbench-err-XXXXXX";
	int fd = mkstemp(errpath), status;
	size_t len = 0, cap = 1 << 16;
	char *buf = malloc(cap);
	FILE *f;

	cr_assert(fd >= 0 && buf);
	close(fd);
	snprintf(cmd, sizeof(cmd), "%s %s 2>%s", BENCH_BIN, args, errpath);
	f = popen(cmd, "r");
	cr_assert(f, "popen: %s", strerror(errno));
	for (size_t n; (n = fread(buf + len, 1, cap - len - 1, f)) > 0;) {
		len += n;
		if (cap - len < 4096)
			cr_assert(buf = realloc(buf, cap *= 2));
	}
	buf[len] = '\0';
	status = pclose(f);
	*out = buf;
	if (err) {
		f = fopen(errpath, "r");
		cr_assert(f);
		*err = calloc(1, 4096);
		cr_assert(*err);
		(void)!fread(*err, 1, 4095, f);
		fclose(f);
	}
	unlink(errpath);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* PATH: keys separated by '/' (percentile keys hold dots). */
static json_object *get(json_object *o, const char *path)
{
	char key[64];
	const char *dot;

	while (o && *path) {
		dot = strchr(path, '/');
		snprintf(key, sizeof(key), "%.*s", (int)(dot ? dot - path : (int)strlen(path)),
			 path);
		if (!json_object_object_get_ex(o, key, &o))
			cr_assert_fail("no '%s' in the JSON output", key);
		path = dot ? dot + 1 : "";
	}
	return o;
}

static int64_t num(json_object *o, const char *path)
{
	return json_object_get_int64(get(o, path));
}

static json_object *job_named(json_object *root, const char *name)
{
	json_object *jobs = get(root, "jobs");

	for (size_t i = 0; i < json_object_array_length(jobs); i++) {
		json_object *j = json_object_array_get_idx(jobs, i);

		if (strcmp(json_object_get_string(get(j, "jobname")), name) == 0)
			return j;
	}
	cr_assert_fail("no job '%s'", name);
	return NULL;
}

/* Every one of the LOCKS locks of stall job NAME was cancelled at its
 * deadline; returns the job. */
static json_object *assert_stalled(json_object *root, const char *name, int64_t locks)
{
	json_object *j = job_named(root, name);

	cr_assert_eq(num(j, "error"), 0, "%s", name);
	cr_assert_eq(num(j, "locks/lost"), locks,
		     "%s: every lock is lost (lost %lld, failed %lld: %s)", name,
		     (long long)num(j, "locks/lost"), (long long)num(j, "locks/failed"),
		     json_object_get_string(get(j, "errmsg")));
	cr_assert_eq(num(j, "locks/held"), 0, "%s", name);
	cr_assert_eq(num(j, "cancel/missed"), 0, "%s", name);
	cr_assert_eq(num(j, "cancel/lat_ns/N"), locks, "%s: each at its deadline", name);
	cr_assert_geq(num(j, "cancel/lat_ns/min"), 0);
	/* cancelled within a second of the deadline, on a busy machine */
	cr_assert_lt(num(j, "cancel/lat_ns/percentile/99.000000"), NS_PER_S, "%s", name);
	return j;
}

/* By value: the test runs in another process, where pointers into this
 * one mean nothing. */
struct engine {
	char name[8];
};

ParameterizedTestParameters(bench, runs)
{
	static struct engine engines[] = { { "uring" }, { "epoll" } };

	return cr_make_param_array(struct engine, engines, 2);
}

/*
 * Three groups on one engine: 200 locks refreshed every 200 ms for a
 * second, then 100 locks whose refresh writes hang, then 100 whose writes
 * fail.  Bounds are wide: the machine is shared and noisy.  The stalled
 * groups' stale timeout (5 s, deadline 4.7 s after a write) leaves time to
 * confirm 100 locks acquired at once on a loaded machine: with four runs
 * at once beside check-valgrind, up to all 100 acquires failed "could not
 * be confirmed before its deadline" with 1 s (0.7 s), 1 in 1600 with 3 s.
 */
ParameterizedTest(struct engine *engine, bench, runs, .timeout = 120)
{
	char dir[] = "/tmp/lwbench-XXXXXX", args[1500], repo[600];
	json_object *root, *j, *p99;
	char *out;
	int st;

	cr_assert(mkdtemp(dir));
	snprintf(args, sizeof(args),
		 "--output-format=json --engine=%s --refresh_interval=200ms "
		 "--name=normal --repo=%s/normal --locks=200 --stale_timeout=5s --runtime=1s "
		 "--name=hang --stonewall --repo=%s/hang --locks=100 --stale_timeout=5s "
		 "--runtime=20s --stall=hang --acquire_rate=100 "
		 "--name=fail --stonewall --repo=%s/fail --locks=100 --stale_timeout=5s "
		 "--runtime=20s --stall=fail",
		 engine->name, dir, dir, dir);
	st = run_bench(args, &out, NULL);
	cr_assert_eq(st, 0, "exit status %d; output:\n%s", st, out);
	root = json_tokener_parse(out);
	cr_assert(root, "the JSON output does not parse:\n%s", out);

	j = job_named(root, "normal");
	cr_assert_str_eq(json_object_get_string(get(j, "engine")), engine->name);
	cr_assert_eq(num(j, "error"), 0);
	cr_assert_eq(num(j, "locks/held"), 200, "every lock asked for is held");
	cr_assert_eq(num(j, "locks/lost"), 0);
	cr_assert_eq(num(j, "create/total_ios"), 200, "one create per acquire");
	cr_assert_gt(num(j, "list/total_ios"), 0);
	/* 200 locks every 200 ms for 1 s: about 1000, at least some */
	cr_assert_gt(num(j, "refresh/total_ios"), 100);
	cr_assert_lt(num(j, "refresh/total_ios"), 2000);
	cr_assert_eq(num(j, "refresh/errors"), 0);
	cr_assert_gt(num(j, "delete/total_ios"), 0);
	p99 = get(j, "refresh/lat_ns/percentile/99.000000");
	cr_assert_gt(json_object_get_int64(p99), 0);
	cr_assert_geq(json_object_get_int64(p99), num(j, "refresh/lat_ns/min"));
	cr_assert_leq(json_object_get_int64(p99), num(j, "refresh/lat_ns/max"));
	cr_assert_gt(json_object_get_double(get(j, "refresh/iops")), 50);
	cr_assert_eq(num(j, "cancel/lat_ns/N"), 0, "nothing was cancelled");
	cr_assert_eq(num(j, "key/total_ios"), 0, "no key on a plain repository");
	/* every acquire's phases: the recheck delay is the default 200 ms,
	 * and the phases add up to the whole */
	{
		static const char *const ph[] = { "check1", "wait", "create", "recheck",
						  "check2" };
		char key[64];
		double sum = 0;

		for (size_t k = 0; k < sizeof(ph) / sizeof(ph[0]); k++) {
			snprintf(key, sizeof(key), "acquire/%s/lat_ns/N", ph[k]);
			cr_assert_eq(num(j, key), 200, "%s", key);
			snprintf(key, sizeof(key), "acquire/%s/lat_ns/mean", ph[k]);
			sum += json_object_get_double(get(j, key));
		}
		cr_assert_eq(num(j, "acquire/recheck/lat_ns/min"), 200 * NS_PER_MS);
		cr_assert_eq(num(j, "acquire/total/lat_ns/N"), 200);
		cr_assert_geq(num(j, "acquire/total/lat_ns/min"), 200 * NS_PER_MS);
		cr_assert(fabs(sum - json_object_get_double(get(j, "acquire/total/lat_ns/mean"))) <
				  NS_PER_MS,
			  "the phases add up to the acquire (%.0f ns)", sum);
	}
	cr_assert_gt(num(j, "mem/rss_held_kib"), 0);
	/* the resident set grows with the locks (the heap figure comes from
	 * mallinfo2, which a sanitizer's allocator leaves at 0) */
	cr_assert_gt(json_object_get_double(get(j, "mem/bytes_per_lock")), 0);
	cr_assert_geq(json_object_get_double(get(j, "mem/heap_bytes_per_lock")), 0);

	assert_stalled(root, "hang", 100);
	/* 100 acquires at 100 a second: the first at once, the last after 0.99 s */
	cr_assert_geq(num(job_named(root, "hang"), "create/runtime"), 990,
		      "acquire_rate paces the acquires");
	assert_stalled(root, "fail", 100);
	cr_assert_gt(num(job_named(root, "fail"), "refresh/errors"), 0);

	/* nothing left behind */
	for (int k = 0; k < 3; k++) {
		snprintf(repo, sizeof(repo), "%s/%s", dir, (const char *[]){ "normal", "hang",
									   "fail" }[k]);
		cr_assert_eq(count_lock_files(repo), 0, "%s: lock files left", repo);
	}
	json_object_put(root);
	free(out);
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* The one key file of restic repository R, read with json-c. */
static json_object *key_file(const struct lwt_restic_repo *r)
{
	char path[700];
	struct dirent *de;
	json_object *o = NULL;
	DIR *d;

	snprintf(path, sizeof(path), "%s/keys", r->disk);
	d = opendir(path);
	cr_assert(d, "%s: %s", path, strerror(errno));
	while ((de = readdir(d)))
		if (de->d_name[0] != '.') {
			cr_assert_null(o, "one key file");
			snprintf(path, sizeof(path), "%s/keys/%s", r->disk, de->d_name);
			o = json_object_from_file(path);
			cr_assert(o, "%s does not parse", path);
		}
	closedir(d);
	cr_assert(o, "no key file in %s/keys", r->disk);
	return o;
}

ParameterizedTestParameters(bench, key_on_a_restic_repo)
{
	static struct engine engines[] = { { "uring" }, { "epoll" } };

	return cr_make_param_array(struct engine, engines, 2);
}

/*
 * On a repository restic 0.14 made, the key operation is the one key
 * derivation, with the scrypt parameters of restic's key file and their
 * memory really resident at the peak; then the locks are restic's, held
 * and refreshed.  With a wrong password the derivation is an error, no
 * lock is held and nothing is written.
 */
ParameterizedTest(struct engine *engine, bench, key_on_a_restic_repo, .timeout = 180)
{
	struct lwt_restic_repo repo;
	json_object *root, *j, *kf;
	char args[1200], *out, *err;
	int64_t n, r, p;
	int st;

	lwt_restic_init(&repo, 2);
	kf = key_file(&repo);
	n = num(kf, "N");
	r = num(kf, "r");
	p = num(kf, "p");
	snprintf(args, sizeof(args), "--output-format=json --engine=%s --name=restic "
		 "--repo=%s --locks=20 --refresh_interval=200ms --stale_timeout=5s "
		 "--runtime=1s", engine->name, repo.path);
	cr_assert_eq(setenv("RESTIC_PASSWORD", LWT_RESTIC_PASSWORD, 1), 0);
	st = run_bench(args, &out, &err);
	cr_assert_eq(st, 0, "exit status %d; stderr:\n%s", st, err);
	root = json_tokener_parse(out);
	cr_assert(root, "the JSON output does not parse:\n%s", out);
	j = job_named(root, "restic");
	cr_assert_eq(num(j, "error"), 0, "%s", json_object_get_string(get(j, "errmsg")));
	cr_assert_eq(num(j, "key/total_ios"), 1, "one derivation per repository");
	cr_assert_eq(num(j, "key/errors"), 0);
	/* restic calibrates scrypt to about 0.5 s: milliseconds at the least */
	cr_assert_gt(num(j, "key/lat_ns/min"), 10 * NS_PER_MS);
	cr_assert_eq(num(j, "key/scrypt/N"), n);
	cr_assert_eq(num(j, "key/scrypt/r"), r);
	cr_assert_eq(num(j, "key/scrypt/p"), p);
	cr_assert_eq(num(j, "key/scrypt/memory_bytes"), 128 * r * (n + p));
	cr_assert_geq(num(j, "key/rss_peak_kib") * 1024, 128 * r * n,
		      "scrypt's memory was resident at the peak");
	cr_assert_eq(num(j, "locks/held"), 20);
	cr_assert_gt(num(j, "refresh/total_ios"), 20);
	cr_assert_eq(num(j, "refresh/errors"), 0);
	cr_assert_eq(count_lock_files(repo.disk), 0, "lock files left");
	json_object_put(root);
	free(out);
	free(err);

	cr_assert_eq(setenv("RESTIC_PASSWORD", "not the password", 1), 0);
	snprintf(args, sizeof(args), "--output-format=json --engine=%s --name=wrong "
		 "--repo=%s --locks=3 --runtime=1s", engine->name, repo.path);
	st = run_bench(args, &out, &err);
	root = json_tokener_parse(out);
	cr_assert(root, "exit status %d; the JSON output does not parse:\n%s", st, out);
	j = job_named(root, "wrong");
	cr_assert_eq(num(j, "key/total_ios"), 0);
	cr_assert_eq(num(j, "key/errors"), 1, "the derivation that opened nothing");
	cr_assert_eq(num(j, "locks/held"), 0);
	cr_assert_eq(num(j, "locks/failed"), 3);
	cr_assert(strstr(json_object_get_string(get(j, "errmsg")), "wrong password"),
		  "%s", json_object_get_string(get(j, "errmsg")));
	cr_assert_eq(count_lock_files(repo.disk), 0, "a wrong password writes nothing");
	json_object_put(root);
	json_object_put(kf);
	free(out);
	free(err);
	lwt_restic_remove(&repo);
}

/* --repo=DIR/a/b --repos=3 where DIR/a does not exist: made, as fio
 * makes the folders of its files (issue 16). */
Test(bench, repos_in_a_missing_folder, .timeout = 60)
{
	char dir[] = "/tmp/lwbench-XXXXXX", args[800], repo[700];
	json_object *root, *j;
	char *out, *err;
	int st;

	cr_assert(mkdtemp(dir));
	snprintf(args, sizeof(args), "--output-format=json --name=m --repo=%s/a/b --repos=3 "
		 "--locks=6 --runtime=1s", dir);
	st = run_bench(args, &out, &err);
	cr_assert_eq(st, 0, "exit status %d; stderr:\n%s", st, err);
	root = json_tokener_parse(out);
	cr_assert(root, "the JSON output does not parse:\n%s", out);
	j = job_named(root, "m");
	cr_assert_eq(num(j, "error"), 0);
	cr_assert_eq(num(j, "locks/held"), 6);
	for (int i = 0; i < 3; i++) {
		snprintf(repo, sizeof(repo), "%s/a/b/%d", dir, i);
		cr_assert_eq(count_lock_files(repo), 0, "%s: lock files left", repo);
	}
	json_object_put(root);
	free(out);
	free(err);
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* list_depth: listings back to back during runtime, measured there and
 * only there (the acquire's are not counted), and nothing else runs. */
Test(bench, list_depth_lists_during_runtime, .timeout = 60)
{
	char dir[] = "/tmp/lwbench-XXXXXX", args[800];
	json_object *root, *j;
	char *out;
	int st;

	cr_assert(mkdtemp(dir));
	snprintf(args, sizeof(args),
		 "--output-format=json --name=lists --repo=%s/lists --locks=3 --list_depth=2 "
		 "--refresh_interval=1m --runtime=1s", dir);
	st = run_bench(args, &out, NULL);
	cr_assert_eq(st, 0, "exit status %d; output:\n%s", st, out);
	root = json_tokener_parse(out);
	cr_assert(root, "the JSON output does not parse:\n%s", out);
	j = job_named(root, "lists");
	cr_assert_eq(num(j, "error"), 0);
	cr_assert_eq(num(j, "locks/held"), 3);
	/* a local listing of 3 files takes well under 10 ms */
	cr_assert_gt(num(j, "list/total_ios"), 100, "%lld listings in 1 s",
		     (long long)num(j, "list/total_ios"));
	cr_assert_geq(num(j, "list/runtime"), 1000, "measured over the runtime");
	cr_assert_lt(num(j, "list/runtime"), 2000);
	cr_assert_eq(num(j, "refresh/total_ios"), 0);
	snprintf(args, sizeof(args), "%s/lists", dir);
	cr_assert_eq(count_lock_files(args), 0, "lock files left");
	json_object_put(root);
	free(out);
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

Test(bench, bad_option_is_one_line, .timeout = 30)
{
	char *out, *err;
	int st = run_bench("--name=x --repo=/tmp/x --lokcs=5", &out, &err);

	cr_assert_eq(st, 2);
	cr_assert_str_eq(out, "");
	cr_assert_str_eq(err, "lockwatch-bench: --lokcs=5: unknown key 'lokcs'\n");
	free(out);
	free(err);
}

/*
 * Stall mode over HTTP, on a real nginx: 100 dav: locks whose refresh
 * writes go to a listener that never answers, then 100 rest: locks whose
 * refresh writes are reset.  Each lock is cancelled at its deadline; no
 * refresh write reaches nginx (its log holds only the acquires' creates);
 * the deletes do, and nothing is left behind.  The first refresh is due
 * 3 s after a lock is taken: the acquires are over long before, even on a
 * busy machine, so that no refresh runs unarmed.
 */
ParameterizedTestParameters(bench, http_stall)
{
	static struct engine engines[] = { { "uring" }, { "epoll" } };

	return cr_make_param_array(struct engine, engines, 2);
}

ParameterizedTest(struct engine *engine, bench, http_stall, .timeout = 120)
{
	struct lwt_nginx *ng = lwt_nginx_start();
	char args[2000], dav[300], rest[300], needle[64];
	json_object *root, *j;
	char *out;
	size_t n;
	int st;

	cr_assert(ng, "nginx did not start");
	snprintf(dav, sizeof(dav), "%s", lwt_nginx_url(ng, LWT_DAV, "/bhang/"));
	snprintf(rest, sizeof(rest), "%s", lwt_nginx_url(ng, LWT_REST, "/bfail/"));
	/* refreshability: 9 s - 1.5 x 3 s = 4.5 s */
	snprintf(args, sizeof(args),
		 "--output-format=json --engine=%s --refresh_interval=3s --stale_timeout=9s "
		 "--locks=100 --runtime=30s "
		 "--name=hang --repo=%s --stall=hang "
		 "--name=fail --stonewall --repo=%s --stall=fail",
		 engine->name, dav, rest);
	st = run_bench(args, &out, NULL);
	cr_assert_eq(st, 0, "exit status %d; output:\n%s", st, out);
	root = json_tokener_parse(out);
	cr_assert(root, "the JSON output does not parse:\n%s", out);

	for (int k = 0; k < 2; k++) {
		const char *name = k ? "fail" : "hang";

		j = assert_stalled(root, name, 100);
		cr_assert_eq(num(j, "refresh/total_ios"), 0, "%s: no refresh succeeded", name);
		cr_assert_gt(num(j, "refresh/errors"), 0, "%s", name);
	}
	/* the creates nginx saw are the acquires' (and dav: init's locks/.keep) */
	snprintf(needle, sizeof(needle), "%d PUT /bhang/locks/", lwt_nginx_port(ng, LWT_DAV));
	n = lwt_nginx_log_count(ng, needle);
	cr_assert_eq(n, 101, "dav: %zu PUTs", n);
	snprintf(needle, sizeof(needle), "%d POST /bfail/locks/", lwt_nginx_port(ng, LWT_REST));
	n = lwt_nginx_log_count(ng, needle);
	cr_assert_eq(n, 100, "rest: %zu POSTs", n);
	cr_assert_eq(lwt_nginx_count_locks(ng, "/bhang/"), 0, "dav: lock files left");
	cr_assert_eq(lwt_nginx_count_locks(ng, "/bfail/"), 0, "rest: lock files left");
	json_object_put(root);
	free(out);
	lwt_nginx_stop(ng);
}
