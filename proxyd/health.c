#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>

#include "health.h"
#include "tls.h"
#include "http.h"
#include "log.h"
#include "upstream.h"

/* One checked peer: its timers, the check in flight, and its consecutive results. */
struct health_peer {
	struct health *h;
	struct cfg_upstream *u;
	struct cfg_peer *p;
	struct event *tick;      /* every interval: start a check unless one is in flight */
	struct event *deadline;  /* the check in flight times out */
	struct bufferevent *bev; /* the check in flight, or NULL */
	int fails;               /* consecutive failed checks */
	int passes;              /* consecutive passed checks */
};

struct health {
	struct event_base *base;
	struct cfg *cfg; /* referenced: the peers live in it */
	struct health_peer *peers;
	size_t npeers;
};

/* The check in flight of hp ended: ok, or failed for reason. Records the result. */
static void
health_done(struct health_peer *hp, int ok, const char *reason)
{
	const struct cfg_health *hc = &hp->u->hc;

	if (hp->bev != NULL) {
		bufferevent_free(hp->bev);
		hp->bev = NULL;
	}
	event_del(hp->deadline);
	if (ok) {
		hp->fails = 0;
		if (hp->passes < hc->passes)
			hp->passes++;
		if (hp->passes >= hc->passes && atomic_load(&hp->p->health_down)) {
			if (hp->p->slow_start_ms > 0) {
				atomic_store(&hp->p->recovered_ms, up_now_ms());
				atomic_store(&hp->p->slow_note, 0); /* logged here */
				log_notice("upstream \"%s\": peer %s is back, slow start over %us",
				           hp->u->name, hp->p->addr.text,
				           (hp->p->slow_start_ms + 999) / 1000);
			}
			atomic_store(&hp->p->health_down, 0);
			log_notice("upstream \"%s\": peer %s is up (health check)", hp->u->name,
			           hp->p->addr.text);
		}
		return;
	}
	hp->passes = 0;
	if (hp->fails < hc->fails)
		hp->fails++;
	if (hp->fails >= hc->fails && !atomic_load(&hp->p->health_down)) {
		atomic_store(&hp->p->health_down, 1);
		log_warnx("upstream \"%s\": peer %s is down (health check: %s)", hp->u->name,
		          hp->p->addr.text, reason);
	} else {
		log_debug("upstream \"%s\": peer %s failed a health check: %s", hp->u->name,
		          hp->p->addr.text, reason);
	}
}

static void
health_readcb(struct bufferevent *bev, void *arg)
{
	struct health_peer *hp = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	const struct http_limits lim = {HEALTH_MAX_HEAD, HEALTH_MAX_HEAD, HTTP_MAX_HEADERS};
	struct http_msg msg;
	size_t len = evbuffer_get_length(in);
	const char *buf;
	char why[64];
	int n;

	if (len > HEALTH_MAX_HEAD)
		len = HEALTH_MAX_HEAD; /* the parser reports a head over the limit */
	if ((buf = (const char *)evbuffer_pullup(in, (ev_ssize_t)len)) == NULL) {
		health_done(hp, 0, "out of memory");
		return;
	}
	n = http_parse_response(buf, len, &lim, &msg);
	if (n == HTTP_AGAIN) {
		if (len >= HEALTH_MAX_HEAD)
			health_done(hp, 0, "response head too large");
		return;
	}
	if (n == HTTP_ERROR) {
		snprintf(why, sizeof(why), "invalid response: %s",
		         msg.error != NULL ? msg.error : "malformed");
		health_done(hp, 0, why);
		return;
	}
	if (msg.status_code < hp->u->hc.expect_lo || msg.status_code > hp->u->hc.expect_hi) {
		snprintf(why, sizeof(why), "status %d", msg.status_code);
		health_done(hp, 0, why);
		return;
	}
	health_done(hp, 1, NULL);
}

static void
health_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct health_peer *hp = arg;
	char why[128];

	(void)bev;
	if (what & BEV_EVENT_CONNECTED)
		return;
	if (what & BEV_EVENT_EOF) {
		health_done(hp, 0, "connection closed before the response head");
		return;
	}
	snprintf(why, sizeof(why), "%s", evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	health_done(hp, 0, why);
}

static void
health_deadlinecb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	health_done(arg, 0, "timed out");
}

