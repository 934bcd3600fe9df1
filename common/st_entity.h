/* The entity kinds: one description of each (struct st_entity_desc, st_entities[]) that
 * every consumer reads (validation, GET /schemas, form decoding, the admin routes, the
 * declarative walk; the snapshot codec and the store's relations from the same rows next),
 * and the plain, read-only structs the data plane routes with, decoded from a snapshot
 * (strings point into memory owned by the snapshot). Adding a kind: its enum value and
 * DP struct here, one line in st_entity.c's registry, its description in
 * common/st_ent_<kind>.c (docs/internals.md, "Adding an entity kind"). */
#ifndef STRAIT_ST_ENTITY_H
#define STRAIT_ST_ENTITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "st_cidr.h"

struct json_t; /* jansson's json_t, for the descriptions' hooks */

enum st_entity_kind {
    ST_ENT_SERVICE = 0,
    ST_ENT_ROUTE,
    ST_ENT_CERTIFICATE,
    ST_ENT_SNI,
    ST_ENT_CA_CERTIFICATE,
    ST_ENT_UPSTREAM,
    ST_ENT_TARGET,
    ST_ENT_PLUGIN,
    ST_ENT__COUNT,
};

/* ------------------------------------------------------------------------ */
/* descriptions                                                               */

/* What a field holds. The type gives the field's default check (st_check), its Kong type
 * in GET /schemas, the form decoder's guess (cp_form: integers, arrays) and, with `pb`
 * and `dp`, its place in the snapshot. */
enum st_ftype {
    ST_FT_STRING = 0,
    ST_FT_INTEGER,
    ST_FT_BOOLEAN,
    ST_FT_TIMESTAMP,   /* an integer: ms inside Strait, seconds at the admin API */
    ST_FT_UUID,        /* a string */
    ST_FT_SET,         /* strings, repeats dropped; sorted in the snapshot */
    ST_FT_ARRAY,       /* strings, order and repeats kept */
    ST_FT_RECORDS,     /* a set of records whose fields are `sub` (routes.sources) */
    ST_FT_MAP,         /* an object (routes.headers) */
    ST_FT_FOREIGN,     /* {"id": ...} of the kind `ref` */
    ST_FT_FOREIGN_SET, /* ["<id>", ...] of the kind `ref` (services.ca_certificates) */
    ST_FT_NUMBER,      /* a real or an integer (integral reals become integers) */
    ST_FT_RECORD,      /* one record whose fields are `sub`, absent ones set to their
                        * defaults (upstreams.healthchecks); in the snapshot, its JSON */
};

#define ST_FIELD_F_REQUIRED  (1u << 0) /* null is "required field missing" */
#define ST_FIELD_F_UNIQUE    (1u << 1) /* unique among the kind's entities (a column) */
#define ST_FIELD_F_ENDPOINT  (1u << 2) /* /<kind>/{value} finds it (Kong's endpoint_key) */
#define ST_FIELD_F_PARENT    (1u << 3) /* FOREIGN that nests: /<ref>/{r}/<kind> */
#define ST_FIELD_F_CASCADE   (1u << 4) /* FOREIGN: deleting the referenced one deletes this */
#define ST_FIELD_F_SECRET    (1u << 5) /* "encrypted": true in GET /schemas */
#define ST_FIELD_F_AUTO      (1u << 6) /* id, created_at, updated_at: set on write */
#define ST_FIELD_F_HTTP_ONLY (1u << 7) /* Kong's HTTP field: known, must stay null */
#define ST_FIELD_F_NO_SNAP   (1u << 8) /* not carried in the snapshot (updated_at, path) */

