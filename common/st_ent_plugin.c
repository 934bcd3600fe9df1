/* plugins: Kong 3.x kong/db/schema/entities/plugins.lua (issue 18). The config record is
 * abstract: its fields are the plugin's own (st_plugin.h), chosen by `name` and checked
 * by the same record walk as every other record; `protocols` defaults to the plugin's
 * own default. Scoped by route, service, both or neither (global), nested under both
 * (/routes/{r}/plugins, /services/{s}/plugins), deleted with either; unique per
 * (name, route, service, consumer) as Kong's cache_key.
 *
 * Strait differences, on purpose: there are no consumers in stream (no auth plugins), so
 * a `consumer` is refused with a message saying so; a plugin this process does not
 * enable is refused with Kong's message (`plugins` key). Kong's protocol checks against
 * the scope's routes are the admin API's (cp_admin_entity.c), as they are Kong's DAO's. */
#include <stddef.h>
#include <string.h>

#include "st_check.h"
#include "st_entity.h"
#include "st_plugin.h"

#define OFF(m) offsetof(struct st_plugin, m)

#define MSG_CONSUMER                                                                               \
    "a plugin cannot be scoped to a consumer: Strait proxies streams, which have no "              \
    "consumers"

static json_t *
check_name(json_t *obj, const struct st_field *f, json_t *v)
{
    json_t *e = st_check_str_max(v, 256);

    (void)obj;
    (void)f;
    if (e == NULL && st_plugin_enabled(json_string_value(v)) == NULL) {
        e = st_check_errf(ST_PLUGIN_NOT_ENABLED_FMT, json_string_value(v));
    }
    return e;
}

static json_t *
check_consumer(json_t *obj, const struct st_field *f, json_t *v)
{
    (void)obj;
    (void)f;
    (void)v;
    return json_string(MSG_CONSUMER);
}

/* config: the named plugin's record (nothing to check while the name is wrong: its own
 * error says why) */
static json_t *
check_config(json_t *obj, const struct st_field *f, json_t *v)
{
    const struct st_plugin_desc *p =
        st_plugin_enabled(json_string_value(json_object_get(obj, "name")));
    struct st_field rec = {f->name, ST_FT_RECORD, 0, NULL, NULL, .sub = NULL};

    if (p == NULL) {
        return json_is_object(v) ? NULL : json_string("expected a record");
    }
    rec.sub = p->config;
    return st_check_of(&rec)(obj, &rec, v);
}

static json_t *
check_protocols(json_t *obj, const struct st_field *f, json_t *v)
{
    return st_check_string_set(obj, f->name, v, st_check_kong_protocol);
}

/* the plugin's own default protocols when none are given; an absent or null config is
 * the plugin's defaults */
static bool
plugin_shorthand(json_t *obj, json_t *fields)
{
    const struct st_plugin_desc *p =
        st_plugin_enabled(json_string_value(json_object_get(obj, "name")));

    (void)fields;
    if (p != NULL && json_object_get(obj, "protocols") == NULL) {
        json_object_set_new(obj, "protocols", json_loads(p->protocols_default, 0, NULL));
    }
    if (json_is_null(json_object_get(obj, "config"))) {
        json_object_set_new(obj, "config", json_object());
    }
    return false;
}

static void
plugin_checks(json_t *obj, json_t *fields, unsigned flags)
{
    const struct st_plugin_desc *p =
        st_plugin_enabled(json_string_value(json_object_get(obj, "name")));

    if (p != NULL && p->checks != NULL && json_object_get(fields, "config") == NULL &&
        json_is_object(json_object_get(obj, "config"))) {
        p->checks(obj, fields, flags);
    }
}

static const char *const unique[] = {"name", "route", "service", "consumer", NULL};

/* clang-format off */
static const struct st_field fields[] = {
    ST_FIELD_ID(OFF(id)),
    {"name", ST_FT_STRING, ST_FIELD_F_REQUIRED, check_name, NULL, .dp = ST_DP_STR,
     .dp_off = OFF(name)},
    {"instance_name", ST_FT_STRING, ST_FIELD_F_UNIQUE | ST_FIELD_F_ENDPOINT, st_check_utf8_name,
     NULL, .dp = ST_DP_STR, .dp_off = OFF(instance_name)},
    ST_FIELD_CREATED_AT(ST_DP_I64, OFF(created_at_ms)),
    ST_FIELD_UPDATED_AT,
    {"route", ST_FT_FOREIGN, ST_FIELD_F_PARENT | ST_FIELD_F_CASCADE, NULL, NULL,
     .ref = &st_ent_route, .pb = "route_id", .dp = ST_DP_REF, .dp_off = OFF(route),
     .dp_off2 = OFF(route_id)},
    {"service", ST_FT_FOREIGN, ST_FIELD_F_PARENT | ST_FIELD_F_CASCADE, NULL, NULL,
     .ref = &st_ent_service, .pb = "service_id", .dp = ST_DP_REF, .dp_off = OFF(service),
     .dp_off2 = OFF(service_id)},
    {"consumer", ST_FT_STRING, ST_FIELD_F_NO_SNAP, check_consumer, NULL, .dp = ST_DP_NONE},
    {"config", ST_FT_RECORD, ST_FIELD_F_REQUIRED, check_config, NULL,
     .schema = "\"abstract\": true", .dp = ST_DP_STR, .dp_off = OFF(config)},
    {"protocols", ST_FT_SET, ST_FIELD_F_REQUIRED, check_protocols,
     "[\"grpc\", \"grpcs\", \"http\", \"https\"]",
     .schema = "\"elements\": {\"type\": \"string\", \"one_of\": [\"grpc\", \"grpcs\", "
               "\"http\", \"https\", \"tcp\", \"tls\", \"tls_passthrough\", \"udp\"]}",
     .dp = ST_DP_PROTO, .dp_off = OFF(protocols)},
    {"enabled", ST_FT_BOOLEAN, ST_FIELD_F_REQUIRED, NULL, "true", .dp = ST_DP_BOOL,
     .dp_off = OFF(enabled)},
    ST_FIELD_TAGS,
    {.name = NULL},
};
/* clang-format on */

const struct st_entity_desc st_ent_plugin = {
    .kind = ST_ENT_PLUGIN,
    .name = "plugins",
    .singular = "plugin",
    .fields = fields,
    .unique = unique,
    .shorthand = plugin_shorthand,
    .checks = plugin_checks,
    .checks_schema = "[]",
    .dp_size = sizeof(struct st_plugin),
};
