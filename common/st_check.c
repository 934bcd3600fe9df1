/* Kong's field checks (kong/db/schema/typedefs.lua; the type checks and messages of
 * kong/db/schema/init.lua), shared by the entity descriptions: see st_check.h. What one
 * kind alone checks lives in its description file (common/st_ent_<kind>.c). */
#include "st_check.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_json.h"
#include "st_schema.h"
#include "st_ssl.h"
#include "st_str.h"
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
    json_array_append_new(st_json_child(fields, "@entity", JSON_ARRAY), json_string(msg));
}

bool
st_check_is_nonempty(const json_t *v)
{
    if (json_is_array(v)) {
        return json_array_size(v) > 0;
    }
    if (json_is_object(v)) {
        return json_object_size(v) > 0;
    }
    if (json_is_string(v)) {
        return json_string_length(v) > 0;
    }
    return v != NULL && !json_is_null(v);
}

bool
st_check_field_ok(const json_t *obj, const json_t *fields, const char *key)
{
    return json_is_string(json_object_get(obj, key)) && json_object_get(fields, key) == NULL;
}

/* Reads an integer, turning an integral real (80.0) at obj[key] into an integer in
 * place. False when v is no integer. */
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

json_t *
st_check_int_range(json_t *obj, const char *key, json_t *v, json_int_t min, json_int_t max)
{
    json_int_t n;

    if (!get_int(obj, key, v, &n)) {
        return json_string("expected an integer");
    }
    if (n < min || n > max) {
        return st_check_errf("value should be between %lld and %lld", (long long)min,
                             (long long)max);
    }
    return NULL;
}

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

json_t *
st_check_array(json_t *v, const char *expected, st_check_elem_fn *elem)
{
    json_t *errs = NULL;
    size_t i;
    json_t *el;

    if (!json_is_array(v)) {
        return st_check_errf("expected %s", expected);
    }
    json_array_foreach(v, i, el)
    {
        json_t *e = elem(el);
        if (e != NULL) {
            st_json_arr_put(&errs, i, e);
        }
    }
    return errs;
}

json_t *
st_check_string_set(json_t *obj, const char *key, json_t *v, st_check_elem_fn *elem)
{
    json_t *errs = st_check_array(v, "a set", elem);
    json_t *out;
    size_t i;
    json_t *el;

    if (errs != NULL) {
        return errs;
    }
    out = json_array();
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
    return NULL;
}

/* st_check_str_max, then Kong's utils.validate_utf8. */
static json_t *
check_utf8(const json_t *v, size_t max)
{
    json_t *e = st_check_str_max(v, max);
    size_t bad;

    if (e != NULL) {
        return e;
    }
    bad = utf8_bad_pos((const unsigned char *)json_string_value(v), json_string_length(v));
    if (bad != 0) {
        return st_check_errf("invalid utf-8 character sequence detected at position %zu", bad);
    }
    return NULL;
}

