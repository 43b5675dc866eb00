#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

/*
 * cfg.c - the proxyd.conf parser.
 *
 * Three layers, in this order in the file:
 *   1. a lexer that turns a file into words, ";", "{" and "}";
 *   2. a statement loop that gathers "name args... ;" or "name args... {" and hands it
 *      to the directive found in the tables (cfg_tables[]);
 *   3. setters, generic (flag, number, size, duration, string: they write at an offsetof
 *      into the block's struct) or custom (blocks, addresses, include).
 * Setters return 0, or -1 with *err set to a malloc'd reason; the statement loop adds
 * "file:line: ". Every field starts UNSET and cfg_*_merge() fills the defaults at the end
 * of its block, as nginx does.
 *
 * Nothing here writes to stdout or stderr and nothing touches libevent.
 */

#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include <sys/types.h>
#include <sys/stat.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <netdb.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "acl.h"
#include "anon.h"
#include "auth.h"
#include "cfg.h"
#include "log.h"
#include "netpolicy.h"
#include "policy.h"
#include "rules.h"
#include "store.h"
#include "tls.h"
#include "http.h"
#include "limit.h"

#if defined(__GNUC__) || defined(__clang__)
#define CFG_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define CFG_PRINTF(f, a)
#endif

#define CFG_INCLUDE_MAX 16 /* levels of nested include below the main file */

/* Markers for "not set in this block"; the merge step replaces them with defaults. */
#define CFG_UNSET        (-1)
#define CFG_UNSET_MS     UINT32_MAX
#define CFG_UNSET_SIZE   SIZE_MAX
#define CFG_UNSET_SIZE64 UINT64_MAX
#define CFG_UNSET_FD     (-2) /* cfg_log.fd: -1 is "off" */

/* Defaults (documented in cfg.h and proxyd.conf(5)). */
#define CFG_DEF_WORKER_CONNECTIONS     10000
#define CFG_DEF_ERROR_LOG_LEVEL        LOG_NOTICE
#define CFG_DEF_SHUTDOWN_TIMEOUT       10000
#define CFG_DEF_RESOLVER_TIMEOUT       5000
#define CFG_DEF_TUNNEL_IDLE_TIMEOUT    300000
#define CFG_DEF_CACHE_MAX_SIZE         (256ULL * 1024 * 1024)
#define CFG_DEF_ORIGIN_KEEPALIVE       64
#define CFG_DEF_ORIGIN_KEEPALIVE_TIME  30000
#define CFG_DEF_PEER_WEIGHT            1
#define CFG_DEF_PEER_MAX_FAILS         1
#define CFG_DEF_PEER_FAIL_TIMEOUT      10000
#define CFG_DEF_UP_KEEPALIVE           0
#define CFG_DEF_UP_KEEPALIVE_TIMEOUT   60000
#define CFG_DEF_UP_KEEPALIVE_REQUESTS  1000
#define CFG_DEF_HEALTH_INTERVAL        5000
#define CFG_DEF_HEALTH_TIMEOUT         2000
#define CFG_DEF_HEALTH_URI             "/health"
#define CFG_DEF_HEALTH_FAILS           3
#define CFG_DEF_HEALTH_PASSES          2
#define CFG_HEALTH_MAX_MS              3600000
#define CFG_HEALTH_MAX_COUNT           1000
#define CFG_HEALTH_MAX_URI             1024
#define CFG_HEALTH_BAD_EXPECT          "expect takes a status N or a range N-M within 100-599"
#define CFG_DEF_LISTEN_BACKLOG         511
#define CFG_DEF_PROXY_TIMEOUT          60000
#define CFG_DEF_CACHE_LOCK_TIMEOUT     5000
#define CFG_DEF_CACHE_LOCK_AGE         5000
#define CFG_DEF_KEEPALIVE_TIMEOUT      75000
#define CFG_DEF_KEEPALIVE_REQUESTS     1000
#define CFG_DEF_CLIENT_TIMEOUT         60000
#define CFG_DEF_SEND_TIMEOUT           60000
#define CFG_DEF_CLIENT_MAX_HEADER_SIZE (32 * 1024)
#define CFG_DEF_CLIENT_MAX_TARGET      (8 * 1024)
#define CFG_DEF_CLIENT_MAX_HEADERS     100
#define CFG_DEF_CLIENT_MAX_BODY_SIZE   (1024 * 1024)
#define CFG_MAX_WORKERS                256
#define CFG_MAX_WEIGHT                 1000
#define CFG_MAX_PEER_CONNS             100000
#define CFG_MAX_SLOW_START             (3600 * 1000)

/* Where a directive is allowed (struct cfg_directive.flags). */
#define CFG_CTX_MAIN     0x01
#define CFG_CTX_UPSTREAM 0x02
#define CFG_CTX_SERVER   0x04
#define CFG_CTX_ADMIN    0x08
#define CFG_CTX_CACHE    0x10
#define CFG_CTX_ANY                                                                                \
	(CFG_CTX_MAIN | CFG_CTX_UPSTREAM | CFG_CTX_SERVER | CFG_CTX_ADMIN | CFG_CTX_CACHE)
#define CFG_BLOCK 0x100 /* "name args { ... }" rather than "name args;" */

/* Argument count rules: they expand to the argmin, argmax pair of a table entry. */
#define CFG_TAKE(n)          (n), (n)
#define CFG_TAKE_MIN(n)      (n), SIZE_MAX
#define CFG_TAKE_RANGE(a, b) (a), (b)
#define CFG_FLAG             1, 1 /* exactly one argument, "on" or "off" */

struct cfg_parser;

struct cfg_directive {
	const char *name;
	unsigned int flags; /* CFG_CTX_* where it is allowed, CFG_BLOCK */
	size_t argmin;
	size_t argmax;
	/* args are the arguments after the name; conf is the struct of the enclosing block */
	int (*set)(struct cfg_parser *p, const struct cfg_directive *d, char **args, size_t nargs,
	           void *conf, char **err);
	size_t off;       /* offsetof() the field, for generic setters */
	const void *post; /* setter-specific: a struct cfg_range for numeric setters */
};

/* Inclusive bounds for numeric setters (in ms for durations, bytes for sizes). */
struct cfg_range {
	uint64_t min;
	uint64_t max;
};

/* proxy_pass of one server, resolved once every upstream is known. */
struct cfg_pass {
	char *arg;        /* as written, e.g. "http://echo"; NULL if unset */
	const char *name; /* points into arg, after "http://" */
	const char *file;
	int line;
};

struct cfg_lexer {
	const char *file;
	const char *buf;
	size_t len;
	size_t pos;
	int line;
	int tline;     /* line where the last token starts */
	size_t lstart; /* offset where the current line starts */
	int tcol;      /* 1-based column (byte) where the last token starts */
	int tquoted;   /* the last token was quoted */
	char *word;
	size_t wlen;
	size_t wcap;
};

enum cfg_tok {
	CFG_TOK_WORD,
	CFG_TOK_SEMI,
	CFG_TOK_LBRACE,
	CFG_TOK_RBRACE,
	CFG_TOK_EOF,
	CFG_TOK_ERROR,
};

/* The words of one statement, the name first, with where each starts. */
struct cfg_args {
	char **v;
	int *lines;
	int *cols;
	unsigned char *quoted;
	size_t n;
	size_t cap;
	int line;      /* line of the name */
	int last_line; /* line of the last word */
};

struct cfg_fileid {
	dev_t dev;
	ino_t ino;
};

struct cfg_parser {
	struct cfg *cfg;
	struct cfg_lexer *lx; /* file being read */
	const char *file;     /* its name, owned by cfg->files */
	int line;             /* line of the directive being handled */
	unsigned int ctx;     /* CFG_CTX_* of the block being read */
	size_t depth;         /* files on the stack */
	struct cfg_fileid stack[CFG_INCLUDE_MAX + 1];
	struct cfg_pass *pass;      /* one per cfg->servers */
	const struct cfg_args *cur; /* the statement being handled (token positions) */
	const struct cfg *prev;     /* the running generation on a reload, or NULL */
	int main_lines;             /* lines in the main file */
	unsigned int flags;         /* CFG_LOAD_* */
	char *err;                  /* first error, "file:line: reason" */
};

static _Atomic uint64_t cfg_generation;
static struct cfg *cfg_load_main(const char *path, const char *buf, size_t len,
                                 const struct cfg *prev, unsigned int flags, char **err);

/* ---- helpers ---- */

static char *cfg_vsprintf(const char *fmt, va_list ap) CFG_PRINTF(1, 0);
static char *cfg_sprintf(const char *fmt, ...) CFG_PRINTF(1, 2);
static void cfg_error(struct cfg_parser *p, const char *file, int line, const char *fmt, ...)
        CFG_PRINTF(4, 5);
static int cfg_invalid(char **err, const struct cfg_directive *d, const char *value,
                       const char *fmt, ...) CFG_PRINTF(4, 5);

static char *
cfg_vsprintf(const char *fmt, va_list ap)
{
	va_list ap2;
	char *s;
	int n;

	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		return NULL;
	if ((s = malloc((size_t)n + 1)) == NULL)
		return NULL;
	vsnprintf(s, (size_t)n + 1, fmt, ap);
	return s;
}

/* A malloc'd formatted string, or NULL when out of memory. */
static char *
cfg_sprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	s = cfg_vsprintf(fmt, ap);
	va_end(ap);
	return s;
}

/* Record "file:line: reason" unless an error is already recorded (the first one wins). */
static void
cfg_error(struct cfg_parser *p, const char *file, int line, const char *fmt, ...)
{
	va_list ap;
	char *why;

	if (p->err != NULL)
		return;
	va_start(ap, fmt);
	why = cfg_vsprintf(fmt, ap);
	va_end(ap);
	if (why == NULL)
		return;
	p->err = cfg_sprintf("%s:%d: %s", file, line, why);
	free(why);
}

/* Set *err to `invalid value "v" in "name" directive: reason` and return -1. */
static int
cfg_invalid(char **err, const struct cfg_directive *d, const char *value, const char *fmt, ...)
{
	va_list ap;
	char *why;

	va_start(ap, fmt);
	why = cfg_vsprintf(fmt, ap);
	va_end(ap);
	*err = cfg_sprintf("invalid value \"%s\" in \"%s\" directive: %s", value, d->name,
	                   why != NULL ? why : "out of memory");
	free(why);
	return -1;
}

static int
cfg_duplicate(char **err, const struct cfg_directive *d)
{
	*err = cfg_sprintf("\"%s\" directive is duplicate", d->name);
	return -1;
}

static int
cfg_nomem(char **err)
{
	*err = cfg_sprintf("out of memory");
	return -1;
}

/* Resize arr (n elements of size bytes) to n + 1, zeroing the new one; NULL if no memory. */
static void *
cfg_array_grow(void *arr, size_t n, size_t size)
{
	char *q;

	if (n >= SIZE_MAX / size - 1)
		return NULL;
	if ((q = realloc(arr, (n + 1) * size)) == NULL)
		return NULL;
	memset(q + n * size, 0, size);
	return q;
}

static int
cfg_is_number(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s != '\0'; s++)
		if (*s < '0' || *s > '9')
			return 0;
	return 1;
}

/* ---- value parsers (public) ---- */

int
cfg_parse_size(const char *s, uint64_t *out, char **err)
{
	uint64_t v = 0, mult = 1;
	const char *q = s;

	if (*q < '0' || *q > '9')
		goto invalid;
	for (; *q >= '0' && *q <= '9'; q++) {
		unsigned int digit = (unsigned int)(*q - '0');

		if (v > (UINT64_MAX - digit) / 10)
			goto toolarge;
		v = v * 10 + digit;
	}
	switch (*q) {
	case '\0':
		break;
	case 'k':
	case 'K':
		mult = 1024;
		q++;
		break;
	case 'm':
	case 'M':
		mult = 1024 * 1024;
		q++;
		break;
	case 'g':
	case 'G':
		mult = 1024 * 1024 * 1024;
		q++;
		break;
	default:
		goto invalid;
	}
	if (*q != '\0')
		goto invalid;
	if (v > UINT64_MAX / mult)
		goto toolarge;
	*out = v * mult;
	return 0;

invalid:
	if (err != NULL)
		*err = cfg_sprintf("not a size (expected N, Nk, Nm or Ng)");
	return -1;
toolarge:
	if (err != NULL)
		*err = cfg_sprintf("size is too large");
	return -1;
}

int
cfg_parse_duration(const char *s, uint32_t *ms_out, char **err)
{
	uint64_t total = 0;
	unsigned int last_rank = 6;
	const char *q = s;

	if (cfg_is_number(s)) {
		/* a bare number is seconds */
		uint64_t v;

		if (cfg_parse_uint(s, UINT32_MAX / 1000, &v) == -1)
			goto toolarge;
		*ms_out = (uint32_t)(v * 1000);
		return 0;
	}
	if (*q == '\0')
		goto invalid;
	while (*q != '\0') {
		uint64_t v = 0, mult;
		unsigned int rank;

		if (*q < '0' || *q > '9')
			goto invalid;
		for (; *q >= '0' && *q <= '9'; q++) {
			v = v * 10 + (unsigned int)(*q - '0');
			if (v > UINT32_MAX)
				goto toolarge;
		}
		if (q[0] == 'm' && q[1] == 's') {
			mult = 1, rank = 1;
			q += 2;
		} else if (*q == 's') {
			mult = 1000, rank = 2;
			q++;
		} else if (*q == 'm') {
			mult = 60 * 1000, rank = 3;
			q++;
		} else if (*q == 'h') {
			mult = 60 * 60 * 1000, rank = 4;
			q++;
		} else if (*q == 'd') {
			mult = 24 * 60 * 60 * 1000, rank = 5;
			q++;
		} else {
			goto invalid; /* no unit after a number, or an unknown one */
		}
		if (rank >= last_rank) {
			if (err != NULL)
				*err = cfg_sprintf("units must be in decreasing order (d, h, m, s, "
				                   "ms), each at most once");
			return -1;
		}
		last_rank = rank;
		if (v > UINT32_MAX / mult)
			goto toolarge;
		total += v * mult;
		if (total > UINT32_MAX)
			goto toolarge;
	}
	*ms_out = (uint32_t)total;
	return 0;

invalid:
	if (err != NULL)
		*err = cfg_sprintf("not a duration (expected e.g. 30, 500ms, 30s, 5m, 1h, 1d or "
		                   "1m30s)");
	return -1;
toolarge:
	if (err != NULL)
		*err = cfg_sprintf("duration is too large (at most %lums)",
		                   (unsigned long)UINT32_MAX);
	return -1;
}

/* ---- lexer ---- */

static int
cfg_lex_putc(struct cfg_lexer *lx, char c)
{
	if (lx->wlen + 1 >= lx->wcap) {
		size_t cap = lx->wcap != 0 ? lx->wcap * 2 : 64;
		char *w = realloc(lx->word, cap);

		if (w == NULL)
			return -1;
		lx->word = w;
		lx->wcap = cap;
	}
	lx->word[lx->wlen++] = c;
	lx->word[lx->wlen] = '\0';
	return 0;
}

static int
cfg_is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Characters that end an unquoted word (and must follow a quoted one). */
static int
cfg_is_delim(char c)
{
	return cfg_is_space(c) || c == ';' || c == '{' || c == '}' || c == '#';
}

/*
 * The next token. A word is in lx->word (quoted words may be empty and may contain
 * ";", "{", "}", "#" and spaces). "#" outside quotes starts a comment. Inside quotes,
 * \" \' \\ \n \t \r are escapes and any other backslash is kept as is (so regular
 * expressions survive); outside quotes a backslash is an ordinary character.
 */
static enum cfg_tok
cfg_lex(struct cfg_parser *p, struct cfg_lexer *lx)
{
	char c;

	for (;;) {
		if (lx->pos >= lx->len) {
			lx->tline = lx->line;
			return CFG_TOK_EOF;
		}
		c = lx->buf[lx->pos];
		if (c == '\n') {
			lx->line++;
			lx->pos++;
			lx->lstart = lx->pos;
		} else if (cfg_is_space(c)) {
			lx->pos++;
		} else if (c == '#') {
			while (lx->pos < lx->len && lx->buf[lx->pos] != '\n')
				lx->pos++;
		} else {
			break;
		}
	}

	lx->tline = lx->line;
	lx->tcol = (int)(lx->pos - lx->lstart) + 1;
	lx->tquoted = c == '"' || c == '\'';
	lx->wlen = 0;
	if (cfg_lex_putc(lx, '\0') == -1)
		goto nomem;
	lx->wlen = 0;

	switch (c) {
	case ';':
		lx->pos++;
		return CFG_TOK_SEMI;
	case '{':
		lx->pos++;
		return CFG_TOK_LBRACE;
	case '}':
		lx->pos++;
		return CFG_TOK_RBRACE;
	case '"':
	case '\'':
		lx->pos++;
		for (;;) {
			char ch;

			if (lx->pos >= lx->len)
				goto unterminated;
			ch = lx->buf[lx->pos++];
			if (ch == c)
				break;
			if (ch == '\\') {
				if (lx->pos >= lx->len)
					goto unterminated;
				ch = lx->buf[lx->pos++];
				/* lines are counted on the bytes read: an escaped "\n" is none */
				if (ch == '\n') {
					lx->line++;
					lx->lstart = lx->pos;
				}
				switch (ch) {
				case '"':
				case '\'':
				case '\\':
					break;
				case 'n':
					ch = '\n';
					break;
				case 't':
					ch = '\t';
					break;
				case 'r':
					ch = '\r';
					break;
				default:
					if (cfg_lex_putc(lx, '\\') == -1)
						goto nomem;
					break;
				}
			} else if (ch == '\n') {
				lx->line++;
				lx->lstart = lx->pos;
			}
			if (cfg_lex_putc(lx, ch) == -1)
				goto nomem;
		}
		if (lx->pos < lx->len && !cfg_is_delim(lx->buf[lx->pos])) {
			cfg_error(p, lx->file, lx->line, "unexpected \"%c\" after a quoted string",
			          lx->buf[lx->pos]);
			return CFG_TOK_ERROR;
		}
		return CFG_TOK_WORD;
	default:
		while (lx->pos < lx->len && !cfg_is_delim(lx->buf[lx->pos]))
			if (cfg_lex_putc(lx, lx->buf[lx->pos++]) == -1)
				goto nomem;
		return CFG_TOK_WORD;
	}

unterminated:
	cfg_error(p, lx->file, lx->tline, "unterminated string");
	return CFG_TOK_ERROR;
nomem:
	cfg_error(p, lx->file, lx->line, "out of memory");
	return CFG_TOK_ERROR;
}

/* ---- statements and directive tables ---- */

static int cfg_set_flag(struct cfg_parser *, const struct cfg_directive *, char **, size_t, void *,
                        char **);
static int cfg_set_number(struct cfg_parser *, const struct cfg_directive *, char **, size_t,
                          void *, char **);
static int cfg_set_count(struct cfg_parser *, const struct cfg_directive *, char **, size_t, void *,
                         char **);
static int cfg_set_size(struct cfg_parser *, const struct cfg_directive *, char **, size_t, void *,
                        char **);
static int cfg_set_size64(struct cfg_parser *, const struct cfg_directive *, char **, size_t,
                          void *, char **);
static int cfg_set_duration(struct cfg_parser *, const struct cfg_directive *, char **, size_t,
                            void *, char **);
static int cfg_set_string(struct cfg_parser *, const struct cfg_directive *, char **, size_t,
                          void *, char **);
static int cfg_set_include(struct cfg_parser *, const struct cfg_directive *, char **, size_t,
                           void *, char **);
static int cfg_set_workers(struct cfg_parser *, const struct cfg_directive *, char **, size_t,
                           void *, char **);
static int cfg_check_creatable(const char *path);
static int cfg_set_error_log(struct cfg_parser *, const struct cfg_directive *, char **, size_t,
                             void *, char **);
static int cfg_block_upstream(struct cfg_parser *, const struct cfg_directive *, char **, size_t,
                              void *, char **);
static int cfg_block_server(struct cfg_parser *, const struct cfg_directive *, char **, size_t,
                            void *, char **);
static int cfg_set_peer(struct cfg_parser *, const struct cfg_directive *, char **, size_t, void *,
                        char **);
static int cfg_set_health_check(struct cfg_parser *, const struct cfg_directive *, char **, size_t,
                                void *, char **);
static int cfg_set_balance(struct cfg_parser *, const struct cfg_directive *, char **, size_t,
                           void *, char **);
static int cfg_set_listen(struct cfg_parser *, const struct cfg_directive *, char **, size_t,
                          void *, char **);
static int cfg_set_proxy_pass(struct cfg_parser *, const struct cfg_directive *, char **, size_t,
                              void *, char **);
static int cfg_set_next_upstream(struct cfg_parser *, const struct cfg_directive *, char **, size_t,
                                 void *, char **);
static int cfg_block_admin(struct cfg_parser *, const struct cfg_directive *, char **, size_t,
                           void *, char **);
static int cfg_set_admin_listen(struct cfg_parser *, const struct cfg_directive *, char **, size_t,
                                void *, char **);
static int cfg_set_access_log(struct cfg_parser *, const struct cfg_directive *, char **, size_t,
                              void *, char **);
static int cfg_set_user(struct cfg_parser *, const struct cfg_directive *, char **, size_t, void *,
                        char **);
static int cfg_set_mode(struct cfg_parser *, const struct cfg_directive *, char **, size_t, void *,
                        char **);
static int cfg_set_connect_ports(struct cfg_parser *, const struct cfg_directive *, char **, size_t,
                                 void *, char **);
static int cfg_set_anonymize(struct cfg_parser *, const struct cfg_directive *, char **, size_t,
                             void *, char **);
static int cfg_set_anonymize_allow(struct cfg_parser *, const struct cfg_directive *, char **,
                                   size_t, void *, char **);
static int cfg_set_auth(struct cfg_parser *, const struct cfg_directive *, char **, size_t, void *,
                        char **);
static int cfg_set_set(struct cfg_parser *, const struct cfg_directive *, char **, size_t, void *,
                       char **);
static int cfg_set_acl(struct cfg_parser *, const struct cfg_directive *, char **, size_t, void *,
                       char **);
