/* Kong's errors for the store's failures (see cp_dberr.h). Kong's sources:
 * kong/db/errors.lua (codes, names, messages), kong/api/endpoints.lua (invalid_unique,
 * resolve_foreign), kong/db/dao/ca_certificates.lua (REFERENCED_BY_OTHERS). */
#include "cp_dberr.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_err.h"
#include "st_util.h"

/* The length of the UTF-8 character at p (avail > 0 bytes), or 0 when none starts there
 * (RFC 3629 §4: no overlong form, no surrogate, nothing above U+10FFFF). */
static size_t
utf8_char_len(const unsigned char *p, size_t avail)
{
    unsigned char lo = 0x80;
    unsigned char hi = 0xbf;
    size_t n;

    if (p[0] < 0x80) {
        return 1;
    }
    if (p[0] < 0xc2 || p[0] > 0xf4) {
        return 0;
    }
    n = p[0] < 0xe0 ? 2 : p[0] < 0xf0 ? 3 : 4;
    if (p[0] == 0xe0) {
        lo = 0xa0;
    } else if (p[0] == 0xed) {
        hi = 0x9f;
    } else if (p[0] == 0xf0) {
        lo = 0x90;
    } else if (p[0] == 0xf4) {
        hi = 0x8f;
    }
    if (avail < n || p[1] < lo || p[1] > hi) {
        return 0;
    }
    for (size_t i = 2; i < n; i++) {
        if (p[i] < 0x80 || p[i] > 0xbf) {
            return 0;
        }
    }
    return n;
}

json_t *
cp_dberr_text(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *p = (const unsigned char *)s;
    size_t len = strlen(s);
    json_t *v = json_string(s);
    char *buf;
    size_t o = 0;

    if (v != NULL) {
        return v;
    }
    buf = st_xmalloc(len * 3 + 1);
    for (size_t i = 0; i < len;) {
        size_t k = utf8_char_len(p + i, len - i);

        if (k > 0) {
            memcpy(buf + o, p + i, k);
            o += k;
            i += k;
        } else {
            buf[o++] = '%';
            buf[o++] = hex[p[i] >> 4];
            buf[o++] = hex[p[i] & 0xf];
            i++;
        }
    }
    v = json_stringn(buf, o);
    free(buf);
    return v;
}

/* Fills *out: the status, Kong's code and its name, the fields (taken) and the message. */
static void __attribute__((format(printf, 6, 7)))
set(struct cp_dberr *out, int status, int code, const char *name, json_t *fields, const char *fmt,
    ...)
{
    va_list ap;

    out->status = status;
    out->code = code;
    st_snprintf(out->name, sizeof(out->name), "%s", name);
    out->fields = fields;
    va_start(ap, fmt);
    (void)vsnprintf(out->msg, sizeof(out->msg), fmt, ap);
    va_end(ap);
}

/* The collection the foreign key `field` of kind k names; the field itself when k has no
 * such foreign key (no store error names one: see cp_store.h). */
static const char *
ref_collection(enum st_entity_kind k, const char *field)
{
    const struct st_entity_desc *ref = st_entity_ref(k, field);

    return ref != NULL ? ref->name : field;
}

/* Kong's foreign_key_violation_invalid_reference ({id=...}), or, for a key written by the
 * referenced kind's endpoint key that names nothing ("service.name"), Kong's
 * foreign_keys_unresolved. */
static void
foreign(enum st_entity_kind k, const struct st_err *e, struct cp_dberr *out)
{
    char field[64];
    char detail[512];
    char *dot;

    st_snprintf(field, sizeof(field), "%s", e->field);
    dot = strchr(field, '.');
    if (dot == NULL) {
        set(out, 400, 4, "foreign key violation",
            json_pack("{s:{s:o}}", field, "id", cp_dberr_text(e->msg)),
            "the foreign key '{id=\"%s\"}' does not reference an existing '%s' entity.", e->msg,
            ref_collection(k, field));
        return;
    }
    *dot = '\0';
    st_snprintf(detail, sizeof(detail),
                "the foreign key cannot be resolved with '{%s=\"%s\"}' for an existing '%s' "
                "entity",
                dot + 1, e->msg, ref_collection(k, field));
    set(out, 400, 13, "foreign keys unresolved",
        json_pack("{s:{s:o}}", field, dot + 1, cp_dberr_text(detail)),
        "foreign key unresolved (%s: %s)", e->field, detail);
}

