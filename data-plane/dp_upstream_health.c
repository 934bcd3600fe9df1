/* Kong's GET /upstreams/{u}/health for this data plane's own view (see
 * dp_upstream_health.h): what its balancers know of each target and address. Kong's
 * shapes (kong/api/routes/upstreams.lua, kong/db/dao/targets.lua
 * page_for_upstream_with_health): a target is HEALTHY when any of its addresses is,
 * else UNHEALTHY when any is, else HEALTHCHECKS_OFF; DNS_ERROR when it has no address;
 * targets of weight 0 are not listed. */
#include "dp_upstream_health.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "dp_balancer.h"
#include "dp_runtime.h"
#include "st_entity.h"
#include "st_snapshot.h"

/* Kong's is_upstream_using_healthcheck: an active interval, or a passive failure limit. */
static bool
checks_in_use(const struct dp_hc *hc)
{
    return hc->healthy_interval_ms != 0 || hc->unhealthy_interval_ms != 0 ||
           hc->passive_tcp_failures != 0 || hc->passive_timeouts != 0;
}

static json_t *
address_json(const struct dp_balancer *b, int i, bool checked)
{
    const struct sockaddr *sa = dp_balancer_addr(b, i);
    char ip[INET6_ADDRSTRLEN] = "";
    unsigned port = 0;

    if (sa->sa_family == AF_INET6) {
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, ip, sizeof(ip));
        port = ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
    } else {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, ip, sizeof(ip));
        port = ntohs(((const struct sockaddr_in *)sa)->sin_port);
    }
    return json_pack("{s:s, s:i, s:s, s:i}", "ip", ip, "port", (int)port, "health",
                     !checked                    ? "HEALTHCHECKS_OFF"
                     : dp_balancer_healthy(b, i) ? "HEALTHY"
                                                 : "UNHEALTHY",
                     "weight", (int)dp_balancer_weight(b, i));
}

/* The target t with its health and addresses (Kong's target with `health`, `data`). */
static json_t *
target_json(const struct st_target *t, const struct dp_balancer *b, bool checked)
{
    json_t *addrs = json_array();
    const char *health = "DNS_ERROR";

    for (size_t i = 0; b != NULL && i < dp_balancer_size(b); i++) {
        if (strcmp(dp_balancer_target(b, (int)i), t->target) != 0) {
            continue;
        }
        json_array_append_new(addrs, address_json(b, (int)i, checked));
        if (!checked) {
            health = "HEALTHCHECKS_OFF";
        } else if (dp_balancer_healthy(b, (int)i)) {
            health = "HEALTHY";
        } else if (strcmp(health, "HEALTHY") != 0) {
            health = "UNHEALTHY";
        }
    }
    return json_pack("{s:s, s:I, s:{s:s}, s:s, s:i, s:s, s:{s:o}}", "id", t->id, "created_at",
                     (json_int_t)(t->created_at_ms / 1000), "upstream", "id", t->upstream_id,
                     "target", t->target, "weight", (int)t->weight, "health", health, "data",
                     "addresses", addrs);
}

/* Kong's get_balancer_health: the upstream's health and the weights behind it. */
static json_t *
balancer_json(const struct st_upstream *u, const struct dp_balancer *b)
{
    uint64_t total = 0, available = 0;
    bool checked = b != NULL && checks_in_use(dp_balancer_hc(b));
    bool healthy;
    double threshold = b != NULL ? dp_balancer_hc(b)->threshold : 0;

    for (size_t i = 0; b != NULL && i < dp_balancer_size(b); i++) {
        total += dp_balancer_weight(b, (int)i);
        available += dp_balancer_healthy(b, (int)i) ? dp_balancer_weight(b, (int)i) : 0;
    }
    healthy = available > 0 && (double)available * 100.0 >= threshold * (double)total;
    return json_pack("{s:s, s:s, s:s, s:{s:b, s:{s:I, s:I, s:I}}}", "id", u->id, "health",
                     !checked  ? "HEALTHCHECKS_OFF"
                     : healthy ? "HEALTHY"
                               : "UNHEALTHY",
                     "balancer_health", healthy ? "HEALTHY" : "UNHEALTHY", "details", "healthy",
                     healthy, "weight", "total", (json_int_t)total, "available",
                     (json_int_t)available, "unavailable", (json_int_t)(total - available));
}

char *
dp_upstream_health_report(const struct dp_runtime *rt)
{
    const struct st_snapshot *snap = dp_runtime_snapshot(rt);
    struct dp_balancer *const *bals;
    json_t *all = json_object();
    char *text = NULL;

    (void)dp_runtime_balancers(rt, &bals);
    for (size_t u = 0; u < snap->n_upstreams; u++) {
        const struct dp_balancer *b = bals[u];
        json_t *targets;

        if (!checks_in_use(dp_balancer_hc(b))) {
            continue;
        }
        targets = json_object();
        for (size_t i = 0; i < dp_balancer_size(b); i++) {
            json_t *a = address_json(b, (int)i, true);
            json_t *list = json_object_get(targets, dp_balancer_target(b, (int)i));

            if (list == NULL) {
                list = json_array();
                json_object_set_new(targets, dp_balancer_target(b, (int)i), list);
            }
            json_array_append_new(list, json_pack("[O, O, b]", json_object_get(a, "ip"),
                                                  json_object_get(a, "port"),
                                                  dp_balancer_healthy(b, (int)i)));
            json_decref(a);
        }
        json_object_set_new(all, snap->upstreams[u].id, targets);
    }
    if (json_object_size(all) > 0) {
        text = json_dumps(all, JSON_COMPACT | JSON_SORT_KEYS);
    }
    json_decref(all);
    return text;
}

json_t *
dp_upstream_health_json(const struct dp_runtime *rt, const char *key, bool balancer,
                        const char *node_id)
{
    const struct st_snapshot *snap = dp_runtime_snapshot(rt);
    struct dp_balancer *const *bals;
    const struct st_upstream *u = NULL;
    const struct dp_balancer *b;
    json_t *data;
    size_t ui;

    (void)dp_runtime_balancers(rt, &bals);
    for (ui = 0; ui < snap->n_upstreams; ui++) {
        u = &snap->upstreams[ui];
        if (strcmp(u->id, key) == 0 || strcmp(u->name, key) == 0) {
            break;
        }
    }
    if (ui == snap->n_upstreams) {
        return NULL;
    }
    b = bals[ui];
    if (balancer) {
        data = balancer_json(u, b);
    } else {
        bool checked = checks_in_use(dp_balancer_hc(b));

        data = json_array();
        for (size_t t = 0; t < snap->n_targets; t++) {
            if (snap->targets[t].upstream == u && snap->targets[t].weight > 0) {
                json_array_append_new(data, target_json(&snap->targets[t], b, checked));
            }
        }
    }
    return json_pack("{s:o, s:n, s:s}", "data", data, "next", "node_id", node_id);
}