static int cfg_set_deny_page(struct cfg_parser *, const struct cfg_directive *, char **, size_t,
                             void *, char **);
static int cfg_set_return(struct cfg_parser *, const struct cfg_directive *, char **, size_t,
                          void *, char **);
static int cfg_set_add_header(struct cfg_parser *, const struct cfg_directive *, char **, size_t,
                              void *, char **);
static int cfg_set_tls_file(struct cfg_parser *, const struct cfg_directive *, char **, size_t,
                            void *, char **);
static int cfg_set_tls_protocols(struct cfg_parser *, const struct cfg_directive *, char **, size_t,
                                 void *, char **);
static int cfg_set_tls_session_cache(struct cfg_parser *, const struct cfg_directive *, char **,
                                     size_t, void *, char **);
static int cfg_block_cache(struct cfg_parser *, const struct cfg_directive *, char **, size_t,
                           void *, char **);
static int cfg_set_server_cache(struct cfg_parser *, const struct cfg_directive *, char **, size_t,
                                void *, char **);
static int cfg_set_cache_rule(struct cfg_parser *, const struct cfg_directive *, char **, size_t,
                              void *, char **);
static int cfg_set_cache_valid(struct cfg_parser *, const struct cfg_directive *, char **, size_t,
                               void *, char **);
static int cfg_set_cache_key(struct cfg_parser *, const struct cfg_directive *, char **, size_t,
                             void *, char **);
static int cfg_set_cache_heuristic(struct cfg_parser *, const struct cfg_directive *, char **,
                                   size_t, void *, char **);
static int cfg_set_resolver(struct cfg_parser *, const struct cfg_directive *, char **, size_t,
                            void *, char **);
static int cfg_set_limit_zone(struct cfg_parser *, const struct cfg_directive *, char **, size_t,
                              void *, char **);
static int cfg_set_limit(struct cfg_parser *, const struct cfg_directive *, char **, size_t, void *,
                         char **);

static const struct cfg_range cfg_range_workers = {1, CFG_MAX_WORKERS};
static const struct cfg_range cfg_range_positive = {1, UINT64_MAX};
static const struct cfg_range cfg_range_headers = {1, HTTP_MAX_HEADERS};

static const struct cfg_directive cfg_core_directives[] = {
        {"include", CFG_CTX_ANY, CFG_TAKE(1), cfg_set_include, 0, NULL},
        {NULL, 0, 0, 0, NULL, 0, NULL},
};

static const struct cfg_directive cfg_main_directives[] = {
        {"user", CFG_CTX_MAIN, CFG_TAKE(1), cfg_set_user, offsetof(struct cfg, user), NULL},
        {"workers", CFG_CTX_MAIN, CFG_TAKE(1), cfg_set_workers, offsetof(struct cfg, workers),
         &cfg_range_workers},
        {"worker_connections", CFG_CTX_MAIN, CFG_TAKE(1), cfg_set_number,
         offsetof(struct cfg, worker_connections), &cfg_range_positive},
        {"pid_file", CFG_CTX_MAIN, CFG_TAKE(1), cfg_set_string, offsetof(struct cfg, pid_file),
         NULL},
        {"error_log", CFG_CTX_MAIN, CFG_TAKE_RANGE(1, 2), cfg_set_error_log, 0, NULL},
        {"shutdown_timeout", CFG_CTX_MAIN, CFG_TAKE(1), cfg_set_duration,
         offsetof(struct cfg, shutdown_timeout_ms), NULL},
        {"upstream", CFG_CTX_MAIN | CFG_BLOCK, CFG_TAKE(1), cfg_block_upstream, 0, NULL},
        {"server", CFG_CTX_MAIN | CFG_BLOCK, CFG_TAKE(0), cfg_block_server, 0, NULL},
        {"admin", CFG_CTX_MAIN | CFG_BLOCK, CFG_TAKE(0), cfg_block_admin, 0, NULL},
        {"resolver", CFG_CTX_MAIN, CFG_TAKE_RANGE(1, 10), cfg_set_resolver, 0, NULL},
        {"set", CFG_CTX_MAIN, CFG_TAKE_MIN(3), cfg_set_set, 0, NULL},
        {"cache", CFG_CTX_MAIN | CFG_BLOCK, CFG_TAKE(1), cfg_block_cache, 0, NULL},
        {"limit_req_zone", CFG_CTX_MAIN, CFG_TAKE_RANGE(2, 4), cfg_set_limit_zone, 0, NULL},
        {"limit_conn_zone", CFG_CTX_MAIN, CFG_TAKE_RANGE(2, 3), cfg_set_limit_zone, 0, NULL},
        {"resolver_timeout", CFG_CTX_MAIN, CFG_TAKE(1), cfg_set_duration,
         offsetof(struct cfg, resolver.timeout_ms), &cfg_range_positive},
        {NULL, 0, 0, 0, NULL, 0, NULL},
};

static const struct cfg_directive cfg_upstream_directives[] = {
        {"server", CFG_CTX_UPSTREAM, CFG_TAKE_RANGE(1, 12), cfg_set_peer, 0, NULL},
        {"balance", CFG_CTX_UPSTREAM, CFG_TAKE_RANGE(1, 3), cfg_set_balance, 0, NULL},
        /* nginx spellings of balance */
        {"least_conn", CFG_CTX_UPSTREAM, CFG_TAKE(0), cfg_set_balance, 0, NULL},
        {"ip_hash", CFG_CTX_UPSTREAM, CFG_TAKE(0), cfg_set_balance, 0, NULL},
        {"random", CFG_CTX_UPSTREAM, CFG_TAKE_RANGE(0, 1), cfg_set_balance, 0, NULL},
        {"hash", CFG_CTX_UPSTREAM, CFG_TAKE_RANGE(1, 2), cfg_set_balance, 0, NULL},
        {"least_time", CFG_CTX_UPSTREAM, CFG_TAKE_RANGE(0, 1), cfg_set_balance, 0, NULL},
        {"keepalive", CFG_CTX_UPSTREAM, CFG_TAKE(1), cfg_set_number,
         offsetof(struct cfg_upstream, keepalive), NULL},
        {"keepalive_timeout", CFG_CTX_UPSTREAM, CFG_TAKE(1), cfg_set_duration,
         offsetof(struct cfg_upstream, keepalive_timeout_ms), NULL},
        {"keepalive_requests", CFG_CTX_UPSTREAM, CFG_TAKE(1), cfg_set_number,
         offsetof(struct cfg_upstream, keepalive_requests), &cfg_range_positive},
        {"health_check", CFG_CTX_UPSTREAM, CFG_TAKE_RANGE(0, 6), cfg_set_health_check, 0, NULL},
        {NULL, 0, 0, 0, NULL, 0, NULL},
};

static const struct cfg_directive cfg_server_directives[] = {
        {"listen", CFG_CTX_SERVER, CFG_TAKE_RANGE(1, 3), cfg_set_listen, 0, NULL},
        {"proxy_pass", CFG_CTX_SERVER, CFG_TAKE(1), cfg_set_proxy_pass, 0, NULL},
        {"proxy_connect_timeout", CFG_CTX_SERVER, CFG_TAKE(1), cfg_set_duration,
         offsetof(struct cfg_server, proxy_connect_timeout_ms), &cfg_range_positive},
        {"proxy_read_timeout", CFG_CTX_SERVER, CFG_TAKE(1), cfg_set_duration,
         offsetof(struct cfg_server, proxy_read_timeout_ms), &cfg_range_positive},
        {"proxy_send_timeout", CFG_CTX_SERVER, CFG_TAKE(1), cfg_set_duration,
         offsetof(struct cfg_server, proxy_send_timeout_ms), &cfg_range_positive},
        {"keepalive_timeout", CFG_CTX_SERVER, CFG_TAKE(1), cfg_set_duration,
         offsetof(struct cfg_server, keepalive_timeout_ms), NULL},
        {"keepalive_requests", CFG_CTX_SERVER, CFG_TAKE(1), cfg_set_number,
         offsetof(struct cfg_server, keepalive_requests), &cfg_range_positive},
        {"client_header_timeout", CFG_CTX_SERVER, CFG_TAKE(1), cfg_set_duration,
         offsetof(struct cfg_server, client_header_timeout_ms), &cfg_range_positive},
        {"client_body_timeout", CFG_CTX_SERVER, CFG_TAKE(1), cfg_set_duration,
         offsetof(struct cfg_server, client_body_timeout_ms), &cfg_range_positive},
        {"send_timeout", CFG_CTX_SERVER, CFG_TAKE(1), cfg_set_duration,
         offsetof(struct cfg_server, send_timeout_ms), &cfg_range_positive},
        {"proxy_next_upstream", CFG_CTX_SERVER, CFG_TAKE_RANGE(1, 11), cfg_set_next_upstream,
         offsetof(struct cfg_server, next_upstream), NULL},
        {"proxy_next_upstream_tries", CFG_CTX_SERVER, CFG_TAKE(1), cfg_set_number,
         offsetof(struct cfg_server, next_upstream_tries), NULL},
        {"proxy_next_upstream_timeout", CFG_CTX_SERVER, CFG_TAKE(1), cfg_set_duration,
         offsetof(struct cfg_server, next_upstream_timeout_ms), NULL},
        {"client_max_header_size", CFG_CTX_SERVER, CFG_TAKE(1), cfg_set_size,
         offsetof(struct cfg_server, client_max_header_size), &cfg_range_positive},
        {"client_max_target", CFG_CTX_SERVER, CFG_TAKE(1), cfg_set_size,
         offsetof(struct cfg_server, client_max_target), &cfg_range_positive},
        {"client_max_headers", CFG_CTX_SERVER, CFG_TAKE(1), cfg_set_count,
         offsetof(struct cfg_server, client_max_headers), &cfg_range_headers},
        {"client_max_body_size", CFG_CTX_SERVER, CFG_TAKE(1), cfg_set_size64,
         offsetof(struct cfg_server, client_max_body_size), NULL},
        {"x_forwarded_for", CFG_CTX_SERVER, CFG_FLAG, cfg_set_flag,
         offsetof(struct cfg_server, x_forwarded_for), NULL},
        {"x_forwarded_proto", CFG_CTX_SERVER, CFG_FLAG, cfg_set_flag,
         offsetof(struct cfg_server, x_forwarded_proto), NULL},
        {"x_forwarded_host", CFG_CTX_SERVER, CFG_FLAG, cfg_set_flag,
         offsetof(struct cfg_server, x_forwarded_host), NULL},
        {"via", CFG_CTX_SERVER, CFG_FLAG, cfg_set_flag, offsetof(struct cfg_server, via), NULL},
        {"access_log", CFG_CTX_SERVER, CFG_TAKE_RANGE(1, 2), cfg_set_access_log, 0, NULL},
        {"mode", CFG_CTX_SERVER, CFG_TAKE(1), cfg_set_mode, 0, NULL},
        {"tunnel_idle_timeout", CFG_CTX_SERVER, CFG_TAKE(1), cfg_set_duration,
         offsetof(struct cfg_server, tunnel_idle_timeout_ms), NULL},
        {"deny_private_destinations", CFG_CTX_SERVER, CFG_FLAG, cfg_set_flag,
         offsetof(struct cfg_server, deny_private_destinations), NULL},
        {"origin_keepalive", CFG_CTX_SERVER, CFG_TAKE(1), cfg_set_number,
         offsetof(struct cfg_server, origin_keepalive), NULL},
        {"connect_ports", CFG_CTX_SERVER, CFG_TAKE_MIN(1), cfg_set_connect_ports, 0, NULL},
        {"anonymize", CFG_CTX_SERVER, CFG_TAKE(1), cfg_set_anonymize, 0, NULL},
        {"anonymize_allow", CFG_CTX_SERVER, CFG_TAKE_MIN(1), cfg_set_anonymize_allow, 0, NULL},
        {"anonymize_user_agent", CFG_CTX_SERVER, CFG_TAKE(1), cfg_set_string,
         offsetof(struct cfg_server, anon_user_agent), NULL},
        {"auth", CFG_CTX_SERVER, CFG_TAKE_RANGE(3, 12), cfg_set_auth, 0, NULL},
        {"allow", CFG_CTX_SERVER, CFG_TAKE_MIN(1), cfg_set_acl, 0, NULL},
        {"deny", CFG_CTX_SERVER, CFG_TAKE_MIN(1), cfg_set_acl, 0, NULL},
        {"deny_page", CFG_CTX_SERVER, CFG_TAKE(1), cfg_set_deny_page, 0, NULL},
        {"return", CFG_CTX_SERVER, CFG_TAKE_RANGE(1, 2), cfg_set_return, 0, NULL},
        {"add_header", CFG_CTX_SERVER, CFG_TAKE_RANGE(2, 3), cfg_set_add_header, 0, NULL},
        {"limit_req", CFG_CTX_SERVER, CFG_TAKE_RANGE(1, 3), cfg_set_limit, 0, NULL},
        {"limit_conn", CFG_CTX_SERVER, CFG_TAKE(2), cfg_set_limit, 0, NULL},
        {"cache", CFG_CTX_SERVER, CFG_TAKE(1), cfg_set_server_cache, 0, NULL},
        {"cache_bypass", CFG_CTX_SERVER, CFG_TAKE_MIN(1), cfg_set_cache_rule, 0, NULL},
        {"no_cache", CFG_CTX_SERVER, CFG_TAKE_MIN(1), cfg_set_cache_rule, 0, NULL},
        {"cache_valid", CFG_CTX_SERVER, CFG_TAKE_RANGE(1, 8), cfg_set_cache_valid, 0, NULL},
        {"cache_key", CFG_CTX_SERVER, CFG_TAKE(1), cfg_set_cache_key, 0, NULL},
        {"cache_heuristic", CFG_CTX_SERVER, CFG_TAKE_RANGE(1, 2), cfg_set_cache_heuristic, 0, NULL},
        {"cache_store_set_cookie", CFG_CTX_SERVER, CFG_FLAG, cfg_set_flag,
         offsetof(struct cfg_server, cache_store_set_cookie), NULL},
        {"cache_status", CFG_CTX_SERVER, CFG_FLAG, cfg_set_flag,
         offsetof(struct cfg_server, cache_status), NULL},
        {"x_cache", CFG_CTX_SERVER, CFG_FLAG, cfg_set_flag, offsetof(struct cfg_server, x_cache),
         NULL},
        {"cache_use_stale", CFG_CTX_SERVER, CFG_TAKE_RANGE(1, 10), cfg_set_next_upstream,
         offsetof(struct cfg_server, cache_use_stale), NULL},
        {"cache_lock", CFG_CTX_SERVER, CFG_FLAG, cfg_set_flag,
         offsetof(struct cfg_server, cache_lock), NULL},
        {"cache_lock_timeout", CFG_CTX_SERVER, CFG_TAKE(1), cfg_set_duration,
         offsetof(struct cfg_server, cache_lock_timeout_ms), &cfg_range_positive},
        {"cache_lock_age", CFG_CTX_SERVER, CFG_TAKE(1), cfg_set_duration,
         offsetof(struct cfg_server, cache_lock_age_ms), &cfg_range_positive},
        {"tls_certificate", CFG_CTX_SERVER, CFG_TAKE(1), cfg_set_tls_file, 0, NULL},
        {"tls_certificate_key", CFG_CTX_SERVER, CFG_TAKE(1), cfg_set_tls_file, 0, NULL},
        {"tls_ocsp_response", CFG_CTX_SERVER, CFG_TAKE(1), cfg_set_tls_file, 0, NULL},
        {"tls_protocols", CFG_CTX_SERVER, CFG_TAKE_RANGE(1, 4), cfg_set_tls_protocols, 0, NULL},
        {"tls_ciphers", CFG_CTX_SERVER, CFG_TAKE(1), cfg_set_string,
         offsetof(struct cfg_server, tls_ciphers), NULL},
        {"tls_ciphersuites", CFG_CTX_SERVER, CFG_TAKE(1), cfg_set_string,
         offsetof(struct cfg_server, tls_ciphersuites), NULL},
        {"tls_session_tickets", CFG_CTX_SERVER, CFG_FLAG, cfg_set_flag,
         offsetof(struct cfg_server, tls_session_tickets), NULL},
        {"tls_session_cache", CFG_CTX_SERVER, CFG_TAKE(1), cfg_set_tls_session_cache, 0, NULL},
        {"tls_session_timeout", CFG_CTX_SERVER, CFG_TAKE(1), cfg_set_duration,
         offsetof(struct cfg_server, tls_session_timeout_ms), &cfg_range_positive},
        {NULL, 0, 0, 0, NULL, 0, NULL},
};

static const struct cfg_directive cfg_cache_directives[] = {
        {"path", CFG_CTX_CACHE, CFG_TAKE(1), cfg_set_string, offsetof(struct cfg_cache, path),
         NULL},
        {"max_size", CFG_CTX_CACHE, CFG_TAKE(1), cfg_set_size64,
         offsetof(struct cfg_cache, max_size), &cfg_range_positive},
        {"max_object_size", CFG_CTX_CACHE, CFG_TAKE(1), cfg_set_size64,
         offsetof(struct cfg_cache, max_object_size), &cfg_range_positive},
        {NULL, 0, 0, 0, NULL, 0, NULL},
};

static const struct cfg_directive cfg_admin_directives[] = {
        {"listen", CFG_CTX_ADMIN, CFG_TAKE(1), cfg_set_admin_listen, 0, NULL},
        {"allow_remote", CFG_CTX_ADMIN, CFG_FLAG, cfg_set_flag,
         offsetof(struct cfg_admin, allow_remote), NULL},
        {NULL, 0, 0, 0, NULL, 0, NULL},
};

/* Every directive, in one place. A name may appear once per context. */
static const struct cfg_directive *const cfg_tables[] = {
        cfg_core_directives,
        cfg_main_directives,
        cfg_upstream_directives,
        cfg_server_directives,
        cfg_admin_directives,
        cfg_cache_directives,
        NULL,
};

const char *
cfg_directive_at(size_t i, unsigned int *contexts)
{
	for (const struct cfg_directive *const *t = cfg_tables; *t != NULL; t++) {
		for (const struct cfg_directive *d = *t; d->name != NULL; d++) {
			if (i-- == 0) {
				*contexts = d->flags & CFG_CTX_ANY;
				return d->name;
			}
		}
	}
	return NULL;
}

/* The directive called name in context ctx; *elsewhere tells whether it exists at all. */
static const struct cfg_directive *
cfg_lookup(const char *name, unsigned int ctx, int *elsewhere)
{
	const struct cfg_directive *const *t;
	const struct cfg_directive *d;

	*elsewhere = 0;
	for (t = cfg_tables; *t != NULL; t++) {
		for (d = *t; d->name != NULL; d++) {
			if (strcmp(d->name, name) != 0)
				continue;
			if (d->flags & ctx)
				return d;
			*elsewhere = 1;
		}
	}
	return NULL;
}

static int
cfg_args_push(struct cfg_args *a, const char *word, int line, int col, int quoted)
{
	char *w;

	if (a->n == a->cap) {
		size_t cap = a->cap != 0 ? a->cap * 2 : 8;
		char **v = realloc(a->v, cap * sizeof(*v));
		int *lines, *cols;
		unsigned char *q;

		if (v == NULL)
			return -1;
		a->v = v;
		if ((lines = realloc(a->lines, cap * sizeof(*lines))) == NULL)
			return -1;
		a->lines = lines;
		if ((cols = realloc(a->cols, cap * sizeof(*cols))) == NULL)
			return -1;
		a->cols = cols;
		if ((q = realloc(a->quoted, cap)) == NULL)
			return -1;
		a->quoted = q;
		a->cap = cap;
	}
	a->lines[a->n] = line;
	a->cols[a->n] = col;
	a->quoted[a->n] = (unsigned char)quoted;
	if ((w = strdup(word)) == NULL)
		return -1;
	if (a->n == 0)
		a->line = line;
	a->last_line = line;
	a->v[a->n++] = w;
	return 0;
}

static void
cfg_args_clear(struct cfg_args *a)
{
	size_t i;

	for (i = 0; i < a->n; i++)
		free(a->v[i]);
	a->n = 0;
}

/* Find and run the directive of one statement; a->v[0] is its name. */
static int
cfg_dispatch(struct cfg_parser *p, unsigned int ctx, void *conf, struct cfg_args *a, int block)
{
	const struct cfg_directive *d;
	const char *file = p->file;
	const char *name = a->v[0];
	int line = a->line, elsewhere;
	size_t nargs = a->n - 1;
	char *reason = NULL;

	if ((d = cfg_lookup(name, ctx, &elsewhere)) == NULL) {
		if (elsewhere)
			cfg_error(p, file, line, "\"%s\" directive is not allowed here", name);
		else
			cfg_error(p, file, line, "unknown directive \"%s\"", name);
		return -1;
	}
	if ((d->flags & CFG_BLOCK) && !block) {
		cfg_error(p, file, line, "\"%s\" directive has no opening \"{\"", name);
		return -1;
	}
	if (!(d->flags & CFG_BLOCK) && block) {
		cfg_error(p, file, line, "\"%s\" directive is not terminated by \";\"", name);
		return -1;
	}
	if (nargs < d->argmin || nargs > d->argmax) {
		cfg_error(p, file, line, "invalid number of arguments in \"%s\" directive", name);
		return -1;
	}
	p->line = line;
	p->ctx = ctx;
	p->cur = a;
	if (d->set(p, d, a->v + 1, nargs, conf, &reason) == 0)
		return 0;
	/* no reason: a nested block or file has recorded its own error */
	if (reason != NULL)
		cfg_error(p, file, line, "%s", reason);
	else if (p->err == NULL)
		cfg_error(p, file, line, "out of memory");
	free(reason);
	return -1;
}

/*
 * Read statements until the end of the block (block != NULL, opened at bline) or of the
 * file (block == NULL). Each file must balance its own braces.
 */
