/* Status API of the data plane (Kong's Status API names): /status, /status/ready,
 * /metrics, on every status_listen entry (one libmicrohttpd daemon each, one thread each).
 * Bodies are built with jansson; nothing here touches a worker.
 *
 * A readiness probe must get its answer while others hold connections open (issue 14,
 * defect 8): the daemons share one st_connguard, so status_max_connections are open at
 * most, a new connection displaces the oldest one that has not sent its whole request,
 * and a request must arrive whole within DP_STATUS_REQUEST_MS of accept. */
#include "dp_status.h"

#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>

#include "dp_ctx.h"
#include "dp_runtime.h"
#include "dp_tls.h"
#include "dp_upstream_health.h"
#include "dp_worker-t.h"
#include "st_addr.h"
#include "st_conf.h"
#include "st_connguard.h"
#include "st_err.h"
#include "st_log.h"
#include "st_str.h"
#include "st_util.h"

/* From accept to a whole request (a probe sends it at once), absolute. */
#define DP_STATUS_REQUEST_MS 10000
/* libmicrohttpd's own limit beyond status_max_connections: the connections the guard
 * displaced that are still closing. The guard decides; this keeps libmicrohttpd out of
 * its way. */
#define DP_STATUS_LIMIT_SLACK 64

struct dp_status {
    struct dp_ctx *ctx;
    struct st_connguard *guard;
    struct MHD_Daemon **d; /* one per status_listen entry */
    size_t n;
};

struct status_view {
    char hash[65];
    uint64_t version;
    int64_t last_sync;
    char control_plane[256];
    bool ready;
    struct dp_counters_sum sum;
    int64_t max_sessions; /* stream_max_sessions in force */
    uint64_t max_reached; /* times the DP reached it */
};

static void
status_view(struct dp_ctx *ctx, struct status_view *v)
{
    pthread_mutex_lock(&ctx->lock);
    memcpy(v->hash, ctx->hash, sizeof(v->hash));
    v->version = ctx->version;
    v->last_sync = ctx->last_sync;
    memcpy(v->control_plane, ctx->control_plane, sizeof(v->control_plane));
    v->ready = ctx->rt != NULL;
    pthread_mutex_unlock(&ctx->lock);
    dp_ctx_counters(ctx, &v->sum);
    v->max_sessions = ctx->max_sessions;
    v->max_reached = atomic_load_explicit(&ctx->cap_reached, memory_order_relaxed);
}

static enum MHD_Result
reply(struct MHD_Connection *conn, unsigned code, const char *type, char *body)
{
    struct MHD_Response *r;
    enum MHD_Result rc;

    r = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    if (r == NULL) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", type);
    rc = MHD_queue_response(conn, code, r);
    MHD_destroy_response(r);
    return rc;
}

static enum MHD_Result
reply_json(struct MHD_Connection *conn, unsigned code, json_t *obj)
{
    char *body = obj != NULL ? json_dumps(obj, JSON_COMPACT) : NULL;

    json_decref(obj);
    if (body == NULL) {
        return MHD_NO;
    }
    return reply(conn, code, "application/json; charset=utf-8", body);
}

/* Each worker's own counts: how the kernel spread the connections over them. */
static json_t *
workers_json(struct dp_ctx *ctx)
{
    json_t *a = json_array();

    for (size_t i = 0; i < ctx->n_workers; i++) {
        struct dp_counters *c = &ctx->workers[i]->cnt;

        json_array_append_new(
            a, json_pack("{s:I, s:I}", "connections_accepted",
                         (json_int_t)atomic_load_explicit(&c->accepted, memory_order_relaxed),
                         "connections_active",
                         (json_int_t)atomic_load_explicit(&c->active, memory_order_relaxed)));
    }
    return a;
}

