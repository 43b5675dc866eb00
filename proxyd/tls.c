#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <sys/types.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "tls.h"

/* Largest OCSP response file accepted (real ones are a few KiB). */
#define TLS_OCSP_MAX (1024 * 1024)
/* Session ID context: the same in every generation, so tickets resume after a reload. */
#define TLS_SID_CTX "proxyd"

/* ALPN wire format of the one protocol proxyd speaks. */
static const unsigned char tls_alpn_wire[] = "\x08" TLS_ALPN_HTTP11;

enum tls_file { TLS_FILE_CERT, TLS_FILE_KEY, TLS_FILE_OCSP };

struct tls_ticket_key {
	unsigned char name[16];
	unsigned char aes[32];
	unsigned char hmac[32];
	uint64_t created_s;
	int valid;
};

/* Ticket keys, shared by a generation and the ones built from it (reloads). */
struct tls_keyring {
	atomic_uint refs;
	pthread_mutex_t lock;
	struct tls_ticket_key cur, prev;
	uint64_t (*now)(void *);
	void *now_arg;
};

struct tls_cert {
	char *files[3]; /* enum tls_file; ocsp may be NULL */
	X509 *x509;
	STACK_OF(X509) * chain; /* intermediates, maybe empty */
	EVP_PKEY *key;
	unsigned char *ocsp;
	size_t ocsp_len;
	char **names; /* lower-case DNS names (SAN, else CN) */
	size_t nnames;
};

/* What the server callbacks use; owned by the SSL_CTX (ex_data), freed with it. */
struct tls_server_data {
	struct tls_cert *certs;
	size_t ncerts;
	struct tls_keyring *ring;
	char *note;
};

struct tls_server {
	SSL_CTX *ctx;
	struct tls_server_data *d; /* lives as long as ctx */
};

struct tls_client_entry {
	char *key; /* "peer_key\nsni" */
	SSL_SESSION *sess;
};

/* Owned by the client SSL_CTX (ex_data). */
struct tls_client_data {
	pthread_mutex_t lock;
	struct tls_client_entry slots[TLS_CLIENT_CACHE_SIZE];
	size_t n;
};

struct tls_client {
	SSL_CTX *ctx;
	struct tls_client_data *d;
};

/* Per upstream SSL (ex_data): its cache key and the session waiting for _done(). */
struct tls_conn {
	char *key;
	SSL_SESSION *pending;
	int done;
};

static pthread_once_t tls_once = PTHREAD_ONCE_INIT;
static int tls_srv_idx = -1, tls_cli_idx = -1, tls_conn_idx = -1;
/*
 * The ticket cipher, fetched once: EVP_aes_256_cbc() would make every ticket encryption and
 * decryption fetch it again (OpenSSL 3's implicit fetch, a name lookup under a lock).
 */
static EVP_CIPHER *tls_ticket_cipher;

/* ---- helpers ------------------------------------------------------------------------- */

static char *tls_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *
tls_fmt(const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) == -1)
		s = NULL;
	va_end(ap);
	return s;
}

/* *err = "FILE: what (openssl reasons)", draining the error queue. */
static void
tls_err_file(char **err, const char *file, const char *what)
{
	char buf[256];

	if (ERR_peek_error() != 0)
		*err = tls_fmt("%s: %s (%s)", file, what, tls_error_string(buf, sizeof(buf)));
	else
		*err = tls_fmt("%s: %s", file, what);
}

/* Append the text of error e (with its data, if any) to buf[*len..size). */
static void
tls_error_append(char *buf, size_t size, size_t *len, unsigned long e, const char *data)
{
	const char *reason = ERR_reason_error_string(e);
	int n;

	if (*len + 1 >= size)
		return;
	if (data == NULL)
		data = "";
	if (reason != NULL)
		n = snprintf(buf + *len, size - *len, "%s%s%s%s%s", *len ? "; " : "", reason,
		             *data ? " (" : "", data, *data ? ")" : "");
	else
		n = snprintf(buf + *len, size - *len, "%serror:%08lX", *len ? "; " : "", e);
	if (n < 0)
		return;
	*len += (size_t)n;
	if (*len >= size)
		*len = size - 1;
}

static void
tls_strings_init(void)
{
	/* the reason strings (a no-op once done; SSL_CTX_new also does it) */
	OPENSSL_init_ssl(OPENSSL_INIT_LOAD_SSL_STRINGS | OPENSSL_INIT_LOAD_CRYPTO_STRINGS, NULL);
}

const char *
tls_error_string(char *buf, size_t size)
{
	const char *data;
	unsigned long e;
	size_t len = 0;
	int flags;

	if (size == 0)
		return buf;
	buf[0] = '\0';
	tls_strings_init();
	while ((e = ERR_get_error_all(NULL, NULL, NULL, &data, &flags)) != 0)
		tls_error_append(buf, size, &len, e, (flags & ERR_TXT_STRING) ? data : NULL);
	if (buf[0] == '\0')
		snprintf(buf, size, "unknown TLS error");
	return buf;
}

