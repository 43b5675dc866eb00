/*
 * policy.c - RFC 9111 decisions on plain values (see policy.h for the contract).
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "policy.h"

static int
ieq(const char *a, size_t alen, const char *b)
{
	size_t blen = strlen(b);

	return alen == blen && strncasecmp(a, b, blen) == 0;
}

static int
is_ows(char c)
{
	return c == ' ' || c == '\t';
}

static void
trim(const char **p, size_t *len)
{
	while (*len > 0 && is_ows(**p))
		(*p)++, (*len)--;
	while (*len > 0 && is_ows((*p)[*len - 1]))
		(*len)--;
}

const struct cache_header *
cache_header_find(const struct cache_header *h, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (ieq(h[i].name, h[i].name_len, name))
			return &h[i];
	return NULL;
}

/*
 * Iterate over the comma-separated elements of every field named name. *i and *pos keep
 * the position; returns 1 with the trimmed element in (*e, *elen), or 0 at the end. Quoted
 * strings are skipped over, so a comma inside quotes does not split.
 */
static int
list_next(const struct cache_header *h, size_t n, const char *name, size_t *i, size_t *pos,
          const char **e, size_t *elen)
{
	for (; *i < n; (*i)++, *pos = 0) {
		const struct cache_header *f = &h[*i];

		if (!ieq(f->name, f->name_len, name))
			continue;
		while (*pos < f->value_len) {
			size_t start = *pos, end;
			int quoted = 0;

			while (*pos < f->value_len && (quoted || f->value[*pos] != ',')) {
				if (f->value[*pos] == '"')
					quoted = !quoted;
				else if (quoted && f->value[*pos] == '\\')
					(*pos)++;
				(*pos)++;
			}
			end = *pos < f->value_len ? *pos : f->value_len;
			if (*pos < f->value_len)
				(*pos)++; /* the comma */
			*e = f->value + start;
			*elen = end - start;
			trim(e, elen);
			if (*elen > 0)
				return 1;
		}
	}
	return 0;
}

/* Non-negative decimal seconds; saturates; -1 when malformed. Quotes are tolerated. */
static int64_t
parse_delta(const char *p, size_t len)
{
	int64_t v = 0;

	if (len >= 2 && p[0] == '"' && p[len - 1] == '"')
		p++, len -= 2;
	if (len == 0)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		if (v < (int64_t)1 << 40)
			v = v * 10 + (p[i] - '0');
	}
	return v;
}

void
cache_cc_parse(const struct cache_header *h, size_t n, struct cache_cc *cc)
{
	size_t i = 0, pos = 0, len;
	const char *e;
	int any = 0;

	memset(cc, 0, sizeof(*cc));
	cc->max_age = cc->s_maxage = cc->max_stale = cc->min_fresh = -1;
	cc->stale_while_revalidate = cc->stale_if_error = -1;
	while (list_next(h, n, "cache-control", &i, &pos, &e, &len)) {
		const char *eq = memchr(e, '=', len);
		size_t nlen = eq != NULL ? (size_t)(eq - e) : len;
		const char *v = eq != NULL ? eq + 1 : NULL;
		size_t vlen = eq != NULL ? len - nlen - 1 : 0;
		const char *nm = e;

		any = 1;
		trim(&nm, &nlen);
		if (v != NULL)
			trim(&v, &vlen);
		if (ieq(nm, nlen, "no-store"))
			cc->flags |= CACHE_CC_NO_STORE;
		else if (ieq(nm, nlen, "no-cache"))
			cc->flags |= CACHE_CC_NO_CACHE;
		else if (ieq(nm, nlen, "private"))
			cc->flags |= CACHE_CC_PRIVATE;
		else if (ieq(nm, nlen, "public"))
			cc->flags |= CACHE_CC_PUBLIC;
		else if (ieq(nm, nlen, "must-revalidate"))
			cc->flags |= CACHE_CC_MUST_REVALIDATE;
		else if (ieq(nm, nlen, "proxy-revalidate"))
			cc->flags |= CACHE_CC_PROXY_REVALIDATE;
		else if (ieq(nm, nlen, "immutable"))
			cc->flags |= CACHE_CC_IMMUTABLE;
		else if (ieq(nm, nlen, "only-if-cached"))
			cc->flags |= CACHE_CC_ONLY_IF_CACHED;
		else if (ieq(nm, nlen, "max-age") && v != NULL)
			cc->max_age = parse_delta(v, vlen);
		else if (ieq(nm, nlen, "s-maxage") && v != NULL)
			cc->s_maxage = parse_delta(v, vlen);
		else if (ieq(nm, nlen, "max-stale")) {
			if (v == NULL)
				cc->flags |= CACHE_CC_MAX_STALE_ANY;
			else
				cc->max_stale = parse_delta(v, vlen);
		} else if (ieq(nm, nlen, "min-fresh") && v != NULL)
			cc->min_fresh = parse_delta(v, vlen);
		else if (ieq(nm, nlen, "stale-while-revalidate") && v != NULL)
			cc->stale_while_revalidate = parse_delta(v, vlen);
		else if (ieq(nm, nlen, "stale-if-error") && v != NULL)
			cc->stale_if_error = parse_delta(v, vlen);
	}
	if (!any) {
		i = 0, pos = 0;
		while (list_next(h, n, "pragma", &i, &pos, &e, &len))
			if (ieq(e, len, "no-cache"))
				cc->flags |= CACHE_CC_PRAGMA_NO_CACHE;
	}
}

