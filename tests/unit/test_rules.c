#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

/*
 * test_rules.c - unit tests of the rule language (rules/): every matcher both ways,
 * negation, sets inline and from files (a generated 100,000-entry domain file), regex
 * limits, the regex prefilter (required literals, equivalence of prefiltered sets and
 * matchers with plain PCRE2), time windows and dates in DST zones at fixed instants, URL
 * normalization and error messages with their positions.
 *
 * Most tests are tables of (rule, expected verdict) evaluated against one default subject
 * (see subj_default()); instants are built with timegm(), which does not look at $TZ.
 */

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <check.h>

#include "rules-internal.h"
#include "rules.h"
#include "unit.h"

static struct rules_ctx *ctx;
static struct rules_scratch *scratch;
static int nlogs;

static void
count_log(void *arg, const char *msg)
{
	(void)arg;
	(void)msg;
	nlogs++;
}

static void
setup(void)
{
	unit_tmpdir_setup();
	ctx = rules_ctx_new();
	scratch = rules_scratch_new();
	ck_assert(ctx != NULL && scratch != NULL);
	nlogs = 0;
	rules_set_log_fn(ctx, count_log, NULL);
}

static void
teardown(void)
{
	rules_scratch_free(scratch);
	rules_ctx_free(ctx);
	unit_tmpdir_teardown();
}

static time_t
utc(int y, int mo, int d, int h, int mi)
{
	struct tm tm = {0};

	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	return timegm(&tm);
}

#define HDR(n, v)                                                                                  \
	{                                                                                          \
		n, sizeof(n) - 1, v, sizeof(v) - 1                                                 \
	}

static const struct rules_header default_headers[] = {
        HDR("Host", "www.example.com"),
        HDR("user-agent", "Mozilla/5.0 (X11; Linux x86_64)"),
        HDR("Cookie", "sid=abc123; theme=dark"),
        HDR("cookie", "lang = en "),
        HDR("X-Test", "yes"),
        HDR("Accept", "text/html"),
};

static struct rules_subject
subj_default(void)
{
	struct rules_subject s;

	memset(&s, 0, sizeof(s));
	ck_assert_int_eq(rules_ip_parse("192.0.2.10", 10, &s.client), 0);
	s.user = "alice";
	s.user_len = 5;
	s.method = "GET";
	s.method_len = 3;
	s.scheme = "http";
	s.scheme_len = 4;
	s.host = "www.example.com";
	s.host_len = strlen(s.host);
	s.port = 80;
	s.path = "/docs/index.html";
	s.path_len = strlen(s.path);
	s.query = "a=1&b=two&flag&q=x%20y";
	s.query_len = strlen(s.query);
	s.headers = default_headers;
	s.nheaders = sizeof(default_headers) / sizeof(default_headers[0]);
	s.now = utc(2026, 11, 23, 10, 0); /* a Monday */
	return s;
}

static struct rules_rule *
compile_ok(const char *text)
{
	char *err = NULL;
	struct rules_rule *r = rules_compile_str(ctx, "test.conf", 1, text, &err);

	ck_assert_msg(r != NULL, "%s: unexpected error: %s", text, err ? err : "(null)");
	return r;
}

/* The error message of compiling text at policy.conf line 12 (caller frees). */
static char *
compile_err(const char *text)
{
	char *err = NULL;
	struct rules_rule *r = rules_compile_str(ctx, "policy.conf", 12, text, &err);

	ck_assert_msg(r == NULL, "%s: compiled, error expected", text);
	ck_assert(err != NULL);
	return err;
}

static int
eval(const char *text, const struct rules_subject *s)
{
	struct rules_rule *r = compile_ok(text);
	enum rules_result res = rules_eval(r, s, scratch, NULL);

	rules_rule_free(r);
	return res == RULES_MATCH;
}

struct row {
	const char *rule;
	int match;
};

static void
run_table(const struct row *rows, size_t n, const struct rules_subject *s)
{
	for (size_t i = 0; i < n; i++)
		ck_assert_msg(eval(rows[i].rule, s) == rows[i].match, "rule `%s`: expected %s",
		              rows[i].rule, rows[i].match ? "match" : "no match");
}

#define RUN(rows, s) run_table(rows, sizeof(rows) / sizeof(rows[0]), s)

static void
define(enum rules_set_kind kind, const char *name, const char *const *words, size_t n)
{
	struct rules_tok toks[32];
	char *err = NULL;

	ck_assert(n <= 32);
	for (size_t i = 0; i < n; i++) {
		toks[i].s = words[i];
		toks[i].quoted = 0;
		toks[i].line = 3;
		toks[i].col = (int)(10 + i * 5);
	}
	ck_assert_msg(rules_set_define(ctx, kind, name, "sets.conf", toks, n, &err) == 0,
	              "set %s: %s", name, err ? err : "(null)");
}

START_TEST(test_matchers)
{
	static const char *const users[] = {"bob", "alice"};
	static const char *const rxs[] = {"^curl/", "(?i)mozilla", "wget"};
	static const char *const urlrx[] = {"^https:", "^http://www\\.example\\.com/d(o)\\1?cs/"};
	static const char *const nets[] = {"10.0.0.0/8", "192.0.2.0/24"};
	static const char *const doms[] = {".example.com", "example.net"};
	static const struct row rows[] = {
	        {"all", 1},
	        {"!all", 0},
	        {"src 192.0.2.0/24", 1},
	        {"src 192.0.2.10", 1},
	        {"src 192.0.2.11", 0},
	        {"src 10.0.0.0/8", 0},
	        {"src in nets", 1},
	        {"!src in nets", 0},
	        {"dst www.example.com", 1},
	        {"dst WWW.Example.COM.", 1},
	        {"dst example.com", 0},
	        {"dst *.example.com", 1},
	        {"dst .example.com", 1},
	        {"dst in doms", 1},
	        {"port 80", 1},
	        {"port 81", 0},
	        {"port 1-1024", 1},
	        {"port 443-8443", 0},
	        {"method GET", 1},
	        {"method get", 0},
	        {"method POST", 0},
	        {"url ~ ^http://www\\.example\\.com/docs/", 1},
	        {"url ~ \"^http://www.example.com/docs/index.html\\?a=1&\"", 1},
	        {"url ~ :80/", 0},
	        {"url ~ in rxs", 0},
	        {"url ~ in urlrx", 1},
	        {"path ~ ^/docs/", 1},
	        {"path ~ ^/DOCS/", 0},
	        {"path ~* ^/DOCS/", 1},
	        {"path ~ a=1", 0}, /* the query is not part of the path */
	        {"ua ~ Mozilla", 1},
	        {"ua ~ mozilla", 0},
	        {"ua ~* mozilla", 1},
	        {"ua ~ curl", 0},
	        {"ua ~ in rxs", 1},
	        {"header X-Test", 1},
	        {"header x-test", 1},
	        {"header X-Other", 0},
	        {"header X-Test ~ ^yes$", 1},
	        {"header X-Test ~ ^no$", 0},
	        {"header accept ~* HTML", 1},
	        {"cookie sid", 1},
	        {"cookie SID", 0},
	        {"cookie theme ~ ^dark$", 1},
	        {"cookie theme ~ ^light$", 0},
	        {"cookie lang ~ ^en$", 1}, /* second Cookie field, blanks trimmed */
	        {"cookie nope", 0},
	        {"arg a", 1},
	        {"arg a ~ ^1$", 1},
	        {"arg b ~ ^two$", 1},
	        {"arg flag", 1},
	        {"arg flag ~ ^$", 1},
	        {"arg q ~ x%20y", 1}, /* raw, not decoded */
	        {"arg c", 0},
	        {"arg tw", 0},
	        {"user alice", 1},
	        {"user Alice", 0},
	        {"user bob", 0},
	        {"user in users", 1},
	        {"time mon 09:00-11:00 UTC", 1},
	        {"time tue 09:00-11:00 UTC", 0},
	        {"time * 10:00-10:01 UTC", 1},
	        {"time mon 10:01-11:00 UTC", 0},
	        {"date 2026-11-23 UTC", 1},
	        {"date 2026-11-24 UTC", 0},
	        {"src 192.0.2.0/24 method GET port 80 ua ~ Mozilla", 1},
	        {"src 192.0.2.0/24 method GET !port 80 ua ~ Mozilla", 0},
	        {"!method POST !ua ~ curl", 1},
	        {"! method GET", 0},
	};
	struct rules_subject s = subj_default();

	define(RULES_SET_USERS, "users", users, 2);
	define(RULES_SET_REGEXES, "rxs", rxs, 3);
	define(RULES_SET_REGEXES, "urlrx", urlrx, 2);
	define(RULES_SET_CIDRS, "nets", nets, 2);
	define(RULES_SET_DOMAINS, "doms", doms, 2);
	RUN(rows, &s);
}
END_TEST

/* Absent values: no user, no query, no headers. */
START_TEST(test_absent)
{
	static const struct row rows[] = {
	        {"user alice", 0},   {"!user alice", 1},       {"arg a", 0},
	        {"cookie sid", 0},   {"header Host", 0},       {"ua ~ .", 0},
	        {"ua ~ ^$", 0},      {"url ~ ^http://h/$", 1}, {"path ~ ^/$", 1},
	        {"dst 10.0.0.1", 0}, {"dst 10.0.0.0/8", 0},
	};
	struct rules_subject s = subj_default();

	s.user = NULL;
	s.query = NULL;
	s.query_len = 0;
	s.headers = NULL;
	s.nheaders = 0;
	s.host = "h";
	s.host_len = 1;
	s.path = "/";
	s.path_len = 1;
	RUN(rows, &s);
}
END_TEST

START_TEST(test_cidr)
{
	static const struct {
		const char *client, *rule;
		int match;
	} rows[] = {
	        {"192.0.2.1", "src 0.0.0.0/0", 1},
	        {"2001:db8::1", "src 0.0.0.0/0", 0},
	        {"2001:db8::1", "src ::/0", 1},
	        {"192.0.2.1", "src 192.0.2.1/32", 1},
	        {"192.0.2.2", "src 192.0.2.1/32", 0},
	        {"2001:db8::1", "src 2001:db8::1/128", 1},
	        {"2001:db8::2", "src 2001:db8::1/128", 0},
	        {"2001:db8::2", "src 2001:db8::/32", 1},
	        {"2001:db9::2", "src 2001:db8::/32", 0},
	        {"::ffff:10.1.2.3", "src 10.0.0.0/8", 1},
	        {"::ffff:10.1.2.3", "src 10.1.2.3", 1},
	        {"::ffff:11.1.2.3", "src 10.0.0.0/8", 0},
	        {"10.1.2.3", "src ::ffff:10.0.0.0/104", 1},
	        {"172.16.5.4", "src 172.16.0.0/12", 1},
	        {"172.32.0.1", "src 172.16.0.0/12", 0},
	        {"::1", "src ::1", 1},
	        {"::1", "src 127.0.0.1", 0},
	};
	struct rules_subject s = subj_default();

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		ck_assert_int_eq(rules_ip_parse(rows[i].client, strlen(rows[i].client), &s.client),
		                 0);
		ck_assert_msg(eval(rows[i].rule, &s) == rows[i].match, "%s vs `%s`", rows[i].client,
		              rows[i].rule);
	}
}
END_TEST

