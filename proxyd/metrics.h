/*
 * metrics.h - process-lifetime counters for GET /metrics on the admin endpoint (admin.h),
 * in the Prometheus text exposition format 0.0.4.
 *
 * Contract: every thread counts into its own block (struct metrics_block): a worker
 * attaches one with metrics_attach() on its own thread before it serves anything; any
 * other thread counts into one shared fallback block. A block is written by its thread
 * alone, with a relaxed load and a relaxed store of the same slot (a plain load, add and
 * store on x86-64 and arm64: no lock prefix, no lock, no shared cache line between
 * workers), and read by whoever renders, with relaxed loads; threads sharing the
 * fallback block may lose an increment, never tear one. Reading sums the blocks, so a
 * scrape is not a snapshot across counters (a gauge made of two counters is clamped at
 * 0). Blocks are never freed: counters live as long as the process, across reloads.
 *
 * Labels: metrics_bind() (main thread, before a generation is handed to the workers)
 * gives each server, each upstream peer and each limit zone of a generation a slot in a
 * process-wide registry keyed by what names it across reloads: a server by its first
 * listen address, a peer by its upstream's name and its server line as written, a zone
 * by its kind and name (a server's limit lines get their zone's slot). A reload that keeps the
 * key keeps the slot and its counts. GET /metrics shows the slots of the generation
 * worker 0 serves: a server or peer removed by a reload disappears from the output (its
 * counts are kept, and continue if a later reload brings it back). Past METRICS_MAX_*
 * keys in the life of the process, further ones share slot 0, which is never shown.
 * A generation never bound (tests, --explain) counts everything in slot 0.
 *
 * The hot path is the static inline functions below: one thread-local load, an index
 * and an add per counter.
 */
#ifndef PROXYD_METRICS_H
#define PROXYD_METRICS_H

#include <stdatomic.h>
#include <stdint.h>

#include "cfg.h"

struct evbuffer;

#define METRICS_MAX_SERVERS 256  /* server keys over the life of the process */
#define METRICS_MAX_PEERS   1024 /* upstream peer keys over the life of the process */
#define METRICS_MAX_ZONES   256  /* limit zone keys over the life of the process */
#define METRICS_MAX_BLOCKS  257  /* worker blocks (workers are at most 256) + fallback */

/* Per server. The cache results follow session_int.h's CMODE_* from CMODE_MISS on. */
enum metrics_srv {
	MS_CONN_ACCEPTED,
	MS_CONN_CLOSED,
	MS_TLS_HANDSHAKES,
	MS_TLS_FAILURES,
	MS_REQ_OTHER, /* + status / 100 for 1xx .. 5xx: MS_REQ_OTHER + 1 .. + 5 */
	MS_REQ_1XX,
	MS_REQ_2XX,
	MS_REQ_3XX,
	MS_REQ_4XX,
	MS_REQ_5XX,
	MS_REJECTED,      /* request heads refused by the parser */
	MS_RX_BYTES,      /* request heads and bodies */
	MS_TX_BYTES,      /* response bodies */
	MS_TX_HEAD_BYTES, /* response heads (interim 100 Continue included) */
	MS_CACHE,         /* + cmode - 1: miss expired bypass hit revalidated stale swr updating */
	MS_CACHE_END = MS_CACHE + 8,
	MS_CACHE_STORES = MS_CACHE_END,
	MS_CACHE_STORE_FAILURES,
	MS_TUNNELS_OPENED,
	MS_TUNNELS_CLOSED,
	MS_TUNNEL_UP_BYTES,   /* client to origin */
	MS_TUNNEL_DOWN_BYTES, /* origin to client */
	MS_ACL_DENIED,
	MS_AUTH_FAILED,
	MS_RESOLVE_FAILED,
	MS_ORIGIN_CONNECT, /* forward: + enum metrics_origin_fail, connects to origins failed */
	MS_ORIGIN_CONNECT_END = MS_ORIGIN_CONNECT + 4,
	MS_COUNT = MS_ORIGIN_CONNECT_END
};

/* Why a forward server's connect to an origin (or a CONNECT target) failed. */
enum metrics_origin_fail {
	MO_REFUSED,     /* ECONNREFUSED */
	MO_UNREACHABLE, /* ENETUNREACH, EHOSTUNREACH */
	MO_TIMEOUT,     /* proxy_connect_timeout */
	MO_OTHER,       /* anything else (a reset, out of descriptors) */
};
#define METRICS_CACHE_RESULTS (MS_CACHE_END - MS_CACHE)

/* Per upstream peer (server line of an upstream). */
enum metrics_peer {
	MP_REQUESTS,         /* tries sent to the peer (connections attempted or reused) */
	MP_CONNECT_FAILURES, /* connect(2) or the TLS handshake failed */
	MP_TIMEOUTS,         /* connect, send or response head timed out */
	MP_RETRIES,          /* tries that were a second or later try of their request */
	MP_COUNT
};

/* Per limit zone (limit_req_zone, limit_conn_zone), summed over the lines that use it. */
enum metrics_zone {
	MZ_PASSED,  /* requests a limit line of the zone let through */
	MZ_REFUSED, /* requests a limit line of the zone answered 429 */
	MZ_FULL,    /* conn: a new key refused for want of room; req: a limited key forgotten */
	MZ_COUNT
};