const char *
tls_errors_string(char *buf, size_t size, unsigned long (*next)(void *), void *arg)
{
	unsigned long e;
	size_t len = 0;

	if (size == 0)
		return buf;
	buf[0] = '\0';
	tls_strings_init();
	while ((e = next(arg)) != 0)
		tls_error_append(buf, size, &len, e, NULL);
	if (buf[0] == '\0')
		snprintf(buf, size, "unknown TLS error");
	return buf;
}

static uint64_t
tls_mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec;
}

static void
tls_note_add(struct tls_server_data *d, const char *file, const char *what)
{
	char *n = tls_fmt("%s%s%s: %s, reusing the %s loaded before", d->note ? d->note : "",
	                  d->note ? "; " : "", file, strerror(EACCES), what);

	if (n != NULL) {
		free(d->note);
		d->note = n;
	}
}

/* ---- ex_data ownership ------------------------------------------------------------------ */

static void
tls_keyring_unref(struct tls_keyring *r)
{
	if (r == NULL || atomic_fetch_sub(&r->refs, 1) != 1)
		return;
	OPENSSL_cleanse(&r->cur, sizeof(r->cur));
	OPENSSL_cleanse(&r->prev, sizeof(r->prev));
	pthread_mutex_destroy(&r->lock);
	free(r);
}

static void
tls_cert_clear(struct tls_cert *tc)
{
	size_t i;

	for (i = 0; i < 3; i++)
		free(tc->files[i]);
	X509_free(tc->x509);
	sk_X509_pop_free(tc->chain, X509_free);
	EVP_PKEY_free(tc->key);
	free(tc->ocsp);
	for (i = 0; i < tc->nnames; i++)
		free(tc->names[i]);
	free(tc->names);
}

static void
tls_server_data_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	struct tls_server_data *d = ptr;
	size_t i;

	(void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
	if (d == NULL)
		return;
	for (i = 0; i < d->ncerts; i++)
		tls_cert_clear(&d->certs[i]);
	free(d->certs);
	tls_keyring_unref(d->ring);
	free(d->note);
	free(d);
}

static void
tls_client_data_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	struct tls_client_data *d = ptr;
	size_t i;

	(void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
	if (d == NULL)
		return;
	for (i = 0; i < TLS_CLIENT_CACHE_SIZE; i++) {
		free(d->slots[i].key);
		SSL_SESSION_free(d->slots[i].sess);
	}
	pthread_mutex_destroy(&d->lock);
	free(d);
}

static void
tls_conn_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	struct tls_conn *cn = ptr;

	(void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
	if (cn == NULL)
		return;
	SSL_SESSION_free(cn->pending);
	free(cn->key);
	free(cn);
}

static void
tls_init_once(void)
{
	tls_srv_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, tls_server_data_free);
	tls_cli_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, tls_client_data_free);
	tls_conn_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, tls_conn_free);
	tls_ticket_cipher = EVP_CIPHER_fetch(NULL, "AES-256-CBC", NULL);
}

static int
tls_init(char **err)
{
	pthread_once(&tls_once, tls_init_once);
	if (tls_srv_idx == -1 || tls_cli_idx == -1 || tls_conn_idx == -1 ||
	    tls_ticket_cipher == NULL) {
		ERR_clear_error();
		*err = tls_fmt("cannot allocate OpenSSL ex_data indexes or fetch AES-256-CBC");
		return -1;
	}
	return 0;
}

/* ---- protocols ---------------------------------------------------------------------------- */

void
tls_server_conf_init(struct tls_server_conf *conf)
{
	memset(conf, 0, sizeof(*conf));
	conf->protocols = TLS_PROTO_DEFAULT;
	conf->ciphers = TLS_DEFAULT_CIPHERS;
	conf->ciphersuites = NULL;
	conf->session_timeout_s = TLS_DEFAULT_SESSION_TIMEOUT_S;
	conf->session_cache_size = TLS_DEFAULT_SESSION_CACHE_SIZE;
	conf->tickets = 1;
}

int
tls_protocols_parse(char *const *words, size_t nwords, unsigned *protocols, char **err)
{
	unsigned p = 0;
	size_t i;

	for (i = 0; i < nwords; i++) {
		if (strcmp(words[i], "TLSv1.2") == 0) {
			p |= TLS_PROTO_TLSv1_2;
		} else if (strcmp(words[i], "TLSv1.3") == 0) {
			p |= TLS_PROTO_TLSv1_3;
		} else if (strcmp(words[i], "TLSv1") == 0 || strcmp(words[i], "TLSv1.1") == 0) {
			*err = tls_fmt("\"%s\" is refused: TLS 1.0 and 1.1 are deprecated (RFC "
			               "8996), use TLSv1.2 and TLSv1.3",
			               words[i]);
			return -1;
		} else {
			*err = tls_fmt("unknown protocol \"%s\" (TLSv1.2, TLSv1.3)", words[i]);
			return -1;
		}
	}
	if (p == 0) {
		*err = tls_fmt("no protocol");
		return -1;
	}
	*protocols = p;
	return 0;
}

/* ---- ticket keys ------------------------------------------------------------------------ */

static uint64_t
tls_ring_now(const struct tls_keyring *r)
{
	return r->now != NULL ? r->now(r->now_arg) : tls_mono_s();
}

