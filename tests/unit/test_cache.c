#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

/*
 * test_cache.c - unit tests of the cache library (cache/): the RFC 9111 policy as tables
 * at fixed times (directives, heuristics, age, use of stored entries, Vary, conditionals,
 * 304 merge, ranges, invalidation), and the LMDB store in a temporary directory (round
 * trips of multi-chunk bodies, abort, Vary variants, purges, eviction under a bound, a
 * tiny map, kill -9 of a writing child, readers beside the writer, corrupt and truncated
 * environments refused at open, a full file system, the proxyd-cache tool).
 *
 * Header lists are written as "Name: value\n..." strings and sliced by hl_parse().
 */

#include <sys/types.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <check.h>
#include <lmdb.h>

#include "policy.h"
#include "store.h"
#include "unit.h"

/* ---- helpers ------------------------------------------------------------------------ */

struct hl {
	struct cache_header h[32];
	size_t n;
	char buf[4096];
};

/* Slice "Name: value\n..." (a copy of s) into hl. */
static void
hl_parse(struct hl *l, const char *s)
{
	char *p = l->buf;

	l->n = 0;
	ck_assert(strlen(s) < sizeof(l->buf));
	strcpy(l->buf, s);
	while (*p != '\0') {
		char *nl = strchr(p, '\n'), *colon;

		if (nl == NULL)
			nl = p + strlen(p);
		colon = memchr(p, ':', (size_t)(nl - p));
		ck_assert(colon != NULL && l->n < 32);
		l->h[l->n].name = p;
		l->h[l->n].name_len = (size_t)(colon - p);
		colon++;
		while (*colon == ' ')
			colon++;
		l->h[l->n].value = colon;
		l->h[l->n].value_len = (size_t)(nl - colon);
		l->n++;
		p = *nl != '\0' ? nl + 1 : nl;
	}
}

static struct cache_msg
req_msg(const char *method, struct hl *l)
{
	struct cache_msg m = {method, strlen(method), 0, l->h, l->n};

	return m;
}

static struct cache_msg
resp_msg(int status, struct hl *l)
{
	struct cache_msg m = {NULL, 0, status, l->h, l->n};

	return m;
}

/* 2026-01-01 00:00:00 UTC and its IMF-fixdate */
#define T0      1767225600
#define T0_DATE "Thu, 01 Jan 2026 00:00:00 GMT"

/* ---- policy ----------------------------------------------------------------------- */

START_TEST(test_http_date)
{
	static const struct {
		const char *s;
		int64_t t;
	} t[] = {
	        {"Sun, 06 Nov 1994 08:49:37 GMT", 784111777},
	        {"Sunday, 06-Nov-94 08:49:37 GMT", 784111777},
	        {"Sun Nov  6 08:49:37 1994", 784111777},
	        {"Sun Nov  x 08:49:37 1994", -1},
	        {T0_DATE, T0},
	        {"Thu, 01 Jan 2026 00:00:00 UTC", -1},
	        {"0", -1},
	        {"", -1},
	        {"Thu, 32 Jan 2026 00:00:00 GMT", -1},
	        {"Thu, 01 Foo 2026 00:00:00 GMT", -1},
	};
	char buf[30];

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		ck_assert_msg(cache_http_date(t[i].s, strlen(t[i].s)) == t[i].t, "%s", t[i].s);
	cache_http_date_format(T0, buf);
	ck_assert_str_eq(buf, T0_DATE);
}
END_TEST

START_TEST(test_cc_parse)
{
	struct hl l;
	struct cache_cc cc;

	hl_parse(&l, "Cache-Control: public, max-age=60, s-maxage=\"120\"\n"
	             "cache-control: must-revalidate,proxy-revalidate, immutable\n"
	             "Cache-Control: stale-while-revalidate=5, stale-if-error=7, x=\"a,b\"");
	cache_cc_parse(l.h, l.n, &cc);
	ck_assert_uint_eq(cc.flags, CACHE_CC_PUBLIC | CACHE_CC_MUST_REVALIDATE |
	                                    CACHE_CC_PROXY_REVALIDATE | CACHE_CC_IMMUTABLE);
	ck_assert_int_eq(cc.max_age, 60);
	ck_assert_int_eq(cc.s_maxage, 120);
	ck_assert_int_eq(cc.stale_while_revalidate, 5);
	ck_assert_int_eq(cc.stale_if_error, 7);

	hl_parse(&l, "Cache-Control: no-cache=\"Set-Cookie\", private, no-store, max-age=abc, "
	             "max-stale, min-fresh=3, only-if-cached");
	cache_cc_parse(l.h, l.n, &cc);
	ck_assert_uint_eq(cc.flags, CACHE_CC_NO_CACHE | CACHE_CC_PRIVATE | CACHE_CC_NO_STORE |
	                                    CACHE_CC_MAX_STALE_ANY | CACHE_CC_ONLY_IF_CACHED);
	ck_assert_int_eq(cc.max_age, -1);
	ck_assert_int_eq(cc.min_fresh, 3);

	hl_parse(&l, "Pragma: no-cache");
	cache_cc_parse(l.h, l.n, &cc);
	ck_assert_uint_eq(cc.flags, CACHE_CC_PRAGMA_NO_CACHE);
	hl_parse(&l, "Pragma: no-cache\nCache-Control: max-stale=10");
	cache_cc_parse(l.h, l.n, &cc);
	ck_assert_uint_eq(cc.flags, 0);
	ck_assert_int_eq(cc.max_stale, 10);
}
END_TEST

START_TEST(test_storable)
{
	static const struct cache_valid valid[] = {{302, 60}};
	static const struct {
		const char *method;
		const char *req;
		int status;
		const char *resp;
		int set_cookie;
		enum cache_verdict v;
	} t[] = {
	        {"GET", "", 200, "", 0, CACHE_STORE},
	        {"HEAD", "", 200, "", 0, CACHE_NOSTORE_METHOD},
	        {"POST", "", 200, "Cache-Control: max-age=60", 0, CACHE_NOSTORE_METHOD},
	        {"get", "", 200, "", 0, CACHE_NOSTORE_METHOD},
	        {"GET", "", 206, "Cache-Control: max-age=60", 0, CACHE_NOSTORE_PARTIAL},
	        {"GET", "", 304, "", 0, CACHE_NOSTORE_STATUS},
	        {"GET", "", 302, "", 0, CACHE_STORE}, /* cache_valid table */
	        {"GET", "", 307, "", 0, CACHE_NOSTORE_STATUS},
	        {"GET", "", 307, "Cache-Control: max-age=5", 0, CACHE_STORE},
	        {"GET", "", 500, "Expires: " T0_DATE, 0, CACHE_STORE},
	        {"GET", "", 503, "Cache-Control: public", 0, CACHE_STORE},
	        {"GET", "", 404, "", 0, CACHE_STORE},
	        {"GET", "", 410, "", 0, CACHE_STORE},
	        {"GET", "", 501, "", 0, CACHE_STORE},
	        {"GET", "", 200, "Cache-Control: no-store", 0, CACHE_NOSTORE_NO_STORE},
	        {"GET", "Cache-Control: no-store", 200, "", 0, CACHE_NOSTORE_NO_STORE},
	        {"GET", "", 200, "Cache-Control: private, max-age=60", 0, CACHE_NOSTORE_PRIVATE},
	        {"GET", "", 200, "Cache-Control: no-cache", 0, CACHE_STORE},
	        {"GET", "Authorization: Basic eDp5", 200, "Cache-Control: max-age=60", 0,
	         CACHE_NOSTORE_AUTH},
	        {"GET", "Authorization: Basic eDp5", 200, "Cache-Control: public", 0, CACHE_STORE},
	        {"GET", "Authorization: Basic eDp5", 200, "Cache-Control: s-maxage=5", 0,
	         CACHE_STORE},
	        {"GET", "Authorization: Basic eDp5", 200, "Cache-Control: must-revalidate", 0,
	         CACHE_STORE},
	        {"GET", "", 200, "Vary: Accept-Encoding, *", 0, CACHE_NOSTORE_VARY_STAR},
	        {"GET", "", 200, "Vary: Accept-Encoding", 0, CACHE_STORE},
	        {"GET", "", 200, "Set-Cookie: a=b", 0, CACHE_NOSTORE_SET_COOKIE},
	        {"GET", "", 200, "Set-Cookie: a=b", 1, CACHE_STORE},
	};
	struct cache_params p;
	struct hl rq, rs;

	cache_params_default(&p);
	p.valid = valid;
	p.nvalid = 1;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct cache_msg q, r;

		hl_parse(&rq, t[i].req);
		hl_parse(&rs, t[i].resp);
		q = req_msg(t[i].method, &rq);
		r = resp_msg(t[i].status, &rs);
		p.store_set_cookie = t[i].set_cookie;
		ck_assert_msg(cache_policy_storable(&p, &q, &r) == t[i].v, "row %zu: %s", i,
		              cache_verdict_str(cache_policy_storable(&p, &q, &r)));
	}
}
END_TEST

START_TEST(test_lifetime)
{
	static const struct cache_valid valid[] = {{404, 30}, {0, 5}};
	static const struct {
		int status;
		const char *resp;
		int64_t lifetime;
		unsigned flags;
	} t[] = {
	        {200, "Cache-Control: max-age=60, s-maxage=120", 120, CACHE_FRESH_MUST_REVALIDATE},
	        {200, "Cache-Control: max-age=60\nExpires: Thu, 01 Jan 2026 01:00:00 GMT", 60, 0},
	        {200, "Date: " T0_DATE "\nExpires: Thu, 01 Jan 2026 01:00:00 GMT", 3600, 0},
	        {200, "Date: " T0_DATE "\nExpires: 0", 0, 0},
	        {200, "Date: " T0_DATE "\nExpires: Wed, 31 Dec 2025 00:00:00 GMT", 0, 0},
	        /* heuristic: 10% of 10 days */
	        {200, "Date: " T0_DATE "\nLast-Modified: Mon, 22 Dec 2025 00:00:00 GMT", 86400,
	         CACHE_FRESH_HEURISTIC},
	        /* capped at a day */
	        {200, "Date: " T0_DATE "\nLast-Modified: Mon, 01 Dec 2025 00:00:00 GMT", 86400,
	         CACHE_FRESH_HEURISTIC},
	        {200, "Date: " T0_DATE "\nLast-Modified: Thu, 01 Jan 2026 00:00:00 GMT", 5,
	         CACHE_FRESH_VALID},
	        {404, "", 30, CACHE_FRESH_VALID},
	        {200, "Cache-Control: no-cache, must-revalidate, immutable, max-age=9", 9,
	         CACHE_FRESH_NO_CACHE | CACHE_FRESH_MUST_REVALIDATE | CACHE_FRESH_IMMUTABLE},
	};
	struct cache_params p;
	struct cache_fresh f;
	struct hl rs;

	cache_params_default(&p);
	p.valid = valid;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct cache_msg r;

		hl_parse(&rs, t[i].resp);
		r = resp_msg(t[i].status, &rs);
		p.nvalid = strstr(t[i].resp, "Last-Modified: Thu") != NULL || t[i].status == 404
		                   ? 2
		                   : 0;
		if (i == 6)
			p.heuristic_fraction = 0.1;
		cache_policy_freshness(&p, &r, T0, T0, &f);
		ck_assert_msg(f.lifetime == t[i].lifetime, "row %zu: %lld", i,
		              (long long)f.lifetime);
		ck_assert_msg(f.flags == t[i].flags, "row %zu: flags %x", i, f.flags);
	}
	/* fraction 0 disables the heuristic */
	p.heuristic_fraction = 0;
	p.nvalid = 0;
	hl_parse(&rs, "Date: " T0_DATE "\nLast-Modified: Mon, 22 Dec 2025 00:00:00 GMT");
	{
		struct cache_msg r = resp_msg(200, &rs);

		cache_policy_freshness(&p, &r, T0, T0, &f);
		ck_assert_int_eq(f.lifetime, 0);
	}
}
END_TEST

