#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

/*
 * test_metrics.c - unit tests of proxyd/metrics.c: the sample and family lines of the
 * Prometheus text format (label escaping), status classes, per-thread blocks summed on
 * read, the registry of slots across generations (kept keys keep their counts, removed
 * servers leave the output) and the order of a whole exposition.
 */

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include <check.h>

#include "cfg.h"
#include "limit.h"
#include "metrics.h"
#include "unit.h"

/* The text of b as a NUL-terminated string (malloc'd); b is drained. */
static char *
text_of(struct evbuffer *b)
{
	size_t n = evbuffer_get_length(b);
	char *s = malloc(n + 1);

	ck_assert_ptr_nonnull(s);
	evbuffer_remove(b, s, n);
	s[n] = '\0';
	return s;
}

START_TEST(test_sample_plain)
{
	struct evbuffer *b = evbuffer_new();
	const char *l[] = {"a", "x", "b", "y"};
	char *s;

	ck_assert_int_eq(metrics_sample(b, "proxyd_x_total", NULL, 0, 0), 0);
	ck_assert_int_eq(metrics_sample(b, "proxyd_y", l, 1, 18446744073709551615u), 0);
	ck_assert_int_eq(metrics_sample(b, "proxyd_z", l, 2, 42), 0);
	s = text_of(b);
	ck_assert_str_eq(s, "proxyd_x_total 0\n"
	                    "proxyd_y{a=\"x\"} 18446744073709551615\n"
	                    "proxyd_z{a=\"x\",b=\"y\"} 42\n");
	free(s);
	evbuffer_free(b);
}
END_TEST

START_TEST(test_sample_escape)
{
	struct evbuffer *b = evbuffer_new();
	const char *l[] = {"v", "a\\b\"c\nd", "w", "\\\"\n", "e", ""};
	char *s;

	ck_assert_int_eq(metrics_sample(b, "m", l, 3, 1), 0);
	s = text_of(b);
	/* backslash, double quote and line feed escaped; nothing else touched */
	ck_assert_str_eq(s, "m{v=\"a\\\\b\\\"c\\nd\",w=\"\\\\\\\"\\n\",e=\"\"} 1\n");
	free(s);
	ck_assert_int_eq(metrics_family(b, "m", "counter", "say \"hi\" \\ there\nnow"), 0);
	s = text_of(b);
	/* HELP escapes backslash and line feed only (the format's rule) */
	ck_assert_str_eq(s, "# HELP m say \"hi\" \\\\ there\\nnow\n# TYPE m counter\n");
	free(s);
	evbuffer_free(b);
}
END_TEST

/* A server and a peer whose slots the tests choose (never bound: no registry). */
static struct cfg_server tsrv;
static struct cfg_peer tpeer;

START_TEST(test_status_classes)
{
	static const int st[] = {0, 99, 100, 199, 200, 204, 301, 404, 499, 500, 599, 600, 1000, -1};
	static const int cls[] = {0, 0, 1, 1, 2, 2, 3, 4, 4, 5, 5, 0, 0, 0};
	uint64_t before[MS_COUNT], after[MS_COUNT];

	tsrv.metrics_slot = 250; /* far from the registry's */
	for (size_t i = 0; i < sizeof(st) / sizeof(st[0]); i++) {
		metrics_sum_srv(250, before);
		metrics_request(&tsrv, st[i], 3, 5, 7);
		metrics_sum_srv(250, after);
		for (int k = 0; k < MS_COUNT; k++) {
			uint64_t want = k == MS_REQ_OTHER + cls[i] ? 1
			                : k == MS_RX_BYTES         ? 3
			                : k == MS_TX_BYTES         ? 5
			                : k == MS_TX_HEAD_BYTES    ? 7
			                                           : 0;
			ck_assert_msg(after[k] - before[k] == want, "status %d counter %d: %llu",
			              st[i], k, (unsigned long long)(after[k] - before[k]));
		}
	}
}
END_TEST

