/* Sync client (DESIGN.md "Control plane to data plane", DP side).
 *
 * One req0 context on one socket, driven synchronously by the sync thread through an
 * aio, so another thread can interrupt it with nng_aio_cancel(). The request's resend
 * time is above the CP's hold time (cluster_heartbeat) so nng never resends a request
 * the CP is merely holding; the receive timeout (heartbeat + 15 s) ends a wait on a
 * CP that vanished without closing the connection. */
#include "dp_sync.h"

#include <errno.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <nng/supplemental/tls/tls.h>
#include <nng/supplemental/util/platform.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dp_cache.h"
#include "dp_ctx.h"
#include "dp_runtime.h"
#include "st_conf.h"
#include "st_err.h"
#include "st_log.h"
#include "st_snapshot.h"
#include "st_ssl.h"
#include "st_syncmsg.h"
#include "st_util.h"

#define DP_SYNC_BACKOFF_MS 2000
#define DP_SYNC_BYE_MS     300
#define DP_SYNC_CLOSE_MS   3000

struct dp_sync {
    struct dp_ctx *ctx;
    nng_socket sock;
    nng_ctx nctx;
    nng_dialer dialer;
    nng_aio *aio;
    char url[300];
    pthread_t thread;
    bool started;
    atomic_bool stop;
    atomic_bool done;
    atomic_bool bye_started;
    atomic_int pipes; /* connected pipes */
    bool goodbye;
    char *last_error;        /* why the last snapshot was not applied, NULL: none */
    struct st_label *labels; /* cluster_dp_labels, sent with every request */
    size_t n_labels;
    int64_t cert_expiry;
};

/* ---------------------------------------------------------------- apply */

int
dp_sync_apply(struct dp_ctx *ctx, const uint8_t *p, size_t len, bool from_cache, struct st_err *err)
{
    struct st_snapshot *snap = NULL;
    struct dp_runtime *rt = NULL;
    struct st_err cerr;
    int rc;

    rc = st_snapshot_parse(p, len, &snap, err);
    if (rc < 0) {
        return rc;
    }
    rc = dp_runtime_new(snap, &rt, err);
    if (rc < 0) {
        return rc;
    }
    st_log(ST_LOG_NOTICE, 0, "configuration version %llu applied%s (hash %s, %zu routes)",
           (unsigned long long)dp_runtime_version(rt), from_cache ? " from config.cache" : "",
           dp_runtime_hash(rt), snap->n_routes);
    dp_ctx_publish(ctx, rt);
    if (!from_cache && dp_cache_write(ctx->conf->prefix, p, len, &cerr) < 0) {
        st_log(ST_LOG_ERR, 0, "config.cache: not written: %s", cerr.msg);
    }
    return 0;
}

/* ---------------------------------------------------------------- set-up */

static char *
read_pem(const char *path, struct st_err *err)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;

    if (f == NULL) {
        st_err_set(err, -errno, NULL, "%s: %s", path, strerror(errno));
        return NULL;
    }
    if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || n > (1 << 20) ||
        fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        st_err_set(err, -EIO, NULL, "%s: cannot read", path);
        return NULL;
    }
    buf = st_xmalloc((size_t)n + 1);
    if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
        fclose(f);
        free(buf);
        st_err_set(err, -EIO, NULL, "%s: cannot read", path);
        return NULL;
    }
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static int
nng_fail(struct st_err *err, const char *what, int rv)
{
    return st_err_set(err, -ST_ECONF, NULL, "cluster: %s: %s", what, nng_strerror(rv));
}

