/* libFuzzer target for what a data plane decodes from its control plane and from its own
 * disk (issue 14): PREFIX/config.cache read back with dp_cache_read, the Snapshot in it
 * (st_snapshot_peek, st_snapshot_parse), and, behind the hash check, the Config: every
 * entity decoded, validated with st_schema and its references resolved. Also
 * PREFIX/strait.id (dp_cache_id).
 *
 * The first byte picks the mode. Bit 0 clear (the seeds of corpus/st_snapshot/, made by
 * fuzz_seed_snapshot.c from declarative files): the rest is an encoded Config, which the
 * target wraps in a Snapshot with the SHA-256 it must carry, so every input reaches the
 * entity decoder. Bit 0 set: the rest is the Snapshot itself (mostly refused by its hash).
 * Bit 1 set: the rest is also written as strait.id and read back. The bytes go through a
 * real config.cache in a temporary folder.
 *
 * Besides memory errors and allocations beyond the run's limits, the target aborts when:
 *   - dp_cache_read does not give back the bytes written, or the id read is not a UUID;
 *   - a refusal has no message, or st_snapshot_peek refuses what st_snapshot_parse took;
 *   - a parsed snapshot has a reference that does not point into its own arrays at the
 *     entity of that id, or a hash other than the one of its config bytes;
 *   - parsing the same bytes again (now through the digests of the entities that passed,
 *     st_snapshot.c's fast path) fails or gives a different snapshot. */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dp_cache.h"
#include "fuzz_util.h"
#include "st_err.h"
#include "st_schema.h"
#include "st_snapshot.h"
#include "st_ssl.h"
#include "strait/v1/snapshot.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A Snapshot carrying cfg with its hash; malloc'd, the caller frees. */
static uint8_t *
wrap(const uint8_t *cfg, size_t n, uint64_t version, size_t *len)
{
    Strait__V1__Snapshot m = STRAIT__V1__SNAPSHOT__INIT;
    char hash[65];
    uint8_t *out;

    st_ssl_sha256_hex(cfg, n, hash);
    m.version = version;
    m.hash = hash;
    m.config.data = (uint8_t *)cfg;
    m.config.len = n;
    *len = strait__v1__snapshot__get_packed_size(&m);
    out = malloc(*len + 1);
    if (out == NULL) {
        abort();
    }
    strait__v1__snapshot__pack(&m, out);
    return out;
}

static void
dump_str(FILE *f, const char *what, const char *s)
{
    fprintf(f, " %s=%s", what, s != NULL ? s : "(null)");
}

static void
dump_endpoints(FILE *f, const struct st_endpoint *e, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        fprintf(f, " ep(%d,%d,", e[i].has_ip, e[i].has_port);
        for (size_t j = 0; j < sizeof(e[i].ip.addr); j++) {
            fprintf(f, "%02x", e[i].ip.addr[j]);
        }
        fprintf(f, "/%u,%d,%d,%u)", e[i].ip.bits, e[i].ip.family, e[i].ip.is_host, e[i].port);
    }
}

/* Whether p points at one element of the array base[0..n) of elements of size sz. */
static bool
in_array(const void *p, const void *base, size_t n, size_t sz)
{
    const char *c = p;
    const char *b = base;

    return p != NULL && base != NULL && c >= b && c < b + n * sz && (size_t)(c - b) % sz == 0;
}

static void
dump_services(FILE *f, const struct st_snapshot *s)
{
    for (size_t i = 0; i < s->n_services; i++) {
        const struct st_service *v = &s->services[i];

        dump_str(f, "service", v->id);
        dump_str(f, "name", v->name);
        dump_str(f, "host", v->host);
        fprintf(f, " %" PRId64 " %u %u %u %u %u %u %d %d %d", v->created_at_ms, v->protocol,
                v->port, v->connect_timeout, v->read_timeout, v->write_timeout, v->retries,
                v->enabled, v->tls_verify, v->tls_verify_depth);
        for (size_t j = 0; j < v->n_ca_certificates; j++) {
            if (!in_array(v->ca_certificates[j], s->ca_certificates, s->n_ca_certificates,
                          sizeof(*s->ca_certificates))) {
                abort();
            }
            dump_str(f, "ca", v->ca_certificates[j]->id);
        }
        if (v->client_certificate != NULL) {
            if (!in_array(v->client_certificate, s->certificates, s->n_certificates,
                          sizeof(*s->certificates))) {
                abort();
            }
            dump_str(f, "client_certificate", v->client_certificate->id);
        }
        fputc('\n', f);
    }
}