static int
tls_key_make(struct tls_ticket_key *k, uint64_t now)
{
	if (RAND_bytes(k->name, sizeof(k->name)) != 1 || RAND_bytes(k->aes, sizeof(k->aes)) != 1 ||
	    RAND_bytes(k->hmac, sizeof(k->hmac)) != 1)
		return -1;
	k->created_s = now;
	k->valid = 1;
	return 0;
}

static struct tls_keyring *
tls_keyring_new(void)
{
	struct tls_keyring *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return NULL;
	atomic_init(&r->refs, 1);
	pthread_mutex_init(&r->lock, NULL);
	if (tls_key_make(&r->cur, tls_mono_s()) == -1) {
		tls_keyring_unref(r);
		return NULL;
	}
	return r;
}

/* Rotate when the current key is due. Called with r->lock held. */
static void
tls_ring_tick(struct tls_keyring *r)
{
	struct tls_ticket_key k;
	uint64_t now = tls_ring_now(r);

	if (now < r->cur.created_s + TLS_TICKET_ROTATE_S)
		return;
	if (tls_key_make(&k, now) == -1)
		return; /* keep the old key rather than fail handshakes */
	r->prev = r->cur;
	r->cur = k;
	OPENSSL_cleanse(&k, sizeof(k));
}

void
tls_server_set_clock(struct tls_server *srv, uint64_t (*now)(void *), void *arg)
{
	struct tls_keyring *r = srv->d->ring;

	pthread_mutex_lock(&r->lock);
	r->now = now;
	r->now_arg = arg;
	/* the keys' ages restart on the new clock */
	r->cur.created_s = tls_ring_now(r);
	r->prev.created_s = r->cur.created_s;
	pthread_mutex_unlock(&r->lock);
}

static int
tls_ticket_cb(SSL *ssl, unsigned char *name, unsigned char *iv, EVP_CIPHER_CTX *cctx,
              EVP_MAC_CTX *hctx, int enc)
{
	static char sha256[] = "SHA256";
	struct tls_server_data *d = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), tls_srv_idx);
	struct tls_keyring *r;
	struct tls_ticket_key k;
	OSSL_PARAM params[3];
	const EVP_CIPHER *cipher = tls_ticket_cipher;
	int ret;

	if (d == NULL)
		return -1;
	r = d->ring;
	pthread_mutex_lock(&r->lock);
	tls_ring_tick(r);
	if (enc) {
		k = r->cur;
		ret = 1;
	} else if (memcmp(name, r->cur.name, sizeof(r->cur.name)) == 0) {
		k = r->cur;
		ret = 1;
	} else if (r->prev.valid && memcmp(name, r->prev.name, sizeof(r->prev.name)) == 0) {
		k = r->prev;
		ret = 2; /* accepted, issue a ticket under the current key */
	} else {
		ret = 0; /* unknown or expired key: full handshake */
	}
	pthread_mutex_unlock(&r->lock);
	if (ret == 0)
		return 0;

	params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, k.hmac, sizeof(k.hmac));
	params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, sha256, 0);
	params[2] = OSSL_PARAM_construct_end();
	if (enc) {
		memcpy(name, k.name, sizeof(k.name));
		if (RAND_bytes(iv, EVP_CIPHER_get_iv_length(cipher)) != 1 ||
		    EVP_EncryptInit_ex(cctx, cipher, NULL, k.aes, iv) != 1)
			ret = -1;
	} else if (EVP_DecryptInit_ex(cctx, cipher, NULL, k.aes, iv) != 1) {
		ret = -1;
	}
	if (ret != -1 && EVP_MAC_CTX_set_params(hctx, params) != 1)
		ret = -1;
	OPENSSL_cleanse(&k, sizeof(k));
	return ret;
}

/* ---- certificates ----------------------------------------------------------------------- */

static int
tls_no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf, (void)size, (void)rwflag, (void)u;
	return 0; /* encrypted keys are not supported: fail instead of prompting */
}

/* The certificate of prev that loaded path as its file of kind which, or NULL. */
static const struct tls_cert *
tls_prev_find(const struct tls_server_data *prev, enum tls_file which, const char *path)
{
	size_t i;

	if (prev == NULL)
		return NULL;
	for (i = 0; i < prev->ncerts; i++)
		if (prev->certs[i].files[which] != NULL &&
		    strcmp(prev->certs[i].files[which], path) == 0)
			return &prev->certs[i];
	return NULL;
}

/*
 * Open path for reading. NULL with *err set, or with *reuse set when it is EACCES and prev
 * has the file (the caller copies from *reuse).
 */
static FILE *
tls_open(const char *path, enum tls_file which, const struct tls_server_data *prev,
         const struct tls_cert **reuse, char **err)
{
	FILE *f = fopen(path, "rb");

	*reuse = NULL;
	if (f != NULL)
		return f;
	if (errno == EACCES && (*reuse = tls_prev_find(prev, which, path)) != NULL)
		return NULL;
	*err = tls_fmt("%s: %s", path, strerror(errno));
	return NULL;
}