#define PER_THREAD 100000

static void *
counter_thread(void *arg)
{
	int id = (int)(intptr_t)arg;

	ck_assert_int_eq(metrics_attach(id), 0);
	for (int i = 0; i < PER_THREAD; i++) {
		metrics_srv_inc(&tsrv, MS_CONN_ACCEPTED);
		metrics_peer_inc(&tpeer, MP_REQUESTS);
		if (i % 4 == 0)
			metrics_peer_inc(&tpeer, MP_RETRIES);
	}
	return NULL;
}

START_TEST(test_sum_threads)
{
	uint64_t s0[MS_COUNT], s1[MS_COUNT], p0[MP_COUNT], p1[MP_COUNT];
	pthread_t t[4];

	tsrv.metrics_slot = 251;
	tpeer.metrics_slot = 1000;
	metrics_sum_srv(251, s0);
	metrics_sum_peer(1000, p0);
	/* four threads with blocks of their own (two share an id, one after the other) */
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, counter_thread, (void *)(intptr_t)i),
		                 0);
	for (int i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	ck_assert_int_eq(pthread_create(&t[3], NULL, counter_thread, (void *)(intptr_t)1), 0);
	pthread_join(t[3], NULL);
	/* and this thread, on the fallback block */
	metrics_srv_add(&tsrv, MS_CONN_ACCEPTED, 7);
	metrics_sum_srv(251, s1);
	metrics_sum_peer(1000, p1);
	ck_assert_uint_eq(s1[MS_CONN_ACCEPTED] - s0[MS_CONN_ACCEPTED], 4 * PER_THREAD + 7);
	ck_assert_uint_eq(p1[MP_REQUESTS] - p0[MP_REQUESTS], 4 * PER_THREAD);
	ck_assert_uint_eq(p1[MP_RETRIES] - p0[MP_RETRIES], PER_THREAD);
	for (int k = 0; k < MS_COUNT; k++)
		if (k != MS_CONN_ACCEPTED)
			ck_assert_uint_eq(s1[k], s0[k]);
	ck_assert_int_eq(metrics_attach(-1), -1);
	ck_assert_int_eq(metrics_attach(METRICS_MAX_BLOCKS - 1), -1);
}
END_TEST

static struct cfg *
load(const char *text)
{
	char *err = NULL;
	struct cfg *cfg;

	unit_write("proxyd.conf", text, strlen(text));
	cfg = cfg_load(unit_path("proxyd.conf"), &err);
	ck_assert_msg(cfg != NULL, "%s", err ? err : "?");
	ck_assert_int_eq(metrics_bind(cfg), 0);
	return cfg;
}

static int
up_odd(const struct cfg_peer *p, int64_t now_ms)
{
	(void)now_ms;
	return p->addr.text[strlen(p->addr.text) - 1] % 2 == 1; /* ...1 up, ...2 down */
}

static int
cache_odd(const struct cfg_cache *c)
{
	return c->name[0] == 'u'; /* "up..." serves */
}

/* The value of the sample line that starts with key ("key value\n"), or -1. */
static long long
value_of(const char *text, const char *key)
{
	size_t n = strlen(key);

	for (const char *p = text; p != NULL && *p != '\0'; p = strchr(p, '\n'), p = p ? p + 1 : p)
		if (strncmp(p, key, n) == 0 && p[n] == ' ')
			return atoll(p + n + 1);
	return -1;
}

#define CONF1                                                                                      \
	"upstream \"u\\\"1\" { server 127.0.0.1:1001; server 127.0.0.1:1002; }\n"                  \
	"server { listen 127.0.0.1:2001; proxy_pass \"u\\\"1\"; }\n"                               \
	"server { listen 127.0.0.1:2002; mode forward; }\n"
#define CONF2                                                                                      \
	"upstream \"u\\\"1\" { server 127.0.0.1:1002; server 127.0.0.1:1003; }\n"                  \
	"server { listen 127.0.0.1:2003; proxy_pass \"u\\\"1\"; }\n"                               \
	"server { listen 127.0.0.1:2001; proxy_pass \"u\\\"1\"; }\n"

