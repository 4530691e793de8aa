/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Writes the seed corpora of the fuzz targets into DIR/NAME/ (make
 * fuzz-corpus).  Valid records come from lw__record_encode; the hostile ones
 * are described field by field below and packed with msgpack-c, or written
 * byte by byte where no encoder would write them.  Listings, PROPFIND
 * replies, etcd replies, URLs, durations and restic's key files are plain
 * text; restic locks' plaintexts JSON or zstd frames of it.  Inputs that
 * fuzzing found are committed next to these as regress-*, by hand.
 */
#include "config.h"

#include <errno.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zstd.h>

#include "record-sample.h"
#include "util/base64.h"
#include "lockwatch.h"
#include "format/record.h"
#include "format/restic.h"

static const char *top;

static void put(const char *target, const char *name, const void *data, size_t size)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", top, target);
	if (mkdir(path, 0777) < 0 && errno != EEXIST) {
		perror(path);
		exit(1);
	}
	snprintf(path, sizeof(path), "%s/%s/%s", top, target, name);
	f = fopen(path, "wb");
	if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0) {
		perror(path);
		exit(1);
	}
}

static void put_text(const char *target, const char *name, const char *text)
{
	put(target, name, text, strlen(text));
}

/* ------------------------------------------------------------ records */

static void put_encoded(const char *name, const struct lw__record *r)
{
	uint8_t buf[LW_RECORD_MAX];
	int n = lw__record_encode(r, buf, sizeof(buf));

	if (n < 0) {
		fprintf(stderr, "%s: %s\n", name, strerror(-n));
		exit(1);
	}
	put("record", name, buf, (size_t)n);
}

static void valid_records(void)
{
	static char s255[256];
	struct lw__record r = sample;

	put_encoded("valid-exclusive", &r);
	r.exclusive = false;
	r.purpose = NULL;
	r.time = -5; /* before the epoch */
	put_encoded("valid-shared", &r);
	memset(s255, 'x', 255);
	r = sample;
	r.hostname = r.username = r.boot_id = r.purpose = s255;
	r.time = INT64_MAX;
	r.stale_timeout = LW_DURATION_MAX;
	r.pid = INT64_MAX;
	r.uid = r.gid = INT64_MIN;
	r.pid_ns = r.pid_start = UINT64_MAX;
	put_encoded("valid-limits", &r);
	r.time = INT64_MIN;
	put_encoded("valid-time-min", &r);
	r.stale_timeout = INT64_MAX;
	put_encoded("invalid-stale-timeout-over-limit", &r);
	r = sample;
	r.hostname = r.username = r.boot_id = "";
	r.purpose = "\xc2\x9b" "31m\x1b[2J\xe2\x80\xae"; /* C1 CSI, ESC, RLO */
	put_encoded("valid-terminal-escapes", &r);
}

/* One entry of a hand-made map: the key, then its value packed by TYPE. */
struct field {
	const char *key;
	enum { I64, U64, STR, BOOL, NIL, F64, ARRAY } type;
	int64_t i;
	const char *s;
	size_t len; /* of S; 0: strlen */
};

static const struct field sample_fields[] = {
	{ "v", I64, 1 }, { "time", I64, INT64_C(1795776793892740547) },
	{ "exclusive", BOOL, 1 }, { "hostname", STR, 0, "backup-7" },
	{ "username", STR, 0, "alice" }, { "pid", I64, 4242 }, { "uid", I64, 1000 },
	{ "gid", I64, 100 }, { "boot_id", STR, 0, "11f2e7cb-42f2-4d55-9330-4f0bc7d716f5" },
	{ "pid_ns", U64, 4026531836 }, { "pid_start", U64, 208866 },
	{ "stale_timeout", I64, LW_SEC(1800) },
};
#define NSAMPLE (sizeof(sample_fields) / sizeof(sample_fields[0]))

static void pack_field(msgpack_packer *pk, const struct field *f)
{
	size_t len = f->len ? f->len : f->s ? strlen(f->s) : 0;

	msgpack_pack_str_with_body(pk, f->key, strlen(f->key));
	switch (f->type) {
	case I64: msgpack_pack_int64(pk, f->i); break;
	case U64: msgpack_pack_uint64(pk, (uint64_t)f->i); break;
	case STR: msgpack_pack_str_with_body(pk, f->s, len); break;
	case BOOL: f->i ? msgpack_pack_true(pk) : msgpack_pack_false(pk); break;
	case NIL: msgpack_pack_nil(pk); break;
	case F64: msgpack_pack_double(pk, 1.5); break;
	case ARRAY: /* f->i arrays, each the only element of the one around it */
		for (int64_t d = 0; d < f->i; d++)
			msgpack_pack_array(pk, 1);
		msgpack_pack_nil(pk);
		break;
	}
}

/* The sample's fields with CHANGE in place of the field of its key, or
 * added after them when no field has that key or APPEND is set; SKIP drops
 * a key. */
static void put_fields(const char *name, const struct field *change, bool append,
		       const char *skip)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	bool replaced = false;
	size_t n = 0;

	for (size_t i = 0; i < NSAMPLE; i++)
		n += !skip || strcmp(sample_fields[i].key, skip) != 0;
	for (size_t i = 0; change && !append && i < NSAMPLE; i++)
		replaced |= strcmp(sample_fields[i].key, change->key) == 0;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, n + (change && !replaced));
	for (size_t i = 0; i < NSAMPLE; i++) {
		const struct field *f = &sample_fields[i];

		if (skip && strcmp(f->key, skip) == 0)
			continue;
		pack_field(&pk, replaced && strcmp(f->key, change->key) == 0 ? change : f);
	}
	if (change && !replaced)
		pack_field(&pk, change);
	put("record", name, sb.data, sb.size);
	msgpack_sbuffer_destroy(&sb);
}

