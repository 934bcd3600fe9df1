/* Unit tests for issue 18's plugins entity and ip-restriction (common/): the plugin's own
 * schema through st_schema with Kong's messages (a plugin not enabled, ip_or_cidr,
 * at_least_one_of, unknown config fields, protocols, the plugin's default protocols, a
 * consumer refused), the `plugins` key's check and the enabled set, and st_cidr_set:
 * sorted, merged ranges matched by binary search (v4, v6, v4-mapped, overlaps, edges,
 * thousands of blocks checked against a linear scan). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_cidr.h"
#include "st_err.h"
#include "st_plugin.h"
#include "st_schema.h"

/* The schema's message for the plugin body `text`, or "" when it passes (then *out, if
 * not NULL, is the normalised entity). */
static char *
validate(const char *text, json_t **out)
{
    static char msg[1024];
    json_t *o = json_loads(text, 0, NULL);
    json_t *fields = NULL;

    assert_non_null(o);
    json_object_set_new(o, "id", json_string("d1000000-0000-4000-8000-000000000001"));
    json_object_set_new(o, "created_at", json_integer(1000));
    json_object_set_new(o, "updated_at", json_integer(1000));
    msg[0] = '\0';
    if (st_schema_validate(ST_ENT_PLUGIN, o, &fields) != 0) {
        st_schema_message(fields, msg, sizeof(msg));
    }
    json_decref(fields);
    if (out != NULL) {
        *out = o;
    } else {
        json_decref(o);
    }
    return msg;
}

static void
test_schema_messages(void **state)
{
    json_t *o = NULL;
    char *dump;

    (void)state;
    st_plugin_conf_apply(NULL);
    assert_string_equal(validate("{\"name\": \"tcp-log\"}", NULL),
                        "schema violation (name: plugin 'tcp-log' not enabled; add it to the "
                        "'plugins' configuration property)");
    assert_string_equal(validate("{\"name\": \"ip-restriction\"}", NULL),
                        "schema violation (at least one of these fields must be non-empty: "
                        "'config.allow', 'config.deny')");
    assert_string_equal(validate("{\"name\": \"ip-restriction\", \"config\": {\"allow\": [], "
                                 "\"deny\": []}}",
                                 NULL),
                        "schema violation (at least one of these fields must be non-empty: "
                        "'config.allow', 'config.deny')");
    assert_string_equal(validate("{\"name\": \"ip-restriction\", \"config\": {\"deny\": "
                                 "[\"1.2.3.4\", \"1.2.3.4/33\", 5]}}",
                                 NULL),
                        "2 schema violations (config.deny.2: invalid ip or cidr range: "
                        "'1.2.3.4/33'; config.deny.3: expected a string)");
    assert_string_equal(validate("{\"name\": \"ip-restriction\", \"config\": {\"deny\": "
                                 "\"1.2.3.4\"}}",
                                 NULL),
                        "schema violation (config.deny: expected an array)");
    assert_string_equal(validate("{\"name\": \"ip-restriction\", \"config\": {\"allow\": "
                                 "[\"::1\"], \"x\": 1}}",
                                 NULL),
                        "schema violation (config.x: unknown field)");
    assert_string_equal(validate("{\"name\": \"ip-restriction\", \"config\": [1]}", NULL),
                        "schema violation (config: expected a record)");
    assert_string_equal(validate("{\"name\": \"ip-restriction\", \"protocols\": [\"tcp\", "
                                 "\"smtp\"], \"config\": {\"allow\": [\"::1\"]}}",
                                 NULL),
                        "schema violation (protocols.2: expected one of: grpc, grpcs, http, "
                        "https, tcp, tls, tls_passthrough, udp)");
    assert_true(strstr(validate("{\"name\": \"ip-restriction\", \"consumer\": {\"id\": \"x\"}, "
                                "\"config\": {\"allow\": [\"::1\"]}}",
                                NULL),
                       "consumer: a plugin cannot be scoped to a consumer") != NULL);
    /* defaults: the plugin's protocols, enabled, the config record filled, in Kong's order */
    assert_string_equal(validate("{\"name\": \"ip-restriction\", \"config\": {\"allow\": "
                                 "[\"10.0.0.0/8\"], \"status\": 401.0}}",
                                 &o),
                        "");
    dump = json_dumps(o, JSON_COMPACT);
    assert_string_equal(dump, "{\"id\":\"d1000000-0000-4000-8000-000000000001\","
                              "\"name\":\"ip-restriction\",\"instance_name\":null,"
                              "\"created_at\":1000,\"updated_at\":1000,\"route\":null,"
                              "\"service\":null,\"consumer\":null,\"config\":{\"allow\":"
                              "[\"10.0.0.0/8\"],\"deny\":null,\"status\":401,\"message\":null},"
                              "\"protocols\":[\"http\",\"https\",\"tcp\",\"tls\",\"grpc\","
                              "\"grpcs\"],\"enabled\":true,\"tags\":null}");
    free(dump);
    json_decref(o);
}

