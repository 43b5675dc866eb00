/*
 * rules.c - contexts and named sets, the rule parser and compiler, and evaluation.
 *
 * Contract: see rules.h. Compilation turns tokens into an array of matchers, each holding
 * everything it needs (sets it borrows from the context, or a private one-entry set, a
 * JIT-compiled regex, a zone from the context's cache); evaluation walks the array,
 * stops at the first matcher that fails and touches nothing but the scratch and the
 * matcher's once-only "limit logged" flag.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rules-internal.h"

#define RULES_MATCH_LIMIT_DEFAULT 1000000
#define RULES_DEPTH_LIMIT_DEFAULT 10000
#define RULES_URL_BUF             8192

struct rules_set {
	struct rules_set *next;
	char *name; /* NULL for a matcher's private set */
	enum rules_set_kind kind;
	struct domset dom;
	struct cidrset cidr;
	struct dateset date;
	struct userset user;
	pcre2_code *re;       /* RULES_SET_REGEXES: the alternation (its first part), may be NULL */
	pcre2_code **res;     /* all parts: a long list is split where PCRE2 finds it too large */
	size_t nres;          /* the patterns without a required literal are in these parts */
	pcre2_code **lit_res; /* the patterns with one, each alone, run when it occurs */
	size_t nlit;
	struct litpf pf; /* over the literals of lit_res, in that order */
};

struct rules_zone {
	struct rules_zone *next;
	char *name; /* NULL: the local zone */
	struct tz_zone *z;
};

struct rules_ctx {
	struct rules_set *sets;
	struct rules_zone *zones;
	rules_log_fn log;
	void *log_arg;
	uint32_t match_limit, depth_limit;
	pcre2_match_context *mctx;
};

enum matcher_kind {
	M_ALL,
	M_SRC,
	M_DST_NAME,
	M_DST_ADDR,
	M_PORT,
	M_METHOD,
	M_URL,
	M_PATH,
	M_UA,
	M_HEADER,
	M_COOKIE,
	M_ARG,
	M_USER,
	M_TIME,
	M_DATE,
};

struct matcher {
	enum matcher_kind kind;
	int neg;
	char *text;                  /* for explain */
	const struct rules_set *set; /* borrowed from the context, or own_set */
	struct rules_set *own_set;
	pcre2_code *own_re;
	const pcre2_code *re; /* own_re or set->re; NULL and no set: presence only */
	char *lit;            /* own_re's required literal (lower-cased) or NULL */
	size_t lit_len;
	char *name; /* header/cookie/arg name, method, user */
	size_t name_len;
	int lo, hi;     /* port range */
	unsigned days;  /* bit 0 Sunday .. bit 6 Saturday */
	int start, end; /* minutes of the day, [start, end) */
	struct date_range range;
	const struct tz_zone *zone;
	atomic_int limit_logged;
};

struct rules_rule {
	struct rules_ctx *ctx;
	size_t n;
	struct matcher *m;
};

#define RULES_FIRED_MAX 32

struct rules_scratch {
	pcre2_match_data *md;
	char *buf;
	size_t cap;
	/* prefilter states whose patterns already ran on this subject (beyond the array's
	 * size a state's patterns may run again: slower, not wrong) */
	uint32_t fired[RULES_FIRED_MAX];
	size_t nfired;
};

/* --- errors ---------------------------------------------------------------------------- */

static void seterr(char **err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
seterr(char **err, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || *err != NULL)
		return;
	va_start(ap, fmt);
	if (vasprintf(err, fmt, ap) == -1)
		*err = NULL;
	va_end(ap);
}

/* Public entry points start with no error: the first one set wins (seterr). */
static void
err_clear(char **err)
{
	if (err != NULL)
		*err = NULL;
}

/* --- context and sets ----------------------------------------------------------------- */

struct rules_ctx *
rules_ctx_new(void)
{
	struct rules_ctx *ctx = calloc(1, sizeof(*ctx));

	if (ctx == NULL)
		return NULL;
	if ((ctx->mctx = pcre2_match_context_create(NULL)) == NULL) {
		free(ctx);
		return NULL;
	}
	rules_set_limits(ctx, RULES_MATCH_LIMIT_DEFAULT, RULES_DEPTH_LIMIT_DEFAULT);
	return ctx;
}

static void
set_free(struct rules_set *s)
{
	if (s == NULL)
		return;
	domset_free(&s->dom);
	cidrset_free(&s->cidr);
	dateset_free(&s->date);
	userset_free(&s->user);
	for (size_t i = 0; i < s->nres; i++)
		pcre2_code_free(s->res[i]);
	free(s->res);
	for (size_t i = 0; i < s->nlit; i++)
		pcre2_code_free(s->lit_res[i]);
	free(s->lit_res);
	litpf_free(&s->pf);
	free(s->name);
	free(s);
}

void
rules_ctx_free(struct rules_ctx *ctx)
{
	if (ctx == NULL)
		return;
	while (ctx->sets != NULL) {
		struct rules_set *s = ctx->sets;

		ctx->sets = s->next;
		set_free(s);
	}
	while (ctx->zones != NULL) {
		struct rules_zone *z = ctx->zones;

		ctx->zones = z->next;
		tz_free(z->z);
		free(z->name);
		free(z);
	}
	pcre2_match_context_free(ctx->mctx);
	free(ctx);
}

void
rules_set_log_fn(struct rules_ctx *ctx, rules_log_fn fn, void *arg)
{
	ctx->log = fn;
	ctx->log_arg = arg;
}

void
rules_set_limits(struct rules_ctx *ctx, uint32_t match_limit, uint32_t depth_limit)
{
	ctx->match_limit = match_limit;
	ctx->depth_limit = depth_limit;
	pcre2_set_match_limit(ctx->mctx, match_limit);
	pcre2_set_depth_limit(ctx->mctx, depth_limit);
}

int
rules_set_kind_parse(const char *s, enum rules_set_kind *kind)
{
	static const char *const names[] = {"domains", "cidrs", "regexes", "users", "dates"};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcmp(s, names[i]) == 0) {
			*kind = (enum rules_set_kind)i;
			return 0;
		}
	}
	return -1;
}

static const char *
kind_name(enum rules_set_kind k)
{
	static const char *const names[] = {"domains", "cidrs", "regexes", "users", "dates"};

	return names[k];
}

static struct rules_set *
set_find(const struct rules_ctx *ctx, const char *name)
{
	for (struct rules_set *s = ctx->sets; s != NULL; s = s->next)
		if (strcmp(s->name, name) == 0)
			return s;
	return NULL;
}

static struct rules_set *
set_new(enum rules_set_kind kind)
{
	struct rules_set *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->kind = kind;
	if (kind == RULES_SET_CIDRS && cidrset_init(&s->cidr) == -1) {
		free(s);
		return NULL;
	}
	return s;
}