START_TEST(test_render)
{
	struct cfg *c1 = load(CONF1), *c2;
	struct evbuffer *b = evbuffer_new();
	const struct cfg_server *r1 = &c1->servers[0], *f1 = &c1->servers[1];
	char *s;

	ck_assert_uint_ne(r1->metrics_slot, 0);
	ck_assert_uint_ne(f1->metrics_slot, r1->metrics_slot);
	metrics_request(r1, 200, 10, 20, 100);
	metrics_request(r1, 200, 1, 2, 50);
	metrics_request(r1, 503, 0, 0, 7);
	metrics_origin_failed(f1, MO_REFUSED);
	metrics_origin_failed(f1, MO_REFUSED);
	metrics_origin_failed(f1, MO_TIMEOUT);
	metrics_srv_inc(r1, MS_CONN_ACCEPTED);
	metrics_srv_inc(r1, MS_CONN_ACCEPTED);
	metrics_srv_inc(r1, MS_CONN_CLOSED);
	metrics_srv_inc(f1, MS_AUTH_FAILED);
	metrics_peer_inc(&c1->upstreams[0].peers[1], MP_REQUESTS);
	metrics_peer_inc(&c1->upstreams[0].peers[1], MP_RETRIES);
	ck_assert_int_eq(metrics_render(b, c1, 0, up_odd, cache_odd), 0);
	s = text_of(b);
	ck_assert_int_eq(value_of(s, "proxyd_config_generation"), (long long)c1->generation);
	ck_assert_int_eq(value_of(s, "proxyd_requests_total{server=\"127.0.0.1:2001\","
	                             "mode=\"reverse\",code=\"2xx\"}"),
	                 2);
	ck_assert_int_eq(value_of(s, "proxyd_requests_total{server=\"127.0.0.1:2001\","
	                             "mode=\"reverse\",code=\"5xx\"}"),
	                 1);
	ck_assert_int_eq(
	        value_of(s,
	                 "proxyd_received_bytes_total{server=\"127.0.0.1:2001\",mode=\"reverse\"}"),
	        11);
	ck_assert_int_eq(
	        value_of(
	                s,
	                "proxyd_sent_body_bytes_total{server=\"127.0.0.1:2001\",mode=\"reverse\"}"),
	        22);
	ck_assert_int_eq(
	        value_of(
	                s,
	                "proxyd_sent_head_bytes_total{server=\"127.0.0.1:2001\",mode=\"reverse\"}"),
	        157);
	ck_assert_int_eq(value_of(s,
	                          "proxyd_origin_connect_failures_total{server=\"127.0.0.1:2002\","
	                          "mode=\"forward\",reason=\"refused\"}"),
	                 2);
	ck_assert_int_eq(value_of(s,
	                          "proxyd_origin_connect_failures_total{server=\"127.0.0.1:2002\","
	                          "mode=\"forward\",reason=\"timeout\"}"),
	                 1);
	ck_assert_int_eq(value_of(s,
	                          "proxyd_origin_connect_failures_total{server=\"127.0.0.1:2002\","
	                          "mode=\"forward\",reason=\"unreachable\"}"),
	                 0);
	ck_assert_ptr_null(
	        strstr(s, "proxyd_origin_connect_failures_total{server=\"127.0.0.1:2001\""));
	ck_assert_ptr_null(strstr(s, "proxyd_limit_")); /* no zones, no limit families */
	ck_assert_int_eq(
	        value_of(s,
	                 "proxyd_connections_active{server=\"127.0.0.1:2001\",mode=\"reverse\"}"),
	        1);
	ck_assert_int_eq(
	        value_of(s,
	                 "proxyd_auth_failures_total{server=\"127.0.0.1:2002\",mode=\"forward\"}"),
	        1);
	/* forward-only families: not for the reverse server; no cache family at all */
	ck_assert_ptr_null(strstr(s, "proxyd_auth_failures_total{server=\"127.0.0.1:2001\""));
	ck_assert_ptr_null(strstr(s, "proxyd_cache_"));
	/* the upstream name escaped; the peers in order; up from the callback */
	ck_assert_int_eq(value_of(s, "proxyd_upstream_requests_total{upstream=\"u\\\"1\","
	                             "peer=\"127.0.0.1:1002\"}"),
	                 1);
	ck_assert_int_eq(value_of(s, "proxyd_upstream_retries_total{upstream=\"u\\\"1\","
	                             "peer=\"127.0.0.1:1002\"}"),
	                 1);
	ck_assert_int_eq(
	        value_of(s, "proxyd_upstream_peer_up{upstream=\"u\\\"1\",peer=\"127.0.0.1:1001\"}"),
	        1);
	ck_assert_int_eq(
	        value_of(s, "proxyd_upstream_peer_up{upstream=\"u\\\"1\",peer=\"127.0.0.1:1002\"}"),
	        0);
	/* order: families as documented, servers and peers in configuration order */
	const char *order[] = {
	        "# HELP proxyd_config_generation",
	        "# HELP proxyd_connections_accepted_total",
	        "proxyd_connections_accepted_total{server=\"127.0.0.1:2001\"",
	        "proxyd_connections_accepted_total{server=\"127.0.0.1:2002\"",
	        "# TYPE proxyd_connections_active gauge",
	        "proxyd_requests_total{server=\"127.0.0.1:2001\",mode=\"reverse\",code=\"1xx\"}",
	        "proxyd_requests_total{server=\"127.0.0.1:2001\",mode=\"reverse\",code=\"5xx\"}",
	        "proxyd_requests_total{server=\"127.0.0.1:2001\",mode=\"reverse\",code=\"other\"}",
	        "proxyd_requests_total{server=\"127.0.0.1:2002\",mode=\"forward\",code=\"1xx\"}",
	        "# HELP proxyd_requests_rejected_total",
	        "# HELP proxyd_tunnels_opened_total",
	        "# HELP proxyd_auth_failures_total",
	        "# HELP proxyd_upstream_requests_total",
	        "proxyd_upstream_requests_total{upstream=\"u\\\"1\",peer=\"127.0.0.1:1001\"}",
	        "proxyd_upstream_requests_total{upstream=\"u\\\"1\",peer=\"127.0.0.1:1002\"}",
	        "# TYPE proxyd_upstream_peer_active gauge",
	};
	const char *at = s;
	for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
		const char *p = strstr(at, order[i]);

		ck_assert_msg(p != NULL, "\"%s\" missing or out of order", order[i]);
		at = p + 1;
	}
	free(s);

	/* a reload: 2001 and peer 1002 kept (their counts too), 2002 and 1001 removed */
	c2 = load(CONF2);
	ck_assert_uint_eq(c2->servers[1].metrics_slot, r1->metrics_slot);
	ck_assert_uint_ne(c2->servers[0].metrics_slot, r1->metrics_slot);
	ck_assert_uint_ne(c2->servers[0].metrics_slot, f1->metrics_slot);
	ck_assert_uint_eq(c2->upstreams[0].peers[0].metrics_slot,
	                  c1->upstreams[0].peers[1].metrics_slot);
	ck_assert_int_eq(metrics_render(b, c2, 0, up_odd, cache_odd), 0);
	s = text_of(b);
	ck_assert_int_eq(value_of(s, "proxyd_requests_total{server=\"127.0.0.1:2001\","
	                             "mode=\"reverse\",code=\"2xx\"}"),
	                 2);
	ck_assert_int_eq(value_of(s, "proxyd_requests_total{server=\"127.0.0.1:2003\","
	                             "mode=\"reverse\",code=\"2xx\"}"),
	                 0);
	ck_assert_int_eq(value_of(s, "proxyd_upstream_requests_total{upstream=\"u\\\"1\","
	                             "peer=\"127.0.0.1:1002\"}"),
	                 1);
	ck_assert_ptr_null(strstr(s, "127.0.0.1:2002"));
	ck_assert_ptr_null(strstr(s, "127.0.0.1:1001"));
	ck_assert_ptr_null(strstr(s, "proxyd_auth_failures_total")); /* no forward server */
	/* 2003 comes first now: configuration order, not slot order */
	ck_assert_ptr_nonnull(
	        strstr(s, "proxyd_connections_accepted_total{server=\"127.0.0.1:2003\""));
	ck_assert(strstr(s, "accepted_total{server=\"127.0.0.1:2003\"") <
	          strstr(s, "accepted_total{server=\"127.0.0.1:2001\""));
	free(s);
	evbuffer_free(b);
	cfg_unref(c1);
	cfg_unref(c2);
}
END_TEST

