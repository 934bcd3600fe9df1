/* Admin HTTP server (see cp_http.h). One libmicrohttpd daemon per admin_listen entry,
 * each with its own internal thread pool; handlers block only on the store mutex.
 * multipart/form-data bodies (Kong users' `curl -F cert=@cert.pem`) are decoded with
 * libmicrohttpd's post processor into the same object a urlencoded form gives. */
#include "cp_http.h"

#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cp_admin.h"
#include "cp_ctx.h"
#include "cp_form.h"
#include "st_addr.h"
#include "st_err.h"
#include "st_log.h"
#include "st_util.h"

#define HTTP_MAX_BODY     (16u << 20)
#define HTTP_POOL_THREADS 2
#define HTTP_PP_BUFFER    (64u << 10)

/* One field of a multipart body. */
struct http_part {
    char *key;
    char *val;
    size_t len, cap;
};

struct cp_http {
    struct cp_ctx *cx;
    struct MHD_Daemon **d;
    size_t n;
};

/* One request being received. */
struct http_req {
    char *body;
    size_t len, cap;
    bool too_big;
    size_t received;              /* body bytes, counted for multipart too */
    struct MHD_PostProcessor *pp; /* multipart/form-data only */
    struct http_part *parts;
    size_t n_parts;
    bool parts_bad;
    char parts_msg[512];
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

static enum MHD_Result
scan_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void)kind;
    json_object_set_new(cls, key, json_string(value != NULL ? value : ""));
    return MHD_YES;
}

