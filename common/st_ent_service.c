/* services: Kong 3.x kong/db/schema/entities/services.lua, as Strait takes it.
 *
 * Strait differences, on purpose: protocol defaults to "tcp" (Kong's "http" would make
 * every default service invalid) and takes tcp and tls only (http, https, grpc, grpcs:
 * "'http' is not supported: Strait proxies tcp"; udp, tls_passthrough: "not supported
 * yet"); the TLS fields (client_certificate, tls_verify, tls_verify_depth,
 * ca_certificates) must be null unless the protocol is tls (or https), as in Kong. */
#include <stddef.h>
#include <string.h>

#include "st_check.h"
#include "st_entity.h"
#include "st_str.h"

#define OFF(m) offsetof(struct st_service, m)

#define MSG_CONDITIONAL_PROTOCOL "failed conditional validation given value of field 'protocol'"

/* Refused until later issues build them, whatever tls_data_path says. */
static const char *const service_later[] = {"tls_passthrough", "udp", NULL};

/* ------------------------------------------------------------------------ */
/* field checks                                                               */

static json_t *
check_protocol(json_t *obj, const struct st_field *f, json_t *v)
{
    json_t *e = st_check_kong_protocol(v);

    (void)obj;
    (void)f;
    return e != NULL ? e : st_check_protocol_unsupported(json_string_value(v), service_later);
}

static json_t *
check_retries(json_t *obj, const struct st_field *f, json_t *v)
{
    return st_check_int_range(obj, f->name, v, 0, 32767);
}

static json_t *
check_verify_depth(json_t *obj, const struct st_field *f, json_t *v)
{
    return st_check_int_range(obj, f->name, v, 0, 64);
}

/* ------------------------------------------------------------------------ */
/* the url shorthand                                                          */

/* Splits a url's authority [user@]host[:port] or [user@][v6][:port] (brackets
 * dropped) into host and port (-1 when absent). Returns an error message or NULL. */
static const char *
url_authority(const char *p, const char *end, char *host, size_t size, json_int_t *port)
{
    const char *host_end;
    const char *colon;

    for (const char *at = p; at < end; at++) {
        if (*at == '@') {
            p = at + 1;
        }
    }
    if (*p == '[') {
        host_end = memchr(p, ']', (size_t)(end - p));
        if (host_end == NULL) {
            return "missing host in url";
        }
        p++;
        colon = host_end + 1 < end ? host_end + 1 : NULL;
    } else {
        colon = memchr(p, ':', (size_t)(end - p));
        host_end = colon != NULL ? colon : end;
    }
    if (host_end == p || (size_t)(host_end - p) >= size) {
        return "missing host in url";
    }
    memcpy(host, p, (size_t)(host_end - p));
    host[host_end - p] = '\0';
    *port = -1;
    if (colon == NULL || colon + 1 == end) {
        return colon == NULL || *colon == ':' ? NULL : "invalid port in url";
    }
    if (*colon != ':') {
        return "invalid port in url";
    }
    *port = 0;
    for (const char *d = colon + 1; d < end; d++) {
        if (*d < '0' || *d > '9' || *port > 99999999) {
            return "invalid port in url";
        }
        *port = *port * 10 + (*d - '0');
    }
    return NULL;
}

/* Kong's `url` shorthand: "scheme://host[:port][/path]" into protocol, host, port
 * (default 80, 443 for https) and path (null when absent) of obj. Returns an error
 * or NULL. */
static json_t *
apply_url(json_t *obj, const char *url)
{
    const char *sep = strstr(url, "://");
    const char *auth;
    const char *auth_end;
    const char *msg;
    char host[256];
    char scheme[32];
    json_int_t port;

    if (sep == NULL || sep == url || (size_t)(sep - url) >= sizeof(scheme)) {
        return json_string("missing scheme in url");
    }
    memcpy(scheme, url, (size_t)(sep - url));
    scheme[sep - url] = '\0';
    auth = sep + 3;
    auth_end = auth + strcspn(auth, "/?#");
    msg = url_authority(auth, auth_end, host, sizeof(host), &port);
    if (msg != NULL) {
        return json_string(msg);
    }
    if (port < 0) {
        port = strcmp(scheme, "https") == 0 ? 443 : 80;
    }
    json_object_set_new(obj, "protocol", json_string(scheme));
    json_object_set_new(obj, "host", json_string(host));
    json_object_set_new(obj, "port", json_integer(port));
    json_object_set_new(obj, "path",
                        *auth_end == '/' ? json_stringn(auth_end, strcspn(auth_end, "?#"))
                                         : json_null());
    return NULL;
}

/* Kong's `url` shorthand field: expands it; true when it failed (its error is in fields). */
static bool
service_shorthand(json_t *obj, json_t *fields)
{
    json_t *url = json_object_get(obj, "url");
    json_t *e = NULL;

    if (url == NULL) {
        return false;
    }
    if (!json_is_null(url)) {
        e = json_is_string(url) ? apply_url(obj, json_string_value(url))
                                : json_string("expected a string");
    }
    json_object_del(obj, "url");
    if (e != NULL) {
        json_object_set_new(fields, "url", e);
        return true;
    }
    return false;
}

/* ------------------------------------------------------------------------ */
/* entity checks                                                              */

