/*
 * litpf.c - the literal prefilter of regexes sets: each pattern's required literal (a
 * substring every match contains), found by a conservative walk over the pattern's top
 * level, and an Aho-Corasick automaton over the literals of a set that finds, in one pass
 * over a subject, which of them occur (so only those patterns need to run).
 *
 * Contract: see rules-internal.h. Extraction never claims a literal that a match could
 * lack: whatever it does not fully understand gives "no literal" (the pattern then always
 * runs). The automaton is built once and read-only afterwards; walking it allocates
 * nothing.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdlib.h>
#include <string.h>

#include "rules-internal.h"

static unsigned char
lc(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? (unsigned char)(c + ('a' - 'A')) : c;
}

static int
is_alnum(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* p at '[': past the class's ']', or NULL for what we do not trust (\Q, \c in a class). */
static const char *
skip_class(const char *p)
{
	p++;
	if (*p == '^')
		p++;
	if (*p == ']') /* a first ']' is literal */
		p++;
	for (;;) {
		switch (*p) {
		case '\0':
			return NULL;
		case ']':
			return p + 1;
		case '\\':
			if (p[1] == '\0' || p[1] == 'Q' || p[1] == 'E' || p[1] == 'c')
				return NULL;
			p += 2;
			break;
		case '[':
			/* [:alpha:], [.x.], [=x=]: up to the terminator and ']' if no ']' comes
			 * first */
			if (p[1] == ':' || p[1] == '.' || p[1] == '=') {
				const char *q = p + 2;

				while (*q != '\0' && *q != ']' && !(*q == p[1] && q[1] == ']')) {
					if (*q == '\\' || *q == '[')
						return NULL;
					q++;
				}
				if (*q == p[1]) {
					p = q + 2;
					break;
				}
			}
			p++;
			break;
		default:
			p++;
		}
	}
}

/*
 * p at "(?": is this a group type we can skip over safely? top: at the pattern's top
 * level, where lookarounds are refused (the brief keeps them "always run"). Option
 * settings may hold i m n s U J and '-', nothing else ((?x) changes how the rest parses).
 * *opts_only is set for a bare option setting "(?i)".
 */
static int
qgroup_ok(const char *p, int top, int *opts_only)
{
	const char *q = p + 2;

	*opts_only = 0;
	switch (*q) {
	case ':':
	case '|':
	case '>':
	case '#':
	case '\'':
		return 1;
	case '=':
	case '!':
		return !top;
	case '<':
		if (q[1] == '=' || q[1] == '!')
			return !top;
		return is_alnum((unsigned char)q[1]) || q[1] == '_';
	case 'P':
		return q[1] == '<';
	default:
		break;
	}
	while (*q != '\0' && strchr("imnsUJ-", *q) != NULL)
		q++;
	if (*q == ')') {
		*opts_only = 1;
		return 1;
	}
	return *q == ':';
}

/* p at '(': past the matching ')', or NULL. Nested groups, classes, \Q..\E, (?#...). */
static const char *
skip_group(const char *p)
{
	int depth = 0, opts;

	for (;;) {
		switch (*p) {
		case '\0':
			return NULL;
		case '\\':
			if (p[1] == 'Q') {
				const char *e = strstr(p + 2, "\\E");

				if (e == NULL)
					return NULL;
				p = e + 2;
				break;
			}
			if (p[1] == '\0' || p[1] == 'c')
				return NULL;
			p += 2;
			break;
		case '[':
			if ((p = skip_class(p)) == NULL)
				return NULL;
			break;
		case '(':
			if (p[1] == '*')
				return NULL;
			if (p[1] == '?') {
				if (!qgroup_ok(p, 0, &opts))
					return NULL;
				if (p[2] == '#') {
					if ((p = strchr(p, ')')) == NULL)
						return NULL;
					p++;
					break;
				}
			}
			depth++;
			p++;
			break;
		case ')':
			p++;
			if (--depth == 0)
				return p;
			break;
		default:
			p++;
		}
	}
}

/*
 * A strict quantifier at p ('?', '*', '+', "{n}", "{n,}", "{n,m}"): its minimum and
 * its end; -1 if p is not one (a '{' of another form is refused by the caller).
 */
