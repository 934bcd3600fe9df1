/* cp_registry (issue 7, point 2): entries from sync requests with Kong's fields, the
 * statuses (normal, kong_version_incompatible, apply_failed with the DP's error), paging
 * by id, goodbye, and the purge (STRAIT_TEST_PURGE_DELAY_MS); issue 14: the bound on
 * entries. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
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
    arr = cp_registry_list(r, NULL, NULL, 100, &more);
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
    arr = cp_registry_list(r, NULL, NULL, 100, NULL);
    assert_string_equal(str(json_array_get(arr, 0), "sync_status"), "apply_failed");
    assert_string_equal(str(json_array_get(arr, 0), "sync_error"), "bad snapshot");
    json_decref(arr);
    q.last_error = NULL;
    cp_registry_seen(r, &q, "127.0.0.1", CP_REGISTRY_SYNC_NORMAL, NULL);
    arr = cp_registry_list(r, NULL, NULL, 100, NULL);
    assert_string_equal(str(json_array_get(arr, 0), "sync_status"), "normal");
    json_decref(arr);

    /* incompatible: the CP's reason */
    q.dp_version = "9.0.0";
    cp_registry_seen(r, &q, "127.0.0.1", CP_REGISTRY_SYNC_VERSION_INCOMPATIBLE, "too new");
    arr = cp_registry_list(r, NULL, NULL, 100, NULL);
    assert_string_equal(str(json_array_get(arr, 0), "sync_status"), "kong_version_incompatible");
    assert_string_equal(str(json_array_get(arr, 0), "sync_error"), "too new");
    assert_string_equal(str(json_array_get(arr, 0), "version"), "9.0.0");
    json_decref(arr);

    /* goodbye */
    q.goodbye = true;
    cp_registry_seen(r, &q, "127.0.0.1", CP_REGISTRY_SYNC_NORMAL, NULL);
    arr = cp_registry_list(r, NULL, NULL, 100, NULL);
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
    arr = cp_registry_list(r, NULL, NULL, 2, &more);
    assert_true(more);
    assert_int_equal(json_array_size(arr), 2);
    assert_string_equal(str(json_array_get(arr, 0), "id"), ID_A);
    assert_string_equal(str(json_array_get(arr, 1), "id"), ID_B);
    json_decref(arr);
    arr = cp_registry_list(r, NULL, ID_B, 2, &more);
    assert_false(more);
    assert_int_equal(json_array_size(arr), 1);
    assert_string_equal(str(json_array_get(arr, 0), "id"), ID_C);
    json_decref(arr);
    arr = cp_registry_list(r, NULL, NULL, 3, &more);
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
    arr = cp_registry_status(r, NULL);
    assert_int_equal(json_object_size(arr), 1);
    json_decref(arr);
    nanosleep(&ts, NULL);
    arr = cp_registry_list(r, NULL, NULL, 100, NULL);
    assert_int_equal(json_array_size(arr), 0);
    json_decref(arr);
    arr = cp_registry_status(r, NULL);
    assert_int_equal(json_object_size(arr), 0);
    json_decref(arr);
    cp_registry_free(r);
}

/* A shared record: doc in Kong's shape but for ttl, seen `ago_ms` ago. */
static json_t *
record(const char *id, const char *hostname, long long ago_ms)
{
    struct timespec now;
    long long now_ms;

