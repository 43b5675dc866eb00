#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

/*
 * test_upstream.c - unit tests of peer selection (up_pick() in proxyd/upstream.c).
 *
 * Each test loads a configuration with cfg_load() from a file in its own directory under
 * $TMPDIR (or /tmp), sets the runtime fields of the peers by hand (active, down_until_ms)
 * and calls up_pick() directly. Counts are checked exactly where the algorithm is
 * deterministic and within 5% of the expected share where it is random.
 */

#include <sys/stat.h>
#include <sys/types.h>

#include <arpa/inet.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "cfg.h"
#include "unit.h"
#include "upstream.h"

#define SRV "server { listen 8080; proxy_pass u; }\n"
#define NOW 1000000 /* a "now" well past the zero of down_until_ms */

static struct cfg *cfg; /* the configuration of the running test */

static void
setup(void)
{
	unit_tmpdir_setup();
	cfg = NULL;
}

static void
teardown(void)
{
	cfg_unref(cfg);
	cfg = NULL;
	unit_tmpdir_teardown();
}

/* Load "upstream u { body } server {...}" and return upstream u. */
static struct cfg_upstream *
load_upstream(const char *body)
{
	char text[8192], *err = NULL;
	int n = snprintf(text, sizeof(text), "upstream u {\n%s\n}\n" SRV, body);

	ck_assert(n > 0 && (size_t)n < sizeof(text));
	unit_write("proxyd.conf", text, (size_t)n);
	cfg = cfg_load(unit_path("proxyd.conf"), &err);
	ck_assert_msg(cfg != NULL, "unexpected error: %s", err != NULL ? err : "(null)");
	ck_assert_uint_eq(cfg->nupstreams, 1);
	return &cfg->upstreams[0];
}

/* The index of the peer up_pick() returns, -1 for NULL. */
static int
pick(struct cfg_upstream *u, const struct sockaddr *client, struct cfg_peer *const *tried,
     int ntried)
{
	struct cfg_peer *p = up_pick(u, client, NULL, 0, tried, ntried, NOW);

	if (p == NULL)
		return -1;
	ck_assert(p >= u->peers && p < u->peers + u->npeers);
	return (int)(p - u->peers);
}

/* Pick n times with no client and nothing tried; counts[i] is how often peer i came. */
static void
pick_many(struct cfg_upstream *u, int n, int *counts)
{
	memset(counts, 0, u->npeers * sizeof(*counts));
	for (int i = 0; i < n; i++) {
		int k = pick(u, NULL, NULL, 0);

		ck_assert_int_ge(k, 0);
		counts[k]++;
	}
}

static struct sockaddr_in
sin4(const char *ip)
{
	struct sockaddr_in sin;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(40000);
	ck_assert_int_eq(inet_pton(AF_INET, ip, &sin.sin_addr), 1);
	return sin;
}

static struct sockaddr_in6
sin6(const char *ip)
{
	struct sockaddr_in6 s6;

	memset(&s6, 0, sizeof(s6));
	s6.sin6_family = AF_INET6;
	s6.sin6_port = htons(40000);
	ck_assert_int_eq(inet_pton(AF_INET6, ip, &s6.sin6_addr), 1);
	return s6;
}

static int
pick4(struct cfg_upstream *u, const char *ip)
{
	struct sockaddr_in sin = sin4(ip);

	return pick(u, (const struct sockaddr *)&sin, NULL, 0);
}

/* Marked down by passive health until long after NOW. */
static void
mark_down(struct cfg_peer *p)
{
	atomic_store(&p->down_until_ms, (int64_t)NOW + 10000);
}

/* ---- round robin ---- */

START_TEST(test_rr_weights)
{
	struct cfg_upstream *u = load_upstream("server 127.0.0.1:1 weight=1;\n"
	                                       "server 127.0.0.1:2 weight=2;\n"
	                                       "server 127.0.0.1:3 weight=3;");
	int counts[3], seq[6];

	ck_assert_int_eq(u->balance, CFG_BALANCE_ROUND_ROBIN);
	pick_many(u, 600, counts);
	ck_assert_int_eq(counts[0], 100);
	ck_assert_int_eq(counts[1], 200);
	ck_assert_int_eq(counts[2], 300);
	/* smooth: within one cycle of 6 the heaviest is never chosen three times in a row */
	for (int i = 0; i < 6; i++)
		seq[i] = pick(u, NULL, NULL, 0);
	for (int i = 0; i + 2 < 6; i++)
		ck_assert(!(seq[i] == 2 && seq[i + 1] == 2 && seq[i + 2] == 2));
}
END_TEST

START_TEST(test_rr_tried_skipped)
{
	struct cfg_upstream *u = load_upstream("server 127.0.0.1:1;\n"
	                                       "server 127.0.0.1:2;\n"
	                                       "server 127.0.0.1:3;");
	struct cfg_peer *tried[2] = {&u->peers[0], &u->peers[2]};

	for (int i = 0; i < 20; i++)
		ck_assert_int_eq(pick(u, NULL, tried, 2), 1);
	tried[1] = &u->peers[1];
	for (int i = 0; i < 20; i++)
		ck_assert_int_eq(pick(u, NULL, tried, 2), 2);
}
END_TEST

