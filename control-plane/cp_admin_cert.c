/* The certificates' admin hooks (cp_admin_int.h): the `snis` shorthand, Kong's
 * kong/db/dao/certificates.lua and kong/api/routes/certificates.lua: on write the names
 * become `snis` rows of the certificate in the same transaction (duplicates and names
 * owned by another certificate refused first); on read the certificate shows its names
 * sorted; a path key that is no id finds the certificate by the name of one of its snis. */
#include <stdlib.h>
#include <string.h>

#include "cp_admin_int.h"
#include "cp_store.h"
#include "st_err.h"
#include "st_json.h"
#include "st_schema.h"
#include "st_ssl.h"
#include "st_util.h"

static json_t *
snis_error(const char *msg)
{
    return json_pack("{s:s}", "snis", msg);
}

static bool
names_have(const json_t *names, const char *name)
{
    size_t i;
    json_t *v;

    json_array_foreach(names, i, v)
    {
        if (strcmp(json_string_value(v), name) == 0) {
            return true;
        }
    }
    return false;
}

/* Takes `snis` out of a certificate write's body. *names is NULL when the write leaves
 * the certificate's snis alone (absent on POST/PATCH), else a new array of the names to
 * keep (empty for null, or absent on PUT); a PUT by SNI name (put_name not NULL) adds
 * that name. Returns 0, or -ST_ESCHEMA with *fields set (not an array of strings; a
 * duplicated name). */
static int
snis_take(json_t *body, const char *put_name, json_t **names, json_t **fields)
{
    json_t *v = json_object_get(body, "snis");
    json_t *out;
    json_t *bad = NULL;
    size_t i;
    json_t *e;

    *names = NULL;
    if (v == NULL && put_name == NULL) {
        return 0;
    }
    out = json_array();
    if (json_is_string(v)) {
        json_array_append(out, v);
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, e)
        {
            if (!json_is_string(e)) {
                st_json_arr_put(&bad, i, json_string("expected a string"));
                continue;
            }
            if (bad == NULL && names_have(out, json_string_value(e))) {
                char msg[512];

                st_snprintf(msg, sizeof(msg), "%s is duplicated", json_string_value(e));
                *fields = snis_error(msg);
                json_decref(out);
                return -ST_ESCHEMA;
            }
            json_array_append(out, e);
        }
    } else if (v != NULL && !json_is_null(v)) {
        bad = json_string("expected a set");
    }
    if (bad != NULL) {
        *fields = json_pack("{s:o}", "snis", bad);
        json_decref(out);
        return -ST_ESCHEMA;
    }
    if (put_name != NULL && !names_have(out, put_name)) {
        json_array_append_new(out, json_string(put_name));
    }
    json_object_del(body, "snis");
    *names = out;
    return 0;
}

/* The sni named name (never one whose id happens to be name), or NULL. */
static int
sni_by_name(struct cp_store *st, const char *name, json_t **out)
{
    int rc = cp_store_get(st, ST_ENT_SNI, name, out);
    const char *got;

    if (rc < 0) {
        return rc;
    }
    got = json_string_value(json_object_get(*out, "name"));
    if (got == NULL || strcmp(got, name) != 0) {
        json_decref(*out);
        *out = NULL;
        return -ST_ENOTFOUND;
    }
    return 0;
}

static const char *
sni_cert_id(const json_t *sni)
{
    return json_string_value(json_object_get(json_object_get(sni, "certificate"), "id"));
}

/* Refuses names that another certificate owns: -ST_ESCHEMA with *fields
 * {"snis": "<name> already associated with existing certificate '<id>'"}. 0 if none. */
static int
snis_check(struct cp_store *st, const json_t *names, const char *cert_id, json_t **fields)
{
    size_t i;
    json_t *v;

    json_array_foreach(names, i, v)
    {
        const char *name = json_string_value(v);
        json_t *sni = NULL;
        int rc = sni_by_name(st, name, &sni);

        if (rc == -ST_ENOTFOUND) {
            continue;
        }
        if (rc < 0) {
            return rc;
        }
        if (sni_cert_id(sni) != NULL && strcmp(sni_cert_id(sni), cert_id) != 0) {
            char msg[512];

            st_snprintf(msg, sizeof(msg), "%s already associated with existing certificate '%s'",
                        name, sni_cert_id(sni));
            *fields = snis_error(msg);
            json_decref(sni);
            return -ST_ESCHEMA;
        }
        json_decref(sni);
    }
    return 0;
}

/* Every sni of the certificate: a new array of the stored objects. */
static int
cert_snis(struct cp_store *st, const char *cert_id, json_t **out)
{
    struct cp_page_opts o = {.size = CP_PAGE_SIZE_MAX, .parent_id = cert_id};
    struct st_err err = {0};
    json_t *all = json_array();
    char *next = NULL;
    int rc;

    do {
        json_t *page = NULL;

        o.offset = next;
        rc = cp_store_page(st, ST_ENT_SNI, &o, &page, &next, &err);
        free((char *)o.offset);
        if (rc == 0) {
            json_array_extend(all, page);
            json_decref(page);
        }
    } while (rc == 0 && next != NULL);
    if (rc < 0) {
        json_decref(all);
        return rc;
    }
    *out = all;
    return 0;
}

