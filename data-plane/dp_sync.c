/* Sync client (DESIGN.md "Control plane to data plane", DP side).
 *
 * One req0 context on one socket, driven synchronously by the sync thread through an
 * aio, so another thread can interrupt it with nng_aio_cancel(). The request's resend
 * time is above the CP's hold time (cluster_heartbeat) so nng never resends a request
 * the CP is merely holding; the receive timeout (heartbeat + 15 s) ends a wait on a
 * CP that vanished without closing the connection.
 *
 * Failover (cluster_control_plane lists several CPs): one dialer at a time, to one CP
 * (several dialers on one socket would round-robin the requests). The first CP tried is
 * picked by the DP's id, so a fleet spreads over the list. When the current CP stops
 * answering (no connection within DP_SYNC_CONNECT_MS, no answer within the heartbeat +
 * 15 s, or its connection closes), the dialer is closed and the next CP in the list is
 * dialed; after a full round without an answer the thread pauses (DP_SYNC_ROUND_MIN_MS
 * doubling up to DP_SYNC_ROUND_MAX_MS, with jitter). A DP stays on the CP that answers:
 * it never moves back by itself. */
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
#include "dp_upstream_health.h"
#include "st_conf.h"
#include "st_err.h"
#include "st_file.h"
#include "st_log.h"
#include "st_snapshot.h"
#include "st_ssl.h"
#include "st_syncmsg.h"
#include "st_util.h"

#define DP_SYNC_BACKOFF_MS 2000
#define DP_SYNC_BYE_MS     300
#define DP_SYNC_CLOSE_MS   3000
/* a CP must take the request (connect, TLS, SP handshake) within this */
#define DP_SYNC_CONNECT_MS   3000
#define DP_SYNC_ROUND_MIN_MS 100  /* pause after a round of failures, doubling... */
#define DP_SYNC_ROUND_MAX_MS 5000 /* ...up to this */

struct dp_sync {
    struct dp_ctx *ctx;
    nng_socket sock;
    nng_ctx nctx;
    nng_dialer dialer;  /* to cps[cur], open while `dialing` */
    nng_aio *aio;       /* the exchanges */
    nng_aio *sleep_aio; /* the pauses (nng 1.5.2: a sleep on `aio` makes its next timeout
                         * complete as a success) */
    char url[300];      /* of cps[cur] */
    char **cps;         /* cluster_control_plane entries ("host:port"), in order */
    size_t n_cps;
    atomic_size_t cur;    /* the entry dialed now (read by pipe callbacks for logs) */
    size_t failed;        /* entries failed in a row since the last full round */
    int round_ms;         /* the pause after the next full round of failures */
    bool dialing;         /* `dialer` is open */
    bool sent;            /* the last exchange's request was taken by a CP */
    atomic_int dialer_id; /* nng id of `dialer` while dialing, else 0 */
    atomic_bool up;       /* the current dialer has a connection */
    atomic_bool lost;     /* the current dialer's connection closed: move on */
    pthread_t thread;
    bool started;
    atomic_bool stop;
    atomic_bool done;
    atomic_bool bye_started;
    bool goodbye;
    char *last_error;              /* why the last snapshot was not applied, NULL: none */
    struct st_snapshot_memo *memo; /* what the last applied snapshot's parse checked */
    struct st_label *labels;       /* cluster_dp_labels, sent with every request */
    size_t n_labels;
    int64_t cert_expiry;
    /* sync_tls */
    atomic_int tls_streak;          /* connections in a row without an answer */
    _Atomic int64_t tls_last_sync;  /* ctx->last_sync when the last one was made */
    _Atomic int64_t tls_refused_ms; /* monotonic: last "refused control plane" line */
    atomic_uint tls_refused_quiet;  /* refusals since, not logged */
};

/* ---------------------------------------------------------------- apply */

/* The health of the current runtime's checked upstreams, for the request (malloc'd; NULL:
 * nothing to report). */
static char *
health_report(struct dp_ctx *ctx)
{
    struct dp_runtime *rt;
    char *text = NULL;

    pthread_mutex_lock(&ctx->lock);
    rt = ctx->rt != NULL ? dp_runtime_ref(ctx->rt) : NULL;
    pthread_mutex_unlock(&ctx->lock);
    if (rt != NULL) {
        text = dp_upstream_health_report(rt);
        dp_runtime_unref(rt);
    }
    return text;
}