/* How the data plane keeps a field in its struct st_<kind> (dp_off, dp_off2: offsetof). */
enum st_dpconv {
    ST_DP_NONE = 0,  /* the DP does not keep it */
    ST_DP_STR,       /* const char * (NULL: null) */
    ST_DP_U16,       /* uint16_t */
    ST_DP_U32,       /* uint32_t */
    ST_DP_I64,       /* int64_t (created_at_ms) */
    ST_DP_BOOL,      /* bool */
    ST_DP_TRISTATE,  /* int: -1 null, 0 false, 1 true (tls_verify) */
    ST_DP_INT,       /* int: -1 null (tls_verify_depth) */
    ST_DP_PROTO,     /* unsigned ST_PROTO_*: one name, or the OR of a set */
    ST_DP_STRS,      /* const char ** at dp_off, size_t count at dp_off2 */
    ST_DP_ENDPOINTS, /* struct st_endpoint * at dp_off, size_t count at dp_off2 */
    ST_DP_REF,       /* the resolved pointer at dp_off, the id (const char *) at dp_off2 */
    ST_DP_REFS,      /* the resolved pointers (array) at dp_off, size_t count at dp_off2 */
};

/* dp_off2 of an ST_DP_REF whose id the DP does not keep. */
#define ST_DP_NO_OFF ((size_t)-1)

struct st_field;
struct st_entity_desc;

/* A field check: validates the non-null value v stored at obj[f->name]. It may normalise
 * the value in place (integral reals to integers, repeats of a set dropped); v is invalid
 * afterwards. Returns Kong's error (a new reference: a string, or an array/object for
 * nested errors) or NULL. */
typedef struct json_t *st_check_fn(struct json_t *obj, const struct st_field *f, struct json_t *v);

/* Kong's entity_checks: cross-field rules, run after every field's check. They add errors
 * to `fields` (Kong's shape: "@entity" messages, field keys); flags are
 * st_schema_validate_ex's. */
typedef void st_entity_check_fn(struct json_t *obj, struct json_t *fields, unsigned flags);

/* Kong's shorthand_fields: rewrites obj before the fields are checked (services' `url`).
 * Returns true when it failed (its error is in fields; required fields are then not
 * reported missing). */
typedef bool st_shorthand_fn(struct json_t *obj, struct json_t *fields);

/* Kong's shorthand_fields that must see what the request itself sent (upstreams'
 * algorithm and hash_on): rewrites a write's body before it meets the stored entity. */
typedef void st_input_fn(struct json_t *body);

/* One field of a kind, in Kong's output order (a NULL name ends a list). */
struct st_field {
    const char *name;
    enum st_ftype type;
    unsigned flags;     /* ST_FIELD_F_* */
    st_check_fn *check; /* NULL: the type's own check (st_check_default) */
    const char *dflt;   /* the default as JSON text ("60000", "[\"tcp\"]"); NULL: null */
    const struct st_entity_desc *ref; /* FOREIGN, FOREIGN_SET: the kind referenced */
    const struct st_field *sub;       /* RECORDS: the record's fields */
    /* GET /schemas: Kong's keys that the type and flags do not give, as JSON object
     * members ("\"between\": [0, 65535]"); for RECORDS, those of the element record. A
     * given key with a null value only places a derived one ("\"default\": null" before
     * "between", as Kong orders it). */
    const char *schema;
    const char *pb; /* the snapshot message's field when it is not `name` */
    enum st_dpconv dp;
    size_t dp_off, dp_off2; /* offsetof(struct st_<kind>, ...), see enum st_dpconv */
};

/* One entity kind. */
struct st_entity_desc {
    enum st_entity_kind kind;
    const char *name;              /* "ca_certificates": the collection, the table, the
                                    * declarative key, the Config message's field */
    const char *singular;          /* "ca_certificate": messages (Kong's entity_type) */
    const struct st_field *fields; /* NULL-terminated, Kong's output order */
    const char *const *unique;     /* a composite unique key (NULL-terminated), NULL: none */
    bool nested_only;              /* no top-level collection (Kong's /targets) */
    st_shorthand_fn *shorthand;    /* NULL: none */
    st_input_fn *input;            /* NULL: none (st_schema_input) */
    st_entity_check_fn *checks;    /* NULL: none */
    const char *checks_schema;     /* the checks in Kong's entity_checks form, JSON text */
    size_t dp_size;                /* sizeof(struct st_<kind>) */
};

