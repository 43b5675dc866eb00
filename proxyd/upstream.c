#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <sys/random.h>
#include <netinet/in.h>

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

/*
 * Whether p may serve this request: not configured down, an address (resolve slots may
 * have none), in the set being considered
 * (primaries or backups), not marked down by passive health nor by the active health
 * checker (health.c), not already tried and, unless ignore_limit, below its max_conns.
 * The max_conns check is not atomic with the increment of `active` (session.c): workers
 * picking at the same moment may each pass it, so the limit may be exceeded by up to
 * workers - 1.
 */
static int
up_eligible_(const struct cfg_peer *p, unsigned backup, struct cfg_peer *const *tried, int ntried,
             int64_t now_ms, int ignore_limit)
{
	if ((p->flags & CFG_PEER_DOWN) || (p->flags & CFG_PEER_BACKUP) != backup)
		return 0;
	if ((p->flags & CFG_PEER_RESOLVE) && cfg_peer_addr(p) == NULL)
		return 0; /* a resolve slot DNS has not filled */
	if (atomic_load_explicit(&p->down_until_ms, memory_order_relaxed) > now_ms)
		return 0;
	if (atomic_load_explicit(&p->health_down, memory_order_relaxed))
		return 0;
	for (int i = 0; i < ntried; i++)
		if (tried[i] == p)
			return 0;
	if (!ignore_limit && p->max_conns > 0 &&
	    atomic_load_explicit(&p->active, memory_order_relaxed) >= p->max_conns)
		return 0;
	return 1;
}

static int
up_eligible(const struct cfg_peer *p, unsigned backup, struct cfg_peer *const *tried, int ntried,
            int64_t now_ms)
{
	return up_eligible_(p, backup, tried, ntried, now_ms, 0);
}

int
up_peers_left(const struct cfg_upstream *u, struct cfg_peer *const *tried, int ntried,
              int64_t now_ms)
{
	for (size_t i = 0; i < u->npeers; i++)
		if (up_eligible(&u->peers[i], 0, tried, ntried, now_ms) ||
		    up_eligible(&u->peers[i], CFG_PEER_BACKUP, tried, ntried, now_ms))
			return 1;
	return 0;
}

int
up_peers_limited(const struct cfg_upstream *u, struct cfg_peer *const *tried, int ntried,
                 int64_t now_ms)
{
	for (size_t i = 0; i < u->npeers; i++)
		if (up_eligible_(&u->peers[i], 0, tried, ntried, now_ms, 1) ||
		    up_eligible_(&u->peers[i], CFG_PEER_BACKUP, tried, ntried, now_ms, 1))
			return 1;
	return 0;
}

/*
 * The weight of p now: with slow_start, it ramps linearly from 1 to p->weight over
 * slow_start_ms from the moment p came back (recovered_ms); its configured weight
 * otherwise. The first caller to see a passive recovery logs it.
 */
static int
up_weight(struct cfg_peer *p, int64_t now_ms)
{
	int64_t since, rec;

	if (p->slow_start_ms == 0 || p->weight <= 1)
		return p->weight;
	rec = atomic_load_explicit(&p->recovered_ms, memory_order_relaxed);
	if (rec == 0 || (since = now_ms - rec) >= (int64_t)p->slow_start_ms)
		return p->weight;
	if (since < 0)
		return 1; /* still down: not eligible anyway */
	if (atomic_load_explicit(&p->slow_note, memory_order_relaxed) &&
	    atomic_exchange(&p->slow_note, 0))
		log_notice("peer %s is back, slow start over %us", p->addr.text,
		           (p->slow_start_ms + 999) / 1000);
	return 1 + (int)((int64_t)(p->weight - 1) * since / (int64_t)p->slow_start_ms);
}

/* Whether a is less loaded than b: active requests relative to weight (up_weight()). */
static int
up_less_loaded(int active_a, int weight_a, int active_b, int weight_b)
{
	return (int64_t)active_a * weight_b < (int64_t)active_b * weight_a;
}

/*
 * The load of p before its weight: least_conn's active requests, or least_time's
 * (average response time + 1ms) * (active + 1), in microseconds. The average is capped
 * at an hour by up_peer_time(), so the products with a weight stay far from overflow.
 */
