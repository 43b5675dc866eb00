/*
 * unit.h - the fixture the Check suites share: one base directory per run under $TMPDIR
 * (or /tmp), a fresh directory per test inside it, files written there, and a main()
 * that runs a suite and removes the base directory even when tests fail. Nothing is
 * written into the source tree.
 */
#ifndef PROXYD_TESTS_UNIT_H
#define PROXYD_TESTS_UNIT_H

#include <limits.h>
#include <stddef.h>

#include <check.h>

extern char unit_tmpdir[PATH_MAX]; /* the running test's directory */

/* Checked fixture: make a fresh unit_tmpdir / remove it. */
void unit_tmpdir_setup(void);
void unit_tmpdir_teardown(void);

/* unit_tmpdir/name, in one of a few static buffers (so two may be used at once). */
const char *unit_path(const char *name);
/* Write len bytes of text to unit_tmpdir/name. */
void unit_write(const char *name, const char *text, size_t len);

/* Run suite s of program name; returns main()'s exit status. */
int unit_main(const char *name, Suite *s);

#endif /* PROXYD_TESTS_UNIT_H */
