/*
 * resolve.c - per-worker asynchronous resolver: /etc/hosts, then evdns A and AAAA queries
 * (which report the records' TTL, unlike evdns_getaddrinfo), behind a small cache that
 * also merges concurrent lookups of one name. See resolve.h for the contract.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <arpa/inet.h>
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
#define RESOLVE_HOSTS   "/etc/hosts"

/* /etc/hosts, sorted by name for bsearch; several lines for one name are merged. */
struct hosts_entry {
	char *name; /* lower case */
	struct resolve_answer ans;
};

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
	struct evdns_request *q[2]; /* the A and AAAA queries in flight, or NULL */
	int npending;               /* query callbacks still to come */
	int querying;               /* a lookup is in flight */
	int qerr[2];                /* DNS_ERR_* of each query (NODATA for none) */
	int detached; /* forgotten while asked: out of the table, freed once it answered */
	int qttl;     /* smallest TTL of the answers, seconds */
	struct resolve_answer qans[2];
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
	struct hosts_entry *hosts;
	size_t nhosts;
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
hosts_cmp(const void *a, const void *b)
{
	const struct hosts_entry *x = a, *y = b;

	return strcmp(x->name, y->name);
}

static void
hosts_free(struct hosts_entry *h, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(h[i].name);
	free(h);
}

/* Add addr to name's entry; entries are merged by name after sorting (hosts_load). */
static int
hosts_add(struct hosts_entry **h, size_t *n, size_t *cap, const char *name,
          const struct sockaddr_storage *addr)
{
	size_t len = strlen(name);

	if (len > 0 && name[len - 1] == '.')
		len--;
	if (len == 0 || len > RESOLVE_NAME_MAX)
		return 0;
	if (*n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 64;
		struct hosts_entry *nh = realloc(*h, ncap * sizeof(*nh));

		if (nh == NULL)
			return -1;
		*h = nh;
		*cap = ncap;
	}
	struct hosts_entry *e = &(*h)[*n];

	if ((e->name = malloc(len + 1)) == NULL)
		return -1;
	for (size_t i = 0; i < len; i++)
		e->name[i] = (char)tolower((unsigned char)name[i]);
	e->name[len] = '\0';
	e->ans.n = 1;
	e->ans.addr[0] = *addr;
	(*n)++;
	return 0;
}

/* Parse an address of a hosts line (port 0); -1 when it is none. */
static int
hosts_addr(const char *text, struct sockaddr_storage *ss)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)(void *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)(void *)ss;

	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, text, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, text, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		return 0;
	}
	return -1;
}

/*
 * Read path (the hosts file) into a table sorted by name (*hp, *np). A missing file is
 * an empty table; lines that do not start with an address are skipped, as the C library
 * does. Several lines naming one host give several addresses, in file order.
 */
static void
hosts_read(const char *path, struct hosts_entry **hp, size_t *np)
{
	struct hosts_entry *h = NULL;
	size_t n = 0, cap = 0, out = 0;
	char line[1024];
	FILE *f = fopen(path, "re");

	if (f != NULL) {
		while (fgets(line, sizeof(line), f) != NULL) {
			struct sockaddr_storage ss;
			char *save = NULL, *tok;

			line[strcspn(line, "#\n")] = '\0';
			if ((tok = strtok_r(line, " \t\r", &save)) == NULL ||
			    hosts_addr(tok, &ss) == -1)
				continue;
			while ((tok = strtok_r(NULL, " \t\r", &save)) != NULL)
				if (hosts_add(&h, &n, &cap, tok, &ss) == -1)
					goto done;
		}
	done:
		fclose(f);
	}
	/* stable by line: sort pairs (name, line order), then merge equal names */
	if (n > 0) {
		qsort(h, n, sizeof(*h), hosts_cmp);
		for (size_t i = 0; i < n; i++) {
			if (out > 0 && strcmp(h[out - 1].name, h[i].name) == 0) {
				struct resolve_answer *a = &h[out - 1].ans;

				if (a->n < RESOLVE_MAX_ADDRS)
					a->addr[a->n++] = h[i].ans.addr[0];
				free(h[i].name);
				continue;
			}
			h[out++] = h[i];
		}
	}
	*hp = h;
	*np = out;
}