static void
dump_routes(FILE *f, const struct st_snapshot *s)
{
    for (size_t i = 0; i < s->n_routes; i++) {
        const struct st_route *r = &s->routes[i];

        dump_str(f, "route", r->id);
        dump_str(f, "name", r->name);
        fprintf(f, " %" PRId64 " %u %d", r->created_at_ms, r->protocols, r->preserve_host);
        dump_endpoints(f, r->sources, r->n_sources);
        fputs(" /", f);
        dump_endpoints(f, r->destinations, r->n_destinations);
        for (size_t j = 0; j < r->n_snis; j++) {
            dump_str(f, "sni", r->snis[j]);
        }
        dump_str(f, "service_id", r->service_id);
        if ((r->service_id == NULL) != (r->service == NULL)) {
            abort();
        }
        if (r->service != NULL &&
            (!in_array(r->service, s->services, s->n_services, sizeof(*s->services)) ||
             strcmp(r->service->id, r->service_id) != 0)) {
            abort();
        }
        fputc('\n', f);
    }
}

static void
dump_certs(FILE *f, const struct st_snapshot *s)
{
    for (size_t i = 0; i < s->n_certificates; i++) {
        const struct st_certificate *c = &s->certificates[i];

        dump_str(f, "certificate", c->id);
        fprintf(f, " %" PRId64, c->created_at_ms);
        dump_str(f, "cert", c->cert);
        dump_str(f, "key", c->key);
        dump_str(f, "cert_alt", c->cert_alt);
        dump_str(f, "key_alt", c->key_alt);
        fputc('\n', f);
    }
    for (size_t i = 0; i < s->n_snis; i++) {
        const struct st_sni *n = &s->snis[i];

        dump_str(f, "sni", n->id);
        dump_str(f, "name", n->name);
        dump_str(f, "certificate_id", n->certificate_id);
        if (!in_array(n->certificate, s->certificates, s->n_certificates,
                      sizeof(*s->certificates)) ||
            strcmp(n->certificate->id, n->certificate_id) != 0) {
            abort();
        }
        fputc('\n', f);
    }
    for (size_t i = 0; i < s->n_ca_certificates; i++) {
        const struct st_ca_certificate *c = &s->ca_certificates[i];

        dump_str(f, "ca_certificate", c->id);
        dump_str(f, "cert", c->cert);
        dump_str(f, "digest", c->cert_digest);
        fputc('\n', f);
    }
}

/* Every field of s as text (checking its references on the way); the caller frees. */
static char *
dump(const struct st_snapshot *s)
{
    char *text = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&text, &n);

    if (f == NULL) {
        abort();
    }
    fprintf(f, "version %" PRIu64 " hash %s\n", s->version, s->hash);
    dump_services(f, s);
    dump_routes(f, s);
    dump_certs(f, s);
    if (fclose(f) != 0) {
        abort();
    }
    return text;
}

static void
parse(const uint8_t *p, size_t n)
{
    struct st_snapshot *s = NULL, *again = NULL;
    struct st_snapshot_memo *memo = st_snapshot_memo_new();
    struct st_err err = {0};
    char hash[65];
    uint64_t version;
    char *a, *b;

    if (memo == NULL) {
        abort();
    }
    if (st_snapshot_parse(p, n, memo, &s, &err) < 0) {
        if (s != NULL || err.msg[0] == '\0' || st_snapshot_memo_size(memo) != 0) {
            abort();
        }
        st_snapshot_memo_free(memo);
        return;
    }
    if (st_snapshot_peek(p, n, &version, hash) != 0 || version != s->version ||
        strcmp(hash, s->hash) != 0) {
        abort();
    }
    a = dump(s);
    /* again, through the digests the first parse left in the memo */
    if (st_snapshot_parse(p, n, memo, &again, &err) != 0) {
        abort();
    }
    b = dump(again);
    if (strcmp(a, b) != 0) {
        abort();
    }
    free(a);
    free(b);
    st_snapshot_free(s);
    st_snapshot_free(again);
    st_snapshot_memo_free(memo);
}

static void
read_id(const char *dir, const uint8_t *p, size_t n)
{
    struct st_err err = {0};
    char id[37];

    fz_write_file(dir, "strait.id", p, n);
    if (dp_cache_id(dir, id, &err) == 0) {
        if (!st_schema_is_uuid(id)) {
            abort();
        }
    } else if (err.msg[0] == '\0') {
        abort();
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz_in in = {data, data + size};
    const char *dir = fz_tmpdir();
    uint8_t mode = fz_byte(&in);
    size_t n = (size_t)(in.end - in.p);
    uint8_t *bytes = NULL, *back = NULL;
    struct st_err err = {0};
    size_t len, got = 0;

    if (mode & 1) {
        bytes = malloc(n + 1);
        if (bytes == NULL) {
            abort();
        }
        memcpy(bytes, in.p, n);
        len = n;
    } else {
        bytes = wrap(in.p, n, 1 + size, &len);
    }
    fz_write_file(dir, "config.cache", bytes, len);
    if (dp_cache_read(dir, dp_cache_max(16777216), &back, &got, &err) != 0 || got != len ||
        (len > 0 && memcmp(back, bytes, len) != 0)) {
        abort();
    }
    parse(back, got);
    if (mode & 2) {
        read_id(dir, in.p, n);
    }
    free(back);
    free(bytes);
    return 0;
}
