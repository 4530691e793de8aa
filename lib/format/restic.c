/* SPDX-License-Identifier: BSD-2-Clause */
#include "config.h"

#include <inttypes.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "util/json.h"
#include "format/restic.h"

/* ------------------------------------------------------------ crypto */

/* OpenSSL 3 looks an algorithm up by name at each implicit use (a lock and
 * the global property lock); fetched once, a refresh pays the cipher alone. */
static struct {
	EVP_CIPHER *ctr;   /* AES-256-CTR: the data */
	EVP_CIPHER *ecb;   /* AES-128: the IV into Poly1305's s */
	EVP_MAC *poly1305;
} algs;
static pthread_once_t algs_once = PTHREAD_ONCE_INIT;

static void fetch_algs(void)
{
	algs.ctr = EVP_CIPHER_fetch(NULL, "AES-256-CTR", NULL);
	algs.ecb = EVP_CIPHER_fetch(NULL, "AES-128-ECB", NULL);
	algs.poly1305 = EVP_MAC_fetch(NULL, "POLY1305", NULL);
}

static bool have_algs(void)
{
	pthread_once(&algs_once, fetch_algs);
	return algs.ctr && algs.ecb && algs.poly1305;
}

int lw__restic_sealer_init(struct lw__restic_sealer *s, const struct lw__restic_key *key)
{
	memset(s, 0, sizeof(*s));
	s->key = key;
	if (!have_algs())
		return -EIO;
	s->ctr = EVP_CIPHER_CTX_new();
	s->ecb = EVP_CIPHER_CTX_new();
	s->mac = EVP_MAC_CTX_new(algs.poly1305);
	if (!s->ctr || !s->ecb || !s->mac) {
		lw__restic_sealer_fini(s);
		return -ENOMEM;
	}
	if (EVP_EncryptInit_ex2(s->ctr, algs.ctr, key->encrypt, NULL, NULL) != 1 ||
	    EVP_EncryptInit_ex2(s->ecb, algs.ecb, key->mac_k, NULL, NULL) != 1 ||
	    EVP_CIPHER_CTX_set_padding(s->ecb, 0) != 1) {
		lw__restic_sealer_fini(s);
		return -EIO;
	}
	return 0;
}

void lw__restic_sealer_fini(struct lw__restic_sealer *s)
{
	EVP_CIPHER_CTX_free(s->ctr);
	EVP_CIPHER_CTX_free(s->ecb);
	EVP_MAC_CTX_free(s->mac);
	memset(s, 0, sizeof(*s));
}

/* One pass over LEN bytes of a context keyed at init: a new IV (CTR) or the
 * same state (ECB, one block), the key schedule kept. */
static int cipher_pass(EVP_CIPHER_CTX *ctx, const uint8_t *iv, const uint8_t *in, size_t len,
		       uint8_t *out)
{
	int n = 0, fin = 0;

	return len <= INT_MAX && EVP_EncryptInit_ex2(ctx, NULL, NULL, iv, NULL) == 1 &&
	       EVP_EncryptUpdate(ctx, out, &n, in, (int)len) == 1 &&
	       EVP_EncryptFinal_ex(ctx, out + n, &fin) == 1 && (size_t)(n + fin) == len ?
		       0 : -EIO;
}

/*
 * Poly1305-AES (Bernstein 2005) as restic computes it: the one-time key is
 * r || AES-128_k(IV).  OpenSSL's POLY1305 takes that 32-byte key and clamps
 * r the way the paper masks it, as Go's poly1305.Sum does, so restic's own
 * files check (tests/test-restic.c opens them).
 */
static int poly1305_aes(const struct lw__restic_sealer *s, const uint8_t *iv,
			const uint8_t *msg, size_t len, uint8_t tag[LW_RESTIC_MAC])
{
	uint8_t otk[32];
	size_t n = 0;
	int err;

	memcpy(otk, s->key->mac_r, 16);
	err = cipher_pass(s->ecb, NULL, iv, LW_RESTIC_IV, otk + 16);
	if (err == 0 && (EVP_MAC_init(s->mac, otk, sizeof(otk), NULL) != 1 ||
			 EVP_MAC_update(s->mac, msg, len) != 1 ||
			 EVP_MAC_final(s->mac, tag, &n, LW_RESTIC_MAC) != 1 || n != LW_RESTIC_MAC))
		err = -EIO;
	OPENSSL_cleanse(otk, sizeof(otk));
	return err;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	uint8_t any = 0;

	while (n--)
		any |= *p++;
	return !any;
}

