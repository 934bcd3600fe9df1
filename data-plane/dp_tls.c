/* OpenSSL on the data path (see dp_tls.h). This module owns the process-wide TLS
 * state: the protocol range and ciphers (ssl_protocols, ssl_cipher_suite), the
 * default certificate, the session ticket key ring, and a cache of server contexts
 * keyed by certificate id and content so that a new runtime reuses what did not
 * change. It does not drive connections (dp_xprt_tls does: handshakes, reads and
 * writes), and it does not pick routes (dp_router does): it only says which SSL_CTX a
 * ClientHello's SNI gets, and builds the contexts.
 *
 * Threads: dp_tls_init/fini run on the main thread; dp_tls_certs_new/free and
 * dp_tls_upstream_ctx_new on the sync thread (the certificate cache has a mutex for
 * safety); workers call dp_tls_certs_select and dp_tls_upstream_prepare (through
 * dp_xprt_tls), which take no locks and allocate nothing but what OpenSSL does. */
#include "dp_tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/decoder.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "st_conf.h"
#include "st_entity.h"
#include "st_err.h"
#include "st_file.h"
#include "st_log.h"
#include "st_snapshot.h"
#include "st_ssl.h"
#include "st_util.h"

/* ------------------------------------------------------------------------------------ */
/* Protocols and cipher suites                                                          */

#define PROTO_TLS11 (1u << 0)
#define PROTO_TLS12 (1u << 1)
#define PROTO_TLS13 (1u << 2)

/* Kong's ssl_cipher_suite profiles (kong/conf_loader/constants.lua, Mozilla Server
 * Side TLS 5.7). Kong's `old` also allows TLSv1, which ssl_protocols cannot name. */
struct tls_suite {
    const char *name;
    unsigned protocols;
    const char *ciphers; /* TLS <= 1.2 list; NULL: OpenSSL's default */
    bool prefer_server;
};

#define CIPHERS_INTERMEDIATE                                                                       \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                                   \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                                   \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"                                   \
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305"

#define CIPHERS_OLD                                                                                \
    CIPHERS_INTERMEDIATE ":"                                                                       \
                         "ECDHE-ECDSA-AES128-SHA256:ECDHE-RSA-AES128-SHA256:"                      \
                         "ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:"                            \
                         "ECDHE-ECDSA-AES256-SHA384:ECDHE-RSA-AES256-SHA384:"                      \
                         "ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES256-SHA:"                            \
                         "DHE-RSA-AES128-SHA256:DHE-RSA-AES256-SHA256:"                            \
                         "AES128-GCM-SHA256:AES256-GCM-SHA384:AES128-SHA256:AES256-SHA256:"        \
                         "AES128-SHA:AES256-SHA:DES-CBC3-SHA"

static const struct tls_suite tls_suites[] = {
    {"modern", PROTO_TLS13, NULL, false},
    {"intermediate", PROTO_TLS12 | PROTO_TLS13, CIPHERS_INTERMEDIATE, false},
    {"old", PROTO_TLS11 | PROTO_TLS12 | PROTO_TLS13, CIPHERS_OLD, true},
    {"fips", PROTO_TLS12, "TLSv1.2+FIPS:kRSA+FIPS:!eNULL:!aNULL", true},
};

/* A ticket key: 16 bytes of name, AES-256-CBC key, HMAC-SHA256 key (RFC 5077 §4). */
struct tls_tkey {
    unsigned char name[16];
    unsigned char aes[32];
    unsigned char hmac[32];
};

/* Four slots: `cur` encrypts, `cur - 1` still decrypts, and a rotation writes at most
 * the two slots after `cur`, never one a reader may be using. */
#define TKEY_SLOTS 4

/* A cached server context: the certificate entity's id and a digest of its PEMs. */
struct tls_cache_ent {
    char *id;
    unsigned char digest[32];
    SSL_CTX *ctx; /* NULL: the certificate did not load (logged once) */
    bool taken;   /* moved into the next build's cache */
};

/* The process-wide state (DESIGN.md "TLS session tickets": one ring for every context).
 * Read-only after dp_tls_init except the ticket ring and the certificate cache. */
static struct {
    bool inited;
    int min_version, max_version;
    uint64_t no_versions; /* SSL_OP_NO_TLSv1_x for holes in the range */
    char *ciphers;        /* NULL: OpenSSL's default */
    bool prefer_server;
    bool tickets;
    SSL_CTX *dflt;
    EVP_CIPHER *aes;

    struct tls_tkey keys[TKEY_SLOTS];
    atomic_uint cur;               /* keys[cur % TKEY_SLOTS] encrypts */
    _Atomic int64_t next_rotation; /* st_mono_ms() */
    int64_t period;
    atomic_uint_fast64_t rotations;

    pthread_mutex_t cache_lock;
    struct tls_cache_ent *cache; /* sorted by id */
    size_t n_cache;
} tls = {.cache_lock = PTHREAD_MUTEX_INITIALIZER};

/* Parses ssl_protocols ("TLSv1.2 TLSv1.3") to PROTO_* flags; 0 on an unknown word. */
static unsigned
protocols_parse(const char *s, char *bad, size_t size)
{
    static const struct {
        const char *name;
        unsigned flag;
    } names[] = {{"TLSv1.1", PROTO_TLS11}, {"TLSv1.2", PROTO_TLS12}, {"TLSv1.3", PROTO_TLS13}};
    unsigned out = 0;
    size_t i, n;

    while (s != NULL && *s != '\0') {
        s += strspn(s, " \t,");
        n = strcspn(s, " \t,");
        if (n == 0) {
            break;
        }
        for (i = 0; i < ST_ARRAY_SIZE(names); i++) {
            if (strlen(names[i].name) == n && strncmp(s, names[i].name, n) == 0) {
                out |= names[i].flag;
                break;
            }
        }
        if (i == ST_ARRAY_SIZE(names)) {
            snprintf(bad, size, "%.*s", (int)(n > 32 ? 32 : n), s);
            return 0;
        }
        s += n;
    }
    return out;
}

