#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

/*
 * test_fwd.c - unit tests of the pure building blocks of forward mode: port ranges and
 * address classes (proxyd/netpolicy.c).
 */

#include <sys/socket.h>
#include <sys/types.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "netpolicy.h"
#include "unit.h"

/* ---- netpolicy: ports ------------------------------------------------------------------- */

/* Parse a space-separated list; *err receives the error. */
static struct np_ports *
ports(const char *list, char **err)
{
	static char buf[256];
	char *words[32], *w, *save = NULL;
	size_t n = 0;

	ck_assert(strlen(list) < sizeof(buf));
	strcpy(buf, list);
	for (w = strtok_r(buf, " ", &save); w != NULL; w = strtok_r(NULL, " ", &save))
		words[n++] = w;
	*err = NULL;
	return np_ports_parse(words, n, err);
}

START_TEST(test_ports_list)
{
	char *err;
	struct np_ports *p = ports("443 8443 9000-9100", &err);

	ck_assert_ptr_nonnull(p);
	ck_assert_ptr_null(err);
	ck_assert_uint_eq(p->n, 3);
	ck_assert_uint_eq(p->r[0].lo, 443);
	ck_assert_uint_eq(p->r[0].hi, 443);
	ck_assert_uint_eq(p->r[2].lo, 9000);
	ck_assert_uint_eq(p->r[2].hi, 9100);
	ck_assert_int_eq(np_ports_allows(p, 443), 1);
	ck_assert_int_eq(np_ports_allows(p, 8443), 1);
	ck_assert_int_eq(np_ports_allows(p, 9000), 1);
	ck_assert_int_eq(np_ports_allows(p, 9050), 1);
	ck_assert_int_eq(np_ports_allows(p, 9100), 1);
	ck_assert_int_eq(np_ports_allows(p, 442), 0);
	ck_assert_int_eq(np_ports_allows(p, 444), 0);
	ck_assert_int_eq(np_ports_allows(p, 80), 0);
	ck_assert_int_eq(np_ports_allows(p, 8999), 0);
	ck_assert_int_eq(np_ports_allows(p, 9101), 0);
	ck_assert_int_eq(np_ports_allows(p, 0), 0);
	ck_assert_int_eq(np_ports_allows(p, 65536 + 443), 0);
	ck_assert_int_eq(np_ports_allows(NULL, 443), 0);
	np_ports_free(p);
}
END_TEST

START_TEST(test_ports_merge)
{
	char *err;
	struct np_ports *p = ports("85 81-90 80 1-2 3 65535 60000-65535", &err);

	ck_assert_ptr_nonnull(p);
	ck_assert_uint_eq(p->n, 3);
	ck_assert_uint_eq(p->r[0].lo, 1);
	ck_assert_uint_eq(p->r[0].hi, 3);
	ck_assert_uint_eq(p->r[1].lo, 80);
	ck_assert_uint_eq(p->r[1].hi, 90);
	ck_assert_uint_eq(p->r[2].lo, 60000);
	ck_assert_uint_eq(p->r[2].hi, 65535);
	ck_assert_int_eq(np_ports_allows(p, 4), 0);
	ck_assert_int_eq(np_ports_allows(p, 79), 0);
	ck_assert_int_eq(np_ports_allows(p, 65535), 1);
	np_ports_free(p);
}
END_TEST

START_TEST(test_ports_errors)
{
	static const struct {
		const char *list, *err;
	} cases[] = {
	        {"443 9100-9000", "bad port range \"9100-9000\""},
	        {"0", "bad port \"0\""},
	        {"65536", "bad port \"65536\""},
	        {"0-80", "bad port range \"0-80\""},
	        {"1-65536", "bad port range \"1-65536\""},
	        {"-80", "bad port range \"-80\""},
	        {"80-", "bad port range \"80-\""},
	        {"80-90-100", "bad port range \"80-90-100\""},
	        {"+80", "bad port \"+80\""},
	        {"http", "bad port \"http\""},
	        {"000443", "bad port \"000443\""},
	        {"", "no ports"},
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *err;
		struct np_ports *p = ports(cases[i].list, &err);

		ck_assert_msg(p == NULL, "%s accepted", cases[i].list);
		ck_assert_ptr_nonnull(err);
		ck_assert_str_eq(err, cases[i].err);
		free(err);
	}
}
END_TEST

/* ---- netpolicy: addresses --------------------------------------------------------------- */

static enum np_class
classify(const char *addr)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	if (strchr(addr, ':') != NULL) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		s6->sin6_family = AF_INET6;
		ck_assert_int_eq(inet_pton(AF_INET6, addr, &s6->sin6_addr), 1);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

		s4->sin_family = AF_INET;
		ck_assert_int_eq(inet_pton(AF_INET, addr, &s4->sin_addr), 1);
	}
	return np_classify((struct sockaddr *)&ss);
}