int lw__restic_sealer_seal(struct lw__restic_sealer *s, const void *plain, size_t len,
			   void *out, size_t size)
{
	uint8_t *iv = out, *ct = iv + LW_RESTIC_IV;

	if (len > INT_MAX - LW_RESTIC_OVERHEAD)
		return -EINVAL;
	if (size < len + LW_RESTIC_OVERHEAD)
		return -ENOSPC;
	/* restic refuses a zero IV; from a working generator it never comes.
	 * One draw a file (not a pool of IVs: a forked child would reuse it) */
	if (RAND_bytes(iv, LW_RESTIC_IV) != 1 || all_zero(iv, LW_RESTIC_IV))
		return -EIO;
	if (cipher_pass(s->ctr, iv, plain, len, ct) < 0 ||
	    poly1305_aes(s, iv, ct, len, ct + len) < 0)
		return -EIO;
	return (int)(len + LW_RESTIC_OVERHEAD);
}

int lw__restic_sealer_open(const struct lw__restic_sealer *s, const void *in, size_t len,
			   void *out, size_t size, size_t *outlen)
{
	const uint8_t *iv = in, *ct = iv + LW_RESTIC_IV;
	uint8_t tag[LW_RESTIC_MAC];
	size_t n;

	*outlen = 0;
	if (len < LW_RESTIC_OVERHEAD || all_zero(iv, LW_RESTIC_IV))
		return -EBADMSG;
	n = len - LW_RESTIC_OVERHEAD;
	if (size < n)
		return -ENOSPC;
	if (poly1305_aes(s, iv, ct, n, tag) < 0)
		return -EIO;
	/* nothing of a forged file is decrypted, and the check takes as long
	 * wherever the first wrong byte is */
	if (CRYPTO_memcmp(tag, ct + n, LW_RESTIC_MAC) != 0)
		return -EBADMSG;
	if (cipher_pass(s->ctr, iv, ct, n, out) < 0)
		return -EIO;
	*outlen = n;
	return 0;
}

int lw__restic_seal(const struct lw__restic_key *key, const void *plain, size_t len,
		    void *out, size_t size)
{
	struct lw__restic_sealer s;
	int r = lw__restic_sealer_init(&s, key);

	if (r == 0)
		r = lw__restic_sealer_seal(&s, plain, len, out, size);
	lw__restic_sealer_fini(&s);
	return r;
}

int lw__restic_open(const struct lw__restic_key *key, const void *in, size_t len,
		    void *out, size_t size, size_t *outlen)
{
	struct lw__restic_sealer s;
	int r = lw__restic_sealer_init(&s, key);

	*outlen = 0;
	if (r == 0)
		r = lw__restic_sealer_open(&s, in, len, out, size, outlen);
	lw__restic_sealer_fini(&s);
	return r;
}

/* -------------------------------------------------------------- time */

int lw__restic_time_format(int64_t ns, char *buf, size_t size)
{
	int64_t sec = ns / LW_NSEC_PER_SEC, frac = ns % LW_NSEC_PER_SEC;
	char fraction[11] = "", zone[16] = "Z";
	time_t t;
	struct tm tm;
	long off;

	if (frac < 0) {
		frac += LW_NSEC_PER_SEC;
		sec--;
	}
	t = (time_t)sec;
	/* RFC 3339 offsets have no seconds (old local mean times do): the
	 * instant matters, not the zone, so such a time is written in UTC */
	if (!localtime_r(&t, &tm) || tm.tm_gmtoff % 60 != 0)
		gmtime_r(&t, &tm);
	off = tm.tm_gmtoff;
	if (frac) {
		/* Go's ".999999999": nanoseconds without trailing zeros */
		int width = 9;

		while (frac % 10 == 0) {
			frac /= 10;
			width--;
		}
		snprintf(fraction, sizeof(fraction), ".%0*" PRId64, width, frac);
	}
	if (off) {
		int min = (int)(labs(off) / 60 % (100 * 60));

		snprintf(zone, sizeof(zone), "%c%02d:%02d", off < 0 ? '-' : '+', min / 60,
			 min % 60);
	}
	return snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d%s%s", tm.tm_year + 1900,
			tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
			fraction, zone);
}