static void shaped_records(void)
{
	static char big[4096];
	static const struct {
		const char *name;
		struct field change;
	} cases[] = {
		{ "valid-unknown-nested", { "future", ARRAY, 7 } },
		{ "valid-unknown-nil", { "comment", NIL } },
		{ "deep-nesting", { "future", ARRAY, 40 } },
		{ "time-string", { "time", STR, 0, "1795776793892740547" } },
		{ "time-float", { "time", F64 } },
		{ "time-uint64-max", { "time", U64, -1 } },
		{ "pid-negative", { "pid", I64, -1 } },
		{ "pid-zero", { "pid", I64, 0 } },
		{ "pid-ns-negative", { "pid_ns", I64, -1 } },
		{ "stale-timeout-zero", { "stale_timeout", I64, 0 } },
		{ "exclusive-int", { "exclusive", I64, 1 } },
		{ "version-2", { "v", I64, 2 } },
		{ "version-nil", { "v", NIL } },
		{ "username-nul", { "username", STR, 0, "ali\0ce", 6 } },
		{ "purpose-256", { "purpose", STR, 0, big, 256 } },
		{ "hostname-int", { "hostname", I64, 7 } },
	};
	static const struct field pid = { "pid", I64, 1 };

	memset(big, 'z', sizeof(big));
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		put_fields(cases[i].name, &cases[i].change, false, NULL);
	put_fields("duplicate-pid", &pid, true, NULL);
	put_fields("missing-boot-id", NULL, false, "boot_id");
	put_fields("missing-version", NULL, false, "v");
}