int
dp_sync_apply(struct dp_sync *s, const uint8_t *p, size_t len, bool from_cache, struct st_err *err)
{
    struct dp_ctx *ctx = s->ctx;
    struct st_snapshot *snap = NULL;
    struct dp_runtime *rt = NULL, *prev;
    struct st_err cerr;
    int rc;

    rc = st_snapshot_parse(p, len, s->memo, &snap, err);
    if (rc < 0) {
        return rc;
    }
    pthread_mutex_lock(&ctx->build_lock);
    pthread_mutex_lock(&ctx->lock);
    prev = ctx->rt != NULL ? dp_runtime_ref(ctx->rt) : NULL;
    pthread_mutex_unlock(&ctx->lock);
    rc = dp_runtime_new(snap, prev, ctx->dns, &rt, err);
    dp_runtime_unref(prev);
    if (rc < 0) {
        pthread_mutex_unlock(&ctx->build_lock);
        return rc;
    }
    st_log(ST_LOG_NOTICE, 0, "configuration version %llu applied%s (hash %s, %zu routes)",
           (unsigned long long)dp_runtime_version(rt), from_cache ? " from config.cache" : "",
           dp_runtime_hash(rt), snap->n_routes);
    dp_ctx_publish(ctx, rt);
    pthread_mutex_unlock(&ctx->build_lock);
    if (!from_cache && dp_cache_write(ctx->conf->prefix, p, len, &cerr) < 0) {
        st_log(ST_LOG_ERR, 0, "config.cache: not written: %s", cerr.msg);
    }
    return 0;
}

/* ---------------------------------------------------------------- set-up */

/* A PEM file (1 MiB at most), malloc'd; NULL with err set. */
static char *
read_pem(const char *path, struct st_err *err)
{
    char *buf;
    size_t n;
    int rc = st_file_read(path, 1u << 20, &buf, &n);

    if (rc == -EFBIG) {
        st_err_set(err, -EIO, NULL, "%s: cannot read", path);
    } else if (rc < 0) {
        st_err_set(err, rc, NULL, "%s: %s", path, strerror(-rc));
    }
    return buf;
}

static int
nng_fail(struct st_err *err, const char *what, int rv)
{
    return st_err_set(err, -ST_ECONF, NULL, "cluster: %s: %s", what, nng_strerror(rv));
}

/* pki: the name the CP's certificate must carry, for a dialer to url: cluster_server_name,
 * else the host of url (as Kong). Empty in shared mode (the certificate is pinned). */
static void
sync_tls_server_name(const struct st_conf *c, const char *url, char *buf, size_t size)
{
    nng_url *u = NULL;

    buf[0] = '\0';
    if (c->cluster_mtls != ST_MTLS_PKI) {
        return;
    }
    if (c->cluster_server_name != NULL && c->cluster_server_name[0] != '\0') {
        st_snprintf(buf, size, "%s", c->cluster_server_name);
    } else if (nng_url_parse(&u, url) == 0) {
        st_snprintf(buf, size, "%s", u->u_hostname);
        nng_url_free(u);
    }
}

/* The URL of the dialer that made pipe p (for log lines), into buf. */
static void
sync_tls_pipe_url(nng_pipe p, char *buf, size_t size)
{
    char *url = NULL;

    if (nng_dialer_get_string(nng_pipe_dialer(p), NNG_OPT_URL, &url) == 0) {
        st_snprintf(buf, size, "%s", url);
        nng_strfree(url);
    } else {
        st_snprintf(buf, size, "the control plane");
    }
}

/* The TLS check of a new connection to a control plane (ADD_PRE, before the protocol
 * sees the pipe, so nothing has been sent on it but nng's 8-byte SP header).
 *
 * The handshake verifies the CP optionally, as the CP verifies the DP, so that both
 * sides complete it and each logs its own refusal with nng 1.5.2 (mbedTLS gives no
 * other hook and no peer certificate). A CP whose certificate did not verify is refused
 * here. A CP that refuses this DP closes the connection at once, which nng shows the DP
 * only as a connection that comes and goes: after TLS_STREAK_WARN such connections in a
 * row without one answer, say so (and then every TLS_STREAK_EVERY more). */
