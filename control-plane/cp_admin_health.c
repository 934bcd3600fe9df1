/* GET /upstreams/{u}/health on the control plane: the fleet's view of each target, from
 * the health reports the data planes send with their sync requests (and, on Postgres,
 * the shared registry: every CP's DPs). Kong's fields stay (a target and its health,
 * `data.addresses`); each target and address adds `data_planes: {"healthy", "unhealthy",
 * "unchecked"}`, the count of DPs that see it so (unchecked: the DP reports no check of
 * this upstream, or does not know the target yet). `?data_plane={id}` is one DP's view.
 * Kong's CP has no live data here at all (kong-next-features.md §1.6). */
#include <stdlib.h>
#include <string.h>

#include "cp_admin_int.h"
#include "cp_ctx.h"
#include "cp_registry.h"
#include "cp_store.h"
#include "cp_store_pool.h"
#include "st_entity.h"
#include "st_err.h"
#include "st_util.h"

/* Counts into a {"healthy", "unhealthy", "unchecked"} object. */
static void
count(json_t *dps, const char *which)
{
    json_object_set_new(dps, which,
                        json_integer(json_integer_value(json_object_get(dps, which)) + 1));
}

static json_t *
counts_new(void)
{
    return json_pack("{s:i, s:i, s:i}", "healthy", 0, "unhealthy", 0, "unchecked", 0);
}

static const char *
health_of(const json_t *dps)
{
    if (json_integer_value(json_object_get(dps, "healthy")) > 0) {
        return "HEALTHY";
    }
    return json_integer_value(json_object_get(dps, "unhealthy")) > 0 ? "UNHEALTHY"
                                                                     : "HEALTHCHECKS_OFF";
}

/* Target t (the stored entity, rendered) with the fleet's view of it from reports
 * ({dp_id: report or null}) of upstream uid. */
static json_t *
target_health(json_t *t, const json_t *reports, const char *uid)
{
    const char *name = json_string_value(json_object_get(t, "target"));
    json_t *dps = counts_new();
    json_t *addrs = json_object(); /* "ip port" -> address */
    json_t *list = json_array();
    const char *dp_id;
    json_t *rep;
    const char *key;
    json_t *a;

    json_object_foreach((json_t *)reports, dp_id, rep)
    {
        const json_t *seen = json_object_get(json_object_get(rep, uid), name);
        bool any_healthy = false;
        size_t i;
        json_t *e;

        if (!json_is_array(seen)) {
            count(dps, "unchecked");
            continue;
        }
        json_array_foreach(seen, i, e)
        {
            char ak[128];
            bool h = json_is_true(json_array_get(e, 2));

            st_snprintf(ak, sizeof(ak), "%s %lld", json_string_value(json_array_get(e, 0)),
                        (long long)json_integer_value(json_array_get(e, 1)));
            a = json_object_get(addrs, ak);
            if (a == NULL) {
                a = json_pack("{s:O, s:O, s:o}", "ip", json_array_get(e, 0), "port",
                              json_array_get(e, 1), "data_planes", counts_new());
                json_object_set_new(addrs, ak, a);
            }
            count(json_object_get(a, "data_planes"), h ? "healthy" : "unhealthy");
            any_healthy = any_healthy || h;
        }
        count(dps, any_healthy ? "healthy" : "unhealthy");
    }
    json_object_foreach(addrs, key, a)
    {
        json_t *ad = json_object_get(a, "data_planes");
        json_int_t seen = json_integer_value(json_object_get(ad, "healthy")) +
                          json_integer_value(json_object_get(ad, "unhealthy"));

        json_object_set_new(ad, "unchecked",
                            json_integer((json_int_t)json_object_size(reports) - seen));
        json_object_set_new(a, "health", json_string(health_of(ad)));
        json_array_append(list, a);
    }
    json_decref(addrs);
    json_object_set_new(t, "health", json_string(health_of(dps)));
    json_object_set_new(t, "data", json_pack("{s:o}", "addresses", list));
    json_object_set_new(t, "data_planes", dps);
    return t;
}

/* Every target of upstream uid (all pages), or NULL (rc set). */
static json_t *
targets_of(struct cp_store *st, const char *uid, int *rc, struct st_err *err)
{
    struct cp_page_opts o = {.size = 1000, .parent_id = uid};
    json_t *all = json_array();
    char *next = NULL;

    do {
        json_t *data = NULL;

        free(next);
        next = NULL;
        *rc = cp_store_page(st, ST_ENT_TARGET, &o, &data, &next, err);
        if (*rc < 0) {
            json_decref(all);
            return NULL;
        }
        json_array_extend(all, data);
        json_decref(data);
        o.offset = next;
    } while (next != NULL);
    return all;
}

void
cp_admin__upstream_health(struct cp_ctx *cx, const struct cp_request *rq, struct cp_response *rs,
                          const char *key)
{
    const char *only = json_string_value(json_object_get(rq->query, "data_plane"));
    struct cp_store *st = cp_store_pool_get(cx->pool);
    struct st_err err = {0};
    json_t *up = NULL, *targets = NULL, *shared, *reports, *data;
    const char *uid;
    size_t i;
    json_t *t;
    int rc;

    rc = cp_store_get(st, ST_ENT_UPSTREAM, key, &up);
    if (rc == 0) {
        targets = targets_of(st, json_string_value(json_object_get(up, "id")), &rc, &err);
    }
    cp_store_pool_put(cx->pool, st);
    if (rc < 0) {
        json_decref(up);
        if (rc == -ST_ENOTFOUND) {
            cp_admin__reply_msg(rs, 404, "Not found");
        } else {
            cp_admin__reply_err(rs, ST_ENT_UPSTREAM, rc, &err, NULL);
        }
        return;
    }
    uid = json_string_value(json_object_get(up, "id"));
    shared = cp_admin__shared_dps(cx);
    reports = cp_registry_health(cx->reg, shared);
    json_decref(shared);
    if (only != NULL) {
        json_t *one = json_object_get(reports, only);

        if (one == NULL) {
            json_decref(reports);
            json_decref(targets);
            json_decref(up);
            cp_admin__reply_msg(rs, 404, "data plane not found");
            return;
        }
        json_incref(one);
        json_decref(reports);
        reports = json_object();
        json_object_set_new(reports, only, one);
    }
    data = json_array();
    json_array_foreach(targets, i, t)
    {
        if (json_integer_value(json_object_get(t, "weight")) > 0) { /* as Kong lists them */
            json_array_append_new(data, target_health(cp_admin__render(t), reports, uid));
        }
    }
    cp_admin__reply(rs, 200,
                    json_pack("{s:o, s:n, s:s}", "data", data, "next", "node_id", cx->node_id));
    json_decref(reports);
    json_decref(targets);
    json_decref(up);
}