/* /etc/hosts; builds configured with --enable-test-hooks honour PROXYD_TEST_HOSTS. */
static const char *
hosts_path(void)
{
#ifdef PROXYD_TEST_HOOKS
	const char *e = getenv("PROXYD_TEST_HOSTS");

	if (e != NULL && *e != '\0')
		return e;
#endif
	return RESOLVE_HOSTS;
}

static const struct hosts_entry *
hosts_lookup(const struct hosts_entry *h, size_t n, const char *norm)
{
	struct hosts_entry key = {.name = (char *)(uintptr_t)norm};

	return n == 0 ? NULL : bsearch(&key, h, n, sizeof(key), hosts_cmp);
}

static const struct hosts_entry *
hosts_find(const struct resolver *r, const char *norm)
{
	return hosts_lookup(r->hosts, r->nhosts, norm);
}

/* 1 when a and b (hosts entries, or NULL for none) give the same addresses. */
static int
hosts_entry_same(const struct hosts_entry *a, const struct hosts_entry *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	if (a->ans.n != b->ans.n)
		return 0;
	for (size_t i = 0; i < a->ans.n; i++) /* hosts_addr() zeroed every address */
		if (memcmp(&a->ans.addr[i], &b->ans.addr[i], sizeof(a->ans.addr[i])) != 0)
			return 0;
	return 1;
}

/* 1 when two tables give the same names the same addresses. */
static int
hosts_same(const struct hosts_entry *a, size_t na, const struct hosts_entry *b, size_t nb)
{
	if (na != nb)
		return 0;
	for (size_t i = 0; i < na; i++)
		if (strcmp(a[i].name, b[i].name) != 0 || !hosts_entry_same(&a[i], &b[i]))
			return 0;
	return 1;
}

