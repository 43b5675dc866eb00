#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <sys/types.h>

#include <crypt.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "auth.h"

/* Longest decoded "user:password" accepted; longer credentials are AUTH_MALFORMED. */
#define AUTH_MAX_CREDENTIALS 1024

struct auth_user {
	char *name;
	char *hash;
	size_t hash_len;
};

struct auth_db {
	struct auth_user *users; /* sorted by name (strcmp) */
	size_t nusers;
	uint64_t generation;
	atomic_uint_fast64_t verifications;
};

struct auth_entry {
	unsigned char key[32];
	uint64_t expires_ms; /* 0: empty */
};

struct auth_cache {
	pthread_mutex_t lock;
	struct auth_entry *slots;
	size_t mask;
	uint64_t ttl_ms;
	unsigned char secret[32];
	uint64_t (*now)(void *);
	void *now_arg;
	atomic_uint_fast64_t hits;
};

static atomic_uint_fast64_t auth_generations;

/* ---- users file ----------------------------------------------------------------------- */

static int
auth_b64char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '/';
}

/*
 * Whether hash is one of the accepted crypt(3) formats, complete. Returns NULL or a static
 * reason.
 */
static const char *
auth_hash_invalid(const char *hash)
{
	const char *last = strrchr(hash, '$'), *p;
	size_t want;

	if (*hash == '\0')
		return "empty hash";
	if (strncmp(hash, "$y$", 3) == 0)
		want = 43;
	else if (strncmp(hash, "$6$", 3) == 0)
		want = 86;
	else if (strncmp(hash, "$2b$", 4) == 0 || strncmp(hash, "$2y$", 4) == 0)
		want = 53; /* 22 of salt and 31 of hash after "$2b$NN$" */
	else
		return "unsupported hash (use yescrypt $y$, bcrypt $2b$ or SHA-512 $6$)";
	if (crypt_checksalt(hash) != CRYPT_SALT_OK)
		return "malformed hash";
	for (p = hash; *p != '\0'; p++)
		if (!auth_b64char((unsigned char)*p) && *p != '$' && *p != '=')
			return "malformed hash";
	if (strlen(last + 1) != want)
		return "malformed hash (truncated?)";
	for (p = last + 1; *p != '\0'; p++)
		if (!auth_b64char((unsigned char)*p))
			return "malformed hash";
	return NULL;
}

static int
auth_user_cmp(const void *a, const void *b)
{
	const struct auth_user *x = a, *y = b;

	return strcmp(x->name, y->name);
}

void
auth_db_free(struct auth_db *db)
{
	size_t i;

	if (db == NULL)
		return;
	for (i = 0; i < db->nusers; i++) {
		free(db->users[i].name);
		free(db->users[i].hash);
	}
	free(db->users);
	free(db);
}

size_t
auth_db_count(const struct auth_db *db)
{
	return db->nusers;
}

uint64_t
auth_db_verifications(const struct auth_db *db)
{
	return atomic_load(&db->verifications);
}

static int
auth_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

