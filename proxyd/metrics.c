#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "limit.h"
#include "metrics.h"

/* Threads without a block of their own (main thread, tests) share this one. */
static struct metrics_block metrics_fallback;
_Thread_local struct metrics_block *metrics_self = &metrics_fallback;

/* Every block there is; [METRICS_MAX_BLOCKS - 1] is the fallback. Never freed. */
static _Atomic(struct metrics_block *) metrics_blocks[METRICS_MAX_BLOCKS];

/* The registry of label keys (main thread only); slot 0 is the overflow, never shown. */
static char *srv_keys[METRICS_MAX_SERVERS];
static unsigned nsrv_keys = 1;
static char *peer_keys[METRICS_MAX_PEERS];
static unsigned npeer_keys = 1;
static char *zone_keys[METRICS_MAX_ZONES];
static unsigned nzone_keys = 1;

int
metrics_attach(int id)
{
	struct metrics_block *b;

	if (id < 0 || id >= METRICS_MAX_BLOCKS - 1)
		return -1;
	b = atomic_load_explicit(&metrics_blocks[id], memory_order_acquire);
	if (b == NULL) {
		if ((b = aligned_alloc(64, sizeof(*b))) == NULL)
			return -1;
		memset(b, 0, sizeof(*b));
		atomic_store_explicit(&metrics_blocks[id], b, memory_order_release);
	}
	metrics_self = b;
	return 0;
}

/* Find or add key in keys[1 .. *n); 0 when the table is full or out of memory. */
static unsigned
metrics_slot(char **keys, unsigned *n, unsigned max, const char *key)
{
	for (unsigned i = 1; i < *n; i++)
		if (strcmp(keys[i], key) == 0)
			return i;
	if (*n >= max || (keys[*n] = strdup(key)) == NULL)
		return 0;
	return (*n)++;
}

int
metrics_bind(struct cfg *cfg)
{
	char key[1024];
	int rc = 0;

	for (size_t i = 0; i < cfg->nservers; i++) {
		struct cfg_server *srv = &cfg->servers[i];

		srv->metrics_slot =
		        metrics_slot(srv_keys, &nsrv_keys, METRICS_MAX_SERVERS,
		                     srv->nlistens > 0 ? srv->listens[0].addr.text : "");
		if (srv->metrics_slot == 0 && nsrv_keys < METRICS_MAX_SERVERS)
			rc = -1;
	}
	for (size_t i = 0; i < cfg->nupstreams; i++) {
		struct cfg_upstream *u = &cfg->upstreams[i];

		for (size_t j = 0; j < u->npeers; j++) {
			struct cfg_peer *p = &u->peers[j];

			snprintf(key, sizeof(key), "%s\n%s", u->name, p->name);
			p->metrics_slot =
			        metrics_slot(peer_keys, &npeer_keys, METRICS_MAX_PEERS, key);
			if (p->metrics_slot == 0 && npeer_keys < METRICS_MAX_PEERS)
				rc = -1;
		}
	}
	for (size_t i = 0; i < cfg->nlimit_zones; i++) {
		struct cfg_limit_zone *z = &cfg->limit_zones[i];

		snprintf(key, sizeof(key), "%s\n%s", z->def.kind == LIMIT_REQ ? "req" : "conn",
		         z->name);
		z->metrics_slot = metrics_slot(zone_keys, &nzone_keys, METRICS_MAX_ZONES, key);
		if (z->metrics_slot == 0 && nzone_keys < METRICS_MAX_ZONES)
			rc = -1;
	}
	for (size_t i = 0; i < cfg->nservers; i++) {
		struct cfg_server *srv = &cfg->servers[i];

		for (size_t k = 0; k < srv->nlimits; k++) {
			struct cfg_limit *l = &srv->limits[k];

			l->metrics_slot = 0;
			for (size_t j = 0; j < cfg->nlimit_zones; j++)
				if (cfg->limit_zones[j].zone == l->zone)
					l->metrics_slot = cfg->limit_zones[j].metrics_slot;
		}
	}
	return rc;
}

static struct metrics_block *
metrics_block(size_t i)
{
	if (i == METRICS_MAX_BLOCKS - 1)
		return &metrics_fallback;
	return atomic_load_explicit(&metrics_blocks[i], memory_order_acquire);
}

