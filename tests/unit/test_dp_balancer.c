/* dp_balancer: Kong's algorithms over an upstream's peers (issue 16, point 2). Weighted
 * round-robin gives each peer exactly its weight per cycle and skips weight 0;
 * least-connections follows the live counts; the ring keeps a client on its peer and
 * moves only the clients of a peer that leaves; a retry avoids the peers tried; no
 * weight at all is no peer. */
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

#include "dp_balancer.h"
#include "st_entity.h"

#define PEERS_MAX 10000

/* u's balancer over peers on 10.0.0.1.. (n of them), port 8000 + i % 1000, with the
 * given weights, following prev (NULL: none). */
static struct dp_balancer *
make_after(const struct st_upstream *u, const uint32_t *weights, size_t n,
           const struct dp_balancer *prev)
{
    static struct dp_peer_spec specs[PEERS_MAX];
    static char names[PEERS_MAX][32];

    assert_true(n <= PEERS_MAX);
    for (size_t i = 0; i < n; i++) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&specs[i].addr;

        memset(&specs[i], 0, sizeof(specs[i]));
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)(8000 + i % 1000));
        sin->sin_addr.s_addr =
            htonl(0x0a000000u + (uint32_t)((i / 250) << 8) + (uint32_t)(i % 250) + 1);
        snprintf(names[i], sizeof(names[i]), "10.0.%zu.%zu:%zu", i / 250, i % 250 + 1,
                 8000 + i % 1000);
        specs[i].weight = weights[i];
        specs[i].target = names[i];
    }
    return dp_balancer_new(u, specs, n, 0, prev);
}

static struct dp_balancer *
make(const char *algorithm, const char *hash_on, const uint32_t *weights, size_t n)
{
    struct st_upstream u = {.name = "pool.test",
                            .algorithm = algorithm,
                            .hash_on = hash_on ? hash_on : "none",
                            .hash_fallback = "none",
                            .slots = 10000};

    return make_after(&u, weights, n, NULL);
}

static int
pick1(struct dp_balancer *b, const struct sockaddr *client)
{
    struct dp_balancer_tried t = {0};
    struct dp_balancer_key k = {.client = client};
    int i = dp_balancer_pick(b, &k, &t);

    if (i >= 0) {
        dp_balancer_release(b, i);
    }
    return i;
}

static void
test_round_robin_weights(void **state)
{
    static const uint32_t w[] = {1, 2, 0, 3};
    struct dp_balancer *b = make("round-robin", NULL, w, 4);
    int got[4] = {0};
    int run = 0, longest = 0, prev = -1;

    (void)state;
    for (int c = 0; c < 600; c++) {
        int i = pick1(b, NULL);

        assert_true(i >= 0 && i < 4);
        got[i]++;
        run = i == prev ? run + 1 : 1;
        longest = run > longest ? run : longest;
        prev = i;
    }
    /* 100 cycles of the total weight 6: exactly the weights */
    assert_int_equal(got[0], 100);
    assert_int_equal(got[1], 200);
    assert_int_equal(got[2], 0);
    assert_int_equal(got[3], 300);
    assert_true(longest < 6); /* interleaved, not in blocks */
    dp_balancer_unref(b);
}

static void
test_least_connections(void **state)
{
    static const uint32_t w[] = {100, 100, 200};
    struct dp_balancer *b = make("least-connections", NULL, w, 3);
    int held[12];
    int per[3] = {0};

    (void)state;
    /* held sessions: the counts per weight stay even (1:1:2) */
    for (int k = 0; k < 12; k++) {
        struct dp_balancer_tried t = {0};

        held[k] = dp_balancer_pick(b, NULL, &t);
        per[held[k]]++;
    }
    assert_int_equal(per[0], 3);
    assert_int_equal(per[1], 3);
    assert_int_equal(per[2], 6);
    /* peer 0's sessions end: the next three go to it */
    for (int k = 0; k < 12; k++) {
        if (held[k] == 0) {
            dp_balancer_release(b, 0);
        }
    }
    assert_int_equal(dp_balancer_active(b, 0), 0);
    for (int k = 0; k < 3; k++) {
        struct dp_balancer_tried t = {0};

        assert_int_equal(dp_balancer_pick(b, NULL, &t), 0);
    }
    assert_int_equal(dp_balancer_active(b, 0), 3);
    dp_balancer_unref(b);
}

