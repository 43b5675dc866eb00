/*
 * resolve.c - per-worker asynchronous resolver: evdns_getaddrinfo() behind a small cache
 * that also merges concurrent lookups of one name. See resolve.h for the contract.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <netinet/in.h>
#include <sys/queue.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>

#include "log.h"
#include "resolve.h"
#include "upstream.h"

#define RESOLVE_BUCKETS 1024 /* power of two */

struct resolve_req {
	TAILQ_ENTRY(resolve_req) link;
	struct rentry *e;
	resolve_cb cb;
	void *arg;
};
TAILQ_HEAD(req_list, resolve_req);

struct rentry {
	LIST_ENTRY(rentry) hlink;
	TAILQ_ENTRY(rentry) lru; /* least recently stored first */
	struct resolver *r;
	uint32_t hash;
	char name[RESOLVE_NAME_MAX + 1];
	int64_t expires_ms; /* answer valid until; 0 while the first lookup runs */
	enum resolve_status st;
	struct resolve_answer ans;
	struct evdns_getaddrinfo_request *q; /* the lookup in flight, or NULL */
	int querying;                        /* a lookup callback is still to come */
	struct req_list waiters;
	struct event *deliver; /* runs the waiters of an answer that came synchronously */
};
LIST_HEAD(rbucket, rentry);
TAILQ_HEAD(rentry_list, rentry);

struct resolver {
	struct event_base *base;
	struct evdns_base *dns;
	uint32_t valid_ms;
	int ipv6;
	char sig[512]; /* the settings, to notice a reload that changes them */
	struct rbucket buckets[RESOLVE_BUCKETS];
	struct rentry_list lru;
	size_t count;
	int closing;
};

static void resolve_deliver(struct rentry *e);

static void
resolver_sig(const struct cfg_resolver *rc, char *sig, size_t size)
{
	size_t off = 0;

	sig[0] = '\0';
	if (rc == NULL || rc->nns == 0) {
		snprintf(sig, size, "system");
		return;
	}
	for (size_t i = 0; i < rc->nns && off < size; i++) {
		int n = snprintf(sig + off, size - off, "%s ", rc->ns[i].text);
		if (n < 0)
			break;
		off += (size_t)n;
	}
	if (off < size)
		snprintf(sig + off, size - off, "t%u", rc->timeout_ms);
}

static int
resolver_setup(struct resolver *r, const struct cfg_resolver *rc, char **err)
{
	char num[16];

	if (rc == NULL || rc->nns == 0) {
		/* name servers and options of resolv.conf; hosts; no search list */
		if (evdns_base_resolv_conf_parse(
		            r->dns, DNS_OPTION_NAMESERVERS | DNS_OPTION_MISC | DNS_OPTION_HOSTSFILE,
		            "/etc/resolv.conf") != 0)
			evdns_base_load_hosts(r->dns, NULL);
	} else {
		for (size_t i = 0; i < rc->nns; i++) {
			if (evdns_base_nameserver_sockaddr_add(
			            r->dns, (const struct sockaddr *)&rc->ns[i].ss, rc->ns[i].len,
			            0) != 0) {
				if (err != NULL && asprintf(err, "cannot use name server %s",
				                            rc->ns[i].text) == -1)
					*err = NULL;
				return -1;
			}
		}
		evdns_base_load_hosts(r->dns, NULL);
	}
	if (rc != NULL && rc->timeout_ms > 0) {
		/* evdns takes seconds (fractions allowed) per attempt */
		snprintf(num, sizeof(num), "%u.%03u", rc->timeout_ms / 1000, rc->timeout_ms % 1000);
		evdns_base_set_option(r->dns, "timeout:", num);
		evdns_base_set_option(r->dns, "attempts:", "2");
	}
	r->valid_ms = rc != NULL && rc->valid_ms > 0 ? rc->valid_ms : CFG_DEF_RESOLVER_VALID;
	r->ipv6 = rc != NULL ? rc->ipv6 : 1;
	resolver_sig(rc, r->sig, sizeof(r->sig));
	return 0;
}

struct resolver *
resolver_new(struct event_base *base, const struct cfg_resolver *rc, char **err)
{
	struct resolver *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return NULL;
	r->base = base;
	TAILQ_INIT(&r->lru);
	for (size_t i = 0; i < RESOLVE_BUCKETS; i++)
		LIST_INIT(&r->buckets[i]);
	if ((r->dns = evdns_base_new(base, 0)) == NULL || resolver_setup(r, rc, err) == -1) {
		if (r->dns != NULL)
			evdns_base_free(r->dns, 0);
		free(r);
		return NULL;
	}
	return r;
}

static void
rentry_free(struct rentry *e)
{
	struct resolver *r = e->r;

	LIST_REMOVE(e, hlink);
	TAILQ_REMOVE(&r->lru, e, lru);
	r->count--;
	if (e->deliver != NULL)
		event_free(e->deliver);
	free(e);
}

