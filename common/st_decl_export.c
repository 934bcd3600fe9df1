/* Entities written back as a declarative document (st_decl_export in st_decl.h), after
 * kong/db/declarative/export.lua.
 *
 * Strait differences, on purpose: export nests routes under their service and snis under
 * their certificate and omits null fields; Kong's export writes every collection flat
 * with foreign keys as ids and keeps nulls. Both read back the same.
 */
#include "st_decl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "st_decl_int.h"
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
    json_t *l = json_object_get(doc, key);

    if (l == NULL) {
        l = json_array();
        json_object_set_new(doc, key, l);
    }
    json_array_append_new(l, e);
}

/* A foreign key as Kong's export writes it: the id. */
static void
fk_flat(json_t *e, const char *field)
{
    const char *id = fk_id(e, field);

    if (id != NULL) {
        json_object_set_new(e, field, json_string(id));
    }
}

/* Exports the n parents (sorted) into doc[pkey], each with the children of kids (sorted)
 * that name it through fkey nested under ckey without that key; the other children go
 * to doc[ckey] with their key as an id. */
static void
export_nested(json_t *doc, json_t *const *parents, size_t n, const char *pkey, json_t *const *kids,
              size_t nk, const char *ckey, const char *fkey, const char *parent_fk)
{
    json_t *by_id = json_object();

    for (size_t i = 0; i < n; i++) {
        json_t *e = clean(parents[i], true);
        const char *id = json_string_value(json_object_get(parents[i], "id"));

        if (parent_fk != NULL) {
            fk_flat(e, parent_fk);
        }
        if (id != NULL) {
            json_object_set(by_id, id, e);
        }
        append_to(doc, pkey, e);
    }
    for (size_t i = 0; i < nk; i++) {
        const char *pid = fk_id(kids[i], fkey);
        json_t *parent = pid != NULL ? json_object_get(by_id, pid) : NULL;
        json_t *c = clean(kids[i], true);

        if (parent != NULL) {
            json_object_del(c, fkey);
            append_to(parent, ckey, c);
        } else {
            fk_flat(c, fkey);
            append_to(doc, ckey, c);
        }
    }
    json_decref(by_id);
}

static json_t *
export_doc(json_t *const lists[ST_ENT__COUNT])
{
    json_t *doc = json_pack("{s:s,s:b}", "_format_version", "3.0", "_transform", 0);
    size_t nc, ns, nsv, nr, nca;
    json_t **certs = sorted(lists[ST_ENT_CERTIFICATE], &nc);
    json_t **snis = sorted(lists[ST_ENT_SNI], &ns);
    json_t **svcs = sorted(lists[ST_ENT_SERVICE], &nsv);
    json_t **routes = sorted(lists[ST_ENT_ROUTE], &nr);
    json_t **cas = sorted(lists[ST_ENT_CA_CERTIFICATE], &nca);

    for (size_t i = 0; i < nca; i++) {
        append_to(doc, "ca_certificates", clean(cas[i], true));
    }
    export_nested(doc, certs, nc, "certificates", snis, ns, "snis", "certificate", NULL);
    export_nested(doc, svcs, nsv, "services", routes, nr, "routes", "service",
                  "client_certificate");
    free(certs);
    free(snis);
    free(svcs);
    free(routes);
    free(cas);
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
