/* upstreams: Kong 3.x kong/db/schema/entities/upstreams.lua. A service whose host is an
 * upstream's name is balanced over the upstream's targets (data-plane/dp_balancer.c).
 * Kong's HTTP-only hash sources (consumer, header, cookie, path, query_arg, uri_capture)
 * are accepted as Kong accepts them; on a stream connection they yield nothing and the
 * hash falls back (docs/balancing.md). */
#include <stddef.h>
#include <string.h>

#include "st_check.h"
#include "st_entity.h"
#include "st_schema.h"
#include "st_str.h"
#include "st_util.h"

#define OFF(m) offsetof(struct st_upstream, m)

/* Kong's sources, then Strait's for stream connections: the SNI a TLS client sent, and
 * the port of the listener that accepted the connection */
#define HASH_ONE_OF "none, consumer, ip, header, cookie, path, query_arg, uri_capture, sni, port"

/* ------------------------------------------------------------------------ */
/* field checks                                                               */

/* upstreams.name: a host name, no IP address, no port (validate_name). */
static json_t *
check_name(json_t *obj, const struct st_field *f, json_t *v)
{
    json_t *e = st_check_str_max(v, ST_SCHEMA_NAME_MAX);
    const char *s;
    bool has_port;
    enum st_host_kind kind;

    (void)obj;
    (void)f;
    if (e != NULL) {
        return e;
    }
    s = json_string_value(v);
    kind = st_check_host_kind(s, &has_port);
    if (kind == ST_HOST_INVALID) {
        return st_check_errf("Invalid name ('%s'); must be a valid hostname", s);
    }
    if (kind != ST_HOST_NAME) {
        return st_check_errf("Invalid name ('%s'); no ip addresses allowed", s);
    }
    return has_port ? st_check_errf("Invalid name ('%s'); no port allowed", s) : NULL;
}

static json_t *
one_of(json_t *v, const char *const *values, const char *msg)
{
    if (!json_is_string(v)) {
        return json_string("expected a string");
    }
    return st_str_in(json_string_value(v), values) ? NULL
                                                   : st_check_errf("expected one of: %s", msg);
}

static const char *const algorithms[] = {
    "consistent-hashing", "least-connections", "round-robin", "latency", NULL,
};
static const char *const hash_sources[] = {
    "none",      "consumer",    "ip",  "header", "cookie", "path",
    "query_arg", "uri_capture", "sni", "port",   NULL,
};

static json_t *
check_algorithm(json_t *obj, const struct st_field *f, json_t *v)
{
    (void)obj;
    (void)f;
    return one_of(v, algorithms, "consistent-hashing, least-connections, round-robin, latency");
}

static json_t *
check_hash(json_t *obj, const struct st_field *f, json_t *v)
{
    (void)obj;
    (void)f;
    return one_of(v, hash_sources, HASH_ONE_OF);
}

/* typedefs.cookie_name (tools/http.lua validate_http_token) */
static json_t *
check_cookie(json_t *obj, const struct st_field *f, json_t *v)
{
    (void)obj;
    (void)f;
    if (!json_is_string(v)) {
        return json_string("expected a string");
    }
    for (const unsigned char *p = (const unsigned char *)json_string_value(v); *p != '\0'; p++) {
        if (*p <= 32 || *p >= 127 || strchr("()<>@,;:\\\"/?={}[]", *p) != NULL) {
            return json_string("contains one or more invalid characters. ASCII control "
                               "characters (0-31;127), space, tab and the characters "
                               "()<>@,;:\\\"/?={}[] are not allowed.");
        }
    }
    return json_string_length(v) == 0 ? json_string("no token provided") : NULL;
}

static json_t *
check_param(json_t *obj, const struct st_field *f, json_t *v)
{
    (void)obj;
    (void)f;
    return st_check_str(v);
}

static json_t *
check_slots(json_t *obj, const struct st_field *f, json_t *v)
{
    return st_check_int_range(obj, f->name, v, 10, 65536);
}

/* the healthchecks record's fields */
static json_t *
check_seconds(json_t *obj, const struct st_field *f, json_t *v)
{
    return st_check_number_range(obj, f->name, v, 0, 65535);
}

static json_t *
check_threshold(json_t *obj, const struct st_field *f, json_t *v)
{
    return st_check_number_range(obj, f->name, v, 0, 100);
}

