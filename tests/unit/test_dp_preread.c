/* dp_preread: the ClientHello parser finds SNI and ALPN in real hellos made by OpenSSL
 * (TLS 1.2 and 1.3) however the bytes are split (one byte per call, one record per byte of
 * handshake), declines what is not TLS, waits on truncated hellos, and refuses every
 * corrupted length, duplicate extension, bad host name and oversized hello. Issue 3, points
 * 2 and 6 (ClientHello preread and its tests). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/bio.h>
#include <openssl/ssl.h>

#include "dp_preread.h"

#define BIG (DP_PREREAD_BUF_MAX * 8)

static const uint8_t alpn_h2_h1[] = "\x02h2\x08http/1.1";
#define ALPN_H2_H1_LEN (sizeof(alpn_h2_h1) - 1)

static uint8_t hello[BIG], frag[BIG], synth[BIG], ext[BIG];

/* The first flight of an OpenSSL client (one record holding the ClientHello), made on memory
 * BIOs. max_version: TLS1_2_VERSION or TLS1_3_VERSION. Returns its length. */
static size_t
openssl_hello(int max_version, const char *sni, const uint8_t *alpn, size_t alpn_len, uint8_t *out)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL *ssl;
    int n;

    assert_non_null(ctx);
    assert_int_equal(SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION), 1);
    assert_int_equal(SSL_CTX_set_max_proto_version(ctx, max_version), 1);
    ssl = SSL_new(ctx);
    assert_non_null(ssl);
    SSL_set_bio(ssl, BIO_new(BIO_s_mem()), BIO_new(BIO_s_mem()));
    if (sni != NULL) {
        assert_int_equal(SSL_set_tlsext_host_name(ssl, sni), 1);
    }
    if (alpn != NULL) {
        assert_int_equal(SSL_set_alpn_protos(ssl, alpn, (unsigned)alpn_len), 0);
    }
    SSL_set_connect_state(ssl);
    assert_int_equal(SSL_do_handshake(ssl), -1);
    assert_int_equal(SSL_get_error(ssl, -1), SSL_ERROR_WANT_READ);
    n = BIO_read(SSL_get_wbio(ssl), out, BIG);
    assert_true(n > 5);
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    /* one handshake record, exactly */
    assert_int_equal(out[0], 22);
    assert_int_equal((size_t)(out[3] << 8 | out[4]) + 5, (size_t)n);
    return (size_t)n;
}

/* Cuts the payload of the single record in[0..len) into records of at most `size` bytes. */
static size_t
refragment(const uint8_t *in, size_t len, size_t size, uint8_t *out)
{
    size_t o = 0, i = 5;

    while (i < len) {
        size_t k = len - i < size ? len - i : size;

        out[o++] = 22;
        out[o++] = 3;
        out[o++] = 1;
        out[o++] = (uint8_t)(k >> 8);
        out[o++] = (uint8_t)k;
        memcpy(out + o, in + i, k);
        o += k;
        i += k;
    }
    return o;
}

/* A ClientHello with the given extensions block (NULL: none at all), in one record unless
 * rec_size cuts it into several. */
static size_t
synth_hello(const uint8_t *exts, size_t exts_len, size_t rec_size, uint8_t *out)
{
    static uint8_t one[BIG];
    size_t n = 5 + 4, body;

    one[n++] = 3;
    one[n++] = 3;
    memset(one + n, 0xab, 32);
    n += 32;
    one[n++] = 0; /* session id */
    one[n++] = 0; /* cipher suites: TLS_AES_128_GCM_SHA256 */
    one[n++] = 2;
    one[n++] = 0x13;
    one[n++] = 0x01;
    one[n++] = 1; /* compression: null */
    one[n++] = 0;
    if (exts != NULL) {
        one[n++] = (uint8_t)(exts_len >> 8);
        one[n++] = (uint8_t)exts_len;
        memcpy(one + n, exts, exts_len);
        n += exts_len;
    }
    body = n - 9;
    one[5] = 1;
    one[6] = (uint8_t)(body >> 16);
    one[7] = (uint8_t)(body >> 8);
    one[8] = (uint8_t)body;
    one[0] = 22;
    one[1] = 3;
    one[2] = 1;
    one[3] = (uint8_t)((n - 5) >> 8); /* wrong for n - 5 > 65535: callers refragment */
    one[4] = (uint8_t)(n - 5);
    if (rec_size == 0) {
        memcpy(out, one, n);
        return n;
    }
    return refragment(one, n, rec_size, out);
}

