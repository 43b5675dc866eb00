#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

/*
 * test_fwd.c - unit tests of the pure building blocks of forward mode: port ranges and
 * address classes (proxyd/netpolicy.c), the anonymize header policy (proxyd/anon.c) and
 * proxy Basic authentication with its verification cache (proxyd/auth.c).
 *
 * The auth tests make their hashes at run time with crypt_gensalt_rn() and crypt_r(), write
 * the users file into the test's own directory (tests/unit/unit.c) and count crypt_r()
 * calls with auth_db_verifications() to tell cache hits from verifications.
 */

#include <sys/socket.h>
#include <sys/types.h>

#include <arpa/inet.h>
#include <crypt.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include <check.h>

#include "anon.h"
#include "auth.h"
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

/* ---- anon ------------------------------------------------------------------------------ */

static struct anon_policy *
policy(enum anon_mode mode, const char *allow, const char *ua)
{
	static char buf[256];
	char *words[16], *w, *save = NULL, *err = NULL;
	size_t n = 0;
	struct anon_policy *p;

	buf[0] = '\0';
	if (allow != NULL) {
		ck_assert(strlen(allow) < sizeof(buf));
		strcpy(buf, allow);
	}
	for (w = strtok_r(buf, " ", &save); w != NULL; w = strtok_r(NULL, " ", &save))
		words[n++] = w;
	p = anon_policy_new(mode, words, n, ua, &err);
	ck_assert_msg(p != NULL, "error: %s", err != NULL ? err : "(null)");
	ck_assert_ptr_null(err);
	return p;
}

static const struct anon_origin http_example = {"http", 4, "example.com", 11, 0};

static enum anon_action
hdr(const struct anon_policy *p, const char *name, const char *value)
{
	return anon_header(p, name, strlen(name), value, value != NULL ? strlen(value) : 0,
	                   &http_example);
}

/* Identifying headers: dropped by standard mode, kept by off. */
static const char *const identifying[] = {
        "Via",
        "via",
        "X-Forwarded-For",
        "x-forwarded-proto",
        "X-FORWARDED-HOST",
        "X-Forwarded-Anything",
        "Forwarded",
        "X-Real-IP",
        "From",
        "Client-IP",
        "X-Client-IP",
        "True-Client-IP",
        "X-Cluster-Client-IP",
        "CF-Connecting-IP",
        "X-ProxyUser-Ip",
        "Proxy-Authorization",
        "Proxy-Connection",
        "proxy-anything",
};

START_TEST(test_anon_mode_parse)
{
	enum anon_mode m = ANON_STRICT;

	ck_assert_int_eq(anon_mode_parse("off", &m), 0);
	ck_assert_int_eq(m, ANON_OFF);
	ck_assert_int_eq(anon_mode_parse("standard", &m), 0);
	ck_assert_int_eq(m, ANON_STANDARD);
	ck_assert_int_eq(anon_mode_parse("strict", &m), 0);
	ck_assert_int_eq(m, ANON_STRICT);
	ck_assert_int_eq(anon_mode_parse("Strict", &m), -1);
	ck_assert_int_eq(anon_mode_parse("on", &m), -1);
	ck_assert_int_eq(anon_mode_parse("", &m), -1);
}
END_TEST

START_TEST(test_anon_off)
{
	struct anon_policy *p = policy(ANON_OFF, NULL, "ua");
	size_t i;

	for (i = 0; i < sizeof(identifying) / sizeof(identifying[0]); i++)
		ck_assert_int_eq(hdr(p, identifying[i], "x"), ANON_KEEP);
	ck_assert_int_eq(hdr(p, "User-Agent", "curl"), ANON_KEEP);
	ck_assert_int_eq(hdr(p, "Referer", "http://evil.example/"), ANON_KEEP);
	ck_assert_int_eq(anon_request_via_allowed(p), 1);
	ck_assert_int_eq(anon_response_via_allowed(p), 1);
	ck_assert_int_eq(anon_response_via_allowed(NULL), 1);
	ck_assert_int_eq(anon_header(NULL, "Via", 3, "", 0, NULL), ANON_KEEP);
	anon_policy_free(p);
}
END_TEST

START_TEST(test_anon_standard)
{
	struct anon_policy *p = policy(ANON_STANDARD, NULL, NULL);
	static const char *const kept[] = {
	        "User-Agent",        "Referer", "Cookie",  "X-Forwarded",
	        "X-Real-IPs",        "Proxy",   "Viaduct", "Fromage",
	        "X-Custom",          "Host",    "Accept",  "Content-Type",
	        "Transfer-Encoding",
	};
	size_t i;

	for (i = 0; i < sizeof(identifying) / sizeof(identifying[0]); i++)
		ck_assert_msg(hdr(p, identifying[i], "1.2.3.4") == ANON_DROP, "%s kept",
		              identifying[i]);
	for (i = 0; i < sizeof(kept) / sizeof(kept[0]); i++)
		ck_assert_msg(hdr(p, kept[i], "x") == ANON_KEEP, "%s dropped", kept[i]);
	ck_assert_int_eq(anon_request_via_allowed(p), 0);
	ck_assert_int_eq(anon_response_via_allowed(p), 0);
	anon_policy_free(p);
}
END_TEST