void
metrics_sum_srv(unsigned slot, uint64_t *out)
{
	memset(out, 0, MS_COUNT * sizeof(*out));
	for (size_t i = 0; i < METRICS_MAX_BLOCKS; i++) {
		struct metrics_block *b = metrics_block(i);

		for (size_t k = 0; b != NULL && k < MS_COUNT; k++)
			out[k] += atomic_load_explicit(&b->srv[slot][k], memory_order_relaxed);
	}
}

void
metrics_sum_peer(unsigned slot, uint64_t *out)
{
	memset(out, 0, MP_COUNT * sizeof(*out));
	for (size_t i = 0; i < METRICS_MAX_BLOCKS; i++) {
		struct metrics_block *b = metrics_block(i);

		for (size_t k = 0; b != NULL && k < MP_COUNT; k++)
			out[k] += atomic_load_explicit(&b->peer[slot][k], memory_order_relaxed);
	}
}

void
metrics_sum_zone(unsigned slot, uint64_t *out)
{
	memset(out, 0, MZ_COUNT * sizeof(*out));
	for (size_t i = 0; i < METRICS_MAX_BLOCKS; i++) {
		struct metrics_block *b = metrics_block(i);

		for (size_t k = 0; b != NULL && k < MZ_COUNT; k++)
			out[k] += atomic_load_explicit(&b->zone[slot][k], memory_order_relaxed);
	}
}

/* s with backslash and line feed escaped, and double quote too when quote is set. */
static int
metrics_escape(struct evbuffer *b, const char *s, int quote)
{
	const char *run = s;

	for (; *s != '\0'; s++) {
		const char *esc = *s == '\\'           ? "\\\\"
		                  : *s == '\n'         ? "\\n"
		                  : *s == '"' && quote ? "\\\""
		                                       : NULL;
		if (esc == NULL)
			continue;
		if (evbuffer_add(b, run, (size_t)(s - run)) == -1 || evbuffer_add(b, esc, 2) == -1)
			return -1;
		run = s + 1;
	}
	return evbuffer_add(b, run, (size_t)(s - run));
}

int
metrics_sample(struct evbuffer *b, const char *name, const char *const *labels, size_t nlabels,
               uint64_t value)
{
	if (evbuffer_add(b, name, strlen(name)) == -1)
		return -1;
	for (size_t i = 0; i < nlabels; i++) {
		if (evbuffer_add_printf(b, "%s%s=\"", i == 0 ? "{" : ",", labels[2 * i]) < 0 ||
		    metrics_escape(b, labels[2 * i + 1], 1) == -1 || evbuffer_add(b, "\"", 1) == -1)
			return -1;
	}
	return evbuffer_add_printf(b, "%s %" PRIu64 "\n", nlabels > 0 ? "}" : "", value) < 0 ? -1
	                                                                                     : 0;
}

int
metrics_family(struct evbuffer *b, const char *name, const char *type, const char *help)
{
	if (evbuffer_add_printf(b, "# HELP %s ", name) < 0 || metrics_escape(b, help, 0) == -1 ||
	    evbuffer_add_printf(b, "\n# TYPE %s %s\n", name, type) < 0)
		return -1;
	return 0;
}

