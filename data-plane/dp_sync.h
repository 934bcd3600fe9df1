/* The sync client: an nng req0 socket dialing the control plane, on its own thread.
 * It long-polls for snapshots, applies the good ones (build runtime, swap, write the
 * cache) and reports the last failure in its next request. The only file including
 * nng.h on the data plane. */
#ifndef STRAIT_DP_SYNC_H
#define STRAIT_DP_SYNC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct dp_ctx;
struct dp_sync;
struct st_err;

/* Verifies snap bytes (through s's snapshot memo: entities unchanged since the last
 * applied snapshot are not checked again), builds a runtime and publishes it to s's
 * context; unless from_cache, also writes PREFIX/config.cache. The sync thread, or
 * before it starts. Returns 0 or a negative code with err filled (nothing is applied
 * then). */
int dp_sync_apply(struct dp_sync *s, const uint8_t *p, size_t len, bool from_cache,
                  struct st_err *err);

/* Opens the socket and its dialer (TLS unless cluster_mtls = off). Returns NULL with
 * err filled. */
struct dp_sync *dp_sync_new(struct dp_ctx *ctx, struct st_err *err);

/* Starts the thread. Returns 0 or a negative errno. */
int dp_sync_start(struct dp_sync *s);

/* Stops the thread: with `goodbye`, one last request tells the CP this DP leaves
 * (best effort, short timeout). Then joins it. */
void dp_sync_stop(struct dp_sync *s, bool goodbye);

/* Ends the request the sync thread waits on, so that it asks again at once with what
 * changed (the health report). Any thread. */
void dp_sync_poke(struct dp_sync *s);

/* Closes the socket and frees s (stopping it first if needed). NULL is a no-op. */
void dp_sync_free(struct dp_sync *s);

/* Releases nng's global resources at exit, after every dp_sync is freed. */
void dp_sync_lib_fini(void);

#endif