/* Every algorithm skips tried peers, `down` peers and returns NULL when none is left. */
START_TEST(test_all_tried_skipped_down)
{
	static const char *const methods[] = {"round_robin", "least_conn", "ip_hash", "random",
	                                      "random two"};
	char body[256];
	struct sockaddr_in sin = sin4("192.0.2.7");

	for (size_t m = 0; m < sizeof(methods) / sizeof(methods[0]); m++) {
		snprintf(body, sizeof(body),
		         "balance %s;\nserver 127.0.0.1:1;\nserver 127.0.0.1:2 down;\n"
		         "server 127.0.0.1:3 weight=5;\nserver 127.0.0.1:4 down weight=9;",
		         methods[m]);
		struct cfg_upstream *u = load_upstream(body);
		struct cfg_peer *tried[2] = {&u->peers[0], &u->peers[2]};
		int counts[4] = {0, 0, 0, 0};

		for (int i = 0; i < 2000; i++) {
			int k = pick(u, i % 2 ? (const struct sockaddr *)&sin : NULL, NULL, 0);

			ck_assert_int_ge(k, 0);
			counts[k]++;
		}
		ck_assert_msg(counts[1] == 0 && counts[3] == 0, "%s chose a down peer", methods[m]);
		for (int i = 0; i < 50; i++) {
			ck_assert_int_eq(pick(u, (const struct sockaddr *)&sin, tried, 1), 2);
			ck_assert_int_eq(pick(u, NULL, tried + 1, 1), 0);
		}
		ck_assert_int_eq(pick(u, (const struct sockaddr *)&sin, tried, 2), -1);
		ck_assert_int_eq(pick(u, NULL, tried, 2), -1);
		cfg_unref(cfg);
		cfg = NULL;
	}
}
END_TEST

/* ---- backup ---- */

START_TEST(test_backup)
{
	static const char *const methods[] = {"round_robin", "least_conn", "random", "random two"};
	char body[256];

	for (size_t m = 0; m < sizeof(methods) / sizeof(methods[0]); m++) {
		snprintf(body, sizeof(body),
		         "balance %s;\nserver 127.0.0.1:1;\nserver 127.0.0.1:2 backup;\n"
		         "server 127.0.0.1:3;\nserver 127.0.0.1:4 backup weight=3;",
		         methods[m]);
		struct cfg_upstream *u = load_upstream(body);
		struct cfg_peer *tried[1] = {&u->peers[0]};
		int counts[4];

		/* primaries live: backups never */
		pick_many(u, 1000, counts);
		ck_assert_msg(counts[1] == 0 && counts[3] == 0, "%s used a backup", methods[m]);
		ck_assert(counts[0] > 0 && counts[2] > 0);
		/* one primary down: the other takes everything */
		mark_down(&u->peers[0]);
		pick_many(u, 100, counts);
		ck_assert_int_eq(counts[2], 100);
		/* the other one already tried: backups */
		tried[0] = &u->peers[2];
		for (int i = 0; i < 100; i++) {
			int k = pick(u, NULL, tried, 1);

			ck_assert(k == 1 || k == 3);
		}
		/* both primaries down: backups, by weight */
		mark_down(&u->peers[2]);
		pick_many(u, 4000, counts);
		ck_assert_int_eq(counts[0] + counts[2], 0);
		ck_assert_int_eq(counts[1] + counts[3], 4000);
		ck_assert_int_gt(counts[3], counts[1]);
		/* and back */
		atomic_store(&u->peers[0].down_until_ms, 0);
		pick_many(u, 100, counts);
		ck_assert_int_eq(counts[0], 100);
		cfg_unref(cfg);
		cfg = NULL;
	}
}
END_TEST

START_TEST(test_backup_only_when_all_marked_down)
{
	struct cfg_upstream *u = load_upstream("server 127.0.0.1:1;\n"
	                                       "server 127.0.0.1:2 down;\n"
	                                       "server 127.0.0.1:3 backup;");

	mark_down(&u->peers[0]);
	ck_assert_int_eq(pick(u, NULL, NULL, 0), 2);
	mark_down(&u->peers[2]);
	ck_assert_int_eq(pick(u, NULL, NULL, 0), -1);
}
END_TEST

/* ---- least_conn ---- */

START_TEST(test_least_conn)
{
	struct cfg_upstream *u = load_upstream("least_conn;\n"
	                                       "server 127.0.0.1:1;\n"
	                                       "server 127.0.0.1:2;\n"
	                                       "server 127.0.0.1:3;");
	int counts[3];

	ck_assert_int_eq(u->balance, CFG_BALANCE_LEAST_CONN);
	atomic_store(&u->peers[0].active, 5);
	atomic_store(&u->peers[1].active, 2);
	atomic_store(&u->peers[2].active, 4);
	pick_many(u, 50, counts);
	ck_assert_int_eq(counts[1], 50);
	/* counts that change as picks are made: always the least loaded */
	for (int i = 0; i < 34; i++) {
		int k = pick(u, NULL, NULL, 0);

		for (int j = 0; j < 3; j++)
			ck_assert_int_le(atomic_load(&u->peers[k].active),
			                 atomic_load(&u->peers[j].active));
		atomic_fetch_add(&u->peers[k].active, 1);
	}
	/* 11 + 34 requests: 15 each */
	ck_assert_int_eq(atomic_load(&u->peers[0].active), 15);
	ck_assert_int_eq(atomic_load(&u->peers[1].active), 15);
	ck_assert_int_eq(atomic_load(&u->peers[2].active), 15);
	/* ties: round robin among the tied */
	atomic_store(&u->peers[2].active, 16);
	pick_many(u, 100, counts);
	ck_assert_int_eq(counts[0], 50);
	ck_assert_int_eq(counts[1], 50);
	ck_assert_int_eq(counts[2], 0);
}
END_TEST

