/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * restic's lock format, pure code and against Debian's restic 0.14: restic
 * makes the repositories (formats 1 and 2), its key files open with the
 * password and refuse another, its own lock decodes to the backup that
 * holds it, and a lock lockwatch seals is one restic lists, prints and
 * obeys.  Then everything a hostile or damaged file can be: tampered,
 * truncated, oversized, a zstd bomb, JSON of the wrong shape, absurd scrypt
 * parameters.  restic missing fails these tests; nothing here skips.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <dirent.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include "format/restic-key.h"
#include "format/restic.h"
#include "record-sample.h"
#include "resticbin.h"
#include "util/sha256.h"

static char why[256];

static int64_t now_real(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * LW_NSEC_PER_SEC + ts.tv_nsec;
}

static int64_t now_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * LW_NSEC_PER_SEC + ts.tv_nsec;
}

static const char *hostname(void)
{
	static char name[256];

	gethostname(name, sizeof(name) - 1);
	return name;
}

static const char *username(void)
{
	struct passwd *pw = getpwuid(getuid());

	cr_assert_not_null(pw);
	return pw->pw_name;
}

static void random_key(struct lw__restic_key *key)
{
	cr_assert_eq(RAND_bytes((unsigned char *)key, sizeof(*key)), 1);
}

/* The one file in DIR, as a path into PATH (SIZE bytes); its name into
 * NAME. */
static void only_file(const char *dir, char *path, size_t size, char name[65])
{
	struct dirent *e;
	DIR *d = opendir(dir);
	int n = 0;

	cr_assert_not_null(d, "%s: %s", dir, strerror(errno));
	while ((e = readdir(d)))
		if (e->d_name[0] != '.') {
			snprintf(path, size, "%s/%s", dir, e->d_name);
			snprintf(name, 65, "%.64s", e->d_name);
			n++;
		}
	closedir(d);
	cr_assert_eq(n, 1, "%d files in %s", n, dir);
}

/* The repository's key file, parsed; its name and content-hash checked. */
static void read_keyfile(const struct lwt_restic_repo *r, struct lw__restic_keyfile *kf)
{
	char dir[256], path[512], name[65], hex[LW_ID_HEX + 1];
	static char buf[LW_RESTIC_KEYFILE_MAX];
	struct lw__id id;
	ssize_t n;

	snprintf(dir, sizeof(dir), "%s/keys", r->disk);
	only_file(dir, path, sizeof(path), name);
	n = lwt_read_file(path, buf, sizeof(buf));
	cr_assert_gt(n, 0);
	/* restic names files by the SHA-256 of their content, keys too */
	cr_assert_eq(lw__sha256(buf, (size_t)n, &id), 0);
	lw__id_hex(&id, hex);
	cr_assert_str_eq(hex, name);
	cr_assert_eq(lw__restic_keyfile_parse(buf, (size_t)n, kf, why, sizeof(why)), 0,
		     "%s: %s", path, why);
}

static struct lw__restic_key *master_key(const struct lwt_restic_repo *r)
{
	struct lw__restic_keyfile kf;
	struct lw__restic_key *key;
	int err;

	read_keyfile(r, &kf);
	err = lw__restic_keyfile_open(&kf, LWT_RESTIC_PASSWORD, strlen(LWT_RESTIC_PASSWORD),
				      &key, why, sizeof(why));
	cr_assert_eq(err, 0, "%s", why);
	return key;
}

static struct lw__record own_record(bool exclusive)
{
	struct lw__record r = sample;

	r.time = now_real();
	r.exclusive = exclusive;
	r.pid = getpid();
	r.uid = getuid();
	r.gid = getgid();
	r.hostname = hostname();
	r.username = username();
	r.purpose = "test-restic";
	return r;
}

/* Seals REC with KEY and writes it into the repository's locks/ under the
 * SHA-256 of the file; its name into NAME. */
static void write_lock(const struct lwt_restic_repo *r, const struct lw__restic_key *key,
		       const struct lw__record *rec, char name[LW_ID_HEX + 1])
{
	uint8_t file[LW_RECORD_MAX];
	char path[512];
	struct lw__id id;
	int n = lw__restic_lock_seal(key, rec, file, sizeof(file));
	int fd;

	cr_assert_gt(n, 0, "seal: %s", strerror(-n));
	cr_assert_eq(lw__sha256(file, (size_t)n, &id), 0);
	lw__id_hex(&id, name);
	snprintf(path, sizeof(path), "%s/locks/%s", r->disk, name);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0400);
	cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
	cr_assert_eq(write(fd, file, (size_t)n), n);
	close(fd);
}

static void remove_lock(const struct lwt_restic_repo *r, const char *name)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/locks/%s", r->disk, name);
	cr_assert_eq(unlink(path), 0, "%s: %s", path, strerror(errno));
}

/* Each test on a repository of each format restic 0.14 makes. */
static int versions[] = { 1, 2 };
#define BOTH_VERSIONS(name) \
	ParameterizedTestParameters(restic, name) \
	{ \
		return cr_make_param_array(int, versions, LW_ARRAY_SIZE(versions)); \
	}
BOTH_VERSIONS(key)
BOTH_VERSIONS(restic_lock)
BOTH_VERSIONS(lockwatch_lock)

