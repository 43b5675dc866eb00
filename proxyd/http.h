/*
 * http.h - strict HTTP/1.1 message parser (RFC 9112) and body framing.
 *
 * Contract: pure functions over contiguous bytes, no I/O, no allocation. A parsed
 * message holds (pointer, length) slices into the caller's buffer, valid for as long as
 * that buffer is. A parser returns the number of bytes it consumed (> 0), HTTP_AGAIN when
 * the input is incomplete, or HTTP_ERROR, in which case msg->status holds the status to
 * answer with (400, 414, 417, 431, 501, 505) and msg->error a short static reason.
 * Anything ambiguous is an error: the proxy never forwards what another parser could
 * read differently (request smuggling).
 *
 * Line endings: CRLF is required everywhere in the head and in chunked framing. A bare LF
 * or a bare CR is an error (RFC 9112 2.2 allows recipients to accept bare LF; a proxy that
 * does so disagrees with servers that do not, so proxyd does not).
 */
#ifndef PROXYD_HTTP_H
#define PROXYD_HTTP_H

#include <stddef.h>
#include <stdint.h>

#define HTTP_AGAIN (-2)
#define HTTP_ERROR (-1)

/* Hard upper bound on headers per message; the configured limit may be lower. */
#define HTTP_MAX_HEADERS 128

enum http_method {
	HTTP_M_OTHER = 0, /* a valid token we do not know: forwarded as is */
	HTTP_M_GET,
	HTTP_M_HEAD,
	HTTP_M_POST,
	HTTP_M_PUT,
	HTTP_M_DELETE,
	HTTP_M_CONNECT,
	HTTP_M_OPTIONS,
	HTTP_M_TRACE,
	HTTP_M_PATCH,
};

enum http_target_form {
	HTTP_TARGET_ORIGIN = 0, /* "/path?query" */
	HTTP_TARGET_ABSOLUTE,   /* "http://host:port/path?query" */
	HTTP_TARGET_AUTHORITY,  /* "host:port", CONNECT only */
	HTTP_TARGET_ASTERISK,   /* "*", OPTIONS only */
};

struct http_slice {
	const char *p;
	size_t len;
};

struct http_header {
	struct http_slice name;
	struct http_slice value; /* leading and trailing OWS stripped */
};

/* Message flags derived from the headers while parsing. */
#define HTTP_F_CHUNKED        0x0001 /* Transfer-Encoding: chunked (final, only coding) */
#define HTTP_F_CONN_CLOSE     0x0002 /* Connection: close */
#define HTTP_F_CONN_KEEPALIVE 0x0004 /* Connection: keep-alive */
#define HTTP_F_CONN_UPGRADE   0x0008 /* Connection lists "upgrade" */
#define HTTP_F_EXPECT_100     0x0010 /* Expect: 100-continue */
#define HTTP_F_HAS_LENGTH     0x0020 /* Content-Length present (see content_length) */
#define HTTP_F_HOST_MISMATCH  0x0040 /* absolute-form authority differs from Host */
#define HTTP_F_HAS_UPGRADE    0x0080 /* an Upgrade header is present */

struct http_limits {
	size_t max_head;    /* whole head incl. request line and final CRLF; over it: 431 */
	size_t max_target;  /* request-target length; over it: 414 */
	size_t max_headers; /* header field count, <= HTTP_MAX_HEADERS; over it: 431 */
};

struct http_msg {
	/* request line (requests only) */
	enum http_method method;
	struct http_slice method_name;
	struct http_slice target; /* as received */
	enum http_target_form form;
	struct http_slice scheme; /* absolute-form only, e.g. "http" */
	struct http_slice
	        host;  /* authority host: absolute/authority form, else Host value's host */
	uint16_t port; /* from authority/Host; 0 when absent */
	struct http_slice
	        path; /* origin-form target, or path+query of absolute-form ("/" if empty) */

	/* status line (responses only) */
	int status_code;
	struct http_slice reason;

	int version_minor; /* HTTP/1.<minor>: 0 or 1 */

	struct http_header headers[HTTP_MAX_HEADERS];
	size_t nheaders;
	size_t head_len; /* bytes of the head, including the final CRLF */

	struct http_slice host_header; /* value of the Host header, if any */
	int64_t content_length;        /* -1 when absent */
	unsigned flags;                /* HTTP_F_* */

	/* on HTTP_ERROR */
	int status;
	const char *error;
};

/*
 * Parse a request head from buf[0..len). Returns head length, HTTP_AGAIN or HTTP_ERROR.
 * Rejections (status): malformed request line, bad method token, bad version (505 for
 * HTTP/2+ or HTTP/0.9 forms, 400 otherwise), target with control bytes or spaces (400),
 * target over limit (414, reported as soon as the limit is passed even if incomplete),
 * header block over limit or too many headers (431, also reported early), bare CR or LF,
 * obs-fold, whitespace before a colon, invalid field-name characters, control bytes or NUL
 * in values, duplicate Content-Length (even if equal), invalid Content-Length,
 * Transfer-Encoding other than exactly one final "chunked" (501 for unknown codings, 400
 * for "chunked" not last or repeated), Transfer-Encoding together with Content-Length,
 * Transfer-Encoding on HTTP/1.0, missing Host on HTTP/1.1, more than one Host, invalid Host,
 * CONNECT with content (Content-Length > 0 or Transfer-Encoding), CONNECT without
 * authority-form, authority-form without CONNECT, asterisk-form without OPTIONS.
 * Absolute-form with a differing Host is accepted with HTTP_F_HOST_MISMATCH set (the URI
 * wins; the caller rewrites Host).
 */
