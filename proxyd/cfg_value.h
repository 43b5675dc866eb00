/*
 * cfg_value.h - the plain number parser of configuration values, on its own so that a
 * module below cfg (limit.c, whose directive arguments cfg hands it) shares it without
 * depending on cfg. cfg.h includes this header.
 *
 * Contract: pure (no allocation, no I/O, no global state); any thread.
 */
#ifndef PROXYD_CFG_VALUE_H
#define PROXYD_CFG_VALUE_H

#include <stdint.h>

/* A decimal number made of digits only, at most max. Returns 0, or -1 if not one. */
int cfg_parse_uint(const char *s, uint64_t max, uint64_t *out);

#endif /* PROXYD_CFG_VALUE_H */
