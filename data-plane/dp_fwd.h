/* Moving bytes between two sockets through their transports (dp_xprt.h): small
 * exchanges by copy through a pooled buffer, bulk transfers between plain sockets by
 * zero-copy splice(2) through pooled pipes, and every byte through memory when a side
 * cannot splice (TLS). One forwarder (struct dp_fwd) serves one direction; a session
 * runs two with src/dst swapped. */
#ifndef STRAIT_DP_FWD_H
#define STRAIT_DP_FWD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "dp_pipe.h"
#include "dp_xprt.h"

struct dp_pool;
struct dp_counters;

#define DP_COPY_BUF_SIZE 16384

/* Bytes one forwarder may read per loop turn before it yields to the other sessions
 * of its worker (one pipe's worth: large enough that splice stays efficient). */
#define DP_FWD_BUDGET DP_PIPE_SIZE

/* One direction, src -> dst. */
struct dp_fwd {
    struct dp_sock *src, *dst;
    struct dp_pipe *pipe; /* splice mode, taken at first use */
    uint8_t *buf;         /* copying: DP_COPY_BUF_SIZE from env->bufs */
    size_t off, len;      /* pending bytes in buf */
    bool copy;            /* never splice: a side cannot (TLS), told to, or refused by the kernel */
    bool bulk;            /* a read filled the buffer: splice from now on */
    bool eof;             /* src sent FIN */
    bool done;            /* eof seen, everything written, FIN passed to dst */
    int64_t blocked_since; /* when dst stopped taking bytes, 0: not blocked */
    uint64_t bytes;        /* written to dst */
};

/* What a forwarder borrows from its worker. */
struct dp_fwd_env {
    struct dp_pipe_pool *pipes;
    struct dp_pool *bufs;
    struct dp_counters *cnt;
    int64_t now;
    size_t budget;  /* bytes one dp_fwd_run() may read from src; 0: no limit */
    bool no_splice; /* copy even where splice would work (STRAIT_TEST_NO_SPLICE) */
};

/* What dp_fwd_run() reports besides errors. */
enum dp_fwd_flags {
    DP_FWD_F_PROGRESS = 1u << 0, /* bytes were read from src */
    DP_FWD_F_MORE = 1u << 1,     /* stopped on the budget: src may hold more; run again
                                  * next turn (edge-triggered epoll will not say so) */
};

void dp_fwd_init(struct dp_fwd *f, struct dp_sock *src, struct dp_sock *dst);

/* Moves what it can without blocking: drains what it holds into dst, then reads more
 * from src only once the pipe or buffer is empty (backpressure: a side is not read
 * while the other cannot take more), up to env->budget bytes read. Passes the FIN on
 * after EOF and a drained pipe. ORs enum dp_fwd_flags into *flags. Returns 0 or a
 * negative errno. */
int dp_fwd_run(struct dp_fwd *f, struct dp_fwd_env *env, unsigned *flags);

/* Best effort before a close: writes what f holds while dst takes it, reading nothing
 * and ignoring errors (the other direction failed; these bytes may still arrive). */
void dp_fwd_flush(struct dp_fwd *f, struct dp_fwd_env *env);

/* Returns the pipe and buffer to the worker. */
void dp_fwd_fini(struct dp_fwd *f, struct dp_fwd_env *env);

#endif