#define ZCONF(rate)                                                                                \
	"limit_req_zone rz key=client rate=" rate " size=2;\n"                                     \
	"limit_conn_zone cz key=host size=1;\n"                                                    \
	"upstream u { server 127.0.0.1:1001; }\n"                                                  \
	"server { listen 127.0.0.1:2101; proxy_pass u; limit_conn cz 1; limit_req rz; }\n"         \
	"server { listen 127.0.0.1:2102; proxy_pass u; limit_req rz burst=3; }\n"

/* The zones' counters, from the server's limit lines, and their gauges read from the zones. */
START_TEST(test_zones)
{
	struct cfg *c1 = load(ZCONF("1r/m")), *c2;
	struct evbuffer *b = evbuffer_new();
	const struct cfg_server *s1 = &c1->servers[0], *s2 = &c1->servers[1];
	const struct cfg_limit *lc = &s1->limits[0], *lr = &s1->limits[1], *lr2 = &s2->limits[0];
	struct limit_zone *rz = lr->zone, *cz = lc->zone;
	struct limit_note note;
	char *s;

	ck_assert_uint_ne(lr->metrics_slot, 0);
	ck_assert_uint_ne(lc->metrics_slot, 0);
	ck_assert_uint_ne(lc->metrics_slot, lr->metrics_slot);
	ck_assert_uint_eq(lr2->metrics_slot, lr->metrics_slot); /* one zone, two lines */
	ck_assert_uint_eq(c1->limit_zones[0].metrics_slot, lr->metrics_slot);
	metrics_zone_inc(lr, MZ_PASSED);
	metrics_zone_inc(lr2, MZ_PASSED);
	metrics_zone_inc(lr2, MZ_REFUSED);
	metrics_zone_inc(lc, MZ_PASSED);
	metrics_zone_inc(lc, MZ_FULL);
	/* three keys in the rate zone (size 2: one forgotten), one held in the conn zone */
	ck_assert_int_eq(limit_req_check(rz, "a", 1, 0, 0, &note), LIMIT_PASS);
	ck_assert_int_eq(limit_req_check(rz, "b", 1, 0, 0, &note), LIMIT_PASS);
	ck_assert_int_eq(limit_req_check(rz, "c", 1, 0, 0, &note), LIMIT_PASS);
	ck_assert_int_eq(limit_conn_acquire(cz, "h", 1, 1, 0, &note), LIMIT_PASS);
	ck_assert_int_eq(metrics_render(b, c1, 0, up_odd, cache_odd), 0);
	s = text_of(b);
	ck_assert_int_eq(value_of(s, "proxyd_limit_passed_total{zone=\"rz\",kind=\"req\"}"), 2);
	ck_assert_int_eq(value_of(s, "proxyd_limit_refused_total{zone=\"rz\",kind=\"req\"}"), 1);
	ck_assert_int_eq(value_of(s, "proxyd_limit_zone_full_total{zone=\"rz\",kind=\"req\"}"), 0);
	ck_assert_int_eq(value_of(s, "proxyd_limit_passed_total{zone=\"cz\",kind=\"conn\"}"), 1);
	ck_assert_int_eq(value_of(s, "proxyd_limit_zone_full_total{zone=\"cz\",kind=\"conn\"}"), 1);
	ck_assert_int_eq(value_of(s, "proxyd_limit_zone_keys{zone=\"rz\",kind=\"req\"}"), 2);
	ck_assert_int_eq(value_of(s, "proxyd_limit_zone_keys{zone=\"cz\",kind=\"conn\"}"), 1);
	ck_assert_int_eq(value_of(s, "proxyd_limit_zone_size{zone=\"rz\",kind=\"req\"}"), 2);
	ck_assert_int_eq(value_of(s, "proxyd_limit_conn_active{zone=\"cz\",kind=\"conn\"}"), 1);
	ck_assert_ptr_null(strstr(s, "proxyd_limit_conn_active{zone=\"rz\""));
	/* zones after the peers, in configuration order */
	ck_assert(strstr(s, "# HELP proxyd_upstream_peer_active") <
	          strstr(s, "# HELP proxyd_limit_passed_total"));
	ck_assert(strstr(s, "proxyd_limit_passed_total{zone=\"rz\"") <
	          strstr(s, "proxyd_limit_passed_total{zone=\"cz\""));
	free(s);

	/* a reload that changes the rate: a new zone, the same slot and counts */
	c2 = load(ZCONF("2r/m"));
	ck_assert_ptr_ne(c2->servers[0].limits[1].zone, rz);
	ck_assert_uint_eq(c2->servers[0].limits[1].metrics_slot, lr->metrics_slot);
	ck_assert_int_eq(metrics_render(b, c2, 0, up_odd, cache_odd), 0);
	s = text_of(b);
	ck_assert_int_eq(value_of(s, "proxyd_limit_passed_total{zone=\"rz\",kind=\"req\"}"), 2);
	ck_assert_int_eq(value_of(s, "proxyd_limit_zone_keys{zone=\"rz\",kind=\"req\"}"), 0);
	free(s);
	evbuffer_free(b);
	cfg_unref(c1);
	cfg_unref(c2);
}
END_TEST

