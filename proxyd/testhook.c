#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

/* testhook.c - the test clock (see testhook.h for the contract). */

#include <stdatomic.h>
#include <stdlib.h>

#include "testhook.h"

long long
testhook_now(void)
{
#ifdef PROXYD_TEST_HOOKS
	static _Atomic long long fixed = -2; /* -2: not read yet */
	long long v = atomic_load_explicit(&fixed, memory_order_relaxed);

	if (v == -2) {
		const char *e = getenv("PROXYD_TEST_NOW");
		char *end = NULL;

		v = e != NULL ? strtoll(e, &end, 10) : -1;
		if (e == NULL || end == e || *end != '\0' || v < 0)
			v = -1;
		atomic_store_explicit(&fixed, v, memory_order_relaxed);
	}
	return v;
#else
	return -1;
#endif
}
