/* Sessions: the one path from accept to the log line, as a state machine that only
 * dp_session_step() advances (nginx's phase engine; HAProxy's process_stream()).
 *
 *   PREREAD -> ROUTE -> [TLS] -> CONNECT -> [UPSTREAM_TLS] -> PROXY -> LOG -> free
 *
 * Each state is one phase function, called with what woke the session; it returns a
 * verdict and the next state (struct dp_step), and dp_session_step() alone writes
 * s->state and s->action, so that every transition is in one place. A phase that ends
 * the session records the status and reason of its log line and goes to LOG.
 *
 * What wakes each state (both sockets are registered edge-triggered for everything
 * from the start, so I/O on either wakes any state; a state looks only at the
 * readiness it needs):
 *
 *   state         entered                      woken by, then
 *   PREREAD       at accept                    client readable: peek and parse the
 *                                              ClientHello (ssl listeners; plain ones go
 *                                              straight on); timer: preread_timeout
 *   ROUTE         after PREREAD                nothing: runs at once (sources,
 *                                              destinations, SNI)
 *   TLS           tls routes                   client readable/writable: the handshake,
 *                                              on the certificate chosen by SNI; timer:
 *                                              preread_timeout
 *   CONNECT       after ROUTE or TLS           upstream writable or in error: connected,
 *                                              or the next attempt; timer:
 *                                              connect_timeout, then the next attempt
 *   UPSTREAM_TLS  tls services, once connected upstream readable/writable: the handshake;
 *                                              timer: connect_timeout
 *   PROXY         after CONNECT or             either socket: the two dp_fwd forwarders;
 *                 UPSTREAM_TLS                 resume: the turn after a forwarder used
 *                                              its byte budget; timer: read_timeout,
 *                                              write_timeout
 *   LOG           from any state (the end;     nothing: the session is freed, and its
 *                 shutdown, a failed accept)   line logged, at the end of the loop turn
 *
 * (PLUGINS will sit between ROUTE and TLS.) tls_passthrough routes skip both
 * handshakes: the peeked ClientHello is still in the socket and reaches the upstream
 * untouched.
 *
 * A session is never freed inside its own callback: entering LOG defers the free to the
 * end of the loop turn, which also unqueues it. */
#include "dp_session.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "dp_balancer.h"
#include "dp_fwd.h"
#include "dp_log.h"
#include "dp_loop.h"
#include "dp_plugins.h"
#include "dp_preread.h"
#include "dp_router.h"
#include "dp_runtime.h"
#include "dp_verdict.h"
#include "dp_worker.h"
#include "dp_xprt.h"
#include "dp_xprt_tls.h"
#include "st_addr.h"
#include "st_conf.h"
#include "st_entity.h"
#include "st_err.h"
#include "st_log.h"
#include "st_util.h"

/* The states, in the order a session goes through them (CONVENTIONS §6). */
enum dp_sess_state {
    DP_SESS_PREREAD = 0,
    DP_SESS_ROUTE,
    DP_SESS_TLS,
    DP_SESS_CONNECT,
    DP_SESS_UPSTREAM_TLS,
    DP_SESS_PROXY,
    DP_SESS_LOG,
};

/* What woke the session, for the phase of its state. */
enum dp_sess_event {
    DP_SESS_EV_ENTER = 0, /* the state was just entered (the first state: accepted) */
    DP_SESS_EV_IO,        /* readiness on the client or the upstream socket (s->c, s->u) */
    DP_SESS_EV_TIMER,     /* the session timer: the state's deadline or a proxy timeout */
    DP_SESS_EV_RESUME,    /* the turn after a forwarder stopped on its byte budget */
    DP_SESS_EV_ABORT,     /* closed from outside its phases (shutdown, a failed accept) */
};

/* A phase's answer: DP_AGAIN waits in the same state for the next event; DP_NEXT goes
 * on to `next`; DP_DONE, DP_DECLINED and DP_ERROR end the session (next is LOG). */
struct dp_step {
    enum dp_verdict v;
    enum dp_sess_state next;
};

/* s->action in each state, for "... while <action>" (nginx's log->action). */
static const char *const session_actions[] = {
    [DP_SESS_PREREAD] = "prereading",
    [DP_SESS_ROUTE] = "routing",
    [DP_SESS_TLS] = "TLS handshaking with client",
    [DP_SESS_CONNECT] = "connecting to upstream",
    [DP_SESS_UPSTREAM_TLS] = "TLS handshaking with upstream",
    [DP_SESS_PROXY] = "proxying",
    [DP_SESS_LOG] = "closing",
};

#define DP_SESS_EVENTS (EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET)

/* SNIs up to this long live in the session; longer ones in a name from the worker's
 * pool. Most names are short, and an idle TLS session should stay small. */
#define DP_SNI_INLINE 48

/* Route names up to this long live in the session; longer ones in a name from the
 * worker's pool (cut to DP_PREREAD_SNI_MAX bytes: the log line is shorter anyway). */
#define DP_ROUTE_NAME_INLINE 48
#define DP_ROUTE_ID_MAX      40 /* a UUID and its NUL */

/* An IPv4 or IPv6 address: what sessions keep (not 128-byte sockaddr_storage). */
union dp_addr {
    struct sockaddr sa;
    struct sockaddr_in in;
    struct sockaddr_in6 in6;
};

