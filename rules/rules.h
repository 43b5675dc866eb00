/*
 * rules.h - the rule language shared by ACLs and cache rules: named sets, compiled rules,
 * evaluation over plain values, URL normalization.
 *
 * Contract: compiling (rules_compile*, rules_set_*) reads only set files and TZif files,
 * and returns 0/pointer or -1/NULL with *err (err may be NULL) set to a malloc'd
 * "file:line:column: reason" that the caller frees. A compiled rule and the context it was compiled
 * in are immutable and may be shared by threads; evaluation (rules_eval) does no I/O and no
 * allocation, except that the per-thread scratch may grow its URL buffer to the longest URL seen.
 * A scratch belongs to one thread at a time. The context must outlive its rules. Nothing
 * here logs except through the callback installed with rules_set_log_fn().
 *
 * Language (one rule = matchers joined by juxtaposition, all must match; `!` negates one):
 *   src CIDR|ADDR|in SET           client address; ::ffff:a.b.c.d is IPv4 everywhere: it
 *                                  matches IPv4 rules, never IPv6 ones (not even ::/0)
 *   dst HOST|*.DOM|.DOM|ADDR|CIDR|in SET
 *                                  HOST exact, *.DOM strict subdomains, .DOM the domain and
 *                                  its subdomains; names are ASCII (IDNs in punycode),
 *                                  case-insensitive, trailing dot ignored; ADDR/CIDR match a
 *                                  literal-IP host, else the resolved address if given
 *   port N | port N-M
 *   method M                       exact, case-sensitive
 *   url ~ RE | url ~* RE | url ~ in SET     scheme://host[:port]/path[?query]
 *   path ~ RE | path ~* RE         normalized path (without the query)
 *   ua ~ RE | ua ~* RE | ua ~ in SET        User-Agent (any one of them)
 *   header NAME [~|~* RE]          present / any field of that name matches
 *   cookie NAME [~|~* RE]          a cookie of that name (from every Cookie field)
 *   arg NAME [~|~* RE]             a query argument of that name (raw, not decoded)
 *   user NAME | user in SET        authenticated user (no user never matches)
 *   time DAYS HH:MM-HH:MM [ZONE]   DAYS: mon-fri, sat,sun, mon,wed-fri, *; window [start,
 *                                  end), end may be 24:00; start > end crosses midnight and
 *                                  belongs to the day it starts on
 *   date YYYY-MM-DD[..YYYY-MM-DD] [ZONE] | date in SET [ZONE]   local date, inclusive
 *   all
 * ZONE is an IANA name (Europe/Berlin, UTC) read from $TZDIR or /usr/share/zoneinfo; the
 * default is /etc/localtime (UTC if missing). A word after time/date that is not a matcher
 * keyword or `!` is taken as the zone. Regexes are PCRE2, JIT-compiled at load, matched
 * with match and depth limits: a limit hit counts as "the regex did not match" (so `!`
 * turns it into a match) and is logged once per matcher. Tokens that were quoted are
 * never keywords or operators.
 *
 * Paths are matched after rules_path_normalize() and are case-sensitive: `/ADMIN` is not
 * `/admin`; write `path ~* ^/admin` to catch both.
 */
#ifndef PROXYD_RULES_H
#define PROXYD_RULES_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct rules_ctx;     /* named sets, cached zones, limits, the log callback */
struct rules_rule;    /* one compiled rule */
struct rules_scratch; /* per-thread evaluation scratch (pcre2 match data, URL buffer) */

/* One word of a rule or set definition as the config lexer produced it. */
struct rules_tok {
	const char *s; /* NUL-terminated, quotes removed */
	int quoted;    /* was quoted: never a keyword or operator */
	int line;
	int col; /* 1-based */
};

enum rules_set_kind {
	RULES_SET_DOMAINS, /* example.com, *.example.com, .example.com */
	RULES_SET_CIDRS,   /* 10.0.0.0/8, 2001:db8::/32, 192.0.2.1 */
	RULES_SET_REGEXES, /* PCRE2 patterns, matched as one alternation */
	RULES_SET_USERS,   /* user names, case-sensitive */
	RULES_SET_DATES,   /* YYYY-MM-DD or YYYY-MM-DD..YYYY-MM-DD */
};