/* Also what CI would see first when restic is not installed. */
Test(restic, installed)
{
	char out[256];
	const char *args[] = { "version", NULL };
	int status = lwt_restic_run("/nonexistent", out, sizeof(out), args);

	cr_assert_eq(status, 0, "restic version: exit %d: %s", status, out);
	cr_assert(strncmp(out, "restic 0.", 9) == 0, "restic version says: %s", out);
}

/* The password opens restic's key file; the master key inside opens the
 * repository's config (and so is restic's); another password is refused
 * in one line, with no key. */
ParameterizedTest(int *version, restic, key, .timeout = 180)
{
	struct lwt_restic_repo r;
	struct lw__restic_keyfile kf;
	struct lw__restic_key *key = (void *)1;
	uint8_t config[1024], plain[1024];
	char path[512], text[1100];
	size_t n = 0;
	ssize_t len;
	int64_t t0;
	int err;

	lwt_restic_init(&r, *version);
	read_keyfile(&r, &kf);
	cr_assert_eq(kf.n & (kf.n - 1), 0);
	cr_assert_leq(lw__restic_keyfile_memory(&kf), LW_RESTIC_SCRYPT_MEM_MAX);

	t0 = now_mono();
	err = lw__restic_keyfile_open(&kf, LWT_RESTIC_PASSWORD, strlen(LWT_RESTIC_PASSWORD),
				      &key, why, sizeof(why));
	cr_assert_eq(err, 0, "%s", why);
	cr_log_info("key derivation, N=%llu r=%llu p=%llu (%llu MiB): %lld ms",
		    (unsigned long long)kf.n, (unsigned long long)kf.r,
		    (unsigned long long)kf.p,
		    (unsigned long long)(lw__restic_keyfile_memory(&kf) >> 20),
		    (long long)((now_mono() - t0) / 1000000));

	snprintf(path, sizeof(path), "%s/config", r.disk);
	len = lwt_read_file(path, config, sizeof(config));
	cr_assert_gt(len, 0);
	err = lw__restic_open(key, config, (size_t)len, plain, sizeof(plain), &n);
	cr_assert_eq(err, 0, "the master key does not open the config: %s", strerror(-err));
	memcpy(text, plain, n);
	text[n] = '\0';
	snprintf(path, sizeof(path), "\"version\":%d", *version);
	cr_assert(strstr(text, path), "config: %s", text);
	lw__restic_key_free(key);

	err = lw__restic_keyfile_open(&kf, "wrong", 5, &key, why, sizeof(why));
	cr_assert_eq(err, -EACCES);
	cr_assert_null(key);
	cr_assert(strstr(why, "wrong password"), "%s", why);
	cr_assert_null(strchr(why, '\n'));
	err = lw__restic_keyfile_open(&kf, LWT_RESTIC_PASSWORD, strlen(LWT_RESTIC_PASSWORD) - 1,
				      &key, why, sizeof(why));
	cr_assert_eq(err, -EACCES);
	lwt_restic_remove(&r);
}

/* A real `restic backup` holds its lock: the file is named by its hash,
 * opens under the master key (format 2 compressed with zstd), and decodes
 * to that restic: its pid, this host, this user, shared, written by restic.
 * Any change to it is refused. */
ParameterizedTest(int *version, restic, restic_lock, .timeout = 180)
{
	struct lwt_restic_repo r;
	struct lwt_restic_hold h;
	struct lw__restic_key *key;
	struct lw__record *rec;
	uint8_t file[8192], plain[LW_RECORD_MAX];
	char path[512], hex[LW_ID_HEX + 1];
	struct lw__id id;
	int64_t before;
	size_t n;
	ssize_t len;
	int err;

	lwt_restic_init(&r, *version);
	key = master_key(&r);
	before = now_real();
	lwt_restic_hold(&h, &r);
	snprintf(path, sizeof(path), "%s/locks/%s", r.disk, h.lock);
	len = lwt_read_file(path, file, sizeof(file));
	cr_assert_gt(len, 0);
	cr_assert_eq(lw__sha256(file, (size_t)len, &id), 0);
	lw__id_hex(&id, hex);
	cr_assert_str_eq(hex, h.lock);

	cr_assert_eq(lw__restic_open(key, file, (size_t)len, plain, sizeof(plain), &n), 0);
	if (*version == 1)
		cr_assert_eq(plain[0], '{');
	else
		cr_assert_eq(plain[0], 2, "format 2 stores locks compressed");

	err = lw__restic_lock_open(key, file, (size_t)len, &rec, why, sizeof(why));
	cr_assert_eq(err, 0, "%s", why);
	cr_assert_eq(rec->pid, h.pid);
	cr_assert_str_eq(rec->hostname, hostname());
	cr_assert_str_eq(rec->username, username());
	cr_assert_eq(rec->uid, getuid());
	cr_assert_eq(rec->gid, getgid());
	cr_assert_not(rec->exclusive);
	cr_assert(rec->restic_written);
	cr_assert_str_eq(rec->boot_id, "");
	cr_assert_eq(rec->stale_timeout, LW_RESTIC_STALE_TIMEOUT);
	cr_assert(rec->time > before - LW_SEC(5) && rec->time < now_real() + LW_SEC(5),
		  "time %lld, started at %lld", (long long)rec->time, (long long)before);
	free(rec);

	for (ssize_t i = 0; i < len; i++) {
		file[i] ^= 0x01;
		err = lw__restic_lock_open(key, file, (size_t)len, &rec, why, sizeof(why));
		cr_assert_eq(err, -EBADMSG, "byte %zd changed: %d", i, err);
		cr_assert_null(rec);
		file[i] ^= 0x01;
	}
	for (ssize_t cut = 0; cut < len; cut++)
		cr_assert_eq(lw__restic_lock_open(key, file, (size_t)cut, &rec, why,
						  sizeof(why)), -EBADMSG, "cut to %zd", cut);

	cr_assert_eq(lwt_restic_hold_end(&h), 0);
	lw__restic_key_free(key);
	lwt_restic_remove(&r);
}