START_TEST(test_age)
{
	struct cache_params p;
	struct cache_fresh f;
	struct hl rs;
	struct cache_msg r;

	cache_params_default(&p);
	/* Date 10 s before the response arrived, Age 3, 2 s round trip */
	hl_parse(&rs, "Date: " T0_DATE "\nAge: 3\nCache-Control: max-age=100");
	r = resp_msg(200, &rs);
	cache_policy_freshness(&p, &r, T0 + 8, T0 + 10, &f);
	ck_assert_int_eq(f.initial_age, 10); /* max(apparent 10, 3 + 2) */
	ck_assert_int_eq(cache_fresh_age(&f, T0 + 10), 10);
	ck_assert_int_eq(cache_fresh_age(&f, T0 + 50), 50);
	/* Age dominates: 30 + 2 */
	hl_parse(&rs, "Date: " T0_DATE "\nAge: 30");
	r = resp_msg(200, &rs);
	cache_policy_freshness(&p, &r, T0 + 8, T0 + 10, &f);
	ck_assert_int_eq(f.initial_age, 32);
	/* no Date, clock skew: a Date in the future is apparent age 0 */
	hl_parse(&rs, "Date: Thu, 01 Jan 2026 01:00:00 GMT");
	r = resp_msg(200, &rs);
	cache_policy_freshness(&p, &r, T0, T0, &f);
	ck_assert_int_eq(f.initial_age, 0);
	hl_parse(&rs, "Age: junk");
	r = resp_msg(200, &rs);
	cache_policy_freshness(&p, &r, T0, T0 + 1, &f);
	ck_assert_int_eq(f.initial_age, 1);
}
END_TEST

START_TEST(test_use)
{
	static const struct {
		const char *resp;
		const char *req;
		int64_t at; /* seconds after storing */
		enum cache_use use;
	} t[] = {
	        {"Cache-Control: max-age=60", "", 10, CACHE_USE_FRESH},
	        {"Cache-Control: max-age=60", "", 60, CACHE_USE_REVALIDATE},
	        {"Cache-Control: max-age=60", "Cache-Control: no-cache", 10, CACHE_USE_REVALIDATE},
	        {"Cache-Control: max-age=60", "Pragma: no-cache", 10, CACHE_USE_REVALIDATE},
	        {"Cache-Control: max-age=60", "Cache-Control: max-age=5", 10, CACHE_USE_REVALIDATE},
	        {"Cache-Control: max-age=60", "Cache-Control: max-age=50", 10, CACHE_USE_FRESH},
	        {"Cache-Control: max-age=60", "Cache-Control: min-fresh=55", 10,
	         CACHE_USE_REVALIDATE},
	        {"Cache-Control: max-age=60", "Cache-Control: min-fresh=20", 10, CACHE_USE_FRESH},
	        {"Cache-Control: max-age=60", "Cache-Control: max-stale=30", 80, CACHE_USE_STALE},
	        {"Cache-Control: max-age=60", "Cache-Control: max-stale=10", 80,
	         CACHE_USE_REVALIDATE},
	        {"Cache-Control: max-age=60", "Cache-Control: max-stale", 9999, CACHE_USE_STALE},
	        {"Cache-Control: max-age=60, must-revalidate", "Cache-Control: max-stale", 80,
	         CACHE_USE_REVALIDATE},
	        {"Cache-Control: s-maxage=60", "Cache-Control: max-stale", 80,
	         CACHE_USE_REVALIDATE},
	        {"Cache-Control: max-age=60, no-cache", "", 10, CACHE_USE_REVALIDATE},
	        {"Cache-Control: max-age=60, stale-while-revalidate=30", "", 80,
	         CACHE_USE_STALE_REVALIDATE},
	        {"Cache-Control: max-age=60, stale-while-revalidate=30", "", 100,
	         CACHE_USE_REVALIDATE},
	        {"Cache-Control: max-age=600, immutable", "Cache-Control: max-age=0", 10,
	         CACHE_USE_FRESH},
	        {"Cache-Control: max-age=600, immutable", "Cache-Control: no-cache", 10,
	         CACHE_USE_REVALIDATE},
	};
	struct cache_params p;
	struct hl rq, rs;

	cache_params_default(&p);
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct cache_fresh f;
		struct cache_msg q, r;
		int64_t age;

		hl_parse(&rs, t[i].resp);
		hl_parse(&rq, t[i].req);
		r = resp_msg(200, &rs);
		q = req_msg("GET", &rq);
		cache_policy_freshness(&p, &r, T0, T0, &f);
		ck_assert_msg(cache_policy_use(&f, &q, T0 + t[i].at, &age) == t[i].use, "row %zu",
		              i);
		ck_assert_int_eq(age, t[i].at);
	}
}
END_TEST

START_TEST(test_stale_if_error)
{
	struct cache_params p;
	struct cache_fresh f;
	struct hl rq, rs;
	struct cache_msg q, r;

	cache_params_default(&p);
	hl_parse(&rs, "Cache-Control: max-age=60, stale-if-error=100");
	hl_parse(&rq, "");
	r = resp_msg(200, &rs);
	q = req_msg("GET", &rq);
	cache_policy_freshness(&p, &r, T0, T0, &f);
	ck_assert_int_eq(cache_policy_stale_if_error(&f, &q, T0 + 150), 1);
	ck_assert_int_eq(cache_policy_stale_if_error(&f, &q, T0 + 161), 0);
	hl_parse(&rq, "Cache-Control: stale-if-error=500");
	q = req_msg("GET", &rq);
	ck_assert_int_eq(cache_policy_stale_if_error(&f, &q, T0 + 400), 1);
	hl_parse(&rs, "Cache-Control: max-age=60, stale-if-error=100, must-revalidate");
	r = resp_msg(200, &rs);
	cache_policy_freshness(&p, &r, T0, T0, &f);
	ck_assert_int_eq(cache_policy_stale_if_error(&f, &q, T0 + 70), 0);
	hl_parse(&rs, "Cache-Control: max-age=60");
	hl_parse(&rq, "");
	r = resp_msg(200, &rs);
	q = req_msg("GET", &rq);
	cache_policy_freshness(&p, &r, T0, T0, &f);
	ck_assert_int_eq(cache_policy_stale_if_error(&f, &q, T0 + 70), 0);
}
END_TEST

static void
emit_buf(void *arg, const void *p, size_t len)
{
	strncat(arg, p, len);
}

START_TEST(test_vary)
{
	struct hl rs, rq;
	char names[256], key[512];
	long n;

	hl_parse(&rs, "Vary: User-Agent,  accept-encoding\nVary: Accept-Encoding, Accept");
	n = cache_vary_names(rs.h, rs.n, names, sizeof(names));
	ck_assert_int_eq(n, (long)strlen("accept,accept-encoding,user-agent"));
	names[n] = 0;
	ck_assert_str_eq(names, "accept,accept-encoding,user-agent");
	hl_parse(&rs, "Vary: *");
	ck_assert_int_eq(cache_vary_names(rs.h, rs.n, names, sizeof(names)), -1);
	hl_parse(&rs, "Content-Type: text/plain");
	ck_assert_int_eq(cache_vary_names(rs.h, rs.n, names, sizeof(names)), 0);
	ck_assert_int_eq(cache_vary_names(rs.h, rs.n, names, 0), 0);

	hl_parse(&rq, "ACCEPT-Encoding:  gzip \nUser-Agent: x\naccept-encoding: br\nHost: h");
	key[0] = 0;
	cache_vary_key("accept,accept-encoding,user-agent", 33, rq.h, rq.n, emit_buf, key);
	ck_assert_str_eq(key, "accept:\naccept-encoding:gzip,br\nuser-agent:x\n");
}
END_TEST

START_TEST(test_conditional)
{
	static const struct {
		const char *method;
		const char *req;
		int not_modified;
	} t[] = {
	        {"GET", "If-None-Match: \"a\", \"b\"", 1},
	        {"GET", "If-None-Match: W/\"b\"", 1},
	        {"GET", "If-None-Match: \"c\"", 0},
	        {"GET", "If-None-Match: *", 1},
	        /* If-None-Match wins over a matching If-Modified-Since */
	        {"GET", "If-None-Match: \"c\"\nIf-Modified-Since: " T0_DATE, 0},
	        {"GET", "If-Modified-Since: " T0_DATE, 1},
	        {"HEAD", "If-Modified-Since: Wed, 31 Dec 2025 23:59:59 GMT", 0},
	        {"POST", "If-Modified-Since: " T0_DATE, 0},
	        {"GET", "If-Modified-Since: junk", 0},
	        {"GET", "", 0},
	};
	struct cache_header out[2];
	char datebuf[30];
	struct hl rq;

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct cache_msg q;

		hl_parse(&rq, t[i].req);
		q = req_msg(t[i].method, &rq);
		ck_assert_msg(cache_policy_not_modified(&q, "\"b\"", 3, T0) == t[i].not_modified,
		              "row %zu", i);
	}
	ck_assert_uint_eq(cache_policy_validators("\"b\"", 3, T0, out, datebuf), 2);
	ck_assert_int_eq(strncmp(out[0].name, "If-None-Match", out[0].name_len), 0);
	ck_assert_int_eq(strncmp(out[0].value, "\"b\"", out[0].value_len), 0);
	ck_assert_int_eq(strncmp(out[1].name, "If-Modified-Since", out[1].name_len), 0);
	ck_assert_str_eq(out[1].value, T0_DATE);
	ck_assert_uint_eq(cache_policy_validators(NULL, 0, -1, out, datebuf), 0);
}
END_TEST

