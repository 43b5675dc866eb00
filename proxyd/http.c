/*
 * http.c - strict HTTP/1.1 message parser (RFC 9112) and body framing.
 *
 * Every parser works in one forward pass over the bytes it is given and stops at the
 * first byte that proves the message invalid, so a caller that re-parses its buffer after
 * each read learns about 400/414/431 as early as the data allows. Nothing is allocated and
 * nothing is copied: results are slices of the caller's buffer.
 *
 * Policy choices that go beyond the letter of RFC 9112 are marked "Policy:" below.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <assert.h>
#include <limits.h>
#include <string.h>

#include "http.h"

/* Used when the caller passes no limits, or leaves a field 0. */
#define HTTP_DEFAULT_MAX_HEAD      16384
#define HTTP_DEFAULT_MAX_TARGET    8192
#define HTTP_DEFAULT_MAX_TRAILER   8192
#define HTTP_CHUNK_LINE_MAX        4096 /* chunk-size line incl. extensions and CRLF */
#define HTTP_CHUNK_SIZE_DIGITS     16
#define HTTP_CONTENT_LENGTH_DIGITS 18 /* 10^18 - 1 < 2^63: cannot overflow int64_t */

/* Character classes of http_ctype[]. */
#define HT_TCHAR  0x01 /* RFC 9110 5.6.2 tchar */
#define HT_VALUE  0x02 /* field-vchar, obs-text, SP, HTAB (RFC 9110 5.5) */
#define HT_TARGET 0x04 /* visible ASCII but '#': what a request-target may hold */
#define HT_HOST   0x08 /* reg-name: unreserved / sub-delims (pct-encoding excluded) */
#define HT_HEX    0x10 /* HEXDIG */
#define HT_QDTEXT 0x20 /* qdtext of a quoted-string (RFC 9110 5.6.4) */

/* A table lookup per byte is what keeps the scanning loops branch-light. */
/* clang-format off */
static const unsigned char http_ctype[256] = {
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x22, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* 0x00 */
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* 0x10 */
	0x22, 0x2f, 0x06, 0x23, 0x2f, 0x27, 0x2f, 0x2f, 0x2e, 0x2e, 0x2f, 0x2f, 0x2e, 0x2f, 0x2f, 0x26, /* 0x20 */
	0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x26, 0x2e, 0x26, 0x2e, 0x26, 0x26, /* 0x30 */
	0x26, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, /* 0x40 */
	0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x26, 0x06, 0x26, 0x27, 0x2f, /* 0x50 */
	0x27, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x3f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, /* 0x60 */
	0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x2f, 0x26, 0x27, 0x26, 0x2f, 0x00, /* 0x70 */
	0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, /* 0x80 */
	0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, /* 0x90 */
	0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, /* 0xa0 */
	0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, /* 0xb0 */
	0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, /* 0xc0 */
	0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, /* 0xd0 */
	0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, /* 0xe0 */
	0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, 0x22, /* 0xf0 */
};
/* clang-format on */

static const char http_slash[] = "/";

/* Per-parse bookkeeping that does not belong in struct http_msg. */
struct http_pstate {
	size_t max_head;
	size_t max_target;
	size_t max_headers;
	int is_request;
	unsigned host_count;
	unsigned te_seen;    /* a Transfer-Encoding header was present */
	unsigned te_chunked; /* "chunked" was listed: it must stay the last coding */
	unsigned te_unknown; /* a coding other than chunked was listed */
};

static inline int
http_is(char c, unsigned cls)
{
	return (http_ctype[(unsigned char)c] & cls) != 0;
}

static inline int
http_is_ows(char c)
{
	return c == ' ' || c == '\t';
}

static inline unsigned char
http_lower(char c)
{
	unsigned char u = (unsigned char)c;

	return (u >= 'A' && u <= 'Z') ? (unsigned char)(u | 0x20) : u;
}

/* First byte at or after p that is not of class cls, or end. The hot loop of the parser. */
static inline const char *
http_scan(const char *p, const char *end, unsigned cls)
{
	while (end - p >= 8) {
		if (!http_is(p[0], cls))
			return p;
		if (!http_is(p[1], cls))
			return p + 1;
		if (!http_is(p[2], cls))
			return p + 2;
		if (!http_is(p[3], cls))
			return p + 3;
		if (!http_is(p[4], cls))
			return p + 4;
		if (!http_is(p[5], cls))
			return p + 5;
		if (!http_is(p[6], cls))
			return p + 6;
		if (!http_is(p[7], cls))
			return p + 7;
		p += 8;
	}
	while (p < end && http_is(*p, cls))
		p++;
	return p;
}

/*
 * Word-at-a-time tests (the "has less than" trick): nonzero iff some byte of w is below n
 * (n <= 128), or equal to c. Exact as booleans; http_scan() then finds the byte.
 */
#define HTTP_ONES  UINT64_C(0x0101010101010101)
#define HTTP_HIGHS UINT64_C(0x8080808080808080)

static inline uint64_t
http_has_less(uint64_t w, unsigned n)
{
	return (w - HTTP_ONES * n) & ~w & HTTP_HIGHS;
}

static inline uint64_t
http_has_byte(uint64_t w, unsigned c)
{
	return http_has_less(w ^ (HTTP_ONES * c), 1);
}

/*
 * Field values and request-targets are most of a head (cookies, long URLs), so they are
 * checked 8 bytes at a time; a word with a suspect byte falls back to the table.
 */
static inline const char *
http_scan_value(const char *p, const char *end)
{
	uint64_t w;

	while (end - p >= 8) {
		memcpy(&w, p, sizeof(w));
		/* CTLs (HTAB included: rare, handled by the table) and DEL. */
		if (http_has_less(w, 0x20) | http_has_byte(w, 0x7f))
			break;
		p += 8;
	}
	return http_scan(p, end, HT_VALUE);
}

