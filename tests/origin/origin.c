/*
 * origin: the test origin server for proxyd's integration tests.
 *
 * One process, one libevent loop, many keep-alive connections. Each instance answers
 * "GET /" with its own UUID (the load-balancing demo backend) and offers endpoints that
 * make the proxy's life hard on purpose: huge streamed bodies, close-delimited bodies,
 * resets, hangs and malformed responses. See usage() and origin_route() for the list.
 *
 * The HTTP parser here is deliberately separate from proxyd's and lenient (bare LF, obs-fold,
 * whitespace before the colon are accepted), so a bug in proxyd's parser cannot hide
 * behind the same bug in the test server. evhttp is not used because it buffers whole
 * bodies; everything here streams with bounded memory per connection.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <sys/types.h>
#include <sys/ioctl.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#ifdef __linux__
#include <linux/sockios.h>
#endif

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>

/* Request heads larger than this get 431; it also bounds the per-request head copy. */
#define HEAD_MAX (64 * 1024)
/* Chunk-size lines and trailer lines of chunked request bodies. */
#define CHUNK_LINE_MAX 4096
/* Stop reading from a client once this much unprocessed input is queued. */
#define IN_HIGH (256 * 1024)
/* Streamed bodies are refilled up to OUT_HIGH whenever the output drains below OUT_LOW. */
#define OUT_HIGH (256 * 1024)
#define OUT_LOW  (64 * 1024)
/* Largest piece of the body pattern added in one call. */
#define PATTERN_LEN (64 * 1024)
/* After our last response, how long to discard client input before closing anyway. */
#define LINGER_MS 2000
/* /reset waits for the kernel send queue to empty, polling this often, at most this long. */
#define RESET_POLL_MS 5
#define RESET_POLLS   400
/* Upper bound for ?delay=, so a typo cannot park a connection for days. */
#define DELAY_MAX_MS (3600 * 1000UL)
#define ID_MAX       128

/* Queues a string literal (which may contain NUL bytes) without counting by hand. */
#define ADD_LIT(buf, lit) evbuffer_add((buf), (lit), sizeof(lit) - 1)

enum conn_state {
	CONN_READ_HEAD, /* waiting for the next request head (or paused by output back-pressure) */
	CONN_READ_BODY, /* consuming a request body */
	CONN_DELAY,     /* ?delay= timer pending; the response head is not sent yet */
	CONN_SEND,      /* streaming a response body from the write callback */
	CONN_HANG,      /* /hang: never answer, discard input until the client leaves */
	CONN_FLUSH,     /* last response queued: wait until the output drains */
	CONN_LINGER,    /* write side shut down: discard input until EOF or LINGER_MS */
	CONN_RESET,     /* /reset: wait until the kernel sent everything, then send RST */
};

enum body_mode {
	BODY_NONE,
	BODY_LENGTH,
	BODY_CHUNKED,
};

enum chunk_state {
	CHUNK_SIZE,
	CHUNK_DATA,
	CHUNK_DATA_END,
	CHUNK_TRAILER,
};

/* What happens to the connection once a response has been queued completely. */
enum resp_end {
	END_KEEP,
	END_CLOSE,
	END_RESET,
};

/* How a streamed pattern body is framed. */
enum frame {
	FRAME_LENGTH,
	FRAME_CHUNKED,
	FRAME_EOF,
	FRAME_RESET,
};

/*
 * One HTTP exchange. The slices (pointer, length) point into r_head, our own copy of the
 * request head, which lives until the response is queued because /echo and /headers
 * return it verbatim and ?delay= answers long after the input buffer moved on.
 */
struct request {
	char *r_head;
	size_t r_head_len;
	unsigned long long r_num; /* X-Origin-Req */
	const char *r_path;
	size_t r_path_len;
	const char *r_query;
	size_t r_query_len;
	int r_minor; /* HTTP/1.r_minor */
	int r_head_only;
	int r_keepalive; /* the client allows another request on this connection */
	int r_expect;    /* Expect: 100-continue */

	enum body_mode r_body;
	enum chunk_state r_chunk;
	uint64_t r_body_left; /* of the whole body, or of the current chunk */
	size_t r_trailer_len;
	uint64_t r_body_len;
	uint32_t r_body_sum;

	/* Query parameters. */
	unsigned long r_delay_ms;
	int r_status; /* 0: no override */
	int r_close;
	char *r_cc;
	char *r_extra; /* ?h=Name:%20value (repeatable): extra response fields, "...\r\n" each */
	int r_notmod;  /* ?notmod=1: a request with If-None-Match gets 304 (revalidation tests) */
	uint64_t r_chunk_size;

	/* Streamed pattern body. */
	int r_send_chunked;
	uint64_t r_send_left;
	uint64_t r_send_off;
	uint64_t r_send_chunk_left;
	enum resp_end r_end;
};

struct conn {
	TAILQ_ENTRY(conn) c_entry;
	struct bufferevent *c_bev;
	struct event *c_timer; /* ?delay=, linger and reset polling; one at a time */
	enum conn_state c_state;
	unsigned long long c_serial; /* X-Origin-Conn */
	unsigned long long c_nreq;
	int c_eof;        /* the client sent FIN */
	size_t c_scan;    /* head bytes already searched for the blank line */
	unsigned c_polls; /* reset polls so far */
	struct request c_req;
};

struct origin {
	struct event_base *o_base;
	struct evconnlistener *o_listener;
	struct event *o_sigterm;
	struct event *o_sigint;
	struct event *o_accept_retry;
	char o_uuid[ID_MAX + 1];
	const char *o_name;
	unsigned long long o_nconns;
	unsigned long long o_nreqs;
	unsigned long long o_nactive;
	unsigned long long o_nbody; /* request body bytes received, all requests */
	TAILQ_HEAD(conn_list, conn) o_conns;
};

static struct origin origin;
/* -N: once the accept queue is full the kernel drops SYNs, so connects hang. */
static int never_accept;
/* -D MS: delay every response but /stats that has no ?delay= (a slow server). */
static unsigned long default_delay_ms;
/* -R: read each request but /stats, body included, then reset without answering. */
static int reset_requests;
/*
 * -l: log to stderr "HEAD <request line>" for every request head read and "DONE <request
 * line> body=N" once its body is complete, so a test can tell exactly which requests (a
 * smuggled one, say) reached this server and which were answered.
 */
static int log_requests;
static char pattern[PATTERN_LEN + 26];

static void
usage(void)
{
	fprintf(stderr,
	        "usage: origin [-NRl] [-D MS] [-a ADDR] [-p PORT] [-u UUID] [-n NAME]\n"
	        "  prints 'READY port=PORT uuid=UUID' once listening; SIGTERM/SIGINT exit 0\n"
	        "  -N  listen with a backlog of 1 and never accept (connect-timeout tests)\n"
	        "  -D MS  delay every response (but /stats) without ?delay= by MS (a slow server)\n"
	        "  -R  read every request (but /stats) and its body, then reset the connection\n"
	        "      without answering (a server that dies after taking a request)\n"
	        "  -l  log 'HEAD <request line>' and 'DONE <request line> body=N' to stderr\n"
	        "endpoints (query: delay=MS cc=VALUE h=NAME:VALUE status=CODE close=1 notmod=1):\n"
	        "  /  /bytes/N  /chunked/N?chunk=K  /eof/N  /echo  /sink  /status/CODE\n"
	        "  /reset/N  /hang  /bad/KIND  /stats  /headers\n");
}

/* Small helpers on (pointer, length) slices. */

static int
slice_eq(const char *p, size_t len, const char *s)
{
	return strlen(s) == len && memcmp(p, s, len) == 0;
}

static int
slice_caseeq(const char *p, size_t len, const char *s)
{
	return strlen(s) == len && strncasecmp(p, s, len) == 0;
}

