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
 * sets `closing` nothing new is started, and nng_close() fails what is in flight.
 *
 * nng listens on 127.0.0.1 (an ephemeral port) behind cp_gate, which owns cluster_listen
 * and bounds the connections that have not finished their handshake (issue 14, defect
 * 3). A pipe's remote address is then the gate's end of the relay: pipe_addr() maps it
 * back to the DP's own address, and pipe_cb tells the gate which relays are verified. */
#include "cp_sync.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/supplemental/tls/tls.h>
#include <nng/supplemental/util/platform.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cp_gate.h"
#include "cp_registry.h"
#include "cp_snapshot.h"
#include "st_addr.h"
#include "st_conf.h"
#include "st_err.h"
#include "st_file.h"
#include "st_log.h"
#include "st_syncmsg.h"
#include "st_util.h"

#define SYNC_MAX_CTX 4096

/* A DP that is refused reconnects at once, again and again: pipe_cb logs one line per
 * address every REFUSAL_QUIET_MS at most, with the number of refusals it did not log. */
#define REFUSAL_SLOTS    16
#define REFUSAL_QUIET_MS 10000

/* nng 1.5.2 loses a TLS connection's close that arrives before the protocol reads from
 * it: the read then waits forever and the pipe never goes away (on the DP: until its
 * receive timeout). pipe_cb waits REFUSAL_PAUSE_MS before closing a refused pipe, so
 * that the DP (which completed its side of the handshake) is reading when the close
 * arrives. pipe_cb holds the listener's accept meanwhile, so the pauses draw on a budget
 * that grows by 1 ms every REFUSAL_BUDGET_PER ms up to REFUSAL_BUDGET_MAX ms: a refused
 * DP's first retries are all paused, a storm of refusals costs at most a fifth of the
 * accept time (beyond the budget, refused pipes are closed at once). */
#define REFUSAL_PAUSE_MS   250
#define REFUSAL_BUDGET_PER 5
#define REFUSAL_BUDGET_MAX 1000

struct refusal {
    char ip[64];
    int64_t logged_ms; /* monotonic; 0: free slot */
    unsigned quiet;    /* refusals since, not logged */
};

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
    int64_t dp_max; /* the asking DP's cluster_max_payload (0: it did not say) */
    char dp_id[64]; /* the asking DP */
    struct sync_ctx *next;
};

