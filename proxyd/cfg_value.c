#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

/* cfg_value.c - the plain number parser (see cfg_value.h for the contract). */

#include <stdint.h>

#include "cfg_value.h"

int
cfg_parse_uint(const char *s, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (*s == '\0')
		return -1;
	for (; *s != '\0'; s++) {
		unsigned int digit;

		if (*s < '0' || *s > '9')
			return -1;
		digit = (unsigned int)(*s - '0');
		if (v > (max - digit) / 10)
			return -1;
		v = v * 10 + digit;
	}
	*out = v;
	return 0;
}