static int
proto_version(unsigned flag)
{
    return flag == PROTO_TLS11   ? TLS1_1_VERSION
           : flag == PROTO_TLS12 ? TLS1_2_VERSION
                                 : TLS1_3_VERSION;
}

/* Fills tls.min_version, max_version, no_versions, ciphers, prefer_server. */
static int
protocols_init(const struct st_conf *conf, struct st_err *err)
{
    const char *protos = conf->ssl_protocols != NULL ? conf->ssl_protocols : "TLSv1.2 TLSv1.3";
    const char *name = conf->ssl_cipher_suite != NULL ? conf->ssl_cipher_suite : "intermediate";
    const struct tls_suite *suite = NULL;
    unsigned mask, f, lo = 0, hi = 0;
    char bad[40] = "";
    size_t i;

    for (i = 0; i < ST_ARRAY_SIZE(tls_suites); i++) {
        if (strcmp(tls_suites[i].name, name) == 0) {
            suite = &tls_suites[i];
        }
    }
    if (suite == NULL) {
        return st_err_set(err, -ST_ECONF, "ssl_cipher_suite",
                          "ssl_cipher_suite: '%s' is not one of: modern, intermediate, old, fips",
                          name);
    }
    mask = protocols_parse(protos, bad, sizeof(bad));
    if (mask == 0) {
        return st_err_set(err, -ST_ECONF, "ssl_protocols", "ssl_protocols: unknown protocol '%s'",
                          bad);
    }
    if ((mask & suite->protocols) == 0) {
        return st_err_set(err, -ST_ECONF, "ssl_protocols",
                          "ssl_protocols: no TLS version of '%s' is allowed by ssl_cipher_suite "
                          "'%s' (%s)",
                          protos, name,
                          suite->protocols == PROTO_TLS13   ? "TLSv1.3 only"
                          : suite->protocols == PROTO_TLS12 ? "TLSv1.2 only"
                                                            : "TLSv1.1 to TLSv1.3");
    }
    mask &= suite->protocols;
    for (f = PROTO_TLS11; f <= PROTO_TLS13; f <<= 1) {
        if ((mask & f) != 0) {
            lo = lo == 0 ? f : lo;
            hi = f;
        }
    }
    tls.min_version = proto_version(lo);
    tls.max_version = proto_version(hi);
    tls.no_versions = 0;
    if (lo < PROTO_TLS12 && hi > PROTO_TLS12 && (mask & PROTO_TLS12) == 0) {
        tls.no_versions = SSL_OP_NO_TLSv1_2;
    }
    tls.prefer_server = suite->prefer_server;
    tls.ciphers = NULL;
    if (suite->ciphers != NULL) {
        /* OpenSSL 3's default security level refuses what TLS 1.1 needs (SHA-1
         * signatures); Mozilla's `old` profile lowers it the same way. */
        size_t n = strlen(suite->ciphers) + sizeof(":@SECLEVEL=0");

        tls.ciphers = st_xmalloc(n);
        snprintf(tls.ciphers, n, "%s%s", suite->ciphers, lo == PROTO_TLS11 ? ":@SECLEVEL=0" : "");
    }
    return 0;
}

/* ------------------------------------------------------------------------------------ */
/* Session ticket key ring                                                              */

static int
tkey_fill(struct tls_tkey *k)
{
    struct tls_tkey fresh;

    if (RAND_bytes(fresh.name, sizeof(fresh.name)) != 1 ||
        RAND_priv_bytes(fresh.aes, sizeof(fresh.aes)) != 1 ||
        RAND_priv_bytes(fresh.hmac, sizeof(fresh.hmac)) != 1) {
        ERR_clear_error();
        return -EIO;
    }
    *k = fresh;
    OPENSSL_cleanse(&fresh, sizeof(fresh));
    return 0;
}

/* Lazy rotation: the first thread that sees the rotation time passed wins the
 * compare-and-swap on it, writes the next slot and then publishes it. After two or
 * more missed periods the previous key is stale too, so two slots move at once. */
static void
tkey_maybe_rotate(int64_t now)
{
    int64_t next = atomic_load_explicit(&tls.next_rotation, memory_order_relaxed);
    int64_t periods;
    unsigned cur, n, i;

    if (now < next) {
        return;
    }
    periods = (now - next) / tls.period + 1;
    if (!atomic_compare_exchange_strong(&tls.next_rotation, &next, next + periods * tls.period)) {
        return;
    }
    n = periods >= 2 ? 2 : 1;
    cur = atomic_load_explicit(&tls.cur, memory_order_relaxed);
    for (i = 1; i <= n; i++) {
        if (tkey_fill(&tls.keys[(cur + i) % TKEY_SLOTS]) != 0) {
            st_log(ST_LOG_ERR, 0, "TLS session ticket key rotation failed: no random bytes");
            return;
        }
    }
    atomic_store_explicit(&tls.cur, cur + n, memory_order_release);
    atomic_fetch_add_explicit(&tls.rotations, n, memory_order_relaxed);
}

/* SSL_CTX_set_tlsext_ticket_key_evp_cb: 1 encrypt or decrypt with the current key,
 * 2 decrypted with the previous key (OpenSSL issues a fresh ticket), 0 unknown key
 * (full handshake), -1 failure. */
