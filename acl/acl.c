/*
 * acl.c - ordered allow/deny decisions over rules. See acl.h.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acl.h"

struct acl *
acl_new(int default_allow)
{
	struct acl *acl = calloc(1, sizeof(*acl));

	if (acl != NULL)
		acl->default_allow = default_allow;
	return acl;
}

void
acl_free(struct acl *acl)
{
	if (acl == NULL)
		return;
	for (size_t i = 0; i < acl->n; i++) {
		rules_rule_free(acl->lines[i].rule);
		free(acl->lines[i].id);
	}
	free(acl->lines);
	free(acl->deny_page);
	free(acl);
}

int
acl_add(struct acl *acl, int allow, int status, const char *id, const char *file, int line,
        struct rules_rule *rule, char **err)
{
	struct acl_line *lines, *l;
	char *myid = NULL;

	if (id != NULL)
		myid = strdup(id);
	else if (asprintf(&myid, "%s:%d", file, line) == -1)
		myid = NULL;
	if (myid == NULL)
		goto nomem;
	/*
	 * Two lines on one line of the file (deny src X; allow all;) derive the same id:
	 * the later ones become file:line#2, #3, ... rather than refusing a valid config.
	 */
	for (int k = 2; id == NULL && k < 1000; k++) {
		size_t i;

		for (i = 0; i < acl->n && strcmp(acl->lines[i].id, myid) != 0; i++)
			;
		if (i == acl->n)
			break;
		free(myid);
		if (asprintf(&myid, "%s:%d#%d", file, line, k) == -1)
			myid = NULL;
		if (myid == NULL)
			goto nomem;
	}
	for (size_t i = 0; i < acl->n; i++) {
		if (strcmp(acl->lines[i].id, myid) == 0) {
			if (err != NULL &&
			    asprintf(err, "rule id \"%s\" is already used at %s:%d", myid,
			             acl->lines[i].file, acl->lines[i].line) == -1)
				*err = NULL;
			free(myid);
			rules_rule_free(rule);
			return -1;
		}
	}
	if ((lines = realloc(acl->lines, (acl->n + 1) * sizeof(*lines))) == NULL)
		goto nomem;
	acl->lines = lines;
	l = &lines[acl->n++];
	memset(l, 0, sizeof(*l));
	l->allow = allow;
	l->status = status;
	l->id = myid;
	l->file = file;
	l->line = line;
	l->rule = rule;
	atomic_init(&l->hits, 0);
	if (rules_rule_uses_dst(rule))
		acl->uses_dst = 1;
	return 0;

nomem:
	free(myid);
	rules_rule_free(rule);
	if (err != NULL)
		*err = strdup("out of memory");
	return -1;
}

int
acl_uses_dst(const struct acl *acl)
{
	return acl->uses_dst;
}

int
acl_set_deny_page(struct acl *acl, const char *text, size_t len)
{
	char *p = malloc(len + 1);

	if (p == NULL)
		return -1;
	memcpy(p, text, len);
	p[len] = '\0';
	free(acl->deny_page);
	acl->deny_page = p;
	return 0;
}

static struct acl_decision
acl_run(struct acl *acl, const struct rules_subject *subj, struct rules_scratch *scratch,
        void (*out)(void *, const char *), void *arg)
{
	struct acl_decision d;
	char text[1024];

	for (size_t i = 0; i < acl->n; i++) {
		struct acl_line *l = &acl->lines[i];
		struct rules_explain why = {0, NULL};

		if (rules_eval(l->rule, subj, scratch, out != NULL ? &why : NULL) == RULES_MATCH) {
			d.allow = l->allow;
			d.status = l->status;
			d.line = l;
			return d;
		}
		if (out != NULL) {
			char where[300];

			/* an id derived from file:line is not repeated */
			snprintf(where, sizeof(where), "%s:%d", l->file, l->line);
			if (strcmp(where, l->id) == 0)
				snprintf(text, sizeof(text), "  no match: %s %s: %s",
				         l->allow ? "allow" : "deny", l->id,
				         why.text != NULL ? why.text : "?");
			else
				snprintf(text, sizeof(text), "  no match: %s %s (%s): %s",
				         l->allow ? "allow" : "deny", l->id, where,
				         why.text != NULL ? why.text : "?");
			out(arg, text);
		}
	}
	d.allow = acl->default_allow;
	d.status = 403;
	d.line = NULL;
	return d;
}

