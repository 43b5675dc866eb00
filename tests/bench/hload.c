/*
 * hload.c - a lean HTTP/1.1 keep-alive load generator for the benchmarks (tests/bench/cache).
 *
 * Why: at 100 KiB responses `wrk -t1` is the bottleneck of the cache benchmark, not the
 * caches: it reads 8 KiB per read(2) and calls ioctl(FIONREAD) after each full read (about
 * 26 system calls per 100 KiB response) and sits at 96% of its CPU while the proxies idle
 * part of theirs, so the req/s ratio between proxies is wrk's ceiling. hload reads with a
 * 256 KiB buffer per connection, one read(2) per readiness event, so a 100 KiB response
 * costs it a handful of system calls and the servers become the bottleneck again.
 *
 * Contract: one thread, epoll (Linux only), CONNS connections to one numeric IPv4 address,
 * each with one GET in flight at a time (no pipelining), for SECS seconds. The request is
 * `GET PATH HTTP/1.1`, Host, the -H headers, Connection: keep-alive (Host and Connection
 * unless given with -H).
 * Responses are parsed here: status line, headers, then the body framed by Content-Length
 * or by `Transfer-Encoding: chunked` (chunk sizes, extensions and trailers handled); a
 * response with neither (body until close) is counted as a read error, as are malformed
 * responses and bytes after a complete response. The body is skipped in place, never
 * copied. A connection the server closes (idle, or after `Connection: close`) is reopened
 * and counted as a reconnection; a request unanswered after the timeout (-t, default 2 s)
 * is a timeout error and its connection is reopened. 1xx responses are skipped.
 * -T: body bytes that arrive after the head are dropped in the kernel with
 * recv(MSG_TRUNC) (TCP: no copy to user space) instead of read(2): on loopback it saves
 * another ~12% of the client's CPU per 100 KiB response (measured: wrk ~68 us, hload
 * ~57 us, hload -T ~50 us of CPU per response; most of the rest is the kernel's TCP
 * work, which loopback charges partly to the receiving CPU). Not a realistic client:
 * off by default, and tests/bench/cache does not use it.
 *
 * Output (at the end, close to `wrk --latency` so the same parser reads both):
 *   N requests in S.SSs, B.BBMB read / Non-2xx or 3xx responses: N (only if N > 0) /
 *   Socket errors: connect N, read N, write N, timeout N / Reconnections: N /
 *   Requests/sec: R / latency 50%, 75%, 90%, 99% in ms (histogram: 1 us buckets below
 *   100 ms, 1 ms buckets above, up to 60 s).
 * Exit status: 0 when at least one response arrived, 1 when none did, 2 on bad usage.
 *
 * Usage: hload -c CONNS -d SECS [-t SECS] [-T] [-H "Name: value"]... http://A.B.C.D[:PORT]/PATH
 * On demand only: `make tests/bench/hload`.
 */
#define _GNU_SOURCE /* memmem */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define BUF_SIZE    (256 * 1024)
#define MAX_HEADERS 32
#define MAX_CONNS   10000
#define MAX_SECS    3600
#define HIST_FINE   100000 /* 1 us buckets: [0, 100 ms) */
#define HIST_COARSE 60000  /* 1 ms buckets: [0, 60 s) */
#define RETRY_NS    100000000LL

enum state {
	ST_IDLE,
	ST_CONNECTING,
	ST_SENDING,
	ST_HEADERS,
	ST_BODY,
	ST_CHUNK_SIZE,
	ST_CHUNK_DATA,
	ST_CHUNK_END,
	ST_TRAILER
};

struct conn {
	int fd;
	enum state st;
	char *buf;
	size_t len;       /* bytes in buf not yet consumed (kept at buf[0..len)) */
	size_t sent;      /* bytes of the request written */
	uint64_t left;    /* body or chunk bytes still to skip */
	int status;       /* of the response being read */
	int close_after;  /* the response says Connection: close */
	int got;          /* bytes of this response arrived */
	int64_t t_req;    /* when the request was started (ns) */
	int64_t retry_at; /* ST_IDLE: when to reconnect (ns) */
	uint32_t ev;      /* epoll events registered */
};