START_TEST(test_sockaddr)
{
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;
	struct sockaddr_un sun;
	struct rules_subject s = subj_default();

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	ck_assert_int_eq(inet_pton(AF_INET, "10.1.2.3", &sin.sin_addr), 1);
	ck_assert_int_eq(rules_ip_from_sockaddr((struct sockaddr *)&sin, &s.client), 0);
	ck_assert(eval("src 10.0.0.0/8", &s));
	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	ck_assert_int_eq(inet_pton(AF_INET6, "::ffff:10.1.2.3", &sin6.sin6_addr), 1);
	ck_assert_int_eq(rules_ip_from_sockaddr((struct sockaddr *)&sin6, &s.client), 0);
	ck_assert_int_eq(s.client.family, 6);
	ck_assert(eval("src 10.0.0.0/8", &s));
	ck_assert(!eval("src ::/1", &s)); /* v4-mapped: looked up as IPv4 only */
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	ck_assert_int_eq(rules_ip_from_sockaddr((struct sockaddr *)&sun, &s.client), -1);
	ck_assert_int_eq(s.client.family, 0);
	ck_assert(!eval("src 0.0.0.0/0", &s) && !eval("src ::/0", &s));
}
END_TEST

/* Only dst ADDR/CIDR and dst in a cidrs set read the resolved destination. */
START_TEST(test_uses_dst)
{
	static const char *const nets[] = {"10.0.0.0/8"};
	static const char *const names[] = {"example.com"};
	static const struct {
		const char *rule;
		int uses;
	} rows[] = {
	        {"dst 10.0.0.0/8", 1},  {"!dst 192.0.2.1", 1},      {"method GET dst in dnets", 1},
	        {"dst example.com", 0}, {"dst .example.com", 0},    {"dst in dnames", 0},
	        {"src 10.0.0.0/8", 0},  {"url ~ ^http://10\\.", 0}, {"all", 0},
	};

	define(RULES_SET_CIDRS, "dnets", nets, 1);
	define(RULES_SET_DOMAINS, "dnames", names, 1);
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		struct rules_rule *r = compile_ok(rows[i].rule);

		ck_assert_msg(rules_rule_uses_dst(r) == rows[i].uses, "%s", rows[i].rule);
		rules_rule_free(r);
	}
}
END_TEST

START_TEST(test_cidr_set)
{
	static const char *const nets[] = {"10.0.0.0/8", "10.1.0.0/16", "192.0.2.7",
	                                   "2001:db8::/48", "::ffff:198.51.100.0/120"};
	static const struct {
		const char *client;
		int match;
	} rows[] = {
	        {"10.200.1.1", 1},      {"10.1.1.1", 1},      {"11.0.0.1", 0},
	        {"192.0.2.7", 1},       {"192.0.2.8", 0},     {"2001:db8:0:1::1", 1},
	        {"2001:db8:1::1", 0},   {"198.51.100.99", 1}, {"::ffff:198.51.100.1", 1},
	        {"::ffff:10.9.9.9", 1}, {"::a00:1", 0}, /* v4-compatible is not v4-mapped */
	};
	struct rules_subject s = subj_default();

	define(RULES_SET_CIDRS, "nets", nets, 5);
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		ck_assert_int_eq(rules_ip_parse(rows[i].client, strlen(rows[i].client), &s.client),
		                 0);
		ck_assert_msg(eval("src in nets", &s) == rows[i].match, "%s", rows[i].client);
	}
}
END_TEST

START_TEST(test_domains)
{
	static const struct {
		const char *host, *rule;
		int match;
	} rows[] = {
	        {"example.com", "dst example.com", 1},
	        {"www.example.com", "dst example.com", 0},
	        {"badexample.com", "dst example.com", 0},
	        {"example.com", "dst *.example.com", 0},
	        {"www.example.com", "dst *.example.com", 1},
	        {"a.b.example.com", "dst *.example.com", 1},
	        {"badexample.com", "dst *.example.com", 0},
	        {"www.badexample.com", "dst *.example.com", 0},
	        {"example.com.evil.org", "dst *.example.com", 0},
	        {"example.com", "dst .example.com", 1},
	        {"www.example.com", "dst .example.com", 1},
	        {"badexample.com", "dst .example.com", 0},
	        {"EXAMPLE.Com", "dst example.com", 1},
	        {"example.com.", "dst example.com", 1},
	        {"example.com", "dst example.com.", 1},
	        {"WWW.EXAMPLE.COM.", "dst *.Example.com", 1},
	        {"xn--bcher-kva.example", "dst xn--bcher-kva.example", 1},
	        {"192.0.2.1", "dst 192.0.2.0/24", 1},
	        {"[2001:db8::1]", "dst 2001:db8::/32", 1},
	        {"192.0.2.1", "dst 192.0.2.1", 1},
	        {"192.0.2.1", "dst example.com", 0},
	        {"example.org", "dst 192.0.2.0/24", 1}, /* resolved address */
	        {"example.org", "dst 198.51.100.0/24", 0},
	};
	struct rules_subject s = subj_default();

	ck_assert_int_eq(rules_ip_parse("192.0.2.99", 10, &s.dst), 0);
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		s.host = rows[i].host;
		s.host_len = strlen(s.host);
		ck_assert_msg(eval(rows[i].rule, &s) == rows[i].match, "%s vs `%s`", rows[i].host,
		              rows[i].rule);
	}
}
END_TEST

START_TEST(test_domain_set)
{
	static const char *const doms[] = {"example.com", "*.sub.example.org", ".both.net",
	                                   "Mixed.CASE.io.", "example.com"};
	static const struct {
		const char *host;
		int match;
	} rows[] = {
	        {"example.com", 1},
	        {"www.example.com", 0},
	        {"sub.example.org", 0},
	        {"a.sub.example.org", 1},
	        {"x.a.sub.example.org", 1},
	        {"both.net", 1},
	        {"x.both.net", 1},
	        {"notboth.net", 0},
	        {"mixed.case.io", 1},
	        {"MIXED.case.IO.", 1},
	        {"io", 0},
	        {"", 0},
	        {".", 0},
	        {"com", 0},
	};
	struct rules_subject s = subj_default();

	define(RULES_SET_DOMAINS, "d", doms, 5);
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		s.host = rows[i].host;
		s.host_len = strlen(s.host);
		ck_assert_msg(eval("dst in d", &s) == rows[i].match, "%s", rows[i].host);
	}
}
END_TEST

START_TEST(test_domain_file_100k)
{
	const char *path = unit_path("domains.txt");
	FILE *f = fopen(path, "w");
	struct rules_subject s = subj_default();
	struct rules_rule *r;
	char *err = NULL, host[64];
	struct timespec t0, t1;
	double secs;

	ck_assert(f != NULL);
	fprintf(f, "# generated\n\n");
	for (int i = 0; i < 100000; i++)
		fprintf(f, "%shost%d.domain%d.example\n",
		        i % 3 == 0   ? "."
		        : i % 3 == 1 ? "*."
		                     : "",
		        i, i % 977);
	ck_assert_int_eq(fclose(f), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ck_assert_msg(rules_set_load(ctx, RULES_SET_DOMAINS, "big", path, &err) == 0, "%s", err);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	ck_assert_msg(secs < 5.0, "100,000 domains took %.2f s", secs);
	r = compile_ok("dst in big");
	s.host = host;
	for (int i = 0; i < 100000; i += 7) {
		int kind = i % 3;

		s.host_len =
		        (size_t)snprintf(host, sizeof(host), "host%d.domain%d.example", i, i % 977);
		ck_assert_int_eq(rules_eval(r, &s, scratch, NULL), kind != 1);
		s.host_len = (size_t)snprintf(host, sizeof(host), "w.host%d.domain%d.EXAMPLE.", i,
		                              i % 977);
		ck_assert_int_eq(rules_eval(r, &s, scratch, NULL), kind != 2);
		s.host_len = (size_t)snprintf(host, sizeof(host), "xhost%d.domain%d.example", i,
		                              i % 977);
		ck_assert_int_eq(rules_eval(r, &s, scratch, NULL), 0);
	}
	rules_rule_free(r);
}
END_TEST

START_TEST(test_set_files)
{
	struct rules_subject s = subj_default();
	static const char cidrs[] = "# office\n10.0.0.0/8\n\n  192.0.2.0/24  \n2001:db8::/32\r\n";
	static const char users[] = "alice\n# bob\ncarol\n";
	static const char rx[] = "^Mozilla/\n# comment\n(?i)CURL\n";
	static const char dates[] = "2026-12-24..2026-12-26\n2026-11-23\n2026-01-01\n";

	unit_write("c.txt", cidrs, sizeof(cidrs) - 1);
	unit_write("u.txt", users, sizeof(users) - 1);
	unit_write("r.txt", rx, sizeof(rx) - 1);
	unit_write("d.txt", dates, sizeof(dates) - 1);
	ck_assert_int_eq(rules_set_load(ctx, RULES_SET_CIDRS, "c", unit_path("c.txt"), NULL), 0);
	ck_assert_int_eq(rules_set_load(ctx, RULES_SET_USERS, "u", unit_path("u.txt"), NULL), 0);
	ck_assert_int_eq(rules_set_load(ctx, RULES_SET_REGEXES, "r", unit_path("r.txt"), NULL), 0);
	ck_assert_int_eq(rules_set_load(ctx, RULES_SET_DATES, "d", unit_path("d.txt"), NULL), 0);
	ck_assert(eval("src in c user in u ua ~ in r date in d UTC", &s));
	s.user = "bob";
	s.user_len = 3;
	ck_assert(!eval("user in u", &s));
	s.now = utc(2026, 12, 25, 12, 0);
	ck_assert(eval("date in d UTC", &s));
	s.now = utc(2026, 12, 27, 0, 0);
	ck_assert(!eval("date in d UTC", &s));
	ck_assert(eval("date in d Pacific/Honolulu", &s)); /* still the 26th there */
}
END_TEST

START_TEST(test_set_errors)
{
	static const struct {
		enum rules_set_kind kind;
		const char *text, *want;
	} rows[] = {
	        {RULES_SET_DOMAINS, "ok.com\n# c\nbad..name\n",
	         ":3: bad domain name \"bad..name\""},
	        {RULES_SET_DOMAINS,
	         "ok.com\nb\xc3\xbc"
	         "cher.de\n",
	         ":2: non-ASCII domain name (write IDNs in punycode, xn--...) \"b\xc3\xbc"
	         "cher.de\""},
	        {RULES_SET_CIDRS, "10.0.0.0/8\n\n10.0.0.0/33\n",
	         ":3: bad prefix length \"10.0.0.0/33\""},
	        {RULES_SET_CIDRS, "300.1.1.1\n", ":1: bad address \"300.1.1.1\""},
	        {RULES_SET_DATES, "2026-02-29\n", ":1: bad date"},
	        {RULES_SET_DATES, "2026-03-02..2026-03-01\n", ":1: bad date"},
	        {RULES_SET_REGEXES, "ok\n# x\n(abc\n", ":3: regex error at offset 4: "},
	};
	char *err;

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char name[16], want[512];

		snprintf(name, sizeof(name), "s%zu", i);
		unit_write(name, rows[i].text, strlen(rows[i].text));
		err = NULL;
		ck_assert_int_eq(rules_set_load(ctx, rows[i].kind, name, unit_path(name), &err),
		                 -1);
		snprintf(want, sizeof(want), "%s%s", unit_path(name), rows[i].want);
		ck_assert_msg(err != NULL && strncmp(err, want, strlen(want)) == 0,
		              "got \"%s\", want \"%s\"", err, want);
		free(err);
	}
	err = NULL;
	ck_assert_int_eq(rules_set_load(ctx, RULES_SET_USERS, "x", unit_path("missing"), &err), -1);
	ck_assert(strstr(err, "No such file") != NULL);
	free(err);
	/* inline: the position of the bad word */
	{
		struct rules_tok t[2] = {{"good.com", 0, 4, 9}, {"*.", 0, 4, 18}};

		err = NULL;
		ck_assert_int_eq(
		        rules_set_define(ctx, RULES_SET_DOMAINS, "i", "p.conf", t, 2, &err), -1);
		ck_assert_str_eq(err, "p.conf:4:18: bad domain name \"*.\"");
		free(err);
		err = NULL;
		ck_assert_int_eq(
		        rules_set_define(ctx, RULES_SET_DOMAINS, "i", "p.conf", t, 1, &err), 0);
		ck_assert_int_eq(
		        rules_set_define(ctx, RULES_SET_DOMAINS, "i", "p.conf", t, 1, &err), -1);
		ck_assert_str_eq(err, "p.conf:4:9: set \"i\" is already defined");
		free(err);
	}
}
END_TEST

