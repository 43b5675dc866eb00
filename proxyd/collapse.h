/*
 * collapse.h - request collapsing for the cache (nginx's proxy_cache_lock, Varnish's
 * waiting list): one fetch per cache key at a time, across every worker thread.
 *
 * Contract:
 * - One table for the whole process, keyed by (store, primary cache key), guarded by one
 *   mutex held only for list operations and event_active() calls, never across I/O.
 * - collapse_acquire() makes the caller the key's leader (it fetches, and must end with
 *   exactly one collapse_release() or collapse_release_after()), a waiter (woken later by
 *   its callback, on its own event_base), or tells it to pass (go upstream, no lock): for
 *   COLLAPSE_PASS_SECONDS after a leader found the response uncacheable, so that an
 *   uncacheable URL is not fetched one request at a time ("hit-for-miss").
 * - A waiter is woken through an event of its own base: event_active() from whichever
 *   thread releases (a worker, or the store's writer thread), or its timeout. Its callback
 *   runs once, in its own thread, after the waiter is freed: COLLAPSE_WAKE_LOOKUP (look
 *   the key up again: the leader's object is visible now, or was dropped), COLLAPSE_WAKE_GO
 *   (the leader's response is not being stored, or it failed: go upstream now, all at
 *   once), COLLAPSE_WAKE_STALE (the leader's fetch failed and it answered from the stale
 *   entry: serve that entry if the waiter's own request accepts it on that failure, whose
 *   kind the callback gets as detail, else go upstream), COLLAPSE_WAKE_TIMEOUT (the lock
 *   timeout passed). A waiter whose request ends first is freed with collapse_cancel();
 *   after it returns the callback never runs.
 * - collapse_release_after() releases once the store has committed everything queued so
 *   far (cache_store_notify()), so woken waiters find the object.
 * - Lock age (nginx's proxy_cache_lock_age): a request that finds a lead older than its
 *   age_ms becomes the key's leader itself and takes the waiters over; the old leader's
 *   release then wakes nobody, except that once its object is committed the waiters are
 *   told to look the key up again (they may find it, or wait again).
 * - The event bases of waiters must outlive their waiters (sessions cancel at close);
 *   libevent must be set up for threads (evthread_use_pthreads()) before they are made.
 */
#ifndef PROXYD_COLLAPSE_H
#define PROXYD_COLLAPSE_H

#include <stdint.h>

#include "store.h"

struct event_base;
struct collapse_lock;
struct collapse_waiter;

/* How long an uncacheable answer lets requests for its key bypass the lock. */
#define COLLAPSE_PASS_SECONDS 10

enum collapse_res {
	COLLAPSE_LEADER, /* *lock set: fetch, then release */
	COLLAPSE_WAIT,   /* *waiter set: the callback comes later */
	COLLAPSE_BUSY,   /* (try only) another fetch of the key is in flight */
	COLLAPSE_PASS,   /* go upstream without the lock (recently uncacheable, or no memory) */
};

enum collapse_wake {
	COLLAPSE_WAKE_LOOKUP,
	COLLAPSE_WAKE_GO,
	COLLAPSE_WAKE_STALE,
	COLLAPSE_WAKE_TIMEOUT,
};

/* detail: what collapse_release_stale() was given for COLLAPSE_WAKE_STALE, else 0. */
typedef void (*collapse_cb)(void *arg, enum collapse_wake why, int detail);

/*
 * Become the leader for key of store st, or wait (for at most timeout_ms) on base with cb;
 * a lead older than age_ms (0: no age) is taken over. With cb NULL it only tries:
 * COLLAPSE_LEADER or COLLAPSE_BUSY (stale-while-revalidate).
 */
enum collapse_res collapse_acquire(const struct cache_store *st, const struct cache_key *key,
                                   struct event_base *base, uint32_t timeout_ms, uint32_t age_ms,
                                   collapse_cb cb, void *arg, struct collapse_lock **lock,
                                   struct collapse_waiter **waiter);

/*
 * End a lead. uncacheable: the response may not be stored (remembered for
 * COLLAPSE_PASS_SECONDS); waiters get COLLAPSE_WAKE_GO. Otherwise (the fetch failed or was
 * dropped) they get COLLAPSE_WAKE_GO too, without the memory.
 */
void collapse_release(struct collapse_lock *lock, int uncacheable);
/*
 * End a lead whose fetch failed and whose request was answered from the stale entry
 * (stale-if-error, cache_use_stale): waiters get COLLAPSE_WAKE_STALE with detail (to the
 * caller: which failure, so that each waiter can decide whether its own request accepts
 * the stale entry on it), instead of all going upstream to an origin that just failed.
 */
void collapse_release_stale(struct collapse_lock *lock, int detail);
/* End a lead whose object was handed to st: waiters get COLLAPSE_WAKE_LOOKUP once it is
 * committed (or dropped). */
void collapse_release_after(struct collapse_lock *lock, struct cache_store *st);

/* Stop waiting (the request is gone). The callback will not run. */
void collapse_cancel(struct collapse_waiter *w);

/* Leaders and waiters now (tests and the status page): into *leaders and *waiters. */
void collapse_counts(unsigned *leaders, unsigned *waiters);

#endif /* PROXYD_COLLAPSE_H */
