/* A proxied TCP session: accept -> PREREAD -> ROUTE -> [TLS] -> CONNECT -> [UPSTREAM_TLS]
 * -> PROXY -> LOG -> free, advanced only by dp_session_step() on its worker's loop. */
#ifndef STRAIT_DP_SESSION_H
#define STRAIT_DP_SESSION_H

#include <sys/socket.h>

#include "dp_worker-t.h"

/* Starts a session for an accepted, non-blocking fd. Takes ownership of fd and of the
 * stream_max_sessions slot reserved for it (dp_worker_session_reserve): on any failure
 * (memory, no route) the fd is closed, the slot given back and the outcome logged. */
void dp_session_accept(struct dp_worker *w, struct dp_listener *li, int fd,
                       const struct sockaddr *client);

/* Closes every session of w (shutdown); they are freed at the end of the loop turn. */
void dp_session_abort_all(struct dp_worker *w);

/* Size of struct dp_session, for the worker's pool. */
size_t dp_session_size(void);

#endif
