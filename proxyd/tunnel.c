/*
 * tunnel.c - byte relay between two sockets with splice(2). See tunnel.h.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "tunnel.h"

/* What one pass moves at most before letting other connections run. */
#define TUNNEL_ROUNDS 16
/* Bytes asked of one splice or read; pipes are grown to this when the kernel allows. */
#define TUNNEL_CHUNK (256 * 1024)
/* The user-space fallback reads this much at a time. */
#define TUNNEL_COPY (64 * 1024)

struct tdir {
	struct tunnel *t;
	int src, dst;
	int pipe[2]; /* -1 in copy mode */
	size_t inpipe;
	struct evbuffer *buf; /* bytes to write before the pipe's (pre-data, copy mode) */
	struct event *rd;     /* src readable */
	struct event *wr;     /* dst writable */
	int rd_on, wr_on;
	int eof;  /* src sent EOF */
	int shut; /* EOF passed on to dst */
	uint64_t bytes;
};

/* A bufferevent tunnel stops reading a side while the other's output holds this much. */
#define TUNNEL_BEV_HIGH (256 * 1024)

struct tunnel {
	struct tdir d[2];
	int fd[2];
	struct bufferevent *bev[2]; /* bufferevent mode (TLS on a side); NULL: splice mode */
	struct event *idle;
	uint32_t idle_ms;
	int64_t last_ms;
	tunnel_done_cb done;
	void *arg;
	int finished;
};

static int64_t
tunnel_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
ev_on(struct event *ev, int *on)
{
	if (!*on) {
		event_add(ev, NULL);
		*on = 1;
	}
}

static void
ev_off(struct event *ev, int *on)
{
	if (*on) {
		event_del(ev);
		*on = 0;
	}
}

static void
tunnel_finish(struct tunnel *t, const char *why)
{
	if (t->finished)
		return;
	t->finished = 1;
	for (int i = 0; i < 2; i++) {
		if (t->bev[i] != NULL) {
			bufferevent_disable(t->bev[i], EV_READ | EV_WRITE);
			continue;
		}
		ev_off(t->d[i].rd, &t->d[i].rd_on);
		ev_off(t->d[i].wr, &t->d[i].wr_on);
	}
	if (t->idle != NULL)
		event_del(t->idle);
	t->done(t->arg, why);
}

/* Write what is queued in d towards dst: >0 bytes, 0 nothing queued, -1 errno set. */
static ssize_t
tdir_flush(struct tdir *d)
{
	if (evbuffer_get_length(d->buf) > 0)
		return evbuffer_write(d->buf, d->dst);
	if (d->inpipe > 0) {
		ssize_t n = splice(d->pipe[0], NULL, d->dst, NULL, d->inpipe,
		                   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (n > 0)
			d->inpipe -= (size_t)n;
		return n;
	}
	return 0;
}

/* Read from src: >0 bytes queued, 0 EOF, -1 errno set. */
static ssize_t
tdir_fill(struct tdir *d)
{
	if (d->pipe[0] != -1) {
		ssize_t n = splice(d->src, NULL, d->pipe[1], NULL, TUNNEL_CHUNK,
		                   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (n > 0)
			d->inpipe += (size_t)n;
		if (n != -1 || errno != EINVAL)
			return n;
		/* splice refused for these descriptors: copy through user space */
		close(d->pipe[0]);
		close(d->pipe[1]);
		d->pipe[0] = d->pipe[1] = -1;
	}
	return evbuffer_read(d->buf, d->src, TUNNEL_COPY);
}

static int
queued(const struct tdir *d)
{
	return d->inpipe > 0 || evbuffer_get_length(d->buf) > 0;
}

static void
tdir_run(struct tdir *d)
{
	struct tunnel *t = d->t;
	ssize_t n;

	for (int round = 0; round < TUNNEL_ROUNDS && !t->finished; round++) {
		if (queued(d)) {
			n = tdir_flush(d);
			if (n > 0) {
				d->bytes += (uint64_t)n;
				t->last_ms = tunnel_now();
				continue;
			}
			if (n == -1 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
				tunnel_finish(t, errno == EPIPE || errno == ECONNRESET
				                         ? "connection reset while writing"
				                         : strerror(errno));
				return;
			}
			/* the destination is full: stop reading until it drains */
			ev_off(d->rd, &d->rd_on);
			ev_on(d->wr, &d->wr_on);
			return;
		}
		ev_off(d->wr, &d->wr_on);
		if (d->eof) {
			if (!d->shut) {
				shutdown(d->dst, SHUT_WR);
				d->shut = 1;
			}
			ev_off(d->rd, &d->rd_on);
			if (t->d[0].shut && t->d[1].shut)
				tunnel_finish(t, "closed by both sides");
			return;
		}
		n = tdir_fill(d);
		if (n > 0) {
			t->last_ms = tunnel_now();
			continue;
		}
		if (n == 0) {
			d->eof = 1;
			continue;
		}
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
			ev_on(d->rd, &d->rd_on);
			return;
		}
		tunnel_finish(t, errno == ECONNRESET ? "connection reset" : strerror(errno));
		return;
	}
	/*
	 * Yielded with work left: the (level-triggered) events bring us back. Bytes still
	 * queued need the destination's event: the source may have nothing more to say (a
	 * keep-alive peer that sent its last bytes), so waiting for it would strand them.
	 */
	if (!t->finished) {
		if (queued(d))
			ev_on(d->wr, &d->wr_on);
		else if (!d->wr_on)
			ev_on(d->rd, &d->rd_on);
	}
}

static void
tunnel_rdcb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	tdir_run(arg);
}

