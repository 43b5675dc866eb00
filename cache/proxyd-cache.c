/*
 * proxyd-cache.c - the cache admin tool: stats, ls, show, purge and verify on a cache
 * directory, also while proxyd has it open (LMDB's lock file arbitrates; the tool opens
 * the store without a writer thread and writes only in short purge transactions).
 *
 * Contract: URLs on the command line are normalized as the daemon normalizes them
 * (rules_url_normalize), so `purge http://Example.com:80/a/../b` purges
 * http://example.com/b. Exit status: 0 success, 1 problems found (verify) or nothing
 * matched (show), 2 usage or errors.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rules.h"
#include "store.h"

static _Noreturn void
usage(void)
{
	fprintf(stderr, "usage: proxyd-cache -d PATH stats\n"
	                "       proxyd-cache -d PATH ls [--prefix URL]\n"
	                "       proxyd-cache -d PATH show URL\n"
	                "       proxyd-cache -d PATH purge URL | --prefix URL | --all\n"
	                "       proxyd-cache -d PATH verify\n");
	exit(2);
}

/* Normalize url into a malloc'd string, or exit. A prefix may lack a path. */
static char *
normalize(const char *url, size_t *len)
{
	size_t n = strlen(url);
	char *out = malloc(n + 2);
	long r;

	if (out == NULL) {
		perror("proxyd-cache");
		exit(2);
	}
	r = rules_url_normalize(url, n, out, n + 2);
	if (r < 0) {
		fprintf(stderr, "proxyd-cache: %s: not a valid URL\n", url);
		exit(2);
	}
	out[r] = 0;
	*len = (size_t)r;
	return out;
}

static int
print_ls(void *arg, const char *kind, const struct cache_meta *m)
{
	(void)arg;
	if (strcmp(kind, "vary") == 0)
		printf("vary    -      %12s %.*s (Vary: %.*s)\n", "-", (int)m->url_len, m->url,
		       (int)m->vary_len, m->vary);
	else
		printf("object  %3d  %12llu %.*s%s%.*s\n", m->status,
		       (unsigned long long)m->body_len, (int)m->url_len, m->url,
		       m->vary_len > 0 ? " vary=" : "", (int)m->vary_len, m->vary);
	return 0;
}

struct show {
	const char *url;
	size_t len;
	int found;
};

static int
print_show(void *arg, const char *kind, const struct cache_meta *m)
{
	struct show *sh = arg;
	char date[30];
	int64_t age;

	if (m->url_len != sh->len || memcmp(m->url, sh->url, sh->len) != 0)
		return 0;
	sh->found++;
	printf("url: %.*s\nkind: %s\nkey: ", (int)m->url_len, m->url, kind);
	for (int i = 0; i < CACHE_KEY_LEN; i++)
		printf("%02x", m->key.b[i]);
	printf("\n");
	if (strcmp(kind, "vary") == 0) {
		printf("vary: %.*s\n\n", (int)m->vary_len, m->vary);
		return 0;
	}
	cache_http_date_format(m->response_time, date);
	age = cache_fresh_age(&m->fresh, (int64_t)time(NULL));
	printf("status: %d\nbody: %llu bytes in chunks of %u\nid: %llu\nstored: %s\n", m->status,
	       (unsigned long long)m->body_len, m->chunk_size, (unsigned long long)m->id, date);
	printf("age: %lld\nlifetime: %lld (%s)\n", (long long)age, (long long)m->fresh.lifetime,
	       age < m->fresh.lifetime ? "fresh" : "stale");
	if (m->vary_len > 0)
		printf("vary: %.*s\n", (int)m->vary_len, m->vary);
	printf("headers:\n%.*s\n", (int)m->headers_len, m->headers);
	return 0;
}

static void
print_problem(void *arg, const char *msg)
{
	(void)arg;
	printf("%s\n", msg);
}

