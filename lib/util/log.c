/* SPDX-License-Identifier: BSD-2-Clause */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/internal.h"

static const char *const names[] = {
	[LOG_EMERG] = "emerg", [LOG_ALERT] = "alert", [LOG_CRIT] = "crit",
	[LOG_ERR] = "err", [LOG_WARNING] = "warning", [LOG_NOTICE] = "notice",
	[LOG_INFO] = "info", [LOG_DEBUG] = "debug",
};

static int env_priority(void)
{
	const char *s = getenv("LOCKWATCH_LOG");

	if (!s || !*s)
		return LOG_WARNING;
	for (size_t i = 0; i < LW_ARRAY_SIZE(names); i++)
		if (strcasecmp(s, names[i]) == 0)
			return (int)i;
	if (strcasecmp(s, "error") == 0)
		return LOG_ERR;
	if (s[0] >= '0' && s[0] <= '7' && !s[1])
		return s[0] - '0';
	return LOG_WARNING;
}

static void log_stderr(void *userdata, int priority, const char *msg)
{
	fprintf(stderr, "lockwatch: %s: %s\n",
		priority >= 0 && priority <= LOG_DEBUG ? names[priority] : "?", msg);
}

void lw__log_init(struct lw__log *log)
{
	log->fn = log_stderr;
	log->userdata = NULL;
	log->priority = env_priority();
}

void lw__logf(const struct lw__log *log, int priority, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if (!lw__log_enabled(log, priority) || !log->fn)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log->fn(log->userdata, priority, msg);
}
