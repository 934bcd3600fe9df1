/* libFuzzer target for the ClientHello preread parser (issue 3, points 2 and 6).
 *
 * Each input is the byte stream a client sends. It is parsed twice: in one call, and grown
 * in pseudo-random steps (derived from the input, so runs are reproducible) with every
 * prefix copied into a buffer of exactly its size, so that ASan sees any read past `end`.
 * Besides memory errors, the target aborts when:
 *   - the two verdicts differ, or the SNI/ALPN they found differ (split invariance);
 *   - an accepted SNI is not a clean lowercase DNS name, or the ALPN list is malformed;
 *   - the parser still waits after DP_PREREAD_BUF_MAX bytes (the caller's buffer is full);
 *   - a final verdict is not sticky. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dp_preread.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint32_t
rnd(uint32_t *s)
{
    uint32_t x = *s;

    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *s = x;
    return x;
}

static void
check_sni(const char *sni)
{
    size_t i, n;

    if (sni == NULL) {
        return;
    }
    n = strlen(sni);
    if (n == 0 || n > DP_PREREAD_SNI_MAX || sni[0] == '.' || sni[n - 1] == '.') {
        abort();
    }
    for (i = 0; i < n; i++) {
        char c = sni[i];

        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
              (c == '.' && sni[i + 1] != '.'))) {
            abort();
        }
    }
}

static void
check_alpn(const uint8_t *a, size_t n)
{
    size_t i = 0;

    if (a == NULL) {
        if (n != 0) {
            abort();
        }
        return;
    }
    if (n > DP_PREREAD_ALPN_MAX) {
        abort();
    }
    while (i < n) {
        if (a[i] == 0) {
            abort();
        }
        i += 1 + a[i];
    }
    if (i != n) {
        abort();
    }
}

static void
same_result(const struct dp_preread *x, const struct dp_preread *y)
{
    const char *sx = dp_preread_sni(x), *sy = dp_preread_sni(y);
    const uint8_t *ax, *ay;
    size_t nx, ny;

    if ((sx == NULL) != (sy == NULL) || (sx != NULL && strcmp(sx, sy) != 0)) {
        abort();
    }
    ax = dp_preread_alpn(x, &nx);
    ay = dp_preread_alpn(y, &ny);
    if ((ax == NULL) != (ay == NULL) || nx != ny || (nx != 0 && memcmp(ax, ay, nx) != 0)) {
        abort();
    }
    check_sni(sx);
    check_alpn(ax, nx);
}

/* Feeds growing prefixes of data, each in a buffer of its exact size. */
static enum dp_verdict
feed_split(struct dp_preread *pr, const uint8_t *data, size_t size, uint32_t seed)
{
    enum dp_verdict rc = DP_AGAIN;
    size_t i = 0, step;
    uint8_t *copy;

    dp_preread_init(pr);
    while (rc == DP_AGAIN && i < size) {
        step = (rnd(&seed) % 4 == 0) ? 1 + rnd(&seed) % 2048 : 1 + rnd(&seed) % 16;
        i = size - i < step ? size : i + step;
        copy = malloc(i);
        if (copy == NULL) {
            abort();
        }
        memcpy(copy, data, i);
        rc = dp_preread_feed(pr, copy, copy + i);
        free(copy);
    }
    return rc;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct dp_preread whole, split;
    enum dp_verdict a, b;
    uint32_t seed = 2166136261u;
    size_t i;

    for (i = 0; i < size; i++) {
        seed = (seed ^ data[i]) * 16777619u;
    }
    if (seed == 0) {
        seed = 1;
    }
    dp_preread_init(&whole);
    a = dp_preread_feed(&whole, data, data + size);
    b = feed_split(&split, data, size, seed);
    if (a != b) {
        abort();
    }
    if (a == DP_AGAIN && size >= DP_PREREAD_BUF_MAX) {
        abort();
    }
    if (a != DP_AGAIN && dp_preread_feed(&whole, data, data + size) != a) {
        abort();
    }
    if (a == DP_NEXT) {
        same_result(&whole, &split);
    }
    if ((a == DP_ERROR || a == DP_DECLINED) && dp_preread_why(&whole)[0] == '\0') {
        abort();
    }
    return 0;
}
