/* Entities <-> the protobuf Snapshot (proto/strait/v1/snapshot.proto) with the
 * canonical SHA-256 hash.
 *
 * Canonical form: services and routes sorted by id, tags/protocols/snis sorted
 * (sources and destinations keep the user's order: they are records, and their order
 * is what the user wrote). Config holds neither version nor updated_at, so the hash
 * changes only when the configuration does. The hash covers the exact Config bytes
 * carried in the Snapshot; the parser hashes those bytes, never a re-encoding.
 *
 * The parser trusts nothing: it checks the hash, then turns every entity back into
 * its JSON shape and runs st_schema_validate on it, so the DP refuses what the CP
 * would. Decoded strings live in JSON objects kept in s->priv. */
#include "st_snapshot.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "st_cidr.h"
#include "st_err.h"
#include "st_schema.h"
#include "st_ssl.h"
#include "st_util.h"
#include "strait/v1/snapshot.pb-c.h"

/* ------------------------------------------------------------------------ */
/* build                                                                      */

/* Heap parts of the Config being built, freed in one place. */
struct build {
    Strait__V1__Service *svc;
    Strait__V1__Service **svc_ptr;
    size_t n_svc;
    Strait__V1__Route *rt;
    Strait__V1__Route **rt_ptr;
    size_t n_rt;
};