static int
tls_name_add(struct tls_cert *tc, const unsigned char *s, int len)
{
	char **names, *n;
	int i;

	if (len <= 0 || memchr(s, '\0', (size_t)len) != NULL)
		return 0; /* skip: cannot match a host name */
	names = realloc(tc->names, (tc->nnames + 1) * sizeof(*names));
	if (names == NULL)
		return -1;
	tc->names = names;
	if ((n = malloc((size_t)len + 1)) == NULL)
		return -1;
	for (i = 0; i < len; i++)
		n[i] = (s[i] >= 'A' && s[i] <= 'Z') ? (char)(s[i] - 'A' + 'a') : (char)s[i];
	n[len] = '\0';
	tc->names[tc->nnames++] = n;
	return 0;
}

/* The names SNI is matched against: subjectAltName DNS entries, else the subject CN. */
static int
tls_cert_names(struct tls_cert *tc)
{
	GENERAL_NAMES *san = X509_get_ext_d2i(tc->x509, NID_subject_alt_name, NULL, NULL);
	const X509_NAME *subj;
	int i, ret = 0;

	for (i = 0; san != NULL && i < sk_GENERAL_NAME_num(san); i++) {
		const GENERAL_NAME *gn = sk_GENERAL_NAME_value(san, i);

		if (gn->type == GEN_DNS && tls_name_add(tc, ASN1_STRING_get0_data(gn->d.dNSName),
		                                        ASN1_STRING_length(gn->d.dNSName)) == -1)
			ret = -1;
	}
	GENERAL_NAMES_free(san);
	if (ret == 0 && tc->nnames == 0 && (subj = X509_get_subject_name(tc->x509)) != NULL &&
	    (i = X509_NAME_get_index_by_NID(subj, NID_commonName, -1)) >= 0) {
		unsigned char *cn = NULL;
		int len = ASN1_STRING_to_UTF8(
		        &cn, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, i)));

		if (len > 0)
			ret = tls_name_add(tc, cn, len);
		OPENSSL_free(cn);
	}
	return ret;
}

static int
tls_load_cert(struct tls_cert *tc, const struct tls_server_data *prev, struct tls_server_data *d,
              char **err)
{
	const char *path = tc->files[TLS_FILE_CERT];
	const struct tls_cert *reuse;
	X509 *x;
	BIO *b;
	unsigned long e;
	FILE *f = tls_open(path, TLS_FILE_CERT, prev, &reuse, err);

	if (f == NULL && reuse == NULL)
		return -1;
	if (f == NULL) {
		X509_up_ref(reuse->x509);
		tc->x509 = reuse->x509;
		if ((tc->chain = X509_chain_up_ref(reuse->chain)) == NULL) {
			*err = tls_fmt("%s: out of memory", path);
			return -1;
		}
		tls_note_add(d, path, "certificate");
		return 0;
	}
	ERR_clear_error();
	if ((b = BIO_new_fp(f, BIO_CLOSE)) == NULL) {
		fclose(f);
		tls_err_file(err, path, "cannot read");
		return -1;
	}
	if ((tc->x509 = PEM_read_bio_X509_AUX(b, NULL, NULL, NULL)) == NULL) {
		tls_err_file(err, path, "no certificate");
		goto fail;
	}
	if ((tc->chain = sk_X509_new_null()) == NULL)
		goto fail;
	while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
		if (!sk_X509_push(tc->chain, x)) {
			X509_free(x);
			tls_err_file(err, path, "out of memory");
			goto fail;
		}
	}
	e = ERR_peek_last_error();
	if (e != 0 &&
	    !(ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE)) {
		tls_err_file(err, path, "bad certificate in the chain");
		goto fail;
	}
	ERR_clear_error();
	BIO_free(b);
	return 0;
fail:
	BIO_free(b);
	return -1;
}

static int
tls_load_key(struct tls_cert *tc, const struct tls_server_data *prev, struct tls_server_data *d,
             char **err)
{
	const char *path = tc->files[TLS_FILE_KEY];
	const struct tls_cert *reuse;
	BIO *b;
	FILE *f = tls_open(path, TLS_FILE_KEY, prev, &reuse, err);

	if (f == NULL && reuse == NULL)
		return -1;
	if (f == NULL) {
		EVP_PKEY_up_ref(reuse->key);
		tc->key = reuse->key;
		tls_note_add(d, path, "key");
		return 0;
	}
	ERR_clear_error();
	if ((b = BIO_new_fp(f, BIO_CLOSE)) == NULL) {
		fclose(f);
		tls_err_file(err, path, "cannot read");
		return -1;
	}
	tc->key = PEM_read_bio_PrivateKey(b, NULL, tls_no_passphrase, NULL);
	BIO_free(b);
	if (tc->key == NULL) {
		tls_err_file(err, path, "no private key (or an encrypted one)");
		return -1;
	}
	return 0;
}

