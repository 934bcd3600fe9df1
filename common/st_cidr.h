/* IP addresses and CIDR blocks, as routes' `sources`/`destinations` and
 * `trusted_ips` use them. */
#ifndef STRAIT_ST_CIDR_H
#define STRAIT_ST_CIDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct st_cidr {
    int family;       /* AF_INET or AF_INET6 */
    uint8_t addr[16]; /* network byte order, host bits cleared */
    uint8_t bits;     /* prefix length */
    bool is_host;     /* written without a "/len": an exact address */
};

/* Parses "a.b.c.d", "a.b.c.d/n", "v6", "v6/n". Host bits set under the mask are
 * cleared (10.1.2.3/8 -> 10.0.0.0/8). Returns 0 or -ST_EPARSE. */
int st_cidr_parse(const char *s, struct st_cidr *out);

/* True when sa (AF_INET or AF_INET6; a v4-mapped v6 address matches v4 blocks)
 * lies inside c. */
bool st_cidr_match(const struct st_cidr *c, const struct sockaddr *sa);

/* A set of CIDR blocks for matching many at once (ip-restriction's allow and deny lists):
 * every block as a range of 128-bit keys (IPv4 as its v4-mapped IPv6 form, so a
 * v4-mapped client matches IPv4 blocks), sorted and merged; a match is a binary search,
 * O(log n), with no allocation. */
struct st_cidr_range {
    uint64_t lo_hi, lo_lo; /* first key: high and low 64 bits */
    uint64_t hi_hi, hi_lo; /* last key */
};

struct st_cidr_set {
    struct st_cidr_range *r; /* sorted by first key, disjoint, not adjacent */
    size_t n;
};

/* Builds s from n blocks (n may be 0: an empty set). Returns 0 or -ENOMEM. */
int st_cidr_set_build(struct st_cidr_set *s, const struct st_cidr *blocks, size_t n);

/* True when sa (AF_INET or AF_INET6) lies in one of s's blocks. */
bool st_cidr_set_match(const struct st_cidr_set *s, const struct sockaddr *sa);

void st_cidr_set_free(struct st_cidr_set *s);

#endif
