/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The unstable hooks that lockwatch-bench and the tests use besides the
 * public API: the request observer, fault injection (file operations and
 * HTTP connections), the simulated suspend, and the internal codecs the
 * tests write foreign locks and read ours back with.  Not installed and no
 * ABI: a program that includes it links lib/libcommon.la, the whole
 * library with its hidden symbols.  The command and the examples do not.
 */
#pragma once

#include "lockwatch.h"
#include "util/internal.h" /* clocks, lw__clock_simulate_suspend, ids, LW_MIN */
#include "util/base64.h"   /* etcd keys as the tests write them */
#include "util/process.h"  /* process start times, for records of others */
#include "util/url.h"      /* repository URLs, parsed as the library does */
#include "format/record.h" /* lock records */
#include "format/restic-key.h" /* struct lw__key_derivation; restic's format */
#include "util/sha256.h" /* lock files named by content, as the library does */
#include "engine/engine.h" /* struct lw__fop, lw__fault_set, lw__fault_release */
#include "http/http.h"     /* lw__http_fault_set: connections that stall */
#include "backend/backend.h" /* struct lw__breq: what the observer sees */

/* Sets the observer of every backend request of LOOP (lockwatch-bench):
 * FN runs on the loop thread as each request ends, with the instants it
 * started and ended (CLOCK_BOOTTIME ns).  FN NULL removes it.  Returns 0,
 * or -ESHUTDOWN. */
int lw__loop_observe(struct lw_loop *loop,
		     void (*fn)(void *userdata, const struct lw__breq *req,
				int64_t started, int64_t ended),
		     void *userdata);

/* Sets the observer of the key derivations of LOOP's repositories
 * (lockwatch-bench's key operation): FN runs on the loop thread once a
 * derivation, done on a worker thread, has ended, either way.  A key found
 * in the process's cache is no derivation and is not seen.  FN NULL
 * removes it.  Returns 0, or -ESHUTDOWN. */
int lw__loop_observe_keys(struct lw_loop *loop,
			  void (*fn)(void *userdata, const struct lw__key_derivation *kd),
			  void *userdata);

/* Starts one backend listing of REPO's locks/ as acquire asks for it (no
 * record is read; the observer sees it), on the loop thread, which must be
 * the caller's; DONE(USERDATA, RES) runs there when it ends: the listings
 * of lockwatch-bench's list_depth.  Returns 0, -ENOMEM. */
int lw__repo_list_start(struct lw_repo *repo, void (*done)(void *userdata, int res),
			void *userdata);

/* The userdata given to lw_lock_set_event_fn by the lock that started REQ,
 * a request of a lock (create, refresh, keepalive, delete; not a
 * listing's): lockwatch-bench times each acquire's create. */
void *lw__breq_event_data(const struct lw__breq *req);

/* The CLOCK_BOOTTIME instant CTX ended (0: not yet), as the loop thread
 * stored it: lockwatch-bench measures how late a deadline cancelled.  Read
 * it on the loop thread, or after lw_ctx_done() returned true. */
int64_t lw__ctx_done_at(const struct lw_ctx *ctx);