static json_t *
check_concurrency(json_t *obj, const struct st_field *f, json_t *v)
{
    return st_check_int_range(obj, f->name, v, 1, 2147483648LL);
}

static json_t *
check_counter(json_t *obj, const struct st_field *f, json_t *v)
{
    return st_check_int_range(obj, f->name, v, 0, 255);
}

static json_t *
check_statuses(json_t *obj, const struct st_field *f, json_t *v)
{
    (void)obj;
    (void)f;
    return st_check_int_array(v, 100, 999);
}

static json_t *
check_probe_type(json_t *obj, const struct st_field *f, json_t *v)
{
    static const char *const types[] = {"tcp", "http", "https", "grpc", "grpcs", NULL};

    (void)obj;
    (void)f;
    return one_of(v, types, "tcp, http, https, grpc, grpcs");
}

/* Strait's payload probe (HAProxy's tcp-check send/expect): any string of 1..4096 bytes. */
static json_t *
check_payload(json_t *obj, const struct st_field *f, json_t *v)
{
    (void)obj;
    (void)f;
    return st_check_str_max(v, 4096);
}

/* ------------------------------------------------------------------------ */
/* the healthchecks record                                                    */

/* clang-format off */
#define SECONDS(name, dflt)                                                                        \
    {name, ST_FT_NUMBER, 0, check_seconds, dflt, .schema = "\"between\": [0, 65535]"}
#define COUNTER(name)                                                                              \
    {name, ST_FT_INTEGER, 0, check_counter, "0", .schema = "\"between\": [0, 255]"}
#define STATUSES(dflt)                                                                             \
    {"http_statuses", ST_FT_ARRAY, 0, check_statuses, dflt,                                        \
     .schema = "\"elements\": {\"type\": \"integer\", \"between\": [100, 999]}"}
#define PROBE_TYPE                                                                                 \
    {"type", ST_FT_STRING, 0, check_probe_type, "\"http\"",                                        \
     .schema = "\"one_of\": [\"tcp\", \"http\", \"https\", \"grpc\", \"grpcs\"]"}

static const struct st_field active_healthy[] = {
    SECONDS("interval", "0"),
    STATUSES("[200, 302]"),
    COUNTER("successes"),
    {.name = NULL},
};

static const struct st_field active_unhealthy[] = {
    SECONDS("interval", "0"),
    STATUSES("[429, 404, 500, 501, 502, 503, 504, 505]"),
    COUNTER("tcp_failures"),
    COUNTER("timeouts"),
    COUNTER("http_failures"),
    {.name = NULL},
};

static const struct st_field active[] = {
    PROBE_TYPE,
    SECONDS("timeout", "1"),
    {"concurrency", ST_FT_INTEGER, 0, check_concurrency, "10",
     .schema = "\"between\": [1, 2147483648]"},
    {"http_path", ST_FT_STRING, 0, st_check_path, "\"/\"", .schema = "\"starts_with\": \"/\""},
    {"https_sni", ST_FT_STRING, 0, st_check_sni, NULL, .dp = ST_DP_NONE},
    {"https_verify_certificate", ST_FT_BOOLEAN, ST_FIELD_F_REQUIRED, NULL, "true", .dp = ST_DP_NONE},
    {"headers", ST_FT_MAP, 0, st_check_headers, NULL,
     .schema = "\"keys\": {\"type\": \"string\"}, "
               "\"values\": {\"type\": \"array\", \"elements\": {\"type\": \"string\"}}"},
    {"tcp_send", ST_FT_STRING, 0, check_payload, NULL, .dp = ST_DP_NONE},
    {"tcp_expect", ST_FT_STRING, 0, check_payload, NULL, .dp = ST_DP_NONE},
    {"healthy", ST_FT_RECORD, 0, NULL, NULL, .sub = active_healthy},
    {"unhealthy", ST_FT_RECORD, 0, NULL, NULL, .sub = active_unhealthy},
    {.name = NULL},
};

static const struct st_field passive_healthy[] = {
    STATUSES("[200, 201, 202, 203, 204, 205, 206, 207, 208, 226, "
             "300, 301, 302, 303, 304, 305, 306, 307, 308]"),
    COUNTER("successes"),
    {.name = NULL},
};

