/* libFuzzer target for the admin API without HTTP (issue 14): cp_admin_handle, the router
 * and every handler behind it (entities, nested collections, certificates' snis,
 * /config, /tags, /schemas, /clustering, /status), with the bodies they decode (JSON,
 * form, multipart parts, declarative text), against a real SQLite store.
 *
 * The input is up to four requests separated by NUL bytes, each
 *     METHOD SP TARGET [SP CONTENT-TYPE] LF BODY
 * TARGET is a path and query as a client sends them: the target decodes them as cp_http
 * gets them from libmicrohttpd (its unescape callback: %XX decoded but %00; the query cut
 * at '&' and the first '='; fuzz_util.h). A multipart/form-data body is lines "name=value", each
 * part given to cp_form_add as cp_http does. Each input starts on an empty store of its own (an
 * in-memory SQLite database), so the requests of one input see each other's writes and no other
 * input's.
 *
 * STRAIT_FUZZ_VERBOSE=1 in the environment prints each request and its answer (to read a
 * crash input).
 * Besides memory errors and allocations beyond the run's limits, the target aborts when:
 *   - a status is outside 100..599, or 204/304 carries a body;
 *   - a body is not JSON, or an error (4xx, 5xx) body is not an object with a string
 *     "message" (Kong's error bodies all have one);
 *   - a header the answer adds holds a CR or LF. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cp_admin.h"
#include "cp_ctx.h"
#include "cp_form.h"
#include "cp_registry.h"
#include "cp_store.h"
#include "cp_store_pool.h"
#include "fuzz_util.h"
#include "st_err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define REQUESTS_MAX 4

static struct cp_ctx g_cx;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    struct st_err err = {0};

    (void)argc;
    (void)argv;
    st_log_set_level(ST_LOG_EMERG);
    setenv("STRAIT_CLUSTER_MTLS", "off", 1);
    if (st_conf_load(&g_cx.conf, NULL, fz_tmpdir(), ST_PLANE_CP, &err) != 0) {
        fprintf(stderr, "fuzz_cp_admin: %s\n", err.msg);
        abort();
    }
    unsetenv("STRAIT_CLUSTER_MTLS");
    pthread_mutex_init(&g_cx.config_mu, NULL);
    snprintf(g_cx.node_id, sizeof(g_cx.node_id), "00000000-0000-4000-8000-000000000001");
    snprintf(g_cx.hostname, sizeof(g_cx.hostname), "fuzz");
    return 0;
}

static json_t *
parts_of(const char *body, size_t len, char *why, size_t whylen)
{
    struct fz_in in = {(const uint8_t *)body, (const uint8_t *)body + len};
    struct cp_form *f = cp_form_new(len);
    json_t *o = NULL;
    int rc = 0;

    while (in.p < in.end && rc == 0) {
        size_t n;
        char *line = fz_field(&in, '\n', &n);
        char *eq = memchr(line, '=', n);
        size_t klen = eq != NULL ? (size_t)(eq - line) : n;
        struct st_err err = {0};

        if (eq != NULL) {
            *eq = '\0';
        }
        rc = cp_form_add(f, line, klen, eq != NULL ? eq + 1 : "", eq != NULL ? n - klen - 1 : 0,
                         &err);
        if (rc < 0) {
            snprintf(why, whylen, "%s", err.msg);
        }
        free(line);
    }
    if (rc == 0) {
        o = cp_form_object(f);
    }
    cp_form_free(f);
    return o;
}

static void
check_response(const struct cp_response *rs)
{
    json_error_t jerr;
    json_t *body;

    if (rs->status < 100 || rs->status > 599 ||
        ((rs->status == 204 || rs->status == 304) && rs->body != NULL)) {
        abort();
    }
    if (rs->header_name != NULL &&
        (rs->header_value == NULL || strpbrk(rs->header_name, "\r\n") != NULL ||
         strpbrk(rs->header_value, "\r\n") != NULL)) {
        abort();
    }
    if (rs->body == NULL) {
        if (rs->status >= 400) {
            abort();
        }
        return;
    }
    body = json_loads(rs->body, JSON_DECODE_ANY, &jerr);
    if (body == NULL) {
        abort();
    }
    if (rs->status >= 400 && !json_is_string(json_object_get(body, "message"))) {
        abort();
    }
    json_decref(body);
}

static void
one_request(char *text, size_t len)
{
    struct fz_in in = {(const uint8_t *)text, (const uint8_t *)text + len};
    char *line = fz_field(&in, '\n', NULL);
    size_t body_len;
    char *body = fz_rest(&in, &body_len);
    char *target = strchr(line, ' ');
    char *ctype = NULL, *q;
    struct cp_request rq = {0};
    struct cp_response rs;
    json_t *query, *parts = NULL;
    char why[512] = "";

    if (target != NULL) {
        *target++ = '\0';
        ctype = strchr(target, ' ');
        if (ctype != NULL) {
            *ctype++ = '\0';
        }
    }
    q = target != NULL ? strchr(target, '?') : NULL;
    if (q != NULL) {
        *q++ = '\0';
    }
    if (target != NULL) {
        fz_http_unescape(target);
    }
    query = fz_http_query(q);
    rq.method = line;
    rq.path = target != NULL ? target : "/";
    rq.query = query;
    rq.content_type = ctype;
    rq.n_content_types = ctype != NULL;
    rq.body = body;
    rq.body_len = body_len;
    if (ctype != NULL && strncmp(ctype, "multipart/form-data", 19) == 0) {
        parts = parts_of(body, body_len, why, sizeof(why));
        rq.parts = parts;
        rq.parts_err = parts == NULL ? why : NULL;
    }
    cp_admin_handle(&g_cx, &rq, &rs);
    if (getenv("STRAIT_FUZZ_VERBOSE") != NULL) {
        fprintf(stderr, "%s %s -> %d %s\n", rq.method, rq.path, rs.status,
                rs.body != NULL ? rs.body : "(no body)");
    }
    check_response(&rs);
    free(rs.body);
    json_decref(parts);
    json_decref(query);
    free(body);
    free(line);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz_in in = {data, data + size};
    struct cp_store *store = NULL;
    struct st_err err = {0};

    if (cp_store_sqlite_open(":memory:", &store, &err) != 0) {
        fprintf(stderr, "fuzz_cp_admin: %s\n", err.msg);
        abort();
    }
    g_cx.pool = cp_store_pool_of(&store, 1);
    g_cx.reg = cp_registry_new();
    g_cx.config_sha[0] = '\0';
    g_cx.config_version = 0;
    for (int i = 0; i < REQUESTS_MAX && in.p < in.end; i++) {
        size_t n;
        char *text = fz_field(&in, '\0', &n);

        one_request(text, n);
        free(text);
    }
    cp_store_pool_free(g_cx.pool);
    cp_registry_free(g_cx.reg);
    g_cx.pool = NULL;
    g_cx.reg = NULL;
    return 0;
}
