/* dp_tls: certificate choice by SNI (Kong's order), context reuse across builds, dual
 * RSA/ECDSA certificates, session tickets across key rotations, the default certificate
 * files, and upstream verification. Real OpenSSL handshakes run in-process over
 * socketpairs; nothing touches the network. */
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "dp_tls.h"
#include "dp_xprt_tls.h"
#include "st_conf.h"
#include "st_entity.h"
#include "st_err.h"
#include "st_snapshot.h"
#include "st_testcert.h"
#include "st_util.h"

static char g_prefix[64];
static struct tc_pair g_ec[6]; /* CN "c0".."c5" */
static struct tc_pair g_rsa;   /* CN "rsa" */
static struct tc_pair g_ca;    /* CN "localhost", CA:TRUE */

/* ---------------------------------------------------------------------------------- */
/* helpers */

static void
conf_fill(struct st_conf *c, const char *suite, const char *protocols, bool tickets)
{
    static struct st_listen ssl_listener = {.flags = ST_LISTEN_F_SSL};

    memset(c, 0, sizeof(*c));
    c->prefix = g_prefix;
    c->stream_listen.v = &ssl_listener; /* server contexts only for ssl listeners */
    c->stream_listen.n = 1;
    c->ssl_cipher_suite = (char *)suite;
    c->ssl_protocols = (char *)protocols;
    c->ssl_session_tickets = tickets;
}

static void
init_ok(int64_t rotate_ms, bool tickets)
{
    struct st_conf conf;
    struct st_err err = {0};
    int rc;

    conf_fill(&conf, "intermediate", "TLSv1.2 TLSv1.3", tickets);
    rc = dp_tls_init(&conf, rotate_ms, &err);
    if (rc != 0) {
        fail_msg("dp_tls_init: %s", err.msg);
    }
}

struct snapb {
    struct st_snapshot snap;
    struct st_certificate certs[8];
    struct st_sni snis[8];
};

static void
snap_init(struct snapb *b)
{
    memset(b, 0, sizeof(*b));
    b->snap.certificates = b->certs;
    b->snap.snis = b->snis;
}

static size_t
snap_cert(struct snapb *b, const char *id, const struct tc_pair *p, const struct tc_pair *alt)
{
    struct st_certificate *c = &b->certs[b->snap.n_certificates];

    c->id = id;
    c->cert = p->cert;
    c->key = p->key;
    c->cert_alt = alt != NULL ? alt->cert : NULL;
    c->key_alt = alt != NULL ? alt->key : NULL;
    return b->snap.n_certificates++;
}

static void
snap_sni(struct snapb *b, const char *name, size_t cert)
{
    struct st_sni *s = &b->snis[b->snap.n_snis++];

    s->id = name;
    s->name = name;
    s->certificate = &b->certs[cert];
}

static struct dp_tls_certs *
certs_build(const struct snapb *b)
{
    struct dp_tls_certs *c = NULL;
    struct st_err err = {0};

    assert_int_equal(dp_tls_certs_new(&b->snap, &c, &err), 0);
    assert_non_null(c);
    return c;
}

/* The CN of the context's current (last loaded) certificate. */
static const char *
ctx_cn(SSL_CTX *ctx)
{
    static char buf[64];
    X509 *x = SSL_CTX_get0_certificate(ctx);

    buf[0] = '\0';
    if (x != NULL) {
        X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, buf, sizeof(buf));
    }
    return buf;
}

static const char *
sel_cn(const struct dp_tls_certs *c, const char *sni)
{
    SSL_CTX *ctx = dp_tls_certs_select(c, sni);

    assert_non_null(ctx);
    return ctx_cn(ctx);
}

struct conn {
    SSL *cli, *srv;
    int fds[2];
    char why_c[256], why_s[256];
    enum dp_verdict vc, vs;
};

