/* SPDX-License-Identifier: BSD-2-Clause */
/* A lock record as a holder writes it: test-record.c checks its round trip,
 * tests/fuzz/gen-corpus.c seeds the record corpus with it. */
#pragma once

#include "lockwatch.h"
#include "testing.h"

static const struct lw__record sample = {
	.time = INT64_C(1795776793892740547),
	.stale_timeout = LW_SEC(1800),
	.pid = 4242, .uid = 1000, .gid = 100,
	.pid_ns = 4026531836u, .pid_start = 208866,
	.exclusive = true,
	.hostname = "backup-7", .username = "alice",
	.boot_id = "11f2e7cb-42f2-4d55-9330-4f0bc7d716f5",
	.purpose = "nightly prune",
};
