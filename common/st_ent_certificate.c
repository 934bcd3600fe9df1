/* certificates: Kong 3.x kong/db/schema/entities/certificates.lua (typedefs.certificate
 * and typedefs.key, checked with OpenSSL through st_ssl). The admin API's `snis`
 * shorthand is cp_admin's, not a field. */
#include <stddef.h>

#include "st_check.h"
#include "st_entity.h"
#include "st_ssl.h"

#define OFF(m) offsetof(struct st_certificate, m)

#define MSG_ALT_MUTUALLY_REQUIRED "all or none of these fields must be set: 'cert_alt', 'key_alt'"
#define MSG_ALT_SAME_TYPE                                                                          \
    "certificate and alternative certificate need to have different type (e.g. RSA and "           \
    "ECDSA), the provided certificates were both of the same type"

/* certificates.lua entity_checks, each run only when its fields are valid. */
static void
certificate_checks(json_t *obj, json_t *fields, unsigned flags)
{
    const char *cert = json_string_value(json_object_get(obj, "cert"));
    const char *cert_alt = json_string_value(json_object_get(obj, "cert_alt"));
    bool has_cert_alt = !json_is_null(json_object_get(obj, "cert_alt"));
    bool has_key_alt = !json_is_null(json_object_get(obj, "key_alt"));
    struct st_ssl_cert_info a;
    struct st_ssl_cert_info b;
    char msg[384];

    (void)flags;
    if (has_cert_alt != has_key_alt) {
        st_check_entity_err(fields, MSG_ALT_MUTUALLY_REQUIRED);
    }
    if (st_check_field_ok(obj, fields, "cert") && st_check_field_ok(obj, fields, "key") &&
        !st_ssl_key_matches(cert, json_string_value(json_object_get(obj, "key")))) {
        st_check_entity_err(fields, "certificate does not match key");
    }
    if (st_check_field_ok(obj, fields, "cert_alt") && st_check_field_ok(obj, fields, "key_alt") &&
        !st_ssl_key_matches(cert_alt, json_string_value(json_object_get(obj, "key_alt")))) {
        st_check_entity_err(fields, "alternative certificate does not match key");
    }
    if (st_check_field_ok(obj, fields, "cert") && st_check_field_ok(obj, fields, "cert_alt") &&
        st_ssl_cert_parse(cert, &a, msg, sizeof(msg)) == 0 &&
        st_ssl_cert_parse(cert_alt, &b, msg, sizeof(msg)) == 0 && a.key_type == b.key_type) {
        st_check_entity_err(fields, MSG_ALT_SAME_TYPE);
    }
}

/* clang-format off */
static const struct st_field fields[] = {
    ST_FIELD_ID(OFF(id)),
    ST_FIELD_CREATED_AT(ST_DP_I64, OFF(created_at_ms)),
    ST_FIELD_UPDATED_AT,
    {"cert", ST_FT_STRING, ST_FIELD_F_REQUIRED, st_check_certificate, NULL, .dp = ST_DP_STR,
     .dp_off = OFF(cert)},
    {"key", ST_FT_STRING, ST_FIELD_F_REQUIRED | ST_FIELD_F_SECRET, st_check_key, NULL,
     .dp = ST_DP_STR, .dp_off = OFF(key)},
    {"cert_alt", ST_FT_STRING, 0, st_check_certificate, NULL, .dp = ST_DP_STR,
     .dp_off = OFF(cert_alt)},
    {"key_alt", ST_FT_STRING, ST_FIELD_F_SECRET, st_check_key, NULL, .dp = ST_DP_STR,
     .dp_off = OFF(key_alt)},
    ST_FIELD_TAGS,
    {.name = NULL},
};
/* clang-format on */

const struct st_entity_desc st_ent_certificate = {
    .kind = ST_ENT_CERTIFICATE,
    .name = "certificates",
    .singular = "certificate",
    .fields = fields,
    .checks = certificate_checks,
    .checks_schema = "[{\"mutually_required\": [\"cert_alt\", \"key_alt\"]}, "
                     "{\"custom_entity_check\": {\"field_sources\": [\"cert\", \"key\"]}}, "
                     "{\"custom_entity_check\": {\"field_sources\": "
                     "[\"cert_alt\", \"key_alt\"]}}, "
                     "{\"custom_entity_check\": {\"field_sources\": "
                     "[\"cert\", \"cert_alt\"]}}]",
    .dp_size = sizeof(struct st_certificate),
};
