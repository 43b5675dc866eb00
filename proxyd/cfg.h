/*
 * cfg.h - configuration: parsing proxyd.conf into an immutable, reference-counted tree.
 *
 * Contract: cfg_load() reads a file (following `include` globs) and returns a complete,
 * validated generation or NULL with *err set to a malloc'd "file:line: reason" message.
 * A generation never changes after cfg_load() returns, except the fields marked
 * "runtime", which are balancer state owned by upstream.c and updated with atomics or
 * under cfg_upstream.lock. Whoever holds a pointer holds a reference (cfg_ref/cfg_unref);
 * the last unref frees the tree and closes its log files. Runs before or beside the event
 * loop; never touches libevent.
 */
#ifndef PROXYD_CFG_H
#define PROXYD_CFG_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "cfg_value.h"
#include "limit.h"

/* An address as configured ("127.0.0.1:3001"), resolved once at load. */
struct cfg_addr {
	struct sockaddr_storage ss;
	socklen_t len;
	char text[64]; /* numeric "ip:port" or "[ip6]:port", for logs and keys */
};

/* struct cfg_peer.flags */
#define CFG_PEER_BACKUP  0x01 /* backup: used only when no primary peer is eligible */
#define CFG_PEER_DOWN    0x02 /* down: never used (kept so that ip_hash keys stay put) */
#define CFG_PEER_RESOLVE 0x04 /* resolve: one of CFG_RESOLVE_SLOTS slots of a DNS name */

/* A `server NAME:PORT resolve` line becomes this many peers, filled by discover.h. */
#define CFG_RESOLVE_SLOTS 8
/* resolver valid=: how long answers are kept (and resolved peers re-resolved) by default */
#define CFG_DEF_RESOLVER_VALID 30000

struct cfg_peer {
	struct cfg_addr addr;     /* static peers; a resolve slot's address is cur_addr's */
	char *name;               /* as written in the config, e.g. "localhost:3001" */
	char *host;               /* resolve: the name to look up (no port), else NULL */
	struct tls_client *tls;   /* tls: the client context (cfg_upstream.tls_clients) */
	char *tls_name;           /* tls: sni= or the host of the server line, verified */
	uint16_t port;            /* resolve: the port of the server line */
	unsigned slot;            /* resolve: 0 .. CFG_RESOLVE_SLOTS - 1 */
	unsigned flags;           /* CFG_PEER_* */
	int weight;               /* weight=, default 1 */
	int max_fails;            /* max_fails=, default 1; 0 disables */
	uint32_t fail_timeout_ms; /* fail_timeout=, default 10s */
	int max_conns;          /* max_conns=, active requests at most (all workers); 0: no limit */
	uint32_t slow_start_ms; /* slow_start=, weight ramp after recovery; 0: off */

	/* runtime (upstream.c) */
	/*
	 * The address to connect to: &addr for a static peer; for a resolve slot the
	 * address discover.c last gave it, or NULL (the slot is not eligible). Read with
	 * cfg_peer_addr() and copy: an address replaced by DNS stays readable for a while.
	 */
	_Atomic(struct cfg_addr *) cur_addr;
	int cur_weight;                 /* smooth WRR state, under the upstream lock */
	atomic_int fails;               /* failures in the current window */
	_Atomic int64_t fail_window_ms; /* start of the failure window (monotonic ms) */
	_Atomic int64_t down_until_ms;  /* peer is skipped until then (monotonic ms) */
	atomic_int active;              /* requests in flight on this peer, all workers */
	/*
	 * slow_start: when the peer came back (monotonic ms; 0: never down). Set to
	 * down_until_ms when passive health marks it down (so it is in the future while the
	 * peer is down), and to the time the health checker marks it up.
	 */
	_Atomic int64_t recovered_ms;
	atomic_int slow_note; /* 1: log the passive recovery once it is seen */
	/*
	 * active health: 1 while the health checker (health.c, worker 0 only) holds the
	 * peer down after `fails` consecutive failed checks; 0 (up) from load on, and again
	 * after `passes` consecutive passed checks
	 */
	atomic_int health_down;
	/*
	 * least_time: moving average (weight 1/8 per sample) of the response time, in
	 * microseconds (kept finer than the millisecond samples so that small ones still
	 * move it); 0 until the first response
	 */
	_Atomic int64_t ewma_us;
	unsigned metrics_slot; /* metrics.h: set by metrics_bind() before workers see it */
	/* statistics for the admin endpoint (admin.h): peers picked, passive failures */
	_Atomic uint64_t requests;
	_Atomic uint64_t failures;
};

