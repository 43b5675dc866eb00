/*
 * store.c - the LMDB cache store (see store.h for the contract, the on-disk format and
 * the eviction algorithm).
 *
 * Threads: workers call cache_get/cache_read (short read transactions from a small pool
 * of reset transactions, MDB_NOTLS) and cache_put_* (which only queue). One writer thread
 * owns every write transaction of the daemon: it takes all queued operations as one batch,
 * applies them in one transaction, evicts down to max_size, and commits. A put's
 * writer-side state is saved when a batch first touches it, so a batch that fails with
 * MDB_MAP_FULL is rolled back in memory and retried after an eviction; a second failure
 * drops the puts of the batch (their chunks are deleted, or left to the pending cleanup).
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <lmdb.h>
#include <openssl/evp.h>

#include "store.h"

#define REC_MAGIC      0x31435850u /* "PXC1" */
#define REC_VERSION    1
#define REC_HDR        112
#define REC_OBJECT     CACHE_META_OBJECT
#define REC_VARY       CACHE_META_VARY
#define URL_KEY_MAX    400
#define FORMAT_VERSION 1
#define HITS_BITS      20
#define RESCUE_MAX     64
#define RTXN_POOL      32
#define LOST_MAX       256 /* transactions a fault abandoned, kept reachable */

enum op_type { OP_CHUNK, OP_COMMIT, OP_ABORT, OP_UPDATE, OP_INVALIDATE, OP_NOTIFY };

struct op {
	struct op *next;
	enum op_type type;
	struct cache_put *put;
	size_t cost; /* bytes charged to the queue */
	uint32_t index;
	struct cache_key key; /* OP_UPDATE */
	uint64_t id;          /* OP_UPDATE */
	void (*fn)(void *);   /* OP_NOTIFY */
	void *arg;
	size_t len;
	unsigned char data[]; /* chunk, record (update) or URL (invalidate) */
};

/* What the writer tells the log callback, each kind at most once a minute. */
enum wlog_kind { WLOG_FULL, WLOG_FAIL, WLOG_AGAIN, WLOG_KINDS };

struct acct {
	uint64_t bytes, entries;
};

struct cache_put {
	struct cache_store *s;
	struct cache_key key, primary;
	unsigned char *rec, *vrec; /* object record, vary record (NULL: no Vary) */
	size_t rec_len, vrec_len;
	struct op *cur; /* chunk being filled (worker side) */
	struct op *end; /* the commit or abort, allocated up front so that ending never fails */
	uint64_t total;
	int64_t expected_len;
	uint32_t next_index;
	int dead; /* worker side: dropped */
	/* writer side, with the copy saved when a batch first touches the put */
	uint64_t id, w_bytes, saved_id, saved_bytes, gen;
	uint32_t w_chunks, saved_chunks;
	int w_dead, saved_dead;
	struct cache_put *touched;
};

struct cache_store {
	MDB_env *env;
	MDB_dbi meta, chunk, lru, url, pending, info;
	unsigned flags;
	uint64_t max_size, max_object_size;
	size_t queue_max;
	uint32_t chunk_size;
	unsigned page_size;
	uint64_t map_pages; /* the map in pages, less the reserve that only recovery may use */

	pthread_mutex_t lock; /* queue, counters of queued work, read txn pool */
	pthread_cond_t wake, done;
	struct op *head, **tail;
	size_t queued;
	uint64_t enqueued, processed;
	int stop;
	pthread_t writer;
	int writer_running;
	MDB_txn *rpool[RTXN_POOL];
	int nrpool;
	int writer_gone; /* the store broke and the writer ended: enqueue() drops in place */

	/* a read of the map faulted (SIGBUS): see "a file cut under the map" below */
	atomic_int broken;
	MDB_txn *lost[LOST_MAX]; /* read transactions a fault abandoned (kept reachable) */
	int nlost;
	struct cache_store *next_abandoned;

	/* writer thread only */
	uint64_t next_id, next_seq, gen;
	struct acct acct;
	struct cache_put *touched;

	/* the log callback, and when each kind of message was last given (writer only) */
	char *path;
	void (*log)(void *arg, const char *msg);
	void *log_arg;
	int64_t logged[WLOG_KINDS];
	int failing; /* the last batch could not be stored */

	_Atomic uint8_t *hits; /* eviction clock bits */
	_Atomic uint64_t n_hits, n_misses, n_stored, n_dropped, n_evicted;
	/* writer thread only: the counters last written to info "run" (cache_stats' run_*) */
	int64_t run_started;
	struct timespec run_saved_at;
	uint64_t run_saved[5];
};

/* ---- small helpers --------------------------------------------------------------- */

static void seterr(char **err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
seterr(char **err, const char *fmt, ...)
{
	va_list ap;
	char buf[512];

	if (err == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	*err = strdup(buf);
}

static void
put_le32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static void
put_le64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t
get_le32(const unsigned char *p)
{
	uint32_t v = 0;

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	memcpy(&v, p, sizeof(v));
#else
	for (int i = 3; i >= 0; i--)
		v = v << 8 | p[i];
#endif
	return v;
}

static uint64_t
get_le64(const unsigned char *p)
{
	uint64_t v = 0;

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	memcpy(&v, p, sizeof(v));
#else
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
#endif
	return v;
}

static void
put_be64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (56 - 8 * i));
}

static uint64_t
get_be64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static void
chunk_key(unsigned char k[12], uint64_t id, uint32_t index)
{
	put_be64(k, id);
	for (int i = 0; i < 4; i++)
		k[8 + i] = (unsigned char)(index >> (24 - 8 * i));
}

static size_t
url_key(unsigned char *k, const char *url, size_t len, const struct cache_key *key)
{
	size_t n = len < URL_KEY_MAX ? len : URL_KEY_MAX;

	memcpy(k, url, n);
	k[n] = 0;
	memcpy(k + n + 1, key->b, CACHE_KEY_LEN);
	return n + 1 + CACHE_KEY_LEN;
}

/* What a value costs in the map, roughly: node overhead, or whole overflow pages. */
static uint64_t
val_cost(const struct cache_store *s, size_t len)
{
	if (len > s->page_size / 2)
		return ((len + 16 + s->page_size - 1) / s->page_size) * s->page_size;
	return len + 32;
}

static uint64_t
entry_cost(const struct cache_store *s, size_t rec_len, size_t url_len)
{
	return val_cost(s, rec_len) + (url_len < URL_KEY_MAX ? url_len : URL_KEY_MAX) + 160;
}

static int64_t
now_sec(void)
{
	return (int64_t)time(NULL);
}

