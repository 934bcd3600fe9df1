/* Admin HTTP server (see cp_http.h). One libmicrohttpd daemon per admin_listen entry,
 * each with its own internal thread pool; handlers block only waiting for a free store
 * handle (cp_store_pool.h).
 * multipart/form-data bodies (Kong users' `curl -F cert=@cert.pem`) are decoded with
 * libmicrohttpd's post processor into the same object a urlencoded form gives.
 *
 * Access control, before any admin code runs: `ssl` listeners speak TLS through
 * libmicrohttpd's GnuTLS (admin_ssl_cert/admin_ssl_cert_key); with admin_ssl_client_ca
 * their handshake requires a client certificate that CA signed (checked again on each
 * request); with admin_token every request on every listener must carry the token
 * (Kong-Admin-Token, Kong Enterprise's RBAC header, or Authorization: Bearer), compared
 * in constant time. The policy on which addresses may listen is st_conf's
 * (st_conf_admin_is_exposed). gnutls.h stays in this file, with microhttpd.h. */
#include "cp_http.h"

#include <errno.h>
#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cp_admin.h"
#include "cp_ctx.h"
#include "cp_form.h"
#include "cp_registry_share.h"
#include "cp_store_pool.h"
#include "cp_sync_wait.h"
#include "st_addr.h"
#include "st_conf.h"
#include "st_connguard.h"
#include "st_err.h"
#include "st_file.h"
#include "st_log.h"
#include "st_ssl.h"
#include "st_util.h"

#define HTTP_MAX_BODY     (16u << 20)
#define HTTP_POOL_THREADS 2 /* at least; as many as the admin store pool has handles */
#define HTTP_PP_BUFFER    (64u << 10)
#define HTTP_PEM_MAX      (1u << 20)
#define HTTP_TOKEN_HEADER "Kong-Admin-Token"
/* TLS 1.2 and 1.3 only, GnuTLS's default suites otherwise. */
#define HTTP_TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"
/* Kong Enterprise's RBAC answer to a missing or wrong token. */
#define HTTP_MSG_NO_TOKEN "Invalid credentials. Token or User credentials required"
#define HTTP_MSG_NO_CERT                                                                           \
    "Invalid credentials. A client certificate signed by admin_ssl_client_ca is required"
/* wait_for_sync: the headers of a 202 (docs/admin-api.md), at most this many ids listed,
 * and how long after its last report a DP still counts as connected, beyond
 * cluster_heartbeat (the longest a CP holds a DP's request) */
#define HTTP_PENDING_HEADER  "X-Strait-Pending-Data-Planes"
#define HTTP_FAILED_HEADER   "X-Strait-Failed-Data-Planes"
#define HTTP_COUNT_HEADER    "X-Strait-Pending-Count"
#define HTTP_PENDING_MAX_IDS 100
#define HTTP_ID_MAX          64
#define HTTP_SYNC_MARGIN_MS  10000
/* Connections libmicrohttpd may hold beyond admin_max_connections in each thread: the
 * ones the guard displaced and that are still closing. The guard decides; this only
 * keeps libmicrohttpd's own limit out of its way. */
#define HTTP_LIMIT_SLACK 64

/* One admin_listen entry: the closure of its daemon's callbacks. */
struct http_srv {
    struct cp_http *h;
    struct MHD_Daemon *d;
    const struct st_listen *l;
    bool tls;
    bool client_cert; /* tls and admin_ssl_client_ca: a verified client certificate */
};

struct cp_http {
    struct cp_ctx *cx;
    struct http_srv *srv;
    size_t n;
    char *cert_pem, *key_pem, *ca_pem; /* read once, shared by the ssl daemons */
    bool has_token;
    char token_sha256[65];      /* hex SHA-256 of admin_token: equal lengths to compare */
    unsigned threads;           /* each daemon's thread pool */
    struct st_connguard *guard; /* every daemon's connections: limits and head deadline */
    struct cp_sync_wait *wait;  /* wait_for_sync; NULL without a snapshot builder */
};

/* One request being received. */
struct http_req {
    char *body; /* the whole body, multipart included (parts_decode) */
    size_t len, cap;
    bool too_big;
    bool multipart;
    /* parts_decode: the form being built and the part being read */
    struct cp_form *form;
    char *part_key; /* NULL: none yet */
    char *part_val;
    size_t part_len, part_cap;
    char parts_msg[256]; /* why the form refused a part */
    /* wait_for_sync: the answer held while the connection is suspended */
    struct MHD_Connection *c;
    struct cp_response rs;
    bool waiting; /* suspended, in cp_sync_wait */
    bool resumed; /* the wait ended (set before MHD_resume_connection) */
    size_t n_waited, n_pending;
    int64_t waited_ms;
    char *pending; /* HTTP_PENDING_HEADER's value, NULL: none pending */
    char *failed;  /* HTTP_FAILED_HEADER's value, NULL: none failed */
};

