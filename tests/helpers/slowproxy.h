/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * A slow network path in front of a real server: a TCP proxy on a free
 * loopback port that passes requests on at once and holds each answer of
 * the server back for a delay the test sets (none at first).  The server
 * acts on a request when it gets it; only its answer is late, as behind a
 * congested link or an overloaded proxy.
 */
#pragma once

#include <stdint.h>

struct lwt_slowproxy;

/* Starts the proxy to 127.0.0.1:TARGET; NULL (with a message on stderr)
 * if it cannot. */
struct lwt_slowproxy *lwt_slowproxy_start(int target);
/* Closes every connection and frees it.  Accepts NULL. */
void lwt_slowproxy_stop(struct lwt_slowproxy *p);
int lwt_slowproxy_port(const struct lwt_slowproxy *p);
/* From now on (answers being held included), answers wait NS after the
 * server's first byte of them. */
void lwt_slowproxy_set_delay(struct lwt_slowproxy *p, int64_t ns);