static int
tkey_cb(SSL *ssl, unsigned char name[16], unsigned char *iv, EVP_CIPHER_CTX *cctx,
        EVP_MAC_CTX *hctx, int enc)
{
    const struct tls_tkey *k;
    OSSL_PARAM params[3];
    unsigned cur;
    int rc = 1;

    tkey_maybe_rotate(st_mono_ms());
    cur = atomic_load_explicit(&tls.cur, memory_order_acquire);
    k = &tls.keys[cur % TKEY_SLOTS];
    /* TLS 1.3 clients use a ticket once: a resumption must hand out a fresh one (2 =
     * renew), or every other connection would be a full handshake. TLS 1.2 tickets are
     * reusable, and renewed only when sealed by the previous key. */
    if (!enc && SSL_version(ssl) >= TLS1_3_VERSION) {
        rc = 2;
    }
    if (enc) {
        if (RAND_bytes(iv, EVP_CIPHER_get_iv_length(tls.aes)) != 1) {
            return -1;
        }
        memcpy(name, k->name, sizeof(k->name));
        if (EVP_EncryptInit_ex2(cctx, tls.aes, k->aes, iv, NULL) != 1) {
            return -1;
        }
    } else {
        if (memcmp(name, k->name, sizeof(k->name)) != 0) {
            k = &tls.keys[(cur + TKEY_SLOTS - 1) % TKEY_SLOTS];
            if (memcmp(name, k->name, sizeof(k->name)) != 0) {
                return 0;
            }
            rc = 2;
        }
        if (EVP_DecryptInit_ex2(cctx, tls.aes, k->aes, iv, NULL) != 1) {
            return -1;
        }
    }
    params[0] =
        OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, (void *)k->hmac, sizeof(k->hmac));
    params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
    params[2] = OSSL_PARAM_construct_end();
    if (EVP_MAC_CTX_set_params(hctx, params) != 1) {
        return -1;
    }
    return rc;
}

uint64_t
dp_tls_ticket_rotations(void)
{
    return atomic_load_explicit(&tls.rotations, memory_order_relaxed);
}

/* ------------------------------------------------------------------------------------ */
/* Contexts and PEM loading                                                             */

#define TLS_MODES                                                                                  \
    (SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS)

/* Kong's ssl_session_timeout default (1d): how long a ticket's session stays valid. */
#define TLS_SESSION_TIMEOUT_S 86400

/* A server context with the process-wide settings and no certificate. */
static SSL_CTX *
server_ctx_new(void)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    uint64_t opts = SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF | tls.no_versions;

    if (ctx == NULL) {
        return NULL;
    }
    if (tls.prefer_server) {
        opts |= SSL_OP_CIPHER_SERVER_PREFERENCE;
    }
    if (!tls.tickets) {
        opts |= SSL_OP_NO_TICKET;
    }
    SSL_CTX_set_options(ctx, opts);
    SSL_CTX_set_mode(ctx, TLS_MODES);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    /* TLS 1.3 sends two tickets by default; one resumes as well and halves the ticket
     * work of every full handshake. Without tickets (and no cache) none would resume. */
    SSL_CTX_set_num_tickets(ctx, tls.tickets ? 1 : 0);
    SSL_CTX_set_timeout(ctx, TLS_SESSION_TIMEOUT_S);
    SSL_CTX_set_dh_auto(ctx, 1);
    if (SSL_CTX_set_min_proto_version(ctx, tls.min_version) != 1 ||
        SSL_CTX_set_max_proto_version(ctx, tls.max_version) != 1 ||
        SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"strait", 6) != 1 ||
        (tls.ciphers != NULL && SSL_CTX_set_cipher_list(ctx, tls.ciphers) != 1) ||
        (tls.tickets && SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, tkey_cb) != 1)) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

/* Reads PEM private keys with one OpenSSL decoder context for many keys. OpenSSL 3.0
 * builds a decoder chain for every PEM_read_bio_PrivateKey() (about 1 ms, most of the
 * cost of a certificate's context); a reused one decodes a key in about 0.1 ms. A key
 * it does not read goes the usual way, so what loads (and every error) is unchanged. */
struct key_reader {
    OSSL_DECODER_CTX *dctx; /* NULL: always the usual way */
    EVP_PKEY *out;          /* where the decoder puts its key */
    bool tried;             /* key_reader_init ran */
};

static void
key_reader_init(struct key_reader *kr)
{
    kr->tried = true;
    kr->out = NULL;
    kr->dctx =
        OSSL_DECODER_CTX_new_for_pkey(&kr->out, "PEM", NULL, NULL, EVP_PKEY_KEYPAIR, NULL, NULL);
    if (kr->dctx != NULL &&
        OSSL_DECODER_CTX_set_pem_password_cb(kr->dctx, st_ssl_no_passphrase, NULL) != 1) {
        OSSL_DECODER_CTX_free(kr->dctx);
        kr->dctx = NULL;
    }
    ERR_clear_error();
}

static void
key_reader_fini(struct key_reader *kr)
{
    OSSL_DECODER_CTX_free(kr->dctx);
    kr->dctx = NULL;
}

/* The private key in pem (the caller frees it), or NULL with OpenSSL's error queue
 * set as PEM_read_bio_PrivateKey leaves it. kr NULL: the usual way only. */
static EVP_PKEY *
key_read(struct key_reader *kr, const char *pem)
{
    BIO *b;
    EVP_PKEY *pkey = NULL;

    if (kr != NULL && kr->dctx != NULL) {
        const unsigned char *p = (const unsigned char *)pem;
        size_t len = strlen(pem);

        kr->out = NULL;
        ERR_set_mark();
        if (OSSL_DECODER_from_data(kr->dctx, &p, &len) == 1 && kr->out != NULL) {
            ERR_pop_to_mark();
            pkey = kr->out;
            kr->out = NULL;
            return pkey;
        }
        EVP_PKEY_free(kr->out);
        kr->out = NULL;
        ERR_pop_to_mark();
    }
    b = BIO_new_mem_buf(pem, -1);
    if (b != NULL) {
        pkey = PEM_read_bio_PrivateKey(b, NULL, st_ssl_no_passphrase, NULL);
        BIO_free(b);
    }
    return pkey;
}

/* Adds a certificate chain (leaf first) and its key to ctx, in the slot of the key's
 * type, so one context can hold an RSA and an ECDSA pair. Returns 0, or -1 with why.
 * kr: a reader for the key (NULL: none). */
