/* Sync server (see cp_sync.h).
 *
 * Each nng context is a small state machine: RECV (waiting for a DP's request) ->
 * either SEND at once (the DP's have_hash differs from the current hash, a goodbye, a
 * refusal) or WAIT (held on a timer of cluster_heartbeat seconds) -> SEND -> RECV.
 * A configuration change cancels every WAIT timer, and the timer callback answers with
 * whatever is current: OK + snapshot when the hash differs, else NOT_MODIFIED. There is
 * always at least one context receiving: when the last receiving context takes a
 * request, another one is opened. Contexts live until the server stops.
 *
 * Every submission to nng happens under `mu` after checking `closing`, so after stop
 * sets `closing` nothing new is started, and nng_close() fails what is in flight. */
#include "cp_sync.h"

#include <arpa/inet.h>
#include <errno.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/supplemental/tls/tls.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cp_registry.h"
#include "cp_snapshot.h"
#include "st_addr.h"
#include "st_conf.h"
#include "st_err.h"
#include "st_log.h"
#include "st_syncmsg.h"
#include "st_util.h"

#define SYNC_MAX_CTX 4096

enum sync_state {
    SYNC_IDLE = 0,
    SYNC_RECV,
    SYNC_WAIT,
    SYNC_SEND,
};

struct sync_ctx {
    struct cp_sync *sy;
    nng_ctx ctx;
    nng_aio *aio;   /* recv and send */
    nng_aio *timer; /* the hold */
    enum sync_state state;
    char have_hash[65];
    struct sync_ctx *next;
};

struct cp_sync {
    const struct st_conf *conf;
    struct cp_snapshot *sn;
    struct cp_registry *reg;
    nng_socket sock;
    bool sock_open;
    nng_tls_config *tls;
    pthread_mutex_t mu;
    struct sync_ctx *all;
    size_t n_ctx;
    size_t n_receiving;
    uint64_t gen; /* bumped by every notify */
    bool closing;
    bool corrupt; /* STRAIT_TEST_CORRUPT_SNAPSHOT */
};

static void ctx_cb(void *arg);
static void timer_cb(void *arg);

/* ------------------------------------------------------------------------ */
/* contexts */

/* Posts a receive on c. Called with mu held. */
static void
post_recv_locked(struct sync_ctx *c)
{
    c->state = SYNC_RECV;
    c->sy->n_receiving++;
    nng_ctx_recv(c->ctx, c->aio);
}

/* Opens one more receiving context. Called with mu held. */
static void
add_ctx_locked(struct cp_sync *sy)
{
    struct sync_ctx *c;
    int rv;

    if (sy->closing || sy->n_ctx >= SYNC_MAX_CTX) {
        if (sy->n_ctx >= SYNC_MAX_CTX) {
            st_log(ST_LOG_WARN, 0, "cluster: %d data planes held at once; not taking more",
                   SYNC_MAX_CTX);
        }
        return;
    }
    c = st_xcalloc(1, sizeof(*c));
    c->sy = sy;
    rv = nng_ctx_open(&c->ctx, sy->sock);
    if (rv == 0) {
        rv = nng_aio_alloc(&c->aio, ctx_cb, c);
    }
    if (rv == 0) {
        rv = nng_aio_alloc(&c->timer, timer_cb, c);
    }
    if (rv != 0) {
        st_log(ST_LOG_ERR, 0, "cluster: cannot open a context: %s", nng_strerror(rv));
        nng_aio_free(c->aio);
        nng_aio_free(c->timer);
        if (nng_ctx_id(c->ctx) > 0) {
            nng_ctx_close(c->ctx);
        }
        free(c);
        return;
    }
    c->next = sy->all;
    sy->all = c;
    sy->n_ctx++;
    post_recv_locked(c);
}

static void
ensure_receiver(struct cp_sync *sy)
{
    pthread_mutex_lock(&sy->mu);
    if (sy->n_receiving == 0) {
        add_ctx_locked(sy);
    }
    pthread_mutex_unlock(&sy->mu);
}

/* ------------------------------------------------------------------------ */
/* answers */

/* Changes one hex digit of the hash the snapshot carries, so its config bytes no
 * longer match it (test knob STRAIT_TEST_CORRUPT_SNAPSHOT; a byte search, not a parse). */