static int
is_ws(char ch)
{
	return ch == ' ' || ch == '\t';
}

static void
slice_trim(const char **p, size_t *len)
{
	while (*len > 0 && is_ws(**p)) {
		(*p)++;
		(*len)--;
	}
	while (*len > 0 && is_ws((*p)[*len - 1]))
		(*len)--;
}

/* RFC 9110 tchar. */
static int
is_tchar(unsigned char ch)
{
	if (ch >= '0' && ch <= '9')
		return 1;
	if ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'z')
		return 1;
	return ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

static int
slice_is_token(const char *p, size_t len)
{
	size_t i;

	if (len == 0)
		return 0;
	for (i = 0; i < len; i++)
		if (!is_tchar((unsigned char)p[i]))
			return 0;
	return 1;
}

/* Decimal digits only, no sign or spaces; returns 0, or -1 if empty or above max. */
static int
parse_u64(const char *p, size_t len, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	size_t i;

	if (len == 0)
		return -1;
	for (i = 0; i < len; i++) {
		uint64_t d;

		if (p[i] < '0' || p[i] > '9')
			return -1;
		d = (uint64_t)(p[i] - '0');
		if (v > (max - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

static int
hex_val(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/*
 * Splits the next line off [*p, end) and returns 1, or 0 at the end. The line excludes its
 * LF or CRLF terminator, so bare-LF heads parse like CRLF ones.
 */
static int
line_next(const char **p, const char *end, const char **line, size_t *len)
{
	const char *nl;

	if (*p >= end)
		return 0;
	nl = memchr(*p, '\n', (size_t)(end - *p));
	if (nl == NULL)
		nl = end;
	*line = *p;
	*len = (size_t)(nl - *p);
	if (*len > 0 && (*line)[*len - 1] == '\r')
		(*len)--;
	*p = nl < end ? nl + 1 : end;
	return 1;
}

static const struct status_text {
	int st_code;
	const char *st_reason;
} status_texts[] = {
        {100, "Continue"},
        {101, "Switching Protocols"},
        {200, "OK"},
        {201, "Created"},
        {202, "Accepted"},
        {203, "Non-Authoritative Information"},
        {204, "No Content"},
        {205, "Reset Content"},
        {206, "Partial Content"},
        {300, "Multiple Choices"},
        {301, "Moved Permanently"},
        {302, "Found"},
        {303, "See Other"},
        {304, "Not Modified"},
        {307, "Temporary Redirect"},
        {308, "Permanent Redirect"},
        {400, "Bad Request"},
        {401, "Unauthorized"},
        {403, "Forbidden"},
        {404, "Not Found"},
        {405, "Method Not Allowed"},
        {406, "Not Acceptable"},
        {407, "Proxy Authentication Required"},
        {408, "Request Timeout"},
        {409, "Conflict"},
        {410, "Gone"},
        {411, "Length Required"},
        {412, "Precondition Failed"},
        {413, "Content Too Large"},
        {414, "URI Too Long"},
        {415, "Unsupported Media Type"},
        {416, "Range Not Satisfiable"},
        {417, "Expectation Failed"},
        {418, "I'm a teapot"},
        {421, "Misdirected Request"},
        {422, "Unprocessable Content"},
        {429, "Too Many Requests"},
        {431, "Request Header Fields Too Large"},
        {500, "Internal Server Error"},
        {501, "Not Implemented"},
        {502, "Bad Gateway"},
        {503, "Service Unavailable"},
        {504, "Gateway Timeout"},
        {505, "HTTP Version Not Supported"},
};

/* Unlisted codes (?status=599) still get a syntactically valid reason phrase. */
static const char *
status_reason(int status)
{
	size_t i;

	for (i = 0; i < sizeof(status_texts) / sizeof(status_texts[0]); i++)
		if (status_texts[i].st_code == status)
			return status_texts[i].st_reason;
	return "Unknown";
}

/* RFC 9110 6.4.1: these responses never carry content, whatever the framing headers say. */
static int
status_bodiless(int status)
{
	return (status >= 100 && status < 200) || status == 204 || status == 304;
}

/*
 * Queues n bytes of the body pattern starting at body offset off. n must not exceed
 * PATTERN_LEN; the extra 26 bytes in pattern[] let any offset start mid-alphabet.
 */
static void
pattern_add(struct evbuffer *out, uint64_t off, size_t n)
{
	evbuffer_add(out, pattern + off % 26, n);
}

/*
 * Percent-decodes [p, p+len) into a new NUL-terminated string ('+' is a space, as in
 * forms). Returns NULL on ENOMEM or if the result holds a control character, which would
 * let ?cc= inject header lines.
 */
static char *
url_decode(const char *p, size_t len)
{
	char *s;
	size_t i, n = 0;

	if ((s = malloc(len + 1)) == NULL)
		return NULL;
	for (i = 0; i < len; i++) {
		int hi, lo;
		unsigned char ch = (unsigned char)p[i];

		if (ch == '%' && i + 2 < len && (hi = hex_val(p[i + 1])) != -1 &&
		    (lo = hex_val(p[i + 2])) != -1) {
			ch = (unsigned char)(hi * 16 + lo);
			i += 2;
		} else if (ch == '+') {
			ch = ' ';
		}
		if (ch < 0x20 || ch == 0x7f) {
			free(s);
			return NULL;
		}
		s[n++] = (char)ch;
	}
	s[n] = '\0';
	return s;
}

static void
request_clear(struct request *r)
{
	free(r->r_head);
	free(r->r_cc);
	free(r->r_extra);
	memset(r, 0, sizeof(*r));
}

/*
 * Parses "METHOD SP TARGET SP HTTP/1.x". Runs of spaces or tabs are accepted as one
 * separator. Returns 0, or the status to answer with.
 */
static int
request_line_parse(struct request *r, const char *line, size_t len)
{
	const char *part[3], *p = line, *end = line + len, *t, *q;
	size_t plen[3], tlen, i;
	int n;

	for (i = 0; i < len; i++)
		if (((unsigned char)line[i] < 0x20 && line[i] != '\t') || line[i] == 0x7f)
			return 400;
	for (n = 0; n < 3; n++) {
		while (p < end && is_ws(*p))
			p++;
		part[n] = p;
		while (p < end && !is_ws(*p))
			p++;
		plen[n] = (size_t)(p - part[n]);
		if (plen[n] == 0)
			return 400;
	}
	while (p < end && is_ws(*p))
		p++;
	if (p != end)
		return 400;

	if (!slice_is_token(part[0], plen[0]))
		return 400;
	r->r_head_only = slice_eq(part[0], plen[0], "HEAD");

	if (plen[2] != 8 || memcmp(part[2], "HTTP/", 5) != 0 || part[2][6] != '.' ||
	    part[2][5] < '0' || part[2][5] > '9' || part[2][7] < '0' || part[2][7] > '9')
		return 400;
	if (part[2][5] != '1')
		return 505;
	r->r_minor = part[2][7] - '0';

	/* Absolute-form (as a forward proxy might send it): keep only the path and query. */
	t = part[1];
	tlen = plen[1];
	if ((tlen > 7 && strncasecmp(t, "http://", 7) == 0) ||
	    (tlen > 8 && strncasecmp(t, "https://", 8) == 0)) {
		const char *auth = t + (t[4] == ':' ? 7 : 8);
		const char *slash = memchr(auth, '/', (size_t)(t + tlen - auth));

		if (slash == NULL) {
			t = "/";
			tlen = 1;
		} else {
			tlen -= (size_t)(slash - t);
			t = slash;
		}
	}
	if ((q = memchr(t, '#', tlen)) != NULL)
		tlen = (size_t)(q - t);
	r->r_path = t;
	r->r_path_len = tlen;
	if ((q = memchr(t, '?', tlen)) != NULL) {
		r->r_path_len = (size_t)(q - t);
		r->r_query = q + 1;
		r->r_query_len = tlen - r->r_path_len - 1;
	}
	return 0;
}

/*
 * Applies the query parameters every endpoint understands. Unknown parameters are ignored;
 * a known one with a bad value is a 400, so a typo in a test fails loudly instead of
 * silently testing something else.
 */
static int
request_query_parse(struct request *r)
{
	const char *q = r->r_query, *end;

	if (q == NULL)
		return 0;
	end = q + r->r_query_len;
	while (q < end) {
		const char *amp, *eq, *val;
		size_t klen, vlen;
		uint64_t v;

		if ((amp = memchr(q, '&', (size_t)(end - q))) == NULL)
			amp = end;
		eq = memchr(q, '=', (size_t)(amp - q));
		klen = (size_t)((eq != NULL ? eq : amp) - q);
		val = eq != NULL ? eq + 1 : amp;
		vlen = (size_t)(amp - val);

		if (slice_eq(q, klen, "delay")) {
			if (parse_u64(val, vlen, DELAY_MAX_MS, &v) == -1)
				return 400;
			r->r_delay_ms = (unsigned long)v;
		} else if (slice_eq(q, klen, "status")) {
			if (parse_u64(val, vlen, 999, &v) == -1 || v < 100)
				return 400;
			r->r_status = (int)v;
		} else if (slice_eq(q, klen, "close")) {
			r->r_close = !slice_eq(val, vlen, "0");
		} else if (slice_eq(q, klen, "chunk")) {
			if (parse_u64(val, vlen, UINT64_MAX, &v) == -1 || v == 0)
				return 400;
			r->r_chunk_size = v;
		} else if (slice_eq(q, klen, "cc")) {
			free(r->r_cc);
			if ((r->r_cc = url_decode(val, vlen)) == NULL)
				return 400;
		} else if (slice_eq(q, klen, "notmod")) {
			r->r_notmod = !slice_eq(val, vlen, "0");
		} else if (slice_eq(q, klen, "h")) {
			char *f = url_decode(val, vlen), *n;
			size_t old = r->r_extra != NULL ? strlen(r->r_extra) : 0;

			if (f == NULL || strpbrk(f, "\r\n") != NULL || strchr(f, ':') == NULL) {
				free(f);
				return 400;
			}
			if ((n = realloc(r->r_extra, old + strlen(f) + 3)) == NULL) {
				free(f);
				return 400;
			}
			r->r_extra = n;
			snprintf(n + old, strlen(f) + 3, "%s\r\n", f);
			free(f);
		}
		q = amp + 1;
	}
	return 0;
}

/*
 * Calls fn on each trimmed element of the comma-separated list [p, p+len); stops early
 * and returns -1 if fn does.
 */
static int
list_foreach(const char *p, size_t len, int (*fn)(const char *, size_t, void *), void *arg)
{
	const char *end = p + len;

	for (;;) {
		const char *comma = memchr(p, ',', (size_t)(end - p));
		const char *v = p;
		size_t vlen;

		if (comma == NULL)
			comma = end;
		vlen = (size_t)(comma - v);
		slice_trim(&v, &vlen);
		if (fn(v, vlen, arg) == -1)
			return -1;
		if (comma == end)
			return 0;
		p = comma + 1;
	}
}

struct cl_state {
	int seen;
	uint64_t value;
};

/*
 * One Content-Length element. A list of identical values ("5, 5", as left behind by some
 * intermediaries) is accepted, and repeated headers must agree too.
 */
static int
cl_element(const char *v, size_t vlen, void *arg)
{
	struct cl_state *cl = arg;
	uint64_t n;

	if (parse_u64(v, vlen, UINT64_MAX, &n) == -1)
		return -1;
	if (cl->seen && n != cl->value)
		return -1;
	cl->seen = 1;
	cl->value = n;
	return 0;
}

struct token_match {
	const char *tm_token;
	int tm_last_only; /* only the last non-empty element counts */
	int tm_found;
};

static int
token_element(const char *v, size_t vlen, void *arg)
{
	struct token_match *tm = arg;
	int match;

	if (vlen == 0)
		return 0;
	match = slice_caseeq(v, vlen, tm->tm_token);
	if (tm->tm_last_only)
		tm->tm_found = match;
	else if (match)
		tm->tm_found = 1;
	return 0;
}

static int
list_has(const char *p, size_t len, const char *tok, int last_only)
{
	struct token_match tm = {tok, last_only, 0};

	list_foreach(p, len, token_element, &tm);
	return tm.tm_found;
}

/*
 * Parses the head copied into r->r_head. Leniency: bare LF, whitespace around the colon,
 * obs-fold continuation lines and a missing Host are accepted. Control characters, lines
 * without a colon, conflicting Content-Length and unknown transfer codings are not.
 * Returns 0, or the status to answer with before closing.
 */
static int
request_parse(struct request *r)
{
	const char *p = r->r_head, *end = r->r_head + r->r_head_len, *line;
	size_t len, i;
	int status, have_te = 0, te_chunked = 0, seen_field = 0;
	int conn_close = 0, conn_ka = 0;
	struct cl_state cl = {0, 0};

	if (!line_next(&p, end, &line, &len))
		return 400;
	if ((status = request_line_parse(r, line, len)) != 0)
		return status;

	while (line_next(&p, end, &line, &len) && len > 0) {
		const char *colon, *name, *value;
		size_t nlen, vlen;

		for (i = 0; i < len; i++)
			if (((unsigned char)line[i] < 0x20 && line[i] != '\t') || line[i] == 0x7f)
				return 400;
		if (is_ws(line[0])) {
			/* obs-fold: continues the previous field; nothing we interpret. */
			if (!seen_field)
				return 400;
			continue;
		}
		if ((colon = memchr(line, ':', len)) == NULL)
			return 400;
		name = line;
		nlen = (size_t)(colon - line);
		slice_trim(&name, &nlen);
		if (!slice_is_token(name, nlen))
			return 400;
		value = colon + 1;
		vlen = (size_t)(line + len - value);
		slice_trim(&value, &vlen);
		seen_field = 1;

		if (slice_caseeq(name, nlen, "content-length")) {
			if (list_foreach(value, vlen, cl_element, &cl) == -1)
				return 400;
		} else if (slice_caseeq(name, nlen, "transfer-encoding")) {
			/* Only the last coding of the last header decides the framing. */
			have_te = 1;
			te_chunked = list_has(value, vlen, "chunked", 1);
		} else if (slice_caseeq(name, nlen, "connection")) {
			conn_close |= list_has(value, vlen, "close", 0);
			conn_ka |= list_has(value, vlen, "keep-alive", 0);
		} else if (slice_caseeq(name, nlen, "expect")) {
			r->r_expect = slice_caseeq(value, vlen, "100-continue");
		}
	}

	r->r_keepalive = r->r_minor >= 1 ? !conn_close : conn_ka && !conn_close;
	if (have_te) {
		if (!te_chunked)
			return 501;
		r->r_body = BODY_CHUNKED;
		r->r_chunk = CHUNK_SIZE;
		/* RFC 9112 6.1: TE wins over CL, and the connection must not be reused. */
		if (cl.seen)
			r->r_keepalive = 0;
	} else if (cl.seen && cl.value > 0) {
		r->r_body = BODY_LENGTH;
		r->r_body_left = cl.value;
	}
	return request_query_parse(r);
}

/*
 * Connections. Only conn_free() frees a connection. Functions that may call it return -1
 * when they did, and their callers must return at once without touching the conn.
 */

static void
conn_free(struct conn *c)
{
	TAILQ_REMOVE(&origin.o_conns, c, c_entry);
	origin.o_nactive--;
	bufferevent_free(c->c_bev);
	event_free(c->c_timer);
	request_clear(&c->c_req);
	free(c);
}

/*
 * For states that ignore input. Draining also matters when the input sits at the read
 * high-watermark: bufferevent stops reading there, and we would never see the client's
 * EOF.
 */
static void
conn_input_discard(struct conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->c_bev);

	evbuffer_drain(in, evbuffer_get_length(in));
}

static void
conn_timer_add(struct conn *c, unsigned long ms)
{
	struct timeval tv;

	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)(ms % 1000 * 1000);
	evtimer_add(c->c_timer, &tv);
}

/*
 * Our side is done. Shut down the write side and discard input for a while before the
 * close: closing with unread input makes the kernel send RST, which can destroy the
 * response still on its way to the client (pipelined requests after Connection: close,
 * an unread request body).
 */
static int
conn_linger(struct conn *c)
{
	if (c->c_eof) {
		conn_free(c);
		return -1;
	}
	shutdown(bufferevent_getfd(c->c_bev), SHUT_WR);
	c->c_state = CONN_LINGER;
	conn_input_discard(c);
	conn_timer_add(c, LINGER_MS);
	return 0;
}

/* Closes gracefully: everything queued is sent first. */
static int
conn_finish(struct conn *c)
{
	c->c_state = CONN_FLUSH;
	conn_input_discard(c);
	if (evbuffer_get_length(bufferevent_get_output(c->c_bev)) > 0) {
		/* The write callback now fires only once the output is empty. */
		bufferevent_setwatermark(c->c_bev, EV_WRITE, 0, 0);
		return 0;
	}
	return conn_linger(c);
}

/*
 * /reset: the head promised more than we sent. Wait until the kernel has sent every byte
 * (an RST discards whatever is still in the send queue), then close with a zero linger
 * timeout so the close sends RST instead of FIN.
 */
static int
conn_reset_poll(struct conn *c)
{
	evutil_socket_t fd = bufferevent_getfd(c->c_bev);
	struct linger lg;

#ifdef SIOCOUTQ
	int pending = 0;

	if (ioctl(fd, SIOCOUTQ, &pending) == 0 && pending > 0 && c->c_polls++ < RESET_POLLS) {
		conn_timer_add(c, RESET_POLL_MS);
		return 0;
	}
#else
	/* Without a way to ask the kernel, give it a moment to send the queued bytes. */
	if (c->c_polls++ < 10) {
		conn_timer_add(c, RESET_POLL_MS);
		return 0;
	}
#endif
	lg.l_onoff = 1;
	lg.l_linger = 0;
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	conn_free(c);
	return -1;
}

static int
conn_reset_start(struct conn *c)
{
	c->c_state = CONN_RESET;
	c->c_polls = 0;
	conn_input_discard(c);
	if (evbuffer_get_length(bufferevent_get_output(c->c_bev)) > 0) {
		bufferevent_setwatermark(c->c_bev, EV_WRITE, 0, 0);
		return 0;
	}
	return conn_reset_poll(c);
}

/*
 * The whole response is queued. Moves on to the next request, or towards closing.
 * Returns -1 if c was freed.
 */
static int
conn_response_end(struct conn *c)
{
	enum resp_end end = c->c_req.r_end;

	request_clear(&c->c_req);
	switch (end) {
	case END_KEEP:
		c->c_state = CONN_READ_HEAD;
		return 0;
	case END_CLOSE:
		return conn_finish(c);
	case END_RESET:
		return conn_reset_start(c);
	}
	return 0;
}

/* The effective status: ?status= overrides what the endpoint would answer. */
static int
conn_status(const struct conn *c, int status)
{
	return c->c_req.r_status != 0 ? c->c_req.r_status : status;
}

/* The X-Origin-* fields every response carries, each line ended by eol. */
static void
conn_origin_fields(struct conn *c, struct evbuffer *out, const char *eol)
{
	evbuffer_add_printf(out, "X-Origin-Id: %s%sX-Origin-Conn: %llu%sX-Origin-Req: %llu%s",
	                    origin.o_uuid, eol, c->c_serial, eol, c->c_req.r_num, eol);
	if (origin.o_name != NULL)
		evbuffer_add_printf(out, "X-Origin-Name: %s%s", origin.o_name, eol);
}

/*
 * Queues the status line and the fields every response carries. The caller adds its
 * framing fields and then calls conn_head_end(). status is the effective status.
 */
static void
conn_head_begin(struct conn *c, int status)
{
	struct evbuffer *out = bufferevent_get_output(c->c_bev);
	char date[64];
	time_t now = time(NULL);
	struct tm tm;

	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
	evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\nDate: %s\r\n", status, status_reason(status),
	                    date);
	conn_origin_fields(c, out, "\r\n");
	if (c->c_req.r_cc != NULL)
		evbuffer_add_printf(out, "Cache-Control: %s\r\n", c->c_req.r_cc);
	if (c->c_req.r_extra != NULL)
		evbuffer_add(out, c->c_req.r_extra, strlen(c->c_req.r_extra));
}

static void
conn_head_end(struct conn *c)
{
	struct evbuffer *out = bufferevent_get_output(c->c_bev);

	if (c->c_req.r_end == END_CLOSE)
		ADD_LIT(out, "Connection: close\r\n");
	else if (c->c_req.r_minor == 0)
		ADD_LIT(out, "Connection: keep-alive\r\n");
	ADD_LIT(out, "\r\n");
}

/* Answers with a complete in-memory text body. Returns -1 if c was freed. */
static int
conn_reply(struct conn *c, int status, const void *body, size_t len)
{
	struct evbuffer *out = bufferevent_get_output(c->c_bev);
	int code = conn_status(c, status);
	int bodiless = status_bodiless(code);

	conn_head_begin(c, code);
	if (!bodiless)
		evbuffer_add_printf(out, "Content-Type: text/plain\r\nContent-Length: %zu\r\n",
		                    len);
	conn_head_end(c);
	if (!bodiless && !c->c_req.r_head_only)
		evbuffer_add(out, body, len);
	return conn_response_end(c);
}

static int
conn_reply_str(struct conn *c, int status, const char *body)
{
	return conn_reply(c, status, body, strlen(body));
}

/* Protocol errors: the status, its reason as body, then close. */
static int
conn_error(struct conn *c, int status)
{
	struct request *r = &c->c_req;
	char body[64];

	r->r_status = 0;
	r->r_head_only = 0;
	free(r->r_cc);
	r->r_cc = NULL;
	free(r->r_extra);
	r->r_extra = NULL;
	r->r_end = END_CLOSE;
	snprintf(body, sizeof(body), "%d %s\n", status, status_reason(status));
	return conn_reply_str(c, status, body);
}

/*
 * Tops the output up to OUT_HIGH with the streamed pattern body (and chunk framing).
 * Returns 1 once the whole body is queued, 0 if the write callback must call again.
 */
static int
conn_stream_fill(struct conn *c)
{
	struct evbuffer *out = bufferevent_get_output(c->c_bev);
	struct request *r = &c->c_req;

	for (;;) {
		size_t queued = evbuffer_get_length(out), n;

		if (queued >= OUT_HIGH)
			return 0;
		if (r->r_send_chunked && r->r_send_chunk_left == 0) {
			if (r->r_send_left == 0) {
				ADD_LIT(out, "0\r\n\r\n");
				r->r_send_chunked = 0;
				return 1;
			}
			r->r_send_chunk_left =
			        r->r_chunk_size < r->r_send_left ? r->r_chunk_size : r->r_send_left;
			evbuffer_add_printf(out, "%" PRIx64 "\r\n", r->r_send_chunk_left);
			continue;
		}
		if (r->r_send_left == 0)
			return 1;
		n = OUT_HIGH - queued;
		if (n > PATTERN_LEN)
			n = PATTERN_LEN;
		if (n > r->r_send_left)
			n = (size_t)r->r_send_left;
		if (r->r_send_chunked && n > r->r_send_chunk_left)
			n = (size_t)r->r_send_chunk_left;
		pattern_add(out, r->r_send_off, n);
		r->r_send_left -= n;
		r->r_send_off += n;
		if (r->r_send_chunked) {
			r->r_send_chunk_left -= n;
			if (r->r_send_chunk_left == 0)
				ADD_LIT(out, "\r\n");
		}
	}
}

/*
 * Answers with n bytes of the pattern, framed as asked, streamed from the write callback
 * so that any size runs in constant memory. Returns -1 if c was freed.
 */
static int
conn_reply_stream(struct conn *c, uint64_t n, enum frame frame)
{
	struct evbuffer *out = bufferevent_get_output(c->c_bev);
	struct request *r = &c->c_req;
	int code = conn_status(c, 200);
	int bodiless = status_bodiless(code);

	if (frame == FRAME_CHUNKED && r->r_minor == 0)
		frame = FRAME_EOF; /* HTTP/1.0 knows no chunked coding */
	if (frame == FRAME_EOF)
		r->r_end = END_CLOSE;
	else if (frame == FRAME_RESET)
		r->r_end = END_RESET;

	conn_head_begin(c, code);
	if (!bodiless) {
		ADD_LIT(out, "Content-Type: application/octet-stream\r\n");
		if (frame == FRAME_LENGTH)
			evbuffer_add_printf(out, "Content-Length: %" PRIu64 "\r\n", n);
		else if (frame == FRAME_RESET)
			evbuffer_add_printf(out, "Content-Length: %" PRIu64 "\r\n", n * 2);
		else if (frame == FRAME_CHUNKED)
			ADD_LIT(out, "Transfer-Encoding: chunked\r\n");
	}
	conn_head_end(c);

	if (!bodiless && !r->r_head_only) {
		r->r_send_left = n;
		r->r_send_chunked = frame == FRAME_CHUNKED;
		if (r->r_chunk_size == 0)
			r->r_chunk_size = 4096;
	}
	if (conn_stream_fill(c))
		return conn_response_end(c);
	c->c_state = CONN_SEND;
	return 0;
}

/*
 * /bad/KIND: each response is malformed in exactly one way. The X-Origin fields go
 * between the status line and the rest, so tests can still tell which origin sent it.
 * The connection is closed after it, except for the *-keep kinds (a desynced origin that
 * goes on reading requests on the same connection).
 */
struct bad_response {
	const char *br_kind;
	const char *br_status; /* status line with terminator; NULL: br_rest is all there is */
	const char *br_eol;    /* terminator for the X-Origin fields */
	const char *br_rest;   /* remaining fields, blank line and body; may contain NUL */
	size_t br_rest_len;
	int br_keep; /* no Connection: close; the connection stays open if the request allows */
};

#define BAD_RESPONSE(kind, status, eol, rest)                                                      \
	{                                                                                          \
		kind, status, eol, rest, sizeof(rest) - 1, 0                                       \
	}
#define BAD_RESPONSE_KEEP(kind, rest)                                                              \
	{                                                                                          \
		kind, BAD_OK, "\r\n", rest, sizeof(rest) - 1, 1                                    \
	}
#define BAD_OK     "HTTP/1.1 200 OK\r\n"
#define BAD_FIELDS "Content-Type: text/plain\r\nConnection: close\r\n"

static const struct bad_response bad_responses[] = {
        BAD_RESPONSE("bare-lf", "HTTP/1.1 200 OK\n", "\n",
                     "Content-Type: text/plain\nConnection: close\nContent-Length: 6\n\nhello\n"),
        BAD_RESPONSE("dup-cl", BAD_OK, "\r\n",
                     BAD_FIELDS "Content-Length: 5\r\nContent-Length: 7\r\n\r\nhello"),
        BAD_RESPONSE("cl-te", BAD_OK, "\r\n",
                     BAD_FIELDS "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
                                "5\r\nhello\r\n0\r\n\r\n"),
        BAD_RESPONSE("bad-status", "HTTP/1.1 20 OK\r\n", "\r\n",
                     BAD_FIELDS "Content-Length: 5\r\n\r\nhello"),
        BAD_RESPONSE("space-colon", BAD_OK, "\r\n", BAD_FIELDS "Content-Length : 5\r\n\r\nhello"),
        BAD_RESPONSE("obs-fold", BAD_OK, "\r\n",
                     BAD_FIELDS "X-Folded: first\r\n second\r\nContent-Length: 5\r\n\r\nhello"),
        BAD_RESPONSE("nul", BAD_OK, "\r\n",
                     BAD_FIELDS "X-Nul: a\0b\r\nContent-Length: 5\r\n\r\nhello"),
        BAD_RESPONSE("garbage", NULL, NULL, "hello\r\n\r\n"),
        BAD_RESPONSE("bad-chunk", BAD_OK, "\r\n",
                     BAD_FIELDS "Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"),
        /* Kept alive: whoever reads them by the wrong length finds the rest as a response. */
        BAD_RESPONSE_KEEP("cl-te-keep", "Content-Type: text/plain\r\nContent-Length: 5\r\n"
                                        "Transfer-Encoding: chunked\r\n\r\n"
                                        "5\r\nhello\r\n0\r\n\r\n"),
        BAD_RESPONSE_KEEP("dup-cl-keep", "Content-Type: text/plain\r\nContent-Length: 5\r\n"
                                         "Content-Length: 7\r\n\r\nhelloXY"),
};

/* Sends the /bad/ response for kind, then closes; unknown kinds get 404. */
static int
conn_reply_bad(struct conn *c, const char *kind, size_t klen)
{
	struct evbuffer *out = bufferevent_get_output(c->c_bev);
	const struct bad_response *br;
	size_t i;

	for (i = 0; i < sizeof(bad_responses) / sizeof(bad_responses[0]); i++) {
		br = &bad_responses[i];
		if (!slice_eq(kind, klen, br->br_kind))
			continue;
		if (br->br_status != NULL) {
			evbuffer_add(out, br->br_status, strlen(br->br_status));
			conn_origin_fields(c, out, br->br_eol);
		}
		evbuffer_add(out, br->br_rest, br->br_rest_len);
		if (!br->br_keep)
			c->c_req.r_end = END_CLOSE;
		return conn_response_end(c);
	}
	return conn_reply_str(c, 404, "404 Not Found\n");
}

/* The request head as received, one line each ended by LF, then a blank line. */
static void
head_lines_add(struct evbuffer *buf, const struct request *r)
{
	const char *p = r->r_head, *end = r->r_head + r->r_head_len, *line;
	size_t len;

	while (line_next(&p, end, &line, &len) && len > 0) {
		evbuffer_add(buf, line, len);
		ADD_LIT(buf, "\n");
	}
	ADD_LIT(buf, "\n");
}

/* /echo and /headers. Returns -1 if c was freed. */
static int
conn_reply_echo(struct conn *c, int with_body)
{
	struct request *r = &c->c_req;
	struct evbuffer *buf;
	int rv;

	if ((buf = evbuffer_new()) == NULL) {
		conn_free(c);
		return -1;
	}
	head_lines_add(buf, r);
	if (with_body)
		evbuffer_add_printf(buf, "body-length: %" PRIu64 "\nbody-sum: %" PRIu32 "\n",
		                    r->r_body_len, r->r_body_sum);
	rv = conn_reply(c, 200, evbuffer_pullup(buf, -1), evbuffer_get_length(buf));
	evbuffer_free(buf);
	return rv;
}

/* If path is prefix followed by a decimal number up to max, stores it and returns 1. */
static int
path_num(const struct request *r, const char *prefix, uint64_t max, uint64_t *n)
{
	size_t plen = strlen(prefix);

	return r->r_path_len > plen && memcmp(r->r_path, prefix, plen) == 0 &&
	       parse_u64(r->r_path + plen, r->r_path_len - plen, max, n) == 0;
}

/* Whether the head [p, p+n) contains needle (lower case), compared without case. */
static int
head_has(const char *p, size_t n, const char *needle)
{
	size_t k = strlen(needle);

	for (size_t i = 0; p != NULL && i + k <= n; i++)
		if (strncasecmp(p + i, needle, k) == 0)
			return 1;
	return 0;
}

/* Dispatches a request whose body has been consumed. Returns -1 if c was freed. */
static int
origin_route(struct conn *c)
{
	struct request *r = &c->c_req;
	const char *path = r->r_path;
	size_t len = r->r_path_len;
	char body[ID_MAX + 64];
	uint64_t n;

	r->r_end = r->r_keepalive && !r->r_close ? END_KEEP : END_CLOSE;

	if (r->r_notmod && head_has(r->r_head, r->r_head_len, "\nif-none-match:"))
		return conn_reply(c, 304, "", 0);
	if (slice_eq(path, len, "/")) {
		snprintf(body, sizeof(body), "%s\n", origin.o_uuid);
		return conn_reply_str(c, 200, body);
	}
	if (path_num(r, "/bytes/", UINT64_MAX, &n))
		return conn_reply_stream(c, n, FRAME_LENGTH);
	if (path_num(r, "/chunked/", UINT64_MAX, &n))
		return conn_reply_stream(c, n, FRAME_CHUNKED);
	if (path_num(r, "/eof/", UINT64_MAX, &n))
		return conn_reply_stream(c, n, FRAME_EOF);
	if (path_num(r, "/reset/", UINT64_MAX / 2, &n))
		return conn_reply_stream(c, n, FRAME_RESET);
	if (slice_eq(path, len, "/echo"))
		return conn_reply_echo(c, 1);
	if (slice_eq(path, len, "/headers"))
		return conn_reply_echo(c, 0);
	if (slice_eq(path, len, "/sink")) {
		snprintf(body, sizeof(body), "%" PRIu64 " %" PRIu32 "\n", r->r_body_len,
		         r->r_body_sum);
		return conn_reply_str(c, 200, body);
	}
	if (path_num(r, "/status/", 999, &n) && n >= 100) {
		snprintf(body, sizeof(body), "%d %s\n", (int)n, status_reason((int)n));
		return conn_reply_str(c, (int)n, body);
	}
	if (slice_eq(path, len, "/stats")) {
		snprintf(body, sizeof(body),
		         "connections=%llu requests=%llu active=%llu body_bytes=%llu\n",
		         origin.o_nconns, origin.o_nreqs, origin.o_nactive, origin.o_nbody);
		return conn_reply_str(c, 200, body);
	}
	if (slice_eq(path, len, "/hang")) {
		c->c_state = CONN_HANG;
		conn_input_discard(c);
		return 0;
	}
	if (len > 5 && memcmp(path, "/bad/", 5) == 0)
		return conn_reply_bad(c, path + 5, len - 5);
	return conn_reply_str(c, 404, "404 Not Found\n");
}

/* -l: one line to stderr, "WHAT <first line of the head>[ body=N]" (bytes < 0x20 as '?'). */
static void
request_log(const struct request *r, const char *what, int with_body)
{
	const char *nl;
	size_t len, i;
	char line[1024];

	if (!log_requests || r->r_head == NULL)
		return;
	nl = memchr(r->r_head, '\n', r->r_head_len);
	len = nl != NULL ? (size_t)(nl - r->r_head) : r->r_head_len;
	if (len > 0 && r->r_head[len - 1] == '\r')
		len--;
	if (len >= sizeof(line))
		len = sizeof(line) - 1;
	for (i = 0; i < len; i++)
		line[i] = (unsigned char)r->r_head[i] < 0x20 ? '?' : r->r_head[i];
	line[len] = '\0';
	if (with_body)
		fprintf(stderr, "%s %s body=%" PRIu64 "\n", what, line, r->r_body_len);
	else
		fprintf(stderr, "%s %s\n", what, line);
}

/* The body is consumed: answer now or after ?delay=. Returns -1 if c was freed. */
static int
conn_request_ready(struct conn *c)
{
	struct request *r = &c->c_req;
	int stats = slice_eq(r->r_path, r->r_path_len, "/stats");

	request_log(r, "DONE", 1);
	if (reset_requests && !stats)
		return conn_reset_start(c);
	if (r->r_delay_ms == 0 && !stats)
		r->r_delay_ms = default_delay_ms;
	if (c->c_req.r_delay_ms > 0) {
		c->c_state = CONN_DELAY;
		conn_timer_add(c, c->c_req.r_delay_ms);
		return 0;
	}
	return origin_route(c);
}

/*
 * Finds the end of the next request head in in. Empty lines before the request line are
 * dropped (RFC 9112 2.2). Returns the head length, 0 if incomplete or -1 if it exceeds
 * HEAD_MAX. c->c_scan remembers how far we looked, so a slowly arriving head is not
 * rescanned from the start every time.
 */
static ssize_t
conn_head_find(struct conn *c, struct evbuffer *in)
{
	size_t len, avail, scan = c->c_scan;
	const char *p, *nl;

	while (scan == 0 && (len = evbuffer_get_length(in)) > 0) {
		p = (const char *)evbuffer_pullup(in, len < 2 ? (ev_ssize_t)len : 2);
		if (p[0] == '\n')
			evbuffer_drain(in, 1);
		else if (p[0] == '\r' && len >= 2 && p[1] == '\n')
			evbuffer_drain(in, 2);
		else
			break;
	}
	if ((len = evbuffer_get_length(in)) == 0)
		return 0;
	avail = len < HEAD_MAX ? len : HEAD_MAX;
	p = (const char *)evbuffer_pullup(in, (ev_ssize_t)avail);
	while ((nl = memchr(p + scan, '\n', avail - scan)) != NULL) {
		size_t end = (size_t)(nl - p);

		if (end > scan && p[end - 1] == '\r')
			end--;
		if (end == scan && scan > 0) {
			c->c_scan = 0;
			return (ssize_t)(nl - p + 1);
		}
		scan = (size_t)(nl - p + 1);
	}
	c->c_scan = scan;
	return avail == HEAD_MAX ? -1 : 0;
}

/* Returns 1 if the state moved on, 0 if more input is needed, -1 if c was freed. */
static int
conn_read_head(struct conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->c_bev);
	struct request *r = &c->c_req;
	ssize_t len;
	int status;

	if ((len = conn_head_find(c, in)) == 0)
		return 0;
	r->r_num = ++c->c_nreq;
	origin.o_nreqs++;
	if (len == -1)
		return conn_error(c, 431) == -1 ? -1 : 1;
	if ((r->r_head = malloc((size_t)len)) == NULL) {
		conn_free(c);
		return -1;
	}
	r->r_head_len = (size_t)len;
	evbuffer_remove(in, r->r_head, (size_t)len);
	request_log(r, "HEAD", 0);
	if ((status = request_parse(r)) != 0)
		return conn_error(c, status) == -1 ? -1 : 1;

	if (r->r_expect && r->r_minor >= 1 && r->r_body != BODY_NONE)
		ADD_LIT(bufferevent_get_output(c->c_bev), "HTTP/1.1 100 Continue\r\n\r\n");
	c->c_state = CONN_READ_BODY;
	return 1;
}

/* Counts and checksums n bytes of body from in, without copying them. */
static void
body_consume(struct request *r, struct evbuffer *in, size_t n)
{
	struct evbuffer_iovec v[16];

	while (n > 0) {
		int nv = evbuffer_peek(in, (ev_ssize_t)n, NULL, v, 16), i;
		size_t done = 0;

		if (nv > 16)
			nv = 16;
		for (i = 0; i < nv && done < n; i++) {
			const unsigned char *p = v[i].iov_base;
			size_t k, vlen = v[i].iov_len < n - done ? v[i].iov_len : n - done;
			uint32_t sum = r->r_body_sum;

			for (k = 0; k < vlen; k++)
				sum += p[k];
			r->r_body_sum = sum;
			done += vlen;
		}
		evbuffer_drain(in, done);
		r->r_body_len += done;
		origin.o_nbody += done;
		n -= done;
	}
}

/*
 * Reads one line of a chunked body (chunk size, chunk end, trailer) into buf.
 * Returns 1 with *len set, 0 if incomplete or -1 if longer than CHUNK_LINE_MAX.
 */
static int
chunk_line_read(struct evbuffer *in, char *buf, size_t *len)
{
	struct evbuffer_ptr eol;
	size_t eol_len = 0;

	eol = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF);
	if (eol.pos == -1)
		return evbuffer_get_length(in) > CHUNK_LINE_MAX ? -1 : 0;
	if ((size_t)eol.pos > CHUNK_LINE_MAX)
		return -1;
	*len = (size_t)eol.pos;
	evbuffer_remove(in, buf, *len);
	evbuffer_drain(in, eol_len);
	return 1;
}