struct header_scan {
    const char *content_type;
    int n_content_types;
};

static enum MHD_Result
scan_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    struct header_scan *hs = cls;

    (void)kind;
    if (strcasecmp(key, "Content-Type") == 0) {
        hs->content_type = value;
        hs->n_content_types++;
    }
    return MHD_YES;
}

/* A query argument, as bytes (http_unescape leaves no NUL in them): what is not UTF-8 is
 * kept for the handler to refuse (cp_dberr_text shows it in the error). A key that is
 * not UTF-8 (jansson refuses it) names no argument the admin API reads: it is dropped. */
static enum MHD_Result
scan_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void)kind;
    (void)json_object_set_new(
        cls, key,
        json_stringn_nocheck(value != NULL ? value : "", value != NULL ? strlen(value) : 0));
    return MHD_YES;
}

/* libmicrohttpd's unescape callback: its own decoding, but with %00 kept (cp_form.h). */
static size_t
http_unescape(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls;
    (void)c;
    return cp_form_url_unescape(s);
}

/* Keeps the urlencoded or JSON body, at most HTTP_MAX_BODY bytes (+1 for the NUL: the
 * buffer never grows past that); beyond, the request is too_big and the body dropped. */
static void
body_append(struct http_req *r, const char *p, size_t n)
{
    if (r->too_big || n > HTTP_MAX_BODY - r->len) {
        r->too_big = true;
        free(r->body);
        r->body = NULL;
        r->len = r->cap = 0;
        return;
    }
    if (r->len + n + 1 > r->cap) {
        r->cap = st_grow(r->cap, r->len + n + 1, HTTP_MAX_BODY + 1);
        r->body = st_xrealloc(r->body, r->cap);
    }
    memcpy(r->body + r->len, p, n);
    r->len += n;
    r->body[r->len] = '\0';
}

static bool
is_multipart(const char *ct)
{
    while (ct != NULL && (*ct == ' ' || *ct == '\t')) {
        ct++;
    }
    return ct != NULL && strncasecmp(ct, "multipart/form-data", 19) == 0;
}

/* Adds the part read so far (if any) to r->form. Returns 0, or -1 with r->parts_msg. */
static int
part_flush(struct http_req *r)
{
    struct st_err err = {0};
    int rc = 0;

    if (r->part_key == NULL) {
        return 0;
    }
    if (cp_form_add(r->form, r->part_key, strlen(r->part_key),
                    r->part_val != NULL ? r->part_val : "", r->part_len, &err) < 0) {
        st_snprintf(r->parts_msg, sizeof(r->parts_msg), "%s", err.msg);
        rc = -1;
    }
    free(r->part_key);
    r->part_key = NULL;
    r->part_len = 0;
    return rc;
}

/* The post processor's iterator: a part arrives in pieces, the first at off 0 (possibly
 * empty), the others after it. Each part goes to the form as soon as the next begins, so
 * only one part's value is held. */
static enum MHD_Result
on_part(void *cls, enum MHD_ValueKind kind, const char *key, const char *filename,
        const char *content_type, const char *transfer_encoding, const char *data, uint64_t off,
        size_t size)
{
    struct http_req *r = cls;

    (void)kind;
    (void)filename;
    (void)content_type;
    (void)transfer_encoding;
    if (key == NULL) {
        return MHD_YES;
    }
    if (off == 0 || r->part_key == NULL) {
        if (part_flush(r) < 0) {
            return MHD_NO;
        }
        r->part_key = st_xstrdup(key);
    }
    /* a part is part of the body: HTTP_MAX_BODY bounds it */
    if (size > HTTP_MAX_BODY - r->part_len) {
        return MHD_NO;
    }
    if (r->part_len + size + 1 > r->part_cap) {
        r->part_cap = st_grow(r->part_cap, r->part_len + size + 1, HTTP_MAX_BODY + 1);
        r->part_val = st_xrealloc(r->part_val, r->part_cap);
    }
    memcpy(r->part_val + r->part_len, data, size);
    r->part_len += size;
    r->part_val[r->part_len] = '\0';
    return MHD_YES;
}

