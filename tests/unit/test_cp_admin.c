/* cp_admin without HTTP, against a temporary SQLite store (issue 2: Kong's admin API
 * conventions, error bodies, and failed writes changing nothing). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cp_admin.h"
#include "cp_ctx.h"
#include "cp_registry.h"
#include "cp_store.h"
#include "st_err.h"

struct fx {
    char dir[64];
    struct cp_ctx cx;
};

static int
setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    struct st_err err = {0};
    char path[128];

    snprintf(f->dir, sizeof(f->dir), "/tmp/test_cp_admin.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(path, sizeof(path), "%s/strait.db", f->dir);
    assert_int_equal(cp_store_sqlite_open(path, &f->cx.store, &err), 0);
    pthread_mutex_init(&f->cx.store_mu, NULL);
    f->cx.reg = cp_registry_new();
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fx *f = *state;
    static const char *const files[] = {"strait.db", "strait.db-wal", "strait.db-shm"};
    char p[192];

    cp_store_close(f->cx.store);
    cp_registry_free(f->cx.reg);
    pthread_mutex_destroy(&f->cx.store_mu);
    for (size_t i = 0; i < 3; i++) {
        snprintf(p, sizeof(p), "%s/%s", f->dir, files[i]);
        unlink(p);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

/* Runs one request; returns the status and sets *out to the parsed body (or NULL). */
static int
call(struct fx *f, const char *method, const char *path, const char *ctype, const char *body,
     json_t **out)
{
    struct cp_request rq = {.method = method,
                            .path = path,
                            .content_type = ctype,
                            .n_content_types = ctype != NULL,
                            .body = body,
                            .body_len = body != NULL ? strlen(body) : 0};
    struct cp_response rs;
    json_t *query = json_object();
    const char *q = strchr(path, '?');
    char pathbuf[256];
    json_error_t jerr;

    if (q != NULL) {
        /* tests pass at most one simple "?k=v" */
        char k[64];
        char v[128];

        snprintf(pathbuf, sizeof(pathbuf), "%.*s", (int)(q - path), path);
        rq.path = pathbuf;
        if (sscanf(q + 1, "%63[^=]=%127s", k, v) == 2) {
            json_object_set_new(query, k, json_string(v));
        }
    }
    rq.query = query;
    cp_admin_handle(&f->cx, &rq, &rs);
    *out = rs.body != NULL ? json_loads(rs.body, 0, &jerr) : NULL;
    free(rs.body);
    json_decref(query);
    return rs.status;
}

static const char *FORM = "application/x-www-form-urlencoded";
static const char *JSON = "application/json";

static int
count(struct fx *f, const char *path)
{
    json_t *o = NULL;
    int n;

    assert_int_equal(call(f, "GET", path, NULL, NULL, &o), 200);
    n = (int)json_array_size(json_object_get(o, "data"));
    json_decref(o);
    return n;
}

static void
test_service_lifecycle(void **state)
{
    struct fx *f = *state;
    json_t *o = NULL;

    assert_int_equal(call(f, "POST", "/services", FORM, "name=echo&url=tcp://127.0.0.1:9000", &o),
                     201);
    assert_int_equal(json_integer_value(json_object_get(o, "port")), 9000);
    /* seconds out (ms inside) */
    assert_true(json_integer_value(json_object_get(o, "created_at")) < 100000000000LL);
    json_decref(o);
    assert_int_equal(call(f, "PATCH", "/services/echo", FORM, "url=tcp://10.0.0.1:81", &o), 200);
    assert_string_equal(json_string_value(json_object_get(o, "host")), "10.0.0.1");
    json_decref(o);
    assert_int_equal(call(f, "PUT", "/services/echo", JSON, "{\"host\":\"h\"}", &o), 200);
    assert_int_equal(json_integer_value(json_object_get(o, "port")), 80); /* reset */
    json_decref(o);
    assert_int_equal(call(f, "DELETE", "/services/echo", NULL, NULL, &o), 204);
    assert_int_equal(call(f, "DELETE", "/services/echo", NULL, NULL, &o), 204);
    assert_int_equal(call(f, "GET", "/services/echo", NULL, NULL, &o), 404);
    assert_string_equal(json_string_value(json_object_get(o, "message")), "Not found");
    json_decref(o);
}