/* "1a2b[;ext]" with optional whitespace; returns -1 if malformed or absurdly large. */
static int
chunk_size_parse(const char *p, size_t len, uint64_t *size)
{
	uint64_t v = 0;
	size_t i = 0;
	int digits = 0, d;

	while (i < len && is_ws(p[i]))
		i++;
	for (; i < len && (d = hex_val(p[i])) != -1; i++, digits++) {
		if (v >> 56)
			return -1;
		v = v * 16 + (uint64_t)d;
	}
	while (i < len && is_ws(p[i]))
		i++;
	if (digits == 0 || (i < len && p[i] != ';'))
		return -1;
	*size = v;
	return 0;
}

/*
 * Consumes as much of the request body as is buffered, streaming. Calls the endpoint once
 * the body is complete. Returns 1 if the state moved on, 0 if more input is needed, -1 if
 * c was freed.
 */
static int
conn_read_body(struct conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->c_bev);
	struct request *r = &c->c_req;
	char line[CHUNK_LINE_MAX + 1];
	size_t avail, len = 0, n;
	int rv;

	for (;;) {
		switch (r->r_body) {
		case BODY_NONE:
			return conn_request_ready(c) == -1 ? -1 : 1;
		case BODY_LENGTH:
			avail = evbuffer_get_length(in);
			n = avail < r->r_body_left ? avail : (size_t)r->r_body_left;
			body_consume(r, in, n);
			r->r_body_left -= n;
			if (r->r_body_left > 0)
				return 0;
			r->r_body = BODY_NONE;
			break;
		case BODY_CHUNKED:
			if (r->r_chunk == CHUNK_DATA) {
				avail = evbuffer_get_length(in);
				n = avail < r->r_body_left ? avail : (size_t)r->r_body_left;
				body_consume(r, in, n);
				r->r_body_left -= n;
				if (r->r_body_left > 0)
					return 0;
				r->r_chunk = CHUNK_DATA_END;
				break;
			}
			if ((rv = chunk_line_read(in, line, &len)) == 0)
				return 0;
			if (rv == -1)
				return conn_error(c, 400) == -1 ? -1 : 1;
			if (r->r_chunk == CHUNK_SIZE) {
				if (chunk_size_parse(line, len, &r->r_body_left) == -1)
					return conn_error(c, 400) == -1 ? -1 : 1;
				r->r_chunk = r->r_body_left > 0 ? CHUNK_DATA : CHUNK_TRAILER;
			} else if (r->r_chunk == CHUNK_DATA_END) {
				if (len != 0)
					return conn_error(c, 400) == -1 ? -1 : 1;
				r->r_chunk = CHUNK_SIZE;
			} else if (len == 0) {
				r->r_body = BODY_NONE;
			} else if ((r->r_trailer_len += len) > HEAD_MAX) {
				return conn_error(c, 431) == -1 ? -1 : 1;
			}
			break;
		}
	}
}