/* N decimal digits at S, or -1. */
static int64_t digits(const char *s, int n)
{
	int64_t v = 0;

	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

/* Days from 1970-01-01 to Y-M-D of the proleptic Gregorian calendar (the
 * civil-from-days inverse of Howard Hinnant's date algorithms). */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static int days_in_month(int64_t y, int64_t m)
{
	static const int days[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	bool leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);

	return m == 2 && leap ? 29 : days[m - 1];
}

int lw__restic_time_parse(const char *s, size_t len, int64_t *ns)
{
	int64_t y, mo, d, h, mi, sec, frac = 0, off = 0, v;
	size_t i = 19;

	/* 2006-01-02T15:04:05 */
	if (len < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' ||
	    s[16] != ':')
		return -EINVAL;
	y = digits(s, 4);
	mo = digits(s + 5, 2);
	d = digits(s + 8, 2);
	h = digits(s + 11, 2);
	mi = digits(s + 14, 2);
	sec = digits(s + 17, 2);
	if (y < 0 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) ||
	    h < 0 || h > 23 || mi < 0 || mi > 59 || sec < 0 || sec > 59)
		return -EINVAL;
	if (s[i] == '.') {
		int n = 0;

		for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++, n++)
			if (n < 9)
				frac = frac * 10 + (s[i] - '0');
		if (n == 0 || n > 9)
			return -EINVAL;
		for (; n < 9; n++)
			frac *= 10;
	}
	if (i < len && s[i] == 'Z') {
		i++;
	} else if (i < len && (s[i] == '+' || s[i] == '-')) {
		int64_t oh, om;

		if (len - i < 6 || s[i + 3] != ':')
			return -EINVAL;
		oh = digits(s + i + 1, 2);
		om = digits(s + i + 4, 2);
		if (oh < 0 || oh > 23 || om < 0 || om > 59)
			return -EINVAL;
		off = (oh * 60 + om) * 60 * (s[i] == '-' ? -1 : 1);
		i += 6;
	} else {
		return -EINVAL;
	}
	if (i != len)
		return -EINVAL;
	/* years 0000-9999 stay far inside int64 seconds; nanoseconds do not */
	v = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - off;
	/* before the epoch, the fraction is carried into the seconds first:
	 * INT64_MIN ns is -9223372037 s + 145224192 ns, whose seconds alone do
	 * not fit */
	if (v < 0 && frac > 0) {
		v++;
		frac -= LW_NSEC_PER_SEC;
	}
	if (__builtin_mul_overflow(v, LW_NSEC_PER_SEC, &v) ||
	    __builtin_add_overflow(v, frac, &v))
		return -ERANGE;
	*ns = v;
	return 0;
}

/* ------------------------------------------------------------ encode */

struct out {
	char *p;
	size_t len;
	size_t cap;
	bool full;
};

static void putf(struct out *o, const char *fmt, ...) LW_PRINTF(2, 3);
static void putf(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (o->full)
		return;
	va_start(ap, fmt);
	n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= o->cap - o->len)
		o->full = true;
	else
		o->len += (size_t)n;
}

/* N bytes as they are: the text between escapes, without a printf each */
static void put(struct out *o, const char *s, size_t n)
{
	if (o->full || n >= o->cap - o->len) {
		o->full = true;
		return;
	}
	memcpy(o->p + o->len, s, n);
	o->len += n;
	o->p[o->len] = '\0';
}

/* The length of the UTF-8 sequence at S (N bytes left), or 0 when none is
 * there: overlong forms, surrogates and code points past U+10FFFF are not
 * UTF-8 (RFC 3629). */
