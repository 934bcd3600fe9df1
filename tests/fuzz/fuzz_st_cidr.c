/* libFuzzer target for addresses and CIDR blocks (issue 14): routes' sources and
 * destinations and trusted_ips go through st_cidr_parse; st_cidr_match then decides on
 * every connection.
 *
 * The input, up to a NUL, is the text. Besides memory errors, the target aborts when a
 * parsed block:
 *   - has a family other than IPv4/IPv6, a prefix longer than the family's, host bits set
 *     under the mask, or is_host while written with a "/len" (or the other way round);
 *   - written back as "<address>/<len>" parses to another block;
 *   - does not match its own address (and, for IPv4, that address mapped into IPv6), or
 *     matches an address that differs from it inside the prefix. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "st_cidr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A socket address holding the block's first bytes (flip: the bit to invert, or -1). */
static void
sockaddr_of(const struct st_cidr *c, bool mapped, int flip, struct sockaddr_storage *ss)
{
    uint8_t a[16];

    memcpy(a, c->addr, sizeof(a));
    if (flip >= 0) {
        a[flip / 8] ^= (uint8_t)(0x80u >> (flip % 8));
    }
    memset(ss, 0, sizeof(*ss));
    if (c->family == AF_INET && !mapped) {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;

        sin->sin_family = AF_INET;
        memcpy(&sin->sin_addr, a, 4);
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

        sin6->sin6_family = AF_INET6;
        if (c->family == AF_INET) {
            sin6->sin6_addr.s6_addr[10] = 0xff;
            sin6->sin6_addr.s6_addr[11] = 0xff;
            memcpy(&sin6->sin6_addr.s6_addr[12], a, 4);
        } else {
            memcpy(&sin6->sin6_addr, a, 16);
        }
    }
}

static void
check_block(const struct st_cidr *c, const char *text)
{
    unsigned max = c->family == AF_INET ? 32 : 128;
    struct sockaddr_storage ss;
    struct st_cidr back;
    char ip[INET6_ADDRSTRLEN], again[64];

    if ((c->family != AF_INET && c->family != AF_INET6) || c->bits > max ||
        c->is_host != (strchr(text, '/') == NULL) || (c->is_host && c->bits != max)) {
        abort();
    }
    for (unsigned b = c->bits; b < 128; b++) {
        if (c->addr[b / 8] & (0x80u >> (b % 8))) {
            abort();
        }
    }
    if (inet_ntop(c->family, c->addr, ip, sizeof(ip)) == NULL) {
        abort();
    }
    snprintf(again, sizeof(again), "%s/%u", ip, c->bits);
    if (st_cidr_parse(again, &back) != 0 || back.family != c->family || back.bits != c->bits ||
        memcmp(back.addr, c->addr, sizeof(c->addr)) != 0 || back.is_host) {
        abort();
    }
    for (int mapped = 0; mapped < 2; mapped++) {
        sockaddr_of(c, mapped, -1, &ss);
        if (!st_cidr_match(c, (struct sockaddr *)&ss)) {
            abort();
        }
        if (c->bits > 0) {
            sockaddr_of(c, mapped, (int)c->bits - 1, &ss);
            if (st_cidr_match(c, (struct sockaddr *)&ss)) {
                abort();
            }
        }
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz_in in = {data, data + size};
    char *text = fz_field(&in, '\0', NULL);
    struct st_cidr c;

    if (st_cidr_parse(text, &c) == 0) {
        check_block(&c, text);
    }
    free(text);
    return 0;
}