static long
quantifier(const char *p, const char **end)
{
	unsigned long min = 0;
	const char *q;

	if (*p == '?' || *p == '*' || *p == '+') {
		*end = p + 1;
		return *p == '+';
	}
	if (*p != '{')
		return -1;
	q = p + 1;
	if (*q < '0' || *q > '9')
		return -1;
	while (*q >= '0' && *q <= '9') {
		if (min < 100000)
			min = min * 10 + (unsigned long)(*q - '0');
		q++;
	}
	if (*q == ',') {
		q++;
		while (*q >= '0' && *q <= '9')
			q++;
	}
	if (*q != '}')
		return -1;
	*end = q + 1;
	return (long)(min > 0);
}

/*
 * The literal runs of pat that every match contains, lower-cased, written one after the
 * other into buf (2 * strlen(pat) + 1 bytes suffice); runs[i] = offset and length of the
 * i-th (max entries). Returns the number of runs of RE_LIT_MIN bytes or more, or -1 when
 * the pattern cannot be trusted.
 *
 * Walk: a pending atom is either a literal byte or "other" (class, '.', group, anchor,
 * \d...); a following quantifier with minimum 0 drops a literal and ends the run, one
 * with minimum >= 1 keeps one occurrence, ends the run and starts the next with it (the
 * last repetition is adjacent to what follows); "other" always ends the run.
 */
static long
lit_runs(const char *pat, char *buf, size_t (*runs)[2], size_t max)
{
	const char *p = pat, *e;
	size_t o = 0, start = 0, n = 0;
	int pend = 0, quote = 0, opts; /* pend: 0 none, 1 literal pc, 2 other */
	unsigned char pc = 0;
	long min;

#define FLUSH()                                                                                    \
	do {                                                                                       \
		if (o - start >= RE_LIT_MIN && n < max) {                                          \
			runs[n][0] = start;                                                        \
			runs[n][1] = o - start;                                                    \
			n++;                                                                       \
		}                                                                                  \
		start = o;                                                                         \
	} while (0)
#define COMMIT()                                                                                   \
	do {                                                                                       \
		if (pend == 1)                                                                     \
			buf[o++] = (char)lc(pc);                                                   \
		else if (pend == 2)                                                                \
			FLUSH();                                                                   \
		pend = 0;                                                                          \
	} while (0)

	if (p[0] == '(' && p[1] == '*') /* (*UTF), (*UCP)...: other case rules, other syntax */
		return -1;
	for (;;) {
		unsigned char c = (unsigned char)*p;

		if (quote) {
			if (c == '\0')
				break;
			if (c == '\\' && p[1] == 'E') {
				quote = 0;
				p += 2;
				continue;
			}
			COMMIT();
			pend = c < 0x80 ? 1 : 2;
			pc = c;
			p++;
			continue;
		}
		if (c == '\0')
			break;
		if (c == '?' || c == '*' || c == '+' || c == '{') {
			if ((min = quantifier(p, &e)) == -1 || pend == 0)
				return -1;
			if (pend == 1 && min > 0) {
				buf[o++] = (char)lc(pc);
				FLUSH();
				buf[o++] = (char)lc(pc);
			} else {
				FLUSH();
			}
			pend = 0;
			p = e;
			if (*p == '?' || *p == '+') /* lazy, possessive */
				p++;
			continue;
		}
		if (c == '(' && p[1] == '?' && p[2] == '#') {
			/* a comment is transparent: a quantifier after it applies to the atom
			 * before it, as in PCRE2 */
			if ((p = strchr(p, ')')) == NULL)
				return -1;
			p++;
			continue;
		}
		COMMIT();
		switch (c) {
		case '|':
		case ')':
			return -1;
		case '.':
		case '^':
		case '$':
			pend = 2;
			p++;
			break;
		case '[':
			if ((p = skip_class(p)) == NULL)
				return -1;
			pend = 2;
			break;
		case '(':
			if (p[1] == '*')
				return -1;
			if (p[1] == '?') {
				if (!qgroup_ok(p, 1, &opts))
					return -1;
				if (opts) { /* zero-width: ends the run; nothing to repeat */
					if ((p = strchr(p, ')')) == NULL)
						return -1;
					p++;
					if (*p == '?' || *p == '*' || *p == '+' || *p == '{')
						return -1;
					pend = 2;
					break;
				}
			}
			if ((p = skip_group(p)) == NULL)
				return -1;
			pend = 2;
			break;
		case '\\':
			c = (unsigned char)p[1];
			if (c == 'Q') {
				quote = 1;
				p += 2;
			} else if (is_alnum(c)) {
				if (strchr("dDwWsShHvVRXNbBAzZG", c) == NULL || c == 'N')
					return -1; /* \N{...}, \x41, \1, \K...: refused */
				pend = 2;
				p += 2;
			} else if (c == '\0' || c >= 0x80) {
				return -1;
			} else {
				pend = 1; /* escaped punctuation: the character itself */
				pc = c;
				p += 2;
			}
			break;
		default:
			/* bytes >= 0x80: which case they fold to depends on PCRE2's tables */
			pend = c < 0x80 ? 1 : 2;
			pc = c;
			p++;
		}
	}
	COMMIT();
	FLUSH();
#undef FLUSH
#undef COMMIT
	return (long)n;
}