START_TEST(test_classify)
{
	static const struct {
		const char *addr;
		enum np_class c;
	} cases[] = {
	        {"127.0.0.1", NP_LOOPBACK},
	        {"127.255.255.254", NP_LOOPBACK},
	        {"::1", NP_LOOPBACK},
	        {"10.0.0.1", NP_PRIVATE},
	        {"10.255.255.255", NP_PRIVATE},
	        {"172.16.0.1", NP_PRIVATE},
	        {"172.31.255.255", NP_PRIVATE},
	        {"172.15.255.255", NP_PUBLIC},
	        {"172.32.0.0", NP_PUBLIC},
	        {"192.168.1.1", NP_PRIVATE},
	        {"192.169.0.1", NP_PUBLIC},
	        {"100.64.0.1", NP_PRIVATE},
	        {"100.127.255.255", NP_PRIVATE},
	        {"100.128.0.0", NP_PUBLIC},
	        {"100.63.255.255", NP_PUBLIC},
	        {"fc00::1", NP_PRIVATE},
	        {"fdff:ffff::1", NP_PRIVATE},
	        {"fec0::1", NP_PRIVATE},
	        {"169.254.0.1", NP_LINKLOCAL},
	        {"169.254.169.253", NP_LINKLOCAL},
	        {"fe80::1", NP_LINKLOCAL},
	        {"febf::1", NP_LINKLOCAL},
	        {"169.254.169.254", NP_METADATA},
	        {"fd00:ec2::254", NP_METADATA},
	        {"fd00:ec2::253", NP_PRIVATE},
	        {"0.0.0.0", NP_UNSPECIFIED},
	        {"0.1.2.3", NP_UNSPECIFIED},
	        {"::", NP_UNSPECIFIED},
	        {"224.0.0.1", NP_MULTICAST},
	        {"239.255.255.255", NP_MULTICAST},
	        {"ff02::1", NP_MULTICAST},
	        {"255.255.255.255", NP_BROADCAST},
	        {"240.0.0.1", NP_RESERVED},
	        {"255.255.255.254", NP_RESERVED},
	        {"192.0.0.8", NP_RESERVED},
	        {"198.18.0.1", NP_RESERVED},
	        {"198.19.255.255", NP_RESERVED},
	        {"198.20.0.0", NP_PUBLIC},
	        {"192.0.2.1", NP_RESERVED},
	        {"198.51.100.7", NP_RESERVED},
	        {"203.0.113.9", NP_RESERVED},
	        {"2001:db8::1", NP_RESERVED},
	        {"100::1", NP_RESERVED},
	        {"::10.0.0.1", NP_RESERVED},
	        {"8.8.8.8", NP_PUBLIC},
	        {"1.1.1.1", NP_PUBLIC},
	        {"2606:4700::1111", NP_PUBLIC},
	        {"2001:4860:4860::8888", NP_PUBLIC},
	        /* IPv4-mapped and NAT64 addresses are classified as their IPv4 */
	        {"::ffff:127.0.0.1", NP_LOOPBACK},
	        {"::ffff:10.1.2.3", NP_PRIVATE},
	        {"::ffff:169.254.169.254", NP_METADATA},
	        {"::ffff:8.8.8.8", NP_PUBLIC},
	        {"64:ff9b::192.168.0.1", NP_PRIVATE},
	        {"64:ff9b::8.8.4.4", NP_PUBLIC},
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		enum np_class c = classify(cases[i].addr);

		ck_assert_msg(c == cases[i].c, "%s: %s, expected %s", cases[i].addr,
		              np_class_name(c), np_class_name(cases[i].c));
	}
}
END_TEST

START_TEST(test_classify_other_family)
{
	struct sockaddr sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_family = AF_UNIX;
	ck_assert_int_eq(np_classify(&sa), NP_RESERVED);
	ck_assert_int_eq(np_destination_denied(&sa), 1);
	ck_assert_int_eq(np_client_is_local(&sa), 0);
	ck_assert_int_eq(np_classify(NULL), NP_RESERVED);
	ck_assert_str_eq(np_class_name(NP_LINKLOCAL), "link-local");
	ck_assert_str_eq(np_class_name(NP_PUBLIC), "public");
}
END_TEST

static int
denied(const char *addr)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, addr, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
	} else {
		ck_assert_int_eq(inet_pton(AF_INET6, addr, &s6->sin6_addr), 1);
		s6->sin6_family = AF_INET6;
	}
	return np_destination_denied((struct sockaddr *)&ss) |
	       (np_client_is_local((struct sockaddr *)&ss) << 1);
}

START_TEST(test_policy_helpers)
{
	/* bit 0: destination denied; bit 1: client is local */
	ck_assert_int_eq(denied("8.8.8.8"), 0);
	ck_assert_int_eq(denied("2a00:1450::1"), 0);
	ck_assert_int_eq(denied("127.0.0.1"), 3);
	ck_assert_int_eq(denied("::1"), 3);
	ck_assert_int_eq(denied("10.0.0.1"), 3);
	ck_assert_int_eq(denied("100.64.1.1"), 3);
	ck_assert_int_eq(denied("fd12::1"), 3);
	ck_assert_int_eq(denied("fe80::1"), 3);
	ck_assert_int_eq(denied("169.254.1.1"), 3);
	ck_assert_int_eq(denied("169.254.169.254"), 3);
	ck_assert_int_eq(denied("::ffff:192.168.0.1"), 3);
	ck_assert_int_eq(denied("0.0.0.0"), 1);
	ck_assert_int_eq(denied("::"), 1);
	ck_assert_int_eq(denied("224.0.0.251"), 1);
	ck_assert_int_eq(denied("255.255.255.255"), 1);
	ck_assert_int_eq(denied("192.0.2.10"), 1);
	ck_assert_int_eq(denied("ff02::fb"), 1);
}
END_TEST

static Suite *
fwd_suite(void)
{
	Suite *s = suite_create("fwd");
	TCase *tc;

	tc = tcase_create("ports");
	tcase_add_test(tc, test_ports_list);
	tcase_add_test(tc, test_ports_merge);
	tcase_add_test(tc, test_ports_errors);
	suite_add_tcase(s, tc);

	tc = tcase_create("addresses");
	tcase_add_test(tc, test_classify);
	tcase_add_test(tc, test_classify_other_family);
	tcase_add_test(tc, test_policy_helpers);
	suite_add_tcase(s, tc);

	return s;
}

int
main(void)
{
	return unit_main("test_fwd", fwd_suite());
}
