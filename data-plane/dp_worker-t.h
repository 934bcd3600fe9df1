/* The layout of a worker, for the modules that run on it (listener, session). */
#ifndef STRAIT_DP_WORKER_T_H
#define STRAIT_DP_WORKER_T_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dp_ctx.h"
#include "dp_loop-t.h"
#include "dp_pipe.h"
#include "dp_pool.h"

struct st_listen;
struct dp_log_ring;
struct dp_runtime;
struct dp_session;
struct dp_worker;

/* One stream_listen entry, opened by one worker (SO_REUSEPORT). */
struct dp_listener {
    struct dp_io io;
    const struct st_listen *conf;
    struct dp_worker *w;
    struct dp_timer resume; /* armed while accepts are paused (out of fds or memory) */
    int64_t warned_at;      /* st_mono_ms() of the last "pausing" warning, 0: never */
    bool local_known;       /* bound to one address, so every session's local address */
    bool watching;          /* registered on the loop (not paused, not closed) */
};

enum dp_worker_cmd {
    DP_WORKER_RUN = 0,
    DP_WORKER_DRAIN,
    DP_WORKER_STOP,
};

struct dp_worker {
    struct dp_ctx *ctx;
    size_t index;
    pthread_t thread;
    bool started;

    struct dp_loop loop;
    struct dp_listener *listeners;
    size_t n_listeners;
    bool listening;
    /* At stream_max_sessions: the listeners are not watched (cap_paused, worker thread
     * only) until a slot comes free; cap_wait asks the thread that frees it for a wake-up. */
    bool cap_paused;
    atomic_bool cap_wait;

    int evfd; /* wakes the loop: new runtime, drain, stop */
    struct dp_io ev_io;
    atomic_int cmd; /* enum dp_worker_cmd */
    atomic_bool finished;
    int64_t drain_deadline;

    /* The runtime new sessions get. The sync thread hands a new one over through
     * pending_rt (each worker gets its own reference); the worker swaps it in at the
     * top of its next turn. */
    _Atomic(struct dp_runtime *) pending_rt;
    struct dp_runtime *rt;

    struct dp_log_ring *log; /* this worker's lines for ctx->logger (NULL: st_log) */
    struct dp_counters cnt;
    struct dp_pool sess_pool;
    struct dp_pool buf_pool;
    struct dp_pool pre_pool;  /* ClientHello parsers, while sessions preread */
    struct dp_pool name_pool; /* SNIs too long for a session's inline buffer */
    struct dp_pipe_pool pipes;
    uint8_t *peek;               /* DP_PREREAD_BUF_MAX bytes: where sessions peek a ClientHello */
    struct dp_session *sessions; /* every live session, for shutdown */
};

#endif