/* Appends one extension to out at *n. */
static void
put_ext(uint8_t *out, size_t *n, unsigned type, const uint8_t *data, size_t len)
{
    out[(*n)++] = (uint8_t)(type >> 8);
    out[(*n)++] = (uint8_t)type;
    out[(*n)++] = (uint8_t)(len >> 8);
    out[(*n)++] = (uint8_t)len;
    if (len > 0) {
        memcpy(out + *n, data, len);
    }
    *n += len;
}

/* Appends a server_name extension with one name of type `type`. */
static void
put_sni(uint8_t *out, size_t *n, unsigned type, const char *name, size_t len)
{
    uint8_t d[1024];

    d[0] = (uint8_t)((len + 3) >> 8);
    d[1] = (uint8_t)(len + 3);
    d[2] = (uint8_t)type;
    d[3] = (uint8_t)(len >> 8);
    d[4] = (uint8_t)len;
    memcpy(d + 5, name, len);
    put_ext(out, n, 0, d, len + 5);
}

/* Appends an ALPN extension with the wire-format list. */
static void
put_alpn(uint8_t *out, size_t *n, const uint8_t *list, size_t len)
{
    uint8_t d[4096];

    d[0] = (uint8_t)(len >> 8);
    d[1] = (uint8_t)len;
    if (len > 0) {
        memcpy(d + 2, list, len);
    }
    put_ext(out, n, 16, d, len + 2);
}

/* Feeds buf[0..len) in one call to a fresh parser. */
static enum dp_verdict
feed_once(struct dp_preread *pr, const uint8_t *buf, size_t len)
{
    dp_preread_init(pr);
    return dp_preread_feed(pr, buf, buf + len);
}

/* Feeds buf[0..len) growing by `step` bytes per call (the whole buffer each time, as the
 * contract says); every call but the last must say DP_AGAIN unless a verdict came early. */
static enum dp_verdict
feed_steps(struct dp_preread *pr, const uint8_t *buf, size_t len, size_t step)
{
    enum dp_verdict rc = DP_AGAIN;
    size_t i;

    dp_preread_init(pr);
    for (i = 0; i < len && rc == DP_AGAIN;) {
        i = len - i < step ? len : i + step;
        rc = dp_preread_feed(pr, buf, buf + i);
    }
    return rc;
}

static void
assert_sni_alpn(const struct dp_preread *pr, const char *sni, const uint8_t *alpn, size_t alpn_len)
{
    const uint8_t *a;
    size_t n;

    if (sni == NULL) {
        assert_null(dp_preread_sni(pr));
    } else {
        assert_non_null(dp_preread_sni(pr));
        assert_string_equal(dp_preread_sni(pr), sni);
    }
    a = dp_preread_alpn(pr, &n);
    if (alpn == NULL) {
        assert_null(a);
        assert_int_equal(n, 0);
    } else {
        assert_non_null(a);
        assert_int_equal(n, alpn_len);
        assert_memory_equal(a, alpn, alpn_len);
    }
}