START_TEST(test_anon_standard_allow)
{
	struct anon_policy *p = policy(ANON_STANDARD, "via X-Forwarded-For", NULL);

	ck_assert_int_eq(hdr(p, "Via", "1.1 a"), ANON_KEEP);
	ck_assert_int_eq(hdr(p, "x-forwarded-FOR", "1.2.3.4"), ANON_KEEP);
	ck_assert_int_eq(hdr(p, "X-Forwarded-Proto", "http"), ANON_DROP);
	ck_assert_int_eq(hdr(p, "Vi", "x"), ANON_KEEP);
	anon_policy_free(p);
}
END_TEST

START_TEST(test_anon_strict)
{
	struct anon_policy *p = policy(ANON_STRICT, NULL, "Mozilla/5.0 (proxyd)");
	static const char *const kept[] = {
	        "Host",
	        "host",
	        "Accept",
	        "Accept-Language",
	        "ACCEPT-ENCODING",
	        "Content-Type",
	        "Content-Length",
	        "Cache-Control",
	        "Pragma",
	        "If-None-Match",
	        "if-modified-since",
	        "Range",
	        "Authorization",
	        "Cookie",
	        "Transfer-Encoding",
	};
	static const char *const dropped[] = {
	        "X-Custom",       "DNT",
	        "Accept-",        "Acceptx",
	        "Content",        "If",
	        "Ranges",         "Hosts",
	        "Cookie2",        "Upgrade-Insecure-Requests",
	        "Sec-Fetch-Site", "Authorization2",
	        "Prag",           "TE",
	        "Authorizatio",
	};
	size_t i, len;
	const char *ua;

	for (i = 0; i < sizeof(kept) / sizeof(kept[0]); i++)
		ck_assert_msg(hdr(p, kept[i], "x") == ANON_KEEP, "%s dropped", kept[i]);
	for (i = 0; i < sizeof(dropped) / sizeof(dropped[0]); i++)
		ck_assert_msg(hdr(p, dropped[i], "x") == ANON_DROP, "%s kept", dropped[i]);
	for (i = 0; i < sizeof(identifying) / sizeof(identifying[0]); i++)
		ck_assert_msg(hdr(p, identifying[i], "x") == ANON_DROP, "%s kept", identifying[i]);
	ck_assert_int_eq(hdr(p, "User-Agent", "curl/8"), ANON_REPLACE);
	ck_assert_int_eq(hdr(p, "user-agent", "curl/8"), ANON_REPLACE);
	ua = anon_user_agent(p, &len);
	ck_assert_str_eq(ua, "Mozilla/5.0 (proxyd)");
	ck_assert_uint_eq(len, 20);
	ck_assert_int_eq(anon_response_via_allowed(p), 0);
	anon_policy_free(p);

	p = policy(ANON_STRICT, NULL, NULL);
	ck_assert_int_eq(hdr(p, "User-Agent", "curl/8"), ANON_DROP);
	ck_assert_ptr_null(anon_user_agent(p, &len));
	ck_assert_uint_eq(len, 0);
	anon_policy_free(p);
}
END_TEST

START_TEST(test_anon_strict_allow)
{
	struct anon_policy *p = policy(ANON_STRICT, "X-Api-Key dnt user-agent REFERER", "ua");

	ck_assert_int_eq(hdr(p, "x-api-key", "k"), ANON_KEEP);
	ck_assert_int_eq(hdr(p, "X-API-KEY", "k"), ANON_KEEP);
	ck_assert_int_eq(hdr(p, "DNT", "1"), ANON_KEEP);
	ck_assert_int_eq(hdr(p, "User-Agent", "curl"), ANON_KEEP);
	ck_assert_int_eq(hdr(p, "Referer", "http://other.example/"), ANON_KEEP);
	ck_assert_int_eq(hdr(p, "X-Api-Keys", "k"), ANON_DROP);
	ck_assert_int_eq(hdr(p, "X-Api-Ke", "k"), ANON_DROP);
	ck_assert_int_eq(hdr(p, "Origin", "http://other.example"), ANON_DROP);
	anon_policy_free(p);
}
END_TEST

