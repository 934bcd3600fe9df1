/* The active health checker (see dp_health.h): a thread with a poll(2) loop over its
 * probes in flight. Off the hot path: workers never wait on it; they read the state it
 * leaves in the balancers' peers. */
#include "dp_health.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dp_balancer.h"
#include "dp_ctx.h"
#include "dp_runtime.h"
#include "dp_sync.h"
#include "dp_tls.h"
#include "dp_xprt.h"
#include "dp_xprt_tls.h"
#include "st_addr.h"
#include "st_entity.h"
#include "st_err.h"
#include "st_log.h"
#include "st_util.h"

/* probes in flight at most, all upstreams together (each upstream also keeps to its
 * active.concurrency) */
#define PROBES_MAX 256
/* how often the thread looks for peers due, at the longest */
#define TICK_MS 100
/* the sync client is told of health changes at most this often */
#define TELL_MIN_MS 1000
/* the payload probe's reply is read up to this much, looking for tcp_expect */
#define EXPECT_MAX 8192

enum probe_state { P_CONNECT = 0, P_HANDSHAKE, P_SEND, P_EXPECT };

struct probe {
    struct dp_balancer *b; /* a reference */
    int peer;
    struct dp_sock k;
    enum probe_state st;
    int64_t deadline;
    size_t sent, got;
    char buf[EXPECT_MAX + 1];
};

struct dp_health {
    struct dp_ctx *ctx;
    struct dp_sync *sync; /* told of health changes (dp_sync_poke) */
    uint64_t epoch_told;  /* ctx->health_epoch when it was last told */
    int64_t told_ms;      /* st_mono_ms() then */
    pthread_t thread;
    atomic_bool stop;
    struct probe *probes[PROBES_MAX];
    size_t n;
    struct ssl_ctx_st *tls[2]; /* probe contexts: [0] without, [1] with verification */
};

/* ---------------------------------------------------------------- outcomes */

static const char *const probe_names[] = {"tcp", "tls", "payload"};

static void
probe_free(struct dp_health *h, size_t idx)
{
    struct probe *p = h->probes[idx];

    p->k.xprt->close(&p->k);
    dp_balancer_unref(p->b);
    free(p);
    h->probes[idx] = h->probes[--h->n];
}

/* Reports the probe's outcome (Kong: a connect timeout is a timeout, anything else that
 * fails a tcp_failure, a failed handshake too) and ends it. */
static void
probe_done(struct dp_health *h, size_t idx, enum dp_health_event ev, const char *why)
{
    struct probe *p = h->probes[idx];
    const char *target = dp_balancer_target(p->b, p->peer);
    char addr[64];
    int r = dp_balancer_report(p->b, p->peer, ev, true);

    st_addr_format(dp_balancer_addr(p->b, p->peer), addr, sizeof(addr));
    if (r != 0) {
        atomic_fetch_add_explicit(&h->ctx->health_epoch, 1, memory_order_relaxed);
        st_log(ST_LOG_WARN, 0,
               "health check: target %s (%s) of upstream '%s' is now %s (active %s probe: %s)",
               target, addr, dp_balancer_name(p->b), r > 0 ? "healthy" : "unhealthy",
               probe_names[dp_balancer_hc(p->b)->probe], why);
    } else {
        st_log(ST_LOG_DEBUG, 0, "health check: target %s (%s) of upstream '%s': %s", target, addr,
               dp_balancer_name(p->b), why);
    }
    probe_free(h, idx);
}

/* ---------------------------------------------------------------- a probe's steps */

/* The probe context, made on first use (verify: the system's CA store). */
static struct ssl_ctx_st *
tls_ctx(struct dp_health *h, bool verify)
{
    struct st_service svc = {.tls_verify = verify ? 1 : 0, .tls_verify_depth = -1};
    struct st_err err = {0};

    if (h->tls[verify] == NULL && dp_tls_upstream_ctx_new(&svc, &h->tls[verify], &err) != 0) {
        st_log(ST_LOG_ERR, 0, "health check: no TLS context: %s", err.msg);
        h->tls[verify] = NULL;
    }
    return h->tls[verify];
}

/* After the connect: the handshake, the payload, or done. */
static int
probe_connected(struct dp_health *h, struct probe *p, const char **why)
{
    const struct dp_hc *hc = dp_balancer_hc(p->b);

    if (hc->probe == DP_PROBE_TLS) {
        struct ssl_ctx_st *ctx = tls_ctx(h, hc->https_verify);
        const char *name = hc->https_sni != NULL ? hc->https_sni : dp_balancer_sni(p->b, p->peer);

        if (ctx == NULL || dp_xprt_tls_connect(&p->k, ctx, name) != 0) {
            *why = "cannot start TLS";
            return -1;
        }
        p->k.rd_ready = p->k.wr_ready = true;
        p->st = P_HANDSHAKE;
        return 0;
    }
    p->st = P_SEND;
    return hc->probe == DP_PROBE_PAYLOAD ? 0 : 1;
}