static int
sync_tls(struct dp_sync *s, struct st_err *err)
{
    const struct st_conf *c = s->ctx->conf;
    const char *ca_path =
        c->cluster_mtls == ST_MTLS_PKI && c->cluster_ca_cert ? c->cluster_ca_cert : c->cluster_cert;
    nng_tls_config *cfg = NULL;
    char *ca = NULL, *cert = NULL, *key = NULL;
    int rv, rc = -ST_ECONF;

    if (c->cluster_cert == NULL || c->cluster_cert_key == NULL) {
        return st_err_set(err, -ST_ECONF, "cluster_cert",
                          "cluster_cert and cluster_cert_key are required");
    }
    ca = read_pem(ca_path, err);
    cert = read_pem(c->cluster_cert, err);
    key = read_pem(c->cluster_cert_key, err);
    if (ca == NULL || cert == NULL || key == NULL) {
        goto out;
    }
    if ((rv = nng_tls_config_alloc(&cfg, NNG_TLS_MODE_CLIENT)) != 0) {
        rc = nng_fail(err, "tls", rv);
        goto out;
    }
    if ((rv = nng_tls_config_auth_mode(cfg, NNG_TLS_AUTH_MODE_REQUIRED)) != 0 ||
        (rv = nng_tls_config_ca_chain(cfg, ca, NULL)) != 0 ||
        (rv = nng_tls_config_own_cert(cfg, cert, key, NULL)) != 0 ||
        (rv = nng_tls_config_server_name(cfg, c->cluster_server_name ? c->cluster_server_name
                                                                     : "strait_clustering")) != 0 ||
        (rv = nng_dialer_set_ptr(s->dialer, NNG_OPT_TLS_CONFIG, cfg)) != 0) {
        rc = nng_fail(err, "cluster certificate", rv);
        goto out;
    }
    if (st_ssl_cert_expiry(c->cluster_cert, &s->cert_expiry, err) < 0) {
        s->cert_expiry = 0;
    }
    rc = 0;
out:
    if (cfg != NULL) {
        nng_tls_config_free(cfg); /* the dialer keeps its own reference */
    }
    free(ca);
    free(cert);
    if (key != NULL) {
        memset(key, 0, strlen(key));
    }
    free(key);
    return rc;
}

static void
sync_on_pipe(nng_pipe p, nng_pipe_ev ev, void *arg)
{
    struct dp_sync *s = arg;

    (void)p;
    if (ev == NNG_PIPE_EV_ADD_POST) {
        atomic_fetch_add(&s->pipes, 1);
        st_log(ST_LOG_NOTICE, 0, "connected to control plane %s", s->url);
    } else if (ev == NNG_PIPE_EV_REM_POST) {
        atomic_fetch_sub(&s->pipes, 1);
        st_log(ST_LOG_WARN, 0, "lost connection to control plane %s", s->url);
    }
}

static int
sync_url(struct dp_sync *s, struct st_err *err)
{
    const struct st_conf *c = s->ctx->conf;
    const char *cp = c->cluster_control_plane;
    size_t n;

    if (cp == NULL || *cp == '\0') {
        return st_err_set(err, -ST_ECONF, "cluster_control_plane",
                          "cluster_control_plane: required");
    }
    n = strcspn(cp, ", "); /* failover lists come in a later issue: the first entry */
    if (st_snprintf(s->url, sizeof(s->url), "%s%.*s",
                    c->cluster_mtls == ST_MTLS_OFF ? "tcp://" : "tls+tcp://", (int)n, cp) < 0) {
        return st_err_set(err, -ST_ECONF, "cluster_control_plane",
                          "cluster_control_plane: too long");
    }
    return 0;
}