static void
test_conf_key(void **state)
{
    const char *names[8];
    char why[256];

    (void)state;
    assert_int_equal(st_plugin_conf_check("bundled", why, sizeof(why)), 0);
    assert_int_equal(st_plugin_conf_check("off", why, sizeof(why)), 0);
    assert_int_equal(st_plugin_conf_check(" ip-restriction , bundled", why, sizeof(why)), 0);
    assert_int_equal(st_plugin_conf_check("ip-restriction,tcp-log", why, sizeof(why)), -1);
    assert_non_null(strstr(why, "'tcp-log' is not a plugin Strait has"));
    assert_int_equal(st_plugin_conf_check("off,bundled", why, sizeof(why)), -1);
    assert_string_equal(why, "'off' cannot be listed with other plugins");

    st_plugin_conf_apply("off");
    assert_int_equal(st_plugin_enabled_list(names), 0);
    assert_null(st_plugin_enabled("ip-restriction"));
    assert_non_null(st_plugin_builtin("ip-restriction"));
    assert_string_equal(validate("{\"name\": \"ip-restriction\", \"config\": {\"allow\": "
                                 "[\"::1\"]}}",
                                 NULL),
                        "schema violation (name: plugin 'ip-restriction' not enabled; add it "
                        "to the 'plugins' configuration property)");
    st_plugin_conf_apply("ip-restriction");
    assert_int_equal(st_plugin_enabled_list(names), 1);
    assert_string_equal(names[0], "ip-restriction");
    assert_int_equal(st_plugin_enabled("ip-restriction")->priority, 990);
    st_plugin_conf_apply(NULL);
    assert_int_equal(st_plugin_enabled_list(names), 1);
}

/* ------------------------------------------------------------------------ */
/* st_cidr_set                                                                */