/* Moves p on as far as its socket allows: 1 succeeded, 0 waiting, -1 failed (*why). */
static int
probe_step(struct dp_health *h, struct probe *p, const char **why)
{
    static _Thread_local char reason[160];
    const struct dp_hc *hc = dp_balancer_hc(p->b);
    int rc;

    for (;;) {
        switch (p->st) {
        case P_CONNECT: {
            int err = 0;
            socklen_t len = sizeof(err);

            if (!p->k.wr_ready && !p->k.err) {
                return 0;
            }
            if (getsockopt(p->k.fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1) {
                err = errno;
            }
            if (err != 0 || p->k.err) {
                *why = st_strerror(err != 0 ? err : ECONNREFUSED);
                return -1;
            }
            rc = probe_connected(h, p, why);
            if (rc != 0) {
                return rc;
            }
            break;
        }
        case P_HANDSHAKE: {
            enum dp_verdict v = p->k.xprt->handshake(&p->k, reason, sizeof(reason));

            if (v == DP_AGAIN) {
                return 0;
            }
            if (v != DP_NEXT) {
                *why = reason;
                return -1;
            }
            if (hc->tcp_send == NULL && hc->tcp_expect == NULL) {
                *why = "handshake done";
                return 1;
            }
            p->st = P_SEND;
            break;
        }
        case P_SEND: {
            size_t len = hc->tcp_send != NULL ? strlen(hc->tcp_send) : 0;
            ssize_t n;

            if (p->sent < len) {
                n = p->k.xprt->send(&p->k, hc->tcp_send + p->sent, len - p->sent);
                if (n == -EAGAIN) {
                    p->k.wr_ready = false;
                    return 0;
                }
                if (n < 0) {
                    *why = st_strerror((int)-n);
                    return -1;
                }
                p->sent += (size_t)n;
                break;
            }
            if (hc->tcp_expect == NULL) {
                *why = "sent";
                return 1;
            }
            p->st = P_EXPECT;
            break;
        }
        case P_EXPECT: {
            ssize_t n = p->k.xprt->recv(&p->k, p->buf + p->got, EXPECT_MAX - p->got);

            if (n == -EAGAIN) {
                p->k.rd_ready = false;
                return 0;
            }
            if (n <= 0) {
                *why = n == 0 ? "closed before the expected reply" : st_strerror((int)-n);
                return -1;
            }
            p->got += (size_t)n;
            if (memmem(p->buf, p->got, hc->tcp_expect, strlen(hc->tcp_expect)) != NULL) {
                *why = "expected reply";
                return 1;
            }
            if (p->got == EXPECT_MAX) {
                *why = "no expected reply in the first 8192 bytes";
                return -1;
            }
            break;
        }
        }
    }
}

/* Opens a probe of peer i of b. */
static void
probe_start(struct dp_health *h, struct dp_balancer *b, int i, int64_t now)
{
    const struct sockaddr *sa = dp_balancer_addr(b, i);
    socklen_t len =
        sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct probe *p;
    const char *why = "connected";
    int rc;

    if (fd == -1) {
        st_log(ST_LOG_WARN, errno, "health check: cannot open a socket");
        return;
    }
    p = st_xcalloc(1, sizeof(*p));
    p->b = dp_balancer_ref(b);
    p->peer = i;
    dp_xprt_raw_init(&p->k, fd);
    p->deadline = now + dp_balancer_hc(b)->timeout_ms;
    h->probes[h->n++] = p;
    if (connect(fd, sa, len) == 0) {
        p->k.wr_ready = true;
    } else if (errno != EINPROGRESS) {
        probe_done(h, h->n - 1, DP_HEALTH_TCP_FAILURE, st_strerror(errno));
        return;
    }
    rc = probe_step(h, p, &why);
    if (rc != 0) {
        probe_done(h, h->n - 1, rc > 0 ? DP_HEALTH_SUCCESS : DP_HEALTH_TCP_FAILURE, why);
    }
}

/* ---------------------------------------------------------------- the schedule */

static size_t
in_flight(const struct dp_health *h, const struct dp_balancer *b)
{
    size_t n = 0;

    for (size_t k = 0; k < h->n; k++) {
        n += h->probes[k]->b == b;
    }
    return n;
}

static bool
probing(const struct dp_health *h, const struct dp_balancer *b, int i)
{
    for (size_t k = 0; k < h->n; k++) {
        if (h->probes[k]->b == b && h->probes[k]->peer == i) {
            return true;
        }
    }
    return false;
}

static uint64_t
rnd(void)
{
    static _Thread_local uint64_t s = 0x2545f4914f6cdd1dull;

    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
}

/* Up to a tenth of the interval either way, so peers drift apart instead of being
 * probed in step. */
static int64_t
jitter(int64_t interval)
{
    return interval >= 10 ? (int64_t)(rnd() % (uint64_t)(interval / 5 + 1)) - interval / 10 : 0;
}

/* Starts the probes that are due: a peer is probed every healthy.interval while
 * healthy, every unhealthy.interval while not (0: not probed in that state). */
static void
schedule(struct dp_health *h, struct dp_runtime *rt, int64_t now)
{
    struct dp_balancer *const *bals;
    size_t nb = dp_runtime_balancers(rt, &bals);

    for (size_t u = 0; u < nb && h->n < PROBES_MAX; u++) {
        struct dp_balancer *b = bals[u];
        const struct dp_hc *hc = dp_balancer_hc(b);
        size_t busy;

        if (hc->healthy_interval_ms == 0 && hc->unhealthy_interval_ms == 0) {
            continue;
        }
        busy = in_flight(h, b);
        for (size_t i = 0; i < dp_balancer_size(b) && h->n < PROBES_MAX; i++) {
            int64_t interval = dp_balancer_healthy(b, (int)i) ? hc->healthy_interval_ms
                                                              : hc->unhealthy_interval_ms;
            int64_t *due = dp_balancer_probe_due(b, (int)i);

            if (interval == 0 || dp_balancer_weight(b, (int)i) == 0) {
                continue;
            }
            if (*due == 0) {
                /* first sight: somewhere in the first interval */
                *due = now + (int64_t)(rnd() % (uint64_t)interval);
            }
            if (now < *due || busy >= hc->concurrency || probing(h, b, (int)i)) {
                continue;
            }
            *due = now + interval + jitter(interval);
            probe_start(h, b, (int)i, now);
            busy++;
        }
    }
}

/* ---------------------------------------------------------------- the thread */

/* A change of health goes to the CP now, not at the next long poll's end: at most one
 * report a second (a flapping target does not flood the CP), the changes of that second
 * in one. */
static void
tell_sync(struct dp_health *h, int64_t now)
{
    uint64_t e = atomic_load_explicit(&h->ctx->health_epoch, memory_order_relaxed);

    if (e != h->epoch_told && h->sync != NULL && now - h->told_ms >= TELL_MIN_MS) {
        h->epoch_told = e;
        h->told_ms = now;
        dp_sync_poke(h->sync);
    }
}

static short
want(const struct probe *p)
{
    short ev = 0;

    if (p->st == P_CONNECT) {
        return POLLOUT;
    }
    if (!p->k.rd_ready) {
        ev |= POLLIN;
    }
    if (!p->k.wr_ready) {
        ev |= POLLOUT;
    }
    return ev != 0 ? ev : (short)(POLLIN | POLLOUT);
}

static void *
health_main(void *arg)
{
    struct dp_health *h = arg;
    struct pollfd fds[PROBES_MAX];

    while (!atomic_load(&h->stop)) {
        int64_t now = st_mono_ms();
        struct dp_runtime *rt;
        int wait = TICK_MS;

        pthread_mutex_lock(&h->ctx->lock);
        rt = h->ctx->rt != NULL ? dp_runtime_ref(h->ctx->rt) : NULL;
        pthread_mutex_unlock(&h->ctx->lock);
        if (rt != NULL) {
            schedule(h, rt, now);
            dp_runtime_unref(rt);
        }
        for (size_t k = 0; k < h->n; k++) {
            fds[k] = (struct pollfd){.fd = h->probes[k]->k.fd, .events = want(h->probes[k])};
            if (h->probes[k]->deadline - now < wait) {
                wait = (int)(h->probes[k]->deadline > now ? h->probes[k]->deadline - now : 0);
            }
        }
        tell_sync(h, now);
        if (poll(fds, h->n, wait) < 0 && errno != EINTR) {
            st_log(ST_LOG_ERR, errno, "health check: poll");
        }
        now = st_mono_ms();
        for (size_t k = h->n; k-- > 0;) {
            struct probe *p = h->probes[k];
            short re = fds[k].revents;
            const char *why = "";
            int rc;

            if (re & (POLLIN | POLLHUP | POLLERR)) {
                p->k.rd_ready = true;
            }
            if (re & (POLLOUT | POLLERR)) {
                p->k.wr_ready = true;
            }
            p->k.err = p->k.err || (re & POLLERR) != 0;
            rc = re != 0 ? probe_step(h, p, &why) : 0;
            if (rc != 0) {
                probe_done(h, k, rc > 0 ? DP_HEALTH_SUCCESS : DP_HEALTH_TCP_FAILURE, why);
            } else if (now >= p->deadline) {
                probe_done(h, k, DP_HEALTH_TIMEOUT, "timed out");
            }
        }
    }
    while (h->n > 0) {
        probe_free(h, h->n - 1);
    }
    return NULL;
}

struct dp_health *
dp_health_start(struct dp_ctx *ctx, struct dp_sync *sync, struct st_err *err)
{
    struct dp_health *h = st_xcalloc(1, sizeof(*h));
    int rc;

    h->ctx = ctx;
    h->sync = sync;
    atomic_init(&h->stop, false);
    rc = pthread_create(&h->thread, NULL, health_main, h);
    if (rc != 0) {
        free(h);
        st_err_set(err, -rc, NULL, "cannot start the health checker: %s", strerror(rc));
        return NULL;
    }
    return h;
}

void
dp_health_stop(struct dp_health *h)
{
    if (h == NULL) {
        return;
    }
    atomic_store(&h->stop, true);
    pthread_join(h->thread, NULL);
    dp_tls_ctx_unref(h->tls[0]);
    dp_tls_ctx_unref(h->tls[1]);
    free(h);
}
