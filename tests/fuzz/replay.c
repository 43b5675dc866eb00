/*
 * replay.c - a main() for the fuzzers when they are not built with libFuzzer: it calls
 * LLVMFuzzerTestOneInput() once on every file named, or on every file of every
 * directory named (sorted by name, not recursive), and prints one TAP line per file.
 *
 * Without arguments it replays $TOP_SRCDIR/tests/fuzz/corpus/NAME, NAME being the
 * program's own name (fuzz_http replays corpus/fuzz_http): this is how `make check`
 * runs each corpus, under ASan and UBSan in CI. Each input is passed in a buffer of
 * exactly its size, as libFuzzer does, so that ASan sees a read past its end. A fuzzer
 * property that fails aborts, which the TAP driver reports as an error.
 *
 * Exit status: 0 if every file was read and replayed, 1 if a file or directory could
 * not be read (or there was none: an empty corpus is a packaging mistake).
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_count;

/* Read path into a malloc'd buffer of exactly its size. -1 with errno on failure. */
static int
replay_read(const char *path, uint8_t **bufp, size_t *lenp)
{
	struct stat st;
	uint8_t *buf;
	size_t len = 0;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	if (fstat(fd, &st) == -1 ||
	    (buf = malloc(st.st_size > 0 ? (size_t)st.st_size : 1)) == NULL) {
		close(fd);
		return -1;
	}
	while (len < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + len, (size_t)st.st_size - len);

		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		len += (size_t)r;
	}
	close(fd);
	*bufp = buf;
	*lenp = len;
	return 0;
}

/* Replay path; the TAP line names it as name. */
static int
replay_file(const char *path, const char *name)
{
	uint8_t *buf;
	size_t len;

	if (replay_read(path, &buf, &len) == -1) {
		printf("not ok %d - %s: %s\n", ++replay_count, name, strerror(errno));
		return -1;
	}
	/* the name first: a crash report follows the input that caused it */
	printf("# %s\n", path);
	fflush(stdout);
	LLVMFuzzerTestOneInput(buf, len);
	free(buf);
	printf("ok %d - %s (%zu bytes)\n", ++replay_count, name, len);
	return 0;
}

static int
replay_strcmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int
replay_dir(const char *dir)
{
	struct dirent *de;
	char **names = NULL, path[4096];
	size_t n = 0, i;
	DIR *d;
	int rc = 0;

	if ((d = opendir(dir)) == NULL) {
		printf("not ok %d - %s: %s\n", ++replay_count, dir, strerror(errno));
		return -1;
	}
	while ((de = readdir(d)) != NULL) {
		char **nn;

		if (de->d_name[0] == '.')
			continue;
		if ((nn = realloc(names, (n + 1) * sizeof(*names))) == NULL ||
		    (nn[n] = strdup(de->d_name)) == NULL) {
			names = nn != NULL ? nn : names;
			rc = -1;
			break;
		}
		names = nn;
		n++;
	}
	closedir(d);
	qsort(names, n, sizeof(*names), replay_strcmp);
	for (i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		if (replay_file(path, names[i]) == -1)
			rc = -1;
		free(names[i]);
	}
	free(names);
	return rc;
}

static int
replay_path(const char *path)
{
	struct stat st;

	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
		return replay_dir(path);
	return replay_file(path, path);
}

int
main(int argc, char **argv)
{
	const char *name = strrchr(argv[0], '/'), *top = getenv("TOP_SRCDIR");
	char dir[4096];
	int i, rc = 0;

	name = name != NULL ? name + 1 : argv[0];
	/* TAP: the plan comes last, once the number of files is known */
	if (argc > 1) {
		for (i = 1; i < argc; i++)
			if (replay_path(argv[i]) == -1)
				rc = 1;
	} else {
		snprintf(dir, sizeof(dir), "%s/tests/fuzz/corpus/%s", top != NULL ? top : ".",
		         name);
		if (replay_dir(dir) == -1)
			rc = 1;
	}
	if (replay_count == 0) {
		printf("not ok 1 - no input files\n");
		replay_count = 1;
		rc = 1;
	}
	printf("1..%d\n", replay_count);
	return rc;
}
