/* libFuzzer target for the control plane's fleet health view (issue 16, point 5): every
 * data plane's health report (SyncRequest.upstream_health, JSON a DP wrote) reaches
 * cp_health_view_target when GET /upstreams/{u}/health is asked.
 *
 * The input is the reports object {dp_id: report}, as cp_registry_health gives it; the
 * target asked for is "t:80" of upstream "u". Besides memory errors, the target aborts
 * when the view:
 *   - lacks health, data.addresses or data_planes, or has a health outside Kong's words;
 *   - counts more data planes (healthy + unhealthy + unchecked) than reported, or, for an
 *     address, a negative or larger count (a DP's address counts once);
 *   - lists an address whose ip is not a string or whose port is outside 0..65535. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cp_health_view.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static json_int_t
num(const json_t *o, const char *k)
{
    return json_integer_value(json_object_get(o, k));
}

static void
check_counts(const json_t *dps, json_int_t n)
{
    json_int_t h = num(dps, "healthy"), u = num(dps, "unhealthy"), c = num(dps, "unchecked");

    if (!json_is_object(dps) || h < 0 || u < 0 || c < 0 || h + u + c != n) {
        abort();
    }
}

static bool
is_health(const char *s)
{
    return s != NULL && (strcmp(s, "HEALTHY") == 0 || strcmp(s, "UNHEALTHY") == 0 ||
                         strcmp(s, "HEALTHCHECKS_OFF") == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *reports = json_loadb((const char *)data, size, JSON_DECODE_ANY, NULL);
    json_t *t, *addrs, *a;
    json_int_t n;
    size_t i;

    if (!json_is_object(reports)) {
        json_decref(reports);
        return 0;
    }
    n = (json_int_t)json_object_size(reports);
    t = cp_health_view_target(json_pack("{s:s, s:i}", "target", "t:80", "weight", 100), reports,
                              "u");
    if (!is_health(json_string_value(json_object_get(t, "health")))) {
        abort();
    }
    check_counts(json_object_get(t, "data_planes"), n);
    addrs = json_object_get(json_object_get(t, "data"), "addresses");
    if (!json_is_array(addrs)) {
        abort();
    }
    json_array_foreach(addrs, i, a)
    {
        json_int_t port = num(a, "port");

        if (!json_is_string(json_object_get(a, "ip")) || port < 0 || port > 65535 ||
            !is_health(json_string_value(json_object_get(a, "health")))) {
            abort();
        }
        check_counts(json_object_get(a, "data_planes"), n);
    }
    json_decref(t);
    json_decref(reports);
    return 0;
}
