#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "anon.h"

struct anon_name {
	char *name; /* lower case */
	size_t len;
};

struct anon_policy {
	enum anon_mode mode;
	struct anon_name *allow;
	size_t nallow;
	unsigned char allow_first[256]; /* 1 for the first letters (lower case) of allow */
	char *user_agent;
	size_t user_agent_len;
};

static unsigned char
anon_lc(char c)
{
	unsigned char u = (unsigned char)c;

	return u >= 'A' && u <= 'Z' ? (unsigned char)(u + ('a' - 'A')) : u;
}

/* name[0..nlen) equals lit (lower case) without case. */
static int
anon_eq(const char *name, size_t nlen, const char *lit)
{
	size_t i;

	for (i = 0; i < nlen; i++)
		if (lit[i] == '\0' || anon_lc(name[i]) != (unsigned char)lit[i])
			return 0;
	return lit[nlen] == '\0';
}

/* name[0..nlen) starts with lit (lower case) without case, and is longer than it. */
static int
anon_prefix(const char *name, size_t nlen, const char *lit)
{
	size_t i;

	for (i = 0; lit[i] != '\0'; i++)
		if (i >= nlen || anon_lc(name[i]) != (unsigned char)lit[i])
			return 0;
	return nlen > i;
}

/* RFC 9110 tchar */
static int
anon_tchar(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

int
anon_mode_parse(const char *word, enum anon_mode *mode)
{
	if (strcmp(word, "off") == 0)
		*mode = ANON_OFF;
	else if (strcmp(word, "standard") == 0)
		*mode = ANON_STANDARD;
	else if (strcmp(word, "strict") == 0)
		*mode = ANON_STRICT;
	else
		return -1;
	return 0;
}

struct anon_policy *
anon_policy_new(enum anon_mode mode, char *const *allow, size_t nallow, const char *user_agent,
                char **err)
{
	struct anon_policy *p;
	size_t i, j;

	*err = NULL;
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		goto nomem;
	p->mode = mode;
	if (nallow > 0) {
		p->allow = calloc(nallow, sizeof(*p->allow));
		if (p->allow == NULL)
			goto nomem;
	}
	for (i = 0; i < nallow; i++) {
		size_t len = strlen(allow[i]);

		for (j = 0; j < len; j++)
			if (!anon_tchar((unsigned char)allow[i][j]))
				break;
		if (len == 0 || j < len) {
			if (asprintf(err, "bad header name \"%s\"", allow[i]) == -1)
				*err = NULL;
			goto fail;
		}
		p->allow[i].name = malloc(len + 1);
		if (p->allow[i].name == NULL)
			goto nomem;
		for (j = 0; j <= len; j++)
			p->allow[i].name[j] = (char)anon_lc(allow[i][j]);
		p->allow[i].len = len;
		p->nallow = i + 1;
		p->allow_first[(unsigned char)p->allow[i].name[0]] = 1;
	}
	if (user_agent != NULL) {
		for (j = 0; user_agent[j] != '\0'; j++) {
			unsigned char c = (unsigned char)user_agent[j];

			if ((c < 0x20 && c != '\t') || c == 0x7f) {
				if (asprintf(err, "bad user agent: control character") == -1)
					*err = NULL;
				goto fail;
			}
		}
		p->user_agent = strdup(user_agent);
		if (p->user_agent == NULL)
			goto nomem;
		p->user_agent_len = j;
	}
	return p;
nomem:
	*err = strdup("out of memory");
fail:
	anon_policy_free(p);
	return NULL;
}

void
anon_policy_free(struct anon_policy *p)
{
	size_t i;

	if (p == NULL)
		return;
	for (i = 0; i < p->nallow; i++)
		free(p->allow[i].name);
	free(p->allow);
	free(p->user_agent);
	free(p);
}

enum anon_mode
anon_policy_mode(const struct anon_policy *p)
{
	return p == NULL ? ANON_OFF : p->mode;
}

const char *
anon_user_agent(const struct anon_policy *p, size_t *len)
{
	*len = p == NULL ? 0 : p->user_agent_len;
	return p == NULL ? NULL : p->user_agent;
}

int
anon_request_via_allowed(const struct anon_policy *p)
{
	return anon_policy_mode(p) == ANON_OFF;
}

int
anon_response_via_allowed(const struct anon_policy *p)
{
	return anon_policy_mode(p) == ANON_OFF;
}

static int
anon_allowed(const struct anon_policy *p, const char *name, size_t nlen)
{
	size_t i;

	if (p->nallow == 0 || !p->allow_first[anon_lc(name[0])])
		return 0;
	for (i = 0; i < p->nallow; i++)
		if (p->allow[i].len == nlen && anon_eq(name, nlen, p->allow[i].name))
			return 1;
	return 0;
}

/* The headers that name the client or the proxies on the way (standard mode). */
static int
anon_identifying(const char *name, size_t nlen)
{
	switch (anon_lc(name[0])) {
	case 'c':
		return anon_eq(name, nlen, "client-ip") || anon_eq(name, nlen, "cf-connecting-ip");
	case 'f':
		return anon_eq(name, nlen, "forwarded") || anon_eq(name, nlen, "from");
	case 'p':
		return anon_prefix(name, nlen, "proxy-");
	case 't':
		return anon_eq(name, nlen, "true-client-ip");
	case 'v':
		return anon_eq(name, nlen, "via");
	case 'x':
		return anon_prefix(name, nlen, "x-forwarded-") ||
		       anon_eq(name, nlen, "x-real-ip") || anon_eq(name, nlen, "x-client-ip") ||
		       anon_eq(name, nlen, "x-cluster-client-ip") ||
		       anon_eq(name, nlen, "x-proxyuser-ip");
	default:
		return 0;
	}
}

static unsigned
anon_default_port(const char *scheme, size_t len)
{
	if (anon_eq(scheme, len, "http"))
		return 80;
	if (anon_eq(scheme, len, "https"))
		return 443;
	return 0;
}

/*
 * Whether the URL in v[0..vlen) ("scheme://host[:port]..." ; with origin_only nothing may
 * follow the port) has the origin of target.
 */
static int
anon_same_origin(const char *v, size_t vlen, const struct anon_origin *target, int origin_only)
{
	size_t i = 0, slen, hstart, hend;
	unsigned port, tport, dport;

	if (target == NULL || target->scheme == NULL || target->host == NULL)
		return 0;
	while (i < vlen && v[i] != ':')
		i++;
	slen = i;
	dport = anon_default_port(v, slen);
	if (dport == 0 || slen != target->scheme_len)
		return 0;
	for (i = 0; i < slen; i++)
		if (anon_lc(v[i]) != anon_lc(target->scheme[i]))
			return 0;
	if (vlen - slen < 3 || v[slen + 1] != '/' || v[slen + 2] != '/')
		return 0;
	i = hstart = slen + 3;
	if (i < vlen && v[i] == '[') {
		while (i < vlen && v[i] != ']')
			i++;
		if (i == vlen)
			return 0;
		i++;
	} else {
		while (i < vlen && v[i] != ':' && v[i] != '/' && v[i] != '?' && v[i] != '#' &&
		       v[i] != '@')
			i++;
	}
	hend = i;
	if (hend == hstart)
		return 0;
	port = dport;
	if (i < vlen && v[i] == ':') {
		size_t digits = 0;

		port = 0;
		for (i++; i < vlen && v[i] >= '0' && v[i] <= '9'; i++, digits++) {
			if (digits == 5)
				return 0;
			port = port * 10 + (unsigned)(v[i] - '0');
		}
		if (digits == 0)
			port = dport;
		else if (port == 0 || port > 65535)
			return 0;
	}
	if (i < vlen) {
		/* userinfo ('@'), anything but a path/query/fragment, or a path in Origin */
		if (origin_only || (v[i] != '/' && v[i] != '?' && v[i] != '#'))
			return 0;
	}
	tport = target->port != 0 ? target->port : dport;
	if (port != tport || hend - hstart != target->host_len)
		return 0;
	for (i = 0; i < target->host_len; i++)
		if (anon_lc(v[hstart + i]) != anon_lc(target->host[i]))
			return 0;
	return 1;
}

static enum anon_action
anon_strict(const struct anon_policy *p, const char *name, size_t nlen, const char *value,
            size_t vlen, const struct anon_origin *target)
{
	switch (anon_lc(name[0])) {
	case 'a':
		if (anon_eq(name, nlen, "accept") || anon_prefix(name, nlen, "accept-") ||
		    anon_eq(name, nlen, "authorization"))
			return ANON_KEEP;
		break;
	case 'c':
		if (anon_prefix(name, nlen, "content-") || anon_eq(name, nlen, "cache-control") ||
		    anon_eq(name, nlen, "cookie"))
			return ANON_KEEP;
		break;
	case 'h':
		if (anon_eq(name, nlen, "host"))
			return ANON_KEEP;
		break;
	case 'i':
		if (anon_prefix(name, nlen, "if-"))
			return ANON_KEEP;
		break;
	case 'o':
		if (anon_eq(name, nlen, "origin"))
			return anon_same_origin(value, vlen, target, 1) ? ANON_KEEP : ANON_DROP;
		break;
	case 'p':
		if (anon_eq(name, nlen, "pragma"))
			return ANON_KEEP;
		break;
	case 'r':
		if (anon_eq(name, nlen, "range"))
			return ANON_KEEP;
		if (anon_eq(name, nlen, "referer"))
			return anon_same_origin(value, vlen, target, 0) ? ANON_KEEP : ANON_DROP;
		break;
	case 't':
		if (anon_eq(name, nlen, "transfer-encoding"))
			return ANON_KEEP;
		break;
	case 'u':
		if (anon_eq(name, nlen, "user-agent"))
			return p->user_agent != NULL ? ANON_REPLACE : ANON_DROP;
		break;
	default:
		break;
	}
	return ANON_DROP;
}

enum anon_action
anon_header(const struct anon_policy *p, const char *name, size_t nlen, const char *value,
            size_t vlen, const struct anon_origin *target)
{
	if (p == NULL || p->mode == ANON_OFF || nlen == 0)
		return ANON_KEEP;
	if (anon_allowed(p, name, nlen))
		return ANON_KEEP;
	if (p->mode == ANON_STANDARD)
		return anon_identifying(name, nlen) ? ANON_DROP : ANON_KEEP;
	return anon_strict(p, name, nlen, value, vlen, target);
}
