/*
 * session.h - one client connection and the HTTP exchanges (transactions) on it.
 *
 * Contract: session_new() takes ownership of an accepted socket. From then on the session
 * owns the client bufferevent, the upstream bufferevent of the current transaction, its
 * timers and a reference to the configuration generation it started with; only
 * session_close() frees them. Bodies are streamed in both directions with back-pressure,
 * so a session holds at most a few buffer-loads of data whatever the body size.
 */
#ifndef PROXYD_SESSION_H
#define PROXYD_SESSION_H

#include <sys/queue.h>
#include <sys/socket.h>

#include "cfg.h"
#include "http.h"
#include "upstream.h"

struct event_base;
struct resolver;
struct session;
TAILQ_HEAD(session_list, session);

/* What a worker gives its sessions. Touched only by the worker's own thread. */
struct session_env {
	struct event_base *base;
	struct up_pool pool;
	struct resolver *resolver; /* names of forward requests and resolve servers */
	struct session_list sessions;
	unsigned nsessions;
	int stopping;            /* graceful shutdown: finish the current request, then close */
	struct http_msg scratch; /* parse target; nothing survives one callback */
	void (*on_close)(struct session_env *env); /* after a session is freed */
	int id;
	char logtime[32]; /* cached access-log time for logtime_sec */
	time_t logtime_sec;
};

/* Start a session on an accepted, non-blocking socket fd. */
void session_new(struct session_env *env, int fd, const struct sockaddr *sa, socklen_t salen,
                 struct cfg *cfg, const struct cfg_server *srv);
/* Graceful shutdown: close idle sessions now, the rest after their current response. */
void session_env_drain(struct session_env *env);
/* Close every session at once (grace period over). */
void session_env_close_all(struct session_env *env);

#endif /* PROXYD_SESSION_H */
