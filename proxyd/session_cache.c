/*
 * session_cache.c - a session's use of the HTTP cache (`cache` servers): lookup, hits served
 * from the store, storing a response while it streams, request collapsing, background
 * refreshes (stale-while-revalidate), stale-if-error, ranges, invalidation and PURGE.
 *
 * Separate from session.c because none of it runs for an uncached request: session.c keeps
 * the per-request path and its inlined helpers, and calls in here only on cache servers.
 * Shares struct session and its helpers through session_int.h.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>

#include "collapse.h"
#include "log.h"
#include "metrics.h"
#include "policy.h"
#include "session.h"
#include "session_int.h"
#include "store.h"

/* What a request head is to the cache policy. */
static void
session_cache_msg(const struct http_msg *msg, struct cache_header *h, struct cache_msg *m)
{
	size_t n = msg->nheaders < HTTP_MAX_HEADERS ? msg->nheaders : HTTP_MAX_HEADERS;

	for (size_t i = 0; i < n; i++) {
		h[i].name = msg->headers[i].name.p;
		h[i].name_len = msg->headers[i].name.len;
		h[i].value = msg->headers[i].value.p;
		h[i].value_len = msg->headers[i].value.len;
	}
	m->method = msg->method_name.p;
	m->method_len = msg->method_name.len;
	m->status = msg->status_code;
	m->headers = h;
	m->nheaders = n;
}

/*
 * The normalized URL of the request (the cache key's and invalidation's) in s->curl, a
 * buffer kept for the session's next requests; -1 (and s->curl NULL) if unusable.
 */
static int
session_cache_url(struct session *s, const struct http_msg *msg)
{
	char raw[8192];
	const char *target = msg->form == HTTP_TARGET_ABSOLUTE ? msg->path.p : msg->target.p;
	size_t tlen = msg->form == HTTP_TARGET_ABSOLUTE ? msg->path.len : msg->target.len;
	size_t n = s->tls ? 8 : 7;
	long len;

	s->curl = NULL;
	if (msg->form == HTTP_TARGET_AUTHORITY || msg->form == HTTP_TARGET_ASTERISK ||
	    n + msg->host.len + 6 + tlen >= sizeof(raw))
		return -1;
	memcpy(raw, s->tls ? "https://" : "http://", n);
	memcpy(raw + n, msg->host.p, msg->host.len);
	n += msg->host.len;
	if (msg->port != 0) {
		raw[n++] = ':';
		n += session_fmt_u64(raw + n, msg->port, 10);
	}
	memcpy(raw + n, target, tlen);
	n += tlen;
	if (s->curl_cap < n + 1) {
		char *b = realloc(s->curl_buf, n + 1 > 256 ? n + 1 : 256);

		if (b == NULL)
			return -1;
		s->curl_buf = b;
		s->curl_cap = n + 1 > 256 ? n + 1 : 256;
	}
	if ((len = rules_url_normalize(raw, n, s->curl_buf, n + 1)) < 0)
		return -1;
	s->curl = s->curl_buf;
	s->curl_len = (size_t)len;
	return 0;
}

/* Whether one of rules matches the request msg (cache_bypass, no_cache). */
static int
session_cache_rules(struct session *s, const struct http_msg *msg, struct rules_rule *const *rules,
                    size_t n)
{
	struct session_subject *ss = s->env->subject;

	if (n == 0 || session_rules_subject(s->srv, msg, (const struct sockaddr *)&s->client_ss,
	                                    s->user, session_now(), ss) != 0)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (rules_eval(rules[i], &ss->subj, s->env->rscratch, NULL) == RULES_MATCH)
			return 1;
	return 0;
}

/* The server's cache policy parameters (cache_valid, cache_heuristic, ...). */
static void
session_cache_params(const struct session *s, struct cache_params *cp)
{
	cache_params_default(cp);
	cp->valid = s->srv->cache_valid;
	cp->nvalid = s->srv->ncache_valid;
	cp->heuristic_fraction = s->srv->cache_heuristic / 100.0;
	cp->heuristic_max = s->srv->cache_heuristic_max_s;
	cp->store_set_cookie = s->srv->cache_store_set_cookie;
}

/* Cache-Status (RFC 9211) and X-Cache of a response of a cache-enabled server. */
void
session_cache_fields(const struct session *s, struct evbuffer *out, int stored)
{
	if (s->cmode == CMODE_NONE)
		return;
	if (s->srv->cache_status) {
		if (s->cmode == CMODE_HIT || s->cmode == CMODE_UPDATING || s->cmode == CMODE_SWR) {
			/* CMODE_SWR: a stale hit that sent a refresh forward */
			char line[80] = "Cache-Status: proxyd; hit; ttl=";
			size_t n = 31;

			if (s->cttl < 0)
				line[n++] = '-';
			n += session_fmt_u64(
			        line + n, s->cttl < 0 ? 0 - (uint64_t)s->cttl : (uint64_t)s->cttl,
			        10);
			if (s->cmode == CMODE_SWR) {
				memcpy(line + n, "; fwd=stale", 11);
				n += 11;
			}
			memcpy(line + n, "\r\n", 2);
			evbuffer_add(out, line, n + 2);
		} else if (s->cmode == CMODE_REVALIDATED)
			evbuffer_add_printf(out,
			                    "Cache-Status: proxyd; fwd=stale; fwd-status=304\r\n");
		else if (s->cmode == CMODE_STALE) {
			char st[32] = "";

			if (s->cfwd_status != 0)
				snprintf(st, sizeof(st), "; fwd-status=%d", s->cfwd_status);
			evbuffer_add_printf(out,
			                    "Cache-Status: proxyd; fwd=stale%s; ttl=%" PRId64
			                    "; detail=stale-if-error\r\n",
			                    st, s->cttl);
		} else
			evbuffer_add_printf(out, "Cache-Status: proxyd; fwd=%s%s\r\n",
			                    session_cmode_info[s->cmode].fwd,
			                    stored ? "; stored" : "");
	}
	if (s->srv->x_cache) {
		evbuffer_add(out, "X-Cache: ", 9);
		evbuffer_add(out, session_cmode_info[s->cmode].word,
		             strlen(session_cmode_info[s->cmode].word));
		evbuffer_add(out, "\r\n", 2);
	}
}