struct auth_db *
auth_db_load(const char *path, char **err)
{
	struct auth_db *db;
	FILE *f;
	char *line = NULL;
	size_t cap = 0, alloc = 0, lineno = 0, i;
	ssize_t n;
	const char *why = NULL;

	*err = NULL;
	db = calloc(1, sizeof(*db));
	if (db == NULL) {
		*err = strdup("out of memory");
		return NULL;
	}
	f = fopen(path, "r");
	if (f == NULL) {
		if (asprintf(err, "%s: %s", path, strerror(errno)) == -1)
			*err = NULL;
		free(db);
		return NULL;
	}
	while ((n = getline(&line, &cap, f)) != -1) {
		char *s = line, *e = line + n, *colon;
		struct auth_user *u;

		lineno++;
		if (e > s && e[-1] == '\n')
			e--;
		while (e > s && auth_blank(e[-1]))
			e--;
		while (s < e && auth_blank(*s))
			s++;
		*e = '\0';
		if (s == e || *s == '#')
			continue;
		if (memchr(s, '\0', (size_t)(e - s)) != NULL) {
			why = "NUL byte";
			goto bad;
		}
		colon = strchr(s, ':');
		if (colon == NULL) {
			why = "expected user:hash";
			goto bad;
		}
		if (colon == s) {
			why = "empty user name";
			goto bad;
		}
		for (i = 0; s + i < colon; i++) {
			unsigned char c = (unsigned char)s[i];

			if (c < 0x20 || c == 0x7f) {
				why = "control character in user name";
				goto bad;
			}
		}
		*colon = '\0';
		if ((why = auth_hash_invalid(colon + 1)) != NULL)
			goto bad;
		if (db->nusers == alloc) {
			size_t nalloc = alloc == 0 ? 16 : alloc * 2;
			struct auth_user *nu = realloc(db->users, nalloc * sizeof(*nu));

			if (nu == NULL) {
				why = "out of memory";
				goto bad;
			}
			db->users = nu;
			alloc = nalloc;
		}
		u = &db->users[db->nusers];
		u->name = strdup(s);
		u->hash = strdup(colon + 1);
		if (u->name == NULL || u->hash == NULL) {
			free(u->name);
			free(u->hash);
			why = "out of memory";
			goto bad;
		}
		u->hash_len = strlen(u->hash);
		db->nusers++;
	}
	if (ferror(f)) {
		if (asprintf(err, "%s: %s", path, strerror(errno)) == -1)
			*err = NULL;
		goto fail;
	}
	if (db->nusers == 0) {
		if (asprintf(err, "%s: no users", path) == -1)
			*err = NULL;
		goto fail;
	}
	qsort(db->users, db->nusers, sizeof(*db->users), auth_user_cmp);
	for (i = 1; i < db->nusers; i++) {
		if (strcmp(db->users[i - 1].name, db->users[i].name) == 0) {
			if (asprintf(err, "%s: duplicate user \"%s\"", path, db->users[i].name) ==
			    -1)
				*err = NULL;
			goto fail;
		}
	}
	free(line);
	fclose(f);
	db->generation = atomic_fetch_add(&auth_generations, 1) + 1;
	return db;
bad:
	if (asprintf(err, "%s:%zu: %s", path, lineno, why) == -1)
		*err = NULL;
fail:
	if (line != NULL)
		OPENSSL_cleanse(line, cap);
	free(line);
	fclose(f);
	auth_db_free(db);
	return NULL;
}

static const struct auth_user *
auth_db_find(const struct auth_db *db, const char *name)
{
	struct auth_user key = {.name = (char *)(uintptr_t)name};

	return bsearch(&key, db->users, db->nusers, sizeof(*db->users), auth_user_cmp);
}

/* ---- cache ----------------------------------------------------------------------------- */

static uint64_t
auth_monotonic_ms(void *arg)
{
	struct timespec ts;

	(void)arg;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

struct auth_cache *
auth_cache_new(size_t nentries, uint64_t ttl_ms)
{
	struct auth_cache *c;
	size_t n = 1;

	if (nentries == 0)
		nentries = AUTH_CACHE_DEFAULT_SIZE;
	if (nentries > ((size_t)1 << 24))
		nentries = (size_t)1 << 24;
	while (n < nentries)
		n <<= 1;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	c->slots = calloc(n, sizeof(*c->slots));
	if (c->slots == NULL || RAND_bytes(c->secret, sizeof(c->secret)) != 1 ||
	    pthread_mutex_init(&c->lock, NULL) != 0) {
		free(c->slots);
		free(c);
		return NULL;
	}
	c->mask = n - 1;
	c->ttl_ms = ttl_ms != 0 ? ttl_ms : AUTH_CACHE_DEFAULT_TTL_MS;
	c->now = auth_monotonic_ms;
	return c;
}

void
auth_cache_free(struct auth_cache *c)
{
	if (c == NULL)
		return;
	pthread_mutex_destroy(&c->lock);
	OPENSSL_cleanse(c->slots, (c->mask + 1) * sizeof(*c->slots));
	free(c->slots);
	OPENSSL_cleanse(c->secret, sizeof(c->secret));
	free(c);
}

void
auth_cache_set_clock(struct auth_cache *c, uint64_t (*now)(void *), void *arg)
{
	c->now = now != NULL ? now : auth_monotonic_ms;
	c->now_arg = now != NULL ? arg : NULL;
}

uint64_t
auth_cache_hits(const struct auth_cache *c)
{
	return atomic_load(&c->hits);
}

/* key = SHA-256(secret || generation || credentials) */
static int
auth_cache_key(const struct auth_cache *c, const struct auth_db *db, const char *cred, size_t len,
               unsigned char key[32])
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char gen[8];
	unsigned int klen = 0;
	int ok;
	size_t i;

	if (md == NULL)
		return -1;
	for (i = 0; i < 8; i++)
		gen[i] = (unsigned char)(db->generation >> (8 * i));
	ok = EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 &&
	     EVP_DigestUpdate(md, c->secret, sizeof(c->secret)) == 1 &&
	     EVP_DigestUpdate(md, gen, sizeof(gen)) == 1 && EVP_DigestUpdate(md, cred, len) == 1 &&
	     EVP_DigestFinal_ex(md, key, &klen) == 1 && klen == 32;
	EVP_MD_CTX_free(md);
	return ok ? 0 : -1;
}

