/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * restic's key files (keys/<id>, restic's design document "Keys, Encryption
 * and MAC"): JSON with scrypt's parameters and salt, and the repository's
 * master key sealed under the 64 bytes scrypt derives from a password.
 * Deriving is slow on purpose (restic calibrates it to about 0.5 s and
 * 60 MiB): never call lw__restic_keyfile_open on the loop thread.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "format/restic.h"

/* The most of a key file that is read: restic's are about 450 bytes. */
#define LW_RESTIC_KEYFILE_MAX 16384
/* The sealed master key: restic's is 150 bytes. */
#define LW_RESTIC_KEYDATA_MAX 1024
#define LW_RESTIC_SALT 64
/*
 * Bounds on scrypt's cost, checked before anything is allocated: its memory
 * is 128 x N x r bytes (restic makes 32 MiB), its work p times that memory's
 * worth of mixing (restic: p up to what 0.5 s allows; 16 GiB is about 40 s
 * here).  A key file past them is refused as absurd.
 */
#define LW_RESTIC_SCRYPT_MEM_MAX (UINT64_C(1) << 30)
#define LW_RESTIC_SCRYPT_WORK_MAX (UINT64_C(16) << 30)
#define LW_RESTIC_SCRYPT_P_MAX 1024

struct lw__restic_keyfile {
	uint64_t n;
	uint64_t r;
	uint64_t p;
	uint8_t salt[LW_RESTIC_SALT];
	uint8_t data[LW_RESTIC_KEYDATA_MAX];
	size_t datalen;
};

/* The bytes scrypt allocates for KF. */
static inline uint64_t lw__restic_keyfile_memory(const struct lw__restic_keyfile *kf)
{
	return 128 * kf->r * (kf->n + kf->p);
}

/*
 * lw__restic_keyfile_parse - read the key file in BUF (LEN bytes) into *KF
 * with the project's bounded JSON reader: an object, no key twice, kdf
 * "scrypt", N a power of two, r and p positive and within the bounds above,
 * a 64-byte salt and sealed data in base64; created, username and hostname
 * strings when present; other keys ignored.
 *
 * Returns: 0, or -EBADMSG with the reason in WHY.
 */
int lw__restic_keyfile_parse(const void *buf, size_t len, struct lw__restic_keyfile *kf,
			     char *why, size_t whysize);

/*
 * lw__restic_keyfile_open - derive the key of PASSWORD (LEN bytes) with
 * KF's scrypt parameters, check and open KF's data with it and read the
 * master key inside; *MASTER gets it (lw__restic_key_free it).  Every
 * intermediate key is wiped.  Slow: see above.
 *
 * Returns: 0; -EACCES for a password that does not open KF (WHY says so in
 * one line); -EBADMSG for data that opens but is no master key; -ENOMEM;
 * -EIO when libcrypto fails.
 */
int lw__restic_keyfile_open(const struct lw__restic_keyfile *kf, const char *password,
			    size_t len, struct lw__restic_key **master, char *why,
			    size_t whysize);

/* One derivation of a repository's master key, as lockwatch-bench's key
 * observer (testing.h) sees it: every key file tried, from the first
 * scrypt's start to the last one's end. */
struct lw__key_derivation {
	const char *url;        /* the repository, as displayed */
	int64_t started, ended; /* CLOCK_BOOTTIME ns, on the deriving thread */
	uint64_t n, r, p;       /* scrypt's, of the last key file tried */
	uint64_t memory;        /* the most scrypt allocated at once, bytes */
	unsigned tried;         /* key files derived with */
	int err;                /* 0 opened; -EACCES wrong password; ... */
};

/* Wipes and frees KEY; NULL is fine. */
void lw__restic_key_free(struct lw__restic_key *key);