static void
conn_open(struct conn *c, SSL_CTX *sctx, SSL_CTX *cctx)
{
    memset(c, 0, sizeof(*c));
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, c->fds), 0);
    c->cli = SSL_new(cctx);
    c->srv = SSL_new(sctx);
    assert_non_null(c->cli);
    assert_non_null(c->srv);
    SSL_set_fd(c->cli, c->fds[0]);
    SSL_set_fd(c->srv, c->fds[1]);
    SSL_set_connect_state(c->cli);
    SSL_set_accept_state(c->srv);
}

/* Runs both handshakes with the TLS transport's handshake until each side is done or one fails. */
static void
conn_handshake(struct conn *c)
{
    struct dp_sock kc = {.fd = c->fds[0], .xprt = &dp_xprt_tls, .xprt_ctx = c->cli};
    struct dp_sock ks = {.fd = c->fds[1], .xprt = &dp_xprt_tls, .xprt_ctx = c->srv};
    int i;

    c->vc = c->vs = DP_AGAIN;
    for (i = 0; i < 100 && (c->vc == DP_AGAIN || c->vs == DP_AGAIN); i++) {
        if (c->vc == DP_AGAIN) {
            c->vc = dp_xprt_tls.handshake(&kc, c->why_c, sizeof(c->why_c));
        }
        if (c->vs == DP_AGAIN) {
            c->vs = dp_xprt_tls.handshake(&ks, c->why_s, sizeof(c->why_s));
        }
        if (c->vc == DP_ERROR || c->vs == DP_ERROR) {
            break;
        }
    }
    assert_int_equal(ERR_peek_error(), 0);
}

static void
conn_close(struct conn *c)
{
    SSL_free(c->cli);
    SSL_free(c->srv);
    close(c->fds[0]);
    close(c->fds[1]);
}

static SSL_CTX *
client_ctx_new(void)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

    assert_non_null(ctx);
    return ctx;
}

static char *
slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf = calloc(1, 65536);
    size_t n;

    assert_non_null(f);
    assert_non_null(buf);
    n = fread(buf, 1, 65535, f);
    assert_true(n > 0);
    fclose(f);
    return buf;
}

static void
spit(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    fclose(f);
}

static void
sleep_until(int64_t when_ms)
{
    int64_t now;

    while ((now = st_mono_ms()) < when_ms) {
        struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)(when_ms - now) * 1000000L};

        nanosleep(&ts, NULL);
    }
}

/* ---------------------------------------------------------------------------------- */
/* tests */

static void
test_select_order(void **state)
{
    struct snapb b;
    struct dp_tls_certs *c;

    (void)state;
    snap_init(&b);
    snap_cert(&b, "id-0", &g_ec[0], NULL);
    snap_cert(&b, "id-1", &g_ec[1], NULL);
    snap_cert(&b, "id-2", &g_ec[2], NULL);
    snap_cert(&b, "id-3", &g_ec[3], NULL);
    snap_sni(&b, "API.Example.com", 0); /* normalised to lower case */
    snap_sni(&b, "*.example.com", 1);
    snap_sni(&b, "api.example.*", 2);
    snap_sni(&b, "*", 3);
    c = certs_build(&b);

    assert_string_equal(sel_cn(c, "api.example.com"), "c0");
    assert_string_equal(sel_cn(c, "API.EXAMPLE.COM"), "c0");
    assert_string_equal(sel_cn(c, "api.example.com."), "c0");
    assert_string_equal(sel_cn(c, "www.example.com"), "c1"); /* *.rest */
    assert_string_equal(sel_cn(c, "Www.Example.Com"), "c1"); /* *.rest, any case */
    assert_string_equal(sel_cn(c, "api.example.org"), "c2"); /* prefix.* */
    assert_string_equal(sel_cn(c, "a.b.example.com"), "c3"); /* *.rest replaces one label */
    assert_string_equal(sel_cn(c, "other.test"), "c3");      /* the "*" SNI */
    assert_string_equal(sel_cn(c, "example.com"), "c3");     /* 2 labels: no *.rest */
    assert_string_equal(sel_cn(c, "localhost"), "c3");
    assert_string_equal(sel_cn(c, NULL), "localhost"); /* no SNI: default */
    assert_string_equal(sel_cn(c, ""), "localhost");
    dp_tls_certs_free(c);

    /* Without a "*" SNI the default certificate is last; "*.rest" needs 3 labels. */
    snap_init(&b);
    snap_cert(&b, "id-0", &g_ec[0], NULL);
    snap_cert(&b, "id-4", &g_ec[4], NULL);
    snap_sni(&b, "*.com", 0);
    snap_sni(&b, "example.*", 1);
    c = certs_build(&b);
    assert_string_equal(sel_cn(c, "example.com"), "c4"); /* not *.com: only 2 labels */
    assert_string_equal(sel_cn(c, "example.net"), "c4");
    assert_string_equal(sel_cn(c, "www.example.com"), "localhost"); /* *.example.com, no */
    assert_string_equal(sel_cn(c, "foo.com"), "localhost");
    assert_string_equal(sel_cn(c, "com"), "localhost");
    dp_tls_certs_free(c);
}