START_TEST(test_least_conn_weights)
{
	struct cfg_upstream *u = load_upstream("balance least_conn;\n"
	                                       "server 127.0.0.1:1 weight=1;\n"
	                                       "server 127.0.0.1:2 weight=3;");
	int counts[2];

	/* 2/1 > 5/3: the heavier is less loaded although it has more requests */
	atomic_store(&u->peers[0].active, 2);
	atomic_store(&u->peers[1].active, 5);
	pick_many(u, 10, counts);
	ck_assert_int_eq(counts[1], 10);
	/* 1/1 < 4/3 */
	atomic_store(&u->peers[0].active, 1);
	atomic_store(&u->peers[1].active, 4);
	pick_many(u, 10, counts);
	ck_assert_int_eq(counts[0], 10);
	/* 2/1 == 6/3: a tie, broken by weight, 1:3 */
	atomic_store(&u->peers[0].active, 2);
	atomic_store(&u->peers[1].active, 6);
	pick_many(u, 400, counts);
	ck_assert_int_eq(counts[0], 100);
	ck_assert_int_eq(counts[1], 300);
	/* filling up from nothing keeps active in proportion 1:3 */
	atomic_store(&u->peers[0].active, 0);
	atomic_store(&u->peers[1].active, 0);
	for (int i = 0; i < 400; i++)
		atomic_fetch_add(&u->peers[pick(u, NULL, NULL, 0)].active, 1);
	ck_assert_int_eq(atomic_load(&u->peers[0].active), 100);
	ck_assert_int_eq(atomic_load(&u->peers[1].active), 300);
}
END_TEST

/* ---- ip_hash ---- */

START_TEST(test_ip_hash_sticky)
{
	struct cfg_upstream *u = load_upstream("ip_hash;\n"
	                                       "server 127.0.0.1:1;\n"
	                                       "server 127.0.0.1:2;\n"
	                                       "server 127.0.0.1:3;\n"
	                                       "server 127.0.0.1:4;");
	struct sockaddr_in6 a6 = sin6("2001:db8::1"), b6 = sin6("2001:db8::2");
	int first, k6;

	ck_assert_int_eq(u->balance, CFG_BALANCE_IP_HASH);
	first = pick4(u, "198.51.100.17");
	for (int i = 0; i < 100; i++)
		ck_assert_int_eq(pick4(u, "198.51.100.17"), first);
	/* same /24, other last octet (and port): same peer */
	for (int i = 0; i < 256; i++) {
		char ip[32];

		snprintf(ip, sizeof(ip), "198.51.100.%d", i);
		ck_assert_int_eq(pick4(u, ip), first);
	}
	/* IPv6: the whole address is the key, and it is sticky too */
	k6 = pick(u, (const struct sockaddr *)&a6, NULL, 0);
	for (int i = 0; i < 50; i++)
		ck_assert_int_eq(pick(u, (const struct sockaddr *)&a6, NULL, 0), k6);
	ck_assert_int_ge(pick(u, (const struct sockaddr *)&b6, NULL, 0), 0);
}
END_TEST

START_TEST(test_ip_hash_spreads)
{
	struct cfg_upstream *u = load_upstream("ip_hash;\n"
	                                       "server 127.0.0.1:1;\n"
	                                       "server 127.0.0.1:2;\n"
	                                       "server 127.0.0.1:3;\n"
	                                       "server 127.0.0.1:4;");
	int counts[4] = {0, 0, 0, 0}, v6[4] = {0, 0, 0, 0};
	char ip[64];

	/* 1024 different /24s: every peer gets a fair share (expect 256 each) */
	for (int i = 0; i < 1024; i++) {
		snprintf(ip, sizeof(ip), "10.%d.%d.1", i / 256, i % 256);
		counts[pick4(u, ip)]++;
	}
	for (int k = 0; k < 4; k++)
		ck_assert_msg(counts[k] > 128 && counts[k] < 384, "peer %d got %d of 1024", k,
		              counts[k]);
	/* IPv6 addresses that differ only in the last bytes spread too */
	for (int i = 0; i < 1024; i++) {
		snprintf(ip, sizeof(ip), "2001:db8::%x", i);
		struct sockaddr_in6 s6 = sin6(ip);

		v6[pick(u, (const struct sockaddr *)&s6, NULL, 0)]++;
	}
	for (int k = 0; k < 4; k++)
		ck_assert_msg(v6[k] > 128, "peer %d got %d of 1024 IPv6 clients", k, v6[k]);
}
END_TEST

