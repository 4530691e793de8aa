/* SPDX-License-Identifier: BSD-2-Clause */
#include "config.h"

#include <inttypes.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>

#include "util/base64.h"
#include "util/json.h"
#include "format/restic-key.h"

/* ---------------------------------------------------------- key file */

enum kfield { K_CREATED, K_USERNAME, K_HOSTNAME, K_KDF, K_N, K_R, K_P, K_SALT, K_DATA,
	      K_COUNT };

static const char *const kfield_names[K_COUNT] = {
	"created", "username", "hostname", "kdf", "N", "r", "p", "salt", "data",
};

#define KBIT(f) (1u << (f))
#define KEYFILE_NEEDS (KBIT(K_KDF) | KBIT(K_N) | KBIT(K_R) | KBIT(K_P) | \
		       KBIT(K_SALT) | KBIT(K_DATA))

struct keyfile_parse {
	struct lw__restic_keyfile *kf;
	unsigned seen;
};

/* A base64 string decoded into DST, which it must fill from MIN to CAP
 * bytes. */
static int b64(struct lw__json *c, const char *name, void *dst, size_t min, size_t cap,
	       size_t *n)
{
	char text[LW_RESTIC_KEYDATA_MAX / 3 * 4 + 8];
	struct lw__json_str s = { .s = text, .cap = sizeof(text) };
	int err = 0;

	if (lw__json_peek(c) != '"')
		err = lw__json_bad(c, "%s is not a string", name);
	else if (lw__json_string(c, &s) < 0)
		err = c->err;
	else if (s.over || lw__base64_len(cap) < s.len)
		err = lw__json_bad(c, "%s is longer than %zu bytes", name, cap);
	else if (lw__base64_decode(s.s, s.len, dst, cap, n) < 0)
		err = lw__json_bad(c, "%s is not base64", name);
	else if (*n < min)
		err = lw__json_bad(c, "%s is shorter than %zu bytes", name, min);
	OPENSSL_cleanse(text, sizeof(text));
	return err;
}

static int positive(struct lw__json *c, const char *name, uint64_t max, uint64_t *v)
{
	int64_t i;

	if (lw__json_peek(c) == '"')
		return lw__json_bad(c, "%s is not a number", name);
	if (lw__json_int(c, &i) < 0)
		return c->err;
	if (i < 1 || (uint64_t)i > max)
		return lw__json_bad(c, "%s is out of range", name);
	*v = (uint64_t)i;
	return 0;
}

static int keyfile_member(struct lw__json *c, const char *name, int depth, void *arg)
{
	struct keyfile_parse *k = arg;
	struct lw__restic_keyfile *kf = k->kf;
	int f = -1;
	size_t n;

	for (int i = 0; name && i < K_COUNT; i++)
		if (strcmp(name, kfield_names[i]) == 0)
			f = i;
	if (f < 0)
		return lw__json_value(c, depth);
	if (k->seen & KBIT(f))
		return lw__json_bad(c, "%s appears twice", name);
	k->seen |= KBIT(f);
	switch (f) {
	case K_CREATED: case K_USERNAME: case K_HOSTNAME:
		if (lw__json_peek(c) != '"')
			return lw__json_bad(c, "%s is not a string", name);
		return lw__json_string(c, NULL);
	case K_KDF: {
		char text[16];
		struct lw__json_str s = { .s = text, .cap = sizeof(text) };

		if (lw__json_peek(c) != '"')
			return lw__json_bad(c, "kdf is not a string");
		if (lw__json_string(c, &s) < 0)
			return c->err;
		if (s.over || strcmp(s.s, "scrypt") != 0)
			return lw__json_bad(c, "kdf is not scrypt");
		return 0;
	}
	/* each alone below the memory bound; together below, after */
	case K_N:
		return positive(c, name, LW_RESTIC_SCRYPT_MEM_MAX / 128, &kf->n);
	case K_R:
		return positive(c, name, LW_RESTIC_SCRYPT_MEM_MAX / 128, &kf->r);
	case K_P:
		return positive(c, name, LW_RESTIC_SCRYPT_P_MAX, &kf->p);
	case K_SALT:
		return b64(c, name, kf->salt, LW_RESTIC_SALT, LW_RESTIC_SALT, &n);
	case K_DATA:
		return b64(c, name, kf->data, LW_RESTIC_OVERHEAD, sizeof(kf->data),
			   &kf->datalen);
	}
	return 0;
}

