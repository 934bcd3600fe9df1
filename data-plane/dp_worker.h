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

/* Joins the thread (if started) and frees the worker. NULL is a no-op. */
void dp_worker_free(struct dp_worker *w);

#endif
