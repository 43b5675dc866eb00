#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

/*
 * test_tls.c - unit tests of proxyd/tls.c: certificate loading, SNI selection, protocol
 * versions, ALPN, OCSP stapling, session resumption (cache, tickets, tickets across a
 * reload, key rotation), the reuse of keys after a privilege drop, and the upstream side
 * (verification, host names, IP literals, session reuse).
 *
 * Nothing secret is committed: a throw-away PKI is made at run time with the OpenSSL API
 * (root CA -> intermediate -> leaves, plus a second, unrelated root) into the suite's own
 * directory. Handshakes run in memory, client and server SSL joined by a BIO pair and
 * driven alternately in one thread.
 */

#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <check.h>

#include "tls.h"
#include "unit.h"

static char pki[PATH_MAX]; /* where the fixture wrote the PKI */
static char hs_err[512];   /* the error of the last failed handshake() */

/* pki/name, in one of a few static buffers. */
static const char *
P(const char *name)
{
	static char bufs[16][PATH_MAX];
	static unsigned int next;
	char *b = bufs[next++ % 16];

	ck_assert(snprintf(b, PATH_MAX, "%s/%s", pki, name) < PATH_MAX);
	return b;
}

/* ---- the throw-away PKI ------------------------------------------------------------------ */

static void
add_ext(X509 *x, X509V3_CTX *v3, int nid, const char *value)
{
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, v3, nid, value);

	ck_assert_ptr_nonnull(ext);
	ck_assert_int_eq(X509_add_ext(x, ext, -1), 1);
	X509_EXTENSION_free(ext);
}

/* A certificate for key named cn (and san), signed by issuer (NULL: self-signed). */
static X509 *
mkcert(EVP_PKEY *key, const char *cn, const char *san, X509 *issuer, EVP_PKEY *issuer_key, int ca)
{
	static long serial = 1;
	X509 *x = X509_new();
	X509_NAME *name;
	X509V3_CTX v3;

	ck_assert_ptr_nonnull(x);
	X509_set_version(x, X509_VERSION_3);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 7 * 86400);
	X509_set_pubkey(x, key);
	name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, issuer != NULL ? X509_get_subject_name(issuer) : name);
	X509V3_set_ctx(&v3, issuer != NULL ? issuer : x, x, NULL, NULL, 0);
	add_ext(x, &v3, NID_basic_constraints, ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
	if (ca)
		add_ext(x, &v3, NID_key_usage, "critical,keyCertSign,cRLSign");
	else
		add_ext(x, &v3, NID_ext_key_usage, "serverAuth");
	if (san != NULL)
		add_ext(x, &v3, NID_subject_alt_name, san);
	ck_assert_int_gt(X509_sign(x, issuer_key != NULL ? issuer_key : key, EVP_sha256()), 0);
	return x;
}

static void
write_pem(const char *name, X509 *x1, X509 *x2, EVP_PKEY *key)
{
	FILE *f = fopen(P(name), "w");

	ck_assert_ptr_nonnull(f);
	if (x1 != NULL)
		ck_assert_int_eq(PEM_write_X509(f, x1), 1);
	if (x2 != NULL)
		ck_assert_int_eq(PEM_write_X509(f, x2), 1);
	if (key != NULL)
		ck_assert_int_eq(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL), 1);
	ck_assert_int_eq(fclose(f), 0);
}

static EVP_PKEY *
ec_key(void)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");

	ck_assert_ptr_nonnull(k);
	return k;
}

/*
 * root.pem (root CA), other-root.pem (an unrelated CA), and leaves issued through the
 * intermediate (their files hold leaf + intermediate):
 *   a.pem/a.key      RSA,   CN a.test, SAN DNS:a.test IP:127.0.0.1 (the default)
 *   b.pem/b.key      ECDSA, CN *.b.test, SAN DNS:*.b.test
 *   c.pem/c.key      ECDSA, CN c.test, no SAN (issued by the root directly)
 *   aec.pem/aec.key  ECDSA, SAN DNS:a.test (a's ECDSA twin)
 * garbage.pem, ocsp.der (an arbitrary blob: nothing checks it).
 */
static void
pki_setup(void)
{
	EVP_PKEY *rootk = ec_key(), *interk = ec_key(), *otherk = ec_key(), *ak, *bk = ec_key(),
	         *ck = ec_key(), *aeck = ec_key();
	X509 *root, *inter, *other, *a, *b, *c, *aec;
	unsigned char blob[300];
	size_t i;

	unit_tmpdir_setup();
	ck_assert(snprintf(pki, sizeof(pki), "%s", unit_tmpdir) < (int)sizeof(pki));
	ak = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
	ck_assert_ptr_nonnull(ak);

	root = mkcert(rootk, "proxyd test root", NULL, NULL, NULL, 1);
	inter = mkcert(interk, "proxyd test intermediate", NULL, root, rootk, 1);
	other = mkcert(otherk, "some other root", NULL, NULL, NULL, 1);
	a = mkcert(ak, "a.test", "DNS:a.test,IP:127.0.0.1", inter, interk, 0);
	b = mkcert(bk, "*.b.test", "DNS:*.b.test", inter, interk, 0);
	c = mkcert(ck, "c.test", NULL, root, rootk, 0);
	aec = mkcert(aeck, "a.test (ECDSA)", "DNS:a.test", inter, interk, 0);

	write_pem("root.pem", root, NULL, NULL);
	write_pem("other-root.pem", other, NULL, NULL);
	write_pem("a.pem", a, inter, NULL);
	write_pem("a.key", NULL, NULL, ak);
	write_pem("b.pem", b, inter, NULL);
	write_pem("b.key", NULL, NULL, bk);
	write_pem("c.pem", c, NULL, NULL);
	write_pem("c.key", NULL, NULL, ck);
	write_pem("aec.pem", aec, inter, NULL);
	write_pem("aec.key", NULL, NULL, aeck);
	unit_write("garbage.pem", "not a certificate\n", 18);
	for (i = 0; i < sizeof(blob); i++)
		blob[i] = (unsigned char)(i * 7 + 3);
	unit_write("ocsp.der", (const char *)blob, sizeof(blob));

	X509_free(root), X509_free(inter), X509_free(other), X509_free(a), X509_free(b);
	X509_free(c), X509_free(aec);
	EVP_PKEY_free(rootk), EVP_PKEY_free(interk), EVP_PKEY_free(otherk), EVP_PKEY_free(ak);
	EVP_PKEY_free(bk), EVP_PKEY_free(ck), EVP_PKEY_free(aeck);
}