static size_t utf8_seq(const uint8_t *s, size_t n)
{
	uint8_t lo = 0x80, hi = 0xbf;
	size_t len;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4;
	else
		return 0;
	if (s[0] == 0xe0)
		lo = 0xa0;
	else if (s[0] == 0xed)
		hi = 0x9f;
	else if (s[0] == 0xf0)
		lo = 0x90;
	else if (s[0] == 0xf4)
		hi = 0x8f;
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return len;
}

static bool utf8_valid(const char *s, size_t n)
{
	const uint8_t *p = (const uint8_t *)s;

	for (size_t i = 0, k; i < n; i += k)
		if (!(k = utf8_seq(p + i, n - i)))
			return false;
	return true;
}

/* JSON's two-character escapes: with them, no string grows past the text
 * it was read from. */
static const char *short_escape(uint8_t c)
{
	switch (c) {
	case '\b': return "\\b";
	case '\f': return "\\f";
	case '\n': return "\\n";
	case '\r': return "\\r";
	case '\t': return "\\t";
	}
	return NULL;
}

static void put_str(struct out *o, const char *s)
{
	const uint8_t *p = (const uint8_t *)s;
	size_t n = strlen(s), plain = 0; /* bytes from PLAIN on go out as they are */

	put(o, "\"", 1);
	for (size_t i = 0, k; i < n; i += k) {
		const char *esc = NULL;

		k = utf8_seq(p + i, n - i);
		if (k && p[i] >= 0x20 && p[i] != '"' && p[i] != '\\')
			continue; /* a run of them is put at once: a refresh writes this */
		put(o, s + plain, i - plain);
		if (!k) {
			/* a byte restic's decoder would turn into U+FFFD */
			put(o, "?", 1);
			k = 1;
		} else if (p[i] == '"' || p[i] == '\\') {
			putf(o, "\\%c", p[i]);
		} else if ((esc = short_escape(p[i]))) {
			put(o, esc, 2);
		} else {
			putf(o, "\\u%04x", p[i]);
		}
		plain = i + k;
	}
	put(o, s + plain, n - plain);
	put(o, "\"", 1);
}

static bool str_ok(const char *s)
{
	return s && strlen(s) <= LW_RECORD_STR_MAX;
}

int lw__restic_lock_encode(const struct lw__record *r, char *buf, size_t size)
{
	struct out o = { .p = buf, .cap = size };
	char when[40];

	if (!str_ok(r->hostname) || !str_ok(r->username) || !str_ok(r->boot_id) ||
	    (r->purpose && !str_ok(r->purpose)) || r->pid <= 0 ||
	    r->uid < 0 || r->uid > UINT32_MAX || r->gid < 0 || r->gid > UINT32_MAX ||
	    r->pid_ns > INT64_MAX || r->pid_start > INT64_MAX || r->stale_timeout <= 0 ||
	    r->pgid_start > INT64_MAX)
		return -EINVAL;
	if (size == 0)
		return -ENOSPC;
	lw__restic_time_format(r->time, when, sizeof(when));
	/* restic's keys, in the order of its Lock struct */
	putf(&o, "{\"time\":\"%s\",\"exclusive\":%s,\"hostname\":", when,
	     r->exclusive ? "true" : "false");
	put_str(&o, r->hostname);
	putf(&o, ",\"username\":");
	put_str(&o, r->username);
	putf(&o, ",\"pid\":%" PRId64 ",\"uid\":%" PRId64 ",\"gid\":%" PRId64, r->pid,
	     r->uid, r->gid);
	/* lockwatch's, which restic ignores */
	putf(&o, ",\"boot_id\":");
	put_str(&o, r->boot_id);
	putf(&o, ",\"pid_ns\":%" PRIu64 ",\"pid_start\":%" PRIu64 ",\"stale_timeout\":%" PRId64,
	     r->pid_ns, r->pid_start, r->stale_timeout);
	if (r->purpose) {
		putf(&o, ",\"purpose\":");
		put_str(&o, r->purpose);
	}
	if (r->pgid > 0)
		putf(&o, ",\"pgid\":%" PRId64 ",\"pgid_start\":%" PRIu64, r->pgid, r->pgid_start);
	putf(&o, "}");
	return o.full ? -ENOSPC : (int)o.len;
}

/* ------------------------------------------------------------ decode */

