/* strait-snapshot-bench: the cost of one configuration change at scale, end to end on
 * one machine, without sockets.
 *
 * For each size N it forks a child (so that peak RSS is per size) which generates N
 * services, N routes, N/10 certificates and N/10 SNIs as the store returns them (jansson
 * lists, validated with st_schema so defaults are filled), then times:
 *   build   CP: st_snapshot_build (sort, protobuf encode, SHA-256)
 *   unpack  DP: protobuf decode of the snapshot alone (st_snapshot_peek)
 *   parse   DP: st_snapshot_parse (decode, hash check, schema validation, references)
 *   router  DP: dp_router_new over the parsed routes
 *   certs   DP: dp_tls_certs_new, first build (every SSL_CTX made) and again (all reused)
 *   rt      DP: dp_runtime_new: upstreams (address, TLS client contexts), certs, router
 *   swap    DP: dp_ctx_publish of a new runtime, which drops (frees) the previous one
 *   apply2  DP: a second snapshot (one route changed): parse + runtime + swap, the
 *           steady-state cost of a change
 * and reports the encoded size, the RSS at each step and the peak RSS.
 *
 * Certificates reuse a handful of real key pairs (EC P-256 and RSA 2048, generated at
 * start) under distinct ids, so every certificate entity still gets its own SSL_CTX.
 *
 * Usage: strait-snapshot-bench [-c routes_per_cert] [-e] [-w] [N...]
 *   -c  one certificate per this many routes (10); -e  EC keys only (default: half RSA 2048);
 *   -w  wall-clock times (default: the process's CPU time); N: 1000 10000 100000 by default
 */
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "dp_ctx.h"
#include "dp_router.h"
#include "dp_runtime.h"
#include "dp_tls.h"
#include "st_conf.h"
#include "st_err.h"
#include "st_schema.h"
#include "st_snapshot.h"
#include "st_ssl.h"
#include "st_testcert.h"
#include "st_util.h"

#define N_PAIRS 8

static struct tc_pair g_pairs[N_PAIRS];
static int g_cert_div = 10; /* one certificate (and SNI) per this many routes */
static bool g_ec_only;      /* -e: EC P-256 pairs only (no RSA keys) */
/* CPU time by default (the figures then hold on a busy machine); -w: wall clock */
static clockid_t g_clock = CLOCK_PROCESS_CPUTIME_ID;