START_TEST(test_ip_hash_rehash)
{
	struct cfg_upstream *u = load_upstream("ip_hash;\n"
	                                       "server 127.0.0.1:1;\n"
	                                       "server 127.0.0.1:2;\n"
	                                       "server 127.0.0.1:3;");
	int home[64], moved = 0;
	char ip[32];

	for (int i = 0; i < 64; i++) {
		snprintf(ip, sizeof(ip), "10.1.%d.1", i);
		home[i] = pick4(u, ip);
	}
	/* peer 0 marked down: its clients move, nobody else's does */
	mark_down(&u->peers[0]);
	for (int i = 0; i < 64; i++) {
		snprintf(ip, sizeof(ip), "10.1.%d.1", i);
		int k = pick4(u, ip);

		ck_assert_int_ne(k, 0);
		if (home[i] != 0)
			ck_assert_int_eq(k, home[i]);
		else
			moved++;
		/* and the new home is sticky */
		ck_assert_int_eq(pick4(u, ip), k);
	}
	ck_assert_int_gt(moved, 0);
	/* a tried peer is skipped the same way */
	atomic_store(&u->peers[0].down_until_ms, 0);
	for (int i = 0; i < 64; i++) {
		snprintf(ip, sizeof(ip), "10.1.%d.1", i);
		struct sockaddr_in sin = sin4(ip);
		struct cfg_peer *tried[1] = {&u->peers[home[i]]};
		int k = pick(u, (const struct sockaddr *)&sin, tried, 1);

		ck_assert_int_ge(k, 0);
		ck_assert_int_ne(k, home[i]);
	}
	/* only one eligible peer left: rehashing ends in round robin, which finds it */
	mark_down(&u->peers[0]);
	mark_down(&u->peers[1]);
	for (int i = 0; i < 64; i++) {
		snprintf(ip, sizeof(ip), "10.1.%d.1", i);
		ck_assert_int_eq(pick4(u, ip), 2);
	}
}
END_TEST

/* `down` peers keep their place: marking one down moves only its clients. */
START_TEST(test_ip_hash_down_keeps_others)
{
	struct cfg_upstream *u = load_upstream("ip_hash;\n"
	                                       "server 127.0.0.1:1;\n"
	                                       "server 127.0.0.1:2;\n"
	                                       "server 127.0.0.1:3;");
	int home[64];
	char ip[32];

	for (int i = 0; i < 64; i++) {
		snprintf(ip, sizeof(ip), "10.2.%d.1", i);
		home[i] = pick4(u, ip);
	}
	cfg_unref(cfg);
	cfg = NULL;
	u = load_upstream("ip_hash;\n"
	                  "server 127.0.0.1:1;\n"
	                  "server 127.0.0.1:2 down;\n"
	                  "server 127.0.0.1:3;");
	for (int i = 0; i < 64; i++) {
		snprintf(ip, sizeof(ip), "10.2.%d.1", i);
		int k = pick4(u, ip);

		ck_assert_int_ne(k, 1);
		if (home[i] != 1)
			ck_assert_int_eq(k, home[i]);
	}
}
END_TEST

START_TEST(test_ip_hash_no_address)
{
	struct cfg_upstream *u = load_upstream("ip_hash;\n"
	                                       "server 127.0.0.1:1;\n"
	                                       "server 127.0.0.1:2;");
	struct sockaddr_storage unix_ss;
	int counts[2];

	/* no address (NULL) or no IP address: round robin */
	pick_many(u, 10, counts);
	ck_assert_int_eq(counts[0], 5);
	ck_assert_int_eq(counts[1], 5);
	memset(&unix_ss, 0, sizeof(unix_ss));
	unix_ss.ss_family = AF_UNIX;
	ck_assert_int_ne(pick(u, (const struct sockaddr *)&unix_ss, NULL, 0),
	                 pick(u, (const struct sockaddr *)&unix_ss, NULL, 0));
}
END_TEST

/* ---- random ---- */

START_TEST(test_random_weights)
{
	struct cfg_upstream *u = load_upstream("random;\n"
	                                       "server 127.0.0.1:1 weight=1;\n"
	                                       "server 127.0.0.1:2 weight=2;\n"
	                                       "server 127.0.0.1:3 weight=3;");
	const int n = 60000, want[3] = {10000, 20000, 30000};
	int counts[3];

	ck_assert_int_eq(u->balance, CFG_BALANCE_RANDOM);
	pick_many(u, n, counts);
	for (int k = 0; k < 3; k++)
		ck_assert_msg(abs(counts[k] - want[k]) <= want[k] / 20,
		              "peer %d: %d picks, want %d +- 5%%", k, counts[k], want[k]);
	/* not a fixed sequence: a run of 20 picks is not all the same or alternating */
	int seq[20], same = 1;

	for (int i = 0; i < 20; i++)
		seq[i] = pick(u, NULL, NULL, 0);
	for (int i = 1; i < 20; i++)
		same &= seq[i] == seq[0];
	ck_assert(!same);
}
END_TEST