struct dp_session {
    struct dp_worker *w;
    struct dp_listener *li;
    enum dp_sess_state state; /* written by dp_session_step() only */
    const char *action;       /* for logs: "... while <action>"; idem */
    /* The runtime the session was accepted with, and the route and service in it: held
     * only until proxying starts (routing, TLS setup, connect attempts, all bounded by
     * timeouts), then dropped so that a long connection does not keep an old runtime
     * alive across configuration changes. What the rest of the session needs is copied
     * below at routing. */
    struct dp_runtime *rt;
    const struct st_route *route;
    const struct dp_service_ep *ep;
    bool routed;
    char route_id[DP_ROUTE_ID_MAX];
    const char *route_name; /* route_name_inline or route_name_long; NULL: none */
    char *route_name_long;  /* from the worker's name_pool when the name is long */
    char route_name_inline[DP_ROUTE_NAME_INLINE];
    uint32_t read_timeout, write_timeout; /* the service's, ms (0: none) */
    /* a balanced service: the upstream's balancer (its own reference, kept to the end),
     * the peer of the current attempt or the connection (-1: none) and those tried */
    struct dp_balancer *bal;
    int bal_peer;
    struct dp_balancer_tried tried;
    int64_t attempt_ms;
    union dp_addr client, local, peer;
    bool has_peer;

    struct dp_io cio, uio;
    struct dp_sock c, u;
    struct dp_fwd fwd[2]; /* [0] client -> upstream, [1] upstream -> client */

    struct dp_preread *pre; /* ssl listeners, while prereading (worker's pre_pool) */
    const char *sni;        /* sni_inline or sni_long; NULL: none (or a plain listener) */
    char *sni_long;         /* from the worker's name_pool when the name is long */
    char sni_inline[DP_SNI_INLINE];
    const char *tls; /* for the log: "-", "passthrough", or the version terminated */
    bool resumed;

    unsigned attempts;
    int64_t start_ms, last_io;
    int64_t deadline; /* of the phase waiting: preread, a handshake, a connect attempt */
    struct dp_timer timer;
    struct dp_deferred defer;  /* session_free at the end of the turn it closed in */
    struct dp_deferred resume; /* session_resume next turn, after a forwarder's budget */

    int status;         /* for the log line, set when the session ends */
    const char *reason; /* idem */
    bool quiet;         /* no session line (the no-route line says it all) */
    struct dp_session *prev, *next;
};

static void dp_session_step(struct dp_session *s, enum dp_sess_event ev);

size_t
dp_session_size(void)
{
    return sizeof(struct dp_session);
}

/* ---------------------------------------------------------------- logging */

static const char *
route_name(const struct dp_session *s)
{
    if (!s->routed) {
        return "-";
    }
    return s->route_name ? s->route_name : s->route_id;
}

static void dp_sess_log(struct dp_session *s, enum st_log_level level, int err, const char *fmt,
                        ...) __attribute__((format(printf, 4, 5)));

/* Logs fmt with "while <action>, client: A, listener: B, route: R, upstream: U". */
static void
dp_sess_log(struct dp_session *s, enum st_log_level level, int err, const char *fmt, ...)
{
    char msg[256], client[64], upstream[64] = "-";
    va_list ap;

    if (!st_log_enabled(level)) {
        return;
    }
    va_start(ap, fmt);
    (void)vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    st_addr_format(&s->client.sa, client, sizeof(client));
    if (s->has_peer) {
        st_addr_format(&s->peer.sa, upstream, sizeof(upstream));
    }
    dp_log(s->w->log, level, 0,
           "%s%s%s while %s, client: %s, listener: %s, route: %s, upstream: %s", msg,
           err ? ": " : "", err ? st_strerror(err) : "", s->action, client, s->li->conf->text,
           route_name(s), upstream);
}

static void
session_log_end(struct dp_session *s)
{
    char client[64], upstream[64] = "-";
    int64_t ms = st_mono_ms() - s->start_ms;

    if (!st_log_enabled(ST_LOG_INFO)) {
        return;
    }
    st_addr_format(&s->client.sa, client, sizeof(client));
    if (s->has_peer) {
        st_addr_format(&s->peer.sa, upstream, sizeof(upstream));
    }
    dp_log(s->w->log, ST_LOG_INFO, 0,
           "session: client %s, listener %s, route %s (%s), upstream %s, status %d, "
           "bytes_received %llu, bytes_sent %llu, duration %lld.%03llds, end %s, sni %s, "
           "tls %s%s",
           client, s->li->conf->text, s->routed ? s->route_id : "-",
           s->route_name ? s->route_name : "-", upstream, s->status,
           (unsigned long long)s->fwd[0].bytes, (unsigned long long)s->fwd[1].bytes,
           (long long)(ms / 1000), (long long)(ms % 1000), s->reason, s->sni ? s->sni : "-", s->tls,
           s->resumed ? " resumed" : "");
}

static void
log_no_route(struct dp_session *s)
{
    char client[64], dest[64];

    if (!st_log_enabled(ST_LOG_INFO)) {
        return;
    }
    st_addr_format(&s->client.sa, client, sizeof(client));
    st_addr_format(&s->local.sa, dest, sizeof(dest));
    dp_log(s->w->log, ST_LOG_INFO, 0,
           "no route matched: listener %s, client %s, destination %s, sni %s", s->li->conf->text,
           client, dest, s->sni ? s->sni : "-");
}

/* ---------------------------------------------------------------- close and free */

/* A client closed before proxying (no route, no upstream) may have sent bytes already;
 * closing over unread bytes makes the kernel send a reset, so read what is there
 * first and let the client see a plain FIN. */
static void
client_discard_input(struct dp_sock *k)
{
    uint8_t junk[4096];

    for (int i = 0; i < 16; i++) {
        if (recv(k->fd, junk, sizeof(junk), MSG_DONTWAIT) <= 0) {
            return;
        }
    }
}

static struct dp_fwd_env
session_env(struct dp_session *s)
{
    struct dp_fwd_env env = {
        .pipes = &s->w->pipes,
        .bufs = &s->w->buf_pool,
        .cnt = &s->w->cnt,
        .now = s->w->loop.now,
        .budget = DP_FWD_BUDGET,
        .no_splice = s->w->ctx->no_splice,
    };

    return env;
}

