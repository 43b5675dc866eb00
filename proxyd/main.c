/*
 * main.c - command line, start-up, signals, reload and shutdown.
 *
 * The main thread owns the configuration generations and the signal events; worker
 * threads (worker.c) own connections. SIGHUP loads the file into a new generation and
 * hands it to the workers only if it is valid; SIGTERM/SIGINT stop gracefully; SIGUSR1
 * reopens the log file. Under a Type=notify systemd unit ($NOTIFY_SOCKET set), proxyd
 * reports READY=1 once its sockets are bound and STOPPING=1 when it begins to stop.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <getopt.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "cfg.h"
#include "explain.h"
#include "log.h"
#include "worker.h"

#ifndef PROXYD_CONF
#define PROXYD_CONF "/etc/proxyd/proxyd.conf"
#endif

static struct cfg *current;
static const char *conf_path = PROXYD_CONF;
static struct event_base *main_base;
static int debug_mode;
/* Daemon mode: the parent waits on this pipe for the child's start-up verdict. */
static int ready_fd = -1;

static void
usage(FILE *f)
{
	fprintf(f, "usage: proxyd [-dfhtv] [-c file] [--explain 'key=value ...']\n"
	           "  -c file  configuration file (default " PROXYD_CONF ")\n"
	           "  -t       test the configuration and exit\n"
	           "  --explain 'src=IP ua=\"UA\" url=URL method=M time=YYYY-MM-DDTHH:MM user=U'\n"
	           "           print how such a request would be treated, and exit\n"
	           "  -f       stay in the foreground\n"
	           "  -d       debug: foreground, log to stderr at debug level\n"
	           "  -v       print the version and exit\n"
	           "  -h       print this help and exit\n");
}

/*
 * sd_notify(3) without libsystemd: STATE as one datagram to $NOTIFY_SOCKET, a path or an
 * abstract name written with a leading '@'. Does nothing without the variable (not started
 * by a Type=notify unit); a failed send is ignored, as systemd then times the start out.
 */
static void
notify_systemd(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sun;
	size_t len;
	int fd;

	if (path == NULL || (path[0] != '/' && path[0] != '@'))
		return;
	len = strlen(path);
	if (len >= sizeof(sun.sun_path))
		return;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, len);
	if (sun.sun_path[0] == '@')
		sun.sun_path[0] = '\0';
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1)
		return;
	(void)!sendto(fd, state, strlen(state), MSG_NOSIGNAL, (const struct sockaddr *)&sun,
	              (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len));
	close(fd);
}

static int
online_cpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 1 : n > 256 ? 256 : (int)n;
}

static void
reload(void)
{
	char *err = NULL;
	struct cfg *cfg = cfg_load_next(conf_path, current, &err);

	if (cfg == NULL) {
		log_warnx("reload failed, keeping the running configuration: %s",
		          err ? err : "out of memory");
		free(err);
		return;
	}
	if (workers_reload(cfg, &err) == -1) {
		log_warnx("reload failed, keeping the running configuration: %s",
		          err ? err : "out of memory");
		free(err);
		cfg_unref(cfg);
		return;
	}
	if (cfg->workers != current->workers)
		log_notice("reload: \"workers\" changes take effect at restart");
	if ((cfg->user == NULL) != (current->user == NULL) ||
	    (cfg->user && strcmp(cfg->user, current->user) != 0))
		log_notice("reload: \"user\" changes take effect at restart");
	if (!debug_mode && log_open(cfg->error_log, cfg->error_log_level) == -1)
		log_warn("reload: cannot open error log %s, keeping the old one", cfg->error_log);
	cfg_unref(current);
	current = cfg;
	log_notice("configuration generation %llu loaded from %s",
	           (unsigned long long)cfg->generation, conf_path);
}