static int64_t
up_load(const struct cfg_peer *p, int time)
{
	int64_t a = atomic_load_explicit(&p->active, memory_order_relaxed);

	if (!time)
		return a;
	return (atomic_load_explicit(&p->ewma_us, memory_order_relaxed) + 1000) * (a + 1);
}

/*
 * Smooth weighted round robin among the eligible peers; with tie != NULL, only among those
 * with a load (up_load(), time as given) relative to weight exactly that of tie, tie_load
 * (the tie-break of least_conn and least_time). Called with u->lock held.
 */
static struct cfg_peer *
up_wrr(struct cfg_upstream *u, unsigned backup, struct cfg_peer *const *tried, int ntried,
       int64_t now_ms, struct cfg_peer *tie, int64_t tie_load, int time)
{
	struct cfg_peer *best = NULL;
	int total = 0, tie_w = tie != NULL ? up_weight(tie, now_ms) : 0;

	for (size_t i = 0; i < u->npeers; i++) {
		struct cfg_peer *p = &u->peers[i];
		int w;

		if (!up_eligible(p, backup, tried, ntried, now_ms))
			continue;
		w = up_weight(p, now_ms);
		if (tie != NULL && up_load(p, time) * tie_w != tie_load * w)
			continue;
		p->cur_weight += w;
		total += w;
		if (best == NULL || p->cur_weight > best->cur_weight)
			best = p;
	}
	if (best != NULL)
		best->cur_weight -= total;
	return best;
}

static struct cfg_peer *
up_pick_rr(struct cfg_upstream *u, unsigned backup, struct cfg_peer *const *tried, int ntried,
           int64_t now_ms)
{
	struct cfg_peer *p;

	pthread_mutex_lock(&u->lock);
	p = up_wrr(u, backup, tried, ntried, now_ms, NULL, 0, 0);
	pthread_mutex_unlock(&u->lock);
	return p;
}

/*
 * least_conn (time 0): the fewest active requests relative to weight; least_time (time 1):
 * the lowest up_load() relative to weight. Ties are broken by smooth weighted round robin
 * among the tied peers (as nginx does). Counts move under our feet (other workers do not
 * take the lock to count); when the tie set has emptied meanwhile, the least loaded peer
 * seen first is taken.
 */
static struct cfg_peer *
up_pick_least(struct cfg_upstream *u, unsigned backup, struct cfg_peer *const *tried, int ntried,
              int64_t now_ms, int time)
{
	struct cfg_peer *least = NULL, *p;
	int64_t least_load = 0;
	int least_w = 0;

	pthread_mutex_lock(&u->lock);
	for (size_t i = 0; i < u->npeers; i++) {
		int64_t l;
		int w;

		p = &u->peers[i];
		if (!up_eligible(p, backup, tried, ntried, now_ms))
			continue;
		l = up_load(p, time);
		w = up_weight(p, now_ms);
		if (least == NULL || l * least_w < least_load * w) {
			least = p;
			least_load = l;
			least_w = w;
		}
	}
	p = NULL;
	if (least != NULL &&
	    (p = up_wrr(u, backup, tried, ntried, now_ms, least, least_load, time)) == NULL)
		p = least;
	pthread_mutex_unlock(&u->lock);
	return p;
}

/*
 * ip_hash, nginx's: the first three octets of an IPv4 address (its /24), or all 16 bytes of
 * an IPv6 address, hashed onto the primaries by weight. The ring includes peers configured
 * `down`, so marking one down moves only its own clients. An ineligible peer rehashes, at
 * most 20 times, then round robin decides. No usable address (NULL, a Unix socket): round
 * robin.
 */
#define UP_IP_HASH_TRIES 20

static struct cfg_peer *
up_pick_ip_hash(struct cfg_upstream *u, const struct sockaddr *client,
                struct cfg_peer *const *tried, int ntried, int64_t now_ms)
{
	const unsigned char *key;
	size_t keylen;
	uint32_t hash = 89;
	int64_t total = 0;