START_TEST(test_random_two)
{
	struct cfg_upstream *u = load_upstream("random two;\n"
	                                       "server 127.0.0.1:1;\n"
	                                       "server 127.0.0.1:2;");
	int counts[2];

	ck_assert_int_eq(u->balance, CFG_BALANCE_RANDOM_TWO);
	/* of two peers, both are drawn every time: always the less loaded */
	atomic_store(&u->peers[0].active, 3);
	atomic_store(&u->peers[1].active, 1);
	pick_many(u, 200, counts);
	ck_assert_int_eq(counts[1], 200);
	atomic_store(&u->peers[1].active, 7);
	pick_many(u, 200, counts);
	ck_assert_int_eq(counts[0], 200);
	/* with one of them tried, the other is the only draw */
	struct cfg_peer *tried[1] = {&u->peers[0]};

	ck_assert_int_eq(pick(u, NULL, tried, 1), 1);
}
END_TEST

START_TEST(test_random_two_spread)
{
	struct cfg_upstream *u = load_upstream("balance random two;\n"
	                                       "server 127.0.0.1:1;\n"
	                                       "server 127.0.0.1:2;\n"
	                                       "server 127.0.0.1:3;\n"
	                                       "server 127.0.0.1:4 weight=2;");
	int counts[4];

	/* the busiest peer is never chosen (it always loses to the other drawn) */
	atomic_store(&u->peers[3].active, 100);
	pick_many(u, 3000, counts);
	ck_assert_int_eq(counts[3], 0);
	ck_assert(counts[0] > 500 && counts[1] > 500 && counts[2] > 500);
	/*
	 * the idlest peer wins whenever it is drawn, which with weights 1, 1, 1, 2 is
	 * 1/5 + 2/5 * 1/4 + 2/5 * 1/3 = 13/30 of the time: about 2600 of 6000
	 */
	atomic_store(&u->peers[0].active, 0);
	atomic_store(&u->peers[1].active, 5);
	atomic_store(&u->peers[2].active, 5);
	pick_many(u, 6000, counts);
	ck_assert(counts[0] > 2300 && counts[0] < 2900);
	ck_assert_int_eq(counts[3], 0);
	/*
	 * relative to weight: 9 active on weight 2 beats 5 on weight 1, so peer 3 wins
	 * whenever it is drawn: 1 - 3/5 * 2/4 = 7/10 of the time, about 4200 of 6000
	 */
	atomic_store(&u->peers[0].active, 5);
	atomic_store(&u->peers[3].active, 9);
	pick_many(u, 6000, counts);
	ck_assert(counts[3] > 3900 && counts[3] < 4500);
}
END_TEST

/* Passive health counts only peers that are not `down`: a lone usable peer stays up. */
START_TEST(test_failed_lone_usable_peer)
{
	struct cfg_upstream *u = load_upstream("server 127.0.0.1:1;\n"
	                                       "server 127.0.0.1:2 down;");

	for (int i = 0; i < 5; i++)
		up_peer_failed(u, &u->peers[0], NOW);
	ck_assert_int_eq(pick(u, NULL, NULL, 0), 0);
}
END_TEST

/* ---- hash ---- */

/* The index of the peer up_pick() returns for key (a NUL-terminated string). */
static int
pick_key(struct cfg_upstream *u, const char *key)
{
	struct cfg_peer *p = up_pick(u, NULL, key, strlen(key), NULL, 0, NOW);

	if (p == NULL)
		return -1;
	return (int)(p - u->peers);
}

START_TEST(test_hash_stable_and_weighted)
{
	struct cfg_upstream *u = load_upstream("balance hash $request_uri;\n"
	                                       "server 127.0.0.1:1 weight=1;\n"
	                                       "server 127.0.0.1:2 weight=1;\n"
	                                       "server 127.0.0.1:3 weight=2;");
	int counts[3] = {0, 0, 0};
	char key[32];

	ck_assert_int_eq(u->balance, CFG_BALANCE_HASH);
	for (int i = 0; i < 4000; i++) {
		int k;

		snprintf(key, sizeof(key), "/item/%d", i);
		k = pick_key(u, key);
		ck_assert_int_ge(k, 0);
		/* the same key always lands on the same peer */
		ck_assert_int_eq(pick_key(u, key), k);
		ck_assert_int_eq(pick_key(u, key), k);
		counts[k]++;
	}
	/* by weight: 1000, 1000, 2000 expected */
	ck_assert_msg(counts[0] > 800 && counts[0] < 1200, "peer 0 got %d", counts[0]);
	ck_assert_msg(counts[1] > 800 && counts[1] < 1200, "peer 1 got %d", counts[1]);
	ck_assert_msg(counts[2] > 1700 && counts[2] < 2300, "peer 2 got %d", counts[2]);
	/* an ineligible peer rehashes its keys elsewhere; other keys stay */
	mark_down(&u->peers[2]);
	for (int i = 0; i < 200; i++) {
		snprintf(key, sizeof(key), "/item/%d", i);
		ck_assert_int_ne(pick_key(u, key), 2);
	}
	/* no key at all: round robin */
	ck_assert_int_ge(pick(u, NULL, NULL, 0), 0);
}
END_TEST