/* The server families, in output order. */
enum which { W_ALL, W_CACHE, W_FORWARD };
static const struct srv_family {
	const char *name, *type, *help;
	int k;     /* MS_*; -1: requests by class, -2: active connections, -3: active tunnels,
	              -4: cache results, -5: tunnel bytes, -6: origin connect failures */
	int which; /* servers it applies to */
} srv_families[] = {
        {"proxyd_connections_accepted_total", "counter", "Client connections accepted.",
         MS_CONN_ACCEPTED, W_ALL},
        {"proxyd_connections_active", "gauge", "Client connections open now.", -2, W_ALL},
        {"proxyd_tls_handshakes_total", "counter", "Client TLS handshakes completed.",
         MS_TLS_HANDSHAKES, W_ALL},
        {"proxyd_tls_handshake_failures_total", "counter", "Client TLS handshakes that failed.",
         MS_TLS_FAILURES, W_ALL},
        {"proxyd_requests_total", "counter",
         "Requests answered, by status class (as in the access log).", -1, W_ALL},
        {"proxyd_requests_rejected_total", "counter",
         "Request heads refused by the parser (a 4xx from parsing).", MS_REJECTED, W_ALL},
        {"proxyd_received_bytes_total", "counter",
         "Bytes of request heads and bodies received from clients.", MS_RX_BYTES, W_ALL},
        {"proxyd_sent_body_bytes_total", "counter",
         "Bytes of response bodies sent to clients (the access log's bytes).", MS_TX_BYTES, W_ALL},
        {"proxyd_sent_head_bytes_total", "counter",
         "Bytes of response heads sent to clients (status lines and header fields).",
         MS_TX_HEAD_BYTES, W_ALL},
        {"proxyd_acl_denied_total", "counter", "Requests denied by the access list.", MS_ACL_DENIED,
         W_ALL},
        {"proxyd_tunnels_opened_total", "counter", "CONNECT and WebSocket tunnels opened.",
         MS_TUNNELS_OPENED, W_ALL},
        {"proxyd_tunnels_active", "gauge", "Tunnels open now.", -3, W_ALL},
        {"proxyd_tunnel_bytes_total", "counter",
         "Bytes relayed by closed tunnels, by direction (up: client to origin).", -5, W_ALL},
        {"proxyd_cache_requests_total", "counter", "Requests by what the cache did (X-Cache).", -4,
         W_CACHE},
        {"proxyd_cache_stores_total", "counter", "Responses stored in the cache.", MS_CACHE_STORES,
         W_CACHE},
        {"proxyd_cache_store_failures_total", "counter",
         "Complete responses the cache dropped instead of storing.", MS_CACHE_STORE_FAILURES,
         W_CACHE},
        {"proxyd_auth_failures_total", "counter",
         "Forward requests answered 407 (no or wrong Proxy-Authorization).", MS_AUTH_FAILED,
         W_FORWARD},
        {"proxyd_resolve_failures_total", "counter",
         "Forward requests whose origin name did not resolve.", MS_RESOLVE_FAILED, W_FORWARD},
        {"proxyd_origin_connect_failures_total", "counter",
         "Connections to origin addresses (CONNECT targets included) that failed, by reason.", -6,
         W_FORWARD},
};
static const char *const origin_reasons[4] = {"refused", "unreachable", "timeout", "other"};

static const char *const cache_results[METRICS_CACHE_RESULTS] = {
        "miss", "expired", "bypass", "hit", "revalidated", "stale", "swr", "updating",
};
static const char *const req_classes[6] = {"other", "1xx", "2xx", "3xx", "4xx", "5xx"};

static const struct peer_family {
	const char *name, *type, *help;
	int k; /* MP_*; -1: up, -2: active */
} peer_families[] = {
        {"proxyd_upstream_requests_total", "counter",
         "Tries sent to the peer (new or reused connections).", MP_REQUESTS},
        {"proxyd_upstream_connect_failures_total", "counter",
         "Connections to the peer that failed (TCP or TLS).", MP_CONNECT_FAILURES},
        {"proxyd_upstream_timeouts_total", "counter",
         "Connect, send or response-head timeouts of the peer.", MP_TIMEOUTS},
        {"proxyd_upstream_retries_total", "counter",
         "Tries of the peer that were a request's second or later.", MP_RETRIES},
        {"proxyd_upstream_peer_up", "gauge",
         "1 when the peer may be picked, 0 when down, failed, unhealthy or unresolved.", -1},
        {"proxyd_upstream_peer_active", "gauge", "Requests in flight on the peer.", -2},
};

static uint64_t
gauge(uint64_t opened, uint64_t closed)
{
	return opened > closed ? opened - closed : 0;
}

/* Whether srv is the first of cfg's servers with its slot (two may share a key). */
static int
srv_first(const struct cfg *cfg, size_t i)
{
	for (size_t j = 0; j < i; j++)
		if (cfg->servers[j].metrics_slot == cfg->servers[i].metrics_slot)
			return 0;
	return cfg->servers[i].metrics_slot != 0;
}