static size_t
auth_cache_slot(const struct auth_cache *c, const unsigned char key[32])
{
	uint64_t h = 0;
	size_t i;

	for (i = 0; i < 8; i++)
		h = h << 8 | key[i];
	return (size_t)(h & c->mask);
}

static int
auth_cache_lookup(struct auth_cache *c, const unsigned char key[32])
{
	struct auth_entry *e = &c->slots[auth_cache_slot(c, key)];
	uint64_t now = c->now(c->now_arg);
	int hit;

	pthread_mutex_lock(&c->lock);
	hit = e->expires_ms != 0 && now < e->expires_ms &&
	      CRYPTO_memcmp(e->key, key, sizeof(e->key)) == 0;
	if (e->expires_ms != 0 && now >= e->expires_ms) {
		OPENSSL_cleanse(e, sizeof(*e));
		e->expires_ms = 0;
	}
	pthread_mutex_unlock(&c->lock);
	if (hit)
		atomic_fetch_add(&c->hits, 1);
	return hit;
}

static void
auth_cache_store(struct auth_cache *c, const unsigned char key[32])
{
	struct auth_entry *e = &c->slots[auth_cache_slot(c, key)];
	uint64_t expires = c->now(c->now_arg) + c->ttl_ms;

	pthread_mutex_lock(&c->lock);
	memcpy(e->key, key, sizeof(e->key));
	e->expires_ms = expires != 0 ? expires : 1;
	pthread_mutex_unlock(&c->lock);
}

/* ---- checking --------------------------------------------------------------------------- */

static int
auth_b64val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/*
 * Canonical padded base64 (RFC 4648 4) of in[0..len) into out (room for len / 4 * 3).
 * Returns the decoded length or -1.
 */
static long
auth_b64decode(const char *in, size_t len, unsigned char *out)
{
	size_t i, o = 0, pad = 0;

	if (len == 0 || len % 4 != 0)
		return -1;
	if (in[len - 1] == '=')
		pad = in[len - 2] == '=' ? 2 : 1;
	for (i = 0; i < len; i += 4) {
		int v[4], k, last = i + 4 == len;
		uint32_t w = 0;

		for (k = 0; k < 4; k++) {
			if (last && k >= 4 - (int)pad) {
				v[k] = 0;
				continue;
			}
			v[k] = auth_b64val((unsigned char)in[i + (size_t)k]);
			if (v[k] == -1)
				return -1;
			w = w << 6 | (uint32_t)v[k];
		}
		if (last && pad > 0) {
			/* the bits beyond the last byte must be zero (canonical form) */
			if (pad == 2 && (v[1] & 0x0f) != 0)
				return -1;
			if (pad == 1 && (v[2] & 0x03) != 0)
				return -1;
			w <<= 6 * pad;
		}
		out[o++] = (unsigned char)(w >> 16);
		if (!(last && pad == 2))
			out[o++] = (unsigned char)(w >> 8);
		if (!(last && pad > 0))
			out[o++] = (unsigned char)w;
	}
	return (long)o;
}

static int
auth_scheme_basic(const char *v, size_t len, size_t *skip)
{
	static const char basic[] = "basic";
	size_t i;

	if (len < 6)
		return 0;
	for (i = 0; i < 5; i++) {
		char c = v[i] >= 'A' && v[i] <= 'Z' ? (char)(v[i] + ('a' - 'A')) : v[i];

		if (c != basic[i])
			return 0;
	}
	if (v[5] != ' ')
		return 0;
	for (i = 5; i < len && v[i] == ' '; i++)
		;
	*skip = i;
	return 1;
}

