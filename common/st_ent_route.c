/* routes: Kong 3.x kong/db/schema/entities/routes.lua and the stream subschema of
 * routes_subschemas.lua, as Strait takes them.
 *
 * Strait differences, on purpose: protocols defaults to ["tcp"] (Kong's http defaults
 * would make every default route invalid); http, https, grpc, grpcs are refused ("'http'
 * is not supported: Strait proxies tcp") and udp is "not supported yet"; service is kept
 * as {"id": "<uuid>"} (other keys of it dropped); Kong's HTTP matching fields (methods,
 * hosts, paths, headers) are known and must stay null. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "st_check.h"
#include "st_cidr.h"
#include "st_entity.h"
#include "st_str.h"

#define OFF(m) offsetof(struct st_route, m)

#define MSG_STREAM_FORBIDDEN                                                                       \
    "cannot set '%s' when 'protocols' is 'tcp', 'tls', 'tls_passthrough' or 'udp'"
#define MSG_MUST_SET_ONE                                                                           \
    "must set one of 'sources', 'destinations', 'snis' when 'protocols' is 'tcp', 'tls' or 'udp'"
#define MSG_MUST_SET_SNIS "must set snis when 'protocols' is 'tls_passthrough'"
#define MSG_SNIS_ONLY                                                                              \
    "'snis' can only be set when 'protocols' is 'grpcs', 'https', 'tls' or 'tls_passthrough'"
#define MSG_AT_LEAST_IP_PORT "at least one of these fields must be non-empty: 'ip', 'port'"

/* Refused until later issues build them. */
static const char *const route_later[] = {"udp", NULL};

/* ------------------------------------------------------------------------ */
/* protocols                                                                  */

/* routes.protocols: mutually_exclusive_subsets, listing the sets in the order met. */
static json_t *
protocols_exclusive(const json_t *v)
{
    static const char *const groups[][4] = {
        {"http", "https", NULL},
        {"tcp", "tls", "udp", NULL},
        {"tls_passthrough", NULL},
        {"grpc", "grpcs", NULL},
    };
    static const char *const names[] = {
        "('http', 'https')",
        "('tcp', 'tls', 'udp')",
        "('tls_passthrough')",
        "('grpc', 'grpcs')",
    };
    bool seen[4] = {false};
    int n = 0;
    char buf[256] = "these sets are mutually exclusive: ";
    size_t i;
    json_t *el;

    json_array_foreach(v, i, el)
    {
        for (int g = 0; g < 4; g++) {
            if (!seen[g] && st_str_in(json_string_value(el), groups[g])) {
                size_t len = strlen(buf);

                seen[g] = true;
                snprintf(buf + len, sizeof(buf) - len, "%s%s", n++ > 0 ? ", " : "", names[g]);
            }
        }
    }
    return n > 1 ? json_string(buf) : NULL;
}

