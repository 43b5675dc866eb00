#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/bufferevent_struct.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "acl.h"
#include "anon.h"
#include "auth.h"
#include "collapse.h"
#include "log.h"
#include "metrics.h"
#include "netpolicy.h"
#include "resolve.h"
#include "testhook.h"
#include "policy.h"
#include "session.h"
#include "session_int.h"
#include "store.h"
#include "tls.h"
#include "tunnel.h"

_Static_assert(CMODE_UPDATING == METRICS_CACHE_RESULTS, "metrics.c names the CMODE_* results");

/* Most bytes bev_readcb() reads per readiness event (libevent's own reads take 4 KiB). */
#define READ_FIRST 4096
/* Plaintext per TLS record written by bev_flush(): the protocol's maximum. */
#define TLS_RECORD (16 * 1024)
/* Longest chunk-size or trailer line looked at in one go. */
#define CHUNK_LOOK (16 * 1024)
/* How long a closing connection keeps reading (and discarding) a client's unread body. */
#define LINGER_MS 2000

/* Per CMODE_*: the X-Cache (and access log) word, and Cache-Status's fwd= when forwarded. */
const struct session_cmode session_cmode_info[] = {
        [CMODE_NONE] = {"", ""},
        [CMODE_MISS] = {"MISS", "miss"},
        [CMODE_EXPIRED] = {"EXPIRED", "stale"},
        [CMODE_BYPASS] = {"BYPASS", "bypass"},
        [CMODE_HIT] = {"HIT", ""},
        [CMODE_REVALIDATED] = {"REVALIDATED", "stale"},
        [CMODE_STALE] = {"STALE", "stale"},
        [CMODE_SWR] = {"STALE", ""},
        [CMODE_UPDATING] = {"UPDATING", ""},
};

uint64_t session_ids;

static void session_read_head(struct session *s);
static void session_connect(struct session *s);
static int session_next_allowed(struct session *s, int cond, int reached);
static void session_pump_request(struct session *s);
static void session_pump_response(struct session *s);
static void session_response_done(struct session *s);
static void session_finish(struct session *s);
static int session_is_purge(const struct http_msg *msg);

static struct timeval
ms_tv(uint32_t ms)
{
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
	return tv;
}

/*
 * ms as a timeout for events of env's base. Every connection of a worker uses the same few
 * durations (the configured timeouts) and re-arms them several times per request, so they
 * are libevent common timeouts: events with one duration sit in a FIFO list, and re-arming
 * one is O(1) instead of a min-heap removal and insertion. 0 stays 0 ("none" for
 * bufferevents); beyond SESSION_TIMEOUTS durations (many reloads) the heap serves.
 */
static struct timeval
env_tv(struct session_env *env, uint32_t ms)
{
	struct timeval tv = ms_tv(ms);
	const struct timeval *c;

	if (ms == 0)
		return tv;
	for (unsigned i = 0; i < env->ntmo; i++)
		if (env->tmo[i].ms == ms)
			return env->tmo[i].tv;
	if (env->ntmo < SESSION_TIMEOUTS &&
	    (c = event_base_init_common_timeout(env->base, &tv)) != NULL) {
		env->tmo[env->ntmo].ms = ms;
		env->tmo[env->ntmo].tv = *c;
		return env->tmo[env->ntmo++].tv;
	}
	return tv;
}

static void
session_timer_set(struct session *s, uint32_t ms)
{
	struct timeval tv = env_tv(s->env, ms);

	evtimer_add(s->timer, &tv);
}

/*
 * A message head built in a local buffer and added to an evbuffer in large pieces: a head
 * is some thirty small pieces, and every evbuffer_add costs a call into libevent, its
 * callbacks, and often a new chain. hb_flush() before anything else writes to dst.
 */
struct hbuf {
	struct evbuffer *dst;
	size_t n;
	char b[4096];
};

static void
hb_init(struct hbuf *h, struct evbuffer *dst)
{
	h->dst = dst;
	h->n = 0;
}

static void
hb_flush(struct hbuf *h)
{
	if (h->n > 0)
		evbuffer_add(h->dst, h->b, h->n);
	h->n = 0;
}

static void
hb_add(struct hbuf *h, const void *p, size_t len)
{
	if (len > sizeof(h->b) - h->n) {
		hb_flush(h);
		if (len > sizeof(h->b)) {
			evbuffer_add(h->dst, p, len);
			return;
		}
	}
	memcpy(h->b + h->n, p, len);
	h->n += len;
}

static void
hb_header(struct hbuf *h, const struct http_header *hd)
{
	if (hd->name.len + hd->value.len + 4 <= sizeof(h->b) - h->n) {
		char *d = h->b + h->n;

		memcpy(d, hd->name.p, hd->name.len);
		d += hd->name.len;
		*d++ = ':';
		*d++ = ' ';
		memcpy(d, hd->value.p, hd->value.len);
		d += hd->value.len;
		*d++ = '\r';
		*d++ = '\n';
		h->n = (size_t)(d - h->b);
		return;
	}
	hb_add(h, hd->name.p, hd->name.len);
	hb_add(h, ": ", 2);
	hb_add(h, hd->value.p, hd->value.len);
	hb_add(h, "\r\n", 2);
}

/* ---------------------------------------------------------------- body pump */

static void
pump_init(struct pump *p, enum http_body kind, int64_t length, int out_chunked)
{
	memset(p, 0, sizeof(*p));
	p->kind = kind;
	p->remaining = length > 0 ? (uint64_t)length : 0;
	p->out_chunked = out_chunked;
	http_chunked_init(&p->ch);
	if (kind == HTTP_BODY_NONE || (kind == HTTP_BODY_LENGTH && length <= 0))
		p->done = 1;
}

/* Digits of v in base 10 or 16 at buf (room for 20); returns their count. No printf on the
 * per-request path: it showed in profiles. */
static size_t
fmt_u64(char *buf, uint64_t v, unsigned base)
{
	static const char digits[] = "0123456789abcdef";
	char tmp[20];
	size_t n = 0, i;

	do {
		tmp[n++] = digits[v % base];
		v /= base;
	} while (v != 0);
	for (i = 0; i < n; i++)
		buf[i] = tmp[n - 1 - i];
	return n;
}

/* fmt_u64() for session_cache.c (session_int.h). */
size_t
session_fmt_u64(char *buf, uint64_t v, unsigned base)
{
	return fmt_u64(buf, v, base);
}

static void
pump_emit_chunk_head(struct evbuffer *dst, size_t n)
{
	char line[24];
	size_t len = fmt_u64(line, n, 16);

	line[len++] = '\r';
	line[len++] = '\n';
	evbuffer_add(dst, line, len);
}

/*
 * Move as much body as is available from src to dst while dst holds less than RELAY_HIGH.
 * Returns 1 when the body is complete, 0 when more input or output room is needed, -1 on
 * a framing error (p->ch.error says which).
 */
/* The next n body bytes at the front of src also go to the cache entry being written. */
static void
pump_tee(struct pump *p, struct evbuffer *src, size_t n)
{
	struct evbuffer_iovec v[8];
	struct evbuffer_ptr at;
	size_t left = n;

	if (p->tee_failed)
		return;
	evbuffer_ptr_set(src, &at, 0, EVBUFFER_PTR_SET);
	while (left > 0) {
		int nv = evbuffer_peek(src, (ev_ssize_t)left, &at, v, 8);

		if (nv <= 0)
			break;
		for (int i = 0; i < nv && i < 8 && left > 0; i++) {
			size_t take = v[i].iov_len < left ? v[i].iov_len : left;

			if (cache_put_write(p->tee, v[i].iov_base, take) == -1) {
				p->tee_failed = 1;
				return;
			}
			left -= take;
			evbuffer_ptr_set(src, &at, take, EVBUFFER_PTR_ADD);
		}
	}
}

static int
pump_run(struct pump *p, struct evbuffer *src, struct evbuffer *dst)
{
	while (!p->done) {
		size_t avail = evbuffer_get_length(src), n;

		if (evbuffer_get_length(dst) >= RELAY_HIGH)
			return 0;
		switch (p->kind) {
		case HTTP_BODY_NONE:
			p->done = 1;
			break;
		case HTTP_BODY_LENGTH:
			if (avail == 0)
				return 0;
			n = avail < p->remaining ? avail : (size_t)p->remaining;
			if (p->tee != NULL)
				pump_tee(p, src, n);
			evbuffer_remove_buffer(src, dst, n);
			p->remaining -= n;
			p->moved += n;
			if (p->remaining == 0)
				p->done = 1;
			break;
		case HTTP_BODY_EOF:
			if (avail == 0)
				return 0;
			if (p->out_chunked)
				pump_emit_chunk_head(dst, avail);
			if (p->tee != NULL)
				pump_tee(p, src, avail);
			evbuffer_remove_buffer(src, dst, avail);
			if (p->out_chunked)
				evbuffer_add(dst, "\r\n", 2);
			p->moved += avail;
			break;
		case HTTP_BODY_CHUNKED:
			if (p->ch.state == HTTP_CHUNK_DATA) {
				if (avail == 0)
					return 0;
				n = avail < p->ch.remaining ? avail : (size_t)p->ch.remaining;
				if (p->out_chunked)
					pump_emit_chunk_head(dst, n);
				if (p->tee != NULL)
					pump_tee(p, src, n);
				evbuffer_remove_buffer(src, dst, n);
				if (p->out_chunked)
					evbuffer_add(dst, "\r\n", 2);
				http_chunked_consume(&p->ch, n);
				p->moved += n;
			} else if (p->ch.state == HTTP_CHUNK_DONE) {
				/* Trailer fields are dropped: none of ours needs them. */
				if (p->out_chunked)
					evbuffer_add(dst, "0\r\n\r\n", 5);
				p->done = 1;
			} else {
				if (avail == 0)
					return 0;
				size_t look = avail < CHUNK_LOOK ? avail : CHUNK_LOOK;
				const char *ptr = (const char *)evbuffer_pullup(src, (ssize_t)look);
				int r = http_chunked_step(&p->ch, ptr, look);

				if (r == HTTP_ERROR)
					return -1;
				if (r == HTTP_AGAIN) {
					if (look == CHUNK_LOOK) {
						p->ch.error = "chunk framing line too long";
						return -1;
					}
					return 0;
				}
				evbuffer_drain(src, (size_t)r);
			}
			break;
		}
	}
	return 1;
}

/*
 * The read event of a socket bufferevent, with bev_own_reads(): what libevent's own read
 * callback does (bufferevent_sock.c, 2.1), minus its ioctl(FIONREAD) before every read,
 * which costs a system call per read to size a buffer: reading up to READ_FIRST into the
 * evbuffer's free space needs no exact size. Watermarks, timeouts, enabling and suspending
 * stay libevent's: it adds and deletes this event as before, the input's watermark callback
 * still suspends reading at the high mark, and results go to the bufferevent's callbacks
 * as libevent delivers them (read callback at the low mark; EOF, error and timeout with
 * BEV_EVENT_READING after reading was disabled).
 */
static void
bev_readcb(evutil_socket_t fd, short what, void *arg)
{
	struct bufferevent *bev = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct evbuffer_iovec v[2];
	struct iovec iov[2];
	ev_ssize_t room = bufferevent_get_max_single_read(bev);
	short ev = BEV_EVENT_READING;
	ssize_t r = -1;
	int n, err;

	if (what == EV_TIMEOUT) { /* EV_TIMEOUT|EV_READ: data came, the timeout does not count */
		ev |= BEV_EVENT_TIMEOUT;
		goto fail;
	}
	if (bev->wm_read.high != 0) {
		size_t len = evbuffer_get_length(in);

		if (len >= bev->wm_read.high) {
			/* the watermark callback adds the event again once input drains */
			event_del(&bev->ev_read);
			return;
		}
		if ((ev_ssize_t)(bev->wm_read.high - len) < room)
			room = (ev_ssize_t)(bev->wm_read.high - len);
	}
	if (room > READ_FIRST || room <= 0)
		room = READ_FIRST;
	evbuffer_unfreeze(in, 0);
	if ((n = evbuffer_reserve_space(in, room, v, 2)) > 0) {
		for (int i = 0; i < n; i++) {
			iov[i].iov_base = v[i].iov_base;
			iov[i].iov_len = v[i].iov_len;
		}
		r = n == 1 ? read(fd, iov[0].iov_base, iov[0].iov_len) : readv(fd, iov, n);
		err = errno;
		size_t left = r > 0 ? (size_t)r : 0;
		for (int i = 0; i < n; i++) {
			v[i].iov_len = left < v[i].iov_len ? left : v[i].iov_len;
			left -= v[i].iov_len;
		}
		evbuffer_commit_space(in, v, r > 0 ? n : 0);
		errno = err;
	}
	evbuffer_freeze(in, 0);
	if (n <= 0) {
		errno = ENOMEM; /* libevent's read reports it as an error too */
		r = -1;
	} else if (r > 0) {
		bufferevent_trigger(bev, EV_READ, 0); /* the read callback, at the low mark */
		return;
	} else if (r == -1 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
		return;
	}
	ev |= r == 0 ? BEV_EVENT_EOF : BEV_EVENT_ERROR;
fail:
	err = errno; /* for the event callback */
	bufferevent_incref(bev);
	bufferevent_disable(bev, EV_READ);
	errno = err;
	bufferevent_trigger_event(bev, ev, 0);
	bufferevent_decref(bev);
}

