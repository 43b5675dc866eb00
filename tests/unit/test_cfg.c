#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

/*
 * test_cfg.c - unit tests of the proxyd.conf parser (proxyd/cfg.c).
 *
 * Every test writes its configuration files into its own directory made with mkdtemp under
 * $TMPDIR (or /tmp) and removes it afterwards; nothing is written into the source tree.
 * Error tests check the exact "file:line: " prefix and a part of the reason.
 */

#include <sys/stat.h>
#include <sys/types.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include <check.h>

#include "cfg.h"
#include "http.h"
#include "unit.h"

/* configure accepts Check 0.10; these arrived in 0.11 */
#ifndef ck_assert_ptr_null
#define ck_assert_ptr_null(p) ck_assert((p) == NULL)
#endif
#ifndef ck_assert_ptr_nonnull
#define ck_assert_ptr_nonnull(p) ck_assert((p) != NULL)
#endif

/* A minimal upstream and server, to make the rest of a test config valid. */
#define UP  "upstream u { server 127.0.0.1:3001; }\n"
#define SRV "server { listen 8080; proxy_pass u; }\n"

#define tmpdir unit_tmpdir

static void
write_t(const char *name, const char *text)
{
	unit_write(name, text, strlen(text));
}

static void
mkdir_t(const char *name)
{
	ck_assert_int_eq(mkdir(unit_path(name), 0755), 0);
}

/* Write text as proxyd.conf and load it. */
static struct cfg *
load_text(const char *text, char **err)
{
	write_t("proxyd.conf", text);
	return cfg_load(unit_path("proxyd.conf"), err);
}

static struct cfg *
load_ok(const char *text)
{
	char *err = NULL;
	struct cfg *cfg = load_text(text, &err);

	ck_assert_msg(cfg != NULL, "unexpected error: %s", err != NULL ? err : "(null)");
	ck_assert_ptr_null(err);
	return cfg;
}

/* Load file (already written) and check the error is "tmpdir/errfile:line: ...substr...". */
static void
check_error_file(const char *file, const char *errfile, int line, const char *substr)
{
	char prefix[PATH_MAX + 32], *err = NULL;
	struct cfg *cfg;

	cfg = cfg_load(unit_path(file), &err);
	ck_assert_msg(cfg == NULL, "loaded, expected an error at line %d containing '%s'", line,
	              substr);
	ck_assert_ptr_nonnull(err);
	snprintf(prefix, sizeof(prefix), "%s:%d: ", unit_path(errfile), line);
	ck_assert_msg(strncmp(err, prefix, strlen(prefix)) == 0,
	              "error '%s' does not start with '%s'", err, prefix);
	ck_assert_msg(strstr(err + strlen(prefix), substr) != NULL,
	              "error '%s' does not contain '%s'", err, substr);
	free(err);
}

static void
check_error(const char *text, int line, const char *substr)
{
	write_t("proxyd.conf", text);
	check_error_file("proxyd.conf", "proxyd.conf", line, substr);
}

/* ---- value parsers ---- */

static const struct {
	const char *s;
	uint64_t v;
} size_ok[] = {
        {"0", 0},
        {"1", 1},
        {"16384", 16384},
        {"1k", 1024},
        {"1K", 1024},
        {"32k", 32768},
        {"2m", 2097152},
        {"2M", 2097152},
        {"3g", 3221225472ULL},
        {"3G", 3221225472ULL},
        {"0k", 0},
        {"007", 7},
        {"18446744073709551615", UINT64_MAX},
        {"17179869183g", 17179869183ULL << 30},
};

static const char *const size_bad[] = {
        "", "k", "1kb", "1.5k", "-1", "+1", " 1", "1 ", "1 k", "0x10", "1t", "1b", "k1",
};

static const char *const size_huge[] = {
        "18446744073709551616", "99999999999999999999999", "17179869184g",
        "18014398509481984k",   "17592186044416m",
};

START_TEST(test_size_ok)
{
	uint64_t v = 12345;
	char *err = NULL;

	ck_assert_msg(cfg_parse_size(size_ok[_i].s, &v, &err) == 0, "\"%s\": %s", size_ok[_i].s,
	              err);
	ck_assert_ptr_null(err);
	ck_assert_uint_eq(v, size_ok[_i].v);
}
END_TEST

START_TEST(test_size_bad)
{
	uint64_t v = 12345;
	char *err = NULL;

	ck_assert_int_eq(cfg_parse_size(size_bad[_i], &v, &err), -1);
	ck_assert_ptr_nonnull(err);
	ck_assert_msg(strstr(err, "not a size") != NULL, "\"%s\": %s", size_bad[_i], err);
	ck_assert_uint_eq(v, 12345);
	free(err);
}
END_TEST

START_TEST(test_size_huge)
{
	uint64_t v = 12345;
	char *err = NULL;

	ck_assert_int_eq(cfg_parse_size(size_huge[_i], &v, &err), -1);
	ck_assert_ptr_nonnull(err);
	ck_assert_msg(strstr(err, "too large") != NULL, "\"%s\": %s", size_huge[_i], err);
	ck_assert_uint_eq(v, 12345);
	free(err);
}
END_TEST

static const struct {
	const char *s;
	uint32_t ms;
} dur_ok[] = {
        {"0", 0},
        {"30", 30000},
        {"0s", 0},
        {"500ms", 500},
        {"30s", 30000},
        {"5m", 300000},
        {"2h", 7200000},
        {"1d", 86400000},
        {"1m30s", 90000},
        {"1h1m1s1ms", 3661001},
        {"1d2h", 93600000},
        {"2m500ms", 120500},
        {"49d", 4233600000U},
        {"4294967s", 4294967000U},
        {"4294967", 4294967000U},
        {"4294967295ms", 4294967295U},
        {"49d17h2m47s295ms", 4294967295U},
};

static const struct {
	const char *s;
	const char *why;
} dur_bad[] = {
        {"", "not a duration"},
        {"s", "not a duration"},
        {"ms", "not a duration"},
        {"1x", "not a duration"},
        {"1S", "not a duration"},
        {"1m30", "not a duration"},
        {"1.5s", "not a duration"},
        {"-1s", "not a duration"},
        {"1 s", "not a duration"},
        {" 1s", "not a duration"},
        {"1s ", "not a duration"},
        {"1mss", "not a duration"},
        {"30s1m", "decreasing order"},
        {"1s1s", "decreasing order"},
        {"1ms1s", "decreasing order"},
        {"4294968", "too large"},
        {"4294968s", "too large"},
        {"4294967296ms", "too large"},
        {"50d", "too large"},
        {"49d17h2m47s296ms", "too large"},
        {"99999999999999999999s", "too large"},
        {"99999999999999999999", "too large"},
};

START_TEST(test_duration_ok)
{
	uint32_t ms = 12345;
	char *err = NULL;

	ck_assert_msg(cfg_parse_duration(dur_ok[_i].s, &ms, &err) == 0, "\"%s\": %s", dur_ok[_i].s,
	              err);
	ck_assert_ptr_null(err);
	ck_assert_uint_eq(ms, dur_ok[_i].ms);
}
END_TEST

START_TEST(test_duration_bad)
{
	uint32_t ms = 12345;
	char *err = NULL;

	ck_assert_int_eq(cfg_parse_duration(dur_bad[_i].s, &ms, &err), -1);
	ck_assert_ptr_nonnull(err);
	ck_assert_msg(strstr(err, dur_bad[_i].why) != NULL, "\"%s\": %s", dur_bad[_i].s, err);
	ck_assert_uint_eq(ms, 12345);
	free(err);
}
END_TEST

/* ---- valid configurations ---- */

static const struct cfg_peer *
peer(const struct cfg_upstream *up, size_t i)
{
	ck_assert_uint_lt(i, up->npeers);
	return &up->peers[i];
}

START_TEST(test_full)
{
	char text[4096];
	const struct cfg_upstream *echo, *other;
	const struct cfg_server *s;
	const struct cfg_listen *l;
	const struct sockaddr_in *sin;
	const struct sockaddr_in6 *sin6;
	struct cfg *cfg;
	size_t i;

	snprintf(text, sizeof(text),
	         "# proxyd.conf\n"
	         "user root;\n"
	         "workers 4;\n"
	         "worker_connections 2048;\n"
	         "pid_file /run/proxyd.pid;\n"
	         "error_log /var/log/proxyd/error.log warn;\n"
	         "shutdown_timeout 1m30s;\n"
	         "\n"
	         "upstream echo {\n"
	         "    server 127.0.0.1:3001 weight=10 max_fails=3 fail_timeout=30s;\n"
	         "    server [::1]:3002 max_fails=0;\n"
	         "    server localhost:3003 fail_timeout=500ms weight=1000;\n"
	         "    keepalive 64;\n"
	         "    keepalive_timeout 90s;\n"
	         "    keepalive_requests 500;\n"
	         "}\n"
	         "\n"
	         "server {\n"
	         "    listen 8080;\n"
	         "    listen 127.0.0.1:8081 backlog=1024;\n"
	         "    listen [::1]:8082;\n"
	         "    listen *:8083;\n"
	         "    listen localhost:8084;\n"
	         "    proxy_pass http://echo;\n"
	         "    proxy_connect_timeout 5s;\n"
	         "    proxy_read_timeout 30s;\n"
	         "    proxy_send_timeout 31s;\n"
	         "    keepalive_timeout 0;\n"
	         "    keepalive_requests 50;\n"
	         "    client_header_timeout 10s;\n"
	         "    client_body_timeout 11s;\n"
	         "    send_timeout 12s;\n"
	         "    client_max_header_size 16k;\n"
	         "    client_max_target 4K;\n"
	         "    client_max_headers 128;\n"
	         "    client_max_body_size 0;\n"
	         "    x_forwarded_for off;\n"
	         "    x_forwarded_proto off;\n"
	         "    x_forwarded_host off;\n"
	         "    via off;\n"
	         "    access_log %s combined;\n"
	         "}\n"
	         "\n"
	         "server {\n"
	         "    listen 9090;\n"
	         "    proxy_pass other;   # defined below\n"
	         "    x_forwarded_for on;\n"
	         "    proxy_next_upstream http_503 error non_idempotent http_404;\n"
	         "    proxy_next_upstream_tries 3;\n"
	         "    proxy_next_upstream_timeout 2s;\n"
	         "    access_log %s;\n"
	         "}\n"
	         "\n"
	         "upstream other { server 10.0.0.1:80; }\n",
	         unit_path("access.log"), unit_path("access2.log"));
	cfg = load_ok(text);

	ck_assert_str_eq(cfg->path, unit_path("proxyd.conf"));
	ck_assert_uint_eq(cfg->nfiles, 1);
	ck_assert_str_eq(cfg->files[0], unit_path("proxyd.conf"));
	ck_assert_uint_gt(cfg->generation, 0);
	ck_assert_int_eq(atomic_load(&cfg->refs), 1);

	ck_assert_str_eq(cfg->user, "root");
	/* looked up when loading as root only: elsewhere the directive is ignored */
	ck_assert_uint_eq(cfg->user_uid, geteuid() == 0 ? 0 : (uid_t)-1);
	ck_assert_uint_eq(cfg->user_gid, geteuid() == 0 ? 0 : (gid_t)-1);
	ck_assert_int_eq(cfg->workers, 4);
	ck_assert_int_eq(cfg->worker_connections, 2048);
	ck_assert_str_eq(cfg->pid_file, "/run/proxyd.pid");
	ck_assert_str_eq(cfg->error_log, "/var/log/proxyd/error.log");
	ck_assert_int_eq(cfg->error_log_level, LOG_WARNING);
	ck_assert_uint_eq(cfg->shutdown_timeout_ms, 90000);

	ck_assert_uint_eq(cfg->nupstreams, 2);
	echo = &cfg->upstreams[0];
	other = &cfg->upstreams[1];
	ck_assert_str_eq(echo->name, "echo");
	ck_assert_str_eq(echo->file, unit_path("proxyd.conf"));
	ck_assert_int_eq(echo->line, 9);
	ck_assert_int_eq(echo->keepalive, 64);
	ck_assert_uint_eq(echo->keepalive_timeout_ms, 90000);
	ck_assert_int_eq(echo->keepalive_requests, 500);
	ck_assert_uint_ge(echo->npeers, 3); /* localhost may have an IPv6 address too */

	ck_assert_str_eq(peer(echo, 0)->name, "127.0.0.1:3001");
	ck_assert_str_eq(peer(echo, 0)->addr.text, "127.0.0.1:3001");
	ck_assert_int_eq(peer(echo, 0)->addr.ss.ss_family, AF_INET);
	ck_assert_uint_eq(peer(echo, 0)->addr.len, sizeof(struct sockaddr_in));
	sin = (const struct sockaddr_in *)&peer(echo, 0)->addr.ss;
	ck_assert_uint_eq(ntohs(sin->sin_port), 3001);
	ck_assert_uint_eq(ntohl(sin->sin_addr.s_addr), INADDR_LOOPBACK);
	ck_assert_int_eq(peer(echo, 0)->weight, 10);
	ck_assert_int_eq(peer(echo, 0)->max_fails, 3);
	ck_assert_uint_eq(peer(echo, 0)->fail_timeout_ms, 30000);

	ck_assert_str_eq(peer(echo, 1)->name, "[::1]:3002");
	ck_assert_str_eq(peer(echo, 1)->addr.text, "[::1]:3002");
	ck_assert_int_eq(peer(echo, 1)->addr.ss.ss_family, AF_INET6);
	ck_assert_uint_eq(peer(echo, 1)->addr.len, sizeof(struct sockaddr_in6));
	sin6 = (const struct sockaddr_in6 *)&peer(echo, 1)->addr.ss;
	ck_assert_uint_eq(ntohs(sin6->sin6_port), 3002);
	ck_assert(IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr));
	ck_assert_int_eq(peer(echo, 1)->weight, 1);
	ck_assert_int_eq(peer(echo, 1)->max_fails, 0);
	ck_assert_uint_eq(peer(echo, 1)->fail_timeout_ms, 10000);

	/* every address of localhost is one peer with the same name and parameters */
	for (i = 2; i < echo->npeers; i++) {
		const struct cfg_peer *pe = peer(echo, i);

		ck_assert_str_eq(pe->name, "localhost:3003");
		ck_assert_msg(strcmp(pe->addr.text, "127.0.0.1:3003") == 0 ||
		                      strcmp(pe->addr.text, "[::1]:3003") == 0,
		              "localhost resolved to %s", pe->addr.text);
		ck_assert_int_eq(pe->weight, 1000);
		ck_assert_int_eq(pe->max_fails, 1);
		ck_assert_uint_eq(pe->fail_timeout_ms, 500);
	}
	for (i = 0; i < echo->npeers; i++) {
		const struct cfg_peer *pe = peer(echo, i);

		ck_assert_int_eq(pe->cur_weight, 0);
		ck_assert_int_eq(atomic_load(&pe->fails), 0);
		ck_assert_int_eq(atomic_load(&pe->fail_window_ms), 0);
		ck_assert_int_eq(atomic_load(&pe->down_until_ms), 0);
		ck_assert_int_eq(atomic_load(&pe->active), 0);
	}

	ck_assert_str_eq(other->name, "other");
	ck_assert_int_eq(other->line, 54);
	ck_assert_uint_eq(other->npeers, 1);
	ck_assert_str_eq(peer(other, 0)->addr.text, "10.0.0.1:80");
	ck_assert_int_eq(other->keepalive, 0);

	ck_assert_uint_eq(cfg->nservers, 2);
	s = &cfg->servers[0];
	ck_assert_str_eq(s->file, unit_path("proxyd.conf"));
	ck_assert_int_eq(s->line, 18);
	ck_assert_ptr_eq(s->upstream, echo);
	ck_assert_uint_eq(s->nlistens, 5);
	l = s->listens;
	ck_assert_str_eq(l[0].addr.text, "0.0.0.0:8080");
	ck_assert_int_eq(l[0].addr.ss.ss_family, AF_INET);
	ck_assert_int_eq(l[0].backlog, 511);
	ck_assert_int_eq(l[0].line, 19);
	ck_assert_str_eq(l[0].file, unit_path("proxyd.conf"));
	ck_assert_str_eq(l[1].addr.text, "127.0.0.1:8081");
	ck_assert_int_eq(l[1].backlog, 1024);
	ck_assert_int_eq(l[1].line, 20);
	ck_assert_str_eq(l[2].addr.text, "[::1]:8082");
	ck_assert_int_eq(l[2].addr.ss.ss_family, AF_INET6);
	ck_assert_str_eq(l[3].addr.text, "0.0.0.0:8083");
	ck_assert_msg(strcmp(l[4].addr.text, "127.0.0.1:8084") == 0 ||
	                      strcmp(l[4].addr.text, "[::1]:8084") == 0,
	              "localhost:8084 is %s", l[4].addr.text);
	ck_assert_int_eq(l[4].line, 23);

	ck_assert_uint_eq(s->proxy_connect_timeout_ms, 5000);
	ck_assert_uint_eq(s->proxy_read_timeout_ms, 30000);
	ck_assert_uint_eq(s->proxy_send_timeout_ms, 31000);
	ck_assert_uint_eq(s->keepalive_timeout_ms, 0);
	ck_assert_int_eq(s->keepalive_requests, 50);
	ck_assert_uint_eq(s->client_header_timeout_ms, 10000);
	ck_assert_uint_eq(s->client_body_timeout_ms, 11000);
	ck_assert_uint_eq(s->send_timeout_ms, 12000);
	ck_assert_uint_eq(s->client_max_header_size, 16384);
	ck_assert_uint_eq(s->client_max_target, 4096);
	ck_assert_uint_eq(s->client_max_headers, HTTP_MAX_HEADERS);
	ck_assert_uint_eq(s->client_max_body_size, 0);
	ck_assert_int_eq(s->x_forwarded_for, 0);
	ck_assert_int_eq(s->x_forwarded_proto, 0);
	ck_assert_int_eq(s->x_forwarded_host, 0);
	ck_assert_int_eq(s->via, 0);
	ck_assert_str_eq(s->access_log.path, unit_path("access.log"));
	ck_assert_int_ge(s->access_log.fd, 0);

	s = &cfg->servers[1];
	ck_assert_int_eq(s->line, 44);
	ck_assert_ptr_eq(s->upstream, other);
	ck_assert_uint_eq(s->nlistens, 1);
	ck_assert_str_eq(s->listens[0].addr.text, "0.0.0.0:9090");
	ck_assert_int_eq(s->x_forwarded_for, 1);
	ck_assert_int_eq(s->x_forwarded_proto, 1);
	ck_assert_int_eq(s->next_upstream, CFG_NEXT_HTTP_503 | CFG_NEXT_ERROR |
	                                           CFG_NEXT_NON_IDEMPOTENT | CFG_NEXT_HTTP_404);
	ck_assert_int_eq(s->next_upstream_tries, 3);
	ck_assert_uint_eq(s->next_upstream_timeout_ms, 2000);
	ck_assert_int_eq(cfg->servers[0].next_upstream, CFG_NEXT_ERROR | CFG_NEXT_TIMEOUT);
	ck_assert_str_eq(s->access_log.path, unit_path("access2.log"));
	ck_assert_int_ge(s->access_log.fd, 0);
	ck_assert_int_ne(s->access_log.fd, cfg->servers[0].access_log.fd);

	cfg_unref(cfg);
}
END_TEST