static enum MHD_Result
serve_status(struct dp_status *st, struct MHD_Connection *conn)
{
    struct status_view v;
    json_t *body;

    status_view(st->ctx, &v);
    body = json_pack(
        "{s:s, s:I, s:b, s:o, s:o, s:{s:I, s:I, s:I, s:I, s:I}, s:{s:I, s:I, s:I},"
        " s:{s:I, s:I, s:I, s:I}}",
        "configuration_hash", v.hash, "config_version", (json_int_t)v.version, "ready", v.ready,
        "last_sync", v.last_sync ? json_integer((json_int_t)v.last_sync) : json_null(),
        "control_plane", v.control_plane[0] != '\0' ? json_string(v.control_plane) : json_null(),
        "server", "connections_accepted", (json_int_t)v.sum.accepted, "connections_active",
        (json_int_t)v.sum.active, "connections_handled", (json_int_t)v.sum.handled,
        "connections_max", (json_int_t)v.max_sessions, "connections_max_reached",
        (json_int_t)v.max_reached, "proxy", "bytes_splice", (json_int_t)v.sum.bytes_splice,
        "bytes_copy", (json_int_t)v.sum.bytes_copy, "sessions_no_route", (json_int_t)v.sum.no_route,
        "tls", "handshakes", (json_int_t)v.sum.tls_handshakes, "resumed",
        (json_int_t)v.sum.tls_resumed, "handshake_errors", (json_int_t)v.sum.tls_errors,
        "ticket_key_rotations", (json_int_t)dp_tls_ticket_rotations());
    json_object_set_new(body, "workers", workers_json(st->ctx));
    return reply_json(conn, MHD_HTTP_OK, body);
}

static enum MHD_Result
serve_ready(struct dp_status *st, struct MHD_Connection *conn)
{
    struct status_view v;

    status_view(st->ctx, &v);
    return reply_json(
        conn, v.ready ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE,
        json_pack("{s:s}", "message", v.ready ? "ready" : "no configuration available"));
}

static enum MHD_Result
serve_metrics(struct dp_status *st, struct MHD_Connection *conn)
{
    struct status_view v;
    struct st_str b = {0};

    status_view(st->ctx, &v);
    /* conv: 'd' for the int64_t gauges (printed signed), else 'u' */
    const struct {
        char conv;
        const char *name, *type, *help;
        unsigned long long n;
    } m[] = {
        {'u', "connections_accepted_total", "counter", "Connections accepted.", v.sum.accepted},
        {'u', "connections_handled_total", "counter", "Connections handled.", v.sum.handled},
        {'d', "connections_active", "gauge", "Sessions open now.",
         (unsigned long long)v.sum.active},
        {'d', "connections_max", "gauge", "Sessions at most (stream_max_sessions).",
         (unsigned long long)v.max_sessions},
        {'u', "connections_max_reached_total", "counter",
         "Times the DP reached stream_max_sessions and paused accepts.", v.max_reached},
        {'u', "bytes_splice_total", "counter", "Bytes proxied with splice.", v.sum.bytes_splice},
        {'u', "bytes_copy_total", "counter", "Bytes proxied by copy.", v.sum.bytes_copy},
        {'u', "sessions_no_route_total", "counter", "Connections no route matched.",
         v.sum.no_route},
        {'u', "tls_handshakes_total", "counter", "Client TLS handshakes completed.",
         v.sum.tls_handshakes},
        {'u', "tls_resumed_total", "counter", "Client TLS handshakes that resumed.",
         v.sum.tls_resumed},
        {'u', "tls_handshake_errors_total", "counter", "Failed TLS handshakes.", v.sum.tls_errors},
        {'u', "config_version", "gauge", "Version of the configuration served.", v.version},
        {'u', "ready", "gauge", "1 when a configuration is loaded.", v.ready},
    };

    for (size_t i = 0; i < ST_ARRAY_SIZE(m); i++) {
        st_str_addf(&b, "# HELP strait_%s %s\n# TYPE strait_%s %s\nstrait_%s ", m[i].name,
                    m[i].help, m[i].name, m[i].type, m[i].name);
        if (m[i].conv == 'd') {
            st_str_addf(&b, "%lld\n", (long long)m[i].n);
        } else {
            st_str_addf(&b, "%llu\n", m[i].n);
        }
    }
    return reply(conn, MHD_HTTP_OK, "text/plain; version=0.0.4", b.p);
}

