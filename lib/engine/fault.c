/* SPDX-License-Identifier: BSD-2-Clause */
/* Fault injection for tests and the benchmark: a hook that sees every file
 * operation before an engine runs it, and the pipe that hung operations
 * read from. */
#include "config.h"

#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include "engine/engine.h"

static pthread_mutex_t fault_mu = PTHREAD_MUTEX_INITIALIZER;
static lw__fault_fn fault_fn;
static void *fault_userdata;
static int hang_pipe[2] = { -1, -1 };

void lw__fault_set(lw__fault_fn fn, void *userdata)
{
	pthread_mutex_lock(&fault_mu);
	fault_fn = fn;
	fault_userdata = userdata;
	pthread_mutex_unlock(&fault_mu);
}

int lw__fault_hang_fd(void)
{
	int fd;

	pthread_mutex_lock(&fault_mu);
	if (hang_pipe[0] < 0 && pipe2(hang_pipe, O_CLOEXEC) < 0)
		hang_pipe[0] = hang_pipe[1] = -1;
	fd = hang_pipe[0];
	pthread_mutex_unlock(&fault_mu);
	return fd;
}

void lw__fault_release(void)
{
	pthread_mutex_lock(&fault_mu);
	/* Closing the write end ends every read of the pipe.  The read end
	 * stays open: a hung operation may not have started its read yet, and
	 * its descriptor number must not be reused under it. */
	if (hang_pipe[1] >= 0)
		close(hang_pipe[1]);
	hang_pipe[0] = hang_pipe[1] = -1;
	pthread_mutex_unlock(&fault_mu);
}

int lw__fault_check(const struct lw__fop *op)
{
	int r = 0;

	pthread_mutex_lock(&fault_mu);
	if (fault_fn)
		r = fault_fn(op, fault_userdata);
	pthread_mutex_unlock(&fault_mu);
	return r;
}