static void
signalcb(evutil_socket_t sig, short what, void *arg)
{
	(void)what;
	(void)arg;
	switch (sig) {
	case SIGHUP:
		log_notice("SIGHUP: reloading %s", conf_path);
		reload();
		break;
	case SIGUSR1:
		log_reopen();
		log_notice("SIGUSR1: log file reopened");
		break;
	default:
		log_notice("signal %d: shutting down", (int)sig);
		event_base_loopbreak(main_base);
		break;
	}
}

/* The user was looked up by the load (as root); not root: nothing to switch. */
static void
drop_privileges(const struct cfg *cfg)
{
	if (cfg->user == NULL || geteuid() != 0)
		return;
	if (cfg->user_uid == (uid_t)-1)
		fatalx("unknown user \"%s\"", cfg->user);
	if (setgroups(1, &cfg->user_gid) == -1 || setgid(cfg->user_gid) == -1 ||
	    setuid(cfg->user_uid) == -1)
		fatal("cannot switch to user %s", cfg->user);
	log_set_owner((uid_t)-1, (gid_t)-1);
}

/*
 * The pid file, root's, in a directory that is usually root's: the fd is kept so that, when
 * the user cannot remove it at exit, it can at least be emptied (no stale pid for scripts).
 */
static int
write_pid_file(const char *path)
{
	char buf[32];
	int fd, n;

	if (path == NULL)
		return -1;
	if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, 0644)) == -1)
		fatal("cannot write pid file %s", path);
	n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	if (write(fd, buf, (size_t)n) != n)
		fatal("cannot write pid file %s", path);
	return fd;
}

static void
remove_pid_file(const char *path, int fd)
{
	if (path == NULL)
		return;
	if (unlink(path) == -1 && errno != ENOENT && fd != -1 && ftruncate(fd, 0) == -1)
		log_warn("cannot remove or empty the pid file %s", path);
	if (fd != -1)
		close(fd);
}

/*
 * Fork into the background. The parent stays until the child reports that it started
 * (daemon_ready) or died, so that `proxyd -c FILE` exits non-zero when start-up fails.
 */
static void
daemonize(void)
{
	int fds[2], fd;
	pid_t pid;
	char c;

	if (pipe2(fds, O_CLOEXEC) == -1)
		fatal("pipe");
	if ((pid = fork()) == -1)
		fatal("fork");
	if (pid > 0) {
		close(fds[1]);
		_exit(read(fds[0], &c, 1) == 1 ? 0 : 1);
	}
	close(fds[0]);
	ready_fd = fds[1];
	if (setsid() == -1)
		fatal("setsid");
	if ((fd = open("/dev/null", O_RDWR)) != -1) {
		dup2(fd, 0);
		dup2(fd, 1);
		if (fd > 2)
			close(fd);
	}
}

