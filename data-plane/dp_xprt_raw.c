/* The plain transport (see dp_xprt.h): the syscalls, retried on EINTR (which would
 * otherwise lose an edge-triggered readiness), with errors as -errno. It decides
 * nothing: when to splice, and what an EAGAIN from splice means, is the forwarder's
 * business (dp_fwd.c), as in HAProxy's raw_sock.c under its stream connector. */
#include "dp_xprt.h"

#include <errno.h>
#include <fcntl.h> /* splice */
#include <sys/socket.h>
#include <unistd.h>

static ssize_t
raw_recv(struct dp_sock *k, void *buf, size_t len)
{
    ssize_t n;

    do {
        n = recv(k->fd, buf, len, 0);
    } while (n == -1 && errno == EINTR);
    return n == -1 ? -errno : n;
}

static ssize_t
raw_send(struct dp_sock *k, const void *buf, size_t len)
{
    ssize_t n;

    do {
        n = send(k->fd, buf, len, MSG_NOSIGNAL);
    } while (n == -1 && errno == EINTR);
    return n == -1 ? -errno : n;
}

static ssize_t
sys_splice(int in, int out, size_t len)
{
    ssize_t n;

    do {
        n = splice(in, NULL, out, NULL, len, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    } while (n == -1 && errno == EINTR);
    return n == -1 ? -errno : n;
}

static ssize_t
raw_splice_in(struct dp_sock *k, int pipe_fd, size_t len)
{
    return sys_splice(k->fd, pipe_fd, len);
}

static ssize_t
raw_splice_out(struct dp_sock *k, int pipe_fd, size_t len)
{
    return sys_splice(pipe_fd, k->fd, len);
}

static void
raw_shutw(struct dp_sock *k)
{
    /* ENOTCONN: the peer is already gone; the other direction will see it. */
    (void)shutdown(k->fd, SHUT_WR);
}

static enum dp_verdict
raw_handshake(struct dp_sock *k, char *why, size_t size)
{
    (void)k;
    (void)why;
    (void)size;
    return DP_NEXT;
}

static void
raw_close(struct dp_sock *k)
{
    if (k->fd != -1) {
        close(k->fd); /* also removes it from epoll */
    }
    dp_xprt_raw_init(k, -1);
}

const struct dp_xprt_ops dp_xprt_raw = {
    .name = "raw",
    .flags = 0,
    .recv = raw_recv,
    .send = raw_send,
    .splice_in = raw_splice_in,
    .splice_out = raw_splice_out,
    .shutw = raw_shutw,
    .handshake = raw_handshake,
    .close = raw_close,
};

void
dp_xprt_raw_init(struct dp_sock *k, int fd)
{
    *k = (struct dp_sock){.fd = fd, .xprt = &dp_xprt_raw};
}