/* Every default of cfg.h, from the smallest valid configuration. */
START_TEST(test_defaults)
{
	struct cfg *cfg = load_ok(UP SRV);
	const struct cfg_upstream *up;
	const struct cfg_server *s;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	if (ncpu < 1)
		ncpu = 1;
	if (ncpu > 256)
		ncpu = 256;
	ck_assert_int_eq(cfg->workers, ncpu);
	ck_assert_int_eq(cfg->worker_connections, 10000);
	ck_assert_ptr_null(cfg->user);
	ck_assert_ptr_null(cfg->pid_file);
	ck_assert_ptr_null(cfg->error_log);
	ck_assert_int_eq(cfg->error_log_level, LOG_NOTICE);
	ck_assert_uint_eq(cfg->shutdown_timeout_ms, 10000);

	ck_assert_uint_eq(cfg->nupstreams, 1);
	up = &cfg->upstreams[0];
	ck_assert_str_eq(up->name, "u");
	ck_assert_int_eq(up->line, 1);
	ck_assert_int_eq(up->keepalive, 0);
	ck_assert_uint_eq(up->keepalive_timeout_ms, 60000);
	ck_assert_int_eq(up->keepalive_requests, 1000);
	ck_assert_uint_eq(up->npeers, 1);
	ck_assert_str_eq(up->peers[0].name, "127.0.0.1:3001");
	ck_assert_int_eq(up->peers[0].weight, 1);
	ck_assert_int_eq(up->peers[0].max_fails, 1);
	ck_assert_uint_eq(up->peers[0].fail_timeout_ms, 10000);
	ck_assert_uint_eq(up->hc.interval_ms, 0); /* no health_check: no active checks */
	ck_assert_ptr_null(up->hc.uri);
	ck_assert_int_eq(up->peers[0].health_down, 0);

	ck_assert_uint_eq(cfg->nservers, 1);
	s = &cfg->servers[0];
	ck_assert_int_eq(s->line, 2);
	ck_assert_ptr_eq(s->upstream, up);
	ck_assert_uint_eq(s->nlistens, 1);
	ck_assert_str_eq(s->listens[0].addr.text, "0.0.0.0:8080");
	ck_assert_int_eq(s->listens[0].backlog, 511);
	ck_assert_int_eq(s->listens[0].line, 2);
	ck_assert_uint_eq(s->proxy_connect_timeout_ms, 60000);
	ck_assert_uint_eq(s->proxy_read_timeout_ms, 60000);
	ck_assert_uint_eq(s->proxy_send_timeout_ms, 60000);
	ck_assert_uint_eq(s->keepalive_timeout_ms, 75000);
	ck_assert_int_eq(s->keepalive_requests, 1000);
	ck_assert_uint_eq(s->client_header_timeout_ms, 60000);
	ck_assert_uint_eq(s->client_body_timeout_ms, 60000);
	ck_assert_uint_eq(s->send_timeout_ms, 60000);
	ck_assert_int_eq(s->next_upstream, CFG_NEXT_ERROR | CFG_NEXT_TIMEOUT);
	ck_assert_int_eq(s->next_upstream_tries, 0);
	ck_assert_uint_eq(s->next_upstream_timeout_ms, 0);
	ck_assert_uint_eq(s->client_max_header_size, 32 * 1024);
	ck_assert_uint_eq(s->client_max_target, 8 * 1024);
	ck_assert_uint_eq(s->client_max_headers, 100);
	ck_assert_uint_eq(s->client_max_body_size, 1024 * 1024);
	ck_assert_int_eq(s->x_forwarded_for, 1);
	ck_assert_int_eq(s->x_forwarded_proto, 1);
	ck_assert_int_eq(s->x_forwarded_host, 1);
	ck_assert_int_eq(s->via, 1);
	ck_assert_ptr_null(s->access_log.path);
	ck_assert_int_eq(s->access_log.fd, -1);

	/* the upstream lock is initialised */
	ck_assert_int_eq(pthread_mutex_lock(&cfg->upstreams[0].lock), 0);
	ck_assert_int_eq(pthread_mutex_unlock(&cfg->upstreams[0].lock), 0);
	cfg_unref(cfg);
}
END_TEST

START_TEST(test_workers_auto)
{
	struct cfg *cfg = load_ok("workers auto;\n" UP SRV);
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	ck_assert_int_ge(cfg->workers, 1);
	ck_assert_int_le(cfg->workers, 256);
	if (ncpu >= 1 && ncpu <= 256)
		ck_assert_int_eq(cfg->workers, ncpu);
	cfg_unref(cfg);

	cfg = load_ok("workers 256; error_log stderr;\n" UP SRV);
	ck_assert_int_eq(cfg->workers, 256);
	ck_assert_str_eq(cfg->error_log, "stderr");
	ck_assert_int_eq(cfg->error_log_level, LOG_NOTICE);
	cfg_unref(cfg);
}
END_TEST

START_TEST(test_error_log_levels)
{
	static const struct {
		const char *name;
		int level;
	} levels[] = {
	        {"debug", LOG_DEBUG},  {"info", LOG_INFO}, {"notice", LOG_NOTICE},
	        {"warn", LOG_WARNING}, {"error", LOG_ERR}, {"crit", LOG_CRIT},
	};
	char text[256];
	size_t i;

	for (i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
		struct cfg *cfg;

		snprintf(text, sizeof(text), "error_log stderr %s;\n" UP SRV, levels[i].name);
		cfg = load_ok(text);
		ck_assert_int_eq(cfg->error_log_level, levels[i].level);
		cfg_unref(cfg);
	}
}
END_TEST

/* Quoting, escapes, comments, CRLF and tokens without spaces. */
START_TEST(test_syntax)
{
	struct cfg *cfg;

	cfg = load_ok("pid_file \"pro xy\\\"d\";  # a comment; with \"quotes\" {\n"
	              "user 'root';\n"
	              "error_log \"/tmp/x\\\\y\\n\\t\\'\\d\";\n"
	              "upstream u{server 127.0.0.1:3001;}server{listen 8080;proxy_pass u;}\n");
	ck_assert_str_eq(cfg->pid_file, "pro xy\"d");
	ck_assert_str_eq(cfg->user, "root");
	ck_assert_str_eq(cfg->error_log, "/tmp/x\\y\n\t'\\d");
	cfg_unref(cfg);

	cfg = load_ok("# only a comment\r\n"
	              "user\r\n  root\r\n;\r\npid_file '/run/a#b;{}.pid';\r\n"
	              "\t\tupstream\t'u'\r\n{\r\n server\r\n127.0.0.1:3001\r\n;\r\n}\r\n"
	              "server {\r\n listen 8080;\r\n proxy_pass \"u\";\r\n}\r\n"
	              "# trailing comment without newline");
	ck_assert_str_eq(cfg->user, "root");
	ck_assert_str_eq(cfg->pid_file, "/run/a#b;{}.pid");
	ck_assert_int_eq(cfg->upstreams[0].line, 6);
	ck_assert_int_eq(cfg->servers[0].line, 12);
	ck_assert_int_eq(cfg->servers[0].listens[0].line, 13);
	cfg_unref(cfg);

	/* a multi-line string counts its lines */
	cfg = load_ok("pid_file \"a\nb\";\n" UP SRV);
	ck_assert_str_eq(cfg->pid_file, "a\nb");
	ck_assert_int_eq(cfg->upstreams[0].line, 3);
	cfg_unref(cfg);
}
END_TEST