int
main(int argc, char **argv)
{
	int test = 0, foreground = 0, debug = 0, ch, nworkers, pid_fd = -1;
	char *err = NULL;
	struct event *sigs[4];
	const int signums[4] = {SIGHUP, SIGTERM, SIGINT, SIGUSR1};

	static const struct option longopts[] = {
	        {"explain", required_argument, NULL, 'X'},
	        {"help", no_argument, NULL, 'h'},
	        {"version", no_argument, NULL, 'v'},
	        {NULL, 0, NULL, 0},
	};
	const char *explain = NULL;

	while ((ch = getopt_long(argc, argv, "c:dfhtv", longopts, NULL)) != -1) {
		switch (ch) {
		case 'X':
			explain = optarg;
			break;
		case 'c':
			conf_path = optarg;
			break;
		case 'd':
			debug = foreground = debug_mode = 1;
			break;
		case 'f':
			foreground = 1;
			break;
		case 't':
			test = 1;
			break;
		case 'v':
			printf("proxyd %s\n", PACKAGE_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}

	/*
	 * The daemon blocks SIGHUP and SIGUSR1 until their events exist: loading the
	 * configuration can take a while (names, the cache), and either signal then, such as
	 * `systemctl reload` or logrotate right after a Type=simple start, would kill it. A
	 * blocked signal stays pending and reaches its event once unblocked. SIGTERM and
	 * SIGINT stay deliverable: before the events exist they stop proxyd at once.
	 */
	sigset_t blocked;
	sigemptyset(&blocked);
	sigaddset(&blocked, SIGHUP);
	sigaddset(&blocked, SIGUSR1);
	if (!test && explain == NULL && sigprocmask(SIG_BLOCK, &blocked, NULL) == -1)
		fatal("sigprocmask");

	/* -t and --explain never serve: they check what the daemon would create, creating nothing
	 */
	current = test || explain != NULL ? cfg_load_flags(conf_path, CFG_LOAD_CHECK, &err)
	                                  : cfg_load(conf_path, &err);
	if (current == NULL) {
		fprintf(stderr, "proxyd: %s\n", err ? err : "out of memory");
		free(err);
		return 1;
	}
	if (explain != NULL) {
		int rc = explain_run(current, explain, stdout);

		cfg_unref(current);
		return rc;
	}
	if (test) {
		printf("proxyd: configuration file %s: configuration OK\n", conf_path);
		cfg_unref(current);
		return 0;
	}

	signal(SIGPIPE, SIG_IGN);
	if (!foreground) {
		/*
		 * Threads do not survive fork(): a cache store's writer thread and its LMDB
		 * environment must be made in the daemon itself, so load again there.
		 */
		cfg_unref(current);
		daemonize();
		if ((current = cfg_load(conf_path, &err)) == NULL)
			fatalx("%s", err ? err : "out of memory");
	}
	/* a log created as root goes to the user, who must reopen it after the switch */
	if (current->user != NULL && geteuid() == 0)
		log_set_owner(current->user_uid, current->user_gid);
	if (log_open(debug ? NULL : current->error_log,
	             debug ? LOG_DEBUG : current->error_log_level) == -1)
		fatal("cannot open error log %s", current->error_log);
	if (!foreground) {
		/* stderr follows the log from here on */
		int fd = open("/dev/null", O_RDWR);
		if (fd != -1 && current->error_log && strcmp(current->error_log, "stderr") != 0)
			dup2(fd, 2);
		if (fd > 2)
			close(fd);
	}

	/* Signal events first: a SIGHUP right after start-up must reload, not kill. */
	if (evthread_use_pthreads() == -1)
		fatalx("libevent has no pthreads support");
	if ((main_base = event_base_new()) == NULL)
		fatalx("cannot create the main event base");
	for (int i = 0; i < 4; i++) {
		sigs[i] = evsignal_new(main_base, signums[i], signalcb, NULL);
		event_add(sigs[i], NULL);
	}
	if (sigprocmask(SIG_UNBLOCK, &blocked, NULL) == -1)
		fatal("sigprocmask");
	nworkers = current->workers > 0 ? current->workers : online_cpus();
	if (workers_start(current, nworkers, &err) == -1) {
		log_crit("%s", err ? err : "cannot start workers");
		free(err);
		return 1;
	}
	/* the path written, not a reloaded one: pid_file changes need a restart */
	char *pid_path = current->pid_file ? strdup(current->pid_file) : NULL;
	pid_fd = write_pid_file(current->pid_file);
	drop_privileges(current);
	if (ready_fd != -1) {
		(void)!write(ready_fd, "1", 1);
		close(ready_fd);
		ready_fd = -1;
	}
	log_notice("proxyd %s started: %d worker(s), configuration %s", PACKAGE_VERSION, nworkers,
	           conf_path);
	notify_systemd("READY=1");

	event_base_dispatch(main_base);

	notify_systemd("STOPPING=1");

	workers_stop(current->shutdown_timeout_ms);
	for (int i = 0; i < 4; i++)
		event_free(sigs[i]);
	event_base_free(main_base);
	remove_pid_file(pid_path, pid_fd);
	free(pid_path);
	cfg_unref(current);
	log_notice("proxyd stopped");
	return 0;
}
