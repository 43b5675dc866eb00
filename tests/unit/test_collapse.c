#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

/*
 * test_collapse.c - unit tests of request collapsing (proxyd/collapse.c): leader, waiter,
 * busy and pass answers; wake-ups with their reasons, in the waiter's own event base and
 * from another thread (a worker, or the store's writer thread through
 * cache_store_notify()); the lock timeout; the lock age (a lead taken over with its
 * waiters); cancelled waiters are never called back; a leader that served stale on error
 * hands every waiter COLLAPSE_WAKE_STALE with its detail, and no pass memory.
 */

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <check.h>
#include <event2/event.h>
#include <event2/thread.h>

#include "collapse.h"
#include "store.h"
#include "unit.h"

#define NOWAIT 60000 /* a lock timeout no test reaches */

static struct event_base *base;

struct woken {
	int n;
	enum collapse_wake why;
	int detail;
};

static void
woken_cb(void *arg, enum collapse_wake why, int detail)
{
	struct woken *w = arg;

	w->n++;
	w->why = why;
	w->detail = detail;
}

static void
setup(void)
{
	unit_tmpdir_setup();
	ck_assert_int_eq(evthread_use_pthreads(), 0);
	ck_assert_ptr_nonnull(base = event_base_new());
}

static void
teardown(void)
{
	event_base_free(base);
	unit_tmpdir_teardown();
}

static struct cache_key
key(const char *url)
{
	struct cache_key k;

	ck_assert_int_eq(cache_key_make(&k, "GET", 3, url, strlen(url)), 0);
	return k;
}

/* the store is only an identity here: any distinct pointer */
static const struct cache_store *const ST = (const struct cache_store *)&base;

START_TEST(test_leader_waiter_busy)
{
	struct cache_key k = key("http://a/1"), k2 = key("http://a/2");
	struct collapse_lock *l, *l2, *lx;
	struct collapse_waiter *w, *wx;
	struct woken a = {0, 0, 0}, b = {0, 0, 0};
	unsigned nl, nw;

	ck_assert_int_eq(collapse_acquire(ST, &k, base, NOWAIT, 0, woken_cb, &a, &l, &w),
	                 COLLAPSE_LEADER);
	ck_assert_ptr_nonnull(l);
	ck_assert_ptr_null(w);
	ck_assert_int_eq(collapse_acquire(ST, &k, base, NOWAIT, 0, woken_cb, &b, &lx, &wx),
	                 COLLAPSE_WAIT);
	ck_assert_ptr_nonnull(wx);
	ck_assert_int_eq(collapse_acquire(ST, &k, NULL, 0, 0, NULL, NULL, &lx, &w), COLLAPSE_BUSY);
	/* another key, or the same key of another store, is independent */
	ck_assert_int_eq(collapse_acquire(ST, &k2, base, NOWAIT, 0, woken_cb, &a, &l2, &w),
	                 COLLAPSE_LEADER);
	ck_assert_int_eq(collapse_acquire((const struct cache_store *)&teardown, &k, NULL, 0, 0,
	                                  NULL, NULL, &lx, &w),
	                 COLLAPSE_LEADER);
	collapse_release(lx, 0);
	collapse_counts(&nl, &nw);
	ck_assert_uint_eq(nl, 2);
	ck_assert_uint_eq(nw, 1);
	collapse_release(l, 0);
	ck_assert_int_eq(b.n, 0); /* woken through its base only */
	event_base_loop(base, EVLOOP_NONBLOCK);
	ck_assert_int_eq(b.n, 1);
	ck_assert_int_eq(b.why, COLLAPSE_WAKE_GO);
	ck_assert_int_eq(a.n, 0);
	collapse_release(l2, 0);
	/* released without the pass memory: the next request leads */
	ck_assert_int_eq(collapse_acquire(ST, &k, base, NOWAIT, 0, woken_cb, &a, &l, &w),
	                 COLLAPSE_LEADER);
	collapse_release(l, 0);
	collapse_counts(&nl, &nw);
	ck_assert_uint_eq(nl, 0);
	ck_assert_uint_eq(nw, 0);
}
END_TEST