/* The guard's record of conn (on_connection), NULL if it has none. */
static struct st_connguard_conn *
guard_conn(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

    return ci != NULL ? ci->socket_context : NULL;
}

/* Kong's Status API GET /upstreams/{u}/health[?balancer_health=1]: this DP's view. */
static enum MHD_Result
serve_upstream_health(struct dp_status *st, struct MHD_Connection *conn, const char *rest)
{
    const char *slash = strchr(rest, '/');
    const char *bh = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "balancer_health");
    struct dp_runtime *rt;
    json_t *body = NULL;
    char key[512];

    if (slash == NULL || strcmp(slash, "/health") != 0 || slash == rest ||
        (size_t)(slash - rest) >= sizeof(key)) {
        return reply_json(conn, MHD_HTTP_NOT_FOUND, json_pack("{s:s}", "message", "Not found"));
    }
    memcpy(key, rest, (size_t)(slash - rest));
    key[slash - rest] = '\0';
    pthread_mutex_lock(&st->ctx->lock);
    rt = st->ctx->rt != NULL ? dp_runtime_ref(st->ctx->rt) : NULL;
    pthread_mutex_unlock(&st->ctx->lock);
    if (rt != NULL) {
        body = dp_upstream_health_json(rt, key, bh != NULL && strcmp(bh, "1") == 0, st->ctx->id);
        dp_runtime_unref(rt);
    }
    if (body == NULL) {
        return reply_json(conn, MHD_HTTP_NOT_FOUND, json_pack("{s:s}", "message", "Not found"));
    }
    return reply_json(conn, MHD_HTTP_OK, body);
}

static enum MHD_Result
status_handler(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
               const char *version, const char *upload_data, size_t *upload_data_size,
               void **con_cls)
{
    struct dp_status *st = cls;

    (void)version;
    (void)upload_data;
    (void)con_cls;
    st_connguard_head_done(st->guard, guard_conn(conn));
    if (*upload_data_size != 0) {
        *upload_data_size = 0; /* GET only: ignore any body */
        return MHD_YES;
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        return reply_json(conn, MHD_HTTP_METHOD_NOT_ALLOWED,
                          json_pack("{s:s}", "message", "Method not allowed"));
    }
    if (strcmp(url, "/status") == 0) {
        return serve_status(st, conn);
    }
    if (strcmp(url, "/status/ready") == 0) {
        return serve_ready(st, conn);
    }
    if (strcmp(url, "/metrics") == 0) {
        return serve_metrics(st, conn);
    }
    if (strncmp(url, "/upstreams/", 11) == 0) {
        return serve_upstream_health(st, conn, url + 11);
    }
    return reply_json(conn, MHD_HTTP_NOT_FOUND, json_pack("{s:s}", "message", "Not found"));
}

/* The accept policy: MHD_NO closes the socket before anything is read. */
static enum MHD_Result
on_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
    struct dp_status *st = cls;

    (void)addrlen;
    return st_connguard_admit(st->guard, addr, st_mono_ms()) == ST_CONNGUARD_ADMIT ? MHD_YES
                                                                                   : MHD_NO;
}

/* The guard knows each connection from NOTIFY_STARTED to NOTIFY_CLOSED. libmicrohttpd
 * 0.9.75 closes the socket only after NOTIFY_CLOSED returns, and the guard shuts a socket
 * down only under the lock st_connguard_remove takes: never a reused descriptor. */
static void
on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
              enum MHD_ConnectionNotificationCode toe)
{
    struct dp_status *st = cls;

    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *fd =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        const union MHD_ConnectionInfo *ca =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);

        if (fd != NULL && ca != NULL && ca->client_addr != NULL) {
            *socket_context =
                st_connguard_claim(st->guard, ca->client_addr, fd->connect_fd, NULL, st_mono_ms());
        }
    } else {
        st_connguard_remove(st->guard, *socket_context);
        *socket_context = NULL;
    }
}