static int bad(char *why, size_t whysize, const char *fmt, ...) LW_PRINTF(3, 4);
static int bad(char *why, size_t whysize, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, whysize, fmt, ap);
	va_end(ap);
	return -EBADMSG;
}

int lw__restic_keyfile_parse(const void *buf, size_t len, struct lw__restic_keyfile *kf,
			     char *why, size_t whysize)
{
	struct keyfile_parse k = { .kf = kf };
	struct lw__json c;
	int ch;

	memset(kf, 0, sizeof(*kf));
	if (len > LW_RESTIC_KEYFILE_MAX)
		return bad(why, whysize, "a key file larger than %d bytes",
			   LW_RESTIC_KEYFILE_MAX);
	lw__json_init(&c, buf, len, "key file", why, whysize);
	ch = lw__json_begin(&c);
	if (ch < 0)
		return ch;
	if (ch != '{')
		return bad(why, whysize, "a key file is a JSON object");
	if (lw__json_object(&c, 0, keyfile_member, &k) < 0 || lw__json_finish(&c) < 0)
		return c.err;
	if ((k.seen & KEYFILE_NEEDS) != KEYFILE_NEEDS)
		return bad(why, whysize, "a key file without kdf, N, r, p, salt or data");
	/* scrypt's own rules (RFC 7914): N a power of two over 1, p * r < 2^30 */
	if (kf->n < 2 || (kf->n & (kf->n - 1)) || kf->p * kf->r >= (UINT64_C(1) << 30))
		return bad(why, whysize, "scrypt parameters N=%" PRIu64 " r=%" PRIu64
			   " p=%" PRIu64 " that scrypt does not take", kf->n, kf->r, kf->p);
	/* each factor is bounded, so neither product overflows */
	if (128 * kf->n * kf->r > LW_RESTIC_SCRYPT_MEM_MAX ||
	    128 * kf->n * kf->r * kf->p > LW_RESTIC_SCRYPT_WORK_MAX)
		return bad(why, whysize, "absurd scrypt parameters N=%" PRIu64 " r=%" PRIu64
			   " p=%" PRIu64 " (over %" PRIu64 " MiB, or over %" PRIu64
			   " GiB of work)", kf->n, kf->r, kf->p,
			   LW_RESTIC_SCRYPT_MEM_MAX >> 20, LW_RESTIC_SCRYPT_WORK_MAX >> 30);
	return 0;
}

/* -------------------------------------------------------- master key */

struct master_parse {
	struct lw__restic_key *key;
	unsigned seen; /* 1 encrypt, 2 k, 4 r, 8 mac */
};

static int seen_once(struct lw__json *c, struct master_parse *m, unsigned bit,
		     const char *name)
{
	if (m->seen & bit)
		return lw__json_bad(c, "%s appears twice", name);
	m->seen |= bit;
	return 0;
}

static int exact(struct lw__json *c, const char *name, void *dst, size_t len)
{
	size_t n;

	return b64(c, name, dst, len, len, &n);
}

static int mac_member(struct lw__json *c, const char *name, int depth, void *arg)
{
	struct master_parse *m = arg;

	if (name && strcmp(name, "k") == 0)
		return seen_once(c, m, 2, name) < 0 ? c->err : exact(c, name, m->key->mac_k, 16);
	if (name && strcmp(name, "r") == 0)
		return seen_once(c, m, 4, name) < 0 ? c->err : exact(c, name, m->key->mac_r, 16);
	return lw__json_value(c, depth);
}

