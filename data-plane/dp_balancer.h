/* An upstream's balancer: its targets' addresses (one peer per address, each with its
 * target's weight) and Kong's algorithms over them, picked once per connection attempt
 * by any worker. Built on the sync thread with the runtime; shared read-only by every
 * worker except the per-peer counters (atomics), and refcounted apart from the runtime
 * so that a session that dropped its runtime can still give its peer back. A pick costs
 * O(1) or O(log n) and allocates nothing (docs/balancing.md). */
#ifndef STRAIT_DP_BALANCER_H
#define STRAIT_DP_BALANCER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct st_upstream;
struct dp_balancer;

/* One address of a target, as dp_runtime resolved it. */
struct dp_peer_spec {
    struct sockaddr_storage addr; /* with the target's port */
    uint32_t weight;
    const char *target; /* "host:port" as configured (the snapshot's string) */
};

/* What a connection offers to hash on (consistent-hashing). */
struct dp_balancer_key {
    const struct sockaddr *client; /* hash_on "ip" */
};

/* The peers a session already tried (a retry goes elsewhere while others remain). */
#define DP_BALANCER_TRIED_MAX 8

struct dp_balancer_tried {
    uint32_t idx[DP_BALANCER_TRIED_MAX];
    unsigned n;
};

/* Builds u's balancer over n peers (copied). Returns NULL only without memory. */
struct dp_balancer *dp_balancer_new(const struct st_upstream *u, const struct dp_peer_spec *peers,
                                    size_t n);

struct dp_balancer *dp_balancer_ref(struct dp_balancer *b);
/* Drops a reference; the last frees. NULL is a no-op. */
void dp_balancer_unref(struct dp_balancer *b);

/* The upstream's name (for logs). */
const char *dp_balancer_name(const struct dp_balancer *b);

/* Picks a peer for one connection attempt, avoiding those in *tried while another can
 * serve, and counts a live session on it (dp_balancer_release gives it back). Returns
 * the peer's index, or -1 when no peer can take connections (no targets, all weights
 * 0). Worker threads; no allocation, no lock. */
int dp_balancer_pick(struct dp_balancer *b, const struct dp_balancer_key *k,
                     struct dp_balancer_tried *tried);

/* The session on peer i ended, or its attempt failed. */
void dp_balancer_release(struct dp_balancer *b, int i);

/* A connect to peer i took connect_us (the latency algorithm's measure). */
void dp_balancer_observe(struct dp_balancer *b, int i, uint32_t connect_us);

const struct sockaddr *dp_balancer_addr(const struct dp_balancer *b, int i);
const char *dp_balancer_target(const struct dp_balancer *b, int i);
/* The name a tls service verifies peer i by: the upstream's host_header, else the
 * target's host (a name is also sent as SNI; an address is not). */
const char *dp_balancer_sni(const struct dp_balancer *b, int i);

/* Live sessions on peer i, from every worker (tests and the status listener). */
int64_t dp_balancer_active(const struct dp_balancer *b, int i);
size_t dp_balancer_size(const struct dp_balancer *b);

#endif