START_TEST(test_values_edge)
{
	struct cfg *cfg;

	cfg = load_ok(UP "server {\n"
	                 "  listen 1 backlog=65535;\n"
	                 "  listen 65535 backlog=1;\n"
	                 "  listen 0.0.0.0:80;\n"
	                 "  listen [::]:80;\n"
	                 "  proxy_pass u;\n"
	                 "  client_max_headers 1;\n"
	                 "  client_max_body_size 4g;\n"
	                 "  client_max_header_size 1;\n"
	                 "  keepalive_requests 2147483647;\n"
	                 "  proxy_read_timeout 1ms;\n"
	                 "  send_timeout 4294967294ms;\n"
	                 "}\n");
	ck_assert_uint_eq(cfg->servers[0].nlistens, 4);
	ck_assert_str_eq(cfg->servers[0].listens[0].addr.text, "0.0.0.0:1");
	ck_assert_int_eq(cfg->servers[0].listens[0].backlog, 65535);
	ck_assert_str_eq(cfg->servers[0].listens[1].addr.text, "0.0.0.0:65535");
	ck_assert_int_eq(cfg->servers[0].listens[1].backlog, 1);
	ck_assert_str_eq(cfg->servers[0].listens[2].addr.text, "0.0.0.0:80");
	ck_assert_str_eq(cfg->servers[0].listens[3].addr.text, "[::]:80");
	ck_assert_uint_eq(cfg->servers[0].client_max_headers, 1);
	ck_assert_uint_eq(cfg->servers[0].client_max_body_size, 4ULL << 30);
	ck_assert_uint_eq(cfg->servers[0].client_max_header_size, 1);
	ck_assert_int_eq(cfg->servers[0].keepalive_requests, 2147483647);
	ck_assert_uint_eq(cfg->servers[0].proxy_read_timeout_ms, 1);
	ck_assert_uint_eq(cfg->servers[0].send_timeout_ms, 4294967294U);
	cfg_unref(cfg);

	/* the same upstream for two servers; weight bounds; keepalive 0 */
	cfg = load_ok("upstream u {\n"
	              "  server 127.0.0.1:1 weight=1 max_fails=2147483647 fail_timeout=0;\n"
	              "  server 127.0.0.1:65535 weight=1000 max_conns=100000 slow_start=1h;\n"
	              "  keepalive 0;\n"
	              "}\n"
	              "server { listen 1; proxy_pass u; }\n"
	              "server { listen 2; proxy_pass http://u; }\n");
	ck_assert_ptr_eq(cfg->servers[0].upstream, &cfg->upstreams[0]);
	ck_assert_ptr_eq(cfg->servers[1].upstream, &cfg->upstreams[0]);
	ck_assert_int_eq(cfg->upstreams[0].peers[0].max_fails, 2147483647);
	ck_assert_uint_eq(cfg->upstreams[0].peers[0].fail_timeout_ms, 0);
	ck_assert_int_eq(cfg->upstreams[0].peers[1].weight, 1000);
	ck_assert_int_eq(cfg->upstreams[0].peers[0].max_conns, 0);
	ck_assert_uint_eq(cfg->upstreams[0].peers[0].slow_start_ms, 0);
	ck_assert_int_eq(cfg->upstreams[0].peers[1].max_conns, 100000);
	ck_assert_uint_eq(cfg->upstreams[0].peers[1].slow_start_ms, 3600000);
	ck_assert_int_eq(cfg->upstreams[0].keepalive, 0);
	cfg_unref(cfg);

	/* cache_use_stale takes proxy_next_upstream's failures (not non_idempotent) */
	cfg = load_ok(UP
	              "server { listen 1; proxy_pass u; cache_use_stale error timeout http_503; }\n"
	              "server { listen 2; proxy_pass u; cache_use_stale off; }\n"
	              "server { listen 3; proxy_pass u; }\n");
	ck_assert_int_eq(cfg->servers[0].cache_use_stale,
	                 CFG_NEXT_ERROR | CFG_NEXT_TIMEOUT | CFG_NEXT_HTTP_503);
	ck_assert_int_eq(cfg->servers[1].cache_use_stale, 0);
	ck_assert_int_eq(cfg->servers[2].cache_use_stale, 0);
	cfg_unref(cfg);
}
END_TEST

/* The access log is opened at load: append mode, close-on-exec, 0640, closed on free. */
/* An unknown user is an error with its file:line when loading as root, -t included. */
START_TEST(test_user_unknown)
{
	static const char text[] = "workers 1;\nuser no-such-user-for-proxyd;\n" UP SRV;
	char *err = NULL;
	struct cfg *cfg;

	write_t("proxyd.conf", text);
	if (geteuid() != 0) {
		cfg = load_ok(text); /* not root: ignored, as the switch is */
		ck_assert_uint_eq(cfg->user_uid, (uid_t)-1);
		cfg_unref(cfg);
		return;
	}
	check_error_file("proxyd.conf", "proxyd.conf", 2,
	                 "invalid value \"no-such-user-for-proxyd\" in \"user\" directive: "
	                 "unknown user");
	cfg = cfg_load_flags(unit_path("proxyd.conf"), CFG_LOAD_CHECK, &err);
	ck_assert_ptr_null(cfg);
	ck_assert_ptr_nonnull(err);
	ck_assert_ptr_nonnull(strstr(err, "proxyd.conf:2: invalid value"));
	free(err);
	/* the dry run (fuzzer) looks nothing up */
	cfg = cfg_load_buffer("x.conf", text, sizeof(text) - 1, CFG_LOAD_DRY, &err);
	ck_assert_ptr_nonnull(cfg);
	cfg_unref(cfg);
}
END_TEST

/*
 * As root with a user, an access log the load creates is given to the user; one that existed
 * (here root's, and a link to a file of root's) keeps its owner.
 */
START_TEST(test_user_files)
{
	char text[2048];
	struct passwd *pw;
	struct cfg *cfg;
	struct stat st;
	uid_t uid;

	if (geteuid() != 0 || (pw = getpwnam("nobody")) == NULL)
		return; /* needs root and a user to give files to */
	uid = pw->pw_uid;
	write_t("old.log", "");
	write_t("target", "");
	ck_assert_int_eq(symlink(unit_path("target"), unit_path("link.log")), 0);
	snprintf(text, sizeof(text),
	         "user nobody;\n" UP "server { listen 8080; proxy_pass u; access_log %s; }\n"
	         "server { listen 8081; proxy_pass u; access_log %s; }\n"
	         "server { listen 8082; proxy_pass u; access_log %s; }\n"
	         "server { listen 8083; proxy_pass u; access_log %s; }\n",
	         unit_path("new.log"), unit_path("new.log"), unit_path("old.log"),
	         unit_path("link.log"));
	cfg = load_ok(text);
	ck_assert_int_eq(cfg->servers[0].access_log.created, 1);
	ck_assert_int_eq(cfg->servers[1].access_log.created, 0);
	ck_assert_int_eq(stat(unit_path("new.log"), &st), 0);
	ck_assert_uint_eq(st.st_uid, uid);
	ck_assert_uint_eq(st.st_gid, pw->pw_gid);
	ck_assert_uint_eq(st.st_mode & 0777, 0640);
	ck_assert_int_eq(stat(unit_path("old.log"), &st), 0);
	ck_assert_uint_eq(st.st_uid, 0);
	ck_assert_int_eq(stat(unit_path("target"), &st), 0);
	ck_assert_uint_eq(st.st_uid, 0);
	cfg_unref(cfg);

	/* a load that fails after the log was made still gives it away, if `user` came first */
	snprintf(text, sizeof(text),
	         "user nobody;\n" UP "server { listen 8080; proxy_pass u; access_log %s; }\n"
	         "no_such_directive;\n",
	         unit_path("failed.log"));
	check_error(text, 4, "unknown directive");
	ck_assert_int_eq(stat(unit_path("failed.log"), &st), 0);
	ck_assert_uint_eq(st.st_uid, uid);

	/* without a user, nothing is given away */
	snprintf(text, sizeof(text), UP "server { listen 8080; proxy_pass u; access_log %s; }\n",
	         unit_path("root.log"));
	cfg = load_ok(text);
	ck_assert_int_eq(stat(unit_path("root.log"), &st), 0);
	ck_assert_uint_eq(st.st_uid, 0);
	cfg_unref(cfg);
}
END_TEST

