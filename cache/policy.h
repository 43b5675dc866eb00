/*
 * policy.h - RFC 9111 decisions for a shared cache, on plain values.
 *
 * Contract: every function here is pure: no I/O, no allocation, no global state, no clock
 * (the caller passes the times, POSIX seconds). Inputs are slices owned by the caller
 * (header names and values as received, no terminating NUL needed); outputs go to
 * caller-provided structs and buffers. Header names compare case-insensitively; a field
 * that appears several times counts as its values joined with ", " (RFC 9110 5.3), except
 * where noted. Unknown or malformed directives are ignored, conservatively: a malformed
 * max-age is absent, `no-cache="X"` and `private="X"` count as unqualified.
 *
 * The caller (the daemon) removes hop-by-hop fields before storing, normalizes URLs with
 * rules_url_normalize() before building keys, and decides with the results:
 *   cache_policy_storable()      may this response be stored at all (and why not)
 *   cache_policy_freshness()     lifetime and initial age, computed once at store time
 *   cache_policy_use()           what a stored entry may do for this request, now
 *   cache_policy_stale_if_error() may a stale entry answer when the origin fails
 *   cache_policy_not_modified()  may the client get a 304 from this entry
 *   cache_policy_validators()    the conditional headers for revalidation upstream
 *   cache_policy_merge_304()     stored headers updated by a 304 (RFC 9111 4.3.4)
 *   cache_policy_range()         206/416/full for a Range request on a complete entry
 *   cache_policy_invalidations() which URLs an unsafe request invalidates (4.4)
 *   cache_vary_names(), cache_vary_key() the Vary secondary key
 */
#ifndef PROXYD_CACHE_POLICY_H
#define PROXYD_CACHE_POLICY_H

#include <stddef.h>
#include <stdint.h>

/* A header field: slices of the caller's buffer (same layout as struct rules_header). */
struct cache_header {
	const char *name;
	size_t name_len;
	const char *value;
	size_t value_len;
};

/* A request (method set, status 0) or a response (status set, method unused). */
struct cache_msg {
	const char *method;
	size_t method_len;
	int status;
	const struct cache_header *headers;
	size_t nheaders;
};

/* Cache-Control directives (request or response); CACHE_CC_* flags, -1: absent. */
#define CACHE_CC_NO_STORE         0x0001u
#define CACHE_CC_NO_CACHE         0x0002u
#define CACHE_CC_PRIVATE          0x0004u
#define CACHE_CC_PUBLIC           0x0008u
#define CACHE_CC_MUST_REVALIDATE  0x0010u
#define CACHE_CC_PROXY_REVALIDATE 0x0020u
#define CACHE_CC_IMMUTABLE        0x0040u
#define CACHE_CC_ONLY_IF_CACHED   0x0080u
#define CACHE_CC_MAX_STALE_ANY    0x0100u /* max-stale without a value */
#define CACHE_CC_PRAGMA_NO_CACHE  0x0200u /* Pragma: no-cache, no Cache-Control (request) */
struct cache_cc {
	unsigned flags;
	int64_t max_age, s_maxage, max_stale, min_fresh;
	int64_t stale_while_revalidate, stale_if_error;
};

/* Parse every Cache-Control field of headers (and Pragma: no-cache when there is none). */
void cache_cc_parse(const struct cache_header *h, size_t n, struct cache_cc *cc);

/*
 * An HTTP-date (IMF-fixdate, obsolete RFC 850 and asctime forms) to POSIX time;
 * -1 when malformed. cache_http_date_format() writes IMF-fixdate (29 bytes and a NUL)
 * into buf[30].
 */
int64_t cache_http_date(const char *s, size_t len);
void cache_http_date_format(int64_t t, char buf[30]);

/* The first field named name (case-insensitive), or NULL. */
const struct cache_header *cache_header_find(const struct cache_header *h, size_t n,
                                             const char *name);