START_TEST(test_anon_bad_config)
{
	static char ok[] = "X-Ok", badname[] = "bad name", none[] = "";
	char *err = NULL;
	char *bad[] = {ok, badname};
	char *empty[] = {none};

	ck_assert_ptr_null(anon_policy_new(ANON_STRICT, bad, 2, NULL, &err));
	ck_assert_str_eq(err, "bad header name \"bad name\"");
	free(err);
	err = NULL;
	ck_assert_ptr_null(anon_policy_new(ANON_STRICT, empty, 1, NULL, &err));
	ck_assert_str_eq(err, "bad header name \"\"");
	free(err);
	err = NULL;
	ck_assert_ptr_null(anon_policy_new(ANON_STRICT, NULL, 0, "a\r\nX-Evil: 1", &err));
	ck_assert_str_eq(err, "bad user agent: control character");
	free(err);
}
END_TEST

START_TEST(test_anon_same_origin)
{
	struct anon_policy *p = policy(ANON_STRICT, NULL, NULL);
	static const struct {
		const char *referer;
		enum anon_action a;
	} cases[] = {
	        {"http://example.com/", ANON_KEEP},
	        {"http://example.com/a/b?c=d#e", ANON_KEEP},
	        {"HTTP://EXAMPLE.COM/x", ANON_KEEP},
	        {"http://example.com:80/x", ANON_KEEP},
	        {"http://example.com:/x", ANON_KEEP},
	        {"http://example.com", ANON_KEEP},
	        {"http://example.com?q", ANON_KEEP},
	        {"http://example.com:8080/", ANON_DROP},
	        {"http://example.com:080/", ANON_KEEP},
	        {"http://example.com:0/", ANON_DROP},
	        {"http://example.com:65616/", ANON_DROP},
	        {"http://example.com:123456/", ANON_DROP},
	        {"https://example.com/", ANON_DROP},
	        {"ftp://example.com/", ANON_DROP},
	        {"http://evil.com/", ANON_DROP},
	        {"http://example.com.evil.com/", ANON_DROP},
	        {"http://example.co/", ANON_DROP},
	        {"http://user@example.com/", ANON_DROP},
	        {"http://example.com@evil.com/", ANON_DROP},
	        {"http://example.com\\@evil.com/", ANON_DROP},
	        {"//example.com/", ANON_DROP},
	        {"http:/example.com/", ANON_DROP},
	        {"http://", ANON_DROP},
	        {"/relative", ANON_DROP},
	        {"", ANON_DROP},
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		ck_assert_msg(hdr(p, "Referer", cases[i].referer) == cases[i].a, "Referer %s",
		              cases[i].referer);

	ck_assert_int_eq(hdr(p, "Origin", "http://example.com"), ANON_KEEP);
	ck_assert_int_eq(hdr(p, "origin", "http://Example.com:80"), ANON_KEEP);
	ck_assert_int_eq(hdr(p, "Origin", "null"), ANON_DROP);
	ck_assert_int_eq(hdr(p, "Origin", "http://example.com/"), ANON_DROP);
	ck_assert_int_eq(hdr(p, "Origin", "https://example.com"), ANON_DROP);
	ck_assert_int_eq(hdr(p, "Origin", "http://evil.com"), ANON_DROP);
	/* no target: nothing is same-origin */
	ck_assert_int_eq(anon_header(p, "Referer", 7, "http://example.com/", 19, NULL), ANON_DROP);
	anon_policy_free(p);
}
END_TEST

START_TEST(test_anon_same_origin_ports)
{
	struct anon_policy *p = policy(ANON_STRICT, NULL, NULL);
	const struct anon_origin tls = {"HTTPS", 5, "Example.COM", 11, 443};
	const struct anon_origin alt = {"http", 4, "example.com", 11, 8080};
	const struct anon_origin v6 = {"http", 4, "[2001:db8::1]", 13, 0};
	static const char ref[] = "Referer";

#define REF(o, v) anon_header(p, ref, 7, v, strlen(v), &(o))
	ck_assert_int_eq(REF(tls, "https://example.com/"), ANON_KEEP);
	ck_assert_int_eq(REF(tls, "https://example.com:443/"), ANON_KEEP);
	ck_assert_int_eq(REF(tls, "http://example.com/"), ANON_DROP);
	ck_assert_int_eq(REF(tls, "http://example.com:443/"), ANON_DROP);
	ck_assert_int_eq(REF(alt, "http://example.com:8080/x"), ANON_KEEP);
	ck_assert_int_eq(REF(alt, "http://example.com/x"), ANON_DROP);
	ck_assert_int_eq(REF(v6, "http://[2001:DB8::1]/x"), ANON_KEEP);
	ck_assert_int_eq(REF(v6, "http://[2001:db8::1]:80/x"), ANON_KEEP);
	ck_assert_int_eq(REF(v6, "http://[2001:db8::2]/x"), ANON_DROP);
	ck_assert_int_eq(REF(v6, "http://[2001:db8::1/x"), ANON_DROP);
#undef REF
	anon_policy_free(p);
}
END_TEST

/* ---- auth ------------------------------------------------------------------------------ */

/* A fresh crypt(3) hash of password with the given prefix and cost (0: default). */
static char *
make_hash(const char *prefix, unsigned long cost, const char *password)
{
	char salt[CRYPT_GENSALT_OUTPUT_SIZE];
	struct crypt_data *cd = calloc(1, sizeof(*cd));
	char *h;

	ck_assert_ptr_nonnull(cd);
	ck_assert_ptr_nonnull(crypt_gensalt_rn(prefix, cost, NULL, 0, salt, sizeof(salt)));
	h = crypt_r(password, salt, cd);
	ck_assert_ptr_nonnull(h);
	ck_assert_msg(h[0] != '*', "crypt_r failed for %s", prefix);
	h = strdup(h);
	free(cd);
	return h;
}

/* "Basic base64(text)" in a static buffer. */
static const char *
basic(const char *text, size_t len)
{
	static char buf[2048];

	ck_assert(len < 1024);
	memcpy(buf, "Basic ", 6);
	EVP_EncodeBlock((unsigned char *)buf + 6, (const unsigned char *)text, (int)len);
	return buf;
}

static struct auth_db *db;
static struct auth_cache *cache;
static char *hash_y, *hash_2b, *hash_6;

static void
auth_setup(void)
{
	char text[2048];
	char *err = NULL;
	int n;

	unit_tmpdir_setup();
	if (hash_y == NULL) {
		hash_y = make_hash("$y$", 0, "yes pass");
		hash_2b = make_hash("$2b$", 5, "bcrypt:pass");
		hash_6 = make_hash("$6$", 0, "sha\xc3\xa9");
	}
	n = snprintf(text, sizeof(text),
	             "# proxyd users\n"
	             "\n"
	             "alice:%s\n"
	             "   # indented comment\n"
	             "bob:%s\r\n"
	             "  carol:%s  \n",
	             hash_y, hash_2b, hash_6);
	ck_assert(n > 0 && (size_t)n < sizeof(text));
	unit_write("users", text, (size_t)n);
	db = auth_db_load(unit_path("users"), &err);
	ck_assert_msg(db != NULL, "error: %s", err != NULL ? err : "(null)");
	cache = NULL;
}

static void
auth_teardown(void)
{
	auth_cache_free(cache);
	auth_db_free(db);
	cache = NULL;
	db = NULL;
	unit_tmpdir_teardown();
}

static enum auth_result
check(const char *cred, char *user, size_t usersize)
{
	const char *v = basic(cred, strlen(cred));

	return auth_check(db, v, strlen(v), user, usersize, cache);
}

START_TEST(test_auth_ok)
{
	char user[64];

	ck_assert_uint_eq(auth_db_count(db), 3);
	ck_assert_int_eq(check("alice:yes pass", user, sizeof(user)), AUTH_OK);
	ck_assert_str_eq(user, "alice");
	ck_assert_int_eq(check("bob:bcrypt:pass", user, sizeof(user)), AUTH_OK);
	ck_assert_str_eq(user, "bob");
	ck_assert_int_eq(check("carol:sha\xc3\xa9", user, sizeof(user)), AUTH_OK);
	ck_assert_str_eq(user, "carol");
	ck_assert_uint_eq(auth_db_verifications(db), 3);
}
END_TEST

START_TEST(test_auth_denied)
{
	char user[64];

	ck_assert_int_eq(check("alice:yes pas", user, sizeof(user)), AUTH_DENIED);
	ck_assert_str_eq(user, "alice");
	ck_assert_int_eq(check("alice:", user, sizeof(user)), AUTH_DENIED);
	ck_assert_int_eq(check("alice:yes passs", user, sizeof(user)), AUTH_DENIED);
	ck_assert_int_eq(check("Alice:yes pass", user, sizeof(user)), AUTH_DENIED);
	ck_assert_int_eq(check("bob:bcrypt", user, sizeof(user)), AUTH_DENIED);
	ck_assert_int_eq(check("carol:sha", user, sizeof(user)), AUTH_DENIED);
	ck_assert_uint_eq(auth_db_verifications(db), 6);
	/* an unknown user pays a hash too, so timing does not reveal who exists */
	ck_assert_int_eq(check("mallory:yes pass", user, sizeof(user)), AUTH_DENIED);
	ck_assert_str_eq(user, "mallory");
	ck_assert_uint_eq(auth_db_verifications(db), 7);
	ck_assert_int_eq(check(":yes pass", user, sizeof(user)), AUTH_DENIED);
	ck_assert_str_eq(user, "");
	/* a name that does not fit is refused, not truncated into another user */
	ck_assert_int_eq(check("alice:yes pass", user, 5), AUTH_DENIED);
	ck_assert_str_eq(user, "alic");
	ck_assert_int_eq(check("alice:yes pass", user, 6), AUTH_OK);
	ck_assert_int_eq(check("alice:yes pass", NULL, 0), AUTH_OK);
}
END_TEST

START_TEST(test_auth_scheme)
{
	char user[64];
	const char *b = basic("alice:yes pass", 14);
	char v[2100];

	snprintf(v, sizeof(v), "bAsIc %s", b + 6);
	ck_assert_int_eq(auth_check(db, v, strlen(v), user, sizeof(user), NULL), AUTH_OK);
	snprintf(v, sizeof(v), "BASIC    %s", b + 6);
	ck_assert_int_eq(auth_check(db, v, strlen(v), user, sizeof(user), NULL), AUTH_OK);
	/* the length bounds the value: no NUL terminator is needed or read */
	snprintf(v, sizeof(v), "Basic %s!!!", b + 6);
	ck_assert_int_eq(auth_check(db, v, strlen(v) - 3, user, sizeof(user), NULL), AUTH_OK);
}
END_TEST

START_TEST(test_auth_malformed)
{
	static const char *const values[] = {
	        "",
	        "Basic",
	        "Basic ",
	        "Basic  ",
	        "Basi YWxpY2U6eWVzIHBhc3M=",
	        "Bearer YWxpY2U6eWVzIHBhc3M=",
	        "Basic\tYWxpY2U6eWVzIHBhc3M=",
	        "BasicYWxpY2U6eWVzIHBhc3M=",
	        "Digest username=\"alice\"",
	        "Basic YWxpY2U6eWVzIHBhc3M",      /* padding missing */
	        "Basic YWxpY2U6eWVzIHBhc3M==",    /* too much padding */
	        "Basic YWxpY2U6eWVzIHBhc3N=",     /* non-zero pad bits */
	        "Basic YWxp=Y2U6eWVzIHBhc3M=",    /* '=' inside */
	        "Basic YWxpY2U6eWVzIHBhc3M= ",    /* trailing space */
	        "Basic YWxpY2U6eWVz IHBhc3M=",    /* space inside */
	        "Basic YWxpY2U6eWVzIHBhc3M=\r\n", /* line end */
	        "Basic YWxpY2U-eWVzIHBhc3M=",     /* base64url */
	        "Basic YWxpY2U=",                 /* "alice": no colon */
	        "Basic ====",
	};
	size_t i;
	char user[64];

	for (i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		strcpy(user, "x");
		ck_assert_msg(auth_check(db, values[i], strlen(values[i]), user, sizeof(user),
		                         NULL) == AUTH_MALFORMED,
		              "accepted: %s", values[i]);
		ck_assert_str_eq(user, "");
	}
	/* control bytes and NUL in the decoded credentials */
	{
		static const char nul[] = "alice:yes\0pass", ctl[] = "alice:yes\npass",
		                  del[] = "al\x7f"
		                          "ice:yes pass",
		                  tab[] = "alice:\tyes pass";
		const char *v;

		v = basic(nul, sizeof(nul) - 1);
		ck_assert_int_eq(auth_check(db, v, strlen(v), user, sizeof(user), NULL),
		                 AUTH_MALFORMED);
		v = basic(ctl, sizeof(ctl) - 1);
		ck_assert_int_eq(auth_check(db, v, strlen(v), user, sizeof(user), NULL),
		                 AUTH_MALFORMED);
		v = basic(del, sizeof(del) - 1);
		ck_assert_int_eq(auth_check(db, v, strlen(v), user, sizeof(user), NULL),
		                 AUTH_MALFORMED);
		v = basic(tab, sizeof(tab) - 1);
		ck_assert_int_eq(auth_check(db, v, strlen(v), user, sizeof(user), NULL),
		                 AUTH_MALFORMED);
	}
	/* nothing was verified */
	ck_assert_uint_eq(auth_db_verifications(db), 0);
}
END_TEST

START_TEST(test_auth_long)
{
	char cred[1100], user[64], v[2048];
	int n;

	memset(cred, 'p', sizeof(cred));
	memcpy(cred, "alice:", 6);
	/* 1,023 decoded bytes: checked (and denied) */
	cred[1023] = '\0';
	ck_assert_int_eq(check(cred, user, sizeof(user)), AUTH_DENIED);
	/* 1,025 decoded bytes: refused */
	memset(cred, 'p', sizeof(cred));
	memcpy(cred, "alice:", 6);
	n = EVP_EncodeBlock((unsigned char *)v, (const unsigned char *)cred, 1025);
	ck_assert_int_gt(n, 0);
	{
		char hv[2100];

		snprintf(hv, sizeof(hv), "Basic %s", v);
		ck_assert_int_eq(auth_check(db, hv, strlen(hv), user, sizeof(user), NULL),
		                 AUTH_MALFORMED);
	}
}
END_TEST

static uint64_t fake_now;

static uint64_t
fake_clock(void *arg)
{
	ck_assert_ptr_eq(arg, &fake_now);
	return fake_now;
}

START_TEST(test_auth_cache_hit)
{
	char user[64];

	cache = auth_cache_new(0, 0);
	ck_assert_ptr_nonnull(cache);
	ck_assert_int_eq(check("alice:yes pass", user, sizeof(user)), AUTH_OK);
	ck_assert_uint_eq(auth_db_verifications(db), 1);
	ck_assert_uint_eq(auth_cache_hits(cache), 0);
	ck_assert_int_eq(check("alice:yes pass", user, sizeof(user)), AUTH_OK);
	ck_assert_str_eq(user, "alice");
	ck_assert_int_eq(check("alice:yes pass", user, sizeof(user)), AUTH_OK);
	ck_assert_uint_eq(auth_db_verifications(db), 1);
	ck_assert_uint_eq(auth_cache_hits(cache), 2);
	/* a wrong password is never a hit and never cached */
	ck_assert_int_eq(check("alice:yes pas", user, sizeof(user)), AUTH_DENIED);
	ck_assert_int_eq(check("alice:yes pas", user, sizeof(user)), AUTH_DENIED);
	ck_assert_uint_eq(auth_db_verifications(db), 3);
	ck_assert_uint_eq(auth_cache_hits(cache), 2);
	/* the other users have their own entries */
	ck_assert_int_eq(check("bob:bcrypt:pass", user, sizeof(user)), AUTH_OK);
	ck_assert_int_eq(check("bob:bcrypt:pass", user, sizeof(user)), AUTH_OK);
	ck_assert_str_eq(user, "bob");
	ck_assert_uint_eq(auth_db_verifications(db), 4);
	ck_assert_uint_eq(auth_cache_hits(cache), 3);
}
END_TEST

START_TEST(test_auth_cache_slow_hash)
{
	/* yescrypt at a high cost: the second check must not pay it */
	char *h = make_hash("$y$", 9, "slow"), text[256], *err = NULL, user[16];
	struct auth_db *slow;
	const char *v = basic("slow:slow", 9);
	int n = snprintf(text, sizeof(text), "slow:%s\n", h);

	ck_assert(n > 0 && (size_t)n < sizeof(text));
	unit_write("slow", text, (size_t)n);
	slow = auth_db_load(unit_path("slow"), &err);
	ck_assert_ptr_nonnull(slow);
	cache = auth_cache_new(16, 0);
	ck_assert_int_eq(auth_check(slow, v, strlen(v), user, sizeof(user), cache), AUTH_OK);
	ck_assert_int_eq(auth_check(slow, v, strlen(v), user, sizeof(user), cache), AUTH_OK);
	ck_assert_uint_eq(auth_db_verifications(slow), 1);
	ck_assert_uint_eq(auth_cache_hits(cache), 1);
	auth_db_free(slow);
	free(h);
}
END_TEST

START_TEST(test_auth_cache_expiry)
{
	char user[64];

	cache = auth_cache_new(64, 60000);
	auth_cache_set_clock(cache, fake_clock, &fake_now);
	fake_now = 1000;
	ck_assert_int_eq(check("carol:sha\xc3\xa9", user, sizeof(user)), AUTH_OK);
	fake_now = 1000 + 59999;
	ck_assert_int_eq(check("carol:sha\xc3\xa9", user, sizeof(user)), AUTH_OK);
	ck_assert_uint_eq(auth_db_verifications(db), 1);
	fake_now = 1000 + 60000;
	ck_assert_int_eq(check("carol:sha\xc3\xa9", user, sizeof(user)), AUTH_OK);
	ck_assert_uint_eq(auth_db_verifications(db), 2);
	/* the new entry lives from its verification on */
	fake_now = 1000 + 60000 + 59999;
	ck_assert_int_eq(check("carol:sha\xc3\xa9", user, sizeof(user)), AUTH_OK);
	ck_assert_uint_eq(auth_db_verifications(db), 2);
	ck_assert_uint_eq(auth_cache_hits(cache), 2);
	/* a short TTL */
	auth_cache_free(cache);
	cache = auth_cache_new(64, 5);
	auth_cache_set_clock(cache, fake_clock, &fake_now);
	ck_assert_int_eq(check("carol:sha\xc3\xa9", user, sizeof(user)), AUTH_OK);
	fake_now += 5;
	ck_assert_int_eq(check("carol:sha\xc3\xa9", user, sizeof(user)), AUTH_OK);
	ck_assert_uint_eq(auth_db_verifications(db), 4);
}
END_TEST

START_TEST(test_auth_cache_new_db)
{
	/* a reload gives a new database: the same credentials must be verified again, and a
	   password removed from the file must stop working at once */
	char user[64], *err = NULL, text[512];
	struct auth_db *db2;
	const char *v = basic("alice:yes pass", 14);
	int n;

	cache = auth_cache_new(0, 0);
	ck_assert_int_eq(auth_check(db, v, strlen(v), user, sizeof(user), cache), AUTH_OK);
	ck_assert_int_eq(auth_check(db, v, strlen(v), user, sizeof(user), cache), AUTH_OK);
	ck_assert_uint_eq(auth_cache_hits(cache), 1);

	n = snprintf(text, sizeof(text), "alice:%s\n", hash_6); /* alice's password changed */
	unit_write("users2", text, (size_t)n);
	db2 = auth_db_load(unit_path("users2"), &err);
	ck_assert_ptr_nonnull(db2);
	ck_assert_int_eq(auth_check(db2, v, strlen(v), user, sizeof(user), cache), AUTH_DENIED);
	ck_assert_uint_eq(auth_db_verifications(db2), 1);
	ck_assert_uint_eq(auth_cache_hits(cache), 1);
	/* the same file loaded again is a new generation too */
	auth_db_free(db2);
	db2 = auth_db_load(unit_path("users"), &err);
	ck_assert_ptr_nonnull(db2);
	ck_assert_int_eq(auth_check(db2, v, strlen(v), user, sizeof(user), cache), AUTH_OK);
	ck_assert_uint_eq(auth_db_verifications(db2), 1);
	ck_assert_uint_eq(auth_cache_hits(cache), 1);
	auth_db_free(db2);
}
END_TEST

struct thread_arg {
	const char *cred;
	int ok;
};

static void *
auth_thread(void *p)
{
	struct thread_arg *a = p;
	int i;

	for (i = 0; i < 200; i++) {
		unsigned char b64[96];
		char hv[128], user[32];

		/* not basic(): its buffer is static */
		EVP_EncodeBlock(b64, (const unsigned char *)a->cred, (int)strlen(a->cred));
		snprintf(hv, sizeof(hv), "Basic %s", (char *)b64);
		if (auth_check(db, hv, strlen(hv), user, sizeof(user), cache) == AUTH_OK)
			a->ok++;
	}
	return NULL;
}

START_TEST(test_auth_cache_threads)
{
	/* four threads share one cache with a tiny table (constant eviction) */
	struct thread_arg args[4] = {
	        {"carol:sha\xc3\xa9", 0},
	        {"bob:bcrypt:pass", 0},
	        {"carol:sha\xc3\xa9", 0},
	        {"carol:wrong", 0},
	};
	pthread_t t[4];
	int i;

	cache = auth_cache_new(2, 0);
	for (i = 0; i < 4; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, auth_thread, &args[i]), 0);
	for (i = 0; i < 4; i++)
		ck_assert_int_eq(pthread_join(t[i], NULL), 0);
	ck_assert_int_eq(args[0].ok, 200);
	ck_assert_int_eq(args[1].ok, 200);
	ck_assert_int_eq(args[2].ok, 200);
	ck_assert_int_eq(args[3].ok, 0);
	ck_assert_uint_ge(auth_cache_hits(cache), 1);
	ck_assert_uint_eq(auth_cache_hits(cache) + auth_db_verifications(db), 800);
}
END_TEST

