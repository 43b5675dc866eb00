#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <sys/stat.h>
#include <sys/types.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"

char unit_tmpdir[PATH_MAX];
static char unit_basedir[PATH_MAX];

static int
unit_rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st, (void)type, (void)ftw;
	remove(path);
	return 0;
}

void
unit_tmpdir_setup(void)
{
	int n = snprintf(unit_tmpdir, sizeof(unit_tmpdir), "%s/t.XXXXXX", unit_basedir);

	ck_assert(n > 0 && (size_t)n < sizeof(unit_tmpdir));
	ck_assert(mkdtemp(unit_tmpdir) != NULL);
}

void
unit_tmpdir_teardown(void)
{
	if (unit_tmpdir[0] != '\0')
		nftw(unit_tmpdir, unit_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

const char *
unit_path(const char *name)
{
	static char bufs[4][PATH_MAX];
	static unsigned int next;
	char *b = bufs[next++ % 4];

	ck_assert(snprintf(b, PATH_MAX, "%s/%s", unit_tmpdir, name) < PATH_MAX);
	return b;
}

void
unit_write(const char *name, const char *text, size_t len)
{
	FILE *f = fopen(unit_path(name), "w");

	ck_assert(f != NULL);
	ck_assert_uint_eq(fwrite(text, 1, len, f), len);
	ck_assert_int_eq(fclose(f), 0);
}

int
unit_main(const char *name, Suite *s)
{
	const char *base = getenv("TMPDIR");
	SRunner *sr;
	int failed;

	if (base == NULL || *base == '\0')
		base = "/tmp";
	snprintf(unit_basedir, sizeof(unit_basedir), "%s/%s.XXXXXX", base, name);
	if (mkdtemp(unit_basedir) == NULL) {
		perror(unit_basedir);
		return EXIT_FAILURE;
	}
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	nftw(unit_basedir, unit_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
