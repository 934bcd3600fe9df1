/* libFuzzer target for the admin API's list parameters (issue 14): ?offset= (entity
 * lists: an id; GET /tags: cp_store_tags_offset_parse's hex JSON; data planes: an id),
 * ?size= and the ?tags= filter (a,b: all of them; a/b: any), and the tag in /tags/{tag},
 * against a SQLite store holding a few entities of every kind with tags, and a registry
 * of three data planes. The store is filled once: every request is a read.
 *
 * The first byte picks the list, the second which parameters are present (bit 0 offset,
 * bit 1 size, bit 2 tags); then, one per line, the offset, size, tags and path tag, as
 * they are once libmicrohttpd has decoded them (any bytes but NUL).
 * STRAIT_FUZZ_VERBOSE=1 in the environment prints each request and its answer (to read a
 * crash input).
 * Besides memory errors, undefined behaviour and allocations beyond the run's limits, the
 * target aborts when:
 *   - the answer is not 200 with {"data": [...], "next": ..} or 400 with Kong's error body
 *     ({"code", "name", "message"}), or a page is longer than its size;
 *   - an entity listed with ?tags= lacks the tags asked for (all of them with ',', one of
 *     them with '/');
 *   - the `next` link of a page, requested as a client would (decoded as cp_http gets it),
 *     is refused;
 *   - an offset cp_store_tags_offset_parse accepts, made again from its three strings
 *     with cp_store_tags_offset_make, parses to other strings. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../unit/cp_test_certs.h"
#include "cp_admin.h"
#include "cp_ctx.h"
#include "cp_registry.h"
#include "cp_store.h"
#include "cp_store_int.h"
#include "cp_store_pool.h"
#include "fuzz_util.h"
#include "st_err.h"
#include "st_syncmsg.h"
#include "st_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static struct cp_ctx g_cx;
static char g_cert_id[64];

static const char SVC_ID[] = "8c5ee04d-2a32-4f44-a7d1-4b1c9a1f2e01";

/* Runs one request; returns the status and the parsed body (caller releases). */
static int
call(const char *method, const char *path, json_t *query, const char *body, json_t **out)
{
    struct cp_request rq = {.method = method,
                            .path = path,
                            .query = query,
                            .content_type = body != NULL ? "application/json" : NULL,
                            .n_content_types = body != NULL,
                            .body = body,
                            .body_len = body != NULL ? strlen(body) : 0};
    struct cp_response rs;
    json_error_t jerr;

    cp_admin_handle(&g_cx, &rq, &rs);
    if (getenv("STRAIT_FUZZ_VERBOSE") != NULL) {
        fprintf(stderr, "%s %s -> %d %s\n", rq.method, rq.path, rs.status,
                rs.body != NULL ? rs.body : "(no body)");
    }
    *out = rs.body != NULL ? json_loads(rs.body, 0, &jerr) : NULL;
    if (rs.body != NULL && *out == NULL) {
        abort();
    }
    free(rs.body);
    return rs.status;
}

static void
must_create(const char *path, json_t *obj)
{
    char *text = json_dumps(obj, JSON_COMPACT);
    json_t *q = json_object();
    json_t *out = NULL;
    int status = call("POST", path, q, text, &out);

    if (status != 201) {
        char *e = out != NULL ? json_dumps(out, 0) : NULL;

        fprintf(stderr, "fuzz_cp_paging: POST %s: %d %s\n", path, status, e != NULL ? e : "");
        abort();
    }
    if (strcmp(path, "/certificates") == 0) {
        snprintf(g_cert_id, sizeof(g_cert_id), "%s", json_string_value(json_object_get(out, "id")));
    }
    json_decref(out);
    json_decref(q);
    json_decref(obj);
    free(text);
}

