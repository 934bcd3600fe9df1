/* Runtime build and lifetime. A runtime never changes once built; a new snapshot
 * makes a new runtime, published by dp_ctx_publish(), and so does a change of DNS
 * answers (dp_runtime_rebuild), which shares the snapshot, router and certificates of
 * the runtime it replaces and redoes only the addresses and balancers. The last
 * reference may go on a worker thread, so a runtime is a few large blocks (the
 * snapshot's arena, one array of addresses, the router's and the TLS table's) and frees
 * in a couple of ms even with 100k routes. */
#include "dp_runtime.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dp_balancer.h"
#include "dp_dns.h"
#include "dp_plugins.h"
#include "dp_router.h"
#include "dp_tls.h"
#include "st_entity.h"
#include "st_err.h"
#include "st_log.h"
#include "st_snapshot.h"
#include "st_util.h"

/* What a snapshot alone decides, shared by the runtimes built from it. */
struct rt_base {
    atomic_int refs;
    struct st_snapshot *snap;
    struct dp_router *router;
    struct dp_tls_certs *certs; /* server contexts by SNI */
    struct dp_plugins *plugins; /* NULL: no plugin enabled (issue 18) */
};

struct dp_runtime {
    atomic_int refs;
    struct rt_base *base;
    const struct st_snapshot *snap;        /* base->snap */
    struct dp_service_ep *eps;             /* one per service */
    const struct dp_service_ep **route_ep; /* one per route: its service's endpoint */
    struct sockaddr_storage *addrs;        /* every service's addresses, one block */
    struct dp_balancer **bals;             /* one per upstream */
};

static void
base_unref(struct rt_base *b)
{
    if (b == NULL || atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) != 1) {
        return;
    }
    dp_tls_certs_free(b->certs);
    dp_plugins_free(b->plugins);
    dp_router_free(b->router);
    st_snapshot_free(b->snap);
    free(b);
}

static void
runtime_free(struct dp_runtime *rt)
{
    if (rt->eps != NULL) {
        for (size_t i = 0; i < rt->snap->n_services; i++) {
            dp_tls_ctx_unref(rt->eps[i].tls);
        }
    }
    for (size_t i = 0; rt->bals != NULL && i < rt->snap->n_upstreams; i++) {
        dp_balancer_unref(rt->bals[i]);
    }
    free(rt->bals);
    free(rt->addrs);
    free(rt->eps);
    free(rt->route_ep);
    base_unref(rt->base);
    free(rt);
}

/* ---------------------------------------------------------------- building */

/* A string-keyed table for one build (open addressing, never shrinks): the hosts
 * already resolved and the upstream TLS settings already made, so that 100k services
 * on a few hosts cost a few lookups, not 100k. */
