/* Unit tests for issue 18's dp_plugins: Kong's scope precedence resolved per route
 * (route + service, route, service, global), a route + service instance naming another
 * service never applying, disabled instances and those whose protocols leave the
 * session's out not candidates (a less specific one applies instead), no plugin at all giving NULL
 * (the sessions' one NULL check), and ip-restriction's verdict: deny first, then allow, the status
 * and message. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "dp_plugins.h"
#include "st_entity.h"
#include "st_err.h"
#include "st_snapshot.h"

static struct st_service svcs[2] = {{.id = "s0"}, {.id = "s1"}};
static struct st_route routes[3] = {
    {.id = "r0", .service = &svcs[0]},
    {.id = "r1", .service = &svcs[0]},
    {.id = "r2", .service = &svcs[1]},
};

#define ALL (ST_PROTO_TCP | ST_PROTO_TLS)

static struct st_plugin
ipr(const char *id, struct st_route *r, struct st_service *s, bool enabled, const char *config)
{
    return (struct st_plugin){.id = id,
                              .name = "ip-restriction",
                              .route = r,
                              .route_id = r != NULL ? r->id : NULL,
                              .service = s,
                              .service_id = s != NULL ? s->id : NULL,
                              .config = config,
                              .protocols = ALL,
                              .enabled = enabled};
}

static struct st_snapshot
snap_of(struct st_plugin *pl, size_t n)
{
    struct st_snapshot s;

    memset(&s, 0, sizeof(s));
    s.services = svcs;
    s.n_services = 2;
    s.routes = routes;
    s.n_routes = 3;
    s.plugins = pl;
    s.n_plugins = n;
    return s;
}

static const char *
id_for(const struct dp_plugins *p, size_t route)
{
    const struct dp_ipr *i = dp_plugins_ipr(p, route, ST_PROTO_TCP);

    return i != NULL ? i->id : "-";
}

static void
test_precedence(void **state)
{
    const char *cfg = "{\"deny\": [\"10.0.0.0/8\"]}";
    struct st_plugin pl[] = {
        ipr("global", NULL, NULL, true, cfg),
        ipr("svc0", NULL, &svcs[0], true, cfg),
        ipr("r1", &routes[1], NULL, true, cfg),
        ipr("r1+s0", &routes[1], &svcs[0], true, cfg),
        ipr("r2+s0", &routes[2], &svcs[0], true, cfg), /* r2's service is s1: never */
        ipr("r0-off", &routes[0], NULL, false, cfg),   /* disabled: s0's applies */
    };
    struct st_snapshot s = snap_of(pl, sizeof(pl) / sizeof(pl[0]));
    struct dp_plugins *p = NULL;
    struct st_err err = {0};

    (void)state;
    assert_int_equal(dp_plugins_new(&s, &p, &err), 0);
    assert_non_null(p);
    assert_string_equal(id_for(p, 0), "svc0");
    assert_string_equal(id_for(p, 1), "r1+s0");
    assert_string_equal(id_for(p, 2), "global");
    dp_plugins_free(p);

    /* without the route + service one, the route's; without any, none */
    s.n_plugins = 3;
    assert_int_equal(dp_plugins_new(&s, &p, &err), 0);
    assert_string_equal(id_for(p, 1), "r1");
    dp_plugins_free(p);
    s.n_plugins = 0;
    assert_int_equal(dp_plugins_new(&s, &p, &err), 0);
    assert_null(p);
    /* only disabled ones: none at all */
    s.plugins = &pl[5];
    s.n_plugins = 1;
    assert_int_equal(dp_plugins_new(&s, &p, &err), 0);
    assert_null(p);
}

/* An instance whose protocols leave the session's out is no candidate: the next scope's
 * applies (Kong leaves out, before choosing, those of another subsystem). */
static void
test_protocols(void **state)
{
    const char *cfg = "{\"deny\": [\"10.0.0.0/8\"]}";
    struct st_plugin pl[] = {
        ipr("global", NULL, NULL, true, cfg),
        ipr("r0-tls", &routes[0], NULL, true, cfg),
    };
    struct st_snapshot s = snap_of(pl, 2);
    struct dp_plugins *p = NULL;
    struct st_err err = {0};

    (void)state;
    pl[0].protocols = ST_PROTO_TCP | ST_PROTO_TLS_PASSTHROUGH;
    pl[1].protocols = ST_PROTO_TLS;
    assert_int_equal(dp_plugins_new(&s, &p, &err), 0);
    assert_string_equal(dp_plugins_ipr(p, 0, ST_PROTO_TLS)->id, "r0-tls");
    assert_string_equal(dp_plugins_ipr(p, 0, ST_PROTO_TCP)->id, "global");
    assert_string_equal(dp_plugins_ipr(p, 0, ST_PROTO_TLS_PASSTHROUGH)->id, "global");
    assert_null(dp_plugins_ipr(p, 1, ST_PROTO_TLS));
    assert_null(dp_plugins_ipr(p, 1, ST_PROTO_UDP));
    assert_null(dp_plugins_ipr(p, 9, ST_PROTO_TCP));
    dp_plugins_free(p);
    /* only HTTP protocols: present, yet never a candidate */
    pl[0].protocols = 0;
    s.n_plugins = 1;
    assert_int_equal(dp_plugins_new(&s, &p, &err), 0);
    assert_null(dp_plugins_ipr(p, 0, ST_PROTO_TCP));
    dp_plugins_free(p);
}

static bool
refuses(const struct dp_ipr *i, const char *ip)
{
    struct sockaddr_in sin = {.sin_family = AF_INET};

    assert_int_equal(inet_pton(AF_INET, ip, &sin.sin_addr), 1);
    return dp_ipr_refuses(i, (struct sockaddr *)&sin);
}

static void
test_verdict(void **state)
{
    struct st_plugin pl[] = {
        ipr("g", NULL, NULL, true,
            "{\"allow\": [\"10.0.0.0/8\"], \"deny\": [\"10.1.0.0/16\"], \"status\": 401, "
            "\"message\": \"go away\"}"),
    };
    struct st_snapshot s = snap_of(pl, 1);
    struct dp_plugins *p = NULL;
    struct st_err err = {0};
    const struct dp_ipr *i;

    (void)state;
    assert_int_equal(dp_plugins_new(&s, &p, &err), 0);
    i = dp_plugins_ipr(p, 0, ST_PROTO_TCP);
    assert_non_null(i);
    assert_false(refuses(i, "10.2.3.4"));
    assert_true(refuses(i, "10.1.3.4")); /* deny first */
    assert_true(refuses(i, "11.0.0.1")); /* not allowed */
    assert_int_equal(i->status, 401);
    assert_string_equal(i->message, "go away");
    assert_int_equal(i->protocols, ALL);
    dp_plugins_free(p);

    pl[0].config = "{\"deny\": [\"10.1.0.0/16\"], \"allow\": null}";
    assert_int_equal(dp_plugins_new(&s, &p, &err), 0);
    i = dp_plugins_ipr(p, 0, ST_PROTO_TCP);
    assert_false(refuses(i, "11.0.0.1"));
    assert_true(refuses(i, "10.1.0.1"));
    assert_int_equal(i->status, 403);
    assert_null(i->message);
    dp_plugins_free(p);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_protocols),
        cmocka_unit_test(test_verdict),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