/*
 * Drives the request/response cycle as far as the buffered input allows. Requests are
 * answered strictly in order, one at a time, so pipelining needs no extra bookkeeping.
 * Called last in every callback, as it may free c.
 */
static void
conn_process(struct conn *c)
{
	int rv;

	for (;;) {
		switch (c->c_state) {
		case CONN_READ_HEAD:
			/* Answer pipelined requests only as fast as the client reads. */
			if (evbuffer_get_length(bufferevent_get_output(c->c_bev)) > OUT_HIGH)
				return;
			rv = conn_read_head(c);
			break;
		case CONN_READ_BODY:
			rv = conn_read_body(c);
			break;
		default:
			return;
		}
		if (rv == -1)
			return;
		if (rv == 0) {
			if (c->c_eof)
				conn_finish(c);
			return;
		}
	}
}

static void
conn_readcb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	(void)bev;
	switch (c->c_state) {
	case CONN_READ_HEAD:
	case CONN_READ_BODY:
		conn_process(c);
		break;
	case CONN_DELAY:
	case CONN_SEND:
		/* Pipelined requests wait; the read high-watermark bounds them. */
		break;
	case CONN_HANG:
	case CONN_FLUSH:
	case CONN_LINGER:
	case CONN_RESET:
		conn_input_discard(c);
		break;
	}
}