struct memo_ent {
    char *key;              /* NULL: free slot */
    size_t off, n;          /* host: its addresses in the pool, [off, off + n) */
    int rc;                 /* host: dp_dns_get's error, 0: none */
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

/* One build's state: the DNS cache it reads, the runtime it replaces, and the memos that
 * make each host, TLS setting and upstream name cost one lookup however many services
 * name it. */
struct build {
    struct dp_runtime *rt;
    const struct dp_runtime *prev;
    bool rebuild;       /* prev has rt's snapshot: its TLS contexts are taken as they are */
    struct dp_dns *dns; /* NULL: IP literals only (unit tests) */
    struct memo hosts;  /* host -> its records in pool: [off, off + n), or rc */
    struct memo tlsm;   /* TLS settings -> context */
    struct memo ups;    /* upstream name -> its index + 1 */
    struct {
        struct dp_dns_rec *v; /* every host's records (the pool owns their names) */
        size_t n, cap;
    } pool;
    struct {
        struct sockaddr_storage *v; /* every service's addresses (one block once built) */
        size_t n, cap;
        size_t *off; /* per service: its first address in v */
    } a;
};

static void
pool_push(struct build *bd, const struct dp_dns_rec *rec)
{
    if (bd->pool.n == bd->pool.cap) {
        bd->pool.cap = bd->pool.cap ? bd->pool.cap * 2 : 256;
        bd->pool.v = st_xrealloc(bd->pool.v, bd->pool.cap * sizeof(*bd->pool.v));
    }
    bd->pool.v[bd->pool.n++] = *rec;
}

static void
addrs_push(struct build *bd, const struct sockaddr_storage *ss)
{
    if (bd->a.n == bd->a.cap) {
        bd->a.cap = bd->a.cap ? bd->a.cap * 2 : 1024;
        bd->a.v = st_xrealloc(bd->a.v, bd->a.cap * sizeof(*bd->a.v));
    }
    bd->a.v[bd->a.n++] = *ss;
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

/* host as an IP address (no DNS), into rec; false for a name. */
static bool
host_literal(const char *host, struct dp_dns_rec *rec)
{
    struct sockaddr_in *sin = (struct sockaddr_in *)&rec->addr;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&rec->addr;

    memset(rec, 0, sizeof(*rec));
    if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        return true;
    }
    if (strchr(host, '%') == NULL && inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        return true;
    }
    return false;
}

/* host's records, once per build: an IP literal as it is, a name from the DNS cache
 * (dp_dns_prepare asked for it already). The entry's rc says why it has none. */
static const struct memo_ent *
host_lookup(struct build *bd, const char *host)
{
    struct memo_ent *e;
    struct dp_dns_rec lit, *v = NULL;
    size_t n = 0;
    bool added;

    e = memo_get(&bd->hosts, host, &added);
    if (!added) {
        return e;
    }
    e->off = bd->pool.n;
    if (host_literal(host, &lit)) {
        pool_push(bd, &lit);
        e->n = 1;
        return e;
    }
    e->rc = bd->dns != NULL ? dp_dns_get(bd->dns, host, &v, &n) : -ST_ENOTFOUND;
    for (size_t k = 0; k < n; k++) {
        pool_push(bd, &v[k]); /* the pool takes the names */
    }
    free(v);
    e->n = n;
    return e;
}

static const char *
lookup_why(int rc)
{
    return rc == -EIO ? "the DNS lookup failed" : "no such name, or no address for it";
}

/* Resolves svc's host:port into ep's slice of bd->a (pointers fixed once it is whole);
 * a failure leaves the service without addresses (its sessions close with 503, "name
 * resolution failed") rather than refusing the whole configuration. An SRV answer
 * brings its own ports, as in Kong. */
static void
ep_resolve(struct build *bd, size_t i, struct dp_service_ep *ep)
{
    const struct st_service *svc = ep->svc;
    const struct memo_ent *e;

    bd->a.off[i] = bd->a.n;
    if (svc->host == NULL) {
        return;
    }
    e = host_lookup(bd, svc->host);
    if (e->rc != 0) {
        st_log(ST_LOG_WARN, 0, "service %s (%s): cannot resolve '%s': %s", svc->id,
               svc->name ? svc->name : "-", svc->host, lookup_why(e->rc));
        return;
    }
    for (size_t k = 0; k < e->n; k++) {
        struct sockaddr_storage ss = bd->pool.v[e->off + k].addr;

        if (bd->pool.v[e->off + k].weight == 0) { /* not an SRV record: the service's port */
            sa_set_port(&ss, svc->port);
        }
        addrs_push(bd, &ss);
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
ep_tls(struct build *bd, size_t i, struct dp_service_ep *ep)
{
    const struct st_service *svc = ep->svc;
    struct memo *tlsm = &bd->tlsm;
    struct ssl_ctx_st *ctx = NULL;
    struct memo_ent *e;
    struct st_err err;
    char key[2048];
    bool added;

    if (svc->protocol != ST_PROTO_TLS) {
        return;
    }
    if (bd->rebuild) { /* the same snapshot: the same settings */
        ep->tls = bd->prev->eps[i].tls;
        if (ep->tls != NULL) {
            dp_tls_ctx_ref(ep->tls);
        }
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

/* prev's balancer of upstream id, or NULL. */
static struct dp_balancer *
balancer_prev(const struct dp_runtime *prev, const char *id)
{
    size_t lo = 0, hi = prev != NULL ? prev->snap->n_upstreams : 0;

    while (lo < hi) { /* a snapshot's lists are sorted by id */
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(prev->snap->upstreams[mid].id, id);

        if (c == 0) {
            return prev->bals[mid];
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return NULL;
}

/* Appends tg's peers to *specs: one per address of its host (an SRV record brings its
 * port and weight, a zero target weight still disables the target). */
static size_t
target_peers(struct build *bd, const struct st_upstream *up, const struct st_target *tg,
             struct dp_peer_spec **specs, size_t n, size_t *cap)
{
    const struct memo_ent *e;
    char host[512];
    uint16_t port;

    if (!target_split(tg->target, host, sizeof(host), &port)) {
        return n;
    }
    e = host_lookup(bd, host);
    if (e->rc != 0) {
        st_log(ST_LOG_WARN, 0, "upstream %s: target %s: cannot resolve '%s': %s", up->name,
               tg->target, host, lookup_why(e->rc));
        return n;
    }
    for (size_t k = 0; k < e->n; k++) {
        const struct dp_dns_rec *r = &bd->pool.v[e->off + k];
        struct dp_peer_spec *sp;

        if (n == *cap) {
            *cap *= 2;
            *specs = st_xrealloc(*specs, *cap * sizeof(**specs));
        }
        sp = &(*specs)[n++];
        *sp = (struct dp_peer_spec){r->addr, tg->weight, tg->target, r->name};
        if (r->weight > 0) {
            sp->weight = tg->weight > 0 ? r->weight : 0;
        } else {
            sa_set_port(&sp->addr, port);
        }
    }
    return n;
}

/* Each upstream's balancer over its targets' addresses. A target whose name does not
 * resolve is left out, with a warning (its health reads DNS_ERROR). An upstream whose
 * settings and peers did not change keeps prev's balancer; one that changed gets a new
 * balancer that keeps the health of the peers it still has. */
static void
balancers_build(struct build *bd)
{
    struct dp_runtime *rt = bd->rt;
    const struct st_snapshot *snap = rt->snap;
    size_t cap = snap->n_targets + 1;
    struct dp_peer_spec *specs = st_xcalloc(cap, sizeof(*specs));
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
        struct dp_balancer *old = balancer_prev(bd->prev, up->id);
        size_t n = 0;
        uint64_t sig;

        for (size_t t1 = first[u]; t1 != 0; t1 = next[t1 - 1]) {
            n = target_peers(bd, up, &snap->targets[t1 - 1], &specs, n, &cap);
        }
        sig = dp_balancer_sig(up, specs, n);
        rt->bals[u] = old != NULL && dp_balancer_get_sig(old) == sig
                          ? dp_balancer_ref(old)
                          : dp_balancer_new(up, specs, n, sig, old);
    }
    free(specs);
    free(first);
    free(next);
}

/* The index + 1 of the upstream named host, or 0. */
static size_t
upstream_named(struct build *bd, const char *host)
{
    const struct st_snapshot *snap = bd->rt->snap;
    bool added;

    if (host == NULL || snap->n_upstreams == 0) {
        return 0;
    }
    if (bd->ups.n == 0) {
        for (size_t u = 0; u < snap->n_upstreams; u++) {
            memo_get(&bd->ups, snap->upstreams[u].name, &added)->off = u + 1;
        }
    }
    return memo_get(&bd->ups, host, &added)->off;
}

/* Hands the DNS cache every name this build will read (services' hosts that name no
 * upstream, targets' hosts), so that new names are asked all at once. */
static void
dns_prepare(struct build *bd)
{
    const struct st_snapshot *snap = bd->rt->snap;
    const char **names = st_xcalloc(snap->n_services + snap->n_targets + 1, sizeof(*names));
    char **owned = st_xcalloc(snap->n_targets + 1, sizeof(*owned));
    size_t n = 0, n_owned = 0;
    struct dp_dns_rec lit;

    for (size_t i = 0; i < snap->n_services; i++) {
        const struct st_service *svc = &snap->services[i];

        if (svc->enabled && svc->host != NULL && upstream_named(bd, svc->host) == 0 &&
            !host_literal(svc->host, &lit)) {
            names[n++] = svc->host;
        }
    }
    for (size_t t = 0; t < snap->n_targets; t++) {
        char host[512];
        uint16_t port;

        if (target_split(snap->targets[t].target, host, sizeof(host), &port) &&
            !host_literal(host, &lit)) {
            names[n++] = owned[n_owned++] = st_xstrdup(host);
        }
    }
    dp_dns_prepare(bd->dns, names, n);
    for (size_t i = 0; i < n_owned; i++) {
        free(owned[i]);
    }
    free(owned);
    free(names);
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

/* Fills rt's balancers, service endpoints and route table for base's snapshot. */
static void
endpoints_build(struct build *bd)
{
    struct dp_runtime *rt = bd->rt;
    const struct st_snapshot *snap = rt->snap;

    if (bd->dns != NULL) {
        dns_prepare(bd);
    }
    rt->eps = st_xcalloc(snap->n_services ? snap->n_services : 1, sizeof(*rt->eps));
    bd->a.off = st_xcalloc(snap->n_services + 1, sizeof(*bd->a.off));
    balancers_build(bd);
    for (size_t i = 0; i < snap->n_services; i++) {
        size_t u;

        rt->eps[i].svc = &snap->services[i];
        bd->a.off[i] = bd->a.n;
        if (!snap->services[i].enabled) {
            continue;
        }
        /* a host naming an upstream is balanced over its targets (Kong: the service port
         * is then ignored); any other host resolves */
        u = upstream_named(bd, snap->services[i].host);
        if (u > 0) {
            rt->eps[i].bal = rt->bals[u - 1];
        } else {
            ep_resolve(bd, i, &rt->eps[i]);
        }
        ep_tls(bd, i, &rt->eps[i]);
    }
    rt->addrs = bd->a.n > 0 ? st_xrealloc(bd->a.v, bd->a.n * sizeof(*bd->a.v)) : NULL;
    if (bd->a.n == 0) {
        free(bd->a.v);
    }
    for (size_t i = 0; i < snap->n_services; i++) {
        rt->eps[i].addrs = rt->eps[i].n_addrs > 0 ? rt->addrs + bd->a.off[i] : NULL;
    }
    free(bd->a.off);
    for (size_t k = 0; k < bd->pool.n; k++) {
        free(bd->pool.v[k].name);
    }
    free(bd->pool.v);
    memo_fini(&bd->hosts);
    memo_fini(&bd->tlsm);
    memo_fini(&bd->ups);
    rt->route_ep = st_xcalloc(snap->n_routes ? snap->n_routes : 1, sizeof(*rt->route_ep));
    for (size_t i = 0; i < snap->n_routes; i++) {
        rt->route_ep[i] = route_ep_find(rt, &snap->routes[i]);
    }
}

static struct dp_runtime *
runtime_alloc(struct rt_base *base)
{
    struct dp_runtime *rt = st_xcalloc(1, sizeof(*rt));

    atomic_init(&rt->refs, 1);
    rt->base = base;
    rt->snap = base->snap;
    return rt;
}

int
dp_runtime_new(struct st_snapshot *snap, const struct dp_runtime *prev, struct dp_dns *dns,
               struct dp_runtime **out, struct st_err *err)
{
    struct rt_base *base = st_xcalloc(1, sizeof(*base));
    struct build bd = {.prev = prev, .dns = dns};
    int rc;

    atomic_init(&base->refs, 1);
    base->snap = snap;
    rc = dp_tls_certs_new(snap, &base->certs, err);
    if (rc != 0) {
        base_unref(base);
        return rc;
    }
    base->router = dp_router_new(snap->routes, snap->n_routes);
    if (base->router == NULL) {
        base_unref(base);
        return st_err_set(err, -ENOMEM, NULL, "out of memory building the router");
    }
    rc = dp_plugins_new(snap, &base->plugins, err);
    if (rc != 0) {
        base_unref(base);
        return rc;
    }
    bd.rt = runtime_alloc(base);
    endpoints_build(&bd);
    *out = bd.rt;
    return 0;
}

struct dp_runtime *
dp_runtime_rebuild(const struct dp_runtime *prev, struct dp_dns *dns)
{
    struct build bd = {.prev = prev, .rebuild = true, .dns = dns};

    atomic_fetch_add_explicit(&prev->base->refs, 1, memory_order_relaxed);
    bd.rt = runtime_alloc(prev->base);
    endpoints_build(&bd);
    return bd.rt;
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
    ssize_t i = dp_router_match(rt->base->router, k);

    if (i < 0 || rt->route_ep[i] == NULL) {
        return -ST_ENOTFOUND;
    }
    *route = &rt->snap->routes[i];
    *ep = rt->route_ep[i];
    return 0;
}

bool
dp_runtime_has_plugins(const struct dp_runtime *rt)
{
    return rt->base->plugins != NULL;
}

const struct dp_ipr *
dp_runtime_ipr(const struct dp_runtime *rt, const struct st_route *route, unsigned proto)
{
    const struct dp_plugins *p = rt->base->plugins;

    return p == NULL ? NULL : dp_plugins_ipr(p, (size_t)(route - rt->snap->routes), proto);
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
    return dp_tls_certs_select(rt->base->certs, sni);
}
