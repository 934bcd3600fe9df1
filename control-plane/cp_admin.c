/* Admin API: path routing, the node endpoints (/, /status, /clustering/...), request
 * bodies and Kong's error bodies. The entities live in cp_admin_entity.c and
 * cp_admin_cert.c.
 * Kong's sources: kong/api/api_helpers.lua, kong/api/endpoints.lua, kong/db/errors.lua,
 * kong/api/routes/{kong,health,clustering}.lua. */
#include "cp_admin.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cp_admin_int.h"
#include "cp_ctx.h"
#include "cp_form.h"
#include "cp_registry.h"
#include "cp_snapshot.h"
#include "cp_store.h"
#include "cp_store_pool.h"
#include "cp_sync_wait.h"
#include "st_conf.h"
#include "st_err.h"
#include "st_log.h"
#include "st_schema.h"
#include "st_util.h"

#define ADMIN_MAX_SEGS 6

/* What a JSON body may decode into (body_json): 1 MiB plus 24 bytes per byte of the body,
 * at most 256 MiB. A real configuration needs about 10 per byte (a compact declarative
 * file of 20,000 services and routes); the 16 MiB body limit then needs 168 MiB. */
#define CP_ADMIN_JSON_BASE     ((size_t)1 << 20)
#define CP_ADMIN_JSON_PER_BYTE ((size_t)24)
#define CP_ADMIN_JSON_MAX      ((size_t)256 << 20)

#define HASH_NONE "0000000000000000000000000000000000000000000000000000000000000000"

/* ?wait_for_sync: the longest wait, and the answer to a bad value */
#define CP_ADMIN_WAIT_MAX_S CP_SYNC_WAIT_MAX_S
#define CP_ADMIN_WAIT_MSG   "wait_for_sync must be a number of seconds greater than 0 and at most 300"

/* ------------------------------------------------------------------------ */
/* replies */

void
cp_admin__reply(struct cp_response *rs, int status, json_t *body)
{
    rs->status = status;
    free(rs->body);
    rs->body = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
}

/* The length of the UTF-8 character at p (avail > 0 bytes), or 0 when none starts there
 * (RFC 3629 §4: no overlong form, no surrogate, nothing above U+10FFFF). */
static size_t
utf8_char_len(const unsigned char *p, size_t avail)
{
    unsigned char lo = 0x80;
    unsigned char hi = 0xbf;
    size_t n;

    if (p[0] < 0x80) {
        return 1;
    }
    if (p[0] < 0xc2 || p[0] > 0xf4) {
        return 0;
    }
    n = p[0] < 0xe0 ? 2 : p[0] < 0xf0 ? 3 : 4;
    if (p[0] == 0xe0) {
        lo = 0xa0;
    } else if (p[0] == 0xed) {
        hi = 0x9f;
    } else if (p[0] == 0xf0) {
        lo = 0x90;
    } else if (p[0] == 0xf4) {
        hi = 0x8f;
    }
    if (avail < n || p[1] < lo || p[1] > hi) {
        return 0;
    }
    for (size_t i = 2; i < n; i++) {
        if (p[i] < 0x80 || p[i] > 0xbf) {
            return 0;
        }
    }
    return n;
}

json_t *
cp_admin__text(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *p = (const unsigned char *)s;
    size_t len = strlen(s);
    json_t *v = json_string(s);
    char *buf;
    size_t o = 0;

    if (v != NULL) {
        return v;
    }
    buf = st_xmalloc(len * 3 + 1);
    for (size_t i = 0; i < len;) {
        size_t k = utf8_char_len(p + i, len - i);

        if (k > 0) {
            memcpy(buf + o, p + i, k);
            o += k;
            i += k;
        } else {
            buf[o++] = '%';
            buf[o++] = hex[p[i] >> 4];
            buf[o++] = hex[p[i] & 0xf];
            i++;
        }
    }
    v = json_stringn(buf, o);
    free(buf);
    return v;
}

