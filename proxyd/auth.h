/*
 * auth.h - proxy Basic authentication (`auth basic realm="..." file PATH;`, RFC 7617 over
 * Proxy-Authorization, RFC 9110 11.7.2).
 *
 * Contract: auth_db_load() reads a users file once, at configuration load, and returns an
 * immutable database (or NULL with a malloc'd "path:line: reason"); a reload loads a new
 * one. auth_check() is synchronous and CPU-bound: a cache miss runs crypt_r(), which costs
 * what the hash was made to cost (milliseconds for yescrypt and bcrypt), in the calling
 * thread. It allocates only the crypt_r() work area (32 KiB, per call, never static) and
 * wipes the decoded password. Any number of threads may call auth_check() on one database
 * and one cache at once.
 *
 * Users file: one `user:hash` per line; blank lines and lines whose first non-blank byte is
 * '#' are ignored; leading and trailing blanks (and a final CR) are stripped. user: at
 * least one byte, no control bytes, no ':'; each user once. hash: a crypt(3) hash in one
 * of the formats below, checked by crypt_checksalt() and by the length and alphabet
 * of its final part, so a truncated or mistyped hash is refused at load and not found
 * out at the first login:
 *   yescrypt `$y$...$<43>`, bcrypt `$2b$NN$<53>` (and `$2y$`, as htpasswd -B writes),
 *   SHA-512 `$6$[rounds=N$]salt$<86>`.
 *
 * Cache: a verified user:password is remembered for a TTL so the slow hash is paid once per
 * TTL, not per request. Entries hold only SHA-256(secret, db generation, user, ':',
 * password): no password is stored in clear, the random per-cache secret keeps entries
 * from being checked against precomputed tables, and the generation is a process-wide
 * counter assigned at load (not the db pointer, which malloc may reuse), so a new users
 * file never hits the entries of the old one. Only successes are cached: every wrong
 * password pays the full hash, which is what slows down guessing. The table is
 * direct-mapped (a colliding key evicts the older entry) and guarded by one mutex held for
 * a 32-byte compare or copy, never during crypt_r(); one cache may therefore be shared by
 * all workers (one per generation is the intended use).
 */
#ifndef PROXYD_AUTH_H
#define PROXYD_AUTH_H

#include <stddef.h>
#include <stdint.h>

#define AUTH_CACHE_DEFAULT_SIZE   1024
#define AUTH_CACHE_DEFAULT_TTL_MS 60000

enum auth_result {
	AUTH_OK = 0,    /* known user, right password */
	AUTH_DENIED,    /* well-formed Basic credentials, unknown user or wrong password */
	AUTH_MALFORMED, /* not "Basic <base64 of user:password>" (answer 400, or 407 too) */
};

struct auth_db;
struct auth_cache;

/*
 * Load the users file at path. Returns the database (free with auth_db_free()) or NULL
 * with *err a malloc'd reason: "path: strerror" when it cannot be read, "path:line: reason"
 * for a bad line, "path: no users" when it holds none.
 */
struct auth_db *auth_db_load(const char *path, char **err);
void auth_db_free(struct auth_db *db);
size_t auth_db_count(const struct auth_db *db);
/* How many times crypt_r() ran for this database (for tests and stats). */
uint64_t auth_db_verifications(const struct auth_db *db);

/*
 * A cache of nentries slots (0: AUTH_CACHE_DEFAULT_SIZE; rounded up to a power of two)
 * whose entries live ttl_ms (0: AUTH_CACHE_DEFAULT_TTL_MS). NULL when out of memory or
 * when no random secret could be drawn.
 */
struct auth_cache *auth_cache_new(size_t nentries, uint64_t ttl_ms);
void auth_cache_free(struct auth_cache *c);
/* Tests: replace the monotonic clock (milliseconds) with now(arg); NULL restores it. */
void auth_cache_set_clock(struct auth_cache *c, uint64_t (*now)(void *), void *arg);
/* How many auth_check() calls the cache answered (for tests and stats). */
uint64_t auth_cache_hits(const struct auth_cache *c);

/*
 * Check the value of a Proxy-Authorization header, value[0..len) with the surrounding
 * whitespace already removed (as http.h's header slices are): "Basic" (any case), one or
 * more spaces, then canonical padded base64 (RFC 4648 4: no other characters, length a
 * multiple of 4, zero pad bits) of "user:password" with no control bytes (< 0x20, 0x7f)
 * in either; the user ends at the first ':', the password may hold more.
 * On AUTH_OK and AUTH_DENIED the user name is copied to user (NUL-terminated; a name that
 * does not fit in usersize is AUTH_DENIED with user truncated); on AUTH_MALFORMED user is
 * "". user may be NULL when usersize is 0. cache may be NULL (every call verifies).
 */
enum auth_result auth_check(const struct auth_db *db, const char *value, size_t len, char *user,
                            size_t usersize, struct auth_cache *cache);

/*
 * The value of the Proxy-Authenticate header of a 407 for realm:
 * `Basic realm="REALM", charset="UTF-8"`, with '"' and '\\' in realm escaped as a
 * quoted-string (RFC 9110 5.6.4). Writes it NUL-terminated to buf and returns its length,
 * or -1 when it does not fit in size or realm holds a control byte (cfg should refuse it).
 */
int auth_challenge(const char *realm, char *buf, size_t size);

#endif /* PROXYD_AUTH_H */