/* Called at most once per matcher when a regex hits a limit; msg is valid for the call. */
typedef void (*rules_log_fn)(void *arg, const char *msg);

/* A new, empty context, or NULL on ENOMEM. */
struct rules_ctx *rules_ctx_new(void);
/* Frees the context, its sets and zones. Free every rule compiled in it first. */
void rules_ctx_free(struct rules_ctx *ctx);
/* Install the log callback (default: none). Call before any rule is shared. */
void rules_set_log_fn(struct rules_ctx *ctx, rules_log_fn fn, void *arg);
/*
 * PCRE2 match limit and depth limit of every match (defaults 1,000,000 and 10,000; the
 * depth limit binds the interpreter only, JIT code is bounded by the match limit and its
 * stack). Call before rules are shared.
 */
void rules_set_limits(struct rules_ctx *ctx, uint32_t match_limit, uint32_t depth_limit);

/* "domains" etc. to a kind: 0, or -1 if unknown. */
int rules_set_kind_parse(const char *s, enum rules_set_kind *kind);

/*
 * Define set `name` from n inline words (positions in file for errors) or from a file of
 * one entry per line (lines starting with `#` and blank lines ignored, blanks around an
 * entry trimmed; errors "path:line: reason"). A name can be defined once.
 * Entries: domains follow the dst syntax and must be ASCII (IDNs in punycode, xn--...);
 * cidrs are ADDR or ADDR/LEN (bits past LEN ignored, ::ffff:a.b.c.d/LEN is IPv4); users
 * are exact names; dates YYYY-MM-DD or FROM..TO. In a regexes set each pattern is first
 * compiled alone for a precise error. A pattern with a required literal (a substring of 3
 * bytes or more that every match contains, found conservatively: `tracker17` in
 * `^https?://[^/]*tracker17[0-9]*\.`) stays compiled alone and runs only when a one-pass
 * Aho-Corasick search (ASCII case-insensitive) finds its literal in the subject; the
 * other patterns are compiled as one alternation `(?|(?:p1)|(?:p2)...)` (branch reset:
 * each pattern keeps its own group numbers), anchored patterns (^, \A) apart from the
 * others, each alternation split in halves until each part fits PCRE2's limit on a
 * compiled pattern. The result is that of the alternation of all patterns; match limits
 * apply per pattern run alone or per alternation. A pattern must not end inside an `(?x)`
 * comment. Returns 0, or -1 with *err.
 */
int rules_set_define(struct rules_ctx *ctx, enum rules_set_kind kind, const char *name,
                     const char *file, const struct rules_tok *toks, size_t n, char **err);
int rules_set_load(struct rules_ctx *ctx, enum rules_set_kind kind, const char *name,
                   const char *path, char **err);

/*
 * Compile n tokens (from file, for messages) into a rule; sets must already be defined,
 * zones are loaded into the context's cache. Returns the rule (free with rules_rule_free)
 * or NULL with *err.
 */
struct rules_rule *rules_compile(struct rules_ctx *ctx, const char *file,
                                 const struct rules_tok *toks, size_t n, char **err);
/* The same from text: words split on blanks, "..." quotes with \" and \\ escapes. */
struct rules_rule *rules_compile_str(struct rules_ctx *ctx, const char *file, int line,
                                     const char *text, char **err);
void rules_rule_free(struct rules_rule *rule);
/* Number of matchers, and matcher i as text (`!ua ~ "curl"`), owned by the rule. */
size_t rules_rule_count(const struct rules_rule *rule);
const char *rules_rule_text(const struct rules_rule *rule, size_t i);

/*
 * Whether a matcher of rule reads subj->dst (dst ADDR, CIDR or a cidrs set): only such a
 * rule can change its result once the destination is resolved.
 */
int rules_rule_uses_dst(const struct rules_rule *rule);