static void
check_real(int max_version)
{
    struct dp_preread pr;
    size_t len = openssl_hello(max_version, "example.com", alpn_h2_h1, ALPN_H2_H1_LEN, hello);

    assert_int_equal(feed_once(&pr, hello, len), DP_NEXT);
    assert_string_equal(dp_preread_why(&pr), "");
    assert_sni_alpn(&pr, "example.com", alpn_h2_h1, ALPN_H2_H1_LEN);
    assert_true(dp_preread_alpn_has(&pr, "h2", 2));
    assert_true(dp_preread_alpn_has(&pr, "http/1.1", 8));
    assert_false(dp_preread_alpn_has(&pr, "http/1.0", 8));
    assert_false(dp_preread_alpn_has(&pr, "h", 1));
    /* the verdict is sticky */
    assert_int_equal(dp_preread_feed(&pr, hello, hello + len), DP_NEXT);

    assert_int_equal(feed_steps(&pr, hello, len, 1), DP_NEXT);
    assert_sni_alpn(&pr, "example.com", alpn_h2_h1, ALPN_H2_H1_LEN);
    assert_int_equal(feed_steps(&pr, hello, len, 7), DP_NEXT);
    assert_sni_alpn(&pr, "example.com", alpn_h2_h1, ALPN_H2_H1_LEN);
}

static void
test_tls13_hello(void **state)
{
    (void)state;
    check_real(TLS1_3_VERSION);
}

static void
test_tls12_hello(void **state)
{
    (void)state;
    check_real(TLS1_2_VERSION);
}

/* Every strict prefix of a hello is DP_AGAIN: a truncated hello waits (the caller's timeout
 * or EOF ends it), it is never accepted. */
static void
test_truncated(void **state)
{
    struct dp_preread pr;
    size_t len = openssl_hello(TLS1_3_VERSION, "example.com", NULL, 0, hello);
    size_t i;

    (void)state;
    for (i = 0; i < len; i++) {
        assert_int_equal(feed_once(&pr, hello, i), DP_AGAIN);
    }
    /* a truncated hello followed by another record type is malformed */
    memcpy(frag, hello, 100);
    memcpy(frag + 100, "\x17\x03\x03\x00\x01x", 6);
    frag[3] = 0;
    frag[4] = 95;
    assert_int_equal(feed_once(&pr, frag, 106), DP_ERROR);
}

/* The hello spread over many records of every small size, fed whole and byte by byte. */
static void
test_split_records(void **state)
{
    static const size_t sizes[] = {1, 2, 3, 4, 5, 31, 32, 33, 100, 255, 16384};
    struct dp_preread pr;
    size_t len =
        openssl_hello(TLS1_3_VERSION, "www.example.org", alpn_h2_h1, ALPN_H2_H1_LEN, hello);
    size_t i, n;

    (void)state;
    for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        n = refragment(hello, len, sizes[i], frag);
        assert_int_equal(feed_once(&pr, frag, n), DP_NEXT);
        assert_sni_alpn(&pr, "www.example.org", alpn_h2_h1, ALPN_H2_H1_LEN);
        assert_int_equal(feed_steps(&pr, frag, n, 1), DP_NEXT);
        assert_sni_alpn(&pr, "www.example.org", alpn_h2_h1, ALPN_H2_H1_LEN);
        assert_int_equal(feed_steps(&pr, frag, n, 3), DP_NEXT);
        assert_sni_alpn(&pr, "www.example.org", alpn_h2_h1, ALPN_H2_H1_LEN);
    }
}

static void
test_no_sni(void **state)
{
    struct dp_preread pr;
    size_t len;

    (void)state;
    len = openssl_hello(TLS1_3_VERSION, NULL, NULL, 0, hello);
    assert_int_equal(feed_steps(&pr, hello, len, 1), DP_NEXT);
    assert_sni_alpn(&pr, NULL, NULL, 0);

    len = openssl_hello(TLS1_2_VERSION, NULL, alpn_h2_h1, ALPN_H2_H1_LEN, hello);
    assert_int_equal(feed_once(&pr, hello, len), DP_NEXT);
    assert_sni_alpn(&pr, NULL, alpn_h2_h1, ALPN_H2_H1_LEN);

    /* an old hello without any extension block */
    len = synth_hello(NULL, 0, 0, synth);
    assert_int_equal(feed_steps(&pr, synth, len, 1), DP_NEXT);
    assert_sni_alpn(&pr, NULL, NULL, 0);
}