START_TEST(test_merge_304)
{
	struct hl st, fr;
	struct cache_header out[32];
	long n;
	char got[1024] = "";

	hl_parse(&st, "Content-Type: text/html\nContent-Length: 10\nETag: \"1\"\n"
	              "Cache-Control: max-age=10\nX-A: 1\nX-A: 2");
	hl_parse(&fr, "ETag: \"2\"\nCache-Control: max-age=99\nContent-Length: 0\n"
	              "Connection: close\nx-a: 3\nDate: " T0_DATE);
	n = cache_policy_merge_304(st.h, st.n, fr.h, fr.n, out, 32);
	ck_assert_int_eq(n, 6);
	for (long i = 0; i < n; i++) {
		strncat(got, out[i].name, out[i].name_len);
		strcat(got, "=");
		strncat(got, out[i].value, out[i].value_len);
		strcat(got, ";");
	}
	ck_assert_str_eq(got, "Content-Type=text/html;Content-Length=10;ETag=\"2\";"
	                      "Cache-Control=max-age=99;x-a=3;Date=" T0_DATE ";");
	ck_assert_int_eq(cache_policy_merge_304(st.h, st.n, fr.h, fr.n, out, 3), -1);
}
END_TEST

START_TEST(test_range)
{
	static const struct {
		const char *method;
		const char *req;
		uint64_t length;
		enum cache_range_result res;
		uint64_t first, last;
	} t[] = {
	        {"GET", "", 100, CACHE_RANGE_NONE, 0, 0},
	        {"GET", "Range: bytes=0-9", 100, CACHE_RANGE_PARTIAL, 0, 9},
	        {"GET", "Range: bytes=90-", 100, CACHE_RANGE_PARTIAL, 90, 99},
	        {"GET", "Range: bytes=90-1000", 100, CACHE_RANGE_PARTIAL, 90, 99},
	        {"GET", "Range: bytes=-10", 100, CACHE_RANGE_PARTIAL, 90, 99},
	        {"GET", "Range: bytes=-1000", 100, CACHE_RANGE_PARTIAL, 0, 99},
	        {"GET", "Range: bytes=100-", 100, CACHE_RANGE_UNSATISFIABLE, 0, 0},
	        {"GET", "Range: bytes=-0", 100, CACHE_RANGE_UNSATISFIABLE, 0, 0},
	        {"GET", "Range: bytes=0-1,5-6", 100, CACHE_RANGE_NONE, 0, 0},
	        {"GET", "Range: bytes=5-1", 100, CACHE_RANGE_NONE, 0, 0},
	        {"GET", "Range: items=0-1", 100, CACHE_RANGE_NONE, 0, 0},
	        {"GET", "Range: bytes=a-b", 100, CACHE_RANGE_NONE, 0, 0},
	        {"HEAD", "Range: bytes=0-1", 100, CACHE_RANGE_NONE, 0, 0},
	        {"GET", "Range: bytes=0-1\nIf-Range: \"e\"", 100, CACHE_RANGE_PARTIAL, 0, 1},
	        {"GET", "Range: bytes=0-1\nIf-Range: \"x\"", 100, CACHE_RANGE_NONE, 0, 0},
	        {"GET", "Range: bytes=0-1\nIf-Range: W/\"e\"", 100, CACHE_RANGE_NONE, 0, 0},
	        {"GET", "Range: bytes=0-1\nIf-Range: " T0_DATE, 100, CACHE_RANGE_PARTIAL, 0, 1},
	        {"GET", "Range: bytes=0-1\nIf-Range: Wed, 31 Dec 2025 23:59:59 GMT", 100,
	         CACHE_RANGE_NONE, 0, 0},
	        {"GET", "Range: bytes=0-1\nRange: bytes=2-3", 100, CACHE_RANGE_NONE, 0, 0},
	};
	struct hl rq;

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct cache_range r = {0, 0};
		struct cache_msg q;
		enum cache_range_result res;

		hl_parse(&rq, t[i].req);
		q = req_msg(t[i].method, &rq);
		res = cache_policy_range(&q, t[i].length, "\"e\"", 3, T0, &r);
		ck_assert_msg(res == t[i].res, "row %zu: %d", i, res);
		if (res == CACHE_RANGE_PARTIAL)
			ck_assert_msg(r.first == t[i].first && r.last == t[i].last, "row %zu", i);
	}
}
END_TEST

START_TEST(test_invalidations)
{
	static const struct {
		const char *method;
		int status;
		const char *resp;
		size_t n;
		const char *urls; /* joined by spaces */
	} t[] = {
	        {"GET", 200, "Location: /x", 0, ""},
	        {"POST", 500, "Location: /x", 0, ""},
	        {"POST", 200, "", 1, "http://h/p"},
	        {"DELETE", 204, "Location: /x\nContent-Location: http://h/y", 3,
	         "http://h/p http://h/x http://h/y"},
	        {"PUT", 201, "Location: http://other/x\nContent-Location: //evil/y", 1,
	         "http://h/p"},
	        {"PATCH", 303, "Location: https://h/x", 1, "http://h/p"},
	        {"POST", 302, "Content-Location: http://h:8080/x", 1, "http://h/p"},
	};
	struct hl rq, rs;

	ck_assert_int_eq(cache_method_unsafe("OPTIONS", 7), 0);
	ck_assert_int_eq(cache_method_unsafe("PURGE", 5), 1);
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct cache_header out[3];
		struct cache_msg q, r;
		char buf[256], got[512] = "";
		size_t n;

		hl_parse(&rq, "");
		hl_parse(&rs, t[i].resp);
		q = req_msg(t[i].method, &rq);
		r = resp_msg(t[i].status, &rs);
		n = cache_policy_invalidations(&q, &r, "http://h/p", 10, buf, sizeof(buf), out);
		ck_assert_msg(n == t[i].n, "row %zu: %zu", i, n);
		for (size_t j = 0; j < n; j++) {
			if (j > 0)
				strcat(got, " ");
			strncat(got, out[j].value, out[j].value_len);
		}
		ck_assert_str_eq(got, t[i].urls);
	}
}
END_TEST

/* ---- store ----------------------------------------------------------------------- */

static struct cache_store *
store_open(uint64_t max_size, uint64_t map_size, uint32_t chunk_size)
{
	struct cache_store_params p;
	struct cache_store *s;
	char *err = NULL;

	memset(&p, 0, sizeof(p));
	p.path = unit_tmpdir;
	p.max_size = max_size;
	p.map_size = map_size;
	p.chunk_size = chunk_size;
	p.flags = CACHE_F_NOSYNC;
	s = cache_store_open(&p, &err);
	ck_assert_msg(s != NULL, "%s", err != NULL ? err : "?");
	return s;
}

static unsigned char
body_byte(const char *url, uint64_t i)
{
	return (unsigned char)(strlen(url) * 31 + url[strlen(url) - 1] + i * 7 + i / 251);
}

/* Store url with body_len bytes (written in pieces of 777) and headers resp. */
static int
store_put(struct cache_store *s, const char *url, const char *resp, const char *req,
          uint64_t body_len)
{
	struct cache_key k;
	struct cache_object o;
	struct cache_params p;
	struct hl rs, rq;
	struct cache_msg r;
	struct cache_put *put;
	unsigned char buf[777];

	hl_parse(&rs, resp);
	hl_parse(&rq, req);
	cache_params_default(&p);
	r = resp_msg(200, &rs);
	memset(&o, 0, sizeof(o));
	o.url = url;
	o.url_len = strlen(url);
	o.status = 200;
	o.headers = rs.h;
	o.nheaders = rs.n;
	o.req_headers = rq.h;
	o.nreq_headers = rq.n;
	o.request_time = o.response_time = T0;
	o.expected_len = (int64_t)body_len;
	cache_policy_freshness(&p, &r, T0, T0, &o.fresh);
	cache_key_make(&k, "GET", 3, url, strlen(url));
	if ((put = cache_put_begin(s, &k, &o)) == NULL)
		return -1;
	for (uint64_t off = 0; off < body_len;) {
		size_t n = body_len - off < sizeof(buf) ? (size_t)(body_len - off) : sizeof(buf);

		for (size_t i = 0; i < n; i++)
			buf[i] = body_byte(url, off + i);
		if (cache_put_write(put, buf, n) == -1) {
			cache_put_abort(put);
			return -1;
		}
		off += n;
	}
	return cache_put_commit(put);
}

/* 1: url is a hit for a request with headers req and its body reads back whole. */
static int
store_check(struct cache_store *s, const char *url, const char *req, uint64_t body_len)
{
	struct cache_key k;
	struct cache_meta *m;
	struct hl rq;
	unsigned char buf[1000];
	uint64_t off = 0;
	int rc, bad = 0;

	hl_parse(&rq, req);
	cache_key_make(&k, "HEAD", 4, url, strlen(url)); /* a GET entry answers HEAD */
	rc = cache_get(s, &k, rq.h, rq.n, CACHE_GET_COUNT, &m);
	if (rc != 1)
		return rc;
	ck_assert_uint_eq(m->body_len, body_len);
	ck_assert_int_eq(m->status, 200);
	ck_assert_int_eq((int)m->url_len, (int)strlen(url));
	for (;;) {
		ssize_t n = cache_read(s, m, off, buf, sizeof(buf) - (off % 3));

		if (n == -1) {
			cache_meta_free(m);
			return -1;
		}
		if (n == 0)
			break;
		/* one check per read: Check records every assertion that passes */
		for (ssize_t i = 0; i < n; i++)
			bad += buf[i] != body_byte(url, off + (uint64_t)i);
		ck_assert_int_eq(bad, 0);
		off += (uint64_t)n;
	}
	ck_assert_uint_eq(off, body_len);
	cache_meta_free(m);
	return 1;
}

static void
report_stderr(void *arg, const char *msg)
{
	(void)arg;
	fprintf(stderr, "verify: %s\n", msg);
}

