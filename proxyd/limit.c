#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

/*
 * limit.c - rate and concurrency zones (see limit.h for the contract).
 *
 * A zone is nstripes stripes of cap entries each (nstripes a power of two, at most 64,
 * about one per 64 entries, so a small zone is one stripe and its LRU order is exact).
 * A key's 64-bit hash (FNV-1a over a random per-zone seed, then murmur3's finalizer)
 * picks the stripe with its high bits and the hash chain with its low bits. Each stripe
 * has a free list and a doubly linked LRU list (most recent at the head), all as 32-bit
 * indices into the zone's entry array; entries are handed out in order the first time
 * (untouched memory until then), so a large zone costs address space, not RSS.
 *
 * Rates are GCRA (the generic cell rate algorithm, equivalent to a token bucket of
 * burst + 1 tokens refilled at the rate): an entry keeps its theoretical arrival time
 * (tat); a request at now passes when tat - now <= burst * T, T = period / rate, and
 * moves tat to max(tat, now) + T. One int64 per key, no refill loop, and the wait before
 * the next success is exact: tat - now - burst * T.
 */

#if !defined(_GNU_SOURCE) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L
#endif

#include <sys/random.h>

#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cfg_value.h"
#include "limit.h"
#include "testhook.h"

#define LIMIT_NIL         UINT32_MAX
#define LIMIT_MAX_STRIPES 64u
#define LIMIT_NEVER       (INT64_MIN / 4) /* "not yet": far enough from overflow */

struct limit_entry {
	char key[LIMIT_KEY_MAX];
	uint32_t hash;     /* low 32 bits of the key's hash (chain choice, quick compare) */
	uint32_t next;     /* hash chain, or the free list */
	uint32_t lru_prev; /* towards the head (more recent) */
	uint32_t lru_next; /* towards the tail (less recent) */
	uint32_t conns;    /* LIMIT_CONN: requests in progress */
	uint8_t klen;
	uint8_t used;
	int64_t tat_us;    /* LIMIT_REQ: theoretical arrival time */
	int64_t logged_us; /* the last rejection reported */
};

struct limit_stripe {
	pthread_mutex_t lock;
	uint32_t lru_head; /* most recently used */
	uint32_t lru_tail;
	uint32_t free_head; /* entries used and dropped */
	uint32_t used;
	uint32_t held;     /* LIMIT_CONN: the sum of the entries' conns */
	uint32_t base;     /* the stripe's first entry */
	uint32_t fresh;    /* entries never used yet start at base + fresh (untouched memory) */
	uint32_t *buckets; /* bmask + 1 chain heads */
	/* keep stripes (and their mutexes) on cache lines of their own */
	char pad[64 - (sizeof(pthread_mutex_t) + 7 * sizeof(uint32_t) + sizeof(uint32_t *)) % 64];
};

struct limit_zone {
	atomic_int refs;
	char *name;
	struct limit_def def;
	uint64_t seed;
	uint32_t nstripes;
	uint32_t cap;   /* entries per stripe */
	uint32_t bmask; /* chain heads per stripe - 1 */
	int64_t t_us;   /* LIMIT_REQ: emission interval, period / rate */
	_Atomic int64_t zone_logged_us;
	struct limit_stripe *stripes;
	struct limit_entry *entries; /* nstripes * cap; stripe i owns [i * cap, (i + 1) * cap) */
	uint32_t *buckets;           /* nstripes * (bmask + 1) */
};

#if defined(__GNUC__) || defined(__clang__)
static char *limit_sprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
#endif

/* A malloc'd message (NULL when out of memory: the caller reports "out of memory"). */
static char *
limit_sprintf(const char *fmt, ...)
{
	va_list ap;
	int n;
	char *s;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || (s = malloc((size_t)n + 1)) == NULL)
		return NULL;
	va_start(ap, fmt);
	vsnprintf(s, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return s;
}