/* Locks that lockwatch seals are restic's: `restic list locks` lists the
 * file, `restic cat lock` prints its pid and host (restic checks that the
 * name is the content's SHA-256 as it loads it), a backup goes on beside a
 * shared one and is refused beside an exclusive one, in restic's words. */
ParameterizedTest(int *version, restic, lockwatch_lock, .timeout = 240)
{
	struct lwt_restic_repo r;
	struct lw__restic_key *key;
	struct lw__record rec = own_record(false);
	char name[LW_ID_HEX + 1], out[8192], expect[512];
	const char *list[] = { "list", "locks", "--no-lock", NULL };
	const char *cat[] = { "cat", "lock", name, "--no-lock", NULL };
	const char *backup[] = { "backup", r.payload, NULL };
	int status;

	lwt_restic_init(&r, *version);
	key = master_key(&r);
	write_lock(&r, key, &rec, name);

	status = lwt_restic_run(r.path, out, sizeof(out), list);
	cr_assert_eq(status, 0, "restic list locks: %s", out);
	cr_assert(strstr(out, name), "restic list locks does not list %s: %s", name, out);
	status = lwt_restic_run(r.path, out, sizeof(out), cat);
	cr_assert_eq(status, 0, "restic cat lock: %s", out);
	snprintf(expect, sizeof(expect), "\"pid\": %d", (int)getpid());
	cr_assert(strstr(out, expect), "no %s in: %s", expect, out);
	snprintf(expect, sizeof(expect), "\"hostname\": \"%s\"", hostname());
	cr_assert(strstr(out, expect), "no %s in: %s", expect, out);
	cr_assert(strstr(out, "\"exclusive\": false"), "%s", out);

	status = lwt_restic_run(r.path, out, sizeof(out), backup);
	cr_assert_eq(status, 0, "restic backup beside a shared lock: %s", out);

	remove_lock(&r, name);
	rec = own_record(true);
	write_lock(&r, key, &rec, name);
	status = lwt_restic_run(r.path, out, sizeof(out), backup);
	cr_assert_neq(status, 0, "restic backup beside an exclusive lock: %s", out);
	snprintf(expect, sizeof(expect),
		 "repository is already locked exclusively by PID %d on %s", (int)getpid(),
		 hostname());
	cr_assert(strstr(out, expect), "restic backup said: %s", out);
	status = lwt_restic_run(r.path, out, sizeof(out), list);
	cr_assert(strstr(out, name), "the exclusive lock is gone: %s", out);

	lw__restic_key_free(key);
	lwt_restic_remove(&r);
}

/* --------------------------------------------------------- pure code */

