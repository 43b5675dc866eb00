/*
 * explain.c - offline policy explanation (proxyd --explain). See explain.h.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <arpa/inet.h>
#include <netinet/in.h>

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>

#include "acl.h"
#include "explain.h"
#include "netpolicy.h"
#include "rules.h"
#include "session.h"
#include "upstream.h"

#define EXPLAIN_MAX_HEADERS 32

struct spec {
	const char *src, *ua, *url, *method, *time, *user, *server;
	const char *headers[EXPLAIN_MAX_HEADERS];
	size_t nheaders;
};

/* Split buf in place into key=value pairs; returns 0 or -1 with *bad the faulty word. */
static int
spec_parse(char *buf, struct spec *sp, const char **bad)
{
	char *p = buf;

	memset(sp, 0, sizeof(*sp));
	while (*p != '\0') {
		char *key, *val, *eq;

		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0')
			break;
		key = p;
		char *blank = strpbrk(key, " \t");

		if ((eq = strchr(p, '=')) == NULL || (blank != NULL && blank < eq)) {
			*bad = key;
			return -1;
		}
		*eq = '\0';
		val = eq + 1;
		if (*val == '"') {
			char *end = strchr(++val, '"');

			if (end == NULL) {
				*bad = key;
				return -1;
			}
			*end = '\0';
			p = end + 1;
		} else {
			p = val + strcspn(val, " \t");
			if (*p != '\0')
				*p++ = '\0';
		}
		if (strcmp(key, "src") == 0)
			sp->src = val;
		else if (strcmp(key, "ua") == 0)
			sp->ua = val;
		else if (strcmp(key, "url") == 0)
			sp->url = val;
		else if (strcmp(key, "method") == 0)
			sp->method = val;
		else if (strcmp(key, "time") == 0)
			sp->time = val;
		else if (strcmp(key, "user") == 0)
			sp->user = val;
		else if (strcmp(key, "server") == 0)
			sp->server = val;
		else if (strcmp(key, "header") == 0 && sp->nheaders < EXPLAIN_MAX_HEADERS)
			sp->headers[sp->nheaders++] = val;
		else {
			*bad = key;
			return -1;
		}
	}
	return 0;
}

/* "2026-11-27T09:30[:SS][Z|+HH:MM|-HH:MM]": local time unless a zone is given. */
static int
spec_time(const char *s, time_t *out)
{
	struct tm tm;
	const char *rest;
	int sec = 0, n = 0;

	memset(&tm, 0, sizeof(tm));
	if (sscanf(s, "%4d-%2d-%2dT%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
	           &tm.tm_min, &n) != 5)
		return -1;
	rest = s + n;
	if (*rest == ':') {
		if (sscanf(rest, ":%2d%n", &sec, &n) != 1)
			return -1;
		rest += n;
	}
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	tm.tm_sec = sec;
	if (*rest == '\0') {
		tm.tm_isdst = -1;
		*out = mktime(&tm);
		return *out == (time_t)-1 ? -1 : 0;
	}
	long off = 0;
	if (*rest == 'Z' && rest[1] == '\0') {
		off = 0;
	} else if ((*rest == '+' || *rest == '-') && strlen(rest) == 6 && rest[3] == ':') {
		off = (atoi(rest + 1) * 60 + atoi(rest + 4)) * 60;
		if (*rest == '-')
			off = -off;
	} else {
		return -1;
	}
	*out = timegm(&tm) - off;
	return 0;
}

static void
explain_line(void *arg, const char *line)
{
	fprintf(arg, "%s\n", line);
}

static const struct cfg_server *
explain_server(struct cfg *cfg, const char *want)
{
	if (want == NULL)
		return &cfg->servers[0];
	char *end = NULL;
	long i = strtol(want, &end, 10);

	if (end != want && *end == '\0' && i >= 1 && (size_t)i <= cfg->nservers)
		return &cfg->servers[i - 1];
	for (size_t k = 0; k < cfg->nservers; k++)
		for (size_t j = 0; j < cfg->servers[k].nlistens; j++)
			if (strcmp(cfg->servers[k].listens[j].addr.text, want) == 0)
				return &cfg->servers[k];
	return NULL;
}

