/* Entity schemas and validation with Kong's rules and messages (Kong 3.x
 * kong/db/schema/entities/services.lua, routes.lua, routes_subschemas.lua,
 * typedefs.lua; error texts from kong/db/schema/init.lua and kong/db/errors.lua).
 *
 * Strait differences, on purpose:
 * - services.protocol defaults to "tcp", routes.protocols to ["tcp"]: Strait is a
 *   layer-4 gateway, Kong's "http" defaults would make every default entity invalid.
 * - Protocols Kong knows but Strait does not proxy are refused with their own message:
 *   http, https, grpc, grpcs ("'http' is not supported: Strait proxies tcp") and
 *   udp, service tls_passthrough ("'udp' is not supported yet") until they are built.
 * - services' TLS fields (client_certificate, tls_verify, tls_verify_depth,
 *   ca_certificates) must be null unless the protocol is tls (or https), as in Kong.
 * - certificates, snis, ca_certificates: Kong's typedefs.certificate/key and entity
 *   checks with OpenSSL through st_ssl; the admin API's certificate `snis` shorthand
 *   is cp_admin's, not a schema field. ca_certificates.cert_digest is (re)computed
 *   from cert on every validation.
 * - route.service is kept as {"id": "<uuid>"}; other keys of it are dropped.
 * - `fields` nests element errors of sets as arrays with nulls at valid positions, and
 *   st_schema_message flattens them fully ("sources.1.ip: ...").
 *
 * Does not check uniqueness or foreign keys (the store does). */
#include "st_schema.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "st_cidr.h"
#include "st_err.h"
#include "st_ssl.h"
#include "st_util.h"

#define KONG_PROTOCOLS           "grpc, grpcs, http, https, tcp, tls, tls_passthrough, udp"
#define MSG_CONDITIONAL_PROTOCOL "failed conditional validation given value of field 'protocol'"
#define MSG_STREAM_FORBIDDEN                                                                       \
    "cannot set '%s' when 'protocols' is 'tcp', 'tls', 'tls_passthrough' or 'udp'"
#define MSG_MUST_SET_ONE                                                                           \
    "must set one of 'sources', 'destinations', 'snis' when 'protocols' is 'tcp', 'tls' or 'udp'"
#define MSG_MUST_SET_SNIS "must set snis when 'protocols' is 'tls_passthrough'"
#define MSG_SNIS_ONLY                                                                              \
    "'snis' can only be set when 'protocols' is 'grpcs', 'https', 'tls' or 'tls_passthrough'"
#define MSG_AT_LEAST_IP_PORT      "at least one of these fields must be non-empty: 'ip', 'port'"
#define MSG_ALT_MUTUALLY_REQUIRED "all or none of these fields must be set: 'cert_alt', 'key_alt'"
#define MSG_ALT_SAME_TYPE                                                                          \
    "certificate and alternative certificate need to have different type (e.g. RSA and "           \
    "ECDSA), the provided certificates were both of the same type"

/* A field checker validates a non-null value stored at obj[key]. It may normalise the
 * value in place (integral reals to integers, duplicate set elements removed); v is
 * invalid afterwards. Returns an error (new reference: a string, or an array/object
 * for nested errors) or NULL. */
typedef json_t *check_fn(json_t *obj, const char *key, json_t *v);
typedef json_t *default_fn(void);

struct field {
    const char *name;
    check_fn *check;
    default_fn *dflt; /* NULL: null */
    bool required;
};

/* ------------------------------------------------------------------------ */
/* error helpers                                                              */

static json_t *errf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static json_t *
errf(const char *fmt, ...)
{
    char buf[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    return json_string(buf);
}

static void
entity_err(json_t *fields, const char *msg)
{
    json_t *a = json_object_get(fields, "@entity");

    if (a == NULL) {
        a = json_array();
        json_object_set_new(fields, "@entity", a);
    }
    json_array_append_new(a, json_string(msg));
}

/* Puts err at index i of *arr (created on demand), with nulls before it. */
static void
arr_put(json_t **arr, size_t i, json_t *err)
{
    if (*arr == NULL) {
        *arr = json_array();
    }
    while (json_array_size(*arr) < i) {
        json_array_append_new(*arr, json_null());
    }
    json_array_append_new(*arr, err);
}

static bool
str_in(const char *s, const char *const *list)
{
    for (; *list != NULL; list++) {
        if (strcmp(s, *list) == 0) {
            return true;
        }
    }
    return false;
}

static bool
is_nonempty(const json_t *v)
{
    if (v == NULL || json_is_null(v)) {
        return false;
    }
    if (json_is_array(v)) {
        return json_array_size(v) > 0;
    }
    if (json_is_object(v)) {
        return json_object_size(v) > 0;
    }
    if (json_is_string(v)) {
        return json_string_length(v) > 0;
    }
    return true;
}

/* ------------------------------------------------------------------------ */
/* scalar checks                                                              */

/* Reads an integer, turning an integral real (80.0) into an integer in place. */
static bool
get_int(json_t *obj, const char *key, json_t *v, json_int_t *out)
{
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return true;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (d > -9007199254740992.0 && d < 9007199254740992.0 && (double)(json_int_t)d == d) {
            *out = (json_int_t)d;
            json_object_set_new(obj, key, json_integer(*out));
            return true;
        }
    }
    return false;
}

static json_t *
check_int_range(json_t *obj, const char *key, json_t *v, json_int_t min, json_int_t max)
{
    json_int_t n;

    if (!get_int(obj, key, v, &n)) {
        return json_string("expected an integer");
    }
    if (n < min || n > max) {
        return errf("value should be between %lld and %lld", (long long)min, (long long)max);
    }
    return NULL;
}

static json_t *
check_port(json_t *obj, const char *key, json_t *v)
{
    return check_int_range(obj, key, v, 0, 65535);
}

static json_t *
check_retries(json_t *obj, const char *key, json_t *v)
{
    return check_int_range(obj, key, v, 0, 32767);
}

