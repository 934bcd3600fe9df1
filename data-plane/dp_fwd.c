/* Forwarding one direction of a session.
 *
 * Every byte moves through the sockets' transports (dp_xprt.h): this file decides
 * when to copy and when to splice, the transport makes the call.
 *
 * A direction starts by copying: recv into a pooled buffer, send it on. For the short
 * exchanges of request/response traffic that is the cheapest way (two syscalls, no
 * pipe). When a read fills the whole buffer the direction is moving bulk data and
 * switches to zero-copy splice(2) through a pooled pipe (HAProxy's raw_sock_to_pipe
 * style, like its splice-auto). Either way the pipe and the buffer go back to the
 * worker as soon as the direction is idle, so an idle session holds neither.
 *
 * splice(2) from a socket into a pipe returns EAGAIN both when the socket has nothing
 * and when the pipe is full; the two are indistinguishable. We only splice into an
 * empty pipe, so here EAGAIN always means "the socket has nothing": it clears the
 * socket's read readiness and edge-triggered epoll tells us when more arrives. In the
 * other direction we only splice out of a pipe that holds data, so EAGAIN means "the
 * socket is full". EINVAL or ENOSYS mean these fds cannot be spliced: the direction
 * copies for good (as does every direction when a side's transport cannot splice,
 * TLS, or when STRAIT_TEST_NO_SPLICE=1).
 *
 * Fairness: a forwarder reads at most env->budget bytes per call and then reports
 * DP_FWD_F_MORE, leaving the source's readiness set; the session resumes it in the
 * next loop turn, so one busy session cannot keep its worker from the others. */
#include "dp_fwd.h"

#include <errno.h>

#include "dp_ctx.h"
#include "dp_pipe.h"
#include "dp_pool.h"

void
dp_fwd_init(struct dp_fwd *f, struct dp_sock *src, struct dp_sock *dst)
{
    *f = (struct dp_fwd){.src = src, .dst = dst};
}

/* Gives the pipe and buffer back to the worker (a pipe holding data is closed). */
void
dp_fwd_fini(struct dp_fwd *f, struct dp_fwd_env *env)
{
    dp_pipe_put(env->pipes, f->pipe);
    f->pipe = NULL;
    dp_pool_put(env->bufs, f->buf);
    f->buf = NULL;
    f->off = f->len = 0;
}

static size_t
fwd_pending(const struct dp_fwd *f)
{
    return (f->len - f->off) + (f->pipe ? f->pipe->data : 0);
}

/* Writes held bytes to dst. Returns bytes written (> 0), or a negative errno
 * (-EAGAIN: dst is full). */
static ssize_t
fwd_write(struct dp_fwd *f, struct dp_fwd_env *env)
{
    ssize_t n;

    if (f->len > f->off) {
        n = f->dst->xprt->send(f->dst, f->buf + f->off, f->len - f->off);
        if (n <= 0) {
            return n == 0 ? -EIO : n;
        }
        f->off += (size_t)n;
        if (f->off == f->len) {
            f->off = f->len = 0;
        }
        atomic_fetch_add_explicit(&env->cnt->bytes_copy, (uint64_t)n, memory_order_relaxed);
        return n;
    }
    n = f->dst->xprt->splice_out(f->dst, f->pipe->rfd, f->pipe->data);
    if (n <= 0) {
        /* 0 from a pipe we believe holds data: our count is wrong; never spin on it. */
        return n == 0 ? -EIO : n;
    }
    f->pipe->data -= (size_t)n;
    atomic_fetch_add_explicit(&env->cnt->bytes_splice, (uint64_t)n, memory_order_relaxed);
    return n;
}

static ssize_t
fwd_read_copy(struct dp_fwd *f, struct dp_fwd_env *env)
{
    ssize_t n;

    if (f->buf == NULL) {
        f->buf = dp_pool_get(env->bufs);
        if (f->buf == NULL) {
            return -ENOMEM;
        }
    }
    n = f->src->xprt->recv(f->src, f->buf, DP_COPY_BUF_SIZE);
    if (n < 0) {
        return n;
    }
    f->off = 0;
    f->len = (size_t)n;
    return n;
}

/* Reads from src into the (empty) pipe or buffer, at most *asked bytes (set here).
 * Returns bytes, 0 at EOF, or a negative errno (-EAGAIN: nothing to read now). */
