/*
 * store.h - the HTTP cache store: one LMDB environment shared by every thread of a
 * process (and by the proxyd-cache tool in another process).
 *
 * Contract:
 * - cache_store_open() returns a store or NULL with a malloc'd reason (missing directory,
 *   full disk, corrupt or foreign environment): the daemon then runs uncached. It never
 *   scans the data: orphans of a crash are cleaned by the writer thread in the background.
 * - Writes never block a worker on LMDB. cache_put_*() and cache_invalidate_url() queue
 *   work for the store's single writer thread, which commits batches. The queue is bounded
 *   in bytes; when it is full the object is dropped ("not stored"), never waited for.
 *   An object becomes visible only when its commit is processed, complete and within
 *   max_object_size; the meta record is written in the same transaction as, or after,
 *   all its chunks, so after kill -9 every visible entry is complete.
 * - Reads (cache_get, cache_read) take one short read transaction each, copy out, and
 *   never write; a hit sets an in-memory bit for the eviction clock. cache_view_*()
 *   lends body bytes in place for the span of one event-loop callback, no longer.
 * - max_size bounds the accounted bytes (bodies, metas, keys) after every write batch;
 *   MDB_MAP_FULL or a full file system (ENOSPC, EDQUOT, EFBIG, EIO) makes the writer
 *   evict a quarter and retry, then drop; failures go to the log callback, never to
 *   clients.
 * - cache_store_open() refuses (and the caller serves uncached) an environment that is
 *   not LMDB or whose main table does not name the store's tables (garbage past the meta
 *   pages): the open creates tables only in a new environment. A file shorter than its
 *   meta page says is extended with zero pages (no SIGBUS at start). LMDB has no page
 *   checksums: garbage deeper in the B-trees is not detected.
 * - A file truncated (or a disk gone) while the store is open makes reads of the map fault
 *   (SIGBUS). cache_store_open() installs a process-wide SIGBUS handler, and
 *   every read of the map in this module is guarded: a fault there marks the store broken
 *   (logged once through the log callback, from whichever thread saw it) instead of
 *   killing the process. A broken store is never read again: lookups miss (-1), puts,
 *   updates and invalidations are dropped, purges, stats, walks fail; cache_store_close()
 *   leaks the environment (see store.c). A SIGBUS anywhere else still kills the process
 *   (or goes to the handler that was there before: a sanitizer's). Only the bytes lent by
 *   cache_view() may be read outside this module, and only with cache_view_copy().
 * - Purges (cache_purge_*) run their own short write transaction in the calling thread:
 *   for the admin tool and admin endpoints, not for request paths.
 * - Everything is thread-safe except the handles: a cache_put belongs to one thread, a
 *   cache_meta is immutable and owned by whoever got it. Every put must be ended
 *   (commit or abort) before cache_store_close(). A batch is whatever is queued when the
 *   writer wakes: under load batches grow by themselves, idle puts commit at once.
 * - One daemon process writes a given directory; proxyd-cache may work beside it.
 *
 * Use by the daemon, per request (URL normalized with rules_url_normalize()):
 *   cache_key_make(&k, method, url); cache_get(s, &k, req headers, &m)
 *   hit:   cache_policy_use(&m->fresh, req, now, &age) -> serve (cache_meta_headers(),
 *          Age), or revalidate (cache_policy_validators(); on 304 cache_policy_merge_304()
 *          and cache_update()); body by cache_read() in pieces, -1 = entry gone: close
 *   miss:  cache_policy_storable() -> cache_policy_freshness() -> cache_put_begin(), then
 *          cache_put_write() as the body streams to the client, cache_put_commit() at
 *          its end, cache_put_abort() if the upstream fails
 *   unsafe method answered 2xx/3xx: cache_policy_invalidations() -> cache_invalidate_url()
 *
 * Eviction (also in doc/HACKING.md, "Design decisions"): CLOCK over insertion order. The
 * `lru` table orders entries by a sequence number given when they were stored. A hit sets
 * a bit in an in-memory table indexed by the key hash (no write). The writer evicts from
 * the head of `lru`: an entry whose bit is set gets a second chance (bit cleared, moved
 * to the tail with a new sequence number), others are deleted. After a restart every bit
 * is clear, so the persisted order is the last insertion or rescue.
 *
 * On-disk format (version 1; integers little-endian unless said otherwise):
 *   meta     key: 32-byte entry key -> record: a 112-byte header, then url, headers
 *            block ("Name: value\r\n" lines), Vary names, ETag. Header offsets:
 *            0 magic "PXC1" (u32 0x31435850), 4 version (u8 1), 5 kind (u8: 1 object,
 *            2 vary record), 6 status (u16), 8 id, 16 seq, 24 body_len (u64),
 *            32 chunk_size, 36 freshness flags (u32), 40 request_time, 48 response_time,
 *            56 lifetime, 64 initial_age, 72 swr, 80 sie, 88 last_modified (i64, -1 none),
 *            96 url_len, 100 headers_len, 104 vary_len, 108 etag_len (u32); the lengths
 *            must add up to the record's size
 *   chunk    key: id (u64 big-endian) + index (u32 big-endian) -> up to chunk_size bytes
 *   lru      key: seq (u64 big-endian) -> 32-byte entry key
 *   url      key: url (at most 400 bytes) + NUL + 32-byte entry key -> empty
 *   pending  key: id (u64 big-endian) -> time the first chunk was written (i64)
 *   info     "format" (u32 1), "bytes", "entries", "next_id", "next_seq" (u64), "run"
 *            (seven u64: the writing process's start time, max_size, hits, misses,
 *            stored, dropped, evicted; saved by its writer thread at most once a second)
 * The primary key is SHA-256(method class, NUL, normalized URL). A response with Vary is
 * stored under SHA-256(primary key, Vary secondary key) and a small "vary" record at the
 * primary key names the Vary fields; both are indexed by URL and evicted alike.
 */