/* A scratch for one thread, or NULL on ENOMEM. */
struct rules_scratch *rules_scratch_new(void);
void rules_scratch_free(struct rules_scratch *s);

/* An IPv4 (family 4, addr[0..3]) or IPv6 (family 6) address; family 0: none. */
struct rules_ip {
	int family;
	uint8_t addr[16];
};

/* A header field: name (case-insensitive) and value, slices of the caller's buffer. */
struct rules_header {
	const char *name;
	size_t name_len;
	const char *value;
	size_t value_len;
};

/*
 * What a rule is evaluated against: plain values, slices owned by the caller. scheme, host
 * and path must be normalized (rules_url_normalize/rules_path_normalize); host has no
 * port (an IPv6 literal may keep its brackets); path has no query; query excludes the
 * `?` (NULL: none); port <= 0 or the scheme's default is left out of `url`. user NULL:
 * not authenticated. now is POSIX time; time and date matchers convert it with their zone.
 */
struct rules_subject {
	struct rules_ip client;
	const char *user;
	size_t user_len;
	const char *method;
	size_t method_len;
	const char *scheme;
	size_t scheme_len;
	const char *host;
	size_t host_len;
	int port;
	const char *path;
	size_t path_len;
	const char *query;
	size_t query_len;
	struct rules_ip dst; /* resolved destination, family 0 if unknown */
	const struct rules_header *headers;
	size_t nheaders;
	time_t now;
};

enum rules_result {
	RULES_NOMATCH = 0,
	RULES_MATCH = 1,
};

/* Why a rule did not match: the first failing matcher. */
struct rules_explain {
	size_t index;     /* 0-based matcher index */
	const char *text; /* rules_rule_text(rule, index) */
};

/*
 * Evaluate rule against subj. On RULES_NOMATCH, *why (if not NULL) names the first
 * matcher that failed. No side effects but the use of scratch (and the once-per-matcher
 * limit log).
 */
enum rules_result rules_eval(const struct rules_rule *rule, const struct rules_subject *subj,
                             struct rules_scratch *scratch, struct rules_explain *why);

/* Parse "192.0.2.1", "2001:db8::1", "[::1]" into ip: 0, or -1. */
int rules_ip_parse(const char *s, size_t len, struct rules_ip *ip);
/* Copy the address of an AF_INET or AF_INET6 sockaddr into ip: 0, or -1 (family 0). */
struct sockaddr;
int rules_ip_from_sockaddr(const struct sockaddr *sa, struct rules_ip *ip);

/*
 * URL normalization, run before matching path and url:
 * - percent-escapes of unreserved characters (ALPHA DIGIT - . _ ~) are decoded, the hex
 *   of the others upper-cased (`%41` -> `A`, `%2f` -> `%2F`, which stays encoded);
 * - runs of slashes are merged (`//admin` -> `/admin`): origins treat them alike, rules
 *   must too;
 * - dot segments are removed (RFC 3986 5.2.4) after decoding, so `%2e%2e` counts: `/a/b/../c`
 *   -> `/a/c`, `/a/%2e%2e/admin` -> `/admin`, `/a/..` -> `/`; an empty path becomes `/`;
 * - case is kept: paths are case-sensitive;
 * - the query (after the first `?`) is kept as is apart from the hex case of valid escapes.
 * An invalid escape (`%zz`, `%4`) in the path is an error; in the query it is kept.
 * rules_path_normalize() takes a path with optional query; cap >= len + 1 always suffices.
 * Returns the output length, or -1 (invalid escape, or cap too small).
 */
long rules_path_normalize(const char *in, size_t len, char *out, size_t cap);
/*
 * The same for an absolute URL scheme://host[:port]/path[?query]: scheme and host
 * lower-cased, a trailing dot of the host removed, the default port (80 for http, 443 for
 * https) removed; cap >= len + 1 suffices. Returns the output length or -1.
 */
long rules_url_normalize(const char *in, size_t len, char *out, size_t cap);

#endif /* PROXYD_RULES_H */
