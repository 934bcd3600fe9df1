/* Status API of the data plane (Kong's Status API names): /status, /status/ready,
 * /metrics. Bodies are built with jansson; nothing here touches a worker. */
#include "dp_status.h"

#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>

#include "dp_ctx.h"
#include "dp_tls.h"
#include "st_addr.h"
#include "st_conf.h"
#include "st_err.h"
#include "st_util.h"

/* A scraper needs one or two; the cap keeps a flood of idle clients from taking fds
 * the proxy needs. */
#define DP_STATUS_MAX_CONNS 128

struct dp_status {
    struct dp_ctx *ctx;
    struct MHD_Daemon *d;
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

static enum MHD_Result
serve_status(struct dp_status *st, struct MHD_Connection *conn)
{
    struct status_view v;

    status_view(st->ctx, &v);
    return reply_json(
        conn, MHD_HTTP_OK,
        json_pack("{s:s, s:I, s:b, s:o, s:o, s:{s:I, s:I, s:I, s:I, s:I}, s:{s:I, s:I, s:I},"
                  " s:{s:I, s:I, s:I, s:I}}",
                  "configuration_hash", v.hash, "config_version", (json_int_t)v.version, "ready",
                  v.ready, "last_sync",
                  v.last_sync ? json_integer((json_int_t)v.last_sync) : json_null(),
                  "control_plane",
                  v.control_plane[0] != '\0' ? json_string(v.control_plane) : json_null(), "server",
                  "connections_accepted", (json_int_t)v.sum.accepted, "connections_active",
                  (json_int_t)v.sum.active, "connections_handled", (json_int_t)v.sum.handled,
                  "connections_max", (json_int_t)v.max_sessions, "connections_max_reached",
                  (json_int_t)v.max_reached, "proxy", "bytes_splice",
                  (json_int_t)v.sum.bytes_splice, "bytes_copy", (json_int_t)v.sum.bytes_copy,
                  "sessions_no_route", (json_int_t)v.sum.no_route, "tls", "handshakes",
                  (json_int_t)v.sum.tls_handshakes, "resumed", (json_int_t)v.sum.tls_resumed,
                  "handshake_errors", (json_int_t)v.sum.tls_errors, "ticket_key_rotations",
                  (json_int_t)dp_tls_ticket_rotations()));
}

static enum MHD_Result
serve_ready(struct dp_status *st, struct MHD_Connection *conn)
{
    struct status_view v;

    status_view(st->ctx, &v);
    if (v.ready) {
        return reply_json(conn, MHD_HTTP_OK, json_pack("{s:s}", "message", "ready"));
    }
    return reply_json(conn, MHD_HTTP_SERVICE_UNAVAILABLE,
                      json_pack("{s:s}", "message", "no configuration available"));
}

static enum MHD_Result
serve_metrics(struct dp_status *st, struct MHD_Connection *conn)
{
    struct status_view v;
    char *body = st_xmalloc(4096);

    status_view(st->ctx, &v);
    (void)st_snprintf(body, 4096,
                      "# HELP strait_connections_accepted_total Connections accepted.\n"
                      "# TYPE strait_connections_accepted_total counter\n"
                      "strait_connections_accepted_total %llu\n"
                      "# HELP strait_connections_handled_total Connections handled.\n"
                      "# TYPE strait_connections_handled_total counter\n"
                      "strait_connections_handled_total %llu\n"
                      "# HELP strait_connections_active Sessions open now.\n"
                      "# TYPE strait_connections_active gauge\n"
                      "strait_connections_active %lld\n"
                      "# HELP strait_connections_max Sessions at most (stream_max_sessions).\n"
                      "# TYPE strait_connections_max gauge\n"
                      "strait_connections_max %lld\n"
                      "# HELP strait_connections_max_reached_total Times the DP reached "
                      "stream_max_sessions and paused accepts.\n"
                      "# TYPE strait_connections_max_reached_total counter\n"
                      "strait_connections_max_reached_total %llu\n"
                      "# HELP strait_bytes_splice_total Bytes proxied with splice.\n"
                      "# TYPE strait_bytes_splice_total counter\n"
                      "strait_bytes_splice_total %llu\n"
                      "# HELP strait_bytes_copy_total Bytes proxied by copy.\n"
                      "# TYPE strait_bytes_copy_total counter\n"
                      "strait_bytes_copy_total %llu\n"
                      "# HELP strait_sessions_no_route_total Connections no route matched.\n"
                      "# TYPE strait_sessions_no_route_total counter\n"
                      "strait_sessions_no_route_total %llu\n"
                      "# HELP strait_tls_handshakes_total Client TLS handshakes completed.\n"
                      "# TYPE strait_tls_handshakes_total counter\n"
                      "strait_tls_handshakes_total %llu\n"
                      "# HELP strait_tls_resumed_total Client TLS handshakes that resumed.\n"
                      "# TYPE strait_tls_resumed_total counter\n"
                      "strait_tls_resumed_total %llu\n"
                      "# HELP strait_tls_handshake_errors_total Failed TLS handshakes.\n"
                      "# TYPE strait_tls_handshake_errors_total counter\n"
                      "strait_tls_handshake_errors_total %llu\n"
                      "# HELP strait_config_version Version of the configuration served.\n"
                      "# TYPE strait_config_version gauge\n"
                      "strait_config_version %llu\n"
                      "# HELP strait_ready 1 when a configuration is loaded.\n"
                      "# TYPE strait_ready gauge\n"
                      "strait_ready %d\n",
                      (unsigned long long)v.sum.accepted, (unsigned long long)v.sum.handled,
                      (long long)v.sum.active, (long long)v.max_sessions,
                      (unsigned long long)v.max_reached, (unsigned long long)v.sum.bytes_splice,
                      (unsigned long long)v.sum.bytes_copy, (unsigned long long)v.sum.no_route,
                      (unsigned long long)v.sum.tls_handshakes,
                      (unsigned long long)v.sum.tls_resumed, (unsigned long long)v.sum.tls_errors,
                      (unsigned long long)v.version, v.ready ? 1 : 0);
    return reply(conn, MHD_HTTP_OK, "text/plain; version=0.0.4", body);
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
    return reply_json(conn, MHD_HTTP_NOT_FOUND, json_pack("{s:s}", "message", "Not found"));
}

int
dp_status_start(struct dp_ctx *ctx, struct dp_status **out, struct st_err *err)
{
    const struct st_listen_set *set = &ctx->conf->status_listen;
    const struct st_listen *li;
    struct dp_status *st;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL;

    *out = NULL;
    if (set->n == 0) {
        return 0;
    }
    li = &set->v[0];
    if (li->addr.ss_family == AF_INET6) {
        flags |= MHD_USE_IPv6;
    }
    st = st_xcalloc(1, sizeof(*st));
    st->ctx = ctx;
    st->d = MHD_start_daemon(flags, 0, NULL, NULL, status_handler, st, MHD_OPTION_SOCK_ADDR,
                             (const struct sockaddr *)&li->addr, MHD_OPTION_CONNECTION_TIMEOUT,
                             (unsigned)30, MHD_OPTION_CONNECTION_LIMIT,
                             (unsigned)DP_STATUS_MAX_CONNS, MHD_OPTION_END);
    if (st->d == NULL) {
        free(st);
        return st_err_set(err, -EADDRINUSE, "status_listen", "status_listen: cannot listen on %s",
                          li->text);
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
    MHD_stop_daemon(st->d);
    free(st);
}
