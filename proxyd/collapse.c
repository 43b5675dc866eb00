#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "collapse.h"

#define BUCKETS  1024
#define PASS_MAX 4096 /* remembered uncacheable keys at most (beyond: not remembered) */

struct collapse_waiter {
	struct collapse_waiter *next, **prev; /* in its entry's list while linked */
	struct event *ev;
	collapse_cb cb;
	void *arg;
	enum collapse_wake why;
	int detail; /* COLLAPSE_WAKE_STALE: collapse_release_stale()'s */
	int linked;
};

/*
 * One key: a fetch in flight (leader) or a recent uncacheable answer (pass_until). A lead
 * taken over for its age is an orphan: out of the table, freed by its leader's release.
 */
struct collapse_lock {
	struct collapse_lock *next; /* bucket chain */
	const struct cache_store *st;
	struct cache_key key;
	int leader;
	int orphan;
	int64_t since_ms; /* when the lead began */
	int64_t pass_until;
	struct collapse_waiter *waiters;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct collapse_lock *buckets[BUCKETS];
static unsigned nleaders, nwaiters, npass;

static int64_t
now_sec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec;
}

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct collapse_lock **
bucket(const struct cache_store *st, const struct cache_key *k)
{
	uint32_t h;

	memcpy(&h, k->b, sizeof(h)); /* a SHA-256: any four bytes are uniform */
	h ^= (uint32_t)((uintptr_t)st >> 4);
	return &buckets[h % BUCKETS];
}

/* The entry of (st, k), dropping expired pass entries of the chain on the way. Locked. */
static struct collapse_lock *
find(const struct cache_store *st, const struct cache_key *k, int64_t now)
{
	struct collapse_lock **pp = bucket(st, k), *e;

	while ((e = *pp) != NULL) {
		if (!e->leader && e->pass_until <= now) {
			*pp = e->next;
			npass--;
			free(e);
			continue;
		}
		if (e->st == st && memcmp(e->key.b, k->b, CACHE_KEY_LEN) == 0)
			return e;
		pp = &e->next;
	}
	return NULL;
}

static void
unchain(struct collapse_lock *e)
{
	struct collapse_lock **pp = bucket(e->st, &e->key);

	while (*pp != e)
		pp = &(*pp)->next;
	*pp = e->next;
}

static void
waiter_unlink(struct collapse_waiter *w)
{
	if (w->next != NULL)
		w->next->prev = w->prev;
	*w->prev = w->next;
	w->linked = 0;
	nwaiters--;
}

/* In the waiter's own thread: a wake-up or its timeout. */
static void
waiter_cb(evutil_socket_t fd, short what, void *arg)
{
	struct collapse_waiter *w = arg;
	collapse_cb cb = w->cb;
	void *cbarg = w->arg;
	enum collapse_wake why;
	int detail;

	(void)fd;
	(void)what;
	pthread_mutex_lock(&mu);
	if (w->linked) { /* nobody woke it: the timeout */
		waiter_unlink(w);
		w->why = COLLAPSE_WAKE_TIMEOUT;
	}
	why = w->why;
	detail = w->detail;
	pthread_mutex_unlock(&mu);
	/* a wake-up queued after the timeout fired is dropped with the event */
	event_free(w->ev);
	free(w);
	cb(cbarg, why, detail);
}

/* Wake every waiter of e with why (and detail). Locked. */
static void
wake_all(struct collapse_lock *e, enum collapse_wake why, int detail)
{
	struct collapse_waiter *w;

	while ((w = e->waiters) != NULL) {
		waiter_unlink(w);
		w->why = why;
		w->detail = detail;
		event_active(w->ev, EV_READ, 0);
	}
}

enum collapse_res
collapse_acquire(const struct cache_store *st, const struct cache_key *key, struct event_base *base,
                 uint32_t timeout_ms, uint32_t age_ms, collapse_cb cb, void *arg,
                 struct collapse_lock **lock, struct collapse_waiter **waiter)
{
	int64_t now = now_sec(), ms = now_ms();
	struct collapse_lock *e;
	struct collapse_waiter *w;

