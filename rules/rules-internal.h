/*
 * rules-internal.h - what the files of rules/ share: sets (sets.c), zones (tz.c) and the
 * context. Not for other modules: they include rules.h only.
 *
 * Contract: sets and zones are built at compile time and read-only afterwards; lookups do
 * not allocate.
 */
#ifndef PROXYD_RULES_INTERNAL_H
#define PROXYD_RULES_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <pcre2.h>

#include "rules.h"

/* --- domains (sets.c) ------------------------------------------------------------ */
#define DOM_EXACT 0x1 /* the name itself */
#define DOM_SUB   0x2 /* its strict subdomains */

struct dom_ent {
	uint64_t hash;
	uint32_t off, len; /* name in the pool */
	unsigned flags;
};

struct domset {
	struct dom_ent *tab; /* open addressing, size a power of two */
	size_t cap, count;
	char *pool;
	size_t pool_len, pool_cap;
};

/* Parse one entry (dst syntax) and add it; -1 with a static reason in *why. */
int domset_add(struct domset *d, const char *s, const char **why);
int domset_match(const struct domset *d, const char *host, size_t len);
void domset_free(struct domset *d);

/* --- CIDRs (sets.c) -------------------------------------------------------------- */
struct cidr_node {
	uint32_t child[2]; /* 0: none (node 0 is a root, never a child) */
	int term;
};

struct cidrset {
	struct cidr_node *nodes; /* nodes[0] IPv4 root, nodes[1] IPv6 root */
	size_t count, cap;
};

int cidrset_init(struct cidrset *c);
/* "ADDR" or "ADDR/LEN"; -1 with *why */
int cidrset_add(struct cidrset *c, const char *s, const char **why);
int cidrset_match(const struct cidrset *c, const struct rules_ip *ip);
void cidrset_free(struct cidrset *c);

/* --- dates (sets.c) -------------------------------------------------------------- */
struct date_range {
	int32_t from, to; /* days since 1970-01-01, inclusive */
};

struct dateset {
	struct date_range *r; /* sorted by from, merged */
	size_t count, cap;
};

/* "YYYY-MM-DD" or "YYYY-MM-DD..YYYY-MM-DD"; -1 with *why */
int date_range_parse(const char *s, struct date_range *r);
int dateset_add(struct dateset *d, const char *s, const char **why);
void dateset_finish(struct dateset *d);
int dateset_match(const struct dateset *d, int32_t day);
void dateset_free(struct dateset *d);

/* --- users (sets.c) -------------------------------------------------------------- */
struct userset {
	char **names; /* sorted */
	size_t count, cap;
};

int userset_add(struct userset *u, const char *s);
void userset_finish(struct userset *u);
int userset_match(const struct userset *u, const char *name, size_t len);
void userset_free(struct userset *u);

/* --- required literals of a regex (rules.c) ------------------------------------------ */
/* Literal runs shorter than this are not worth a prefilter (too many chance hits). */
#define RE_LIT_MIN 3

/*
 * The longest literal that every match of PCRE2 pattern pat (compiled without options
 * but PCRE2_CASELESS) contains, lower-cased (prefilters compare case-insensitively), into
 * out (cap >= 2 * strlen(pat) + 1 always suffices): its length, or 0 when there is none of
 * RE_LIT_MIN bytes or the pattern has a construct the extraction does not trust (a
 * top-level `|`, lookarounds, backreferences, (?x), verbs, unknown escapes...).
 */
size_t re_required_literal(const char *pat, char *out, size_t cap);

/*
 * For a set: one literal per pattern (lits[i] malloc'd, NULL: the pattern has none), the
 * rarest of the pattern's runs within the set, then the longest. 0, or -1 on ENOMEM.
 */
int litpf_choose(char *const *pats, size_t n, char **lits);

/*
 * Aho-Corasick automaton over n lower-cased literals as a dense DFA over byte classes
 * (cls[] folds ASCII case). Walk: s = delta[s * nclass + cls[byte]]; then f = fire[s],
 * f = dict[f]... (while f != 0) are the states whose literals end here, each with the
 * literal indexes out_ids[out_off[f] .. out_off[f + 1]).
 */
struct litpf {
	uint8_t cls[256];
	uint32_t nclass, nstates;
	uint32_t *delta; /* nstates x nclass */
	uint32_t *fire;  /* first state with output on the suffix chain of s (s itself), 0: none */
	uint32_t *dict;  /* next one after s, 0: none */
	uint32_t *out_off; /* nstates + 1 */
	uint32_t *out_ids;
};

/* 0, or -1 on ENOMEM (pf is then empty). */
int litpf_build(struct litpf *pf, char *const *lits, size_t n);
void litpf_free(struct litpf *pf);

/* --- calendar and zones (tz.c) ------------------------------------------------------ */
int64_t tz_days_from_civil(int64_t y, unsigned m, unsigned d);
void tz_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d);

struct tz_zone;
/* Load zone name (NULL: the system local zone) or NULL with a static reason in *why. */
struct tz_zone *tz_load(const char *name, const char **why);
void tz_free(struct tz_zone *z);
/* UTC offset in seconds at t. */
int32_t tz_offset(const struct tz_zone *z, int64_t t);
/* Exposed for tests: parse a POSIX TZ string into a zone (NULL if invalid). */
struct tz_zone *tz_from_posix(const char *s);

#endif /* PROXYD_RULES_INTERNAL_H */
