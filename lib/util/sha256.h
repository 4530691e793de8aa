/* SPDX-License-Identifier: BSD-2-Clause */
/* SHA-256 through libcrypto: the name of every lock file is the hash of its
 * content (DESIGN.md, Vocabulary), which is what rest-server checks on
 * upload and what restic calls a storage ID. */
#pragma once

#include <stddef.h>

#include "util/internal.h"

/*
 * lw__sha256 - the SHA-256 of LEN bytes at BUF, into *OUT (lw__id_hex then
 * gives the file's name).
 *
 * Returns: 0, or -EIO when libcrypto fails (no SHA-256 provider, no memory).
 */
int lw__sha256(const void *buf, size_t len, struct lw__id *out);