static void
corrupt_copy(const struct cp_snapshot_blob *b, uint8_t *copy)
{
    uint8_t *p = memmem(copy, b->len, b->hash, 64);

    if (p != NULL) {
        p[0] = p[0] == '0' ? '1' : '0';
    } else if (b->len > 0) {
        copy[b->len - 1] ^= 0x01;
    }
}

/* Sends a response on c: OK with the snapshot b, or the status and reason. */
static void
send_resp(struct sync_ctx *c, enum st_sync_status status, const char *reason,
          const struct cp_snapshot_blob *b)
{
    struct cp_sync *sy = c->sy;
    struct st_sync_resp resp = {.status = status, .reason = (char *)reason};
    uint8_t *copy = NULL;
    uint8_t *buf = NULL;
    size_t len = 0;
    nng_msg *m = NULL;
    int rv;

    if (status == ST_SYNC_OK) {
        resp.snapshot = b->bytes;
        resp.snapshot_len = b->len;
        if (sy->corrupt) {
            copy = st_xmalloc(b->len > 0 ? b->len : 1);
            memcpy(copy, b->bytes, b->len);
            corrupt_copy(b, copy);
            resp.snapshot = copy;
        }
    }
    rv = st_syncmsg_resp_encode(&resp, &buf, &len);
    free(copy);
    if (rv == 0) {
        rv = nng_msg_alloc(&m, 0) == 0 ? 0 : -ENOMEM;
    }
    if (rv == 0 && nng_msg_append(m, buf, len) != 0) {
        rv = -ENOMEM;
    }
    free(buf);
    pthread_mutex_lock(&sy->mu);
    if (rv < 0 || sy->closing) {
        if (rv < 0) {
            st_log(ST_LOG_ERR, 0, "cluster: cannot build a response: %s", st_strerror(rv));
        }
        nng_msg_free(m);
        c->state = SYNC_IDLE;
        if (!sy->closing) {
            post_recv_locked(c);
        }
        pthread_mutex_unlock(&sy->mu);
        return;
    }
    c->state = SYNC_SEND;
    nng_aio_set_msg(c->aio, m);
    nng_ctx_send(c->ctx, c->aio);
    pthread_mutex_unlock(&sy->mu);
}

/* Answers with the current snapshot if the DP's hash differs, else NOT_MODIFIED. */
static void
answer_current(struct sync_ctx *c)
{
    struct cp_snapshot_blob *b = cp_snapshot_acquire(c->sy->sn);

    if (strcmp(b->hash, c->have_hash) != 0) {
        send_resp(c, ST_SYNC_OK, NULL, b);
    } else {
        send_resp(c, ST_SYNC_NOT_MODIFIED, NULL, NULL);
    }
    cp_snapshot_blob_unref(b);
}

/* Kong's rule (kong/clustering/compat): same major, DP minor <= CP minor. */
static bool
version_ok(const char *dp, char *reason, size_t size)
{
    unsigned cmaj = 0, cmin = 0, dmaj = 0, dmin = 0;

    sscanf(STRAIT_VERSION, "%u.%u", &cmaj, &cmin);
    if (dp == NULL || sscanf(dp, "%u.%u", &dmaj, &dmin) != 2) {
        st_snprintf(reason, size, "data plane didn't pass a valid version");
        return false;
    }
    if (dmaj != cmaj || dmin > cmin) {
        st_snprintf(reason, size,
                    "data plane version %s is incompatible with control plane version %s "
                    "(%u.x.y with x <= %u are accepted)",
                    dp, STRAIT_VERSION, cmaj, cmin);
        return false;
    }
    return true;
}

static void
pipe_ip(nng_pipe p, char *buf, size_t size)
{
    nng_sockaddr sa;

    st_snprintf(buf, size, "unknown");
    if (nng_pipe_get_addr(p, NNG_OPT_REMADDR, &sa) != 0) {
        return;
    }
    if (sa.s_family == NNG_AF_INET) {
        inet_ntop(AF_INET, &sa.s_in.sa_addr, buf, (socklen_t)size);
    } else if (sa.s_family == NNG_AF_INET6) {
        inet_ntop(AF_INET6, sa.s_in6.sa_addr, buf, (socklen_t)size);
    }
}