static int
sync_open(struct dp_sync *s, struct st_err *err)
{
    const struct st_conf *c = s->ctx->conf;
    int rv;

    if ((rv = nng_req0_open(&s->sock)) != 0) {
        return nng_fail(err, "req0", rv);
    }
    if ((rv = nng_socket_set_size(s->sock, NNG_OPT_RECVMAXSZ, (size_t)c->cluster_max_payload)) !=
            0 ||
        (rv = nng_socket_set_ms(s->sock, NNG_OPT_RECONNMINT, 1000)) != 0 ||
        (rv = nng_socket_set_ms(s->sock, NNG_OPT_RECONNMAXT, 30000)) != 0 ||
        (rv = nng_pipe_notify(s->sock, NNG_PIPE_EV_ADD_POST, sync_on_pipe, s)) != 0 ||
        (rv = nng_pipe_notify(s->sock, NNG_PIPE_EV_REM_POST, sync_on_pipe, s)) != 0) {
        return nng_fail(err, "socket options", rv);
    }
    if ((rv = nng_ctx_open(&s->nctx, s->sock)) != 0 ||
        (rv = nng_ctx_set_ms(s->nctx, NNG_OPT_REQ_RESENDTIME,
                             (c->cluster_heartbeat + 30) * 1000)) != 0) {
        return nng_fail(err, "context", rv);
    }
    if ((rv = nng_aio_alloc(&s->aio, NULL, NULL)) != 0) {
        return nng_fail(err, "aio", rv);
    }
    if ((rv = nng_dialer_create(&s->dialer, s->sock, s->url)) != 0) {
        return st_err_set(err, -ST_ECONF, "cluster_control_plane", "cluster_control_plane: %s: %s",
                          s->url, nng_strerror(rv));
    }
    if (c->cluster_mtls != ST_MTLS_OFF && sync_tls(s, err) < 0) {
        return -ST_ECONF;
    }
    if ((rv = nng_dialer_start(s->dialer, NNG_FLAG_NONBLOCK)) != 0) {
        return nng_fail(err, "dial", rv);
    }
    return 0;
}

static char *
xstrndup(const char *p, size_t n)
{
    char *d = st_xmalloc(n + 1);

    memcpy(d, p, n);
    d[n] = '\0';
    return d;
}

/* Splits cluster_dp_labels ("key:value,key:value"; st_conf validated it). */
static void
sync_labels(struct dp_sync *s)
{
    const char *p = s->ctx->conf->cluster_dp_labels;

    while (p != NULL && *p != '\0') {
        size_t n = strcspn(p, ",");
        const char *colon = memchr(p, ':', n);

        if (colon != NULL) {
            struct st_label *l;

            s->labels = st_xrealloc(s->labels, (s->n_labels + 1) * sizeof(*s->labels));
            l = &s->labels[s->n_labels++];
            l->key = xstrndup(p, (size_t)(colon - p));
            l->value = xstrndup(colon + 1, n - (size_t)(colon - p) - 1);
        }
        p += n;
        p += *p == ',';
    }
}

struct dp_sync *
dp_sync_new(struct dp_ctx *ctx, struct st_err *err)
{
    struct dp_sync *s = st_xcalloc(1, sizeof(*s));

    s->ctx = ctx;
    atomic_init(&s->stop, false);
    atomic_init(&s->done, false);
    atomic_init(&s->bye_started, false);
    atomic_init(&s->pipes, 0);
    sync_labels(s);
    if (sync_url(s, err) < 0 || sync_open(s, err) < 0) {
        dp_sync_free(s);
        return NULL;
    }
    return s;
}

/* ---------------------------------------------------------------- the exchange */

/* Sends one request and waits for its answer up to timeout_ms. Returns 0 with *resp
 * filled, or an nng error. */
static int
sync_exchange(struct dp_sync *s, bool goodbye, int timeout_ms, struct st_sync_resp *resp)
{
    struct dp_ctx *ctx = s->ctx;
    struct st_sync_req req;
    char hash[65];
    bool have;
    uint8_t *buf = NULL;
    size_t len = 0;
    nng_msg *msg;
    int rv;

    pthread_mutex_lock(&ctx->lock);
    memcpy(hash, ctx->hash, sizeof(hash));
    have = ctx->rt != NULL;
    pthread_mutex_unlock(&ctx->lock);
    memset(&req, 0, sizeof(req));
    req.dp_id = ctx->id;
    req.hostname = ctx->hostname;
    req.dp_version = STRAIT_VERSION;
    req.have_hash = have ? hash : "";
    req.last_error = s->last_error;
    req.cert_expiry = s->cert_expiry;
    req.goodbye = goodbye;
    req.labels = s->labels;
    req.n_labels = s->n_labels;
    if (st_syncmsg_req_encode(&req, &buf, &len) < 0) {
        return NNG_ENOMEM;
    }
    rv = nng_msg_alloc(&msg, 0);
    if (rv == 0 && (rv = nng_msg_append(msg, buf, len)) != 0) {
        nng_msg_free(msg);
    }
    free(buf);
    if (rv != 0) {
        return rv;
    }
    nng_aio_set_msg(s->aio, msg);
    nng_aio_set_timeout(s->aio, goodbye ? DP_SYNC_BYE_MS : 5000);
    nng_ctx_send(s->nctx, s->aio);
    nng_aio_wait(s->aio);
    if ((rv = nng_aio_result(s->aio)) != 0) {
        nng_msg_free(nng_aio_get_msg(s->aio));
        return rv;
    }
    nng_aio_set_timeout(s->aio, timeout_ms);
    nng_ctx_recv(s->nctx, s->aio);
    nng_aio_wait(s->aio);
    if ((rv = nng_aio_result(s->aio)) != 0) {
        return rv;
    }
    msg = nng_aio_get_msg(s->aio);
    rv = st_syncmsg_resp_decode(nng_msg_body(msg), nng_msg_len(msg), resp) < 0 ? NNG_EPROTO : 0;
    nng_msg_free(msg);
    return rv;
}

