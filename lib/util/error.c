/* SPDX-License-Identifier: BSD-2-Clause */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/internal.h"

static __thread char errmsg[1024];

LW_EXPORT const char *lw_strerror(int err)
{
	switch (-err) {
	case LW_ELOCKED:
		return "repository is locked by another holder";
	case LW_ELOST:
		return "lock lost";
	case LW_EINVALID:
		return "invalid lock record";
	case LW_EBACKEND:
		return "backend error";
	}
	return strerror(-err);
}

LW_EXPORT const char *lw_errmsg(void)
{
	return errmsg;
}

void lw__set_errmsg(const char *msg)
{
	snprintf(errmsg, sizeof(errmsg), "%s", msg);
}

int lw__fail(int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(errmsg, sizeof(errmsg), fmt, ap);
	va_end(ap);
	return err;
}

char *lw__sfmt(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	return buf;
}

char *lw__strdup0(const char *s)
{
	return s ? strdup(s) : NULL;
}

char *lw__sanitize(char *s)
{
	for (unsigned char *p = (unsigned char *)s; *p; p++) {
		if (*p < 0x20 || *p == 0x7f)
			*p = '?';
		else if (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f)
			p[0] = p[1] = '?';
	}
	return s;
}