/* Holds c until the configuration changes or the heartbeat passes. */
static void
hold(struct sync_ctx *c, uint64_t gen0)
{
    struct cp_sync *sy = c->sy;

    pthread_mutex_lock(&sy->mu);
    if (sy->closing) {
        c->state = SYNC_IDLE;
        pthread_mutex_unlock(&sy->mu);
        return;
    }
    c->state = SYNC_WAIT;
    nng_sleep_aio((nng_duration)sy->conf->cluster_heartbeat * 1000, c->timer);
    if (sy->gen != gen0) {
        nng_aio_cancel(c->timer); /* a change raced the decision: answer now */
    }
    pthread_mutex_unlock(&sy->mu);
}

static void
handle_request(struct sync_ctx *c, nng_msg *m)
{
    struct cp_sync *sy = c->sy;
    struct st_sync_req req;
    struct cp_snapshot_blob *b;
    char ip[64];
    char reason[256];
    uint64_t gen0;

    pipe_ip(nng_msg_get_pipe(m), ip, sizeof(ip));
    if (st_syncmsg_req_decode(nng_msg_body(m), nng_msg_len(m), &req) < 0) {
        nng_msg_free(m);
        st_log(ST_LOG_INFO, 0, "cluster: undecodable request from %s", ip);
        send_resp(c, ST_SYNC_REFUSED, "cannot decode the sync request", NULL);
        return;
    }
    nng_msg_free(m);
    if (!version_ok(req.dp_version, reason, sizeof(reason))) {
        st_log(ST_LOG_WARN, 0, "cluster: refused data plane %s (%s): %s", ip,
               req.dp_id != NULL ? req.dp_id : "-", reason);
        st_syncmsg_req_fini(&req);
        send_resp(c, ST_SYNC_REFUSED, reason, NULL);
        return;
    }
    cp_registry_seen(sy->reg, &req, ip);
    if (req.last_error != NULL && req.last_error[0] != '\0') {
        st_log(ST_LOG_WARN, 0, "cluster: data plane %s (%s) could not apply the configuration: %s",
               req.dp_id, ip, req.last_error);
    }
    if (req.goodbye) {
        st_log(ST_LOG_INFO, 0, "cluster: data plane %s (%s) said goodbye", req.dp_id, ip);
        st_syncmsg_req_fini(&req);
        send_resp(c, ST_SYNC_NOT_MODIFIED, NULL, NULL);
        return;
    }
    st_snprintf(c->have_hash, sizeof(c->have_hash), "%s",
                req.have_hash != NULL ? req.have_hash : "");
    st_syncmsg_req_fini(&req);

    pthread_mutex_lock(&sy->mu);
    gen0 = sy->gen;
    pthread_mutex_unlock(&sy->mu);
    b = cp_snapshot_acquire(sy->sn);
    if (strcmp(b->hash, c->have_hash) != 0) {
        send_resp(c, ST_SYNC_OK, NULL, b);
    } else {
        hold(c, gen0);
    }
    cp_snapshot_blob_unref(b);
}

/* ------------------------------------------------------------------------ */
/* callbacks */

static void
ctx_cb(void *arg)
{
    struct sync_ctx *c = arg;
    struct cp_sync *sy = c->sy;
    int rv = nng_aio_result(c->aio);
    enum sync_state state;

    pthread_mutex_lock(&sy->mu);
    state = c->state;
    if (state == SYNC_RECV) {
        sy->n_receiving--;
    }
    pthread_mutex_unlock(&sy->mu);

    if (state == SYNC_SEND) {
        if (rv != 0) {
            nng_msg_free(nng_aio_get_msg(c->aio));
        }
        pthread_mutex_lock(&sy->mu);
        c->state = SYNC_IDLE;
        if (!sy->closing) {
            post_recv_locked(c);
        }
        pthread_mutex_unlock(&sy->mu);
        return;
    }
    if (state != SYNC_RECV) {
        return;
    }
    if (rv != 0) {
        pthread_mutex_lock(&sy->mu);
        c->state = SYNC_IDLE;
        if (!sy->closing && rv != NNG_ECLOSED) {
            post_recv_locked(c);
        }
        pthread_mutex_unlock(&sy->mu);
        return;
    }
    ensure_receiver(sy);
    handle_request(c, nng_aio_get_msg(c->aio));
}

static void
timer_cb(void *arg)
{
    struct sync_ctx *c = arg;
    bool closing;

    pthread_mutex_lock(&c->sy->mu);
    closing = c->sy->closing;
    if (closing || c->state != SYNC_WAIT) {
        pthread_mutex_unlock(&c->sy->mu);
        return;
    }
    pthread_mutex_unlock(&c->sy->mu);
    answer_current(c);
}

