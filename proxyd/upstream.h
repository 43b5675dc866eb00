/*
 * upstream.h - choosing an upstream peer and keeping idle upstream connections.
 *
 * Contract: up_pick() chooses a peer of an upstream by its `balance` method:
 *   round_robin  smooth weighted round robin (the nginx algorithm: each pick adds every
 *                eligible peer's weight to its current weight, takes the largest and
 *                subtracts the total from it);
 *   least_conn   the fewest active requests relative to weight, ties broken by smooth
 *                weighted round robin among the tied peers;
 *   ip_hash      keyed by the client address: IPv4 by its first three octets (its /24, as
 *                nginx), IPv6 by the whole address; an ineligible peer rehashes (at most 20
 *                times), then round robin decides; no client address also means round robin;
 *   random       weighted random (a per-thread PRNG); `random two` draws two distinct
 *                peers and takes the one with fewer active requests relative to weight;
 *   hash         keyed by a key built per request from a template (up_hash_key()): the
 *                hash modulo the total weight, rehashing (at most 20 times) on an
 *                ineligible peer, then round robin; with `consistent`, the first point at
 *                or after the hash on a ketama ring built at load, walking on past
 *                ineligible peers, so removing one of N peers moves about 1/N of the keys;
 *   least_time   the lowest (average response time + 1ms) * (active + 1) / weight, the
 *                time measured to the response head or to its last byte; ties broken as
 *                least_conn's.
 * Eligible peers are those not configured `down`, not marked down by passive health
 * (max_fails), not marked down by active health checks (health_down, see health.h) and
 * not already tried by this request (both kinds of health must allow a peer), and with
 * max_conns, with fewer active requests than that (checked before the increment, not
 * atomically with it, so up to workers - 1 more may pass at once); `backup`
 * peers are considered only when no primary is eligible. Balancer state lives in the peers of the
 * config generation and is shared by every worker (the lock is held for the O(npeers) round-robin
 * and least_conn picks only). A peer that fails max_fails times within fail_timeout is skipped for
 * fail_timeout; an upstream with a single peer that is not `down` never marks it down (there is
 * nowhere else to go).
 *
 * Statistics: up_pick() adds one to the requests of the peer it returns, up_peer_failed()
 * one to its failures (whether or not max_fails marks it down); the admin endpoint
 * reports both.
 *
 * slow_start: a peer that comes back (its passive down time ends, or the health checker
 * marks it up) has its weight ramp linearly from 1 to its weight over slow_start, in
 * round_robin, least_conn, least_time and random; not in the hashes (as nginx).
 *
 * The pool keeps idle keep-alive connections to upstream peers, per worker (never shared
 * between threads), keyed by peer address so that it survives a reload.
 */
#ifndef PROXYD_UPSTREAM_H
#define PROXYD_UPSTREAM_H

#include <stdint.h>
#include <sys/queue.h>
#include <sys/time.h>

#include "cfg.h"
#include "http.h"

struct bufferevent;
struct event_base;

#define UP_MAX_TRIES 32
#define UP_KEY_MAX   1024 /* hash keys are truncated beyond this */

/*
 * Returns an eligible peer not in tried[0..ntried), or NULL when none is left. client is the
 * client's address for ip_hash (AF_INET or AF_INET6; NULL or another family: round robin).
 * key[0..keylen) is the hash key (hash methods; NULL: round robin), built by up_hash_key().
 */
struct cfg_peer *up_pick(struct cfg_upstream *u, const struct sockaddr *client, const char *key,
                         size_t keylen, struct cfg_peer *const *tried, int ntried, int64_t now_ms);
/* Whether up_pick() could still find a peer not in tried[0..ntried) (any balance method). */
int up_peers_left(const struct cfg_upstream *u, struct cfg_peer *const *tried, int ntried,
                  int64_t now_ms);
/*
 * Whether a peer not in tried[0..ntried) would be eligible but for max_conns: when
 * up_pick() finds none but this holds, every such peer is at its connection limit.
 */