static void
test_not_tls(void **state)
{
    static const uint8_t http[] = "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n";
    static const uint8_t sslv2[] = {0x80, 0x2e, 0x01, 0x03, 0x01};
    static const uint8_t v2rec[] = {0x16, 0x02, 0x00, 0x00, 0x10};
    struct dp_preread pr;

    (void)state;
    assert_int_equal(feed_once(&pr, http, sizeof(http) - 1), DP_DECLINED);
    assert_true(strlen(dp_preread_why(&pr)) > 0);
    assert_int_equal(feed_steps(&pr, http, sizeof(http) - 1, 1), DP_DECLINED);
    assert_int_equal(feed_once(&pr, sslv2, sizeof(sslv2)), DP_DECLINED);
    assert_int_equal(feed_once(&pr, v2rec, sizeof(v2rec)), DP_DECLINED);
    assert_int_equal(feed_once(&pr, v2rec, 1), DP_AGAIN);
    assert_int_equal(feed_once(&pr, http, 0), DP_AGAIN);
    /* sticky */
    assert_int_equal(feed_once(&pr, http, 1), DP_DECLINED);
    assert_int_equal(dp_preread_feed(&pr, v2rec, v2rec + 5), DP_DECLINED);
}

/* A length field of a real hello: offset and width in bytes. `outer`: the record or
 * handshake length, whose corruption may also leave the parser waiting for more. */
struct lenfield {
    size_t off, width;
    bool outer;
};

/* Lists every length field of the single-record hello h[0..len). */
static size_t
length_fields(const uint8_t *h, size_t len, struct lenfield *f)
{
    size_t n = 0, pos, end, q, qend;

    f[n++] = (struct lenfield){3, 2, true};
    f[n++] = (struct lenfield){6, 3, true};
    pos = 5 + 4 + 2 + 32;
    f[n++] = (struct lenfield){pos, 1, false};
    pos += 1 + h[pos];
    f[n++] = (struct lenfield){pos, 2, false};
    pos += 2 + (size_t)(h[pos] << 8 | h[pos + 1]);
    f[n++] = (struct lenfield){pos, 1, false};
    pos += 1 + h[pos];
    f[n++] = (struct lenfield){pos, 2, false};
    pos += 2;
    while (pos < len) {
        unsigned type = (unsigned)(h[pos] << 8 | h[pos + 1]);

        end = pos + 4 + (size_t)(h[pos + 2] << 8 | h[pos + 3]);
        f[n++] = (struct lenfield){pos + 2, 2, false};
        if (type == 0) {
            f[n++] = (struct lenfield){pos + 4, 2, false};
            f[n++] = (struct lenfield){pos + 7, 2, false};
        } else if (type == 16) {
            f[n++] = (struct lenfield){pos + 4, 2, false};
            for (q = pos + 6, qend = end; q < qend; q += 1 + h[q]) {
                f[n++] = (struct lenfield){q, 1, false};
            }
        }
        pos = end;
    }
    assert_int_equal(pos, len);
    return n;
}

static size_t
get_be(const uint8_t *p, size_t width)
{
    size_t v = 0, i;

    for (i = 0; i < width; i++) {
        v = v << 8 | p[i];
    }
    return v;
}

static void
put_be(uint8_t *p, size_t width, size_t v)
{
    size_t i;

    for (i = width; i > 0; i--) {
        p[i - 1] = (uint8_t)v;
        v >>= 8;
    }
}

