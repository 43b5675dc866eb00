/*
 * admin.h - the admin endpoint (admin { listen ADDR:PORT; } in proxyd.conf).
 *
 * Contract: worker 0 alone serves it, on its own event base, like the health checker
 * (health.h). The main thread binds the socket (worker.c, with the other listeners), so a
 * bind failure refuses a start or a reload; a reload that keeps the admin address keeps
 * the socket and the running struct admin. admin_start() adopts a bound, listening,
 * non-blocking socket; admin_set_cfg() installs the generation worker 0 currently serves
 * (a reference is held). Each connection sends one request head (at most ADMIN_MAX_HEAD
 * bytes, parsed strictly by http_parse_request()), gets one answer with
 * `Connection: close`, and is closed:
 *   GET /upstreams   200, application/json: the generation and, per upstream, its peers'
 *                    configuration and runtime state (see proxyd.conf(5), "admin");
 *   GET /acl         200, application/json: the access lists and their hits;
 *   GET /metrics     200, text/plain; version=0.0.4: metrics_render() (metrics.h);
 *   another path     404;
 *   another method   405 (on those three paths);
 *   a bad head       the parser's status (400 for a malformed request, 431 when too big).
 * A connection idle for ADMIN_TIMEOUT_MS is closed. Runtime state is read with relaxed
 * atomics, so one answer is not a consistent snapshot across peers. Everything runs on the
 * thread of the event base (or before its loop starts).
 */
#ifndef PROXYD_ADMIN_H
#define PROXYD_ADMIN_H

#include <stdint.h>

#include "cfg.h"

struct event_base;
struct evbuffer;
struct admin;

#define ADMIN_MAX_HEAD   8192  /* a larger request head is refused */
#define ADMIN_TIMEOUT_MS 10000 /* read and write timeout of a connection */
#define ADMIN_MAX_CONNS  64    /* further connections are closed at once */

/*
 * Serve the admin endpoint on fd (owned from here on, closed by admin_stop(); closed here
 * on failure) identified by key (the address text). NULL on failure (logged).
 */
struct admin *admin_start(struct event_base *base, int fd, const char *key);
/* The address text admin_start() was given. */
const char *admin_key(const struct admin *a);
/* Answer with the runtime state of cfg from now on (takes a reference; NULL allowed). */
void admin_set_cfg(struct admin *a, struct cfg *cfg);
/* Close the socket and every connection, drop the generation, free a; NULL is allowed. */
void admin_stop(struct admin *a);

/*
 * Append the JSON document of GET /upstreams for cfg at monotonic time now_ms to buf.
 * Returns 0, or -1 when out of memory.
 */
int admin_upstreams_json(struct evbuffer *buf, const struct cfg *cfg, int64_t now_ms);
/*
 * The access lists of cfg's servers as JSON into buf: per server its first listen
 * address, mode, each line's id, file, line, action, status and hits, and the default's
 * action and hits. Returns 0 or -1 (out of memory).
 */
int admin_acl_json(struct evbuffer *buf, const struct cfg *cfg);

#endif /* PROXYD_ADMIN_H */