static void
client(struct sockaddr_in *sin, uint32_t ip)
{
    memset(sin, 0, sizeof(*sin));
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = htonl(ip);
}

static void
test_ring_stable_and_minimal_moves(void **state)
{
    static const uint32_t w5[] = {100, 100, 100, 100, 100};
    struct dp_balancer *b5 = make("consistent-hashing", "ip", w5, 5);
    struct dp_balancer *b4 = make("consistent-hashing", "ip", w5, 4); /* the fifth left */
    int on[5] = {0};
    int moved = 0;

    (void)state;
    for (uint32_t c = 0; c < 2000; c++) {
        struct sockaddr_in sin;
        int i5, i4;

        client(&sin, 0xc0a80000u + c);
        i5 = pick1(b5, (struct sockaddr *)&sin);
        assert_int_equal(pick1(b5, (struct sockaddr *)&sin), i5); /* stable */
        i4 = pick1(b4, (struct sockaddr *)&sin);
        on[i5]++;
        if (i5 != 4) {
            assert_int_equal(i4, i5); /* only the leaving peer's clients move */
        } else {
            moved++;
        }
    }
    for (int i = 0; i < 5; i++) {
        assert_true(on[i] > 2000 / 5 / 2); /* spread: no peer starved */
    }
    assert_true(moved > 2000 / 5 / 2 && moved < 2000 / 5 * 2); /* about 1/N */
    dp_balancer_unref(b5);
    dp_balancer_unref(b4);
}

static void
test_retry_avoids_tried(void **state)
{
    static const uint32_t w[] = {100, 100, 100};
    const char *algs[] = {"round-robin", "least-connections", "consistent-hashing", "latency"};
    struct sockaddr_in sin;

    (void)state;
    client(&sin, 0x7f000001u);
    for (size_t a = 0; a < 4; a++) {
        struct dp_balancer *b = make(algs[a], "ip", w, 3);
        struct dp_balancer_tried t = {0};
        struct dp_balancer_key k = {.client = (struct sockaddr *)&sin};
        int seen[3] = {0};

        for (int n = 0; n < 3; n++) {
            int i = dp_balancer_pick(b, &k, &t);

            assert_true(i >= 0);
            assert_int_equal(seen[i], 0); /* each try a new peer */
            seen[i] = 1;
            dp_balancer_release(b, i);
        }
        /* every peer tried: the list starts over */
        assert_true(dp_balancer_pick(b, &k, &t) >= 0);
        dp_balancer_unref(b);
    }
}

static void
test_no_weight_no_peer(void **state)
{
    static const uint32_t w[] = {0, 0};
    struct dp_balancer *b = make("round-robin", NULL, w, 2);
    struct dp_balancer *e = make("least-connections", NULL, w, 0);

    (void)state;
    assert_int_equal(pick1(b, NULL), -1);
    assert_int_equal(pick1(e, NULL), -1);
    dp_balancer_unref(b);
    dp_balancer_unref(e);
}

/* consistent-hashing with nothing to hash on (Kong's HTTP-only sources): round-robin,
 * never every connection on one peer */
static void
test_hash_without_source_spreads(void **state)
{
    static const uint32_t w[] = {100, 100};
    struct dp_balancer *b = make("consistent-hashing", "header", w, 2);
    int got[2] = {0};

    (void)state;
    for (int c = 0; c < 200; c++) { /* one cycle of the total weight */
        got[pick1(b, NULL)]++;
    }
    assert_int_equal(got[0], 100);
    assert_int_equal(got[1], 100);
    dp_balancer_unref(b);
}

