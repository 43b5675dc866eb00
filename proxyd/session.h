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
#include "policy.h"
#include "rules.h"
#include "upstream.h"

struct event_base;
struct resolver;
struct session;
TAILQ_HEAD(session_list, session);

/* What a worker gives its sessions. Touched only by the worker's own thread. */
/* Timeout durations a worker keeps as libevent common timeouts (more use the heap). */
#define SESSION_TIMEOUTS 32

struct session_env {
	struct event_base *base;
	struct up_pool pool;
	struct resolver *resolver;       /* names of forward requests and resolve servers */
	struct session_subject *subject; /* what access rules see of a request (scratch) */
	struct rules_scratch *rscratch;  /* rules evaluation scratch of this thread */
	struct http_msg *reqmsg;         /* a request head parsed again (cache store decisions) */
	struct session_list sessions;
	unsigned nsessions;
	int stopping;            /* graceful shutdown: finish the current request, then close */
	struct http_msg scratch; /* parse target; nothing survives one callback */
	void (*on_close)(struct session_env *env); /* after a session is freed */
	int id;
	char logtime[32]; /* cached access-log time for logtime_sec */
	time_t logtime_sec;
	/* the base's common timeouts (O(1) re-arming) by duration, see session.c env_tv() */
	unsigned ntmo;
	struct session_tmo {
		uint32_t ms;
		struct timeval tv;
	} tmo[SESSION_TIMEOUTS];
};

/* A request as the rule language sees it, with the buffers it points into. */
struct session_subject {
	struct rules_subject subj;
	struct rules_header hdrs[HTTP_MAX_HEADERS];
	struct cache_header chdrs[HTTP_MAX_HEADERS]; /* the same, for the cache policy */
	char host[256];
	char *path; /* normalized path, malloc'd, pathcap bytes */
	size_t pathcap;
};

/* The clock of time and date rules (PROXYD_TEST_NOW in --enable-test-hooks builds). */
time_t session_now(void);
/*
 * Fill ss for the request msg from client (user may be NULL): the host lower-cased, the
 * path normalized (rules_path_normalize), the headers as slices of msg. Returns 0, -1 when
 * out of memory or the host is too long, -2 when the path's percent-encoding is invalid.
 */
int session_rules_subject(const struct cfg_server *srv, const struct http_msg *msg,
                          const struct sockaddr *client, const char *user, time_t now,
                          struct session_subject *ss);

struct evbuffer;
/*
 * The head that would go upstream for msg arriving on srv from client (address text),
 * after header rewriting and anonymization, into out (for --explain). Returns 0.
 */
int session_explain_head(const struct cfg_server *srv, const struct http_msg *msg,
                         const char *client, struct evbuffer *out);

/* Start a session on an accepted, non-blocking socket fd; tls: a `listen ... tls` socket. */
void session_new(struct session_env *env, int fd, const struct sockaddr *sa, socklen_t salen,
                 struct cfg *cfg, const struct cfg_server *srv, int tls);
/* Graceful shutdown: close idle sessions now, the rest after their current response. */
void session_env_drain(struct session_env *env);
/* Close every session at once (grace period over). */
void session_env_close_all(struct session_env *env);

#endif /* PROXYD_SESSION_H */