/* The decoded multipart body, or NULL with *why set. The post processor reads the whole
 * body in one call: fed piece by piece as the body arrives, it announces a part whose
 * headers end a piece with an empty first piece at off 0, then its value at off 0
 * again, and a part of its own could not be told from that. */
static json_t *
parts_decode(struct http_req *r, struct MHD_Connection *c, const char **why)
{
    struct MHD_PostProcessor *pp = MHD_create_post_processor(c, HTTP_PP_BUFFER, on_part, r);
    bool ok = pp != NULL;
    json_t *o = NULL;

    r->form = cp_form_new(r->len);
    if (ok && r->len > 0) {
        ok = MHD_post_process(pp, r->body, r->len) == MHD_YES;
    }
    if (pp != NULL && MHD_destroy_post_processor(pp) != MHD_YES) {
        ok = false; /* the body ended before its last boundary */
    }
    if (ok && part_flush(r) == 0) {
        o = cp_form_object(r->form);
    } else {
        *why = r->parts_msg[0] != '\0' ? r->parts_msg : "Cannot parse multipart/form-data body";
    }
    cp_form_free(r->form);
    r->form = NULL;
    return o;
}

static void
req_free(struct http_req *r)
{
    free(r->part_key);
    free(r->part_val);
    free(r->body);
    free(r->rs.body);
    free(r->pending);
    free(r->failed);
    free(r);
}

/* Sends rs (taking rs->body). A request that waited (r not NULL) answers 202 when data
 * planes are still pending, with the headers that name them. */
static enum MHD_Result
send_resp(struct MHD_Connection *c, const struct cp_response *rs, const struct http_req *r)
{
    struct MHD_Response *resp;
    enum MHD_Result ret;
    unsigned status = (unsigned)rs->status;
    char count[32];
    char *body = rs->body;
    size_t len = body != NULL ? strlen(body) : 0;

    resp = MHD_create_response_from_buffer(len, body != NULL ? body : (char *)"",
                                           body != NULL ? MHD_RESPMEM_MUST_FREE
                                                        : MHD_RESPMEM_PERSISTENT);
    if (resp == NULL) {
        free(body);
        return MHD_NO;
    }
    if (body != NULL) {
        MHD_add_response_header(resp, "Content-Type", "application/json; charset=utf-8");
    }
    if (rs->header_name != NULL) {
        MHD_add_response_header(resp, rs->header_name, rs->header_value);
        if (strcmp(rs->header_name, "Allow") == 0) {
            MHD_add_response_header(resp, "Access-Control-Allow-Methods", rs->header_value);
        }
    }
    if (r != NULL && r->n_pending > 0) {
        status = 202;
        st_snprintf(count, sizeof(count), "%zu", r->n_pending);
        MHD_add_response_header(resp, HTTP_PENDING_HEADER, r->pending);
        MHD_add_response_header(resp, HTTP_COUNT_HEADER, count);
        if (r->failed != NULL) {
            MHD_add_response_header(resp, HTTP_FAILED_HEADER, r->failed);
        }
    }
    MHD_add_response_header(resp, "Server", "strait/" STRAIT_VERSION);
    ret = MHD_queue_response(c, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* ------------------------------------------------------------------------- */
/* Access control */

/* Whether the value of a header holds the token. Both sides are hashed first, so the
 * constant-time comparison runs over equal lengths and says nothing about the length. */
static bool
token_matches(const struct cp_http *h, const char *v)
{
    char got[65];

    st_ssl_sha256_hex(v, strlen(v), got);
    return st_ssl_memeq(got, h->token_sha256, 64);
}

static bool
token_ok(const struct cp_http *h, struct MHD_Connection *c)
{
    const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, HTTP_TOKEN_HEADER);
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");

    if (v != NULL && token_matches(h, v)) {
        return true;
    }
    return auth != NULL && strncasecmp(auth, "Bearer", 6) == 0 &&
           (auth[6] == ' ' || auth[6] == '\t') &&
           token_matches(h, auth + 6 + strspn(auth + 6, " \t"));
}

/* The session's peer certificate chain verifies against admin_ssl_client_ca (the trust
 * list libmicrohttpd loaded from MHD_OPTION_HTTPS_MEM_TRUST). */
static bool
client_cert_ok(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    gnutls_session_t s;
    unsigned status = 0;

    if (ci == NULL || ci->tls_session == NULL) {
        return false;
    }
    s = ci->tls_session;
    if (gnutls_certificate_type_get(s) != GNUTLS_CRT_X509) {
        return false;
    }
    return gnutls_certificate_verify_peers2(s, &status) == GNUTLS_E_SUCCESS && status == 0;
}

static const char *
peer_text(struct MHD_Connection *c, char *buf, size_t size)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);

    if (ci == NULL || ci->client_addr == NULL) {
        return "?";
    }
    st_addr_format(ci->client_addr, buf, size);
    return buf;
}

