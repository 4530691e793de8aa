/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Real WebDAV servers for the dav: tests, each started on a free loopback
 * port with its own configuration, logs and data in a temporary directory
 * and stopped by the test: Apache 2.4 with mod_dav and mod_dav_fs, nginx
 * with its dav module and the dav-ext module (PROPFIND), and `rclone serve
 * webdav` over a local folder.  What each answers is recorded in webdav.c.
 * Apache also guards /basic/ and /digest/ with the authentication schemes
 * of those names.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* Apache asks for this user under /basic/ (Basic) and /digest/ (Digest). */
#define LWT_WEBDAV_USER "bob"
#define LWT_WEBDAV_PASSWORD "pa55word"
#define LWT_WEBDAV_REALM "lockwatch"

enum lwt_webdav_kind { LWT_WEBDAV_APACHE, LWT_WEBDAV_NGINX, LWT_WEBDAV_RCLONE };

struct lwt_webdav;

/* "apache", "nginx-dav-ext", "rclone" */
const char *lwt_webdav_name(enum lwt_webdav_kind kind);

/* Starts the server and waits until it answers; NULL (with a message on
 * stderr) if it cannot. */
struct lwt_webdav *lwt_webdav_start(enum lwt_webdav_kind kind);
/*
 * For the servers started from now on in this process: rclone keeps its
 * listings for its default 5 min, as a user runs it.  By default the tests
 * have it read the disk at every request, so that a file planted there is
 * seen at once; but then its VFS reads the folder again for every entry a
 * PROPFIND reports, which is quadratic (1,000 files: 19-64 s, against
 * 14-26 ms with the cache).  For a test that plants nothing and lists many
 * files.
 */
void lwt_webdav_keep_listings(bool on);
/* Stops the server (also a stopped one) and removes its directory.
 * Accepts NULL. */
void lwt_webdav_stop(struct lwt_webdav *w);

int lwt_webdav_port(const struct lwt_webdav *w);
/* "dav:http://127.0.0.1:PORT" PATH (PATH starts with '/').  Static
 * buffer, overwritten by the next call. */
const char *lwt_webdav_url(const struct lwt_webdav *w, const char *path);
/* The directory that holds what the server stores: URL path /a/ is
 * ROOT/a/.  Files planted there are seen at once (rclone is told not to
 * cache listings); as root they are made the server's own. */
const char *lwt_webdav_root(const struct lwt_webdav *w);
/* Gives PATH (a file or folder under the root) to the server's user, so
 * that it may delete what the test planted. */
void lwt_webdav_own(const struct lwt_webdav *w, const char *path);

/* Sends SIG to every process of the server. */
void lwt_webdav_signal(const struct lwt_webdav *w, int sig);
/* Requests in the access log ("METHOD URI STATUS inm=IF-NONE-MATCH
 * user=USER TIME...") that contain NEEDLE; -1 for rclone, which keeps
 * none. */
long lwt_webdav_log_count(const struct lwt_webdav *w, const char *needle);
