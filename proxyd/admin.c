#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "acl.h"
#include "admin.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "store.h"
#include "upstream.h"

/* After an accept error such as EMFILE, the listener rests this long instead of spinning. */
#define ADMIN_ACCEPT_PAUSE_MS 200

struct admin_conn {
	LIST_ENTRY(admin_conn) link;
	struct admin *a;
	struct bufferevent *bev;
	int answered;
};

struct admin {
	struct event_base *base;
	struct evconnlistener *lev;
	struct event *resume;
	char key[64];
	struct cfg *cfg;
	LIST_HEAD(, admin_conn) conns;
	unsigned nconns;
};

static void
admin_conn_free(struct admin_conn *c)
{
	LIST_REMOVE(c, link);
	c->a->nconns--;
	bufferevent_free(c->bev);
	free(c);
}

/* A JSON string: quotes, backslashes and control bytes escaped. */
static int
json_str(struct evbuffer *b, const char *s)
{
	int rc = evbuffer_add(b, "\"", 1);

	for (; rc == 0 && *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			rc = evbuffer_add_printf(b, "\\%c", ch) < 0 ? -1 : 0;
		else if (ch < 0x20 || ch == 0x7f)
			rc = evbuffer_add_printf(b, "\\u%04x", ch) < 0 ? -1 : 0;
		else
			rc = evbuffer_add(b, s, 1);
	}
	if (rc == 0)
		rc = evbuffer_add(b, "\"", 1);
	return rc;
}

static const char *
balance_name(enum cfg_balance b)
{
	switch (b) {
	case CFG_BALANCE_LEAST_CONN:
		return "least_conn";
	case CFG_BALANCE_IP_HASH:
		return "ip_hash";
	case CFG_BALANCE_RANDOM:
		return "random";
	case CFG_BALANCE_RANDOM_TWO:
		return "random_two";
	case CFG_BALANCE_HASH:
		return "hash";
	case CFG_BALANCE_HASH_CONSISTENT:
		return "hash_consistent";
	case CFG_BALANCE_LEAST_TIME:
		return "least_time";
	case CFG_BALANCE_LEAST_TIME_LAST_BYTE:
		return "least_time_last_byte";
	case CFG_BALANCE_UNSET:
	case CFG_BALANCE_ROUND_ROBIN:
		break;
	}
	return "round_robin";
}

/* The state word of GET /upstreams. */
static const char *
peer_state(const struct cfg_peer *p, int64_t now_ms)
{
	int64_t down_until = atomic_load_explicit(&p->down_until_ms, memory_order_relaxed);
	int64_t rec = atomic_load_explicit(&p->recovered_ms, memory_order_relaxed);
	int health_down = atomic_load_explicit(&p->health_down, memory_order_relaxed);
	int64_t down_for = down_until > now_ms ? down_until - now_ms : 0;
	const char *state;

	if (p->flags & CFG_PEER_DOWN)
		state = "down";
	else if (health_down)
		state = "unhealthy";
	else if (down_for > 0)
		state = "failed";
	else if (p->slow_start_ms > 0 && rec != 0 && now_ms >= rec &&
	         now_ms - rec < (int64_t)p->slow_start_ms)
		state = "slow_start";
	else
		state = "up";
	if (cfg_peer_addr(p) == NULL)
		state = "unresolved";
	return state;
}

/* proxyd_upstream_peer_up: up or ramping up after a recovery. */
static int
peer_up(const struct cfg_peer *p, int64_t now_ms)
{
	const char *state = peer_state(p, now_ms);

	return strcmp(state, "up") == 0 || strcmp(state, "slow_start") == 0;
}

/* proxyd_cache_up: open, and no fault on its file since (store.h). */
static int
cache_up(const struct cfg_cache *c)
{
	return c->store != NULL && !cache_store_broken(c->store);
}