static inline const char *
http_scan_target(const char *p, const char *end)
{
	uint64_t w;

	while (end - p >= 8) {
		memcpy(&w, p, sizeof(w));
		/* CTLs, SP, DEL, '#' and bytes >= 0x80. */
		if (http_has_less(w, 0x21) | http_has_byte(w, 0x7f) | http_has_byte(w, '#') |
		    (w & HTTP_HIGHS))
			break;
		p += 8;
	}
	return http_scan(p, end, HT_TARGET);
}

static const char *
http_skip_ows(const char *p, const char *end)
{
	while (p < end && http_is_ows(*p))
		p++;
	return p;
}

/* Case-insensitive equality of n bytes of p with the lowercase literal lc. */
static int
http_eq_lower(const char *p, const char *lc, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (http_lower(p[i]) != (unsigned char)lc[i])
			return 0;
	return 1;
}

static int
http_slices_eq(struct http_slice a, struct http_slice b)
{
	size_t i;

	if (a.len != b.len)
		return 0;
	for (i = 0; i < a.len; i++)
		if (http_lower(a.p[i]) != http_lower(b.p[i]))
			return 0;
	return 1;
}

#define HTTP_NAME_IS(s, lit) ((s).len == sizeof(lit) - 1 && http_eq_lower((s).p, lit, (s).len))

static int
http_fail(struct http_msg *msg, int status, const char *why)
{
	msg->status = status;
	msg->error = why;
	return HTTP_ERROR;
}

static struct http_slice
http_mkslice(const char *p, const char *end)
{
	struct http_slice s = {p, (size_t)(end - p)};

	return s;
}

/*
 * IPv4address (RFC 3986 3.2.2): four dec-octets without leading zeros. Leading zeros are
 * refused because some resolvers read them as octal.
 */
static int
http_ipv4_valid(const char *p, const char *end)
{
	int octets = 0;

	for (;;) {
		const char *d = p;
		unsigned v = 0;

		while (p < end && *p >= '0' && *p <= '9' && p - d < 3)
			v = v * 10 + (unsigned)(*p++ - '0');
		if (p == d || v > 255 || (p - d > 1 && *d == '0'))
			return 0;
		if (++octets == 4)
			return p == end;
		if (p == end || *p != '.')
			return 0;
		p++;
	}
}

/*
 * IPv6address (RFC 4291 2.2, RFC 3986 3.2.2) between the brackets of an IP-literal:
 * h16 groups, at most one "::", an optional IPv4 tail. No zone ids, no IPvFuture.
 */
static int
http_ipv6_valid(const char *p, const char *end)
{
	int groups = 0, dcolon = 0;

	if (end - p < 2)
		return 0;
	if (p[0] == ':') {
		if (p[1] != ':')
			return 0;
		p += 2;
		dcolon = 1;
		if (p == end)
			return 1;
	}
	for (;;) {
		const char *g = p;

		p = http_scan(p, end, HT_HEX);
		if (p < end && *p == '.') {
			if (!http_ipv4_valid(g, end))
				return 0;
			groups += 2;
			break;
		}
		if (p == g || p - g > 4)
			return 0;
		groups++;
		if (p == end)
			break;
		if (*p != ':')
			return 0;
		p++;
		if (p < end && *p == ':') {
			if (dcolon)
				return 0;
			dcolon = 1;
			p++;
			if (p == end)
				break;
		} else if (p == end) {
			return 0;
		}
	}
	/* "::" stands for at least one group. */
	return dcolon ? groups <= 7 : groups == 8;
}

/* port = 1*5DIGIT with a value in 1..65535 (0 would be "absent" in struct http_msg). */
static int
http_port_parse(const char *p, const char *end, uint16_t *port)
{
	unsigned v = 0;

	if (p == end || end - p > 5)
		return -1;
	for (; p < end; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		v = v * 10 + (unsigned)(*p - '0');
	}
	if (v == 0 || v > 65535)
		return -1;
	*port = (uint16_t)v;
	return 0;
}

/*
 * host [":" port] at [p, end), as in the Host header, an absolute-form authority or an
 * authority-form target. host is an IP-literal (kept with its brackets, as RFC 3986
 * spells the host), an IPv4 address or a reg-name. Returns 0 or -1.
 *
 * Policy: percent-encoding is refused in reg-names although RFC 3986 allows it. DNS names
 * never need it, and "ex%61mple.com" would otherwise slip past host-based ACLs. An empty
 * port ("host:") is refused too, for the same reason: one spelling per authority.
 */
static int
http_authority_parse(const char *p, const char *end, struct http_slice *host, uint16_t *port,
                     int port_required)
{
	const char *h = p;

	*port = 0;
	if (p == end)
		return -1;
	if (*p == '[') {
		const char *rb = memchr(p, ']', (size_t)(end - p));

		if (rb == NULL || !http_ipv6_valid(p + 1, rb))
			return -1;
		p = rb + 1;
	} else {
		p = http_scan(p, end, HT_HOST);
		if (p == h)
			return -1;
	}
	*host = http_mkslice(h, p);
	if (p == end)
		return port_required ? -1 : 0;
	if (*p != ':')
		return -1;
	return http_port_parse(p + 1, end, port);
}

static enum http_method
http_method_lookup(const char *p, size_t n)
{
	/* Methods are case-sensitive (RFC 9110 9.1). */
	switch (n) {
	case 3:
		if (memcmp(p, "GET", 3) == 0)
			return HTTP_M_GET;
		if (memcmp(p, "PUT", 3) == 0)
			return HTTP_M_PUT;
		break;
	case 4:
		if (memcmp(p, "POST", 4) == 0)
			return HTTP_M_POST;
		if (memcmp(p, "HEAD", 4) == 0)
			return HTTP_M_HEAD;
		break;
	case 5:
		if (memcmp(p, "PATCH", 5) == 0)
			return HTTP_M_PATCH;
		if (memcmp(p, "TRACE", 5) == 0)
			return HTTP_M_TRACE;
		break;
	case 6:
		if (memcmp(p, "DELETE", 6) == 0)
			return HTTP_M_DELETE;
		break;
	case 7:
		if (memcmp(p, "CONNECT", 7) == 0)
			return HTTP_M_CONNECT;
		if (memcmp(p, "OPTIONS", 7) == 0)
			return HTTP_M_OPTIONS;
		break;
	}
	return HTTP_M_OTHER;
}

