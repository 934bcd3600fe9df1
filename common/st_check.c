/* Kong's field checks (kong/db/schema/typedefs.lua; the type checks and messages of
 * kong/db/schema/init.lua), shared by the entity descriptions: see st_check.h. What one
 * kind alone checks lives in its description file (common/st_ent_<kind>.c). */
#include "st_check.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "st_schema.h"
#include "st_ssl.h"
#include "st_util.h"

/* ------------------------------------------------------------------------ */
/* error values and predicates                                                */

json_t *
st_check_errf(const char *fmt, ...)
{
    char buf[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    return json_string(buf);
}

void
st_check_entity_err(json_t *fields, const char *msg)
{
    json_t *a = json_object_get(fields, "@entity");

    if (a == NULL) {
        a = json_array();
        json_object_set_new(fields, "@entity", a);
    }
    json_array_append_new(a, json_string(msg));
}

/* Puts err at index i of *arr (created on demand), with nulls before it. */
void
st_check_arr_put(json_t **arr, size_t i, json_t *err)
{
    if (*arr == NULL) {
        *arr = json_array();
    }
    while (json_array_size(*arr) < i) {
        json_array_append_new(*arr, json_null());
    }
    json_array_append_new(*arr, err);
}

bool
st_check_str_in(const char *s, const char *const *list)
{
    for (; *list != NULL; list++) {
        if (strcmp(s, *list) == 0) {
            return true;
        }
    }
    return false;
}

bool
st_check_is_nonempty(const json_t *v)
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

/* True when obj[key] is a string that its field check accepted. */
bool
st_check_field_ok(const json_t *obj, const json_t *fields, const char *key)
{
    return json_is_string(json_object_get(obj, key)) && json_object_get(fields, key) == NULL;
}

/* Reads an integer, turning an integral real (80.0) into an integer in place. */
bool
st_check_get_int(json_t *obj, const char *key, json_t *v, json_int_t *out)
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

json_t *
st_check_int_range(json_t *obj, const char *key, json_t *v, json_int_t min, json_int_t max)
{
    json_int_t n;

    if (!st_check_get_int(obj, key, v, &n)) {
        return json_string("expected an integer");
    }
    if (n < min || n > max) {
        return st_check_errf("value should be between %lld and %lld", (long long)min,
                             (long long)max);
    }
    return NULL;
}

/* Kong strings: a string of at least one byte. Returns the error or NULL. */
json_t *
st_check_str(const json_t *v)
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
json_t *
st_check_str_max(const json_t *v, size_t max)
{
    json_t *e = st_check_str(v);

    if (e == NULL && json_string_length(v) > max) {
        e = st_check_errf("length must be at most %zu", max);
    }
    return e;
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

/* ------------------------------------------------------------------------ */
/* strings, names, sets                                                       */

/* A set of strings whose elements elem() checks; duplicates removed. */
json_t *
st_check_string_set(json_t *obj, const char *key, json_t *v, json_t *(*elem)(const json_t *))
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
            st_check_arr_put(&errs, i, e);
        }
    }
    if (errs != NULL) {
        return errs;
    }
    st_check_dedupe(obj, key, v);
    return NULL;
}

/* Kong's make_set: drops repeated strings, keeping the first of each. */
void
st_check_dedupe(json_t *obj, const char *key, json_t *v)
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

static json_t *
check_tag(const json_t *v)
{
    json_t *e = st_check_str_max(v, ST_SCHEMA_TAG_MAX);
    const unsigned char *s;
    size_t bad;

    if (e != NULL) {
        return e;
    }
    s = (const unsigned char *)json_string_value(v);
    bad = utf8_bad_pos(s, json_string_length(v));
    if (bad != 0) {
        return st_check_errf("invalid utf-8 character sequence detected at position %zu", bad);
    }
    for (size_t i = 0; s[i] != '\0'; i++) {
        unsigned char c = s[i];
        if (c < 32 || c == 127 || c == ',' || c == '/' || c > 244) {
            return st_check_errf(
                "invalid tag '%s': expected printable ascii (except `,` and `/`) or "
                "valid utf-8 sequences",
                (const char *)s);
        }
    }
    return NULL;
}

/* typedefs.tags */
json_t *
st_check_tags(json_t *obj, const struct st_field *f, json_t *v)
{
    if (json_is_array(v) && json_array_size(v) > ST_SCHEMA_TAGS_MAX) {
        return st_check_errf("length must be at most %d", ST_SCHEMA_TAGS_MAX);
    }
    return st_check_string_set(obj, f->name, v, check_tag);
}