#define TLS_STREAK_WARN      3
#define TLS_STREAK_EVERY     20
#define TLS_REFUSED_QUIET_MS 10000 /* one "refused control plane" line at most per */
/* nng 1.5.2 loses a TLS connection's close that arrives before the protocol reads from
 * it (the read then waits forever, and the pipe with it): before closing a refused CP,
 * give it a moment to finish its side and start reading (this holds only our dialer). */
#define TLS_REFUSE_PAUSE_MS 250

/* Refuses the connection p to a CP whose certificate did not verify: logs it (the first
 * time, then once per TLS_REFUSED_QUIET_MS with the count of the others), then closes it
 * after TLS_REFUSE_PAUSE_MS. */
static void
sync_tls_refuse(struct dp_sync *s, nng_pipe p)
{
    const struct st_conf *c = s->ctx->conf;
    const int64_t now = st_mono_ms();
    int64_t then = atomic_load(&s->tls_refused_ms);
    unsigned quiet;
    char url[300];
    char name[256];
    char more[64] = "";

    if ((then == 0 || now - then >= TLS_REFUSED_QUIET_MS) &&
        atomic_compare_exchange_strong(&s->tls_refused_ms, &then, now > 0 ? now : 1)) {
        quiet = atomic_exchange(&s->tls_refused_quiet, 0);
        if (quiet > 0) {
            st_snprintf(more, sizeof(more), " (refused %u more times since the last line)", quiet);
        }
        sync_tls_pipe_url(p, url, sizeof(url));
        sync_tls_server_name(c, url, name, sizeof(name));
        if (c->cluster_mtls == ST_MTLS_PKI) {
            st_log(ST_LOG_ERR, 0,
                   "cluster: refused control plane %s: its certificate is not signed by "
                   "cluster_ca_cert or not issued to '%s'%s",
                   url, name, more);
        } else {
            st_log(ST_LOG_ERR, 0,
                   "cluster: refused control plane %s: its certificate does not match the "
                   "cluster certificate%s",
                   url, more);
        }
    } else {
        atomic_fetch_add(&s->tls_refused_quiet, 1);
    }
    nng_msleep(TLS_REFUSE_PAUSE_MS);
    nng_pipe_close(p);
}

static void
sync_tls_on_pipe(nng_pipe p, nng_pipe_ev ev, void *arg)
{
    struct dp_sync *s = arg;
    const struct st_conf *c = s->ctx->conf;
    bool verified = false;
    char url[300];
    int64_t last;
    int streak;

    if (ev != NNG_PIPE_EV_ADD_PRE) {
        return;
    }
    if (nng_pipe_get_bool(p, NNG_OPT_TLS_VERIFIED, &verified) != 0 || !verified) {
        sync_tls_refuse(s, p);
        return;
    }
    pthread_mutex_lock(&s->ctx->lock);
    last = s->ctx->last_sync;
    pthread_mutex_unlock(&s->ctx->lock);
    if (last != atomic_exchange(&s->tls_last_sync, last)) {
        atomic_store(&s->tls_streak, 0); /* answered since the last connection */
    }
    streak = atomic_fetch_add(&s->tls_streak, 1) + 1;
    if (streak == TLS_STREAK_WARN ||
        (streak > TLS_STREAK_WARN && (streak - TLS_STREAK_WARN) % TLS_STREAK_EVERY == 0)) {
        sync_tls_pipe_url(p, url, sizeof(url));
        st_log(ST_LOG_ERR, 0,
               "cluster: control plane %s closed the connection %d times in a row before "
               "answering: it refuses this data plane's certificate (cluster_cert must be %s); "
               "its log names this data plane",
               url, streak - 1,
               c->cluster_mtls == ST_MTLS_PKI ? "signed by the control plane's cluster_ca_cert"
                                              : "the cluster certificate");
    }
}

/* Sets the dialer's TLS configuration: this DP's certificate, the trust anchor (shared:
 * the cluster certificate itself; pki: cluster_ca_cert) and, in pki mode, the name the
 * CP's certificate must carry (cluster_server_name, else the host of the CP's address,
 * as Kong). In shared mode the certificate is pinned, so its name is not checked. */
