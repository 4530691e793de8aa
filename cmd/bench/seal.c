/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * bench-seal: what one lock file costs to make, on one thread: encoding a
 * record and hashing it for its name in lockwatch's format, and sealing it
 * in restic's with libcrypto's contexts set up for the file or kept by the
 * repository (lw__restic_sealer, what a refresh does).  The three are
 * interleaved in rounds, so that a shared machine's load falls on each.
 *
 *   bench-seal [FILES]     (default 200000 of each)
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "testing.h"

#define ROUNDS 5

static double cpu_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
	return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

enum way { NATIVE, RESTIC_PER_FILE, RESTIC_KEPT, NWAYS };

/* One lock file of R made WAY; false when that fails. */
static bool make(enum way way, const struct lw__restic_key *key,
		 struct lw__restic_sealer *s, const struct lw__record *r)
{
	uint8_t buf[LW_RECORD_MAX];
	struct lw__id id;
	int n;

	if (way == NATIVE)
		n = lw__record_encode(r, buf, sizeof(buf));
	else if (way == RESTIC_PER_FILE)
		n = lw__restic_lock_seal(key, r, buf, sizeof(buf));
	else
		n = lw__restic_sealer_lock_seal(s, r, buf, sizeof(buf));
	return n > 0 && lw__sha256(buf, (size_t)n, &id) == 0;
}

int main(int argc, char **argv)
{
	static const char *const what[NWAYS] = {
		[NATIVE] = "lockwatch's format (msgpack, SHA-256)",
		[RESTIC_PER_FILE] = "restic's, contexts set up per file",
		[RESTIC_KEPT] = "restic's, contexts kept (a refresh)",
	};
	/* a record as lockwatch run writes it */
	const struct lw__record r = {
		.time = 1700000000123456789LL, .pid = 12345, .hostname = "backup-host.example",
		.username = "root", .boot_id = "0123456789abcdef0123456789abcdef",
		.pid_ns = 4026531836ULL, .pid_start = 123456789, .stale_timeout = LW_SEC(1800),
		.purpose = "lockwatch run -- rclone sync /srv/restic/alice offsite:alice",
		.pgid = 12346, .pgid_start = 123456790,
	};
	long files = argc > 1 ? strtol(argv[1], NULL, 10) : 200000;
	struct lw__restic_key key;
	struct lw__restic_sealer s;
	double ns[NWAYS] = { 0 };

	if (files < ROUNDS) {
		fprintf(stderr, "usage: bench-seal [FILES >= %d]\n", ROUNDS);
		return 2;
	}
	memset(&key, 7, sizeof(key));
	if (lw__restic_sealer_init(&s, &key) < 0) {
		fprintf(stderr, "bench-seal: libcrypto lacks AES or Poly1305\n");
		return 1;
	}
	for (int round = 0; round < ROUNDS; round++)
		for (int w = 0; w < NWAYS; w++) {
			double t0 = cpu_ns();

			for (long i = 0; i < files / ROUNDS; i++)
				if (!make((enum way)w, &key, &s, &r)) {
					fprintf(stderr, "bench-seal: %s failed\n", what[w]);
					return 1;
				}
			ns[w] += cpu_ns() - t0;
		}
	lw__restic_sealer_fini(&s);
	printf("%ld lock files each, one thread, in %d interleaved rounds; CPU a file:\n",
	       files / ROUNDS * ROUNDS, ROUNDS);
	for (int w = 0; w < NWAYS; w++)
		printf("  %-40s %6.2f us\n", what[w], ns[w] / (double)(files / ROUNDS * ROUNDS) / 1e3);
	return 0;
}
