/*
 * test_limit.c - Check suite of limit.c: directive parsing, keys, the rate arithmetic on
 * an injected clock (burst, refill, Retry-After, rejections not counted), LRU eviction of a
 * full rate zone, connection counts (acquire, release, full zone), zone identity for
 * reloads, and many threads on one zone.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "limit.h"
#include "unit.h"

#define SEC 1000000LL
#define MS  1000LL

/* Split a copy of spec at spaces into words (at most 8); returns their number. */
static size_t
split(const char *spec, char *buf, size_t cap, char **words)
{
	size_t n = 0;

	snprintf(buf, cap, "%s", spec);
	for (char *w = strtok(buf, " "); w != NULL && n < 8; w = strtok(NULL, " "))
		words[n++] = w;
	return n;
}

static int
parse(enum limit_kind kind, const char *spec, struct limit_def *def)
{
	char buf[256], *w[8], *err = NULL;
	int r = limit_def_parse(kind, w, split(spec, buf, sizeof(buf), w), def, &err);

	free(err);
	return r;
}

static int
parse_req(const char *spec, uint32_t *burst, char **err)
{
	char buf[256], *w[8];

	return limit_req_parse(w, split(spec, buf, sizeof(buf), w), burst, err);
}

static struct limit_zone *
zone(enum limit_kind kind, const char *spec)
{
	char buf[256], *words[8];
	size_t n = 0;
	struct limit_def def;
	char *err = NULL;
	struct limit_zone *z;

	snprintf(buf, sizeof(buf), "%s", spec);
	for (char *w = strtok(buf, " "); w != NULL && n < 8; w = strtok(NULL, " "))
		words[n++] = w;
	ck_assert_msg(limit_def_parse(kind, words, n, &def, &err) == 0, "%s: %s", spec,
	              err ? err : "?");
	z = limit_zone_new("z", &def, &err);
	ck_assert_ptr_nonnull(z);
	return z;
}

/* The parse error of spec (words separated by spaces), or NULL when it parses. */
static char *
def_error(enum limit_kind kind, const char *spec)
{
	char buf[256], *words[8];
	size_t n = 0;
	struct limit_def def;
	char *err = NULL;

	snprintf(buf, sizeof(buf), "%s", spec);
	for (char *w = strtok(buf, " "); w != NULL && n < 8; w = strtok(NULL, " "))
		words[n++] = w;
	if (limit_def_parse(kind, words, n, &def, &err) == 0)
		return NULL;
	ck_assert_ptr_nonnull(err);
	return err;
}

static size_t
v4key(char *out, const char *ip)
{
	struct sockaddr_in sin;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	inet_pton(AF_INET, ip, &sin.sin_addr);
	return limit_key_make(out, LIMIT_KEY_CLIENT, (struct sockaddr *)&sin, NULL, NULL, 0);
}

static enum limit_verdict
req(struct limit_zone *z, const char *ip, uint32_t burst, int64_t now, uint32_t *retry)
{
	char k[LIMIT_KEY_MAX];
	size_t n = v4key(k, ip);
	struct limit_note note;
	enum limit_verdict v = limit_req_check(z, k, n, burst, now, &note);

	if (retry != NULL)
		*retry = note.retry_after_s;
	return v;
}