START_TEST(test_hash_consistent_moves_few)
{
	struct cfg_upstream *u = load_upstream("hash \"key-$request_uri\" consistent;\n"
	                                       "server 127.0.0.1:1;\n"
	                                       "server 127.0.0.1:2;\n"
	                                       "server 127.0.0.1:3;\n"
	                                       "server 127.0.0.1:4;\n"
	                                       "server 127.0.0.1:5;");
	enum { NKEYS = 10000 };
	static int home[NKEYS];
	int counts[5] = {0, 0, 0, 0, 0}, moved = 0;
	char key[32];

	ck_assert_int_eq(u->balance, CFG_BALANCE_HASH_CONSISTENT);
	ck_assert_uint_eq(u->nring, 5 * 160);
	for (int i = 0; i < NKEYS; i++) {
		snprintf(key, sizeof(key), "/k/%d", i);
		home[i] = pick_key(u, key);
		ck_assert_int_ge(home[i], 0);
		ck_assert_int_eq(pick_key(u, key), home[i]);
		counts[home[i]]++;
	}
	for (int k = 0; k < 5; k++)
		ck_assert_msg(counts[k] > 1000 && counts[k] < 3000, "peer %d got %d of %d", k,
		              counts[k], NKEYS);
	/* one of five peers goes: only its keys move, about 1/5 of them */
	mark_down(&u->peers[3]);
	for (int i = 0; i < NKEYS; i++) {
		int k;

		snprintf(key, sizeof(key), "/k/%d", i);
		k = pick_key(u, key);
		ck_assert_int_ne(k, 3);
		if (home[i] != 3)
			ck_assert_int_eq(k, home[i]);
		else
			moved++;
	}
	ck_assert_msg(moved > NKEYS / 10 && moved < NKEYS * 3 / 10, "%d of %d keys moved", moved,
	              NKEYS);
	/* all peers ineligible: none */
	for (int k = 0; k < 5; k++)
		mark_down(&u->peers[k]);
	ck_assert_int_eq(pick_key(u, "/k/1"), -1);
}
END_TEST

START_TEST(test_hash_consistent_down_and_tried)
{
	struct cfg_upstream *u = load_upstream("hash $request_uri consistent;\n"
	                                       "server 127.0.0.1:1 weight=2;\n"
	                                       "server 127.0.0.1:2 down;\n"
	                                       "server 127.0.0.1:3;");
	struct cfg_peer *tried[1];
	struct cfg_peer *p;

	ck_assert_uint_eq(u->nring, 4 * 160);
	for (int i = 0; i < 500; i++) {
		char key[32];

		snprintf(key, sizeof(key), "/d/%d", i);
		ck_assert_int_ne(pick_key(u, key), 1);
		/* a retry walks on to another peer */
		p = up_pick(u, NULL, key, strlen(key), NULL, 0, NOW);
		tried[0] = p;
		p = up_pick(u, NULL, key, strlen(key), tried, 1, NOW);
		ck_assert_ptr_nonnull(p);
		ck_assert_ptr_ne(p, tried[0]);
		ck_assert_ptr_ne(p, &u->peers[1]);
	}
}
END_TEST

/* ---- least_time ---- */

START_TEST(test_least_time)
{
	struct cfg_upstream *u = load_upstream("balance least_time;\n"
	                                       "server 127.0.0.1:1;\n"
	                                       "server 127.0.0.1:2;\n"
	                                       "server 127.0.0.1:3;");
	int counts[3];

	ck_assert_int_eq(u->balance, CFG_BALANCE_LEAST_TIME);
	/* fresh peers all average 0: a tie, so round robin */
	pick_many(u, 300, counts);
	ck_assert_int_eq(counts[0], 100);
	ck_assert_int_eq(counts[1], 100);
	ck_assert_int_eq(counts[2], 100);
	/* last-byte times are not what this upstream measures; head times are */
	up_peer_time(u, &u->peers[1], 1, up_now_ms() - 5000);
	ck_assert_int_eq(atomic_load(&u->peers[1].ewma_us), 0);
	up_peer_time(u, &u->peers[1], 0, up_now_ms() - 5000);
	ck_assert_int_ge(atomic_load(&u->peers[1].ewma_us), 5000000);
	ck_assert_int_lt(atomic_load(&u->peers[1].ewma_us), 6000000);
	atomic_store(&u->peers[1].ewma_us, 0);
	up_peer_time_add(&u->peers[0], 100);
	up_peer_time_add(&u->peers[1], 10);
	up_peer_time_add(&u->peers[2], 50);
	ck_assert_int_eq(atomic_load(&u->peers[0].ewma_us), 100000);
	ck_assert_int_eq(atomic_load(&u->peers[1].ewma_us), 10000);
	pick_many(u, 20, counts);
	ck_assert_int_eq(counts[1], 20);
	/* later samples move the average by 1/8 */
	up_peer_time_add(&u->peers[1], 90);
	ck_assert_int_eq(atomic_load(&u->peers[1].ewma_us), 20000);
	/* active counts weigh in: 21ms * 4 > 51ms * 1 */
	atomic_store(&u->peers[1].active, 3);
	pick_many(u, 20, counts);
	ck_assert_int_eq(counts[2], 20);
	/* 101ms * 1 < 51ms * 3 */
	atomic_store(&u->peers[1].active, 10);
	atomic_store(&u->peers[2].active, 2);
	pick_many(u, 20, counts);
	ck_assert_int_eq(counts[0], 20);
	/* equal scores: round robin among the tied only */
	atomic_store(&u->peers[0].ewma_us, 50000);
	atomic_store(&u->peers[2].ewma_us, 50000);
	atomic_store(&u->peers[2].active, 0);
	atomic_store(&u->peers[0].active, 0);
	pick_many(u, 20, counts);
	ck_assert_int_eq(counts[0], 10);
	ck_assert_int_eq(counts[2], 10);
}
END_TEST

