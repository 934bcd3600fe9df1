/* The plugins of a runtime (see dp_plugins.h): Kong's scope precedence resolved per route
 * at build time (kong/runloop/plugins_iterator.lua: route+service, route, service,
 * global; a disabled instance is not there at all, as Kong never exports one to its DPs),
 * and ip-restriction's lists parsed into st_cidr_sets (kong/plugins/ip-restriction/
 * handler.lua: deny first, then allow; the status defaults to 403). */
#include "dp_plugins.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "st_entity.h"
#include "st_err.h"
#include "st_snapshot.h"
#include "st_util.h"

#define IPR_NAME           "ip-restriction"
#define IPR_STATUS_DEFAULT 403

struct dp_plugins {
    struct dp_ipr *iprs; /* one per enabled ip-restriction instance */
    size_t n_iprs;
    json_t **configs; /* their parsed configs (messages point into them) */
    /* per route and session protocol (route * DP_PLUGINS_PROTOS + the protocol's slot):
     * the instance that applies, or NULL */
    const struct dp_ipr **route_ipr;
    size_t n_routes;
};

/* Parses one list of blocks into set; *given when the list is non-empty. */
static int
list_build(const json_t *list, struct st_cidr_set *set, bool *given, struct st_err *err)
{
    size_t n = json_array_size(list);
    struct st_cidr *blocks = st_xcalloc(n + 1, sizeof(*blocks));
    json_t *v;
    size_t i;
    int rc = 0;

    json_array_foreach(list, i, v)
    {
        if (st_cidr_parse(json_string_value(v) != NULL ? json_string_value(v) : "", &blocks[i]) !=
            0) {
            rc = st_err_set(err, -ST_EPARSE, NULL, "ip-restriction: bad block '%s'",
                            json_string_value(v) != NULL ? json_string_value(v) : "?");
            break;
        }
    }
    if (rc == 0 && st_cidr_set_build(set, blocks, n) != 0) {
        rc = st_err_set(err, -ENOMEM, NULL, "out of memory building ip-restriction");
    }
    *given = rc == 0 && n > 0;
    free(blocks);
    return rc;
}

static int
ipr_build(const struct st_plugin *pl, struct dp_ipr *ipr, json_t **config, struct st_err *err)
{
    json_t *c = json_loads(pl->config != NULL ? pl->config : "{}", 0, NULL);
    const json_t *st;
    int rc;

    *config = c;
    if (!json_is_object(c)) {
        return st_err_set(err, -ST_EPARSE, NULL, "plugin %s: config is not a JSON object", pl->id);
    }
    ipr->id = pl->id;
    ipr->protocols = pl->protocols;
    rc = list_build(json_object_get(c, "deny"), &ipr->deny, &ipr->has_deny, err);
    if (rc == 0) {
        rc = list_build(json_object_get(c, "allow"), &ipr->allow, &ipr->has_allow, err);
    }
    st = json_object_get(c, "status");
    ipr->status = IPR_STATUS_DEFAULT;
    if (json_is_number(st)) {
        double d = json_number_value(st);

        ipr->status = d < 0 ? 0 : d > INT_MAX ? INT_MAX : (int)d;
    }
    ipr->message = json_string_value(json_object_get(c, "message"));
    return rc;
}

void
dp_plugins_free(struct dp_plugins *p)
{
    if (p == NULL) {
        return;
    }
    for (size_t i = 0; i < p->n_iprs; i++) {
        st_cidr_set_free(&p->iprs[i].allow);
        st_cidr_set_free(&p->iprs[i].deny);
        json_decref(p->configs[i]);
    }
    free(p->iprs);
    free(p->configs);
    free(p->route_ipr);
    free(p);
}

/* The session protocols a plugin can run on, in route_ipr's order. */
static const unsigned protos[DP_PLUGINS_PROTOS] = {ST_PROTO_TCP, ST_PROTO_TLS,
                                                   ST_PROTO_TLS_PASSTHROUGH};

/* For protocol proto: each route's instance by Kong's precedence among the enabled ones
 * whose protocols include proto (Kong leaves out, before choosing, the instances that do
 * not run in the subsystem; Strait per protocol). */
