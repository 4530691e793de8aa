/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Debian's restic (0.14) as the other client of restic repositories: makes
 * them, holds a real lock of its own, reads the locks lockwatch writes.  It
 * runs with the password in RESTIC_PASSWORD, without a cache, its output
 * kept.  restic missing is a failure, never a skip: the tests it serves
 * prove that restic and lockwatch see each other, which nothing else can.
 */
#pragma once

#include <stddef.h>
#include <sys/types.h>

#define LWT_RESTIC_PASSWORD "correct horse battery staple"

/* A repository made by `restic init --repository-version VERSION` in a
 * temporary directory of its own: a local one, or one served by `rclone
 * serve restic` (a real restic REST server) on a loopback port. */
struct lwt_restic_repo {
	char dir[64];     /* the temporary directory */
	char path[128];   /* the repository as restic and lockwatch take it */
	char disk[96];    /* the repository on disk: DIR/repo */
	char payload[96]; /* a small file beside it, for restic backup */
	int version;
	pid_t rclone;     /* rest: the server */
	int port;
};

/* Makes a local repository; a test assertion fails if restic cannot. */
void lwt_restic_init(struct lwt_restic_repo *r, int version);
/* Makes one on a REST server that rclone serves over DIR. */
void lwt_restic_init_rest(struct lwt_restic_repo *r, int version);
/* Stops the server, removes the directory. */
void lwt_restic_remove(struct lwt_restic_repo *r);

/*
 * lwt_restic_run - run `restic -r PATH ARGS...` (a NULL-terminated list) to
 * its end, within 120 s; OUT gets its stdout and stderr (SIZE bytes, NUL
 * terminated).  Returns its exit status, 127 when restic cannot be run.
 */
int lwt_restic_run(const char *path, char *out, size_t size, const char *const *args);

/* A `restic backup --stdin` that reads a pipe the test keeps open: it holds
 * restic's shared lock until lwt_restic_hold_end. */
struct lwt_restic_hold {
	pid_t pid;
	int pipe;           /* its stdin */
	char lock[65];      /* the name of its lock file */
	char out[256];      /* where its output goes */
};

/* Starts the backup and waits (up to 60 s) until its lock file is in R's
 * locks/; a test assertion fails if none comes. */
void lwt_restic_hold(struct lwt_restic_hold *h, const struct lwt_restic_repo *r);
/* Ends the input and waits for restic to finish; returns its exit status. */
int lwt_restic_hold_end(struct lwt_restic_hold *h);

/* The content of PATH, in a buffer of at most SIZE bytes; the length, or -1. */
ssize_t lwt_read_file(const char *path, void *buf, size_t size);
