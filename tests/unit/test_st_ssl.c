/* Unit tests for st_ssl: SHA-256 known vectors, random bytes, v4 UUID format, the
 * cluster certificate pair (CN, key type, validity, file modes, no overwrite) and
 * certificate expiry; the PEM checks behind the certificate entities (issue 3); the one
 * OpenSSL reason helper (issue 15: it replaced two in st_ssl and dp_tls's). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "st_err.h"
#include "st_ssl.h"
#include "st_testcert.h"

static void
test_sha256_vectors(void **state)
{
    char hex[65];

    (void)state;
    /* FIPS 180-2 appendix B.1 and the empty string */
    st_ssl_sha256_hex("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    st_ssl_sha256_hex("", 0, hex);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void
test_memeq(void **state)
{
    (void)state;
    assert_true(st_ssl_memeq("abcdef", "abcdef", 6));
    assert_false(st_ssl_memeq("abcdef", "abcdeF", 6));
    assert_false(st_ssl_memeq("xbcdef", "abcdef", 6));
    assert_true(st_ssl_memeq("abc", "abX", 2)); /* only n bytes count */
    assert_true(st_ssl_memeq("", "", 0));
}

static void
test_random(void **state)
{
    uint8_t a[32], b[32];

    (void)state;
    memset(a, 0, sizeof(a));
    memset(b, 0, sizeof(b));
    assert_int_equal(st_ssl_random(a, sizeof(a)), 0);
    assert_int_equal(st_ssl_random(b, sizeof(b)), 0);
    assert_memory_not_equal(a, b, sizeof(a));
    assert_int_equal(st_ssl_random(a, 0), 0);
}

static bool
is_v4_uuid(const char *u)
{
    if (strlen(u) != 36) {
        return false;
    }
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (u[i] != '-') {
                return false;
            }
        } else if (strchr("0123456789abcdef", u[i]) == NULL) {
            return false;
        }
    }
    return u[14] == '4' && strchr("89ab", u[19]) != NULL;
}

static void
test_uuid(void **state)
{
    char a[37], b[37];

    (void)state;
    for (int i = 0; i < 64; i++) {
        assert_int_equal(st_ssl_uuid(a), 0);
        if (!is_v4_uuid(a)) {
            fail_msg("not a v4 uuid: %s", a);
        }
    }
    assert_int_equal(st_ssl_uuid(b), 0);
    assert_string_not_equal(a, b);
    assert_false(is_v4_uuid("0d1f7c2a-94e4-3b5c-8a11-2c7f0e6e9a01")); /* the checker checks */
}

static void
test_gen_cluster_cert(void **state)
{
    char dir[] = "/tmp/st_ssl_test.XXXXXX";
    char cert[128], key[128];
    struct st_err err;
    struct stat st;
    int64_t expiry = 0;
    int64_t now = (int64_t)time(NULL);
    FILE *f;
    X509 *x;
    EVP_PKEY *pk;
    char cn[64];

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(cert, sizeof(cert), "%s/cluster.crt", dir);
    snprintf(key, sizeof(key), "%s/cluster.key", dir);

    assert_int_equal(st_ssl_gen_cluster_cert(cert, key, 10, &err), 0);
    assert_int_equal(stat(key, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(stat(cert, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);

    f = fopen(cert, "r");
    assert_non_null(f);
    x = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(x);
    assert_true(
        X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof(cn)) > 0);
    assert_string_equal(cn, "strait_clustering");
    pk = X509_get0_pubkey(x);
    assert_int_equal(EVP_PKEY_get_base_id(pk), EVP_PKEY_EC);
    assert_int_equal(EVP_PKEY_get_bits(pk), 384);
    assert_int_equal(X509_verify(x, pk), 1); /* self-signed */
    assert_true(X509_check_ca(x) >= 1);
    X509_free(x);

    f = fopen(key, "r");
    assert_non_null(f);
    pk = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(pk);
    EVP_PKEY_free(pk);

    assert_int_equal(st_ssl_cert_expiry(cert, &expiry, &err), 0);
    assert_true(expiry >= now + 10 * 86400 - 5 && expiry <= now + 10 * 86400 + 5);

    /* existing files are never overwritten, and a refusal leaves no new file */
    assert_int_equal(st_ssl_gen_cluster_cert(cert, key, 10, &err), -EEXIST);
    assert_non_null(strstr(err.msg, "already exists"));
    unlink(key);
    assert_int_equal(st_ssl_gen_cluster_cert(cert, key, 10, &err), -EEXIST);
    assert_int_equal(access(key, F_OK), -1);
    assert_int_equal(st_ssl_gen_cluster_cert(cert, key, 0, &err), -EINVAL);

    unlink(cert);
    rmdir(dir);
}

static void
test_cert_expiry_errors(void **state)
{
    char path[] = "/tmp/st_ssl_bad.XXXXXX";
    struct st_err err;
    int64_t expiry;
    int fd;

    (void)state;
    assert_true(st_ssl_cert_expiry("/nonexistent/cert.pem", &expiry, &err) < 0);
    assert_non_null(strstr(err.msg, "/nonexistent/cert.pem"));
    fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "garbage\n", 8), 8);
    close(fd);
    assert_int_equal(st_ssl_cert_expiry(path, &expiry, &err), -ST_EPARSE);
    unlink(path);
}