static struct sockaddr_in addr;
static char *req;
static size_t req_len;
static int ep = -1;
static int discard; /* -T: skip body bytes in the kernel (recv MSG_TRUNC), not read(2) them */
static uint64_t n_resp, n_bad_status, n_bytes, e_connect, e_read, e_write, e_timeout, n_reconn;
static uint64_t hist_fine[HIST_FINE], hist_coarse[HIST_COARSE], hist_over;

static int64_t
now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void
usage(void)
{
	fprintf(stderr, "usage: hload -c CONNS -d SECS [-t SECS] [-T] [-H \"Name: value\"]... "
	                "http://A.B.C.D[:PORT]/PATH\n");
	exit(2);
}

static long
num(const char *s, long lo, long hi)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi) {
		fprintf(stderr, "hload: bad number '%s' (%ld..%ld)\n", s, lo, hi);
		usage();
	}
	return v;
}

static void
record(int64_t ns)
{
	int64_t us = ns / 1000;

	if (us < 0)
		us = 0;
	if (us < HIST_FINE)
		hist_fine[us]++;
	else if (us / 1000 < HIST_COARSE)
		hist_coarse[us / 1000]++;
	else
		hist_over++;
}

/* latency percentile p (0..100) in ms */
static double
percentile(double p)
{
	uint64_t total = 0, want, acc = 0;

	for (size_t i = 0; i < HIST_FINE; i++)
		total += hist_fine[i];
	for (size_t i = 0; i < HIST_COARSE; i++)
		total += hist_coarse[i];
	total += hist_over;
	if (total == 0)
		return 0;
	want = (uint64_t)((double)total * p / 100.0 + 0.999999);
	if (want < 1)
		want = 1;
	for (size_t i = 0; i < HIST_FINE; i++) {
		acc += hist_fine[i];
		if (acc >= want)
			return (double)i / 1000.0;
	}
	for (size_t i = 0; i < HIST_COARSE; i++) {
		acc += hist_coarse[i];
		if (acc >= want)
			return (double)i;
	}
	return (double)HIST_COARSE;
}

static void
set_events(struct conn *c, uint32_t ev)
{
	struct epoll_event e;

	if (c->ev == ev)
		return;
	memset(&e, 0, sizeof(e));
	e.events = ev;
	e.data.ptr = c;
	if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e) == 0)
		c->ev = ev;
}

static void
drop(struct conn *c, int64_t retry_at)
{
	if (c->fd >= 0)
		close(c->fd); /* also removes it from the epoll set */
	c->fd = -1;
	c->st = ST_IDLE;
	c->len = 0;
	c->retry_at = retry_at;
}

static void
open_conn(struct conn *c, int64_t now)
{
	struct epoll_event e;
	int one = 1;

	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
	if (c->fd < 0) {
		e_connect++;
		drop(c, now + RETRY_NS);
		return;
	}
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(c->fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 && errno != EINPROGRESS) {
		e_connect++;
		drop(c, now + RETRY_NS);
		return;
	}
	memset(&e, 0, sizeof(e));
	e.events = EPOLLOUT;
	e.data.ptr = c;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &e) < 0) {
		e_connect++;
		drop(c, now + RETRY_NS);
		return;
	}
	c->ev = EPOLLOUT;
	c->st = ST_CONNECTING;
	c->len = 0;
	c->t_req = now; /* the connect counts against the request's timeout */
}

/* write (the rest of) the request; on completion wait for the response */
static void
send_req(struct conn *c)
{
	while (c->sent < req_len) {
		ssize_t n = send(c->fd, req + c->sent, req_len - c->sent, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				c->st = ST_SENDING;
				set_events(c, EPOLLOUT);
				return;
			}
			e_write++;
			drop(c, 0);
			return;
		}
		c->sent += (size_t)n;
	}
	c->st = ST_HEADERS;
	c->status = 0;
	c->close_after = 0;
	c->got = 0;
	set_events(c, EPOLLIN);
}

static void
start_req(struct conn *c, int64_t now)
{
	c->sent = 0;
	c->t_req = now;
	send_req(c);
}

/* header value after "Name:" with leading blanks skipped, or NULL; line is [p, e) */
static const char *
header_value(const char *p, const char *e, const char *name)
{
	size_t n = strlen(name);

	if ((size_t)(e - p) <= n || strncasecmp(p, name, n) != 0 || p[n] != ':')
		return NULL;
	p += n + 1;
	while (p < e && (*p == ' ' || *p == '\t'))
		p++;
	return p;
}