static int
cmp_cstr(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static const char *
obj_id(const json_t *o)
{
    return json_string_value(json_object_get(o, "id"));
}

static int
cmp_obj_id(const void *a, const void *b)
{
    return strcmp(obj_id(*(json_t *const *)a), obj_id(*(json_t *const *)b));
}

/* The objects of a JSON array sorted by id. Returns 0 or -ST_ESCHEMA (no id, or a
 * repeated id) with err filled; *out is malloc'd (caller frees). */
static int
sorted_entities(json_t *arr, const char *what, json_t ***out, size_t *n, struct st_err *err)
{
    size_t cnt = json_is_array(arr) ? json_array_size(arr) : 0;
    json_t **v = st_xcalloc(cnt + 1, sizeof(*v));

    if (arr != NULL && !json_is_array(arr) && !json_is_null(arr)) {
        free(v);
        return st_err_set(err, -ST_ESCHEMA, what, "%s: expected an array", what);
    }
    for (size_t i = 0; i < cnt; i++) {
        v[i] = json_array_get(arr, i);
        if (!json_is_object(v[i]) || obj_id(v[i]) == NULL) {
            free(v);
            return st_err_set(err, -ST_ESCHEMA, what, "%s[%zu]: an entity with an id expected",
                              what, i);
        }
    }
    qsort(v, cnt, sizeof(*v), cmp_obj_id);
    for (size_t i = 1; i < cnt; i++) {
        if (strcmp(obj_id(v[i - 1]), obj_id(v[i])) == 0) {
            int rc =
                st_err_set(err, -ST_EUNIQUE, what, "%s: id %s appears twice", what, obj_id(v[i]));
            free(v);
            return rc;
        }
    }
    *out = v;
    *n = cnt;
    return 0;
}

/* The strings of a JSON array (other values skipped), sorted when `sort`. */
static char **
string_list(const json_t *arr, bool sort, size_t *n)
{
    size_t cnt = json_is_array(arr) ? json_array_size(arr) : 0;
    char **v = st_xcalloc(cnt + 1, sizeof(*v));
    size_t k = 0;

    for (size_t i = 0; i < cnt; i++) {
        const char *s = json_string_value(json_array_get(arr, i));
        if (s != NULL) {
            v[k++] = (char *)s;
        }
    }
    if (sort) {
        qsort(v, k, sizeof(*v), cmp_cstr);
    }
    *n = k;
    return v;
}

static char *
opt_str(const json_t *o, const char *key)
{
    return (char *)json_string_value(json_object_get(o, key));
}

static protobuf_c_boolean
opt_u32(const json_t *o, const char *key, uint32_t *out)
{
    const json_t *v = json_object_get(o, key);

    if (!json_is_integer(v)) {
        return 0;
    }
    *out = (uint32_t)json_integer_value(v);
    return 1;
}

static protobuf_c_boolean
opt_i64(const json_t *o, const char *key, int64_t *out)
{
    const json_t *v = json_object_get(o, key);

    if (!json_is_integer(v)) {
        return 0;
    }
    *out = (int64_t)json_integer_value(v);
    return 1;
}

static protobuf_c_boolean
opt_bool(const json_t *o, const char *key, protobuf_c_boolean *out)
{
    const json_t *v = json_object_get(o, key);

    if (!json_is_boolean(v)) {
        return 0;
    }
    *out = json_is_true(v);
    return 1;
}

static void
build_service(Strait__V1__Service *m, const json_t *o)
{
    strait__v1__service__init(m);
    m->id = (char *)obj_id(o);
    m->name = opt_str(o, "name");
    m->has_created_at_ms = opt_i64(o, "created_at", &m->created_at_ms);
    m->protocol = opt_str(o, "protocol");
    m->host = opt_str(o, "host");
    m->has_port = opt_u32(o, "port", &m->port);
    m->has_connect_timeout = opt_u32(o, "connect_timeout", &m->connect_timeout);
    m->has_read_timeout = opt_u32(o, "read_timeout", &m->read_timeout);
    m->has_write_timeout = opt_u32(o, "write_timeout", &m->write_timeout);
    m->has_retries = opt_u32(o, "retries", &m->retries);
    m->has_enabled = opt_bool(o, "enabled", &m->enabled);
    m->tags = string_list(json_object_get(o, "tags"), true, &m->n_tags);
}

/* sources/destinations, in the given order. The Endpoint structs follow the pointer
 * array in the same allocation. */
static Strait__V1__Endpoint **
build_endpoints(const json_t *arr, size_t *n)
{
    size_t cnt = json_is_array(arr) ? json_array_size(arr) : 0;
    Strait__V1__Endpoint **ptr;
    Strait__V1__Endpoint *ep;

    ptr = st_xcalloc(1, (cnt + 1) * (sizeof(*ptr) + sizeof(*ep)));
    ep = (Strait__V1__Endpoint *)(ptr + cnt + 1);
    for (size_t i = 0; i < cnt; i++) {
        const json_t *rec = json_array_get(arr, i);
        strait__v1__endpoint__init(&ep[i]);
        ep[i].ip = opt_str(rec, "ip");
        ep[i].has_port = opt_u32(rec, "port", &ep[i].port);
        ptr[i] = &ep[i];
    }
    *n = cnt;
    return ptr;
}

static void
build_route(Strait__V1__Route *m, const json_t *o)
{
    strait__v1__route__init(m);
    m->id = (char *)obj_id(o);
    m->name = opt_str(o, "name");
    m->has_created_at_ms = opt_i64(o, "created_at", &m->created_at_ms);
    m->protocols = string_list(json_object_get(o, "protocols"), true, &m->n_protocols);
    m->sources = build_endpoints(json_object_get(o, "sources"), &m->n_sources);
    m->destinations = build_endpoints(json_object_get(o, "destinations"), &m->n_destinations);
    m->snis = string_list(json_object_get(o, "snis"), true, &m->n_snis);
    m->has_preserve_host = opt_bool(o, "preserve_host", &m->preserve_host);
    m->service_id = opt_str(json_object_get(o, "service"), "id");
    m->tags = string_list(json_object_get(o, "tags"), true, &m->n_tags);
}

static void
build_fini(struct build *b)
{
    for (size_t i = 0; i < b->n_svc; i++) {
        free(b->svc[i].tags);
    }
    for (size_t i = 0; i < b->n_rt; i++) {
        free(b->rt[i].protocols);
        free(b->rt[i].sources);
        free(b->rt[i].destinations);
        free(b->rt[i].snis);
        free(b->rt[i].tags);
    }
    free(b->svc);
    free(b->svc_ptr);
    free(b->rt);
    free(b->rt_ptr);
}

/* Encodes the Config of the sorted entities into a malloc'd buffer. */
static uint8_t *
encode_config(struct build *b, json_t **svcs, json_t **rts, size_t *len)
{
    Strait__V1__Config cfg = STRAIT__V1__CONFIG__INIT;
    uint8_t *buf;

    b->svc = st_xcalloc(b->n_svc + 1, sizeof(*b->svc));
    b->svc_ptr = st_xcalloc(b->n_svc + 1, sizeof(*b->svc_ptr));
    for (size_t i = 0; i < b->n_svc; i++) {
        build_service(&b->svc[i], svcs[i]);
        b->svc_ptr[i] = &b->svc[i];
    }
    b->rt = st_xcalloc(b->n_rt + 1, sizeof(*b->rt));
    b->rt_ptr = st_xcalloc(b->n_rt + 1, sizeof(*b->rt_ptr));
    for (size_t i = 0; i < b->n_rt; i++) {
        build_route(&b->rt[i], rts[i]);
        b->rt_ptr[i] = &b->rt[i];
    }
    cfg.n_services = b->n_svc;
    cfg.services = b->svc_ptr;
    cfg.n_routes = b->n_rt;
    cfg.routes = b->rt_ptr;
    *len = strait__v1__config__get_packed_size(&cfg);
    buf = st_xmalloc(*len + 1);
    strait__v1__config__pack(&cfg, buf);
    return buf;
}

int
st_snapshot_build(uint64_t version, json_t *services, json_t *routes, uint8_t **out, size_t *outlen,
                  char hash[65], struct st_err *err)
{
    struct build b = {0};
    json_t **svcs = NULL;
    json_t **rts = NULL;
    Strait__V1__Snapshot snap = STRAIT__V1__SNAPSHOT__INIT;
    uint8_t *cbuf = NULL;
    size_t clen = 0;
    int rc;

    rc = sorted_entities(services, "services", &svcs, &b.n_svc, err);
    if (rc != 0) {
        goto out;
    }
    rc = sorted_entities(routes, "routes", &rts, &b.n_rt, err);
    if (rc != 0) {
        goto out;
    }
    cbuf = encode_config(&b, svcs, rts, &clen);
    st_ssl_sha256_hex(cbuf, clen, hash);

    snap.version = version;
    snap.hash = hash;
    snap.config.data = cbuf;
    snap.config.len = clen;
    snap.has_created_at_ms = 1;
    snap.created_at_ms = st_time_ms();
    *outlen = strait__v1__snapshot__get_packed_size(&snap);
    *out = st_xmalloc(*outlen + 1);
    strait__v1__snapshot__pack(&snap, *out);

out:
    free(cbuf);
    build_fini(&b);
    free(svcs);
    free(rts);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* parse: protobuf -> JSON (validated) -> plain structs                       */

/* Sets obj[key] to the string s (when not NULL). Returns false when s is not UTF-8,
 * which JSON, and so the schema, cannot carry. */
static bool
set_str(json_t *obj, const char *key, const char *s)
{
    json_t *v;

    if (s == NULL) {
        return true;
    }
    v = json_string(s);
    if (v == NULL) {
        return false;
    }
    json_object_set_new(obj, key, v);
    return true;
}

static bool
set_strings(json_t *obj, const char *key, char **v, size_t n)
{
    json_t *arr;

    if (n == 0) {
        return true;
    }
    arr = json_array();
    json_object_set_new(obj, key, arr);
    for (size_t i = 0; i < n; i++) {
        json_t *s = json_string(v[i]);
        if (s == NULL) {
            return false;
        }
        json_array_append_new(arr, s);
    }
    return true;
}

static bool
set_endpoints(json_t *obj, const char *key, Strait__V1__Endpoint **v, size_t n)
{
    json_t *arr;

    if (n == 0) {
        return true;
    }
    arr = json_array();
    json_object_set_new(obj, key, arr);
    for (size_t i = 0; i < n; i++) {
        json_t *rec = json_object();
        json_array_append_new(arr, rec);
        if (!set_str(rec, "ip", v[i]->ip)) {
            return false;
        }
        if (v[i]->has_port) {
            json_object_set_new(rec, "port", json_integer(v[i]->port));
        }
    }
    return true;
}

/* Returns a new object, or NULL when a string is not UTF-8. */
static json_t *
service_json(const Strait__V1__Service *m)
{
    json_t *o = json_object();
    bool ok = set_str(o, "id", m->id) && set_str(o, "name", m->name) &&
              set_str(o, "protocol", m->protocol) && set_str(o, "host", m->host) &&
              set_strings(o, "tags", m->tags, m->n_tags);

    if (m->has_created_at_ms) {
        json_object_set_new(o, "created_at", json_integer(m->created_at_ms));
    }
    if (m->has_port) {
        json_object_set_new(o, "port", json_integer(m->port));
    }
    if (m->has_connect_timeout) {
        json_object_set_new(o, "connect_timeout", json_integer(m->connect_timeout));
    }
    if (m->has_read_timeout) {
        json_object_set_new(o, "read_timeout", json_integer(m->read_timeout));
    }
    if (m->has_write_timeout) {
        json_object_set_new(o, "write_timeout", json_integer(m->write_timeout));
    }
    if (m->has_retries) {
        json_object_set_new(o, "retries", json_integer(m->retries));
    }
    if (m->has_enabled) {
        json_object_set_new(o, "enabled", json_boolean(m->enabled));
    }
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *
route_json(const Strait__V1__Route *m)
{
    json_t *o = json_object();
    bool ok = set_str(o, "id", m->id) && set_str(o, "name", m->name) &&
              set_strings(o, "protocols", m->protocols, m->n_protocols) &&
              set_endpoints(o, "sources", m->sources, m->n_sources) &&
              set_endpoints(o, "destinations", m->destinations, m->n_destinations) &&
              set_strings(o, "snis", m->snis, m->n_snis) &&
              set_strings(o, "tags", m->tags, m->n_tags);

    if (ok && m->service_id != NULL) {
        json_t *ref = json_object();
        json_object_set_new(o, "service", ref);
        ok = set_str(ref, "id", m->service_id);
    }
    if (m->has_created_at_ms) {
        json_object_set_new(o, "created_at", json_integer(m->created_at_ms));
    }
    if (m->has_preserve_host) {
        json_object_set_new(o, "preserve_host", json_boolean(m->preserve_host));
    }
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* Validates a decoded entity; takes ownership of obj and appends it to keep. */
static int
check_entity(enum st_entity_kind k, json_t *obj, const char *id, json_t *keep, struct st_err *err)
{
    json_t *fields = NULL;
    char msg[512];
    const char *what = k == ST_ENT_SERVICE ? "service" : "route";

    if (obj == NULL) {
        return st_err_set(err, -ST_EPARSE, st_entity_name(k), "%s %.40s: a string is not UTF-8",
                          what, id);
    }
    json_array_append_new(keep, obj);
    if (st_schema_validate(k, obj, &fields) != 0) {
        st_schema_message(fields, msg, sizeof(msg));
        json_decref(fields);
        return st_err_set(err, -ST_ESCHEMA, st_entity_name(k), "%s %.40s: %s", what, id, msg);
    }
    return 0;
}

static int64_t
int_of(const json_t *o, const char *key)
{
    return (int64_t)json_integer_value(json_object_get(o, key));
}

static void
fill_service(struct st_service *s, const json_t *o)
{
    s->id = json_string_value(json_object_get(o, "id"));
    s->name = json_string_value(json_object_get(o, "name"));
    s->created_at_ms = int_of(o, "created_at");
    s->protocol = st_proto_parse(json_string_value(json_object_get(o, "protocol")));
    s->host = json_string_value(json_object_get(o, "host"));
    s->port = (uint16_t)int_of(o, "port");
    s->connect_timeout = (uint32_t)int_of(o, "connect_timeout");
    s->read_timeout = (uint32_t)int_of(o, "read_timeout");
    s->write_timeout = (uint32_t)int_of(o, "write_timeout");
    s->retries = (uint32_t)int_of(o, "retries");
    s->enabled = json_is_true(json_object_get(o, "enabled"));
}

/* Returns 0, or -ST_EPARSE for an ip the schema accepted but st_cidr refuses. */
static int
fill_endpoints(const json_t *arr, struct st_endpoint **out, size_t *n)
{
    size_t cnt = json_is_array(arr) ? json_array_size(arr) : 0;
    struct st_endpoint *v = st_xcalloc(cnt + 1, sizeof(*v));

    *out = v;
    *n = cnt;
    for (size_t i = 0; i < cnt; i++) {
        const json_t *rec = json_array_get(arr, i);
        const char *ip = json_string_value(json_object_get(rec, "ip"));
        const json_t *port = json_object_get(rec, "port");
        if (ip != NULL) {
            if (st_cidr_parse(ip, &v[i].ip) != 0) {
                return -ST_EPARSE;
            }
            v[i].has_ip = true;
        }
        if (json_is_integer(port)) {
            v[i].has_port = true;
            v[i].port = (uint16_t)json_integer_value(port);
        }
    }
    return 0;
}

static int
fill_route(struct st_route *r, const json_t *o, struct st_err *err)
{
    const json_t *protocols = json_object_get(o, "protocols");
    const json_t *snis = json_object_get(o, "snis");
    size_t i;
    json_t *el;

    r->id = json_string_value(json_object_get(o, "id"));
    r->name = json_string_value(json_object_get(o, "name"));
    r->created_at_ms = int_of(o, "created_at");
    json_array_foreach(protocols, i, el)
    {
        r->protocols |= st_proto_parse(json_string_value(el));
    }
    r->n_snis = json_is_array(snis) ? json_array_size(snis) : 0;
    r->snis = st_xcalloc(r->n_snis + 1, sizeof(*r->snis));
    for (i = 0; i < r->n_snis; i++) {
        r->snis[i] = json_string_value(json_array_get(snis, i));
    }
    r->preserve_host = json_is_true(json_object_get(o, "preserve_host"));
    r->service_id = json_string_value(json_object_get(json_object_get(o, "service"), "id"));
    if (fill_endpoints(json_object_get(o, "sources"), &r->sources, &r->n_sources) != 0 ||
        fill_endpoints(json_object_get(o, "destinations"), &r->destinations, &r->n_destinations) !=
            0) {
        return st_err_set(err, -ST_EPARSE, "routes", "route %s: bad ip", r->id);
    }
    return 0;
}

static int
cmp_service(const void *a, const void *b)
{
    return strcmp(((const struct st_service *)a)->id, ((const struct st_service *)b)->id);
}

static int
parse_services(struct st_snapshot *s, const Strait__V1__Config *cfg, struct st_err *err)
{
    json_t *keep = s->priv;
    int rc;

    s->services = st_xcalloc(cfg->n_services + 1, sizeof(*s->services));
    for (size_t i = 0; i < cfg->n_services; i++) {
        json_t *obj = service_json(cfg->services[i]);
        rc = check_entity(ST_ENT_SERVICE, obj, cfg->services[i]->id, keep, err);
        if (rc != 0) {
            return rc;
        }
        fill_service(&s->services[i], obj);
        s->n_services++;
    }
    qsort(s->services, s->n_services, sizeof(*s->services), cmp_service);
    for (size_t i = 1; i < s->n_services; i++) {
        if (strcmp(s->services[i - 1].id, s->services[i].id) == 0) {
            return st_err_set(err, -ST_EUNIQUE, "services", "service %s appears twice",
                              s->services[i].id);
        }
    }
    return 0;
}

static int
cmp_route(const void *a, const void *b)
{
    return strcmp(((const struct st_route *)a)->id, ((const struct st_route *)b)->id);
}

static int
parse_routes(struct st_snapshot *s, const Strait__V1__Config *cfg, struct st_err *err)
{
    json_t *keep = s->priv;
    int rc;

    s->routes = st_xcalloc(cfg->n_routes + 1, sizeof(*s->routes));
    for (size_t i = 0; i < cfg->n_routes; i++) {
        struct st_route *r = &s->routes[i];
        json_t *obj = route_json(cfg->routes[i]);
        rc = check_entity(ST_ENT_ROUTE, obj, cfg->routes[i]->id, keep, err);
        if (rc != 0) {
            return rc;
        }
        s->n_routes++;
        rc = fill_route(r, obj, err);
        if (rc != 0) {
            return rc;
        }
        if (r->service_id != NULL) {
            struct st_service key = {.id = r->service_id};
            r->service =
                bsearch(&key, s->services, s->n_services, sizeof(*s->services), cmp_service);
            if (r->service == NULL) {
                return st_err_set(err, -ST_EFOREIGN, "routes",
                                  "route %s: its service %s is not in the snapshot", r->id,
                                  r->service_id);
            }
        }
    }
    qsort(s->routes, s->n_routes, sizeof(*s->routes), cmp_route);
    for (size_t i = 1; i < s->n_routes; i++) {
        if (strcmp(s->routes[i - 1].id, s->routes[i].id) == 0) {
            return st_err_set(err, -ST_EUNIQUE, "routes", "route %s appears twice",
                              s->routes[i].id);
        }
    }
    return 0;
}

int
st_snapshot_parse(const uint8_t *p, size_t len, struct st_snapshot **out, struct st_err *err)
{
    Strait__V1__Snapshot *snap;
    Strait__V1__Config *cfg = NULL;
    struct st_snapshot *s = NULL;
    char got[65];
    int rc;

    *out = NULL;
    snap = strait__v1__snapshot__unpack(NULL, len, p);
    if (snap == NULL) {
        return st_err_set(err, -ST_EPARSE, NULL,
                          "snapshot: %zu bytes that are not a valid Snapshot message", len);
    }
    st_ssl_sha256_hex(snap->config.data, snap->config.len, got);
    if (strcmp(snap->hash, got) != 0) {
        rc = st_err_set(err, -ST_EHASH, NULL,
                        "snapshot hash mismatch: says %.64s, bytes hash to %s", snap->hash, got);
        goto out;
    }
    cfg = strait__v1__config__unpack(NULL, snap->config.len, snap->config.data);
    if (cfg == NULL) {
        rc = st_err_set(err, -ST_EPARSE, NULL,
                        "snapshot: its config (%zu bytes) is not a valid Config message",
                        snap->config.len);
        goto out;
    }
    s = st_xcalloc(1, sizeof(*s));
    s->version = snap->version;
    memcpy(s->hash, got, sizeof(s->hash));
    s->priv = json_array();
    rc = parse_services(s, cfg, err);
    if (rc == 0) {
        rc = parse_routes(s, cfg, err);
    }

out:
    if (cfg != NULL) {
        strait__v1__config__free_unpacked(cfg, NULL);
    }
    strait__v1__snapshot__free_unpacked(snap, NULL);
    if (rc != 0) {
        st_snapshot_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void
st_snapshot_free(struct st_snapshot *s)
{
    if (s == NULL) {
        return;
    }
    for (size_t i = 0; i < s->n_routes; i++) {
        free(s->routes[i].sources);
        free(s->routes[i].destinations);
        free((void *)s->routes[i].snis);
    }
    free(s->routes);
    free(s->services);
    json_decref(s->priv);
    free(s);
}

int
st_snapshot_peek(const uint8_t *p, size_t len, uint64_t *version, char hash[65])
{
    Strait__V1__Snapshot *snap = strait__v1__snapshot__unpack(NULL, len, p);

    if (snap == NULL) {
        return -ST_EPARSE;
    }
    *version = snap->version;
    st_snprintf(hash, 65, "%.64s", snap->hash);
    strait__v1__snapshot__free_unpacked(snap, NULL);
    return 0;
}