/* How an upstream chooses among its peers (balance directive); see upstream.h. */
enum cfg_balance {
	CFG_BALANCE_UNSET,                /* parser only: the merge makes it round_robin */
	CFG_BALANCE_ROUND_ROBIN,          /* smooth weighted round robin (default) */
	CFG_BALANCE_LEAST_CONN,           /* fewest active requests relative to weight */
	CFG_BALANCE_IP_HASH,              /* keyed by the client address */
	CFG_BALANCE_RANDOM,               /* weighted random */
	CFG_BALANCE_RANDOM_TWO,           /* the less loaded of two weighted-random peers */
	CFG_BALANCE_HASH,                 /* keyed by a request template, modulo total weight */
	CFG_BALANCE_HASH_CONSISTENT,      /* keyed by a request template, on a ketama ring */
	CFG_BALANCE_LEAST_TIME,           /* lowest response time (to the head) and load */
	CFG_BALANCE_LEAST_TIME_LAST_BYTE, /* lowest response time (to the last byte) and load */
};

/* One part of a compiled `hash` key template. */
enum cfg_key_var {
	CFG_KEY_LITERAL,     /* text as written */
	CFG_KEY_REQUEST_URI, /* $request_uri: the request target as received */
	CFG_KEY_REMOTE_ADDR, /* $remote_addr: the client address, numeric */
	CFG_KEY_HOST,        /* $host: absolute-form authority host, else Host's; no port */
	CFG_KEY_HTTP,        /* $http_NAME: a request header (text: the name, `_` made `-`) */
	CFG_KEY_COOKIE,      /* $cookie_NAME: a cookie of the Cookie header(s) (text: NAME) */
	CFG_KEY_ARG,         /* $arg_NAME: a query-string argument (text: NAME) */
	CFG_KEY_URL,         /* $url: the normalized URL, the cache's own key (cache_key only) */
	CFG_KEY_SCHEME,      /* $scheme: "http" or "https" (cache_key only) */
};

struct cfg_key_part {
	enum cfg_key_var var;
	char *text; /* the literal, or the NAME of $http_, $cookie_, $arg_; else NULL */
	size_t len;
};

/* health_check of an upstream (health.h); interval_ms 0: no active checks. */
struct cfg_health {
	uint32_t interval_ms; /* interval=, default 5s */
	uint32_t timeout_ms;  /* timeout=, default 2s: connect to the end of the head */
	char *uri;            /* uri=, default "/health" */
	int expect_lo;        /* expect=N or N-M: the passing statuses, default 200-399 */
	int expect_hi;
	int fails;  /* fails=, default 3: consecutive failures that mark a peer down */
	int passes; /* passes=, default 2: consecutive passes that mark it up again */
};

/* A point of a consistent-hash ring: sorted by hash, then by peer. */
struct cfg_ring_point {
	uint32_t hash;
	uint32_t peer; /* index into cfg_upstream.peers */
};