/* Collapsing: let whoever waits for this request's fetch go upstream themselves, now. */
void
session_cache_unlock(struct session *s)
{
	collapse_release(s->clock, 0);
	s->clock = NULL;
}

/*
 * The body being stored ended: commit it if complete (waiters look it up once the store
 * has committed it), else drop it (waiters go upstream).
 */
void
session_cache_tee_end(struct session *s, int complete)
{
	struct cache_put *p = s->resp.tee;

	if (p == NULL)
		return;
	s->resp.tee = NULL;
	/* complete: visible from now on; a dropped one never is */
	if (complete && !s->resp.tee_failed && cache_put_commit(p) == 0) {
		metrics_srv_inc(s->srv, MS_CACHE_STORES);
		collapse_release_after(s->clock, s->srv->cache->store);
		s->clock = NULL;
		return;
	}
	if (!complete || s->resp.tee_failed)
		cache_put_abort(p);
	if (complete) /* the store dropped it or could not commit it */
		metrics_srv_inc(s->srv, MS_CACHE_STORE_FAILURES);
	session_cache_unlock(s);
}

/*
 * The fetch this request waited for is over (or the lock timed out): start the request
 * again from its head, still in the input; it looks the cache up again and, on a miss,
 * goes upstream without waiting twice. When the leader's fetch failed and it served the
 * stale entry (COLLAPSE_WAKE_STALE, detail: the failure), the lookup serves that entry too
 * if this request accepts it (session_cache_stale_shared()).
 */
static void
session_cache_woken(void *arg, enum collapse_wake why, int detail)
{
	struct session *s = arg;
	const struct cfg_server *srv = s->srv;
	struct evbuffer *in = bufferevent_get_input(s->cbev);
	struct http_limits lim = {srv->client_max_header_size, srv->client_max_target,
	                          srv->client_max_headers};
	struct http_msg *msg = &s->env->scratch;
	size_t len = evbuffer_get_length(in);
	size_t n = len < lim.max_head + 1 ? len : lim.max_head + 1;
	const char *p;

	SESSION_CHECK(s);
	s->cwait = NULL;
	s->cnolock = 1;
	s->cnostore = why == COLLAPSE_WAKE_TIMEOUT;
	s->cstale_cond = why == COLLAPSE_WAKE_STALE ? detail : 0;
	p = (const char *)evbuffer_pullup(in, (ssize_t)n);
	if (p == NULL || http_parse_request(p, n, &lim, msg) <= 0) {
		session_close(s, "request head lost while waiting for the cache");
		return;
	}
	session_start_request(s, msg, p);
}

static void
session_cache_done(struct session *s)
{
	cache_meta_free(s->chit);
	s->chit = NULL;
	session_answered(s);
}

/*
 * After a write of out that may have left bytes lent by cache view cv (the last refs
 * bytes added, by reference): move whatever is left into memory of out's own, so that the
 * view can end. The bytes before them are moved without copying; lent bytes are copied by
 * cache_view_copy() (the map may have been cut short under them). -1 when out of memory
 * or the copy faulted: then out is emptied (nothing lent may stay) and the session must
 * close.
 */
static int
session_cache_unview(struct evbuffer *out, size_t refs, struct cache_view *cv)
{
	size_t left = evbuffer_get_length(out), keep = left > refs ? left - refs : 0;
	struct evbuffer *own;
	int rc = 0;

	if (left == 0)
		return 0;
	evbuffer_unfreeze(out, 1); /* see bev_flush() in session.c */
	if ((own = evbuffer_new()) == NULL ||
	    (keep > 0 && evbuffer_remove_buffer(out, own, keep) != (int)keep))
		rc = -1;
	while (rc == 0 && evbuffer_get_length(out) > 0) {
		struct evbuffer_iovec v, w;

		if (evbuffer_peek(out, -1, NULL, &v, 1) < 1 || v.iov_len == 0 ||
		    evbuffer_reserve_space(own, (ev_ssize_t)v.iov_len, &w, 1) < 1)
			rc = -1;
		else if (cache_view_copy(cv, w.iov_base, v.iov_base, v.iov_len) == -1) {
			evbuffer_commit_space(own, &w, 0);
			rc = -1;
		} else {
			w.iov_len = v.iov_len;
			evbuffer_commit_space(own, &w, 1);
			evbuffer_drain(out, v.iov_len);
		}
	}
	if (rc == -1)
		evbuffer_drain(out, evbuffer_get_length(out));
	evbuffer_freeze(out, 1);
	if (rc == 0 && evbuffer_add_buffer(out, own) == -1)
		rc = -1;
	if (own != NULL)
		evbuffer_free(own);
	return rc;
}

/*
 * Move the body of the entry being served into the client's output, as it drains. On a
 * plain socket the body is added by reference to the cache's map and written at once;
 * what the socket does not take is copied before the view ends (session_cache_unview).
 */
