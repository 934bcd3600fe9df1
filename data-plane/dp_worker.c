/* A worker: a thread running one dp_loop. Besides sessions, its loop watches an
 * eventfd through which other threads hand over runtimes and commands. */
#include "dp_worker.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "dp_fwd.h"
#include "dp_listener.h"
#include "dp_log.h"
#include "dp_loop.h"
#include "dp_preread.h"
#include "dp_runtime.h"
#include "dp_session.h"
#include "st_conf.h"
#include "st_err.h"
#include "st_log.h"
#include "st_util.h"

#define DP_SESS_POOL_KEEP 1024
#define DP_BUF_POOL_KEEP  256
#define DP_PRE_POOL_KEEP  256
#define DP_PIPE_POOL_KEEP 256

/* At most one "stream_max_sessions reached" line this often (its "accepting again" line
 * follows the one logged). */
#define DP_CAP_WARN_MS 10000

static void
worker_wake(struct dp_worker *w)
{
    uint64_t one = 1;

    (void)!write(w->evfd, &one, sizeof(one));
}

/* ---------------------------------------------------------------- sessions cap */

/* The cap cleared: says so if its "reached" line was logged, and wakes the workers that
 * paused (they watch their listeners again in worker_on_event). Any worker thread. */
static void
cap_cleared(struct dp_worker *w)
{
    struct dp_ctx *ctx = w->ctx;

    if (atomic_exchange(&ctx->capped, false) && atomic_exchange(&ctx->cap_logged, false)) {
        dp_log(w->log, ST_LOG_WARN, 0,
               "stream_max_sessions: below %lld sessions again, accepting connections",
               (long long)ctx->max_sessions);
    }
    for (size_t i = 0; i < ctx->n_workers; i++) {
        struct dp_worker *x = ctx->workers[i];

        if (atomic_load(&x->cap_wait) && atomic_exchange(&x->cap_wait, false)) {
            worker_wake(x);
        }
    }
}

static void
cap_pause_listeners(struct dp_worker *w, bool pause)
{
    w->cap_paused = pause;
    for (size_t i = 0; i < w->n_listeners; i++) {
        if (pause) {
            dp_listener_unwatch(&w->listeners[i]);
        } else {
            dp_listener_watch(&w->listeners[i]);
        }
    }
}

/* A reservation failed (it is still counted). The order matters, against a slot freed
 * on another worker at any point: ask for a wake-up and mark the episode first, then give
 * the slot back and look again; a slot freed after that look sees cap_wait and wakes us. */
static void
cap_reached(struct dp_worker *w)
{
    struct dp_ctx *ctx = w->ctx;

    atomic_store(&w->cap_wait, true);
    if (!atomic_exchange(&ctx->capped, true)) {
        int64_t now = st_mono_ms();
        int64_t last = atomic_load(&ctx->cap_warned_ms);

        atomic_fetch_add_explicit(&ctx->cap_reached, 1, memory_order_relaxed);
        if ((last == 0 || now - last >= DP_CAP_WARN_MS) &&
            atomic_compare_exchange_strong(&ctx->cap_warned_ms, &last, now)) {
            atomic_store(&ctx->cap_logged, true);
            dp_log(w->log, ST_LOG_WARN, 0,
                   "stream_max_sessions: %lld sessions reached, not accepting connections "
                   "until one ends",
                   (long long)ctx->max_sessions);
        }
    }
    dp_worker_session_release(w);
    if (atomic_load(&ctx->sessions) < ctx->max_sessions) {
        /* freed meanwhile: no pause after all (and none left from earlier in this turn) */
        atomic_store(&w->cap_wait, false);
        cap_cleared(w);
        if (w->cap_paused) {
            cap_pause_listeners(w, false);
        }
        return;
    }
    if (!w->cap_paused) {
        cap_pause_listeners(w, true);
    }
}

bool
dp_worker_session_reserve(struct dp_worker *w)
{
    struct dp_ctx *ctx = w->ctx;

    if (atomic_fetch_add(&ctx->sessions, 1) < ctx->max_sessions || ctx->max_sessions <= 0) {
        return true;
    }
    cap_reached(w);
    return false;
}

void
dp_worker_session_release(struct dp_worker *w)
{
    if (atomic_fetch_sub(&w->ctx->sessions, 1) == w->ctx->max_sessions) {
        cap_cleared(w);
    }
}

static void
worker_on_event(struct dp_loop *l, int fd, void *arg, uint32_t events)
{
    struct dp_worker *w = arg;
    uint64_t v;

    (void)l;
    (void)events;
    (void)!read(fd, &v, sizeof(v));
    if (w->cap_paused && !atomic_load(&w->cap_wait)) {
        cap_pause_listeners(w, false); /* a slot came free: the next accept tries for it */
    }
}