static void
session_free(struct dp_loop *l, void *arg)
{
    struct dp_session *s = arg;
    struct dp_worker *w = s->w;
    struct dp_fwd_env env = session_env(s);

    (void)l;
    if (!s->quiet) {
        session_log_end(s);
    }
    dp_fwd_fini(&s->fwd[0], &env);
    dp_fwd_fini(&s->fwd[1], &env);
    if (s->fwd[0].src == NULL && s->c.fd != -1 && s->c.xprt == &dp_xprt_raw) {
        client_discard_input(&s->c);
    }
    dp_pool_put(&w->pre_pool, s->pre);
    dp_pool_put(&w->name_pool, s->sni_long);
    dp_pool_put(&w->name_pool, s->route_name_long);
    s->c.xprt->close(&s->c);
    s->u.xprt->close(&s->u);
    dp_timer_del(&w->loop, &s->timer);
    dp_loop_cancel(&w->loop, &s->resume);
    dp_runtime_unref(s->rt);
    if (s->bal != NULL) {
        if (s->bal_peer >= 0) {
            dp_balancer_release(s->bal, s->bal_peer);
        }
        dp_balancer_unref(s->bal);
    }
    if (s->prev != NULL) {
        s->prev->next = s->next;
    } else {
        w->sessions = s->next;
    }
    if (s->next != NULL) {
        s->next->prev = s->prev;
    }
    atomic_fetch_sub_explicit(&w->cnt.active, 1, memory_order_relaxed);
    dp_pool_put(&w->sess_pool, s);
    dp_worker_session_release(w); /* its stream_max_sessions slot, taken at accept */
}

static bool
session_is_closed(const struct dp_session *s)
{
    return s->state == DP_SESS_LOG;
}

/* Closes s from outside its phases (worker shutdown, an accept that failed): the step
 * function takes it to LOG. A session already closed keeps its first reason. */
static void
session_abort(struct dp_session *s, int status, const char *reason)
{
    if (session_is_closed(s)) {
        return;
    }
    s->status = status;
    s->reason = reason;
    dp_session_step(s, DP_SESS_EV_ABORT);
}

void
dp_session_abort_all(struct dp_worker *w)
{
    for (struct dp_session *s = w->sessions; s != NULL; s = s->next) {
        session_abort(s, 200, "shutdown");
    }
}

/* ---------------------------------------------------------------- phase helpers */

static struct dp_step
step_wait(const struct dp_session *s)
{
    return (struct dp_step){DP_AGAIN, s->state};
}

static struct dp_step
step_to(enum dp_sess_state next)
{
    return (struct dp_step){DP_NEXT, next};
}

/* Records why the session ends (its log line's status and end). Returns -1. */
static int
session_fail(struct dp_session *s, int status, const char *reason)
{
    s->status = status;
    s->reason = reason;
    return -1;
}

/* The session ends with verdict v (DP_DONE, DP_DECLINED or DP_ERROR). */
static struct dp_step
step_end(struct dp_session *s, enum dp_verdict v, int status, const char *reason)
{
    (void)session_fail(s, status, reason);
    return (struct dp_step){v, DP_SESS_LOG};
}

/* The session ends for the reason session_fail() recorded. */
static struct dp_step
step_failed(void)
{
    return (struct dp_step){DP_ERROR, DP_SESS_LOG};
}

static bool
listener_is_ssl(const struct dp_session *s)
{
    return (s->li->conf->flags & ST_LISTEN_F_SSL) != 0;
}

/* Arms the session timer for a phase deadline `ms` from now. Returns 0, or -1 with the
 * session's end recorded (no memory for the timer heap). */
static int
session_arm_deadline(struct dp_session *s, int64_t ms)
{
    s->deadline = s->w->loop.now + ms;
    if (dp_timer_set(&s->w->loop, &s->timer, s->deadline) < 0) {
        return session_fail(s, 500, "out of memory");
    }
    return 0;
}

/* Arms the timer for the earliest proxy deadline. Lazy: a later deadline than the one
 * armed is left for the callback to find, so a read does not touch the heap. Returns 0,
 * or -1 with the session's end recorded. */
static int
session_arm_proxy_timer(struct dp_session *s)
{
    int64_t next = INT64_MAX;

    if (s->read_timeout > 0) {
        next = s->last_io + s->read_timeout;
    }
    for (int i = 0; i < 2; i++) {
        if (s->write_timeout > 0 && s->fwd[i].blocked_since != 0 &&
            s->fwd[i].blocked_since + s->write_timeout < next) {
            next = s->fwd[i].blocked_since + s->write_timeout;
        }
    }
    if (next == INT64_MAX) {
        dp_timer_del(&s->w->loop, &s->timer);
        return 0;
    }
    if (s->timer.idx == 0 || next < s->timer.expire) {
        if (dp_timer_set(&s->w->loop, &s->timer, next) < 0) {
            return session_fail(s, 500, "out of memory");
        }
    }
    return 0;
}