static void
test_select_bad_certificate_falls_through(void **state)
{
    struct tc_pair broken = {.cert = (char *)"-----BEGIN CERTIFICATE-----\nAAAA\n", .key = NULL};
    struct tc_pair mismatch = {.cert = g_ec[0].cert, .key = g_ec[1].key};
    struct snapb b;
    struct dp_tls_certs *c;

    (void)state;
    broken.key = g_ec[0].key;
    snap_init(&b);
    snap_cert(&b, "id-bad", &broken, NULL);
    snap_cert(&b, "id-mismatch", &mismatch, NULL);
    snap_cert(&b, "id-3", &g_ec[3], NULL);
    snap_sni(&b, "a.test", 0);
    snap_sni(&b, "b.test", 1);
    snap_sni(&b, "*", 2);
    c = certs_build(&b);
    assert_string_equal(sel_cn(c, "a.test"), "c3");
    assert_string_equal(sel_cn(c, "b.test"), "c3");
    dp_tls_certs_free(c);
}

static void
test_ctx_reuse(void **state)
{
    struct snapb b;
    struct dp_tls_certs *c1, *c2, *c3;
    SSL_CTX *x1, *x2, *x3;

    (void)state;
    snap_init(&b);
    snap_cert(&b, "id-a", &g_ec[0], NULL);
    snap_cert(&b, "id-b", &g_ec[1], NULL);
    snap_sni(&b, "a.test", 0);
    snap_sni(&b, "b.test", 1);
    c1 = certs_build(&b);
    c2 = certs_build(&b);
    x1 = dp_tls_certs_select(c1, "a.test");
    x2 = dp_tls_certs_select(c2, "a.test");
    assert_ptr_equal(x1, x2);
    assert_ptr_equal(dp_tls_certs_select(c1, "b.test"), dp_tls_certs_select(c2, "b.test"));
    assert_ptr_equal(dp_tls_certs_select(c1, NULL), dp_tls_certs_select(c2, NULL));

    /* a's content changes: a new context for a, b's is kept. */
    b.certs[0].cert = g_ec[2].cert;
    b.certs[0].key = g_ec[2].key;
    c3 = certs_build(&b);
    x3 = dp_tls_certs_select(c3, "a.test");
    assert_ptr_not_equal(x3, x1);
    assert_string_equal(ctx_cn(x3), "c2");
    assert_ptr_equal(dp_tls_certs_select(c3, "b.test"), dp_tls_certs_select(c1, "b.test"));

    /* The older runtimes keep their contexts working after the cache moved on. */
    assert_string_equal(ctx_cn(x1), "c0");
    dp_tls_certs_free(c1);
    dp_tls_certs_free(c2);
    assert_string_equal(ctx_cn(x3), "c2");
    dp_tls_certs_free(c3);
}