static const struct st_field passive_unhealthy[] = {
    STATUSES("[429, 500, 503]"),
    COUNTER("tcp_failures"),
    COUNTER("timeouts"),
    COUNTER("http_failures"),
    {.name = NULL},
};

static const struct st_field passive[] = {
    PROBE_TYPE,
    {"healthy", ST_FT_RECORD, 0, NULL, NULL, .sub = passive_healthy},
    {"unhealthy", ST_FT_RECORD, 0, NULL, NULL, .sub = passive_unhealthy},
    {.name = NULL},
};

static const struct st_field healthchecks[] = {
    {"active", ST_FT_RECORD, 0, NULL, NULL, .sub = active},
    {"passive", ST_FT_RECORD, 0, NULL, NULL, .sub = passive},
    {"threshold", ST_FT_NUMBER, 0, check_threshold, "0", .schema = "\"between\": [0, 100]"},
    {.name = NULL},
};
/* clang-format on */

/* ------------------------------------------------------------------------ */
/* Kong's shorthand fields and entity checks                                  */

/* algorithm least-connections or latency clears hash_on; then a hash_on sent (null is
 * "none") sets the algorithm: "none" round-robin, any other consistent-hashing. On the
 * request's own keys only (a stored upstream is never rewritten again). */
static void
upstream_input(json_t *body)
{
    static const char *const unhashed[] = {"least-connections", "latency", NULL};
    const char *alg = json_string_value(json_object_get(body, "algorithm"));
    json_t *on;

    if (alg != NULL && st_str_in(alg, unhashed)) {
        json_object_set_new(body, "hash_on", json_null());
    }
    on = json_object_get(body, "hash_on");
    if (json_is_null(on)) {
        json_object_set_new(body, "hash_on", json_string("none"));
    } else if (json_is_string(on)) {
        json_object_set_new(body, "algorithm",
                            json_string(strcmp(json_string_value(on), "none") == 0
                                            ? "round-robin"
                                            : "consistent-hashing"));
    }
}

/* Kong's conditional "if <if_field> is <source> then <field> is required". */
static void
need(const json_t *obj, json_t *fields, const char *value, const char *source, const char *field,
     const char *if_field)
{
    if (value != NULL && strcmp(value, source) == 0 && json_is_null(json_object_get(obj, field))) {
        json_object_set_new(fields, field, json_string("required field missing"));
        st_check_entity_err(fields, if_field);
    }
}

/* Kong's distinct check of two fields. */
static void
distinct(const json_t *obj, json_t *fields, const char *a, const char *b)
{
    const char *va = json_string_value(json_object_get(obj, a));
    const char *vb = json_string_value(json_object_get(obj, b));
    char msg[160];

    if (va != NULL && vb != NULL && strcmp(va, vb) == 0) {
        st_snprintf(msg, sizeof(msg), "values of these fields must be distinct: '%s', '%s'", a, b);
        st_check_entity_err(fields, msg);
    }
}

#define IF_ON       "failed conditional validation given value of field 'hash_on'"
#define IF_FALLBACK "failed conditional validation given value of field 'hash_fallback'"

