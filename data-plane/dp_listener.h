/* Listening sockets for stream_listen entries. Each worker opens its own socket per
 * entry with SO_REUSEPORT, so the kernel spreads connections across workers. */
#ifndef STRAIT_DP_LISTENER_H
#define STRAIT_DP_LISTENER_H

#include "dp_worker-t.h"

struct st_err;

/* Opens a non-blocking listening socket for li->conf and registers it on w's loop.
 * Returns 0 or a negative errno with err filled ("127.0.0.1:5555: bind: ..."). */
int dp_listener_open(struct dp_listener *li, struct dp_worker *w, const struct st_listen *conf,
                     struct st_err *err);

/* Deregisters and closes the socket (idempotent). */
void dp_listener_close(struct dp_listener *li);

/* Stops watching the socket (stream_max_sessions reached): new connections wait in the
 * backlog. Idempotent. */
void dp_listener_unwatch(struct dp_listener *li);

/* Watches the socket again, unless it is closed, already watched, or paused for want of
 * descriptors (its timer watches it again). */
void dp_listener_watch(struct dp_listener *li);

#endif
