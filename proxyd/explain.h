/*
 * explain.h - `proxyd --explain SPEC`: how a request would be treated, offline.
 *
 * Contract: explain_run() parses SPEC (space-separated key=value pairs, values may be
 * double-quoted: src= ua= url= method= time= user= server= header="Name: value"), builds
 * the request a client would send, and prints to out: the server chosen, the policy
 * decision with the deciding rule (id and file:line) and each earlier rule that did not
 * match with the first matcher that failed, and, when allowed, the request head exactly as
 * it would be forwarded (after header rewriting and anonymization) and the upstream peer
 * or origin it would go to. No socket is opened and no traffic is sent. Returns 0 when
 * the request would be allowed, 1 when denied, 2 when SPEC is invalid (*out gets why).
 */
#ifndef PROXYD_EXPLAIN_H
#define PROXYD_EXPLAIN_H

#include <stdio.h>

#include "cfg.h"

int explain_run(struct cfg *cfg, const char *spec, FILE *out);

#endif /* PROXYD_EXPLAIN_H */