/* A message for the log callback, at most once a minute per kind (writer thread only). */
static void wlog(struct cache_store *s, enum wlog_kind kind, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void
wlog(struct cache_store *s, enum wlog_kind kind, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int64_t now = now_sec();

	if (s->log == NULL || (s->logged[kind] != 0 && now - s->logged[kind] < 60))
		return;
	s->logged[kind] = now;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	s->log(s->log_arg, buf);
}

/* ---- keys ------------------------------------------------------------------------ */

/*
 * SHA-256 for keys: the implementation is fetched once (EVP_sha256() in a digest init
 * makes OpenSSL 3 look the algorithm up again on every call), and each thread keeps one
 * digest context, freed when the thread ends.
 */
static pthread_once_t sha_once = PTHREAD_ONCE_INIT;
static const EVP_MD *sha_md;
static EVP_MD *sha_fetched;
static pthread_key_t sha_ctx_key;
static int sha_key_ok;

static void
sha_ctx_free(void *c)
{
	EVP_MD_CTX_free(c);
}

static void
sha_init(void)
{
	sha_fetched = EVP_MD_fetch(NULL, "SHA256", NULL);
	sha_md = sha_fetched != NULL ? sha_fetched : EVP_sha256();
	sha_key_ok = pthread_key_create(&sha_ctx_key, sha_ctx_free) == 0;
}

/* This thread's digest context, initialized for SHA-256; NULL when out of memory. */
static EVP_MD_CTX *
sha_begin(void)
{
	EVP_MD_CTX *c;

	pthread_once(&sha_once, sha_init);
	if (!sha_key_ok)
		return NULL;
	if ((c = pthread_getspecific(sha_ctx_key)) == NULL) {
		if ((c = EVP_MD_CTX_new()) == NULL)
			return NULL;
		if (pthread_setspecific(sha_ctx_key, c) != 0) {
			EVP_MD_CTX_free(c);
			return NULL;
		}
	}
	return EVP_DigestInit_ex(c, sha_md, NULL) == 1 ? c : NULL;
}

int
cache_key_make(struct cache_key *k, const char *method, size_t method_len, const char *url,
               size_t url_len)
{
	EVP_MD_CTX *c = sha_begin();
	unsigned int n = CACHE_KEY_LEN;
	/* GET and HEAD share a class; other methods are never stored but keep their own */
	int get = (method_len == 3 && memcmp(method, "GET", 3) == 0) ||
	          (method_len == 4 && memcmp(method, "HEAD", 4) == 0);
	int ok = c != NULL && EVP_DigestUpdate(c, get ? "G" : method, get ? 1 : method_len) == 1 &&
	         EVP_DigestUpdate(c, "", 1) == 1 && EVP_DigestUpdate(c, url, url_len) == 1 &&
	         EVP_DigestFinal_ex(c, k->b, &n) == 1;

	return ok ? 0 : -1;
}

static void
vary_emit(void *arg, const void *p, size_t len)
{
	EVP_DigestUpdate(arg, p, len);
}

static int
variant_key(struct cache_key *out, const struct cache_key *primary, const char *names,
            size_t names_len, const struct cache_header *req, size_t nreq)
{
	EVP_MD_CTX *c = sha_begin();
	unsigned int n = CACHE_KEY_LEN;

	if (c == NULL)
		return -1;
	EVP_DigestUpdate(c, primary->b, CACHE_KEY_LEN);
	cache_vary_key(names, names_len, req, nreq, vary_emit, c);
	return EVP_DigestFinal_ex(c, out->b, &n) == 1 ? 0 : -1;
}

/* ---- records --------------------------------------------------------------------- */

/*
 * Build a record: header, url, headers block, vary names, etag. id, seq and body_len are
 * filled by the writer. NULL on ENOMEM.
 */
static unsigned char *
rec_build(size_t *lenp, int kind, int status, const struct cache_header *h, size_t nh,
          const char *url, size_t url_len, const char *vary, size_t vary_len, int64_t reqt,
          int64_t respt, const struct cache_fresh *f, uint32_t chunk_size)
{
	const struct cache_header *et = cache_header_find(h, nh, "etag");
	const struct cache_header *lm = cache_header_find(h, nh, "last-modified");
	size_t hlen = 0, etag_len = et != NULL ? et->value_len : 0, len;
	struct cache_fresh none = {0, 0, 0, -1, -1, 0};
	unsigned char *r, *p;

	if (f == NULL)
		f = &none;
	for (size_t i = 0; i < nh; i++)
		hlen += h[i].name_len + 2 + h[i].value_len + 2;
	len = REC_HDR + url_len + hlen + vary_len + etag_len;
	if (url_len > UINT32_MAX || hlen > UINT32_MAX || (r = calloc(1, len)) == NULL)
		return NULL;
	put_le32(r, REC_MAGIC);
	r[4] = REC_VERSION;
	r[5] = (unsigned char)kind;
	r[6] = (unsigned char)(status & 0xff);
	r[7] = (unsigned char)(status >> 8);
	put_le32(r + 32, chunk_size);
	put_le32(r + 36, f->flags);
	put_le64(r + 40, (uint64_t)reqt);
	put_le64(r + 48, (uint64_t)respt);
	put_le64(r + 56, (uint64_t)f->lifetime);
	put_le64(r + 64, (uint64_t)f->initial_age);
	put_le64(r + 72, (uint64_t)f->swr);
	put_le64(r + 80, (uint64_t)f->sie);
	put_le64(r + 88, (uint64_t)(lm != NULL ? cache_http_date(lm->value, lm->value_len) : -1));
	put_le32(r + 96, (uint32_t)url_len);
	put_le32(r + 100, (uint32_t)hlen);
	put_le32(r + 104, (uint32_t)vary_len);
	put_le32(r + 108, (uint32_t)etag_len);
	p = r + REC_HDR;
	memcpy(p, url, url_len);
	p += url_len;
	for (size_t i = 0; i < nh; i++) {
		memcpy(p, h[i].name, h[i].name_len);
		p += h[i].name_len;
		*p++ = ':', *p++ = ' ';
		memcpy(p, h[i].value, h[i].value_len);
		p += h[i].value_len;
		*p++ = '\r', *p++ = '\n';
	}
	memcpy(p, vary, vary_len);
	p += vary_len;
	if (etag_len > 0)
		memcpy(p, et->value, etag_len);
	*lenp = len;
	return r;
}

/*
 * The freshness values cache_policy_freshness() can give are below 2^45 s (deltas
 * saturate near 2^43, dates end in year 9999); Last-Modified is -1 or a date of years
 * 0-9999. A record with values outside these (corrupt: a bad disk, another program)
 * would overflow the age arithmetic of cache_policy_use() and the date formatting of
 * cache_policy_validators(), so it is rejected like bad lengths.
 */
#define REC_TIME_MAX ((int64_t)1 << 45)
#define REC_DATE_MIN (-62167219200) /* 0000-01-01T00:00:00Z */
#define REC_DATE_MAX 253402300799   /* 9999-12-31T23:59:59Z */

static int
rec_in(int64_t v, int64_t min, int64_t max)
{
	return v >= min && v <= max;
}

/* Decode a record into m (slices point into p): its kind, or -1 if malformed. */
static int
rec_decode(const unsigned char *p, size_t len, struct cache_meta *m)
{
	uint64_t need;

	if (len < REC_HDR || get_le32(p) != REC_MAGIC || p[4] != REC_VERSION ||
	    (p[5] != REC_OBJECT && p[5] != REC_VARY))
		return -1;
	need = (uint64_t)REC_HDR + get_le32(p + 96) + get_le32(p + 100) + get_le32(p + 104) +
	       get_le32(p + 108);
	if (need != len)
		return -1;
	m->status = p[6] | p[7] << 8;
	m->id = get_le64(p + 8);
	m->body_len = get_le64(p + 24);
	m->chunk_size = get_le32(p + 32);
	m->fresh.flags = get_le32(p + 36);
	m->request_time = (int64_t)get_le64(p + 40);
	m->response_time = (int64_t)get_le64(p + 48);
	m->fresh.response_time = m->response_time;
	m->fresh.lifetime = (int64_t)get_le64(p + 56);
	m->fresh.initial_age = (int64_t)get_le64(p + 64);
	m->fresh.swr = (int64_t)get_le64(p + 72);
	m->fresh.sie = (int64_t)get_le64(p + 80);
	m->last_modified = (int64_t)get_le64(p + 88);
	m->url = (const char *)p + REC_HDR;
	m->url_len = get_le32(p + 96);
	m->headers = m->url + m->url_len;
	m->headers_len = get_le32(p + 100);
	m->vary = m->headers + m->headers_len;
	m->vary_len = get_le32(p + 104);
	m->etag_len = get_le32(p + 108);
	m->etag = m->etag_len > 0 ? m->vary + m->vary_len : NULL;
	if (p[5] == REC_OBJECT && m->body_len > 0 && m->chunk_size == 0)
		return -1;
	if (!rec_in(m->request_time, 0, REC_TIME_MAX) ||
	    !rec_in(m->response_time, 0, REC_TIME_MAX) ||
	    !rec_in(m->fresh.lifetime, 0, REC_TIME_MAX) ||
	    !rec_in(m->fresh.initial_age, 0, REC_TIME_MAX) ||
	    !rec_in(m->fresh.swr, -1, REC_TIME_MAX) || !rec_in(m->fresh.sie, -1, REC_TIME_MAX) ||
	    (m->last_modified != -1 && !rec_in(m->last_modified, REC_DATE_MIN, REC_DATE_MAX)))
		return -1;
	return p[5];
}

int
cache_meta_decode(const void *rec, size_t len, struct cache_meta *m)
{
	return rec_decode(rec, len, m);
}

static uint64_t
rec_seq(const unsigned char *p)
{
	return get_le64(p + 16);
}

void
cache_meta_free(struct cache_meta *m)
{
	free(m);
}

long
cache_meta_headers(const struct cache_meta *m, struct cache_header *out, size_t cap)
{
	const char *p = m->headers, *end = m->headers + m->headers_len;
	size_t n = 0;

	while (p < end) {
		const char *eol = memchr(p, '\r', (size_t)(end - p));
		const char *colon = memchr(p, ':', (size_t)(end - p));

		if (eol == NULL || colon == NULL || colon > eol || n == cap)
			return -1;
		out[n].name = p;
		out[n].name_len = (size_t)(colon - p);
		out[n].value = colon + 2 <= eol ? colon + 2 : eol;
		out[n].value_len = (size_t)(eol - out[n].value);
		n++;
		p = eol + 2;
	}
	return (long)n;
}

/* A malloc'd copy of a record as a cache_meta; *kind (if not NULL) is the record's kind. */
static struct cache_meta *
meta_copy(const MDB_val *v, const struct cache_key *key, int *kind, void *volatile *held)
{
	struct cache_meta *m = malloc(sizeof(*m) + v->mv_size);
	int k;

	if (m == NULL)
		return NULL;
	*held = m; /* the copy reads the map: a fault there frees m (guard_run) */
	memcpy(m + 1, v->mv_data, v->mv_size);
	*held = NULL;
	if ((k = rec_decode((const unsigned char *)(m + 1), v->mv_size, m)) == -1) {
		free(m);
		return NULL;
	}
	m->key = *key;
	if (kind != NULL)
		*kind = k;
	return m;
}

/* ---- accounting and the info table ------------------------------------------------ */

static int
info_get(struct cache_store *s, MDB_txn *txn, const char *name, uint64_t *v)
{
	MDB_val k = {strlen(name), (void *)(uintptr_t)name}, d;
	int rc = mdb_get(txn, s->info, &k, &d);

	if (rc == MDB_NOTFOUND) {
		*v = 0;
		return 0;
	}
	if (rc != 0)
		return rc;
	if (d.mv_size != 8)
		return MDB_CORRUPTED;
	*v = get_le64(d.mv_data);
	return 0;
}

static int
info_put(struct cache_store *s, MDB_txn *txn, const char *name, uint64_t v)
{
	unsigned char b[8];
	MDB_val k = {strlen(name), (void *)(uintptr_t)name}, d = {8, b};

	put_le64(b, v);
	return mdb_put(txn, s->info, &k, &d, 0);
}

static int
acct_load(struct cache_store *s, MDB_txn *txn, struct acct *a)
{
	int rc = info_get(s, txn, "bytes", &a->bytes);

	return rc != 0 ? rc : info_get(s, txn, "entries", &a->entries);
}

static int
acct_store(struct cache_store *s, MDB_txn *txn, const struct acct *a)
{
	int rc = info_put(s, txn, "bytes", a->bytes);

	return rc != 0 ? rc : info_put(s, txn, "entries", a->entries);
}

static void
acct_sub(uint64_t *v, uint64_t d)
{
	*v = *v > d ? *v - d : 0;
}

/* ---- deletion ---------------------------------------------------------------------- */

/* Delete every chunk of id; bytes freed go off a. */
static int
del_chunks(struct cache_store *s, MDB_txn *txn, uint64_t id, struct acct *a)
{
	MDB_cursor *c;
	unsigned char kb[12];
	MDB_val k, v;
	int rc = mdb_cursor_open(txn, s->chunk, &c);

	if (rc != 0)
		return rc;
	for (;;) {
		chunk_key(kb, id, 0);
		k.mv_size = 12;
		k.mv_data = kb;
		rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
		if (rc == MDB_NOTFOUND ||
		    (rc == 0 && (k.mv_size != 12 || get_be64(k.mv_data) != id))) {
			rc = 0;
			break;
		}
		if (rc != 0)
			break;
		acct_sub(&a->bytes, val_cost(s, v.mv_size));
		if ((rc = mdb_cursor_del(c, 0)) != 0)
			break;
	}
	mdb_cursor_close(c);
	return rc;
}

static int
del_pending(struct cache_store *s, MDB_txn *txn, uint64_t id)
{
	unsigned char kb[8];
	MDB_val k = {8, kb};
	int rc;

	put_be64(kb, id);
	rc = mdb_del(txn, s->pending, &k, NULL);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Delete the record at key (meta v, which this invalidates) and all that hangs on it. */
static int
del_entry(struct cache_store *s, MDB_txn *txn, const struct cache_key *key, const MDB_val *v,
          struct acct *a)
{
	struct cache_meta m;
	unsigned char ub[URL_KEY_MAX + 1 + CACHE_KEY_LEN], sb[8];
	MDB_val k;
	size_t ulen, rec_len = v->mv_size;
	uint64_t seq;
	int kind = rec_decode(v->mv_data, v->mv_size, &m), rc;

	k.mv_size = CACHE_KEY_LEN;
	k.mv_data = (void *)(uintptr_t)key->b;
	if (kind == -1) { /* unreadable: remove the record only */
		rc = mdb_del(txn, s->meta, &k, NULL);
		acct_sub(&a->bytes, val_cost(s, rec_len));
		acct_sub(&a->entries, 1);
		return rc;
	}
	seq = rec_seq(v->mv_data);
	ulen = url_key(ub, m.url, m.url_len, key);
	acct_sub(&a->bytes, entry_cost(s, rec_len, m.url_len));
	acct_sub(&a->entries, 1);
	if ((rc = mdb_del(txn, s->meta, &k, NULL)) != 0)
		return rc;
	k.mv_size = ulen;
	k.mv_data = ub;
	if ((rc = mdb_del(txn, s->url, &k, NULL)) != 0 && rc != MDB_NOTFOUND)
		return rc;
	put_be64(sb, seq);
	k.mv_size = 8;
	k.mv_data = sb;
	if ((rc = mdb_del(txn, s->lru, &k, NULL)) != 0 && rc != MDB_NOTFOUND)
		return rc;
	if (kind == REC_OBJECT && m.id != 0)
		return del_chunks(s, txn, m.id, a);
	return 0;
}

static int
del_key(struct cache_store *s, MDB_txn *txn, const struct cache_key *key, struct acct *a)
{
	MDB_val k = {CACHE_KEY_LEN, (void *)(uintptr_t)key->b}, v;
	int rc = mdb_get(txn, s->meta, &k, &v);

	if (rc == MDB_NOTFOUND)
		return 0;
	return rc != 0 ? rc : del_entry(s, txn, key, &v, a);
}

/* Write record rec (id, seq set here) at key, with its lru and url index records. */
static int
add_entry(struct cache_store *s, MDB_txn *txn, const struct cache_key *key, unsigned char *rec,
          size_t rec_len, uint64_t id, uint64_t body_len, struct acct *a)
{
	struct cache_meta m;
	unsigned char ub[URL_KEY_MAX + 1 + CACHE_KEY_LEN], sb[8];
	uint64_t seq = s->next_seq++;
	MDB_val k = {CACHE_KEY_LEN, (void *)(uintptr_t)key->b}, v = {rec_len, rec}, e = {0, NULL};
	int rc;

	put_le64(rec + 8, id);
	put_le64(rec + 16, seq);
	put_le64(rec + 24, body_len);
	rec_decode(rec, rec_len, &m);
	if ((rc = mdb_put(txn, s->meta, &k, &v, 0)) != 0)
		return rc;
	k.mv_size = url_key(ub, m.url, m.url_len, key);
	k.mv_data = ub;
	if ((rc = mdb_put(txn, s->url, &k, &e, 0)) != 0)
		return rc;
	put_be64(sb, seq);
	k.mv_size = 8;
	k.mv_data = sb;
	v.mv_size = CACHE_KEY_LEN;
	v.mv_data = (void *)(uintptr_t)key->b;
	if ((rc = mdb_put(txn, s->lru, &k, &v, 0)) != 0)
		return rc;
	a->bytes += entry_cost(s, rec_len, m.url_len);
	a->entries++;
	return 0;
}

/* ---- eviction ---------------------------------------------------------------------- */

static size_t
hit_index(const struct cache_key *k)
{
	return ((size_t)k->b[0] | (size_t)k->b[1] << 8 | (size_t)k->b[2] << 16) &
	       ((1u << HITS_BITS) - 1);
}

static void
hit_mark(struct cache_store *s, const struct cache_key *k)
{
	_Atomic uint8_t *h = &s->hits[hit_index(k)];

	if (atomic_load_explicit(h, memory_order_relaxed) == 0)
		atomic_store_explicit(h, 1, memory_order_relaxed);
}

static int
hit_take(struct cache_store *s, const struct cache_key *k)
{
	_Atomic uint8_t *h = &s->hits[hit_index(k)];

	return atomic_exchange_explicit(h, 0, memory_order_relaxed) != 0;
}

/*
 * CLOCK over insertion order: take the head of lru; a hit entry is moved to the tail
 * (at most RESCUE_MAX per call), any other is deleted; until a->bytes <= target and at
 * least min_count entries went.
 */
static int
evict(struct cache_store *s, MDB_txn *txn, struct acct *a, uint64_t target, unsigned min_count)
{
	unsigned rescued = 0, evicted = 0;
	int rc = 0;

	while (a->bytes > target || evicted < min_count) {
		MDB_cursor *c;
		MDB_val k, v, mk, mv;
		struct cache_key key;
		unsigned char sb[8];
		uint64_t seq;

		if ((rc = mdb_cursor_open(txn, s->lru, &c)) != 0)
			return rc;
		rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
		mdb_cursor_close(c);
		if (rc == MDB_NOTFOUND)
			return 0;
		if (rc != 0)
			return rc;
		if (k.mv_size != 8 || v.mv_size != CACHE_KEY_LEN) {
			if ((rc = mdb_del(txn, s->lru, &k, NULL)) != 0)
				return rc;
			continue;
		}
		seq = get_be64(k.mv_data);
		memcpy(key.b, v.mv_data, CACHE_KEY_LEN);
		put_be64(sb, seq);
		k.mv_data = sb;
		mk.mv_size = CACHE_KEY_LEN;
		mk.mv_data = key.b;
		rc = mdb_get(txn, s->meta, &mk, &mv);
		if (rc == MDB_NOTFOUND ||
		    (rc == 0 && (mv.mv_size < REC_HDR || rec_seq(mv.mv_data) != seq))) {
			/* a stale clock record */
			if ((rc = mdb_del(txn, s->lru, &k, NULL)) != 0)
				return rc;
			continue;
		}
		if (rc != 0)
			return rc;
		if (rescued < RESCUE_MAX && hit_take(s, &key)) {
			unsigned char *copy = malloc(mv.mv_size), nb[8];
			uint64_t nseq = s->next_seq++;
			MDB_val nv, nk = {8, nb};

			if (copy == NULL)
				return ENOMEM;
			memcpy(copy, mv.mv_data, mv.mv_size);
			put_le64(copy + 16, nseq);
			nv.mv_size = mv.mv_size;
			nv.mv_data = copy;
			put_be64(nb, nseq);
			rc = mdb_del(txn, s->lru, &k, NULL);
			if (rc == 0)
				rc = mdb_put(txn, s->meta, &mk, &nv, 0);
			free(copy);
			nv.mv_size = CACHE_KEY_LEN;
			nv.mv_data = key.b;
			if (rc == 0)
				rc = mdb_put(txn, s->lru, &nk, &nv, 0);
			if (rc != 0)
				return rc;
			rescued++;
			continue;
		}
		if ((rc = del_entry(s, txn, &key, &mv, a)) != 0)
			return rc;
		evicted++;
		atomic_fetch_add_explicit(&s->n_evicted, 1, memory_order_relaxed);
	}
	return rc;
}

/* ---- a file cut under the map (SIGBUS) -------------------------------------------- */

/*
 * LMDB reads through a shared map of data.mdb. When the file is truncated, or its disk
 * goes away, while the map is in use, a read of a page past the new end raises SIGBUS,
 * which would kill the daemon. So every code path here that reads the map runs in
 * guard_run(): it arms a jump buffer of the calling thread, and a process-wide handler
 * (installed by cache_store_open(), unless it is in place) jumps back to it. The store is then
 * "broken": the first fault logs once, every later call behaves as a miss or a drop
 * without touching the environment again, and the writer thread drains its queue and
 * ends. A SIGBUS that did not come from an armed region (or was sent by kill) is handed
 * to the handler that was there before ours (a sanitizer's), or kills as SIG_DFL did.
 *
 * Jumping out of LMDB abandons whatever it was doing: a read transaction keeps its
 * reader slot (in lock.mdb) until the process ends, a cursor or a half-copied page is
 * never freed. That is acceptable only because the store is abandoned with it: nothing
 * in this process reads that environment again, and cache_store_close() of a broken
 * store does not mdb_env_close() it (that could fault again, and closing the lock file
 * would drop this process's fcntl locks, which a store reopened on the same files by a
 * reload shares). The environment, its map (address space only) and the transactions
 * the faults abandoned stay reachable from a list of abandoned stores, so that
 * LeakSanitizer does not report them. The writer thread is the only one that holds
 * LMDB's write lock in the daemon; it ends after a fault, and the robust mutex of a
 * thread that ended is taken over by the next writer (proxyd-cache, say).
 *
 * The handler does only what is async-signal-safe: it reads a thread-local pointer,
 * siglongjmp()s, or calls sigaction() and raise(). It is installed with SA_NODEFER and
 * the jump buffers do not save the signal mask (no system call per guarded call), so
 * SIGBUS is never left blocked after a jump: a blocked synchronous SIGBUS would kill.
 * For the same reason the first guard of each thread unblocks SIGBUS in it (the daemon's
 * workers start with every signal blocked).
 */
static void rtxn_put(struct cache_store *s, MDB_txn *t);

static _Thread_local sigjmp_buf *volatile guard_jmp;
static _Thread_local int guard_unblocked; /* this thread has SIGBUS unblocked */
static struct sigaction guard_old;        /* the SIGBUS action before ours */
static pthread_mutex_t guard_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t abandoned_lock = PTHREAD_MUTEX_INITIALIZER;
static struct cache_store *abandoned; /* broken stores, closed but kept (see above) */

static void
guard_handler(int sig, siginfo_t *si, void *uc)
{
	sigjmp_buf *jb = guard_jmp;
	struct sigaction dfl;

	/* si_code > 0: raised by the kernel for this thread's access, not sent by kill */
	if (jb != NULL && si != NULL && si->si_code > 0) {
		guard_jmp = NULL;
		siglongjmp(*jb, 1);
	}
	if ((guard_old.sa_flags & SA_SIGINFO) && guard_old.sa_sigaction != NULL) {
		guard_old.sa_sigaction(sig, si, uc);
		return;
	}
	if (!(guard_old.sa_flags & SA_SIGINFO) && guard_old.sa_handler != SIG_DFL &&
	    guard_old.sa_handler != SIG_IGN) {
		guard_old.sa_handler(sig);
		return;
	}
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	sigemptyset(&dfl.sa_mask);
	sigaction(sig, &dfl, NULL);
	raise(sig); /* not blocked (SA_NODEFER): dies here, as without us */
}

/* At every open: ours, unless it is already (something may have replaced it since). */
static void
guard_install(void)
{
	struct sigaction sa, cur;

	pthread_mutex_lock(&guard_lock);
	if (sigaction(SIGBUS, NULL, &cur) == 0 &&
	    !((cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == guard_handler)) {
		memset(&sa, 0, sizeof(sa));
		sa.sa_sigaction = guard_handler;
		sa.sa_flags = SA_SIGINFO | SA_NODEFER;
		sigemptyset(&sa.sa_mask);
		guard_old = cur;
		sigaction(SIGBUS, &sa, NULL);
	}
	pthread_mutex_unlock(&guard_lock);
}

static int
store_broken(struct cache_store *s)
{
	return atomic_load_explicit(&s->broken, memory_order_acquire) != 0;
}

int
cache_store_broken(struct cache_store *s)
{
	return s != NULL && store_broken(s);
}

/*
 * What a guarded call holds, for the fault path: the read transaction it uses (set by
 * the caller or by fn, cleared by fn when it gives the transaction back).
 */
struct gcall {
	MDB_txn *txn;        /* a read transaction of the pool, NULL: none */
	void *volatile held; /* memory fn allocated and holds only in a local: freed on a fault */
};

/*
 * Run fn(s, g) with a fault on the map turned into a broken store: 0 when fn ran (its
 * results are in the structure g begins), -1 when the store is broken: before the call
 * (g->txn goes back to the pool: it was not in use) or by a fault in fn (g->txn is kept,
 * never touched again). g->txn is NULL after -1. Nests: an inner guard catches the
 * faults of its own call.
 */
static int
guard_run(struct cache_store *s, void (*fn)(struct cache_store *s, struct gcall *g),
          struct gcall *g)
{
	sigjmp_buf jb;
	sigjmp_buf *prev = guard_jmp;

	if (store_broken(s)) {
		if (g->txn != NULL)
			rtxn_put(s, g->txn);
		g->txn = NULL;
		return -1;
	}
	if (!guard_unblocked) {
		sigset_t bus;

		sigemptyset(&bus);
		sigaddset(&bus, SIGBUS);
		pthread_sigmask(SIG_UNBLOCK, &bus, NULL);
		guard_unblocked = 1;
	}
	if (sigsetjmp(jb, 0) != 0) {
		guard_jmp = prev;
		pthread_mutex_lock(&s->lock);
		if (g->txn != NULL && s->nlost < LOST_MAX)
			s->lost[s->nlost++] = g->txn;
		pthread_mutex_unlock(&s->lock);
		g->txn = NULL;
		free(g->held);
		g->held = NULL;
		if (atomic_exchange(&s->broken, 1) == 0 && s->log != NULL) {
			char msg[600];

			snprintf(msg, sizeof(msg),
			         "%s: bus error reading data.mdb (the file was truncated or its "
			         "disk "
			         "failed): cache disabled, serving uncached until it is reopened",
			         s->path);
			s->log(s->log_arg, msg);
		}
		return -1;
	}
	guard_jmp = &jb;
	fn(s, g);
	guard_jmp = prev;
	return 0;
}

/* ---- read transactions ----------------------------------------------------------- */

/*
 * mdb_txn_begin(); in the tool, a map grown by the daemon (MDB_MAP_RESIZED) is adopted
 * and the call retried: the tool is single-threaded and holds no transaction here.
 */
static int
txn_begin(struct cache_store *s, unsigned flags, MDB_txn **t)
{
	int rc = mdb_txn_begin(s->env, NULL, flags, t);

	if (rc == MDB_MAP_RESIZED && (s->flags & CACHE_F_RDONLY) &&
	    mdb_env_set_mapsize(s->env, 0) == 0)
		rc = mdb_txn_begin(s->env, NULL, flags, t);
	return rc;
}

/*
 * A read transaction from the pool, renewed, or a new one, in *t (NULL on failure). A
 * pooled one is in *t while it is renewed (which reads the meta pages of the map), so
 * that a guard that catches a fault there finds it.
 */
static MDB_txn *
rtxn_get(struct cache_store *s, MDB_txn **t)
{
	*t = NULL;
	pthread_mutex_lock(&s->lock);
	if (s->nrpool > 0)
		*t = s->rpool[--s->nrpool];
	pthread_mutex_unlock(&s->lock);
	if (*t != NULL) {
		if (mdb_txn_renew(*t) == 0)
			return *t;
		mdb_txn_abort(*t);
		*t = NULL;
	}
	if (txn_begin(s, MDB_RDONLY, t) != 0)
		*t = NULL;
	return *t;
}

static void
rtxn_put(struct cache_store *s, MDB_txn *t)
{
	mdb_txn_reset(t);
	pthread_mutex_lock(&s->lock);
	if (s->nrpool < RTXN_POOL) {
		s->rpool[s->nrpool++] = t;
		t = NULL;
	}
	pthread_mutex_unlock(&s->lock);
	if (t != NULL)
		mdb_txn_abort(t);
}

/* ---- the queue ------------------------------------------------------------------- */

static void finish_batch(struct cache_store *s, struct op *ops, int committed);

/*
 * Append op; unless force, refuse (-1) when the queue is over its byte budget. When a
 * broken store's writer has ended, refuse, or (force) drop op at once, in this thread.
 */
static int
enqueue(struct cache_store *s, struct op *op, int force)
{
	pthread_mutex_lock(&s->lock);
	if (s->writer_gone) {
		if (!force) {
			pthread_mutex_unlock(&s->lock);
			return -1;
		}
		op->next = NULL;
		s->queued += op->cost;
		s->enqueued++;
		pthread_mutex_unlock(&s->lock);
		if (op->put != NULL)
			op->put->w_dead = 1;
		finish_batch(s, op, 0);
		return 0;
	}
	if (!force && s->queued + op->cost > s->queue_max) {
		pthread_mutex_unlock(&s->lock);
		return -1;
	}
	op->next = NULL;
	*s->tail = op;
	s->tail = &op->next;
	s->queued += op->cost;
	s->enqueued++;
	pthread_cond_signal(&s->wake);
	pthread_mutex_unlock(&s->lock);
	return 0;
}

static struct op *
op_new(enum op_type type, struct cache_put *p, size_t cap)
{
	struct op *op = malloc(sizeof(*op) + cap);

	if (op == NULL)
		return NULL;
	memset(op, 0, sizeof(*op));
	op->type = type;
	op->put = p;
	op->cost = sizeof(*op) + cap;
	return op;
}

void
cache_store_flush(struct cache_store *s)
{
	uint64_t target;

	if (s == NULL || !s->writer_running)
		return;
	pthread_mutex_lock(&s->lock);
	target = s->enqueued;
	while (s->processed < target)
		pthread_cond_wait(&s->done, &s->lock);
	pthread_mutex_unlock(&s->lock);
}

void
cache_store_notify(struct cache_store *s, void (*fn)(void *arg), void *arg)
{
	struct op *op;

	if (s == NULL || !s->writer_running || (op = op_new(OP_NOTIFY, NULL, 0)) == NULL) {
		fn(arg);
		return;
	}
	op->fn = fn;
	op->arg = arg;
	enqueue(s, op, 1);
}

/* ---- puts (worker side) ---------------------------------------------------------- */

struct cache_put *
cache_put_begin(struct cache_store *s, const struct cache_key *key, const struct cache_object *obj)
{
	struct cache_put *p;
	char vary[1024];
	long vlen;

	if (s == NULL || (s->flags & CACHE_F_RDONLY) || store_broken(s) ||
	    (obj->expected_len >= 0 && (uint64_t)obj->expected_len > s->max_object_size))
		goto drop;
	vlen = cache_vary_names(obj->headers, obj->nheaders, vary, sizeof(vary));
	if (vlen < 0 || (p = calloc(1, sizeof(*p))) == NULL)
		goto drop;
	p->s = s;
	if ((p->end = op_new(OP_ABORT, p, 0)) == NULL)
		goto fail;
	p->expected_len = obj->expected_len;
	p->primary = *key;
	p->key = *key;
	if (vlen > 0) {
		if (variant_key(&p->key, key, vary, (size_t)vlen, obj->req_headers,
		                obj->nreq_headers) == -1)
			goto fail;
		p->vrec =
		        rec_build(&p->vrec_len, REC_VARY, 0, NULL, 0, obj->url, obj->url_len, vary,
		                  (size_t)vlen, obj->request_time, obj->response_time, NULL, 0);
		if (p->vrec == NULL)
			goto fail;
	}
	p->rec = rec_build(&p->rec_len, REC_OBJECT, obj->status, obj->headers, obj->nheaders,
	                   obj->url, obj->url_len, vary, (size_t)vlen, obj->request_time,
	                   obj->response_time, &obj->fresh, s->chunk_size);
	if (p->rec == NULL)
		goto fail;
	return p;
fail:
	free(p->end);
	free(p->vrec);
	free(p);
drop:
	if (s != NULL)
		atomic_fetch_add_explicit(&s->n_dropped, 1, memory_order_relaxed);
	return NULL;
}

static int
put_flush_chunk(struct cache_put *p)
{
	struct op *op = p->cur, *small;

	p->cur = NULL;
	/* the queue's budget counts what is allocated: trim a short last chunk */
	if (op->len < p->s->chunk_size && (small = realloc(op, sizeof(*op) + op->len)) != NULL)
		op = small;
	op->cost = sizeof(*op) + op->len;
	if (enqueue(p->s, op, 0) == -1) {
		free(op);
		p->dead = 1;
		return -1;
	}
	return 0;
}

int
cache_put_write(struct cache_put *p, const void *data, size_t len)
{
	const unsigned char *d = data;

	if (p->dead)
		return -1;
	if (p->total + len > p->s->max_object_size) {
		p->dead = 1;
		free(p->cur);
		p->cur = NULL;
		return -1;
	}
	p->total += len;
	while (len > 0) {
		size_t n;

		if (p->cur == NULL) {
			if ((p->cur = op_new(OP_CHUNK, p, p->s->chunk_size)) == NULL) {
				p->dead = 1;
				return -1;
			}
			p->cur->index = p->next_index++;
		}
		n = p->s->chunk_size - p->cur->len;
		if (n > len)
			n = len;
		memcpy(p->cur->data + p->cur->len, d, n);
		p->cur->len += n;
		d += n;
		len -= n;
		if (p->cur->len == p->s->chunk_size && put_flush_chunk(p) == -1)
			return -1;
	}
	return 0;
}

/* Hand the end of the put to the writer (never refused); the writer frees p. */
static void
put_end(struct cache_put *p, enum op_type type)
{
	struct op *op = p->end;

	p->end = NULL;
	op->type = type;
	op->len = (size_t)p->total;
	enqueue(p->s, op, 1);
}

int
cache_put_commit(struct cache_put *p)
{
	if (p->expected_len >= 0 && p->total != (uint64_t)p->expected_len)
		p->dead = 1; /* incomplete */
	if (!p->dead && p->cur != NULL && p->cur->len > 0)
		put_flush_chunk(p);
	if (p->dead) {
		free(p->cur);
		p->cur = NULL;
		atomic_fetch_add_explicit(&p->s->n_dropped, 1, memory_order_relaxed);
		put_end(p, OP_ABORT);
		return -1;
	}
	put_end(p, OP_COMMIT);
	return 0;
}

void
cache_put_abort(struct cache_put *p)
{
	free(p->cur);
	p->cur = NULL;
	put_end(p, OP_ABORT);
}

int
cache_update(struct cache_store *s, const struct cache_meta *m, const struct cache_header *h,
             size_t n, int64_t request_time, int64_t response_time, const struct cache_fresh *fresh)
{
	unsigned char *rec;
	size_t len;
	struct op *op;

	if (s == NULL || (s->flags & CACHE_F_RDONLY) || store_broken(s))
		return -1;
	rec = rec_build(&len, REC_OBJECT, m->status, h, n, m->url, m->url_len, m->vary, m->vary_len,
	                request_time, response_time, fresh, m->chunk_size);
	if (rec == NULL || (op = op_new(OP_UPDATE, NULL, len)) == NULL) {
		free(rec);
		return -1;
	}
	memcpy(op->data, rec, len);
	free(rec);
	op->len = len;
	op->key = m->key;
	op->id = m->id;
	if (enqueue(s, op, 0) == -1) {
		free(op);
		return -1;
	}
	return 0;
}

int
cache_invalidate_url(struct cache_store *s, const char *url, size_t len)
{
	struct op *op;

	if (s == NULL || (s->flags & CACHE_F_RDONLY) || store_broken(s) ||
	    (op = op_new(OP_INVALIDATE, NULL, len)) == NULL)
		return -1;
	memcpy(op->data, url, len);
	op->len = len;
	if (enqueue(s, op, 0) == -1) {
		free(op);
		return -1;
	}
	return 0;
}

/* ---- the writer ------------------------------------------------------------------- */

static void
put_touch(struct cache_store *s, struct cache_put *p)
{
	if (p->gen == s->gen)
		return;
	p->gen = s->gen;
	p->saved_id = p->id;
	p->saved_bytes = p->w_bytes;
	p->saved_chunks = p->w_chunks;
	p->saved_dead = p->w_dead;
	p->touched = s->touched;
	s->touched = p;
}

static void
rollback(struct cache_store *s)
{
	for (struct cache_put *p = s->touched; p != NULL; p = p->touched) {
		p->id = p->saved_id;
		p->w_bytes = p->saved_bytes;
		p->w_chunks = p->saved_chunks;
		p->w_dead = p->saved_dead;
		p->gen = 0;
	}
	s->touched = NULL;
}

static void
touched_clear(struct cache_store *s)
{
	struct cache_put *p = s->touched, *next;

	for (; p != NULL; p = next) {
		next = p->touched;
		p->touched = NULL;
	}
	s->touched = NULL;
}

/* Collect the keys of every record of a URL (exact) or prefix into a growing array. */
struct keylist {
	struct cache_key *k;
	size_t n, cap;
};

static int
keylist_add(struct keylist *l, const unsigned char *k)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		struct cache_key *nk = realloc(l->k, cap * sizeof(*nk));

		if (nk == NULL)
			return ENOMEM;
		l->k = nk;
		l->cap = cap;
	}
	memcpy(l->k[l->n++].b, k, CACHE_KEY_LEN);
	return 0;
}

/*
 * Keys of up to max records whose URL equals (exact) or starts with p. URLs longer than
 * the index prefix are checked against the record.
 */
static int
url_scan(struct cache_store *s, MDB_txn *txn, const char *p, size_t len, int exact, size_t max,
         struct keylist *out)
{
	MDB_cursor *c;
	MDB_val k, v;
	size_t plen = len < URL_KEY_MAX ? len : URL_KEY_MAX;
	int rc = mdb_cursor_open(txn, s->url, &c), op = MDB_SET_RANGE;

	if (rc != 0)
		return rc;
	k.mv_size = plen > 0 ? plen : 1;
	k.mv_data = (void *)(uintptr_t)(plen > 0 ? p : "");
	if (plen == 0)
		op = MDB_FIRST;
	while (out->n < max && (rc = mdb_cursor_get(c, &k, &v, (MDB_cursor_op)op)) == 0) {
		const unsigned char *kb = k.mv_data;
		size_t ulen = k.mv_size - 1 - CACHE_KEY_LEN;

		op = MDB_NEXT;
		if (k.mv_size < 1 + CACHE_KEY_LEN)
			continue;
		if (ulen < plen || memcmp(kb, p, plen) != 0)
			break;
		if (exact && ulen != plen)
			break; /* the NUL after the URL sorts its records before longer URLs */
		{ /* an index record without its entry: remove it, or it would come back */
			MDB_val mk = {CACHE_KEY_LEN, (void *)(uintptr_t)(kb + ulen + 1)}, mv;

			rc = mdb_get(txn, s->meta, &mk, &mv);
			if (rc == MDB_NOTFOUND) {
				if ((rc = mdb_cursor_del(c, 0)) != 0)
					break;
				continue;
			}
			if (rc != 0)
				break;
		}
		if (len > URL_KEY_MAX || (exact && ulen == URL_KEY_MAX)) {
			MDB_val mk = {CACHE_KEY_LEN, (void *)(uintptr_t)(kb + ulen + 1)}, mv;
			struct cache_meta m;

			if (mdb_get(txn, s->meta, &mk, &mv) != 0 ||
			    rec_decode(mv.mv_data, mv.mv_size, &m) == -1 || m.url_len < len ||
			    memcmp(m.url, p, len) != 0 || (exact && m.url_len != len))
				continue;
		}
		if ((rc = keylist_add(out, kb + ulen + 1)) != 0)
			break;
	}
	mdb_cursor_close(c);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

static int
purge_in_txn(struct cache_store *s, MDB_txn *txn, const char *url, size_t len, int exact,
             size_t max, struct acct *a, size_t *count)
{
	struct keylist l = {NULL, 0, 0};
	int rc = url_scan(s, txn, url, len, exact, max, &l);

	for (size_t i = 0; rc == 0 && i < l.n; i++)
		rc = del_key(s, txn, &l.k[i], a);
	*count = l.n;
	free(l.k);
	return rc;
}

static int
apply_abort(struct cache_store *s, MDB_txn *txn, struct cache_put *p)
{
	int rc = 0;

	if (p->id != 0) {
		rc = del_chunks(s, txn, p->id, &s->acct);
		if (rc == 0)
			rc = del_pending(s, txn, p->id);
	}
	p->w_dead = 1;
	return rc;
}

static int
apply_commit(struct cache_store *s, MDB_txn *txn, struct cache_put *p, uint64_t body_len)
{
	MDB_val k, v;
	int rc;

	if (p->w_dead || p->w_bytes != body_len)
		return apply_abort(s, txn, p);
	if (p->id == 0)
		p->id = s->next_id++;
	if (p->vrec != NULL) {
		k.mv_size = CACHE_KEY_LEN;
		k.mv_data = p->primary.b;
		rc = mdb_get(txn, s->meta, &k, &v);
		if (rc == 0) {
			struct cache_meta m;

			/* an equal vary record stays where it is in the clock */
			if (rec_decode(v.mv_data, v.mv_size, &m) == REC_VARY &&
			    m.vary_len == get_le32(p->vrec + 104) &&
			    memcmp(m.vary, p->vrec + REC_HDR + get_le32(p->vrec + 96),
			           m.vary_len) == 0)
				goto variant;
			if ((rc = del_entry(s, txn, &p->primary, &v, &s->acct)) != 0)
				return rc;
		} else if (rc != MDB_NOTFOUND)
			return rc;
		if ((rc = add_entry(s, txn, &p->primary, p->vrec, p->vrec_len, 0, 0, &s->acct)) !=
		    0)
			return rc;
	}
variant:
	if ((rc = del_key(s, txn, &p->key, &s->acct)) != 0)
		return rc;
	if ((rc = add_entry(s, txn, &p->key, p->rec, p->rec_len, p->id, body_len, &s->acct)) != 0)
		return rc;
	return del_pending(s, txn, p->id);
}

static int
apply_chunk(struct cache_store *s, MDB_txn *txn, struct op *op)
{
	struct cache_put *p = op->put;
	unsigned char kb[12], tb[8];
	MDB_val k = {12, kb}, v = {op->len, op->data};
	int rc;

	if (p->w_dead)
		return 0;
	if (p->id == 0) {
		MDB_val pk = {8, kb}, pv = {8, tb};

		p->id = s->next_id++;
		put_be64(kb, p->id);
		put_le64(tb, (uint64_t)now_sec());
		if ((rc = mdb_put(txn, s->pending, &pk, &pv, 0)) != 0)
			return rc;
	}
	if (op->index != p->w_chunks) { /* cannot happen: the queue keeps order */
		p->w_dead = 1;
		return 0;
	}
	chunk_key(kb, p->id, op->index);
	if ((rc = mdb_put(txn, s->chunk, &k, &v, 0)) != 0)
		return rc;
	p->w_chunks++;
	p->w_bytes += op->len;
	s->acct.bytes += val_cost(s, op->len);
	return 0;
}

static int
apply_update(struct cache_store *s, MDB_txn *txn, struct op *op)
{
	MDB_val k = {CACHE_KEY_LEN, op->key.b}, v;
	struct cache_meta m;
	int rc = mdb_get(txn, s->meta, &k, &v);

	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc != 0)
		return rc;
	if (rec_decode(v.mv_data, v.mv_size, &m) != REC_OBJECT || m.id != op->id)
		return 0;
	acct_sub(&s->acct.bytes, val_cost(s, v.mv_size));
	put_le64(op->data + 8, m.id);
	put_le64(op->data + 16, rec_seq(v.mv_data));
	put_le64(op->data + 24, m.body_len);
	put_le32(op->data + 32, m.chunk_size);
	v.mv_size = op->len;
	v.mv_data = op->data;
	s->acct.bytes += val_cost(s, op->len);
	return mdb_put(txn, s->meta, &k, &v, 0);
}

static int
apply(struct cache_store *s, MDB_txn *txn, struct op *op, int degraded)
{
	size_t n;

	if (op->put != NULL)
		put_touch(s, op->put);
	switch (op->type) {
	case OP_CHUNK:
		return degraded ? 0 : apply_chunk(s, txn, op);
	case OP_COMMIT:
		if (degraded)
			return apply_abort(s, txn, op->put);
		return apply_commit(s, txn, op->put, op->len);
	case OP_ABORT:
		return apply_abort(s, txn, op->put);
	case OP_UPDATE:
		return degraded ? 0 : apply_update(s, txn, op);
	case OP_INVALIDATE:
		return purge_in_txn(s, txn, (const char *)op->data, op->len, 1, SIZE_MAX, &s->acct,
		                    &n);
	case OP_NOTIFY:
		return 0;
	}
	return 0;
}

/*
 * Pages in use in txn (every table, LMDB's own two, the meta pages) are above
 * s->map_pages: the batch may not commit, so that an eviction always finds the pages
 * its copy-on-write needs (a delete writes pages too; in a map full to the last page
 * nothing can be deleted, and the store would be wedged).
 */
static int
over_reserve(struct cache_store *s, MDB_txn *txn)
{
	MDB_dbi dbis[8] = {0, 1, s->meta, s->chunk, s->lru, s->url, s->pending, s->info};
	MDB_stat ms;
	uint64_t used = 2;

	for (int i = 0; i < 8; i++) {
		if (mdb_stat(txn, dbis[i], &ms) != 0)
			return 0;
		used += ms.ms_branch_pages + ms.ms_leaf_pages + ms.ms_overflow_pages;
	}
	return used > s->map_pages;
}

static int
run_batch(struct cache_store *s, struct op *ops, int degraded)
{
	MDB_txn *txn;
	int rc;

	s->gen++;
	if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0)
		return rc;
	rc = acct_load(s, txn, &s->acct);
	for (struct op *op = ops; rc == 0 && op != NULL; op = op->next)
		rc = apply(s, txn, op, degraded);
	if (rc == 0 && s->acct.bytes > s->max_size)
		rc = evict(s, txn, &s->acct, s->max_size - s->max_size / 32, 0);
	if (rc == 0)
		rc = acct_store(s, txn, &s->acct);
	if (rc == 0)
		rc = info_put(s, txn, "next_id", s->next_id);
	if (rc == 0)
		rc = info_put(s, txn, "next_seq", s->next_seq);
	if (rc == 0 && !degraded && over_reserve(s, txn))
		rc = MDB_MAP_FULL;
	if (rc != 0) {
		mdb_txn_abort(txn);
		rollback(s);
		return rc;
	}
	if ((rc = mdb_txn_commit(txn)) != 0) {
		rollback(s);
		return rc;
	}
	touched_clear(s);
	return 0;
}