static uint16_t
http_default_port(struct http_slice scheme)
{
	return scheme.len == 5 ? 443 : 80;
}

/*
 * Classify and split the request-target (RFC 9112 3.2); its bytes are already known to be
 * visible ASCII without '#'. Fills form, scheme, host, port and path.
 */
static int
http_target_parse(struct http_msg *msg)
{
	const char *t = msg->target.p, *end = t + msg->target.len, *a, *ae;

	if (msg->method == HTTP_M_CONNECT) {
		msg->form = HTTP_TARGET_AUTHORITY;
		if (http_authority_parse(t, end, &msg->host, &msg->port, 1) == -1)
			return http_fail(msg, 400, "CONNECT needs an authority-form target");
		return 0;
	}
	if (*t == '/') {
		msg->form = HTTP_TARGET_ORIGIN;
		msg->path = msg->target;
		return 0;
	}
	if (msg->target.len == 1 && *t == '*') {
		if (msg->method != HTTP_M_OPTIONS)
			return http_fail(msg, 400, "asterisk-form is only for OPTIONS");
		msg->form = HTTP_TARGET_ASTERISK;
		msg->path = msg->target;
		return 0;
	}
	if (msg->target.len >= 7 && http_eq_lower(t, "http://", 7))
		a = t + 7;
	else if (msg->target.len >= 8 && http_eq_lower(t, "https://", 8))
		a = t + 8;
	else if (memchr(t, ':', msg->target.len) != NULL && memchr(t, '/', msg->target.len) != NULL)
		return http_fail(msg, 400, "unsupported URI scheme");
	else
		return http_fail(msg, 400, "authority-form is only for CONNECT");

	msg->form = HTTP_TARGET_ABSOLUTE;
	msg->scheme = http_mkslice(t, a - 3);
	for (ae = a; ae < end && *ae != '/' && *ae != '?'; ae++)
		if (*ae == '@')
			return http_fail(msg, 400, "userinfo in request-target");
	if (http_authority_parse(a, ae, &msg->host, &msg->port, 0) == -1)
		return http_fail(msg, 400, "invalid authority in request-target");
	if (ae == end) {
		msg->path.p = http_slash;
		msg->path.len = 1;
	} else if (*ae == '?') {
		/*
		 * Policy: "http://h?q" is valid but its origin-form is "/?q", which is not a
		 * slice of the buffer. Refused so that path always starts with '/'.
		 */
		return http_fail(msg, 400, "query without path in absolute-form");
	} else {
		msg->path = http_mkslice(ae, end);
	}
	return 0;
}

/*
 * Transfer-Encoding (RFC 9112 6.1), strict: a list of bare tokens, no empty elements, no
 * parameters, "chunked" at most once and last. Codings are collected across all TE
 * headers; whether "chunked" ended the list is only known at the end of the head.
 */
static int
http_te_apply(struct http_msg *msg, struct http_pstate *st, struct http_slice v)
{
	const char *p = v.p, *end = v.p + v.len, *t;

	if (msg->version_minor == 0)
		return http_fail(msg, 400, "Transfer-Encoding in HTTP/1.0");
	if (msg->flags & HTTP_F_HAS_LENGTH)
		return http_fail(msg, 400, "both Transfer-Encoding and Content-Length");
	st->te_seen = 1;
	for (;;) {
		t = p;
		p = http_scan(p, end, HT_TCHAR);
		if (p == t)
			return http_fail(msg, 400, "empty or invalid transfer coding");
		if (st->te_chunked)
			return http_fail(msg, 400, "chunked is not the final transfer coding");
		if (p - t == 7 && http_eq_lower(t, "chunked", 7))
			st->te_chunked = 1;
		else
			st->te_unknown = 1;
		p = http_skip_ows(p, end);
		if (p == end)
			return 0;
		if (*p != ',')
			return http_fail(msg, 400, "invalid Transfer-Encoding");
		p = http_skip_ows(p + 1, end);
	}
}

/*
 * Next token of a comma-separated list at [*pp, end). Empty elements are skipped, as
 * RFC 9110 5.6.1 asks of recipients. Returns 1 with *tok set, 0 at the end, -1 when an
 * element is not a single token.
 */
static int
http_list_next(const char **pp, const char *end, struct http_slice *tok)
{
	const char *p = *pp, *t;

	while (p < end && (*p == ',' || http_is_ows(*p)))
		p++;
	if (p == end) {
		*pp = p;
		return 0;
	}
	t = p;
	p = http_scan(p, end, HT_TCHAR);
	if (p == t)
		return -1;
	*tok = http_mkslice(t, p);
	p = http_skip_ows(p, end);
	if (p < end && *p != ',')
		return -1;
	*pp = p;
	return 1;
}

static int
http_connection_apply(struct http_msg *msg, struct http_slice v)
{
	const char *p = v.p, *end = v.p + v.len;
	struct http_slice tok;
	int r;

	while ((r = http_list_next(&p, end, &tok)) == 1) {
		if (HTTP_NAME_IS(tok, "close"))
			msg->flags |= HTTP_F_CONN_CLOSE;
		else if (HTTP_NAME_IS(tok, "keep-alive"))
			msg->flags |= HTTP_F_CONN_KEEPALIVE;
		else if (HTTP_NAME_IS(tok, "upgrade"))
			msg->flags |= HTTP_F_CONN_UPGRADE;
	}
	if (r == -1)
		return http_fail(msg, 400, "invalid Connection header");
	return 0;
}