static void
fill_store(void)
{
    static const char *const tags[][3] = {
        {"a", "b", NULL},  {"b", NULL, NULL}, {"c d", "\xc3\xa9", NULL},
        {"a", NULL, NULL}, {"a", "b", "c d"}, {NULL, NULL, NULL},
    };
    char name[32], path[96];

    for (size_t i = 0; i < ST_ARRAY_SIZE(tags); i++) {
        json_t *t = json_array();

        for (size_t j = 0; j < 3 && tags[i][j] != NULL; j++) {
            json_array_append_new(t, json_string(tags[i][j]));
        }
        snprintf(name, sizeof(name), "svc%zu", i);
        if (i == 0) {
            must_create("/services", json_pack("{s:s,s:s,s:s,s:O}", "id", SVC_ID, "name", name,
                                               "url", "tcp://10.0.0.1:80", "tags", t));
        } else {
            must_create("/services", json_pack("{s:s,s:s,s:O}", "name", name, "url",
                                               "tcp://10.0.0.1:80", "tags", t));
        }
        snprintf(name, sizeof(name), "route%zu", i);
        snprintf(path, sizeof(path), "/services/%s/routes", i % 2 == 0 ? "svc0" : "svc1");
        must_create(path, json_pack("{s:s,s:[s],s:[{s:i}],s:O}", "name", name, "protocols", "tcp",
                                    "destinations", "port", (int)(1000 + i), "tags", t));
        json_decref(t);
    }
    must_create("/certificates",
                json_pack("{s:s,s:s,s:[s,s,s],s:[s]}", "cert", LEAF_CERT, "key", LEAF_KEY, "snis",
                          "a.test", "b.test", "*.c.test", "tags", "a"));
    must_create("/ca_certificates", json_pack("{s:s,s:[s,s]}", "cert", CA_CERT, "tags", "a", "b"));
}

static void
fill_registry(void)
{
    static const char *const ids[] = {
        "11111111-1111-4111-8111-111111111111",
        "22222222-2222-4222-8222-222222222222",
        "33333333-3333-4333-8333-333333333333",
    };

    for (size_t i = 0; i < ST_ARRAY_SIZE(ids); i++) {
        struct st_sync_req req = {
            .dp_id = (char *)ids[i], .hostname = "dp", .dp_version = "3.9.0", .have_hash = ""};

        cp_registry_seen(g_cx.reg, &req, "127.0.0.1", CP_REGISTRY_SYNC_NORMAL, NULL);
    }
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    struct cp_store *store = NULL;
    struct st_err err = {0};

    (void)argc;
    (void)argv;
    st_log_set_level(ST_LOG_EMERG);
    if (cp_store_sqlite_open(":memory:", &store, &err) != 0) {
        fprintf(stderr, "fuzz_cp_paging: %s\n", err.msg);
        abort();
    }
    g_cx.pool = cp_store_pool_of(&store, 1);
    g_cx.reg = cp_registry_new();
    pthread_mutex_init(&g_cx.config_mu, NULL);
    fill_store();
    fill_registry();
    return 0;
}

/* Whether the entity's tags hold every tag of filter (',') or one of them ('/'). */
static bool
has_tags(const json_t *entity, const char *filter)
{
    const json_t *tags = json_object_get(entity, "tags");
    bool any = strchr(filter, '/') != NULL;
    const char *p = filter;
    bool found_one = false;

    while (*p != '\0') {
        size_t n = strcspn(p, ",/");
        bool found = false;
        const json_t *t;
        size_t i;

        json_array_foreach(tags, i, t)
        {
            found =
                found || (json_string_length(t) == n && memcmp(json_string_value(t), p, n) == 0);
        }
        if (!any && !found) {
            return false;
        }
        found_one = found_one || found;
        p += n + (p[n] != '\0');
    }
    return !any || found_one;
}

static void check_page(const char *path, const json_t *query, const json_t *body, bool tags_apply,
                       int depth);

static void
follow_next(const json_t *body, bool tags_apply, int depth)
{
    const char *next = json_string_value(json_object_get(body, "next"));
    char *link, *q;
    json_t *query, *out = NULL;

    if (next == NULL) {
        if (!json_is_null(json_object_get(body, "next"))) {
            abort();
        }
        return;
    }
    link = strdup(next);
    q = strchr(link, '?');
    if (q != NULL) {
        *q++ = '\0';
    }
    fz_http_unescape(link);
    query = fz_http_query(q);
    if (call("GET", link, query, NULL, &out) != 200) {
        abort();
    }
    check_page(link, query, out, tags_apply, depth + 1);
    json_decref(out);
    json_decref(query);
    free(link);
}