Test(restic, sha256)
{
	char hex[LW_ID_HEX + 1];
	struct lw__id id;

	cr_assert_eq(lw__sha256("abc", 3, &id), 0);
	lw__id_hex(&id, hex);
	cr_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	cr_assert_eq(lw__sha256("", 0, &id), 0);
	lw__id_hex(&id, hex);
	cr_assert_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void fields_equal(const struct lw__record *a, const struct lw__record *b)
{
	cr_assert_eq(a->time, b->time);
	cr_assert_eq(a->exclusive, b->exclusive);
	cr_assert_str_eq(a->hostname, b->hostname);
	cr_assert_str_eq(a->username, b->username);
	cr_assert_eq(a->pid, b->pid);
	cr_assert_eq(a->uid, b->uid);
	cr_assert_eq(a->gid, b->gid);
	cr_assert_str_eq(a->boot_id, b->boot_id);
	cr_assert_eq(a->pid_ns, b->pid_ns);
	cr_assert_eq(a->pid_start, b->pid_start);
	cr_assert_eq(a->stale_timeout, b->stale_timeout);
	cr_assert_eq(a->pgid, b->pgid);
	cr_assert_eq(a->pgid_start, b->pgid_start);
	cr_assert_eq(!a->purpose, !b->purpose);
	if (a->purpose)
		cr_assert_str_eq(a->purpose, b->purpose);
}

/* A lockwatch record through a sealed file and back, with its own keys. */
Test(restic, seal_round_trip)
{
	struct lw__restic_key key;
	struct lw__record r = sample, *back;
	uint8_t file[LW_RECORD_MAX];
	int n;

	random_key(&key);
	for (int i = 0; i < 2; i++) {
		n = lw__restic_lock_seal(&key, &r, file, sizeof(file));
		cr_assert_gt(n, LW_RESTIC_OVERHEAD);
		cr_assert_eq(lw__restic_lock_open(&key, file, (size_t)n, &back, why, sizeof(why)),
			     0, "%s", why);
		fields_equal(&r, back);
		cr_assert_not(back->restic_written);
		free(back);
		r.purpose = NULL;
		r.exclusive = false;
		r.pgid = 31337;
		r.pgid_start = 12345678;
	}
}

/* Every byte counts, a short file is refused, a zero IV is refused (restic
 * never writes one), another key is refused, and a file over 4 KiB is
 * refused before anything is decrypted. */
Test(restic, tampered)
{
	struct lw__restic_key key, other;
	struct lw__record *rec = (void *)1;
	uint8_t file[LW_RECORD_MAX + 64];
	int n;

	random_key(&key);
	random_key(&other);
	n = lw__restic_lock_seal(&key, &sample, file, sizeof(file));
	cr_assert_gt(n, 0);
	for (int i = 0; i < n; i++)
		for (int bit = 0; bit < 8; bit++) {
			file[i] ^= (uint8_t)(1u << bit);
			cr_assert_eq(lw__restic_lock_open(&key, file, (size_t)n, &rec, why,
							  sizeof(why)), -EBADMSG);
			cr_assert_null(rec);
			file[i] ^= (uint8_t)(1u << bit);
		}
	cr_assert_eq(lw__restic_lock_open(&other, file, (size_t)n, &rec, why, sizeof(why)),
		     -EBADMSG);
	cr_assert(strstr(why, "MAC"), "%s", why);
	cr_assert_eq(lw__restic_lock_open(&key, file, 31, &rec, why, sizeof(why)), -EBADMSG);
	cr_assert(strstr(why, "too short"), "%s", why);

	memset(file, 0, LW_RESTIC_IV);
	cr_assert_eq(lw__restic_lock_open(&key, file, (size_t)n, &rec, why, sizeof(why)),
		     -EBADMSG);

	n = lw__restic_seal(&key, "{}", 2, file, sizeof(file));
	cr_assert_eq(n, 2 + LW_RESTIC_OVERHEAD);
	cr_assert_eq(lw__restic_seal(&key, "{}", 2, file, 33), -ENOSPC);
	memset(file + n, ' ', sizeof(file) - (size_t)n);
	cr_assert_eq(lw__restic_lock_open(&key, file, LW_RECORD_MAX + 1, &rec, why, sizeof(why)),
		     -EBADMSG);
	cr_assert(strstr(why, "larger than 4096"), "%s", why);
}

/* PLAIN (LEN bytes) sealed as a lock file into FILE; its length. */
static size_t seal(const struct lw__restic_key *key, const void *plain, size_t len,
		   uint8_t *file, size_t size)
{
	int n = lw__restic_seal(key, plain, len, file, size);

	cr_assert_gt(n, 0, "seal: %s", strerror(-n));
	return (size_t)n;
}

/* 0x02 and a zstd frame of LEN zeros (SIZE_CLAIMED: the frame says how
 * many) into OUT; its length. */
static size_t zstd_zeros(size_t len, bool size_claimed, uint8_t *out, size_t cap)
{
	ZSTD_CCtx *cctx = ZSTD_createCCtx();
	size_t chunk = 1 << 20, done = 0;
	uint8_t *zeros = calloc(1, chunk);
	ZSTD_outBuffer o = { out + 1, cap - 1, 0 };

	cr_assert(cctx && zeros);
	out[0] = 2;
	ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, size_claimed);
	if (size_claimed)
		ZSTD_CCtx_setPledgedSrcSize(cctx, len);
	while (done < len) {
		size_t n = LW_MIN(chunk, len - done);
		ZSTD_inBuffer in = { zeros, n, 0 };

		done += n;
		while (in.pos < in.size)
			cr_assert_not(ZSTD_isError(ZSTD_compressStream2(cctx, &o, &in,
									ZSTD_e_continue)));
	}
	{
		ZSTD_inBuffer in = { zeros, 0, 0 };
		size_t left;

		do {
			left = ZSTD_compressStream2(cctx, &o, &in, ZSTD_e_end);
			cr_assert_not(ZSTD_isError(left), "%s", ZSTD_getErrorName(left));
		} while (left);
	}
	ZSTD_freeCCtx(cctx);
	free(zeros);
	return o.pos + 1;
}

/* Format 2's compressed locks: read, and bounded.  A frame that claims
 * 64 MiB in under 4 KiB is refused unread; one that does not say stops at
 * the bound; a damaged frame and an unknown encoding byte are refused. */
Test(restic, zstd)
{
	struct lw__restic_key key;
	struct lw__record *rec;
	uint8_t plain[LW_RECORD_MAX], file[LW_RECORD_MAX + 64];
	char json[LW_RECORD_MAX];
	size_t n, len;
	int jn;

	random_key(&key);
	jn = lw__restic_lock_encode(&sample, json, sizeof(json));
	cr_assert_gt(jn, 0);
	plain[0] = 2;
	n = ZSTD_compress(plain + 1, sizeof(plain) - 1, json, (size_t)jn, 3);
	cr_assert_not(ZSTD_isError(n));
	len = seal(&key, plain, n + 1, file, sizeof(file));
	cr_assert_eq(lw__restic_lock_open(&key, file, len, &rec, why, sizeof(why)), 0, "%s", why);
	fields_equal(&sample, rec);
	free(rec);

	n = zstd_zeros(64 << 20, true, plain, sizeof(plain) - LW_RESTIC_OVERHEAD);
	len = seal(&key, plain, n, file, sizeof(file));
	cr_assert_leq(len, LW_RECORD_MAX);
	cr_assert_eq(lw__restic_lock_open(&key, file, len, &rec, why, sizeof(why)), -LW_EINVALID);
	cr_assert(strstr(why, "claims 67108864 bytes"), "%s", why);

	n = zstd_zeros(64 << 20, false, plain, sizeof(plain) - LW_RESTIC_OVERHEAD);
	len = seal(&key, plain, n, file, sizeof(file));
	cr_assert_leq(len, LW_RECORD_MAX);
	cr_assert_eq(lw__restic_lock_open(&key, file, len, &rec, why, sizeof(why)), -LW_EINVALID);
	cr_assert(strstr(why, "decompresses past 4096 bytes"), "%s", why);

	plain[0] = 2;
	n = ZSTD_compress(plain + 1, sizeof(plain) - 1, json, (size_t)jn, 3);
	len = seal(&key, plain, n + 1 - 4, file, sizeof(file));
	cr_assert_eq(lw__restic_lock_open(&key, file, len, &rec, why, sizeof(why)), -LW_EINVALID);
	cr_assert(strstr(why, "damaged zstd frame"), "%s", why);
	cr_assert_null(rec);

	plain[0] = 3;
	len = seal(&key, plain, n + 1, file, sizeof(file));
	cr_assert_eq(lw__restic_lock_open(&key, file, len, &rec, why, sizeof(why)), -LW_EINVALID);
	cr_assert(strstr(why, "unknown encoding"), "%s", why);
	len = seal(&key, "", 0, file, sizeof(file));
	cr_assert_eq(lw__restic_lock_open(&key, file, len, &rec, why, sizeof(why)), -LW_EINVALID);
}