/*
 * Read bev (a socket bufferevent with its descriptor set, not TLS) with bev_readcb()
 * instead of libevent's read callback. It reassigns the bufferevent's own read event
 * (struct bufferevent is public in event2/bufferevent_struct.h), so call it again after
 * anything that sets the descriptor (bufferevent_setfd, bufferevent_socket_connect).
 */
static void
bev_own_reads(struct bufferevent *bev)
{
	struct event *ev = &bev->ev_read;
	int pending = event_pending(ev, EV_READ, NULL);
	evutil_socket_t fd = event_get_fd(ev);

	if (fd < 0 || bufferevent_openssl_get_ssl(bev) != NULL)
		return;
	event_del(ev);
	event_assign(ev, bufferevent_get_base(bev), fd, EV_READ | EV_PERSIST | EV_FINALIZE,
	             bev_readcb, bev);
	if (pending)
		event_add(ev, evutil_timerisset(&bev->timeout_read) ? &bev->timeout_read : NULL);
}

/*
 * libevent 2.1 reads at most 4 KiB per readiness event (EVBUFFER_MAX_READ). While a body
 * streams, read up to IO_CHUNK more at once, so a large transfer costs one wakeup per
 * 64 KiB rather than per 4. End of file and errors are left where they are: libevent's own
 * next read reports them.
 */
static void
bev_read_more(struct bufferevent *bev)
{
	struct evbuffer *in = bufferevent_get_input(bev);
	struct evbuffer_iovec v[2];
	struct iovec iov[2];
	ssize_t r;
	int n;

	if (evbuffer_get_length(in) >= RELAY_HIGH || bufferevent_openssl_get_ssl(bev) != NULL)
		return; /* TLS: only the bufferevent may read the socket */
	/* a socket bufferevent keeps the end of its input frozen outside its own reads */
	evbuffer_unfreeze(in, 0);
	if ((n = evbuffer_reserve_space(in, IO_CHUNK, v, 2)) <= 0) {
		evbuffer_freeze(in, 0);
		return;
	}
	for (int i = 0; i < n; i++) {
		iov[i].iov_base = v[i].iov_base;
		iov[i].iov_len = v[i].iov_len;
	}
	r = readv(bufferevent_getfd(bev), iov, n);
	if (r <= 0) {
		evbuffer_commit_space(in, v, 0);
		evbuffer_freeze(in, 0);
		return;
	}
	for (int i = 0; i < n; i++) {
		size_t take = (size_t)r < v[i].iov_len ? (size_t)r : v[i].iov_len;
		v[i].iov_len = take;
		r -= (ssize_t)take;
	}
	evbuffer_commit_space(in, v, n);
	evbuffer_freeze(in, 0);
}

/*
 * TLS: encrypt and write bev's output now, in records of up to TLS_RECORD (a response head
 * and a small body go out as one record and one write(2)), instead of arming EV_WRITE and
 * letting the bufferevent write on the next loop pass, one SSL_write per buffer chain: that
 * cost two epoll_ctl, a wakeup and a record per chain for every response. Only while
 * EV_WRITE is off, i.e. while the bufferevent has no write of its own under way that
 * OpenSSL would want retried. A write that blocks (or fails) leaves the data in the output
 * and hands over to the bufferevent: its retry starts at the same bytes, with at least as
 * many of them (the first chain is made contiguous over the blocked length, and its own
 * writes take up to 16 KiB; SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER is set by libevent), which
 * is what OpenSSL requires, and it reports an error through the event callback as usual.
 */
static void
bev_flush_tls(struct bufferevent *bev, SSL *ssl)
{
	struct evbuffer *out = bufferevent_get_output(bev);
	size_t budget = RELAY_HIGH, len;

	if ((bufferevent_get_enabled(bev) & EV_WRITE) || !SSL_is_init_finished(ssl)) {
		bufferevent_enable(bev, EV_WRITE);
		return;
	}
	while ((len = evbuffer_get_length(out)) > 0 && budget > 0) {
		size_t n = len < TLS_RECORD ? len : TLS_RECORD;
		unsigned char *p = evbuffer_pullup(out, (ev_ssize_t)n);
		int r;

		if (p == NULL)
			break;
		ERR_clear_error();
		if ((r = SSL_write(ssl, p, (int)n)) <= 0)
			break; /* the bufferevent retries it, or reports the error */
		evbuffer_drain(out, (size_t)r);
		budget = (size_t)r < budget ? budget - (size_t)r : 0;
	}
	if (evbuffer_get_length(out) > 0)
		bufferevent_enable(bev, EV_WRITE);
	else /* libevent 2.1 arms the write event whenever output is added: unarm it */
		bufferevent_disable(bev, EV_WRITE);
}

/*
 * Write bev's pending output now, as nginx and HAProxy do, instead of arming a write event
 * and writing on the next loop pass: a message that fits the socket buffer costs one
 * writev and no epoll_ctl. EV_WRITE (and with it the write timeout) is enabled only for a
 * remainder; the write callbacks disable it again once the output is empty. Every place
 * that adds output calls this afterwards, since output added while EV_WRITE is disabled
 * is not written by libevent. Write errors stay pending for libevent's own write to report.
 */
static void
bev_flush(struct bufferevent *bev)
{
	struct evbuffer *out = bufferevent_get_output(bev);
	SSL *ssl;

	if (evbuffer_get_length(out) == 0)
		return;
	if ((ssl = bufferevent_openssl_get_ssl(bev)) != NULL) {
		bev_flush_tls(bev, ssl);
		return;
	}
	if (bufferevent_getfd(bev) < 0) {
		/* a pair (background refresh): the bufferevent moves the data */
		bufferevent_enable(bev, EV_WRITE);
		return;
	}
	/* a socket bufferevent keeps the start of its output frozen outside its own writes */
	evbuffer_unfreeze(out, 1);
	(void)evbuffer_write(out, bufferevent_getfd(bev));
	evbuffer_freeze(out, 1);
	if (evbuffer_get_length(out) > 0)
		bufferevent_enable(bev, EV_WRITE);
}

/* bev_flush() for session_cache.c and session_fwd.c (session_int.h). */
void
session_bev_flush(struct bufferevent *bev)
{
	bev_flush(bev);
}

/*
 * TLS read-ahead on client connections. Without it OpenSSL reads a record in two read(2)
 * calls (header, then body), and a resumed TLS 1.2 handshake costs about ten reads where
 * nginx, which turns read-ahead on, needs three. libevent 2.1's socket-mode OpenSSL
 * bufferevent is not written for read-ahead: after each record it reads on only while
 * SSL_pending() (decrypted bytes) is non-zero, then waits for the socket, so records
 * already read ahead (SSL_has_pending()) would sit there until the client sends more.
 * So read-ahead is on only through the handshake, where OpenSSL itself processes every
 * buffered record before asking for the socket, and off once it completes (BEV_EVENT_
 * CONNECTED); what the client sent together with its Finished (the first request, often)
 * is then read by tls_kick(): while complete records are buffered, the read event is made
 * active again. That leftover is at most one read buffer (about 16 KiB), below the input's
 * high watermark, so it is never left behind a suspended read.
 *
 * tls_readcb() wraps libevent's read callback of the open bufferevent (the same function
 * for every TLS bufferevent, taking the bufferevent as its argument, which
 * tls_read_ahead() checks before turning read-ahead on).
 */
static _Thread_local event_callback_fn tls_lib_readcb;

static void
tls_kick(struct bufferevent *bev)
{
	SSL *ssl = bufferevent_openssl_get_ssl(bev);
	char c;

	if (ssl == NULL || !SSL_has_pending(ssl) || bev->readcb == NULL ||
	    !(bufferevent_get_enabled(bev) & EV_READ) ||
	    !event_pending(&bev->ev_read, EV_READ, NULL))
		return;
	/* a whole record decrypts here; the rest of a partial one waits for the socket */
	ERR_clear_error();
	if (SSL_pending(ssl) == 0 && SSL_peek(ssl, &c, 1) <= 0) {
		ERR_clear_error();
		return;
	}
	event_active(&bev->ev_read, EV_READ, 1);
}

static void
tls_readcb(evutil_socket_t fd, short what, void *arg)
{
	struct bufferevent *bev = arg;

	bufferevent_incref(bev);
	tls_lib_readcb(fd, what, arg);
	tls_kick(bev);
	bufferevent_decref(bev);
}

/* A client TLS bufferevent was just made (handshake pending): read ahead if it is safe. */
static void
tls_read_ahead(struct bufferevent *bev, SSL *ssl)
{
	if (event_get_callback_arg(&bev->ev_read) == (void *)bev)
		SSL_set_read_ahead(ssl, 1);
}

/* The handshake completed: read-ahead off, libevent's read callback wrapped, leftovers read. */
static void
tls_open_reads(struct bufferevent *bev)
{
	struct event *ev = &bev->ev_read;
	SSL *ssl = bufferevent_openssl_get_ssl(bev);
	int pending;

	if (ssl == NULL || !SSL_get_read_ahead(ssl))
		return;
	SSL_set_read_ahead(ssl, 0);
	if (event_get_callback(ev) != tls_readcb) {
		pending = event_pending(ev, EV_READ, NULL);
		tls_lib_readcb = event_get_callback(ev);
		event_del(ev);
		event_assign(ev, bufferevent_get_base(bev), event_get_fd(ev),
		             EV_READ | EV_PERSIST | EV_FINALIZE, tls_readcb, bev);
		if (pending)
			event_add(ev, evutil_timerisset(&bev->timeout_read) ? &bev->timeout_read
			                                                    : NULL);
	}
	tls_kick(bev);
}

/*
 * Enable reading unless it is enabled: enabling again re-adds the read event (and re-arms
 * its timeout), which nobody needs where this is used (no read timeout, or new timeouts
 * were just set, which re-arms pending events anyway).
 */
static void
bev_enable_read(struct bufferevent *bev)
{
	if (!(bufferevent_get_enabled(bev) & EV_READ))
		bufferevent_enable(bev, EV_READ);
}

/* A write callback saw the output drained: no write event until there is output again. */
static void
bev_write_idle(struct bufferevent *bev)
{
	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		bufferevent_disable(bev, EV_WRITE);
}

/* Rounds of read-and-write one callback may run before yielding to other connections. */
#define PUMP_ROUNDS 16

/* End of an EOF-delimited body: close the chunked re-encoding. */
static void
pump_finish_eof(struct pump *p, struct evbuffer *dst)
{
	if (p->out_chunked)
		evbuffer_add(dst, "0\r\n\r\n", 5);
	p->done = 1;
}

/* ---------------------------------------------------------------- logging */

static const char *
session_logtime(struct session_env *env)
{
	time_t now = time(NULL);

	if (now != env->logtime_sec) {
		struct tm tm;

		localtime_r(&now, &tm);
		strftime(env->logtime, sizeof(env->logtime), "%d/%b/%Y:%H:%M:%S %z", &tm);
		env->logtime_sec = now;
	}
	return env->logtime;
}

/* Append s to b, escaping '"', '\\' and bytes outside printable ASCII as \xHH (nginx). */
static size_t
log_escape(char *b, size_t room, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = 0;

	for (; *s && n + 4 < room; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\' || c < 0x20 || c > 0x7e) {
			b[n++] = '\\';
			b[n++] = 'x';
			b[n++] = hex[c >> 4];
			b[n++] = hex[c & 15];
		} else {
			b[n++] = (char)c;
		}
	}
	return n;
}

