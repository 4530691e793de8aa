/* SPDX-License-Identifier: BSD-2-Clause */
/* The lock record codec: what goes in comes out, and every malformed or
 * hostile form is rejected without a large allocation. */
#include "config.h"

#include "test.h"
#include <errno.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lockwatch.h"
#include "record-sample.h"
#include "core/conflict.h"
#include "format/record.h"

static uint8_t buf[2 * LW_RECORD_MAX];

static int encode(const struct lw__record *r)
{
	int n = lw__record_encode(r, buf, sizeof(buf));

	cr_assert_gt(n, 0);
	return n;
}

static void rejected(const void *data, size_t len, int want, const char *what)
{
	struct lw__record *r = (void *)1;
	const char *why = NULL;
	int got = lw__record_decode(data, len, &r, &why);

	cr_expect_eq(got, want, "%s: got %d, want %d", what, got, want);
	cr_expect_null(r, "%s: no record on failure", what);
	cr_expect(why && *why, "%s: a reason", what);
}

Test(record, round_trip)
{
	int n = encode(&sample);
	struct lw__record *r;
	const char *why;

	cr_assert_eq(lw__record_decode(buf, (size_t)n, &r, &why), 0);
	cr_expect_eq(r->time, sample.time);
	cr_expect_eq(r->stale_timeout, sample.stale_timeout);
	cr_expect_eq(r->pid, sample.pid);
	cr_expect_eq(r->uid, sample.uid);
	cr_expect_eq(r->gid, sample.gid);
	cr_expect_eq(r->pid_ns, sample.pid_ns);
	cr_expect_eq(r->pid_start, sample.pid_start);
	cr_expect_eq(r->exclusive, true);
	cr_expect_str_eq(r->hostname, "backup-7");
	cr_expect_str_eq(r->username, "alice");
	cr_expect_str_eq(r->boot_id, sample.boot_id);
	cr_expect_str_eq(r->purpose, "nightly prune");
	free(r);
}

Test(record, purpose_is_optional)
{
	struct lw__record s = sample;
	struct lw__record *r;
	const char *why;
	int n;

	s.purpose = NULL;
	s.exclusive = false;
	s.time = -5; /* before the epoch: still an int64 */
	n = encode(&s);
	cr_assert_eq(lw__record_decode(buf, (size_t)n, &r, &why), 0);
	cr_expect_null(r->purpose);
	cr_expect_eq(r->exclusive, false);
	cr_expect_eq(r->time, -5);
	free(r);
}

/* A newer writer's extra keys are ignored; one with 255-byte strings and
 * every string at the limit still fits. */
Test(record, unknown_keys_and_limits)
{
	char s255[256];
	msgpack_sbuffer sb;
	msgpack_packer pk;
	struct lw__record s = sample, *r;
	const char *why;
	int n;

	memset(s255, 'x', 255);
	s255[255] = '\0';
	s.hostname = s.username = s.boot_id = s.purpose = s255;
	n = encode(&s);
	cr_assert_eq(lw__record_decode(buf, (size_t)n, &r, &why), 0, "%s", why);
	cr_expect_eq(strlen(r->hostname), 255);
	free(r);

	/* the same record plus {"future": [1, {"a": nil}]} */
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	n = encode(&sample);
	cr_assert_eq(buf[0], 0x8e, "a fixmap of 14");
	buf[0] = 0x8f;
	msgpack_sbuffer_write(&sb, (const char *)buf, (size_t)n);
	msgpack_pack_str_with_body(&pk, "future", 6);
	msgpack_pack_array(&pk, 2);
	msgpack_pack_int(&pk, 1);
	msgpack_pack_map(&pk, 1);
	msgpack_pack_str_with_body(&pk, "a", 1);
	msgpack_pack_nil(&pk);
	cr_assert_eq(lw__record_decode(sb.data, sb.size, &r, &why), 0, "%s", why);
	cr_expect_str_eq(r->username, "alice");
	free(r);
	msgpack_sbuffer_destroy(&sb);
}

