/*
 * health.h - active health checks of upstream peers (health_check directive).
 *
 * Contract: health_start() starts one checker for every upstream of a generation that has
 * health_check, on the given event base; worker 0 alone runs them (worker.c), so a peer is
 * checked once per interval, not once per worker. Every interval, each peer not configured
 * `down` gets one check at most in flight: a TCP connection, `GET uri HTTP/1.1` with
 * `Connection: close`, and a response head parsed strictly by http_parse_response() (at
 * most HEALTH_MAX_HEAD bytes) whose status must lie within expect. A connect error, a
 * timeout (connect to the end of the head), a bad head or another status fails. After
 * `fails` consecutive failures the peer's health_down is set (logged once), after `passes`
 * consecutive passes it is cleared again (logged once); up_pick() skips a peer while
 * health_down is set. Every peer of a new generation starts up (health_down 0), as with
 * nginx Plus. The checker holds a reference to its generation; health_stop() closes its
 * connections, frees its timers and drops the reference. Both run on the thread of the
 * event base (or before its loop starts).
 */
#ifndef PROXYD_HEALTH_H
#define PROXYD_HEALTH_H

#include "cfg.h"

struct event_base;
struct health;

/* A check response head larger than this fails. */
#define HEALTH_MAX_HEAD 16384

/*
 * Start checking the upstreams of cfg that have health_check. Returns the checker set
 * (owned by the caller, freed by health_stop()), or NULL when there is nothing to check
 * or no memory (logged).
 */
struct health *health_start(struct event_base *base, struct cfg *cfg);
/* Stop every check of h and free it; NULL is allowed. */
void health_stop(struct health *h);

#endif /* PROXYD_HEALTH_H */