static struct lw__record *decode(const char *json)
{
	struct lw__record *r = NULL;
	int err = lw__restic_lock_decode(json, strlen(json), &r, why, sizeof(why));

	cr_assert_eq(err, 0, "%s: %s", json, why);
	return r;
}

static void refused(const char *json, const char *reason)
{
	struct lw__record *r = (void *)1;
	int err = lw__restic_lock_decode(json, strlen(json), &r, why, sizeof(why));

	cr_assert_eq(err, -LW_EINVALID, "accepted: %s", json);
	cr_assert_null(r);
	cr_assert(strstr(why, reason), "%s: \"%s\" does not say \"%s\"", json, why, reason);
}

/* The lock of restic's design document, as restic writes it. */
Test(restic, decode_restic)
{
	struct lw__record *r = decode(
		"{\n  \"time\": \"2015-06-27T12:18:51.759239612+02:00\",\n"
		"  \"exclusive\": false,\n  \"hostname\": \"kasimir\",\n"
		"  \"username\": \"fd0\",\n  \"pid\": 13607,\n  \"uid\": 1000,\n"
		"  \"gid\": 100\n}");

	cr_assert_eq(r->time, INT64_C(1435400331759239612));
	cr_assert_not(r->exclusive);
	cr_assert_str_eq(r->hostname, "kasimir");
	cr_assert_str_eq(r->username, "fd0");
	cr_assert_eq(r->pid, 13607);
	cr_assert_eq(r->uid, 1000);
	cr_assert_eq(r->gid, 100);
	cr_assert(r->restic_written);
	cr_assert_str_eq(r->boot_id, "");
	cr_assert_null(r->purpose);
	cr_assert_eq(r->pid_ns, 0);
	cr_assert_eq(r->stale_timeout, LW_RESTIC_STALE_TIMEOUT);
	free(r);

	/* restic leaves uid and gid out when they are zero; it ignores keys
	 * it does not know, and so does lockwatch */
	r = decode("{\"time\":\"2026-12-03T13:35:24Z\",\"exclusive\":true,\"hostname\":\"vm\","
		   "\"username\":\"root\",\"pid\":1,\"future\":{\"a\":[1,2]}}");
	cr_assert_eq(r->uid, 0);
	cr_assert(r->exclusive);
	free(r);

	/* names are UTF-8, raw or escaped */
	r = decode("{\"time\":\"2026-12-03T13:35:24Z\",\"exclusive\":true,"
		   "\"hostname\":\"h\\u00f6st\\ud83d\\ude00\",\"username\":\"jos\xc3\xa9\",\"pid\":1}");
	cr_assert_str_eq(r->hostname, "h\xc3\xb6st\xf0\x9f\x98\x80");
	cr_assert_str_eq(r->username, "jos\xc3\xa9");
	free(r);
}

#define LOCK_HEAD "{\"time\":\"2026-12-03T13:35:24Z\",\"exclusive\":false,"
#define LOCK_NAMES "\"hostname\":\"h\",\"username\":\"u\","

