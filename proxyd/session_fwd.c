/*
 * session_fwd.c - forward mode and tunnels: resolving a forward request's origin and
 * connecting to its addresses in turn, checking CONNECT and absolute-form requests, and
 * handing both sockets to a tunnel (tunnel.h) for CONNECT and WebSocket upgrades.
 *
 * Separate from session.c because a reverse request never runs it: session.c keeps the
 * per-request path shared by both modes (request pump, response parser, pool) and calls in
 * here where a forward request or an upgrade departs from it. Shares struct session and its
 * helpers through session_int.h.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>

#include "acl.h"
#include "auth.h"
#include "log.h"
#include "metrics.h"
#include "netpolicy.h"
#include "resolve.h"
#include "session.h"
#include "session_int.h"
#include "tunnel.h"

static void
buf_add_header(struct evbuffer *b, const struct http_header *h)
{
	evbuffer_add(b, h->name.p, h->name.len);
	evbuffer_add(b, ": ", 2);
	evbuffer_add(b, h->value.p, h->value.len);
	evbuffer_add(b, "\r\n", 2);
}

/* An error about the origin: its name and port go into Proxy-Status and the log. */
static void
session_fwd_fail(struct session *s, int status, const char *perr, const char *why)
{
	char msg[512];

	s->perr = perr;
	snprintf(s->perr_hop, sizeof(s->perr_hop), "%s", s->fwd->host);
	snprintf(msg, sizeof(msg), "%s (origin %s:%u)", why, s->fwd->host, s->fwd->port);
	session_error(s, status, msg);
}

/* A connect to an origin address failed (err: errno, or 0 for a timeout). */
void
session_fwd_connect_failed(struct session *s, int timeout, int err)
{
	metrics_origin_failed(s->srv, timeout                                     ? MO_TIMEOUT
	                              : err == ECONNREFUSED                       ? MO_REFUSED
	                              : err == ENETUNREACH || err == EHOSTUNREACH ? MO_UNREACHABLE
	                                                                          : MO_OTHER);
}

/* Try the next address of the answer; an error response when none is left. */
void
session_fwd_try(struct session *s)
{
	struct fwd *f = s->fwd;

	while (f->next < f->ans.n) {
		cfg_addr_from_ip(&s->up_addr, &f->ans.addr[f->next++], f->port);
		s->resp_got = 0;
		s->up_start_ms = up_now_ms();
		if (session_connect_addr(s, !f->connect) != -1)
			return;
	}
	if (s->perr == NULL)
		s->perr = "connection_refused";
	snprintf(s->perr_hop, sizeof(s->perr_hop), "%s", f->host);
	session_error(s, s->last_timeout ? 504 : 502, "the origin could not be reached");
}

static void
session_fwd_resolved(enum resolve_status st, const struct resolve_answer *ans, void *arg)
{
	struct session *s = arg;
	struct fwd *f = s->fwd;

	SESSION_CHECK(s);
	f->dns = NULL;
	if (st != RESOLVE_OK)
		metrics_srv_inc(s->srv, MS_RESOLVE_FAILED);
	if (st == RESOLVE_NONAME) {
		session_fwd_fail(s, 502, "dns_error", "host not found");
		return;
	}
	if (st != RESOLVE_OK) {
		session_fwd_fail(s, 502, "dns_timeout", "name resolution failed");
		return;
	}
	f->ans = *ans;
	f->next = 0;
	if (f->acl_head != NULL) {
		const struct cfg_server *srv = s->srv;
		struct http_limits lim = {srv->client_max_header_size, srv->client_max_target,
		                          srv->client_max_headers};
		struct http_msg *msg = &s->env->scratch;

		/* the head parsed once already; the copy parses the same */
		if (http_parse_request(f->acl_head, f->acl_head_len, &lim, msg) > 0) {
			for (size_t i = 0; i < f->ans.n; i++)
				if (session_acl(s, msg, (const struct sockaddr *)&f->ans.addr[i]) !=
				    0)
					return;
		}
		free(f->acl_head);
		f->acl_head = NULL;
	}
	if (s->srv->deny_private_destinations) {
		/* checked on the resolved addresses, so DNS rebinding cannot slip past */
		for (size_t i = 0; i < f->ans.n; i++) {
			const struct sockaddr *sa = (const struct sockaddr *)&f->ans.addr[i];

			if (np_destination_denied(sa)) {
				log_notice("*%" PRIu64
				           " client %s: %s resolves to a %s address: denied",
				           s->id, s->client, f->host,
				           np_class_name(np_classify(sa)));
				session_fwd_fail(s, 403, "destination_ip_prohibited",
				                 "destination address not allowed");
				return;
			}
		}
	}
	session_fwd_try(s);
}