size_t
re_required_literal(const char *pat, char *out, size_t cap)
{
	size_t len = strlen(pat), best = 0;
	char *buf = malloc(2 * len + 1);
	size_t(*runs)[2] = malloc((len / RE_LIT_MIN + 1) * sizeof(*runs));
	long n = -1;

	if (buf != NULL && runs != NULL)
		n = lit_runs(pat, buf, runs, len / RE_LIT_MIN + 1);
	for (long i = 1; i < n; i++)
		if (runs[i][1] > runs[best][1])
			best = (size_t)i;
	if (n > 0 && runs[best][1] < cap) {
		memcpy(out, buf + runs[best][0], runs[best][1]);
		out[runs[best][1]] = '\0';
		len = runs[best][1];
	} else {
		len = 0;
	}
	free(buf);
	free(runs);
	return len;
}

/* --- choosing one literal per pattern of a set --------------------------------------- */

struct cand {
	const char *s;
	size_t len;
	size_t pat;
	size_t freq; /* candidates of the set with the same text */
};

static int
cand_cmp(const void *a, const void *b)
{
	const struct cand *x = a, *y = b;

	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return memcmp(x->s, y->s, x->len);
}

int
litpf_choose(char *const *pats, size_t n, char **lits)
{
	size_t nc = 0, cap = 0;
	char **bufs = calloc(n, sizeof(*bufs));
	struct cand *c = NULL;
	int rc = -1;

	if (bufs == NULL)
		return -1;
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(pats[i]), max = len / RE_LIT_MIN + 1;
		size_t(*runs)[2] = malloc(max * sizeof(*runs));
		long k;

		lits[i] = NULL;
		if (runs == NULL || (bufs[i] = malloc(2 * len + 1)) == NULL) {
			free(runs);
			goto out;
		}
		k = lit_runs(pats[i], bufs[i], runs, max);
		if (k > 0 && nc + (size_t)k > cap) {
			size_t ncap = (nc + (size_t)k) * 2 + 16;
			struct cand *nv = realloc(c, ncap * sizeof(*nv));

			if (nv == NULL) {
				free(runs);
				goto out;
			}
			c = nv;
			cap = ncap;
		}
		for (long j = 0; j < k; j++)
			c[nc++] = (struct cand){bufs[i] + runs[j][0], runs[j][1], i, 0};
		free(runs);
	}
	/* how many candidates share each text: a literal common to many patterns of the set
	 * (`/banner` in 200 of them) makes all of them run whenever it occurs */
	if (nc > 0)
		qsort(c, nc, sizeof(*c), cand_cmp);
	for (size_t i = 0; i < nc;) {
		size_t j = i;

		while (j < nc && cand_cmp(&c[i], &c[j]) == 0)
			j++;
		for (size_t k = i; k < j; k++)
			c[k].freq = j - i;
		i = j;
	}
	{
		/* per pattern: the rarest candidate, then the longest */
		size_t *best = malloc(n * sizeof(*best));

		if (best == NULL)
			goto out;
		for (size_t i = 0; i < n; i++)
			best[i] = SIZE_MAX;
		for (size_t i = 0; i < nc; i++) {
			size_t b = best[c[i].pat];

			if (b == SIZE_MAX || c[i].freq < c[b].freq ||
			    (c[i].freq == c[b].freq && c[i].len > c[b].len))
				best[c[i].pat] = i;
		}
		for (size_t i = 0; i < n; i++) {
			if (best[i] == SIZE_MAX)
				continue;
			if ((lits[i] = strndup(c[best[i]].s, c[best[i]].len)) == NULL) {
				free(best);
				goto out;
			}
		}
		free(best);
	}
	rc = 0;
out:
	if (rc == -1)
		for (size_t i = 0; i < n; i++) {
			free(lits[i]);
			lits[i] = NULL;
		}
	for (size_t i = 0; i < n; i++)
		free(bufs[i]);
	free(bufs);
	free(c);
	return rc;
}