static int master_member(struct lw__json *c, const char *name, int depth, void *arg)
{
	struct master_parse *m = arg;

	if (name && strcmp(name, "encrypt") == 0)
		return seen_once(c, m, 1, name) < 0 ? c->err :
		       exact(c, name, m->key->encrypt, 32);
	if (name && strcmp(name, "mac") == 0) {
		if (seen_once(c, m, 8, name) < 0)
			return c->err;
		if (lw__json_peek(c) != '{')
			return lw__json_bad(c, "mac is not an object");
		return lw__json_object(c, depth, mac_member, m);
	}
	return lw__json_value(c, depth);
}

static bool zero(const uint8_t *p, size_t n)
{
	uint8_t any = 0;

	while (n--)
		any |= *p++;
	return !any;
}

static int master_parse(const char *json, size_t len, struct lw__restic_key *key,
			char *why, size_t whysize)
{
	struct master_parse m = { .key = key };
	struct lw__json c;

	lw__json_init(&c, json, len, "master key", why, whysize);
	if (lw__json_begin(&c) != '{')
		return c.err ? c.err : bad(why, whysize, "a master key is a JSON object");
	if (lw__json_object(&c, 0, master_member, &m) < 0 || lw__json_finish(&c) < 0)
		return c.err;
	if (m.seen != 15)
		return bad(why, whysize, "a master key without encrypt, mac.k or mac.r");
	/* restic's Valid(): a zero key is no key */
	if (zero(key->encrypt, 32) || zero(key->mac_k, 16) || zero(key->mac_r, 16))
		return bad(why, whysize, "a master key of zeros");
	return 0;
}

void lw__restic_key_free(struct lw__restic_key *key)
{
	if (!key)
		return;
	OPENSSL_cleanse(key, sizeof(*key));
	free(key);
}

int lw__restic_keyfile_open(const struct lw__restic_keyfile *kf, const char *password,
			    size_t len, struct lw__restic_key **master, char *why,
			    size_t whysize)
{
	uint8_t derived[64];
	struct lw__restic_key user, *key;
	char plain[LW_RESTIC_KEYDATA_MAX];
	size_t n = 0;
	int err;

	*master = NULL;
	/* scrypt's own need, plus room: the bounds are checked already */
	if (EVP_PBE_scrypt(password, len, kf->salt, sizeof(kf->salt), kf->n, kf->r, kf->p,
			   lw__restic_keyfile_memory(kf) + 65536, derived,
			   sizeof(derived)) != 1) {
		snprintf(why, whysize, "scrypt failed (N=%" PRIu64 " r=%" PRIu64 " p=%" PRIu64 ")",
			 kf->n, kf->r, kf->p);
		return -ENOMEM;
	}
	/* the first 32 bytes encrypt, the last 32 are the MAC key k || r */
	memcpy(user.encrypt, derived, 32);
	memcpy(user.mac_k, derived + 32, 16);
	memcpy(user.mac_r, derived + 48, 16);
	OPENSSL_cleanse(derived, sizeof(derived));
	err = lw__restic_open(&user, kf->data, kf->datalen, plain, sizeof(plain), &n);
	OPENSSL_cleanse(&user, sizeof(user));
	if (err == -EBADMSG) {
		snprintf(why, whysize, "wrong password: it does not open the key file");
		return -EACCES;
	}
	if (err < 0) {
		snprintf(why, whysize, "cannot open the key file: %s", strerror(-err));
		return err;
	}
	key = malloc(sizeof(*key));
	err = key ? master_parse(plain, n, key, why, whysize) : -ENOMEM;
	OPENSSL_cleanse(plain, sizeof(plain));
	if (err < 0) {
		lw__restic_key_free(key);
		return err;
	}
	*master = key;
	return 0;
}