/* Resolve the origin (or reuse the answer of an earlier try), then connect. */
void
session_fwd_connect(struct session *s)
{
	struct fwd *f = s->fwd;
	struct resolve_answer ans;
	enum resolve_status st;

	if (f->ans.n > 0) {
		session_fwd_try(s);
		return;
	}
	memset(&ans, 0, sizeof(ans));
	if (inet_pton(AF_INET, f->host, &((struct sockaddr_in *)(void *)&ans.addr[0])->sin_addr) ==
	    1) {
		ans.addr[0].ss_family = AF_INET;
		ans.n = 1;
	} else if (inet_pton(AF_INET6, f->host,
	                     &((struct sockaddr_in6 *)(void *)&ans.addr[0])->sin6_addr) == 1) {
		ans.addr[0].ss_family = AF_INET6;
		ans.n = 1;
	}
	if (ans.n == 1) {
		session_fwd_resolved(RESOLVE_OK, &ans, s);
		return;
	}
	st = resolve_cached(s->env->resolver, f->host, &ans);
	if (st != RESOLVE_MISS) {
		session_fwd_resolved(st, &ans, s);
		return;
	}
	if ((f->dns = resolve_start(s->env->resolver, f->host, session_fwd_resolved, s)) == NULL) {
		metrics_srv_inc(s->srv, MS_RESOLVE_FAILED);
		session_fwd_fail(s, 502, "dns_error", "name resolution failed");
	}
}

/*
 * A forward server's request: checks that it can be forwarded and notes its origin in
 * s->fwd. Returns 0 to go on (an http:// request), 1 when the request is handled here
 * (a CONNECT, or an error was answered).
 */