static int
resolver_setup(struct resolver *r, const struct cfg_resolver *rc, char **err)
{
	char num[16];

	if (rc == NULL || rc->nns == 0) {
		/* name servers and options of resolv.conf; no search list */
		(void)evdns_base_resolv_conf_parse(r->dns, DNS_OPTION_NAMESERVERS | DNS_OPTION_MISC,
		                                   "/etc/resolv.conf");
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
	hosts_read(hosts_path(), &r->hosts, &r->nhosts);
	return r;
}

static void
rentry_free(struct rentry *e)
{
	struct resolver *r = e->r;

	if (!e->detached)
		LIST_REMOVE(e, hlink);
	TAILQ_REMOVE(&r->lru, e, lru);
	r->count--;
	if (e->deliver != NULL)
		event_free(e->deliver);
	free(e);
}

/*
 * Forget e's answer. A lookup in flight finishes and answers its waiters, but leaves the
 * table at once: a later lookup of the name starts afresh instead of joining it. An answer
 * waiting for delivery is delivered and then no longer kept.
 */
static void
rentry_forget(struct rentry *e)
{
	if (e->detached)
		return;
	if (e->querying) {
		LIST_REMOVE(e, hlink);
		e->detached = 1;
	} else if (!TAILQ_EMPTY(&e->waiters))
		e->expires_ms = 0;
	else
		rentry_free(e);
}

/* Forget every answer. */
static void
resolver_flush(struct resolver *r)
{
	struct rentry *e, *next;

	for (e = TAILQ_FIRST(&r->lru); e != NULL; e = next) {
		next = TAILQ_NEXT(e, lru);
		rentry_forget(e);
	}
}

/*
 * Read the hosts file again. When it changed, forget the cached answers of the names
 * whose hosts-file addresses differ between the old and the new table: names added
 * (their cached answer, positive or "no such name", came from DNS), removed (it came from
 * the old file) or given other addresses. Every other cached answer is what a lookup would
 * give again: a name in neither table is DNS's business, one with the same addresses would
 * be answered the same. Emptying the whole cache would be simpler but costs every worker a
 * burst of DNS queries for names the edit did not touch, on an edit that is often one
 * line; this costs two binary searches per cached name (at most RESOLVE_CACHE_MAX), and
 * only on a reload that changed the file.
 */
static void
resolver_hosts_reload(struct resolver *r)
{
	struct hosts_entry *old = r->hosts;
	size_t nold = r->nhosts, dropped = 0;
	struct rentry *e, *next;
	const char *path = hosts_path();

	hosts_read(path, &r->hosts, &r->nhosts);
	if (hosts_same(old, nold, r->hosts, r->nhosts)) {
		hosts_free(old, nold);
		return;
	}
	for (e = TAILQ_FIRST(&r->lru); e != NULL; e = next) {
		next = TAILQ_NEXT(e, lru);
		if (hosts_entry_same(hosts_lookup(old, nold, e->name), hosts_find(r, e->name)))
			continue;
		rentry_forget(e);
		dropped++;
	}
	hosts_free(old, nold);
	log_info("resolver: %s changed; %zu cached name(s) forgotten", path, dropped);
}

void
resolver_configure(struct resolver *r, const struct cfg_resolver *rc)
{
	char sig[sizeof(r->sig)];
	uint32_t valid_ms = rc != NULL && rc->valid_ms > 0 ? rc->valid_ms : CFG_DEF_RESOLVER_VALID;
	int ipv6 = rc != NULL ? rc->ipv6 : 1;
	/*
	 * Answers cached under the old settings: with ipv6= changed they hold the wrong
	 * families (no AAAA records, or AAAA records that must no longer be used); with a
	 * shorter valid= they would outlive it. A longer valid= leaves them right, only kept
	 * for less than they could be, so they stay.
	 */
	int stale = ipv6 != r->ipv6 || valid_ms < r->valid_ms;

	resolver_hosts_reload(r); /* on every reload, whether the servers changed or not */
	resolver_sig(rc, sig, sizeof(sig));
	r->valid_ms = valid_ms;
	r->ipv6 = ipv6;
	if (strcmp(sig, r->sig) == 0) {
		if (stale)
			resolver_flush(r);
		return;
	}
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
		for (int i = 0; i < 2; i++)
			if (e->q[i] != NULL)
				evdns_cancel_request(r->dns, e->q[i]);
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
	hosts_free(r->hosts, r->nhosts);
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

/* Copy the answers of one family of ans into e->ans, up to RESOLVE_MAX_ADDRS. */
static void
answer_take(struct resolve_answer *dst, const struct resolve_answer *src, int family)
{
	for (size_t i = 0; i < src->n && dst->n < RESOLVE_MAX_ADDRS; i++)
		if (src->addr[i].ss_family == family)
			dst->addr[dst->n++] = src->addr[i];
}

/* Both queries are back (or one, without IPv6): the answer, its lifetime, the waiters. */
static void
resolve_done(struct rentry *e)
{
	struct resolver *r = e->r;
	int64_t now = up_now_ms();
	int nq = e->qerr[1] == -1 ? 1 : 2, noname = 1; /* -1: no AAAA query was made */

	e->querying = 0;
	e->ans.n = 0;
	/* IPv4 first: what most origins serve best, and what loopback tests use */
	answer_take(&e->ans, &e->qans[0], AF_INET);
	answer_take(&e->ans, &e->qans[1], AF_INET6);
	for (int i = 0; i < nq; i++)
		if (e->qerr[i] != DNS_ERR_NOTEXIST && e->qerr[i] != DNS_ERR_NODATA &&
		    !(e->qerr[i] == DNS_ERR_NONE && e->qans[i].n == 0))
			noname = 0;
	if (e->ans.n > 0) {
		/* kept for the records' TTL, at most valid= */
		int64_t ttl_ms = (int64_t)(e->qttl > 0 ? e->qttl : 0) * 1000;

		e->st = RESOLVE_OK;
		e->ans.ttl_ms = (uint32_t)(ttl_ms < (int64_t)r->valid_ms ? ttl_ms : r->valid_ms);
		e->expires_ms = now + e->ans.ttl_ms;
	} else if (noname) {
		e->st = RESOLVE_NONAME;
		e->expires_ms = now + (r->valid_ms < RESOLVE_NEG_MS ? r->valid_ms : RESOLVE_NEG_MS);
	} else {
		int err = DNS_ERR_UNKNOWN;

		for (int i = nq - 1; i >= 0; i--)
			if (e->qerr[i] != DNS_ERR_NONE && e->qerr[i] != DNS_ERR_NODATA &&
			    e->qerr[i] != DNS_ERR_NOTEXIST)
				err = e->qerr[i];

		log_info("resolver: %s: %s", e->name, evdns_err_to_string(err));
		e->st = RESOLVE_FAILED;
		e->expires_ms = 0; /* not cached */
	}
	/* from the event loop: callers are promised a later callback */
	event_active(e->deliver, EV_TIMEOUT, 0);
}

static void
resolve_query_cb(struct rentry *e, int i, int result, char type, int count, int ttl,
                 const void *addresses)
{
	struct resolve_answer *a = &e->qans[i];

	e->q[i] = NULL;
	e->qerr[i] = result == DNS_ERR_NONE && count <= 0 ? DNS_ERR_NODATA : result;
	if (result == DNS_ERR_NONE && count > 0) {
		for (int k = 0; k < count && a->n < RESOLVE_MAX_ADDRS; k++) {
			struct sockaddr_storage *ss = &a->addr[a->n];

			memset(ss, 0, sizeof(*ss));
			if (type == DNS_IPv4_A) {
				struct sockaddr_in *sin = (struct sockaddr_in *)(void *)ss;

				sin->sin_family = AF_INET;
				memcpy(&sin->sin_addr, (const char *)addresses + 4 * (size_t)k, 4);
			} else if (type == DNS_IPv6_AAAA) {
				struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)(void *)ss;

				sin6->sin6_family = AF_INET6;
				memcpy(&sin6->sin6_addr, (const char *)addresses + 16 * (size_t)k,
				       16);
			} else
				continue;
			a->n++;
		}
		if (a->n > 0 && (e->qttl < 0 || ttl < e->qttl))
			e->qttl = ttl < 0 ? 0 : ttl;
	}
	if (--e->npending > 0)
		return;
	if (e->r->closing || result == DNS_ERR_CANCEL || result == DNS_ERR_SHUTDOWN) {
		e->querying = 0;
		return;
	}
	resolve_done(e);
}

static void
resolve_a_cb(int result, char type, int count, int ttl, void *addresses, void *arg)
{
	resolve_query_cb(arg, 0, result, type, count, ttl, addresses);
}

static void
resolve_aaaa_cb(int result, char type, int count, int ttl, void *addresses, void *arg)
{
	resolve_query_cb(arg, 1, result, type, count, ttl, addresses);
}

/* A numeric name or one in /etc/hosts: answered without a query. 0 when it is neither. */
static int
resolve_local(struct rentry *e)
{
	struct resolver *r = e->r;
	struct resolve_answer all = {0};
	const struct hosts_entry *h;

	if (hosts_addr(e->name, &all.addr[0]) == 0)
		all.n = 1;
	else if ((h = hosts_find(r, e->name)) != NULL)
		all = h->ans;
	else
		return 0;
	e->ans.n = 0;
	answer_take(&e->ans, &all, AF_INET);
	if (r->ipv6)
		answer_take(&e->ans, &all, AF_INET6);
	e->st = e->ans.n > 0 ? RESOLVE_OK : RESOLVE_NONAME;
	e->ans.ttl_ms = r->valid_ms;
	e->expires_ms = up_now_ms() + r->valid_ms;
	event_active(e->deliver, EV_TIMEOUT, 0);
	return 1;
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
	if ((e->st == RESOLVE_FAILED || e->detached) && !e->querying)
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
	/* a fresh answer goes to the back of the eviction order */
	TAILQ_REMOVE(&r->lru, e, lru);
	TAILQ_INSERT_TAIL(&r->lru, e, lru);
	if (resolve_local(e))
		return q;
	e->querying = 1;
	e->qttl = -1;
	memset(e->qans, 0, sizeof(e->qans));
	e->qerr[0] = e->qerr[1] = -1;
	e->npending = r->ipv6 ? 2 : 1;
	/* the callbacks run later, from evdns's deferred callbacks, even on failure */
	e->q[0] = evdns_base_resolve_ipv4(r->dns, e->name, DNS_QUERY_NO_SEARCH, resolve_a_cb, e);
	if (e->q[0] == NULL)
		e->qerr[0] = DNS_ERR_UNKNOWN, e->npending--;
	if (r->ipv6) {
		e->q[1] = evdns_base_resolve_ipv6(r->dns, e->name, DNS_QUERY_NO_SEARCH,
		                                  resolve_aaaa_cb, e);
		if (e->q[1] == NULL)
			e->qerr[1] = DNS_ERR_UNKNOWN, e->npending--;
	}
	if (e->npending == 0)
		resolve_done(e);
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