static json_t *
check_timeout(json_t *obj, const char *key, json_t *v)
{
    return check_int_range(obj, key, v, 1, 2147483646);
}

static json_t *
check_timestamp(json_t *obj, const char *key, json_t *v)
{
    json_int_t n;

    if (!get_int(obj, key, v, &n)) {
        return json_string("expected an integer");
    }
    if (n <= 0) {
        return json_string("expected a valid timestamp");
    }
    return NULL;
}

static json_t *
check_bool(json_t *obj, const char *key, json_t *v)
{
    (void)obj;
    (void)key;
    return json_is_boolean(v) ? NULL : json_string("expected a boolean");
}

/* Kong strings: a string of at least one byte. Returns the error or NULL. */
static json_t *
check_str(const json_t *v)
{
    if (!json_is_string(v)) {
        return json_string("expected a string");
    }
    if (json_string_length(v) == 0) {
        return json_string("length must be at least 1");
    }
    return NULL;
}

/* check_str and at most max bytes (Kong's len_max message). */
static json_t *
check_str_max(const json_t *v, size_t max)
{
    json_t *e = check_str(v);

    if (e == NULL && json_string_length(v) > max) {
        e = errf("length must be at most %zu", max);
    }
    return e;
}

bool
st_schema_is_uuid(const char *s)
{
    if (s == NULL || strlen(s) != 36) {
        return false;
    }
    for (int i = 0; i < 36; i++) {
        char c = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-') {
                return false;
            }
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))) {
            return false;
        }
    }
    return true;
}

static json_t *
check_uuid(json_t *obj, const char *key, json_t *v)
{
    (void)obj;
    (void)key;
    if (!json_is_string(v)) {
        return json_string("expected a string");
    }
    return st_schema_is_uuid(json_string_value(v)) ? NULL : json_string("expected a valid UUID");
}

/* Kong's utils.validate_utf8: 0 when valid, else the 1-based position of the bad byte. */
static size_t
utf8_bad_pos(const unsigned char *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        unsigned char c = s[i];
        size_t len;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            len = 2;
        } else if (c >= 0xe0 && c <= 0xef) {
            len = 3;
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4;
        } else {
            return i + 1;
        }
        if (i + len > n) {
            return i + 1;
        }
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80) {
                return i + 1;
            }
        }
        i += len;
    }
    return 0;
}

static bool
is_alnum(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* services.name: typedefs.name, ASCII only. */
static json_t *
check_name_ascii(json_t *obj, const char *key, json_t *v)
{
    json_t *e = check_str_max(v, ST_SCHEMA_NAME_MAX);
    const unsigned char *s;

    (void)obj;
    (void)key;
    if (e != NULL) {
        return e;
    }
    s = (const unsigned char *)json_string_value(v);
    for (size_t i = 0; s[i] != '\0'; i++) {
        if (!is_alnum(s[i]) && strchr(".-_~", s[i]) == NULL) {
            return errf("invalid value '%s': it must only contain alphanumeric and "
                        "'., -, _, ~' characters",
                        (const char *)s);
        }
    }
    return NULL;
}

/* routes.name: typedefs.utf8_name. */
static json_t *
check_name_utf8(json_t *obj, const char *key, json_t *v)
{
    json_t *e = check_str_max(v, ST_SCHEMA_NAME_MAX);
    const unsigned char *s;
    size_t bad;

    (void)obj;
    (void)key;
    if (e != NULL) {
        return e;
    }
    s = (const unsigned char *)json_string_value(v);
    bad = utf8_bad_pos(s, json_string_length(v));
    if (bad != 0) {
        return errf("invalid utf-8 character sequence detected at position %zu", bad);
    }
    for (size_t i = 0; s[i] != '\0'; i++) {
        if (!is_alnum(s[i]) && strchr(".-_~", s[i]) == NULL && !(s[i] >= 128 && s[i] <= 244)) {
            return errf("invalid value '%s': the only accepted ascii characters are "
                        "alphanumerics or ., -, _, and ~",
                        (const char *)s);
        }
    }
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* hosts (kong/tools/ip.lua normalize_ip, check_hostname)                    */

enum host_kind {
    HOST_INVALID = 0,
    HOST_NAME,
    HOST_IPV4,
    HOST_IPV6,
};

static bool
all_digits(const char *s)
{
    if (*s == '\0') {
        return false;
    }
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9') {
            return false;
        }
    }
    return true;
}

static enum host_kind
host_ipv6(const char *s, bool *has_port)
{
    char buf[64];
    unsigned char a[16];
    const char *end;

    if (s[0] == '[') {
        end = strchr(s, ']');
        if (end == NULL || (size_t)(end - s - 1) >= sizeof(buf)) {
            return HOST_INVALID;
        }
        memcpy(buf, s + 1, (size_t)(end - s - 1));
        buf[end - s - 1] = '\0';
        if (end[1] == ':' && all_digits(end + 2)) {
            *has_port = true;
        } else if (end[1] != '\0') {
            return HOST_INVALID;
        }
    } else if (st_snprintf(buf, sizeof(buf), "%s", s) != 0) {
        return HOST_INVALID;
    }
    return inet_pton(AF_INET6, buf, a) == 1 ? HOST_IPV6 : HOST_INVALID;
}

static bool
looks_ipv4(const char *s)
{
    int dots = 0;

    for (; *s != '\0' && *s != ':'; s++) {
        if (*s == '.') {
            dots++;
        } else if (*s < '0' || *s > '9') {
            return false;
        }
    }
    return dots == 3;
}