/* Content-Length (RFC 9112 6.2): one header, one value, digits only. */
static int
http_content_length_apply(struct http_msg *msg, struct http_pstate *st, struct http_slice v)
{
	int64_t n = 0;
	size_t i;

	if (msg->flags & HTTP_F_HAS_LENGTH)
		return http_fail(msg, 400, "duplicate Content-Length");
	if (st->te_seen)
		return http_fail(msg, 400, "both Transfer-Encoding and Content-Length");
	if (v.len == 0 || v.len > HTTP_CONTENT_LENGTH_DIGITS)
		return http_fail(msg, 400, "invalid Content-Length");
	for (i = 0; i < v.len; i++) {
		if (v.p[i] < '0' || v.p[i] > '9')
			return http_fail(msg, 400, "invalid Content-Length");
		n = n * 10 + (v.p[i] - '0');
	}
	msg->content_length = n;
	msg->flags |= HTTP_F_HAS_LENGTH;
	return 0;
}

static int
http_host_apply(struct http_msg *msg, struct http_pstate *st, struct http_slice v)
{
	struct http_slice host = {NULL, 0};
	uint16_t port, p1, p2;

	if (++st->host_count > 1)
		return http_fail(msg, 400, "more than one Host header");
	msg->host_header = v;
	if (v.len == 0) {
		/* RFC 9112 3.2: empty only when the target has no authority to repeat. */
		if (msg->form != HTTP_TARGET_ABSOLUTE)
			return http_fail(msg, 400, "empty Host header");
		msg->flags |= HTTP_F_HOST_MISMATCH;
		return 0;
	}
	if (http_authority_parse(v.p, v.p + v.len, &host, &port, 0) == -1)
		return http_fail(msg, 400, "invalid Host header");
	switch (msg->form) {
	case HTTP_TARGET_ORIGIN:
	case HTTP_TARGET_ASTERISK:
		msg->host = host;
		msg->port = port;
		break;
	case HTTP_TARGET_ABSOLUTE:
		/* Compare effective ports: "http://h/" and "Host: h:80" agree. */
		p1 = msg->port ? msg->port : http_default_port(msg->scheme);
		p2 = port ? port : http_default_port(msg->scheme);
		if (p1 != p2 || !http_slices_eq(host, msg->host))
			msg->flags |= HTTP_F_HOST_MISMATCH;
		break;
	case HTTP_TARGET_AUTHORITY:
		/* CONNECT goes where its target says; Host is not forwarded. */
		break;
	}
	return 0;
}

/* Act on the fields that decide framing, routing and connection handling. */
static int
http_field_apply(struct http_msg *msg, struct http_pstate *st, const struct http_header *h)
{
	struct http_slice n = h->name;

	switch (n.len) {
	case 4:
		if (st->is_request && HTTP_NAME_IS(n, "host"))
			return http_host_apply(msg, st, h->value);
		break;
	case 6:
		if (st->is_request && HTTP_NAME_IS(n, "expect")) {
			if (!HTTP_NAME_IS(h->value, "100-continue"))
				return http_fail(msg, 417, "unsupported expectation");
			/* RFC 9110 10.1.1: ignored in an HTTP/1.0 request. */
			if (msg->version_minor == 1)
				msg->flags |= HTTP_F_EXPECT_100;
		}
		break;
	case 7:
		if (HTTP_NAME_IS(n, "upgrade"))
			msg->flags |= HTTP_F_HAS_UPGRADE;
		break;
	case 10:
		if (HTTP_NAME_IS(n, "connection"))
			return http_connection_apply(msg, h->value);
		break;
	case 14:
		if (HTTP_NAME_IS(n, "content-length"))
			return http_content_length_apply(msg, st, h->value);
		break;
	case 17:
		if (HTTP_NAME_IS(n, "transfer-encoding"))
			return http_te_apply(msg, st, h->value);
		break;
	}
	return 0;
}

/*
 * One field line at [p, end) (RFC 9112 5): name ":" OWS value OWS CRLF, p not at the
 * empty line that ends the section. Returns its length, HTTP_AGAIN or HTTP_ERROR.
 */
static int
http_field_parse(const char *p, const char *end, struct http_header *h, const char **err)
{
	const char *start = p, *v, *ve;

	if (http_is_ows(*p)) {
		/* obs-fold, or whitespace between the start-line and the first field. */
		*err = "line folding or leading whitespace in header field";
		return HTTP_ERROR;
	}
	p = http_scan(p, end, HT_TCHAR);
	if (p == end)
		return HTTP_AGAIN;
	if (*p != ':') {
		if (http_is_ows(*p))
			*err = "whitespace before colon in header field";
		else if (*p == '\n' && p == start)
			*err = "bare LF";
		else if (*p == '\r' || *p == '\n')
			*err = "header field without colon";
		else
			*err = "invalid character in header field name";
		return HTTP_ERROR;
	}
	if (p == start) {
		*err = "empty header field name";
		return HTTP_ERROR;
	}
	h->name = http_mkslice(start, p);
	v = p = http_skip_ows(p + 1, end);
	p = http_scan_value(p, end);
	if (p == end)
		return HTTP_AGAIN;
	if (*p != '\r') {
		*err = *p == '\n' ? "bare LF" : "invalid character in header field value";
		return HTTP_ERROR;
	}
	if (end - p < 2)
		return HTTP_AGAIN;
	if (p[1] != '\n') {
		*err = "bare CR";
		return HTTP_ERROR;
	}
	for (ve = p; ve > v && http_is_ows(ve[-1]); ve--)
		;
	h->value = http_mkslice(v, ve);
	return (int)(p + 2 - start);
}

/*
 * Header section at [p, end) up to and including the empty line. Returns the end of the
 * head, or NULL with *r set to HTTP_AGAIN (ran out of bytes) or HTTP_ERROR.
 */
