/* GET /upstreams/{u}/health on the control plane: the fleet's view of each target
 * (cp_health_view), from the health reports the data planes send with their sync
 * requests (and, on Postgres, the shared registry: every CP's DPs). `?data_plane={id}`
 * is one DP's view. Kong's CP has no live data here at all (kong-next-features.md §1.6). */
#include <stdlib.h>
#include <string.h>

#include "cp_admin_int.h"
#include "cp_ctx.h"
#include "cp_health_view.h"
#include "cp_registry.h"
#include "cp_store.h"
#include "cp_store_pool.h"
#include "st_entity.h"
#include "st_err.h"
#include "st_util.h"

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
            json_array_append_new(data, cp_health_view_target(cp_admin__render(t), reports, uid));
        }
    }
    cp_admin__reply(rs, 200,
                    json_pack("{s:o, s:n, s:s}", "data", data, "next", "node_id", cx->node_id));
    json_decref(reports);
    json_decref(targets);
    json_decref(up);
}
