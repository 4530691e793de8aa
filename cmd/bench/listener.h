/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * A loopback listener for lockwatch-bench's HTTP stall mode: a server that
 * accepts every connection and never answers.  It listens on a free
 * 127.0.0.1 port that the kernel picks, in a thread of its own.
 */
#pragma once

#include <stdbool.h>

struct bench_listener;

/*
 * bench_listener_start - listen on 127.0.0.1 at a free port.  Each
 * connection is accepted, and what it sends is read and dropped: the
 * client's request goes out in full and no answer ever comes.  With RESET,
 * each connection is reset as soon as it is accepted instead.
 *
 * Returns: 0, or a negative errno.
 */
int bench_listener_start(bool reset, struct bench_listener **lp);
/* "127.0.0.1:PORT" */
const char *bench_listener_address(const struct bench_listener *l);
/* Connections accepted so far. */
unsigned long bench_listener_accepted(const struct bench_listener *l);
/* Stops the thread and closes every connection (the clients see them
 * closed).  Accepts NULL. */
void bench_listener_stop(struct bench_listener *l);