START_TEST(test_parse_zone)
{
	struct limit_def def;

	ck_assert_int_eq(parse(LIMIT_REQ, "rate=5r/s key=user size=100", &def), 0);
	ck_assert_int_eq(def.kind, LIMIT_REQ);
	ck_assert_int_eq(def.key, LIMIT_KEY_USER);
	ck_assert_uint_eq(def.rate, 5);
	ck_assert_uint_eq(def.period_ms, 1000);
	ck_assert_uint_eq(def.size, 100);
	ck_assert_int_eq(parse(LIMIT_REQ, "key=host rate=30/m", &def), 0);
	ck_assert_uint_eq(def.rate, 30);
	ck_assert_uint_eq(def.period_ms, 60000);
	ck_assert_uint_eq(def.size, LIMIT_DEF_SIZE);
	ck_assert_int_eq(parse(LIMIT_CONN, "key=client", &def), 0);
	ck_assert_int_eq(def.key, LIMIT_KEY_CLIENT);

	static const struct {
		enum limit_kind kind;
		const char *spec, *want;
	} bad[] = {
	        {LIMIT_REQ, "key=client", "rate= is required"},
	        {LIMIT_REQ, "rate=1r/s", "key= is required"},
	        {LIMIT_REQ, "key=ip rate=1r/s", "invalid key \"ip\""},
	        {LIMIT_REQ, "key=client rate=0r/s", "invalid rate \"0r/s\""},
	        {LIMIT_REQ, "key=client rate=5r/h", "invalid rate"},
	        {LIMIT_REQ, "key=client rate=5", "invalid rate"},
	        {LIMIT_REQ, "key=client rate=r/s", "invalid rate"},
	        {LIMIT_REQ, "key=client rate=1000001r/s", "invalid rate"},
	        {LIMIT_REQ, "key=client rate=1r/s size=0", "invalid size"},
	        {LIMIT_REQ, "key=client rate=1r/s size=10m", "invalid size"},
	        {LIMIT_REQ, "key=client rate=1r/s key=user", "\"key=user\" is given twice"},
	        {LIMIT_REQ, "key=client rate=1r/s burst=3", "unknown parameter \"burst=3\""},
	        {LIMIT_CONN, "key=client rate=1r/s", "unknown parameter \"rate=1r/s\""},
	        {LIMIT_CONN, "size=10", "key= is required"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *e = def_error(bad[i].kind, bad[i].spec);

		ck_assert_msg(e != NULL && strstr(e, bad[i].want) != NULL, "%s: got %s",
		              bad[i].spec, e ? e : "no error");
		free(e);
	}
}
END_TEST

START_TEST(test_parse_uses)
{
	uint32_t burst = 99, max = 0;
	char *err = NULL;

	ck_assert_int_eq(parse_req("", &burst, &err), 0);
	ck_assert_uint_eq(burst, 0);
	ck_assert_int_eq(parse_req("burst=20 nodelay", &burst, &err), 0);
	ck_assert_uint_eq(burst, 20);
	ck_assert_int_eq(parse_req("burst=-1", &burst, &err), -1);
	ck_assert_ptr_nonnull(strstr(err, "invalid burst"));
	free(err);
	ck_assert_int_eq(parse_req("nodelay nodelay", &burst, &err), -1);
	ck_assert_ptr_nonnull(strstr(err, "unexpected \"nodelay\""));
	free(err);
	ck_assert_int_eq(parse_req("delay=3", &burst, &err), -1);
	free(err);
	ck_assert_int_eq(limit_conn_parse("10", &max, &err), 0);
	ck_assert_uint_eq(max, 10);
	ck_assert_int_eq(limit_conn_parse("0", &max, &err), -1);
	free(err);
	ck_assert_int_eq(limit_conn_parse("1x", &max, &err), -1);
	free(err);
}
END_TEST

START_TEST(test_keys)
{
	char a[LIMIT_KEY_MAX], b[LIMIT_KEY_MAX];
	size_t na, nb;
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	inet_pton(AF_INET, "192.0.2.7", &sin.sin_addr);
	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	inet_pton(AF_INET6, "::ffff:192.0.2.7", &sin6.sin6_addr);
	/* a mapped address is its IPv4 address */
	na = limit_key_make(a, LIMIT_KEY_CLIENT, (struct sockaddr *)&sin, NULL, NULL, 0);
	nb = limit_key_make(b, LIMIT_KEY_CLIENT, (struct sockaddr *)&sin6, NULL, NULL, 0);
	ck_assert_uint_eq(na, 5);
	ck_assert(na == nb && memcmp(a, b, na) == 0);
	inet_pton(AF_INET6, "2001:db8::1", &sin6.sin6_addr);
	nb = limit_key_make(b, LIMIT_KEY_CLIENT, (struct sockaddr *)&sin6, NULL, NULL, 0);
	ck_assert_uint_eq(nb, 17);
	/* user, falling back to the address */
	nb = limit_key_make(b, LIMIT_KEY_USER, (struct sockaddr *)&sin, "bob", NULL, 0);
	ck_assert(nb == 4 && memcmp(b, "ubob", 4) == 0);
	nb = limit_key_make(b, LIMIT_KEY_USER, (struct sockaddr *)&sin, "", NULL, 0);
	ck_assert(na == nb && memcmp(a, b, na) == 0);
	nb = limit_key_make(b, LIMIT_KEY_USER, (struct sockaddr *)&sin, NULL, NULL, 0);
	ck_assert(na == nb && memcmp(a, b, na) == 0);
	/* host: lower-cased; absent falls back too */
	nb = limit_key_make(b, LIMIT_KEY_HOST, (struct sockaddr *)&sin, "bob", "WWW.Example.COM",
	                    15);
	ck_assert(nb == 16 && memcmp(b, "hwww.example.com", 16) == 0);
	nb = limit_key_make(b, LIMIT_KEY_HOST, (struct sockaddr *)&sin, NULL, "x", 0);
	ck_assert(na == nb && memcmp(a, b, na) == 0);
	/* a user named like a host is another key */
	na = limit_key_make(a, LIMIT_KEY_USER, NULL, "www.example.com", NULL, 0);
	nb = limit_key_make(b, LIMIT_KEY_HOST, NULL, NULL, "www.example.com", 15);
	ck_assert(na == nb && memcmp(a, b, na) != 0);
	/* long keys: bounded, and a difference past the head still tells them apart */
	char h1[300], h2[300];

	memset(h1, 'a', sizeof(h1));
	memcpy(h2, h1, sizeof(h2));
	h2[299] = 'b';
	na = limit_key_make(a, LIMIT_KEY_HOST, NULL, NULL, h1, sizeof(h1));
	nb = limit_key_make(b, LIMIT_KEY_HOST, NULL, NULL, h2, sizeof(h2));
	ck_assert_uint_eq(na, LIMIT_KEY_MAX);
	ck_assert_uint_eq(nb, LIMIT_KEY_MAX);
	ck_assert(memcmp(a, b, LIMIT_KEY_MAX) != 0);
}
END_TEST

/* 5r/s burst=2 at one instant: 3 pass, the rest are refused and not counted. */
START_TEST(test_rate_burst)
{
	struct limit_zone *z = zone(LIMIT_REQ, "key=client rate=5r/s size=10");
	int64_t t = 1000 * SEC;
	uint32_t retry = 0;
	int pass = 0;

	for (int i = 0; i < 10; i++)
		pass += req(z, "10.0.0.1", 2, t, &retry) == LIMIT_PASS;
	ck_assert_int_eq(pass, 3);
	/* the next token is 200 ms away: Retry-After rounds up to a second */
	ck_assert_uint_eq(retry, 1);
	/* 199 ms later still nothing, at 200 ms one (rejections took nothing) */
	ck_assert_int_eq(req(z, "10.0.0.1", 2, t + 199 * MS, NULL), LIMIT_REJECT);
	ck_assert_int_eq(req(z, "10.0.0.1", 2, t + 200 * MS, NULL), LIMIT_PASS);
	ck_assert_int_eq(req(z, "10.0.0.1", 2, t + 200 * MS, NULL), LIMIT_REJECT);
	/* another key has its own bucket */
	ck_assert_int_eq(req(z, "10.0.0.2", 2, t, NULL), LIMIT_PASS);
	/* after a full second the bucket holds burst + 1 again, never more */
	pass = 0;
	for (int i = 0; i < 10; i++)
		pass += req(z, "10.0.0.1", 2, t + 10 * SEC, NULL) == LIMIT_PASS;
	ck_assert_int_eq(pass, 3);
	/* burst 0: one at a time */
	ck_assert_int_eq(req(z, "10.0.0.3", 0, t, NULL), LIMIT_PASS);
	ck_assert_int_eq(req(z, "10.0.0.3", 0, t, NULL), LIMIT_REJECT);
	ck_assert_int_eq(req(z, "10.0.0.3", 0, t + 200 * MS, NULL), LIMIT_PASS);
	limit_zone_unref(z);
}
END_TEST

/* A steady client at the rate always passes; one at twice the rate gets half. */
START_TEST(test_rate_steady)
{
	struct limit_zone *z = zone(LIMIT_REQ, "key=client rate=10r/s size=10");
	int64_t t = 5 * SEC;
	int pass = 0;

	for (int i = 0; i < 100; i++)
		ck_assert_int_eq(req(z, "10.0.0.1", 0, t + i * 100 * MS, NULL), LIMIT_PASS);
	for (int i = 0; i < 200; i++)
		pass += req(z, "10.0.0.2", 0, t + i * 50 * MS, NULL) == LIMIT_PASS;
	ck_assert_int_eq(pass, 100);
	limit_zone_unref(z);
}
END_TEST

/* r/m and Retry-After in seconds. */
START_TEST(test_rate_per_minute)
{
	struct limit_zone *z = zone(LIMIT_REQ, "key=client rate=2r/m size=10");
	int64_t t = 5 * SEC;
	uint32_t retry = 0;

	ck_assert_int_eq(req(z, "10.0.0.1", 1, t, NULL), LIMIT_PASS);
	ck_assert_int_eq(req(z, "10.0.0.1", 1, t, NULL), LIMIT_PASS);
	ck_assert_int_eq(req(z, "10.0.0.1", 1, t, &retry), LIMIT_REJECT);
	ck_assert_uint_eq(retry, 30);
	ck_assert_int_eq(req(z, "10.0.0.1", 1, t + 10 * SEC, &retry), LIMIT_REJECT);
	ck_assert_uint_eq(retry, 20);
	ck_assert_int_eq(req(z, "10.0.0.1", 1, t + 30 * SEC, NULL), LIMIT_PASS);
	/* a clock that went back (it cannot, but) refuses rather than misbehaving */
	ck_assert_int_eq(req(z, "10.0.0.1", 1, t, NULL), LIMIT_REJECT);
	limit_zone_unref(z);
}
END_TEST

/* A rejection is reported once per client per interval. */
START_TEST(test_rate_log_once)
{
	struct limit_zone *z = zone(LIMIT_REQ, "key=client rate=1r/m size=10");
	char k[LIMIT_KEY_MAX];
	size_t n = v4key(k, "10.0.0.1");
	struct limit_note note;
	int64_t t = 5 * SEC;
	int logs = 0;

	ck_assert_int_eq(limit_req_check(z, k, n, 0, t, &note), LIMIT_PASS);
	ck_assert_int_eq(note.log, 0);
	for (int i = 0; i < 5; i++) {
		ck_assert_int_eq(limit_req_check(z, k, n, 0, t + i * SEC, &note), LIMIT_REJECT);
		logs += note.log;
	}
	ck_assert_int_eq(logs, 1);
	ck_assert_int_eq(limit_req_check(z, k, n, 0, t + 11 * SEC, &note), LIMIT_REJECT);
	ck_assert_int_eq(note.log, 1);
	limit_zone_unref(z);
}
END_TEST

/* A full rate zone forgets its least recently used key. */
START_TEST(test_rate_eviction)
{
	struct limit_zone *z = zone(LIMIT_REQ, "key=client rate=1r/m size=3");
	char k[LIMIT_KEY_MAX];
	struct limit_note note;
	int64_t t = 5 * SEC;

	ck_assert_int_eq(req(z, "10.0.0.1", 0, t, NULL), LIMIT_PASS);
	ck_assert_int_eq(req(z, "10.0.0.2", 0, t, NULL), LIMIT_PASS);
	ck_assert_int_eq(req(z, "10.0.0.3", 0, t, NULL), LIMIT_PASS);
	ck_assert_uint_eq(limit_zone_used(z), 3);
	/* touch .1 so that .2 is the least recent */
	ck_assert_int_eq(req(z, "10.0.0.1", 0, t, NULL), LIMIT_REJECT);
	size_t n = v4key(k, "10.0.0.4");
	ck_assert_int_eq(limit_req_check(z, k, n, 0, t, &note), LIMIT_PASS);
	ck_assert_int_eq(note.evicted_active, 1); /* .2 was still limited: reported */
	ck_assert_int_eq(note.evicted, 1);
	ck_assert_uint_eq(limit_zone_used(z), 3);
	/* .2 was forgotten: it starts afresh; .1 and .3 are still remembered */
	ck_assert_int_eq(req(z, "10.0.0.1", 0, t, NULL), LIMIT_REJECT);
	ck_assert_int_eq(req(z, "10.0.0.2", 0, t, NULL), LIMIT_PASS); /* (forgets .3) */
	ck_assert_int_eq(req(z, "10.0.0.4", 0, t, NULL), LIMIT_REJECT);
	ck_assert_int_eq(req(z, "10.0.0.1", 0, t, NULL), LIMIT_REJECT);
	/* the zone report comes once a minute */
	n = v4key(k, "10.0.0.5");
	ck_assert_int_eq(limit_req_check(z, k, n, 0, t, &note), LIMIT_PASS);
	ck_assert_int_eq(note.evicted_active, 0);
	ck_assert_int_eq(note.evicted, 1); /* reported once a minute, counted each time */
	/* drained entries are forgotten silently */
	n = v4key(k, "10.0.0.6");
	ck_assert_int_eq(limit_req_check(z, k, n, 0, t + 3600 * SEC, &note), LIMIT_PASS);
	ck_assert_int_eq(note.evicted_active, 0);
	ck_assert_int_eq(note.evicted, 0);
	ck_assert_uint_eq(limit_zone_held(z), 0); /* a rate zone holds nothing */
	limit_zone_unref(z);
}
END_TEST

/* A big zone is striped; it still holds size keys. */
START_TEST(test_rate_big_zone)
{
	struct limit_zone *z = zone(LIMIT_REQ, "key=client rate=1r/m size=5000");
	char ip[32];
	int64_t t = 5 * SEC;

	for (int i = 0; i < 3000; i++) {
		snprintf(ip, sizeof(ip), "10.1.%d.%d", i / 256, i % 256);
		ck_assert_int_eq(req(z, ip, 0, t, NULL), LIMIT_PASS);
	}
	ck_assert_uint_eq(limit_zone_used(z), 3000);
	/*
	 * All remembered: 64 stripes of 79, 47 keys each on average; a stripe overflows
	 * (more than 4.6 standard deviations) about once in 10^4 runs
	 */
	for (int i = 0; i < 3000; i++) {
		snprintf(ip, sizeof(ip), "10.1.%d.%d", i / 256, i % 256);
		ck_assert_int_eq(req(z, ip, 0, t, NULL), LIMIT_REJECT);
	}
	for (int i = 0; i < 20000; i++) {
		snprintf(ip, sizeof(ip), "10.2.%d.%d", i / 256, i % 256);
		req(z, ip, 0, t, NULL);
	}
	ck_assert_uint_le(limit_zone_used(z), 5000 + 63);
	limit_zone_unref(z);
}
END_TEST

START_TEST(test_conn)
{
	struct limit_zone *z = zone(LIMIT_CONN, "key=client size=2");
	char a[LIMIT_KEY_MAX], b[LIMIT_KEY_MAX], c[LIMIT_KEY_MAX];
	size_t na = v4key(a, "10.0.0.1"), nb = v4key(b, "10.0.0.2"), nc = v4key(c, "10.0.0.3");
	struct limit_note n1, n2, n3, nx;

	ck_assert_int_eq(limit_conn_acquire(z, a, na, 2, 0, &n1), LIMIT_PASS);
	ck_assert_int_eq(limit_conn_acquire(z, a, na, 2, 0, &n2), LIMIT_PASS);
	ck_assert_uint_eq(limit_conn_count(z, a, na), 2);
	ck_assert_int_eq(limit_conn_acquire(z, a, na, 2, 0, &nx), LIMIT_REJECT);
	ck_assert_int_eq(nx.log, 1);
	ck_assert_int_eq(limit_conn_acquire(z, a, na, 2, 1 * SEC, &nx), LIMIT_REJECT);
	ck_assert_int_eq(nx.log, 0);
	ck_assert_uint_eq(limit_conn_count(z, a, na), 2);
	ck_assert_int_eq(limit_conn_acquire(z, b, nb, 2, 0, &n3), LIMIT_PASS);
	ck_assert_uint_eq(limit_zone_held(z), 3); /* refusals hold nothing */
	/* size=2 and both entries count something: a third key has no room */
	ck_assert_int_eq(limit_conn_acquire(z, c, nc, 2, 0, &nx), LIMIT_FULL);
	ck_assert_int_eq(nx.log, 1);
	ck_assert_int_eq(limit_conn_acquire(z, c, nc, 2, 0, &nx), LIMIT_FULL);
	ck_assert_int_eq(nx.log, 0); /* once a minute */
	limit_conn_release(z, n3.handle);
	ck_assert_uint_eq(limit_conn_count(z, b, nb), 0);
	ck_assert_uint_eq(limit_zone_used(z), 1);
	ck_assert_int_eq(limit_conn_acquire(z, c, nc, 2, 0, &n3), LIMIT_PASS);
	limit_conn_release(z, n1.handle);
	ck_assert_int_eq(limit_conn_acquire(z, a, na, 2, 0, &n1), LIMIT_PASS);
	limit_conn_release(z, n1.handle);
	limit_conn_release(z, n2.handle);
	limit_conn_release(z, n3.handle);
	ck_assert_uint_eq(limit_zone_used(z), 0);
	ck_assert_uint_eq(limit_zone_held(z), 0);
	limit_conn_release(z, n3.handle); /* a stale handle changes nothing */
	ck_assert_uint_eq(limit_zone_held(z), 0);
	ck_assert_uint_eq(limit_conn_count(z, a, na), 0);
	limit_zone_unref(z);
}
END_TEST

START_TEST(test_zone_identity)
{
	struct limit_def d1, d2;
	char *err = NULL;

	ck_assert_int_eq(parse(LIMIT_REQ, "key=client rate=5r/s", &d1), 0);
	struct limit_zone *z = limit_zone_new("a", &d1, &err);
	ck_assert_ptr_nonnull(z);
	ck_assert_int_eq(parse(LIMIT_REQ, "key=client rate=5r/s size=65536", &d2), 0);
	ck_assert_int_eq(limit_zone_same(z, "a", &d2), 1); /* the default size, written */
	ck_assert_int_eq(limit_zone_same(z, "b", &d2), 0);
	ck_assert_int_eq(parse(LIMIT_REQ, "key=client rate=6r/s", &d2), 0);
	ck_assert_int_eq(limit_zone_same(z, "a", &d2), 0);
	ck_assert_str_eq(limit_zone_name(z), "a");
	/* a reference keeps the state */
	ck_assert_ptr_eq(limit_zone_ref(z), z);
	limit_zone_unref(z);
	ck_assert_int_eq(req(z, "10.0.0.1", 0, SEC, NULL), LIMIT_PASS);
	ck_assert_int_eq(req(z, "10.0.0.1", 0, SEC, NULL), LIMIT_REJECT);
	limit_zone_unref(z);
}
END_TEST

/* Threads on one zone: no count is lost, every acquire is released. */
struct thr_arg {
	struct limit_zone *rz, *cz;
	int id;
	int passed;
};

static void *
thr_run(void *p)
{
	struct thr_arg *a = p;
	char k[LIMIT_KEY_MAX], ip[32];

	for (int i = 0; i < 20000; i++) {
		struct limit_note note;

		snprintf(ip, sizeof(ip), "10.9.0.%d", i % 50);
		size_t n = v4key(k, ip);

		a->passed += limit_req_check(a->rz, k, n, 99, 7 * SEC, &note) == LIMIT_PASS;
		if (limit_conn_acquire(a->cz, k, n, 1000, 0, &note) == LIMIT_PASS)
			limit_conn_release(a->cz, note.handle);
	}
	return NULL;
}

START_TEST(test_threads)
{
	struct limit_zone *rz = zone(LIMIT_REQ, "key=client rate=1r/m size=1000");
	struct limit_zone *cz = zone(LIMIT_CONN, "key=client size=1000");
	pthread_t t[4];
	struct thr_arg a[4];
	int passed = 0;

	for (int i = 0; i < 4; i++) {
		a[i] = (struct thr_arg){rz, cz, i, 0};
		ck_assert_int_eq(pthread_create(&t[i], NULL, thr_run, &a[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		passed += a[i].passed;
	}
	/* 50 keys, 100 each at one instant (burst 99): exactly 5000, however interleaved */
	ck_assert_int_eq(passed, 5000);
	ck_assert_uint_eq(limit_zone_used(cz), 0);
	ck_assert_uint_eq(limit_zone_held(cz), 0);
	limit_zone_unref(rz);
	limit_zone_unref(cz);
}
END_TEST

static Suite *
limit_suite(void)
{
	Suite *s = suite_create("limit");
	TCase *tc = tcase_create("parse");

	tcase_add_test(tc, test_parse_zone);
	tcase_add_test(tc, test_parse_uses);
	tcase_add_test(tc, test_keys);
	suite_add_tcase(s, tc);

	tc = tcase_create("rate");
	tcase_add_test(tc, test_rate_burst);
	tcase_add_test(tc, test_rate_steady);
	tcase_add_test(tc, test_rate_per_minute);
	tcase_add_test(tc, test_rate_log_once);
	tcase_add_test(tc, test_rate_eviction);
	tcase_add_test(tc, test_rate_big_zone);
	suite_add_tcase(s, tc);

	tc = tcase_create("conn");
	tcase_add_test(tc, test_conn);
	tcase_add_test(tc, test_zone_identity);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_threads);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return unit_main("test_limit", limit_suite());
}