int
session_fwd_request(struct session *s, const struct http_msg *msg)
{
	struct fwd *f = s->fwd;
	const char *h = msg->host.p;
	size_t hl = msg->host.len;

	int outsider =
	        s->srv->acl == NULL && !np_client_is_local((const struct sockaddr *)&s->client_ss);

	s->user[0] = '\0';
	if (outsider || (msg->form != HTTP_TARGET_ABSOLUTE && msg->form != HTTP_TARGET_AUTHORITY)) {
		/*
		 * Refused whatever it carries, but counted first (nginx's preaccess phase comes
		 * before access): a flood of them meets 429 like any other. By the client
		 * address in every zone: such a client must not spend a user's or a host's
		 * bucket, and it has no user yet.
		 */
		if (session_limit(s, msg, 1) != 0)
			return 1;
		evbuffer_drain(bufferevent_get_input(s->cbev), msg->head_len);
		if (outsider) {
			/* no ACL: a forward proxy serves its own networks only, never the world */
			s->perr = "http_request_denied";
			session_error(s, 403,
			              "forward proxy: client is outside the private networks");
		} else {
			session_error(s, 400,
			              "a forward proxy needs an absolute URI (http://host/path)");
		}
		return 1;
	}
	if (s->srv->auth_db != NULL) {
		const struct http_header *pa = http_header_find(msg, "proxy-authorization");
		enum auth_result ar = AUTH_MALFORMED;
		char ch[512];

		if (pa != NULL)
			ar = auth_check(s->srv->auth_db, pa->value.p, pa->value.len, s->user,
			                sizeof(s->user), s->srv->auth_cache);
		if (ar != AUTH_OK)
			s->user[0] = '\0';
		/* limits count failed attempts too, by the client address in every zone */
		if (session_limit(s, msg, ar != AUTH_OK) != 0)
			return 1;
		if (ar != AUTH_OK) {
			if (pa != NULL)
				log_notice("*%" PRIu64 " client %s: proxy authentication %s", s->id,
				           s->client, ar == AUTH_DENIED ? "failed" : "malformed");
			s->user[0] = '\0';
			evbuffer_drain(bufferevent_get_input(s->cbev), msg->head_len);
			free(s->challenge);
			s->challenge = NULL;
			if (auth_challenge(s->srv->auth_realm, ch, sizeof(ch)) > 0)
				s->challenge = strdup(ch);
			s->perr = "http_request_denied";
			metrics_srv_inc(s->srv, MS_AUTH_FAILED);
			session_error(s, 407, "proxy authentication required");
			return 1;
		}
	}
	if (session_limit(s, msg, 0) != 0 || session_acl(s, msg, NULL) != 0)
		return 1;
	if (msg->form == HTTP_TARGET_ABSOLUTE && !http_slice_eq(msg->scheme, "http")) {
		evbuffer_drain(bufferevent_get_input(s->cbev), msg->head_len);
		session_error(s, 400,
		              "only http:// URIs are forwarded; https goes through CONNECT");
		return 1;
	}
	if (f == NULL && (f = s->fwd = calloc(1, sizeof(*f))) == NULL) {
		session_close(s, "out of memory");
		return 1;
	}
	if (hl >= 2 && h[0] == '[') {
		h++;
		hl -= 2;
	}
	if (hl == 0 || hl >= sizeof(f->host)) {
		evbuffer_drain(bufferevent_get_input(s->cbev), msg->head_len);
		session_error(s, 400, "bad origin host");
		return 1;
	}
	memcpy(f->host, h, hl);
	f->host[hl] = '\0';
	f->port = msg->port != 0 ? msg->port : 80;
	f->connect = msg->method == HTTP_M_CONNECT;
	f->ans.n = 0;
	f->next = 0;
	free(f->acl_head);
	f->acl_head = NULL;
	if (s->srv->acl != NULL && acl_uses_dst(s->srv->acl)) {
		/*
		 * dst ADDR/CIDR rules see resolved addresses too: keep the head to decide again
		 * then. Without such a rule the decision above stands (no copy, no second walk).
		 */
		const char *raw = (const char *)evbuffer_pullup(bufferevent_get_input(s->cbev),
		                                                (ev_ssize_t)msg->head_len);
		if (raw == NULL || (f->acl_head = malloc(msg->head_len)) == NULL) {
			session_close(s, "out of memory");
			return 1;
		}
		memcpy(f->acl_head, raw, msg->head_len);
		f->acl_head_len = msg->head_len;
	}
	if (!f->connect)
		return 0;

	evbuffer_drain(bufferevent_get_input(s->cbev), msg->head_len);
	if (!np_ports_allows(s->srv->connect_ports, f->port)) {
		log_notice("*%" PRIu64 " client %s: CONNECT to port %u is not allowed", s->id,
		           s->client, f->port);
		s->perr = "http_request_denied";
		session_error(s, 403, "CONNECT to this port is not allowed (connect_ports)");
		return 1;
	}
	s->keepalive = 0;
	evtimer_del(s->timer);
	s->state = S_UPSTREAM;
	s->req_start_ms = up_now_ms();
	s->req.done = 1; /* nothing to relay before the tunnel */
	session_fwd_connect(s);
	return 1;
}

uint64_t
session_tunnel_down(const struct session *s)
{
	uint64_t n = tunnel_bytes(s->tunnel, TUNNEL_DOWN);

	return n > s->tunnel_pre_down ? n - s->tunnel_pre_down : 0;
}

static void
session_tunnel_done(void *arg, const char *why)
{
	struct session *s = arg;

	SESSION_CHECK(s);
	s->resp.moved = session_tunnel_down(s);
	session_log_access(s);
	session_close(s, why);
}

/*
 * Both sockets become a tunnel (tunnel.h): the client first gets what it is still owed,
 * then head (200 for CONNECT, the 101 of an upgrade), then what the upstream already sent;
 * the upstream first gets what the client sent after its request head.
 */
