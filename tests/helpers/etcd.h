/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * A real etcd cluster for the etcd backend's tests: Debian's /usr/bin/etcd,
 * N members on free loopback ports they are told, data in a temporary
 * directory (on tmpfs where there is one: etcd fsyncs every write), logs
 * beside it.  A test that kills or stops members starts a cluster of its
 * own; the others share one per test binary (tests/helpers/etcd-shared.c),
 * each under a prefix of its own.
 *
 * The tests look at the cluster as another client would: through the
 * gateway, with libcurl, never through the library under test.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define LWT_ETCD_MAX 5

struct lwt_etcd;

/*
 * lwt_etcd_start - start MEMBERS members (raft heartbeat ELECTION_MS / 10,
 * election timeout ELECTION_MS; 0: etcd's own 100 and 1000 ms) and wait
 * until every one is healthy.  Returns NULL, with a message on stderr, if
 * they do not come up.
 */
struct lwt_etcd *lwt_etcd_start(int members, int election_ms);
/* Stops every member (of a cluster this process started) and removes its
 * directory; frees C.  Accepts NULL. */
void lwt_etcd_stop(struct lwt_etcd *c);

/*
 * One cluster for the whole test binary: a binary that links
 * tests/helpers/etcd-shared.c starts it before its first test, hands it to the
 * tests (which run in processes of their own) through the environment, and
 * stops it after the last.  lwt_etcd_shared() gives a test that cluster
 * (its members may not be killed), asserting that it runs; free it with
 * lwt_etcd_stop, which leaves the members alone.
 */
void lwt_etcd_shared_start(void);
void lwt_etcd_shared_stop(void);
struct lwt_etcd *lwt_etcd_shared(void);

int lwt_etcd_members(const struct lwt_etcd *c);
/* "http://127.0.0.1:P1,http://127.0.0.1:P2,..." */
const char *lwt_etcd_endpoints(const struct lwt_etcd *c);
/* "http://127.0.0.1:P" of member I */
const char *lwt_etcd_endpoint(const struct lwt_etcd *c, int i);
pid_t lwt_etcd_pid(const struct lwt_etcd *c, int i);
/* A fresh random prefix "lwt-0123456789abcdef" for one test's locks. */
void lwt_etcd_prefix(char prefix[32]);
/* The member that leads, waiting up to MS for one; -1 if none. */
int lwt_etcd_leader(const struct lwt_etcd *c, int ms);
/* SIGKILLs member I and waits for it to end. */
void lwt_etcd_kill(struct lwt_etcd *c, int i);
/* Sends SIG (SIGSTOP, SIGCONT) to member I. */
void lwt_etcd_signal(const struct lwt_etcd *c, int i, int sig);

/*
 * POSTs BODY to PATH ("/v3/kv/range") at the first member that answers;
 * returns the HTTP status (0: none answered) and the reply in *OUT
 * (malloc'd, NUL-terminated; may be NULL).
 */
long lwt_etcd_post(const struct lwt_etcd *c, const char *path, const char *body,
		   char **out);
/* The keys under PREFIX/locks/ (any name). */
int lwt_etcd_count(const struct lwt_etcd *c, const char *prefix);
/* The key PREFIX/locks/NAME: its create revision and lease (0 if none),
 * or false when it does not exist. */
bool lwt_etcd_get(const struct lwt_etcd *c, const char *prefix, const char *name,
		  int64_t *create_revision, int64_t *lease);
/* Puts DATA as PREFIX/locks/NAME, without a lease. */
void lwt_etcd_put(const struct lwt_etcd *c, const char *prefix, const char *name,
		  const void *data, size_t len);
/* The watchers member I holds (its /metrics'
 * etcd_debugging_mvcc_watcher_total; a stream made through the gateway
 * is one), or with I -1 every member that runs, added up. */
int lwt_etcd_watchers(const struct lwt_etcd *c, int i);
/* Deletes the key PREFIX/locks/NAME alone (its lease lives on). */
void lwt_etcd_delete(const struct lwt_etcd *c, const char *prefix, const char *name);
/* Deletes everything under PREFIX/. */
void lwt_etcd_clear(const struct lwt_etcd *c, const char *prefix);