static void
conn_writecb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	size_t queued = evbuffer_get_length(bufferevent_get_output(bev));

	switch (c->c_state) {
	case CONN_SEND:
		if (!conn_stream_fill(c))
			return;
		if (conn_response_end(c) == -1)
			return;
		if (c->c_state == CONN_READ_HEAD)
			conn_process(c);
		break;
	case CONN_READ_HEAD:
		/* Output back-pressure released; see conn_process(). */
		conn_process(c);
		break;
	case CONN_FLUSH:
		if (queued == 0)
			conn_linger(c);
		break;
	case CONN_RESET:
		if (queued == 0)
			conn_reset_poll(c);
		break;
	default:
		break;
	}
}

static void
conn_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;

	(void)bev;
	if (what & (BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) {
		conn_free(c);
		return;
	}
	if (!(what & BEV_EVENT_EOF))
		return;
	c->c_eof = 1;
	switch (c->c_state) {
	case CONN_READ_HEAD:
	case CONN_READ_BODY:
		conn_process(c);
		break;
	case CONN_HANG:
		conn_finish(c);
		break;
	case CONN_LINGER:
		conn_free(c);
		break;
	default:
		/* Finish the response; the client may have only half-closed. */
		break;
	}
}

static void
conn_timercb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	(void)fd;
	(void)what;
	switch (c->c_state) {
	case CONN_DELAY:
		if (origin_route(c) == -1)
			return;
		if (c->c_state == CONN_READ_HEAD)
			conn_process(c);
		break;
	case CONN_LINGER:
		conn_free(c);
		break;
	case CONN_RESET:
		conn_reset_poll(c);
		break;
	default:
		break;
	}
}

