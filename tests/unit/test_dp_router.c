/* dp_router: Kong's traditional_compatible stream priority (reference 3.3), the
 * deterministic ties Strait adds (created_at, then id), IP vs CIDR vs port matching,
 * IPv6, and misses. Issue 2, point 5. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "dp_router.h"
#include "st_cidr.h"
#include "st_entity.h"

static struct st_service svc_on = {
    .id = "00000000-0000-4000-8000-0000000000aa", .enabled = true, .protocol = ST_PROTO_TCP};
static struct st_service svc_off = {
    .id = "00000000-0000-4000-8000-0000000000bb", .enabled = false, .protocol = ST_PROTO_TCP};

/* Endpoint from "ip" (may be NULL) and port (0: none). */
static struct st_endpoint
ep(const char *ip, uint16_t port)
{
    struct st_endpoint e;

    memset(&e, 0, sizeof(e));
    if (ip != NULL) {
        assert_int_equal(st_cidr_parse(ip, &e.ip), 0);
        e.has_ip = true;
    }
    if (port != 0) {
        e.has_port = true;
        e.port = port;
    }
    return e;
}

static struct st_route
route(const char *id, int64_t created, struct st_endpoint *src, size_t nsrc,
      struct st_endpoint *dst, size_t ndst)
{
    struct st_route r;

    memset(&r, 0, sizeof(r));
    r.id = id;
    r.created_at_ms = created;
    r.protocols = ST_PROTO_TCP;
    r.sources = src;
    r.n_sources = nsrc;
    r.destinations = dst;
    r.n_destinations = ndst;
    r.service_id = svc_on.id;
    r.service = &svc_on;
    return r;
}

static struct sockaddr_storage
sa(const char *ip, uint16_t port)
{
    struct sockaddr_storage ss;

    memset(&ss, 0, sizeof(ss));
    if (strchr(ip, ':') != NULL) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(port);
        assert_int_equal(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;

        s4->sin_family = AF_INET;
        s4->sin_port = htons(port);
        assert_int_equal(inet_pton(AF_INET, ip, &s4->sin_addr), 1);
    }
    return ss;
}

/* A connection on an ssl listener (tls true) with SNI sni (NULL: none). */
static ssize_t
match_tls(const struct dp_router *r, const char *cip, uint16_t cport, const char *dip,
          uint16_t dport, bool tls, const char *sni)
{
    struct sockaddr_storage c = sa(cip, cport), d = sa(dip, dport);
    struct dp_router_key k = {
        .client = (struct sockaddr *)&c,
        .local = (struct sockaddr *)&d,
        .sni = sni,
        .tls = tls,
    };

    return dp_router_match(r, &k);
}

static ssize_t
match(const struct dp_router *r, const char *cip, uint16_t cport, const char *dip, uint16_t dport)
{
    return match_tls(r, cip, cport, dip, dport, false, NULL);
}

static void
test_priority_bits(void **state)
{
    struct st_endpoint d_port = ep(NULL, 80);
    struct st_endpoint d_ip = ep("10.0.0.1", 0);
    struct st_endpoint d_cidr = ep("10.0.0.0/8", 0);
    struct st_endpoint d_ipport = ep("10.0.0.1", 80);
    struct st_endpoint d_mix[2] = {ep("10.0.0.0/8", 0), ep("10.0.0.1", 0)};
    struct st_endpoint s_ip = ep("192.168.1.1", 0);
    struct st_endpoint s_h32 = ep("192.168.1.1/32", 0);
    struct st_route r;

    (void)state;
    r = route("a", 0, NULL, 0, &d_port, 1);
    assert_int_equal(dp_router_priority(&r), DP_ROUTER_BIT_PORT);
    r = route("a", 0, NULL, 0, &d_ip, 1);
    assert_int_equal(dp_router_priority(&r), DP_ROUTER_BIT_IP);
    r = route("a", 0, NULL, 0, &d_cidr, 1);
    assert_int_equal(dp_router_priority(&r), DP_ROUTER_BIT_CIDR);
    r = route("a", 0, NULL, 0, &d_ipport, 1);
    assert_int_equal(dp_router_priority(&r), DP_ROUTER_BIT_IP | DP_ROUTER_BIT_PORT);
    r = route("a", 0, NULL, 0, d_mix, 2); /* OR-ed over entries */
    assert_int_equal(dp_router_priority(&r), DP_ROUTER_BIT_IP | DP_ROUTER_BIT_CIDR);
    r = route("a", 0, &s_ip, 1, NULL, 0);
    assert_int_equal(dp_router_priority(&r), DP_ROUTER_BIT_IP << 4);
    /* "/32" is written as a CIDR, and Kong weighs it as one. */
    r = route("a", 0, &s_h32, 1, NULL, 0);
    assert_int_equal(dp_router_priority(&r), DP_ROUTER_BIT_CIDR << 4);
    r = route("a", 0, &s_ip, 1, &d_port, 1);
    assert_int_equal(dp_router_priority(&r),
                     DP_ROUTER_PRIO_TOP | (DP_ROUTER_BIT_IP << 4) | DP_ROUTER_BIT_PORT);
}

