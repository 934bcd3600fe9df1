/* The status listener (status_listen): GET /status, /status/ready and /metrics.
 * libmicrohttpd runs it on its own thread; it reads the context under its lock and
 * the workers' counters with relaxed atomics. */
#ifndef STRAIT_DP_STATUS_H
#define STRAIT_DP_STATUS_H

struct dp_ctx;
struct dp_status;
struct st_err;

/* Starts serving on every status_listen address (status_max_connections over all of
 * them). *out is NULL when status_listen is off. Returns 0 or a negative code with err
 * filled. */
int dp_status_start(struct dp_ctx *ctx, struct dp_status **out, struct st_err *err);

/* Stops the listener and frees it. NULL is a no-op. */
void dp_status_stop(struct dp_status *st);

#endif