/* Load text as a users file; returns the error (malloc'd) or NULL. */
static char *
load_error(const char *text)
{
	char *err = NULL;
	struct auth_db *d;

	unit_write("bad", text, strlen(text));
	d = auth_db_load(unit_path("bad"), &err);
	if (d != NULL) {
		auth_db_free(d);
		return NULL;
	}
	ck_assert_ptr_nonnull(err);
	return err;
}

static void
expect_load_error(const char *text, const char *suffix)
{
	char *err = load_error(text), want[PATH_MAX + 128];

	snprintf(want, sizeof(want), "%s%s", unit_path("bad"), suffix);
	ck_assert_msg(err != NULL, "accepted: %s", text);
	ck_assert_str_eq(err, want);
	free(err);
}

START_TEST(test_auth_load_errors)
{
	char text[1024];
	size_t len = strlen(hash_6);

	expect_load_error("", ": no users");
	expect_load_error("# only a comment\n\n", ": no users");
	expect_load_error("alice\n", ":1: expected user:hash");
	snprintf(text, sizeof(text), "# c\n:%s\n", hash_6);
	expect_load_error(text, ":2: empty user name");
	expect_load_error("alice:\n", ":1: empty hash");
	expect_load_error("alice:secret\n", ":1: unsupported hash (use yescrypt $y$, bcrypt $2b$ "
	                                    "or SHA-512 $6$)");
	expect_load_error("alice:$1$abc$0123456789012345678901\n",
	                  ":1: unsupported hash (use yescrypt $y$, bcrypt $2b$ or SHA-512 $6$)");
	/* truncated hashes: the final part is one character short */
	snprintf(text, sizeof(text), "alice:%.*s\n", (int)(len - 1), hash_6);
	expect_load_error(text, ":1: malformed hash (truncated?)");
	snprintf(text, sizeof(text), "alice:%.*s\n", (int)(strlen(hash_y) - 1), hash_y);
	expect_load_error(text, ":1: malformed hash (truncated?)");
	snprintf(text, sizeof(text), "alice:%.*s\n", (int)(strlen(hash_2b) - 1), hash_2b);
	expect_load_error(text, ":1: malformed hash (truncated?)");
	/* a character outside crypt's alphabet */
	snprintf(text, sizeof(text), "alice:%s\n", hash_6);
	text[strlen(text) - 3] = '!';
	expect_load_error(text, ":1: malformed hash");
	snprintf(text, sizeof(text), "alice:%s extra\n", hash_6);
	expect_load_error(text, ":1: malformed hash");
	snprintf(text, sizeof(text), "a\tb:%s\n", hash_6);
	expect_load_error(text, ":1: control character in user name");
	snprintf(text, sizeof(text), "alice:%s\nbob:%s\nalice:%s\n", hash_6, hash_6, hash_y);
	expect_load_error(text, ": duplicate user \"alice\"");
	{
		char *err = NULL;

		ck_assert_ptr_null(auth_db_load(unit_path("missing"), &err));
		ck_assert_ptr_nonnull(err);
		ck_assert_ptr_nonnull(strstr(err, "missing: No such file or directory"));
		free(err);
	}
}
END_TEST