/* ---- dates ---------------------------------------------------------------------- */

static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                   "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
static const char wdays[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};

static int
num(const char *s, size_t len, size_t *pos, int digits, int *out)
{
	int v = 0;

	if (*pos + (size_t)digits > len)
		return -1;
	for (int i = 0; i < digits; i++) {
		char c = s[*pos + (size_t)i];

		if (c < '0' || c > '9')
			return -1;
		v = v * 10 + (c - '0');
	}
	*pos += (size_t)digits;
	*out = v;
	return 0;
}

static int
month(const char *s, size_t len, size_t *pos, int *out)
{
	if (*pos + 3 > len)
		return -1;
	for (int m = 0; m < 12; m++)
		if (strncmp(s + *pos, months[m], 3) == 0) {
			*out = m;
			*pos += 3;
			return 0;
		}
	return -1;
}

static int
lit(const char *s, size_t len, size_t *pos, const char *l)
{
	size_t n = strlen(l);

	if (*pos + n > len || memcmp(s + *pos, l, n) != 0)
		return -1;
	*pos += n;
	return 0;
}

static int
hms(const char *s, size_t len, size_t *pos, struct tm *tm)
{
	if (num(s, len, pos, 2, &tm->tm_hour) == -1 || lit(s, len, pos, ":") == -1 ||
	    num(s, len, pos, 2, &tm->tm_min) == -1 || lit(s, len, pos, ":") == -1 ||
	    num(s, len, pos, 2, &tm->tm_sec) == -1)
		return -1;
	return 0;
}

int64_t
cache_http_date(const char *s, size_t len)
{
	struct tm tm;
	size_t pos, comma;
	const char *c = memchr(s, ',', len);
	time_t t;

	memset(&tm, 0, sizeof(tm));
	while (len > 0 && is_ows(s[len - 1]))
		len--;
	if (c != NULL) {
		comma = (size_t)(c - s);
		pos = comma + 1;
		if (lit(s, len, &pos, " ") == -1 || num(s, len, &pos, 2, &tm.tm_mday) == -1)
			return -1;
		if (comma == 3) { /* IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT */
			if (lit(s, len, &pos, " ") == -1 || month(s, len, &pos, &tm.tm_mon) == -1 ||
			    lit(s, len, &pos, " ") == -1 || num(s, len, &pos, 4, &tm.tm_year) == -1)
				return -1;
			tm.tm_year -= 1900;
		} else { /* RFC 850: Sunday, 06-Nov-94 08:49:37 GMT */
			if (lit(s, len, &pos, "-") == -1 || month(s, len, &pos, &tm.tm_mon) == -1 ||
			    lit(s, len, &pos, "-") == -1 || num(s, len, &pos, 2, &tm.tm_year) == -1)
				return -1;
			if (tm.tm_year < 70) /* RFC 9110 5.6.7: within 50 years */
				tm.tm_year += 100;
		}
		if (lit(s, len, &pos, " ") == -1 || hms(s, len, &pos, &tm) == -1 ||
		    lit(s, len, &pos, " GMT") == -1 || pos != len)
			return -1;
	} else { /* asctime: Sun Nov  6 08:49:37 1994 */
		pos = 4;
		if (len < 24 || s[3] != ' ' || month(s, len, &pos, &tm.tm_mon) == -1 ||
		    lit(s, len, &pos, " ") == -1)
			return -1;
		if (s[pos] == ' ') {
			pos++;
			if (num(s, len, &pos, 1, &tm.tm_mday) == -1)
				return -1;
		} else if (num(s, len, &pos, 2, &tm.tm_mday) == -1)
			return -1;
		if (lit(s, len, &pos, " ") == -1 || hms(s, len, &pos, &tm) == -1 ||
		    lit(s, len, &pos, " ") == -1 || num(s, len, &pos, 4, &tm.tm_year) == -1 ||
		    pos != len)
			return -1;
		tm.tm_year -= 1900;
	}
	if (tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 ||
	    tm.tm_sec > 60)
		return -1;
	t = timegm(&tm);
	return t == (time_t)-1 ? -1 : (int64_t)t;
}