START_TEST(test_access_log)
{
	char text[1024];
	struct cfg *cfg;
	struct stat st;
	int fd, fl;

	umask(022);
	snprintf(text, sizeof(text),
	         UP "server { listen 8080; proxy_pass u; access_log \"%s\"; }\n"
	            "server { listen 8081; proxy_pass u; access_log off; }\n",
	         unit_path("logs access.log"));
	cfg = load_ok(text);
	fd = cfg->servers[0].access_log.fd;
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(cfg->servers[1].access_log.fd, -1);
	ck_assert_ptr_null(cfg->servers[1].access_log.path);
	ck_assert_int_eq(stat(unit_path("logs access.log"), &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0640);
	fl = fcntl(fd, F_GETFL);
	ck_assert_int_ne(fl, -1);
	ck_assert(fl & O_APPEND);
	ck_assert_int_eq(fl & O_ACCMODE, O_WRONLY);
	ck_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	ck_assert_int_eq(write(fd, "x\n", 2), 2);

	cfg_unref(cfg);
	errno = 0;
	ck_assert_int_eq(fcntl(fd, F_GETFD), -1);
	ck_assert_int_eq(errno, EBADF);
}
END_TEST

/* ---- references and generations ---- */

START_TEST(test_refs)
{
	struct cfg *cfg = load_ok(UP SRV);

	ck_assert_int_eq(atomic_load(&cfg->refs), 1);
	cfg_ref(cfg);
	ck_assert_int_eq(atomic_load(&cfg->refs), 2);
	cfg_ref(cfg);
	ck_assert_int_eq(atomic_load(&cfg->refs), 3);
	cfg_unref(cfg);
	cfg_unref(cfg);
	ck_assert_int_eq(atomic_load(&cfg->refs), 1);
	ck_assert_str_eq(cfg->upstreams[0].name, "u"); /* still alive */
	cfg_unref(cfg);                                /* frees; ASan reports a leak otherwise */
	cfg_unref(NULL);
}
END_TEST

START_TEST(test_generation)
{
	struct cfg *a, *b;
	char *err = NULL;

	a = load_ok(UP SRV);
	ck_assert_ptr_null(load_text("bogus;\n" UP SRV, &err)); /* a failed load takes none */
	free(err);
	b = load_ok(UP SRV);
	ck_assert_uint_gt(a->generation, 0);
	ck_assert_uint_eq(b->generation, a->generation + 1);
	cfg_unref(a);
	cfg_unref(b);
}
END_TEST

START_TEST(test_main_file_missing)
{
	char *err = NULL;

	ck_assert_ptr_null(cfg_load(unit_path("nope.conf"), &err));
	ck_assert_ptr_nonnull(err);
	ck_assert_msg(strstr(err, unit_path("nope.conf")) != NULL, "%s", err);
	ck_assert_msg(strstr(err, "No such file or directory") != NULL, "%s", err);
	free(err);

	/* a directory is not a config file */
	ck_assert_ptr_null(cfg_load(tmpdir, &err));
	ck_assert_msg(strstr(err, "not a regular file") != NULL, "%s", err);
	free(err);

	/* err may be NULL */
	ck_assert_ptr_null(cfg_load(unit_path("nope.conf"), NULL));
}
END_TEST

START_TEST(test_nul_byte)
{
	static const char text[] = "user a;\nuser\0b;\n";

	unit_write("proxyd.conf", text, sizeof(text) - 1);
	check_error_file("proxyd.conf", "proxyd.conf", 2, "unexpected NUL byte");
}
END_TEST

/* ---- include ---- */

START_TEST(test_include_glob)
{
	struct cfg *cfg;

	mkdir_t("conf.d");
	mkdir_t("conf.d/dir.conf"); /* a directory matching the glob is skipped */
	write_t("conf.d/b.conf", "upstream b { server 127.0.0.1:2; }\n");
	write_t("conf.d/a.conf", "upstream a { server 127.0.0.1:1; }\n");
	write_t("conf.d/c.conf", "server { listen 8080; proxy_pass a; }\n");
	write_t("conf.d/B.conf", "upstream B { server 127.0.0.1:3; }\n");
	write_t("conf.d/ignored.txt", "this is not a config\n");
	cfg = load_ok("user root;\ninclude conf.d/*.conf;\ninclude nothing/*.conf;\n"
	              "include conf.d/*.none;\nworkers 2;\n");
	/* strcmp order: "B" < "a" < "b" < "c" */
	ck_assert_uint_eq(cfg->nupstreams, 3);
	ck_assert_str_eq(cfg->upstreams[0].name, "B");
	ck_assert_str_eq(cfg->upstreams[1].name, "a");
	ck_assert_str_eq(cfg->upstreams[2].name, "b");
	ck_assert_str_eq(cfg->upstreams[1].file, unit_path("conf.d/a.conf"));
	ck_assert_int_eq(cfg->upstreams[1].line, 1);
	ck_assert_str_eq(cfg->servers[0].file, unit_path("conf.d/c.conf"));
	ck_assert_ptr_eq(cfg->servers[0].upstream, &cfg->upstreams[1]);
	ck_assert_int_eq(cfg->workers, 2);
	ck_assert_uint_eq(cfg->nfiles, 5);
	ck_assert_str_eq(cfg->files[0], unit_path("proxyd.conf"));
	ck_assert_str_eq(cfg->files[1], unit_path("conf.d/B.conf"));
	ck_assert_str_eq(cfg->files[2], unit_path("conf.d/a.conf"));
	ck_assert_str_eq(cfg->files[3], unit_path("conf.d/b.conf"));
	ck_assert_str_eq(cfg->files[4], unit_path("conf.d/c.conf"));
	cfg_unref(cfg);
}
END_TEST

/* Paths are relative to the including file, not to the working directory. */
START_TEST(test_include_relative)
{
	struct cfg *cfg;

	mkdir_t("etc");
	mkdir_t("etc/sites");
	mkdir_t("etc/snippets");
	write_t("etc/proxyd.conf", "include sites/*.conf;\ninclude upstreams.conf;\n");
	write_t("etc/upstreams.conf", "upstream u {\n  include snippets/peers.conf;\n}\n");
	write_t("etc/snippets/peers.conf", "server 127.0.0.1:1;\nserver 127.0.0.1:2;\n");
	write_t("etc/sites/one.conf", "server {\n  include ../snippets/server.conf;\n}\n");
	write_t("etc/snippets/server.conf", "listen 8080;\nproxy_pass u;\nvia off;\n");

	ck_assert_int_eq(chdir("/"), 0);
	cfg = cfg_load(unit_path("etc/proxyd.conf"), NULL);
	ck_assert_ptr_nonnull(cfg);
	ck_assert_uint_eq(cfg->upstreams[0].npeers, 2);
	ck_assert_int_eq(cfg->servers[0].via, 0);
	ck_assert_str_eq(cfg->servers[0].listens[0].file,
	                 unit_path("etc/sites/../snippets/server.conf"));
	ck_assert_int_eq(cfg->servers[0].listens[0].line, 1);
	cfg_unref(cfg);

	/* a relative main path gives relative names */
	ck_assert_int_eq(chdir(tmpdir), 0);
	cfg = cfg_load("etc/proxyd.conf", NULL);
	ck_assert_ptr_nonnull(cfg);
	ck_assert_uint_eq(cfg->nfiles, 5);
	ck_assert_str_eq(cfg->files[0], "etc/proxyd.conf");
	ck_assert_str_eq(cfg->files[1], "etc/sites/one.conf");
	ck_assert_str_eq(cfg->files[2], "etc/sites/../snippets/server.conf");
	ck_assert_str_eq(cfg->files[3], "etc/upstreams.conf");
	ck_assert_str_eq(cfg->files[4], "etc/snippets/peers.conf");
	cfg_unref(cfg);

	/* a main file without a directory part */
	ck_assert_int_eq(chdir(unit_path("etc")), 0);
	cfg = cfg_load("proxyd.conf", NULL);
	ck_assert_ptr_nonnull(cfg);
	ck_assert_str_eq(cfg->files[1], "sites/one.conf");
	cfg_unref(cfg);

	/* an error in an included file names that file */
	write_t("etc/snippets/server.conf", "listen 8080;\nproxy_pass u;\nvia maybe;\n");
	check_error_file("etc/proxyd.conf", "etc/sites/../snippets/server.conf", 3,
	                 "invalid value \"maybe\" in \"via\" directive");
}
END_TEST

START_TEST(test_include_absolute)
{
	char text[1024];
	struct cfg *cfg;

	mkdir_t("abs");
	write_t("abs/u.conf", "upstream u { server 127.0.0.1:1; }\n");
	snprintf(text, sizeof(text), "include %s;\ninclude %s;\n" SRV, unit_path("abs/u.conf"),
	         unit_path("abs/*.none"));
	cfg = load_ok(text);
	ck_assert_str_eq(cfg->upstreams[0].file, unit_path("abs/u.conf"));
	cfg_unref(cfg);
}
END_TEST

START_TEST(test_include_same_file_twice)
{
	struct cfg *cfg;

	/* not a cycle: read twice, listed once */
	write_t("peer.conf", "server 127.0.0.1:1;\n");
	cfg = load_ok("upstream u { include peer.conf; include peer.conf; }\n" SRV);
	ck_assert_uint_eq(cfg->upstreams[0].npeers, 2);
	ck_assert_uint_eq(cfg->nfiles, 2);
	cfg_unref(cfg);
}
END_TEST

START_TEST(test_include_missing)
{
	char msg[PATH_MAX + 64];

	snprintf(msg, sizeof(msg), "cannot open \"%s\": No such file or directory",
	         unit_path("missing.conf"));
	check_error(UP SRV "include missing.conf;\n", 3, msg);
}
END_TEST

START_TEST(test_include_cycle)
{
	/* a -> b -> a */
	write_t("a.conf", "include b.conf;\n");
	write_t("b.conf", "\ninclude a.conf;\n");
	write_t("proxyd.conf", UP SRV "include a.conf;\n");
	check_error_file("proxyd.conf", "b.conf", 2, "include cycle: \"");

	/* a file including itself */
	write_t("self.conf", "user root;\ninclude self.conf;\n");
	check_error_file("self.conf", "self.conf", 2, "include cycle");
}
END_TEST

/* 16 nested levels are fine, 17 are not. */
START_TEST(test_include_depth)
{
	char name[32], text[64];
	struct cfg *cfg;
	int i;

	for (i = 1; i <= 17; i++) {
		snprintf(name, sizeof(name), "d%02d.conf", i);
		snprintf(text, sizeof(text), "include d%02d.conf;\n", i + 1);
		write_t(name, i == 17 ? "user root;\n" : text);
	}
	write_t("d16.conf", "user root;\n");
	cfg = load_ok(UP SRV "include d01.conf;\n");
	ck_assert_str_eq(cfg->user, "root");
	ck_assert_uint_eq(cfg->nfiles, 17);
	cfg_unref(cfg);

	write_t("d16.conf", "include d17.conf;\n");
	write_t("proxyd.conf", UP SRV "include d01.conf;\n");
	check_error_file("proxyd.conf", "d16.conf", 1, "nested deeper than 16");
}
END_TEST

START_TEST(test_include_errors_in_file)
{
	/* braces must balance within each file */
	write_t("open.conf", "server {\n listen 8080;\n");
	write_t("proxyd.conf", UP "include open.conf;\n}\n");
	check_error_file("proxyd.conf", "open.conf", 1, "\"server\" block is not closed");

	write_t("close.conf", "listen 8080;\n}\n");
	write_t("proxyd.conf", UP "server {\n include close.conf;\n proxy_pass u;\n}\n");
	check_error_file("proxyd.conf", "close.conf", 2, "unexpected \"}\"");

	/* the included file takes the context of the include */
	write_t("srv.conf", "user x;\n");
	write_t("proxyd.conf", UP "server {\n listen 8080; proxy_pass u;\n include srv.conf;\n}\n");
	check_error_file("proxyd.conf", "srv.conf", 1, "\"user\" directive is not allowed here");

	/* a directory named without a wildcard */
	mkdir_t("dir");
	write_t("proxyd.conf", UP SRV "include dir;\n");
	check_error_file("proxyd.conf", "proxyd.conf", 3, "not a regular file");

	/* an empty path */
	write_t("proxyd.conf", UP SRV "include \"\";\n");
	check_error_file("proxyd.conf", "proxyd.conf", 3, "invalid value \"\" in \"include\"");
}
END_TEST

/* balance and its nginx spellings; server backup and down. */
START_TEST(test_balance)
{
	static const struct {
		const char *directive;
		enum cfg_balance balance;
	} cases[] = {
	        {"", CFG_BALANCE_ROUND_ROBIN},
	        {"balance round_robin;", CFG_BALANCE_ROUND_ROBIN},
	        {"balance least_conn;", CFG_BALANCE_LEAST_CONN},
	        {"least_conn;", CFG_BALANCE_LEAST_CONN},
	        {"balance ip_hash;", CFG_BALANCE_IP_HASH},
	        {"ip_hash;", CFG_BALANCE_IP_HASH},
	        {"balance random;", CFG_BALANCE_RANDOM},
	        {"random;", CFG_BALANCE_RANDOM},
	        {"balance random two;", CFG_BALANCE_RANDOM_TWO},
	        {"random two;", CFG_BALANCE_RANDOM_TWO},
	        {"balance hash $request_uri;", CFG_BALANCE_HASH},
	        {"hash $remote_addr;", CFG_BALANCE_HASH},
	        {"balance hash $host consistent;", CFG_BALANCE_HASH_CONSISTENT},
	        {"hash \"u-$arg_user\" consistent;", CFG_BALANCE_HASH_CONSISTENT},
	        {"balance least_time;", CFG_BALANCE_LEAST_TIME},
	        {"balance least_time header;", CFG_BALANCE_LEAST_TIME},
	        {"least_time;", CFG_BALANCE_LEAST_TIME},
	        {"least_time last_byte;", CFG_BALANCE_LEAST_TIME_LAST_BYTE},
	        {"balance least_time last_byte;", CFG_BALANCE_LEAST_TIME_LAST_BYTE},
	};
	char text[512];
	struct cfg *cfg;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(text, sizeof(text),
		         "upstream u { %s server 127.0.0.1:1; server 127.0.0.1:2 down; }\n" SRV,
		         cases[i].directive);
		cfg = load_ok(text);
		ck_assert_int_eq(cfg->upstreams[0].balance, cases[i].balance);
		ck_assert_uint_eq(peer(&cfg->upstreams[0], 0)->flags, 0);
		ck_assert_uint_eq(peer(&cfg->upstreams[0], 1)->flags, CFG_PEER_DOWN);
		cfg_unref(cfg);
	}

	/* health_check: defaults, then every parameter */
	cfg = load_ok("upstream u { server 127.0.0.1:1; health_check; }\n" SRV);
	ck_assert_uint_eq(cfg->upstreams[0].hc.interval_ms, 5000);
	ck_assert_uint_eq(cfg->upstreams[0].hc.timeout_ms, 2000);
	ck_assert_str_eq(cfg->upstreams[0].hc.uri, "/health");
	ck_assert_int_eq(cfg->upstreams[0].hc.expect_lo, 200);
	ck_assert_int_eq(cfg->upstreams[0].hc.expect_hi, 399);
	ck_assert_int_eq(cfg->upstreams[0].hc.fails, 3);
	ck_assert_int_eq(cfg->upstreams[0].hc.passes, 2);
	cfg_unref(cfg);
	cfg = load_ok("upstream u { server 127.0.0.1:1; health_check interval=200ms timeout=1s "
	              "uri=/status?x=1 expect=204 fails=1 passes=5; }\n" SRV);
	ck_assert_uint_eq(cfg->upstreams[0].hc.interval_ms, 200);
	ck_assert_uint_eq(cfg->upstreams[0].hc.timeout_ms, 1000);
	ck_assert_str_eq(cfg->upstreams[0].hc.uri, "/status?x=1");
	ck_assert_int_eq(cfg->upstreams[0].hc.expect_lo, 204);
	ck_assert_int_eq(cfg->upstreams[0].hc.expect_hi, 204);
	ck_assert_int_eq(cfg->upstreams[0].hc.fails, 1);
	ck_assert_int_eq(cfg->upstreams[0].hc.passes, 5);
	cfg_unref(cfg);
	cfg = load_ok("upstream u { server 127.0.0.1:1; health_check expect=100-599; }\n" SRV);
	ck_assert_int_eq(cfg->upstreams[0].hc.expect_lo, 100);
	ck_assert_int_eq(cfg->upstreams[0].hc.expect_hi, 599);
	cfg_unref(cfg);

	cfg = load_ok("upstream u {\n server 127.0.0.1:1 down weight=3;\n"
	              " server 127.0.0.1:2 backup max_fails=2;\n"
	              " server 127.0.0.1:3 backup down;\n least_conn;\n}\n" SRV);
	ck_assert_uint_eq(peer(&cfg->upstreams[0], 0)->flags, CFG_PEER_DOWN);
	ck_assert_int_eq(peer(&cfg->upstreams[0], 0)->weight, 3);
	ck_assert_uint_eq(peer(&cfg->upstreams[0], 1)->flags, CFG_PEER_BACKUP);
	ck_assert_int_eq(peer(&cfg->upstreams[0], 1)->max_fails, 2);
	ck_assert_uint_eq(peer(&cfg->upstreams[0], 2)->flags, CFG_PEER_BACKUP | CFG_PEER_DOWN);
	cfg_unref(cfg);

	/* ip_hash with down servers is fine (down keeps the hash of the others in place) */
	cfg = load_ok("upstream u { ip_hash; server 127.0.0.1:1 down; server 127.0.0.1:2; }\n" SRV);
	ck_assert_int_eq(cfg->upstreams[0].balance, CFG_BALANCE_IP_HASH);
	cfg_unref(cfg);

	/* a hash key template compiles into parts; consistent builds the ring */
	cfg = load_ok("upstream u { hash \"$http_x_user_id/$cookie_sid:$arg_a$request_uri\" "
	              "consistent; server 127.0.0.1:1 weight=2; server 127.0.0.1:2 down; }\n" SRV);
	struct cfg_upstream *up = &cfg->upstreams[0];
	ck_assert_uint_eq(up->nkey, 6);
	ck_assert_int_eq(up->key[0].var, CFG_KEY_HTTP);
	ck_assert_str_eq(up->key[0].text, "x-user-id");
	ck_assert_int_eq(up->key[1].var, CFG_KEY_LITERAL);
	ck_assert_str_eq(up->key[1].text, "/");
	ck_assert_int_eq(up->key[2].var, CFG_KEY_COOKIE);
	ck_assert_str_eq(up->key[2].text, "sid");
	ck_assert_int_eq(up->key[3].var, CFG_KEY_LITERAL);
	ck_assert_int_eq(up->key[4].var, CFG_KEY_ARG);
	ck_assert_str_eq(up->key[4].text, "a");
	ck_assert_int_eq(up->key[5].var, CFG_KEY_REQUEST_URI);
	ck_assert_uint_eq(up->nring, 3 * 160);
	for (size_t i = 1; i < up->nring; i++)
		ck_assert_uint_le(up->ring[i - 1].hash, up->ring[i].hash);
	cfg_unref(cfg);
}
END_TEST

/* ---- every error, with its line ---- */

