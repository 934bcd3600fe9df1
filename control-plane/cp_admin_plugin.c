/* The plugins' own admin endpoints and checks (issue 18): GET /plugins/enabled,
 * GET /schemas/plugins/{name}, and Kong's DAO checks of a plugin's protocols against its
 * scope (kong/db/dao/plugins.lua check_protocols_match), run on every admin write of a
 * plugin, inside its transaction, after the schema check. As Kong's, they are the DAO's:
 * a declarative load does not run them. */
#include <stdlib.h>
#include <string.h>

#include "cp_admin_int.h"
#include "cp_ctx.h"
#include "cp_store.h"
#include "cp_store_pool.h"
#include "st_err.h"
#include "st_plugin.h"
#include "st_util.h"

/* Whether the JSON sets a and b share a string. */
static bool
sets_meet(const json_t *a, const json_t *b)
{
    size_t i, j;
    json_t *x, *y;

    json_array_foreach(a, i, x)
    {
        json_array_foreach(b, j, y)
        {
            if (json_equal(x, y)) {
                return true;
            }
        }
    }
    return false;
}

/* Whether a service with no routes, or one of its routes, shares a protocol with
 * protocols: 1, 0, or < 0 (a store failure). */
static int
service_routes_meet(struct cp_store *st, const char *sid, const json_t *protocols)
{
    struct cp_page_opts o = {.size = CP_PAGE_SIZE_MAX, .parent_id = sid, .parent_field = "service"};
    struct st_err err = {0};
    bool any = false, meet = false;
    char *next = NULL;
    int rc;

    do {
        json_t *data = NULL;
        size_t i;
        json_t *r;

        free(next);
        next = NULL;
        rc = cp_store_page(st, ST_ENT_ROUTE, &o, &data, &next, &err);
        if (rc < 0) {
            return rc;
        }
        json_array_foreach(data, i, r)
        {
            any = true;
            meet = meet || sets_meet(json_object_get(r, "protocols"), protocols);
        }
        json_decref(data);
        o.offset = next;
    } while (next != NULL && !meet);
    free(next);
    return !any || meet;
}

static int
plugin_validated(struct cp_store *st, const json_t *o, json_t **fields)
{
    const json_t *protocols = json_object_get(o, "protocols");
    const char *rid = json_string_value(json_object_get(json_object_get(o, "route"), "id"));
    const char *sid = json_string_value(json_object_get(json_object_get(o, "service"), "id"));
    const char *msg = NULL;
    int rc;

    if (rid != NULL) {
        json_t *route = NULL;

        /* a route that does not exist is the store's foreign-key error */
        if (cp_store_get(st, ST_ENT_ROUTE, rid, &route) == 0 &&
            !sets_meet(json_object_get(route, "protocols"), protocols)) {
            msg = "must match the associated route's protocols";
        }
        json_decref(route);
    } else if (sid != NULL) {
        rc = service_routes_meet(st, sid, protocols);
        if (rc < 0) {
            return rc;
        }
        if (rc == 0) {
            msg = "must match the protocols of at least one route pointing to this Plugin's "
                  "service";
        }
    }
    if (msg == NULL) {
        return 0;
    }
    *fields = json_pack("{s:s}", "protocols", msg);
    return -ST_ESCHEMA;
}

const struct cp_admin_hooks cp_admin__plugin_hooks = {
    .validated = plugin_validated,
};

void
cp_admin__plugins_enabled(struct cp_response *rs)
{
    const char *names[8];
    size_t n = st_plugin_enabled_list(names);
    json_t *a = json_array();

    ST_ASSERT(n <= ST_ARRAY_SIZE(names));
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(a, json_string(names[i]));
    }
    cp_admin__reply(rs, 200, json_pack("{s:o}", "enabled_plugins", a));
}

void
cp_admin__plugin_schema_get(struct cp_response *rs, const char *name)
{
    const struct st_plugin_desc *p = st_plugin_enabled(name);
    json_t *o;
    char msg[320];

    if (p == NULL) {
        (void)st_snprintf(msg, sizeof(msg), "No plugin named '%s'", name);
        cp_admin__reply_msg(rs, 404, msg);
        return;
    }
    o = cp_admin__plugin_schema_describe(p);
    if (o == NULL) {
        cp_admin__reply_msg(rs, 500, "An unexpected error occurred");
        return;
    }
    cp_admin__reply(rs, 200, o);
}

json_t *
cp_admin__plugins_available(void)
{
    json_t *o = json_object();

    for (size_t i = 0; i < st_plugins_bundled_n; i++) {
        const struct st_plugin_desc *p = st_plugins_bundled[i];

        if (st_plugin_enabled(p->name) != NULL) {
            json_object_set_new(
                o, p->name,
                json_pack("{s:s,s:i}", "version", STRAIT_VERSION, "priority", p->priority));
        }
    }
    return o;
}

/* strcmp for qsort over json_t strings */
static int
cmp_names(const void *a, const void *b)
{
    return strcmp(json_string_value(*(json_t *const *)a), json_string_value(*(json_t *const *)b));
}

json_t *
cp_admin__plugins_in_use(struct cp_ctx *cx)
{
    struct cp_page_opts o = {.size = CP_PAGE_SIZE_MAX};
    struct st_err err = {0};
    struct cp_store *st = cp_store_pool_get(cx->pool);
    json_t *set = json_object();
    json_t *out = json_array();
    char *next = NULL;
    const char *name;
    json_t *v;
    int rc;

    do {
        json_t *data = NULL;
        size_t i;

        free(next);
        next = NULL;
        rc = cp_store_page(st, ST_ENT_PLUGIN, &o, &data, &next, &err);
        json_array_foreach(data, i, v)
        {
            name = json_string_value(json_object_get(v, "name"));
            if (name != NULL) {
                json_object_set_new(set, name, json_true());
            }
        }
        json_decref(data);
        o.offset = next;
    } while (rc == 0 && next != NULL);
    free(next);
    cp_store_pool_put(cx->pool, st);
    /* Kong lists the distinct names of the plugins stored; a store failure lists none
     * rather than fail GET / */
    json_object_foreach(set, name, v)
    {
        json_array_append_new(out, json_string(name));
    }
    json_decref(set);
    if (json_array_size(out) > 1) {
        size_t n = json_array_size(out);
        json_t **a = st_xcalloc(n, sizeof(*a));
        json_t *sorted = json_array();

        for (size_t i = 0; i < n; i++) {
            a[i] = json_array_get(out, i);
        }
        qsort(a, n, sizeof(*a), cmp_names);
        for (size_t i = 0; i < n; i++) {
            json_array_append(sorted, a[i]);
        }
        free(a);
        json_decref(out);
        out = sorted;
    }
    return out;
}