static json_t *
check_tag(json_t *v)
{
    json_t *e = check_utf8(v, ST_SCHEMA_TAG_MAX);
    const unsigned char *s = (const unsigned char *)json_string_value(v);

    if (e != NULL) {
        return e;
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

json_t *
st_check_tags(json_t *obj, const struct st_field *f, json_t *v)
{
    if (json_is_array(v) && json_array_size(v) > ST_SCHEMA_TAGS_MAX) {
        return st_check_errf("length must be at most %d", ST_SCHEMA_TAGS_MAX);
    }
    return st_check_string_set(obj, f->name, v, check_tag);
}

/* typedefs.name (ASCII only) and typedefs.utf8_name (bytes 128..244 too). */
static json_t *
check_name(const json_t *v, bool utf8)
{
    json_t *e = utf8 ? check_utf8(v, ST_SCHEMA_NAME_MAX) : st_check_str_max(v, ST_SCHEMA_NAME_MAX);
    const unsigned char *s = (const unsigned char *)json_string_value(v);

    if (e != NULL) {
        return e;
    }
    for (size_t i = 0; s[i] != '\0'; i++) {
        if (!is_alnum(s[i]) && strchr(".-_~", s[i]) == NULL &&
            !(utf8 && s[i] >= 128 && s[i] <= 244)) {
            return st_check_errf("invalid value '%s': %s", (const char *)s,
                                 utf8 ? "the only accepted ascii characters are alphanumerics "
                                        "or ., -, _, and ~"
                                      : "it must only contain alphanumeric and '., -, _, ~' "
                                        "characters");
        }
    }
    return NULL;
}

json_t *
st_check_name(json_t *obj, const struct st_field *f, json_t *v)
{
    (void)obj;
    (void)f;
    return check_name(v, false);
}

json_t *
st_check_utf8_name(json_t *obj, const struct st_field *f, json_t *v)
{
    (void)obj;
    (void)f;
    return check_name(v, true);
}

/* ------------------------------------------------------------------------ */
/* hosts (kong/tools/ip.lua normalize_ip, check_hostname)                    */

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

static enum st_host_kind
host_ipv6(const char *s, bool *has_port)
{
    char buf[64];
    unsigned char a[16];
    const char *end;

    if (s[0] == '[') {
        end = strchr(s, ']');
        if (end == NULL || (size_t)(end - s - 1) >= sizeof(buf)) {
            return ST_HOST_INVALID;
        }
        memcpy(buf, s + 1, (size_t)(end - s - 1));
        buf[end - s - 1] = '\0';
        if (end[1] == ':' && all_digits(end + 2)) {
            *has_port = true;
        } else if (end[1] != '\0') {
            return ST_HOST_INVALID;
        }
    } else if (st_snprintf(buf, sizeof(buf), "%s", s) != 0) {
        return ST_HOST_INVALID;
    }
    return inet_pton(AF_INET6, buf, a) == 1 ? ST_HOST_IPV6 : ST_HOST_INVALID;
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

/* s into buf without its ":port" (*has_port set); false when s does not fit or what
 * follows its colon is no number. */
static bool
strip_port(const char *s, char *buf, size_t size, bool *has_port)
{
    const char *colon = strchr(s, ':');

    if (st_snprintf(buf, size, "%s", s) != 0 || (colon != NULL && !all_digits(colon + 1))) {
        return false;
    }
    if (colon != NULL) {
        *has_port = true;
        buf[colon - s] = '\0';
    }
    return true;
}

static enum st_host_kind
host_name(const char *s, bool *has_port)
{
    char buf[512];
    size_t len;

    if (!strip_port(s, buf, sizeof(buf), has_port) || buf[0] == '\0') {
        return ST_HOST_INVALID;
    }
    len = strlen(buf);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)buf[i];
        if (!is_alnum(c) && c != '-' && c != '.' && c != '_') {
            return ST_HOST_INVALID;
        }
    }
    /* Each label non-empty (a trailing dot is allowed) and not ending in '-'. */
    if (buf[0] == '.' || strstr(buf, "..") != NULL || strstr(buf, "-.") != NULL ||
        buf[len - 1] == '-') {
        return ST_HOST_INVALID;
    }
    return ST_HOST_NAME;
}

/* Classifies name, name:port, ipv4, ipv4:port, ipv6, [ipv6], [ipv6]:port. */
static enum st_host_kind
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

        return strip_port(s, buf, sizeof(buf), has_port) && inet_pton(AF_INET, buf, a) == 1
                   ? ST_HOST_IPV4
                   : ST_HOST_INVALID;
    }
    return host_name(s, has_port);
}

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
    if (host_classify(s, &has_port) == ST_HOST_INVALID) {
        return st_check_errf("invalid value: %s", s);
    }
    if (has_port) {
        return json_string("must not have a port");
    }
    return NULL;
}

enum st_host_kind
st_check_host_kind(const char *s, bool *has_port)
{
    return host_classify(s, has_port);
}

/* The port written after the host of s (name:port, ipv4:port, [ipv6]:port), or -1. */
static long
port_of(const char *s)
{
    const char *c = strrchr(s, ':');

    if (c == NULL || (s[0] != '[' && strchr(s, ':') != c) || (s[0] == '[' && c[-1] != ']') ||
        !all_digits(c + 1) || strlen(c + 1) > 6) {
        return -1;
    }
    return strtol(c + 1, NULL, 10);
}

