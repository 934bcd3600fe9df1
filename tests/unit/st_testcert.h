/* Test helper (header only, for the unit tests): self-signed certificates and keys
 * made with OpenSSL in memory, as PEM text. Not a test itself (tests/CMakeLists.txt
 * only picks up test_*.c). */
#ifndef STRAIT_TESTS_ST_TESTCERT_H
#define STRAIT_TESTS_ST_TESTCERT_H

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

enum tc_key {
    TC_EC = 0,
    TC_RSA,
};

/* A PEM pair; both strings malloc'd. */
struct tc_pair {
    char *cert;
    char *key;
};

__attribute__((unused)) static char *
tc_bio_text(BIO *b)
{
    char *data = NULL;
    long n = BIO_get_mem_data(b, &data);
    char *out = malloc((size_t)n + 1);

    if (out == NULL) {
        abort();
    }
    memcpy(out, data, (size_t)n);
    out[n] = '\0';
    BIO_free(b);
    return out;
}

__attribute__((unused)) static void
tc_ext(X509 *x, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509_EXTENSION *ext;

    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    if (ext == NULL || X509_add_ext(x, ext, -1) != 1) {
        abort();
    }
    X509_EXTENSION_free(ext);
}

/* A self-signed certificate for a new key of type kt, CN cn, valid from
 * `from_days` to `to_days` days from now (negative: in the past), with the "CA"
 * basic constraint when ca. */
__attribute__((unused)) static struct tc_pair
tc_make(enum tc_key kt, const char *cn, bool ca, long from_days, long to_days)
{
    EVP_PKEY *pkey = kt == TC_RSA ? EVP_RSA_gen(2048) : EVP_EC_gen("prime256v1");
    X509 *x = X509_new();
    X509_NAME *name;
    BIO *b;
    struct tc_pair p;
    static long serial = 1;

    if (pkey == NULL || x == NULL) {
        abort();
    }
    X509_set_version(x, X509_VERSION_3);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
    X509_gmtime_adj(X509_getm_notBefore(x), from_days * 86400);
    X509_gmtime_adj(X509_getm_notAfter(x), to_days * 86400);
    name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, name);
    X509_set_pubkey(x, pkey);
    tc_ext(x, NID_basic_constraints, ca ? "critical,CA:TRUE" : "CA:FALSE");
    if (X509_sign(x, pkey, EVP_sha256()) == 0) {
        abort();
    }
    b = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(b, x);
    p.cert = tc_bio_text(b);
    b = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(b, pkey, NULL, NULL, 0, NULL, NULL);
    p.key = tc_bio_text(b);
    X509_free(x);
    EVP_PKEY_free(pkey);
    return p;
}

__attribute__((unused)) static void
tc_free(struct tc_pair *p)
{
    free(p->cert);
    free(p->key);
    p->cert = NULL;
    p->key = NULL;
}

/* a followed by b, malloc'd. */
__attribute__((unused)) static char *
tc_concat(const char *a, const char *b)
{
    size_t na = strlen(a);
    size_t nb = strlen(b);
    char *out = malloc(na + nb + 1);

    if (out == NULL) {
        abort();
    }
    memcpy(out, a, na);
    memcpy(out + na, b, nb + 1);
    return out;
}

#endif