static void
origin_accept(struct evconnlistener *listener, evutil_socket_t fd, struct sockaddr *sa, int salen,
              void *arg)
{
	struct conn *c;
	int one = 1;

	(void)listener;
	(void)sa;
	(void)salen;
	(void)arg;
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		evutil_closesocket(fd);
		return;
	}
	if ((c->c_bev = bufferevent_socket_new(origin.o_base, fd, BEV_OPT_CLOSE_ON_FREE)) == NULL) {
		evutil_closesocket(fd);
		free(c);
		return;
	}
	if ((c->c_timer = evtimer_new(origin.o_base, conn_timercb, c)) == NULL) {
		bufferevent_free(c->c_bev);
		free(c);
		return;
	}
	/* Small responses should not wait for delayed ACKs. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->c_serial = ++origin.o_nconns;
	c->c_state = CONN_READ_HEAD;
	origin.o_nactive++;
	TAILQ_INSERT_TAIL(&origin.o_conns, c, c_entry);
	bufferevent_setwatermark(c->c_bev, EV_READ, 0, IN_HIGH);
	bufferevent_setwatermark(c->c_bev, EV_WRITE, OUT_LOW, 0);
	bufferevent_setcb(c->c_bev, conn_readcb, conn_writecb, conn_eventcb, c);
	bufferevent_enable(c->c_bev, EV_READ | EV_WRITE);
}

/* Out of descriptors, most likely: pause accepting instead of spinning on the error. */
static void
origin_accept_error(struct evconnlistener *listener, void *arg)
{
	struct timeval tv = {0, 100 * 1000};

	(void)arg;
	fprintf(stderr, "origin: accept: %s\n", strerror(errno));
	evconnlistener_disable(listener);
	evtimer_add(origin.o_accept_retry, &tv);
}