/*
 * The map or the file system is full: eviction makes room (freed pages are reused, the
 * file need not grow). EFBIG is a file size limit (RLIMIT_FSIZE); LMDB reports a short
 * write, which is how a full file system often shows, as EIO.
 */
static int
is_full(int rc)
{
	return rc == MDB_MAP_FULL || rc == ENOSPC || rc == EDQUOT || rc == EFBIG || rc == EIO;
}

/*
 * MDB_MAP_FULL or a full file system: free the reader slots of dead processes (their
 * snapshots pin pages), then make room in a transaction of its own (a quarter of the
 * bytes). Returns 0 or the LMDB error; *n is the number of entries evicted.
 */
static int
evict_for_space(struct cache_store *s, uint64_t *n)
{
	MDB_txn *txn;
	struct acct a;
	uint64_t before = atomic_load(&s->n_evicted);
	int dead, rc;

	*n = 0;
	mdb_reader_check(s->env, &dead);
	if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0)
		return rc;
	if ((rc = acct_load(s, txn, &a)) == 0 &&
	    (rc = evict(s, txn, &a, a.bytes - a.bytes / 4, 1)) == 0 &&
	    (rc = acct_store(s, txn, &a)) == 0 &&
	    (rc = info_put(s, txn, "next_seq", s->next_seq)) == 0)
		rc = mdb_txn_commit(txn);
	else
		mdb_txn_abort(txn);
	*n = atomic_load(&s->n_evicted) - before;
	/*
	 * LMDB reuses the pages a transaction frees only two transactions later (the next
	 * one may still be read from the previous meta page): one more small commit, so
	 * that the retry finds them instead of growing the file or the map again.
	 */
	if (rc == 0 && mdb_txn_begin(s->env, NULL, 0, &txn) == 0) {
		if (info_put(s, txn, "next_seq", s->next_seq) == 0)
			mdb_txn_commit(txn);
		else
			mdb_txn_abort(txn);
	}
	return rc;
}