static void
pki_teardown(void)
{
	unit_tmpdir_teardown();
}

/* ---- handshakes ------------------------------------------------------------------------- */

static int
want_more(SSL *ssl, int r)
{
	int e = SSL_get_error(ssl, r);

	return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE;
}

/*
 * Join cl and sv by a BIO pair and run both handshakes, then let each side read what
 * followed (TLS 1.3 tickets). 0 when both finished; -1 when the client failed, -2 when the
 * server did, with the OpenSSL errors in err. Thread-safe, no Check calls.
 */
static int
hs_pump(SSL *cl, SSL *sv, char *err, size_t errsize)
{
	BIO *bc, *bs;
	int cdone = 0, sdone = 0, i, r;
	char ch;

	ERR_clear_error();
	err[0] = '\0';
	if (BIO_new_bio_pair(&bc, 0, &bs, 0) != 1)
		return -3;
	SSL_set_bio(cl, bc, bc);
	SSL_set_bio(sv, bs, bs);
	for (i = 0; i < 100 && !(cdone && sdone); i++) {
		if (!cdone) {
			if ((r = SSL_do_handshake(cl)) == 1)
				cdone = 1;
			else if (!want_more(cl, r)) {
				tls_error_string(err, errsize);
				return -1;
			}
		}
		if (!sdone) {
			if ((r = SSL_do_handshake(sv)) == 1)
				sdone = 1;
			else if (!want_more(sv, r)) {
				tls_error_string(err, errsize);
				return -2;
			}
		}
	}
	if (!(cdone && sdone))
		return -3;
	for (i = 0; i < 3; i++) {
		if (SSL_read(cl, &ch, 1) > 0 || SSL_read(sv, &ch, 1) > 0)
			return -3;
	}
	ERR_clear_error();
	return 0;
}

static int
handshake(SSL *cl, SSL *sv)
{
	int r = hs_pump(cl, sv, hs_err, sizeof(hs_err));

	ck_assert_int_ne(r, -3);
	return r;
}

/* A test client trusting root.pem, versions [min, max] (0: any). */
static SSL_CTX *
client_ctx(int min, int max)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	ck_assert_ptr_nonnull(ctx);
	ck_assert_int_eq(SSL_CTX_load_verify_file(ctx, P("root.pem")), 1);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	ck_assert_int_eq(SSL_CTX_set_min_proto_version(ctx, min), 1);
	ck_assert_int_eq(SSL_CTX_set_max_proto_version(ctx, max), 1);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	return ctx;
}

static SSL *
client_ssl(SSL_CTX *ctx, const char *sni)
{
	SSL *ssl = SSL_new(ctx);
	char host[256]; /* the macro casts const away: hand it a copy */

	ck_assert_ptr_nonnull(ssl);
	SSL_set_connect_state(ssl);
	if (sni != NULL) {
		ck_assert_uint_lt(strlen(sni), sizeof(host));
		memcpy(host, sni, strlen(sni) + 1);
		ck_assert_int_eq(SSL_set_tlsext_host_name(ssl, host), 1);
	}
	return ssl;
}

/* The CN of the certificate the client of a finished handshake received. */
static const char *
peer_cn(SSL *cl)
{
	static char cn[128];
	X509 *x = SSL_get1_peer_certificate(cl);

	ck_assert_ptr_nonnull(x);
	ck_assert_int_gt(
	        X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof(cn)),
	        0);
	X509_free(x);
	return cn;
}

static struct tls_cert_conf certs_abc[] = {
        {"a.pem", "a.key", NULL},
        {"b.pem", "b.key", NULL},
        {"c.pem", "c.key", NULL},
};

/* A server from cert names relative to pki (n of them), conf defaults otherwise. */
static struct tls_server *
server_new(const struct tls_cert_conf *names, size_t n, struct tls_server_conf *conf,
           const struct tls_server *prev)
{
	struct tls_cert_conf certs[8];
	struct tls_server_conf def;
	struct tls_server *srv;
	char *err = NULL;
	size_t i;

	ck_assert_uint_le(n, 8);
	for (i = 0; i < n; i++) {
		certs[i].cert_file = P(names[i].cert_file);
		certs[i].key_file = P(names[i].key_file);
		certs[i].ocsp_file = names[i].ocsp_file ? P(names[i].ocsp_file) : NULL;
	}
	if (conf == NULL) {
		tls_server_conf_init(&def);
		conf = &def;
	}
	conf->certs = certs;
	conf->ncerts = n;
	srv = tls_server_new(conf, prev, &err);
	if (srv == NULL)
		ck_abort_msg("tls_server_new: %s", err);
	ck_assert_ptr_null(err);
	conf->certs = NULL;
	return srv;
}

/* Handshake of a test client (cctx, sni) with srv; returns the served CN. */
static const char *
served(SSL_CTX *cctx, struct tls_server *srv, const char *sni)
{
	SSL *cl = client_ssl(cctx, sni), *sv = tls_server_ssl(srv);
	const char *cn;

	ck_assert_ptr_nonnull(sv);
	if (handshake(cl, sv) != 0)
		ck_abort_msg("handshake with SNI %s: %s", sni ? sni : "(none)", hs_err);
	ck_assert_int_eq(SSL_get_verify_result(cl), X509_V_OK);
	cn = peer_cn(cl);
	SSL_free(cl);
	SSL_free(sv);
	return cn;
}

/* ---- protocols -------------------------------------------------------------------------- */

static int
protocols(const char *list, unsigned *p, char **err)
{
	static char buf[256];
	char *words[16], *w, *save = NULL;
	size_t n = 0;

	ck_assert(strlen(list) < sizeof(buf));
	strcpy(buf, list);
	for (w = strtok_r(buf, " ", &save); w != NULL; w = strtok_r(NULL, " ", &save))
		words[n++] = w;
	*err = NULL;
	return tls_protocols_parse(words, n, p, err);
}