struct cp_sync {
    const struct st_conf *conf;
    struct cp_snapshot *sn;
    struct cp_registry *reg;
    nng_socket sock;
    bool sock_open;
    struct cp_gate *gate; /* cluster_listen, in front of sock's listener */
    nng_tls_config *tls;
    pthread_mutex_t mu;
    struct sync_ctx *all;
    size_t n_ctx;
    size_t n_receiving;
    uint64_t gen; /* bumped by every notify */
    bool closing;
    bool corrupt;           /* STRAIT_TEST_CORRUPT_SNAPSHOT */
    uint64_t big_logged;    /* the last version refused as beyond cluster_max_payload, under mu */
    uint64_t dp_big_logged; /* ... as beyond a DP's, under mu */
    struct refusal refused[REFUSAL_SLOTS]; /* pipe_cb's log, under mu */
    int64_t refusal_budget_ms;             /* pipe_cb's pauses, under mu */
    int64_t refusal_budget_at;             /* monotonic ms of its last update */
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

/* Ends c's exchange: it receives again unless the server is closing (or again is
 * false). Called with mu held. */
static void
idle_locked(struct sync_ctx *c, bool again)
{
    c->state = SYNC_IDLE;
    if (again && !c->sy->closing) {
        post_recv_locked(c);
    }
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

/* nng's header on a reply (the request id) counts toward the DP's NNG_OPT_RECVMAXSZ. */
#define SYNC_REPLY_SLACK 64

/* Whether an answer of len bytes carrying b is beyond cluster_max_payload: the CP's (dp
 * false), or the asking DP's, which its request carries (dp true). Sent anyway, nng on the
 * DP would drop it with the connection and say nothing (nng 1.5.2), so the DP is told
 * instead. Fills reason, the refusal the DP logs; logs once per version. */
static bool
too_big(struct sync_ctx *c, const struct cp_snapshot_blob *b, size_t len, bool dp, char *reason,
        size_t size)
{
    struct cp_sync *sy = c->sy;
    const long long cp_max = (long long)sy->conf->cluster_max_payload;
    const long long max = dp ? (long long)c->dp_max : cp_max;
    uint64_t *logged = dp ? &sy->dp_big_logged : &sy->big_logged;
    bool first;

    if (max <= 0 || (long long)len + SYNC_REPLY_SLACK <= max) {
        return false;
    }
    if (dp) {
        st_snprintf(reason, size,
                    "configuration version %llu is %zu bytes, beyond this data plane's "
                    "cluster_max_payload (%lld bytes): raise it to the control plane's (%lld "
                    "bytes)",
                    (unsigned long long)b->version, len, max, cp_max);
    } else {
        st_snprintf(reason, size,
                    "configuration version %llu is %zu bytes, beyond cluster_max_payload (%lld "
                    "bytes): raise cluster_max_payload on the control plane and every data plane",
                    (unsigned long long)b->version, len, max);
    }
    pthread_mutex_lock(&sy->mu);
    first = *logged != b->version;
    *logged = b->version;
    pthread_mutex_unlock(&sy->mu);
    if (first && dp) {
        st_log(ST_LOG_WARN, 0,
               "cluster: not sent to a data plane whose cluster_max_payload is %lld bytes: %s", max,
               reason);
    } else if (first) {
        st_log(ST_LOG_ERR, 0, "cluster: not sent to data planes: %s", reason);
    }
    return true;
}

/* Sends a response on c: OK with the snapshot b, or the status and reason. The
 * response is packed straight into the nng message: one copy of the snapshot per send. */
static void
send_resp(struct sync_ctx *c, enum st_sync_status status, const char *reason,
          const struct cp_snapshot_blob *b)
{
    struct cp_sync *sy = c->sy;
    struct st_sync_resp resp = {.status = status, .reason = (char *)reason};
    uint8_t *copy = NULL;
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
    rv = st_syncmsg_resp_size(&resp, &len);
    if (rv == 0 && status == ST_SYNC_OK) {
        char why[300];

        if (too_big(c, b, len, false, why, sizeof(why)) ||
            too_big(c, b, len, true, why, sizeof(why))) {
            free(copy);
            send_resp(c, ST_SYNC_REFUSED, why, NULL);
            return;
        }
    }
    if (rv == 0 && nng_msg_alloc(&m, len) != 0) {
        rv = -ENOMEM;
    }
    if (rv == 0) {
        rv = st_syncmsg_resp_pack(&resp, nng_msg_body(m));
    }
    free(copy);
    pthread_mutex_lock(&sy->mu);
    if (rv < 0 || sy->closing) {
        if (rv < 0) {
            st_log(ST_LOG_ERR, 0, "cluster: cannot build a response: %s", st_strerror(rv));
        }
        nng_msg_free(m);
        idle_locked(c, true);
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

enum version_verdict {
    VERSION_OK = 0,
    VERSION_MISSING,      /* refused, not listed (Kong: HTTP 400 before registering) */
    VERSION_INCOMPATIBLE, /* refused, listed as kong_version_incompatible */
};

/* Kong's extract_major_minor: "<major>.<minor>.<patch>", any suffix after the patch. */
static bool
version_parse(const char *v, unsigned long *maj, unsigned long *min)
{
    char *end = NULL;

    if (v == NULL || !isdigit((unsigned char)v[0])) {
        return false;
    }
    *maj = strtoul(v, &end, 10);
    if (end[0] != '.' || !isdigit((unsigned char)end[1])) {
        return false;
    }
    *min = strtoul(end + 1, &end, 10);
    return end[0] == '.' && isdigit((unsigned char)end[1]);
}

/* Kong's check_kong_version_compatibility (kong/clustering/compat): same major, DP minor
 * <= CP minor, patch and suffix ignored; its messages. */
static enum version_verdict
version_ok(const char *dp, char *reason, size_t size)
{
    unsigned long cmaj = 0, cmin = 0, dmaj = 0, dmin = 0;

    (void)version_parse(STRAIT_VERSION, &cmaj, &cmin);
    if (dp == NULL || dp[0] == '\0') {
        st_snprintf(reason, size, "data plane didn't pass the version");
        return VERSION_MISSING;
    }
    if (!version_parse(dp, &dmaj, &dmin)) {
        st_snprintf(reason, size,
                    "data plane version is incompatible with control plane version %s "
                    "(%lu.x.y are accepted)",
                    STRAIT_VERSION, cmaj);
        return VERSION_INCOMPATIBLE;
    }
    if (dmaj != cmaj) {
        st_snprintf(reason, size,
                    "data plane version %s is incompatible with control plane version %s "
                    "(%lu.x.y are accepted)",
                    dp, STRAIT_VERSION, cmaj);
        return VERSION_INCOMPATIBLE;
    }
    if (dmin > cmin) {
        st_snprintf(reason, size,
                    "data plane version %s is incompatible with older control plane version %s", dp,
                    STRAIT_VERSION);
        return VERSION_INCOMPATIBLE;
    }
    if (dmin != cmin) {
        st_snprintf(reason, size,
                    "data plane minor version %s is different to control plane minor version %s",
                    dp, STRAIT_VERSION);
    }
    return VERSION_OK;
}

/* The local port of the gate's relay that pipe p came through (its remote address on
 * 127.0.0.1), 0 if it did not come through the gate. */
static uint16_t
pipe_relay_port(nng_pipe p)
{
    nng_sockaddr sa;

    if (nng_pipe_get_addr(p, NNG_OPT_REMADDR, &sa) != 0 || sa.s_family != NNG_AF_INET ||
        sa.s_in.sa_addr != htonl(INADDR_LOOPBACK)) {
        return 0;
    }
    return ntohs(sa.s_in.sa_port);
}

/* The address of pipe p's peer: the DP's own (from the gate), else what nng says.
 * Returns false when there is none. */
static bool
pipe_addr(const struct cp_sync *sy, nng_pipe p, struct sockaddr_storage *out)
{
    const uint16_t relay = pipe_relay_port(p);
    nng_sockaddr sa;

    memset(out, 0, sizeof(*out));
    if (relay != 0 && sy->gate != NULL && cp_gate_peer(sy->gate, relay, out)) {
        return true;
    }
    if (nng_pipe_get_addr(p, NNG_OPT_REMADDR, &sa) != 0) {
        return false;
    }
    if (sa.s_family == NNG_AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)out;

        sin->sin_family = AF_INET;
        sin->sin_port = sa.s_in.sa_port;
        sin->sin_addr.s_addr = sa.s_in.sa_addr;
        return true;
    }
    if (sa.s_family == NNG_AF_INET6) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)out;

        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = sa.s_in6.sa_port;
        memcpy(&sin6->sin6_addr, sa.s_in6.sa_addr, sizeof(sin6->sin6_addr));
        return true;
    }
    return false;
}

/* The DP's IP address, for the registry and the logs ("unknown" without one). */
static void
pipe_ip(const struct cp_sync *sy, nng_pipe p, char *buf, size_t size)
{
    struct sockaddr_storage ss;

    st_snprintf(buf, size, "unknown");
    if (!pipe_addr(sy, p, &ss)) {
        return;
    }
    if (ss.ss_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)&ss)->sin_addr, buf, (socklen_t)size);
    } else {
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)&ss)->sin6_addr, buf, (socklen_t)size);
    }
}