/* Run crypt_r(password, hash) and compare in constant time. 1: match. */
static int
auth_verify(const struct auth_db *db, const char *password, const char *hash, size_t hash_len)
{
	struct crypt_data *cd = calloc(1, sizeof(*cd));
	const char *out;
	int ok = 0;

	if (cd == NULL)
		return 0;
	atomic_fetch_add((atomic_uint_fast64_t *)(uintptr_t)&db->verifications, 1);
	out = crypt_r(password, hash, cd);
	if (out != NULL && out[0] != '*' && strlen(out) == hash_len)
		ok = CRYPTO_memcmp(out, hash, hash_len) == 0;
	OPENSSL_clear_free(cd, sizeof(*cd));
	return ok;
}

enum auth_result
auth_check(const struct auth_db *db, const char *value, size_t len, char *user, size_t usersize,
           struct auth_cache *cache)
{
	unsigned char cred[AUTH_MAX_CREDENTIALS + 3]; /* base64 rounds up; one for the NUL */
	unsigned char key[32];
	const struct auth_user *u;
	const char *colon;
	enum auth_result r = AUTH_MALFORMED;
	size_t skip, ulen, i;
	long n;
	int have_key = 0;

	if (usersize > 0)
		user[0] = '\0';
	if (!auth_scheme_basic(value, len, &skip))
		return AUTH_MALFORMED;
	value += skip;
	len -= skip;
	if (len / 4 * 3 > AUTH_MAX_CREDENTIALS + 2)
		return AUTH_MALFORMED;
	n = auth_b64decode(value, len, cred);
	if (n == -1 || n > AUTH_MAX_CREDENTIALS)
		goto done;
	for (i = 0; i < (size_t)n; i++)
		if (cred[i] < 0x20 || cred[i] == 0x7f)
			goto done;
	colon = memchr(cred, ':', (size_t)n);
	if (colon == NULL)
		goto done;
	cred[n] = '\0';
	ulen = (size_t)(colon - (const char *)cred);
	r = AUTH_DENIED;
	if (usersize > 0) {
		size_t c = ulen < usersize - 1 ? ulen : usersize - 1;

		memcpy(user, cred, c);
		user[c] = '\0';
	}
	if (ulen == 0 || (usersize > 0 && ulen >= usersize))
		goto done;
	if (cache != NULL && auth_cache_key(cache, db, (const char *)cred, (size_t)n, key) == 0) {
		have_key = 1;
		if (auth_cache_lookup(cache, key)) {
			r = AUTH_OK;
			goto done;
		}
	}
	cred[ulen] = '\0';
	u = auth_db_find(db, (const char *)cred);
	if (u == NULL) {
		/* pay a hash anyway, so a fast answer does not tell which users exist */
		(void)auth_verify(db, (const char *)cred + ulen + 1, db->users[0].hash,
		                  db->users[0].hash_len);
		goto done;
	}
	if (auth_verify(db, (const char *)cred + ulen + 1, u->hash, u->hash_len)) {
		r = AUTH_OK;
		if (have_key)
			auth_cache_store(cache, key);
	}
done:
	OPENSSL_cleanse(cred, sizeof(cred));
	OPENSSL_cleanse(key, sizeof(key));
	if (r == AUTH_MALFORMED && usersize > 0)
		user[0] = '\0';
	return r;
}

int
auth_challenge(const char *realm, char *buf, size_t size)
{
	static const char head[] = "Basic realm=\"", tail[] = "\", charset=\"UTF-8\"";
	size_t o = sizeof(head) - 1, i;

	if (size < sizeof(head))
		return -1;
	memcpy(buf, head, o);
	for (i = 0; realm[i] != '\0'; i++) {
		unsigned char c = (unsigned char)realm[i];

		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return -1;
		if (c == '"' || c == '\\') {
			if (o + 1 >= size)
				return -1;
			buf[o++] = '\\';
		}
		if (o + 1 >= size)
			return -1;
		buf[o++] = (char)c;
	}
	if (o + sizeof(tail) > size || o + sizeof(tail) - 1 > 0x7fffffff)
		return -1;
	memcpy(buf + o, tail, sizeof(tail));
	return (int)(o + sizeof(tail) - 1);
}