/*
 * Remove chunks that crashed processes left behind (the pending table), 256 ids per
 * transaction. Returns 1 when there may be more.
 */
static int
clean_pending_some(struct cache_store *s)
{
	MDB_txn *txn;
	MDB_cursor *c;
	MDB_val k, v;
	uint64_t ids[256];
	size_t n = 0;
	struct acct a;
	int rc;

	if (mdb_txn_begin(s->env, NULL, 0, &txn) != 0)
		return 0;
	if (mdb_cursor_open(txn, s->pending, &c) == 0) {
		rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
		while (rc == 0 && n < 256) {
			if (k.mv_size == 8)
				ids[n++] = get_be64(k.mv_data);
			rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
		}
		mdb_cursor_close(c);
	}
	rc = acct_load(s, txn, &a);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		rc = del_chunks(s, txn, ids[i], &a);
		if (rc == 0)
			rc = del_pending(s, txn, ids[i]);
	}
	if (rc == 0)
		rc = acct_store(s, txn, &a);
	if (rc == 0)
		rc = mdb_txn_commit(txn);
	else
		mdb_txn_abort(txn);
	return rc == 0 && n == 256;
}

static void
clean_pending(struct cache_store *s)
{
	while (clean_pending_some(s))
		;
}

static void
finish_batch(struct cache_store *s, struct op *ops, int committed)
{
	struct op *next;
	size_t cost = 0;
	uint64_t n = 0;

	for (struct op *op = ops; op != NULL; op = next) {
		next = op->next;
		cost += op->cost;
		n++;
		if (op->type == OP_COMMIT || op->type == OP_ABORT) {
			struct cache_put *p = op->put;

			if (op->type == OP_COMMIT)
				atomic_fetch_add_explicit(committed && !p->w_dead ? &s->n_stored
				                                                  : &s->n_dropped,
				                          1, memory_order_relaxed);
			free(p->rec);
			free(p->vrec);
			free(p);
		}
		if (op->type == OP_NOTIFY)
			op->fn(op->arg); /* everything queued before it is committed (or dropped) */
		free(op);
	}
	pthread_mutex_lock(&s->lock);
	s->queued -= cost;
	s->processed += n;
	pthread_cond_broadcast(&s->done);
	pthread_mutex_unlock(&s->lock);
}