/* The guard's record of c (on_connection), NULL if it has none. */
static struct st_connguard_conn *
guard_conn(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

    return ci != NULL ? ci->socket_context : NULL;
}

/* Refuses the request with 401 before anything reads it: the body is never received
 * and libmicrohttpd closes the connection after the answer. NULL: allowed. */
static const char *
access_denied(const struct http_srv *srv, struct MHD_Connection *c)
{
    if (srv->client_cert && !client_cert_ok(c)) {
        return HTTP_MSG_NO_CERT;
    }
    if (srv->h->has_token && !token_ok(srv->h, c)) {
        return HTTP_MSG_NO_TOKEN;
    }
    return NULL;
}

static enum MHD_Result
send_denied(struct MHD_Connection *c, const char *method, const char *url, const char *why)
{
    struct cp_response rs = {0};
    json_t *o = json_pack("{s:s}", "message", why);
    char peer[64];

    rs.status = 401;
    rs.body = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    st_log(ST_LOG_INFO, 0, "admin: %s %s 401 from %s: %s", method, url,
           peer_text(c, peer, sizeof(peer)), why);
    return send_resp(c, &rs, NULL);
}

/* ------------------------------------------------------------------------- */
/* wait_for_sync: the write's answer is held in its http_req while the connection is
 * suspended (no thread is held); cp_sync_wait's callback fills in the outcome and resumes
 * it, and libmicrohttpd then calls on_request once more, which sends the answer. */

/* Appends a DP id as a header may carry it: a DP chooses its id (a UUID, unless it lies),
 * so at most HTTP_ID_MAX bytes, and '?' for a control byte, a non-ASCII one or a comma. */
static size_t
put_id(char *out, const char *id)
{
    size_t n = 0;

    for (; id[n] != '\0' && n < HTTP_ID_MAX; n++) {
        unsigned char ch = (unsigned char)id[n];

        out[n] = ch < 0x20 || ch > 0x7e || ch == ',' ? '?' : (char)ch;
    }
    out[n] = '\0';
    return n;
}

/* "id1, id2" of the pending DPs (only the failed ones when only_failed), at most
 * HTTP_PENDING_MAX_IDS of them; NULL when there is none. The caller frees. */
static char *
join_ids(const struct cp_sync_wait_result *res, bool only_failed)
{
    size_t ids = res->n_pending < HTTP_PENDING_MAX_IDS ? res->n_pending : HTTP_PENDING_MAX_IDS;
    char *out = st_xmalloc(1 + ids * (HTTP_ID_MAX + 2));
    size_t len = 0;
    size_t n = 0;

    out[0] = '\0';
    for (size_t i = 0; i < res->n_pending && n < HTTP_PENDING_MAX_IDS; i++) {
        if (only_failed && !res->pending[i].failed) {
            continue;
        }
        if (n > 0) {
            memcpy(out + len, ", ", 2);
            len += 2;
        }
        len += put_id(out + len, res->pending[i].id);
        n++;
    }
    if (n == 0) {
        free(out);
        return NULL;
    }
    return out;
}

/* cp_sync_wait's callback (the waiter thread, or on_request's own thread when nothing is
 * to be waited for): the outcome, then the resume that hands the request back. */
static void
on_synced(void *arg, const struct cp_sync_wait_result *res)
{
    struct http_req *r = arg;

    r->n_waited = res->n_waited;
    r->n_pending = res->n_pending;
    r->waited_ms = res->waited_ms;
    r->pending = join_ids(res, false);
    r->failed = join_ids(res, true);
    __atomic_store_n(&r->resumed, true, __ATOMIC_RELEASE);
    MHD_resume_connection(r->c);
}

static enum MHD_Result
wait_start(struct cp_http *h, struct http_req *r, struct MHD_Connection *c,
           const struct cp_response *rs)
{
    r->c = c;
    r->rs = *rs;
    r->waiting = true;
    MHD_suspend_connection(c);
    cp_sync_wait_add(h->wait, rs->sync_version, rs->wait_ms, on_synced, r);
    return MHD_YES;
}

