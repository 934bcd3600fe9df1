/* Unit tests for st_addr: Kong's `*_listen` syntax (entries, flags, IPv6, off),
 * Kong's error text with a specific reason, and host:port parsing/formatting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "st_addr.h"
#include "st_err.h"

static const char KONG_STREAM_FORM[] =
    "stream_listen must be of form: [off] | <ip>:<port> [udp] [ssl] [proxy_protocol] [bind] "
    "[reuseport] [backlog=%d+] [ipv6only=on] [ipv6only=off] [so_keepalive=on] "
    "[so_keepalive=off] [so_keepalive=%w*:%w*:%d*], [... next entry ...]";

static const char KONG_ADMIN_FORM[] =
    "admin_listen must be of form: [off] | <ip>:<port> [ssl] [http2] [proxy_protocol] "
    "[deferred] [bind] [reuseport] [backlog=%d+] [ipv6only=on] [ipv6only=off] "
    "[so_keepalive=on] [so_keepalive=off] [so_keepalive=%w*:%w*:%d*], [... next entry ...]";

static int
port_of(const struct st_listen *l)
{
    if (l->addr.ss_family == AF_INET) {
        return ntohs(((const struct sockaddr_in *)&l->addr)->sin_port);
    }
    return ntohs(((const struct sockaddr_in6 *)&l->addr)->sin6_port);
}

static void
test_listen_single(void **state)
{
    struct st_listen_set set;
    struct st_err err;

    (void)state;
    assert_int_equal(
        st_listen_parse("stream_listen", "127.0.0.1:5555", ST_LISTEN_STREAM, &set, &err), 0);
    assert_int_equal(set.n, 1);
    assert_int_equal(set.v[0].addr.ss_family, AF_INET);
    assert_int_equal(set.v[0].addrlen, sizeof(struct sockaddr_in));
    assert_int_equal(port_of(&set.v[0]), 5555);
    assert_int_equal(set.v[0].flags, 0);
    assert_int_equal(set.v[0].backlog, 0);
    assert_string_equal(set.v[0].text, "127.0.0.1:5555");
    st_listen_set_fini(&set);
    assert_null(set.v);
    assert_int_equal(set.n, 0);
}

static void
test_listen_several_with_flags(void **state)
{
    struct st_listen_set set;
    struct st_err err;

    (void)state;
    assert_int_equal(st_listen_parse("stream_listen",
                                     " 0.0.0.0:5555 reuseport backlog=16384 ,0.0.0.0:5556 ssl "
                                     "proxy_protocol bind, 10.0.0.1:20 udp",
                                     ST_LISTEN_STREAM, &set, &err),
                     0);
    assert_int_equal(set.n, 3);
    assert_string_equal(set.v[0].text, "0.0.0.0:5555");
    assert_int_equal(set.v[0].flags, ST_LISTEN_F_REUSEPORT);
    assert_int_equal(set.v[0].backlog, 16384);
    assert_string_equal(set.v[1].text, "0.0.0.0:5556");
    assert_int_equal(set.v[1].flags, ST_LISTEN_F_SSL | ST_LISTEN_F_PROXY | ST_LISTEN_F_BIND);
    assert_int_equal(set.v[1].backlog, 0);
    assert_string_equal(set.v[2].text, "10.0.0.1:20");
    assert_int_equal(set.v[2].flags, ST_LISTEN_F_UDP);
    st_listen_set_fini(&set);
}

static void
test_listen_ipv6_and_localhost(void **state)
{
    struct st_listen_set set;
    struct st_err err;
    const struct sockaddr_in6 *sin6;
    struct in6_addr any = IN6ADDR_ANY_INIT;

    (void)state;
    assert_int_equal(st_listen_parse("stream_listen",
                                     "[::1]:1234 backlog=16384, [::]:80, "
                                     "localhost:9000",
                                     ST_LISTEN_STREAM, &set, &err),
                     0);
    assert_int_equal(set.n, 3);
    assert_int_equal(set.v[0].addr.ss_family, AF_INET6);
    assert_int_equal(set.v[0].addrlen, sizeof(struct sockaddr_in6));
    sin6 = (const struct sockaddr_in6 *)&set.v[0].addr;
    assert_true(IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr));
    assert_int_equal(port_of(&set.v[0]), 1234);
    assert_int_equal(set.v[0].backlog, 16384);
    assert_string_equal(set.v[0].text, "[::1]:1234");
    sin6 = (const struct sockaddr_in6 *)&set.v[1].addr;
    assert_memory_equal(&sin6->sin6_addr, &any, sizeof(any));
    assert_string_equal(set.v[1].text, "[::]:80");
    assert_int_equal(set.v[2].addr.ss_family, AF_INET);
    assert_string_equal(set.v[2].text, "127.0.0.1:9000");
    st_listen_set_fini(&set);
}

static void
test_listen_off(void **state)
{
    struct st_listen_set set;
    struct st_err err;

    (void)state;
    assert_int_equal(st_listen_parse("stream_listen", "off", ST_LISTEN_STREAM, &set, &err), 0);
    assert_int_equal(set.n, 0);
    assert_null(set.v);
    assert_int_equal(st_listen_parse("status_listen", "  off ", ST_LISTEN_HTTP, &set, &err), 0);
    assert_int_equal(set.n, 0);
}

static void
test_listen_http_flags(void **state)
{
    struct st_listen_set set;
    struct st_err err;

    (void)state;
    assert_int_equal(st_listen_parse("admin_listen", "127.0.0.1:8444 http2 ssl deferred",
                                     ST_LISTEN_HTTP, &set, &err),
                     0);
    assert_int_equal(set.n, 1);
    assert_int_equal(set.v[0].flags, ST_LISTEN_F_HTTP2 | ST_LISTEN_F_SSL | ST_LISTEN_F_DEFERRED);
    st_listen_set_fini(&set);
}

/* A bad value fails with -ST_ECONF, err->field = key, and err->msg = the reason,
 * followed by "; " and Kong's form text when that fits in err->msg. */