/* cache_valid-style fallback lifetime for responses without explicit freshness. */
struct cache_valid {
	int status; /* 0: any status not listed before */
	int64_t seconds;
};

/* What the operator configures; cache_params_default() fills the defaults. */
struct cache_params {
	double heuristic_fraction;       /* of (Date - Last-Modified); 0 disables; default 0.1 */
	int64_t heuristic_max;           /* cap of the heuristic lifetime; default 86400 */
	int store_set_cookie;            /* store responses with Set-Cookie; default 0 */
	const struct cache_valid *valid; /* table (may be NULL), first match wins */
	size_t nvalid;
};
void cache_params_default(struct cache_params *p);

enum cache_verdict {
	CACHE_STORE = 0,
	CACHE_NOSTORE_METHOD,     /* not GET (HEAD responses are not stored) */
	CACHE_NOSTORE_STATUS,     /* not heuristically cacheable, no explicit freshness */
	CACHE_NOSTORE_PARTIAL,    /* 206: partial responses are not stored */
	CACHE_NOSTORE_NO_STORE,   /* no-store in request or response */
	CACHE_NOSTORE_PRIVATE,    /* private */
	CACHE_NOSTORE_AUTH,       /* Authorization without public/s-maxage/must-revalidate */
	CACHE_NOSTORE_VARY_STAR,  /* Vary: * */
	CACHE_NOSTORE_SET_COOKIE, /* Set-Cookie (unless store_set_cookie) */
};
/* A short token for logs and Cache-Status ("method", "status", ...). */
const char *cache_verdict_str(enum cache_verdict v);

/* May resp (to req) be stored? */
enum cache_verdict cache_policy_storable(const struct cache_params *p, const struct cache_msg *req,
                                         const struct cache_msg *resp);

/* Freshness facts of a stored response, computed once when it is stored. */
#define CACHE_FRESH_MUST_REVALIDATE 0x1u /* must-revalidate, proxy-revalidate or s-maxage */
#define CACHE_FRESH_NO_CACHE        0x2u /* response no-cache: validate every use */
#define CACHE_FRESH_IMMUTABLE       0x4u
#define CACHE_FRESH_HEURISTIC       0x8u  /* lifetime from Last-Modified */
#define CACHE_FRESH_VALID           0x10u /* lifetime from the cache_valid table */
struct cache_fresh {
	int64_t lifetime;      /* freshness lifetime, seconds (>= 0) */
	int64_t initial_age;   /* corrected_initial_age (RFC 9111 4.2.3) */
	int64_t response_time; /* when the response was received */
	int64_t swr;           /* stale-while-revalidate window, -1: none */
	int64_t sie;           /* stale-if-error window, -1: none */
	unsigned flags;
};

/*
 * Lifetime: s-maxage > max-age > Expires - Date (an invalid Expires is in the past) >
 * the cache_valid table > heuristic fraction of Date - Last-Modified (heuristically
 * cacheable statuses or public only, capped at heuristic_max) > 0. A missing Date is
 * response_time.
 */
void cache_policy_freshness(const struct cache_params *p, const struct cache_msg *resp,
                            int64_t request_time, int64_t response_time, struct cache_fresh *f);
/* current_age at now (never negative). */
int64_t cache_fresh_age(const struct cache_fresh *f, int64_t now);

enum cache_use {
	CACHE_USE_FRESH = 0,        /* serve it */
	CACHE_USE_STALE,            /* stale, but the client's max-stale accepts it */
	CACHE_USE_STALE_REVALIDATE, /* serve stale now, revalidate in the background (swr) */
	CACHE_USE_REVALIDATE,       /* validate with the origin before use */
};
/*
 * How a stored entry may answer req at now: request no-cache/Pragma, max-age, min-fresh
 * and max-stale, the entry's no-cache, must-revalidate and stale-while-revalidate. An
 * immutable entry that is fresh ignores the request's max-age (a browser reload), not
 * its no-cache. *age (may be NULL) gets the current age, for the Age header.
 * only-if-cached is the caller's: no usable entry then means 504.
 */