int
explain_run(struct cfg *cfg, const char *specstr, FILE *out)
{
	struct spec sp;
	char *buf = strdup(specstr), *req = NULL;
	const char *bad = NULL;
	struct sockaddr_storage ss;
	struct session_subject *subj = calloc(1, sizeof(*subj));
	struct rules_scratch *scratch = rules_scratch_new();
	struct http_msg *msg = calloc(1, sizeof(*msg));
	struct evbuffer *head = evbuffer_new();
	const struct cfg_server *srv;
	time_t now = time(NULL);
	int rc = 2, allow = 1;

	if (buf == NULL || subj == NULL || scratch == NULL || msg == NULL || head == NULL) {
		fprintf(out, "out of memory\n");
		goto done;
	}
	if (spec_parse(buf, &sp, &bad) == -1) {
		fprintf(out,
		        "explain: cannot read \"%s\": expected key=value with keys src, ua, "
		        "url, method, time, user, server, header\n",
		        bad);
		goto done;
	}
	if (sp.url == NULL) {
		fprintf(out, "explain: url= is required\n");
		goto done;
	}
	if ((srv = explain_server(cfg, sp.server)) == NULL) {
		fprintf(out, "explain: no server listens on \"%s\"\n", sp.server);
		goto done;
	}
	if (sp.time != NULL && spec_time(sp.time, &now) == -1) {
		fprintf(out, "explain: bad time \"%s\" (YYYY-MM-DDTHH:MM[:SS][Z|+HH:MM])\n",
		        sp.time);
		goto done;
	}
	memset(&ss, 0, sizeof(ss));
	const char *src = sp.src != NULL ? sp.src : "127.0.0.1";
	struct sockaddr_in *sin = (struct sockaddr_in *)(void *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)(void *)&ss;
	if (inet_pton(AF_INET, src, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
	} else if (inet_pton(AF_INET6, src, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
	} else {
		fprintf(out, "explain: bad src \"%s\"\n", src);
		goto done;
	}

	/* the request a client would send to this server */
	const char *method = sp.method != NULL ? sp.method : "GET";
	const char *url = sp.url, *hp, *pp;
	int connect = strcmp(method, "CONNECT") == 0;
	size_t hl;

	hp = strstr(url, "://");
	hp = hp != NULL ? hp + 3 : url;
	pp = hp + strcspn(hp, "/?");
	hl = (size_t)(pp - hp);
	struct evbuffer *r = evbuffer_new();
	if (r == NULL) {
		fprintf(out, "out of memory\n");
		goto done;
	}
	if (connect || srv->mode == CFG_MODE_FORWARD)
		evbuffer_add_printf(r, "%s %s HTTP/1.1\r\n", method, url);
	else
		evbuffer_add_printf(r, "%s %s HTTP/1.1\r\n", method, *pp != '\0' ? pp : "/");
	evbuffer_add_printf(r, "Host: %.*s\r\n", (int)hl, hp);
	if (sp.ua != NULL)
		evbuffer_add_printf(r, "User-Agent: %s\r\n", sp.ua);
	for (size_t i = 0; i < sp.nheaders; i++)
		evbuffer_add_printf(r, "%s\r\n", sp.headers[i]);
	evbuffer_add(r, "\r\n", 3);
	req = strdup((const char *)evbuffer_pullup(r, -1));
	evbuffer_free(r);
	if (req == NULL) {
		fprintf(out, "out of memory\n");
		goto done;
	}

	char client[INET6_ADDRSTRLEN];
	inet_ntop(ss.ss_family,
	          ss.ss_family == AF_INET ? (void *)&sin->sin_addr : (void *)&sin6->sin6_addr,
	          client, sizeof(client));
	fprintf(out, "server: %s (%s, %s:%d)\n",
	        srv->nlistens > 0 ? srv->listens[0].addr.text : "-",
	        srv->mode == CFG_MODE_FORWARD ? "forward" : "reverse", srv->file, srv->line);
	struct http_limits lim = {srv->client_max_header_size, srv->client_max_target,
	                          srv->client_max_headers};
	if (http_parse_request(req, strlen(req), &lim, msg) < 0) {
		fprintf(out, "decision: refused before any rule: %d (%s)\n", msg->status,
		        msg->error != NULL ? msg->error : "malformed request");
		rc = 1;
		goto done;
	}
	if (srv->auth_realm != NULL) {
		if (sp.user == NULL) {
			fprintf(out, "decision: 407: this server requires proxy authentication "
			             "(add user=NAME to explain an authenticated request)\n");
			rc = 1;
			goto done;
		}
		fprintf(out, "user: %s (taken as authenticated)\n", sp.user);
	}
	int sr = session_rules_subject(srv, msg, (const struct sockaddr *)&ss, sp.user, now, subj);
	if (sr != 0) {
		fprintf(out, "decision: refused: %s\n",
		        sr == -2 ? "400 (bad percent-encoding in the path)" : "out of memory");
		rc = 1;
		goto done;
	}
	if (srv->acl != NULL) {
		struct acl_decision d =
		        acl_explain(srv->acl, &subj->subj, scratch, explain_line, out);
		allow = d.allow;
	} else if (srv->mode == CFG_MODE_FORWARD) {
		allow = np_client_is_local((const struct sockaddr *)&ss);
		fprintf(out,
		        "decision: %s by the default of a forward server without an access "
		        "list (loopback and private clients only)\n",
		        allow ? "allow" : "deny 403");
	} else {
		fprintf(out, "decision: allow (no access list)\n");
	}
	if (!allow) {
		rc = 1;
		goto done;
	}
	if (connect) {
		fprintf(out, "tunnel: CONNECT %.*s, %s by connect_ports\n", (int)hl, hp,
		        srv->connect_ports != NULL && np_ports_allows(srv->connect_ports, msg->port)
		                ? "allowed"
		                : "refused (403)");
		rc = 0;
		goto done;
	}
	session_explain_head(srv, msg, client, head);
	fprintf(out, "request as forwarded:\n");
	fwrite(evbuffer_pullup(head, -1), 1, evbuffer_get_length(head), out);
	if (srv->mode == CFG_MODE_FORWARD) {
		fprintf(out, "to: origin %.*s:%u (resolved when the request arrives%s)\n",
		        (int)subj->subj.host_len, subj->subj.host, msg->port != 0 ? msg->port : 80,
		        srv->deny_private_destinations ? "; private addresses refused" : "");
	} else {
		struct cfg_upstream *u = srv->upstream;
		char key[UP_KEY_MAX];
		size_t kl = up_hash_key(u, msg, client, key, sizeof(key));
		struct cfg_peer *p = up_pick(u, (const struct sockaddr *)&ss, kl > 0 ? key : NULL,
		                             kl, NULL, 0, up_now_ms());
		const struct cfg_addr *a = p != NULL ? cfg_peer_addr(p) : NULL;

		fprintf(out, "to: upstream \"%s\", peer %s (%s)\n", u->name,
		        a != NULL ? a->text : "none available", p != NULL ? p->name : "-");
	}
	rc = 0;
done:
	free(buf);
	free(req);
	if (subj != NULL)
		free(subj->path);
	free(subj);
	rules_scratch_free(scratch);
	free(msg);
	if (head != NULL)
		evbuffer_free(head);
	return rc;
}