static int
peer_json(struct evbuffer *b, const struct cfg_peer *p, int64_t now_ms)
{
	int64_t down_until = atomic_load_explicit(&p->down_until_ms, memory_order_relaxed);
	int64_t ewma = atomic_load_explicit(&p->ewma_us, memory_order_relaxed);
	int64_t down_for = down_until > now_ms ? down_until - now_ms : 0;
	const char *state = peer_state(p, now_ms);
	const struct cfg_addr *pa = cfg_peer_addr(p);

	if (evbuffer_add_printf(b, "{\"server\":") < 0 ||
	    json_str(b, pa != NULL ? pa->text : p->addr.text) == -1 ||
	    evbuffer_add_printf(b, ",\"name\":") < 0 || json_str(b, p->name) == -1)
		return -1;
	if (evbuffer_add_printf(
	            b,
	            ",\"weight\":%d,\"state\":\"%s\",\"backup\":%s,\"down\":%s,\"active\":%d,"
	            "\"fails\":%d,\"down_for_ms\":%" PRId64 ",\"avg_response_ms\":%.3f,"
	            "\"requests\":%" PRIu64 ",\"failures\":%" PRIu64 "}",
	            p->weight, state, (p->flags & CFG_PEER_BACKUP) ? "true" : "false",
	            (p->flags & CFG_PEER_DOWN) ? "true" : "false",
	            atomic_load_explicit(&p->active, memory_order_relaxed),
	            atomic_load_explicit(&p->fails, memory_order_relaxed), down_for,
	            (double)ewma / 1000.0, atomic_load_explicit(&p->requests, memory_order_relaxed),
	            atomic_load_explicit(&p->failures, memory_order_relaxed)) < 0)
		return -1;
	return 0;
}

int
admin_acl_json(struct evbuffer *b, const struct cfg *cfg)
{
	if (evbuffer_add_printf(b, "{\"generation\":%" PRIu64 ",\"servers\":[", cfg->generation) <
	    0)
		return -1;
	for (size_t i = 0; i < cfg->nservers; i++) {
		const struct cfg_server *srv = &cfg->servers[i];
		const struct acl *acl = srv->acl;

		if (evbuffer_add_printf(b, "%s{\"listen\":", i > 0 ? "," : "") < 0 ||
		    json_str(b, srv->nlistens > 0 ? srv->listens[0].addr.text : "") == -1 ||
		    evbuffer_add_printf(b, ",\"mode\":\"%s\",\"rules\":[",
		                        srv->mode == CFG_MODE_FORWARD ? "forward" : "reverse") < 0)
			return -1;
		for (size_t j = 0; acl != NULL && j < acl->n; j++) {
			const struct acl_line *l = &acl->lines[j];

			if (evbuffer_add_printf(b, "%s{\"id\":", j > 0 ? "," : "") < 0 ||
			    json_str(b, l->id) == -1 || evbuffer_add_printf(b, ",\"file\":") < 0 ||
			    json_str(b, l->file) == -1 ||
			    evbuffer_add_printf(
			            b,
			            ",\"line\":%d,\"action\":\"%s\",\"status\":%d,\"hits\":%" PRIu64
			            "}",
			            l->line, l->allow ? "allow" : "deny", l->allow ? 0 : l->status,
			            atomic_load_explicit(&((struct acl_line *)(uintptr_t)l)->hits,
			                                 memory_order_relaxed)) < 0)
				return -1;
		}
		if (evbuffer_add_printf(b, "]") < 0)
			return -1;
		if (acl != NULL &&
		    evbuffer_add_printf(
		            b, ",\"default\":{\"action\":\"%s\",\"hits\":%" PRIu64 "}",
		            acl->default_allow ? "allow" : "deny",
		            atomic_load_explicit(&((struct acl *)(uintptr_t)acl)->default_hits,
		                                 memory_order_relaxed)) < 0)
			return -1;
		if (evbuffer_add_printf(b, "}") < 0)
			return -1;
	}
	return evbuffer_add(b, "]}\n", 3);
}