/* Whether kind k is referenced through a foreign set (services.ca_certificates). */
static bool
referenced_by_set(enum st_entity_kind k)
{
    for (int i = 0; i < ST_ENT__COUNT; i++) {
        for (const struct st_field *f = st_entities[i]->fields; f->name != NULL; f++) {
            if (f->type == ST_FT_FOREIGN_SET && f->ref->kind == k) {
                return true;
            }
        }
    }
    return false;
}

/* Kong's rendering of a key value, Lua-table style: {id="..."} or "text". */
static void
lua_value(const json_t *v, char *buf, size_t size, size_t *o)
{
    const char *key;
    json_t *sub;
    bool first = true;

    if (json_is_null(v)) { /* a plugin's global scope: consumer=null,service=null */
        *o += (size_t)snprintf(buf + *o, *o < size ? size - *o : 0, "null");
        return;
    }
    if (!json_is_object(v)) {
        *o += (size_t)snprintf(buf + *o, *o < size ? size - *o : 0, "\"%s\"",
                               json_is_string(v) ? json_string_value(v) : "?");
        return;
    }
    *o += (size_t)snprintf(buf + *o, *o < size ? size - *o : 0, "{");
    json_object_foreach((json_t *)v, key, sub)
    {
        *o += (size_t)snprintf(buf + *o, *o < size ? size - *o : 0, "%s%s=", first ? "" : ",", key);
        lua_value(sub, buf, size, o);
        first = false;
    }
    *o += (size_t)snprintf(buf + *o, *o < size ? size - *o : 0, "}");
}

/* A unique key of several fields (targets' upstream and target): e->msg is Kong's
 * `fields` as JSON; the message renders it as Kong does. False when it does not parse. */
static bool
unique_composite(const struct st_err *e, struct cp_dberr *out)
{
    json_t *fields = json_loads(e->msg, 0, NULL);
    char text[512];
    size_t o = 0;

    if (!json_is_object(fields)) {
        json_decref(fields);
        return false;
    }
    lua_value(fields, text, sizeof(text), &o);
    set(out, 409, 5, "unique constraint violation", fields, "UNIQUE violation detected on '%s'",
        text);
    return true;
}

void
cp_dberr_of(enum st_entity_kind k, int rc, const struct st_err *e, struct cp_dberr *out)
{
    static const struct st_err none = {0};
    const char *field;

    memset(out, 0, sizeof(*out));
    if (e == NULL) {
        e = &none;
    }
    switch (rc) {
    case -ST_EPKEY:
        set(out, 400, 3, "primary key violation", json_pack("{s:o}", "id", cp_dberr_text(e->msg)),
            "primary key violation on key '{id=\"%s\"}'", e->msg);
        break;
    case -ST_EPARSE:
        if (e->field[0] != '\0' && strcmp(e->field, "id") != 0) {
            char name[96];

            st_snprintf(name, sizeof(name), "invalid unique %s", e->field);
            set(out, 400, 10, name, NULL, "%s", e->msg);
            break;
        }
        set(out, 400, 1, "invalid primary key", json_pack("{s:o}", "id", cp_dberr_text(e->msg)),
            "invalid primary key: '{id=\"%s\"}'", e->msg);
        break;
    case -ST_EFOREIGN:
        foreign(k, e, out);
        break;
    case -ST_EREFERENCED:
        if (referenced_by_set(k)) {
            set(out, 400, 19, "referenced by others", NULL, "%s", e->msg);
            break;
        }
        set(out, 400, 4, "foreign key violation", json_pack("{s:s}", "@referenced_by", e->field),
            "an existing '%s' entity references this '%s' entity", e->field, st_entity_name(k));
        break;
    case -ST_EUNIQUE:
        if (strchr(e->field, ',') != NULL && unique_composite(e, out)) {
            break;
        }
        field = e->field[0] != '\0' ? e->field : "name";
        set(out, 409, 5, "unique constraint violation",
            json_pack("{s:o}", field, cp_dberr_text(e->msg)),
            "UNIQUE violation detected on '{%s=\"%s\"}'", field, e->msg);
        break;
    case -ST_ENOTFOUND:
        set(out, 404, 0, "", NULL, "%s", e->msg[0] != '\0' ? e->msg : "Not found");
        break;
    default:
        set(out, 500, 0, "", NULL, "An unexpected error occurred");
        break;
    }
}