struct metrics_block {
	_Alignas(64) _Atomic uint64_t srv[METRICS_MAX_SERVERS][MS_COUNT];
	_Atomic uint64_t peer[METRICS_MAX_PEERS][MP_COUNT];
	_Atomic uint64_t zone[METRICS_MAX_ZONES][MZ_COUNT];
};

/* This thread's block (the fallback block until metrics_attach()). */
extern _Thread_local struct metrics_block *metrics_self;

static inline void
metrics_bump(_Atomic uint64_t *c, uint64_t n)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
	                      memory_order_relaxed);
}

/* Add n to counter k of server srv. */
static inline void
metrics_srv_add(const struct cfg_server *srv, enum metrics_srv k, uint64_t n)
{
	metrics_bump(&metrics_self->srv[srv->metrics_slot][k], n);
}

static inline void
metrics_srv_inc(const struct cfg_server *srv, enum metrics_srv k)
{
	metrics_srv_add(srv, k, 1);
}

/*
 * A request's end (when its access-log line is due): its status class and its bytes (rx
 * received, tx of response body and txhead of response heads sent).
 */
static inline void
metrics_request(const struct cfg_server *srv, int status, uint64_t rx, uint64_t tx, uint64_t txhead)
{
	_Atomic uint64_t *c = metrics_self->srv[srv->metrics_slot];
	unsigned cls = (unsigned)status / 100u;

	metrics_bump(&c[MS_REQ_OTHER + (cls - 1u < 5u ? cls : 0u)], 1);
	metrics_bump(&c[MS_RX_BYTES], rx);
	metrics_bump(&c[MS_TX_BYTES], tx);
	metrics_bump(&c[MS_TX_HEAD_BYTES], txhead);
}

/* A forward server's connect to an origin address failed. */
static inline void
metrics_origin_failed(const struct cfg_server *srv, enum metrics_origin_fail why)
{
	metrics_bump(&metrics_self->srv[srv->metrics_slot][MS_ORIGIN_CONNECT + why], 1);
}

/* Counter k of a limit line's zone. */
static inline void
metrics_zone_inc(const struct cfg_limit *l, enum metrics_zone k)
{
	metrics_bump(&metrics_self->zone[l->metrics_slot][k], 1);
}

static inline void
metrics_peer_inc(const struct cfg_peer *p, enum metrics_peer k)
{
	metrics_bump(&metrics_self->peer[p->metrics_slot][k], 1);
}

/* A client connection closed; tls_failed: before its TLS handshake completed. */
static inline void
metrics_session_closed(const struct cfg_server *srv, int tls_failed)
{
	_Atomic uint64_t *c = metrics_self->srv[srv->metrics_slot];

	metrics_bump(&c[MS_CONN_CLOSED], 1);
	metrics_bump(&c[MS_TLS_FAILURES], tls_failed != 0);
}

/* A tunnel ended, having moved up bytes client to origin and down bytes back. */
static inline void
metrics_tunnel_closed(const struct cfg_server *srv, uint64_t up, uint64_t down)
{
	_Atomic uint64_t *c = metrics_self->srv[srv->metrics_slot];

	metrics_bump(&c[MS_TUNNELS_CLOSED], 1);
	metrics_bump(&c[MS_TUNNEL_UP_BYTES], up);
	metrics_bump(&c[MS_TUNNEL_DOWN_BYTES], down);
}

/*
 * Give this thread a block of its own, block id (0 .. METRICS_MAX_BLOCKS - 2), made on
 * first use and kept by id (a thread of the same id later counts on). Returns 0, or -1
 * (out of memory, id out of range: the thread keeps the fallback block).
 */
int metrics_attach(int id);

/*
 * Main thread only. Give cfg's servers and peers their slots (see the contract), and
 * keep cfg's generation number for proxyd_config_generation. Returns 0, or -1 when out
 * of memory (what is left unbound counts in slot 0).
 */
int metrics_bind(struct cfg *cfg);

/*
 * Sum a server's (a peer's, a zone's) counters over every block into out[MS_COUNT]
 * (out[MP_COUNT], out[MZ_COUNT]).
 */
void metrics_sum_srv(unsigned slot, uint64_t *out);
void metrics_sum_peer(unsigned slot, uint64_t *out);
void metrics_sum_zone(unsigned slot, uint64_t *out);

/*
 * One sample line: name{l0="v0",l1="v1"} value, label values escaped as the format says
 * (backslash, double quote and line feed). labels holds nlabels name/value pairs.
 * Returns 0 or -1 (out of memory).
 */
int metrics_sample(struct evbuffer *b, const char *name, const char *const *labels, size_t nlabels,
                   uint64_t value);
/* # HELP and # TYPE lines of a family; help escaped (backslash, line feed). */
int metrics_family(struct evbuffer *b, const char *name, const char *type, const char *help);

/*
 * The whole exposition for generation cfg into b: families in a fixed order, each with
 * its samples per server (config order), per peer (upstreams, then peers, in config
 * order) or per limit zone (config order; its entries and held counts read from the
 * zone, a lock per stripe) or per cache (config order). peer_up says whether a peer counts
 * as up at now_ms (admin.c's state); cache_up whether a cache serves (1) or the servers
 * using it run uncached (0: it did not open, or a fault on its file disabled it).
 * Returns 0 or -1 (out of memory).
 */
int metrics_render(struct evbuffer *b, const struct cfg *cfg, int64_t now_ms,
                   int (*peer_up)(const struct cfg_peer *p, int64_t now_ms),
                   int (*cache_up)(const struct cfg_cache *c));

#endif /* PROXYD_METRICS_H */