static void
expect_bad(const char *key, enum st_listen_kind kind, const char *value, const char *reason)
{
    struct st_listen_set set = {.n = 99, .v = NULL};
    struct st_err err;
    char want[512];

    memset(&err, 0, sizeof(err));
    assert_int_equal(st_listen_parse(key, value, kind, &set, &err), -ST_ECONF);
    assert_int_equal(err.code, -ST_ECONF);
    assert_string_equal(err.field, key);
    assert_int_equal(set.n, 0);
    assert_null(set.v);
    snprintf(want, sizeof(want), "%s; %s must be of form: ", reason, key);
    if (strcmp(err.msg, reason) != 0 && strncmp(err.msg, want, strlen(want)) != 0) {
        fail_msg("value '%s': got '%s', want '%s' [+ Kong's text]", value, err.msg, reason);
    }
}

static void
test_listen_bad(void **state)
{
    (void)state;
    expect_bad("stream_listen", ST_LISTEN_STREAM, "127.0.0.1:5555 sssl", "unknown flag 'sssl'");
    expect_bad("stream_listen", ST_LISTEN_STREAM, "127.0.0.1:0",
               "bad port in \'127.0.0.1:0\' (1-65535)");
    expect_bad("stream_listen", ST_LISTEN_STREAM, "127.0.0.1:65536",
               "bad port in \'127.0.0.1:65536\' (1-65535)");
    expect_bad("stream_listen", ST_LISTEN_STREAM, "127.0.0.1:80x",
               "bad port in \'127.0.0.1:80x\' (1-65535)");
    expect_bad("stream_listen", ST_LISTEN_STREAM,
               "127.0.0.1:", "bad port in \'127.0.0.1:\' (1-65535)");
    expect_bad("stream_listen", ST_LISTEN_STREAM, "127.0.0.1", "'127.0.0.1' is not <ip>:<port>");
    expect_bad("stream_listen", ST_LISTEN_STREAM, "::1:80", "'::1:80' is not <ip>:<port>");
    expect_bad("stream_listen", ST_LISTEN_STREAM, "[::1]80", "'[::1]80' is not <ip>:<port>");
    expect_bad("stream_listen", ST_LISTEN_STREAM, "[::1:80", "'[::1:80' is not <ip>:<port>");
    expect_bad("stream_listen", ST_LISTEN_STREAM, "[127.0.0.1]:80",
               "'127.0.0.1' is not an IP address (use an IPv4 address, [IPv6] or localhost)");
    expect_bad("stream_listen", ST_LISTEN_STREAM, "example.com:80",
               "'example.com' is not an IP address (use an IPv4 address, [IPv6] or localhost)");
    expect_bad("stream_listen", ST_LISTEN_STREAM, "300.0.0.1:80",
               "'300.0.0.1' is not an IP address (use an IPv4 address, [IPv6] or localhost)");
    expect_bad("stream_listen", ST_LISTEN_STREAM, "", "empty value");
    expect_bad("stream_listen", ST_LISTEN_STREAM, "1.2.3.4:5,", "empty entry");
    expect_bad("stream_listen", ST_LISTEN_STREAM, "1.2.3.4:5, ,1.2.3.4:6", "empty entry");
    expect_bad("stream_listen", ST_LISTEN_STREAM, "off, 1.2.3.4:5",
               "'off' must be the whole value");
    expect_bad("stream_listen", ST_LISTEN_STREAM,
               "1.2.3.4:5 backlog=", "bad backlog \'backlog=\' (a positive number)");
    expect_bad("stream_listen", ST_LISTEN_STREAM, "1.2.3.4:5 backlog=-1",
               "bad backlog \'backlog=-1\' (a positive number)");
    expect_bad("stream_listen", ST_LISTEN_STREAM, "1.2.3.4:5 backlog=0",
               "bad backlog \'backlog=0\' (a positive number)");
    /* flags of the other kind */
    expect_bad("stream_listen", ST_LISTEN_STREAM, "1.2.3.4:5 http2", "unknown flag 'http2'");
    expect_bad("stream_listen", ST_LISTEN_STREAM, "1.2.3.4:5 deferred", "unknown flag 'deferred'");
    expect_bad("admin_listen", ST_LISTEN_HTTP, "1.2.3.4:5 udp", "unknown flag 'udp'");
    /* flags are case-sensitive, as in Kong */
    expect_bad("stream_listen", ST_LISTEN_STREAM, "1.2.3.4:5 SSL", "unknown flag 'SSL'");
}

