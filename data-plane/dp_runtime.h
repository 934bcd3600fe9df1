/* The immutable runtime the workers serve from: a verified snapshot, its router and
 * the services' resolved addresses. Built on the sync thread or, when DNS answers
 * change, the DNS refresher's (never on a worker; names come from dp_dns's cache), refcounted with
 * atomics: a session refs the runtime at accept and unrefs it once proxying starts (or at free, if
 * it ends before), so sessions being routed and connected keep the runtime they started with, and
 * an established connection does not keep an old runtime alive. */
#ifndef STRAIT_DP_RUNTIME_H
#define STRAIT_DP_RUNTIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct st_err;
struct st_route;
struct st_service;
struct st_snapshot;
struct dp_router_key;
struct dp_runtime;
struct dp_balancer;
struct dp_dns;
struct ssl_ctx_st; /* OpenSSL's SSL_CTX */

/* A service as the workers connect to it: its resolved addresses and TLS client context.
 * (Not an `upstreams` entity: that is a balancer's set of targets.) */
struct dp_service_ep {
    const struct st_service *svc;
    struct dp_balancer *bal;        /* the upstream its host names (owned by the runtime), or NULL:
                                     * then addrs */
    struct sockaddr_storage *addrs; /* resolved at build; n_addrs 0: resolution failed */
    size_t n_addrs;
    struct ssl_ctx_st *tls; /* `tls` services: the client context (NULL: it could not be built) */
};

/* Builds a runtime from a parsed snapshot, resolving every enabled service's host and
 * every target through dns (NULL: IP addresses only). An upstream whose settings and
 * peers are what they were in prev (NULL: none) keeps prev's balancer, with its health
 * and live counts; one whose peers changed keeps the health of those it still has.
 * Always takes ownership of snap. Returns 0 and *out with one reference, or a negative
 * code with err filled. */
int dp_runtime_new(struct st_snapshot *snap, const struct dp_runtime *prev, struct dp_dns *dns,
                   struct dp_runtime **out, struct st_err *err);

/* A runtime like prev (its snapshot, router and certificates shared, not rebuilt) with
 * the addresses and balancers made again from dns's current answers. One reference. */
struct dp_runtime *dp_runtime_rebuild(const struct dp_runtime *prev, struct dp_dns *dns);

struct dp_runtime *dp_runtime_ref(struct dp_runtime *rt);

/* Drops a reference; the last one frees the runtime. NULL is a no-op. */
void dp_runtime_unref(struct dp_runtime *rt);

/* The references held now (tests: who keeps a runtime alive). */
int dp_runtime_refs(const struct dp_runtime *rt);

const char *dp_runtime_hash(const struct dp_runtime *rt);
uint64_t dp_runtime_version(const struct dp_runtime *rt);

/* Routes a connection (dp_router_match). Returns 0 with *route and *ep set (both valid
 * while the caller holds its reference), or -ST_ENOTFOUND. */
int dp_runtime_match(const struct dp_runtime *rt, const struct dp_router_key *k,
                     const struct st_route **route, const struct dp_service_ep **ep);

/* Whether rt's configuration has an enabled plugin: a session without asks nothing more. */
bool dp_runtime_has_plugins(const struct dp_runtime *rt);

/* The ip-restriction instance for sessions on route (one of rt's) of protocol proto (one
 * ST_PROTO_*), or NULL: with no plugin in the configuration, one NULL check (issue 18). */
struct dp_ipr;
const struct dp_ipr *dp_runtime_ipr(const struct dp_runtime *rt, const struct st_route *route,
                                    unsigned proto);

/* The snapshot rt was built from (valid while the caller holds its reference). */
const struct st_snapshot *dp_runtime_snapshot(const struct dp_runtime *rt);

/* The balancers, one per upstream (valid while the caller holds its reference). */
size_t dp_runtime_balancers(const struct dp_runtime *rt, struct dp_balancer *const **out);

/* The server context that terminates TLS for sni (NULL: none sent), chosen by
 * dp_tls_certs_select(); valid while the caller holds its reference. NULL only when
 * the process has no TLS set up (dp_tls_init not called: unit tests). */
struct ssl_ctx_st *dp_runtime_server_ctx(const struct dp_runtime *rt, const char *sni);

#endif