START_TEST(test_uncacheable_pass)
{
	struct cache_key k = key("http://a/pass");
	struct collapse_lock *l, *lx;
	struct collapse_waiter *w;
	struct woken a = {0, 0, 0};

	ck_assert_int_eq(collapse_acquire(ST, &k, base, NOWAIT, 0, woken_cb, &a, &l, &w),
	                 COLLAPSE_LEADER);
	collapse_release(l, 1);
	/* recently uncacheable: requests pass, a refresh (try) may still lead */
	ck_assert_int_eq(collapse_acquire(ST, &k, base, NOWAIT, 0, woken_cb, &a, &lx, &w),
	                 COLLAPSE_PASS);
	ck_assert_ptr_null(lx);
	ck_assert_ptr_null(w);
	ck_assert_int_eq(collapse_acquire(ST, &k, NULL, 0, 0, NULL, NULL, &l, &w), COLLAPSE_LEADER);
	ck_assert_int_eq(collapse_acquire(ST, &k, base, NOWAIT, 0, woken_cb, &a, &lx, &w),
	                 COLLAPSE_WAIT);
	collapse_release(l, 0);
	event_base_loop(base, EVLOOP_NONBLOCK);
	ck_assert_int_eq(a.n, 1);
	ck_assert_int_eq(a.why, COLLAPSE_WAKE_GO);
}
END_TEST

START_TEST(test_release_stale)
{
	struct cache_key k = key("http://a/stale");
	struct collapse_lock *l, *lx;
	struct collapse_waiter *w;
	struct woken a[3];
	unsigned nl, nw;

	memset(a, 0, sizeof(a));
	ck_assert_int_eq(collapse_acquire(ST, &k, base, NOWAIT, 0, woken_cb, &a[0], &l, &w),
	                 COLLAPSE_LEADER);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(
		        collapse_acquire(ST, &k, base, NOWAIT, 0, woken_cb, &a[i], &lx, &w),
		        COLLAPSE_WAIT);
	collapse_release_stale(l, 0x40);
	collapse_counts(&nl, &nw);
	ck_assert_uint_eq(nl, 0);
	ck_assert_uint_eq(nw, 0);
	event_base_loop(base, EVLOOP_NONBLOCK);
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(a[i].n, 1);
		ck_assert_int_eq(a[i].why, COLLAPSE_WAKE_STALE);
		ck_assert_int_eq(a[i].detail, 0x40);
	}
	/* no pass memory: the next request leads (and its waiters are woken as usual) */
	ck_assert_int_eq(collapse_acquire(ST, &k, base, NOWAIT, 0, woken_cb, &a[0], &l, &w),
	                 COLLAPSE_LEADER);
	ck_assert_int_eq(collapse_acquire(ST, &k, base, NOWAIT, 0, woken_cb, &a[1], &lx, &w),
	                 COLLAPSE_WAIT);
	collapse_release(l, 0);
	event_base_loop(base, EVLOOP_NONBLOCK);
	ck_assert_int_eq(a[1].n, 2);
	ck_assert_int_eq(a[1].why, COLLAPSE_WAKE_GO);
	ck_assert_int_eq(a[1].detail, 0);
	collapse_release_stale(NULL, 1); /* allowed, like collapse_release(NULL, ...) */
}
END_TEST

START_TEST(test_cancel)
{
	struct cache_key k = key("http://a/cancel");
	struct collapse_lock *l, *lx;
	struct collapse_waiter *w1, *w2, *w;
	struct woken a = {0, 0, 0}, b = {0, 0, 0};
	unsigned nl, nw;

	ck_assert_int_eq(collapse_acquire(ST, &k, base, NOWAIT, 0, woken_cb, &a, &l, &w),
	                 COLLAPSE_LEADER);
	ck_assert_int_eq(collapse_acquire(ST, &k, base, NOWAIT, 0, woken_cb, &a, &lx, &w1),
	                 COLLAPSE_WAIT);
	ck_assert_int_eq(collapse_acquire(ST, &k, base, NOWAIT, 0, woken_cb, &b, &lx, &w2),
	                 COLLAPSE_WAIT);
	collapse_cancel(w1); /* its client left before the fetch ended */
	collapse_counts(&nl, &nw);
	ck_assert_uint_eq(nw, 1);
	collapse_release(l, 0);
	event_base_loop(base, EVLOOP_NONBLOCK);
	ck_assert_int_eq(a.n, 0);
	ck_assert_int_eq(b.n, 1);
	/* cancelled after the wake-up was queued, before it ran: never called either */
	ck_assert_int_eq(collapse_acquire(ST, &k, base, NOWAIT, 0, woken_cb, &a, &l, &w),
	                 COLLAPSE_LEADER);
	ck_assert_int_eq(collapse_acquire(ST, &k, base, NOWAIT, 0, woken_cb, &a, &lx, &w1),
	                 COLLAPSE_WAIT);
	collapse_release(l, 0);
	collapse_cancel(w1);
	event_base_loop(base, EVLOOP_NONBLOCK);
	ck_assert_int_eq(a.n, 0);
}
END_TEST