START_TEST(test_protocols_parse)
{
	unsigned p = 0;
	char *err;

	ck_assert_int_eq(protocols("TLSv1.2 TLSv1.3", &p, &err), 0);
	ck_assert_uint_eq(p, TLS_PROTO_TLSv1_2 | TLS_PROTO_TLSv1_3);
	ck_assert_int_eq(protocols("TLSv1.3", &p, &err), 0);
	ck_assert_uint_eq(p, TLS_PROTO_TLSv1_3);
	ck_assert_int_eq(protocols("TLSv1.2 TLSv1.2", &p, &err), 0);
	ck_assert_uint_eq(p, TLS_PROTO_TLSv1_2);

	ck_assert_int_eq(protocols("TLSv1.2 TLSv1.1", &p, &err), -1);
	ck_assert_pstr_eq(err, "\"TLSv1.1\" is refused: TLS 1.0 and 1.1 are deprecated (RFC 8996), "
	                       "use TLSv1.2 and TLSv1.3");
	free(err);
	ck_assert_int_eq(protocols("TLSv1", &p, &err), -1);
	ck_assert_ptr_nonnull(strstr(err, "deprecated"));
	free(err);
	ck_assert_int_eq(protocols("SSLv3", &p, &err), -1);
	ck_assert_pstr_eq(err, "unknown protocol \"SSLv3\" (TLSv1.2, TLSv1.3)");
	free(err);
	ck_assert_int_eq(protocols("tlsv1.2", &p, &err), -1);
	free(err);
	ck_assert_int_eq(protocols("", &p, &err), -1);
	ck_assert_pstr_eq(err, "no protocol");
	free(err);
}
END_TEST

START_TEST(test_protocol_refused)
{
	struct tls_server_conf conf;
	struct tls_server *srv = server_new(certs_abc, 1, NULL, NULL);
	SSL_CTX *cctx = client_ctx(TLS1_1_VERSION, TLS1_1_VERSION);
	SSL *cl, *sv;

	/* a TLS 1.1-only client: the server refuses it */
	ck_assert_int_eq(SSL_CTX_set_cipher_list(cctx, "DEFAULT:@SECLEVEL=0"), 1);
	cl = client_ssl(cctx, "a.test");
	sv = tls_server_ssl(srv);
	ck_assert_int_eq(handshake(cl, sv), -2);
	ck_assert_msg(strstr(hs_err, "unsupported protocol") != NULL, "%s", hs_err);
	SSL_free(cl), SSL_free(sv);
	SSL_CTX_free(cctx);
	tls_server_free(srv);

	/* TLSv1.3 only refuses a TLS 1.2 client, serves a TLS 1.3 one */
	tls_server_conf_init(&conf);
	conf.protocols = TLS_PROTO_TLSv1_3;
	srv = server_new(certs_abc, 1, &conf, NULL);
	cctx = client_ctx(TLS1_2_VERSION, TLS1_2_VERSION);
	cl = client_ssl(cctx, "a.test");
	sv = tls_server_ssl(srv);
	ck_assert_int_eq(handshake(cl, sv), -2);
	SSL_free(cl), SSL_free(sv);
	SSL_CTX_free(cctx);
	cctx = client_ctx(0, 0);
	cl = client_ssl(cctx, "a.test");
	sv = tls_server_ssl(srv);
	ck_assert_int_eq(handshake(cl, sv), 0);
	ck_assert_int_eq(SSL_version(sv), TLS1_3_VERSION);
	SSL_free(cl), SSL_free(sv);
	SSL_CTX_free(cctx);
	tls_server_free(srv);

	/* the default serves TLS 1.2 */
	srv = server_new(certs_abc, 1, NULL, NULL);
	cctx = client_ctx(TLS1_2_VERSION, TLS1_2_VERSION);
	ck_assert_str_eq(served(cctx, srv, "a.test"), "a.test");
	SSL_CTX_free(cctx);
	tls_server_free(srv);
}
END_TEST

/* ---- certificates and SNI --------------------------------------------------------------- */

START_TEST(test_sni)
{
	struct tls_server *srv = server_new(certs_abc, 3, NULL, NULL);
	int v;

	for (v = 0; v < 2; v++) {
		SSL_CTX *cctx = client_ctx(v ? TLS1_3_VERSION : TLS1_2_VERSION,
		                           v ? TLS1_3_VERSION : TLS1_2_VERSION);

		ck_assert_str_eq(served(cctx, srv, "a.test"), "a.test");
		ck_assert_str_eq(served(cctx, srv, "A.Test"), "a.test");
		ck_assert_str_eq(served(cctx, srv, "x.b.test"), "*.b.test");
		ck_assert_str_eq(served(cctx, srv, "X.B.TEST."), "*.b.test");
		/* a wildcard covers exactly one label */
		ck_assert_str_eq(served(cctx, srv, "b.test"), "a.test");
		ck_assert_str_eq(served(cctx, srv, "y.x.b.test"), "a.test");
		/* no SAN: the CN */
		ck_assert_str_eq(served(cctx, srv, "c.test"), "c.test");
		ck_assert_str_eq(served(cctx, srv, "x.c.test"), "a.test");
		/* unknown name, no SNI: the default */
		ck_assert_str_eq(served(cctx, srv, "unknown.test"), "a.test");
		ck_assert_str_eq(served(cctx, srv, NULL), "a.test");
		SSL_CTX_free(cctx);
	}
	tls_server_free(srv);

	/* the first certificate is the default, whatever it is */
	srv = server_new(certs_abc + 1, 2, NULL, NULL);
	{
		SSL_CTX *cctx = client_ctx(0, 0);

		ck_assert_str_eq(served(cctx, srv, "nothing.test"), "*.b.test");
		ck_assert_str_eq(served(cctx, srv, "c.test"), "c.test");
		SSL_CTX_free(cctx);
	}
	tls_server_free(srv);
}
END_TEST

