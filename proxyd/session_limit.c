/*
 * session_limit.c - a session's limits: the server's `limit_req` and `limit_conn` lines
 * (limit.h) checked once per request, right after the head (and, in forward mode, after
 * proxy authentication so that key=user sees the user) and before the access list. A
 * forward request refused before authentication or the access list (the no-open-proxy
 * 403, an origin-form 400, a 407) is checked too, keyed by its client address in every
 * zone (by_client): nobody can spend another user's or a host's bucket unauthenticated.
 * Each verdict is counted per zone (metrics.h: passed, refused, zone full).
 *
 * A refused request gets 429 with Connection: close, `Retry-After` for a rate, a short
 * page saying which kind of limit, `Proxy-Status: proxyd; error=http_request_denied;
 * details="limit_req"` (or limit_conn), `limit=ZONE` in the access log and, at most once
 * per client per LIMIT_LOG_INTERVAL_US, a notice naming zone and client in the error log.
 * A `limit_conn` slot is held from the head until the response is complete (the next
 * session_enter_head()) or the connection closes, so a CONNECT or WebSocket tunnel holds
 * it for its whole life. Shares struct session through session_int.h.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "limit.h"
#include "log.h"
#include "metrics.h"
#include "session.h"
#include "session_int.h"

void
session_limit_release(struct session *s)
{
	while (s->nlheld > 0) {
		s->nlheld--;
		limit_conn_release(s->lheld[s->nlheld].zone, s->lheld[s->nlheld].handle);
	}
}

/* The key as the error log shows it: `client 1.2.3.4`, `user "bob"`, `host "a.example"`. */
static void
session_limit_keytext(const struct session *s, const struct http_msg *msg, enum limit_key key,
                      int by_client, char *buf, size_t len)
{
	if (by_client)
		snprintf(buf, len, "client %s", s->client);
	else if (key == LIMIT_KEY_USER && s->user[0] != '\0')
		snprintf(buf, len, "user \"%s\"", s->user);
	else if (key == LIMIT_KEY_HOST && msg->host.len > 0)
		snprintf(buf, len, "host \"%.*s\"",
		         (int)(msg->host.len < 200 ? msg->host.len : 200), msg->host.p);
	else
		snprintf(buf, len, "client %s", s->client);
}

int
session_limit(struct session *s, const struct http_msg *msg, int by_client)
{
	const struct cfg_server *srv = s->srv;
	struct limit_note note;
	enum limit_verdict v = LIMIT_PASS;
	const struct cfg_limit *l = NULL;
	char key[LIMIT_KEY_MAX];
	int64_t now;

	if (srv->nlimits == 0 || s->limit_checked || s->bg)
		return 0;
	s->limit_checked = 1; /* a request woken from a cache wait is not counted again */
	now = limit_now_us();
	for (size_t i = 0; i < srv->nlimits && v == LIMIT_PASS; i++) {
		l = &srv->limits[i];
		const struct limit_def *def = limit_zone_def(l->zone);
		size_t klen = limit_key_make(key, def->key, (const struct sockaddr *)&s->client_ss,
		                             by_client ? NULL : s->user,
		                             by_client ? NULL : msg->host.p, msg->host.len);

		if (l->kind == LIMIT_REQ) {
			v = limit_req_check(l->zone, key, klen, l->burst, now, &note);
		} else {
			v = limit_conn_acquire(l->zone, key, klen, l->max, now, &note);
			if (v == LIMIT_PASS) {
				s->lheld[s->nlheld].zone = l->zone;
				s->lheld[s->nlheld].handle = note.handle;
				s->nlheld++;
			}
		}
		if (v == LIMIT_PASS)
			metrics_zone_inc(l, MZ_PASSED);
		if (v == LIMIT_FULL || note.evicted)
			metrics_zone_inc(l, MZ_FULL);
		if (note.evicted_active)
			log_warnx("limit_req_zone \"%s\" is full (size=%" PRIu32 "): clients still "
			          "limited are forgotten early; make it larger",
			          limit_zone_name(l->zone), def->size);
	}
	if (v == LIMIT_PASS)
		return 0;

	/* refused: this request holds nothing */
	metrics_zone_inc(l, MZ_REFUSED);
	session_limit_release(s);
	const char *zname = limit_zone_name(l->zone);
	char kt[300];

	session_limit_keytext(s, msg, limit_zone_def(l->zone)->key, by_client, kt, sizeof(kt));
	if (note.log && v == LIMIT_FULL)
		log_warnx("*%" PRIu64 " client %s: limit_conn_zone \"%s\" is full (size=%" PRIu32
		          "): new keys are refused (%s); make it larger",
		          s->id, s->client, zname, limit_zone_def(l->zone)->size, kt);
	else if (note.log && l->kind == LIMIT_REQ)
		log_notice("*%" PRIu64
		           " client %s: limiting requests by zone \"%s\" (%s, burst=%" PRIu32
		           "): 429, retry after %" PRIu32 "s",
		           s->id, s->client, zname, kt, l->burst, note.retry_after_s);
	else if (note.log)
		log_notice("*%" PRIu64 " client %s: limiting connections by zone \"%s\" (%s, "
		           "at most %" PRIu32 "): 429",
		           s->id, s->client, zname, kt, l->max);

	const char *what = l->kind == LIMIT_REQ ? "too many requests: request rate limit exceeded"
	                                        : "too many requests in progress at once";
	char page[512];
	int n;

	if (l->kind == LIMIT_REQ) {
		s->retry_after = (int)note.retry_after_s;
		n = snprintf(
		        page, sizeof(page),
		        "<html>\r\n<head><title>429 Too Many Requests</title></head>\r\n<body>\r\n"
		        "<center><h1>429 Too Many Requests</h1></center>\r\n<p>%s; try again "
		        "in %" PRIu32 " s.</p>\r\n<hr><center>proxyd</center>\r\n</body>\r\n"
		        "</html>\r\n",
		        what, note.retry_after_s);
	} else {
		n = snprintf(
		        page, sizeof(page),
		        "<html>\r\n<head><title>429 Too Many Requests</title></head>\r\n<body>\r\n"
		        "<center><h1>429 Too Many Requests</h1></center>\r\n<p>%s.</p>\r\n"
		        "<hr><center>proxyd</center>\r\n</body>\r\n</html>\r\n",
		        what);
	}
	free(s->custom_body);
	s->custom_body = n > 0 ? strdup(page) : NULL;
	s->limit_hit = zname;
	s->perr = l->kind == LIMIT_REQ ? "http_request_denied; details=\"limit_req\""
	                               : "http_request_denied; details=\"limit_conn\"";
	evbuffer_drain(bufferevent_get_input(s->cbev), msg->head_len);
	session_error(s, 429, what);
	return 1;
}