static const char *
http_fields_parse(const char *p, const char *end, struct http_msg *msg, struct http_pstate *st,
                  int *r)
{
	const char *err = NULL;
	struct http_header *h;
	int n;

	for (;;) {
		if (p == end)
			goto again;
		if (*p == '\r') {
			if (end - p < 2)
				goto again;
			if (p[1] != '\n') {
				*r = http_fail(msg, 400, "bare CR");
				return NULL;
			}
			return p + 2;
		}
		if (msg->nheaders == st->max_headers) {
			*r = http_fail(msg, 431, "too many header fields");
			return NULL;
		}
		h = &msg->headers[msg->nheaders];
		n = http_field_parse(p, end, h, &err);
		if (n == HTTP_AGAIN)
			goto again;
		if (n == HTTP_ERROR) {
			*r = http_fail(msg, 400, err);
			return NULL;
		}
		msg->nheaders++;
		p += n;
		if (http_field_apply(msg, st, h) == HTTP_ERROR) {
			*r = HTTP_ERROR;
			return NULL;
		}
	}
again:
	*r = HTTP_AGAIN;
	return NULL;
}

/* Framing checks that need the whole header section (RFC 9112 6.3). */
static int
http_framing_check(struct http_msg *msg, struct http_pstate *st)
{
	if (!st->te_seen)
		return 0;
	/*
	 * Policy: proxyd decodes no transfer coding but chunked (RFC 9112 6.1: 501 for a
	 * coding the server does not understand), so "gzip, chunked" or "foo" is refused
	 * rather than forwarded with a framing we cannot check. This comes first: an unknown
	 * coding is the more precise diagnosis even when chunked is missing too.
	 */
	if (st->te_unknown)
		return http_fail(msg, 501, "unsupported transfer coding");
	/* RFC 9112 6.3: chunked must be final, else the length is unknowable: 400. */
	if (!st->te_chunked)
		return http_fail(msg, 400, "chunked is not the final transfer coding");
	msg->flags |= HTTP_F_CHUNKED;
	return 0;
}

static void
http_pstate_init(struct http_pstate *st, const struct http_limits *lim, int is_request)
{
	memset(st, 0, sizeof(*st));
	st->is_request = is_request;
	st->max_head = HTTP_DEFAULT_MAX_HEAD;
	st->max_target = HTTP_DEFAULT_MAX_TARGET;
	st->max_headers = HTTP_MAX_HEADERS;
	if (lim != NULL) {
		if (lim->max_head != 0)
			st->max_head = lim->max_head;
		if (lim->max_target != 0)
			st->max_target = lim->max_target;
		if (lim->max_headers != 0 && lim->max_headers < HTTP_MAX_HEADERS)
			st->max_headers = lim->max_headers;
	}
	/* The return value is an int. */
	if (st->max_head > INT_MAX)
		st->max_head = INT_MAX;
}

/* Only the scalars: the header array is filled as far as nheaders says. */
static void
http_msg_reset(struct http_msg *msg)
{
	static const struct http_slice none = {NULL, 0};

	msg->method = HTTP_M_OTHER;
	msg->method_name = none;
	msg->target = none;
	msg->form = HTTP_TARGET_ORIGIN;
	msg->scheme = none;
	msg->host = none;
	msg->port = 0;
	msg->path = none;
	msg->status_code = 0;
	msg->reason = none;
	msg->version_minor = 1;
	msg->nheaders = 0;
	msg->head_len = 0;
	msg->host_header = none;
	msg->content_length = -1;
	msg->flags = 0;
	msg->status = 0;
	msg->error = NULL;
}

/*
 * Out of bytes before the end of the head. If the buffer holds more than max_head bytes,
 * the head cannot fit: 431, or 414 when even the request line has not ended within
 * max_target bytes.
 */
static int
http_more(struct http_msg *msg, const struct http_pstate *st, size_t len, size_t line_len)
{
	if (len <= st->max_head)
		return HTTP_AGAIN;
	if (line_len > st->max_target)
		return http_fail(msg, 414, "request line too long");
	return http_fail(msg, 431, "request head too large");
}

/*
 * "HTTP/" DIGIT "." DIGIT at p (RFC 9112 2.3). Returns 8, HTTP_AGAIN, or HTTP_ERROR with
 * *err set. The version is case-sensitive.
 */
static int
http_version_parse(const char *p, const char *end, int *major, int *minor, const char **err)
{
	static const char tmpl[] = "HTTP/#.#";
	size_t i;

	for (i = 0; i < sizeof(tmpl) - 1; i++) {
		if (p + i == end)
			return HTTP_AGAIN;
		if (tmpl[i] == '#' ? (p[i] < '0' || p[i] > '9') : p[i] != tmpl[i]) {
			*err = "invalid HTTP version";
			return HTTP_ERROR;
		}
	}
	*major = p[5] - '0';
	*minor = p[7] - '0';
	return 8;
}

