/* IPv4/IPv6 addresses and CIDR blocks: parsing with inet_pton, and matching a
 * socket address against a block. A v4-mapped IPv6 address (::ffff:a.b.c.d, what a
 * dual-stack socket reports for an IPv4 peer) matches IPv4 blocks, and an IPv4
 * address matches IPv6 blocks that cover its mapped form. */
#include "st_cidr.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
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

/* ------------------------------------------------------------------------ */
/* sets of blocks                                                             */

static uint64_t
be64(const uint8_t *b)
{
    uint64_t v = 0;

    for (int i = 0; i < 8; i++) {
        v = v << 8 | b[i];
    }
    return v;
}

/* The 16-byte key of an address: IPv6 as is, IPv4 as ::ffff:a.b.c.d. */
static void
key_of(int family, const uint8_t *addr, uint8_t out[16])
{
    if (family == AF_INET) {
        memset(out, 0, 10);
        out[10] = 0xff;
        out[11] = 0xff;
        memcpy(out + 12, addr, 4);
    } else {
        memcpy(out, addr, 16);
    }
}

/* a <= b for (hi, lo) pairs */
static bool
key_le(uint64_t ah, uint64_t al, uint64_t bh, uint64_t bl)
{
    return ah < bh || (ah == bh && al <= bl);
}

static int
range_cmp(const void *a, const void *b)
{
    const struct st_cidr_range *x = a, *y = b;

    if (x->lo_hi != y->lo_hi) {
        return x->lo_hi < y->lo_hi ? -1 : 1;
    }
    return x->lo_lo < y->lo_lo ? -1 : x->lo_lo > y->lo_lo;
}

int
st_cidr_set_build(struct st_cidr_set *s, const struct st_cidr *blocks, size_t n)
{
    size_t m = 0;

    s->r = NULL;
    s->n = 0;
    if (n == 0) {
        return 0;
    }
    s->r = calloc(n, sizeof(*s->r));
    if (s->r == NULL) {
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        const struct st_cidr *c = &blocks[i];
        unsigned bits = c->family == AF_INET ? 96u + c->bits : c->bits;
        uint8_t k[16], top[16];

        key_of(c->family, c->addr, k);
        memcpy(top, k, 16);
        for (unsigned b = bits; b < 128; b++) {
            top[b / 8] |= (uint8_t)(0x80u >> (b % 8));
        }
        s->r[i] = (struct st_cidr_range){be64(k), be64(k + 8), be64(top), be64(top + 8)};
    }
    qsort(s->r, n, sizeof(*s->r), range_cmp);
    /* merge overlapping and adjacent ranges */
    for (size_t i = 1; i < n; i++) {
        struct st_cidr_range *last = &s->r[m];
        const struct st_cidr_range *x = &s->r[i];
        uint64_t nh = last->hi_hi + (last->hi_lo == UINT64_MAX), nl = last->hi_lo + 1;
        bool last_is_max = last->hi_hi == UINT64_MAX && last->hi_lo == UINT64_MAX;

        if (last_is_max || key_le(x->lo_hi, x->lo_lo, nh, nl)) {
            if (!key_le(x->hi_hi, x->hi_lo, last->hi_hi, last->hi_lo)) {
                last->hi_hi = x->hi_hi;
                last->hi_lo = x->hi_lo;
            }
        } else {
            s->r[++m] = *x;
        }
    }
    s->n = m + 1;
    return 0;
}

bool
st_cidr_set_match(const struct st_cidr_set *s, const struct sockaddr *sa)
{
    uint8_t k[16];
    uint64_t kh, kl;
    size_t lo = 0, hi = s->n;

    if (s->n == 0) {
        return false;
    }
    if (sa->sa_family == AF_INET) {
        key_of(AF_INET, (const uint8_t *)&((const struct sockaddr_in *)(const void *)sa)->sin_addr,
               k);
    } else if (sa->sa_family == AF_INET6) {
        key_of(AF_INET6,
               (const uint8_t *)&((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, k);
    } else {
        return false;
    }
    kh = be64(k);
    kl = be64(k + 8);
    /* the last range whose first key is <= the key */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (key_le(s->r[mid].lo_hi, s->r[mid].lo_lo, kh, kl)) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo > 0 && key_le(kh, kl, s->r[lo - 1].hi_hi, s->r[lo - 1].hi_lo);
}

void
st_cidr_set_free(struct st_cidr_set *s)
{
    free(s->r);
    s->r = NULL;
    s->n = 0;
}