Test(record, encode_refuses_long_strings)
{
	char s256[257];
	struct lw__record s = sample;

	memset(s256, 'y', 256);
	s256[256] = '\0';
	s.purpose = s256;
	cr_expect_eq(lw__record_encode(&s, buf, sizeof(buf)), -EINVAL);
	cr_expect_eq(lw__record_encode(&sample, buf, 20), -ENOSPC);
}

Test(record, truncated_at_every_length)
{
	int n = encode(&sample);

	for (int len = 1; len < n; len++) {
		char what[32];

		snprintf(what, sizeof(what), "truncated to %d", len);
		rejected(buf, (size_t)len, -EBADMSG, what);
	}
	rejected(buf, 0, -EBADMSG, "empty");
}

Test(record, trailing_bytes)
{
	int n = encode(&sample);

	buf[n] = 0xc0;
	rejected(buf, (size_t)n + 1, -EBADMSG, "one nil after the map");
}

Test(record, oversized)
{
	static uint8_t big[LW_RECORD_MAX + 1];

	memset(big, 0xc0, sizeof(big));
	rejected(big, sizeof(big), -EBADMSG, "4097 bytes");
}

/* At most 256 MiB more address space than the process has: an allocation
 * of gigabytes fails (ENOMEM, or a sanitizer's report) instead of lazily
 * succeeding where the machine would grant it.  (Added to what is mapped,
 * not absolute: ASan reserves terabytes for its shadow at start.) */
static void limit_address_space(void)
{
	unsigned long pages = 0;
	struct rlimit rl;
	FILE *f = fopen("/proc/self/statm", "r");

	cr_assert_not_null(f);
	cr_assert_eq(fscanf(f, "%lu", &pages), 1);
	fclose(f);
	rl.rlim_cur = rl.rlim_max = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + (256u << 20);
	cr_assert_eq(setrlimit(RLIMIT_AS, &rl), 0);
}

/* Hostile headers: counts that the bytes cannot hold must fail before
 * msgpack-c would allocate for them.  The address-space limit makes an
 * allocation attempt of gigabytes fail loudly rather than lazily succeed
 * (each test is a process of its own: the limit ends with it). */
Test(record, huge_counts, .init = limit_address_space)
{
	static const uint8_t arr32[] = { 0xdd, 0xff, 0xff, 0xff, 0xff, 0x00 };
	/* 6 GB of msgpack_object: what a large machine would grant */
	static const uint8_t arr256m[] = { 0xdd, 0x10, 0x00, 0x00, 0x00, 0x00 };
	static const uint8_t map32[] = { 0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 'v', 0x01 };
	static const uint8_t str32[] = { 0xdb, 0xff, 0xff, 0xff, 0xff, 'x' };
	static const uint8_t bin32[] = { 0xc6, 0x7f, 0xff, 0xff, 0xff, 'x' };
	static const uint8_t ext32[] = { 0xc9, 0x7f, 0xff, 0xff, 0xff, 0x01 };
	/* {"v": 1, "x": [4 billion elements]} */
	static const uint8_t nested[] = { 0x82, 0xa1, 'v', 0x01, 0xa1, 'x',
					  0xdd, 0xff, 0xff, 0xff, 0xff };

	rejected(arr32, sizeof(arr32), -EBADMSG, "array of 4G elements");
	rejected(arr256m, sizeof(arr256m), -EBADMSG, "array of 256M elements");
	rejected(map32, sizeof(map32), -EBADMSG, "map of 4G entries");
	rejected(str32, sizeof(str32), -EBADMSG, "string of 4 GB");
	rejected(bin32, sizeof(bin32), -EBADMSG, "bin of 2 GB");
	rejected(ext32, sizeof(ext32), -EBADMSG, "ext of 2 GB");
	rejected(nested, sizeof(nested), -EBADMSG, "nested array of 4G elements");
}