/* typedefs.name: ASCII only (services.name). */
json_t *
st_check_name(json_t *obj, const struct st_field *f, json_t *v)
{
    json_t *e = st_check_str_max(v, ST_SCHEMA_NAME_MAX);
    const unsigned char *s;

    (void)obj;
    (void)f;
    if (e != NULL) {
        return e;
    }
    s = (const unsigned char *)json_string_value(v);
    for (size_t i = 0; s[i] != '\0'; i++) {
        if (!is_alnum(s[i]) && strchr(".-_~", s[i]) == NULL) {
            return st_check_errf("invalid value '%s': it must only contain alphanumeric and "
                                 "'., -, _, ~' characters",
                                 (const char *)s);
        }
    }
    return NULL;
}

/* typedefs.utf8_name (routes.name). */
json_t *
st_check_utf8_name(json_t *obj, const struct st_field *f, json_t *v)
{
    json_t *e = st_check_str_max(v, ST_SCHEMA_NAME_MAX);
    const unsigned char *s;
    size_t bad;

    (void)obj;
    (void)f;
    if (e != NULL) {
        return e;
    }
    s = (const unsigned char *)json_string_value(v);
    bad = utf8_bad_pos(s, json_string_length(v));
    if (bad != 0) {
        return st_check_errf("invalid utf-8 character sequence detected at position %zu", bad);
    }
    for (size_t i = 0; s[i] != '\0'; i++) {
        if (!is_alnum(s[i]) && strchr(".-_~", s[i]) == NULL && !(s[i] >= 128 && s[i] <= 244)) {
            return st_check_errf("invalid value '%s': the only accepted ascii characters are "
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
json_t *
st_check_host(json_t *obj, const struct st_field *f, json_t *v)
{
    json_t *e = st_check_str(v);
    const char *s;
    bool has_port;

    (void)obj;
    (void)f;
    if (e != NULL) {
        return e;
    }
    s = json_string_value(v);
    if (host_classify(s, &has_port) == HOST_INVALID) {
        return st_check_errf("invalid value: %s", s);
    }
    if (has_port) {
        return json_string("must not have a port");
    }
    return NULL;
}

/* typedefs.wildcard_host (route snis, the traditional_compatible router; snis.name) */
json_t *
st_check_wildcard_host(const json_t *v)
{
    json_t *e = st_check_str(v);
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
        return st_check_errf("invalid value: %s", mock);
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
json_t *
st_check_path(json_t *obj, const struct st_field *f, json_t *v)
{
    json_t *e = st_check_str(v);

    (void)obj;
    (void)f;
    if (e != NULL) {
        return e;
    }
    if (json_string_value(v)[0] != '/') {
        return json_string("should start with: /");
    }
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* scalars                                                                    */

json_t *
st_check_port(json_t *obj, const struct st_field *f, json_t *v)
{
    return st_check_int_range(obj, f->name, v, 0, 65535);
}

json_t *
st_check_timeout(json_t *obj, const struct st_field *f, json_t *v)
{
    return st_check_int_range(obj, f->name, v, 1, 2147483646);
}

json_t *
st_check_timestamp(json_t *obj, const struct st_field *f, json_t *v)
{
    json_int_t n;

    if (!st_check_get_int(obj, f->name, v, &n)) {
        return json_string("expected an integer");
    }
    if (n <= 0) {
        return json_string("expected a valid timestamp");
    }
    return NULL;
}

json_t *
st_check_bool(json_t *obj, const struct st_field *f, json_t *v)
{
    (void)obj;
    (void)f;
    return json_is_boolean(v) ? NULL : json_string("expected a boolean");
}

json_t *
st_check_string(json_t *obj, const struct st_field *f, json_t *v)
{
    (void)obj;
    (void)f;
    return st_check_str(v);
}

/* A uuid value; f may be NULL (an element of an array). */
json_t *
st_check_uuid(json_t *obj, const struct st_field *f, json_t *v)
{
    (void)obj;
    (void)f;
    if (!json_is_string(v)) {
        return json_string("expected a string");
    }
    return st_schema_is_uuid(json_string_value(v)) ? NULL : json_string("expected a valid UUID");
}

/* ------------------------------------------------------------------------ */
/* protocols                                                                  */

static const char *const kong_protocols[] = {
    "grpc", "grpcs", "http", "https", "tcp", "tls", "tls_passthrough", "udp", NULL,
};
static const char *const http_protocols[] = {"grpc", "grpcs", "http", "https", NULL};

bool
st_check_is_kong_protocol(const char *p)
{
    return st_check_str_in(p, kong_protocols);
}

/* Strait's refusal of a protocol Kong knows, or NULL when Strait proxies it. */
json_t *
st_check_protocol_unsupported(const char *p, const char *const *later)
{
    if (st_check_str_in(p, http_protocols)) {
        return st_check_errf("'%s' is not supported: Strait proxies tcp", p);
    }
    if (st_check_str_in(p, later)) {
        return st_check_errf("'%s' is not supported yet", p);
    }
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* foreign keys                                                               */

/* A foreign key (routes.service, snis.certificate, services.client_certificate):
 * {"id": uuid}, kept as exactly that. Written by the referenced kind's endpoint key
 * instead ({"name": ...}: the admin API resolves valid ones), an invalid key is reported
 * as Kong reports it, "service.name: invalid value ...". */
json_t *
st_check_foreign(json_t *obj, const struct st_field *f, json_t *v)
{
    const struct st_field *ep = st_entity_endpoint(f->ref->kind);
    json_t *id;
    json_t *e;

    if (!json_is_object(v)) {
        return json_string("expected a record");
    }
    id = json_object_get(v, "id");
    if (id == NULL) {
        json_t *key = ep != NULL ? json_object_get(v, ep->name) : NULL;

        e = json_is_string(key) ? st_check_of(ep)(v, ep, key) : NULL;
        if (e != NULL) {
            json_t *errs = json_object();

            json_object_set_new(errs, ep->name, e);
            return errs;
        }
        e = json_string("missing primary key");
    } else if (json_is_null(id)) {
        e = json_string("required field missing");
    } else {
        e = st_check_uuid(v, NULL, id);
    }
    if (e != NULL) {
        json_t *errs = json_object();
        json_object_set_new(errs, "id", e);
        return errs;
    }
    json_object_set_new(obj, f->name, json_pack("{s:O}", "id", id));
    return NULL;
}

/* services.ca_certificates: an array (repeats kept, order kept) of uuids. */
json_t *
st_check_uuid_array(json_t *obj, const struct st_field *f, json_t *v)
{
    json_t *errs = NULL;
    size_t i;
    json_t *el;

    (void)obj;
    (void)f;
    if (!json_is_array(v)) {
        return json_string("expected an array");
    }
    json_array_foreach(v, i, el)
    {
        json_t *e = st_check_uuid(v, NULL, el);
        if (e != NULL) {
            st_check_arr_put(&errs, i, e);
        }
    }
    return errs;
}

/* ------------------------------------------------------------------------ */
/* records                                                                    */

json_t *
st_check_record(json_t *rec, const struct st_field *sub)
{
    const struct st_field *f;
    json_t *errs;
    const char *key;
    json_t *v;

    if (!json_is_object(rec)) {
        return json_string("expected a record");
    }
    errs = json_object();
    json_object_foreach(rec, key, v)
    {
        for (f = sub; f->name != NULL && strcmp(f->name, key) != 0; f++) {
        }
        if (f->name == NULL) {
            json_object_set_new(errs, key, json_string("unknown field"));
        }
    }
    for (f = sub; f->name != NULL; f++) {
        if (json_object_get(rec, f->name) == NULL) {
            json_object_set_new(rec, f->name, json_null());
        }
    }
    for (f = sub; f->name != NULL; f++) {
        json_t *e = NULL;

        v = json_object_get(rec, f->name);
        if (!json_is_null(v) && st_check_of(f) != NULL) {
            e = st_check_of(f)(rec, f, v);
        }
        if (e != NULL) {
            json_object_set_new(errs, f->name, e);
        }
    }
    return errs;
}

/* ------------------------------------------------------------------------ */
/* certificates and keys (through st_ssl)                                     */

/* typedefs.certificate: PEM that parses (a chain is allowed). */
json_t *
st_check_certificate(json_t *obj, const struct st_field *f, json_t *v)
{
    struct st_ssl_cert_info info;
    char msg[384];
    json_t *e = st_check_str(v);

    (void)obj;
    (void)f;
    if (e != NULL) {
        return e;
    }
    if (st_ssl_cert_parse(json_string_value(v), &info, msg, sizeof(msg)) != 0) {
        return json_string(msg);
    }
    return NULL;
}

/* typedefs.key: a PEM private key that parses. */
json_t *
st_check_key(json_t *obj, const struct st_field *f, json_t *v)
{
    char msg[384];
    json_t *e = st_check_str(v);

    (void)obj;
    (void)f;
    if (e != NULL) {
        return e;
    }
    if (st_ssl_key_parse(json_string_value(v), msg, sizeof(msg)) != 0) {
        return json_string(msg);
    }
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* a field's check                                                             */

static st_check_fn *
type_check(const struct st_field *f)
{
    if (f->flags & ST_FIELD_F_HTTP_ONLY) {
        return NULL;
    }
    switch (f->type) {
    case ST_FT_STRING:
        return st_check_string;
    case ST_FT_BOOLEAN:
        return st_check_bool;
    case ST_FT_TIMESTAMP:
        return st_check_timestamp;
    case ST_FT_UUID:
        return st_check_uuid;
    case ST_FT_FOREIGN:
        return st_check_foreign;
    case ST_FT_FOREIGN_SET:
        return st_check_uuid_array;
    default:
        return NULL; /* integers, sets, records, maps: each field names its check */
    }
}

st_check_fn *
st_check_of(const struct st_field *f)
{
    return f->check != NULL ? f->check : type_check(f);
}
