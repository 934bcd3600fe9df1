/* Stream routing: a list of routes sorted once by priority (Kong's
 * traditional_compatible rule, DESIGN.md "Data plane"), then created_at and id,
 * scanned in order; the first match wins. A route's protocols pick the listener kind
 * (tcp: plain listeners; tls, tls_passthrough: ssl listeners). */
#include "dp_router.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "st_entity.h"

struct router_entry {
    const struct st_route *route;
    size_t index;
    uint64_t prio;
};

struct dp_router {
    struct router_entry *v;
    size_t n;
};

static unsigned
list_bits(const struct st_endpoint *e, size_t n)
{
    unsigned bits = 0;

    for (size_t i = 0; i < n; i++) {
        if (e[i].has_ip) {
            bits |= e[i].ip.is_host ? DP_ROUTER_BIT_IP : DP_ROUTER_BIT_CIDR;
        }
        if (e[i].has_port) {
            bits |= DP_ROUTER_BIT_PORT;
        }
    }
    return bits;
}

uint64_t
dp_router_priority(const struct st_route *r)
{
    uint64_t prio = 0;

    if (r->n_snis > 0 || (r->n_sources > 0 && r->n_destinations > 0)) {
        prio = DP_ROUTER_PRIO_TOP;
    }
    prio |= (uint64_t)list_bits(r->sources, r->n_sources) << 4;
    prio |= list_bits(r->destinations, r->n_destinations);
    return prio;
}

static int
entry_cmp(const void *pa, const void *pb)
{
    const struct router_entry *a = pa;
    const struct router_entry *b = pb;

    if (a->prio != b->prio) {
        return a->prio > b->prio ? -1 : 1;
    }
    if (a->route->created_at_ms != b->route->created_at_ms) {
        return a->route->created_at_ms < b->route->created_at_ms ? -1 : 1;
    }
    return strcmp(a->route->id, b->route->id);
}

static bool
route_is_routable(const struct st_route *r)
{
    return r->service != NULL && r->service->enabled &&
           (r->protocols & (ST_PROTO_TCP | ST_PROTO_TLS | ST_PROTO_TLS_PASSTHROUGH)) != 0;
}

struct dp_router *
dp_router_new(const struct st_route *routes, size_t n)
{
    struct dp_router *r = calloc(1, sizeof(*r));

    if (r == NULL) {
        return NULL;
    }
    r->v = calloc(n ? n : 1, sizeof(*r->v));
    if (r->v == NULL) {
        free(r);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        if (!route_is_routable(&routes[i])) {
            continue;
        }
        r->v[r->n].route = &routes[i];
        r->v[r->n].index = i;
        r->v[r->n].prio = dp_router_priority(&routes[i]);
        r->n++;
    }
    qsort(r->v, r->n, sizeof(*r->v), entry_cmp);
    return r;
}

void
dp_router_free(struct dp_router *r)
{
    if (r == NULL) {
        return;
    }
    free(r->v);
    free(r);
}

size_t
dp_router_size(const struct dp_router *r)
{
    return r->n;
}

static uint16_t
sa_port(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET6) {
        return ntohs(((const struct sockaddr_in6 *)(const void *)sa)->sin6_port);
    }
    return ntohs(((const struct sockaddr_in *)(const void *)sa)->sin_port);
}

/* An empty list matches anything; otherwise one entry must match, and an entry
 * matches when its ip (if any) and its port (if any) both do. */
static bool
list_match(const struct st_endpoint *e, size_t n, const struct sockaddr *sa)
{
    if (n == 0) {
        return true;
    }
    for (size_t i = 0; i < n; i++) {
        if (e[i].has_port && e[i].port != sa_port(sa)) {
            continue;
        }
        if (e[i].has_ip && !st_cidr_match(&e[i].ip, sa)) {
            continue;
        }
        return true;
    }
    return false;
}

bool
dp_router_sni_match(const char *pattern, const char *sni)
{
    size_t pl = strlen(pattern), sl = strlen(sni);

    if (pl > 0 && pattern[pl - 1] == '.') {
        pl--; /* a route's FQDN form "a.test." names a.test (Kong #7550) */
    }
    if (pl == 1 && pattern[0] == '*') {
        return true;
    }
    if (pl >= 2 && pattern[0] == '*' && pattern[1] == '.') {
        /* "*.x": sni ends with ".x" and has at least one label before it */
        return sl > pl - 1 && strncasecmp(sni + sl - (pl - 1), pattern + 1, pl - 1) == 0;
    }
    if (pl >= 2 && pattern[pl - 1] == '*' && pattern[pl - 2] == '.') {
        /* "x.*": sni starts with "x." and has at least one label after it */
        return sl > pl - 1 && strncasecmp(sni, pattern, pl - 1) == 0;
    }
    return sl == pl && strncasecmp(sni, pattern, pl) == 0;
}

static bool
snis_match(const struct st_route *rt, const char *sni)
{
    if (rt->n_snis == 0) {
        return true;
    }
    if (sni == NULL) {
        return false; /* DESIGN.md: an SNI-less client never matches an SNI route */
    }
    for (size_t i = 0; i < rt->n_snis; i++) {
        if (dp_router_sni_match(rt->snis[i], sni)) {
            return true;
        }
    }
    return false;
}

ssize_t
dp_router_match(const struct dp_router *r, const struct dp_router_key *k)
{
    unsigned kinds = k->tls ? (ST_PROTO_TLS | ST_PROTO_TLS_PASSTHROUGH) : ST_PROTO_TCP;

    for (size_t i = 0; i < r->n; i++) {
        const struct st_route *rt = r->v[i].route;

        if ((rt->protocols & kinds) != 0 && list_match(rt->sources, rt->n_sources, k->client) &&
            list_match(rt->destinations, rt->n_destinations, k->local) &&
            (!k->tls || snis_match(rt, k->sni))) {
            return (ssize_t)r->v[i].index;
        }
    }
    return -1;
}