static int
render_servers(struct evbuffer *b, const struct cfg *cfg, uint64_t (*sums)[MS_COUNT])
{
	for (size_t f = 0; f < sizeof(srv_families) / sizeof(srv_families[0]); f++) {
		const struct srv_family *fa = &srv_families[f];
		int head = 0;

		for (size_t i = 0; i < cfg->nservers; i++) {
			const struct cfg_server *srv = &cfg->servers[i];
			const uint64_t *c = sums[i];
			const char *l[6] = {
			        "server", srv->nlistens > 0 ? srv->listens[0].addr.text : "",
			        "mode",   srv->mode == CFG_MODE_FORWARD ? "forward" : "reverse",
			        NULL,     NULL};
			int rc = 0;

			if (!srv_first(cfg, i) || (fa->which == W_CACHE && srv->cache == NULL) ||
			    (fa->which == W_FORWARD && srv->mode != CFG_MODE_FORWARD))
				continue;
			if (!head && metrics_family(b, fa->name, fa->type, fa->help) == -1)
				return -1;
			head = 1;
			switch (fa->k) {
			case -1:
				l[4] = "code";
				for (int k = 1; rc == 0 && k <= 6; k++) {
					l[5] = req_classes[k % 6];
					rc = metrics_sample(b, fa->name, l, 3,
					                    c[MS_REQ_OTHER + k % 6]);
				}
				break;
			case -2:
				rc = metrics_sample(b, fa->name, l, 2,
				                    gauge(c[MS_CONN_ACCEPTED], c[MS_CONN_CLOSED]));
				break;
			case -3:
				rc = metrics_sample(
				        b, fa->name, l, 2,
				        gauge(c[MS_TUNNELS_OPENED], c[MS_TUNNELS_CLOSED]));
				break;
			case -4:
				l[4] = "result";
				for (int k = 0; rc == 0 && k < METRICS_CACHE_RESULTS; k++) {
					l[5] = cache_results[k];
					rc = metrics_sample(b, fa->name, l, 3, c[MS_CACHE + k]);
				}
				break;
			case -5:
				l[4] = "direction";
				l[5] = "up";
				rc = metrics_sample(b, fa->name, l, 3, c[MS_TUNNEL_UP_BYTES]);
				l[5] = "down";
				if (rc == 0)
					rc = metrics_sample(b, fa->name, l, 3,
					                    c[MS_TUNNEL_DOWN_BYTES]);
				break;
			case -6:
				l[4] = "reason";
				for (int k = 0; rc == 0 && k < 4; k++) {
					l[5] = origin_reasons[k];
					rc = metrics_sample(b, fa->name, l, 3,
					                    c[MS_ORIGIN_CONNECT + k]);
				}
				break;
			default:
				rc = metrics_sample(b, fa->name, l, 2, c[fa->k]);
				break;
			}
			if (rc == -1)
				return -1;
		}
	}
	return 0;
}

/* Whether peer j of u is the first with its slot (resolve slots share their line's). */
static int
peer_first(const struct cfg_upstream *u, size_t j)
{
	for (size_t i = 0; i < j; i++)
		if (u->peers[i].metrics_slot == u->peers[j].metrics_slot)
			return 0;
	return u->peers[j].metrics_slot != 0;
}

static int
render_peers(struct evbuffer *b, const struct cfg *cfg, int64_t now_ms,
             int (*peer_up)(const struct cfg_peer *p, int64_t now_ms))
{
	for (size_t f = 0; f < sizeof(peer_families) / sizeof(peer_families[0]); f++) {
		const struct peer_family *fa = &peer_families[f];
		int head = 0;

		for (size_t i = 0; i < cfg->nupstreams; i++) {
			const struct cfg_upstream *u = &cfg->upstreams[i];

			for (size_t j = 0; j < u->npeers; j++) {
				const struct cfg_peer *p = &u->peers[j];
				const char *l[4] = {"upstream", u->name, "peer", p->name};
				uint64_t c[MP_COUNT], v = 0;

				if (!peer_first(u, j))
					continue;
				if (!head && metrics_family(b, fa->name, fa->type, fa->help) == -1)
					return -1;
				head = 1;
				if (fa->k >= 0) {
					metrics_sum_peer(p->metrics_slot, c);
					v = c[fa->k];
				} else {
					/* a resolve line: over its slots; up when one of them is */
					for (size_t k = j; k < u->npeers; k++) {
						const struct cfg_peer *q = &u->peers[k];
						int a;

						if (q->metrics_slot != p->metrics_slot)
							continue;
						a = atomic_load_explicit(&q->active,
						                         memory_order_relaxed);
						if (fa->k == -2)
							v += a > 0 ? (uint64_t)a : 0;
						else if (peer_up(q, now_ms))
							v = 1;
					}
				}
				if (metrics_sample(b, fa->name, l, 2, v) == -1)
					return -1;
			}
		}
	}
	return 0;
}