/* Kong's entity_checks, in Kong's order. */
static void
upstream_checks(json_t *obj, json_t *fields, unsigned flags)
{
    /* the fallbacks each hash_on allows (hash_fallback must not repeat hash_on) */
    static const struct {
        const char *on;
        const char *const allowed[10];
        const char *msg;
    } fallbacks[] = {
        {"none", {"none", NULL}, "none"},
        {"cookie", {"none", NULL}, "none"},
        {"consumer",
         {"none", "ip", "header", "cookie", "path", "query_arg", "uri_capture", "sni", "port",
          NULL},
         "none, ip, header, cookie, path, query_arg, uri_capture, sni, port"},
        {"ip",
         {"none", "consumer", "header", "cookie", "path", "query_arg", "uri_capture", "sni", "port",
          NULL},
         "none, consumer, header, cookie, path, query_arg, uri_capture, sni, port"},
        {"path",
         {"none", "consumer", "header", "cookie", "query_arg", "ip", "uri_capture", "sni", "port",
          NULL},
         "none, consumer, header, cookie, query_arg, ip, uri_capture, sni, port"},
        /* Strait's: the fallback is another source, as Kong asks of its own */
        {"sni",
         {"none", "consumer", "ip", "header", "cookie", "path", "query_arg", "uri_capture", "port",
          NULL},
         "none, consumer, ip, header, cookie, path, query_arg, uri_capture, port"},
        {"port",
         {"none", "consumer", "ip", "header", "cookie", "path", "query_arg", "uri_capture", "sni",
          NULL},
         "none, consumer, ip, header, cookie, path, query_arg, uri_capture, sni"},
    };
    const char *on = st_check_field_ok(obj, fields, "hash_on")
                         ? json_string_value(json_object_get(obj, "hash_on"))
                         : NULL;
    const char *fb = st_check_field_ok(obj, fields, "hash_fallback")
                         ? json_string_value(json_object_get(obj, "hash_fallback"))
                         : NULL;

    (void)flags;
    need(obj, fields, on, "header", "hash_on_header", IF_ON);
    need(obj, fields, fb, "header", "hash_fallback_header", IF_FALLBACK);
    need(obj, fields, on, "cookie", "hash_on_cookie", IF_ON);
    need(obj, fields, fb, "cookie", "hash_on_cookie", IF_FALLBACK);
    for (size_t i = 0; on != NULL && fb != NULL && i < ST_ARRAY_SIZE(fallbacks); i++) {
        if (strcmp(on, fallbacks[i].on) == 0 && !st_str_in(fb, fallbacks[i].allowed)) {
            json_object_set_new(fields, "hash_fallback",
                                st_check_errf("expected one of: %s", fallbacks[i].msg));
            st_check_entity_err(fields, IF_ON);
        }
    }
    distinct(obj, fields, "hash_on_header", "hash_fallback_header");
    need(obj, fields, on, "query_arg", "hash_on_query_arg", IF_ON);
    need(obj, fields, fb, "query_arg", "hash_fallback_query_arg", IF_FALLBACK);
    distinct(obj, fields, "hash_on_query_arg", "hash_fallback_query_arg");
    need(obj, fields, on, "uri_capture", "hash_on_uri_capture", IF_ON);
    need(obj, fields, fb, "uri_capture", "hash_fallback_uri_capture", IF_FALLBACK);
    distinct(obj, fields, "hash_on_uri_capture", "hash_fallback_uri_capture");
}

/* ------------------------------------------------------------------------ */
/* the description                                                            */

/* clang-format off */
#define HASH(name)                                                                                 \
    {#name, ST_FT_STRING, 0, check_hash, "\"none\"",                                                \
     .schema = "\"one_of\": [\"none\", \"consumer\", \"ip\", \"header\", \"cookie\", \"path\", "   \
               "\"query_arg\", \"uri_capture\", \"sni\", \"port\"]",                                 \
     .dp = ST_DP_STR, .dp_off = OFF(name)}
#define PARAM(name, check)                                                                         \
    {name, ST_FT_STRING, 0, check, NULL, .dp = ST_DP_NONE}

static const struct st_field fields[] = {
    ST_FIELD_ID(OFF(id)),
    ST_FIELD_CREATED_AT(ST_DP_I64, OFF(created_at_ms)),
    {"name", ST_FT_STRING, ST_FIELD_F_REQUIRED | ST_FIELD_F_UNIQUE | ST_FIELD_F_ENDPOINT,
     check_name, NULL, .dp = ST_DP_STR, .dp_off = OFF(name)},
    ST_FIELD_UPDATED_AT,
    {"algorithm", ST_FT_STRING, 0, check_algorithm, "\"round-robin\"",
     .schema = "\"one_of\": [\"consistent-hashing\", \"least-connections\", \"round-robin\", "
               "\"latency\"]",
     .dp = ST_DP_STR, .dp_off = OFF(algorithm)},
    HASH(hash_on),
    HASH(hash_fallback),
    PARAM("hash_on_header", st_check_header_name),
    PARAM("hash_fallback_header", st_check_header_name),
    PARAM("hash_on_cookie", check_cookie),
    {"hash_on_cookie_path", ST_FT_STRING, 0, st_check_path, "\"/\"",
     .schema = "\"starts_with\": \"/\""},
    PARAM("hash_on_query_arg", check_param),
    PARAM("hash_fallback_query_arg", check_param),
    PARAM("hash_on_uri_capture", check_param),
    PARAM("hash_fallback_uri_capture", check_param),
    {"slots", ST_FT_INTEGER, 0, check_slots, "10000", .schema = "\"between\": [10, 65536]",
     .dp = ST_DP_U32, .dp_off = OFF(slots)},
    {"healthchecks", ST_FT_RECORD, 0, NULL, NULL, .sub = healthchecks, .dp = ST_DP_STR,
     .dp_off = OFF(healthchecks)},
    ST_FIELD_TAGS,
    {"host_header", ST_FT_STRING, 0, st_check_host_port, NULL, .dp = ST_DP_STR,
     .dp_off = OFF(host_header)},
    {"client_certificate", ST_FT_FOREIGN, 0, NULL, NULL, .ref = &st_ent_certificate,
     .pb = "client_certificate_id", .dp = ST_DP_REF, .dp_off = OFF(client_certificate),
     .dp_off2 = ST_DP_NO_OFF},
    {"use_srv_name", ST_FT_BOOLEAN, 0, NULL, "false", .dp = ST_DP_BOOL,
     .dp_off = OFF(use_srv_name)},
    {.name = NULL},
};
/* clang-format on */