/* on_request after the resume: the held answer, 202 when DPs are still pending. */
static enum MHD_Result
wait_end(struct http_req *r, struct MHD_Connection *c, const char *method, const char *url)
{
    struct cp_response rs = r->rs;

    r->rs.body = NULL; /* send_resp takes it */
    if (r->n_pending > 0) {
        st_log(ST_LOG_NOTICE, 0,
               "admin: %s %s 202 (wait_for_sync: %zu of %zu data planes pending after %lld ms: "
               "%s%s%s)",
               method, url, r->n_pending, r->n_waited, (long long)r->waited_ms, r->pending,
               r->failed != NULL ? "; failed: " : "", r->failed != NULL ? r->failed : "");
    } else if (r->n_waited == 0) {
        st_log(ST_LOG_INFO, 0, "admin: %s %s %d (wait_for_sync: no data plane connected)", method,
               url, rs.status);
    } else {
        st_log(ST_LOG_INFO, 0, "admin: %s %s %d (wait_for_sync: %zu data planes in %lld ms)",
               method, url, rs.status, r->n_waited, (long long)r->waited_ms);
    }
    return send_resp(c, &rs, r);
}

/* ------------------------------------------------------------------------- */
/* Requests */

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
           const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
    struct http_srv *srv = cls;
    struct cp_http *h = srv->h;
    struct http_req *r = *con_cls;
    struct header_scan hs = {0};
    struct cp_request rq = {0};
    struct cp_response rs = {0};
    json_t *query;
    const char *denied;
    json_t *parts;

    (void)version;
    if (r == NULL) {
        st_connguard_head_done(h->guard, guard_conn(c));
        denied = access_denied(srv, c);
        if (denied != NULL) {
            __atomic_add_fetch(&h->cx->stats.requests, 1, __ATOMIC_RELAXED);
            return send_denied(c, method, url, denied);
        }
        r = st_xcalloc(1, sizeof(*r));
        MHD_get_connection_values(c, MHD_HEADER_KIND, scan_header, &hs);
        r->multipart = hs.n_content_types == 1 && is_multipart(hs.content_type);
        *con_cls = r;
        return MHD_YES;
    }
    if (r->waiting) {
        /* called again once on_synced resumed the connection */
        if (!__atomic_load_n(&r->resumed, __ATOMIC_ACQUIRE)) {
            return MHD_YES;
        }
        return wait_end(r, c, method, url);
    }
    if (*upload_data_size > 0) {
        body_append(r, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    __atomic_add_fetch(&h->cx->stats.requests, 1, __ATOMIC_RELAXED);
    if (r->too_big) {
        rs.status = 413;
        rs.body = st_xstrdup("{\"message\":\"Request entity too large\"}");
        return send_resp(c, &rs, NULL);
    }
    query = json_object();
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, scan_arg, query);
    MHD_get_connection_values(c, MHD_HEADER_KIND, scan_header, &hs);
    rq.method = method;
    rq.path = url;
    rq.query = query;
    rq.content_type = hs.content_type;
    rq.n_content_types = hs.n_content_types;
    rq.body = r->body;
    rq.body_len = r->len;
    parts = r->multipart ? parts_decode(r, c, &rq.parts_err) : NULL;
    rq.parts = parts;
    cp_admin_handle(h->cx, &rq, &rs);
    json_decref(parts);
    json_decref(query);
    if (rs.wait_ms > 0 && h->wait != NULL) {
        return wait_start(h, r, c, &rs);
    }
    st_log(ST_LOG_INFO, 0, "admin: %s %s %d", method, url, rs.status);
    return send_resp(c, &rs, NULL);
}

static void
on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
             enum MHD_RequestTerminationCode toe)
{
    struct http_srv *srv = cls;
    struct http_req *r = *con_cls;

    (void)toe;
    if (r != NULL) {
        req_free(r);
        *con_cls = NULL;
    }
    /* kept alive, the connection waits for its next request's head: a deadline again */
    st_connguard_head_again(srv->h->guard, guard_conn(c), st_mono_ms());
}

/* With admin_ssl_client_ca, the handshake itself requires a certificate that verifies
 * against it (GnuTLS checks the chain and dates; no name is checked): a client without
 * one, or with one from another CA, gets a TLS alert. libmicrohttpd only requests one. */
static void
require_client_cert(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);

    if (ci != NULL && ci->tls_session != NULL) {
        gnutls_certificate_server_set_request(ci->tls_session, GNUTLS_CERT_REQUIRE);
        gnutls_session_set_verify_cert(ci->tls_session, NULL, 0);
    }
}

/* The accept policy: admin_max_connections_per_ip, and admin_max_connections with the
 * oldest connection still without a whole request head displaced (st_connguard.h).
 * MHD_NO: libmicrohttpd closes the socket at once, before any byte is read. */