/* An exact name beats a wildcard listed before it; RSA and ECDSA twins both serve. */
START_TEST(test_sni_exact_first_and_dual)
{
	static struct tls_cert_conf certs[] = {
	        {"c.pem", "c.key", NULL},
	        {"b.pem", "b.key", NULL},
	        {"a.pem", "a.key", NULL},
	        {"aec.pem", "aec.key", NULL},
	};
	struct tls_server *srv = server_new(certs, 4, NULL, NULL);
	SSL_CTX *cctx = client_ctx(TLS1_2_VERSION, TLS1_2_VERSION);
	/* arrays, not literals: the sigalgs macro casts its argument to char * */
	char rsa[] = "RSA+SHA256:RSA-PSS+SHA256", ecdsa[] = "ECDSA+SHA256";

	ck_assert_str_eq(served(cctx, srv, "z.b.test"), "*.b.test");
	/* the client's preference decides between the twins */
	ck_assert_int_eq(SSL_CTX_set1_sigalgs_list(cctx, rsa), 1);
	ck_assert_str_eq(served(cctx, srv, "a.test"), "a.test");
	ck_assert_int_eq(SSL_CTX_set1_sigalgs_list(cctx, ecdsa), 1);
	ck_assert_str_eq(served(cctx, srv, "a.test"), "a.test (ECDSA)");
	SSL_CTX_free(cctx);
	tls_server_free(srv);
}
END_TEST

static void
expect_load_error(const struct tls_cert_conf *names, size_t n, const char *want)
{
	struct tls_cert_conf certs[4];
	struct tls_server_conf conf;
	char *err = NULL;
	size_t i;

	for (i = 0; i < n; i++) {
		certs[i].cert_file = P(names[i].cert_file);
		certs[i].key_file = P(names[i].key_file);
		certs[i].ocsp_file = names[i].ocsp_file ? P(names[i].ocsp_file) : NULL;
	}
	tls_server_conf_init(&conf);
	conf.certs = certs;
	conf.ncerts = n;
	ck_assert_ptr_null(tls_server_new(&conf, NULL, &err));
	ck_assert_ptr_nonnull(err);
	ck_assert_msg(strncmp(err, want, strlen(want)) == 0, "got \"%s\", want \"%s...\"", err,
	              want);
	free(err);
	ck_assert_uint_eq(ERR_peek_error(), 0);
}

START_TEST(test_load_errors)
{
	static const struct tls_cert_conf mismatch[] = {{"a.pem", "b.key", NULL}};
	static const struct tls_cert_conf mismatch2[] = {{"a.pem", "a.key", NULL},
	                                                 {"c.pem", "aec.key", NULL}};
	static const struct tls_cert_conf missing[] = {{"none.pem", "a.key", NULL}};
	static const struct tls_cert_conf nokey[] = {{"a.pem", "none.key", NULL}};
	static const struct tls_cert_conf garbage[] = {{"garbage.pem", "a.key", NULL}};
	static const struct tls_cert_conf garbagekey[] = {{"a.pem", "garbage.pem", NULL}};
	static const struct tls_cert_conf keyascert[] = {{"a.key", "a.key", NULL}};
	static const struct tls_cert_conf noocsp[] = {{"a.pem", "a.key", "none.der"}};
	struct tls_server_conf conf;
	struct tls_cert_conf one;
	char want[PATH_MAX + 64], *err = NULL;

	snprintf(want, sizeof(want), "%s: key does not match certificate", P("b.key"));
	expect_load_error(mismatch, 1, want);
	snprintf(want, sizeof(want), "%s: key does not match certificate", P("aec.key"));
	expect_load_error(mismatch2, 2, want);
	snprintf(want, sizeof(want), "%s: No such file or directory", P("none.pem"));
	expect_load_error(missing, 1, want);
	snprintf(want, sizeof(want), "%s: No such file or directory", P("none.key"));
	expect_load_error(nokey, 1, want);
	snprintf(want, sizeof(want), "%s: no certificate", P("garbage.pem"));
	expect_load_error(garbage, 1, want);
	snprintf(want, sizeof(want), "%s: no certificate", P("a.key"));
	expect_load_error(keyascert, 1, want);
	snprintf(want, sizeof(want), "%s: no private key", P("garbage.pem"));
	expect_load_error(garbagekey, 1, want);
	snprintf(want, sizeof(want), "%s: No such file or directory", P("none.der"));
	expect_load_error(noocsp, 1, want);

	tls_server_conf_init(&conf);
	ck_assert_ptr_null(tls_server_new(&conf, NULL, &err));
	ck_assert_str_eq(err, "no certificate");
	free(err);

	one.cert_file = P("a.pem");
	one.key_file = P("a.key");
	one.ocsp_file = NULL;
	conf.certs = &one;
	conf.ncerts = 1;
	conf.ciphers = "NOTHING-AT-ALL";
	ck_assert_ptr_null(tls_server_new(&conf, NULL, &err));
	ck_assert_str_eq(err, "no usable cipher in \"NOTHING-AT-ALL\"");
	free(err);
	conf.ciphers = NULL;
	conf.ciphersuites = "TLS_NOPE";
	ck_assert_ptr_null(tls_server_new(&conf, NULL, &err));
	ck_assert_str_eq(err, "no usable TLS 1.3 cipher suite in \"TLS_NOPE\"");
	free(err);
}
END_TEST

/* The server's data lives as long as its SSL objects, not as long as the handle. */
START_TEST(test_free_while_live)
{
	struct tls_server *srv = server_new(certs_abc, 3, NULL, NULL);
	SSL_CTX *cctx = client_ctx(0, 0);
	SSL *sv = tls_server_ssl(srv), *cl = client_ssl(cctx, "x.b.test");

	tls_server_free(srv);
	ck_assert_int_eq(handshake(cl, sv), 0);
	ck_assert_str_eq(peer_cn(cl), "*.b.test");
	SSL_free(cl);
	SSL_free(sv);
	SSL_CTX_free(cctx);
}
END_TEST

/* ---- ALPN, OCSP --------------------------------------------------------------------------- */

/* The ALPN protocol the server chose for a client offering wire (NULL: none). */
static char *
alpn_with(struct tls_server *srv, const unsigned char *wire, unsigned int len)
{
	static char got[64];
	SSL_CTX *cctx = client_ctx(0, 0);
	SSL *cl = client_ssl(cctx, "a.test"), *sv = tls_server_ssl(srv);
	const unsigned char *p;
	unsigned int n;

	if (wire != NULL)
		ck_assert_int_eq(SSL_set_alpn_protos(cl, wire, len), 0);
	ck_assert_int_eq(handshake(cl, sv), 0);
	SSL_get0_alpn_selected(cl, &p, &n);
	ck_assert_uint_lt(n, sizeof(got));
	if (n > 0)
		memcpy(got, p, n);
	got[n] = '\0';
	SSL_free(cl), SSL_free(sv);
	SSL_CTX_free(cctx);
	return n == 0 ? NULL : got;
}

