/* Entities written back as a declarative document (st_decl_export in st_decl.h), after
 * kong/db/declarative/export.lua.
 *
 * Strait differences, on purpose: export nests each kind under the entity its PARENT
 * foreign key names (routes under their service, snis under their certificate) and omits
 * null fields; Kong's export writes every collection flat
 * with foreign keys as ids and keeps nulls. Both read back the same.
 */
#include "st_decl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "st_decl_int.h"
#include "st_json.h"
#include "st_str.h"
#include "st_util.h"

static int
cmp_by_id(const void *a, const void *b)
{
    const char *x = json_string_value(json_object_get(*(json_t *const *)a, "id"));
    const char *y = json_string_value(json_object_get(*(json_t *const *)b, "id"));

    return strcmp(x != NULL ? x : "", y != NULL ? y : "");
}

/* The entities of a list sorted by id (borrowed references). */
static json_t **
sorted(const json_t *list, size_t *n)
{
    json_t **v;
    size_t i;
    json_t *el;

    *n = json_array_size(list);
    v = st_xcalloc(*n + 1, sizeof(*v));
    json_array_foreach(list, i, el)
    {
        v[i] = el;
    }
    qsort(v, *n, sizeof(*v), cmp_by_id);
    return v;
}

/* A copy without nulls (in nested objects too), timestamps in seconds. */
static json_t *
clean(const json_t *v, bool top)
{
    const char *key;
    json_t *el;
    json_t *out;
    size_t i;

    if (json_is_array(v)) {
        out = json_array();
        json_array_foreach(v, i, el)
        {
            json_array_append_new(out, clean(el, false));
        }
        return out;
    }
    if (!json_is_object(v)) {
        return json_deep_copy(v);
    }
    out = json_object();
    json_object_foreach((json_t *)v, key, el)
    {
        if (json_is_null(el)) {
            continue;
        }
        if (top && (strcmp(key, "created_at") == 0 || strcmp(key, "updated_at") == 0) &&
            json_is_integer(el)) {
            json_object_set_new(out, key, json_integer(json_integer_value(el) / 1000));
        } else {
            json_object_set_new(out, key, clean(el, false));
        }
    }
    return out;
}

static const char *
fk_id(const json_t *e, const char *field)
{
    return json_string_value(json_object_get(json_object_get(e, field), "id"));
}

static void
append_to(json_t *doc, const char *key, json_t *e)
{
    json_array_append_new(st_json_child(doc, key, JSON_ARRAY), e);
}

/* Exports kind k's entities (sorted by id) into doc: each one nested by its PARENT foreign
 * key under the entity it names (found in by_id[the parent kind]) without that key, else
 * at the top level; its other foreign keys written as ids. by_id[k] gets the exported
 * objects by id, for the kinds nested under k. */
static void
export_kind(json_t *doc, enum st_entity_kind k, const json_t *list, json_t *const by_id[])
{
    const struct st_field *pf = st_entity_parent(k);
    const char *key = st_entity_name(k);
    size_t n;
    json_t **v = sorted(list, &n);

    for (size_t i = 0; i < n; i++) {
        json_t *e = clean(v[i], true);
        const char *id = json_string_value(json_object_get(v[i], "id"));
        const char *pid = pf != NULL ? fk_id(e, pf->name) : NULL;
        json_t *parent = pid != NULL ? json_object_get(by_id[pf->ref->kind], pid) : NULL;

        for (const struct st_field *f = st_entities[k]->fields; f->name != NULL; f++) {
            const char *fid = f->type == ST_FT_FOREIGN ? fk_id(e, f->name) : NULL;

            if (fid != NULL && !(f == pf && parent != NULL)) {
                json_object_set_new(e, f->name, json_string(fid)); /* as Kong writes it */
            }
        }
        if (id != NULL) {
            json_object_set(by_id[k], id, e);
        }
        if (parent != NULL) {
            json_object_del(e, pf->name);
            append_to(parent, key, e);
        } else {
            append_to(doc, key, e);
        }
    }
    free(v);
}

static json_t *
export_doc(json_t *const lists[ST_ENT__COUNT])
{
    json_t *doc = json_pack("{s:s,s:b}", "_format_version", "3.0", "_transform", 0);
    enum st_entity_kind order[ST_ENT__COUNT];
    json_t *by_id[ST_ENT__COUNT];

    for (int k = 0; k < ST_ENT__COUNT; k++) {
        by_id[k] = json_object();
    }
    st_entity_order(order); /* parents before the kinds nested under them */
    for (size_t i = 0; i < ST_ENT__COUNT; i++) {
        export_kind(doc, order[i], lists[order[i]], by_id);
    }
    for (int k = 0; k < ST_ENT__COUNT; k++) {
        json_decref(by_id[k]);
    }
    return doc;
}

int
st_decl_export(json_t *const lists[ST_ENT__COUNT], bool yaml, char **out, size_t *outlen)
{
    json_t *doc = export_doc(lists);
    int rc = 0;

    *out = NULL;
    *outlen = 0;
    if (yaml) {
        rc = st_decl__yaml_dump(doc, out, outlen);
    } else {
        char *s = json_dumps(doc, JSON_SORT_KEYS | JSON_INDENT(2));

        if (s == NULL) {
            rc = -ENOMEM;
        } else {
            struct st_str b = {0};

            st_str_add(&b, s);
            st_str_add(&b, "\n");
            free(s);
            *out = b.p;
            *outlen = b.len;
        }
    }
    json_decref(doc);
    return rc;
}