START_TEST(test_timeout)
{
	struct cache_key k = key("http://a/timeout");
	struct collapse_lock *l, *lx;
	struct collapse_waiter *w;
	struct woken a = {0, 0, 0};
	unsigned nl, nw;

	ck_assert_int_eq(collapse_acquire(ST, &k, base, NOWAIT, 0, woken_cb, &a, &l, &w),
	                 COLLAPSE_LEADER);
	ck_assert_int_eq(collapse_acquire(ST, &k, base, 20, 0, woken_cb, &a, &lx, &w),
	                 COLLAPSE_WAIT);
	event_base_loop(base, EVLOOP_ONCE); /* blocks until the 20 ms pass */
	ck_assert_int_eq(a.n, 1);
	ck_assert_int_eq(a.why, COLLAPSE_WAKE_TIMEOUT);
	collapse_counts(&nl, &nw);
	ck_assert_uint_eq(nw, 0);
	collapse_release(l, 0); /* nobody left to wake */
	event_base_loop(base, EVLOOP_NONBLOCK);
	ck_assert_int_eq(a.n, 1);
}
END_TEST

/* A lead older than age_ms is taken over: the waiters follow the new leader. */
START_TEST(test_lock_age)
{
	struct cache_key k = key("http://a/age");
	struct collapse_lock *old, *nl_, *lx;
	struct collapse_waiter *w;
	struct woken a = {0, 0, 0}, b = {0, 0, 0};
	struct timespec ts = {0, 600 * 1000 * 1000};
	unsigned nl, nw;

	ck_assert_int_eq(collapse_acquire(ST, &k, base, NOWAIT, 400, woken_cb, &a, &old, &w),
	                 COLLAPSE_LEADER);
	/* young: a waiter */
	ck_assert_int_eq(collapse_acquire(ST, &k, base, NOWAIT, 400, woken_cb, &a, &lx, &w),
	                 COLLAPSE_WAIT);
	nanosleep(&ts, NULL);
	/* a try (stale-while-revalidate) never takes over; age 0 never does */
	ck_assert_int_eq(collapse_acquire(ST, &k, NULL, 0, 400, NULL, NULL, &lx, &w),
	                 COLLAPSE_BUSY);
	ck_assert_int_eq(collapse_acquire(ST, &k, base, NOWAIT, 0, woken_cb, &b, &lx, &w),
	                 COLLAPSE_WAIT);
	/* 600 ms > 400 ms: this one leads now, and the two waiters are its */
	ck_assert_int_eq(collapse_acquire(ST, &k, base, NOWAIT, 400, woken_cb, &b, &nl_, &w),
	                 COLLAPSE_LEADER);
	collapse_counts(&nl, &nw);
	ck_assert_uint_eq(nl, 2);
	ck_assert_uint_eq(nw, 2);
	collapse_release(old, 1); /* the old fetch ends: nobody is woken, nothing remembered */
	event_base_loop(base, EVLOOP_NONBLOCK);
	ck_assert_int_eq(a.n + b.n, 0);
	collapse_counts(&nl, &nw);
	ck_assert_uint_eq(nl, 1);
	ck_assert_uint_eq(nw, 2);
	collapse_release(nl_, 0);
	event_base_loop(base, EVLOOP_NONBLOCK);
	ck_assert_int_eq(a.n, 1);
	ck_assert_int_eq(b.n, 1);
	ck_assert_int_eq(a.why, COLLAPSE_WAKE_GO);
	collapse_counts(&nl, &nw);
	ck_assert_uint_eq(nl, 0);
	ck_assert_uint_eq(nw, 0);
	/* the key is free again (the orphan's uncacheable verdict was not remembered) */
	ck_assert_int_eq(collapse_acquire(ST, &k, NULL, 0, 0, NULL, NULL, &lx, &w),
	                 COLLAPSE_LEADER);
	collapse_release(lx, 0);
}
END_TEST

/* A worker thread: waits on its own base until its waiter is called back. */
struct worker {
	struct event_base *base;
	struct woken w;
	pthread_t t;
};

static void
worker_cb(void *arg, enum collapse_wake why, int detail)
{
	struct worker *wk = arg;

	woken_cb(&wk->w, why, detail);
	event_base_loopbreak(wk->base);
}

static void *
worker_main(void *arg)
{
	struct worker *wk = arg;

	/* EVLOOP_NO_EXIT_ON_EMPTY: the waiter's event is its only one, and may fire first */
	event_base_loop(wk->base, EVLOOP_NO_EXIT_ON_EMPTY);
	return NULL;
}