/* A regexes set is one alternation with branch reset: each pattern keeps its \\1. */
START_TEST(test_regex_set_groups)
{
	static const char *const rx[] = {"^(a)\\1$", "^(b)\\1$", "^\\Qc(", "^d$"};
	static const char *const values[] = {"aa", "bb", "c(", "d", "ab", "c", "dd"};
	struct rules_subject s = subj_default();
	struct rules_header h = {"X", 1, NULL, 0};

	define(RULES_SET_REGEXES, "rx", rx, 4);
	s.headers = &h;
	s.nheaders = 1;
	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		h.value = values[i];
		h.value_len = strlen(values[i]);
		ck_assert_msg(eval("ua ~ in rx", &s) == 0, "%s", values[i]);
		h.name = "User-Agent";
		h.name_len = 10;
		ck_assert_msg(eval("ua ~ in rx", &s) == (i < 4), "%s", values[i]);
		h.name = "X";
		h.name_len = 1;
	}
}
END_TEST

/*
 * A thousand realistic patterns exceed PCRE2's size limit for one compiled pattern (64k);
 * the set is split into several alternations and still matches every pattern.
 */
START_TEST(test_regex_set_1000)
{
	const char *path = unit_path("regexes1000.txt");
	FILE *f = fopen(path, "w");
	struct rules_subject s = subj_default();
	struct rules_header h = {"User-Agent", 10, NULL, 0};
	struct rules_rule *r;
	char *err = NULL, ua[128];

	ck_assert(f != NULL);
	for (int i = 0; i < 1000; i++)
		fprintf(f,
		        "^https?://([^/]*\\.)?adserver%d\\.(com|net|org)/"
		        "[a-z]+[0-9]*\\.(gif|png)$\n",
		        i);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_msg(rules_set_load(ctx, RULES_SET_REGEXES, "r1000", path, &err) == 0, "%s", err);
	r = compile_ok("ua ~ in r1000");
	s.headers = &h;
	s.nheaders = 1;
	h.value = ua;
	for (int i = 0; i < 1000; i += 37) {
		h.value_len =
		        (size_t)snprintf(ua, sizeof(ua), "http://x.adserver%d.net/ad%d.png", i, i);
		ck_assert_msg(rules_eval(r, &s, scratch, NULL) == 1, "%s", ua);
		h.value_len =
		        (size_t)snprintf(ua, sizeof(ua), "http://x.adserver%d.net/ad%d.jpg", i, i);
		ck_assert_msg(rules_eval(r, &s, scratch, NULL) == 0, "%s", ua);
	}
	h.value_len = (size_t)snprintf(ua, sizeof(ua), "https://adserver999.org/z.gif");
	ck_assert_int_eq(rules_eval(r, &s, scratch, NULL), 1);
	h.value_len = (size_t)snprintf(ua, sizeof(ua), "https://adserver1000.org/z.gif");
	ck_assert_int_eq(rules_eval(r, &s, scratch, NULL), 0);
	rules_rule_free(r);
}
END_TEST

/* Anchored and unanchored patterns are compiled apart; every one still matches as written. */
START_TEST(test_regex_set_mixed)
{
	static const char *const rx[] = {"^abc", "xyz$", "(?i)^mixed", "^a1|b1", "\\Aq"};
	static const char *const yes[] = {"abcd", "qxyz", "MIXED!", "a1", "zb1", "q"};
	static const char *const no[] = {"zabc", "xyzq", "a mixed", "za1", "zq", ""};
	struct rules_subject s = subj_default();
	struct rules_header h = {"User-Agent", 10, NULL, 0};

	define(RULES_SET_REGEXES, "mixed", rx, 5);
	s.headers = &h;
	s.nheaders = 1;
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		h.value = yes[i];
		h.value_len = strlen(yes[i]);
		ck_assert_msg(eval("ua ~ in mixed", &s) == 1, "%s", yes[i]);
		h.value = no[i];
		h.value_len = strlen(no[i]);
		ck_assert_msg(eval("ua ~ in mixed", &s) == 0, "%s", no[i]);
	}
}
END_TEST

/*
 * Required literals: what every match must contain, lower-cased; "" where the pattern
 * has none (too short, or a construct the extraction does not trust).
 */
START_TEST(test_literal_extraction)
{
	static const struct {
		const char *re, *lit;
	} rows[] = {
	        {"tracker17", "tracker17"},
	        {"^https?://[^/]*tracker17[0-9]*\\.", "tracker17"},
	        {"^https?://([^/]*\\.)?adserver21\\.(com|net|org)/", "adserver21."},
	        {"[?&]utm_campaign=spam23(&|$)", "utm_campaign=spam23"},
	        {"/download/[a-z]+24\\.(exe|scr|msi)$", "/download/"},
	        {"/banners?/ad22_[0-9]+x[0-9]+\\.(gif|png|jpg)$", "/banner"},
	        {"\\.exe$", ".exe"},
	        {"^abc$", "abc"},
	        {"ab", ""},
	        {"a.b.c", ""},
	        {"a|bcdef", ""},
	        {"abcdef|x", ""},
	        {"(?:abc|def)ghij", "ghij"},
	        {"abcd?", "abc"},
	        {"abcd*ef", "abc"},
	        {"abcd+ef", "abcd"},
	        {"ab+cdef", "bcdef"},
	        {"abc{0,3}xyz", "xyz"},
	        {"abc{2}xy", "abc"},
	        {"abc{2,}xyzw", "cxyzw"},
	        {"abc{,3}", ""},
	        {"foo{bar", ""},
	        {"abc++def", "cdef"},
	        {"abc+?d", "abc"},
	        {"x*y?zzz", "zzz"},
	        {"(?i)TrAcKeR", "tracker"},
	        {"(?-i)ABCD", "abcd"},
	        {"(?i)(?s).abcd", "abcd"},
	        {"(?i:abc)defg", "defg"},
	        {"ABC.DEFG", "defg"},
	        {"\\d+xyz\\w", "xyz"},
	        {"ab\\bcdef", "cdef"},
	        {"abc\\.def", "abc.def"},
	        {"\\/path\\/to", "/path/to"},
	        {"\\Qa.b+c\\E", "a.b+c"},
	        {"\\Qa.b|c", "a.b|c"},
	        {"\\Qabc\\E+d", "abc"},
	        {"\\Qab\\E+", ""},
	        {"[abc]defg", "defg"},
	        {"[]abc]defg", "defg"},
	        {"[\\]]abcd", "abcd"},
	        {"[^]x]yz{1}abcd", "zabcd"},
	        {"[[:alpha:]]+wxyz", "wxyz"},
	        {"(?#a comment)abcd", "abcd"},
	        {"aab(?#x)*c", ""},
	        {"aab(?#x)+cd", "aab"},
	        {"ab(?i)*cdef", ""},
	        {"(abc)?defg", "defg"},
	        {"(abc)*", ""},
	        {"abc.*def.*ghij", "ghij"},
	        {"ab\xe9"
	         "cdef",
	         "cdef"},
	        {"\\Qab\xe9"
	         "cd\\E",
	         ""},
	        {"(?|(a)|(b))xyzw", "xyzw"},
	        {"(?<name>x)abcd", "abcd"},
	        {"(?:a(?=b)c)defg", "defg"},
	        {"(a)\\1bcdef", ""},
	        {"(?P<n>x)(?P=n)abcd", ""},
	        {"(?(1)a|b)cdef", ""},
	        {"abc(?=def)", ""},
	        {"(?<!x)abcdef", ""},
	        {"(?x)abc def", ""},
	        {"(?xi)abcd", ""},
	        {"a(?x: b c)defg", ""},
	        {"(*UTF)abcdef", ""},
	        {"(?:a(*ACCEPT))bcdef", ""},
	        {"abc\\x41def", ""},
	        {"a\\tbcdef", ""},
	        {"\\Eabcdef", ""},
	        {"abc\\Kdef", ""},
	        {"abc\\", ""},
	        {"abc)", ""},
	        {"[\\Qx]\\E]abcd", ""},
	        {"[\\c]]abcd", ""},
	};
	char out[256];

	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		size_t n = re_required_literal(rows[i].re, out, sizeof(out));

		if (n == 0)
			out[0] = '\0';
		ck_assert_msg(strcmp(out, rows[i].lit) == 0 && strlen(out) == n,
		              "`%s`: literal \"%s\", expected \"%s\"", rows[i].re, out,
		              rows[i].lit);
	}
}
END_TEST

static uint32_t
lcg(uint32_t *st)
{
	*st = *st * 1103515245u + 12345u;
	return *st >> 8;
}

