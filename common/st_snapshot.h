/* Entities <-> the protobuf Snapshot, with the canonical SHA-256 hash.
 * Only this module and st_syncmsg see the protobuf-c headers. */
#ifndef STRAIT_ST_SNAPSHOT_H
#define STRAIT_ST_SNAPSHOT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "st_entity.h"

struct st_err;

/* Builds and encodes a Snapshot from validated entities: lists[k] is an array of objects
 * of kind k as st_schema leaves them, or NULL for none. Sorts every list by id and every
 * set, so the same configuration always gives the same bytes and hash. Returns 0, *out
 * (malloc'd, the caller frees) and the hash, or a negative code with err filled. */
int st_snapshot_build(uint64_t version, json_t *const lists[ST_ENT__COUNT], uint8_t **out,
                      size_t *outlen, char hash[65], struct st_err *err);

/* The bytes an entity of kind k adds to an encoded snapshot (its message in Config, with
 * the field's tag and length), as st_snapshot_build encodes it. An encoded snapshot is
 * the sum of its entities' sizes plus at most ST_SNAPSHOT_ENVELOPE_MAX bytes (version,
 * hash, created_at, Config's tag and length), so the CP knows what a write does to the
 * snapshot's size without encoding it (issue 14). */
size_t st_snapshot_entity_size(enum st_entity_kind k, const json_t *obj);

#define ST_SNAPSHOT_ENVELOPE_MAX 96

/* Bytes of a protobuf varint holding v (the envelope's lengths and version). */
size_t st_snapshot_varint_size(uint64_t v);

/* One kind's entities in a parsed snapshot, sorted by id. */
struct st_snapshot_list {
    void *items; /* struct st_<kind>[n] */
    size_t n;
};

/* A decoded, verified snapshot: entities as plain structs (st_entity.h). */
struct st_snapshot {
    uint64_t version;
    char hash[65];
    union {
        struct st_snapshot_list lists[ST_ENT__COUNT]; /* by kind: the codec's view */
        struct {
            ST_ENTITY_SNAPSHOT_LISTS /* by name: services, n_services, ...: the DP's view */
        };
    };
    void *priv; /* decoder state owning the strings */
};

/* The named view must cover the lists exactly (the order is the kinds', checked in
 * tests/unit/test_st_entity.c). */
_Static_assert(sizeof(struct {ST_ENTITY_SNAPSHOT_LISTS}) ==
                   sizeof(struct st_snapshot_list[ST_ENT__COUNT]),
               "ST_ENTITY_SNAPSHOT_LISTS: one array and count per kind");

/* What st_snapshot_parse remembers from one successful parse to the next: a digest of
 * every entity that passed the check, so that the next parse fills an unchanged entity
 * straight from its message. Owned by its caller (the DP's sync client); one parse at a
 * time uses it (no lock). */
struct st_snapshot_memo;

struct st_snapshot_memo *st_snapshot_memo_new(void);
void st_snapshot_memo_free(struct st_snapshot_memo *memo); /* NULL: no-op */

/* How many entities memo remembers (that the next parse fills unchecked). */
size_t st_snapshot_memo_size(const struct st_snapshot_memo *memo);

/* Decodes an encoded Snapshot, hashes the config bytes it carries (never a
 * re-encoding) and refuses a mismatch (-ST_EHASH), then validates every entity with
 * st_schema (-ST_ESCHEMA; as stored entities) and resolves every reference (-ST_EFOREIGN
 * when one is missing). With a memo, entities that passed in the memo's last successful
 * parse are not checked again, and a success replaces what the memo holds. Returns 0 and
 * a new snapshot (st_snapshot_free), or a negative code with err filled. */
int st_snapshot_parse(const uint8_t *p, size_t len, struct st_snapshot_memo *memo,
                      struct st_snapshot **out, struct st_err *err);

void st_snapshot_free(struct st_snapshot *s);

/* Reads only version and hash without verifying (for logs). Returns 0 or -ST_EPARSE. */
int st_snapshot_peek(const uint8_t *p, size_t len, uint64_t *version, char hash[65]);

#endif