void
cp_sync_notify(struct cp_sync *sy)
{
    nng_aio **timers;
    size_t n = 0;

    pthread_mutex_lock(&sy->mu);
    sy->gen++;
    timers = st_xcalloc(sy->n_ctx + 1, sizeof(*timers));
    for (struct sync_ctx *c = sy->all; c != NULL; c = c->next) {
        if (c->state == SYNC_WAIT) {
            timers[n++] = c->timer;
        }
    }
    pthread_mutex_unlock(&sy->mu);
    /* contexts are freed only by cp_sync_stop, so the timers stay valid */
    for (size_t i = 0; i < n; i++) {
        nng_aio_cancel(timers[i]);
    }
    free(timers);
}

void
cp_sync_notify_cb(void *arg)
{
    cp_sync_notify(arg);
}

/* Refuses a DP whose certificate did not verify against the cluster certificate
 * (shared mode: the cluster certificate is the only CA, verification optional so that
 * the refusal can be logged). Closing at ADD_PRE: the socket never sees the pipe. */
static void
pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
    bool verified = false;
    char ip[64];

    (void)arg;
    if (ev != NNG_PIPE_EV_ADD_PRE) {
        return;
    }
    if (nng_pipe_get_bool(p, NNG_OPT_TLS_VERIFIED, &verified) == 0 && verified) {
        return;
    }
    pipe_ip(p, ip, sizeof(ip));
    st_log(ST_LOG_WARN, 0,
           "cluster: refused data plane %s: its certificate does not match the cluster "
           "certificate",
           ip);
    nng_pipe_close(p);
}

/* ------------------------------------------------------------------------ */
/* start and stop */