#ifndef PROXYD_CACHE_STORE_H
#define PROXYD_CACHE_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "policy.h"

struct cache_store;
struct cache_put;

#define CACHE_KEY_LEN 32
struct cache_key {
	uint8_t b[CACHE_KEY_LEN];
};

/*
 * The primary key of a request: method (GET and HEAD share a class) and the normalized
 * URL "scheme://host[:port]/path[?query]" (rules_url_normalize(): scheme, host, port and
 * target). 0, or -1 when OpenSSL fails (no memory): treat as not cacheable.
 */
int cache_key_make(struct cache_key *k, const char *method, size_t method_len, const char *url,
                   size_t url_len);

#define CACHE_F_RDONLY 0x1u /* admin: no writer thread, no puts (purges still allowed) */
#define CACHE_F_NOSYNC 0x2u /* MDB_NOSYNC: no fsync (tests; survives kill -9, not power loss) */

struct cache_store_params {
	const char *path;         /* an existing directory */
	uint64_t max_size;        /* bytes; default 256 MiB */
	uint64_t max_object_size; /* bytes; default max_size / 8 */
	uint64_t map_size;        /* 0: max_size * 3 / 2 + 64 MiB; existing larger maps win */
	size_t queue_max;         /* bytes queued for the writer; default 16 MiB */
	uint32_t chunk_size;      /* body chunk bytes; default 64 KiB */
	unsigned flags;           /* CACHE_F_* */
	/*
	 * Told (from the writer thread, one line without a newline, at most once a minute
	 * per kind) when writes fail, and when they work again; NULL: silence.
	 */
	void (*log)(void *arg, const char *msg);
	void *log_arg;
};

/* Open (creating the files if needed). NULL with *err (malloc'd) on failure. */
struct cache_store *cache_store_open(const struct cache_store_params *p, char **err);
/* Drain the queue, stop the writer, close. NULL is allowed. */
void cache_store_close(struct cache_store *s);
/* Wait until everything queued so far is committed (or dropped). Tests and shutdown. */
void cache_store_flush(struct cache_store *s);

/*
 * Call fn(arg) once everything queued before this call (puts ended, updates,
 * invalidations) has been committed or dropped: from the writer thread, after its batch
 * commits, so a cache_get() made after fn starts sees it. Never fails: without a writer
 * (read-only store, no memory) fn runs at once in the calling thread. fn must be quick
 * and must not call back into the store's queue.
 */
