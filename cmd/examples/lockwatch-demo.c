/*
 * lockwatch-demo: hold three shared locks on a repository while working,
 * and show their refreshes.  The example program of liblockwatch(3).
 *
 *   lockwatch-demo [REPOSITORY [SECONDS]]
 *
 * Build it outside the tree with
 *   cc lockwatch-demo.c $(pkg-config --cflags --libs lockwatch)
 */
#include <lockwatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define NLOCKS 3

static void on_event(struct lw_lock *lock, const struct lw_event *ev, void *userdata)
{
	/* runs on the loop thread */
	printf("  %s: %s\n", (const char *)userdata, ev->msg);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	static const char *const names[NLOCKS] = { "backup-a", "backup-b", "backup-c" };
	const char *url = argc > 1 ? argv[1] : "demo-repo";
	int seconds = argc > 2 ? atoi(argv[2]) : 5;
	struct lw_lock *locks[NLOCKS] = { 0 };
	struct lw_loop *loop = NULL;
	struct lw_repo *repo = NULL;
	int status = 1;

	if (lw_loop_new(LW_ENGINE_DEFAULT, &loop) < 0 || lw_loop_start(loop) < 0 ||
	    lw_repo_new(loop, url, &repo) < 0 || lw_repo_init(repo) < 0 ||
	    lw_repo_set_timing(repo, LW_SEC(1), LW_SEC(5)) < 0) {
		fprintf(stderr, "lockwatch-demo: %s\n", lw_errmsg());
		goto out;
	}
	printf("repository %s, engine %s, refresh every 1s, stale after 5s\n",
	       lw_repo_url(repo), lw_engine_name(lw_loop_engine(loop)));

	for (int i = 0; i < NLOCKS; i++) {
		if (lw_lock_new(repo, 0, names[i], &locks[i]) < 0 ||
		    lw_lock_set_event_fn(locks[i], on_event, (void *)names[i]) < 0 ||
		    lw_lock_acquire(locks[i]) < 0) {
			fprintf(stderr, "lockwatch-demo: %s: %s\n", names[i], lw_errmsg());
			goto out;
		}
	}

	/* The work: a unit at a time, each only while every lock is safe. */
	for (int tick = 0; tick < seconds * 10; tick++) {
		for (int i = 0; i < NLOCKS; i++) {
			struct lw_ctx *ctx = lw_lock_ctx(locks[i]);

			if (lw_ctx_done(ctx)) {
				fprintf(stderr, "lockwatch-demo: %s: %s; stopping the work\n",
					names[i], lw_ctx_cause(ctx));
				goto out;
			}
		}
		usleep(100 * 1000);
	}

	for (int i = 0; i < NLOCKS; i++) {
		if (lw_lock_release(locks[i]) < 0) {
			fprintf(stderr, "lockwatch-demo: %s: %s\n", names[i], lw_errmsg());
			goto out;
		}
	}
	printf("work done, locks released\n");
	status = 0;
out:
	for (int i = 0; i < NLOCKS; i++)
		lw_lock_free(locks[i]);
	lw_repo_unref(repo);
	lw_loop_free(loop);
	return status;
}