/* IP beats PORT beats CIDR on the same field, sources outrank destinations. */
static void
test_ip_port_cidr_order(void **state)
{
    struct st_endpoint d_cidr = ep("127.0.0.0/8", 0);
    struct st_endpoint d_port = ep(NULL, 5555);
    struct st_endpoint d_ip = ep("127.0.0.1", 0);
    struct st_endpoint s_cidr = ep("127.0.0.0/8", 0);
    struct st_route routes[4];
    struct dp_router *r;

    (void)state;
    /* created in the reverse of their rank, so ties cannot explain the result */
    routes[0] = route("00000000-0000-4000-8000-000000000001", 1, NULL, 0, &d_cidr, 1);
    routes[1] = route("00000000-0000-4000-8000-000000000002", 2, NULL, 0, &d_port, 1);
    routes[2] = route("00000000-0000-4000-8000-000000000003", 3, NULL, 0, &d_ip, 1);
    routes[3] = route("00000000-0000-4000-8000-000000000004", 4, &s_cidr, 1, NULL, 0);
    r = dp_router_new(routes, 4);
    assert_non_null(r);
    assert_int_equal(dp_router_size(r), 4);
    /* source CIDR (1 << 4 = 16) outranks any destination-only route (at most 13) */
    assert_int_equal(match(r, "127.0.0.5", 40000, "127.0.0.1", 5555), 3);
    dp_router_free(r);

    r = dp_router_new(routes, 3);
    assert_int_equal(match(r, "10.1.1.1", 40000, "127.0.0.1", 5555), 2); /* IP */
    assert_int_equal(match(r, "10.1.1.1", 40000, "127.0.0.2", 5555), 1); /* PORT */
    assert_int_equal(match(r, "10.1.1.1", 40000, "127.0.0.2", 6000), 0); /* CIDR */
    assert_int_equal(match(r, "10.1.1.1", 40000, "10.0.0.1", 6000), -1);
    dp_router_free(r);
}

static void
test_sources_and_destinations_on_top(void **state)
{
    struct st_endpoint s_cidr = ep("10.0.0.0/8", 0);
    struct st_endpoint d_cidr = ep("0.0.0.0/0", 0);
    struct st_endpoint s_full = ep("10.0.0.1", 1234);
    struct st_endpoint d_full = ep("127.0.0.1", 5555);
    struct st_route routes[3];
    struct dp_router *r;

    (void)state;
    /* weakest possible both-fields route (CIDR + CIDR = 0x11 | top bit) ... */
    routes[0] = route("00000000-0000-4000-8000-000000000001", 9, &s_cidr, 1, &d_cidr, 1);
    /* ... still beats the strongest single-field routes (IP|PORT = 0xC0, 0x0C) */
    routes[1] = route("00000000-0000-4000-8000-000000000002", 1, &s_full, 1, NULL, 0);
    routes[2] = route("00000000-0000-4000-8000-000000000003", 1, NULL, 0, &d_full, 1);
    r = dp_router_new(routes, 3);
    assert_int_equal(match(r, "10.0.0.1", 1234, "127.0.0.1", 5555), 0);
    assert_int_equal(match(r, "11.0.0.1", 1234, "127.0.0.1", 5555), 2);
    assert_int_equal(match(r, "10.0.0.1", 1234, "::1", 5555), 1);
    dp_router_free(r);
}

static void
test_ties(void **state)
{
    struct st_endpoint d = ep(NULL, 5555);
    struct st_route routes[3];
    struct dp_router *r;

    (void)state;
    routes[0] = route("00000000-0000-4000-8000-00000000000c", 200, NULL, 0, &d, 1);
    routes[1] = route("00000000-0000-4000-8000-00000000000b", 100, NULL, 0, &d, 1);
    routes[2] = route("00000000-0000-4000-8000-00000000000a", 200, NULL, 0, &d, 1);
    r = dp_router_new(routes, 3);
    /* oldest first */
    assert_int_equal(match(r, "127.0.0.1", 1, "127.0.0.1", 5555), 1);
    dp_router_free(r);
    /* same created_at: smallest id */
    r = dp_router_new(routes, 1);
    assert_int_equal(match(r, "127.0.0.1", 1, "127.0.0.1", 5555), 0);
    dp_router_free(r);
    routes[1].created_at_ms = 300;
    r = dp_router_new(routes, 3);
    assert_int_equal(match(r, "127.0.0.1", 1, "127.0.0.1", 5555), 2);
    dp_router_free(r);
}

