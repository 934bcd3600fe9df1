/* OpenSSL helpers for boot and CP code: SHA-256, random bytes, v4 UUIDs, the
 * cluster certificate pair (`strait-cp cluster gen_cert`), certificate expiry, and
 * the PEM checks behind the certificates, snis and ca_certificates schemas (parse,
 * key match, key type, CA constraint, notAfter, DER digest). Nothing here touches the
 * DP's TLS data path (dp_xprt_tls). */
#include "st_ssl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "st_err.h"
#include "st_util.h"

#define CLUSTER_CN       "strait_clustering"
#define CLUSTER_DAYS_MAX 36500
#define UNKNOWN_REASON   "unknown OpenSSL error"

void
st_ssl_sha256(const void *p, size_t n, uint8_t out[32])
{
    unsigned int mdlen = 0;
    int ok = EVP_Digest(p, n, out, &mdlen, EVP_sha256(), NULL);

    /* EVP_Digest only fails on allocation failure or a broken provider setup. */
    ST_ASSERT(ok == 1 && mdlen == 32);
}

void
st_ssl_sha256_hex(const void *p, size_t n, char out[65])
{
    uint8_t md[32];

    st_ssl_sha256(p, n, md);
    st_hex(md, sizeof(md), out);
}

bool
st_ssl_memeq(const void *a, const void *b, size_t n)
{
    return CRYPTO_memcmp(a, b, n) == 0;
}

int
st_ssl_random(void *p, size_t n)
{
    while (n > 0) {
        int chunk = n > (1u << 20) ? (1 << 20) : (int)n;

        if (RAND_bytes(p, chunk) != 1) {
            return -EIO;
        }
        p = (uint8_t *)p + chunk;
        n -= (size_t)chunk;
    }
    return 0;
}

int
st_ssl_uuid(char out[37])
{
    uint8_t b[16];
    char hex[33];
    int rc = st_ssl_random(b, sizeof(b));

    if (rc != 0) {
        return rc;
    }
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40); /* version 4, RFC 9562 §5.4 */
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80); /* variant 10 */
    st_hex(b, sizeof(b), hex);
    snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
    return 0;
}

const char *
st_ssl_reason(char *buf, size_t size, unsigned flags, const char *dflt)
{
    unsigned long e = (flags & ST_SSL_REASON_FIRST) ? ERR_get_error() : ERR_peek_last_error();
    const char *r = e != 0 && (flags & ST_SSL_REASON_SHORT) ? ERR_reason_error_string(e) : NULL;

    if (r != NULL) {
        snprintf(buf, size, "%s", r);
    } else if (e != 0) {
        ERR_error_string_n(e, buf, size);
    } else {
        snprintf(buf, size, "%s", dflt);
    }
    ERR_clear_error();
    return buf;
}

static int
add_ext(X509 *x, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509_EXTENSION *ext;
    int ok;

    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (ext == NULL) {
        return -1;
    }
    ok = X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    return ok == 1 ? 0 : -1;
}

/* Builds the self-signed certificate for pkey. Returns NULL on failure. */
static X509 *
make_cluster_cert(EVP_PKEY *pkey, int days)
{
    X509 *x = X509_new();
    BIGNUM *serial = BN_new();
    X509_NAME *name;
    int ok = 0;

    if (x == NULL || serial == NULL) {
        goto out;
    }
    /* 127 random bits keep the serial positive and within RFC 5280's 20 octets. */
    if (X509_set_version(x, X509_VERSION_3) != 1 ||
        BN_rand(serial, 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
        BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(x)) == NULL ||
        X509_gmtime_adj(X509_getm_notBefore(x), -3600) == NULL ||
        X509_gmtime_adj(X509_getm_notAfter(x), (long)days * 86400) == NULL) {
        goto out;
    }
    name = X509_get_subject_name(x);
    if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)CLUSTER_CN, -1,
                                   -1, 0) != 1 ||
        X509_set_issuer_name(x, name) != 1 || X509_set_pubkey(x, pkey) != 1) {
        goto out;
    }
    /* The same certificate is both the peer's and the only trust anchor (shared
     * mode), so it is marked as a CA and carries no key-usage restrictions. */
    if (add_ext(x, NID_basic_constraints, "critical,CA:TRUE") != 0 ||
        add_ext(x, NID_subject_alt_name, "DNS:" CLUSTER_CN) != 0 ||
        add_ext(x, NID_subject_key_identifier, "hash") != 0 ||
        add_ext(x, NID_authority_key_identifier, "keyid:always") != 0) {
        goto out;
    }
    if (X509_sign(x, pkey, EVP_sha256()) == 0) {
        goto out;
    }
    ok = 1;