static int
ctx_use_pair(SSL_CTX *ctx, const char *cert_pem, const char *key_pem, struct key_reader *kr,
             char *why, size_t size)
{
    BIO *b = BIO_new_mem_buf(cert_pem, -1);
    X509 *x = NULL;
    EVP_PKEY *pkey = NULL;
    int rc = -1;

    if (b == NULL) {
        goto out;
    }
    x = PEM_read_bio_X509(b, NULL, st_ssl_no_passphrase, NULL);
    if (x == NULL || SSL_CTX_use_certificate(ctx, x) != 1) {
        st_ssl_reason(why, size, ST_SSL_REASON_SHORT, "no certificate");
        goto out;
    }
    X509_free(x);
    while ((x = PEM_read_bio_X509(b, NULL, st_ssl_no_passphrase, NULL)) != NULL) {
        if (SSL_CTX_add0_chain_cert(ctx, x) != 1) {
            st_ssl_reason(why, size, ST_SSL_REASON_SHORT, "bad chain certificate");
            goto out;
        }
    }
    ERR_clear_error(); /* the end of the text reads as "no start line" */
    BIO_free(b);
    b = NULL;
    pkey = key_read(kr, key_pem);
    if (pkey == NULL) {
        st_ssl_reason(why, size, ST_SSL_REASON_SHORT, "no private key");
        goto out;
    }
    if (SSL_CTX_use_PrivateKey(ctx, pkey) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
        st_ssl_reason(why, size, ST_SSL_REASON_SHORT, "key does not match the certificate");
        goto out;
    }
    rc = 0;
out:
    if (rc != 0 && why[0] == '\0') {
        st_ssl_reason(why, size, ST_SSL_REASON_SHORT, "out of memory");
    }
    X509_free(x);
    EVP_PKEY_free(pkey);
    BIO_free(b);
    return rc;
}

/* A server context for one certificate entity (cert, plus cert_alt as the second key
 * type). NULL with why on failure. */
static SSL_CTX *
cert_ctx_new(const struct st_certificate *ce, struct key_reader *kr, char *why, size_t size)
{
    SSL_CTX *ctx = server_ctx_new();

    why[0] = '\0';
    if (ctx == NULL) {
        st_ssl_reason(why, size, ST_SSL_REASON_SHORT, "out of memory");
        return NULL;
    }
    if (ce->cert == NULL || ce->key == NULL) {
        snprintf(why, size, "no certificate or key");
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (ctx_use_pair(ctx, ce->cert, ce->key, kr, why, size) != 0 ||
        (ce->cert_alt != NULL && ce->key_alt != NULL &&
         ctx_use_pair(ctx, ce->cert_alt, ce->key_alt, kr, why, size) != 0)) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

/* ------------------------------------------------------------------------------------ */
/* The default certificate                                                              */

/* The largest certificate or key file read (a chain of many certificates fits). */
#define DP_TLS_PEM_MAX (4u << 20)

/* Reads a PEM file whole (DP_TLS_PEM_MAX at most). Returns a malloc'd NUL-terminated
 * buffer, or NULL with errno set. */
static char *
file_read(const char *path)
{
    char *buf;
    size_t len;
    int rc = st_file_read(path, DP_TLS_PEM_MAX, &buf, &len);

    if (rc < 0) {
        errno = -rc;
    }
    return buf;
}

/* A self-signed certificate for pkey: CN and DNS name localhost, 20 years (as Kong's
 * default certificate). NULL on failure. */
static X509 *
selfsigned_new(EVP_PKEY *pkey)
{
    X509 *x = X509_new();
    X509V3_CTX v3;
    X509_EXTENSION *ext = NULL;
    X509_NAME *name;
    unsigned char serial[16];
    BIGNUM *bn = NULL;
    bool ok;

    if (x == NULL) {
        return NULL;
    }
    ok = RAND_bytes(serial, sizeof(serial)) == 1;
    serial[0] &= 0x7f;
    ok = ok && (bn = BN_bin2bn(serial, sizeof(serial), NULL)) != NULL &&
         BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
    ok = ok && X509_set_version(x, X509_VERSION_3) == 1 &&
         X509_gmtime_adj(X509_getm_notBefore(x), -3600) != NULL &&
         X509_time_adj_ex(X509_getm_notAfter(x), 20 * 365, 0, NULL) != NULL;
    name = X509_get_subject_name(x);
    ok = ok &&
         X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost",
                                    -1, -1, 0) == 1 &&
         X509_set_issuer_name(x, name) == 1 && X509_set_pubkey(x, pkey) == 1;
    if (ok) {
        X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
        ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, "DNS:localhost");
        ok = ext != NULL && X509_add_ext(x, ext, -1) == 1;
    }
    ok = ok && X509_sign(x, pkey, EVP_sha256()) > 0;
    X509_EXTENSION_free(ext);
    BN_free(bn);
    if (!ok) {
        X509_free(x);
        return NULL;
    }
    return x;
}

/* PEM text of a BIO, malloc'd. */
static char *
bio_text(BIO *b)
{
    char *data = NULL;
    long n = BIO_get_mem_data(b, &data);

    return st_xstrndup(data, (size_t)n);
}

/* Generates a key (RSA 2048 or EC P-256) and its self-signed certificate as PEM text. */
static int
selfsigned_gen(bool rsa, char **cert_pem, char **key_pem)
{
    EVP_PKEY *pkey = rsa ? EVP_RSA_gen(2048) : EVP_EC_gen("P-256");
    X509 *x = pkey != NULL ? selfsigned_new(pkey) : NULL;
    BIO *bc = BIO_new(BIO_s_mem());
    BIO *bk = BIO_new(BIO_s_mem());
    int rc = -EIO;

    if (x != NULL && bc != NULL && bk != NULL && PEM_write_bio_X509(bc, x) == 1 &&
        PEM_write_bio_PrivateKey(bk, pkey, NULL, NULL, 0, NULL, NULL) == 1) {
        *cert_pem = bio_text(bc);
        *key_pem = bio_text(bk);
        rc = 0;
    }
    BIO_free(bc);
    BIO_free(bk);
    X509_free(x);
    EVP_PKEY_free(pkey);
    return rc;
}