static int
tls_load_ocsp(struct tls_cert *tc, const struct tls_server_data *prev, struct tls_server_data *d,
              char **err)
{
	const char *path = tc->files[TLS_FILE_OCSP];
	const struct tls_cert *reuse;
	unsigned char *buf;
	size_t n;
	FILE *f = tls_open(path, TLS_FILE_OCSP, prev, &reuse, err);

	if (f == NULL && reuse == NULL)
		return -1;
	if (f == NULL) {
		if ((tc->ocsp = malloc(reuse->ocsp_len)) == NULL) {
			*err = tls_fmt("%s: out of memory", path);
			return -1;
		}
		memcpy(tc->ocsp, reuse->ocsp, reuse->ocsp_len);
		tc->ocsp_len = reuse->ocsp_len;
		tls_note_add(d, path, "OCSP response");
		return 0;
	}
	if ((buf = malloc(TLS_OCSP_MAX + 1)) == NULL) {
		fclose(f);
		*err = tls_fmt("%s: out of memory", path);
		return -1;
	}
	n = fread(buf, 1, TLS_OCSP_MAX + 1, f);
	if (ferror(f)) {
		*err = tls_fmt("%s: %s", path, strerror(errno));
		goto fail;
	}
	if (n == 0 || n > TLS_OCSP_MAX) {
		*err = tls_fmt("%s: %s", path, n == 0 ? "empty OCSP response" : "file too large");
		goto fail;
	}
	fclose(f);
	tc->ocsp = buf;
	tc->ocsp_len = n;
	return 0;
fail:
	fclose(f);
	free(buf);
	return -1;
}

static int
tls_cert_load(struct tls_cert *tc, const struct tls_cert_conf *cc,
              const struct tls_server_data *prev, struct tls_server_data *d, char **err)
{
	if (cc->cert_file == NULL || cc->key_file == NULL) {
		*err = tls_fmt("a certificate needs both a certificate and a key file");
		return -1;
	}
	if ((tc->files[TLS_FILE_CERT] = strdup(cc->cert_file)) == NULL ||
	    (tc->files[TLS_FILE_KEY] = strdup(cc->key_file)) == NULL ||
	    (cc->ocsp_file != NULL && (tc->files[TLS_FILE_OCSP] = strdup(cc->ocsp_file)) == NULL)) {
		*err = tls_fmt("out of memory");
		return -1;
	}
	if (tls_load_cert(tc, prev, d, err) == -1 || tls_load_key(tc, prev, d, err) == -1)
		return -1;
	if (X509_check_private_key(tc->x509, tc->key) != 1) {
		ERR_clear_error();
		*err = tls_fmt("%s: key does not match certificate", cc->key_file);
		return -1;
	}
	if (cc->ocsp_file != NULL && tls_load_ocsp(tc, prev, d, err) == -1)
		return -1;
	if (tls_cert_names(tc) == -1) {
		*err = tls_fmt("%s: out of memory", cc->cert_file);
		return -1;
	}
	return 0;
}

/* ---- server callbacks ------------------------------------------------------------------- */

/* Whether certificate name pattern covers host (both lower-case). */
static int
tls_name_match(const char *pattern, const char *host, int wildcard)
{
	const char *dot;

	if (!wildcard)
		return pattern[0] != '*' && strcmp(pattern, host) == 0;
	if (pattern[0] != '*' || pattern[1] != '.' || pattern[2] == '\0')
		return 0;
	dot = strchr(host, '.');
	return dot != NULL && dot != host && strcmp(dot, pattern + 1) == 0;
}

static int
tls_cert_matches(const struct tls_cert *tc, const char *host, int wildcard)
{
	size_t i;

	for (i = 0; i < tc->nnames; i++)
		if (tls_name_match(tc->names[i], host, wildcard))
			return 1;
	return 0;
}

/*
 * Choose the certificates by SNI during the ClientHello. The context holds certs[0]; a
 * match replaces it with every matching certificate (of distinct key types).
 */
static int
tls_cert_cb(SSL *ssl, void *arg)
{
	const struct tls_server_data *d = arg;
	const char *sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	char host[256];
	size_t i, len;
	int level, types[8], ntypes = 0, t, seen;

	if (sni == NULL || (len = strlen(sni)) == 0 || len >= sizeof(host))
		return 1;
	for (i = 0; i < len; i++)
		host[i] = (sni[i] >= 'A' && sni[i] <= 'Z') ? (char)(sni[i] - 'A' + 'a') : sni[i];
	if (host[len - 1] == '.')
		len--;
	host[len] = '\0';

	for (level = 0; level < 2; level++) {
		for (i = 0; i < d->ncerts; i++)
			if (tls_cert_matches(&d->certs[i], host, level))
				break;
		if (i == d->ncerts)
			continue;
		if (i == 0 && d->ncerts == 1)
			return 1;
		SSL_certs_clear(ssl);
		for (; i < d->ncerts; i++) {
			const struct tls_cert *tc = &d->certs[i];
			int k;

			if (!tls_cert_matches(tc, host, level))
				continue;
			t = EVP_PKEY_get_base_id(tc->key);
			for (seen = 0, k = 0; k < ntypes; k++)
				seen |= types[k] == t;
			if (seen || ntypes == (int)(sizeof(types) / sizeof(types[0])))
				continue;
			types[ntypes++] = t;
			if (SSL_use_cert_and_key(ssl, tc->x509, tc->key, tc->chain, 1) != 1)
				return 0;
		}
		return 1;
	}
	return 1; /* no match: the default */
}