static const struct {
	const char *text;
	int line;
	const char *error;
} errors[] = {
        /* limits */
        {UP SRV "limit_req_zone z key=client;\n", 3, "rate= is required"},
        {UP SRV "limit_req_zone z key=ip rate=1r/s;\n", 3, "invalid key \"ip\""},
        {UP SRV "limit_req_zone z key=client rate=5r/h;\n", 3, "invalid rate \"5r/h\""},
        {UP SRV "limit_conn_zone z key=client rate=1r/s;\n", 3, "unknown parameter"},
        {UP SRV "limit_conn_zone z size=0 key=user;\n", 3, "invalid size \"0\""},
        {UP SRV "limit_req_zone z key=client rate=1r/s;\nlimit_conn_zone z key=client;\n", 4,
         "duplicate zone \"z\""},
        {UP "server { listen 8080; proxy_pass u;\n limit_req nope; }\n", 3,
         "no limit_req_zone named \"nope\""},
        {UP "limit_conn_zone c key=client;\nserver { listen 8080; proxy_pass u;\n"
            "limit_req c; }\n",
         4, "zone \"c\" is not a limit_req_zone"},
        {UP "limit_req_zone r key=client rate=1r/s;\nserver { listen 8080; proxy_pass u;\n"
            "limit_conn r 3; }\n",
         4, "zone \"r\" is not a limit_conn_zone"},
        {UP "limit_req_zone r key=client rate=1r/s;\nserver { listen 8080; proxy_pass u;\n"
            "limit_req r burst=x; }\n",
         4, "invalid burst"},
        {UP "limit_req_zone r key=client rate=1r/s;\nserver { listen 8080; proxy_pass u;\n"
            "limit_req r;\nlimit_req r burst=1; }\n",
         5, "zone already limits this server"},
        {UP "limit_conn_zone c key=client;\nserver { listen 8080; proxy_pass u;\n"
            "limit_conn c 0; }\n",
         4, "limit_conn takes ZONE N"},
        {UP "limit_conn_zone c key=client;\nserver { listen 8080; proxy_pass u;\n"
            "limit_conn c; }\n",
         4, "invalid number of arguments"},
        {UP "server { listen 8080; proxy_pass u;\n limit_req_zone z key=client rate=1r/s; }\n", 3,
         "not allowed here"},
        /* an escaped \n in a string is not a line of the file */
        {UP "pid_file \"/tmp/a\\nb\\n\";\nbogus;\n" SRV, 3, "unknown directive \"bogus\""},
        {UP "pid_file \"/tmp/a\\\nb\";\nbogus;\n" SRV, 4, "unknown directive \"bogus\""},
        /* a set file that cannot be read: the error names the set directive's line */
        {UP "\nset blocked domains file /nonexistent-dir/blocked.lst;\n" SRV, 3,
         "invalid value \"/nonexistent-dir/blocked.lst\" in \"set\" directive: No such file"},
        /* syntax */
        {UP SRV "}\n", 3, "unexpected \"}\""},
        {UP "server { listen 8080; proxy_pass u;\n\n", 2,
         "unexpected end of file, \"server\" block is not closed by \"}\""},
        {UP "server {\n upstream x {\n server 1.1.1.1:1;\n }\n", 3,
         "\"upstream\" directive is not allowed here"},
        {"upstream u {\n server 127.0.0.1:1;\n" SRV, 3,
         "\"server\" directive is not terminated by \";\""},
        {UP "server { listen 8080; proxy_pass u }\n", 2,
         "unexpected \"}\", missing \";\" after \"proxy_pass\" directive"},
        {UP SRV "user\n proxyd", 4,
         "unexpected end of file, missing \";\" after \"user\" directive"},
        {UP "server {\n listen 8080\n proxy_pass u;\n}\n", 3,
         "invalid value \"proxy_pass\" in \"listen\" directive: unknown parameter"},
        {UP "server {\n listen 8080\n proxy_pass u\n tls;\n}\n", 3,
         "invalid number of arguments in \"listen\" directive"},
        {UP SRV "user \"proxyd;\n\n", 3, "unterminated string"},
        {UP SRV "user 'proxyd\\';\n", 3, "unterminated string"},
        {UP SRV "user \"a\"b;\n", 3, "unexpected \"b\" after a quoted string"},
        {UP SRV "\n;\n", 4, "unexpected \";\""},
        {UP SRV "{ }\n", 3, "unexpected \"{\""},
        {"", 1, "no \"server\" block"},
        {UP "\n# nothing else\n", 3, "no \"server\" block"},
        {UP "\n\nworkers 2;", 4, "no \"server\" block"},
        /* directive lookup */
        {UP SRV "frobnicate 1;\n", 3, "unknown directive \"frobnicate\""},
        {UP SRV "\"user\"x;\n", 3, "unexpected \"x\" after a quoted string"},
        {UP SRV "listen 80;\n", 3, "\"listen\" directive is not allowed here"},
        {UP SRV "keepalive 1;\n", 3, "\"keepalive\" directive is not allowed here"},
        {UP "server {\n listen 8080; proxy_pass u;\n user x;\n}\n", 4,
         "\"user\" directive is not allowed here"},
        {UP "server {\n listen 8080; proxy_pass u;\n server {\n }\n}\n", 4,
         "\"server\" directive is not allowed here"},
        {"upstream u {\n server 127.0.0.1:1;\n listen 80;\n}\n" SRV, 3,
         "\"listen\" directive is not allowed here"},
        {"upstream u {\n server 127.0.0.1:1;\n proxy_pass u;\n}\n" SRV, 3,
         "\"proxy_pass\" directive is not allowed here"},
        {"upstream u {\n server 127.0.0.1:1;\n workers 1;\n}\n" SRV, 3,
         "\"workers\" directive is not allowed here"},
        {UP SRV "server;\n", 3, "\"server\" directive has no opening \"{\""},
        {UP SRV "upstream x;\n", 3, "\"upstream\" directive has no opening \"{\""},
        {UP SRV "user proxyd {\n}\n", 3, "\"user\" directive is not terminated by \";\""},
        {UP SRV "include x.conf { }\n", 3, "\"include\" directive is not terminated by \";\""},
        /* argument counts */
        {UP SRV "user;\n", 3, "invalid number of arguments in \"user\" directive"},
        {UP SRV "user a b;\n", 3, "invalid number of arguments in \"user\" directive"},
        {UP SRV "workers;\n", 3, "invalid number of arguments in \"workers\" directive"},
        {UP SRV "worker_connections 1 2;\n", 3,
         "invalid number of arguments in \"worker_connections\" directive"},
        {UP SRV "pid_file;\n", 3, "invalid number of arguments in \"pid_file\" directive"},
        {UP SRV "error_log;\n", 3, "invalid number of arguments in \"error_log\" directive"},
        {UP SRV "error_log a info x;\n", 3,
         "invalid number of arguments in \"error_log\" directive"},
        {UP SRV "shutdown_timeout;\n", 3,
         "invalid number of arguments in \"shutdown_timeout\" directive"},
        {UP SRV "include;\n", 3, "invalid number of arguments in \"include\" directive"},
        {UP SRV "include a b;\n", 3, "invalid number of arguments in \"include\" directive"},
        {UP SRV "upstream {\n server 127.0.0.1:1;\n}\n", 3,
         "invalid number of arguments in \"upstream\" directive"},
        {UP SRV "upstream a b {\n}\n", 3, "invalid number of arguments in \"upstream\" directive"},
        {UP SRV "server x {\n}\n", 3, "invalid number of arguments in \"server\" directive"},
        {"upstream u {\n server;\n}\n" SRV, 2,
         "invalid number of arguments in \"server\" directive"},
        {"upstream u {\n server 127.0.0.1:1 weight=1 max_fails=1 fail_timeout=1s max_conns=1 "
         "slow_start=1s down backup x;\n}\n" SRV,
         2, "invalid value \"x\" in \"server\" directive: unknown parameter"},
        {"upstream u {\n server 127.0.0.1:1 weight=1 max_fails=1 fail_timeout=1s max_conns=1 "
         "slow_start=1s down backup tls verify=on sni=a ca=b x;\n}\n" SRV,
         2, "invalid number of arguments in \"server\" directive"},
        {"upstream u {\n server 127.0.0.1:1;\n balance;\n}\n" SRV, 3,
         "invalid number of arguments in \"balance\" directive"},
        {"upstream u {\n server 127.0.0.1:1;\n balance random two x;\n}\n" SRV, 3,
         "invalid number of arguments in \"balance\" directive"},
        {"upstream u {\n server 127.0.0.1:1;\n least_conn x;\n}\n" SRV, 3,
         "invalid number of arguments in \"least_conn\" directive"},
        {"upstream u {\n server 127.0.0.1:1;\n ip_hash x;\n}\n" SRV, 3,
         "invalid number of arguments in \"ip_hash\" directive"},
        {"upstream u {\n server 127.0.0.1:1;\n random two x;\n}\n" SRV, 3,
         "invalid number of arguments in \"random\" directive"},
        {"upstream u {\n server 127.0.0.1:1;\n keepalive;\n}\n" SRV, 3,
         "invalid number of arguments in \"keepalive\" directive"},
        {"upstream u {\n server 127.0.0.1:1;\n keepalive_timeout 1 2;\n}\n" SRV, 3,
         "invalid number of arguments in \"keepalive_timeout\" directive"},
        {"upstream u {\n server 127.0.0.1:1;\n keepalive_requests;\n}\n" SRV, 3,
         "invalid number of arguments in \"keepalive_requests\" directive"},
        {UP "server {\n listen;\n}\n", 3, "invalid number of arguments in \"listen\" directive"},
        {UP "server {\n listen 1 backlog=1 x;\n}\n", 3,
         "invalid value \"x\" in \"listen\" directive: unknown parameter"},
        {UP "server {\n listen 1 backlog=1 tls x;\n}\n", 3,
         "invalid number of arguments in \"listen\" directive"},
        {UP "server {\n proxy_pass;\n}\n", 3,
         "invalid number of arguments in \"proxy_pass\" directive"},
        {UP "server {\n proxy_pass a b;\n}\n", 3,
         "invalid number of arguments in \"proxy_pass\" directive"},
        {UP "server {\n via;\n}\n", 3, "invalid number of arguments in \"via\" directive"},
        {UP "server {\n x_forwarded_for on off;\n}\n", 3,
         "invalid number of arguments in \"x_forwarded_for\" directive"},
        {UP "server {\n proxy_read_timeout;\n}\n", 3,
         "invalid number of arguments in \"proxy_read_timeout\" directive"},
        {UP "server {\n client_max_body_size 1 2;\n}\n", 3,
         "invalid number of arguments in \"client_max_body_size\" directive"},
        {UP "server {\n client_max_headers;\n}\n", 3,
         "invalid number of arguments in \"client_max_headers\" directive"},
        {UP "server {\n access_log;\n}\n", 3,
         "invalid number of arguments in \"access_log\" directive"},
        {UP "server {\n access_log off combined;\n}\n", 3,
         "invalid number of arguments in \"access_log\" directive"},
        {UP "server {\n access_log /x combined y;\n}\n", 3,
         "invalid number of arguments in \"access_log\" directive"},
        /* duplicates */
        {"user root;\nuser b;\n" UP SRV, 2, "\"user\" directive is duplicate"},
        {"workers 1;\nworkers 2;\n" UP SRV, 2, "\"workers\" directive is duplicate"},
        {"workers auto;\nworkers auto;\n" UP SRV, 2, "\"workers\" directive is duplicate"},
        {"workers 3;\nworkers auto;\n" UP SRV, 2, "\"workers\" directive is duplicate"},
        {"worker_connections 1;\nworker_connections 1;\n" UP SRV, 2,
         "\"worker_connections\" directive is duplicate"},
        {"pid_file a;\npid_file a;\n" UP SRV, 2, "\"pid_file\" directive is duplicate"},
        {"error_log stderr;\nerror_log x debug;\n" UP SRV, 2,
         "\"error_log\" directive is duplicate"},
        {"shutdown_timeout 1s;\nshutdown_timeout 1s;\n" UP SRV, 2,
         "\"shutdown_timeout\" directive is duplicate"},
        {"upstream u {\n server 127.0.0.1:1;\n keepalive 1;\n keepalive 2;\n}\n" SRV, 4,
         "\"keepalive\" directive is duplicate"},
        {"upstream u {\n server 127.0.0.1:1;\n keepalive_timeout 1;\n keepalive_timeout "
         "2;\n}\n" SRV,
         4, "\"keepalive_timeout\" directive is duplicate"},
        {"upstream u {\n server 127.0.0.1:1;\n keepalive_requests 1;\n keepalive_requests "
         "2;\n}\n" SRV,
         4, "\"keepalive_requests\" directive is duplicate"},
        {"upstream u {\n server 127.0.0.1:1;\n balance random;\n balance random;\n}\n" SRV, 4,
         "\"balance\" directive is duplicate"},
        {"upstream u {\n server 127.0.0.1:1;\n balance ip_hash;\n least_conn;\n}\n" SRV, 4,
         "\"least_conn\" directive is duplicate"},
        {"upstream u {\n least_conn;\n server 127.0.0.1:1;\n random two;\n}\n" SRV, 4,
         "\"random\" directive is duplicate"},
        {"upstream u {\n ip_hash;\n ip_hash;\n server 127.0.0.1:1;\n}\n" SRV, 3,
         "\"ip_hash\" directive is duplicate"},
        {"upstream u {\n random;\n balance round_robin;\n server 127.0.0.1:1;\n}\n" SRV, 3,
         "\"balance\" directive is duplicate"},
        {"upstream u {\n server 127.0.0.1:1 down down;\n server 127.0.0.1:2;\n}\n" SRV, 2,
         "invalid value \"down\" in \"server\" directive: duplicate parameter"},
        {"upstream u {\n server 127.0.0.1:1 backup weight=2 backup;\n server 127.0.0.1:2;\n}\n" SRV,
         2, "invalid value \"backup\" in \"server\" directive: duplicate parameter"},
        {UP "server {\n listen 1;\n proxy_pass u;\n proxy_pass u;\n}\n", 5,
         "\"proxy_pass\" directive is duplicate"},
        {UP "server {\n via on;\n via on;\n}\n", 4, "\"via\" directive is duplicate"},
        {UP "server {\n send_timeout 1s;\n send_timeout 1s;\n}\n", 4,
         "\"send_timeout\" directive is duplicate"},
        {UP "server {\n keepalive_requests 1;\n keepalive_requests 1;\n}\n", 4,
         "\"keepalive_requests\" directive is duplicate"},
        {UP "server {\n client_max_target 1k;\n client_max_target 1k;\n}\n", 4,
         "\"client_max_target\" directive is duplicate"},
        {UP "server {\n client_max_headers 10;\n client_max_headers 10;\n}\n", 4,
         "\"client_max_headers\" directive is duplicate"},
        {UP "server {\n client_max_body_size 1;\n client_max_body_size 1;\n}\n", 4,
         "\"client_max_body_size\" directive is duplicate"},
        {UP "server {\n access_log off;\n access_log off;\n}\n", 4,
         "\"access_log\" directive is duplicate"},
        {"upstream u { server 127.0.0.1:1; }\n\nupstream u { server 127.0.0.1:2; }\n" SRV, 3,
         "duplicate upstream \"u\", first defined at "},
        /* values: upstream balancing */
        {"upstream u {\n server 127.0.0.1:1;\n balance fastest;\n}\n" SRV, 3,
         "invalid value \"fastest\" in \"balance\" directive: unknown balancing method"},
        {"upstream u {\n server 127.0.0.1:1;\n balance RANDOM;\n}\n" SRV, 3,
         "invalid value \"RANDOM\" in \"balance\" directive: unknown balancing method"},
        {"upstream u {\n server 127.0.0.1:1;\n balance random three;\n}\n" SRV, 3,
         "invalid value \"three\" in \"balance\" directive: random takes only \"two\""},
        {"upstream u {\n server 127.0.0.1:1;\n random 2;\n}\n" SRV, 3,
         "invalid value \"2\" in \"random\" directive: random takes only \"two\""},
        {"upstream u {\n server 127.0.0.1:1;\n balance least_conn two;\n}\n" SRV, 3,
         "invalid value \"two\" in \"balance\" directive: least_conn takes no argument"},
        {"upstream u {\n server 127.0.0.1:1;\n balance round_robin two;\n}\n" SRV, 3,
         "invalid value \"two\" in \"balance\" directive: round_robin takes no argument"},
        {"upstream u {\n ip_hash;\n server 127.0.0.1:1;\n server 127.0.0.1:2 backup;\n}\n" SRV, 4,
         "invalid value \"backup\" in \"server\" directive: ip_hash does not support backup "
         "servers"},
        {"upstream u {\n server 127.0.0.1:1;\n server 127.0.0.1:2 backup;\n balance "
         "ip_hash;\n}\n" SRV,
         4,
         "invalid value \"ip_hash\" in \"balance\" directive: ip_hash does not support backup "
         "servers"},
        {"upstream u {\n server 127.0.0.1:2 backup;\n ip_hash;\n}\n" SRV, 3,
         "invalid value \"ip_hash\" in \"ip_hash\" directive: ip_hash does not support backup "
         "servers"},
        {"upstream u {\n server 127.0.0.1:1 down;\n server 127.0.0.1:2 backup down;\n}\n" SRV, 1,
         "upstream \"u\" has no \"server\" that is not \"down\""},
        {"upstream u {\n server 127.0.0.1:1 weight=2 down;\n}\n" SRV, 1,
         "upstream \"u\" has no \"server\" that is not \"down\""},
        {UP "server {\n listen 1;\n proxy_pass u;\n balance random;\n}\n", 5,
         "\"balance\" directive is not allowed here"},
        {UP SRV "ip_hash;\n", 3, "\"ip_hash\" directive is not allowed here"},
        /* values: hash and least_time */
        {"upstream u {\n server 127.0.0.1:1;\n hash $uri;\n}\n" SRV, 3,
         "invalid value \"$uri\" in \"hash\" directive: unknown variable \"$uri\""},
        {"upstream u {\n server 127.0.0.1:1;\n balance hash \"k-$http_\";\n}\n" SRV, 3,
         "invalid value \"k-$http_\" in \"balance\" directive: unknown variable \"$http_\""},
        {"upstream u {\n server 127.0.0.1:1;\n hash \"a$\";\n}\n" SRV, 3,
         "invalid value \"a$\" in \"hash\" directive: unknown variable \"$\""},
        {"upstream u {\n server 127.0.0.1:1;\n hash \"\";\n}\n" SRV, 3,
         "invalid value \"\" in \"hash\" directive: the hash key must not be empty"},
        {"upstream u {\n server 127.0.0.1:1;\n balance hash;\n}\n" SRV, 3,
         "invalid number of arguments in \"balance\" directive"},
        {"upstream u {\n server 127.0.0.1:1;\n hash $host ring;\n}\n" SRV, 3,
         "invalid value \"ring\" in \"hash\" directive: hash takes only \"consistent\" after "
         "the key"},
        {"upstream u {\n hash $request_uri;\n server 127.0.0.1:1;\n"
         " server 127.0.0.1:2 backup;\n}\n" SRV,
         4,
         "invalid value \"backup\" in \"server\" directive: hash does not support backup "
         "servers"},
        {"upstream u {\n server 127.0.0.1:2 backup;\n server 127.0.0.1:1;\n"
         " balance hash $request_uri consistent;\n}\n" SRV,
         4,
         "invalid value \"hash\" in \"balance\" directive: hash does not support backup "
         "servers"},
        {"upstream u {\n server 127.0.0.1:1;\n least_time first_byte;\n}\n" SRV, 3,
         "invalid value \"first_byte\" in \"least_time\" directive: least_time takes only "
         "\"header\" or \"last_byte\""},
        {"upstream u {\n server 127.0.0.1:1;\n balance least_time header x;\n}\n" SRV, 3,
         "invalid number of arguments in \"balance\" directive"},
        {"upstream u {\n server 127.0.0.1:1 standby;\n}\n" SRV, 2,
         "invalid value \"standby\" in \"server\" directive: unknown parameter"},
        /* values: main */
        {UP SRV "workers 0;\n", 3,
         "invalid value \"0\" in \"workers\" directive: must be between 1 and 256"},
        {UP SRV "workers 257;\n", 3,
         "invalid value \"257\" in \"workers\" directive: must be between 1 and 256"},
        {UP SRV "workers many;\n", 3,
         "invalid value \"many\" in \"workers\" directive: not a number"},
        {UP SRV "workers -1;\n", 3, "invalid value \"-1\" in \"workers\" directive: not a number"},
        {UP SRV "worker_connections 0;\n", 3,
         "invalid value \"0\" in \"worker_connections\" directive: must be at least 1"},
        {UP SRV "worker_connections 2147483648;\n", 3,
         "invalid value \"2147483648\" in \"worker_connections\" directive: too large"},
        {UP SRV "user \"\";\n", 3, "invalid value \"\" in \"user\" directive: must not be empty"},
        {UP SRV "error_log stderr verbose;\n", 3,
         "invalid value \"verbose\" in \"error_log\" directive: the level must be"},
        {UP SRV "error_log '' info;\n", 3, "invalid value \"\" in \"error_log\" directive"},
        {UP SRV "shutdown_timeout 10x;\n", 3,
         "invalid value \"10x\" in \"shutdown_timeout\" directive: not a duration"},
        {UP SRV "shutdown_timeout 4294967295ms;\n", 3,
         "invalid value \"4294967295ms\" in \"shutdown_timeout\" directive: too large"},
        /* values: upstream */
        {"upstream e {\n}\n" UP SRV, 1, "upstream \"e\" has no \"server\""},
        {"upstream e {\n keepalive 1;\n}\n" UP SRV, 1, "upstream \"e\" has no \"server\""},
        {"upstream '' {\n server 127.0.0.1:1;\n}\n" SRV, 1,
         "invalid value \"\" in \"upstream\" directive"},
        {"upstream u {\n server 127.0.0.1;\n}\n" SRV, 2,
         "invalid value \"127.0.0.1\" in \"server\" directive: missing port"},
        {"upstream u {\n server 3001;\n}\n" SRV, 2,
         "invalid value \"3001\" in \"server\" directive: missing host"},
        {"upstream u {\n server :3001;\n}\n" SRV, 2,
         "invalid value \":3001\" in \"server\" directive: missing host"},
        {"upstream u {\n server *:3001;\n}\n" SRV, 2,
         "invalid value \"*:3001\" in \"server\" directive"},
        {"upstream u {\n server 127.0.0.1:0;\n}\n" SRV, 2, "invalid port \"0\""},
        {"upstream u {\n server 127.0.0.1:65536;\n}\n" SRV, 2, "invalid port \"65536\""},
        {"upstream u {\n server 127.0.0.1:http;\n}\n" SRV, 2, "invalid port \"http\""},
        {"upstream u {\n server 127.0.0.1:;\n}\n" SRV, 2, "invalid port \"\""},
        {"upstream u {\n server 127.0.0.1:-1;\n}\n" SRV, 2, "invalid port \"-1\""},
        {"upstream u {\n server ::1:80;\n}\n" SRV, 2, "an IPv6 address must be enclosed in \"[]\""},
        {"upstream u {\n server [::1:80;\n}\n" SRV, 2, "missing \"]\""},
        {"upstream u {\n server [::1];\n}\n" SRV, 2, "missing port"},
        {"upstream u {\n server [::1]80;\n}\n" SRV, 2, "\":\" expected after \"]\""},
        {"upstream u {\n server [127.0.0.1]:80;\n}\n" SRV, 2, "invalid IPv6 address \"127.0.0.1\""},
        {"upstream u {\n server [localhost]:80;\n}\n" SRV, 2, "invalid IPv6 address \"localhost\""},
        {"upstream u {\n server 256.1.1.1:80;\n}\n" SRV, 2, "invalid IPv4 address \"256.1.1.1\""},
        {"upstream u {\n server 127.1:80;\n}\n" SRV, 2, "invalid IPv4 address \"127.1\""},
        {"upstream u {\n server 127.0.0.1:1 weight=0;\n}\n" SRV, 2,
         "invalid value \"weight=0\" in \"server\" directive: weight must be between 1 and 1000"},
        {"upstream u {\n server 127.0.0.1:1 weight=1001;\n}\n" SRV, 2,
         "weight must be between 1 and 1000"},
        {"upstream u {\n server 127.0.0.1:1 weight=;\n}\n" SRV, 2,
         "weight must be between 1 and 1000"},
        {"upstream u {\n server 127.0.0.1:1 weight=1 weight=2;\n}\n" SRV, 2,
         "invalid value \"weight=2\" in \"server\" directive: duplicate parameter"},
        {"upstream u {\n server 127.0.0.1:1 max_fails=-1;\n}\n" SRV, 2,
         "invalid value \"max_fails=-1\" in \"server\" directive: max_fails must be a non-negative "
         "number"},
        {"upstream u {\n server 127.0.0.1:1 max_fails=2147483648;\n}\n" SRV, 2,
         "max_fails must be a non-negative number"},
        {"upstream u {\n server 127.0.0.1:1 max_fails=1 max_fails=1;\n}\n" SRV, 2,
         "duplicate parameter"},
        {"upstream u {\n server 127.0.0.1:1 max_conns=-1;\n}\n" SRV, 2,
         "invalid value \"max_conns=-1\" in \"server\" directive: max_conns must be between 0 "
         "and 100000"},
        {"upstream u {\n server 127.0.0.1:1 max_conns=100001;\n}\n" SRV, 2,
         "max_conns must be between 0 and 100000"},
        {"upstream u {\n server 127.0.0.1:1 max_conns=;\n}\n" SRV, 2,
         "max_conns must be between 0 and 100000"},
        {"upstream u {\n server 127.0.0.1:1 max_conns=1 max_conns=2;\n}\n" SRV, 2,
         "invalid value \"max_conns=2\" in \"server\" directive: duplicate parameter"},
        {"upstream u {\n server 127.0.0.1:1 slow_start=abc;\n}\n" SRV, 2,
         "invalid value \"slow_start=abc\" in \"server\" directive: not a duration"},
        {"upstream u {\n server 127.0.0.1:1 slow_start=1h1ms;\n}\n" SRV, 2,
         "invalid value \"slow_start=1h1ms\" in \"server\" directive: slow_start must be at "
         "most 1h"},
        {"upstream u {\n server 127.0.0.1:1 slow_start=;\n}\n" SRV, 2, "not a duration"},
        {"upstream u {\n server 127.0.0.1:1 slow_start=1s slow_start=1s;\n}\n" SRV, 2,
         "invalid value \"slow_start=1s\" in \"server\" directive: duplicate parameter"},
        {"upstream u {\n server 127.0.0.1:1;\n health_check interval=0;\n}\n" SRV, 3,
         "invalid value \"interval=0\" in \"health_check\" directive: must be between 1ms and 1h"},
        {"upstream u {\n server 127.0.0.1:1;\n health_check interval=abc;\n}\n" SRV, 3,
         "invalid value \"interval=abc\" in \"health_check\" directive: not a duration"},
        {"upstream u {\n server 127.0.0.1:1;\n health_check timeout=2h;\n}\n" SRV, 3,
         "invalid value \"timeout=2h\" in \"health_check\" directive: must be between 1ms and 1h"},
        {"upstream u {\n server 127.0.0.1:1;\n health_check interval=1s interval=2s;\n}\n" SRV, 3,
         "invalid value \"interval=2s\" in \"health_check\" directive: duplicate parameter"},
        {"upstream u {\n server 127.0.0.1:1;\n health_check uri=health;\n}\n" SRV, 3,
         "invalid value \"uri=health\" in \"health_check\" directive: the uri must start with "
         "\"/\""},
        {"upstream u {\n server 127.0.0.1:1;\n health_check \"uri=/a b\";\n}\n" SRV, 3,
         "the uri must not contain spaces or control characters"},
        {"upstream u {\n server 127.0.0.1:1;\n health_check expect=99;\n}\n" SRV, 3,
         "invalid value \"expect=99\" in \"health_check\" directive: expect takes a status N or a "
         "range N-M within 100-599"},
        {"upstream u {\n server 127.0.0.1:1;\n health_check expect=600;\n}\n" SRV, 3,
         "expect takes a status N or a range N-M within 100-599"},
        {"upstream u {\n server 127.0.0.1:1;\n health_check expect=300-200;\n}\n" SRV, 3,
         "expect takes a status N or a range N-M within 100-599"},
        {"upstream u {\n server 127.0.0.1:1;\n health_check expect=200-;\n}\n" SRV, 3,
         "expect takes a status N or a range N-M within 100-599"},
        {"upstream u {\n server 127.0.0.1:1;\n health_check expect=2xx;\n}\n" SRV, 3,
         "expect takes a status N or a range N-M within 100-599"},
        {"upstream u {\n server 127.0.0.1:1;\n health_check fails=0;\n}\n" SRV, 3,
         "invalid value \"fails=0\" in \"health_check\" directive: must be between 1 and 1000"},
        {"upstream u {\n server 127.0.0.1:1;\n health_check passes=1001;\n}\n" SRV, 3,
         "invalid value \"passes=1001\" in \"health_check\" directive: must be between 1 and 1000"},
        {"upstream u {\n server 127.0.0.1:1;\n health_check fails=1 fails=2;\n}\n" SRV, 3,
         "duplicate parameter"},
        {"upstream u {\n server 127.0.0.1:1;\n health_check port=80;\n}\n" SRV, 3,
         "invalid value \"port=80\" in \"health_check\" directive: unknown parameter"},
        {"upstream u {\n server 127.0.0.1:1;\n health_check interval;\n}\n" SRV, 3,
         "invalid value \"interval\" in \"health_check\" directive: unknown parameter"},
        {"upstream u {\n server 127.0.0.1:1;\n health_check;\n health_check;\n}\n" SRV, 4,
         "\"health_check\" directive is duplicate"},
        {"upstream u {\n server 127.0.0.1:1;\n health_check a b c d e f g;\n}\n" SRV, 3,
         "invalid number of arguments in \"health_check\" directive"},
        {"upstream u {\n server 127.0.0.1:1 fail_timeout=abc;\n}\n" SRV, 2,
         "invalid value \"fail_timeout=abc\" in \"server\" directive: not a duration"},
        {"upstream u {\n server 127.0.0.1:1 fail_timeout=50d;\n}\n" SRV, 2, "too large"},
        {"upstream u {\n server 127.0.0.1:1 fail_timeout=4294967295ms;\n}\n" SRV, 2, "too large"},
        {"upstream u {\n server 127.0.0.1:1 fail_timeout=1s fail_timeout=1s;\n}\n" SRV, 2,
         "duplicate parameter"},
        {"upstream u {\n server 127.0.0.1:1 Backup;\n}\n" SRV, 2,
         "invalid value \"Backup\" in \"server\" directive: unknown parameter"},
        {"upstream u {\n server 127.0.0.1:1;\n keepalive -1;\n}\n" SRV, 3,
         "invalid value \"-1\" in \"keepalive\" directive: not a number"},
        {"upstream u {\n server 127.0.0.1:1;\n keepalive 99999999999;\n}\n" SRV, 3,
         "invalid value \"99999999999\" in \"keepalive\" directive: too large"},
        {"upstream u {\n server 127.0.0.1:1;\n keepalive_timeout 1y;\n}\n" SRV, 3,
         "invalid value \"1y\" in \"keepalive_timeout\" directive: not a duration"},
        {"upstream u {\n server 127.0.0.1:1;\n keepalive_requests 0;\n}\n" SRV, 3,
         "invalid value \"0\" in \"keepalive_requests\" directive: must be at least 1"},
        /* values: server */
        {UP "server {\n listen 0;\n}\n", 3,
         "invalid value \"0\" in \"listen\" directive: invalid port \"0\""},
        {UP "server {\n listen 65536;\n}\n", 3, "invalid port \"65536\""},
        {UP "server {\n listen abc;\n}\n", 3,
         "invalid value \"abc\" in \"listen\" directive: missing port"},
        {UP "server {\n listen *:;\n}\n", 3, "invalid port \"\""},
        {UP "server {\n listen [::1]:x;\n}\n", 3, "invalid port \"x\""},
        {UP "server {\n listen :80;\n}\n", 3, "missing host"},
        {UP "server {\n listen 1.2.3:80;\n}\n", 3, "invalid IPv4 address \"1.2.3\""},
        {UP "server {\n listen 80 backlog=0;\n}\n", 3,
         "invalid value \"backlog=0\" in \"listen\" directive: backlog must be between 1 and "
         "65535"},
        {UP "server {\n listen 80 backlog=65536;\n}\n", 3, "backlog must be between 1 and 65535"},
        {UP "server {\n listen 80 backlog=;\n}\n", 3, "backlog must be between 1 and 65535"},
        {UP "server {\n listen 80 reuseport;\n}\n", 3,
         "invalid value \"reuseport\" in \"listen\" directive: unknown parameter"},
        {UP "server {\n proxy_pass https://u;\n}\n", 3,
         "invalid value \"https://u\" in \"proxy_pass\" directive: only \"http://\" is supported"},
        {UP "server {\n proxy_pass http://;\n}\n", 3,
         "invalid value \"http://\" in \"proxy_pass\" directive: missing upstream name"},
        {UP "server {\n proxy_pass '';\n}\n", 3, "missing upstream name"},
        {UP "server {\n proxy_pass http://u/path;\n}\n", 3,
         "invalid value \"http://u/path\" in \"proxy_pass\" directive: a URI path is not "
         "supported"},
        {UP "server {\n listen 80;\n\n proxy_pass nope;\n}\n", 5,
         "invalid value \"nope\" in \"proxy_pass\" directive: no upstream named \"nope\""},
        {UP SRV "server {\n listen 81;\n proxy_pass http://U;\n}\n", 5,
         "invalid value \"http://U\" in \"proxy_pass\" directive: no upstream named \"U\""},
        {UP "server {\n proxy_connect_timeout 0;\n}\n", 3,
         "invalid value \"0\" in \"proxy_connect_timeout\" directive: must be at least 1ms"},
        {UP "server {\n proxy_read_timeout 0s;\n}\n", 3, "must be at least 1ms"},
        {UP "server {\n proxy_send_timeout 0ms;\n}\n", 3, "must be at least 1ms"},
        {UP "server {\n client_header_timeout 0;\n}\n", 3, "must be at least 1ms"},
        {UP "server {\n client_body_timeout 0;\n}\n", 3, "must be at least 1ms"},
        {UP "server {\n send_timeout 0;\n}\n", 3, "must be at least 1ms"},
        {UP "server {\n keepalive_timeout 1 s;\n}\n", 3, "invalid number of arguments"},
        {UP "server {\n keepalive_timeout forever;\n}\n", 3,
         "invalid value \"forever\" in \"keepalive_timeout\" directive: not a duration"},
        {UP "server {\n send_timeout 50d;\n}\n", 3,
         "invalid value \"50d\" in \"send_timeout\" directive: duration is too large"},
        {UP "server {\n keepalive_requests 0;\n}\n", 3,
         "invalid value \"0\" in \"keepalive_requests\" directive: must be at least 1"},
        {UP "server {\n keepalive_requests 1k;\n}\n", 3,
         "invalid value \"1k\" in \"keepalive_requests\" directive: not a number"},
        {UP "server {\n client_max_header_size 0;\n}\n", 3,
         "invalid value \"0\" in \"client_max_header_size\" directive: must be at least 1"},
        {UP "server {\n client_max_header_size 1x;\n}\n", 3,
         "invalid value \"1x\" in \"client_max_header_size\" directive: not a size"},
        {UP "server {\n client_max_target 0k;\n}\n", 3, "must be at least 1"},
        {UP "server {\n client_max_target 99999999999999999999;\n}\n", 3, "size is too large"},
        {UP "server {\n client_max_headers 0;\n}\n", 3,
         "invalid value \"0\" in \"client_max_headers\" directive: must be between 1 and 128"},
        {UP "server {\n client_max_headers 129;\n}\n", 3, "must be between 1 and 128"},
        {UP "server {\n client_max_headers 1k;\n}\n", 3, "not a number"},
        {UP "server {\n client_max_body_size 1x;\n}\n", 3,
         "invalid value \"1x\" in \"client_max_body_size\" directive: not a size"},
        {UP "server {\n client_max_body_size 18446744073709551615;\n}\n", 3, "too large"},
        {UP "server {\n client_max_body_size 17179869184g;\n}\n", 3, "size is too large"},
        {UP "server {\n via yes;\n}\n", 3,
         "invalid value \"yes\" in \"via\" directive: it must be \"on\" or \"off\""},
        {UP "server {\n proxy_next_upstream error bogus;\n}\n", 3,
         "invalid value \"bogus\" in \"proxy_next_upstream\" directive: unknown condition"},
        {UP "server {\n proxy_next_upstream http_418;\n}\n", 3,
         "invalid value \"http_418\" in \"proxy_next_upstream\" directive"},
        {UP "server {\n proxy_next_upstream error off;\n}\n", 3,
         "invalid value \"off\" in \"proxy_next_upstream\" directive: \"off\" cannot be "
         "combined with other conditions"},
        {UP "server {\n proxy_next_upstream off timeout;\n}\n", 3, "\"off\" cannot be combined"},
        {UP "server {\n proxy_next_upstream off;\n proxy_next_upstream error;\n}\n", 4,
         "\"proxy_next_upstream\" directive is duplicate"},
        {UP "server {\n cache_use_stale error non_idempotent;\n}\n", 3,
         "invalid value \"non_idempotent\" in \"cache_use_stale\" directive: unknown condition"},
        {UP "server {\n cache_heuristic 150%;\n}\n", 3,
         "invalid value \"150%\" in \"cache_heuristic\" directive: a percentage from 1% to 100%"},
        {UP "server {\n cache_heuristic 10;\n}\n", 3,
         "invalid value \"10\" in \"cache_heuristic\" directive: a percentage such as 10%"},
        {UP "server {\n cache_heuristic 10% min=1s;\n}\n", 3,
         "invalid value \"min=1s\" in \"cache_heuristic\" directive: only \"max=DURATION\""},
        {UP "server {\n cache_heuristic off max=1s;\n}\n", 3, "\"off\" takes nothing more"},
        {UP "server {\n cache_heuristic 10% max=0s;\n}\n", 3,
         "max= takes a duration of a second or more"},
        {UP "server {\n cache_key \"$url\";\n cache_key \"$host\";\n}\n", 4,
         "cache_key is already set"},
        {UP "server {\n cache_use_stale updating;\n}\n", 3,
         "invalid value \"updating\" in \"cache_use_stale\" directive: unknown condition"},
        {UP "server {\n proxy_next_upstream;\n}\n", 3,
         "invalid number of arguments in \"proxy_next_upstream\" directive"},
        {UP "server {\n proxy_next_upstream_tries -1;\n}\n", 3,
         "invalid value \"-1\" in \"proxy_next_upstream_tries\" directive"},
        {UP "server {\n proxy_next_upstream_timeout soon;\n}\n", 3,
         "invalid value \"soon\" in \"proxy_next_upstream_timeout\" directive"},
        {UP "server {\n x_forwarded_for ON;\n}\n", 3,
         "invalid value \"ON\" in \"x_forwarded_for\" directive"},
        {UP "server {\n x_forwarded_proto 1;\n}\n", 3,
         "invalid value \"1\" in \"x_forwarded_proto\" directive"},
        {UP "server {\n x_forwarded_host '';\n}\n", 3,
         "invalid value \"\" in \"x_forwarded_host\" directive"},
        {UP "server {\n access_log /x json;\n}\n", 3,
         "invalid value \"json\" in \"access_log\" directive: the only format is \"combined\""},
        {UP "server {\n access_log '';\n}\n", 3,
         "invalid value \"\" in \"access_log\" directive: must not be empty"},
        {UP "server {\n access_log /nonexistent-dir/a/b.log;\n}\n", 3,
         "cannot open access log \"/nonexistent-dir/a/b.log\": No such file or directory"},
        /* validation */
        {UP "\nserver {\n proxy_pass u;\n}\n", 3, "server has no \"listen\""},
        {UP "\nserver {\n listen 80;\n}\n", 3, "server has no \"proxy_pass\""},
        {UP "server {\n}\n", 2, "server has no \"listen\""},
        {UP "server { listen 8080; proxy_pass u; }\nserver {\n listen 8081;\n listen 8080;\n "
            "proxy_pass u;\n}\n",
         5, "duplicate listen address \"0.0.0.0:8080\", already used at "},
        {UP "server {\n listen 8080;\n listen *:8080;\n proxy_pass u;\n}\n", 4,
         "duplicate listen address \"0.0.0.0:8080\""},
        {UP "server {\n listen 127.0.0.1:80;\n listen 127.0.0.1:80 backlog=5;\n proxy_pass u;\n}\n",
         4, "duplicate listen address \"127.0.0.1:80\""},
        {UP "server {\n listen [::1]:80;\n listen [0:0::1]:80;\n proxy_pass u;\n}\n", 4,
         "duplicate listen address \"[::1]:80\""}, /* admin */
        {UP SRV "admin {\n listen 10.0.0.1:9000;\n}\n", 4,
         "admin listen address must be loopback (or set allow_remote on)"},
        {UP SRV "admin {\n listen 9000;\n allow_remote off;\n}\n", 4,
         "admin listen address must be loopback (or set allow_remote on)"},
        {UP SRV "admin {\n listen [2001:db8::1]:9000;\n}\n", 4,
         "admin listen address must be loopback (or set allow_remote on)"},
        {UP SRV "admin {\n allow_remote on;\n}\n", 3, "admin has no \"listen\""},
        {UP SRV "admin { listen 127.0.0.1:9000; }\nadmin {\n listen 127.0.0.1:9001;\n}\n", 4,
         "duplicate \"admin\" block, already at "},
        {UP SRV "admin {\n listen 127.0.0.1:9000;\n listen 127.0.0.1:9001;\n}\n", 5,
         "\"listen\" directive is duplicate"},
        {UP SRV "admin {\n listen 127.0.0.1:9000 backlog=5;\n}\n", 4,
         "invalid number of arguments in \"listen\" directive"},
        {UP SRV "admin {\n listen 127.0.0.1:9000;\n allow_remote yes;\n}\n", 5,
         "it must be \"on\" or \"off\""},
        {UP SRV "admin {\n listen 127.0.0.1:9000;\n proxy_pass u;\n}\n", 5,
         "\"proxy_pass\" directive is not allowed here"},
        {UP SRV "allow_remote on;\n", 3, "\"allow_remote\" directive is not allowed here"},
        {UP SRV "admin;\n", 3, "\"admin\" directive has no opening \"{\""},
        {UP
         "server { listen 127.0.0.1:8080; proxy_pass u; }\nadmin {\n listen 127.0.0.1:8080;\n}\n",
         4, "duplicate listen address \"127.0.0.1:8080\""},
};