void
session_log_access(struct session *s)
{
	int fd = s->srv->access_log.fd;
	char line[4096];
	size_t n = 0;
	int r;

	if (s->bg) /* a background refresh is nobody's request */
		return;
	metrics_request(s->srv, s->status, s->req_head_len + s->req.moved, s->resp.moved,
	                s->resp_head_len - s->resp_head_held);
	if (s->cmode != CMODE_NONE)
		metrics_srv_inc(s->srv, (enum metrics_srv)(MS_CACHE + s->cmode - 1));
	if (fd < 0)
		return;
	const char *reqline = s->logreq ? s->logreq : "-\0\0";
	const char *referer = reqline + strlen(reqline) + 1;
	const char *ua = referer + strlen(referer) + 1;

	r = snprintf(line, sizeof(line), "%s - %s [%s] \"", s->client, s->user[0] ? s->user : "-",
	             session_logtime(s->env));
	n = (size_t)r;
	n += log_escape(line + n, sizeof(line) - n - 256, reqline);
	r = snprintf(line + n, sizeof(line) - n, "\" %d %" PRIu64 " \"", s->status, s->resp.moved);
	n += (size_t)r;
	n += log_escape(line + n, (sizeof(line) - n) / 2, *referer ? referer : "-");
	memcpy(line + n, "\" \"", 3);
	n += 3;
	n += log_escape(line + n, sizeof(line) - n - 128, *ua ? ua : "-");
	line[n++] = '"';
	if (s->tunnel != NULL) {
		/* a CONNECT or upgraded tunnel: how long it lasted and the bytes each way */
		int64_t ms = up_now_ms() - s->tunnel_start_ms;

		r = snprintf(line + n, sizeof(line) - n,
		             " tunnel=%" PRId64 ".%03ds up=%" PRIu64 " down=%" PRIu64, ms / 1000,
		             (int)(ms % 1000), tunnel_bytes(s->tunnel, TUNNEL_UP),
		             session_tunnel_down(s));
		n += (size_t)r;
	}
	if (s->cmode != CMODE_NONE) {
		/* a cache-enabled server: what the cache did (X-Cache's word) */
		r = snprintf(line + n, sizeof(line) - n, " cache=%s",
		             session_cmode_info[s->cmode].word);
		n += (size_t)r;
	}
	if (s->limit_hit != NULL) {
		/* refused by limit_req or limit_conn: the zone */
		r = snprintf(line + n, sizeof(line) - n, " limit=%.64s", s->limit_hit);
		n += (size_t)r;
	}
	line[n++] = '\n';
	log_access_write(fd, line, n);
}

static void
session_keep_log_fields(struct session *s, const struct http_msg *msg, const char *head)
{
	const struct http_header *ref, *ua;
	size_t linelen = 0, rl, ul;

	free(s->logreq);
	s->logreq = NULL;
	if (s->srv->access_log.fd < 0)
		return;
	/* the request line, without leading empty lines */
	const char *line = msg->method_name.p;
	while (line + linelen < head + msg->head_len && line[linelen] != '\r')
		linelen++;
	ref = http_header_find(msg, "referer");
	ua = http_header_find(msg, "user-agent");
	rl = ref ? ref->value.len : 0;
	ul = ua ? ua->value.len : 0;
	if ((s->logreq = malloc(linelen + rl + ul + 3)) == NULL)
		return;
	char *p = s->logreq;
	memcpy(p, line, linelen);
	p[linelen] = '\0';
	p += linelen + 1;
	if (rl)
		memcpy(p, ref->value.p, rl);
	p[rl] = '\0';
	p += rl + 1;
	if (ul)
		memcpy(p, ua->value.p, ul);
	p[ul] = '\0';
}

/* For a request the parser refused: log its first line as far as it is printable. */
static void
session_keep_log_raw(struct session *s, const char *p, size_t n)
{
	size_t len = 0;

	free(s->logreq);
	s->logreq = NULL;
	if (s->srv->access_log.fd < 0)
		return;
	while (len < n && len < 1024 && p[len] != '\r' && p[len] != '\n')
		len++;
	if ((s->logreq = malloc(len + 3)) == NULL)
		return;
	memcpy(s->logreq, p, len);
	memset(s->logreq + len, 0, 3);
}

/* ---------------------------------------------------------------- teardown */

void
session_release_upstream(struct session *s, int reusable)
{
	if (s->ubev == NULL) {
		if (s->peer != NULL) { /* an upgraded tunnel counted as an active request */
			atomic_fetch_sub(&s->peer->active, 1);
			s->peer = NULL;
		}
		return;
	}
	if (reusable && !s->up_connecting &&
	    evbuffer_get_length(bufferevent_get_input(s->ubev)) == 0 &&
	    evbuffer_get_length(bufferevent_get_output(s->ubev)) == 0)
		up_pool_put(&s->env->pool, s->ubev, s->srv->upstream, &s->up_addr, s->up_tls,
		            s->up_requests + 1);
	else
		bufferevent_free(s->ubev);
	s->ubev = NULL;
	s->up_connecting = 0;
	if (s->peer != NULL) {
		atomic_fetch_sub(&s->peer->active, 1);
		s->peer = NULL;
	}
}

/* The only place that frees a session. */
void
session_close(struct session *s, const char *why)
{
	struct session_env *env = s->env;

	log_debug("*%" PRIu64 " client %s: closing: %s", s->id, s->client, why);
	if (!s->bg)
		metrics_session_closed(
		        s->srv,
		        s->tls && s->cbev != NULL &&
		                !SSL_is_init_finished(bufferevent_openssl_get_ssl(s->cbev)));
	if (s->tunnel != NULL)
		metrics_tunnel_closed(s->srv, tunnel_bytes(s->tunnel, TUNNEL_UP),
		                      session_tunnel_down(s));
	session_release_upstream(s, 0);
	session_limit_release(s);
	tunnel_free(s->tunnel);
	if (s->fwd != NULL) {
		if (s->fwd->dns != NULL)
			resolve_cancel(s->fwd->dns);
		free(s->fwd->acl_head);
		free(s->fwd);
	}
	if (s->cbev != NULL) {
		if (s->tls && !s->tls_failed && !s->tls_closed)
			tls_ssl_close(bufferevent_openssl_get_ssl(s->cbev));
		bufferevent_free(s->cbev);
	}
	if (s->bgpeer != NULL)
		bufferevent_free(s->bgpeer);
	event_free(s->timer);
	if (s->req_head)
		evbuffer_free(s->req_head);
	if (s->hold)
		evbuffer_free(s->hold);
	free(s->logreq);
	free(s->hkey);
	free(s->challenge);
	free(s->custom_body);
	session_cache_tee_end(s, 0);
	if (s->ctee != NULL)
		cache_put_abort(s->ctee);
	session_cache_unlock(s);
	collapse_cancel(s->cwait);
	cache_meta_free(s->chit);
	cache_meta_free(s->cstale);
	free(s->curl_buf);
	cfg_unref(s->cfg);
	TAILQ_REMOVE(&env->sessions, s, link);
	env->nsessions--;
	s->magic = 0;
	free(s);
	if (env->on_close)
		env->on_close(env);
}

/* ---------------------------------------------------------------- client side */