static int
sync_tls(struct dp_sync *s, struct st_err *err)
{
    const struct st_conf *c = s->ctx->conf;
    const bool pki = c->cluster_mtls == ST_MTLS_PKI;
    const char *ca_path = pki ? c->cluster_ca_cert : c->cluster_cert;
    nng_tls_config *cfg = NULL;
    char name[256];
    char *ca = NULL, *cert = NULL, *key = NULL;
    int rv, rc = -ST_ECONF;

    if (c->cluster_cert == NULL || c->cluster_cert_key == NULL) {
        return st_err_set(err, -ST_ECONF, "cluster_cert",
                          "cluster certificate and key must be provided to use Hybrid mode "
                          "(or cluster_mtls = off, for local development only)");
    }
    if (ca_path == NULL) {
        return st_err_set(err, -ST_ECONF, "cluster_ca_cert",
                          "cluster_ca_cert must be specified when cluster_mtls = \"pki\"");
    }
    sync_tls_server_name(c, s->url, name, sizeof(name));
    if ((ca = read_pem(ca_path, err)) == NULL || (cert = read_pem(c->cluster_cert, err)) == NULL ||
        (key = read_pem(c->cluster_cert_key, err)) == NULL) {
        goto out;
    }
    if ((rv = nng_tls_config_alloc(&cfg, NNG_TLS_MODE_CLIENT)) != 0) {
        rc = nng_fail(err, "tls", rv);
        goto out;
    }
    if ((rv = nng_tls_config_auth_mode(cfg, NNG_TLS_AUTH_MODE_OPTIONAL)) != 0 ||
        (rv = nng_tls_config_ca_chain(cfg, ca, NULL)) != 0 ||
        (rv = nng_tls_config_own_cert(cfg, cert, key, NULL)) != 0 ||
        (name[0] != '\0' && (rv = nng_tls_config_server_name(cfg, name)) != 0) ||
        (rv = nng_pipe_notify(s->sock, NNG_PIPE_EV_ADD_PRE, sync_tls_on_pipe, s)) != 0 ||
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

/* What GET /status says of the control plane (cp; "": none). */
static void
sync_set_connected(struct dp_sync *s, const char *cp)
{
    pthread_mutex_lock(&s->ctx->lock);
    st_snprintf(s->ctx->control_plane, sizeof(s->ctx->control_plane), "%s", cp);
    pthread_mutex_unlock(&s->ctx->lock);
}

/* Pipe events (on nng's threads). A lost connection ends the wait at once: req0 would
 * otherwise keep the request for a pipe that may never come.
 *
 * A pipe of a dialer closed by a move is not ours: nng 1.5.2 can still add one that
 * was connecting while its dialer closed, and req0 would send the request on it.
 * Such a pipe is closed as soon as it shows up, and when one closes, the pending
 * request (which it may have carried) is asked again at once instead of waiting for
 * req0's resend time. */
static void
sync_on_pipe(nng_pipe p, nng_pipe_ev ev, void *arg)
{
    struct dp_sync *s = arg;
    int id = nng_dialer_id(nng_pipe_dialer(p));
    const char *cp;

    if (id <= 0 || id != atomic_load(&s->dialer_id)) {
        if (ev == NNG_PIPE_EV_ADD_POST) {
            st_log(ST_LOG_DEBUG, 0, "cluster: closing a connection of a closed dialer");
            nng_pipe_close(p);
        } else if (ev == NNG_PIPE_EV_REM_POST) {
            nng_aio_cancel(s->aio); /* sync_once asks again on NNG_ECANCELED */
        }
        return;
    }
    cp = s->cps[atomic_load(&s->cur)];
    if (ev == NNG_PIPE_EV_ADD_POST) {
        atomic_store(&s->up, true);
        sync_set_connected(s, cp);
        st_log(ST_LOG_NOTICE, 0, "connected to control plane %s", cp);
    } else if (ev == NNG_PIPE_EV_REM_POST) {
        atomic_store(&s->up, false);
        atomic_store(&s->lost, true);
        sync_set_connected(s, "");
        st_log(ST_LOG_WARN, 0, "lost connection to control plane %s", cp);
        nng_aio_cancel(s->aio);
        nng_aio_cancel(s->sleep_aio);
    }
}

/* Formats the nng URL of cps[i] into buf. Returns 0 or -ST_ECONF with err filled. */
static int
sync_url_of(const struct dp_sync *s, size_t i, char *buf, size_t size, struct st_err *err)
{
    const char *scheme = s->ctx->conf->cluster_mtls == ST_MTLS_OFF ? "tcp://" : "tls+tcp://";

    if (st_snprintf(buf, size, "%s%s", scheme, s->cps[i]) < 0) {
        return st_err_set(err, -ST_ECONF, "cluster_control_plane",
                          "cluster_control_plane: '%s' is too long", s->cps[i]);
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
    /* nng redials within one attempt (DP_SYNC_CONNECT_MS); moves are ours */
    if ((rv = nng_socket_set_size(s->sock, NNG_OPT_RECVMAXSZ, (size_t)c->cluster_max_payload)) !=
            0 ||
        (rv = nng_socket_set_ms(s->sock, NNG_OPT_RECONNMINT, 500)) != 0 ||
        (rv = nng_socket_set_ms(s->sock, NNG_OPT_RECONNMAXT, 1000)) != 0 ||
        (rv = nng_pipe_notify(s->sock, NNG_PIPE_EV_ADD_POST, sync_on_pipe, s)) != 0 ||
        (rv = nng_pipe_notify(s->sock, NNG_PIPE_EV_REM_POST, sync_on_pipe, s)) != 0) {
        return nng_fail(err, "socket options", rv);
    }
    if ((rv = nng_ctx_open(&s->nctx, s->sock)) != 0 ||
        (rv = nng_ctx_set_ms(s->nctx, NNG_OPT_REQ_RESENDTIME,
                             (c->cluster_heartbeat + 30) * 1000)) != 0) {
        return nng_fail(err, "context", rv);
    }
    if ((rv = nng_aio_alloc(&s->aio, NULL, NULL)) != 0 ||
        (rv = nng_aio_alloc(&s->sleep_aio, NULL, NULL)) != 0) {
        return nng_fail(err, "aio", rv);
    }
    return 0;
}

static bool sync_close_bounded(struct dp_sync *s, bool dialer_only);

/* Closes the current dialer (and so its connection), if any. */
static void
sync_hangup(struct dp_sync *s)
{
    if (!s->dialing) {
        return;
    }
    atomic_store(&s->dialer_id, 0); /* its pipe events are ours now */
    atomic_store(&s->up, false);
    sync_set_connected(s, "");
    s->dialing = false;
    (void)sync_close_bounded(s, true);
}

/* Opens a dialer to cps[cur] (TLS unless cluster_mtls = off). nng connects in the
 * background and redials on failure until sync_hangup(). Returns 0 or a negative code
 * with err filled (nothing left open). */
static int
sync_dial(struct dp_sync *s, struct st_err *err)
{
    const struct st_conf *c = s->ctx->conf;
    int rv;

    if (sync_url_of(s, atomic_load(&s->cur), s->url, sizeof(s->url), err) < 0) {
        return -ST_ECONF;
    }
    if ((rv = nng_dialer_create(&s->dialer, s->sock, s->url)) != 0) {
        return st_err_set(err, -ST_ECONF, "cluster_control_plane", "cluster_control_plane: %s: %s",
                          s->url, nng_strerror(rv));
    }
    s->dialing = true;
    atomic_store(&s->lost, false);
    atomic_store(&s->up, false);
    if (c->cluster_mtls != ST_MTLS_OFF && sync_tls(s, err) < 0) {
        sync_hangup(s);
        return -ST_ECONF;
    }
    atomic_store(&s->dialer_id, nng_dialer_id(s->dialer));
    if ((rv = nng_dialer_start(s->dialer, NNG_FLAG_NONBLOCK)) != 0) {
        sync_hangup(s);
        return nng_fail(err, "dial", rv);
    }
    return 0;
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
            l->key = st_xstrndup(p, (size_t)(colon - p));
            l->value = st_xstrndup(colon + 1, n - (size_t)(colon - p) - 1);
        }
        p += n;
        p += *p == ',';
    }
}

/* The entry tried first: the DP id's first 32 bits (random when the id was made) modulo
 * the list, so a fleet spreads over the control planes and one DP starts with the same
 * one each time. */
static size_t
sync_first(const struct dp_sync *s)
{
    char hex[9];

    memcpy(hex, s->ctx->id, 8);
    hex[8] = '\0';
    return (size_t)(strtoul(hex, NULL, 16) % s->n_cps);
}

/* Splits cluster_control_plane (st_conf checked it and joined it with ','). */
static int
sync_cps(struct dp_sync *s, struct st_err *err)
{
    const char *p = s->ctx->conf->cluster_control_plane;
    char url[300];

    while (p != NULL && *p != '\0') {
        size_t n = strcspn(p, ", ");

        if (n > 0) {
            s->cps = st_xrealloc(s->cps, (s->n_cps + 1) * sizeof(*s->cps));
            s->cps[s->n_cps++] = st_xstrndup(p, n);
        }
        p += n;
        p += strspn(p, ", ");
    }
    if (s->n_cps == 0) {
        return st_err_set(err, -ST_ECONF, "cluster_control_plane",
                          "cluster_control_plane: required");
    }
    for (size_t i = 0; i < s->n_cps; i++) {
        nng_url *u = NULL;
        int rv;

        if (sync_url_of(s, i, url, sizeof(url), err) < 0) {
            return -ST_ECONF;
        }
        if ((rv = nng_url_parse(&u, url)) != 0) {
            return st_err_set(err, -ST_ECONF, "cluster_control_plane",
                              "cluster_control_plane: %s: %s", s->cps[i], nng_strerror(rv));
        }
        nng_url_free(u);
    }
    atomic_store(&s->cur, sync_first(s));
    return 0;
}

struct dp_sync *
dp_sync_new(struct dp_ctx *ctx, struct st_err *err)
{
    struct dp_sync *s = st_xcalloc(1, sizeof(*s));

    s->ctx = ctx;
    s->memo = st_snapshot_memo_new(); /* the atomics start zeroed: false, 0 */
    s->round_ms = DP_SYNC_ROUND_MIN_MS;
    sync_labels(s);
    if (sync_cps(s, err) < 0 || sync_open(s, err) < 0 || sync_dial(s, err) < 0) {
        dp_sync_free(s);
        return NULL;
    }
    if (s->n_cps > 1) {
        st_log(ST_LOG_INFO, 0, "cluster: %zu control planes; starting with %s", s->n_cps,
               s->cps[atomic_load(&s->cur)]);
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
    struct st_sync_req req = {0};
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
    req.dp_id = ctx->id;
    req.hostname = ctx->hostname;
    req.dp_version =
        getenv("STRAIT_TEST_DP_VERSION") ? getenv("STRAIT_TEST_DP_VERSION") : STRAIT_VERSION;
    req.have_hash = have ? hash : "";
    req.last_error = s->last_error;
    req.cert_expiry = s->cert_expiry;
    req.max_payload = s->ctx->conf->cluster_max_payload; /* the CP sends no more */
    req.goodbye = goodbye;
    req.labels = s->labels;
    req.n_labels = s->n_labels;
    req.upstream_health = health_report(ctx);
    rv = st_syncmsg_req_encode(&req, &buf, &len);
    free(req.upstream_health);
    if (rv < 0) {
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
    s->sent = false;
    nng_aio_set_msg(s->aio, msg);
    nng_aio_set_timeout(s->aio, goodbye ? DP_SYNC_BYE_MS : DP_SYNC_CONNECT_MS);
    nng_ctx_send(s->nctx, s->aio);
    nng_aio_wait(s->aio);
    if ((rv = nng_aio_result(s->aio)) != 0) {
        nng_msg_free(nng_aio_get_msg(s->aio));
        return rv;
    }
    s->sent = true; /* a connection took it */
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

void
dp_sync_poke(struct dp_sync *s)
{
    nng_aio_cancel(s->aio); /* sync_once asks again on NNG_ECANCELED, with the news */
}

static void
sync_pause(struct dp_sync *s, int ms)
{
    nng_sleep_aio(ms, s->sleep_aio);
    nng_aio_wait(s->sleep_aio);
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
    struct st_err err = {0};
    uint64_t version = 0;
    char hash[65] = "-";
    /* test knob: refuse a snapshot that holds these bytes (e.g. an entity's name) */
    const char *reject = getenv("STRAIT_TEST_DP_REJECT");

    if (resp->snapshot == NULL || resp->snapshot_len == 0) {
        st_err_set(&err, -ST_EPARSE, NULL, "empty snapshot");
    } else if (reject != NULL && *reject != '\0' &&
               memmem(resp->snapshot, resp->snapshot_len, reject, strlen(reject)) != NULL) {
        st_err_set(&err, -ST_EUNSUPPORTED, NULL, "STRAIT_TEST_DP_REJECT: the snapshot holds '%s'",
                   reject);
    } else if (dp_sync_apply(s, resp->snapshot, resp->snapshot_len, false, &err) == 0) {
        sync_set_error(s, NULL);
        return true;
    }
    (void)st_snapshot_peek(resp->snapshot, resp->snapshot_len, &version, hash);
    st_log(ST_LOG_ERR, 0, "sync: refused configuration version %llu (hash %s): %s",
           (unsigned long long)version, hash, err.msg);
    sync_set_error(s, err.msg);
    return false;
}

/* Appends to buf (holding len bytes) what nng counted against the current dialer, from
 * its statistics: "; connection refused 6 times". Nothing when nng counted nothing. */
static void
sync_dial_failures(struct dp_sync *s, char *buf, size_t size, size_t len)
{
    static const struct {
        const char *stat;
        const char *what;
    } kinds[] = {
        {"refused", "connection refused"},  {"timeout", "connect timed out"},
        {"auth", "TLS handshake failed"},   {"proto", "protocol error"},
        {"disconnect", "connection reset"}, {"reject", "certificate refused by this data plane"},
        {"other", "other error"},
    };
    nng_stat *root = NULL, *d;

    if (nng_stats_get(&root) != 0) {
        return;
    }
    if ((d = nng_stat_find_dialer(root, s->dialer)) != NULL) {
        for (size_t i = 0; i < ST_ARRAY_SIZE(kinds) && len < size; i++) {
            nng_stat *st = nng_stat_find(d, kinds[i].stat);
            unsigned long long n = st != NULL ? (unsigned long long)nng_stat_value(st) : 0;
            int w;

            if (n == 0) {
                continue;
            }
            w = snprintf(buf + len, size - len, "; %s %llu time%s", kinds[i].what, n,
                         n == 1 ? "" : "s");
            len += w > 0 ? (size_t)w : 0;
        }
    }
    nng_stats_free(root);
}

/* One exchange with the current control plane. Returns true when it answered (or the
 * thread is stopping), false with `why` filled when the DP should move to the next. */
static bool
sync_once(struct dp_sync *s, char *why, size_t size)
{
    const struct st_conf *c = s->ctx->conf;
    const int answer_s = c->cluster_heartbeat + 15;
    struct st_sync_resp resp = {0};
    int rv;

    if (atomic_load(&s->lost)) {
        st_snprintf(why, size, "connection lost");
        return false;
    }
    rv = sync_exchange(s, false, answer_s * 1000, &resp);
    if (rv != 0) {
        if (atomic_load(&s->stop) || rv == NNG_ECLOSED) {
            return true;
        }
        if (atomic_load(&s->lost)) {
            st_snprintf(why, size, "connection lost");
        } else if (rv == NNG_ECANCELED) {
            return true; /* a late cancel meant for a closed dialer: ask again */
        } else if (rv == NNG_ETIMEDOUT && !s->sent) {
            st_snprintf(why, size, "no connection within %d ms", DP_SYNC_CONNECT_MS);
            sync_dial_failures(s, why, size, strlen(why));
        } else if (rv == NNG_ETIMEDOUT) {
            st_snprintf(why, size, "no answer within %d s", answer_s);
        } else {
            st_snprintf(why, size, "%s", nng_strerror(rv));
        }
        return false;
    }
    s->failed = 0; /* an answer: the next round of failures starts from the shortest pause */
    s->round_ms = DP_SYNC_ROUND_MIN_MS;
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
    return true;
}

/* Leaves the current control plane for the next one in the list. After a full round
 * of failures, pauses round_ms with jitter (half of it to all of it) and doubles it, up
 * to DP_SYNC_ROUND_MAX_MS. */
static void
sync_move(struct dp_sync *s, const char *why)
{
    size_t from = atomic_load(&s->cur), to = (from + 1) % s->n_cps;
    char in[32] = "";
    int pause = 0;

    sync_hangup(s);
    if (++s->failed >= s->n_cps) {
        uint32_t r = 0;

        (void)st_ssl_random(&r, sizeof(r));
        pause = s->round_ms / 2 + (int)(r % (uint32_t)(s->round_ms / 2 + 1));
        s->round_ms =
            s->round_ms >= DP_SYNC_ROUND_MAX_MS / 2 ? DP_SYNC_ROUND_MAX_MS : s->round_ms * 2;
        s->failed = 0;
        st_snprintf(in, sizeof(in), " in %d ms", pause); /* one CP: every move is a round */
    }
    st_log(ST_LOG_WARN, 0, "cluster: control plane %s unreachable (%s); trying %s%s", s->cps[from],
           why, to == from ? "it again" : s->cps[to], in);
    atomic_store(&s->cur, to);
    if (pause > 0) {
        sync_pause(s, pause);
    }
}

static void *
sync_main(void *arg)
{
    struct dp_sync *s = arg;

    while (!atomic_load(&s->stop)) {
        struct st_err err;
        char why[300];

        if (!s->dialing && sync_dial(s, &err) < 0) {
            sync_move(s, err.msg);
            continue;
        }
        if (!sync_once(s, why, sizeof(why)) && !atomic_load(&s->stop)) {
            sync_move(s, why);
        }
    }
    if (s->goodbye && atomic_load(&s->up)) {
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
        nng_aio_cancel(s->sleep_aio);
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

struct sync_closer {
    nng_socket sock;
    nng_dialer dialer;
    bool dialer_only;
};

static void
sync_close_main(void *arg)
{
    struct sync_closer *cl = arg;

    if (cl->dialer_only) {
        nng_dialer_close(cl->dialer);
    } else {
        nng_close(cl->sock);
    }
    free(cl);
}

/* Closes the dialer (dialer_only) or the socket, waiting at most DP_SYNC_CLOSE_MS.
 * nng 1.5.2 can wait forever in nng_close() after the CP refused a TLS pipe during
 * negotiation (seen with a foreign cluster certificate); a DP that is stopping, or
 * moving to another CP, must not hang on it. Returns false when the close is still
 * stuck and the thread was left behind. */
static bool
sync_close_bounded(struct dp_sync *s, bool dialer_only)
{
    struct sync_closer *cl = st_xcalloc(1, sizeof(*cl));

    cl->sock = s->sock;
    cl->dialer = s->dialer;
    cl->dialer_only = dialer_only;
    if (st_run_bounded(sync_close_main, cl, DP_SYNC_CLOSE_MS)) {
        return true;
    }
    atomic_store(&sync_nng_stuck, true);
    st_log(ST_LOG_WARN, 0, "sync: the cluster %s did not close within %d ms; not waiting",
           dialer_only ? "dialer" : "socket", DP_SYNC_CLOSE_MS);
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
    if (s->sleep_aio != NULL) {
        nng_aio_stop(s->sleep_aio);
    }
    sync_hangup(s);
    if (!sync_close_bounded(s, false)) {
        /* The stuck close may still run sync_on_pipe(s) and touch s->aio: keep all of
         * s, reachable from here (so LeakSanitizer does not call it a leak). */
        sync_abandoned = s;
        return;
    }
    nng_aio_free(s->aio);
    nng_aio_free(s->sleep_aio);
    free(s->last_error);
    st_snapshot_memo_free(s->memo);
    for (size_t i = 0; i < s->n_labels; i++) {
        free(s->labels[i].key);
        free(s->labels[i].value);
    }
    free(s->labels);
    for (size_t i = 0; i < s->n_cps; i++) {
        free(s->cps[i]);
    }
    free(s->cps);
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