static int
cmp_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sets cert's "snis" to the sorted names of its snis. Returns 0 or -ST_EDB. */
static int
snis_render(struct cp_store *st, json_t *cert)
{
    const char *id = json_string_value(json_object_get(cert, "id"));
    json_t *snis = NULL;
    json_t *names;
    const char **v;
    size_t n;
    int rc;

    rc = id != NULL ? cert_snis(st, id, &snis) : -ST_ENOTFOUND;
    if (rc < 0) {
        return rc;
    }
    n = json_array_size(snis);
    v = st_xcalloc(n + 1, sizeof(*v));
    for (size_t i = 0; i < n; i++) {
        const char *name = json_string_value(json_object_get(json_array_get(snis, i), "name"));

        v[i] = name != NULL ? name : "";
    }
    qsort(v, n, sizeof(*v), cmp_names);
    names = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(names, json_string(v[i]));
    }
    json_object_set_new(cert, "snis", names);
    free(v);
    json_decref(snis);
    return 0;
}

/* A new sni row for the certificate; a failed name comes back as snis[index]. */
static int
add_sni(struct cp_store *st, const char *cert_id, const char *name, size_t index, json_t **fields,
        struct st_err *err)
{
    int64_t now = st_time_ms() / 1000 * 1000; /* whole seconds: see cp_admin_entity.c */
    json_t *f = NULL;
    char id[37];
    json_t *o;
    int rc;

    rc = st_ssl_uuid(id);
    if (rc < 0) {
        return st_err_set(err, -ST_EDB, NULL, "cannot make a uuid");
    }
    o = json_pack("{s:s,s:s,s:{s:s},s:I,s:I,s:n}", "id", id, "name", name, "certificate", "id",
                  cert_id, "created_at", (json_int_t)now, "updated_at", (json_int_t)now, "tags");
    rc = st_schema_validate(ST_ENT_SNI, o, &f);
    if (rc == -ST_ESCHEMA) {
        json_t *msg = json_object_get(f, "name");

        if (msg != NULL) {
            json_t *arr = NULL;

            st_json_arr_put(&arr, index, json_incref(msg));
            json_decref(f);
            f = json_pack("{s:o}", "snis", arr);
        }
        *fields = f;
    } else if (rc == 0) {
        rc = cp_store_insert(st, ST_ENT_SNI, o, err);
    }
    json_decref(o);
    return rc;
}

/* When names is not NULL, makes the certificate's snis rows exactly those names
 * (validated as snis: errors come back as -ST_ESCHEMA with *fields {"snis": [null, "<error
 * of the second name>"]}). Then sets cert's "snis" to the sorted names it has. Returns 0
 * or a store/schema error. */
static int
snis_store(struct cp_store *st, json_t *cert, const json_t *names, json_t **fields,
           struct st_err *err)
{
    const char *cert_id = json_string_value(json_object_get(cert, "id"));
    json_t *have = NULL;
    json_t *keep;
    size_t i;
    json_t *v;
    int rc;

    if (names == NULL) {
        return snis_render(st, cert);
    }
    rc = cert_snis(st, cert_id, &have);
    if (rc < 0) {
        return rc;
    }
    keep = json_array();
    json_array_foreach(have, i, v)
    {
        const char *name = json_string_value(json_object_get(v, "name"));

        if (name != NULL && names_have(names, name)) {
            json_array_append_new(keep, json_string(name));
            continue;
        }
        rc = cp_store_remove(st, ST_ENT_SNI, json_string_value(json_object_get(v, "id")), err);
        if (rc < 0) {
            goto out;
        }
    }
    json_array_foreach(names, i, v)
    {
        if (!names_have(keep, json_string_value(v))) {
            rc = add_sni(st, cert_id, json_string_value(v), i, fields, err);
            if (rc < 0) {
                goto out;
            }
        }
    }
    rc = snis_render(st, cert);
out:
    json_decref(have);
    json_decref(keep);
    return rc;
}

static int
take(json_t *body, const char *put_key, bool replace, json_t **extra, json_t **fields)
{
    int rc = snis_take(body, put_key, extra, fields);

    if (rc == 0 && *extra == NULL && replace) {
        *extra = json_array(); /* PUT replaces: no snis in the body, none kept */
    }
    return rc;
}

/* A certificate by the name of one of its snis: Kong's select_by_sni (the name checked as
 * an sni's first: -ST_EPARSE with err->field "name"; -ST_ENOTFOUND with err->field "sni"
 * and "SNI not found" when no sni has it). */
static int
lookup(struct cp_store *st, const char *key, json_t **out, struct st_err *err)
{
    json_t *sni = NULL;
    char id[64];
    int rc = cp_admin__check_key(ST_ENT_SNI, "name", key, err);

    if (rc < 0) {
        return rc;
    }
    rc = cp_store_get(st, ST_ENT_SNI, key, &sni);
    if (rc == -ST_ENOTFOUND) {
        return st_err_set(err, -ST_ENOTFOUND, "sni", "SNI not found");
    }
    if (rc < 0) {
        return rc;
    }
    st_snprintf(id, sizeof(id), "%s", sni_cert_id(sni) != NULL ? sni_cert_id(sni) : "");
    json_decref(sni);
    return cp_store_get(st, ST_ENT_CERTIFICATE, id, out);
}

const struct cp_admin_hooks cp_admin__cert_hooks = {
    .lookup = lookup,
    .take = take,
    .check = snis_check,
    .store = snis_store,
    .render = snis_render,
};
