/* Stream routing: routes ranked once by priority (Kong's traditional_compatible rule,
 * DESIGN.md "Data plane"), then created_at and id; the first match in rank order wins.
 * A route's protocols pick the listener kind (tcp: plain listeners; tls,
 * tls_passthrough: ssl listeners).
 *
 * So that the cost per connection stays flat with many routes, each route sits in one
 * of three rank-ordered lists: by destination port (every destination entry names a
 * port), by exact SNI (every sni is an exact name), or the rest. A match merges the
 * connection's port bucket, its SNI bucket and the rest in rank order and checks
 * candidates fully; a route in no bucket of the connection cannot match it. */
#include "dp_router.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "st_addr.h"
#include "st_entity.h"

struct router_entry {
    const struct st_route *route;
    size_t index;
    uint64_t prio;
};

struct port_key {
    uint16_t port;
    uint32_t rank;
};

struct sni_key {
    char *name; /* lower-case, without a final dot */
    uint32_t rank;
};

struct dp_router {
    struct router_entry *v; /* rank order */
    size_t n;
    struct port_key *ports; /* by (port, rank) */
    size_t n_ports;
    struct sni_key *snis; /* by (name, rank) */
    size_t n_snis;
    uint32_t *rest; /* ranks, ascending */
    size_t n_rest;
    char *names; /* the snis' names, one after the other (one block: a cheap free) */
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

static int
port_cmp(const void *pa, const void *pb)
{
    const struct port_key *a = pa, *b = pb;

    if (a->port != b->port) {
        return a->port < b->port ? -1 : 1;
    }
    return a->rank < b->rank ? -1 : (a->rank > b->rank);
}

static int
sni_cmp(const void *pa, const void *pb)
{
    const struct sni_key *a = pa, *b = pb;
    int c = strcmp(a->name, b->name);

    if (c != 0) {
        return c;
    }
    return a->rank < b->rank ? -1 : (a->rank > b->rank);
}

/* Every destination names a port (and there is one). */
static bool
ports_indexable(const struct st_route *r)
{
    size_t i = 0;

    while (i < r->n_destinations && r->destinations[i].has_port) {
        i++;
    }
    return i > 0 && i == r->n_destinations;
}

/* Every sni is an exact name (and there is one). */
static bool
snis_indexable(const struct st_route *r)
{
    size_t i = 0;

    while (i < r->n_snis && strchr(r->snis[i], '*') == NULL) {
        i++;
    }
    return i > 0 && i == r->n_snis;
}

/* s lower-cased, without a final dot, into out (room for strlen(s) + 1). */
static char *
sni_norm(const char *s, char *out)
{
    size_t n = strlen(s);

    if (n > 0 && s[n - 1] == '.') {
        n--;
    }
    for (size_t i = 0; i < n; i++) {
        out[i] = (char)(s[i] >= 'A' && s[i] <= 'Z' ? s[i] - 'A' + 'a' : s[i]);
    }
    out[n] = '\0';
    return out;
}

/* Puts every ranked route into its one list. Returns 0 or -1 (out of memory). */
static int
router_index(struct dp_router *r)
{
    size_t np = 0, ns = 0, room = 0;
    char *p;

    for (size_t i = 0; i < r->n; i++) {
        const struct st_route *rt = r->v[i].route;

        if (ports_indexable(rt)) {
            np += rt->n_destinations;
        } else if (snis_indexable(rt)) {
            ns += rt->n_snis;
            for (size_t j = 0; j < rt->n_snis; j++) {
                room += strlen(rt->snis[j]) + 1;
            }
        }
    }
    r->ports = calloc(np ? np : 1, sizeof(*r->ports));
    r->snis = calloc(ns ? ns : 1, sizeof(*r->snis));
    r->rest = calloc(r->n ? r->n : 1, sizeof(*r->rest));
    r->names = p = malloc(room + 1);
    if (r->ports == NULL || r->snis == NULL || r->rest == NULL || r->names == NULL) {
        return -1;
    }
    for (size_t i = 0; i < r->n; i++) {
        const struct st_route *rt = r->v[i].route;
        uint32_t rank = (uint32_t)i;

        if (ports_indexable(rt)) {
            for (size_t j = 0; j < rt->n_destinations; j++) {
                /* a route listing one port twice appears once per entry: harmless,
                 * the merge skips a rank already checked */
                r->ports[r->n_ports++] = (struct port_key){rt->destinations[j].port, rank};
            }
        } else if (snis_indexable(rt)) {
            for (size_t j = 0; j < rt->n_snis; j++) {
                char *name = sni_norm(rt->snis[j], p);

                p += strlen(name) + 1;
                r->snis[r->n_snis++] = (struct sni_key){name, rank};
            }
        } else {
            r->rest[r->n_rest++] = rank;
        }
    }
    qsort(r->ports, r->n_ports, sizeof(*r->ports), port_cmp);
    qsort(r->snis, r->n_snis, sizeof(*r->snis), sni_cmp);
    return 0;
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
    if (router_index(r) != 0) {
        dp_router_free(r);
        return NULL;
    }
    return r;
}

void
dp_router_free(struct dp_router *r)
{
    if (r == NULL) {
        return;
    }
    free(r->names);
    free(r->snis);
    free(r->ports);
    free(r->rest);
    free(r->v);
    free(r);
}

size_t
dp_router_size(const struct dp_router *r)
{
    return r->n;
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
        if (e[i].has_port && e[i].port != st_addr_port(sa)) {
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

static bool
entry_matches(const struct st_route *rt, const struct dp_router_key *k, unsigned kinds)
{
    return (rt->protocols & kinds) != 0 && list_match(rt->sources, rt->n_sources, k->client) &&
           list_match(rt->destinations, rt->n_destinations, k->local) &&
           (!k->tls || snis_match(rt, k->sni));
}

/* First index in ports[] with port >= p. */
static size_t
ports_lower(const struct dp_router *r, uint16_t p)
{
    size_t lo = 0, hi = r->n_ports;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (r->ports[mid].port < p) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

/* First index in snis[] with name >= sni. */
static size_t
snis_lower(const struct dp_router *r, const char *sni)
{
    size_t lo = 0, hi = r->n_snis;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (strcmp(r->snis[mid].name, sni) < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

ssize_t
dp_router_match(const struct dp_router *r, const struct dp_router_key *k)
{
    unsigned kinds = k->tls ? (ST_PROTO_TLS | ST_PROTO_TLS_PASSTHROUGH) : ST_PROTO_TCP;
    uint16_t port = st_addr_port(k->local);
    size_t pi = ports_lower(r, port), si = r->n_snis, ri = 0;
    uint32_t last = UINT32_MAX;

    if (k->tls && k->sni != NULL) {
        si = snis_lower(r, k->sni);
    }
    /* Merge the three rank-ordered candidate lists; the lowest rank that matches wins. */
    for (;;) {
        uint32_t rank = UINT32_MAX;
        int from = -1;

        if (pi < r->n_ports && r->ports[pi].port == port && r->ports[pi].rank < rank) {
            rank = r->ports[pi].rank;
            from = 0;
        }
        if (si < r->n_snis && strcmp(r->snis[si].name, k->sni) == 0 && r->snis[si].rank < rank) {
            rank = r->snis[si].rank;
            from = 1;
        }
        if (ri < r->n_rest && r->rest[ri] < rank) {
            rank = r->rest[ri];
            from = 2;
        }
        if (from < 0) {
            return -1;
        }
        if (from == 0) {
            pi++;
        } else if (from == 1) {
            si++;
        } else {
            ri++;
        }
        if (rank != last && entry_matches(r->v[rank].route, k, kinds)) {
            return (ssize_t)r->v[rank].index;
        }
        last = rank;
    }
}
