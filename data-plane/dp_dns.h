/* Name resolution for the data plane (DESIGN.md "Balancing, health checks, DNS"): a
 * cache of answers by name, filled with c-ares and never touched by a worker. A runtime
 * build asks for the names it needs at once (dp_dns_prepare: only names never asked
 * wait for an answer) and reads the answers (dp_dns_get); a refresher thread asks again
 * as each answer's TTL runs out and calls back when one changed, so that a new runtime
 * is built only then. Kong's keys: dns_resolver, dns_hostsfile, dns_order,
 * dns_valid_ttl, dns_stale_ttl, dns_not_found_ttl, dns_error_ttl (docs/balancing.md). */
#ifndef STRAIT_DP_DNS_H
#define STRAIT_DP_DNS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct st_conf;
struct st_err;
struct dp_dns;

/* One address of an answer. */
struct dp_dns_rec {
    struct sockaddr_storage addr; /* port 0 (the caller's), or the SRV record's */
    uint32_t weight;              /* the SRV record's (0 given as 1, as Kong); 0: A/AAAA */
    char *name;                   /* the SRV record's target; NULL for A/AAAA */
};

/* Reads the dns_* keys of c (kept: c must outlive the cache) and the hosts file (once,
 * as Kong). Call before any thread starts (c-ares' library set-up is process-wide).
 * NULL with err set on a key c-ares refuses. */
struct dp_dns *dp_dns_new(const struct st_conf *c, struct st_err *err);

/* Starts the refresher; changed(arg) runs on its thread after a pass in which some used
 * name's answer changed (addresses, ports, weights, or gone). Returns 0 or -errno. */
int dp_dns_start(struct dp_dns *d, void (*changed)(void *), void *arg);

/* Stops the refresher (if started) and frees everything. NULL is a no-op. */
void dp_dns_free(struct dp_dns *d);

/* The names a runtime build uses (duplicates allowed): those never asked are asked now,
 * all at once, and waited for (bounded by the resolver's timeouts); names not listed
 * are forgotten. Calls from one thread at a time (dp_sync's build lock). */
void dp_dns_prepare(struct dp_dns *d, const char *const *names, size_t n);

/* name's current answer, copied into *out (free with dp_dns_recs_free). Returns 0 with
 * *n >= 1; -ST_ENOTFOUND when the name has no such records (or was never prepared);
 * -EIO when the lookup failed and no answer is left to serve. */
int dp_dns_get(struct dp_dns *d, const char *name, struct dp_dns_rec **out, size_t *n);

void dp_dns_recs_free(struct dp_dns_rec *v, size_t n);

#endif