START_TEST(test_least_time_last_byte_weights)
{
	struct cfg_upstream *u = load_upstream("least_time last_byte;\n"
	                                       "server 127.0.0.1:1 weight=4;\n"
	                                       "server 127.0.0.1:2;");
	int counts[2];

	ck_assert_int_eq(u->balance, CFG_BALANCE_LEAST_TIME_LAST_BYTE);
	up_peer_time(u, &u->peers[0], 0, up_now_ms() - 1000); /* a head time: ignored */
	ck_assert_int_eq(atomic_load(&u->peers[0].ewma_us), 0);
	up_peer_time(u, &u->peers[0], 1, up_now_ms() - 1000);
	ck_assert_int_ge(atomic_load(&u->peers[0].ewma_us), 1000000);
	/* 4x slower but 4x the weight, and 3 requests on it: (40+1)*4/4 > (10+1)*1/1 */
	atomic_store(&u->peers[0].ewma_us, 40000);
	up_peer_time_add(&u->peers[1], 10);
	atomic_store(&u->peers[0].active, 3);
	pick_many(u, 10, counts);
	ck_assert_int_eq(counts[1], 10);
	/* idle: 41/4 < 11 */
	atomic_store(&u->peers[0].active, 0);
	pick_many(u, 10, counts);
	ck_assert_int_eq(counts[0], 10);
}
END_TEST

/* ---- max_conns and slow_start ---- */

/* A peer at its max_conns is skipped by every method, and eligible again below it. */
START_TEST(test_max_conns)
{
	static const char *const methods[] = {"round_robin",      "least_conn", "ip_hash",
	                                      "random",           "random two", "least_time",
	                                      "hash $remote_addr"};
	char body[256];

	for (size_t m = 0; m < sizeof(methods) / sizeof(methods[0]); m++) {
		snprintf(body, sizeof(body),
		         "balance %s;\nserver 127.0.0.1:1 max_conns=2;\nserver 127.0.0.1:2;",
		         methods[m]);
		struct cfg_upstream *u = load_upstream(body);
		struct sockaddr_in sin = sin4("192.0.2.7");

		ck_assert_int_eq(u->peers[0].max_conns, 2);
		ck_assert_int_eq(u->peers[1].max_conns, 0);
		atomic_store(&u->peers[0].active, 2);
		for (int i = 0; i < 50; i++) {
			struct cfg_peer *p =
			        up_pick(u, (const struct sockaddr *)&sin, "k", 1, NULL, 0, NOW);

			ck_assert_ptr_eq(p, &u->peers[1]);
		}
		ck_assert(up_peers_left(u, NULL, 0, NOW));
		/* both unavailable: the first by its limit only */
		struct cfg_peer *tried[1] = {&u->peers[1]};

		ck_assert_ptr_null(up_pick(u, NULL, NULL, 0, tried, 1, NOW));
		ck_assert(!up_peers_left(u, tried, 1, NOW));
		ck_assert(up_peers_limited(u, tried, 1, NOW));
		atomic_store(&u->peers[0].active, 1);
		ck_assert_ptr_eq(up_pick(u, NULL, NULL, 0, tried, 1, NOW), &u->peers[0]);
		/* marked down: not merely limited */
		mark_down(&u->peers[0]);
		ck_assert(!up_peers_limited(u, tried, 1, NOW));
		cfg_unref(cfg);
		cfg = NULL;
	}
}
END_TEST

/*
 * Right after recovery a peer with slow_start has weight 1 (here 1/11 of the picks next
 * to a peer of weight 10), half way its weight is about half, and after slow_start its
 * full weight.
 */
START_TEST(test_slow_start_rr)
{
	struct cfg_upstream *u = load_upstream("server 127.0.0.1:1 weight=10;\n"
	                                       "server 127.0.0.1:2 weight=10 slow_start=10s;");
	struct cfg_peer *b = &u->peers[1];
	int counts[2] = {0, 0};

	ck_assert_uint_eq(b->slow_start_ms, 10000);
	/* passive: marked down until NOW, recovered_ms set as up_peer_failed() does */
	atomic_store(&b->down_until_ms, (int64_t)NOW);
	atomic_store(&b->recovered_ms, (int64_t)NOW);
	ck_assert_ptr_eq(up_pick(u, NULL, NULL, 0, NULL, 0, NOW - 1), &u->peers[0]);
	for (int i = 0; i < 110; i++)
		counts[up_pick(u, NULL, NULL, 0, NULL, 0, NOW) - u->peers]++;
	ck_assert_int_eq(counts[1], 10);
	counts[0] = counts[1] = 0;
	/* half way: weight 1 + 9 * 5 / 10 = 5 */
	for (int i = 0; i < 150; i++)
		counts[up_pick(u, NULL, NULL, 0, NULL, 0, NOW + 5000) - u->peers]++;
	ck_assert_int_eq(counts[1], 50);
	counts[0] = counts[1] = 0;
	for (int i = 0; i < 100; i++)
		counts[up_pick(u, NULL, NULL, 0, NULL, 0, NOW + 10000) - u->peers]++;
	ck_assert_int_eq(counts[1], 50);
}
END_TEST