struct cfg_upstream {
	char *name;
	struct cfg_peer *peers;
	size_t npeers;
	enum cfg_balance balance; /* balance, or least_conn; ip_hash; random; hash; ... */
	struct cfg_key_part *key; /* hash: the compiled key template */
	size_t nkey;
	struct cfg_ring_point *ring; /* hash ... consistent: 160 points per unit of weight */
	size_t nring;
	int keepalive;                 /* idle connections kept per worker; 0 = no pooling */
	uint32_t keepalive_timeout_ms; /* idle pooled connection lifetime, default 60s */
	int keepalive_requests;        /* requests per upstream connection, default 1000 */
	struct cfg_health hc;          /* health_check; hc.interval_ms 0 when absent */
	const char *file;
	int line;

	/* runtime (upstream.c) */
	pthread_mutex_t lock;
	atomic_int all_down;     /* every peer is marked down; logged on each change */
	struct cfg_dynaddr *dyn; /* resolve: addresses handed out by discover.c (its thread) */
	struct tls_client **tls_clients; /* owned: one per `server ... tls` line */
	size_t ntls_clients;
};

/* An address a resolve slot used; freed with the generation or once long retired. */
struct cfg_dynaddr {
	struct cfg_addr addr;
	struct cfg_dynaddr *next;
	int64_t retired_ms; /* 0 while in use */
};

/* resolver ADDR ... [valid=DURATION] [ipv6=on|off]; resolver_timeout DURATION; */
struct cfg_resolver {
	struct cfg_addr *ns; /* NULL: the name servers of /etc/resolv.conf */
	size_t nns;
	uint32_t valid_ms;   /* valid=, default 30s */
	uint32_t timeout_ms; /* resolver_timeout, default 5s */
	int ipv6;            /* ipv6=, default on */
};

/* The address a peer connects to now, or NULL (a resolve slot without one). */
static inline struct cfg_addr *
cfg_peer_addr(const struct cfg_peer *p)
{
	return atomic_load_explicit(&p->cur_addr, memory_order_acquire);
}

struct cfg_listen {
	struct cfg_addr addr;
	int backlog; /* backlog=, default 511 */
	int tls;     /* tls: TLS is terminated here (the server's tls_* directives) */
	const char *file;
	int line;
};

/* admin { listen ADDR:PORT; allow_remote on|off; } (admin.h); enabled 0 when absent. */
struct cfg_admin {
	int enabled;
	struct cfg_listen listen; /* listen (required in the block) */
	int allow_remote;         /* allow_remote, default off: listen must be loopback */
	const char *file;         /* where the block starts */
	int line;
};

struct cfg_log {
	char *path;
	int fd;           /* opened O_APPEND at load; -1 for "off" */
	int created;      /* this load created the file (given to `user` when root) */
	const char *file; /* where the directive is */
	int line;
};

/* struct cfg_server.next_upstream: when a request goes on to the next peer */
#define CFG_NEXT_ERROR          0x001 /* error: refused, reset or closed before the head */
#define CFG_NEXT_TIMEOUT        0x002 /* timeout: connect, or read before the head */
#define CFG_NEXT_INVALID_HEADER 0x004 /* invalid_header: a bad or incomplete head */
#define CFG_NEXT_HTTP_500       0x008
#define CFG_NEXT_HTTP_502       0x010
#define CFG_NEXT_HTTP_503       0x020
#define CFG_NEXT_HTTP_504       0x040
#define CFG_NEXT_HTTP_403       0x080
#define CFG_NEXT_HTTP_404       0x100
#define CFG_NEXT_HTTP_429       0x200
#define CFG_NEXT_NON_IDEMPOTENT 0x400 /* non_idempotent: POST, LOCK, PATCH may go on too */

/* add_header NAME VALUE [always]; */
struct cfg_add_header {
	char *name;
	char *value;
	int always; /* also on 4xx/5xx and on responses proxyd makes itself */
};

/* struct cfg_server.mode */
#define CFG_MODE_REVERSE 0 /* requests go to proxy_pass's upstream */
#define CFG_MODE_FORWARD 1 /* absolute-URI requests and CONNECT go to the origin named */