/* One of a dozen kinds of pattern, with and without required literals, some caseless. */
static void
gen_pattern(char *buf, size_t cap, int i, uint32_t *st)
{
	switch (lcg(st) % 14) {
	case 0:
		snprintf(buf, cap, "^https?://[^/]*tracker%d[0-9]*\\.", i);
		break;
	case 1:
		snprintf(buf, cap, "^https?://([^/]*\\.)?adserver%d\\.(com|net|org)/", i);
		break;
	case 2:
		snprintf(buf, cap, "/banners?/ad%d_[0-9]+x[0-9]+\\.(gif|png|jpg)$", i);
		break;
	case 3:
		snprintf(buf, cap, "[?&]utm_campaign=spam%d(&|$)", i);
		break;
	case 4:
		snprintf(buf, cap, "/download/[a-z]+%d\\.(exe|scr|msi)$", i);
		break;
	case 5:
		snprintf(buf, cap, "(?i)/AdS/Unit%d/", i);
		break;
	case 6: /* no literal: alternation */
		snprintf(buf, cap, "/x%d/|/y%d\\b", i, i);
		break;
	case 7: /* no literal: too short */
		snprintf(buf, cap, "^/[a-z]{2}/%d$", i % 100);
		break;
	case 8: /* no literal: backreference */
		snprintf(buf, cap, "/(p%d)/\\1/", i);
		break;
	case 9:
		snprintf(buf, cap, "\\Q/p.%d+\\E", i);
		break;
	case 10:
		snprintf(buf, cap, "(?i)^http://CDN%d-+x\\.", i);
		break;
	case 11:
		snprintf(buf, cap, "id=%d[a-f]*&", i);
		break;
	case 12: /* anchored, no literal */
		snprintf(buf, cap, "^https://[a-z]+%d/", i % 50);
		break;
	default:
		snprintf(buf, cap, "[?&]ref=%dx*y{2,}z", i);
		break;
	}
}

/* A URL made of pieces that some patterns match (mostly near misses), case mixed at times. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
static size_t
gen_subject(char *buf, size_t cap, uint32_t *st)
{
	static const char *const hosts[] = {"http://www.tracker%d.com",
	                                    "https://a.adserver%d.net",
	                                    "http://cdn%d--X.example",
	                                    "https://x%d.example",
	                                    "https://ab%d",
	                                    "http://localhost:%d"};
	static const char *const paths[] = {"/banners/ad%d_300x250.png",
	                                    "/ads/unit%d/",
	                                    "/download/setup%d.exe",
	                                    "/p%d/p%d/",
	                                    "/x%d/",
	                                    "/y%d.",
	                                    "/p.%d+/",
	                                    "/ab/%d",
	                                    "/download/tool.zip",
	                                    "/"};
	static const char *const queries[] = {"",
	                                      "?utm_campaign=spam%d",
	                                      "?a=1&utm_campaign=spam%d&b",
	                                      "?id=%dabc&",
	                                      "?ref=%dxyyz",
	                                      "?ref=%dyyz",
	                                      "?img=/banners/ad_top.gif"};
	int n = (int)(lcg(st) % 1100), o = 0;
	const char *p = paths[lcg(st) % 10];

	o += snprintf(buf + o, cap - (size_t)o, hosts[lcg(st) % 6], n);
	o += snprintf(buf + o, cap - (size_t)o, p, (int)(lcg(st) % 1100), n);
	o += snprintf(buf + o, cap - (size_t)o, queries[lcg(st) % 7], (int)(lcg(st) % 1100));
	if (lcg(st) % 5 == 0)
		for (int k = 0; k < o; k++)
			if (lcg(st) % 2 == 0 && buf[k] >= 'a' && buf[k] <= 'z')
				buf[k] = (char)(buf[k] - 'a' + 'A');
	return (size_t)o;
}
#pragma GCC diagnostic pop

/*
 * Soundness of the extraction on random patterns: whenever PCRE2 (with or without
 * PCRE2_CASELESS) matches a random subject, the subject contains the pattern's literal
 * (case-insensitively). Small alphabets, so that matches are frequent.
 */
START_TEST(test_literal_random)
{
	static const char *const toks[] = {
	        "a",     "b",   "c",       "A",     "abc",   "bca",   "ab",     ".",
	        "\\.",   "/",   "[ab]",    "[^a]",  "[]a]",  "(a|b)", "(?:ab)", "(?i)",
	        "?",     "*",   "+",       "{2}",   "{0,2}", "{1,}",  "+?",     "*+",
	        "^",     "$",   "\\d",     "\\w",   "|",     "(",     ")",      "\\Qa.\\E",
	        "(?=a)", "\\b", "(?i:ab)", "(?#x)", "\\Q",   "\\E",   "1",      "(?-i)",
	};
	static const char alpha[] = "abcABC./1";
	pcre2_match_data *md = pcre2_match_data_create(1, NULL);
	char pat[128], lit[300], subj[32], low[32];
	uint32_t st = 1234;
	int checked = 0;

	ck_assert(md != NULL);
	for (int i = 0; i < 100000; i++) {
		int ntok = 1 + (int)(lcg(&st) % 8), code;
		size_t o = 0, llen;
		PCRE2_SIZE off;

		for (int t = 0; t < ntok; t++) {
			const char *w = toks[lcg(&st) % (sizeof(toks) / sizeof(toks[0]))];

			if (o + strlen(w) + 1 < sizeof(pat)) {
				memcpy(pat + o, w, strlen(w));
				o += strlen(w);
			}
		}
		pat[o] = '\0';
		if ((llen = re_required_literal(pat, lit, sizeof(lit))) == 0)
			continue;
		for (int ci = 0; ci < 2; ci++) {
			pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED,
			                               ci ? PCRE2_CASELESS : 0, &code, &off, NULL);

			if (re == NULL)
				continue;
			for (int j = 0; j < 60; j++) {
				size_t n = lcg(&st) % 12;

				for (size_t k = 0; k < n; k++) {
					subj[k] = alpha[lcg(&st) % (sizeof(alpha) - 1)];
					low[k] = (char)(subj[k] >= 'A' && subj[k] <= 'Z'
					                        ? subj[k] - 'A' + 'a'
					                        : subj[k]);
				}
				low[n] = '\0';
				if (pcre2_match(re, (PCRE2_SPTR)subj, n, 0, 0, md, NULL) < 0)
					continue;
				checked++;
				ck_assert_msg(strstr(low, lit) != NULL,
				              "`%s` (caseless %d) matches \"%.*s\" without \"%s\"",
				              pat, ci, (int)n, subj, lit);
			}
			pcre2_code_free(re);
		}
	}
	ck_assert_msg(checked > 2000, "only %d matches checked", checked);
	pcre2_match_data_free(md);
}
END_TEST

/*
 * The prefiltered set gives exactly the result of trying every pattern: 1,000 generated
 * patterns (about half with a literal), 2,000 generated URLs as User-Agent and as URL.
 */
START_TEST(test_prefilter_equivalence)
{
	enum { NPAT = 1000, NSUBJ = 2000 };
	const char *path = unit_path("mixed1000.txt");
	FILE *f = fopen(path, "w");
	pcre2_code **ref = calloc(NPAT, sizeof(*ref));
	pcre2_match_data *md = pcre2_match_data_create(1, NULL);
	struct rules_subject s = subj_default();
	struct rules_header h = {"User-Agent", 10, NULL, 0};
	struct rules_rule *rua, *rurl;
	char pat[128], subj[256], *err = NULL;
	uint32_t st = 42;
	int matches = 0, lits = 0;

	ck_assert(f != NULL && ref != NULL && md != NULL);
	for (int i = 0; i < NPAT; i++) {
		int code;
		PCRE2_SIZE off;

		gen_pattern(pat, sizeof(pat), i, &st);
		fprintf(f, "%s\n", pat);
		ref[i] =
		        pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED, 0, &code, &off, NULL);
		ck_assert_msg(ref[i] != NULL, "%s", pat);
		lits += re_required_literal(pat, subj, sizeof(subj)) > 0;
	}
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_msg(lits > NPAT / 3 && lits < NPAT, "%d patterns with a literal", lits);
	ck_assert_msg(rules_set_load(ctx, RULES_SET_REGEXES, "mixed", path, &err) == 0, "%s", err);
	rua = compile_ok("ua ~ in mixed");
	rurl = compile_ok("url ~ in mixed");
	s.headers = &h;
	s.nheaders = 1;
	s.query = NULL;
	s.query_len = 0;
	s.port = 0;
	for (int j = 0; j < NSUBJ; j++) {
		size_t len = gen_subject(subj, sizeof(subj), &st);
		int want = 0;
		char *colon = strstr(subj, "://"), *slash, *q;

		for (int i = 0; i < NPAT && !want; i++)
			want = pcre2_match(ref[i], (PCRE2_SPTR)subj, len, 0, 0, md, NULL) >= 0;
		matches += want;
		h.value = subj;
		h.value_len = len;
		ck_assert_msg((int)rules_eval(rua, &s, scratch, NULL) == want,
		              "ua `%s`: expected %d", subj, want);
		/* the same string as scheme://host/path?query (built back identically) */
		ck_assert(colon != NULL && (slash = strchr(colon + 3, '/')) != NULL);
		q = strchr(slash, '?');
		s.scheme = subj;
		s.scheme_len = (size_t)(colon - subj);
		s.host = colon + 3;
		s.host_len = (size_t)(slash - s.host);
		s.path = slash;
		s.path_len = q != NULL ? (size_t)(q - slash) : len - (size_t)(slash - subj);
		s.query = q != NULL ? q + 1 : NULL;
		s.query_len = q != NULL ? len - (size_t)(q + 1 - subj) : 0;
		ck_assert_msg((int)rules_eval(rurl, &s, scratch, NULL) == want,
		              "url `%s`: expected %d", subj, want);
	}
	/* both kinds of subject occur */
	ck_assert_msg(matches > NSUBJ / 20 && matches < NSUBJ - NSUBJ / 20, "%d matches", matches);
	ck_assert_int_eq(nlogs, 0);
	rules_rule_free(rua);
	rules_rule_free(rurl);
	for (int i = 0; i < NPAT; i++)
		pcre2_code_free(ref[i]);
	free(ref);
	pcre2_match_data_free(md);
}
END_TEST

/* Single `ua ~ RE` / `ua ~* RE` matchers skip PCRE2 when the literal is absent: same results. */
START_TEST(test_prefilter_single)
{
	enum { NPAT = 150, NSUBJ = 400 };
	pcre2_match_data *md = pcre2_match_data_create(1, NULL);
	struct rules_subject s = subj_default();
	struct rules_header h = {"User-Agent", 10, NULL, 0};
	char pat[128], rule[300], subj[256];
	uint32_t st = 7, st2;

	ck_assert(md != NULL);
	s.headers = &h;
	s.nheaders = 1;
	for (int i = 0; i < NPAT; i++) {
		for (int ci = 0; ci < 2; ci++) {
			int code;
			PCRE2_SIZE off;
			pcre2_code *ref;
			struct rules_rule *r;
			char *o = rule;

			st2 = st;
			gen_pattern(pat, sizeof(pat), i * 7, &st2);
			o += sprintf(o, "ua %s \"", ci ? "~*" : "~");
			for (const char *c = pat; *c != '\0'; c++) {
				if (*c == '"' || *c == '\\')
					*o++ = '\\';
				*o++ = *c;
			}
			sprintf(o, "\"");
			ref = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED,
			                    ci ? PCRE2_CASELESS : 0, &code, &off, NULL);
			ck_assert(ref != NULL);
			r = compile_ok(rule);
			for (int j = 0; j < NSUBJ / NPAT + 3; j++) {
				size_t len = gen_subject(subj, sizeof(subj), &st2);
				int want = pcre2_match(ref, (PCRE2_SPTR)subj, len, 0, 0, md,
				                       NULL) >= 0;

				h.value = subj;
				h.value_len = len;
				ck_assert_msg((int)rules_eval(r, &s, scratch, NULL) == want,
				              "%s on `%s`: expected %d", rule, subj, want);
			}
			rules_rule_free(r);
			pcre2_code_free(ref);
		}
		st = st2;
	}
	pcre2_match_data_free(md);
}
END_TEST