static const struct zone_family {
	const char *name, *type, *help;
	int k; /* MZ_*; -1: keys, -2: size, -3: held (conn zones only) */
} zone_families[] = {
        {"proxyd_limit_passed_total", "counter",
         "Requests a limit_req or limit_conn line of the zone let through.", MZ_PASSED},
        {"proxyd_limit_refused_total", "counter",
         "Requests a limit_req or limit_conn line of the zone answered 429.", MZ_REFUSED},
        {"proxyd_limit_zone_full_total", "counter",
         "Full zone: new keys refused (conn), limited keys forgotten early (req).", MZ_FULL},
        {"proxyd_limit_zone_keys", "gauge", "Keys the zone holds now.", -1},
        {"proxyd_limit_zone_size", "gauge", "Keys the zone can hold (size=).", -2},
        {"proxyd_limit_conn_active", "gauge",
         "Requests in progress counted by the connection zone, all keys.", -3},
};

/* Whether zone i of cfg is the first with its slot (never shown: slot 0). */
static int
zone_first(const struct cfg *cfg, size_t i)
{
	for (size_t j = 0; j < i; j++)
		if (cfg->limit_zones[j].metrics_slot == cfg->limit_zones[i].metrics_slot)
			return 0;
	return cfg->limit_zones[i].metrics_slot != 0;
}

static int
render_zones(struct evbuffer *b, const struct cfg *cfg)
{
	for (size_t f = 0; f < sizeof(zone_families) / sizeof(zone_families[0]); f++) {
		const struct zone_family *fa = &zone_families[f];
		int head = 0;

		for (size_t i = 0; i < cfg->nlimit_zones; i++) {
			const struct cfg_limit_zone *z = &cfg->limit_zones[i];
			int conn = z->def.kind == LIMIT_CONN;
			const char *l[4] = {"zone", z->name, "kind", conn ? "conn" : "req"};
			uint64_t c[MZ_COUNT], v;

			if (!zone_first(cfg, i) || z->zone == NULL || (fa->k == -3 && !conn))
				continue;
			if (!head && metrics_family(b, fa->name, fa->type, fa->help) == -1)
				return -1;
			head = 1;
			if (fa->k >= 0) {
				metrics_sum_zone(z->metrics_slot, c);
				v = c[fa->k];
			} else if (fa->k == -1) {
				v = limit_zone_used(z->zone);
			} else if (fa->k == -2) {
				v = z->def.size;
			} else {
				v = limit_zone_held(z->zone);
			}
			if (metrics_sample(b, fa->name, l, 2, v) == -1)
				return -1;
		}
	}
	return 0;
}

static int
render_caches(struct evbuffer *b, const struct cfg *cfg, int (*cache_up)(const struct cfg_cache *c))
{
	static const char name[] = "proxyd_cache_up";

	if (cfg->ncaches == 0)
		return 0;
	if (metrics_family(b, name, "gauge",
	                   "1 when the cache serves, 0 when its servers run uncached (it did not "
	                   "open, or a fault on its file disabled it).") == -1)
		return -1;
	for (size_t i = 0; i < cfg->ncaches; i++) {
		const char *l[2] = {"cache", cfg->caches[i].name};

		if (metrics_sample(b, name, l, 1, cache_up(&cfg->caches[i]) ? 1 : 0) == -1)
			return -1;
	}
	return 0;
}

int
metrics_render(struct evbuffer *b, const struct cfg *cfg, int64_t now_ms,
               int (*peer_up)(const struct cfg_peer *p, int64_t now_ms),
               int (*cache_up)(const struct cfg_cache *c))
{
	uint64_t(*sums)[MS_COUNT] = calloc(cfg->nservers + 1, sizeof(*sums));
	int rc = -1;

	if (sums == NULL)
		return -1;
	for (size_t i = 0; i < cfg->nservers; i++)
		metrics_sum_srv(cfg->servers[i].metrics_slot, sums[i]);
	if (metrics_family(b, "proxyd_config_generation", "gauge",
	                   "The configuration generation served (1 at start, +1 per reload).") ==
	            0 &&
	    metrics_sample(b, "proxyd_config_generation", NULL, 0, cfg->generation) == 0 &&
	    render_servers(b, cfg, sums) == 0 && render_peers(b, cfg, now_ms, peer_up) == 0 &&
	    render_zones(b, cfg) == 0 && render_caches(b, cfg, cache_up) == 0)
		rc = 0;
	free(sums);
	return rc;
}