/* Byte-exact forms: what msgpack-c's packer never writes. */
static void raw_records(void)
{
	static const struct {
		const char *name;
		const char *bytes;
		size_t len;
	} cases[] = {
#define RAW(name, s) { name, s, sizeof(s) - 1 }
		RAW("huge-array32", "\xdd\xff\xff\xff\xff\x00"),
		RAW("huge-array16", "\xdc\xff\xff\xc0"),
		RAW("huge-map32", "\xdf\xff\xff\xff\xff\xa1v\x01"),
		RAW("huge-str32", "\xdb\xff\xff\xff\xffx"),
		RAW("huge-bin32", "\xc6\x7f\xff\xff\xffx"),
		RAW("huge-ext32", "\xc9\x7f\xff\xff\xff\x01"),
		RAW("huge-nested-array32", "\x82\xa1v\x01\xa1x\xdd\xff\xff\xff\xff"),
		RAW("duplicate-v", "\x82\xa1v\x01\xa1v\x01"),
		RAW("only-version", "\x81\xa1v\x01"),
		RAW("not-a-map", "\x93\x01\x02\x03"),
		RAW("int-key", "\x81\x01\x01"),
		RAW("reserved-c1", "\xc1"),
		RAW("nil", "\xc0"),
		/* the version with every integer and string width */
		RAW("wide-forms", "\x84\xd9\x01v\xd3\x00\x00\x00\x00\x00\x00\x00\x01"
			"\xda\x00\x01x\xcd\x00\x01\xdb\x00\x00\x00\x01y\xd0\xff"
			"\xa1z\xd4\x01\x02"),
#undef RAW
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		put("record", cases[i].name, cases[i].bytes, cases[i].len);
}

/* A valid record grown to LEN bytes by an unknown str16 key. */
static void sized_record(const char *name, size_t len)
{
	uint8_t buf[2 * LW_RECORD_MAX];
	int n = lw__record_encode(&sample, buf, sizeof(buf));
	size_t pad = len - (size_t)n - 7; /* "\xa3pad" and a str16 header */

	buf[0]++; /* a fixmap of one more entry */
	memcpy(buf + n, "\xa3pad\xda", 5);
	buf[n + 5] = (uint8_t)(pad >> 8);
	buf[n + 6] = (uint8_t)pad;
	memset(buf + n + 7, '.', pad);
	put("record", name, buf, len);
}

static void truncated_records(void)
{
	uint8_t buf[LW_RECORD_MAX];
	int n = lw__record_encode(&sample, buf, sizeof(buf));

	put("record", "truncated-half", buf, (size_t)n / 2);
	put("record", "truncated-last-byte", buf, (size_t)n - 1);
	buf[n] = 0xc0;
	put("record", "trailing-nil", buf, (size_t)n + 1);
	put("record", "empty", buf, 0);
	sized_record("valid-4096-bytes", LW_RECORD_MAX);
	sized_record("oversized-4097-bytes", LW_RECORD_MAX + 1);
}

/* ----------------------------------------------------------- listings */

#define ID_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define ID_B "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define MTIME "\"mtime\":\"Fri, 27 Nov 2026 10:51:18 GMT\""

static void listings(void)
{
	static const char *const cases[][2] = {
		{ "rest-v1", "[\"" ID_A "\",\"" ID_B "\"]" },
		{ "rest-v1-empty", "[]" },
		{ "rest-v1-null", "null" },
		{ "rest-v1-hostile-names",
		  "[\"../x\", \"a/b\", \"..\", \".\", \"" ID_A "/../x\", \"/" ID_A "\", "
		  "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\", "
		  "\"" ID_A "a\", \"\", \".keep\", \"g" ID_B "\", \"" ID_B "\"]" },
		{ "rest-v1-escapes",
		  "[\"..\\/" ID_A "\", \"\\u0000" ID_A "\", \"\\u0030123456789abcdef0123456789"
		  "abcdef0123456789abcdef0123456789abcdef\", \"\\ud83d\\ude00\", \"\\b\\f\\n\\r\\t\\\"\\\\\"]" },
		{ "rest-v2", "[{\"name\":\"" ID_A "\",\"size\":123},{\"name\":\"" ID_B "\",\"size\":0}]" },
		{ "rest-v2-hostile-names",
		  "[{\"name\":\"../../etc/passwd\",\"size\":1},{\"name\":\"" ID_A "/..\",\"size\":2},"
		  "{\"size\":3,\"name\":\"" ID_B "\"}]" },
		{ "rest-v2-numbers",
		  "[{\"name\":\"" ID_A "\",\"size\":-0.5e+10,\"x\":[0,-1,1E3,2.25,1e-7,null,true,false]}]" },
		{ "autoindex",
		  "[\n{ \"name\":\"" ID_A "\", \"type\":\"file\", " MTIME ", \"size\":5 },\n"
		  "{ \"name\":\"" ID_B "\", \"type\":\"directory\", " MTIME " }\n]\n" },
		{ "autoindex-hostile-names",
		  "[{ \"name\":\"..\", \"type\":\"directory\", " MTIME " },"
		  "{ \"name\":\"" ID_A "/../b\", \"type\":\"file\", \"size\":1 },"
		  "{ \"name\":\"lock\\u002f" ID_B "\", \"type\":\"file\" },"
		  "{ \"name\":\"" ID_B "\", \"type\":\"other\" },"
		  "{ \"name\":\"" ID_B "\", \"type\":\"file\" }]" },
		{ "nested-deep", "[{\"name\":\"" ID_A "\",\"x\":[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]}]" },
		{ "nested-at-limit", "[{\"name\":\"" ID_A "\",\"x\":[[[[[[[[[[[[[[1]]]]]]]]]]]]]]}]" },
		{ "escaped-nul-key", "[{\"name\\u0000\":\"" ID_A "\",\"type\":\"file\\u0000\"}]" },
		{ "two-names", "[{\"name\":\"" ID_A "\",\"name\":\"" ID_B "\"}]" },
		{ "two-types", "[{\"name\":\"" ID_A "\",\"type\":\"file\",\"type\":\"file\"}]" },
		{ "name-not-string", "[{\"name\":7}]" },
		{ "no-name", "[{\"size\":7}]" },
		{ "html", "<html><head><title>Index of /locks/</title></head></html>" },
		{ "truncated", "[\"" ID_A "\",{\"name\":\"" ID_B },
		{ "lone-surrogate", "[\"\\udc00\", \"\\ud800x\"]" },
		{ "control-character", "[\"a\tb\"]" },
		{ "trailing-data", "[] []" },
		{ "empty", "" },
		{ "object-top-level", "{\"name\":\"" ID_A "\"}" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		put_text("listing", cases[i][0], cases[i][1]);
}

/* ---------------------------------------------------------- propfind */

/* The reply for /repo/locks/ (the fuzz target's folder).  The first three
 * are what the servers sent, captured with curl: the folder held one lock
 * file, a file named "odd name %.txt", a subfolder and, on Apache, a
 * second lock file. */
#define DAV_OPEN "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<D:multistatus xmlns:D=\"DAV:\">\n"
#define DAV_CLOSE "</D:multistatus>\n"
#define DAV_FILE(href) "<D:response><D:href>" href "</D:href><D:propstat><D:prop>" \
	"<D:resourcetype/><D:getcontentlength>9</D:getcontentlength></D:prop>" \
	"<D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>\n"
#define DAV_DIR(href) "<D:response><D:href>" href "</D:href><D:propstat><D:prop>" \
	"<D:resourcetype><D:collection/></D:resourcetype></D:prop>" \
	"<D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>\n"

static void propfinds(void)
{
	static const char *const cases[][2] = {
		{ "apache",
		  "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n"
		  "<D:multistatus xmlns:D=\"DAV:\" xmlns:ns0=\"DAV:\">\n"
		  "<D:response xmlns:lp1=\"DAV:\" xmlns:g0=\"DAV:\">\n"
		  "<D:href>/repo/locks/</D:href>\n"
		  "<D:propstat>\n"
		  "<D:prop>\n"
		  "<lp1:resourcetype><D:collection/></lp1:resourcetype>\n"
		  "</D:prop>\n"
		  "<D:status>HTTP/1.1 200 OK</D:status>\n"
		  "</D:propstat>\n"
		  "<D:propstat>\n"
		  "<D:prop>\n"
		  "<g0:getcontentlength/>\n"
		  "</D:prop>\n"
		  "<D:status>HTTP/1.1 404 Not Found</D:status>\n"
		  "</D:propstat>\n"
		  "</D:response>\n"
		  "<D:response xmlns:lp1=\"DAV:\" xmlns:lp2=\"http://apache.org/dav/props/\">\n"
		  "<D:href>/repo/locks/odd%20name%20%25.txt</D:href>\n"
		  "<D:propstat>\n"
		  "<D:prop>\n"
		  "<lp1:resourcetype/>\n"
		  "<lp1:getcontentlength>2</lp1:getcontentlength>\n"
		  "</D:prop>\n"
		  "<D:status>HTTP/1.1 200 OK</D:status>\n"
		  "</D:propstat>\n"
		  "</D:response>\n"
		  "<D:response xmlns:lp1=\"DAV:\" xmlns:g0=\"DAV:\">\n"
		  "<D:href>/repo/locks/sub/</D:href>\n"
		  "<D:propstat>\n"
		  "<D:prop>\n"
		  "<lp1:resourcetype><D:collection/></lp1:resourcetype>\n"
		  "</D:prop>\n"
		  "<D:status>HTTP/1.1 200 OK</D:status>\n"
		  "</D:propstat>\n"
		  "<D:propstat>\n"
		  "<D:prop>\n"
		  "<g0:getcontentlength/>\n"
		  "</D:prop>\n"
		  "<D:status>HTTP/1.1 404 Not Found</D:status>\n"
		  "</D:propstat>\n"
		  "</D:response>\n"
		  "<D:response xmlns:lp1=\"DAV:\" xmlns:lp2=\"http://apache.org/dav/props/\">\n"
		  "<D:href>/repo/locks/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		  "aaaa</D:href>\n"
		  "<D:propstat>\n"
		  "<D:prop>\n"
		  "<lp1:resourcetype/>\n"
		  "<lp1:getcontentlength>6</lp1:getcontentlength>\n"
		  "</D:prop>\n"
		  "<D:status>HTTP/1.1 200 OK</D:status>\n"
		  "</D:propstat>\n"
		  "</D:response>\n"
		  "<D:response xmlns:lp1=\"DAV:\" xmlns:lp2=\"http://apache.org/dav/props/\">\n"
		  "<D:href>/repo/locks/1123456789abcdef0123456789abcdef0123456789abcdef0123456789ab"
		  "cdef</D:href>\n"
		  "<D:propstat>\n"
		  "<D:prop>\n"
		  "<lp1:resourcetype/>\n"
		  "<lp1:getcontentlength>3</lp1:getcontentlength>\n"
		  "</D:prop>\n"
		  "<D:status>HTTP/1.1 200 OK</D:status>\n"
		  "</D:propstat>\n"
		  "</D:response>\n"
		  "</D:multistatus>\n" },
		{ "nginx-dav-ext",
		  "<?xml version=\"1.0\" encoding=\"utf-8\" ?>\n"
		  "<D:multistatus xmlns:D=\"DAV:\">\n"
		  "<D:response>\n"
		  "<D:href>/repo/locks/</D:href>\n"
		  "<D:propstat>\n"
		  "<D:prop>\n"
		  "<D:resourcetype><D:collection/></D:resourcetype>\n"
		  "</D:prop>\n"
		  "<D:status>HTTP/1.1 200 OK</D:status>\n"
		  "</D:propstat>\n"
		  "</D:response>\n"
		  "<D:response>\n"
		  "<D:href>/repo/locks/odd%20name%20%25.txt</D:href>\n"
		  "<D:propstat>\n"
		  "<D:prop>\n"
		  "<D:getcontentlength>2</D:getcontentlength>\n"
		  "<D:resourcetype></D:resourcetype>\n"
		  "</D:prop>\n"
		  "<D:status>HTTP/1.1 200 OK</D:status>\n"
		  "</D:propstat>\n"
		  "</D:response>\n"
		  "<D:response>\n"
		  "<D:href>/repo/locks/sub/</D:href>\n"
		  "<D:propstat>\n"
		  "<D:prop>\n"
		  "<D:resourcetype><D:collection/></D:resourcetype>\n"
		  "</D:prop>\n"
		  "<D:status>HTTP/1.1 200 OK</D:status>\n"
		  "</D:propstat>\n"
		  "</D:response>\n"
		  "<D:response>\n"
		  "<D:href>/repo/locks/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		  "aaaa</D:href>\n"
		  "<D:propstat>\n"
		  "<D:prop>\n"
		  "<D:getcontentlength>6</D:getcontentlength>\n"
		  "<D:resourcetype></D:resourcetype>\n"
		  "</D:prop>\n"
		  "<D:status>HTTP/1.1 200 OK</D:status>\n"
		  "</D:propstat>\n"
		  "</D:response>\n"
		  "<D:response>\n"
		  "<D:href>/repo/locks/1123456789abcdef0123456789abcdef0123456789abcdef0123456789ab"
		  "cdef</D:href>\n"
		  "<D:propstat>\n"
		  "<D:prop>\n"
		  "<D:getcontentlength>3</D:getcontentlength>\n"
		  "<D:resourcetype></D:resourcetype>\n"
		  "</D:prop>\n"
		  "<D:status>HTTP/1.1 200 OK</D:status>\n"
		  "</D:propstat>\n"
		  "</D:response>\n"
		  "</D:multistatus>\n" },
		{ "rclone",
		  "<?xml version=\"1.0\" encoding=\"UTF-8\"?><D:multistatus xmlns:D=\"DAV:\"><D:res"
		  "ponse><D:href>/repo/locks/</D:href><D:propstat><D:prop><D:resourcetype><D:collec"
		  "tion xmlns:D=\"DAV:\"/></D:resourcetype></D:prop><D:status>HTTP/1.1 200 OK</D:st"
		  "atus></D:propstat></D:response><D:response><D:href>/repo/locks/1123456789abcdef0"
		  "123456789abcdef0123456789abcdef0123456789abcdef</D:href><D:propstat><D:prop><D:r"
		  "esourcetype></D:resourcetype></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:pr"
		  "opstat></D:response><D:response><D:href>/repo/locks/aaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa</D:href><D:propstat><D:prop><D:resourcetype"
		  "></D:resourcetype></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:"
		  "response><D:response><D:href>/repo/locks/odd%20name%20%25.txt</D:href><D:propsta"
		  "t><D:prop><D:resourcetype></D:resourcetype></D:prop><D:status>HTTP/1.1 200 OK</D"
		  ":status></D:propstat></D:response><D:response><D:href>/repo/locks/sub/</D:href><"
		  "D:propstat><D:prop><D:resourcetype><D:collection xmlns:D=\"DAV:\"/></D:resourcet"
		  "ype></D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response></D:m"
		  "ultistatus>" },
		{ "empty-folder", DAV_OPEN DAV_DIR("/repo/locks/") DAV_CLOSE },
		{ "absolute-urls", DAV_OPEN DAV_DIR("http://127.0.0.1:8080/repo/locks/")
		  DAV_FILE("http://127.0.0.1:8080/repo/locks/" ID_A)
		  DAV_FILE("https://[::1]/repo/locks/" ID_B) DAV_CLOSE },
		{ "relative-hrefs", DAV_OPEN DAV_FILE(ID_A) DAV_FILE("locks/" ID_B) DAV_CLOSE },
		{ "default-namespace",
		  "<multistatus xmlns=\"DAV:\"><response><href>/repo/locks/" ID_A "</href>"
		  "</response></multistatus>" },
		{ "other-prefix",
		  "<x:multistatus xmlns:x=\"DAV:\" xmlns:D=\"urn:not-dav\"><x:response>"
		  "<x:href>/repo/locks/" ID_A "</x:href></x:response><x:response><D:href>"
		  "/repo/locks/" ID_B "</D:href><x:href>/repo/x</x:href></x:response>"
		  "</x:multistatus>" },
		{ "percent-encoded", DAV_OPEN DAV_FILE("/re%70o/locks/" ID_A)
		  DAV_FILE("/repo/locks/%30123456789abcdef0123456789abcdef0123456789abcdef"
			  "0123456789abcdef") DAV_FILE("/repo%2Flocks/" ID_A)
		  DAV_FILE("/repo/locks/%2e%2e/locks/" ID_B) DAV_FILE("/repo/locks/%zz")
		  DAV_FILE("/repo/locks/%00" ID_A) DAV_CLOSE },
		{ "hostile-hrefs", DAV_OPEN DAV_FILE("/repo/locks/../locks/" ID_A)
		  DAV_FILE("/repo/locks/./" ID_A) DAV_FILE("/repo/other/" ID_A)
		  DAV_FILE("/repo/locks/sub/" ID_A) DAV_FILE("/repo/locks/" ID_A "?x")
		  DAV_FILE("/repo/locks/" ID_A "#x") DAV_FILE("//evil/repo/locks/x")
		  DAV_FILE("/repo/locks/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
		  DAV_FILE("") DAV_DIR("/repo/locks/" ID_B) DAV_FILE("/repo/locks/" ID_A "/")
		  DAV_CLOSE },
		{ "status-forms", DAV_OPEN "<D:response><D:href>/repo/locks/" ID_A "</D:href>"
		  "<D:status>HTTP/1.1 404 Not Found</D:status></D:response>"
		  "<D:response><D:href>\n /repo/locks/" ID_B "\n</D:href>"
		  "<D:status>HTTP/1.1 200 OK</D:status></D:response>"
		  "<D:response><D:href><![CDATA[/repo/locks/]]>" ID_A "</D:href></D:response>"
		  "<D:responsedescription>x</D:responsedescription>" DAV_CLOSE },
		{ "html-nginx", "<html>\r\n<head><title>405 Not Allowed</title></head>\r\n<body>\r\n"
		  "<center><h1>405 Not Allowed</h1></center>\r\n<hr><center>nginx/1.22.1</center>\r\n"
		  "</body>\r\n</html>\r\n" },
		{ "html-apache", "<!DOCTYPE HTML PUBLIC \"-//IETF//DTD HTML 2.0//EN\">\n<html><head>\n"
		  "<title>404 Not Found</title>\n</head><body></body></html>\n" },
		{ "truncated", DAV_OPEN DAV_FILE("/repo/locks/" ID_A) "<D:response><D:href>/repo/lo" },
		{ "billion-laughs", "<?xml version=\"1.0\"?>\n<!DOCTYPE m [\n<!ENTITY a \"aaaa\">\n"
		  "<!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;\">\n<!ENTITY c \"&b;&b;&b;&b;&b;&b;&b;&b;\">\n]>\n"
		  "<D:multistatus xmlns:D=\"DAV:\"><D:response><D:href>&c;</D:href></D:response>"
		  "</D:multistatus>" },
		{ "external-entity", "<?xml version=\"1.0\"?><!DOCTYPE m [<!ENTITY x SYSTEM "
		  "\"file:///etc/passwd\">]><D:multistatus xmlns:D=\"DAV:\"><D:response>"
		  "<D:href>&x;</D:href></D:response></D:multistatus>" },
		{ "undefined-entity", DAV_OPEN "<D:response><D:href>&x;</D:href></D:response>" DAV_CLOSE },
		{ "not-multistatus", "<?xml version=\"1.0\"?><D:prop xmlns:D=\"DAV:\"/>" },
		{ "no-namespace", "<multistatus><response><href>/repo/locks/" ID_A "</href>"
		  "</response></multistatus>" },
		{ "no-href", DAV_OPEN "<D:response><D:propstat/></D:response>" DAV_CLOSE },
		{ "two-hrefs", DAV_OPEN "<D:response><D:href>/repo/locks/" ID_A "</D:href>"
		  "<D:href>/repo/locks/" ID_B "</D:href></D:response>" DAV_CLOSE },
		{ "nested-deep", DAV_OPEN "<D:response><D:href>/repo/locks/" ID_A "</D:href>"
		  "<D:propstat><D:prop><a><a><a><a><a><a><a><a><a><a><a><a><a><a><a><a><a><a>"
		  "<a><a><a><a><a><a><a><a><a><a><a><a>"
		  "</a></a></a></a></a></a></a></a></a></a></a></a></a></a></a></a></a></a>"
		  "</a></a></a></a></a></a></a></a></a></a></a></a>"
		  "</D:prop></D:propstat></D:response>" DAV_CLOSE },
		{ "json-listing", "[{\"name\":\"" ID_A "\",\"type\":\"file\"}]" },
		{ "trailing-root", DAV_OPEN DAV_CLOSE "<D:multistatus xmlns:D=\"DAV:\"/>" },
		{ "empty", "" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		put_text("propfind", cases[i][0], cases[i][1]);
}

/* ------------------------------------------------------- etcd replies */

/* The base64 of "backups/locks/" ID, as the gateway writes keys. */
static const char *etcd_key(const char *id, char *buf)
{
	char key[128];

	snprintf(key, sizeof(key), "backups/locks/%s", id);
	lw__base64_encode(key, strlen(key), buf);
	return buf;
}

static void etcd_replies(void)
{
	static const char *const cases[][2] = {
		{ "grant", "{\"header\":{\"cluster_id\":\"1\",\"member_id\":\"2\",\"revision\":\"7\","
			   "\"raft_term\":\"3\"},\"ID\":\"4111120279720601861\",\"TTL\":\"3\"}" },
		{ "keepalive", "{\"result\":{\"header\":{\"revision\":\"7\"},\"ID\":\"7\","
			       "\"TTL\":\"5\"}}\n" },
		{ "keepalive-gone", "{\"result\":{\"header\":{\"revision\":\"7\"},\"ID\":\"7\"}}\n" },
		{ "stream-error", "{\"error\":{\"grpc_code\":14,\"http_code\":503,\"message\":"
				  "\"etcdserver: no leader\",\"http_status\":\"Service Unavailable\"}}" },
		{ "unary-error", "{\"error\":\"etcdserver: requested lease not found\",\"message\":"
				 "\"etcdserver: requested lease not found\",\"code\":5}\n" },
		{ "txn-succeeded", "{\"header\":{\"revision\":\"42\"},\"succeeded\":true,\"responses\":"
				   "[{\"response_put\":{\"header\":{\"revision\":\"42\"}}}]}" },
		{ "count", "{\"header\":{\"revision\":\"42\"},\"count\":\"3\"}" },
		{ "deleted", "{\"header\":{\"revision\":\"42\"},\"deleted\":\"1\"}" },
		{ "empty", "{\"header\":{\"revision\":\"42\"}}" },
		{ "null", "{\"ID\":null,\"kvs\":null}" },
		{ "truncated", "{\"result\":{\"header\":{\"revision\":\"7\"},\"ID\":\"7\",\"TT" },
		{ "not-base64", "{\"kvs\":[{\"key\":\"a\"}]}" },
		{ "too-big", "{\"ID\":\"99999999999999999999\"}" },
		{ "html", "<html><body>502 Bad Gateway</body></html>" },
		{ "nested-deep", "{\"x\":[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]}" },
		{ "watch-created", "{\"result\":{\"header\":{\"revision\":\"2\"},"
				   "\"created\":true}}\n" },
		{ "watch-compacted", "{\"result\":{\"header\":{\"raft_term\":\"2\"},"
				     "\"canceled\":true,\"compact_revision\":\"4\"}}\n" },
	};
	char a[128], b[128], text[4 * LW_RECORD_MAX], value[2 * LW_RECORD_MAX];
	uint8_t rec[LW_RECORD_MAX];
	int n = lw__record_encode(&sample, rec, sizeof(rec));

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		put_text("etcd-reply", cases[i][0], cases[i][1]);
	snprintf(text, sizeof(text),
		 "{\"header\":{\"revision\":\"9\"},\"kvs\":[{\"key\":\"%s\",\"create_revision\":"
		 "\"5\",\"mod_revision\":\"5\",\"version\":\"1\",\"lease\":\"7\"},{\"key\":\"%s\","
		 "\"create_revision\":\"6\"}],\"count\":\"2\"}", etcd_key(ID_A, a), etcd_key(ID_B, b));
	put_text("etcd-reply", "range", text);
	/* a lease's keys: one lock, one key of another tool's ("other/key") */
	snprintf(text, sizeof(text),
		 "{\"header\":{\"revision\":\"9\"},\"ID\":\"7\",\"TTL\":\"4\",\"grantedTTL\":\"5\","
		 "\"keys\":[\"%s\",\"b3RoZXIva2V5\"]}", etcd_key(ID_A, a));
	put_text("etcd-reply", "timetolive-keys", text);
	snprintf(text, sizeof(text),
		 "{\"header\":{\"revision\":\"9\"},\"succeeded\":false,\"responses\":[{"
		 "\"response_range\":{\"header\":{\"revision\":\"9\"},\"kvs\":[{\"key\":\"%s\","
		 "\"create_revision\":\"5\",\"lease\":\"7\"}],\"count\":\"1\"}}]}",
		 etcd_key(ID_A, a));
	put_text("etcd-reply", "txn-failed", text);
	/* a watch's events: a lock's key deleted, another key put */
	snprintf(text, sizeof(text),
		 "{\"result\":{\"header\":{\"revision\":\"9\"},\"events\":[{\"type\":\"DELETE\","
		 "\"kv\":{\"key\":\"%s\",\"mod_revision\":\"9\"}},{\"kv\":{\"key\":\"%s\","
		 "\"create_revision\":\"8\",\"mod_revision\":\"8\",\"value\":\"eA==\"}}],"
		 "\"fragment\":true}}\n", etcd_key(ID_A, a), etcd_key(ID_B, b));
	put_text("etcd-reply", "watch-events", text);
	if (n < 0) {
		fprintf(stderr, "sample record: %s\n", strerror(-n));
		exit(1);
	}
	lw__base64_encode(rec, (size_t)n, value);
	snprintf(text, sizeof(text),
		 "{\"header\":{\"revision\":\"9\"},\"kvs\":[{\"key\":\"%s\",\"value\":\"%s\","
		 "\"create_revision\":\"5\",\"lease\":\"7\"}],\"count\":\"1\"}",
		 etcd_key(ID_A, a), value);
	put_text("etcd-reply", "read", text);
}

/* --------------------------------------------------------------- URLs */

static void urls(void)
{
	static const char *const cases[][2] = {
		{ "local-absolute", "/srv/repo/" },
		{ "local-prefix", "local:/srv/repo" },
		{ "local-relative", "repo" },
		{ "local-looks-like-url", "local:/a://alice:s3cret@host/" },
		{ "local-empty", "local:" },
		{ "rest", "rest:http://backup.example:8000/repo" },
		{ "rest-credentials", "rest:https://alice:s3cret%40x@host/repo/" },
		{ "rest-empty-password", "rest:http://alice:@host/" },
		{ "rest-user-only", "dav:http://bob@host/" },
		{ "rest-no-user", "rest:http://:s3cret@host/" },
		{ "rest-two-at", "rest:http://a:s3cret@b@host/" },
		{ "rest-bad-escape", "rest:http://alice:s3cret%zz@host/" },
		{ "rest-nul-escape", "rest:http://alice:s3%00cret@host/" },
		{ "rest-bad-port", "rest:http://alice:s3cret@host:99999/" },
		{ "rest-port-junk", "rest:http://host:80x/" },
		{ "rest-dot-dot", "rest:http://host/a/../b" },
		{ "rest-double-slash", "rest:http://host//b" },
		{ "rest-two-endpoints", "rest:http://h1,http://h2/" },
		{ "rest-ftp", "rest:ftp://host/" },
		{ "dav-https", "dav:https://h" },
		{ "dav-ipv6", "dav:http://[::1]:8080/a/b/" },
		{ "dav-ipv6-credentials", "dav:http://u:p@[fe80::1]/x" },
		{ "dav-ipv6-unclosed", "rest:http://[::1/" },
		{ "dav-ipv6-junk", "rest:http://[::1]x/" },
		{ "etcd", "etcd:http://10.0.0.1:2379,http://10.0.0.2:2379,https://h3:2379/backups/" },
		{ "etcd-credentials", "etcd:https://root:s3cret@h1:2379,http://h2:2379/p" },
		{ "etcd-late-credentials", "etcd:http://h1:2379,http://a:s3cret@h2:2379/p" },
		{ "etcd-no-prefix", "etcd:http://127.0.0.1:2379" },
		{ "unsupported", "s3:bucket" },
		{ "unsupported-url", "ftp://alice:s3cret@host/repo" },
		{ "control-character", "dav:http://host/\x1b[2J" },
		{ "utf8", "dav:http://host/r\xc3\xa9po/\xc2\x9b" },
		{ "dav-fragment", "dav:http://127.0.0.1:8080/repo/#" },
		{ "rest-query", "rest:http://127.0.0.1:8000/r/?" },
		{ "dav-encoded-dots", "dav:http://host/repo/%2e%2E/" },
		{ "dav-encoded-slash", "dav:http://host/a%2fb/" },
		{ "dav-encoded-query", "dav:http://host/a%3Fb/" },
		{ "dav-encoded-percent", "dav:http://host/a%252e/" },
		{ "dav-encoded-utf8", "dav:http://host/r%C3%A9po/" },
		{ "dav-encoded-c1", "dav:http://host/r%c2%9b/" },
		{ "dav-backslash", "dav:http://host/a\\..\\b/" },
		{ "etcd-query", "etcd:http://h1:2379/p?x" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		put_text("url", cases[i][0], cases[i][1]);
}

/* ---------------------------------------------------------- durations */

static void durations(void)
{
	static const char *const cases[][2] = {
		{ "zero", "0" }, { "ns", "1ns" }, { "us", "7us" }, { "micro-sign", "7\xc2\xb5s" },
		{ "mu", "7\xce\xbcs" }, { "ms", "250ms" }, { "s", "30s" }, { "m", "5m" },
		{ "h", "2h" }, { "compound", "1h30m15s250ms" }, { "fraction", "1.5h" },
		{ "leading-dot", ".5s" }, { "trailing-dot", "5.s" }, { "nano", "0.000000001s" },
		{ "long-fraction", "1.0000000000000000000000001s" }, { "repeat", "2m3m" },
		{ "max-ns", "9223372036854775807ns" }, { "max", "2562047h47m16.854775807s" },
		{ "over-max", "2562047h47m16.854775808s" }, { "huge", "99999999999999999999999s" },
		{ "negative", "-1s" }, { "exponent", "1e9h" }, { "words", "5 minutes" },
		{ "no-unit", "5" }, { "unit-only", "s" }, { "empty", "" },
		{ "near-second", "999.6ms" }, { "near-minute", "59.96s" },
		{ "near-hour", "59m59.6s" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		put_text("duration", cases[i][0], cases[i][1]);
}

/* ------------------------------------------------------ restic locks */

/* The plaintexts of restic lock files: fuzz-restic-lock seals each one
 * under its fixed key.  JSON as restic and lockwatch write it, format 2's
 * zstd frames of it, and the hostile shapes the decoder refuses. */
static void put_zstd(const char *name, const void *json, size_t len, bool claim_size)
{
	uint8_t out[LW_RECORD_MAX];
	ZSTD_CCtx *cctx = ZSTD_createCCtx();
	ZSTD_outBuffer o = { out + 1, sizeof(out) - 1, 0 };
	ZSTD_inBuffer in = { json, len, 0 };
	size_t left;

	out[0] = 2;
	ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, claim_size);
	ZSTD_CCtx_setPledgedSrcSize(cctx, len);
	do {
		left = ZSTD_compressStream2(cctx, &o, &in, ZSTD_e_end);
		if (ZSTD_isError(left)) {
			fprintf(stderr, "%s: %s\n", name, ZSTD_getErrorName(left));
			exit(1);
		}
	} while (left);
	ZSTD_freeCCtx(cctx);
	put("restic-lock", name, out, o.pos + 1);
}

static void restic_locks(void)
{
	static const char *const texts[][2] = {
		{ "restic-doc", "{\n  \"time\": \"2015-06-27T12:18:51.759239612+02:00\",\n"
		  "  \"exclusive\": false,\n  \"hostname\": \"kasimir\",\n"
		  "  \"username\": \"fd0\",\n  \"pid\": 13607,\n  \"uid\": 1000,\n"
		  "  \"gid\": 100\n}" },
		{ "restic-014", "{\"time\":\"2026-12-03T13:35:24.966851307Z\",\"exclusive\":false,"
		  "\"hostname\":\"vm\",\"username\":\"root\",\"pid\":10574}" },
		{ "utf8", "{\"time\":\"2026-12-03T13:35:24Z\",\"exclusive\":true,"
		  "\"hostname\":\"h\\u00f6st\\ud83d\\ude00\",\"username\":\"jos\xc3\xa9\",\"pid\":1}" },
		{ "duplicate-pid", "{\"time\":\"2026-12-03T13:35:24Z\",\"exclusive\":false,"
		  "\"hostname\":\"h\",\"username\":\"u\",\"pid\":1,\"pid\":2}" },
		{ "pid-string", "{\"time\":\"2026-12-03T13:35:24Z\",\"exclusive\":false,"
		  "\"hostname\":\"h\",\"username\":\"u\",\"pid\":\"1\"}" },
		{ "huge-pid", "{\"time\":\"2026-12-03T13:35:24Z\",\"exclusive\":false,"
		  "\"hostname\":\"h\",\"username\":\"u\",\"pid\":99999999999999999999}" },
		{ "uid-negative", "{\"time\":\"2026-12-03T13:35:24Z\",\"exclusive\":false,"
		  "\"hostname\":\"h\",\"username\":\"u\",\"pid\":1,\"uid\":-1}" },
		{ "time-far", "{\"time\":\"9999-12-31T23:59:59.999999999-23:59\",\"exclusive\":false,"
		  "\"hostname\":\"h\",\"username\":\"u\",\"pid\":1}" },
		{ "time-min", "{\"time\":\"1677-09-21T00:12:43.145224192Z\",\"exclusive\":false,"
		  "\"hostname\":\"h\",\"username\":\"u\",\"pid\":1}" },
		{ "half-lockwatch", "{\"time\":\"2026-12-03T13:35:24Z\",\"exclusive\":false,"
		  "\"hostname\":\"h\",\"username\":\"u\",\"pid\":1,\"boot_id\":\"b\"}" },
		{ "array", "[{\"time\":\"2026-12-03T13:35:24Z\"}]" },
		{ "deep", "{\"x\":[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]}" },
		{ "encoding-3", "\x03{}" },
		{ "empty", "" },
	};
	static char s255[256];
	struct lw__record r = sample;
	char json[LW_RECORD_MAX];
	int n;

	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
		put_text("restic-lock", texts[i][0], texts[i][1]);
	n = lw__restic_lock_encode(&r, json, sizeof(json));
	if (n < 0)
		exit(1);
	put("restic-lock", "lockwatch", json, (size_t)n);
	r.pgid = 31337;
	r.pgid_start = 12345678;
	n = lw__restic_lock_encode(&r, json, sizeof(json));
	if (n < 0)
		exit(1);
	put("restic-lock", "lockwatch-job", json, (size_t)n);
	r.pgid = 0;
	r.pgid_start = 0;
	n = lw__restic_lock_encode(&r, json, sizeof(json));
	put_zstd("lockwatch-zstd", json, (size_t)n, true);
	put_zstd("lockwatch-zstd-unsized", json, (size_t)n, false);
	put_zstd("restic-zstd", texts[1][1], strlen(texts[1][1]), true);
	memset(s255, 'x', 255);
	r.hostname = r.username = r.boot_id = r.purpose = s255;
	r.time = INT64_MIN;
	r.pid = r.stale_timeout = INT64_MAX;
	r.uid = r.gid = UINT32_MAX;
	r.pid_ns = r.pid_start = INT64_MAX;
	n = lw__restic_lock_encode(&r, json, sizeof(json));
	if (n < 0)
		exit(1);
	put("restic-lock", "lockwatch-limits", json, (size_t)n);
	{
		/* 16 MiB of zeros in a few hundred bytes: a bomb, with and
		 * without the size in its header */
		static char zeros[16 << 20];

		put_zstd("bomb-claimed", zeros, sizeof(zeros), true);
		put_zstd("bomb-unclaimed", zeros, sizeof(zeros), false);
	}
}

/* -------------------------------------------------------- restic keys */

#define KEY_SALT "uW4fEI1+IOzj7ED9mVor+yTSJFd68DGlGOeLgJELYsTU5ikhG/83/+jGd4KKAaQdSrsfzrdOhAMftTSih5Ux6w=="
#define KEY_DATA "tGwYeKoM0C4j4/9DFrVEmMGAldvEn/+iKC3te/QE/6ox/V4qz58FUOgMa0Bb1cIJ"

static void restic_keys(void)
{
	static const char *const texts[][2] = {
		{ "restic-014", "{\"created\":\"2026-12-03T13:35:15.547518078Z\",\"username\":"
		  "\"root\",\"hostname\":\"vm\",\"kdf\":\"scrypt\",\"N\":32768,\"r\":8,\"p\":6,"
		  "\"salt\":\"" KEY_SALT "\",\"data\":\"" KEY_DATA "\"}" },
		{ "cheap", "{\"kdf\":\"scrypt\",\"N\":16,\"r\":1,\"p\":1,"
		  "\"salt\":\"" KEY_SALT "\",\"data\":\"" KEY_DATA "\"}" },
		{ "absurd-memory", "{\"kdf\":\"scrypt\",\"N\":1048576,\"r\":64,\"p\":1,"
		  "\"salt\":\"" KEY_SALT "\",\"data\":\"" KEY_DATA "\"}" },
		{ "absurd-work", "{\"kdf\":\"scrypt\",\"N\":1048576,\"r\":8,\"p\":1024,"
		  "\"salt\":\"" KEY_SALT "\",\"data\":\"" KEY_DATA "\"}" },
		{ "n-not-power", "{\"kdf\":\"scrypt\",\"N\":1000,\"r\":8,\"p\":1,"
		  "\"salt\":\"" KEY_SALT "\",\"data\":\"" KEY_DATA "\"}" },
		{ "n-huge", "{\"kdf\":\"scrypt\",\"N\":1e400,\"r\":8,\"p\":1,"
		  "\"salt\":\"" KEY_SALT "\",\"data\":\"" KEY_DATA "\"}" },
		{ "duplicate-n", "{\"kdf\":\"scrypt\",\"N\":16,\"N\":32,\"r\":8,\"p\":1,"
		  "\"salt\":\"" KEY_SALT "\",\"data\":\"" KEY_DATA "\"}" },
		{ "argon2", "{\"kdf\":\"argon2\",\"N\":16,\"r\":8,\"p\":1,"
		  "\"salt\":\"" KEY_SALT "\",\"data\":\"" KEY_DATA "\"}" },
		{ "short-salt", "{\"kdf\":\"scrypt\",\"N\":16,\"r\":8,\"p\":1,"
		  "\"salt\":\"AAAA\",\"data\":\"" KEY_DATA "\"}" },
		{ "no-data", "{\"kdf\":\"scrypt\",\"N\":16,\"r\":8,\"p\":1,"
		  "\"salt\":\"" KEY_SALT "\"}" },
		{ "html", "<html><body>502</body></html>" },
	};

	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
		put_text("restic-key", texts[i][0], texts[i][1]);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: gen-corpus DIR\n");
		return 2;
	}
	top = argv[1];
	if (mkdir(top, 0777) < 0 && errno != EEXIST) {
		perror(top);
		return 1;
	}
	valid_records();
	shaped_records();
	raw_records();
	truncated_records();
	listings();
	propfinds();
	etcd_replies();
	urls();
	durations();
	restic_locks();
	restic_keys();
	return 0;
}
