/*
 * test_http.c - unit tests of the HTTP/1.1 parser (proxyd/http.c).
 *
 * Most cases are tables run with tcase_add_loop_test, one row per case, so a failure
 * names the row. Every accepted and rejected request is also fed byte by byte, since the
 * proxy re-parses its buffer after each read and must give the same answer.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

#define R(s)      s, sizeof(s) - 1
#define NELEMS(a) (sizeof(a) / sizeof((a)[0]))
#define HOST      "Host: a\r\n"
#define GET11     "GET / HTTP/1.1\r\n"

static const struct http_limits test_lim = {1024, 256, 16};
static const struct http_limits small_lim = {64, 16, 2};

static int
slice_is(struct http_slice s, const char *want)
{
	size_t n = strlen(want);

	return s.len == n && (n == 0 || memcmp(s.p, want, n) == 0);
}

/* ------------------------------------------------------------------------------------ */
/* Requests that parse. */

struct req_ok {
	const char *name;
	const char *raw;
	size_t len;
	enum http_method method;
	enum http_target_form form;
	const char *host;
	unsigned port;
	const char *path;
	int minor;
	unsigned flags;
	long long cl;
};

static const struct req_ok req_ok_cases[] = {
        {"origin GET", R("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"), HTTP_M_GET,
         HTTP_TARGET_ORIGIN, "example.com", 0, "/", 1, 0, -1},
        {"origin with query and Host port",
         R("GET /a/b?c=d&e HTTP/1.1\r\nHost: example.com:8080\r\n\r\n"), HTTP_M_GET,
         HTTP_TARGET_ORIGIN, "example.com", 8080, "/a/b?c=d&e", 1, 0, -1},
        {"HTTP/1.0 without Host", R("GET /x HTTP/1.0\r\n\r\n"), HTTP_M_GET, HTTP_TARGET_ORIGIN, "",
         0, "/x", 0, 0, -1},
        {"HTTP/1.0 with Host", R("GET /x HTTP/1.0\r\nHost: h\r\n\r\n"), HTTP_M_GET,
         HTTP_TARGET_ORIGIN, "h", 0, "/x", 0, 0, -1},
        {"origin double slash", R("GET //x HTTP/1.1\r\n" HOST "\r\n"), HTTP_M_GET,
         HTTP_TARGET_ORIGIN, "a", 0, "//x", 1, 0, -1},
        {"origin all visible ASCII but #",
         R("GET /!$&'()*+,;=:@-._~%20?/?\"<>\\^`{|} HTTP/1.1\r\n" HOST "\r\n"), HTTP_M_GET,
         HTTP_TARGET_ORIGIN, "a", 0, "/!$&'()*+,;=:@-._~%20?/?\"<>\\^`{|}", 1, 0, -1},
        {"absolute http", R("GET http://example.com/x?y HTTP/1.1\r\nHost: example.com\r\n\r\n"),
         HTTP_M_GET, HTTP_TARGET_ABSOLUTE, "example.com", 0, "/x?y", 1, 0, -1},
        {"absolute HTTPS with port, case-insensitive Host",
         R("GET HTTPS://Example.COM:8443/ HTTP/1.1\r\nHost: example.com:8443\r\n\r\n"), HTTP_M_GET,
         HTTP_TARGET_ABSOLUTE, "Example.COM", 8443, "/", 1, 0, -1},
        {"absolute empty path", R("GET http://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n"),
         HTTP_M_GET, HTTP_TARGET_ABSOLUTE, "example.com", 0, "/", 1, 0, -1},
        {"absolute default port http",
         R("GET http://example.com/ HTTP/1.1\r\nHost: example.com:80\r\n\r\n"), HTTP_M_GET,
         HTTP_TARGET_ABSOLUTE, "example.com", 0, "/", 1, 0, -1},
        {"absolute default port https",
         R("GET https://example.com:443/ HTTP/1.1\r\nHost: example.com\r\n\r\n"), HTTP_M_GET,
         HTTP_TARGET_ABSOLUTE, "example.com", 443, "/", 1, 0, -1},
        {"absolute other host", R("GET http://example.com/ HTTP/1.1\r\nHost: other.com\r\n\r\n"),
         HTTP_M_GET, HTTP_TARGET_ABSOLUTE, "example.com", 0, "/", 1, HTTP_F_HOST_MISMATCH, -1},
        {"absolute other port",
         R("GET http://example.com/ HTTP/1.1\r\nHost: example.com:8080\r\n\r\n"), HTTP_M_GET,
         HTTP_TARGET_ABSOLUTE, "example.com", 0, "/", 1, HTTP_F_HOST_MISMATCH, -1},
        {"absolute http vs Host :443",
         R("GET http://example.com/ HTTP/1.1\r\nHost: example.com:443\r\n\r\n"), HTTP_M_GET,
         HTTP_TARGET_ABSOLUTE, "example.com", 0, "/", 1, HTTP_F_HOST_MISMATCH, -1},
        {"absolute empty Host", R("GET http://example.com/ HTTP/1.1\r\nHost:\r\n\r\n"), HTTP_M_GET,
         HTTP_TARGET_ABSOLUTE, "example.com", 0, "/", 1, HTTP_F_HOST_MISMATCH, -1},
        {"absolute HTTP/1.0 no Host", R("GET http://example.com/p HTTP/1.0\r\n\r\n"), HTTP_M_GET,
         HTTP_TARGET_ABSOLUTE, "example.com", 0, "/p", 0, 0, -1},
        {"absolute IPv6",
         R("GET http://[2001:db8::1]:81/ HTTP/1.1\r\nHost: [2001:DB8::1]:81\r\n\r\n"), HTTP_M_GET,
         HTTP_TARGET_ABSOLUTE, "[2001:db8::1]", 81, "/", 1, 0, -1},
        {"absolute @ in path is not userinfo", R("GET http://a/x@y HTTP/1.1\r\n" HOST "\r\n"),
         HTTP_M_GET, HTTP_TARGET_ABSOLUTE, "a", 0, "/x@y", 1, 0, -1},
        {"CONNECT reg-name", R("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"),
         HTTP_M_CONNECT, HTTP_TARGET_AUTHORITY, "example.com", 443, "", 1, 0, -1},
        {"CONNECT IPv6", R("CONNECT [::1]:443 HTTP/1.1\r\nHost: [::1]:443\r\n\r\n"), HTTP_M_CONNECT,
         HTTP_TARGET_AUTHORITY, "[::1]", 443, "", 1, 0, -1},
        {"CONNECT IPv4", R("CONNECT 192.0.2.1:8443 HTTP/1.1\r\nHost: 192.0.2.1:8443\r\n\r\n"),
         HTTP_M_CONNECT, HTTP_TARGET_AUTHORITY, "192.0.2.1", 8443, "", 1, 0, -1},
        {"CONNECT Host differs: target wins", R("CONNECT a:443 HTTP/1.1\r\nHost: b\r\n\r\n"),
         HTTP_M_CONNECT, HTTP_TARGET_AUTHORITY, "a", 443, "", 1, 0, -1},
        {"CONNECT Content-Length: 0 (no content)",
         R("CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\nContent-Length: 0\r\n\r\n"), HTTP_M_CONNECT,
         HTTP_TARGET_AUTHORITY, "a", 443, "", 1, HTTP_F_HAS_LENGTH, 0},
        {"OPTIONS asterisk", R("OPTIONS * HTTP/1.1\r\nHost: a:81\r\n\r\n"), HTTP_M_OPTIONS,
         HTTP_TARGET_ASTERISK, "a", 81, "*", 1, 0, -1},
        {"OPTIONS origin", R("OPTIONS /x HTTP/1.1\r\n" HOST "\r\n"), HTTP_M_OPTIONS,
         HTTP_TARGET_ORIGIN, "a", 0, "/x", 1, 0, -1},
        {"HEAD", R("HEAD / HTTP/1.1\r\n" HOST "\r\n"), HTTP_M_HEAD, HTTP_TARGET_ORIGIN, "a", 0, "/",
         1, 0, -1},
        {"POST", R("POST / HTTP/1.1\r\n" HOST "Content-Length: 5\r\n\r\n"), HTTP_M_POST,
         HTTP_TARGET_ORIGIN, "a", 0, "/", 1, HTTP_F_HAS_LENGTH, 5},
        {"PUT", R("PUT / HTTP/1.1\r\n" HOST "\r\n"), HTTP_M_PUT, HTTP_TARGET_ORIGIN, "a", 0, "/", 1,
         0, -1},
        {"DELETE", R("DELETE / HTTP/1.1\r\n" HOST "\r\n"), HTTP_M_DELETE, HTTP_TARGET_ORIGIN, "a",
         0, "/", 1, 0, -1},
        {"TRACE", R("TRACE / HTTP/1.1\r\n" HOST "\r\n"), HTTP_M_TRACE, HTTP_TARGET_ORIGIN, "a", 0,
         "/", 1, 0, -1},
        {"PATCH", R("PATCH / HTTP/1.1\r\n" HOST "\r\n"), HTTP_M_PATCH, HTTP_TARGET_ORIGIN, "a", 0,
         "/", 1, 0, -1},
        {"unknown method token", R("PROPFIND /x HTTP/1.1\r\n" HOST "\r\n"), HTTP_M_OTHER,
         HTTP_TARGET_ORIGIN, "a", 0, "/x", 1, 0, -1},
        {"lowercase method is another method", R("get / HTTP/1.1\r\n" HOST "\r\n"), HTTP_M_OTHER,
         HTTP_TARGET_ORIGIN, "a", 0, "/", 1, 0, -1},
        {"method with tchar punctuation", R("M-SEARCH! / HTTP/1.1\r\n" HOST "\r\n"), HTTP_M_OTHER,
         HTTP_TARGET_ORIGIN, "a", 0, "/", 1, 0, -1},
        {"one leading CRLF", R("\r\nGET / HTTP/1.1\r\n" HOST "\r\n"), HTTP_M_GET,
         HTTP_TARGET_ORIGIN, "a", 0, "/", 1, 0, -1},
        {"two leading CRLFs", R("\r\n\r\nGET / HTTP/1.1\r\n" HOST "\r\n"), HTTP_M_GET,
         HTTP_TARGET_ORIGIN, "a", 0, "/", 1, 0, -1},
        {"OWS and odd bytes in values",
         R(GET11 HOST
           "X-A:   v  \t\r\nX-B: caf\xc3\xa9\r\nX-C: a\tb  c\r\nX-D:\r\nX-E: \t \r\n\r\n"),
         HTTP_M_GET, HTTP_TARGET_ORIGIN, "a", 0, "/", 1, 0, -1},
        {"Content-Length 0", R(GET11 HOST "Content-Length: 0\r\n\r\n"), HTTP_M_GET,
         HTTP_TARGET_ORIGIN, "a", 0, "/", 1, HTTP_F_HAS_LENGTH, 0},
        {"Content-Length leading zeros and OWS", R(GET11 HOST "content-length:  007 \r\n\r\n"),
         HTTP_M_GET, HTTP_TARGET_ORIGIN, "a", 0, "/", 1, HTTP_F_HAS_LENGTH, 7},
        {"Content-Length 18 digits", R(GET11 HOST "Content-Length: 999999999999999999\r\n\r\n"),
         HTTP_M_GET, HTTP_TARGET_ORIGIN, "a", 0, "/", 1, HTTP_F_HAS_LENGTH, 999999999999999999LL},
        {"TE chunked", R(GET11 HOST "Transfer-Encoding: chunked\r\n\r\n"), HTTP_M_GET,
         HTTP_TARGET_ORIGIN, "a", 0, "/", 1, HTTP_F_CHUNKED, -1},
        {"TE CHUNKED any case", R(GET11 HOST "TRANSFER-encoding: ChUnKeD\r\n\r\n"), HTTP_M_GET,
         HTTP_TARGET_ORIGIN, "a", 0, "/", 1, HTTP_F_CHUNKED, -1},
        {"Connection close", R(GET11 HOST "Connection: close\r\n\r\n"), HTTP_M_GET,
         HTTP_TARGET_ORIGIN, "a", 0, "/", 1, HTTP_F_CONN_CLOSE, -1},
        {"Connection keep-alive", R("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"), HTTP_M_GET,
         HTTP_TARGET_ORIGIN, "", 0, "/", 0, HTTP_F_CONN_KEEPALIVE, -1},
        {"Connection list with empty elements",
         R(GET11 HOST "Connection: , close ,, keep-alive,\r\nConnection: TE\r\n\r\n"), HTTP_M_GET,
         HTTP_TARGET_ORIGIN, "a", 0, "/", 1, HTTP_F_CONN_CLOSE | HTTP_F_CONN_KEEPALIVE, -1},
        {"Upgrade", R(GET11 HOST "Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n"), HTTP_M_GET,
         HTTP_TARGET_ORIGIN, "a", 0, "/", 1, HTTP_F_CONN_UPGRADE | HTTP_F_HAS_UPGRADE, -1},
        {"Upgrade header alone", R(GET11 HOST "upgrade: h2c\r\n\r\n"), HTTP_M_GET,
         HTTP_TARGET_ORIGIN, "a", 0, "/", 1, HTTP_F_HAS_UPGRADE, -1},
        {"Expect 100-continue", R("PUT / HTTP/1.1\r\n" HOST "Expect: 100-Continue\r\n\r\n"),
         HTTP_M_PUT, HTTP_TARGET_ORIGIN, "a", 0, "/", 1, HTTP_F_EXPECT_100, -1},
        {"Expect ignored in HTTP/1.0", R("PUT / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n"),
         HTTP_M_PUT, HTTP_TARGET_ORIGIN, "", 0, "/", 0, 0, -1},
        {"Host IPv4 with port", R(GET11 "Host: 192.0.2.1:80\r\n\r\n"), HTTP_M_GET,
         HTTP_TARGET_ORIGIN, "192.0.2.1", 80, "/", 1, 0, -1},
        {"Host IPv6", R(GET11 "Host: [2001:db8::1]:8080\r\n\r\n"), HTTP_M_GET, HTTP_TARGET_ORIGIN,
         "[2001:db8::1]", 8080, "/", 1, 0, -1},
        {"Host IPv6 with IPv4 tail", R(GET11 "Host: [::ffff:192.0.2.1]\r\n\r\n"), HTTP_M_GET,
         HTTP_TARGET_ORIGIN, "[::ffff:192.0.2.1]", 0, "/", 1, 0, -1},
        {"Host IPv6 full", R(GET11 "Host: [1:2:3:4:5:6:7:8]\r\n\r\n"), HTTP_M_GET,
         HTTP_TARGET_ORIGIN, "[1:2:3:4:5:6:7:8]", 0, "/", 1, 0, -1},
        {"Host IPv6 trailing ::", R(GET11 "Host: [fe80::]\r\n\r\n"), HTTP_M_GET, HTTP_TARGET_ORIGIN,
         "[fe80::]", 0, "/", 1, 0, -1},
        {"Host reg-name sub-delims", R(GET11 "Host: my_host-1.example~!$&'()*+,;=\r\n\r\n"),
         HTTP_M_GET, HTTP_TARGET_ORIGIN, "my_host-1.example~!$&'()*+,;=", 0, "/", 1, 0, -1},
        {"Host port 65535", R(GET11 "Host: a:65535\r\n\r\n"), HTTP_M_GET, HTTP_TARGET_ORIGIN, "a",
         65535, "/", 1, 0, -1},
        {"Host port leading zero", R(GET11 "Host: a:080\r\n\r\n"), HTTP_M_GET, HTTP_TARGET_ORIGIN,
         "a", 80, "/", 1, 0, -1},
        {"headers in any case", R("GET / HTTP/1.1\r\nhOsT: a\r\n\r\n"), HTTP_M_GET,
         HTTP_TARGET_ORIGIN, "a", 0, "/", 1, 0, -1},
        {"16 headers (the limit)",
         R(GET11 HOST "A:1\r\nB:2\r\nC:3\r\nD:4\r\nE:5\r\nF:6\r\nG:7\r\nH:8\r\nI:9\r\nJ:10\r\n"
                      "K:11\r\nL:12\r\nM:13\r\nN:14\r\nO:15\r\n\r\n"),
         HTTP_M_GET, HTTP_TARGET_ORIGIN, "a", 0, "/", 1, 0, -1},
};

