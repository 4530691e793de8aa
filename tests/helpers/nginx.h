/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * A real nginx for the HTTP backend tests: Debian's /usr/sbin/nginx, run as
 * the current user with its own prefix, configuration, pid file and logs in
 * a temporary directory, on free loopback ports it picks.  One server speaks
 * dav: (dav_methods PUT DELETE, create_full_put_path, autoindex in JSON); a
 * second speaks rest: by proxying POST as PUT to the first; a third is the
 * dav server over TLS with a certificate of its own CA; a fourth the dav
 * server behind basic auth (user "alice", password "s3cret").
 *
 * Faults, by repository path on the dav server: /html502/ answers nginx's
 * HTML 502 page, /notjson/ an HTML page where a listing belongs,
 * /truncated/ a cut JSON listing, /big/ a 100 MB listing with its length,
 * /bigchunked/ the same without it, /evil/ a listing of names with '/'
 * and '..'.  lwt_nginx_fault(ng, "fail500", true) makes every server answer
 * 500 until it is turned off.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct lwt_nginx;

enum lwt_server { LWT_DAV, LWT_REST, LWT_DAV_TLS, LWT_DAV_AUTH };

#define LWT_AUTH_USER "alice"
#define LWT_AUTH_PASSWORD "s3cret"

/* Starts nginx and waits until it answers; NULL (with a message on
 * stderr) if it cannot. */
struct lwt_nginx *lwt_nginx_start(void);
/* Stops nginx (also a stopped one) and removes its directory.  Accepts
 * NULL. */
void lwt_nginx_stop(struct lwt_nginx *ng);

int lwt_nginx_port(const struct lwt_nginx *ng, enum lwt_server s);
/* "dav:http://127.0.0.1:PORT/PATH" and so on; PATH starts with '/'.
 * Static buffer, overwritten by the next call. */
const char *lwt_nginx_url(const struct lwt_nginx *ng, enum lwt_server s,
			  const char *path);
/* The PEM file of the CA that signed the TLS server's certificate. */
const char *lwt_nginx_ca_file(const struct lwt_nginx *ng);
/* The directory the servers store files in. */
const char *lwt_nginx_root(const struct lwt_nginx *ng);

/* Sends SIG to the master and every worker. */
void lwt_nginx_signal(const struct lwt_nginx *ng, int sig);
/* Turns the fault NAME ("fail500") on or off. */
void lwt_nginx_fault(const struct lwt_nginx *ng, const char *name, bool on);

/* Lock files (64 hex characters) in PATH's locks/ folder on the server,
 * -1 if the folder is missing. */
int lwt_nginx_count_locks(const struct lwt_nginx *ng, const char *path);
/* The same in any server's data directory ROOT. */
int lwt_count_locks_in(const char *root, const char *path);
/* Prints PATH's lock files and what the access log says of each, to
 * stderr: what a failed test left behind, and how. */
void lwt_nginx_explain_locks(const struct lwt_nginx *ng, const char *path);
/* Lines of the access log ("PORT METHOD URI STATUS BYTES") that contain
 * NEEDLE. */
size_t lwt_nginx_log_count(const struct lwt_nginx *ng, const char *needle);
/* Connections of this process to PORT that are open (not TIME_WAIT). */
int lwt_tcp_connections(int port);
/* The processes whose parent is MASTER (a server's workers), at most MAX
 * of them into OUT; how many. */
int lwt_children(pid_t master, pid_t *out, int max);
/* SIG to a server's master and its children; stopping one: SIGCONT, then
 * SIGTERM and 5 s for it to go, SIGKILL after that, and its children's
 * SIGKILL in any case. */
void lwt_master_signal(pid_t master, int sig);
void lwt_master_stop(pid_t master);
/* A loopback port nobody listens on right now (-1 if none was found). */
int lwt_free_port(void);
/* Whether something accepts connections on loopback PORT. */
bool lwt_port_answers(int port);
