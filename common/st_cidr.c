/* IPv4/IPv6 addresses and CIDR blocks: parsing with inet_pton, and matching a
 * socket address against a block. A v4-mapped IPv6 address (::ffff:a.b.c.d, what a
 * dual-stack socket reports for an IPv4 peer) matches IPv4 blocks, and an IPv4
 * address matches IPv6 blocks that cover its mapped form. */
#include "st_cidr.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <string.h>

#include "st_err.h"

static const uint8_t V4MAPPED_PREFIX[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* Clears the bits of addr after the first `bits`. */
static void
mask_bits(uint8_t *addr, size_t len, unsigned bits)
{
    for (size_t i = 0; i < len; i++) {
        if (bits >= 8) {
            bits -= 8;
            continue;
        }
        addr[i] &= (uint8_t)(0xff00u >> bits);
        bits = 0;
    }
}

/* True when the first `bits` bits of a and b agree. */
static bool
prefix_equal(const uint8_t *a, const uint8_t *b, unsigned bits)
{
    size_t full = bits / 8;
    unsigned rest = bits % 8;

    if (memcmp(a, b, full) != 0) {
        return false;
    }
    if (rest == 0) {
        return true;
    }
    uint8_t m = (uint8_t)(0xff00u >> rest);

    return (a[full] & m) == (b[full] & m);
}

int
st_cidr_parse(const char *s, struct st_cidr *out)
{
    char ip[INET6_ADDRSTRLEN + 1];
    const char *slash;
    size_t iplen;
    unsigned bits = 0, max;

    if (s == NULL) {
        return -ST_EPARSE;
    }
    slash = strchr(s, '/');
    iplen = slash ? (size_t)(slash - s) : strlen(s);
    if (iplen == 0 || iplen >= sizeof(ip)) {
        return -ST_EPARSE;
    }
    memcpy(ip, s, iplen);
    ip[iplen] = '\0';
    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, ip, out->addr) == 1) {
        out->family = AF_INET;
        max = 32;
    } else if (inet_pton(AF_INET6, ip, out->addr) == 1) {
        out->family = AF_INET6;
        max = 128;
    } else {
        return -ST_EPARSE;
    }
    if (slash == NULL) {
        out->bits = (uint8_t)max;
        out->is_host = true;
        return 0;
    }
    const char *p = slash + 1;

    if (*p == '\0' || strlen(p) > 3) {
        return -ST_EPARSE;
    }
    for (; *p != '\0'; p++) {
        if (!isdigit((unsigned char)*p)) {
            return -ST_EPARSE;
        }
        bits = bits * 10 + (unsigned)(*p - '0');
    }
    if (bits > max) {
        return -ST_EPARSE;
    }
    out->bits = (uint8_t)bits;
    mask_bits(out->addr, max / 8, bits);
    return 0;
}

bool
st_cidr_match(const struct st_cidr *c, const struct sockaddr *sa)
{
    uint8_t a[16]; /* the peer as IPv6, IPv4 mapped */

    if (sa->sa_family == AF_INET) {
        memcpy(a, V4MAPPED_PREFIX, 12);
        memcpy(a + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    } else if (sa->sa_family == AF_INET6) {
        memcpy(a, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
    } else {
        return false;
    }
    if (c->family == AF_INET6) {
        return prefix_equal(c->addr, a, c->bits);
    }
    return memcmp(a, V4MAPPED_PREFIX, 12) == 0 && prefix_equal(c->addr, a + 12, c->bits);
}