void
cache_http_date_format(int64_t t, char buf[30])
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	snprintf(buf, 30, "%s, %02d %s %04d %02d:%02d:%02d GMT", wdays[tm.tm_wday % 7],
	         tm.tm_mday % 100, months[tm.tm_mon % 12], (tm.tm_year + 1900) % 10000,
	         tm.tm_hour % 100, tm.tm_min % 100, tm.tm_sec % 100);
}

static int64_t
header_date(const struct cache_header *h, size_t n, const char *name)
{
	const struct cache_header *f = cache_header_find(h, n, name);

	return f == NULL ? -1 : cache_http_date(f->value, f->value_len);
}

/* ---- storing -------------------------------------------------------------------- */

void
cache_params_default(struct cache_params *p)
{
	memset(p, 0, sizeof(*p));
	p->heuristic_fraction = 0.1;
	p->heuristic_max = 86400;
}

const char *
cache_verdict_str(enum cache_verdict v)
{
	switch (v) {
	case CACHE_STORE:
		return "stored";
	case CACHE_NOSTORE_METHOD:
		return "method";
	case CACHE_NOSTORE_STATUS:
		return "status";
	case CACHE_NOSTORE_PARTIAL:
		return "partial";
	case CACHE_NOSTORE_NO_STORE:
		return "no-store";
	case CACHE_NOSTORE_PRIVATE:
		return "private";
	case CACHE_NOSTORE_AUTH:
		return "authorization";
	case CACHE_NOSTORE_VARY_STAR:
		return "vary-star";
	case CACHE_NOSTORE_SET_COOKIE:
		return "set-cookie";
	}
	return "unknown";
}

/* RFC 9110 15.1, minus 206 (partial responses are not stored). */
static int
heuristic_status(int s)
{
	switch (s) {
	case 200:
	case 203:
	case 204:
	case 300:
	case 301:
	case 308:
	case 404:
	case 405:
	case 410:
	case 414:
	case 501:
		return 1;
	}
	return 0;
}

static const struct cache_valid *
valid_for(const struct cache_params *p, int status)
{
	for (size_t i = 0; i < p->nvalid; i++)
		if (p->valid[i].status == status || p->valid[i].status == 0)
			return &p->valid[i];
	return NULL;
}

static int
vary_star(const struct cache_header *h, size_t n)
{
	size_t i = 0, pos = 0, len;
	const char *e;

	while (list_next(h, n, "vary", &i, &pos, &e, &len))
		if (len == 1 && e[0] == '*')
			return 1;
	return 0;
}

enum cache_verdict
cache_policy_storable(const struct cache_params *p, const struct cache_msg *req,
                      const struct cache_msg *resp)
{
	struct cache_cc qcc, rcc;

	if (req->method_len != 3 || memcmp(req->method, "GET", 3) != 0)
		return CACHE_NOSTORE_METHOD;
	if (resp->status == 206)
		return CACHE_NOSTORE_PARTIAL;
	if (resp->status < 200 || resp->status == 304 || resp->status > 599)
		return CACHE_NOSTORE_STATUS;
	cache_cc_parse(req->headers, req->nheaders, &qcc);
	cache_cc_parse(resp->headers, resp->nheaders, &rcc);
	if ((qcc.flags | rcc.flags) & CACHE_CC_NO_STORE)
		return CACHE_NOSTORE_NO_STORE;
	if (rcc.flags & CACHE_CC_PRIVATE)
		return CACHE_NOSTORE_PRIVATE;
	if (cache_header_find(req->headers, req->nheaders, "authorization") != NULL &&
	    !(rcc.flags & (CACHE_CC_PUBLIC | CACHE_CC_MUST_REVALIDATE)) && rcc.s_maxage < 0)
		return CACHE_NOSTORE_AUTH;
	if (vary_star(resp->headers, resp->nheaders))
		return CACHE_NOSTORE_VARY_STAR;
	if (!p->store_set_cookie &&
	    cache_header_find(resp->headers, resp->nheaders, "set-cookie") != NULL)
		return CACHE_NOSTORE_SET_COOKIE;
	if (rcc.max_age >= 0 || rcc.s_maxage >= 0 || (rcc.flags & CACHE_CC_PUBLIC) ||
	    cache_header_find(resp->headers, resp->nheaders, "expires") != NULL ||
	    heuristic_status(resp->status) || valid_for(p, resp->status) != NULL)
		return CACHE_STORE;
	return CACHE_NOSTORE_STATUS;
}

