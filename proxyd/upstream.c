#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "log.h"
#include "upstream.h"

int64_t
up_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
up_tried(struct cfg_peer *p, struct cfg_peer *const *tried, int ntried)
{
	for (int i = 0; i < ntried; i++)
		if (tried[i] == p)
			return 1;
	return 0;
}

struct cfg_peer *
up_pick(struct cfg_upstream *u, struct cfg_peer *const *tried, int ntried, int64_t now_ms)
{
	struct cfg_peer *best = NULL;
	int total = 0;

	pthread_mutex_lock(&u->lock);
	for (size_t i = 0; i < u->npeers; i++) {
		struct cfg_peer *p = &u->peers[i];

		if (up_tried(p, tried, ntried))
			continue;
		if (atomic_load_explicit(&p->down_until_ms, memory_order_relaxed) > now_ms)
			continue;
		p->cur_weight += p->weight;
		total += p->weight;
		if (best == NULL || p->cur_weight > best->cur_weight)
			best = p;
	}
	if (best != NULL)
		best->cur_weight -= total;
	pthread_mutex_unlock(&u->lock);
	return best;
}

void
up_note_live(struct cfg_upstream *u, int live)
{
	if (live) {
		if (atomic_load_explicit(&u->all_down, memory_order_relaxed) &&
		    atomic_exchange(&u->all_down, 0))
			log_notice("upstream \"%s\": a peer is live again", u->name);
	} else if (!atomic_exchange(&u->all_down, 1)) {
		log_warnx("upstream \"%s\": no live peers, answering 503", u->name);
	}
}

int
up_retry_after(const struct cfg_upstream *u, int64_t now_ms)
{
	int64_t first = INT64_MAX;

	for (size_t i = 0; i < u->npeers; i++) {
		int64_t t = atomic_load_explicit(&u->peers[i].down_until_ms, memory_order_relaxed);

		if (t > now_ms && t < first)
			first = t;
	}
	if (first == INT64_MAX)
		return 1;
	return (int)((first - now_ms + 999) / 1000);
}

void
up_peer_failed(const struct cfg_upstream *u, struct cfg_peer *p, int64_t now_ms)
{
	if (u->npeers < 2 || p->max_fails == 0)
		return;
	int64_t start = atomic_load(&p->fail_window_ms);
	if (now_ms - start > (int64_t)p->fail_timeout_ms) {
		/* A new window; losing a concurrent increment here only delays marking. */
		atomic_store(&p->fail_window_ms, now_ms);
		atomic_store(&p->fails, 0);
	}
	if (atomic_fetch_add(&p->fails, 1) + 1 >= p->max_fails) {
		atomic_store(&p->down_until_ms, now_ms + p->fail_timeout_ms);
		atomic_store(&p->fails, 0);
		log_warnx("upstream \"%s\": peer %s marked down for %ums", u->name, p->addr.text,
		          p->fail_timeout_ms);
	}
}

void
up_peer_ok(struct cfg_peer *p)
{
	if (atomic_load_explicit(&p->fails, memory_order_relaxed) != 0)
		atomic_store(&p->fails, 0);
}

void
up_pool_init(struct up_pool *pool)
{
	TAILQ_INIT(&pool->idle);
	TAILQ_INIT(&pool->spare);
	pool->count = 0;
}

/* Unlink c from the idle list and keep the entry for the next up_pool_put(). */
static void
up_idle_unlink(struct up_idle *c)
{
	TAILQ_REMOVE(&c->pool->idle, c, link);
	c->pool->count--;
	TAILQ_INSERT_HEAD(&c->pool->spare, c, link);
}

static void
up_idle_free(struct up_idle *c)
{
	bufferevent_free(c->bev);
	up_idle_unlink(c);
}

void
up_pool_clear(struct up_pool *pool)
{
	struct up_idle *c;

	while ((c = TAILQ_FIRST(&pool->idle)) != NULL)
		up_idle_free(c);
	while ((c = TAILQ_FIRST(&pool->spare)) != NULL) {
		TAILQ_REMOVE(&pool->spare, c, link);
		free(c);
	}
}

static int
up_addr_eq(const struct cfg_addr *a, const struct cfg_addr *b)
{
	return a->len == b->len && memcmp(&a->ss, &b->ss, a->len) == 0;
}

struct bufferevent *
up_pool_get(struct up_pool *pool, const struct cfg_addr *addr, int *requests)
{
	struct up_idle *c;

	TAILQ_FOREACH (c, &pool->idle, link) {
		if (!up_addr_eq(&c->addr, addr))
			continue;
		struct bufferevent *bev = c->bev;

		*requests = c->requests;
		up_idle_unlink(c);
		/* reading stays enabled: the session takes it over as it is */
		bufferevent_setcb(bev, NULL, NULL, NULL, NULL);
		return bev;
	}
	return NULL;
}

/* An idle connection must stay silent: data, EOF, error or timeout all end it. */
static void
up_idle_readcb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	up_idle_free(arg);
}

static void
up_idle_eventcb(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	(void)what;
	up_idle_free(arg);
}

void
up_pool_put(struct up_pool *pool, struct bufferevent *bev, const struct cfg_upstream *u,
            const struct cfg_addr *addr, int requests)
{
	struct up_idle *c, *oldest = NULL;
	int n = 0;

	/* the per-upstream cap can only be reached when the whole pool is that large */
	if (pool->count >= (unsigned)u->keepalive) {
		TAILQ_FOREACH (c, &pool->idle, link) {
			if (c->u == u || strncmp(c->upstream, u->name, sizeof(c->upstream)) == 0) {
				n++;
				oldest = c;
			}
		}
	}
	if (u->keepalive_timeout_ms == 0) {
		/* no idle lifetime: nothing is kept */
		bufferevent_free(bev);
		return;
	}
	if (n >= u->keepalive && oldest != NULL)
		up_idle_free(oldest);
	if ((c = TAILQ_FIRST(&pool->spare)) != NULL)
		TAILQ_REMOVE(&pool->spare, c, link);
	else if ((c = calloc(1, sizeof(*c))) == NULL) {
		bufferevent_free(bev);
		return;
	}
	c->pool = pool;
	c->bev = bev;
	c->addr = *addr;
	if (c->u != u) {
		c->u = u;
		snprintf(c->upstream, sizeof(c->upstream), "%s", u->name);
	}
	c->requests = requests;
	TAILQ_INSERT_HEAD(&pool->idle, c, link);
	pool->count++;

	struct timeval tv = {u->keepalive_timeout_ms / 1000,
	                     (u->keepalive_timeout_ms % 1000) * 1000};
	bufferevent_setcb(bev, up_idle_readcb, NULL, up_idle_eventcb, c);
	bufferevent_set_timeouts(bev, &tv, NULL);
	bufferevent_disable(bev, EV_WRITE); /* the next user writes directly (bev_flush) */
	bufferevent_enable(bev, EV_READ);
}
