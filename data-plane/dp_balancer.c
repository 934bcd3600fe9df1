/* Kong's balancer algorithms for stream connections (see dp_balancer.h). Where Kong keeps
 * state per nginx worker, Strait keeps it once for all workers: round-robin's position
 * and least-connections' counts are atomics every worker shares, so the distribution
 * holds across workers (kong-next-features.md §1.4, §1.7 item 5). */
#include "dp_balancer.h"

#include <netinet/in.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "st_entity.h"
#include "st_util.h"

/* least-connections and latency compare every peer up to this many, else two at random
 * (power of two choices): O(1) either way */
#define SCAN_MAX 16

enum algorithm { ALG_ROUND_ROBIN = 0, ALG_LEAST_CONNECTIONS, ALG_CONSISTENT_HASHING, ALG_LATENCY };

enum hash_source {
    HASH_NONE = 0, /* also Kong's HTTP-only sources: a stream connection has none of them */
    HASH_IP,
    HASH_SNI,  /* Strait's: the SNI the client sent */
    HASH_PORT, /* Strait's: the port of the listener that accepted the connection */
};

struct peer {
    struct sockaddr_storage addr;
    uint32_t weight;
    char *target;
    char *sni;                    /* for tls services: host_header, else the target's name */
    atomic_int_fast64_t active;   /* live sessions, every worker */
    atomic_uint_fast32_t ewma_us; /* latency: connect time, 0 until measured */
    atomic_bool healthy;
    atomic_uint successes, tcp_failures, timeouts; /* consecutive, Kong's counters */
    int64_t probe_due; /* the health thread's: when to probe next (0: now) */
};

/* A point of the consistent-hashing ring. */
struct point {
    uint32_t hash;
    uint32_t peer;
};

struct dp_balancer {
    atomic_int refs;
    char *name;
    char *upstream_id;
    uint64_t sig;
    struct dp_hc hc;
    char *hc_strings[3]; /* the strings hc points to */
    atomic_uint_fast64_t unhealthy_weight;
    enum algorithm alg;
    enum hash_source hash_on, hash_fallback;
    struct peer *peers;
    size_t n;
    uint64_t total; /* of the weights */
    /* round-robin: cum[i] = the weights of peers 0..i divided by their gcd (a 1:1 pool
     * alternates), rr_total the last; stride, coprime to rr_total, spreads the counter
     * over them */
    uint64_t *cum;
    uint64_t rr_total;
    uint64_t stride;
    atomic_uint_fast64_t next; /* round-robin's position, shared by the workers */
    struct point *ring;
    size_t n_ring;
};

/* ---------------------------------------------------------------- hashing */