/* ---- freshness ------------------------------------------------------------------ */

void
cache_policy_freshness(const struct cache_params *p, const struct cache_msg *resp,
                       int64_t request_time, int64_t response_time, struct cache_fresh *f)
{
	const struct cache_header *h = resp->headers, *age_h;
	size_t n = resp->nheaders;
	struct cache_cc cc;
	const struct cache_valid *v;
	int64_t date = header_date(h, n, "date"), lm, age = 0, apparent, corrected;

	cache_cc_parse(h, n, &cc);
	memset(f, 0, sizeof(*f));
	f->response_time = response_time;
	f->swr = cc.stale_while_revalidate;
	f->sie = cc.stale_if_error;
	if (cc.flags & (CACHE_CC_MUST_REVALIDATE | CACHE_CC_PROXY_REVALIDATE) || cc.s_maxage >= 0)
		f->flags |= CACHE_FRESH_MUST_REVALIDATE;
	if (cc.flags & CACHE_CC_NO_CACHE)
		f->flags |= CACHE_FRESH_NO_CACHE;
	if (cc.flags & CACHE_CC_IMMUTABLE)
		f->flags |= CACHE_FRESH_IMMUTABLE;
	if (date < 0)
		date = response_time;

	if (cc.s_maxage >= 0)
		f->lifetime = cc.s_maxage;
	else if (cc.max_age >= 0)
		f->lifetime = cc.max_age;
	else if (cache_header_find(h, n, "expires") != NULL) {
		int64_t exp = header_date(h, n, "expires");

		f->lifetime = exp < 0 || exp <= date ? 0 : exp - date;
	} else if ((v = valid_for(p, resp->status)) != NULL) {
		f->lifetime = v->seconds;
		f->flags |= CACHE_FRESH_VALID;
	} else if (p->heuristic_fraction > 0 &&
	           (heuristic_status(resp->status) || (cc.flags & CACHE_CC_PUBLIC)) &&
	           (lm = header_date(h, n, "last-modified")) >= 0 && lm < date) {
		double l = (double)(date - lm) * p->heuristic_fraction;

		f->lifetime = l > (double)p->heuristic_max ? p->heuristic_max : (int64_t)l;
		f->flags |= CACHE_FRESH_HEURISTIC;
	}

	/* RFC 9111 4.2.3 */
	if ((age_h = cache_header_find(h, n, "age")) != NULL) {
		age = parse_delta(age_h->value, age_h->value_len);
		if (age < 0)
			age = 0;
	}
	apparent = response_time - date > 0 ? response_time - date : 0;
	corrected = age + (response_time - request_time > 0 ? response_time - request_time : 0);
	f->initial_age = apparent > corrected ? apparent : corrected;
}

int64_t
cache_fresh_age(const struct cache_fresh *f, int64_t now)
{
	int64_t resident = now - f->response_time;

	return f->initial_age + (resident > 0 ? resident : 0);
}