/* does [p, e) contain the token tok (case-insensitive, comma separated)? */
static int
has_token(const char *p, const char *e, const char *tok)
{
	size_t n = strlen(tok);

	while (p < e) {
		const char *q;

		while (p < e && (*p == ' ' || *p == '\t' || *p == ','))
			p++;
		q = p;
		while (q < e && *q != ',')
			q++;
		while (q > p && (q[-1] == ' ' || q[-1] == '\t'))
			q--;
		if ((size_t)(q - p) == n && strncasecmp(p, tok, n) == 0)
			return 1;
		while (p < e && *p != ',')
			p++;
	}
	return 0;
}

/* parse the head [b, b+n) (ending in CRLF CRLF); sets status, close_after and the body
 * state. Returns 0, or -1 if malformed or not framed. */
static int
parse_head(struct conn *c, const char *b, size_t n)
{
	const char *e = b + n, *p, *eol;
	int have_cl = 0, chunked = 0;
	uint64_t cl = 0;

	if (n < 12 || memcmp(b, "HTTP/1.", 7) != 0 || (b[7] != '0' && b[7] != '1') || b[8] != ' ')
		return -1;
	if (b[9] < '1' || b[9] > '5' || b[10] < '0' || b[10] > '9' || b[11] < '0' || b[11] > '9')
		return -1;
	c->status = (b[9] - '0') * 100 + (b[10] - '0') * 10 + (b[11] - '0');
	c->close_after = b[7] == '0'; /* HTTP/1.0: close unless keep-alive */
	p = memchr(b, '\n', n);
	if (p == NULL)
		return -1;
	for (p++; p < e; p = eol + 1) {
		const char *v, *ve;

		eol = memchr(p, '\n', (size_t)(e - p));
		if (eol == NULL)
			return -1;
		ve = eol;
		if (ve > p && ve[-1] == '\r')
			ve--;
		if (ve == p)
			break; /* the empty line */
		if ((v = header_value(p, ve, "Content-Length")) != NULL) {
			char *end;
			unsigned long long x;

			if (*v < '0' || *v > '9')
				return -1;
			errno = 0;
			x = strtoull(v, &end, 10);
			if (errno || (end != ve && *end != ' ' && *end != '\t' && *end != '\r'))
				return -1;
			if (have_cl && x != cl)
				return -1;
			have_cl = 1;
			cl = x;
		} else if ((v = header_value(p, ve, "Transfer-Encoding")) != NULL) {
			if (!has_token(v, ve, "chunked"))
				return -1; /* other codings: not framed for us */
			chunked = 1;
		} else if ((v = header_value(p, ve, "Connection")) != NULL) {
			if (has_token(v, ve, "close"))
				c->close_after = 1;
			else if (has_token(v, ve, "keep-alive"))
				c->close_after = 0;
		}
	}
	if (c->status < 200 || c->status == 204 || c->status == 304) {
		c->left = 0;
		c->st = ST_BODY;
		return 0;
	}
	if (chunked) {
		c->st = ST_CHUNK_SIZE;
		return 0;
	}
	if (!have_cl)
		return -1; /* body until close: not supported (documented above) */
	c->left = cl;
	c->st = ST_BODY;
	return 0;
}

/* a response is complete: count it, then the next request or a reconnection.
 * rest: bytes left in the buffer after it. */
static void
done(struct conn *c, size_t rest, int64_t now)
{
	if (c->status >= 100 && c->status < 200) { /* interim: the real one follows */
		c->st = ST_HEADERS;
		return;
	}
	n_resp++;
	if (c->status >= 400)
		n_bad_status++;
	record(now - c->t_req);
	if (rest > 0) { /* no pipelining: nothing may follow */
		e_read++;
		drop(c, 0);
		return;
	}
	c->len = 0;
	if (c->close_after) {
		n_reconn++;
		drop(c, 0);
		return;
	}
	start_req(c, now);
}

/* find the end of a line in [p, p+n): index past '\n', or 0 */
static size_t
line_end(const char *p, size_t n)
{
	const char *q = memchr(p, '\n', n);

	return q ? (size_t)(q - p) + 1 : 0;
}

