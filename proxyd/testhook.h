/*
 * testhook.h - the test clock shared by every clock of the daemon.
 *
 * Contract: builds configured with --enable-test-hooks read PROXYD_TEST_NOW (seconds since
 * the epoch, decimal digits) once, on the first call, and answer that value from then on;
 * unset, empty, negative or not a number reads as no fixed clock. Release builds never
 * look at the environment. Thread-safe (a relaxed atomic; a race on the first call parses
 * twice and agrees). Each clock keeps its own base and only asks this module whether time
 * stands still: session_now() (wall clock, rules) and limit_now_us() (monotonic, limits).
 */
#ifndef PROXYD_TESTHOOK_H
#define PROXYD_TESTHOOK_H

/* PROXYD_TEST_NOW in seconds, or -1 when time is not fixed (always -1 in release builds). */
long long testhook_now(void);

#endif /* PROXYD_TESTHOOK_H */
