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

/* Deferred work: at the end of the current turn (after I/O and timers: frees), or in
 * the next turn right after its I/O dispatch (work cut short by a budget). */
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

enum dp_defer_queue {
    DP_DEFER_NONE = 0,
    DP_DEFER_END,  /* l->deferred: end of this turn */
    DP_DEFER_NEXT, /* l->next_turn or l->this_turn: next turn, after I/O dispatch */
};

struct dp_deferred {
    struct dp_deferred *next;
    dp_defer_fn *cb;
    void *arg;
    enum dp_defer_queue queued;
};

struct dp_loop {
    int epfd;
    int64_t now; /* st_mono_ms() cached once per turn */
    struct dp_timer **heap;
    size_t n_timers;
    size_t cap_timers;
    struct dp_deferred *deferred;  /* end of this turn (LIFO) */
    struct dp_deferred *next_turn; /* queued during this turn for the next (LIFO) */
    struct dp_deferred *this_turn; /* being run this turn, oldest first */
};

#endif