static void
check_page(const char *path, const json_t *query, const json_t *body, bool tags_apply, int depth)
{
    const char *filter = json_string_value(json_object_get(query, "tags"));
    const char *size = json_string_value(json_object_get(query, "size"));
    const json_t *data = json_object_get(body, "data");
    const json_t *v;
    size_t i;

    (void)path;
    if (!json_is_array(data) || json_array_size(data) > (size != NULL ? 1000u : 100u)) {
        abort();
    }
    if (size != NULL && (double)json_array_size(data) > strtod(size, NULL)) {
        abort();
    }
    json_array_foreach(data, i, v)
    {
        if (filter != NULL && tags_apply && !has_tags(v, filter)) {
            abort();
        }
    }
    if (depth < 8) {
        follow_next(body, tags_apply, depth);
    }
}

static void
check_answer(const char *path, const json_t *query, int status, const json_t *body, bool tags_apply,
             bool may_404)
{
    if (status == 404 && may_404) {
        return;
    }
    if (status == 400) {
        if (!json_is_integer(json_object_get(body, "code")) ||
            !json_is_string(json_object_get(body, "name")) ||
            !json_is_string(json_object_get(body, "message"))) {
            abort();
        }
        return;
    }
    if (status != 200) {
        abort();
    }
    check_page(path, query, body, tags_apply, 0);
}

static void
offset_roundtrip(const char *offset)
{
    json_t *a = cp_store_tags_offset_parse(offset);
    json_t *b;
    char *again;

    if (a == NULL) {
        return;
    }
    again = cp_store_tags_offset_make(json_string_value(json_array_get(a, 0)),
                                      json_string_value(json_array_get(a, 1)),
                                      json_string_value(json_array_get(a, 2)));
    b = again != NULL ? cp_store_tags_offset_parse(again) : NULL;
    if (again != NULL && !json_equal(a, b)) {
        abort();
    }
    json_decref(a);
    json_decref(b);
    free(again);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz_in in = {data, data + size};
    uint8_t which = fz_byte(&in);
    uint8_t present = fz_byte(&in);
    char *offset = fz_field(&in, '\n', NULL);
    char *psize = fz_field(&in, '\n', NULL);
    char *tags = fz_field(&in, '\n', NULL);
    char *tag = fz_field(&in, '\n', NULL);
    json_t *query = json_object();
    json_t *out = NULL;
    char path[160];
    bool tags_apply = true;
    int status;

    switch (which % 10) {
    case 0:
        snprintf(path, sizeof(path), "/services");
        break;
    case 1:
        snprintf(path, sizeof(path), "/routes");
        break;
    case 2:
        snprintf(path, sizeof(path), "/services/%s/routes", which & 0x80 ? SVC_ID : "svc0");
        tags_apply = false; /* Kong: nested collections ignore tags */
        break;
    case 3:
        snprintf(path, sizeof(path), "/certificates");
        break;
    case 4:
        snprintf(path, sizeof(path), "/snis");
        break;
    case 5:
        snprintf(path, sizeof(path), "/ca_certificates");
        break;
    case 6:
        snprintf(path, sizeof(path), "/tags");
        tags_apply = false;
        break;
    case 7:
        snprintf(path, sizeof(path), "/tags/%s", tag);
        tags_apply = false;
        break;
    case 8:
        snprintf(path, sizeof(path), "/clustering/data-planes");
        tags_apply = false;
        break;
    default:
        snprintf(path, sizeof(path), "/certificates/%s/snis", g_cert_id);
        tags_apply = false;
        break;
    }
    if (present & 1) {
        json_object_set_new(query, "offset", json_string_nocheck(offset));
    }
    if (present & 2) {
        json_object_set_new(query, "size", json_string_nocheck(psize));
    }
    if (present & 4) {
        json_object_set_new(query, "tags", json_string_nocheck(tags));
    }
    status = call("GET", path, query, NULL, &out);
    /* a '/' in the path's tag makes another path; a tag too long for path[] is cut */
    check_answer(path, query, status, out, tags_apply,
                 strchr(tag, '/') != NULL || strlen(path) >= sizeof(path) - 1);
    offset_roundtrip(offset);
    json_decref(out);
    json_decref(query);
    free(offset);
    free(psize);
    free(tags);
    free(tag);
    return 0;
}
