/* Worker threads: one epoll loop each, with its own SO_REUSEPORT listening socket for
 * every stream_listen entry. They share nothing on the hot path but the read-only
 * runtime. */
#ifndef STRAIT_DP_WORKER_H
#define STRAIT_DP_WORKER_H

#include <stdbool.h>
#include <stddef.h>

#include "dp_worker-t.h"

struct st_err;

/* Creates worker `index`: its loop and its listening sockets (bound at once, so a
 * port in use fails here, before any thread starts). Returns NULL with err filled. */
struct dp_worker *dp_worker_new(struct dp_ctx *ctx, size_t index, struct st_err *err);

/* Starts the thread. Returns 0 or a negative errno. */
int dp_worker_start(struct dp_worker *w);

/* Hands rt to the worker for the sessions it accepts from now on. Takes ownership of
 * one reference. Any thread. */
void dp_worker_set_runtime(struct dp_worker *w, struct dp_runtime *rt);

/* The runtime for a session accepted now (a runtime handed over is taken at once).
 * Owned by the worker: the caller refs it to keep it. Worker thread only. */
struct dp_runtime *dp_worker_runtime(struct dp_worker *w);

/* Stop accepting and let sessions finish within drain_timeout, then exit (SIGQUIT). */
void dp_worker_drain(struct dp_worker *w);

/* Close everything now and exit (SIGTERM). */
void dp_worker_stop(struct dp_worker *w);

/* True once the thread has left its loop. */
bool dp_worker_is_finished(struct dp_worker *w);

/* Stops the thread (if started) and waits for it; idempotent. Join every worker before
 * freeing any: a worker that ends its sessions may wake the others. */
void dp_worker_join(struct dp_worker *w);

/* Joins the thread (if started) and frees the worker. NULL is a no-op. */
void dp_worker_free(struct dp_worker *w);

/* stream_max_sessions, across the workers (ctx->sessions). Worker thread only. */

/* Takes a slot for a connection about to be accepted: one atomic add. At the cap it
 * returns false, having stopped watching w's listeners (and logged, at most once per
 * 10 s, that the cap is reached) until a slot comes free. */
bool dp_worker_session_reserve(struct dp_worker *w);

/* Gives a slot back: the session was freed, or no connection was there to accept. The
 * release that brings the DP back under its cap wakes every worker that paused. */
void dp_worker_session_release(struct dp_worker *w);

#endif