static enum host_kind
host_name(const char *s, bool *has_port)
{
    char buf[512];
    const char *colon = strrchr(s, ':');
    size_t len;
    char *p;
    char *seg;

    if (st_snprintf(buf, sizeof(buf), "%s", s) != 0) {
        return HOST_INVALID;
    }
    if (colon != NULL && all_digits(colon + 1)) {
        *has_port = true;
        buf[colon - s] = '\0';
    }
    len = strlen(buf);
    if (len == 0) {
        return HOST_INVALID;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)buf[i];
        if (!is_alnum(c) && c != '-' && c != '.' && c != '_') {
            return HOST_INVALID;
        }
    }
    /* Each label non-empty (a trailing dot is allowed) and not ending in '-'. */
    seg = buf;
    for (;;) {
        p = strchr(seg, '.');
        size_t sl = p != NULL ? (size_t)(p - seg) : strlen(seg);
        if (sl == 0 && p != NULL) {
            return HOST_INVALID;
        }
        if (sl > 0 && seg[sl - 1] == '-') {
            return HOST_INVALID;
        }
        if (p == NULL) {
            break;
        }
        seg = p + 1;
    }
    return HOST_NAME;
}

/* Classifies name, name:port, ipv4, ipv4:port, ipv6, [ipv6], [ipv6]:port. */
static enum host_kind
host_classify(const char *s, bool *has_port)
{
    const char *c1 = strchr(s, ':');

    *has_port = false;
    if (s[0] == '[' || (c1 != NULL && strchr(c1 + 1, ':') != NULL)) {
        return host_ipv6(s, has_port);
    }
    if (looks_ipv4(s)) {
        char buf[32];
        unsigned char a[4];
        if (st_snprintf(buf, sizeof(buf), "%s", s) != 0) {
            return HOST_INVALID;
        }
        if (c1 != NULL) {
            if (!all_digits(c1 + 1)) {
                return HOST_INVALID;
            }
            *has_port = true;
            buf[c1 - s] = '\0';
        }
        return inet_pton(AF_INET, buf, a) == 1 ? HOST_IPV4 : HOST_INVALID;
    }
    return host_name(s, has_port);
}

/* typedefs.host */
static json_t *
check_host(json_t *obj, const char *key, json_t *v)
{
    json_t *e = check_str(v);
    const char *s;
    bool has_port;

    (void)obj;
    (void)key;
    if (e != NULL) {
        return e;
    }
    s = json_string_value(v);
    if (host_classify(s, &has_port) == HOST_INVALID) {
        return errf("invalid value: %s", s);
    }
    if (has_port) {
        return json_string("must not have a port");
    }
    return NULL;
}

/* typedefs.wildcard_host, for route snis (traditional_compatible router). */
static json_t *
check_sni(const json_t *v)
{
    json_t *e = check_str(v);
    const char *s;
    const char *star;
    char mock[512];
    size_t o = 0;
    bool has_port;
    enum host_kind kind;

    if (e != NULL) {
        return e;
    }
    s = json_string_value(v);
    star = strchr(s, '*');
    if (star != NULL && star != s && star[1] != '\0') {
        return json_string("wildcard must be leftmost or rightmost character");
    }
    if (star != NULL && strchr(star + 1, '*') != NULL) {
        return json_string("only one wildcard must be specified");
    }
    for (const char *p = s; *p != '\0' && o + 9 < sizeof(mock); p++) {
        if (*p == '*') {
            memcpy(mock + o, "wildcard", 8);
            o += 8;
        } else {
            mock[o++] = *p;
        }
    }
    mock[o] = '\0';
    kind = host_classify(mock, &has_port);
    if (kind == HOST_INVALID) {
        return errf("invalid value: %s", mock);
    }
    if (kind != HOST_NAME) {
        return json_string("must not be an IP");
    }
    if (has_port) {
        return json_string("must not have a port");
    }
    return NULL;
}

/* typedefs.path: only its own shape; services' conditional decides null-ness. */
static json_t *
check_path(json_t *obj, const char *key, json_t *v)
{
    json_t *e = check_str(v);

    (void)obj;
    (void)key;
    if (e != NULL) {
        return e;
    }
    if (json_string_value(v)[0] != '/') {
        return json_string("should start with: /");
    }
    return NULL;
}