static int
cfg_parse_block(struct cfg_parser *p, unsigned int ctx, void *conf, const char *block, int bline)
{
	struct cfg_lexer *lx = p->lx;
	struct cfg_args a;
	int rc = -1;

	memset(&a, 0, sizeof(a));
	for (;;) {
		enum cfg_tok t = cfg_lex(p, lx);

		if (t == CFG_TOK_ERROR)
			break;
		if (t == CFG_TOK_WORD) {
			if (cfg_args_push(&a, lx->word, lx->tline, lx->tcol, lx->tquoted) == -1) {
				cfg_error(p, lx->file, lx->tline, "out of memory");
				break;
			}
			continue;
		}
		if (t == CFG_TOK_SEMI || t == CFG_TOK_LBRACE) {
			if (a.n == 0) {
				cfg_error(p, lx->file, lx->tline, "unexpected \"%c\"",
				          t == CFG_TOK_SEMI ? ';' : '{');
				break;
			}
			if (cfg_dispatch(p, ctx, conf, &a, t == CFG_TOK_LBRACE) == -1)
				break;
			cfg_args_clear(&a);
			continue;
		}
		if (a.n > 0) {
			cfg_error(p, lx->file, a.last_line,
			          "%s, missing \";\" after \"%s\" directive",
			          t == CFG_TOK_EOF ? "unexpected end of file" : "unexpected \"}\"",
			          a.v[0]);
			break;
		}
		if (t == CFG_TOK_RBRACE) {
			if (block == NULL) {
				cfg_error(p, lx->file, lx->tline, "unexpected \"}\"");
				break;
			}
			rc = 0;
			break;
		}
		/* CFG_TOK_EOF */
		if (block != NULL) {
			cfg_error(p, lx->file, bline,
			          "unexpected end of file, \"%s\" block is not closed by \"}\"",
			          block);
			break;
		}
		rc = 0;
		break;
	}
	cfg_args_clear(&a);
	free(a.v);
	free(a.lines);
	free(a.cols);
	free(a.quoted);
	return rc;
}

/* ---- files and include ---- */

/* The name kept in cfg->files for path (added once), or NULL if out of memory. */
static const char *
cfg_file_register(struct cfg *cfg, const char *path)
{
	char **files;
	size_t i;

	for (i = 0; i < cfg->nfiles; i++)
		if (strcmp(cfg->files[i], path) == 0)
			return cfg->files[i];
	if ((files = cfg_array_grow(cfg->files, cfg->nfiles, sizeof(*files))) == NULL)
		return NULL;
	cfg->files = files;
	if ((files[cfg->nfiles] = strdup(path)) == NULL)
		return NULL;
	return files[cfg->nfiles++];
}

/* Read the whole of fd into a malloc'd buffer. */
static int
cfg_read_all(int fd, char **bufp, size_t *lenp)
{
	char *buf = NULL;
	size_t len = 0, cap = 0;

	for (;;) {
		ssize_t r;

		if (len == cap) {
			char *nb;

			cap = cap != 0 ? cap * 2 : 8192;
			if ((nb = realloc(buf, cap)) == NULL) {
				free(buf);
				errno = ENOMEM;
				return -1;
			}
			buf = nb;
		}
		r = read(fd, buf + len, cap - len);
		if (r == -1) {
			if (errno == EINTR)
				continue;
			free(buf);
			return -1;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	*bufp = buf;
	*lenp = len;
	return 0;
}

static int cfg_parse_text(struct cfg_parser *p, const char *name, const char *buf, size_t len,
                          dev_t dev, ino_t ino, unsigned int ctx, void *conf);

/*
 * Parse one file in context ctx into conf. Problems with the file itself (open, read,
 * cycle, depth) go to *err for the caller's directive; errors inside it go to p->err.
 */
static int
cfg_parse_file(struct cfg_parser *p, const char *path, unsigned int ctx, void *conf, char **err)
{
	const char *name;
	struct stat st;
	char *buf = NULL;
	size_t len, i;
	int fd, rc = -1;

	if (p->depth > CFG_INCLUDE_MAX) {
		*err = cfg_sprintf("cannot include \"%s\": includes nested deeper than %d levels",
		                   path, CFG_INCLUDE_MAX);
		return -1;
	}
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		*err = cfg_sprintf("cannot open \"%s\": %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == -1) {
		*err = cfg_sprintf("cannot stat \"%s\": %s", path, strerror(errno));
		goto done;
	}
	if (!S_ISREG(st.st_mode)) {
		*err = cfg_sprintf("cannot read \"%s\": not a regular file", path);
		goto done;
	}
	for (i = 0; i < p->depth; i++) {
		if (p->stack[i].dev == st.st_dev && p->stack[i].ino == st.st_ino) {
			*err = cfg_sprintf("include cycle: \"%s\" is already being read", path);
			goto done;
		}
	}
	if (cfg_read_all(fd, &buf, &len) == -1) {
		*err = cfg_sprintf("cannot read \"%s\": %s", path, strerror(errno));
		goto done;
	}
	if ((name = cfg_file_register(p->cfg, path)) == NULL) {
		cfg_nomem(err);
		goto done;
	}
	rc = cfg_parse_text(p, name, buf, len, st.st_dev, st.st_ino, ctx, conf);

done:
	free(buf);
	close(fd);
	return rc;
}

/*
 * Parse buf (len bytes of the file called name, registered in p->cfg, whose identity is
 * dev and ino) in context ctx into conf. Errors go to p->err.
 */
static int
cfg_parse_text(struct cfg_parser *p, const char *name, const char *buf, size_t len, dev_t dev,
               ino_t ino, unsigned int ctx, void *conf)
{
	struct cfg_lexer lx, *saved_lx = p->lx;
	const char *saved_file = p->file, *nul;
	size_t i;
	int rc;

	memset(&lx, 0, sizeof(lx));
	lx.file = name;
	lx.buf = buf;
	lx.len = len;
	lx.line = 1;
	if ((nul = memchr(buf, '\0', len)) != NULL) {
		for (i = 0; i < (size_t)(nul - buf); i++)
			if (buf[i] == '\n')
				lx.line++;
		cfg_error(p, name, lx.line, "unexpected NUL byte");
		return -1;
	}

	p->stack[p->depth].dev = dev;
	p->stack[p->depth].ino = ino;
	p->depth++;
	p->lx = &lx;
	p->file = name;
	rc = cfg_parse_block(p, ctx, conf, NULL, 0);
	p->lx = saved_lx;
	p->file = saved_file;
	p->depth--;
	if (p->depth == 0)
		p->main_lines = len > 0 && buf[len - 1] == '\n' ? lx.line - 1 : lx.line;
	free(lx.word);
	return rc;
}

static int
cfg_has_wildcard(const char *s)
{
	return strpbrk(s, "*?[") != NULL;
}

/* dir + "/" + pattern, with the glob characters of dir escaped when escape is set. */
static char *
cfg_path_join(const char *dir, size_t dirlen, const char *pattern, int escape)
{
	size_t i, n = 0;
	char *s;

	if ((s = malloc(dirlen * 2 + strlen(pattern) + 2)) == NULL)
		return NULL;
	for (i = 0; i < dirlen; i++) {
		if (escape && strchr("*?[]\\", dir[i]) != NULL)
			s[n++] = '\\';
		s[n++] = dir[i];
	}
	s[n++] = '/';
	strcpy(s + n, pattern);
	return s;
}

static int
cfg_strcmp_ptr(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * include GLOB: relative to the directory of the including file; matches are read in
 * strcmp order and directories are skipped. A pattern without wildcard must exist.
 */
static int
cfg_set_include(struct cfg_parser *p, const struct cfg_directive *d, char **args, size_t nargs,
                void *conf, char **err)
{
	const char *pattern = args[0], *slash;
	unsigned int ctx = p->ctx;
	char *full = NULL;
	glob_t g;
	size_t i, dirlen;
	int rc;

	(void)nargs;
	if (*pattern == '\0')
		return cfg_invalid(err, d, pattern, "empty path");
	if (p->flags & CFG_LOAD_DRY)
		return cfg_invalid(err, d, pattern, "files are not included in a dry run");
	slash = strrchr(p->file, '/');
	dirlen = slash != NULL ? (size_t)(slash - p->file) : 0;

	if (!cfg_has_wildcard(pattern)) {
		if (pattern[0] == '/' || slash == NULL)
			full = strdup(pattern);
		else
			full = cfg_path_join(p->file, dirlen, pattern, 0);
		if (full == NULL)
			return cfg_nomem(err);
		rc = cfg_parse_file(p, full, ctx, conf, err);
		free(full);
		return rc;
	}

	if (pattern[0] == '/' || slash == NULL)
		full = strdup(pattern);
	else
		full = cfg_path_join(p->file, dirlen, pattern, 1);
	if (full == NULL)
		return cfg_nomem(err);
	memset(&g, 0, sizeof(g));
	rc = glob(full, GLOB_MARK | GLOB_NOSORT, NULL, &g);
	free(full);
	if (rc == GLOB_NOMATCH) {
		globfree(&g);
		return 0;
	}
	if (rc != 0) {
		globfree(&g);
		if (rc == GLOB_NOSPACE)
			return cfg_nomem(err);
		return cfg_invalid(err, d, pattern, "cannot read the directory");
	}
	qsort(g.gl_pathv, g.gl_pathc, sizeof(*g.gl_pathv), cfg_strcmp_ptr);
	rc = 0;
	for (i = 0; i < g.gl_pathc && rc == 0; i++) {
		const char *path = g.gl_pathv[i];
		size_t len = strlen(path);

		if (len > 0 && path[len - 1] == '/')
			continue; /* a directory (GLOB_MARK) */
		rc = cfg_parse_file(p, path, ctx, conf, err);
	}
	globfree(&g);
	return rc;
}

/* ---- generic setters ---- */

static void *
cfg_field(void *conf, const struct cfg_directive *d)
{
	return (char *)conf + d->off;
}

/* Bounds from d->post, clipped to [0, typemax - 1] (typemax is the UNSET marker). */
static void
cfg_bounds(const struct cfg_directive *d, uint64_t typemax, uint64_t *min, uint64_t *max)
{
	const struct cfg_range *r = d->post;

	*min = r != NULL ? r->min : 0;
	*max = r != NULL && r->max < typemax - 1 ? r->max : typemax - 1;
}

/* small: the value is below min; otherwise it is above max (or not representable). */
static int
cfg_range_error(char **err, const struct cfg_directive *d, const char *v, uint64_t min,
                uint64_t max, uint64_t typemax, const char *unit, int small)
{
	if (max != typemax - 1)
		return cfg_invalid(err, d, v, "must be between %llu%s and %llu%s",
		                   (unsigned long long)min, unit, (unsigned long long)max, unit);
	if (small)
		return cfg_invalid(err, d, v, "must be at least %llu%s", (unsigned long long)min,
		                   unit);
	return cfg_invalid(err, d, v, "too large (at most %llu%s)", (unsigned long long)max, unit);
}

static int
cfg_set_flag(struct cfg_parser *p, const struct cfg_directive *d, char **args, size_t nargs,
             void *conf, char **err)
{
	int *fp = cfg_field(conf, d);

	(void)p, (void)nargs;
	if (*fp != CFG_UNSET)
		return cfg_duplicate(err, d);
	if (strcmp(args[0], "on") == 0)
		*fp = 1;
	else if (strcmp(args[0], "off") == 0)
		*fp = 0;
	else
		return cfg_invalid(err, d, args[0], "it must be \"on\" or \"off\"");
	return 0;
}

/* A plain number (digits only) within the directive's bounds, typemax as in cfg_bounds. */
static int
cfg_number_value(const struct cfg_directive *d, const char *s, uint64_t typemax, uint64_t *out,
                 char **err)
{
	uint64_t v, min, max;

	cfg_bounds(d, typemax, &min, &max);
	if (!cfg_is_number(s))
		return cfg_invalid(err, d, s, "not a number");
	if (cfg_parse_uint(s, max, &v) == -1 || v < min)
		return cfg_range_error(err, d, s, min, max, typemax, "",
		                       cfg_parse_uint(s, max, &v) == 0);
	*out = v;
	return 0;
}

/* A non-negative integer into an int. */
static int
cfg_set_number(struct cfg_parser *p, const struct cfg_directive *d, char **args, size_t nargs,
               void *conf, char **err)
{
	int *ip = cfg_field(conf, d);
	uint64_t v;

	(void)p, (void)nargs;
	if (*ip != CFG_UNSET)
		return cfg_duplicate(err, d);
	if (cfg_number_value(d, args[0], (uint64_t)INT_MAX + 1, &v, err) == -1)
		return -1;
	*ip = (int)v;
	return 0;
}

/* A non-negative integer into a size_t. */
static int
cfg_set_count(struct cfg_parser *p, const struct cfg_directive *d, char **args, size_t nargs,
              void *conf, char **err)
{
	size_t *sp = cfg_field(conf, d);
	uint64_t v;

	(void)p, (void)nargs;
	if (*sp != CFG_UNSET_SIZE)
		return cfg_duplicate(err, d);
	if (cfg_number_value(d, args[0], SIZE_MAX, &v, err) == -1)
		return -1;
	*sp = (size_t)v;
	return 0;
}

static int
cfg_size_value(const struct cfg_directive *d, const char *s, uint64_t typemax, uint64_t *out,
               char **err)
{
	uint64_t v, min, max;
	char *why = NULL;

	cfg_bounds(d, typemax, &min, &max);
	if (cfg_parse_size(s, &v, &why) == -1) {
		cfg_invalid(err, d, s, "%s", why != NULL ? why : "out of memory");
		free(why);
		return -1;
	}
	if (v < min || v > max)
		return cfg_range_error(err, d, s, min, max, typemax, "", v < min);
	*out = v;
	return 0;
}

/* A size (cfg_parse_size) into a size_t. */
static int
cfg_set_size(struct cfg_parser *p, const struct cfg_directive *d, char **args, size_t nargs,
             void *conf, char **err)
{
	size_t *sp = cfg_field(conf, d);
	uint64_t v;

	(void)p, (void)nargs;
	if (*sp != CFG_UNSET_SIZE)
		return cfg_duplicate(err, d);
	if (cfg_size_value(d, args[0], SIZE_MAX, &v, err) == -1)
		return -1;
	*sp = (size_t)v;
	return 0;
}

/* A size (cfg_parse_size) into a uint64_t. */
static int
cfg_set_size64(struct cfg_parser *p, const struct cfg_directive *d, char **args, size_t nargs,
               void *conf, char **err)
{
	uint64_t *sp = cfg_field(conf, d);

	(void)p, (void)nargs;
	if (*sp != CFG_UNSET_SIZE64)
		return cfg_duplicate(err, d);
	return cfg_size_value(d, args[0], UINT64_MAX, sp, err);
}

/* A duration (cfg_parse_duration) into a uint32_t of milliseconds. */
static int
cfg_set_duration(struct cfg_parser *p, const struct cfg_directive *d, char **args, size_t nargs,
                 void *conf, char **err)
{
	uint32_t *mp = cfg_field(conf, d);
	uint64_t min, max;
	uint32_t v;
	char *why = NULL;

	(void)p, (void)nargs;
	if (*mp != CFG_UNSET_MS)
		return cfg_duplicate(err, d);
	cfg_bounds(d, UINT32_MAX, &min, &max);
	if (cfg_parse_duration(args[0], &v, &why) == -1) {
		cfg_invalid(err, d, args[0], "%s", why != NULL ? why : "out of memory");
		free(why);
		return -1;
	}
	if (v < min || v > max)
		return cfg_range_error(err, d, args[0], min, max, UINT32_MAX, "ms", v < min);
	*mp = v;
	return 0;
}

/* A non-empty string into a char *. */
static int
cfg_set_string(struct cfg_parser *p, const struct cfg_directive *d, char **args, size_t nargs,
               void *conf, char **err)
{
	char **sp = cfg_field(conf, d);

	(void)p, (void)nargs;
	if (*sp != NULL)
		return cfg_duplicate(err, d);
	if (*args[0] == '\0')
		return cfg_invalid(err, d, args[0], "must not be empty");
	if ((*sp = strdup(args[0])) == NULL)
		return cfg_nomem(err);
	return 0;
}

/* ---- main context ---- */

/*
 * user NAME: looked up where it matters, when loading as root (start-up, `proxyd -t` run as
 * root), so that an unknown user is an error with its file:line there; ignored otherwise,
 * as the switch is. The dry run (fuzzer) looks nothing up.
 */
static int
cfg_set_user(struct cfg_parser *p, const struct cfg_directive *d, char **args, size_t nargs,
             void *conf, char **err)
{
	struct cfg *cfg = conf;
	struct passwd *pw;

	if (cfg_set_string(p, d, args, nargs, conf, err) == -1)
		return -1;
	if ((p->flags & CFG_LOAD_DRY) || geteuid() != 0)
		return 0;
	if ((pw = getpwnam(args[0])) == NULL)
		return cfg_invalid(err, d, args[0], "unknown user");
	cfg->user_uid = pw->pw_uid;
	cfg->user_gid = pw->pw_gid;
	return 0;
}

static int
cfg_set_workers(struct cfg_parser *p, const struct cfg_directive *d, char **args, size_t nargs,
                void *conf, char **err)
{
	struct cfg *cfg = conf;
	long n;

	if (strcmp(args[0], "auto") != 0)
		return cfg_set_number(p, d, args, nargs, conf, err);
	if (cfg->workers != CFG_UNSET)
		return cfg_duplicate(err, d);
	n = sysconf(_SC_NPROCESSORS_ONLN);
	if (n < 1)
		n = 1;
	if (n > CFG_MAX_WORKERS)
		n = CFG_MAX_WORKERS;
	cfg->workers = (int)n;
	return 0;
}

static int
cfg_set_error_log(struct cfg_parser *p, const struct cfg_directive *d, char **args, size_t nargs,
                  void *conf, char **err)
{
	static const struct {
		const char *name;
		int level;
	} levels[] = {
	        {"debug", LOG_DEBUG},  {"info", LOG_INFO}, {"notice", LOG_NOTICE},
	        {"warn", LOG_WARNING}, {"error", LOG_ERR}, {"crit", LOG_CRIT},
	};
	struct cfg *cfg = conf;
	int level = CFG_UNSET;
	size_t i;

	if (cfg->error_log != NULL)
		return cfg_duplicate(err, d);
	if (*args[0] == '\0')
		return cfg_invalid(err, d, args[0], "must not be empty");
	if (nargs == 2) {
		for (i = 0; i < sizeof(levels) / sizeof(levels[0]); i++)
			if (strcmp(args[1], levels[i].name) == 0)
				level = levels[i].level;
		if (level == CFG_UNSET)
			return cfg_invalid(err, d, args[1],
			                   "the level must be debug, info, notice, warn, error or "
			                   "crit");
	}
	/* the daemon opens it at start (fatal if it cannot); -t checks it the same way */
	if ((p->flags & CFG_LOAD_CHECK) && strcmp(args[0], "stderr") != 0 &&
	    cfg_check_creatable(args[0]) == -1) {
		*err = cfg_sprintf("cannot open error log \"%s\": %s", args[0], strerror(errno));
		return -1;
	}
	if ((cfg->error_log = strdup(args[0])) == NULL)
		return cfg_nomem(err);
	cfg->error_log_level = level;
	return 0;
}

static void
cfg_main_init(struct cfg *cfg)
{
	cfg->workers = CFG_UNSET;
	cfg->worker_connections = CFG_UNSET;
	cfg->user_uid = (uid_t)-1;
	cfg->user_gid = (gid_t)-1;
	cfg->error_log_level = CFG_UNSET;
	cfg->shutdown_timeout_ms = CFG_UNSET_MS;
	cfg->resolver.valid_ms = CFG_UNSET_MS;
	cfg->resolver.timeout_ms = CFG_UNSET_MS;
	cfg->resolver.ipv6 = CFG_UNSET;
}

static void
cfg_main_merge(struct cfg *cfg)
{
	if (cfg->workers == CFG_UNSET) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);

		if (n < 1)
			n = 1;
		if (n > CFG_MAX_WORKERS)
			n = CFG_MAX_WORKERS;
		cfg->workers = (int)n;
	}
	if (cfg->worker_connections == CFG_UNSET)
		cfg->worker_connections = CFG_DEF_WORKER_CONNECTIONS;
	if (cfg->error_log_level == CFG_UNSET)
		cfg->error_log_level = CFG_DEF_ERROR_LOG_LEVEL;
	if (cfg->shutdown_timeout_ms == CFG_UNSET_MS)
		cfg->shutdown_timeout_ms = CFG_DEF_SHUTDOWN_TIMEOUT;
	if (cfg->resolver.valid_ms == CFG_UNSET_MS)
		cfg->resolver.valid_ms = CFG_DEF_RESOLVER_VALID;
	if (cfg->resolver.timeout_ms == CFG_UNSET_MS)
		cfg->resolver.timeout_ms = CFG_DEF_RESOLVER_TIMEOUT;
	if (cfg->resolver.ipv6 == CFG_UNSET)
		cfg->resolver.ipv6 = 1;
}

/* ---- addresses ---- */

static int
cfg_addr_text(struct cfg_addr *a, char **why)
{
	char host[INET6_ADDRSTRLEN + 32]; /* room for a "%scope" */
	unsigned int port;
	int n;

	if (getnameinfo((struct sockaddr *)&a->ss, a->len, host, sizeof(host), NULL, 0,
	                NI_NUMERICHOST) != 0) {
		*why = cfg_sprintf("cannot format the address");
		return -1;
	}
	if (a->ss.ss_family == AF_INET6) {
		port = ntohs(((struct sockaddr_in6 *)&a->ss)->sin6_port);
		n = snprintf(a->text, sizeof(a->text), "[%s]:%u", host, port);
	} else {
		port = ntohs(((struct sockaddr_in *)&a->ss)->sin_port);
		n = snprintf(a->text, sizeof(a->text), "%s:%u", host, port);
	}
	if (n < 0 || (size_t)n >= sizeof(a->text)) {
		*why = cfg_sprintf("the address is too long");
		return -1;
	}
	return 0;
}

void
cfg_addr_from_ip(struct cfg_addr *out, const struct sockaddr_storage *ip, uint16_t port)
{
	/* per forward request: no snprintf (nor inet_ntop for IPv4, which uses it) */
	char *t = out->text;
	size_t n;
	char digits[5];
	int nd = 0;

	memset(out, 0, sizeof(*out));
	out->ss = *ip;
	if (ip->ss_family == AF_INET6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)(void *)&out->ss;

		sin6->sin6_port = htons(port);
		out->len = sizeof(*sin6);
		t[0] = '[';
		inet_ntop(AF_INET6, &sin6->sin6_addr, t + 1, INET6_ADDRSTRLEN);
		n = strlen(t);
		t[n++] = ']';
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)(void *)&out->ss;

		const unsigned char *b = (const unsigned char *)&sin->sin_addr;

		sin->sin_port = htons(port);
		out->len = sizeof(*sin);
		/* glibc's inet_ntop formats IPv4 with sprintf: dotted quad by hand */
		n = 0;
		for (int i = 0; i < 4; i++) {
			unsigned v = b[i];

			if (v >= 100)
				t[n++] = (char)('0' + v / 100);
			if (v >= 10)
				t[n++] = (char)('0' + v / 10 % 10);
			t[n++] = (char)('0' + v % 10);
			t[n++] = '.';
		}
		n--; /* the last dot */
	}
	_Static_assert(sizeof(out->text) >= 1 + INET6_ADDRSTRLEN + 1 + 1 + 5,
	               "text holds [ip6]:port");
	t[n++] = ':';
	do
		digits[nd++] = (char)('0' + port % 10);
	while ((port /= 10) != 0);
	while (nd > 0)
		t[n++] = digits[--nd];
	t[n] = '\0';
}