/* consume what is in c->buf[0..len) */
static void
process(struct conn *c, int64_t now)
{
	size_t p = 0;

	while (c->fd >= 0) {
		size_t avail = c->len - p, l;
		const char *b = c->buf + p;

		switch (c->st) {
		case ST_HEADERS: {
			const char *h;

			if (avail == 0)
				goto out;
			h = memmem(b, avail, "\r\n\r\n", 4);
			if (h == NULL) {
				if (avail == BUF_SIZE) { /* head larger than the buffer */
					e_read++;
					drop(c, 0);
					return;
				}
				goto out;
			}
			l = (size_t)(h - b) + 4;
			if (parse_head(c, b, l) < 0) {
				e_read++;
				drop(c, 0);
				return;
			}
			p += l;
			break;
		}
		case ST_BODY: {
			uint64_t k = c->left < avail ? c->left : avail;

			p += (size_t)k;
			c->left -= k;
			if (c->left > 0)
				goto out;
			done(c, c->len - p, now);
			if (c->st != ST_HEADERS || c->fd < 0 || c->len == 0)
				return;
			break; /* after a 1xx: the next head follows in the buffer */
		}
		case ST_CHUNK_DATA: {
			uint64_t k = c->left < avail ? c->left : avail;

			p += (size_t)k;
			c->left -= k;
			if (c->left > 0)
				goto out;
			c->st = ST_CHUNK_END;
			break;
		}
		case ST_CHUNK_SIZE:
		case ST_CHUNK_END:
		case ST_TRAILER: {
			size_t le = line_end(b, avail), ll;

			if (le == 0) {
				if (avail > 4096) { /* no sane chunk line is that long */
					e_read++;
					drop(c, 0);
					return;
				}
				goto out;
			}
			ll = le - 1;
			if (ll > 0 && b[ll - 1] == '\r')
				ll--;
			p += le;
			if (c->st == ST_CHUNK_END) {
				if (ll != 0) {
					e_read++;
					drop(c, 0);
					return;
				}
				c->st = ST_CHUNK_SIZE;
			} else if (c->st == ST_CHUNK_SIZE) {
				uint64_t sz = 0;
				size_t i = 0;

				for (; i < ll && i < 16; i++) {
					char ch = b[i];
					int d = ch >= '0' && ch <= '9'   ? ch - '0'
					        : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
					        : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
					                                 : -1;

					if (d < 0)
						break;
					sz = sz * 16 + (uint64_t)d;
				}
				if (i == 0 ||
				    (i < ll && b[i] != ';' && b[i] != ' ' && b[i] != '\t')) {
					e_read++;
					drop(c, 0);
					return;
				}
				if (sz == 0) {
					c->st = ST_TRAILER;
				} else {
					c->left = sz;
					c->st = ST_CHUNK_DATA;
				}
			} else if (ll == 0) { /* end of the trailers */
				done(c, c->len - p, now);
				if (c->st != ST_HEADERS || c->fd < 0 || c->len == 0)
					return;
			}
			break;
		}
		default:
			goto out;
		}
	}
	return;
out:
	/* keep the unconsumed tail at the start of the buffer (a partial head or line) */
	if (p > 0 && c->fd >= 0) {
		memmove(c->buf, c->buf + p, c->len - p);
		c->len -= p;
	}
}

static void
on_readable(struct conn *c, int64_t now)
{
	ssize_t n;
	int skip = discard && c->len == 0 && c->left > 0 &&
	           (c->st == ST_BODY || c->st == ST_CHUNK_DATA);

	do
		if (skip) /* TCP: MSG_TRUNC drops up to `left` bytes without copying them */
			n = recv(c->fd, NULL,
			         c->left < SIZE_MAX / 2 ? (size_t)c->left : SIZE_MAX / 2,
			         MSG_TRUNC | MSG_DONTWAIT);
		else
			n = read(c->fd, c->buf + c->len, BUF_SIZE - c->len);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return;
		e_read++;
		drop(c, 0);
		return;
	}
	if (n == 0) {
		if (c->got == 0 && c->st == ST_HEADERS) {
			n_reconn++; /* closed while idle (keep-alive ended) */
		} else {
			e_read++; /* closed in the middle of a response */
		}
		drop(c, 0);
		return;
	}
	c->got = 1;
	n_bytes += (uint64_t)n;
	if (skip) {
		c->left -= (uint64_t)n < c->left ? (uint64_t)n : c->left;
		if (c->left > 0)
			return;
		if (c->st == ST_CHUNK_DATA) {
			c->st = ST_CHUNK_END;
			return;
		}
		/* fall through to process(): an empty ST_BODY with left 0 completes */
	} else {
		c->len += (size_t)n;
	}
	process(c, now);
}