int
admin_upstreams_json(struct evbuffer *b, const struct cfg *cfg, int64_t now_ms)
{
	if (evbuffer_add_printf(b, "{\"generation\":%" PRIu64 ",\"upstreams\":[", cfg->generation) <
	    0)
		return -1;
	for (size_t i = 0; i < cfg->nupstreams; i++) {
		const struct cfg_upstream *u = &cfg->upstreams[i];

		if (evbuffer_add_printf(b, "%s{\"name\":", i > 0 ? "," : "") < 0 ||
		    json_str(b, u->name) == -1 ||
		    evbuffer_add_printf(b, ",\"balance\":\"%s\",\"peers\":[",
		                        balance_name(u->balance)) < 0)
			return -1;
		for (size_t j = 0, n = 0; j < u->npeers; j++) {
			const struct cfg_peer *p = &u->peers[j];

			/* empty resolve slots are noise; the first stands for its name */
			if ((p->flags & CFG_PEER_RESOLVE) && p->slot > 0 &&
			    cfg_peer_addr(p) == NULL)
				continue;
			if ((n++ > 0 && evbuffer_add(b, ",", 1) == -1) ||
			    peer_json(b, p, now_ms) == -1)
				return -1;
		}
		if (evbuffer_add(b, "]}", 2) == -1)
			return -1;
	}
	return evbuffer_add(b, "]}\n", 3);
}

static void
admin_writecb(struct bufferevent *bev, void *arg)
{
	struct admin_conn *c = arg;

	(void)bev;
	if (c->answered)
		admin_conn_free(c);
}

static void
admin_eventcb(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	(void)what;
	admin_conn_free(arg); /* EOF, error or timeout: nothing more to say */
}

/* Queue the answer and close once it is written. */
static void
admin_answer(struct admin_conn *c, int status, const char *type, struct evbuffer *body,
             const char *extra)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	size_t len = body != NULL ? evbuffer_get_length(body) : 0;

	c->answered = 1;
	bufferevent_disable(c->bev, EV_READ);
	if (evbuffer_add_printf(out,
	                        "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
	                        "%sCache-Control: no-store\r\nConnection: close\r\n\r\n",
	                        status, http_reason(status), type, len,
	                        extra != NULL ? extra : "") < 0 ||
	    (body != NULL && evbuffer_add_buffer(out, body) == -1)) {
		admin_conn_free(c);
		return;
	}
	bufferevent_enable(c->bev, EV_WRITE);
}

static void
admin_error(struct admin_conn *c, int status, const char *extra)
{
	struct evbuffer *body = evbuffer_new();

	if (body != NULL)
		evbuffer_add_printf(body, "%d %s\n", status, http_reason(status));
	admin_answer(c, status, "text/plain", body, extra);
	if (body != NULL)
		evbuffer_free(body);
}

static void
admin_readcb(struct bufferevent *bev, void *arg)
{
	struct admin_conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct http_limits lim = {ADMIN_MAX_HEAD, ADMIN_MAX_HEAD, HTTP_MAX_HEADERS};
	struct http_msg *msg;
	size_t len = evbuffer_get_length(in), plen;
	const char *buf;
	int r;

	if (c->answered)
		return;
	if (len > ADMIN_MAX_HEAD)
		len = ADMIN_MAX_HEAD;
	if ((buf = (const char *)evbuffer_pullup(in, (ev_ssize_t)len)) == NULL ||
	    (msg = calloc(1, sizeof(*msg))) == NULL) {
		admin_conn_free(c);
		return;
	}
	r = http_parse_request(buf, len, &lim, msg);
	if (r == HTTP_AGAIN && len >= ADMIN_MAX_HEAD) {
		r = HTTP_ERROR;
		msg->status = 431;
	}
	if (r == HTTP_AGAIN) {
		free(msg);
		return;
	}
	if (r == HTTP_ERROR) {
		admin_error(c, msg->status != 0 ? msg->status : 400, NULL);
		free(msg);
		return;
	}
	plen = msg->path.len;
	for (size_t i = 0; i < msg->path.len; i++) {
		if (msg->path.p[i] == '?') {
			plen = i;
			break;
		}
	}
	int acl = plen == 4 && memcmp(msg->path.p, "/acl", 4) == 0;
	int metrics = plen == 8 && memcmp(msg->path.p, "/metrics", 8) == 0;

	if (!acl && !metrics &&
	    (plen != strlen("/upstreams") || memcmp(msg->path.p, "/upstreams", plen) != 0)) {
		admin_error(c, 404, NULL);
	} else if (msg->method != HTTP_M_GET) {
		admin_error(c, 405, "Allow: GET\r\n");
	} else if (c->a->cfg == NULL) {
		admin_error(c, 503, NULL);
	} else {
		struct evbuffer *body = evbuffer_new();

		if (body == NULL ||
		    (metrics ? metrics_render(body, c->a->cfg, up_now_ms(), peer_up, cache_up)
		     : acl   ? admin_acl_json(body, c->a->cfg)
		             : admin_upstreams_json(body, c->a->cfg, up_now_ms())) == -1)
			admin_error(c, 500, NULL);
		else
			admin_answer(c, 200,
			             metrics ? "text/plain; version=0.0.4; charset=utf-8"
			                     : "application/json",
			             body, NULL);
		if (body != NULL)
			evbuffer_free(body);
	}
	free(msg);
}