int http_parse_request(const char *buf, size_t len, const struct http_limits *lim,
                       struct http_msg *msg);

/*
 * Parse a response head. Same strictness for headers and framing; the status line must be
 * "HTTP/1.x DDD reason". Any error gives status 502 for the caller's convenience.
 */
int http_parse_response(const char *buf, size_t len, const struct http_limits *lim,
                        struct http_msg *msg);

/* Body framing of a message. */
enum http_body {
	HTTP_BODY_NONE = 0,
	HTTP_BODY_LENGTH,  /* content_length bytes */
	HTTP_BODY_CHUNKED, /* chunked coding; decode with http_chunked */
	HTTP_BODY_EOF,     /* until the connection closes (responses only) */
};

enum http_body http_request_body(const struct http_msg *req);
/* req_method: the method of the request this answers (HEAD, CONNECT matter). */
enum http_body http_response_body(const struct http_msg *resp, enum http_method req_method);

/* Whether the connection stays open after this message (version + Connection header). */
int http_keepalive(const struct http_msg *msg);

/* Case-insensitive lookup; returns the first header with that name or NULL. */
const struct http_header *http_header_find(const struct http_msg *msg, const char *name);

/*
 * Whether the Connection header(s) of msg list the token name (case-insensitive), i.e.
 * whether a header of that name is hop-by-hop for this message.
 */
int http_connection_lists(const struct http_msg *msg, const char *name, size_t name_len);

/*
 * Whether a proxy forwarding the request msg removes its header named name as a connection
 * option: the Connection header(s) list it (RFC 9110 7.6.1) and it is not Host. Host is
 * end-to-end: every HTTP/1.1 request carries one (RFC 9112 3.2) and a proxy generates it
 * from an absolute-form target (3.2.2), so "Connection: host" must not strip it and leave
 * the upstream to pick a default virtual host for a request routed by another name.
 */
int http_request_drops_listed(const struct http_msg *msg, const char *name, size_t name_len);

/* Case-insensitive comparison of a slice with a NUL-terminated string. */
int http_slice_eq(struct http_slice s, const char *str);

/*
 * Incremental chunked-body decoder. The caller moves chunk data itself (zero copy); the
 * decoder only reads framing. Usage:
 *
 *	while (state != HTTP_CHUNK_DONE) {
 *		if (c.state == HTTP_CHUNK_DATA) {
 *			n = min(c.remaining, available);
 *			move n data bytes; http_chunked_consume(&c, n);
 *		} else {
 *			r = http_chunked_step(&c, buf, len);   // framing bytes at the buffer head
 *			if (r == HTTP_AGAIN) wait for more (error if len >= max_line)
 *			if (r == HTTP_ERROR) fail; else drain r bytes
 *		}
 *	}
 *
 * Chunk extensions are parsed strictly (token[=token|quoted-string]) and dropped by the
 * proxy. Trailer fields are validated like header fields and their bytes counted; the
 * step that completes the trailer section moves to HTTP_CHUNK_DONE.
 */
enum http_chunk_state {
	HTTP_CHUNK_SIZE = 0, /* expecting a chunk-size line */
	HTTP_CHUNK_DATA,     /* `remaining` data bytes follow */
	HTTP_CHUNK_DATA_END, /* expecting the CRLF after chunk data */
	HTTP_CHUNK_TRAILER,  /* expecting trailer fields or the final CRLF */
	HTTP_CHUNK_DONE,
};

struct http_chunked {
	enum http_chunk_state state;
	uint64_t remaining;   /* data bytes left in the current chunk */
	uint64_t total;       /* data bytes seen so far */
	size_t trailer_bytes; /* bytes of trailer section so far (bounded by max_trailer) */
	size_t max_trailer;   /* 0: default 8192 */
	/*
	 * > 0: a chunk-size line that would take total past max_body is an error (too_large
	 * set), found before any byte of that chunk is data: a caller that relays the body
	 * never passes on a complete body over its limit.
	 */
	uint64_t max_body;
	int too_large;
	const char *error;
};

void http_chunked_init(struct http_chunked *c);
/*
 * Consume framing at buf[0..len): one chunk-size line, one data CRLF, or one trailer
 * line. Returns bytes consumed (> 0), HTTP_AGAIN (a complete line is not there yet), or
 * HTTP_ERROR (c->error says why: bad hex, size overflow beyond 2^63, bad extension, bare
 * LF, missing CRLF after data, bad trailer field, trailer section too large). Never reads
 * chunk data. A chunk-size line longer than 4096 bytes is an error.
 */
int http_chunked_step(struct http_chunked *c, const char *buf, size_t len);
/* The caller moved n (<= remaining) data bytes. */
void http_chunked_consume(struct http_chunked *c, uint64_t n);

/* Reason phrase for a status code ("Bad Request"); "Unknown" when not known. */
const char *http_reason(int status);

#endif /* PROXYD_HTTP_H */
