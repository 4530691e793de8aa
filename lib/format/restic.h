/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * restic's own lock files (DESIGN.md, "restic repositories"), after restic's
 * design document: every file is IV || AES-256-CTR(plaintext) || Poly1305-AES
 * MAC of the ciphertext ("Keys, Encryption and MAC"); the plaintext is JSON,
 * or in repository format 2 the byte 0x02 and a zstd frame of it ("Unpacked
 * Data Format"); a lock's JSON has restic's keys ("Locks") and lockwatch's
 * own beside them, which restic ignores.  Every primitive is libcrypto's or
 * libzstd's.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "util/internal.h"
#include "format/record.h"

#define LW_RESTIC_IV 16
#define LW_RESTIC_MAC 16
/* what sealing adds to a plaintext */
#define LW_RESTIC_OVERHEAD (LW_RESTIC_IV + LW_RESTIC_MAC)
/* restic's staleLockTimeout: a lock restic wrote carries none of its own */
#define LW_RESTIC_STALE_TIMEOUT LW_SEC(30 * 60)

/*
 * The three keys of restic's authenticated encryption: a repository's
 * master key, or the key scrypt derives from a password to open a key file.
 * MAC_K is the AES-128 key that turns each IV into Poly1305's one-time s;
 * MAC_R is Poly1305's r, which Poly1305 clamps itself.  Wipe it with
 * OPENSSL_cleanse when done.
 */
struct lw__restic_key {
	uint8_t encrypt[32];
	uint8_t mac_k[16];
	uint8_t mac_r[16];
};

/*
 * A key made ready to seal and open: its AES key schedules and the MAC's
 * context set up once, so that each file pays for the cipher and the MAC
 * alone, not for libcrypto's contexts (a repository keeps one for its
 * refreshes).  For one thread at a time; KEY must outlive it.  The
 * functions that take a key make one for the call.
 */
struct lw__restic_sealer {
	const struct lw__restic_key *key;
	struct evp_cipher_ctx_st *ctr; /* AES-256-CTR under encrypt, an IV a file */
	struct evp_cipher_ctx_st *ecb; /* AES-128 under mac_k: the IV into s */
	struct evp_mac_ctx_st *mac;    /* Poly1305, keyed anew for each file */
};

/* Returns 0, -ENOMEM, or -EIO when libcrypto lacks an algorithm. */
int lw__restic_sealer_init(struct lw__restic_sealer *s, const struct lw__restic_key *key);
/* Frees S's contexts; a failed or finished S is fine. */
void lw__restic_sealer_fini(struct lw__restic_sealer *s);

/* lw__restic_seal, lw__restic_open, lw__restic_lock_seal and
 * lw__restic_lock_open with a sealer */
int lw__restic_sealer_seal(struct lw__restic_sealer *s, const void *plain, size_t len,
			   void *out, size_t size);
int lw__restic_sealer_open(const struct lw__restic_sealer *s, const void *in, size_t len,
			   void *out, size_t size, size_t *outlen);
int lw__restic_sealer_lock_seal(struct lw__restic_sealer *s, const struct lw__record *r,
				void *buf, size_t size);
int lw__restic_sealer_lock_open(const struct lw__restic_sealer *s, const void *file,
				size_t len, struct lw__record **out, char *why, size_t whysize);

/*
 * lw__restic_seal - encrypt LEN bytes at PLAIN under a fresh random IV and
 * authenticate them, into OUT (SIZE bytes).
 *
 * Returns: the length written (LEN + LW_RESTIC_OVERHEAD), -ENOSPC when OUT is
 * too small, -EIO when libcrypto fails.
 */
int lw__restic_seal(const struct lw__restic_key *key, const void *plain, size_t len,
		    void *out, size_t size);

/*
 * lw__restic_open - check the MAC of the sealed LEN bytes at IN, in constant
 * time, and only then decrypt them into OUT (SIZE bytes); *OUTLEN gets the
 * plaintext's length.
 *
 * Returns: 0; -EBADMSG for data too short to be sealed, an all-zero IV (which
 * restic never writes) or a MAC that does not match (another key, or damaged
 * data); -ENOSPC; -EIO when libcrypto fails.
 */
int lw__restic_open(const struct lw__restic_key *key, const void *in, size_t len,
		    void *out, size_t size, size_t *outlen);

/*
 * lw__restic_lock_encode - write R as a restic lock's JSON into BUF: restic's
 * keys (time as Go's encoding/json writes a time.Time, in local time), then
 * lockwatch's (boot_id, pid_ns, pid_start, stale_timeout, purpose, and pgid
 * with pgid_start for a job's group).  Strings are written as UTF-8 with bytes that are not UTF-8
 * as '?'.
 *
 * Returns: the length (without a NUL), -EINVAL for a record restic could not
 * read (a string over LW_RECORD_STR_MAX bytes, a pid that is not positive,
 * an id outside 0..UINT32_MAX, a number over INT64_MAX), -ENOSPC.
 */
int lw__restic_lock_encode(const struct lw__record *r, char *buf, size_t size);

/*
 * lw__restic_lock_decode - parse a restic lock's JSON with the project's
 * bounded reader: an object, no key twice, restic's keys of restic's types
 * (time RFC 3339 within int64 nanoseconds, uid and gid within uint32, both
 * optional as restic leaves zeros out), strings UTF-8 of at most
 * LW_RECORD_STR_MAX bytes.  lockwatch's keys, when any is there, must all
 * be; without them the record is restic_written, with restic's stale
 * timeout.  Unknown keys are ignored.  *OUT is one allocation (free() it).
 *
 * Returns: 0; -LW_EINVALID with the reason in WHY; -ENOMEM.
 */
int lw__restic_lock_decode(const char *json, size_t len, struct lw__record **out,
			   char *why, size_t whysize);

/*
 * lw__restic_lock_seal - the lock file for R: its JSON, sealed under KEY
 * (plain JSON, which restic reads in both repository versions).
 *
 * Returns: the file's length, or what lw__restic_lock_encode and
 * lw__restic_seal return.
 */
int lw__restic_lock_seal(const struct lw__restic_key *key, const struct lw__record *r,
			 void *buf, size_t size);

/*
 * lw__restic_lock_open - the record in the lock file FILE (LEN bytes): a file
 * over LW_RECORD_MAX is refused before anything is decrypted, the MAC is
 * checked, a zstd frame is decompressed to at most LW_RECORD_MAX bytes (a
 * frame that claims more is refused unread), the JSON is decoded.
 *
 * Returns: 0; -EBADMSG when the file is not a lock sealed under KEY (too
 * large, too short, MAC); -LW_EINVALID for one that is, but whose content
 * is not a lock; WHY says which; -ENOMEM; -EIO.
 */
int lw__restic_lock_open(const struct lw__restic_key *key, const void *file, size_t len,
			 struct lw__record **out, char *why, size_t whysize);

/*
 * lw__restic_time_format - NS (since the epoch) as Go's time.Time
 * MarshalJSON writes it: RFC 3339, nanoseconds without trailing zeros, the
 * local offset or Z, into BUF (at least 36 bytes) with a NUL.  Returns the
 * length.
 */
int lw__restic_time_format(int64_t ns, char *buf, size_t size);

/*
 * lw__restic_time_parse - an RFC 3339 time (LEN bytes at S) as nanoseconds
 * since the epoch.  Returns: 0, or -ERANGE outside int64 nanoseconds
 * (years 1677 to 2262), -EINVAL for text that is not RFC 3339.
 */
int lw__restic_time_parse(const char *s, size_t len, int64_t *ns);