Test(record, deep_nesting)
{
	uint8_t deep[300];
	size_t n = 0;

	deep[n++] = 0x82;
	deep[n++] = 0xa1;
	deep[n++] = 'v';
	deep[n++] = 0x01;
	deep[n++] = 0xa1;
	deep[n++] = 'x';
	while (n < sizeof(deep) - 1)
		deep[n++] = 0x91; /* [[[[...]]]] */
	deep[n++] = 0xc0;
	rejected(deep, n, -EBADMSG, "294 nested arrays");
}

/* A map of 13 keys with VALUE for KEY instead of the sample's. */
static size_t with(const char *key, void (*pack)(msgpack_packer *pk))
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	static const char *const keys[] = {
		"v", "time", "exclusive", "hostname", "username", "pid", "uid", "gid",
		"boot_id", "pid_ns", "pid_start", "stale_timeout", "purpose",
	};
	size_t n;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 13);
	for (size_t i = 0; i < 13; i++) {
		msgpack_pack_str_with_body(&pk, keys[i], strlen(keys[i]));
		if (strcmp(keys[i], key) == 0)
			pack(&pk);
		else if (i == 0)
			msgpack_pack_int(&pk, 1);
		else if (i == 2)
			msgpack_pack_true(&pk);
		else if (i == 3 || i == 4 || i == 8 || i == 12)
			msgpack_pack_str_with_body(&pk, "s", 1);
		else
			msgpack_pack_int(&pk, 7);
	}
	n = sb.size;
	memcpy(buf, sb.data, n);
	msgpack_sbuffer_destroy(&sb);
	return n;
}

static void p_str(msgpack_packer *pk) { msgpack_pack_str_with_body(pk, "1", 1); }
static void p_int(msgpack_packer *pk) { msgpack_pack_int(pk, 1); }
static void p_neg(msgpack_packer *pk) { msgpack_pack_int(pk, -1); }
static void p_two(msgpack_packer *pk) { msgpack_pack_int(pk, 2); }
static void p_big(msgpack_packer *pk) { msgpack_pack_uint64(pk, UINT64_MAX); }
static void p_dbl(msgpack_packer *pk) { msgpack_pack_double(pk, 1.5); }
/* over 100 years: no host gives that, and instants computed from it
 * would overflow */
static void p_long(msgpack_packer *pk) { msgpack_pack_int64(pk, LW_DURATION_MAX + 1); }
static void p_nul(msgpack_packer *pk) { msgpack_pack_str_with_body(pk, "a\0b", 3); }
static void p_256(msgpack_packer *pk)
{
	char s[256];

	memset(s, 'z', sizeof(s));
	msgpack_pack_str_with_body(pk, s, sizeof(s));
}

Test(record, wrong_types)
{
	static const struct {
		const char *key;
		void (*pack)(msgpack_packer *);
	} cases[] = {
		{ "exclusive", p_int }, { "time", p_str }, { "time", p_dbl },
		{ "time", p_big }, { "pid", p_str }, { "pid", p_neg },
		{ "pid_ns", p_neg }, { "pid_start", p_str }, { "hostname", p_int },
		{ "username", p_nul }, { "purpose", p_256 }, { "boot_id", p_256 },
		{ "stale_timeout", p_neg }, { "stale_timeout", p_long }, { "v", p_two },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char what[64];
		size_t n = with(cases[i].key, cases[i].pack);

		snprintf(what, sizeof(what), "bad %s (case %zu)", cases[i].key, i);
		rejected(buf, n, -LW_EINVALID, what);
	}
}

Test(record, duplicate_and_missing_keys)
{
	static const uint8_t dup[] = { 0x82, 0xa1, 'v', 0x01, 0xa1, 'v', 0x01 };
	static const uint8_t missing[] = { 0x81, 0xa1, 'v', 0x01 };
	static const uint8_t no_version[] = { 0x81, 0xa4, 't', 'i', 'm', 'e', 0x01 };
	static const uint8_t not_a_map[] = { 0x93, 0x01, 0x02, 0x03 };
	static const uint8_t int_key[] = { 0x81, 0x01, 0x01 };

	rejected(dup, sizeof(dup), -LW_EINVALID, "key twice");
	rejected(missing, sizeof(missing), -LW_EINVALID, "required keys missing");
	rejected(no_version, sizeof(no_version), -EBADMSG, "no version: not ours");
	rejected(not_a_map, sizeof(not_a_map), -EBADMSG, "an array");
	rejected(int_key, sizeof(int_key), -LW_EINVALID, "an integer key");
}

