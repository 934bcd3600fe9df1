/* The fleet's view of one target's health on the control plane (GET /upstreams/{u}/health),
 * built from the data planes' reports; no I/O, no store (fuzzed: fuzz_cp_health_view). */
#ifndef STRAIT_CP_HEALTH_VIEW_H
#define STRAIT_CP_HEALTH_VIEW_H

#include <jansson.h>

/* Target t (the stored entity, rendered; its reference is taken and returned) with the
 * fleet's view of it from reports ({dp_id: report or null}) of upstream uid: `health`,
 * `data.addresses` and `data_planes`. */
json_t *cp_health_view_target(json_t *t, const json_t *reports, const char *uid);

#endif