static void
resolve(const struct st_snapshot *snap, struct dp_plugins *p, unsigned proto, size_t slot,
        const struct dp_ipr **by_rs, const struct dp_ipr **by_r, const struct dp_ipr **by_s)
{
    const struct dp_ipr *global = NULL;
    size_t n = 0;

    memset(by_rs, 0, (snap->n_routes + 1) * sizeof(*by_rs));
    memset(by_r, 0, (snap->n_routes + 1) * sizeof(*by_r));
    memset(by_s, 0, (snap->n_services + 1) * sizeof(*by_s));
    for (size_t i = 0; i < snap->n_plugins; i++) {
        const struct st_plugin *pl = &snap->plugins[i];
        const struct dp_ipr *ipr;

        if (!pl->enabled || strcmp(pl->name, IPR_NAME) != 0) {
            continue;
        }
        ipr = &p->iprs[n++]; /* built in the same order */
        if ((ipr->protocols & proto) == 0) {
            continue;
        }
        /* one instance per name and scope (the CP's unique key): no tie to break */
        if (pl->route != NULL && pl->service != NULL) {
            size_t r = (size_t)(pl->route - snap->routes);

            if (snap->routes[r].service == pl->service) {
                by_rs[r] = ipr; /* applies only to that route with that service */
            }
        } else if (pl->route != NULL) {
            by_r[pl->route - snap->routes] = ipr;
        } else if (pl->service != NULL) {
            by_s[pl->service - snap->services] = ipr;
        } else if (pl->route_id == NULL && pl->service_id == NULL) {
            global = ipr;
        }
    }
    for (size_t r = 0; r < snap->n_routes; r++) {
        const struct st_service *svc = snap->routes[r].service;
        const struct dp_ipr *best = by_rs[r];

        best = best != NULL ? best : by_r[r];
        best = best != NULL || svc == NULL ? best : by_s[svc - snap->services];
        p->route_ipr[r * DP_PLUGINS_PROTOS + slot] = best != NULL ? best : global;
    }
}

int
dp_plugins_new(const struct st_snapshot *snap, struct dp_plugins **out, struct st_err *err)
{
    struct dp_plugins *p;
    const struct dp_ipr **by_rs, **by_r, **by_s;
    size_t n = 0;
    int rc = 0;

    *out = NULL;
    for (size_t i = 0; i < snap->n_plugins; i++) {
        n += snap->plugins[i].enabled && strcmp(snap->plugins[i].name, IPR_NAME) == 0;
    }
    if (n == 0) {
        return 0; /* the sessions' fast path: no plugins at all */
    }
    p = st_xcalloc(1, sizeof(*p));
    p->iprs = st_xcalloc(n, sizeof(*p->iprs));
    p->configs = st_xcalloc(n, sizeof(*p->configs));
    p->n_routes = snap->n_routes;
    p->route_ipr = st_xcalloc(snap->n_routes * DP_PLUGINS_PROTOS + 1, sizeof(*p->route_ipr));
    for (size_t i = 0; i < snap->n_plugins && rc == 0; i++) {
        const struct st_plugin *pl = &snap->plugins[i];

        if (pl->enabled && strcmp(pl->name, IPR_NAME) == 0) {
            rc = ipr_build(pl, &p->iprs[p->n_iprs], &p->configs[p->n_iprs], err);
            p->n_iprs++;
        }
    }
    if (rc != 0) {
        dp_plugins_free(p);
        return rc;
    }
    by_rs = st_xcalloc(snap->n_routes + 1, sizeof(*by_rs));
    by_r = st_xcalloc(snap->n_routes + 1, sizeof(*by_r));
    by_s = st_xcalloc(snap->n_services + 1, sizeof(*by_s));
    for (size_t k = 0; k < DP_PLUGINS_PROTOS; k++) {
        resolve(snap, p, protos[k], k, by_rs, by_r, by_s);
    }
    free(by_rs);
    free(by_r);
    free(by_s);
    *out = p;
    return 0;
}

const struct dp_ipr *
dp_plugins_ipr(const struct dp_plugins *p, size_t route, unsigned proto)
{
    for (size_t k = 0; route < p->n_routes && k < DP_PLUGINS_PROTOS; k++) {
        if (protos[k] == proto) {
            return p->route_ipr[route * DP_PLUGINS_PROTOS + k];
        }
    }
    return NULL;
}

bool
dp_ipr_refuses(const struct dp_ipr *ipr, const struct sockaddr *sa)
{
    if (ipr->has_deny && st_cidr_set_match(&ipr->deny, sa)) {
        return true;
    }
    return ipr->has_allow && !st_cidr_set_match(&ipr->allow, sa);
}