/* --- the automaton --------------------------------------------------------------------- */

/*
 * A dense DFA over byte classes: the bytes that occur in some literal (upper- and
 * lower-case letters share a class) each get a class, every other byte class 0 (which
 * leads back to the root from anywhere). With ~1,000 literals of ~10 bytes that is some
 * 10,000 states x ~40 classes of 4 bytes; a subject byte costs one table load.
 */
int
litpf_build(struct litpf *pf, char *const *lits, size_t n)
{
	size_t max = 1, nst = 1, head = 0, tail = 0;
	uint32_t *fail = NULL, *queue = NULL, *term = NULL, *cnt = NULL;
	uint32_t nc = 1;
	int rc = -1;

	memset(pf, 0, sizeof(*pf));
	for (size_t i = 0; i < n; i++) {
		for (const unsigned char *p = (const unsigned char *)lits[i]; *p != '\0'; p++) {
			if (pf->cls[*p] == 0) {
				pf->cls[*p] = (uint8_t)nc;
				if (*p >= 'a' && *p <= 'z')
					pf->cls[*p - ('a' - 'A')] = (uint8_t)nc;
				nc++;
			}
			max++;
		}
	}
	if (max > UINT32_MAX / 256 || nc > 256)
		return -1;
	pf->nclass = nc;
	pf->delta = calloc(max * nc, sizeof(*pf->delta));
	fail = calloc(max, sizeof(*fail));
	queue = calloc(max, sizeof(*queue));
	term = calloc(n, sizeof(*term));
	cnt = calloc(max + 1, sizeof(*cnt));
	pf->fire = calloc(max, sizeof(*pf->fire));
	pf->dict = calloc(max, sizeof(*pf->dict));
	pf->out_off = calloc(max + 1, sizeof(*pf->out_off));
	pf->out_ids = calloc(n > 0 ? n : 1, sizeof(*pf->out_ids));
	if (pf->delta == NULL || fail == NULL || queue == NULL || term == NULL || cnt == NULL ||
	    pf->fire == NULL || pf->dict == NULL || pf->out_off == NULL || pf->out_ids == NULL)
		goto out;
	/* the trie: delta[s][c] != 0 is a child (the root is never a child) */
	for (size_t i = 0; i < n; i++) {
		uint32_t s = 0;

		for (const unsigned char *p = (const unsigned char *)lits[i]; *p != '\0'; p++) {
			uint32_t *d = &pf->delta[(size_t)s * nc + pf->cls[*p]];

			if (*d == 0)
				*d = (uint32_t)nst++;
			s = *d;
		}
		term[i] = s;
		cnt[s + 1]++;
	}
	pf->nstates = (uint32_t)nst;
	for (size_t s = 0; s < nst; s++)
		pf->out_off[s + 1] = pf->out_off[s] + cnt[s + 1];
	memset(cnt, 0, (max + 1) * sizeof(*cnt));
	for (size_t i = 0; i < n; i++)
		pf->out_ids[pf->out_off[term[i]] + cnt[term[i]]++] = (uint32_t)i;
	/* breadth first: failure links, the missing transitions, the output links */
	for (uint32_t c = 0; c < nc; c++)
		if (pf->delta[c] != 0)
			queue[tail++] = pf->delta[c];
	while (head < tail) {
		uint32_t u = queue[head++], f = fail[u];

		pf->dict[u] = pf->out_off[f + 1] > pf->out_off[f] ? f : pf->dict[f];
		pf->fire[u] = pf->out_off[u + 1] > pf->out_off[u] ? u : pf->dict[u];
		for (uint32_t c = 0; c < nc; c++) {
			uint32_t *d = &pf->delta[(size_t)u * nc + c];

			if (*d != 0) {
				fail[*d] = pf->delta[(size_t)f * nc + c];
				queue[tail++] = *d;
			} else {
				*d = pf->delta[(size_t)f * nc + c];
			}
		}
	}
	rc = 0;
out:
	free(fail);
	free(queue);
	free(term);
	free(cnt);
	if (rc == -1)
		litpf_free(pf);
	return rc;
}

void
litpf_free(struct litpf *pf)
{
	free(pf->delta);
	free(pf->fire);
	free(pf->dict);
	free(pf->out_off);
	free(pf->out_ids);
	memset(pf, 0, sizeof(*pf));
}
