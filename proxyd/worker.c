#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "admin.h"
#include "discover.h"
#include "health.h"
#include "log.h"
#include "metrics.h"
#include "resolve.h"
#include "session.h"
#include "worker.h"

/* Callbacks a worker runs before it polls for new events again. */
#define WORKER_MAX_CALLBACKS 32

/* After an accept error such as EMFILE, the listener rests this long instead of spinning. */
#define ACCEPT_PAUSE_MS 200

/* One listening socket of one worker. Allocated alone so its address is stable. */
struct wlistener {
	struct worker *w;
	char key[64];                 /* cfg_addr.text: identity across reloads */
	struct event *lev;            /* accept event; NULL until the worker adopts the socket */
	int fd;                       /* bound socket waiting for adoption, or -1 */
	const struct cfg_server *srv; /* in w->cfg */
	int tls;                      /* the listen has `tls` */
};

/* What the main thread hands a worker: a generation and its listeners. */
struct wmsg {
	struct cfg *cfg;
	struct wlistener **ls;
	size_t nls;
	/* worker 0: the admin endpoint's address ("" for none) and its new socket (-1: keep) */
	char admin_key[64];
	int admin_fd;
};

struct worker {
	int id;
	pthread_t thread;
	struct session_env env;
	struct cfg *cfg; /* generation for new connections */
	struct wlistener **ls;
	size_t nls;
	struct event *ctl;    /* main → worker: a message is waiting */
	struct event *resume; /* re-enable listeners after an accept error or at the limit */
	pthread_mutex_t lock;
	struct wmsg *pending; /* under lock */
	int stop;             /* under lock: 1 drain, 2 close everything now */
	int paused;
	int joined;
	struct health *health;     /* worker 0: the checks of cfg's upstreams (health.h) */
	struct admin *admin;       /* worker 0: the admin endpoint (admin.h), or NULL */
	struct discover *discover; /* worker 0: resolve servers of cfg's upstreams */
};

static struct worker *workers;
static int nworkers;
/* Main thread: the generation last handed to the workers; its listen addresses are open. */
static struct cfg *posted;

static char *errfmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *
errfmt(const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) == -1)
		s = NULL;
	va_end(ap);
	return s;
}

/* Bind one SO_REUSEPORT socket for l. Returns the fd or -1 with *err set. */
static int
listen_socket(const struct cfg_listen *l, char **err)
{
	int fd, one = 1;
	int family = l->addr.ss.ss_family;

	fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		goto fail;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) == -1)
		goto fail;
	if (family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) == -1)
		goto fail;
	if (bind(fd, (const struct sockaddr *)&l->addr.ss, l->addr.len) == -1 ||
	    listen(fd, l->backlog) == -1)
		goto fail;
	return fd;
fail:
	*err = errfmt("%s:%d: listen %s: %s", l->file, l->line, l->addr.text, strerror(errno));
	if (fd != -1)
		close(fd);
	return -1;
}

/*
 * SO_REUSEPORT would let us join another process's listening group (a second proxyd
 * started by mistake) and split its traffic. A plain bind first fails if anyone else
 * already listens there.
 */
static int
listen_probe(const struct cfg_listen *l, char **err)
{
	int fd, one = 1;

	fd = socket(l->addr.ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd == -1)
		goto fail;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1)
		goto fail;
	if (l->addr.ss.ss_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) == -1)
		goto fail;
	if (bind(fd, (const struct sockaddr *)&l->addr.ss, l->addr.len) == -1)
		goto fail;
	close(fd);
	return 0;
fail:
	*err = errfmt("%s:%d: listen %s: %s", l->file, l->line, l->addr.text, strerror(errno));
	if (fd != -1)
		close(fd);
	return -1;
}

static const struct cfg_server *
cfg_server_for(const struct cfg *cfg, const char *key, int *tls)
{
	for (size_t i = 0; i < cfg->nservers; i++) {
		for (size_t j = 0; j < cfg->servers[i].nlistens; j++) {
			if (strcmp(cfg->servers[i].listens[j].addr.text, key) == 0) {
				*tls = cfg->servers[i].listens[j].tls;
				return &cfg->servers[i];
			}
		}
	}
	*tls = 0;
	return NULL;
}

static struct wlistener *
worker_find_listener(struct worker *w, const char *key)
{
	for (size_t i = 0; i < w->nls; i++)
		if (w->ls[i] != NULL && strcmp(w->ls[i]->key, key) == 0)
			return w->ls[i];
	return NULL;
}

