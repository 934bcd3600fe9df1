/* GET /schemas/{entity}: each entity's schema in Kong's JSON shape (kong/api/routes/kong.lua
 * "/schemas/:name", which serialises kong/db/schema/entities/<entity>.lua without its
 * functions and without the schemas of foreign fields):
 *   {"fields": [{"id": {"type": "string", "uuid": true, "auto": true}}, ...],
 *    "entity_checks": [...]}
 *
 * The field list is st_schema's (st_schema_field_names: the fields it accepts, in its
 * output order); this file only adds each field's description. The descriptions state what
 * st_schema accepts, which is Kong's schema narrowed to what Strait proxies: protocol
 * one_of lists only the protocols Strait takes, and defaults are Strait's (services'
 * protocol "tcp", routes' protocols ["tcp"]). A field st_schema knows but this table
 * does not describe makes the whole answer fail (logged), so the two cannot drift
 * silently; tests/system/test_admin_meta.py checks the descriptions against
 * POST /schemas/{entity}/validate and the entities the CP stores. */
#include <string.h>

#include "cp_admin_int.h"
#include "st_entity.h"
#include "st_log.h"
#include "st_schema.h"

struct field_desc {
    enum st_entity_kind k;
    const char *name;
    const char *json; /* the field's description, JSON text */
};

#define D_UUID      "{\"type\": \"string\", \"uuid\": true, \"auto\": true}"
#define D_TIMESTAMP "{\"type\": \"integer\", \"timestamp\": true, \"auto\": true}"
#define D_TAGS      "{\"type\": \"set\", \"elements\": {\"type\": \"string\", \"required\": true}}"
#define D_TIMEOUT   "{\"type\": \"integer\", \"default\": 60000, \"between\": [1, 2147483646]}"
#define D_PORT_REC  "{\"type\": \"integer\", \"between\": [0, 65535]}"
#define D_ENDPOINTS                                                                                \
    "{\"type\": \"set\", \"elements\": {\"type\": \"record\", \"fields\": ["                       \
    "{\"ip\": {\"type\": \"string\"}}, {\"port\": " D_PORT_REC "}], "                              \
    "\"entity_checks\": [{\"at_least_one_of\": [\"ip\", \"port\"]}]}}"