	if (client == NULL)
		return up_pick_rr(u, 0, tried, ntried, now_ms);
	if (client->sa_family == AF_INET) {
		key = (const unsigned char *)&((const struct sockaddr_in *)(const void *)client)
		              ->sin_addr;
		keylen = 3;
	} else if (client->sa_family == AF_INET6) {
		key = (const unsigned char *)&((const struct sockaddr_in6 *)(const void *)client)
		              ->sin6_addr;
		keylen = 16;
	} else {
		return up_pick_rr(u, 0, tried, ntried, now_ms);
	}
	for (size_t i = 0; i < u->npeers; i++)
		total += u->peers[i].weight;
	for (int t = 0; t < UP_IP_HASH_TRIES && total > 0; t++) {
		int64_t w;
		size_t i;

		for (size_t k = 0; k < keylen; k++)
			hash = (hash * 113 + key[k]) % 6271;
		w = hash % total;
		for (i = 0; w >= u->peers[i].weight; i++)
			w -= u->peers[i].weight;
		if (up_eligible(&u->peers[i], 0, tried, ntried, now_ms))
			return &u->peers[i];
	}
	return up_pick_rr(u, 0, tried, ntried, now_ms);
}

/*
 * hash KEY: the key's hash modulo the total weight of the primaries (`down` ones included,
 * so that marking one down moves only its own keys); an ineligible peer rehashes, at most
 * 20 times, then round robin decides. No key: round robin.
 */
static struct cfg_peer *
up_pick_hash(struct cfg_upstream *u, const char *key, size_t keylen, struct cfg_peer *const *tried,
             int ntried, int64_t now_ms)
{
	uint32_t hash;
	int64_t total = 0;

	if (key == NULL)
		return up_pick_rr(u, 0, tried, ntried, now_ms);
	for (size_t i = 0; i < u->npeers; i++)
		total += u->peers[i].weight;
	hash = cfg_hash(key, keylen, CFG_HASH_SEED);
	for (uint32_t t = 0; t < UP_IP_HASH_TRIES && total > 0; t++) {
		int64_t w = hash % total;
		size_t i;

		for (i = 0; w >= u->peers[i].weight; i++)
			w -= u->peers[i].weight;
		if (up_eligible(&u->peers[i], 0, tried, ntried, now_ms))
			return &u->peers[i];
		hash = cfg_hash(&hash, sizeof(hash), CFG_HASH_SEED + t + 1);
	}
	return up_pick_rr(u, 0, tried, ntried, now_ms);
}

/*
 * hash KEY consistent: the first ring point at or after the key's hash (wrapping), then on
 * along the ring past ineligible peers. The ring holds every primary, `down` ones too.
 */
static struct cfg_peer *
up_pick_consistent(struct cfg_upstream *u, const char *key, size_t keylen,
                   struct cfg_peer *const *tried, int ntried, int64_t now_ms)
{
	size_t lo = 0, hi = u->nring;
	uint32_t hash;

	if (key == NULL || u->nring == 0)
		return up_pick_rr(u, 0, tried, ntried, now_ms);
	hash = cfg_hash(key, keylen, CFG_HASH_SEED);
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (u->ring[mid].hash < hash)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t n = 0; n < u->nring; n++) {
		struct cfg_peer *p = &u->peers[u->ring[(lo + n) % u->nring].peer];

		if (up_eligible(p, 0, tried, ntried, now_ms))
			return p;
	}
	return NULL;
}

/* The value of cookie name[0..len) in the Cookie header(s) of msg. */
static struct http_slice
up_cookie(const struct http_msg *msg, const char *name, size_t len)
{
	struct http_slice none = {NULL, 0};

	for (size_t i = 0; i < msg->nheaders; i++) {
		const struct http_header *h = &msg->headers[i];
		const char *c = h->value.p, *end = c + h->value.len;

		if (!http_slice_eq(h->name, "cookie"))
			continue;
		while (c < end) {
			const char *semi = memchr(c, ';', (size_t)(end - c)), *eq;

			if (semi == NULL)
				semi = end;
			while (c < semi && (*c == ' ' || *c == '\t'))
				c++;
			eq = memchr(c, '=', (size_t)(semi - c));
			if (eq != NULL && (size_t)(eq - c) == len && memcmp(c, name, len) == 0) {
				struct http_slice v = {eq + 1, (size_t)(semi - eq - 1)};

				return v;
			}
			c = semi + 1;
		}
	}
	return none;
}

