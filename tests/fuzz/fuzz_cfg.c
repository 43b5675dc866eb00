/*
 * fuzz_cfg.c - libFuzzer entry point for the configuration parser (proxyd/cfg.c): the
 * lexer, every directive handler, the block structure, validation and the free of a
 * complete or half-built generation.
 *
 * The input is a proxyd.conf, loaded with cfg_load_buffer(CFG_LOAD_DRY): no include, no
 * name resolution, no access log or cache store opened, so a run has no side effects and
 * does not depend on the network. These properties abort when they fail:
 *   - a load either returns a generation and no message, or NULL and a message;
 *   - a message about the input starts with "fuzz.conf:LINE: " where LINE is a line of
 *     the input (or the line after the last one, for an unexpected end of file); any
 *     message starts with "FILE:LINE: " (proxyd.conf(5), "Errors");
 *   - a generation has at least one server, and every server a listen address;
 *   - loading the same input twice gives the same answer (no hidden global state).
 * Run under ASan, the leak checker catches what a failed load does not free.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* "FILE:LINE: " at the start of err; the line, or -1 when it is not there. */
static long
err_line(const char *err, const char **file_end)
{
	const char *colon = err, *p;
	long line;

	/* the file name may itself hold colons: take the first ":DIGITS: " */
	while ((colon = strchr(colon, ':')) != NULL) {
		for (p = colon + 1, line = 0; *p >= '0' && *p <= '9' && line < 100000000; p++)
			line = line * 10 + (*p - '0');
		if (p > colon + 1 && p[0] == ':' && p[1] == ' ') {
			*file_end = colon;
			return line;
		}
		colon++;
	}
	return -1;
}

static void
check_load(const char *buf, size_t size, struct cfg *cfg, const char *err)
{
	const char *file_end = NULL;
	long line, lines = 1;

	if ((cfg == NULL) == (err == NULL))
		abort();
	if (cfg != NULL) {
		if (cfg->nservers == 0)
			abort();
		for (size_t i = 0; i < cfg->nservers; i++)
			if (cfg->servers[i].nlistens == 0)
				abort();
		return;
	}
	if ((line = err_line(err, &file_end)) < 1)
		abort();
	if ((size_t)(file_end - err) == 9 && strncmp(err, "fuzz.conf", 9) == 0) {
		for (size_t i = 0; i < size; i++)
			lines += buf[i] == '\n';
		if (line > lines)
			abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	char *err = NULL, *err2 = NULL;
	struct cfg *cfg, *cfg2;

	cfg = cfg_load_buffer("fuzz.conf", buf, size, CFG_LOAD_DRY, &err);
	check_load(buf, size, cfg, err);
	cfg2 = cfg_load_buffer("fuzz.conf", buf, size, CFG_LOAD_DRY, &err2);
	if ((cfg2 == NULL) != (cfg == NULL) || (err != NULL && strcmp(err, err2) != 0))
		abort();
	cfg_unref(cfg);
	cfg_unref(cfg2);
	free(err);
	free(err2);
	return 0;
}