static void
body_append(struct http_req *r, const char *p, size_t n)
{
    if (r->too_big || r->len + n > HTTP_MAX_BODY) {
        r->too_big = true;
        return;
    }
    if (r->len + n + 1 > r->cap) {
        r->cap = (r->len + n + 1) * 2;
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

/* The post processor's iterator: a field arrives in chunks, the first at off 0. */
static enum MHD_Result
on_part(void *cls, enum MHD_ValueKind kind, const char *key, const char *filename,
        const char *content_type, const char *transfer_encoding, const char *data, uint64_t off,
        size_t size)
{
    struct http_req *r = cls;
    struct http_part *p;

    (void)kind;
    (void)filename;
    (void)content_type;
    (void)transfer_encoding;
    if (key == NULL) {
        return MHD_YES;
    }
    if (off == 0 || r->n_parts == 0 || strcmp(r->parts[r->n_parts - 1].key, key) != 0) {
        r->parts = st_xrealloc(r->parts, (r->n_parts + 1) * sizeof(*r->parts));
        p = &r->parts[r->n_parts++];
        memset(p, 0, sizeof(*p));
        p->key = st_xstrdup(key);
        p->cap = 64;
        p->val = st_xmalloc(p->cap);
        p->val[0] = '\0';
    }
    p = &r->parts[r->n_parts - 1];
    if (p->len + size + 1 > p->cap) {
        p->cap = (p->len + size + 1) * 2;
        p->val = st_xrealloc(p->val, p->cap);
    }
    memcpy(p->val + p->len, data, size);
    p->len += size;
    p->val[p->len] = '\0';
    return MHD_YES;
}

/* The decoded multipart body, or NULL with *why set. */
static json_t *
parts_decode(struct http_req *r, const char **why)
{
    struct st_err err = {0};
    json_t *o;

    if (r->pp != NULL) {
        if (MHD_destroy_post_processor(r->pp) != MHD_YES) {
            r->parts_bad = true;
        }
        r->pp = NULL;
    }
    if (r->parts_bad) {
        *why = "Cannot parse multipart/form-data body";
        return NULL;
    }
    o = json_object();
    for (size_t i = 0; i < r->n_parts; i++) {
        if (cp_form_add(o, r->parts[i].key, r->parts[i].val, &err) < 0) {
            st_snprintf(r->parts_msg, sizeof(r->parts_msg), "%s", err.msg);
            *why = r->parts_msg;
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

static void
req_free(struct http_req *r)
{
    if (r->pp != NULL) {
        MHD_destroy_post_processor(r->pp);
    }
    for (size_t i = 0; i < r->n_parts; i++) {
        free(r->parts[i].key);
        free(r->parts[i].val);
    }
    free(r->parts);
    free(r->body);
    free(r);
}

static enum MHD_Result
send_resp(struct MHD_Connection *c, const struct cp_response *rs)
{
    struct MHD_Response *resp;
    enum MHD_Result ret;
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
    MHD_add_response_header(resp, "Server", "strait/" STRAIT_VERSION);
    ret = MHD_queue_response(c, (unsigned)rs->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
           const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
    struct cp_http *h = cls;
    struct http_req *r = *con_cls;
    struct header_scan hs = {0};
    struct cp_request rq = {0};
    struct cp_response rs = {0};
    json_t *query;

    json_t *parts = NULL;

    (void)version;
    if (r == NULL) {
        r = st_xcalloc(1, sizeof(*r));
        MHD_get_connection_values(c, MHD_HEADER_KIND, scan_header, &hs);
        if (hs.n_content_types == 1 && is_multipart(hs.content_type)) {
            r->pp = MHD_create_post_processor(c, HTTP_PP_BUFFER, on_part, r);
            r->parts_bad = r->pp == NULL;
        }
        *con_cls = r;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        r->received += *upload_data_size;
        if (r->received > HTTP_MAX_BODY) {
            r->too_big = true;
        } else if (r->pp != NULL) {
            if (MHD_post_process(r->pp, upload_data, *upload_data_size) != MHD_YES) {
                r->parts_bad = true;
            }
        } else if (!r->parts_bad) {
            body_append(r, upload_data, *upload_data_size);
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    __atomic_add_fetch(&h->cx->stats.requests, 1, __ATOMIC_RELAXED);
    if (r->too_big) {
        rs.status = 413;
        rs.body = st_xstrdup("{\"message\":\"Request entity too large\"}");
        return send_resp(c, &rs);
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
    if (r->pp != NULL || r->parts_bad) {
        parts = parts_decode(r, &rq.parts_err);
        rq.parts = parts;
        rq.body_len = r->received;
    }
    cp_admin_handle(h->cx, &rq, &rs);
    json_decref(parts);
    json_decref(query);
    st_log(ST_LOG_INFO, 0, "admin: %s %s %d", method, url, rs.status);
    return send_resp(c, &rs);
}

static void
on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
             enum MHD_RequestTerminationCode toe)
{
    struct http_req *r = *con_cls;

    (void)cls;
    (void)c;
    (void)toe;
    if (r != NULL) {
        req_free(r);
        *con_cls = NULL;
    }
}

static void
on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
              enum MHD_ConnectionNotificationCode toe)
{
    struct cp_server_stats *st = &((struct cp_http *)cls)->cx->stats;

    (void)c;
    (void)socket_context;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        __atomic_add_fetch(&st->accepted, 1, __ATOMIC_RELAXED);
        __atomic_add_fetch(&st->active, 1, __ATOMIC_RELAXED);
    } else {
        __atomic_sub_fetch(&st->active, 1, __ATOMIC_RELAXED);
        __atomic_add_fetch(&st->handled, 1, __ATOMIC_RELAXED);
    }
}

static bool
is_loopback(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)ss;

        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;

        return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
    }
    return false;
}

static int
check_listen(const struct st_conf *conf, const struct st_listen *l, struct st_err *err)
{
    if (l->flags & ST_LISTEN_F_SSL) {
        return st_err_set(err, -ST_EUNSUPPORTED, "admin_listen",
                          "admin_listen: %s: ssl is not supported yet", l->text);
    }
    if (!is_loopback(&l->addr) && !conf->admin_allow_insecure) {
        return st_err_set(err, -ST_ECONF, "admin_listen",
                          "admin_listen: %s is not a loopback address and the admin API has "
                          "no TLS or authentication yet; set admin_allow_insecure = on to "
                          "allow it",
                          l->text);
    }
    return 0;
}

static struct MHD_Daemon *
start_one(struct cp_http *h, const struct st_listen *l)
{
    unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
    uint16_t port;

    if (l->addr.ss_family == AF_INET6) {
        flags |= MHD_USE_IPv6;
        port = ntohs(((const struct sockaddr_in6 *)&l->addr)->sin6_port);
    } else {
        port = ntohs(((const struct sockaddr_in *)&l->addr)->sin_port);
    }
    return MHD_start_daemon(flags, port, NULL, NULL, on_request, h, MHD_OPTION_SOCK_ADDR,
                            (const struct sockaddr *)&l->addr, MHD_OPTION_THREAD_POOL_SIZE,
                            (unsigned)HTTP_POOL_THREADS, MHD_OPTION_NOTIFY_COMPLETED, on_completed,
                            h, MHD_OPTION_NOTIFY_CONNECTION, on_connection, h,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60, MHD_OPTION_END);
}

int
cp_http_start(struct cp_ctx *cx, struct cp_http **out, struct st_err *err)
{
    const struct st_listen_set *set = &cx->conf.admin_listen;
    struct cp_http *h;
    int rc;

    *out = NULL;
    if (set->n == 0) {
        return st_err_set(err, -ST_ECONF, "admin_listen",
                          "admin_listen must be specified on a control plane");
    }
    for (size_t i = 0; i < set->n; i++) {
        rc = check_listen(&cx->conf, &set->v[i], err);
        if (rc < 0) {
            return rc;
        }
    }
    h = st_xcalloc(1, sizeof(*h));
    h->cx = cx;
    h->d = st_xcalloc(set->n, sizeof(*h->d));
    for (size_t i = 0; i < set->n; i++) {
        errno = 0;
        h->d[i] = start_one(h, &set->v[i]);
        if (h->d[i] == NULL) {
            int e = errno != 0 ? errno : EADDRINUSE;

            rc = st_err_set(err, -e, "admin_listen", "admin_listen: cannot listen on %s: %s",
                            set->v[i].text, strerror(e));
            cp_http_stop(h);
            return rc;
        }
        h->n++;
        st_log(ST_LOG_NOTICE, 0, "admin API listening on %s", set->v[i].text);
    }
    *out = h;
    return 0;
}

void
cp_http_stop(struct cp_http *h)
{
    if (h == NULL) {
        return;
    }
    for (size_t i = 0; i < h->n; i++) {
        MHD_stop_daemon(h->d[i]);
    }
    free(h->d);
    free(h);
}
