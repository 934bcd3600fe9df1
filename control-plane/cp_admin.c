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
#include "cp_dberr.h"
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

void
cp_admin__reply_msg(struct cp_response *rs, int status, const char *msg)
{
    cp_admin__reply(rs, status, json_pack("{s:o}", "message", cp_dberr_text(msg)));
}

void
cp_admin__reply_code(struct cp_response *rs, int status, int code, const char *name,
                     const char *msg, json_t *fields)
{
    json_t *o =
        json_pack("{s:i,s:s,s:o}", "code", code, "name", name, "message", cp_dberr_text(msg));

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

void
cp_admin__reply_db_fail(struct cp_response *rs, int rc)
{
    if (rc == -ST_EDBDOWN) {
        cp_admin__reply_db_down(rs);
    } else {
        cp_admin__reply_msg(rs, 500, "An unexpected error occurred");
    }
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

void
cp_admin__reply_err(struct cp_response *rs, enum st_entity_kind k, int rc, const struct st_err *e,
                    json_t *fields)
{
    struct cp_dberr d;

    if (rc == -ST_ESCHEMA) {
        reply_schema(rs, fields);
        return;
    }
    json_decref(fields);
    if (rc == -ST_EDBDOWN) {
        cp_admin__reply_db_down(rs);
        return;
    }
    cp_dberr_of(k, rc, e, &d);
    if (d.code == 0) {
        cp_admin__reply_msg(rs, d.status, d.msg);
    } else {
        cp_admin__reply_code(rs, d.status, d.code, d.name, d.msg, d.fields);
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

void
cp_admin__timestamps(json_t *o, bool to_ms)
{
    static const char *const ts[] = {"created_at", "updated_at"};

    for (size_t i = 0; i < ST_ARRAY_SIZE(ts); i++) {
        json_t *v = json_object_get(o, ts[i]);
        json_int_t n = json_integer_value(v);

        if (json_is_integer(v)) {
            json_object_set_new(o, ts[i], json_integer(to_ms ? n * 1000 : n / 1000));
        }
    }
}

json_t *
cp_admin__render(const json_t *obj)
{
    json_t *o = json_deep_copy(obj);

    cp_admin__timestamps(o, false);
    return o;
}

bool
cp_admin__is(const struct cp_request *rq, const char *method)
{
    return strcmp(rq->method, method) == 0 ||
           (strcmp(method, "GET") == 0 && strcmp(rq->method, "HEAD") == 0);
}

/* ------------------------------------------------------------------------ */
/* node endpoints: route handlers (see the routing below) */

/* A path matched by a route: its segments, and the kind an entity route names (its last
 * collection segment; ST_ENT__COUNT for the other routes). */
struct match {
    char **s;
    int n;
    enum st_entity_kind kind;
    const struct st_field *parent; /* a nested kind's foreign key to the first kind */
};

static json_t *
configuration(const struct cp_ctx *cx)
{
    json_t *o = json_object();
    const char *key;
    const char *value;
    bool secret;

    json_object_set_new(o, "prefix", json_string(cx->conf.prefix));
    for (size_t i = 0; (key = st_conf_key_at(&cx->conf, i, &value, &secret)) != NULL; i++) {
        if (!secret) {
            json_object_set_new(o, key, value != NULL ? json_string(value) : json_null());
        }
    }
    json_object_set_new(o, "role", json_string("control_plane"));
    return o;
}

static void
r_root(struct cp_ctx *cx, const struct cp_request *rq, struct cp_response *rs,
       const struct match *m)
{
    json_t *o = json_pack("{s:s,s:s,s:s}", "tagline", "Welcome to Strait", "version",
                          STRAIT_VERSION, "edition", "community");

    (void)rq;
    (void)m;
    json_object_set_new(o, "hostname", json_string(cx->hostname));
    json_object_set_new(o, "node_id", json_string(cx->node_id));
    json_object_set_new(o, "configuration", configuration(cx));
    json_object_set_new(o, "plugins",
                        json_pack("{s:o,s:o}", "available_on_server", cp_admin__plugins_available(),
                                  "enabled_in_cluster", cp_admin__plugins_in_use(cx)));
    json_object_set_new(o, "pids", json_pack("{s:i,s:[]}", "master", (int)getpid(), "workers"));
    cp_admin__reply(rs, 200, o);
}

/* How many entities of each kind the store holds, read with the version in one read
 * transaction: {"services": n, "routes": n, ...}. Returns 0, or -ST_EDB with *counts NULL. */
static int
status_counts(struct cp_store *store, uint64_t *version, json_t **counts)
{
    uint64_t n = 0;
    int rc = cp_store_begin(store, false);

    *counts = json_object();
    if (rc == 0) {
        rc = cp_store_version(store, version);
        for (int k = 0; rc == 0 && k < ST_ENT__COUNT; k++) {
            rc = cp_store_count(store, (enum st_entity_kind)k, &n);
            json_object_set_new(*counts, st_entity_name((enum st_entity_kind)k),
                                json_integer((json_int_t)n));
        }
        cp_store_rollback(store); /* read-only */
    }
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
r_status(struct cp_ctx *cx, const struct cp_request *rq, struct cp_response *rs,
         const struct match *m)
{
    const struct cp_server_stats *st = &cx->stats;
    struct cp_snapshot_blob *b = NULL;
    json_t *counts = NULL;
    uint64_t version = 0;
    bool reachable = status_probe(cx, &version, &counts);
    json_t *o;

    (void)rq;
    (void)m;
    if (cx->snap != NULL) {
        b = cp_snapshot_acquire(cx->snap);
        if (counts != NULL && b->version != version) {
            /* read your writes: a write that returned is in the hash shown here */
            cp_snapshot_blob_unref(b);
            cp_snapshot_refresh(cx->snap);
            b = cp_snapshot_acquire(cx->snap);
        }
    }
    o = json_pack("{s:{s:b},s:s,s:I}", "database", "reachable", reachable, "configuration_hash",
                  b != NULL ? b->hash : HASH_NONE, "config_version",
                  b != NULL ? (json_int_t)b->version : 0);
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

json_t *
cp_admin__shared_dps(struct cp_ctx *cx)
{
    return shared_dps(cx, NULL, CP_ADMIN_DPS_MAX);
}

/* GET /clustering/data-planes: Kong's generated collection endpoint over the registry,
 * ordered by id. The offset is the last id of the previous page (DP ids are UUIDs), so
 * a DP that joins or leaves between two pages neither repeats nor shifts the others. */
static void
r_data_planes(struct cp_ctx *cx, const struct cp_request *rq, struct cp_response *rs,
              const struct match *m)
{
    const char *offset = json_string_value(json_object_get(rq->query, "offset"));
    size_t size;
    bool more = false;
    json_t *shared;
    json_t *data;
    json_t *body;

    (void)m;
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

        json_object_set_new(body, "offset", json_string(last));
        json_object_set_new(body, "next",
                            json_sprintf("/clustering/data-planes?offset=%s&size=%zu", eoff, size));
        free(eoff);
    } else {
        json_object_set_new(body, "next", json_null());
    }
    cp_admin__reply(rs, 200, body);
}

/* ------------------------------------------------------------------------ */
/* routing */

typedef void route_fn(struct cp_ctx *cx, const struct cp_request *rq, struct cp_response *rs,
                      const struct match *m);

/* One route: a path in Kong's form (literal segments, {name} for any one segment) and the
 * methods it allows (its Allow header; HEAD with GET). In the routes every kind gets, `*`
 * stands for a collection (a kind that is not nested-only, or one nested by its PARENT
 * foreign key under the kind before it) and {*} for that kind's key. The same table
 * dispatches, answers 405 and OPTIONS, and lists GET /endpoints. */
struct route {
    const char *pattern;
    const char *methods;
    route_fn *handler;
};

#define M_GET      "GET, HEAD, OPTIONS"
#define M_GET_POST "GET, HEAD, OPTIONS, POST"
#define M_ENT      "DELETE, GET, HEAD, OPTIONS, PATCH, PUT"

/* GET /clustering/status: Kong's deprecated list of the data planes' sync status. */
static void
r_clustering_status(struct cp_ctx *cx, const struct cp_request *rq, struct cp_response *rs,
                    const struct match *m)
{
    json_t *shared = shared_dps(cx, NULL, SIZE_MAX / 2);

    (void)rq;
    (void)m;
    cp_admin__reply(rs, 200, cp_registry_status(cx->reg, shared));
    json_decref(shared);
    rs->header_name = "Deprecation";
    rs->header_value = "true";
}

static route_fn r_endpoints;

static void
r_schema(struct cp_ctx *cx, const struct cp_request *rq, struct cp_response *rs,
         const struct match *m)
{
    (void)cx;
    (void)rq;
    cp_admin__schema_get(rs, m->s[1]);
}

static void
r_schema_validate(struct cp_ctx *cx, const struct cp_request *rq, struct cp_response *rs,
                  const struct match *m)
{
    (void)cx;
    cp_admin__schema_validate(rq, rs, m->s[1]);
}

/* GET /schemas/plugins/{name}: the plugin's own schema */
static void
r_plugin_schema(struct cp_ctx *cx, const struct cp_request *rq, struct cp_response *rs,
                const struct match *m)
{
    (void)cx;
    (void)rq;
    cp_admin__plugin_schema_get(rs, m->s[2]);
}

static void
r_plugins_enabled(struct cp_ctx *cx, const struct cp_request *rq, struct cp_response *rs,
                  const struct match *m)
{
    (void)cx;
    (void)rq;
    (void)m;
    cp_admin__plugins_enabled(rs);
}

static void
r_tags(struct cp_ctx *cx, const struct cp_request *rq, struct cp_response *rs,
       const struct match *m)
{
    cp_admin__tags(cx, rq, rs, m->n == 2 ? m->s[1] : NULL);
}

static void
r_config(struct cp_ctx *cx, const struct cp_request *rq, struct cp_response *rs,
         const struct match *m)
{
    (void)m;
    cp_admin__config(cx, rq, rs);
}

/* /upstreams/{u}/health: the fleet's view (cp_admin_health.c) */
static void
r_upstream_health(struct cp_ctx *cx, const struct cp_request *rq, struct cp_response *rs,
                  const struct match *m)
{
    cp_admin__upstream_health(cx, rq, rs, m->s[1]);
}

/* /<kind>/{key}/<foreign key> */
static void
r_foreign(struct cp_ctx *cx, const struct cp_request *rq, struct cp_response *rs,
          const struct match *m)
{
    enum st_entity_kind k;

    if (!st_entity_by_name(m->s[0], &k) || st_entity_ref(k, m->s[2]) == NULL) {
        cp_admin__reply_msg(rs, 404, "Not found"); /* not reached: the table names both */
        return;
    }
    cp_admin__foreign(cx, rq, rs, k, m->s[2], m->s[1]);
}

/* /<kind> and /<parent>/{p}/<kind> */
static void
r_collection(struct cp_ctx *cx, const struct cp_request *rq, struct cp_response *rs,
             const struct match *m)
{
    struct cp_admin_parent p = {m->parent, m->n == 3 ? m->s[1] : NULL};

    cp_admin__collection(cx, rq, rs, m->kind, p.key != NULL ? &p : NULL);
}

/* /<kind>/{key} and /<parent>/{p}/<kind>/{key} */
static void
r_entity(struct cp_ctx *cx, const struct cp_request *rq, struct cp_response *rs,
         const struct match *m)
{
    struct cp_admin_parent p = {m->parent, m->n == 4 ? m->s[1] : NULL};

    cp_admin__entity(cx, rq, rs, m->kind, m->s[m->n - 1], p.key != NULL ? &p : NULL);
}

static const struct route routes[] = {
    {"/", M_GET, r_root},
    {"/status", M_GET, r_status},
    {"/clustering/data-planes", M_GET, r_data_planes},
    {"/clustering/status", M_GET, r_clustering_status},
    {"/endpoints", M_GET, r_endpoints},
    {"/schemas/{name}", M_GET, r_schema},
    {"/schemas/{db_entity_name}/validate", "OPTIONS, POST", r_schema_validate},
    {"/schemas/plugins/{name}", M_GET, r_plugin_schema},
    {"/plugins/enabled", M_GET, r_plugins_enabled},
    {"/tags", M_GET, r_tags},
    {"/tags/{tags}", M_GET, r_tags},
    {"/config", M_GET_POST, r_config},
    /* Kong serves the entity of every foreign key this way; Strait this one */
    {"/routes/{routes}/service", "GET, HEAD, OPTIONS, PATCH, PUT", r_foreign},
    {"/upstreams/{upstreams}/health", M_GET, r_upstream_health},
    /* every kind's, from the descriptions */
    {"/*", M_GET_POST, r_collection},
    {"/*/{*}", M_ENT, r_entity},
    {"/*/{*}/*", M_GET_POST, r_collection},
    {"/*/{*}/*/{*}", M_ENT, r_entity},
};

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

/* Whether the kinds a route's `*` segments bound (nk of them) fit it: one names a kind
 * with a top-level collection; a second, a kind nested by its PARENT key under the first. */
static bool
kinds_fit(const enum st_entity_kind *kinds, int nk)
{
    if (nk == 1) {
        return !st_entities[kinds[0]]->nested_only;
    }
    return nk == 0 || st_entity_parent_in(kinds[1], kinds[0]) != NULL;
}

/* Whether the n segments s match route r; fills *m. */
static bool
route_match(const struct route *r, char **s, int n, struct match *m)
{
    const char *p = r->pattern + 1;
    enum st_entity_kind kinds[2] = {ST_ENT__COUNT, ST_ENT__COUNT};
    int nk = 0;
    int i = 0;

    for (; *p != '\0'; i++) {
        size_t len = strcspn(p, "/");

        if (i == n) {
            return false;
        }
        if (len == 1 && *p == '*') {
            if (nk == 2 || !st_entity_by_name(s[i], &kinds[nk])) {
                return false;
            }
            nk++;
        } else if (*p != '{' && (strlen(s[i]) != len || strncmp(p, s[i], len) != 0)) {
            return false;
        }
        p += len + (p[len] == '/');
    }
    if (i != n || !kinds_fit(kinds, nk)) {
        return false;
    }
    *m = (struct match){s, n, nk > 0 ? kinds[nk - 1] : ST_ENT__COUNT,
                        nk == 2 ? st_entity_parent_in(kinds[1], kinds[0]) : NULL};
    return true;
}

/* The route of a path (n segments s), or NULL when none matches. */
static const struct route *
route_find(char **s, int n, struct match *m)
{
    for (size_t i = 0; i < ST_ARRAY_SIZE(routes); i++) {
        if (route_match(&routes[i], s, n, m)) {
            return &routes[i];
        }
    }
    return NULL;
}

/* Writes pattern into buf with its `*` segments naming kinds[0], kinds[1] in turn and
 * each {*} as the key of the kind before it, {<collection>}, as Kong writes paths. */
static void
pattern_expand(const char *pattern, const enum st_entity_kind *kinds, char *buf, size_t size)
{
    size_t o = 0;
    int k = 0;

    buf[0] = '\0';
    for (const char *p = pattern; *p == '/' && o < size;) {
        const char *seg = p + 1;
        size_t len = strcspn(seg, "/");
        int w;

        if (len == 1 && *seg == '*') {
            w = snprintf(buf + o, size - o, "/%s", st_entity_name(kinds[k++]));
        } else if (len == 3 && strncmp(seg, "{*}", 3) == 0 && k > 0) {
            w = snprintf(buf + o, size - o, "/{%s}", st_entity_name(kinds[k - 1]));
        } else {
            w = snprintf(buf + o, size - o, "/%.*s", (int)len, seg);
        }
        o += w > 0 ? (size_t)w : 0;
        p = seg + len;
    }
}

/* Adds route r's paths to out: its pattern, or, for a route every kind gets, one path per
 * kind (or pair of kinds) that fits it. */
static void
route_paths(const struct route *r, json_t *out)
{
    int stars = 0;

    for (const char *p = r->pattern; (p = strstr(p, "/*")) != NULL; p += 2) {
        stars += p[2] == '/' || p[2] == '\0';
    }
    for (int a = 0; a < (stars > 0 ? ST_ENT__COUNT : 1); a++) {
        for (int b = 0; b < (stars > 1 ? ST_ENT__COUNT : 1); b++) {
            enum st_entity_kind kinds[2] = {(enum st_entity_kind)a, (enum st_entity_kind)b};
            char path[256];

            if (kinds_fit(kinds, stars)) {
                pattern_expand(r->pattern, kinds, path, sizeof(path));
                json_array_append_new(out, json_string(path));
            }
        }
    }
}

/* Kong's order of /endpoints: byte order with '/' below every other byte. */
static int
cmp_path(const void *a, const void *b)
{
    const unsigned char *x = (const unsigned char *)json_string_value(*(json_t *const *)a);
    const unsigned char *y = (const unsigned char *)json_string_value(*(json_t *const *)b);

    for (; *x == *y && *x != '\0'; x++, y++) {
    }
    return (*x == '/' ? 1 : *x == '\0' ? 0 : *x + 1) - (*y == '/' ? 1 : *y == '\0' ? 0 : *y + 1);
}

/* GET /endpoints: every path of the route table, sorted as Kong sorts them. */
static void
r_endpoints(struct cp_ctx *cx, const struct cp_request *rq, struct cp_response *rs,
            const struct match *m)
{
    json_t *all = json_array();
    json_t *data = json_array();
    json_t **v;
    size_t n;

    (void)cx;
    (void)rq;
    (void)m;
    for (size_t i = 0; i < ST_ARRAY_SIZE(routes); i++) {
        route_paths(&routes[i], all);
    }
    n = json_array_size(all);
    v = st_xcalloc(n + 1, sizeof(*v));
    for (size_t i = 0; i < n; i++) {
        v[i] = json_array_get(all, i);
    }
    qsort(v, n, sizeof(*v), cmp_path);
    for (size_t i = 0; i < n; i++) {
        json_array_append(data, v[i]);
    }
    free(v);
    json_decref(all);
    cp_admin__reply(rs, 200, json_pack("{s:o}", "data", data));
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

/* ------------------------------------------------------------------------ */
/* wait_for_sync */

/* Whether a request its route allows, and not OPTIONS, may commit something: a method
 * other than GET and HEAD (the routes allow no other reads) on any path but
 * /schemas/{name}/validate. */
static bool
is_write(const struct cp_request *rq, char **s, int n)
{
    return !cp_admin__is(rq, "GET") && !(n > 0 && strcmp(s[0], "schemas") == 0);
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
    struct match m;
    const struct route *r = n >= 0 ? route_find(segs, n, &m) : NULL;

    memset(rs, 0, sizeof(*rs));
    if (r == NULL) {
        cp_admin__reply_msg(rs, 404, "Not found");
    } else if (strcmp(rq->method, "OPTIONS") == 0) {
        cp_admin__reply(rs, 204, NULL);
        rs->header_name = "Allow";
        rs->header_value = r->methods;
    } else if (!method_in(rq->method, r->methods)) {
        cp_admin__reply_msg(rs, 405, "Method not allowed");
    } else if (!is_write(rq, segs, n) || wait_param(rq, rs, &wait_ms) == 0) {
        r->handler(cx, rq, rs, &m);
        if (wait_ms > 0) {
            wait_target(cx, rs, wait_ms);
        }
    }
    free(buf);
}