/* (?i) patterns in a set: their literals match in any case; the others are prefiltered
 * case-insensitively too, and PCRE2 then decides. */
START_TEST(test_prefilter_caseless)
{
	static const char *const rx[] = {"(?i)^mozilla/\\d+\\.\\d+ \\(x11", "(?i)curl/7\\.",
	                                 "Wget/1\\.2", "(?i:bot)crawler"};
	static const struct {
		const char *ua;
		int match;
	} rows[] = {
	        {"Mozilla/5.0 (X11; Linux)", 1},
	        {"MOZILLA/5.0 (x11", 1},
	        {"mozilla/5.0 (X12", 0},
	        {"CURL/7.88", 1},
	        {"xcUrL/7.1", 1},
	        {"curl/8.0", 0},
	        {"Wget/1.21", 1},
	        {"wget/1.21", 0},
	        {"WGET/1.2", 0},
	        {"BotCrawler", 0},
	        {"BOTcrawler", 1},
	        {"a botcrawler", 1},
	};
	struct rules_subject s = subj_default();
	struct rules_header h = {"User-Agent", 10, NULL, 0};

	define(RULES_SET_REGEXES, "ci", rx, 4);
	s.headers = &h;
	s.nheaders = 1;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		h.value = rows[i].ua;
		h.value_len = strlen(rows[i].ua);
		ck_assert_msg(eval("ua ~ in ci", &s) == rows[i].match, "%s", rows[i].ua);
		ck_assert_msg(eval("!ua ~ in ci", &s) == !rows[i].match, "%s", rows[i].ua);
	}
}
END_TEST

/* A set where no pattern has a literal is the alternation of before; one where every
 * pattern has one has no alternation at all; `ua ~ in SET` still requires a User-Agent. */
START_TEST(test_prefilter_extremes)
{
	static const char *const none[] = {"^a|b$", "^[0-9]+$", "(x)\\1", "ab"};
	static const char *const all[] = {"abc", "(?i)xyz\\d", "^foo/bar"};
	static const struct {
		const char *ua;
		int none, all;
	} rows[] = {
	        {"b", 1, 0},       {"a..", 1, 0}, {"123", 1, 0},     {"xx", 1, 0},
	        {"zab", 1, 0},     {"zzz", 0, 0}, {"1a", 0, 0},      {"xabcx", 1, 1},
	        {"XYZ1", 0, 1},    {"xyz", 0, 0}, {"foo/bar", 0, 1}, {"/foo/bar", 0, 0},
	        {"FOO/BAR", 0, 0}, {"", 0, 0},
	};
	struct rules_subject s = subj_default();
	struct rules_header h = {"User-Agent", 10, NULL, 0};

	define(RULES_SET_REGEXES, "none", none, 4);
	define(RULES_SET_REGEXES, "all", all, 3);
	s.headers = &h;
	s.nheaders = 1;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		h.value = rows[i].ua;
		h.value_len = strlen(rows[i].ua);
		ck_assert_msg(eval("ua ~ in none", &s) == rows[i].none, "none: %s", rows[i].ua);
		ck_assert_msg(eval("ua ~ in all", &s) == rows[i].all, "all: %s", rows[i].ua);
	}
	s.nheaders = 0;
	ck_assert(!eval("ua ~ in all", &s));
	ck_assert(eval("!ua ~ in all", &s));
}
END_TEST

/*
 * More literals occur in one subject than the scratch remembers (32): the patterns still
 * run, the one that matches last is found.
 */
START_TEST(test_prefilter_many_hits)
{
	char pats[100][16], subj[2048];
	const char *words[100];
	struct rules_subject s = subj_default();
	struct rules_header h = {"User-Agent", 10, subj, 0};
	size_t o = 0;

	for (int i = 0; i < 100; i++) {
		snprintf(pats[i], sizeof(pats[i]), "lit%02dx\\d", i);
		words[i] = pats[i];
	}
	define(RULES_SET_REGEXES, "many", words, 32);
	for (int i = 0; i < 100; i++)
		o += (size_t)sprintf(subj + o, "lit%02dx lit%02dx ", i % 32, i % 32);
	o += (size_t)sprintf(subj + o, "lit31x5");
	s.headers = &h;
	s.nheaders = 1;
	h.value_len = o;
	ck_assert(eval("ua ~ in many", &s));
	h.value_len = o - 1;
	ck_assert(!eval("ua ~ in many", &s));
}
END_TEST

START_TEST(test_regex_limit)
{
	struct rules_subject s = subj_default();
	char path[64];
	struct timespec t0, t1;
	struct rules_rule *r;
	double secs;

	memset(path, 'a', 40);
	path[0] = '/';
	path[40] = 'b';
	s.path = path;
	s.path_len = 41;
	r = compile_ok("path ~ \"/(a+)+$\"");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ck_assert_int_eq(rules_eval(r, &s, scratch, NULL), RULES_NOMATCH);
	ck_assert_int_eq(rules_eval(r, &s, scratch, NULL), RULES_NOMATCH);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	ck_assert_msg(secs < 2.0, "took %.2f s", secs);
	ck_assert_int_eq(nlogs, 1); /* once per matcher */
	rules_rule_free(r);
	/* the same pattern on a short input matches normally */
	s.path = "/aaa";
	s.path_len = 4;
	ck_assert(eval("path ~ \"/(a+)+$\"", &s));
	ck_assert_int_eq(nlogs, 1);
}
END_TEST

struct trow {
	int y, mo, d, h, mi; /* UTC */
	const char *rule;
	int match;
};

static void
run_times(const struct trow *rows, size_t n)
{
	struct rules_subject s = subj_default();

	for (size_t i = 0; i < n; i++) {
		s.now = utc(rows[i].y, rows[i].mo, rows[i].d, rows[i].h, rows[i].mi);
		ck_assert_msg(eval(rows[i].rule, &s) == rows[i].match,
		              "%04d-%02d-%02d %02d:%02dZ `%s`: expected %d", rows[i].y, rows[i].mo,
		              rows[i].d, rows[i].h, rows[i].mi, rows[i].rule, rows[i].match);
	}
}

START_TEST(test_time_windows)
{
	static const struct trow rows[] = {
	        /* 2026-11-23 is a Monday */
	        {2026, 11, 23, 23, 30, "time mon 22:00-06:00 UTC", 1},
	        {2026, 11, 24, 5, 0, "time mon 22:00-06:00 UTC", 1},
	        {2026, 11, 24, 6, 0, "time mon 22:00-06:00 UTC", 0},
	        {2026, 11, 24, 23, 0, "time mon 22:00-06:00 UTC", 0},
	        {2026, 11, 23, 5, 0, "time mon 22:00-06:00 UTC", 0}, /* Sunday night's window */
	        {2026, 11, 23, 21, 59, "time mon 22:00-06:00 UTC", 0},
	        {2026, 11, 23, 22, 0, "time mon 22:00-06:00 UTC", 1},
	        {2026, 11, 28, 12, 0, "time sat,sun 00:00-24:00 UTC", 1},
	        {2026, 11, 29, 23, 59, "time sat,sun 00:00-24:00 UTC", 1},
	        {2026, 11, 30, 0, 0, "time sat,sun 00:00-24:00 UTC", 0},
	        {2026, 11, 25, 12, 0, "time mon,wed-fri 09:00-17:00 UTC", 1},
	        {2026, 11, 24, 12, 0, "time mon,wed-fri 09:00-17:00 UTC", 0},
	        {2026, 11, 27, 16, 59, "time mon-fri 09:00-17:00 UTC", 1},
	        {2026, 11, 27, 17, 0, "time mon-fri 09:00-17:00 UTC", 0},
	        {2026, 11, 29, 12, 0, "time fri-mon 09:00-17:00 UTC", 1}, /* wraps */
	        {2026, 11, 25, 12, 0, "time fri-mon 09:00-17:00 UTC", 0},
	        {2026, 11, 25, 12, 0, "time * 12:00-12:01 Etc/UTC", 1},
	        /* Berlin, CET (+1) in winter */
	        {2026, 11, 23, 21, 30, "time mon 22:00-06:00 Europe/Berlin", 1},
	        {2026, 11, 23, 20, 59, "time mon 22:00-06:00 Europe/Berlin", 0},
	        {2026, 11, 24, 4, 59, "time mon 22:00-06:00 Europe/Berlin", 1},
	        {2026, 11, 24, 5, 0, "time mon 22:00-06:00 Europe/Berlin", 0},
	        /* 2026-03-29 (Sunday): 02:00 CET becomes 03:00 CEST at 01:00 UTC */
	        {2026, 3, 29, 0, 30, "time sun 01:00-02:00 Europe/Berlin", 1},
	        {2026, 3, 29, 0, 59, "time sun 01:59-02:00 Europe/Berlin", 1},
	        {2026, 3, 29, 1, 0, "time sun 03:00-03:01 Europe/Berlin", 1},
	        {2026, 3, 29, 1, 0, "time sun 02:00-03:00 Europe/Berlin", 0},
	        {2026, 3, 28, 12, 0, "time sat 13:00-13:01 Europe/Berlin", 1},
	        {2026, 3, 30, 12, 0, "time mon 14:00-14:01 Europe/Berlin", 1},
	        {2026, 3, 28, 23, 30, "time sun 00:30-00:31 Europe/Berlin", 1},
	        /* 2026-10-25 (Sunday): 03:00 CEST becomes 02:00 CET at 01:00 UTC */
	        {2026, 10, 25, 0, 30, "time sun 02:00-03:00 Europe/Berlin", 1},
	        {2026, 10, 25, 1, 30, "time sun 02:00-03:00 Europe/Berlin", 1},
	        {2026, 10, 25, 2, 0, "time sun 02:00-03:00 Europe/Berlin", 0},
	        {2026, 10, 25, 2, 0, "time sun 03:00-03:01 Europe/Berlin", 1},
	        {2026, 10, 24, 21, 59, "time sat 23:59-24:00 Europe/Berlin", 1},
	        /* New York, 2026-03-08 (Sunday): 02:00 EST becomes 03:00 EDT at 07:00 UTC */
	        {2026, 3, 8, 6, 59, "time sun 01:59-02:00 America/New_York", 1},
	        {2026, 3, 8, 7, 0, "time sun 03:00-03:01 America/New_York", 1},
	        {2026, 3, 8, 7, 0, "time sun 02:00-03:00 America/New_York", 0},
	        {2026, 3, 8, 4, 0, "time sat 23:00-24:00 America/New_York", 1},
	        {2026, 11, 1, 5, 30, "time sun 01:30-01:31 America/New_York", 1}, /* EDT */
	        {2026, 11, 1, 6, 30, "time sun 01:30-01:31 America/New_York", 1}, /* EST */
	        /* far beyond any table: the footer rule */
	        {2040, 7, 1, 10, 0, "time * 12:00-12:01 Europe/Berlin", 1},
	        {2040, 1, 1, 10, 0, "time * 11:00-11:01 Europe/Berlin", 1},
	        /* before the footer: the transition table */
	        {1990, 7, 1, 10, 0, "time * 12:00-12:01 Europe/Berlin", 1},
	        {1970, 7, 1, 10, 0, "time * 11:00-11:01 Europe/Berlin", 1}, /* no DST in 1970 */
	        /* the southern hemisphere: Sydney is +11 in January, +10 in July */
	        {2026, 1, 15, 1, 0, "time * 12:00-12:01 Australia/Sydney", 1},
	        {2026, 7, 15, 1, 0, "time * 11:00-11:01 Australia/Sydney", 1},
	        {2026, 11, 23, 10, 0, "time * 15:30-15:31 Asia/Kolkata", 1},
	};

	run_times(rows, sizeof(rows) / sizeof(rows[0]));
}
END_TEST