/* Waiters in two other threads; the release comes from this one, or from the writer. */
static void
cross_thread(struct cache_store *st, int after)
{
	struct cache_key k = key("http://a/threads");
	struct collapse_lock *l, *lx;
	struct collapse_waiter *w;
	struct worker wk[2];
	const struct cache_store *id = st != NULL ? st : ST;

	ck_assert_int_eq(collapse_acquire(id, &k, base, NOWAIT, 0, woken_cb, NULL, &l, &w),
	                 COLLAPSE_LEADER);
	for (int i = 0; i < 2; i++) {
		memset(&wk[i], 0, sizeof(wk[i]));
		ck_assert_ptr_nonnull(wk[i].base = event_base_new());
		ck_assert_int_eq(
		        collapse_acquire(id, &k, wk[i].base, NOWAIT, 0, worker_cb, &wk[i], &lx, &w),
		        COLLAPSE_WAIT);
		ck_assert_int_eq(pthread_create(&wk[i].t, NULL, worker_main, &wk[i]), 0);
	}
	if (after)
		collapse_release_after(l, st);
	else
		collapse_release(l, 0);
	for (int i = 0; i < 2; i++) {
		pthread_join(wk[i].t, NULL);
		ck_assert_int_eq(wk[i].w.n, 1);
		ck_assert_int_eq(wk[i].w.why, after ? COLLAPSE_WAKE_LOOKUP : COLLAPSE_WAKE_GO);
		event_base_free(wk[i].base);
	}
}

START_TEST(test_cross_thread)
{
	cross_thread(NULL, 0);
}
END_TEST

/* Released after the store's writer committed what was queued: an object is visible. */
START_TEST(test_release_after_commit)
{
	struct cache_store_params p;
	struct cache_store *st;
	struct cache_object obj;
	struct cache_put *put;
	struct cache_meta *m = NULL;
	struct cache_key k = key("http://a/obj");
	struct collapse_lock *l;
	struct collapse_waiter *w;
	struct woken a = {0, 0, 0};

	memset(&p, 0, sizeof(p));
	p.path = unit_tmpdir;
	p.max_size = 1 << 20;
	p.flags = CACHE_F_NOSYNC;
	ck_assert_ptr_nonnull(st = cache_store_open(&p, NULL));
	cross_thread(st, 1);

	memset(&obj, 0, sizeof(obj));
	obj.url = "http://a/obj";
	obj.url_len = strlen(obj.url);
	obj.status = 200;
	obj.expected_len = 5;
	obj.fresh.swr = obj.fresh.sie = -1;
	ck_assert_int_eq(collapse_acquire(st, &k, base, NOWAIT, 0, woken_cb, &a, &l, &w),
	                 COLLAPSE_LEADER);
	ck_assert_ptr_nonnull(put = cache_put_begin(st, &k, &obj));
	ck_assert_int_eq(cache_put_write(put, "hello", 5), 0);
	ck_assert_int_eq(cache_put_commit(put), 0);
	collapse_release_after(l, st);
	cache_store_flush(st);
	/* the writer ran the notification after the commit: the key is free and stored */
	ck_assert_int_eq(collapse_acquire(st, &k, NULL, 0, 0, NULL, NULL, &l, &w), COLLAPSE_LEADER);
	collapse_release(l, 0);
	ck_assert_int_eq(cache_get(st, &k, NULL, 0, CACHE_GET_COUNT, &m), 1);
	cache_meta_free(m);
	cache_store_close(st);

	/* no writer (no store): the release runs at once */
	ck_assert_int_eq(collapse_acquire(ST, &k, base, NOWAIT, 0, woken_cb, &a, &l, &w),
	                 COLLAPSE_LEADER);
	collapse_release_after(l, NULL);
	ck_assert_int_eq(collapse_acquire(ST, &k, NULL, 0, 0, NULL, NULL, &l, &w), COLLAPSE_LEADER);
	collapse_release(l, 0);
}
END_TEST

static Suite *
suite(void)
{
	Suite *s = suite_create("collapse");
	TCase *tc = tcase_create("collapse");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_leader_waiter_busy);
	tcase_add_test(tc, test_uncacheable_pass);
	tcase_add_test(tc, test_release_stale);
	tcase_add_test(tc, test_cancel);
	tcase_add_test(tc, test_timeout);
	tcase_add_test(tc, test_lock_age);
	tcase_add_test(tc, test_cross_thread);
	tcase_add_test(tc, test_release_after_commit);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return unit_main("test_collapse", suite());
}