/* A PEM value: the text itself if it is PEM, else the contents of the file it names. */
static char *
load_pem(const char *key, const char *value, struct st_err *err)
{
    FILE *f;
    char *buf;
    long n;

    if (strncmp(value, "-----BEGIN", 10) == 0) {
        return st_xstrdup(value);
    }
    f = fopen(value, "rb");
    if (f == NULL) {
        st_err_set(err, -errno, key, "%s: cannot read %s: %s", key, value, strerror(errno));
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (n < 0 || n > (1 << 20)) {
        fclose(f);
        st_err_set(err, -ST_ECONF, key, "%s: %s is not a PEM file", key, value);
        return NULL;
    }
    buf = st_xmalloc((size_t)n + 1);
    buf[fread(buf, 1, (size_t)n, f)] = '\0';
    fclose(f);
    return buf;
}

static int
setup_tls(struct cp_sync *sy, struct st_err *err)
{
    const struct st_conf *conf = sy->conf;
    char *cert = NULL;
    char *key = NULL;
    int rv;
    int rc = -ST_ECONF;

    if (conf->cluster_cert == NULL || conf->cluster_cert_key == NULL) {
        return st_err_set(err, -ST_ECONF, "cluster_cert",
                          "cluster certificate and key must be provided (cluster_cert, "
                          "cluster_cert_key), or set cluster_mtls = off for local "
                          "development");
    }
    cert = load_pem("cluster_cert", conf->cluster_cert, err);
    key = cert != NULL ? load_pem("cluster_cert_key", conf->cluster_cert_key, err) : NULL;
    if (key == NULL) {
        rc = err != NULL && err->code != 0 ? err->code : -ST_ECONF;
        goto out;
    }
    rv = nng_tls_config_alloc(&sy->tls, NNG_TLS_MODE_SERVER);
    if (rv == 0) {
        rv = nng_tls_config_own_cert(sy->tls, cert, key, NULL);
        if (rv != 0) {
            st_err_set(err, -ST_ECONF, "cluster_cert", "cluster_cert: cannot use %s: %s",
                       conf->cluster_cert, nng_strerror(rv));
            goto out;
        }
        rv = nng_tls_config_ca_chain(sy->tls, cert, NULL);
    }
    if (rv == 0) {
        rv = nng_tls_config_auth_mode(sy->tls, NNG_TLS_AUTH_MODE_OPTIONAL);
    }
    if (rv != 0) {
        st_err_set(err, -ST_ECONF, "cluster_cert", "cluster TLS: %s", nng_strerror(rv));
        goto out;
    }
    rc = 0;
out:
    free(cert);
    free(key);
    return rc;
}

static int
listen_on(struct cp_sync *sy, struct st_err *err)
{
    const struct st_conf *conf = sy->conf;
    const bool tls = conf->cluster_mtls != ST_MTLS_OFF;
    char addr[160];
    char url[200];
    nng_listener l;
    int rv;

    if (conf->cluster_listen.n == 0) {
        return st_err_set(err, -ST_ECONF, "cluster_listen",
                          "cluster_listen must be specified on a control plane");
    }
    st_addr_format((const struct sockaddr *)&conf->cluster_listen.v[0].addr, addr, sizeof(addr));
    st_snprintf(url, sizeof(url), "%s://%s", tls ? "tls+tcp" : "tcp", addr);
    rv = nng_listener_create(&l, sy->sock, url);
    if (rv == 0 && tls) {
        rv = nng_listener_set_ptr(l, NNG_OPT_TLS_CONFIG, sy->tls);
    }
    if (rv == 0) {
        rv = nng_listener_start(l, 0);
    }
    if (rv != 0) {
        return st_err_set(err, -ST_ECONF, "cluster_listen",
                          "cluster_listen: cannot listen on %s: %s", url, nng_strerror(rv));
    }
    st_log(ST_LOG_NOTICE, 0, "cluster: listening on %s", url);
    return 0;
}

int
cp_sync_start(const struct st_conf *conf, struct cp_snapshot *sn, struct cp_registry *reg,
              struct cp_sync **out, struct st_err *err)
{
    struct cp_sync *sy = st_xcalloc(1, sizeof(*sy));
    const char *knob = getenv("STRAIT_TEST_CORRUPT_SNAPSHOT");
    int rc = 0;
    int rv;

    *out = NULL;
    sy->conf = conf;
    sy->sn = sn;
    sy->reg = reg;
    sy->corrupt = knob != NULL && strcmp(knob, "1") == 0;
    pthread_mutex_init(&sy->mu, NULL);
    if (sy->corrupt) {
        st_log(ST_LOG_WARN, 0,
               "cluster: STRAIT_TEST_CORRUPT_SNAPSHOT is set: every "
               "snapshot sent is corrupted on purpose");
    }
    if (conf->cluster_mtls == ST_MTLS_OFF) {
        st_log(ST_LOG_WARN, 0,
               "cluster: cluster_mtls = off: the cluster link is plain TCP "
               "without authentication; use it for local development only");
    } else if (conf->cluster_mtls == ST_MTLS_PKI) {
        rc = st_err_set(err, -ST_EUNSUPPORTED, "cluster_mtls",
                        "cluster_mtls = pki is not supported yet");
        goto out;
    } else {
        rc = setup_tls(sy, err);
        if (rc < 0) {
            goto out;
        }
    }
    rv = nng_rep0_open(&sy->sock);
    if (rv != 0) {
        rc = st_err_set(err, -ENOMEM, NULL, "cluster: cannot open a socket: %s", nng_strerror(rv));
        goto out;
    }
    sy->sock_open = true;
    nng_socket_set_size(sy->sock, NNG_OPT_RECVMAXSZ, (size_t)conf->cluster_max_payload);
    if (sy->tls != NULL) {
        nng_pipe_notify(sy->sock, NNG_PIPE_EV_ADD_PRE, pipe_cb, sy);
    }
    rc = listen_on(sy, err);
    if (rc < 0) {
        goto out;
    }
    pthread_mutex_lock(&sy->mu);
    add_ctx_locked(sy);
    pthread_mutex_unlock(&sy->mu);
out:
    if (rc < 0) {
        cp_sync_stop(sy);
        return rc;
    }
    *out = sy;
    return 0;
}

void
cp_sync_stop(struct cp_sync *sy)
{
    struct sync_ctx *c;

    if (sy == NULL) {
        return;
    }
    pthread_mutex_lock(&sy->mu);
    sy->closing = true;
    pthread_mutex_unlock(&sy->mu);
    if (sy->sock_open) {
        nng_close(sy->sock);
    }
    for (c = sy->all; c != NULL; c = c->next) {
        nng_aio_stop(c->timer);
        nng_aio_stop(c->aio);
    }
    while ((c = sy->all) != NULL) {
        sy->all = c->next;
        nng_ctx_close(c->ctx);
        nng_aio_free(c->timer);
        nng_aio_free(c->aio);
        free(c);
    }
    if (sy->tls != NULL) {
        nng_tls_config_free(sy->tls);
    }
    pthread_mutex_destroy(&sy->mu);
    free(sy);
}
