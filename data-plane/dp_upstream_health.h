/* The health of an upstream's targets as this data plane's balancers see them, in the
 * shape of Kong's GET /upstreams/{u}/health (the status listener serves it). */
#ifndef STRAIT_DP_UPSTREAM_HEALTH_H
#define STRAIT_DP_UPSTREAM_HEALTH_H

#include <jansson.h>
#include <stdbool.h>

struct dp_runtime;

/* The upstream named or identified by key in rt: {"data": [target...], "next": null,
 * "node_id": node_id}, or with balancer, Kong's ?balancer_health=1 object as data. NULL
 * when rt has no such upstream. A new reference. */
json_t *dp_upstream_health_json(const struct dp_runtime *rt, const char *key, bool balancer,
                                const char *node_id);

/* What the DP reports of its health to the control plane (SyncRequest.upstream_health):
 * {upstream_id: {target: [[ip, port, healthy], ...]}} for the upstreams that use health
 * checks, as compact JSON (malloc'd), or NULL when none does. */
char *dp_upstream_health_report(const struct dp_runtime *rt);

#endif