Test(restic, decode_refused)
{
	static char longname[400];

	refused("", "empty");
	refused("[]", "JSON object");
	refused("{\"time\":1}", "time is not a string");
	refused(LOCK_HEAD LOCK_NAMES "\"pid\":1,\"pid\":2}", "pid appears twice");
	refused(LOCK_HEAD LOCK_NAMES "\"pid\":\"1\"}", "pid is not a number");
	refused(LOCK_HEAD LOCK_NAMES "\"pid\":1.5}", "integer");
	refused(LOCK_HEAD LOCK_NAMES "\"pid\":99999999999999999999}", "64-bit");
	refused(LOCK_HEAD LOCK_NAMES "\"pid\":0}", "pid out of range");
	refused(LOCK_HEAD LOCK_NAMES "\"pid\":1,\"uid\":-1}", "uid out of range");
	refused(LOCK_HEAD LOCK_NAMES "\"pid\":1,\"gid\":4294967296}", "gid out of range");
	refused(LOCK_HEAD LOCK_NAMES "\"pid\":1,\"exclusive\":true}", "exclusive appears twice");
	refused("{\"time\":\"2026-12-03T13:35:24Z\",\"exclusive\":0," LOCK_NAMES "\"pid\":1}",
		"true or false");
	refused(LOCK_HEAD "\"hostname\":1,\"username\":\"u\",\"pid\":1}", "hostname is not a string");
	refused(LOCK_HEAD "\"hostname\":\"\xff\",\"username\":\"u\",\"pid\":1}", "not UTF-8");
	refused(LOCK_HEAD "\"hostname\":\"\xed\xa0\x80\",\"username\":\"u\",\"pid\":1}",
		"not UTF-8");
	refused(LOCK_HEAD "\"hostname\":\"a\\u0000b\",\"username\":\"u\",\"pid\":1}", "NUL");
	memset(longname, 'x', 256);
	{
		char json[1024];

		snprintf(json, sizeof(json), LOCK_HEAD "\"hostname\":\"%s\",\"username\":\"u\","
			 "\"pid\":1}", longname);
		refused(json, "over 255 bytes");
	}
	refused(LOCK_HEAD "\"hostname\":\"h\",\"pid\":1}", "without time");
	refused(LOCK_HEAD LOCK_NAMES "\"pid\":1,\"boot_id\":\"b\"}", "lockwatch's keys");
	refused(LOCK_HEAD LOCK_NAMES "\"pid\":1,\"purpose\":\"p\"}", "purpose");
	refused(LOCK_HEAD LOCK_NAMES "\"pid\":1,\"boot_id\":\"b\",\"pid_ns\":1,\"pid_start\":1,"
		"\"stale_timeout\":1,\"pgid\":7}", "pgid without pgid_start");
	refused(LOCK_HEAD LOCK_NAMES "\"pid\":1,\"boot_id\":\"b\",\"pid_ns\":1,\"pid_start\":1,"
		"\"stale_timeout\":1,\"pgid\":1,\"pgid_start\":1}", "pgid out of range");
	refused(LOCK_HEAD LOCK_NAMES "\"pid\":1} x", "data after");
	refused(LOCK_HEAD LOCK_NAMES "\"pid\":1", "truncated");
	refused(LOCK_HEAD LOCK_NAMES "\"pid\":1,\"x\":[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]}",
		"nested deeper");
	refused("{\"time\":\"2026-12-03 13:35:24Z\",\"exclusive\":false," LOCK_NAMES "\"pid\":1}",
		"RFC 3339");
	refused("{\"time\":\"9999-12-31T23:59:59Z\",\"exclusive\":false," LOCK_NAMES "\"pid\":1}",
		"outside the years");
	refused("{\"time\":\"0001-01-01T00:00:00Z\",\"exclusive\":false," LOCK_NAMES "\"pid\":1}",
		"outside the years");
}

/* Strings that restic cannot take raw are escaped; bytes that are not UTF-8
 * become '?', as restic would turn them into U+FFFD. */
Test(restic, encode_strings)
{
	struct lw__record r = sample, *back;
	char json[LW_RECORD_MAX];
	int n;

	r.hostname = "a\"b\\c\n\x01\x7f";
	r.username = "jos\xc3\xa9\xff";
	n = lw__restic_lock_encode(&r, json, sizeof(json));
	cr_assert_gt(n, 0);
	cr_assert(strstr(json, "\"hostname\":\"a\\\"b\\\\c\\n\\u0001\x7f\""), "%s", json);
	back = decode(json);
	cr_assert_str_eq(back->hostname, r.hostname);
	cr_assert_str_eq(back->username, "jos\xc3\xa9?");
	free(back);

	r = sample;
	r.uid = -1;
	cr_assert_eq(lw__restic_lock_encode(&r, json, sizeof(json)), -EINVAL);
	r = sample;
	r.pid = 0;
	cr_assert_eq(lw__restic_lock_encode(&r, json, sizeof(json)), -EINVAL);
	r = sample;
	cr_assert_eq(lw__restic_lock_encode(&r, json, 40), -ENOSPC);
}

static const char *fmt(int64_t ns)
{
	static char buf[64];
	int n = lw__restic_time_format(ns, buf, sizeof(buf));

	cr_assert_eq((size_t)n, strlen(buf));
	return buf;
}

static void parses(const char *s, int64_t ns)
{
	int64_t v = 0;
	int err = lw__restic_time_parse(s, strlen(s), &v);

	cr_assert_eq(err, 0, "%s: %d", s, err);
	cr_assert_eq(v, ns, "%s: %lld, not %lld", s, (long long)v, (long long)ns);
}

static void not_parsed(const char *s, int err)
{
	int64_t v = 0;

	cr_assert_eq(lw__restic_time_parse(s, strlen(s), &v), err, "%s", s);
}

/* As Go's time.Time MarshalJSON writes it: nanoseconds without trailing
 * zeros, none at all for a whole second, the local offset or Z. */