START_TEST(test_dates)
{
	static const char *const days[] = {"2026-12-24..2026-12-26", "2026-12-31",
	                                   "2026-12-25..2027-01-01"};
	static const struct trow rows[] = {
	        {2026, 3, 29, 12, 0, "date 2026-03-29 UTC", 1},
	        {2026, 3, 28, 23, 30, "date 2026-03-29 UTC", 0},
	        {2026, 3, 28, 23, 30, "date 2026-03-29 Europe/Berlin", 1},
	        {2026, 3, 29, 22, 30, "date 2026-03-29 Europe/Berlin", 0},
	        {2026, 3, 30, 3, 30, "date 2026-03-29 America/New_York", 1},
	        {2026, 12, 24, 0, 0, "date 2026-12-24..2026-12-26 UTC", 1},
	        {2026, 12, 26, 23, 59, "date 2026-12-24..2026-12-26 UTC", 1},
	        {2026, 12, 27, 0, 0, "date 2026-12-24..2026-12-26 UTC", 0},
	        {2026, 12, 23, 23, 59, "date 2026-12-24..2026-12-26 UTC", 0},
	        {2026, 12, 29, 12, 0, "date in hol UTC", 1},
	        {2027, 1, 1, 12, 0, "date in hol UTC", 1},
	        {2027, 1, 2, 12, 0, "date in hol UTC", 0},
	        {2026, 12, 23, 12, 0, "date in hol UTC", 0},
	        {2026, 12, 23, 23, 30, "date in hol Europe/Berlin", 1},
	        {2026, 12, 23, 23, 30, "date in hol Europe/Berlin time * 00:00-01:00 Europe/Berlin",
	         1},
	        {2028, 2, 29, 12, 0, "date 2028-02-29 UTC", 1},
	};

	define(RULES_SET_DATES, "hol", days, 3);
	run_times(rows, sizeof(rows) / sizeof(rows[0]));
}
END_TEST

/* The zone reader against hand-checked offsets, and the local default. */
START_TEST(test_zones)
{
	const char *why = NULL;
	struct tz_zone *z;

	z = tz_from_posix("CET-1CEST,M3.5.0,M10.5.0/3");
	ck_assert(z != NULL);
	ck_assert_int_eq(tz_offset(z, utc(2026, 3, 29, 0, 59)), 3600);
	ck_assert_int_eq(tz_offset(z, utc(2026, 3, 29, 1, 0)), 7200);
	ck_assert_int_eq(tz_offset(z, utc(2026, 10, 25, 0, 59)), 7200);
	ck_assert_int_eq(tz_offset(z, utc(2026, 10, 25, 1, 0)), 3600);
	tz_free(z);
	z = tz_from_posix("EST5EDT,M3.2.0,M11.1.0");
	ck_assert(z != NULL);
	ck_assert_int_eq(tz_offset(z, utc(2026, 3, 8, 6, 59)), -5 * 3600);
	ck_assert_int_eq(tz_offset(z, utc(2026, 3, 8, 7, 0)), -4 * 3600);
	ck_assert_int_eq(tz_offset(z, utc(2026, 11, 1, 5, 59)), -4 * 3600);
	ck_assert_int_eq(tz_offset(z, utc(2026, 11, 1, 6, 0)), -5 * 3600);
	tz_free(z);
	z = tz_from_posix("<+0330>-3:30");
	ck_assert(z != NULL);
	ck_assert_int_eq(tz_offset(z, 0), 3 * 3600 + 1800);
	tz_free(z);
	z = tz_from_posix("AEST-10AEDT,M10.1.0,M4.1.0/3");
	ck_assert(z != NULL);
	ck_assert_int_eq(tz_offset(z, utc(2026, 1, 15, 0, 0)), 11 * 3600);
	ck_assert_int_eq(tz_offset(z, utc(2026, 7, 15, 0, 0)), 10 * 3600);
	tz_free(z);
	/* Jn counts no Feb 29, n does: they differ in leap years only */
	z = tz_from_posix("EST5EDT,J70,J300");
	ck_assert(z != NULL);
	ck_assert_int_eq(tz_offset(z, utc(2026, 3, 11, 6, 59)), -5 * 3600);
	ck_assert_int_eq(tz_offset(z, utc(2026, 3, 11, 7, 0)), -4 * 3600);
	ck_assert_int_eq(tz_offset(z, utc(2028, 3, 10, 7, 0)), -5 * 3600);
	ck_assert_int_eq(tz_offset(z, utc(2028, 3, 11, 7, 0)), -4 * 3600);
	tz_free(z);
	z = tz_from_posix("EST5EDT,69,299");
	ck_assert(z != NULL);
	ck_assert_int_eq(tz_offset(z, utc(2026, 3, 11, 7, 0)), -4 * 3600);
	ck_assert_int_eq(tz_offset(z, utc(2028, 3, 10, 7, 0)), -4 * 3600);
	tz_free(z);
	/* v3: negative transition times (America/Nuuk since 2023) */
	z = tz_from_posix("<-02>2<-01>,M3.5.0/-1,M10.5.0/0");
	ck_assert(z != NULL);
	ck_assert_int_eq(tz_offset(z, utc(2026, 1, 15, 0, 0)), -2 * 3600);
	ck_assert_int_eq(tz_offset(z, utc(2026, 7, 15, 0, 0)), -1 * 3600);
	/* 2026-03-29 is the last Sunday of March: -1:00 local is Saturday 23:00 -02, Sunday 01:00
	 * UTC */
	ck_assert_int_eq(tz_offset(z, utc(2026, 3, 29, 0, 59)), -2 * 3600);
	ck_assert_int_eq(tz_offset(z, utc(2026, 3, 29, 1, 0)), -1 * 3600);
	tz_free(z);
	ck_assert(tz_from_posix("CET") == NULL);
	ck_assert(tz_from_posix("CET-1CEST,M13.5.0,M10.5.0") == NULL);
	/* files */
	z = tz_load("Europe/Berlin", &why);
	ck_assert(z != NULL);
	ck_assert_int_eq(tz_offset(z, utc(2026, 7, 1, 0, 0)), 7200);
	/* the table era: summer time from 1980, double summer time in 1945 */
	ck_assert_int_eq(tz_offset(z, utc(1980, 7, 1, 0, 0)), 7200);
	ck_assert_int_eq(tz_offset(z, utc(1979, 7, 1, 0, 0)), 3600);
	ck_assert_int_eq(tz_offset(z, utc(1945, 6, 1, 0, 0)), 10800);
	tz_free(z);
	ck_assert(tz_load("../etc/passwd", &why) == NULL);
	ck_assert(tz_load("Mars/Olympus", &why) == NULL);
	ck_assert_str_eq(why, "unknown time zone");
	z = tz_load(NULL, &why); /* the local zone: whatever it is, it loads */
	ck_assert(z != NULL);
	tz_free(z);
	/* $TZDIR is honoured: an empty directory knows no zone but UTC */
	ck_assert_int_eq(setenv("TZDIR", unit_tmpdir, 1), 0);
	ck_assert(tz_load("Europe/Berlin", &why) == NULL);
	z = tz_load("UTC", &why);
	ck_assert(z != NULL);
	ck_assert_int_eq(tz_offset(z, 12345), 0);
	tz_free(z);
	unsetenv("TZDIR");
}
END_TEST

static void
put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v >> 24);
	p[1] = (unsigned char)(v >> 16);
	p[2] = (unsigned char)(v >> 8);
	p[3] = (unsigned char)v;
}

/* A slim TZif v2 file: no transitions at all, one type, everything in the footer. */
START_TEST(test_zone_slim)
{
	static const char footer[] = "\nCET-1CEST,M3.5.0,M10.5.0/3\n";
	unsigned char buf[256];
	size_t len = 0;
	struct rules_subject s = subj_default();

	memset(buf, 0, sizeof(buf));
	for (int part = 0; part < 2; part++) {
		unsigned char *h = buf + len;

		memcpy(h, "TZif2", 5);
		put32(h + 20 + 4 * 4, 1); /* typecnt */
		put32(h + 20 + 5 * 4, 4); /* charcnt */
		len += 44;
		put32(buf + len, 3600); /* utoff */
		buf[len + 4] = 0;       /* isdst */
		buf[len + 5] = 0;       /* desigidx */
		memcpy(buf + len + 6, "CET", 4);
		len += 10;
	}
	memcpy(buf + len, footer, sizeof(footer) - 1);
	len += sizeof(footer) - 1;
	ck_assert_int_eq(mkdir(unit_path("Test"), 0755), 0);
	unit_write("Test/Slim", (const char *)buf, len);
	ck_assert_int_eq(setenv("TZDIR", unit_tmpdir, 1), 0);
	s.now = utc(2026, 3, 29, 0, 59);
	ck_assert(eval("time sun 01:59-02:00 Test/Slim", &s));
	s.now = utc(2026, 3, 29, 1, 0);
	ck_assert(eval("time sun 03:00-03:01 Test/Slim", &s));
	s.now = utc(2026, 10, 25, 1, 30);
	ck_assert(eval("time sun 02:30-02:31 Test/Slim", &s));
	s.now = utc(2026, 10, 25, 0, 30);
	ck_assert(eval("time sun 02:30-02:31 Test/Slim", &s));
	/* a version 1 file: 32-bit times, no footer; type 0 before the first transition */
	{
		unsigned char v1[128];
		size_t n = 44;

		memset(v1, 0, sizeof(v1));
		memcpy(v1, "TZif", 4);
		put32(v1 + 20 + 3 * 4, 1); /* timecnt */
		put32(v1 + 20 + 4 * 4, 2); /* typecnt */
		put32(v1 + 20 + 5 * 4, 8); /* charcnt */
		put32(v1 + n, 1000000000);
		n += 4;
		v1[n++] = 1;
		put32(v1 + n, 0);
		n += 6;
		put32(v1 + n, 5400);
		v1[n + 5] = 4;
		n += 6;
		memcpy(v1 + n, "AAA\0BBB", 8);
		n += 8;
		unit_write("Test/V1", (const char *)v1, n);
		s.now = 999999999;
		ck_assert(eval("time * 01:46-01:47 Test/V1", &s)); /* 2001-09-09 01:46:39Z */
		s.now = 1000000000;
		ck_assert(eval("time * 03:16-03:17 Test/V1", &s)); /* +1:30 */
		s.now = 2000000000;
		ck_assert(eval("time * 05:03-05:04 Test/V1", &s)); /* 2033-05-18 03:33:20Z */
	}
	/* truncated or foreign files are refused */
	unit_write("Test/Short", (const char *)buf, 50);
	unit_write("Test/Text", "hello, world, this is not a zone file at all, no.\n", 50);
	free(compile_err("time * 00:00-01:00 Test/Short"));
	free(compile_err("time * 00:00-01:00 Test/Text"));
	unsetenv("TZDIR");
}
END_TEST