void
session_cache_pump(struct session *s)
{
	struct evbuffer *out = bufferevent_get_output(s->cbev);
	struct cache_meta *m = s->chit;
	struct cache_view view;
	int viewing = bufferevent_openssl_get_ssl(s->cbev) == NULL &&
	              cache_view_begin(s->srv->cache->store, &view) == 0;
	size_t lent = 0;
	int gone = 0;

	while (s->coff < s->cend && evbuffer_get_length(out) < RELAY_HIGH) {
		struct evbuffer_iovec v;
		size_t want = s->cend - s->coff < IO_CHUNK ? (size_t)(s->cend - s->coff) : IO_CHUNK;
		const void *p;
		ssize_t r;

		if (viewing) {
			r = cache_view(&view, m, s->coff, want, &p);
			if (r > 0 && evbuffer_add_reference(out, p, (size_t)r, NULL, NULL) == -1) {
				gone = -1;
				break;
			}
			lent += r > 0 ? (size_t)r : 0;
		} else {
			if (evbuffer_reserve_space(out, (ev_ssize_t)want, &v, 1) < 1) {
				gone = -1;
				break;
			}
			r = cache_read(s->srv->cache->store, m, s->coff, v.iov_base, want);
			v.iov_len = r > 0 ? (size_t)r : 0;
			evbuffer_commit_space(out, &v, r > 0 ? 1 : 0);
		}
		if (r <= 0) {
			gone = 1;
			break;
		}
		s->coff += (uint64_t)r;
		s->resp.moved += (uint64_t)r;
	}
	if (gone != -1)
		session_bev_flush(s->cbev);
	if (viewing) {
		if (lent > 0 && session_cache_unview(out, lent, &view) == -1)
			gone = cache_store_broken(s->srv->cache->store) ? 1 : -1;
		cache_view_end(&view);
	}
	if (gone == -1) {
		session_close(s, "out of memory");
		return;
	}
	if (gone) {
		/* evicted or replaced under us: the client sees the body end early */
		log_info("*%" PRIu64 " client %s: cache entry gone while serving %s", s->id,
		         s->client, s->curl != NULL ? s->curl : "-");
		s->keepalive = 0;
		session_cache_done(s);
		return;
	}
	if (s->coff == s->cend)
		session_cache_done(s);
}

/*
 * Answer from the stored entry m with the fields h[0..n) (its own, or as a 304 updated
 * them): status (m's, 304, or 206/416 for a Range), Age, the cache fields; the body follows
 * unless head_only. A 206 serves bytes s->coff up to s->cend, which the caller set.
 */
static void
session_cache_respond(struct session *s, struct cache_meta *m, const struct cache_header *h, long n,
                      int status, int head_only)
{
	struct evbuffer *out = bufferevent_get_output(s->cbev);
	const char *reason = http_reason(status);
	size_t rlen = strlen(reason), need = rlen + 200, k = 0;
	struct evbuffer_iovec v;
	char *b;

	/* the head up to the cache fields, written in one piece (no printf: it showed in profiles)
	 */
	for (long i = 0; i < n; i++)
		need += h[i].name_len + h[i].value_len + 4;
	size_t out0 = evbuffer_get_length(out);
	if (evbuffer_reserve_space(out, (ev_ssize_t)need, &v, 1) < 1) {
		cache_meta_free(m);
		session_close(s, "out of memory");
		return;
	}
	b = v.iov_base;
	memcpy(b, "HTTP/1.1 ", 9);
	k = 9 + session_fmt_u64(b + 9, (uint64_t)status, 10);
	b[k++] = ' ';
	memcpy(b + k, reason, rlen);
	k += rlen;
	for (long i = 0; i < n; i++) {
		const struct cache_header *f = &h[i];

		/* framing and age are this response's own */
		if ((f->name_len == 14 && strncasecmp(f->name, "content-length", 14) == 0) ||
		    (f->name_len == 17 && strncasecmp(f->name, "transfer-encoding", 17) == 0) ||
		    (f->name_len == 3 && strncasecmp(f->name, "age", 3) == 0))
			continue;
		memcpy(b + k, "\r\n", 2);
		memcpy(b + k + 2, f->name, f->name_len);
		k += 2 + f->name_len;
		memcpy(b + k, ": ", 2);
		memcpy(b + k + 2, f->value, f->value_len);
		k += 2 + f->value_len;
	}
	memcpy(b + k, "\r\nAge: ", 7);
	k += 7 + session_fmt_u64(b + k + 7, s->cage > 0 ? (uint64_t)s->cage : 0, 10);
	if (status != 206) {
		s->coff = 0;
		s->cend = status == 416 ? 0 : m->body_len;
	}
	if (status == 206) {
		memcpy(b + k, "\r\nContent-Range: bytes ", 23);
		k += 23 + session_fmt_u64(b + k + 23, s->coff, 10);
		b[k++] = '-';
		k += session_fmt_u64(b + k, s->cend - 1, 10);
		b[k++] = '/';
		k += session_fmt_u64(b + k, m->body_len, 10);
	} else if (status == 416) {
		memcpy(b + k, "\r\nContent-Range: bytes */", 25);
		k += 25 + session_fmt_u64(b + k + 25, m->body_len, 10);
	}
	if (status != 304) {
		memcpy(b + k, "\r\nContent-Length: ", 18);
		k += 18 + session_fmt_u64(b + k + 18, s->cend - s->coff, 10);
	}
	memcpy(b + k, "\r\n", 2);
	v.iov_len = k + 2;
	evbuffer_commit_space(out, &v, 1);
	session_cache_fields(s, out, 0);
	session_add_headers(s, out, status);
	if (!s->keepalive)
		evbuffer_add(out, "Connection: close\r\n", 19);
	else if (s->minor == 0)
		evbuffer_add(out, "Connection: keep-alive\r\n", 24);
	evbuffer_add(out, "\r\n", 2);
	s->resp_head_len += evbuffer_get_length(out) - out0;
	s->status = status;
	s->resp_started = 1;
	s->state = S_UPSTREAM;
	evtimer_del(s->timer);
	if (status == 304 || head_only || s->cend == s->coff) {
		cache_meta_free(m);
		session_cache_done(s);
		return;
	}
	s->chit = m;
	bufferevent_setwatermark(s->cbev, EV_WRITE, RELAY_HIGH / 2, 0);
	session_cache_pump(s);
}

/*
 * The status the entry m answers the request reqm with: 304 for a matching conditional;
 * for a 200 entry and a GET with one satisfiable `bytes=` range (If-Range permitting) 206,
 * with s->coff and s->cend set to the slice; 416 for an unsatisfiable one; else m's own.
 * Several ranges get the whole 200 (RFC 9110 14.2 lets a server ignore Range).
 */