Test(restic, time)
{
	setenv("TZ", "UTC", 1);
	tzset();
	cr_assert_str_eq(fmt(INT64_C(1795776793892740547)), "2026-11-27T10:53:13.892740547Z");
	cr_assert_str_eq(fmt(INT64_C(1795776793500000000)), "2026-11-27T10:53:13.5Z");
	cr_assert_str_eq(fmt(INT64_C(1795776793000000000)), "2026-11-27T10:53:13Z");
	cr_assert_str_eq(fmt(-1), "1969-12-31T23:59:59.999999999Z");
	cr_assert_str_eq(fmt(INT64_MIN), "1677-09-21T00:12:43.145224192Z");
	cr_assert_str_eq(fmt(INT64_MAX), "2262-04-11T23:47:16.854775807Z");
	setenv("TZ", "CET-1", 1);
	tzset();
	cr_assert_str_eq(fmt(INT64_C(1795776793892740547)), "2026-11-27T11:53:13.892740547+01:00");
	setenv("TZ", "<-0330>3:30", 1);
	tzset();
	cr_assert_str_eq(fmt(INT64_C(1795776793892740547)), "2026-11-27T07:23:13.892740547-03:30");

	parses("2026-11-27T10:53:13.892740547Z", INT64_C(1795776793892740547));
	parses("2026-11-27T11:53:13.892740547+01:00", INT64_C(1795776793892740547));
	parses("2026-11-27T07:23:13.892740547-03:30", INT64_C(1795776793892740547));
	parses("2026-11-27T10:53:13.5Z", INT64_C(1795776793500000000));
	parses("1969-12-31T23:59:59.999999999Z", -1);
	parses("1677-09-21T00:12:43.145224192Z", INT64_MIN);
	parses("2262-04-11T23:47:16.854775807Z", INT64_MAX);
	parses("2024-02-29T00:00:00Z", INT64_C(1709164800000000000));
	not_parsed("2262-04-11T23:47:16.854775808Z", -ERANGE);
	not_parsed("1677-09-21T00:12:43.145224191Z", -ERANGE);
	not_parsed("0000-01-01T00:00:00Z", -ERANGE);
	not_parsed("9999-12-31T23:59:59+23:59", -ERANGE);
	not_parsed("2023-02-29T00:00:00Z", -EINVAL);
	not_parsed("2026-13-01T00:00:00Z", -EINVAL);
	not_parsed("2026-11-27T24:00:00Z", -EINVAL);
	not_parsed("2026-11-27T23:60:00Z", -EINVAL);
	not_parsed("2026-11-27T23:59:60Z", -EINVAL);
	not_parsed("2026-11-27t07:33:13Z", -EINVAL);
	not_parsed("2026-11-27T07:33:13", -EINVAL);
	not_parsed("2026-11-27T07:33:13.Z", -EINVAL);
	not_parsed("2026-11-27T07:33:13.1234567891Z", -EINVAL);
	not_parsed("2026-11-27T07:33:13+0100", -EINVAL);
	not_parsed("2026-11-27T07:33:13+24:00", -EINVAL);
	not_parsed("2026-11-27T07:33:13Zjunk", -EINVAL);
	not_parsed("+2026-11-27T10:53:13Z", -EINVAL);
	not_parsed("2026-1-27T07:33:13Z", -EINVAL);
}

/* ------------------------------------------------------------ key files */

static int parse_key(const char *json, struct lw__restic_keyfile *kf)
{
	return lw__restic_keyfile_parse(json, strlen(json), kf, why, sizeof(why));
}

#define SALT "uW4fEI1+IOzj7ED9mVor+yTSJFd68DGlGOeLgJELYsTU5ikhG/83/+jGd4KKAaQdSrsfzrdOhAMftTSih5Ux6w=="
#define DATA "tGwYeKoM0C4j4/9DFrVEmMGAldvEn/+iKC3te/QE/6ox/V4qz58FUOgMa0Bb1cIJ"
#define KEY(n, r, p) "{\"kdf\":\"scrypt\",\"N\":" n ",\"r\":" r ",\"p\":" p \
	",\"salt\":\"" SALT "\",\"data\":\"" DATA "\"}"

static void key_refused(const char *json, const char *reason)
{
	struct lw__restic_keyfile kf;
	int err = parse_key(json, &kf);

	cr_assert_eq(err, -EBADMSG, "accepted: %s", json);
	cr_assert(strstr(why, reason), "%s: \"%s\" does not say \"%s\"", json, why, reason);
}

/* The key file of restic's design document parses; absurd scrypt costs are
 * refused before anything is allocated for them, and so are files of the
 * wrong shape. */
