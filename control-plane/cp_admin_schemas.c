/* GET /schemas/{entity}: each entity's schema in Kong's JSON shape (kong/api/routes/kong.lua
 * "/schemas/:name", which serialises kong/db/schema/entities/<entity>.lua without its
 * functions and without the schemas of foreign fields):
 *   {"fields": [{"id": {"type": "string", "uuid": true, "auto": true}}, ...],
 *    "entity_checks": [...]}
 *
 * Written from the kind's description (st_entity.h), the rows st_schema validates with,
 * so the two cannot drift: the type, uuid/timestamp, auto, reference and a set's elements
 * come from the field's type, required/unique/encrypted from its flags, default from its
 * default; the field's `schema` text adds what those cannot say (one_of, between, ...), in
 * Kong's order (a derived key it names with a null value is placed there), and the kind's
 * checks_schema is its entity_checks. What st_schema accepts is Kong's schema narrowed to
 * what Strait proxies: protocol one_of lists only the protocols Strait takes, defaults are
 * Strait's. tests/system/test_admin_meta.py checks the descriptions against
 * POST /schemas/{entity}/validate and the entities the CP stores. */
#include <stdlib.h>
#include <string.h>

#include "cp_admin_int.h"
#include "st_check.h"
#include "st_entity.h"
#include "st_log.h"
#include "st_plugin.h"
#include "st_util.h"

/* Kong's name for the type of field f. */
static const char *
kong_type(const struct st_field *f)
{
    static const char *const types[] = {
        [ST_FT_STRING] = "string",     [ST_FT_INTEGER] = "integer",   [ST_FT_BOOLEAN] = "boolean",
        [ST_FT_TIMESTAMP] = "integer", [ST_FT_UUID] = "string",       [ST_FT_SET] = "set",
        [ST_FT_ARRAY] = "array",       [ST_FT_RECORDS] = "set",       [ST_FT_MAP] = "map",
        [ST_FT_FOREIGN] = "foreign",   [ST_FT_FOREIGN_SET] = "array", [ST_FT_NUMBER] = "number",
        [ST_FT_RECORD] = "record",
    };

    return types[f->type];
}

/* The JSON object {<members>} of a `schema` text (an empty object for NULL), or NULL
 * (logged) when it does not parse. */
static json_t *
members(const struct st_field *f, const char *text)
{
    json_error_t jerr;
    size_t n = strlen(text != NULL ? text : "") + 3;
    char *buf = st_xmalloc(n);
    json_t *o;

    (void)st_snprintf(buf, n, "{%s}", text != NULL ? text : "");
    o = json_loads(buf, 0, &jerr);
    free(buf);
    if (o == NULL) {
        st_log(ST_LOG_ERR, 0, "admin: bad schema text of field %s: %s", f->name, jerr.text);
    }
    return o;
}

static json_t *describe_field(const struct st_field *f);

/* A field list, [{"<name>": {...}}, ...], or NULL (logged). */
static json_t *
describe_fields(const struct st_field *f)
{
    json_t *out = json_array();

    for (; f->name != NULL; f++) {
        json_t *d = describe_field(f);

        if (d == NULL) {
            json_decref(out);
            return NULL;
        }
        json_array_append_new(out, json_pack("{s:o}", f->name, d));
    }
    return out;
}

/* The elements of a set or an array the type gives (new reference), or NULL: none. For
 * RECORDS, the record with the field's `schema` keys (*failed on a bad one). */
static json_t *
derived_elements(const struct st_field *f, bool *failed)
{
    json_t *rec;
    json_t *more;
    json_t *sub;

    switch (f->type) {
    case ST_FT_SET:
    case ST_FT_ARRAY:
        return json_pack("{s:s}", "type", "string");
    case ST_FT_FOREIGN_SET:
        return json_pack("{s:s,s:b}", "type", "string", "uuid", 1);
    case ST_FT_RECORDS:
        sub = describe_fields(f->sub);
        more = members(f, f->schema);
        if (sub == NULL || more == NULL) {
            *failed = true;
            json_decref(sub);
            json_decref(more);
            return NULL;
        }
        rec = json_pack("{s:s,s:o}", "type", "record", "fields", sub);
        json_object_update(rec, more);
        json_decref(more);
        return rec;
    default:
        return NULL;
    }
}

/* The value of a key the row gives (required, unique, encrypted, default) as a new
 * reference, or NULL when the row does not give it. */
static json_t *
derived_late(const struct st_field *f, const char *key)
{
    if (strcmp(key, "required") == 0) {
        return (f->flags & ST_FIELD_F_REQUIRED) ? json_true() : NULL;
    }
    if (strcmp(key, "unique") == 0) {
        return (f->flags & ST_FIELD_F_UNIQUE) ? json_true() : NULL;
    }
    if (strcmp(key, "encrypted") == 0) {
        return (f->flags & ST_FIELD_F_SECRET) ? json_true() : NULL;
    }
    if (strcmp(key, "default") == 0 && f->type == ST_FT_RECORD) {
        return st_check_default(f); /* the whole record, every field at its default */
    }
    if (strcmp(key, "default") == 0 && f->dflt != NULL) {
        return json_loads(f->dflt, JSON_DECODE_ANY, NULL);
    }
    return NULL;
}