/* Loads PREFIX/ssl/<stem>.crt|.key into ctx, generating both first unless both exist. */
static int
default_pair_load(SSL_CTX *ctx, const char *dir, const char *stem, bool rsa, struct st_err *err)
{
    char crt[4096], key[4096], why[256] = "";
    char *cert_pem = NULL, *key_pem = NULL;
    int rc;

    if (st_snprintf(crt, sizeof(crt), "%s/%s.crt", dir, stem) != 0 ||
        st_snprintf(key, sizeof(key), "%s/%s.key", dir, stem) != 0) {
        return st_err_set(err, -ENAMETOOLONG, "prefix", "prefix: path too long: %s", dir);
    }
    if (access(crt, F_OK) == 0 && access(key, F_OK) == 0) {
        cert_pem = file_read(crt);
        key_pem = cert_pem != NULL ? file_read(key) : NULL;
        if (key_pem == NULL) {
            rc = st_err_set(err, -errno, "prefix", "cannot read the default certificate %s: %s",
                            cert_pem == NULL ? crt : key, strerror(errno));
            goto out;
        }
    } else {
        if (selfsigned_gen(rsa, &cert_pem, &key_pem) != 0) {
            ERR_clear_error();
            rc = st_err_set(err, -EIO, "prefix", "cannot generate the default certificate %s", crt);
            goto out;
        }
        rc = st_file_replace(key, key_pem, strlen(key_pem), 0600);
        if (rc == 0) {
            rc = st_file_replace(crt, cert_pem, strlen(cert_pem), 0644);
        }
        if (rc != 0) {
            st_err_set(err, rc, "prefix", "cannot write the default certificate %s: %s", crt,
                       strerror(-rc));
            goto out;
        }
        st_log(ST_LOG_NOTICE, 0, "generated the default %s certificate %s", rsa ? "RSA" : "ECDSA",
               crt);
    }
    rc = 0;
    if (ctx_use_pair(ctx, cert_pem, key_pem, NULL, why, sizeof(why)) != 0) {
        rc = st_err_set(err, -ST_ECONF, "prefix", "default certificate %s: %s", crt, why);
    }
out:
    free(cert_pem);
    if (key_pem != NULL) {
        OPENSSL_cleanse(key_pem, strlen(key_pem));
    }
    free(key_pem);
    return rc;
}

/* Splits Kong's list syntax ("a.crt, b.crt") into at most max paths (malloc'd). */
static size_t
paths_split(const char *s, char **out, size_t max)
{
    size_t n = 0, len;

    while (*s != '\0' && n <= max) {
        s += strspn(s, " \t,");
        len = strcspn(s, ",");
        while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t')) {
            len--;
        }
        if (len == 0) {
            break;
        }
        if (n == max) {
            return max + 1;
        }
        out[n++] = st_xstrndup(s, len);
        s += strcspn(s, ",");
    }
    return n;
}

/* ssl_cert / ssl_cert_key: one pair, or two (an RSA and an ECDSA one, Kong's list). */
static int
conf_pairs_load(SSL_CTX *ctx, const struct st_conf *conf, struct st_err *err)
{
    char *certs[2] = {NULL, NULL}, *keys[2] = {NULL, NULL};
    char why[256];
    size_t nc, nk, i;
    int rc = 0;

    nc = paths_split(conf->ssl_cert, certs, 2);
    nk = paths_split(conf->ssl_cert_key, keys, 2);
    if (nc != nk || nc == 0 || nc > 2) {
        rc = st_err_set(err, -ST_ECONF, "ssl_cert_key",
                        "ssl_cert_key: give one key per ssl_cert entry (at most two: an RSA and "
                        "an ECDSA pair)");
    }
    for (i = 0; rc == 0 && i < nc; i++) {
        char *cert_pem = file_read(certs[i]), *key_pem = NULL;

        why[0] = '\0';
        if (cert_pem == NULL) {
            rc = st_err_set(err, -ST_ECONF, "ssl_cert",
                            "ssl_cert: failed loading certificate from %s: %s", certs[i],
                            strerror(errno));
        } else if ((key_pem = file_read(keys[i])) == NULL) {
            rc = st_err_set(err, -ST_ECONF, "ssl_cert_key",
                            "ssl_cert_key: failed loading key from %s: %s", keys[i],
                            strerror(errno));
        } else if (ctx_use_pair(ctx, cert_pem, key_pem, NULL, why, sizeof(why)) != 0) {
            rc = st_err_set(err, -ST_ECONF, "ssl_cert", "ssl_cert: %s with key %s: %s", certs[i],
                            keys[i], why);
        }
        free(cert_pem);
        if (key_pem != NULL) {
            OPENSSL_cleanse(key_pem, strlen(key_pem));
        }
        free(key_pem);
    }
    for (i = 0; i < 2; i++) {
        free(certs[i]);
        free(keys[i]);
    }
    return rc;
}

static bool
conf_set(const char *s)
{
    return s != NULL && s[strspn(s, " \t,")] != '\0';
}

static int
default_ctx_init(const struct st_conf *conf, struct st_err *err)
{
    char dir[4096];
    int rc;

    tls.dflt = server_ctx_new();
    if (tls.dflt == NULL) {
        char why[256];

        st_ssl_reason(why, sizeof(why), ST_SSL_REASON_SHORT, "out of memory");
        return st_err_set(err, -ST_ECONF, "ssl_cipher_suite",
                          "ssl_cipher_suite: cannot set up TLS with '%s': %s",
                          tls.ciphers != NULL ? tls.ciphers : "default ciphers", why);
    }
    if (conf_set(conf->ssl_cert) != conf_set(conf->ssl_cert_key)) {
        return st_err_set(err, -ST_ECONF, conf_set(conf->ssl_cert) ? "ssl_cert_key" : "ssl_cert",
                          "%s must be specified",
                          conf_set(conf->ssl_cert) ? "ssl_cert_key" : "ssl_cert");
    }
    if (conf_set(conf->ssl_cert)) {
        return conf_pairs_load(tls.dflt, conf, err);
    }
    if (st_snprintf(dir, sizeof(dir), "%s/ssl", conf->prefix != NULL ? conf->prefix : ".") != 0) {
        return st_err_set(err, -ENAMETOOLONG, "prefix", "prefix: path too long");
    }
    if (mkdir(dir, 0700) == -1 && errno != EEXIST) {
        return st_err_set(err, -errno, "prefix", "cannot create %s: %s", dir, strerror(errno));
    }
    rc = default_pair_load(tls.dflt, dir, "strait-default", true, err);
    if (rc == 0) {
        rc = default_pair_load(tls.dflt, dir, "strait-default-ecdsa", false, err);
    }
    return rc;
}

