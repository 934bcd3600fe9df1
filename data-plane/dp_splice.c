/* Zero-copy forwarding between plain sockets (HAProxy raw_sock_to_pipe style).
 *
 * splice(2) from a socket into a pipe returns EAGAIN both when the socket has nothing
 * and when the pipe is full; the two are indistinguishable. We only splice into an
 * empty pipe, so here EAGAIN always means "the socket has nothing": it clears the
 * socket's read readiness and edge-triggered epoll tells us when more arrives. EINVAL
 * or ENOSYS mean these fds cannot be spliced: the direction falls back to read/write
 * through a pooled buffer. */
#include "dp_splice.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dp_ctx.h"
#include "dp_pool.h"

void
dp_pipe_pool_init(struct dp_pipe_pool *pp, size_t max_free)
{
    pp->free_list = NULL;
    pp->n_free = 0;
    pp->max_free = max_free;
}

static void
pipe_close(struct dp_pipe *p)
{
    close(p->rfd);
    close(p->wfd);
    free(p);
}

void
dp_pipe_pool_fini(struct dp_pipe_pool *pp)
{
    while (pp->free_list != NULL) {
        struct dp_pipe *p = pp->free_list;

        pp->free_list = p->next;
        pipe_close(p);
    }
    pp->n_free = 0;
}

struct dp_pipe *
dp_pipe_get(struct dp_pipe_pool *pp)
{
    struct dp_pipe *p = pp->free_list;
    int fds[2];

    if (p != NULL) {
        pp->free_list = p->next;
        pp->n_free--;
        p->next = NULL;
        return p;
    }
    p = malloc(sizeof(*p));
    if (p == NULL) {
        return NULL;
    }
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) == -1) {
        free(p);
        return NULL;
    }
    (void)fcntl(fds[1], F_SETPIPE_SZ, DP_PIPE_SIZE);
    p->rfd = fds[0];
    p->wfd = fds[1];
    p->data = 0;
    p->next = NULL;
    return p;
}

void
dp_pipe_put(struct dp_pipe_pool *pp, struct dp_pipe *p)
{
    if (p == NULL) {
        return;
    }
    if (p->data != 0 || pp->n_free >= pp->max_free) {
        pipe_close(p);
        return;
    }
    p->next = pp->free_list;
    pp->free_list = p;
    pp->n_free++;
}

void
dp_fwd_init(struct dp_fwd *f, struct dp_sock *src, struct dp_sock *dst)
{
    f->src = src;
    f->dst = dst;
    f->pipe = NULL;
    f->buf = NULL;
    f->off = 0;
    f->len = 0;
    f->copy = false;
    f->eof = false;
    f->done = false;
    f->blocked_since = 0;
    f->bytes = 0;
}

void
dp_fwd_fini(struct dp_fwd *f, struct dp_fwd_env *env)
{
    dp_pipe_put(env->pipes, f->pipe);
    f->pipe = NULL;
    dp_pool_put(env->bufs, f->buf);
    f->buf = NULL;
}

static size_t
fwd_pending(const struct dp_fwd *f)
{
    return f->copy ? f->len - f->off : (f->pipe ? f->pipe->data : 0);
}

/* Writes held bytes to dst. Returns bytes written, or a negative errno (-EAGAIN). */
static ssize_t
fwd_write(struct dp_fwd *f, struct dp_fwd_env *env)
{
    ssize_t n;

    if (f->copy) {
        n = send(f->dst->fd, f->buf + f->off, f->len - f->off, MSG_NOSIGNAL);
        if (n == -1) {
            return errno == EINTR ? 0 : -errno;
        }
        f->off += (size_t)n;
        if (f->off == f->len) {
            f->off = f->len = 0;
        }
        atomic_fetch_add_explicit(&env->cnt->bytes_copy, (uint64_t)n, memory_order_relaxed);
        return n;
    }
    n = splice(f->pipe->rfd, NULL, f->dst->fd, NULL, f->pipe->data,
               SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n == -1) {
        return errno == EINTR ? 0 : -errno;
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
    n = recv(f->src->fd, f->buf, DP_COPY_BUF_SIZE, 0);
    if (n == -1) {
        return errno == EINTR ? -EAGAIN : -errno;
    }
    f->off = 0;
    f->len = (size_t)n;
    return n;
}

/* Reads from src into the (empty) pipe or buffer. Returns bytes, 0 at EOF, or a
 * negative errno (-EAGAIN: nothing to read now). */
static ssize_t
fwd_read(struct dp_fwd *f, struct dp_fwd_env *env)
{
    ssize_t n;

    if (!f->copy && f->pipe == NULL) {
        f->pipe = dp_pipe_get(env->pipes);
        if (f->pipe == NULL) {
            f->copy = true; /* out of fds for pipes: this session copies */
        }
    }
    if (f->copy) {
        return fwd_read_copy(f, env);
    }
    n = splice(f->src->fd, NULL, f->pipe->wfd, NULL, DP_PIPE_SIZE,
               SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n == -1) {
        int e = errno;

        if (e == EINVAL || e == ENOSYS) {
            dp_pipe_put(env->pipes, f->pipe);
            f->pipe = NULL;
            f->copy = true;
            return fwd_read_copy(f, env);
        }
        return e == EINTR ? -EAGAIN : -e;
    }
    f->pipe->data += (size_t)n;
    return n;
}

/* Sends the FIN on once src has ended and nothing is held. */
static void
fwd_finish(struct dp_fwd *f)
{
    if (!f->dst->shut_wr) {
        /* ENOTCONN: the peer is already gone; the other direction will see it. */
        (void)shutdown(f->dst->fd, SHUT_WR);
        f->dst->shut_wr = true;
    }
    f->done = true;
}

int
dp_fwd_run(struct dp_fwd *f, struct dp_fwd_env *env, bool *progress)
{
    while (!f->done) {
        ssize_t n;

        if (fwd_pending(f) > 0) {
            if (!f->dst->wr_ready) {
                goto blocked;
            }
            n = fwd_write(f, env);
            if (n == -EAGAIN) {
                f->dst->wr_ready = false;
                goto blocked;
            }
            if (n < 0) {
                return (int)n;
            }
            f->bytes += (uint64_t)n;
            f->blocked_since = 0; /* progress: the write timeout counts from here */
            continue;
        }
        f->blocked_since = 0;
        if (f->eof) {
            fwd_finish(f);
            break;
        }
        if (!f->src->rd_ready) {
            break;
        }
        n = fwd_read(f, env);
        if (n == -EAGAIN) {
            f->src->rd_ready = false;
            break;
        }
        if (n < 0) {
            return (int)n;
        }
        if (n == 0) {
            f->eof = true;
            continue;
        }
        *progress = true;
    }
    return 0;

blocked:
    if (f->blocked_since == 0) {
        f->blocked_since = env->now;
    }
    return 0;
}
