/* IP addresses and CIDR blocks, as routes' `sources`/`destinations` and
 * `trusted_ips` use them. */
#ifndef STRAIT_ST_CIDR_H
#define STRAIT_ST_CIDR_H

#include <stdbool.h>
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

#endif