/* Digits only, at most max (cfg_parse_uint narrowed to the zone fields' type). */
static int
limit_parse_u32(const char *s, uint32_t max, uint32_t *out)
{
	uint64_t v;

	if (cfg_parse_uint(s, max, &v) == -1)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

const char *
limit_key_name(enum limit_key key)
{
	switch (key) {
	case LIMIT_KEY_USER:
		return "user";
	case LIMIT_KEY_HOST:
		return "host";
	case LIMIT_KEY_CLIENT:
	default:
		return "client";
	}
}

/* "5r/s", "5r/m", or without the r. */
static int
limit_parse_rate(const char *s, struct limit_def *def)
{
	char num[16];
	size_t n = strcspn(s, "r/");

	if (n == 0 || n >= sizeof(num))
		return -1;
	memcpy(num, s, n);
	num[n] = '\0';
	if (limit_parse_u32(num, LIMIT_MAX_RATE, &def->rate) == -1 || def->rate == 0)
		return -1;
	s += n;
	if (*s == 'r')
		s++;
	if (strcmp(s, "/s") == 0)
		def->period_ms = 1000;
	else if (strcmp(s, "/m") == 0)
		def->period_ms = 60000;
	else
		return -1;
	return 0;
}

int
limit_def_parse(enum limit_kind kind, char *const *args, size_t nargs, struct limit_def *def,
                char **err)
{
	int have_key = 0, have_rate = 0, have_size = 0;

	memset(def, 0, sizeof(*def));
	def->kind = kind;
	def->size = LIMIT_DEF_SIZE;
	for (size_t i = 0; i < nargs; i++) {
		const char *a = args[i];

		if (strncmp(a, "key=", 4) == 0) {
			if (have_key++)
				goto dup;
			if (strcmp(a + 4, "client") == 0)
				def->key = LIMIT_KEY_CLIENT;
			else if (strcmp(a + 4, "user") == 0)
				def->key = LIMIT_KEY_USER;
			else if (strcmp(a + 4, "host") == 0)
				def->key = LIMIT_KEY_HOST;
			else {
				*err = limit_sprintf("invalid key \"%s\": key= takes client, user "
				                     "or host",
				                     a + 4);
				return -1;
			}
		} else if (strncmp(a, "rate=", 5) == 0 && kind == LIMIT_REQ) {
			if (have_rate++)
				goto dup;
			if (limit_parse_rate(a + 5, def) == -1) {
				*err = limit_sprintf(
				        "invalid rate \"%s\": rate= takes N r/s or N r/m "
				        "(such as 10r/s or 30r/m), N from 1 to 1000000",
				        a + 5);
				return -1;
			}
		} else if (strncmp(a, "size=", 5) == 0) {
			if (have_size++)
				goto dup;
			if (limit_parse_u32(a + 5, LIMIT_MAX_SIZE, &def->size) == -1 ||
			    def->size < LIMIT_MIN_SIZE) {
				*err = limit_sprintf("invalid size \"%s\": size= takes a number of "
				                     "entries from 1 to 16777216",
				                     a + 5);
				return -1;
			}
		} else {
			*err = limit_sprintf(kind == LIMIT_REQ
			                             ? "unknown parameter \"%s\": expected "
			                               "key=, rate= or size="
			                             : "unknown parameter \"%s\": expected "
			                               "key= or size=",
			                     a);
			return -1;
		}
		continue;
	dup:
		*err = limit_sprintf("\"%s\" is given twice", a);
		return -1;
	}
	if (!have_key) {
		*err = limit_sprintf("%s", "key= is required (client, user or host)");
		return -1;
	}
	if (kind == LIMIT_REQ && !have_rate) {
		*err = limit_sprintf("%s", "rate= is required (such as rate=10r/s)");
		return -1;
	}
	return 0;
}

int
limit_req_parse(char *const *args, size_t nargs, uint32_t *burst, char **err)
{
	int have_burst = 0, have_nodelay = 0;

	*burst = 0;
	for (size_t i = 0; i < nargs; i++) {
		if (strncmp(args[i], "burst=", 6) == 0 && !have_burst++) {
			if (limit_parse_u32(args[i] + 6, LIMIT_MAX_BURST, burst) == -1) {
				*err = limit_sprintf("invalid burst \"%s\": burst= takes a number "
				                     "from 0 to 1000000",
				                     args[i] + 6);
				return -1;
			}
		} else if (strcmp(args[i], "nodelay") == 0 && !have_nodelay++) {
			/* proxyd never delays: nodelay is what it always does */
		} else {
			*err = limit_sprintf("unexpected \"%s\": limit_req takes ZONE [burst=N] "
			                     "[nodelay], each once",
			                     args[i]);
			return -1;
		}
	}
	return 0;
}

int
limit_conn_parse(const char *n, uint32_t *max, char **err)
{
	if (limit_parse_u32(n, LIMIT_MAX_CONN, max) == -1 || *max == 0) {
		*err = limit_sprintf("invalid number \"%s\": limit_conn takes ZONE N, N from 1 "
		                     "to 1000000",
		                     n);
		return -1;
	}
	return 0;
}

/* ---- zones ---- */

static uint64_t
limit_hash(uint64_t seed, const void *p, size_t n)
{
	const unsigned char *b = p;
	uint64_t h = 14695981039346656037ULL ^ seed;

	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 1099511628211ULL;
	}
	/* murmur3's fmix64: FNV alone spreads near-identical short keys badly */
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

struct limit_zone *
limit_zone_new(const char *name, const struct limit_def *def, char **err)
{
	struct limit_zone *z;
	uint32_t ns = 1, cap, nb = 1;

	while (ns < LIMIT_MAX_STRIPES && (uint64_t)ns * 2 * 64 <= def->size)
		ns *= 2;
	cap = (def->size + ns - 1) / ns;
	while (nb < cap)
		nb *= 2;
	if ((z = calloc(1, sizeof(*z))) == NULL)
		goto nomem;
	atomic_init(&z->refs, 1);
	atomic_init(&z->zone_logged_us, LIMIT_NEVER);
	z->def = *def;
	z->nstripes = ns;
	z->cap = cap;
	z->bmask = nb - 1;
	if (def->kind == LIMIT_REQ) {
		z->t_us = (int64_t)def->period_ms * 1000 / def->rate;
		if (z->t_us < 1)
			z->t_us = 1;
	}
	if (getrandom(&z->seed, sizeof(z->seed), GRND_NONBLOCK) != (ssize_t)sizeof(z->seed))
		z->seed = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)z;
	if ((z->name = strdup(name)) == NULL ||
	    (z->stripes = calloc(ns, sizeof(*z->stripes))) == NULL ||
	    (z->entries = calloc((size_t)ns * cap, sizeof(*z->entries))) == NULL ||
	    (z->buckets = malloc((size_t)ns * nb * sizeof(*z->buckets))) == NULL)
		goto nomem;
	memset(z->buckets, 0xff, (size_t)ns * nb * sizeof(*z->buckets)); /* LIMIT_NIL */
	for (uint32_t s = 0; s < ns; s++) {
		struct limit_stripe *st = &z->stripes[s];

		if (pthread_mutex_init(&st->lock, NULL) != 0) {
			while (s-- > 0)
				pthread_mutex_destroy(&z->stripes[s].lock);
			free(z->stripes);
			z->stripes = NULL;
			goto nomem;
		}
		st->buckets = z->buckets + (size_t)s * nb;
		st->lru_head = st->lru_tail = LIMIT_NIL;
		st->free_head = LIMIT_NIL;
		st->base = s * cap;
	}
	return z;
nomem:
	if (z != NULL) {
		free(z->buckets);
		free(z->entries);
		free(z->stripes);
		free(z->name);
		free(z);
	}
	*err = limit_sprintf("zone \"%s\": out of memory", name);
	return NULL;
}