/*
 * The counters of this process since it opened the store, written to info "run" (seven
 * u64: start time, max_size, hits, misses, stored, dropped, evicted) so that proxyd-cache
 * stats shows the daemon's bound and hit ratio. At most once a second, and only when they changed.
 */
static void
run_save(struct cache_store *s, int force)
{
	struct timespec now;
	uint64_t v[5] = {atomic_load(&s->n_hits), atomic_load(&s->n_misses),
	                 atomic_load(&s->n_stored), atomic_load(&s->n_dropped),
	                 atomic_load(&s->n_evicted)};
	unsigned char b[56];
	MDB_val k = {3, (void *)(uintptr_t) "run"}, d = {sizeof(b), b};
	MDB_txn *txn;

	clock_gettime(CLOCK_MONOTONIC, &now);
	if (!force &&
	    (memcmp(v, s->run_saved, sizeof(v)) == 0 || now.tv_sec - s->run_saved_at.tv_sec < 1))
		return;
	put_le64(b, (uint64_t)s->run_started);
	put_le64(b + 8, s->max_size);
	for (int i = 0; i < 5; i++)
		put_le64(b + 8 * (i + 2), v[i]);
	if (mdb_txn_begin(s->env, NULL, 0, &txn) != 0)
		return;
	if (mdb_put(txn, s->info, &k, &d, 0) != 0 || mdb_txn_commit(txn) != 0) {
		mdb_txn_abort(txn); /* a full map: the numbers wait for the next try */
		return;
	}
	memcpy(s->run_saved, v, sizeof(v));
	s->run_saved_at = now;
}

/* The writer's transactions, each under a guard: RC_BROKEN when the store is broken. */
#define RC_BROKEN (-1) /* no LMDB code */

enum wjob { W_BATCH, W_EVICT, W_CLEAN, W_SAVE };

struct writer_call {
	struct gcall g;
	enum wjob job;
	struct op *ops;
	int arg, rc;
	uint64_t n;
};

static void
writer_in(struct cache_store *s, struct gcall *g)
{
	struct writer_call *c = (struct writer_call *)g;

	c->rc = 0;
	switch (c->job) {
	case W_BATCH:
		c->rc = run_batch(s, c->ops, c->arg);
		break;
	case W_EVICT:
		c->rc = evict_for_space(s, &c->n);
		break;
	case W_CLEAN:
		clean_pending(s);
		break;
	case W_SAVE:
		run_save(s, c->arg);
		break;
	}
}

static int
writer_do(struct cache_store *s, enum wjob job, struct op *ops, int arg, uint64_t *n)
{
	struct writer_call c = {.job = job, .ops = ops, .arg = arg};

	if (guard_run(s, writer_in, &c.g) == -1)
		return RC_BROKEN;
	if (n != NULL)
		*n = c.n;
	return c.rc;
}