/* Drop every answer that is not waited for; lookups in flight finish normally. */
static void
resolver_flush(struct resolver *r)
{
	struct rentry *e, *next;

	for (e = TAILQ_FIRST(&r->lru); e != NULL; e = next) {
		next = TAILQ_NEXT(e, lru);
		if (!e->querying && TAILQ_EMPTY(&e->waiters))
			rentry_free(e);
		else
			e->expires_ms = 1; /* stale once answered */
	}
}

void
resolver_configure(struct resolver *r, const struct cfg_resolver *rc)
{
	char sig[sizeof(r->sig)];

	resolver_sig(rc, sig, sizeof(sig));
	r->valid_ms = rc != NULL && rc->valid_ms > 0 ? rc->valid_ms : CFG_DEF_RESOLVER_VALID;
	r->ipv6 = rc != NULL ? rc->ipv6 : 1;
	if (strcmp(sig, r->sig) == 0)
		return;
	evdns_base_clear_nameservers_and_suspend(r->dns);
	if (resolver_setup(r, rc, NULL) == -1)
		log_warnx("resolver: cannot apply the new name servers; keeping none");
	evdns_base_resume(r->dns);
	resolver_flush(r);
}

void
resolver_free(struct resolver *r)
{
	struct rentry *e;
	struct resolve_req *q;

	if (r == NULL)
		return;
	r->closing = 1;
	TAILQ_FOREACH (e, &r->lru, lru) {
		while ((q = TAILQ_FIRST(&e->waiters)) != NULL) {
			TAILQ_REMOVE(&e->waiters, q, link);
			free(q);
		}
		if (e->q != NULL)
			evdns_getaddrinfo_cancel(e->q);
	}
	/* canceled lookups report back through deferred callbacks; let them run */
	for (int i = 0; i < 10; i++) {
		int busy = 0;

		TAILQ_FOREACH (e, &r->lru, lru)
			busy |= e->querying;
		if (!busy)
			break;
		event_base_loop(r->base, EVLOOP_NONBLOCK);
	}
	while ((e = TAILQ_FIRST(&r->lru)) != NULL)
		rentry_free(e);
	evdns_base_free(r->dns, 0);
	free(r);
}

/* Lower-case name without a trailing dot into out; -1 when empty or too long. */
static int
resolve_norm(const char *name, char *out, uint32_t *hash)
{
	size_t n = strlen(name);

	if (n > 0 && name[n - 1] == '.')
		n--;
	if (n == 0 || n > RESOLVE_NAME_MAX)
		return -1;
	for (size_t i = 0; i < n; i++)
		out[i] = (char)tolower((unsigned char)name[i]);
	out[n] = '\0';
	*hash = cfg_hash(out, n, CFG_HASH_SEED);
	return 0;
}

static struct rentry *
resolve_find(struct resolver *r, const char *norm, uint32_t hash)
{
	struct rentry *e;

	LIST_FOREACH (e, &r->buckets[hash & (RESOLVE_BUCKETS - 1)], hlink)
		if (e->hash == hash && strcmp(e->name, norm) == 0)
			return e;
	return NULL;
}

enum resolve_status
resolve_cached(struct resolver *r, const char *name, struct resolve_answer *ans)
{
	char norm[RESOLVE_NAME_MAX + 1];
	uint32_t hash;
	struct rentry *e;

	if (resolve_norm(name, norm, &hash) == -1)
		return RESOLVE_NONAME;
	if ((e = resolve_find(r, norm, hash)) == NULL || e->expires_ms <= up_now_ms())
		return RESOLVE_MISS;
	if (e->st == RESOLVE_OK)
		*ans = e->ans;
	return e->st;
}

static void
resolve_gai_cb(int result, struct evutil_addrinfo *res, void *arg)
{
	struct rentry *e = arg;
	struct resolver *r = e->r;
	int64_t now = up_now_ms();

	e->q = NULL;
	e->querying = 0;
	if (r->closing || result == EVUTIL_EAI_CANCEL) {
		if (res != NULL)
			evutil_freeaddrinfo(res);
		return;
	}
	e->ans.n = 0;
	if (result == 0) {
		/* IPv4 first: what most origins serve best, and what loopback tests use */
		for (int pass = 0; pass < 2; pass++) {
			for (struct evutil_addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
				int fam = pass == 0 ? AF_INET : AF_INET6;

				if (ai->ai_family != fam || e->ans.n == RESOLVE_MAX_ADDRS ||
				    ai->ai_addrlen > sizeof(e->ans.addr[0]))
					continue;
				memset(&e->ans.addr[e->ans.n], 0, sizeof(e->ans.addr[0]));
				memcpy(&e->ans.addr[e->ans.n], ai->ai_addr, ai->ai_addrlen);
				e->ans.n++;
			}
		}
	}
	if (res != NULL)
		evutil_freeaddrinfo(res);
	if (e->ans.n > 0) {
		e->st = RESOLVE_OK;
		e->expires_ms = now + r->valid_ms;
	} else if (result == 0 || result == EVUTIL_EAI_NONAME || result == EVUTIL_EAI_NODATA) {
		e->st = RESOLVE_NONAME;
		e->expires_ms = now + (r->valid_ms < RESOLVE_NEG_MS ? r->valid_ms : RESOLVE_NEG_MS);
	} else {
		log_info("resolver: %s: %s", e->name, evutil_gai_strerror(result));
		e->st = RESOLVE_FAILED;
		e->expires_ms = 0; /* not cached */
	}
	/*
	 * From the event loop: evdns may answer inside evdns_getaddrinfo() itself (hosts,
	 * numeric names), and callers are promised a later callback.
	 */
	event_active(e->deliver, EV_TIMEOUT, 0);
}