/* Each length field set to +1, -1, 0 and its maximum: never accepted, whatever the split. */
static void
check_corrupt(const uint8_t *h, size_t len)
{
    struct lenfield f[64];
    struct dp_preread pr;
    size_t nf = length_fields(h, len, f), i, k;

    assert_true(nf >= 10);
    for (i = 0; i < nf; i++) {
        size_t v = get_be(h + f[i].off, f[i].width);
        size_t max = ((size_t)1 << (8 * f[i].width)) - 1;
        size_t vals[4] = {v + 1, v - 1, 0, max};

        for (k = 0; k < 4; k++) {
            enum dp_verdict rc;

            if (vals[k] == v || vals[k] > max) {
                continue;
            }
            memcpy(frag, h, len);
            put_be(frag + f[i].off, f[i].width, vals[k]);
            rc = feed_once(&pr, frag, len);
            if (f[i].outer) {
                assert_true(rc == DP_ERROR || rc == DP_AGAIN);
            } else {
                if (rc != DP_ERROR) {
                    print_error("field at %zu (width %zu) set to %zu: verdict %d\n", f[i].off,
                                f[i].width, vals[k], (int)rc);
                }
                assert_int_equal(rc, DP_ERROR);
                assert_true(strlen(dp_preread_why(&pr)) > 0);
            }
            assert_int_equal(feed_steps(&pr, frag, len, 1), rc);
        }
    }
}

static void
test_corrupt_lengths(void **state)
{
    size_t len;

    (void)state;
    len = openssl_hello(TLS1_3_VERSION, "example.com", alpn_h2_h1, ALPN_H2_H1_LEN, hello);
    check_corrupt(hello, len);
    len = openssl_hello(TLS1_2_VERSION, "a.example.com", alpn_h2_h1, ALPN_H2_H1_LEN, hello);
    check_corrupt(hello, len);
}

static enum dp_verdict
synth_verdict(struct dp_preread *pr, const uint8_t *e, size_t elen)
{
    size_t len = synth_hello(e, elen, 0, synth);
    enum dp_verdict rc = feed_once(pr, synth, len);

    /* the same verdict byte by byte and over 1-byte records */
    assert_int_equal(feed_steps(pr, synth, len, 1), rc);
    len = synth_hello(e, elen, 1, synth);
    assert_int_equal(feed_once(pr, synth, len), rc);
    return rc;
}

