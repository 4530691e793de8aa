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

/* An identical line after this long is told again, after the count. */
#define REPEAT_WINDOW LW_SEC(60)

void lw__log_init(struct lw__log *log)
{
	log->fn = log_stderr;
	log->userdata = NULL;
	log->priority = env_priority();
	/* without memory every line is told: nothing is lost */
	log->repeat = calloc(1, sizeof(*log->repeat));
	if (log->repeat)
		pthread_mutex_init(&log->repeat->mu, NULL);
}

/* Tells how many identical lines were not; under REP->mu. */
static void tell_repeats(const struct lw__log *log, struct lw__log_repeat *rep)
{
	char msg[64];

	if (rep->repeats == 0)
		return;
	snprintf(msg, sizeof(msg), "the last message repeated %u more time%s",
		 rep->repeats, rep->repeats == 1 ? "" : "s");
	rep->repeats = 0;
	if (log->fn)
		log->fn(log->userdata, rep->priority, msg);
}

void lw__log_fini(struct lw__log *log)
{
	struct lw__log_repeat *rep = log->repeat;

	/* the count of repeats not told yet is dropped: the application's log
	 * function may be gone by the time the last reference goes */
	if (!rep)
		return;
	pthread_mutex_destroy(&rep->mu);
	free(rep);
	log->repeat = NULL;
}

void lw__logf(const struct lw__log *log, int priority, const char *fmt, ...)
{
	struct lw__log_repeat *rep = log ? log->repeat : NULL;
	char msg[1024];
	va_list ap;
	int64_t now;

	if (!lw__log_enabled(log, priority) || !log->fn)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* debug lines are for following what happens: all of them */
	if (!rep || priority == LOG_DEBUG) {
		log->fn(log->userdata, priority, msg);
		return;
	}
	now = lw__now_boot();
	pthread_mutex_lock(&rep->mu);
	if (priority == rep->priority && strcmp(msg, rep->last) == 0 &&
	    now - rep->told_at < REPEAT_WINDOW) {
		rep->repeats++;
	} else {
		tell_repeats(log, rep);
		rep->priority = priority;
		rep->told_at = now;
		snprintf(rep->last, sizeof(rep->last), "%s", msg);
		log->fn(log->userdata, priority, msg);
	}
	pthread_mutex_unlock(&rep->mu);
}
