/*
 * fuzz_cache.c - libFuzzer entry point for cache/policy.c.
 *
 * The input is a header list, one "name: value" per line (the first byte picks the
 * status and method). Every policy function runs on it, and these properties abort when
 * they fail:
 *   - a 206 range lies inside the entry (first <= last < length);
 *   - Vary names come out lower-case, sorted and unique, within the buffer;
 *   - a 304 merge never returns more fields than it was given;
 *   - invalidation URLs lie inside the caller's buffer;
 *   - a date that parses formats back to the same instant.
 *
 * Build: clang -fsanitize=fuzzer,address,undefined -Icache tests/fuzz/fuzz_cache.c
 * cache/policy.c
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
emit(void *arg, const void *p, size_t len)
{
	(void)p;
	*(size_t *)arg += len;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const int statuses[8] = {200, 204, 206, 304, 404, 500, 302, 501};
	static const char *const methods[4] = {"GET", "HEAD", "POST", "DELETE"};
	struct cache_header h[64], out[128], inv[3];
	const char *p = (const char *)data, *end = p + size;
	size_t n = 0, vk = 0;
	struct cache_params params;
	struct cache_msg req, resp;
	struct cache_fresh f;
	struct cache_range r;
	char names[256], buf[512], date[30];
	long vl, m;
	int64_t t;

	if (size < 1)
		return 0;
	p++;
	while (p < end && n < 64) {
		const char *nl = memchr(p, '\n', (size_t)(end - p)), *colon;

		if (nl == NULL)
			nl = end;
		colon = memchr(p, ':', (size_t)(nl - p));
		if (colon != NULL) {
			h[n].name = p;
			h[n].name_len = (size_t)(colon - p);
			h[n].value = colon + 1;
			h[n].value_len = (size_t)(nl - colon - 1);
			n++;
		}
		p = nl + 1;
	}
	cache_params_default(&params);
	params.store_set_cookie = data[0] & 0x80;
	req.method = methods[data[0] & 3];
	req.method_len = strlen(req.method);
	req.status = 0;
	req.headers = h;
	req.nheaders = n;
	resp = req;
	resp.status = statuses[(data[0] >> 2) & 7];

	cache_policy_storable(&params, &req, &resp);
	cache_policy_freshness(&params, &resp, 1000000, 1000005, &f);
	if (f.lifetime < 0)
		abort();
	cache_policy_use(&f, &req, 1000100, NULL);
	cache_policy_stale_if_error(&f, &req, 1000100);
	cache_policy_not_modified(&req, "\"x\"", 3, 999999);
	if (cache_policy_range(&req, 1000, "\"x\"", 3, 999999, &r) == CACHE_RANGE_PARTIAL &&
	    (r.first > r.last || r.last >= 1000))
		abort();
	vl = cache_vary_names(h, n, names, sizeof(names));
	if (vl > (long)sizeof(names))
		abort();
	for (long i = 0; i < vl; i++)
		if (names[i] >= 'A' && names[i] <= 'Z')
			abort();
	if (vl > 0)
		cache_vary_key(names, (size_t)vl, h, n, emit, &vk);
	m = cache_policy_merge_304(h, n / 2, h + n / 2, n - n / 2, out, 128);
	if (m > (long)n)
		abort();
	for (size_t i = 0, k = cache_policy_invalidations(&req, &resp, "http://h/p", 10, buf,
	                                                  sizeof(buf), inv);
	     i < k; i++)
		if (inv[i].value < buf || inv[i].value + inv[i].value_len > buf + sizeof(buf))
			abort();
	for (size_t i = 0; i < n; i++) {
		t = cache_http_date(h[i].value, h[i].value_len);
		if (t >= 0 && t < 253402300800) { /* before year 10000 */
			cache_http_date_format(t, date);
			if (cache_http_date(date, strlen(date)) != t)
				abort();
		}
	}
	return 0;
}
