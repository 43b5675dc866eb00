/*
 * discover.c - filling the slots of `server NAME:PORT resolve` from DNS. See discover.h.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <netinet/in.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "discover.h"
#include "log.h"
#include "resolve.h"
#include "upstream.h"

/* Retry sooner than valid= after a failed lookup. */
#define DISCOVER_RETRY_MS 1000
/* Records with a shorter TTL are still looked up at most this often (unless valid= is). */
#define DISCOVER_MIN_MS 1000
/* A replaced address is freed this long after it left its slot. */
#define DISCOVER_RETIRE_MS 60000

/* One resolve server line: CFG_RESOLVE_SLOTS consecutive peers of an upstream. */
struct dgroup {
	struct discover *d;
	struct cfg_upstream *u;
	struct cfg_peer *slots; /* CFG_RESOLVE_SLOTS peers */
	struct event *timer;
	struct resolve_req *req;
};

struct discover {
	struct event_base *base;
	struct resolver *r;
	struct cfg *cfg; /* a reference */
	struct dgroup *groups;
	size_t ngroups;
};

static void discover_timercb(evutil_socket_t fd, short what, void *arg);

static int
addr_same_ip(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return 0;
	if (a->ss_family == AF_INET)
		return memcmp(&((const struct sockaddr_in *)(const void *)a)->sin_addr,
		              &((const struct sockaddr_in *)(const void *)b)->sin_addr,
		              sizeof(struct in_addr)) == 0;
	return memcmp(&((const struct sockaddr_in6 *)(const void *)a)->sin6_addr,
	              &((const struct sockaddr_in6 *)(const void *)b)->sin6_addr,
	              sizeof(struct in6_addr)) == 0;
}

/* Free addresses retired long enough ago (all of them when all is set). */
static void
discover_reap(struct cfg_upstream *u, int64_t now)
{
	struct cfg_dynaddr **pp = &u->dyn, *a;

	while ((a = *pp) != NULL) {
		if (a->retired_ms != 0 && now - a->retired_ms >= DISCOVER_RETIRE_MS) {
			*pp = a->next;
			free(a);
		} else {
			pp = &a->next;
		}
	}
}

static struct cfg_dynaddr *
dyn_of(struct cfg_addr *a)
{
	/* addr is the first member of struct cfg_dynaddr */
	return (struct cfg_dynaddr *)(void *)a;
}

/* Put ips[0..n) into g's slots; returns whether anything changed. */
static int
discover_apply(struct dgroup *g, const struct sockaddr_storage *ips, size_t n)
{
	int used[RESOLVE_MAX_ADDRS] = {0}, changed = 0;
	int64_t now = up_now_ms();

	if (n > CFG_RESOLVE_SLOTS)
		n = CFG_RESOLVE_SLOTS;
	for (unsigned i = 0; i < CFG_RESOLVE_SLOTS; i++) {
		struct cfg_peer *p = &g->slots[i];
		struct cfg_addr *cur = cfg_peer_addr(p);
		size_t k;

		if (cur == NULL)
			continue;
		for (k = 0; k < n; k++)
			if (!used[k] && addr_same_ip(&cur->ss, &ips[k]))
				break;
		if (k < n) {
			used[k] = 1;
			continue;
		}
		atomic_store_explicit(&p->cur_addr, NULL, memory_order_release);
		dyn_of(cur)->retired_ms = now;
		changed = 1;
	}
	for (size_t k = 0; k < n; k++) {
		if (used[k])
			continue;
		for (unsigned i = 0; i < CFG_RESOLVE_SLOTS; i++) {
			struct cfg_peer *p = &g->slots[i];
			struct cfg_dynaddr *a;

			if (cfg_peer_addr(p) != NULL)
				continue;
			if ((a = calloc(1, sizeof(*a))) == NULL) {
				log_warnx("discover: out of memory");
				return changed;
			}
			cfg_addr_from_ip(&a->addr, &ips[k], p->port);
			a->next = g->u->dyn;
			g->u->dyn = a;
			/* a new server: no failures, no slow start, full weight */
			atomic_store(&p->fails, 0);
			atomic_store(&p->down_until_ms, 0);
			atomic_store(&p->recovered_ms, 0);
			atomic_store(&p->health_down, 0);
			atomic_store(&p->ewma_us, 0);
			atomic_store_explicit(&p->cur_addr, &a->addr, memory_order_release);
			changed = 1;
			break;
		}
	}
	discover_reap(g->u, now);
	return changed;
}

static void
discover_log(const struct dgroup *g)
{
	char list[512];
	size_t off = 0;

	list[0] = '\0';
	for (unsigned i = 0; i < CFG_RESOLVE_SLOTS; i++) {
		const struct cfg_addr *a = cfg_peer_addr(&g->slots[i]);
		int k;

		if (a == NULL)
			continue;
		k = snprintf(list + off, sizeof(list) - off, "%s%s", off ? ", " : "", a->text);
		if (k < 0 || (size_t)k >= sizeof(list) - off)
			break;
		off += (size_t)k;
	}
	if (off == 0)
		log_notice("upstream \"%s\": server %s resolve: no addresses", g->u->name,
		           g->slots[0].name);
	else
		log_notice("upstream \"%s\": server %s resolve: %s", g->u->name, g->slots[0].name,
		           list);
}