static void
sync_pause(struct dp_sync *s, int ms)
{
    nng_sleep_aio(ms, s->aio);
    nng_aio_wait(s->aio);
}

static void
sync_set_error(struct dp_sync *s, const char *msg)
{
    free(s->last_error);
    s->last_error = msg != NULL ? st_xstrdup(msg) : NULL;
}

/* Applies an OK answer. Returns false when the snapshot was refused. */
static bool
sync_on_ok(struct dp_sync *s, const struct st_sync_resp *resp)
{
    struct st_err err;
    uint64_t version = 0;
    char hash[65] = "-";

    memset(&err, 0, sizeof(err));
    if (resp->snapshot == NULL || resp->snapshot_len == 0) {
        st_err_set(&err, -ST_EPARSE, NULL, "empty snapshot");
    } else if (dp_sync_apply(s->ctx, resp->snapshot, resp->snapshot_len, false, &err) == 0) {
        sync_set_error(s, NULL);
        return true;
    }
    (void)st_snapshot_peek(resp->snapshot, resp->snapshot_len, &version, hash);
    st_log(ST_LOG_ERR, 0, "sync: refused configuration version %llu (hash %s): %s",
           (unsigned long long)version, hash, err.msg);
    sync_set_error(s, err.msg);
    return false;
}

static void
sync_once(struct dp_sync *s)
{
    const struct st_conf *c = s->ctx->conf;
    struct st_sync_resp resp;
    int rv;

    memset(&resp, 0, sizeof(resp));
    rv = sync_exchange(s, false, (c->cluster_heartbeat + 15) * 1000, &resp);
    if (rv == NNG_ECANCELED || rv == NNG_ECLOSED) {
        return;
    }
    if (rv != 0) {
        st_log(rv == NNG_ETIMEDOUT ? ST_LOG_WARN : ST_LOG_ERR, 0,
               "sync: no answer from control plane %s: %s", s->url, nng_strerror(rv));
        if (rv != NNG_ETIMEDOUT) {
            sync_pause(s, DP_SYNC_BACKOFF_MS);
        }
        return;
    }
    pthread_mutex_lock(&s->ctx->lock);
    s->ctx->last_sync = (int64_t)time(NULL);
    pthread_mutex_unlock(&s->ctx->lock);
    if (resp.status == ST_SYNC_OK) {
        if (!sync_on_ok(s, &resp)) {
            sync_pause(s, DP_SYNC_BACKOFF_MS); /* the CP answers at once: don't spin */
        }
    } else if (resp.status == ST_SYNC_REFUSED) {
        st_log(ST_LOG_ERR, 0, "sync: control plane refused this data plane: %s",
               resp.reason ? resp.reason : "-");
        sync_pause(s, DP_SYNC_BACKOFF_MS);
    }
    st_syncmsg_resp_fini(&resp);
}

