/* The process context: runtime publication, counter sums, and the sessions cap. */
#include "dp_ctx.h"

#include <stdint.h>
#include <string.h>
#include <sys/resource.h>

#include "dp_runtime.h"
#include "dp_worker.h"
#include "st_conf.h"
#include "st_log.h"
#include "st_util.h"

#define DP_MAX_SESSIONS_MAX 2147483647

static uint64_t
fd_reserve(const struct st_conf *c, size_t n_workers)
{
    uint64_t status = c->status_listen.n > 0 && c->status_max_connections > 0
                          ? (uint64_t)c->status_max_connections
                          : 0;

    return DP_FD_RESERVE_BASE + status + DP_FD_PER_STATUS_LISTEN * (uint64_t)c->status_listen.n +
           (uint64_t)n_workers * (2 + (uint64_t)c->stream_listen.n);
}

int64_t
dp_ctx_max_sessions_auto(uint64_t nofile, const struct st_conf *c, size_t n_workers)
{
    uint64_t reserve = fd_reserve(c, n_workers);
    uint64_t n;

    if (nofile <= reserve + 2) {
        return 1;
    }
    n = (nofile - reserve) / 2;
    return n > DP_MAX_SESSIONS_MAX ? DP_MAX_SESSIONS_MAX : (int64_t)n;
}

void
dp_ctx_max_sessions_init(struct dp_ctx *ctx, size_t n_workers)
{
    const struct st_conf *c = ctx->conf;
    struct rlimit rl;
    uint64_t nofile = 1024;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        nofile = rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : (uint64_t)rl.rlim_cur;
    }
    atomic_init(&ctx->sessions, 0);
    atomic_init(&ctx->capped, false);
    atomic_init(&ctx->cap_logged, false);
    atomic_init(&ctx->cap_warned_ms, 0);
    atomic_init(&ctx->cap_reached, 0);
    if (c->stream_max_sessions > 0) {
        ctx->max_sessions = c->stream_max_sessions;
        if (ctx->max_sessions > dp_ctx_max_sessions_auto(nofile, c, n_workers)) {
            st_log(ST_LOG_WARN, 0,
                   "stream_max_sessions = %d needs about %llu descriptors, more than the "
                   "limit of %llu: sessions may fail for want of descriptors before the cap",
                   c->stream_max_sessions,
                   (unsigned long long)(2 * (uint64_t)c->stream_max_sessions +
                                        fd_reserve(c, n_workers)),
                   (unsigned long long)nofile);
        }
        return;
    }
    ctx->max_sessions = dp_ctx_max_sessions_auto(nofile, c, n_workers);
    st_log(ST_LOG_NOTICE, 0,
           "stream_max_sessions = auto: %lld sessions (descriptor limit %llu, %llu kept for "
           "the status listener, the cluster link and the workers)",
           (long long)ctx->max_sessions, (unsigned long long)nofile,
           (unsigned long long)fd_reserve(c, n_workers));
}

void
dp_ctx_counters(struct dp_ctx *ctx, struct dp_counters_sum *out)
{
    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < ctx->n_workers; i++) {
        struct dp_counters *c = &ctx->workers[i]->cnt;

        out->accepted += atomic_load_explicit(&c->accepted, memory_order_relaxed);
        out->handled += atomic_load_explicit(&c->handled, memory_order_relaxed);
        out->active += atomic_load_explicit(&c->active, memory_order_relaxed);
        out->bytes_splice += atomic_load_explicit(&c->bytes_splice, memory_order_relaxed);
        out->bytes_copy += atomic_load_explicit(&c->bytes_copy, memory_order_relaxed);
        out->no_route += atomic_load_explicit(&c->no_route, memory_order_relaxed);
        out->tls_handshakes += atomic_load_explicit(&c->tls_handshakes, memory_order_relaxed);
        out->tls_resumed += atomic_load_explicit(&c->tls_resumed, memory_order_relaxed);
        out->tls_errors += atomic_load_explicit(&c->tls_errors, memory_order_relaxed);
    }
}

void
dp_ctx_publish(struct dp_ctx *ctx, struct dp_runtime *rt)
{
    struct dp_runtime *old;

    for (size_t i = 0; i < ctx->n_workers; i++) {
        dp_worker_set_runtime(ctx->workers[i], dp_runtime_ref(rt));
    }
    pthread_mutex_lock(&ctx->lock);
    old = ctx->rt;
    ctx->rt = rt;
    memcpy(ctx->hash, dp_runtime_hash(rt), sizeof(ctx->hash));
    ctx->hash[64] = '\0';
    ctx->version = dp_runtime_version(rt);
    pthread_mutex_unlock(&ctx->lock);
    dp_runtime_unref(old);
}

void
dp_ctx_rebuild(void *arg)
{
    struct dp_ctx *ctx = arg;
    struct dp_runtime *prev, *rt;

    pthread_mutex_lock(&ctx->build_lock);
    pthread_mutex_lock(&ctx->lock);
    prev = ctx->rt != NULL ? dp_runtime_ref(ctx->rt) : NULL;
    pthread_mutex_unlock(&ctx->lock);
    if (prev != NULL) {
        rt = dp_runtime_rebuild(prev, ctx->dns);
        dp_runtime_unref(prev);
        st_log(ST_LOG_NOTICE, 0,
               "configuration version %llu: addresses rebuilt (DNS answers "
               "changed)",
               (unsigned long long)dp_runtime_version(rt));
        dp_ctx_publish(ctx, rt);
    }
    pthread_mutex_unlock(&ctx->build_lock);
}
