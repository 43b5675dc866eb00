/*
 * fuzz_rules.c - libFuzzer entry point for the rule language (rules/): the lexer and
 * compiler on arbitrary text, evaluation of what compiles, and URL normalization.
 *
 * The input is read line by line, as a config file would give it:
 *   - "@KIND NAME WORD..." defines an inline set (KIND: domains, cidrs, regexes, users,
 *     dates) from the blank-separated words;
 *   - any other line is one rule, compiled with rules_compile_str() at that line number.
 * Each rule that compiles is evaluated against three subjects (one with the input's
 * first line as its path). These properties abort when they fail:
 *   - a failed compile or set definition gives an error that starts with "fuzz:LINE:";
 *   - a rule has at least one matcher and each has a text; the matcher texts joined
 *     compile again to a rule with the same texts (what explain and the admin endpoint
 *     print is a rule one can paste back);
 *   - evaluating twice gives the same result, and a "why" that names a matcher of the rule;
 *   - normalized paths stay within their buffer, have no empty, "." or ".." segments,
 *     and normalizing again changes nothing.
 * Run under ASan, the leak checker catches a rule, set or error message not freed.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rules.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_LINES 64
#define FUZZ_MAX_WORDS 32

static const struct rules_header fuzz_headers[] = {
        {"User-Agent", 10, "curl/8.5.0", 10},
        {"Cookie", 6, "sid=abc; theme=dark", 19},
        {"Accept", 6, "text/html", 9},
        {"X-Forwarded-For", 15, "198.51.100.4", 12},
};

static void
check_err(char *err, int line)
{
	char prefix[32];
	int n = snprintf(prefix, sizeof(prefix), "fuzz:%d:", line);

	if (err == NULL || strncmp(err, prefix, (size_t)n) != 0)
		abort();
	free(err);
}

/* The path part (before '?') of a normalized path: no //, /./, /../, no trailing /. /.. */
static void
check_normalized(const char *p, size_t len)
{
	const char *q = memchr(p, '?', len);
	size_t plen = q != NULL ? (size_t)(q - p) : len;

	if (plen == 0 || p[0] != '/')
		abort();
	for (size_t i = 0; i < plen; i++) {
		size_t seg;

		if (p[i] != '/')
			continue;
		for (seg = i + 1; seg < plen && p[seg] != '/'; seg++)
			;
		seg -= i + 1;
		if ((seg == 0 && i + 1 < plen) || (seg == 1 && p[i + 1] == '.') ||
		    (seg == 2 && p[i + 1] == '.' && p[i + 2] == '.'))
			abort();
	}
}

static void
fuzz_normalize(const char *s, size_t len)
{
	char *out = malloc(len + 1), *again = malloc(len + 2);
	long n, n2;

	if (out == NULL || again == NULL)
		goto done;
	n = rules_path_normalize(s, len, out, len + 1);
	if (n > (long)len + 1) /* a relative path gets a leading '/' */
		abort();
	if (n >= 0) {
		check_normalized(out, (size_t)n);
		n2 = rules_path_normalize(out, (size_t)n, again, (size_t)n + 1);
		if (n2 != n || memcmp(out, again, (size_t)n) != 0)
			abort();
	}
	(void)rules_url_normalize(s, len, out, len + 1);
done:
	free(out);
	free(again);
}

static void
fuzz_eval(const struct rules_rule *r, const struct rules_subject *subj, struct rules_scratch *sc)
{
	struct rules_explain why;
	enum rules_result a, b;

	a = rules_eval(r, subj, sc, &why);
	b = rules_eval(r, subj, sc, NULL);
	if (a != b)
		abort();
	if (a == RULES_NOMATCH &&
	    (why.index >= rules_rule_count(r) || why.text != rules_rule_text(r, why.index)))
		abort();
}

/* The matcher texts of r joined by blanks compile to a rule with the same texts. */
static void
fuzz_roundtrip(struct rules_ctx *ctx, const struct rules_rule *r, int line)
{
	size_t n = rules_rule_count(r), len = 0, i;
	struct rules_rule *r2;
	char *text, *err = NULL;

	for (i = 0; i < n; i++)
		len += strlen(rules_rule_text(r, i)) + 1;
	if ((text = malloc(len + 1)) == NULL)
		return;
	text[0] = '\0';
	for (i = 0; i < n; i++) {
		strcat(text, rules_rule_text(r, i));
		strcat(text, " ");
	}
	r2 = rules_compile_str(ctx, "fuzz", line, text, &err);
	if (r2 == NULL || rules_rule_count(r2) != n)
		abort();
	for (i = 0; i < n; i++)
		if (strcmp(rules_rule_text(r, i), rules_rule_text(r2, i)) != 0)
			abort();
	rules_rule_free(r2);
	free(text);
}