/* The whole message when it fits err->msg, else the reason alone: never a cut text. */
static void
expect_full(const char *key, enum st_listen_kind kind, const char *value, const char *reason,
            const char *form)
{
    struct st_listen_set set;
    struct st_err err;
    char want[512];

    assert_int_equal(st_listen_parse(key, value, kind, &set, &err), -ST_ECONF);
    snprintf(want, sizeof(want), "%s; %s", reason, form);
    if (strlen(want) < sizeof(err.msg)) {
        assert_string_equal(err.msg, want);
    } else {
        assert_string_equal(err.msg, reason);
    }
}

static void
test_listen_kong_text(void **state)
{
    struct st_err err;

    (void)state;
    /* short enough to carry Kong's text within st_err.msg */
    assert_true(strlen("unknown flag 'sssl'; ") + strlen(KONG_STREAM_FORM) < sizeof(err.msg));
    expect_full("stream_listen", ST_LISTEN_STREAM, "0.0.0.0:5555 sssl", "unknown flag 'sssl'",
                KONG_STREAM_FORM);
    expect_full("admin_listen", ST_LISTEN_HTTP, "nope", "'nope' is not <ip>:<port>",
                KONG_ADMIN_FORM);
    expect_full("admin_listen", ST_LISTEN_HTTP, "1.1.1.1:1 x", "unknown flag 'x'", KONG_ADMIN_FORM);
}

static void
test_listen_unsupported_options(void **state)
{
    struct st_listen_set set;
    struct st_err err;

    (void)state;
    assert_int_equal(
        st_listen_parse("stream_listen", "1.2.3.4:5 so_keepalive=on", ST_LISTEN_STREAM, &set, &err),
        -ST_ECONF);
    assert_string_equal(err.msg, "the 'so_keepalive=on' flag is not supported yet");
    assert_int_equal(
        st_listen_parse("stream_listen", "[::]:5 ipv6only=on", ST_LISTEN_STREAM, &set, &err),
        -ST_ECONF);
    assert_string_equal(err.msg, "the 'ipv6only=on' flag is not supported yet");
}

static void
test_addr_parse_and_format(void **state)
{
    struct sockaddr_storage ss;
    socklen_t len = 0;
    char buf[64];

    (void)state;
    assert_int_equal(st_addr_parse("10.1.2.3:8005", &ss, &len), 0);
    assert_int_equal(ss.ss_family, AF_INET);
    assert_int_equal(len, sizeof(struct sockaddr_in));
    st_addr_format((struct sockaddr *)&ss, buf, sizeof(buf));
    assert_string_equal(buf, "10.1.2.3:8005");

    assert_int_equal(st_addr_parse("[2001:db8::1]:443", &ss, &len), 0);
    assert_int_equal(ss.ss_family, AF_INET6);
    assert_int_equal(len, sizeof(struct sockaddr_in6));
    st_addr_format((struct sockaddr *)&ss, buf, sizeof(buf));
    assert_string_equal(buf, "[2001:db8::1]:443");

    assert_int_equal(st_addr_parse("localhost:65535", &ss, &len), 0);
    st_addr_format((struct sockaddr *)&ss, buf, sizeof(buf));
    assert_string_equal(buf, "127.0.0.1:65535");

    assert_int_equal(st_addr_parse("10.1.2.3:0", &ss, &len), -ST_EPARSE);
    assert_int_equal(st_addr_parse("10.1.2.3:65536", &ss, &len), -ST_EPARSE);
    assert_int_equal(st_addr_parse("10.1.2.3", &ss, &len), -ST_EPARSE);
    assert_int_equal(st_addr_parse("2001:db8::1:443", &ss, &len), -ST_EPARSE);
    assert_int_equal(st_addr_parse("example.com:80", &ss, &len), -ST_EPARSE);
    assert_int_equal(st_addr_parse(":80", &ss, &len), -ST_EPARSE);
    assert_int_equal(st_addr_parse("", &ss, &len), -ST_EPARSE);
    assert_int_equal(st_addr_parse(NULL, &ss, &len), -ST_EPARSE);

    /* a small buffer is cut, not overrun */
    assert_int_equal(st_addr_parse("10.1.2.3:8005", &ss, &len), 0);
    st_addr_format((struct sockaddr *)&ss, buf, 5);
    assert_string_equal(buf, "10.1");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_listen_single),
        cmocka_unit_test(test_listen_several_with_flags),
        cmocka_unit_test(test_listen_ipv6_and_localhost),
        cmocka_unit_test(test_listen_off),
        cmocka_unit_test(test_listen_http_flags),
        cmocka_unit_test(test_listen_bad),
        cmocka_unit_test(test_listen_kong_text),
        cmocka_unit_test(test_listen_unsupported_options),
        cmocka_unit_test(test_addr_parse_and_format),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