/* Select http/1.1 if offered; otherwise go on without ALPN. */
static int
tls_alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
            unsigned int inlen, void *arg)
{
	unsigned int i = 0;

	(void)ssl, (void)arg;
	while (i < inlen) {
		unsigned int n = in[i];

		if (n == 0 || i + 1 + n > inlen)
			break;
		if (n == sizeof(tls_alpn_wire) - 2 && memcmp(in + i + 1, TLS_ALPN_HTTP11, n) == 0) {
			*out = in + i + 1;
			*outlen = (unsigned char)n;
			return SSL_TLSEXT_ERR_OK;
		}
		i += 1 + n;
	}
	return SSL_TLSEXT_ERR_NOACK;
}

/* Staple the OCSP response of the certificate in use, if it has one. */
static int
tls_status_cb(SSL *ssl, void *arg)
{
	const struct tls_server_data *d = arg;
	X509 *x = SSL_get_certificate(ssl);
	unsigned char *p;
	size_t i;

	for (i = 0; i < d->ncerts; i++) {
		if (d->certs[i].x509 != x || d->certs[i].ocsp == NULL)
			continue;
		if ((p = OPENSSL_memdup(d->certs[i].ocsp, d->certs[i].ocsp_len)) == NULL)
			return SSL_TLSEXT_ERR_NOACK;
		if (SSL_set_tlsext_status_ocsp_resp(ssl, p, (long)d->certs[i].ocsp_len) != 1) {
			OPENSSL_free(p);
			return SSL_TLSEXT_ERR_NOACK;
		}
		return SSL_TLSEXT_ERR_OK;
	}
	return SSL_TLSEXT_ERR_NOACK;
}

/* ---- server ----------------------------------------------------------------------------- */

static int
tls_server_ctx_setup(SSL_CTX *ctx, const struct tls_server_conf *conf, struct tls_server_data *d,
                     char **err)
{
	uint64_t opts = SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION;
	size_t i;
	int ocsp = 0;

	if (conf->protocols == 0 || (conf->protocols & ~TLS_PROTO_DEFAULT) != 0) {
		*err = tls_fmt("invalid protocol set");
		return -1;
	}
	if (SSL_CTX_set_min_proto_version(ctx, (conf->protocols & TLS_PROTO_TLSv1_2)
	                                               ? TLS1_2_VERSION
	                                               : TLS1_3_VERSION) != 1 ||
	    SSL_CTX_set_max_proto_version(ctx, (conf->protocols & TLS_PROTO_TLSv1_3)
	                                               ? TLS1_3_VERSION
	                                               : TLS1_2_VERSION) != 1) {
		*err = tls_fmt("cannot set the protocol versions");
		return -1;
	}
	ERR_clear_error();
	if (SSL_CTX_set_cipher_list(ctx, conf->ciphers ? conf->ciphers : TLS_DEFAULT_CIPHERS) !=
	    1) {
		ERR_clear_error();
		*err = tls_fmt("no usable cipher in \"%s\"",
		               conf->ciphers ? conf->ciphers : TLS_DEFAULT_CIPHERS);
		return -1;
	}
	if (conf->ciphersuites != NULL && SSL_CTX_set_ciphersuites(ctx, conf->ciphersuites) != 1) {
		ERR_clear_error();
		*err = tls_fmt("no usable TLS 1.3 cipher suite in \"%s\"", conf->ciphersuites);
		return -1;
	}
	if (!conf->tickets)
		opts |= SSL_OP_NO_TICKET;
	SSL_CTX_set_options(ctx, opts);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_dh_auto(ctx, 1);
	SSL_CTX_set_session_id_context(ctx, (const unsigned char *)TLS_SID_CTX,
	                               sizeof(TLS_SID_CTX) - 1);
	SSL_CTX_set_timeout(ctx, (long)conf->session_timeout_s);
	if (conf->session_cache_size > 0) {
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
		SSL_CTX_sess_set_cache_size(ctx, (long)conf->session_cache_size);
	} else {
		SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
		if (!conf->tickets)
			SSL_CTX_set_num_tickets(ctx, 0);
	}
	if (conf->tickets)
		SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, tls_ticket_cb);

	if (SSL_CTX_use_cert_and_key(ctx, d->certs[0].x509, d->certs[0].key, d->certs[0].chain,
	                             1) != 1) {
		tls_err_file(err, d->certs[0].files[TLS_FILE_CERT], "certificate refused");
		return -1;
	}
	for (i = 0; i < d->ncerts; i++)
		ocsp |= d->certs[i].ocsp != NULL;
	if (d->ncerts > 1)
		SSL_CTX_set_cert_cb(ctx, tls_cert_cb, d);
	SSL_CTX_set_alpn_select_cb(ctx, tls_alpn_cb, NULL);
	if (ocsp) {
		SSL_CTX_set_tlsext_status_cb(ctx, tls_status_cb);
		SSL_CTX_set_tlsext_status_arg(ctx, d);
	}
	return 0;
}