START_TEST(test_unbound)
{
	/* a generation never bound counts in slot 0, which is never shown */
	char *err = NULL;
	struct cfg *c;
	struct evbuffer *b = evbuffer_new();
	char *s;

	unit_write("proxyd.conf", CONF1, strlen(CONF1));
	c = cfg_load(unit_path("proxyd.conf"), &err);
	ck_assert_ptr_nonnull(c);
	ck_assert_uint_eq(c->servers[0].metrics_slot, 0);
	metrics_request(&c->servers[0], 200, 1, 1, 1);
	ck_assert_int_eq(metrics_render(b, c, 0, up_odd, cache_odd), 0);
	s = text_of(b);
	ck_assert_ptr_null(strstr(s, "proxyd_requests_total{"));
	ck_assert_ptr_nonnull(strstr(s, "# TYPE proxyd_config_generation gauge\n"));
	free(s);
	evbuffer_free(b);
	cfg_unref(c);
}
END_TEST

static Suite *
metrics_suite(void)
{
	Suite *s = suite_create("metrics");
	TCase *tc = tcase_create("format");

	tcase_add_test(tc, test_sample_plain);
	tcase_add_test(tc, test_sample_escape);
	suite_add_tcase(s, tc);

	tc = tcase_create("counters");
	tcase_add_test(tc, test_status_classes);
	tcase_add_test(tc, test_sum_threads);
	suite_add_tcase(s, tc);

	tc = tcase_create("render");
	tcase_add_checked_fixture(tc, unit_tmpdir_setup, unit_tmpdir_teardown);
	tcase_add_test(tc, test_render);
	tcase_add_test(tc, test_zones);
	tcase_add_test(tc, test_unbound);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return unit_main("test_metrics", metrics_suite());
}
