/* Runtime build and lifetime. A runtime never changes once built; a new snapshot
 * makes a new runtime, published by dp_ctx_publish(). */
#include "dp_runtime.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

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
    struct dp_upstream *ups;             /* one per service */
    const struct dp_upstream **route_up; /* one per route: its service's upstream */
    struct dp_tls_certs *certs;          /* server contexts by SNI */
};

static void
runtime_free(struct dp_runtime *rt)
{
    if (rt->ups != NULL) {
        for (size_t i = 0; i < rt->snap->n_services; i++) {
            free(rt->ups[i].addrs);
            SSL_CTX_free(rt->ups[i].tls);
        }
    }
    dp_tls_certs_free(rt->certs);
    free(rt->ups);
    free(rt->route_up);
    dp_router_free(rt->router);
    st_snapshot_free(rt->snap);
    free(rt);
}

/* Resolves host:port into up->addrs; a failure leaves the service without addresses
 * (its sessions close with 503) rather than refusing the whole configuration. */
static void
upstream_resolve(struct dp_upstream *up)
{
    const struct st_service *svc = up->svc;
    struct addrinfo hints, *res = NULL, *ai;
    char port[8];
    size_t n = 0;
    int rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    (void)st_snprintf(port, sizeof(port), "%u", (unsigned)svc->port);
    rc = getaddrinfo(svc->host, port, &hints, &res);
    if (rc != 0) {
        st_log(ST_LOG_WARN, 0, "service %s (%s): cannot resolve '%s': %s", svc->id,
               svc->name ? svc->name : "-", svc->host, gai_strerror(rc));
        return;
    }
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        n++;
    }
    up->addrs = st_xcalloc(n, sizeof(*up->addrs));
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        if (ai->ai_addrlen <= sizeof(*up->addrs)) {
            memcpy(&up->addrs[up->n_addrs++], ai->ai_addr, ai->ai_addrlen);
        }
    }
    freeaddrinfo(res);
}

/* A `tls` service's client context; a failure leaves the service unusable (its
 * sessions close with 502) rather than refusing the whole configuration. */
static void
upstream_tls(struct dp_upstream *up)
{
    const struct st_service *svc = up->svc;
    struct st_err err;

    if (svc->protocol != ST_PROTO_TLS) {
        return;
    }
    memset(&err, 0, sizeof(err));
    if (dp_tls_upstream_ctx_new(svc, &up->tls, &err) != 0) {
        st_log(ST_LOG_ERR, 0, "service %s (%s): cannot set up TLS to the upstream: %s", svc->id,
               svc->name ? svc->name : "-", err.msg);
        up->tls = NULL;
    }
}

static const struct dp_upstream *
route_upstream(const struct dp_runtime *rt, const struct st_route *r)
{
    const struct st_snapshot *snap = rt->snap;

    if (r->service == NULL) {
        return NULL;
    }
    if (r->service >= snap->services && r->service < snap->services + snap->n_services) {
        return &rt->ups[r->service - snap->services];
    }
    for (size_t i = 0; i < snap->n_services; i++) {
        if (strcmp(snap->services[i].id, r->service->id) == 0) {
            return &rt->ups[i];
        }
    }
    return NULL;
}

int
dp_runtime_new(struct st_snapshot *snap, struct dp_runtime **out, struct st_err *err)
{
    struct dp_runtime *rt = st_xcalloc(1, sizeof(*rt));
    int rc;

    atomic_init(&rt->refs, 1);
    rt->snap = snap;
    rt->ups = st_xcalloc(snap->n_services ? snap->n_services : 1, sizeof(*rt->ups));
    for (size_t i = 0; i < snap->n_services; i++) {
        rt->ups[i].svc = &snap->services[i];
        if (snap->services[i].enabled) {
            upstream_resolve(&rt->ups[i]);
            upstream_tls(&rt->ups[i]);
        }
    }
    rc = dp_tls_certs_new(snap, &rt->certs, err);
    if (rc != 0) {
        runtime_free(rt);
        return rc;
    }
    rt->route_up = st_xcalloc(snap->n_routes ? snap->n_routes : 1, sizeof(*rt->route_up));
    for (size_t i = 0; i < snap->n_routes; i++) {
        rt->route_up[i] = route_upstream(rt, &snap->routes[i]);
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
                 const struct st_route **route, const struct dp_upstream **up)
{
    ssize_t i = dp_router_match(rt->router, k);

    if (i < 0 || rt->route_up[i] == NULL) {
        return -ST_ENOTFOUND;
    }
    *route = &rt->snap->routes[i];
    *up = rt->route_up[i];
    return 0;
}

SSL_CTX *
dp_runtime_server_ctx(const struct dp_runtime *rt, const char *sni)
{
    return dp_tls_certs_select(rt->certs, sni);
}