enum field {
	F_TIME, F_EXCLUSIVE, F_HOSTNAME, F_USERNAME, F_PID, F_UID, F_GID,
	F_BOOT_ID, F_PID_NS, F_PID_START, F_STALE_TIMEOUT, F_PURPOSE, F_PGID, F_PGID_START,
	F_COUNT
};

static const char *const field_names[F_COUNT] = {
	"time", "exclusive", "hostname", "username", "pid", "uid", "gid",
	"boot_id", "pid_ns", "pid_start", "stale_timeout", "purpose", "pgid", "pgid_start",
};

#define BIT(f) (1u << (f))
/* restic writes these always (uid and gid are left out when zero) */
#define RESTIC_NEEDS (BIT(F_TIME) | BIT(F_EXCLUSIVE) | BIT(F_HOSTNAME) | \
		      BIT(F_USERNAME) | BIT(F_PID))
/* lockwatch writes these always, and purpose when there is one */
#define LOCKWATCH_NEEDS (BIT(F_BOOT_ID) | BIT(F_PID_NS) | BIT(F_PID_START) | \
			 BIT(F_STALE_TIMEOUT))

/* the string fields, in the order of struct lw__record's pointers */
static const enum field str_fields[] = { F_HOSTNAME, F_USERNAME, F_BOOT_ID, F_PURPOSE };

struct lock_json {
	unsigned seen;
	int64_t num[F_COUNT];
	bool exclusive;
	char str[LW_ARRAY_SIZE(str_fields)][LW_RECORD_STR_MAX + 1];
	size_t len[LW_ARRAY_SIZE(str_fields)];
};

static int str_slot(enum field f)
{
	for (size_t i = 0; i < LW_ARRAY_SIZE(str_fields); i++)
		if (str_fields[i] == f)
			return (int)i;
	return -1;
}

/* A JSON number (not the string of one, which Go refuses for an int) within
 * MIN..MAX. */
static int number(struct lw__json *c, const char *name, int64_t min, int64_t max,
		  int64_t *v)
{
	if (lw__json_peek(c) == '"')
		return lw__json_bad(c, "%s is not a number", name);
	if (lw__json_int(c, v) < 0)
		return c->err;
	if (*v < min || *v > max)
		return lw__json_bad(c, "%s out of range", name);
	return 0;
}

static int lock_member(struct lw__json *c, const char *name, int depth, void *arg)
{
	struct lock_json *j = arg;
	int f = -1, slot;

	for (int i = 0; name && i < F_COUNT; i++)
		if (strcmp(name, field_names[i]) == 0)
			f = i;
	if (f < 0)
		return lw__json_value(c, depth); /* newer writers' keys */
	if (j->seen & BIT(f))
		return lw__json_bad(c, "%s appears twice", name);
	j->seen |= BIT(f);
	switch (f) {
	case F_TIME: {
		char text[48];
		struct lw__json_str s = { .s = text, .cap = sizeof(text) };
		int err;

		if (lw__json_peek(c) != '"')
			return lw__json_bad(c, "time is not a string");
		if (lw__json_string(c, &s) < 0)
			return c->err;
		err = s.over ? -EINVAL : lw__restic_time_parse(s.s, s.len, &j->num[F_TIME]);
		if (err == -ERANGE)
			return lw__json_bad(c, "time outside the years 1677 to 2262");
		if (err < 0)
			return lw__json_bad(c, "time is not RFC 3339");
		return 0;
	}
	case F_EXCLUSIVE:
		return lw__json_bool(c, &j->exclusive);
	case F_PID:
		return number(c, name, 1, INT64_MAX, &j->num[f]);
	case F_UID: case F_GID:
		return number(c, name, 0, UINT32_MAX, &j->num[f]);
	case F_PID_NS: case F_PID_START:
		return number(c, name, 0, INT64_MAX, &j->num[f]);
	case F_STALE_TIMEOUT:
		return number(c, name, 1, INT64_MAX, &j->num[f]);
	case F_PGID:
		/* group 1 is init's: kill(-1) would mean every process */
		return number(c, name, 2, INT32_MAX, &j->num[f]);
	case F_PGID_START:
		return number(c, name, 0, INT64_MAX, &j->num[f]);
	}
	slot = str_slot((enum field)f);
	{
		struct lw__json_str s = { .s = j->str[slot], .cap = sizeof(j->str[slot]),
					  .utf8 = true };

		if (lw__json_peek(c) != '"')
			return lw__json_bad(c, "%s is not a string", name);
		if (lw__json_string(c, &s) < 0)
			return c->err;
		if (s.over)
			return lw__json_bad(c, "%s is over %d bytes or holds NUL", name,
					    LW_RECORD_STR_MAX);
		if (!utf8_valid(s.s, s.len))
			return lw__json_bad(c, "%s is not UTF-8", name);
		j->len[slot] = s.len;
	}
	return 0;
}