struct acl_decision
acl_decide(struct acl *acl, const struct rules_subject *subj, struct rules_scratch *scratch,
           int count)
{
	struct acl_decision d = acl_run(acl, subj, scratch, NULL, NULL);

	if (count) {
		if (d.line != NULL)
			atomic_fetch_add_explicit(&((struct acl_line *)(uintptr_t)d.line)->hits, 1,
			                          memory_order_relaxed);
		else
			atomic_fetch_add_explicit(&acl->default_hits, 1, memory_order_relaxed);
	}
	return d;
}

const char *
acl_decision_id(const struct acl_decision *d)
{
	return d->line != NULL ? d->line->id : "default";
}

struct acl_decision
acl_explain(struct acl *acl, const struct rules_subject *subj, struct rules_scratch *scratch,
            void (*out)(void *arg, const char *line), void *arg)
{
	struct acl_decision d = acl_run(acl, subj, scratch, out, arg);
	char text[1024];

	char verdict[32];

	if (d.allow)
		snprintf(verdict, sizeof(verdict), "allow");
	else
		snprintf(verdict, sizeof(verdict), "deny %d", d.status);
	if (d.line != NULL)
		snprintf(text, sizeof(text), "decision: %s by rule %s (%s:%d)", verdict, d.line->id,
		         d.line->file, d.line->line);
	else
		snprintf(text, sizeof(text), "decision: %s by the default (no rule matched)",
		         verdict);
	out(arg, text);
	return d;
}

/* Append s to out[*n..cap), HTML-escaped. */
static void
put_esc(char *out, size_t cap, size_t *n, const char *s)
{
	for (; *s != '\0'; s++) {
		const char *e = NULL;
		char one[2] = {*s, '\0'};

		switch (*s) {
		case '<':
			e = "&lt;";
			break;
		case '>':
			e = "&gt;";
			break;
		case '&':
			e = "&amp;";
			break;
		case '"':
			e = "&quot;";
			break;
		case '\'':
			e = "&#39;";
			break;
		default:
			e = one;
		}
		size_t l = strlen(e);
		if (*n + l >= cap)
			return;
		memcpy(out + *n, e, l);
		*n += l;
	}
}

size_t
acl_deny_body(const struct acl *acl, const struct acl_decision *d, const char *client,
              const char *url, const char *reqid, char *out, size_t cap)
{
	static const char builtin[] =
	        "<html>\r\n<head><title>Access denied</title></head>\r\n<body>\r\n"
	        "<h1>Access denied</h1>\r\n<p>The request to $url was denied by policy "
	        "($rule).</p>\r\n"
	        "<p>Request ID: $id</p>\r\n<hr>proxyd\r\n</body>\r\n</html>\r\n";
	const char *t = acl->deny_page != NULL ? acl->deny_page : builtin;
	const char *rule = acl_decision_id(d);
	size_t n = 0;

	if (cap == 0)
		return 0;
	while (*t != '\0' && n + 1 < cap) {
		if (*t == '$') {
			const char *v = NULL;
			size_t skip = 0;

			if (strncmp(t, "$rule", 5) == 0)
				v = rule, skip = 5;
			else if (strncmp(t, "$client", 7) == 0)
				v = client, skip = 7;
			else if (strncmp(t, "$url", 4) == 0)
				v = url, skip = 4;
			else if (strncmp(t, "$id", 3) == 0)
				v = reqid, skip = 3;
			if (v != NULL) {
				put_esc(out, cap, &n, v);
				t += skip;
				continue;
			}
		}
		out[n++] = *t++;
	}
	out[n] = '\0';
	return n;
}