struct np_ports;
struct anon_policy;
struct auth_db;
struct auth_cache;
struct acl;
struct rules_ctx;
struct tls_server;
struct tls_client;
struct cache_store;
struct cache_valid;
struct rules_rule;

/* cache NAME { path DIR; max_size SIZE; max_object_size SIZE; } */
struct cfg_cache {
	char *name;
	char *path;
	uint64_t max_size;         /* default 256m */
	uint64_t max_object_size;  /* default max_size / 8 */
	struct cache_store *store; /* open (shared by generations), or NULL: uncached */
	const char *file;
	int line;
};
struct tls_cert_conf;

/* limit_req_zone NAME key=K rate=R [size=N]; limit_conn_zone NAME key=K [size=N]; */
struct cfg_limit_zone {
	char *name;
	struct limit_def def;
	struct limit_zone *zone; /* built at load, or the previous generation's when the same */
	unsigned metrics_slot;   /* metrics.h: set by metrics_bind() */
	const char *file;
	int line;
};

/* limit_req ZONE [burst=N] [nodelay]; limit_conn ZONE N; (a server's, in order) */
#define CFG_MAX_LIMITS 8 /* of each kind per server */
struct cfg_limit {
	enum limit_kind kind;
	char *zone_name;         /* as written, resolved at the end of the load */
	struct limit_zone *zone; /* the zone's (the generation holds the reference) */
	uint32_t burst;          /* limit_req: burst=, default 0 */
	uint32_t max;            /* limit_conn: N */
	unsigned metrics_slot;   /* its zone's (metrics.h): set by metrics_bind() */
	const char *file;
	int line;
};

struct cfg_server {
	struct cfg_listen *listens;
	size_t nlistens;
	/*
	 * proxy_pass; in forward mode a private upstream without peers (fwd) whose only
	 * use is the idle-connection pool's limits (origin_keepalive)
	 */
	struct cfg_upstream *upstream;
	struct cfg_upstream *fwd;        /* forward mode: owned by the server, else NULL */
	int mode;                        /* mode, CFG_MODE_*, default reverse */
	unsigned metrics_slot;           /* metrics.h: set by metrics_bind() */
	uint32_t tunnel_idle_timeout_ms; /* CONNECT tunnels, default 5m */
	int deny_private_destinations;   /* forward: default off */
	int origin_keepalive;            /* forward: idle origin connections per worker, 64 */
	struct np_ports *connect_ports;  /* forward: CONNECT ports, default 443 */
	int anonymize;                   /* forward: enum anon_mode, default standard */
	char **anon_allow;               /* anonymize_allow names */
	size_t nanon_allow;
	char *anon_user_agent;           /* anonymize_user_agent, NULL: none */
	struct anon_policy *anon;        /* built from the three above (forward mode) */
	char *auth_realm;                /* auth basic: NULL when off */
	struct auth_db *auth_db;         /* the users file, read at load */
	struct auth_cache *auth_cache;   /* recent successful verifications */
	struct acl *acl;                 /* allow/deny lines in order; NULL when none */
	struct tls_cert_conf *tls_certs; /* tls_certificate / _key / tls_ocsp_response */
	size_t ntls_certs;
	unsigned tls_protocols;          /* tls_protocols, TLS_PROTO_* (0: unset) */
	char *tls_ciphers;               /* tls_ciphers */
	char *tls_ciphersuites;          /* tls_ciphersuites */
	int tls_session_tickets;         /* tls_session_tickets on|off, default on */
	int tls_session_cache;           /* tls_session_cache N|off, sessions, default 20480 */
	uint32_t tls_session_timeout_ms; /* tls_session_timeout, default 10m */
	struct tls_server *tls;          /* built at load when a listen has `tls` */
	struct cfg_cache *cache;         /* cache NAME; NULL: none */
	char *cache_name;                /* as written, resolved at the end of the load */
	const char *cache_file;
	int cache_line;
	struct rules_rule **cache_bypass; /* cache_bypass RULE: no lookup (may store) */
	size_t ncache_bypass;
	struct rules_rule **no_cache; /* no_cache RULE: never stored */
	size_t nno_cache;
	struct cache_valid *cache_valid; /* cache_valid lifetimes for responses without any */
	size_t ncache_valid;
	struct cfg_key_part *cache_key; /* cache_key TEMPLATE; NULL: the normalized URL */
	size_t ncache_key;
	int cache_heuristic; /* cache_heuristic: percent of Date - Last-Modified, 0 off */
	uint32_t cache_heuristic_max_s; /* ... max=: cap of the heuristic lifetime, default 1 day */
	int cache_store_set_cookie;     /* cache_store_set_cookie on: stored without Set-Cookie */
	int cache_status;    /* cache_status on|off: the Cache-Status field, default on */
	int x_cache;         /* x_cache on|off: the X-Cache field, default on */
	int cache_use_stale; /* CFG_NEXT_* failures a stale entry answers; default 0 */
	char *deny_page;     /* deny_page contents (applied to acl at load) */
	int cache_lock;      /* cache_lock on|off: collapse concurrent misses, default on */
	uint32_t cache_lock_timeout_ms; /* cache_lock_timeout, default 5s */
	uint32_t cache_lock_age_ms;     /* cache_lock_age, default 5s */