static int invalid(char *why, size_t whysize, const char *fmt, ...) LW_PRINTF(3, 4);
static int invalid(char *why, size_t whysize, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, whysize, fmt, ap);
	va_end(ap);
	return -LW_EINVALID;
}

int lw__restic_lock_decode(const char *json, size_t len, struct lw__record **out,
			   char *why, size_t whysize)
{
	struct lock_json j = { 0 };
	struct lw__json c;
	struct lw__record *r;
	size_t strbytes = 0;
	char *strs;
	int ch;

	*out = NULL;
	lw__json_init(&c, json, len, "lock", why, whysize);
	ch = lw__json_begin(&c);
	if (ch < 0)
		return -LW_EINVALID;
	if (ch != '{')
		return invalid(why, whysize, "a restic lock is a JSON object");
	if (lw__json_object(&c, 0, lock_member, &j) < 0 || lw__json_finish(&c) < 0)
		return -LW_EINVALID;
	if ((j.seen & RESTIC_NEEDS) != RESTIC_NEEDS)
		return invalid(why, whysize, "a restic lock without time, exclusive, "
			       "hostname, username or pid");
	if ((j.seen & LOCKWATCH_NEEDS) && (j.seen & LOCKWATCH_NEEDS) != LOCKWATCH_NEEDS)
		return invalid(why, whysize, "lockwatch's keys, but not boot_id, pid_ns, "
			       "pid_start and stale_timeout all");
	if ((j.seen & (BIT(F_PURPOSE) | BIT(F_PGID) | BIT(F_PGID_START))) &&
	    !(j.seen & LOCKWATCH_NEEDS))
		return invalid(why, whysize, "a purpose or pgid without lockwatch's other keys");
	if (!(j.seen & BIT(F_PGID)) != !(j.seen & BIT(F_PGID_START)))
		return invalid(why, whysize, "pgid without pgid_start, or the reverse");
	for (size_t i = 0; i < LW_ARRAY_SIZE(str_fields); i++)
		strbytes += j.len[i] + 1;

	r = calloc(1, sizeof(*r) + strbytes);
	if (!r)
		return -ENOMEM;
	r->time = j.num[F_TIME];
	r->exclusive = j.exclusive;
	r->pid = j.num[F_PID];
	r->uid = j.num[F_UID];
	r->gid = j.num[F_GID];
	r->restic_written = !(j.seen & LOCKWATCH_NEEDS);
	r->stale_timeout = r->restic_written ? LW_RESTIC_STALE_TIMEOUT : j.num[F_STALE_TIMEOUT];
	r->pid_ns = (uint64_t)j.num[F_PID_NS];
	r->pid_start = (uint64_t)j.num[F_PID_START];
	r->pgid = j.num[F_PGID];
	r->pgid_start = (uint64_t)j.num[F_PGID_START];
	strs = (char *)(r + 1);
	{
		const char **dst[] = { &r->hostname, &r->username, &r->boot_id, &r->purpose };

		for (size_t i = 0; i < LW_ARRAY_SIZE(str_fields); i++) {
			if (str_fields[i] == F_PURPOSE && !(j.seen & BIT(F_PURPOSE)))
				continue;
			memcpy(strs, j.str[i], j.len[i] + 1);
			*dst[i] = strs;
			strs += j.len[i] + 1;
		}
	}
	*out = r;
	return 0;
}

/* --------------------------------------------------------- lock files */