/* Handshakes with a client limited to `sigalgs`; returns whether the peer's key is EC. */
static bool
handshake_gets_ec(SSL_CTX *sctx, const char *sigalgs)
{
    SSL_CTX *cctx = client_ctx_new();
    struct conn c;
    X509 *peer;
    bool ec;

    conn_open(&c, sctx, cctx);
    assert_int_equal(SSL_set1_sigalgs_list(c.cli, sigalgs), 1);
    conn_handshake(&c);
    assert_int_equal(c.vc, DP_NEXT);
    assert_int_equal(c.vs, DP_NEXT);
    peer = SSL_get0_peer_certificate(c.cli);
    assert_non_null(peer);
    ec = EVP_PKEY_is_a(X509_get0_pubkey(peer), "EC");
    assert_true(ec || EVP_PKEY_is_a(X509_get0_pubkey(peer), "RSA"));
    conn_close(&c);
    SSL_CTX_free(cctx);
    return ec;
}

static void
test_dual_certificate(void **state)
{
    struct snapb b;
    struct dp_tls_certs *c;
    SSL_CTX *ctx;

    (void)state;
    snap_init(&b);
    snap_cert(&b, "id-dual", &g_rsa, &g_ec[5]);
    snap_sni(&b, "dual.test", 0);
    c = certs_build(&b);
    ctx = dp_tls_certs_select(c, "dual.test");
    assert_true(handshake_gets_ec(ctx, "ECDSA+SHA256"));
    assert_false(handshake_gets_ec(ctx, "rsa_pss_rsae_sha256:RSA+SHA256"));

    /* The generated default certificate is dual too. */
    ctx = dp_tls_certs_select(c, NULL);
    assert_true(handshake_gets_ec(ctx, "ECDSA+SHA256"));
    assert_false(handshake_gets_ec(ctx, "rsa_pss_rsae_sha256:RSA+SHA256"));
    dp_tls_certs_free(c);
}

/* One handshake (resuming `sess` if given); returns whether it resumed, and the
 * session (with its ticket) when out is not NULL. */
static bool
ticket_handshake(SSL_CTX *sctx, SSL_CTX *cctx, SSL_SESSION *sess, SSL_SESSION **out)
{
    struct conn c;
    char byte = 0;
    size_t n = 0;
    bool reused;
    int i;

    conn_open(&c, sctx, cctx);
    if (sess != NULL) {
        assert_int_equal(SSL_set_session(c.cli, sess), 1);
    }
    conn_handshake(&c);
    assert_int_equal(c.vc, DP_NEXT);
    assert_int_equal(c.vs, DP_NEXT);
    reused = SSL_session_reused(c.cli) == 1;
    assert_int_equal(reused, SSL_session_reused(c.srv) == 1);
    /* TLS 1.3 tickets come after the handshake: read one byte to take them in. */
    assert_int_equal(SSL_write_ex(c.srv, "x", 1, &n), 1);
    for (i = 0; i < 10 && SSL_read_ex(c.cli, &byte, 1, &n) != 1; i++) {
        ERR_clear_error();
    }
    assert_int_equal(byte, 'x');
    if (out != NULL) {
        *out = SSL_get1_session(c.cli);
        assert_non_null(*out);
    }
    /* A client SSL freed without close_notify marks its session not resumable. */
    SSL_shutdown(c.cli);
    conn_close(&c);
    return reused;
}