static void
tunnel_idlecb(evutil_socket_t fd, short what, void *arg)
{
	struct tunnel *t = arg;
	int64_t quiet = tunnel_now() - t->last_ms;

	(void)fd;
	(void)what;
	if (quiet >= (int64_t)t->idle_ms) {
		tunnel_finish(t, "idle timeout");
		return;
	}
	int64_t left = (int64_t)t->idle_ms - quiet;
	struct timeval tv = {(time_t)(left / 1000), (suseconds_t)(left % 1000) * 1000};
	event_add(t->idle, &tv);
}

struct tunnel *
tunnel_new(struct event_base *base, const int fd[2], struct evbuffer *const pre[2],
           uint32_t idle_ms, tunnel_done_cb done, void *arg)
{
	struct tunnel *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return NULL;
	t->fd[0] = fd[0];
	t->fd[1] = fd[1];
	t->done = done;
	t->arg = arg;
	t->idle_ms = idle_ms;
	t->last_ms = tunnel_now();
	for (int i = 0; i < 2; i++) {
		struct tdir *d = &t->d[i];

		d->t = t;
		d->src = fd[i];
		d->dst = fd[1 - i];
		d->pipe[0] = d->pipe[1] = -1;
		if (pipe2(d->pipe, O_NONBLOCK | O_CLOEXEC) == 0)
			(void)fcntl(d->pipe[0], F_SETPIPE_SZ, TUNNEL_CHUNK); /* best effort */
		else
			d->pipe[0] = d->pipe[1] = -1;
		d->buf = evbuffer_new();
		d->rd = event_new(base, d->src, EV_READ | EV_PERSIST, tunnel_rdcb, d);
		d->wr = event_new(base, d->dst, EV_WRITE | EV_PERSIST, tunnel_rdcb, d);
		if (d->buf == NULL || d->rd == NULL || d->wr == NULL)
			goto fail;
		if (pre[i] != NULL)
			evbuffer_add_buffer(d->buf, pre[i]);
	}
	if (idle_ms > 0) {
		struct timeval tv = {(time_t)(idle_ms / 1000),
		                     (suseconds_t)(idle_ms % 1000) * 1000};

		if ((t->idle = evtimer_new(base, tunnel_idlecb, t)) == NULL)
			goto fail;
		event_add(t->idle, &tv);
	}
	tdir_run(&t->d[0]);
	if (!t->finished)
		tdir_run(&t->d[1]);
	return t;

fail:
	t->fd[0] = t->fd[1] = -1; /* not taken */
	tunnel_free(t);
	return NULL;
}

/* ---- bufferevent mode: TLS cannot be spliced ---- */

static void tbev_pump(struct tunnel *t, int d);

static void
tbev_readcb(struct bufferevent *bev, void *arg)
{
	struct tunnel *t = arg;

	tbev_pump(t, bev == t->bev[0] ? 0 : 1);
}

