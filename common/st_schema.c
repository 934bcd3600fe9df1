/* Entity validation with Kong's rules and messages (kong/db/schema/init.lua; error texts
 * from kong/db/schema/init.lua and kong/db/errors.lua): one walk over a kind's
 * description (st_entity.h: defaults, required fields, unknown fields, each field's
 * check from st_check or its kind's file, Kong's entity checks, the stored order) and
 * the formatting of Kong's message.
 *
 * Strait differences, on purpose (each kind's own are at the top of its
 * common/st_ent_<kind>.c):
 * - a foreign key is kept as {"id": "<uuid>"}; other keys of it are dropped.
 * - `fields` nests element errors of sets as arrays with nulls at valid positions, and
 *   st_schema_message flattens them fully ("sources.1.ip: ...").
 * - an entity as stored is at most ST_SCHEMA_ENTITY_MAX bytes (issue 14).
 *
 * Does not check uniqueness or foreign keys (the store does). */
#include "st_schema.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_check.h"
#include "st_err.h"
#include "st_json.h"
#include "st_str.h"
#include "st_util.h"

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

json_t *
st_schema_check_value(enum st_entity_kind k, const char *field, const json_t *v)
{
    const struct st_field *f = st_entity_field(k, field);

    return f != NULL ? st_schema_check_field(f, v) : NULL;
}

json_t *
st_schema_check_field(const struct st_field *f, const json_t *v)
{
    json_t *scratch;
    json_t *copy;
    json_t *e;

    if (st_check_of(f) == NULL || v == NULL || json_is_null(v)) {
        return NULL;
    }
    /* checkers may normalise the value in place: give them a scratch copy */
    copy = json_deep_copy(v);
    scratch = json_pack("{s:o}", f->name, copy);
    e = st_check_of(f)(scratch, f, copy);
    json_decref(scratch);
    return e;
}

/* ------------------------------------------------------------------------ */
/* validate                                                                   */

/* Rebuilds obj with its fields in the description's output order. */
static void
reorder(json_t *obj, const struct st_field *f)
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

void
st_schema_input(enum st_entity_kind k, json_t *body)
{
    if (st_entities[k]->input != NULL && json_is_object(body)) {
        st_entities[k]->input(body);
    }
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
        st_check_entity_err(fields, msg);
    }
}

/* Each field: a default for an absent one, "required field missing" for a null one
 * that must be set (unless a shorthand failed), its check for any other. */
static void
check_fields(const struct st_entity_desc *d, json_t *obj, bool shorthand_failed, json_t *fields)
{
    for (const struct st_field *f = d->fields; f->name != NULL; f++) {
        json_t *v = json_object_get(obj, f->name);
        json_t *e = NULL;

        /* Kong's records are not nullable: null is their default too */
        if (v == NULL || (json_is_null(v) && f->type == ST_FT_RECORD)) {
            json_object_set_new(obj, f->name, st_check_default(f));
            v = json_object_get(obj, f->name);
        }
        if (json_is_null(v)) {
            if ((f->flags & ST_FIELD_F_REQUIRED) && !shorthand_failed) {
                json_object_set_new(fields, f->name, json_string("required field missing"));
            }
            continue;
        }
        if (st_check_of(f) != NULL) {
            e = st_check_of(f)(obj, f, v);
        }
        if (e != NULL) {
            json_object_set_new(fields, f->name, e);
        }
    }
}

int
st_schema_validate_ex(enum st_entity_kind k, json_t *obj, unsigned flags, json_t **fields_out)
{
    const struct st_entity_desc *d = st_entities[k];
    json_t *fields = json_object();
    bool shorthand_failed = false;
    const char *key;
    json_t *v;

    if (fields_out != NULL) {
        *fields_out = NULL;
    }
    if (!json_is_object(obj)) {
        st_check_entity_err(fields, "expected a record");
        goto fail;
    }
    if (d->shorthand != NULL) {
        shorthand_failed = d->shorthand(obj, fields);
    }
    json_object_foreach(obj, key, v)
    {
        if (st_entity_field(k, key) == NULL) {
            json_object_set_new(fields, key, json_string("unknown field"));
        }
    }
    check_fields(d, obj, shorthand_failed, fields);
    if (d->checks != NULL) {
        d->checks(obj, fields, flags);
    }
    entity_size_check(obj, fields);
    if (json_object_size(fields) > 0) {
        goto fail;
    }
    json_decref(fields);
    reorder(obj, d->fields);
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

/* The messages met so far, joined by "; ". */
struct msgs {
    struct st_str s;
    size_t n;
};

static void
msgs_add(struct msgs *m, const char *path, const char *msg)
{
    char buf[768];

    snprintf(buf, sizeof(buf), "%s%s%s", path, path[0] != '\0' ? ": " : "", msg);
    st_str_addf(&m->s, "%s%s", m->n++ > 0 ? "; " : "", buf);
}

static void flatten(struct msgs *m, const char *path, const json_t *v);

/* An object's errors: its @entity messages under path, then its keys sorted. */
static void
flatten_object(struct msgs *m, const char *path, const json_t *obj)
{
    const json_t *ent = json_object_get(obj, "@entity");
    size_t n;
    const char **keys = st_json_keys(obj, &n);
    json_t *v;
    size_t i;

    json_array_foreach(ent, i, v)
    {
        if (json_is_string(v)) {
            msgs_add(m, path, json_string_value(v));
        }
    }
    for (i = 0; i < n; i++) {
        char sub[256];

        if (strcmp(keys[i], "@entity") != 0) {
            snprintf(sub, sizeof(sub), "%s%s%s", path, path[0] != '\0' ? "." : "", keys[i]);
            flatten(m, sub, json_object_get(obj, keys[i]));
        }
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
    struct msgs m = {{NULL, 0, 0}, 0};

    if (json_is_object(fields)) {
        flatten_object(&m, "", fields);
    }
    if (m.n > 1) {
        snprintf(buf, size, "%zu schema violations (%s)", m.n, m.s.p);
    } else {
        snprintf(buf, size, "schema violation (%s)", m.n == 1 ? m.s.p : "");
    }
    free(m.s.p);
}