static void
wlistener_free(struct wlistener *wl)
{
	if (wl == NULL)
		return;
	if (wl->lev) {
		close(event_get_fd(wl->lev));
		event_free(wl->lev);
	} else if (wl->fd != -1)
		close(wl->fd);
	free(wl);
}

static void
wmsg_free(struct wmsg *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->nls; i++)
		wlistener_free(m->ls[i]);
	free(m->ls);
	if (m->admin_fd != -1)
		close(m->admin_fd);
	if (m->cfg)
		cfg_unref(m->cfg);
	free(m);
}

/*
 * Build the listener set of generation cfg for worker w: sockets of addresses w already
 * listens on are reused (marked fd -1, adopted by key in the worker), new ones are bound
 * here so that a failure rejects the whole generation before any worker sees it.
 */
static const struct cfg_server *cfg_server_for(const struct cfg *cfg, const char *key, int *tls);

static struct wmsg *
wmsg_build(struct worker *w, struct cfg *cfg, char **err)
{
	struct wmsg *m = calloc(1, sizeof(*m));
	size_t n = 0;

	if (m == NULL)
		goto nomem;
	m->admin_fd = -1;
	/* worker 0 serves the admin endpoint; its socket is kept while the address stays */
	if (w->id == 0 && cfg->admin.enabled) {
		const struct cfg_listen *l = &cfg->admin.listen;

		snprintf(m->admin_key, sizeof(m->admin_key), "%s", l->addr.text);
		if (posted == NULL || !posted->admin.enabled ||
		    strcmp(posted->admin.listen.addr.text, l->addr.text) != 0) {
			if (listen_probe(l, err) == -1 ||
			    (m->admin_fd = listen_socket(l, err)) == -1)
				goto fail;
		}
	}
	for (size_t i = 0; i < cfg->nservers; i++)
		n += cfg->servers[i].nlistens;
	if ((m->ls = calloc(n, sizeof(*m->ls))) == NULL)
		goto nomem;
	for (size_t i = 0; i < cfg->nservers; i++) {
		for (size_t j = 0; j < cfg->servers[i].nlistens; j++) {
			const struct cfg_listen *l = &cfg->servers[i].listens[j];
			struct wlistener *wl = calloc(1, sizeof(*wl));

			if (wl == NULL)
				goto nomem;
			m->ls[m->nls++] = wl;
			wl->w = w;
			wl->fd = -1;
			snprintf(wl->key, sizeof(wl->key), "%s", l->addr.text);
			int tls_unused;

			if (posted != NULL && cfg_server_for(posted, wl->key, &tls_unused) != NULL)
				continue; /* the worker keeps its socket */
			if (w->id == 0 && listen_probe(l, err) == -1)
				goto fail;
			if ((wl->fd = listen_socket(l, err)) == -1)
				goto fail;
		}
	}
	cfg_ref(cfg);
	m->cfg = cfg;
	return m;
nomem:
	*err = errfmt("out of memory");
fail:
	wmsg_free(m);
	return NULL;
}

static void worker_acceptcb(evutil_socket_t lfd, short what, void *arg);

static void
worker_pause(struct worker *w)
{
	struct timeval tv = {0, ACCEPT_PAUSE_MS * 1000};

	if (w->paused)
		return;
	w->paused = 1;
	for (size_t i = 0; i < w->nls; i++)
		if (w->ls[i]->lev)
			event_del(w->ls[i]->lev);
	event_add(w->resume, &tv);
}

static void
worker_resumecb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;

	(void)fd;
	(void)what;
	if (w->env.stopping)
		return;
	if (w->cfg != NULL && w->env.nsessions >= (unsigned)w->cfg->worker_connections) {
		struct timeval tv = {0, ACCEPT_PAUSE_MS * 1000};
		event_add(w->resume, &tv);
		return;
	}
	w->paused = 0;
	for (size_t i = 0; i < w->nls; i++)
		if (w->ls[i]->lev)
			event_add(w->ls[i]->lev, NULL);
}