/*
 * The store is broken: drop ops and everything queued, and end the thread (which lets
 * go of LMDB's write lock if a fault left it taken). enqueue() drops what comes later.
 */
static void
writer_end(struct cache_store *s, struct op *ops)
{
	for (int round = 0; round < 2; round++) {
		for (struct op *op = ops; op != NULL; op = op->next)
			if (op->put != NULL)
				op->put->w_dead = 1;
		finish_batch(s, ops, 0);
		pthread_mutex_lock(&s->lock);
		ops = s->head;
		s->head = NULL;
		s->tail = &s->head;
		s->writer_gone = 1;
		pthread_mutex_unlock(&s->lock);
	}
}

static void *
writer_main(void *arg)
{
	struct cache_store *s = arg;

	s->run_started = (int64_t)time(NULL);
	writer_do(s, W_SAVE, NULL, 1, NULL);
	writer_do(s, W_CLEAN, NULL, 0, NULL);
	for (;;) {
		struct op *ops;
		int rc;

		pthread_mutex_lock(&s->lock);
		while (s->head == NULL && !s->stop && !store_broken(s)) {
			struct timespec until;

			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_sec += 1; /* wake now and then to save the counters */
			if (pthread_cond_timedwait(&s->wake, &s->lock, &until) == ETIMEDOUT &&
			    s->head == NULL && !s->stop) {
				pthread_mutex_unlock(&s->lock);
				writer_do(s, W_SAVE, NULL, 0, NULL);
				pthread_mutex_lock(&s->lock);
			}
		}
		if (s->head == NULL && !store_broken(s)) {
			pthread_mutex_unlock(&s->lock);
			writer_do(s, W_SAVE, NULL, 0, NULL);
			break;
		}
		ops = s->head;
		s->head = NULL;
		s->tail = &s->head;
		pthread_mutex_unlock(&s->lock);

		rc = writer_do(s, W_BATCH, ops, 0, NULL);
		if (is_full(rc)) {
			uint64_t n = 0;
			int erc = writer_do(s, W_EVICT, NULL, 0, &n);

			if (erc != 0 && erc != RC_BROKEN)
				wlog(s, WLOG_FULL, "%s: full (%s); cannot evict: %s", s->path,
				     mdb_strerror(rc), mdb_strerror(erc));
			else if (erc == 0)
				wlog(s, WLOG_FULL, "%s: full (%s); evicted %llu entries", s->path,
				     mdb_strerror(rc), (unsigned long long)n);
			rc = writer_do(s, W_BATCH, ops, 0, NULL);
		}
		if (rc != 0 && rc != RC_BROKEN) {
			wlog(s, WLOG_FAIL, "%s: cannot store: %s; objects dropped", s->path,
			     mdb_strerror(rc));
			s->failing = 1;
			for (struct op *op = ops; op != NULL; op = op->next)
				if (op->put != NULL)
					op->put->w_dead = 1;
			writer_do(s, W_BATCH, ops, 1, NULL);
		} else if (rc == 0 && s->failing) {
			s->failing = 0;
			wlog(s, WLOG_AGAIN, "%s: storing again", s->path);
		}
		if (store_broken(s)) { /* a batch committed before the fault counts as stored */
			if (rc == 0)
				finish_batch(s, ops, 1);
			writer_end(s, rc == 0 ? NULL : ops);
			break;
		}
		finish_batch(s, ops, rc == 0);
		writer_do(s, W_SAVE, NULL, 0, NULL);
	}
	return NULL;
}

/* ---- open and close -------------------------------------------------------------- */

static int
last_key_u64(MDB_txn *txn, MDB_dbi dbi, uint64_t *out)
{
	MDB_cursor *c;
	MDB_val k, v;
	int rc = mdb_cursor_open(txn, dbi, &c);

	*out = 0;
	if (rc != 0)
		return rc;
	rc = mdb_cursor_get(c, &k, &v, MDB_LAST);
	if (rc == 0 && k.mv_size >= 8)
		*out = get_be64(k.mv_data);
	mdb_cursor_close(c);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/*
 * LMDB trusts its pages: a garbled B-tree page can send it to a page past the end of the
 * map (SIGBUS) or through wild pointers. Before an existing environment is used, a child
 * process opens it read-only and walks what the open below and the first requests touch
 * (every table's root, first and last leaf); if that child dies, the environment is
 * refused. Returns -1 with how it died in why, or 0 (sound, or not probed: no fork).
 */
#define PROBE_NOT_OPENED 3 /* the child could not open it: the open below says why */

static int
probe_env(const char *path, char *why, size_t len)
{
	static const char *const names[] = {"meta", "chunk", "lru", "url", "pending", "info"};
	pid_t pid = fork();
	int status;

	if (pid == -1)
		return 0;
	if (pid == 0) {
		static const int fatal[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE};
		struct rlimit nocore = {0, 0};
		MDB_env *e;
		MDB_txn *t;

		/* die of the signal itself: a handler (a sanitizer's) would exit with a code */
		for (size_t i = 0; i < sizeof(fatal) / sizeof(fatal[0]); i++)
			signal(fatal[i], SIG_DFL);
		setrlimit(RLIMIT_CORE, &nocore);
		if (mdb_env_create(&e) != 0 || mdb_env_set_maxdbs(e, 8) != 0 ||
		    mdb_env_open(e, path, MDB_RDONLY | MDB_NOTLS | MDB_NORDAHEAD, 0640) != 0 ||
		    mdb_txn_begin(e, NULL, MDB_RDONLY, &t) != 0)
			_exit(PROBE_NOT_OPENED);
		for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
			MDB_dbi dbi;
			MDB_stat ms;
			MDB_cursor *c;
			MDB_val k, v;

			if (mdb_dbi_open(t, names[i], 0, &dbi) != 0 || mdb_stat(t, dbi, &ms) != 0 ||
			    mdb_cursor_open(t, dbi, &c) != 0)
				continue;
			mdb_cursor_get(c, &k, &v, MDB_FIRST);
			mdb_cursor_get(c, &k, &v, MDB_LAST);
			mdb_cursor_close(c);
		}
		mdb_txn_abort(t);
		mdb_env_close(e);
		_exit(0);
	}
	while (waitpid(pid, &status, 0) == -1)
		if (errno != EINTR)
			return 0;
	if (WIFSIGNALED(status)) {
		snprintf(why, len, "%s", strsignal(WTERMSIG(status)));
		return -1;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) != 0 &&
	    WEXITSTATUS(status) != PROBE_NOT_OPENED) {
		/* a handler caught the fault and exited (a sanitizer's, say): not sound either */
		snprintf(why, len, "exit status %d", WEXITSTATUS(status));
		return -1;
	}
	return 0;
}

struct cache_store *
cache_store_open(const struct cache_store_params *p, char **err)
{
	struct cache_store *s = calloc(1, sizeof(*s));
	unsigned envflags = MDB_NOTLS | MDB_NORDAHEAD | MDB_NOMETASYNC;
	unsigned dbflags = (p->flags & CACHE_F_RDONLY) ? 0 : MDB_CREATE;
	MDB_txn *txn = NULL;
	MDB_stat st;
	uint64_t v, last;
	int rc, dead;
	const char *what = "open";

	if (s == NULL) {
		seterr(err, "%s: out of memory", p->path);
		return NULL;
	}
	guard_install();
	s->flags = p->flags;
	s->max_size = p->max_size ? p->max_size : (uint64_t)256 << 20;
	s->max_object_size = p->max_object_size ? p->max_object_size : s->max_size / 8;
	s->queue_max = p->queue_max ? p->queue_max : (size_t)16 << 20;
	s->chunk_size = p->chunk_size ? p->chunk_size : 64 * 1024;
	s->log = p->log;
	s->log_arg = p->log_arg;
	s->tail = &s->head;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->wake, NULL);
	pthread_cond_init(&s->done, NULL);
	s->hits = calloc((size_t)1 << HITS_BITS, 1);
	s->path = strdup(p->path);
	if (s->hits == NULL || s->path == NULL) {
		seterr(err, "%s: out of memory", p->path);
		goto fail;
	}
	if (p->flags & CACHE_F_NOSYNC)
		envflags |= MDB_NOSYNC;
	if (p->flags & CACHE_F_RDONLY) { /* the tool must not create a cache */
		char data[4096];
		struct stat sb;

		snprintf(data, sizeof(data), "%s/data.mdb", p->path);
		if (stat(data, &sb) == -1) {
			seterr(err, "%s: %s", data, strerror(errno));
			goto fail;
		}
	}
	if ((rc = mdb_env_create(&s->env)) != 0)
		goto lmdb;
	mdb_env_set_maxdbs(s->env, 8);
	mdb_env_set_maxreaders(s->env, 256);
	if (!(p->flags & CACHE_F_RDONLY)) {
		uint64_t map =
		        p->map_size ? p->map_size : s->max_size + s->max_size / 2 + (64u << 20);

		if ((rc = mdb_env_set_mapsize(s->env, (size_t)map)) != 0)
			goto lmdb;
	}
	if ((rc = mdb_env_open(s->env, p->path, envflags, 0640)) != 0)
		goto lmdb;
	mdb_reader_check(s->env, &dead);
	what = "initialize";
	if ((rc = mdb_env_stat(s->env, &st)) != 0)
		goto lmdb;
	s->page_size = st.ms_psize;
	{
		/*
		 * LMDB leaves pages that a transaction allocated and freed again unwritten, so
		 * the file may end before the last page its meta page counts; those pages are
		 * free and never read. A file truncated by someone has lost pages in use, and
		 * reading them through the map would be SIGBUS: extend the file (zero pages,
		 * which LMDB and rec_decode() reject as corrupt where they look) instead. In a
		 * write transaction, so that no other process (the tool, the daemon) writes
		 * past the end meanwhile, which ftruncate() would cut off.
		 */
		MDB_envinfo ei;
		mdb_filehandle_t fd;
		struct stat sb;
		uint64_t need;

		if ((rc = txn_begin(s, 0, &txn)) != 0 || (rc = mdb_env_info(s->env, &ei)) != 0 ||
		    (rc = mdb_env_get_fd(s->env, &fd)) != 0)
			goto lmdb;
		need = ((uint64_t)ei.me_last_pgno + 1) * st.ms_psize;
		if (fstat(fd, &sb) == 0 && (uint64_t)sb.st_size < need &&
		    ftruncate(fd, (off_t)need) == -1) {
			seterr(err, "%s: cannot extend the cache file to %llu bytes: %s", p->path,
			       (unsigned long long)need, strerror(errno));
			goto fail;
		}
		/*
		 * The reserve: pages that only an eviction or an abort may take, 32 and 1/64
		 * of the map (a delete copies the leaf and branch pages on its paths, and the
		 * pages the last batches freed are reused only two commits later).
		 */
		s->map_pages = ei.me_mapsize / st.ms_psize;
		s->map_pages -= s->map_pages > 64 ? 32 + s->map_pages / 64 : s->map_pages / 2;
		mdb_txn_abort(txn);
		txn = NULL;
	}
	/*
	 * Only a new environment (an empty main table) gets its tables created: in an
	 * existing one a missing table means garbage, and LMDB would write into it.
	 */
	if (st.ms_entries > 0) {
		char why[64];

		if (probe_env(p->path, why, sizeof(why)) != 0) {
			seterr(err, "%s: a corrupt cache (reading it killed a probe: %s)", p->path,
			       why);
			goto fail;
		}
		dbflags = 0;
	}
	if ((rc = mdb_txn_begin(s->env, NULL, (p->flags & CACHE_F_RDONLY) ? MDB_RDONLY : 0,
	                        &txn)) != 0)
		goto lmdb;
	if ((rc = mdb_dbi_open(txn, "meta", dbflags, &s->meta)) != 0 ||
	    (rc = mdb_dbi_open(txn, "chunk", dbflags, &s->chunk)) != 0 ||
	    (rc = mdb_dbi_open(txn, "lru", dbflags, &s->lru)) != 0 ||
	    (rc = mdb_dbi_open(txn, "url", dbflags, &s->url)) != 0 ||
	    (rc = mdb_dbi_open(txn, "pending", dbflags, &s->pending)) != 0 ||
	    (rc = mdb_dbi_open(txn, "info", dbflags, &s->info)) != 0) {
		if (rc == MDB_NOTFOUND || rc == MDB_INCOMPATIBLE) {
			seterr(err, "%s: not a proxyd cache, or a corrupt one", p->path);
			goto fail;
		}
		goto lmdb;
	}
	if ((rc = info_get(s, txn, "format", &v)) != 0)
		goto lmdb;
	if (v == 0 && !(p->flags & CACHE_F_RDONLY)) {
		if ((rc = info_put(s, txn, "format", FORMAT_VERSION)) != 0)
			goto lmdb;
	} else if (v != FORMAT_VERSION) {
		seterr(err, "%s: cache format %llu, expected %d", p->path, (unsigned long long)v,
		       FORMAT_VERSION);
		goto fail;
	}
	if ((rc = info_get(s, txn, "next_id", &s->next_id)) != 0 ||
	    (rc = last_key_u64(txn, s->chunk, &last)) != 0)
		goto lmdb;
	if (s->next_id <= last)
		s->next_id = last + 1;
	if ((rc = info_get(s, txn, "next_seq", &s->next_seq)) != 0 ||
	    (rc = last_key_u64(txn, s->lru, &last)) != 0)
		goto lmdb;
	if (s->next_seq <= last)
		s->next_seq = last + 1;
	if (s->next_id == 0)
		s->next_id = 1;
	if (s->next_seq == 0)
		s->next_seq = 1;
	rc = mdb_txn_commit(txn); /* also read-only: the DBI handles survive only a commit */
	txn = NULL;
	if (rc != 0)
		goto lmdb;
	if (!(p->flags & CACHE_F_RDONLY)) {
		if ((rc = pthread_create(&s->writer, NULL, writer_main, s)) != 0) {
			seterr(err, "%s: cannot start the writer thread: %s", p->path,
			       strerror(rc));
			goto fail;
		}
		s->writer_running = 1;
	}
	return s;