static void
on_event(struct conn *c, uint32_t ev, int64_t now)
{
	if (c->fd < 0)
		return;
	if (c->st == ST_CONNECTING) {
		int err = 0;
		socklen_t l = sizeof(err);

		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0 || err != 0 ||
		    (ev & (EPOLLERR | EPOLLHUP))) {
			e_connect++;
			drop(c, now + RETRY_NS);
			return;
		}
		start_req(c, now);
		return;
	}
	if (c->st == ST_SENDING) {
		if (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))
			send_req(c);
		return;
	}
	if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP))
		on_readable(c, now);
}

static void
add_header_line(char **r, size_t *len, size_t *cap, const char *s)
{
	size_t n = strlen(s);

	if (*len + n + 1 > *cap) {
		*cap = (*len + n + 1) * 2;
		*r = realloc(*r, *cap);
		if (*r == NULL) {
			perror("hload: realloc");
			exit(1);
		}
	}
	memcpy(*r + *len, s, n);
	*len += n;
	(*r)[*len] = '\0';
}

int
main(int argc, char **argv)
{
	const char *headers[MAX_HEADERS];
	int nheaders = 0, opt, have_host = 0, have_conn = 0;
	long conns = 0, secs = 0, timeout_s = 2;
	char host[64], hostport[80];
	const char *url, *path, *hp;
	long port = 80;
	size_t cap = 0;
	struct conn *cs;
	struct epoll_event *evs;
	int64_t t0, t_end, now, last_scan;
	double elapsed;

	while ((opt = getopt(argc, argv, "c:d:t:H:Th")) != -1) {
		switch (opt) {
		case 'c':
			conns = num(optarg, 1, MAX_CONNS);
			break;
		case 'd':
			secs = num(optarg, 1, MAX_SECS);
			break;
		case 't':
			timeout_s = num(optarg, 1, MAX_SECS);
			break;
		case 'T':
			discard = 1;
			break;
		case 'H':
			if (nheaders == MAX_HEADERS || strchr(optarg, ':') == NULL ||
			    strpbrk(optarg, "\r\n") != NULL) {
				fprintf(stderr,
				        "hload: bad or too many -H (at most %d \"Name: value\")\n",
				        MAX_HEADERS);
				usage();
			}
			if (strncasecmp(optarg, "Host:", 5) == 0)
				have_host = 1;
			if (strncasecmp(optarg, "Connection:", 11) == 0)
				have_conn = 1;
			headers[nheaders++] = optarg;
			break;
		default:
			usage();
		}
	}
	if (optind != argc - 1 || conns == 0 || secs == 0)
		usage();
	url = argv[optind];
	if (strncmp(url, "http://", 7) != 0) {
		fprintf(stderr, "hload: only http:// URLs\n");
		usage();
	}
	hp = url + 7;
	path = strchr(hp, '/');
	if (path == NULL)
		path = "/";
	{
		size_t hl = (size_t)((strchr(hp, '/') ? strchr(hp, '/') : hp + strlen(hp)) - hp);
		const char *colon;

		if (hl == 0 || hl >= sizeof(hostport)) {
			fprintf(stderr, "hload: bad host in '%s'\n", url);
			usage();
		}
		memcpy(hostport, hp, hl);
		hostport[hl] = '\0';
		colon = strchr(hostport, ':');
		if (colon) {
			port = num(colon + 1, 1, 65535);
			hl = (size_t)(colon - hostport);
		}
		if (hl >= sizeof(host)) {
			fprintf(stderr, "hload: bad host in '%s'\n", url);
			usage();
		}
		memcpy(host, hostport, hl);
		host[hl] = '\0';
	}
	memset(&addr, 0, sizeof(addr));
	addr.sin_family = AF_INET;
	addr.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
		fprintf(stderr, "hload: the host must be a numeric IPv4 address: '%s'\n", host);
		usage();
	}

	add_header_line(&req, &req_len, &cap, "GET ");
	add_header_line(&req, &req_len, &cap, path);
	add_header_line(&req, &req_len, &cap, " HTTP/1.1\r\n");
	if (!have_host) {
		add_header_line(&req, &req_len, &cap, "Host: ");
		add_header_line(&req, &req_len, &cap, hostport);
		add_header_line(&req, &req_len, &cap, "\r\n");
	}
	for (int i = 0; i < nheaders; i++) {
		add_header_line(&req, &req_len, &cap, headers[i]);
		add_header_line(&req, &req_len, &cap, "\r\n");
	}
	if (!have_conn)
		add_header_line(&req, &req_len, &cap, "Connection: keep-alive\r\n");
	add_header_line(&req, &req_len, &cap, "\r\n");

	signal(SIGPIPE, SIG_IGN);
	ep = epoll_create1(EPOLL_CLOEXEC);
	cs = calloc((size_t)conns, sizeof(*cs));
	evs = calloc((size_t)conns, sizeof(*evs));
	if (ep < 0 || cs == NULL || evs == NULL) {
		perror("hload: setup");
		return 1;
	}
	t0 = now_ns();
	for (long i = 0; i < conns; i++) {
		cs[i].buf = malloc(BUF_SIZE);
		if (cs[i].buf == NULL) {
			perror("hload: malloc");
			return 1;
		}
		cs[i].fd = -1;
		open_conn(&cs[i], t0);
	}
	t_end = t0 + (int64_t)secs * 1000000000LL;
	last_scan = t0;
	now = t0;
	/* bounded by the duration: every wait ends by t_end at the latest */
	while (now < t_end) {
		int wait_ms = (int)((t_end - now) / 1000000) + 1, n;

		if (wait_ms > 100)
			wait_ms = 100;
		n = epoll_wait(ep, evs, (int)conns, wait_ms);
		if (n < 0 && errno != EINTR) {
			perror("hload: epoll_wait");
			break;
		}
		now = now_ns();
		for (int i = 0; i < n; i++)
			on_event(evs[i].data.ptr, evs[i].events, now);
		/* reopen closed connections at once; every 50 ms: timeouts and delayed retries */
		for (long i = 0; i < conns; i++) {
			struct conn *c = &cs[i];

			if (c->st == ST_IDLE && c->retry_at <= now)
				open_conn(c, now);
		}
		if (now - last_scan >= 50000000LL) {
			last_scan = now;
			for (long i = 0; i < conns; i++) {
				struct conn *c = &cs[i];

				if (c->st != ST_IDLE &&
				    now - c->t_req > (int64_t)timeout_s * 1000000000LL) {
					e_timeout++;
					drop(c, c->st == ST_CONNECTING ? now + RETRY_NS : 0);
				}
			}
		}
	}
	elapsed = (double)(now - t0) / 1e9;
	for (long i = 0; i < conns; i++) {
		if (cs[i].fd >= 0)
			close(cs[i].fd);
		free(cs[i].buf);
	}

	printf("hload %lds test @ %s\n", secs, url);
	printf("  %ld connections, one request in flight each, %d KiB read buffer\n", conns,
	       BUF_SIZE / 1024);
	printf("  Latency Distribution\n");
	printf("     50%% %10.3fms\n", percentile(50));
	printf("     75%% %10.3fms\n", percentile(75));
	printf("     90%% %10.3fms\n", percentile(90));
	printf("     99%% %10.3fms\n", percentile(99));
	printf("  %llu requests in %.2fs, %.2fMB read\n", (unsigned long long)n_resp, elapsed,
	       (double)n_bytes / 1048576.0);
	if (n_bad_status > 0)
		printf("  Non-2xx or 3xx responses: %llu\n", (unsigned long long)n_bad_status);
	printf("Socket errors: connect %llu, read %llu, write %llu, timeout %llu\n",
	       (unsigned long long)e_connect, (unsigned long long)e_read,
	       (unsigned long long)e_write, (unsigned long long)e_timeout);
	printf("Reconnections: %llu\n", (unsigned long long)n_reconn);
	printf("Requests/sec: %10.2f\n", elapsed > 0 ? (double)n_resp / elapsed : 0.0);
	printf("Transfer/sec: %10.2fMB\n",
	       elapsed > 0 ? (double)n_bytes / 1048576.0 / elapsed : 0.0);
	free(cs);
	free(evs);
	free(req);
	close(ep);
	return n_resp > 0 ? 0 : 1;
}