static int
session_cache_status(struct session *s, const struct cache_meta *m, const struct cache_msg *reqm)
{
	struct cache_range r;

	if (cache_policy_not_modified(reqm, m->etag, m->etag_len, m->last_modified))
		return 304;
	if (m->status != 200)
		return m->status;
	switch (cache_policy_range(reqm, m->body_len, m->etag, m->etag_len, m->last_modified, &r)) {
	case CACHE_RANGE_PARTIAL:
		s->coff = r.first;
		s->cend = r.last + 1;
		return 206;
	case CACHE_RANGE_UNSATISFIABLE:
		return 416;
	default:
		return 200;
	}
}

/* Answer msg from the stored entry m (fresh, or stale as the client allows). */
static void
session_cache_serve(struct session *s, const struct http_msg *msg, struct cache_meta *m,
                    const struct cache_msg *reqm)
{
	struct cache_header h[HTTP_MAX_HEADERS];
	int status = session_cache_status(s, m, reqm);
	long n = cache_meta_headers(m, h, HTTP_MAX_HEADERS);

	if (http_request_body(msg) != HTTP_BODY_NONE)
		s->keepalive = 0; /* its body is not read */
	evbuffer_drain(bufferevent_get_input(s->cbev), msg->head_len);
	session_cache_respond(s, m, h, n, status, msg->method == HTTP_M_HEAD);
}

/*
 * The origin answered 304 to the validators of the stale entry: update what is stored
 * (RFC 9111 4.3.4: its fields replaced by the 304's, freshness anew) and answer the client
 * from the entry. headlen: the 304's head, still in the upstream input.
 */
void
session_cache_revalidated(struct session *s, const struct http_msg *msg, size_t headlen)
{
	struct cache_meta *m = s->cstale;
	struct cache_header stored[HTTP_MAX_HEADERS], fresh[HTTP_MAX_HEADERS];
	struct cache_header merged[HTTP_MAX_HEADERS];
	struct cache_params cp;
	struct cache_msg respm;
	struct cache_fresh f;
	size_t nfresh = 0;
	long nstored = cache_meta_headers(m, stored, HTTP_MAX_HEADERS), n;
	/*
	 * msg points into the upstream's input, which is drained (and the connection pooled)
	 * below: the 304's fields are copied first
	 */
	const char *base =
	        (const char *)evbuffer_pullup(bufferevent_get_input(s->ubev), (ev_ssize_t)headlen);
	char *copy = base != NULL ? malloc(headlen) : NULL;
	int reuse = http_keepalive(msg) && s->srv->upstream->keepalive > 0 &&
	            s->up_requests + 1 < s->srv->upstream->keepalive_requests;

	s->cstale = NULL;
	if (copy == NULL) {
		cache_meta_free(m);
		session_fail(s, 502, "proxy_internal_error", "out of memory");
		return;
	}
	memcpy(copy, base, headlen);
	for (size_t i = 0; i < msg->nheaders && nfresh < HTTP_MAX_HEADERS; i++) {
		if (hdr_hop(&msg->headers[i]))
			continue;
		fresh[nfresh].name = copy + (msg->headers[i].name.p - base);
		fresh[nfresh].name_len = msg->headers[i].name.len;
		fresh[nfresh].value = copy + (msg->headers[i].value.p - base);
		fresh[nfresh].value_len = msg->headers[i].value.len;
		nfresh++;
	}
	n = cache_policy_merge_304(stored, nstored > 0 ? (size_t)nstored : 0, fresh, nfresh, merged,
	                           HTTP_MAX_HEADERS);
	if (n < 0) {
		n = nstored;
		memcpy(merged, stored, sizeof(merged[0]) * (size_t)(nstored > 0 ? nstored : 0));
	}
	session_cache_params(s, &cp);
	respm.method = NULL;
	respm.method_len = 0;
	respm.status = m->status;
	respm.headers = merged;
	respm.nheaders = (size_t)n;
	cache_policy_freshness(&cp, &respm, s->creq_time, (int64_t)time(NULL), &f);
	cache_update(s->srv->cache->store, m, merged, (size_t)n, s->creq_time, (int64_t)time(NULL),
	             &f);
	collapse_release_after(s->clock, s->srv->cache->store); /* waiters see the update */
	s->clock = NULL;

	/* the 304 has no body: the upstream connection may serve another request */
	up_peer_ok(s->peer);
	up_peer_time(s->srv->upstream, s->peer, 0, s->up_start_ms);
	evbuffer_drain(bufferevent_get_input(s->ubev), headlen);
	session_release_upstream(s, reuse);
	evbuffer_drain(s->req_head, evbuffer_get_length(s->req_head));
	s->cmode = CMODE_REVALIDATED;
	s->cage = 0;
	/* the merged fields point into m and into copy */
	session_cache_respond(s, m, merged, n, m->status, s->method == HTTP_M_HEAD);
	free(copy);
}

/*
 * Whether the stale entry m may answer the request reqm after an upstream failure cond
 * (CFG_NEXT_*): the entry's or the request's stale-if-error (RFC 5861: errors, time-outs,
 * 500, 502, 503, 504) or the server's cache_use_stale (the failures it lists) allows it; an
 * entry with must-revalidate or no-cache never.
 */
static int
session_cache_stale_allowed(const struct session *s, const struct cache_meta *m,
                            const struct cache_msg *reqm, int cond, int64_t now)
{
	const int sie_conds = CFG_NEXT_ERROR | CFG_NEXT_TIMEOUT | CFG_NEXT_INVALID_HEADER |
	                      CFG_NEXT_HTTP_500 | CFG_NEXT_HTTP_502 | CFG_NEXT_HTTP_503 |
	                      CFG_NEXT_HTTP_504;

	return ((cond & sie_conds) && cache_policy_stale_if_error(&m->fresh, reqm, now)) ||
	       ((s->srv->cache_use_stale & cond) &&
	        !(m->fresh.flags & (CACHE_FRESH_MUST_REVALIDATE | CACHE_FRESH_NO_CACHE)));
}