	*lock = NULL;
	*waiter = NULL;
	pthread_mutex_lock(&mu);
	e = find(st, key, now);
	if (e != NULL && e->leader && cb != NULL && age_ms > 0 && ms - e->since_ms >= age_ms) {
		/* the lead is too old: this request fetches, the waiters wait for it now */
		struct collapse_lock *n = calloc(1, sizeof(*n));

		if (n == NULL) {
			pthread_mutex_unlock(&mu);
			return COLLAPSE_PASS;
		}
		n->st = st;
		n->key = *key;
		n->leader = 1;
		n->since_ms = ms;
		if ((n->waiters = e->waiters) != NULL)
			n->waiters->prev = &n->waiters;
		e->waiters = NULL;
		e->orphan = 1;
		unchain(e);
		struct collapse_lock **b = bucket(st, key);
		n->next = *b;
		*b = n;
		nleaders++;
		pthread_mutex_unlock(&mu);
		*lock = n;
		return COLLAPSE_LEADER;
	}
	if (e != NULL && e->leader) {
		struct timeval tv = {(time_t)(timeout_ms / 1000),
		                     (suseconds_t)((timeout_ms % 1000) * 1000)};

		if (cb == NULL) {
			pthread_mutex_unlock(&mu);
			return COLLAPSE_BUSY;
		}
		if ((w = calloc(1, sizeof(*w))) == NULL ||
		    (w->ev = event_new(base, -1, 0, waiter_cb, w)) == NULL ||
		    event_add(w->ev, &tv) == -1) {
			pthread_mutex_unlock(&mu);
			if (w != NULL && w->ev != NULL)
				event_free(w->ev);
			free(w);
			return COLLAPSE_PASS;
		}
		w->cb = cb;
		w->arg = arg;
		w->next = e->waiters;
		if (w->next != NULL)
			w->next->prev = &w->next;
		w->prev = &e->waiters;
		e->waiters = w;
		w->linked = 1;
		nwaiters++;
		pthread_mutex_unlock(&mu);
		*waiter = w;
		return COLLAPSE_WAIT;
	}
	if (e != NULL && cb != NULL) { /* recently uncacheable */
		pthread_mutex_unlock(&mu);
		return COLLAPSE_PASS;
	}
	if (e == NULL) {
		if ((e = calloc(1, sizeof(*e))) == NULL) {
			pthread_mutex_unlock(&mu);
			return cb != NULL ? COLLAPSE_PASS : COLLAPSE_BUSY;
		}
		e->st = st;
		e->key = *key;
		struct collapse_lock **b = bucket(st, key);
		e->next = *b;
		*b = e;
	} else {
		npass--; /* a pass entry taken over by a refresh */
	}
	e->leader = 1;
	e->since_ms = ms;
	nleaders++;
	pthread_mutex_unlock(&mu);
	*lock = e;
	return COLLAPSE_LEADER;
}

/* Locked: e leads no more; keep it as a pass entry or free it. */
static void
lead_end(struct collapse_lock *e, int uncacheable)
{
	e->leader = 0;
	nleaders--;
	if (e->orphan) {
		free(e);
		return;
	}
	if (uncacheable && npass < PASS_MAX) {
		e->pass_until = now_sec() + COLLAPSE_PASS_SECONDS;
		npass++;
		return;
	}
	unchain(e);
	free(e);
}

void
collapse_release(struct collapse_lock *lock, int uncacheable)
{
	if (lock == NULL)
		return;
	pthread_mutex_lock(&mu);
	wake_all(lock, COLLAPSE_WAKE_GO, 0);
	lead_end(lock, uncacheable);
	pthread_mutex_unlock(&mu);
}

void
collapse_release_stale(struct collapse_lock *lock, int detail)
{
	if (lock == NULL)
		return;
	pthread_mutex_lock(&mu);
	wake_all(lock, COLLAPSE_WAKE_STALE, detail);
	lead_end(lock, 0);
	pthread_mutex_unlock(&mu);
}

/* The writer thread: the object is committed (or dropped). */
static void
release_notified(void *arg)
{
	struct collapse_lock *e = arg, *cur;

	pthread_mutex_lock(&mu);
	/* an orphan's object is in: the new leader's waiters may find it */
	if (e->orphan && (cur = find(e->st, &e->key, now_sec())) != NULL && cur->leader)
		wake_all(cur, COLLAPSE_WAKE_LOOKUP, 0);
	wake_all(e, COLLAPSE_WAKE_LOOKUP, 0);
	lead_end(e, 0);
	pthread_mutex_unlock(&mu);
}

void
collapse_release_after(struct collapse_lock *lock, struct cache_store *st)
{
	if (lock != NULL)
		cache_store_notify(st, release_notified, lock);
}

void
collapse_cancel(struct collapse_waiter *w)
{
	if (w == NULL)
		return;
	pthread_mutex_lock(&mu);
	if (w->linked)
		waiter_unlink(w);
	pthread_mutex_unlock(&mu);
	event_free(w->ev); /* also drops a wake-up queued but not run */
	free(w);
}

void
collapse_counts(unsigned *leaders, unsigned *waiters)
{
	pthread_mutex_lock(&mu);
	*leaders = nleaders;
	*waiters = nwaiters;
	pthread_mutex_unlock(&mu);
}