void cache_store_notify(struct cache_store *s, void (*fn)(void *arg), void *arg);

/* What is stored with a response. Every slice is copied by cache_put_begin(). */
struct cache_object {
	const char *url; /* normalized, as given to cache_key_make() */
	size_t url_len;
	int status;
	const struct cache_header *headers; /* the response head to store (no hop-by-hop) */
	size_t nheaders;
	const struct cache_header *req_headers; /* the request's, for the Vary secondary key */
	size_t nreq_headers;
	int64_t request_time, response_time;
	struct cache_fresh fresh; /* cache_policy_freshness() */
	int64_t expected_len;     /* Content-Length, -1 if unknown (too large: not stored) */
};

/*
 * Start storing obj under key; NULL when it will not be stored (queue full, too large,
 * read-only store, no memory). Then cache_put_write() the body in pieces of any size and
 * end with exactly one of cache_put_commit() or cache_put_abort(), which free the handle.
 * A write or commit returning -1 means the object will not be stored; the handle must
 * still be ended (commit or abort) by the caller.
 */
struct cache_put *cache_put_begin(struct cache_store *s, const struct cache_key *key,
                                  const struct cache_object *obj);
int cache_put_write(struct cache_put *p, const void *data, size_t len);
int cache_put_commit(struct cache_put *p);
void cache_put_abort(struct cache_put *p);

/* A stored entry, copied out of LMDB: immutable, owned by the caller (cache_meta_free). */
struct cache_meta {
	struct cache_key key; /* the entry's own key (the variant key with Vary) */
	uint64_t id;
	uint64_t body_len;
	uint32_t chunk_size;
	int status;
	int64_t request_time, response_time;
	struct cache_fresh fresh;
	const char *url;
	size_t url_len;
	const char *headers; /* "Name: value\r\n" lines */
	size_t headers_len;
	const char *vary; /* normalized Vary names, "" for none */
	size_t vary_len;
	const char *etag; /* NULL: none */
	size_t etag_len;
	int64_t last_modified; /* -1: none */
};
void cache_meta_free(struct cache_meta *m);
/*
 * Decode a meta record in the on-disk format above (rec, len bytes, e.g. as LMDB returns
 * it) into m, whose slices point into rec; m->key is left alone. Returns the record's
 * kind, CACHE_META_OBJECT or CACHE_META_VARY, or -1 if it is malformed (bad magic or
 * version, lengths that do not add up to len, a body without a chunk size, times or
 * windows no writer gives: negative, past 2^45 s, a Last-Modified outside years 0-9999):
 * the store treats such a record as corrupt. Pure; the store uses it on every record.
 */
#define CACHE_META_OBJECT 1
#define CACHE_META_VARY   2
int cache_meta_decode(const void *rec, size_t len, struct cache_meta *m);
/* Slice the stored headers into out; returns the count, or -1 if cap is too small. */
long cache_meta_headers(const struct cache_meta *m, struct cache_header *out, size_t cap);

/*
 * Look up key for a request with headers req (for Vary). Returns 1 and *out (owned by
 * the caller) on a hit, 0 on a miss, -1 on an error (treat as a miss).
 * The store's hits and misses count requests, so how a lookup counts is the caller's:
 * CACHE_GET_COUNT, a request's first lookup (a hit or a miss); CACHE_GET_AGAIN, the same
 * request again after it waited for another's fetch (its first lookup was a miss: a hit
 * now turns that miss into a hit, a miss counts nothing more); CACHE_GET_QUIET, a lookup
 * that is no request's answer (a PURGE, a stale entry looked up after a failed fetch).
 */
enum cache_get_count { CACHE_GET_COUNT, CACHE_GET_AGAIN, CACHE_GET_QUIET };
int cache_get(struct cache_store *s, const struct cache_key *key, const struct cache_header *req,
              size_t nreq, enum cache_get_count count, struct cache_meta **out);
