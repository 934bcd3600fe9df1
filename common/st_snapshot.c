/* Entities <-> the protobuf Snapshot (proto/strait/v1/snapshot.proto) with the
 * canonical SHA-256 hash.
 *
 * Canonical form: every entity list sorted by id, tags/protocols/snis sorted
 * (sources, destinations and a service's ca_certificates keep the user's order: the
 * first are records, the last an ordered list). Config holds neither version nor updated_at, so the
 * hash changes only when the configuration does. The hash covers the exact Config bytes carried in
 * the Snapshot; the parser hashes those bytes, never a re-encoding.
 *
 * The parser trusts nothing: it checks the hash, then turns every entity back into
 * its JSON shape and runs st_schema_validate_ex on it (as a stored entity: a CA
 * certificate that expired after it was written is still accepted), so the DP refuses
 * what the CP would, then resolves every reference (sni->certificate,
 * service->client_certificate and ->ca_certificates, route->service); one that points
 * nowhere refuses the snapshot. Decoded strings live in JSON objects kept in s->priv. */
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

/* Heap parts of the Config being built, freed in one place. ents[k] are the sorted
 * objects of kind k (n[k] of them). */
struct build {
    json_t **ents[ST_ENT__COUNT];
    size_t n[ST_ENT__COUNT];
    Strait__V1__Service *svc;
    Strait__V1__Service **svc_ptr;
    Strait__V1__Route *rt;
    Strait__V1__Route **rt_ptr;
    Strait__V1__Certificate *crt;
    Strait__V1__Certificate **crt_ptr;
    Strait__V1__Sni *sni;
    Strait__V1__Sni **sni_ptr;
    Strait__V1__CaCertificate *ca;
    Strait__V1__CaCertificate **ca_ptr;
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
    m->has_tls_verify = opt_bool(o, "tls_verify", &m->tls_verify);
    m->has_tls_verify_depth = opt_u32(o, "tls_verify_depth", &m->tls_verify_depth);
    /* an ordered list: the user's order is the verification store's order */
    m->ca_certificate_ids =
        string_list(json_object_get(o, "ca_certificates"), false, &m->n_ca_certificate_ids);
    m->client_certificate_id = opt_str(json_object_get(o, "client_certificate"), "id");
}

static void
build_certificate(Strait__V1__Certificate *m, const json_t *o)
{
    strait__v1__certificate__init(m);
    m->id = (char *)obj_id(o);
    m->has_created_at_ms = opt_i64(o, "created_at", &m->created_at_ms);
    m->cert = opt_str(o, "cert");
    m->key = opt_str(o, "key");
    m->cert_alt = opt_str(o, "cert_alt");
    m->key_alt = opt_str(o, "key_alt");
    m->tags = string_list(json_object_get(o, "tags"), true, &m->n_tags);
}

static void
build_sni(Strait__V1__Sni *m, const json_t *o)
{
    strait__v1__sni__init(m);
    m->id = (char *)obj_id(o);
    m->has_created_at_ms = opt_i64(o, "created_at", &m->created_at_ms);
    m->name = opt_str(o, "name");
    m->certificate_id = opt_str(json_object_get(o, "certificate"), "id");
    m->tags = string_list(json_object_get(o, "tags"), true, &m->n_tags);
}

static void
build_ca_certificate(Strait__V1__CaCertificate *m, const json_t *o)
{
    strait__v1__ca_certificate__init(m);
    m->id = (char *)obj_id(o);
    m->has_created_at_ms = opt_i64(o, "created_at", &m->created_at_ms);
    m->cert = opt_str(o, "cert");
    m->cert_digest = opt_str(o, "cert_digest");
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
    for (size_t i = 0; b->svc != NULL && i < b->n[ST_ENT_SERVICE]; i++) {
        free(b->svc[i].tags);
        free(b->svc[i].ca_certificate_ids);
    }
    for (size_t i = 0; b->rt != NULL && i < b->n[ST_ENT_ROUTE]; i++) {
        free(b->rt[i].protocols);
        free(b->rt[i].sources);
        free(b->rt[i].destinations);
        free(b->rt[i].snis);
        free(b->rt[i].tags);
    }
    for (size_t i = 0; b->crt != NULL && i < b->n[ST_ENT_CERTIFICATE]; i++) {
        free(b->crt[i].tags);
    }
    for (size_t i = 0; b->sni != NULL && i < b->n[ST_ENT_SNI]; i++) {
        free(b->sni[i].tags);
    }
    for (size_t i = 0; b->ca != NULL && i < b->n[ST_ENT_CA_CERTIFICATE]; i++) {
        free(b->ca[i].tags);
    }
    free(b->svc);
    free(b->svc_ptr);
    free(b->rt);
    free(b->rt_ptr);
    free(b->crt);
    free(b->crt_ptr);
    free(b->sni);
    free(b->sni_ptr);
    free(b->ca);
    free(b->ca_ptr);
    for (int k = 0; k < ST_ENT__COUNT; k++) {
        free(b->ents[k]);
    }
}