enum cache_use
cache_policy_use(const struct cache_fresh *f, const struct cache_msg *req, int64_t now,
                 int64_t *agep)
{
	struct cache_cc cc;
	int64_t age = cache_fresh_age(f, now), staleness;
	int fresh = age < f->lifetime;

	if (agep != NULL)
		*agep = age;
	cache_cc_parse(req->headers, req->nheaders, &cc);
	if (cc.flags & (CACHE_CC_NO_CACHE | CACHE_CC_PRAGMA_NO_CACHE))
		return CACHE_USE_REVALIDATE;
	if (f->flags & CACHE_FRESH_NO_CACHE)
		return CACHE_USE_REVALIDATE;
	if (cc.max_age >= 0 && age > cc.max_age && !(fresh && (f->flags & CACHE_FRESH_IMMUTABLE)))
		return CACHE_USE_REVALIDATE;
	if (fresh) {
		if (cc.min_fresh >= 0 && f->lifetime - age < cc.min_fresh)
			return CACHE_USE_REVALIDATE;
		return CACHE_USE_FRESH;
	}
	if (f->flags & CACHE_FRESH_MUST_REVALIDATE)
		return CACHE_USE_REVALIDATE;
	staleness = age - f->lifetime;
	if ((cc.flags & CACHE_CC_MAX_STALE_ANY) || (cc.max_stale >= 0 && staleness <= cc.max_stale))
		return CACHE_USE_STALE;
	if (f->swr >= 0 && staleness <= f->swr)
		return CACHE_USE_STALE_REVALIDATE;
	return CACHE_USE_REVALIDATE;
}

int
cache_policy_stale_if_error(const struct cache_fresh *f, const struct cache_msg *req, int64_t now)
{
	struct cache_cc cc;
	int64_t staleness = cache_fresh_age(f, now) - f->lifetime, window = f->sie;

	if (f->flags & (CACHE_FRESH_MUST_REVALIDATE | CACHE_FRESH_NO_CACHE))
		return 0;
	cache_cc_parse(req->headers, req->nheaders, &cc);
	if (cc.stale_if_error >= 0)
		window = cc.stale_if_error;
	return window >= 0 && staleness <= window;
}

/* ---- validation ----------------------------------------------------------------- */

/* Weak comparison: W/ prefixes ignored, opaque tags equal. */
static int
etag_weak_eq(const char *a, size_t alen, const char *b, size_t blen)
{
	if (alen >= 2 && a[0] == 'W' && a[1] == '/')
		a += 2, alen -= 2;
	if (blen >= 2 && b[0] == 'W' && b[1] == '/')
		b += 2, blen -= 2;
	return alen == blen && memcmp(a, b, alen) == 0;
}

int
cache_policy_not_modified(const struct cache_msg *req, const char *etag, size_t etag_len,
                          int64_t last_modified)
{
	const struct cache_header *h = req->headers;
	size_t n = req->nheaders, i = 0, pos = 0, len;
	const char *e;
	int64_t ims;

	if (cache_header_find(h, n, "if-none-match") != NULL) {
		while (list_next(h, n, "if-none-match", &i, &pos, &e, &len)) {
			if (len == 1 && e[0] == '*')
				return 1;
			if (etag != NULL && etag_weak_eq(e, len, etag, etag_len))
				return 1;
		}
		return 0;
	}
	if (!(ieq(req->method, req->method_len, "GET") ||
	      ieq(req->method, req->method_len, "HEAD")))
		return 0;
	ims = header_date(h, n, "if-modified-since");
	return ims >= 0 && last_modified >= 0 && last_modified <= ims;
}

size_t
cache_policy_validators(const char *etag, size_t etag_len, int64_t last_modified,
                        struct cache_header out[2], char datebuf[30])
{
	size_t n = 0;

	if (etag != NULL && etag_len > 0) {
		out[n].name = "If-None-Match";
		out[n].name_len = 13;
		out[n].value = etag;
		out[n].value_len = etag_len;
		n++;
	}
	if (last_modified >= 0) {
		cache_http_date_format(last_modified, datebuf);
		out[n].name = "If-Modified-Since";
		out[n].name_len = 17;
		out[n].value = datebuf;
		out[n].value_len = strlen(datebuf);
		n++;
	}
	return n;
}

static int
not_updated(const struct cache_header *f)
{
	static const char *const names[] = {"content-length",
	                                    "content-range",
	                                    "transfer-encoding",
	                                    "connection",
	                                    "keep-alive",
	                                    "proxy-connection",
	                                    "te",
	                                    "trailer",
	                                    "upgrade",
	                                    "proxy-authenticate",
	                                    "proxy-authorization"};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (ieq(f->name, f->name_len, names[i]))
			return 1;
	return 0;
}

static int
name_in(const struct cache_header *h, size_t n, const struct cache_header *f)
{
	for (size_t i = 0; i < n; i++)
		if (h[i].name_len == f->name_len &&
		    strncasecmp(h[i].name, f->name, f->name_len) == 0 && !not_updated(&h[i]))
			return 1;
	return 0;
}