static void
addr_copy(union dp_addr *dst, const struct sockaddr *src)
{
    memcpy(dst, src,
           src->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
}

/* Copies name into the session: into in (size bytes) when it fits, else into a name
 * from the worker's pool (*out_long), cut to DP_PREREAD_SNI_MAX bytes (the log line is
 * shorter anyway; a ClientHello's SNI is never longer). NULL: no memory. */
static const char *
session_keep_name(struct dp_session *s, const char *name, char *in, size_t size, char **out_long)
{
    size_t n = strlen(name);
    char *dst = in;

    if (n >= size) {
        dst = *out_long = dp_pool_get(&s->w->name_pool);
        if (dst == NULL) {
            return NULL;
        }
        n = n > DP_PREREAD_SNI_MAX ? DP_PREREAD_SNI_MAX : n;
    }
    memcpy(dst, name, n);
    dst[n] = '\0';
    return dst;
}

/* Copies what the session needs of its route and service once the runtime is gone:
 * the names the log lines print and the proxy timeouts. Returns 0 or -1 (no memory
 * for a long name). */
static int
session_keep_route(struct dp_session *s)
{
    const char *id = s->route->id;
    const char *name = s->route->name;
    size_t n = strlen(id);

    if (n >= sizeof(s->route_id)) {
        n = sizeof(s->route_id) - 1;
    }
    memcpy(s->route_id, id, n);
    s->route_id[n] = '\0';
    s->routed = true;
    s->read_timeout = s->ep->svc->read_timeout;
    s->write_timeout = s->ep->svc->write_timeout;
    if (name != NULL && (s->route_name = session_keep_name(s, name, s->route_name_inline,
                                                           sizeof(s->route_name_inline),
                                                           &s->route_name_long)) == NULL) {
        return -1;
    }
    return 0;
}

/* Proxying starts: the runtime is no longer needed (session_keep_route copied the
 * rest, and the SSLs hold their own references to their contexts). */
static void
session_drop_runtime(struct dp_session *s)
{
    dp_runtime_unref(s->rt);
    s->rt = NULL;
    s->route = NULL;
    s->ep = NULL;
}

/* Opens and connects one upstream socket. Returns 0, 1 when connected at once, or a
 * negative errno (the attempt failed; a retry may follow). */
static int
upstream_open(struct dp_session *s, const union dp_addr *addr)
{
    int one = 1;
    socklen_t len =
        addr->sa.sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    int fd = socket(addr->sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int rc;

    if (fd == -1) {
        return -errno;
    }
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    s->u.fd = fd;
    s->uio.fd = fd;
    /* connect first, register after: epoll then reports only this connection's state,
     * so EPOLLOUT without EPOLLERR means connected (no getsockopt, no getpeername). */
    rc = connect(fd, &addr->sa, len) == 0 ? 1 : -errno;
    if (rc == -EINPROGRESS) {
        rc = 0;
    }
    if (rc >= 0) {
        int add = dp_loop_io_add(&s->w->loop, &s->uio, DP_SESS_EVENTS);

        if (add < 0) {
            return add;
        }
    }
    return rc;
}

/* ---------------------------------------------------------------- PREREAD */

/* ssl listeners: peeks what the client sent into the worker's buffer and parses the
 * ClientHello from its first byte (dp_preread's feeding contract). Nothing is read off
 * the socket: the same bytes go on to OpenSSL or, passed through, to the upstream. */
static struct dp_step
session_preread_peek(struct dp_session *s)
{
    uint8_t *buf = s->w->peek;
    const char *sni;
    enum dp_verdict v;
    ssize_t n;

    if (!s->c.rd_ready) {
        return step_wait(s);
    }
    do {
        n = recv(s->c.fd, buf, DP_PREREAD_BUF_MAX, MSG_PEEK);
    } while (n == -1 && errno == EINTR);
    if (n == -1 && errno == EAGAIN) {
        s->c.rd_ready = false;
        return step_wait(s);
    }
    if (n <= 0) {
        dp_sess_log(s, ST_LOG_INFO, n == 0 ? 0 : errno, "client closed before its ClientHello");
        return step_end(s, DP_ERROR, 400, n == 0 ? "client closed" : "client error");
    }
    v = dp_preread_feed(s->pre, buf, buf + n);
    switch (v) {
    case DP_AGAIN:
        if (s->c.hup) {
            dp_sess_log(s, ST_LOG_INFO, 0, "bad ClientHello: client closed after %zd bytes of it",
                        n);
            return step_end(s, DP_ERROR, 400, "bad client hello");
        }
        /* The peeked bytes stay queued: only new bytes (or the FIN) make a new edge. */
        s->c.rd_ready = false;
        return step_wait(s);
    case DP_NEXT:
        dp_timer_del(&s->w->loop, &s->timer);
        sni = dp_preread_sni(s->pre);
        if (sni != NULL && (s->sni = session_keep_name(s, sni, s->sni_inline, sizeof(s->sni_inline),
                                                       &s->sni_long)) == NULL) {
            dp_sess_log(s, ST_LOG_WARN, ENOMEM, "cannot keep the SNI");
            return step_end(s, DP_ERROR, 500, "out of memory");
        }
        dp_pool_put(&s->w->pre_pool, s->pre); /* the parser's work is done */
        s->pre = NULL;
        return step_to(DP_SESS_ROUTE);
    case DP_DECLINED:
        dp_sess_log(s, ST_LOG_INFO, 0, "client did not send a TLS ClientHello (%s)",
                    dp_preread_why(s->pre));
        break;
    default:
        dp_sess_log(s, ST_LOG_INFO, 0, "bad ClientHello: %s", dp_preread_why(s->pre));
        break;
    }
    return step_end(s, DP_ERROR, 400, "bad client hello");
}

static struct dp_step
session_preread(struct dp_session *s, enum dp_sess_event ev)
{
    if (!listener_is_ssl(s)) {
        return step_to(DP_SESS_ROUTE); /* plain listeners read nothing before routing */
    }
    if (ev == DP_SESS_EV_ENTER) {
        if (s->pre == NULL) {
            dp_log(s->w->log, ST_LOG_WARN, ENOMEM, "%s: cannot allocate a preread",
                   s->li->conf->text);
            return step_end(s, DP_ERROR, 500, "out of memory");
        }
        if (session_arm_deadline(s, s->w->ctx->conf->preread_timeout) < 0) {
            return step_failed();
        }
    } else if (ev == DP_SESS_EV_TIMER) {
        dp_sess_log(s, ST_LOG_INFO, 0, "preread timed out (%d ms)",
                    s->w->ctx->conf->preread_timeout);
        return step_end(s, DP_ERROR, 400, "preread timeout");
    }
    return session_preread_peek(s);
}

/* ---------------------------------------------------------------- ROUTE */

/* The plugins' preread, after routing (issue 18): the ip-restriction instance Kong's
 * precedence chose for the route among those whose protocols include the session's
 * (dp_plugins.h). Without any
 * plugin in the configuration this is one NULL check. Returns 0 (go on) or -1 with the
 * session's end recorded (Kong closes the connection; the log line has the status). */
static int
session_plugins(struct dp_session *s, bool tls_listener)
{
    const struct dp_ipr *ipr;
    unsigned proto;

    if (!dp_runtime_has_plugins(s->rt)) {
        return 0;
    }
    proto = !tls_listener                               ? ST_PROTO_TCP
            : (s->route->protocols & ST_PROTO_TLS) != 0 ? ST_PROTO_TLS
                                                        : ST_PROTO_TLS_PASSTHROUGH;
    ipr = dp_runtime_ipr(s->rt, s->route, proto);
    if (ipr == NULL || !dp_ipr_refuses(ipr, &s->client.sa)) {
        return 0;
    }
    dp_sess_log(s, ST_LOG_WARN, 0, "ip-restriction: %s",
                ipr->message != NULL ? ipr->message : "IP address not allowed");
    return session_fail(s, ipr->status, "ip-restriction");
}

static struct dp_step
session_route(struct dp_session *s, enum dp_sess_event ev)
{
    struct dp_router_key key = {
        .client = &s->client.sa,
        .local = &s->local.sa,
        .sni = s->sni,
        .tls = listener_is_ssl(s),
    };

    (void)ev; /* entered only: routing never waits */
    if (s->rt == NULL || dp_runtime_match(s->rt, &key, &s->route, &s->ep) != 0) {
        log_no_route(s);
        atomic_fetch_add_explicit(&s->w->cnt.no_route, 1, memory_order_relaxed);
        s->quiet = true;
        return step_end(s, DP_DECLINED, 500, "no route");
    }
    if (session_keep_route(s) < 0) {
        dp_sess_log(s, ST_LOG_WARN, ENOMEM, "cannot keep the route's name");
        return step_end(s, DP_ERROR, 500, "out of memory");
    }
    if (session_plugins(s, key.tls) < 0) {
        return step_failed();
    }
    if (s->ep->n_addrs == 0 && s->ep->bal == NULL) {
        dp_sess_log(s, ST_LOG_ERR, 0, "name resolution failed: service host '%s' has no address",
                    s->ep->svc->host);
        return step_end(s, DP_ERROR, 503, "name resolution failed");
    }
    if (s->ep->svc->protocol == ST_PROTO_TLS && s->ep->tls == NULL) {
        dp_sess_log(s, ST_LOG_ERR, 0, "service has no TLS context (see the configuration log)");
        return step_end(s, DP_ERROR, 502, "no upstream TLS");
    }
    if (!key.tls) {
        return step_to(DP_SESS_CONNECT);
    }
    if ((s->route->protocols & ST_PROTO_TLS) == 0) {
        s->tls = "passthrough";
        return step_to(DP_SESS_CONNECT);
    }
    return step_to(DP_SESS_TLS);
}

/* ---------------------------------------------------------------- TLS */

/* A tls route: TLS with the client, on the certificate chosen by SNI. Returns 0 or -1
 * with the session's end recorded. */
static int
session_tls_start(struct dp_session *s)
{
    struct ssl_ctx_st *ctx = dp_runtime_server_ctx(s->rt, s->sni);

    if (ctx == NULL || dp_xprt_tls_accept(&s->c, ctx) < 0) {
        dp_sess_log(s, ST_LOG_ERR, 0, "cannot start TLS (%s)",
                    ctx == NULL ? "no certificate" : "out of memory");
        return session_fail(s, 500, "TLS unavailable");
    }
    return session_arm_deadline(s, s->w->ctx->conf->preread_timeout);
}

/* The handshake on the client's socket, or the upstream's (up): a step that waits, ends
 * the session (a timeout or a failure, counted as TLS errors), or DP_NEXT when done. */
static struct dp_step
session_handshake(struct dp_session *s, bool up, enum dp_sess_event ev)
{
    struct dp_sock *k = up ? &s->u : &s->c;
    const char *peer = up ? "upstream" : "client";
    char why[160];
    enum dp_verdict v;

    if (ev == DP_SESS_EV_TIMER) {
        atomic_fetch_add_explicit(&s->w->cnt.tls_errors, 1, memory_order_relaxed);
        dp_sess_log(s, up ? ST_LOG_ERR : ST_LOG_INFO, 0,
                    "TLS handshake with %s timed out (%lld ms)", peer,
                    up ? (long long)s->ep->svc->connect_timeout
                       : (long long)s->w->ctx->conf->preread_timeout);
        return step_end(s, DP_ERROR, up ? 502 : 400,
                        up ? "upstream handshake timeout" : "handshake timeout");
    }
    v = k->xprt->handshake(k, why, sizeof(why));
    if (v == DP_AGAIN) {
        return step_wait(s);
    }
    if (v != DP_NEXT) {
        atomic_fetch_add_explicit(&s->w->cnt.tls_errors, 1, memory_order_relaxed);
        dp_sess_log(s, up ? ST_LOG_ERR : ST_LOG_INFO, 0, "TLS handshake with %s failed: %s", peer,
                    why);
        return step_end(s, DP_ERROR, up ? 502 : 400,
                        up ? "upstream handshake failed" : "handshake failed");
    }
    return (struct dp_step){DP_NEXT, s->state};
}

static struct dp_step
session_tls(struct dp_session *s, enum dp_sess_event ev)
{
    struct dp_step r;

    if (ev == DP_SESS_EV_ENTER && session_tls_start(s) < 0) {
        return step_failed();
    }
    r = session_handshake(s, false, ev);
    if (r.v != DP_NEXT) {
        return r;
    }
    dp_timer_del(&s->w->loop, &s->timer);
    s->tls = dp_xprt_tls_version(&s->c);
    s->resumed = dp_xprt_tls_is_resumed(&s->c);
    atomic_fetch_add_explicit(&s->w->cnt.tls_handshakes, 1, memory_order_relaxed);
    if (s->resumed) {
        atomic_fetch_add_explicit(&s->w->cnt.tls_resumed, 1, memory_order_relaxed);
    }
    return step_to(DP_SESS_CONNECT);
}

/* ---------------------------------------------------------------- CONNECT */

static int64_t
connect_timeout(const struct dp_session *s)
{
    return s->ep->svc->connect_timeout ? s->ep->svc->connect_timeout : 60000;
}

/* A balanced session's connect outcome, for its peer's passive health check (Kong's
 * consecutive counters, shared by every worker); a change of health is logged. */
static void
session_report(struct dp_session *s, enum dp_health_event ev)
{
    int r;

    if (s->bal == NULL || s->bal_peer < 0) {
        return;
    }
    r = dp_balancer_report(s->bal, s->bal_peer, ev, false);
    if (r != 0) {
        atomic_fetch_add_explicit(&s->w->ctx->health_epoch, 1, memory_order_relaxed);
        dp_sess_log(s, ST_LOG_WARN, 0, "target %s of upstream '%s' is now %s (passive check)",
                    dp_balancer_target(s->bal, s->bal_peer), dp_balancer_name(s->bal),
                    r > 0 ? "healthy" : "unhealthy");
    }
}

/* Where a connected session goes: TLS to the upstream for tls services, else proxying. */
static struct dp_step
session_connected(struct dp_session *s)
{
    if (s->bal != NULL) {
        session_report(s, DP_HEALTH_SUCCESS);
        dp_balancer_observe(s->bal, s->bal_peer,
                            (uint32_t)((s->w->loop.now - s->attempt_ms) * 1000 + 500));
    }
    return step_to(s->ep->svc->protocol == ST_PROTO_TLS ? DP_SESS_UPSTREAM_TLS : DP_SESS_PROXY);
}

/* The address of the next attempt: the service's addresses in turn, or a balanced
 * service's next peer (the previous attempt's peer given back). False when the
 * upstream has no peer that can take connections. */
static bool
session_next_peer(struct dp_session *s)
{
    const struct dp_service_ep *ep = s->ep;
    struct dp_balancer_key key = {
        .client = &s->client.sa,
        .sni = s->sni,
        .port = st_addr_port(&s->local.sa),
    };

    if (ep->bal == NULL) {
        addr_copy(&s->peer, (const struct sockaddr *)&ep->addrs[s->attempts % ep->n_addrs]);
        return true;
    }
    if (s->bal == NULL) {
        s->bal = dp_balancer_ref(ep->bal);
    }
    if (s->bal_peer >= 0) {
        dp_balancer_release(s->bal, s->bal_peer);
    }
    s->bal_peer = dp_balancer_pick(s->bal, &key, &s->tried);
    if (s->bal_peer < 0) {
        return false;
    }
    addr_copy(&s->peer, dp_balancer_addr(s->bal, s->bal_peer));
    s->attempt_ms = s->w->loop.now;
    return true;
}

/* The next connect attempt, over the service's addresses in turn (or its upstream's
 * peers), until one is under way or connected, or the retries are spent. */
static struct dp_step
session_connect_next(struct dp_session *s)
{
    const struct dp_service_ep *ep = s->ep;

    while (s->attempts <= ep->svc->retries) {
        int rc;

        if (!session_next_peer(s)) {
            dp_sess_log(s, ST_LOG_ERR, 0,
                        "failure to get a peer from the ring-balancer: upstream '%s' has no "
                        "target that can take connections (none, every weight 0, or not "
                        "healthy enough)",
                        dp_balancer_name(ep->bal));
            return step_end(s, DP_ERROR, 503, "no peer");
        }
        s->has_peer = true;
        s->attempts++;
        rc = upstream_open(s, &s->peer);
        if (rc == 1) {
            return session_connected(s);
        }
        if (rc == 0) {
            if (session_arm_deadline(s, connect_timeout(s)) < 0) {
                return step_failed();
            }
            return step_wait(s);
        }
        dp_sess_log(s, ST_LOG_INFO, rc, "connect() failed (attempt %u)", s->attempts);
        s->u.xprt->close(&s->u);
        if (rc != -EMFILE && rc != -ENFILE && rc != -ENOMEM) {
            session_report(s, DP_HEALTH_TCP_FAILURE);
        }
        if (rc == -EMFILE || rc == -ENFILE || rc == -ENOMEM) {
            break;
        }
    }
    dp_sess_log(s, ST_LOG_ERR, 0, "upstream unreachable after %u attempts", s->attempts);
    return step_end(s, DP_ERROR, 502, "connect failed");
}

/* An event during a connect attempt: EPOLLOUT without EPOLLERR means connected. */
static struct dp_step
session_connect_check(struct dp_session *s)
{
    socklen_t len = sizeof(int);
    int err = 0;

    if (!s->u.wr_ready && !s->u.err) {
        return step_wait(s);
    }
    if (!s->u.err) {
        dp_timer_del(&s->w->loop, &s->timer);
        return session_connected(s);
    }
    if (getsockopt(s->u.fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1) {
        err = errno;
    } else if (err == 0) {
        err = ECONNREFUSED; /* EPOLLERR, and the error already taken */
    }
    dp_sess_log(s, ST_LOG_INFO, err, "connect() failed (attempt %u)", s->attempts);
    s->u.xprt->close(&s->u);
    dp_timer_del(&s->w->loop, &s->timer);
    session_report(s, DP_HEALTH_TCP_FAILURE);
    return session_connect_next(s);
}

static struct dp_step
session_connect(struct dp_session *s, enum dp_sess_event ev)
{
    if (ev == DP_SESS_EV_ENTER) {
        return session_connect_next(s);
    }
    if (ev == DP_SESS_EV_TIMER) {
        dp_sess_log(s, ST_LOG_INFO, 0, "upstream timed out (%u ms)", s->ep->svc->connect_timeout);
        s->u.xprt->close(&s->u);
        session_report(s, DP_HEALTH_TIMEOUT);
        return session_connect_next(s);
    }
    return session_connect_check(s);
}

/* ---------------------------------------------------------------- UPSTREAM_TLS */

/* The upstream socket is connected and the service is tls. The SNI is the client's when
 * the route preserves the host, else the service host (none for an IP literal:
 * dp_tls_upstream_prepare). Returns 0 or -1 with the session's end recorded. */
static int
session_upstream_tls_start(struct dp_session *s)
{
    const char *host = s->bal != NULL ? dp_balancer_sni(s->bal, s->bal_peer) : s->ep->svc->host;
    const char *name = s->route->preserve_host && s->sni != NULL ? s->sni : host;

    if (dp_xprt_tls_connect(&s->u, s->ep->tls, name) < 0) {
        dp_sess_log(s, ST_LOG_ERR, ENOMEM, "cannot start TLS to the upstream");
        return session_fail(s, 500, "out of memory");
    }
    s->u.rd_ready = s->u.wr_ready = true;
    return session_arm_deadline(s, connect_timeout(s));
}

static struct dp_step
session_upstream_tls(struct dp_session *s, enum dp_sess_event ev)
{
    struct dp_step r;

    if (ev == DP_SESS_EV_ENTER && session_upstream_tls_start(s) < 0) {
        return step_failed();
    }
    r = session_handshake(s, true, ev);
    return r.v == DP_NEXT ? step_to(DP_SESS_PROXY) : r;
}

/* ---------------------------------------------------------------- PROXY */

static void
session_proxy_begin(struct dp_session *s)
{
    dp_timer_del(&s->w->loop, &s->timer);
    dp_fwd_init(&s->fwd[0], &s->c, &s->u);
    dp_fwd_init(&s->fwd[1], &s->u, &s->c);
    /* Read readiness seen so far is exact (both sockets were registered edge-triggered
     * before anything could arrive), so a plain side is not read for an EAGAIN; a TLS
     * side is read once (OpenSSL may hold bytes of the handshake's last read). */
    s->c.wr_ready = s->u.wr_ready = true;
    s->c.rd_ready = s->c.rd_ready || (s->c.xprt->flags & DP_XPRT_F_HOLDS_INPUT) != 0;
    s->u.rd_ready = s->u.rd_ready || (s->u.xprt->flags & DP_XPRT_F_HOLDS_INPUT) != 0;
    s->last_io = s->w->loop.now;
    session_drop_runtime(s);
}

static struct dp_step
session_proxy_timeouts(struct dp_session *s)
{
    int64_t now = s->w->loop.now;

    if (s->read_timeout > 0 && now - s->last_io >= s->read_timeout) {
        dp_sess_log(s, ST_LOG_INFO, 0, "read timed out (%u ms)", s->read_timeout);
        return step_end(s, DP_ERROR, 200, "read timeout");
    }
    for (int i = 0; i < 2; i++) {
        if (s->write_timeout > 0 && s->fwd[i].blocked_since != 0 &&
            now - s->fwd[i].blocked_since >= s->write_timeout) {
            dp_sess_log(s, ST_LOG_INFO, 0, "write to %s timed out (%u ms)",
                        i == 0 ? "upstream" : "client", s->write_timeout);
            return step_end(s, DP_ERROR, 200, "write timeout");
        }
    }
    return session_arm_proxy_timer(s) < 0 ? step_failed() : step_wait(s);
}

static const char *
proxy_error_reason(int rc)
{
    if (rc == -ECONNRESET || rc == -EPIPE) {
        return "reset";
    }
    if (rc == -ENOMEM) {
        return "out of memory";
    }
    return "error";
}

static struct dp_step
session_proxy(struct dp_session *s, enum dp_sess_event ev)
{
    struct dp_fwd_env env;
    unsigned flags = 0;

    if (ev == DP_SESS_EV_ENTER) {
        session_proxy_begin(s);
    } else if (ev == DP_SESS_EV_TIMER) {
        return session_proxy_timeouts(s);
    }
    env = session_env(s);
    for (int i = 0; i < 2; i++) {
        int rc = dp_fwd_run(&s->fwd[i], &env, &flags);

        if (rc < 0) {
            dp_sess_log(s, ST_LOG_INFO, rc, "forwarding %s failed",
                        i == 0 ? "client -> upstream" : "upstream -> client");
            /* e.g. an upstream that answered and reset: its answer may still go out */
            dp_fwd_flush(&s->fwd[1 - i], &env);
            return step_end(s, DP_ERROR, 200, proxy_error_reason(rc));
        }
    }
    if (flags & DP_FWD_F_PROGRESS) {
        s->last_io = env.now;
    }
    if (s->fwd[0].done && s->fwd[1].done) {
        return step_end(s, DP_DONE, 200, "closed");
    }
    if (flags & DP_FWD_F_MORE) {
        dp_loop_defer_next(&s->w->loop, &s->resume);
    }
    return session_arm_proxy_timer(s) < 0 ? step_failed() : step_wait(s);
}

/* ---------------------------------------------------------------- the step function */

static struct dp_step
session_phase(struct dp_session *s, enum dp_sess_event ev)
{
    switch (s->state) {
    case DP_SESS_PREREAD:
        return session_preread(s, ev);
    case DP_SESS_ROUTE:
        return session_route(s, ev);
    case DP_SESS_TLS:
        return session_tls(s, ev);
    case DP_SESS_CONNECT:
        return session_connect(s, ev);
    case DP_SESS_UPSTREAM_TLS:
        return session_upstream_tls(s, ev);
    case DP_SESS_PROXY:
        return session_proxy(s, ev);
    case DP_SESS_LOG:
        break;
    }
    return step_wait(s);
}

/* Advances the session as far as it can go without blocking, from the event that woke
 * it: the one place that changes s->state and s->action. Entering LOG stops the timer
 * and defers the free (and the log line) to the end of the loop turn. */
static void
dp_session_step(struct dp_session *s, enum dp_sess_event ev)
{
    struct dp_step r;

    if (session_is_closed(s)) {
        return; /* waiting for the end of the turn */
    }
    for (;;) {
        if (ev == DP_SESS_EV_ENTER) {
            s->action = session_actions[s->state];
        }
        r = ev == DP_SESS_EV_ABORT ? step_failed() : session_phase(s, ev);
        if (r.v == DP_AGAIN) {
            return;
        }
        ST_ASSERT(r.v == DP_NEXT || r.next == DP_SESS_LOG);
        s->state = r.next;
        if (r.next == DP_SESS_LOG) {
            break;
        }
        ev = DP_SESS_EV_ENTER;
    }
    s->action = session_actions[DP_SESS_LOG];
    dp_timer_del(&s->w->loop, &s->timer);
    dp_loop_defer(&s->w->loop, &s->defer);
}

/* ---------------------------------------------------------------- events */

static void
sock_events(struct dp_sock *k, uint32_t events)
{
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
        k->rd_ready = true;
    }
    if (events & (EPOLLRDHUP | EPOLLHUP)) {
        k->hup = true;
    }
    if (events & EPOLLERR) {
        k->err = true;
    }
    if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) {
        k->wr_ready = true;
        if (k->rd_wants_wr) {
            k->rd_wants_wr = false; /* the TLS read that waited for this can go on */
            k->rd_ready = true;
        }
    }
}

static void
session_on_client(struct dp_loop *l, int fd, void *arg, uint32_t events)
{
    struct dp_session *s = arg;

    (void)l;
    (void)fd;
    if (session_is_closed(s)) {
        return;
    }
    sock_events(&s->c, events);
    dp_session_step(s, DP_SESS_EV_IO);
}

static void
session_on_upstream(struct dp_loop *l, int fd, void *arg, uint32_t events)
{
    struct dp_session *s = arg;

    (void)l;
    if (session_is_closed(s) || fd != s->u.fd) {
        return; /* a stale event for a socket of a failed connect attempt */
    }
    sock_events(&s->u, events);
    dp_session_step(s, DP_SESS_EV_IO);
}

/* The session timer: a phase deadline (s->deadline) or the earliest proxy timeout. */
static void
session_on_timer(struct dp_loop *l, void *arg)
{
    struct dp_session *s = arg;

    if (session_is_closed(s)) {
        return;
    }
    if (s->state != DP_SESS_PROXY && l->now < s->deadline) {
        (void)dp_timer_set(l, &s->timer, s->deadline);
        return;
    }
    dp_session_step(s, DP_SESS_EV_TIMER);
}

/* A forwarder stopped on its budget last turn: carry on where it left off. */
static void
session_resume(struct dp_loop *l, void *arg)
{
    struct dp_session *s = arg;

    (void)l;
    dp_session_step(s, DP_SESS_EV_RESUME);
}

/* ---------------------------------------------------------------- accept */

static void
session_init(struct dp_session *s, struct dp_worker *w, struct dp_listener *li, int fd,
             const struct sockaddr *client)
{
    socklen_t len = sizeof(s->local);

    memset(s, 0, sizeof(*s)); /* state PREREAD, entered by the accept's first step */
    s->w = w;
    s->li = li;
    s->start_ms = w->loop.now;
    addr_copy(&s->client, client);
    /* A listener bound to one address saves a syscall per session. */
    if (li->local_known || getsockname(fd, &s->local.sa, &len) == -1) {
        addr_copy(&s->local, (const struct sockaddr *)&li->conf->addr);
    }
    dp_xprt_raw_init(&s->c, fd);
    dp_xprt_raw_init(&s->u, -1);
    s->cio.fd = fd;
    s->cio.cb = session_on_client;
    s->cio.arg = s;
    s->uio.fd = -1;
    s->uio.cb = session_on_upstream;
    s->uio.arg = s;
    dp_timer_init(&s->timer, session_on_timer, s);
    s->defer.cb = session_free;
    s->defer.arg = s;
    s->resume.cb = session_resume;
    s->resume.arg = s;
    s->reason = "-";
    s->tls = "-";
    s->bal_peer = -1;
    if (li->conf->flags & ST_LISTEN_F_SSL) {
        s->pre = dp_pool_get(&w->pre_pool);
        if (s->pre != NULL) {
            dp_preread_init(s->pre);
        }
    }
    s->rt = dp_worker_runtime(w);
    s->rt = s->rt != NULL ? dp_runtime_ref(s->rt) : NULL;
    s->next = w->sessions;
    if (w->sessions != NULL) {
        w->sessions->prev = s;
    }
    w->sessions = s;
}

void
dp_session_accept(struct dp_worker *w, struct dp_listener *li, int fd,
                  const struct sockaddr *client)
{
    struct dp_session *s;

    atomic_fetch_add_explicit(&w->cnt.accepted, 1, memory_order_relaxed);
    s = dp_pool_get(&w->sess_pool);
    if (s == NULL) {
        dp_log(w->log, ST_LOG_WARN, ENOMEM, "%s: cannot allocate a session", li->conf->text);
        close(fd);
        dp_worker_session_release(w);
        return;
    }
    atomic_fetch_add_explicit(&w->cnt.handled, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&w->cnt.active, 1, memory_order_relaxed);
    session_init(s, w, li, fd, client);
    if (dp_loop_io_add(&w->loop, &s->cio, DP_SESS_EVENTS) < 0) {
        session_abort(s, 500, "epoll");
        return;
    }
    s->c.rd_ready = true; /* the hello may have arrived with the connection */
    dp_session_step(s, DP_SESS_EV_ENTER);
}