/* Allocates n messages into msgs and the n + 1 pointers to them into ptrs. */
#define ALLOC_MSGS(n, msgs, ptrs)                                                                  \
    do {                                                                                           \
        (msgs) = st_xcalloc((n) + 1, sizeof(*(msgs)));                                             \
        (ptrs) = st_xcalloc((n) + 1, sizeof(*(ptrs)));                                             \
        for (size_t i_ = 0; i_ < (n); i_++) {                                                      \
            (ptrs)[i_] = &(msgs)[i_];                                                              \
        }                                                                                          \
    } while (0)

/* Encodes the Config of the sorted entities into a malloc'd buffer. */
static uint8_t *
encode_config(struct build *b, size_t *len)
{
    Strait__V1__Config cfg = STRAIT__V1__CONFIG__INIT;
    uint8_t *buf;

    ALLOC_MSGS(b->n[ST_ENT_SERVICE], b->svc, b->svc_ptr);
    for (size_t i = 0; i < b->n[ST_ENT_SERVICE]; i++) {
        build_service(&b->svc[i], b->ents[ST_ENT_SERVICE][i]);
    }
    ALLOC_MSGS(b->n[ST_ENT_ROUTE], b->rt, b->rt_ptr);
    for (size_t i = 0; i < b->n[ST_ENT_ROUTE]; i++) {
        build_route(&b->rt[i], b->ents[ST_ENT_ROUTE][i]);
    }
    ALLOC_MSGS(b->n[ST_ENT_CERTIFICATE], b->crt, b->crt_ptr);
    for (size_t i = 0; i < b->n[ST_ENT_CERTIFICATE]; i++) {
        build_certificate(&b->crt[i], b->ents[ST_ENT_CERTIFICATE][i]);
    }
    ALLOC_MSGS(b->n[ST_ENT_SNI], b->sni, b->sni_ptr);
    for (size_t i = 0; i < b->n[ST_ENT_SNI]; i++) {
        build_sni(&b->sni[i], b->ents[ST_ENT_SNI][i]);
    }
    ALLOC_MSGS(b->n[ST_ENT_CA_CERTIFICATE], b->ca, b->ca_ptr);
    for (size_t i = 0; i < b->n[ST_ENT_CA_CERTIFICATE]; i++) {
        build_ca_certificate(&b->ca[i], b->ents[ST_ENT_CA_CERTIFICATE][i]);
    }
    cfg.n_services = b->n[ST_ENT_SERVICE];
    cfg.services = b->svc_ptr;
    cfg.n_routes = b->n[ST_ENT_ROUTE];
    cfg.routes = b->rt_ptr;
    cfg.n_certificates = b->n[ST_ENT_CERTIFICATE];
    cfg.certificates = b->crt_ptr;
    cfg.n_snis = b->n[ST_ENT_SNI];
    cfg.snis = b->sni_ptr;
    cfg.n_ca_certificates = b->n[ST_ENT_CA_CERTIFICATE];
    cfg.ca_certificates = b->ca_ptr;
    *len = strait__v1__config__get_packed_size(&cfg);
    buf = st_xmalloc(*len + 1);
    strait__v1__config__pack(&cfg, buf);
    return buf;
}