/*
 * A waiter woken by a leader that served the stale entry m on failure cond: may m answer
 * this waiter's request reqm too? As for the leader (session_cache_stale_allowed(), with
 * the waiter's own request), unless the request asks for a response from the origin:
 * `no-cache` (or Pragma: no-cache), or a `max-stale` the entry is past. The leader's
 * failure stands in for the waiter's own attempt only where the waiter would have taken the
 * stale entry on that failure; otherwise it goes upstream itself.
 */
static int
session_cache_stale_shared(const struct session *s, const struct cache_meta *m,
                           const struct cache_msg *reqm, int cond, int64_t now)
{
	struct cache_cc cc;
	int64_t staleness = cache_fresh_age(&m->fresh, now) - m->fresh.lifetime;

	cache_cc_parse(reqm->headers, reqm->nheaders, &cc);
	if (cc.flags & (CACHE_CC_NO_CACHE | CACHE_CC_PRAGMA_NO_CACHE))
		return 0;
	if (!(cc.flags & CACHE_CC_MAX_STALE_ANY) && cc.max_stale >= 0 && staleness > cc.max_stale)
		return 0;
	return session_cache_stale_allowed(s, m, reqm, cond, now);
}

/*
 * The upstream failed before any of its response reached the client: cond says how
 * (CFG_NEXT_ERROR, _TIMEOUT, _INVALID_HEADER, or the CFG_NEXT_HTTP_* of status, the
 * upstream's answer; status 0: none). A stale entry of the request answers instead (X-Cache
 * STALE) when the entry's or the request's stale-if-error (RFC 5861: errors and 500, 502,
 * 503, 504) or the server's cache_use_stale (the failures it lists) allows; an entry with
 * must-revalidate or no-cache never. The entry is looked up again, with the request as sent
 * upstream (its Cache-Control; the Vary key it was stored under). Returns 1 when answered,
 * 0 to report the failure as usual.
 */
int
session_cache_stale_error(struct session *s, int cond, int status)
{
	struct cache_store *st = s->srv->cache != NULL ? s->srv->cache->store : NULL;
	struct cache_header *rh = s->env->subject->chdrs, h[HTTP_MAX_HEADERS];
	struct http_msg *req = s->env->reqmsg;
	struct http_limits lim = {RESP_HEAD_MAX * 4, RESP_HEAD_MAX * 4, HTTP_MAX_HEADERS};
	struct cache_msg reqm;
	struct cache_meta *m = NULL;
	int64_t now = (int64_t)time(NULL), age;
	const char *rq;
	size_t k = 0;
	long n;

	if (st == NULL || s->cmode != CMODE_EXPIRED || s->resp_started || !s->req.done ||
	    req == NULL || s->req_head == NULL)
		return 0;
	rq = (const char *)evbuffer_pullup(s->req_head, -1);
	if (rq == NULL || http_parse_request(rq, evbuffer_get_length(s->req_head), &lim, req) <= 0)
		return 0;
	session_cache_msg(req, rh, &reqm);
	if (s->cstale != NULL) {
		/* the conditionals are proxyd's own (the client sent none): not the client's */
		for (size_t i = 0; i < reqm.nheaders; i++)
			if (!(rh[i].name_len == 13 &&
			      strncasecmp(rh[i].name, "if-none-match", 13) == 0) &&
			    !(rh[i].name_len == 17 &&
			      strncasecmp(rh[i].name, "if-modified-since", 17) == 0))
				rh[k++] = rh[i];
		reqm.nheaders = k;
	}
	if (cache_get(st, &s->ckey, rh, reqm.nheaders, CACHE_GET_QUIET, &m) != 1)
		return 0;
	if (!session_cache_stale_allowed(s, m, &reqm, cond, now)) {
		cache_meta_free(m);
		return 0;
	}
	log_info("*%" PRIu64 " client %s: upstream failed, serving the stale %.*s", s->id,
	         s->client, (int)s->curl_len, s->curl);
	cache_meta_free(s->cstale);
	s->cstale = NULL;
	/* its waiters get the stale entry too, each as its own request allows */
	collapse_release_stale(s->clock, cond);
	s->clock = NULL;
	session_release_upstream(s, 0);
	s->cmode = CMODE_STALE;
	s->cfwd_status = status;
	age = cache_fresh_age(&m->fresh, now);
	s->cage = age;
	s->cttl = m->fresh.lifetime - age;
	status = session_cache_status(s, m, &reqm);
	evbuffer_drain(s->req_head, evbuffer_get_length(s->req_head));
	n = cache_meta_headers(m, h, HTTP_MAX_HEADERS);
	session_cache_respond(s, m, h, n, status, s->method == HTTP_M_HEAD);
	return 1;
}

/*
 * An unsafe request was answered with the 2xx or 3xx resp: invalidate its URL and, when
 * they are on the same origin (scheme, host and port as written in the request URL), the
 * URLs of resp's Location and Content-Location (RFC 9111 4.4); never another origin's.
 */
void
session_cache_invalidate(struct session *s, const struct http_msg *resp)
{
	struct cache_header *rh = s->env->subject->chdrs, urls[3];
	struct cache_msg reqm, respm;
	char buf[3 * 8192], norm[8192];
	const char *rq = (const char *)evbuffer_pullup(s->req_head, -1);
	size_t rlen = evbuffer_get_length(s->req_head), ml = 0, n;

	/* the method as sent (its name says it is unsafe; only that matters here) */
	while (rq != NULL && ml < rlen && rq[ml] != ' ')
		ml++;
	reqm.method = rq != NULL && ml > 0 ? rq : "POST";
	reqm.method_len = rq != NULL && ml > 0 ? ml : 4;
	reqm.status = 0;
	reqm.headers = NULL;
	reqm.nheaders = 0;
	session_cache_msg(resp, rh, &respm);
	n = cache_policy_invalidations(&reqm, &respm, s->curl, s->curl_len, buf, sizeof(buf), urls);
	if (n == 0) {
		/* nothing came back (a method name the policy takes for safe): the target at least
		 */
		cache_invalidate_url(s->srv->cache->store, s->curl, s->curl_len);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		long len =
		        rules_url_normalize(urls[i].value, urls[i].value_len, norm, sizeof(norm));

		if (len < 0)
			continue;
		if (i > 0)
			log_debug("*%" PRIu64 " client %s: %.*s invalidates %.*s", s->id, s->client,
			          (int)urls[i].name_len, urls[i].name, (int)len, norm);
		cache_invalidate_url(s->srv->cache->store, norm, (size_t)len);
	}
}