lmdb:
	seterr(err, "%s: cannot %s the cache: %s", p->path, what, mdb_strerror(rc));
fail:
	if (txn != NULL)
		mdb_txn_abort(txn);
	if (s->env != NULL)
		mdb_env_close(s->env);
	free(s->hits);
	free(s->path);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->wake);
	pthread_cond_destroy(&s->done);
	free(s);
	return NULL;
}

void
cache_store_close(struct cache_store *s)
{
	if (s == NULL)
		return;
	if (s->writer_running) {
		pthread_mutex_lock(&s->lock);
		s->stop = 1;
		pthread_cond_signal(&s->wake);
		pthread_mutex_unlock(&s->lock);
		pthread_join(s->writer, NULL);
	}
	if (store_broken(s)) {
		/* never touched again, kept reachable (see "a file cut under the map") */
		pthread_mutex_lock(&abandoned_lock);
		s->next_abandoned = abandoned;
		abandoned = s;
		pthread_mutex_unlock(&abandoned_lock);
		return;
	}
	for (int i = 0; i < s->nrpool; i++)
		mdb_txn_abort(s->rpool[i]);
	mdb_env_close(s->env);
	free(s->hits);
	free(s->path);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->wake);
	pthread_cond_destroy(&s->done);
	free(s);
}

/* ---- reads ------------------------------------------------------------------------ */

struct get_call {
	struct gcall g;
	const struct cache_key *key;
	const struct cache_header *req;
	size_t nreq;
	struct cache_meta *out;
	struct cache_key vkey;
	int rc;
};

static void
get_in(struct cache_store *s, struct gcall *g)
{
	struct get_call *c = (struct get_call *)g;
	MDB_val k = {CACHE_KEY_LEN, (void *)(uintptr_t)c->key->b}, v;
	struct cache_meta m;
	int rc, kind = -1;

	if (rtxn_get(s, &g->txn) == NULL) {
		c->rc = EIO;
		return;
	}
	rc = mdb_get(g->txn, s->meta, &k, &v);
	/* a vary record (told by its kind byte) names the fields of the variant's key */
	if (rc == 0 && v.mv_size > 5 && ((const unsigned char *)v.mv_data)[5] == REC_VARY &&
	    rec_decode(v.mv_data, v.mv_size, &m) == REC_VARY) {
		hit_mark(s, c->key);
		if (variant_key(&c->vkey, c->key, m.vary, m.vary_len, c->req, c->nreq) == -1)
			rc = ENOMEM;
		else {
			k.mv_data = c->vkey.b;
			rc = mdb_get(g->txn, s->meta, &k, &v);
		}
	}
	/* one copy and one decode; unreadable, or a vary record where an object belongs */
	if (rc == 0 && (c->out = meta_copy(&v, &c->vkey, &kind, &g->held)) == NULL)
		rc = MDB_CORRUPTED;
	if (rc == 0 && kind != REC_OBJECT) {
		cache_meta_free(c->out);
		c->out = NULL;
		rc = MDB_NOTFOUND;
	}
	rtxn_put(s, g->txn);
	g->txn = NULL;
	c->rc = rc;
}