int
limit_zone_same(const struct limit_zone *z, const char *name, const struct limit_def *def)
{
	return strcmp(z->name, name) == 0 && z->def.kind == def->kind && z->def.key == def->key &&
	       z->def.rate == def->rate && z->def.period_ms == def->period_ms &&
	       z->def.size == def->size;
}

struct limit_zone *
limit_zone_ref(struct limit_zone *z)
{
	atomic_fetch_add_explicit(&z->refs, 1, memory_order_relaxed);
	return z;
}

void
limit_zone_unref(struct limit_zone *z)
{
	if (z == NULL || atomic_fetch_sub_explicit(&z->refs, 1, memory_order_acq_rel) != 1)
		return;
	for (uint32_t s = 0; s < z->nstripes; s++)
		pthread_mutex_destroy(&z->stripes[s].lock);
	free(z->buckets);
	free(z->entries);
	free(z->stripes);
	free(z->name);
	free(z);
}

const char *
limit_zone_name(const struct limit_zone *z)
{
	return z->name;
}

const struct limit_def *
limit_zone_def(const struct limit_zone *z)
{
	return &z->def;
}

size_t
limit_zone_used(struct limit_zone *z)
{
	size_t n = 0;

	for (uint32_t s = 0; s < z->nstripes; s++) {
		pthread_mutex_lock(&z->stripes[s].lock);
		n += z->stripes[s].used;
		pthread_mutex_unlock(&z->stripes[s].lock);
	}
	return n;
}

