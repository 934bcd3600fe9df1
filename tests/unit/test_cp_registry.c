/* cp_registry (issue 7, point 2): entries from sync requests with Kong's fields, the
 * statuses (normal, kong_version_incompatible, apply_failed with the DP's error), paging
 * by id, goodbye, and the purge (STRAIT_TEST_PURGE_DELAY_MS). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "cp_registry.h"
#include "st_syncmsg.h"

#define ID_A "11111111-1111-4111-8111-111111111111"
#define ID_B "22222222-2222-4222-8222-222222222222"
#define ID_C "33333333-3333-4333-8333-333333333333"

static void
req_init(struct st_sync_req *q, const char *id)
{
    memset(q, 0, sizeof(*q));
    q->dp_id = (char *)id;
    q->hostname = "h";
    q->dp_version = "0.1.0";
    q->have_hash = "";
}

static const char *
str(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static void
test_fields_and_statuses(void **state)
{
    struct cp_registry *r = cp_registry_new();
    struct st_label l = {.key = "region", .value = "eu"};
    struct st_sync_req q;
    json_t *arr;
    json_t *e;
    bool more = true;

    (void)state;
    req_init(&q, ID_A);
    q.labels = &l;
    q.n_labels = 1;
    q.cert_expiry = 1890322914;
    cp_registry_seen(r, &q, "127.0.0.1", CP_REGISTRY_SYNC_NORMAL, NULL);
    arr = cp_registry_list(r, NULL, 100, &more);
    assert_false(more);
    assert_int_equal(json_array_size(arr), 1);
    e = json_array_get(arr, 0);
    assert_string_equal(str(e, "id"), ID_A);
    assert_string_equal(str(e, "ip"), "127.0.0.1");
    assert_string_equal(str(e, "sync_status"), "normal");
    assert_true(json_is_null(json_object_get(e, "sync_error")));
    assert_int_equal(strlen(str(e, "config_hash")), 64);
    assert_string_equal(str(json_object_get(e, "labels"), "region"), "eu");
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(e, "cert_details"), "expiry_timestamp")),
        1890322914);
    assert_true(json_integer_value(json_object_get(e, "ttl")) > 1209600 - 5);
    assert_int_equal(json_integer_value(json_object_get(e, "last_seen")),
                     json_integer_value(json_object_get(e, "updated_at")));
    json_decref(arr);

    /* the DP reports an apply error: apply_failed with it; the next clean request clears it */
    q.last_error = "bad snapshot";
    cp_registry_seen(r, &q, "127.0.0.1", CP_REGISTRY_SYNC_NORMAL, NULL);
    arr = cp_registry_list(r, NULL, 100, NULL);
    assert_string_equal(str(json_array_get(arr, 0), "sync_status"), "apply_failed");
    assert_string_equal(str(json_array_get(arr, 0), "sync_error"), "bad snapshot");
    json_decref(arr);
    q.last_error = NULL;
    cp_registry_seen(r, &q, "127.0.0.1", CP_REGISTRY_SYNC_NORMAL, NULL);
    arr = cp_registry_list(r, NULL, 100, NULL);
    assert_string_equal(str(json_array_get(arr, 0), "sync_status"), "normal");
    json_decref(arr);

    /* incompatible: the CP's reason */
    q.dp_version = "9.0.0";
    cp_registry_seen(r, &q, "127.0.0.1", CP_REGISTRY_SYNC_VERSION_INCOMPATIBLE, "too new");
    arr = cp_registry_list(r, NULL, 100, NULL);
    assert_string_equal(str(json_array_get(arr, 0), "sync_status"), "kong_version_incompatible");
    assert_string_equal(str(json_array_get(arr, 0), "sync_error"), "too new");
    assert_string_equal(str(json_array_get(arr, 0), "version"), "9.0.0");
    json_decref(arr);

    /* goodbye */
    q.goodbye = true;
    cp_registry_seen(r, &q, "127.0.0.1", CP_REGISTRY_SYNC_NORMAL, NULL);
    arr = cp_registry_list(r, NULL, 100, NULL);
    assert_int_equal(json_array_size(arr), 0);
    json_decref(arr);
    cp_registry_free(r);
}

static void
test_paging_by_id(void **state)
{
    struct cp_registry *r = cp_registry_new();
    const char *ids[] = {ID_C, ID_A, ID_B};
    struct st_sync_req q;
    json_t *arr;
    bool more = false;

    (void)state;
    for (size_t i = 0; i < 3; i++) {
        req_init(&q, ids[i]);
        cp_registry_seen(r, &q, "127.0.0.1", CP_REGISTRY_SYNC_NORMAL, NULL);
    }
    arr = cp_registry_list(r, NULL, 2, &more);
    assert_true(more);
    assert_int_equal(json_array_size(arr), 2);
    assert_string_equal(str(json_array_get(arr, 0), "id"), ID_A);
    assert_string_equal(str(json_array_get(arr, 1), "id"), ID_B);
    json_decref(arr);
    arr = cp_registry_list(r, ID_B, 2, &more);
    assert_false(more);
    assert_int_equal(json_array_size(arr), 1);
    assert_string_equal(str(json_array_get(arr, 0), "id"), ID_C);
    json_decref(arr);
    arr = cp_registry_list(r, NULL, 3, &more);
    assert_false(more);
    assert_int_equal(json_array_size(arr), 3);
    json_decref(arr);
    cp_registry_free(r);
}

static void
test_purge_knob(void **state)
{
    struct timespec ts = {.tv_sec = 0, .tv_nsec = 250 * 1000 * 1000};
    struct cp_registry *r;
    struct st_sync_req q;
    json_t *arr;

    (void)state;
    setenv("STRAIT_TEST_PURGE_DELAY_MS", "150", 1);
    r = cp_registry_new();
    unsetenv("STRAIT_TEST_PURGE_DELAY_MS");
    cp_registry_set_purge_delay(r, 3600); /* the knob wins */
    req_init(&q, ID_A);
    cp_registry_seen(r, &q, "127.0.0.1", CP_REGISTRY_SYNC_NORMAL, NULL);
    arr = cp_registry_status(r);
    assert_int_equal(json_object_size(arr), 1);
    json_decref(arr);
    nanosleep(&ts, NULL);
    arr = cp_registry_list(r, NULL, 100, NULL);
    assert_int_equal(json_array_size(arr), 0);
    json_decref(arr);
    arr = cp_registry_status(r);
    assert_int_equal(json_object_size(arr), 0);
    json_decref(arr);
    cp_registry_free(r);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fields_and_statuses),
        cmocka_unit_test(test_paging_by_id),
        cmocka_unit_test(test_purge_knob),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
