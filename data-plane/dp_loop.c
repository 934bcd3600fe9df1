/* The per-worker epoll loop: register fds, run turns. It knows nothing about
 * sessions; owners embed struct dp_io and get called back.
 *
 * A turn: epoll_wait -> I/O dispatch -> work queued for this turn by the previous one
 * -> timers -> deferred closes. Deferred structs are embedded in their owners and
 * linked in place, so queueing never allocates; an owner cancels its queued structs
 * before it is freed. */
#include "dp_loop.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "st_util.h"

#define DP_LOOP_MAX_EVENTS 256

int
dp_loop_init(struct dp_loop *l)
{
    memset(l, 0, sizeof(*l));
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (l->epfd == -1) {
        return -errno;
    }
    l->now = st_mono_ms();
    return 0;
}

void
dp_loop_fini(struct dp_loop *l)
{
    dp_timer_fini(l);
    if (l->epfd != -1) {
        close(l->epfd);
        l->epfd = -1;
    }
}

int
dp_loop_io_add(struct dp_loop *l, struct dp_io *io, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = io};

    return epoll_ctl(l->epfd, EPOLL_CTL_ADD, io->fd, &ev) == -1 ? -errno : 0;
}

void
dp_loop_io_del(struct dp_loop *l, struct dp_io *io)
{
    (void)epoll_ctl(l->epfd, EPOLL_CTL_DEL, io->fd, NULL); /* NULL: Linux >= 2.6.9 */
}

/* Unlinks d from the list at *head. Returns false when it is not there. */
static bool
list_remove(struct dp_deferred **head, struct dp_deferred *d)
{
    for (struct dp_deferred **pp = head; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == d) {
            *pp = d->next;
            d->next = NULL;
            return true;
        }
    }
    return false;
}

void
dp_loop_cancel(struct dp_loop *l, struct dp_deferred *d)
{
    if (d->queued == DP_DEFER_END) {
        (void)list_remove(&l->deferred, d);
    } else if (d->queued == DP_DEFER_NEXT) {
        if (!list_remove(&l->next_turn, d)) {
            (void)list_remove(&l->this_turn, d);
        }
    }
    d->queued = DP_DEFER_NONE;
}

void
dp_loop_defer(struct dp_loop *l, struct dp_deferred *d)
{
    if (d->queued == DP_DEFER_END) {
        return;
    }
    dp_loop_cancel(l, d);
    d->queued = DP_DEFER_END;
    d->next = l->deferred;
    l->deferred = d;
}

void
dp_loop_defer_next(struct dp_loop *l, struct dp_deferred *d)
{
    if (d->queued != DP_DEFER_NONE) {
        return;
    }
    d->queued = DP_DEFER_NEXT;
    d->next = l->next_turn;
    l->next_turn = d;
}

static int
loop_poll(struct dp_loop *l, struct epoll_event *evs, int max_wait_ms)
{
    int timeout = dp_timer_next(l);
    int n;

    if (timeout == -1 || (max_wait_ms >= 0 && max_wait_ms < timeout)) {
        timeout = max_wait_ms;
    }
    if (l->deferred != NULL || l->next_turn != NULL) {
        timeout = 0;
    }
    n = epoll_wait(l->epfd, evs, DP_LOOP_MAX_EVENTS, timeout);
    if (n == -1) {
        return errno == EINTR ? 0 : -errno;
    }
    return n;
}

static void
loop_dispatch(struct dp_loop *l, struct epoll_event *evs, int n)
{
    for (int i = 0; i < n; i++) {
        struct dp_io *io = evs[i].data.ptr;

        io->cb(l, io->fd, io->arg, evs[i].events);
    }
}

static void
loop_run_deferred(struct dp_loop *l)
{
    while (l->deferred != NULL) {
        struct dp_deferred *d = l->deferred;

        l->deferred = d->next;
        d->next = NULL;
        d->queued = DP_DEFER_NONE;
        d->cb(l, d->arg);
    }
}

/* Moves what the previous turn queued for this one to l->this_turn, oldest first, so
 * that what this turn queues waits for the next. */
static void
loop_take_next_turn(struct dp_loop *l)
{
    struct dp_deferred *rev = NULL;

    while (l->next_turn != NULL) {
        struct dp_deferred *d = l->next_turn;

        l->next_turn = d->next;
        d->next = rev;
        rev = d;
    }
    l->this_turn = rev;
}

static void
loop_run_this_turn(struct dp_loop *l)
{
    while (l->this_turn != NULL) {
        struct dp_deferred *d = l->this_turn;

        l->this_turn = d->next;
        d->next = NULL;
        d->queued = DP_DEFER_NONE;
        d->cb(l, d->arg);
    }
}

int
dp_loop_run_once(struct dp_loop *l, int max_wait_ms)
{
    struct epoll_event evs[DP_LOOP_MAX_EVENTS];
    int n = loop_poll(l, evs, max_wait_ms);

    if (n < 0) {
        return n;
    }
    l->now = st_mono_ms();
    loop_take_next_turn(l);
    loop_dispatch(l, evs, n);
    loop_run_this_turn(l);
    dp_timer_run(l);
    loop_run_deferred(l);
    return 0;
}
