/* Types of the event loop and its timers, for modules that embed them. */
#ifndef STRAIT_DP_LOOP_T_H
#define STRAIT_DP_LOOP_T_H

#include <stddef.h>
#include <stdint.h>

struct dp_loop;

/* Called for an fd registered with dp_loop_io_add(); events are EPOLL* bits. */
typedef void dp_io_fn(struct dp_loop *l, int fd, void *arg, uint32_t events);

/* Called when a timer expires; the timer is already removed. */
typedef void dp_timer_fn(struct dp_loop *l, void *arg);

/* Called after I/O dispatch and timers, once per loop turn, to free what was closed. */
typedef void dp_defer_fn(struct dp_loop *l, void *arg);

/* One epoll registration, embedded in its owner (epoll data points here). */
struct dp_io {
    int fd;
    dp_io_fn *cb;
    void *arg;
};

struct dp_timer {
    int64_t expire; /* st_mono_ms() deadline */
    size_t idx;     /* heap slot + 1; 0: not armed */
    dp_timer_fn *cb;
    void *arg;
};

struct dp_deferred {
    struct dp_deferred *next;
    dp_defer_fn *cb;
    void *arg;
    int queued;
};

struct dp_loop {
    int epfd;
    int64_t now; /* st_mono_ms() cached once per turn */
    struct dp_timer **heap;
    size_t n_timers;
    size_t cap_timers;
    struct dp_deferred *deferred;
};

#endif