START_TEST(test_explain)
{
	struct rules_subject s = subj_default();
	struct rules_rule *r = compile_ok("method GET !src 10.0.0.0/8 ua ~ \"cu\\\"rl\" all");
	struct rules_explain why = {99, NULL};

	ck_assert_uint_eq(rules_rule_count(r), 4);
	ck_assert_str_eq(rules_rule_text(r, 0), "method GET");
	ck_assert_str_eq(rules_rule_text(r, 1), "!src 10.0.0.0/8");
	ck_assert_str_eq(rules_rule_text(r, 2), "ua ~ \"cu\\\"rl\"");
	ck_assert_str_eq(rules_rule_text(r, 3), "all");
	ck_assert_int_eq(rules_eval(r, &s, scratch, &why), RULES_NOMATCH);
	ck_assert_uint_eq(why.index, 2);
	ck_assert_str_eq(why.text, "ua ~ \"cu\\\"rl\"");
	rules_rule_free(r);
	r = compile_ok("! ua ~* mozilla");
	ck_assert_str_eq(rules_rule_text(r, 0), "!ua ~* \"mozilla\"");
	ck_assert_int_eq(rules_eval(r, &s, scratch, &why), RULES_NOMATCH);
	ck_assert_uint_eq(why.index, 0);
	rules_rule_free(r);
	/* a word ending in '!' keeps its blank: the text compiles back to the same matcher */
	r = compile_ok("!arg a! ~ x header ! ~ y");
	ck_assert_str_eq(rules_rule_text(r, 0), "!arg a! ~ \"x\"");
	ck_assert_str_eq(rules_rule_text(r, 1), "header ! ~ \"y\"");
	rules_rule_free(r);
	/* a name that looks like an operator is quoted, the operator after it is not */
	r = compile_ok("arg ~ ~ . !header ~* ~* x");
	ck_assert_str_eq(rules_rule_text(r, 0), "arg \"~\" ~ \".\"");
	ck_assert_str_eq(rules_rule_text(r, 1), "!header \"~*\" ~* \"x\"");
	rules_rule_free(r);
}
END_TEST

START_TEST(test_parse_errors)
{
	static const struct {
		const char *rule, *want;
	} rows[] = {
	        {"src 10.0.0.0/8 uaa x", "policy.conf:12:16: unknown matcher \"uaa\""},
	        {"ua ~ in blocked", "policy.conf:12:9: set \"blocked\" is not defined"},
	        {"src 10.0.0.0/33", "policy.conf:12:5: bad CIDR \"10.0.0.0/33\""},
	        {"src 10.0.0.300", "policy.conf:12:5: bad address \"10.0.0.300\""},
	        {"url ~ \"(abc\"", "policy.conf:12:7: regex error at offset 4: missing closing "
	                           "parenthesis"},
	        {"port 80 ua curl", "policy.conf:12:12: expected \"~\" or \"~*\" after \"ua\", "
	                            "found \"curl\""},
	        {"  src", "policy.conf:12:3: missing an address, CIDR or \"in SET\" after \"src\""},
	        {"all !", "policy.conf:12:5: missing matcher after \"!\""},
	        {"port 0-99999", "policy.conf:12:6: bad port \"0-99999\""},
	        {"port 90-80", "policy.conf:12:6: bad port \"90-80\""},
	        {"time mon-fry 09:00-17:00", "policy.conf:12:6: bad days \"mon-fry\""},
	        {"time * 9:00-25:00", "policy.conf:12:8: bad time window \"9:00-25:00\""},
	        {"time * 09:00-09:00 UTC", "policy.conf:12:8: empty time window \"09:00-09:00\""},
	        {"time * 09:00-10:00 Mars/Olympus",
	         "policy.conf:12:20: unknown time zone \"Mars/Olympus\""},
	        {"date 2026-02-30", "policy.conf:12:6: bad date \"2026-02-30\""},
	        {"dst b\xc3\xbc"
	         "cher.de",
	         "policy.conf:12:5: bad host \"b\xc3\xbc"
	         "cher.de\": non-ASCII domain name (write IDNs in punycode, xn--...)"},
	        {"dst *.", "policy.conf:12:5: bad host \"*.\""},
	        {"\"all\"", "policy.conf:12:1: unknown matcher \"all\""},
	        {"ua ~ \"x", "policy.conf:12:6: unterminated quoted string"},
	        {"user in nets", "policy.conf:12:9: set \"nets\" is a cidrs set, which \"user\" "
	                         "cannot use"},
	        {"url ~* in rx", "policy.conf:12:5: \"~* in\" is not supported: use (?i) in the "
	                         "set's patterns"},
	        {"header X ~ in rx", "policy.conf:12:12: \"header\" cannot take a set"},
	        {"", "policy.conf:12: empty rule"},
	};
	static const char *const nets[] = {"10.0.0.0/8"};
	static const char *const rx[] = {"a"};

	define(RULES_SET_CIDRS, "nets", nets, 1);
	define(RULES_SET_REGEXES, "rx", rx, 1);
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char *err = compile_err(rows[i].rule);

		ck_assert_msg(strcmp(err, rows[i].want) == 0, "`%s`: got \"%s\", want \"%s\"",
		              rows[i].rule, err, rows[i].want);
		free(err);
	}
}
END_TEST

/* The token entry point: positions come from the tokens, quoted words are not keywords. */
START_TEST(test_tokens)
{
	struct rules_tok t[] = {{"header", 0, 7, 3},
	                        {"X-A", 0, 7, 10},
	                        {"~", 0, 7, 14},
	                        {"~", 1, 7, 16},
	                        {"bogus", 0, 8, 1}};
	struct rules_subject s = subj_default();
	struct rules_header h[] = {HDR("x-a", "a~b")};
	struct rules_rule *r;
	char *err = NULL;

	s.headers = h;
	s.nheaders = 1;
	r = rules_compile(ctx, "f.conf", t, 4, &err);
	ck_assert_msg(r != NULL, "%s", err);
	ck_assert_int_eq(rules_eval(r, &s, scratch, NULL), RULES_MATCH);
	rules_rule_free(r);
	ck_assert(rules_compile(ctx, "f.conf", t, 5, &err) == NULL);
	ck_assert_str_eq(err, "f.conf:8:1: unknown matcher \"bogus\"");
	free(err);
}
END_TEST

START_TEST(test_normalize)
{
	static const struct {
		const char *in, *out; /* out NULL: error */
	} paths[] = {
	        {"/a/%2e%2e/admin", "/admin"},
	        {"/a/%2E%2E/admin", "/admin"},
	        {"//admin", "/admin"},
	        {"/./admin", "/admin"},
	        {"/ADMIN", "/ADMIN"},
	        {"/%41", "/A"},
	        {"/%7e%5F%2D%2e", "/~_-."},
	        {"/a%2Fb", "/a%2Fb"},
	        {"/a%2fb", "/a%2Fb"},
	        {"/a%2f..%2fb", "/a%2F..%2Fb"}, /* an encoded slash is not a separator */
	        {"/a/b/../c", "/a/c"},
	        {"a/b/../c", "/a/c"},
	        {"/a/b/..", "/a/"},
	        {"/a/..", "/"},
	        {"/..", "/"},
	        {"/../../x", "/x"},
	        {"/a/.", "/a/"},
	        {"/a/./b/", "/a/b/"},
	        {"/a//b///c", "/a/b/c"},
	        {"/a/.%2e/b", "/b"},
	        {"/a/...", "/a/..."},
	        {"/a/..b", "/a/..b"},
	        {"", "/"},
	        {"/", "/"},
	        {"/%zz", NULL},
	        {"/%4", NULL},
	        {"/%", NULL},
	        {"/%c3%a9", "/%C3%A9"},
	        {"/p?q=%2e%2e/../x&y=%7a%zz", "/p?q=%2E%2E/../x&y=%7A%zz"},
	        {"/a/../b?x", "/b?x"},
	        {"?x", "/?x"},
	};
	static const struct {
		const char *in, *out;
	} urls[] = {
	        {"HTTP://WWW.Example.COM:80/a/%2e%2e/b", "http://www.example.com/b"},
	        {"https://Example.com.:443//x", "https://example.com/x"},
	        {"https://example.com:80/", "https://example.com:80/"},
	        {"http://example.com:443/", "http://example.com:443/"},
	        {"http://example.com:8080", "http://example.com:8080/"},
	        {"http://[2001:DB8::1]:80/a?b=%2f", "http://[2001:db8::1]/a?b=%2F"},
	        {"http://[::1]/x", "http://[::1]/x"},
	        {"http://h:/x", "http://h/x"},
	        {"http://h?q", "http://h/?q"},
	        {"nourl", NULL},
	        {"http://h/%zz", NULL},
	};
	char out[256];

	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		long n = rules_path_normalize(paths[i].in, strlen(paths[i].in), out, sizeof(out));

		if (paths[i].out == NULL) {
			ck_assert_msg(n == -1, "%s: expected an error", paths[i].in);
			continue;
		}
		ck_assert_msg(n >= 0, "%s: error", paths[i].in);
		out[n] = '\0';
		ck_assert_msg(strcmp(out, paths[i].out) == 0, "%s: got %s, want %s", paths[i].in,
		              out, paths[i].out);
		/* idempotent, and cap = len + 1 is enough */
		{
			char again[256];
			long m = rules_path_normalize(out, (size_t)n, again, (size_t)n + 1);

			ck_assert_int_eq(m, n);
			ck_assert(memcmp(again, out, (size_t)n) == 0);
			ck_assert_int_eq(rules_path_normalize(paths[i].in, strlen(paths[i].in),
			                                      again, strlen(paths[i].in) + 1),
			                 n);
		}
	}
	for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
		long n = rules_url_normalize(urls[i].in, strlen(urls[i].in), out, sizeof(out));

		if (urls[i].out == NULL) {
			ck_assert_msg(n == -1, "%s: expected an error", urls[i].in);
			continue;
		}
		ck_assert_msg(n >= 0, "%s: error", urls[i].in);
		out[n] = '\0';
		ck_assert_msg(strcmp(out, urls[i].out) == 0, "%s: got %s, want %s", urls[i].in, out,
		              urls[i].out);
	}
	ck_assert_int_eq(rules_path_normalize("/abc", 4, out, 4), -1);
}
END_TEST