struct tls_server *
tls_server_new(const struct tls_server_conf *conf, const struct tls_server *prev, char **err)
{
	struct tls_server *srv = NULL;
	struct tls_server_data *d = NULL;
	SSL_CTX *ctx = NULL;
	size_t i;

	*err = NULL;
	if (tls_init(err) == -1)
		return NULL;
	if (conf->ncerts == 0) {
		*err = tls_fmt("no certificate");
		return NULL;
	}
	if ((srv = calloc(1, sizeof(*srv))) == NULL || (d = calloc(1, sizeof(*d))) == NULL ||
	    (d->certs = calloc(conf->ncerts, sizeof(*d->certs))) == NULL) {
		free(d);
		goto nomem;
	}
	d->ncerts = conf->ncerts;
	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		tls_server_data_free(NULL, d, NULL, 0, 0, NULL);
		goto nomem;
	}
	if (SSL_CTX_set_ex_data(ctx, tls_srv_idx, d) != 1) {
		tls_server_data_free(NULL, d, NULL, 0, 0, NULL);
		goto nomem;
	}
	/* from here on d belongs to ctx */
	if (prev != NULL) {
		d->ring = prev->d->ring;
		atomic_fetch_add(&d->ring->refs, 1);
	} else if ((d->ring = tls_keyring_new()) == NULL) {
		goto nomem;
	}
	for (i = 0; i < conf->ncerts; i++)
		if (tls_cert_load(&d->certs[i], &conf->certs[i], prev ? prev->d : NULL, d, err) ==
		    -1)
			goto fail;
	if (tls_server_ctx_setup(ctx, conf, d, err) == -1)
		goto fail;
	srv->ctx = ctx;
	srv->d = d;
	return srv;
nomem:
	*err = tls_fmt("out of memory");
fail:
	ERR_clear_error();
	SSL_CTX_free(ctx);
	free(srv);
	return NULL;
}

void
tls_server_free(struct tls_server *srv)
{
	if (srv == NULL)
		return;
	SSL_CTX_free(srv->ctx);
	free(srv);
}

const char *
tls_server_note(const struct tls_server *srv)
{
	return srv->d->note;
}

void
tls_ssl_quiet_close(SSL *ssl)
{
	SSL_set_quiet_shutdown(ssl, 1);
	SSL_set_shutdown(ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
}

void
tls_ssl_close(SSL *ssl)
{
	if (ssl == NULL)
		return;
	/*
	 * close_notify, as nginx and HAProxy send: a client that sees the connection end
	 * without it takes it for truncated and drops the session it would resume with.
	 */
	if (SSL_shutdown(ssl) < 0)
		ERR_clear_error();
	tls_ssl_quiet_close(ssl);
}

SSL_CTX *
tls_server_ctx(struct tls_server *srv)
{
	return srv->ctx;
}

SSL *
tls_server_ssl(struct tls_server *srv)
{
	SSL *ssl = SSL_new(srv->ctx);

	if (ssl != NULL)
		SSL_set_accept_state(ssl);
	return ssl;
}

/* ---- client ----------------------------------------------------------------------------- */

static size_t
tls_client_slot(const char *key)
{
	uint32_t h = 2166136261u;

	for (; *key != '\0'; key++)
		h = (h ^ (unsigned char)*key) * 16777619u;
	return h & (TLS_CLIENT_CACHE_SIZE - 1);
}

/* Cache sess (a reference the cache takes over) under key. */
static void
tls_client_store(struct tls_client_data *d, const char *key, SSL_SESSION *sess)
{
	struct tls_client_entry *e = &d->slots[tls_client_slot(key)];
	char *k = NULL;

	pthread_mutex_lock(&d->lock);
	if (e->key == NULL || strcmp(e->key, key) != 0) {
		if ((k = strdup(key)) == NULL) {
			pthread_mutex_unlock(&d->lock);
			SSL_SESSION_free(sess);
			return;
		}
		if (e->key == NULL)
			d->n++;
		free(e->key);
		e->key = k;
	}
	SSL_SESSION_free(e->sess);
	e->sess = sess;
	pthread_mutex_unlock(&d->lock);
}

/* OpenSSL's new-session callback (1 would mean that we took over sess). */
static int
tls_client_new_session(SSL *ssl, SSL_SESSION *sess)
{
	struct tls_conn *cn = SSL_get_ex_data(ssl, tls_conn_idx);
	struct tls_client_data *d = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), tls_cli_idx);

	if (cn == NULL || cn->key == NULL || d == NULL || !SSL_SESSION_is_resumable(sess))
		return 0;
	/*
	 * A private copy: freeing an SSL that saw no close_notify makes OpenSSL mark its
	 * session not resumable, and pooled upstream connections are mostly closed that way.
	 */
	if ((sess = SSL_SESSION_dup(sess)) == NULL)
		return 0;
	if (cn->done) {
		tls_client_store(d, cn->key, sess);
	} else {
		SSL_SESSION_free(cn->pending);
		cn->pending = sess;
	}
	return 0; /* the SSL keeps its own reference */
}

