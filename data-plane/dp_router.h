/* The stream router: an index over a snapshot's routes, matched on the client
 * (sources) and local (destinations) addresses and the ClientHello's SNI, with Kong's
 * traditional_compatible priority and deterministic ties. Built on the sync thread, read-only
 * afterwards, so any number of workers may match concurrently. */
#ifndef STRAIT_DP_ROUTER_H
#define STRAIT_DP_ROUTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

struct st_route;
struct dp_router;

/* Bit set above the field bits when a route has snis, or both sources and destinations
 * (Kong's STREAM_SNI_BIT). */
#define DP_ROUTER_PRIO_TOP (1ull << 61)

/* Kong's per-list weights, OR-ed over a list's entries. */
#define DP_ROUTER_BIT_IP   8u
#define DP_ROUTER_BIT_PORT 4u
#define DP_ROUTER_BIT_CIDR 1u

/* Kong's stream_get_priority() for one route. */
uint64_t dp_router_priority(const struct st_route *r);

/* What a connection is matched on. */
struct dp_router_key {
    const struct sockaddr *client; /* against sources */
    const struct sockaddr *local;  /* against destinations */
    const char *sni;               /* lower-case, no final dot; NULL: none */
    bool tls;                      /* accepted on an ssl listener */
};

/* Builds a router over routes[0..n). Routes without an enabled service are left out.
 * routes must outlive the router. Returns NULL when memory is exhausted. Free with
 * dp_router_free(). */
struct dp_router *dp_router_new(const struct st_route *routes, size_t n);

void dp_router_free(struct dp_router *r);

/* Number of routes that entered the router. */
size_t dp_router_size(const struct dp_router *r);

/* Matches a connection: on a plain listener among `tcp` routes, on an ssl listener among
 * `tls` and `tls_passthrough` routes. A route with snis matches only a client whose SNI
 * is one of them (exact, `*.x` = any name ending in ".x", `x.*` = any name starting with
 * "x.", across several labels), so a client without SNI matches only routes by
 * sources and destinations. Returns the index into the routes array given to
 * dp_router_new(), or -1 when no route matches. */
ssize_t dp_router_match(const struct dp_router *r, const struct dp_router_key *k);

/* True when the route name `pattern` (exact, "*.x", "x.*" or "*") covers sni. */
bool dp_router_sni_match(const char *pattern, const char *sni);

#endif