/* Worker 0: keep, replace or close the admin endpoint as m says (worker thread). */
static void
worker_apply_admin(struct worker *w, struct wmsg *m)
{
	if (w->env.stopping || m->admin_key[0] == '\0') {
		admin_stop(w->admin);
		w->admin = NULL;
		return;
	}
	if (m->admin_fd != -1) {
		admin_stop(w->admin);
		w->admin = admin_start(w->env.base, m->admin_fd, m->admin_key);
		m->admin_fd = -1;
	} else if (w->admin == NULL || strcmp(admin_key(w->admin), m->admin_key) != 0) {
		log_warnx("worker %d: lost the admin socket for %s", w->id, m->admin_key);
		admin_stop(w->admin);
		w->admin = NULL;
	}
	if (w->admin != NULL)
		admin_set_cfg(w->admin, w->cfg);
}

/* Install a generation and its listeners (worker thread). */
static void
worker_apply(struct worker *w, struct wmsg *m)
{
	for (size_t i = 0; i < m->nls; i++) {
		struct wlistener *wl = m->ls[i], *old;

		if (wl->fd == -1 && (old = worker_find_listener(w, wl->key)) != NULL &&
		    old->lev != NULL) {
			/* adopt the running socket */
			wl->fd = event_get_fd(old->lev);
			event_free(old->lev);
			old->lev = NULL;
			old->fd = -1;
		}
		if (wl->fd == -1) {
			log_warnx("worker %d: lost the socket for %s", w->id, wl->key);
			continue;
		}
		if ((wl->lev = event_new(w->env.base, wl->fd, EV_READ | EV_PERSIST, worker_acceptcb,
		                         wl)) == NULL) {
			log_warn("worker %d: cannot listen on %s", w->id, wl->key);
			close(wl->fd);
			wl->fd = -1;
			continue;
		}
		wl->fd = -1;
		wl->srv = cfg_server_for(m->cfg, wl->key, &wl->tls);
		if (!w->paused)
			event_add(wl->lev, NULL);
	}
	/* what the old set still holds is no longer configured */
	for (size_t i = 0; i < w->nls; i++)
		wlistener_free(w->ls[i]);
	free(w->ls);
	w->ls = m->ls;
	w->nls = m->nls;
	m->ls = NULL;
	m->nls = 0;
	struct cfg *prev = w->cfg;

	w->cfg = m->cfg;
	m->cfg = NULL;
	/* resolver_new() made the resolver from the first generation (and read /etc/hosts) */
	if (prev != NULL)
		resolver_configure(w->env.resolver, &w->cfg->resolver);
	/* Active health checks run in worker 0 only: one check per interval, not N. */
	if (w->id == 0 && !w->env.stopping) {
		health_stop(w->health);
		w->health = health_start(w->env.base, w->cfg);
		/* the new generation starts from the addresses the old one had */
		struct discover *d = discover_start(w->env.base, w->env.resolver, w->cfg, prev);
		discover_stop(w->discover);
		w->discover = d;
	}
	if (prev)
		cfg_unref(prev);
	if (w->id == 0)
		worker_apply_admin(w, m);
	wmsg_free(m);
}

/*
 * One connection per readiness event, as nginx does without multi_accept: the listening
 * socket is level-triggered, so more pending connections report it again on the next
 * loop pass, and a connection that arrives alone costs one accept4 instead of a second
 * one that fails with EAGAIN (libevent's evconnlistener accepts until EAGAIN).
 */
static void
worker_acceptcb(evutil_socket_t lfd, short what, void *arg)
{
	struct wlistener *wl = arg;
	struct worker *w = wl->w;
	struct sockaddr_storage ss;
	socklen_t salen = sizeof(ss);
	int fd;

	(void)what;
	fd = accept4(lfd, (struct sockaddr *)&ss, &salen, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd == -1) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ||
		    errno == ECONNABORTED)
			return;
		/* EMFILE, ENFILE, ENOBUFS, ENOMEM: the pending connection stays queued;
		 * retrying at once would spin, so rest a moment. */
		log_warn("accept() failed");
		worker_pause(w);
		return;
	}
	if (w->env.stopping || wl->srv == NULL) {
		close(fd);
		return;
	}
	session_new(&w->env, fd, (struct sockaddr *)&ss, salen, w->cfg, wl->srv, wl->tls);
	if (w->env.nsessions >= (unsigned)w->cfg->worker_connections) {
		log_warnx("worker %d: %d worker_connections are not enough", w->id,
		          w->cfg->worker_connections);
		worker_pause(w);
	}
}

static void
worker_session_closed(struct session_env *env)
{
	if (env->stopping && env->nsessions == 0)
		event_base_loopexit(env->base, NULL);
}