size_t
limit_zone_held(struct limit_zone *z)
{
	size_t n = 0;

	for (uint32_t s = 0; s < z->nstripes && z->def.kind == LIMIT_CONN; s++) {
		pthread_mutex_lock(&z->stripes[s].lock);
		n += z->stripes[s].held;
		pthread_mutex_unlock(&z->stripes[s].lock);
	}
	return n;
}

size_t
limit_key_make(char *out, enum limit_key key, const struct sockaddr *client, const char *user,
               const char *host, size_t hostlen)
{
	char buf[1 + 256 + 64];
	size_t n = 0;

	if (key == LIMIT_KEY_USER && user != NULL && user[0] != '\0') {
		size_t ul = strnlen(user, sizeof(buf) - 1);

		buf[n++] = 'u';
		memcpy(buf + n, user, ul);
		n += ul;
	} else if (key == LIMIT_KEY_HOST && host != NULL && hostlen > 0) {
		if (hostlen > sizeof(buf) - 1)
			hostlen = sizeof(buf) - 1;
		buf[n++] = 'h';
		for (size_t i = 0; i < hostlen; i++) {
			char c = host[i];

			buf[n++] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
		}
	} else if (client != NULL && client->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)(const void *)client;
		const unsigned char *a = s6->sin6_addr.s6_addr;

		if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
			buf[n++] = 'a';
			memcpy(buf + n, a + 12, 4);
			n += 4;
		} else {
			buf[n++] = 'A';
			memcpy(buf + n, a, 16);
			n += 16;
		}
	} else if (client != NULL && client->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)(const void *)client;

		buf[n++] = 'a';
		memcpy(buf + n, &s4->sin_addr, 4);
		n += 4;
	} else {
		buf[n++] = '-'; /* no address (a background refresh): one shared key */
	}
	if (n <= LIMIT_KEY_MAX) {
		memcpy(out, buf, n);
		return n;
	}
	/* the head as it is, then a hash of the whole key */
	uint64_t h = limit_hash(0, buf, n);

	memcpy(out, buf, LIMIT_KEY_MAX - 8);
	memcpy(out + LIMIT_KEY_MAX - 8, &h, 8);
	return LIMIT_KEY_MAX;
}

/* 1 when a zone-wide event may be reported now (once per LIMIT_ZONE_LOG_INTERVAL_US). */
static int
limit_zone_note_due(struct limit_zone *z, int64_t now)
{
	int64_t last = atomic_load_explicit(&z->zone_logged_us, memory_order_relaxed);

	if (now - last < LIMIT_ZONE_LOG_INTERVAL_US)
		return 0;
	return atomic_compare_exchange_strong(&z->zone_logged_us, &last, now);
}