int
http_parse_request(const char *buf, size_t len, const struct http_limits *lim, struct http_msg *msg)
{
	struct http_pstate st;
	const char *p, *end, *line, *t, *err = NULL;
	int r, major, minor;

	http_pstate_init(&st, lim, 1);
	http_msg_reset(msg);
	/* Nothing past max_head can belong to an acceptable head. */
	end = buf + (len < st.max_head ? len : st.max_head);
	p = buf;

	/*
	 * Policy: RFC 9112 2.2 lets a server skip empty lines before the request-line (some
	 * clients send CRLF after a POST body). Any number is skipped; they count in the
	 * returned length and in max_head, which bounds them.
	 */
	while (p < end && *p == '\r') {
		if (end - p < 2)
			return http_more(msg, &st, len, 0);
		if (p[1] != '\n')
			return http_fail(msg, 400, "bare CR");
		p += 2;
	}
	line = p;

	/* method SP */
	p = http_scan(p, end, HT_TCHAR);
	if (p == end)
		return http_more(msg, &st, len, (size_t)(end - line));
	if (*p != ' ' || p == line)
		return http_fail(msg, 400, *p == '\n' ? "bare LF" : "invalid method");
	msg->method_name = http_mkslice(line, p);
	msg->method = http_method_lookup(line, msg->method_name.len);

	/* request-target SP */
	t = ++p;
	p = http_scan_target(p, end);
	if ((size_t)(p - t) > st.max_target)
		return http_fail(msg, 414, "request-target too long");
	if (p == end)
		return http_more(msg, &st, len, (size_t)(end - line));
	if (*p != ' ' || p == t) {
		if (p == t)
			return http_fail(msg, 400, "empty request-target");
		if (*p == '#')
			return http_fail(msg, 400, "fragment in request-target");
		if (*p == '\r') {
			/* "GET /\r\n" is an HTTP/0.9 request. */
			if (end - p < 2)
				return http_more(msg, &st, len, (size_t)(end - line));
			if (p[1] == '\n')
				return http_fail(msg, 505, "HTTP/0.9 request");
			return http_fail(msg, 400, "bare CR");
		}
		return http_fail(msg, 400, "invalid character in request-target");
	}
	msg->target = http_mkslice(t, p);

	/* HTTP-version CRLF */
	p++;
	r = http_version_parse(p, end, &major, &minor, &err);
	if (r == HTTP_AGAIN)
		return http_more(msg, &st, len, (size_t)(end - line));
	if (r == HTTP_ERROR)
		return http_fail(msg, 400, err);
	p += r;
	if (p == end || (*p == '\r' && end - p < 2))
		return http_more(msg, &st, len, (size_t)(end - line));
	if (*p != '\r')
		return http_fail(msg, 400, *p == '\n' ? "bare LF" : "invalid HTTP version");
	if (p[1] != '\n')
		return http_fail(msg, 400, "bare CR");
	if (major != 1 || minor > 1)
		return http_fail(msg, 505, "HTTP version not supported");
	msg->version_minor = minor;
	p += 2;
	/*
	 * The target is judged after the version, so that "PRI * HTTP/2.0" gets its 505, but
	 * before the fields, which need to know the form.
	 */
	if (http_target_parse(msg) == HTTP_ERROR)
		return HTTP_ERROR;

	p = http_fields_parse(p, end, msg, &st, &r);
	if (p == NULL)
		return r == HTTP_AGAIN ? http_more(msg, &st, len, 0) : r;

	if (st.host_count == 0 && msg->version_minor == 1)
		return http_fail(msg, 400, "missing Host header");
	if (http_framing_check(msg, &st) == HTTP_ERROR)
		return HTTP_ERROR;
	/*
	 * Policy: a CONNECT request has no content (RFC 9110 9.3.6). With a body, the bytes
	 * after the head are body to one reader and tunnel data to another: refused.
	 * "Content-Length: 0", which some clients send, states no content and passes.
	 */
	if (msg->method == HTTP_M_CONNECT && http_request_body(msg) != HTTP_BODY_NONE)
		return http_fail(msg, 400, "CONNECT with content");
	msg->head_len = (size_t)(p - buf);
	return (int)msg->head_len;
}

/* Responses answer 502 whatever went wrong; msg->error keeps the detail. */
static int
http_bad_response(struct http_msg *msg, const char *why)
{
	return http_fail(msg, 502, why);
}

int
http_parse_response(const char *buf, size_t len, const struct http_limits *lim,
                    struct http_msg *msg)
{
	struct http_pstate st;
	const char *p, *end, *reason, *err = NULL;
	int r, major, minor;

	http_pstate_init(&st, lim, 0);
	http_msg_reset(msg);
	end = buf + (len < st.max_head ? len : st.max_head);
	p = buf;

	/* HTTP-version SP 3DIGIT SP reason-phrase CRLF (RFC 9112 4) */
	r = http_version_parse(p, end, &major, &minor, &err);
	if (r == HTTP_ERROR)
		return http_bad_response(msg, err);
	if (r == HTTP_AGAIN)
		goto more;
	if (major != 1 || minor > 1)
		return http_bad_response(msg, "HTTP version not supported");
	msg->version_minor = minor;
	p += r;
	if (end - p < 5)
		goto partial_status;
	if (p[0] != ' ')
		return http_bad_response(msg, "invalid status line");
	if (p[1] < '1' || p[1] > '5' || p[2] < '0' || p[2] > '9' || p[3] < '0' || p[3] > '9')
		return http_bad_response(msg, "invalid status code");
	msg->status_code = (p[1] - '0') * 100 + (p[2] - '0') * 10 + (p[3] - '0');
	p += 4;
	/* Lenient: "HTTP/1.1 200\r\n" without the SP before the empty reason. */
	if (*p == ' ') {
		reason = ++p;
		p = http_scan_value(p, end);
		if (p == end)
			goto more;
		msg->reason = http_mkslice(reason, p);
	}
	if (*p != '\r')
		return http_bad_response(msg, *p == '\n' ? "bare LF" : "invalid status line");
	if (end - p < 2)
		goto more;
	if (p[1] != '\n')
		return http_bad_response(msg, "bare CR");
	p += 2;

	p = http_fields_parse(p, end, msg, &st, &r);
	if (p == NULL) {
		if (r == HTTP_AGAIN)
			goto more;
		return http_bad_response(msg, msg->error);
	}
	if (http_framing_check(msg, &st) == HTTP_ERROR)
		return http_bad_response(msg, msg->error);
	msg->head_len = (size_t)(p - buf);
	return (int)msg->head_len;

partial_status:
	/* Check the few status-line bytes we have, so garbage is refused at once. */
	if (p < end && p[0] != ' ')
		return http_bad_response(msg, "invalid status line");
	if (end - p > 1 && (p[1] < '1' || p[1] > '5'))
		return http_bad_response(msg, "invalid status code");
	if (end - p > 2 && (p[2] < '0' || p[2] > '9'))
		return http_bad_response(msg, "invalid status code");
	if (end - p > 3 && (p[3] < '0' || p[3] > '9'))
		return http_bad_response(msg, "invalid status code");
more:
	if (len <= st.max_head)
		return HTTP_AGAIN;
	return http_bad_response(msg, "response head too large");
}

