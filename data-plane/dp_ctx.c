/* The process context: runtime publication and counter sums. */
#include "dp_ctx.h"

#include <string.h>

#include "dp_runtime.h"
#include "dp_worker.h"
#include "st_util.h"

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