static void
test_v6(void **state)
{
    struct st_endpoint d6 = ep("::1", 0);
    struct st_endpoint s6 = ep("2001:db8::/32", 0);
    struct st_endpoint d4 = ep("127.0.0.1", 0);
    struct st_route routes[3];
    struct dp_router *r;

    (void)state;
    routes[0] = route("00000000-0000-4000-8000-000000000001", 1, NULL, 0, &d6, 1);
    routes[1] = route("00000000-0000-4000-8000-000000000002", 1, &s6, 1, NULL, 0);
    routes[2] = route("00000000-0000-4000-8000-000000000003", 1, NULL, 0, &d4, 1);
    r = dp_router_new(routes, 3);
    assert_int_equal(match(r, "::1", 40000, "::1", 5555), 0);
    assert_int_equal(match(r, "2001:db8::5", 40000, "::1", 5555), 1);
    assert_int_equal(match(r, "2001:db9::5", 40000, "::2", 5555), -1);
    /* an IPv4 client never matches an IPv6 block, and the reverse */
    assert_int_equal(match(r, "127.0.0.1", 40000, "127.0.0.1", 5555), 2);
    assert_int_equal(match(r, "127.0.0.1", 40000, "127.0.0.2", 5555), -1);
    dp_router_free(r);
}

static void
test_no_match_and_excluded(void **state)
{
    struct st_endpoint d = ep(NULL, 5555);
    struct st_endpoint s = ep("10.0.0.0/8", 7);
    struct st_route routes[4];
    struct dp_router *r;

    (void)state;
    routes[0] = route("00000000-0000-4000-8000-000000000001", 1, NULL, 0, &d, 1);
    routes[0].service = &svc_off; /* disabled service: not routed */
    routes[1] = route("00000000-0000-4000-8000-000000000002", 1, NULL, 0, &d, 1);
    routes[1].service = NULL; /* no service: not routed */
    routes[1].service_id = NULL;
    routes[2] = route("00000000-0000-4000-8000-000000000003", 1, NULL, 0, &d, 1);
    routes[2].protocols = ST_PROTO_TLS; /* routed, but never on a plain listener */
    routes[3] = route("00000000-0000-4000-8000-000000000004", 1, &s, 1, NULL, 0);
    r = dp_router_new(routes, 4);
    assert_int_equal(dp_router_size(r), 2);
    assert_int_equal(match(r, "127.0.0.1", 1, "127.0.0.1", 5555), -1);
    assert_int_equal(match(r, "10.2.3.4", 8, "127.0.0.1", 5555), -1); /* port differs */
    assert_int_equal(match(r, "10.2.3.4", 7, "127.0.0.1", 5555), 3);
    dp_router_free(r);

    r = dp_router_new(NULL, 0);
    assert_non_null(r);
    assert_int_equal(match(r, "127.0.0.1", 1, "127.0.0.1", 5555), -1);
    dp_router_free(r);
}

static void
test_sni_patterns(void **state)
{
    (void)state;
    assert_true(dp_router_sni_match("a.test", "a.test"));
    assert_true(dp_router_sni_match("A.Test", "a.test"));
    assert_true(dp_router_sni_match("a.test.", "a.test"));
    assert_false(dp_router_sni_match("a.test", "b.a.test"));
    /* wildcards span several labels (Kong's traditional_compatible router) */
    assert_true(dp_router_sni_match("*.foo.test", "a.foo.test"));
    assert_true(dp_router_sni_match("*.foo.test", "a.b.foo.test"));
    assert_false(dp_router_sni_match("*.foo.test", "foo.test"));
    assert_false(dp_router_sni_match("*.foo.test", "afoo.test"));
    assert_true(dp_router_sni_match("bar.*", "bar.y.z"));
    assert_true(dp_router_sni_match("bar.*", "bar.y"));
    assert_false(dp_router_sni_match("bar.*", "bar"));
    assert_false(dp_router_sni_match("bar.*", "barx.y"));
    assert_true(dp_router_sni_match("*", "anything.test"));
}