void
cp_admin__reply_msg(struct cp_response *rs, int status, const char *msg)
{
    cp_admin__reply(rs, status, json_pack("{s:o}", "message", cp_admin__text(msg)));
}

void
cp_admin__reply_code(struct cp_response *rs, int status, int code, const char *name,
                     const char *msg, json_t *fields)
{
    json_t *o =
        json_pack("{s:i,s:s,s:o}", "code", code, "name", name, "message", cp_admin__text(msg));

    if (fields != NULL) {
        json_object_set_new(o, "fields", fields);
    }
    cp_admin__reply(rs, status, o);
}

void
cp_admin__reply_db_down(struct cp_response *rs)
{
    cp_admin__reply_code(rs, 503, CP_ADMIN_DATABASE_ERROR, "database error",
                         "database unreachable, try again later", NULL);
    rs->header_name = "Retry-After";
    rs->header_value = "5";
}

static void
reply_schema(struct cp_response *rs, json_t *fields)
{
    char msg[1024];

    if (fields == NULL) {
        fields = json_object();
    }
    st_schema_message(fields, msg, sizeof(msg));
    cp_admin__reply_code(rs, 400, 2, "schema violation", msg, fields);
}

/* The collection a foreign-key field points at. */
static const char *
foreign_entity(const char *field)
{
    if (strcmp(field, "certificate") == 0 || strcmp(field, "client_certificate") == 0) {
        return st_entity_name(ST_ENT_CERTIFICATE);
    }
    if (strcmp(field, "ca_certificates") == 0) {
        return st_entity_name(ST_ENT_CA_CERTIFICATE);
    }
    return st_entity_name(ST_ENT_SERVICE);
}

/* Kong's foreign_key_violation_invalid_reference: the key is {id=...} or {name=...};
 * e->field is the referencing field, "service.name" when the key is a name. */
static void
reply_foreign(struct cp_response *rs, const struct st_err *e)
{
    char field[64];
    const char *key = "id";
    char *dot;
    char msg[768];

    st_snprintf(field, sizeof(field), "%s", e->field[0] != '\0' ? e->field : "service");
    dot = strchr(field, '.');
    if (dot != NULL) {
        *dot = '\0';
        key = "name";
    }
    st_snprintf(msg, sizeof(msg),
                "the foreign key '{%s=\"%s\"}' does not reference an existing '%s' entity.", key,
                e->msg, foreign_entity(field));
    cp_admin__reply_code(rs, 400, 4, "foreign key violation", msg,
                         json_pack("{s:{s:o}}", field, key, cp_admin__text(e->msg)));
}

void
cp_admin__reply_err(struct cp_response *rs, enum st_entity_kind k, int rc, const struct st_err *e,
                    json_t *fields)
{
    static const struct st_err none = {0};
    char msg[768];

    if (rc == -ST_ESCHEMA) {
        reply_schema(rs, fields);
        return;
    }
    json_decref(fields);
    if (e == NULL) {
        e = &none;
    }
    switch (rc) {
    case -ST_EPKEY:
        st_snprintf(msg, sizeof(msg), "primary key violation on key '{id=\"%s\"}'", e->msg);
        cp_admin__reply_code(rs, 400, 3, "primary key violation", msg,
                             json_pack("{s:o}", "id", cp_admin__text(e->msg)));
        break;
    case -ST_EPARSE:
        st_snprintf(msg, sizeof(msg), "invalid primary key: '{id=\"%s\"}'", e->msg);
        cp_admin__reply_code(rs, 400, 1, "invalid primary key", msg,
                             json_pack("{s:o}", "id", cp_admin__text(e->msg)));
        break;
    case -ST_EFOREIGN:
        reply_foreign(rs, e);
        break;
    case -ST_EREFERENCED:
        if (k == ST_ENT_CA_CERTIFICATE) {
            /* Kong's ca_certificates DAO: REFERENCED_BY_OTHERS */
            cp_admin__reply_code(rs, 400, 19, "referenced by others", e->msg, NULL);
            break;
        }
        st_snprintf(msg, sizeof(msg), "an existing '%s' entity references this '%s' entity",
                    e->field[0] != '\0' ? e->field : "routes", st_entity_name(k));
        cp_admin__reply_code(
            rs, 400, 4, "foreign key violation", msg,
            json_pack("{s:s}", "@referenced_by", e->field[0] != '\0' ? e->field : "routes"));
        break;
    case -ST_EUNIQUE: {
        const char *field = e->field[0] != '\0' ? e->field : "name";

        st_snprintf(msg, sizeof(msg), "UNIQUE violation detected on '{%s=\"%s\"}'", field, e->msg);
        cp_admin__reply_code(rs, 409, 5, "unique constraint violation", msg,
                             json_pack("{s:o}", field, cp_admin__text(e->msg)));
        break;
    }
    case -ST_ENOTFOUND:
        cp_admin__reply_msg(rs, 404, strcmp(e->field, "sni") == 0 ? "SNI not found" : "Not found");
        break;
    case -ST_EDBDOWN:
        cp_admin__reply_db_down(rs);
        break;
    default:
        cp_admin__reply_msg(rs, 500, "An unexpected error occurred");
        break;
    }
}