/* admin { ... }: loopback addresses, allow_remote, and no block at all. */
START_TEST(test_admin)
{
	static const struct {
		const char *text;
		const char *addr;
		int allow_remote;
	} ok_rows[] = {
	        {UP SRV "admin { listen 127.0.0.1:9000; }\n", "127.0.0.1:9000", 0},
	        {UP SRV "admin { listen 127.1.2.3:9000; }\n", "127.1.2.3:9000", 0},
	        {UP SRV "admin { listen [::1]:9000; }\n", "[::1]:9000", 0},
	        {UP SRV "admin { allow_remote on; listen 9000; }\n", "0.0.0.0:9000", 1},
	};
	char *err = NULL;
	struct cfg *cfg;

	for (size_t i = 0; i < sizeof(ok_rows) / sizeof(ok_rows[0]); i++) {
		write_t("proxyd.conf", ok_rows[i].text);
		cfg = cfg_load(unit_path("proxyd.conf"), &err);
		ck_assert_msg(cfg != NULL, "row %zu: %s", i, err);
		ck_assert_int_eq(cfg->admin.enabled, 1);
		ck_assert_str_eq(cfg->admin.listen.addr.text, ok_rows[i].addr);
		ck_assert_int_eq(cfg->admin.allow_remote, ok_rows[i].allow_remote);
		cfg_unref(cfg);
	}
	write_t("proxyd.conf", UP SRV);
	cfg = cfg_load(unit_path("proxyd.conf"), &err);
	ck_assert_msg(cfg != NULL, "%s", err);
	ck_assert_int_eq(cfg->admin.enabled, 0);
	cfg_unref(cfg);
}
END_TEST

