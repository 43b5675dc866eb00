/*
 * tls.h - OpenSSL 3 contexts for TLS termination (`listen ... tls;`) and TLS to upstreams
 * (`server HOST:PORT tls ...;`). No libevent: the caller wraps the SSL objects returned
 * here in bufferevent_openssl (BEV_OPT_CLOSE_ON_FREE, which owns the SSL from then on).
 *
 * Contract:
 * - Everything is built at configuration load (files read, keys parsed, names extracted)
 *   and immutable afterwards, except the ticket key ring and the sessions caches, which
 *   are internally locked. Any number of threads may call tls_server_ssl(),
 *   tls_client_ssl() and tls_client_session_done() on one object at once.
 * - Errors are return values: NULL (or -1) with *err a malloc'd reason naming the file
 *   ("FILE: reason"). Nothing here logs; tls_server_note() tells what the caller may log.
 * - Lifetime: tls_server_free()/tls_client_free() drop the caller's reference only. The
 *   data the OpenSSL callbacks use (certificates, OCSP responses, ticket keys, the client
 *   session cache) belongs to the SSL_CTX (ex_data freed with it), and every SSL holds a
 *   reference to its SSL_CTX, so a generation may be freed while its connections live on.
 *
 * Server side: the first certificate is the default. During the ClientHello the server
 * name (SNI) selects the certificate by the certificate's own names (subjectAltName DNS
 * entries, else the subject CN): an exact (case-insensitive) match first, then a wildcard
 * `*.example.com`, which covers exactly one more label (`a.example.com`, not
 * `example.com` nor `a.b.example.com`); no match, or no SNI, gives the default. Every
 * certificate of the matching kind is installed, so an RSA and an ECDSA certificate for the
 * same names both serve (OpenSSL picks by the client's signature algorithms). ALPN: only
 * `http/1.1` is selected; a client offering ALPN without it gets no ALPN rather than a
 * failed handshake. OCSP: a certificate's DER response file is read at load and stapled
 * (unchecked, as is) when the client asks for status. Sessions: a server-side cache
 * (SSL_SESS_CACHE_SERVER, shared by all threads) and stateless tickets whose keys
 * (AES-256-CBC + HMAC-SHA256, from RAND_bytes) rotate every TLS_TICKET_ROTATE_S: the
 * current key issues tickets, current and previous keys accept them (a ticket under the
 * previous key is renewed). A generation built with prev shares prev's key ring, so
 * tickets survive a reload; the session-ID cache does not (it is per SSL_CTX).
 *
 * Upstream side: one tls_client per distinct (verify, ca) setting; tls_client_ssl() per
 * connection sets SNI and the verified name, TLS >= 1.2, ALPN http/1.1, and offers the
 * session cached for (peer_key, sni). Sessions are cached only from connections that the
 * caller declared good with tls_client_session_done() (TLS 1.3 tickets arriving later on
 * such a connection are cached as they come).
 */
#ifndef PROXYD_TLS_H
#define PROXYD_TLS_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

/* tls_protocols bits */
#define TLS_PROTO_TLSv1_2 0x01u
#define TLS_PROTO_TLSv1_3 0x02u
#define TLS_PROTO_DEFAULT (TLS_PROTO_TLSv1_2 | TLS_PROTO_TLSv1_3)

/* Mozilla "intermediate" (v5.7) for TLS 1.2; TLS 1.3 suites default to OpenSSL's. */
#define TLS_DEFAULT_CIPHERS                                                                        \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                               \
	"ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                               \
	"ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"                               \
	"DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305"
#define TLS_DEFAULT_SESSION_TIMEOUT_S  600u   /* also the ticket lifetime */
#define TLS_DEFAULT_SESSION_CACHE_SIZE 20480u /* sessions; 0 turns the cache off */
#define TLS_TICKET_ROTATE_S            (12u * 3600u)
#define TLS_ALPN_HTTP11                "http/1.1"
#define TLS_CLIENT_CACHE_SIZE          1024 /* upstream sessions, direct-mapped */

/* One `tls_certificate` / `tls_certificate_key` pair. */
struct tls_cert_conf {
	const char *cert_file; /* PEM: the leaf first, then its intermediates */
	const char *key_file;  /* PEM private key (RSA, ECDSA, Ed25519), unencrypted */
	const char *ocsp_file; /* NULL, or a DER OCSP response to staple */
};

/* A `listen ... tls` configuration. Fill with tls_server_conf_init(), then override. */
struct tls_server_conf {
	const struct tls_cert_conf *certs; /* ncerts >= 1; certs[0] is the default */
	size_t ncerts;
	unsigned protocols;         /* TLS_PROTO_* bits; default TLS_PROTO_DEFAULT */
	const char *ciphers;        /* TLS 1.2 cipher list; default TLS_DEFAULT_CIPHERS */
	const char *ciphersuites;   /* TLS 1.3 suites; NULL: OpenSSL's default */
	uint32_t session_timeout_s; /* default TLS_DEFAULT_SESSION_TIMEOUT_S */
	size_t session_cache_size;  /* default TLS_DEFAULT_SESSION_CACHE_SIZE; 0: off */
	int tickets;                /* default 1 */
};

struct tls_server;
struct tls_client;