static int
cfg_addr_push(struct cfg_addr **out, size_t *nout, const struct sockaddr *sa, socklen_t len,
              uint16_t port, char **why)
{
	struct cfg_addr a, *arr;
	size_t i;

	memset(&a, 0, sizeof(a));
	if (len > sizeof(a.ss)) {
		*why = cfg_sprintf("the address is too long");
		return -1;
	}
	memcpy(&a.ss, sa, len);
	a.len = len;
	if (sa->sa_family == AF_INET6)
		((struct sockaddr_in6 *)&a.ss)->sin6_port = htons(port);
	else
		((struct sockaddr_in *)&a.ss)->sin_port = htons(port);
	if (cfg_addr_text(&a, why) == -1)
		return -1;
	for (i = 0; i < *nout; i++)
		if (strcmp((*out)[i].text, a.text) == 0)
			return 0; /* a name listed twice in /etc/hosts */
	if ((arr = cfg_array_grow(*out, *nout, sizeof(**out))) == NULL) {
		*why = cfg_sprintf("out of memory");
		return -1;
	}
	arr[(*nout)++] = a;
	*out = arr;
	return 0;
}

static int
cfg_is_ipv4ish(const char *s)
{
	for (; *s != '\0'; s++)
		if ((*s < '0' || *s > '9') && *s != '.')
			return 0;
	return 1;
}

/*
 * "HOST:PORT", "[IPv6]:PORT" and, when listen is set, "PORT" and "*:PORT" (0.0.0.0).
 * HOST is an IPv4 literal or a name resolved now; every address is returned, in the
 * resolver's order. Returns 0 with a malloc'd array, or -1 with *why set. With
 * CFG_LOAD_DRY in flags a name is not resolved: it stands for 192.0.2.1 (TEST-NET-1).
 */
static int
cfg_addr_parse(const char *s, int listen, unsigned int flags, struct cfg_addr **out, size_t *nout,
               char **why)
{
	struct addrinfo hints, *res = NULL, *ai;
	struct sockaddr_in sin;
	const char *portstr;
	char *host = NULL;
	uint64_t port;
	int rc = -1, gai, bracket = 0, wildcard = 0;

	*out = NULL;
	*nout = 0;
	if (listen && cfg_is_number(s)) {
		wildcard = 1;
		portstr = s;
	} else if (s[0] == '[') {
		const char *end = strchr(s, ']');

		if (end == NULL) {
			*why = cfg_sprintf("missing \"]\"");
			return -1;
		}
		if (end[1] != ':') {
			if (end[1] == '\0')
				*why = cfg_sprintf("missing port");
			else
				*why = cfg_sprintf("\":\" expected after \"]\"");
			return -1;
		}
		if ((host = strndup(s + 1, (size_t)(end - s - 1))) == NULL)
			goto nomem;
		bracket = 1;
		portstr = end + 2;
	} else {
		const char *colon = strrchr(s, ':');

		if (colon == NULL) {
			if (cfg_is_number(s))
				*why = cfg_sprintf("missing host");
			else
				*why = cfg_sprintf("missing port");
			return -1;
		}
		if ((host = strndup(s, (size_t)(colon - s))) == NULL)
			goto nomem;
		portstr = colon + 1;
		if (strchr(host, ':') != NULL) {
			*why = cfg_sprintf("an IPv6 address must be enclosed in \"[]\"");
			goto done;
		}
		if (*host == '\0') {
			*why = cfg_sprintf("missing host");
			goto done;
		}
		if (strcmp(host, "*") == 0) {
			if (!listen) {
				*why = cfg_sprintf("\"*\" is only allowed in \"listen\"");
				goto done;
			}
			wildcard = 1;
		}
	}
	if (cfg_parse_uint(portstr, 65535, &port) == -1 || port == 0) {
		*why = cfg_sprintf("invalid port \"%s\" (1..65535)", portstr);
		goto done;
	}

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	if (wildcard) {
		sin.sin_addr.s_addr = htonl(INADDR_ANY);
		rc = cfg_addr_push(out, nout, (struct sockaddr *)&sin, sizeof(sin), (uint16_t)port,
		                   why);
		goto done;
	}
	if (!bracket && (cfg_is_ipv4ish(host) || (flags & CFG_LOAD_DRY))) {
		if (!cfg_is_ipv4ish(host))
			sin.sin_addr.s_addr = htonl(0xc0000201); /* 192.0.2.1 */
		else if (inet_pton(AF_INET, host, &sin.sin_addr) != 1) {
			*why = cfg_sprintf("invalid IPv4 address \"%s\"", host);
			goto done;
		}
		rc = cfg_addr_push(out, nout, (struct sockaddr *)&sin, sizeof(sin), (uint16_t)port,
		                   why);
		goto done;
	}

	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	if (bracket) {
		hints.ai_family = AF_INET6;
		hints.ai_flags = AI_NUMERICHOST;
		if (getaddrinfo(host, NULL, &hints, &res) != 0) {
			*why = cfg_sprintf("invalid IPv6 address \"%s\"", host);
			goto done;
		}
	} else {
		/* as nginx: skip families the host has no address of, unless none is left */
		hints.ai_family = AF_UNSPEC;
		hints.ai_flags = AI_ADDRCONFIG;
		if (getaddrinfo(host, NULL, &hints, &res) != 0) {
			hints.ai_flags = 0;
			if ((gai = getaddrinfo(host, NULL, &hints, &res)) != 0) {
				*why = cfg_sprintf("host \"%s\" not found: %s", host,
				                   gai == EAI_SYSTEM ? strerror(errno)
				                                     : gai_strerror(gai));
				res = NULL;
				goto done;
			}
		}
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
			continue;
		if (cfg_addr_push(out, nout, ai->ai_addr, ai->ai_addrlen, (uint16_t)port, why) ==
		    -1)
			goto done;
	}
	if (*nout == 0) {
		*why = cfg_sprintf("host \"%s\" has no IPv4 or IPv6 address", host);
		goto done;
	}
	rc = 0;
	goto done;

nomem:
	*why = cfg_sprintf("out of memory");
done:
	if (res != NULL)
		freeaddrinfo(res);
	free(host);
	if (rc == -1) {
		free(*out);
		*out = NULL;
		*nout = 0;
	}
	return rc;
}

/*
 * resolver ADDR[:PORT] ... [valid=DURATION] [ipv6=on|off]; (nginx's syntax; port 53 by
 * default; IPv6 addresses in brackets)
 */
static int
cfg_set_resolver(struct cfg_parser *p, const struct cfg_directive *d, char **args, size_t nargs,
                 void *conf, char **err)
{
	struct cfg_resolver *rc = &((struct cfg *)conf)->resolver;
	char *why = NULL;

	(void)p;
	if (rc->nns > 0)
		return cfg_duplicate(err, d);
	for (size_t i = 0; i < nargs; i++) {
		const char *a = args[i];
		struct cfg_addr *addrs = NULL, *ns;
		size_t naddrs;
		char buf[300];

		if (strncmp(a, "valid=", 6) == 0) {
			if (cfg_parse_duration(a + 6, &rc->valid_ms, &why) == -1 ||
			    rc->valid_ms == 0) {
				cfg_invalid(err, d, a, "%s",
				            why != NULL ? why : "must be positive");
				free(why);
				return -1;
			}
			continue;
		}
		if (strncmp(a, "ipv6=", 5) == 0) {
			if (strcmp(a + 5, "on") != 0 && strcmp(a + 5, "off") != 0)
				return cfg_invalid(err, d, a, "it must be \"on\" or \"off\"");
			rc->ipv6 = strcmp(a + 5, "on") == 0;
			continue;
		}
		/* a port is optional: "10.0.0.1", "[::1]", "10.0.0.1:5353", "[::1]:5353" */
		const char *colon = strrchr(a, ':');
		int has_port = colon != NULL && (a[0] != '[' || colon[-1] == ']') &&
		               (a[0] == '[' || strchr(a, ':') == colon);

		if (has_port)
			snprintf(buf, sizeof(buf), "%s", a);
		else
			snprintf(buf, sizeof(buf), "%s:53", a);
		if (cfg_addr_parse(buf, 0, p->flags, &addrs, &naddrs, &why) == -1) {
			cfg_invalid(err, d, a, "%s", why != NULL ? why : "out of memory");
			free(why);
			return -1;
		}
		if ((ns = cfg_array_grow(rc->ns, rc->nns, sizeof(*ns))) == NULL) {
			free(addrs);
			return cfg_nomem(err);
		}
		rc->ns = ns;
		rc->ns[rc->nns++] = addrs[0];
		free(addrs);
	}
	if (rc->nns == 0)
		return cfg_invalid(err, d, args[0], "no name server address");
	return 0;
}

/* ---- upstream context ---- */

/*
 * server HOST:PORT [weight=N] [max_fails=N] [fail_timeout=DURATION] [max_conns=N]
 *        [slow_start=DURATION] [backup] [down] [resolve];
 */
static int
cfg_set_peer(struct cfg_parser *p, const struct cfg_directive *d, char **args, size_t nargs,
             void *conf, char **err)
{
	struct cfg_upstream *up = conf;
	struct cfg_addr *addrs = NULL;
	struct cfg_peer *peers;
	unsigned flags = 0;
	int weight = CFG_UNSET, max_fails = CFG_UNSET, max_conns = CFG_UNSET;
	uint32_t fail_timeout = CFG_UNSET_MS, slow_start = CFG_UNSET_MS;
	size_t i, naddrs;
	uint64_t v, rport = 0;
	int tls = 0, verify = CFG_UNSET;
	const char *sni = NULL, *ca = NULL;
	struct tls_client *tlsc = NULL;
	char *tls_name = NULL;
	char *why = NULL;

	(void)p;
	for (i = 1; i < nargs; i++) {
		const char *a = args[i];

		if (strncmp(a, "weight=", 7) == 0) {
			if (weight != CFG_UNSET)
				return cfg_invalid(err, d, a, "duplicate parameter");
			if (cfg_parse_uint(a + 7, CFG_MAX_WEIGHT, &v) == -1 || v < 1)
				return cfg_invalid(err, d, a, "weight must be between 1 and %d",
				                   CFG_MAX_WEIGHT);
			weight = (int)v;
		} else if (strncmp(a, "max_fails=", 10) == 0) {
			if (max_fails != CFG_UNSET)
				return cfg_invalid(err, d, a, "duplicate parameter");
			if (cfg_parse_uint(a + 10, INT_MAX, &v) == -1)
				return cfg_invalid(err, d, a,
				                   "max_fails must be a non-negative number");
			max_fails = (int)v;
		} else if (strncmp(a, "fail_timeout=", 13) == 0) {
			if (fail_timeout != CFG_UNSET_MS)
				return cfg_invalid(err, d, a, "duplicate parameter");
			if (cfg_parse_duration(a + 13, &fail_timeout, &why) == -1 ||
			    fail_timeout == CFG_UNSET_MS) {
				cfg_invalid(err, d, a, "%s",
				            why != NULL ? why : "duration is too large");
				free(why);
				return -1;
			}
		} else if (strncmp(a, "max_conns=", 10) == 0) {
			if (max_conns != CFG_UNSET)
				return cfg_invalid(err, d, a, "duplicate parameter");
			if (cfg_parse_uint(a + 10, CFG_MAX_PEER_CONNS, &v) == -1)
				return cfg_invalid(err, d, a, "max_conns must be between 0 and %d",
				                   CFG_MAX_PEER_CONNS);
			max_conns = (int)v;
		} else if (strncmp(a, "slow_start=", 11) == 0) {
			if (slow_start != CFG_UNSET_MS)
				return cfg_invalid(err, d, a, "duplicate parameter");
			if (cfg_parse_duration(a + 11, &slow_start, &why) == -1) {
				cfg_invalid(err, d, a, "%s", why != NULL ? why : "out of memory");
				free(why);
				return -1;
			}
			if (slow_start > CFG_MAX_SLOW_START)
				return cfg_invalid(err, d, a, "slow_start must be at most 1h");
		} else if (strcmp(a, "tls") == 0) {
			if (tls)
				return cfg_invalid(err, d, a, "duplicate parameter");
			tls = 1;
		} else if (strncmp(a, "verify=", 7) == 0) {
			if (verify != CFG_UNSET)
				return cfg_invalid(err, d, a, "duplicate parameter");
			if (strcmp(a + 7, "on") != 0 && strcmp(a + 7, "off") != 0)
				return cfg_invalid(err, d, a, "it must be \"on\" or \"off\"");
			verify = strcmp(a + 7, "on") == 0;
		} else if (strncmp(a, "sni=", 4) == 0 && a[4] != '\0') {
			if (sni != NULL)
				return cfg_invalid(err, d, a, "duplicate parameter");
			sni = a + 4;
		} else if (strncmp(a, "ca=", 3) == 0 && a[3] != '\0') {
			if (ca != NULL)
				return cfg_invalid(err, d, a, "duplicate parameter");
			ca = a + 3;
		} else if (strcmp(a, "resolve") == 0) {
			if (flags & CFG_PEER_RESOLVE)
				return cfg_invalid(err, d, a, "duplicate parameter");
			flags |= CFG_PEER_RESOLVE;
		} else if (strcmp(a, "backup") == 0 || strcmp(a, "down") == 0) {
			unsigned f = a[0] == 'b' ? CFG_PEER_BACKUP : CFG_PEER_DOWN;

			if (flags & f)
				return cfg_invalid(err, d, a, "duplicate parameter");
			/* the hashes map keys onto the primaries; a backup has no place */
			if (f == CFG_PEER_BACKUP && up->balance == CFG_BALANCE_IP_HASH)
				return cfg_invalid(err, d, a,
				                   "ip_hash does not support backup servers");
			if (f == CFG_PEER_BACKUP && (up->balance == CFG_BALANCE_HASH ||
			                             up->balance == CFG_BALANCE_HASH_CONSISTENT))
				return cfg_invalid(err, d, a,
				                   "hash does not support backup servers");
			flags |= f;
		} else {
			return cfg_invalid(err, d, a, "unknown parameter");
		}
	}

	if (!tls && (verify != CFG_UNSET || sni != NULL || ca != NULL))
		return cfg_invalid(err, d, args[0], "verify=, sni= and ca= need \"tls\"");
	if (flags & CFG_PEER_RESOLVE) {
		/* slots filled at run time by discover.c; only the syntax is checked here */
		const char *colon = strrchr(args[0], ':');
		char host[256];

		if (colon == NULL || colon == args[0] || strchr(args[0], '[') != NULL ||
		    (size_t)(colon - args[0]) >= sizeof(host) ||
		    cfg_parse_uint(colon + 1, 65535, &rport) == -1 || rport == 0)
			return cfg_invalid(err, d, args[0],
			                   "\"resolve\" needs a host name and a port, NAME:PORT");
		memcpy(host, args[0], (size_t)(colon - args[0]));
		host[colon - args[0]] = '\0';
		if (cfg_is_ipv4ish(host))
			return cfg_invalid(err, d, args[0],
			                   "\"resolve\" needs a host name, not an address");
		if ((addrs = calloc(CFG_RESOLVE_SLOTS, sizeof(*addrs))) == NULL)
			return cfg_nomem(err);
		naddrs = CFG_RESOLVE_SLOTS;
		for (i = 0; i < naddrs; i++)
			snprintf(addrs[i].text, sizeof(addrs[i].text), "%s", args[0]);
	} else if (cfg_addr_parse(args[0], 0, p->flags, &addrs, &naddrs, &why) == -1) {
		cfg_invalid(err, d, args[0], "%s", why != NULL ? why : "out of memory");
		free(why);
		return -1;
	}
	if (tls) {
		/* the name sent (SNI) and verified: sni=, else the host of the address */
		const char *h = args[0], *colon = strrchr(args[0], ':');
		size_t hl = colon != NULL ? (size_t)(colon - h) : strlen(h);

		if (sni == NULL && hl >= 2 && h[0] == '[') {
			h++;
			hl -= 2;
		}
		tls_name = sni != NULL ? strdup(sni) : strndup(h, hl);
		if (tls_name == NULL)
			goto nomem;
		if ((tlsc = tls_client_new(verify != 0, ca, &why)) == NULL) {
			free(tls_name);
			free(addrs);
			*err = why != NULL ? why : cfg_sprintf("out of memory");
			return -1;
		}
		struct tls_client **tc =
		        cfg_array_grow(up->tls_clients, up->ntls_clients, sizeof(*tc));
		if (tc == NULL) {
			tls_client_free(tlsc);
			goto nomem;
		}
		up->tls_clients = tc;
		tc[up->ntls_clients++] = tlsc;
	}
	for (i = 0; i < naddrs; i++) {
		struct cfg_peer *peer;

		if ((peers = cfg_array_grow(up->peers, up->npeers, sizeof(*peers))) == NULL)
			goto nomem;
		up->peers = peers;
		peer = &peers[up->npeers];
		if ((peer->name = strdup(args[0])) == NULL)
			goto nomem;
		up->npeers++;
		peer->addr = addrs[i];
		peer->flags = flags;
		peer->tls = tlsc;
		if (tls_name != NULL && (peer->tls_name = strdup(tls_name)) == NULL)
			goto nomem;
		if (flags & CFG_PEER_RESOLVE) {
			size_t hl = (size_t)(strrchr(args[0], ':') - args[0]);

			if ((peer->host = strndup(args[0], hl)) == NULL)
				goto nomem;
			peer->port = (uint16_t)rport;
			peer->slot = (unsigned)i;
		}
		peer->weight = weight != CFG_UNSET ? weight : CFG_DEF_PEER_WEIGHT;
		peer->max_fails = max_fails != CFG_UNSET ? max_fails : CFG_DEF_PEER_MAX_FAILS;
		peer->fail_timeout_ms =
		        fail_timeout != CFG_UNSET_MS ? fail_timeout : CFG_DEF_PEER_FAIL_TIMEOUT;
		peer->max_conns = max_conns != CFG_UNSET ? max_conns : 0;
		peer->slow_start_ms = slow_start != CFG_UNSET_MS ? slow_start : 0;
	}
	free(addrs);
	free(tls_name);
	return 0;

nomem:
	free(addrs);
	free(tls_name);
	return cfg_nomem(err);
}

uint32_t
cfg_hash(const void *p, size_t n, uint32_t h)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 16777619u;
	}
	/* FNV-1a alone spreads short, similar strings ("addr-1", "addr-2") poorly */
	h ^= h >> 16;
	h *= 0x85ebca6bu;
	h ^= h >> 13;
	h *= 0xc2b2ae35u;
	h ^= h >> 16;
	return h;
}

static void
cfg_key_free(struct cfg_key_part *key, size_t nkey)
{
	for (size_t i = 0; i < nkey; i++)
		free(key[i].text);
	free(key);
}

/* Append a part to *key; text (may be NULL) is copied. Returns 0 or -1 (ENOMEM). */
static int
cfg_key_push(struct cfg_key_part **key, size_t *nkey, enum cfg_key_var var, const char *text,
             size_t len)
{
	struct cfg_key_part *k, *part;

	if ((k = cfg_array_grow(*key, *nkey, sizeof(*k))) == NULL)
		return -1;
	*key = k;
	part = &k[*nkey];
	part->var = var;
	part->text = NULL;
	part->len = len;
	if (text != NULL) {
		if ((part->text = malloc(len + 1)) == NULL)
			return -1;
		memcpy(part->text, text, len);
		part->text[len] = '\0';
	}
	(*nkey)++;
	return 0;
}

static int
cfg_is_varchar(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_';
}

/*
 * Compile a key template into *out and *nout: literals and $request_uri, $remote_addr, $host,
 * $http_NAME, $cookie_NAME, $arg_NAME; with cache set (cache_key) also $url and $scheme.
 * A `$` must start a known variable.
 */