/* FNV-1a, then murmur3's 64-bit finaliser for the avalanche FNV lacks on short keys. */
static uint64_t
hash_bytes(const void *p, size_t n, uint64_t seed)
{
    const unsigned char *b = p;
    uint64_t h = 1469598103934665603ull ^ seed;

    for (size_t i = 0; i < n; i++) {
        h = (h ^ b[i]) * 1099511628211ull;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

/* The address bytes of sa (no port), or 0 bytes for another family. */
static size_t
addr_bytes(const struct sockaddr *sa, const void **out)
{
    if (sa->sa_family == AF_INET) {
        *out = &((const struct sockaddr_in *)sa)->sin_addr;
        return 4;
    }
    if (sa->sa_family == AF_INET6) {
        *out = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        return 16;
    }
    return 0;
}

static uint16_t
addr_port(const struct sockaddr_storage *ss)
{
    return ss->ss_family == AF_INET6 ? ((const struct sockaddr_in6 *)ss)->sin6_port
                                     : ((const struct sockaddr_in *)ss)->sin_port;
}

/* ---------------------------------------------------------------- building */

static enum hash_source
hash_source(const char *s)
{
    if (s == NULL) {
        return HASH_NONE;
    }
    if (strcmp(s, "ip") == 0) {
        return HASH_IP;
    }
    if (strcmp(s, "sni") == 0) {
        return HASH_SNI;
    }
    return strcmp(s, "port") == 0 ? HASH_PORT : HASH_NONE;
}

static enum algorithm
algorithm(const char *s)
{
    if (s == NULL) {
        return ALG_ROUND_ROBIN;
    }
    if (strcmp(s, "least-connections") == 0) {
        return ALG_LEAST_CONNECTIONS;
    }
    if (strcmp(s, "consistent-hashing") == 0) {
        return ALG_CONSISTENT_HASHING;
    }
    return strcmp(s, "latency") == 0 ? ALG_LATENCY : ALG_ROUND_ROBIN;
}

static uint64_t
gcd(uint64_t a, uint64_t b)
{
    while (b != 0) {
        uint64_t t = a % b;

        a = b;
        b = t;
    }
    return a;
}

static int
cmp_point(const void *a, const void *b)
{
    const struct point *x = a, *y = b;

    if (x->hash != y->hash) {
        return x->hash < y->hash ? -1 : 1;
    }
    return x->peer < y->peer ? -1 : x->peer > y->peer;
}

/* ---------------------------------------------------------------- health settings */

static double
num(const json_t *o, const char *path)
{
    char key[64];
    const char *p = path;

    while (o != NULL && *p != '\0') {
        size_t n = strcspn(p, ".");

        st_snprintf(key, sizeof(key), "%.*s", (int)n, p);
        o = json_object_get(o, key);
        p += n + (p[n] == '.');
    }
    return json_is_number(o) ? json_number_value(o) : 0;
}

static char *
str(const json_t *o, const char *a, const char *b)
{
    const char *v = json_string_value(json_object_get(json_object_get(o, a), b));

    return v != NULL ? st_xstrdup(v) : NULL;
}

/* The DP's reading of an upstream's healthchecks record (validated by the CP; a field
 * missing reads as 0, off). Kong's http probe is a connect on a stream upstream and its
 * https probe a TLS handshake (Kong runs neither for stream: docs/balancing.md). */
static void
hc_parse(struct dp_balancer *b, const char *text)
{
    json_t *o = text != NULL ? json_loads(text, 0, NULL) : NULL;
    const char *type = json_string_value(json_object_get(json_object_get(o, "active"), "type"));
    struct dp_hc *hc = &b->hc;

    hc->timeout_ms = (int64_t)(num(o, "active.timeout") * 1000);
    hc->concurrency = (uint32_t)num(o, "active.concurrency");
    hc->https_verify =
        json_is_true(json_object_get(json_object_get(o, "active"), "https_verify_certificate"));
    hc->https_sni = b->hc_strings[0] = str(o, "active", "https_sni");
    hc->tcp_send = b->hc_strings[1] = str(o, "active", "tcp_send");
    hc->tcp_expect = b->hc_strings[2] = str(o, "active", "tcp_expect");
    hc->probe = hc->tcp_send != NULL || hc->tcp_expect != NULL ? DP_PROBE_PAYLOAD
                : type != NULL && strcmp(type, "https") == 0   ? DP_PROBE_TLS
                                                               : DP_PROBE_TCP;
    hc->healthy_interval_ms = (int64_t)(num(o, "active.healthy.interval") * 1000);
    hc->unhealthy_interval_ms = (int64_t)(num(o, "active.unhealthy.interval") * 1000);
    hc->active_successes = (uint32_t)num(o, "active.healthy.successes");
    hc->active_tcp_failures = (uint32_t)num(o, "active.unhealthy.tcp_failures");
    hc->active_timeouts = (uint32_t)num(o, "active.unhealthy.timeouts");
    hc->passive_successes = (uint32_t)num(o, "passive.healthy.successes");
    hc->passive_tcp_failures = (uint32_t)num(o, "passive.unhealthy.tcp_failures");
    hc->passive_timeouts = (uint32_t)num(o, "passive.unhealthy.timeouts");
    hc->threshold = num(o, "threshold");
    if (hc->concurrency == 0) {
        hc->concurrency = 10;
    }
    if (hc->timeout_ms <= 0) {
        hc->timeout_ms = 1000;
    }
    json_decref(o);
}

static uint64_t
sig_str(uint64_t h, const char *s)
{
    return hash_bytes(s != NULL ? s : "\x01", s != NULL ? strlen(s) + 1 : 1, h);
}

uint64_t
dp_balancer_sig(const struct st_upstream *u, const struct dp_peer_spec *peers, size_t n)
{
    uint64_t h = 0;

    h = sig_str(h, u->id);
    h = sig_str(h, u->name);
    h = sig_str(h, u->algorithm);
    h = sig_str(h, u->hash_on);
    h = sig_str(h, u->hash_fallback);
    h = sig_str(h, u->healthchecks);
    h = sig_str(h, u->host_header);
    h = hash_bytes(&u->slots, sizeof(u->slots), h);
    for (size_t i = 0; i < n; i++) {
        const void *ab;
        size_t an = addr_bytes((const struct sockaddr *)&peers[i].addr, &ab);
        uint16_t port = addr_port(&peers[i].addr);

        h = hash_bytes(ab, an, h);
        h = hash_bytes(&port, sizeof(port), h);
        h = hash_bytes(&peers[i].weight, sizeof(peers[i].weight), h);
        h = sig_str(h, peers[i].target);
        h = sig_str(h, peers[i].srv_name);
    }
    h = hash_bytes(&u->use_srv_name, sizeof(u->use_srv_name), h);
    return h;
}

/* Ketama, as Kong builds it: each peer gets 160 points scaled by its weight against the
 * average weight, placed by the hash of its address and the point's number; a peer
 * that leaves takes only its own points (with equal weights the others keep theirs
 * exactly) and every DP builds the same ring. */
#define RING_POINTS 160

static size_t
ring_points(const struct dp_balancer *b, size_t n_weighted, uint32_t weight)
{
    return (size_t)((uint64_t)RING_POINTS * weight * n_weighted / b->total);
}

static void
ring_build(struct dp_balancer *b)
{
    size_t cap = 0, n_weighted = 0;

    for (size_t i = 0; i < b->n; i++) {
        n_weighted += b->peers[i].weight > 0;
    }
    for (size_t i = 0; i < b->n; i++) {
        cap += ring_points(b, n_weighted, b->peers[i].weight) + 1;
    }
    b->ring = st_xcalloc(cap ? cap : 1, sizeof(*b->ring));
    for (size_t i = 0; i < b->n; i++) {
        const struct peer *p = &b->peers[i];
        const void *ab;
        size_t an = addr_bytes((const struct sockaddr *)&p->addr, &ab);
        uint16_t port = addr_port(&p->addr);
        size_t pts = ring_points(b, n_weighted, p->weight);

        if (p->weight > 0 && pts == 0) {
            pts = 1; /* a tiny weight still gets a point */
        }
        for (size_t k = 0; k < pts; k++) {
            uint64_t h = hash_bytes(ab, an, ((uint64_t)port << 32) | k);

            b->ring[b->n_ring++] = (struct point){(uint32_t)(h >> 32), (uint32_t)i};
        }
    }
    qsort(b->ring, b->n_ring, sizeof(*b->ring), cmp_point);
}

/* The name a tls service's upstream handshake uses for a peer of u: u's host_header,
 * else, with use_srv_name, the SRV record's target name, else the target's host (an IP
 * address sends no SNI and is verified as an address: dp_tls_upstream_prepare), as Kong
 * does. */
static char *
peer_sni(const struct st_upstream *u, const struct dp_peer_spec *spec)
{
    const char *target = spec->target;
    const char *colon = strrchr(target, ':');
    size_t n = colon != NULL ? (size_t)(colon - target) : strlen(target);
    char *host;

    if (u->host_header != NULL) {
        return st_xstrdup(u->host_header);
    }
    if (u->use_srv_name && spec->srv_name != NULL) {
        return st_xstrdup(spec->srv_name);
    }
    host = st_xmalloc(n + 1);
    memcpy(host, target, n);
    host[n] = '\0';
    return host;
}

/* The key a peer is known by from one balancer to the next. */
static uint64_t
peer_key(const struct peer *p)
{
    const void *ab;
    size_t an = addr_bytes((const struct sockaddr *)&p->addr, &ab);
    uint16_t port = addr_port(&p->addr);

    return sig_str(hash_bytes(ab, an, port), p->target);
}

static bool
peer_same(const struct peer *a, const struct peer *b)
{
    const void *x, *y;
    size_t nx = addr_bytes((const struct sockaddr *)&a->addr, &x);
    size_t ny = addr_bytes((const struct sockaddr *)&b->addr, &y);

    return nx == ny && memcmp(x, y, nx) == 0 && addr_port(&a->addr) == addr_port(&b->addr) &&
           strcmp(a->target, b->target) == 0;
}

/* b's peers that prev also has start from prev's health (a DNS answer or a target that
 * changed does not reset the others). A table of prev's peers by key: O(n). */
static void
health_carry(struct dp_balancer *b, const struct dp_balancer *prev)
{
    size_t cap = 16, *slot;
    uint64_t down = 0;

    while (cap < prev->n * 2) {
        cap *= 2;
    }
    slot = st_xcalloc(cap, sizeof(*slot)); /* prev's index + 1, 0: free */
    for (size_t i = 0; i < prev->n; i++) {
        size_t h = (size_t)peer_key(&prev->peers[i]) & (cap - 1);

        while (slot[h] != 0) {
            h = (h + 1) & (cap - 1);
        }
        slot[h] = i + 1;
    }
    for (size_t i = 0; i < b->n; i++) {
        struct peer *p = &b->peers[i];

        for (size_t h = (size_t)peer_key(p) & (cap - 1); slot[h] != 0; h = (h + 1) & (cap - 1)) {
            const struct peer *o = &prev->peers[slot[h] - 1];

            if (peer_same(p, o)) {
                atomic_store(&p->healthy, atomic_load(&o->healthy));
                atomic_store(&p->successes, atomic_load(&o->successes));
                atomic_store(&p->tcp_failures, atomic_load(&o->tcp_failures));
                atomic_store(&p->timeouts, atomic_load(&o->timeouts));
                atomic_store(&p->ewma_us, atomic_load(&o->ewma_us));
                break;
            }
        }
        if (!atomic_load(&p->healthy)) {
            down += p->weight;
        }
    }
    atomic_store(&b->unhealthy_weight, down);
    free(slot);
}

struct dp_balancer *
dp_balancer_new(const struct st_upstream *u, const struct dp_peer_spec *peers, size_t n,
                uint64_t sig, const struct dp_balancer *prev)
{
    struct dp_balancer *b = st_xcalloc(1, sizeof(*b));
    uint64_t g = 0;

    atomic_init(&b->refs, 1);
    atomic_init(&b->unhealthy_weight, 0);
    b->name = st_xstrdup(u->name != NULL ? u->name : "-");
    b->upstream_id = st_xstrdup(u->id != NULL ? u->id : "-");
    b->sig = sig;
    hc_parse(b, u->healthchecks);
    b->alg = algorithm(u->algorithm);
    b->hash_on = hash_source(u->hash_on);
    b->hash_fallback = hash_source(u->hash_fallback);
    b->peers = st_xcalloc(n ? n : 1, sizeof(*b->peers));
    b->cum = st_xcalloc(n ? n : 1, sizeof(*b->cum));
    b->n = n;
    for (size_t i = 0; i < n; i++) {
        b->peers[i].addr = peers[i].addr;
        b->peers[i].weight = peers[i].weight;
        b->peers[i].target = st_xstrdup(peers[i].target);
        b->peers[i].sni = peer_sni(u, &peers[i]);
        atomic_init(&b->peers[i].active, 0);
        atomic_init(&b->peers[i].ewma_us, 0);
        atomic_init(&b->peers[i].healthy, true); /* as Kong: healthy until shown not */
        atomic_init(&b->peers[i].successes, 0);
        atomic_init(&b->peers[i].tcp_failures, 0);
        atomic_init(&b->peers[i].timeouts, 0);
        b->total += peers[i].weight;
        g = gcd(g, peers[i].weight);
    }
    for (size_t i = 0; i < n; i++) {
        b->rr_total += g > 0 ? peers[i].weight / g : 0;
        b->cum[i] = b->rr_total;
    }
    atomic_init(&b->next, 0);
    if (b->total > 0) {
        /* the golden ratio's share of the cycle, made coprime to it: the counter then
         * visits every slot of a cycle once (each peer gets exactly its weight) and
         * consecutive picks land far apart (the peers' turns interleave) */
        b->stride = (uint64_t)((double)b->rr_total * 0.6180339887) % b->rr_total;
        while (b->stride == 0 || gcd(b->stride, b->rr_total) != 1) {
            b->stride = (b->stride + 1) % b->rr_total;
            if (b->rr_total == 1) {
                b->stride = 1;
                break;
            }
        }
        if (b->alg == ALG_CONSISTENT_HASHING) {
            ring_build(b);
        }
    }
    if (prev != NULL) {
        health_carry(b, prev);
    }
    return b;
}

struct dp_balancer *
dp_balancer_ref(struct dp_balancer *b)
{
    atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
    return b;
}

void
dp_balancer_unref(struct dp_balancer *b)
{
    if (b == NULL || atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) != 1) {
        return;
    }
    for (size_t i = 0; i < b->n; i++) {
        free(b->peers[i].target);
        free(b->peers[i].sni);
    }
    free(b->peers);
    free(b->cum);
    free(b->ring);
    free(b->name);
    free(b->upstream_id);
    for (size_t i = 0; i < ST_ARRAY_SIZE(b->hc_strings); i++) {
        free(b->hc_strings[i]);
    }
    free(b);
}

/* ---------------------------------------------------------------- picking */

static bool
was_tried(const struct dp_balancer_tried *t, size_t i)
{
    for (unsigned k = 0; k < t->n; k++) {
        if (t->idx[k] == i) {
            return true;
        }
    }
    return false;
}

static bool
available(const struct dp_balancer *b, size_t i)
{
    return b->peers[i].weight > 0 &&
           atomic_load_explicit(&((struct dp_balancer *)b)->peers[i].healthy, memory_order_relaxed);
}

/* Whether peer i may take this attempt: a weight, healthy, and not tried yet. */
static bool
usable(const struct dp_balancer *b, const struct dp_balancer_tried *t, size_t i)
{
    return available(b, i) && !was_tried(t, i);
}

/* Any available peer, untried first (once every peer was tried, the list starts over,
 * as Kong's does); -1 when none is available. */
static int
any_peer(const struct dp_balancer *b, const struct dp_balancer_tried *t, size_t from)
{
    for (int pass = 0; pass < 2; pass++) {
        for (size_t k = 0; k < b->n; k++) {
            size_t i = (from + k) % b->n;

            if (available(b, i) && (pass == 1 || !was_tried(t, i))) {
                return (int)i;
            }
        }
    }
    return -1;
}

/* The peer whose cumulative weight range holds v (binary search). */
static size_t
peer_at(const struct dp_balancer *b, uint64_t v)
{
    size_t lo = 0, hi = b->n - 1;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (b->cum[mid] > v) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    return lo;
}

static int
pick_round_robin(struct dp_balancer *b, const struct dp_balancer_tried *t)
{
    uint64_t c = 0;

    for (size_t tries = 0; tries <= t->n; tries++) {
        size_t i;

        c = atomic_fetch_add_explicit(&b->next, 1, memory_order_relaxed);
        i = peer_at(b, (c % b->rr_total) * b->stride % b->rr_total);
        if (usable(b, t, i)) {
            return (int)i;
        }
    }
    return any_peer(b, t, (size_t)(c % b->n));
}

/* A small per-thread generator for the two random choices. */
static uint64_t
rnd(void)
{
    static _Thread_local uint64_t s;

    if (s == 0) {
        s = (uint64_t)(uintptr_t)&s ^ (uint64_t)st_mono_ms() ^ 0x9e3779b97f4a7c15ull;
    }
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
}

/* Whether peer a scores better than peer b: fewer live sessions per weight, or (latency)
 * a lower connect time per weight. */
static bool
better(const struct dp_balancer *bl, size_t a, size_t b)
{
    const struct peer *x = &bl->peers[a], *y = &bl->peers[b];
    uint64_t sx, sy;

    if (bl->alg == ALG_LATENCY) {
        sx = atomic_load_explicit(&x->ewma_us, memory_order_relaxed);
        sy = atomic_load_explicit(&y->ewma_us, memory_order_relaxed);
    } else {
        sx = (uint64_t)atomic_load_explicit(&x->active, memory_order_relaxed) + 1;
        sy = (uint64_t)atomic_load_explicit(&y->active, memory_order_relaxed) + 1;
    }
    return sx * y->weight < sy * x->weight;
}

static int
pick_least(struct dp_balancer *b, const struct dp_balancer_tried *t)
{
    /* ties go to the peer after the last start, so equal peers take turns */
    size_t from = (size_t)(atomic_fetch_add_explicit(&b->next, 1, memory_order_relaxed) % b->n);
    int best = -1;

    if (b->n <= SCAN_MAX) {
        for (size_t k = 0; k < b->n; k++) {
            size_t i = (from + k) % b->n;

            if (usable(b, t, i) && (best < 0 || better(b, i, (size_t)best))) {
                best = (int)i;
            }
        }
        return best >= 0 ? best : any_peer(b, t, from);
    }
    for (int k = 0; k < 2 * SCAN_MAX && best < 0; k++) {
        size_t i = (size_t)(rnd() % b->n), j = (size_t)(rnd() % b->n);

        if (usable(b, t, i) && usable(b, t, j)) {
            best = better(b, j, i) ? (int)j : (int)i;
        } else if (usable(b, t, i) || usable(b, t, j)) {
            best = usable(b, t, i) ? (int)i : (int)j;
        }
    }
    return best >= 0 ? best : any_peer(b, t, from);
}

/* The hash of what the connection offers for source src: true when it offers one. */
static bool
key_hash(enum hash_source src, const struct dp_balancer_key *k, uint32_t *out)
{
    const void *ab = NULL;
    size_t an = 0;

    if (k == NULL) {
        return false;
    }
    if (src == HASH_IP && k->client != NULL) {
        an = addr_bytes(k->client, &ab);
    } else if (src == HASH_SNI && k->sni != NULL) {
        ab = k->sni;
        an = strlen(k->sni);
    } else if (src == HASH_PORT && k->port != 0) {
        ab = &k->port;
        an = sizeof(k->port);
    }
    if (an == 0) {
        return false;
    }
    *out = (uint32_t)(hash_bytes(ab, an, src) >> 32);
    return true;
}

static int
pick_hashed(struct dp_balancer *b, const struct dp_balancer_key *k,
            const struct dp_balancer_tried *t)
{
    uint32_t h;
    size_t lo = 0, hi = b->n_ring;

    if (!key_hash(b->hash_on, k, &h) && !key_hash(b->hash_fallback, k, &h)) {
        /* nothing to hash on: spread the connections, never all on one target */
        return pick_round_robin(b, t);
    }
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (b->ring[mid].hash < h) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    /* from the point on, the first peer that may take it (a retry moves on) */
    for (size_t k2 = 0; k2 < b->n_ring; k2++) {
        size_t i = b->ring[(lo + k2) % b->n_ring].peer;

        if (usable(b, t, i)) {
            return (int)i;
        }
    }
    return any_peer(b, t, 0);
}

int
dp_balancer_pick(struct dp_balancer *b, const struct dp_balancer_key *k,
                 struct dp_balancer_tried *tried)
{
    uint64_t up;
    int i;

    if (b->total == 0) {
        return -1;
    }
    /* Kong's balancer health: enough healthy weight (Strait: >= threshold where Kong
     * wants >, so that threshold 100 means "all healthy", not "never": balancing.md) */
    up = b->total - atomic_load_explicit(&b->unhealthy_weight, memory_order_relaxed);
    if (up == 0 ||
        (b->hc.threshold > 0 && (double)up * 100.0 < b->hc.threshold * (double)b->total)) {
        return -1;
    }
    switch (b->alg) {
    case ALG_LEAST_CONNECTIONS:
    case ALG_LATENCY:
        i = pick_least(b, tried);
        break;
    case ALG_CONSISTENT_HASHING:
        i = pick_hashed(b, k, tried);
        break;
    default:
        i = pick_round_robin(b, tried);
        break;
    }
    if (i >= 0) {
        atomic_fetch_add_explicit(&b->peers[i].active, 1, memory_order_relaxed);
        if (tried->n < DP_BALANCER_TRIED_MAX) {
            tried->idx[tried->n++] = (uint32_t)i;
        }
    }
    return i;
}

void
dp_balancer_release(struct dp_balancer *b, int i)
{
    atomic_fetch_sub_explicit(&b->peers[i].active, 1, memory_order_relaxed);
}

void
dp_balancer_observe(struct dp_balancer *b, int i, uint32_t connect_us)
{
    atomic_uint_fast32_t *e = &b->peers[i].ewma_us;
    uint32_t old;

    if (b->alg != ALG_LATENCY) {
        return; /* the other algorithms do not read it: no shared write per connection */
    }
    old = atomic_load_explicit(e, memory_order_relaxed);

    /* an exponentially weighted average (1/8 of each new sample); racing workers may
     * lose a sample, which an average can afford */
    atomic_store_explicit(e,
                          old == 0 ? (connect_us ? connect_us : 1) : old - old / 8 + connect_us / 8,
                          memory_order_relaxed);
}

/* Kong's incr_counter: consecutive events (a success resets the failure counters, a
 * failure the success counter); successes are not counted while healthy nor failures
 * while unhealthy; a limit of 0 turns that counter off. Kong's checker refuses 255 and
 * silently stops; here 255 works as written. */
int
dp_balancer_report(struct dp_balancer *b, int i, enum dp_health_event ev, bool active)
{
    struct peer *p = &b->peers[i];
    const struct dp_hc *hc = &b->hc;
    bool healthy = atomic_load_explicit(&p->healthy, memory_order_relaxed);
    atomic_uint *ctr;
    uint32_t limit;
    bool want;

    if (p->weight == 0) {
        return 0; /* Kong: a weight-0 target is not checked */
    }
    if (ev == DP_HEALTH_SUCCESS) {
        if (atomic_load_explicit(&p->tcp_failures, memory_order_relaxed) != 0 ||
            atomic_load_explicit(&p->timeouts, memory_order_relaxed) != 0) {
            atomic_store_explicit(&p->tcp_failures, 0, memory_order_relaxed);
            atomic_store_explicit(&p->timeouts, 0, memory_order_relaxed);
        }
        if (healthy) {
            return 0;
        }
        ctr = &p->successes;
        limit = active ? hc->active_successes : hc->passive_successes;
        want = true;
    } else {
        if (atomic_load_explicit(&p->successes, memory_order_relaxed) != 0) {
            atomic_store_explicit(&p->successes, 0, memory_order_relaxed);
        }
        if (!healthy) {
            return 0;
        }
        ctr = ev == DP_HEALTH_TIMEOUT ? &p->timeouts : &p->tcp_failures;
        limit = ev == DP_HEALTH_TIMEOUT
                    ? (active ? hc->active_timeouts : hc->passive_timeouts)
                    : (active ? hc->active_tcp_failures : hc->passive_tcp_failures);
        want = false;
    }
    if (limit == 0 || atomic_fetch_add_explicit(ctr, 1, memory_order_relaxed) + 1 < limit) {
        return 0;
    }
    if (!atomic_compare_exchange_strong(&p->healthy, &healthy, want)) {
        return 0; /* another thread made the same change */
    }
    atomic_store_explicit(&p->successes, 0, memory_order_relaxed);
    atomic_store_explicit(&p->tcp_failures, 0, memory_order_relaxed);
    atomic_store_explicit(&p->timeouts, 0, memory_order_relaxed);
    if (want) {
        atomic_fetch_sub_explicit(&b->unhealthy_weight, p->weight, memory_order_relaxed);
    } else {
        atomic_fetch_add_explicit(&b->unhealthy_weight, p->weight, memory_order_relaxed);
    }
    return want ? 1 : -1;
}

bool
dp_balancer_healthy(const struct dp_balancer *b, int i)
{
    return atomic_load_explicit(&((struct dp_balancer *)b)->peers[i].healthy, memory_order_relaxed);
}

uint32_t
dp_balancer_weight(const struct dp_balancer *b, int i)
{
    return b->peers[i].weight;
}

int64_t *
dp_balancer_probe_due(struct dp_balancer *b, int i)
{
    return &b->peers[i].probe_due;
}

const struct dp_hc *
dp_balancer_hc(const struct dp_balancer *b)
{
    return &b->hc;
}

uint64_t
dp_balancer_get_sig(const struct dp_balancer *b)
{
    return b->sig;
}

const char *
dp_balancer_upstream_id(const struct dp_balancer *b)
{
    return b->upstream_id;
}

const char *
dp_balancer_name(const struct dp_balancer *b)
{
    return b->name;
}

const struct sockaddr *
dp_balancer_addr(const struct dp_balancer *b, int i)
{
    return (const struct sockaddr *)&b->peers[i].addr;
}

const char *
dp_balancer_sni(const struct dp_balancer *b, int i)
{
    return b->peers[i].sni;
}

const char *
dp_balancer_target(const struct dp_balancer *b, int i)
{
    return b->peers[i].target;
}

int64_t
dp_balancer_active(const struct dp_balancer *b, int i)
{
    return atomic_load_explicit(&((struct dp_balancer *)b)->peers[i].active, memory_order_relaxed);
}

size_t
dp_balancer_size(const struct dp_balancer *b)
{
    return b->n;
}