/* How lookups count: a request once, as what it was answered with (store.h). */
START_TEST(test_store_get_counts)
{
	struct cache_store *s = store_open(64 << 20, 0, 1000);
	struct cache_stats st;
	struct cache_meta *m;
	struct cache_key k, none;

	ck_assert_int_eq(store_put(s, "http://a/x", "", "", 100), 0);
	cache_store_flush(s);
	cache_key_make(&k, "GET", 3, "http://a/x", 10);
	cache_key_make(&none, "GET", 3, "http://a/none", 13);
#define COUNTS(h, mi)                                                                              \
	do {                                                                                       \
		ck_assert_int_eq(cache_stats(s, &st), 0);                                          \
		ck_assert_uint_eq(st.hits, (h));                                                   \
		ck_assert_uint_eq(st.misses, (mi));                                                \
	} while (0)
	COUNTS(0, 0);
	ck_assert_int_eq(cache_get(s, &none, NULL, 0, CACHE_GET_COUNT, &m), 0);
	COUNTS(0, 1); /* a request missed and waits for another's fetch */
	ck_assert_int_eq(cache_get(s, &none, NULL, 0, CACHE_GET_AGAIN, &m), 0);
	COUNTS(0, 1); /* woken, it misses again (goes upstream): still one miss */
	ck_assert_int_eq(cache_get(s, &none, NULL, 0, CACHE_GET_COUNT, &m), 0);
	ck_assert_int_eq(cache_get(s, &k, NULL, 0, CACHE_GET_AGAIN, &m), 1);
	cache_meta_free(m);
	COUNTS(1, 1); /* another waiter finds the object: its miss became a hit */
	ck_assert_int_eq(cache_get(s, &k, NULL, 0, CACHE_GET_COUNT, &m), 1);
	cache_meta_free(m);
	COUNTS(2, 1);
	ck_assert_int_eq(cache_get(s, &k, NULL, 0, CACHE_GET_QUIET, &m), 1);
	cache_meta_free(m);
	ck_assert_int_eq(cache_get(s, &none, NULL, 0, CACHE_GET_QUIET, &m), 0);
	COUNTS(2, 1); /* a PURGE's or a stale fallback's lookup: not a request's answer */
#undef COUNTS
	cache_store_close(s);
}
END_TEST

START_TEST(test_store_roundtrip)
{
	struct cache_store *s = store_open(64 << 20, 0, 1000);
	struct cache_stats st;
	struct cache_meta *m;
	struct cache_key k;
	struct cache_header h[16];
	long n;

	ck_assert_int_eq(store_put(s, "http://a/x",
	                           "ETag: \"v1\"\nContent-Type: text/plain\n"
	                           "Last-Modified: " T0_DATE,
	                           "", 10123),
	                 0);
	ck_assert_int_eq(store_put(s, "http://a/empty", "", "", 0), 0);
	ck_assert_int_eq(store_put(s, "http://a/exact", "", "", 3000), 0);
	cache_store_flush(s);
	ck_assert_int_eq(store_check(s, "http://a/x", "", 10123), 1);
	ck_assert_int_eq(store_check(s, "http://a/empty", "", 0), 1);
	ck_assert_int_eq(store_check(s, "http://a/exact", "", 3000), 1);
	ck_assert_int_eq(store_check(s, "http://a/none", "", 0), 0);

	cache_key_make(&k, "GET", 3, "http://a/x", 10);
	ck_assert_int_eq(cache_get(s, &k, NULL, 0, CACHE_GET_COUNT, &m), 1);
	ck_assert_int_eq(strncmp(m->etag, "\"v1\"", m->etag_len), 0);
	ck_assert_int_eq(m->last_modified, T0);
	n = cache_meta_headers(m, h, 16);
	ck_assert_int_eq(n, 3);
	ck_assert_int_eq(strncmp(h[1].name, "Content-Type", h[1].name_len), 0);
	ck_assert_int_eq(strncmp(h[1].value, "text/plain", h[1].value_len), 0);
	/* reads from the middle, across chunk boundaries */
	{
		unsigned char b[2500];

		ck_assert_int_eq(cache_read(s, m, 999, b, sizeof(b)), 2500);
		int bad = 0;

		for (int i = 0; i < 2500; i++)
			bad += b[i] != body_byte("http://a/x", 999 + (uint64_t)i);
		ck_assert_int_eq(bad, 0);
		ck_assert_int_eq(cache_read(s, m, 10120, b, sizeof(b)), 3);
		ck_assert_int_eq(cache_read(s, m, 10123, b, sizeof(b)), 0);
	}
	/* 304 update: new headers, same body */
	{
		struct hl nh;
		struct cache_fresh f = m->fresh;

		hl_parse(&nh, "ETag: \"v2\"\nContent-Type: text/plain");
		f.lifetime = 77;
		ck_assert_int_eq(cache_update(s, m, nh.h, nh.n, T0 + 5, T0 + 6, &f), 0);
		cache_store_flush(s);
	}
	cache_meta_free(m);
	ck_assert_int_eq(cache_get(s, &k, NULL, 0, CACHE_GET_COUNT, &m), 1);
	ck_assert_int_eq(strncmp(m->etag, "\"v2\"", m->etag_len), 0);
	ck_assert_int_eq(m->fresh.lifetime, 77);
	ck_assert_int_eq(m->response_time, T0 + 6);
	cache_meta_free(m);
	ck_assert_int_eq(store_check(s, "http://a/x", "", 10123), 1);

	/* replacing an entry frees the old body */
	ck_assert_int_eq(store_put(s, "http://a/x", "", "", 5), 0);
	cache_store_flush(s);
	ck_assert_int_eq(store_check(s, "http://a/x", "", 5), 1);
	ck_assert_int_eq(cache_verify(s, report_stderr, NULL), 0);
	ck_assert_int_eq(cache_stats(s, &st), 0);
	ck_assert_uint_eq(st.entries, 3);
	ck_assert_uint_eq(st.stored, 4);
	ck_assert_uint_ge(st.hits, 5);
	ck_assert_uint_ge(st.misses, 1);

	/* too large: refused at begin, or when the body exceeds max_object_size */
	cache_store_close(s);
	s = store_open(64 << 20, 0, 1000);
	ck_assert_int_eq(store_put(s, "http://a/huge", "", "", (64 << 20) / 8 + 1), -1);
	{
		struct cache_object o;
		struct cache_put *put;
		static unsigned char big[1 << 20];

		memset(&o, 0, sizeof(o));
		o.url = "http://a/big";
		o.url_len = 12;
		o.status = 200;
		o.expected_len = -1;
		cache_key_make(&k, "GET", 3, o.url, o.url_len);
		ck_assert_ptr_nonnull(put = cache_put_begin(s, &k, &o));
		for (int i = 0; i < 8; i++)
			ck_assert_int_eq(cache_put_write(put, big, sizeof(big)), 0);
		ck_assert_int_eq(cache_put_write(put, big, 1), -1);
		ck_assert_int_eq(cache_put_commit(put), -1);
	}
	cache_store_flush(s);
	ck_assert_int_eq(store_check(s, "http://a/big", "", 0), 0);
	ck_assert_int_eq(cache_verify(s, report_stderr, NULL), 0);
	cache_store_close(s);
}
END_TEST

/*
 * cache_view lends the body in place, a chunk at a time, and the bytes stay as they were
 * until the view ends even when the entry is replaced and its pages freed meanwhile.
 */
START_TEST(test_store_view)
{
	struct cache_store *s = store_open(64 << 20, 0, 1000);
	struct cache_view v;
	struct cache_meta *m;
	struct cache_key k;
	const void *p, *held;
	unsigned char copy[1000];
	uint64_t off = 0;
	ssize_t n;
	int bad = 0, pieces = 0;

	ck_assert_int_eq(store_put(s, "http://a/v", "", "", 10123), 0);
	cache_store_flush(s);
	cache_key_make(&k, "GET", 3, "http://a/v", 10);
	ck_assert_int_eq(cache_get(s, &k, NULL, 0, CACHE_GET_COUNT, &m), 1);
	ck_assert_int_eq(cache_view_begin(s, &v), 0);
	/* from the middle of a chunk: to its end at most */
	ck_assert_int_eq(cache_view(&v, m, 999, 2500, &p), 1);
	ck_assert_int_eq(*(const unsigned char *)p, body_byte("http://a/v", 999));
	ck_assert_int_eq(cache_view(&v, m, 1000, 2500, &p), 1000);
	ck_assert_int_eq(cache_view(&v, m, 10000, 2500, &p), 123);
	ck_assert_int_eq(cache_view(&v, m, 10123, 2500, &p), 0);
	while ((n = cache_view(&v, m, off, 4096, &p)) > 0) {
		for (ssize_t i = 0; i < n; i++)
			bad += ((const unsigned char *)p)[i] !=
			       body_byte("http://a/v", off + (uint64_t)i);
		off += (uint64_t)n;
		pieces++;
	}
	ck_assert_int_eq(n, 0);
	ck_assert_int_eq(bad, 0);
	ck_assert_uint_eq(off, 10123);
	ck_assert_int_eq(pieces, 11);

	/* the entry replaced, its chunks deleted, other objects written: the view still holds */
	ck_assert_int_eq(cache_view(&v, m, 0, 1000, &held), 1000);
	memcpy(copy, held, sizeof(copy));
	ck_assert_int_eq(store_put(s, "http://a/v", "", "", 5), 0);
	for (int i = 0; i < 20; i++) {
		char url[32];

		snprintf(url, sizeof(url), "http://a/churn%d", i);
		ck_assert_int_eq(store_put(s, url, "", "", 20000), 0);
		cache_store_flush(s);
	}
	ck_assert_int_eq(memcmp(held, copy, sizeof(copy)), 0);
	cache_view_end(&v);

	/* a new view sees that the entry is gone */
	ck_assert_int_eq(cache_view_begin(s, &v), 0);
	ck_assert_int_eq(cache_view(&v, m, 0, 1000, &p), -1);
	cache_view_end(&v);
	cache_view_end(&v); /* a second end is harmless */
	cache_meta_free(m);
	ck_assert_int_eq(store_check(s, "http://a/v", "", 5), 1);
	cache_store_close(s);
}
END_TEST