static int
cfg_key_compile(struct cfg_key_part **out, size_t *nout, int cache, const struct cfg_directive *d,
                const char *tpl, char **err)
{
	static const struct {
		const char *name;
		enum cfg_key_var var;
		int prefix; /* takes a NAME after it */
	} vars[] = {
	        {"request_uri", CFG_KEY_REQUEST_URI, 0},
	        {"remote_addr", CFG_KEY_REMOTE_ADDR, 0},
	        {"host", CFG_KEY_HOST, 0},
	        {"http_", CFG_KEY_HTTP, 1},
	        {"cookie_", CFG_KEY_COOKIE, 1},
	        {"arg_", CFG_KEY_ARG, 1},
	        {"url", CFG_KEY_URL, 0},
	        {"scheme", CFG_KEY_SCHEME, 0},
	};
	struct cfg_key_part *key = NULL;
	size_t nkey = 0;
	const char *s = tpl;

	while (*s != '\0') {
		const char *e;
		size_t i, n;

		if (*s != '$') {
			for (e = s; *e != '\0' && *e != '$'; e++)
				continue;
			if (cfg_key_push(&key, &nkey, CFG_KEY_LITERAL, s, (size_t)(e - s)) == -1)
				goto nomem;
			s = e;
			continue;
		}
		for (e = s + 1; cfg_is_varchar(*e); e++)
			continue;
		n = (size_t)(e - s - 1);
		for (i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
			size_t vl = strlen(vars[i].name);

			if (vars[i].prefix ? n > vl && strncmp(s + 1, vars[i].name, vl) == 0
			                   : n == vl && strncmp(s + 1, vars[i].name, vl) == 0)
				break;
		}
		if (i == sizeof(vars) / sizeof(vars[0])) {
			cfg_key_free(key, nkey);
			return cfg_invalid(err, d, tpl, "unknown variable \"%.*s\"", (int)n + 1, s);
		}
		if (!cache && (vars[i].var == CFG_KEY_URL || vars[i].var == CFG_KEY_SCHEME)) {
			cfg_key_free(key, nkey);
			return cfg_invalid(err, d, tpl, "\"%.*s\" is known only in cache_key",
			                   (int)n + 1, s);
		}
		if (vars[i].prefix) {
			size_t vl = strlen(vars[i].name);

			if (cfg_key_push(&key, &nkey, vars[i].var, s + 1 + vl, n - vl) == -1)
				goto nomem;
			if (vars[i].var == CFG_KEY_HTTP)
				for (char *c = key[nkey - 1].text; *c != '\0'; c++)
					if (*c == '_')
						*c = '-';
		} else if (cfg_key_push(&key, &nkey, vars[i].var, NULL, 0) == -1) {
			goto nomem;
		}
		s = e;
	}
	if (nkey == 0) {
		cfg_key_free(key, nkey);
		return cfg_invalid(err, d, tpl, "the %s key must not be empty",
		                   cache ? "cache" : "hash");
	}
	*out = key;
	*nout = nkey;
	return 0;

nomem:
	cfg_key_free(key, nkey);
	return cfg_nomem(err);
}

static int
cfg_ring_cmp(const void *a, const void *b)
{
	const struct cfg_ring_point *x = a, *y = b;

	if (x->hash != y->hash)
		return x->hash < y->hash ? -1 : 1;
	return x->peer < y->peer ? -1 : x->peer > y->peer;
}

/*
 * The ketama ring of `hash ... consistent`: 160 points per unit of weight for every peer,
 * `down` ones included (so that marking one down moves only its own keys), each the hash
 * of "address-index". Returns 0 or -1 (ENOMEM).
 */
#define CFG_RING_POINTS 160

static int
cfg_ring_build(struct cfg_upstream *up)
{
	size_t n = 0, k = 0;

	for (size_t i = 0; i < up->npeers; i++)
		n += (size_t)up->peers[i].weight * CFG_RING_POINTS;
	if ((up->ring = calloc(n, sizeof(*up->ring))) == NULL)
		return -1;
	for (size_t i = 0; i < up->npeers; i++) {
		size_t np = (size_t)up->peers[i].weight * CFG_RING_POINTS;

		for (size_t j = 0; j < np; j++) {
			char buf[96];
			int len = snprintf(buf, sizeof(buf), "%s-%zu", up->peers[i].addr.text, j);

			up->ring[k].hash = cfg_hash(buf, (size_t)len, CFG_HASH_SEED);
			up->ring[k].peer = (uint32_t)i;
			k++;
		}
	}
	qsort(up->ring, n, sizeof(*up->ring), cfg_ring_cmp);
	up->nring = n;
	return 0;
}

/*
 * balance round_robin | least_conn | ip_hash | random [two] | hash KEY [consistent] |
 *         least_time [header|last_byte];
 * and the nginx spellings least_conn; ip_hash; random [two]; hash KEY [consistent];
 * least_time [header|last_byte];
 */
static int
cfg_set_balance(struct cfg_parser *p, const struct cfg_directive *d, char **args, size_t nargs,
                void *conf, char **err)
{
	struct cfg_upstream *up = conf;
	const char *method = d->name;
	enum cfg_balance b;
	size_t i;

	(void)p;
	if (strcmp(d->name, "balance") == 0) {
		method = args[0];
		args++;
		nargs--;
	}
	if (up->balance != CFG_BALANCE_UNSET)
		return cfg_duplicate(err, d);
	if (strcmp(method, "round_robin") == 0)
		b = CFG_BALANCE_ROUND_ROBIN;
	else if (strcmp(method, "least_conn") == 0)
		b = CFG_BALANCE_LEAST_CONN;
	else if (strcmp(method, "ip_hash") == 0)
		b = CFG_BALANCE_IP_HASH;
	else if (strcmp(method, "random") == 0)
		b = CFG_BALANCE_RANDOM;
	else if (strcmp(method, "hash") == 0)
		b = CFG_BALANCE_HASH;
	else if (strcmp(method, "least_time") == 0)
		b = CFG_BALANCE_LEAST_TIME;
	else
		return cfg_invalid(err, d, method, "unknown balancing method");
	/* only hash takes two arguments (after `balance hash`) and needs one */
	if (b == CFG_BALANCE_HASH ? nargs == 0 : nargs > 1) {
		*err = cfg_sprintf("invalid number of arguments in \"%s\" directive", d->name);
		return -1;
	}
	if (b == CFG_BALANCE_HASH) {
		if (nargs == 2) {
			if (strcmp(args[1], "consistent") != 0)
				return cfg_invalid(err, d, args[1],
				                   "hash takes only \"consistent\" after the key");
			b = CFG_BALANCE_HASH_CONSISTENT;
		}
	} else if (nargs > 0) {
		if (b == CFG_BALANCE_LEAST_TIME) {
			if (strcmp(args[0], "last_byte") == 0)
				b = CFG_BALANCE_LEAST_TIME_LAST_BYTE;
			else if (strcmp(args[0], "header") != 0)
				return cfg_invalid(
				        err, d, args[0],
				        "least_time takes only \"header\" or \"last_byte\"");
		} else if (b != CFG_BALANCE_RANDOM) {
			return cfg_invalid(err, d, args[0], "%s takes no argument", method);
		} else if (strcmp(args[0], "two") != 0) {
			return cfg_invalid(err, d, args[0], "random takes only \"two\"");
		} else {
			b = CFG_BALANCE_RANDOM_TWO;
		}
	}
	if (b == CFG_BALANCE_IP_HASH || b == CFG_BALANCE_HASH || b == CFG_BALANCE_HASH_CONSISTENT) {
		for (i = 0; i < up->npeers; i++)
			if (up->peers[i].flags & CFG_PEER_BACKUP)
				return cfg_invalid(err, d, method,
				                   "%s does not support backup servers", method);
	}
	if ((b == CFG_BALANCE_HASH || b == CFG_BALANCE_HASH_CONSISTENT) &&
	    cfg_key_compile(&up->key, &up->nkey, 0, d, args[0], err) == -1)
		return -1;
	up->balance = b;
	return 0;
}

/* A health_check duration parameter: positive, at most an hour. */
static int
cfg_health_duration(const struct cfg_directive *d, const char *a, const char *v, uint32_t *ms,
                    char **err)
{
	char *why = NULL;

	if (cfg_parse_duration(v, ms, &why) == -1) {
		cfg_invalid(err, d, a, "%s", why != NULL ? why : "out of memory");
		free(why);
		return -1;
	}
	if (*ms == 0 || *ms > CFG_HEALTH_MAX_MS)
		return cfg_invalid(err, d, a, "must be between 1ms and 1h");
	return 0;
}

/*
 * health_check [interval=DURATION] [timeout=DURATION] [uri=PATH] [expect=N|N-M] [fails=N]
 *              [passes=N];
 */
static int
cfg_set_health_check(struct cfg_parser *p, const struct cfg_directive *d, char **args, size_t nargs,
                     void *conf, char **err)
{
	struct cfg_upstream *up = conf;
	struct cfg_health hc = {CFG_UNSET_MS, CFG_UNSET_MS, NULL,     CFG_UNSET,
	                        CFG_UNSET,    CFG_UNSET,    CFG_UNSET};
	const char *uri = NULL;
	uint64_t v, w;

	(void)p;
	if (up->hc.interval_ms != 0)
		return cfg_duplicate(err, d);
	for (size_t i = 0; i < nargs; i++) {
		const char *a = args[i], *eq = strchr(a, '=');
		size_t klen = eq != NULL ? (size_t)(eq - a) : strlen(a);
		const char *val = eq != NULL ? eq + 1 : "";

#define CFG_HC_KEY(k) (klen == sizeof(k) - 1 && strncmp(a, k, klen) == 0 && eq != NULL)
		if (CFG_HC_KEY("interval") || CFG_HC_KEY("timeout")) {
			uint32_t *ms = a[0] == 'i' ? &hc.interval_ms : &hc.timeout_ms;

			if (*ms != CFG_UNSET_MS)
				return cfg_invalid(err, d, a, "duplicate parameter");
			if (cfg_health_duration(d, a, val, ms, err) == -1)
				return -1;
		} else if (CFG_HC_KEY("uri")) {
			if (uri != NULL)
				return cfg_invalid(err, d, a, "duplicate parameter");
			if (val[0] != '/')
				return cfg_invalid(err, d, a, "the uri must start with \"/\"");
			for (const char *c = val; *c != '\0'; c++)
				if ((unsigned char)*c <= ' ' || *c == 0x7f)
					return cfg_invalid(err, d, a,
					                   "the uri must not contain spaces or "
					                   "control characters");
			if (strlen(val) > CFG_HEALTH_MAX_URI)
				return cfg_invalid(err, d, a, "the uri is longer than %d bytes",
				                   CFG_HEALTH_MAX_URI);
			uri = val;
		} else if (CFG_HC_KEY("expect")) {
			const char *dash = strchr(val, '-');
			char lo[8];

			if (hc.expect_lo != CFG_UNSET)
				return cfg_invalid(err, d, a, "duplicate parameter");
			if (dash == NULL) {
				if (cfg_parse_uint(val, 999, &v) == -1)
					return cfg_invalid(err, d, a, CFG_HEALTH_BAD_EXPECT);
				w = v;
			} else {
				if ((size_t)(dash - val) >= sizeof(lo))
					return cfg_invalid(err, d, a, CFG_HEALTH_BAD_EXPECT);
				memcpy(lo, val, (size_t)(dash - val));
				lo[dash - val] = '\0';
				if (cfg_parse_uint(lo, 999, &v) == -1 ||
				    cfg_parse_uint(dash + 1, 999, &w) == -1)
					return cfg_invalid(err, d, a, CFG_HEALTH_BAD_EXPECT);
			}
			if (v < 100 || w > 599 || v > w)
				return cfg_invalid(err, d, a, CFG_HEALTH_BAD_EXPECT);
			hc.expect_lo = (int)v;
			hc.expect_hi = (int)w;
		} else if (CFG_HC_KEY("fails") || CFG_HC_KEY("passes")) {
			int *n = a[0] == 'f' ? &hc.fails : &hc.passes;

			if (*n != CFG_UNSET)
				return cfg_invalid(err, d, a, "duplicate parameter");
			if (cfg_parse_uint(val, CFG_HEALTH_MAX_COUNT, &v) == -1 || v < 1)
				return cfg_invalid(err, d, a, "must be between 1 and %d",
				                   CFG_HEALTH_MAX_COUNT);
			*n = (int)v;
		} else {
			return cfg_invalid(err, d, a, "unknown parameter");
		}
#undef CFG_HC_KEY
	}
	if ((hc.uri = strdup(uri != NULL ? uri : CFG_DEF_HEALTH_URI)) == NULL)
		return cfg_nomem(err);
	if (hc.interval_ms == CFG_UNSET_MS)
		hc.interval_ms = CFG_DEF_HEALTH_INTERVAL;
	if (hc.timeout_ms == CFG_UNSET_MS)
		hc.timeout_ms = CFG_DEF_HEALTH_TIMEOUT;
	if (hc.expect_lo == CFG_UNSET) {
		hc.expect_lo = 200;
		hc.expect_hi = 399;
	}
	if (hc.fails == CFG_UNSET)
		hc.fails = CFG_DEF_HEALTH_FAILS;
	if (hc.passes == CFG_UNSET)
		hc.passes = CFG_DEF_HEALTH_PASSES;
	up->hc = hc;
	return 0;
}

static void
cfg_upstream_merge(struct cfg_upstream *up)
{
	if (up->balance == CFG_BALANCE_UNSET)
		up->balance = CFG_BALANCE_ROUND_ROBIN;
	if (up->keepalive == CFG_UNSET)
		up->keepalive = CFG_DEF_UP_KEEPALIVE;
	if (up->keepalive_timeout_ms == CFG_UNSET_MS)
		up->keepalive_timeout_ms = CFG_DEF_UP_KEEPALIVE_TIMEOUT;
	if (up->keepalive_requests == CFG_UNSET)
		up->keepalive_requests = CFG_DEF_UP_KEEPALIVE_REQUESTS;
}

/* upstream NAME { ... } */
static int
cfg_block_upstream(struct cfg_parser *p, const struct cfg_directive *d, char **args, size_t nargs,
                   void *conf, char **err)
{
	struct cfg *cfg = conf;
	struct cfg_upstream *up;
	const char *name = args[0];
	size_t i, idx;
	int line = p->line;

	(void)nargs;
	if (*name == '\0')
		return cfg_invalid(err, d, name, "the name must not be empty");
	for (i = 0; i < cfg->nupstreams; i++) {
		up = &cfg->upstreams[i];
		if (strcmp(up->name, name) == 0) {
			*err = cfg_sprintf("duplicate upstream \"%s\", first defined at %s:%d",
			                   name, up->file, up->line);
			return -1;
		}
	}
	if ((up = cfg_array_grow(cfg->upstreams, cfg->nupstreams, sizeof(*up))) == NULL)
		return cfg_nomem(err);
	cfg->upstreams = up;
	idx = cfg->nupstreams++;
	up = &cfg->upstreams[idx];
	up->file = p->file;
	up->line = line;
	up->keepalive = CFG_UNSET;
	up->keepalive_timeout_ms = CFG_UNSET_MS;
	up->keepalive_requests = CFG_UNSET;
	if ((up->name = strdup(name)) == NULL)
		return cfg_nomem(err);

	if (cfg_parse_block(p, CFG_CTX_UPSTREAM, up, "upstream", line) == -1)
		return -1;
	up = &cfg->upstreams[idx];
	if (up->npeers == 0) {
		*err = cfg_sprintf("upstream \"%s\" has no \"server\"", name);
		return -1;
	}
	for (i = 0; i < up->npeers && (up->peers[i].flags & CFG_PEER_DOWN); i++)
		continue;
	if (i == up->npeers) {
		*err = cfg_sprintf("upstream \"%s\" has no \"server\" that is not \"down\"", name);
		return -1;
	}
	cfg_upstream_merge(up);
	if (up->balance == CFG_BALANCE_HASH_CONSISTENT && cfg_ring_build(up) == -1)
		return cfg_nomem(err);
	return 0;
}

/* ---- server context ---- */

/*
 * proxy_next_upstream error | timeout | invalid_header | http_NNN | non_idempotent ... | off
 * cache_use_stale error | timeout | invalid_header | http_NNN ... | off (the same failures)
 */
static int
cfg_set_next_upstream(struct cfg_parser *p, const struct cfg_directive *d, char **args,
                      size_t nargs, void *conf, char **err)
{
	static const struct {
		const char *name;
		int bit;
	} conds[] = {
	        {"error", CFG_NEXT_ERROR},
	        {"timeout", CFG_NEXT_TIMEOUT},
	        {"invalid_header", CFG_NEXT_INVALID_HEADER},
	        {"http_500", CFG_NEXT_HTTP_500},
	        {"http_502", CFG_NEXT_HTTP_502},
	        {"http_503", CFG_NEXT_HTTP_503},
	        {"http_504", CFG_NEXT_HTTP_504},
	        {"http_403", CFG_NEXT_HTTP_403},
	        {"http_404", CFG_NEXT_HTTP_404},
	        {"http_429", CFG_NEXT_HTTP_429},
	        {"non_idempotent", CFG_NEXT_NON_IDEMPOTENT},
	};
	int *fp = cfg_field(conf, d);
	int bits = 0;

	(void)p;
	if (*fp != CFG_UNSET)
		return cfg_duplicate(err, d);
	for (size_t i = 0; i < nargs; i++) {
		size_t j;

		if (strcmp(args[i], "off") == 0) {
			if (nargs > 1)
				return cfg_invalid(
				        err, d, args[i],
				        "\"off\" cannot be combined with other conditions");
			break;
		}
		for (j = 0; j < sizeof(conds) / sizeof(conds[0]); j++)
			if (strcmp(args[i], conds[j].name) == 0)
				break;
		if (j == sizeof(conds) / sizeof(conds[0]) ||
		    (conds[j].bit == CFG_NEXT_NON_IDEMPOTENT &&
		     strcmp(d->name, "cache_use_stale") == 0))
			return cfg_invalid(err, d, args[i], "unknown condition");
		bits |= conds[j].bit;
	}
	*fp = bits;
	return 0;
}

/* listen ADDR:PORT|PORT|*:PORT|[IPv6]:PORT [backlog=N]; */
static int
cfg_set_listen(struct cfg_parser *p, const struct cfg_directive *d, char **args, size_t nargs,
               void *conf, char **err)
{
	struct cfg_server *srv = conf;
	struct cfg_listen *l;
	struct cfg_addr *addrs = NULL;
	struct cfg *cfg = p->cfg;
	size_t i, j, naddrs;
	uint64_t backlog = CFG_DEF_LISTEN_BACKLOG;
	char *why = NULL;

	int tls = 0;

	for (i = 1; i < nargs; i++) {
		if (strcmp(args[i], "tls") == 0) {
			if (tls)
				return cfg_invalid(err, d, args[i], "duplicate parameter");
			tls = 1;
			continue;
		}
		if (strncmp(args[i], "backlog=", 8) != 0)
			return cfg_invalid(err, d, args[i], "unknown parameter");
		if (cfg_parse_uint(args[i] + 8, 65535, &backlog) == -1 || backlog < 1)
			return cfg_invalid(err, d, args[i], "backlog must be between 1 and 65535");
	}
	if (cfg_addr_parse(args[0], 1, p->flags, &addrs, &naddrs, &why) == -1) {
		cfg_invalid(err, d, args[0], "%s", why != NULL ? why : "out of memory");
		free(why);
		return -1;
	}
	/* a name listens on its first address only */
	for (i = 0; i < cfg->nservers; i++) {
		for (j = 0; j < cfg->servers[i].nlistens; j++) {
			l = &cfg->servers[i].listens[j];
			if (strcmp(l->addr.text, addrs[0].text) == 0) {
				*err = cfg_sprintf("duplicate listen address \"%s\", already used "
				                   "at %s:%d",
				                   addrs[0].text, l->file, l->line);
				free(addrs);
				return -1;
			}
		}
	}
	if ((l = cfg_array_grow(srv->listens, srv->nlistens, sizeof(*l))) == NULL) {
		free(addrs);
		return cfg_nomem(err);
	}
	srv->listens = l;
	l = &srv->listens[srv->nlistens++];
	l->addr = addrs[0];
	l->backlog = (int)backlog;
	l->tls = tls;
	l->file = p->file;
	l->line = p->line;
	free(addrs);
	return 0;
}

/* proxy_pass NAME | http://NAME; checked against the upstreams once all are read. */
static int
cfg_set_proxy_pass(struct cfg_parser *p, const struct cfg_directive *d, char **args, size_t nargs,
                   void *conf, char **err)
{
	struct cfg_pass *pass = &p->pass[(struct cfg_server *)conf - p->cfg->servers];
	const char *name = args[0];

	(void)nargs;
	if (pass->arg != NULL)
		return cfg_duplicate(err, d);
	if (strncmp(name, "http://", 7) == 0)
		name += 7;
	else if (strstr(name, "://") != NULL)
		return cfg_invalid(err, d, args[0], "only \"http://\" is supported");
	if (*name == '\0')
		return cfg_invalid(err, d, args[0], "missing upstream name");
	if (strchr(name, '/') != NULL)
		return cfg_invalid(err, d, args[0], "a URI path is not supported");
	if ((pass->arg = strdup(args[0])) == NULL)
		return cfg_nomem(err);
	pass->name = pass->arg + (name - args[0]);
	pass->file = p->file;
	pass->line = p->line;
	return 0;
}

/* connect_ports PORT|LO-HI ...; */
static int
cfg_set_connect_ports(struct cfg_parser *p, const struct cfg_directive *d, char **args,
                      size_t nargs, void *conf, char **err)
{
	struct cfg_server *srv = conf;
	char *why = NULL;

	(void)p;
	if (srv->connect_ports != NULL)
		return cfg_duplicate(err, d);
	if ((srv->connect_ports = np_ports_parse(args, nargs, &why)) == NULL) {
		cfg_invalid(err, d, args[0], "%s", why != NULL ? why : "out of memory");
		free(why);
		return -1;
	}
	return 0;
}

/* anonymize off | standard | strict; */
static int
cfg_set_anonymize(struct cfg_parser *p, const struct cfg_directive *d, char **args, size_t nargs,
                  void *conf, char **err)
{
	struct cfg_server *srv = conf;
	enum anon_mode mode;

	(void)p, (void)nargs;
	if (srv->anonymize != CFG_UNSET)
		return cfg_duplicate(err, d);
	if (anon_mode_parse(args[0], &mode) == -1)
		return cfg_invalid(err, d, args[0],
		                   "it must be \"off\", \"standard\" or \"strict\"");
	srv->anonymize = (int)mode;
	return 0;
}

/* anonymize_allow NAME ...; (may repeat) */
static int
cfg_set_anonymize_allow(struct cfg_parser *p, const struct cfg_directive *d, char **args,
                        size_t nargs, void *conf, char **err)
{
	struct cfg_server *srv = conf;

	(void)p, (void)d;
	for (size_t i = 0; i < nargs; i++) {
		char **a = cfg_array_grow(srv->anon_allow, srv->nanon_allow, sizeof(*a));

		if (a == NULL)
			return cfg_nomem(err);
		srv->anon_allow = a;
		if ((a[srv->nanon_allow] = strdup(args[i])) == NULL)
			return cfg_nomem(err);
		srv->nanon_allow++;
	}
	return 0;
}

/*
 * auth basic realm=NAME file PATH; also `realm NAME` and `file=PATH`. The users file is
 * read now: an unreadable or malformed file is a configuration error.
 */