static void
service_checks(json_t *obj, json_t *fields, unsigned flags)
{
    static const char *const path_null[] = {"tcp", "tls", "grpc", "grpcs", NULL};
    static const char *const tls_fields[] = {
        "client_certificate", "tls_verify", "tls_verify_depth", "ca_certificates", NULL,
    };
    static const char *const tls_upstream[] = {"https", "tls", NULL};
    const char *p = json_string_value(json_object_get(obj, "protocol"));

    (void)flags;
    if (p == NULL) {
        return;
    }
    if (!json_is_null(json_object_get(obj, "path")) && st_str_in(p, path_null)) {
        json_object_set_new(fields, "path", json_string("value must be null"));
        st_check_entity_err(fields, MSG_CONDITIONAL_PROTOCOL);
    }
    for (int i = 0; tls_fields[i] != NULL; i++) {
        if (!json_is_null(json_object_get(obj, tls_fields[i])) && !st_str_in(p, tls_upstream)) {
            json_object_set_new(fields, tls_fields[i], json_string("value must be null"));
            st_check_entity_err(fields, MSG_CONDITIONAL_PROTOCOL);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* the description                                                            */

/* clang-format off */
#define TIMEOUT(name, m)                                                                           \
    {name, ST_FT_INTEGER, 0, st_check_timeout, "60000",                                            \
     .schema = "\"default\": null, \"between\": [1, 2147483646]", .dp = ST_DP_U32,               \
     .dp_off = OFF(m)}

static const struct st_field fields[] = {
    ST_FIELD_ID(OFF(id)),
    {"name", ST_FT_STRING, ST_FIELD_F_UNIQUE | ST_FIELD_F_ENDPOINT, st_check_name, NULL,
     .dp = ST_DP_STR, .dp_off = OFF(name)},
    ST_FIELD_CREATED_AT(ST_DP_I64, OFF(created_at_ms)),
    ST_FIELD_UPDATED_AT,
    {"protocol", ST_FT_STRING, ST_FIELD_F_REQUIRED, check_protocol, "\"tcp\"",
     .schema = "\"one_of\": [\"tcp\", \"tls\"]", .dp = ST_DP_PROTO, .dp_off = OFF(protocol)},
    {"host", ST_FT_STRING, ST_FIELD_F_REQUIRED, st_check_host, NULL, .dp = ST_DP_STR,
     .dp_off = OFF(host)},
    {"port", ST_FT_INTEGER, ST_FIELD_F_REQUIRED, st_check_port, "80",
     .schema = "\"between\": [0, 65535]", .dp = ST_DP_U16, .dp_off = OFF(port)},
    {"path", ST_FT_STRING, ST_FIELD_F_NO_SNAP, st_check_path, NULL,
     .schema = "\"starts_with\": \"/\""},
    {"retries", ST_FT_INTEGER, 0, check_retries, "5",
     .schema = "\"default\": null, \"between\": [0, 32767]", .dp = ST_DP_U32,
     .dp_off = OFF(retries)},
    TIMEOUT("connect_timeout", connect_timeout),
    TIMEOUT("write_timeout", write_timeout),
    TIMEOUT("read_timeout", read_timeout),
    ST_FIELD_TAGS,
    {"enabled", ST_FT_BOOLEAN, ST_FIELD_F_REQUIRED, NULL, "true", .dp = ST_DP_BOOL,
     .dp_off = OFF(enabled)},
    {"client_certificate", ST_FT_FOREIGN, 0, NULL, NULL, .ref = &st_ent_certificate,
     .pb = "client_certificate_id", .dp = ST_DP_REF, .dp_off = OFF(client_certificate),
     .dp_off2 = ST_DP_NO_OFF},
    {"tls_verify", ST_FT_BOOLEAN, 0, NULL, NULL, .dp = ST_DP_TRISTATE, .dp_off = OFF(tls_verify)},
    {"tls_verify_depth", ST_FT_INTEGER, 0, check_verify_depth, NULL,
     .schema = "\"between\": [0, 64]", .dp = ST_DP_INT, .dp_off = OFF(tls_verify_depth)},
    {"ca_certificates", ST_FT_FOREIGN_SET, 0, NULL, NULL, .ref = &st_ent_ca_certificate,
     .pb = "ca_certificate_ids", .dp = ST_DP_REFS, .dp_off = OFF(ca_certificates),
     .dp_off2 = OFF(n_ca_certificates)},
    {.name = NULL},
};

/* Kong's conditional that keeps field f null unless the protocol is tls. */
#define TLS_ONLY(f)                                                                                \
    "{\"conditional\": {\"if_field\": \"protocol\", \"if_match\": {\"not_one_of\": [\"tls\"]}, "   \
    "\"then_field\": \"" f "\", \"then_match\": {\"eq\": null}}}"

const struct st_entity_desc st_ent_service = {
    .kind = ST_ENT_SERVICE,
    .name = "services",
    .singular = "service",
    .fields = fields,
    .shorthand = service_shorthand,
    .checks = service_checks,
    .checks_schema =
        "[{\"conditional\": {\"if_field\": \"protocol\", "
        "\"if_match\": {\"one_of\": [\"tcp\", \"tls\"]}, "
        "\"then_field\": \"path\", \"then_match\": {\"eq\": null}}}, "
        TLS_ONLY("client_certificate") ", " TLS_ONLY("tls_verify") ", "
        TLS_ONLY("tls_verify_depth") ", " TLS_ONLY("ca_certificates") "]",
    .dp_size = sizeof(struct st_service),
};
/* clang-format on */