static enum MHD_Result
on_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
    struct http_srv *srv = cls;

    (void)addrlen;
    return st_connguard_admit(srv->h->guard, addr, st_mono_ms()) == ST_CONNGUARD_ADMIT ? MHD_YES
                                                                                       : MHD_NO;
}

/* Each connection is known to the guard from NOTIFY_STARTED to NOTIFY_CLOSED (its socket
 * context). libmicrohttpd 0.9.75 closes the socket only after NOTIFY_CLOSED returns
 * (MHD_cleanup_connections), and the guard shuts a socket down only under the lock that
 * st_connguard_remove takes, so it never touches a descriptor reused meanwhile. */
static void
on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
              enum MHD_ConnectionNotificationCode toe)
{
    struct http_srv *srv = cls;
    struct cp_server_stats *st = &srv->h->cx->stats;

    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *fd =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        const union MHD_ConnectionInfo *ca =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);

        if (fd != NULL && ca != NULL && ca->client_addr != NULL) {
            *socket_context = st_connguard_claim(srv->h->guard, ca->client_addr, fd->connect_fd,
                                                 NULL, st_mono_ms());
        }
        if (srv->client_cert) {
            require_client_cert(c);
        }
        __atomic_add_fetch(&st->accepted, 1, __ATOMIC_RELAXED);
        __atomic_add_fetch(&st->active, 1, __ATOMIC_RELAXED);
    } else {
        st_connguard_remove(srv->h->guard, *socket_context);
        *socket_context = NULL;
        __atomic_sub_fetch(&st->active, 1, __ATOMIC_RELAXED);
        __atomic_add_fetch(&st->handled, 1, __ATOMIC_RELAXED);
    }
}

/* ------------------------------------------------------------------------- */
/* Start and stop */

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

/* libmicrohttpd's messages (mostly failed TLS handshakes: client misbehaviour). */
static void
on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[256];
    size_t n;

    (void)cls;
    if (!st_log_enabled(ST_LOG_INFO)) {
        return;
    }
    if (vsnprintf(msg, sizeof(msg), fmt, ap) < 0) {
        return;
    }
    n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) {
        msg[--n] = '\0';
    }
    st_log(ST_LOG_INFO, 0, "admin: %s", msg);
}

/* Reads a PEM file whole (HTTP_PEM_MAX at most) into a NUL-terminated string (caller
 * frees). */
static int
read_pem(const char *key, const char *path, char **out, struct st_err *err)
{
    size_t n;
    int rc = st_file_read(path, HTTP_PEM_MAX, out, &n);

    if (rc < 0) {
        return st_err_set(err, -ST_ECONF, key, "%s: cannot read %s: %s", key, path, strerror(-rc));
    }
    return 0;
}

/* Parses the PEM files with GnuTLS the way libmicrohttpd will, so that a bad file, a
 * key that does not match, or a CA file without a certificate stops the start with a
 * line naming the key (libmicrohttpd would only fail to start the daemon). */
static int
check_tls_files(const struct st_conf *conf, const struct cp_http *h, struct st_err *err)
{
    gnutls_certificate_credentials_t cred;
    gnutls_datum_t cert = {(unsigned char *)h->cert_pem, (unsigned)strlen(h->cert_pem)};
    gnutls_datum_t key = {(unsigned char *)h->key_pem, (unsigned)strlen(h->key_pem)};
    int grc, rc = 0;

    if (gnutls_certificate_allocate_credentials(&cred) != GNUTLS_E_SUCCESS) {
        return st_err_set(err, -ENOMEM, "admin_ssl_cert", "admin_ssl_cert: out of memory");
    }
    grc = gnutls_certificate_set_x509_key_mem2(cred, &cert, &key, GNUTLS_X509_FMT_PEM, NULL, 0);
    if (grc < 0) {
        rc = st_err_set(err, -ST_ECONF, "admin_ssl_cert",
                        "admin_ssl_cert: cannot use %s with admin_ssl_cert_key %s: %s",
                        conf->admin_ssl_cert, conf->admin_ssl_cert_key, gnutls_strerror(grc));
    }
    if (rc == 0 && h->ca_pem != NULL) {
        gnutls_datum_t ca = {(unsigned char *)h->ca_pem, (unsigned)strlen(h->ca_pem)};

        grc = gnutls_certificate_set_x509_trust_mem(cred, &ca, GNUTLS_X509_FMT_PEM);
        if (grc <= 0) {
            rc = st_err_set(err, -ST_ECONF, "admin_ssl_client_ca",
                            "admin_ssl_client_ca: no CA certificate in %s%s%s",
                            conf->admin_ssl_client_ca, grc < 0 ? ": " : "",
                            grc < 0 ? gnutls_strerror(grc) : "");
        }
    }
    gnutls_certificate_free_credentials(cred);
    return rc;
}

