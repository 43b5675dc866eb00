/*
 * log.h - the error log (OpenBSD-style API) and the access log writer.
 *
 * Contract: thread-safe; each message is one write(2) of one line, so lines from worker
 * threads never interleave. log_warn() appends strerror(errno) and keeps errno. The level
 * is checked before the arguments are formatted. Before log_open() everything goes to
 * stderr. fatal()/fatalx() exit and are for startup only, never inside the event loop.
 */
#ifndef PROXYD_LOG_H
#define PROXYD_LOG_H

#include <stdarg.h>
#include <stddef.h>
#include <syslog.h>
#include <sys/types.h>

extern int log_level; /* messages above this syslog level are dropped */

/* Log to path (NULL or "stderr": standard error) at level. Returns 0 or -1 (errno). */
int log_open(const char *path, int level);
/* Reopen the current log file (after logrotate). */
void log_reopen(void);
/*
 * The owner that log_open() and log_reopen() give an error log file they create while the
 * process is root: the `user` proxyd switches to, so that it can reopen the file after the
 * switch. (uid_t)-1: none (the default).
 */
void log_set_owner(uid_t uid, gid_t gid);
/*
 * Open path for appending (write-only, close-on-exec), creating it 0640 if missing: the
 * error log's and the access logs' open. *created says whether this call created the file.
 * The creation is tried first with O_EXCL, which never follows a symbolic link, so a file
 * reported as created is a new regular file that nobody else had: safe to give away with
 * fchown() (a file that existed is never given away: it may be a link planted by whoever
 * may write the directory). Returns the fd, or -1 (errno).
 */
int log_file_open(const char *path, int *created);

void log_msg(int level, int with_errno, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#define log_enabled(lvl) ((lvl) <= log_level)
#define log_at(lvl, errnum, ...)                                                                   \
	do {                                                                                       \
		if (log_enabled(lvl))                                                              \
			log_msg((lvl), (errnum), __VA_ARGS__);                                     \
	} while (0)

#define log_crit(...)   log_at(LOG_CRIT, 0, __VA_ARGS__)
#define log_warn(...)   log_at(LOG_ERR, 1, __VA_ARGS__)
#define log_warnx(...)  log_at(LOG_ERR, 0, __VA_ARGS__)
#define log_notice(...) log_at(LOG_NOTICE, 0, __VA_ARGS__)
#define log_info(...)   log_at(LOG_INFO, 0, __VA_ARGS__)
#define log_debug(...)  log_at(LOG_DEBUG, 0, __VA_ARGS__)

_Noreturn void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
_Noreturn void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Parse a level name (debug, info, notice, warn, error, crit); -1 if unknown. */
int log_level_parse(const char *name);

/* Append one line (which must end in '\n') to an access log fd with a single write. */
void log_access_write(int fd, const char *line, size_t len);

#endif /* PROXYD_LOG_H */
