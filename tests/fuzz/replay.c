/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * A fuzz target without libFuzzer: feeds it each input of its corpus once,
 * so that make check replays the corpora in every build, gcc included.
 * Arguments are files or directories; without any, replay-NAME reads
 * $top_srcdir/tests/fuzz/corpus/NAME.  An input that breaks an invariant
 * aborts (and was named just before); a corpus that holds nothing fails.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <sys/stat.h>

#include "fuzz.h"

/* The file in an allocation of exactly its size, so that the sanitizers
 * see a read past its end. */
static uint8_t *slurp(const char *path, size_t *size)
{
	FILE *f = fopen(path, "rb");
	uint8_t *data;
	struct stat st;

	if (!f)
		return NULL;
	data = fstat(fileno(f), &st) == 0 ? malloc((size_t)st.st_size) : NULL;
	if (data && fread(data, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
		free(data);
		data = NULL;
	}
	*size = data ? (size_t)st.st_size : 0;
	fclose(f);
	return data;
}

static int visible(const struct dirent *d)
{
	return d->d_name[0] != '.';
}

/* The number of inputs replayed from PATH (a file or a directory), or -1. */
static int replay(const char *path)
{
	struct dirent **names;
	struct stat st;
	uint8_t *data;
	size_t size;
	int n, done = 0;

	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
		n = scandir(path, &names, visible, alphasort);
		if (n < 0) {
			fprintf(stderr, "%s: %s\n", path, strerror(errno));
			return -1;
		}
		for (int i = 0; i < n; i++) {
			char *file;
			int r;

			if (asprintf(&file, "%s/%s", path, names[i]->d_name) < 0)
				abort();
			r = replay(file);
			done = done < 0 || r < 0 ? -1 : done + r;
			free(file);
			free(names[i]);
		}
		free(names);
		return done;
	}
	data = slurp(path, &size);
	if (!data) {
		fprintf(stderr, "%s: cannot read it\n", path);
		return -1;
	}
	printf("%s\n", path);
	fflush(stdout);
	LLVMFuzzerTestOneInput(data, size);
	free(data);
	return 1;
}

int main(int argc, char **argv)
{
	const char *name = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
	const char *top = getenv("top_srcdir");
	char *own = NULL, **paths = argv + 1;
	int npaths = argc - 1, total = 0;

	if (argc == 1) {
		if (strncmp(name, "replay-", strlen("replay-")) != 0) {
			fprintf(stderr, "usage: replay-NAME [FILE|DIR...]\n");
			return 2;
		}
		if (asprintf(&own, "%s/tests/fuzz/corpus/%s", top ? top : ".",
			     name + strlen("replay-")) < 0)
			abort();
		paths = &own;
		npaths = 1;
	}
	for (int i = 0; i < npaths; i++) {
		int r = replay(paths[i]);

		total = total < 0 || r < 0 ? -1 : total + r;
	}
	if (total > 0)
		printf("%d inputs, every invariant held\n", total);
	else
		fprintf(stderr, "no input replayed\n");
	free(own);
	return total > 0 ? 0 : 1;
}