static void
discover_schedule(struct dgroup *g, uint32_t ms)
{
	struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};

	evtimer_add(g->timer, &tv);
}

static void
discover_answer(enum resolve_status st, const struct resolve_answer *ans, void *arg)
{
	struct dgroup *g = arg;
	uint32_t valid = g->d->cfg->resolver.valid_ms;

	g->req = NULL;
	if (st == RESOLVE_OK) {
		/* again when the records expire, within valid=, not more than once a second */
		uint32_t next = ans->ttl_ms < valid ? ans->ttl_ms : valid;
		uint32_t floor = DISCOVER_MIN_MS < valid ? DISCOVER_MIN_MS : valid;

		if (discover_apply(g, ans->addr, ans->n))
			discover_log(g);
		discover_schedule(g, next > floor ? next : floor);
	} else if (st == RESOLVE_NONAME) {
		if (discover_apply(g, NULL, 0))
			discover_log(g);
		discover_schedule(g, valid);
	} else {
		log_warnx("upstream \"%s\": server %s resolve: %s; keeping the addresses in use",
		          g->u->name, g->slots[0].name, resolve_strerror(st));
		discover_schedule(g, DISCOVER_RETRY_MS < valid ? DISCOVER_RETRY_MS : valid);
	}
}

static void
discover_timercb(evutil_socket_t fd, short what, void *arg)
{
	struct dgroup *g = arg;

	(void)fd;
	(void)what;
	if (g->req != NULL)
		return;
	if ((g->req = resolve_start(g->d->r, g->slots[0].host, discover_answer, g)) == NULL)
		discover_schedule(g, DISCOVER_RETRY_MS);
}

/* The addresses prev had for the same upstream and server line, copied into g. */
static void
discover_seed(struct dgroup *g, const struct cfg *prev)
{
	struct sockaddr_storage ips[CFG_RESOLVE_SLOTS];
	size_t n = 0;

	if (prev == NULL)
		return;
	for (size_t i = 0; i < prev->nupstreams; i++) {
		const struct cfg_upstream *pu = &prev->upstreams[i];

		if (strcmp(pu->name, g->u->name) != 0)
			continue;
		for (size_t j = 0; j < pu->npeers; j++) {
			const struct cfg_peer *pp = &pu->peers[j];
			const struct cfg_addr *a;

			if (!(pp->flags & CFG_PEER_RESOLVE) ||
			    strcmp(pp->name, g->slots[0].name) != 0 ||
			    (a = cfg_peer_addr(pp)) == NULL || n == CFG_RESOLVE_SLOTS)
				continue;
			ips[n] = a->ss;
			n++;
		}
	}
	if (n > 0)
		discover_apply(g, ips, n);
}

struct discover *
discover_start(struct event_base *base, struct resolver *r, struct cfg *cfg, const struct cfg *prev)
{
	struct discover *d;
	size_t n = 0;

	if (r == NULL)
		return NULL;
	for (size_t i = 0; i < cfg->nupstreams; i++)
		for (size_t j = 0; j < cfg->upstreams[i].npeers; j++)
			if ((cfg->upstreams[i].peers[j].flags & CFG_PEER_RESOLVE) &&
			    cfg->upstreams[i].peers[j].slot == 0)
				n++;
	if (n == 0)
		return NULL;
	if ((d = calloc(1, sizeof(*d))) == NULL ||
	    (d->groups = calloc(n, sizeof(*d->groups))) == NULL) {
		free(d);
		log_warnx("discover: out of memory");
		return NULL;
	}
	d->base = base;
	d->r = r;
	d->cfg = cfg;
	cfg_ref(cfg);
	for (size_t i = 0; i < cfg->nupstreams; i++) {
		struct cfg_upstream *u = &cfg->upstreams[i];

		for (size_t j = 0; j < u->npeers; j++) {
			struct dgroup *g;

			if (!(u->peers[j].flags & CFG_PEER_RESOLVE) || u->peers[j].slot != 0)
				continue;
			g = &d->groups[d->ngroups++];
			g->d = d;
			g->u = u;
			g->slots = &u->peers[j];
			if ((g->timer = evtimer_new(base, discover_timercb, g)) == NULL) {
				log_warnx("discover: out of memory");
				continue;
			}
			discover_seed(g, prev);
			discover_schedule(g, 0);
		}
	}
	return d;
}

void
discover_stop(struct discover *d)
{
	if (d == NULL)
		return;
	for (size_t i = 0; i < d->ngroups; i++) {
		if (d->groups[i].req != NULL)
			resolve_cancel(d->groups[i].req);
		if (d->groups[i].timer != NULL)
			event_free(d->groups[i].timer);
	}
	free(d->groups);
	cfg_unref(d->cfg);
	free(d);
}