START_TEST(test_req_accept)
{
	const struct req_ok *c = &req_ok_cases[_i];
	struct http_msg m;
	int r;

	r = http_parse_request(c->raw, c->len, &test_lim, &m);
	ck_assert_msg(r == (int)c->len, "%s: returned %d (status %d: %s), want %zu", c->name, r,
	              m.status, m.error ? m.error : "-", c->len);
	ck_assert_msg(m.head_len == c->len, "%s: head_len", c->name);
	ck_assert_msg(m.method == c->method, "%s: method %d", c->name, (int)m.method);
	ck_assert_msg(m.form == c->form, "%s: form %d", c->name, (int)m.form);
	ck_assert_msg(slice_is(m.host, c->host), "%s: host '%.*s'", c->name, (int)m.host.len,
	              m.host.p ? m.host.p : "");
	ck_assert_msg(m.port == c->port, "%s: port %u", c->name, (unsigned)m.port);
	ck_assert_msg(slice_is(m.path, c->path), "%s: path '%.*s'", c->name, (int)m.path.len,
	              m.path.p ? m.path.p : "");
	ck_assert_msg(m.version_minor == c->minor, "%s: minor", c->name);
	ck_assert_msg(m.flags == c->flags, "%s: flags %#x, want %#x", c->name, m.flags, c->flags);
	ck_assert_msg(m.content_length == c->cl, "%s: content_length %lld", c->name,
	              (long long)m.content_length);
	ck_assert_msg(m.status_code == 0, "%s: status_code", c->name);
}
END_TEST

/* The same rows, fed one byte at a time: HTTP_AGAIN until the last byte. */
START_TEST(test_req_accept_bytewise)
{
	const struct req_ok *c = &req_ok_cases[_i];
	struct http_msg m, whole;
	size_t n;
	int r;

	for (n = 0; n < c->len; n++) {
		r = http_parse_request(c->raw, n, &test_lim, &m);
		ck_assert_msg(r == HTTP_AGAIN, "%s: prefix %zu returned %d (%s)", c->name, n, r,
		              r == HTTP_ERROR ? m.error : "-");
	}
	ck_assert_int_eq(http_parse_request(c->raw, c->len, &test_lim, &whole), (int)c->len);
	/* The head does not depend on what follows it. */
	{
		char buf[2048];

		ck_assert_uint_lt(c->len + 5, sizeof(buf));
		memcpy(buf, c->raw, c->len);
		memcpy(buf + c->len, "MORE!", 5);
		r = http_parse_request(buf, c->len + 5, &test_lim, &m);
		ck_assert_int_eq(r, (int)c->len);
		ck_assert_uint_eq(m.nheaders, whole.nheaders);
		ck_assert_uint_eq(m.flags, whole.flags);
		ck_assert_uint_eq(m.path.len, whole.path.len);
	}
}
END_TEST

/* ------------------------------------------------------------------------------------ */
/* Requests that are refused. */

struct req_bad {
	const char *name;
	const char *raw;
	size_t len;
	int status;
	const struct http_limits *lim; /* NULL: test_lim */
};