static void
origin_accept_retry(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	evconnlistener_enable(origin.o_listener);
}

static void
origin_signal(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	(void)arg;
	event_base_loopbreak(origin.o_base);
}

static int
origin_uuid_random(char *buf, size_t size)
{
	unsigned char b[16];
	int fd;
	ssize_t n;

	if ((fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	n = read(fd, b, sizeof(b));
	close(fd);
	if (n != (ssize_t)sizeof(b))
		return -1;
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
	snprintf(buf, size, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
	         b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
	         b[13], b[14], b[15]);
	return 0;
}

/* UUID and name go into header values: visible ASCII only. */
static int
id_valid(const char *s)
{
	size_t len = strlen(s), i;

	if (len == 0 || len > ID_MAX)
		return 0;
	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
			return 0;
	return 1;
}

static int
origin_listen(const char *addr, const char *port)
{
	struct addrinfo hints, *res;
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	char serv[NI_MAXSERV];
	int error;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if ((error = getaddrinfo(addr, port, &hints, &res)) != 0) {
		fprintf(stderr, "origin: %s: %s\n", addr, gai_strerror(error));
		return -1;
	}
	origin.o_listener = evconnlistener_new_bind(
	        origin.o_base, origin_accept, NULL,
	        LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
	        never_accept ? 1 : 1024, res->ai_addr, (int)res->ai_addrlen);
	freeaddrinfo(res);
	if (origin.o_listener == NULL) {
		fprintf(stderr, "origin: listen on %s port %s: %s\n", addr, port, strerror(errno));
		return -1;
	}
	if (never_accept)
		evconnlistener_disable(origin.o_listener);
	evconnlistener_set_error_cb(origin.o_listener, origin_accept_error);
	if (getsockname(evconnlistener_get_fd(origin.o_listener), (struct sockaddr *)&ss, &sslen) ==
	            -1 ||
	    getnameinfo((struct sockaddr *)&ss, sslen, NULL, 0, serv, sizeof(serv),
	                NI_NUMERICSERV) != 0) {
		fprintf(stderr, "origin: getsockname: %s\n", strerror(errno));
		return -1;
	}
	printf("READY port=%s uuid=%s\n", serv, origin.o_uuid);
	fflush(stdout);
	return 0;
}

static void
origin_free(void)
{
	struct conn *c;

	while ((c = TAILQ_FIRST(&origin.o_conns)) != NULL)
		conn_free(c);
	if (origin.o_listener != NULL)
		evconnlistener_free(origin.o_listener);
	if (origin.o_accept_retry != NULL)
		event_free(origin.o_accept_retry);
	if (origin.o_sigterm != NULL)
		event_free(origin.o_sigterm);
	if (origin.o_sigint != NULL)
		event_free(origin.o_sigint);
	if (origin.o_base != NULL)
		event_base_free(origin.o_base);
	libevent_global_shutdown();
}

int
main(int argc, char *argv[])
{
	const char *addr = "127.0.0.1", *port = "0", *uuid = NULL;
	struct sigaction sa;
	uint64_t portnum, delay;
	size_t i;
	int ch, rv = 1;

	while ((ch = getopt(argc, argv, "a:p:u:n:hD:NRl")) != -1) {
		switch (ch) {
		case 'N':
			never_accept = 1;
			break;
		case 'R':
			reset_requests = 1;
			break;
		case 'l':
			log_requests = 1;
			break;
		case 'D':
			if (parse_u64(optarg, strlen(optarg), DELAY_MAX_MS, &delay) == -1) {
				fprintf(stderr, "origin: bad delay: %s\n", optarg);
				return 2;
			}
			default_delay_ms = (unsigned long)delay;
			break;
		case 'a':
			addr = optarg;
			break;
		case 'p':
			if (parse_u64(optarg, strlen(optarg), 65535, &portnum) == -1) {
				fprintf(stderr, "origin: bad port: %s\n", optarg);
				return 2;
			}
			port = optarg;
			break;
		case 'u':
			uuid = optarg;
			break;
		case 'n':
			origin.o_name = optarg;
			break;
		case 'h':
			usage();
			return 0;
		default:
			usage();
			return 2;
		}
	}
	if (optind != argc) {
		usage();
		return 2;
	}
	if (uuid != NULL) {
		if (!id_valid(uuid)) {
			fprintf(stderr, "origin: bad uuid: %s\n", uuid);
			return 2;
		}
		snprintf(origin.o_uuid, sizeof(origin.o_uuid), "%s", uuid);
	} else if (origin_uuid_random(origin.o_uuid, sizeof(origin.o_uuid)) == -1) {
		fprintf(stderr, "origin: /dev/urandom: %s\n", strerror(errno));
		return 1;
	}
	if (origin.o_name != NULL && !id_valid(origin.o_name)) {
		fprintf(stderr, "origin: bad name: %s\n", origin.o_name);
		return 2;
	}

	for (i = 0; i < sizeof(pattern); i++)
		pattern[i] = (char)('a' + i % 26);
	TAILQ_INIT(&origin.o_conns);

	/* A client that vanishes mid-response must cost us an EPIPE, not the process. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);

	if ((origin.o_base = event_base_new()) == NULL) {
		fprintf(stderr, "origin: event_base_new failed\n");
		goto done;
	}
	origin.o_sigterm = evsignal_new(origin.o_base, SIGTERM, origin_signal, NULL);
	origin.o_sigint = evsignal_new(origin.o_base, SIGINT, origin_signal, NULL);
	origin.o_accept_retry = evtimer_new(origin.o_base, origin_accept_retry, NULL);
	if (origin.o_sigterm == NULL || origin.o_sigint == NULL || origin.o_accept_retry == NULL ||
	    evsignal_add(origin.o_sigterm, NULL) == -1 ||
	    evsignal_add(origin.o_sigint, NULL) == -1) {
		fprintf(stderr, "origin: cannot set up events\n");
		goto done;
	}
	if (origin_listen(addr, port) == -1)
		goto done;
	if (event_base_dispatch(origin.o_base) == -1) {
		fprintf(stderr, "origin: event loop failed\n");
		goto done;
	}
	rv = 0;
done:
	origin_free();
	return rv;
}