out:
    BN_free(serial);
    if (!ok) {
        X509_free(x);
        x = NULL;
    }
    return x;
}

/* Opens path for writing into *out, refusing an existing file. Returns 0 or fills err. */
static int
open_new(const char *path, mode_t mode, FILE **out, struct st_err *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);

    if (fd == -1) {
        int e = errno;

        if (e == EEXIST) {
            return st_err_set(err, -EEXIST, path, "%s already exists; not overwriting it", path);
        }
        return st_err_set(err, -e, path, "cannot create %s: %s", path, strerror(e));
    }
    /* The umask may have cleared bits of mode; set exactly what we mean. */
    if (fchmod(fd, mode) == -1 || (*out = fdopen(fd, "w")) == NULL) {
        int e = errno;

        close(fd);
        unlink(path);
        return st_err_set(err, -e, path, "cannot write %s: %s", path, strerror(e));
    }
    return 0;
}

/* Writes the PEM of x (pkey NULL) or pkey to a new file. Removes it on failure. */
static int
write_pem(const char *path, mode_t mode, X509 *x, EVP_PKEY *pkey, struct st_err *err)
{
    char why[256];
    FILE *f = NULL;
    int ok = open_new(path, mode, &f, err);
    int e = 0;

    if (ok != 0) {
        return ok;
    }
    ok =
        x != NULL ? PEM_write_X509(f, x) : PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL);
    if (ok == 1 && (fflush(f) != 0 || fsync(fileno(f)) == -1)) {
        e = errno;
    }
    if (fclose(f) != 0 && ok == 1 && e == 0) {
        e = errno;
    }
    if (ok != 1) {
        unlink(path);
        return st_err_set(err, -EIO, path, "cannot write %s: %s", path,
                          st_ssl_reason(why, sizeof(why), ST_SSL_REASON_FIRST, UNKNOWN_REASON));
    }
    if (e != 0) {
        unlink(path);
        return st_err_set(err, -e, path, "cannot write %s: %s", path, strerror(e));
    }
    return 0;
}

int
st_ssl_gen_cluster_cert(const char *cert_path, const char *key_path, int days, struct st_err *err)
{
    const char *const paths[] = {cert_path, key_path};
    char why[256];
    EVP_PKEY *pkey = NULL;
    X509 *x = NULL;
    int rc;

    if (days < 1 || days > CLUSTER_DAYS_MAX) {
        return st_err_set(err, -EINVAL, "days", "days must be between 1 and %d", CLUSTER_DAYS_MAX);
    }
    /* Check both first, so that a refusal leaves no half-written pair behind. */
    for (size_t i = 0; i < ST_ARRAY_SIZE(paths); i++) {
        if (access(paths[i], F_OK) == 0) {
            return st_err_set(err, -EEXIST, paths[i], "%s already exists; not overwriting it",
                              paths[i]);
        }
    }
    pkey = EVP_EC_gen("secp384r1");
    if (pkey == NULL || (x = make_cluster_cert(pkey, days)) == NULL) {
        rc = st_err_set(err, -EIO, NULL, "cannot generate the cluster certificate: %s",
                        st_ssl_reason(why, sizeof(why), ST_SSL_REASON_FIRST, UNKNOWN_REASON));
        goto out;
    }
    rc = write_pem(key_path, 0600, NULL, pkey, err);
    if (rc != 0) {
        goto out;
    }
    rc = write_pem(cert_path, 0644, x, NULL, err);
    if (rc != 0) {
        unlink(key_path);
    }
out:
    X509_free(x);
    EVP_PKEY_free(pkey);
    return rc;
}

int
st_ssl_cert_expiry(const char *cert_path, int64_t *expiry, struct st_err *err)
{
    char why[256];
    struct tm tm = {0};
    X509 *x;
    bool ok;
    FILE *f = fopen(cert_path, "re");

    if (f == NULL) {
        int e = errno;

        return st_err_set(err, -e, cert_path, "cannot open %s: %s", cert_path, strerror(e));
    }
    x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    if (x == NULL) {
        return st_err_set(err, -ST_EPARSE, cert_path, "%s: no PEM certificate: %s", cert_path,
                          st_ssl_reason(why, sizeof(why), ST_SSL_REASON_FIRST, UNKNOWN_REASON));
    }
    ok = ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) == 1;
    X509_free(x);
    if (!ok) {
        return st_err_set(err, -ST_EPARSE, cert_path, "%s: bad notAfter time", cert_path);
    }
    *expiry = (int64_t)timegm(&tm);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* PEM checks for the certificate entities (st_schema)                        */