static int
cfg_set_auth(struct cfg_parser *p, const struct cfg_directive *d, char **args, size_t nargs,
             void *conf, char **err)
{
	struct cfg_server *srv = conf;
	const char *realm = NULL, *file = NULL;
	char *why = NULL, joined[256];

	(void)p;
	if (srv->auth_realm != NULL)
		return cfg_duplicate(err, d);
	if (strcmp(args[0], "basic") != 0)
		return cfg_invalid(err, d, args[0], "only \"basic\" is supported");
	for (size_t i = 1; i < nargs; i++) {
		const char **slot = NULL;
		const char *v = NULL;

		if (strncmp(args[i], "realm=", 6) == 0)
			slot = &realm, v = args[i] + 6;
		else if (strncmp(args[i], "file=", 5) == 0)
			slot = &file, v = args[i] + 5;
		else if (strcmp(args[i], "realm") == 0 && i + 1 < nargs)
			slot = &realm, v = args[++i];
		else if (strcmp(args[i], "file") == 0 && i + 1 < nargs)
			slot = &file, v = args[++i];
		else
			return cfg_invalid(err, d, args[i], "expected realm=NAME or file PATH");
		if (*slot != NULL)
			return cfg_invalid(err, d, args[i], "duplicate parameter");
		if (slot == &realm && v[0] == '"') {
			/* realm="Office proxy" arrives as words: join them up to the closing quote
			 */
			size_t n = 0;

			for (v++;; v = args[++i]) {
				size_t l = strlen(v);
				int last = l > 0 && v[l - 1] == '"';

				if (last)
					l--;
				if (n + l + 2 > sizeof(joined))
					return cfg_invalid(err, d, args[i], "realm is too long");
				if (n > 0)
					joined[n++] = ' ';
				memcpy(joined + n, v, l);
				n += l;
				if (last)
					break;
				if (i + 1 == nargs)
					return cfg_invalid(err, d, args[i],
					                   "realm has no closing quote");
			}
			joined[n] = '\0';
			v = joined;
		}
		*slot = v;
	}
	if (realm == NULL || file == NULL || *realm == '\0')
		return cfg_invalid(err, d, args[0], "auth basic needs a realm and a file");
	char challenge[512];
	if (auth_challenge(realm, challenge, sizeof(challenge)) < 0)
		return cfg_invalid(err, d, realm, "realm is too long or holds a control byte");
	if ((srv->auth_db = auth_db_load(file, &why)) == NULL) {
		*err = cfg_sprintf("%s", why != NULL ? why : "out of memory");
		free(why);
		return -1;
	}
	if ((srv->auth_realm = strdup(realm)) == NULL ||
	    (srv->auth_cache = auth_cache_new(0, 0)) == NULL)
		return cfg_nomem(err);
	return 0;
}

static void
cfg_rules_log(void *arg, const char *msg)
{
	(void)arg;
	log_warnx("rules: %s", msg);
}

/* The rules context of the generation, made on first use. */
static struct rules_ctx *
cfg_rules(struct cfg_parser *p)
{
	if (p->cfg->rules == NULL && (p->cfg->rules = rules_ctx_new()) != NULL)
		rules_set_log_fn(p->cfg->rules, cfg_rules_log, NULL);
	return p->cfg->rules;
}

/* Words [from, from + n) of the current statement's arguments as rule tokens. */
static struct rules_tok *
cfg_rule_toks(struct cfg_parser *p, char **args, size_t from, size_t n)
{
	struct rules_tok *t = calloc(n > 0 ? n : 1, sizeof(*t));

	if (t == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		size_t k = from + i + 1; /* p->cur->v[0] is the directive name */

		t[i].s = args[from + i];
		t[i].quoted = p->cur->quoted[k];
		t[i].line = p->cur->lines[k];
		t[i].col = p->cur->cols[k];
	}
	return t;
}

/* A rules error is "file:line:column: reason" already: it becomes the load error as is. */
static int
cfg_rules_error(struct cfg_parser *p, char *why, char **err)
{
	if (why == NULL)
		return cfg_nomem(err);
	if (p->err == NULL)
		p->err = why;
	else
		free(why);
	return -1;
}

/* set NAME KIND file PATH;  set NAME KIND WORD ...; */
static int
cfg_set_set(struct cfg_parser *p, const struct cfg_directive *d, char **args, size_t nargs,
            void *conf, char **err)
{
	struct rules_ctx *ctx = cfg_rules(p);
	enum rules_set_kind kind;
	char *why = NULL;
	int rc;

	(void)conf;
	if (ctx == NULL)
		return cfg_nomem(err);
	if (rules_set_kind_parse(args[1], &kind) == -1)
		return cfg_invalid(err, d, args[1],
		                   "the kind must be domains, cidrs, regexes, users or dates");
	if (strcmp(args[2], "file") == 0 && !p->cur->quoted[3]) {
		if (nargs != 4)
			return cfg_invalid(err, d, args[2], "\"file\" takes one path");
		rc = rules_set_load(ctx, kind, args[0], args[3], &why);
		/*
		 * "PATH:LINE: reason" points into the set file; "PATH: reason" (cannot
		 * open it, the set exists already) has no line: it gets this directive's.
		 */
		size_t plen = strlen(args[3]);
		if (rc == -1 && why != NULL && strncmp(why, args[3], plen) == 0 &&
		    strncmp(why + plen, ": ", 2) == 0) {
			cfg_invalid(err, d, args[3], "%s", why + plen + 2);
			free(why);
			return -1;
		}
	} else {
		struct rules_tok *t = cfg_rule_toks(p, args, 2, nargs - 2);

		if (t == NULL)
			return cfg_nomem(err);
		rc = rules_set_define(ctx, kind, args[0], p->file, t, nargs - 2, &why);
		free(t);
	}
	if (rc == -1)
		return cfg_rules_error(p, why, err);
	return 0;
}

/* allow|deny [STATUS] [id=NAME] RULE; in order, first match wins (acl.h). */
static int
cfg_set_acl(struct cfg_parser *p, const struct cfg_directive *d, char **args, size_t nargs,
            void *conf, char **err)
{
	struct cfg_server *srv = conf;
	struct rules_ctx *ctx = cfg_rules(p);
	int allow = d->name[0] == 'a', status = 403;
	const char *id = NULL;
	size_t i = 0;
	char *why = NULL;
	uint64_t v;

	if (ctx == NULL)
		return cfg_nomem(err);
	if (!p->cur->quoted[1] && args[0][0] >= '0' && args[0][0] <= '9') {
		if (allow)
			return cfg_invalid(err, d, args[0], "allow takes no status");
		if (cfg_parse_uint(args[0], 599, &v) == -1 || v < 400)
			return cfg_invalid(err, d, args[0], "the status must be 400..599");
		status = (int)v;
		i++;
	}
	if (i < nargs && strncmp(args[i], "id=", 3) == 0 && !p->cur->quoted[i + 1]) {
		id = args[i] + 3;
		if (*id == '\0')
			return cfg_invalid(err, d, args[i], "empty id");
		i++;
	}
	if (i == nargs)
		return cfg_invalid(err, d, args[nargs - 1],
		                   "a rule is missing (\"all\" matches every request)");
	struct rules_tok *t = cfg_rule_toks(p, args, i, nargs - i);
	if (t == NULL)
		return cfg_nomem(err);
	struct rules_rule *rule = rules_compile(ctx, p->file, t, nargs - i, &why);
	free(t);
	if (rule == NULL)
		return cfg_rules_error(p, why, err);
	if (srv->acl == NULL && (srv->acl = acl_new(0)) == NULL) {
		rules_rule_free(rule);
		return cfg_nomem(err);
	}
	if (acl_add(srv->acl, allow, status, id, p->file, p->line, rule, &why) == -1) {
		*err = why != NULL ? why : cfg_sprintf("out of memory");
		return -1;
	}
	return 0;
}

/* deny_page FILE; read now (at most 64k); $rule $client $url $id substituted per request */
static int
cfg_set_deny_page(struct cfg_parser *p, const struct cfg_directive *d, char **args, size_t nargs,
                  void *conf, char **err)
{
	struct cfg_server *srv = conf;
	char *buf = NULL;
	size_t len = 0;
	int fd;

	(void)p, (void)nargs;
	if (srv->deny_page != NULL)
		return cfg_duplicate(err, d);
	if ((fd = open(args[0], O_RDONLY | O_CLOEXEC)) == -1 ||
	    cfg_read_all(fd, &buf, &len) == -1) {
		*err = cfg_sprintf("cannot read deny_page \"%s\": %s", args[0], strerror(errno));
		if (fd != -1)
			close(fd);
		return -1;
	}
	close(fd);
	if (len > 65536) {
		free(buf);
		return cfg_invalid(err, d, args[0], "the page is larger than 64k");
	}
	char *page = realloc(buf, len + 1);
	if (page == NULL) {
		free(buf);
		return cfg_nomem(err);
	}
	page[len] = '\0';
	srv->deny_page = page;
	return 0;
}

/* return CODE [URL|TEXT]; every request of the server gets this response. */
static int
cfg_set_return(struct cfg_parser *p, const struct cfg_directive *d, char **args, size_t nargs,
               void *conf, char **err)
{
	struct cfg_server *srv = conf;
	uint64_t v;

	(void)p;
	if (srv->ret_code != 0)
		return cfg_duplicate(err, d);
	if (cfg_parse_uint(args[0], 599, &v) == -1 || v < 200)
		return cfg_invalid(err, d, args[0], "the status must be 200..599");
	int redirect = v == 301 || v == 302 || v == 303 || v == 307 || v == 308;
	if (redirect && nargs < 2)
		return cfg_invalid(err, d, args[0], "a redirect needs a URL");
	for (const char *c = nargs > 1 ? args[1] : ""; *c != '\0'; c++)
		if ((unsigned char)*c < 0x20 && *c != '\t')
			return cfg_invalid(err, d, args[1], "control characters are not allowed");
	srv->ret_code = (int)v;
	if (nargs > 1 && (srv->ret_text = strdup(args[1])) == NULL)
		return cfg_nomem(err);
	return 0;
}

/* add_header NAME VALUE [always]; */
static int
cfg_set_add_header(struct cfg_parser *p, const struct cfg_directive *d, char **args, size_t nargs,
                   void *conf, char **err)
{
	struct cfg_server *srv = conf;
	struct cfg_add_header *h;

	(void)p;
	if (args[0][0] == '\0' ||
	    strspn(args[0], "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	                    "0123456789!#$%&'*+-.^_`|~") != strlen(args[0]))
		return cfg_invalid(err, d, args[0], "not a field name");
	for (const char *c = args[1]; *c != '\0'; c++)
		if (((unsigned char)*c < 0x20 && *c != '\t') || *c == 0x7f)
			return cfg_invalid(err, d, args[1], "control characters are not allowed");
	if (nargs == 3 && strcmp(args[2], "always") != 0)
		return cfg_invalid(err, d, args[2], "expected \"always\"");
	if ((h = cfg_array_grow(srv->add_headers, srv->nadd_headers, sizeof(*h))) == NULL)
		return cfg_nomem(err);
	srv->add_headers = h;
	h = &h[srv->nadd_headers];
	memset(h, 0, sizeof(*h));
	if ((h->name = strdup(args[0])) == NULL || (h->value = strdup(args[1])) == NULL) {
		free(h->name);
		return cfg_nomem(err);
	}
	h->always = nargs == 3;
	srv->nadd_headers++;
	return 0;
}

/* tls_certificate FILE; starts a certificate; tls_certificate_key and tls_ocsp_response
 * apply to the last one. */
static int
cfg_set_tls_file(struct cfg_parser *p, const struct cfg_directive *d, char **args, size_t nargs,
                 void *conf, char **err)
{
	struct cfg_server *srv = conf;
	struct tls_cert_conf *c;
	char *path;

	(void)p, (void)nargs;
	if (strcmp(d->name, "tls_certificate") == 0) {
		if ((c = cfg_array_grow(srv->tls_certs, srv->ntls_certs, sizeof(*c))) == NULL)
			return cfg_nomem(err);
		srv->tls_certs = c;
		memset(&c[srv->ntls_certs], 0, sizeof(*c));
		if ((path = strdup(args[0])) == NULL)
			return cfg_nomem(err);
		c[srv->ntls_certs++].cert_file = path;
		return 0;
	}
	if (srv->ntls_certs == 0)
		return cfg_invalid(err, d, args[0], "it must follow a \"tls_certificate\"");
	c = &srv->tls_certs[srv->ntls_certs - 1];
	const char **slot =
	        strcmp(d->name, "tls_certificate_key") == 0 ? &c->key_file : &c->ocsp_file;
	if (*slot != NULL)
		return cfg_invalid(err, d, args[0], "the certificate already has one");
	if ((path = strdup(args[0])) == NULL)
		return cfg_nomem(err);
	*slot = path;
	return 0;
}

/* tls_protocols TLSv1.2 TLSv1.3; */
static int
cfg_set_tls_protocols(struct cfg_parser *p, const struct cfg_directive *d, char **args,
                      size_t nargs, void *conf, char **err)
{
	struct cfg_server *srv = conf;
	char *why = NULL;

	(void)p;
	if (srv->tls_protocols != 0)
		return cfg_duplicate(err, d);
	if (tls_protocols_parse(args, nargs, &srv->tls_protocols, &why) == -1) {
		cfg_invalid(err, d, args[0], "%s", why != NULL ? why : "out of memory");
		free(why);
		return -1;
	}
	return 0;
}

/* tls_session_cache off | N; */
static int
cfg_set_tls_session_cache(struct cfg_parser *p, const struct cfg_directive *d, char **args,
                          size_t nargs, void *conf, char **err)
{
	struct cfg_server *srv = conf;
	uint64_t v;

	(void)p, (void)nargs;
	if (srv->tls_session_cache != CFG_UNSET)
		return cfg_duplicate(err, d);
	if (strcmp(args[0], "off") == 0)
		v = 0;
	else if (cfg_parse_uint(args[0], 10000000, &v) == -1 || v == 0)
		return cfg_invalid(err, d, args[0], "a number of sessions, or \"off\"");
	srv->tls_session_cache = (int)v;
	return 0;
}

/* The TLS context of srv (when a listen has `tls`), from prev's same listener if any. */
static int
cfg_server_tls(struct cfg_parser *p, struct cfg_server *srv, char **err)
{
	const struct tls_server *prev = NULL;
	struct tls_server_conf tc;
	char *why = NULL;
	int any = 0;

	for (size_t i = 0; i < srv->nlistens; i++)
		any |= srv->listens[i].tls;
	if (!any) {
		if (srv->ntls_certs > 0) {
			*err = cfg_sprintf("\"tls_certificate\" without a \"listen ... tls\"");
			return -1;
		}
		return 0;
	}
	if (srv->ntls_certs == 0) {
		*err = cfg_sprintf("\"listen ... tls\" needs a \"tls_certificate\"");
		return -1;
	}
	for (size_t i = 0; i < srv->ntls_certs; i++) {
		if (srv->tls_certs[i].key_file == NULL) {
			*err = cfg_sprintf("tls_certificate \"%s\" has no \"tls_certificate_key\"",
			                   srv->tls_certs[i].cert_file);
			return -1;
		}
	}
	/* a reload continues the ticket keys of the server on the same address */
	for (size_t i = 0; p->prev != NULL && prev == NULL && i < p->prev->nservers; i++) {
		const struct cfg_server *ps = &p->prev->servers[i];

		for (size_t j = 0; ps->tls != NULL && j < ps->nlistens; j++)
			for (size_t k = 0; k < srv->nlistens; k++)
				if (strcmp(ps->listens[j].addr.text, srv->listens[k].addr.text) ==
				    0)
					prev = ps->tls;
	}
	tls_server_conf_init(&tc);
	tc.certs = srv->tls_certs;
	tc.ncerts = srv->ntls_certs;
	if (srv->tls_protocols != 0)
		tc.protocols = srv->tls_protocols;
	if (srv->tls_ciphers != NULL)
		tc.ciphers = srv->tls_ciphers;
	if (srv->tls_ciphersuites != NULL)
		tc.ciphersuites = srv->tls_ciphersuites;
	if (srv->tls_session_cache != CFG_UNSET)
		tc.session_cache_size = (size_t)srv->tls_session_cache;
	if (srv->tls_session_timeout_ms != CFG_UNSET_MS)
		tc.session_timeout_s = (srv->tls_session_timeout_ms + 999) / 1000;
	if (srv->tls_session_tickets != CFG_UNSET)
		tc.tickets = srv->tls_session_tickets;
	if ((srv->tls = tls_server_new(&tc, prev, &why)) == NULL) {
		*err = why != NULL ? why : cfg_sprintf("out of memory");
		return -1;
	}
	if (tls_server_note(srv->tls) != NULL)
		log_notice("%s", tls_server_note(srv->tls));
	return 0;
}

/* ---- caches: one open store per directory for the whole process ---- */

struct cfg_store_ref {
	char *path;
	struct cache_store *store;
	int refs;
	struct cfg_store_ref *next;
};
static struct cfg_store_ref *cfg_stores;
static pthread_mutex_t cfg_stores_lock = PTHREAD_MUTEX_INITIALIZER;

/*
 * Files and `user`. Loaded as root with a user to switch to, a load gives the files it
 * creates (access logs, a cache's data.mdb and lock.mdb; main.c does the error log) to the
 * user, so that the daemon can reopen them after the switch. Only files it creates: one
 * that existed may be a link that whoever may write the directory planted to a file of
 * root's, which a chown would hand over. An existing file the user could not write is
 * warned about instead (also by `proxyd -t`).
 */
static int
cfg_gives_files(const struct cfg *cfg)
{
	return cfg->user != NULL && cfg->user_uid != (uid_t)-1 && geteuid() == 0;
}

/* Whether the user, after the switch (its group its only group), may write a file like sb. */
static int
cfg_user_may_write(const struct cfg *cfg, const struct stat *sb)
{
	if (sb->st_uid == cfg->user_uid)
		return (sb->st_mode & S_IWUSR) != 0;
	if (sb->st_gid == cfg->user_gid)
		return (sb->st_mode & S_IWGRP) != 0;
	return (sb->st_mode & S_IWOTH) != 0;
}

/* The warning for an existing file the user could not write (file NULL: no line). */
static void
cfg_owner_check(const struct cfg *cfg, const char *file, int line, const char *what,
                const char *path)
{
	struct stat sb;

	if (!cfg_gives_files(cfg) || stat(path, &sb) == -1 || cfg_user_may_write(cfg, &sb))
		return;
	if (file != NULL)
		log_warnx("%s:%d: %s %s (uid %lu, mode %03o) is not writable by user \"%s\": it "
		          "cannot be reopened after the switch",
		          file, line, what, path, (unsigned long)sb.st_uid,
		          (unsigned)(sb.st_mode & 0777), cfg->user);
	else
		log_warnx("%s %s (uid %lu, mode %03o) is not writable by user \"%s\": it cannot "
		          "be reopened after the switch",
		          what, path, (unsigned long)sb.st_uid, (unsigned)(sb.st_mode & 0777),
		          cfg->user);
}

/* Give a file this load created to the user (a failure is a warning: the reopen may fail). */
static void
cfg_give(const struct cfg *cfg, int fd, const char *what, const char *path)
{
	if (cfg_gives_files(cfg) && fchown(fd, cfg->user_uid, cfg->user_gid) == -1)
		log_warn("cannot give %s %s to user \"%s\"", what, path, cfg->user);
}

/*
 * The access logs this load created, given once the whole file is read (`user` may come
 * after them); also when the load fails, if `user` came before the error, so that a start
 * that failed leaves no root-owned log behind.
 */
static void
cfg_give_logs(const struct cfg *cfg)
{
	for (size_t i = 0; i < cfg->nservers; i++) {
		const struct cfg_log *log = &cfg->servers[i].access_log;

		if (log->created && log->fd >= 0)
			cfg_give(cfg, log->fd, "access log", log->path);
	}
}

/*
 * Before LMDB opens a store as root: its data.mdb and lock.mdb, created here (O_EXCL: never
 * through a link) when missing and given to the user; LMDB takes an empty file for a new
 * environment. Errors are left to cache_store_open(), which reports them.
 */
static void
cfg_store_give(const struct cfg *cfg, const struct cfg_cache *c)
{
	static const char *const files[] = {"data.mdb", "lock.mdb"};
	char f[PATH_MAX];
	int fd;

	if (!cfg_gives_files(cfg))
		return;
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		if (snprintf(f, sizeof(f), "%s/%s", c->path, files[i]) >= (int)sizeof(f))
			return;
		fd = open(f, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, 0640);
		if (fd == -1) {
			if (errno == EEXIST)
				cfg_owner_check(cfg, c->file, c->line, "cache file", f);
			continue;
		}
		cfg_give(cfg, fd, "cache file", f);
		close(fd);
	}
}

/*
 * The store of directory path, opened once per process and shared by the generations that
 * name it (a reload reuses it; max_size is that of the first opening), unless a fault on
 * its map broke it: then the path is opened again. NULL when it cannot be opened: logged,
 * and the server runs uncached.
 */
/* What a store has to say (a full disk, failing writes; a fault on its map, from any thread). */
static void
cfg_store_log(void *arg, const char *msg)
{
	(void)arg;
	log_warnx("cache %s", msg);
}

static struct cache_store *
cfg_store_get(const struct cfg *cfg, const struct cfg_cache *c)
{
	struct cfg_store_ref *r;
	struct cache_store_params sp;
	char *why = NULL;

	pthread_mutex_lock(&cfg_stores_lock);
	for (r = cfg_stores; r != NULL; r = r->next) {
		/* a store broken by a fault (a file cut short) is not shared: reopen the path */
		if (strcmp(r->path, c->path) == 0 && !cache_store_broken(r->store)) {
			r->refs++;
			pthread_mutex_unlock(&cfg_stores_lock);
			return r->store;
		}
	}
	cfg_store_give(cfg, c);
	memset(&sp, 0, sizeof(sp));
	sp.path = c->path;
	sp.max_size = c->max_size;
	sp.max_object_size = c->max_object_size;
	sp.log = cfg_store_log;
#ifdef PROXYD_TEST_HOOKS
	/* a map smaller than max_size, so that tests can make LMDB hit MDB_MAP_FULL */
	const char *map = getenv("PROXYD_TEST_CACHE_MAP_SIZE");
	if (map != NULL)
		sp.map_size = strtoull(map, NULL, 10);
#endif
	struct cache_store *st = cache_store_open(&sp, &why);
	if (st == NULL) {
		pthread_mutex_unlock(&cfg_stores_lock);
		log_warnx("%s:%d: cache \"%s\": %s; serving uncached", c->file, c->line, c->name,
		          why != NULL ? why : "cannot open");
		free(why);
		return NULL;
	}
	if ((r = calloc(1, sizeof(*r))) == NULL || (r->path = strdup(c->path)) == NULL) {
		free(r);
		pthread_mutex_unlock(&cfg_stores_lock);
		cache_store_close(st);
		return NULL;
	}
	r->store = st;
	r->refs = 1;
	r->next = cfg_stores;
	cfg_stores = r;
	pthread_mutex_unlock(&cfg_stores_lock);
	return st;
}

/*
 * CFG_LOAD_CHECK: what cache_store_open() needs, checked without opening the store (which
 * would create data.mdb and lock.mdb): a directory we may read, write and search, and its
 * files, where they exist, readable and writable. Reported as cfg_store_get() reports a
 * store it cannot open: a warning, since the daemon then serves uncached.
 */
static void
cfg_store_check(const struct cfg *cfg, const struct cfg_cache *c)
{
	static const char *const files[] = {"data.mdb", "lock.mdb"};
	char f[PATH_MAX];
	struct stat sb;
	const char *bad = c->path;
	int e = 0;

	if (stat(c->path, &sb) == -1)
		e = errno;
	else if (!S_ISDIR(sb.st_mode))
		e = ENOTDIR;
	else if (faccessat(AT_FDCWD, c->path, R_OK | W_OK | X_OK, AT_EACCESS) == -1)
		e = errno;
	for (size_t i = 0; e == 0 && i < sizeof(files) / sizeof(files[0]); i++) {
		if (snprintf(f, sizeof(f), "%s/%s", c->path, files[i]) >= (int)sizeof(f)) {
			e = ENAMETOOLONG;
		} else if (faccessat(AT_FDCWD, f, R_OK | W_OK, AT_EACCESS) == -1 &&
		           errno != ENOENT) {
			e = errno;
			bad = f;
		}
	}
	if (e != 0) {
		log_warnx("%s:%d: cache \"%s\": %s: %s; serving uncached", c->file, c->line,
		          c->name, bad, strerror(e));
		return;
	}
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(f, sizeof(f), "%s/%s", c->path, files[i]);
		cfg_owner_check(cfg, c->file, c->line, "cache file", f);
	}
}

