/*
 * session_int.h - what session.c, session_cache.c and session_fwd.c share: struct session
 * and its parts, the constants and small inline helpers of the I/O path, and the functions
 * each file calls in the others. Internal to session*.c; not for other modules, which
 * include session.h only.
 *
 * Contract: a struct session is touched only by its worker's thread and freed only by
 * session_close() (session.c). session.c owns the per-request path (request head, upstream
 * connection, body pumps, response head); session_cache.c answers, stores and refreshes
 * through the cache, and session_fwd.c resolves forward-mode origins and hands sockets to a
 * tunnel (CONNECT, Upgrade). What a file here calls in another is declared below, under
 * the name of the file that defines it; everything else stays static in its file.
 */
#ifndef PROXYD_SESSION_INT_H
#define PROXYD_SESSION_INT_H

#include <assert.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/util.h>

#include "cfg.h"
#include "collapse.h"
#include "http.h"
#include "policy.h"
#include "resolve.h"
#include "session.h"
#include "store.h"
#include "upstream.h"

struct bufferevent;
struct tls_client;
struct tunnel;

#define SESSION_MAGIC 0x5e5510e5u
/* Every callback entry checks that its session is alive (catches use after free early). */
#define SESSION_CHECK(s) assert((s)->magic == SESSION_MAGIC)
/* Bytes queued towards one side before the other side is no longer read (back-pressure). */
#define RELAY_HIGH (256 * 1024)
/*
 * libevent reads at most 4 KiB per read(2) by default; bodies move in far larger steps,
 * which cuts the syscalls of a large transfer by an order of magnitude.
 */
#define IO_CHUNK (64 * 1024)
/* Largest response head accepted from an upstream. */
#define RESP_HEAD_MAX    (64 * 1024)
#define RESP_MAX_HEADERS HTTP_MAX_HEADERS

enum session_state {
	S_HEAD,     /* waiting for a request head */
	S_UPSTREAM, /* a transaction is with an upstream */
	S_CLOSING,  /* flushing the last response, then closing */
	S_LINGER,   /* output sent and write side shut; discarding input until EOF */
	S_TUNNEL,   /* CONNECT: the sockets belong to a tunnel (tunnel.h) */
};

/* Forward mode: the origin of the current request. Allocated for forward servers only. */
struct fwd {
	char host[RESOLVE_NAME_MAX + 1]; /* without an IPv6 literal's brackets */
	uint16_t port;
	int connect;    /* CONNECT: a tunnel once connected */
	char *acl_head; /* the request head, to check the access list on resolved addresses */
	size_t acl_head_len;
	struct resolve_answer ans;
	size_t next; /* the next address of ans to try */
	struct resolve_req *dns;
};

/* How a request met the cache (session.cmode); the X-Cache words, in order. */
enum {
	CMODE_NONE,
	CMODE_MISS,
	CMODE_EXPIRED,
	CMODE_BYPASS,
	CMODE_HIT,
	CMODE_REVALIDATED,
	CMODE_STALE,    /* stale-if-error, cache_use_stale: the upstream failed */
	CMODE_SWR,      /* stale-while-revalidate: served stale, this request started a refresh */
	CMODE_UPDATING, /* stale-while-revalidate: served stale while another's refresh runs */
};
/* Per CMODE_*: the X-Cache (and access log) word, and Cache-Status's fwd= when forwarded. */
struct session_cmode {
	const char *word;
	const char *fwd;
};
extern const struct session_cmode session_cmode_info[];

/* One direction of body transfer: reads framing from src, writes (re-)framed data to dst. */
struct pump {
	enum http_body kind;
	uint64_t remaining; /* HTTP_BODY_LENGTH */
	struct http_chunked ch;
	int out_chunked; /* re-encode as chunked towards dst */
	int done;
	uint64_t moved;        /* body bytes moved */
	struct cache_put *tee; /* the body is also stored (a response being cached) */
	int tee_failed;        /* the store dropped it: abort at the end */
};

struct session {
	unsigned magic;
	uint64_t id;
	TAILQ_ENTRY(session) link;
	struct session_env *env;
	struct cfg *cfg;
	const struct cfg_server *srv;
	struct bufferevent *cbev; /* client */
	struct bufferevent *ubev; /* upstream of the current transaction */
	struct event *timer;      /* head deadline, keep-alive idle, lingering close */
	char client[INET6_ADDRSTRLEN];
	struct sockaddr_storage client_ss; /* the client's address, for ip_hash */
	enum session_state state;
	unsigned nreq;        /* transactions completed */
	size_t head_scanned;  /* bytes of input already searched for the end of the head */
	size_t head_parse_at; /* re-parse an incomplete head once input reaches this */