/* s without its port into buf (brackets of an IPv6 address dropped). */
static void
host_part(const char *s, char *buf, size_t size)
{
    long port = port_of(s);
    size_t n = strlen(s);

    if (port >= 0) {
        n = (size_t)(strrchr(s, ':') - s);
    }
    if (s[0] == '[') {
        s++;
        n = strchr(s, ']') != NULL ? (size_t)(strchr(s, ']') - s) : n - 1;
    }
    st_snprintf(buf, size, "%.*s", (int)n, s);
}

/* What typedefs.sni and wildcard_host say of a host that must be a name without a port. */
static json_t *
name_without_port(const char *s)
{
    bool has_port;
    enum st_host_kind kind = host_classify(s, &has_port);

    if (kind == ST_HOST_INVALID) {
        return st_check_errf("invalid value: %s", s);
    }
    if (kind != ST_HOST_NAME) {
        return json_string("must not be an IP");
    }
    return has_port ? json_string("must not have a port") : NULL;
}

/* typedefs.sni: a host name without a port. */
json_t *
st_check_sni(json_t *obj, const struct st_field *f, json_t *v)
{
    json_t *e = st_check_str(v);

    (void)obj;
    (void)f;
    return e != NULL ? e : name_without_port(json_string_value(v));
}

/* typedefs.host_with_optional_port: normalize_ip's own messages. */
json_t *
st_check_host_port(json_t *obj, const struct st_field *f, json_t *v)
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
    if (host_classify(s, &has_port) != ST_HOST_INVALID) {
        return has_port && port_of(s) > 65535 ? json_string("invalid port number") : NULL;
    }
    if (s[0] == '[' || strchr(s, ':') != strrchr(s, ':')) {
        return st_check_errf("invalid ipv6 address: %s", s);
    }
    if (looks_ipv4(s)) {
        return st_check_errf("invalid ipv4 address: %s", s);
    }
    return st_check_errf("invalid hostname: %s", s);
}

int
st_check_host_format(const char *s, unsigned default_port, char *out, size_t size)
{
    char host[512];
    unsigned char a[16];
    bool has_port;
    enum st_host_kind kind = host_classify(s, &has_port);
    long port = has_port ? port_of(s) : (long)default_port;

    if (kind == ST_HOST_INVALID || port < 0 || port > 65535) {
        return -1;
    }
    host_part(s, host, sizeof(host));
    if (kind == ST_HOST_IPV4 && inet_pton(AF_INET, host, a) == 1) {
        return st_snprintf(out, size, "%u.%u.%u.%u:%ld", a[0], a[1], a[2], a[3], port);
    }
    if (kind == ST_HOST_IPV6 && inet_pton(AF_INET6, host, a) == 1) {
        /* Kong's normalize_ipv6: eight groups of four lower-case hex digits */
        return st_snprintf(out, size,
                           "[%02x%02x:%02x%02x:%02x%02x:%02x%02x:%02x%02x:%02x%02x:%02x%02x:"
                           "%02x%02x]:%ld",
                           a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11],
                           a[12], a[13], a[14], a[15], port);
    }
    return kind == ST_HOST_NAME ? st_snprintf(out, size, "%s:%ld", host, port) : -1;
}

/* tools/http.lua validate_header_name */
static json_t *
header_name(const char *s)
{
    for (const char *p = s; *p != '\0'; p++) {
        if (!is_alnum((unsigned char)*p) && *p != '-' && *p != '_') {
            return st_check_errf("bad header name '%s', allowed characters are A-Z, a-z, 0-9, "
                                 "'_', and '-'",
                                 s);
        }
    }
    return *s == '\0' ? json_string("no header name provided") : NULL;
}

json_t *
st_check_header_name(json_t *obj, const struct st_field *f, json_t *v)
{
    (void)obj;
    (void)f;
    return json_is_string(v) ? header_name(json_string_value(v)) : json_string("expected a string");
}

static json_t *
string_value(json_t *el)
{
    return json_is_string(el) ? NULL : json_string("expected a string");
}

/* typedefs.headers: header names to arrays of strings. */
json_t *
st_check_headers(json_t *obj, const struct st_field *f, json_t *v)
{
    json_t *errs;
    const char *key;
    json_t *val;

    (void)obj;
    (void)f;
    if (!json_is_object(v)) {
        return json_string("expected a map");
    }
    errs = json_object();
    json_object_foreach(v, key, val)
    {
        json_t *e = header_name(key);

        if (e == NULL) {
            e = st_check_array(val, "an array", string_value);
        }
        if (e != NULL) {
            json_object_set_new(errs, key, e);
        }
    }
    if (json_object_size(errs) == 0) {
        json_decref(errs);
        return NULL;
    }
    return errs;
}