/* Every one-byte change of a valid record decodes or is rejected, and never
 * crashes or leaks (run this under ASan). */
Test(record, every_byte_flipped)
{
	int n = encode(&sample);
	uint8_t copy[LW_RECORD_MAX];

	for (int i = 0; i < n; i++) {
		for (int v = 0; v < 256; v += 7) {
			struct lw__record *r = NULL;
			const char *why;

			memcpy(copy, buf, (size_t)n);
			copy[i] = (uint8_t)v;
			if (lw__record_decode(copy, (size_t)n, &r, &why) == 0)
				free(r);
			else
				cr_assert_null(r);
		}
	}
}

/* The job's process group: optional, both keys or neither. */
Test(record, job_group)
{
	struct lw__record s = sample, *r;
	const char *why;
	int n;

	s.pgid = 4242;
	s.pgid_start = 987654321;
	n = encode(&s);
	cr_assert_eq(lw__record_decode(buf, (size_t)n, &r, &why), 0);
	cr_expect_eq(r->pgid, 4242);
	cr_expect_eq(r->pgid_start, 987654321);
	free(r);
	/* a record without them (an older writer's) has none */
	n = encode(&sample);
	cr_assert_eq(lw__record_decode(buf, (size_t)n, &r, &why), 0);
	cr_expect_eq(r->pgid, 0);
	free(r);
	/* group 1 would make kill(-1) mean every process */
	s.pgid = 1;
	n = encode(&s);
	rejected(buf, (size_t)n, -LW_EINVALID, "pgid 1");
	/* pgid alone: 15 keys where the map says 16, then one key short */
	s.pgid = 4242;
	n = encode(&s);
	cr_assert_eq(buf[0], 0xde, "a map16 of 16 keys");
	buf[2] = 15;
	for (int i = n - 1; i > 0; i--)
		if (memcmp(buf + i, "\xaapgid_start", 11) == 0) {
			n = i;
			break;
		}
	rejected(buf, (size_t)n, -LW_EINVALID, "pgid without pgid_start");
}

/* A same-host record whose holder is gone stays live while a process of
 * its job's group runs, and not a moment after. */
Test(record, orphaned_only_once_the_group_is_gone)
{
	const struct lw__self *self = lw__self();
	struct lw__record rec = sample;
	pid_t dead, leader;
	uint64_t start;
	int st;

	dead = fork();
	if (dead == 0)
		_exit(0);
	cr_assert_gt(dead, 0);
	waitpid(dead, &st, 0);
	leader = fork();
	if (leader == 0) {
		setpgid(0, 0);
		pause();
		_exit(0);
	}
	cr_assert_gt(leader, 0);
	setpgid(leader, leader);
	cr_assert_eq(lw__process_start(leader, &start), 0);
	rec.boot_id = self->boot_id;
	rec.pid_ns = self->pid_ns;
	rec.pid = dead;
	cr_expect(lw__record_orphaned(&rec, self), "a dead holder without a group");
	rec.pgid = leader;
	rec.pgid_start = start;
	cr_expect(!lw__record_orphaned(&rec, self), "its group runs");
	rec.pgid_start = start + 1;
	cr_expect(lw__record_orphaned(&rec, self),
		  "a leader of another start time: the group's number was reused");
	rec.pgid_start = start;
	kill(leader, SIGKILL);
	for (int i = 0; i < 200 && lw__group_alive(leader, start) == 1; i++)
		usleep(5000);
	cr_expect(lw__record_orphaned(&rec, self), "only a zombie is left of the group");
	waitpid(leader, &st, 0);
	cr_expect(lw__record_orphaned(&rec, self), "the group is gone");
}