/*
 * PURGE URL: remove what the cache holds for the request's URL (every variant). Reaches
 * here only when an access-list line allowed it (session_acl()); a server without an
 * access list, or without a cache, answers 405. 200 when something was stored, else 404.
 */
void
session_purge(struct session *s, const struct http_msg *msg)
{
	struct cache_store *st = s->srv->cache != NULL ? s->srv->cache->store : NULL;
	struct cache_meta *m = NULL;
	struct cache_key k;
	char body[64];
	int found;

	if (st == NULL || s->srv->acl == NULL || session_cache_url(s, msg) == -1) {
		evbuffer_drain(bufferevent_get_input(s->cbev), msg->head_len);
		session_error(s, 405, "PURGE needs a cache and an access-list line allowing it");
		return;
	}
	found = session_cache_key(s, msg, "GET", 3, &k) == 0 &&
	        cache_get(st, &k, NULL, 0, CACHE_GET_QUIET, &m) == 1;
	cache_meta_free(m);
	cache_invalidate_url(st, s->curl, s->curl_len);
	log_notice("*%" PRIu64 " client %s: PURGE %.*s: %s", s->id, s->client, (int)s->curl_len,
	           s->curl, found ? "purged" : "not cached");
	if (http_request_body(msg) != HTTP_BODY_NONE)
		s->keepalive = 0;
	evbuffer_drain(bufferevent_get_input(s->cbev), msg->head_len);
	int n = snprintf(body, sizeof(body), "%s\n", found ? "purged" : "not cached");
	int all = evbuffer_add_printf(
	        bufferevent_get_output(s->cbev),
	        "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n%s"
	        "\r\n%s",
	        found ? 200 : 404, http_reason(found ? 200 : 404), n,
	        s->keepalive ? "" : "Connection: close\r\n", body);
	if (all > n)
		s->resp_head_len += (uint64_t)(all - n);
	s->status = found ? 200 : 404;
	s->resp.moved = (uint64_t)n;
	session_answered(s);
}

/* The pair end a background refresh's response goes to: it is read and dropped. */
static void
session_bg_sinkcb(struct bufferevent *bev, void *arg)
{
	struct evbuffer *in = bufferevent_get_input(bev);

	(void)arg;
	evbuffer_drain(in, evbuffer_get_length(in));
}

/*
 * A background refresh of the entry msg found stale (stale-while-revalidate): a session
 * without a client. Its "client" bufferevent is one end of a pair; the other end
 * (bgpeer) writes it msg's head, as received, and discards the response. It runs the
 * request like any other (access list, upstream choice, retries, forward mode), holding
 * the key's collapse lock, and always revalidates: a 304 updates the entry, a new
 * response replaces it. Callbacks are deferred, so nothing runs inside the caller. 0, or
 * -1 when it could not be started.
 */
static int
session_cache_bg(struct session *s, const struct http_msg *msg, struct collapse_lock *lock)
{
	struct bufferevent *pair[2] = {NULL, NULL};
	struct session *b = calloc(1, sizeof(*b));
	const char *head = (const char *)evbuffer_pullup(bufferevent_get_input(s->cbev),
	                                                 (ssize_t)msg->head_len);

	if (b == NULL || head == NULL ||
	    bufferevent_pair_new(s->env->base, BEV_OPT_DEFER_CALLBACKS, pair) == -1 ||
	    (b->timer = evtimer_new(s->env->base, session_timercb, b)) == NULL) {
		if (pair[0] != NULL) {
			bufferevent_free(pair[0]);
			bufferevent_free(pair[1]);
		}
		free(b);
		return -1;
	}
	b->magic = SESSION_MAGIC;
	b->id = __atomic_add_fetch(&session_ids, 1, __ATOMIC_RELAXED);
	b->env = s->env;
	b->srv = s->srv;
	cfg_ref(s->cfg);
	b->cfg = s->cfg;
	b->client_ss = s->client_ss;
	memcpy(b->client, s->client, sizeof(b->client));
	b->tls = s->tls;   /* the same scheme, so the same key */
	b->tls_closed = 1; /* but no TLS of its own to close */
	b->bg = 1;
	b->clock = lock;
	b->cbev = pair[0];
	b->bgpeer = pair[1];
	TAILQ_INSERT_TAIL(&b->env->sessions, b, link);
	b->env->nsessions++;
	bufferevent_setcb(pair[1], session_bg_sinkcb, NULL, NULL, NULL);
	bufferevent_enable(pair[1], EV_READ);
	bufferevent_write(pair[1], head, msg->head_len);
	bufferevent_setwatermark(b->cbev, EV_READ, 0, RELAY_HIGH);
	bufferevent_setcb(b->cbev, session_client_readcb, session_client_writecb,
	                  session_client_eventcb, b);
	log_debug("*%" PRIu64 " client %s: background refresh *%" PRIu64 " of %.*s", s->id,
	          s->client, b->id, (int)s->curl_len, s->curl);
	session_enter_head(b);
	return 0;
}

/*
 * A stale entry within its stale-while-revalidate window (RFC 5861): 1 to serve it now,
 * with one refresh in the background; 0 to revalidate it before use, as without the
 * window. The collapse table keeps to one refresh per key: a request that finds one in
 * flight is UPDATING; the one that starts it is STALE. Only a plain GET (no conditionals,
 * Range or body: its head is the refresh's) starts one.
 */
