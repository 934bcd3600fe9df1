/* Active health checks: one thread per data plane (not one per worker) probes the peers
 * of every upstream whose healthchecks record has an active interval, and reports each
 * outcome to the peer's shared state (dp_balancer_report), which every worker reads at
 * once. Probes: a connect (Kong's tcp, and its http on a stream upstream), a TLS
 * handshake (https), or Strait's payload exchange (active.tcp_send / tcp_expect), each
 * bounded by active.timeout, at most active.concurrency at a time per upstream, started
 * with jitter so that peers are not probed in lockstep. */
#ifndef STRAIT_DP_HEALTH_H
#define STRAIT_DP_HEALTH_H

struct dp_ctx;
struct dp_health;
struct dp_sync;
struct st_err;

/* Starts the thread, which follows ctx's current runtime and tells sync (may be NULL)
 * when any peer's health changed (ctx->health_epoch). NULL with err set. */
struct dp_health *dp_health_start(struct dp_ctx *ctx, struct dp_sync *sync, struct st_err *err);

/* Stops the thread (its probes closed, unreported) and frees it. NULL is a no-op. */
void dp_health_stop(struct dp_health *h);

#endif