/* Adds more (the `schema` keys of f) to d, then the late derived keys it did not place.
 * Returns -1 (logged) when a null places a key the row does not give. */
static int
add_members(json_t *d, const struct st_field *f, const json_t *more)
{
    static const char *const late[] = {"required", "unique", "encrypted", "default"};
    const char *key;
    json_t *v;

    json_object_foreach((json_t *)more, key, v)
    {
        json_t *dv = json_is_null(v) ? derived_late(f, key) : json_incref(v);

        if (dv == NULL) {
            st_log(ST_LOG_ERR, 0, "admin: schema text of field %s places '%s', not set", f->name,
                   key);
            return -1;
        }
        json_object_set_new(d, key, dv);
    }
    for (size_t i = 0; i < ST_ARRAY_SIZE(late); i++) {
        v = json_object_get(more, late[i]) == NULL ? derived_late(f, late[i]) : NULL;
        if (v != NULL) {
            json_object_set_new(d, late[i], v);
        }
    }
    return 0;
}

/* Kong's description of field f, or NULL (logged). Keys in Kong's order: type,
 * uuid/timestamp, auto, reference, elements, the `schema` keys, required, unique,
 * encrypted, default. */
static json_t *
describe_field(const struct st_field *f)
{
    /* a record's `schema` keys are its elements' */
    json_t *more = members(f, f->type == ST_FT_RECORDS ? NULL : f->schema);
    json_t *d = json_pack("{s:s}", "type", kong_type(f));
    bool failed = more == NULL;
    json_t *el = NULL;

    if (f->type == ST_FT_UUID || f->type == ST_FT_TIMESTAMP) {
        json_object_set_new(d, f->type == ST_FT_UUID ? "uuid" : "timestamp", json_true());
    }
    if (f->flags & ST_FIELD_F_AUTO) {
        json_object_set_new(d, "auto", json_true());
    }
    if (f->type == ST_FT_FOREIGN) {
        json_object_set_new(d, "reference", json_string(f->ref->name));
    }
    if (f->type == ST_FT_RECORD && f->sub != NULL) { /* an abstract one has no fields */
        json_t *sub = describe_fields(f->sub);

        failed = failed || sub == NULL;
        json_object_set_new(d, "fields", sub != NULL ? sub : json_null());
    }
    if (!failed && json_object_get(more, "elements") == NULL) {
        el = derived_elements(f, &failed);
    }
    if (el != NULL) {
        json_object_set_new(d, "elements", el);
    }
    if (failed || add_members(d, f, more) < 0) {
        json_decref(more);
        json_decref(d);
        return NULL;
    }
    json_decref(more);
    return d;
}

json_t *
cp_admin__schema_describe(enum st_entity_kind k)
{
    const struct st_entity_desc *d = st_entities[k];
    json_t *fields = describe_fields(d->fields);
    json_error_t jerr;
    json_t *ec;

    if (fields == NULL) {
        st_log(ST_LOG_ERR, 0, "admin: cannot describe %s", d->name);
        return NULL;
    }
    ec = json_loads(d->checks_schema != NULL ? d->checks_schema : "[]", 0, &jerr);
    if (ec == NULL) {
        st_log(ST_LOG_ERR, 0, "admin: bad entity_checks for %s: %s", d->name, jerr.text);
        json_decref(fields);
        return NULL;
    }
    return json_pack("{s:o,s:o}", "fields", fields, "entity_checks", ec);
}

json_t *
cp_admin__plugin_schema_describe(const struct st_plugin_desc *p)
{
    const struct st_field *consumer = st_entity_field(ST_ENT_PLUGIN, "consumer");
    const struct st_field *proto = st_entity_field(ST_ENT_PLUGIN, "protocols");
    const struct st_field config = {"config", ST_FT_RECORD,     ST_FIELD_F_REQUIRED, NULL,
                                    NULL,     .sub = p->config, .dp = ST_DP_NONE};
    json_t *fields = json_array();
    json_t *c = describe_field(consumer);
    json_t *pr = describe_field(proto);
    json_t *cf = describe_field(&config);
    json_t *ec = json_loads(p->checks_schema != NULL ? p->checks_schema : "[]", 0, NULL);

    if (c == NULL || pr == NULL || cf == NULL || ec == NULL) {
        st_log(ST_LOG_ERR, 0, "admin: cannot describe plugin %s", p->name);
        json_decref(c);
        json_decref(pr);
        json_decref(cf);
        json_decref(ec);
        json_decref(fields);
        return NULL;
    }
    json_object_set_new(pr, "default", json_loads(p->protocols_default, 0, NULL));
    json_array_append_new(fields, json_pack("{s:o}", "consumer", c));
    json_array_append_new(fields, json_pack("{s:o}", "protocols", pr));
    json_array_append_new(fields, json_pack("{s:o}", "config", cf));
    return json_pack("{s:o,s:o}", "fields", fields, "entity_checks", ec);
}