int
st_snapshot_build(uint64_t version, json_t *const lists[ST_ENT__COUNT], uint8_t **out,
                  size_t *outlen, char hash[65], struct st_err *err)
{
    struct build b = {0};
    Strait__V1__Snapshot snap = STRAIT__V1__SNAPSHOT__INIT;
    uint8_t *cbuf = NULL;
    size_t clen = 0;
    int rc = 0;

    *out = NULL;
    for (int k = 0; k < ST_ENT__COUNT && rc == 0; k++) {
        rc = sorted_entities(lists != NULL ? lists[k] : NULL, st_entity_name(k), &b.ents[k],
                             &b.n[k], err);
    }
    if (rc != 0) {
        goto out;
    }
    cbuf = encode_config(&b, &clen);
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

/* Sets obj[key] to the foreign key {"id": id} (when id is not NULL). */
static bool
set_ref(json_t *obj, const char *key, const char *id)
{
    json_t *ref;

    if (id == NULL) {
        return true;
    }
    ref = json_object();
    json_object_set_new(obj, key, ref);
    return set_str(ref, "id", id);
}

static void
set_created(json_t *obj, protobuf_c_boolean has, int64_t ms)
{
    if (has) {
        json_object_set_new(obj, "created_at", json_integer(ms));
    }
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
    if (m->has_tls_verify) {
        json_object_set_new(o, "tls_verify", json_boolean(m->tls_verify));
    }
    if (m->has_tls_verify_depth) {
        json_object_set_new(o, "tls_verify_depth", json_integer(m->tls_verify_depth));
    }
    ok = ok && set_strings(o, "ca_certificates", m->ca_certificate_ids, m->n_ca_certificate_ids);
    ok = ok && set_ref(o, "client_certificate", m->client_certificate_id);
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

    ok = ok && set_ref(o, "service", m->service_id);
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

static json_t *
certificate_json(const Strait__V1__Certificate *m)
{
    json_t *o = json_object();
    bool ok = set_str(o, "id", m->id) && set_str(o, "cert", m->cert) && set_str(o, "key", m->key) &&
              set_str(o, "cert_alt", m->cert_alt) && set_str(o, "key_alt", m->key_alt) &&
              set_strings(o, "tags", m->tags, m->n_tags);

    set_created(o, m->has_created_at_ms, m->created_at_ms);
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *
sni_json(const Strait__V1__Sni *m)
{
    json_t *o = json_object();
    bool ok = set_str(o, "id", m->id) && set_str(o, "name", m->name) &&
              set_ref(o, "certificate", m->certificate_id) &&
              set_strings(o, "tags", m->tags, m->n_tags);

    set_created(o, m->has_created_at_ms, m->created_at_ms);
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *
ca_certificate_json(const Strait__V1__CaCertificate *m)
{
    json_t *o = json_object();
    bool ok = set_str(o, "id", m->id) && set_str(o, "cert", m->cert) &&
              set_str(o, "cert_digest", m->cert_digest) &&
              set_strings(o, "tags", m->tags, m->n_tags);

    set_created(o, m->has_created_at_ms, m->created_at_ms);
    if (!ok) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* The singular of each kind, for messages. */
static const char *const kind_what[ST_ENT__COUNT] = {
    [ST_ENT_SERVICE] = "service",
    [ST_ENT_ROUTE] = "route",
    [ST_ENT_CERTIFICATE] = "certificate",
    [ST_ENT_SNI] = "sni",
    [ST_ENT_CA_CERTIFICATE] = "ca_certificate",
};

/* Validates a decoded entity as a stored one (ST_SCHEMA_F_STORED: what was valid
 * when written stays valid, e.g. a CA certificate that has expired since); takes
 * ownership of obj and appends it to keep. */
static int
check_entity(enum st_entity_kind k, json_t *obj, const char *id, json_t *keep, struct st_err *err)
{
    json_t *fields = NULL;
    char msg[512];
    const char *what = kind_what[k];

    if (obj == NULL) {
        return st_err_set(err, -ST_EPARSE, st_entity_name(k), "%s %.40s: a string is not UTF-8",
                          what, id);
    }
    json_array_append_new(keep, obj);
    if (st_schema_validate_ex(k, obj, ST_SCHEMA_F_STORED, &fields) != 0) {
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
    s->tls_verify = json_is_boolean(json_object_get(o, "tls_verify"))
                        ? json_is_true(json_object_get(o, "tls_verify"))
                        : -1;
    s->tls_verify_depth = json_is_integer(json_object_get(o, "tls_verify_depth"))
                              ? (int)int_of(o, "tls_verify_depth")
                              : -1;
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

/* Every entity struct starts with its id. */
static int
cmp_id(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sorts n structs of size bytes at base by id and refuses a repeated id. */
static int
sort_unique(void *base, size_t n, size_t size, enum st_entity_kind k, struct st_err *err)
{
    const char *prev = NULL;

    qsort(base, n, size, cmp_id);
    for (size_t i = 0; i < n; i++) {
        const char *id = *(const char *const *)((const char *)base + i * size);
        if (prev != NULL && strcmp(prev, id) == 0) {
            return st_err_set(err, -ST_EUNIQUE, st_entity_name(k), "%s %s appears twice",
                              kind_what[k], id);
        }
        prev = id;
    }
    return 0;
}

static const struct st_certificate *
find_certificate(const struct st_snapshot *s, const char *id)
{
    struct st_certificate key = {.id = id};

    return bsearch(&key, s->certificates, s->n_certificates, sizeof(key), cmp_id);
}

static int
parse_certificates(struct st_snapshot *s, const Strait__V1__Config *cfg, struct st_err *err)
{
    int rc;

    s->certificates = st_xcalloc(cfg->n_certificates + 1, sizeof(*s->certificates));
    for (size_t i = 0; i < cfg->n_certificates; i++) {
        struct st_certificate *c = &s->certificates[i];
        json_t *obj = certificate_json(cfg->certificates[i]);
        rc = check_entity(ST_ENT_CERTIFICATE, obj, cfg->certificates[i]->id, s->priv, err);
        if (rc != 0) {
            return rc;
        }
        c->id = json_string_value(json_object_get(obj, "id"));
        c->created_at_ms = int_of(obj, "created_at");
        c->cert = json_string_value(json_object_get(obj, "cert"));
        c->key = json_string_value(json_object_get(obj, "key"));
        c->cert_alt = json_string_value(json_object_get(obj, "cert_alt"));
        c->key_alt = json_string_value(json_object_get(obj, "key_alt"));
        s->n_certificates++;
    }
    return sort_unique(s->certificates, s->n_certificates, sizeof(*s->certificates),
                       ST_ENT_CERTIFICATE, err);
}

static int
cmp_sni_name(const void *a, const void *b)
{
    return strcmp((*(const struct st_sni *const *)a)->name,
                  (*(const struct st_sni *const *)b)->name);
}

/* SNI names are unique (the store's constraint; certificate choice relies on it). */
static int
sni_names_unique(const struct st_snapshot *s, struct st_err *err)
{
    const struct st_sni **v = st_xcalloc(s->n_snis + 1, sizeof(*v));
    int rc = 0;

    for (size_t i = 0; i < s->n_snis; i++) {
        v[i] = &s->snis[i];
    }
    qsort(v, s->n_snis, sizeof(*v), cmp_sni_name);
    for (size_t i = 1; i < s->n_snis && rc == 0; i++) {
        if (strcmp(v[i - 1]->name, v[i]->name) == 0) {
            rc = st_err_set(err, -ST_EUNIQUE, "snis", "sni name %s appears twice", v[i]->name);
        }
    }
    free(v);
    return rc;
}

static int
parse_snis(struct st_snapshot *s, const Strait__V1__Config *cfg, struct st_err *err)
{
    int rc;

    s->snis = st_xcalloc(cfg->n_snis + 1, sizeof(*s->snis));
    for (size_t i = 0; i < cfg->n_snis; i++) {
        struct st_sni *n = &s->snis[i];
        json_t *obj = sni_json(cfg->snis[i]);
        rc = check_entity(ST_ENT_SNI, obj, cfg->snis[i]->id, s->priv, err);
        if (rc != 0) {
            return rc;
        }
        s->n_snis++;
        n->id = json_string_value(json_object_get(obj, "id"));
        n->name = json_string_value(json_object_get(obj, "name"));
        n->certificate_id =
            json_string_value(json_object_get(json_object_get(obj, "certificate"), "id"));
        n->certificate = find_certificate(s, n->certificate_id);
        if (n->certificate == NULL) {
            return st_err_set(err, -ST_EFOREIGN, "snis",
                              "sni %s: its certificate %s is not in the snapshot", n->id,
                              n->certificate_id);
        }
    }
    rc = sort_unique(s->snis, s->n_snis, sizeof(*s->snis), ST_ENT_SNI, err);
    return rc != 0 ? rc : sni_names_unique(s, err);
}

static int
parse_ca_certificates(struct st_snapshot *s, const Strait__V1__Config *cfg, struct st_err *err)
{
    int rc;

    s->ca_certificates = st_xcalloc(cfg->n_ca_certificates + 1, sizeof(*s->ca_certificates));
    for (size_t i = 0; i < cfg->n_ca_certificates; i++) {
        struct st_ca_certificate *c = &s->ca_certificates[i];
        json_t *obj = ca_certificate_json(cfg->ca_certificates[i]);
        rc = check_entity(ST_ENT_CA_CERTIFICATE, obj, cfg->ca_certificates[i]->id, s->priv, err);
        if (rc != 0) {
            return rc;
        }
        c->id = json_string_value(json_object_get(obj, "id"));
        c->cert = json_string_value(json_object_get(obj, "cert"));
        c->cert_digest = json_string_value(json_object_get(obj, "cert_digest"));
        s->n_ca_certificates++;
    }
    return sort_unique(s->ca_certificates, s->n_ca_certificates, sizeof(*s->ca_certificates),
                       ST_ENT_CA_CERTIFICATE, err);
}

/* service->client_certificate and service->ca_certificates (in the user's order). */
static int
resolve_service(struct st_snapshot *s, struct st_service *svc, const json_t *o, struct st_err *err)
{
    const json_t *cas = json_object_get(o, "ca_certificates");
    const char *cc =
        json_string_value(json_object_get(json_object_get(o, "client_certificate"), "id"));
    size_t i;
    json_t *el;

    if (cc != NULL) {
        svc->client_certificate = find_certificate(s, cc);
        if (svc->client_certificate == NULL) {
            return st_err_set(err, -ST_EFOREIGN, "services",
                              "service %s: its client certificate %s is not in the snapshot",
                              svc->id, cc);
        }
    }
    svc->ca_certificates = st_xcalloc(json_array_size(cas) + 1, sizeof(*svc->ca_certificates));
    json_array_foreach(cas, i, el)
    {
        struct st_ca_certificate key = {.id = json_string_value(el)};
        const struct st_ca_certificate *ca =
            bsearch(&key, s->ca_certificates, s->n_ca_certificates, sizeof(key), cmp_id);
        if (ca == NULL) {
            return st_err_set(err, -ST_EFOREIGN, "services",
                              "service %s: its CA certificate %s is not in the snapshot", svc->id,
                              key.id);
        }
        svc->ca_certificates[svc->n_ca_certificates++] = ca;
    }
    return 0;
}

static int
parse_services(struct st_snapshot *s, const Strait__V1__Config *cfg, struct st_err *err)
{
    int rc;

    s->services = st_xcalloc(cfg->n_services + 1, sizeof(*s->services));
    for (size_t i = 0; i < cfg->n_services; i++) {
        json_t *obj = service_json(cfg->services[i]);
        rc = check_entity(ST_ENT_SERVICE, obj, cfg->services[i]->id, s->priv, err);
        if (rc != 0) {
            return rc;
        }
        fill_service(&s->services[i], obj);
        s->n_services++;
        rc = resolve_service(s, &s->services[i], obj, err);
        if (rc != 0) {
            return rc;
        }
    }
    return sort_unique(s->services, s->n_services, sizeof(*s->services), ST_ENT_SERVICE, err);
}

static int
parse_routes(struct st_snapshot *s, const Strait__V1__Config *cfg, struct st_err *err)
{
    int rc;

    s->routes = st_xcalloc(cfg->n_routes + 1, sizeof(*s->routes));
    for (size_t i = 0; i < cfg->n_routes; i++) {
        struct st_route *r = &s->routes[i];
        json_t *obj = route_json(cfg->routes[i]);
        rc = check_entity(ST_ENT_ROUTE, obj, cfg->routes[i]->id, s->priv, err);
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
            r->service = bsearch(&key, s->services, s->n_services, sizeof(key), cmp_id);
            if (r->service == NULL) {
                return st_err_set(err, -ST_EFOREIGN, "routes",
                                  "route %s: its service %s is not in the snapshot", r->id,
                                  r->service_id);
            }
        }
    }
    return sort_unique(s->routes, s->n_routes, sizeof(*s->routes), ST_ENT_ROUTE, err);
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
    /* referenced kinds first, so each reference resolves against a sorted array */
    rc = parse_certificates(s, cfg, err);
    if (rc == 0) {
        rc = parse_snis(s, cfg, err);
    }
    if (rc == 0) {
        rc = parse_ca_certificates(s, cfg, err);
    }
    if (rc == 0) {
        rc = parse_services(s, cfg, err);
    }
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
    for (size_t i = 0; i < s->n_services; i++) {
        free((void *)s->services[i].ca_certificates);
    }
    free(s->routes);
    free(s->services);
    free(s->certificates);
    free(s->snis);
    free(s->ca_certificates);
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