	uint32_t proxy_connect_timeout_ms; /* default 60s */
	uint32_t proxy_read_timeout_ms;    /* default 60s */
	uint32_t proxy_send_timeout_ms;    /* default 60s */
	uint32_t keepalive_timeout_ms;     /* default 75s; 0 disables client keep-alive */
	int keepalive_requests;            /* default 1000 */
	uint32_t client_header_timeout_ms; /* default 60s */
	uint32_t client_body_timeout_ms;   /* default 60s */
	uint32_t send_timeout_ms;          /* default 60s */

	int next_upstream;                 /* CFG_NEXT_*, default error|timeout; 0: off */
	int next_upstream_tries;           /* default 0: as many as there are peers */
	uint32_t next_upstream_timeout_ms; /* from the first try; default 0: none */

	size_t client_max_header_size; /* default 32k */
	size_t client_max_target;      /* default 8k */
	size_t client_max_headers;     /* default 100, at most HTTP_MAX_HEADERS */
	uint64_t client_max_body_size; /* default 1m; 0 = unlimited */

	int x_forwarded_for;   /* on|off, default on */
	int x_forwarded_proto; /* default on */
	int x_forwarded_host;  /* default on */
	int via;               /* default on */
	int ret_code;          /* return CODE [TEXT|URL]: 0 when absent */
	char *ret_text;        /* its URL (3xx: Location) or body text, with $variables */
	struct cfg_add_header *add_headers; /* add_header NAME VALUE [always], in order */
	size_t nadd_headers;
	struct cfg_limit *limits; /* limit_req and limit_conn lines, in order (limit.h) */
	size_t nlimits;

	struct cfg_log access_log; /* default off */
	const char *file;
	int line;
};

struct cfg {
	atomic_int refs;
	uint64_t generation; /* 1, 2, ... assigned by cfg_load */
	char *path;

	int workers;                  /* workers N|auto (auto = online CPUs) */
	int worker_connections;       /* per worker, default 10000 */
	char *user;                   /* NULL: do not switch user */
	uid_t user_uid;               /* user's, looked up at load when root; else -1 */
	gid_t user_gid;               /* its group; -1 likewise */
	char *pid_file;               /* NULL: none */
	char *error_log;              /* NULL or "stderr": stderr; else a file path */
	int error_log_level;          /* syslog level, default LOG_NOTICE */
	uint32_t shutdown_timeout_ms; /* grace period on SIGTERM, default 10s */