/* Compile one pattern; -1 with *err "where: regex error at offset N: msg". */
static pcre2_code *
re_compile(const char *pat, size_t len, uint32_t flags, const char *where, char **err)
{
	int code;
	PCRE2_SIZE off;
	pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, len, flags, &code, &off, NULL);

	if (re == NULL) {
		PCRE2_UCHAR msg[256];

		if (pcre2_get_error_message(code, msg, sizeof(msg)) < 0)
			snprintf((char *)msg, sizeof(msg), "error %d", code);
		seterr(err, "%s: regex error at offset %zu: %s", where, (size_t)off, msg);
		return NULL;
	}
	/* JIT where available; the interpreter otherwise (same results, same limits) */
	(void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
	return re;
}

/*
 * Compile pats[lo..hi) as one alternation (?|(?:p1\E)|(?:p2\E)) and append it to s->res:
 * branch reset keeps each pattern's group numbers (\1 stays its own); the \E ends a \Q
 * that a pattern left open so it cannot eat the ")". PCRE2 caps a compiled pattern (64k
 * with its default link size), which a thousand patterns exceed: such a range is split in
 * halves, each compiled alone, so a long list costs a few matches instead of failing.
 */
static int
set_regexes_part(struct rules_set *s, char *const *pats, char *const *where, size_t lo, size_t hi,
                 char **err)
{
	size_t len = 8, mid;
	char *alt, *p;
	pcre2_code *re, **v;
	int code;
	PCRE2_SIZE off;

	for (size_t i = lo; i < hi; i++)
		len += strlen(pats[i]) + 8;
	if ((alt = malloc(len)) == NULL) {
		seterr(err, "%s: out of memory", where[lo]);
		return -1;
	}
	p = alt;
	p += sprintf(p, "(?|");
	for (size_t i = lo; i < hi; i++)
		p += sprintf(p, "%s(?:%s\\E)", i > lo ? "|" : "", pats[i]);
	sprintf(p, ")");
	re = pcre2_compile((PCRE2_SPTR)alt, PCRE2_ZERO_TERMINATED, 0, &code, &off, NULL);
	if (re == NULL && code == PCRE2_ERROR_PATTERN_TOO_LARGE && hi - lo > 1) {
		free(alt);
		mid = lo + (hi - lo) / 2;
		return set_regexes_part(s, pats, where, lo, mid, err) == -1
		               ? -1
		               : set_regexes_part(s, pats, where, mid, hi, err);
	}
	if (re == NULL) { /* again, for the message */
		re = re_compile(alt, PCRE2_ZERO_TERMINATED, 0, where[lo], err);
		free(alt);
		if (re == NULL)
			return -1;
	} else {
		free(alt);
		(void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
	}
	if ((v = realloc(s->res, (s->nres + 1) * sizeof(*v))) == NULL) {
		pcre2_code_free(re);
		seterr(err, "%s: out of memory", where[lo]);
		return -1;
	}
	s->res = v;
	s->res[s->nres++] = re;
	return 0;
}

/*
 * Build the regexes set from its patterns. A pattern with a required literal (see
 * re_required_literal(); per pattern the rarest in the set) is kept compiled alone and
 * runs only when the prefilter finds its literal in the subject: most of a long list is
 * never run. The others are matched as before, as alternations: the patterns PCRE2 finds
 * anchored (^ or \A in every branch) apart from the others, because in one alternation
 * with unanchored ones every anchored branch would be tried again at every start
 * position, which made a mixed list of a thousand several times slower than its two
 * halves.
 */
static int
set_regexes(struct rules_set *s, char *const *pats, char *const *where, size_t n, char **err)
{
	char **p2 = NULL, **w2 = NULL, **lits = NULL, **lits2 = NULL;
	pcre2_code **codes = NULL;
	size_t na = 0, nu = 0;
	int rc = -1;

	if (n == 0) {
		seterr(err, "%s: empty regexes set", where[0]);
		return -1;
	}
	if ((p2 = calloc(n, sizeof(*p2))) == NULL || (w2 = calloc(n, sizeof(*w2))) == NULL ||
	    (lits = calloc(n, sizeof(*lits))) == NULL ||
	    (lits2 = calloc(n, sizeof(*lits2))) == NULL ||
	    (codes = calloc(n, sizeof(*codes))) == NULL ||
	    (s->lit_res = calloc(n, sizeof(*s->lit_res))) == NULL) {
		seterr(err, "%s: out of memory", where[0]);
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		if ((codes[i] = re_compile(pats[i], PCRE2_ZERO_TERMINATED, 0, where[i], err)) ==
		    NULL)
			goto out;
	if (litpf_choose(pats, n, lits) == -1) {
		seterr(err, "%s: out of memory", where[0]);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		uint32_t opts = 0;

		if (lits[i] != NULL) {
			lits2[s->nlit] = lits[i];
			s->lit_res[s->nlit++] = codes[i];
			codes[i] = NULL;
			continue;
		}
		(void)pcre2_pattern_info(codes[i], PCRE2_INFO_ALLOPTIONS, &opts);
		if (opts & PCRE2_ANCHORED) { /* anchored ones first, the others from the end */
			p2[na] = pats[i];
			w2[na++] = where[i];
		} else {
			nu++;
			p2[n - nu] = pats[i];
			w2[n - nu] = where[i];
		}
	}
	/* the unanchored ones, at the end in reverse order, right after the anchored ones */
	for (size_t i = 0; i < nu; i++) {
		p2[na + i] = p2[n - nu + i];
		w2[na + i] = w2[n - nu + i];
	}
	if (s->nlit > 0 && litpf_build(&s->pf, lits2, s->nlit) == -1) {
		seterr(err, "%s: out of memory", where[0]);
		goto out;
	}
	if (na > 0 && set_regexes_part(s, p2, w2, 0, na, err) == -1)
		goto out;
	if (nu > 0 && set_regexes_part(s, p2, w2, na, na + nu, err) == -1)
		goto out;
	s->re = s->nres > 0 ? s->res[0] : NULL;
	rc = 0;
out:
	for (size_t i = 0; codes != NULL && i < n; i++)
		pcre2_code_free(codes[i]);
	for (size_t i = 0; lits != NULL && i < n; i++)
		free(lits[i]);
	free(codes);
	free(lits);
	free(lits2);
	free(p2);
	free(w2);
	return rc;
}

/* Add entry str (not for regexes); -1 with *err prefixed by where. */
static int
set_add(struct rules_set *s, const char *str, const char *where, char **err)
{
	const char *why = "out of memory";
	int rc = -1;

	switch (s->kind) {
	case RULES_SET_DOMAINS:
		rc = domset_add(&s->dom, str, &why);
		break;
	case RULES_SET_CIDRS:
		rc = cidrset_add(&s->cidr, str, &why);
		break;
	case RULES_SET_DATES:
		rc = dateset_add(&s->date, str, &why);
		break;
	case RULES_SET_USERS:
		rc = userset_add(&s->user, str);
		break;
	case RULES_SET_REGEXES:
		break;
	}
	if (rc == -1)
		seterr(err, "%s: %s \"%s\"", where, why, str);
	return rc;
}

static void
set_finish(struct rules_set *s)
{
	dateset_finish(&s->date);
	userset_finish(&s->user);
}

/* Define set name from n entries, each with its "file:line[:col]" prefix. */
static int
set_define(struct rules_ctx *ctx, enum rules_set_kind kind, const char *name, char *const *entries,
           char *const *where, size_t n, const char *defwhere, char **err)
{
	struct rules_set *s;

	if (set_find(ctx, name) != NULL) {
		seterr(err, "%s: set \"%s\" is already defined", defwhere, name);
		return -1;
	}
	if ((s = set_new(kind)) == NULL || (s->name = strdup(name)) == NULL) {
		set_free(s);
		seterr(err, "%s: out of memory", defwhere);
		return -1;
	}
	if (kind == RULES_SET_REGEXES) {
		if (n == 0) {
			seterr(err, "%s: empty regexes set \"%s\"", defwhere, name);
			goto fail;
		}
		if (set_regexes(s, entries, where, n, err) == -1)
			goto fail;
	} else {
		for (size_t i = 0; i < n; i++)
			if (set_add(s, entries[i], where[i], err) == -1)
				goto fail;
	}
	set_finish(s);
	s->next = ctx->sets;
	ctx->sets = s;
	return 0;
fail:
	set_free(s);
	return -1;
}

static void
strv_free(char **v, size_t n)
{
	if (v == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

int
rules_set_define(struct rules_ctx *ctx, enum rules_set_kind kind, const char *name,
                 const char *file, const struct rules_tok *toks, size_t n, char **err)
{
	err_clear(err);
	char **ents = calloc(n + 1, sizeof(*ents)), **where = calloc(n + 1, sizeof(*where));
	char *defwhere = NULL;
	int rc = -1;

	if (ents == NULL || where == NULL ||
	    asprintf(&defwhere, "%s:%d:%d", file, n > 0 ? toks[0].line : 0,
	             n > 0 ? toks[0].col : 0) == -1) {
		defwhere = NULL;
		seterr(err, "%s: out of memory", file);
		goto fail;
	}
	for (size_t i = 0; i < n; i++) {
		if ((ents[i] = strdup(toks[i].s)) == NULL ||
		    asprintf(&where[i], "%s:%d:%d", file, toks[i].line, toks[i].col) == -1) {
			where[i] = NULL;
			seterr(err, "%s: out of memory", file);
			goto fail;
		}
	}
	if (n == 0)
		where[0] = strdup(defwhere);
	rc = set_define(ctx, kind, name, ents, where, n, defwhere, err);
fail:
	strv_free(ents, n + 1);
	strv_free(where, n + 1);
	free(defwhere);
	return rc;
}

int
rules_set_load(struct rules_ctx *ctx, enum rules_set_kind kind, const char *name, const char *path,
               char **err)
{
	err_clear(err);
	FILE *f = fopen(path, "r");
	char **ents = NULL, **where = NULL, *line = NULL, *defwhere = NULL;
	size_t n = 0, cap = 0, lcap = 0;
	int lineno = 0, rc = -1;
	ssize_t got;

	if (f == NULL) {
		seterr(err, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (kind != RULES_SET_REGEXES) {
		/* entries are added directly: a 100,000-line file must load fast */
		struct rules_set *s;

		if (set_find(ctx, name) != NULL) {
			seterr(err, "%s: set \"%s\" is already defined", path, name);
			fclose(f);
			return -1;
		}
		if ((s = set_new(kind)) == NULL || (s->name = strdup(name)) == NULL) {
			set_free(s);
			seterr(err, "%s: out of memory", path);
			fclose(f);
			return -1;
		}
		while ((got = getline(&line, &lcap, f)) != -1) {
			char *b = line, *e = line + got, where1[64];

			lineno++;
			while (e > b &&
			       (e[-1] == '\n' || e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'))
				e--;
			*e = '\0';
			while (*b == ' ' || *b == '\t')
				b++;
			if (*b == '\0' || *b == '#')
				continue;
			snprintf(where1, sizeof(where1), "%d", lineno);
			if (set_add(s, b, where1, err) == -1) {
				/* rewrite "N: reason" as "path:N: reason" */
				if (err != NULL) {
					char *e2 = *err;

					*err = NULL;
					seterr(err, "%s:%s", path,
					       e2 != NULL ? e2 : "out of memory");
					free(e2);
				}
				set_free(s);
				goto done;
			}
		}
		set_finish(s);
		s->next = ctx->sets;
		ctx->sets = s;
		rc = 0;
		goto done;
	}
	while ((got = getline(&line, &lcap, f)) != -1) {
		char *b = line, *e = line + got;

		lineno++;
		while (e > b && (e[-1] == '\n' || e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'))
			e--;
		*e = '\0';
		while (*b == ' ' || *b == '\t')
			b++;
		if (*b == '\0' || *b == '#')
			continue;
		if (n + 1 >= cap) {
			size_t ncap = cap == 0 ? 64 : cap * 2;
			char **ne = realloc(ents, ncap * sizeof(*ne));
			char **nw = ne != NULL ? realloc(where, ncap * sizeof(*nw)) : NULL;

			if (ne != NULL)
				ents = ne;
			if (nw == NULL) {
				seterr(err, "%s: out of memory", path);
				goto done;
			}
			where = nw;
			cap = ncap;
		}
		ents[n] = strdup(b);
		if (asprintf(&where[n], "%s:%d", path, lineno) == -1)
			where[n] = NULL;
		n++;
		if (ents[n - 1] == NULL || where[n - 1] == NULL) {
			seterr(err, "%s: out of memory", path);
			goto done;
		}
	}
	if (n == 0) {
		seterr(err, "%s: empty regexes set \"%s\"", path, name);
		goto done;
	}
	if (asprintf(&defwhere, "%s", path) == -1) {
		defwhere = NULL;
		seterr(err, "%s: out of memory", path);
		goto done;
	}
	rc = set_define(ctx, kind, name, ents, where, n, defwhere, err);
done:
	fclose(f);
	free(line);
	free(defwhere);
	strv_free(ents, n);
	strv_free(where, n);
	return rc;
}

/* --- zones ------------------------------------------------------------------------------ */

static const struct tz_zone *
ctx_zone(struct rules_ctx *ctx, const char *name, const char **why)
{
	struct rules_zone *z;

	for (z = ctx->zones; z != NULL; z = z->next)
		if ((name == NULL && z->name == NULL) ||
		    (name != NULL && z->name != NULL && strcmp(name, z->name) == 0))
			return z->z;
	if ((z = calloc(1, sizeof(*z))) == NULL) {
		*why = "out of memory";
		return NULL;
	}
	if ((z->z = tz_load(name, why)) == NULL ||
	    (name != NULL && (z->name = strdup(name)) == NULL)) {
		if (z->z != NULL)
			*why = "out of memory";
		tz_free(z->z);
		free(z);
		return NULL;
	}
	z->next = ctx->zones;
	ctx->zones = z;
	return z->z;
}

/* --- lexer ---------------------------------------------------------------------------------- */

/* Split text into words; tokens point into *store (one allocation). -1 with *err. */
static int
lex(const char *file, int line, const char *text, struct rules_tok **toksp, size_t *np,
    char **store, char **err)
{
	size_t len = strlen(text), n = 0;
	struct rules_tok *toks = calloc(len / 2 + 2, sizeof(*toks));
	char *buf = malloc(len + 1), *o = buf;
	const char *p = text;

	if (toks == NULL || buf == NULL) {
		free(toks);
		free(buf);
		seterr(err, "%s:%d: out of memory", file, line);
		return -1;
	}
	for (;;) {
		while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
			p++;
		if (*p == '\0')
			break;
		toks[n].s = o;
		toks[n].line = line;
		toks[n].col = (int)(p - text) + 1;
		if (*p == '"') {
			const char *start = p++;

			toks[n].quoted = 1;
			while (*p != '"') {
				if (*p == '\0') {
					seterr(err, "%s:%d:%d: unterminated quoted string", file,
					       line, (int)(start - text) + 1);
					free(toks);
					free(buf);
					return -1;
				}
				if (*p == '\\' && (p[1] == '"' || p[1] == '\\'))
					p++;
				*o++ = *p++;
			}
			p++;
		} else {
			while (*p != '\0' && *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
				*o++ = *p++;
		}
		*o++ = '\0';
		n++;
	}
	*toksp = toks;
	*np = n;
	*store = buf;
	return 0;
}

/* --- compiler ----------------------------------------------------------------------------------
 */

static const char *const keywords[] = {"src",    "dst",    "port", "method", "url",  "path", "ua",
                                       "header", "cookie", "arg",  "user",   "time", "date", "all"};

static int
is_keyword(const struct rules_tok *t)
{
	const char *s = t->s;

	if (t->quoted)
		return 0;
	if (s[0] == '!')
		return 1;
	for (size_t i = 0; i < sizeof(keywords) / sizeof(keywords[0]); i++)
		if (strcmp(s, keywords[i]) == 0)
			return 1;
	return 0;
}

struct parser {
	struct rules_ctx *ctx;
	const char *file;
	const struct rules_tok *t;
	size_t n, i;
	const struct rules_tok *kw; /* the matcher's keyword token */
	char **err;
};

static int perr(struct parser *p, const struct rules_tok *at, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static int
perr(struct parser *p, const struct rules_tok *at, const char *fmt, ...)
{
	char *msg = NULL;
	va_list ap;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) == -1)
		msg = NULL;
	va_end(ap);
	seterr(p->err, "%s:%d:%d: %s", p->file, at->line, at->col,
	       msg != NULL ? msg : "out of memory");
	free(msg);
	return -1;
}

static int
unq(const struct rules_tok *t, const char *s)
{
	return !t->quoted && strcmp(t->s, s) == 0;
}

/* The next token, or an error "missing WHAT after KW". */
static const struct rules_tok *
next(struct parser *p, const char *what)
{
	if (p->i >= p->n) {
		perr(p, p->kw, "missing %s after \"%s\"", what, p->kw->s);
		return NULL;
	}
	return &p->t[p->i++];
}

/* After "in": the set, which must be one of the kinds in mask (bits of kinds). */
static const struct rules_set *
parse_set(struct parser *p, unsigned mask)
{
	const struct rules_tok *t = next(p, "a set name");
	const struct rules_set *s;

	if (t == NULL)
		return NULL;
	if ((s = set_find(p->ctx, t->s)) == NULL) {
		perr(p, t, "set \"%s\" is not defined", t->s);
		return NULL;
	}
	if (!(mask & (1u << s->kind))) {
		perr(p, t, "set \"%s\" is a %s set, which \"%s\" cannot use", t->s,
		     kind_name(s->kind), p->kw->s);
		return NULL;
	}
	return s;
}

/* "~" or "~*" then RE, or "~ in SET" when sets are allowed. */
static int
parse_regex(struct parser *p, struct matcher *m, int sets_ok)
{
	const struct rules_tok *op = next(p, "\"~\" or \"~*\""), *t;
	uint32_t flags = 0;
	char where[256];

	if (op == NULL)
		return -1;
	if (unq(op, "~*"))
		flags = PCRE2_CASELESS;
	else if (!unq(op, "~"))
		return perr(p, op, "expected \"~\" or \"~*\" after \"%s\", found \"%s\"", p->kw->s,
		            op->s);
	if ((t = next(p, "a regex")) == NULL)
		return -1;
	if (unq(t, "in")) {
		if (!sets_ok)
			return perr(p, t, "\"%s\" cannot take a set", p->kw->s);
		if (flags != 0)
			return perr(p, op,
			            "\"~* in\" is not supported: use (?i) in the set's "
			            "patterns");
		if ((m->set = parse_set(p, 1u << RULES_SET_REGEXES)) == NULL)
			return -1;
		m->re = m->set->re;
		return 0;
	}
	snprintf(where, sizeof(where), "%s:%d:%d", p->file, t->line, t->col);
	if ((m->own_re = re_compile(t->s, PCRE2_ZERO_TERMINATED, flags, where, p->err)) == NULL)
		return -1;
	m->re = m->own_re;
	/* its required literal: when the subject lacks it, PCRE2 need not run */
	{
		size_t cap = 2 * strlen(t->s) + 1;

		if ((m->lit = malloc(cap)) == NULL)
			return perr(p, t, "out of memory");
		if ((m->lit_len = re_required_literal(t->s, m->lit, cap)) == 0) {
			free(m->lit);
			m->lit = NULL;
		}
	}
	return 0;
}

/* An optional "~ RE" / "~* RE". */
static int
parse_opt_regex(struct parser *p, struct matcher *m)
{
	if (p->i < p->n && (unq(&p->t[p->i], "~") || unq(&p->t[p->i], "~*")))
		return parse_regex(p, m, 0);
	return 0;
}

static int
parse_name(struct parser *p, struct matcher *m, const char *what)
{
	const struct rules_tok *t = next(p, what);

	if (t == NULL)
		return -1;
	if (t->s[0] == '\0')
		return perr(p, t, "empty %s", what);
	if ((m->name = strdup(t->s)) == NULL)
		return perr(p, t, "out of memory");
	m->name_len = strlen(m->name);
	return 0;
}

/* A private one-entry set of kind holding t. */
static int
own_set(struct parser *p, struct matcher *m, enum rules_set_kind kind, const struct rules_tok *t,
        const char *what)
{
	const char *why = "out of memory";
	int rc = -1;

	if ((m->own_set = set_new(kind)) == NULL)
		return perr(p, t, "out of memory");
	if (kind == RULES_SET_CIDRS)
		rc = cidrset_add(&m->own_set->cidr, t->s, &why);
	else if (kind == RULES_SET_DOMAINS)
		rc = domset_add(&m->own_set->dom, t->s, &why);
	if (rc == -1 && kind == RULES_SET_DOMAINS && strcmp(why, "bad domain name") != 0)
		return perr(p, t, "bad %s \"%s\": %s", what, t->s, why);
	if (rc == -1)
		return perr(p, t, "bad %s \"%s\"", what, t->s);
	m->set = m->own_set;
	return 0;
}

static int
parse_src(struct parser *p, struct matcher *m)
{
	const struct rules_tok *t = next(p, "an address, CIDR or \"in SET\"");

	m->kind = M_SRC;
	if (t == NULL)
		return -1;
	if (unq(t, "in"))
		return (m->set = parse_set(p, 1u << RULES_SET_CIDRS)) == NULL ? -1 : 0;
	return own_set(p, m, RULES_SET_CIDRS, t, strchr(t->s, '/') ? "CIDR" : "address");
}

static int
looks_like_ip(const char *s)
{
	struct rules_ip ip;
	const char *slash = strchr(s, '/');

	return slash != NULL || strchr(s, ':') != NULL || rules_ip_parse(s, strlen(s), &ip) == 0;
}

static int
parse_dst(struct parser *p, struct matcher *m)
{
	const struct rules_tok *t = next(p, "a host, domain, address, CIDR or \"in SET\"");

	if (t == NULL)
		return -1;
	if (unq(t, "in")) {
		if ((m->set = parse_set(p, 1u << RULES_SET_DOMAINS | 1u << RULES_SET_CIDRS)) ==
		    NULL)
			return -1;
		m->kind = m->set->kind == RULES_SET_CIDRS ? M_DST_ADDR : M_DST_NAME;
		return 0;
	}
	if (looks_like_ip(t->s)) {
		m->kind = M_DST_ADDR;
		return own_set(p, m, RULES_SET_CIDRS, t, strchr(t->s, '/') ? "CIDR" : "address");
	}
	m->kind = M_DST_NAME;
	return own_set(p, m, RULES_SET_DOMAINS, t, "host");
}

static int
parse_int(const char *s, const char **end, int max)
{
	int v = 0, digits = 0;

	while (*s >= '0' && *s <= '9') {
		v = v * 10 + (*s++ - '0');
		if (++digits > 6 || v > max)
			return -1;
	}
	*end = s;
	return digits == 0 ? -1 : v;
}

static int
parse_port(struct parser *p, struct matcher *m)
{
	const struct rules_tok *t = next(p, "a port or range");
	const char *e;

	m->kind = M_PORT;
	if (t == NULL)
		return -1;
	if ((m->lo = parse_int(t->s, &e, 65535)) == -1)
		goto bad;
	m->hi = m->lo;
	if (*e == '-' && (m->hi = parse_int(e + 1, &e, 65535)) == -1)
		goto bad;
	if (*e != '\0' || m->hi < m->lo)
		goto bad;
	return 0;
bad:
	return perr(p, t, "bad port \"%s\"", t->s);
}

static int
day_index(const char *s, size_t len)
{
	static const char names[] = "sunmontuewedthufrisat";

	if (len != 3)
		return -1;
	for (int i = 0; i < 7; i++)
		if (strncasecmp(s, names + 3 * i, 3) == 0)
			return i;
	return -1;
}

static int
parse_days(const char *s, unsigned *mask)
{
	*mask = 0;
	if (strcmp(s, "*") == 0) {
		*mask = 0x7f;
		return 0;
	}
	while (*s != '\0') {
		size_t len = strcspn(s, ",");
		const char *dash = memchr(s, '-', len);
		int a, b;

		if (dash != NULL) {
			a = day_index(s, (size_t)(dash - s));
			b = day_index(dash + 1, len - (size_t)(dash - s) - 1);
		} else {
			a = b = day_index(s, len);
		}
		if (a == -1 || b == -1)
			return -1;
		for (int d = a;; d = (d + 1) % 7) { /* fri-mon wraps over the weekend */
			*mask |= 1u << d;
			if (d == b)
				break;
		}
		s += len;
		if (*s == ',' && *++s == '\0')
			return -1;
	}
	return 0;
}

static const char *
parse_hhmm(const char *s, int *min)
{
	const char *e;
	int h = parse_int(s, &e, 24), mm;

	if (h == -1 || e - s > 2 || *e != ':')
		return NULL;
	s = e + 1;
	if ((mm = parse_int(s, &e, 59)) == -1 || e - s != 2 || (h == 24 && mm != 0))
		return NULL;
	*min = h * 60 + mm;
	return e;
}

/* An optional zone: a following word that is not a matcher. */
static int
parse_zone(struct parser *p, struct matcher *m)
{
	const struct rules_tok *t = NULL;
	const char *why = "unknown time zone";

	if (p->i < p->n && !is_keyword(&p->t[p->i]))
		t = &p->t[p->i++];
	if ((m->zone = ctx_zone(p->ctx, t != NULL ? t->s : NULL, &why)) == NULL) {
		if (t == NULL)
			return perr(p, p->kw, "local time zone: %s", why);
		return perr(p, t, "%s \"%s\"", why, t->s);
	}
	return 0;
}

static int
parse_time(struct parser *p, struct matcher *m)
{
	const struct rules_tok *d = next(p, "days (mon-fri, sat,sun, *)"), *w;
	const char *e;

	m->kind = M_TIME;
	if (d == NULL)
		return -1;
	if (parse_days(d->s, &m->days) == -1)
		return perr(p, d, "bad days \"%s\"", d->s);
	if ((w = next(p, "a window HH:MM-HH:MM")) == NULL)
		return -1;
	if ((e = parse_hhmm(w->s, &m->start)) == NULL || *e != '-' ||
	    (e = parse_hhmm(e + 1, &m->end)) == NULL || *e != '\0' || m->start == 1440)
		return perr(p, w, "bad time window \"%s\"", w->s);
	if (m->start == m->end)
		return perr(p, w, "empty time window \"%s\"", w->s);
	return parse_zone(p, m);
}

static int
parse_date(struct parser *p, struct matcher *m)
{
	const struct rules_tok *t = next(p, "a date, date range or \"in SET\"");

	m->kind = M_DATE;
	if (t == NULL)
		return -1;
	if (unq(t, "in")) {
		if ((m->set = parse_set(p, 1u << RULES_SET_DATES)) == NULL)
			return -1;
	} else if (date_range_parse(t->s, &m->range) == -1) {
		return perr(p, t, "bad date \"%s\"", t->s);
	}
	return parse_zone(p, m);
}

/* Append t to the text buffer, quoted if needed. */
static void
text_add(char **buf, size_t *len, size_t *cap, const char *s, int quote)
{
	size_t need = *len + 2 * strlen(s) + 4;

	if (need > *cap) {
		char *nb = realloc(*buf, need * 2);

		if (nb == NULL)
			return;
		*buf = nb;
		*cap = need * 2;
	}
	/* no blank after the negation prefix only: a word may end in '!' (`arg a! ~ x`) */
	if (*len > 0 && !(*len == 1 && (*buf)[0] == '!'))
		(*buf)[(*len)++] = ' ';
	if (quote)
		(*buf)[(*len)++] = '"';
	for (; *s != '\0'; s++) {
		if (quote && (*s == '"' || *s == '\\'))
			(*buf)[(*len)++] = '\\';
		(*buf)[(*len)++] = *s;
	}
	if (quote)
		(*buf)[(*len)++] = '"';
	(*buf)[*len] = '\0';
}

static int
matcher_text(struct parser *p, struct matcher *m, size_t from)
{
	char *buf = NULL;
	size_t len = 0, cap = 0;

	/* header, cookie and arg take a NAME before the operator, and a name may be "~" */
	size_t name_at = (m->kind == M_HEADER || m->kind == M_COOKIE || m->kind == M_ARG)
	                         ? from + (unq(&p->t[from], "!") ? 2 : 1)
	                         : SIZE_MAX;

	if (m->neg)
		text_add(&buf, &len, &cap, "!", 0);
	for (size_t i = from; i < p->i; i++) {
		const struct rules_tok *t = &p->t[i];
		int after_op = i > from && i - 1 != name_at &&
		               (unq(&p->t[i - 1], "~") || unq(&p->t[i - 1], "~*")) && !unq(t, "in");
		const char *s = t->s;

		if (i == from && !t->quoted && s[0] == '!')
			s++;
		if (i == from && unq(t, "!"))
			continue;
		/* quoted where a bare word would read differently: values, and a name "~" */
		text_add(&buf, &len, &cap, s,
		         t->quoted || after_op || s[0] == '\0' ||
		                 (i == name_at && (unq(t, "~") || unq(t, "~*"))));
	}
	if (buf == NULL)
		return perr(p, p->kw, "out of memory");
	m->text = buf;
	return 0;
}

static void
matcher_free(struct matcher *m)
{
	free(m->text);
	set_free(m->own_set);
	pcre2_code_free(m->own_re);
	free(m->lit);
	free(m->name);
}

void
rules_rule_free(struct rules_rule *rule)
{
	if (rule == NULL)
		return;
	for (size_t i = 0; i < rule->n; i++)
		matcher_free(&rule->m[i]);
	free(rule->m);
	free(rule);
}

static int
parse_matcher(struct parser *p, struct matcher *m)
{
	size_t from = p->i;
	const struct rules_tok *t = &p->t[p->i++];
	const char *kw = t->s;
	int rc;

	if (unq(t, "!")) {
		m->neg = 1;
		if (p->i >= p->n)
			return perr(p, t, "missing matcher after \"!\"");
		t = &p->t[p->i++];
		kw = t->s;
	} else if (!t->quoted && kw[0] == '!') {
		m->neg = 1;
		kw++;
	}
	p->kw = t;
	if (t->quoted)
		goto unknown;
	if (strcmp(kw, "all") == 0) {
		m->kind = M_ALL;
		rc = 0;
	} else if (strcmp(kw, "src") == 0) {
		rc = parse_src(p, m);
	} else if (strcmp(kw, "dst") == 0) {
		rc = parse_dst(p, m);
	} else if (strcmp(kw, "port") == 0) {
		rc = parse_port(p, m);
	} else if (strcmp(kw, "method") == 0) {
		m->kind = M_METHOD;
		rc = parse_name(p, m, "a method");
	} else if (strcmp(kw, "url") == 0) {
		m->kind = M_URL;
		rc = parse_regex(p, m, 1);
	} else if (strcmp(kw, "path") == 0) {
		m->kind = M_PATH;
		rc = parse_regex(p, m, 1);
	} else if (strcmp(kw, "ua") == 0) {
		m->kind = M_UA;
		rc = parse_regex(p, m, 1);
	} else if (strcmp(kw, "header") == 0 || strcmp(kw, "cookie") == 0 ||
	           strcmp(kw, "arg") == 0) {
		m->kind = kw[0] == 'h' ? M_HEADER : kw[0] == 'c' ? M_COOKIE : M_ARG;
		rc = parse_name(p, m,
		                kw[0] == 'h'   ? "a header name"
		                : kw[0] == 'c' ? "a cookie name"
		                               : "an argument name");
		if (rc == 0)
			rc = parse_opt_regex(p, m);
	} else if (strcmp(kw, "user") == 0) {
		const struct rules_tok *u;

		m->kind = M_USER;
		if (p->i < p->n && unq(&p->t[p->i], "in")) {
			p->i++;
			rc = (m->set = parse_set(p, 1u << RULES_SET_USERS)) == NULL ? -1 : 0;
		} else if ((u = next(p, "a user name")) == NULL) {
			rc = -1;
		} else if ((m->own_set = set_new(RULES_SET_USERS)) == NULL ||
		           userset_add(&m->own_set->user, u->s) == -1) {
			rc = perr(p, u, "out of memory");
		} else {
			m->set = m->own_set;
			rc = 0;
		}
	} else if (strcmp(kw, "time") == 0) {
		rc = parse_time(p, m);
	} else if (strcmp(kw, "date") == 0) {
		rc = parse_date(p, m);
	} else {
		goto unknown;
	}
	if (rc == -1)
		return -1;
	return matcher_text(p, m, from);
unknown:
	return perr(p, t, "unknown matcher \"%s\"", kw);
}

struct rules_rule *
rules_compile(struct rules_ctx *ctx, const char *file, const struct rules_tok *toks, size_t n,
              char **err)
{
	err_clear(err);
	struct parser p = {ctx, file, toks, n, 0, NULL, err};
	struct rules_rule *r = calloc(1, sizeof(*r));

	if (r == NULL || (r->m = calloc(n + 1, sizeof(*r->m))) == NULL) {
		free(r);
		seterr(err, "%s: out of memory", file);
		return NULL;
	}
	r->ctx = ctx;
	if (n == 0) {
		seterr(err, "%s: empty rule", file);
		goto fail;
	}
	while (p.i < n) {
		struct matcher *m = &r->m[r->n++];

		atomic_init(&m->limit_logged, 0);
		if (parse_matcher(&p, m) == -1)
			goto fail;
	}
	return r;
fail:
	rules_rule_free(r);
	return NULL;
}

struct rules_rule *
rules_compile_str(struct rules_ctx *ctx, const char *file, int line, const char *text, char **err)
{
	err_clear(err);
	struct rules_tok *toks = NULL;
	struct rules_rule *r;
	char *store = NULL;
	size_t n = 0;

	if (lex(file, line, text, &toks, &n, &store, err) == -1)
		return NULL;
	if (n == 0) {
		seterr(err, "%s:%d: empty rule", file, line);
		r = NULL;
	} else {
		r = rules_compile(ctx, file, toks, n, err);
	}
	free(toks);
	free(store);
	return r;
}

size_t
rules_rule_count(const struct rules_rule *rule)
{
	return rule->n;
}

int
rules_rule_uses_dst(const struct rules_rule *rule)
{
	for (size_t i = 0; i < rule->n; i++)
		if (rule->m[i].kind == M_DST_ADDR)
			return 1;
	return 0;
}

const char *
rules_rule_text(const struct rules_rule *rule, size_t i)
{
	return i < rule->n ? rule->m[i].text : NULL;
}

/* --- evaluation ---------------------------------------------------------------------------------
 */

struct rules_scratch *
rules_scratch_new(void)
{
	struct rules_scratch *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->md = pcre2_match_data_create(1, NULL);
	s->buf = malloc(RULES_URL_BUF);
	s->cap = RULES_URL_BUF;
	if (s->md == NULL || s->buf == NULL) {
		rules_scratch_free(s);
		return NULL;
	}
	return s;
}

void
rules_scratch_free(struct rules_scratch *s)
{
	if (s == NULL)
		return;
	pcre2_match_data_free(s->md);
	free(s->buf);
	free(s);
}

/* Does the ASCII-case-insensitive subject h contain lit (lower-cased)? */
static int
lit_in(const char *h, size_t hlen, const char *lit, size_t len)
{
	const unsigned char *s = (const unsigned char *)h, *l = (const unsigned char *)lit;

	for (size_t i = 0; i + len <= hlen; i++) {
		size_t j = 0;

		while (j < len &&
		       (s[i + j] | ((unsigned)(s[i + j] - 'A') < 26u ? 0x20u : 0u)) == l[j])
			j++;
		if (j == len)
			return 1;
	}
	return 0;
}

/* Run one regex: 1 on a match; a limit or error is kept in *limit. */
static int
re_run(const struct rules_ctx *ctx, const pcre2_code *re, const char *s, size_t len,
       struct rules_scratch *sc, int *limit)
{
	int rc = pcre2_match(re, (PCRE2_SPTR)(s != NULL ? s : ""), len, 0, 0, sc->md, ctx->mctx);

	if (rc >= 0)
		return 1;
	if (rc != PCRE2_ERROR_NOMATCH && rc != PCRE2_ERROR_PARTIAL)
		*limit = rc;
	return 0;
}

/*
 * The prefiltered patterns of set: one pass of the automaton over the subject; the
 * patterns of each literal found run (once per subject), 1 at the first that matches.
 */
static int
set_lit_match(const struct rules_ctx *ctx, const struct rules_set *set, const char *s, size_t len,
              struct rules_scratch *sc, int *limit)
{
	const struct litpf *pf = &set->pf;
	const unsigned char *p = (const unsigned char *)s, *end = p + len;
	uint32_t st = 0;

	sc->nfired = 0;
	for (; p < end; p++) {
		uint32_t f;

		st = pf->delta[(size_t)st * pf->nclass + pf->cls[*p]];
		for (f = pf->fire[st]; f != 0; f = pf->dict[f]) {
			size_t k;

			for (k = 0; k < sc->nfired && sc->fired[k] != f; k++)
				;
			if (k < sc->nfired)
				break; /* it ran, and the rest of its chain with it */
			if (sc->nfired < RULES_FIRED_MAX)
				sc->fired[sc->nfired++] = f;
			for (uint32_t i = pf->out_off[f]; i < pf->out_off[f + 1]; i++)
				if (re_run(ctx, set->lit_res[pf->out_ids[i]], s, len, sc, limit))
					return 1;
		}
	}
	return 0;
}

static int
re_match(const struct rules_ctx *ctx, struct matcher *m, const char *s, size_t len,
         struct rules_scratch *sc)
{
	const pcre2_code *const *res = &m->re;
	size_t nres = 1;
	int rc, limit = 0;

	if (m->set != NULL && m->set->kind == RULES_SET_REGEXES) {
		res = (const pcre2_code *const *)m->set->res;
		nres = m->set->nres;
		if (m->set->nlit > 0 && set_lit_match(ctx, m->set, s, len, sc, &limit))
			return 1;
	} else if (m->lit != NULL && !lit_in(s, len, m->lit, m->lit_len)) {
		return 0; /* it cannot match */
	}
	for (size_t i = 0; i < nres; i++)
		if (re_run(ctx, res[i], s, len, sc, &limit))
			return 1;
	if (limit == 0)
		return 0;
	rc = limit;
	/* a limit (or another match-time error): no match, said once per matcher */
	if (ctx->log != NULL && atomic_exchange(&m->limit_logged, 1) == 0) {
		char msg[512];
		PCRE2_UCHAR why[128];

		if (pcre2_get_error_message(rc, why, sizeof(why)) < 0)
			snprintf((char *)why, sizeof(why), "error %d", rc);
		snprintf(msg, sizeof(msg), "rule matcher `%s`: %s; counted as no match", m->text,
		         (const char *)why);
		ctx->log(ctx->log_arg, msg);
	}
	return 0;
}

static int
ieq(const char *a, size_t alen, const char *b, size_t blen)
{
	if (alen != blen)
		return 0;
	return strncasecmp(a, b, alen) == 0;
}

static int
match_headers(const struct rules_ctx *ctx, struct matcher *m, const struct rules_subject *s,
              const char *name, size_t nlen, struct rules_scratch *sc)
{
	for (size_t i = 0; i < s->nheaders; i++) {
		const struct rules_header *h = &s->headers[i];

		if (!ieq(h->name, h->name_len, name, nlen))
			continue;
		if ((m->re == NULL && m->set == NULL) ||
		    re_match(ctx, m, h->value, h->value_len, sc))
			return 1;
	}
	return 0;
}

static int
match_cookie(const struct rules_ctx *ctx, struct matcher *m, const struct rules_subject *s,
             struct rules_scratch *sc)
{
	for (size_t i = 0; i < s->nheaders; i++) {
		const struct rules_header *h = &s->headers[i];
		const char *p = h->value, *end = h->value + h->value_len;

		if (!ieq(h->name, h->name_len, "cookie", 6))
			continue;
		while (p < end) {
			size_t rest = (size_t)(end - p), k;
			const char *e = memchr(p, ';', rest), *eq = NULL, *ne, *vs;

			if (e == NULL)
				e = end;
			while (p < e && (*p == ' ' || *p == '\t'))
				p++;
			for (k = 0; p + k < e; k++) {
				if (p[k] == '=') {
					eq = p + k;
					break;
				}
			}
			ne = eq != NULL ? eq : e;
			while (ne > p && (ne[-1] == ' ' || ne[-1] == '\t'))
				ne--;
			if ((size_t)(ne - p) == m->name_len &&
			    memcmp(p, m->name, m->name_len) == 0) {
				const char *ve = e;

				vs = eq != NULL ? eq + 1 : e;
				while (vs < ve && (*vs == ' ' || *vs == '\t'))
					vs++;
				while (ve > vs && (ve[-1] == ' ' || ve[-1] == '\t'))
					ve--;
				if (m->re == NULL || re_match(ctx, m, vs, (size_t)(ve - vs), sc))
					return 1;
			}
			p = e + 1;
		}
	}
	return 0;
}

static int
match_arg(const struct rules_ctx *ctx, struct matcher *m, const struct rules_subject *s,
          struct rules_scratch *sc)
{
	const char *p = s->query, *end;

	if (s->query == NULL) /* no query: NULL + 0 would be undefined */
		return 0;
	end = s->query + s->query_len;
	for (;;) {
		const char *e = p, *eq = NULL;

		while (e < end && *e != '&') {
			if (*e == '=' && eq == NULL)
				eq = e;
			e++;
		}
		if ((size_t)((eq != NULL ? eq : e) - p) == m->name_len &&
		    memcmp(p, m->name, m->name_len) == 0) {
			const char *vs = eq != NULL ? eq + 1 : e;

			if (m->re == NULL || re_match(ctx, m, vs, (size_t)(e - vs), sc))
				return 1;
		}
		if (e == end)
			break;
		p = e + 1;
	}
	return 0;
}

/* Build the URL in the scratch; NULL on ENOMEM. */
static const char *
build_url(const struct rules_subject *s, struct rules_scratch *sc, size_t *len)
{
	size_t need = s->scheme_len + s->host_len + s->path_len + s->query_len + 16;
	int dflt = (s->port == 80 && ieq(s->scheme, s->scheme_len, "http", 4)) ||
	           (s->port == 443 && ieq(s->scheme, s->scheme_len, "https", 5)) || s->port <= 0;
	char *o;

	if (need > sc->cap) {
		char *nb = realloc(sc->buf, need);

		if (nb == NULL)
			return NULL;
		sc->buf = nb;
		sc->cap = need;
	}
	o = sc->buf;
	memcpy(o, s->scheme, s->scheme_len);
	o += s->scheme_len;
	memcpy(o, "://", 3);
	o += 3;
	memcpy(o, s->host, s->host_len);
	o += s->host_len;
	if (!dflt) {
		/* per evaluation of a url matcher: no sprintf */
		unsigned port = (unsigned)s->port & 0xffff;
		char digits[5];
		int nd = 0;

		*o++ = ':';
		do
			digits[nd++] = (char)('0' + port % 10);
		while ((port /= 10) != 0);
		while (nd > 0)
			*o++ = digits[--nd];
	}
	if (s->path_len > 0)
		memcpy(o, s->path, s->path_len);
	else
		*o = '/';
	o += s->path_len > 0 ? s->path_len : 1;
	if (s->query != NULL) {
		*o++ = '?';
		memcpy(o, s->query, s->query_len);
		o += s->query_len;
	}
	*len = (size_t)(o - sc->buf);
	return sc->buf;
}

static int64_t
floordiv64(int64_t a, int64_t b)
{
	return a / b - ((a % b != 0) && ((a < 0) != (b < 0)));
}

static int
match_time(const struct matcher *m, time_t now)
{
	int64_t local = (int64_t)now + tz_offset(m->zone, (int64_t)now);
	int64_t day = floordiv64(local, 86400);
	int min = (int)((local - day * 86400) / 60);
	int wday = (int)(((day + 4) % 7 + 7) % 7);
	int prev = (wday + 6) % 7;

	if (m->start < m->end)
		return (m->days >> wday & 1) && min >= m->start && min < m->end;
	return ((m->days >> wday & 1) && min >= m->start) ||
	       ((m->days >> prev & 1) && min < m->end);
}

static int
match_date(const struct matcher *m, time_t now)
{
	int64_t local = (int64_t)now + tz_offset(m->zone, (int64_t)now);
	int32_t day = (int32_t)floordiv64(local, 86400);

	if (m->set != NULL)
		return dateset_match(&m->set->date, day);
	return day >= m->range.from && day <= m->range.to;
}

static int
match_one(const struct rules_ctx *ctx, struct matcher *m, const struct rules_subject *s,
          struct rules_scratch *sc)
{
	struct rules_ip ip;
	const char *u;
	size_t len;

	switch (m->kind) {
	case M_ALL:
		return 1;
	case M_SRC:
		return cidrset_match(&m->set->cidr, &s->client);
	case M_DST_NAME:
		return s->host != NULL && domset_match(&m->set->dom, s->host, s->host_len);
	case M_DST_ADDR:
		if (s->host != NULL && rules_ip_parse(s->host, s->host_len, &ip) == 0)
			return cidrset_match(&m->set->cidr, &ip);
		return s->dst.family != 0 && cidrset_match(&m->set->cidr, &s->dst);
	case M_PORT:
		return s->port >= m->lo && s->port <= m->hi;
	case M_METHOD:
		return s->method != NULL && s->method_len == m->name_len &&
		       memcmp(s->method, m->name, m->name_len) == 0;
	case M_URL:
		if (s->host == NULL || s->scheme == NULL || (u = build_url(s, sc, &len)) == NULL)
			return 0;
		return re_match(ctx, m, u, len, sc);
	case M_PATH:
		return s->path != NULL && re_match(ctx, m, s->path, s->path_len, sc);
	case M_UA:
		return match_headers(ctx, m, s, "user-agent", 10, sc);
	case M_HEADER:
		return match_headers(ctx, m, s, m->name, m->name_len, sc);
	case M_COOKIE:
		return match_cookie(ctx, m, s, sc);
	case M_ARG:
		return match_arg(ctx, m, s, sc);
	case M_USER:
		return s->user != NULL && userset_match(&m->set->user, s->user, s->user_len);
	case M_TIME:
		return match_time(m, s->now);
	case M_DATE:
		return match_date(m, s->now);
	}
	return 0;
}

enum rules_result
rules_eval(const struct rules_rule *rule, const struct rules_subject *subj,
           struct rules_scratch *scratch, struct rules_explain *why)
{
	for (size_t i = 0; i < rule->n; i++) {
		struct matcher *m = &rule->m[i];

		if (match_one(rule->ctx, m, subj, scratch) == m->neg) {
			if (why != NULL) {
				why->index = i;
				why->text = m->text;
			}
			return RULES_NOMATCH;
		}
	}
	return RULES_MATCH;
}