static void
test_sni_rules(void **state)
{
    static const char *bad[] = {"exa mple.com", "a..b", ".a", "a/b", "a:b",
                                "*.a.com",      "a\nb", "..", "."};
    char name[300];
    struct dp_preread pr;
    size_t n, i;

    (void)state;
    n = 0;
    put_sni(ext, &n, 0, "Example.COM.", 12);
    assert_int_equal(synth_verdict(&pr, ext, n), DP_NEXT);
    assert_string_equal(dp_preread_sni(&pr), "example.com");

    n = 0;
    put_sni(ext, &n, 0, "a_b-c.d9", 8);
    assert_int_equal(synth_verdict(&pr, ext, n), DP_NEXT);
    assert_string_equal(dp_preread_sni(&pr), "a_b-c.d9");

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        n = 0;
        put_sni(ext, &n, 0, bad[i], strlen(bad[i]));
        assert_int_equal(synth_verdict(&pr, ext, n), DP_ERROR);
    }
    n = 0;
    put_sni(ext, &n, 0, "a\0b", 3);
    assert_int_equal(synth_verdict(&pr, ext, n), DP_ERROR);

    /* 255 characters at most */
    memset(name, 'a', sizeof(name));
    n = 0;
    put_sni(ext, &n, 0, name, 255);
    assert_int_equal(synth_verdict(&pr, ext, n), DP_NEXT);
    assert_int_equal(strlen(dp_preread_sni(&pr)), 255);
    n = 0;
    put_sni(ext, &n, 0, name, 256);
    assert_int_equal(synth_verdict(&pr, ext, n), DP_ERROR);

    /* an empty name, another name type, an empty extension */
    n = 0;
    put_sni(ext, &n, 0, "", 0);
    assert_int_equal(synth_verdict(&pr, ext, n), DP_ERROR);
    n = 0;
    put_sni(ext, &n, 1, "example.com", 11);
    assert_int_equal(synth_verdict(&pr, ext, n), DP_ERROR);
    n = 0;
    put_ext(ext, &n, 0, NULL, 0);
    assert_int_equal(synth_verdict(&pr, ext, n), DP_ERROR);

    /* a duplicate server_name extension */
    n = 0;
    put_sni(ext, &n, 0, "a.com", 5);
    put_sni(ext, &n, 0, "b.com", 5);
    assert_int_equal(synth_verdict(&pr, ext, n), DP_ERROR);
    assert_string_equal(dp_preread_why(&pr), "duplicate server_name extension");

    /* two host_names in one list */
    n = 0;
    put_ext(ext, &n, 0, (const uint8_t *)"\x00\x0c\x00\x00\x03\x61\x2e\x62\x00\x00\x03\x63\x2e\x64",
            14);
    assert_int_equal(synth_verdict(&pr, ext, n), DP_ERROR);

    /* SNI after other extensions, and unknown extensions are skipped */
    n = 0;
    put_ext(ext, &n, 0xfafa, NULL, 0);
    put_ext(ext, &n, 21, (const uint8_t *)"\0\0\0\0\0\0\0\0", 8);
    put_sni(ext, &n, 0, "late.example", 12);
    put_ext(ext, &n, 43, (const uint8_t *)"\x02\x03\x04", 3);
    assert_int_equal(synth_verdict(&pr, ext, n), DP_NEXT);
    assert_string_equal(dp_preread_sni(&pr), "late.example");
    assert_sni_alpn(&pr, "late.example", NULL, 0);
}

static void
test_alpn_rules(void **state)
{
    uint8_t list[2048];
    struct dp_preread pr;
    const uint8_t *a;
    size_t n, i, alen;

    (void)state;
    n = 0;
    put_alpn(ext, &n, (const uint8_t *)"\x02h2\x00", 4);
    assert_int_equal(synth_verdict(&pr, ext, n), DP_ERROR);
    n = 0;
    put_alpn(ext, &n, NULL, 0);
    assert_int_equal(synth_verdict(&pr, ext, n), DP_ERROR);
    n = 0;
    put_alpn(ext, &n, (const uint8_t *)"\x03h2", 3);
    assert_int_equal(synth_verdict(&pr, ext, n), DP_ERROR);
    n = 0;
    put_alpn(ext, &n, alpn_h2_h1, ALPN_H2_H1_LEN);
    put_alpn(ext, &n, alpn_h2_h1, ALPN_H2_H1_LEN);
    assert_int_equal(synth_verdict(&pr, ext, n), DP_ERROR);
    assert_string_equal(dp_preread_why(&pr), "duplicate ALPN extension");

    /* a list longer than we keep: the whole names that fit, flagged */
    for (i = 0; i < 100; i++) {
        list[i * 11] = 10;
        memset(list + i * 11 + 1, 'a' + (int)(i % 26), 10);
    }
    n = 0;
    put_alpn(ext, &n, list, 1100);
    assert_int_equal(synth_verdict(&pr, ext, n), DP_NEXT);
    a = dp_preread_alpn(&pr, &alen);
    assert_non_null(a);
    assert_int_equal(alen, (DP_PREREAD_ALPN_MAX / 11) * 11);
    assert_memory_equal(a, list, alen);
    assert_true(pr.flags & DP_PREREAD_F_ALPN_TRUNCATED);
    assert_true(dp_preread_alpn_has(&pr, "aaaaaaaaaa", 10));
    assert_false(dp_preread_alpn_has(&pr, "zzzzzzzzzz", 10));
}

