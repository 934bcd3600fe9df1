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

/* An upstream's health checks as the DP runs them (its `healthchecks` record; times in
 * ms, 0 = off). */
enum dp_probe_type { DP_PROBE_TCP = 0, DP_PROBE_TLS, DP_PROBE_PAYLOAD };

struct dp_hc {
    /* active: probes from the DP's health thread */
    enum dp_probe_type probe; /* tcp and http: a connect; https: a TLS handshake; with
                               * tcp_send or tcp_expect: the payload exchange */
    int64_t timeout_ms;
    uint32_t concurrency;
    const char *https_sni; /* NULL: the target's host name */
    bool https_verify;
    const char *tcp_send, *tcp_expect; /* NULL: none */
    int64_t healthy_interval_ms, unhealthy_interval_ms;
    uint32_t active_successes, active_tcp_failures, active_timeouts;
    /* passive: what sessions report */
    uint32_t passive_successes, passive_tcp_failures, passive_timeouts;
    double threshold; /* % of the total weight that must be healthy (0: any) */
};

/* What a probe or a session reports of a peer. */
enum dp_health_event { DP_HEALTH_SUCCESS = 0, DP_HEALTH_TCP_FAILURE, DP_HEALTH_TIMEOUT };

/* One address of a target, as dp_runtime resolved it. */
struct dp_peer_spec {
    struct sockaddr_storage addr; /* with the target's port (an SRV record's: its own) */
    uint32_t weight;
    const char *target;   /* "host:port" as configured (the snapshot's string) */
    const char *srv_name; /* the SRV record's target name, NULL: not from SRV */
};

/* What a connection offers to hash on (consistent-hashing). */
struct dp_balancer_key {
    const struct sockaddr *client; /* hash_on "ip" */
    const char *sni;               /* hash_on "sni" (NULL: none sent) */
    uint16_t port;                 /* hash_on "port": the listener's (0: unknown) */
};

/* The peers a session already tried (a retry goes elsewhere while others remain). */
#define DP_BALANCER_TRIED_MAX 8

struct dp_balancer_tried {
    uint32_t idx[DP_BALANCER_TRIED_MAX];
    unsigned n;
};

/* Builds u's balancer over n peers (copied); sig identifies u's settings and peers (a
 * runtime reuses a balancer whose sig has not changed, with its health and counts).
 * A peer also in prev (the upstream's previous balancer, NULL: none; same address,
 * port and target) starts with prev's health, counters and latency. */
struct dp_balancer *dp_balancer_new(const struct st_upstream *u, const struct dp_peer_spec *peers,
                                    size_t n, uint64_t sig, const struct dp_balancer *prev);

/* The signature dp_balancer_new wants for u over peers. */
uint64_t dp_balancer_sig(const struct st_upstream *u, const struct dp_peer_spec *peers, size_t n);
uint64_t dp_balancer_get_sig(const struct dp_balancer *b);
const char *dp_balancer_upstream_id(const struct dp_balancer *b);

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

/* ---- health (the counters are Kong's: consecutive events; a limit of 0 is off) ---- */

const struct dp_hc *dp_balancer_hc(const struct dp_balancer *b);

/* Reports ev for peer i, from an active probe or a session (passive). Returns +1 when
 * the peer became healthy, -1 when it became unhealthy, 0 otherwise. Any thread. */
int dp_balancer_report(struct dp_balancer *b, int i, enum dp_health_event ev, bool active);

bool dp_balancer_healthy(const struct dp_balancer *b, int i);
uint32_t dp_balancer_weight(const struct dp_balancer *b, int i);

/* The health thread's schedule of peer i (only that thread reads or writes it). */
int64_t *dp_balancer_probe_due(struct dp_balancer *b, int i);

/* Live sessions on peer i, from every worker (tests and the status listener). */
int64_t dp_balancer_active(const struct dp_balancer *b, int i);
size_t dp_balancer_size(const struct dp_balancer *b);

#endif