static void
test_ticket_rotation(void **state)
{
    struct snapb b;
    struct dp_tls_certs *c;
    SSL_CTX *sctx, *other, *cctx = client_ctx_new();
    SSL_SESSION *sess = NULL, *sess12 = NULL;
    int64_t t1;

    (void)state;
    init_ok(500, true);
    t1 = st_mono_ms();
    assert_int_equal(dp_tls_ticket_rotations(), 0);
    snap_init(&b);
    snap_cert(&b, "id-0", &g_ec[0], NULL);
    snap_sni(&b, "a.test", 0);
    c = certs_build(&b);
    sctx = dp_tls_certs_select(c, NULL);
    other = dp_tls_certs_select(c, "a.test");

    assert_false(ticket_handshake(sctx, cctx, NULL, &sess));
    assert_true(SSL_SESSION_is_resumable(sess)); /* one ticket came */
    assert_true(ticket_handshake(sctx, cctx, sess, NULL));
    /* One ring for every context: a ticket from one resumes on another. */
    assert_true(ticket_handshake(other, cctx, sess, NULL));

    /* TLS 1.2 tickets go through the same callback. */
    SSL_CTX_set_max_proto_version(cctx, TLS1_2_VERSION);
    assert_false(ticket_handshake(sctx, cctx, NULL, &sess12));
    assert_true(ticket_handshake(sctx, cctx, sess12, NULL));
    SSL_CTX_set_max_proto_version(cctx, 0);

    /* After one rotation the previous key still decrypts. */
    sleep_until(t1 + 520);
    assert_true(ticket_handshake(sctx, cctx, sess, NULL));
    assert_int_equal(dp_tls_ticket_rotations(), 1);

    /* After two, the first key is gone: full handshake. */
    sleep_until(t1 + 1020);
    assert_false(ticket_handshake(sctx, cctx, sess, NULL));
    assert_int_equal(dp_tls_ticket_rotations(), 2);

    SSL_SESSION_free(sess);
    SSL_SESSION_free(sess12);
    dp_tls_certs_free(c);
    SSL_CTX_free(cctx);
    init_ok(0, true);
}

static void
test_tickets_off(void **state)
{
    struct snapb b;
    struct dp_tls_certs *c;
    SSL_CTX *cctx = client_ctx_new();
    SSL_SESSION *sess = NULL;

    (void)state;
    init_ok(0, false);
    snap_init(&b);
    c = certs_build(&b);
    assert_false(ticket_handshake(dp_tls_certs_select(c, NULL), cctx, NULL, &sess));
    assert_false(SSL_SESSION_is_resumable(sess)); /* TLS 1.3: no ticket at all */
    assert_false(ticket_handshake(dp_tls_certs_select(c, NULL), cctx, sess, NULL));
    SSL_SESSION_free(sess);
    dp_tls_certs_free(c);
    SSL_CTX_free(cctx);
    init_ok(0, true);
}

