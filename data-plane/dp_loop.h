/* The data plane's own thin epoll loop, one per worker thread. A turn runs, in the
 * order of uv_run: epoll_wait -> I/O dispatch -> work resumed from the previous turn ->
 * timers -> deferred closes. Nothing in here blocks except epoll_wait itself. Not
 * thread-safe: one thread per loop. */
#ifndef STRAIT_DP_LOOP_H
#define STRAIT_DP_LOOP_H

#include <stdint.h>

#include "dp_loop-t.h"

/* Creates the epoll instance. Returns 0 or -errno. Release with dp_loop_fini(). */
int dp_loop_init(struct dp_loop *l);

void dp_loop_fini(struct dp_loop *l);

/* Registers io->fd for `events` (EPOLLIN, EPOLLOUT, EPOLLET...). io must stay valid
 * until dp_loop_io_del() or the fd is closed. Returns 0 or -errno. */
int dp_loop_io_add(struct dp_loop *l, struct dp_io *io, uint32_t events);
void dp_loop_io_del(struct dp_loop *l, struct dp_io *io);

/* Runs one turn, waiting at most max_wait_ms (-1: until an event or timer).
 * Returns 0 or -errno from epoll_wait (EINTR is not an error). */
int dp_loop_run_once(struct dp_loop *l, int max_wait_ms);

/* Queues d to run at the end of the current turn (once, however often it is queued).
 * A d already queued for the next turn moves here. */
void dp_loop_defer(struct dp_loop *l, struct dp_deferred *d);

/* Queues d to run in the next turn, right after that turn's I/O dispatch, without
 * waiting in epoll (a session that used its byte budget resumes there, after the other
 * ready fds had their turn). Once, however often it is queued; a no-op when d is
 * already queued for the end of this turn. */
void dp_loop_defer_next(struct dp_loop *l, struct dp_deferred *d);

/* Unqueues d wherever it waits (a no-op when it is not queued). Call it before freeing
 * an object that embeds d. */
void dp_loop_cancel(struct dp_loop *l, struct dp_deferred *d);

/* Timers (dp_timer.c): a binary heap ordered by deadline. */
void dp_timer_init(struct dp_timer *t, dp_timer_fn *cb, void *arg);

/* Arms (or re-arms) t to fire at `expire` (a st_mono_ms() value). Returns 0 or -ENOMEM. */
int dp_timer_set(struct dp_loop *l, struct dp_timer *t, int64_t expire);

/* Disarms t; a no-op when it is not armed. */
void dp_timer_del(struct dp_loop *l, struct dp_timer *t);

/* Milliseconds until the next deadline from l->now (0 if due), or -1 with none armed. */
int dp_timer_next(const struct dp_loop *l);

/* Fires every timer whose deadline is <= l->now. */
void dp_timer_run(struct dp_loop *l);

void dp_timer_fini(struct dp_loop *l);

#endif
