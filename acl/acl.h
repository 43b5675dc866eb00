/*
 * acl.h - access policy: an ordered list of allow/deny lines over rules (rules.h), the
 * deny response, and explain.
 *
 * Contract: an acl is built at configuration load (acl_new, acl_add, acl_set_deny_page)
 * and immutable afterwards, except for its hit counters (atomics, relaxed). acl_decide()
 * evaluates the lines in order, first match wins; when none matches the acl's default
 * decides (deny for forward servers, allow for reverse ones, chosen by the caller). The
 * decision comes back as a value naming the deciding line (NULL: the default), never as a
 * side effect other than counting the hit. Every line has a stable id: given with id=NAME
 * or derived as "file:line". No I/O, no libevent; acl_explain() writes through a callback.
 */
#ifndef PROXYD_ACL_H
#define PROXYD_ACL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "rules.h"

struct acl_line {
	int allow;  /* 1 allow, 0 deny */
	int status; /* deny: the response status, default 403 */
	char *id;   /* id=NAME, or "file:line" */
	const char *file;
	int line;
	struct rules_rule *rule;
	_Atomic uint64_t hits;
};

struct acl {
	struct acl_line *lines;
	size_t n;
	int default_allow;
	int uses_dst; /* a line reads the resolved destination (rules_rule_uses_dst) */
	_Atomic uint64_t default_hits;
	char *deny_page; /* deny_page contents, or NULL for the built-in page */
};

struct acl_decision {
	int allow;
	int status;                  /* deny: the status to answer */
	const struct acl_line *line; /* the deciding line, NULL: the default */
};

/* An empty acl with the given default. NULL on ENOMEM. */
struct acl *acl_new(int default_allow);
/* Frees the acl and its rules. NULL is allowed. */
void acl_free(struct acl *acl);
/*
 * Append a line; the acl owns rule from here on (also on failure). id may be NULL (the
 * id is then "file:line"). An id used by an earlier line is an error: -1 with *err.
 */
int acl_add(struct acl *acl, int allow, int status, const char *id, const char *file, int line,
            struct rules_rule *rule, char **err);
/* The deny page template (copied); $rule, $client, $url and $id are substituted. */
int acl_set_deny_page(struct acl *acl, const char *text, size_t len);

/* Decide for subj; counts the hit when count is set. */
struct acl_decision acl_decide(struct acl *acl, const struct rules_subject *subj,
                               struct rules_scratch *scratch, int count);
/*
 * Whether a line's rule reads the resolved destination address: if not, a decision taken
 * before resolution stands after it, and need not be taken again.
 */
int acl_uses_dst(const struct acl *acl);
/* The id of the deciding line, or "default". */
const char *acl_decision_id(const struct acl_decision *d);

/*
 * The body of a deny response for d into out (at most cap bytes, NUL-terminated);
 * returns its length. The values are HTML-escaped; reqid names the request.
 */
size_t acl_deny_body(const struct acl *acl, const struct acl_decision *d, const char *client,
                     const char *url, const char *reqid, char *out, size_t cap);

/*
 * Explain a decision: calls out(arg, line) for each line of text (no newline) — every
 * line that did not match with the first matcher that failed, then the deciding line or
 * the default. Returns the decision (hits are not counted).
 */
struct acl_decision acl_explain(struct acl *acl, const struct rules_subject *subj,
                                struct rules_scratch *scratch,
                                void (*out)(void *arg, const char *line), void *arg);

#endif /* PROXYD_ACL_H */