static void
test_default_certificate_files(void **state)
{
    char path[4][256], *before[4], *after[4];
    const char *names[4] = {"strait-default.crt", "strait-default.key", "strait-default-ecdsa.crt",
                            "strait-default-ecdsa.key"};
    struct stat st;
    int i;

    (void)state;
    snprintf(path[0], sizeof(path[0]), "%s/ssl", g_prefix);
    assert_int_equal(stat(path[0], &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    for (i = 0; i < 4; i++) {
        snprintf(path[i], sizeof(path[i]), "%s/ssl/%s", g_prefix, names[i]);
        assert_int_equal(stat(path[i], &st), 0);
        if (i % 2 == 1) {
            assert_int_equal(st.st_mode & 0777, 0600);
        }
        before[i] = slurp(path[i]);
    }
    assert_non_null(strstr(before[0], "BEGIN CERTIFICATE"));
    assert_non_null(strstr(before[1], "PRIVATE KEY"));

    dp_tls_fini();
    init_ok(0, true);
    for (i = 0; i < 4; i++) {
        after[i] = slurp(path[i]);
        assert_string_equal(before[i], after[i]);
        free(before[i]);
        free(after[i]);
    }
}

static void
test_init_errors(void **state)
{
    struct st_conf conf;
    struct st_err err = {0};
    struct snapb b;
    struct dp_tls_certs *c;
    char crt[128], key[128], other[128];

    (void)state;
    conf_fill(&conf, "modern", "TLSv1.2", true);
    assert_true(dp_tls_init(&conf, 0, &err) < 0);
    assert_string_equal(err.field, "ssl_protocols");
    assert_non_null(strstr(err.msg, "ssl_cipher_suite"));

    conf_fill(&conf, "fips", "TLSv1.3", true);
    assert_true(dp_tls_init(&conf, 0, &err) < 0);
    assert_string_equal(err.field, "ssl_protocols");

    snprintf(crt, sizeof(crt), "%s/own.crt", g_prefix);
    snprintf(key, sizeof(key), "%s/own.key", g_prefix);
    snprintf(other, sizeof(other), "%s/other.key", g_prefix);
    spit(crt, g_ec[0].cert);
    spit(key, g_ec[0].key);
    spit(other, g_ec[1].key);

    conf_fill(&conf, "intermediate", "TLSv1.2 TLSv1.3", true);
    conf.ssl_cert = crt;
    assert_true(dp_tls_init(&conf, 0, &err) < 0);
    assert_string_equal(err.field, "ssl_cert_key");
    assert_string_equal(err.msg, "ssl_cert_key must be specified");

    conf.ssl_cert_key = other;
    assert_true(dp_tls_init(&conf, 0, &err) < 0);
    assert_string_equal(err.field, "ssl_cert");

    conf.ssl_cert_key = (char *)"/nonexistent/strait.key";
    assert_true(dp_tls_init(&conf, 0, &err) < 0);
    assert_string_equal(err.field, "ssl_cert_key");
    assert_non_null(strstr(err.msg, "/nonexistent/strait.key"));

    /* A good pair becomes the default certificate; modern means TLS 1.3 only. */
    conf.ssl_cert_key = key;
    conf.ssl_cipher_suite = (char *)"modern";
    conf.ssl_protocols = (char *)"TLSv1.2 TLSv1.3";
    assert_int_equal(dp_tls_init(&conf, 0, &err), 0);
    snap_init(&b);
    c = certs_build(&b);
    assert_string_equal(sel_cn(c, NULL), "c0");
    assert_string_equal(sel_cn(c, "any.test"), "c0");
    assert_int_equal(SSL_CTX_get_min_proto_version(dp_tls_certs_select(c, NULL)), TLS1_3_VERSION);
    dp_tls_certs_free(c);

    /* fips: TLS 1.2 only, with its own cipher string. */
    conf_fill(&conf, "fips", "TLSv1.2 TLSv1.3", true);
    assert_int_equal(dp_tls_init(&conf, 0, &err), 0);
    snap_init(&b);
    c = certs_build(&b);
    assert_int_equal(SSL_CTX_get_max_proto_version(dp_tls_certs_select(c, NULL)), TLS1_2_VERSION);
    dp_tls_certs_free(c);

    /* old with TLSv1.1: the range starts at TLS 1.1. */
    conf_fill(&conf, "old", "TLSv1.1 TLSv1.2", true);
    assert_int_equal(dp_tls_init(&conf, 0, &err), 0);
    snap_init(&b);
    c = certs_build(&b);
    assert_int_equal(SSL_CTX_get_min_proto_version(dp_tls_certs_select(c, NULL)), TLS1_1_VERSION);
    assert_int_equal(SSL_CTX_get_max_proto_version(dp_tls_certs_select(c, NULL)), TLS1_2_VERSION);
    dp_tls_certs_free(c);

    unlink(crt);
    unlink(key);
    unlink(other);
    init_ok(0, true);
}

/* An upstream handshake against a server with g_ca's certificate. */
static void
upstream_try(const struct st_service *svc, const char *name, struct conn *c)
{
    struct snapb b;
    struct dp_tls_certs *certs;
    struct st_err err = {0};
    SSL_CTX *uctx = NULL;

    snap_init(&b);
    snap_cert(&b, "id-ca", &g_ca, NULL);
    snap_sni(&b, "*", 0);
    certs = certs_build(&b);
    assert_int_equal(dp_tls_upstream_ctx_new(svc, &uctx, &err), 0);
    conn_open(c, dp_tls_certs_select(certs, "localhost"), uctx);
    assert_int_equal(dp_tls_upstream_prepare(c->cli, name), 0);
    conn_handshake(c);
    SSL_CTX_free(uctx);
    dp_tls_certs_free(certs);
}

static void
test_upstream(void **state)
{
    struct st_ca_certificate ca = {.id = "ca-1", .cert = g_ca.cert};
    const struct st_ca_certificate *cas[1] = {&ca};
    struct st_certificate client = {.id = "cc", .cert = g_ec[1].cert, .key = g_ec[1].key};
    struct st_service svc;
    struct st_err err = {0};
    SSL_CTX *uctx = NULL;
    struct conn c;

    (void)state;
    memset(&svc, 0, sizeof(svc));
    svc.tls_verify = 1;
    svc.tls_verify_depth = -1;

    /* System store: a self-signed upstream fails with OpenSSL's reason. */
    upstream_try(&svc, "localhost", &c);
    assert_int_equal(c.vc, DP_ERROR);
    assert_non_null(strstr(c.why_c, "certificate verify failed"));
    assert_non_null(strstr(c.why_c, "self-signed certificate"));
    conn_close(&c);

    /* Trusted through ca_certificates, with the name checked. */
    svc.ca_certificates = cas;
    svc.n_ca_certificates = 1;
    upstream_try(&svc, "localhost", &c);
    assert_int_equal(c.vc, DP_NEXT);
    assert_int_equal(c.vs, DP_NEXT);
    assert_string_equal(SSL_get_servername(c.srv, TLSEXT_NAMETYPE_host_name), "localhost");
    conn_close(&c);

    upstream_try(&svc, "other.test", &c);
    assert_int_equal(c.vc, DP_ERROR);
    assert_string_equal(c.why_c, "certificate verify failed: hostname mismatch");
    conn_close(&c);

    /* An IP literal: no SNI, and the IP is what gets checked. */
    upstream_try(&svc, "127.0.0.1", &c);
    assert_int_equal(c.vc, DP_ERROR);
    assert_non_null(strstr(c.why_c, "IP address mismatch"));
    assert_null(SSL_get_servername(c.srv, TLSEXT_NAMETYPE_host_name));
    conn_close(&c);

    /* tls_verify unset: no verification (Kong's default), SNI still sent. */
    svc.tls_verify = -1;
    svc.n_ca_certificates = 0;
    upstream_try(&svc, "other.test", &c);
    assert_int_equal(c.vc, DP_NEXT);
    assert_string_equal(SSL_get_servername(c.srv, TLSEXT_NAMETYPE_host_name), "other.test");
    conn_close(&c);

    /* Depth defaults to 1 (Kong's lua_ssl_verify_depth); a client certificate loads. */
    svc.tls_verify = 1;
    svc.client_certificate = &client;
    assert_int_equal(dp_tls_upstream_ctx_new(&svc, &uctx, &err), 0);
    assert_int_equal(SSL_CTX_get_verify_depth(uctx), 1);
    assert_int_equal(SSL_CTX_get_verify_mode(uctx), SSL_VERIFY_PEER);
    assert_string_equal(ctx_cn(uctx), "c1");
    SSL_CTX_free(uctx);

    client.key = g_ec[2].key; /* does not match */
    assert_true(dp_tls_upstream_ctx_new(&svc, &uctx, &err) < 0);
    assert_string_equal(err.field, "client_certificate");
}

static void
test_handshake_errors(void **state)
{
    struct snapb b;
    struct dp_tls_certs *certs;
    struct dp_sock k;
    struct conn c;
    char why[256];
    SSL *ssl;
    int fds[2];

    (void)state;
    snap_init(&b);
    certs = certs_build(&b);

    /* Not TLS at all. */
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
    ssl = SSL_new(dp_tls_certs_select(certs, NULL));
    SSL_set_fd(ssl, fds[1]);
    SSL_set_accept_state(ssl);
    k = (struct dp_sock){
        .fd = fds[1], .xprt = &dp_xprt_tls, .xprt_ctx = ssl, .rd_ready = true, .wr_ready = true};
    assert_int_equal(dp_xprt_tls.handshake(&k, why, sizeof(why)), DP_AGAIN);
    assert_false(k.rd_ready);
    assert_int_equal(write(fds[0], "GET / HTTP/1.0\r\n\r\n", 18), 18);
    assert_int_equal(dp_xprt_tls.handshake(&k, why, sizeof(why)), DP_ERROR);
    assert_true(why[0] != '\0');
    assert_int_equal(ERR_peek_error(), 0);
    SSL_free(ssl);
    close(fds[0]);
    close(fds[1]);

    /* The peer goes away in the middle. */
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds), 0);
    ssl = SSL_new(dp_tls_certs_select(certs, NULL));
    SSL_set_fd(ssl, fds[1]);
    SSL_set_accept_state(ssl);
    k = (struct dp_sock){.fd = fds[1], .xprt = &dp_xprt_tls, .xprt_ctx = ssl};
    close(fds[0]);
    assert_int_equal(dp_xprt_tls.handshake(&k, why, sizeof(why)), DP_ERROR);
    assert_string_equal(why, "connection closed by peer");
    SSL_free(ssl);
    close(fds[1]);

    /* A client that only speaks TLS 1.1 against the default TLSv1.2+ range. */
    {
        SSL_CTX *cctx = client_ctx_new();

        SSL_CTX_set_min_proto_version(cctx, TLS1_1_VERSION);
        SSL_CTX_set_max_proto_version(cctx, TLS1_1_VERSION);
        SSL_CTX_set_security_level(cctx, 0);
        conn_open(&c, dp_tls_certs_select(certs, NULL), cctx);
        conn_handshake(&c);
        assert_int_equal(c.vs, DP_ERROR);
        assert_non_null(strstr(c.why_s, "protocol"));
        conn_close(&c);
        SSL_CTX_free(cctx);
    }
    dp_tls_certs_free(certs);
}