static void
test_errors_change_nothing(void **state)
{
    struct fx *f = *state;
    json_t *o = NULL;

    assert_int_equal(call(f, "POST", "/services", FORM, "name=a&host=h", &o), 201);
    json_decref(o);
    assert_int_equal(call(f, "POST", "/services", FORM, "name=a&host=h2", &o), 409);
    assert_int_equal(json_integer_value(json_object_get(o, "code")), 5);
    assert_string_equal(json_string_value(json_object_get(o, "message")),
                        "UNIQUE violation detected on '{name=\"a\"}'");
    json_decref(o);
    assert_int_equal(call(f, "POST", "/services", FORM, "name=b&host=h&port=70000", &o), 400);
    assert_int_equal(json_integer_value(json_object_get(o, "code")), 2);
    assert_non_null(json_object_get(json_object_get(o, "fields"), "port"));
    json_decref(o);
    assert_int_equal(call(f, "POST", "/services", JSON, "{bad", &o), 400);
    assert_string_equal(json_string_value(json_object_get(o, "message")), "Cannot parse JSON body");
    json_decref(o);
    assert_int_equal(call(f, "POST", "/services", "text/plain", "x", &o), 415);
    json_decref(o);
    assert_int_equal(call(f, "PATCH", "/services/a", FORM, "port=-5", &o), 400);
    json_decref(o);
    assert_int_equal(count(f, "/services"), 1);
    assert_int_equal(call(f, "GET", "/services/a", NULL, NULL, &o), 200);
    assert_int_equal(json_integer_value(json_object_get(o, "port")), 80);
    json_decref(o);
}

static void
test_routes_and_foreign_keys(void **state)
{
    struct fx *f = *state;
    json_t *o = NULL;

    assert_int_equal(call(f, "POST", "/services", FORM, "name=s&host=h", &o), 201);
    json_decref(o);
    assert_int_equal(call(f, "POST", "/services", FORM, "name=t&host=h", &o), 201);
    json_decref(o);
    assert_int_equal(call(f, "POST", "/services/s/routes", FORM,
                          "name=r&protocols=tcp&destinations[1].port=1", &o),
                     201);
    json_decref(o);
    assert_int_equal(call(f, "POST", "/routes", FORM,
                          "protocols=tcp&destinations[1].port=1&service.id="
                          "00000000-0000-4000-8000-000000000000",
                          &o),
                     400);
    assert_int_equal(json_integer_value(json_object_get(o, "code")), 4);
    json_decref(o);
    assert_int_equal(call(f, "POST", "/routes", FORM, "protocols=tcp", &o), 400);
    assert_non_null(json_object_get(json_object_get(o, "fields"), "@entity"));
    json_decref(o);
    assert_int_equal(call(f, "GET", "/services/t/routes/r", NULL, NULL, &o), 404);
    json_decref(o);
    assert_int_equal(call(f, "GET", "/services/s/routes/r", NULL, NULL, &o), 200);
    json_decref(o);
    assert_int_equal(call(f, "GET", "/routes/r/service", NULL, NULL, &o), 200);
    assert_string_equal(json_string_value(json_object_get(o, "name")), "s");
    json_decref(o);
    assert_int_equal(call(f, "DELETE", "/services/s", NULL, NULL, &o), 400);
    assert_string_equal(json_string_value(json_object_get(o, "message")),
                        "an existing 'routes' entity references this 'services' entity");
    json_decref(o);
    assert_int_equal(count(f, "/services/s/routes"), 1);
    assert_int_equal(count(f, "/services/t/routes"), 0);
    assert_int_equal(call(f, "DELETE", "/services/t/routes/r", NULL, NULL, &o), 404);
    json_decref(o);
    assert_int_equal(call(f, "DELETE", "/routes/r", NULL, NULL, &o), 204);
    assert_int_equal(call(f, "DELETE", "/services/s", NULL, NULL, &o), 204);
}

static void
test_paging_and_methods(void **state)
{
    struct fx *f = *state;
    json_t *o = NULL;
    char body[64];

    for (int i = 0; i < 3; i++) {
        snprintf(body, sizeof(body), "name=s%d&host=h", i);
        assert_int_equal(call(f, "POST", "/services", FORM, body, &o), 201);
        json_decref(o);
    }
    assert_int_equal(call(f, "GET", "/services?size=2", NULL, NULL, &o), 200);
    assert_int_equal(json_array_size(json_object_get(o, "data")), 2);
    assert_non_null(strstr(json_string_value(json_object_get(o, "next")), "/services?offset="));
    json_decref(o);
    assert_int_equal(call(f, "GET", "/services?size=1001", NULL, NULL, &o), 400);
    assert_int_equal(json_integer_value(json_object_get(o, "code")), 9);
    json_decref(o);
    assert_int_equal(call(f, "POST", "/status", NULL, NULL, &o), 405);
    json_decref(o);
    assert_int_equal(call(f, "GET", "/nope", NULL, NULL, &o), 404);
    json_decref(o);
    assert_int_equal(call(f, "DELETE", "/routes/x/service", NULL, NULL, &o), 405);
    json_decref(o);
    assert_int_equal(call(f, "GET", "/clustering/data-planes", NULL, NULL, &o), 200);
    assert_true(json_is_array(json_object_get(o, "data")));
    json_decref(o);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_service_lifecycle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors_change_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_routes_and_foreign_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_paging_and_methods, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