static const struct field_desc descs[] = {
    /* services.lua */
    {ST_ENT_SERVICE, "id", D_UUID},
    {ST_ENT_SERVICE, "name", "{\"type\": \"string\", \"unique\": true}"},
    {ST_ENT_SERVICE, "created_at", D_TIMESTAMP},
    {ST_ENT_SERVICE, "updated_at", D_TIMESTAMP},
    {ST_ENT_SERVICE, "protocol",
     "{\"type\": \"string\", \"one_of\": [\"tcp\", \"tls\"], \"required\": true, "
     "\"default\": \"tcp\"}"},
    {ST_ENT_SERVICE, "host", "{\"type\": \"string\", \"required\": true}"},
    {ST_ENT_SERVICE, "port",
     "{\"type\": \"integer\", \"between\": [0, 65535], \"required\": true, \"default\": 80}"},
    {ST_ENT_SERVICE, "path", "{\"type\": \"string\", \"starts_with\": \"/\"}"},
    {ST_ENT_SERVICE, "retries", "{\"type\": \"integer\", \"default\": 5, \"between\": [0, 32767]}"},
    {ST_ENT_SERVICE, "connect_timeout", D_TIMEOUT},
    {ST_ENT_SERVICE, "write_timeout", D_TIMEOUT},
    {ST_ENT_SERVICE, "read_timeout", D_TIMEOUT},
    {ST_ENT_SERVICE, "tags", D_TAGS},
    {ST_ENT_SERVICE, "enabled", "{\"type\": \"boolean\", \"required\": true, \"default\": true}"},
    {ST_ENT_SERVICE, "client_certificate",
     "{\"type\": \"foreign\", \"reference\": \"certificates\"}"},
    {ST_ENT_SERVICE, "tls_verify", "{\"type\": \"boolean\"}"},
    {ST_ENT_SERVICE, "tls_verify_depth", "{\"type\": \"integer\", \"between\": [0, 64]}"},
    {ST_ENT_SERVICE, "ca_certificates",
     "{\"type\": \"array\", \"elements\": {\"type\": \"string\", \"uuid\": true}}"},

    /* routes.lua, routes_subschemas.lua */
    {ST_ENT_ROUTE, "id", D_UUID},
    {ST_ENT_ROUTE, "name", "{\"type\": \"string\", \"unique\": true}"},
    {ST_ENT_ROUTE, "created_at", D_TIMESTAMP},
    {ST_ENT_ROUTE, "updated_at", D_TIMESTAMP},
    {ST_ENT_ROUTE, "protocols",
     "{\"type\": \"set\", \"len_min\": 1, \"required\": true, "
     "\"elements\": {\"type\": \"string\", \"one_of\": [\"tcp\", \"tls\", \"tls_passthrough\"]}, "
     "\"mutually_exclusive_subsets\": [[\"tcp\", \"tls\"], [\"tls_passthrough\"]], "
     "\"default\": [\"tcp\"]}"},
    {ST_ENT_ROUTE, "sources", D_ENDPOINTS},
    {ST_ENT_ROUTE, "destinations", D_ENDPOINTS},
    {ST_ENT_ROUTE, "snis", "{\"type\": \"set\", \"elements\": {\"type\": \"string\"}}"},
    {ST_ENT_ROUTE, "preserve_host",
     "{\"type\": \"boolean\", \"required\": true, \"default\": false}"},
    {ST_ENT_ROUTE, "service", "{\"type\": \"foreign\", \"reference\": \"services\"}"},
    {ST_ENT_ROUTE, "tags", D_TAGS},
    /* HTTP matching fields: Kong's, always null for the stream protocols */
    {ST_ENT_ROUTE, "methods", "{\"type\": \"set\", \"elements\": {\"type\": \"string\"}}"},
    {ST_ENT_ROUTE, "hosts", "{\"type\": \"array\", \"elements\": {\"type\": \"string\"}}"},
    {ST_ENT_ROUTE, "paths", "{\"type\": \"array\", \"elements\": {\"type\": \"string\"}}"},
    {ST_ENT_ROUTE, "headers",
     "{\"type\": \"map\", \"keys\": {\"type\": \"string\"}, "
     "\"values\": {\"type\": \"array\", \"elements\": {\"type\": \"string\"}}}"},

    /* certificates.lua */
    {ST_ENT_CERTIFICATE, "id", D_UUID},
    {ST_ENT_CERTIFICATE, "created_at", D_TIMESTAMP},
    {ST_ENT_CERTIFICATE, "updated_at", D_TIMESTAMP},
    {ST_ENT_CERTIFICATE, "cert", "{\"type\": \"string\", \"required\": true}"},
    {ST_ENT_CERTIFICATE, "key", "{\"type\": \"string\", \"required\": true, \"encrypted\": true}"},
    {ST_ENT_CERTIFICATE, "cert_alt", "{\"type\": \"string\"}"},
    {ST_ENT_CERTIFICATE, "key_alt", "{\"type\": \"string\", \"encrypted\": true}"},
    {ST_ENT_CERTIFICATE, "tags", D_TAGS},

    /* snis.lua */
    {ST_ENT_SNI, "id", D_UUID},
    {ST_ENT_SNI, "name", "{\"type\": \"string\", \"required\": true, \"unique\": true}"},
    {ST_ENT_SNI, "created_at", D_TIMESTAMP},
    {ST_ENT_SNI, "updated_at", D_TIMESTAMP},
    {ST_ENT_SNI, "tags", D_TAGS},
    {ST_ENT_SNI, "certificate",
     "{\"type\": \"foreign\", \"reference\": \"certificates\", \"required\": true}"},

    /* ca_certificates.lua */
    {ST_ENT_CA_CERTIFICATE, "id", D_UUID},
    {ST_ENT_CA_CERTIFICATE, "created_at", D_TIMESTAMP},
    {ST_ENT_CA_CERTIFICATE, "updated_at", D_TIMESTAMP},
    {ST_ENT_CA_CERTIFICATE, "cert", "{\"type\": \"string\", \"required\": true}"},
    {ST_ENT_CA_CERTIFICATE, "cert_digest", "{\"type\": \"string\", \"unique\": true}"},
    {ST_ENT_CA_CERTIFICATE, "tags", D_TAGS},
};