/* A connection kept alive after its answer waits for the next request: a deadline again. */
static void
on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
             enum MHD_RequestTerminationCode toe)
{
    struct dp_status *st = cls;

    (void)con_cls;
    (void)toe;
    st_connguard_head_again(st->guard, guard_conn(conn), st_mono_ms());
}

/* DP_STATUS_REQUEST_MS, or the test knob STRAIT_TEST_STATUS_REQUEST_MS (an environment
 * variable, never a conf key: DESIGN.md), so that a test need not wait 10 s. */
static int64_t
request_ms(void)
{
    const char *v = getenv("STRAIT_TEST_STATUS_REQUEST_MS");
    char *end = NULL;
    long long ms;

    if (v == NULL || *v == '\0') {
        return DP_STATUS_REQUEST_MS;
    }
    ms = strtoll(v, &end, 10);
    if (*end != '\0' || ms <= 0) {
        st_log(ST_LOG_WARN, 0,
               "STRAIT_TEST_STATUS_REQUEST_MS='%s' is not a positive number of ms: ignored", v);
        return DP_STATUS_REQUEST_MS;
    }
    st_log(ST_LOG_NOTICE, 0,
           "STRAIT_TEST_STATUS_REQUEST_MS=%lld: status requests must arrive "
           "whole within %lld ms",
           ms, ms);
    return ms;
}

static struct MHD_Daemon *
start_one(struct dp_status *st, const struct st_listen *li)
{
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL;
    unsigned limit = (unsigned)st->ctx->conf->status_max_connections + DP_STATUS_LIMIT_SLACK;

    if (li->addr.ss_family == AF_INET6) {
        flags |= MHD_USE_IPv6;
    }
    return MHD_start_daemon(flags, 0, on_accept, st, status_handler, st, MHD_OPTION_SOCK_ADDR,
                            (const struct sockaddr *)&li->addr, MHD_OPTION_CONNECTION_TIMEOUT,
                            (unsigned)30, MHD_OPTION_CONNECTION_LIMIT, limit,
                            MHD_OPTION_NOTIFY_CONNECTION, on_connection, st,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, st, MHD_OPTION_END);
}

int
dp_status_start(struct dp_ctx *ctx, struct dp_status **out, struct st_err *err)
{
    const struct st_conf *conf = ctx->conf;
    const struct st_listen_set *set = &conf->status_listen;
    struct st_connguard_limits lim = {
        .name = "status",
        .head = "request",
        .max = (size_t)conf->status_max_connections,
        .max_key = "status_max_connections",
    };
    struct dp_status *st;
    int rc;

    *out = NULL;
    if (set->n == 0) {
        return 0;
    }
    lim.deadline_ms = request_ms();
    st = st_xcalloc(1, sizeof(*st));
    st->ctx = ctx;
    st->d = st_xcalloc(set->n, sizeof(*st->d));
    st->guard = st_connguard_new(&lim, NULL, NULL);
    rc = st_connguard_reaper_start(st->guard);
    if (rc < 0) {
        dp_status_stop(st);
        return st_err_set(err, rc, NULL, "status: cannot start a thread: %s", strerror(-rc));
    }
    for (size_t i = 0; i < set->n; i++) {
        errno = 0;
        st->d[i] = start_one(st, &set->v[i]);
        if (st->d[i] == NULL) {
            int e = errno != 0 ? errno : EADDRINUSE;

            dp_status_stop(st);
            return st_err_set(err, -e, "status_listen", "status_listen: cannot listen on %s: %s",
                              set->v[i].text, strerror(e));
        }
        st->n++;
    }
    *out = st;
    return 0;
}

void
dp_status_stop(struct dp_status *st)
{
    if (st == NULL) {
        return;
    }
    for (size_t i = 0; i < st->n; i++) {
        MHD_stop_daemon(st->d[i]);
    }
    st_connguard_free(st->guard); /* after the daemons: they closed every connection */
    free(st->d);
    free(st);
}