static void
cfg_store_put(struct cache_store *st)
{
	struct cfg_store_ref **pp, *r;

	if (st == NULL)
		return;
	pthread_mutex_lock(&cfg_stores_lock);
	for (pp = &cfg_stores; (r = *pp) != NULL; pp = &r->next) {
		if (r->store != st)
			continue;
		if (--r->refs == 0) {
			*pp = r->next;
			pthread_mutex_unlock(&cfg_stores_lock);
			cache_store_close(r->store);
			free(r->path);
			free(r);
			return;
		}
		break;
	}
	pthread_mutex_unlock(&cfg_stores_lock);
}

/* limit_req_zone NAME key=K rate=R [size=N]; limit_conn_zone NAME key=K [size=N]; */
static int
cfg_set_limit_zone(struct cfg_parser *p, const struct cfg_directive *d, char **args, size_t nargs,
                   void *conf, char **err)
{
	struct cfg *cfg = conf;
	enum limit_kind kind = strcmp(d->name, "limit_req_zone") == 0 ? LIMIT_REQ : LIMIT_CONN;
	struct cfg_limit_zone *z;
	struct limit_def def;
	char *why = NULL;

	for (size_t i = 0; i < cfg->nlimit_zones; i++)
		if (strcmp(cfg->limit_zones[i].name, args[0]) == 0) {
			*err = cfg_sprintf("duplicate zone \"%s\", first defined at %s:%d", args[0],
			                   cfg->limit_zones[i].file, cfg->limit_zones[i].line);
			return -1;
		}
	if (limit_def_parse(kind, args + 1, nargs - 1, &def, &why) == -1) {
		cfg_invalid(err, d, args[0], "%s", why != NULL ? why : "out of memory");
		free(why);
		return -1;
	}
	if ((z = cfg_array_grow(cfg->limit_zones, cfg->nlimit_zones, sizeof(*z))) == NULL)
		return cfg_nomem(err);
	cfg->limit_zones = z;
	z = &z[cfg->nlimit_zones];
	if ((z->name = strdup(args[0])) == NULL)
		return cfg_nomem(err);
	cfg->nlimit_zones++;
	z->def = def;
	z->file = p->file;
	z->line = p->line;
	return 0;
}

/* limit_req ZONE [burst=N] [nodelay]; limit_conn ZONE N; (zones resolved at the end) */
static int
cfg_set_limit(struct cfg_parser *p, const struct cfg_directive *d, char **args, size_t nargs,
              void *conf, char **err)
{
	struct cfg_server *srv = conf;
	struct cfg_limit l, *nl;
	size_t same = 0;
	char *why = NULL;
	int r;

	memset(&l, 0, sizeof(l));
	l.kind = strcmp(d->name, "limit_req") == 0 ? LIMIT_REQ : LIMIT_CONN;
	if (l.kind == LIMIT_REQ)
		r = limit_req_parse(args + 1, nargs - 1, &l.burst, &why);
	else
		r = limit_conn_parse(args[1], &l.max, &why);
	if (r == -1) {
		cfg_invalid(err, d, args[0], "%s", why != NULL ? why : "out of memory");
		free(why);
		return -1;
	}
	for (size_t i = 0; i < srv->nlimits; i++) {
		if (strcmp(srv->limits[i].zone_name, args[0]) == 0)
			return cfg_invalid(err, d, args[0],
			                   "zone already limits this server at %s:%d",
			                   srv->limits[i].file, srv->limits[i].line);
		same += srv->limits[i].kind == l.kind;
	}
	if (same >= CFG_MAX_LIMITS)
		return cfg_invalid(err, d, args[0], "at most %d per server", CFG_MAX_LIMITS);
	if ((nl = cfg_array_grow(srv->limits, srv->nlimits, sizeof(*nl))) == NULL)
		return cfg_nomem(err);
	srv->limits = nl;
	if ((l.zone_name = strdup(args[0])) == NULL)
		return cfg_nomem(err);
	l.file = p->file;
	l.line = p->line;
	nl[srv->nlimits++] = l;
	return 0;
}

/*
 * The zones of a loaded file: each is the previous generation's when its definition is
 * unchanged (its counts survive the reload), else a new one; then every server's
 * limit_req and limit_conn find theirs.
 */
static int
cfg_limits_resolve(struct cfg_parser *p)
{
	struct cfg *cfg = p->cfg;
	char *why = NULL;

	for (size_t i = 0; i < cfg->nlimit_zones; i++) {
		struct cfg_limit_zone *z = &cfg->limit_zones[i];

		for (size_t j = 0; p->prev != NULL && j < p->prev->nlimit_zones; j++) {
			struct limit_zone *old = p->prev->limit_zones[j].zone;

			if (old != NULL && limit_zone_same(old, z->name, &z->def)) {
				z->zone = limit_zone_ref(old);
				break;
			}
		}
		if (z->zone == NULL && (z->zone = limit_zone_new(z->name, &z->def, &why)) == NULL) {
			cfg_error(p, z->file, z->line, "%s", why != NULL ? why : "out of memory");
			free(why);
			return -1;
		}
	}
	for (size_t i = 0; i < cfg->nservers; i++) {
		struct cfg_server *srv = &cfg->servers[i];

		for (size_t k = 0; k < srv->nlimits; k++) {
			struct cfg_limit *l = &srv->limits[k];
			const char *want =
			        l->kind == LIMIT_REQ ? "limit_req_zone" : "limit_conn_zone";

			for (size_t j = 0; j < cfg->nlimit_zones && l->zone == NULL; j++) {
				struct cfg_limit_zone *z = &cfg->limit_zones[j];

				if (strcmp(z->name, l->zone_name) != 0)
					continue;
				if (z->def.kind != l->kind) {
					cfg_error(p, l->file, l->line,
					          "zone \"%s\" is not a %s (defined at %s:%d)",
					          l->zone_name, want, z->file, z->line);
					return -1;
				}
				l->zone = z->zone;
			}
			if (l->zone == NULL) {
				cfg_error(p, l->file, l->line, "no %s named \"%s\"", want,
				          l->zone_name);
				return -1;
			}
		}
	}
	return 0;
}

/* cache NAME { path DIR; max_size SIZE; max_object_size SIZE; } */
static int
cfg_block_cache(struct cfg_parser *p, const struct cfg_directive *d, char **args, size_t nargs,
                void *conf, char **err)
{
	struct cfg *cfg = conf;
	struct cfg_cache *c;
	int line = p->line;

	(void)d, (void)nargs;
	for (size_t i = 0; i < cfg->ncaches; i++)
		if (strcmp(cfg->caches[i].name, args[0]) == 0) {
			*err = cfg_sprintf("duplicate cache \"%s\", first defined at %s:%d",
			                   args[0], cfg->caches[i].file, cfg->caches[i].line);
			return -1;
		}
	if ((c = cfg_array_grow(cfg->caches, cfg->ncaches, sizeof(*c))) == NULL)
		return cfg_nomem(err);
	cfg->caches = c;
	c = &c[cfg->ncaches++];
	memset(c, 0, sizeof(*c));
	c->file = p->file;
	c->line = line;
	c->max_size = CFG_UNSET_SIZE64;
	c->max_object_size = CFG_UNSET_SIZE64;
	if ((c->name = strdup(args[0])) == NULL)
		return cfg_nomem(err);
	if (cfg_parse_block(p, CFG_CTX_CACHE, c, "cache", line) == -1)
		return -1;
	c = &cfg->caches[cfg->ncaches - 1];
	if (c->path == NULL) {
		*err = cfg_sprintf("cache \"%s\" has no \"path\"", c->name);
		return -1;
	}
	if (c->max_size == CFG_UNSET_SIZE64)
		c->max_size = CFG_DEF_CACHE_MAX_SIZE;
	if (c->max_object_size == CFG_UNSET_SIZE64)
		c->max_object_size = c->max_size / 8;
	return 0;
}

/* cache NAME | off; in a server (the block of the same name is main's) */
static int
cfg_set_server_cache(struct cfg_parser *p, const struct cfg_directive *d, char **args, size_t nargs,
                     void *conf, char **err)
{
	struct cfg_server *srv = conf;

	(void)nargs;
	if (srv->cache_name != NULL)
		return cfg_duplicate(err, d);
	if ((srv->cache_name = strdup(args[0])) == NULL)
		return cfg_nomem(err);
	srv->cache_file = p->file;
	srv->cache_line = p->line;
	return 0;
}

/* cache_key TEMPLATE; (once) */
static int
cfg_set_cache_key(struct cfg_parser *p, const struct cfg_directive *d, char **args, size_t nargs,
                  void *conf, char **err)
{
	struct cfg_server *srv = conf;

	(void)p;
	(void)nargs;
	if (srv->cache_key != NULL)
		return cfg_invalid(err, d, args[0], "cache_key is already set");
	return cfg_key_compile(&srv->cache_key, &srv->ncache_key, 1, d, args[0], err);
}

/* cache_heuristic off | PERCENT% [max=DURATION]; */
static int
cfg_set_cache_heuristic(struct cfg_parser *p, const struct cfg_directive *d, char **args,
                        size_t nargs, void *conf, char **err)
{
	struct cfg_server *srv = conf;
	uint64_t pct = 0;
	uint32_t ms;
	size_t n = strlen(args[0]);
	char *why = NULL;

	(void)p;
	if (srv->cache_heuristic != CFG_UNSET)
		return cfg_duplicate(err, d);
	if (strcmp(args[0], "off") == 0) {
		if (nargs > 1)
			return cfg_invalid(err, d, args[1], "\"off\" takes nothing more");
		srv->cache_heuristic = 0;
		return 0;
	}
	if (n < 2 || args[0][n - 1] != '%')
		return cfg_invalid(err, d, args[0], "a percentage such as 10%% or \"off\"");
	args[0][n - 1] = '\0';
	int bad = cfg_parse_uint(args[0], 100, &pct) == -1 || pct == 0;
	args[0][n - 1] = '%';
	if (bad)
		return cfg_invalid(err, d, args[0], "a percentage from 1%% to 100%%");
	srv->cache_heuristic = (int)pct;
	if (nargs > 1) {
		if (strncmp(args[1], "max=", 4) != 0)
			return cfg_invalid(err, d, args[1], "only \"max=DURATION\" may follow");
		if (cfg_parse_duration(args[1] + 4, &ms, &why) == -1 || ms < 1000) {
			free(why);
			return cfg_invalid(err, d, args[1],
			                   "max= takes a duration of a second or more");
		}
		srv->cache_heuristic_max_s = ms / 1000;
	}
	return 0;
}

/* cache_bypass RULE;  no_cache RULE; (may repeat; any matching rule applies) */
static int
cfg_set_cache_rule(struct cfg_parser *p, const struct cfg_directive *d, char **args, size_t nargs,
                   void *conf, char **err)
{
	struct cfg_server *srv = conf;
	struct rules_ctx *ctx = cfg_rules(p);
	int bypass = strcmp(d->name, "cache_bypass") == 0;
	struct rules_rule ***list = bypass ? &srv->cache_bypass : &srv->no_cache;
	size_t *n = bypass ? &srv->ncache_bypass : &srv->nno_cache;
	char *why = NULL;

	if (ctx == NULL)
		return cfg_nomem(err);
	struct rules_tok *t = cfg_rule_toks(p, args, 0, nargs);
	if (t == NULL)
		return cfg_nomem(err);
	struct rules_rule *rule = rules_compile(ctx, p->file, t, nargs, &why);
	free(t);
	if (rule == NULL)
		return cfg_rules_error(p, why, err);
	struct rules_rule **l = cfg_array_grow(*list, *n, sizeof(*l));
	if (l == NULL) {
		rules_rule_free(rule);
		return cfg_nomem(err);
	}
	*list = l;
	l[(*n)++] = rule;
	return 0;
}

/* cache_valid [STATUS ...|any] DURATION; (no status: 200 301 302, as nginx) */
static int
cfg_set_cache_valid(struct cfg_parser *p, const struct cfg_directive *d, char **args, size_t nargs,
                    void *conf, char **err)
{
	struct cfg_server *srv = conf;
	uint32_t ms;
	char *why = NULL;
	int def[] = {200, 301, 302};

	(void)p;
	if (cfg_parse_duration(args[nargs - 1], &ms, &why) == -1) {
		cfg_invalid(err, d, args[nargs - 1], "%s", why != NULL ? why : "out of memory");
		free(why);
		return -1;
	}
	size_t nst = nargs > 1 ? nargs - 1 : 3;
	for (size_t i = 0; i < nst; i++) {
		int status;
		uint64_t v;

		if (nargs == 1)
			status = def[i];
		else if (strcmp(args[i], "any") == 0)
			status = 0;
		else if (cfg_parse_uint(args[i], 599, &v) == 0 && v >= 100)
			status = (int)v;
		else
			return cfg_invalid(err, d, args[i], "a status (100..599) or \"any\"");
		struct cache_valid *cv =
		        cfg_array_grow(srv->cache_valid, srv->ncache_valid, sizeof(*cv));
		if (cv == NULL)
			return cfg_nomem(err);
		srv->cache_valid = cv;
		cv[srv->ncache_valid].status = status;
		cv[srv->ncache_valid].seconds = ms / 1000;
		srv->ncache_valid++;
	}
	return 0;
}

/* mode reverse | forward; */
static int
cfg_set_mode(struct cfg_parser *p, const struct cfg_directive *d, char **args, size_t nargs,
             void *conf, char **err)
{
	struct cfg_server *srv = conf;

	(void)p, (void)nargs;
	if (srv->mode != CFG_UNSET)
		return cfg_duplicate(err, d);
	if (strcmp(args[0], "reverse") == 0)
		srv->mode = CFG_MODE_REVERSE;
	else if (strcmp(args[0], "forward") == 0)
		srv->mode = CFG_MODE_FORWARD;
	else
		return cfg_invalid(err, d, args[0], "it must be \"reverse\" or \"forward\"");
	return 0;
}

/*
 * CFG_LOAD_CHECK: whether path could be opened for appending, created if missing, without
 * creating it. An existing file is opened (no O_CREAT) and closed; a missing one needs an
 * existing directory that we may write and search. 0, or -1 with errno as the open would
 * have failed (ENOENT for a missing directory, EACCES, EROFS, ENOTDIR...).
 */
static int
cfg_check_creatable(const char *path)
{
	const char *slash = strrchr(path, '/');
	char dir[PATH_MAX];
	struct stat sb;
	int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOCTTY);

	if (fd != -1) {
		close(fd);
		return 0;
	}
	if (errno != ENOENT)
		return -1;
	if (slash == NULL)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == path)
		snprintf(dir, sizeof(dir), "/");
	else if ((size_t)(slash - path) >= sizeof(dir)) {
		errno = ENAMETOOLONG;
		return -1;
	} else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	if (stat(dir, &sb) == -1)
		return -1;
	if (!S_ISDIR(sb.st_mode)) {
		errno = ENOTDIR;
		return -1;
	}
	return faccessat(AT_FDCWD, dir, W_OK | X_OK, AT_EACCESS);
}

/* access_log PATH [combined] | off; opened now, so that errors show at load. */
static int
cfg_set_access_log(struct cfg_parser *p, const struct cfg_directive *d, char **args, size_t nargs,
                   void *conf, char **err)
{
	struct cfg_server *srv = conf;
	struct cfg_log *log = &srv->access_log;
	int fd;

	(void)p;
	if (log->fd != CFG_UNSET_FD)
		return cfg_duplicate(err, d);
	if (strcmp(args[0], "off") == 0) {
		if (nargs != 1) {
			*err = cfg_sprintf("invalid number of arguments in \"%s\" directive",
			                   d->name);
			return -1;
		}
		log->fd = -1;
		return 0;
	}
	if (*args[0] == '\0')
		return cfg_invalid(err, d, args[0], "must not be empty");
	if (nargs == 2 && strcmp(args[1], "combined") != 0)
		return cfg_invalid(err, d, args[1], "the only format is \"combined\"");
	if ((log->path = strdup(args[0])) == NULL)
		return cfg_nomem(err);
	if (p->flags & CFG_LOAD_DRY) {
		log->fd = -1; /* not opened: the dry run creates no file */
		return 0;
	}
	if (p->flags & CFG_LOAD_CHECK) {
		log->fd = -1; /* checked, not created: see cfg_check_creatable() */
		log->file = p->file;
		log->line = p->line;
		if (cfg_check_creatable(args[0]) == -1) {
			*err = cfg_sprintf("cannot open access log \"%s\": %s", args[0],
			                   strerror(errno));
			return -1;
		}
		return 0;
	}
	log->file = p->file;
	log->line = p->line;
	if ((fd = log_file_open(args[0], &log->created)) == -1) {
		*err = cfg_sprintf("cannot open access log \"%s\": %s", args[0], strerror(errno));
		return -1;
	}
	log->fd = fd;
	return 0;
}

static void
cfg_server_init(struct cfg_server *srv)
{
	srv->proxy_connect_timeout_ms = CFG_UNSET_MS;
	srv->proxy_read_timeout_ms = CFG_UNSET_MS;
	srv->proxy_send_timeout_ms = CFG_UNSET_MS;
	srv->keepalive_timeout_ms = CFG_UNSET_MS;
	srv->keepalive_requests = CFG_UNSET;
	srv->client_header_timeout_ms = CFG_UNSET_MS;
	srv->client_body_timeout_ms = CFG_UNSET_MS;
	srv->send_timeout_ms = CFG_UNSET_MS;
	srv->next_upstream = CFG_UNSET;
	srv->next_upstream_tries = CFG_UNSET;
	srv->next_upstream_timeout_ms = CFG_UNSET_MS;
	srv->client_max_header_size = CFG_UNSET_SIZE;
	srv->client_max_target = CFG_UNSET_SIZE;
	srv->client_max_headers = CFG_UNSET_SIZE;
	srv->client_max_body_size = CFG_UNSET_SIZE64;
	srv->x_forwarded_for = CFG_UNSET;
	srv->x_forwarded_proto = CFG_UNSET;
	srv->x_forwarded_host = CFG_UNSET;
	srv->via = CFG_UNSET;
	srv->access_log.fd = CFG_UNSET_FD;
	srv->mode = CFG_UNSET;
	srv->tunnel_idle_timeout_ms = CFG_UNSET_MS;
	srv->deny_private_destinations = CFG_UNSET;
	srv->origin_keepalive = CFG_UNSET;
	srv->anonymize = CFG_UNSET;
	srv->tls_session_tickets = CFG_UNSET;
	srv->cache_status = CFG_UNSET;
	srv->x_cache = CFG_UNSET;
	srv->cache_heuristic = CFG_UNSET;
	srv->cache_store_set_cookie = CFG_UNSET;
	srv->cache_use_stale = CFG_UNSET;
	srv->cache_lock = CFG_UNSET;
	srv->cache_lock_timeout_ms = CFG_UNSET_MS;
	srv->cache_lock_age_ms = CFG_UNSET_MS;
	srv->tls_session_cache = CFG_UNSET;
	srv->tls_session_timeout_ms = CFG_UNSET_MS;
}

#define CFG_MERGE(field, unset, def)                                                               \
	do {                                                                                       \
		if ((field) == (unset))                                                            \
			(field) = (def);                                                           \
	} while (0)

