/* Runtime build and lifetime. A runtime never changes once built; a new snapshot
 * makes a new runtime, published by dp_ctx_publish(). The last reference may go on a
 * worker thread, so a runtime is a few large blocks (the snapshot's arena, one array
 * of addresses, the router's and the TLS table's) and frees in a couple of ms even
 * with 100k routes. */
#include "dp_runtime.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dp_balancer.h"
#include "dp_router.h"
#include "dp_tls.h"
#include "st_entity.h"
#include "st_err.h"
#include "st_log.h"
#include "st_snapshot.h"
#include "st_util.h"

struct dp_runtime {
    atomic_int refs;
    struct st_snapshot *snap;
    struct dp_router *router;
    struct dp_service_ep *eps;             /* one per service */
    const struct dp_service_ep **route_ep; /* one per route: its service's endpoint */
    struct dp_tls_certs *certs;            /* server contexts by SNI */
    struct sockaddr_storage *addrs;        /* every upstream's addresses, one block */
    struct dp_balancer **bals;             /* one per upstream */
};

static void
runtime_free(struct dp_runtime *rt)
{
    if (rt->eps != NULL) {
        for (size_t i = 0; i < rt->snap->n_services; i++) {
            dp_tls_ctx_unref(rt->eps[i].tls);
        }
    }
    dp_tls_certs_free(rt->certs);
    for (size_t i = 0; rt->bals != NULL && i < rt->snap->n_upstreams; i++) {
        dp_balancer_unref(rt->bals[i]);
    }
    free(rt->bals);
    free(rt->addrs);
    free(rt->eps);
    free(rt->route_ep);
    dp_router_free(rt->router);
    st_snapshot_free(rt->snap);
    free(rt);
}

/* ---------------------------------------------------------------- building */

/* A string-keyed table for one build (open addressing, never shrinks): the hosts
 * already resolved and the upstream TLS settings already made, so that 100k services
 * on a few hosts cost a few lookups, not 100k. */
struct memo_ent {
    char *key;              /* NULL: free slot */
    size_t off, n;          /* host: its addresses in the pool, [off, off + n) */
    int rc;                 /* host: getaddrinfo's error, 0: none */
    struct ssl_ctx_st *ctx; /* TLS settings: the context (NULL: failed, why) */
    char *why;
};

struct memo {
    struct memo_ent *v;
    size_t cap, n;
};

static uint64_t
memo_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */

    for (; *s != '\0'; s++) {
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    }
    return h;
}

/* The entry for key, added (with key copied, other fields zero) when absent: *added. */
static struct memo_ent *
memo_get(struct memo *m, const char *key, bool *added)
{
    size_t i;

    if (m->n * 2 >= m->cap) {
        struct memo old = *m;

        m->cap = old.cap ? old.cap * 2 : 64;
        m->v = st_xcalloc(m->cap, sizeof(*m->v));
        m->n = 0;
        for (i = 0; i < old.cap; i++) {
            if (old.v[i].key != NULL) {
                size_t j = memo_hash(old.v[i].key) & (m->cap - 1);

                while (m->v[j].key != NULL) {
                    j = (j + 1) & (m->cap - 1);
                }
                m->v[j] = old.v[i];
                m->n++;
            }
        }
        free(old.v);
    }
    for (i = memo_hash(key) & (m->cap - 1); m->v[i].key != NULL; i = (i + 1) & (m->cap - 1)) {
        if (strcmp(m->v[i].key, key) == 0) {
            *added = false;
            return &m->v[i];
        }
    }
    m->v[i].key = st_xstrdup(key);
    m->n++;
    *added = true;
    return &m->v[i];
}

static void
memo_fini(struct memo *m)
{
    for (size_t i = 0; i < m->cap; i++) {
        free(m->v[i].key);
        free(m->v[i].why);
        dp_tls_ctx_unref(m->v[i].ctx);
    }
    free(m->v);
    memset(m, 0, sizeof(*m));
}