int
st_ssl_no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

static BIO *
mem_bio(const char *pem)
{
    size_t n = strlen(pem);

    return BIO_new_mem_buf(pem, n > INT32_MAX ? INT32_MAX : (int)n);
}

/* Fills the leaf's facts into info. Returns 0 or -ST_EPARSE. */
static int
leaf_info(X509 *x, struct st_ssl_cert_info *info)
{
    struct tm tm = {0};
    uint8_t md[32];
    unsigned int mdlen = 0;
    BASIC_CONSTRAINTS *bc;

    if (ASN1_TIME_to_tm(X509_get0_notAfter(x), &tm) != 1 ||
        X509_digest(x, EVP_sha256(), md, &mdlen) != 1 || mdlen != sizeof(md)) {
        return -ST_EPARSE;
    }
    info->not_after = (int64_t)timegm(&tm);
    st_hex(md, sizeof(md), info->digest);
    info->key_type = X509_get0_pubkey(x) != NULL ? EVP_PKEY_get_base_id(X509_get0_pubkey(x)) : 0;
    bc = X509_get_ext_d2i(x, NID_basic_constraints, NULL, NULL);
    info->is_ca = bc != NULL && bc->ca != 0;
    BASIC_CONSTRAINTS_free(bc);
    return 0;
}

int
st_ssl_cert_parse(const char *pem, struct st_ssl_cert_info *info, char *msg, size_t size)
{
    char why[256];
    BIO *b = mem_bio(pem);
    X509 *x;
    int rc = 0;

    memset(info, 0, sizeof(*info));
    ERR_clear_error();
    while (b != NULL && (x = PEM_read_bio_X509(b, NULL, st_ssl_no_passphrase, NULL)) != NULL) {
        if (info->n_certs == 0 && leaf_info(x, info) != 0) {
            X509_free(x);
            rc = -ST_EPARSE;
            break;
        }
        info->n_certs++;
        X509_free(x);
    }
    /* The loop ends at the end of the text (no further BEGIN line) or at a bad block. */
    if (b != NULL && rc == 0 && info->n_certs > 0 &&
        ERR_GET_REASON(ERR_peek_last_error()) == PEM_R_NO_START_LINE) {
        ERR_clear_error();
    } else {
        rc = -ST_EPARSE;
    }
    BIO_free(b);
    if (rc != 0) {
        snprintf(msg, size, "invalid certificate: x509.new: %s",
                 st_ssl_reason(why, sizeof(why), 0, UNKNOWN_REASON));
    }
    return rc;
}

static EVP_PKEY *
read_key(const char *pem)
{
    BIO *b = mem_bio(pem);
    EVP_PKEY *k;

    if (b == NULL) {
        return NULL;
    }
    k = PEM_read_bio_PrivateKey(b, NULL, st_ssl_no_passphrase, NULL);
    BIO_free(b);
    return k;
}

int
st_ssl_key_parse(const char *pem, char *msg, size_t size)
{
    char why[256];
    EVP_PKEY *k;

    ERR_clear_error();
    k = read_key(pem);
    if (k == NULL) {
        snprintf(msg, size, "invalid key: pkey.new:load_key: %s",
                 st_ssl_reason(why, sizeof(why), 0, UNKNOWN_REASON));
        return -ST_EPARSE;
    }
    EVP_PKEY_free(k);
    return 0;
}

bool
st_ssl_key_matches(const char *cert_pem, const char *key_pem)
{
    BIO *b = mem_bio(cert_pem);
    X509 *x = b != NULL ? PEM_read_bio_X509(b, NULL, st_ssl_no_passphrase, NULL) : NULL;
    EVP_PKEY *k = read_key(key_pem);
    bool ok = false;

    if (x != NULL && k != NULL) {
        ok = EVP_PKEY_eq(X509_get0_pubkey(x), k) == 1;
    }
    EVP_PKEY_free(k);
    X509_free(x);
    BIO_free(b);
    ERR_clear_error();
    return ok;
}
