/* The fleet's view of a target's health, from the reports the data planes send
 * (SyncRequest.upstream_health: {upstream id: {target: [[ip, port, healthy], ...]}}).
 * Kong's fields stay (a target and its health, `data.addresses`); each target and
 * address adds `data_planes: {"healthy", "unhealthy", "unchecked"}`, the count of DPs
 * that see it so (unchecked: the DP reports no check of this upstream, or does not know
 * the target yet). A report is a DP's word: an entry of another shape is skipped. */
#include "cp_health_view.h"

#include <stdbool.h>
#include <string.h>

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

/* One address a DP reports: [ip, port, healthy], or false when e is not that shape
 * (a report is a DP's word, checked here, not trusted). */
static bool
address_ok(const json_t *e)
{
    const char *ip = json_string_value(json_array_get(e, 0));
    json_int_t port = json_integer_value(json_array_get(e, 1));

    return json_array_size(e) == 3 && ip != NULL && strlen(ip) < 64 &&
           json_is_integer(json_array_get(e, 1)) && port >= 0 && port <= 65535 &&
           json_is_boolean(json_array_get(e, 2));
}

json_t *
cp_health_view_target(json_t *t, const json_t *reports, const char *uid)
{
    const char *name = json_string_value(json_object_get(t, "target"));
    const char *no_name = "";
    json_t *dps = counts_new();
    json_t *addrs = json_object(); /* "ip port" -> address */
    json_t *list = json_array();
    const char *dp_id;
    json_t *rep;
    const char *key;
    json_t *a;

    json_object_foreach((json_t *)reports, dp_id, rep)
    {
        const json_t *seen = json_object_get(json_object_get(rep, uid), name ? name : no_name);
        bool any_healthy = false;
        size_t i, n_ok = 0;
        json_t *e, *mine;

        if (!json_is_array(seen)) {
            count(dps, "unchecked");
            continue;
        }
        mine = json_object(); /* this DP's addresses: each counts once */
        json_array_foreach(seen, i, e)
        {
            char ak[128];
            bool h = json_is_true(json_array_get(e, 2));

            if (!address_ok(e)) {
                continue;
            }
            st_snprintf(ak, sizeof(ak), "%s %lld", json_string_value(json_array_get(e, 0)),
                        (long long)json_integer_value(json_array_get(e, 1)));
            if (json_object_get(mine, ak) != NULL) {
                continue;
            }
            json_object_set_new(mine, ak, json_true());
            n_ok++;
            a = json_object_get(addrs, ak);
            if (a == NULL) {
                a = json_pack("{s:O, s:O, s:o}", "ip", json_array_get(e, 0), "port",
                              json_array_get(e, 1), "data_planes", counts_new());
                json_object_set_new(addrs, ak, a);
            }
            count(json_object_get(a, "data_planes"), h ? "healthy" : "unhealthy");
            any_healthy = any_healthy || h;
        }
        json_decref(mine);
        /* no address at all: the DP has none for it (DNS_ERROR there), so not healthy;
         * addresses none of which could be read: nothing known */
        count(dps, n_ok == 0 && json_array_size(seen) > 0 ? "unchecked"
                   : any_healthy                          ? "healthy"
                                                          : "unhealthy");
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