/* typedefs.wildcard_host (route snis, the traditional_compatible router; snis.name) */
json_t *
st_check_wildcard_host(json_t *v)
{
    json_t *e = st_check_str(v);
    const char *s;
    const char *star;
    char mock[512];
    size_t o = 0;

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
    return name_without_port(mock);
}

/* typedefs.path: only its own shape; services' conditional decides null-ness. */
json_t *
st_check_path(json_t *obj, const struct st_field *f, json_t *v)
{
    json_t *e = st_check_str(v);

    (void)obj;
    (void)f;
    if (e == NULL && json_string_value(v)[0] != '/') {
        e = json_string("should start with: /");
    }
    return e;
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

    if (!get_int(obj, f->name, v, &n)) {
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

static json_t *
check_string(json_t *obj, const struct st_field *f, json_t *v)
{
    (void)obj;
    (void)f;
    return st_check_str(v);
}

static json_t *
uuid_value(json_t *v)
{
    if (!json_is_string(v)) {
        return json_string("expected a string");
    }
    return st_schema_is_uuid(json_string_value(v)) ? NULL : json_string("expected a valid UUID");
}

json_t *
st_check_uuid(json_t *obj, const struct st_field *f, json_t *v)
{
    (void)obj;
    (void)f;
    return uuid_value(v);
}

/* ------------------------------------------------------------------------ */
/* protocols                                                                  */

static const char *const kong_protocols[] = {
    "grpc", "grpcs", "http", "https", "tcp", "tls", "tls_passthrough", "udp", NULL,
};
static const char *const http_protocols[] = {"grpc", "grpcs", "http", "https", NULL};

json_t *
st_check_kong_protocol(json_t *v)
{
    if (!json_is_string(v)) {
        return json_string("expected a string");
    }
    if (!st_str_in(json_string_value(v), kong_protocols)) {
        return json_string("expected one of: grpc, grpcs, http, https, tcp, tls, tls_passthrough, "
                           "udp");
    }
    return NULL;
}

json_t *
st_check_protocol_unsupported(const char *p, const char *const *later)
{
    if (st_str_in(p, http_protocols)) {
        return st_check_errf("'%s' is not supported: Strait proxies tcp", p);
    }
    if (st_str_in(p, later)) {
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
            return json_pack("{s:o}", ep->name, e);
        }
        e = json_string("missing primary key");
    } else if (json_is_null(id)) {
        e = json_string("required field missing");
    } else {
        e = uuid_value(id);
    }
    if (e != NULL) {
        return json_pack("{s:o}", "id", e);
    }
    json_object_set_new(obj, f->name, json_pack("{s:O}", "id", id));
    return NULL;
}

/* services.ca_certificates: an array (repeats kept, order kept) of uuids. */
static json_t *
check_uuid_array(json_t *obj, const struct st_field *f, json_t *v)
{
    (void)obj;
    (void)f;
    return st_check_array(v, "an array", uuid_value);
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

/* Kong's records (not nullable): every field present, an absent one (or a null record)
 * set to its default, in the description's order. */
static json_t *
check_record(json_t *obj, const struct st_field *f, json_t *v)
{
    json_t *errs, *copy, *sv;
    const struct st_field *sub;
    const char *key;

    (void)obj;
    if (!json_is_object(v)) {
        return json_string("expected a record");
    }
    errs = json_object();
    json_object_foreach(v, key, sv)
    {
        for (sub = f->sub; sub->name != NULL && strcmp(sub->name, key) != 0; sub++) {
        }
        if (sub->name == NULL) {
            json_object_set_new(errs, key, json_string("unknown field"));
        }
    }
    copy = json_object();
    for (sub = f->sub; sub->name != NULL; sub++) {
        json_t *e = NULL;

        sv = json_object_get(v, sub->name);
        if (sv == NULL || (json_is_null(sv) && sub->type == ST_FT_RECORD)) {
            json_object_set_new(v, sub->name, st_check_default(sub));
            sv = json_object_get(v, sub->name);
        }
        if (json_is_null(sv)) {
            if (sub->flags & ST_FIELD_F_REQUIRED) {
                e = json_string("required field missing");
            }
        } else if (st_check_of(sub) != NULL) {
            e = st_check_of(sub)(v, sub, sv);
        }
        if (e != NULL) {
            json_object_set_new(errs, sub->name, e);
        }
        json_object_set(copy, sub->name, json_object_get(v, sub->name));
    }
    json_object_clear(v); /* v's keys in the description's order (copy holds them) */
    json_object_update(v, copy);
    json_decref(copy);
    if (json_object_size(errs) == 0) {
        json_decref(errs);
        return NULL;
    }
    return errs;
}

json_t *
st_check_default(const struct st_field *f)
{
    json_t *v = f->dflt != NULL ? json_loads(f->dflt, JSON_DECODE_ANY, NULL) : NULL;

    if (f->type == ST_FT_RECORD && f->sub == NULL) {
        return v != NULL ? v : json_object(); /* abstract (plugins' config): its check fills it */
    }
    if (f->type == ST_FT_RECORD) {
        json_t *e;

        v = v != NULL ? v : json_object();
        e = check_record(NULL, f, v);
        json_decref(e); /* a description's defaults pass (tests/unit/test_st_entity.c) */
    }
    return v != NULL ? v : json_null();
}

json_t *
st_check_number_range(json_t *obj, const char *key, json_t *v, double min, double max)
{
    json_int_t n;
    double d;

    if (get_int(obj, key, v, &n)) {
        d = (double)n;
    } else if (json_is_real(v)) {
        d = json_real_value(v);
    } else {
        return json_string("expected a number");
    }
    if (d < min || d > max) {
        return st_check_errf("value should be between %g and %g", min, max);
    }
    return NULL;
}

json_t *
st_check_int_array(json_t *v, json_int_t min, json_int_t max)
{
    json_t *errs = NULL;
    json_t *el;
    size_t i;

    if (!json_is_array(v)) {
        return json_string("expected an array");
    }
    json_array_foreach(v, i, el)
    {
        json_t *e = NULL;

        if (json_is_real(el) && json_real_value(el) > -1e15 && json_real_value(el) < 1e15 &&
            json_real_value(el) == (double)(json_int_t)json_real_value(el)) {
            json_array_set_new(v, i, json_integer((json_int_t)json_real_value(el)));
            el = json_array_get(v, i);
        }
        if (!json_is_integer(el)) {
            e = json_string("expected an integer");
        } else if (json_integer_value(el) < min || json_integer_value(el) > max) {
            e = st_check_errf("value should be between %lld and %lld", (long long)min,
                              (long long)max);
        }
        if (e != NULL) {
            st_json_arr_put(&errs, i, e);
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
    if (e == NULL && st_ssl_cert_parse(json_string_value(v), &info, msg, sizeof(msg)) != 0) {
        e = json_string(msg);
    }
    return e;
}

json_t *
st_check_key(json_t *obj, const struct st_field *f, json_t *v)
{
    char msg[384];
    json_t *e = st_check_str(v);

    (void)obj;
    (void)f;
    if (e == NULL && st_ssl_key_parse(json_string_value(v), msg, sizeof(msg)) != 0) {
        e = json_string(msg);
    }
    return e;
}

/* ------------------------------------------------------------------------ */
/* a field's check                                                             */

st_check_fn *
st_check_of(const struct st_field *f)
{
    if (f->check != NULL) {
        return f->check;
    }
    if (f->flags & ST_FIELD_F_HTTP_ONLY) {
        return NULL;
    }
    switch (f->type) {
    case ST_FT_STRING:
        return check_string;
    case ST_FT_BOOLEAN:
        return st_check_bool;
    case ST_FT_TIMESTAMP:
        return st_check_timestamp;
    case ST_FT_UUID:
        return st_check_uuid;
    case ST_FT_FOREIGN:
        return st_check_foreign;
    case ST_FT_FOREIGN_SET:
        return check_uuid_array;
    case ST_FT_RECORD:
        return check_record;
    default:
        return NULL; /* integers, sets, records, maps: each field names its check */
    }
}