/* Zones and their uses; a reload keeps a zone whose definition is unchanged. */
START_TEST(test_limits)
{
	const char *text = UP "limit_req_zone r key=client rate=5r/s size=100;\n"
	                      "limit_conn_zone c key=user;\n"
	                      "server { listen 8080; proxy_pass u;\n"
	                      " limit_req r burst=2 nodelay; limit_conn c 3; }\n"
	                      "server { listen 8081; proxy_pass u; limit_req r; }\n";
	struct cfg *a = load_ok(text), *b, *c;
	char *err = NULL;

	ck_assert_uint_eq(a->nlimit_zones, 2);
	ck_assert_uint_eq(a->servers[0].nlimits, 2);
	ck_assert_int_eq(a->servers[0].limits[0].kind, LIMIT_REQ);
	ck_assert_uint_eq(a->servers[0].limits[0].burst, 2);
	ck_assert_ptr_eq(a->servers[0].limits[0].zone, a->limit_zones[0].zone);
	ck_assert_int_eq(a->servers[0].limits[1].kind, LIMIT_CONN);
	ck_assert_uint_eq(a->servers[0].limits[1].max, 3);
	ck_assert_ptr_eq(a->servers[0].limits[1].zone, a->limit_zones[1].zone);
	ck_assert_uint_eq(a->servers[1].limits[0].burst, 0);
	ck_assert_ptr_eq(a->servers[1].limits[0].zone, a->limit_zones[0].zone);
	ck_assert_uint_eq(limit_zone_def(a->limit_zones[1].zone)->size, LIMIT_DEF_SIZE);
	ck_assert_int_eq(limit_zone_def(a->limit_zones[1].zone)->key, LIMIT_KEY_USER);
	ck_assert_uint_eq(a->servers[1].nlimits, 1);

	/* same text: both zones kept */
	b = cfg_load_next(unit_path("proxyd.conf"), a, &err);
	ck_assert_msg(b != NULL, "%s", err);
	ck_assert_ptr_eq(b->limit_zones[0].zone, a->limit_zones[0].zone);
	ck_assert_ptr_eq(b->limit_zones[1].zone, a->limit_zones[1].zone);
	cfg_unref(a); /* the zones live on in b */
	ck_assert_str_eq(limit_zone_name(b->limit_zones[0].zone), "r");

	/* r's rate changes: r is new, c is kept */
	write_t("proxyd.conf", UP "limit_conn_zone c key=user;\n"
	                          "limit_req_zone r key=client rate=6r/s size=100;\n" SRV);
	c = cfg_load_next(unit_path("proxyd.conf"), b, &err);
	ck_assert_msg(c != NULL, "%s", err);
	ck_assert_ptr_eq(c->limit_zones[0].zone, b->limit_zones[1].zone);
	ck_assert_ptr_ne(c->limit_zones[1].zone, b->limit_zones[0].zone);
	ck_assert_uint_eq(limit_zone_def(c->limit_zones[1].zone)->rate, 6);
	ck_assert_uint_eq(c->servers[0].nlimits, 0);
	cfg_unref(b);
	cfg_unref(c);
}
END_TEST