/* Stop what worker 0 may run beside the sessions: health checks, discovery, admin. */
static void
worker_stop_services(struct worker *w)
{
	health_stop(w->health);
	w->health = NULL;
	discover_stop(w->discover);
	w->discover = NULL;
	admin_stop(w->admin);
	w->admin = NULL;
}

static void
worker_ctlcb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	struct wmsg *m;
	int stop;

	(void)fd;
	(void)what;
	pthread_mutex_lock(&w->lock);
	m = w->pending;
	w->pending = NULL;
	stop = w->stop;
	pthread_mutex_unlock(&w->lock);

	if (m != NULL)
		worker_apply(w, m);
	if (stop >= 1 && !w->env.stopping) {
		for (size_t i = 0; i < w->nls; i++)
			wlistener_free(w->ls[i]);
		free(w->ls);
		w->ls = NULL;
		w->nls = 0;
		event_del(w->resume);
		worker_stop_services(w);
		up_pool_clear(&w->env.pool);
		session_env_drain(&w->env);
		if (w->env.nsessions == 0)
			event_base_loopexit(w->env.base, NULL);
	}
	if (stop >= 2) {
		session_env_close_all(&w->env);
		event_base_loopexit(w->env.base, NULL);
	}
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;

	if (metrics_attach(w->id) == -1)
		log_warnx("worker %d: metrics: out of memory, sharing the fallback block", w->id);
	event_base_dispatch(w->env.base);
	worker_stop_services(w);
	session_env_close_all(&w->env);
	up_pool_clear(&w->env.pool);
	return NULL;
}

static void
worker_post(struct worker *w, struct wmsg *m, int stop)
{
	pthread_mutex_lock(&w->lock);
	if (m != NULL) {
		struct wmsg *prev = w->pending;

		/* The worker has not applied the previous set: carry its new sockets over. */
		for (size_t i = 0; prev != NULL && i < m->nls; i++) {
			for (size_t j = 0; m->ls[i]->fd == -1 && j < prev->nls; j++) {
				if (prev->ls[j]->fd != -1 &&
				    strcmp(prev->ls[j]->key, m->ls[i]->key) == 0) {
					m->ls[i]->fd = prev->ls[j]->fd;
					prev->ls[j]->fd = -1;
				}
			}
		}
		/* ... and its new admin socket */
		if (prev != NULL && m->admin_fd == -1 && prev->admin_fd != -1 &&
		    strcmp(prev->admin_key, m->admin_key) == 0) {
			m->admin_fd = prev->admin_fd;
			prev->admin_fd = -1;
		}
		wmsg_free(prev);
		w->pending = m;
	}
	if (stop > w->stop)
		w->stop = stop;
	pthread_mutex_unlock(&w->lock);
	event_active(w->ctl, EV_READ, 0);
}

