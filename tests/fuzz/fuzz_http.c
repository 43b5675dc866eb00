/*
 * fuzz_http.c - libFuzzer entry point for proxyd/http.c.
 *
 * Besides looking for memory errors it checks the properties the proxy relies on, and
 * aborts when one fails:
 *   - a parsed head lies inside the input, and parsing just the head gives the same
 *     length while one byte less is still incomplete (the caller re-parses on each read);
 *   - an error carries one of the documented statuses;
 *   - the chunked decoder gives the same data and length whether the body arrives at
 *     once or in pieces.
 *
 * Build: clang -fsanitize=fuzzer,address,undefined -Iproxyd tests/fuzz/fuzz_http.c
 * proxyd/http.c
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct http_limits fuzz_lim = {2048, 512, 24};

static void
check_slice(struct http_slice s, const char *buf, size_t len)
{
	if (s.len == 0)
		return;
	if (s.p < buf || s.p + s.len > buf + len)
		abort();
}

static void
check_head(const char *buf, size_t len, int r, const struct http_msg *m, int is_request)
{
	size_t i;

	if (r == HTTP_AGAIN)
		return;
	if (r == HTTP_ERROR) {
		if (m->error == NULL)
			abort();
		if (!is_request && m->status != 502)
			abort();
		if (is_request && m->status != 400 && m->status != 414 && m->status != 417 &&
		    m->status != 431 && m->status != 501 && m->status != 505)
			abort();
		return;
	}
	if (r <= 0 || (size_t)r > len || m->head_len != (size_t)r ||
	    m->nheaders > fuzz_lim.max_headers)
		abort();
	for (i = 0; i < m->nheaders; i++) {
		check_slice(m->headers[i].name, buf, (size_t)r);
		check_slice(m->headers[i].value, buf, (size_t)r);
		if (m->headers[i].name.len == 0)
			abort();
	}
	if (is_request) {
		check_slice(m->target, buf, (size_t)r);
		check_slice(m->host, buf, (size_t)r);
		if (m->path.len > 0 && m->path.p[0] != '/' && m->path.p[0] != '*')
			abort();
		if (m->version_minor == 1 && m->host_header.p == NULL)
			abort();
		(void)http_request_body(m);
	} else {
		if (m->status_code < 100 || m->status_code > 599)
			abort();
		(void)http_response_body(m, HTTP_M_GET);
		(void)http_response_body(m, HTTP_M_HEAD);
		(void)http_response_body(m, HTTP_M_CONNECT);
	}
	if ((m->flags & HTTP_F_CHUNKED) && (m->flags & HTTP_F_HAS_LENGTH))
		abort();
	(void)http_keepalive(m);
	(void)http_connection_lists(m, "close", 5);
	(void)http_header_find(m, "host");
}

typedef int (*parse_fn)(const char *, size_t, const struct http_limits *, struct http_msg *);

static void
fuzz_head(const char *buf, size_t len, parse_fn parse, int is_request)
{
	static struct http_msg m, m2;
	int r, r2;

	r = parse(buf, len, &fuzz_lim, &m);
	check_head(buf, len, r, &m, is_request);
	if (r > 0) {
		r2 = parse(buf, (size_t)r, &fuzz_lim, &m2);
		if (r2 != r || m2.nheaders != m.nheaders || m2.flags != m.flags)
			abort();
		if (parse(buf, (size_t)r - 1, &fuzz_lim, &m2) != HTTP_AGAIN)
			abort();
	}
}

/* Runs the decoder with pieces of `piece` bytes. Returns 0 done, -1 error, -2 short. */
static int
run_chunked(const char *in, size_t len, size_t piece, char *out, size_t *outlen, size_t *used)
{
	struct http_chunked c;
	size_t avail = piece < len ? piece : len, pos = 0, n;
	int r;

	http_chunked_init(&c);
	c.max_trailer = 256;
	*outlen = 0;
	while (c.state != HTTP_CHUNK_DONE) {
		if (c.state == HTTP_CHUNK_DATA) {
			n = avail - pos;
			if (n > c.remaining)
				n = (size_t)c.remaining;
			if (n > 0) {
				memcpy(out + *outlen, in + pos, n);
				*outlen += n;
				pos += n;
				http_chunked_consume(&c, n);
				continue;
			}
			r = HTTP_AGAIN;
		} else {
			r = http_chunked_step(&c, in + pos, avail - pos);
			if (r == HTTP_ERROR)
				return -1;
			if (r > 0) {
				if ((size_t)r > avail - pos)
					abort();
				pos += (size_t)r;
				continue;
			}
		}
		if (avail == len)
			return -2;
		avail = len - avail < piece ? len : avail + piece;
	}
	*used = pos;
	return 0;
}

static void
fuzz_chunked(const char *buf, size_t len, size_t piece)
{
	static char out1[1 << 16], out2[1 << 16];
	size_t n1 = 0, n2 = 0, u1 = 0, u2 = 0;
	int r1, r2;

	if (len > sizeof(out1))
		return;
	r1 = run_chunked(buf, len, len, out1, &n1, &u1);
	r2 = run_chunked(buf, len, piece, out2, &n2, &u2);
	if (r1 != r2)
		abort();
	if (r1 == 0 && (u1 != u2 || n1 != n2 || memcmp(out1, out2, n1) != 0))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;

	fuzz_head(buf, size, http_parse_request, 1);
	fuzz_head(buf, size, http_parse_response, 0);
	fuzz_chunked(buf, size, size > 0 ? (size_t)(data[0] % 7) + 1 : 1);
	return 0;
}
