/* dp_runtime: a snapshot built by st_snapshot_build becomes a runtime whose router
 * sends connections to the resolved service address; routes of disabled services
 * stay out; the runtime carries the snapshot's hash and version. Issue 2, point 5. */
#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "dp_router.h"
#include "dp_runtime.h"
#include "st_entity.h"
#include "st_err.h"
#include "st_schema.h"
#include "st_snapshot.h"

#define S1 "11111111-1111-4111-8111-111111111111"
#define S2 "22222222-2222-4222-8222-222222222222"

static json_t *
load(const char *text, enum st_entity_kind k)
{
    json_error_t je;
    json_t *arr = json_loads(text, 0, &je);
    json_t *o;
    size_t i;

    assert_non_null(arr);
    json_array_foreach(arr, i, o)
    {
        json_t *fields = NULL;

        assert_int_equal(st_schema_validate(k, o, &fields), 0);
    }
    return arr;
}

static struct dp_runtime *
build(char hash[65])
{
    json_t *services = load("[{\"id\":\"" S1 "\",\"name\":\"on\",\"url\":\"tcp://127.0.0.1:9000\","
                            "\"created_at\":1000,\"updated_at\":1000},"
                            "{\"id\":\"" S2 "\",\"name\":\"off\",\"url\":\"tcp://127.0.0.1:9001\","
                            "\"enabled\":false,\"created_at\":1000,\"updated_at\":1000}]",
                            ST_ENT_SERVICE);
    json_t *routes =
        load("[{\"id\":\"aaaaaaaa-1111-4111-8111-111111111111\",\"protocols\":[\"tcp\"],"
             "\"destinations\":[{\"port\":5555}],\"service\":{\"id\":\"" S1 "\"},"
             "\"created_at\":1000,\"updated_at\":1000},"
             "{\"id\":\"bbbbbbbb-1111-4111-8111-111111111111\",\"protocols\":[\"tcp\"],"
             "\"destinations\":[{\"port\":5556}],\"service\":{\"id\":\"" S2 "\"},"
             "\"created_at\":1000,\"updated_at\":1000}]",
             ST_ENT_ROUTE);
    struct st_snapshot *snap = NULL;
    struct dp_runtime *rt = NULL;
    struct st_err err;
    uint8_t *bytes = NULL;
    size_t len = 0;
    json_t *lists[ST_ENT__COUNT] = {NULL};

    lists[ST_ENT_SERVICE] = services;
    lists[ST_ENT_ROUTE] = routes;
    assert_int_equal(st_snapshot_build(7, lists, &bytes, &len, hash, &err), 0);
    assert_int_equal(st_snapshot_parse(bytes, len, NULL, &snap, &err), 0);
    assert_int_equal(dp_runtime_new(snap, NULL, NULL, &rt, &err), 0);
    free(bytes);
    json_decref(services);
    json_decref(routes);
    return rt;
}

static struct sockaddr_in
sin4(const char *ip, uint16_t port)
{
    struct sockaddr_in sa;

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    assert_int_equal(inet_pton(AF_INET, ip, &sa.sin_addr), 1);
    return sa;
}

static void
test_match_and_resolve(void **state)
{
    char hash[65];
    struct dp_runtime *rt = build(hash);
    struct sockaddr_in client = sin4("127.0.0.1", 40000);
    struct sockaddr_in local = sin4("127.0.0.1", 5555);
    const struct st_route *route = NULL;
    const struct dp_service_ep *up = NULL;
    const struct sockaddr_in *a;
    struct dp_router_key key = {.client = (struct sockaddr *)&client,
                                .local = (struct sockaddr *)&local};

    (void)state;
    assert_string_equal(dp_runtime_hash(rt), hash);
    assert_int_equal(dp_runtime_version(rt), 7);
    assert_int_equal(dp_runtime_match(rt, &key, &route, &up), 0);
    assert_string_equal(route->id, "aaaaaaaa-1111-4111-8111-111111111111");
    assert_string_equal(up->svc->id, S1);
    assert_true(up->n_addrs >= 1);
    a = (const struct sockaddr_in *)&up->addrs[0];
    assert_int_equal(a->sin_family, AF_INET);
    assert_int_equal(ntohs(a->sin_port), 9000);

    /* the route of the disabled service is not routed */
    local = sin4("127.0.0.1", 5556);
    assert_int_equal(dp_runtime_match(rt, &key, &route, &up), -ST_ENOTFOUND);
    dp_runtime_unref(rt);
}

static void
test_refcount(void **state)
{
    char hash[65];
    struct dp_runtime *rt = build(hash);

    (void)state;
    /* a session's reference keeps the runtime alive after the publisher drops its own */
    assert_ptr_equal(dp_runtime_ref(rt), rt);
    dp_runtime_unref(rt);
    assert_string_equal(dp_runtime_hash(rt), hash);
    dp_runtime_unref(rt);
    dp_runtime_unref(NULL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_match_and_resolve),
        cmocka_unit_test(test_refcount),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