long
cache_policy_merge_304(const struct cache_header *stored, size_t nstored,
                       const struct cache_header *fresh, size_t nfresh, struct cache_header *out,
                       size_t cap)
{
	size_t n = 0;

	for (size_t i = 0; i < nstored; i++) {
		if (name_in(fresh, nfresh, &stored[i]))
			continue;
		if (n == cap)
			return -1;
		out[n++] = stored[i];
	}
	for (size_t i = 0; i < nfresh; i++) {
		if (not_updated(&fresh[i]))
			continue;
		if (n == cap)
			return -1;
		out[n++] = fresh[i];
	}
	return (long)n;
}

/* ---- ranges --------------------------------------------------------------------- */

/* Digits to uint64; -1 when empty, not digits, or too large. */
static int
parse_u64(const char *p, size_t len, uint64_t *out)
{
	uint64_t v = 0;

	if (len == 0 || len > 18)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(p[i] - '0');
	}
	*out = v;
	return 0;
}

enum cache_range_result
cache_policy_range(const struct cache_msg *req, uint64_t length, const char *etag, size_t etag_len,
                   int64_t last_modified, struct cache_range *r)
{
	const struct cache_header *rh, *ir;
	const char *v, *dash;
	size_t vlen;
	uint64_t a, b;

	if (!ieq(req->method, req->method_len, "GET"))
		return CACHE_RANGE_NONE;
	rh = cache_header_find(req->headers, req->nheaders, "range");
	if (rh == NULL)
		return CACHE_RANGE_NONE;
	for (size_t i = (size_t)(rh - req->headers) + 1; i < req->nheaders; i++)
		if (ieq(req->headers[i].name, req->headers[i].name_len, "range"))
			return CACHE_RANGE_NONE; /* two Range fields */
	if ((ir = cache_header_find(req->headers, req->nheaders, "if-range")) != NULL) {
		const char *iv = ir->value;
		size_t ilen = ir->value_len;

		trim(&iv, &ilen);
		if (ilen > 0 && (iv[0] == '"' || iv[0] == 'W')) {
			/* strong comparison: neither may be weak */
			if (etag == NULL || iv[0] == 'W' || etag_len < 1 || etag[0] == 'W' ||
			    ilen != etag_len || memcmp(iv, etag, ilen) != 0)
				return CACHE_RANGE_NONE;
		} else {
			int64_t d = cache_http_date(iv, ilen);

			if (d < 0 || last_modified < 0 || d != last_modified)
				return CACHE_RANGE_NONE;
		}
	}
	v = rh->value;
	vlen = rh->value_len;
	trim(&v, &vlen);
	if (vlen < 6 || strncasecmp(v, "bytes=", 6) != 0)
		return CACHE_RANGE_NONE;
	v += 6, vlen -= 6;
	trim(&v, &vlen);
	if (memchr(v, ',', vlen) != NULL || (dash = memchr(v, '-', vlen)) == NULL)
		return CACHE_RANGE_NONE;
	if (dash == v) { /* suffix: -N */
		if (parse_u64(v + 1, vlen - 1, &b) == -1)
			return CACHE_RANGE_NONE;
		if (b == 0 || length == 0)
			return CACHE_RANGE_UNSATISFIABLE;
		r->first = b >= length ? 0 : length - b;
		r->last = length - 1;
		return CACHE_RANGE_PARTIAL;
	}
	if (parse_u64(v, (size_t)(dash - v), &a) == -1)
		return CACHE_RANGE_NONE;
	if ((size_t)(dash - v) + 1 == vlen)
		b = UINT64_MAX;
	else if (parse_u64(dash + 1, vlen - (size_t)(dash - v) - 1, &b) == -1 || b < a)
		return CACHE_RANGE_NONE;
	if (a >= length)
		return CACHE_RANGE_UNSATISFIABLE;
	r->first = a;
	r->last = b >= length ? length - 1 : b;
	return CACHE_RANGE_PARTIAL;
}

/* ---- invalidation --------------------------------------------------------------- */

int
cache_method_unsafe(const char *m, size_t len)
{
	return !(ieq(m, len, "GET") || ieq(m, len, "HEAD") || ieq(m, len, "OPTIONS") ||
	         ieq(m, len, "TRACE"));
}

