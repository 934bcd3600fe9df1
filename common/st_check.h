/* Kong's field checks and their messages (kong/db/schema/typedefs.lua and the type
 * checks of kong/db/schema/init.lua), for the entity descriptions (common/st_ent_*.c)
 * and st_schema's walk. A check of type st_check_fn (st_entity.h) validates one non-null
 * value; the helpers below build Kong's error values. */
#ifndef STRAIT_ST_CHECK_H
#define STRAIT_ST_CHECK_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "st_entity.h"

/* ---- rows every kind has (Kong's typedefs.uuid, auto_timestamp_ms, tags) ------ */

/* id: off is offsetof(struct st_<kind>, id). created_at: dp is ST_DP_I64 with off the
 * struct's created_at_ms, or ST_DP_NONE and 0. */
/* clang-format off */
#define ST_FIELD_ID(off)                                                                           \
    {"id", ST_FT_UUID, ST_FIELD_F_AUTO, NULL, NULL, .dp = ST_DP_STR, .dp_off = (off)}
#define ST_FIELD_CREATED_AT(dp_, off)                                                              \
    {"created_at", ST_FT_TIMESTAMP, ST_FIELD_F_AUTO, NULL, NULL, .pb = "created_at_ms",            \
     .dp = (dp_), .dp_off = (off)}
#define ST_FIELD_UPDATED_AT                                                                        \
    {"updated_at", ST_FT_TIMESTAMP, ST_FIELD_F_AUTO | ST_FIELD_F_NO_SNAP, NULL, NULL,             \
     .dp = ST_DP_NONE}
#define ST_FIELD_TAGS                                                                              \
    {"tags", ST_FT_SET, 0, st_check_tags, NULL,                                                    \
     .schema = "\"elements\": {\"type\": \"string\", \"required\": true}"}
/* clang-format on */

/* ---- error values ---------------------------------------------------------- */

/* A new JSON string from a printf format (at most 511 bytes). */
json_t *st_check_errf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Appends msg to fields["@entity"] (created on demand). */
void st_check_entity_err(json_t *fields, const char *msg);

/* ---- small predicates ------------------------------------------------------ */

/* Kong's is_nonempty: not NULL, null, an empty array, object or string. */
bool st_check_is_nonempty(const json_t *v);

/* Whether obj[key] is a string that its field check accepted. */
bool st_check_field_ok(const json_t *obj, const json_t *fields, const char *key);

/* ---- value checks (an error, or NULL) -------------------------------------- */

/* An integer in min..max ("value should be between min and max"). */
json_t *st_check_int_range(json_t *obj, const char *key, json_t *v, json_int_t min, json_int_t max);
/* A string of at least one byte (and at most max). */
json_t *st_check_str(const json_t *v);
json_t *st_check_str_max(const json_t *v, size_t max);
/* typedefs.wildcard_host: a host name with at most one '*', leftmost or rightmost. */
json_t *st_check_wildcard_host(json_t *v);
/* Strait's refusal of a protocol Kong knows (http, https, grpc, grpcs; those of `later`
 * until they are built), or NULL when Strait proxies it. */
json_t *st_check_protocol_unsupported(const char *p, const char *const *later);
/* A string naming a protocol Kong knows ("expected one of: grpc, ..., udp"). */
json_t *st_check_kong_protocol(json_t *v);
/* A check of one element of an array (it may normalise el in place): an error or NULL. */
typedef json_t *st_check_elem_fn(json_t *el);
/* An array whose elements elem() checks: "expected <expected>" when v is no array, else
 * NULL or the errors as an array with nulls at the valid positions. */
json_t *st_check_array(json_t *v, const char *expected, st_check_elem_fn *elem);
/* st_check_array "a set", whose repeats are then dropped in place (obj[key] is v), the
 * first of each kept (Kong's make_set). */
json_t *st_check_string_set(json_t *obj, const char *key, json_t *v, st_check_elem_fn *elem);

/* One record of a RECORDS field whose fields are sub: "expected a record" when rec is no
 * object, else an object (the caller's, possibly empty, for its record rules) with
 * "unknown field" for each key sub lacks and each non-null value's error; absent fields
 * become null in rec. */
json_t *st_check_record(json_t *rec, const struct st_field *sub);

/* A real or integer in min..max ("expected a number", "value should be between ..."). */
json_t *st_check_number_range(json_t *obj, const char *key, json_t *v, double min, double max);
/* An array of integers in min..max (integral reals become integers). */
json_t *st_check_int_array(json_t *v, json_int_t min, json_int_t max);
/* Field f's default (a new reference; null when it has none); a RECORD's with every
 * field of the record set to its own default. */
json_t *st_check_default(const struct st_field *f);

/* ---- hosts (kong/tools/ip.lua normalize_ip) ------------------------------------ */

enum st_host_kind {
    ST_HOST_INVALID = 0,
    ST_HOST_NAME,
    ST_HOST_IPV4,
    ST_HOST_IPV6,
};

/* What s is: a name, an IPv4 or an IPv6 address (bracketed or not), each possibly with a
 * port (*has_port), or invalid. */
enum st_host_kind st_check_host_kind(const char *s, bool *has_port);

/* Kong's format_host of s: "host:port", the port default_port when s has none, IPv4
 * normalised, IPv6 bracketed with eight groups of four hex digits. 0, or -1 when s is no
 * host or its port is beyond 65535. */
int st_check_host_format(const char *s, unsigned default_port, char *out, size_t size);

/* ---- field checks (st_check_fn) --------------------------------------------- */

st_check_fn st_check_uuid;        /* typedefs.uuid */
st_check_fn st_check_timestamp;   /* typedefs.auto_timestamp_ms: an integer > 0 */
st_check_fn st_check_bool;        /* a boolean */
st_check_fn st_check_port;        /* typedefs.port: 0..65535 */
st_check_fn st_check_timeout;     /* typedefs.timeout: 1..2^31-2 */
st_check_fn st_check_name;        /* typedefs.name: ASCII name, at most 256 bytes */
st_check_fn st_check_utf8_name;   /* typedefs.utf8_name */
st_check_fn st_check_host;        /* typedefs.host, no port */
st_check_fn st_check_path;        /* typedefs.path: starts with '/' */
st_check_fn st_check_tags;        /* typedefs.tags: a set, at most 64 tags of 256 bytes */
st_check_fn st_check_foreign;     /* a foreign key: {"id": uuid}, kept as exactly that */
st_check_fn st_check_certificate; /* typedefs.certificate: PEM that parses */
st_check_fn st_check_key;         /* typedefs.key: a PEM private key that parses */
st_check_fn st_check_sni;         /* typedefs.sni: a host name, no IP, no port */
st_check_fn st_check_host_port;   /* typedefs.host_with_optional_port */
st_check_fn st_check_header_name; /* typedefs.header_name */
st_check_fn st_check_headers;     /* typedefs.headers: header names to arrays of strings */

/* The check of field f: its own, else its type's (strings, booleans, timestamps, uuids,
 * foreign keys), or NULL when it has none: any value passes (Kong's HTTP fields, which
 * the entity checks keep null). */
st_check_fn *st_check_of(const struct st_field *f);

#endif