/* The same ramp through up_peer_failed(), in least_conn and random. */
START_TEST(test_slow_start_methods)
{
	static const char *const methods[] = {"least_conn", "random"};
	char body[256];

	for (size_t m = 0; m < sizeof(methods) / sizeof(methods[0]); m++) {
		snprintf(body, sizeof(body),
		         "balance %s;\nserver 127.0.0.1:1 weight=10;\n"
		         "server 127.0.0.1:2 weight=10 slow_start=1m fail_timeout=5s;",
		         methods[m]);
		struct cfg_upstream *u = load_upstream(body);
		struct cfg_peer *b = &u->peers[1];
		int counts[2] = {0, 0};

		up_peer_failed(u, b, NOW);
		ck_assert_int_eq(atomic_load(&b->down_until_ms), NOW + 5000);
		ck_assert_int_eq(atomic_load(&b->recovered_ms), NOW + 5000);
		ck_assert_ptr_eq(up_pick(u, NULL, NULL, 0, NULL, 0, NOW + 4999), &u->peers[0]);
		if (m == 0) {
			/* least_conn: 1 active on b weighs as 10 on a */
			atomic_store(&b->active, 1);
			atomic_store(&u->peers[0].active, 9);
			ck_assert_ptr_eq(up_pick(u, NULL, NULL, 0, NULL, 0, NOW + 5000),
			                 &u->peers[0]);
			atomic_store(&u->peers[0].active, 11);
			ck_assert_ptr_eq(up_pick(u, NULL, NULL, 0, NULL, 0, NOW + 5000), b);
			/* 1 on b against 2 on a: a while b ramps, b at its full weight */
			atomic_store(&u->peers[0].active, 2);
			ck_assert_ptr_eq(up_pick(u, NULL, NULL, 0, NULL, 0, NOW + 5000),
			                 &u->peers[0]);
			ck_assert_ptr_eq(up_pick(u, NULL, NULL, 0, NULL, 0, NOW + 65000), b);
			cfg_unref(cfg);
			cfg = NULL;
			continue;
		}
		for (int i = 0; i < 11000; i++)
			counts[up_pick(u, NULL, NULL, 0, NULL, 0, NOW + 5000) - u->peers]++;
		ck_assert_int_ge(counts[1], 1000 - 150);
		ck_assert_int_le(counts[1], 1000 + 150);
		counts[0] = counts[1] = 0;
		for (int i = 0; i < 10000; i++)
			counts[up_pick(u, NULL, NULL, 0, NULL, 0, NOW + 65000) - u->peers]++;
		ck_assert_int_ge(counts[1], 5000 - 250);
		ck_assert_int_le(counts[1], 5000 + 250);
		cfg_unref(cfg);
		cfg = NULL;
	}
}
END_TEST

static Suite *
upstream_suite(void)
{
	Suite *s = suite_create("upstream");
	TCase *tc;

	tc = tcase_create("round_robin");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_rr_weights);
	tcase_add_test(tc, test_rr_tried_skipped);
	tcase_add_test(tc, test_all_tried_skipped_down);
	tcase_add_test(tc, test_failed_lone_usable_peer);
	suite_add_tcase(s, tc);

	tc = tcase_create("backup");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_backup);
	tcase_add_test(tc, test_backup_only_when_all_marked_down);
	suite_add_tcase(s, tc);

	tc = tcase_create("least_conn");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_least_conn);
	tcase_add_test(tc, test_least_conn_weights);
	suite_add_tcase(s, tc);

	tc = tcase_create("ip_hash");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_ip_hash_sticky);
	tcase_add_test(tc, test_ip_hash_spreads);
	tcase_add_test(tc, test_ip_hash_rehash);
	tcase_add_test(tc, test_ip_hash_down_keeps_others);
	tcase_add_test(tc, test_ip_hash_no_address);
	suite_add_tcase(s, tc);

	tc = tcase_create("random");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_random_weights);
	tcase_add_test(tc, test_random_two);
	tcase_add_test(tc, test_random_two_spread);
	suite_add_tcase(s, tc);

	tc = tcase_create("hash");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_hash_stable_and_weighted);
	tcase_add_test(tc, test_hash_consistent_moves_few);
	tcase_add_test(tc, test_hash_consistent_down_and_tried);
	suite_add_tcase(s, tc);

	tc = tcase_create("least_time");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_least_time);
	tcase_add_test(tc, test_least_time_last_byte_weights);
	suite_add_tcase(s, tc);

	tc = tcase_create("limits");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_max_conns);
	tcase_add_test(tc, test_slow_start_rr);
	tcase_add_test(tc, test_slow_start_methods);
	suite_add_tcase(s, tc);

	return s;
}

int
main(void)
{
	return unit_main("test_upstream", upstream_suite());
}