/* Length of "scheme://authority" of url, or 0. */
static size_t
origin_len(const char *url, size_t len)
{
	const char *p = memchr(url, ':', len), *slash;
	size_t start;

	if (p == NULL || (size_t)(p - url) + 3 > len || p[1] != '/' || p[2] != '/')
		return 0;
	start = (size_t)(p - url) + 3;
	slash = memchr(url + start, '/', len - start);
	return slash == NULL ? len : (size_t)(slash - url);
}

size_t
cache_policy_invalidations(const struct cache_msg *req, const struct cache_msg *resp,
                           const char *url, size_t url_len, char *buf, size_t cap,
                           struct cache_header out[3])
{
	static const char *const fields[2] = {"location", "content-location"};
	size_t n = 0, used = 0, olen = origin_len(url, url_len);

	if (!cache_method_unsafe(req->method, req->method_len) || resp->status < 200 ||
	    resp->status > 399 || url_len > cap)
		return 0;
	memcpy(buf, url, url_len);
	out[n].name = "target";
	out[n].name_len = 6;
	out[n].value = buf;
	out[n].value_len = url_len;
	n++;
	used = url_len;
	for (int k = 0; k < 2 && olen > 0; k++) {
		const struct cache_header *f =
		        cache_header_find(resp->headers, resp->nheaders, fields[k]);
		const char *v;
		size_t vlen, need;

		if (f == NULL)
			continue;
		v = f->value;
		vlen = f->value_len;
		trim(&v, &vlen);
		if (vlen > 0 && v[0] == '/' && (vlen == 1 || v[1] != '/')) {
			need = olen + vlen;
			if (used + need > cap)
				continue;
			memcpy(buf + used, url, olen);
			memcpy(buf + used + olen, v, vlen);
		} else {
			size_t vo = origin_len(v, vlen);

			if (vo != olen || strncasecmp(v, url, olen) != 0 || used + vlen > cap)
				continue;
			need = vlen;
			memcpy(buf + used, v, vlen);
		}
		out[n].name = fields[k];
		out[n].name_len = strlen(fields[k]);
		out[n].value = buf + used;
		out[n].value_len = need;
		used += need;
		n++;
	}
	return n;
}

/* ---- Vary ----------------------------------------------------------------------- */

long
cache_vary_names(const struct cache_header *resp, size_t n, char *out, size_t cap)
{
	const char *names[64], *e;
	size_t lens[64], count = 0, i = 0, pos = 0, len, total = 0;

	while (list_next(resp, n, "vary", &i, &pos, &e, &len)) {
		size_t k, j;

		if (len == 1 && e[0] == '*')
			return -1;
		for (k = 0; k < count; k++) {
			int c = strncasecmp(names[k], e, lens[k] < len ? lens[k] : len);

			if (c == 0 && lens[k] == len)
				break; /* duplicate */
			if (c > 0 || (c == 0 && lens[k] > len))
				goto insert;
		}
		if (k < count)
			continue;
	insert:
		if (count == 64)
			return -1;
		for (j = count; j > k; j--)
			names[j] = names[j - 1], lens[j] = lens[j - 1];
		names[k] = e;
		lens[k] = len;
		count++;
	}
	for (size_t k = 0; k < count; k++) {
		if (total + lens[k] + 1 > cap)
			return -1;
		if (k > 0)
			out[total++] = ',';
		for (size_t j = 0; j < lens[k]; j++) {
			char c = names[k][j];

			out[total++] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
		}
	}
	return (long)total;
}

void
cache_vary_key(const char *names, size_t names_len, const struct cache_header *req, size_t n,
               void (*emit)(void *arg, const void *p, size_t len), void *arg)
{
	size_t start = 0;

	while (start < names_len) {
		const char *comma = memchr(names + start, ',', names_len - start);
		size_t end = comma != NULL ? (size_t)(comma - names) : names_len;
		size_t nlen = end - start;
		int first = 1;

		emit(arg, names + start, nlen);
		emit(arg, ":", 1);
		for (size_t i = 0; i < n; i++) {
			const char *v = req[i].value;
			size_t vlen = req[i].value_len;

			if (req[i].name_len != nlen ||
			    strncasecmp(req[i].name, names + start, nlen) != 0)
				continue;
			trim(&v, &vlen);
			if (!first)
				emit(arg, ",", 1);
			emit(arg, v, vlen);
			first = 0;
		}
		emit(arg, "\n", 1);
		start = end + 1;
	}
}