static double
now_ms(void)
{
    struct timespec ts;

    clock_gettime(g_clock, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Resident set size now, in MiB. */
static double
rss_mib(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, res = 0;

    if (f == NULL) {
        return 0;
    }
    if (fscanf(f, "%ld %ld", &pages, &res) != 2) {
        res = 0;
    }
    fclose(f);
    return (double)res * (double)sysconf(_SC_PAGESIZE) / (1024.0 * 1024.0);
}

static double
peak_mib(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

static json_t *
new_entity(enum st_entity_kind k, json_t *o, int64_t now)
{
    char id[37];
    json_t *fields = NULL;

    if (st_ssl_uuid(id) != 0) {
        abort();
    }
    json_object_set_new(o, "id", json_string(id));
    json_object_set_new(o, "created_at", json_integer(now));
    json_object_set_new(o, "updated_at", json_integer(now));
    if (st_schema_validate(k, o, &fields) != 0) {
        char msg[512];

        st_schema_message(fields, msg, sizeof(msg));
        fprintf(stderr, "bench: %s: %s\n", st_entity_name(k), msg);
        exit(1);
    }
    return o;
}

static const char *
id_of(const json_t *o)
{
    return json_string_value(json_object_get(o, "id"));
}

static json_t *
ref(const json_t *o)
{
    return json_pack("{s:s}", "id", id_of(o));
}

/* The store's lists for n routes: services, routes, certificates, snis. */
static void
generate(size_t n, json_t *lists[ST_ENT__COUNT])
{
    size_t n_certs = n / (size_t)g_cert_div;
    int64_t now = st_time_ms() / 1000 * 1000;
    char buf[64];

    for (int k = 0; k < ST_ENT__COUNT; k++) {
        lists[k] = json_array();
    }
    for (size_t i = 0; i < n_certs; i++) {
        const struct tc_pair *p = &g_pairs[i % N_PAIRS];
        json_t *c = json_pack("{s:s,s:s,s:[s]}", "cert", p->cert, "key", p->key, "tags", "bench");
        json_t *s;

        json_array_append_new(lists[ST_ENT_CERTIFICATE], new_entity(ST_ENT_CERTIFICATE, c, now));
        st_snprintf(buf, sizeof(buf), "c%zu.bench.test", i);
        s = json_pack("{s:s,s:o}", "name", buf, "certificate", ref(c));
        json_array_append_new(lists[ST_ENT_SNI], new_entity(ST_ENT_SNI, s, now));
    }
    for (size_t i = 0; i < n; i++) {
        json_t *svc, *rt;
        char host[32], name[32];

        st_snprintf(host, sizeof(host), "10.%zu.%zu.%zu", (i >> 16) & 255, (i >> 8) & 255, i & 255);
        st_snprintf(name, sizeof(name), "svc-%zu", i);
        /* one service in a hundred speaks TLS to its upstream */
        svc = json_pack("{s:s,s:s,s:i,s:s,s:[s,s]}", "name", name, "host", host, "port",
                        8000 + (int)(i % 1000), "protocol", i % 100 == 0 ? "tls" : "tcp", "tags",
                        "bench", i % 2 ? "odd" : "even");
        json_array_append_new(lists[ST_ENT_SERVICE], new_entity(ST_ENT_SERVICE, svc, now));
        st_snprintf(name, sizeof(name), "route-%zu", i);
        switch (i % 3) {
        case 0: /* by destination port */
            rt = json_pack("{s:s,s:[s],s:[{s:s,s:i}]}", "name", name, "protocols", "tcp",
                           "destinations", "ip", "0.0.0.0/0", "port", 1024 + (int)(i % 60000));
            break;
        case 1: /* tls by SNI */
            st_snprintf(buf, sizeof(buf), "r%zu.bench.test", i);
            rt = json_pack("{s:s,s:[s],s:[s]}", "name", name, "protocols", "tls", "snis", buf);
            break;
        default: /* by client network and destination address */
            st_snprintf(host, sizeof(host), "10.%zu.%zu.0/24", (i >> 8) & 255, i & 255);
            rt = json_pack("{s:s,s:[s],s:[{s:s}],s:[{s:s}]}", "name", name, "protocols", "tcp",
                           "sources", "ip", host, "destinations", "ip", "127.0.0.1");
            break;
        }
        json_object_set_new(rt, "service", ref(svc));
        json_object_set_new(rt, "tags", json_pack("[s]", "bench"));
        json_array_append_new(lists[ST_ENT_ROUTE], new_entity(ST_ENT_ROUTE, rt, now));
    }
}

static void
die(const char *what, const struct st_err *err)
{
    fprintf(stderr, "bench: %s: %s\n", what, err->msg);
    exit(1);
}

static void
tls_setup(void)
{
    static struct st_listen ssl_listener = {.flags = ST_LISTEN_F_SSL};
    static char prefix[] = "/tmp/strait-snapbench-XXXXXX";
    struct st_conf conf;
    struct st_err err = {0};

    if (mkdtemp(prefix) == NULL) {
        perror("mkdtemp");
        exit(1);
    }
    memset(&conf, 0, sizeof(conf));
    conf.prefix = prefix;
    conf.stream_listen.v = &ssl_listener;
    conf.stream_listen.n = 1;
    conf.ssl_cipher_suite = (char *)"intermediate";
    conf.ssl_protocols = (char *)"TLSv1.2 TLSv1.3";
    conf.ssl_session_tickets = true;
    if (dp_tls_init(&conf, 0, &err) != 0) {
        die("dp_tls_init", &err);
    }
}

/* One size, in a child process. Prints one line of figures. */
static void
run(size_t n)
{
    json_t *lists[ST_ENT__COUNT];
    struct dp_ctx ctx;
    struct st_snapshot *snap = NULL, *snap2 = NULL;
    struct st_snapshot_memo *memo;
    struct dp_runtime *rt = NULL, *rt2 = NULL;
    struct dp_tls_certs *certs = NULL;
    struct dp_router *router;
    struct st_err err = {0};
    uint8_t *buf = NULL, *buf2 = NULL;
    size_t len = 0, len2 = 0;
    char hash[65];
    uint64_t version;
    double t, t_build, t_unpack, t_parse, t_router, t_certs_cold, t_certs_warm, t_rt, t_swap;
    double t_parse2, t_rt2, t_swap2, r_gen, r_built, r_parsed, r_rt, r_two, r_after;
    json_t *r0;

    tls_setup();
    memset(&ctx, 0, sizeof(ctx));
    pthread_mutex_init(&ctx.lock, NULL);

    generate(n, lists);
    r_gen = rss_mib();

    t = now_ms();
    if (st_snapshot_build(1, lists, &buf, &len, hash, &err) != 0) {
        die("st_snapshot_build", &err);
    }
    t_build = now_ms() - t;
    r_built = rss_mib();

    /* the second configuration: one route renamed (every certificate unchanged) */
    r0 = json_array_get(lists[ST_ENT_ROUTE], 0);
    json_object_set_new(r0, "name", json_string("route-0-renamed"));
    if (st_snapshot_build(2, lists, &buf2, &len2, hash, &err) != 0) {
        die("st_snapshot_build", &err);
    }
    for (int k = 0; k < ST_ENT__COUNT; k++) {
        json_decref(lists[k]);
    }
    malloc_trim(0);

    t = now_ms();
    if (st_snapshot_peek(buf, len, &version, hash) != 0) {
        fprintf(stderr, "bench: peek failed\n");
        exit(1);
    }
    t_unpack = now_ms() - t;

    /* the sync client's memo: the second parse checks only what changed */
    memo = st_snapshot_memo_new();
    t = now_ms();
    if (st_snapshot_parse(buf, len, memo, &snap, &err) != 0) {
        die("st_snapshot_parse", &err);
    }
    t_parse = now_ms() - t;
    r_parsed = rss_mib();

    t = now_ms();
    router = dp_router_new(snap->routes, snap->n_routes);
    t_router = now_ms() - t;
    if (router == NULL) {
        fprintf(stderr, "bench: dp_router_new failed\n");
        exit(1);
    }
    dp_router_free(router);

    t = now_ms();
    if (dp_tls_certs_new(snap, &certs, &err) != 0) {
        die("dp_tls_certs_new", &err);
    }
    t_certs_cold = now_ms() - t;
    dp_tls_certs_free(certs);
    /* the process cache keeps the contexts: this is the reuse path */
    t = now_ms();
    if (dp_tls_certs_new(snap, &certs, &err) != 0) {
        die("dp_tls_certs_new", &err);
    }
    t_certs_warm = now_ms() - t;
    dp_tls_certs_free(certs);

    t = now_ms();
    if (dp_runtime_new(snap, NULL, NULL, &rt, &err) != 0) {
        die("dp_runtime_new", &err);
    }
    t_rt = now_ms() - t;
    r_rt = rss_mib();
    t = now_ms();
    dp_ctx_publish(&ctx, rt);
    t_swap = now_ms() - t;

    /* steady state: the next snapshot arrives while the first one serves */
    t = now_ms();
    if (st_snapshot_parse(buf2, len2, memo, &snap2, &err) != 0) {
        die("st_snapshot_parse", &err);
    }
    t_parse2 = now_ms() - t;
    t = now_ms();
    if (dp_runtime_new(snap2, rt, NULL, &rt2, &err) != 0) {
        die("dp_runtime_new", &err);
    }
    t_rt2 = now_ms() - t;
    r_two = rss_mib();
    t = now_ms();
    dp_ctx_publish(&ctx, rt2); /* frees the first runtime */
    t_swap2 = now_ms() - t;
    malloc_trim(0);
    r_after = rss_mib();

    printf("%7zu %6zu %9.2f %8.1f %7.1f %8.1f %7.1f %7.1f %7.1f %8.1f %7.1f %9.1f"
           "   %6.0f %6.0f %6.0f %6.0f %6.0f %6.0f %6.0f\n",
           n, n / (size_t)g_cert_div, (double)len / (1024.0 * 1024.0), t_build, t_unpack, t_parse,
           t_router, t_certs_cold, t_certs_warm, t_rt, t_swap, t_parse2 + t_rt2 + t_swap2, r_gen,
           r_built, r_parsed, r_rt, r_two, r_after, peak_mib());
    fprintf(stderr,
            "  N=%zu: encoded %zu bytes; apply2 = parse %.1f + runtime %.1f + swap %.1f ms\n", n,
            len, t_parse2, t_rt2, t_swap2);
    fflush(stdout);
    dp_runtime_unref(ctx.rt);
    st_snapshot_memo_free(memo);
    free(buf);
    free(buf2);
    dp_tls_fini();
}

int
main(int argc, char **argv)
{
    size_t sizes[16] = {1000, 10000, 100000};
    size_t n_sizes = 3;
    int i = 1;

    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
            g_cert_div = (int)strtol(argv[++i], NULL, 10);
            g_cert_div = g_cert_div < 1 ? 1 : g_cert_div;
        } else if (strcmp(argv[i], "-e") == 0) {
            g_ec_only = true;
        } else if (strcmp(argv[i], "-w") == 0) {
            g_clock = CLOCK_MONOTONIC;
        } else {
            fprintf(stderr, "usage: %s [-c routes_per_cert] [-e] [-w] [N...]\n", argv[0]);
            return 2;
        }
    }
    if (i < argc) {
        n_sizes = 0;
        for (; i < argc && n_sizes < 16; i++) {
            sizes[n_sizes++] = (size_t)strtoull(argv[i], NULL, 10);
        }
    }
    for (int p = 0; p < N_PAIRS; p++) {
        char cn[16];

        st_snprintf(cn, sizeof(cn), "bench%d", p);
        g_pairs[p] = tc_make(p % 2 && !g_ec_only ? TC_RSA : TC_EC, cn, false, -1, 3650);
    }
    printf("# times in ms, sizes in MiB; certs = N/%d certificates (+ as many SNIs)\n", g_cert_div);
    printf("#     N  certs   encoded    build  unpack    parse  router  certs1  certs2"
           "       rt    swap    apply2   rssgen rssbld rssprs  rssrt rsstwo rssaft   peak\n");
    fflush(stdout);
    for (size_t s = 0; s < n_sizes; s++) {
        pid_t pid = fork();
        int status = 0;

        if (pid == 0) {
            run(sizes[s]);
            _exit(0);
        }
        if (pid < 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) ||
            WEXITSTATUS(status) != 0) {
            fprintf(stderr, "bench: size %zu failed\n", sizes[s]);
            return 1;
        }
    }
    for (int p = 0; p < N_PAIRS; p++) {
        tc_free(&g_pairs[p]);
    }
    return 0;
}