static json_t *
check_protocols(json_t *obj, const struct st_field *f, json_t *v)
{
    json_t *e = st_check_string_set(obj, f->name, v, st_check_kong_protocol);
    size_t i;
    json_t *el;

    if (e != NULL) {
        return e;
    }
    v = json_object_get(obj, f->name);
    if (json_array_size(v) == 0) {
        return json_string("length must be at least 1");
    }
    e = protocols_exclusive(v);
    if (e != NULL) {
        return e;
    }
    json_array_foreach(v, i, el)
    {
        e = st_check_protocol_unsupported(json_string_value(el), route_later);
        if (e != NULL) {
            return e;
        }
    }
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* sources, destinations, snis                                                */

/* an endpoint's ip: an address or a CIDR block */
static json_t *
check_cidr(json_t *obj, const struct st_field *f, json_t *v)
{
    struct st_cidr cidr;
    json_t *e = st_check_str(v);

    (void)obj;
    (void)f;
    if (e == NULL && st_cidr_parse(json_string_value(v), &cidr) != 0) {
        e = st_check_errf("invalid ip or cidr range: '%s'", json_string_value(v));
    }
    return e;
}

/* clang-format off */
static const struct st_field endpoint_fields[] = {
    {"ip", ST_FT_STRING, 0, check_cidr, NULL, .dp = ST_DP_NONE},
    {"port", ST_FT_INTEGER, 0, st_check_port, NULL, .schema = "\"between\": [0, 65535]"},
    {.name = NULL},
};
/* clang-format on */

/* One {ip, port} record of sources/destinations; missing keys become null. */
static json_t *
check_endpoint(json_t *rec)
{
    json_t *errs = st_check_record(rec, endpoint_fields);

    if (!json_is_object(errs)) {
        return errs;
    }
    if (!st_check_is_nonempty(json_object_get(rec, "ip")) &&
        !st_check_is_nonempty(json_object_get(rec, "port"))) {
        st_check_entity_err(errs, MSG_AT_LEAST_IP_PORT);
    }
    if (json_object_size(errs) == 0) {
        json_decref(errs);
        return NULL;
    }
    return errs;
}

static json_t *
check_endpoints(json_t *obj, const struct st_field *f, json_t *v)
{
    (void)obj;
    (void)f;
    return st_check_array(v, "a set", check_endpoint);
}

static json_t *
check_snis(json_t *obj, const struct st_field *f, json_t *v)
{
    return st_check_string_set(obj, f->name, v, st_check_wildcard_host);
}

/* ------------------------------------------------------------------------ */
/* entity checks                                                              */

/* True when protocols is a non-empty array of strings, each in list (in) or each not. */
static bool
protocols_each(const json_t *protocols, const char *const *list, bool in)
{
    size_t i;
    json_t *el;

    if (!json_is_array(protocols) || json_array_size(protocols) == 0) {
        return false;
    }
    json_array_foreach(protocols, i, el)
    {
        if (!json_is_string(el) || st_str_in(json_string_value(el), list) != in) {
            return false;
        }
    }
    return true;
}

static void
route_checks(json_t *obj, json_t *fields, unsigned flags)
{
    static const char *const tls_like[] = {"grpcs", "https", "tls", "tls_passthrough", NULL};
    static const char *const l4[] = {"tcp", "tls", "udp", NULL};
    static const char *const l4_all[] = {"tcp", "tls", "udp", "tls_passthrough", NULL};
    static const char *const passthrough[] = {"tls_passthrough", NULL};
    static const char *const http_only[] = {"methods", "hosts", "paths", "headers", NULL};
    const json_t *protocols = json_object_get(obj, "protocols");
    const json_t *first = json_array_get(protocols, 0);

    (void)flags;
    /* routes.lua entity_checks, then the stream subschema's (routes_subschemas.lua). */
    if (protocols_each(protocols, tls_like, false) &&
        st_check_is_nonempty(json_object_get(obj, "snis"))) {
        json_object_set_new(fields, "snis", json_string("length must be 0"));
        st_check_entity_err(fields, MSG_SNIS_ONLY);
    }
    if (json_is_string(first) && st_str_in(json_string_value(first), l4_all)) {
        for (int i = 0; http_only[i] != NULL; i++) {
            if (!json_is_null(json_object_get(obj, http_only[i]))) {
                json_object_set_new(fields, http_only[i],
                                    st_check_errf(MSG_STREAM_FORBIDDEN, http_only[i]));
            }
        }
    }
    if (protocols_each(protocols, l4, true) &&
        !st_check_is_nonempty(json_object_get(obj, "sources")) &&
        !st_check_is_nonempty(json_object_get(obj, "destinations")) &&
        !st_check_is_nonempty(json_object_get(obj, "snis"))) {
        st_check_entity_err(fields, MSG_MUST_SET_ONE);
    }
    if (protocols_each(protocols, passthrough, true) &&
        !st_check_is_nonempty(json_object_get(obj, "snis"))) {
        st_check_entity_err(fields, MSG_MUST_SET_SNIS);
    }
}

/* ------------------------------------------------------------------------ */
/* the description                                                            */

#define HTTP_ONLY (ST_FIELD_F_HTTP_ONLY | ST_FIELD_F_NO_SNAP)

/* clang-format off */
static const struct st_field fields[] = {
    ST_FIELD_ID(OFF(id)),
    {"name", ST_FT_STRING, ST_FIELD_F_UNIQUE | ST_FIELD_F_ENDPOINT, st_check_utf8_name, NULL,
     .dp = ST_DP_STR, .dp_off = OFF(name)},
    ST_FIELD_CREATED_AT(ST_DP_I64, OFF(created_at_ms)),
    ST_FIELD_UPDATED_AT,
    {"protocols", ST_FT_SET, ST_FIELD_F_REQUIRED, check_protocols, "[\"tcp\"]",
     .schema = "\"len_min\": 1, \"required\": null, "
               "\"elements\": {\"type\": \"string\", "
               "\"one_of\": [\"tcp\", \"tls\", \"tls_passthrough\"]}, "
               "\"mutually_exclusive_subsets\": [[\"tcp\", \"tls\"], [\"tls_passthrough\"]], "
               "\"default\": null",
     .dp = ST_DP_PROTO, .dp_off = OFF(protocols)},
    {"sources", ST_FT_RECORDS, 0, check_endpoints, NULL, .sub = endpoint_fields,
     .schema = "\"entity_checks\": [{\"at_least_one_of\": [\"ip\", \"port\"]}]",
     .dp = ST_DP_ENDPOINTS, .dp_off = OFF(sources), .dp_off2 = OFF(n_sources)},
    {"destinations", ST_FT_RECORDS, 0, check_endpoints, NULL, .sub = endpoint_fields,
     .schema = "\"entity_checks\": [{\"at_least_one_of\": [\"ip\", \"port\"]}]",
     .dp = ST_DP_ENDPOINTS, .dp_off = OFF(destinations), .dp_off2 = OFF(n_destinations)},
    {"snis", ST_FT_SET, 0, check_snis, NULL, .dp = ST_DP_STRS, .dp_off = OFF(snis),
     .dp_off2 = OFF(n_snis)},
    {"preserve_host", ST_FT_BOOLEAN, ST_FIELD_F_REQUIRED, NULL, "false", .dp = ST_DP_BOOL,
     .dp_off = OFF(preserve_host)},
    {"service", ST_FT_FOREIGN, ST_FIELD_F_PARENT, NULL, NULL, .ref = &st_ent_service,
     .pb = "service_id", .dp = ST_DP_REF, .dp_off = OFF(service), .dp_off2 = OFF(service_id)},
    ST_FIELD_TAGS,
    /* HTTP matching fields: Kong's, always null for the stream protocols */
    {"methods", ST_FT_SET, HTTP_ONLY, NULL, NULL, .dp = ST_DP_NONE},
    {"hosts", ST_FT_ARRAY, HTTP_ONLY, NULL, NULL, .dp = ST_DP_NONE},
    {"paths", ST_FT_ARRAY, HTTP_ONLY, NULL, NULL, .dp = ST_DP_NONE},
    {"headers", ST_FT_MAP, HTTP_ONLY, NULL, NULL,
     .schema = "\"keys\": {\"type\": \"string\"}, "
               "\"values\": {\"type\": \"array\", \"elements\": {\"type\": \"string\"}}"},
    {.name = NULL},
};
/* clang-format on */

const struct st_entity_desc st_ent_route = {
    .kind = ST_ENT_ROUTE,
    .name = "routes",
    .singular = "route",
    .fields = fields,
    .checks = route_checks,
    .checks_schema =
        "[{\"conditional\": {\"if_field\": \"protocols\", \"if_match\": {\"elements\": "
        "{\"type\": \"string\", \"not_one_of\": [\"tls\", \"tls_passthrough\"]}}, "
        "\"then_field\": \"snis\", \"then_match\": {\"len_eq\": 0}, \"then_err\": "
        "\"'snis' can only be set when 'protocols' is 'grpcs', 'https', 'tls' or "
        "'tls_passthrough'\"}}, "
        "{\"conditional_at_least_one_of\": {\"if_field\": \"protocols\", \"if_match\": "
        "{\"elements\": {\"type\": \"string\", \"one_of\": [\"tcp\", \"tls\"]}}, "
        "\"then_at_least_one_of\": [\"sources\", \"destinations\", \"snis\"], \"then_err\": "
        "\"must set one of %s when 'protocols' is 'tcp', 'tls' or 'udp'\"}}, "
        "{\"conditional_at_least_one_of\": {\"if_field\": \"protocols\", \"if_match\": "
        "{\"elements\": {\"type\": \"string\", \"one_of\": [\"tls_passthrough\"]}}, "
        "\"then_at_least_one_of\": [\"snis\"], \"then_err\": "
        "\"must set snis when 'protocols' is 'tls_passthrough'\"}}]",
    .dp_size = sizeof(struct st_route),
};