void
session_enter_head(struct session *s)
{
	struct timeval wtv = env_tv(s->env, s->srv->send_timeout_ms);

	s->state = S_HEAD;
	s->head_scanned = 0;
	s->head_parse_at = 0;
	s->ntried = 0;
	s->up_reused = s->up_eof = s->up_keepalive = s->last_timeout = 0;
	s->req_sent = 0;
	s->resp_started = s->resp_got = s->resp_held = 0;
	s->status = 0;
	s->perr = NULL;
	s->perr_hop[0] = '\0';
	s->retry_after = 0;
	session_cache_unlock(s); /* (a lead ends with its response; this is a safety net) */
	s->cnolock = s->cfound = s->cnostore = s->cstale_cond = 0;
	s->cmode = CMODE_NONE; /* an early refusal must not count (log) the last request's */
	s->req_head_len = 0;
	s->resp_head_len = s->resp_head_held = 0;
	session_limit_release(s); /* the last request is over */
	s->limit_checked = 0;
	s->limit_hit = NULL;
	free(s->logreq);
	s->logreq = NULL;
	memset(&s->req, 0, sizeof(s->req));
	memset(&s->resp, 0, sizeof(s->resp));
	bufferevent_set_timeouts(s->cbev, NULL, &wtv);
	bufferevent_setwatermark(s->cbev, EV_WRITE, 0, 0);
	bev_enable_read(s->cbev);
	if (evbuffer_get_length(bufferevent_get_input(s->cbev)) > 0) {
		/* a pipelined request is already here */
		session_timer_set(s, s->srv->client_header_timeout_ms);
		bufferevent_trigger(s->cbev, EV_READ,
		                    BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
	} else {
		session_timer_set(s, s->nreq == 0 ? s->srv->client_header_timeout_ms
		                                  : s->srv->keepalive_timeout_ms);
	}
}

/* Write a proxyd-generated response; the connection closes after it. */
void
session_error(struct session *s, int status, const char *why)
{
	char body[1024], reason[400];
	int blen;

	if (s->resp_held) {
		/* nothing of the upstream's response has reached the client: replace it */
		evbuffer_drain(s->hold, evbuffer_get_length(s->hold));
		s->resp_held = 0;
		s->resp_started = 0;
		s->resp_head_len -= s->resp_head_held; /* never sent */
		s->resp_head_held = 0;
	}
	if (s->resp_started) {
		/*
		 * Too late for an error response: deliver what was received, then close, so
		 * the client sees the body end early (its length or final chunk is missing).
		 */
		log_warnx("*%" PRIu64 " client %s: %s (response cut)", s->id, s->client, why);
		session_release_upstream(s, 0);
		session_log_access(s);
		s->keepalive = 0;
		session_finish(s);
		return;
	}
	if (status >= 500)
		log_warnx("*%" PRIu64 " client %s: %d: %s", s->id, s->client, status, why);
	else
		log_info("*%" PRIu64 " client %s: %d: %s", s->id, s->client, status, why);
	session_cache_unlock(s); /* whoever waits for this fetch goes upstream now */
	session_release_upstream(s, 0);
	s->status = status;
	s->keepalive = 0;
	/*
	 * A forward proxy's users are the clients: they are told why (the reason names their
	 * own request's origin, nothing of the proxy). A reverse proxy tells outsiders nothing.
	 */
	reason[0] = '\0';
	if (s->srv->mode == CFG_MODE_FORWARD) {
		size_t n = 0;

		memcpy(reason, "<p>", 3);
		n = 3;
		for (const char *c = why; *c != '\0' && n + 12 < sizeof(reason); c++) {
			const char *esc = *c == '<'   ? "&lt;"
			                  : *c == '>' ? "&gt;"
			                  : *c == '&' ? "&amp;"
			                              : NULL;
			if (esc != NULL) {
				memcpy(reason + n, esc, strlen(esc));
				n += strlen(esc);
			} else {
				reason[n++] = *c;
			}
		}
		memcpy(reason + n, "</p>\r\n", 7);
	}
	if (s->custom_body != NULL)
		blen = (int)strlen(s->custom_body);
	else
		blen = snprintf(
		        body, sizeof(body),
		        "<html>\r\n<head><title>%d %s</title></head>\r\n<body>\r\n"
		        "<center><h1>%d %s</h1></center>\r\n%s<hr><center>proxyd</center>\r\n"
		        "</body>\r\n</html>\r\n",
		        status, http_reason(status), status, http_reason(status), reason);
	if (s->perr == NULL)
		s->perr = status < 500 ? "http_request_error" : "proxy_internal_error";
	struct evbuffer *out = bufferevent_get_output(s->cbev);
	size_t out0 = evbuffer_get_length(out);

	evbuffer_add_printf(out,
	                    "HTTP/1.1 %d %s\r\nContent-Type: text/html\r\nContent-Length: %d\r\n"
	                    "Proxy-Status: proxyd; error=%s%s%s%s\r\n",
	                    status, http_reason(status), blen, s->perr,
	                    s->perr_hop[0] ? "; next-hop=\"" : "", s->perr_hop,
	                    s->perr_hop[0] ? "\"" : "");
	if (s->retry_after > 0)
		evbuffer_add_printf(out, "Retry-After: %d\r\n", s->retry_after);
	if (s->challenge != NULL)
		evbuffer_add_printf(out, "Proxy-Authenticate: %s\r\n", s->challenge);
	for (size_t i = 0; i < s->srv->nadd_headers; i++) {
		const struct cfg_add_header *ah = &s->srv->add_headers[i];

		if (ah->always)
			evbuffer_add_printf(out, "%s: %s\r\n", ah->name, ah->value);
	}
	evbuffer_add(out, "Connection: close\r\n\r\n", 21);
	s->resp_head_len += evbuffer_get_length(out) - out0;
	if (s->method != HTTP_M_HEAD)
		evbuffer_add(out, s->custom_body != NULL ? s->custom_body : body, (size_t)blen);
	s->resp_started = 1;
	s->resp.moved = s->method != HTTP_M_HEAD ? (uint64_t)blen : 0;
	session_log_access(s);
	session_finish(s);
}

/*
 * An upstream-side failure: answer status with a Proxy-Status naming the error type (RFC
 * 9209 section 2.3) and the peer involved, if any.
 */
void
session_fail(struct session *s, int status, const char *perr, const char *why)
{
	s->perr = perr;
	if (s->peer != NULL)
		snprintf(s->perr_hop, sizeof(s->perr_hop), "%s", s->up_addr.text);
	session_error(s, status, why);
}

/* No more requests on this connection: flush the output, then close (lingering). */
static void
session_finish(struct session *s)
{
	s->state = S_CLOSING;
	evtimer_del(s->timer);
	bufferevent_disable(s->cbev, EV_READ);
	bufferevent_setwatermark(s->cbev, EV_WRITE, 0, 0);
	bev_flush(s->cbev);
	if (evbuffer_get_length(bufferevent_get_output(s->cbev)) == 0)
		bufferevent_trigger(s->cbev, EV_WRITE,
		                    BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

/*
 * Output is flushed. If the client may still be sending (an unread body), closing now would
 * make the kernel answer with a reset that can destroy the response before the client reads
 * it; so shut the write side and discard input for a while (nginx's lingering close).
 */
static void
session_linger(struct session *s)
{
	int unread = evbuffer_get_length(bufferevent_get_input(s->cbev)) > 0 ||
	             (s->req.kind != HTTP_BODY_NONE && !s->req.done);

	if (!unread) {
		session_close(s, "done");
		return;
	}
	s->state = S_LINGER;
	if (s->tls && !s->tls_failed && !s->tls_closed) {
		/* close_notify goes before the TCP write side closes */
		tls_ssl_close(bufferevent_openssl_get_ssl(s->cbev));
		s->tls_closed = 1;
	}
	shutdown(bufferevent_getfd(s->cbev), SHUT_WR);
	evbuffer_drain(bufferevent_get_input(s->cbev),
	               evbuffer_get_length(bufferevent_get_input(s->cbev)));
	bufferevent_setwatermark(s->cbev, EV_READ, 0, 0);
	bufferevent_set_timeouts(s->cbev, NULL, NULL);
	bufferevent_enable(s->cbev, EV_READ);
	session_timer_set(s, LINGER_MS);
}

static void
session_build_request(struct session *s, const struct http_msg *msg)
{
	const struct cfg_server *srv = s->srv;
	struct evbuffer *b = s->req_head;
	const struct http_header *h;
	struct http_slice host = msg->host_header, xff = {NULL, 0}, via = {NULL, 0};
	int conn_tokens = http_header_find(msg, "connection") != NULL;
	int nxff = 0, nvia = 0;
	char num[32];
	struct hbuf hb;

	evbuffer_drain(b, evbuffer_get_length(b));
	hb_init(&hb, b);
	hb_add(&hb, msg->method_name.p, msg->method_name.len);
	hb_add(&hb, " ", 1);
	if (msg->form == HTTP_TARGET_ABSOLUTE)
		hb_add(&hb, msg->path.p, msg->path.len);
	else
		hb_add(&hb, msg->target.p, msg->target.len);
	hb_add(&hb, " HTTP/1.1\r\n", 11);

	if (msg->form == HTTP_TARGET_ABSOLUTE) {
		/* The URI's authority wins over Host (RFC 9112 3.2.2). */
		const char *a = msg->target.p, *end = a + msg->target.len;

		a = memchr(a, ':', msg->target.len);
		a = a ? a + 3 : msg->target.p;
		const char *e = a;
		while (e < end && *e != '/' && *e != '?')
			e++;
		host.p = a;
		host.len = (size_t)(e - a);
	}

	const struct anon_policy *anon = srv->anon;
	struct anon_origin origin = {"http", 4, msg->host.p, msg->host.len, msg->port};

	for (size_t i = 0; i < msg->nheaders; i++) {
		h = &msg->headers[i];
		if (hdr_hop(h))
			continue;
		if (conn_tokens && http_request_drops_listed(msg, h->name.p, h->name.len))
			continue;
		if (anon != NULL) {
			enum anon_action act = anon_header(anon, h->name.p, h->name.len, h->value.p,
			                                   h->value.len, &origin);
			if (act != ANON_KEEP)
				continue; /* dropped, or replaced below */
		}
		if (h->name.len == 4 && HDR_IS(h, "host")) {
			hb_add(&hb, "Host: ", 6);
			hb_add(&hb, host.p, host.len);
			hb_add(&hb, "\r\n", 2);
			continue;
		}
		if (srv->x_forwarded_for && HDR_IS(h, "x-forwarded-for")) {
			/* several fields combine into one list, in order */
			if (nxff++ == 0)
				xff = h->value;
			else
				xff.len = (size_t)(h->value.p + h->value.len - xff.p);
			continue;
		}
		if ((srv->x_forwarded_proto && HDR_IS(h, "x-forwarded-proto")) ||
		    (srv->x_forwarded_host && HDR_IS(h, "x-forwarded-host")))
			continue; /* replaced below: a client must not choose them */
		if (srv->via && HDR_IS(h, "via")) {
			if (nvia++ == 0)
				via = h->value;
			else
				via.len = (size_t)(h->value.p + h->value.len - via.p);
			continue;
		}
		hb_header(&hb, h);
	}
	if (msg->host_header.p == NULL) {
		/*
		 * HTTP/1.0 without Host: HTTP/1.1 upstream requests need one; the upstream's
		 * name stands in, as nginx's $proxy_host does.
		 */
		hb_add(&hb, "Host: ", 6);
		if (host.p != NULL && host.len > 0)
			hb_add(&hb, host.p, host.len);
		else
			hb_add(&hb, srv->upstream->name, strlen(srv->upstream->name));
		hb_add(&hb, "\r\n", 2);
	}
	if (s->req.kind == HTTP_BODY_LENGTH || (msg->flags & HTTP_F_HAS_LENGTH)) {
		/* "Content-Length: 0" too: some servers answer 411 to a POST without it */
		size_t n = fmt_u64(num, (uint64_t)msg->content_length, 10);

		num[n++] = '\r';
		num[n++] = '\n';
		hb_add(&hb, "Content-Length: ", 16);
		hb_add(&hb, num, n);
	} else if (s->req.kind == HTTP_BODY_CHUNKED) {
		hb_add(&hb, "Transfer-Encoding: chunked\r\n", 28);
	}
	if (srv->x_forwarded_for) {
		/*
		 * Combined fields were separated by CRLF + name in the buffer; rebuild
		 * them as one comma-separated list.
		 */
		hb_add(&hb, "X-Forwarded-For: ", 17);
		if (nxff > 0) {
			for (size_t i = 0; i < msg->nheaders; i++) {
				h = &msg->headers[i];
				if (HDR_IS(h, "x-forwarded-for")) {
					hb_add(&hb, h->value.p, h->value.len);
					hb_add(&hb, ", ", 2);
				}
			}
		}
		hb_add(&hb, s->client, strlen(s->client));
		hb_add(&hb, "\r\n", 2);
	}
	if (srv->x_forwarded_proto)
		hb_add(&hb, s->tls ? "X-Forwarded-Proto: https\r\n" : "X-Forwarded-Proto: http\r\n",
		       s->tls ? 26 : 25);
	if (srv->x_forwarded_host && host.len > 0) {
		hb_add(&hb, "X-Forwarded-Host: ", 18);
		hb_add(&hb, host.p, host.len);
		hb_add(&hb, "\r\n", 2);
	}
	if (srv->via) {
		hb_add(&hb, "Via: ", 5);
		if (nvia > 0) {
			for (size_t i = 0; i < msg->nheaders; i++) {
				h = &msg->headers[i];
				if (HDR_IS(h, "via")) {
					hb_add(&hb, h->value.p, h->value.len);
					hb_add(&hb, ", ", 2);
				}
			}
		}
		hb_add(&hb, msg->version_minor ? "1.1 proxyd\r\n" : "1.0 proxyd\r\n", 12);
	}
	(void)xff;
	(void)via;
	if (anon != NULL && anon_policy_mode(anon) == ANON_STRICT) {
		/* strict: every client looks the same, whether it sent a User-Agent or not */
		size_t ualen;
		const char *ua = anon_user_agent(anon, &ualen);

		if (ua != NULL) {
			hb_add(&hb, "User-Agent: ", 12);
			hb_add(&hb, ua, ualen);
			hb_add(&hb, "\r\n", 2);
		}
	}

	if (s->cstale != NULL) {
		hb_flush(&hb);
		/* revalidating a stale entry: the origin answers 304 if it is still current */
		struct cache_header v[2];
		char date[30];
		size_t nv = cache_policy_validators(s->cstale->etag, s->cstale->etag_len,
		                                    s->cstale->last_modified, v, date);

		for (size_t i = 0; i < nv; i++) {
			evbuffer_add(b, v[i].name, v[i].name_len);
			evbuffer_add(b, ": ", 2);
			evbuffer_add(b, v[i].value, v[i].value_len);
			evbuffer_add(b, "\r\n", 2);
		}
	}
	if (s->upgrade) {
		/* hop-by-hop, so passed on explicitly: the upstream decides whether to switch */
		hb_add(&hb, "Upgrade: websocket\r\nConnection: upgrade\r\n", 41);
	} else if (srv->upstream->keepalive == 0) {
		hb_add(&hb, "Connection: close\r\n", 19);
	}
	hb_add(&hb, "\r\n", 2);
	hb_flush(&hb);
}

int
session_explain_head(const struct cfg_server *srv, const struct http_msg *msg, const char *client,
                     struct evbuffer *out)
{
	struct session tmp;

	/* exactly what a session would send: the same function on a stand-in session */
	memset(&tmp, 0, sizeof(tmp));
	tmp.srv = srv;
	tmp.req_head = out;
	snprintf(tmp.client, sizeof(tmp.client), "%s", client);
	enum http_body kind = http_request_body(msg);
	pump_init(&tmp.req, kind, msg->content_length, kind == HTTP_BODY_CHUNKED);
	session_build_request(&tmp, msg);
	return 0;
}

/* add_header fields for a response of status (nginx's list of statuses, or `always`). */
void
session_add_headers(const struct session *s, struct evbuffer *out, int status)
{
	const struct cfg_server *srv = s->srv;
	int listed = status == 200 || status == 201 || status == 204 || status == 206 ||
	             status == 301 || status == 302 || status == 303 || status == 304 ||
	             status == 307 || status == 308;

	for (size_t i = 0; i < srv->nadd_headers; i++) {
		const struct cfg_add_header *h = &srv->add_headers[i];

		if (listed || h->always)
			evbuffer_add_printf(out, "%s: %s\r\n", h->name, h->value);
	}
}

/* Expand $host, $request_uri, $scheme and $remote_addr of tpl for msg into out. */
static void
session_expand(const struct session *s, const struct http_msg *msg, const char *tpl,
               struct evbuffer *out)
{
	const char *h = msg->host.p;
	size_t hl = msg->host.len;

	for (const char *t = tpl; *t != '\0';) {
		if (strncmp(t, "$host", 5) == 0) {
			evbuffer_add(out, h, hl);
			t += 5;
		} else if (strncmp(t, "$request_uri", 12) == 0) {
			if (msg->form == HTTP_TARGET_ABSOLUTE)
				evbuffer_add(out, msg->path.p, msg->path.len);
			else
				evbuffer_add(out, msg->target.p, msg->target.len);
			t += 12;
		} else if (strncmp(t, "$scheme", 7) == 0) {
			evbuffer_add(out, s->tls ? "https" : "http", s->tls ? 5 : 4);
			t += 7;
		} else if (strncmp(t, "$remote_addr", 12) == 0) {
			evbuffer_add(out, s->client, strlen(s->client));
			t += 12;
		} else {
			evbuffer_add(out, t, 1);
			t++;
		}
	}
}

/*
 * A response proxyd made itself (return, a cache hit) is all queued: log it, then wait for
 * the next request or close. Nothing of the request body was read, so a request that had
 * one has keepalive off.
 */
void
session_answered(struct session *s)
{
	bev_flush(s->cbev);
	session_log_access(s);
	s->nreq++;
	s->req.kind = HTTP_BODY_NONE;
	if (s->keepalive && !s->env->stopping)
		session_enter_head(s);
	else
		session_finish(s);
}

/*
 * `return CODE [URL|TEXT]`: answer every request of the server from here. A request body
 * is not read: the connection closes after the answer if there is one.
 */
static void
session_return(struct session *s, const struct http_msg *msg)
{
	const struct cfg_server *srv = s->srv;
	struct evbuffer *out = bufferevent_get_output(s->cbev);
	struct evbuffer *text = evbuffer_new();
	int code = srv->ret_code;
	int redirect = code == 301 || code == 302 || code == 303 || code == 307 || code == 308;

	if (text == NULL) {
		session_close(s, "out of memory");
		return;
	}
	if (srv->ret_text != NULL)
		session_expand(s, msg, srv->ret_text, text);
	if (http_request_body(msg) != HTTP_BODY_NONE)
		s->keepalive = 0;
	evbuffer_drain(bufferevent_get_input(s->cbev), msg->head_len);
	size_t out0 = evbuffer_get_length(out);
	evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\n", code, http_reason(code));
	if (redirect) {
		evbuffer_add(out, "Location: ", 10);
		evbuffer_add_buffer(out, text);
		evbuffer_add(out, "\r\n", 2);
		evbuffer_add_printf(text, "<html><body>%d %s</body></html>\r\n", code,
		                    http_reason(code));
		evbuffer_add(out, "Content-Type: text/html\r\n", 25);
	} else if (evbuffer_get_length(text) > 0) {
		evbuffer_add(out, "Content-Type: text/plain\r\n", 26);
	}
	session_add_headers(s, out, code);
	evbuffer_add_printf(out, "Content-Length: %zu\r\n%s\r\n", evbuffer_get_length(text),
	                    !s->keepalive   ? "Connection: close\r\n"
	                    : s->minor == 0 ? "Connection: keep-alive\r\n"
	                                    : "");
	s->resp_head_len += evbuffer_get_length(out) - out0;
	s->status = code;
	s->resp.moved = msg->method == HTTP_M_HEAD ? 0 : evbuffer_get_length(text);
	if (msg->method != HTTP_M_HEAD)
		evbuffer_add_buffer(out, text);
	evbuffer_free(text);
	session_answered(s);
}

/*
 * A WebSocket upgrade request (RFC 6455 4.1): GET, HTTP/1.1, "upgrade" in Connection and
 * "websocket" in Upgrade. Any other Upgrade (h2c above all, a known smuggling vector
 * through proxies) is not passed on: the request goes upstream as a plain request.
 */
static int
session_wants_websocket(const struct http_msg *msg)
{
	const struct http_header *up;

	if (msg->method != HTTP_M_GET || msg->version_minor < 1 ||
	    !http_connection_lists(msg, "upgrade", 7) ||
	    (up = http_header_find(msg, "upgrade")) == NULL)
		return 0;
	/* one token, "websocket" (a list naming h2c as well is not taken) */
	return up->value.len == 9 && strncasecmp(up->value.p, "websocket", 9) == 0 &&
	       http_request_body(msg) == HTTP_BODY_NONE;
}

void
session_start_request(struct session *s, const struct http_msg *msg, const char *head)
{
	const struct cfg_server *srv = s->srv;
	enum http_body kind = http_request_body(msg);

	s->method = msg->method;
	s->idempotent = msg->method == HTTP_M_GET || msg->method == HTTP_M_HEAD ||
	                msg->method == HTTP_M_OPTIONS || msg->method == HTTP_M_TRACE ||
	                msg->method == HTTP_M_PUT || msg->method == HTTP_M_DELETE ||
	                http_header_find(msg, "idempotency-key") != NULL;
	s->minor = msg->version_minor;
	s->expect100 = (msg->flags & HTTP_F_EXPECT_100) != 0;
	s->upgrade = srv->mode == CFG_MODE_REVERSE && session_wants_websocket(msg);
	s->keepalive = http_keepalive(msg) && srv->keepalive_timeout_ms > 0 &&
	               (int)s->nreq + 1 < srv->keepalive_requests && !s->env->stopping && !s->bg;
	session_keep_log_fields(s, msg, head);
	s->req_head_len = msg->head_len;
	pump_init(&s->req, kind, msg->content_length, kind == HTTP_BODY_CHUNKED);
	/* a chunked body over the limit fails at its chunk-size line, before it goes out */
	s->req.ch.max_body = srv->client_max_body_size;

	if (srv->mode == CFG_MODE_FORWARD) {
		if (session_fwd_request(s, msg) != 0)
			return;
	} else if (session_limit(s, msg, 0) != 0 || session_acl(s, msg, NULL) != 0) {
		return;
	}
	if (srv->ret_code != 0) {
		session_return(s, msg);
		return;
	}
	s->cmode = CMODE_NONE;
	if (session_is_purge(msg)) {
		session_purge(s, msg);
		return;
	}
	if (srv->cache != NULL && srv->cache->store != NULL &&
	    (s->fwd == NULL || !s->fwd->connect) && session_cache_lookup(s, msg))
		return;
	if (srv->mode != CFG_MODE_FORWARD &&
	    (msg->form == HTTP_TARGET_AUTHORITY || msg->method == HTTP_M_CONNECT)) {
		evbuffer_drain(bufferevent_get_input(s->cbev), msg->head_len);
		session_error(s, 405, "CONNECT is not allowed on a reverse proxy");
		return;
	}
	if (srv->client_max_body_size > 0 && (msg->flags & HTTP_F_HAS_LENGTH) &&
	    (uint64_t)msg->content_length > srv->client_max_body_size) {
		evbuffer_drain(bufferevent_get_input(s->cbev), msg->head_len);
		session_error(s, 413, "request body larger than client_max_body_size");
		return;
	}
	if (s->req_head == NULL && (s->req_head = evbuffer_new()) == NULL) {
		session_close(s, "out of memory");
		return;
	}
	session_build_request(s, msg);
	/* msg is gone once drained: the hash key is kept for session_connect() and retries */
	if (srv->upstream->nkey > 0 && s->hkey == NULL && (s->hkey = malloc(UP_KEY_MAX)) == NULL) {
		session_close(s, "out of memory");
		return;
	}
	s->hkeylen = s->hkey ? up_hash_key(srv->upstream, msg, s->client, s->hkey, UP_KEY_MAX) : 0;
	evbuffer_drain(bufferevent_get_input(s->cbev), msg->head_len);

	/*
	 * Client reads stay enabled (toggling them costs an epoll_ctl per request): a body
	 * or a pipelined request waits in the input, bounded by its high watermark, and
	 * session_client_readcb leaves it there until its turn.
	 */
	evtimer_del(s->timer);
	s->state = S_UPSTREAM;
	s->req_start_ms = up_now_ms();
	session_connect(s);
}

static void
session_read_head(struct session *s)
{
	const struct cfg_server *srv = s->srv;
	struct evbuffer *in = bufferevent_get_input(s->cbev);
	size_t len = evbuffer_get_length(in), n;
	struct http_limits lim = {srv->client_max_header_size, srv->client_max_target,
	                          srv->client_max_headers};
	struct http_msg *msg = &s->env->scratch;
	int complete = 0;

	if (len == 0)
		return;
	if (s->head_scanned == 0 && s->nreq > 0)
		session_timer_set(s, srv->client_header_timeout_ms); /* keep-alive idle is over */
	n = len < lim.max_head + 1 ? len : lim.max_head + 1;

	/*
	 * Parse only when the end of the head may be there, or when enough new input
	 * arrived since the last attempt (so a byte-by-byte sender costs linear time, and
	 * invalid input is still rejected early).
	 */
	if (n >= 4) {
		struct evbuffer_ptr start, end;
		size_t from = s->head_scanned > 3 ? s->head_scanned - 3 : 0;

		evbuffer_ptr_set(in, &start, from, EVBUFFER_PTR_SET);
		evbuffer_ptr_set(in, &end, n, EVBUFFER_PTR_SET);
		complete = evbuffer_search_range(in, "\r\n\r\n", 4, &start, &end).pos != -1;
	}
	s->head_scanned = n;
	if (!complete && n < s->head_parse_at && n <= lim.max_head)
		return;

	const char *p = (const char *)evbuffer_pullup(in, (ssize_t)n);
	int r = http_parse_request(p, n, &lim, msg);

	if (r == HTTP_AGAIN) {
		s->head_parse_at = n * 2;
		return;
	}
	if (r == HTTP_ERROR) {
		s->req.kind = HTTP_BODY_NONE;
		metrics_srv_inc(srv, MS_REJECTED);
		session_keep_log_raw(s, p, n);
		session_error(s, msg->status, msg->error);
		return;
	}
	session_start_request(s, msg, p);
}

void
session_client_readcb(struct bufferevent *bev, void *arg)
{
	struct session *s = arg;

	SESSION_CHECK(s);
	(void)bev;
	switch (s->state) {
	case S_HEAD:
		session_read_head(s);
		break;
	case S_UPSTREAM:
		if (!s->req.done && s->ubev != NULL && !s->up_connecting)
			session_pump_request(s);
		break;
	case S_CLOSING:
	case S_TUNNEL: /* the client bufferevent is gone by then */
		break;
	case S_LINGER:
		evbuffer_drain(bufferevent_get_input(bev),
		               evbuffer_get_length(bufferevent_get_input(bev)));
		break;
	}
}

void
session_client_writecb(struct bufferevent *bev, void *arg)
{
	struct session *s = arg;

	SESSION_CHECK(s);
	(void)bev;
	switch (s->state) {
	case S_UPSTREAM:
		if (s->chit != NULL)
			session_cache_pump(s);
		else if (s->resp_started && !s->resp.done)
			session_pump_response(s);
		else
			bev_write_idle(s->cbev);
		break;
	case S_CLOSING:
		if (evbuffer_get_length(bufferevent_get_output(s->cbev)) == 0)
			session_linger(s);
		break;
	default:
		bev_write_idle(s->cbev);
		break;
	}
}

/* The next OpenSSL error of a TLS bufferevent (tls_errors_string()). */
static unsigned long
session_ssl_error(void *arg)
{
	return bufferevent_get_openssl_error(arg);
}

void
session_client_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct session *s = arg;

	SESSION_CHECK(s);
	if (what & BEV_EVENT_CONNECTED) {
		/*
		 * A TLS handshake completed: the request head is next. The handshake ran with
		 * EV_WRITE enabled; left on, it would keep bev_flush_tls() from writing the first
		 * response at once (an EPOLLOUT round trip and a record per chain instead).
		 */
		if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
			bufferevent_disable(bev, EV_WRITE);
		metrics_srv_inc(s->srv, MS_TLS_HANDSHAKES);
		tls_open_reads(bev);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		if ((what & BEV_EVENT_READING) && s->state == S_UPSTREAM && !s->req.done) {
			session_error(s, 408, "client timed out sending the request body");
			return;
		}
		session_close(s, "client timed out");
		return;
	}
	if (what & BEV_EVENT_EOF) {
		if (s->state == S_UPSTREAM && !s->req.done) {
			session_close(s,
			              "client closed the connection before sending the whole body");
			return;
		}
		if (s->state == S_UPSTREAM && !s->resp_started) {
			/*
			 * The client gave up while the upstream works on its request: stop that
			 * work too (nginx's 499), so the peer is not counted busy until
			 * proxy_read_timeout.
			 */
			s->status = 499;
			session_log_access(s);
			session_close(s, "client closed the connection while waiting for the "
			                 "response");
			return;
		}
		if (s->state == S_UPSTREAM) {
			/* half-close during the response: finish it, then close */
			s->keepalive = 0;
			bufferevent_disable(s->cbev, EV_READ);
			return;
		}
		session_close(s, s->state == S_HEAD ? "client closed keep-alive connection"
		                                    : "client closed");
		return;
	}
	if (s->tls) {
		char why[256];

		s->tls_failed = 1;
		if (s->nreq == 0 && s->state == S_HEAD &&
		    tls_errors_string(why, sizeof(why), session_ssl_error, s->cbev) != NULL) {
			/* a failed handshake costs one line at info, nothing more */
			log_info("*%" PRIu64 " client %s: TLS handshake failed: %s", s->id,
			         s->client, why);
			session_close(s, "TLS handshake failed");
			return;
		}
	}
	session_close(s, "client connection error");
}

void
session_timercb(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;

	SESSION_CHECK(s);
	(void)fd;
	(void)what;
	if (s->state == S_HEAD && evbuffer_get_length(bufferevent_get_input(s->cbev)) > 0) {
		s->method = HTTP_M_OTHER;
		session_error(s, 408, "client timed out sending the request head");
		return;
	}
	session_close(s, s->state == S_LINGER ? "lingering close done" : "keep-alive timeout");
}

/* ---------------------------------------------------------------- upstream side */

static void up_readcb(struct bufferevent *bev, void *arg);
static void up_writecb(struct bufferevent *bev, void *arg);
static void up_eventcb(struct bufferevent *bev, short what, void *arg);

static void
session_request_sent(struct session *s)
{
	struct timeval rtv = env_tv(s->env, s->srv->proxy_read_timeout_ms),
	               wtv = env_tv(s->env, s->srv->proxy_send_timeout_ms);

	struct timeval ctv = env_tv(s->env, s->srv->send_timeout_ms);

	/* while the upstream answers, the client owes nothing: no read timeout */
	if (s->req.kind != HTTP_BODY_NONE)
		bufferevent_set_timeouts(s->cbev, NULL, &ctv); /* else still so from the head */
	s->req.done = 1;
	if (s->ubev != NULL)
		bufferevent_set_timeouts(s->ubev, &rtv, &wtv);
}

static void
session_upstream_ready(struct session *s)
{
	struct evbuffer *out = bufferevent_get_output(s->ubev);
	struct timeval wtv = env_tv(s->env, s->srv->proxy_send_timeout_ms);

	if (s->fwd != NULL && s->fwd->connect) {
		session_tunnel_start(s);
		return;
	}
	if (s->up_connecting && s->up_tls != NULL)
		tls_client_session_done(s->up_tls, bufferevent_openssl_get_ssl(s->ubev));
	if (s->up_connecting) {
		/* a new connection; a pooled one keeps what its first session set */
		int one = 1;

		setsockopt(bufferevent_getfd(s->ubev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		bufferevent_setwatermark(s->ubev, EV_READ, 0, RELAY_HIGH);
		bufferevent_setwatermark(s->ubev, EV_WRITE, RELAY_HIGH / 2, 0);
		s->up_connecting = 0;
	}
	/* no read timeout until the request is sent: an upload may take long */
	if (!s->req.done)
		bufferevent_set_timeouts(s->ubev, NULL, &wtv);
	bufferevent_setcb(s->ubev, up_readcb, up_writecb, up_eventcb, s);
	/* a copy: the original stays for a retry until the upstream answers */
	evbuffer_add(out, evbuffer_pullup(s->req_head, -1), evbuffer_get_length(s->req_head));
	bev_enable_read(s->ubev); /* writing is enabled from creation on */

	if (s->req.done) {
		bev_flush(s->ubev);
		session_request_sent(s);
		return;
	}
	if (s->expect100 && s->minor >= 1 && s->req.moved == 0 &&
	    evbuffer_get_length(bufferevent_get_input(s->cbev)) == 0) {
		evbuffer_add(bufferevent_get_output(s->cbev), "HTTP/1.1 100 Continue\r\n\r\n", 25);
		s->resp_head_len += 25;
		bev_flush(s->cbev);
	}
	struct timeval btv = env_tv(s->env, s->srv->client_body_timeout_ms),
	               stv = env_tv(s->env, s->srv->send_timeout_ms);
	bufferevent_set_timeouts(s->cbev, &btv, &stv);
	bev_enable_read(s->cbev);
	session_pump_request(s);
}

/*
 * Connect to s->up_addr, or take an idle connection to it from the pool when pooled is
 * set. Returns 0 when connecting (or ready), -1 when the connect failed at once (s->perr
 * and s->perr_hop say why; the connection is released), -2 when the session answered an
 * error itself.
 */
int
session_connect_addr(struct session *s, int pooled)
{
	struct bufferevent *bev;
	int reqs = 0;

	s->up_tls = s->peer != NULL ? s->peer->tls : NULL;
	if (pooled && (bev = up_pool_get(&s->env->pool, &s->up_addr, s->up_tls, &reqs)) != NULL) {
		s->ubev = bev;
		s->up_reused = 1;
		s->up_requests = reqs;
		session_upstream_ready(s);
		return 0;
	}
	if (s->up_tls != NULL) {
		/* TLS to the upstream: SNI and the verified name are the server line's */
		SSL *ssl = tls_client_ssl(s->up_tls, s->peer->tls_name, s->up_addr.text);

		bev = ssl == NULL ? NULL
		                  : bufferevent_openssl_socket_new(s->env->base, -1, ssl,
		                                                   BUFFEREVENT_SSL_CONNECTING,
		                                                   BEV_OPT_CLOSE_ON_FREE);
		if (bev != NULL)
			bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	} else {
		bev = bufferevent_socket_new(s->env->base, -1, BEV_OPT_CLOSE_ON_FREE);
	}
	if (bev == NULL) {
		session_error(s, 500, "out of memory");
		return -2;
	}
	bufferevent_set_max_single_read(bev, IO_CHUNK);
	bufferevent_set_max_single_write(bev, IO_CHUNK);
	struct timeval ctv = env_tv(s->env, s->srv->proxy_connect_timeout_ms);
	bufferevent_setcb(bev, up_readcb, up_writecb, up_eventcb, s);
	bufferevent_set_timeouts(bev, NULL, &ctv);
	s->ubev = bev;
	s->up_connecting = 1;
	s->up_reused = 0;
	s->up_requests = 0;
	if (bufferevent_socket_connect(bev, (const struct sockaddr *)&s->up_addr.ss,
	                               (int)s->up_addr.len) == -1) {
		int err = errno;

		log_warn("*%" PRIu64 " connect() to %s failed", s->id, s->up_addr.text);
		if (s->fwd != NULL)
			session_fwd_connect_failed(s, 0, err);
		s->perr = err == ECONNREFUSED ? "connection_refused" : "connection_terminated";
		snprintf(s->perr_hop, sizeof(s->perr_hop), "%s", s->up_addr.text);
		session_release_upstream(s, 0);
		return -1;
	}
	bev_own_reads(bev); /* the descriptor is set now */
	return 0;
}

static void
session_connect(struct session *s)
{
	struct cfg_upstream *u = s->srv->upstream;
	int64_t now = up_now_ms();

	if (s->fwd != NULL) {
		session_fwd_connect(s);
		return;
	}
	while (s->ntried < UP_MAX_TRIES) {
		struct cfg_peer *peer = up_pick(u, (const struct sockaddr *)&s->client_ss, s->hkey,
		                                s->hkeylen, s->tried, s->ntried, now);
		int r;

		if (peer == NULL)
			break;
		const struct cfg_addr *pa = cfg_peer_addr(peer);
		if (pa == NULL) {
			s->tried[s->ntried++] = peer; /* DNS emptied the slot meanwhile */
			continue;
		}
		s->up_addr = *pa; /* a resolve slot may change address under us */
		up_note_live(u, 1);
		s->resp_got = 0;
		s->tried[s->ntried++] = peer;
		s->peer = peer;
		s->up_start_ms = now;
		atomic_fetch_add(&peer->active, 1);
		metrics_peer_inc(peer, MP_REQUESTS);
		if (s->ntried > 1)
			metrics_peer_inc(peer, MP_RETRIES);
		if ((r = session_connect_addr(s, 1)) != -1)
			return;
		metrics_peer_inc(peer, MP_CONNECT_FAILURES);
		up_peer_failed(u, peer, now);
		if (!session_next_allowed(s, CFG_NEXT_ERROR, 0))
			break;
	}
	if (s->ntried == 0 && up_peers_limited(u, s->tried, s->ntried, now)) {
		/* live peers, all at their max_conns: not a health transition (no up_note_live) */
		log_info("*%" PRIu64 " client %s: upstream \"%s\": every peer is at its max_conns",
		         s->id, s->client, u->name);
		s->perr = "connection_limit_reached";
		session_error(s, 503, "upstream connection limit reached");
		return;
	}
	if (s->ntried == 0) {
		/* every peer is marked down: nothing was tried, the service is unavailable */
		up_note_live(u, 0);
		if (session_cache_stale_error(s, CFG_NEXT_ERROR, 0))
			return;
		s->perr = "destination_unavailable";
		s->retry_after = up_retry_after(u, now);
		session_error(s, 503, "no live upstreams");
		return;
	}
	if (session_cache_stale_error(s, s->last_timeout ? CFG_NEXT_TIMEOUT : CFG_NEXT_ERROR, 0))
		return;
	session_error(s, s->last_timeout ? 504 : 502, "no upstream could be reached");
}

/* ---------------------------------------------------------------- access policy */

/*
 * The clock rules see. Builds configured with --enable-test-hooks honour PROXYD_TEST_NOW
 * (seconds since the epoch), so time-window tests need no waiting; release builds never.
 */
time_t
session_now(void)
{
	long long fixed = testhook_now();

	return fixed >= 0 ? (time_t)fixed : time(NULL);
}

int
session_rules_subject(const struct cfg_server *srv, const struct http_msg *msg,
                      const struct sockaddr *client, const char *user, time_t now,
                      struct session_subject *ss)
{
	struct rules_subject *subj = &ss->subj;
	const char *path = msg->path.p, *q;
	size_t plen = msg->path.len, hl = msg->host.len;
	long n;

	memset(subj, 0, sizeof(*subj));
	if (client != NULL)
		rules_ip_from_sockaddr(client, &subj->client);
	if (user != NULL && *user != '\0') {
		subj->user = user;
		subj->user_len = strlen(user);
	}
	subj->method = msg->method_name.p;
	subj->method_len = msg->method_name.len;
	if (msg->method == HTTP_M_CONNECT) {
		subj->scheme = "https"; /* what CONNECT carries, nearly always */
		subj->scheme_len = 5;
	} else if (msg->form == HTTP_TARGET_ABSOLUTE) {
		subj->scheme = msg->scheme.p;
		subj->scheme_len = msg->scheme.len;
	} else {
		subj->scheme = "http";
		subj->scheme_len = 4;
	}
	/* host: lower case, without an IPv6 literal's brackets */
	const char *h = msg->host.p;
	if (hl >= 2 && h[0] == '[') {
		h++;
		hl -= 2;
	}
	if (hl >= sizeof(ss->host))
		return -1;
	for (size_t i = 0; i < hl; i++)
		ss->host[i] = (char)(h[i] >= 'A' && h[i] <= 'Z' ? h[i] + 32 : h[i]);
	ss->host[hl] = '\0';
	subj->host = ss->host;
	subj->host_len = hl;
	subj->port = msg->port != 0 ? msg->port : msg->method == HTTP_M_CONNECT ? 443 : 80;
	if (msg->method != HTTP_M_CONNECT && msg->form != HTTP_TARGET_ASTERISK) {
		if ((q = memchr(path, '?', plen)) != NULL) {
			subj->query = q + 1;
			subj->query_len = plen - (size_t)(q + 1 - path);
			plen = (size_t)(q - path);
		}
		if (plen + 1 > ss->pathcap) {
			char *nb = realloc(ss->path, plen + 1);

			if (nb == NULL)
				return -1;
			ss->path = nb;
			ss->pathcap = plen + 1;
		}
		/* matched after normalization, so %2e%2e and // cannot slip past a rule */
		if ((n = rules_path_normalize(path, plen, ss->path, ss->pathcap)) < 0)
			return -2;
		subj->path = ss->path;
		subj->path_len = (size_t)n;
	}
	for (size_t i = 0; i < msg->nheaders && i < HTTP_MAX_HEADERS; i++) {
		ss->hdrs[i].name = msg->headers[i].name.p;
		ss->hdrs[i].name_len = msg->headers[i].name.len;
		ss->hdrs[i].value = msg->headers[i].value.p;
		ss->hdrs[i].value_len = msg->headers[i].value.len;
	}
	subj->headers = ss->hdrs;
	subj->nheaders = msg->nheaders < HTTP_MAX_HEADERS ? msg->nheaders : HTTP_MAX_HEADERS;
	subj->now = now;
	(void)srv;
	return 0;
}

/* The PURGE method (a cache's own, not HTTP's). */
static int
session_is_purge(const struct http_msg *msg)
{
	return msg->method_name.len == 5 && memcmp(msg->method_name.p, "PURGE", 5) == 0;
}

/*
 * The policy of the server for msg. Returns 0 when allowed, 1 when denied and answered.
 * dst NULL: at the head (msg is still in the client's input; the hit is counted). dst set:
 * a forward request's resolved address, checked again so that `dst CIDR` rules see it
 * (msg is a re-parsed copy; only a deny is counted, the head already counted its hit).
 */
int
session_acl(struct session *s, const struct http_msg *msg, const struct sockaddr *dst)
{
	struct acl *acl = s->srv->acl;
	struct session_subject *ss = s->env->subject;
	struct acl_decision d;
	int r;

	if (acl == NULL)
		return 0;
	r = session_rules_subject(s->srv, msg, (const struct sockaddr *)&s->client_ss, s->user,
	                          session_now(), ss);
	if (r != 0) {
		if (dst == NULL)
			evbuffer_drain(bufferevent_get_input(s->cbev), msg->head_len);
		session_error(s, r == -2 ? 400 : 500,
		              r == -2 ? "bad percent-encoding in the path" : "out of memory");
		return 1;
	}
	if (s->tls && msg->form != HTTP_TARGET_ABSOLUTE && msg->method != HTTP_M_CONNECT) {
		ss->subj.scheme = "https"; /* a TLS listener's requests */
		ss->subj.scheme_len = 5;
		if (msg->port == 0)
			ss->subj.port = 443;
	}
	if (dst != NULL)
		rules_ip_from_sockaddr(dst, &ss->subj.dst);
	d = acl_decide(acl, &ss->subj, s->env->rscratch, dst == NULL);
	if (d.allow && d.line == NULL && session_is_purge(msg)) {
		d.allow = 0; /* PURGE only by an allow line that names it, never by default */
		d.status = 403;
	}
	if (d.allow)
		return 0;
	if (dst != NULL) /* the decision changed with the address: count the deny */
		(void)acl_decide(acl, &ss->subj, s->env->rscratch, 1);

	char url[512], reqid[32];

	const struct rules_subject *sj = &ss->subj;
	int dport =
	        (sj->port == 80 && sj->scheme_len == 4) || (sj->port == 443 && sj->scheme_len == 5);
	char portstr[8] = "";

	if (!dport)
		snprintf(portstr, sizeof(portstr), ":%d", sj->port);
	/* the URL as the url matcher sees it (proxyd.conf(5)): the query included, CONNECT
	 * as https://host[:port]/ */
	snprintf(url, sizeof(url), "%.*s://%.*s%s%.*s%s%.*s", (int)sj->scheme_len, sj->scheme,
	         (int)sj->host_len, sj->host, portstr, sj->path_len > 0 ? (int)sj->path_len : 1,
	         sj->path_len > 0 ? sj->path : "/", sj->query != NULL ? "?" : "",
	         sj->query != NULL ? (int)sj->query_len : 0, sj->query != NULL ? sj->query : "");
	snprintf(reqid, sizeof(reqid), "%" PRIu64, s->id);
	if (d.line != NULL)
		log_notice("*%" PRIu64 " client %s: denied by rule %s (%s:%d): %.*s %s", s->id,
		           s->client, d.line->id, d.line->file, d.line->line,
		           (int)msg->method_name.len, msg->method_name.p, url);
	else
		log_notice("*%" PRIu64 " client %s: denied by default (no rule matched): %.*s %s",
		           s->id, s->client, (int)msg->method_name.len, msg->method_name.p, url);
	/*
	 * Room for the whole page: deny_page may be 64k, and each $word in it expands to at
	 * most 6 bytes (&quot;) per byte of the longest value. A fixed 4k buffer cut pages.
	 */
	const char *tpl = acl->deny_page;
	size_t cap = 1024, ndollar = 0, vmax = strlen(url);

	if (tpl != NULL) {
		const char *t;

		cap = strlen(tpl) + 1;
		for (t = tpl; (t = strchr(t, '$')) != NULL; t++)
			ndollar++;
	} else {
		ndollar = 3; /* $url, $rule and $id in the built-in page */
	}
	vmax = vmax > strlen(s->client) ? vmax : strlen(s->client);
	vmax = vmax > strlen(reqid) ? vmax : strlen(reqid);
	vmax = vmax > strlen(acl_decision_id(&d)) ? vmax : strlen(acl_decision_id(&d));
	cap += ndollar * 6 * vmax;
	if (dst == NULL)
		evbuffer_drain(bufferevent_get_input(s->cbev), msg->head_len);
	free(s->custom_body);
	s->custom_body = malloc(cap);
	if (s->custom_body != NULL) /* NUL-terminated; session_error() takes its strlen */
		acl_deny_body(acl, &d, s->client, url, reqid, s->custom_body, cap);
	s->perr = "http_request_denied";
	metrics_srv_inc(s->srv, MS_ACL_DENIED);
	session_error(s, d.status, "denied by policy");
	return 1;
}

/*
 * Whether the request may go on to the next peer after a failure of kind cond (CFG_NEXT_*)
 * (proxy_next_upstream). reached: the request may have reached the peer, so it must also
 * be safe to repeat: no body byte sent, and idempotent unless non_idempotent is listed.
 * Whether a peer is left is up to session_connect().
 */
static int
session_next_allowed(struct session *s, int cond, int reached)
{
	const struct cfg_server *srv = s->srv;

	if (!(srv->next_upstream & cond))
		return 0;
	if (srv->next_upstream_tries > 0 && s->ntried >= srv->next_upstream_tries)
		return 0;
	if (srv->next_upstream_timeout_ms > 0 &&
	    up_now_ms() - s->req_start_ms >= (int64_t)srv->next_upstream_timeout_ms)
		return 0;
	if (!reached)
		return 1;
	if (s->req_sent)
		return 0;
	return s->idempotent || (srv->next_upstream & CFG_NEXT_NON_IDEMPOTENT);
}

/*
 * The upstream connection failed before the response head was complete. Try the next
 * peer when proxy_next_upstream allows it (session_next_allowed()), or when a reused idle
 * connection was closed under us and the request is idempotent with no body sent (that
 * does not count as a try).
 */
static void
session_upstream_failed(struct session *s, int timeout, int err, const char *why)
{
	int connecting = s->up_connecting, reused = s->up_reused;
	int cond = timeout ? CFG_NEXT_TIMEOUT : CFG_NEXT_ERROR;
	int retry = 0;

	/* the error type the client is told if this is the last try */
	if (connecting)
		s->perr = timeout                                     ? "connection_timeout"
		          : err == ECONNREFUSED                       ? "connection_refused"
		          : err == ENETUNREACH || err == EHOSTUNREACH ? "destination_ip_unroutable"
		                                                      : "connection_terminated";
	else if (timeout)
		s->perr = s->req.done ? "http_response_timeout" : "connection_write_timeout";
	else
		s->perr = "connection_terminated";
	if (s->peer != NULL)
		snprintf(s->perr_hop, sizeof(s->perr_hop), "%s", s->up_addr.text);
	char tlswhy[300];
	if (connecting && !timeout && s->up_tls != NULL && s->ubev != NULL) {
		/* the TCP connection may be up and the TLS handshake what failed */
		SSL *ssl = bufferevent_openssl_get_ssl(s->ubev);
		const char *v = ssl != NULL ? tls_verify_error(ssl) : NULL;
		char e[256];

		if (v != NULL) {
			snprintf(tlswhy, sizeof(tlswhy), "TLS certificate verification failed: %s",
			         v);
			s->perr = "tls_certificate_error";
			why = tlswhy;
		} else if (tls_errors_string(e, sizeof(e), session_ssl_error, s->ubev) != NULL) {
			snprintf(tlswhy, sizeof(tlswhy), "TLS handshake failed: %s", e);
			s->perr = "tls_protocol_error";
			why = tlswhy;
		}
	}

	log_warnx("*%" PRIu64 " client %s: %s %s: %s%s", s->id, s->client,
	          s->fwd ? "origin" : "upstream", s->peer || s->fwd ? s->up_addr.text : "-", why,
	          connecting ? " while connecting" : " while reading response header");
	if (s->fwd != NULL) {
		/* an origin: its next address after a failed connect, or a stale pooled one */
		if (connecting)
			session_fwd_connect_failed(s, timeout, err);
		s->last_timeout = timeout;
		if (!connecting && reused && !timeout && s->req.moved == 0 && s->idempotent)
			s->fwd->next--; /* the same address, on a new connection */
		else if (!connecting)
			s->fwd->next = s->fwd->ans.n; /* the request may have been acted on */
		session_release_upstream(s, 0);
		if (s->fwd->next < s->fwd->ans.n) {
			session_fwd_try(s);
			return;
		}
		if (session_cache_stale_error(s, cond, 0))
			return;
		snprintf(s->perr_hop, sizeof(s->perr_hop), "%s", s->fwd->host);
		session_error(s, timeout ? 504 : 502, why);
		return;
	}
	if (s->peer != NULL && (timeout || connecting))
		metrics_peer_inc(s->peer, timeout ? MP_TIMEOUTS : MP_CONNECT_FAILURES);
	if (connecting) {
		up_peer_failed(s->srv->upstream, s->peer, up_now_ms());
		s->last_timeout = timeout;
		retry = session_next_allowed(s, cond, 0);
	} else if (reused && !timeout && s->req.moved == 0 &&
	           (s->method == HTTP_M_GET || s->method == HTTP_M_HEAD ||
	            s->method == HTTP_M_OPTIONS || s->method == HTTP_M_PUT ||
	            s->method == HTTP_M_DELETE || s->method == HTTP_M_TRACE)) {
		retry = 1;
		s->ntried--; /* a stale pooled connection says nothing about the peer */
	} else {
		if (!s->resp_got)
			up_peer_failed(s->srv->upstream, s->peer, up_now_ms());
		s->last_timeout = timeout;
		retry = session_next_allowed(s, cond, 1);
	}
	session_release_upstream(s, 0);
	if (retry) {
		session_connect(s);
		return;
	}
	if (session_cache_stale_error(s, cond, 0))
		return;
	session_error(s, timeout ? 504 : 502, why);
}

static void
session_pump_request(struct session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->cbev);
	struct evbuffer *out = bufferevent_get_output(s->ubev);

	for (int round = 0;; round++) {
		size_t before = evbuffer_get_length(in);
		uint64_t moved = s->req.moved;
		int r = pump_run(&s->req, in, out);

		if (r != 0 || evbuffer_get_length(in) != before)
			s->req_sent = 1; /* body framing or bytes went out: not repeatable */
		if (r == 0 && evbuffer_get_length(out) < RELAY_HIGH) {
			size_t more;

			bev_read_more(s->cbev);
			more = evbuffer_get_length(in);
			r = pump_run(&s->req, in, out);
			if (r != 0 || evbuffer_get_length(in) != more)
				s->req_sent = 1;
		}
		if (r == -1 && s->req.ch.too_large) {
			session_error(s, 413, "request body larger than client_max_body_size");
			return;
		}
		if (r == -1) {
			metrics_srv_inc(s->srv, MS_REJECTED);
			session_error(s, 400,
			              s->req.ch.error ? s->req.ch.error : "bad chunked body");
			return;
		}
		bev_flush(s->ubev);
		if (r == 1) {
			session_request_sent(s);
			return;
		}
		/* room was made and input remains: go on, or let the write callback do it */
		if (evbuffer_get_length(in) == 0 || evbuffer_get_length(out) >= RELAY_HIGH ||
		    (evbuffer_get_length(in) == before && s->req.moved == moved))
			return;
		if (round == PUMP_ROUNDS) {
			bufferevent_enable(s->ubev, EV_WRITE);
			return;
		}
	}
}

/* The proxy_next_upstream condition of a response status, or 0. */
static int
session_status_cond(int status)
{
	switch (status) {
	case 500:
		return CFG_NEXT_HTTP_500;
	case 502:
		return CFG_NEXT_HTTP_502;
	case 503:
		return CFG_NEXT_HTTP_503;
	case 504:
		return CFG_NEXT_HTTP_504;
	case 403:
		return CFG_NEXT_HTTP_403;
	case 404:
		return CFG_NEXT_HTTP_404;
	case 429:
		return CFG_NEXT_HTTP_429;
	default:
		return 0;
	}
}

/*
 * The response from s->peer is bad (CFG_NEXT_INVALID_HEADER) or has a status listed in
 * proxy_next_upstream: discard it and try the next peer, if that is allowed and a peer is
 * left. On the last try nothing is intercepted: the caller relays the response (or fails
 * it). Returns 1 when the next peer is being tried (the connection is closed, not pooled).
 */
static int
session_next_response(struct session *s, int cond, int status)
{
	struct cfg_upstream *u = s->srv->upstream;
	int64_t now = up_now_ms();

	if (!session_next_allowed(s, cond, 1) || !up_peers_left(u, s->tried, s->ntried, now))
		return 0;
	if (status != 0) {
		log_info("*%" PRIu64 " client %s: upstream %s answered %d, trying the next peer",
		         s->id, s->client, s->up_addr.text, status);
		/* as nginx: 403 and 404 say nothing about the peer's health */
		if (cond & (CFG_NEXT_HTTP_403 | CFG_NEXT_HTTP_404))
			up_peer_ok(s->peer);
		else
			up_peer_failed(u, s->peer, now);
	}
	session_release_upstream(s, 0);
	session_connect(s);
	return 1;
}

static void
session_read_response_head(struct session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->ubev);
	struct http_limits lim = {RESP_HEAD_MAX, RESP_HEAD_MAX, RESP_MAX_HEADERS};
	struct http_msg *msg = &s->env->scratch;
	const struct cfg_server *srv = s->srv;
	const char *p;
	size_t len, n;
	int r;

	for (;;) {
		if ((len = evbuffer_get_length(in)) == 0)
			return;
		s->resp_got = 1;
		n = len < RESP_HEAD_MAX + 1 ? len : RESP_HEAD_MAX + 1;
		p = (const char *)evbuffer_pullup(in, (ssize_t)n);
		r = http_parse_response(p, n, &lim, msg);
		if (r == HTTP_AGAIN)
			return;
		if (r == HTTP_ERROR) {
			log_warnx("*%" PRIu64
			          " client %s: upstream %s sent an invalid response: %s",
			          s->id, s->client, s->up_addr.text, msg->error);
			up_peer_failed(srv->upstream, s->peer, up_now_ms());
			if (session_next_response(s, CFG_NEXT_INVALID_HEADER, 0) ||
			    session_cache_stale_error(s, CFG_NEXT_INVALID_HEADER, 0))
				return;
			session_fail(s, 502, "http_protocol_error",
			             "invalid response from upstream");
			return;
		}
		if (msg->status_code >= 100 && msg->status_code < 200 && msg->status_code != 101) {
			evbuffer_drain(in, (size_t)r); /* interim responses are not relayed */
			continue;
		}
		break;
	}
	if (msg->status_code == 101 && s->upgrade) {
		const struct http_header *up = http_header_find(msg, "upgrade");

		if (up != NULL && up->value.len == 9 &&
		    strncasecmp(up->value.p, "websocket", 9) == 0) {
			session_upgrade_start(s, msg, (size_t)r);
			return;
		}
	}
	if (msg->status_code == 101) {
		log_warnx("*%" PRIu64 " upstream %s switched protocols unasked", s->id,
		          s->up_addr.text);
		up_peer_failed(srv->upstream, s->peer, up_now_ms());
		if (session_next_response(s, CFG_NEXT_INVALID_HEADER, 0))
			return;
		session_fail(s, 502, "http_protocol_error", "unexpected 101 from upstream");
		return;
	}
	int cond = session_status_cond(msg->status_code);

	if (cond != 0 && session_next_response(s, cond, msg->status_code))
		return;
	if (cond != 0 && session_cache_stale_error(s, cond, msg->status_code))
		return;
	if (s->cstale != NULL) {
		if (msg->status_code == 304) {
			session_cache_revalidated(s, msg, (size_t)r);
			return;
		}
		cache_meta_free(s->cstale); /* changed: the new response replaces the entry */
		s->cstale = NULL;
	}
	up_peer_ok(s->peer);
	up_peer_time(srv->upstream, s->peer, 0, s->up_start_ms);

	enum http_body kind = http_response_body(msg, s->method);
	struct evbuffer *out = bufferevent_get_output(s->cbev);
	int conn_tokens = http_header_find(msg, "connection") != NULL;
	int out_chunked = 0;
	char line[64];
	size_t n2;
	struct hbuf hb;

	s->status = msg->status_code;
	if (!s->req.done)
		s->keepalive = 0; /* answered before the body was read: close after */
	if (kind == HTTP_BODY_EOF || kind == HTTP_BODY_CHUNKED) {
		if (s->minor >= 1)
			out_chunked = 1;
		else
			s->keepalive = 0; /* HTTP/1.0: the body ends at close */
	}
	s->up_keepalive = http_keepalive(msg) && kind != HTTP_BODY_EOF &&
	                  srv->upstream->keepalive > 0 &&
	                  s->up_requests + 1 < srv->upstream->keepalive_requests;

	/*
	 * A chunked body's framing can only be checked as it arrives; the head waits until
	 * the first chunk line proves it, so the common malformed case still becomes a 502.
	 */
	if (kind == HTTP_BODY_CHUNKED) {
		if (s->hold == NULL && (s->hold = evbuffer_new()) == NULL) {
			session_close(s, "out of memory");
			return;
		}
		out = s->hold;
		s->resp_held = 1;
	}
	size_t out0 = evbuffer_get_length(out);
	hb_init(&hb, out);
	memcpy(line, "HTTP/1.1 ", 9);
	n2 = 9 + fmt_u64(line + 9, (uint64_t)msg->status_code, 10);
	line[n2++] = ' ';
	hb_add(&hb, line, n2);
	hb_add(&hb, msg->reason.p, msg->reason.len);
	hb_add(&hb, "\r\n", 2);
	for (size_t i = 0; i < msg->nheaders; i++) {
		const struct http_header *h = &msg->headers[i];

		if (hdr_hop(h)) {
			/* a HEAD or 304 answer states the length of the body it omits */
			if (kind == HTTP_BODY_NONE && HDR_IS(h, "content-length"))
				hb_header(&hb, h);
			continue;
		}
		if (conn_tokens && http_connection_lists(msg, h->name.p, h->name.len))
			continue;
		hb_header(&hb, h);
	}
	if (kind == HTTP_BODY_LENGTH) {
		memcpy(line, "Content-Length: ", 16);
		n2 = 16 + fmt_u64(line + 16, (uint64_t)msg->content_length, 10);
		line[n2++] = '\r';
		line[n2++] = '\n';
		hb_add(&hb, line, n2);
	} else if (out_chunked) {
		hb_add(&hb, "Transfer-Encoding: chunked\r\n", 28);
	}
	if (srv->nadd_headers > 0 || (srv->cache != NULL && srv->cache->store != NULL))
		hb_flush(&hb); /* what follows writes to out itself */
	if (srv->nadd_headers > 0)
		session_add_headers(s, out, msg->status_code);
	if (srv->cache != NULL && srv->cache->store != NULL) {
		int stored = session_cache_store(s, msg, kind);

		session_cache_fields(s, out, stored);
		if (s->curl != NULL && s->method != HTTP_M_GET && s->method != HTTP_M_HEAD &&
		    s->method != HTTP_M_OPTIONS && s->method != HTTP_M_TRACE &&
		    msg->status_code >= 200 && msg->status_code < 400)
			/* an unsafe method went through: what was stored for the URL is stale */
			session_cache_invalidate(s, msg);
	}
	if (!s->keepalive)
		hb_add(&hb, "Connection: close\r\n", 19);
	else if (s->minor == 0)
		hb_add(&hb, "Connection: keep-alive\r\n", 24);
	hb_add(&hb, "\r\n", 2);
	hb_flush(&hb);
	s->resp_head_len += evbuffer_get_length(out) - out0;
	if (s->resp_held)
		s->resp_head_held = evbuffer_get_length(out) - out0;

	evbuffer_drain(in, (size_t)r);
	evbuffer_drain(s->req_head, evbuffer_get_length(s->req_head));
	pump_init(&s->resp, kind, msg->content_length, out_chunked);
	s->resp.tee = s->ctee; /* the body streams into the cache too */
	s->ctee = NULL;
	s->resp_started = 1;
	bufferevent_setwatermark(s->cbev, EV_WRITE, RELAY_HIGH / 2, 0);
	if (s->resp.done)
		session_response_done(s);
	else
		session_pump_response(s);
}

static void
session_pump_response(struct session *s)
{
	struct evbuffer *in = bufferevent_get_input(s->ubev);
	struct evbuffer *out = bufferevent_get_output(s->cbev);

	for (int round = 0;; round++) {
		struct evbuffer *dst = s->resp_held ? s->hold : out;
		size_t before = evbuffer_get_length(in);
		uint64_t moved = s->resp.moved;
		int r = pump_run(&s->resp, in, dst);

		if (r == 0 && !s->up_eof && evbuffer_get_length(dst) < RELAY_HIGH) {
			bev_read_more(s->ubev);
			r = pump_run(&s->resp, in, dst);
		}
		if (r == -1) {
			log_warnx("*%" PRIu64 " upstream %s sent a bad chunked body: %s", s->id,
			          s->up_addr.text, s->resp.ch.error ? s->resp.ch.error : "?");
			session_fail(s, 502, "http_protocol_error",
			             "invalid chunked body from upstream");
			return;
		}
		if (s->resp_held && (r == 1 || s->resp.ch.state != HTTP_CHUNK_SIZE)) {
			s->resp_held = 0;
			s->resp_head_held = 0;
			evbuffer_add_buffer(out, s->hold);
		}
		if (r == 1) {
			session_response_done(s);
			return;
		}
		if (s->up_eof && evbuffer_get_length(in) == 0) {
			if (s->resp.kind == HTTP_BODY_EOF) {
				pump_finish_eof(&s->resp, out);
				session_response_done(s);
				return;
			}
			log_warnx("*%" PRIu64 " upstream %s closed the connection mid-body", s->id,
			          s->up_addr.text);
			session_fail(s, 502, "http_response_incomplete",
			             "upstream prematurely closed the connection");
			return;
		}
		if (s->resp_held)
			return;
		bev_flush(s->cbev);
		/* room was made and input remains: go on, or let the write callback do it */
		if (evbuffer_get_length(in) == 0 || evbuffer_get_length(out) >= RELAY_HIGH ||
		    (evbuffer_get_length(in) == before && s->resp.moved == moved))
			return;
		if (round == PUMP_ROUNDS) {
			bufferevent_enable(s->cbev, EV_WRITE);
			return;
		}
	}
}

static void
session_response_done(struct session *s)
{
	session_cache_tee_end(s, s->resp.done);
	bev_flush(s->cbev);
	if (s->peer != NULL)
		up_peer_time(s->srv->upstream, s->peer, 1, s->up_start_ms);
	session_release_upstream(s, s->up_keepalive && s->req.done && !s->up_eof);
	session_log_access(s);
	s->nreq++;
	if (s->keepalive && s->req.done && !s->env->stopping)
		session_enter_head(s);
	else
		session_finish(s);
}

static void
up_readcb(struct bufferevent *bev, void *arg)
{
	struct session *s = arg;

	SESSION_CHECK(s);
	(void)bev;
	if (!s->resp_started)
		session_read_response_head(s);
	else if (!s->resp.done)
		session_pump_response(s);
}

static void
up_writecb(struct bufferevent *bev, void *arg)
{
	struct session *s = arg;

	SESSION_CHECK(s);
	(void)bev;
	if (!s->req.done && !s->up_connecting)
		session_pump_request(s);
	else if (!s->up_connecting)
		bev_write_idle(s->ubev);
}

static void
up_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct session *s = arg;

	SESSION_CHECK(s);
	(void)bev;
	if (what & BEV_EVENT_CONNECTED) {
		session_upstream_ready(s);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		if (s->resp_started) {
			session_fail(s, 504, "http_response_timeout", "upstream timed out");
			return;
		}
		session_upstream_failed(
		        s, 1, 0, s->up_connecting ? "connection timed out" : "upstream timed out");
		return;
	}
	/* EOF or error */
	if (!s->resp_started) {
		if (s->resp_got && !(what & BEV_EVENT_ERROR)) {
			/* a response head cut short */
			log_warnx("*%" PRIu64 " upstream %s closed the connection mid-header",
			          s->id, s->up_addr.text);
			up_peer_failed(s->srv->upstream, s->peer, up_now_ms());
			if (session_next_response(s, CFG_NEXT_INVALID_HEADER, 0) ||
			    session_cache_stale_error(s, CFG_NEXT_INVALID_HEADER, 0))
				return;
			session_fail(s, 502, "http_response_incomplete",
			             "upstream sent an incomplete response header");
			return;
		}
		int err = (what & BEV_EVENT_ERROR) ? EVUTIL_SOCKET_ERROR() : 0;

		session_upstream_failed(s, 0, err,
		                        err ? evutil_socket_error_to_string(err)
		                            : "upstream closed the connection");
		return;
	}
	s->up_eof = 1;
	bufferevent_disable(s->ubev, EV_READ);
	if ((what & BEV_EVENT_ERROR) && s->resp.kind != HTTP_BODY_EOF) {
		session_fail(s, 502, "connection_terminated", "upstream connection error mid-body");
		return;
	}
	session_pump_response(s);
}

/* ---------------------------------------------------------------- life cycle */

void
session_new(struct session_env *env, int fd, const struct sockaddr *sa, socklen_t salen,
            struct cfg *cfg, const struct cfg_server *srv, int tls)
{
	struct session *s;
	int one = 1;

	if ((s = calloc(1, sizeof(*s))) == NULL) {
		close(fd);
		return;
	}
	memcpy(&s->client_ss, sa, salen < sizeof(s->client_ss) ? salen : sizeof(s->client_ss));
	s->magic = SESSION_MAGIC;
	s->id = __atomic_add_fetch(&session_ids, 1, __ATOMIC_RELAXED);
	s->env = env;
	s->srv = srv;
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr,
		          s->client, sizeof(s->client));
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr,
		          s->client, sizeof(s->client));
	else
		snprintf(s->client, sizeof(s->client), "unix");
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

	if (tls && srv->tls != NULL) {
		/* the handshake runs inside the event loop, before the first read callback */
		SSL *ssl = tls_server_ssl(srv->tls);

		s->tls = 1;
		s->cbev = ssl == NULL ? NULL
		                      : bufferevent_openssl_socket_new(env->base, fd, ssl,
		                                                       BUFFEREVENT_SSL_ACCEPTING,
		                                                       BEV_OPT_CLOSE_ON_FREE);
		if (s->cbev != NULL) {
			bufferevent_openssl_set_allow_dirty_shutdown(s->cbev, 1);
			tls_read_ahead(s->cbev, ssl);
			/*
			 * A bufferevent starts with EV_WRITE enabled; during the handshake that
			 * would poll for EPOLLOUT, which an idle new socket reports at once: a
			 * wakeup and a read that fails before the ClientHello is there. The
			 * handshake arms the events it needs itself.
			 */
			bufferevent_disable(s->cbev, EV_WRITE);
		} else if (ssl != NULL)
			fd = -1; /* the failed bufferevent closed it */
	} else {
		s->cbev = bufferevent_socket_new(env->base, fd, BEV_OPT_CLOSE_ON_FREE);
		if (s->cbev != NULL)
			bev_own_reads(s->cbev);
	}
	s->timer = evtimer_new(env->base, session_timercb, s);
	if (s->cbev == NULL || s->timer == NULL) {
		if (s->cbev)
			bufferevent_free(s->cbev);
		else if (fd != -1)
			close(fd);
		if (s->timer)
			event_free(s->timer);
		free(s);
		return;
	}
	cfg_ref(cfg);
	s->cfg = cfg;
	TAILQ_INSERT_TAIL(&env->sessions, s, link);
	env->nsessions++;
	metrics_srv_inc(srv, MS_CONN_ACCEPTED);

	size_t high = srv->client_max_header_size + 1;
	bufferevent_setwatermark(s->cbev, EV_READ, 0, high > RELAY_HIGH ? high : RELAY_HIGH);
	bufferevent_set_max_single_read(s->cbev, IO_CHUNK);
	bufferevent_set_max_single_write(s->cbev, IO_CHUNK);
	bufferevent_setcb(s->cbev, session_client_readcb, session_client_writecb,
	                  session_client_eventcb, s);
	session_enter_head(s);
}

void
session_env_drain(struct session_env *env)
{
	struct session *s, *next;

	env->stopping = 1;
	for (s = TAILQ_FIRST(&env->sessions); s != NULL; s = next) {
		next = TAILQ_NEXT(s, link);
		if (s->state == S_HEAD && evbuffer_get_length(bufferevent_get_input(s->cbev)) == 0)
			session_close(s, "shutting down");
		else
			s->keepalive = 0;
	}
}

void
session_env_close_all(struct session_env *env)
{
	struct session *s;

	while ((s = TAILQ_FIRST(&env->sessions)) != NULL)
		session_close(s, "shutdown grace period over");
}
