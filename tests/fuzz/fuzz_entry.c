/*
 * fuzz_entry.c - libFuzzer entry point for the cache entry decoder, cache_meta_decode()
 * (cache/store.c), and what the daemon does with a decoded entry (cache/policy.c).
 *
 * The input is one meta record as LMDB returns it (store.h, "On-disk format"). A record
 * may be corrupt (a crash, a bad disk, another program), so nothing in it is trusted. When
 * it decodes, the entry is used as proxyd/session_cache.c uses a hit, against a few fixed
 * requests, and these properties abort when they fail:
 *   - the decoded url, headers, Vary names and ETag lie inside the record;
 *   - the headers slice into fields that lie inside the headers block, never more than
 *     the caller's capacity;
 *   - the current age is never negative, a 206 range lies inside the body;
 *   - the decoder returns one of the two kinds or -1, nothing else.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"
#include "store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define H(n, v)                                                                                    \
	{                                                                                          \
		n, sizeof(n) - 1, v, sizeof(v) - 1                                                 \
	}

static const struct cache_header req_plain[] = {H("host", "example.com")};
static const struct cache_header req_cond[] = {
        H("if-none-match", "\"v1\", W/\"v2\""),
        H("if-modified-since", "Sun, 06 Nov 1994 08:49:37 GMT"), H("range", "bytes=0-99"),
        H("accept-encoding", "gzip")};
static const struct cache_header req_stale[] = {H("cache-control", "max-stale=60, min-fresh=5"),
                                                H("range", "bytes=-500"), H("if-range", "\"v1\"")};
static const struct cache_header req_nocache[] = {H("cache-control", "no-cache, max-age=0"),
                                                  H("pragma", "no-cache"), H("range", "bytes=7-")};

static void
check_inside(const void *p, size_t len, const uint8_t *data, size_t size)
{
	const uint8_t *q = p;

	if (len == 0)
		return;
	if (q < data || q > data + size || len > (size_t)(data + size - q))
		abort();
}

static void
emit(void *arg, const void *p, size_t len)
{
	(void)p;
	*(size_t *)arg += len;
}

static void
use_entry(const struct cache_meta *m, const struct cache_header *h, size_t n, int64_t now)
{
	struct cache_msg req = {"GET", 3, 0, h, n};
	struct cache_header val[2];
	struct cache_range r;
	char date[30];
	int64_t age = 0;
	size_t vk = 0;

	(void)cache_policy_use(&m->fresh, &req, now, &age);
	if (age < 0 || cache_fresh_age(&m->fresh, now) < 0)
		abort();
	(void)cache_policy_stale_if_error(&m->fresh, &req, now);
	(void)cache_policy_not_modified(&req, m->etag, m->etag_len, m->last_modified);
	(void)cache_policy_validators(m->etag, m->etag_len, m->last_modified, val, date);
	if (cache_policy_range(&req, m->body_len, m->etag, m->etag_len, m->last_modified, &r) ==
	            CACHE_RANGE_PARTIAL &&
	    (r.first > r.last || r.last >= m->body_len))
		abort();
	if (m->vary_len > 0)
		cache_vary_key(m->vary, m->vary_len, h, n, emit, &vk);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cache_header h[64];
	struct cache_meta m;
	long n;
	int kind;

	memset(&m, 0, sizeof(m));
	kind = cache_meta_decode(data, size, &m);
	if (kind == -1)
		return 0;
	if (kind != CACHE_META_OBJECT && kind != CACHE_META_VARY)
		abort();
	check_inside(m.url, m.url_len, data, size);
	check_inside(m.headers, m.headers_len, data, size);
	check_inside(m.vary, m.vary_len, data, size);
	if (m.etag != NULL || m.etag_len > 0)
		check_inside(m.etag, m.etag_len, data, size);
	n = cache_meta_headers(&m, h, sizeof(h) / sizeof(h[0]));
	if (n > (long)(sizeof(h) / sizeof(h[0])))
		abort();
	for (long i = 0; i < n; i++) {
		check_inside(h[i].name, h[i].name_len, (const uint8_t *)m.headers, m.headers_len);
		check_inside(h[i].value, h[i].value_len, (const uint8_t *)m.headers, m.headers_len);
	}
	use_entry(&m, req_plain, 1, m.response_time);
	use_entry(&m, req_cond, 4, (int64_t)((uint64_t)m.response_time + 30));
	use_entry(&m, req_stale, 3, 1700000000);
	use_entry(&m, req_nocache, 3, 4102444800);
	return 0;
}
