/*
 * anon.h - request header policy of forward mode: `anonymize off|standard|strict` and
 * `anonymize_allow NAME...`.
 *
 * Contract: a policy is compiled once at load by anon_policy_new() and is immutable
 * afterwards, so any number of threads may read it. anon_header() decides one request
 * header at a time: no allocation, no I/O, case-insensitive names (ASCII), a switch on the
 * first letter so most names cost one or two comparisons. The session calls it for each
 * end-to-end header it would forward, after it has removed the hop-by-hop headers
 * (Connection and what it lists, Keep-Alive, TE, Upgrade, Proxy-Connection) and handled
 * the framing itself; Transfer-Encoding is always KEEP so the policy never breaks framing.
 *
 * Modes:
 *   off       KEEP everything; the session adds Via and X-Forwarded-For as usual.
 *   standard  DROP Via, X-Forwarded-* (any), Forwarded, X-Real-IP, From, Client-IP,
 *             X-Client-IP, True-Client-IP, X-Cluster-Client-IP, CF-Connecting-IP,
 *             X-ProxyUser-Ip and every Proxy-* header (Proxy-Authorization included);
 *             KEEP the rest. The session adds neither Via nor X-Forwarded-For.
 *   strict    KEEP only Host, Accept, Accept-*, Content-*, Cache-Control, Pragma, If-*,
 *             Range, Authorization, Cookie, Transfer-Encoding; User-Agent is REPLACE
 *             (the session sends anon_user_agent() instead) or DROP when no user agent
 *             was configured; Referer and Origin are KEEP when same-origin with the
 *             request target (scheme, host and port equal; host compared without case,
 *             a missing or empty port is the scheme's default: http 80, https 443), DROP
 *             otherwise (other schemes, userinfo, "null", unparsable). DROP the rest.
 *
 * `anonymize_allow` names are KEEP in standard and strict mode, before any other rule
 * (allowing User-Agent forwards the client's own; allowing Referer skips the origin check).
 */
#ifndef PROXYD_ANON_H
#define PROXYD_ANON_H

#include <stddef.h>
#include <stdint.h>

enum anon_mode {
	ANON_OFF = 0,
	ANON_STANDARD,
	ANON_STRICT,
};

enum anon_action {
	ANON_KEEP = 0,
	ANON_DROP,
	ANON_REPLACE, /* send the header with anon_user_agent() as its value */
};

/* The origin of the request target, as http.h's struct http_msg has it. */
struct anon_origin {
	const char *scheme; /* "http" or "https" (case-insensitive) */
	size_t scheme_len;
	const char *host; /* as in the target: reg-name or "[v6]" literal */
	size_t host_len;
	uint16_t port; /* 0: the scheme's default */
};

struct anon_policy;

/* "off", "standard", "strict" -> 0 and *mode; anything else -> -1. */
int anon_mode_parse(const char *word, enum anon_mode *mode);

/*
 * Compile a policy. allow: nallow header names (copied; each must be a non-empty token,
 * else NULL with *err = `bad header name "x"`). user_agent: the strict-mode replacement,
 * copied, may be NULL (User-Agent is then dropped in strict mode); it must not contain
 * control bytes. Returns a policy freed by anon_policy_free(), or NULL with *err malloc'd.
 */
struct anon_policy *anon_policy_new(enum anon_mode mode, char *const *allow, size_t nallow,
                                    const char *user_agent, char **err);
void anon_policy_free(struct anon_policy *p);

enum anon_mode anon_policy_mode(const struct anon_policy *p);

/*
 * The decision for one request header. value/vlen are read only for Referer and Origin in
 * strict mode; target may be NULL (then Referer and Origin are dropped in strict mode).
 */
enum anon_action anon_header(const struct anon_policy *p, const char *name, size_t nlen,
                             const char *value, size_t vlen, const struct anon_origin *target);

/* The User-Agent to send for ANON_REPLACE (NULL when none), *len its length. */
const char *anon_user_agent(const struct anon_policy *p, size_t *len);

/*
 * Whether proxyd may add its own identifying headers: Via and X-Forwarded-For on
 * requests, Via and proxyd's internal response headers (X-Cache-style) on responses.
 * 1 only in mode off (and for a NULL policy, i.e. no anonymize directive).
 */
int anon_request_via_allowed(const struct anon_policy *p);
int anon_response_via_allowed(const struct anon_policy *p);

#endif /* PROXYD_ANON_H */
