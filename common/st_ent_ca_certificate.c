/* ca_certificates: Kong 3.x kong/db/schema/entities/ca_certificates.lua. cert_digest is
 * (re)computed from cert on every validation. */
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "st_check.h"
#include "st_entity.h"
#include "st_schema.h"
#include "st_ssl.h"

#define OFF(m) offsetof(struct st_ca_certificate, m)

/* ca_certificates.lua: cert_digest computed on write, then one CA certificate, not
 * expired (skipped for stored entities: the time of writing decided). */
static void
ca_certificate_checks(json_t *obj, json_t *fields, unsigned flags)
{
    struct st_ssl_cert_info info;
    char msg[384];

    if (!st_check_field_ok(obj, fields, "cert") ||
        st_ssl_cert_parse(json_string_value(json_object_get(obj, "cert")), &info, msg,
                          sizeof(msg)) != 0) {
        return;
    }
    json_object_del(fields, "cert_digest");
    json_object_set_new(obj, "cert_digest", json_string(info.digest));
    if (info.n_certs > 1) {
        st_check_entity_err(fields, "please submit only one certificate at a time");
    } else if (!(flags & ST_SCHEMA_F_STORED) && info.not_after < (int64_t)time(NULL)) {
        st_check_entity_err(fields, "certificate expired, \"Not After\" time is in the past");
    } else if (!info.is_ca) {
        st_check_entity_err(fields,
                            "certificate does not appear to be a CA because it is missing the "
                            "\"CA\" basic constraint");
    }
}

/* clang-format off */
static const struct st_field fields[] = {
    ST_FIELD_ID(OFF(id)),
    ST_FIELD_CREATED_AT(ST_DP_NONE, 0),
    ST_FIELD_UPDATED_AT,
    {"cert", ST_FT_STRING, ST_FIELD_F_REQUIRED, st_check_certificate, NULL, .dp = ST_DP_STR,
     .dp_off = OFF(cert)},
    {"cert_digest", ST_FT_STRING, ST_FIELD_F_UNIQUE, NULL, NULL, .dp = ST_DP_STR,
     .dp_off = OFF(cert_digest)},
    ST_FIELD_TAGS,
    {.name = NULL},
};
/* clang-format on */

const struct st_entity_desc st_ent_ca_certificate = {
    .kind = ST_ENT_CA_CERTIFICATE,
    .name = "ca_certificates",
    .singular = "ca_certificate",
    .fields = fields,
    .checks = ca_certificate_checks,
    .checks_schema = "[{\"custom_entity_check\": {\"field_sources\": [\"cert\"]}}, "
                     "{\"custom_entity_check\": {\"field_sources\": "
                     "[\"cert\", \"cert_digest\"]}}]",
    .dp_size = sizeof(struct st_ca_certificate),
};
