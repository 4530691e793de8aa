/* SPDX-License-Identifier: BSD-2-Clause */
#include "config.h"

#include <openssl/evp.h>
#include <pthread.h>

#include "util/sha256.h"

_Static_assert(LW_ID_LEN == 32, "a lock id is a SHA-256");

static EVP_MD *sha256;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

/* OpenSSL 3 looks an algorithm up by name on every implicit use; fetched
 * once, hashing a lock costs the hash alone. */
static void fetch(void)
{
	sha256 = EVP_MD_fetch(NULL, "SHA2-256", NULL);
}

int lw__sha256(const void *buf, size_t len, struct lw__id *out)
{
	unsigned int n = 0;

	pthread_once(&sha256_once, fetch);
	if (!sha256 ||
	    EVP_Digest(buf, len, out->b, &n, sha256, NULL) != 1 || n != LW_ID_LEN)
		return -EIO;
	return 0;
}