/* 1 when this entry's rejection may be reported now; notes it. */
static int
limit_entry_log_due(struct limit_entry *e, int64_t now)
{
	if (now - e->logged_us < LIMIT_LOG_INTERVAL_US)
		return 0;
	e->logged_us = now;
	return 1;
}

static void
limit_lru_unlink(struct limit_zone *z, struct limit_stripe *st, uint32_t i)
{
	struct limit_entry *e = &z->entries[i];

	if (e->lru_prev != LIMIT_NIL)
		z->entries[e->lru_prev].lru_next = e->lru_next;
	else
		st->lru_head = e->lru_next;
	if (e->lru_next != LIMIT_NIL)
		z->entries[e->lru_next].lru_prev = e->lru_prev;
	else
		st->lru_tail = e->lru_prev;
}

static void
limit_lru_push(struct limit_zone *z, struct limit_stripe *st, uint32_t i)
{
	struct limit_entry *e = &z->entries[i];

	e->lru_prev = LIMIT_NIL;
	e->lru_next = st->lru_head;
	if (st->lru_head != LIMIT_NIL)
		z->entries[st->lru_head].lru_prev = i;
	else
		st->lru_tail = i;
	st->lru_head = i;
}

/* Take entry i out of its chain and the LRU list, onto the free list. */
static void
limit_entry_drop(struct limit_zone *z, struct limit_stripe *st, uint32_t i)
{
	struct limit_entry *e = &z->entries[i];
	uint32_t *pp = &st->buckets[e->hash & z->bmask];

	while (*pp != i)
		pp = &z->entries[*pp].next;
	*pp = e->next;
	limit_lru_unlink(z, st, i);
	e->used = 0;
	e->next = st->free_head;
	st->free_head = i;
	st->used--;
}

/*
 * The entry of key in its stripe, locked (the caller unlocks *stp), made most recent;
 * created when missing if create. Returns its index, or LIMIT_NIL (missing and not
 * created, or no room). *victim_active: a rate entry still counting was forgotten for it.
 */
static uint32_t
limit_find(struct limit_zone *z, const void *key, size_t klen, int create, int64_t now,
           struct limit_stripe **stp, int *victim_active)
{
	uint64_t h;
	uint32_t h32, i;
	struct limit_stripe *st;

	if (klen > LIMIT_KEY_MAX) /* limit_key_make() never makes one; stay in bounds */
		klen = LIMIT_KEY_MAX;
	h = limit_hash(z->seed, key, klen);
	h32 = (uint32_t)h;
	st = &z->stripes[(h >> 32) & (z->nstripes - 1)];
	*stp = st;
	pthread_mutex_lock(&st->lock);
	for (i = st->buckets[h32 & z->bmask]; i != LIMIT_NIL; i = z->entries[i].next) {
		struct limit_entry *e = &z->entries[i];

		if (e->hash == h32 && e->klen == klen && memcmp(e->key, key, klen) == 0) {
			if (st->lru_head != i) {
				limit_lru_unlink(z, st, i);
				limit_lru_push(z, st, i);
			}
			return i;
		}
	}
	if (!create)
		return LIMIT_NIL;
	if (st->free_head == LIMIT_NIL && st->fresh < z->cap) {
		st->free_head = st->base + st->fresh++;
		z->entries[st->free_head].next = LIMIT_NIL;
	}
	if (st->free_head == LIMIT_NIL) {
		/* only rate zones forget: a connection entry lives while it counts */
		if (z->def.kind != LIMIT_REQ || st->lru_tail == LIMIT_NIL)
			return LIMIT_NIL;
		uint32_t v = st->lru_tail;

		if (z->entries[v].tat_us > now)
			*victim_active = 1;
		limit_entry_drop(z, st, v);
	}
	i = st->free_head;