int up_peers_limited(const struct cfg_upstream *u, struct cfg_peer *const *tried, int ntried,
                     int64_t now_ms);
/*
 * The value of one key template part for request msg from client (numeric address):
 * a slice of msg, of the template or of client; empty when absent. $url and $scheme are
 * the caller's to fill (cache_key).
 */
struct http_slice up_key_part(const struct cfg_key_part *k, const struct http_msg *msg,
                              const char *client);
/*
 * Build the hash key of the request msg for u into buf[0..size), truncated beyond size;
 * client is the client address text ($remote_addr). Returns the key length, 0 when u
 * does not hash (or the key is empty).
 */
size_t up_hash_key(const struct cfg_upstream *u, const struct http_msg *msg, const char *client,
                   char *buf, size_t size);
/*
 * least_time: the response from p, whose request went to it at start_ms (up_now_ms()),
 * reached its head (last_byte 0) or its last byte (last_byte 1) now. Does nothing (not
 * even read the clock) unless u balances by least_time of that kind.
 */
void up_peer_time(const struct cfg_upstream *u, struct cfg_peer *p, int last_byte,
                  int64_t start_ms);
/* Add a response time of ms milliseconds to p's least_time average. */
void up_peer_time_add(struct cfg_peer *p, int64_t ms);
/*
 * Passive health: a connect error or timeout, a bad head or a listed http_NNN from p.
 * Here, in up_peer_ok() and in up_peer_time(), p may be NULL (forward mode: no peer).
 */
void up_peer_failed(const struct cfg_upstream *u, struct cfg_peer *p, int64_t now_ms);
/* A response arrived from p: its failure window starts afresh. */
void up_peer_ok(struct cfg_peer *p);

/*
 * Note whether u had a live peer when one was wanted, and log when that changes (once per
 * transition, not per request): live 0 means every peer is marked down.
 */
void up_note_live(struct cfg_upstream *u, int live);
/* Seconds until the first marked-down peer of u may be tried again (Retry-After), >= 1. */
int up_retry_after(const struct cfg_upstream *u, int64_t now_ms);

/* Monotonic milliseconds. */
int64_t up_now_ms(void);

struct up_idle {
	TAILQ_ENTRY(up_idle) link;
	struct up_pool *pool;
	struct bufferevent *bev;
	struct cfg_addr addr;
	const void *tls;              /* the TLS client context of the connection, or NULL */
	const struct cfg_upstream *u; /* fast path of the per-upstream cap; may be stale */
	char upstream[64];            /* upstream name, for the per-upstream cap */
	int requests;                 /* requests already served on this connection */
};
TAILQ_HEAD(up_idle_list, up_idle);

struct up_pool {
	struct up_idle_list idle;  /* most recently used first */
	struct up_idle_list spare; /* freed entries, reused to spare malloc per request */
	unsigned count;
	uint32_t idle_ms;       /* the last idle timeout used, */
	struct timeval idle_tv; /* as a common timeout of the worker's base */
};

void up_pool_init(struct up_pool *pool);
/* Close every idle connection. */
void up_pool_clear(struct up_pool *pool);
/*
 * Take an idle connection to addr, made with the TLS client context tls (NULL: plain TCP;
 * a TLS connection never serves a plain request, nor the other way round). Returns its
 * bufferevent (callbacks cleared, reading still enabled) and sets *requests, or NULL when
 * none is idle.
 */
struct bufferevent *up_pool_get(struct up_pool *pool, const struct cfg_addr *addr, const void *tls,
                                int *requests);
/*
 * Park a connection that finished a response cleanly. The pool owns bev from here on; it
 * is closed when the peer closes it, after timeout_ms, or when the upstream already has
 * `keepalive` idle connections in this worker (the oldest goes).
 */
void up_pool_put(struct up_pool *pool, struct bufferevent *bev, const struct cfg_upstream *u,
                 const struct cfg_addr *addr, const void *tls, int requests);

#endif /* PROXYD_UPSTREAM_H */