/* The value of query argument name[0..len) of the target path (empty for `name` alone). */
static struct http_slice
up_arg(struct http_slice path, const char *name, size_t len)
{
	struct http_slice none = {NULL, 0};
	const char *end = path.p + path.len, *a = memchr(path.p, '?', path.len);

	if (a == NULL)
		return none;
	for (a++; a < end;) {
		const char *amp = memchr(a, '&', (size_t)(end - a)), *eq;

		if (amp == NULL)
			amp = end;
		eq = memchr(a, '=', (size_t)(amp - a));
		if (eq == NULL)
			eq = amp;
		if ((size_t)(eq - a) == len && memcmp(a, name, len) == 0) {
			struct http_slice v = {eq, 0};

			if (eq < amp) {
				v.p = eq + 1;
				v.len = (size_t)(amp - eq - 1);
			}
			return v;
		}
		a = amp + 1;
	}
	return none;
}

struct http_slice
up_key_part(const struct cfg_key_part *k, const struct http_msg *msg, const char *client)
{
	struct http_slice v = {NULL, 0};
	const struct http_header *h;

	switch (k->var) {
	case CFG_KEY_LITERAL:
		v.p = k->text;
		v.len = k->len;
		break;
	case CFG_KEY_REQUEST_URI:
		v = msg->target;
		break;
	case CFG_KEY_REMOTE_ADDR:
		v.p = client;
		v.len = strlen(client);
		break;
	case CFG_KEY_HOST:
		v = msg->host; /* the authority's, else the Host header's; no port */
		break;
	case CFG_KEY_HTTP:
		if ((h = http_header_find(msg, k->text)) != NULL)
			v = h->value;
		break;
	case CFG_KEY_COOKIE:
		v = up_cookie(msg, k->text, k->len);
		break;
	case CFG_KEY_ARG:
		v = up_arg(msg->path, k->text, k->len);
		break;
	case CFG_KEY_URL:
	case CFG_KEY_SCHEME:
		break; /* the caller's (cache_key only) */
	}
	return v;
}

size_t
up_hash_key(const struct cfg_upstream *u, const struct http_msg *msg, const char *client, char *buf,
            size_t size)
{
	size_t n = 0;

	if (u->balance != CFG_BALANCE_HASH && u->balance != CFG_BALANCE_HASH_CONSISTENT)
		return 0;
	for (size_t i = 0; i < u->nkey; i++) {
		struct http_slice v = up_key_part(&u->key[i], msg, client);

		if (v.len > size - n)
			v.len = size - n;
		if (v.len > 0)
			memcpy(buf + n, v.p, v.len);
		n += v.len;
	}
	return n;
}

/* An hour, in microseconds: the most one response time counts for in the average. */
#define UP_TIME_MAX_US ((int64_t)3600 * 1000 * 1000)

void
up_peer_time_add(struct cfg_peer *p, int64_t ms)
{
	int64_t old, sample, avg;

	sample = ms < 0 ? 0 : ms > UP_TIME_MAX_US / 1000 ? UP_TIME_MAX_US : ms * 1000;
	old = atomic_load_explicit(&p->ewma_us, memory_order_relaxed);
	do {
		/* the first sample stands alone; then each weighs 1/8 */
		avg = old == 0 ? sample : old + (sample - old) / 8;
	} while (!atomic_compare_exchange_weak(&p->ewma_us, &old, avg));
}

void
up_peer_time(const struct cfg_upstream *u, struct cfg_peer *p, int last_byte, int64_t start_ms)
{
	if (p != NULL &&
	    u->balance == (last_byte ? CFG_BALANCE_LEAST_TIME_LAST_BYTE : CFG_BALANCE_LEAST_TIME))
		up_peer_time_add(p, up_now_ms() - start_ms);
}

/* A per-thread xorshift64* generator, seeded from getrandom(), else the clock and thread. */
static _Thread_local uint64_t up_rng;