static void
get_count(struct cache_store *s, enum cache_get_count count, int hit)
{
	if (count == CACHE_GET_QUIET || (count == CACHE_GET_AGAIN && !hit))
		return;
	if (count == CACHE_GET_AGAIN) /* the first lookup's miss becomes this hit */
		atomic_fetch_sub_explicit(&s->n_misses, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(hit ? &s->n_hits : &s->n_misses, 1, memory_order_relaxed);
}

int
cache_get(struct cache_store *s, const struct cache_key *key, const struct cache_header *req,
          size_t nreq, enum cache_get_count count, struct cache_meta **out)
{
	struct get_call c = {.key = key, .req = req, .nreq = nreq, .vkey = *key};

	*out = NULL;
	if (s == NULL)
		return -1;
	if (guard_run(s, get_in, &c.g) == -1) {
		/* a fault between the copy and the return loses the copy: no matter */
		get_count(s, count, 0);
		return -1;
	}
	if (c.rc == 0) {
		*out = c.out;
		hit_mark(s, &c.vkey);
		get_count(s, count, 1);
		return 1;
	}
	get_count(s, count, 0);
	return c.rc == MDB_NOTFOUND ? 0 : -1;
}

/*
 * The body chunk holding off, in txn: the bytes from off to the end of the chunk (at most
 * len), 0 at the end of the body, -1 when the entry is gone. Reads the map.
 */
static ssize_t
view_in(struct cache_store *s, MDB_txn *txn, const struct cache_meta *m, uint64_t off, size_t len,
        const void **p)
{
	unsigned char kb[12];
	MDB_val k = {12, kb}, d;
	size_t in, n;

	if (off >= m->body_len || len == 0)
		return 0;
	if (len > m->body_len - off)
		len = (size_t)(m->body_len - off);
	in = (size_t)(off % m->chunk_size);
	chunk_key(kb, m->id, (uint32_t)(off / m->chunk_size));
	if (txn == NULL || mdb_get(txn, s->chunk, &k, &d) != 0 || d.mv_size <= in)
		return -1;
	n = d.mv_size - in < len ? d.mv_size - in : len;
	*p = (const unsigned char *)d.mv_data + in;
	return (ssize_t)n;
}

struct read_call {
	struct gcall g;
	const struct cache_meta *m;
	uint64_t off;
	unsigned char *buf;
	size_t len;
	ssize_t n;
};

/* cache_read() in one read transaction, chunk by chunk, copied out of the map */
static void
read_in(struct cache_store *s, struct gcall *g)
{
	struct read_call *c = (struct read_call *)g;
	size_t done = 0;

	c->n = -1;
	if (rtxn_get(s, &g->txn) == NULL)
		return;
	while (done < c->len) {
		const void *p;
		ssize_t n = view_in(s, g->txn, c->m, c->off + done, c->len - done, &p);

		if (n <= 0)
			break;
		memcpy(c->buf + done, p, (size_t)n);
		done += (size_t)n;
	}
	rtxn_put(s, g->txn);
	g->txn = NULL;
	if (done == c->len)
		c->n = (ssize_t)done;
}

ssize_t
cache_read(struct cache_store *s, const struct cache_meta *m, uint64_t off, void *buf, size_t len)
{
	struct read_call c = {.m = m, .off = off, .buf = buf, .len = len};

	if (off >= m->body_len || len == 0)
		return 0;
	if (len > m->body_len - off)
		c.len = (size_t)(m->body_len - off);
	if (s == NULL || guard_run(s, read_in, &c.g) == -1)
		return -1;
	return c.n;
}

static void
view_begin_in(struct cache_store *s, struct gcall *g)
{
	rtxn_get(s, &g->txn);
}

int
cache_view_begin(struct cache_store *s, struct cache_view *v)
{
	struct gcall g = {NULL};

	v->s = s;
	v->txn = NULL;
	if (s == NULL || guard_run(s, view_begin_in, &g) == -1)
		return -1;
	v->txn = g.txn;
	return v->txn != NULL ? 0 : -1;
}

struct view_call {
	struct gcall g;
	MDB_txn *txn;
	const struct cache_meta *m;
	uint64_t off;
	size_t len;
	const void *p;
	ssize_t n;
};

static void
view_call_in(struct cache_store *s, struct gcall *g)
{
	struct view_call *c = (struct view_call *)g;

	c->n = view_in(s, c->txn, c->m, c->off, c->len, &c->p);
}

ssize_t
cache_view(struct cache_view *v, const struct cache_meta *m, uint64_t off, size_t len,
           const void **p)
{
	struct view_call c = {.g.txn = v->txn, .txn = v->txn, .m = m, .off = off, .len = len};

	if (v->txn == NULL)
		return -1;
	if (guard_run(v->s, view_call_in, &c.g) == -1) {
		v->txn = NULL; /* back in the pool, or abandoned with the store */
		return -1;
	}
	if (c.n > 0)
		*p = c.p;
	return c.n;
}

struct copy_call {
	struct gcall g;
	void *dst;
	const void *src;
	size_t len;
};

static void
copy_in(struct cache_store *s, struct gcall *g)
{
	struct copy_call *c = (struct copy_call *)g;

	(void)s;
	memcpy(c->dst, c->src, c->len);
}

int
cache_view_copy(struct cache_view *v, void *dst, const void *src, size_t len)
{
	struct copy_call c = {.g.txn = v->txn, .dst = dst, .src = src, .len = len};

	if (v->txn == NULL || guard_run(v->s, copy_in, &c.g) == -1) {
		v->txn = NULL;
		return -1;
	}
	return 0;
}

void
cache_view_end(struct cache_view *v)
{
	/* mdb_txn_reset() writes the reader slot (lock.mdb), never the map */
	if (v->txn != NULL)
		rtxn_put(v->s, v->txn);
	v->txn = NULL;
}

/* ---- purges, stats, walk, verify --------------------------------------------------- */

struct purge_call {
	struct gcall g;
	const char *url;
	size_t len;
	int exact, rc;
	size_t n;
};

/* One write transaction of at most 256 deletions. */
static void
purge_in(struct cache_store *s, struct gcall *g)
{
	struct purge_call *c = (struct purge_call *)g;
	MDB_txn *txn;
	struct acct a;
	int rc = txn_begin(s, 0, &txn);

	c->n = 0;
	if (rc == 0)
		rc = acct_load(s, txn, &a);
	if (rc == 0)
		rc = purge_in_txn(s, txn, c->url, c->len, c->exact, 256, &a, &c->n);
	if (rc == 0)
		rc = acct_store(s, txn, &a);
	if (rc == 0)
		rc = mdb_txn_commit(txn);
	else if (txn != NULL)
		mdb_txn_abort(txn);
	c->rc = rc;
}

/* Repeated short write transactions of at most 256 deletions each. */
static long
purge(struct cache_store *s, const char *url, size_t len, int exact, char **err)
{
	struct purge_call c = {.url = url, .len = len, .exact = exact};
	long total = 0;

	for (;;) {
		if (guard_run(s, purge_in, &c.g) == -1) {
			seterr(err, "purge: %s: the cache file is cut short (bus error)", s->path);
			return -1;
		}
		if (c.rc != 0) {
			seterr(err, "purge: %s", mdb_strerror(c.rc));
			return -1;
		}
		total += (long)c.n;
		if (c.n < 256)
			return total;
	}
}

long
cache_purge_url(struct cache_store *s, const char *url, size_t len, char **err)
{
	return purge(s, url, len, 1, err);
}

long
cache_purge_prefix(struct cache_store *s, const char *prefix, size_t len, char **err)
{
	return purge(s, prefix, len, 0, err);
}

long
cache_purge_all(struct cache_store *s, char **err)
{
	return purge(s, "", 0, 0, err);
}

struct stats_call {
	struct gcall g;
	struct cache_stats *st;
	int rc;
};

static void
stats_in(struct cache_store *s, struct gcall *g)
{
	struct cache_stats *st = ((struct stats_call *)g)->st;
	MDB_txn *txn;
	MDB_envinfo ei;
	MDB_stat ms;
	struct acct a;
	MDB_dbi dbis[6] = {s->meta, s->chunk, s->lru, s->url, s->pending, s->info};
	int rc;

	((struct stats_call *)g)->rc = -1;
	if ((txn = rtxn_get(s, &g->txn)) == NULL)
		return;
	rc = acct_load(s, txn, &a);
	if (rc == 0) {
		MDB_val k = {3, (void *)(uintptr_t) "run"}, d;

		if (mdb_get(txn, s->info, &k, &d) == 0 && d.mv_size == 56) {
			const unsigned char *b = d.mv_data;

			st->run_started = (int64_t)get_le64(b);
			st->run_max_size = get_le64(b + 8);
			st->run_hits = get_le64(b + 16);
			st->run_misses = get_le64(b + 24);
			st->run_stored = get_le64(b + 32);
			st->run_dropped = get_le64(b + 40);
			st->run_evicted = get_le64(b + 48);
		}
	}
	for (int i = 0; rc == 0 && i < 6; i++) {
		if ((rc = mdb_stat(txn, dbis[i], &ms)) == 0)
			st->pages_used +=
			        ms.ms_branch_pages + ms.ms_leaf_pages + ms.ms_overflow_pages;
	}
	rtxn_put(s, txn);
	g->txn = NULL;
	if (rc != 0 || mdb_env_info(s->env, &ei) != 0) /* reads the meta pages */
		return;
	st->entries = a.entries;
	st->bytes = a.bytes;
	st->max_size = s->max_size;
	st->map_size = ei.me_mapsize;
	st->page_size = s->page_size;
	st->last_pgno = ei.me_last_pgno;
	st->max_readers = ei.me_maxreaders;
	st->num_readers = ei.me_numreaders;
	st->hits = atomic_load(&s->n_hits);
	st->misses = atomic_load(&s->n_misses);
	st->stored = atomic_load(&s->n_stored);
	st->dropped = atomic_load(&s->n_dropped);
	st->evicted = atomic_load(&s->n_evicted);
	((struct stats_call *)g)->rc = 0;
}

int
cache_stats(struct cache_store *s, struct cache_stats *st)
{
	struct stats_call c = {.st = st};

	memset(st, 0, sizeof(*st));
	if (guard_run(s, stats_in, &c.g) == -1)
		return -1;
	return c.rc;
}

struct walk_call {
	struct gcall g;
	const char *prefix;
	size_t len, plen;
	int (*fn)(void *arg, const char *kind, const struct cache_meta *m);
	void *arg;
	unsigned char last[URL_KEY_MAX + 1 + CACHE_KEY_LEN];
	size_t last_len;
	int started;
	int done; /* 0: go on, 1: stop with 0, -1: stop with -1 */
};

/* Up to 128 URL records in one read transaction (fn runs in it: it reads the map). */
static void
walk_in(struct cache_store *s, struct gcall *g)
{
	struct walk_call *w = (struct walk_call *)g;
	MDB_txn *txn = rtxn_get(s, &g->txn);
	MDB_cursor *c;
	MDB_val k, v;
	int rc, n = 0, stop = 0;

	if (txn == NULL || mdb_cursor_open(txn, s->url, &c) != 0) {
		if (txn != NULL)
			rtxn_put(s, txn);
		g->txn = NULL;
		w->done = -1;
		return;
	}
	if (w->started) {
		k.mv_size = w->last_len;
		k.mv_data = w->last;
		rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
		if (rc == 0 && k.mv_size == w->last_len &&
		    memcmp(k.mv_data, w->last, w->last_len) == 0)
			rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
	} else if (w->plen > 0) {
		k.mv_size = w->plen;
		k.mv_data = (void *)(uintptr_t)w->prefix;
		rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
	} else
		rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
	w->started = 1;
	for (; rc == 0 && n < 128 && !stop; n++, rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		const unsigned char *kb = k.mv_data;
		MDB_val mk, mv;
		struct cache_meta m;
		int kind;

		if (k.mv_size < 1 + CACHE_KEY_LEN || k.mv_size > sizeof(w->last))
			continue;
		if (k.mv_size - 1 - CACHE_KEY_LEN < w->plen ||
		    memcmp(kb, w->prefix, w->plen) != 0) {
			stop = 2;
			break;
		}
		memcpy(w->last, kb, k.mv_size);
		w->last_len = k.mv_size;
		mk.mv_size = CACHE_KEY_LEN;
		mk.mv_data = (void *)(uintptr_t)(kb + k.mv_size - CACHE_KEY_LEN);
		if (mdb_get(txn, s->meta, &mk, &mv) != 0 ||
		    (kind = rec_decode(mv.mv_data, mv.mv_size, &m)) == -1)
			continue;
		if (m.url_len < w->len || memcmp(m.url, w->prefix, w->len) != 0)
			continue;
		memcpy(m.key.b, mk.mv_data, CACHE_KEY_LEN);
		if (w->fn(w->arg, kind == REC_VARY ? "vary" : "object", &m) != 0)
			stop = 1;
	}
	mdb_cursor_close(c);
	rtxn_put(s, txn);
	g->txn = NULL;
	if (stop || rc != 0)
		w->done = rc == 0 || rc == MDB_NOTFOUND ? 1 : -1;
}

int
cache_walk(struct cache_store *s, const char *prefix, size_t len,
           int (*fn)(void *arg, const char *kind, const struct cache_meta *m), void *arg)
{
	struct walk_call *w = calloc(1, sizeof(*w));
	int rc;

	if (w == NULL)
		return -1;
	w->prefix = prefix;
	w->len = len;
	w->plen = len < URL_KEY_MAX ? len : URL_KEY_MAX;
	w->fn = fn;
	w->arg = arg;
	while (w->done == 0)
		if (guard_run(s, walk_in, &w->g) == -1)
			w->done = -1;
	rc = w->done == 1 ? 0 : -1;
	free(w);
	return rc;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void problem(long *n, void (*report)(void *, const char *), void *arg, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

static void
problem(long *n, void (*report)(void *, const char *), void *arg, const char *fmt, ...)
{
	char buf[600];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	report(arg, buf);
	(*n)++;
}

static void
hex(char out[17], const unsigned char *k)
{
	static const char digits[] = "0123456789abcdef";

	for (int i = 0; i < 8; i++) {
		out[2 * i] = digits[k[i] >> 4];
		out[2 * i + 1] = digits[k[i] & 15];
	}
	out[16] = 0;
}

/* One read transaction (in *tp while it is open): a consistent snapshot. */
static long
verify_in_txn(struct cache_store *s, void (*report)(void *arg, const char *msg), void *arg,
              MDB_txn **tp)
{
	MDB_txn *txn;
	MDB_cursor *c;
	MDB_val k, v;
	uint64_t *ids = NULL;
	size_t nids = 0, cap = 0;
	long n = 0;
	int rc;

	if (txn_begin(s, MDB_RDONLY, tp) != 0) {
		*tp = NULL;
		return -1;
	}
	txn = *tp;
	if (mdb_cursor_open(txn, s->meta, &c) != 0)
		goto fail;
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		struct cache_meta m;
		char h[17];
		unsigned char kb[12], sb[8], ub[URL_KEY_MAX + 1 + CACHE_KEY_LEN];
		struct cache_key key;
		MDB_val ck = {12, kb}, cv, lk = {8, sb}, lv, uk, uv;
		int kind = rec_decode(v.mv_data, v.mv_size, &m);
		uint64_t sum = 0, nchunks = 0;

		if (k.mv_size != CACHE_KEY_LEN) {
			problem(&n, report, arg, "meta: key of %zu bytes", k.mv_size);
			continue;
		}
		memcpy(key.b, k.mv_data, CACHE_KEY_LEN);
		hex(h, key.b);
		if (kind == -1) {
			problem(&n, report, arg, "%s: unreadable record", h);
			continue;
		}
		put_be64(sb, rec_seq(v.mv_data));
		if (mdb_get(txn, s->lru, &lk, &lv) != 0 || lv.mv_size != CACHE_KEY_LEN ||
		    memcmp(lv.mv_data, key.b, CACHE_KEY_LEN) != 0)
			problem(&n, report, arg, "%s %.*s: no clock record", h, (int)m.url_len,
			        m.url);
		uk.mv_size = url_key(ub, m.url, m.url_len, &key);
		uk.mv_data = ub;
		if (mdb_get(txn, s->url, &uk, &uv) != 0)
			problem(&n, report, arg, "%s %.*s: no URL index record", h, (int)m.url_len,
			        m.url);
		if (kind != REC_OBJECT)
			continue;
		if (nids == cap) {
			uint64_t *ni = realloc(ids, (cap ? cap * 2 : 256) * sizeof(*ids));

			if (ni == NULL)
				goto fail;
			ids = ni;
			cap = cap ? cap * 2 : 256;
		}
		ids[nids++] = m.id;
		if (m.body_len > 0)
			nchunks = (m.body_len + m.chunk_size - 1) / m.chunk_size;
		for (uint64_t i = 0; i <= nchunks && i <= UINT32_MAX; i++) {
			chunk_key(kb, m.id, (uint32_t)i);
			if (mdb_get(txn, s->chunk, &ck, &cv) != 0) {
				if (i < nchunks) {
					problem(&n, report, arg, "%s %.*s: chunk %llu missing", h,
					        (int)m.url_len, m.url, (unsigned long long)i);
					sum = m.body_len; /* one problem per entry */
					break;
				}
				continue;
			}
			if (i == nchunks) {
				problem(&n, report, arg, "%s %.*s: chunks beyond the body length",
				        h, (int)m.url_len, m.url);
				break;
			}
			if (i + 1 < nchunks && cv.mv_size != m.chunk_size)
				problem(&n, report, arg, "%s %.*s: chunk %llu has %zu bytes", h,
				        (int)m.url_len, m.url, (unsigned long long)i, cv.mv_size);
			sum += cv.mv_size;
		}
		if (sum != m.body_len && nchunks > 0)
			problem(&n, report, arg, "%s %.*s: chunks hold %llu bytes, body is %llu", h,
			        (int)m.url_len, m.url, (unsigned long long)sum,
			        (unsigned long long)m.body_len);
	}
	mdb_cursor_close(c);
	if (rc != MDB_NOTFOUND)
		goto fail;
	if (nids > 0)
		qsort(ids, nids, sizeof(*ids), cmp_u64);
	if (mdb_cursor_open(txn, s->chunk, &c) != 0)
		goto fail;
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;) {
		uint64_t id;
		unsigned char kb[12], pb[8];
		MDB_val pk = {8, pb}, pv;

		if (k.mv_size != 12) {
			problem(&n, report, arg, "chunk: key of %zu bytes", k.mv_size);
			rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
			continue;
		}
		id = get_be64(k.mv_data);
		put_be64(pb, id);
		if ((nids == 0 || bsearch(&id, ids, nids, sizeof(*ids), cmp_u64) == NULL) &&
		    mdb_get(txn, s->pending, &pk, &pv) != 0)
			problem(&n, report, arg, "chunks of id %llu belong to no entry",
			        (unsigned long long)id);
		chunk_key(kb, id + 1, 0); /* skip to the next id */
		k.mv_size = 12;
		k.mv_data = kb;
		rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
	}
	mdb_cursor_close(c);
	if (rc != MDB_NOTFOUND)
		goto fail;
	*tp = NULL;
	mdb_txn_abort(txn);
	free(ids);
	return n;
fail:
	*tp = NULL;
	mdb_txn_abort(txn);
	free(ids);
	return -1;
}

struct verify_call {
	struct gcall g;
	void (*report)(void *arg, const char *msg);
	void *arg;
	long n;
};

static void
verify_in(struct cache_store *s, struct gcall *g)
{
	struct verify_call *c = (struct verify_call *)g;

	c->n = verify_in_txn(s, c->report, c->arg, &g->txn);
}

/* The tool only. */
long
cache_verify(struct cache_store *s, void (*report)(void *arg, const char *msg), void *arg)
{
	struct verify_call c = {.report = report, .arg = arg};

	if (guard_run(s, verify_in, &c.g) == -1) {
		report(arg, "the cache file is cut short: reading it is a bus error");
		return -1;
	}
	return c.n;
}