/* The defaults documented above, no certificates. */
void tls_server_conf_init(struct tls_server_conf *conf);

/*
 * Parse the words of `tls_protocols` ("TLSv1.2", "TLSv1.3", case-sensitive as in nginx,
 * repeats allowed) into TLS_PROTO_* bits. Returns 0, or -1 with *err a malloc'd reason:
 * TLSv1 and TLSv1.1 are refused as deprecated (RFC 8996), anything else is unknown
 * (SSLv3 included), an empty list is an error.
 */
int tls_protocols_parse(char *const *words, size_t nwords, unsigned *protocols, char **err);

/*
 * Build a server context from conf (which need not outlive the call). Reads every file
 * now. prev (may be NULL) is the running generation: its ticket keys are shared, and a
 * certificate, key or OCSP file that cannot be opened because of EACCES (privileges were
 * dropped) is taken from prev's memory when prev loaded the same path; tls_server_note()
 * then says so. Returns NULL with *err "FILE: reason", e.g. "FILE: key does not match
 * certificate" (FILE the key file), "FILE: no certificate", "FILE: Permission denied".
 */
struct tls_server *tls_server_new(const struct tls_server_conf *conf, const struct tls_server *prev,
                                  char **err);
/* Drop the caller's reference; live SSL objects keep what they need. NULL is a no-op. */
void tls_server_free(struct tls_server *srv);
/*
 * NULL, or one line for the log when tls_server_new() reused files of prev, e.g.
 * "/etc/k.pem: Permission denied, reusing the key loaded before". Owned by srv.
 */
const char *tls_server_note(const struct tls_server *srv);
/* A new SSL in accept state for one connection (the caller owns it), or NULL (ENOMEM). */
SSL *tls_server_ssl(struct tls_server *srv);
/* The underlying context (for tests and stats); owned by srv. */
SSL_CTX *tls_server_ctx(struct tls_server *srv);
/*
 * Tests: the clock of the ticket key ring, in seconds (default CLOCK_MONOTONIC); it is
 * shared with every generation built from srv. NULL restores the default.
 */
void tls_server_set_clock(struct tls_server *srv, uint64_t (*now)(void *), void *arg);

/*
 * Upstream context. verify: check the chain against ca_file (NULL: the system's default
 * paths) and the name given to tls_client_ssl(); 0 accepts any certificate (the result is
 * still computed, see tls_verify_error()). Returns NULL with *err "FILE: reason".
 */
struct tls_client *tls_client_new(int verify, const char *ca_file, char **err);
void tls_client_free(struct tls_client *c);
/*
 * A new SSL in connect state (the caller owns it), or NULL (ENOMEM, bad name). sni is the
 * server name sent and verified (NULL: none sent, the chain alone is verified); an IP
 * literal (bare, "::1" not "[::1]") is verified against the certificate's IP addresses
 * and not sent as SNI (RFC 6066). peer_key (e.g. "10.0.0.1:443"; NULL disables session
 * reuse) and sni together key the session cache; a cached session is offered for
 * resumption.
 */
SSL *tls_client_ssl(struct tls_client *c, const char *sni, const char *peer_key);
/*
 * Call after the handshake of ssl succeeded (and the caller accepted the peer): its session
 * and any TLS 1.3 ticket received later on it are cached for its (peer_key, sni),
 * replacing the older one. A no-op before the handshake is complete.
 */
void tls_client_session_done(struct tls_client *c, SSL *ssl);
/* Sessions cached now (for tests and stats). */
size_t tls_client_cached(struct tls_client *c);

/*
 * Mark ssl's TLS close as done (no close_notify will be sent) just before the SSL is freed
 * (bufferevent_free), on either side, when the connection did not end in a TLS error.
 * Without it OpenSSL takes an SSL freed without a close_notify exchange for a broken
 * connection and removes its session from the server's cache, so that session ID can no
 * longer resume (nginx does the same in ngx_ssl_shutdown). The upstream session cache does
 * not depend on it (it keeps copies).
 */
void tls_ssl_quiet_close(SSL *ssl);
/*
 * End a TLS connection that did not fail: send close_notify now (non-blocking; the alert
 * is small), then as tls_ssl_quiet_close(). Clients resume only sessions closed this way.
 */
void tls_ssl_close(SSL *ssl);

/* NULL when ssl's certificate verification succeeded, else OpenSSL's text for the error
 * ("unable to get local issuer certificate", "hostname mismatch", ...). */
const char *tls_verify_error(const SSL *ssl);

/*
 * Drain this thread's OpenSSL error queue into buf as one line ("reason (data); reason"), for
 * logging a failed handshake or load. Returns buf; "unknown TLS error" when the queue was
 * empty.
 */
const char *tls_error_string(char *buf, size_t size);
/*
 * The same over the error codes next(arg) returns until 0. bufferevent_openssl moves the
 * queue into the bufferevent before it reports BEV_EVENT_ERROR, so read them from there:
 *   static unsigned long next(void *bev) { return bufferevent_get_openssl_error(bev); }
 *   tls_errors_string(buf, sizeof(buf), next, bev);
 */
const char *tls_errors_string(char *buf, size_t size, unsigned long (*next)(void *), void *arg);

#endif /* PROXYD_TLS_H */