struct tls_client *
tls_client_new(int verify, const char *ca_file, char **err)
{
	struct tls_client *c = NULL;
	struct tls_client_data *d = NULL;
	SSL_CTX *ctx = NULL;
	FILE *f;

	*err = NULL;
	if (tls_init(err) == -1)
		return NULL;
	if ((c = calloc(1, sizeof(*c))) == NULL || (d = calloc(1, sizeof(*d))) == NULL)
		goto nomem;
	pthread_mutex_init(&d->lock, NULL);
	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
		tls_client_data_free(NULL, d, NULL, 0, 0, NULL);
		goto nomem;
	}
	if (SSL_CTX_set_ex_data(ctx, tls_cli_idx, d) != 1) {
		tls_client_data_free(NULL, d, NULL, 0, 0, NULL);
		goto nomem;
	}
	ERR_clear_error();
	if (ca_file != NULL) {
		if ((f = fopen(ca_file, "r")) == NULL) {
			*err = tls_fmt("%s: %s", ca_file, strerror(errno));
			goto fail;
		}
		fclose(f);
		if (SSL_CTX_load_verify_file(ctx, ca_file) != 1) {
			tls_err_file(err, ca_file, "no CA certificate");
			goto fail;
		}
	} else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
		*err = tls_fmt("cannot load the system's CA certificates");
		goto fail;
	}
	SSL_CTX_set_verify(ctx, verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_set_alpn_protos(ctx, tls_alpn_wire, sizeof(tls_alpn_wire) - 1) != 0)
		goto nomem;
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_session_cache_mode(ctx,
	                               SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_sess_set_new_cb(ctx, tls_client_new_session);
	c->ctx = ctx;
	c->d = d;
	return c;
nomem:
	*err = tls_fmt("out of memory");
fail:
	ERR_clear_error();
	SSL_CTX_free(ctx);
	free(c);
	return NULL;
}

void
tls_client_free(struct tls_client *c)
{
	if (c == NULL)
		return;
	SSL_CTX_free(c->ctx);
	free(c);
}

/*
 * SSL_set_tlsext_host_name() is a macro that casts its name to void *, dropping const.
 * OpenSSL copies the name, so it gets a copy of ours (no longer than it accepts anyway).
 */
static int
tls_set_sni(SSL *ssl, const char *name)
{
	char host[TLSEXT_MAXLEN_host_name + 1];
	size_t len = strlen(name);

	if (len >= sizeof(host))
		return -1;
	memcpy(host, name, len + 1);
	return SSL_set_tlsext_host_name(ssl, host) == 1 ? 0 : -1;
}

SSL *
tls_client_ssl(struct tls_client *c, const char *sni, const char *peer_key)
{
	unsigned char ip[sizeof(struct in6_addr)];
	struct tls_client_entry *e;
	struct tls_conn *cn;
	SSL_SESSION *sess;
	SSL *ssl;

	if ((ssl = SSL_new(c->ctx)) == NULL)
		return NULL;
	if ((cn = calloc(1, sizeof(*cn))) == NULL)
		goto fail;
	if (SSL_set_ex_data(ssl, tls_conn_idx, cn) != 1) {
		free(cn);
		goto fail;
	}
	SSL_set_connect_state(ssl);
	if (sni != NULL) {
		if (inet_pton(AF_INET, sni, ip) == 1 || inet_pton(AF_INET6, sni, ip) == 1) {
			if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), sni) != 1)
				goto fail;
		} else if (tls_set_sni(ssl, sni) == -1 || SSL_set1_host(ssl, sni) != 1) {
			goto fail;
		}
		SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	}
	if (peer_key != NULL) {
		if ((cn->key = tls_fmt("%s\n%s", peer_key, sni ? sni : "")) == NULL)
			goto fail;
		e = &c->d->slots[tls_client_slot(cn->key)];
		pthread_mutex_lock(&c->d->lock);
		/* a copy again, so that this connection cannot spoil the cached one */
		if (e->key != NULL && strcmp(e->key, cn->key) == 0 && e->sess != NULL &&
		    (sess = SSL_SESSION_dup(e->sess)) != NULL) {
			SSL_set_session(ssl, sess); /* takes its own reference */
			SSL_SESSION_free(sess);
		}
		pthread_mutex_unlock(&c->d->lock);
	}
	return ssl;
fail:
	ERR_clear_error();
	SSL_free(ssl);
	return NULL;
}

void
tls_client_session_done(struct tls_client *c, SSL *ssl)
{
	struct tls_conn *cn = SSL_get_ex_data(ssl, tls_conn_idx);

	if (cn == NULL || cn->done || !SSL_is_init_finished(ssl))
		return;
	cn->done = 1;
	if (cn->pending != NULL && cn->key != NULL) {
		tls_client_store(c->d, cn->key, cn->pending);
		cn->pending = NULL;
	}
}

size_t
tls_client_cached(struct tls_client *c)
{
	size_t n;

	pthread_mutex_lock(&c->d->lock);
	n = c->d->n;
	pthread_mutex_unlock(&c->d->lock);
	return n;
}

const char *
tls_verify_error(const SSL *ssl)
{
	long r = SSL_get_verify_result(ssl);

	return r == X509_V_OK ? NULL : X509_verify_cert_error_string(r);
}
