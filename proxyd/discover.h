/*
 * discover.h - upstream servers named by DNS (`server NAME:PORT resolve`).
 *
 * Contract: discover_start() looks up every resolve server of a generation's upstreams at
 * once and then again when the answer expires: its records' TTL, at most `valid=` of the
 * resolver directive, at least a second unless valid= is shorter (every valid= after "no
 * such name", every second after a failure), on one worker's event base and resolver (worker 0's,
 * like health checks: one lookup per name, not one per worker). Each answer (at most
 * CFG_RESOLVE_SLOTS addresses) is spread over the server's slots: an address still in the answer
 * keeps its slot (and its passive-health state); a slot whose address left the answer is emptied;
 * new addresses take empty slots with fresh health state. "No such name" empties every slot (the
 * server is gone from DNS); a failed lookup (timeout, SERVFAIL) keeps the addresses in use. Changes
 * are logged at notice level. A new generation starts from the addresses the previous one had for
 * the same upstream and name (prev may be NULL), so a reload does not leave resolve servers empty
 * until the first answer. Replaced addresses stay readable (cfg_peer_addr() readers copy them) and
 * are freed a minute later or with the generation.
 */
#ifndef PROXYD_DISCOVER_H
#define PROXYD_DISCOVER_H

#include "cfg.h"

struct event_base;
struct resolver;
struct discover;

/* NULL when cfg has no resolve servers (or no memory, logged). */
struct discover *discover_start(struct event_base *base, struct resolver *r, struct cfg *cfg,
                                const struct cfg *prev);
/* Stop looking up and free d; NULL is allowed. */
void discover_stop(struct discover *d);

#endif /* PROXYD_DISCOVER_H */