int
session_cache_swr(struct session *s, const struct http_msg *msg)
{
	struct collapse_lock *lock;
	struct collapse_waiter *w;

	switch (collapse_acquire(s->srv->cache->store, &s->ckey, NULL, 0, 0, NULL, NULL, &lock,
	                         &w)) {
	case COLLAPSE_BUSY:
		s->cmode = CMODE_UPDATING;
		return 1;
	case COLLAPSE_LEADER:
		break;
	case COLLAPSE_WAIT:
	case COLLAPSE_PASS:
		return 0;
	}
	if (msg->method != HTTP_M_GET || http_request_body(msg) != HTTP_BODY_NONE ||
	    http_header_find(msg, "if-none-match") != NULL ||
	    http_header_find(msg, "if-modified-since") != NULL ||
	    http_header_find(msg, "if-range") != NULL || http_header_find(msg, "range") != NULL ||
	    session_cache_bg(s, msg, lock) == -1) {
		collapse_release(lock, 0);
		return 0;
	}
	s->cmode = CMODE_SWR;
	return 1;
}

/*
 * The cache key of request msg (method class and, by default, the normalized URL s->curl;
 * with cache_key, the expanded template, truncated at UP_KEY_MAX). 0, or -1: not cacheable.
 */
int
session_cache_key(struct session *s, const struct http_msg *msg, const char *method,
                  size_t method_len, struct cache_key *k)
{
	const struct cfg_server *srv = s->srv;
	char buf[UP_KEY_MAX];
	size_t n = 0;

	if (srv->cache_key == NULL)
		return cache_key_make(k, method, method_len, s->curl, s->curl_len);
	for (size_t i = 0; i < srv->ncache_key; i++) {
		const struct cfg_key_part *part = &srv->cache_key[i];
		struct http_slice v;

		if (part->var == CFG_KEY_URL) {
			v.p = s->curl;
			v.len = s->curl_len;
		} else if (part->var == CFG_KEY_SCHEME) {
			v.p = s->tls ? "https" : "http";
			v.len = s->tls ? 5 : 4;
		} else {
			v = up_key_part(part, msg, s->client);
		}
		if (v.len > sizeof(buf) - n)
			v.len = sizeof(buf) - n;
		if (v.len > 0)
			memcpy(buf + n, v.p, v.len);
		n += v.len;
	}
	return cache_key_make(k, method, method_len, buf, n);
}

/*
 * A GET that missed (or must revalidate) takes part in collapsing unless cache_lock is off:
 * it leads (fetches for every request of its key, s->clock), or waits for the leader's
 * fetch (returns 1; session_cache_woken() starts it again), or passes. Requests whose
 * answer is not the stored entry itself (the client's own conditionals, Range) neither
 * lead nor wait.
 */
int
session_cache_collapse(struct session *s, const struct http_msg *msg)
{
	if (!s->srv->cache_lock || s->cnolock || s->clock != NULL || msg->method != HTTP_M_GET ||
	    (s->cstale == NULL && (http_header_find(msg, "if-none-match") != NULL ||
	                           http_header_find(msg, "if-modified-since") != NULL)) ||
	    http_header_find(msg, "range") != NULL)
		return 0;
	switch (collapse_acquire(s->srv->cache->store, &s->ckey, s->env->base,
	                         s->srv->cache_lock_timeout_ms, s->srv->cache_lock_age_ms,
	                         session_cache_woken, s, &s->clock, &s->cwait)) {
	case COLLAPSE_WAIT:
		/* the head stays in the input until the wake-up; the client may still leave */
		cache_meta_free(s->cstale);
		s->cstale = NULL;
		evtimer_del(s->timer);
		s->state = S_UPSTREAM;
		return 1;
	case COLLAPSE_LEADER:
	case COLLAPSE_BUSY:
	case COLLAPSE_PASS:
		break;
	}
	return 0;
}

/*
 * A cache-enabled server's request: the URL is noted (for the key and invalidation); a
 * GET or HEAD is looked up (unless cache_bypass) and answered from the cache when the
 * entry may serve it. Returns 1 when answered here, 0 to go upstream.
 */