static bool
has_ssl_listener(const struct st_conf *conf)
{
    for (size_t i = 0; i < conf->stream_listen.n; i++) {
        if (conf->stream_listen.v[i].flags & ST_LISTEN_F_SSL) {
            return true;
        }
    }
    return false;
}

int
dp_tls_init(const struct st_conf *conf, int64_t ticket_rotate_ms, struct st_err *err)
{
    int rc;
    unsigned i;

    if (tls.inited) {
        dp_tls_fini();
    }
    tls.tickets = conf->ssl_session_tickets;
    rc = protocols_init(conf, err);
    if (rc != 0) {
        return rc;
    }
    tls.aes = EVP_CIPHER_fetch(NULL, "AES-256-CBC", NULL);
    if (tls.aes == NULL) {
        rc = st_err_set(err, -EIO, "ssl_session_tickets", "AES-256-CBC is not available");
        goto fail;
    }
    for (i = 0; i < TKEY_SLOTS; i++) {
        if (tkey_fill(&tls.keys[i]) != 0) {
            rc = st_err_set(err, -EIO, "ssl_session_tickets", "no random bytes for ticket keys");
            goto fail;
        }
    }
    tls.period = ticket_rotate_ms > 0 ? ticket_rotate_ms : DP_TLS_TICKET_ROTATE_MS;
    tls.period = tls.period < 100 ? 100 : tls.period;
    atomic_store(&tls.cur, 0);
    atomic_store(&tls.rotations, 0);
    atomic_store(&tls.next_rotation, st_mono_ms() + tls.period);
    /* Server contexts only where something terminates TLS: no key generation on a DP
     * without ssl listeners. */
    if (has_ssl_listener(conf)) {
        rc = default_ctx_init(conf, err);
        if (rc != 0) {
            goto fail;
        }
    }
    tls.inited = true;
    return 0;
fail:
    tls.inited = true;
    dp_tls_fini();
    ERR_clear_error();
    return rc;
}

static void
cache_clear(void)
{
    size_t i;

    for (i = 0; i < tls.n_cache; i++) {
        free(tls.cache[i].id);
        SSL_CTX_free(tls.cache[i].ctx);
    }
    free(tls.cache);
    tls.cache = NULL;
    tls.n_cache = 0;
}

void
dp_tls_fini(void)
{
    if (!tls.inited) {
        return;
    }
    pthread_mutex_lock(&tls.cache_lock);
    cache_clear();
    pthread_mutex_unlock(&tls.cache_lock);
    SSL_CTX_free(tls.dflt);
    tls.dflt = NULL;
    EVP_CIPHER_free(tls.aes);
    tls.aes = NULL;
    free(tls.ciphers);
    tls.ciphers = NULL;
    OPENSSL_cleanse(tls.keys, sizeof(tls.keys));
    tls.inited = false;
}

/* ------------------------------------------------------------------------------------ */
/* Server contexts by SNI                                                               */

/* Longest DNS name (RFC 1035 §2.3.4) plus room for the wildcard rewrites. */
#define SNI_MAX 253

struct tls_sni {
    char *name; /* lower case, no trailing dot: exact, "*.x", "x.*" or "*" */
    SSL_CTX *ctx;
    const char *id;
};

struct dp_tls_certs {
    SSL_CTX *dflt;
    SSL_CTX **ctxs; /* one reference each */
    size_t n_ctxs;
    struct tls_sni *snis; /* sorted by name, unique */
    size_t n_snis;
    char *names; /* the snis' names, one after the other */
};

/* SHA-256 over each PEM with its length (absent: all ones), so no two differ alike. */
static void
cert_digest(const struct st_certificate *ce, unsigned char out[32])
{
    const char *parts[4] = {ce->cert, ce->key, ce->cert_alt, ce->key_alt};
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    uint64_t len;
    size_t i;

    ST_ASSERT(md != NULL);
    ST_ASSERT(EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1);
    for (i = 0; i < 4; i++) {
        len = parts[i] != NULL ? strlen(parts[i]) : UINT64_MAX;
        EVP_DigestUpdate(md, &len, sizeof(len));
        if (parts[i] != NULL) {
            EVP_DigestUpdate(md, parts[i], (size_t)len);
        }
    }
    ST_ASSERT(EVP_DigestFinal_ex(md, out, NULL) == 1);
    EVP_MD_CTX_free(md);
}

static int
cache_cmp(const void *a, const void *b)
{
    return strcmp(((const struct tls_cache_ent *)a)->id, ((const struct tls_cache_ent *)b)->id);
}

static struct tls_cache_ent *
cache_find(struct tls_cache_ent *cache, size_t n, const char *id)
{
    struct tls_cache_ent key = {.id = (char *)id};

    if (n == 0) {
        return NULL;
    }
    return bsearch(&key, cache, n, sizeof(*cache), cache_cmp);
}

/* The context of one certificate, from the old cache when unchanged (moved into the new
 * cache), else built (failures logged and cached as NULL, so each is logged once). */