static void
cfg_server_merge(struct cfg_server *srv)
{
	CFG_MERGE(srv->proxy_connect_timeout_ms, CFG_UNSET_MS, CFG_DEF_PROXY_TIMEOUT);
	CFG_MERGE(srv->proxy_read_timeout_ms, CFG_UNSET_MS, CFG_DEF_PROXY_TIMEOUT);
	CFG_MERGE(srv->proxy_send_timeout_ms, CFG_UNSET_MS, CFG_DEF_PROXY_TIMEOUT);
	CFG_MERGE(srv->keepalive_timeout_ms, CFG_UNSET_MS, CFG_DEF_KEEPALIVE_TIMEOUT);
	CFG_MERGE(srv->keepalive_requests, CFG_UNSET, CFG_DEF_KEEPALIVE_REQUESTS);
	CFG_MERGE(srv->client_header_timeout_ms, CFG_UNSET_MS, CFG_DEF_CLIENT_TIMEOUT);
	CFG_MERGE(srv->client_body_timeout_ms, CFG_UNSET_MS, CFG_DEF_CLIENT_TIMEOUT);
	CFG_MERGE(srv->send_timeout_ms, CFG_UNSET_MS, CFG_DEF_SEND_TIMEOUT);
	CFG_MERGE(srv->next_upstream, CFG_UNSET, CFG_NEXT_ERROR | CFG_NEXT_TIMEOUT);
	CFG_MERGE(srv->next_upstream_tries, CFG_UNSET, 0);
	CFG_MERGE(srv->next_upstream_timeout_ms, CFG_UNSET_MS, 0);
	CFG_MERGE(srv->client_max_header_size, CFG_UNSET_SIZE, CFG_DEF_CLIENT_MAX_HEADER_SIZE);
	CFG_MERGE(srv->client_max_target, CFG_UNSET_SIZE, CFG_DEF_CLIENT_MAX_TARGET);
	CFG_MERGE(srv->client_max_headers, CFG_UNSET_SIZE, CFG_DEF_CLIENT_MAX_HEADERS);
	CFG_MERGE(srv->client_max_body_size, CFG_UNSET_SIZE64, CFG_DEF_CLIENT_MAX_BODY_SIZE);
	CFG_MERGE(srv->x_forwarded_for, CFG_UNSET, 1);
	CFG_MERGE(srv->x_forwarded_proto, CFG_UNSET, 1);
	CFG_MERGE(srv->x_forwarded_host, CFG_UNSET, 1);
	CFG_MERGE(srv->via, CFG_UNSET, 1);
	CFG_MERGE(srv->access_log.fd, CFG_UNSET_FD, -1);
	CFG_MERGE(srv->mode, CFG_UNSET, CFG_MODE_REVERSE);
	CFG_MERGE(srv->cache_status, CFG_UNSET, 1);
	CFG_MERGE(srv->x_cache, CFG_UNSET, 1);
	CFG_MERGE(srv->cache_heuristic, CFG_UNSET, 10);
	CFG_MERGE(srv->cache_heuristic_max_s, 0, 86400);
	CFG_MERGE(srv->cache_store_set_cookie, CFG_UNSET, 0);
	CFG_MERGE(srv->cache_use_stale, CFG_UNSET, 0);
	CFG_MERGE(srv->cache_lock, CFG_UNSET, 1);
	CFG_MERGE(srv->cache_lock_timeout_ms, CFG_UNSET_MS, CFG_DEF_CACHE_LOCK_TIMEOUT);
	CFG_MERGE(srv->cache_lock_age_ms, CFG_UNSET_MS, CFG_DEF_CACHE_LOCK_AGE);
	CFG_MERGE(srv->tunnel_idle_timeout_ms, CFG_UNSET_MS, CFG_DEF_TUNNEL_IDLE_TIMEOUT);
	CFG_MERGE(srv->deny_private_destinations, CFG_UNSET, 0);
	CFG_MERGE(srv->origin_keepalive, CFG_UNSET, CFG_DEF_ORIGIN_KEEPALIVE);
	if (srv->mode == CFG_MODE_FORWARD) {
		/* an origin is not a peer: no next-upstream rules, no reverse-proxy headers */
		srv->next_upstream = 0;
		srv->x_forwarded_proto = 0;
		srv->x_forwarded_host = 0;
		CFG_MERGE(srv->anonymize, CFG_UNSET, ANON_STANDARD);
		if (srv->anonymize != ANON_OFF) {
			/* nothing that identifies the client or the proxy */
			srv->x_forwarded_for = 0;
			srv->via = 0;
		}
	}
}

/* server { ... } */
static int
cfg_block_server(struct cfg_parser *p, const struct cfg_directive *d, char **args, size_t nargs,
                 void *conf, char **err)
{
	struct cfg *cfg = conf;
	struct cfg_server *srv;
	struct cfg_pass *pass;
	size_t idx;
	int line = p->line;

	(void)d, (void)args, (void)nargs;
	if ((pass = cfg_array_grow(p->pass, cfg->nservers, sizeof(*pass))) == NULL)
		return cfg_nomem(err);
	p->pass = pass;
	if ((srv = cfg_array_grow(cfg->servers, cfg->nservers, sizeof(*srv))) == NULL)
		return cfg_nomem(err);
	cfg->servers = srv;
	idx = cfg->nservers++;
	srv = &cfg->servers[idx];
	cfg_server_init(srv);
	srv->file = p->file;
	srv->line = line;

	if (cfg_parse_block(p, CFG_CTX_SERVER, srv, "server", line) == -1)
		return -1;
	srv = &cfg->servers[idx];
	if (srv->nlistens == 0) {
		*err = cfg_sprintf("server has no \"listen\"");
		return -1;
	}
	if (srv->mode == CFG_MODE_FORWARD) {
		struct cfg_upstream *u;
		char name[32];

		if (p->pass[idx].arg != NULL) {
			*err = cfg_sprintf("a forward server has no \"proxy_pass\": requests name "
			                   "their origin");
			return -1;
		}
		snprintf(name, sizeof(name), "forward:%zu", idx);
		if ((u = calloc(1, sizeof(*u))) == NULL || (u->name = strdup(name)) == NULL) {
			free(u);
			return cfg_nomem(err);
		}
		srv->fwd = srv->upstream = u;
		u->balance = CFG_BALANCE_ROUND_ROBIN;
		u->keepalive_timeout_ms = CFG_DEF_ORIGIN_KEEPALIVE_TIME;
		u->keepalive_requests = CFG_DEF_UP_KEEPALIVE_REQUESTS;
		u->file = srv->file;
		u->line = srv->line;
	} else if (p->pass[idx].arg == NULL && srv->ret_code == 0) {
		*err = cfg_sprintf("server has no \"proxy_pass\"");
		return -1;
	}
	if (srv->mode != CFG_MODE_FORWARD) {
		const char *only = srv->connect_ports != NULL     ? "connect_ports"
		                   : srv->anonymize != CFG_UNSET  ? "anonymize"
		                   : srv->nanon_allow > 0         ? "anonymize_allow"
		                   : srv->anon_user_agent != NULL ? "anonymize_user_agent"
		                   : srv->auth_realm != NULL      ? "auth"
		                   : srv->deny_private_destinations != CFG_UNSET
		                           ? "deny_private_destinations"
		                           : NULL;
		if (only != NULL) {
			*err = cfg_sprintf("\"%s\" needs \"mode forward\" in its server", only);
			return -1;
		}
	}
	cfg_server_merge(srv);
	if (cfg_server_tls(p, srv, err) == -1)
		return -1;
	if (srv->acl != NULL) {
		/* nothing matched: a forward proxy refuses, a reverse proxy serves */
		srv->acl->default_allow = srv->mode != CFG_MODE_FORWARD;
		if (srv->deny_page != NULL &&
		    acl_set_deny_page(srv->acl, srv->deny_page, strlen(srv->deny_page)) == -1)
			return cfg_nomem(err);
	}
	if (srv->fwd != NULL) {
		char *why = NULL;

		srv->fwd->keepalive = srv->origin_keepalive;
		if (srv->connect_ports == NULL) {
			char def0[] = "443", *def[] = {def0};

			if ((srv->connect_ports = np_ports_parse(def, 1, &why)) == NULL) {
				free(why);
				return cfg_nomem(err);
			}
		}
		srv->anon = anon_policy_new((enum anon_mode)srv->anonymize, srv->anon_allow,
		                            srv->nanon_allow, srv->anon_user_agent, &why);
		if (srv->anon == NULL) {
			*err = cfg_sprintf("anonymize: %s", why != NULL ? why : "out of memory");
			free(why);
			return -1;
		}
	}
	return 0;
}

/* admin listen ADDR:PORT; (one address; checked for loopback when the block ends) */
static int
cfg_set_admin_listen(struct cfg_parser *p, const struct cfg_directive *d, char **args, size_t nargs,
                     void *conf, char **err)
{
	struct cfg_admin *adm = conf;
	struct cfg_addr *addrs = NULL;
	size_t naddrs;
	char *why = NULL;

	(void)nargs;
	if (adm->listen.file != NULL)
		return cfg_duplicate(err, d);
	if (cfg_addr_parse(args[0], 1, p->flags, &addrs, &naddrs, &why) == -1) {
		cfg_invalid(err, d, args[0], "%s", why != NULL ? why : "out of memory");
		free(why);
		return -1;
	}
	adm->listen.addr = addrs[0];
	adm->listen.backlog = CFG_DEF_LISTEN_BACKLOG;
	adm->listen.file = p->file;
	adm->listen.line = p->line;
	free(addrs);
	return 0;
}

static int
cfg_addr_is_loopback(const struct cfg_addr *a)
{
	if (a->ss.ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)&a->ss;

		return (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
	}
	if (a->ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&a->ss;
		const uint8_t *b = sin6->sin6_addr.s6_addr;

		if (IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr))
			return 1;
		return IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr) && b[12] == 127;
	}
	return 0;
}

/* admin { listen ADDR:PORT; [allow_remote on;] } -- at most one */
static int
cfg_block_admin(struct cfg_parser *p, const struct cfg_directive *d, char **args, size_t nargs,
                void *conf, char **err)
{
	struct cfg *cfg = conf;
	struct cfg_admin *adm = &cfg->admin;
	int line = p->line;

	(void)args, (void)nargs;
	if (adm->enabled) {
		*err = cfg_sprintf("duplicate \"%s\" block, already at %s:%d", d->name, adm->file,
		                   adm->line);
		return -1;
	}
	memset(adm, 0, sizeof(*adm));
	adm->enabled = 1;
	adm->allow_remote = CFG_UNSET;
	adm->file = p->file;
	adm->line = line;
	if (cfg_parse_block(p, CFG_CTX_ADMIN, adm, "admin", line) == -1)
		return -1;
	if (adm->listen.file == NULL) {
		*err = cfg_sprintf("admin has no \"listen\"");
		return -1;
	}
	if (adm->allow_remote == CFG_UNSET)
		adm->allow_remote = 0;
	if (!adm->allow_remote && !cfg_addr_is_loopback(&adm->listen.addr)) {
		cfg_error(p, adm->listen.file, adm->listen.line,
		          "admin listen address must be loopback (or set allow_remote on)");
		return -1;
	}
	return 0;
}

/* ---- load, validate, free ---- */

static void
cfg_free(struct cfg *cfg, int locks)
{
	size_t i, j;

	for (i = 0; i < cfg->nupstreams; i++) {
		struct cfg_upstream *up = &cfg->upstreams[i];

		for (j = 0; j < up->npeers; j++) {
			free(up->peers[j].name);
			free(up->peers[j].host);
			free(up->peers[j].tls_name);
		}
		for (j = 0; j < up->ntls_clients; j++)
			tls_client_free(up->tls_clients[j]);
		free(up->tls_clients);
		while (up->dyn != NULL) {
			struct cfg_dynaddr *next = up->dyn->next;

			free(up->dyn);
			up->dyn = next;
		}
		free(up->peers);
		free(up->name);
		cfg_key_free(up->key, up->nkey);
		free(up->ring);
		free(up->hc.uri);
		if (locks)
			pthread_mutex_destroy(&up->lock);
	}
	free(cfg->upstreams);
	for (i = 0; i < cfg->nservers; i++) {
		struct cfg_server *srv = &cfg->servers[i];

		free(srv->listens);
		if (srv->fwd != NULL) {
			free(srv->fwd->name);
			free(srv->fwd);
		}
		np_ports_free(srv->connect_ports);
		anon_policy_free(srv->anon);
		for (size_t k = 0; k < srv->nanon_allow; k++)
			free(srv->anon_allow[k]);
		free(srv->anon_allow);
		free(srv->anon_user_agent);
		free(srv->auth_realm);
		auth_db_free(srv->auth_db);
		auth_cache_free(srv->auth_cache);
		acl_free(srv->acl);
		free(srv->deny_page);
		free(srv->ret_text);
		tls_server_free(srv->tls);
		for (size_t k = 0; k < srv->ntls_certs; k++) {
			free((char *)(uintptr_t)srv->tls_certs[k].cert_file);
			free((char *)(uintptr_t)srv->tls_certs[k].key_file);
			free((char *)(uintptr_t)srv->tls_certs[k].ocsp_file);
		}
		free(srv->tls_certs);
		free(srv->tls_ciphers);
		free(srv->tls_ciphersuites);
		free(srv->cache_name);
		for (size_t k = 0; k < srv->ncache_bypass; k++)
			rules_rule_free(srv->cache_bypass[k]);
		free(srv->cache_bypass);
		for (size_t k = 0; k < srv->nno_cache; k++)
			rules_rule_free(srv->no_cache[k]);
		free(srv->no_cache);
		free(srv->cache_valid);
		cfg_key_free(srv->cache_key, srv->ncache_key);
		for (size_t k = 0; k < srv->nadd_headers; k++) {
			free(srv->add_headers[k].name);
			free(srv->add_headers[k].value);
		}
		free(srv->add_headers);
		for (size_t k = 0; k < srv->nlimits; k++)
			free(srv->limits[k].zone_name);
		free(srv->limits);
		free(srv->access_log.path);
		if (srv->access_log.fd >= 0)
			close(srv->access_log.fd);
	}
	free(cfg->servers);
	for (i = 0; i < cfg->ncaches; i++) {
		cfg_store_put(cfg->caches[i].store);
		free(cfg->caches[i].name);
		free(cfg->caches[i].path);
	}
	free(cfg->caches);
	for (i = 0; i < cfg->nlimit_zones; i++) {
		limit_zone_unref(cfg->limit_zones[i].zone);
		free(cfg->limit_zones[i].name);
	}
	free(cfg->limit_zones);
	rules_ctx_free(cfg->rules); /* after every acl: rules must go before their context */
	for (i = 0; i < cfg->nfiles; i++)
		free(cfg->files[i]);
	free(cfg->files);
	free(cfg->path);
	free(cfg->resolver.ns);
	free(cfg->user);
	free(cfg->pid_file);
	free(cfg->error_log);
	free(cfg);
}

/* Checks that need the whole file: a server exists, proxy_pass names an upstream. */
static int
cfg_validate(struct cfg_parser *p)
{
	struct cfg *cfg = p->cfg;
	size_t i, j;

	if (cfg->nservers == 0) {
		cfg_error(p, cfg->path, p->main_lines > 0 ? p->main_lines : 1,
		          "no \"server\" block");
		return -1;
	}
	for (i = 0; cfg->admin.enabled && i < cfg->nservers; i++) {
		for (j = 0; j < cfg->servers[i].nlistens; j++) {
			const struct cfg_listen *l = &cfg->servers[i].listens[j];

			if (strcmp(l->addr.text, cfg->admin.listen.addr.text) == 0) {
				cfg_error(p, cfg->admin.listen.file, cfg->admin.listen.line,
				          "duplicate listen address \"%s\", already used at %s:%d",
				          l->addr.text, l->file, l->line);
				return -1;
			}
		}
	}
	for (i = 0; i < cfg->nservers; i++) {
		struct cfg_server *srv = &cfg->servers[i];

		if (srv->cache_name == NULL || strcmp(srv->cache_name, "off") == 0)
			continue;
		for (j = 0; j < cfg->ncaches; j++)
			if (strcmp(cfg->caches[j].name, srv->cache_name) == 0)
				srv->cache = &cfg->caches[j];
		if (srv->cache == NULL) {
			cfg_error(p, srv->cache_file, srv->cache_line, "no cache named \"%s\"",
			          srv->cache_name);
			return -1;
		}
	}
	if (cfg_limits_resolve(p) == -1)
		return -1;
	for (i = 0; i < cfg->nservers && !(p->flags & CFG_LOAD_DRY); i++) {
		const struct cfg_log *log = &cfg->servers[i].access_log;

		if (log->path != NULL && !log->created)
			cfg_owner_check(cfg, log->file, log->line, "access log", log->path);
	}
	cfg_give_logs(cfg);
	if (!(p->flags & CFG_LOAD_DRY) && cfg->error_log != NULL &&
	    strcmp(cfg->error_log, "stderr") != 0)
		cfg_owner_check(cfg, NULL, 0, "error log", cfg->error_log);
	for (i = 0; i < cfg->ncaches && !(p->flags & CFG_LOAD_DRY); i++) {
		if (p->flags & CFG_LOAD_CHECK)
			cfg_store_check(cfg, &cfg->caches[i]);
		else
			cfg->caches[i].store = cfg_store_get(cfg, &cfg->caches[i]);
	}
	for (i = 0; i < cfg->nservers; i++) {
		struct cfg_pass *pass = &p->pass[i];

		if (cfg->servers[i].mode == CFG_MODE_FORWARD ||
		    (cfg->servers[i].ret_code != 0 && pass->arg == NULL))
			continue;
		for (j = 0; j < cfg->nupstreams; j++) {
			if (strcmp(cfg->upstreams[j].name, pass->name) == 0) {
				cfg->servers[i].upstream = &cfg->upstreams[j];
				break;
			}
		}
		if (cfg->servers[i].upstream == NULL) {
			cfg_error(p, pass->file, pass->line,
			          "invalid value \"%s\" in \"proxy_pass\" directive: no upstream "
			          "named \"%s\"",
			          pass->arg, pass->name);
			return -1;
		}
	}
	return 0;
}

/* Runtime state: initialised last, once the arrays no longer move. */
static int
cfg_runtime_init(struct cfg_parser *p)
{
	struct cfg *cfg = p->cfg;
	size_t i, j;
	int e;

	for (i = 0; i < cfg->nupstreams; i++) {
		struct cfg_upstream *up = &cfg->upstreams[i];

		if ((e = pthread_mutex_init(&up->lock, NULL)) != 0) {
			while (i-- > 0)
				pthread_mutex_destroy(&cfg->upstreams[i].lock);
			cfg_error(p, up->file, up->line, "cannot initialise a mutex: %s",
			          strerror(e));
			return -1;
		}
		for (j = 0; j < up->npeers; j++) {
			struct cfg_peer *peer = &up->peers[j];

			peer->cur_weight = 0;
			atomic_init(&peer->cur_addr,
			            (peer->flags & CFG_PEER_RESOLVE) ? NULL : &peer->addr);
			atomic_init(&peer->fails, 0);
			atomic_init(&peer->fail_window_ms, 0);
			atomic_init(&peer->down_until_ms, 0);
			atomic_init(&peer->active, 0);
			atomic_init(&peer->requests, 0);
			atomic_init(&peer->failures, 0);
		}
	}
	atomic_init(&cfg->refs, 1);
	return 0;
}

struct cfg *
cfg_load(const char *path, char **err)
{
	return cfg_load_next(path, NULL, err);
}

struct cfg *
cfg_load_flags(const char *path, unsigned int flags, char **err)
{
	return cfg_load_main(path, NULL, 0, NULL, flags, err);
}

struct cfg *
cfg_load_next(const char *path, const struct cfg *prev, char **err)
{
	return cfg_load_main(path, NULL, 0, prev, 0, err);
}

struct cfg *
cfg_load_buffer(const char *name, const char *buf, size_t len, unsigned int flags, char **err)
{
	return cfg_load_main(name, buf, len, NULL, flags, err);
}

/* The main file: path, or when buf is not NULL, len bytes of buf called path. */
static struct cfg *
cfg_load_main(const char *path, const char *buf, size_t len, const struct cfg *prev,
              unsigned int flags, char **err)
{
	struct cfg_parser p;
	struct cfg *cfg;
	const char *name;
	char *reason = NULL;
	size_t i;
	int rc;

	memset(&p, 0, sizeof(p));
	p.prev = prev;
	p.flags = flags;
	if (err != NULL)
		*err = NULL;
	if ((cfg = calloc(1, sizeof(*cfg))) == NULL)
		goto fail;
	p.cfg = cfg;
	if ((cfg->path = strdup(path)) == NULL)
		goto fail;
	cfg_main_init(cfg);

	p.ctx = CFG_CTX_MAIN;
	if (buf == NULL)
		rc = cfg_parse_file(&p, path, CFG_CTX_MAIN, cfg, &reason);
	else if ((name = cfg_file_register(cfg, path)) == NULL)
		goto fail;
	else
		rc = cfg_parse_text(&p, name, buf, len, 0, 0, CFG_CTX_MAIN, cfg);
	if (rc == -1) {
		/* the main file itself: no line to point at, and reason names the file */
		if (p.err == NULL)
			p.err = reason;
		else
			free(reason);
		goto fail;
	}
	if (cfg_validate(&p) == -1)
		goto fail;
	cfg_main_merge(cfg);
	if (cfg_runtime_init(&p) == -1)
		goto fail;
	cfg->generation = atomic_fetch_add(&cfg_generation, 1) + 1;

	for (i = 0; i < cfg->nservers; i++)
		free(p.pass[i].arg);
	free(p.pass);
	return cfg;

fail:
	if (p.err == NULL)
		p.err = cfg_sprintf("%s: out of memory", path);
	if (err != NULL)
		*err = p.err;
	else
		free(p.err);
	if (cfg != NULL) {
		cfg_give_logs(cfg);
		for (i = 0; i < cfg->nservers; i++)
			free(p.pass[i].arg);
		cfg_free(cfg, 0);
	}
	free(p.pass);
	return NULL;
}

void
cfg_ref(struct cfg *cfg)
{
	atomic_fetch_add_explicit(&cfg->refs, 1, memory_order_relaxed);
}

void
cfg_unref(struct cfg *cfg)
{
	if (cfg == NULL)
		return;
	if (atomic_fetch_sub_explicit(&cfg->refs, 1, memory_order_acq_rel) == 1)
		cfg_free(cfg, 1);
}