int
session_cache_lookup(struct session *s, const struct http_msg *msg)
{
	struct cache_store *st = s->srv->cache->store;
	struct cache_header *hdrs = s->env->subject->chdrs;
	struct cache_msg reqm;
	struct cache_meta *m = NULL;
	int stale_cond = s->cstale_cond; /* for this lookup only */
	enum cache_get_count count;

	s->cstale_cond = 0;
	s->cmode = CMODE_NONE;
	if (session_cache_url(s, msg) == -1)
		return 0;
	if ((msg->method != HTTP_M_GET && msg->method != HTTP_M_HEAD) || s->upgrade)
		return 0;
	if (session_cache_key(s, msg, msg->method_name.p, msg->method_name.len, &s->ckey) == -1)
		return 0;
	s->creq_time = (int64_t)time(NULL);
	if (session_cache_rules(s, msg, s->srv->cache_bypass, s->srv->ncache_bypass)) {
		s->cmode = CMODE_BYPASS;
		return 0;
	}
	session_cache_msg(msg, hdrs, &reqm);
	s->cmode = CMODE_MISS;
	/* a woken waiter looks up again: it counts once, as what it is answered with; a
	 * background refresh is no client's request */
	count = s->bg         ? CACHE_GET_QUIET
	        : !s->cnolock ? CACHE_GET_COUNT
	        : s->cfound   ? CACHE_GET_QUIET
	                      : CACHE_GET_AGAIN;
	if (cache_get(st, &s->ckey, hdrs, reqm.nheaders, count, &m) == 1) {
		s->cfound |= !s->cnolock;
		int64_t age = 0;
		enum cache_use use = cache_policy_use(&m->fresh, &reqm, s->creq_time, &age);

		if (s->bg && use != CACHE_USE_FRESH)
			use = CACHE_USE_REVALIDATE; /* the refresh itself */
		if (stale_cond != 0 && use != CACHE_USE_FRESH && use != CACHE_USE_STALE &&
		    session_cache_stale_shared(s, m, &reqm, stale_cond, s->creq_time)) {
			/* the fetch this request waited for failed and served this entry */
			log_info("*%" PRIu64 " client %s: the collapsed fetch failed, serving the "
			         "stale %.*s",
			         s->id, s->client, (int)s->curl_len, s->curl);
			s->cmode = CMODE_STALE;
			s->cfwd_status = 0;
			s->cage = age;
			s->cttl = m->fresh.lifetime - age;
			session_cache_serve(s, msg, m, &reqm);
			return 1;
		}
		if (use == CACHE_USE_STALE_REVALIDATE)
			use = session_cache_swr(s, msg) ? CACHE_USE_STALE : CACHE_USE_REVALIDATE;
		if (use == CACHE_USE_FRESH || use == CACHE_USE_STALE) {
			if (s->cmode == CMODE_MISS)
				s->cmode = CMODE_HIT;
			s->cage = age;
			s->cttl = m->fresh.lifetime - age;
			session_cache_unlock(s); /* a refresh that found the entry fresh again */
			session_cache_serve(s, msg, m, &reqm);
			return 1;
		}
		/*
		 * stale: ask the origin with the entry's validators whether it changed (unless the
		 * client sent its own conditionals: then its answer goes to the client as is)
		 */
		if ((m->etag != NULL || m->last_modified >= 0) &&
		    http_header_find(msg, "if-none-match") == NULL &&
		    http_header_find(msg, "if-modified-since") == NULL)
			s->cstale = m;
		else
			cache_meta_free(m);
		s->cmode = CMODE_EXPIRED;
	}
	const struct http_header *cc = http_header_find(msg, "cache-control");
	if (cc != NULL && memmem(cc->value.p, cc->value.len, "only-if-cached", 14) != NULL) {
		evbuffer_drain(bufferevent_get_input(s->cbev), msg->head_len);
		s->perr = "http_request_error";
		session_error(s, 504, "only-if-cached and not in the cache");
		return 1;
	}
	return session_cache_collapse(s, msg);
}

/* session_cache_put(), and the end of a lead when nothing will be stored. */
int
session_cache_store(struct session *s, const struct http_msg *msg, enum http_body kind)
{
	int stored = !s->cnostore && session_cache_put(s, msg, kind);

	if (!stored && s->clock != NULL) {
		/* not stored: the waiters go upstream at once, and for a while need not wait */
		collapse_release(s->clock, 1);
		s->clock = NULL;
	}
	return stored;
}

/*
 * The upstream's response head msg to a GET of a cache-enabled server: start storing it
 * while it streams when RFC 9111 and the server's rules allow. Returns whether it is.
 */
int
session_cache_put(struct session *s, const struct http_msg *msg, enum http_body kind)
{
	struct cache_header *rh = s->env->subject->chdrs;
	struct cache_header resp[HTTP_MAX_HEADERS];
	struct http_msg *req = s->env->reqmsg;
	struct cache_msg reqm, respm;
	struct cache_params cp;
	struct cache_object obj;
	struct http_limits lim = {RESP_HEAD_MAX * 4, RESP_HEAD_MAX * 4, HTTP_MAX_HEADERS};
	size_t nresp = 0;
	int conn_tokens = http_header_find(msg, "connection") != NULL;

	if (s->cmode == CMODE_NONE || s->method != HTTP_M_GET || req == NULL)
		return 0;
	/* the request as sent upstream, parsed again: its headers decide (and key Vary) */
	const char *rq = (const char *)evbuffer_pullup(s->req_head, -1);
	if (rq == NULL || http_parse_request(rq, evbuffer_get_length(s->req_head), &lim, req) <= 0)
		return 0;
	if (session_cache_rules(s, req, s->srv->no_cache, s->srv->nno_cache))
		return 0;
	session_cache_msg(req, rh, &reqm);
	for (size_t i = 0; i < msg->nheaders && nresp < HTTP_MAX_HEADERS; i++) {
		const struct http_header *h = &msg->headers[i];

		if (hdr_hop(h) ||
		    (conn_tokens && http_connection_lists(msg, h->name.p, h->name.len)))
			continue;
		resp[nresp].name = h->name.p;
		resp[nresp].name_len = h->name.len;
		resp[nresp].value = h->value.p;
		resp[nresp].value_len = h->value.len;
		nresp++;
	}
	respm.method = NULL;
	respm.method_len = 0;
	respm.status = msg->status_code;
	respm.headers = resp;
	respm.nheaders = nresp;
	session_cache_params(s, &cp);
	if (cache_policy_storable(&cp, &reqm, &respm) != CACHE_STORE)
		return 0;
	if (cp.store_set_cookie) { /* the cookies were this client's: not stored for others */
		size_t k = 0;

		for (size_t i = 0; i < nresp; i++)
			if (!(resp[i].name_len == 10 &&
			      strncasecmp(resp[i].name, "set-cookie", 10) == 0))
				resp[k++] = resp[i];
		nresp = k;
	}
	memset(&obj, 0, sizeof(obj));
	obj.url = s->curl;
	obj.url_len = s->curl_len;
	obj.status = msg->status_code;
	obj.headers = resp;
	obj.nheaders = nresp;
	obj.req_headers = rh;
	obj.nreq_headers = reqm.nheaders;
	obj.request_time = s->creq_time;
	obj.response_time = (int64_t)time(NULL);
	obj.expected_len = kind == HTTP_BODY_LENGTH ? msg->content_length : -1;
	cache_policy_freshness(&cp, &respm, obj.request_time, obj.response_time, &obj.fresh);
	s->ctee = cache_put_begin(s->srv->cache->store, &s->ckey, &obj);
	return s->ctee != NULL;
}