static void
resolve_deliver(struct rentry *e)
{
	struct resolve_req *q;

	while ((q = TAILQ_FIRST(&e->waiters)) != NULL) {
		TAILQ_REMOVE(&e->waiters, q, link);
		resolve_cb cb = q->cb;
		void *arg = q->arg;

		free(q);
		/* the callback may start or cancel other lookups, even of this name */
		cb(e->st, e->st == RESOLVE_OK ? &e->ans : NULL, arg);
	}
	if (e->st == RESOLVE_FAILED && !e->querying)
		rentry_free(e);
}

static void
resolve_deliver_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	resolve_deliver(arg);
}

/* Make room for one more entry: an expired idle one, else the oldest idle one. */
static void
resolve_evict(struct resolver *r)
{
	struct rentry *e, *oldest = NULL;
	int64_t now = up_now_ms();
	int looked = 0;

	TAILQ_FOREACH (e, &r->lru, lru) {
		if (e->querying || !TAILQ_EMPTY(&e->waiters))
			continue;
		if (oldest == NULL)
			oldest = e;
		if (e->expires_ms <= now) {
			rentry_free(e);
			return;
		}
		if (++looked == 64)
			break;
	}
	if (oldest != NULL)
		rentry_free(oldest);
}

struct resolve_req *
resolve_start(struct resolver *r, const char *name, resolve_cb cb, void *arg)
{
	char norm[RESOLVE_NAME_MAX + 1];
	uint32_t hash;
	struct rentry *e;
	struct resolve_req *q;

	if (resolve_norm(name, norm, &hash) == -1)
		return NULL;
	if ((q = calloc(1, sizeof(*q))) == NULL)
		return NULL;
	q->cb = cb;
	q->arg = arg;
	if ((e = resolve_find(r, norm, hash)) == NULL) {
		if (r->count >= RESOLVE_CACHE_MAX)
			resolve_evict(r);
		if ((e = calloc(1, sizeof(*e))) == NULL) {
			free(q);
			return NULL;
		}
		e->r = r;
		e->hash = hash;
		memcpy(e->name, norm, strlen(norm) + 1);
		TAILQ_INIT(&e->waiters);
		LIST_INSERT_HEAD(&r->buckets[hash & (RESOLVE_BUCKETS - 1)], e, hlink);
		TAILQ_INSERT_TAIL(&r->lru, e, lru);
		r->count++;
	}
	q->e = e;
	TAILQ_INSERT_TAIL(&e->waiters, q, link);
	if (e->querying)
		return q; /* merged with the lookup in flight */

	if (e->deliver == NULL &&
	    (e->deliver = evtimer_new(r->base, resolve_deliver_cb, e)) == NULL) {
		TAILQ_REMOVE(&e->waiters, q, link);
		free(q);
		return NULL;
	}
	struct evutil_addrinfo hints;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = r->ipv6 ? AF_UNSPEC : AF_INET;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	/* a fresh answer goes to the back of the eviction order */
	TAILQ_REMOVE(&r->lru, e, lru);
	TAILQ_INSERT_TAIL(&r->lru, e, lru);
	e->querying = 1;
	e->q = evdns_getaddrinfo(r->dns, e->name, NULL, &hints, resolve_gai_cb, e);
	return q;
}

void
resolve_cancel(struct resolve_req *q)
{
	TAILQ_REMOVE(&q->e->waiters, q, link);
	free(q);
}

const char *
resolve_strerror(enum resolve_status st)
{
	switch (st) {
	case RESOLVE_OK:
		return "resolved";
	case RESOLVE_MISS:
		return "not cached";
	case RESOLVE_NONAME:
		return "host not found";
	case RESOLVE_FAILED:
		return "name resolution failed";
	case RESOLVE_CANCELED:
		break;
	}
	return "canceled";
}
