/* targets: Kong 3.x kong/db/schema/entities/targets.lua and its DAO
 * (kong/db/dao/targets.lua). Only under their upstream (/upstreams/{u}/targets), unique
 * per (upstream, target), deleted with their upstream. `target` is normalised as Kong's
 * DAO does (format_host with port 8000 when none is given) wherever it is written. */
#include <stddef.h>

#include "st_check.h"
#include "st_entity.h"

#define OFF(m) offsetof(struct st_target, m)

#define TARGET_DEFAULT_PORT 8000

/* targets.target: host[:port], stored as Kong's DAO formats it. Kong's admin API message
 * (the DAO's, which runs first) in every path. */
static json_t *
check_target(json_t *obj, const struct st_field *f, json_t *v)
{
    char out[600];
    json_t *e = st_check_str_max(v, 512);

    if (e != NULL) {
        return e;
    }
    if (st_check_host_format(json_string_value(v), TARGET_DEFAULT_PORT, out, sizeof(out)) != 0) {
        return json_string("Invalid target; not a valid hostname or ip address");
    }
    json_object_set_new(obj, f->name, json_string(out));
    return NULL;
}

static json_t *
check_weight(json_t *obj, const struct st_field *f, json_t *v)
{
    return st_check_int_range(obj, f->name, v, 0, 65535);
}

static const char *const unique[] = {"upstream", "target", NULL};

/* clang-format off */
static const struct st_field fields[] = {
    ST_FIELD_ID(OFF(id)),
    ST_FIELD_CREATED_AT(ST_DP_I64, OFF(created_at_ms)),
    ST_FIELD_UPDATED_AT,
    {"upstream", ST_FT_FOREIGN, ST_FIELD_F_REQUIRED | ST_FIELD_F_PARENT | ST_FIELD_F_CASCADE,
     NULL, NULL, .ref = &st_ent_upstream, .pb = "upstream_id", .dp = ST_DP_REF,
     .dp_off = OFF(upstream), .dp_off2 = OFF(upstream_id)},
    {"target", ST_FT_STRING, ST_FIELD_F_REQUIRED | ST_FIELD_F_ENDPOINT, check_target, NULL,
     .dp = ST_DP_STR, .dp_off = OFF(target)},
    {"weight", ST_FT_INTEGER, 0, check_weight, "100", .schema = "\"between\": [0, 65535]",
     .dp = ST_DP_U32, .dp_off = OFF(weight)},
    ST_FIELD_TAGS,
    {.name = NULL},
};
/* clang-format on */

const struct st_entity_desc st_ent_target = {
    .kind = ST_ENT_TARGET,
    .name = "targets",
    .singular = "target",
    .fields = fields,
    .unique = unique,
    .nested_only = true,
    .checks_schema = "[]",
    .dp_size = sizeof(struct st_target),
};