/* ------------------------------------------------------------------------ */
/* bodies */

bool
cp_admin__ct_is(const char *ct, const char *type)
{
    size_t n = strlen(type);

    while (*ct == ' ' || *ct == '\t') {
        ct++;
    }
    return strncasecmp(ct, type, n) == 0 &&
           (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ' || ct[n] == '\t');
}

/* What jansson may allocate while it decodes one JSON body (see body_json). */
struct json_budget {
    bool on;
    bool over; /* an allocation was refused */
    size_t left;
};

/* jansson's allocator is process-wide and takes no argument: the budget of the body being
 * decoded on this thread is the one place it can look. Off (no limit) everywhere else. */
static _Thread_local struct json_budget json_budget;

static void *
json_budget_malloc(size_t n)
{
    struct json_budget *b = &json_budget;

    if (b->on) {
        if (n > b->left) {
            b->over = true;
            return NULL;
        }
        b->left -= n;
    }
    return malloc(n);
}

/* Installed before main() starts any thread (jansson reads the functions without a lock).
 * They are malloc and free underneath, so memory from either side frees the same way. */
__attribute__((constructor)) static void
json_budget_install(void)
{
    json_set_alloc_funcs(json_budget_malloc, free);
}

/* Decodes a JSON body with what it builds bounded, not only what it reads: jansson makes
 * about 10 bytes of objects per byte of a real configuration, but up to 70 per byte of
 * "[{},{},...]" (16 MiB: 1.2 GB). A body may take CP_ADMIN_JSON_BASE plus
 * CP_ADMIN_JSON_PER_BYTE per byte of it, at most CP_ADMIN_JSON_MAX (issue 14, defect 2's
 * class). */
static json_t *
body_json(const struct cp_request *rq, struct cp_response *rs)
{
    size_t max = rq->body_len < (CP_ADMIN_JSON_MAX - CP_ADMIN_JSON_BASE) / CP_ADMIN_JSON_PER_BYTE
                     ? CP_ADMIN_JSON_BASE + rq->body_len * CP_ADMIN_JSON_PER_BYTE
                     : CP_ADMIN_JSON_MAX;
    json_error_t jerr;
    json_t *o;
    bool over;

    json_budget = (struct json_budget){.on = true, .left = max};
    o = json_loadb(rq->body != NULL ? rq->body : "", rq->body_len, 0, &jerr);
    over = json_budget.over;
    json_budget = (struct json_budget){0};
    if (over) {
        char msg[128];

        json_decref(o);
        st_snprintf(msg, sizeof(msg), "JSON body too large: it decodes into more than %zu bytes",
                    max);
        cp_admin__reply_msg(rs, 400, msg);
        return NULL;
    }
    if (!json_is_object(o)) {
        json_decref(o);
        cp_admin__reply_msg(rs, 400, "Cannot parse JSON body");
        return NULL;
    }
    return o;
}

json_t *
cp_admin__body(const struct cp_request *rq, struct cp_response *rs)
{
    struct st_err err = {0};
    json_t *o = NULL;

    if (rq->n_content_types > 1) {
        cp_admin__reply_msg(rs, 400, "Multiple Content-Type headers not allowed");
        return NULL;
    }
    if (rq->content_type == NULL) {
        if (rq->body_len == 0) {
            return json_object();
        }
        cp_admin__reply_msg(rs, 415, "Unsupported Content-Type");
        return NULL;
    }
    if (cp_admin__ct_is(rq->content_type, "application/json")) {
        return body_json(rq, rs);
    }
    if (cp_admin__ct_is(rq->content_type, "application/x-www-form-urlencoded")) {
        if (cp_form_decode(rq->body != NULL ? rq->body : "", rq->body_len, &o, &err) < 0) {
            cp_admin__reply_msg(rs, 400, err.msg);
            return NULL;
        }
        return o;
    }
    if (cp_admin__ct_is(rq->content_type, "multipart/form-data")) {
        if (rq->parts_err != NULL) {
            cp_admin__reply_msg(rs, 400, rq->parts_err);
            return NULL;
        }
        if (rq->parts != NULL) {
            return json_deep_copy(rq->parts);
        }
        if (rq->body_len == 0) {
            return json_object();
        }
        cp_admin__reply_msg(rs, 400, "Cannot parse multipart/form-data body");
        return NULL;
    }
    cp_admin__reply_msg(rs, 415, "Unsupported Content-Type");
    return NULL;
}

json_t *
cp_admin__render(const json_t *obj)
{
    static const char *const ts[] = {"created_at", "updated_at"};
    json_t *o = json_deep_copy(obj);

    for (size_t i = 0; i < ST_ARRAY_SIZE(ts); i++) {
        json_t *v = json_object_get(o, ts[i]);

        if (json_is_integer(v)) {
            json_object_set_new(o, ts[i], json_integer(json_integer_value(v) / 1000));
        }
    }
    return o;
}

bool
cp_admin__is(const struct cp_request *rq, const char *method)
{
    if (strcmp(method, "GET") == 0 && strcmp(rq->method, "HEAD") == 0) {
        return true;
    }
    return strcmp(rq->method, method) == 0;
}

/* ------------------------------------------------------------------------ */
/* node endpoints */

static json_t *
configuration(const struct cp_ctx *cx)
{
    json_t *o = json_object();
    const char *key;
    const char *value;
    bool secret;

    json_object_set_new(o, "prefix", json_string(cx->conf.prefix));
    for (size_t i = 0; (key = st_conf_key_at(&cx->conf, i, &value, &secret)) != NULL; i++) {
        if (secret) {
            continue;
        }
        json_object_set_new(o, key, value != NULL ? json_string(value) : json_null());
    }
    json_object_set_new(o, "role", json_string("control_plane"));
    return o;
}

static void
get_root(struct cp_ctx *cx, struct cp_response *rs)
{
    json_t *o = json_object();

    json_object_set_new(o, "tagline", json_string("Welcome to Strait"));
    json_object_set_new(o, "version", json_string(STRAIT_VERSION));
    json_object_set_new(o, "edition", json_string("community"));
    json_object_set_new(o, "hostname", json_string(cx->hostname));
    json_object_set_new(o, "node_id", json_string(cx->node_id));
    json_object_set_new(o, "configuration", configuration(cx));
    json_object_set_new(o, "plugins",
                        json_pack("{s:{},s:[]}", "available_on_server", "enabled_in_cluster"));
    json_object_set_new(o, "pids", json_pack("{s:i,s:[]}", "master", (int)getpid(), "workers"));
    cp_admin__reply(rs, 200, o);
}

/* How many entities of each kind the store holds, read with the version in one read
 * transaction: {"services": n, "routes": n, ...}. Returns 0, or -ST_EDB with *counts NULL. */
static int
status_counts(struct cp_store *store, uint64_t *version, json_t **counts)
{
    uint64_t n = 0;
    int rc;

    *counts = NULL;
    rc = cp_store_begin(store, false);
    if (rc < 0) {
        return rc;
    }
    rc = cp_store_version(store, version);
    if (rc == 0) {
        *counts = json_object();
    }
    for (int k = 0; rc == 0 && k < ST_ENT__COUNT; k++) {
        rc = cp_store_count(store, (enum st_entity_kind)k, &n);
        json_object_set_new(*counts, st_entity_name((enum st_entity_kind)k),
                            json_integer((json_int_t)n));
    }
    cp_store_rollback(store); /* read-only */
    if (rc < 0) {
        json_decref(*counts);
        *counts = NULL;
    }
    return rc;
}

/* Whether the database answers: status_counts on a pooled handle. A handle that does not
 * come free within pg_timeout (every one busy with a write) leaves the answer of the
 * previous probe, and no counts, rather than waiting behind the writers. */
static bool
status_probe(struct cp_ctx *cx, uint64_t *version, json_t **counts)
{
    int wait_ms = cx->conf.pg_timeout > 100 ? cx->conf.pg_timeout : 100;
    struct cp_store *s = cp_store_pool_get_timed(cx->pool, wait_ms);
    int rc;

    *counts = NULL;
    if (s == NULL) {
        return __atomic_load_n(&cx->db_unreachable, __ATOMIC_RELAXED) == 0;
    }
    rc = status_counts(s, version, counts);
    cp_store_pool_put(cx->pool, s);
    __atomic_store_n(&cx->db_unreachable, rc < 0, __ATOMIC_RELAXED);
    return rc == 0;
}

/* Kong's /status (database.reachable, server counters, configuration_hash) plus Strait's
 * config_version and "entities": the number of entities of each kind, absent when the
 * database cannot be read. */
static void
get_status(struct cp_ctx *cx, struct cp_response *rs)
{
    const struct cp_server_stats *st = &cx->stats;
    struct cp_snapshot_blob *b = NULL;
    json_t *counts = NULL;
    uint64_t version = 0;
    bool reachable;
    json_t *o;

    reachable = status_probe(cx, &version, &counts);
    if (cx->snap != NULL) {
        b = cp_snapshot_acquire(cx->snap);
        if (counts != NULL && b->version != version) {
            /* read your writes: a write that returned is in the hash shown here */
            cp_snapshot_blob_unref(b);
            cp_snapshot_refresh(cx->snap);
            b = cp_snapshot_acquire(cx->snap);
        }
    }
    o = json_object();
    json_object_set_new(o, "database", json_pack("{s:b}", "reachable", reachable));
    json_object_set_new(o, "configuration_hash", json_string(b != NULL ? b->hash : HASH_NONE));
    json_object_set_new(o, "config_version", json_integer(b != NULL ? (json_int_t)b->version : 0));
    json_object_set_new(
        o, "server",
        json_pack("{s:I,s:I,s:I,s:I}", "connections_accepted",
                  (json_int_t)__atomic_load_n(&st->accepted, __ATOMIC_RELAXED),
                  "connections_active", (json_int_t)__atomic_load_n(&st->active, __ATOMIC_RELAXED),
                  "connections_handled",
                  (json_int_t)__atomic_load_n(&st->handled, __ATOMIC_RELAXED), "total_requests",
                  (json_int_t)__atomic_load_n(&st->requests, __ATOMIC_RELAXED)));
    if (counts != NULL) {
        json_object_set_new(o, "entities", counts);
    }
    cp_snapshot_blob_unref(b);
    cp_admin__reply(rs, 200, o);
}

/* The shared registry's records for a page after `after` of `size` entries (NULL: the
 * store is not shared, or the database is away: this CP's entries only). */
static json_t *
shared_dps(struct cp_ctx *cx, const char *after, size_t size)
{
    struct cp_store *s;
    json_t *rows = NULL;

    if (cx->reg_share == NULL) {
        return NULL;
    }
    s = cp_store_pool_get(cx->pool);
    if (cp_store_dps_page(s, after, size, st_time_ms() - cp_registry_purge_ms(cx->reg), &rows) <
        0) {
        rows = NULL;
    }
    cp_store_pool_put(cx->pool, s);
    return rows;
}

/* GET /clustering/data-planes: Kong's generated collection endpoint over the registry,
 * ordered by id. The offset is the last id of the previous page (DP ids are UUIDs), so
 * a DP that joins or leaves between two pages neither repeats nor shifts the others. */
static void
data_planes(struct cp_ctx *cx, const struct cp_request *rq, struct cp_response *rs)
{
    const char *offset = json_string_value(json_object_get(rq->query, "offset"));
    size_t size;
    bool more = false;
    json_t *shared;
    json_t *data;
    json_t *body;

    if (cp_admin__page_size(rq, rs, &size) < 0) {
        return;
    }
    if (offset != NULL && !st_schema_is_uuid(offset)) {
        char msg[512];

        st_snprintf(msg, sizeof(msg), "'%s' is not a valid offset: bad offset", offset);
        cp_admin__offset_error(rs, offset, msg);
        return;
    }
    shared = shared_dps(cx, offset, size + 1);
    data = cp_registry_list(cx->reg, shared, offset, size, &more);
    json_decref(shared);
    body = json_pack("{s:o}", "data", data);
    if (more && json_array_size(data) > 0) {
        const char *last = json_string_value(
            json_object_get(json_array_get(data, json_array_size(data) - 1), "id"));
        char *eoff = cp_admin__escape(last);
        char next[512];

        st_snprintf(next, sizeof(next), "/clustering/data-planes?offset=%s&size=%zu", eoff, size);
        json_object_set_new(body, "offset", json_string(last));
        json_object_set_new(body, "next", json_string(next));
        free(eoff);
    } else {
        json_object_set_new(body, "next", json_null());
    }
    cp_admin__reply(rs, 200, body);
}

static void
clustering(struct cp_ctx *cx, const struct cp_request *rq, const char *what, struct cp_response *rs)
{
    if (strcmp(what, "data-planes") == 0) {
        data_planes(cx, rq, rs);
        return;
    }
    if (strcmp(what, "status") == 0) {
        json_t *shared = shared_dps(cx, NULL, SIZE_MAX / 2);

        cp_admin__reply(rs, 200, cp_registry_status(cx->reg, shared));
        json_decref(shared);
        rs->header_name = "Deprecation";
        rs->header_value = "true";
        return;
    }
    cp_admin__reply_msg(rs, 404, "Not found");
}

/* ------------------------------------------------------------------------ */
/* routing */

/* Splits the path into at most max segments (pointers into buf). Returns the count or
 * -1 when there are too many or one is empty (a double slash). */
static int
split_path(char *buf, char **segs, int max)
{
    char *p = buf;
    int n = 0;
    size_t len = strlen(buf);

    while (len > 1 && buf[len - 1] == '/') {
        buf[--len] = '\0'; /* a trailing slash is ignored */
    }
    if (*p == '/') {
        p++;
    }
    while (*p != '\0') {
        char *slash = strchr(p, '/');

        if (n == max || slash == p) {
            return -1;
        }
        segs[n++] = p;
        if (slash == NULL) {
            break;
        }
        *slash = '\0';
        p = slash + 1;
    }
    return n;
}

/* The kind a top-level collection name stands for; false when it is none. */
static bool
collection_kind(const char *name, enum st_entity_kind *k)
{
    for (int i = 0; i < ST_ENT__COUNT; i++) {
        if (strcmp(name, st_entity_name((enum st_entity_kind)i)) == 0) {
            *k = (enum st_entity_kind)i;
            return true;
        }
    }
    return false;
}

/* The nested collections: /services/{s}/routes and /certificates/{c}/snis. */
static bool
nested(char **s, int n)
{
    return n >= 3 && ((strcmp(s[0], "services") == 0 && strcmp(s[2], "routes") == 0) ||
                      (strcmp(s[0], "certificates") == 0 && strcmp(s[2], "snis") == 0));
}

/* Which methods a path allows (for 405 and OPTIONS), or NULL if the path is unknown. */
static const char *
allowed(char **s, int n)
{
    enum st_entity_kind k = ST_ENT_SERVICE;
    bool ent = n > 0 && collection_kind(s[0], &k);

    if (n == 0 || (n == 1 && strcmp(s[0], "status") == 0)) {
        return "GET, HEAD, OPTIONS";
    }
    if (n == 2 && strcmp(s[0], "clustering") == 0 &&
        (strcmp(s[1], "data-planes") == 0 || strcmp(s[1], "status") == 0)) {
        return "GET, HEAD, OPTIONS";
    }
    if (n == 1 && strcmp(s[0], "endpoints") == 0) {
        return "GET, HEAD, OPTIONS";
    }
    if (n == 3 && strcmp(s[0], "schemas") == 0 && strcmp(s[2], "validate") == 0) {
        return "OPTIONS, POST";
    }
    if ((n == 2 && strcmp(s[0], "schemas") == 0) ||
        ((n == 1 || n == 2) && strcmp(s[0], "tags") == 0)) {
        return "GET, HEAD, OPTIONS";
    }
    if (n == 1 && strcmp(s[0], "config") == 0) {
        return "GET, HEAD, OPTIONS, POST";
    }
    if ((n == 1 && ent) || (n == 3 && nested(s, n))) {
        return "GET, HEAD, OPTIONS, POST";
    }
    if ((n == 2 && ent) || (n == 4 && nested(s, n))) {
        return "DELETE, GET, HEAD, OPTIONS, PATCH, PUT";
    }
    if (n == 3 && strcmp(s[0], "routes") == 0 && strcmp(s[2], "service") == 0) {
        return "GET, HEAD, OPTIONS, PATCH, PUT";
    }
    return NULL;
}

/* Whether method is one of list's comma-separated names. An empty method is none (strstr
 * would find "" at every position without moving on). */
static bool
method_in(const char *method, const char *list)
{
    size_t n = strlen(method);

    if (n == 0) {
        return false;
    }
    for (const char *p = list; (p = strstr(p, method)) != NULL; p += n) {
        if ((p == list || p[-1] == ' ') && (p[n] == ',' || p[n] == '\0')) {
            return true;
        }
    }
    return false;
}

static void
dispatch(struct cp_ctx *cx, const struct cp_request *rq, struct cp_response *rs, char **s, int n)
{
    enum st_entity_kind k = ST_ENT_SERVICE;
    enum st_entity_kind child = ST_ENT_ROUTE;

    if (n == 0) {
        get_root(cx, rs);
        return;
    }
    if (strcmp(s[0], "status") == 0) {
        get_status(cx, rs);
        return;
    }
    if (strcmp(s[0], "clustering") == 0) {
        clustering(cx, rq, s[1], rs);
        return;
    }
    if (strcmp(s[0], "endpoints") == 0) {
        cp_admin__endpoints(rs);
        return;
    }
    if (strcmp(s[0], "schemas") == 0) {
        if (n == 2) {
            cp_admin__schema_get(rs, s[1]);
        } else {
            cp_admin__schema_validate(rq, rs, s[1]);
        }
        return;
    }
    if (strcmp(s[0], "tags") == 0) {
        cp_admin__tags(cx, rq, rs, n == 2 ? s[1] : NULL);
        return;
    }
    if (strcmp(s[0], "config") == 0) {
        cp_admin__config(cx, rq, rs);
        return;
    }
    collection_kind(s[0], &k);
    if (n >= 3 && nested(s, n)) {
        collection_kind(s[2], &child);
    }
    if (n == 1) {
        cp_admin__collection(cx, rq, rs, k, NULL);
    } else if (n == 2) {
        cp_admin__entity(cx, rq, rs, k, s[1], NULL);
    } else if (n == 3 && nested(s, n)) {
        cp_admin__collection(cx, rq, rs, child, s[1]);
    } else if (n == 3) {
        cp_admin__route_service(cx, rq, rs, s[1]);
    } else {
        cp_admin__entity(cx, rq, rs, child, s[3], s[1]);
    }
}

/* ------------------------------------------------------------------------ */
/* wait_for_sync */

/* Whether the request may commit something: a write method on any path but
 * /schemas/{name}/validate. */
static bool
is_write(const struct cp_request *rq, char **s, int n)
{
    static const char *const writes[] = {"POST", "PUT", "PATCH", "DELETE"};
    bool w = false;

    for (size_t i = 0; i < ST_ARRAY_SIZE(writes); i++) {
        w = w || strcmp(rq->method, writes[i]) == 0;
    }
    return w && !(n > 0 && strcmp(s[0], "schemas") == 0);
}

/* Parses ?wait_for_sync=SECONDS of a write (a decimal number, 0 < SECONDS <=
 * CP_ADMIN_WAIT_MAX_S) into *ms (0: absent). Replies 400 and returns -1 when it is bad. */
static int
wait_param(const struct cp_request *rq, struct cp_response *rs, int64_t *ms)
{
    const char *v = json_string_value(json_object_get(rq->query, "wait_for_sync"));
    bool dot = false;
    double secs;

    *ms = 0;
    if (v == NULL) {
        return 0;
    }
    for (const char *p = v; *p != '\0'; p++) {
        if (*p == '.' && !dot) {
            dot = true;
        } else if (*p < '0' || *p > '9') {
            v = NULL; /* signs, exponents, hex, blanks: not SECONDS */
            break;
        }
    }
    secs = v != NULL && v[0] != '\0' && strcmp(v, ".") != 0 ? strtod(v, NULL) : 0.0;
    *ms = (int64_t)(secs * 1000.0 + 0.5);
    if (secs <= 0.0 || secs > CP_ADMIN_WAIT_MAX_S || *ms <= 0) {
        *ms = 0;
        cp_admin__reply_msg(rs, 400, CP_ADMIN_WAIT_MSG);
        return -1;
    }
    return 0;
}

/* After a write that succeeded: asks cp_http to wait wait_ms for the config version the
 * store holds now (the write's commit or a later one). */
static void
wait_target(struct cp_ctx *cx, struct cp_response *rs, int64_t wait_ms)
{
    struct cp_store *st;
    uint64_t version = 0;

    if (cx->snap == NULL || rs->status < 200 || rs->status > 299) {
        return;
    }
    st = cp_store_pool_get(cx->pool);
    if (cp_store_version(st, &version) < 0) {
        /* no version to wait for: no configuration acknowledges it, the wait runs out
         * with every connected DP pending rather than confirm what it cannot know */
        st_log(ST_LOG_WARN, 0, "wait_for_sync: cannot read the config version after a write");
        version = UINT64_MAX;
    }
    cp_store_pool_put(cx->pool, st);
    rs->wait_ms = wait_ms;
    rs->sync_version = version;
}

void
cp_admin_handle(struct cp_ctx *cx, const struct cp_request *rq, struct cp_response *rs)
{
    int64_t wait_ms = 0;

    char *segs[ADMIN_MAX_SEGS];
    char *buf = st_xstrdup(rq->path != NULL ? rq->path : "/");
    int n = split_path(buf, segs, ADMIN_MAX_SEGS);
    const char *allow = n >= 0 ? allowed(segs, n) : NULL;

    memset(rs, 0, sizeof(*rs));
    if (allow == NULL) {
        cp_admin__reply_msg(rs, 404, "Not found");
    } else if (strcmp(rq->method, "OPTIONS") == 0) {
        cp_admin__reply(rs, 204, NULL);
        rs->header_name = "Allow";
        rs->header_value = allow;
    } else if (!method_in(rq->method, allow)) {
        cp_admin__reply_msg(rs, 405, "Method not allowed");
    } else if (!is_write(rq, segs, n) || wait_param(rq, rs, &wait_ms) == 0) {
        dispatch(cx, rq, rs, segs, n);
        if (wait_ms > 0) {
            wait_target(cx, rs, wait_ms);
        }
    }
    free(buf);
}
