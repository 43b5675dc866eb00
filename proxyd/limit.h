/*
 * limit.h - per-client limits: request rates (`limit_req_zone`, `limit_req`) and requests
 * in progress (`limit_conn_zone`, `limit_conn`), counted in zones shared by every worker.
 *
 * Contract: no libevent, no logging, no I/O; times are arguments (microseconds of one
 * monotonic clock, limit_now_us()), so everything but limit_now_us() is testable without a
 * network or a clock. A zone is a fixed table of `size` entries allocated once by
 * limit_zone_new() and never grown: memory is bounded whatever the clients do. Entries are
 * split into stripes, each with its own mutex, hash chains and LRU list; a check or an
 * acquire locks one stripe for a hash-chain walk and a few stores, never across a call.
 * A full stripe forgets its least recently used entry to make room for a new key in a rate
 * zone (that client starts afresh), and refuses a new key in a connection zone (whose
 * entries live exactly as long as they count something). Zones are reference-counted
 * (limit_zone_ref/limit_zone_unref, atomics) so that a configuration reload can keep a
 * zone whose definition did not change, state and all; the last unref frees it. The parse
 * functions return 0, or -1 with *err set to a malloc'd reason (the caller adds
 * "file:line: ").
 */
#ifndef PROXYD_LIMIT_H
#define PROXYD_LIMIT_H

#include <sys/socket.h>

#include <stddef.h>
#include <stdint.h>

enum limit_kind {
	LIMIT_REQ,  /* limit_req_zone: a rate per key (GCRA, the token bucket's twin) */
	LIMIT_CONN, /* limit_conn_zone: requests in progress per key (tunnels included) */
};

enum limit_key {
	LIMIT_KEY_CLIENT, /* key=client: the client address */
	LIMIT_KEY_USER,   /* key=user: the proxy-authenticated user, else the client address */
	LIMIT_KEY_HOST,   /* key=host: the request's host, lower-cased, without the port */
};

/* What a zone directive defines; two zones with equal definitions are interchangeable. */
struct limit_def {
	enum limit_kind kind;
	enum limit_key key;
	uint32_t rate;      /* LIMIT_REQ: requests per period (1 .. LIMIT_MAX_RATE) */
	uint32_t period_ms; /* LIMIT_REQ: 1000 (r/s) or 60000 (r/m) */
	uint32_t size;      /* entries (LIMIT_MIN_SIZE .. LIMIT_MAX_SIZE) */
};

#define LIMIT_DEF_SIZE  65536u
#define LIMIT_MIN_SIZE  1u
#define LIMIT_MAX_SIZE  (16u * 1024 * 1024)
#define LIMIT_MAX_RATE  1000000u
#define LIMIT_MAX_BURST 1000000u
#define LIMIT_MAX_CONN  1000000u
/* Key bytes kept per entry; longer keys keep their head and a hash of the rest. */
#define LIMIT_KEY_MAX 64
/* A client's rejections are reported (limit_*'s *log) at most once per this interval. */
#define LIMIT_LOG_INTERVAL_US (10 * 1000000LL)
/* Zone events (full, forgetting clients early) at most once per this interval. */
#define LIMIT_ZONE_LOG_INTERVAL_US (60 * 1000000LL)

/*
 * `limit_req_zone NAME key=K rate=Nr/s|Nr/m [size=N]` (kind LIMIT_REQ) or
 * `limit_conn_zone NAME key=K [size=N]` (LIMIT_CONN): args are the words after NAME, in
 * any order, each at most once; key= is required, and rate= for a rate zone.
 */
int limit_def_parse(enum limit_kind kind, char *const *args, size_t nargs, struct limit_def *def,
                    char **err);
/* `limit_req ZONE [burst=N] [nodelay]`: args after ZONE. *burst is 0 unless given. */
int limit_req_parse(char *const *args, size_t nargs, uint32_t *burst, char **err);
/* `limit_conn ZONE N`: n is N (1 .. LIMIT_MAX_CONN). */
int limit_conn_parse(const char *n, uint32_t *max, char **err);
/* "client", "user", "host"; "r/s" or "r/m" for a rate; for messages and tests. */
const char *limit_key_name(enum limit_key key);

struct limit_zone;

/* A zone of def's size, all entries free. Returns NULL with *err set (out of memory). */
struct limit_zone *limit_zone_new(const char *name, const struct limit_def *def, char **err);
/* 1 when z was built from a definition equal to def (a reload may keep it). */
int limit_zone_same(const struct limit_zone *z, const char *name, const struct limit_def *def);
struct limit_zone *limit_zone_ref(struct limit_zone *z);
void limit_zone_unref(struct limit_zone *z);
const char *limit_zone_name(const struct limit_zone *z);
const struct limit_def *limit_zone_def(const struct limit_zone *z);
/* Entries in use (all stripes; a snapshot, for tests and statistics). */
size_t limit_zone_used(struct limit_zone *z);
/* A connection zone: requests in progress over all its keys (a snapshot); 0 for a rate zone. */
size_t limit_zone_held(struct limit_zone *z);

/*
 * The key of a request for a zone keyed by `key` into out (LIMIT_KEY_MAX bytes); returns
 * its length. client is the client address (AF_INET or AF_INET6; an IPv4-mapped IPv6
 * address counts as its IPv4 address); user may be NULL or empty and host may be NULL or
 * empty (0 bytes), in which case the client address is the key. Keys of different kinds
 * never collide (a type byte leads).
 */
size_t limit_key_make(char *out, enum limit_key key, const struct sockaddr *client,
                      const char *user, const char *host, size_t hostlen);

enum limit_verdict {
	LIMIT_PASS,   /* within the limit (counted) */
	LIMIT_REJECT, /* over the limit: answer 429 */
	LIMIT_FULL,   /* a connection zone has no free entry for a new key: answer 429 */
};

/* What a check tells its caller besides the verdict. */
struct limit_note {
	uint32_t retry_after_s; /* LIMIT_REJECT of a rate zone: seconds until one would pass */
	uint32_t handle;        /* LIMIT_PASS of a connection zone: for limit_conn_release() */
	int log;                /* 1: report this rejection (per client or zone interval) */
	int evicted_active;     /* 1: report that a full rate zone forgot an active client */
	int evicted;            /* 1: a full rate zone forgot a client still limited (each time) */
};

/*
 * One request of key against a rate zone at now_us, allowed burst requests beyond the
 * rate (so burst + 1 at once from rest, then one per period/rate). A rejected request is
 * not counted. nodelay semantics always: proxyd never delays a request.
 */
enum limit_verdict limit_req_check(struct limit_zone *z, const void *key, size_t klen,
                                   uint32_t burst, int64_t now_us, struct limit_note *note);
/*
 * One more request in progress for key in a connection zone, at most max at once. On
 * LIMIT_PASS the caller owes one limit_conn_release(z, note->handle).
 */
enum limit_verdict limit_conn_acquire(struct limit_zone *z, const void *key, size_t klen,
                                      uint32_t max, int64_t now_us, struct limit_note *note);
void limit_conn_release(struct limit_zone *z, uint32_t handle);
/* Requests in progress for key now (0 when unknown); for tests. */
uint32_t limit_conn_count(struct limit_zone *z, const void *key, size_t klen);

/*
 * The clock of limits: CLOCK_MONOTONIC in microseconds. Builds configured with
 * --enable-test-hooks stop it at PROXYD_TEST_NOW seconds when that is set, so that a test
 * sees no refill between its requests.
 */
int64_t limit_now_us(void);

#endif /* PROXYD_LIMIT_H */
