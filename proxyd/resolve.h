/*
 * resolve.h - asynchronous name resolution with a small per-worker cache (evdns).
 *
 * Contract: one resolver per worker thread, on that worker's event base, never shared.
 * Numeric hosts and names in /etc/hosts (read when the resolver is made and on every
 * reload; a reload that finds it changed forgets the cached answers of the names whose
 * hosts-file addresses changed, appeared or went away) answer without a query; other names are
 * asked with an A query and, unless `ipv6=off`, an AAAA query (evdns_base_resolve_ipv4/6, which
 * report the records' TTL; evdns_getaddrinfo does not). The name servers are those of the
 * `resolver` directive, else those of /etc/resolv.conf (without its search list: a proxy resolves
 * names as given).
 *
 * resolve_cached() answers from the cache without waiting; on RESOLVE_MISS the caller
 * starts resolve_start(), whose callback always runs later, from the event loop, exactly
 * once unless resolve_cancel() was called first. Concurrent lookups of one name share
 * its queries. Answers are kept for the smallest TTL of their records, at most `valid=`
 * of the resolver directive (default 30s; TTL 0 is not kept); hosts-file and numeric
 * answers for `valid=`; "no such name" and "no address" for min(valid, 5s); other
 * failures (timeouts, SERVFAIL) are not cached. At most RESOLVE_CACHE_MAX names are kept; an
 * expired or the oldest entry makes room. Names are compared without case and without a trailing
 * dot.
 */
#ifndef PROXYD_RESOLVE_H
#define PROXYD_RESOLVE_H

#include <stdint.h>
#include <sys/socket.h>

#include "cfg.h"

struct event_base;
struct resolver;
struct resolve_req;

#define RESOLVE_MAX_ADDRS 8
#define RESOLVE_CACHE_MAX 4096
#define RESOLVE_NEG_MS    5000
#define RESOLVE_NAME_MAX  253

enum resolve_status {
	RESOLVE_OK,       /* addresses in the answer */
	RESOLVE_MISS,     /* resolve_cached(): not cached, start a lookup */
	RESOLVE_NONAME,   /* the name does not exist or has no address */
	RESOLVE_FAILED,   /* the servers failed or did not answer in time */
	RESOLVE_CANCELED, /* never passed to a callback: for internal use */
};

struct resolve_answer {
	size_t n;
	uint32_t ttl_ms; /* how long it may be used: the records' TTL, at most valid= */
	struct sockaddr_storage addr[RESOLVE_MAX_ADDRS]; /* port 0 */
};

typedef void (*resolve_cb)(enum resolve_status st, const struct resolve_answer *ans, void *arg);

/* A resolver on base configured by rc (NULL: /etc/resolv.conf). NULL with *err on failure. */
struct resolver *resolver_new(struct event_base *base, const struct cfg_resolver *rc, char **err);
/*
 * Apply a reload's resolver settings (not needed right after resolver_new()): reads the
 * hosts file again; drops the whole cache when the name servers changed, `ipv6=` changed
 * or `valid=` became shorter (a longer `valid=` applies to new answers). Lookups in flight
 * that an edit or new servers make obsolete still answer their callers, but are not kept
 * and are not joined by later lookups.
 */
void resolver_configure(struct resolver *r, const struct cfg_resolver *rc);
/* Cancels every lookup (their callbacks do not run) and frees r; NULL is allowed. */
void resolver_free(struct resolver *r);

/* The cached answer for name, if any (RESOLVE_OK or RESOLVE_NONAME), else RESOLVE_MISS. */
enum resolve_status resolve_cached(struct resolver *r, const char *name,
                                   struct resolve_answer *ans);
/* Start a lookup of name; NULL when out of memory or the name is too long (logged). */
struct resolve_req *resolve_start(struct resolver *r, const char *name, resolve_cb cb, void *arg);
/* The callback of req will not run. req must not have completed. */
void resolve_cancel(struct resolve_req *req);

/* Text of a status, for logs and error pages. */
const char *resolve_strerror(enum resolve_status st);

#endif /* PROXYD_RESOLVE_H */