static uint32_t
up_random(void)
{
	if (up_rng == 0) {
		uint64_t seed = 0;
		struct timespec ts;

		if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != (ssize_t)sizeof(seed)) {
			clock_gettime(CLOCK_REALTIME, &ts);
			seed = (uint64_t)ts.tv_sec * 1000000007u ^ (uint64_t)ts.tv_nsec ^
			       (uint64_t)(uintptr_t)&up_rng;
		}
		up_rng = seed != 0 ? seed : 0x9e3779b97f4a7c15u;
	}
	up_rng ^= up_rng >> 12;
	up_rng ^= up_rng << 25;
	up_rng ^= up_rng >> 27;
	return (uint32_t)((up_rng * 0x2545f4914f6cdd1du) >> 32);
}

/* A weighted-random eligible peer other than skip (may be NULL), or NULL if none. */
static struct cfg_peer *
up_random_peer(struct cfg_upstream *u, unsigned backup, struct cfg_peer *const *tried, int ntried,
               int64_t now_ms, const struct cfg_peer *skip)
{
	uint64_t total = 0, w;

	for (size_t i = 0; i < u->npeers; i++)
		if (&u->peers[i] != skip &&
		    up_eligible(&u->peers[i], backup, tried, ntried, now_ms))
			total += (uint64_t)up_weight(&u->peers[i], now_ms);
	if (total == 0)
		return NULL;
	w = ((uint64_t)up_random() * total) >> 32;
	for (size_t i = 0; i < u->npeers; i++) {
		struct cfg_peer *p = &u->peers[i];

		if (p == skip || !up_eligible(p, backup, tried, ntried, now_ms))
			continue;
		if (w < (uint64_t)up_weight(p, now_ms))
			return p;
		w -= (uint64_t)up_weight(p, now_ms);
	}
	/* a peer went down between the two passes: take any eligible one */
	for (size_t i = 0; i < u->npeers; i++)
		if (&u->peers[i] != skip &&
		    up_eligible(&u->peers[i], backup, tried, ntried, now_ms))
			return &u->peers[i];
	return NULL;
}

/* random [two]: no shared state but the active counts, so no lock. */
static struct cfg_peer *
up_pick_random(struct cfg_upstream *u, unsigned backup, int two, struct cfg_peer *const *tried,
               int ntried, int64_t now_ms)
{
	struct cfg_peer *a, *b;

	a = up_random_peer(u, backup, tried, ntried, now_ms, NULL);
	if (!two || a == NULL)
		return a;
	if ((b = up_random_peer(u, backup, tried, ntried, now_ms, a)) == NULL)
		return a;
	if (up_less_loaded(
	            atomic_load_explicit(&b->active, memory_order_relaxed), up_weight(b, now_ms),
	            atomic_load_explicit(&a->active, memory_order_relaxed), up_weight(a, now_ms)))
		return b;
	return a;
}

struct cfg_peer *
up_pick(struct cfg_upstream *u, const struct sockaddr *client, const char *key, size_t keylen,
        struct cfg_peer *const *tried, int ntried, int64_t now_ms)
{
	struct cfg_peer *p = NULL;

	/* primaries first; backups only when no primary is eligible */
	for (unsigned backup = 0; backup <= CFG_PEER_BACKUP && p == NULL;
	     backup += CFG_PEER_BACKUP) {
		switch (u->balance) {
		case CFG_BALANCE_LEAST_CONN:
			p = up_pick_least(u, backup, tried, ntried, now_ms, 0);
			break;
		case CFG_BALANCE_LEAST_TIME:
		case CFG_BALANCE_LEAST_TIME_LAST_BYTE:
			p = up_pick_least(u, backup, tried, ntried, now_ms, 1);
			break;
		case CFG_BALANCE_HASH:
			/* the parser refuses backups with hash */
			if (backup == 0)
				p = up_pick_hash(u, key, keylen, tried, ntried, now_ms);
			break;
		case CFG_BALANCE_HASH_CONSISTENT:
			if (backup == 0)
				p = up_pick_consistent(u, key, keylen, tried, ntried, now_ms);
			break;
		case CFG_BALANCE_IP_HASH:
			/* the parser refuses backups with ip_hash */
			if (backup == 0)
				p = up_pick_ip_hash(u, client, tried, ntried, now_ms);
			break;
		case CFG_BALANCE_RANDOM:
		case CFG_BALANCE_RANDOM_TWO:
			p = up_pick_random(u, backup, u->balance == CFG_BALANCE_RANDOM_TWO, tried,
			                   ntried, now_ms);
			break;
		case CFG_BALANCE_UNSET:
		case CFG_BALANCE_ROUND_ROBIN:
			p = up_pick_rr(u, backup, tried, ntried, now_ms);
			break;
		}
	}
	if (p != NULL)
		atomic_fetch_add_explicit(&p->requests, 1, memory_order_relaxed);
	return p;
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
	size_t usable = 0;