/* Every interval: start a check of hp's peer unless the previous one is still running. */
static void
health_tickcb(evutil_socket_t fd, short what, void *arg)
{
	struct health_peer *hp = arg;
	const struct cfg_health *hc = &hp->u->hc;
	struct timeval tv = {hc->timeout_ms / 1000, (hc->timeout_ms % 1000) * 1000};

	(void)fd;
	(void)what;
	if (hp->bev != NULL)
		return;
	const struct cfg_addr *pa = cfg_peer_addr(hp->p);
	if (pa == NULL)
		return; /* a resolve slot without an address: nothing to check */
	if (hp->p->tls != NULL) {
		/* a TLS server is checked over TLS, verified as requests are */
		SSL *ssl = tls_client_ssl(hp->p->tls, hp->p->tls_name, pa->text);

		hp->bev = ssl == NULL ? NULL
		                      : bufferevent_openssl_socket_new(hp->h->base, -1, ssl,
		                                                       BUFFEREVENT_SSL_CONNECTING,
		                                                       BEV_OPT_CLOSE_ON_FREE);
		if (hp->bev != NULL)
			bufferevent_openssl_set_allow_dirty_shutdown(hp->bev, 1);
	} else {
		hp->bev = bufferevent_socket_new(hp->h->base, -1, BEV_OPT_CLOSE_ON_FREE);
	}
	if (hp->bev == NULL) {
		health_done(hp, 0, "out of memory");
		return;
	}
	bufferevent_setcb(hp->bev, health_readcb, NULL, health_eventcb, hp);
	if (evbuffer_add_printf(bufferevent_get_output(hp->bev),
	                        "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n"
	                        "User-Agent: proxyd-health\r\n\r\n",
	                        hc->uri, hp->p->addr.text) == -1) {
		health_done(hp, 0, "out of memory");
		return;
	}
	bufferevent_enable(hp->bev, EV_READ | EV_WRITE);
	event_add(hp->deadline, &tv);
	/* the bufferevent may report a failure through health_eventcb() before returning */
	if (bufferevent_socket_connect(hp->bev, (const struct sockaddr *)&pa->ss, (int)pa->len) ==
	            -1 &&
	    hp->bev != NULL) {
		char why[128];

		snprintf(why, sizeof(why), "connect: %s", strerror(errno));
		health_done(hp, 0, why);
	}
}

struct health *
health_start(struct event_base *base, struct cfg *cfg)
{
	struct health *h;
	size_t n = 0;

	for (size_t i = 0; i < cfg->nupstreams; i++)
		if (cfg->upstreams[i].hc.interval_ms != 0)
			for (size_t j = 0; j < cfg->upstreams[i].npeers; j++)
				if (!(cfg->upstreams[i].peers[j].flags & CFG_PEER_DOWN))
					n++;
	if (n == 0)
		return NULL;
	if ((h = calloc(1, sizeof(*h))) == NULL ||
	    (h->peers = calloc(n, sizeof(*h->peers))) == NULL)
		goto nomem;
	h->base = base;
	cfg_ref(cfg);
	h->cfg = cfg;
	for (size_t i = 0; i < cfg->nupstreams; i++) {
		struct cfg_upstream *u = &cfg->upstreams[i];
		struct timeval tv = {u->hc.interval_ms / 1000, (u->hc.interval_ms % 1000) * 1000};

		if (u->hc.interval_ms == 0)
			continue;
		for (size_t j = 0; j < u->npeers; j++) {
			struct health_peer *hp = &h->peers[h->npeers];

			if (u->peers[j].flags & CFG_PEER_DOWN)
				continue;
			hp->h = h;
			hp->u = u;
			hp->p = &u->peers[j];
			h->npeers++;
			hp->tick = event_new(base, -1, EV_PERSIST, health_tickcb, hp);
			hp->deadline = evtimer_new(base, health_deadlinecb, hp);
			if (hp->tick == NULL || hp->deadline == NULL)
				goto nomem;
			event_add(hp->tick, &tv);
			/* the first check right away */
			event_active(hp->tick, EV_TIMEOUT, 0);
		}
	}
	return h;
nomem:
	log_warnx("health checks: out of memory, not checking");
	health_stop(h);
	return NULL;
}

void
health_stop(struct health *h)
{
	if (h == NULL)
		return;
	for (size_t i = 0; i < h->npeers; i++) {
		struct health_peer *hp = &h->peers[i];

		if (hp->bev != NULL)
			bufferevent_free(hp->bev);
		if (hp->tick != NULL)
			event_free(hp->tick);
		if (hp->deadline != NULL)
			event_free(hp->deadline);
	}
	free(h->peers);
	if (h->cfg != NULL)
		cfg_unref(h->cfg);
	free(h);
}
