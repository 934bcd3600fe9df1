/* The TLS transport (see dp_xprt_tls.h). Reads and writes go through SSL_read_ex and
 * SSL_write_ex on the socket's SSL (k->xprt_ctx); OpenSSL's "want read" on a read, or
 * "want write" on a write, is -EAGAIN with the readiness cleared by the caller as for
 * any socket, while "want write" on a read is remembered in rd_wants_wr so that the
 * next EPOLLOUT resumes the read. A TLS socket is never spliced: its bytes must pass
 * through memory to be decrypted or encrypted.
 *
 * Every function leaves the thread's OpenSSL error queue empty, so that one session's
 * failure is never reported against another. No locks; OpenSSL allocates its buffers,
 * nothing else does. */
#include "dp_xprt_tls.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "dp_tls.h"
#include "st_ssl.h"

/* The socket's side of a TLS read or write that did not complete, as -errno: -EAGAIN
 * when OpenSSL waits for readiness (a read that needs the socket writable first says so
 * in rd_wants_wr), 0 at a clean end (close_notify, or EOF: SSL_OP_IGNORE_UNEXPECTED_EOF),
 * -EPROTO for a TLS error. The thread's error queue is left empty. */
static ssize_t
ssl_io_error(struct dp_sock *k, bool reading)
{
    int e = SSL_get_error(k->xprt_ctx, 0);
    int saved = errno;

    switch (e) {
    case SSL_ERROR_WANT_READ:
        return -EAGAIN;
    case SSL_ERROR_WANT_WRITE:
        k->rd_wants_wr = reading;
        return -EAGAIN;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    case SSL_ERROR_SYSCALL:
        ERR_clear_error();
        if (saved == EAGAIN || saved == EINTR) {
            return -EAGAIN;
        }
        return saved != 0 ? -saved : (reading ? 0 : -EPIPE);
    default:
        ERR_clear_error();
        return -EPROTO;
    }
}

static ssize_t
tls_recv(struct dp_sock *k, void *buf, size_t len)
{
    size_t n;

    if (SSL_read_ex(k->xprt_ctx, buf, len, &n) == 1) {
        return (ssize_t)n;
    }
    return ssl_io_error(k, true);
}

static ssize_t
tls_send(struct dp_sock *k, const void *buf, size_t len)
{
    size_t n;

    if (SSL_write_ex(k->xprt_ctx, buf, len, &n) == 1) {
        return (ssize_t)n;
    }
    return ssl_io_error(k, false);
}

static void
tls_shutw(struct dp_sock *k)
{
    /* close_notify first; best effort (a full socket drops it, the FIN follows) */
    if (SSL_shutdown(k->xprt_ctx) < 0) {
        ERR_clear_error();
    }
    dp_xprt_raw.shutw(k);
}

static void
handshake_why(SSL *ssl, int e, int saved_errno, char *why, size_t size)
{
    unsigned long last = ERR_peek_last_error();
    long vr;

    if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && last == 0 && saved_errno == 0) ||
        (last != 0 && ERR_GET_REASON(last) == SSL_R_UNEXPECTED_EOF_WHILE_READING)) {
        snprintf(why, size, "connection closed by peer");
        return;
    }
    if (e == SSL_ERROR_SYSCALL && last == 0) {
        snprintf(why, size, "%s", strerror(saved_errno));
        return;
    }
    vr = SSL_get_verify_result(ssl);
    if (last != 0 && ERR_GET_LIB(last) == ERR_LIB_SSL &&
        ERR_GET_REASON(last) == SSL_R_CERTIFICATE_VERIFY_FAILED && vr != X509_V_OK) {
        snprintf(why, size, "certificate verify failed: %s", X509_verify_cert_error_string(vr));
        return;
    }
    st_ssl_reason(why, size, ST_SSL_REASON_SHORT, "handshake failed");
}

/* Advances the handshake (accept or connect state set by dp_xprt_tls_accept/connect).
 * On DP_ERROR, why is static text or OpenSSL's reason (e.g. "certificate verify
 * failed: self-signed certificate"). */
static enum dp_verdict
tls_handshake(struct dp_sock *k, char *why, size_t size)
{
    SSL *ssl = k->xprt_ctx;
    int rc, e, saved;

    ERR_clear_error();
    errno = 0;
    rc = SSL_do_handshake(ssl);
    if (rc == 1) {
        return DP_NEXT;
    }
    saved = errno;
    e = SSL_get_error(ssl, rc);
    if (e == SSL_ERROR_WANT_READ) {
        k->rd_ready = false;
        return DP_AGAIN;
    }
    if (e == SSL_ERROR_WANT_WRITE) {
        k->wr_ready = false;
        return DP_AGAIN;
    }
    handshake_why(ssl, e, saved, why, size);
    ERR_clear_error();
    return DP_ERROR;
}

static void
tls_close(struct dp_sock *k)
{
    SSL_free(k->xprt_ctx); /* no I/O: a close_notify is shutw's, not close's */
    k->xprt_ctx = NULL;
    dp_xprt_raw.close(k);
}

const struct dp_xprt_ops dp_xprt_tls = {
    .name = "tls",
    .flags = DP_XPRT_F_HOLDS_INPUT,
    .recv = tls_recv,
    .send = tls_send,
    .splice_in = NULL,
    .splice_out = NULL,
    .shutw = tls_shutw,
    .handshake = tls_handshake,
    .close = tls_close,
};

/* Switches k to TLS on a new SSL, as the server or (with name) the client. */
static int
tls_start(struct dp_sock *k, SSL_CTX *ctx, bool server, const char *name)
{
    SSL *ssl = SSL_new(ctx);

    if (ssl == NULL || SSL_set_fd(ssl, k->fd) != 1 ||
        (!server && dp_tls_upstream_prepare(ssl, name) != 0)) {
        SSL_free(ssl);
        ERR_clear_error();
        return -ENOMEM;
    }
    if (server) {
        SSL_set_accept_state(ssl);
    } else {
        SSL_set_connect_state(ssl);
    }
    k->xprt = &dp_xprt_tls;
    k->xprt_ctx = ssl;
    return 0;
}

int
dp_xprt_tls_accept(struct dp_sock *k, struct ssl_ctx_st *ctx)
{
    return tls_start(k, ctx, true, NULL);
}

int
dp_xprt_tls_connect(struct dp_sock *k, struct ssl_ctx_st *ctx, const char *name)
{
    return tls_start(k, ctx, false, name);
}

const char *
dp_xprt_tls_version(const struct dp_sock *k)
{
    return SSL_get_version(k->xprt_ctx);
}

bool
dp_xprt_tls_is_resumed(const struct dp_sock *k)
{
    return SSL_session_reused(k->xprt_ctx) == 1;
}