static void *
sync_main(void *arg)
{
    struct dp_sync *s = arg;

    while (!atomic_load(&s->stop)) {
        sync_once(s);
    }
    if (s->goodbye && atomic_load(&s->pipes) > 0) {
        struct st_sync_resp resp;

        memset(&resp, 0, sizeof(resp));
        atomic_store(&s->bye_started, true);
        st_log(ST_LOG_DEBUG, 0, "sync: saying goodbye to %s", s->url);
        if (sync_exchange(s, true, DP_SYNC_BYE_MS, &resp) == 0) {
            st_syncmsg_resp_fini(&resp);
        }
        st_log(ST_LOG_DEBUG, 0, "sync: goodbye done");
    }
    atomic_store(&s->done, true);
    return NULL;
}

int
dp_sync_start(struct dp_sync *s)
{
    int rc = pthread_create(&s->thread, NULL, sync_main, s);

    if (rc != 0) {
        return -rc;
    }
    s->started = true;
    return 0;
}

void
dp_sync_stop(struct dp_sync *s, bool goodbye)
{
    if (!s->started) {
        return;
    }
    s->goodbye = goodbye;
    atomic_store(&s->stop, true);
    /* Cancel until the thread notices (a cancel may land between two operations), but
     * leave the short goodbye exchange alone once the thread has started it. */
    for (int waited = 0; !atomic_load(&s->done); waited += 10) {
        if (!atomic_load(&s->bye_started) || waited >= 2 * DP_SYNC_BYE_MS) {
            nng_aio_cancel(s->aio);
        }
        nng_msleep(10);
    }
    pthread_join(s->thread, NULL);
    s->started = false;
}

/* Set when nng could not close the cluster socket: nng_fini() would wait forever too.
 * Process-wide because nng's own state is. */
static atomic_bool sync_nng_stuck;

/* The dp_sync whose socket would not close, deliberately never freed. */
static struct dp_sync *volatile sync_abandoned; /* volatile: a store never read stays */

static void *
sync_close_main(void *arg)
{
    nng_socket *sock = arg;

    nng_close(*sock);
    free(sock);
    return NULL;
}

/* Closes the socket, waiting at most DP_SYNC_CLOSE_MS. nng 1.5.2 can wait forever in
 * nng_close() after the CP refused a TLS pipe during negotiation (seen with a foreign
 * cluster certificate); a DP that is stopping must not hang on it. Returns false when
 * the close is still stuck and the thread was left behind. */
static bool
sync_close_socket(struct dp_sync *s)
{
    nng_socket *sock = st_xmalloc(sizeof(*sock));
    struct timespec ts;
    pthread_t t;

    *sock = s->sock;
    if (pthread_create(&t, NULL, sync_close_main, sock) != 0) {
        sync_close_main(sock);
        return true;
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += DP_SYNC_CLOSE_MS / 1000;
    if (pthread_timedjoin_np(t, NULL, &ts) == 0) {
        return true;
    }
    pthread_detach(t);
    atomic_store(&sync_nng_stuck, true);
    st_log(ST_LOG_WARN, 0, "sync: the cluster socket did not close within %d ms; not waiting",
           DP_SYNC_CLOSE_MS);
    return false;
}

void
dp_sync_free(struct dp_sync *s)
{
    if (s == NULL) {
        return;
    }
    dp_sync_stop(s, false);
    if (s->aio != NULL) {
        nng_aio_stop(s->aio);
    }
    nng_dialer_close(s->dialer);
    if (!sync_close_socket(s)) {
        /* The stuck close may still run sync_on_pipe(s) and touch s->aio: keep all of
         * s, reachable from here (so LeakSanitizer does not call it a leak). */
        sync_abandoned = s;
        return;
    }
    nng_aio_free(s->aio);
    free(s->last_error);
    for (size_t i = 0; i < s->n_labels; i++) {
        free(s->labels[i].key);
        free(s->labels[i].value);
    }
    free(s->labels);
    free(s);
}

void
dp_sync_lib_fini(void)
{
    if (atomic_load(&sync_nng_stuck)) {
        return;
    }
    nng_fini();
}