START_TEST(test_store_abort)
{
	struct cache_store *s = store_open(64 << 20, 0, 1000);
	struct cache_stats st;
	struct cache_key k;
	struct cache_object o;
	struct cache_put *put;
	static unsigned char buf[5000];

	memset(&o, 0, sizeof(o));
	o.url = "http://a/aborted";
	o.url_len = strlen(o.url);
	o.status = 200;
	o.expected_len = -1;
	cache_key_make(&k, "GET", 3, o.url, o.url_len);
	ck_assert_ptr_nonnull(put = cache_put_begin(s, &k, &o));
	ck_assert_int_eq(cache_put_write(put, buf, sizeof(buf)), 0);
	cache_store_flush(s); /* its chunks are in the environment now */
	ck_assert_int_eq(cache_put_write(put, buf, sizeof(buf)), 0);
	cache_put_abort(put);
	/* a commit of a body shorter than Content-Length is an abort */
	o.expected_len = 100;
	ck_assert_ptr_nonnull(put = cache_put_begin(s, &k, &o));
	ck_assert_int_eq(cache_put_write(put, buf, 50), 0);
	ck_assert_int_eq(cache_put_commit(put), -1);
	cache_store_flush(s);
	ck_assert_int_eq(store_check(s, "http://a/aborted", "", 0), 0);
	ck_assert_int_eq(cache_verify(s, report_stderr, NULL), 0);
	ck_assert_int_eq(cache_stats(s, &st), 0);
	ck_assert_uint_eq(st.entries, 0);
	ck_assert_uint_eq(st.bytes, 0);
	cache_store_close(s);
}
END_TEST

START_TEST(test_store_queue_full)
{
	/* a queue smaller than one chunk: every chunk is refused, never waited for */
	struct cache_store_params p;
	struct cache_store *s;
	struct cache_stats st;
	struct cache_object o;
	struct cache_key k;
	struct cache_put *put;
	static unsigned char buf[5000];

	memset(&p, 0, sizeof(p));
	p.path = unit_tmpdir;
	p.chunk_size = 4096;
	p.queue_max = 1000;
	p.flags = CACHE_F_NOSYNC;
	ck_assert_ptr_nonnull(s = cache_store_open(&p, NULL));
	memset(&o, 0, sizeof(o));
	o.url = "http://a/q";
	o.url_len = 10;
	o.status = 200;
	o.expected_len = -1;
	cache_key_make(&k, "GET", 3, o.url, o.url_len);
	ck_assert_ptr_nonnull(put = cache_put_begin(s, &k, &o));
	ck_assert_int_eq(cache_put_write(put, buf, 100), 0); /* still in the handle */
	ck_assert_int_eq(cache_put_write(put, buf, sizeof(buf)), -1);
	ck_assert_int_eq(cache_put_write(put, buf, 1), -1);
	ck_assert_int_eq(cache_put_commit(put), -1);
	/* a small object is one chunk at commit: refused as well */
	ck_assert_ptr_nonnull(put = cache_put_begin(s, &k, &o));
	ck_assert_int_eq(cache_put_write(put, buf, 2000), 0);
	ck_assert_int_eq(cache_put_commit(put), -1);
	cache_store_flush(s);
	ck_assert_int_eq(store_check(s, "http://a/q", "", 0), 0);
	ck_assert_int_eq(cache_stats(s, &st), 0);
	ck_assert_uint_eq(st.dropped, 2);
	ck_assert_uint_eq(st.entries, 0);
	ck_assert_int_eq(cache_verify(s, report_stderr, NULL), 0);
	cache_store_close(s);
}
END_TEST

START_TEST(test_store_vary)
{
	struct cache_store *s = store_open(64 << 20, 0, 1000);
	const char *resp = "Vary: Accept-Encoding";

	ck_assert_int_eq(store_put(s, "http://a/v", resp, "Accept-Encoding: gzip", 100), 0);
	ck_assert_int_eq(store_put(s, "http://a/v", resp, "Accept-Encoding: br", 200), 0);
	ck_assert_int_eq(store_put(s, "http://a/v", resp, "", 300), 0);
	cache_store_flush(s);
	ck_assert_int_eq(store_check(s, "http://a/v", "accept-encoding:  gzip", 100), 1);
	ck_assert_int_eq(store_check(s, "http://a/v", "Accept-Encoding: br", 200), 1);
	ck_assert_int_eq(store_check(s, "http://a/v", "User-Agent: x", 300), 1);
	ck_assert_int_eq(store_check(s, "http://a/v", "Accept-Encoding: gzip, br", 0), 0);
	/* the URL now answers without Vary: the variants are unreachable */
	ck_assert_int_eq(store_put(s, "http://a/v", "", "Accept-Encoding: gzip", 50), 0);
	cache_store_flush(s);
	ck_assert_int_eq(store_check(s, "http://a/v", "Accept-Encoding: br", 50), 1);
	ck_assert_int_eq(cache_verify(s, report_stderr, NULL), 0);
	/* a purge of the URL removes the stale variants as well */
	ck_assert_int_eq(cache_purge_url(s, "http://a/v", 10, NULL), 4); /* 3 variants, 1 object */
	ck_assert_int_eq(store_check(s, "http://a/v", "", 0), 0);
	cache_store_close(s);
}
END_TEST

START_TEST(test_store_purge)
{
	struct cache_store *s = store_open(64 << 20, 0, 1000);
	struct cache_stats st;
	char url[600];

	ck_assert_int_eq(store_put(s, "http://a/p/1", "", "", 10), 0);
	ck_assert_int_eq(store_put(s, "http://a/p/2", "", "", 2000), 0);
	ck_assert_int_eq(store_put(s, "http://a/p", "", "", 10), 0);
	ck_assert_int_eq(store_put(s, "http://a/q", "", "", 10), 0);
	ck_assert_int_eq(store_put(s, "http://b/p/1", "Vary: Accept", "Accept: x", 10), 0);
	/* two URLs longer than the index prefix that share it */
	memset(url, 'x', sizeof(url));
	memcpy(url, "http://c/", 9);
	url[500] = 0;
	ck_assert_int_eq(store_put(s, url, "", "", 10), 0);
	url[500] = 'y';
	url[501] = 0;
	ck_assert_int_eq(store_put(s, url, "", "", 10), 0);
	cache_store_flush(s);

	ck_assert_int_eq(cache_purge_url(s, "http://a/p", 10, NULL), 1);
	ck_assert_int_eq(store_check(s, "http://a/p", "", 10), 0);
	ck_assert_int_eq(store_check(s, "http://a/p/1", "", 10), 1);
	ck_assert_int_eq(cache_purge_prefix(s, "http://a/p/", 11, NULL), 2);
	ck_assert_int_eq(store_check(s, "http://a/p/2", "", 2000), 0);
	ck_assert_int_eq(store_check(s, "http://a/q", "", 10), 1);
	ck_assert_int_eq(cache_purge_url(s, url, 501, NULL), 1);
	ck_assert_int_eq(store_check(s, url, "", 10), 0);
	url[500] = 0;
	ck_assert_int_eq(store_check(s, url, "", 10), 1);
	ck_assert_int_eq(cache_purge_url(s, "http://nothing/", 15, NULL), 0);
	/* a queued invalidation from a request path */
	ck_assert_int_eq(cache_invalidate_url(s, "http://a/q", 10), 0);
	cache_store_flush(s);
	ck_assert_int_eq(store_check(s, "http://a/q", "", 10), 0);
	ck_assert_int_eq(cache_verify(s, report_stderr, NULL), 0);
	ck_assert_int_eq(cache_purge_all(s, NULL), 3); /* b/p/1 variant + vary record, c/x */
	ck_assert_int_eq(cache_stats(s, &st), 0);
	ck_assert_uint_eq(st.entries, 0);
	ck_assert_uint_eq(st.bytes, 0);
	ck_assert_int_eq(cache_verify(s, report_stderr, NULL), 0);
	cache_store_close(s);
}
END_TEST

START_TEST(test_store_eviction)
{
	const uint64_t max = 2 << 20;
	struct cache_store *s = store_open(max, 0, 16384);
	struct cache_stats st;
	char url[64];
	int hot_kept = 1;

	ck_assert_int_eq(store_put(s, "http://a/hot", "", "", 40000), 0);
	cache_store_flush(s);
	for (int i = 0; i < 400; i++) { /* 400 x 50 KB = 10 x max_size */
		snprintf(url, sizeof(url), "http://a/cold/%d", i);
		ck_assert_int_eq(store_put(s, url, "", "", 50000), 0);
		if (i % 10 == 0) {
			cache_store_flush(s);
			ck_assert_int_eq(cache_stats(s, &st), 0);
			ck_assert_uint_le(st.bytes, max);
			if (store_check(s, "http://a/hot", "", 40000) != 1)
				hot_kept = 0;
		}
	}
	cache_store_flush(s);
	ck_assert_int_eq(cache_stats(s, &st), 0);
	ck_assert_uint_le(st.bytes, max);
	ck_assert_uint_ge(st.bytes, max / 2);
	ck_assert_uint_gt(st.evicted, 300);
	ck_assert_int_eq(hot_kept, 1);
	ck_assert_int_eq(store_check(s, "http://a/hot", "", 40000), 1);
	ck_assert_int_eq(store_check(s, "http://a/cold/0", "", 50000), 0);
	ck_assert_int_eq(store_check(s, "http://a/cold/399", "", 50000), 1);
	ck_assert_int_eq(cache_verify(s, report_stderr, NULL), 0);
	cache_store_close(s);
}
END_TEST

START_TEST(test_store_tiny_map)
{
	/* max_size far above what the map holds: MDB_MAP_FULL, evictions, drops */
	struct cache_store *s = store_open(256 << 20, 1 << 20, 4096);
	struct cache_stats st;
	char url[64];
	int stored = 0;

	ck_assert_int_eq(store_put(s, "http://a/small", "", "", 100), 0);
	cache_store_flush(s);
	for (int i = 0; i < 60; i++) {
		snprintf(url, sizeof(url), "http://a/big/%d", i);
		store_put(s, url, "", "", 100000);
		if (i % 2 == 1)
			cache_store_flush(s);
	}
	cache_store_flush(s);
	ck_assert_int_eq(cache_stats(s, &st), 0);
	ck_assert_uint_gt(st.dropped + st.evicted, 0);
	for (int i = 0; i < 60; i++) {
		int rc;

		snprintf(url, sizeof(url), "http://a/big/%d", i);
		rc = store_check(s, url, "", 100000);
		ck_assert_int_ne(rc, -1);
		stored += rc;
	}
	(void)stored; /* how many survive the storm depends on timing */
	/* the store keeps working: a new object lands within a few tries */
	for (int i = 0; i < 20 && stored >= 0; i++) {
		store_put(s, "http://a/final", "", "", 100000);
		cache_store_flush(s);
		if (store_check(s, "http://a/final", "", 100000) == 1)
			stored = -1;
	}
	ck_assert_int_eq(stored, -1);
	ck_assert_int_eq(cache_verify(s, report_stderr, NULL), 0);
	cache_store_close(s);
}
END_TEST