Test(restic, keyfile_parse)
{
	struct lw__restic_keyfile kf;

	cr_assert_eq(parse_key("{\"hostname\":\"kasimir\",\"username\":\"fd0\",\"kdf\":\"scrypt\","
			       "\"N\":65536,\"r\":8,\"p\":1,"
			       "\"created\":\"2015-01-02T18:10:13.48307196+01:00\","
			       "\"data\":\"" DATA "\",\"salt\":\"" SALT "\"}", &kf), 0, "%s", why);
	cr_assert_eq(kf.n, 65536);
	cr_assert_eq(kf.r, 8);
	cr_assert_eq(kf.p, 1);
	cr_assert_eq(kf.datalen, 48);
	cr_assert_eq(kf.salt[0], 0xb9);

	key_refused(KEY("1099511627776", "8", "1"), "N is out of range");
	key_refused(KEY("1048576", "64", "1"), "absurd scrypt parameters");
	key_refused(KEY("16777216", "8", "1"), "N is out of range");
	key_refused(KEY("1048576", "8", "32"), "absurd scrypt parameters");
	key_refused(KEY("1000", "8", "1"), "does not take");
	key_refused(KEY("1", "8", "1"), "does not take");
	key_refused(KEY("1024", "8", "100000"), "p is out of range");
	key_refused(KEY("1024", "0", "1"), "r is out of range");
	key_refused(KEY("1024", "-8", "1"), "r is out of range");
	key_refused(KEY("\"1024\"", "8", "1"), "N is not a number");
	key_refused(KEY("1e400", "8", "1"), "integer");
	key_refused(KEY("99999999999999999999", "8", "1"), "64-bit");
	key_refused("{\"kdf\":\"argon2\",\"N\":1024,\"r\":8,\"p\":1,\"salt\":\"" SALT "\","
		    "\"data\":\"" DATA "\"}", "kdf is not scrypt");
	key_refused("{\"kdf\":\"scrypt\",\"N\":1024,\"N\":2048,\"r\":8,\"p\":1,\"salt\":\"" SALT
		    "\",\"data\":\"" DATA "\"}", "N appears twice");
	key_refused("{\"kdf\":\"scrypt\",\"N\":1024,\"r\":8,\"p\":1,\"salt\":\"AAAA\","
		    "\"data\":\"" DATA "\"}", "salt is shorter");
	key_refused("{\"kdf\":\"scrypt\",\"N\":1024,\"r\":8,\"p\":1,\"salt\":\"" SALT "\","
		    "\"data\":\"!!!!\"}", "not base64");
	key_refused("{\"kdf\":\"scrypt\",\"N\":1024,\"r\":8,\"p\":1,\"salt\":\"" SALT "\"}",
		    "without");
	key_refused("{\"kdf\":\"scrypt\",\"hostname\":7,\"N\":1024,\"r\":8,\"p\":1,\"salt\":\""
		    SALT "\",\"data\":\"" DATA "\"}", "hostname is not a string");
	key_refused("<html>", "HTML");
	key_refused("[]", "JSON object");
	{
		static char big[LW_RESTIC_KEYFILE_MAX + 2];

		memset(big, ' ', sizeof(big) - 1);
		key_refused(big, "larger than");
	}
}

/* A key file made here, under a cheap scrypt, with MASTER (a JSON text)
 * sealed inside; the password is "pw". */
static void make_keyfile(struct lw__restic_keyfile *kf, const char *master)
{
	uint8_t derived[64];
	struct lw__restic_key user;
	int n;

	memset(kf, 0, sizeof(*kf));
	kf->n = 1024;
	kf->r = 8;
	kf->p = 1;
	cr_assert_eq(RAND_bytes(kf->salt, sizeof(kf->salt)), 1);
	cr_assert_eq(EVP_PBE_scrypt("pw", 2, kf->salt, sizeof(kf->salt), kf->n, kf->r, kf->p,
				    0, derived, sizeof(derived)), 1);
	memcpy(user.encrypt, derived, 32);
	memcpy(user.mac_k, derived + 32, 16);
	memcpy(user.mac_r, derived + 48, 16);
	n = lw__restic_seal(&user, master, strlen(master), kf->data, sizeof(kf->data));
	cr_assert_gt(n, 0);
	kf->datalen = (size_t)n;
}

/* What the sealed master key must be: JSON with encrypt, mac.k, mac.r of
 * their sizes, none of them zeros. */
Test(restic, master_key)
{
	static const char *const bad[] = {
		"{\"mac\":{\"k\":\"AAAAAAAAAAAAAAAAAAAAAA==\",\"r\":\"AQEBAQEBAQEBAQEBAQEBAQ==\"},"
		"\"encrypt\":\"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\"}",
		"{\"mac\":{\"k\":\"AQEBAQEBAQEBAQEBAQEBAQ==\",\"r\":\"AQEBAQEBAQEBAQEBAQEBAQ==\"},"
		"\"encrypt\":\"AQEBAQEBAQEBAQEBAQEBAQ==\"}",
		"{\"mac\":{\"k\":\"AQEBAQEBAQEBAQEBAQEBAQ==\"},"
		"\"encrypt\":\"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\"}",
		"{\"mac\":{\"k\":\"AQEBAQEBAQEBAQEBAQEBAQ==\",\"k\":\"AQEBAQEBAQEBAQEBAQEBAQ==\","
		"\"r\":\"AQEBAQEBAQEBAQEBAQEBAQ==\"},"
		"\"encrypt\":\"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\"}",
		"{\"mac\":[],\"encrypt\":\"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\"}",
		"not json",
	};
	struct lw__restic_keyfile kf;
	struct lw__restic_key *key;

	make_keyfile(&kf, "{\"mac\":{\"k\":\"AQEBAQEBAQEBAQEBAQEBAQ==\","
		     "\"r\":\"AgICAgICAgICAgICAgICAg==\"},"
		     "\"encrypt\":\"AwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwM=\"}");
	cr_assert_eq(lw__restic_keyfile_open(&kf, "pw", 2, &key, why, sizeof(why)), 0, "%s", why);
	cr_assert_eq(key->mac_k[15], 1);
	cr_assert_eq(key->mac_r[0], 2);
	cr_assert_eq(key->encrypt[31], 3);
	lw__restic_key_free(key);
	cr_assert_eq(lw__restic_keyfile_open(&kf, "pW", 2, &key, why, sizeof(why)), -EACCES);

	for (size_t i = 0; i < LW_ARRAY_SIZE(bad); i++) {
		make_keyfile(&kf, bad[i]);
		key = (void *)1;
		cr_assert_eq(lw__restic_keyfile_open(&kf, "pw", 2, &key, why, sizeof(why)),
			     -EBADMSG, "accepted: %s", bad[i]);
		cr_assert_null(key);
	}
}