int
main(int argc, char **argv)
{
	struct cache_store_params p;
	struct cache_store *s;
	const char *path = NULL, *cmd;
	char *err = NULL, *url;
	size_t len;
	long n;
	int i = 1, rc = 0;

	if (argc >= 3 && strcmp(argv[1], "-d") == 0) {
		path = argv[2];
		i = 3;
	}
	if (path == NULL || i >= argc)
		usage();
	cmd = argv[i++];
	memset(&p, 0, sizeof(p));
	p.path = path;
	p.flags = CACHE_F_RDONLY;
	if ((s = cache_store_open(&p, &err)) == NULL) {
		fprintf(stderr, "proxyd-cache: %s\n", err);
		free(err);
		return 2;
	}
	if (strcmp(cmd, "stats") == 0 && i == argc) {
		struct cache_stats st;

		if (cache_stats(s, &st) == -1) {
			fprintf(stderr, "proxyd-cache: %s: cannot read the statistics\n", path);
			rc = 2;
		} else
			printf("entries %llu\nbytes %llu\nmap_size %llu\npage_size %llu\n"
			       "pages_used %llu\nlast_pgno %llu\nreaders %llu/%llu\n",
			       (unsigned long long)st.entries, (unsigned long long)st.bytes,
			       (unsigned long long)st.map_size, (unsigned long long)st.page_size,
			       (unsigned long long)st.pages_used, (unsigned long long)st.last_pgno,
			       (unsigned long long)st.num_readers,
			       (unsigned long long)st.max_readers);
		if (rc == 0 && st.run_started != 0) {
			uint64_t looked = st.run_hits + st.run_misses;
			char when[32];
			time_t t = (time_t)st.run_started;
			struct tm tm;

			strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
			printf("max_size %llu\nsince %s\nhits %llu\nmisses %llu\nhit_ratio "
			       "%.3f\nstored %llu\n"
			       "dropped %llu\nevicted %llu\n",
			       (unsigned long long)st.run_max_size, when,
			       (unsigned long long)st.run_hits, (unsigned long long)st.run_misses,
			       looked ? (double)st.run_hits / (double)looked : 0.0,
			       (unsigned long long)st.run_stored,
			       (unsigned long long)st.run_dropped,
			       (unsigned long long)st.run_evicted);
		}
	} else if (strcmp(cmd, "ls") == 0) {
		url = NULL;
		len = 0;
		if (i + 2 == argc && strcmp(argv[i], "--prefix") == 0)
			url = normalize(argv[i + 1], &len);
		else if (i != argc)
			usage();
		if (cache_walk(s, url != NULL ? url : "", len, print_ls, NULL) == -1) {
			fprintf(stderr, "proxyd-cache: %s: cannot list the cache\n", path);
			rc = 2;
		}
		free(url);
	} else if (strcmp(cmd, "show") == 0 && i + 1 == argc) {
		struct show sh;

		sh.url = url = normalize(argv[i], &sh.len);
		sh.found = 0;
		if (cache_walk(s, url, sh.len, print_show, &sh) == -1)
			rc = 2;
		else if (sh.found == 0) {
			fprintf(stderr, "proxyd-cache: %s: not in the cache\n", url);
			rc = 1;
		}
		free(url);
	} else if (strcmp(cmd, "purge") == 0 && i < argc) {
		if (i + 1 == argc && strcmp(argv[i], "--all") == 0)
			n = cache_purge_all(s, &err);
		else if (i + 2 == argc && strcmp(argv[i], "--prefix") == 0) {
			url = normalize(argv[i + 1], &len);
			n = cache_purge_prefix(s, url, len, &err);
			free(url);
		} else if (i + 1 == argc && argv[i][0] != '-') {
			url = normalize(argv[i], &len);
			n = cache_purge_url(s, url, len, &err);
			free(url);
		} else
			usage();
		if (n == -1) {
			fprintf(stderr, "proxyd-cache: %s: %s\n", path, err);
			free(err);
			rc = 2;
		} else
			printf("purged %ld\n", n);
	} else if (strcmp(cmd, "verify") == 0 && i == argc) {
		n = cache_verify(s, print_problem, NULL);
		if (n == -1) {
			fprintf(stderr, "proxyd-cache: %s: cannot read the cache\n", path);
			rc = 2;
		} else if (n > 0) {
			printf("%ld problems\n", n);
			rc = 1;
		} else
			printf("ok\n");
	} else
		usage();
	cache_store_close(s);
	return rc;
}