	struct limit_entry *e = &z->entries[i];

	st->free_head = e->next;
	memcpy(e->key, key, klen);
	e->klen = (uint8_t)klen;
	e->hash = h32;
	e->used = 1;
	e->conns = 0;
	e->tat_us = 0;
	e->logged_us = LIMIT_NEVER;
	e->next = st->buckets[h32 & z->bmask];
	st->buckets[h32 & z->bmask] = i;
	limit_lru_push(z, st, i);
	st->used++;
	return i;
}

enum limit_verdict
limit_req_check(struct limit_zone *z, const void *key, size_t klen, uint32_t burst, int64_t now_us,
                struct limit_note *note)
{
	struct limit_stripe *st;
	int victim_active = 0;
	enum limit_verdict v = LIMIT_PASS;

	memset(note, 0, sizeof(*note));
	uint32_t i = limit_find(z, key, klen, 1, now_us, &st, &victim_active);

	if (i == LIMIT_NIL) { /* a rate zone always finds room; keep the promise anyway */
		pthread_mutex_unlock(&st->lock);
		return LIMIT_PASS;
	}
	struct limit_entry *e = &z->entries[i];
	int64_t tat = e->tat_us > now_us ? e->tat_us : now_us;
	int64_t tau = (int64_t)burst * z->t_us;

	if (tat - now_us > tau) {
		int64_t wait = tat - now_us - tau;

		v = LIMIT_REJECT;
		note->retry_after_s = (uint32_t)((wait + 999999) / 1000000);
		if (note->retry_after_s == 0)
			note->retry_after_s = 1;
		note->log = limit_entry_log_due(e, now_us);
	} else {
		e->tat_us = tat + z->t_us;
	}
	pthread_mutex_unlock(&st->lock);
	note->evicted = victim_active;
	if (victim_active && limit_zone_note_due(z, now_us))
		note->evicted_active = 1;
	return v;
}

enum limit_verdict
limit_conn_acquire(struct limit_zone *z, const void *key, size_t klen, uint32_t max, int64_t now_us,
                   struct limit_note *note)
{
	struct limit_stripe *st;
	int victim_active = 0;
	enum limit_verdict v = LIMIT_PASS;

	memset(note, 0, sizeof(*note));
	uint32_t i = limit_find(z, key, klen, 1, now_us, &st, &victim_active);

	if (i == LIMIT_NIL) {
		pthread_mutex_unlock(&st->lock);
		note->log = limit_zone_note_due(z, now_us);
		return LIMIT_FULL;
	}
	struct limit_entry *e = &z->entries[i];

	if (e->conns >= max) {
		v = LIMIT_REJECT;
		note->log = limit_entry_log_due(e, now_us);
	} else {
		e->conns++;
		st->held++;
		note->handle = i;
	}
	pthread_mutex_unlock(&st->lock);
	return v;
}

void
limit_conn_release(struct limit_zone *z, uint32_t handle)
{
	struct limit_stripe *st = &z->stripes[handle / z->cap]; /* base = stripe * cap */
	struct limit_entry *e = &z->entries[handle];

	pthread_mutex_lock(&st->lock);
	if (e->used && e->conns > 0) {
		st->held--;
		if (--e->conns == 0)
			limit_entry_drop(z, st, handle);
	}
	pthread_mutex_unlock(&st->lock);
}

uint32_t
limit_conn_count(struct limit_zone *z, const void *key, size_t klen)
{
	struct limit_stripe *st;
	int unused = 0;
	uint32_t i = limit_find(z, key, klen, 0, 0, &st, &unused), n = 0;

	if (i != LIMIT_NIL)
		n = z->entries[i].conns;
	pthread_mutex_unlock(&st->lock);
	return n;
}

int64_t
limit_now_us(void)
{
	struct timespec ts;
	long long fixed = testhook_now();

	if (fixed >= 0)
		return (int64_t)fixed * 1000000;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}
