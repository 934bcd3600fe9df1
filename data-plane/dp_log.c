/* Worker log rings and the logger thread that drains them.
 *
 * A ring is single-producer single-consumer: the worker owns `head`, the logger owns
 * `tail`, each published with release and read with acquire, so a slot's text is
 * complete before the other side sees the index move. The worker wakes the logger
 * (eventfd) when it fills an empty ring; the logger also polls every
 * DP_LOGGER_POLL_MS, which bounds the delay of a wake-up lost to a stale `tail`. */
#include "dp_log.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "st_err.h"
#include "st_util.h"

#define DP_LOGGER_POLL_MS 100

_Static_assert((DP_LOG_SLOTS & (DP_LOG_SLOTS - 1)) == 0, "DP_LOG_SLOTS: a power of two");

struct log_slot {
    enum st_log_level level;
    int err;
    char text[DP_LOG_LINE];
};

struct dp_log_ring {
    _Atomic uint64_t head; /* next slot the worker fills */
    _Atomic uint64_t tail; /* next slot the logger reads */
    atomic_uint_fast64_t dropped;
    int wake_fd; /* the logger's eventfd, -1: none */
    struct log_slot slots[DP_LOG_SLOTS];
};

struct dp_logger {
    pthread_t thread;
    int efd;
    atomic_bool stop;
    size_t n;
    struct dp_log_ring **rings;
    uint64_t *reported; /* drops already reported, per ring */
};

/* ---------------------------------------------------------------- rings */

struct dp_log_ring *
dp_log_ring_new(void)
{
    struct dp_log_ring *r = calloc(1, sizeof(*r));

    if (r == NULL) {
        return NULL;
    }
    r->wake_fd = -1; /* head, tail and dropped start zeroed */
    return r;
}

void
dp_log_ring_free(struct dp_log_ring *r)
{
    free(r);
}

void
dp_log(struct dp_log_ring *r, enum st_log_level level, int err, const char *fmt, ...)
{
    struct log_slot *slot;
    uint64_t h, t;
    va_list ap;

    if (!st_log_enabled(level)) {
        return;
    }
    if (r == NULL) {
        char text[DP_LOG_LINE];

        va_start(ap, fmt);
        (void)vsnprintf(text, sizeof(text), fmt, ap);
        va_end(ap);
        st_log(level, err, "%s", text);
        return;
    }
    h = atomic_load_explicit(&r->head, memory_order_relaxed);
    t = atomic_load_explicit(&r->tail, memory_order_acquire);
    if (h - t >= DP_LOG_SLOTS) {
        atomic_fetch_add_explicit(&r->dropped, 1, memory_order_relaxed);
        return;
    }
    slot = &r->slots[h & (DP_LOG_SLOTS - 1)];
    slot->level = level;
    slot->err = err;
    va_start(ap, fmt);
    (void)vsnprintf(slot->text, sizeof(slot->text), fmt, ap); /* cut when too long */
    va_end(ap);
    atomic_store_explicit(&r->head, h + 1, memory_order_release);
    if (h == t && r->wake_fd != -1) {
        uint64_t one = 1;

        (void)!write(r->wake_fd, &one, sizeof(one)); /* non-blocking eventfd */
    }
}

bool
dp_log_ring_pop(struct dp_log_ring *r, enum st_log_level *level, int *err, char *text)
{
    uint64_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);
    uint64_t h = atomic_load_explicit(&r->head, memory_order_acquire);
    const struct log_slot *slot;

    if (t == h) {
        return false;
    }
    slot = &r->slots[t & (DP_LOG_SLOTS - 1)];
    *level = slot->level;
    *err = slot->err;
    memcpy(text, slot->text, DP_LOG_LINE);
    text[DP_LOG_LINE - 1] = '\0';
    atomic_store_explicit(&r->tail, t + 1, memory_order_release);
    return true;
}

uint64_t
dp_log_ring_dropped(const struct dp_log_ring *r)
{
    return atomic_load_explicit(&r->dropped, memory_order_relaxed);
}

/* ---------------------------------------------------------------- the logger thread */

static void
logger_drain(struct dp_logger *lg)
{
    char text[DP_LOG_LINE];
    enum st_log_level level;
    int err;

    for (size_t i = 0; i < lg->n; i++) {
        struct dp_log_ring *r = lg->rings[i];
        uint64_t dropped;

        while (dp_log_ring_pop(r, &level, &err, text)) {
            st_log(level, err, "%s", text);
        }
        dropped = dp_log_ring_dropped(r);
        if (dropped != lg->reported[i]) {
            st_log(ST_LOG_WARN, 0, "worker %zu: %llu log lines dropped (log ring full)", i,
                   (unsigned long long)(dropped - lg->reported[i]));
            lg->reported[i] = dropped;
        }
    }
}

static void *
logger_main(void *arg)
{
    struct dp_logger *lg = arg;

    for (;;) {
        struct pollfd pfd = {.fd = lg->efd, .events = POLLIN};
        bool stop = atomic_load(&lg->stop);
        uint64_t v;

        logger_drain(lg);
        if (stop) {
            return NULL;
        }
        if (poll(&pfd, 1, DP_LOGGER_POLL_MS) > 0) {
            (void)!read(lg->efd, &v, sizeof(v));
        }
    }
}

static void
logger_free_rings(struct dp_logger *lg)
{
    for (size_t i = 0; i < lg->n; i++) {
        dp_log_ring_free(lg->rings[i]);
    }
    free(lg->rings);
    free(lg->reported);
    if (lg->efd != -1) {
        close(lg->efd);
    }
    free(lg);
}

struct dp_logger *
dp_logger_new(size_t n, struct st_err *err)
{
    struct dp_logger *lg = st_xcalloc(1, sizeof(*lg));
    int rc;

    lg->rings = st_xcalloc(n ? n : 1, sizeof(*lg->rings));
    lg->reported = st_xcalloc(n ? n : 1, sizeof(*lg->reported));
    lg->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (lg->efd == -1) {
        rc = -errno;
        logger_free_rings(lg);
        st_err_set(err, rc, NULL, "logger: eventfd: %s", strerror(-rc));
        return NULL;
    }
    for (; lg->n < n; lg->n++) {
        lg->rings[lg->n] = dp_log_ring_new();
        if (lg->rings[lg->n] == NULL) {
            logger_free_rings(lg);
            st_err_set(err, -ENOMEM, NULL, "logger: out of memory");
            return NULL;
        }
        lg->rings[lg->n]->wake_fd = lg->efd;
    }
    rc = pthread_create(&lg->thread, NULL, logger_main, lg);
    if (rc != 0) {
        logger_free_rings(lg);
        st_err_set(err, -rc, NULL, "logger: cannot start a thread: %s", strerror(rc));
        return NULL;
    }
    return lg;
}

struct dp_log_ring *
dp_logger_ring(struct dp_logger *lg, size_t i)
{
    return i < lg->n ? lg->rings[i] : NULL;
}

void
dp_logger_free(struct dp_logger *lg)
{
    uint64_t one = 1;

    if (lg == NULL) {
        return;
    }
    atomic_store(&lg->stop, true);
    (void)!write(lg->efd, &one, sizeof(one));
    pthread_join(lg->thread, NULL);
    logger_free_rings(lg);
}