static int
load_tls(const struct st_conf *conf, struct cp_http *h, struct st_err *err)
{
    int rc = read_pem("admin_ssl_cert", conf->admin_ssl_cert, &h->cert_pem, err);

    if (rc == 0) {
        rc = read_pem("admin_ssl_cert_key", conf->admin_ssl_cert_key, &h->key_pem, err);
    }
    if (rc == 0 && conf->admin_ssl_client_ca != NULL) {
        rc = read_pem("admin_ssl_client_ca", conf->admin_ssl_client_ca, &h->ca_pem, err);
    }
    if (rc == 0) {
        rc = check_tls_files(conf, h, err);
    }
    return rc;
}

static struct MHD_Daemon *
start_one(struct http_srv *srv)
{
    const struct st_listen *l = srv->l;
    struct cp_http *h = srv->h;
    unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME |
                     (srv->tls ? MHD_USE_TLS : 0);
    struct MHD_OptionItem tls[] = {
        {MHD_OPTION_HTTPS_MEM_CERT, 0, h->cert_pem},
        {MHD_OPTION_HTTPS_MEM_KEY, 0, h->key_pem},
        {MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)HTTP_TLS_PRIORITIES},
        {srv->client_cert ? MHD_OPTION_HTTPS_MEM_TRUST : MHD_OPTION_END, 0, h->ca_pem},
        {MHD_OPTION_END, 0, NULL},
    };
    struct MHD_OptionItem none[] = {{MHD_OPTION_END, 0, NULL}};
    unsigned limit;
    uint16_t port;

    if (l->addr.ss_family == AF_INET6) {
        flags |= MHD_USE_IPv6;
        port = ntohs(((const struct sockaddr_in6 *)&l->addr)->sin6_port);
    } else {
        port = ntohs(((const struct sockaddr_in *)&l->addr)->sin_port);
    }
    /* libmicrohttpd splits its connection limit among the pool's threads; each one may
     * have to hold all of them */
    limit = ((unsigned)h->cx->conf.admin_max_connections + HTTP_LIMIT_SLACK) * h->threads;
    /* the logger first, so that libmicrohttpd uses it for the other options too */
    return MHD_start_daemon(
        flags, port, on_accept, srv, on_request, srv, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
        MHD_OPTION_SOCK_ADDR, (const struct sockaddr *)&l->addr, MHD_OPTION_THREAD_POOL_SIZE,
        h->threads, MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv, MHD_OPTION_NOTIFY_CONNECTION,
        on_connection, srv, MHD_OPTION_CONNECTION_LIMIT, limit, MHD_OPTION_UNESCAPE_CALLBACK,
        http_unescape, NULL, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60, MHD_OPTION_ARRAY,
        srv->tls ? tls : none, MHD_OPTION_END);
}

/* One warning line per listener that admin_allow_insecure lets through. */
static void
warn_exposed(const struct st_conf *conf)
{
    const char *missing;

    for (size_t i = 0; i < conf->admin_listen.n; i++) {
        if (st_conf_admin_is_exposed(conf, &conf->admin_listen.v[i], &missing)) {
            st_log(ST_LOG_WARN, 0,
                   "admin_listen: %s is not a loopback address and lacks %s; starting anyway "
                   "because admin_allow_insecure = on",
                   conf->admin_listen.v[i].text, missing);
        }
    }
}

static bool
any_ssl(const struct st_listen_set *set)
{
    for (size_t i = 0; i < set->n; i++) {
        if (set->v[i].flags & ST_LISTEN_F_SSL) {
            return true;
        }
    }
    return false;
}

static void
free_tls(struct cp_http *h)
{
    free(h->cert_pem);
    if (h->key_pem != NULL) {
        explicit_bzero(h->key_pem, strlen(h->key_pem));
    }
    free(h->key_pem);
    free(h->ca_pem);
    h->cert_pem = h->key_pem = h->ca_pem = NULL;
}

int
cp_http_check(const struct st_conf *conf, struct st_err *err)
{
    struct cp_http h = {0};
    int rc;

    if (!any_ssl(&conf->admin_listen)) {
        return 0;
    }
    rc = load_tls(conf, &h, err);
    free_tls(&h);
    return rc;
}