enum http_body
http_request_body(const struct http_msg *req)
{
	if (req->flags & HTTP_F_CHUNKED)
		return HTTP_BODY_CHUNKED;
	if ((req->flags & HTTP_F_HAS_LENGTH) && req->content_length > 0)
		return HTTP_BODY_LENGTH;
	return HTTP_BODY_NONE;
}

/* RFC 9112 6.3, in its order. */
enum http_body
http_response_body(const struct http_msg *resp, enum http_method req_method)
{
	int sc = resp->status_code;

	if (req_method == HTTP_M_HEAD || sc < 200 || sc == 204 || sc == 304)
		return HTTP_BODY_NONE;
	if (req_method == HTTP_M_CONNECT && sc < 300)
		return HTTP_BODY_NONE; /* the connection becomes a tunnel */
	if (resp->flags & HTTP_F_CHUNKED)
		return HTTP_BODY_CHUNKED;
	if (resp->flags & HTTP_F_HAS_LENGTH)
		return resp->content_length > 0 ? HTTP_BODY_LENGTH : HTTP_BODY_NONE;
	return HTTP_BODY_EOF;
}

int
http_keepalive(const struct http_msg *msg)
{
	if (msg->flags & HTTP_F_CONN_CLOSE)
		return 0;
	if (msg->version_minor == 0)
		return (msg->flags & HTTP_F_CONN_KEEPALIVE) != 0;
	return 1;
}

int
http_slice_eq(struct http_slice s, const char *str)
{
	size_t i;

	for (i = 0; i < s.len; i++)
		if (str[i] == '\0' || http_lower(s.p[i]) != http_lower(str[i]))
			return 0;
	return str[i] == '\0';
}

const struct http_header *
http_header_find(const struct http_msg *msg, const char *name)
{
	size_t i;

	for (i = 0; i < msg->nheaders; i++)
		if (http_slice_eq(msg->headers[i].name, name))
			return &msg->headers[i];
	return NULL;
}

int
http_connection_lists(const struct http_msg *msg, const char *name, size_t name_len)
{
	struct http_slice want = {name, name_len}, tok;
	const char *p, *end;
	size_t i;

	for (i = 0; i < msg->nheaders; i++) {
		if (!HTTP_NAME_IS(msg->headers[i].name, "connection"))
			continue;
		p = msg->headers[i].value.p;
		end = p + msg->headers[i].value.len;
		while (http_list_next(&p, end, &tok) == 1)
			if (http_slices_eq(tok, want))
				return 1;
	}
	return 0;
}

int
http_request_drops_listed(const struct http_msg *msg, const char *name, size_t name_len)
{
	struct http_slice n = {name, name_len};

	/* Policy: "Connection: host" is a client's error (9110 7.6.1: a connection option
	 * must not name a field meant for all recipients); the field stays. */
	if (HTTP_NAME_IS(n, "host"))
		return 0;
	return http_connection_lists(msg, name, name_len);
}

void
http_chunked_init(struct http_chunked *c)
{
	memset(c, 0, sizeof(*c));
	c->state = HTTP_CHUNK_SIZE;
}

static int
http_chunk_fail(struct http_chunked *c, const char *why)
{
	c->error = why;
	return HTTP_ERROR;
}

/*
 * quoted-string at p (on the DQUOTE). Returns the byte after the closing DQUOTE, or NULL
 * with *r set to HTTP_AGAIN or HTTP_ERROR.
 */
static const char *
http_quoted_skip(const char *p, const char *end, int *r)
{
	for (p++; p < end; p++) {
		if (*p == '"')
			return p + 1;
		if (*p == '\\') {
			if (++p == end)
				break;
			if (!http_is(*p, HT_VALUE)) {
				*r = HTTP_ERROR;
				return NULL;
			}
		} else if (!http_is(*p, HT_QDTEXT)) {
			*r = HTTP_ERROR;
			return NULL;
		}
	}
	*r = HTTP_AGAIN;
	return NULL;
}

/*
 * chunk-size [chunk-ext] CRLF (RFC 9112 7.1, 7.1.1):
 *   chunk-ext = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] )
 * Whitespace is only allowed where the grammar has BWS: before ';' or '=' and after them,
 * never before the CRLF.
 */