#define C_PROTOCOL_NULL(field, list)                                                               \
    "{\"conditional\": {\"if_field\": \"protocol\", \"if_match\": {\"" list "}, "                  \
    "\"then_field\": \"" field "\", \"then_match\": {\"eq\": null}}}"
#define C_NOT_TLS "not_one_of\": [\"tls\"]"

/* The entity-level rules st_schema applies, in Kong's entity_checks form. */
static const char *const checks[ST_ENT__COUNT] = {
    [ST_ENT_SERVICE] =
        "[" C_PROTOCOL_NULL("path", "one_of\": [\"tcp\", \"tls\"]") ", " C_PROTOCOL_NULL(
            "client_certificate",
            C_NOT_TLS) ", " C_PROTOCOL_NULL("tls_verify",
                                            C_NOT_TLS) ", " C_PROTOCOL_NULL("tls_verify_depth",
                                                                            C_NOT_TLS) ","
                                                                                       " " C_PROTOCOL_NULL(
                                                                                           "ca_"
                                                                                           "certifi"
                                                                                           "cates",
                                                                                           C_NOT_TLS) "]",
    [ST_ENT_ROUTE] =
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
    [ST_ENT_CERTIFICATE] = "[{\"mutually_required\": [\"cert_alt\", \"key_alt\"]}, "
                           "{\"custom_entity_check\": {\"field_sources\": [\"cert\", \"key\"]}}, "
                           "{\"custom_entity_check\": {\"field_sources\": "
                           "[\"cert_alt\", \"key_alt\"]}}, "
                           "{\"custom_entity_check\": {\"field_sources\": "
                           "[\"cert\", \"cert_alt\"]}}]",
    [ST_ENT_SNI] = "[]",
    [ST_ENT_CA_CERTIFICATE] = "[{\"custom_entity_check\": {\"field_sources\": [\"cert\"]}}, "
                              "{\"custom_entity_check\": {\"field_sources\": "
                              "[\"cert\", \"cert_digest\"]}}]",
};

static const char *
desc_of(enum st_entity_kind k, const char *name)
{
    for (size_t i = 0; i < sizeof(descs) / sizeof(descs[0]); i++) {
        if (descs[i].k == k && strcmp(descs[i].name, name) == 0) {
            return descs[i].json;
        }
    }
    return NULL;
}

json_t *
cp_admin__schema_describe(enum st_entity_kind k)
{
    const char *const *names = st_schema_field_names(k);
    json_t *fields = json_array();
    json_t *ec;
    json_error_t jerr;

    for (; *names != NULL; names++) {
        const char *text = desc_of(k, *names);
        json_t *d = text != NULL ? json_loads(text, 0, &jerr) : NULL;

        if (d == NULL) {
            st_log(ST_LOG_ERR, 0, "admin: no schema description for %s.%s", st_entity_name(k),
                   *names);
            json_decref(fields);
            return NULL;
        }
        json_array_append_new(fields, json_pack("{s:o}", *names, d));
    }
    ec = json_loads(checks[k], 0, &jerr);
    if (ec == NULL) {
        st_log(ST_LOG_ERR, 0, "admin: bad entity_checks for %s: %s", st_entity_name(k), jerr.text);
        json_decref(fields);
        return NULL;
    }
    return json_pack("{s:o,s:o}", "fields", fields, "entity_checks", ec);
}