	/* the current transaction */
	struct evbuffer *req_head; /* upstream request head, kept for a retry */
	struct evbuffer *hold;     /* a chunked response's head until its first chunk line */
	struct cfg_peer *peer;
	struct cfg_addr up_addr; /* where the upstream connection goes (a copy) */
	struct cfg_peer *tried[UP_MAX_TRIES];
	int ntried;
	int64_t up_start_ms; /* when the request went to s->peer (least_time) */
	size_t hkeylen;
	char *hkey; /* the hash key of the request; UP_KEY_MAX bytes, only for balance hash */
	int up_connecting;
	int up_reused;
	int up_requests; /* requests served before on the upstream connection */
	int up_eof;
	int up_keepalive;
	int last_timeout;        /* the last upstream failure was a timeout */
	int idempotent;          /* method idempotent, or an Idempotency-Key header (retries) */
	int req_sent;            /* some of the request body went upstream: no more retries */
	int64_t req_start_ms;    /* the first try (proxy_next_upstream_timeout) */
	size_t req_head_len;     /* bytes of the request head (metrics.h), 0 before one parsed */
	uint64_t resp_head_len;  /* bytes of response heads queued to the client (metrics.h) */
	uint64_t resp_head_held; /* of those, the head waiting in `hold` (not yet queued) */
	struct pump req, resp;
	enum http_method method;
	int minor;
	int keepalive; /* client connection stays open after this response */
	int expect100;
	int resp_started; /* response head queued to the client */
	int resp_held;    /* head (and body so far) kept in `hold` until framing is proven */
	int resp_got;     /* some response byte came from the upstream */
	int status;
	/* RFC 9209 Proxy-Status of a proxyd-generated error: error type and next hop */
	const char *perr;
	char perr_hop[RESOLVE_NAME_MAX + 8]; /* an address, or a forward origin's name */
	int retry_after;                     /* seconds, for a 503; 0: none */
	char *logreq;      /* "request-line\0referer\0user-agent\0", for the access log */
	struct fwd *fwd;   /* forward mode */
	char user[64];     /* forward mode: the authenticated user, for the access log */
	char *challenge;   /* a 407's Proxy-Authenticate value (malloc'd), or NULL */
	char *custom_body; /* the body session_error() sends instead of its own (a deny page) */
	int upgrade;       /* the request asks for a WebSocket upgrade (passed upstream) */
	int tls;           /* the client connection is TLS (listen ... tls) */
	int tls_failed;    /* it ended in a TLS error: no quiet close */
	int tls_closed;    /* close_notify sent */
	struct tls_client *up_tls; /* TLS to the current upstream connection, or NULL */
	/* cache (a server with `cache`) */
	int cmode;  /* CMODE_*: how this request met the cache */
	char *curl; /* the normalized URL (key, invalidation): curl_buf, or NULL */
	size_t curl_len;
	char *curl_buf; /* malloc'd, curl_cap bytes, kept from request to request */
	size_t curl_cap;
	struct cache_key ckey;
	int64_t creq_time;           /* when the request came (seconds), for the age */
	int64_t cage, cttl;          /* a hit: its age and remaining freshness */
	struct cache_meta *chit;     /* the entry being served, or NULL */
	uint64_t coff;               /* how much of its body is out */
	uint64_t cend;               /* where the part served ends (the length, or a range's end) */
	int cfwd_status;             /* CMODE_STALE: the upstream's failing status, 0: none */
	struct cache_put *ctee;      /* the response being stored, until its body starts */
	struct cache_meta *cstale;   /* a stale entry being revalidated with its validators */
	struct collapse_lock *clock; /* this request fetches the key for others (collapse.h) */
	struct collapse_waiter *cwait; /* this request waits for another's fetch */
	int cnolock;                   /* woken from a wait: no second wait, no lead */
	int cfound;                    /* the request's first lookup found an entry (a hit) */
	int cnostore;                  /* the lock timed out: not stored (nginx) */
	int cstale_cond; /* woken by a leader that served stale on this failure (CFG_NEXT_*) */
	int bg;          /* a background refresh: no client, see session_cache_bg() */
	struct bufferevent *bgpeer; /* bg: the other end of cbev's pair, which discards */
	struct tunnel *tunnel;      /* S_TUNNEL: CONNECT or an upgraded connection */
	int64_t tunnel_start_ms;
	uint64_t tunnel_pre_down; /* proxyd's bytes ahead of the origin's in the down pre-data */
	/* limits (session_limit.c): reset by session_enter_head() */
	int limit_checked;     /* this request went through the server's limit lines */
	const char *limit_hit; /* the zone that refused it (access log), or NULL */
	unsigned nlheld;       /* limit_conn slots this request holds */
	struct {
		struct limit_zone *zone;
		uint32_t handle;
	} lheld[CFG_MAX_LIMITS];
};