/* The descriptions, one per kind (common/st_ent_<kind>.c). */
extern const struct st_entity_desc st_ent_service;
extern const struct st_entity_desc st_ent_route;
extern const struct st_entity_desc st_ent_certificate;
extern const struct st_entity_desc st_ent_sni;
extern const struct st_entity_desc st_ent_ca_certificate;
extern const struct st_entity_desc st_ent_upstream;
extern const struct st_entity_desc st_ent_target;
extern const struct st_entity_desc st_ent_plugin;

/* Indexed by kind, every slot set (tests/unit/test_st_entity.c walks it). */
extern const struct st_entity_desc *const st_entities[ST_ENT__COUNT];

/* "services", "routes", "certificates", "snis", "ca_certificates": the admin API
 * collection and the table name; "unknown" for a value that is no kind. */
const char *st_entity_name(enum st_entity_kind k);

/* The kind whose collection is `name`: true and *k set, or false (no such kind). */
bool st_entity_by_name(const char *name, enum st_entity_kind *k);

/* The field `name` of kind k, or NULL. */
const struct st_field *st_entity_field(enum st_entity_kind k, const char *name);

/* The field that finds an entity of kind k in a path besides its id (ST_FIELD_F_ENDPOINT:
 * services' and routes' `name`), or NULL. */
const struct st_field *st_entity_endpoint(enum st_entity_kind k);

/* The foreign key that nests kind k under another (ST_FIELD_F_PARENT: routes' `service`,
 * snis' `certificate`), or NULL. */
const struct st_field *st_entity_parent(enum st_entity_kind k);

/* The PARENT foreign key of kind k that nests it under kind parent (plugins: `route`
 * under routes, `service` under services), or NULL. */
const struct st_field *st_entity_parent_in(enum st_entity_kind k, enum st_entity_kind parent);

/* The kind a foreign key field of kind k references (FOREIGN or FOREIGN_SET), or NULL
 * when k has no such field. */
const struct st_entity_desc *st_entity_ref(enum st_entity_kind k, const char *field);

/* The most foreign keys (FOREIGN fields) one kind has (tests/unit/test_st_entity.c). */
#define ST_ENTITY_FOREIGN_MAX 4

/* A kind whose entities a declarative document may write inside those of the kind its
 * foreign key `field` references, under the child's collection name (Kong's nesting
 * through foreign keys: services[].routes, certificates[].snis). */
struct st_entity_nest {
    const struct st_entity_desc *child;
    const struct st_field *field;
};

/* The largest count st_entity_nests returns. */
#define ST_ENTITY_NESTS_MAX (ST_ENT__COUNT * ST_ENTITY_FOREIGN_MAX)

/* The kinds that nest under kind parent into out[ST_ENTITY_NESTS_MAX], those nested by a
 * PARENT foreign key first (the admin API's nested collections), kinds in enum order;
 * returns their count. */
size_t st_entity_nests(enum st_entity_kind parent, struct st_entity_nest *out);

/* Every kind, referenced kinds before the kinds that reference them (each kind's foreign
 * keys visited in field order, kinds in enum order): the order Kong's declarative
 * config walks and the order in which inserts never dangle. */
void st_entity_order(enum st_entity_kind out[ST_ENT__COUNT]);

/* Route and service protocols as flags. */
#define ST_PROTO_TCP             (1u << 0)
#define ST_PROTO_TLS             (1u << 1)
#define ST_PROTO_TLS_PASSTHROUGH (1u << 2)
#define ST_PROTO_UDP             (1u << 3)

/* Parses "tcp", "tls", "tls_passthrough", "udp" to a flag; 0 if unknown. */
unsigned st_proto_parse(const char *name);

struct st_certificate {
    const char *id;
    int64_t created_at_ms;
    const char *cert;     /* PEM, leaf first then chain */
    const char *key;      /* PEM */
    const char *cert_alt; /* NULL: none */
    const char *key_alt;  /* NULL: none */
};

