/* snis: Kong 3.x kong/db/schema/entities/snis.lua. A name is typedefs.wildcard_host; "*"
 * alone names the default certificate. Nested under certificates
 * (/certificates/{c}/snis), deleted with their certificate. */
#include <stddef.h>

#include "st_check.h"
#include "st_entity.h"
#include "st_schema.h"

#define OFF(m) offsetof(struct st_sni, m)

/* snis.name: typedefs.wildcard_host ("*" alone names the default certificate). */
static json_t *
check_sni_name(json_t *obj, const struct st_field *f, json_t *v)
{
    json_t *e = st_check_str_max(v, ST_SCHEMA_NAME_MAX);

    (void)obj;
    (void)f;
    return e != NULL ? e : st_check_wildcard_host(v);
}

/* clang-format off */
static const struct st_field fields[] = {
    ST_FIELD_ID(OFF(id)),
    {"name", ST_FT_STRING, ST_FIELD_F_REQUIRED | ST_FIELD_F_UNIQUE | ST_FIELD_F_ENDPOINT,
     check_sni_name, NULL, .dp = ST_DP_STR, .dp_off = OFF(name)},
    ST_FIELD_CREATED_AT(ST_DP_NONE, 0),
    ST_FIELD_UPDATED_AT,
    ST_FIELD_TAGS,
    {"certificate", ST_FT_FOREIGN, ST_FIELD_F_REQUIRED | ST_FIELD_F_PARENT | ST_FIELD_F_CASCADE,
     NULL, NULL, .ref = &st_ent_certificate, .pb = "certificate_id", .dp = ST_DP_REF,
     .dp_off = OFF(certificate), .dp_off2 = OFF(certificate_id)},
    {.name = NULL},
};
/* clang-format on */

const struct st_entity_desc st_ent_sni = {
    .kind = ST_ENT_SNI,
    .name = "snis",
    .singular = "sni",
    .fields = fields,
    .checks_schema = "[]",
    .dp_size = sizeof(struct st_sni),
};