START_TEST(test_alpn)
{
	struct tls_server *srv = server_new(certs_abc, 1, NULL, NULL);

	ck_assert_pstr_eq(alpn_with(srv, (const unsigned char *)"\x02h2\x08http/1.1", 12),
	                  "http/1.1");
	ck_assert_pstr_eq(alpn_with(srv, (const unsigned char *)"\x08http/1.1", 9), "http/1.1");
	/* no common protocol: the handshake goes on without ALPN */
	ck_assert_pstr_eq(alpn_with(srv, (const unsigned char *)"\x02h2\x08http/1.0", 12), NULL);
	ck_assert_pstr_eq(alpn_with(srv, NULL, 0), NULL);
	tls_server_free(srv);
}
END_TEST

/* The stapled response a client (asking or not) received for sni; its length or -1. */
static long
stapled(struct tls_server *srv, int version, const char *sni, int ask, unsigned char *out)
{
	SSL_CTX *cctx = client_ctx(version, version);
	SSL *cl = client_ssl(cctx, sni), *sv = tls_server_ssl(srv);
	const unsigned char *p;
	long n;

	if (ask)
		ck_assert_int_eq(SSL_set_tlsext_status_type(cl, TLSEXT_STATUSTYPE_ocsp), 1);
	ck_assert_int_eq(handshake(cl, sv), 0);
	n = SSL_get_tlsext_status_ocsp_resp(cl, &p);
	if (n > 0)
		memcpy(out, p, (size_t)n);
	SSL_free(cl), SSL_free(sv);
	SSL_CTX_free(cctx);
	return n;
}

START_TEST(test_ocsp)
{
	static const struct tls_cert_conf certs[] = {
	        {"a.pem", "a.key", "ocsp.der"},
	        {"b.pem", "b.key", NULL},
	};
	struct tls_server *srv = server_new(certs, 2, NULL, NULL);
	unsigned char got[1024], want[300];
	FILE *f = fopen(P("ocsp.der"), "rb");
	int v;

	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fread(want, 1, sizeof(want), f), sizeof(want));
	fclose(f);
	for (v = TLS1_2_VERSION; v <= TLS1_3_VERSION; v++) {
		memset(got, 0, sizeof(got));
		ck_assert_int_eq(stapled(srv, v, "a.test", 1, got), (long)sizeof(want));
		ck_assert_int_eq(memcmp(got, want, sizeof(want)), 0);
		/* not asked, or a certificate without a response: nothing stapled */
		ck_assert_int_eq(stapled(srv, v, "a.test", 0, got), -1);
		ck_assert_int_eq(stapled(srv, v, "x.b.test", 1, got), -1);
	}
	tls_server_free(srv);
}
END_TEST

/* ---- server sessions -------------------------------------------------------------------- */

/*
 * Handshake of a client (versions [v, v], offering *sess) with srv. Returns whether the
 * session was reused, and leaves the client's new session in *sess.
 */
static int
resume(struct tls_server *srv, int v, SSL_SESSION **sess)
{
	SSL_CTX *cctx = client_ctx(v, v);
	SSL *cl = client_ssl(cctx, "a.test"), *sv = tls_server_ssl(srv);
	int reused;

	if (*sess != NULL)
		ck_assert_int_eq(SSL_set_session(cl, *sess), 1);
	if (handshake(cl, sv) != 0)
		ck_abort_msg("handshake: %s", hs_err);
	reused = SSL_session_reused(cl);
	ck_assert_int_eq(reused, SSL_session_reused(sv));
	SSL_SESSION_free(*sess);
	*sess = SSL_get1_session(cl);
	ck_assert_ptr_nonnull(*sess);
	tls_ssl_quiet_close(cl);
	tls_ssl_quiet_close(sv);
	SSL_free(cl), SSL_free(sv);
	SSL_CTX_free(cctx);
	return reused;
}

START_TEST(test_resume_session_id)
{
	struct tls_server_conf conf;
	struct tls_server *srv;
	SSL_SESSION *sess = NULL;
	int v;

	tls_server_conf_init(&conf);
	conf.tickets = 0;
	srv = server_new(certs_abc, 3, &conf, NULL);
	for (v = TLS1_2_VERSION; v <= TLS1_3_VERSION; v++) {
		ck_assert_int_eq(resume(srv, v, &sess), 0);
		ck_assert_int_eq(resume(srv, v, &sess), 1);
		ck_assert_int_eq(resume(srv, v, &sess), 1);
		SSL_SESSION_free(sess);
		sess = NULL;
	}
	tls_server_free(srv);

	/* no cache, no tickets: nothing resumes */
	conf.session_cache_size = 0;
	srv = server_new(certs_abc, 3, &conf, NULL);
	for (v = TLS1_2_VERSION; v <= TLS1_3_VERSION; v++) {
		ck_assert_int_eq(resume(srv, v, &sess), 0);
		ck_assert_int_eq(resume(srv, v, &sess), 0);
		SSL_SESSION_free(sess);
		sess = NULL;
	}
	tls_server_free(srv);
}
END_TEST

/* Tickets: resumption on the same generation, on a reload (prev), not on a stranger. */
START_TEST(test_resume_ticket_reload)
{
	struct tls_server_conf conf;
	struct tls_server *srv1, *srv2, *other;
	SSL_SESSION *sess = NULL, *keep;
	int v;

	tls_server_conf_init(&conf);
	conf.session_cache_size = 0; /* tickets alone */
	srv1 = server_new(certs_abc, 3, &conf, NULL);
	other = server_new(certs_abc, 3, &conf, NULL);
	for (v = TLS1_2_VERSION; v <= TLS1_3_VERSION; v++) {
		ck_assert_int_eq(resume(srv1, v, &sess), 0);
		ck_assert_int_gt(SSL_SESSION_has_ticket(sess), 0);
		keep = sess;
		SSL_SESSION_up_ref(keep);
		ck_assert_int_eq(resume(srv1, v, &sess), 1);
		SSL_SESSION_free(sess);
		sess = keep;
		ck_assert_int_eq(resume(other, v, &sess), 0);
		SSL_SESSION_free(sess);
		sess = NULL;
	}

	/* a reload: the new generation accepts the old one's tickets */
	for (v = TLS1_2_VERSION; v <= TLS1_3_VERSION; v++) {
		srv2 = NULL;
		ck_assert_int_eq(resume(srv1, v, &sess), 0);
		srv2 = server_new(certs_abc, 3, &conf, srv1);
		ck_assert_ptr_null(tls_server_note(srv2));
		ck_assert_int_eq(resume(srv2, v, &sess), 1);
		tls_server_free(srv1);
		/* and issues tickets that the next one accepts */
		srv1 = server_new(certs_abc, 3, &conf, srv2);
		tls_server_free(srv2);
		ck_assert_int_eq(resume(srv1, v, &sess), 1);
		SSL_SESSION_free(sess);
		sess = NULL;
	}
	tls_server_free(srv1);
	tls_server_free(other);
}
END_TEST

