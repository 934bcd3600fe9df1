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
 * nowhere refuses the snapshot.
 *
 * Scale (100k routes): decoded strings and the small per-entity arrays are copied into
 * an arena (s->priv) and each entity's JSON object is dropped once checked, so a parsed
 * snapshot is a handful of blocks, freed in a few ms wherever the last reference goes
 * (often a worker thread, after a swap). The digest of every entity message that passed
 * the check is remembered from the last successful parse with the same memo (struct
 * st_snapshot_memo, the sync client's), and an unchanged entity is
 * filled straight from its message, unchecked: the check depends on nothing but the
 * message's bytes, and an entity is remembered only when that fill equals the one from
 * its checked JSON (see "entities that passed before"). */
#include "st_snapshot.h"

#include <pthread.h>
#include <stdalign.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "st_cidr.h"
#include "st_err.h"
#include "st_schema.h"
#include "st_ssl.h"
#include "st_util.h"
#include "strait/v1/snapshot.pb-c.h"

/* ------------------------------------------------------------------------ */
/* arena: bump allocation in large chunks, freed at once                      */

#define ARENA_CHUNK (256 * 1024)

struct arena_chunk {
    struct arena_chunk *next;
    size_t size;
    alignas(max_align_t) unsigned char data[];
};

struct arena {
    struct arena_chunk *head;
    unsigned char *p;
    size_t left;
};

/* n zeroed bytes aligned for any type; lives until arena_fini(). */
static void *
arena_alloc(struct arena *a, size_t n)
{
    const size_t align = alignof(max_align_t);
    void *out;

    n = (n + align - 1) & ~(align - 1);
    if (n > a->left) {
        size_t size = n > ARENA_CHUNK / 4 ? n : ARENA_CHUNK;
        struct arena_chunk *c = st_xmalloc(sizeof(*c) + size);

        c->next = a->head;
        c->size = size;
        a->head = c;
        if (size != ARENA_CHUNK) {
            /* a big block of its own: the current chunk keeps its room */
            memset(c->data, 0, n);
            return c->data;
        }
        a->p = c->data;
        a->left = size;
    }
    out = a->p;
    a->p += n;
    a->left -= n;
    memset(out, 0, n);
    return out;
}

/* A copy of s in the arena (NULL stays NULL). */
static const char *
arena_str(struct arena *a, const char *s)
{
    size_t n;
    char *out;

    if (s == NULL) {
        return NULL;
    }
    n = strlen(s) + 1;
    out = arena_alloc(a, n);
    memcpy(out, s, n);
    return out;
}

/* Forgets everything allocated, keeping one chunk for what comes next. */
static void
arena_reset(struct arena *a)
{
    struct arena_chunk *c = a->head, *keep = NULL;

    while (c != NULL) {
        struct arena_chunk *next = c->next;

        if (keep == NULL && c->size == ARENA_CHUNK) {
            keep = c;
        } else {
            free(c);
        }
        c = next;
    }
    a->head = keep;
    a->p = keep != NULL ? keep->data : NULL;
    a->left = keep != NULL ? keep->size : 0;
    if (keep != NULL) {
        keep->next = NULL;
    }
}

static void
arena_fini(struct arena *a)
{
    struct arena_chunk *c = a->head;

    while (c != NULL) {
        struct arena_chunk *next = c->next;

        free(c);
        c = next;
    }
    memset(a, 0, sizeof(*a));
}

/* ------------------------------------------------------------------------ */
/* build                                                                      */

bool st_snapshot_legacy;

struct build;
typedef struct Strait__V1__Config Strait__V1__Config;
static void config_generic(struct build *b, Strait__V1__Config *cfg);
static size_t entity_size_generic(enum st_entity_kind k, const json_t *obj);

/* One entity to encode, with its id looked up once (the sort compares ids). */
struct ent {
    const char *id;
    const json_t *o;
};

/* What the Config being built holds: ents[k] are the sorted entities of kind k (n[k]
 * of them); the messages, their pointer arrays and every small list live in `a`. */
struct build {
    struct ent *ents[ST_ENT__COUNT];
    size_t n[ST_ENT__COUNT];
    struct arena a;
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
cmp_ent(const void *a, const void *b)
{
    return strcmp(((const struct ent *)a)->id, ((const struct ent *)b)->id);
}

/* The objects of a JSON array sorted by id. Returns 0 or -ST_ESCHEMA (no id, or a
 * repeated id) with err filled; *out is malloc'd (caller frees). */
static int
sorted_entities(json_t *arr, const char *what, struct ent **out, size_t *n, struct st_err *err)
{
    size_t cnt = json_is_array(arr) ? json_array_size(arr) : 0;
    struct ent *v;

    if (arr != NULL && !json_is_array(arr) && !json_is_null(arr)) {
        return st_err_set(err, -ST_ESCHEMA, what, "%s: expected an array", what);
    }
    v = st_xcalloc(cnt + 1, sizeof(*v));
    for (size_t i = 0; i < cnt; i++) {
        v[i].o = json_array_get(arr, i);
        v[i].id = json_is_object(v[i].o) ? obj_id(v[i].o) : NULL;
        if (v[i].id == NULL) {
            free(v);
            return st_err_set(err, -ST_ESCHEMA, what, "%s[%zu]: an entity with an id expected",
                              what, i);
        }
    }
    qsort(v, cnt, sizeof(*v), cmp_ent);
    for (size_t i = 1; i < cnt; i++) {
        if (strcmp(v[i - 1].id, v[i].id) == 0) {
            int rc = st_err_set(err, -ST_EUNIQUE, what, "%s: id %s appears twice", what, v[i].id);
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
string_list(struct arena *a, const json_t *arr, bool sort, size_t *n)
{
    size_t cnt = json_is_array(arr) ? json_array_size(arr) : 0;
    char **v;
    size_t k = 0;

    *n = 0;
    if (cnt == 0) {
        return NULL;
    }
    v = arena_alloc(a, cnt * sizeof(*v));
    for (size_t i = 0; i < cnt; i++) {
        const char *s = json_string_value(json_array_get(arr, i));
        if (s != NULL) {
            v[k++] = (char *)s;
        }
    }
    if (sort && k > 1) {
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
build_service(struct arena *a, Strait__V1__Service *m, const struct ent *e)
{
    const json_t *o = e->o;

    strait__v1__service__init(m);
    m->id = (char *)e->id;
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
    m->tags = string_list(a, json_object_get(o, "tags"), true, &m->n_tags);
    m->has_tls_verify = opt_bool(o, "tls_verify", &m->tls_verify);
    m->has_tls_verify_depth = opt_u32(o, "tls_verify_depth", &m->tls_verify_depth);
    /* an ordered list: the user's order is the verification store's order */
    m->ca_certificate_ids =
        string_list(a, json_object_get(o, "ca_certificates"), false, &m->n_ca_certificate_ids);
    m->client_certificate_id = opt_str(json_object_get(o, "client_certificate"), "id");
}

static void
build_certificate(struct arena *a, Strait__V1__Certificate *m, const struct ent *e)
{
    const json_t *o = e->o;

    strait__v1__certificate__init(m);
    m->id = (char *)e->id;
    m->has_created_at_ms = opt_i64(o, "created_at", &m->created_at_ms);
    m->cert = opt_str(o, "cert");
    m->key = opt_str(o, "key");
    m->cert_alt = opt_str(o, "cert_alt");
    m->key_alt = opt_str(o, "key_alt");
    m->tags = string_list(a, json_object_get(o, "tags"), true, &m->n_tags);
}

static void
build_sni(struct arena *a, Strait__V1__Sni *m, const struct ent *e)
{
    const json_t *o = e->o;

    strait__v1__sni__init(m);
    m->id = (char *)e->id;
    m->has_created_at_ms = opt_i64(o, "created_at", &m->created_at_ms);
    m->name = opt_str(o, "name");
    m->certificate_id = opt_str(json_object_get(o, "certificate"), "id");
    m->tags = string_list(a, json_object_get(o, "tags"), true, &m->n_tags);
}

static void
build_ca_certificate(struct arena *a, Strait__V1__CaCertificate *m, const struct ent *e)
{
    const json_t *o = e->o;

    strait__v1__ca_certificate__init(m);
    m->id = (char *)e->id;
    m->has_created_at_ms = opt_i64(o, "created_at", &m->created_at_ms);
    m->cert = opt_str(o, "cert");
    m->cert_digest = opt_str(o, "cert_digest");
    m->tags = string_list(a, json_object_get(o, "tags"), true, &m->n_tags);
}

/* sources/destinations, in the given order. */
static Strait__V1__Endpoint **
build_endpoints(struct arena *a, const json_t *arr, size_t *n)
{
    size_t cnt = json_is_array(arr) ? json_array_size(arr) : 0;
    Strait__V1__Endpoint **ptr;
    Strait__V1__Endpoint *ep;

    *n = cnt;
    if (cnt == 0) {
        return NULL;
    }
    ptr = arena_alloc(a, cnt * sizeof(*ptr));
    ep = arena_alloc(a, cnt * sizeof(*ep));
    for (size_t i = 0; i < cnt; i++) {
        const json_t *rec = json_array_get(arr, i);
        strait__v1__endpoint__init(&ep[i]);
        ep[i].ip = opt_str(rec, "ip");
        ep[i].has_port = opt_u32(rec, "port", &ep[i].port);
        ptr[i] = &ep[i];
    }
    return ptr;
}

static void
build_route(struct arena *a, Strait__V1__Route *m, const struct ent *e)
{
    const json_t *o = e->o;

    strait__v1__route__init(m);
    m->id = (char *)e->id;
    m->name = opt_str(o, "name");
    m->has_created_at_ms = opt_i64(o, "created_at", &m->created_at_ms);
    m->protocols = string_list(a, json_object_get(o, "protocols"), true, &m->n_protocols);
    m->sources = build_endpoints(a, json_object_get(o, "sources"), &m->n_sources);
    m->destinations = build_endpoints(a, json_object_get(o, "destinations"), &m->n_destinations);
    m->snis = string_list(a, json_object_get(o, "snis"), true, &m->n_snis);
    m->has_preserve_host = opt_bool(o, "preserve_host", &m->preserve_host);
    m->service_id = opt_str(json_object_get(o, "service"), "id");
    m->tags = string_list(a, json_object_get(o, "tags"), true, &m->n_tags);
}

static void
build_fini(struct build *b)
{
    for (int k = 0; k < ST_ENT__COUNT; k++) {
        free(b->ents[k]);
    }
    arena_fini(&b->a);
}

/* n messages built by fn from the sorted entities of kind k, as the array of pointers
 * the Config holds (in the arena). */
#define BUILD_MSGS(b, k, type, fn, n_out, ptrs_out)                                                \
    do {                                                                                           \
        size_t n_ = (b)->n[k];                                                                     \
        type *msgs_ = arena_alloc(&(b)->a, (n_ + 1) * sizeof(type));                               \
        type **ptrs_ = arena_alloc(&(b)->a, (n_ + 1) * sizeof(type *));                            \
        for (size_t i_ = 0; i_ < n_; i_++) {                                                       \
            fn(&(b)->a, &msgs_[i_], &(b)->ents[k][i_]);                                            \
            ptrs_[i_] = &msgs_[i_];                                                                \
        }                                                                                          \
        (n_out) = n_;                                                                              \
        (ptrs_out) = ptrs_;                                                                        \
    } while (0)

/* Encodes the Config of the sorted entities into a malloc'd buffer. */
static uint8_t *
encode_config(struct build *b, size_t *len)
{
    Strait__V1__Config cfg = STRAIT__V1__CONFIG__INIT;
    uint8_t *buf;

    if (!st_snapshot_legacy) {
        config_generic(b, &cfg);
        goto pack;
    }
    BUILD_MSGS(b, ST_ENT_SERVICE, Strait__V1__Service, build_service, cfg.n_services, cfg.services);
    BUILD_MSGS(b, ST_ENT_ROUTE, Strait__V1__Route, build_route, cfg.n_routes, cfg.routes);
    BUILD_MSGS(b, ST_ENT_CERTIFICATE, Strait__V1__Certificate, build_certificate,
               cfg.n_certificates, cfg.certificates);
    BUILD_MSGS(b, ST_ENT_SNI, Strait__V1__Sni, build_sni, cfg.n_snis, cfg.snis);
    BUILD_MSGS(b, ST_ENT_CA_CERTIFICATE, Strait__V1__CaCertificate, build_ca_certificate,
               cfg.n_ca_certificates, cfg.ca_certificates);
pack:
    *len = strait__v1__config__get_packed_size(&cfg);
    buf = st_xmalloc(*len + 1);
    strait__v1__config__pack(&cfg, buf);
    return buf;
}

/* Bytes of a protobuf varint holding v. */
static size_t
varint_size(uint64_t v)
{
    size_t n = 1;

    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

size_t
st_snapshot_entity_size(enum st_entity_kind k, const json_t *obj)
{
    struct arena a = {0};
    struct ent e = {.id = obj_id(obj), .o = obj};
    size_t n = 0;

    if (!st_snapshot_legacy) {
        n = entity_size_generic(k, obj);
        return 1 + varint_size(n) + n;
    }
    if (e.id == NULL) {
        e.id = "";
    }
    switch (k) {
    case ST_ENT_SERVICE: {
        Strait__V1__Service m;

        build_service(&a, &m, &e);
        n = strait__v1__service__get_packed_size(&m);
        break;
    }
    case ST_ENT_ROUTE: {
        Strait__V1__Route m;

        build_route(&a, &m, &e);
        n = strait__v1__route__get_packed_size(&m);
        break;
    }
    case ST_ENT_CERTIFICATE: {
        Strait__V1__Certificate m;

        build_certificate(&a, &m, &e);
        n = strait__v1__certificate__get_packed_size(&m);
        break;
    }
    case ST_ENT_SNI: {
        Strait__V1__Sni m;

        build_sni(&a, &m, &e);
        n = strait__v1__sni__get_packed_size(&m);
        break;
    }
    case ST_ENT_CA_CERTIFICATE: {
        Strait__V1__CaCertificate m;

        build_ca_certificate(&a, &m, &e);
        n = strait__v1__ca_certificate__get_packed_size(&m);
        break;
    }
    default:
        break;
    }
    arena_fini(&a);
    return 1 + varint_size(n) + n; /* Config's field tag (1 to 5), length, message */
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

/* Validates a decoded entity as a stored one (ST_SCHEMA_F_STORED: what was valid
 * when written stays valid, e.g. a CA certificate that has expired since). obj stays
 * the caller's (NULL: a string was not UTF-8). */
static int
check_entity(enum st_entity_kind k, json_t *obj, const char *id, struct st_err *err)
{
    json_t *fields = NULL;
    char msg[512];
    const char *what = st_entities[k]->singular;

    if (obj == NULL) {
        return st_err_set(err, -ST_EPARSE, st_entity_name(k), "%s %.40s: a string is not UTF-8",
                          what, id);
    }
    if (st_schema_validate_ex(k, obj, ST_SCHEMA_F_STORED, &fields) != 0) {
        st_schema_message(fields, msg, sizeof(msg));
        json_decref(fields);
        return st_err_set(err, -ST_ESCHEMA, st_entity_name(k), "%s %.40s: %s", what, id, msg);
    }
    return 0;
}

/* ---- entities that passed before ----------------------------------------- */

/* The first 16 bytes of SHA-256 over the kind and an entity's message, for every
 * entity of the last successful parse that passed the check and whose struct, filled
 * straight from the message, equals the one filled from the checked JSON. The check
 * depends on nothing but those bytes, so the same bytes pass again: a configuration
 * change checks only the entities it changed, and the others are filled from their
 * message without the JSON round trip (certificates save OpenSSL's PEM parsing, the
 * bulk of the time; routes and services the JSON objects). Sorted; the memo belongs to
 * its caller (the sync client), which parses on one thread at a time. */
#define DIGEST_LEN 16

struct digest {
    uint8_t b[DIGEST_LEN];
};

struct st_snapshot_memo {
    struct digest *v;
    size_t n;
};

struct st_snapshot_memo *
st_snapshot_memo_new(void)
{
    return st_xcalloc(1, sizeof(struct st_snapshot_memo));
}

void
st_snapshot_memo_free(struct st_snapshot_memo *memo)
{
    if (memo != NULL) {
        free(memo->v);
        free(memo);
    }
}

/* This parse's digests, one per entity; ok: may be remembered. */
struct digests {
    struct digest *v;
    bool *ok;
    size_t n;
};

static int
cmp_digest(const void *a, const void *b)
{
    return memcmp(a, b, DIGEST_LEN);
}

static unsigned
hexval(char c)
{
    return c <= '9' ? (unsigned)(c - '0') : (unsigned)(c - 'a' + 10);
}

/* Digests m (of kind k) into the next slot of d; returns that slot. */
static size_t
digest_add(struct digests *d, enum st_entity_kind k, const ProtobufCMessage *m)
{
    size_t len = protobuf_c_message_get_packed_size(m) + 1;
    uint8_t stack[4096];
    uint8_t *buf = len <= sizeof(stack) ? stack : st_xmalloc(len);
    struct digest *out = &d->v[d->n];
    char hex[65];

    buf[0] = (uint8_t)k;
    protobuf_c_message_pack(m, buf + 1);
    st_ssl_sha256_hex(buf, len, hex);
    if (buf != stack) {
        free(buf);
    }
    for (size_t i = 0; i < DIGEST_LEN; i++) {
        out->b[i] = (uint8_t)(hexval(hex[2 * i]) << 4 | hexval(hex[2 * i + 1]));
    }
    d->ok[d->n] = false;
    return d->n++;
}

static bool
passed_has(const struct st_snapshot_memo *memo, const struct digest *dg)
{
    return memo != NULL && memo->n > 0 &&
           bsearch(dg, memo->v, memo->n, sizeof(*dg), cmp_digest) != NULL;
}

/* Remembers the digests of d marked ok in memo (instead of the last parse's). */
static void
passed_set(struct st_snapshot_memo *memo, struct digests *d)
{
    struct digest *v = st_xcalloc(d->n + 1, sizeof(*v));
    size_t n = 0;

    for (size_t i = 0; i < d->n; i++) {
        if (d->ok[i]) {
            v[n++] = d->v[i];
        }
    }
    qsort(v, n, sizeof(*v), cmp_digest);
    free(memo->v);
    memo->v = v;
    memo->n = n;
}

/* Every entity struct starts with its id. */
static int
cmp_id(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* ---- filling the structs --------------------------------------------------- */

/* Strings and small arrays go into `a`; `scratch` holds a fill from a message made
 * only to compare with the checked JSON's (reset after each). */
struct parse {
    struct st_snapshot *s;
    struct arena *a;
    struct arena scratch;
    struct digests d;
    struct st_snapshot_memo *memo; /* NULL: none */
    json_t *pending;               /* a checked object a fixed message points into */
};

static int64_t
int_of(const json_t *o, const char *key)
{
    return (int64_t)json_integer_value(json_object_get(o, key));
}

/* obj[key] as a string copied into the arena (NULL when absent or not a string). */
static const char *
str_of(struct arena *a, const json_t *o, const char *key)
{
    return arena_str(a, json_string_value(json_object_get(o, key)));
}

static bool
str_eq(const char *x, const char *y)
{
    return x == y || (x != NULL && y != NULL && strcmp(x, y) == 0);
}

static const struct st_certificate *
find_certificate(const struct st_snapshot *s, const char *id)
{
    struct st_certificate key = {.id = id};

    return bsearch(&key, s->certificates, s->n_certificates, sizeof(key), cmp_id);
}

/* certificates */

static void
certificate_from_json(struct arena *a, struct st_certificate *c, const json_t *obj)
{
    c->id = str_of(a, obj, "id");
    c->created_at_ms = int_of(obj, "created_at");
    c->cert = str_of(a, obj, "cert");
    c->key = str_of(a, obj, "key");
    c->cert_alt = str_of(a, obj, "cert_alt");
    c->key_alt = str_of(a, obj, "key_alt");
}

static void
certificate_from_msg(struct arena *a, struct st_certificate *c, const Strait__V1__Certificate *m)
{
    c->id = arena_str(a, m->id);
    c->created_at_ms = m->has_created_at_ms ? m->created_at_ms : 0;
    c->cert = arena_str(a, m->cert);
    c->key = arena_str(a, m->key);
    c->cert_alt = arena_str(a, m->cert_alt);
    c->key_alt = arena_str(a, m->key_alt);
}

static bool
certificate_eq(const struct st_certificate *x, const struct st_certificate *y)
{
    return str_eq(x->id, y->id) && x->created_at_ms == y->created_at_ms &&
           str_eq(x->cert, y->cert) && str_eq(x->key, y->key) && str_eq(x->cert_alt, y->cert_alt) &&
           str_eq(x->key_alt, y->key_alt);
}

/* snis (certificate resolved by the caller) */

static void
sni_from_json(struct arena *a, struct st_sni *n, const json_t *obj)
{
    n->id = str_of(a, obj, "id");
    n->name = str_of(a, obj, "name");
    n->certificate_id =
        arena_str(a, json_string_value(json_object_get(json_object_get(obj, "certificate"), "id")));
}

static void
sni_from_msg(struct arena *a, struct st_sni *n, const Strait__V1__Sni *m)
{
    n->id = arena_str(a, m->id);
    n->name = arena_str(a, m->name);
    n->certificate_id = arena_str(a, m->certificate_id);
}

static bool
sni_eq(const struct st_sni *x, const struct st_sni *y)
{
    return str_eq(x->id, y->id) && str_eq(x->name, y->name) &&
           str_eq(x->certificate_id, y->certificate_id);
}

/* ca_certificates */

static void
ca_from_json(struct arena *a, struct st_ca_certificate *c, const json_t *obj)
{
    c->id = str_of(a, obj, "id");
    c->cert = str_of(a, obj, "cert");
    c->cert_digest = str_of(a, obj, "cert_digest");
}

static void
ca_from_msg(struct arena *a, struct st_ca_certificate *c, const Strait__V1__CaCertificate *m)
{
    c->id = arena_str(a, m->id);
    c->cert = arena_str(a, m->cert);
    c->cert_digest = arena_str(a, m->cert_digest);
}

static bool
ca_eq(const struct st_ca_certificate *x, const struct st_ca_certificate *y)
{
    return str_eq(x->id, y->id) && str_eq(x->cert, y->cert) &&
           str_eq(x->cert_digest, y->cert_digest);
}

/* services */

static void
service_from_json(struct arena *a, struct st_service *s, const json_t *o)
{
    s->id = str_of(a, o, "id");
    s->name = str_of(a, o, "name");
    s->created_at_ms = int_of(o, "created_at");
    s->protocol = st_proto_parse(json_string_value(json_object_get(o, "protocol")));
    s->host = str_of(a, o, "host");
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

static void
service_from_msg(struct arena *a, struct st_service *s, const Strait__V1__Service *m)
{
    s->id = arena_str(a, m->id);
    s->name = arena_str(a, m->name);
    s->created_at_ms = m->has_created_at_ms ? m->created_at_ms : 0;
    s->protocol = st_proto_parse(m->protocol);
    s->host = arena_str(a, m->host);
    s->port = m->has_port ? (uint16_t)m->port : 0;
    s->connect_timeout = m->has_connect_timeout ? m->connect_timeout : 0;
    s->read_timeout = m->has_read_timeout ? m->read_timeout : 0;
    s->write_timeout = m->has_write_timeout ? m->write_timeout : 0;
    s->retries = m->has_retries ? m->retries : 0;
    s->enabled = m->has_enabled && m->enabled;
    s->tls_verify = m->has_tls_verify ? (m->tls_verify ? 1 : 0) : -1;
    s->tls_verify_depth = m->has_tls_verify_depth ? (int)(int64_t)m->tls_verify_depth : -1;
}

/* service->client_certificate and service->ca_certificates (in the user's order), from
 * their ids. */
static int
service_resolve(struct parse *ps, struct arena *a, struct st_service *svc, const char *cc,
                const char *const *cas, size_t n_cas, struct st_err *err)
{
    const struct st_snapshot *s = ps->s;
    const struct st_ca_certificate **v;

    if (cc != NULL) {
        svc->client_certificate = find_certificate(s, cc);
        if (svc->client_certificate == NULL) {
            return st_err_set(err, -ST_EFOREIGN, "services",
                              "service %s: its client certificate %s is not in the snapshot",
                              svc->id, cc);
        }
    }
    v = arena_alloc(a, (n_cas + 1) * sizeof(*v));
    svc->ca_certificates = v;
    for (size_t i = 0; i < n_cas; i++) {
        struct st_ca_certificate key = {.id = cas[i]};
        const struct st_ca_certificate *ca =
            bsearch(&key, s->ca_certificates, s->n_ca_certificates, sizeof(key), cmp_id);
        if (ca == NULL) {
            return st_err_set(err, -ST_EFOREIGN, "services",
                              "service %s: its CA certificate %s is not in the snapshot", svc->id,
                              key.id);
        }
        v[svc->n_ca_certificates++] = ca;
    }
    return 0;
}

/* service_resolve with the ids of a checked JSON object. */
static int
service_resolve_json(struct parse *ps, struct st_service *svc, const json_t *o, struct st_err *err)
{
    const json_t *cas = json_object_get(o, "ca_certificates");
    size_t n = json_array_size(cas);
    const char **ids = st_xcalloc(n + 1, sizeof(*ids));
    int rc;

    for (size_t i = 0; i < n; i++) {
        ids[i] = json_string_value(json_array_get(cas, i));
    }
    rc = service_resolve(
        ps, ps->a, svc,
        json_string_value(json_object_get(json_object_get(o, "client_certificate"), "id")), ids, n,
        err);
    free(ids);
    return rc;
}

static bool
service_eq(const struct st_service *x, const struct st_service *y)
{
    if (!(str_eq(x->id, y->id) && str_eq(x->name, y->name) &&
          x->created_at_ms == y->created_at_ms && x->protocol == y->protocol &&
          str_eq(x->host, y->host) && x->port == y->port &&
          x->connect_timeout == y->connect_timeout && x->read_timeout == y->read_timeout &&
          x->write_timeout == y->write_timeout && x->retries == y->retries &&
          x->enabled == y->enabled && x->tls_verify == y->tls_verify &&
          x->tls_verify_depth == y->tls_verify_depth &&
          x->client_certificate == y->client_certificate &&
          x->n_ca_certificates == y->n_ca_certificates)) {
        return false;
    }
    for (size_t i = 0; i < x->n_ca_certificates; i++) {
        if (x->ca_certificates[i] != y->ca_certificates[i]) {
            return false;
        }
    }
    return true;
}

/* routes (service resolved by the caller) */

/* One endpoint; returns 0, or -ST_EPARSE for an ip the schema accepted but st_cidr
 * refuses. */
static int
endpoint_set(struct st_endpoint *e, const char *ip, bool has_port, uint32_t port)
{
    if (ip != NULL) {
        if (st_cidr_parse(ip, &e->ip) != 0) {
            return -ST_EPARSE;
        }
        e->has_ip = true;
    }
    if (has_port) {
        e->has_port = true;
        e->port = (uint16_t)port;
    }
    return 0;
}

static int
endpoints_from_json(struct arena *a, const json_t *arr, struct st_endpoint **out, size_t *n)
{
    size_t cnt = json_is_array(arr) ? json_array_size(arr) : 0;
    struct st_endpoint *v = arena_alloc(a, (cnt + 1) * sizeof(*v));

    *out = v;
    *n = cnt;
    for (size_t i = 0; i < cnt; i++) {
        const json_t *rec = json_array_get(arr, i);
        const json_t *port = json_object_get(rec, "port");

        if (endpoint_set(&v[i], json_string_value(json_object_get(rec, "ip")),
                         json_is_integer(port), (uint32_t)json_integer_value(port)) != 0) {
            return -ST_EPARSE;
        }
    }
    return 0;
}

static int
endpoints_from_msg(struct arena *a, Strait__V1__Endpoint *const *m, size_t cnt,
                   struct st_endpoint **out, size_t *n)
{
    struct st_endpoint *v = arena_alloc(a, (cnt + 1) * sizeof(*v));

    *out = v;
    *n = cnt;
    for (size_t i = 0; i < cnt; i++) {
        if (endpoint_set(&v[i], m[i]->ip, m[i]->has_port, m[i]->port) != 0) {
            return -ST_EPARSE;
        }
    }
    return 0;
}

static int
route_from_json(struct arena *a, struct st_route *r, const json_t *o, struct st_err *err)
{
    const json_t *protocols = json_object_get(o, "protocols");
    const json_t *snis = json_object_get(o, "snis");
    const char **v;
    size_t i;
    json_t *el;

    r->id = str_of(a, o, "id");
    r->name = str_of(a, o, "name");
    r->created_at_ms = int_of(o, "created_at");
    json_array_foreach(protocols, i, el)
    {
        r->protocols |= st_proto_parse(json_string_value(el));
    }
    r->n_snis = json_is_array(snis) ? json_array_size(snis) : 0;
    v = arena_alloc(a, (r->n_snis + 1) * sizeof(*v));
    for (i = 0; i < r->n_snis; i++) {
        v[i] = arena_str(a, json_string_value(json_array_get(snis, i)));
    }
    r->snis = v;
    r->preserve_host = json_is_true(json_object_get(o, "preserve_host"));
    r->service_id =
        arena_str(a, json_string_value(json_object_get(json_object_get(o, "service"), "id")));
    if (endpoints_from_json(a, json_object_get(o, "sources"), &r->sources, &r->n_sources) != 0 ||
        endpoints_from_json(a, json_object_get(o, "destinations"), &r->destinations,
                            &r->n_destinations) != 0) {
        return st_err_set(err, -ST_EPARSE, "routes", "route %s: bad ip", r->id);
    }
    return 0;
}

static int
route_from_msg(struct arena *a, struct st_route *r, const Strait__V1__Route *m)
{
    const char **v = arena_alloc(a, (m->n_snis + 1) * sizeof(*v));

    r->id = arena_str(a, m->id);
    r->name = arena_str(a, m->name);
    r->created_at_ms = m->has_created_at_ms ? m->created_at_ms : 0;
    for (size_t i = 0; i < m->n_protocols; i++) {
        r->protocols |= st_proto_parse(m->protocols[i]);
    }
    for (size_t i = 0; i < m->n_snis; i++) {
        v[i] = arena_str(a, m->snis[i]);
    }
    r->snis = v;
    r->n_snis = m->n_snis;
    r->preserve_host = m->has_preserve_host && m->preserve_host;
    r->service_id = arena_str(a, m->service_id);
    if (endpoints_from_msg(a, m->sources, m->n_sources, &r->sources, &r->n_sources) != 0 ||
        endpoints_from_msg(a, m->destinations, m->n_destinations, &r->destinations,
                           &r->n_destinations) != 0) {
        return -ST_EPARSE;
    }
    return 0;
}

static bool
endpoints_eq(const struct st_endpoint *x, const struct st_endpoint *y, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (x[i].has_ip != y[i].has_ip || x[i].has_port != y[i].has_port ||
            (x[i].has_port && x[i].port != y[i].port)) {
            return false;
        }
        if (x[i].has_ip && (x[i].ip.family != y[i].ip.family || x[i].ip.bits != y[i].ip.bits ||
                            x[i].ip.is_host != y[i].ip.is_host ||
                            memcmp(x[i].ip.addr, y[i].ip.addr, sizeof(x[i].ip.addr)) != 0)) {
            return false;
        }
    }
    return true;
}

static bool
route_eq(const struct st_route *x, const struct st_route *y)
{
    if (!(str_eq(x->id, y->id) && str_eq(x->name, y->name) &&
          x->created_at_ms == y->created_at_ms && x->protocols == y->protocols &&
          x->n_snis == y->n_snis && x->preserve_host == y->preserve_host &&
          str_eq(x->service_id, y->service_id) && x->n_sources == y->n_sources &&
          x->n_destinations == y->n_destinations)) {
        return false;
    }
    for (size_t i = 0; i < x->n_snis; i++) {
        if (!str_eq(x->snis[i], y->snis[i])) {
            return false;
        }
    }
    return endpoints_eq(x->sources, y->sources, x->n_sources) &&
           endpoints_eq(x->destinations, y->destinations, x->n_destinations);
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
                              st_entities[k]->singular, id);
        }
        prev = id;
    }
    return 0;
}

/* ---- each kind ------------------------------------------------------------ */

/* The JSON shape of a message, checked; *obj is the caller's to drop. */
#define CHECK_JSON(k, m, to_json, obj, rc, err)                                                    \
    do {                                                                                           \
        (obj) = to_json(m);                                                                        \
        (rc) = check_entity((k), (obj), (m)->id, (err));                                           \
    } while (0)

static int
parse_certificates(struct parse *ps, const Strait__V1__Config *cfg, struct st_err *err)
{
    struct st_snapshot *s = ps->s;
    int rc;

    s->certificates = st_xcalloc(cfg->n_certificates + 1, sizeof(*s->certificates));
    for (size_t i = 0; i < cfg->n_certificates; i++) {
        const Strait__V1__Certificate *m = cfg->certificates[i];
        struct st_certificate *c = &s->certificates[i], tmp = {0};
        size_t d = digest_add(&ps->d, ST_ENT_CERTIFICATE, &m->base);
        json_t *obj;

        s->n_certificates++;
        if (passed_has(ps->memo, &ps->d.v[d])) {
            certificate_from_msg(ps->a, c, m);
            ps->d.ok[d] = true;
            continue;
        }
        CHECK_JSON(ST_ENT_CERTIFICATE, m, certificate_json, obj, rc, err);
        if (rc == 0) {
            certificate_from_json(ps->a, c, obj);
            certificate_from_msg(&ps->scratch, &tmp, m);
            ps->d.ok[d] = certificate_eq(c, &tmp);
            arena_reset(&ps->scratch);
        }
        json_decref(obj);
        if (rc != 0) {
            return rc;
        }
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
parse_snis(struct parse *ps, const Strait__V1__Config *cfg, struct st_err *err)
{
    struct st_snapshot *s = ps->s;
    int rc;

    s->snis = st_xcalloc(cfg->n_snis + 1, sizeof(*s->snis));
    for (size_t i = 0; i < cfg->n_snis; i++) {
        const Strait__V1__Sni *m = cfg->snis[i];
        struct st_sni *n = &s->snis[i], tmp = {0};
        size_t d = digest_add(&ps->d, ST_ENT_SNI, &m->base);
        json_t *obj;

        if (passed_has(ps->memo, &ps->d.v[d])) {
            sni_from_msg(ps->a, n, m);
            ps->d.ok[d] = true;
        } else {
            CHECK_JSON(ST_ENT_SNI, m, sni_json, obj, rc, err);
            if (rc == 0) {
                sni_from_json(ps->a, n, obj);
                sni_from_msg(&ps->scratch, &tmp, m);
                ps->d.ok[d] = sni_eq(n, &tmp);
                arena_reset(&ps->scratch);
            }
            json_decref(obj);
            if (rc != 0) {
                return rc;
            }
        }
        s->n_snis++;
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
parse_ca_certificates(struct parse *ps, const Strait__V1__Config *cfg, struct st_err *err)
{
    struct st_snapshot *s = ps->s;
    int rc;

    s->ca_certificates = st_xcalloc(cfg->n_ca_certificates + 1, sizeof(*s->ca_certificates));
    for (size_t i = 0; i < cfg->n_ca_certificates; i++) {
        const Strait__V1__CaCertificate *m = cfg->ca_certificates[i];
        struct st_ca_certificate *c = &s->ca_certificates[i], tmp = {0};
        size_t d = digest_add(&ps->d, ST_ENT_CA_CERTIFICATE, &m->base);
        json_t *obj;

        s->n_ca_certificates++;
        if (passed_has(ps->memo, &ps->d.v[d])) {
            ca_from_msg(ps->a, c, m);
            ps->d.ok[d] = true;
            continue;
        }
        CHECK_JSON(ST_ENT_CA_CERTIFICATE, m, ca_certificate_json, obj, rc, err);
        if (rc == 0) {
            ca_from_json(ps->a, c, obj);
            ca_from_msg(&ps->scratch, &tmp, m);
            ps->d.ok[d] = ca_eq(c, &tmp);
            arena_reset(&ps->scratch);
        }
        json_decref(obj);
        if (rc != 0) {
            return rc;
        }
    }
    return sort_unique(s->ca_certificates, s->n_ca_certificates, sizeof(*s->ca_certificates),
                       ST_ENT_CA_CERTIFICATE, err);
}

static int
parse_services(struct parse *ps, const Strait__V1__Config *cfg, struct st_err *err)
{
    struct st_snapshot *s = ps->s;
    int rc;

    s->services = st_xcalloc(cfg->n_services + 1, sizeof(*s->services));
    for (size_t i = 0; i < cfg->n_services; i++) {
        const Strait__V1__Service *m = cfg->services[i];
        struct st_service *svc = &s->services[i], tmp = {0};
        size_t d = digest_add(&ps->d, ST_ENT_SERVICE, &m->base);
        json_t *obj;

        s->n_services++;
        if (passed_has(ps->memo, &ps->d.v[d])) {
            service_from_msg(ps->a, svc, m);
            rc = service_resolve(ps, ps->a, svc, m->client_certificate_id,
                                 (const char *const *)m->ca_certificate_ids,
                                 m->n_ca_certificate_ids, err);
            if (rc != 0) {
                return rc;
            }
            ps->d.ok[d] = true;
            continue;
        }
        CHECK_JSON(ST_ENT_SERVICE, m, service_json, obj, rc, err);
        if (rc == 0) {
            service_from_json(ps->a, svc, obj);
            rc = service_resolve_json(ps, svc, obj, err);
        }
        json_decref(obj);
        if (rc != 0) {
            return rc;
        }
        service_from_msg(&ps->scratch, &tmp, m);
        ps->d.ok[d] = service_resolve(ps, &ps->scratch, &tmp, m->client_certificate_id,
                                      (const char *const *)m->ca_certificate_ids,
                                      m->n_ca_certificate_ids, NULL) == 0 &&
                      service_eq(svc, &tmp);
        arena_reset(&ps->scratch);
    }
    return sort_unique(s->services, s->n_services, sizeof(*s->services), ST_ENT_SERVICE, err);
}

static int
parse_routes(struct parse *ps, const Strait__V1__Config *cfg, struct st_err *err)
{
    struct st_snapshot *s = ps->s;
    int rc;

    s->routes = st_xcalloc(cfg->n_routes + 1, sizeof(*s->routes));
    for (size_t i = 0; i < cfg->n_routes; i++) {
        const Strait__V1__Route *m = cfg->routes[i];
        struct st_route *r = &s->routes[i], tmp = {0};
        size_t d = digest_add(&ps->d, ST_ENT_ROUTE, &m->base);
        json_t *obj;

        s->n_routes++;
        if (passed_has(ps->memo, &ps->d.v[d]) && route_from_msg(ps->a, r, m) == 0) {
            ps->d.ok[d] = true;
        } else {
            memset(r, 0, sizeof(*r));
            CHECK_JSON(ST_ENT_ROUTE, m, route_json, obj, rc, err);
            if (rc == 0) {
                rc = route_from_json(ps->a, r, obj, err);
            }
            json_decref(obj);
            if (rc != 0) {
                return rc;
            }
            ps->d.ok[d] = route_from_msg(&ps->scratch, &tmp, m) == 0 && route_eq(r, &tmp);
            arena_reset(&ps->scratch);
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

/* ------------------------------------------------------------------------ */
/* the generic codec: the descriptions (st_entity.h) and protobuf-c's own     */

/* One field of a kind that the snapshot carries, with its protobuf field. */
struct plan_field {
    const struct st_field *f;
    const ProtobufCFieldDescriptor *pb;
    const struct plan_field *sub; /* RECORDS: the record's fields */
    size_t n_sub;
    json_t *dflt; /* the schema's default (f->dflt), what an absent field is; NULL: none */
};

/* A kind's message in Config and its fields. */
struct plan_kind {
    const ProtobufCFieldDescriptor *list; /* Config's repeated field */
    const ProtobufCMessageDescriptor *msg;
    struct plan_field fields[32];
    size_t n_fields;
};

#define PLAN_SUB_MAX 8

static struct {
    struct plan_kind kinds[ST_ENT__COUNT];
    struct plan_field subs[ST_ENT__COUNT][32][PLAN_SUB_MAX];
    enum st_entity_kind order[ST_ENT__COUNT];
} plan;

static pthread_once_t plan_once = PTHREAD_ONCE_INIT;

/* The fields of `fields` that message desc carries into out (at most max). A field the
 * snapshot does not carry (ST_FIELD_F_NO_SNAP, Kong's HTTP-only ones) has no protobuf
 * field; any other must have one (tests/unit/test_st_snapshot.c checks every kind). */
static size_t
plan_fields(const ProtobufCMessageDescriptor *desc, const struct st_field *fields,
            struct plan_field *out, size_t max)
{
    size_t n = 0;

    for (const struct st_field *f = fields; f->name != NULL && n < max; f++) {
        const ProtobufCFieldDescriptor *pb;

        if ((f->flags & (ST_FIELD_F_NO_SNAP | ST_FIELD_F_HTTP_ONLY)) != 0) {
            continue;
        }
        pb = protobuf_c_message_descriptor_get_field_by_name(desc, f->pb != NULL ? f->pb : f->name);
        if (pb == NULL) {
            abort(); /* a description that does not match the .proto */
        }
        out[n].f = f;
        out[n].pb = pb;
        out[n].dflt = f->dflt != NULL ? json_loads(f->dflt, JSON_DECODE_ANY, NULL) : NULL;
        n++;
    }
    return n;
}

static void
plan_init(void)
{
    const ProtobufCMessageDescriptor *cfg = &strait__v1__config__descriptor;

    for (int k = 0; k < ST_ENT__COUNT; k++) {
        struct plan_kind *pk = &plan.kinds[k];

        pk->list = protobuf_c_message_descriptor_get_field_by_name(cfg, st_entities[k]->name);
        if (pk->list == NULL) {
            abort();
        }
        pk->msg = pk->list->descriptor;
        pk->n_fields = plan_fields(pk->msg, st_entities[k]->fields, pk->fields, 32);
        for (size_t i = 0; i < pk->n_fields; i++) {
            struct plan_field *pf = &pk->fields[i];

            if (pf->f->type == ST_FT_RECORDS) {
                pf->n_sub =
                    plan_fields(pf->pb->descriptor, pf->f->sub, plan.subs[k][i], PLAN_SUB_MAX);
                pf->sub = plan.subs[k][i];
            }
        }
    }
    st_entity_order(plan.order);
}

static const struct plan_kind *
plan_of(enum st_entity_kind k)
{
    pthread_once(&plan_once, plan_init);
    return &plan.kinds[k];
}

#define AT(p, off, type) (*(type *)((char *)(p) + (off)))

/* ---- JSON -> message ------------------------------------------------------ */

static void msg_from_json(struct arena *a, const ProtobufCMessageDescriptor *desc,
                          const struct plan_field *fields, size_t n, const json_t *o,
                          ProtobufCMessage *m);

/* A new message of desc in the arena, its fields from o. */
static ProtobufCMessage *
msg_new_from_json(struct arena *a, const ProtobufCMessageDescriptor *desc,
                  const struct plan_field *fields, size_t n, const json_t *o)
{
    ProtobufCMessage *m = arena_alloc(a, desc->sizeof_message);

    desc->message_init(m);
    msg_from_json(a, desc, fields, n, o, m);
    return m;
}

static void
msg_from_json(struct arena *a, const ProtobufCMessageDescriptor *desc,
              const struct plan_field *fields, size_t n, const json_t *o, ProtobufCMessage *m)
{
    (void)desc;
    for (size_t i = 0; i < n; i++) {
        const struct st_field *f = fields[i].f;
        const ProtobufCFieldDescriptor *pb = fields[i].pb;
        const json_t *v = json_object_get(o, f->name);

        if (pb->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t cnt = json_is_array(v) ? json_array_size(v) : 0, k = 0;
            void **arr;

            if (cnt == 0) {
                continue;
            }
            arr = arena_alloc(a, cnt * sizeof(*arr));
            for (size_t j = 0; j < cnt; j++) {
                const json_t *el = json_array_get(v, j);

                if (pb->type == PROTOBUF_C_TYPE_MESSAGE) {
                    arr[k++] =
                        msg_new_from_json(a, pb->descriptor, fields[i].sub, fields[i].n_sub, el);
                } else if (json_is_string(el)) {
                    arr[k++] = (char *)json_string_value(el);
                }
            }
            /* sets are sorted; arrays, records and foreign sets keep the user's order */
            if (f->type == ST_FT_SET && k > 1) {
                qsort(arr, k, sizeof(*arr), cmp_cstr);
            }
            if (k > 0) {
                AT(m, pb->quantifier_offset, size_t) = k;
                AT(m, pb->offset, void **) = arr;
            }
            continue;
        }
        if (f->type == ST_FT_FOREIGN) {
            v = json_object_get(v, "id");
        }
        switch (pb->type) {
        case PROTOBUF_C_TYPE_STRING:
            AT(m, pb->offset, char *) = (char *)json_string_value(v);
            continue;
        case PROTOBUF_C_TYPE_UINT32:
            if (!json_is_integer(v)) {
                continue;
            }
            AT(m, pb->offset, uint32_t) = (uint32_t)json_integer_value(v);
            break;
        case PROTOBUF_C_TYPE_INT64:
            if (!json_is_integer(v)) {
                continue;
            }
            AT(m, pb->offset, int64_t) = (int64_t)json_integer_value(v);
            break;
        case PROTOBUF_C_TYPE_BOOL:
            if (!json_is_boolean(v)) {
                continue;
            }
            AT(m, pb->offset, protobuf_c_boolean) = json_is_true(v);
            break;
        default:
            abort(); /* a type the descriptions do not use */
        }
        if (pb->label == PROTOBUF_C_LABEL_OPTIONAL) {
            AT(m, pb->quantifier_offset, protobuf_c_boolean) = 1;
        }
    }
}

/* ---- message -> JSON ------------------------------------------------------ */

/* Whether m holds the non-repeated field pb. */
static bool
msg_has(const ProtobufCFieldDescriptor *pb, const ProtobufCMessage *m)
{
    if (pb->type == PROTOBUF_C_TYPE_STRING) {
        return AT(m, pb->offset, const char *) != NULL;
    }
    return pb->label != PROTOBUF_C_LABEL_OPTIONAL ||
           AT(m, pb->quantifier_offset, protobuf_c_boolean);
}

/* The JSON shape of message m (of fields), a field it lacks being the schema's default,
 * or NULL when a string is not UTF-8. */
static json_t *
msg_to_json(const struct plan_field *fields, size_t n, const ProtobufCMessage *m)
{
    json_t *o = json_object();

    for (size_t i = 0; i < n; i++) {
        const struct st_field *f = fields[i].f;
        const ProtobufCFieldDescriptor *pb = fields[i].pb;
        json_t *v = NULL;

        if (pb->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t cnt = AT(m, pb->quantifier_offset, size_t);
            void *const *arr = AT(m, pb->offset, void *const *);

            if (cnt == 0) {
                if (fields[i].dflt != NULL) {
                    json_object_set_new(o, f->name, json_deep_copy(fields[i].dflt));
                }
                continue;
            }
            v = json_array();
            json_object_set_new(o, f->name, v);
            for (size_t j = 0; j < cnt; j++) {
                json_t *el = pb->type == PROTOBUF_C_TYPE_MESSAGE
                                 ? msg_to_json(fields[i].sub, fields[i].n_sub, arr[j])
                                 : json_string(arr[j]);
                if (el == NULL) {
                    json_decref(o);
                    return NULL;
                }
                json_array_append_new(v, el);
            }
            continue;
        }
        if (!msg_has(pb, m)) {
            if (fields[i].dflt != NULL) {
                json_object_set_new(o, f->name, json_deep_copy(fields[i].dflt));
            }
            continue;
        }
        switch (pb->type) {
        case PROTOBUF_C_TYPE_STRING: {
            const char *s = AT(m, pb->offset, const char *);

            v = json_string(s);
            if (v == NULL) {
                json_decref(o);
                return NULL;
            }
            if (f->type == ST_FT_FOREIGN) {
                v = json_pack("{s:o}", "id", v);
            }
            break;
        }
        case PROTOBUF_C_TYPE_UINT32:
            v = json_integer(AT(m, pb->offset, uint32_t));
            break;
        case PROTOBUF_C_TYPE_INT64:
            v = json_integer(AT(m, pb->offset, int64_t));
            break;
        case PROTOBUF_C_TYPE_BOOL:
            v = json_boolean(AT(m, pb->offset, protobuf_c_boolean));
            break;
        default:
            abort();
        }
        json_object_set_new(o, f->name, v);
    }
    return o;
}

/* Whether the checked object o is what message m says: validation changed nothing (a
 * null is an absent field, the only absence a message has). Sets *bad to the first
 * field that differs. */
static bool
msg_json_same(const struct plan_field *fields, size_t n, const ProtobufCMessage *m, const json_t *o,
              const char **bad)
{
    const char *key;
    json_t *val;

    /* a key the snapshot does not carry may only be null */
    json_object_foreach((json_t *)o, key, val)
    {
        size_t i = 0;

        while (i < n && strcmp(fields[i].f->name, key) != 0) {
            i++;
        }
        if (i == n && !json_is_null(val)) {
            *bad = key;
            return false;
        }
    }
    for (size_t i = 0; i < n; i++) {
        const struct st_field *f = fields[i].f;
        const ProtobufCFieldDescriptor *pb = fields[i].pb;
        const json_t *v = json_object_get(o, f->name);
        bool same = true;

        if (json_is_null(v)) {
            v = NULL;
        }
        *bad = f->name;
        if (fields[i].dflt != NULL &&
            (pb->label == PROTOBUF_C_LABEL_REPEATED ? AT(m, pb->quantifier_offset, size_t) == 0
                                                    : !msg_has(pb, m))) {
            same = v != NULL && json_equal((json_t *)v, fields[i].dflt);
        } else if (pb->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t cnt = AT(m, pb->quantifier_offset, size_t);
            void *const *arr = AT(m, pb->offset, void *const *);

            if (v == NULL || (json_is_array(v) && json_array_size(v) == 0)) {
                same = cnt == 0;
            } else if (!json_is_array(v) || json_array_size(v) != cnt) {
                same = false;
            }
            for (size_t j = 0; same && v != NULL && j < cnt; j++) {
                const json_t *el = json_array_get(v, j);

                same = pb->type == PROTOBUF_C_TYPE_MESSAGE
                           ? json_is_object(el) &&
                                 msg_json_same(fields[i].sub, fields[i].n_sub, arr[j], el, bad)
                           : json_is_string(el) && strcmp(json_string_value(el), arr[j]) == 0;
            }
        } else if (pb->type == PROTOBUF_C_TYPE_STRING) {
            const char *s = AT(m, pb->offset, const char *);

            if (f->type == ST_FT_FOREIGN && v != NULL) {
                v = json_is_object(v) && json_object_size(v) == 1 ? json_object_get(v, "id")
                                                                  : json_true();
            }
            same =
                s == NULL ? v == NULL : json_is_string(v) && strcmp(json_string_value(v), s) == 0;
        } else if (pb->label == PROTOBUF_C_LABEL_OPTIONAL &&
                   !AT(m, pb->quantifier_offset, protobuf_c_boolean)) {
            same = v == NULL;
        } else if (pb->type == PROTOBUF_C_TYPE_BOOL) {
            same = json_is_boolean(v) &&
                   json_is_true(v) == (AT(m, pb->offset, protobuf_c_boolean) != 0);
        } else if (pb->type == PROTOBUF_C_TYPE_UINT32) {
            same = json_is_integer(v) && json_integer_value(v) == AT(m, pb->offset, uint32_t);
        } else {
            same = json_is_integer(v) && json_integer_value(v) == AT(m, pb->offset, int64_t);
        }
        if (!same) {
            return false;
        }
    }
    return true;
}

/* ---- message -> the DP's struct ------------------------------------------ */

/* Where struct st_snapshot keeps each kind's array and count. */
static const struct {
    size_t arr, n;
} snap_lists[ST_ENT__COUNT] = {
    [ST_ENT_SERVICE] = {offsetof(struct st_snapshot, services),
                        offsetof(struct st_snapshot, n_services)},
    [ST_ENT_ROUTE] = {offsetof(struct st_snapshot, routes), offsetof(struct st_snapshot, n_routes)},
    [ST_ENT_CERTIFICATE] = {offsetof(struct st_snapshot, certificates),
                            offsetof(struct st_snapshot, n_certificates)},
    [ST_ENT_SNI] = {offsetof(struct st_snapshot, snis), offsetof(struct st_snapshot, n_snis)},
    [ST_ENT_CA_CERTIFICATE] = {offsetof(struct st_snapshot, ca_certificates),
                               offsetof(struct st_snapshot, n_ca_certificates)},
};

/* The entity of kind k whose id is id in a parsed snapshot (its kind already sorted),
 * or NULL. Every DP struct starts with its id. */
static const void *
find_entity(const struct st_snapshot *s, enum st_entity_kind k, const char *id)
{
    const char *key = id;

    return bsearch(&key, AT(s, snap_lists[k].arr, void *), AT(s, snap_lists[k].n, size_t),
                   st_entities[k]->dp_size, cmp_id);
}

/* "client certificate", "CA certificate": what a reference error calls field f. */
static void
ref_words(const struct st_field *f, char *buf, size_t size)
{
    const char *src = f->type == ST_FT_FOREIGN_SET ? f->ref->singular : f->name;
    size_t i = 0;

    if (strncmp(src, "ca_", 3) == 0) {
        st_snprintf(buf, size, "CA ");
        src += 3;
        i = 3;
    }
    for (; *src != '\0' && i + 1 < size; src++) {
        buf[i++] = *src == '_' ? ' ' : *src;
    }
    buf[i] = '\0';
}

static int
ref_missing(enum st_entity_kind k, const struct st_field *f, const char *id, const char *ref,
            struct st_err *err)
{
    char words[64];

    ref_words(f, words, sizeof(words));
    return st_err_set(err, -ST_EFOREIGN, st_entity_name(k),
                      "%s %s: its %s %s is not in the snapshot", st_entities[k]->singular, id,
                      words, ref);
}

/* An {ip, port} record into e; -ST_EPARSE for an ip the schema accepted but st_cidr
 * refuses. */
static int
endpoint_from_msg(const struct plan_field *sub, size_t n, const ProtobufCMessage *m,
                  struct st_endpoint *e)
{
    for (size_t i = 0; i < n; i++) {
        const ProtobufCFieldDescriptor *pb = sub[i].pb;

        if (pb->type == PROTOBUF_C_TYPE_STRING) {
            const char *ip = AT(m, pb->offset, const char *);

            if (ip != NULL) {
                if (st_cidr_parse(ip, &e->ip) != 0) {
                    return -ST_EPARSE;
                }
                e->has_ip = true;
            }
        } else if (AT(m, pb->quantifier_offset, protobuf_c_boolean)) {
            e->has_port = true;
            e->port = (uint16_t)AT(m, pb->offset, uint32_t);
        }
    }
    return 0;
}

/* Field f of the DP struct ent as its default d (a field the message lacks). */
static void
dp_from_dflt(struct arena *a, const struct st_field *f, const json_t *d, void *ent)
{
    size_t i;
    json_t *el;

    switch (f->dp) {
    case ST_DP_STR:
        AT(ent, f->dp_off, const char *) = arena_str(a, json_string_value(d));
        break;
    case ST_DP_U16:
        AT(ent, f->dp_off, uint16_t) = (uint16_t)json_integer_value(d);
        break;
    case ST_DP_U32:
        AT(ent, f->dp_off, uint32_t) = (uint32_t)json_integer_value(d);
        break;
    case ST_DP_I64:
        AT(ent, f->dp_off, int64_t) = (int64_t)json_integer_value(d);
        break;
    case ST_DP_BOOL:
        AT(ent, f->dp_off, bool) = json_is_true(d);
        break;
    case ST_DP_TRISTATE:
        AT(ent, f->dp_off, int) = json_is_true(d) ? 1 : 0;
        break;
    case ST_DP_INT:
        AT(ent, f->dp_off, int) = (int)json_integer_value(d);
        break;
    case ST_DP_PROTO:
        AT(ent, f->dp_off, unsigned) = st_proto_parse(json_string_value(d));
        json_array_foreach((json_t *)d, i, el)
        {
            AT(ent, f->dp_off, unsigned) |= st_proto_parse(json_string_value(el));
        }
        break;
    default:
        abort(); /* a default the descriptions do not give */
    }
}

/* Fills the DP struct ent of kind k from message m, by the descriptions' offsets,
 * resolving references against s (their kinds parsed and sorted before k). */
static int
ent_from_msg(struct arena *a, const struct st_snapshot *s, enum st_entity_kind k,
             const ProtobufCMessage *m, void *ent, struct st_err *err)
{
    const struct plan_kind *pk = plan_of(k);

    for (size_t i = 0; i < pk->n_fields; i++) {
        const struct st_field *f = pk->fields[i].f;
        const ProtobufCFieldDescriptor *pb = pk->fields[i].pb;
        size_t cnt = 0;
        void *const *arr = NULL;
        bool has = true;

        if (pb->label == PROTOBUF_C_LABEL_REPEATED) {
            cnt = AT(m, pb->quantifier_offset, size_t);
            arr = AT(m, pb->offset, void *const *);
            has = cnt > 0;
        } else {
            has = msg_has(pb, m);
        }
        if (!has && pk->fields[i].dflt != NULL) {
            dp_from_dflt(a, f, pk->fields[i].dflt, ent);
            continue;
        }
        switch (f->dp) {
        case ST_DP_NONE:
            break;
        case ST_DP_STR:
            AT(ent, f->dp_off, const char *) = arena_str(a, AT(m, pb->offset, const char *));
            break;
        case ST_DP_U16:
            AT(ent, f->dp_off, uint16_t) = has ? (uint16_t)AT(m, pb->offset, uint32_t) : 0;
            break;
        case ST_DP_U32:
            AT(ent, f->dp_off, uint32_t) = has ? AT(m, pb->offset, uint32_t) : 0;
            break;
        case ST_DP_I64:
            AT(ent, f->dp_off, int64_t) = has ? AT(m, pb->offset, int64_t) : 0;
            break;
        case ST_DP_BOOL:
            AT(ent, f->dp_off, bool) = has && AT(m, pb->offset, protobuf_c_boolean);
            break;
        case ST_DP_TRISTATE:
            AT(ent, f->dp_off, int) = has ? (AT(m, pb->offset, protobuf_c_boolean) ? 1 : 0) : -1;
            break;
        case ST_DP_INT:
            AT(ent, f->dp_off, int) = has ? (int)(int64_t)AT(m, pb->offset, uint32_t) : -1;
            break;
        case ST_DP_PROTO: {
            unsigned flags = 0;

            if (pb->label != PROTOBUF_C_LABEL_REPEATED) {
                flags = st_proto_parse(AT(m, pb->offset, const char *));
            }
            for (size_t j = 0; j < cnt; j++) {
                flags |= st_proto_parse(arr[j]);
            }
            AT(ent, f->dp_off, unsigned) = flags;
            break;
        }
        case ST_DP_STRS: {
            const char **v = arena_alloc(a, (cnt + 1) * sizeof(*v));

            for (size_t j = 0; j < cnt; j++) {
                v[j] = arena_str(a, arr[j]);
            }
            AT(ent, f->dp_off, const char **) = v;
            AT(ent, f->dp_off2, size_t) = cnt;
            break;
        }
        case ST_DP_ENDPOINTS: {
            struct st_endpoint *v = arena_alloc(a, (cnt + 1) * sizeof(*v));

            AT(ent, f->dp_off, struct st_endpoint *) = v;
            AT(ent, f->dp_off2, size_t) = cnt;
            for (size_t j = 0; j < cnt; j++) {
                if (endpoint_from_msg(pk->fields[i].sub, pk->fields[i].n_sub, arr[j], &v[j]) != 0) {
                    return st_err_set(err, -ST_EPARSE, st_entity_name(k), "%s %s: bad ip",
                                      st_entities[k]->singular, AT(ent, 0, const char *));
                }
            }
            break;
        }
        case ST_DP_REF: {
            const char *id = AT(m, pb->offset, const char *);

            if (id == NULL) {
                break;
            }
            AT(ent, f->dp_off, const void *) = find_entity(s, f->ref->kind, id);
            if (AT(ent, f->dp_off, const void *) == NULL) {
                return ref_missing(k, f, AT(ent, 0, const char *), id, err);
            }
            if (f->dp_off2 != ST_DP_NO_OFF) {
                AT(ent, f->dp_off2, const char *) = arena_str(a, id);
            }
            break;
        }
        case ST_DP_REFS: {
            const void **v = arena_alloc(a, (cnt + 1) * sizeof(*v));

            AT(ent, f->dp_off, const void **) = v;
            for (size_t j = 0; j < cnt; j++) {
                v[j] = find_entity(s, f->ref->kind, arr[j]);
                if (v[j] == NULL) {
                    return ref_missing(k, f, AT(ent, 0, const char *), arr[j], err);
                }
                AT(ent, f->dp_off2, size_t) = j + 1;
            }
            break;
        }
        }
    }
    return 0;
}

/* ---- each kind, generically ---------------------------------------------- */

/* The id of an entity message (the descriptions' first field). */
static const char *
msg_id(const struct plan_kind *pk, const ProtobufCMessage *m)
{
    return AT(m, pk->fields[0].pb->offset, const char *);
}

/* Checks message m of kind k as the CP would: its JSON shape (a field it lacks being
 * the schema's default, as the fill from the message takes it) through st_schema. *same
 * tells whether validation left that JSON as it was; when it did not (a buggy or
 * hostile CP: a set with repeats, a CA certificate's digest that is not its cert's),
 * *fixed is the message of what validation left, in ps->scratch, for the fill. */
static int
check_msg(struct parse *ps, enum st_entity_kind k, const struct plan_kind *pk,
          const ProtobufCMessage *m, bool *same, ProtobufCMessage **fixed, struct st_err *err)
{
    json_t *obj = msg_to_json(pk->fields, pk->n_fields, m);
    const char *bad = NULL;
    int rc = check_entity(k, obj, msg_id(pk, m), err);

    *same = rc == 0 && msg_json_same(pk->fields, pk->n_fields, m, obj, &bad);
    if (rc == 0 && !*same) {
        *fixed = msg_new_from_json(&ps->scratch, pk->msg, pk->fields, pk->n_fields, obj);
        /* strings still point into obj: the caller fills before obj goes */
        ps->pending = obj;
        return 0;
    }
    json_decref(obj);
    return rc;
}

/* A required unique string the DP keeps (snis' name: certificate choice relies on it)
 * appears once among the n entities of kind k at base. */
static int
required_unique(enum st_entity_kind k, const struct plan_kind *pk, const char *base, size_t n,
                struct st_err *err)
{
    const unsigned want = ST_FIELD_F_REQUIRED | ST_FIELD_F_UNIQUE;

    for (size_t i = 0; i < pk->n_fields; i++) {
        const struct st_field *f = pk->fields[i].f;
        const char **v;
        int rc = 0;

        if ((f->flags & want) != want || f->dp != ST_DP_STR) {
            continue;
        }
        v = st_xcalloc(n + 1, sizeof(*v));
        for (size_t j = 0; j < n; j++) {
            v[j] = AT(base + j * st_entities[k]->dp_size, f->dp_off, const char *);
        }
        qsort(v, n, sizeof(*v), cmp_cstr);
        for (size_t j = 1; j < n && rc == 0; j++) {
            if (strcmp(v[j - 1], v[j]) == 0) {
                rc = st_err_set(err, -ST_EUNIQUE, st_entity_name(k), "%s %s %s appears twice",
                                st_entities[k]->singular, f->name, v[j]);
            }
        }
        free(v);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* The entities of kind k in cfg into ps->s (sorted by id, references resolved). */
static int
parse_kind(struct parse *ps, const ProtobufCMessage *cfg, enum st_entity_kind k, struct st_err *err)
{
    const struct plan_kind *pk = plan_of(k);
    size_t n = AT(cfg, pk->list->quantifier_offset, size_t);
    ProtobufCMessage *const *msgs = AT(cfg, pk->list->offset, ProtobufCMessage *const *);
    size_t size = st_entities[k]->dp_size;
    char *base = st_xcalloc(n + 1, size);
    int rc;

    AT(ps->s, snap_lists[k].arr, void *) = base;
    for (size_t i = 0; i < n; i++) {
        size_t d = digest_add(&ps->d, k, msgs[i]);

        const ProtobufCMessage *m = msgs[i];
        bool same = true;

        if (!passed_has(ps->memo, &ps->d.v[d])) {
            ProtobufCMessage *fixed = NULL;

            rc = check_msg(ps, k, pk, m, &same, &fixed, err);
            if (rc != 0) {
                return rc;
            }
            if (!same) {
                m = fixed;
            }
        }
        rc = ent_from_msg(ps->a, ps->s, k, m, base + i * size, err);
        json_decref(ps->pending);
        ps->pending = NULL;
        arena_reset(&ps->scratch);
        if (rc != 0) {
            return rc;
        }
        /* remembered only when the message alone gives the entity */
        ps->d.ok[d] = same;
    }
    AT(ps->s, snap_lists[k].n, size_t) = n;
    rc = sort_unique(base, n, size, k, err);
    return rc != 0 ? rc : required_unique(k, pk, base, n, err);
}

static int
parse_generic(struct parse *ps, const Strait__V1__Config *cfg, struct st_err *err)
{
    int rc = 0;

    (void)plan_of(ST_ENT_SERVICE);
    /* referenced kinds first, so each reference resolves against a sorted array */
    for (int i = 0; i < ST_ENT__COUNT && rc == 0; i++) {
        rc = parse_kind(ps, &cfg->base, plan.order[i], err);
    }
    return rc;
}

/* The Config of the sorted entities, generically. */
static void
config_generic(struct build *b, Strait__V1__Config *cfg)
{
    for (int k = 0; k < ST_ENT__COUNT; k++) {
        const struct plan_kind *pk = plan_of((enum st_entity_kind)k);
        ProtobufCMessage **v = arena_alloc(&b->a, (b->n[k] + 1) * sizeof(*v));

        for (size_t i = 0; i < b->n[k]; i++) {
            v[i] = msg_new_from_json(&b->a, pk->msg, pk->fields, pk->n_fields, b->ents[k][i].o);
        }
        AT(cfg, pk->list->quantifier_offset, size_t) = b->n[k];
        AT(cfg, pk->list->offset, ProtobufCMessage **) = v;
    }
}

static size_t
entity_size_generic(enum st_entity_kind k, const json_t *obj)
{
    const struct plan_kind *pk = plan_of(k);
    struct arena a = {0};
    ProtobufCMessage *m = msg_new_from_json(&a, pk->msg, pk->fields, pk->n_fields, obj);
    size_t n;

    if (msg_id(pk, m) == NULL) {
        AT(m, pk->fields[0].pb->offset, const char *) = "";
    }
    n = protobuf_c_message_get_packed_size(m);
    arena_fini(&a);
    return n;
}

int
st_snapshot_parse(const uint8_t *p, size_t len, struct st_snapshot_memo *memo,
                  struct st_snapshot **out, struct st_err *err)
{
    Strait__V1__Snapshot *snap;
    Strait__V1__Config *cfg = NULL;
    struct st_snapshot *s = NULL;
    struct parse ps;
    char got[65];
    size_t n;
    int rc;

    *out = NULL;
    memset(&ps, 0, sizeof(ps));
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
    s->priv = st_xcalloc(1, sizeof(struct arena));
    ps.s = s;
    ps.a = s->priv;
    ps.memo = memo;
    n = cfg->n_certificates + cfg->n_snis + cfg->n_ca_certificates + cfg->n_services +
        cfg->n_routes;
    ps.d.v = st_xcalloc(n + 1, sizeof(*ps.d.v));
    ps.d.ok = st_xcalloc(n + 1, sizeof(*ps.d.ok));
    /* referenced kinds first, so each reference resolves against a sorted array */
    if (!st_snapshot_legacy) {
        rc = parse_generic(&ps, cfg, err);
        goto parsed;
    }
    rc = parse_certificates(&ps, cfg, err);
    if (rc == 0) {
        rc = parse_snis(&ps, cfg, err);
    }
    if (rc == 0) {
        rc = parse_ca_certificates(&ps, cfg, err);
    }
    if (rc == 0) {
        rc = parse_services(&ps, cfg, err);
    }
    if (rc == 0) {
        rc = parse_routes(&ps, cfg, err);
    }
parsed:
    if (rc == 0 && memo != NULL) {
        passed_set(memo, &ps.d);
    }

out:
    free(ps.d.v);
    free(ps.d.ok);
    arena_fini(&ps.scratch);
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
    free(s->routes);
    free(s->services);
    free(s->certificates);
    free(s->snis);
    free(s->ca_certificates);
    if (s->priv != NULL) {
        arena_fini(s->priv);
        free(s->priv);
    }
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