START_TEST(test_errors)
{
	check_error(errors[_i].text, errors[_i].line, errors[_i].error);
}
END_TEST

/* The "already used at" and "first defined at" parts name the first place. */
START_TEST(test_error_first_place)
{
	char msg[PATH_MAX + 128];

	snprintf(msg, sizeof(msg), "already used at %s:4", unit_path("proxyd.conf"));
	check_error(UP "server {\n\n listen 8080;\n proxy_pass u;\n}\nserver {\n listen 8080;\n}\n",
	            8, msg);
	snprintf(msg, sizeof(msg), "first defined at %s:2", unit_path("proxyd.conf"));
	check_error("\nupstream u { server 127.0.0.1:1; }\n" SRV "upstream u {\n}\n", 4, msg);
}
END_TEST

/* cfg_load_buffer: a buffer is a main file; a dry run opens, creates and resolves nothing. */
START_TEST(test_load_buffer)
{
	static const char conf[] = "upstream u { server backend.invalid:80; }\n"
	                           "server { listen 8080; proxy_pass u;\n access_log %s; }\n";
	char text[PATH_MAX + 128], *err = NULL;
	struct cfg *cfg;
	struct stat st;

	snprintf(text, sizeof(text), conf, unit_path("access.log"));
	cfg = cfg_load_buffer("mem.conf", text, strlen(text), CFG_LOAD_DRY, &err);
	ck_assert_msg(cfg != NULL, "%s", err);
	ck_assert_ptr_null(err);
	ck_assert_str_eq(cfg->upstreams[0].peers[0].addr.text, "192.0.2.1:80");
	ck_assert_int_eq(stat(unit_path("access.log"), &st), -1); /* not created */
	cfg_unref(cfg);

	/* errors are "name:line: ..."; include is refused in a dry run */
	ck_assert_ptr_null(cfg_load_buffer("mem.conf", UP "include x.conf;\n" SRV,
	                                   strlen(UP "include x.conf;\n" SRV), CFG_LOAD_DRY, &err));
	ck_assert_str_eq(err, "mem.conf:2: invalid value \"x.conf\" in \"include\" directive: "
	                      "files are not included in a dry run");
	free(err);

	/* flags 0: the access log is opened (created) as cfg_load() does */
	cfg = cfg_load_buffer("mem.conf",
	                      UP "server { listen 8080; proxy_pass u; access_log "
	                         "/nonexistent-dir/a.log; }\n",
	                      strlen(UP) + 73, 0, &err);
	ck_assert_ptr_null(cfg);
	ck_assert_msg(strstr(err, "cannot open access log") != NULL, "%s", err);
	free(err);
}
END_TEST

/* Needs the resolver: a name that cannot exist (RFC 6761 ".invalid"). */
START_TEST(test_unknown_host)
{
	check_error("upstream u {\n server no-such-host.invalid:80;\n}\n" SRV, 2,
	            "invalid value \"no-such-host.invalid:80\" in \"server\" directive: host "
	            "\"no-such-host.invalid\" not found");
}
END_TEST

/* cfg_addr_from_ip: the sockaddr with the port, and its "ip:port" / "[ip6]:port" text. */
START_TEST(test_addr_from_ip)
{
	struct sockaddr_storage ss;
	struct cfg_addr a;

	memset(&ss, 0, sizeof(ss));
	ss.ss_family = AF_INET;
	ck_assert_int_eq(
	        inet_pton(AF_INET, "192.0.2.10", &((struct sockaddr_in *)(void *)&ss)->sin_addr),
	        1);
	cfg_addr_from_ip(&a, &ss, 8080);
	ck_assert_str_eq(a.text, "192.0.2.10:8080");
	ck_assert_uint_eq(a.len, sizeof(struct sockaddr_in));
	ck_assert_uint_eq(ntohs(((struct sockaddr_in *)(void *)&a.ss)->sin_port), 8080);
	cfg_addr_from_ip(&a, &ss, 0);
	ck_assert_str_eq(a.text, "192.0.2.10:0");
	ck_assert_int_eq(
	        inet_pton(AF_INET, "0.9.99.255", &((struct sockaddr_in *)(void *)&ss)->sin_addr),
	        1);
	cfg_addr_from_ip(&a, &ss, 80);
	ck_assert_str_eq(a.text, "0.9.99.255:80");
	ck_assert_int_eq(
	        inet_pton(AF_INET, "100.10.1.0", &((struct sockaddr_in *)(void *)&ss)->sin_addr),
	        1);
	cfg_addr_from_ip(&a, &ss, 9);
	ck_assert_str_eq(a.text, "100.10.1.0:9");

	memset(&ss, 0, sizeof(ss));
	ss.ss_family = AF_INET6;
	ck_assert_int_eq(inet_pton(AF_INET6, "2001:db8::1",
	                           &((struct sockaddr_in6 *)(void *)&ss)->sin6_addr),
	                 1);
	cfg_addr_from_ip(&a, &ss, 65535);
	ck_assert_str_eq(a.text, "[2001:db8::1]:65535");
	ck_assert_uint_eq(a.len, sizeof(struct sockaddr_in6));
	ck_assert_uint_eq(ntohs(((struct sockaddr_in6 *)(void *)&a.ss)->sin6_port), 65535);
	/* the longest text there is */
	ck_assert_int_eq(inet_pton(AF_INET6, "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255",
	                           &((struct sockaddr_in6 *)(void *)&ss)->sin6_addr),
	                 1);
	cfg_addr_from_ip(&a, &ss, 10000);
	ck_assert_str_eq(a.text, "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:10000");
}
END_TEST

/* A (name, context) pair appears once across all directive tables. */
START_TEST(test_directives_unique)
{
	unsigned int ci, cj;
	const char *a, *b;

	for (size_t i = 0; (a = cfg_directive_at(i, &ci)) != NULL; i++) {
		for (size_t j = i + 1; (b = cfg_directive_at(j, &cj)) != NULL; j++)
			ck_assert_msg(strcmp(a, b) != 0 || (ci & cj) == 0,
			              "directive \"%s\" is defined twice for one context", a);
	}
	ck_assert_ptr_nonnull(cfg_directive_at(0, &ci));
}
END_TEST

/* Every directive has an entry in proxyd.conf(5): a line ".B name" (with arguments). */
START_TEST(test_directives_documented)
{
	const char *top = getenv("TOP_SRCDIR");
	char path[4096], line[1024];
	unsigned int ctx;
	const char *name;
	FILE *f;

	snprintf(path, sizeof(path), "%s/doc/proxyd.conf.5", top ? top : ".");
	f = fopen(path, "r");
	ck_assert_msg(f != NULL, "cannot open %s (set TOP_SRCDIR)", path);
	for (size_t i = 0; (name = cfg_directive_at(i, &ctx)) != NULL; i++) {
		size_t n = strlen(name);
		int found = 0;

		rewind(f);
		while (!found && fgets(line, sizeof(line), f) != NULL)
			found = strncmp(line, ".B ", 3) == 0 && strncmp(line + 3, name, n) == 0 &&
			        (line[3 + n] == ' ' || line[3 + n] == '\n');
		ck_assert_msg(found, "directive \"%s\" is not documented in %s", name, path);
	}
	fclose(f);
}
END_TEST

static Suite *
cfg_suite(void)
{
	Suite *s = suite_create("cfg");
	TCase *tc;

	tc = tcase_create("values");
	tcase_add_loop_test(tc, test_size_ok, 0, (int)(sizeof(size_ok) / sizeof(size_ok[0])));
	tcase_add_loop_test(tc, test_size_bad, 0, (int)(sizeof(size_bad) / sizeof(size_bad[0])));
	tcase_add_loop_test(tc, test_size_huge, 0, (int)(sizeof(size_huge) / sizeof(size_huge[0])));
	tcase_add_loop_test(tc, test_duration_ok, 0, (int)(sizeof(dur_ok) / sizeof(dur_ok[0])));
	tcase_add_loop_test(tc, test_duration_bad, 0, (int)(sizeof(dur_bad) / sizeof(dur_bad[0])));
	suite_add_tcase(s, tc);

	tc = tcase_create("load");
	tcase_add_checked_fixture(tc, unit_tmpdir_setup, unit_tmpdir_teardown);
	tcase_add_test(tc, test_full);
	tcase_add_test(tc, test_admin);
	tcase_add_test(tc, test_defaults);
	tcase_add_test(tc, test_workers_auto);
	tcase_add_test(tc, test_error_log_levels);
	tcase_add_test(tc, test_syntax);
	tcase_add_test(tc, test_values_edge);
	tcase_add_test(tc, test_access_log);
	tcase_add_test(tc, test_user_unknown);
	tcase_add_test(tc, test_user_files);
	tcase_add_test(tc, test_refs);
	tcase_add_test(tc, test_generation);
	tcase_add_test(tc, test_main_file_missing);
	tcase_add_test(tc, test_nul_byte);
	tcase_add_test(tc, test_balance);
	tcase_add_test(tc, test_load_buffer);
	suite_add_tcase(s, tc);

	tc = tcase_create("include");
	tcase_add_checked_fixture(tc, unit_tmpdir_setup, unit_tmpdir_teardown);
	tcase_add_test(tc, test_include_glob);
	tcase_add_test(tc, test_include_relative);
	tcase_add_test(tc, test_include_absolute);
	tcase_add_test(tc, test_include_same_file_twice);
	tcase_add_test(tc, test_include_missing);
	tcase_add_test(tc, test_include_cycle);
	tcase_add_test(tc, test_include_depth);
	tcase_add_test(tc, test_include_errors_in_file);
	suite_add_tcase(s, tc);

	tc = tcase_create("errors");
	tcase_add_checked_fixture(tc, unit_tmpdir_setup, unit_tmpdir_teardown);
	tcase_add_test(tc, test_limits);
	tcase_add_loop_test(tc, test_errors, 0, (int)(sizeof(errors) / sizeof(errors[0])));
	tcase_add_test(tc, test_error_first_place);
	suite_add_tcase(s, tc);

	tc = tcase_create("tables");
	tcase_add_test(tc, test_directives_unique);
	tcase_add_test(tc, test_directives_documented);
	tcase_add_test(tc, test_addr_from_ip);
	suite_add_tcase(s, tc);

	tc = tcase_create("resolver");
	tcase_add_checked_fixture(tc, unit_tmpdir_setup, unit_tmpdir_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_unknown_host);
	suite_add_tcase(s, tc);

	return s;
}

int
main(void)
{
	return unit_main("test_cfg", cfg_suite());
}
