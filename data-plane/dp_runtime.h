/* The immutable runtime the workers serve from: a verified snapshot, its router and
 * the services' resolved addresses. Built on the sync thread (DNS happens there, never
 * on a worker), refcounted with atomics: a session refs the runtime at accept and
 * unrefs it at free, so sessions in flight keep the runtime they started with. */
#ifndef STRAIT_DP_RUNTIME_H
#define STRAIT_DP_RUNTIME_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct st_err;
struct st_route;
struct st_service;
struct st_snapshot;
struct dp_runtime;

/* A service as the workers connect to it. */
struct dp_upstream {
    const struct st_service *svc;
    struct sockaddr_storage *addrs; /* resolved at build; n_addrs 0: resolution failed */
    size_t n_addrs;
};

/* Builds a runtime from a parsed snapshot, resolving every enabled service's host.
 * Always takes ownership of snap. Returns 0 and *out with one reference, or a negative
 * code with err filled. */
int dp_runtime_new(struct st_snapshot *snap, struct dp_runtime **out, struct st_err *err);

struct dp_runtime *dp_runtime_ref(struct dp_runtime *rt);

/* Drops a reference; the last one frees the runtime. NULL is a no-op. */
void dp_runtime_unref(struct dp_runtime *rt);

const char *dp_runtime_hash(const struct dp_runtime *rt);
uint64_t dp_runtime_version(const struct dp_runtime *rt);

/* Routes a plain connection. Returns 0 with *route and *up set (both valid while the
 * caller holds its reference), or -ST_ENOTFOUND. */
int dp_runtime_match(const struct dp_runtime *rt, const struct sockaddr *client,
                     const struct sockaddr *local, const struct st_route **route,
                     const struct dp_upstream **up);

#endif
