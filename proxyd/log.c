#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

int log_level = LOG_NOTICE;

static atomic_int log_fd = 2;
static char *log_path;
static uid_t log_uid = (uid_t)-1;
static gid_t log_gid = (gid_t)-1;

static const char *const log_names[] = {
        [LOG_EMERG] = "emerg",  [LOG_ALERT] = "alert",   [LOG_CRIT] = "crit", [LOG_ERR] = "error",
        [LOG_WARNING] = "warn", [LOG_NOTICE] = "notice", [LOG_INFO] = "info", [LOG_DEBUG] = "debug",
};

int
log_level_parse(const char *name)
{
	for (int i = LOG_CRIT; i <= LOG_DEBUG; i++)
		if (strcasecmp(name, log_names[i]) == 0)
			return i;
	if (strcasecmp(name, "err") == 0)
		return LOG_ERR;
	if (strcasecmp(name, "warning") == 0)
		return LOG_WARNING;
	return -1;
}

void
log_set_owner(uid_t uid, gid_t gid)
{
	log_uid = uid;
	log_gid = gid;
}

int
log_file_open(const char *path, int *created)
{
	const int flags = O_WRONLY | O_APPEND | O_CLOEXEC | O_NOCTTY;
	int fd;

	*created = 0;
	/* bounded: a file removed or created between the two opens is tried again */
	for (int i = 0; i < 3; i++) {
		if ((fd = open(path, flags | O_CREAT | O_EXCL, 0640)) != -1) {
			*created = 1;
			return fd;
		}
		if (errno != EEXIST)
			return -1;
		if ((fd = open(path, flags)) != -1 || errno != ENOENT)
			return fd;
	}
	/* a dangling symbolic link: created through it, as open(O_CREAT) does */
	return open(path, flags | O_CREAT, 0640);
}

static int
log_open_path(const char *path)
{
	int fd, created;

	if (path == NULL || strcmp(path, "stderr") == 0)
		return 2;
	if ((fd = log_file_open(path, &created)) == -1)
		return -1;
	/* after the switch to the user, its files are its own already */
	if (created && log_uid != (uid_t)-1 && geteuid() == 0 && fchown(fd, log_uid, log_gid) == -1)
		log_warn("cannot give the error log %s to uid %lu", path, (unsigned long)log_uid);
	return fd;
}

int
log_open(const char *path, int level)
{
	int fd = log_open_path(path);

	if (fd == -1)
		return -1;
	int old = atomic_exchange(&log_fd, fd);
	if (old > 2)
		close(old);
	free(log_path);
	log_path = path ? strdup(path) : NULL;
	log_level = level;
	return 0;
}

void
log_reopen(void)
{
	int fd;

	if (log_path == NULL || (fd = log_open_path(log_path)) == -1 || fd == 2)
		return;
	int old = atomic_exchange(&log_fd, fd);
	if (old > 2)
		close(old);
}

static void log_vmsg(int level, int errnum, const char *fmt, va_list ap)
        __attribute__((format(printf, 3, 0)));

static void
log_vmsg(int level, int errnum, const char *fmt, va_list ap)
{
	char buf[2048];
	struct timespec ts;
	struct tm tm;
	size_t n;
	int r;

	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	n = strftime(buf, sizeof(buf), "%Y/%m/%d %H:%M:%S ", &tm);
	r = snprintf(buf + n, sizeof(buf) - n, "[%s] ", log_names[level]);
	if (r > 0)
		n += (size_t)r;
	r = vsnprintf(buf + n, sizeof(buf) - n, fmt, ap);
	if (r > 0)
		n = n + (size_t)r < sizeof(buf) ? n + (size_t)r : sizeof(buf) - 1;
	if (errnum && n < sizeof(buf) - 1) {
		r = snprintf(buf + n, sizeof(buf) - n, ": %s", strerror(errnum));
		if (r > 0)
			n = n + (size_t)r < sizeof(buf) ? n + (size_t)r : sizeof(buf) - 1;
	}
	if (n >= sizeof(buf) - 1)
		n = sizeof(buf) - 2;
	buf[n++] = '\n';
	(void)!write(atomic_load(&log_fd), buf, n);
}

void
log_msg(int level, int with_errno, const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(level, with_errno ? saved : 0, fmt, ap);
	va_end(ap);
	errno = saved;
}

void
fatal(const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_CRIT, saved, fmt, ap);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_CRIT, 0, fmt, ap);
	va_end(ap);
	exit(1);
}

void
log_access_write(int fd, const char *line, size_t len)
{
	if (fd >= 0)
		(void)!write(fd, line, len);
}