static void
session_tunnel_begin(struct session *s, const char *head, size_t headlen, int status)
{
	struct evbuffer *down, *up = bufferevent_get_input(s->cbev);
	struct tunnel *t;
	int fds[2];

	if (bufferevent_openssl_get_ssl(s->cbev) != NULL ||
	    bufferevent_openssl_get_ssl(s->ubev) != NULL) {
		/* TLS on a side: a bufferevent tunnel; what is already queued simply stays */
		struct bufferevent *bevs[2] = {s->cbev, s->ubev};
		struct evbuffer *none[2] = {NULL, NULL};

		evbuffer_add(bufferevent_get_output(s->cbev), head, headlen);
		if ((t = tunnel_new_bev(s->env->base, bevs, none, s->srv->tunnel_idle_timeout_ms,
		                        session_tunnel_done, s)) == NULL) {
			session_error(s, 500, "out of memory");
			return;
		}
		s->cbev = NULL;
		s->ubev = NULL;
		goto started;
	}
	if ((down = evbuffer_new()) == NULL) {
		session_error(s, 500, "out of memory");
		return;
	}
	evbuffer_add_buffer(down, bufferevent_get_output(s->cbev));
	evbuffer_add(down, head, headlen);
	s->tunnel_pre_down = evbuffer_get_length(down); /* the tunnel counts these too */
	evbuffer_add_buffer(down, bufferevent_get_input(s->ubev));
	fds[TUNNEL_UP] = bufferevent_getfd(s->cbev);
	fds[TUNNEL_DOWN] = bufferevent_getfd(s->ubev);
	struct evbuffer *pre[2] = {up, down};
	t = tunnel_new(s->env->base, fds, pre, s->srv->tunnel_idle_timeout_ms, session_tunnel_done,
	               s);
	evbuffer_free(down);
	if (t == NULL) {
		session_error(s, 500, "out of memory");
		return;
	}
	/* the tunnel owns the sockets now: detach them from their bufferevents */
	bufferevent_setfd(s->cbev, -1);
	bufferevent_free(s->cbev);
	s->cbev = NULL;
	bufferevent_setfd(s->ubev, -1);
	bufferevent_free(s->ubev);
	s->ubev = NULL;
started:
	metrics_srv_inc(s->srv, MS_TUNNELS_OPENED);
	s->resp_head_len += headlen;
	s->up_connecting = 0;
	evtimer_del(s->timer);
	s->state = S_TUNNEL;
	s->status = status;
	s->tunnel = t;
	s->tunnel_start_ms = up_now_ms();
}

/* CONNECT reached the origin: answer 200 and tunnel. */
void
session_tunnel_start(struct session *s)
{
	static const char ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";

	session_tunnel_begin(s, ok, sizeof(ok) - 1, 200);
	if (s->state == S_TUNNEL)
		log_info("*%" PRIu64 " client %s: tunnel to %s:%u (%s)", s->id, s->client,
		         s->fwd->host, s->fwd->port, s->up_addr.text);
}

/*
 * The upstream switched to WebSocket (101): relay its head, minus what belongs to this
 * hop, then tunnel. The peer stays counted as busy (least_conn) until the tunnel ends.
 */
void
session_upgrade_start(struct session *s, const struct http_msg *msg, size_t headlen)
{
	struct evbuffer *h = evbuffer_new();

	if (h == NULL) {
		session_error(s, 500, "out of memory");
		return;
	}
	up_peer_ok(s->peer);
	evbuffer_add(h, "HTTP/1.1 101 ", 13);
	evbuffer_add(h, msg->reason.p, msg->reason.len);
	evbuffer_add(h, "\r\n", 2);
	for (size_t i = 0; i < msg->nheaders; i++) {
		const struct http_header *hd = &msg->headers[i];

		if (HDR_IS(hd, "upgrade")) {
			buf_add_header(h, hd);
			continue;
		}
		if (hdr_hop(hd) || http_connection_lists(msg, hd->name.p, hd->name.len))
			continue;
		buf_add_header(h, hd);
	}
	evbuffer_add(h, "Connection: upgrade\r\n\r\n", 23);
	evbuffer_drain(bufferevent_get_input(s->ubev), headlen);
	s->resp_started = 1;
	size_t n = evbuffer_get_length(h);
	session_tunnel_begin(s, (const char *)evbuffer_pullup(h, -1), n, 101);
	evbuffer_free(h);
	if (s->state == S_TUNNEL)
		log_info("*%" PRIu64 " client %s: upgraded to websocket via %s", s->id, s->client,
		         s->up_addr.text);
}