static uint64_t fake_now_s;

static uint64_t
fake_now(void *arg)
{
	(void)arg;
	return fake_now_s;
}

/* Keys rotate every 12 h: a ticket lives through one rotation, not two. */
START_TEST(test_ticket_rotation)
{
	struct tls_server_conf conf;
	struct tls_server *srv, *srv2;
	SSL_SESSION *old = NULL, *sess = NULL;
	int v;

	tls_server_conf_init(&conf);
	conf.session_cache_size = 0;
	srv = server_new(certs_abc, 1, &conf, NULL);
	fake_now_s = 1000000;
	tls_server_set_clock(srv, fake_now, NULL);
	for (v = TLS1_2_VERSION; v <= TLS1_3_VERSION; v++) {
		ck_assert_int_eq(resume(srv, v, &old), 0);
		fake_now_s += TLS_TICKET_ROTATE_S - 1;
		sess = old;
		SSL_SESSION_up_ref(sess);
		ck_assert_int_eq(resume(srv, v, &sess), 1); /* still the current key */
		SSL_SESSION_free(sess);
		fake_now_s += 2;
		sess = old;
		SSL_SESSION_up_ref(sess);
		ck_assert_int_eq(resume(srv, v, &sess), 1); /* the previous key */
		/* sess now holds a ticket under the new key; the ring is shared by a reload */
		srv2 = server_new(certs_abc, 1, &conf, srv);
		tls_server_free(srv);
		srv = srv2;
		fake_now_s += TLS_TICKET_ROTATE_S;
		ck_assert_int_eq(resume(srv, v, &old), 0); /* two rotations: gone */
		ck_assert_int_eq(resume(srv, v, &sess), 1);
		SSL_SESSION_free(sess);
		SSL_SESSION_free(old);
		old = sess = NULL;
	}
	tls_server_free(srv);
}
END_TEST

/* ---- privilege drop --------------------------------------------------------------------- */

/* What the "dropped" process finds; 0 when all is as expected. */
static int
eacces_check(struct tls_server *prev, struct tls_server *stranger)
{
	struct tls_server_conf conf;
	struct tls_cert_conf certs[2];
	struct tls_server *srv;
	SSL_CTX *cctx;
	char *err = NULL;
	const char *note;
	FILE *f;

	if ((f = fopen(P("a.key"), "r")) != NULL || errno != EACCES) {
		fprintf(stderr, "a.key is readable, cannot test\n");
		return 1;
	}
	tls_server_conf_init(&conf);
	certs[0].cert_file = P("a.pem");
	certs[0].key_file = P("a.key");
	certs[0].ocsp_file = NULL;
	certs[1].cert_file = P("b.pem");
	certs[1].key_file = P("b.key");
	certs[1].ocsp_file = NULL;
	conf.certs = certs;
	conf.ncerts = 2;
	/* without prev: the error names the file */
	if ((srv = tls_server_new(&conf, NULL, &err)) != NULL ||
	    strstr(err, "a.key: Permission denied") == NULL) {
		fprintf(stderr, "no prev: %s\n", err ? err : "loaded");
		return 2;
	}
	free(err);
	/* a prev without that file does not help */
	if ((srv = tls_server_new(&conf, stranger, &err)) != NULL) {
		fprintf(stderr, "stranger prev: loaded\n");
		return 3;
	}
	free(err);
	/* with it: the key in memory is reused, and said so */
	if ((srv = tls_server_new(&conf, prev, &err)) == NULL) {
		fprintf(stderr, "prev: %s\n", err);
		return 4;
	}
	note = tls_server_note(srv);
	if (note == NULL || strstr(note, "a.key: Permission denied, reusing the key") == NULL) {
		fprintf(stderr, "note: %s\n", note ? note : "(none)");
		return 5;
	}
	cctx = client_ctx(0, 0);
	if (strcmp(served(cctx, srv, "a.test"), "a.test") != 0 ||
	    strcmp(served(cctx, srv, "q.b.test"), "*.b.test") != 0)
		return 6;
	SSL_CTX_free(cctx);
	tls_server_free(srv);
	return 0;
}

START_TEST(test_eacces_reuse)
{
	static const struct tls_cert_conf bonly[] = {{"b.pem", "b.key", NULL}};
	struct tls_server *prev = server_new(certs_abc, 2, NULL, NULL);
	struct tls_server *stranger = server_new(bonly, 1, NULL, NULL);
	char dir[PATH_MAX];
	int status;
	pid_t pid;

	ck_assert_ptr_null(tls_server_note(prev));
	ck_assert_int_eq(chmod(P("a.key"), 0), 0);
	if (geteuid() != 0) {
		ck_assert_int_eq(eacces_check(prev, stranger), 0);
	} else {
		/* root reads anything: check in a child that became nobody */
		snprintf(dir, sizeof(dir), "%s", pki);
		ck_assert_int_eq(chmod(dir, 0711), 0);
		ck_assert_int_eq(chmod(dirname(dir), 0711), 0);
		pid = fork();
		ck_assert_int_ne(pid, -1);
		if (pid == 0) {
			if (setgid(65534) == -1 || setuid(65534) == -1)
				_exit(99);
			_exit(eacces_check(prev, stranger));
		}
		ck_assert_int_eq(waitpid(pid, &status, 0), pid);
		ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d",
		              status);
	}
	ck_assert_int_eq(chmod(P("a.key"), 0600), 0);
	tls_server_free(prev);
	tls_server_free(stranger);
}
END_TEST