/* ---------------------------------------------------------------------------------- */

static int
group_setup(void **state)
{
    char cn[8];
    int i;

    (void)state;
    snprintf(g_prefix, sizeof(g_prefix), "/tmp/strait-tls-XXXXXX");
    if (mkdtemp(g_prefix) == NULL) {
        return -1;
    }
    for (i = 0; i < 6; i++) {
        snprintf(cn, sizeof(cn), "c%d", i);
        g_ec[i] = tc_make(TC_EC, cn, false, -1, 30);
    }
    g_rsa = tc_make(TC_RSA, "rsa", false, -1, 30);
    g_ca = tc_make(TC_EC, "localhost", true, -1, 30);
    init_ok(0, true);
    return 0;
}

static int
group_teardown(void **state)
{
    char path[512];
    DIR *d;
    struct dirent *e;
    int i;

    (void)state;
    dp_tls_fini();
    snprintf(path, sizeof(path), "%s/ssl", g_prefix);
    d = opendir(path);
    while (d != NULL && (e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.') {
            snprintf(path, sizeof(path), "%s/ssl/%s", g_prefix, e->d_name);
            unlink(path);
        }
    }
    if (d != NULL) {
        closedir(d);
    }
    snprintf(path, sizeof(path), "%s/ssl", g_prefix);
    rmdir(path);
    rmdir(g_prefix);
    for (i = 0; i < 6; i++) {
        tc_free(&g_ec[i]);
    }
    tc_free(&g_rsa);
    tc_free(&g_ca);
    return 0;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_certificate_files),
        cmocka_unit_test(test_select_order),
        cmocka_unit_test(test_select_bad_certificate_falls_through),
        cmocka_unit_test(test_ctx_reuse),
        cmocka_unit_test(test_dual_certificate),
        cmocka_unit_test(test_ticket_rotation),
        cmocka_unit_test(test_tickets_off),
        cmocka_unit_test(test_upstream),
        cmocka_unit_test(test_handshake_errors),
        cmocka_unit_test(test_init_errors),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