static int
http_chunk_size_line(struct http_chunked *c, const char *buf, size_t len)
{
	const char *p = buf, *end, *t, *ws;
	uint64_t size = 0;
	int r = HTTP_AGAIN;

	end = buf + (len < HTTP_CHUNK_LINE_MAX ? len : HTTP_CHUNK_LINE_MAX);
	for (; p < end && http_is(*p, HT_HEX); p++) {
		if (p - buf == HTTP_CHUNK_SIZE_DIGITS)
			return http_chunk_fail(c, "chunk size too large");
		size = size << 4 | (uint64_t)(*p <= '9' ? *p - '0' : (*p | 0x20) - 'a' + 10);
	}
	if (p == buf && p < end)
		return http_chunk_fail(c, "invalid chunk size");
	if (size >> 63 != 0 || size > (UINT64_MAX >> 1) - c->total)
		return http_chunk_fail(c, "chunk size too large");
	if (c->max_body > 0 && (c->total > c->max_body || size > c->max_body - c->total)) {
		c->too_large = 1;
		return http_chunk_fail(c, "chunked body larger than the limit");
	}

	for (;;) {
		ws = p;
		p = http_skip_ows(p, end);
		if (p == end)
			goto more;
		if (*p == '\r') {
			if (p != ws)
				return http_chunk_fail(c,
				                       "whitespace before CRLF in chunk-size line");
			if (end - p < 2)
				goto more;
			if (p[1] != '\n')
				return http_chunk_fail(c, "bare CR in chunk-size line");
			break;
		}
		if (*p != ';')
			return http_chunk_fail(c, *p == '\n' ? "bare LF in chunk-size line"
			                                     : "invalid chunk extension");
		p = http_skip_ows(p + 1, end);
		t = p;
		p = http_scan(p, end, HT_TCHAR);
		if (p == end)
			goto more;
		if (p == t)
			return http_chunk_fail(c, "empty chunk extension name");
		ws = p;
		p = http_skip_ows(p, end);
		if (p == end)
			goto more;
		if (*p != '=') {
			p = ws; /* back to the name's end: the loop head checks what follows */
			continue;
		}
		p = http_skip_ows(p + 1, end);
		if (p == end)
			goto more;
		if (*p == '"') {
			p = http_quoted_skip(p, end, &r);
			if (p == NULL) {
				if (r == HTTP_AGAIN)
					goto more;
				return http_chunk_fail(c, "invalid chunk extension value");
			}
		} else {
			t = p;
			p = http_scan(p, end, HT_TCHAR);
			if (p == t)
				return http_chunk_fail(c, "empty chunk extension value");
		}
	}
	p += 2;
	if (size == 0) {
		c->state = HTTP_CHUNK_TRAILER;
	} else {
		c->state = HTTP_CHUNK_DATA;
		c->remaining = size;
	}
	return (int)(p - buf);
more:
	if (len >= HTTP_CHUNK_LINE_MAX)
		return http_chunk_fail(c, "chunk-size line too long");
	return HTTP_AGAIN;
}

/* One trailer field, or the empty line that ends the message (RFC 9112 7.1.2). */
static int
http_chunk_trailer_line(struct http_chunked *c, const char *buf, size_t len)
{
	size_t max = c->max_trailer ? c->max_trailer : HTTP_DEFAULT_MAX_TRAILER;
	size_t room = max > c->trailer_bytes ? max - c->trailer_bytes : 0;
	struct http_header h;
	const char *err = NULL;
	int n;

	if (room > INT_MAX)
		room = INT_MAX;
	if (len == 0)
		return HTTP_AGAIN;
	if (room == 0)
		return http_chunk_fail(c, "trailer section too large");
	if (buf[0] == '\r') {
		if (len < 2)
			return HTTP_AGAIN;
		if (buf[1] != '\n')
			return http_chunk_fail(c, "bare CR in trailer section");
		if (room < 2)
			return http_chunk_fail(c, "trailer section too large");
		c->trailer_bytes += 2;
		c->state = HTTP_CHUNK_DONE;
		return 2;
	}
	n = http_field_parse(buf, buf + (len < room ? len : room), &h, &err);
	if (n == HTTP_ERROR)
		return http_chunk_fail(c, err);
	if (n == HTTP_AGAIN) {
		if (len >= room)
			return http_chunk_fail(c, "trailer section too large");
		return HTTP_AGAIN;
	}
	c->trailer_bytes += (size_t)n;
	return n;
}

int
http_chunked_step(struct http_chunked *c, const char *buf, size_t len)
{
	switch (c->state) {
	case HTTP_CHUNK_SIZE:
		return http_chunk_size_line(c, buf, len);
	case HTTP_CHUNK_DATA_END:
		if (len == 0)
			return HTTP_AGAIN;
		if (buf[0] != '\r')
			return http_chunk_fail(c, "missing CRLF after chunk data");
		if (len < 2)
			return HTTP_AGAIN;
		if (buf[1] != '\n')
			return http_chunk_fail(c, "bare CR after chunk data");
		c->state = HTTP_CHUNK_SIZE;
		return 2;
	case HTTP_CHUNK_TRAILER:
		return http_chunk_trailer_line(c, buf, len);
	case HTTP_CHUNK_DATA:
		/* The caller must move the data with http_chunked_consume() first. */
		return http_chunk_fail(c, "chunk data expected, not framing");
	case HTTP_CHUNK_DONE:
		break;
	}
	return http_chunk_fail(c, "chunked body already complete");
}

void
http_chunked_consume(struct http_chunked *c, uint64_t n)
{
	assert(c->state == HTTP_CHUNK_DATA && n <= c->remaining);
	/* Without assert(), a misuse must still not corrupt the framing state. */
	if (c->state != HTTP_CHUNK_DATA)
		return;
	if (n > c->remaining)
		n = c->remaining;
	c->remaining -= n;
	c->total += n;
	if (c->remaining == 0)
		c->state = HTTP_CHUNK_DATA_END;
}

const char *
http_reason(int status)
{
	switch (status) {
	case 100:
		return "Continue";
	case 101:
		return "Switching Protocols";
	case 200:
		return "OK";
	case 201:
		return "Created";
	case 202:
		return "Accepted";
	case 204:
		return "No Content";
	case 206:
		return "Partial Content";
	case 301:
		return "Moved Permanently";
	case 302:
		return "Found";
	case 303:
		return "See Other";
	case 304:
		return "Not Modified";
	case 307:
		return "Temporary Redirect";
	case 308:
		return "Permanent Redirect";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 407:
		return "Proxy Authentication Required";
	case 408:
		return "Request Timeout";
	case 411:
		return "Length Required";
	case 413:
		return "Content Too Large";
	case 414:
		return "URI Too Long";
	case 417:
		return "Expectation Failed";
	case 421:
		return "Misdirected Request";
	case 426:
		return "Upgrade Required";
	case 429:
		return "Too Many Requests";
	case 431:
		return "Request Header Fields Too Large";
	case 500:
		return "Internal Server Error";
	case 501:
		return "Not Implemented";
	case 502:
		return "Bad Gateway";
	case 503:
		return "Service Unavailable";
	case 504:
		return "Gateway Timeout";
	case 505:
		return "HTTP Version Not Supported";
	}
	return "Unknown";
}