/* The SHA-256 of the DER of the first certificate in pem, computed independently. */
static void
der_digest(const char *pem, char out[65])
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
    unsigned char *der = NULL;
    int n;

    assert_non_null(x);
    n = i2d_X509(x, &der);
    assert_true(n > 0);
    st_ssl_sha256_hex(der, (size_t)n, out);
    OPENSSL_free(der);
    X509_free(x);
    BIO_free(b);
}

static void
test_cert_parse(void **state)
{
    struct tc_pair ec = tc_make(TC_EC, "ec.test", false, -1, 30);
    struct tc_pair rsa = tc_make(TC_RSA, "rsa.test", true, -1, 30);
    struct st_ssl_cert_info a;
    struct st_ssl_cert_info b;
    char msg[384];
    char want[65];
    char *chain = tc_concat(ec.cert, rsa.cert);
    time_t now = time(NULL);

    (void)state;
    assert_int_equal(st_ssl_cert_parse(ec.cert, &a, msg, sizeof(msg)), 0);
    assert_int_equal(a.n_certs, 1);
    assert_false(a.is_ca);
    assert_true(a.not_after > now + 29 * 86400 && a.not_after < now + 31 * 86400);
    der_digest(ec.cert, want);
    assert_string_equal(a.digest, want);

    assert_int_equal(st_ssl_cert_parse(rsa.cert, &b, msg, sizeof(msg)), 0);
    assert_true(b.is_ca);
    assert_int_not_equal(a.key_type, b.key_type);

    /* a chain: every certificate counted, the leaf described */
    assert_int_equal(st_ssl_cert_parse(chain, &b, msg, sizeof(msg)), 0);
    assert_int_equal(b.n_certs, 2);
    assert_string_equal(b.digest, a.digest);
    assert_int_equal(b.key_type, a.key_type);
    /* the key in the same text is skipped, not an error */
    free(chain);
    chain = tc_concat(ec.cert, ec.key);
    assert_int_equal(st_ssl_cert_parse(chain, &b, msg, sizeof(msg)), 0);
    assert_int_equal(b.n_certs, 1);
    free(chain);

    tc_free(&ec);
    tc_free(&rsa);
}

static void
test_cert_parse_errors(void **state)
{
    struct tc_pair ec = tc_make(TC_EC, "ec.test", false, -1, 30);
    struct st_ssl_cert_info info;
    char msg[384];
    char *bad = tc_concat(ec.cert, "-----BEGIN CERTIFICATE-----\nnot base64 !!\n"
                                   "-----END CERTIFICATE-----\n");
    const char *const texts[] = {
        "",  "garbage", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        bad, ec.key,
    };

    (void)state;
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        msg[0] = '\0';
        assert_int_equal(st_ssl_cert_parse(texts[i], &info, msg, sizeof(msg)), -ST_EPARSE);
        if (strncmp(msg, "invalid certificate: x509.new: ", 31) != 0 || strlen(msg) < 35) {
            fail_msg("text %zu: %s", i, msg);
        }
    }
    free(bad);
    tc_free(&ec);
}