/* Strait's sources: the SNI and the listener's port keep a connection's peer */
static void
test_hash_on_sni_and_port(void **state)
{
    static const uint32_t w[] = {100, 100, 100, 100};
    struct dp_balancer *bs = make("consistent-hashing", "sni", w, 4);
    struct dp_balancer *bp = make("consistent-hashing", "port", w, 4);
    int seen_s[4] = {0}, seen_p[4] = {0};

    (void)state;
    for (int c = 0; c < 64; c++) {
        char sni[32];
        struct dp_balancer_tried t1 = {0}, t2 = {0}, t3 = {0}, t4 = {0};
        struct dp_balancer_key k = {.sni = sni, .port = (uint16_t)(1000 + c)};
        int a, b;

        snprintf(sni, sizeof(sni), "host%d.test", c);
        a = dp_balancer_pick(bs, &k, &t1);
        assert_int_equal(dp_balancer_pick(bs, &k, &t2), a);
        b = dp_balancer_pick(bp, &k, &t3);
        assert_int_equal(dp_balancer_pick(bp, &k, &t4), b);
        seen_s[a]++;
        seen_p[b]++;
    }
    for (int i = 0; i < 4; i++) {
        assert_true(seen_s[i] > 0 && seen_p[i] > 0); /* spread over every peer */
    }
    dp_balancer_unref(bs);
    dp_balancer_unref(bp);
}

/* 10,000 peers in one upstream: every algorithm picks among them (each peer reached by
 * round-robin in one cycle; the ring and least-connections stay spread). */
static void
test_ten_thousand_peers(void **state)
{
    static uint32_t w[PEERS_MAX];
    static int got[PEERS_MAX];
    const char *algs[] = {"round-robin", "least-connections", "consistent-hashing", "latency"};

    (void)state;
    for (size_t i = 0; i < PEERS_MAX; i++) {
        w[i] = 1;
    }
    for (size_t a = 0; a < 4; a++) {
        struct dp_balancer *b = make(algs[a], "ip", w, PEERS_MAX);
        size_t distinct = 0;

        memset(got, 0, sizeof(got));
        for (uint32_t c = 0; c < PEERS_MAX; c++) {
            struct sockaddr_in sin;
            int i;

            client(&sin, 0xc0a80000u + c);
            i = pick1(b, (struct sockaddr *)&sin);
            assert_true(i >= 0 && i < PEERS_MAX);
            distinct += got[i]++ == 0;
        }
        if (a == 0) {
            assert_int_equal(distinct, PEERS_MAX); /* one cycle: every peer once */
        } else {
            assert_true(distinct > PEERS_MAX / 2); /* spread */
        }
        dp_balancer_unref(b);
    }
}

/* A new balancer of the same upstream (a DNS answer or a target changed) starts its
 * peers that stayed from the old one's health: an unhealthy peer stays out, the new
 * peer is healthy, and the unhealthy weight is the stayed peer's alone. */
static void
test_health_carried_to_next_balancer(void **state)
{
    static const uint32_t w[] = {100, 100, 100};
    struct st_upstream u = {.name = "pool.test",
                            .algorithm = "round-robin",
                            .hash_on = "none",
                            .hash_fallback = "none",
                            .slots = 10000,
                            .healthchecks = "{\"passive\":{\"healthy\":{\"successes\":1},"
                                            "\"unhealthy\":{\"tcp_failures\":1}}}"};
    struct dp_balancer *b1 = make_after(&u, w, 2, NULL), *b2;

    (void)state;
    assert_int_equal(dp_balancer_report(b1, 1, DP_HEALTH_TCP_FAILURE, false), -1);
    assert_false(dp_balancer_healthy(b1, 1));
    b2 = make_after(&u, w, 3, b1); /* peers 0 and 1 stay, 2 is new */
    assert_true(dp_balancer_healthy(b2, 0));
    assert_false(dp_balancer_healthy(b2, 1));
    assert_true(dp_balancer_healthy(b2, 2));
    for (int c = 0; c < 30; c++) {
        assert_int_not_equal(pick1(b2, NULL), 1);
    }
    /* a success mends it on the new balancer, whose unhealthy weight was 100 */
    assert_int_equal(dp_balancer_report(b2, 1, DP_HEALTH_SUCCESS, false), 1);
    dp_balancer_unref(b1);
    dp_balancer_unref(b2);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_health_carried_to_next_balancer),
        cmocka_unit_test(test_round_robin_weights),
        cmocka_unit_test(test_least_connections),
        cmocka_unit_test(test_ring_stable_and_minimal_moves),
        cmocka_unit_test(test_retry_avoids_tried),
        cmocka_unit_test(test_no_weight_no_peer),
        cmocka_unit_test(test_hash_without_source_spreads),
        cmocka_unit_test(test_hash_on_sni_and_port),
        cmocka_unit_test(test_ten_thousand_peers),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