/* "@KIND NAME WORD..." (line is NUL-terminated, may be modified). */
static void
fuzz_set(struct rules_ctx *ctx, char *line, int lineno)
{
	struct rules_tok toks[FUZZ_MAX_WORDS];
	char *words[FUZZ_MAX_WORDS + 2], *save = NULL, *w;
	enum rules_set_kind kind;
	size_t n = 0;
	char *err = NULL;

	for (w = strtok_r(line + 1, " \t", &save); w != NULL && n < FUZZ_MAX_WORDS + 2;
	     w = strtok_r(NULL, " \t", &save))
		words[n++] = w;
	/* at least one word, as the config's `set NAME KIND WORD...` gives (no word: no
	 * position for an error) */
	if (n < 3 || rules_set_kind_parse(words[0], &kind) == -1)
		return;
	for (size_t i = 2; i < n; i++) {
		toks[i - 2].s = words[i];
		toks[i - 2].quoted = 0;
		toks[i - 2].line = lineno;
		toks[i - 2].col = (int)(words[i] - line) + 1;
	}
	if (rules_set_define(ctx, kind, words[1], "fuzz", toks, n - 2, &err) == -1)
		check_err(err, lineno);
	else if (err != NULL)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rules_rule *rules[FUZZ_MAX_LINES];
	struct rules_subject subj[3];
	struct rules_scratch *sc = NULL;
	struct rules_ctx *ctx = NULL;
	char *text, *line, *next, *err, *path = NULL;
	size_t nrules = 0, i;
	long plen;
	int lineno = 0;

	if ((text = malloc(size + 1)) == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	/* the rule text is a C string, as the config lexer gives it */
	if (memchr(data, '\0', size) != NULL)
		goto done;
	fuzz_normalize(text, strcspn(text, "\n"));
	if ((ctx = rules_ctx_new()) == NULL || (sc = rules_scratch_new()) == NULL)
		goto done;
	rules_set_limits(ctx, 100000, 1000);

	for (line = text; line != NULL && lineno < FUZZ_MAX_LINES; line = next) {
		next = strchr(line, '\n');
		if (next != NULL)
			*next++ = '\0';
		lineno++;
		if (line[0] == '@') {
			fuzz_set(ctx, line, lineno);
			continue;
		}
		err = NULL;
		rules[nrules] = rules_compile_str(ctx, "fuzz", lineno, line, &err);
		if (rules[nrules] == NULL) {
			check_err(err, lineno);
			continue;
		}
		if (err != NULL || rules_rule_count(rules[nrules]) == 0)
			abort();
		for (i = 0; i < rules_rule_count(rules[nrules]); i++)
			if (rules_rule_text(rules[nrules], i) == NULL)
				abort();
		fuzz_roundtrip(ctx, rules[nrules], lineno);
		nrules++;
	}

	memset(subj, 0, sizeof(subj));
	subj[0].client.family = 4;
	memcpy(subj[0].client.addr, "\xc0\x00\x02\x07", 4);
	subj[0].method = "GET", subj[0].method_len = 3;
	subj[0].scheme = "http", subj[0].scheme_len = 4;
	subj[0].host = "www.example.com", subj[0].host_len = 15;
	subj[0].port = 8080;
	subj[0].path = "/a/b", subj[0].path_len = 4;
	subj[0].query = "x=1&y", subj[0].query_len = 5;
	subj[0].headers = fuzz_headers;
	subj[0].nheaders = sizeof(fuzz_headers) / sizeof(fuzz_headers[0]);
	subj[0].now = 1795428000; /* 2026-11-23 10:00 UTC, a Monday */

	subj[1] = subj[0];
	subj[1].client.family = 6;
	memcpy(subj[1].client.addr, "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01", 16);
	subj[1].user = "alice", subj[1].user_len = 5;
	subj[1].method = "CONNECT", subj[1].method_len = 7;
	subj[1].scheme = "https", subj[1].scheme_len = 5;
	subj[1].host = "10.1.2.3", subj[1].host_len = 8;
	subj[1].port = 443;
	subj[1].query = NULL, subj[1].query_len = 0;
	subj[1].dst.family = 4;
	memcpy(subj[1].dst.addr, "\x0a\x01\x02\x03", 4);
	subj[1].headers = NULL, subj[1].nheaders = 0;
	subj[1].now = 1798761599; /* 2026-12-31 23:59:59 UTC */

	subj[2] = subj[0];
	if ((path = malloc(size + 2)) != NULL &&
	    (plen = rules_path_normalize(text, strlen(text), path, size + 2)) > 0) {
		char *q = memchr(path, '?', (size_t)plen);

		subj[2].path = path;
		subj[2].path_len = q != NULL ? (size_t)(q - path) : (size_t)plen;
		subj[2].query = q != NULL ? q + 1 : NULL;
		subj[2].query_len = q != NULL ? (size_t)(path + plen - q - 1) : 0;
	}

	for (i = 0; i < nrules; i++)
		for (size_t k = 0; k < 3; k++)
			fuzz_eval(rules[i], &subj[k], sc);
	for (i = 0; i < nrules; i++)
		rules_rule_free(rules[i]);
done:
	free(path);
	rules_scratch_free(sc);
	rules_ctx_free(ctx);
	free(text);
	return 0;
}