#define COND(if_field, value, then_field, then_match)                                              \
    "{\"conditional\": {\"if_field\": \"" if_field "\", \"if_match\": {\"match\": \"^" value       \
    "$\"}, \"then_field\": \"" then_field "\", \"then_match\": " then_match "}}"
#define REQ            "{\"required\": true}"
#define DISTINCT(a, b) "{\"distinct\": [\"" a "\", \"" b "\"]}"

const struct st_entity_desc st_ent_upstream = {
    .kind = ST_ENT_UPSTREAM,
    .name = "upstreams",
    .singular = "upstream",
    .fields = fields,
    .input = upstream_input,
    .checks = upstream_checks,
    /* clang-format off */
    .checks_schema =
        "[" COND("hash_on", "header", "hash_on_header", REQ) ", "
        COND("hash_fallback", "header", "hash_fallback_header", REQ) ", "
        COND("hash_on", "cookie", "hash_on_cookie", REQ) ", "
        COND("hash_fallback", "cookie", "hash_on_cookie", REQ) ", "
        COND("hash_on", "none", "hash_fallback", "{\"one_of\": [\"none\"]}") ", "
        COND("hash_on", "cookie", "hash_fallback", "{\"one_of\": [\"none\"]}") ", "
        COND("hash_on", "consumer", "hash_fallback",
             "{\"one_of\": [\"none\", \"ip\", \"header\", \"cookie\", \"path\", \"query_arg\", "
             "\"uri_capture\", \"sni\", \"port\"]}") ", "
        COND("hash_on", "ip", "hash_fallback",
             "{\"one_of\": [\"none\", \"consumer\", \"header\", \"cookie\", \"path\", "
             "\"query_arg\", \"uri_capture\", \"sni\", \"port\"]}") ", "
        COND("hash_on", "path", "hash_fallback",
             "{\"one_of\": [\"none\", \"consumer\", \"header\", \"cookie\", \"query_arg\", "
             "\"ip\", \"uri_capture\", \"sni\", \"port\"]}") ", "
        COND("hash_on", "sni", "hash_fallback",
             "{\"one_of\": [\"none\", \"consumer\", \"ip\", \"header\", \"cookie\", \"path\", "
             "\"query_arg\", \"uri_capture\", \"port\"]}") ", "
        COND("hash_on", "port", "hash_fallback",
             "{\"one_of\": [\"none\", \"consumer\", \"ip\", \"header\", \"cookie\", \"path\", "
             "\"query_arg\", \"uri_capture\", \"sni\"]}") ", "
        DISTINCT("hash_on_header", "hash_fallback_header") ", "
        COND("hash_on", "query_arg", "hash_on_query_arg", REQ) ", "
        COND("hash_fallback", "query_arg", "hash_fallback_query_arg", REQ) ", "
        DISTINCT("hash_on_query_arg", "hash_fallback_query_arg") ", "
        COND("hash_on", "uri_capture", "hash_on_uri_capture", REQ) ", "
        COND("hash_fallback", "uri_capture", "hash_fallback_uri_capture", REQ) ", "
        DISTINCT("hash_on_uri_capture", "hash_fallback_uri_capture") "]",
    /* clang-format on */
    .dp_size = sizeof(struct st_upstream),
};