/* The number of records in one table, read with LMDB directly (the store closed). */
static size_t
lmdb_entries(const char *table)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_stat st;

	ck_assert_int_eq(mdb_env_create(&env), 0);
	ck_assert_int_eq(mdb_env_set_maxdbs(env, 8), 0);
	ck_assert_int_eq(mdb_env_open(env, unit_tmpdir, MDB_RDONLY, 0600), 0);
	ck_assert_int_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
	ck_assert_int_eq(mdb_dbi_open(txn, table, 0, &dbi), 0);
	ck_assert_int_eq(mdb_stat(txn, dbi, &st), 0);
	mdb_txn_abort(txn);
	mdb_env_close(env);
	return st.ms_entries;
}

static void
crash_child(void)
{
	struct cache_store *s = store_open(8 << 20, 0, 4096);
	char url[64];

	for (int i = 0;; i++) {
		snprintf(url, sizeof(url), "http://a/crash/%d", i % 500);
		store_put(s, url, "", "", (uint64_t)(1000 + (i % 500) * 97));
	}
}

struct walk_ctx {
	struct cache_store *s;
	int n, bad;
};

static int
walk_check(void *arg, const char *kind, const struct cache_meta *m)
{
	struct walk_ctx *w = arg;
	char url[64];
	int i;

	if (strcmp(kind, "object") != 0)
		return 0;
	snprintf(url, sizeof(url), "%.*s", (int)m->url_len, m->url);
	if (strncmp(url, "http://a/crash/", 15) != 0)
		return 0; /* http://a/after of the round before, when nothing evicted it */
	i = atoi(url + strlen("http://a/crash/"));
	if (store_check(w->s, url, "", (uint64_t)(1000 + i * 97)) != 1)
		w->bad++;
	w->n++;
	return 0;
}

START_TEST(test_store_crash)
{
	struct cache_store *s;
	struct walk_ctx w = {NULL, 0, 0};
	size_t pending = 0;
	pid_t pid;
	int status;

	/* create the environment first, so the child only writes */
	s = store_open(8 << 20, 0, 4096);
	cache_store_close(s);
	for (int round = 0; round < 3; round++) {
		pid = fork();
		ck_assert_int_ne(pid, -1);
		if (pid == 0) {
			crash_child();
			_exit(0);
		}
		usleep(300000 + (useconds_t)round * 100000);
		ck_assert_int_eq(kill(pid, SIGKILL), 0);
		ck_assert_int_eq(waitpid(pid, &status, 0), pid);
		pending += lmdb_entries("pending");
		s = store_open(8 << 20, 0, 4096);
		ck_assert_int_eq(cache_verify(s, report_stderr, NULL), 0);
		w.s = s;
		w.n = w.bad = 0;
		ck_assert_int_eq(cache_walk(s, "", 0, walk_check, &w), 0);
		ck_assert_int_gt(w.n, 0);
		ck_assert_int_eq(w.bad, 0);
		/* the writer cleans the crash's pending puts before its first batch */
		ck_assert_int_eq(store_put(s, "http://a/after", "", "", 10), 0);
		cache_store_flush(s);
		cache_store_close(s);
		ck_assert_uint_eq(lmdb_entries("pending"), 0);
	}
	(void)pending; /* usually one per kill: a put in flight */
}
END_TEST

struct reader {
	struct cache_store *s;
	_Atomic int *stop;
	long reads, bad;
};

static void *
reader_main(void *arg)
{
	struct reader *r = arg;
	char url[64];

	for (unsigned i = 0; !atomic_load(r->stop); i++) {
		int rc;

		snprintf(url, sizeof(url), "http://a/r/%u", i % 20);
		rc = store_check(r->s, url, "", 20000 + (i % 20));
		if (rc == 0)
			r->bad++; /* a replacement is atomic: never a miss */
		r->reads++;
	}
	return NULL;
}

START_TEST(test_store_threads)
{
	struct cache_store *s = store_open(64 << 20, 0, 4096);
	struct reader r[2];
	pthread_t t[2];
	_Atomic int stop = 0;
	char url[64];

	for (unsigned i = 0; i < 20; i++) {
		snprintf(url, sizeof(url), "http://a/r/%u", i);
		ck_assert_int_eq(store_put(s, url, "", "", 20000 + i), 0);
	}
	cache_store_flush(s);
	for (int i = 0; i < 2; i++) {
		r[i].s = s;
		r[i].stop = &stop;
		r[i].reads = r[i].bad = 0;
		ck_assert_int_eq(pthread_create(&t[i], NULL, reader_main, &r[i]), 0);
	}
	for (unsigned i = 0; i < 300; i++) {
		snprintf(url, sizeof(url), "http://a/w/%u", i);
		store_put(s, url, "", "", 30000);
		if (i % 50 == 0) /* replace the readers' entries under them */
			for (unsigned j = 0; j < 20; j++) {
				snprintf(url, sizeof(url), "http://a/r/%u", j);
				store_put(s, url, "", "", 20000 + j);
			}
	}
	cache_store_flush(s);
	atomic_store(&stop, 1);
	for (int i = 0; i < 2; i++) {
		ck_assert_int_eq(pthread_join(t[i], NULL), 0);
		ck_assert_int_gt(r[i].reads, 0);
		/* a read may find an entry replaced between get and read (-1), never bad bytes */
		ck_assert_int_eq(r[i].bad, 0);
	}
	ck_assert_int_eq(cache_verify(s, report_stderr, NULL), 0);
	cache_store_close(s);
}
END_TEST

static int tool(char *out, size_t cap, const char *args);

static void
count_problem(void *arg, const char *msg)
{
	(void)msg;
	(*(int *)arg)++;
}

/* Remove chunk (id, index) behind the store's back, with LMDB directly. */
static void
lmdb_del_chunk(uint64_t id, uint32_t index)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	unsigned char kb[12];
	MDB_val k = {12, kb};

	for (int i = 0; i < 8; i++)
		kb[i] = (unsigned char)(id >> (56 - 8 * i));
	for (int i = 0; i < 4; i++)
		kb[8 + i] = (unsigned char)(index >> (24 - 8 * i));
	ck_assert_int_eq(mdb_env_create(&env), 0);
	ck_assert_int_eq(mdb_env_set_maxdbs(env, 8), 0);
	ck_assert_int_eq(mdb_env_open(env, unit_tmpdir, 0, 0600), 0);
	ck_assert_int_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
	ck_assert_int_eq(mdb_dbi_open(txn, "chunk", 0, &dbi), 0);
	ck_assert_int_eq(mdb_del(txn, dbi, &k, NULL), 0);
	ck_assert_int_eq(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

START_TEST(test_store_verify)
{
	struct cache_store *s = store_open(64 << 20, 0, 1000);
	struct cache_key k;
	struct cache_meta *m;
	uint64_t id;
	int problems = 0;

	ck_assert_int_eq(store_put(s, "http://a/1", "", "", 3500), 0);
	ck_assert_int_eq(store_put(s, "http://a/2", "", "", 10), 0);
	cache_store_flush(s);
	cache_key_make(&k, "GET", 3, "http://a/1", 10);
	ck_assert_int_eq(cache_get(s, &k, NULL, 0, CACHE_GET_COUNT, &m), 1);
	id = m->id;
	cache_meta_free(m);
	cache_store_close(s);
	lmdb_del_chunk(id, 2);
	s = store_open(64 << 20, 0, 1000);
	ck_assert_int_eq(cache_verify(s, count_problem, &problems), 1);
	ck_assert_int_eq(problems, 1);
	if (getenv("PROXYD_CACHE") != NULL) {
		char out[4096];

		ck_assert_int_eq(tool(out, sizeof(out), "verify"), 1);
		ck_assert_ptr_nonnull(strstr(out, "http://a/1: chunk 2 missing\n1 problems\n"));
	}
	ck_assert_int_eq(store_check(s, "http://a/1", "", 3500), -1); /* the read notices */
	ck_assert_int_eq(store_check(s, "http://a/2", "", 10), 1);
	ck_assert_int_eq(cache_purge_url(s, "http://a/1", 10, NULL), 1);
	ck_assert_int_eq(cache_verify(s, report_stderr, NULL), 0);
	cache_store_close(s);
}
END_TEST

START_TEST(test_store_open_errors)
{
	struct cache_store_params p;
	char *err = NULL;

	memset(&p, 0, sizeof(p));
	p.path = unit_path("missing");
	ck_assert_ptr_null(cache_store_open(&p, &err));
	ck_assert_ptr_nonnull(err);
	free(err);
	err = NULL;
	/* garbage where the environment should be */
	unit_write("data.mdb", "this is not an LMDB environment, not at all", 44);
	p.path = unit_tmpdir;
	ck_assert_ptr_null(cache_store_open(&p, &err));
	ck_assert_ptr_nonnull(err);
	free(err);
	err = NULL;
	/* the tool does not create a cache */
	p.path = unit_path("");
	remove(unit_path("data.mdb"));
	p.flags = CACHE_F_RDONLY;
	ck_assert_ptr_null(cache_store_open(&p, &err));
	free(err);
}
END_TEST

static int
walk_count(void *arg, const char *kind, const struct cache_meta *m)
{
	struct walk_ctx *w = arg;

	(void)kind;
	(void)m;
	w->n++;
	return 0;
}

/* Overwrite len bytes of data.mdb at off with garbage (a pseudo-random pattern of seed). */
static void
garble(off_t off, size_t len, uint32_t seed)
{
	FILE *f = fopen(unit_path("data.mdb"), "r+b");
	uint32_t x = 2463534242u + seed * 7919u;

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fseeko(f, off, SEEK_SET), 0);
	for (size_t i = 0; i < len; i++) {
		x ^= x << 13, x ^= x >> 17, x ^= x << 5;
		fputc((int)(x & 0xff), f);
	}
	ck_assert_int_eq(fclose(f), 0);
}

/* A store with a few entries, closed; the size of its data file. */
static off_t
store_make_some(void)
{
	struct cache_store *s = store_open(64 << 20, 0, 4096);
	char url[64];
	struct stat sb;

	for (int i = 0; i < 40; i++) {
		snprintf(url, sizeof(url), "http://a/c/%d", i);
		ck_assert_int_eq(store_put(s, url, "", "", 20000), 0);
	}
	cache_store_flush(s);
	cache_store_close(s);
	ck_assert_int_eq(stat(unit_path("data.mdb"), &sb), 0);
	return sb.st_size;
}