/* ---- upstream side ---------------------------------------------------------------------- */

/*
 * Handshake of tls_client c (sni, peer_key) with srv. Returns the handshake result; the
 * verification error (or NULL) in *verr, whether the session was reused in *reused.
 */
static int
upstream(struct tls_client *c, struct tls_server *srv, const char *sni, const char *peer_key,
         const char **verr, int *reused, int done)
{
	SSL *cl = tls_client_ssl(c, sni, peer_key), *sv = tls_server_ssl(srv);
	const unsigned char *p;
	unsigned int n;
	int r;

	ck_assert_ptr_nonnull(cl);
	r = handshake(cl, sv);
	*verr = tls_verify_error(cl);
	*reused = SSL_session_reused(cl);
	if (r == 0) {
		SSL_get0_alpn_selected(cl, &p, &n);
		ck_assert_uint_eq(n, 8);
		ck_assert_int_eq(memcmp(p, "http/1.1", 8), 0);
		if (done)
			tls_client_session_done(c, cl);
	}
	SSL_free(cl), SSL_free(sv);
	return r;
}

START_TEST(test_client_verify)
{
	struct tls_server *srv = server_new(certs_abc, 2, NULL, NULL);
	struct tls_client *c, *wrong, *off;
	const char *verr;
	char *err = NULL, want[PATH_MAX + 64];
	int reused;

	c = tls_client_new(1, P("root.pem"), &err);
	ck_assert_ptr_nonnull(c);
	ck_assert_int_eq(upstream(c, srv, "a.test", NULL, &verr, &reused, 1), 0);
	ck_assert_ptr_null(verr);
	ck_assert_int_eq(upstream(c, srv, "w.b.test", NULL, &verr, &reused, 1), 0);
	ck_assert_ptr_null(verr);
	/* the IP literal is checked against the certificate's IP addresses */
	ck_assert_int_eq(upstream(c, srv, "127.0.0.1", NULL, &verr, &reused, 1), 0);
	ck_assert_ptr_null(verr);
	ck_assert_int_eq(upstream(c, srv, "127.0.0.2", NULL, &verr, &reused, 1), -1);
	ck_assert_pstr_eq(verr, "IP address mismatch");
	/* a name the certificate does not carry (the server sends its default) */
	ck_assert_int_eq(upstream(c, srv, "z.test", NULL, &verr, &reused, 1), -1);
	ck_assert_pstr_eq(verr, "hostname mismatch");
	ck_assert_int_eq(upstream(c, srv, "b.test", NULL, &verr, &reused, 1), -1);
	ck_assert_pstr_eq(verr, "hostname mismatch");
	/* no name: the chain alone */
	ck_assert_int_eq(upstream(c, srv, NULL, NULL, &verr, &reused, 1), 0);

	wrong = tls_client_new(1, P("other-root.pem"), &err);
	ck_assert_ptr_nonnull(wrong);
	ck_assert_int_eq(upstream(wrong, srv, "a.test", NULL, &verr, &reused, 1), -1);
	ck_assert_pstr_eq(verr, "unable to get local issuer certificate");
	ck_assert_ptr_nonnull(strstr(hs_err, "certificate verify failed"));

	/* verify=off: the handshake goes on, the result is still known */
	off = tls_client_new(0, P("other-root.pem"), &err);
	ck_assert_ptr_nonnull(off);
	ck_assert_int_eq(upstream(off, srv, "a.test", NULL, &verr, &reused, 1), 0);
	ck_assert_pstr_eq(verr, "unable to get local issuer certificate");
	ck_assert_int_eq(upstream(off, srv, "z.test", NULL, &verr, &reused, 1), 0);
	tls_client_free(off);
	off = tls_client_new(0, NULL, &err); /* system paths */
	ck_assert_ptr_nonnull(off);
	ck_assert_int_eq(upstream(off, srv, "a.test", NULL, &verr, &reused, 1), 0);

	tls_client_free(c);
	tls_client_free(wrong);
	tls_client_free(off);
	tls_server_free(srv);

	ck_assert_ptr_null(tls_client_new(1, P("none.pem"), &err));
	snprintf(want, sizeof(want), "%s: No such file or directory", P("none.pem"));
	ck_assert_str_eq(err, want);
	free(err);
	ck_assert_ptr_null(tls_client_new(1, P("garbage.pem"), &err));
	ck_assert_ptr_nonnull(strstr(err, "garbage.pem: no CA certificate"));
	free(err);
}
END_TEST

START_TEST(test_client_session_reuse)
{
	struct tls_server_conf conf;
	struct tls_server *srv;
	struct tls_client *c;
	const char *verr;
	char *err = NULL;
	int reused, v;

	for (v = 0; v < 2; v++) {
		tls_server_conf_init(&conf);
		conf.protocols = v ? TLS_PROTO_TLSv1_3 : TLS_PROTO_TLSv1_2;
		srv = server_new(certs_abc, 2, &conf, NULL);
		c = tls_client_new(1, P("root.pem"), &err);
		ck_assert_ptr_nonnull(c);

		ck_assert_int_eq(upstream(c, srv, "a.test", "10.0.0.1:443", &verr, &reused, 1), 0);
		ck_assert_int_eq(reused, 0);
		ck_assert_uint_eq(tls_client_cached(c), 1);
		ck_assert_int_eq(upstream(c, srv, "a.test", "10.0.0.1:443", &verr, &reused, 1), 0);
		ck_assert_int_eq(reused, 1);
		ck_assert_int_eq(upstream(c, srv, "a.test", "10.0.0.1:443", &verr, &reused, 1), 0);
		ck_assert_int_eq(reused, 1);
		/* another peer, or another name on the same peer: its own session */
		ck_assert_int_eq(upstream(c, srv, "a.test", "10.0.0.2:443", &verr, &reused, 1), 0);
		ck_assert_int_eq(reused, 0);
		ck_assert_int_eq(upstream(c, srv, "x.b.test", "10.0.0.1:443", &verr, &reused, 1),
		                 0);
		ck_assert_int_eq(reused, 0);
		ck_assert_uint_eq(tls_client_cached(c), 3);
		/* not declared done: not cached */
		ck_assert_int_eq(upstream(c, srv, "a.test", "10.0.0.3:443", &verr, &reused, 0), 0);
		ck_assert_int_eq(upstream(c, srv, "a.test", "10.0.0.3:443", &verr, &reused, 1), 0);
		ck_assert_int_eq(reused, 0);
		/* no peer key: no reuse */
		ck_assert_int_eq(upstream(c, srv, "a.test", NULL, &verr, &reused, 1), 0);
		ck_assert_int_eq(upstream(c, srv, "a.test", NULL, &verr, &reused, 1), 0);
		ck_assert_int_eq(reused, 0);
		ck_assert_uint_eq(tls_client_cached(c), 4);
		tls_client_free(c);
		tls_server_free(srv);
	}
}
END_TEST