	if (p == NULL)
		return; /* forward mode: an origin, not a peer */
	atomic_fetch_add_explicit(&p->failures, 1, memory_order_relaxed);
	if (p->max_fails == 0)
		return;
	for (size_t i = 0; i < u->npeers && usable < 2; i++)
		if (!(u->peers[i].flags & CFG_PEER_DOWN))
			usable++;
	if (usable < 2)
		return;
	int64_t start = atomic_load(&p->fail_window_ms);
	if (now_ms - start > (int64_t)p->fail_timeout_ms) {
		/* A new window; losing a concurrent increment here only delays marking. */
		atomic_store(&p->fail_window_ms, now_ms);
		atomic_store(&p->fails, 0);
	}
	if (atomic_fetch_add(&p->fails, 1) + 1 >= p->max_fails) {
		if (p->slow_start_ms > 0) {
			/* it comes back (slow_start) when the time is up: seen lazily */
			atomic_store(&p->recovered_ms, now_ms + p->fail_timeout_ms);
			atomic_store(&p->slow_note, 1);
		}
		atomic_store(&p->down_until_ms, now_ms + p->fail_timeout_ms);
		atomic_store(&p->fails, 0);
		log_warnx("upstream \"%s\": peer %s marked down for %ums", u->name, p->addr.text,
		          p->fail_timeout_ms);
	}
}

void
up_peer_ok(struct cfg_peer *p)
{
	if (p != NULL && atomic_load_explicit(&p->fails, memory_order_relaxed) != 0)
		atomic_store(&p->fails, 0);
}

void
up_pool_init(struct up_pool *pool)
{
	TAILQ_INIT(&pool->idle);
	TAILQ_INIT(&pool->spare);
	pool->count = 0;
	pool->idle_ms = 0;
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
up_pool_get(struct up_pool *pool, const struct cfg_addr *addr, const void *tls, int *requests)
{
	struct up_idle *c;

	TAILQ_FOREACH (c, &pool->idle, link) {
		if (!up_addr_eq(&c->addr, addr) || c->tls != tls)
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
            const struct cfg_addr *addr, const void *tls, int requests)
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
	c->tls = tls;
	if (c->u != u) {
		c->u = u;
		snprintf(c->upstream, sizeof(c->upstream), "%s", u->name);
	}
	c->requests = requests;
	TAILQ_INSERT_HEAD(&pool->idle, c, link);
	pool->count++;

	short on = bufferevent_get_enabled(bev);

	if (pool->idle_ms != u->keepalive_timeout_ms) {
		/* a common timeout: re-arming it per request is O(1), not a heap operation */
		struct timeval tv = {u->keepalive_timeout_ms / 1000,
		                     (u->keepalive_timeout_ms % 1000) * 1000};
		const struct timeval *ctv =
		        event_base_init_common_timeout(bufferevent_get_base(bev), &tv);

		pool->idle_ms = u->keepalive_timeout_ms;
		pool->idle_tv = ctv != NULL ? *ctv : tv;
	}
	bufferevent_setcb(bev, up_idle_readcb, NULL, up_idle_eventcb, c);
	if (on & EV_WRITE)
		bufferevent_disable(bev, EV_WRITE); /* the next user writes directly (bev_flush) */
	/*
	 * set_timeouts re-adds an enabled read event with the idle timeout; enabling reads
	 * that are on (the usual case: sessions keep them on) would add it a second time
	 */
	bufferevent_set_timeouts(bev, &pool->idle_tv, NULL);
	if (!(on & EV_READ))
		bufferevent_enable(bev, EV_READ);
}
