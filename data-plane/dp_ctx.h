/* The data plane process: what main builds at start and every thread reads.
 * Types only (and the counters), shared by dp_main, dp_worker, dp_sync, dp_status. */
#ifndef STRAIT_DP_CTX_H
#define STRAIT_DP_CTX_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct st_conf;
struct dp_runtime;
struct dp_worker;
struct dp_sync;
struct dp_status;
struct dp_logger;
struct dp_dns;

/* Per-worker counters: written by their worker with relaxed atomics, summed on read. */
struct dp_counters {
    atomic_uint_fast64_t accepted;
    atomic_uint_fast64_t handled;
    atomic_int_fast64_t active;
    atomic_uint_fast64_t bytes_splice;
    atomic_uint_fast64_t bytes_copy;
    atomic_uint_fast64_t no_route;
    atomic_uint_fast64_t tls_handshakes; /* client handshakes completed (termination) */
    atomic_uint_fast64_t tls_resumed;    /* ... of which resumed a session */
    atomic_uint_fast64_t tls_errors;     /* failed handshakes, client or upstream side */
};

struct dp_counters_sum {
    uint64_t accepted, handled, bytes_splice, bytes_copy, no_route;
    uint64_t tls_handshakes, tls_resumed, tls_errors;
    int64_t active;
};

struct dp_ctx {
    const struct st_conf *conf;
    char id[37];
    char hostname[256];
    bool no_splice;           /* STRAIT_TEST_NO_SPLICE=1 (read once at start): proxy by copy */
    int64_t ticket_rotate_ms; /* STRAIT_TEST_TICKET_ROTATE_MS; 0: the default period */

    size_t n_workers;
    struct dp_worker **workers;
    struct dp_logger *logger; /* drains the workers' log rings; NULL: they log directly */

    /* stream_max_sessions, for all workers together (issue 14). `sessions` counts live
     * sessions plus accepts in progress: a worker reserves a slot before accept4 and
     * gives it back when the session is freed (or no connection came); at the cap it
     * stops watching its listeners until a slot comes free (dp_worker.h). */
    int64_t max_sessions; /* resolved at start (dp_ctx_max_sessions_init); <= 0: no cap */
    atomic_int_fast64_t sessions;
    atomic_bool capped;                /* some worker paused its listeners at the cap */
    atomic_bool cap_logged;            /* this episode's "reached" line was logged */
    atomic_int_fast64_t cap_warned_ms; /* st_mono_ms() of the last "reached" line */
    atomic_uint_fast64_t cap_reached;  /* episodes (for /status and /metrics) */

    struct dp_dns *dns; /* the names' answers every runtime build reads */
    /* Held while a runtime is built and published (dp_sync_apply, dp_ctx_rebuild), so
     * that a build never publishes over a newer one. Workers never take it. */
    pthread_mutex_t build_lock;

    /* Counts the changes of any peer's health (workers' passive checks, the health
     * thread's probes): the health thread tells the sync client to report them. */
    atomic_uint_fast64_t health_epoch;

    /* Guards the fields below: written by the sync thread (and main at start), read
     * by the status thread. Workers never take it. */
    pthread_mutex_t lock;
    struct dp_runtime *rt; /* the current runtime; one reference held here */
    char hash[65];         /* of rt, or 64 zeros */
    uint64_t version;
    int64_t last_sync; /* unix s of the last answer from the CP, 0: never */
    /* cluster_control_plane's entry this DP is connected to ("" while it is not): with
     * several CPs sharing one registry, the status says which one serves it */
    char control_plane[256];
};

/* Descriptors stream_max_sessions = auto keeps out of the sessions' reach: stdio, logs,
 * the cluster link, config.cache, upstream TLS and DNS work (DP_FD_RESERVE_BASE), the
 * status listener (status_max_connections, plus DP_FD_PER_STATUS_LISTEN for each
 * status_listen entry: its socket and its daemon's epoll and wake-up descriptors) and
 * each worker's epoll, eventfd and listening sockets. */
#define DP_FD_RESERVE_BASE      64
#define DP_FD_PER_STATUS_LISTEN 3

/* stream_max_sessions = auto for a descriptor limit of nofile: (nofile - reserve) / 2,
 * each proxied session holding two descriptors (client and upstream); at least 1, at
 * most 2147483647. Pure: for tests. */
int64_t dp_ctx_max_sessions_auto(uint64_t nofile, const struct st_conf *c, size_t n_workers);

/* Sets ctx->max_sessions from ctx->conf: stream_max_sessions, or auto from the soft
 * descriptor limit now in force (the DP raised it first). Logs the value at notice, and
 * warns when an explicit value needs more descriptors than the limit allows. */
void dp_ctx_max_sessions_init(struct dp_ctx *ctx, size_t n_workers);

/* Sums the workers' counters (relaxed reads). */
void dp_ctx_counters(struct dp_ctx *ctx, struct dp_counters_sum *out);

/* Publishes rt as the current runtime: every worker gets its own reference (picked
 * up on its next loop turn), ctx->rt and the status fields are updated, and the
 * previous runtime loses ctx's reference. Takes ownership of one reference of rt. */
void dp_ctx_publish(struct dp_ctx *ctx, struct dp_runtime *rt);

/* Rebuilds the current runtime's addresses and balancers from ctx->dns's answers and
 * publishes it (the DNS refresher's callback; arg is the ctx). */
void dp_ctx_rebuild(void *arg);

#endif