enum cache_use cache_policy_use(const struct cache_fresh *f, const struct cache_msg *req,
                                int64_t now, int64_t *age);
/* 1 if a stale entry may answer req when the origin fails (stale-if-error), else 0. */
int cache_policy_stale_if_error(const struct cache_fresh *f, const struct cache_msg *req,
                                int64_t now);

/*
 * Conditional request against an entry with validators etag (NULL: none) and
 * last_modified (-1: none): 1 when the client gets 304. If-None-Match wins over
 * If-Modified-Since (weak comparison, `*` matches); If-Modified-Since only for GET/HEAD.
 */
int cache_policy_not_modified(const struct cache_msg *req, const char *etag, size_t etag_len,
                              int64_t last_modified);
/*
 * The validators to send upstream: If-None-Match from etag, If-Modified-Since from
 * last_modified (formatted into datebuf). Returns how many headers were written to out.
 */
size_t cache_policy_validators(const char *etag, size_t etag_len, int64_t last_modified,
                               struct cache_header out[2], char datebuf[30]);
/*
 * RFC 9111 4.3.4: the stored fields, each field name present in the 304 replaced by the
 * 304's fields of that name (Content-Length, Content-Range, Transfer-Encoding and
 * hop-by-hop fields of the 304 are ignored). Slices of both inputs go to out; returns
 * the count, or -1 if cap is too small.
 */
long cache_policy_merge_304(const struct cache_header *stored, size_t nstored,
                            const struct cache_header *fresh, size_t nfresh,
                            struct cache_header *out, size_t cap);

enum cache_range_result {
	CACHE_RANGE_NONE = 0,     /* no usable Range: answer 200 with the whole body */
	CACHE_RANGE_PARTIAL,      /* 206 with bytes first..last (inclusive) */
	CACHE_RANGE_UNSATISFIABLE /* 416 with Content-Range: bytes * / length */
};
struct cache_range {
	uint64_t first, last;
};
/*
 * A Range request on a complete entry of length bytes. One `bytes=` range only:
 * multi-range, other units and malformed values get the full body; so does a GET with
 * an If-Range that does not match (strong ETag, or exact Last-Modified date).
 */
enum cache_range_result cache_policy_range(const struct cache_msg *req, uint64_t length,
                                           const char *etag, size_t etag_len, int64_t last_modified,
                                           struct cache_range *r);

/* 1 for methods that are not safe (anything but GET, HEAD, OPTIONS, TRACE). */
int cache_method_unsafe(const char *m, size_t len);
/*
 * RFC 9111 4.4: an unsafe request answered with 2xx or 3xx invalidates its target URL
 * (url: "scheme://host[:port]/path", normalized) and the Location and Content-Location
 * URLs of the same origin (absolute, or absolute paths resolved against url). The URLs
 * are written to buf and sliced into out[3]; returns their count (0-3). The caller
 * normalizes them before making keys.
 */
size_t cache_policy_invalidations(const struct cache_msg *req, const struct cache_msg *resp,
                                  const char *url, size_t url_len, char *buf, size_t cap,
                                  struct cache_header out[3]);

/*
 * Vary: the normalized list of a response's Vary names (lower-case, sorted, unique,
 * comma-separated) into out. Returns its length (0: no Vary), -1 for `Vary: *` or when
 * cap is too small.
 */
long cache_vary_names(const struct cache_header *resp, size_t n, char *out, size_t cap);
/*
 * The secondary key of a request for normalized names: for each name, "name:" and the
 * request's values of that field as received, joined with ",", then "\n"; handed to
 * emit in pieces (e.g. a hash update).
 */
void cache_vary_key(const char *names, size_t names_len, const struct cache_header *req, size_t n,
                    void (*emit)(void *arg, const void *p, size_t len), void *arg);

#endif /* PROXYD_CACHE_POLICY_H */