static void
cache_take(struct tls_cache_ent *ent, const struct st_certificate *ce, struct key_reader *kr)
{
    struct tls_cache_ent *old;
    char why[256];

    cert_digest(ce, ent->digest);
    old = cache_find(tls.cache, tls.n_cache, ce->id);
    if (old != NULL && !old->taken && memcmp(old->digest, ent->digest, 32) == 0) {
        ent->ctx = old->ctx;
        old->ctx = NULL;
        old->taken = true;
        return;
    }
    if (!kr->tried) {
        key_reader_init(kr); /* the first certificate this build makes */
    }
    ent->ctx = cert_ctx_new(ce, kr, why, sizeof(why));
    if (ent->ctx == NULL) {
        st_log(ST_LOG_ERR, 0,
               "certificate %s: cannot load it, its SNIs fall through to the next rule: %s", ce->id,
               why);
        ERR_clear_error();
    }
}

static int
sni_cmp(const void *a, const void *b)
{
    const struct tls_sni *x = a, *y = b;
    int rc = strcmp(x->name, y->name);

    return rc != 0 ? rc : strcmp(x->id != NULL ? x->id : "", y->id != NULL ? y->id : "");
}

/* The n first bytes of name lower-cased into out (room for n + 1). */
static char *
sni_norm(const char *name, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        out[i] = (name[i] >= 'A' && name[i] <= 'Z') ? (char)(name[i] - 'A' + 'a') : name[i];
    }
    out[n] = '\0';
    return out;
}

/* Fills c->snis from snap->snis, each pointing at its certificate's context. The names
 * live in one block (c->names), so that freeing c costs a few calls however many SNIs. */
static void
snis_build(struct dp_tls_certs *c, const struct st_snapshot *snap, SSL_CTX **by_cert)
{
    size_t i, j, len, n = 0, room = 0;
    ptrdiff_t idx;
    char *p;

    for (i = 0; i < snap->n_snis; i++) {
        room += snap->snis[i].name != NULL ? strlen(snap->snis[i].name) + 1 : 0;
    }
    c->names = p = st_xmalloc(room + 1);
    c->snis = st_xcalloc(snap->n_snis + 1, sizeof(*c->snis));
    for (i = 0; i < snap->n_snis; i++) {
        const struct st_sni *s = &snap->snis[i];

        if (s->name == NULL || s->certificate == NULL) {
            continue;
        }
        idx = s->certificate - snap->certificates;
        if (idx < 0 || (size_t)idx >= snap->n_certificates || by_cert[idx] == NULL) {
            continue;
        }
        len = strlen(s->name);
        len -= len > 0 && s->name[len - 1] == '.'; /* no trailing dot */
        c->snis[n].name = sni_norm(s->name, len, p);
        p += len + 1;
        c->snis[n].ctx = by_cert[idx];
        c->snis[n].id = s->id;
        n++;
    }
    qsort(c->snis, n, sizeof(*c->snis), sni_cmp);
    for (i = 0, j = 0; i < n; i++) {
        if (j > 0 && strcmp(c->snis[j - 1].name, c->snis[i].name) == 0) {
            st_log(ST_LOG_WARN, 0, "sni %s: same name as sni %s, ignored", c->snis[i].name,
                   c->snis[j - 1].id != NULL ? c->snis[j - 1].id : "-");
            continue;
        }
        c->snis[j++] = c->snis[i];
    }
    c->n_snis = j;
    for (i = 0; i < j; i++) {
        c->snis[i].id = NULL; /* the snapshot may go before c */
    }
}

int
dp_tls_certs_new(const struct st_snapshot *snap, struct dp_tls_certs **out, struct st_err *err)
{
    struct dp_tls_certs *c;
    struct tls_cache_ent *cache;
    struct key_reader kr = {0};
    SSL_CTX **by_cert;
    size_t i, n = snap->n_certificates;

    (void)err;
    c = st_xcalloc(1, sizeof(*c));
    if (!tls.inited || tls.dflt == NULL) {
        *out = c; /* nothing terminates TLS here: no contexts to build */
        return 0;
    }
    cache = st_xcalloc(n + 1, sizeof(*cache));
    by_cert = st_xcalloc(n + 1, sizeof(*by_cert));
    c->ctxs = st_xcalloc(n + 1, sizeof(*c->ctxs));

    pthread_mutex_lock(&tls.cache_lock);
    for (i = 0; i < n; i++) {
        const struct st_certificate *ce = &snap->certificates[i];

        cache[i].id = st_xstrdup(ce->id != NULL ? ce->id : "");
        cache_take(&cache[i], ce, &kr);
        if (cache[i].ctx != NULL && SSL_CTX_up_ref(cache[i].ctx) == 1) {
            c->ctxs[c->n_ctxs++] = cache[i].ctx;
            by_cert[i] = cache[i].ctx;
        }
    }
    /* Evict what this build did not take; runtimes keep their own references. */
    cache_clear();
    qsort(cache, n, sizeof(*cache), cache_cmp);
    tls.cache = cache;
    tls.n_cache = n;
    pthread_mutex_unlock(&tls.cache_lock);
    key_reader_fini(&kr);

    snis_build(c, snap, by_cert);
    free(by_cert);
    SSL_CTX_up_ref(tls.dflt);
    c->dflt = tls.dflt;
    *out = c;
    return 0;
}

void
dp_tls_certs_free(struct dp_tls_certs *c)
{
    size_t i;

    if (c == NULL) {
        return;
    }
    for (i = 0; i < c->n_ctxs; i++) {
        SSL_CTX_free(c->ctxs[i]);
    }
    free(c->ctxs);
    free(c->snis);
    free(c->names);
    SSL_CTX_free(c->dflt);
    free(c);
}