struct dp_worker *
dp_worker_new(struct dp_ctx *ctx, size_t index, struct st_err *err)
{
    const struct st_listen_set *set = &ctx->conf->stream_listen;
    struct dp_worker *w = st_xcalloc(1, sizeof(*w));
    int rc;

    w->ctx = ctx;
    w->index = index;
    w->log = ctx->logger != NULL ? dp_logger_ring(ctx->logger, index) : NULL;
    w->evfd = -1;
    w->loop.epfd = -1; /* the atomics start zeroed: DP_WORKER_RUN, false, NULL */
    dp_pool_init(&w->sess_pool, "session", dp_session_size(), DP_SESS_POOL_KEEP);
    dp_pool_init(&w->buf_pool, "buffer", DP_COPY_BUF_SIZE, DP_BUF_POOL_KEEP);
    dp_pool_init(&w->pre_pool, "preread", sizeof(struct dp_preread), DP_PRE_POOL_KEEP);
    dp_pool_init(&w->name_pool, "name", DP_PREREAD_SNI_MAX + 1, DP_PRE_POOL_KEEP);
    w->peek = st_xmalloc(DP_PREREAD_BUF_MAX);
    dp_pipe_pool_init(&w->pipes, DP_PIPE_POOL_KEEP);
    w->listeners = st_xcalloc(set->n ? set->n : 1, sizeof(*w->listeners));
    for (size_t i = 0; i < set->n; i++) {
        w->listeners[i].io.fd = -1;
    }
    rc = dp_loop_init(&w->loop);
    if (rc < 0) {
        st_err_set(err, rc, NULL, "epoll_create: %s", strerror(-rc));
        goto fail;
    }
    w->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->evfd == -1) {
        st_err_set(err, -errno, NULL, "eventfd: %s", strerror(errno));
        goto fail;
    }
    w->ev_io.fd = w->evfd;
    w->ev_io.cb = worker_on_event;
    w->ev_io.arg = w;
    rc = dp_loop_io_add(&w->loop, &w->ev_io, EPOLLIN);
    if (rc < 0) {
        st_err_set(err, rc, NULL, "epoll: %s", strerror(-rc));
        goto fail;
    }
    for (size_t i = 0; i < set->n; i++) {
        if (dp_listener_open(&w->listeners[i], w, &set->v[i], err) < 0) {
            goto fail;
        }
        w->n_listeners++;
    }
    w->listening = true;
    return w;

fail:
    dp_worker_free(w);
    return NULL;
}

static void
worker_unlisten(struct dp_worker *w)
{
    for (size_t i = 0; i < w->n_listeners; i++) {
        dp_listener_close(&w->listeners[i]);
    }
    w->listening = false;
}

static void
worker_take_runtime(struct dp_worker *w)
{
    struct dp_runtime *rt = atomic_exchange(&w->pending_rt, NULL);

    if (rt != NULL) {
        dp_runtime_unref(w->rt);
        w->rt = rt;
    }
}

struct dp_runtime *
dp_worker_runtime(struct dp_worker *w)
{
    /* A runtime published before this accept must serve it, even when the eventfd that
     * announces it comes later in the same epoll batch: one atomic exchange, no syscall. */
    worker_take_runtime(w);
    return w->rt;
}

/* Returns false when the loop must end. */
static bool
worker_check_cmd(struct dp_worker *w)
{
    int cmd = atomic_load(&w->cmd);

    if (cmd == DP_WORKER_STOP) {
        return false;
    }
    if (cmd == DP_WORKER_DRAIN) {
        if (w->listening) {
            worker_unlisten(w);
            w->drain_deadline = st_mono_ms() + (int64_t)w->ctx->conf->drain_timeout * 1000;
        }
        if (w->sessions == NULL || w->loop.now >= w->drain_deadline) {
            return false;
        }
    }
    return true;
}

static void *
worker_main(void *arg)
{
    struct dp_worker *w = arg;

    while (worker_check_cmd(w)) {
        int rc;

        worker_take_runtime(w);
        rc = dp_loop_run_once(&w->loop, 1000);
        if (rc < 0) {
            dp_log(w->log, ST_LOG_CRIT, -rc, "worker %zu: epoll_wait", w->index);
            break;
        }
    }
    worker_unlisten(w);
    if (w->sessions != NULL) {
        dp_session_abort_all(w);
        (void)dp_loop_run_once(&w->loop, 0);
    }
    atomic_store(&w->finished, true);
    return NULL;
}

int
dp_worker_start(struct dp_worker *w)
{
    int rc = pthread_create(&w->thread, NULL, worker_main, w);

    if (rc != 0) {
        return -rc;
    }
    w->started = true;
    return 0;
}

void
dp_worker_set_runtime(struct dp_worker *w, struct dp_runtime *rt)
{
    struct dp_runtime *old = atomic_exchange(&w->pending_rt, rt);

    /* The worker never saw `old`: whoever exchanges it out owns its reference. */
    dp_runtime_unref(old);
    worker_wake(w);
}

void
dp_worker_drain(struct dp_worker *w)
{
    int expected = DP_WORKER_RUN;

    (void)atomic_compare_exchange_strong(&w->cmd, &expected, DP_WORKER_DRAIN);
    worker_wake(w);
}

void
dp_worker_stop(struct dp_worker *w)
{
    atomic_store(&w->cmd, DP_WORKER_STOP);
    worker_wake(w);
}

bool
dp_worker_is_finished(struct dp_worker *w)
{
    return !w->started || atomic_load(&w->finished);
}

void
dp_worker_join(struct dp_worker *w)
{
    if (w->started) {
        dp_worker_stop(w);
        pthread_join(w->thread, NULL);
        w->started = false;
        atomic_store(&w->finished, true);
    }
}

void
dp_worker_free(struct dp_worker *w)
{
    if (w == NULL) {
        return;
    }
    dp_worker_join(w);
    worker_unlisten(w);
    dp_runtime_unref(atomic_exchange(&w->pending_rt, NULL));
    dp_runtime_unref(w->rt);
    if (w->evfd != -1) {
        close(w->evfd);
    }
    if (w->loop.epfd != -1) {
        dp_loop_fini(&w->loop);
    }
    dp_pipe_pool_fini(&w->pipes);
    dp_pool_fini(&w->buf_pool);
    dp_pool_fini(&w->pre_pool);
    dp_pool_fini(&w->name_pool);
    dp_pool_fini(&w->sess_pool);
    free(w->listeners);
    free(w->peek);
    free(w);
}