	struct cfg_upstream *upstreams;
	size_t nupstreams;
	struct cfg_server *servers;
	size_t nservers;
	struct cfg_admin admin; /* the admin endpoint; admin.enabled 0 when absent */
	struct cfg_resolver resolver;
	struct rules_ctx *rules; /* `set` definitions and the rules of every acl; NULL: none */
	struct cfg_cache *caches;
	size_t ncaches;
	struct cfg_limit_zone *limit_zones; /* limit_req_zone and limit_conn_zone */
	size_t nlimit_zones;

	/* the files read, for "file:line" in messages; owned by the tree */
	char **files;
	size_t nfiles;
};

/*
 * Load and validate a configuration. Returns a generation with one reference, or NULL.
 * Loaded as root, `user` is looked up (unknown: an error at its file:line) and the files the
 * load creates (access logs, a new cache's data.mdb and lock.mdb) are given to that user;
 * existing ones keep their owner, with a warning when the user could not write them.
 */
struct cfg *cfg_load(const char *path, char **err);
/*
 * The same with CFG_LOAD_* flags (below), for `proxyd -t` and `--explain`: CFG_LOAD_CHECK
 * checks what would be created instead of creating it, so that a check run as root leaves
 * no root-owned file where the daemon, as its user, must write later: an access log that
 * exists is opened for writing and closed again; one that does not must have a directory
 * the caller may write and search (faccessat(AT_EACCESS)), and is an error otherwise, with
 * the message the real open would give. Cache stores are not opened: their directory must
 * exist and be writable, and their data.mdb and lock.mdb, where they exist, readable and
 * writable, or the cache is reported as at start ("serving uncached", a warning). A check
 * generation never serves: its access logs and cache stores are closed (fd -1, NULL).
 */
#define CFG_LOAD_CHECK 0x2u
struct cfg *cfg_load_flags(const char *path, unsigned int flags, char **err);
/*
 * The same for a reload: prev (the running generation, may be NULL) lends what must
 * survive it, such as TLS ticket keys and keys no longer readable after the privilege drop.
 */
struct cfg *cfg_load_next(const char *path, const struct cfg *prev, char **err);
/*
 * The same for len bytes of buf as the main file, called name in messages (no NUL
 * needed). flags 0 behaves as cfg_load(). CFG_LOAD_DRY parses and validates without side
 * effects, for the fuzzer (tests/fuzz/fuzz_cfg.c): `include` is an error, host names are
 * not resolved (each stands for 192.0.2.1), access logs and cache stores are not opened;
 * the files that directives read (certificates, sets, pages, password files) are still
 * read. A dry generation is for inspection only, never for serving.
 */
#define CFG_LOAD_DRY 0x1u
struct cfg *cfg_load_buffer(const char *name, const char *buf, size_t len, unsigned int flags,
                            char **err);
void cfg_ref(struct cfg *cfg);
void cfg_unref(struct cfg *cfg);

/*
 * The i-th entry of the directive tables, for tests that check names are unique per
 * context and documented: its name, and in *contexts a bitmask of the contexts it is
 * allowed in (1 main, 2 upstream, 4 server, 8 admin, 16 cache). NULL past the last entry.
 */
const char *cfg_directive_at(size_t i, unsigned int *contexts);

/*
 * The hash of hash keys and of ring points (FNV-1a with a murmur3 finalizer), shared so
 * that both sides of the ring agree. h is the seed: CFG_HASH_SEED for a fresh hash.
 */
#define CFG_HASH_SEED 2166136261u
uint32_t cfg_hash(const void *p, size_t n, uint32_t h);

/* out = the address ip (AF_INET or AF_INET6; its port ignored) at port, with its text. */
void cfg_addr_from_ip(struct cfg_addr *out, const struct sockaddr_storage *ip, uint16_t port);

/* Value parsers shared with tests: return 0, or -1 with *err set (malloc'd). */
int cfg_parse_size(const char *s, uint64_t *out, char **err);
int cfg_parse_duration(const char *s, uint32_t *ms_out, char **err);

#endif /* PROXYD_CFG_H */