/* Session ids, shared by all workers (atomic increments). */
extern uint64_t session_ids;

/* Two-state header-name tests, case-insensitive. */
static inline int
hdr_is(const struct http_header *h, const char *name, size_t len)
{
	return h->name.len == len && http_slice_eq(h->name, name);
}
#define HDR_IS(h, lit) hdr_is((h), (lit), sizeof(lit) - 1)

/*
 * Headers that never cross the proxy as received: hop-by-hop fields (RFC 9110 7.6.1) and
 * the framing fields, which the proxy writes itself for the body it actually sends.
 */
static inline int
hdr_hop(const struct http_header *h)
{
	switch (h->name.len) {
	case 2:
		return HDR_IS(h, "te");
	case 6:
		return HDR_IS(h, "expect");
	case 7:
		return HDR_IS(h, "trailer") || HDR_IS(h, "upgrade");
	case 10:
		return HDR_IS(h, "connection") || HDR_IS(h, "keep-alive");
	case 14:
		return HDR_IS(h, "content-length");
	case 16:
		return HDR_IS(h, "proxy-connection");
	case 17:
		return HDR_IS(h, "transfer-encoding");
	case 19:
		return HDR_IS(h, "proxy-authorization");
	default:
		return 0;
	}
}

/* session.c */
void session_close(struct session *s, const char *why);
void session_error(struct session *s, int status, const char *why);
void session_fail(struct session *s, int status, const char *perr, const char *why);
void session_log_access(struct session *s);
void session_release_upstream(struct session *s, int reusable);
void session_enter_head(struct session *s);
void session_add_headers(const struct session *s, struct evbuffer *out, int status);
void session_answered(struct session *s);
void session_start_request(struct session *s, const struct http_msg *msg, const char *head);
void session_client_readcb(struct bufferevent *bev, void *arg);
void session_client_writecb(struct bufferevent *bev, void *arg);
void session_client_eventcb(struct bufferevent *bev, short what, void *arg);
void session_timercb(evutil_socket_t fd, short what, void *arg);
int session_connect_addr(struct session *s, int pooled);
int session_acl(struct session *s, const struct http_msg *msg, const struct sockaddr *dst);
/*
 * bev_flush() and fmt_u64() for the other files; session.c calls the static ones, which
 * the compiler inlines on its per-request path.
 */
void session_bev_flush(struct bufferevent *bev);
size_t session_fmt_u64(char *buf, uint64_t v, unsigned base);

/* session_cache.c */
int session_cache_lookup(struct session *s, const struct http_msg *msg);
int session_cache_key(struct session *s, const struct http_msg *msg, const char *method,
                      size_t method_len, struct cache_key *k);
void session_purge(struct session *s, const struct http_msg *msg);
int session_cache_store(struct session *s, const struct http_msg *msg, enum http_body kind);
int session_cache_put(struct session *s, const struct http_msg *msg, enum http_body kind);
int session_cache_collapse(struct session *s, const struct http_msg *msg);
int session_cache_swr(struct session *s, const struct http_msg *msg);
void session_cache_fields(const struct session *s, struct evbuffer *out, int stored);
void session_cache_pump(struct session *s);
void session_cache_revalidated(struct session *s, const struct http_msg *msg, size_t headlen);
int session_cache_stale_error(struct session *s, int cond, int status);
void session_cache_invalidate(struct session *s, const struct http_msg *resp);
void session_cache_tee_end(struct session *s, int complete);
void session_cache_unlock(struct session *s);

/* session_limit.c */
/*
 * The server's limit lines for this request (once per request). Returns 0 to go on, 1
 * when refused and answered 429. by_client: every zone keys the request by its client
 * address (a request about to be refused before it is authenticated or allowed).
 */
int session_limit(struct session *s, const struct http_msg *msg, int by_client);
void session_limit_release(struct session *s);

/* session_fwd.c */
void session_fwd_try(struct session *s);
void session_fwd_connect(struct session *s);
int session_fwd_request(struct session *s, const struct http_msg *msg);
void session_fwd_connect_failed(struct session *s, int timeout, int err);
void session_tunnel_start(struct session *s);
/* The bytes a tunnel carried from the origin to the client (its head not included). */
uint64_t session_tunnel_down(const struct session *s);
void session_upgrade_start(struct session *s, const struct http_msg *msg, size_t headlen);

#endif /* PROXYD_SESSION_INT_H */