/* Opening unit_tmpdir fails, with why in the reason (NULL: any reason). */
static void
open_fails(const char *why)
{
	struct cache_store_params p;
	char *err = NULL;

	memset(&p, 0, sizeof(p));
	p.path = unit_tmpdir;
	ck_assert_ptr_null(cache_store_open(&p, &err));
	ck_assert_ptr_nonnull(err);
	ck_assert_msg(why == NULL || strstr(err, why) != NULL, "%s", err);
	free(err);
}

/*
 * A corrupt environment is refused at open, never written: garbage past the meta pages
 * (the store used to create its tables in it and crash) or over the meta pages. A
 * truncated file is extended, not read past its end (SIGBUS): open refuses it, or opens
 * and reads zero pages; either way nothing crashes.
 */
START_TEST(test_store_open_corrupt)
{
	off_t size;
	struct cache_store_params p;
	struct cache_store *s;
	char *err = NULL;

	for (uint32_t seed = 0; seed < 8; seed++) {
		/* every page but the two meta pages: which check catches it depends on the bytes */
		size = store_make_some();
		garble(2 * 4096, (size_t)size - 2 * 4096, seed);
		open_fails(NULL);
		remove(unit_path("data.mdb"));
		remove(unit_path("lock.mdb"));
	}
	store_make_some();
	garble(0, 2 * 4096, 0); /* the meta pages */
	open_fails("MDB_INVALID");
	remove(unit_path("data.mdb"));
	remove(unit_path("lock.mdb"));
	size = store_make_some();
	ck_assert_int_eq(truncate(unit_path("data.mdb"), size / 2), 0);
	memset(&p, 0, sizeof(p));
	p.path = unit_tmpdir;
	p.flags = CACHE_F_RDONLY;
	if ((s = cache_store_open(&p, &err)) != NULL) {
		struct walk_ctx w = {s, 0, 0};

		cache_verify(s, report_stderr, NULL);
		cache_walk(s, "", 0, walk_count, &w);
		cache_store_close(s);
	}
	free(err);
}
END_TEST

static void
fault_exits(int sig)
{
	(void)sig;
	_exit(1); /* what a sanitizer's handler does */
}

/*
 * The probe decides by how its child dies, so a fault handler in the process (the
 * sanitizers install one, which exits with a status) must not make a fault look like a
 * clean walk. Both meta pages get a main table whose root is a fixed-size-key leaf with
 * 4 GiB keys: the first key LMDB compares is 64 TiB past the page, an address no process
 * has mapped.
 */
START_TEST(test_store_probe_handler)
{
	static const int faults[] = {SIGSEGV, SIGBUS};
	/* the page header; the meta after it: magic, version, address, map size, the free
	 * table (48 bytes), the main table (pad, flags, depth, 4 counts, root) */
	enum { MAIN_PAD = 16 + 8 + 16 + 48, MAIN_ROOT = MAIN_PAD + 40 };
	const uint32_t pad = UINT32_MAX;
	const uint16_t leaf2[3] = {0x02 | 0x20, UINT16_MAX, UINT16_MAX}; /* flags lower upper */
	uint64_t root;
	FILE *f;

	store_make_some();
	f = fopen(unit_path("data.mdb"), "r+b");
	ck_assert_ptr_nonnull(f);
	for (long meta = 0; meta < 2; meta++) {
		ck_assert_int_eq(fseek(f, meta * 4096 + MAIN_ROOT, SEEK_SET), 0);
		ck_assert_uint_eq(fread(&root, sizeof(root), 1, f), 1);
		ck_assert_int_eq(fseek(f, meta * 4096 + MAIN_PAD, SEEK_SET), 0);
		ck_assert_uint_eq(fwrite(&pad, sizeof(pad), 1, f), 1);
		ck_assert_int_eq(fseek(f, (long)root * 4096 + 10, SEEK_SET), 0);
		ck_assert_uint_eq(fwrite(leaf2, sizeof(leaf2), 1, f), 1);
	}
	ck_assert_int_eq(fclose(f), 0);
	for (size_t i = 0; i < sizeof(faults) / sizeof(faults[0]); i++)
		signal(faults[i], fault_exits);
	open_fails("killed a probe");
	remove(unit_path("data.mdb"));
	remove(unit_path("lock.mdb"));
}
END_TEST

static _Atomic int cut_logged;

static void
cut_log(void *arg, const char *msg)
{
	(void)arg;
	if (strstr(msg, "bus error reading data.mdb") != NULL)
		atomic_fetch_add(&cut_logged, 1);
}

/* A store (logging to cut_log) with eight 300000-byte objects under http://a/DIR/, flushed. */
static struct cache_store *
cut_store(const char *dir)
{
	struct cache_store_params p;
	struct cache_store *s;
	char url[64], *err = NULL;

	memset(&p, 0, sizeof(p));
	p.path = unit_tmpdir;
	p.max_size = 64 << 20;
	p.flags = CACHE_F_NOSYNC;
	p.log = cut_log;
	s = cache_store_open(&p, &err);
	ck_assert_msg(s != NULL, "%s", err != NULL ? err : "?");
	for (int i = 0; i < 8; i++) {
		snprintf(url, sizeof(url), "http://a/%s/%d", dir, i);
		ck_assert_int_eq(store_put(s, url, "", "", 300000), 0);
	}
	cache_store_flush(s);
	return s;
}

static void
cut_notified(void *arg)
{
	atomic_store((_Atomic int *)arg, 1);
}

static int
cut_walk(void *arg, const char *kind, const struct cache_meta *m)
{
	(void)arg, (void)kind, (void)m;
	return 0;
}

/*
 * A data file truncated under an open store (the daemon's case: someone cuts the file, or
 * its disk goes away): reading the cut pages through the map is SIGBUS. The store catches
 * it: bytes lent by a view fail to copy, lookups miss, puts and the rest are dropped or
 * fail, the fault is logged once, and close returns. The process lives.
 */
START_TEST(test_store_cut_short)
{
	struct cache_store *s;
	struct cache_stats st;
	struct cache_view v;
	struct cache_meta *m, *m2;
	struct cache_key k;
	const void *lent;
	unsigned char buf[4096];
	char *err = NULL;
	_Atomic int notified = 0;
	ssize_t n;

	s = cut_store("cut");
	ck_assert_int_eq(store_check(s, "http://a/cut/7", "", 300000), 1);
	cache_key_make(&k, "GET", 3, "http://a/cut/7", 14);
	ck_assert_int_eq(cache_get(s, &k, NULL, 0, CACHE_GET_COUNT, &m), 1);
	ck_assert_int_eq(cache_view_begin(s, &v), 0);
	n = cache_view(&v, m, 100000, sizeof(buf), &lent);
	ck_assert_int_eq((int)n, (int)sizeof(buf));
	ck_assert_int_eq(cache_view_copy(&v, buf, lent, (size_t)n), 0);
	ck_assert_int_eq(cache_store_broken(s), 0);

	ck_assert_int_eq(truncate(unit_path("data.mdb"), 3 * 4096), 0);
	/* lent bytes of a page cut off: the copy faults, the store breaks */
	ck_assert_int_eq(cache_view_copy(&v, buf, lent, (size_t)n), -1);
	cache_view_end(&v);
	ck_assert_int_eq(cache_store_broken(s), 1);
	ck_assert_int_eq(atomic_load(&cut_logged), 1);
	/* from then on nothing reads the map: misses, drops, failures */
	cache_key_make(&k, "GET", 3, "http://a/cut/3", 14);
	ck_assert_int_eq(cache_get(s, &k, NULL, 0, CACHE_GET_COUNT, &m2), -1);
	ck_assert_ptr_null(m2);
	ck_assert_int_eq((int)cache_read(s, m, 0, buf, sizeof(buf)), -1);
	ck_assert_int_eq(cache_view_begin(s, &v), -1);
	ck_assert_int_eq(store_put(s, "http://a/cut/new", "", "", 1000), -1);
	ck_assert_int_eq(cache_invalidate_url(s, "http://a/cut/1", 14), -1);
	cache_store_notify(s, cut_notified, &notified);
	cache_store_flush(s);
	for (int i = 0; i < 100 && !atomic_load(&notified); i++)
		usleep(20000); /* bounded: the writer sees the broken store within a second */
	ck_assert_int_eq(atomic_load(&notified), 1);
	ck_assert_int_eq(cache_stats(s, &st), -1);
	ck_assert_int_eq(cache_walk(s, "", 0, cut_walk, NULL), -1);
	ck_assert_int_eq(cache_purge_all(s, &err), -1);
	free(err);
	ck_assert_int_eq(atomic_load(&cut_logged), 1);
	cache_meta_free(m);
	cache_store_close(s);
}
END_TEST

/*
 * The writer thread meets the cut first (a batch after the truncation, with no read in
 * between): the store breaks the same way, the flush returns, and the writer has let go
 * of LMDB's write lock: another process can begin a write transaction (it would wait
 * forever on the lock of a live thread; a thread that ended leaves it to be taken over).
 */