START_TEST(test_auth_challenge)
{
	char buf[64];

	ck_assert_int_eq(auth_challenge("proxyd", buf, sizeof(buf)), 37);
	ck_assert_str_eq(buf, "Basic realm=\"proxyd\", charset=\"UTF-8\"");
	ck_assert_int_eq(auth_challenge("a \"b\" \\c", buf, sizeof(buf)), 42);
	ck_assert_str_eq(buf, "Basic realm=\"a \\\"b\\\" \\\\c\", charset=\"UTF-8\"");
	ck_assert_int_eq(auth_challenge("", buf, sizeof(buf)), 31);
	ck_assert_str_eq(buf, "Basic realm=\"\", charset=\"UTF-8\"");
	/* exactly fits, one byte short */
	ck_assert_int_eq(auth_challenge("proxyd", buf, 38), 37);
	ck_assert_int_eq(auth_challenge("proxyd", buf, 37), -1);
	ck_assert_int_eq(auth_challenge("a\r\nX: y", buf, sizeof(buf)), -1);
	ck_assert_int_eq(auth_challenge("del\x7f", buf, sizeof(buf)), -1);
	ck_assert_int_eq(auth_challenge("x", buf, 3), -1);
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

	tc = tcase_create("anon");
	tcase_add_test(tc, test_anon_mode_parse);
	tcase_add_test(tc, test_anon_off);
	tcase_add_test(tc, test_anon_standard);
	tcase_add_test(tc, test_anon_standard_allow);
	tcase_add_test(tc, test_anon_strict);
	tcase_add_test(tc, test_anon_strict_allow);
	tcase_add_test(tc, test_anon_bad_config);
	tcase_add_test(tc, test_anon_same_origin);
	tcase_add_test(tc, test_anon_same_origin_ports);
	suite_add_tcase(s, tc);

	tc = tcase_create("auth");
	tcase_add_checked_fixture(tc, auth_setup, auth_teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_auth_ok);
	tcase_add_test(tc, test_auth_denied);
	tcase_add_test(tc, test_auth_scheme);
	tcase_add_test(tc, test_auth_malformed);
	tcase_add_test(tc, test_auth_long);
	tcase_add_test(tc, test_auth_cache_hit);
	tcase_add_test(tc, test_auth_cache_slow_hash);
	tcase_add_test(tc, test_auth_cache_expiry);
	tcase_add_test(tc, test_auth_cache_new_db);
	tcase_add_test(tc, test_auth_cache_threads);
	tcase_add_test(tc, test_auth_load_errors);
	tcase_add_test(tc, test_auth_challenge);
	suite_add_tcase(s, tc);

	return s;
}

int
main(void)
{
	return unit_main("test_fwd", fwd_suite());
}