static SSL_CTX *
sni_find(const struct dp_tls_certs *c, const char *name)
{
    size_t lo = 0, hi = c->n_snis, mid;
    int rc;

    while (lo < hi) {
        mid = lo + (hi - lo) / 2;
        rc = strcmp(name, c->snis[mid].name);
        if (rc == 0) {
            return c->snis[mid].ctx;
        }
        if (rc < 0) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    return NULL;
}

/* Kong's runloop/certificate.lua find_certificate, in the order dp_tls.h gives. */
SSL_CTX *
dp_tls_certs_select(const struct dp_tls_certs *c, const char *sni)
{
    char name[SNI_MAX + 1], key[SNI_MAX + 3];
    const char *d1, *d2, *dl;
    SSL_CTX *ctx;
    size_t n, i;

    if (sni == NULL || sni[0] == '\0' || c->n_snis == 0) {
        return c->dflt;
    }
    n = strlen(sni);
    n -= sni[n - 1] == '.';
    if (n > 0 && n <= SNI_MAX) {
        sni_norm(sni, n, name);
        if ((ctx = sni_find(c, name)) != NULL) {
            return ctx;
        }
        d1 = strchr(name, '.');
        d2 = d1 != NULL ? strchr(d1 + 1, '.') : NULL;
        if (d1 != NULL && d1 > name && d2 != NULL && d2 > d1 + 1 && d2[1] != '\0') {
            key[0] = '*';
            memcpy(key + 1, d1, n - (size_t)(d1 - name) + 1);
            if ((ctx = sni_find(c, key)) != NULL) {
                return ctx;
            }
        }
        dl = strrchr(name, '.');
        if (dl != NULL && dl > name && dl[-1] != '.' && dl[1] != '\0') {
            i = (size_t)(dl - name) + 1;
            memcpy(key, name, i);
            key[i] = '*';
            key[i + 1] = '\0';
            if ((ctx = sni_find(c, key)) != NULL) {
                return ctx;
            }
        }
    }
    ctx = sni_find(c, "*");
    return ctx != NULL ? ctx : c->dflt;
}

/* ------------------------------------------------------------------------------------ */
/* Upstream side                                                                        */

static int
ca_store_add(SSL_CTX *ctx, const struct st_service *svc, char *why, size_t size)
{
    X509_STORE *store = SSL_CTX_get_cert_store(ctx);
    size_t i;

    for (i = 0; i < svc->n_ca_certificates; i++) {
        const struct st_ca_certificate *ca = svc->ca_certificates[i];
        BIO *b = ca != NULL && ca->cert != NULL ? BIO_new_mem_buf(ca->cert, -1) : NULL;
        X509 *x = b != NULL ? PEM_read_bio_X509(b, NULL, st_ssl_no_passphrase, NULL) : NULL;
        int ok = x != NULL && X509_STORE_add_cert(store, x) == 1;

        X509_free(x);
        BIO_free(b);
        if (!ok) {
            char reason[200];

            st_ssl_reason(reason, sizeof(reason), ST_SSL_REASON_SHORT, "no certificate");
            snprintf(why, size, "ca_certificate %s: %s",
                     ca != NULL && ca->id != NULL ? ca->id : "-", reason);
            return -1;
        }
    }
    return 0;
}

int
dp_tls_upstream_ctx_new(const struct st_service *svc, SSL_CTX **out, struct st_err *err)
{
    const struct st_certificate *cc = svc->client_certificate;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    char why[256] = "";
    int depth;

    if (ctx == NULL) {
        st_ssl_reason(why, sizeof(why), ST_SSL_REASON_SHORT, "out of memory");
        return st_err_set(err, -ENOMEM, "", "cannot create a TLS context: %s", why);
    }
    /* Kong's ssl_protocols face clients; upstreams get lua_ssl_protocols' default. */
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_set_mode(ctx, TLS_MODES);
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
        SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1) {
        st_ssl_reason(why, sizeof(why), ST_SSL_REASON_SHORT, "cannot set the protocol range");
        goto fail;
    }
    if (svc->tls_verify == 1) {
        depth = svc->tls_verify_depth >= 0 ? svc->tls_verify_depth : 1;
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        SSL_CTX_set_verify_depth(ctx, depth);
        if (svc->n_ca_certificates > 0) {
            if (ca_store_add(ctx, svc, why, sizeof(why)) != 0) {
                goto fail;
            }
        } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
            st_ssl_reason(why, sizeof(why), ST_SSL_REASON_SHORT, "cannot load the system CA store");
            goto fail;
        }
    }
    if (cc != NULL &&
        (cc->cert == NULL || cc->key == NULL ||
         ctx_use_pair(ctx, cc->cert, cc->key, NULL, why, sizeof(why)) != 0 ||
         (cc->cert_alt != NULL && cc->key_alt != NULL &&
          ctx_use_pair(ctx, cc->cert_alt, cc->key_alt, NULL, why, sizeof(why)) != 0))) {
        SSL_CTX_free(ctx);
        ERR_clear_error();
        return st_err_set(err, -ST_ECONF, "client_certificate", "client_certificate %s: %s",
                          cc->id != NULL ? cc->id : "-",
                          why[0] != '\0' ? why : "no certificate or key");
    }
    *out = ctx;
    return 0;
fail:
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return st_err_set(err, -ST_ECONF, svc->n_ca_certificates > 0 ? "ca_certificates" : "tls_verify",
                      "%s", why);
}

int
dp_tls_upstream_prepare(SSL *ssl, const char *name)
{
    unsigned char addr[16];
    char lit[64];
    const char *host = name;
    size_t n;
    bool ip;

    if (name == NULL || name[0] == '\0') {
        return 0;
    }
    n = strlen(name);
    if (name[0] == '[' && n > 2 && n - 2 < sizeof(lit) && name[n - 1] == ']') {
        memcpy(lit, name + 1, n - 2);
        lit[n - 2] = '\0';
        host = lit;
    }
    ip = inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
    if (!ip && SSL_set_tlsext_host_name(ssl, name) != 1) {
        ERR_clear_error();
        return -ENOMEM;
    }
    if ((SSL_get_verify_mode(ssl) & SSL_VERIFY_PEER) != 0) {
        int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host)
                    : SSL_set1_host(ssl, name);

        if (ok != 1) {
            ERR_clear_error();
            return -ENOMEM;
        }
    }
    return 0;
}

void
dp_tls_ctx_ref(struct ssl_ctx_st *ctx)
{
    SSL_CTX_up_ref(ctx);
}

void
dp_tls_ctx_unref(struct ssl_ctx_st *ctx)
{
    SSL_CTX_free(ctx);
}