static void
test_sni_routes(void **state)
{
    struct st_endpoint d_port = ep(NULL, 443);
    struct st_route r[5];
    const char *snis_exact[] = {"www.example.test"};
    const char *snis_wild[] = {"*.example.test"};
    const char *snis_pass[] = {"pass.*"};
    struct dp_router *rt;

    (void)state;
    r[0] = route("00000000-0000-4000-8000-000000000001", 1, NULL, 0, NULL, 0);
    r[0].protocols = ST_PROTO_TLS;
    r[0].snis = snis_exact;
    r[0].n_snis = 1;
    r[1] = route("00000000-0000-4000-8000-000000000002", 2, NULL, 0, NULL, 0);
    r[1].protocols = ST_PROTO_TLS;
    r[1].snis = snis_wild;
    r[1].n_snis = 1;
    r[2] = route("00000000-0000-4000-8000-000000000003", 3, NULL, 0, NULL, 0);
    r[2].protocols = ST_PROTO_TLS_PASSTHROUGH;
    r[2].snis = snis_pass;
    r[2].n_snis = 1;
    /* by destination port only: the one an SNI-less client can reach */
    r[3] = route("00000000-0000-4000-8000-000000000004", 4, NULL, 0, &d_port, 1);
    r[3].protocols = ST_PROTO_TLS;
    /* a tcp route on the same port: plain listeners only */
    r[4] = route("00000000-0000-4000-8000-000000000005", 0, NULL, 0, &d_port, 1);
    rt = dp_router_new(r, 5);
    assert_non_null(rt);
    assert_int_equal(dp_router_size(rt), 5);

    assert_int_equal(match_tls(rt, "10.0.0.1", 1000, "10.0.0.2", 443, true, "www.example.test"), 0);
    assert_int_equal(match_tls(rt, "10.0.0.1", 1000, "10.0.0.2", 443, true, "a.example.test"), 1);
    assert_int_equal(match_tls(rt, "10.0.0.1", 1000, "10.0.0.2", 443, true, "pass.y.z"), 2);
    /* an unknown SNI falls to the route by port; no SNI reaches only that one */
    assert_int_equal(match_tls(rt, "10.0.0.1", 1000, "10.0.0.2", 443, true, "other.test"), 3);
    assert_int_equal(match_tls(rt, "10.0.0.1", 1000, "10.0.0.2", 443, true, NULL), 3);
    assert_int_equal(match_tls(rt, "10.0.0.1", 1000, "10.0.0.2", 444, true, NULL), -1);
    assert_int_equal(match_tls(rt, "10.0.0.1", 1000, "10.0.0.2", 444, true, "other.test"), -1);
    /* plain listeners see the tcp route only */
    assert_int_equal(match(rt, "10.0.0.1", 1000, "10.0.0.2", 443), 4);
    assert_int_equal(match(rt, "10.0.0.1", 1000, "10.0.0.2", 444), -1);
    dp_router_free(rt);
}

/* ---- the indexes against a plain scan: many routes of every kind, many connections */

static bool
ref_list(const struct st_endpoint *e, size_t n, const struct sockaddr_storage *ss)
{
    const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;

    if (n == 0) {
        return true;
    }
    for (size_t i = 0; i < n; i++) {
        if (e[i].has_port && e[i].port != ntohs(s4->sin_port)) {
            continue;
        }
        if (e[i].has_ip && !st_cidr_match(&e[i].ip, (const struct sockaddr *)ss)) {
            continue;
        }
        return true;
    }
    return false;
}

static bool
ref_matches(const struct st_route *r, const struct sockaddr_storage *c,
            const struct sockaddr_storage *d, bool tls, const char *sni)
{
    unsigned kinds = tls ? (ST_PROTO_TLS | ST_PROTO_TLS_PASSTHROUGH) : ST_PROTO_TCP;
    bool sni_ok = true;

    if (tls && r->n_snis > 0) {
        sni_ok = false;
        for (size_t i = 0; sni != NULL && i < r->n_snis; i++) {
            sni_ok = sni_ok || dp_router_sni_match(r->snis[i], sni);
        }
    }
    return (r->protocols & kinds) && r->service != NULL && r->service->enabled &&
           ref_list(r->sources, r->n_sources, c) &&
           ref_list(r->destinations, r->n_destinations, d) && sni_ok;
}