static void
test_key_parse_and_match(void **state)
{
    struct tc_pair ec = tc_make(TC_EC, "ec.test", false, -1, 30);
    struct tc_pair ec2 = tc_make(TC_EC, "ec2.test", false, -1, 30);
    struct tc_pair rsa = tc_make(TC_RSA, "rsa.test", false, -1, 30);
    char msg[384];
    char *chain = tc_concat(ec.cert, rsa.cert);
    char *encrypted;
    EVP_PKEY *k;
    BIO *b;

    (void)state;
    assert_int_equal(st_ssl_key_parse(ec.key, msg, sizeof(msg)), 0);
    assert_int_equal(st_ssl_key_parse(rsa.key, msg, sizeof(msg)), 0);
    assert_int_equal(st_ssl_key_parse("garbage", msg, sizeof(msg)), -ST_EPARSE);
    assert_int_equal(strncmp(msg, "invalid key: pkey.new:load_key: ", 32), 0);
    assert_int_equal(st_ssl_key_parse(ec.cert, msg, sizeof(msg)), -ST_EPARSE);

    /* an encrypted key fails at once, never prompting for a passphrase */
    b = BIO_new_mem_buf(ec.key, -1);
    k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
    BIO_free(b);
    assert_non_null(k);
    b = BIO_new(BIO_s_mem());
    assert_int_equal(
        PEM_write_bio_PKCS8PrivateKey(b, k, EVP_aes_128_cbc(), "secret", 6, NULL, NULL), 1);
    EVP_PKEY_free(k);
    encrypted = tc_bio_text(b);
    assert_int_equal(st_ssl_key_parse(encrypted, msg, sizeof(msg)), -ST_EPARSE);
    assert_false(st_ssl_key_matches(ec.cert, encrypted));
    free(encrypted);

    assert_true(st_ssl_key_matches(ec.cert, ec.key));
    assert_true(st_ssl_key_matches(rsa.cert, rsa.key));
    assert_true(st_ssl_key_matches(chain, ec.key)); /* the leaf's key */
    assert_false(st_ssl_key_matches(chain, rsa.key));
    assert_false(st_ssl_key_matches(ec.cert, ec2.key));
    assert_false(st_ssl_key_matches(ec.cert, rsa.key));
    assert_false(st_ssl_key_matches("garbage", ec.key));
    assert_false(st_ssl_key_matches(ec.cert, "garbage"));
    free(chain);
    tc_free(&ec);
    tc_free(&ec2);
    tc_free(&rsa);
}

static void
test_cert_expired_is_parsed(void **state)
{
    struct tc_pair old = tc_make(TC_EC, "old.test", true, -10, -1);
    struct st_ssl_cert_info info;
    char msg[384];

    (void)state;
    assert_int_equal(st_ssl_cert_parse(old.cert, &info, msg, sizeof(msg)), 0);
    assert_true(info.not_after < time(NULL));
    assert_true(info.is_ca);
    tc_free(&old);
}

/* A corrupt PEM block queues three errors: ASN.1's "wrong tag" first, PEM's "ASN1 lib"
 * last. */
static void
queue_errors(void)
{
    static const char bad[] = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    BIO *b = BIO_new_mem_buf(bad, (int)strlen(bad));

    ERR_clear_error();
    assert_null(PEM_read_bio_X509(b, NULL, NULL, NULL));
    BIO_free(b);
    assert_true(ERR_peek_error() != ERR_peek_last_error());
}

static void
test_reason(void **state)
{
    char buf[256];

    (void)state;
    queue_errors();
    assert_non_null(strstr(st_ssl_reason(buf, sizeof(buf), 0, "none"), "PEM routines"));
    assert_non_null(strstr(buf, "ASN1 lib"));
    assert_int_equal(ERR_peek_error(), 0); /* cleared */
    queue_errors();
    st_ssl_reason(buf, sizeof(buf), ST_SSL_REASON_FIRST, "none");
    assert_non_null(strstr(buf, "wrong tag"));
    assert_non_null(strstr(buf, "error:"));
    assert_int_equal(ERR_peek_error(), 0);
    queue_errors();
    assert_string_equal(st_ssl_reason(buf, sizeof(buf), ST_SSL_REASON_SHORT, "none"), "ASN1 lib");
    assert_string_equal(st_ssl_reason(buf, sizeof(buf), ST_SSL_REASON_SHORT, "none"), "none");
    assert_string_equal(st_ssl_reason(buf, sizeof(buf), 0, "empty queue"), "empty queue");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_vectors),
        cmocka_unit_test(test_reason),
        cmocka_unit_test(test_memeq),
        cmocka_unit_test(test_random),
        cmocka_unit_test(test_uuid),
        cmocka_unit_test(test_gen_cluster_cert),
        cmocka_unit_test(test_cert_expiry_errors),
        cmocka_unit_test(test_cert_parse),
        cmocka_unit_test(test_cert_parse_errors),
        cmocka_unit_test(test_key_parse_and_match),
        cmocka_unit_test(test_cert_expired_is_parsed),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