static unsigned long
next_code(void *arg)
{
	unsigned long **p = arg;

	return *(*p)++;
}

/* Many threads on one server and one client, while the ticket keys rotate. */
struct hs_thread {
	struct tls_server *srv;
	struct tls_client *c;
	int n, ok, reused;
	char err[256];
};

static atomic_uint_fast64_t spin_now_s;

static uint64_t
spin_now(void *arg)
{
	(void)arg;
	return atomic_fetch_add(&spin_now_s, TLS_TICKET_ROTATE_S / 64);
}

static void *
hs_thread_run(void *arg)
{
	struct hs_thread *t = arg;
	static const char *const peers[] = {"10.0.0.1:443", "10.0.0.2:443", "10.0.0.3:443"};
	int i;

	for (i = 0; i < t->n; i++) {
		SSL *cl = tls_client_ssl(t->c, i % 2 ? "a.test" : "x.b.test", peers[i % 3]);
		SSL *sv = tls_server_ssl(t->srv);

		if (cl != NULL && sv != NULL && hs_pump(cl, sv, t->err, sizeof(t->err)) == 0 &&
		    tls_verify_error(cl) == NULL) {
			t->ok++;
			t->reused += SSL_session_reused(cl);
			tls_client_session_done(t->c, cl);
		}
		SSL_free(cl);
		SSL_free(sv);
	}
	return NULL;
}

START_TEST(test_threads)
{
	struct tls_server *srv = server_new(certs_abc, 2, NULL, NULL);
	struct tls_client *c;
	struct hs_thread t[4];
	pthread_t tid[4];
	char *err = NULL;
	int i, reused = 0;

	c = tls_client_new(1, P("root.pem"), &err);
	ck_assert_ptr_nonnull(c);
	atomic_init(&spin_now_s, 1000);
	tls_server_set_clock(srv, spin_now, NULL);
	for (i = 0; i < 4; i++) {
		memset(&t[i], 0, sizeof(t[i]));
		t[i].srv = srv;
		t[i].c = c;
		t[i].n = 25;
		ck_assert_int_eq(pthread_create(&tid[i], NULL, hs_thread_run, &t[i]), 0);
	}
	for (i = 0; i < 4; i++) {
		ck_assert_int_eq(pthread_join(tid[i], NULL), 0);
		ck_assert_msg(t[i].ok == t[i].n, "thread %d: %d of %d (%s)", i, t[i].ok, t[i].n,
		              t[i].err);
		reused += t[i].reused;
	}
	ck_assert_int_gt(reused, 25); /* rotations cost some resumptions */
	tls_client_free(c);
	tls_server_free(srv);
}
END_TEST

START_TEST(test_error_string)
{
	unsigned long codes[3], *cur = codes;

	char buf[128], small[8];

	ERR_clear_error();
	ck_assert_str_eq(tls_error_string(buf, sizeof(buf)), "unknown TLS error");
	ERR_raise(ERR_LIB_SSL, SSL_R_UNSUPPORTED_PROTOCOL);
	ERR_raise(ERR_LIB_SSL, SSL_R_NO_SHARED_CIPHER);
	ck_assert_str_eq(tls_error_string(buf, sizeof(buf)),
	                 "unsupported protocol; no shared cipher");
	ck_assert_uint_eq(ERR_peek_error(), 0);
	ERR_raise(ERR_LIB_SSL, SSL_R_UNSUPPORTED_PROTOCOL);
	ERR_raise(ERR_LIB_SSL, SSL_R_NO_SHARED_CIPHER);
	ck_assert_str_eq(tls_error_string(small, sizeof(small)), "unsuppo");
	ck_assert_uint_eq(ERR_peek_error(), 0); /* drained all the same */

	/* codes collected elsewhere (bufferevent_get_openssl_error) */
	codes[0] = ERR_PACK(ERR_LIB_SSL, 0, SSL_R_WRONG_VERSION_NUMBER);
	codes[1] = ERR_PACK(ERR_LIB_SSL, 0, SSL_R_CERTIFICATE_VERIFY_FAILED);
	codes[2] = 0;
	ck_assert_str_eq(tls_errors_string(buf, sizeof(buf), next_code, &cur),
	                 "wrong version number; certificate verify failed");
	cur = codes + 2;
	ck_assert_str_eq(tls_errors_string(buf, sizeof(buf), next_code, &cur), "unknown TLS error");
}
END_TEST

static Suite *
tls_suite(void)
{
	Suite *s = suite_create("tls");
	TCase *tc;

	tc = tcase_create("server");
	tcase_add_unchecked_fixture(tc, pki_setup, pki_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_protocols_parse);
	tcase_add_test(tc, test_protocol_refused);
	tcase_add_test(tc, test_sni);
	tcase_add_test(tc, test_sni_exact_first_and_dual);
	tcase_add_test(tc, test_load_errors);
	tcase_add_test(tc, test_free_while_live);
	tcase_add_test(tc, test_alpn);
	tcase_add_test(tc, test_ocsp);
	tcase_add_test(tc, test_resume_session_id);
	tcase_add_test(tc, test_resume_ticket_reload);
	tcase_add_test(tc, test_ticket_rotation);
	tcase_add_test(tc, test_eacces_reuse);
	suite_add_tcase(s, tc);

	tc = tcase_create("client");
	tcase_add_unchecked_fixture(tc, pki_setup, pki_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_client_verify);
	tcase_add_test(tc, test_client_session_reuse);
	tcase_add_test(tc, test_threads);
	tcase_add_test(tc, test_error_string);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	return unit_main("test_tls", tls_suite());
}