/* The admin listeners' guard (docs/configuration.md: admin_max_connections, ...): its
 * reaper thread closes the connections past admin_header_timeout. */
static int
guard_start(const struct st_conf *conf, struct cp_http *h, struct st_err *err)
{
    const struct st_connguard_limits lim = {
        .name = "admin",
        .head = "request head",
        .max = (size_t)conf->admin_max_connections,
        .max_key = "admin_max_connections",
        .max_per_ip = (size_t)conf->admin_max_connections_per_ip,
        .per_ip_key = "admin_max_connections_per_ip",
        .deadline_ms = (int64_t)conf->admin_header_timeout * 1000,
        .deadline_key = "admin_header_timeout",
    };
    int rc;

    h->guard = st_connguard_new(&lim, NULL, NULL);
    rc = st_connguard_reaper_start(h->guard);
    if (rc < 0) {
        return st_err_set(err, rc, NULL, "cannot start the admin connection reaper: %s",
                          strerror(-rc));
    }
    return 0;
}

int
cp_http_start(struct cp_ctx *cx, struct cp_http **out, struct st_err *err)
{
    const struct st_conf *conf = &cx->conf;
    const struct st_listen_set *set = &conf->admin_listen;
    struct cp_http *h;
    int rc = 0;

    *out = NULL;
    if (set->n == 0) {
        return st_err_set(err, -ST_ECONF, "admin_listen",
                          "admin_listen must be specified on a control plane");
    }
    h = st_xcalloc(1, sizeof(*h));
    h->cx = cx;
    h->srv = st_xcalloc(set->n, sizeof(*h->srv));
    h->threads = HTTP_POOL_THREADS;
    if (cx->pool != NULL && cp_store_pool_size(cx->pool) > h->threads) {
        h->threads = (unsigned)cp_store_pool_size(cx->pool);
    }
    if (conf->admin_token != NULL) {
        h->has_token = true;
        st_ssl_sha256_hex(conf->admin_token, strlen(conf->admin_token), h->token_sha256);
    }
    if (any_ssl(set)) {
        rc = load_tls(conf, h, err);
    }
    if (rc == 0) {
        rc = guard_start(conf, h, err);
    }
    if (rc == 0 && cx->reg != NULL && cx->snap != NULL) {
        rc = cp_sync_wait_start(cx->reg, cx->snap,
                                (int64_t)conf->cluster_heartbeat * 1000 + HTTP_SYNC_MARGIN_MS,
                                &h->wait);
        if (rc < 0) {
            st_err_set(err, rc, NULL, "cannot start the wait_for_sync thread: %s", strerror(-rc));
        } else if (cx->reg_share != NULL) {
            /* the DPs of every CP on the database, through the shared registry */
            cp_sync_wait_share(h->wait, cp_registry_share_acks, cx->reg_share);
        }
    }
    for (size_t i = 0; rc == 0 && i < set->n; i++) {
        struct http_srv *srv = &h->srv[i];

        srv->h = h;
        srv->l = &set->v[i];
        srv->tls = (set->v[i].flags & ST_LISTEN_F_SSL) != 0;
        srv->client_cert = srv->tls && h->ca_pem != NULL;
        errno = 0;
        srv->d = start_one(srv);
        if (srv->d == NULL) {
            int e = errno != 0 ? errno : EADDRINUSE;

            rc = st_err_set(err, -e, "admin_listen", "admin_listen: cannot listen on %s: %s",
                            set->v[i].text, strerror(e));
            break;
        }
        h->n++;
        st_log(ST_LOG_NOTICE, 0, "admin API listening on %s%s%s", set->v[i].text,
               srv->tls ? " (ssl)" : "", srv->client_cert ? " (client certificate required)" : "");
    }
    if (rc != 0) {
        cp_http_stop(h);
        return rc;
    }
    warn_exposed(conf);
    *out = h;
    return 0;
}

void
cp_http_stop(struct cp_http *h)
{
    if (h == NULL) {
        return;
    }
    /* libmicrohttpd must not stop with a suspended connection: end the waits first (their
     * connections resume; a write that asks to wait from now on answers at once) */
    cp_sync_wait_stop(h->wait);
    for (size_t i = 0; i < h->n; i++) {
        MHD_stop_daemon(h->srv[i].d);
    }
    cp_sync_wait_free(h->wait);
    st_connguard_free(h->guard); /* after the daemons: they closed every connection */
    free(h->srv);
    free_tls(h);
    explicit_bzero(h->token_sha256, sizeof(h->token_sha256));
    free(h);
}