int
workers_start(struct cfg *cfg, int n, char **err)
{
	sigset_t all, old;

	if (metrics_bind(cfg) == -1)
		log_warnx("metrics: out of memory: some counters go unlabelled");
	if ((workers = calloc((size_t)n, sizeof(*workers))) == NULL) {
		*err = errfmt("out of memory");
		return -1;
	}
	nworkers = n;
	for (int i = 0; i < n; i++) {
		struct worker *w = &workers[i];
		struct wmsg *m;

		w->id = i;
		pthread_mutex_init(&w->lock, NULL);
		TAILQ_INIT(&w->env.sessions);
		up_pool_init(&w->env.pool);
		w->env.id = i;
		w->env.on_close = worker_session_closed;
		/*
		 * The changelist folds the enable/disable pairs a request makes within one
		 * loop pass into at most one epoll_ctl per descriptor.
		 */
		struct event_config *ec = event_config_new();

		if (ec != NULL)
			event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
		/*
		 * Poll again after WORKER_MAX_CALLBACKS callbacks instead of running a whole
		 * batch of ready events first: responses are noticed sooner, the number of
		 * requests in flight upstream swings less, and the idle pool serves more of
		 * them (at 500 connections with keepalive 64: 28% instead of 62% new upstream
		 * connections, +15% requests per second; see tests/bench/RESULTS.md).
		 */
		if (ec != NULL)
			event_config_set_max_dispatch_interval(ec, NULL, WORKER_MAX_CALLBACKS, 0);
		w->env.base = ec != NULL ? event_base_new_with_config(ec) : NULL;
		if (ec != NULL)
			event_config_free(ec);
		if (w->env.base == NULL) {
			*err = errfmt("cannot create an event base");
			return -1;
		}
		w->ctl = event_new(w->env.base, -1, EV_PERSIST, worker_ctlcb, w);
		w->env.subject = calloc(1, sizeof(*w->env.subject));
		w->env.rscratch = rules_scratch_new();
		w->env.reqmsg = calloc(1, sizeof(*w->env.reqmsg));
		if (w->env.subject == NULL || w->env.rscratch == NULL || w->env.reqmsg == NULL) {
			*err = errfmt("out of memory");
			return -1;
		}
		*err = NULL;
		if ((w->env.resolver = resolver_new(w->env.base, &cfg->resolver, err)) == NULL) {
			if (*err == NULL)
				*err = errfmt("cannot create a resolver");
			return -1;
		}
		w->resume = evtimer_new(w->env.base, worker_resumecb, w);
		if ((m = wmsg_build(w, cfg, err)) == NULL)
			return -1;
		worker_apply(w, m);
	}
	cfg_ref(cfg);
	posted = cfg;
	/* Signals belong to the main thread: workers start with all of them blocked. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (int i = 0; i < n; i++) {
		if (pthread_create(&workers[i].thread, NULL, worker_main, &workers[i]) != 0) {
			pthread_sigmask(SIG_SETMASK, &old, NULL);
			*err = errfmt("cannot start worker thread: %s", strerror(errno));
			return -1;
		}
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return 0;
}

int
workers_reload(struct cfg *cfg, char **err)
{
	struct wmsg **msgs = calloc((size_t)nworkers, sizeof(*msgs));

	if (metrics_bind(cfg) == -1)
		log_warnx("metrics: out of memory: some counters go unlabelled");
	if (msgs == NULL) {
		*err = errfmt("out of memory");
		return -1;
	}
	for (int i = 0; i < nworkers; i++) {
		if ((msgs[i] = wmsg_build(&workers[i], cfg, err)) == NULL) {
			for (int j = 0; j < i; j++)
				wmsg_free(msgs[j]);
			free(msgs);
			return -1;
		}
	}
	for (int i = 0; i < nworkers; i++)
		worker_post(&workers[i], msgs[i], 0);
	free(msgs);
	cfg_ref(cfg);
	cfg_unref(posted);
	posted = cfg;
	return 0;
}

void
workers_stop(uint32_t grace_ms)
{
	struct timespec deadline;
	int left;

	for (int i = 0; i < nworkers; i++)
		worker_post(&workers[i], NULL, 1);
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += grace_ms / 1000;
	deadline.tv_nsec += (long)(grace_ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	for (int i = 0; i < nworkers; i++) {
		if (pthread_timedjoin_np(workers[i].thread, NULL, &deadline) == 0)
			workers[i].joined = 1;
	}
	left = 0;
	for (int i = 0; i < nworkers; i++) {
		if (!workers[i].joined) {
			left++;
			worker_post(&workers[i], NULL, 2);
		}
	}
	if (left)
		log_warnx("shutdown grace period over: closing connections of %d worker(s)", left);
	for (int i = 0; i < nworkers; i++) {
		if (!workers[i].joined)
			pthread_join(workers[i].thread, NULL);
	}
	for (int i = 0; i < nworkers; i++) {
		struct worker *w = &workers[i];

		for (size_t j = 0; j < w->nls; j++)
			wlistener_free(w->ls[j]);
		free(w->ls);
		wmsg_free(w->pending);
		event_free(w->ctl);
		event_free(w->resume);
		health_stop(w->health); /* a worker that never ran */
		w->health = NULL;
		discover_stop(w->discover);
		w->discover = NULL;
		admin_stop(w->admin);
		w->admin = NULL;
		resolver_free(w->env.resolver);
		w->env.resolver = NULL;
		if (w->env.subject != NULL)
			free(w->env.subject->path);
		free(w->env.subject);
		w->env.subject = NULL;
		rules_scratch_free(w->env.rscratch);
		w->env.rscratch = NULL;
		free(w->env.reqmsg);
		w->env.reqmsg = NULL;
		if (w->cfg)
			cfg_unref(w->cfg);
		event_base_free(w->env.base);
		pthread_mutex_destroy(&w->lock);
	}
	free(workers);
	workers = NULL;
	nworkers = 0;
	if (posted)
		cfg_unref(posted);
	posted = NULL;
}