static ssize_t
fwd_read(struct dp_fwd *f, struct dp_fwd_env *env, size_t *asked)
{
    ssize_t n;

    *asked = DP_COPY_BUF_SIZE;
    if (!f->copy &&
        (env->no_splice || f->src->xprt->splice_in == NULL || f->dst->xprt->splice_out == NULL)) {
        f->copy = true; /* a side cannot splice (TLS): the bytes pass through memory */
    }
    if (f->copy || !f->bulk) {
        n = fwd_read_copy(f, env);
        if (n == DP_COPY_BUF_SIZE && !f->copy) {
            f->bulk = true; /* the next reads splice */
        }
        return n;
    }
    if (f->pipe == NULL) {
        f->pipe = dp_pipe_get(env->pipes);
        if (f->pipe == NULL) {
            return fwd_read_copy(f, env); /* out of fds for pipes: copy this time */
        }
    }
    *asked = DP_PIPE_SIZE;
    n = f->src->xprt->splice_in(f->src, f->pipe->wfd, DP_PIPE_SIZE);
    if (n == -EINVAL || n == -ENOSYS) {
        dp_pipe_put(env->pipes, f->pipe); /* still empty: reusable */
        f->pipe = NULL;
        f->copy = true;
        return fwd_read_copy(f, env);
    }
    if (n > 0) {
        f->pipe->data += (size_t)n;
    }
    return n;
}

/* Sends the FIN on once src has ended and nothing is held. */
static void
fwd_finish(struct dp_fwd *f)
{
    if (!f->dst->shut_wr) {
        f->dst->xprt->shutw(f->dst); /* TLS: close_notify, then the FIN */
        f->dst->shut_wr = true;
    }
    f->done = true;
}

/* Writes what f holds while dst takes it. Returns 0 when f is empty, -EAGAIN when dst
 * is full (f->blocked_since set), or another negative errno. */
static int
fwd_drain(struct dp_fwd *f, struct dp_fwd_env *env)
{
    while (fwd_pending(f) > 0) {
        ssize_t n = f->dst->wr_ready ? fwd_write(f, env) : -EAGAIN;

        if (n == -EAGAIN) {
            f->dst->wr_ready = false;
            if (f->blocked_since == 0) {
                f->blocked_since = env->now;
            }
            return -EAGAIN;
        }
        if (n < 0) {
            return (int)n;
        }
        f->bytes += (uint64_t)n;
        f->blocked_since = 0; /* progress: the write timeout counts from here */
    }
    f->blocked_since = 0;
    return 0;
}

void
dp_fwd_flush(struct dp_fwd *f, struct dp_fwd_env *env)
{
    if (f->dst != NULL && f->dst->fd != -1 && !f->dst->shut_wr) {
        f->dst->wr_ready = true; /* a stale "full" is cheap to retry once */
        (void)fwd_drain(f, env);
    }
}

int
dp_fwd_run(struct dp_fwd *f, struct dp_fwd_env *env, unsigned *flags)
{
    size_t got = 0, asked = 0;

    while (!f->done) {
        int rc = fwd_drain(f, env);
        ssize_t n;

        if (rc != 0) {
            return rc == -EAGAIN ? 0 : rc;
        }
        if (f->eof) {
            fwd_finish(f);
            break;
        }
        if (!f->src->rd_ready) {
            dp_fwd_fini(f, env); /* drained and idle: hold no pipe, no buffer */
            break;
        }
        if (env->budget != 0 && got >= env->budget) {
            *flags |= DP_FWD_F_MORE; /* rd_ready stays set for the next turn */
            break;
        }
        n = fwd_read(f, env, &asked);
        if (n == -EAGAIN) {
            f->src->rd_ready = false;
            dp_fwd_fini(f, env); /* idle: an idle session holds no pipe, no buffer */
            break;
        }
        if (n < 0) {
            return (int)n;
        }
        if (n == 0) {
            f->eof = true;
            continue;
        }
        got += (size_t)n;
        *flags |= DP_FWD_F_PROGRESS;
        /* A short read of a plain socket emptied its queue: with edge-triggered epoll,
         * anything arriving later makes a new event, so skip the read that would only
         * say EAGAIN. Not after a RDHUP/HUP edge, whose FIN may still be queued, nor on
         * a transport that may hold bytes of its own (TLS). */
        if ((size_t)n < asked && (f->src->xprt->flags & DP_XPRT_F_HOLDS_INPUT) == 0 &&
            !f->src->hup) {
            f->src->rd_ready = false;
        }
    }
    return 0;
}
