/*
 * rxset.c - micro-benchmark of regexes sets: the 1,000 patterns of tests/bench/acl (same
 * generator) as one `url ~ in SET` matcher and as 1,000 `url ~ "RE"` rules, evaluated
 * on the benchmark's 16 request URLs (none matches). Prints the set's load time and the
 * mean time of one evaluation (best of ROUNDS runs, each over every URL in turn).
 * On demand only: `make tests/bench/rxset && tests/bench/rxset [ROUNDS [EVALS]]`.
 * It uses only rules.h, so the same file can be built against an older rules/ to compare.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rules.h"

#define NREGEXES 1000

static double
now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void
pattern(char *buf, size_t cap, int i)
{
	switch (i % 5) {
	case 0:
		snprintf(buf, cap, "^https?://[^/]*tracker%d[0-9]*\\.", i);
		break;
	case 1:
		snprintf(buf, cap, "^https?://([^/]*\\.)?adserver%d\\.(com|net|org)/", i);
		break;
	case 2:
		snprintf(buf, cap, "/banners?/ad%d_[0-9]+x[0-9]+\\.(gif|png|jpg)$", i);
		break;
	case 3:
		snprintf(buf, cap, "[?&]utm_campaign=spam%d(&|$)", i);
		break;
	default:
		snprintf(buf, cap, "/download/[a-z]+%d\\.(exe|scr|msi)$", i);
	}
}

/* ns per evaluation of rules[0..n) (all must fail) over the 16 URLs, best of rounds */
static double
run(struct rules_rule **rules, size_t n, struct rules_scratch *sc, int rounds, long evals)
{
	static const char *const paths[] = {"/", "/", "/", "/bytes/36"};
	static const char *const queries[] = {NULL, "img=/banners/ad_top.gif",
	                                      "utm_campaign=autumn&x=1", "f=/download/tool.zip"};
	struct rules_subject s[16];
	double best = 1e30;

	memset(s, 0, sizeof(s));
	for (int i = 0; i < 16; i++) {
		s[i].scheme = "http";
		s[i].scheme_len = 4;
		s[i].host = "localhost";
		s[i].host_len = 9;
		s[i].port = 20001 + i / 4;
		s[i].path = paths[i % 4];
		s[i].path_len = strlen(s[i].path);
		s[i].query = queries[i % 4];
		s[i].query_len = s[i].query != NULL ? strlen(s[i].query) : 0;
	}
	for (int r = 0; r < rounds; r++) {
		double t0 = now();

		for (long e = 0; e < evals; e++)
			for (size_t k = 0; k < n; k++)
				if (rules_eval(rules[k], &s[e % 16], sc, NULL) != RULES_NOMATCH) {
					fprintf(stderr, "rxset: a URL matched\n");
					exit(1);
				}
		if ((now() - t0) / (double)evals * 1e9 < best)
			best = (now() - t0) / (double)evals * 1e9;
	}
	return best;
}

int
main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 10;
	long evals = argc > 2 ? atol(argv[2]) : 20000;
	char path[] = "/tmp/rxset.XXXXXX", pat[128], *err = NULL, text[300];
	struct rules_ctx *ctx = rules_ctx_new();
	struct rules_scratch *sc = rules_scratch_new();
	struct rules_rule *set, **lines = calloc(NREGEXES, sizeof(*lines));
	int fd = mkstemp(path);
	FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
	double t0, load, one, all;

	if (ctx == NULL || sc == NULL || lines == NULL || f == NULL)
		return 1;
	for (int i = 1; i <= NREGEXES; i++) {
		pattern(pat, sizeof(pat), i);
		fprintf(f, "%s\n", pat);
		snprintf(text, sizeof(text), "url ~ \"%s\"", pat);
		if ((lines[i - 1] = rules_compile_str(ctx, "rxset", i, text, &err)) == NULL) {
			fprintf(stderr, "rxset: %s\n", err);
			return 1;
		}
	}
	fclose(f);
	t0 = now();
	if (rules_set_load(ctx, RULES_SET_REGEXES, "rx", path, &err) == -1) {
		fprintf(stderr, "rxset: %s\n", err);
		return 1;
	}
	load = now() - t0;
	unlink(path);
	if ((set = rules_compile_str(ctx, "rxset", 0, "url ~ in rx", &err)) == NULL) {
		fprintf(stderr, "rxset: %s\n", err);
		return 1;
	}
	one = run(&set, 1, sc, rounds, evals);
	all = run(lines, NREGEXES, sc, rounds, evals / 100 > 0 ? evals / 100 : 1);
	printf("set load %.1f ms; one eval of `url ~ in SET` (1,000 regexes): %.0f ns; "
	       "1,000 `url ~ RE` rules: %.0f ns\n",
	       load * 1e3, one, all);
	for (int i = 0; i < NREGEXES; i++)
		rules_rule_free(lines[i]);
	free(lines);
	rules_rule_free(set);
	rules_scratch_free(sc);
	rules_ctx_free(ctx);
	return 0;
}