/* Fields checked by entity rules only (null-only for now). */
static json_t *
check_any(json_t *obj, const char *key, json_t *v)
{
    (void)obj;
    (void)key;
    (void)v;
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* protocols                                                                  */

static const char *const kong_protocols[] = {
    "grpc", "grpcs", "http", "https", "tcp", "tls", "tls_passthrough", "udp", NULL,
};
static const char *const http_protocols[] = {"grpc", "grpcs", "http", "https", NULL};
/* Refused until later issues build them, whatever tls_data_path says. */
static const char *const service_later[] = {"tls_passthrough", "udp", NULL};
static const char *const route_later[] = {"udp", NULL};

/* Strait's refusal of a protocol Kong knows, or NULL when Strait proxies it. */
static json_t *
protocol_unsupported(const char *p, const char *const *later)
{
    if (str_in(p, http_protocols)) {
        return errf("'%s' is not supported: Strait proxies tcp", p);
    }
    if (str_in(p, later)) {
        return errf("'%s' is not supported yet", p);
    }
    return NULL;
}

/* services.protocol */
static json_t *
check_protocol(json_t *obj, const char *key, json_t *v)
{
    (void)obj;
    (void)key;
    if (!json_is_string(v)) {
        return json_string("expected a string");
    }
    if (!str_in(json_string_value(v), kong_protocols)) {
        return json_string("expected one of: " KONG_PROTOCOLS);
    }
    return protocol_unsupported(json_string_value(v), service_later);
}

/* Kong's make_set: drops repeated strings, keeping the first of each. */
static void
dedupe_strings(json_t *obj, const char *key, json_t *v)
{
    json_t *out = json_array();
    size_t i;
    json_t *el;

    json_array_foreach(v, i, el)
    {
        bool seen = false;
        for (size_t j = 0; j < json_array_size(out) && !seen; j++) {
            seen = json_equal(json_array_get(out, j), el);
        }
        if (!seen) {
            json_array_append(out, el);
        }
    }
    json_object_set_new(obj, key, out);
}

static int
protocol_group(const char *p)
{
    static const char *const groups[][4] = {
        {"http", "https", NULL},
        {"tcp", "tls", "udp", NULL},
        {"tls_passthrough", NULL},
        {"grpc", "grpcs", NULL},
    };
    for (int g = 0; g < 4; g++) {
        if (str_in(p, groups[g])) {
            return g;
        }
    }
    return -1;
}

/* routes.protocols: mutually_exclusive_subsets, listing the sets in the order met. */
static json_t *
protocols_exclusive(const json_t *v)
{
    static const char *const names[] = {
        "('http', 'https')",
        "('tcp', 'tls', 'udp')",
        "('tls_passthrough')",
        "('grpc', 'grpcs')",
    };
    int order[4];
    int n = 0;
    char buf[256] = "these sets are mutually exclusive: ";
    size_t i;
    json_t *el;

    json_array_foreach(v, i, el)
    {
        int g = protocol_group(json_string_value(el));
        bool seen = false;
        for (int k = 0; k < n; k++) {
            seen = seen || order[k] == g;
        }
        if (g >= 0 && !seen) {
            order[n++] = g;
        }
    }
    if (n <= 1) {
        return NULL;
    }
    for (int k = 0; k < n; k++) {
        size_t len = strlen(buf);
        snprintf(buf + len, sizeof(buf) - len, "%s%s", k > 0 ? ", " : "", names[order[k]]);
    }
    return json_string(buf);
}

static json_t *
check_protocols(json_t *obj, const char *key, json_t *v)
{
    json_t *errs = NULL;
    json_t *e;
    size_t i;
    json_t *el;

    if (!json_is_array(v)) {
        return json_string("expected a set");
    }
    json_array_foreach(v, i, el)
    {
        if (!json_is_string(el)) {
            arr_put(&errs, i, json_string("expected a string"));
        } else if (!str_in(json_string_value(el), kong_protocols)) {
            arr_put(&errs, i, json_string("expected one of: " KONG_PROTOCOLS));
        }
    }
    if (errs != NULL) {
        return errs;
    }
    dedupe_strings(obj, key, v);
    v = json_object_get(obj, key);
    if (json_array_size(v) == 0) {
        return json_string("length must be at least 1");
    }
    e = protocols_exclusive(v);
    if (e != NULL) {
        return e;
    }
    json_array_foreach(v, i, el)
    {
        e = protocol_unsupported(json_string_value(el), route_later);
        if (e != NULL) {
            return e;
        }
    }
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* sets                                                                       */

static json_t *
check_tag(const json_t *v)
{
    json_t *e = check_str_max(v, ST_SCHEMA_TAG_MAX);
    const unsigned char *s;
    size_t bad;

    if (e != NULL) {
        return e;
    }
    s = (const unsigned char *)json_string_value(v);
    bad = utf8_bad_pos(s, json_string_length(v));
    if (bad != 0) {
        return errf("invalid utf-8 character sequence detected at position %zu", bad);
    }
    for (size_t i = 0; s[i] != '\0'; i++) {
        unsigned char c = s[i];
        if (c < 32 || c == 127 || c == ',' || c == '/' || c > 244) {
            return errf("invalid tag '%s': expected printable ascii (except `,` and `/`) or "
                        "valid utf-8 sequences",
                        (const char *)s);
        }
    }
    return NULL;
}

/* A set of strings whose elements elem() checks; duplicates removed. */
static json_t *
check_string_set(json_t *obj, const char *key, json_t *v, json_t *(*elem)(const json_t *))
{
    json_t *errs = NULL;
    size_t i;
    json_t *el;

    if (!json_is_array(v)) {
        return json_string("expected a set");
    }
    json_array_foreach(v, i, el)
    {
        json_t *e = elem(el);
        if (e != NULL) {
            arr_put(&errs, i, e);
        }
    }
    if (errs != NULL) {
        return errs;
    }
    dedupe_strings(obj, key, v);
    return NULL;
}

static json_t *
check_tags(json_t *obj, const char *key, json_t *v)
{
    if (json_is_array(v) && json_array_size(v) > ST_SCHEMA_TAGS_MAX) {
        return errf("length must be at most %d", ST_SCHEMA_TAGS_MAX);
    }
    return check_string_set(obj, key, v, check_tag);
}

static json_t *
check_snis(json_t *obj, const char *key, json_t *v)
{
    return check_string_set(obj, key, v, check_sni);
}

/* One {ip, port} record of sources/destinations; missing keys become null. */
static json_t *
check_endpoint(json_t *rec)
{
    json_t *errs;
    json_t *e;
    const char *k;
    json_t *val;
    json_t *ip;
    json_t *port;
    struct st_cidr cidr;

    if (!json_is_object(rec)) {
        return json_string("expected a record");
    }
    errs = json_object();
    json_object_foreach(rec, k, val)
    {
        if (strcmp(k, "ip") != 0 && strcmp(k, "port") != 0) {
            json_object_set_new(errs, k, json_string("unknown field"));
        }
    }
    if (json_object_get(rec, "ip") == NULL) {
        json_object_set_new(rec, "ip", json_null());
    }
    if (json_object_get(rec, "port") == NULL) {
        json_object_set_new(rec, "port", json_null());
    }
    ip = json_object_get(rec, "ip");
    if (!json_is_null(ip)) {
        e = check_str(ip);
        if (e == NULL && st_cidr_parse(json_string_value(ip), &cidr) != 0) {
            e = errf("invalid ip or cidr range: '%s'", json_string_value(ip));
        }
        if (e != NULL) {
            json_object_set_new(errs, "ip", e);
        }
    }
    port = json_object_get(rec, "port");
    if (!json_is_null(port)) {
        e = check_port(rec, "port", port);
        if (e != NULL) {
            json_object_set_new(errs, "port", e);
        }
    }
    if (!is_nonempty(json_object_get(rec, "ip")) && !is_nonempty(json_object_get(rec, "port"))) {
        entity_err(errs, MSG_AT_LEAST_IP_PORT);
    }
    if (json_object_size(errs) == 0) {
        json_decref(errs);
        return NULL;
    }
    return errs;
}

static json_t *
check_endpoints(json_t *obj, const char *key, json_t *v)
{
    json_t *errs = NULL;
    size_t i;
    json_t *el;

    (void)obj;
    (void)key;
    if (!json_is_array(v)) {
        return json_string("expected a set");
    }
    json_array_foreach(v, i, el)
    {
        json_t *e = check_endpoint(el);
        if (e != NULL) {
            arr_put(&errs, i, e);
        }
    }
    return errs;
}

/* A foreign key (routes.service, snis.certificate, services.client_certificate):
 * {"id": uuid}, kept as exactly that. */
static json_t *
check_foreign(json_t *obj, const char *key, json_t *v)
{
    json_t *id;
    json_t *e;

    if (!json_is_object(v)) {
        return json_string("expected a record");
    }
    id = json_object_get(v, "id");
    if (id == NULL) {
        json_t *name = json_object_get(v, "name");

        /* a service named by an invalid name (the admin API resolves only valid ones):
         * Kong reports the name, "service.name: invalid value ..." */
        e = strcmp(key, "service") == 0 && json_is_string(name) ? check_name_ascii(v, "name", name)
                                                                : NULL;
        if (e != NULL) {
            json_t *errs = json_object();

            json_object_set_new(errs, "name", e);
            return errs;
        }
        e = json_string("missing primary key");
    } else if (json_is_null(id)) {
        e = json_string("required field missing");
    } else {
        e = check_uuid(v, "id", id);
    }
    if (e != NULL) {
        json_t *errs = json_object();
        json_object_set_new(errs, "id", e);
        return errs;
    }
    json_object_set_new(obj, key, json_pack("{s:O}", "id", id));
    return NULL;
}

/* services.ca_certificates: an array (duplicates kept, order kept) of uuids. */
static json_t *
check_uuid_array(json_t *obj, const char *key, json_t *v)
{
    json_t *errs = NULL;
    size_t i;
    json_t *el;

    (void)obj;
    (void)key;
    if (!json_is_array(v)) {
        return json_string("expected an array");
    }
    json_array_foreach(v, i, el)
    {
        json_t *e = check_uuid(v, NULL, el);
        if (e != NULL) {
            arr_put(&errs, i, e);
        }
    }
    return errs;
}

/* services.tls_verify_depth */
static json_t *
check_verify_depth(json_t *obj, const char *key, json_t *v)
{
    return check_int_range(obj, key, v, 0, 64);
}

/* typedefs.certificate: PEM that parses (a chain is allowed). */
static json_t *
check_certificate(json_t *obj, const char *key, json_t *v)
{
    struct st_ssl_cert_info info;
    char msg[384];
    json_t *e = check_str(v);

    (void)obj;
    (void)key;
    if (e != NULL) {
        return e;
    }
    if (st_ssl_cert_parse(json_string_value(v), &info, msg, sizeof(msg)) != 0) {
        return json_string(msg);
    }
    return NULL;
}

/* typedefs.key: a PEM private key that parses. */
static json_t *
check_key(json_t *obj, const char *key, json_t *v)
{
    char msg[384];
    json_t *e = check_str(v);

    (void)obj;
    (void)key;
    if (e != NULL) {
        return e;
    }
    if (st_ssl_key_parse(json_string_value(v), msg, sizeof(msg)) != 0) {
        return json_string(msg);
    }
    return NULL;
}

/* snis.name: typedefs.wildcard_host ("*" alone names the default certificate). */
static json_t *
check_sni_name(json_t *obj, const char *key, json_t *v)
{
    json_t *e = check_str_max(v, ST_SCHEMA_NAME_MAX);

    (void)obj;
    (void)key;
    return e != NULL ? e : check_sni(v);
}

/* ca_certificates.cert_digest: a string; validation recomputes it from cert. */
static json_t *
check_string(json_t *obj, const char *key, json_t *v)
{
    (void)obj;
    (void)key;
    return check_str(v);
}

/* ------------------------------------------------------------------------ */
/* defaults                                                                   */

static json_t *
dflt_tcp(void)
{
    return json_string("tcp");
}

static json_t *
dflt_tcp_set(void)
{
    return json_pack("[s]", "tcp");
}

static json_t *
dflt_80(void)
{
    return json_integer(80);
}

static json_t *
dflt_5(void)
{
    return json_integer(5);
}

static json_t *
dflt_60000(void)
{
    return json_integer(60000);
}

static json_t *
dflt_true(void)
{
    return json_true();
}

static json_t *
dflt_false(void)
{
    return json_false();
}

/* ------------------------------------------------------------------------ */
/* the schemas                                                                */

static const struct field service_fields[] = {
    {"id", check_uuid, NULL, false},
    {"name", check_name_ascii, NULL, false},
    {"created_at", check_timestamp, NULL, false},
    {"updated_at", check_timestamp, NULL, false},
    {"protocol", check_protocol, dflt_tcp, true},
    {"host", check_host, NULL, true},
    {"port", check_port, dflt_80, true},
    {"path", check_path, NULL, false},
    {"retries", check_retries, dflt_5, false},
    {"connect_timeout", check_timeout, dflt_60000, false},
    {"write_timeout", check_timeout, dflt_60000, false},
    {"read_timeout", check_timeout, dflt_60000, false},
    {"tags", check_tags, NULL, false},
    {"enabled", check_bool, dflt_true, true},
    {"client_certificate", check_foreign, NULL, false},
    {"tls_verify", check_bool, NULL, false},
    {"tls_verify_depth", check_verify_depth, NULL, false},
    {"ca_certificates", check_uuid_array, NULL, false},
    {NULL, NULL, NULL, false},
};

static const struct field route_fields[] = {
    {"id", check_uuid, NULL, false},
    {"name", check_name_utf8, NULL, false},
    {"created_at", check_timestamp, NULL, false},
    {"updated_at", check_timestamp, NULL, false},
    {"protocols", check_protocols, dflt_tcp_set, true},
    {"sources", check_endpoints, NULL, false},
    {"destinations", check_endpoints, NULL, false},
    {"snis", check_snis, NULL, false},
    {"preserve_host", check_bool, dflt_false, true},
    {"service", check_foreign, NULL, false},
    {"tags", check_tags, NULL, false},
    {"methods", check_any, NULL, false},
    {"hosts", check_any, NULL, false},
    {"paths", check_any, NULL, false},
    {"headers", check_any, NULL, false},
    {NULL, NULL, NULL, false},
};

static const struct field certificate_fields[] = {
    {"id", check_uuid, NULL, false},
    {"created_at", check_timestamp, NULL, false},
    {"updated_at", check_timestamp, NULL, false},
    {"cert", check_certificate, NULL, true},
    {"key", check_key, NULL, true},
    {"cert_alt", check_certificate, NULL, false},
    {"key_alt", check_key, NULL, false},
    {"tags", check_tags, NULL, false},
    {NULL, NULL, NULL, false},
};

static const struct field sni_fields[] = {
    {"id", check_uuid, NULL, false},
    {"name", check_sni_name, NULL, true},
    {"created_at", check_timestamp, NULL, false},
    {"updated_at", check_timestamp, NULL, false},
    {"tags", check_tags, NULL, false},
    {"certificate", check_foreign, NULL, true},
    {NULL, NULL, NULL, false},
};

static const struct field ca_certificate_fields[] = {
    {"id", check_uuid, NULL, false},
    {"created_at", check_timestamp, NULL, false},
    {"updated_at", check_timestamp, NULL, false},
    {"cert", check_certificate, NULL, true},
    {"cert_digest", check_string, NULL, false},
    {"tags", check_tags, NULL, false},
    {NULL, NULL, NULL, false},
};

static const char *const service_names[] = {
    "id",
    "name",
    "created_at",
    "updated_at",
    "protocol",
    "host",
    "port",
    "path",
    "retries",
    "connect_timeout",
    "write_timeout",
    "read_timeout",
    "tags",
    "enabled",
    "client_certificate",
    "tls_verify",
    "tls_verify_depth",
    "ca_certificates",
    NULL,
};

static const char *const route_names[] = {
    "id",           "name",  "created_at",    "updated_at", "protocols", "sources",
    "destinations", "snis",  "preserve_host", "service",    "tags",      "methods",
    "hosts",        "paths", "headers",       NULL,
};

static const char *const certificate_names[] = {
    "id", "created_at", "updated_at", "cert", "key", "cert_alt", "key_alt", "tags", NULL,
};

static const char *const sni_names[] = {
    "id", "name", "created_at", "updated_at", "tags", "certificate", NULL,
};

static const char *const ca_certificate_names[] = {
    "id", "created_at", "updated_at", "cert", "cert_digest", "tags", NULL,
};

const char *const *
st_schema_field_names(enum st_entity_kind k)
{
    switch (k) {
    case ST_ENT_ROUTE:
        return route_names;
    case ST_ENT_CERTIFICATE:
        return certificate_names;
    case ST_ENT_SNI:
        return sni_names;
    case ST_ENT_CA_CERTIFICATE:
        return ca_certificate_names;
    default:
        return service_names;
    }
}

static const struct field *
schema_of(enum st_entity_kind k)
{
    switch (k) {
    case ST_ENT_ROUTE:
        return route_fields;
    case ST_ENT_CERTIFICATE:
        return certificate_fields;
    case ST_ENT_SNI:
        return sni_fields;
    case ST_ENT_CA_CERTIFICATE:
        return ca_certificate_fields;
    default:
        return service_fields;
    }
}

json_t *
st_schema_check_value(enum st_entity_kind k, const char *field, const json_t *v)
{
    const struct field *f = schema_of(k);
    json_t *scratch;
    json_t *copy;
    json_t *e;

    while (f->name != NULL && strcmp(f->name, field) != 0) {
        f++;
    }
    if (f->name == NULL || v == NULL || json_is_null(v)) {
        return NULL;
    }
    /* checkers may normalise the value in place: give them a scratch copy */
    copy = json_deep_copy(v);
    scratch = json_object();
    json_object_set(scratch, field, copy);
    e = f->check(scratch, field, copy);
    json_decref(copy);
    json_decref(scratch);
    return e;
}

/* ------------------------------------------------------------------------ */
/* services' url shorthand                                                    */

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
    if (*auth_end == '/') {
        json_object_set_new(obj, "path", json_stringn(auth_end, strcspn(auth_end, "?#")));
    } else {
        json_object_set_new(obj, "path", json_null());
    }
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* entity checks                                                              */

static void
service_checks(json_t *obj, json_t *fields)
{
    static const char *const path_null[] = {"tcp", "tls", "grpc", "grpcs", NULL};
    static const char *const tls_fields[] = {
        "client_certificate", "tls_verify", "tls_verify_depth", "ca_certificates", NULL,
    };
    static const char *const tls_upstream[] = {"https", "tls", NULL};
    const char *p = json_string_value(json_object_get(obj, "protocol"));

    if (p == NULL) {
        return;
    }
    if (!json_is_null(json_object_get(obj, "path")) && str_in(p, path_null)) {
        json_object_set_new(fields, "path", json_string("value must be null"));
        entity_err(fields, MSG_CONDITIONAL_PROTOCOL);
    }
    for (int i = 0; tls_fields[i] != NULL; i++) {
        if (!json_is_null(json_object_get(obj, tls_fields[i])) && !str_in(p, tls_upstream)) {
            json_object_set_new(fields, tls_fields[i], json_string("value must be null"));
            entity_err(fields, MSG_CONDITIONAL_PROTOCOL);
        }
    }
}

/* True when protocols is a non-empty array of strings all in list. */
static bool
protocols_all_in(const json_t *protocols, const char *const *list)
{
    size_t i;
    json_t *el;

    if (!json_is_array(protocols) || json_array_size(protocols) == 0) {
        return false;
    }
    json_array_foreach(protocols, i, el)
    {
        if (!json_is_string(el) || !str_in(json_string_value(el), list)) {
            return false;
        }
    }
    return true;
}

static bool
protocols_none_in(const json_t *protocols, const char *const *list)
{
    size_t i;
    json_t *el;

    if (!json_is_array(protocols) || json_array_size(protocols) == 0) {
        return false;
    }
    json_array_foreach(protocols, i, el)
    {
        if (!json_is_string(el) || str_in(json_string_value(el), list)) {
            return false;
        }
    }
    return true;
}

static void
route_checks(json_t *obj, json_t *fields)
{
    static const char *const tls_like[] = {"grpcs", "https", "tls", "tls_passthrough", NULL};
    static const char *const l4[] = {"tcp", "tls", "udp", NULL};
    static const char *const l4_all[] = {"tcp", "tls", "udp", "tls_passthrough", NULL};
    static const char *const passthrough[] = {"tls_passthrough", NULL};
    static const char *const http_only[] = {"methods", "hosts", "paths", "headers", NULL};
    const json_t *protocols = json_object_get(obj, "protocols");
    const json_t *first = json_array_get(protocols, 0);

    /* routes.lua entity_checks, then the stream subschema's (routes_subschemas.lua). */
    if (protocols_none_in(protocols, tls_like) && is_nonempty(json_object_get(obj, "snis"))) {
        json_object_set_new(fields, "snis", json_string("length must be 0"));
        entity_err(fields, MSG_SNIS_ONLY);
    }
    if (json_is_string(first) && str_in(json_string_value(first), l4_all)) {
        for (int i = 0; http_only[i] != NULL; i++) {
            if (!json_is_null(json_object_get(obj, http_only[i]))) {
                json_object_set_new(fields, http_only[i], errf(MSG_STREAM_FORBIDDEN, http_only[i]));
            }
        }
    }
    if (protocols_all_in(protocols, l4) && !is_nonempty(json_object_get(obj, "sources")) &&
        !is_nonempty(json_object_get(obj, "destinations")) &&
        !is_nonempty(json_object_get(obj, "snis"))) {
        entity_err(fields, MSG_MUST_SET_ONE);
    }
    if (protocols_all_in(protocols, passthrough) && !is_nonempty(json_object_get(obj, "snis"))) {
        entity_err(fields, MSG_MUST_SET_SNIS);
    }
}

/* True when obj[key] is a string that its field check accepted. */
static bool
field_ok(const json_t *obj, const json_t *fields, const char *key)
{
    return json_is_string(json_object_get(obj, key)) && json_object_get(fields, key) == NULL;
}

/* certificates.lua entity_checks, each run only when its fields are valid. */
static void
certificate_checks(json_t *obj, json_t *fields)
{
    const char *cert = json_string_value(json_object_get(obj, "cert"));
    const char *cert_alt = json_string_value(json_object_get(obj, "cert_alt"));
    bool has_cert_alt = !json_is_null(json_object_get(obj, "cert_alt"));
    bool has_key_alt = !json_is_null(json_object_get(obj, "key_alt"));
    struct st_ssl_cert_info a;
    struct st_ssl_cert_info b;
    char msg[384];

    if (has_cert_alt != has_key_alt) {
        entity_err(fields, MSG_ALT_MUTUALLY_REQUIRED);
    }
    if (field_ok(obj, fields, "cert") && field_ok(obj, fields, "key") &&
        !st_ssl_key_matches(cert, json_string_value(json_object_get(obj, "key")))) {
        entity_err(fields, "certificate does not match key");
    }
    if (field_ok(obj, fields, "cert_alt") && field_ok(obj, fields, "key_alt") &&
        !st_ssl_key_matches(cert_alt, json_string_value(json_object_get(obj, "key_alt")))) {
        entity_err(fields, "alternative certificate does not match key");
    }
    if (field_ok(obj, fields, "cert") && field_ok(obj, fields, "cert_alt") &&
        st_ssl_cert_parse(cert, &a, msg, sizeof(msg)) == 0 &&
        st_ssl_cert_parse(cert_alt, &b, msg, sizeof(msg)) == 0 && a.key_type == b.key_type) {
        entity_err(fields, MSG_ALT_SAME_TYPE);
    }
}

/* ca_certificates.lua: cert_digest computed on write, then one CA certificate, not
 * expired (skipped for stored entities: the time of writing decided). */
static void
ca_certificate_checks(json_t *obj, json_t *fields, unsigned flags)
{
    struct st_ssl_cert_info info;
    char msg[384];

    if (!field_ok(obj, fields, "cert") ||
        st_ssl_cert_parse(json_string_value(json_object_get(obj, "cert")), &info, msg,
                          sizeof(msg)) != 0) {
        return;
    }
    json_object_del(fields, "cert_digest");
    json_object_set_new(obj, "cert_digest", json_string(info.digest));
    if (info.n_certs > 1) {
        entity_err(fields, "please submit only one certificate at a time");
    } else if (!(flags & ST_SCHEMA_F_STORED) && info.not_after < (int64_t)time(NULL)) {
        entity_err(fields, "certificate expired, \"Not After\" time is in the past");
    } else if (!info.is_ca) {
        entity_err(fields, "certificate does not appear to be a CA because it is missing the "
                           "\"CA\" basic constraint");
    }
}

/* ------------------------------------------------------------------------ */
/* validate                                                                   */

static bool
is_known(const struct field *f, const char *key)
{
    for (; f->name != NULL; f++) {
        if (strcmp(f->name, key) == 0) {
            return true;
        }
    }
    return false;
}

/* Rebuilds obj with its fields in the schema's output order. */
static void
reorder(json_t *obj, const struct field *f)
{
    json_t *copy = json_object();

    for (; f->name != NULL; f++) {
        json_t *v = json_object_get(obj, f->name);
        if (v != NULL) {
            json_object_set(copy, f->name, v);
        }
    }
    json_object_clear(obj);
    json_object_update(obj, copy);
    json_decref(copy);
}

/* Expands `url`; returns true when it failed (its error is in fields). */
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

int
st_schema_validate(enum st_entity_kind k, json_t *obj, json_t **fields_out)
{
    return st_schema_validate_ex(k, obj, 0, fields_out);
}

/* An entity as the CP stores it (compact JSON) is at most ST_SCHEMA_ENTITY_MAX bytes, so
 * that one write cannot fill the snapshot every DP must take (issue 14). */
static void
entity_size_check(const json_t *obj, json_t *fields)
{
    size_t n = json_dumpb(obj, NULL, 0, JSON_COMPACT);
    char msg[128];

    if (n > ST_SCHEMA_ENTITY_MAX) {
        st_snprintf(msg, sizeof(msg), "entity too large: %zu bytes stored, at most %u", n,
                    ST_SCHEMA_ENTITY_MAX);
        entity_err(fields, msg);
    }
}

int
st_schema_validate_ex(enum st_entity_kind k, json_t *obj, unsigned flags, json_t **fields_out)
{
    const struct field *schema = schema_of(k);
    json_t *fields = json_object();
    bool url_failed = false;
    const char *key;
    json_t *v;

    if (fields_out != NULL) {
        *fields_out = NULL;
    }
    if (!json_is_object(obj)) {
        entity_err(fields, "expected a record");
        goto fail;
    }
    if (k == ST_ENT_SERVICE) {
        url_failed = service_shorthand(obj, fields);
    }
    json_object_foreach(obj, key, v)
    {
        if (!is_known(schema, key)) {
            json_object_set_new(fields, key, json_string("unknown field"));
        }
    }
    for (const struct field *f = schema; f->name != NULL; f++) {
        json_t *e;
        v = json_object_get(obj, f->name);
        if (v == NULL) {
            json_object_set_new(obj, f->name, f->dflt != NULL ? f->dflt() : json_null());
            v = json_object_get(obj, f->name);
        }
        if (json_is_null(v)) {
            if (f->required && !url_failed) {
                json_object_set_new(fields, f->name, json_string("required field missing"));
            }
            continue;
        }
        e = f->check(obj, f->name, v);
        if (e != NULL) {
            json_object_set_new(fields, f->name, e);
        }
    }
    switch (k) {
    case ST_ENT_SERVICE:
        service_checks(obj, fields);
        break;
    case ST_ENT_ROUTE:
        route_checks(obj, fields);
        break;
    case ST_ENT_CERTIFICATE:
        certificate_checks(obj, fields);
        break;
    case ST_ENT_CA_CERTIFICATE:
        ca_certificate_checks(obj, fields, flags);
        break;
    default:
        break;
    }
    entity_size_check(obj, fields);
    if (json_object_size(fields) > 0) {
        goto fail;
    }
    json_decref(fields);
    reorder(obj, schema);
    return 0;

fail:
    if (fields_out != NULL) {
        *fields_out = fields;
    } else {
        json_decref(fields);
    }
    return -ST_ESCHEMA;
}

/* ------------------------------------------------------------------------ */
/* message                                                                    */

struct msgs {
    char **v;
    size_t n;
    size_t cap;
};

static void
msgs_add(struct msgs *m, const char *path, const char *msg)
{
    char buf[768];

    if (path != NULL && path[0] != '\0') {
        snprintf(buf, sizeof(buf), "%s: %s", path, msg);
    } else {
        snprintf(buf, sizeof(buf), "%s", msg);
    }
    if (m->n == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 8;
        m->v = st_xrealloc(m->v, m->cap * sizeof(*m->v));
    }
    m->v[m->n++] = st_xstrdup(buf);
}

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void flatten(struct msgs *m, const char *path, const json_t *v);

/* An object's errors: its @entity messages under path, then its keys sorted. */
static void
flatten_object(struct msgs *m, const char *path, const json_t *obj)
{
    const json_t *ent = json_object_get(obj, "@entity");
    size_t n = 0;
    const char **keys;
    const char *key;
    json_t *v;
    size_t i;

    if (json_is_array(ent)) {
        json_array_foreach(ent, i, v)
        {
            if (json_is_string(v)) {
                msgs_add(m, path, json_string_value(v));
            }
        }
    }
    keys = st_xcalloc(json_object_size(obj) + 1, sizeof(*keys));
    json_object_foreach((json_t *)obj, key, v)
    {
        if (strcmp(key, "@entity") != 0) {
            keys[n++] = key;
        }
    }
    qsort(keys, n, sizeof(*keys), cmp_str);
    for (i = 0; i < n; i++) {
        char sub[256];
        if (path != NULL && path[0] != '\0') {
            snprintf(sub, sizeof(sub), "%s.%s", path, keys[i]);
        } else {
            snprintf(sub, sizeof(sub), "%s", keys[i]);
        }
        flatten(m, sub, json_object_get(obj, keys[i]));
    }
    free(keys);
}

static void
flatten(struct msgs *m, const char *path, const json_t *v)
{
    size_t i;
    json_t *el;

    if (json_is_string(v)) {
        msgs_add(m, path, json_string_value(v));
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, el)
        {
            char sub[256];
            if (json_is_null(el)) {
                continue;
            }
            snprintf(sub, sizeof(sub), "%s.%zu", path, i + 1);
            flatten(m, sub, el);
        }
    } else if (json_is_object(v)) {
        flatten_object(m, path, v);
    }
}

void
st_schema_message(const json_t *fields, char *buf, size_t size)
{
    struct msgs m = {NULL, 0, 0};
    size_t len;

    if (size == 0) {
        return;
    }
    if (json_is_object(fields)) {
        flatten_object(&m, NULL, fields);
    }
    if (m.n <= 1) {
        snprintf(buf, size, "schema violation (%s)", m.n == 1 ? m.v[0] : "");
    } else {
        snprintf(buf, size, "%zu schema violations (", m.n);
        for (size_t i = 0; i < m.n; i++) {
            len = strlen(buf);
            snprintf(buf + len, size - len, "%s%s", i > 0 ? "; " : "", m.v[i]);
        }
        len = strlen(buf);
        snprintf(buf + len, size - len, ")");
    }
    for (size_t i = 0; i < m.n; i++) {
        free(m.v[i]);
    }
    free(m.v);
}