/* The addresses of every service, gathered in one array (one block once built). */
struct addrs {
    struct sockaddr_storage *v;
    size_t n, cap;
    size_t *off; /* per service: first address in v */
};

static void
addrs_push(struct addrs *a, const void *sa, size_t len)
{
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 1024;
        a->v = st_xrealloc(a->v, a->cap * sizeof(*a->v));
    }
    memset(&a->v[a->n], 0, sizeof(a->v[a->n]));
    memcpy(&a->v[a->n], sa, len);
    a->n++;
}

static void
sa_set_port(struct sockaddr_storage *ss, uint16_t port)
{
    if (ss->ss_family == AF_INET6) {
        ((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
    } else if (ss->ss_family == AF_INET) {
        ((struct sockaddr_in *)ss)->sin_port = htons(port);
    }
}

/* Resolves host (getaddrinfo) into a->v; returns the count, with *rc 0 or getaddrinfo's
 * error. An IP literal is taken as it is, which is what getaddrinfo would return. */
static size_t
host_resolve(struct addrs *a, const char *host, int *rc)
{
    struct addrinfo hints, *res = NULL, *ai;
    struct sockaddr_in sin;
    struct sockaddr_in6 sin6;
    size_t n = 0;

    *rc = 0;
    memset(&sin, 0, sizeof(sin));
    memset(&sin6, 0, sizeof(sin6));
    if (inet_pton(AF_INET, host, &sin.sin_addr) == 1) {
        sin.sin_family = AF_INET;
        addrs_push(a, &sin, sizeof(sin));
        return 1;
    }
    if (strchr(host, '%') == NULL && inet_pton(AF_INET6, host, &sin6.sin6_addr) == 1) {
        sin6.sin6_family = AF_INET6;
        addrs_push(a, &sin6, sizeof(sin6));
        return 1;
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    *rc = getaddrinfo(host, "0", &hints, &res);
    if (*rc != 0) {
        return 0;
    }
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        if (ai->ai_addrlen <= sizeof(struct sockaddr_storage)) {
            addrs_push(a, ai->ai_addr, ai->ai_addrlen);
            n++;
        }
    }
    freeaddrinfo(res);
    return n;
}

/* Resolves svc's host:port into ep's slice of a (pointers fixed once a is complete);
 * a failure leaves the service without addresses (its sessions close with 503) rather
 * than refusing the whole configuration. Each host is resolved once per build, into
 * pool (without port). */
static void
ep_resolve(struct memo *hosts, struct addrs *pool, struct addrs *a, size_t i,
           struct dp_service_ep *ep)
{
    const struct st_service *svc = ep->svc;
    struct memo_ent *e;
    bool added;

    a->off[i] = a->n;
    if (svc->host == NULL) {
        return;
    }
    e = memo_get(hosts, svc->host, &added);
    if (added) {
        e->off = pool->n;
        e->n = host_resolve(pool, svc->host, &e->rc);
    }
    if (e->rc != 0) {
        st_log(ST_LOG_WARN, 0, "service %s (%s): cannot resolve '%s': %s", svc->id,
               svc->name ? svc->name : "-", svc->host, gai_strerror(e->rc));
        return;
    }
    for (size_t k = 0; k < e->n; k++) {
        struct sockaddr_storage ss = pool->v[e->off + k];

        sa_set_port(&ss, svc->port);
        addrs_push(a, &ss, sizeof(ss));
    }
    ep->n_addrs = e->n;
}

/* The key of a `tls` service's client settings: services with equal keys get one
 * context (its settings hold nothing else of the service). */
static void
tls_key(const struct st_service *svc, char *buf, size_t size)
{
    size_t off;

    off = (size_t)snprintf(buf, size, "v%d d%d c%s a", svc->tls_verify, svc->tls_verify_depth,
                           svc->client_certificate != NULL && svc->client_certificate->id != NULL
                               ? svc->client_certificate->id
                               : "-");
    for (size_t i = 0; i < svc->n_ca_certificates && off < size; i++) {
        const struct st_ca_certificate *ca = svc->ca_certificates[i];

        off += (size_t)snprintf(buf + off, size - off, "%s,", ca != NULL && ca->id ? ca->id : "-");
    }
}

/* A `tls` service's client context; a failure leaves the service unusable (its
 * sessions close with 502) rather than refusing the whole configuration. Services
 * with the same settings share one context. */
static void
ep_tls(struct memo *tlsm, struct dp_service_ep *ep)
{
    const struct st_service *svc = ep->svc;
    struct ssl_ctx_st *ctx = NULL;
    struct memo_ent *e;
    struct st_err err;
    char key[2048];
    bool added;

    if (svc->protocol != ST_PROTO_TLS) {
        return;
    }
    tls_key(svc, key, sizeof(key));
    /* NULL: a key too long to share (hundreds of CA certificates): its own context */
    e = strlen(key) + 1 < sizeof(key) ? memo_get(tlsm, key, &added) : NULL;
    if (e == NULL || added) {
        memset(&err, 0, sizeof(err));
        if (dp_tls_upstream_ctx_new(svc, &ctx, &err) != 0) {
            ctx = NULL;
        }
        if (e != NULL) {
            e->ctx = ctx;
            e->why = ctx == NULL ? st_xstrdup(err.msg) : NULL;
        }
    }
    if (e != NULL && e->ctx != NULL) {
        dp_tls_ctx_ref(e->ctx); /* the memo keeps its own */
    }
    ep->tls = e != NULL ? e->ctx : ctx;
    if (ep->tls == NULL) {
        st_log(ST_LOG_ERR, 0, "service %s (%s): cannot set up TLS to the upstream: %s", svc->id,
               svc->name ? svc->name : "-", e != NULL ? e->why : err.msg);
    }
}

/* A target's "host:port" (host possibly [v6]) split: host into buf, the port. */
static bool
target_split(const char *target, char *host, size_t size, uint16_t *port)
{
    const char *colon = strrchr(target, ':');
    const char *h = target;
    size_t n;

    if (colon == NULL) {
        return false;
    }
    n = (size_t)(colon - target);
    if (h[0] == '[' && n >= 2 && h[n - 1] == ']') {
        h++;
        n -= 2;
    }
    if (n == 0 || n >= size) {
        return false;
    }
    memcpy(host, h, n);
    host[n] = '\0';
    *port = (uint16_t)strtoul(colon + 1, NULL, 10);
    return true;
}

/* Each upstream's balancer over its targets' addresses (a host name resolved here, once
 * per build: each of its addresses is a peer with the target's weight). A target whose
 * name does not resolve is left out, with a warning. */
/* prev's balancer of upstream id when its signature is sig (reused with a reference:
 * its health and live counts carry over), else NULL. */
static struct dp_balancer *
balancer_reuse(const struct dp_runtime *prev, const char *id, uint64_t sig)
{
    size_t lo = 0, hi = prev != NULL ? prev->snap->n_upstreams : 0;

    while (lo < hi) { /* a snapshot's lists are sorted by id */
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(prev->snap->upstreams[mid].id, id);

        if (c == 0) {
            return dp_balancer_get_sig(prev->bals[mid]) == sig ? dp_balancer_ref(prev->bals[mid])
                                                               : NULL;
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return NULL;
}

static void
balancers_build(struct dp_runtime *rt, const struct dp_runtime *prev, struct memo *hosts,
                struct addrs *pool)
{
    const struct st_snapshot *snap = rt->snap;
    struct dp_peer_spec *specs = st_xcalloc(snap->n_targets + 1, sizeof(*specs));
    size_t cap = snap->n_targets + 1;
    /* the targets by upstream, in one pass: first[u] heads a list threaded by next[] */
    size_t *first = st_xcalloc(snap->n_upstreams + 1, sizeof(*first));
    size_t *next = st_xcalloc(snap->n_targets + 1, sizeof(*next));

    for (size_t t = snap->n_targets; t-- > 0;) {
        size_t u = (size_t)(snap->targets[t].upstream - snap->upstreams);

        if (snap->targets[t].upstream != NULL && u < snap->n_upstreams) {
            next[t] = first[u];
            first[u] = t + 1;
        }
    }
    rt->bals = st_xcalloc(snap->n_upstreams + 1, sizeof(*rt->bals));
    for (size_t u = 0; u < snap->n_upstreams; u++) {
        const struct st_upstream *up = &snap->upstreams[u];
        size_t n = 0;

        for (size_t t1 = first[u]; t1 != 0; t1 = next[t1 - 1]) {
            const struct st_target *tg = &snap->targets[t1 - 1];
            char host[512];
            uint16_t port;
            struct memo_ent *e;
            bool added;

            if (!target_split(tg->target, host, sizeof(host), &port)) {
                continue;
            }
            e = memo_get(hosts, host, &added);
            if (added) {
                e->off = pool->n;
                e->n = host_resolve(pool, host, &e->rc);
            }
            if (e->rc != 0) {
                st_log(ST_LOG_WARN, 0, "upstream %s: target %s: cannot resolve '%s': %s", up->name,
                       tg->target, host, gai_strerror(e->rc));
                continue;
            }
            for (size_t k = 0; k < e->n; k++) {
                if (n == cap) {
                    cap *= 2;
                    specs = st_xrealloc(specs, cap * sizeof(*specs));
                }
                specs[n] = (struct dp_peer_spec){pool->v[e->off + k], tg->weight, tg->target};
                sa_set_port(&specs[n].addr, port);
                n++;
            }
        }
        uint64_t sig = dp_balancer_sig(up, specs, n);

        rt->bals[u] = balancer_reuse(prev, up->id, sig);
        if (rt->bals[u] == NULL) {
            rt->bals[u] = dp_balancer_new(up, specs, n, sig);
        }
    }
    free(specs);
    free(first);
    free(next);
}

/* The balancer of the upstream named host, or NULL (names: upstream names to their
 * index + 1, filled on first use). */
static struct dp_balancer *
balancer_named(const struct dp_runtime *rt, struct memo *names, const char *host)
{
    const struct st_snapshot *snap = rt->snap;
    struct memo_ent *e;
    bool added;

    if (host == NULL || snap->n_upstreams == 0) {
        return NULL;
    }
    if (names->n == 0) {
        for (size_t u = 0; u < snap->n_upstreams; u++) {
            memo_get(names, snap->upstreams[u].name, &added)->off = u + 1;
        }
    }
    e = memo_get(names, host, &added);
    return e->off > 0 ? rt->bals[e->off - 1] : NULL;
}

static const struct dp_service_ep *
route_ep_find(const struct dp_runtime *rt, const struct st_route *r)
{
    const struct st_snapshot *snap = rt->snap;

    if (r->service == NULL) {
        return NULL;
    }
    if (r->service >= snap->services && r->service < snap->services + snap->n_services) {
        return &rt->eps[r->service - snap->services];
    }
    for (size_t i = 0; i < snap->n_services; i++) {
        if (strcmp(snap->services[i].id, r->service->id) == 0) {
            return &rt->eps[i];
        }
    }
    return NULL;
}

int
dp_runtime_new(struct st_snapshot *snap, const struct dp_runtime *prev, struct dp_runtime **out,
               struct st_err *err)
{
    struct dp_runtime *rt = st_xcalloc(1, sizeof(*rt));
    int rc;

    struct memo hosts = {0}, tlsm = {0}, names = {0};
    struct addrs pool = {0}, a = {0};

    atomic_init(&rt->refs, 1);
    rt->snap = snap;
    rt->eps = st_xcalloc(snap->n_services ? snap->n_services : 1, sizeof(*rt->eps));
    a.off = st_xcalloc(snap->n_services + 1, sizeof(*a.off));
    balancers_build(rt, prev, &hosts, &pool);
    for (size_t i = 0; i < snap->n_services; i++) {
        rt->eps[i].svc = &snap->services[i];
        if (snap->services[i].enabled) {
            /* a host naming an upstream is balanced over its targets (Kong: the service
             * port is then ignored); any other host resolves */
            rt->eps[i].bal = balancer_named(rt, &names, snap->services[i].host);
            if (rt->eps[i].bal == NULL) {
                ep_resolve(&hosts, &pool, &a, i, &rt->eps[i]);
            } else {
                a.off[i] = a.n;
            }
            ep_tls(&tlsm, &rt->eps[i]);
        }
    }
    rt->addrs = a.n > 0 ? st_xrealloc(a.v, a.n * sizeof(*a.v)) : NULL;
    if (a.n == 0) {
        free(a.v);
    }
    for (size_t i = 0; i < snap->n_services; i++) {
        rt->eps[i].addrs = rt->eps[i].n_addrs > 0 ? rt->addrs + a.off[i] : NULL;
    }
    free(a.off);
    free(pool.v);
    memo_fini(&hosts);
    memo_fini(&tlsm);
    memo_fini(&names);
    rc = dp_tls_certs_new(snap, &rt->certs, err);
    if (rc != 0) {
        runtime_free(rt);
        return rc;
    }
    rt->route_ep = st_xcalloc(snap->n_routes ? snap->n_routes : 1, sizeof(*rt->route_ep));
    for (size_t i = 0; i < snap->n_routes; i++) {
        rt->route_ep[i] = route_ep_find(rt, &snap->routes[i]);
    }
    rt->router = dp_router_new(snap->routes, snap->n_routes);
    if (rt->router == NULL) {
        runtime_free(rt);
        return st_err_set(err, -ENOMEM, NULL, "out of memory building the router");
    }
    *out = rt;
    return 0;
}

struct dp_runtime *
dp_runtime_ref(struct dp_runtime *rt)
{
    atomic_fetch_add_explicit(&rt->refs, 1, memory_order_relaxed);
    return rt;
}

void
dp_runtime_unref(struct dp_runtime *rt)
{
    if (rt == NULL) {
        return;
    }
    if (atomic_fetch_sub_explicit(&rt->refs, 1, memory_order_acq_rel) == 1) {
        runtime_free(rt);
    }
}

int
dp_runtime_refs(const struct dp_runtime *rt)
{
    return atomic_load_explicit(&((struct dp_runtime *)rt)->refs, memory_order_relaxed);
}

const char *
dp_runtime_hash(const struct dp_runtime *rt)
{
    return rt->snap->hash;
}

uint64_t
dp_runtime_version(const struct dp_runtime *rt)
{
    return rt->snap->version;
}

int
dp_runtime_match(const struct dp_runtime *rt, const struct dp_router_key *k,
                 const struct st_route **route, const struct dp_service_ep **ep)
{
    ssize_t i = dp_router_match(rt->router, k);

    if (i < 0 || rt->route_ep[i] == NULL) {
        return -ST_ENOTFOUND;
    }
    *route = &rt->snap->routes[i];
    *ep = rt->route_ep[i];
    return 0;
}

const struct st_snapshot *
dp_runtime_snapshot(const struct dp_runtime *rt)
{
    return rt->snap;
}

size_t
dp_runtime_balancers(const struct dp_runtime *rt, struct dp_balancer *const **out)
{
    *out = rt->bals;
    return rt->snap->n_upstreams;
}

struct ssl_ctx_st *
dp_runtime_server_ctx(const struct dp_runtime *rt, const char *sni)
{
    return dp_tls_certs_select(rt->certs, sni);
}