/* A rule is matched against normalized paths: encodings cannot slip past it. */
START_TEST(test_normalized_match)
{
	static const char *const attempts[] = {"/a/%2e%2e/admin", "//admin",      "/./admin",
	                                       "/%61dmin",        "/x/../admin/", "/ADMIN"};
	struct rules_subject s = subj_default();
	char out[64];

	for (size_t i = 0; i < sizeof(attempts) / sizeof(attempts[0]); i++) {
		long n = rules_path_normalize(attempts[i], strlen(attempts[i]), out, sizeof(out));

		ck_assert(n > 0);
		s.path = out;
		s.path_len = (size_t)n;
		ck_assert_msg(eval("path ~* ^/admin", &s), "%s", attempts[i]);
		ck_assert_msg(eval("url ~* ^http://www\\.example\\.com/admin", &s), "%s",
		              attempts[i]);
	}
}
END_TEST

START_TEST(test_url_port)
{
	struct rules_subject s = subj_default();

	s.port = 8080;
	ck_assert(eval("url ~ ^http://www\\.example\\.com:8080/docs/", &s));
	s.port = 1;
	ck_assert(eval("url ~ ^http://www\\.example\\.com:1/docs/", &s));
	s.port = 10;
	ck_assert(eval("url ~ ^http://www\\.example\\.com:10/docs/", &s));
	s.port = 65535;
	ck_assert(eval("url ~ ^http://www\\.example\\.com:65535/docs/", &s));
	s.port = 443; /* not https's default for http */
	ck_assert(eval("url ~ ^http://www\\.example\\.com:443/docs/", &s));
	s.scheme = "https";
	s.scheme_len = 5;
	s.port = 443;
	ck_assert(eval("url ~ ^https://www\\.example\\.com/docs/", &s));
	/* a long URL grows the scratch buffer */
	{
		static char path[20000];

		memset(path, 'x', sizeof(path) - 1);
		path[0] = '/';
		s.path = path;
		s.path_len = sizeof(path) - 1;
		ck_assert(eval("url ~ x{19000}\\?a=1", &s));
	}
}
END_TEST

/* xorshift32: the same pseudo-random sequence on every run */
static uint32_t
rnd(uint32_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 17;
	*x ^= *x << 5;
	return *x;
}

/*
 * Random rules from the language's own words: every one compiles or fails with a
 * "policy.conf:12:" message, and every compiled one evaluates (run under ASan in CI).
 */
START_TEST(test_random_rules)
{
	static const char *const words[] = {"src",
	                                    "dst",
	                                    "port",
	                                    "method",
	                                    "url",
	                                    "path",
	                                    "ua",
	                                    "header",
	                                    "cookie",
	                                    "arg",
	                                    "user",
	                                    "time",
	                                    "date",
	                                    "all",
	                                    "!",
	                                    "~",
	                                    "~*",
	                                    "in",
	                                    "nets",
	                                    "doms",
	                                    "rx",
	                                    "u",
	                                    "hol",
	                                    "10.0.0.0/8",
	                                    "::/0",
	                                    "*.example.com",
	                                    ".example.com",
	                                    "example.com",
	                                    "80",
	                                    "1-1024",
	                                    "GET",
	                                    "^/",
	                                    "(",
	                                    "a+",
	                                    "sid",
	                                    "mon-fri",
	                                    "*",
	                                    "22:00-06:00",
	                                    "UTC",
	                                    "Europe/Berlin",
	                                    "2026-11-23",
	                                    "2026-01-01..2026-12-31",
	                                    "\"q\"",
	                                    "!ua",
	                                    "x",
	                                    "192.0.2.10"};
	static const char *const nets[] = {"10.0.0.0/8"};
	static const char *const doms[] = {".example.com"};
	static const char *const rx[] = {"a", "b"};
	static const char *const u[] = {"alice"};
	static const char *const hol[] = {"2026-11-23"};
	struct rules_subject s = subj_default();
	uint32_t x = 2463534242u;
	int compiled = 0;

	define(RULES_SET_CIDRS, "nets", nets, 1);
	define(RULES_SET_DOMAINS, "doms", doms, 1);
	define(RULES_SET_REGEXES, "rx", rx, 2);
	define(RULES_SET_USERS, "u", u, 1);
	define(RULES_SET_DATES, "hol", hol, 1);
	for (int i = 0; i < 3000; i++) {
		char text[512] = "";
		size_t n = 1 + rnd(&x) % 6;
		struct rules_rule *r;
		char *err = NULL;

		for (size_t k = 0; k < n; k++) {
			strcat(text, words[rnd(&x) % (sizeof(words) / sizeof(words[0]))]);
			strcat(text, " ");
		}
		r = rules_compile_str(ctx, "policy.conf", 12, text, &err);
		if (r == NULL) {
			ck_assert_msg(err != NULL && strncmp(err, "policy.conf:12", 14) == 0,
			              "`%s`: %s", text, err);
			free(err);
			continue;
		}
		compiled++;
		ck_assert(err == NULL);
		(void)rules_eval(r, &s, scratch, NULL);
		rules_rule_free(r);
	}
	ck_assert_int_gt(compiled, 50);
}
END_TEST

/* Random paths: no crash, bounded output, idempotent, no dot segment or // survives. */
START_TEST(test_random_paths)
{
	static const char *const parts[] = {"/", "/", ".",   "..", "%2e", "%2E", "%2f", "%", "%4",
	                                    "a", "B", "%41", "?",  "&",   "%7e", "~",   "//"};
	uint32_t x = 88172645u;

	for (int i = 0; i < 20000; i++) {
		char in[128] = "", out[160], again[160];
		size_t n = rnd(&x) % 12;
		long len, len2;

		for (size_t k = 0; k < n; k++)
			strcat(in, parts[rnd(&x) % (sizeof(parts) / sizeof(parts[0]))]);
		len = rules_path_normalize(in, strlen(in), out, strlen(in) + 1);
		if (len == -1)
			continue;
		ck_assert(len > 0 && (size_t)len <= strlen(in) + 1);
		len2 = rules_path_normalize(out, (size_t)len, again, sizeof(again));
		ck_assert_msg(len2 == len && memcmp(out, again, (size_t)len) == 0,
		              "%s -> %.*s -> %.*s", in, (int)len, out, (int)len2, again);
		out[len] = '\0';
		{
			char *q = strchr(out, '?');

			if (q != NULL)
				*q = '\0';
			ck_assert_msg(out[0] == '/' && strstr(out, "//") == NULL &&
			                      strstr(out, "/./") == NULL &&
			                      strstr(out, "/../") == NULL,
			              "%s -> %s", in, out);
		}
	}
}
END_TEST

struct thread_arg {
	struct rules_rule *yes, *no;
	int ok;
};

static void *
eval_thread(void *p)
{
	struct thread_arg *a = p;
	struct rules_scratch *sc = rules_scratch_new();
	struct rules_subject s = subj_default();

	a->ok = sc != NULL;
	for (int i = 0; i < 20000 && a->ok; i++)
		a->ok = rules_eval(a->yes, &s, sc, NULL) == RULES_MATCH &&
		        rules_eval(a->no, &s, sc, NULL) == RULES_NOMATCH;
	rules_scratch_free(sc);
	return NULL;
}

/* One compiled rule, four threads, a scratch each. */
START_TEST(test_threads)
{
	static const char *const rxs[] = {"^curl/", "(?i)mozilla"};
	struct thread_arg a[4];
	pthread_t t[4];

	struct rules_rule *yes, *no;

	define(RULES_SET_REGEXES, "rxs", rxs, 2);
	yes = compile_ok("ua ~ in rxs url ~* ^HTTP://WWW\\. cookie sid ~ ^abc");
	no = compile_ok("ua ~ in rxs path ~ ^/admin");
	for (int i = 0; i < 4; i++) {
		a[i].yes = yes;
		a[i].no = no;
		ck_assert_int_eq(pthread_create(&t[i], NULL, eval_thread, &a[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		ck_assert_int_eq(pthread_join(t[i], NULL), 0);
		ck_assert(a[i].ok);
	}
	rules_rule_free(yes);
	rules_rule_free(no);
}
END_TEST

static Suite *
rules_suite(void)
{
	Suite *s = suite_create("rules");
	TCase *tc = tcase_create("rules");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_matchers);
	tcase_add_test(tc, test_absent);
	tcase_add_test(tc, test_cidr);
	tcase_add_test(tc, test_uses_dst);
	tcase_add_test(tc, test_sockaddr);
	tcase_add_test(tc, test_cidr_set);
	tcase_add_test(tc, test_domains);
	tcase_add_test(tc, test_domain_set);
	tcase_add_test(tc, test_domain_file_100k);
	tcase_add_test(tc, test_set_files);
	tcase_add_test(tc, test_set_errors);
	tcase_add_test(tc, test_regex_set_groups);
	tcase_add_test(tc, test_regex_set_1000);
	tcase_add_test(tc, test_regex_set_mixed);
	tcase_add_test(tc, test_literal_extraction);
	tcase_add_test(tc, test_literal_random);
	tcase_add_test(tc, test_prefilter_equivalence);
	tcase_add_test(tc, test_prefilter_single);
	tcase_add_test(tc, test_prefilter_caseless);
	tcase_add_test(tc, test_prefilter_extremes);
	tcase_add_test(tc, test_prefilter_many_hits);
	tcase_add_test(tc, test_regex_limit);
	tcase_add_test(tc, test_time_windows);
	tcase_add_test(tc, test_dates);
	tcase_add_test(tc, test_zones);
	tcase_add_test(tc, test_zone_slim);
	tcase_add_test(tc, test_explain);
	tcase_add_test(tc, test_parse_errors);
	tcase_add_test(tc, test_tokens);
	tcase_add_test(tc, test_normalize);
	tcase_add_test(tc, test_normalized_match);
	tcase_add_test(tc, test_url_port);
	tcase_add_test(tc, test_threads);
	tcase_add_test(tc, test_random_rules);
	tcase_add_test(tc, test_random_paths);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return unit_main("test_rules", rules_suite());
}