/*
 * Copy up to len body bytes from offset off into buf: bytes copied (0 at the end), or -1
 * when the entry is gone (evicted, replaced or purged since cache_get): end the response.
 */
ssize_t cache_read(struct cache_store *s, const struct cache_meta *m, uint64_t off, void *buf,
                   size_t len);

/*
 * Zero-copy body reads, for a caller that hands the bytes on (or copies what it could not
 * hand on) before it returns to its event loop: a read transaction must not be held across
 * loop iterations, or the writer could not reuse the pages it frees. cache_view_begin()
 * takes a read transaction into v: 0, or -1 on error (then use cache_read). cache_view()
 * points *p at up to len body bytes from offset off inside the map (at most to the end of
 * the stored chunk holding off): the count, 0 at the end, or -1 when the entry is gone (as
 * cache_read) or the store broke. The bytes stay valid and unchanged until
 * cache_view_end(v), but are in the map: read them only with cache_view_copy(), or hand
 * them to the kernel (write(2) of a cut-off page fails with EFAULT, it does not fault).
 * cache_view_copy() copies len bytes lent by v from src to dst: 0, or -1 when reading
 * them faulted (the store is broken: end the view, what dst holds is garbage).
 */
struct cache_view {
	struct cache_store *s; /* private */
	void *txn;             /* private */
};
int cache_view_begin(struct cache_store *s, struct cache_view *v);
ssize_t cache_view(struct cache_view *v, const struct cache_meta *m, uint64_t off, size_t len,
                   const void **p);
int cache_view_copy(struct cache_view *v, void *dst, const void *src, size_t len);
void cache_view_end(struct cache_view *v);

/* 1 when a fault on the map has broken s (see the contract above), else 0; NULL: 0. */
int cache_store_broken(struct cache_store *s);

/*
 * After a 304: replace m's stored headers and freshness (queued; a no-op if the entry
 * has been replaced meanwhile). 0 queued, -1 dropped.
 */
int cache_update(struct cache_store *s, const struct cache_meta *m, const struct cache_header *h,
                 size_t n, int64_t request_time, int64_t response_time,
                 const struct cache_fresh *fresh);
/* Invalidate every entry of a normalized URL, from a request path (queued). 0 or -1. */
int cache_invalidate_url(struct cache_store *s, const char *url, size_t len);

/* Purges, synchronous: the number of entries removed, or -1 with *err (malloc'd). */
long cache_purge_url(struct cache_store *s, const char *url, size_t len, char **err);
long cache_purge_prefix(struct cache_store *s, const char *prefix, size_t len, char **err);
long cache_purge_all(struct cache_store *s, char **err);

struct cache_stats {
	uint64_t entries, bytes, max_size;               /* persisted counters */
	uint64_t map_size, page_size, pages_used;        /* LMDB: map, B-tree pages in use */
	uint64_t last_pgno, max_readers, num_readers;    /* LMDB environment info */
	uint64_t hits, misses, stored, dropped, evicted; /* this process, since open */
	/* the writing process (the daemon), as it saved them at most a second ago */
	int64_t run_started;   /* when it opened the store (Unix time); 0: never */
	uint64_t run_max_size; /* its max_size */
	uint64_t run_hits, run_misses, run_stored, run_dropped, run_evicted;
};
int cache_stats(struct cache_store *s, struct cache_stats *st);

/*
 * Walk the entries whose URL starts with prefix (len 0: all) in URL order, in short read
 * transactions; fn returns non-zero to stop. Variants and vary records are included
 * (m->vary set, body_len 0 for a vary record: kind is "vary" or "object").
 */
int cache_walk(struct cache_store *s, const char *prefix, size_t len,
               int (*fn)(void *arg, const char *kind, const struct cache_meta *m), void *arg);

/*
 * Check every entry: meta parseable, chunks present with lengths summing to the body
 * length, index records consistent, no chunks without an entry (except pending ones).
 * Each problem goes to report; returns the number of problems, -1 on error.
 */
long cache_verify(struct cache_store *s, void (*report)(void *arg, const char *msg), void *arg);

#endif /* PROXYD_CACHE_STORE_H */