/* The expected winner: the best (priority, created_at, id) among the matching routes. */
static ssize_t
ref_match(const struct st_route *v, size_t n, const struct sockaddr_storage *c,
          const struct sockaddr_storage *d, bool tls, const char *sni)
{
    ssize_t best = -1;

    for (size_t i = 0; i < n; i++) {
        uint64_t p, bp;

        if (!ref_matches(&v[i], c, d, tls, sni)) {
            continue;
        }
        if (best < 0) {
            best = (ssize_t)i;
            continue;
        }
        p = dp_router_priority(&v[i]);
        bp = dp_router_priority(&v[best]);
        if (p > bp || (p == bp && (v[i].created_at_ms < v[best].created_at_ms ||
                                   (v[i].created_at_ms == v[best].created_at_ms &&
                                    strcmp(v[i].id, v[best].id) < 0)))) {
            best = (ssize_t)i;
        }
    }
    return best;
}

#define MANY 1200

static void
test_index_agrees_with_scan(void **state)
{
    static struct st_route r[MANY];
    static struct st_endpoint eps[MANY][2];
    static char ids[MANY][40];
    static const char *names[] = {"a.test", "b.test", "*.test", "c.*", "A.Test.", "x.y.test"};
    static const char *sni_sets[MANY][2];
    static const char *conn_snis[] = {NULL, "a.test", "b.test", "q.test", "c.d", "x.y.test", "zz"};
    unsigned seed = 12345;
    struct dp_router *rt;

    (void)state;
    for (size_t i = 0; i < MANY; i++) {
        unsigned kind;

        seed = seed * 1103515245u + 12345u;
        kind = (seed >> 8) % 6;
        (void)snprintf(ids[i], sizeof(ids[i]), "00000000-0000-4000-8000-%012zu", i);
        r[i] = route(ids[i], (int64_t)((seed >> 4) % 50), NULL, 0, NULL, 0);
        switch (kind) {
        case 0: /* by destination port, many distinct ports */
            eps[i][0] = ep(NULL, (uint16_t)(1000 + (seed >> 12) % 1100));
            r[i].destinations = eps[i];
            r[i].n_destinations = 1;
            break;
        case 1: /* by port and source CIDR */
            eps[i][0] = ep(NULL, (uint16_t)(1000 + (seed >> 12) % 5));
            eps[i][1] = ep((seed >> 20) % 2 ? "10.0.0.0/8" : "10.1.2.3", 0);
            r[i].destinations = &eps[i][0];
            r[i].n_destinations = 1;
            r[i].sources = &eps[i][1];
            r[i].n_sources = 1;
            break;
        case 2: /* destination without a port: not indexable by port */
            eps[i][0] = ep("127.0.0.0/8", 0);
            r[i].destinations = eps[i];
            r[i].n_destinations = 1;
            break;
        default: /* tls by snis, exact or wildcard, some with a port too */
            r[i].protocols = (seed >> 14) % 2 ? ST_PROTO_TLS : ST_PROTO_TLS_PASSTHROUGH;
            sni_sets[i][0] = names[(seed >> 16) % 6];
            sni_sets[i][1] = names[(seed >> 19) % 6];
            r[i].snis = sni_sets[i];
            r[i].n_snis = strcmp(sni_sets[i][0], sni_sets[i][1]) ? 2 : 1;
            if (kind == 5) {
                eps[i][0] = ep(NULL, (uint16_t)(1000 + (seed >> 22) % 5));
                r[i].destinations = eps[i];
                r[i].n_destinations = 1;
            }
            break;
        }
    }
    rt = dp_router_new(r, MANY);
    assert_non_null(rt);
    for (unsigned port = 995; port < 2110; port += 3) {
        for (size_t j = 0; j < sizeof(conn_snis) / sizeof(conn_snis[0]); j++) {
            for (int tls = 0; tls < 2; tls++) {
                const char *cip = j % 2 ? "10.1.2.3" : "192.0.2.1";
                struct sockaddr_storage c = sa(cip, 40000), d = sa("127.0.0.1", (uint16_t)port);
                ssize_t want = ref_match(r, MANY, &c, &d, tls, conn_snis[j]);
                ssize_t got =
                    match_tls(rt, cip, 40000, "127.0.0.1", (uint16_t)port, tls, conn_snis[j]);

                if (got != want) {
                    fail_msg("port %u sni %s tls %d: got %zd, want %zd", port,
                             conn_snis[j] ? conn_snis[j] : "-", tls, got, want);
                }
            }
        }
    }
    dp_router_free(rt);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_priority_bits),
        cmocka_unit_test(test_ip_port_cidr_order),
        cmocka_unit_test(test_sources_and_destinations_on_top),
        cmocka_unit_test(test_ties),
        cmocka_unit_test(test_v6),
        cmocka_unit_test(test_no_match_and_excluded),
        cmocka_unit_test(test_sni_patterns),
        cmocka_unit_test(test_sni_routes),
        cmocka_unit_test(test_index_agrees_with_scan),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