int lw__restic_sealer_lock_seal(struct lw__restic_sealer *s, const struct lw__record *r,
				void *buf, size_t size)
{
	/* no reader takes a file over LW_RECORD_MAX: none is written */
	char json[LW_RECORD_MAX - LW_RESTIC_OVERHEAD];
	int n = lw__restic_lock_encode(r, json, sizeof(json));

	if (n < 0)
		return n;
	return lw__restic_sealer_seal(s, json, (size_t)n, buf, size);
}

int lw__restic_lock_seal(const struct lw__restic_key *key, const struct lw__record *r,
			 void *buf, size_t size)
{
	struct lw__restic_sealer s;
	int n = lw__restic_sealer_init(&s, key);

	if (n == 0)
		n = lw__restic_sealer_lock_seal(&s, r, buf, size);
	lw__restic_sealer_fini(&s);
	return n;
}

/* Format 2's compressed JSON, into at most CAP bytes: a frame that claims
 * more is refused before anything is decompressed, and one that does not
 * say stops at the bound. */
static int unzstd(const uint8_t *src, size_t n, char *dst, size_t cap, size_t *outlen,
		  char *why, size_t whysize)
{
	unsigned long long claim = ZSTD_getFrameContentSize(src, n);
	ZSTD_DCtx *dctx;
	size_t got;

	if (claim == ZSTD_CONTENTSIZE_ERROR)
		return invalid(why, whysize, "compressed, but not a zstd frame");
	if (claim != ZSTD_CONTENTSIZE_UNKNOWN && claim > cap)
		return invalid(why, whysize, "a zstd frame that claims %llu bytes "
			       "(a lock has at most %zu)", claim, cap);
	dctx = ZSTD_createDCtx();
	if (!dctx)
		return -ENOMEM;
	got = ZSTD_decompressDCtx(dctx, dst, cap, src, n);
	ZSTD_freeDCtx(dctx);
	if (ZSTD_isError(got) && ZSTD_getErrorCode(got) == ZSTD_error_dstSize_tooSmall)
		return invalid(why, whysize, "decompresses past %zu bytes", cap);
	if (ZSTD_isError(got))
		return invalid(why, whysize, "a damaged zstd frame: %s", ZSTD_getErrorName(got));
	*outlen = got;
	return 0;
}

int lw__restic_sealer_lock_open(const struct lw__restic_sealer *s, const void *file,
				size_t len, struct lw__record **out, char *why, size_t whysize)
{
	uint8_t plain[LW_RECORD_MAX];
	char unpacked[LW_RECORD_MAX];
	const char *json = (const char *)plain;
	size_t n;
	int err;

	*out = NULL;
	if (len > LW_RECORD_MAX) {
		snprintf(why, whysize, "larger than %d bytes", LW_RECORD_MAX);
		return -EBADMSG;
	}
	err = lw__restic_sealer_open(s, file, len, plain, sizeof(plain), &n);
	if (err == -EBADMSG) {
		snprintf(why, whysize, len < LW_RESTIC_OVERHEAD ? "too short to be encrypted" :
			 "not encrypted with this repository's key (the MAC does not match)");
		return err;
	}
	if (err < 0)
		return err;
	/* restic's encoding version: '{' or '[' is JSON itself, 2 is zstd */
	if (n > 0 && plain[0] == 2) {
		err = unzstd(plain + 1, n - 1, unpacked, sizeof(unpacked), &n, why, whysize);
		json = unpacked;
	} else if (n == 0 || (plain[0] != '{' && plain[0] != '[')) {
		err = invalid(why, whysize, "an unknown encoding (first byte 0x%02x)",
			      n ? plain[0] : 0);
	}
	if (err == 0)
		err = lw__restic_lock_decode(json, n, out, why, whysize);
	return err;
}

int lw__restic_lock_open(const struct lw__restic_key *key, const void *file, size_t len,
			 struct lw__record **out, char *why, size_t whysize)
{
	struct lw__restic_sealer s;
	int err = lw__restic_sealer_init(&s, key);

	*out = NULL;
	if (err == 0)
		err = lw__restic_sealer_lock_open(&s, file, len, out, why, whysize);
	else
		snprintf(why, whysize, "libcrypto: %s", strerror(-err));
	lw__restic_sealer_fini(&s);
	return err;
}