static void
admin_acceptcb(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa, int salen,
               void *arg)
{
	struct admin *a = arg;
	struct admin_conn *c;
	struct timeval tv = {ADMIN_TIMEOUT_MS / 1000, (ADMIN_TIMEOUT_MS % 1000) * 1000};

	(void)lev, (void)sa, (void)salen;
	if (a->nconns >= ADMIN_MAX_CONNS || (c = calloc(1, sizeof(*c))) == NULL) {
		close(fd);
		return;
	}
	c->a = a;
	c->bev = bufferevent_socket_new(a->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL) {
		close(fd);
		free(c);
		return;
	}
	LIST_INSERT_HEAD(&a->conns, c, link);
	a->nconns++;
	bufferevent_setcb(c->bev, admin_readcb, admin_writecb, admin_eventcb, c);
	bufferevent_setwatermark(c->bev, EV_READ, 0, ADMIN_MAX_HEAD);
	bufferevent_set_timeouts(c->bev, &tv, &tv);
	bufferevent_enable(c->bev, EV_READ);
}

static void
admin_resumecb(evutil_socket_t fd, short what, void *arg)
{
	struct admin *a = arg;

	(void)fd, (void)what;
	evconnlistener_enable(a->lev);
}

static void
admin_accept_errorcb(struct evconnlistener *lev, void *arg)
{
	struct admin *a = arg;
	struct timeval tv = {0, ADMIN_ACCEPT_PAUSE_MS * 1000};

	errno = EVUTIL_SOCKET_ERROR();
	log_warn("admin: accept() failed");
	evconnlistener_disable(lev);
	event_add(a->resume, &tv);
}

struct admin *
admin_start(struct event_base *base, int fd, const char *key)
{
	struct admin *a = calloc(1, sizeof(*a));

	if (a == NULL) {
		close(fd);
		log_warnx("admin: out of memory");
		return NULL;
	}
	a->base = base;
	LIST_INIT(&a->conns);
	snprintf(a->key, sizeof(a->key), "%s", key);
	if ((a->resume = evtimer_new(base, admin_resumecb, a)) == NULL ||
	    (a->lev = evconnlistener_new(base, admin_acceptcb, a, LEV_OPT_CLOSE_ON_FREE, -1, fd)) ==
	            NULL) {
		log_warnx("admin: cannot listen on %s", key);
		close(fd);
		if (a->resume != NULL)
			event_free(a->resume);
		free(a);
		return NULL;
	}
	evconnlistener_set_error_cb(a->lev, admin_accept_errorcb);
	return a;
}

const char *
admin_key(const struct admin *a)
{
	return a->key;
}

void
admin_set_cfg(struct admin *a, struct cfg *cfg)
{
	if (cfg != NULL)
		cfg_ref(cfg);
	if (a->cfg != NULL)
		cfg_unref(a->cfg);
	a->cfg = cfg;
}

void
admin_stop(struct admin *a)
{
	if (a == NULL)
		return;
	while (!LIST_EMPTY(&a->conns))
		admin_conn_free(LIST_FIRST(&a->conns));
	evconnlistener_free(a->lev);
	event_free(a->resume);
	if (a->cfg != NULL)
		cfg_unref(a->cfg);
	free(a);
}
