/* Transports: how one socket of a session moves bytes, as a table of operations
 * (HAProxy's xprt_ops in raw_sock.c and ssl_sock.c, Redis's ConnectionType). Every
 * socket starts plain (dp_xprt_raw, here); a tls route or a tls service switches it to
 * TLS (dp_xprt_tls.h) before its handshake. The forwarder (dp_fwd) and the session
 * (dp_session) move bytes, shut down and close only through the table, so OpenSSL is
 * called from dp_xprt_tls.c and dp_tls.c alone.
 *
 * Hot path: one indirect call per operation; no operation allocates. */
#ifndef STRAIT_DP_XPRT_H
#define STRAIT_DP_XPRT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "dp_verdict.h"

struct dp_sock;

/* Reads up to len bytes: bytes (> 0), 0 at EOF, or -errno (-EAGAIN: nothing now). */
typedef ssize_t dp_xprt_recv_fn(struct dp_sock *k, void *buf, size_t len);

/* Writes up to len bytes: bytes (> 0), or -errno (-EAGAIN: the socket is full). */
typedef ssize_t dp_xprt_send_fn(struct dp_sock *k, const void *buf, size_t len);

/* Moves up to len bytes between the socket and a pipe's end (pipe_fd) with splice(2),
 * without blocking: bytes (> 0), 0 at EOF (socket to pipe), or -errno as the kernel
 * says (see dp_fwd.c for what -EAGAIN means; -EINVAL or -ENOSYS: these fds cannot be
 * spliced). The caller keeps the pipe's count. */
typedef ssize_t dp_xprt_splice_fn(struct dp_sock *k, int pipe_fd, size_t len);

/* Ends our sending side: the peer reads EOF once what was written has arrived (TLS:
 * close_notify first, best effort). Errors are ignored (the peer may be gone). */
typedef void dp_xprt_shutw_fn(struct dp_sock *k);

/* Advances the transport's handshake without blocking. DP_NEXT: done (or none to do);
 * DP_AGAIN: waiting for readiness (k's rd_ready or wr_ready cleared as the transport
 * asks); DP_ERROR: failed, with a short reason in why. */
typedef enum dp_verdict dp_xprt_handshake_fn(struct dp_sock *k, char *why, size_t size);

/* Releases the transport's state and closes the fd; k is then a closed plain socket
 * (fd -1, no readiness). A closed socket may be closed again. */
typedef void dp_xprt_close_fn(struct dp_sock *k);

enum dp_xprt_flags {
    /* Reads may leave bytes inside the transport (TLS decrypts whole records): a short
     * read does not mean the socket is empty, and there may be bytes to read that no
     * epoll edge announces. */
    DP_XPRT_F_HOLDS_INPUT = 1u << 0,
};

struct dp_xprt_ops {
    const char *name; /* "raw", "tls" */
    unsigned flags;   /* enum dp_xprt_flags */
    dp_xprt_recv_fn *recv;
    dp_xprt_send_fn *send;
    dp_xprt_splice_fn *splice_in;  /* socket -> pipe; NULL: this transport cannot splice */
    dp_xprt_splice_fn *splice_out; /* pipe -> socket; NULL: this transport cannot splice */
    dp_xprt_shutw_fn *shutw;
    dp_xprt_handshake_fn *handshake;
    dp_xprt_close_fn *close;
};

/* One socket of a session: its transport and its edge-triggered readiness. */
struct dp_sock {
    int fd;
    const struct dp_xprt_ops *xprt; /* never NULL: dp_xprt_raw_init() first */
    void *xprt_ctx;                 /* the transport's state (TLS: the SSL); raw: NULL */
    bool rd_ready;                  /* set by EPOLLIN/RDHUP/HUP/ERR, cleared by EAGAIN */
    bool wr_ready;                  /* set by EPOLLOUT/ERR, cleared by EAGAIN */
    bool rd_wants_wr;               /* the transport's read needs the socket writable first */
    bool hup;                       /* EPOLLRDHUP/EPOLLHUP seen: the peer will send nothing more */
    bool err;                       /* EPOLLERR seen (a failed connect, a reset) */
    bool shut_wr;                   /* we ended our sending side (shutw) */
};

/* Plain sockets: recv/send/splice(2)/shutdown(2)/close(2), retried on EINTR. */
extern const struct dp_xprt_ops dp_xprt_raw;

/* Makes k a plain socket on fd (-1: none yet) with no readiness seen. */
void dp_xprt_raw_init(struct dp_sock *k, int fd);

#endif