/* A hello whose body (after the 4-byte handshake header) is body[0..n), in one record. */
static size_t
raw_hello(const uint8_t *body, size_t n, uint8_t *out)
{
    memcpy(out, "\x16\x03\x01", 3);
    put_be(out + 3, 2, n + 4);
    out[5] = 1;
    put_be(out + 6, 3, n);
    memcpy(out + 9, body, n);
    return n + 9;
}

/* The fixed fields of the hello body, each checked on its own. */
static void
test_hello_fields(void **state)
{
    uint8_t body[128];
    struct dp_preread pr;
    size_t n, len;

    (void)state;
    /* version, random, session id of 32 (accepted) then 33 bytes */
    memset(body, 0, sizeof(body));
    body[0] = 3;
    body[1] = 3;
    body[34] = 32;
    n = 35 + 32;
    memcpy(body + n, "\x00\x02\x13\x01\x01\x00", 6);
    len = raw_hello(body, n + 6, frag);
    assert_int_equal(feed_once(&pr, frag, len), DP_NEXT);
    body[34] = 33;
    memcpy(body + n, "\x00\x00\x02\x13\x01\x01\x00", 7);
    len = raw_hello(body, n + 7, frag);
    assert_int_equal(feed_once(&pr, frag, len), DP_ERROR);
    assert_string_equal(dp_preread_why(&pr), "session id too long");

    /* cipher_suites: odd or empty */
    body[34] = 0;
    memcpy(body + 35, "\x00\x03\x13\x01\x13\x01\x00", 7);
    len = raw_hello(body, 42, frag);
    assert_int_equal(feed_once(&pr, frag, len), DP_ERROR);
    assert_string_equal(dp_preread_why(&pr), "bad cipher_suites length");
    memcpy(body + 35, "\x00\x00\x01\x00", 4);
    len = raw_hello(body, 39, frag);
    assert_int_equal(feed_once(&pr, frag, len), DP_ERROR);
    assert_string_equal(dp_preread_why(&pr), "bad cipher_suites length");

    /* no compression method */
    memcpy(body + 35, "\x00\x02\x13\x01\x00", 5);
    len = raw_hello(body, 40, frag);
    assert_int_equal(feed_once(&pr, frag, len), DP_ERROR);
    assert_string_equal(dp_preread_why(&pr), "no compression methods");

    /* a host name longer than its extension, followed by an extension of letters */
    n = 0;
    put_ext(ext, &n, 0,
            (const uint8_t *)"\x00\x05\x00\x00\x05"
                             "ab",
            7);
    put_ext(ext, &n, 0x6364, (const uint8_t *)"ef", 2);
    assert_int_equal(synth_verdict(&pr, ext, n), DP_ERROR);
    assert_string_equal(dp_preread_why(&pr), "a field overruns its extension");

    /* an extension longer than the hello */
    n = 0;
    put_sni(ext, &n, 0, "example.com", 11);
    ext[3] = (uint8_t)(ext[3] + 1);
    assert_int_equal(synth_verdict(&pr, ext, n), DP_ERROR);
    assert_string_equal(dp_preread_why(&pr), "an extension overruns the ClientHello");
}