/* dst drained below its low watermark: read its peer again, or finish after an EOF */
static void
tbev_writecb(struct bufferevent *bev, void *arg)
{
	struct tunnel *t = arg;
	int d = bev == t->bev[0] ? 1 : 0; /* the direction that writes to bev */

	if (t->d[d].eof) {
		if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
			tunnel_finish(t, "closed");
		return;
	}
	bufferevent_enable(t->bev[d], EV_READ);
	tbev_pump(t, d);
}

static void
tbev_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct tunnel *t = arg;
	int d = bev == t->bev[0] ? 0 : 1;

	if (what & BEV_EVENT_EOF) {
		/* whole-connection close: TLS has no half-close to pass on */
		tbev_pump(t, d);
		t->d[d].eof = 1;
		if (evbuffer_get_length(bufferevent_get_output(t->bev[1 - d])) == 0)
			tunnel_finish(t, "closed");
		return;
	}
	tunnel_finish(t, (what & BEV_EVENT_TIMEOUT) ? "timed out" : "connection error");
}

static void
tbev_pump(struct tunnel *t, int d)
{
	struct evbuffer *in = bufferevent_get_input(t->bev[d]);
	struct evbuffer *out = bufferevent_get_output(t->bev[1 - d]);
	size_t n = evbuffer_get_length(in);

	if (t->finished || n == 0)
		return;
	evbuffer_add_buffer(out, in);
	t->d[d].bytes += n;
	t->last_ms = tunnel_now();
	if (evbuffer_get_length(out) >= TUNNEL_BEV_HIGH) {
		/* back-pressure: read this side again once the other drained */
		bufferevent_disable(t->bev[d], EV_READ);
		bufferevent_setwatermark(t->bev[1 - d], EV_WRITE, TUNNEL_BEV_HIGH / 4, 0);
	}
}

struct tunnel *
tunnel_new_bev(struct event_base *base, struct bufferevent *const bev[2],
               struct evbuffer *const pre[2], uint32_t idle_ms, tunnel_done_cb done, void *arg)
{
	struct tunnel *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return NULL;
	t->fd[0] = t->fd[1] = -1;
	t->done = done;
	t->arg = arg;
	t->idle_ms = idle_ms;
	t->last_ms = tunnel_now();
	for (int i = 0; i < 2; i++) {
		t->d[i].t = t;
		t->d[i].pipe[0] = t->d[i].pipe[1] = -1;
	}
	if (idle_ms > 0) {
		struct timeval tv = {(time_t)(idle_ms / 1000),
		                     (suseconds_t)(idle_ms % 1000) * 1000};

		if ((t->idle = evtimer_new(base, tunnel_idlecb, t)) == NULL) {
			free(t);
			return NULL;
		}
		event_add(t->idle, &tv);
	}
	for (int i = 0; i < 2; i++) {
		t->bev[i] = bev[i];
		bufferevent_setcb(bev[i], tbev_readcb, tbev_writecb, tbev_eventcb, t);
		bufferevent_set_timeouts(bev[i], NULL, NULL);
		bufferevent_setwatermark(bev[i], EV_READ, 0, TUNNEL_BEV_HIGH);
		bufferevent_setwatermark(bev[i], EV_WRITE, 0, 0);
	}
	for (int i = 0; i < 2; i++) {
		/* pre[d] goes towards the side that d writes to */
		if (pre[i] != NULL)
			evbuffer_add_buffer(bufferevent_get_output(bev[1 - i]), pre[i]);
		bufferevent_enable(bev[i], EV_READ | EV_WRITE);
	}
	tbev_pump(t, 0);
	tbev_pump(t, 1);
	return t;
}

uint64_t
tunnel_bytes(const struct tunnel *t, int d)
{
	return t->d[d].bytes;
}

void
tunnel_free(struct tunnel *t)
{
	if (t == NULL)
		return;
	for (int i = 0; i < 2; i++) {
		struct tdir *d = &t->d[i];

		if (d->rd != NULL)
			event_free(d->rd);
		if (d->wr != NULL)
			event_free(d->wr);
		if (d->buf != NULL)
			evbuffer_free(d->buf);
		if (d->pipe[0] != -1) {
			close(d->pipe[0]);
			close(d->pipe[1]);
		}
		if (t->fd[i] != -1)
			close(t->fd[i]);
		if (t->bev[i] != NULL)
			bufferevent_free(t->bev[i]);
	}
	if (t->idle != NULL)
		event_free(t->idle);
	free(t);
}