static struct sockaddr_storage
sa_of(const char *ip)
{
    struct sockaddr_storage ss;

    memset(&ss, 0, sizeof(ss));
    if (inet_pton(AF_INET, ip, &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
        ss.ss_family = AF_INET;
    } else if (inet_pton(AF_INET6, ip, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1) {
        ss.ss_family = AF_INET6;
    } else {
        fail_msg("test address '%s' does not parse", ip);
    }
    return ss;
}

static bool
set_has(const struct st_cidr_set *s, const char *ip)
{
    struct sockaddr_storage ss = sa_of(ip);

    return st_cidr_set_match(s, (struct sockaddr *)&ss);
}

static void
build(struct st_cidr_set *s, const char *const *blocks, size_t n)
{
    struct st_cidr c[16];

    assert_true(n <= 16);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(st_cidr_parse(blocks[i], &c[i]), 0);
    }
    assert_int_equal(st_cidr_set_build(s, c, n), 0);
}

static void
test_cidr_set(void **state)
{
    static const char *const blocks[] = {
        "10.0.0.0/8",    "10.1.0.0/16", "192.168.1.7", "192.168.1.8",
        "2001:db8::/32", "::1",         "0.0.0.0/32",  "255.255.255.255",
    };
    struct st_cidr_set s;

    (void)state;
    build(&s, blocks, sizeof(blocks) / sizeof(blocks[0]));
    /* 10.1/16 inside 10/8 merged; .7 and .8 adjacent merged */
    assert_int_equal(s.n, 6);
    assert_true(set_has(&s, "10.0.0.0"));
    assert_true(set_has(&s, "10.255.255.255"));
    assert_false(set_has(&s, "11.0.0.0"));
    assert_false(set_has(&s, "9.255.255.255"));
    assert_true(set_has(&s, "192.168.1.7"));
    assert_true(set_has(&s, "192.168.1.8"));
    assert_false(set_has(&s, "192.168.1.9"));
    assert_false(set_has(&s, "192.168.1.6"));
    assert_true(set_has(&s, "0.0.0.0"));
    assert_true(set_has(&s, "255.255.255.255"));
    assert_true(set_has(&s, "::ffff:10.2.3.4")); /* v4-mapped matches v4 blocks */
    assert_true(set_has(&s, "2001:db8:ffff::1"));
    assert_false(set_has(&s, "2001:db9::"));
    assert_true(set_has(&s, "::1"));
    assert_false(set_has(&s, "::2"));
    assert_false(set_has(&s, "::"));
    st_cidr_set_free(&s);

    /* the whole space, and an empty set */
    build(&s, (const char *const[]){"::/0", "1.2.3.4"}, 2);
    assert_int_equal(s.n, 1);
    assert_true(set_has(&s, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"));
    assert_true(set_has(&s, "8.8.8.8"));
    st_cidr_set_free(&s);
    build(&s, NULL, 0);
    assert_false(set_has(&s, "8.8.8.8"));
    st_cidr_set_free(&s);
    build(&s, (const char *const[]){"0.0.0.0/0"}, 1);
    assert_true(set_has(&s, "8.8.8.8"));
    assert_false(set_has(&s, "2001:db8::1"));
    st_cidr_set_free(&s);
}

/* Thousands of random blocks: the binary search agrees with a linear scan. */
static void
test_cidr_set_many(void **state)
{
    enum { N = 5000, PROBES = 20000 };
    struct st_cidr *c = calloc(N, sizeof(*c));
    struct st_cidr_set s;
    unsigned seed = 12345;

    (void)state;
    for (int i = 0; i < N; i++) {
        char text[64];

        seed = seed * 1103515245u + 12345u;
        snprintf(text, sizeof(text), "%u.%u.%u.0/%u", 10 + (seed >> 28), (seed >> 20) & 0xff,
                 (seed >> 12) & 0xff, 16 + (seed >> 4) % 17);
        assert_int_equal(st_cidr_parse(text, &c[i]), 0);
    }
    assert_int_equal(st_cidr_set_build(&s, c, N), 0);
    for (int i = 0; i < PROBES; i++) {
        struct sockaddr_in sin = {.sin_family = AF_INET};
        bool linear = false;

        seed = seed * 1103515245u + 12345u;
        sin.sin_addr.s_addr = htonl((10u + (seed >> 28)) << 24 | (seed & 0xffffffu));
        for (int j = 0; j < N && !linear; j++) {
            linear = st_cidr_match(&c[j], (struct sockaddr *)&sin);
        }
        assert_int_equal(st_cidr_set_match(&s, (struct sockaddr *)&sin), linear);
    }
    st_cidr_set_free(&s);
    free(c);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schema_messages),
        cmocka_unit_test(test_conf_key),
        cmocka_unit_test(test_cidr_set),
        cmocka_unit_test(test_cidr_set_many),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