static const struct req_bad req_bad_cases[] = {
        /* request line */
        {"invalid method char", R("G@T / HTTP/1.1\r\n" HOST "\r\n"), 400, NULL},
        {"method with NUL", R("GE\0T / HTTP/1.1\r\n" HOST "\r\n"), 400, NULL},
        {"empty method", R(" / HTTP/1.1\r\n" HOST "\r\n"), 400, NULL},
        {"two SP after method", R("GET  / HTTP/1.1\r\n" HOST "\r\n"), 400, NULL},
        {"two SP after target", R("GET /  HTTP/1.1\r\n" HOST "\r\n"), 400, NULL},
        {"HTAB as separator", R("GET\t/ HTTP/1.1\r\n" HOST "\r\n"), 400, NULL},
        {"HTAB before version", R("GET /\tHTTP/1.1\r\n" HOST "\r\n"), 400, NULL},
        {"missing target", R("GET HTTP/1.1\r\n" HOST "\r\n"), 505, NULL},
        {"empty target", R("GET  HTTP/1.1\r\n" HOST "\r\n"), 400, NULL},
        {"missing version", R("GET / \r\n" HOST "\r\n"), 400, NULL},
        {"lowercase version", R("GET / http/1.1\r\n" HOST "\r\n"), 400, NULL},
        {"version HTTP/1.2", R("GET / HTTP/1.2\r\n" HOST "\r\n"), 505, NULL},
        {"version HTTP/2.0", R("GET / HTTP/2.0\r\n" HOST "\r\n"), 505, NULL},
        {"version HTTP/3.0", R("GET / HTTP/3.0\r\n" HOST "\r\n"), 505, NULL},
        {"version HTTP/0.9", R("GET / HTTP/0.9\r\n\r\n"), 505, NULL},
        {"HTTP/0.9 request", R("GET /\r\n"), 505, NULL},
        {"HTTP/2 preface", R("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), 505, NULL},
        {"version without minor", R("GET / HTTP/1\r\n" HOST "\r\n"), 400, NULL},
        {"version two-digit minor", R("GET / HTTP/1.10\r\n" HOST "\r\n"), 400, NULL},
        {"version two-digit major", R("GET / HTTP/11.1\r\n" HOST "\r\n"), 400, NULL},
        {"version then SP", R("GET / HTTP/1.1 \r\n" HOST "\r\n"), 400, NULL},
        {"version garbage", R("GET / HTTX/1.1\r\n" HOST "\r\n"), 400, NULL},
        {"request line bare LF", R("GET / HTTP/1.1\n" HOST "\r\n"), 400, NULL},
        {"request line bare CR", R("GET / HTTP/1.1\rHost: a\r\n\r\n"), 400, NULL},
        {"HTTP/0.9 bare CR", R("GET /\rX"), 400, NULL},
        {"bare LF in method", R("GET\n"), 400, NULL},
        {"bare LF before request line", R("\nGET / HTTP/1.1\r\n" HOST "\r\n"), 400, NULL},
        {"bare CR before request line", R("\rGET / HTTP/1.1\r\n" HOST "\r\n"), 400, NULL},
        {"SP before request line", R(" GET / HTTP/1.1\r\n" HOST "\r\n"), 400, NULL},
        /* request-target bytes */
        {"target CTL", R("GET /a\x01z HTTP/1.1\r\n" HOST "\r\n"), 400, NULL},
        {"target DEL", R("GET /a\x7fz HTTP/1.1\r\n" HOST "\r\n"), 400, NULL},
        {"target obs-text", R("GET /caf\xc3\xa9 HTTP/1.1\r\n" HOST "\r\n"), 400, NULL},
        {"target NUL", R("GET /a\0z HTTP/1.1\r\n" HOST "\r\n"), 400, NULL},
        {"target HTAB", R("GET /a\tz HTTP/1.1\r\n" HOST "\r\n"), 400, NULL},
        {"target bare LF", R("GET /a\n"), 400, NULL},
        {"target fragment", R("GET /a#frag HTTP/1.1\r\n" HOST "\r\n"), 400, NULL},
        {"target too long", R("GET /0123456789abcdef HTTP/1.1\r\n" HOST "\r\n"), 414, &small_lim},
        /* target forms */
        {"CONNECT origin-form", R("CONNECT / HTTP/1.1\r\n" HOST "\r\n"), 400, NULL},
        {"CONNECT without port", R("CONNECT a HTTP/1.1\r\n" HOST "\r\n"), 400, NULL},
        {"CONNECT empty port", R("CONNECT a: HTTP/1.1\r\n" HOST "\r\n"), 400, NULL},
        {"CONNECT port 0", R("CONNECT a:0 HTTP/1.1\r\n" HOST "\r\n"), 400, NULL},
        {"CONNECT port 65536", R("CONNECT a:65536 HTTP/1.1\r\n" HOST "\r\n"), 400, NULL},
        {"CONNECT absolute-form", R("CONNECT http://a:443/ HTTP/1.1\r\n" HOST "\r\n"), 400, NULL},
        {"CONNECT asterisk", R("CONNECT * HTTP/1.1\r\n" HOST "\r\n"), 400, NULL},
        {"CONNECT userinfo", R("CONNECT u@a:443 HTTP/1.1\r\n" HOST "\r\n"), 400, NULL},
        {"CONNECT path", R("CONNECT a:443/x HTTP/1.1\r\n" HOST "\r\n"), 400, NULL},
        {"CONNECT IPv6 without port", R("CONNECT [::1] HTTP/1.1\r\n" HOST "\r\n"), 400, NULL},
        /* RFC 9110 9.3.6: no content; a body would be tunnel data to another reader */
        {"CONNECT with Content-Length",
         R("CONNECT a:443 HTTP/1.1\r\n" HOST "Content-Length: 5\r\n\r\n"), 400, NULL},
        {"CONNECT chunked",
         R("CONNECT a:443 HTTP/1.1\r\n" HOST "Transfer-Encoding: chunked\r\n\r\n"), 400, NULL},
        {"authority-form with GET", R("GET a:443 HTTP/1.1\r\n" HOST "\r\n"), 400, NULL},
        {"asterisk with GET", R("GET * HTTP/1.1\r\n" HOST "\r\n"), 400, NULL},
        {"asterisk with unknown method", R("FOO * HTTP/1.1\r\n" HOST "\r\n"), 400, NULL},
        {"absolute ftp scheme", R("GET ftp://a/ HTTP/1.1\r\n" HOST "\r\n"), 400, NULL},
        {"absolute ws scheme", R("GET ws://a/ HTTP/1.1\r\n" HOST "\r\n"), 400, NULL},
        {"absolute scheme without //", R("GET http:a/ HTTP/1.1\r\n" HOST "\r\n"), 400, NULL},
        {"absolute userinfo", R("GET http://u:p@a/ HTTP/1.1\r\n" HOST "\r\n"), 400, NULL},
        {"absolute empty userinfo", R("GET http://@a/ HTTP/1.1\r\n" HOST "\r\n"), 400, NULL},
        {"absolute empty host", R("GET http:///x HTTP/1.1\r\n" HOST "\r\n"), 400, NULL},
        {"absolute nothing after scheme", R("GET http:// HTTP/1.1\r\n" HOST "\r\n"), 400, NULL},
        {"absolute port too big", R("GET http://a:99999/ HTTP/1.1\r\n" HOST "\r\n"), 400, NULL},
        {"absolute empty port", R("GET http://a:/ HTTP/1.1\r\n" HOST "\r\n"), 400, NULL},
        {"absolute bad IPv6", R("GET http://[::g]/ HTTP/1.1\r\n" HOST "\r\n"), 400, NULL},
        {"absolute query without path", R("GET http://a?q HTTP/1.1\r\n" HOST "\r\n"), 400, NULL},
        {"absolute pct-encoded host", R("GET http://%61/ HTTP/1.1\r\n" HOST "\r\n"), 400, NULL},
        /* field syntax */
        {"header bare LF", R(GET11 "Host: a\nX: b\r\n\r\n"), 400, NULL},
        {"header bare CR", R(GET11 "Host: a\rX: b\r\n\r\n"), 400, NULL},
        {"head ends with bare LF", R(GET11 HOST "\n"), 400, NULL},
        {"head ends with bare CR", R(GET11 HOST "\rX"), 400, NULL},
        {"bare LF line", R(GET11 HOST "\nX: b\r\n\r\n"), 400, NULL},
        {"obs-fold SP", R(GET11 HOST "X: b\r\n c\r\n\r\n"), 400, NULL},
        {"obs-fold HTAB", R(GET11 HOST "X: b\r\n\tc\r\n\r\n"), 400, NULL},
        {"whitespace before first field", R(GET11 " Host: a\r\n\r\n"), 400, NULL},
        {"SP before colon", R(GET11 "Host : a\r\n\r\n"), 400, NULL},
        {"HTAB before colon", R(GET11 HOST "X\t: b\r\n\r\n"), 400, NULL},
        {"empty field name", R(GET11 HOST ": b\r\n\r\n"), 400, NULL},
        {"quote in field name", R(GET11 HOST "X\"Y: b\r\n\r\n"), 400, NULL},
        {"@ in field name", R(GET11 HOST "X@Y: b\r\n\r\n"), 400, NULL},
        {"obs-text in field name", R(GET11 HOST "X\xc3\xa9: b\r\n\r\n"), 400, NULL},
        {"field without colon", R(GET11 HOST "Foo\r\n\r\n"), 400, NULL},
        {"NUL in value", R(GET11 HOST "X: a\0b\r\n\r\n"), 400, NULL},
        {"CTL in value", R(GET11 HOST "X: a\x01z\r\n\r\n"), 400, NULL},
        {"ESC in value", R(GET11 HOST "X: a\x1bz\r\n\r\n"), 400, NULL},
        {"DEL in value", R(GET11 HOST "X: a\x7fz\r\n\r\n"), 400, NULL},
        {"bare CR in value", R(GET11 HOST "X: a\rb\r\n\r\n"), 400, NULL},
        /* Content-Length */
        {"Content-Length twice, equal",
         R(GET11 HOST "Content-Length: 5\r\nContent-Length: 5\r\n\r\n"), 400, NULL},
        {"Content-Length twice, different",
         R(GET11 HOST "Content-Length: 5\r\ncontent-length: 6\r\n\r\n"), 400, NULL},
        {"Content-Length list", R(GET11 HOST "Content-Length: 5, 5\r\n\r\n"), 400, NULL},
        {"Content-Length plus", R(GET11 HOST "Content-Length: +5\r\n\r\n"), 400, NULL},
        {"Content-Length minus", R(GET11 HOST "Content-Length: -5\r\n\r\n"), 400, NULL},
        {"Content-Length empty", R(GET11 HOST "Content-Length:\r\n\r\n"), 400, NULL},
        {"Content-Length hex", R(GET11 HOST "Content-Length: 0x5\r\n\r\n"), 400, NULL},
        {"Content-Length decimal point", R(GET11 HOST "Content-Length: 5.0\r\n\r\n"), 400, NULL},
        {"Content-Length inner SP", R(GET11 HOST "Content-Length: 5 5\r\n\r\n"), 400, NULL},
        {"Content-Length 19 digits", R(GET11 HOST "Content-Length: 1000000000000000000\r\n\r\n"),
         400, NULL},
        {"Content-Length overflow", R(GET11 HOST "Content-Length: 99999999999999999999999\r\n\r\n"),
         400, NULL},
        /* Transfer-Encoding */
        {"TE gzip, chunked", R(GET11 HOST "Transfer-Encoding: gzip, chunked\r\n\r\n"), 501, NULL},
        {"TE unknown then chunked over two headers",
         R(GET11 HOST "Transfer-Encoding: foo\r\nTransfer-Encoding: chunked\r\n\r\n"), 501, NULL},
        {"TE gzip alone (unknown coding)", R(GET11 HOST "Transfer-Encoding: gzip\r\n\r\n"), 501,
         NULL},
        {"TE identity (unknown coding)", R(GET11 HOST "Transfer-Encoding: identity\r\n\r\n"), 501,
         NULL},
        {"TE chunked, gzip (chunked not final)",
         R(GET11 HOST "Transfer-Encoding: chunked, gzip\r\n\r\n"), 400, NULL},
        {"TE chunked, chunked", R(GET11 HOST "Transfer-Encoding: chunked, chunked\r\n\r\n"), 400,
         NULL},
        {"TE chunked twice over two headers",
         R(GET11 HOST "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"), 400,
         NULL},
        {"TE chunked, gzip", R(GET11 HOST "Transfer-Encoding: chunked, gzip\r\n\r\n"), 400, NULL},
        {"TE chunked then gzip header",
         R(GET11 HOST "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n"), 400, NULL},
        {"TE leading comma", R(GET11 HOST "Transfer-Encoding: , chunked\r\n\r\n"), 400, NULL},
        {"TE trailing comma", R(GET11 HOST "Transfer-Encoding: chunked,\r\n\r\n"), 400, NULL},
        {"TE empty element", R(GET11 HOST "Transfer-Encoding: gzip,,chunked\r\n\r\n"), 400, NULL},
        {"TE empty", R(GET11 HOST "Transfer-Encoding:\r\n\r\n"), 400, NULL},
        {"TE parameter", R(GET11 HOST "Transfer-Encoding: chunked;q=1\r\n\r\n"), 400, NULL},
        {"TE quoted", R(GET11 HOST "Transfer-Encoding: \"chunked\"\r\n\r\n"), 400, NULL},
        {"TE SP-separated", R(GET11 HOST "Transfer-Encoding: gzip chunked\r\n\r\n"), 400, NULL},
        {"TE then Content-Length",
         R(GET11 HOST "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"), 400, NULL},
        {"Content-Length then TE",
         R(GET11 HOST "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"), 400, NULL},
        {"TE in HTTP/1.0", R("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), 400, NULL},
        /* Host */
        {"Host missing", R("GET / HTTP/1.1\r\n\r\n"), 400, NULL},
        {"Host missing, absolute-form", R("GET http://a/ HTTP/1.1\r\n\r\n"), 400, NULL},
        {"Host missing, CONNECT", R("CONNECT a:443 HTTP/1.1\r\n\r\n"), 400, NULL},
        {"Host twice", R(GET11 "Host: a\r\nHost: b\r\n\r\n"), 400, NULL},
        {"Host twice, equal", R(GET11 "Host: a\r\nhost: a\r\n\r\n"), 400, NULL},
        {"Host twice in HTTP/1.0", R("GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n"), 400, NULL},
        {"Host empty, origin-form", R(GET11 "Host:\r\n\r\n"), 400, NULL},
        {"Host empty, CONNECT", R("CONNECT a:443 HTTP/1.1\r\nHost: \r\n\r\n"), 400, NULL},
        {"Host with SP", R(GET11 "Host: a b\r\n\r\n"), 400, NULL},
        {"Host list", R(GET11 "Host: a, b\r\n\r\n"), 400, NULL},
        {"Host port 0", R(GET11 "Host: a:0\r\n\r\n"), 400, NULL},
        {"Host port 65536", R(GET11 "Host: a:65536\r\n\r\n"), 400, NULL},
        {"Host port 6 digits", R(GET11 "Host: a:000080\r\n\r\n"), 400, NULL},
        {"Host empty port", R(GET11 "Host: a:\r\n\r\n"), 400, NULL},
        {"Host port junk", R(GET11 "Host: a:8x\r\n\r\n"), 400, NULL},
        {"Host only port", R(GET11 "Host: :80\r\n\r\n"), 400, NULL},
        {"Host userinfo", R(GET11 "Host: u@a\r\n\r\n"), 400, NULL},
        {"Host pct-encoded", R(GET11 "Host: %61\r\n\r\n"), 400, NULL},
        {"Host path", R(GET11 "Host: a/b\r\n\r\n"), 400, NULL},
        {"Host obs-text", R(GET11 "Host: caf\xc3\xa9\r\n\r\n"), 400, NULL},
        {"Host IPv6 unclosed", R(GET11 "Host: [::1\r\n\r\n"), 400, NULL},
        {"Host IPv6 bad digit", R(GET11 "Host: [zz::1]\r\n\r\n"), 400, NULL},
        {"Host IPv6 two ::", R(GET11 "Host: [1::2::3]\r\n\r\n"), 400, NULL},
        {"Host IPv6 too many groups", R(GET11 "Host: [1:2:3:4:5:6:7:8:9]\r\n\r\n"), 400, NULL},
        {"Host IPv6 too few groups", R(GET11 "Host: [1:2:3]\r\n\r\n"), 400, NULL},
        {"Host IPv6 group too long", R(GET11 "Host: [12345::1]\r\n\r\n"), 400, NULL},
        {"Host IPv6 zone id", R(GET11 "Host: [fe80::1%25eth0]\r\n\r\n"), 400, NULL},
        {"Host IPv6 empty", R(GET11 "Host: []\r\n\r\n"), 400, NULL},
        {"Host IPvFuture", R(GET11 "Host: [v1.x]\r\n\r\n"), 400, NULL},
        {"Host IPv6 bad IPv4 tail", R(GET11 "Host: [::1.2.3.256]\r\n\r\n"), 400, NULL},
        {"Host IPv6 junk after ]", R(GET11 "Host: [::1]x\r\n\r\n"), 400, NULL},
        {"Host invalid, absolute-form", R("GET http://a/ HTTP/1.1\r\nHost: a b\r\n\r\n"), 400,
         NULL},
        /* Expect, Connection */
        {"Expect other", R(GET11 HOST "Expect: 200-ok\r\n\r\n"), 417, NULL},
        {"Expect list", R(GET11 HOST "Expect: 100-continue, foo\r\n\r\n"), 417, NULL},
        {"Expect empty", R(GET11 HOST "Expect:\r\n\r\n"), 417, NULL},
        {"Connection not a token list", R(GET11 HOST "Connection: close x\r\n\r\n"), 400, NULL},
        {"Connection quoted", R(GET11 HOST "Connection: \"close\"\r\n\r\n"), 400, NULL},
        /* limits */
        {"too many headers", R(GET11 "Host: a\r\nA: 1\r\nB: 2\r\n\r\n"), 431, &small_lim},
        {"head too large",
         R(GET11 "Host: a\r\nA: 0123456789012345678901234567890123456789\r\n\r\n"), 431,
         &small_lim},
};

START_TEST(test_req_reject)
{
	const struct req_bad *c = &req_bad_cases[_i];
	const struct http_limits *lim = c->lim ? c->lim : &test_lim;
	struct http_msg m;
	int r;

	r = http_parse_request(c->raw, c->len, lim, &m);
	ck_assert_msg(r == HTTP_ERROR, "%s: returned %d, want HTTP_ERROR", c->name, r);
	ck_assert_msg(m.status == c->status, "%s: status %d (%s), want %d", c->name, m.status,
	              m.error, c->status);
	ck_assert_msg(m.error != NULL && m.error[0] != '\0', "%s: no reason", c->name);
}
END_TEST

/*
 * Byte by byte: never a success, and once a prefix is refused every longer prefix is
 * refused with the same status, ending with the row's status.
 */
START_TEST(test_req_reject_bytewise)
{
	const struct req_bad *c = &req_bad_cases[_i];
	const struct http_limits *lim = c->lim ? c->lim : &test_lim;
	struct http_msg m;
	int first = 0;
	size_t n;
	int r;

	for (n = 0; n <= c->len; n++) {
		r = http_parse_request(c->raw, n, lim, &m);
		ck_assert_msg(r == HTTP_AGAIN || r == HTTP_ERROR, "%s: prefix %zu returned %d",
		              c->name, n, r);
		if (r == HTTP_ERROR) {
			if (first == 0)
				first = m.status;
			ck_assert_msg(m.status == first, "%s: prefix %zu status %d after %d",
			              c->name, n, m.status, first);
		}
	}
	ck_assert_msg(first == c->status, "%s: status %d, want %d", c->name, first, c->status);
}
END_TEST

/* ------------------------------------------------------------------------------------ */
/* Request details. */

START_TEST(test_req_fields)
{
	static const char raw[] = "POST /up HTTP/1.1\r\n"
	                          "Host:  example.com \r\n"
	                          "X-A:   v  \t\r\n"
	                          "X-Empty:\r\n"
	                          "X-Tab: a\tb\r\n"
	                          "Content-Length: 3\r\n"
	                          "\r\n"
	                          "abc";
	struct http_msg m;
	const struct http_header *h;
	int r;

	r = http_parse_request(raw, sizeof(raw) - 1, &test_lim, &m);
	ck_assert_int_eq(r, (int)(sizeof(raw) - 1 - 3));
	ck_assert(slice_is(m.method_name, "POST"));
	ck_assert(slice_is(m.target, "/up"));
	ck_assert_uint_eq(m.nheaders, 5);
	ck_assert(slice_is(m.headers[0].name, "Host"));
	ck_assert(slice_is(m.headers[0].value, "example.com"));
	ck_assert(slice_is(m.host_header, "example.com"));
	ck_assert(m.host_header.p == m.headers[0].value.p);
	ck_assert(slice_is(m.headers[1].value, "v"));
	ck_assert(slice_is(m.headers[2].value, ""));
	ck_assert(slice_is(m.headers[3].value, "a\tb"));
	ck_assert(slice_is(m.scheme, ""));

	h = http_header_find(&m, "x-a");
	ck_assert_ptr_nonnull(h);
	ck_assert(h == &m.headers[1]);
	ck_assert_ptr_eq(http_header_find(&m, "CONTENT-LENGTH"), &m.headers[4]);
	ck_assert_ptr_null(http_header_find(&m, "X-Missing"));
	ck_assert_ptr_null(http_header_find(&m, "X-"));
	ck_assert_ptr_null(http_header_find(&m, "X-Emptyy"));
	ck_assert_int_eq(http_request_body(&m), HTTP_BODY_LENGTH);
}
END_TEST

START_TEST(test_req_absolute_fields)
{
	static const char raw[] = "GET hTTp://Example.com:8080/a?b HTTP/1.1\r\nHost: x\r\n\r\n";
	struct http_msg m;

	ck_assert_int_eq(http_parse_request(raw, sizeof(raw) - 1, &test_lim, &m),
	                 (int)(sizeof(raw) - 1));
	ck_assert(slice_is(m.scheme, "hTTp"));
	ck_assert(slice_is(m.target, "hTTp://Example.com:8080/a?b"));
	ck_assert(slice_is(m.host, "Example.com"));
	ck_assert_uint_eq(m.port, 8080);
	ck_assert(slice_is(m.path, "/a?b"));
	ck_assert(slice_is(m.host_header, "x"));
	ck_assert_uint_eq(m.flags, HTTP_F_HOST_MISMATCH);
}
END_TEST

START_TEST(test_req_no_host_header)
{
	struct http_msg m;

	ck_assert_int_gt(http_parse_request(R("GET / HTTP/1.0\r\n\r\n"), &test_lim, &m), 0);
	ck_assert_ptr_null(m.host_header.p);
	ck_assert_uint_eq(m.host_header.len, 0);
	/* Empty but present is told apart from absent by the pointer. */
	ck_assert_int_gt(
	        http_parse_request(R("GET http://a/ HTTP/1.1\r\nHost:\r\n\r\n"), &test_lim, &m), 0);
	ck_assert_ptr_nonnull(m.host_header.p);
	ck_assert_uint_eq(m.host_header.len, 0);
}
END_TEST

START_TEST(test_req_leading_crlf)
{
	static const char raw[] = "\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
	struct http_msg m;

	ck_assert_int_eq(http_parse_request(raw, sizeof(raw) - 1, &test_lim, &m),
	                 (int)(sizeof(raw) - 1));
	ck_assert_ptr_eq(m.method_name.p, raw + 6);
	/* Only CRLFs so far: wait. */
	ck_assert_int_eq(http_parse_request(raw, 6, &test_lim, &m), HTTP_AGAIN);
	ck_assert_int_eq(http_parse_request(raw, 5, &test_lim, &m), HTTP_AGAIN);
}
END_TEST

START_TEST(test_req_pipelined)
{
	static const char raw[] = "GET /one HTTP/1.1\r\nHost: a\r\n\r\n"
	                          "POST /two HTTP/1.1\r\nHost: b\r\nContent-Length: 2\r\n\r\nxy"
	                          "GET /three HTTP/1.0\r\n\r\n";
	struct http_msg m;
	size_t off = 0;
	int r;

	r = http_parse_request(raw, sizeof(raw) - 1, &test_lim, &m);
	ck_assert_int_eq(r, (int)strlen("GET /one HTTP/1.1\r\nHost: a\r\n\r\n"));
	ck_assert(slice_is(m.path, "/one"));
	ck_assert_int_eq(http_request_body(&m), HTTP_BODY_NONE);
	off += (size_t)r;

	r = http_parse_request(raw + off, sizeof(raw) - 1 - off, &test_lim, &m);
	ck_assert_int_gt(r, 0);
	ck_assert(slice_is(m.path, "/two"));
	ck_assert(slice_is(m.host, "b"));
	ck_assert_int_eq(http_request_body(&m), HTTP_BODY_LENGTH);
	off += (size_t)r + (size_t)m.content_length;

	r = http_parse_request(raw + off, sizeof(raw) - 1 - off, &test_lim, &m);
	ck_assert_int_eq(r, (int)(sizeof(raw) - 1 - off));
	ck_assert(slice_is(m.path, "/three"));
	ck_assert_int_eq(m.version_minor, 0);
}
END_TEST

/* ------------------------------------------------------------------------------------ */
/* Limits, and how early they are reported. */

static char bigbuf[70000];

/* Writes s at bigbuf[off] and returns the offset after it. */
static size_t
put(size_t off, const char *s)
{
	size_t n = strlen(s);

	ck_assert_uint_le(off + n, sizeof(bigbuf));
	memcpy(bigbuf + off, s, n);
	return off + n;
}

static size_t
put_fill(size_t off, int c, size_t n)
{
	ck_assert_uint_le(off + n, sizeof(bigbuf));
	memset(bigbuf + off, c, n);
	return off + n;
}

START_TEST(test_limit_target)
{
	struct http_msg m;
	size_t n;

	/* A target of exactly max_target bytes is fine. */
	n = put(0, "GET /");
	n = put_fill(n, 'a', test_lim.max_target - 1);
	n = put(n, " HTTP/1.1\r\nHost: a\r\n\r\n");
	ck_assert_int_eq(http_parse_request(bigbuf, n, &test_lim, &m), (int)n);
	ck_assert_uint_eq(m.target.len, test_lim.max_target);

	/* One more byte: 414, also while the request line is incomplete. */
	n = put(0, "GET /");
	n = put_fill(n, 'a', test_lim.max_target - 1);
	ck_assert_int_eq(http_parse_request(bigbuf, n, &test_lim, &m), HTTP_AGAIN);
	n = put_fill(n, 'a', 1);
	ck_assert_int_eq(http_parse_request(bigbuf, n, &test_lim, &m), HTTP_ERROR);
	ck_assert_int_eq(m.status, 414);
	n = put(n, " HTTP/1.1\r\nHost: a\r\n\r\n");
	ck_assert_int_eq(http_parse_request(bigbuf, n, &test_lim, &m), HTTP_ERROR);
	ck_assert_int_eq(m.status, 414);
}
END_TEST

START_TEST(test_limit_head)
{
	struct http_msg m;
	size_t n, pad;

	/* A head of exactly max_head bytes is accepted, one byte more is 431. */
	n = put(0, "GET / HTTP/1.1\r\nHost: a\r\nX: ");
	pad = test_lim.max_head - n - 4;
	n = put_fill(n, 'v', pad);
	n = put(n, "\r\n\r\n");
	ck_assert_uint_eq(n, test_lim.max_head);
	ck_assert_int_eq(http_parse_request(bigbuf, n, &test_lim, &m), (int)n);

	n = put(0, "GET / HTTP/1.1\r\nHost: a\r\nX: ");
	n = put_fill(n, 'v', pad + 1);
	n = put(n, "\r\n\r\n");
	ck_assert_int_eq(http_parse_request(bigbuf, n, &test_lim, &m), HTTP_ERROR);
	ck_assert_int_eq(m.status, 431);

	/* Early: the end of the head has not arrived, but it cannot fit any more. */
	n = put(0, "GET / HTTP/1.1\r\nHost: a\r\nX: ");
	n = put_fill(n, 'v', test_lim.max_head - n);
	ck_assert_int_eq(http_parse_request(bigbuf, n, &test_lim, &m), HTTP_AGAIN);
	n = put_fill(n, 'v', 1);
	ck_assert_int_eq(http_parse_request(bigbuf, n, &test_lim, &m), HTTP_ERROR);
	ck_assert_int_eq(m.status, 431);

	/* Leading empty lines count: a stream of CRLFs cannot grow the buffer forever. */
	n = 0;
	while (n < test_lim.max_head + 2)
		n = put(n, "\r\n");
	ck_assert_int_eq(http_parse_request(bigbuf, n, &test_lim, &m), HTTP_ERROR);
	ck_assert_int_eq(m.status, 431);
}
END_TEST

START_TEST(test_limit_request_line)
{
	struct http_msg m;
	size_t n;

	/* An incomplete request line longer than max_target and than max_head: 414. */
	n = put_fill(0, 'A', test_lim.max_head + 1);
	ck_assert_int_eq(http_parse_request(bigbuf, n, &test_lim, &m), HTTP_ERROR);
	ck_assert_int_eq(m.status, 414);
	/* Below max_head it may still become a (strange) valid request. */
	ck_assert_int_eq(http_parse_request(bigbuf, test_lim.max_head, &test_lim, &m), HTTP_AGAIN);

	/* A request line that fits max_target but not max_head: 431. */
	{
		const struct http_limits lim = {32, 256, 16};

		n = put(0, "GET /");
		n = put_fill(n, 'a', 40);
		ck_assert_int_eq(http_parse_request(bigbuf, n, &lim, &m), HTTP_ERROR);
		ck_assert_int_eq(m.status, 431);
	}
}
END_TEST

START_TEST(test_limit_headers)
{
	struct http_msg m;
	size_t n;
	int i;
	char line[32];

	/* max_headers fields are fine; the next one is refused as soon as it starts. */
	n = put(0, "GET / HTTP/1.1\r\nHost: a\r\n");
	for (i = 1; i < (int)test_lim.max_headers; i++) {
		snprintf(line, sizeof(line), "X-%d: %d\r\n", i, i);
		n = put(n, line);
	}
	ck_assert_int_eq(http_parse_request(bigbuf, put(n, "\r\n"), &test_lim, &m), (int)(n + 2));
	ck_assert_uint_eq(m.nheaders, test_lim.max_headers);
	n = put(n, "X");
	ck_assert_int_eq(http_parse_request(bigbuf, n, &test_lim, &m), HTTP_ERROR);
	ck_assert_int_eq(m.status, 431);

	/* A configured limit above HTTP_MAX_HEADERS is capped, not overrun. */
	{
		const struct http_limits lim = {65536, 256, 100000};

		n = put(0, "GET / HTTP/1.1\r\nHost: a\r\n");
		for (i = 1; i < HTTP_MAX_HEADERS; i++) {
			snprintf(line, sizeof(line), "X-%d: %d\r\n", i, i);
			n = put(n, line);
		}
		ck_assert_int_eq(http_parse_request(bigbuf, put(n, "\r\n"), &lim, &m),
		                 (int)(n + 2));
		ck_assert_uint_eq(m.nheaders, HTTP_MAX_HEADERS);
		n = put(n, "Y: 1\r\n\r\n");
		ck_assert_int_eq(http_parse_request(bigbuf, n, &lim, &m), HTTP_ERROR);
		ck_assert_int_eq(m.status, 431);
	}
}
END_TEST

START_TEST(test_limit_defaults)
{
	const struct http_limits zero = {0, 0, 0};
	struct http_msg m;
	size_t n;

	/* NULL or 0 fields mean built-in defaults (16 KiB head, 8 KiB target). */
	ck_assert_int_gt(http_parse_request(R(GET11 HOST "\r\n"), NULL, &m), 0);
	ck_assert_int_gt(http_parse_request(R(GET11 HOST "\r\n"), &zero, &m), 0);
	n = put(0, "GET /");
	n = put_fill(n, 'a', 8192);
	ck_assert_int_eq(http_parse_request(bigbuf, n, NULL, &m), HTTP_ERROR);
	ck_assert_int_eq(m.status, 414);
	n = put(0, "GET / HTTP/1.1\r\nHost: a\r\nX: ");
	n = put_fill(n, 'v', 16384);
	ck_assert_int_eq(http_parse_request(bigbuf, n, &zero, &m), HTTP_ERROR);
	ck_assert_int_eq(m.status, 431);
}
END_TEST

/* Errors visible in an incomplete head are reported without waiting for the rest. */
struct early {
	const char *name;
	const char *raw;
	size_t len;
	int status;
};

static const struct early early_cases[] = {
        {"bad method byte", R("GE("), 400},
        {"bad target byte", R("GET /\x01"), 400},
        {"bad version", R("GET / HTTZ"), 400},
        {"version 2", R("GET / HTTP/2.0\r\n"), 505},
        {"CONNECT origin-form", R("CONNECT / HTTP/1.1\r\n"), 400},
        {"space before colon", R(GET11 "Host :"), 400},
        {"CTL in value", R(GET11 "Host: a\x01"), 400},
        {"obs-fold", R(GET11 HOST " "), 400},
        {"duplicate Host", R(GET11 HOST "Host: a\r\n"), 400},
        {"invalid Host", R(GET11 "Host: a b\r\n"), 400},
        {"duplicate Content-Length", R(GET11 "Content-Length: 1\r\nContent-Length: 1\r\n"), 400},
        {"TE with Content-Length", R(GET11 "Transfer-Encoding: chunked\r\nContent-Length: 1\r\n"),
         400},
        {"TE in HTTP/1.0", R("GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n"), 400},
        {"chunked not last", R(GET11 "Transfer-Encoding: chunked, gzip\r\n"), 400},
        {"Expect", R(GET11 "Expect: nope\r\n"), 417},
        {"too many headers", R(GET11 "A: 1\r\nB: 2\r\nC"), 431},
};

START_TEST(test_req_early)
{
	const struct early *c = &early_cases[_i];
	struct http_msg m;
	int r;

	/* The 431 row needs small limits; the others must not hit them. */
	r = http_parse_request(c->raw, c->len, c->status == 431 ? &small_lim : &test_lim, &m);
	ck_assert_msg(r == HTTP_ERROR, "%s: returned %d", c->name, r);
	ck_assert_msg(m.status == c->status, "%s: status %d, want %d", c->name, m.status,
	              c->status);
}
END_TEST

/*
 * Every byte value at every position of a name, a value and a target, checked against the
 * RFC definitions written out independently here. The positions cross the 8-byte words
 * the scanner reads at once.
 */
static int
is_tchar(int c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

START_TEST(test_byte_classes)
{
	char buf[128];
	struct http_msg m;
	size_t n, pos;
	int c, r, ok;

	for (c = 0; c < 256; c++) {
		for (pos = 0; pos < 20; pos++) {
			/* field value */
			n = (size_t)snprintf(buf, sizeof(buf), GET11 HOST "X: %s\r\n\r\n",
			                     "vvvvvvvvvvvvvvvvvvvv");
			buf[strlen(GET11 HOST "X: ") + pos] = (char)c;
			r = http_parse_request(buf, n, &test_lim, &m);
			ok = c == '\t' || c == ' ' || (c >= 0x21 && c != 0x7f);
			ck_assert_msg((r > 0) == ok, "value byte %#x at %zu: %d", c, pos, r);
			if (ok)
				ck_assert_uint_eq(m.headers[1].value.len,
				                  (c == ' ' || c == '\t') && (pos == 0 || pos == 19)
				                          ? 19
				                          : 20);

			/* request-target */
			n = (size_t)snprintf(buf, sizeof(buf), "GET /%s HTTP/1.1\r\n" HOST "\r\n",
			                     "tttttttttttttttttttt");
			buf[5 + pos] = (char)c;
			r = http_parse_request(buf, n, &test_lim, &m);
			ok = c >= 0x21 && c <= 0x7e && c != '#';
			ck_assert_msg((r > 0) == ok, "target byte %#x at %zu: %d", c, pos, r);

			/* field name */
			n = (size_t)snprintf(buf, sizeof(buf), GET11 HOST "%s: v\r\n\r\n",
			                     "nnnnnnnnnnnnnnnnnnnn");
			buf[strlen(GET11 HOST) + pos] = (char)c;
			r = http_parse_request(buf, n, &test_lim, &m);
			ok = is_tchar(c) || (c == ':' && pos > 0);
			ck_assert_msg((r > 0) == ok, "name byte %#x at %zu: %d", c, pos, r);
		}
	}
}
END_TEST

/* ------------------------------------------------------------------------------------ */
/* Framing and connection helpers on requests. */

START_TEST(test_req_body_and_keepalive)
{
	static const struct {
		const char *raw;
		size_t len;
		enum http_body body;
		int keepalive;
	} cases[] = {
	        {R(GET11 HOST "\r\n"), HTTP_BODY_NONE, 1},
	        {R(GET11 HOST "Content-Length: 0\r\n\r\n"), HTTP_BODY_NONE, 1},
	        {R(GET11 HOST "Content-Length: 10\r\n\r\n"), HTTP_BODY_LENGTH, 1},
	        {R(GET11 HOST "Transfer-Encoding: chunked\r\n\r\n"), HTTP_BODY_CHUNKED, 1},
	        {R(GET11 HOST "Connection: close\r\n\r\n"), HTTP_BODY_NONE, 0},
	        {R(GET11 HOST "Connection: keep-alive, close\r\n\r\n"), HTTP_BODY_NONE, 0},
	        {R(GET11 HOST "Connection: upgrade\r\n\r\n"), HTTP_BODY_NONE, 1},
	        {R("GET / HTTP/1.0\r\n\r\n"), HTTP_BODY_NONE, 0},
	        {R("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"), HTTP_BODY_NONE, 1},
	        {R("GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n"),
	         HTTP_BODY_NONE, 0},
	        {R("POST / HTTP/1.0\r\nContent-Length: 4\r\n\r\n"), HTTP_BODY_LENGTH, 0},
	};
	struct http_msg m;
	size_t i;

	for (i = 0; i < NELEMS(cases); i++) {
		ck_assert_int_eq(http_parse_request(cases[i].raw, cases[i].len, &test_lim, &m),
		                 (int)cases[i].len);
		ck_assert_msg(http_request_body(&m) == cases[i].body, "row %zu body", i);
		ck_assert_msg(http_keepalive(&m) == cases[i].keepalive, "row %zu keepalive", i);
	}
}
END_TEST

START_TEST(test_connection_lists)
{
	static const char raw[] = GET11 HOST "Connection: keep-alive, X-Foo\r\n"
	                                     "X-Foo: 1\r\n"
	                                     "connection: ,te,, Upgrade \r\n"
	                                     "Upgrade: h2c\r\n\r\n";
	struct http_msg m;

	ck_assert_int_gt(http_parse_request(raw, sizeof(raw) - 1, &test_lim, &m), 0);
	ck_assert_int_eq(http_connection_lists(&m, "x-foo", 5), 1);
	ck_assert_int_eq(http_connection_lists(&m, "X-FOO", 5), 1);
	ck_assert_int_eq(http_connection_lists(&m, "TE", 2), 1);
	ck_assert_int_eq(http_connection_lists(&m, "upgrade", 7), 1);
	ck_assert_int_eq(http_connection_lists(&m, "keep-alive", 10), 1);
	ck_assert_int_eq(http_connection_lists(&m, "x-fo", 4), 0);
	ck_assert_int_eq(http_connection_lists(&m, "x-fooo", 6), 0);
	ck_assert_int_eq(http_connection_lists(&m, "close", 5), 0);
	/* name_len, not the terminator, bounds the name. */
	ck_assert_int_eq(http_connection_lists(&m, "tejunk", 2), 1);
	ck_assert_uint_eq(m.flags,
	                  HTTP_F_CONN_KEEPALIVE | HTTP_F_CONN_UPGRADE | HTTP_F_HAS_UPGRADE);
}
END_TEST

/*
 * RFC 9110 7.6.1 / RFC 9112 3.2: "Connection: host" must not make a proxy forward an
 * HTTP/1.1 request without Host (the upstream would route it to a default virtual host);
 * other listed fields are still dropped, whatever the case of the token.
 */
START_TEST(test_request_drops_listed_keeps_host)
{
	static const char raw[] = GET11 HOST "Connection: HOST, x-foo, close\r\n"
	                                     "X-Foo: 1\r\n\r\n";
	static const char abs[] = "GET http://a.example/ HTTP/1.1\r\nHost: b.example\r\n"
	                          "Connection: host\r\n\r\n";
	struct http_msg m;

	ck_assert_int_gt(http_parse_request(raw, sizeof(raw) - 1, &test_lim, &m), 0);
	ck_assert_int_eq(http_connection_lists(&m, "host", 4), 1);
	ck_assert_int_eq(http_request_drops_listed(&m, "host", 4), 0);
	ck_assert_int_eq(http_request_drops_listed(&m, "Host", 4), 0);
	ck_assert_int_eq(http_request_drops_listed(&m, "x-foo", 5), 1);
	ck_assert_int_eq(http_request_drops_listed(&m, "X-FOO", 5), 1);
	ck_assert_int_eq(http_request_drops_listed(&m, "x-bar", 5), 0);
	/* name_len bounds the name: "hostname" is not Host, and it is not listed */
	ck_assert_int_eq(http_request_drops_listed(&m, "hostname", 8), 0);

	ck_assert_int_gt(http_parse_request(abs, sizeof(abs) - 1, &test_lim, &m), 0);
	ck_assert_int_eq(http_request_drops_listed(&m, "host", 4), 0);
}
END_TEST

START_TEST(test_slice_eq_and_reason)
{
	struct http_slice s = {"Content-Length", 14};
	struct http_slice e = {NULL, 0};

	ck_assert_int_eq(http_slice_eq(s, "content-length"), 1);
	ck_assert_int_eq(http_slice_eq(s, "CONTENT-LENGTH"), 1);
	ck_assert_int_eq(http_slice_eq(s, "content-lengt"), 0);
	ck_assert_int_eq(http_slice_eq(s, "content-lengthx"), 0);
	ck_assert_int_eq(http_slice_eq(s, ""), 0);
	ck_assert_int_eq(http_slice_eq(e, ""), 1);
	ck_assert_int_eq(http_slice_eq(e, "a"), 0);
	/* '[' and '{' differ by the case bit but are not letters. */
	s.p = "[";
	s.len = 1;
	ck_assert_int_eq(http_slice_eq(s, "{"), 0);

	ck_assert_str_eq(http_reason(200), "OK");
	ck_assert_str_eq(http_reason(400), "Bad Request");
	ck_assert_str_eq(http_reason(414), "URI Too Long");
	ck_assert_str_eq(http_reason(417), "Expectation Failed");
	ck_assert_str_eq(http_reason(431), "Request Header Fields Too Large");
	ck_assert_str_eq(http_reason(501), "Not Implemented");
	ck_assert_str_eq(http_reason(502), "Bad Gateway");
	ck_assert_str_eq(http_reason(505), "HTTP Version Not Supported");
	ck_assert_str_eq(http_reason(299), "Unknown");
	ck_assert_str_eq(http_reason(-1), "Unknown");
}
END_TEST

/* ------------------------------------------------------------------------------------ */
/* Responses. */

struct resp_ok {
	const char *name;
	const char *raw;
	size_t len;
	int code;
	const char *reason;
	int minor;
	unsigned flags;
	long long cl;
};

static const struct resp_ok resp_ok_cases[] = {
        {"200 with length", R("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n"), 200, "OK", 1,
         HTTP_F_HAS_LENGTH, 3},
        {"HTTP/1.0 404", R("HTTP/1.0 404 Not Found\r\n\r\n"), 404, "Not Found", 0, 0, -1},
        {"empty reason", R("HTTP/1.1 204 \r\n\r\n"), 204, "", 1, 0, -1},
        {"no SP, no reason", R("HTTP/1.1 304\r\n\r\n"), 304, "", 1, 0, -1},
        {"reason with SP and HTAB", R("HTTP/1.1 500 Internal  Server\tError \r\n\r\n"), 500,
         "Internal  Server\tError ", 1, 0, -1},
        {"reason obs-text", R("HTTP/1.1 200 D\xc3\xa9j\xc3\xa0\r\n\r\n"), 200, "D\xc3\xa9j\xc3\xa0",
         1, 0, -1},
        {"reason of odd bytes", R("HTTP/1.1 200 ~!@#$%^&*()\"\r\n\r\n"), 200, "~!@#$%^&*()\"", 1, 0,
         -1},
        {"100", R("HTTP/1.1 100 Continue\r\n\r\n"), 100, "Continue", 1, 0, -1},
        {"599", R("HTTP/1.1 599 x\r\n\r\n"), 599, "x", 1, 0, -1},
        {"101 upgrade",
         R("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"),
         101, "Switching Protocols", 1, HTTP_F_CONN_UPGRADE | HTTP_F_HAS_UPGRADE, -1},
        {"chunked", R("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), 200, "OK", 1,
         HTTP_F_CHUNKED, -1},
        {"close", R("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"), 200, "OK", 1,
         HTTP_F_CONN_CLOSE, -1},
        {"no Host rules", R("HTTP/1.1 200 OK\r\nHost: a b\r\nHost: c\r\nExpect: x\r\n\r\n"), 200,
         "OK", 1, 0, -1},
};

START_TEST(test_resp_accept)
{
	const struct resp_ok *c = &resp_ok_cases[_i];
	struct http_msg m;
	size_t n;
	int r;

	r = http_parse_response(c->raw, c->len, &test_lim, &m);
	ck_assert_msg(r == (int)c->len, "%s: returned %d (%s)", c->name, r,
	              r == HTTP_ERROR ? m.error : "-");
	ck_assert_msg(m.status_code == c->code, "%s: code %d", c->name, m.status_code);
	ck_assert_msg(slice_is(m.reason, c->reason), "%s: reason", c->name);
	ck_assert_msg(m.version_minor == c->minor, "%s: minor", c->name);
	ck_assert_msg(m.flags == c->flags, "%s: flags %#x", c->name, m.flags);
	ck_assert_msg(m.content_length == c->cl, "%s: content_length", c->name);
	ck_assert_msg(m.head_len == c->len, "%s: head_len", c->name);
	for (n = 0; n < c->len; n++) {
		r = http_parse_response(c->raw, n, &test_lim, &m);
		ck_assert_msg(r == HTTP_AGAIN, "%s: prefix %zu returned %d", c->name, n, r);
	}
}
END_TEST

struct resp_bad {
	const char *name;
	const char *raw;
	size_t len;
	const struct http_limits *lim;
};

static const struct resp_bad resp_bad_cases[] = {
        {"HTTP/1.2", R("HTTP/1.2 200 OK\r\n\r\n"), NULL},
        {"HTTP/2", R("HTTP/2 200 OK\r\n\r\n"), NULL},
        {"HTTP/2.0", R("HTTP/2.0 200 OK\r\n\r\n"), NULL},
        {"HTTP/0.9", R("HTTP/0.9 200 OK\r\n\r\n"), NULL},
        {"lowercase version", R("http/1.1 200 OK\r\n\r\n"), NULL},
        {"not HTTP", R("ICY 200 OK\r\n\r\n"), NULL},
        {"leading CRLF", R("\r\nHTTP/1.1 200 OK\r\n\r\n"), NULL},
        {"status 099", R("HTTP/1.1 099 x\r\n\r\n"), NULL},
        {"status 600", R("HTTP/1.1 600 x\r\n\r\n"), NULL},
        {"status 000", R("HTTP/1.1 000 x\r\n\r\n"), NULL},
        {"two-digit status", R("HTTP/1.1 20 OK\r\n\r\n"), NULL},
        {"four-digit status", R("HTTP/1.1 2000 OK\r\n\r\n"), NULL},
        {"status with letter", R("HTTP/1.1 2x0 OK\r\n\r\n"), NULL},
        {"no status", R("HTTP/1.1\r\n\r\n"), NULL},
        {"two SP before status", R("HTTP/1.1  200 OK\r\n\r\n"), NULL},
        {"HTAB before status", R("HTTP/1.1\t200 OK\r\n\r\n"), NULL},
        {"HTAB after status", R("HTTP/1.1 200\tOK\r\n\r\n"), NULL},
        {"CTL in reason", R("HTTP/1.1 200 O\x01K\r\n\r\n"), NULL},
        {"NUL in reason", R("HTTP/1.1 200 O\0K\r\n\r\n"), NULL},
        {"status line bare LF", R("HTTP/1.1 200 OK\n\r\n"), NULL},
        {"status line bare CR", R("HTTP/1.1 200 OK\rX\r\n\r\n"), NULL},
        {"status bare LF, no reason", R("HTTP/1.1 200\n\r\n"), NULL},
        {"header bare LF", R("HTTP/1.1 200 OK\r\nX: y\n\r\n"), NULL},
        {"head ends with bare LF", R("HTTP/1.1 200 OK\r\nX: y\r\n\n"), NULL},
        {"obs-fold", R("HTTP/1.1 200 OK\r\nX: y\r\n z\r\n\r\n"), NULL},
        {"SP before colon", R("HTTP/1.1 200 OK\r\nX : y\r\n\r\n"), NULL},
        {"empty name", R("HTTP/1.1 200 OK\r\n: y\r\n\r\n"), NULL},
        {"CTL in value", R("HTTP/1.1 200 OK\r\nX: \x7f\r\n\r\n"), NULL},
        {"duplicate Content-Length",
         R("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n"), NULL},
        {"Content-Length list", R("HTTP/1.1 200 OK\r\nContent-Length: 1,1\r\n\r\n"), NULL},
        {"Content-Length negative", R("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"), NULL},
        {"TE and Content-Length",
         R("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n"), NULL},
        {"TE gzip, chunked", R("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
         NULL},
        {"TE gzip", R("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"), NULL},
        {"TE chunked, chunked", R("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n"),
         NULL},
        {"TE in HTTP/1.0", R("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), NULL},
        {"Connection garbage", R("HTTP/1.1 200 OK\r\nConnection: a b\r\n\r\n"), NULL},
        {"too many headers", R("HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n"), &small_lim},
        {"head too large",
         R("HTTP/1.1 200 OK\r\nA: 01234567890123456789012345678901234567890123456789\r\n\r\n"),
         &small_lim},
};

START_TEST(test_resp_reject)
{
	const struct resp_bad *c = &resp_bad_cases[_i];
	const struct http_limits *lim = c->lim ? c->lim : &test_lim;
	struct http_msg m;
	int r, seen = 0;
	size_t n;

	r = http_parse_response(c->raw, c->len, lim, &m);
	ck_assert_msg(r == HTTP_ERROR, "%s: returned %d", c->name, r);
	ck_assert_msg(m.status == 502, "%s: status %d", c->name, m.status);
	ck_assert_msg(m.error != NULL, "%s: no reason", c->name);
	/* Byte by byte: once refused, always refused. */
	for (n = 0; n <= c->len; n++) {
		r = http_parse_response(c->raw, n, lim, &m);
		ck_assert_msg(r == HTTP_AGAIN || r == HTTP_ERROR, "%s: prefix %zu gave %d", c->name,
		              n, r);
		if (r == HTTP_ERROR)
			seen = 1;
		else
			ck_assert_msg(!seen, "%s: prefix %zu accepted after an error", c->name, n);
	}
}
END_TEST

START_TEST(test_resp_early)
{
	struct http_msg m;

	/* Garbage in the status line is refused before the line ends. */
	ck_assert_int_eq(http_parse_response(R("HTTP/1.1 2"), &test_lim, &m), HTTP_AGAIN);
	ck_assert_int_eq(http_parse_response(R("HTTP/1.1 2x"), &test_lim, &m), HTTP_ERROR);
	ck_assert_int_eq(http_parse_response(R("HTTP/1.1 6"), &test_lim, &m), HTTP_ERROR);
	ck_assert_int_eq(http_parse_response(R("HTTP/1.1x"), &test_lim, &m), HTTP_ERROR);
	ck_assert_int_eq(http_parse_response(R("HTTP/1.3"), &test_lim, &m), HTTP_ERROR);
	ck_assert_int_eq(http_parse_response(R("<html>"), &test_lim, &m), HTTP_ERROR);
	ck_assert_int_eq(m.status, 502);
	ck_assert_int_eq(
	        http_parse_response(R("HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC"), &small_lim, &m),
	        HTTP_ERROR);
	ck_assert_int_eq(m.status, 502);
}
END_TEST

START_TEST(test_resp_body)
{
	static const struct {
		const char *raw;
		size_t len;
		enum http_method req;
		enum http_body body;
	} cases[] = {
	        {R("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"), HTTP_M_GET, HTTP_BODY_LENGTH},
	        {R("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), HTTP_M_GET, HTTP_BODY_NONE},
	        {R("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), HTTP_M_GET,
	         HTTP_BODY_CHUNKED},
	        {R("HTTP/1.1 200 OK\r\n\r\n"), HTTP_M_GET, HTTP_BODY_EOF},
	        {R("HTTP/1.0 200 OK\r\n\r\n"), HTTP_M_POST, HTTP_BODY_EOF},
	        {R("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"), HTTP_M_HEAD, HTTP_BODY_NONE},
	        {R("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), HTTP_M_HEAD,
	         HTTP_BODY_NONE},
	        {R("HTTP/1.1 200 OK\r\n\r\n"), HTTP_M_HEAD, HTTP_BODY_NONE},
	        {R("HTTP/1.1 204 No Content\r\n\r\n"), HTTP_M_GET, HTTP_BODY_NONE},
	        {R("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n"), HTTP_M_GET,
	         HTTP_BODY_NONE},
	        {R("HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n"), HTTP_M_GET,
	         HTTP_BODY_NONE},
	        {R("HTTP/1.1 100 Continue\r\n\r\n"), HTTP_M_POST, HTTP_BODY_NONE},
	        {R("HTTP/1.1 101 Switching Protocols\r\n\r\n"), HTTP_M_GET, HTTP_BODY_NONE},
	        {R("HTTP/1.1 103 Early Hints\r\n\r\n"), HTTP_M_GET, HTTP_BODY_NONE},
	        {R("HTTP/1.1 200 Connection established\r\n\r\n"), HTTP_M_CONNECT, HTTP_BODY_NONE},
	        {R("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"), HTTP_M_CONNECT, HTTP_BODY_NONE},
	        {R("HTTP/1.1 407 Auth\r\nContent-Length: 5\r\n\r\n"), HTTP_M_CONNECT,
	         HTTP_BODY_LENGTH},
	        {R("HTTP/1.1 502 Bad\r\n\r\n"), HTTP_M_CONNECT, HTTP_BODY_EOF},
	        {R("HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n"), HTTP_M_OTHER,
	         HTTP_BODY_CHUNKED},
	};
	struct http_msg m;
	size_t i;

	for (i = 0; i < NELEMS(cases); i++) {
		ck_assert_int_eq(http_parse_response(cases[i].raw, cases[i].len, &test_lim, &m),
		                 (int)cases[i].len);
		ck_assert_msg(http_response_body(&m, cases[i].req) == cases[i].body,
		              "row %zu: body %d, want %d", i,
		              (int)http_response_body(&m, cases[i].req), (int)cases[i].body);
	}
}
END_TEST

START_TEST(test_resp_keepalive)
{
	struct http_msg m;

	ck_assert_int_gt(http_parse_response(R("HTTP/1.1 200 OK\r\n\r\n"), &test_lim, &m), 0);
	ck_assert_int_eq(http_keepalive(&m), 1);
	ck_assert_int_gt(http_parse_response(R("HTTP/1.1 200 OK\r\nConnection: Close\r\n\r\n"),
	                                     &test_lim, &m),
	                 0);
	ck_assert_int_eq(http_keepalive(&m), 0);
	ck_assert_int_gt(http_parse_response(R("HTTP/1.0 200 OK\r\n\r\n"), &test_lim, &m), 0);
	ck_assert_int_eq(http_keepalive(&m), 0);
	ck_assert_int_gt(http_parse_response(R("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n"),
	                                     &test_lim, &m),
	                 0);
	ck_assert_int_eq(http_keepalive(&m), 1);
}
END_TEST

START_TEST(test_resp_pipelined)
{
	static const char raw[] = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n"
	                          "Content-Length: 2\r\n\r\nok";
	struct http_msg m;
	int r;

	r = http_parse_response(raw, sizeof(raw) - 1, &test_lim, &m);
	ck_assert_int_eq(r, 25);
	ck_assert_int_eq(m.status_code, 100);
	r = http_parse_response(raw + 25, sizeof(raw) - 1 - 25, &test_lim, &m);
	ck_assert_int_eq(r, (int)(sizeof(raw) - 1 - 25 - 2));
	ck_assert_int_eq(m.status_code, 200);
	ck_assert_int_eq(m.content_length, 2);
}
END_TEST

/* ------------------------------------------------------------------------------------ */
/* Chunked decoder. */

/*
 * Drives the decoder as proxyd does, with the input arriving `piece` bytes at a time:
 * framing is drained from the head of the buffer, data is moved out. Returns 0 when the
 * body is complete (*used: bytes of body consumed), -1 on HTTP_ERROR, -2 when the input
 * ran out first.
 */
static int
chunked_run(struct http_chunked *c, const char *in, size_t len, size_t piece, char *out,
            size_t outsz, size_t *outlen, size_t *used)
{
	size_t avail = piece < len ? piece : len, pos = 0, n;
	int r;

	*outlen = 0;
	while (c->state != HTTP_CHUNK_DONE) {
		if (c->state == HTTP_CHUNK_DATA) {
			n = avail - pos;
			if (n > c->remaining)
				n = (size_t)c->remaining;
			if (n == 0) {
				if (avail == len)
					return -2;
				avail = len - avail < piece ? len : avail + piece;
				continue;
			}
			ck_assert_uint_le(*outlen + n, outsz);
			memcpy(out + *outlen, in + pos, n);
			*outlen += n;
			pos += n;
			http_chunked_consume(c, n);
			continue;
		}
		r = http_chunked_step(c, in + pos, avail - pos);
		if (r == HTTP_ERROR)
			return -1;
		if (r == HTTP_AGAIN) {
			if (avail == len)
				return -2;
			avail = len - avail < piece ? len : avail + piece;
			continue;
		}
		ck_assert_int_gt(r, 0);
		ck_assert_uint_le((size_t)r, avail - pos);
		pos += (size_t)r;
	}
	*used = pos;
	return 0;
}

static const char sample_body[] = "4\r\nWiki\r\n"
                                  "5;name=value\r\npedia\r\n"
                                  "E ; a = \"q\\\"x\" ;b\r\n in\r\n\r\nchunks.\r\n"
                                  "10\r\n0123456789abcdef\r\n"
                                  "0\r\n"
                                  "X-Trailer: yes\r\n"
                                  "X-Other:  v \r\n"
                                  "\r\n"
                                  "NEXT";
static const char sample_data[] = "Wikipedia in\r\n\r\nchunks.0123456789abcdef";

START_TEST(test_chunked_pieces)
{
	size_t len = sizeof(sample_body) - 1, piece, outlen, used;
	struct http_chunked c;
	char out[128];

	for (piece = 1; piece <= len; piece++) {
		http_chunked_init(&c);
		ck_assert_msg(chunked_run(&c, sample_body, len, piece, out, sizeof(out), &outlen,
		                          &used) == 0,
		              "piece %zu: %s", piece, c.error ? c.error : "ran out");
		ck_assert_uint_eq(outlen, sizeof(sample_data) - 1);
		ck_assert(memcmp(out, sample_data, outlen) == 0);
		ck_assert_uint_eq(used, len - 4); /* "NEXT" belongs to the next message */
		ck_assert_uint_eq(c.total, sizeof(sample_data) - 1);
		ck_assert_uint_eq(c.trailer_bytes,
		                  strlen("X-Trailer: yes\r\nX-Other:  v \r\n\r\n"));
		ck_assert_int_eq(c.state, HTTP_CHUNK_DONE);
	}
}
END_TEST

START_TEST(test_chunked_states)
{
	struct http_chunked c;

	http_chunked_init(&c);
	ck_assert_int_eq(c.state, HTTP_CHUNK_SIZE);
	ck_assert_int_eq(http_chunked_step(&c, "", 0), HTTP_AGAIN);
	ck_assert_int_eq(http_chunked_step(&c, "1a", 2), HTTP_AGAIN);
	ck_assert_int_eq(http_chunked_step(&c, "1a\r", 3), HTTP_AGAIN);
	ck_assert_int_eq(http_chunked_step(&c, "1a\r\nxyz", 7), 4);
	ck_assert_int_eq(c.state, HTTP_CHUNK_DATA);
	ck_assert_uint_eq(c.remaining, 0x1a);
	/* Framing is not read while data is due. */
	ck_assert_int_eq(http_chunked_step(&c, "\r\n", 2), HTTP_ERROR);
	ck_assert_ptr_nonnull(c.error);
	http_chunked_consume(&c, 0x10);
	ck_assert_int_eq(c.state, HTTP_CHUNK_DATA);
	ck_assert_uint_eq(c.remaining, 0x0a);
	http_chunked_consume(&c, 0x0a);
	ck_assert_int_eq(c.state, HTTP_CHUNK_DATA_END);
	ck_assert_uint_eq(c.total, 0x1a);
	ck_assert_int_eq(http_chunked_step(&c, "", 0), HTTP_AGAIN);
	ck_assert_int_eq(http_chunked_step(&c, "\r", 1), HTTP_AGAIN);
	ck_assert_int_eq(http_chunked_step(&c, "\r\n0\r\n", 5), 2);
	ck_assert_int_eq(c.state, HTTP_CHUNK_SIZE);
	ck_assert_int_eq(http_chunked_step(&c, "0\r\n", 3), 3);
	ck_assert_int_eq(c.state, HTTP_CHUNK_TRAILER);
	ck_assert_int_eq(http_chunked_step(&c, "", 0), HTTP_AGAIN);
	ck_assert_int_eq(http_chunked_step(&c, "\r", 1), HTTP_AGAIN);
	ck_assert_int_eq(http_chunked_step(&c, "X: 1", 4), HTTP_AGAIN);
	ck_assert_int_eq(http_chunked_step(&c, "X: 1\r\n\r\n", 8), 6);
	ck_assert_int_eq(c.state, HTTP_CHUNK_TRAILER);
	ck_assert_int_eq(http_chunked_step(&c, "\r\nGET", 5), 2);
	ck_assert_int_eq(c.state, HTTP_CHUNK_DONE);
	ck_assert_uint_eq(c.trailer_bytes, 8);
	/* Nothing more to read. */
	ck_assert_int_eq(http_chunked_step(&c, "0\r\n", 3), HTTP_ERROR);
}
END_TEST

START_TEST(test_chunked_sizes)
{
	struct http_chunked c;

	http_chunked_init(&c);
	ck_assert_int_eq(http_chunked_step(&c, R("7fffffffffffffff\r\n")), 18);
	ck_assert_uint_eq(c.remaining, UINT64_C(0x7fffffffffffffff));

	http_chunked_init(&c);
	ck_assert_int_eq(http_chunked_step(&c, R("000000000000000A\r\n")), 18);
	ck_assert_uint_eq(c.remaining, 10);

	http_chunked_init(&c);
	ck_assert_int_eq(http_chunked_step(&c, R("aBcDeF\r\n")), 8);
	ck_assert_uint_eq(c.remaining, 0xabcdef);

	/* 2^63 and above, or 17 digits even with leading zeros: refused. */
	http_chunked_init(&c);
	ck_assert_int_eq(http_chunked_step(&c, R("8000000000000000\r\n")), HTTP_ERROR);
	http_chunked_init(&c);
	ck_assert_int_eq(http_chunked_step(&c, R("ffffffffffffffff\r\n")), HTTP_ERROR);
	http_chunked_init(&c);
	ck_assert_int_eq(http_chunked_step(&c, R("0000000000000000A\r\n")), HTTP_ERROR);
	/* ... as soon as the digits show it. */
	http_chunked_init(&c);
	ck_assert_int_eq(http_chunked_step(&c, R("11111111111111111")), HTTP_ERROR);
	http_chunked_init(&c);
	ck_assert_int_eq(http_chunked_step(&c, R("8000000000000000")), HTTP_ERROR);
	http_chunked_init(&c);
	ck_assert_int_eq(http_chunked_step(&c, R("7fffffffffffffff")), HTTP_AGAIN);

	/* The running total stays below 2^63 too. */
	http_chunked_init(&c);
	c.total = UINT64_C(0x7ffffffffffffffe);
	ck_assert_int_eq(http_chunked_step(&c, R("2\r\n")), HTTP_ERROR);
	http_chunked_init(&c);
	c.total = UINT64_C(0x7ffffffffffffffe);
	ck_assert_int_eq(http_chunked_step(&c, R("1\r\n")), 3);
}
END_TEST

START_TEST(test_chunked_line_limit)
{
	struct http_chunked c;
	size_t n;

	/* A size line of 4096 bytes, CRLF included, is the longest accepted. */
	n = put(0, "1;a=");
	n = put_fill(n, 'v', 4096 - n - 2);
	n = put(n, "\r\n");
	http_chunked_init(&c);
	ck_assert_int_eq(http_chunked_step(&c, bigbuf, n), 4096);

	n = put(0, "1;a=");
	n = put_fill(n, 'v', 4096 - n - 1);
	n = put(n, "\r\n");
	http_chunked_init(&c);
	ck_assert_int_eq(http_chunked_step(&c, bigbuf, n), HTTP_ERROR);
	/* Early: 4096 bytes without a complete line. */
	http_chunked_init(&c);
	ck_assert_int_eq(http_chunked_step(&c, bigbuf, 4095), HTTP_AGAIN);
	ck_assert_int_eq(http_chunked_step(&c, bigbuf, 4096), HTTP_ERROR);
	ck_assert_ptr_nonnull(c.error);
	/* The same with whitespace only. */
	n = put(0, "1");
	n = put_fill(n, ' ', 5000);
	http_chunked_init(&c);
	ck_assert_int_eq(http_chunked_step(&c, bigbuf, n), HTTP_ERROR);
}
END_TEST

START_TEST(test_chunked_trailer_limit)
{
	static const char tr[] = "X-Long-Trailer: 1234\r\n\r\n"; /* 22 + 2 bytes */
	struct http_chunked c;

	http_chunked_init(&c);
	c.max_trailer = 24;
	ck_assert_int_eq(http_chunked_step(&c, R("0\r\n")), 3);
	ck_assert_int_eq(http_chunked_step(&c, tr, sizeof(tr) - 1), 22);
	ck_assert_int_eq(http_chunked_step(&c, tr + 22, 2), 2);
	ck_assert_int_eq(c.state, HTTP_CHUNK_DONE);

	http_chunked_init(&c);
	c.max_trailer = 23;
	ck_assert_int_eq(http_chunked_step(&c, R("0\r\n")), 3);
	ck_assert_int_eq(http_chunked_step(&c, tr, sizeof(tr) - 1), 22);
	ck_assert_int_eq(http_chunked_step(&c, tr + 22, 2), HTTP_ERROR);

	http_chunked_init(&c);
	c.max_trailer = 16;
	ck_assert_int_eq(http_chunked_step(&c, R("0\r\n")), 3);
	ck_assert_int_eq(http_chunked_step(&c, tr, 15), HTTP_AGAIN);
	ck_assert_int_eq(http_chunked_step(&c, tr, 16), HTTP_ERROR); /* early */

	/* Default: 8192 bytes. */
	http_chunked_init(&c);
	ck_assert_int_eq(http_chunked_step(&c, R("0\r\n")), 3);
	put_fill(put(0, "X: "), 'v', 9000);
	ck_assert_int_eq(http_chunked_step(&c, bigbuf, 9003), HTTP_ERROR);
}
END_TEST

/*
 * max_body (client_max_body_size): the chunk-size line that would take the body past the
 * limit fails, before its data, so a relaying caller never completes an over-size body
 * upstream (RFC 9110 15.5.14: 413 means the request was not processed).
 */
START_TEST(test_chunked_body_limit)
{
	struct http_chunked c;

	http_chunked_init(&c);
	c.max_body = 10;
	ck_assert_int_eq(http_chunked_step(&c, R("5\r\n")), 3);
	http_chunked_consume(&c, 5);
	ck_assert_int_eq(http_chunked_step(&c, R("\r\n")), 2);
	ck_assert_int_eq(http_chunked_step(&c, R("5\r\n")), 3); /* exactly 10 */
	http_chunked_consume(&c, 5);
	ck_assert_int_eq(http_chunked_step(&c, R("\r\n")), 2);
	ck_assert_int_eq(http_chunked_step(&c, R("0\r\n")), 3);
	ck_assert_int_eq(c.too_large, 0);

	http_chunked_init(&c);
	c.max_body = 10;
	ck_assert_int_eq(http_chunked_step(&c, R("5\r\n")), 3);
	http_chunked_consume(&c, 5);
	ck_assert_int_eq(http_chunked_step(&c, R("\r\n")), 2);
	ck_assert_int_eq(http_chunked_step(&c, R("6\r\n")), HTTP_ERROR); /* 11 */
	ck_assert_int_eq(c.too_large, 1);
	ck_assert_ptr_nonnull(c.error);

	/* one huge chunk, and no limit at all */
	http_chunked_init(&c);
	c.max_body = 10;
	ck_assert_int_eq(http_chunked_step(&c, R("7fffffffffffffff\r\n")), HTTP_ERROR);
	ck_assert_int_eq(c.too_large, 1);
	http_chunked_init(&c);
	ck_assert_int_eq(http_chunked_step(&c, R("100000\r\n")), 8);
	ck_assert_int_eq(c.too_large, 0);
	/* other errors do not claim too_large */
	http_chunked_init(&c);
	c.max_body = 10;
	ck_assert_int_eq(http_chunked_step(&c, R("zz\r\n")), HTTP_ERROR);
	ck_assert_int_eq(c.too_large, 0);
}
END_TEST

struct chunk_case {
	const char *name;
	const char *raw;
	size_t len;
	const char *data; /* NULL: must be refused */
};

static const struct chunk_case chunk_cases[] = {
        {"extension name", R("1;a\r\nx\r\n0\r\n\r\n"), "x"},
        {"extension token value", R("1;a=b\r\nx\r\n0\r\n\r\n"), "x"},
        {"extension BWS", R("1 ; a = b\r\nx\r\n0\r\n\r\n"), "x"},
        {"extension HTAB BWS", R("1\t;\ta\t=\tb\r\nx\r\n0\r\n\r\n"), "x"},
        {"extension quoted", R("1;a=\"q d\\\"\"\r\nx\r\n0\r\n\r\n"), "x"},
        {"extension empty quoted", R("1;a=\"\"\r\nx\r\n0\r\n\r\n"), "x"},
        {"extension quoted obs-text", R("1;a=\"\xc3\xa9\"\r\nx\r\n0\r\n\r\n"), "x"},
        {"extension quoted-pair HTAB", R("1;a=\"\\\t\"\r\nx\r\n0\r\n\r\n"), "x"},
        {"several extensions", R("1;a;b=c;d=\"e\" ; f\r\nx\r\n0;last\r\n\r\n"), "x"},
        {"uppercase hex", R("A\r\n0123456789\r\n0\r\n\r\n"), "0123456789"},
        {"leading zeros", R("0001\r\nx\r\n00\r\n\r\n"), "x"},
        {"trailers", R("1\r\nx\r\n0\r\nA: 1\r\nB:\r\nC: \xff\r\n\r\n"), "x"},
        {"data with CRLF inside", R("2\r\n\r\n\r\n0\r\n\r\n"), "\r\n"},
        {"empty body", R("0\r\n\r\n"), ""},
        {"invalid hex", R("x\r\n"), NULL},
        {"empty size", R("\r\n"), NULL},
        {"negative size", R("-1\r\nx\r\n0\r\n\r\n"), NULL},
        {"0x prefix", R("0x1\r\nx\r\n0\r\n\r\n"), NULL},
        {"leading SP", R(" 1\r\nx\r\n0\r\n\r\n"), NULL},
        {"SP before CRLF", R("1 \r\nx\r\n0\r\n\r\n"), NULL},
        {"SP inside size", R("1 1\r\nx\r\n0\r\n\r\n"), NULL},
        {"size bare LF", R("1\nx\r\n0\r\n\r\n"), NULL},
        {"size bare CR", R("1\rx\r\n0\r\n\r\n"), NULL},
        {"empty extension", R("1;\r\nx\r\n0\r\n\r\n"), NULL},
        {"extension without name", R("1;=v\r\nx\r\n0\r\n\r\n"), NULL},
        {"extension empty value", R("1;a=\r\nx\r\n0\r\n\r\n"), NULL},
        {"extension SP in name", R("1;a b\r\nx\r\n0\r\n\r\n"), NULL},
        {"extension SP in value", R("1;a=b c\r\nx\r\n0\r\n\r\n"), NULL},
        {"extension SP before CRLF", R("1;a=b \r\nx\r\n0\r\n\r\n"), NULL},
        {"extension bad name char", R("1;a@b\r\nx\r\n0\r\n\r\n"), NULL},
        {"extension unterminated quote", R("1;a=\"x\r\nx\r\n0\r\n\r\n"), NULL},
        {"extension CTL in quote", R("1;a=\"\x01\"\r\nx\r\n0\r\n\r\n"), NULL},
        {"extension bad quoted-pair", R("1;a=\"\\\x01\"\r\nx\r\n0\r\n\r\n"), NULL},
        {"extension bare LF", R("1;a\nx\r\n0\r\n\r\n"), NULL},
        {"extension bare CR", R("1;a=b\rx\r\n0\r\n\r\n"), NULL},
        {"data longer than size", R("1\r\nxy\r\n0\r\n\r\n"), NULL},
        {"data without CRLF", R("1\r\nx0\r\n\r\n"), NULL},
        {"data bare LF", R("1\r\nx\n0\r\n\r\n"), NULL},
        {"data bare CR", R("1\r\nx\rX0\r\n\r\n"), NULL},
        {"trailer SP before colon", R("0\r\nX : 1\r\n\r\n"), NULL},
        {"trailer obs-fold", R("0\r\nX: 1\r\n 2\r\n\r\n"), NULL},
        {"trailer leading SP", R("0\r\n X: 1\r\n\r\n"), NULL},
        {"trailer CTL", R("0\r\nX: a\x01\r\n\r\n"), NULL},
        {"trailer NUL", R("0\r\nX: a\0\r\n\r\n"), NULL},
        {"trailer no colon", R("0\r\nX\r\n\r\n"), NULL},
        {"trailer empty name", R("0\r\n: v\r\n\r\n"), NULL},
        {"trailer bare LF", R("0\r\nX: 1\n\r\n"), NULL},
        {"trailer end bare LF", R("0\r\n\n"), NULL},
        {"trailer end bare CR", R("0\r\n\rX"), NULL},
};

START_TEST(test_chunked_cases)
{
	const struct chunk_case *k = &chunk_cases[_i];
	struct http_chunked c;
	char out[64];
	size_t outlen, used, piece, pieces[2];
	int i, r;

	/* All at once, then one byte at a time: the same verdict. */
	pieces[0] = k->len;
	pieces[1] = 1;
	for (i = 0; i < 2; i++) {
		piece = pieces[i];
		http_chunked_init(&c);
		r = chunked_run(&c, k->raw, k->len, piece, out, sizeof(out), &outlen, &used);
		if (k->data == NULL) {
			ck_assert_msg(r == -1, "%s (piece %zu): returned %d, want error", k->name,
			              piece, r);
			ck_assert_msg(c.error != NULL, "%s: no reason", k->name);
		} else {
			ck_assert_msg(r == 0, "%s (piece %zu): returned %d (%s)", k->name, piece, r,
			              c.error ? c.error : "-");
			ck_assert_uint_eq(used, k->len);
			ck_assert_uint_eq(outlen, strlen(k->data));
			ck_assert(memcmp(out, k->data, outlen) == 0);
		}
	}
}
END_TEST

/* ------------------------------------------------------------------------------------ */

static Suite *
http_suite(void)
{
	Suite *s = suite_create("http");
	TCase *tc;

	tc = tcase_create("request");
	tcase_add_loop_test(tc, test_req_accept, 0, (int)NELEMS(req_ok_cases));
	tcase_add_loop_test(tc, test_req_accept_bytewise, 0, (int)NELEMS(req_ok_cases));
	tcase_add_loop_test(tc, test_req_reject, 0, (int)NELEMS(req_bad_cases));
	tcase_add_loop_test(tc, test_req_reject_bytewise, 0, (int)NELEMS(req_bad_cases));
	tcase_add_loop_test(tc, test_req_early, 0, (int)NELEMS(early_cases));
	tcase_add_test(tc, test_byte_classes);
	tcase_add_test(tc, test_req_fields);
	tcase_add_test(tc, test_req_absolute_fields);
	tcase_add_test(tc, test_req_no_host_header);
	tcase_add_test(tc, test_req_leading_crlf);
	tcase_add_test(tc, test_req_pipelined);
	tcase_add_test(tc, test_req_body_and_keepalive);
	tcase_add_test(tc, test_connection_lists);
	tcase_add_test(tc, test_request_drops_listed_keeps_host);
	tcase_add_test(tc, test_slice_eq_and_reason);
	suite_add_tcase(s, tc);

	tc = tcase_create("limits");
	tcase_add_test(tc, test_limit_target);
	tcase_add_test(tc, test_limit_head);
	tcase_add_test(tc, test_limit_request_line);
	tcase_add_test(tc, test_limit_headers);
	tcase_add_test(tc, test_limit_defaults);
	suite_add_tcase(s, tc);

	tc = tcase_create("response");
	tcase_add_loop_test(tc, test_resp_accept, 0, (int)NELEMS(resp_ok_cases));
	tcase_add_loop_test(tc, test_resp_reject, 0, (int)NELEMS(resp_bad_cases));
	tcase_add_test(tc, test_resp_early);
	tcase_add_test(tc, test_resp_body);
	tcase_add_test(tc, test_resp_keepalive);
	tcase_add_test(tc, test_resp_pipelined);
	suite_add_tcase(s, tc);

	tc = tcase_create("chunked");
	tcase_add_test(tc, test_chunked_pieces);
	tcase_add_test(tc, test_chunked_states);
	tcase_add_test(tc, test_chunked_sizes);
	tcase_add_test(tc, test_chunked_line_limit);
	tcase_add_test(tc, test_chunked_trailer_limit);
	tcase_add_test(tc, test_chunked_body_limit);
	tcase_add_loop_test(tc, test_chunked_cases, 0, (int)NELEMS(chunk_cases));
	suite_add_tcase(s, tc);

	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(http_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