    clock_gettime(CLOCK_REALTIME, &now);
    now_ms = (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    return json_pack("{s:s,s:I,s:{s:s,s:s,s:I}}", "id", id, "last_seen_ms",
                     (json_int_t)(now_ms - ago_ms), "doc", "id", id, "hostname", hostname,
                     "last_seen", (json_int_t)((now_ms - ago_ms) / 1000));
}

/* The shared registry: records of other CPs join this CP's entries, sorted and paged
 * together; of two entries for one DP the one seen last wins (the DP moved); records
 * older than the purge delay are not listed; take() hands over what changed once. */
static void
test_shared_records_and_take(void **state)
{
    struct cp_registry *r = cp_registry_new();
    struct st_sync_req q;
    json_t *shared, *arr, *seen, *gone;
    bool more = false;

    (void)state;
    cp_registry_set_purge_delay(r, 3600);
    req_init(&q, ID_B);
    q.hostname = "local-b";
    cp_registry_seen(r, &q, "127.0.0.1", CP_REGISTRY_SYNC_NORMAL, NULL);
    req_init(&q, ID_C);
    q.hostname = "local-c";
    cp_registry_seen(r, &q, "127.0.0.1", CP_REGISTRY_SYNC_NORMAL, NULL);
    /* A only elsewhere; B elsewhere too but earlier; C elsewhere later (it moved there) */
    shared = json_pack("[o,o,o,o]", record(ID_A, "remote-a", 1000), record(ID_B, "remote-b", 5000),
                       record(ID_C, "remote-c", -5000),
                       record("44444444-4444-4444-8444-444444444444", "purged", 7200 * 1000));
    arr = cp_registry_list(r, shared, NULL, 100, &more);
    assert_false(more);
    assert_int_equal(json_array_size(arr), 3);
    assert_string_equal(str(json_array_get(arr, 0), "hostname"), "remote-a");
    assert_string_equal(str(json_array_get(arr, 1), "hostname"), "local-b");
    assert_string_equal(str(json_array_get(arr, 2), "hostname"), "remote-c");
    assert_true(json_integer_value(json_object_get(json_array_get(arr, 0), "ttl")) > 3590);
    json_decref(arr);
    /* pages over both */
    arr = cp_registry_list(r, shared, NULL, 2, &more);
    assert_true(more);
    assert_int_equal(json_array_size(arr), 2);
    json_decref(arr);
    arr = cp_registry_list(r, shared, ID_B, 2, &more);
    assert_false(more);
    assert_int_equal(json_array_size(arr), 1);
    assert_string_equal(str(json_array_get(arr, 0), "id"), ID_C);
    json_decref(arr);
    arr = cp_registry_status(r, shared);
    assert_int_equal(json_object_size(arr), 3);
    assert_string_equal(str(json_object_get(arr, ID_A), "hostname"), "remote-a");
    json_decref(arr);
    json_decref(shared);

    /* take: both entries once, then nothing; a goodbye is handed over as gone (but not
     * one said before the first take: a registry nobody shares keeps no goodbyes) */
    cp_registry_remove(r, ID_A);
    cp_registry_take(r, &seen, &gone);
    assert_int_equal(json_array_size(seen), 2);
    assert_string_equal(str(json_object_get(json_array_get(seen, 0), "doc"), "hostname"),
                        "local-b");
    assert_null(json_object_get(json_object_get(json_array_get(seen, 0), "doc"), "ttl"));
    assert_int_equal(json_array_size(gone), 0);
    json_decref(seen);
    json_decref(gone);
    cp_registry_take(r, &seen, &gone);
    assert_int_equal(json_array_size(seen), 0);
    json_decref(seen);
    json_decref(gone);
    req_init(&q, ID_B);
    q.goodbye = true;
    cp_registry_seen(r, &q, "127.0.0.1", CP_REGISTRY_SYNC_NORMAL, NULL);
    cp_registry_take(r, &seen, &gone);
    assert_int_equal(json_array_size(seen), 0);
    assert_int_equal(json_array_size(gone), 1);
    assert_string_equal(str(json_array_get(gone, 0), "id"), ID_B);
    assert_true(json_integer_value(json_object_get(json_array_get(gone, 0), "at_ms")) > 0);
    json_decref(seen);
    json_decref(gone);
    cp_registry_free(r);
}

/* Issue 14: a DP names itself, so the registry is bounded. A new id in a full registry
 * replaces the entry whose last request is the oldest (a shared registry records it as a
 * goodbye); refreshing a known id never evicts; a flood of new ids keeps it at its bound. */
static void
test_bound_evicts_the_longest_silent(void **state)
{
    struct cp_registry *r = cp_registry_new();
    struct st_sync_req q;
    json_t *arr, *seen, *gone;
    char id[40];

    (void)state;
    cp_registry_set_max(r, 3);
    cp_registry_take(r, &seen, &gone); /* shared from now on: goodbyes are kept */
    json_decref(seen);
    json_decref(gone);
    req_init(&q, ID_A);
    cp_registry_seen(r, &q, "127.0.0.1", CP_REGISTRY_SYNC_NORMAL, NULL);
    req_init(&q, ID_B);
    cp_registry_seen(r, &q, "127.0.0.1", CP_REGISTRY_SYNC_NORMAL, NULL);
    req_init(&q, ID_C);
    cp_registry_seen(r, &q, "127.0.0.1", CP_REGISTRY_SYNC_NORMAL, NULL);
    req_init(&q, ID_A); /* A talks again: B is now the one silent the longest */
    cp_registry_seen(r, &q, "127.0.0.1", CP_REGISTRY_SYNC_NORMAL, NULL);
    arr = cp_registry_list(r, NULL, NULL, 100, NULL);
    assert_int_equal(json_array_size(arr), 3);
    json_decref(arr);

    req_init(&q, "44444444-4444-4444-8444-444444444444");
    cp_registry_seen(r, &q, "127.0.0.1", CP_REGISTRY_SYNC_NORMAL, NULL);
    arr = cp_registry_list(r, NULL, NULL, 100, NULL);
    assert_int_equal(json_array_size(arr), 3);
    assert_string_equal(str(json_array_get(arr, 0), "id"), ID_A);
    assert_string_equal(str(json_array_get(arr, 1), "id"), ID_C);
    assert_string_equal(str(json_array_get(arr, 2), "id"), "44444444-4444-4444-8444-444444444444");
    json_decref(arr);
    cp_registry_take(r, &seen, &gone);
    assert_int_equal(json_array_size(gone), 1);
    assert_string_equal(str(json_array_get(gone, 0), "id"), ID_B);
    json_decref(seen);
    json_decref(gone);

    /* B comes back; then a flood of invented ids, each evicting one entry */
    req_init(&q, ID_B);
    cp_registry_seen(r, &q, "127.0.0.1", CP_REGISTRY_SYNC_NORMAL, NULL);
    for (int i = 0; i < 1000; i++) {
        snprintf(id, sizeof(id), "flood-%d", i);
        req_init(&q, id);
        cp_registry_seen(r, &q, "127.0.0.1", CP_REGISTRY_SYNC_NORMAL, NULL);
    }
    arr = cp_registry_list(r, NULL, NULL, SIZE_MAX, NULL);
    assert_int_equal(json_array_size(arr), 3);
    assert_string_equal(str(json_array_get(arr, 0), "id"), "flood-997");
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
        cmocka_unit_test(test_shared_records_and_take),
        cmocka_unit_test(test_bound_evicts_the_longest_silent),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