struct st_sni {
    const char *id;
    const char *name; /* exact, "*.x", "x.*", or "*" */
    const char *certificate_id;
    const struct st_certificate *certificate; /* resolved */
};

struct st_ca_certificate {
    const char *id;
    const char *cert; /* PEM, one certificate */
    const char *cert_digest;
};

struct st_service {
    const char *id;
    const char *name; /* NULL: none */
    int64_t created_at_ms;
    unsigned protocol; /* one ST_PROTO_* */
    const char *host;
    uint16_t port;
    uint32_t connect_timeout; /* ms */
    uint32_t read_timeout;    /* ms */
    uint32_t write_timeout;   /* ms */
    uint32_t retries;
    bool enabled;
    int tls_verify;                                   /* -1: unset, 0: off, 1: on */
    int tls_verify_depth;                             /* -1: unset */
    const struct st_ca_certificate **ca_certificates; /* resolved, in the user's order */
    size_t n_ca_certificates;
    const struct st_certificate *client_certificate; /* NULL: none */
};

struct st_endpoint {
    bool has_ip;
    struct st_cidr ip;
    bool has_port;
    uint16_t port;
};

struct st_route {
    const char *id;
    const char *name; /* NULL: none */
    int64_t created_at_ms;
    unsigned protocols; /* ST_PROTO_* flags */
    struct st_endpoint *sources;
    size_t n_sources;
    struct st_endpoint *destinations;
    size_t n_destinations;
    const char **snis;
    size_t n_snis;
    bool preserve_host;
    const char *service_id;           /* NULL: none */
    const struct st_service *service; /* resolved by id, NULL if none */
};

struct st_upstream {
    const char *id;
    const char *name; /* what a service's host names to be balanced */
    int64_t created_at_ms;
    const char *algorithm; /* "round-robin", "least-connections", ... */
    const char *hash_on;   /* "none", "ip", ... */
    const char *hash_fallback;
    uint32_t slots;
    const char *healthchecks; /* the healthchecks record as JSON (compact, sorted keys) */
    const char *host_header;  /* NULL: none */
    const struct st_certificate *client_certificate; /* NULL: none */
    bool use_srv_name;
};

struct st_target {
    const char *id;
    int64_t created_at_ms;
    const char *target; /* host:port, normalised */
    uint32_t weight;
    const char *upstream_id;
    const struct st_upstream *upstream; /* resolved */
};

struct st_plugin {
    const char *id;
    int64_t created_at_ms;
    const char *name;
    const char *instance_name; /* NULL: none */
    const char *route_id;      /* NULL: none */
    const struct st_route *route;
    const char *service_id; /* NULL: none */
    const struct st_service *service;
    const char *config; /* the config record as JSON (compact, sorted keys) */
    unsigned protocols; /* the ST_PROTO_* among its protocols (HTTP ones are no flag) */
    bool enabled;
};

/* Each kind's array in a parsed snapshot (struct st_snapshot), in enum st_entity_kind
 * order: st_snapshot.h lays these names over its array of lists by kind, so a kind added
 * here is both named for the DP's code and reached by kind by the generic codec. */
#define ST_ENTITY_SNAPSHOT_LISTS                                                                   \
    struct st_service *services;                                                                   \
    size_t n_services;                                                                             \
    struct st_route *routes; /* route->service resolved */                                         \
    size_t n_routes;                                                                               \
    struct st_certificate *certificates;                                                           \
    size_t n_certificates;                                                                         \
    struct st_sni *snis; /* sni->certificate resolved */                                           \
    size_t n_snis;                                                                                 \
    struct st_ca_certificate *ca_certificates;                                                     \
    size_t n_ca_certificates;                                                                      \
    struct st_upstream *upstreams;                                                                 \
    size_t n_upstreams;                                                                            \
    struct st_target *targets; /* target->upstream resolved */                                     \
    size_t n_targets;                                                                              \
    struct st_plugin *plugins; /* plugin->route, plugin->service resolved */                       \
    size_t n_plugins;

#endif
