/* Unit tests for st_cidr: parsing (v4, v6, host bits, /0, /32, /128, bad strings)
 * and matching, including v4-mapped IPv6 addresses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "st_cidr.h"
#include "st_err.h"

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

static void
test_parse_good(void **state)
{
    static const struct {
        const char *in;
        int family;
        const char *net; /* expected address after clearing host bits */
        unsigned bits;
        bool is_host;
    } cases[] = {
        {"10.0.0.0/8", AF_INET, "10.0.0.0", 8, false},
        {"10.1.2.3/8", AF_INET, "10.0.0.0", 8, false},
        {"192.168.1.77/30", AF_INET, "192.168.1.76", 30, false},
        {"192.168.1.1", AF_INET, "192.168.1.1", 32, true},
        {"192.168.1.1/32", AF_INET, "192.168.1.1", 32, false},
        {"1.2.3.4/0", AF_INET, "0.0.0.0", 0, false},
        {"2001:db8::1/64", AF_INET6, "2001:db8::", 64, false},
        {"2001:db8:ffff::/33", AF_INET6, "2001:db8:8000::", 33, false},
        {"::1", AF_INET6, "::1", 128, true},
        {"::/0", AF_INET6, "::", 0, false},
        {"fe80::1/128", AF_INET6, "fe80::1", 128, false},
        {"::ffff:10.9.8.7/104", AF_INET6, "::ffff:10.0.0.0", 104, false},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct st_cidr c;
        uint8_t want[16] = {0};
        size_t alen = cases[i].family == AF_INET ? 4 : 16;

        if (st_cidr_parse(cases[i].in, &c) != 0) {
            fail_msg("'%s' should parse", cases[i].in);
        }
        assert_int_equal(inet_pton(cases[i].family, cases[i].net, want), 1);
        assert_int_equal(c.family, cases[i].family);
        assert_int_equal(c.bits, cases[i].bits);
        assert_int_equal(c.is_host, cases[i].is_host);
        if (memcmp(c.addr, want, alen) != 0) {
            fail_msg("'%s': network address not as expected %s", cases[i].in, cases[i].net);
        }
    }
}

static void
test_parse_bad(void **state)
{
    static const char *const bad[] = {
        "",
        "/8",
        "10.0.0.0/",
        "10.0.0.0/33",
        "10.0.0.0/-1",
        "10.0.0.0/+8",
        "10.0.0.0/8/8",
        "10.0.0.0/1000",
        "10.0.0.0/0008",
        "10.0.0.0/8x",
        "10.0.0.0 /8",
        " 10.0.0.0",
        "10.0.0",
        "10.0.0.0.0",
        "300.1.1.1",
        "010.1.1.1",
        "abc",
        "localhost",
        "::/129",
        "2001:db8:::1",
        "fe80::1%eth0",
        "1111:2222:3333:4444:5555:6666:7777:8888:9999",
    };
    struct st_cidr c;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (st_cidr_parse(bad[i], &c) != -ST_EPARSE) {
            fail_msg("'%s' should be refused", bad[i]);
        }
    }
    assert_int_equal(st_cidr_parse(NULL, &c), -ST_EPARSE);
}

static void
test_match_table(void **state)
{
    static const struct {
        const char *cidr;
        const char *ip;
        bool match;
    } cases[] = {
        {"10.0.0.0/8", "10.1.2.3", true},
        {"10.0.0.0/8", "10.255.255.255", true},
        {"10.0.0.0/8", "11.0.0.1", false},
        {"10.0.0.0/8", "9.255.255.255", false},
        {"192.168.1.76/30", "192.168.1.79", true},
        {"192.168.1.76/30", "192.168.1.80", false},
        {"192.168.1.1", "192.168.1.1", true},
        {"192.168.1.1", "192.168.1.2", false},
        {"192.168.1.1/32", "192.168.1.1", true},
        {"0.0.0.0/0", "203.0.113.9", true},
        {"0.0.0.0/0", "2001:db8::1", false},
        /* v4-mapped IPv6 peers (dual-stack sockets) match IPv4 blocks */
        {"10.0.0.0/8", "::ffff:10.1.1.1", true},
        {"10.0.0.0/8", "::ffff:11.1.1.1", false},
        {"0.0.0.0/0", "::ffff:1.2.3.4", true},
        {"127.0.0.1", "::ffff:127.0.0.1", true},
        /* ... but a plain IPv6 address whose last 32 bits look alike does not */
        {"10.0.0.0/8", "::10.1.1.1", false},
        {"10.0.0.0/8", "2001:db8::a01:101", false},
        /* IPv4 peers match IPv6 blocks that cover their mapped form */
        {"::ffff:10.0.0.0/104", "10.20.30.40", true},
        {"::ffff:10.0.0.0/104", "11.20.30.40", false},
        {"2001:db8::/32", "10.1.1.1", false},
        {"2001:db8::/32", "2001:db8:1::1", true},
        {"2001:db8::/32", "2001:db9::1", false},
        {"2001:db8:8000::/33", "2001:db8:ffff::1", true},
        {"2001:db8:8000::/33", "2001:db8:7fff::1", false},
        {"::1", "::1", true},
        {"::1", "::2", false},
        {"::/0", "2001:db8::1", true},
        {"fe80::/10", "febf::1", true},
        {"fe80::/10", "fec0::1", false},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct st_cidr c;
        struct sockaddr_storage ss = sa_of(cases[i].ip);

        assert_int_equal(st_cidr_parse(cases[i].cidr, &c), 0);
        if (st_cidr_match(&c, (struct sockaddr *)&ss) != cases[i].match) {
            fail_msg("%s in %s: expected %s", cases[i].ip, cases[i].cidr,
                     cases[i].match ? "match" : "no match");
        }
    }
}

static void
test_match_other_family(void **state)
{
    struct st_cidr c;
    struct sockaddr sa;

    (void)state;
    memset(&sa, 0, sizeof(sa));
    sa.sa_family = AF_UNIX;
    assert_int_equal(st_cidr_parse("0.0.0.0/0", &c), 0);
    assert_false(st_cidr_match(&c, &sa));
    assert_int_equal(st_cidr_parse("::/0", &c), 0);
    assert_false(st_cidr_match(&c, &sa));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_good),
        cmocka_unit_test(test_parse_bad),
        cmocka_unit_test(test_match_table),
        cmocka_unit_test(test_match_other_family),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