static void
test_records(void **state)
{
    struct dp_preread pr;
    size_t len, n;

    (void)state;
    len = openssl_hello(TLS1_3_VERSION, "example.com", NULL, 0, hello);

    /* an empty handshake record */
    memcpy(frag, "\x16\x03\x01\x00\x00", 5);
    memcpy(frag + 5, hello, len);
    assert_int_equal(feed_once(&pr, frag, len + 5), DP_ERROR);

    /* a record longer than 2^14 + 2048 */
    memcpy(frag, hello, len);
    put_be(frag + 3, 2, 16384 + 2049);
    assert_int_equal(feed_once(&pr, frag, len), DP_ERROR);
    assert_string_equal(dp_preread_why(&pr), "record too long");

    /* a second record that is not a handshake record, or not version 3.x */
    n = refragment(hello, len, 50, frag);
    frag[55] = 0x17;
    assert_int_equal(feed_once(&pr, frag, n), DP_ERROR);
    n = refragment(hello, len, 50, frag);
    frag[56] = 2;
    assert_int_equal(feed_once(&pr, frag, n), DP_ERROR);

    /* bytes after the hello inside its record */
    memcpy(frag, hello, len);
    frag[len] = 0;
    put_be(frag + 3, 2, len - 5 + 1);
    assert_int_equal(feed_once(&pr, frag, len + 1), DP_ERROR);

    /* another handshake message first; a ClientHello of version 2.x */
    memcpy(frag, hello, len);
    frag[5] = 2;
    assert_int_equal(feed_once(&pr, frag, len), DP_ERROR);
    memcpy(frag, hello, len);
    frag[9] = 2;
    assert_int_equal(feed_once(&pr, frag, len), DP_ERROR);

    /* whatever follows a complete hello (the rest of the stream) is not looked at */
    memcpy(frag, hello, len);
    memcpy(frag + len, "\x14\x03\x03\x00\x01\x01garbage", 13);
    assert_int_equal(feed_once(&pr, frag, len + 13), DP_NEXT);

    /* a buffer shorter than the previous one breaks the contract */
    dp_preread_init(&pr);
    assert_int_equal(dp_preread_feed(&pr, hello, hello + 20), DP_AGAIN);
    assert_int_equal(dp_preread_feed(&pr, hello, hello + 10), DP_ERROR);
}

static void
test_oversized(void **state)
{
    struct dp_preread pr;
    size_t n, len, pad;

    (void)state;
    /* the largest hello accepted: 4 + body = DP_PREREAD_HELLO_MAX, over two records */
    pad = DP_PREREAD_HELLO_MAX - 4 - 41 - 2 - 4;
    memset(frag, 0, pad);
    n = 0;
    put_ext(ext, &n, 21, frag, pad);
    len = synth_hello(ext, n, 16384, synth);
    assert_int_equal(feed_once(&pr, synth, len), DP_NEXT);
    assert_int_equal(feed_steps(&pr, synth, len, 1000), DP_NEXT);

    /* one byte more */
    n = 0;
    put_ext(ext, &n, 21, frag, pad + 1);
    len = synth_hello(ext, n, 16384, synth);
    assert_int_equal(feed_once(&pr, synth, len), DP_ERROR);
    assert_string_equal(dp_preread_why(&pr), "ClientHello too large");

    /* a huge hello length field */
    len = openssl_hello(TLS1_3_VERSION, "example.com", NULL, 0, hello);
    hello[6] = 0x7f;
    assert_int_equal(feed_once(&pr, hello, len), DP_ERROR);

    /* an accepted size in too many tiny records: stopped at DP_PREREAD_BUF_MAX bytes */
    n = 0;
    put_ext(ext, &n, 21, frag, 8000);
    len = synth_hello(ext, n, 1, synth);
    assert_true(len > DP_PREREAD_BUF_MAX);
    assert_int_equal(feed_once(&pr, synth, len), DP_ERROR);
    assert_int_equal(feed_steps(&pr, synth, len, 4096), DP_ERROR);
    assert_int_equal(feed_once(&pr, synth, DP_PREREAD_BUF_MAX - 1), DP_AGAIN);
    assert_int_equal(feed_once(&pr, synth, DP_PREREAD_BUF_MAX), DP_ERROR);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tls13_hello),     cmocka_unit_test(test_tls12_hello),
        cmocka_unit_test(test_truncated),       cmocka_unit_test(test_split_records),
        cmocka_unit_test(test_no_sni),          cmocka_unit_test(test_not_tls),
        cmocka_unit_test(test_corrupt_lengths), cmocka_unit_test(test_sni_rules),
        cmocka_unit_test(test_alpn_rules),      cmocka_unit_test(test_records),
        cmocka_unit_test(test_hello_fields),    cmocka_unit_test(test_oversized),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