START_TEST(test_store_cut_writer)
{
	struct cache_store *s;
	pid_t pid;
	int status;

	s = cut_store("cutw");
	ck_assert_int_eq(truncate(unit_path("data.mdb"), 3 * 4096), 0);
	/* the put faults in the batch, or, if the writer saved its counters first, is refused */
	store_put(s, "http://a/cutw/new", "", "", 300000);
	cache_store_flush(s);
	ck_assert_int_eq(cache_store_broken(s), 1);
	ck_assert_int_eq(atomic_load(&cut_logged), 1);
	pid = fork();
	ck_assert_int_ne(pid, -1);
	if (pid == 0) {
		MDB_env *e;
		MDB_txn *t;

		alarm(10);
		if (mdb_env_create(&e) != 0 || mdb_env_set_maxdbs(e, 8) != 0 ||
		    mdb_env_open(e, unit_tmpdir, MDB_NOSYNC, 0640) != 0)
			_exit(10);
		if (mdb_txn_begin(e, NULL, 0, &t) == 0)
			mdb_txn_abort(t);
		_exit(0); /* any answer: the lock was not held */
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
	cache_store_close(s);
}
END_TEST

/*
 * A SIGBUS outside the store's guarded reads still ends the process (of SIGBUS, or
 * through the handler that was there before the store's: a sanitizer's exits non-zero).
 * In a child: a store is opened (the handler installed), then a mapped file is cut and read.
 */
START_TEST(test_store_sigbus_elsewhere)
{
	pid_t pid;
	int status;

	store_make_some();
	pid = fork();
	ck_assert_int_ne(pid, -1);
	if (pid == 0) {
		struct rlimit nocore = {0, 0};
		struct cache_store *s = store_open(64 << 20, 0, 4096);
		volatile const unsigned char *map;
		int fd = open(unit_path("other"), O_RDWR | O_CREAT, 0600);

		setrlimit(RLIMIT_CORE, &nocore);
		if (s == NULL || fd == -1 || ftruncate(fd, 8192) == -1)
			_exit(10);
		map = mmap(NULL, 8192, PROT_READ, MAP_SHARED, fd, 0);
		if (map == MAP_FAILED || ftruncate(fd, 0) == -1)
			_exit(11);
		if (map[4096] == 0x55) /* SIGBUS */
			_exit(12);
		_exit(13);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(
	        (WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS) ||
	                (WIFEXITED(status) && WEXITSTATUS(status) != 0 && WEXITSTATUS(status) < 10),
	        "child status %d", status);
}
END_TEST

static _Atomic int full_logged;

static void
full_log(void *arg, const char *msg)
{
	(void)arg;
	if (strstr(msg, "full (") != NULL)
		atomic_store(&full_logged, 1);
}

/*
 * A full file system (here a file size limit: writes fail with EFBIG or short): the
 * writer evicts and keeps storing new objects, says so once, and the environment stays
 * consistent. In a child, so that the limit and SIGXFSZ stay there.
 */
static void
full_child(void)
{
	struct cache_store_params p;
	struct cache_store *s;
	struct rlimit rl = {2 << 20, 2 << 20};
	char url[64], *err = NULL;
	int landed = 0;

	signal(SIGXFSZ, SIG_IGN);
	if (setrlimit(RLIMIT_FSIZE, &rl) == -1)
		_exit(10);
	memset(&p, 0, sizeof(p));
	p.path = unit_tmpdir;
	p.max_size = 64 << 20; /* far above what the file may hold */
	p.chunk_size = 16384;
	p.flags = CACHE_F_NOSYNC;
	p.log = full_log;
	if ((s = cache_store_open(&p, &err)) == NULL)
		_exit(11);
	for (int i = 0; i < 60; i++) { /* 60 x 100 KB: three times the limit */
		snprintf(url, sizeof(url), "http://a/full/%d", i);
		store_put(s, url, "", "", 100000);
		cache_store_flush(s);
		landed += store_check(s, url, "", 100000) == 1;
	}
	if (!atomic_load(&full_logged))
		_exit(12);
	if (cache_verify(s, report_stderr, NULL) != 0)
		_exit(13);
	if (store_check(s, "http://a/full/0", "", 100000) != 0)
		_exit(14); /* the oldest went to make room */
	cache_store_close(s);
	/* with the eviction, nearly every put lands; without it none after the first ~18 */
	_exit(landed >= 50 ? 0 : 15);
}

START_TEST(test_store_full_fs)
{
	pid_t pid = fork();
	int status;

	ck_assert_int_ne(pid, -1);
	if (pid == 0)
		full_child();
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
}
END_TEST

/* Run the proxyd-cache tool: its exit status, output in out. */
static int
tool(char *out, size_t cap, const char *args)
{
	const char *bin = getenv("PROXYD_CACHE");
	char cmd[8192];
	FILE *f;
	size_t n;
	int st;

	snprintf(cmd, sizeof(cmd), "%s -d %s %s 2>&1", bin, unit_tmpdir, args);
	ck_assert_ptr_nonnull(f = popen(cmd, "r"));
	n = fread(out, 1, cap - 1, f);
	out[n] = 0;
	st = pclose(f);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

START_TEST(test_tool)
{
	struct cache_store *s;
	char out[8192];

	if (getenv("PROXYD_CACHE") == NULL)
		return; /* run outside make check */
	s = store_open(64 << 20, 0, 1000);
	ck_assert_int_eq(store_put(s, "http://a/t/1", "ETag: \"x\"", "", 5000), 0);
	ck_assert_int_eq(store_put(s, "http://a/t/2", "", "", 10), 0);
	ck_assert_int_eq(store_put(s, "http://b/", "", "", 10), 0);
	cache_store_flush(s);
	/* while the store is open in this process */
	ck_assert_int_eq(tool(out, sizeof(out), "stats"), 0);
	ck_assert_ptr_nonnull(strstr(out, "entries 3\n"));
	ck_assert_int_eq(tool(out, sizeof(out), "ls --prefix http://A/t/"), 0);
	ck_assert_ptr_nonnull(strstr(out, "http://a/t/1"));
	ck_assert_ptr_null(strstr(out, "http://b/"));
	ck_assert_int_eq(tool(out, sizeof(out), "show http://a:80/t/./1"), 0);
	ck_assert_ptr_nonnull(strstr(out, "ETag: \"x\""));
	ck_assert_int_eq(tool(out, sizeof(out), "show http://a/t/3"), 1);
	ck_assert_int_eq(tool(out, sizeof(out), "verify"), 0);
	ck_assert_int_eq(tool(out, sizeof(out), "purge http://a/t/2"), 0);
	ck_assert_str_eq(out, "purged 1\n");
	ck_assert_int_eq(store_check(s, "http://a/t/2", "", 10), 0);
	ck_assert_int_eq(tool(out, sizeof(out), "purge --prefix http://a/"), 0);
	ck_assert_str_eq(out, "purged 1\n");
	ck_assert_int_eq(tool(out, sizeof(out), "purge --all"), 0);
	ck_assert_str_eq(out, "purged 1\n");
	ck_assert_int_eq(tool(out, sizeof(out), "bogus"), 2);
	cache_store_close(s);
}
END_TEST

/* A meta record in the on-disk format (store.h): url "http://h/", headers "A: b\r\n". */
static size_t
meta_record(unsigned char rec[128], int64_t lifetime, int64_t response_time, int64_t swr,
            int64_t last_modified)
{
	static const char tail[] = "http://h/A: b\r\n";
	const int64_t v[7] = {response_time - 1, response_time, lifetime, 0, swr, -1,
	                      last_modified};

	memset(rec, 0, 128);
	memcpy(rec, "PXC1", 4);
	rec[4] = 1;
	rec[5] = CACHE_META_OBJECT;
	rec[6] = 200;
	rec[24] = 5; /* body_len */
	rec[33] = 1; /* chunk_size 256 */
	for (int i = 0; i < 7; i++)
		for (int k = 0; k < 8; k++)
			rec[40 + 8 * i + k] = (unsigned char)((uint64_t)v[i] >> (8 * k));
	rec[96] = 9;  /* url_len */
	rec[100] = 6; /* headers_len */
	memcpy(rec + 112, tail, 15);
	return 127;
}

/*
 * A record whose freshness values no writer produces (corrupt) is rejected: used, it
 * overflowed cache_fresh_age() (found by tests/fuzz/fuzz_entry.c, corpus extreme-times).
 */
START_TEST(test_meta_decode)
{
	unsigned char rec[128];
	struct cache_meta m;
	struct cache_header h[4];
	size_t len;

	len = meta_record(rec, 60, 1700000000, -1, 784111777);
	ck_assert_int_eq(cache_meta_decode(rec, len, &m), CACHE_META_OBJECT);
	ck_assert_int_eq(m.fresh.lifetime, 60);
	ck_assert_int_eq(m.last_modified, 784111777);
	ck_assert_int_eq(m.body_len, 5);
	ck_assert_int_eq(cache_meta_headers(&m, h, 4), 1);
	ck_assert_int_eq(cache_meta_decode(rec, len - 1, &m), -1);
	/* a date before 1970 is a date */
	len = meta_record(rec, 0, 1700000000, 30, -2208988800);
	ck_assert_int_eq(cache_meta_decode(rec, len, &m), CACHE_META_OBJECT);

	len = meta_record(rec, INT64_MAX, 1700000000, -1, -1);
	ck_assert_int_eq(cache_meta_decode(rec, len, &m), -1);
	len = meta_record(rec, 60, INT64_MIN + 1, -1, -1);
	ck_assert_int_eq(cache_meta_decode(rec, len, &m), -1);
	len = meta_record(rec, 60, 1700000000, -2, -1);
	ck_assert_int_eq(cache_meta_decode(rec, len, &m), -1);
	len = meta_record(rec, 60, 1700000000, -1, INT64_MAX);
	ck_assert_int_eq(cache_meta_decode(rec, len, &m), -1);
}
END_TEST

static Suite *
cache_suite(void)
{
	Suite *s = suite_create("cache");
	TCase *tp = tcase_create("policy"), *ts = tcase_create("store");

	tcase_add_test(tp, test_http_date);
	tcase_add_test(tp, test_cc_parse);
	tcase_add_test(tp, test_storable);
	tcase_add_test(tp, test_lifetime);
	tcase_add_test(tp, test_age);
	tcase_add_test(tp, test_use);
	tcase_add_test(tp, test_stale_if_error);
	tcase_add_test(tp, test_vary);
	tcase_add_test(tp, test_conditional);
	tcase_add_test(tp, test_merge_304);
	tcase_add_test(tp, test_range);
	tcase_add_test(tp, test_invalidations);
	tcase_add_test(tp, test_meta_decode);
	suite_add_tcase(s, tp);

	tcase_add_checked_fixture(ts, unit_tmpdir_setup, unit_tmpdir_teardown);
	tcase_set_timeout(ts, 120);
	tcase_add_test(ts, test_store_roundtrip);
	tcase_add_test(ts, test_store_get_counts);
	tcase_add_test(ts, test_store_view);
	tcase_add_test(ts, test_store_abort);
	tcase_add_test(ts, test_store_queue_full);
	tcase_add_test(ts, test_store_vary);
	tcase_add_test(ts, test_store_purge);
	tcase_add_test(ts, test_store_eviction);
	tcase_add_test(ts, test_store_tiny_map);
	tcase_add_test(ts, test_store_crash);
	tcase_add_test(ts, test_store_threads);
	tcase_add_test(ts, test_store_verify);
	tcase_add_test(ts, test_store_open_errors);
	tcase_add_test(ts, test_store_open_corrupt);
	tcase_add_test(ts, test_store_probe_handler);
	tcase_add_test(ts, test_store_full_fs);
	tcase_add_test(ts, test_store_cut_short);
	tcase_add_test(ts, test_store_cut_writer);
	tcase_add_test(ts, test_store_sigbus_elsewhere);
	tcase_add_test(ts, test_tool);
	suite_add_tcase(s, ts);
	return s;
}

int
main(void)
{
	return unit_main("test_cache", cache_suite());
}