/* Holds c until the configuration changes or the heartbeat passes. */
static void
hold(struct sync_ctx *c, uint64_t gen0)
{
    struct cp_sync *sy = c->sy;

    pthread_mutex_lock(&sy->mu);
    if (sy->closing) {
        idle_locked(c, false);
        pthread_mutex_unlock(&sy->mu);
        return;
    }
    /* a DP asks again while held when it has news (its health): its older request is
     * answered now (its REQ drops the answer) rather than held to the heartbeat */
    for (struct sync_ctx *o = sy->all; o != NULL; o = o->next) {
        if (o != c && o->state == SYNC_WAIT && strcmp(o->dp_id, c->dp_id) == 0) {
            nng_aio_cancel(o->timer);
        }
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
    char reason[256] = "";
    enum version_verdict vv;
    uint64_t gen0;
    int rc;

    pipe_ip(sy, nng_msg_get_pipe(m), ip, sizeof(ip));
    rc = st_syncmsg_req_decode(nng_msg_body(m), nng_msg_len(m), &req);
    nng_msg_free(m);
    if (rc < 0) {
        st_log(ST_LOG_INFO, 0, "cluster: undecodable request from %s", ip);
        send_resp(c, ST_SYNC_REFUSED, "cannot decode the sync request", NULL);
        return;
    }
    if (req.dp_id == NULL || req.dp_id[0] == '\0') {
        st_log(ST_LOG_WARN, 0, "cluster: refused data plane %s: data plane didn't pass the id", ip);
        st_snprintf(reason, sizeof(reason), "data plane didn't pass the id");
        goto refuse;
    }
    vv = version_ok(req.dp_version, reason, sizeof(reason));
    if (vv != VERSION_OK) {
        st_log(ST_LOG_WARN, 0, "cluster: refused data plane %s (%s): %s", ip, req.dp_id, reason);
        if (vv == VERSION_INCOMPATIBLE) {
            cp_registry_seen(sy->reg, &req, ip, CP_REGISTRY_SYNC_VERSION_INCOMPATIBLE, reason);
        }
        goto refuse;
    }
    if (reason[0] != '\0') {
        st_log(ST_LOG_DEBUG, 0, "cluster: data plane %s (%s): %s", req.dp_id, ip, reason);
    }
    cp_registry_seen(sy->reg, &req, ip, CP_REGISTRY_SYNC_NORMAL, NULL);
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
    c->dp_max = req.max_payload;
    st_snprintf(c->dp_id, sizeof(c->dp_id), "%s", req.dp_id);
    st_log(ST_LOG_DEBUG, 0, "cluster: data plane %s (%s) asks, having hash %s", req.dp_id, ip,
           c->have_hash[0] != '\0' ? c->have_hash : "-");
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
    return;
refuse:
    st_syncmsg_req_fini(&req);
    send_resp(c, ST_SYNC_REFUSED, reason, NULL);
}

/* ------------------------------------------------------------------------ */
/* callbacks */

static void
ctx_cb(void *arg)
{
    struct sync_ctx *c = arg;
    struct cp_sync *sy = c->sy;
    int rv = nng_aio_result(c->aio);
    bool recv;

    pthread_mutex_lock(&sy->mu);
    recv = c->state == SYNC_RECV;
    if (recv) {
        sy->n_receiving--;
    }
    if (c->state == SYNC_SEND && rv != 0) {
        nng_msg_free(nng_aio_get_msg(c->aio));
    }
    if (c->state == SYNC_SEND || (recv && rv != 0)) { /* a closed socket receives no more */
        idle_locked(c, !recv || rv != NNG_ECLOSED);
    }
    pthread_mutex_unlock(&sy->mu);
    if (recv && rv == 0) {
        ensure_receiver(sy);
        handle_request(c, nng_aio_get_msg(c->aio));
    }
}

static void
timer_cb(void *arg)
{
    struct sync_ctx *c = arg;
    bool wait;

    pthread_mutex_lock(&c->sy->mu);
    wait = !c->sy->closing && c->state == SYNC_WAIT;
    pthread_mutex_unlock(&c->sy->mu);
    if (wait) {
        answer_current(c);
    }
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

/* Whether to log a refusal of a DP at ip now; *quiet gets the refusals from that
 * address left unlogged since its last line. Called with mu held. */
static bool
refusal_log_due(struct cp_sync *sy, const char *ip, unsigned *quiet)
{
    const int64_t now = st_mono_ms();
    struct refusal *r = &sy->refused[0];

    for (size_t i = 0; i < REFUSAL_SLOTS; i++) {
        struct refusal *x = &sy->refused[i];

        if (x->logged_ms != 0 && strcmp(x->ip, ip) == 0) {
            r = x;
            break;
        }
        if (x->logged_ms < r->logged_ms) {
            r = x; /* the free or oldest slot, if ip has none */
        }
    }
    if (r->logged_ms != 0 && strcmp(r->ip, ip) == 0) {
        if (now - r->logged_ms < REFUSAL_QUIET_MS) {
            r->quiet++;
            return false;
        }
        *quiet = r->quiet;
    } else {
        *quiet = 0;
        st_snprintf(r->ip, sizeof(r->ip), "%s", ip);
    }
    r->logged_ms = now > 0 ? now : 1;
    r->quiet = 0;
    return true;
}

/* Whether the budget allows a pause before closing a refused pipe (and takes it).
 * Called with mu held. */
static bool
refusal_pause_due(struct cp_sync *sy)
{
    const int64_t now = st_mono_ms();

    if (sy->refusal_budget_at == 0) {
        sy->refusal_budget_ms = REFUSAL_BUDGET_MAX;
        sy->refusal_budget_at = now;
    } else {
        int64_t gained = (now - sy->refusal_budget_at) / REFUSAL_BUDGET_PER;

        sy->refusal_budget_ms += gained;
        sy->refusal_budget_at += gained * REFUSAL_BUDGET_PER;
    }
    if (sy->refusal_budget_ms > REFUSAL_BUDGET_MAX) {
        sy->refusal_budget_ms = REFUSAL_BUDGET_MAX;
    }
    if (sy->refusal_budget_ms < REFUSAL_PAUSE_MS) {
        return false;
    }
    sy->refusal_budget_ms -= REFUSAL_PAUSE_MS;
    return true;
}

/* Tells the gate that a pipe finished its handshake (TLS verified, or cluster_mtls = off),
 * or refuses a DP whose certificate did not verify: in shared mode against the cluster
 * certificate (the only CA), in pki mode against cluster_ca_cert. The TLS handshake
 * verifies optionally so that the refusal can be logged here, with the peer's address
 * (nng 1.5.2 with mbedTLS has no other hook). Closing at ADD_PRE: the protocol never
 * sees the pipe, so nothing is received from or sent to the DP. A refused pipe stays
 * pending at the gate until it closes. */
static void
pipe_cb(nng_pipe p, nng_pipe_ev ev, void *arg)
{
    struct cp_sync *sy = arg;
    bool verified = false;
    bool log;
    bool pause;
    unsigned quiet = 0;
    char ip[64];
    char peer[96];
    char more[64] = "";
    struct sockaddr_storage ss;

    if (ev != NNG_PIPE_EV_ADD_PRE) {
        return;
    }
    if (sy->tls == NULL ||
        (nng_pipe_get_bool(p, NNG_OPT_TLS_VERIFIED, &verified) == 0 && verified)) {
        const uint16_t relay = pipe_relay_port(p);

        if (relay != 0 && sy->gate != NULL) {
            (void)cp_gate_verified(sy->gate, relay);
        }
        return;
    }
    pipe_ip(sy, p, ip, sizeof(ip));
    st_snprintf(peer, sizeof(peer), "unknown");
    if (pipe_addr(sy, p, &ss)) {
        st_addr_format((const struct sockaddr *)&ss, peer, sizeof(peer)); /* ip:port */
    }
    pthread_mutex_lock(&sy->mu);
    log = refusal_log_due(sy, ip, &quiet);
    pause = refusal_pause_due(sy);
    pthread_mutex_unlock(&sy->mu);
    if (log) {
        if (quiet > 0) {
            st_snprintf(more, sizeof(more), " (refused %u more times since the last line)", quiet);
        }
        st_log(ST_LOG_WARN, 0, "cluster: refused data plane %s: its certificate %s%s", peer,
               sy->conf->cluster_mtls == ST_MTLS_PKI ? "is missing or not signed by cluster_ca_cert"
                                                     : "does not match the cluster certificate",
               more);
    }
    if (pause) {
        nng_msleep(REFUSAL_PAUSE_MS);
    }
    nng_pipe_close(p);
}

/* ------------------------------------------------------------------------ */
/* start and stop */

/* A PEM value: the text itself if it is PEM, else the contents of the file it names (1 MiB
 * at most). */
static char *
load_pem(const char *key, const char *value, struct st_err *err)
{
    char *buf;
    size_t n;
    int rc;

    if (strncmp(value, "-----BEGIN", 10) == 0) {
        return st_xstrdup(value);
    }
    rc = st_file_read(value, 1u << 20, &buf, &n);
    if (rc == -EFBIG) {
        st_err_set(err, -ST_ECONF, key, "%s: %s is not a PEM file", key, value);
    } else if (rc < 0) {
        st_err_set(err, rc, key, "%s: cannot read %s: %s", key, value, strerror(-rc));
    }
    return buf;
}

static int
setup_tls(struct cp_sync *sy, struct st_err *err)
{
    const struct st_conf *conf = sy->conf;
    const bool pki = conf->cluster_mtls == ST_MTLS_PKI;
    char *cert = NULL;
    char *key = NULL;
    char *ca = NULL;
    int rv;
    int rc = -ST_ECONF;

    if (conf->cluster_cert == NULL || conf->cluster_cert_key == NULL) {
        return st_err_set(err, -ST_ECONF, "cluster_cert",
                          "cluster certificate and key must be provided to use Hybrid mode "
                          "(or cluster_mtls = off, for local development only)");
    }
    if (pki && conf->cluster_ca_cert == NULL) {
        return st_err_set(err, -ST_ECONF, "cluster_ca_cert",
                          "cluster_ca_cert must be specified when cluster_mtls = \"pki\"");
    }
    cert = load_pem("cluster_cert", conf->cluster_cert, err);
    key = cert != NULL ? load_pem("cluster_cert_key", conf->cluster_cert_key, err) : NULL;
    ca = key != NULL && pki ? load_pem("cluster_ca_cert", conf->cluster_ca_cert, err) : NULL;
    if (key == NULL || (pki && ca == NULL)) {
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
        /* shared: the cluster certificate is the only trust anchor */
        rv = nng_tls_config_ca_chain(sy->tls, pki ? ca : cert, NULL);
        if (rv != 0) {
            st_err_set(err, -ST_ECONF, pki ? "cluster_ca_cert" : "cluster_cert",
                       "%s: cannot use %s as a CA: %s", pki ? "cluster_ca_cert" : "cluster_cert",
                       pki ? conf->cluster_ca_cert : conf->cluster_cert, nng_strerror(rv));
            goto out;
        }
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
    free(ca);
    if (key != NULL) {
        memset(key, 0, strlen(key));
    }
    free(key);
    return rc;
}

/* nng listens on 127.0.0.1, on a port the kernel picks; the gate listens on
 * cluster_listen and relays to it. */
static int
listen_on(struct cp_sync *sy, struct st_err *err)
{
    const struct st_conf *conf = sy->conf;
    const char *scheme = conf->cluster_mtls != ST_MTLS_OFF ? "tls+tcp" : "tcp";
    char addr[160];
    char url[200];
    nng_listener l;
    int port = 0;
    int rv;

    if (conf->cluster_listen.n == 0) {
        return st_err_set(err, -ST_ECONF, "cluster_listen",
                          "cluster_listen must be specified on a control plane");
    }
    st_snprintf(url, sizeof(url), "%s://127.0.0.1:0", scheme);
    rv = nng_listener_create(&l, sy->sock, url);
    if (rv == 0 && sy->tls != NULL) {
        rv = nng_listener_set_ptr(l, NNG_OPT_TLS_CONFIG, sy->tls);
    }
    if (rv == 0) {
        rv = nng_listener_start(l, 0);
    }
    if (rv == 0) {
        rv = nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &port);
    }
    if (rv != 0 || port <= 0 || port > 65535) {
        return st_err_set(err, -ST_ECONF, "cluster_listen",
                          "cluster: cannot listen on 127.0.0.1 for the gate: %s",
                          rv != 0 ? nng_strerror(rv) : "no port");
    }
    rv = cp_gate_start(conf, (uint16_t)port, &sy->gate, err);
    if (rv < 0) {
        return rv;
    }
    st_addr_format((const struct sockaddr *)&conf->cluster_listen.v[0].addr, addr, sizeof(addr));
    st_log(ST_LOG_NOTICE, 0, "cluster: listening on %s://%s", scheme, addr);
    st_log(ST_LOG_DEBUG, 0, "cluster: the gate relays to %s://127.0.0.1:%d", scheme, port);
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
    nng_pipe_notify(sy->sock, NNG_PIPE_EV_ADD_PRE, pipe_cb, sy);
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

/* nng 1.5.2 can hang closing the socket (a CI run under ASan saw a CP never finish
 * stopping after a DP had dropped a snapshot beyond its cluster_max_payload); the
 * process is exiting, so the close gets SYNC_CLOSE_MS and the CP stops without it. */
#define SYNC_CLOSE_MS 5000

/* The instance whose socket would not close, deliberately never freed. */
static struct cp_sync *volatile sync_abandoned; /* volatile: a store never read stays */

/* Closes the socket and waits for every context's callbacks to be done. */
static void
sync_close(void *arg)
{
    struct cp_sync *sy = arg;

    if (sy->sock_open) {
        nng_close(sy->sock);
    }
    for (struct sync_ctx *c = sy->all; c != NULL; c = c->next) {
        nng_aio_stop(c->timer);
        nng_aio_stop(c->aio);
    }
}

bool
cp_sync_stop(struct cp_sync *sy)
{
    struct sync_ctx *c;

    if (sy == NULL) {
        return true;
    }
    pthread_mutex_lock(&sy->mu);
    sy->closing = true;
    pthread_mutex_unlock(&sy->mu);
    cp_gate_stop(sy->gate); /* no new DP; nng sees every relayed connection end */
    if (!st_run_bounded(sync_close, sy, SYNC_CLOSE_MS)) {
        st_log(ST_LOG_WARN, 0,
               "cluster: the sync socket did not close within %d ms; stopping without it",
               SYNC_CLOSE_MS);
        sync_abandoned = sy; /* nng may still call into it: never freed */
        return false;
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
    cp_gate_free(sy->gate); /* after nng: its pipe callbacks ask the gate */
    pthread_mutex_destroy(&sy->mu);
    free(sy);
    return true;
}
