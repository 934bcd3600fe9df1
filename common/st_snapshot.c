/* Entities <-> the protobuf Snapshot (proto/strait/v1/snapshot.proto) with the
 * canonical SHA-256 hash.
 *
 * Canonical form: every entity list sorted by id, sets (tags, protocols, snis) sorted;
 * records and ordered lists (sources, a service's ca_certificates) keep the user's order.
 * Config holds neither version nor updated_at, so the hash changes only when the
 * configuration does. The parser hashes the exact Config bytes carried in the Snapshot,
 * never a re-encoding.
 *
 * One codec for every kind: the entity descriptions (st_entity.h: each field's message
 * field `pb`, its place `dp`/`dp_off` in the DP's struct) and protobuf-c's own field
 * descriptors drive JSON -> message (build), message -> JSON (the check) and message ->
 * DP struct (the fill, by offset). A field the message lacks is its schema default on
 * every path.
 *
 * The parser trusts nothing: every entity goes back to its JSON shape through
 * st_schema, so the DP refuses what the CP would, and a reference that points nowhere
 * refuses the snapshot. When validation rewrites an entity (a buggy or hostile CP), the
 * entity is filled from what validation left.
 *
 * Scale (100k routes): decoded strings and the small per-entity arrays are copied into
 * an arena (s->priv) and each entity's JSON object is dropped once checked, so a parsed
 * snapshot is a handful of blocks, freed in a few ms wherever the last reference goes
 * (often a worker thread, after a swap). An entity unchanged since the last successful
 * parse is filled from its message unchecked (see "entities that passed before"). */
#include "st_snapshot.h"

#include <pthread.h>
#include <stdalign.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "st_cidr.h"
#include "st_err.h"
#include "st_schema.h"
#include "st_ssl.h"
#include "st_util.h"
#include "strait/v1/snapshot.pb-c.h"

/* ------------------------------------------------------------------------ */
/* arena: bump allocation in large chunks, freed at once                      */

#define ARENA_CHUNK (256 * 1024)

struct arena_chunk {
    struct arena_chunk *next;
    size_t size;
    alignas(max_align_t) unsigned char data[];
};

struct arena {
    struct arena_chunk *head;
    unsigned char *p;
    size_t left;
};

/* n zeroed bytes aligned for any type; lives until arena_fini(). */
static void *
arena_alloc(struct arena *a, size_t n)
{
    const size_t align = alignof(max_align_t);
    void *out;

    n = (n + align - 1) & ~(align - 1);
    if (n > a->left) {
        size_t size = n > ARENA_CHUNK / 4 ? n : ARENA_CHUNK;
        struct arena_chunk *c = st_xmalloc(sizeof(*c) + size);

        c->next = a->head;
        c->size = size;
        a->head = c;
        if (size != ARENA_CHUNK) {
            /* a big block of its own: the current chunk keeps its room */
            memset(c->data, 0, n);
            return c->data;
        }
        a->p = c->data;
        a->left = size;
    }
    out = a->p;
    a->p += n;
    a->left -= n;
    memset(out, 0, n);
    return out;
}

/* A copy of s in the arena (NULL stays NULL). */
static const char *
arena_str(struct arena *a, const char *s)
{
    size_t n;
    char *out;

    if (s == NULL) {
        return NULL;
    }
    n = strlen(s) + 1;
    out = arena_alloc(a, n);
    memcpy(out, s, n);
    return out;
}

/* Forgets everything allocated, keeping one chunk for what comes next. */
static void
arena_reset(struct arena *a)
{
    struct arena_chunk *c = a->head, *keep = NULL;

    while (c != NULL) {
        struct arena_chunk *next = c->next;

        if (keep == NULL && c->size == ARENA_CHUNK) {
            keep = c;
        } else {
            free(c);
        }
        c = next;
    }
    a->head = keep;
    a->p = keep != NULL ? keep->data : NULL;
    a->left = keep != NULL ? keep->size : 0;
    if (keep != NULL) {
        keep->next = NULL;
    }
}

static void
arena_fini(struct arena *a)
{
    arena_reset(a);
    free(a->head);
    memset(a, 0, sizeof(*a));
}

/* ------------------------------------------------------------------------ */
/* build                                                                      */

/* One entity to encode, with its id looked up once (the sort compares ids). */
struct ent {
    const char *id;
    const json_t *o;
};

/* What the Config being built holds: ents[k] are the sorted entities of kind k (n[k]
 * of them); the messages, their pointer arrays and every small list live in `a`. */
struct build {
    struct ent *ents[ST_ENT__COUNT];
    size_t n[ST_ENT__COUNT];
    struct arena a;
};

/* Compares strings through pointers to them: string arrays, and arrays of structs that
 * start with a string (struct ent and every entity struct start with their id). */
static int
cmp_cstr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sorts n items of size bytes at base (each starting with a string) by that string, as
 * cmp_cstr; returns the first string that appears twice, or NULL. */
static const char *
sort_find_repeat(void *base, size_t n, size_t size)
{
    qsort(base, n, size, cmp_cstr);
    for (size_t i = 1; i < n; i++) {
        const char *s = *(const char *const *)((char *)base + i * size);

        if (strcmp(*(const char *const *)((char *)base + (i - 1) * size), s) == 0) {
            return s;
        }
    }
    return NULL;
}

/* The objects of a JSON array sorted by id. Returns 0 or -ST_ESCHEMA (no id, or a
 * repeated id) with err filled; *out is malloc'd (caller frees). */
static int
sorted_entities(json_t *arr, const char *what, struct ent **out, size_t *n, struct st_err *err)
{
    size_t cnt = json_is_array(arr) ? json_array_size(arr) : 0;
    const char *dup;
    struct ent *v;

    if (arr != NULL && !json_is_array(arr) && !json_is_null(arr)) {
        return st_err_set(err, -ST_ESCHEMA, what, "%s: expected an array", what);
    }
    v = st_xcalloc(cnt + 1, sizeof(*v));
    for (size_t i = 0; i < cnt; i++) {
        v[i].o = json_array_get(arr, i);
        v[i].id = json_string_value(json_object_get(v[i].o, "id"));
        if (v[i].id == NULL) {
            free(v);
            return st_err_set(err, -ST_ESCHEMA, what, "%s[%zu]: an entity with an id expected",
                              what, i);
        }
    }
    dup = sort_find_repeat(v, cnt, sizeof(*v));
    if (dup != NULL) {
        free(v); /* dup is the object's string */
        return st_err_set(err, -ST_EUNIQUE, what, "%s: id %s appears twice", what, dup);
    }
    *out = v;
    *n = cnt;
    return 0;
}

static void
build_fini(struct build *b)
{
    for (int k = 0; k < ST_ENT__COUNT; k++) {
        free(b->ents[k]);
    }
    arena_fini(&b->a);
}

size_t
st_snapshot_varint_size(uint64_t v)
{
    size_t n = 1;

    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* ------------------------------------------------------------------------ */
/* parse: protobuf -> JSON (validated) -> plain structs                       */

/* ---- entities that passed before ----------------------------------------- */

/* The first 16 bytes of SHA-256 over the kind and an entity's message, for every
 * entity of the last successful parse that passed the check with its JSON left as it
 * was (so the message alone gives its struct). The check depends on nothing but those
 * bytes, so the same bytes pass again: a configuration change checks only the entities
 * it changed, and the others skip the JSON round trip (certificates save OpenSSL's PEM
 * parsing, the bulk of the time). Sorted; the memo belongs to its caller (the sync
 * client), which parses on one thread at a time. */
#define DIGEST_LEN 16

struct digest {
    uint8_t b[DIGEST_LEN];
};

struct st_snapshot_memo {
    struct digest *v;
    size_t n;
};

struct st_snapshot_memo *
st_snapshot_memo_new(void)
{
    return st_xcalloc(1, sizeof(struct st_snapshot_memo));
}

size_t
st_snapshot_memo_size(const struct st_snapshot_memo *memo)
{
    return memo->n;
}

void
st_snapshot_memo_free(struct st_snapshot_memo *memo)
{
    if (memo != NULL) {
        free(memo->v);
        free(memo);
    }
}

/* This parse's digests, one per entity; ok: may be remembered. */
struct digests {
    struct digest *v;
    bool *ok;
    size_t n;
};

static int
cmp_digest(const void *a, const void *b)
{
    return memcmp(a, b, DIGEST_LEN);
}

/* Digests m (of kind k) into the next slot of d; returns that slot. */
static size_t
digest_add(struct digests *d, enum st_entity_kind k, const ProtobufCMessage *m)
{
    size_t len = protobuf_c_message_get_packed_size(m) + 1;
    uint8_t stack[4096];
    uint8_t *buf = len <= sizeof(stack) ? stack : st_xmalloc(len);
    uint8_t md[32];

    buf[0] = (uint8_t)k;
    protobuf_c_message_pack(m, buf + 1);
    st_ssl_sha256(buf, len, md);
    if (buf != stack) {
        free(buf);
    }
    memcpy(d->v[d->n].b, md, DIGEST_LEN);
    return d->n++;
}

static bool
passed_has(const struct st_snapshot_memo *memo, const struct digest *dg)
{
    return memo != NULL && memo->n > 0 &&
           bsearch(dg, memo->v, memo->n, sizeof(*dg), cmp_digest) != NULL;
}

/* Remembers the digests of d marked ok in memo (instead of the last parse's). */
static void
passed_set(struct st_snapshot_memo *memo, struct digests *d)
{
    struct digest *v = st_xcalloc(d->n + 1, sizeof(*v));
    size_t n = 0;

    for (size_t i = 0; i < d->n; i++) {
        if (d->ok[i]) {
            v[n++] = d->v[i];
        }
    }
    qsort(v, n, sizeof(*v), cmp_digest);
    free(memo->v);
    memo->v = v;
    memo->n = n;
}

/* Strings and small arrays go into `a`; `scratch` holds the message of what validation
 * left of an entity it rewrote (reset after each). */
struct parse {
    struct st_snapshot *s;
    struct arena *a;
    struct arena scratch;
    struct digests d;
    struct st_snapshot_memo *memo; /* NULL: none */
    json_t *pending;               /* a checked object a fixed message points into */
};

/* ------------------------------------------------------------------------ */
/* the generic codec: the descriptions (st_entity.h) and protobuf-c's own     */

/* One field of a kind that the snapshot carries, with its protobuf field. */
struct plan_field {
    const struct st_field *f;
    const ProtobufCFieldDescriptor *pb;
    const struct plan_field *sub; /* RECORDS: the record's fields */
    size_t n_sub;
    json_t *dflt; /* the schema's default (f->dflt), what an absent field is; NULL: none */
};

/* The most fields a kind's message carries (a kind with more aborts at the first use
 * of the codec, in every test). */
#define PLAN_FIELDS_MAX 32

/* A kind's message in Config and its fields. */
struct plan_kind {
    const ProtobufCFieldDescriptor *list; /* Config's repeated field */
    const ProtobufCMessageDescriptor *msg;
    struct plan_field fields[PLAN_FIELDS_MAX];
    size_t n_fields;
    const ProtobufCMessage *dflt; /* every field with a default set to it */
};

#define PLAN_SUB_MAX 8 /* fields of a record */

static struct {
    struct plan_kind kinds[ST_ENT__COUNT];
    struct plan_field subs[ST_ENT__COUNT][PLAN_FIELDS_MAX][PLAN_SUB_MAX];
    enum st_entity_kind order[ST_ENT__COUNT];
    struct arena a; /* the default messages */
} plan;

static pthread_once_t plan_once = PTHREAD_ONCE_INIT;

static ProtobufCMessage *msg_new_from_json(struct arena *a, const ProtobufCMessageDescriptor *desc,
                                           const struct plan_field *fields, size_t n,
                                           const json_t *o);

/* The fields of `fields` that message desc carries into out (at most max). A field the
 * snapshot does not carry (ST_FIELD_F_NO_SNAP, Kong's HTTP-only ones) has no protobuf
 * field; any other must have one (tests/unit/test_st_snapshot.c checks every kind). */
static size_t
plan_fields(const ProtobufCMessageDescriptor *desc, const struct st_field *fields,
            struct plan_field *out, size_t max)
{
    size_t n = 0;

    for (const struct st_field *f = fields; f->name != NULL; f++) {
        const ProtobufCFieldDescriptor *pb;

        if ((f->flags & (ST_FIELD_F_NO_SNAP | ST_FIELD_F_HTTP_ONLY)) != 0) {
            continue;
        }
        if (n == max) {
            abort(); /* raise PLAN_FIELDS_MAX or PLAN_SUB_MAX */
        }
        pb = protobuf_c_message_descriptor_get_field_by_name(desc, f->pb != NULL ? f->pb : f->name);
        if (pb == NULL) {
            abort(); /* a description that does not match the .proto */
        }
        out[n].f = f;
        out[n].pb = pb;
        out[n].dflt = f->dflt != NULL ? json_loads(f->dflt, JSON_DECODE_ANY, NULL) : NULL;
        n++;
    }
    return n;
}

static void
plan_init(void)
{
    const ProtobufCMessageDescriptor *cfg = &strait__v1__config__descriptor;

    for (int k = 0; k < ST_ENT__COUNT; k++) {
        struct plan_kind *pk = &plan.kinds[k];
        json_t *dflt = json_object();

        pk->list = protobuf_c_message_descriptor_get_field_by_name(cfg, st_entities[k]->name);
        if (pk->list == NULL) {
            abort();
        }
        pk->msg = pk->list->descriptor;
        pk->n_fields = plan_fields(pk->msg, st_entities[k]->fields, pk->fields, PLAN_FIELDS_MAX);
        for (size_t i = 0; i < pk->n_fields; i++) {
            struct plan_field *pf = &pk->fields[i];

            if (pf->f->type == ST_FT_RECORDS) {
                pf->n_sub =
                    plan_fields(pf->pb->descriptor, pf->f->sub, plan.subs[k][i], PLAN_SUB_MAX);
                pf->sub = plan.subs[k][i];
            }
            if (pf->dflt != NULL) {
                json_object_set(dflt, pf->f->name, pf->dflt);
            }
        }
        /* its strings point into the fields' dflt, kept as long */
        pk->dflt = msg_new_from_json(&plan.a, pk->msg, pk->fields, pk->n_fields, dflt);
        json_decref(dflt);
    }
    st_entity_order(plan.order);
}

static const struct plan_kind *
plan_of(enum st_entity_kind k)
{
    pthread_once(&plan_once, plan_init);
    return &plan.kinds[k];
}

#define AT(p, off, type) (*(type *)((char *)(p) + (off)))

/* ---- JSON -> message ------------------------------------------------------ */

/* A record's canonical text in the snapshot: compact JSON, keys sorted; NULL for no
 * object. */
static char *
record_text(struct arena *a, const json_t *v)
{
    char *text = json_is_object(v) ? json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    char *out = text != NULL ? (char *)arena_str(a, text) : NULL;

    free(text);
    return out;
}

/* A new message of desc in the arena, its fields from o. */
static ProtobufCMessage *
msg_new_from_json(struct arena *a, const ProtobufCMessageDescriptor *desc,
                  const struct plan_field *fields, size_t n, const json_t *o)
{
    ProtobufCMessage *m = arena_alloc(a, desc->sizeof_message);

    desc->message_init(m);
    for (size_t i = 0; i < n; i++) {
        const struct st_field *f = fields[i].f;
        const ProtobufCFieldDescriptor *pb = fields[i].pb;
        const json_t *v = json_object_get(o, f->name);

        if (pb->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t cnt = json_is_array(v) ? json_array_size(v) : 0, k = 0;
            void **arr;

            if (cnt == 0) {
                continue;
            }
            arr = arena_alloc(a, cnt * sizeof(*arr));
            for (size_t j = 0; j < cnt; j++) {
                const json_t *el = json_array_get(v, j);

                if (pb->type == PROTOBUF_C_TYPE_MESSAGE) {
                    arr[k++] =
                        msg_new_from_json(a, pb->descriptor, fields[i].sub, fields[i].n_sub, el);
                } else if (json_is_string(el)) {
                    arr[k++] = (char *)json_string_value(el);
                }
            }
            /* sets are sorted; arrays, records and foreign sets keep the user's order */
            if (f->type == ST_FT_SET && k > 1) {
                qsort(arr, k, sizeof(*arr), cmp_cstr);
            }
            if (k > 0) {
                AT(m, pb->quantifier_offset, size_t) = k;
                AT(m, pb->offset, void **) = arr;
            }
            continue;
        }
        if (f->type == ST_FT_FOREIGN) {
            v = json_object_get(v, "id");
        }
        switch (pb->type) {
        case PROTOBUF_C_TYPE_STRING:
            AT(m, pb->offset, char *) =
                f->type == ST_FT_RECORD ? record_text(a, v) : (char *)json_string_value(v);
            continue;
        case PROTOBUF_C_TYPE_UINT32:
            if (!json_is_integer(v)) {
                continue;
            }
            AT(m, pb->offset, uint32_t) = (uint32_t)json_integer_value(v);
            break;
        case PROTOBUF_C_TYPE_INT64:
            if (!json_is_integer(v)) {
                continue;
            }
            AT(m, pb->offset, int64_t) = (int64_t)json_integer_value(v);
            break;
        case PROTOBUF_C_TYPE_BOOL:
            if (!json_is_boolean(v)) {
                continue;
            }
            AT(m, pb->offset, protobuf_c_boolean) = json_is_true(v);
            break;
        default:
            abort(); /* a type the descriptions do not use */
        }
        if (pb->label == PROTOBUF_C_LABEL_OPTIONAL) {
            AT(m, pb->quantifier_offset, protobuf_c_boolean) = 1;
        }
    }
    return m;
}

/* ---- message -> JSON ------------------------------------------------------ */

/* Whether m holds field pb (a repeated one: at least one element). */
static bool
msg_has(const ProtobufCFieldDescriptor *pb, const ProtobufCMessage *m)
{
    if (pb->label == PROTOBUF_C_LABEL_REPEATED) {
        return AT(m, pb->quantifier_offset, size_t) > 0;
    }
    if (pb->type == PROTOBUF_C_TYPE_STRING) {
        return AT(m, pb->offset, const char *) != NULL;
    }
    return pb->label != PROTOBUF_C_LABEL_OPTIONAL ||
           AT(m, pb->quantifier_offset, protobuf_c_boolean);
}

/* The JSON shape of message m (of fields), a field it lacks being the schema's default,
 * or NULL when a string is not UTF-8. */
static json_t *
msg_to_json(const struct plan_field *fields, size_t n, const ProtobufCMessage *m)
{
    json_t *o = json_object();

    for (size_t i = 0; i < n; i++) {
        const struct st_field *f = fields[i].f;
        const ProtobufCFieldDescriptor *pb = fields[i].pb;
        json_t *v = NULL;

        if (!msg_has(pb, m)) {
            if (fields[i].dflt != NULL) {
                json_object_set_new(o, f->name, json_deep_copy(fields[i].dflt));
            }
            continue;
        }
        if (pb->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t cnt = AT(m, pb->quantifier_offset, size_t);
            void *const *arr = AT(m, pb->offset, void *const *);

            v = json_array();
            json_object_set_new(o, f->name, v);
            for (size_t j = 0; j < cnt; j++) {
                json_t *el = pb->type == PROTOBUF_C_TYPE_MESSAGE
                                 ? msg_to_json(fields[i].sub, fields[i].n_sub, arr[j])
                                 : json_string(arr[j]);
                if (el == NULL) {
                    json_decref(o);
                    return NULL;
                }
                json_array_append_new(v, el);
            }
            continue;
        }
        switch (pb->type) {
        case PROTOBUF_C_TYPE_STRING: {
            const char *s = AT(m, pb->offset, const char *);

            v = f->type == ST_FT_RECORD ? json_loads(s, 0, NULL) : json_string(s);
            if (v == NULL) {
                json_decref(o);
                return NULL;
            }
            if (f->type == ST_FT_FOREIGN) {
                v = json_pack("{s:o}", "id", v);
            }
            break;
        }
        case PROTOBUF_C_TYPE_UINT32:
            v = json_integer(AT(m, pb->offset, uint32_t));
            break;
        case PROTOBUF_C_TYPE_INT64:
            v = json_integer(AT(m, pb->offset, int64_t));
            break;
        case PROTOBUF_C_TYPE_BOOL:
            v = json_boolean(AT(m, pb->offset, protobuf_c_boolean));
            break;
        default:
            abort();
        }
        json_object_set_new(o, f->name, v);
    }
    return o;
}

/* Whether the checked object o is what message m says: validation changed nothing (a
 * null is an absent field, the only absence a message has). */
static bool
msg_json_same(const struct plan_field *fields, size_t n, const ProtobufCMessage *m, const json_t *o)
{
    const char *key;
    json_t *val;

    /* a key the snapshot does not carry may only be null */
    json_object_foreach((json_t *)o, key, val)
    {
        size_t i = 0;

        while (i < n && strcmp(fields[i].f->name, key) != 0) {
            i++;
        }
        if (i == n && !json_is_null(val)) {
            return false;
        }
    }
    for (size_t i = 0; i < n; i++) {
        const struct st_field *f = fields[i].f;
        const ProtobufCFieldDescriptor *pb = fields[i].pb;
        const json_t *v = json_object_get(o, f->name);
        bool same = true;

        if (json_is_null(v)) {
            v = NULL;
        }
        if (fields[i].dflt != NULL && !msg_has(pb, m)) {
            same = v != NULL && json_equal((json_t *)v, fields[i].dflt);
        } else if (pb->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t cnt = AT(m, pb->quantifier_offset, size_t);
            void *const *arr = AT(m, pb->offset, void *const *);

            if (v == NULL || (json_is_array(v) && json_array_size(v) == 0)) {
                same = cnt == 0;
            } else if (!json_is_array(v) || json_array_size(v) != cnt) {
                same = false;
            }
            for (size_t j = 0; same && v != NULL && j < cnt; j++) {
                const json_t *el = json_array_get(v, j);

                same = pb->type == PROTOBUF_C_TYPE_MESSAGE
                           ? json_is_object(el) &&
                                 msg_json_same(fields[i].sub, fields[i].n_sub, arr[j], el)
                           : json_is_string(el) && strcmp(json_string_value(el), arr[j]) == 0;
            }
        } else if (pb->type == PROTOBUF_C_TYPE_STRING) {
            const char *s = AT(m, pb->offset, const char *);

            if (f->type == ST_FT_FOREIGN && v != NULL) {
                v = json_is_object(v) && json_object_size(v) == 1 ? json_object_get(v, "id")
                                                                  : json_true();
            }
            if (f->type == ST_FT_RECORD) {
                char *text = v != NULL ? json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS) : NULL;

                same = s == NULL ? v == NULL : text != NULL && strcmp(text, s) == 0;
                free(text);
            } else {
                same = s == NULL ? v == NULL
                                 : json_is_string(v) && strcmp(json_string_value(v), s) == 0;
            }
        } else if (pb->label == PROTOBUF_C_LABEL_OPTIONAL &&
                   !AT(m, pb->quantifier_offset, protobuf_c_boolean)) {
            same = v == NULL;
        } else if (pb->type == PROTOBUF_C_TYPE_BOOL) {
            same = json_is_boolean(v) &&
                   json_is_true(v) == (AT(m, pb->offset, protobuf_c_boolean) != 0);
        } else if (pb->type == PROTOBUF_C_TYPE_UINT32) {
            same = json_is_integer(v) && json_integer_value(v) == AT(m, pb->offset, uint32_t);
        } else {
            same = json_is_integer(v) && json_integer_value(v) == AT(m, pb->offset, int64_t);
        }
        if (!same) {
            return false;
        }
    }
    return true;
}

/* ---- message -> the DP's struct ------------------------------------------ */

/* The entity of kind k whose id is id in a parsed snapshot (its kind already sorted),
 * or NULL. Every DP struct starts with its id. */
static const void *
find_entity(const struct st_snapshot *s, enum st_entity_kind k, const char *id)
{
    const char *key = id;

    return bsearch(&key, s->lists[k].items, s->lists[k].n, st_entities[k]->dp_size, cmp_cstr);
}

/* "client certificate", "CA certificate": what a reference error calls field f. */
static void
ref_words(const struct st_field *f, char *buf, size_t size)
{
    const char *src = f->type == ST_FT_FOREIGN_SET ? f->ref->singular : f->name;
    size_t i = 0;

    if (strncmp(src, "ca_", 3) == 0) {
        st_snprintf(buf, size, "CA ");
        src += 3;
        i = 3;
    }
    for (; *src != '\0' && i + 1 < size; src++) {
        buf[i++] = *src == '_' ? ' ' : *src;
    }
    buf[i] = '\0';
}

static int
ref_missing(enum st_entity_kind k, const struct st_field *f, const char *id, const char *ref,
            struct st_err *err)
{
    char words[64];

    ref_words(f, words, sizeof(words));
    return st_err_set(err, -ST_EFOREIGN, st_entity_name(k),
                      "%s %s: its %s %s is not in the snapshot", st_entities[k]->singular, id,
                      words, ref);
}

/* An {ip, port} record into e; -ST_EPARSE for an ip the schema accepted but st_cidr
 * refuses. */
static int
endpoint_from_msg(const struct plan_field *sub, size_t n, const ProtobufCMessage *m,
                  struct st_endpoint *e)
{
    for (size_t i = 0; i < n; i++) {
        const ProtobufCFieldDescriptor *pb = sub[i].pb;

        if (pb->type == PROTOBUF_C_TYPE_STRING) {
            const char *ip = AT(m, pb->offset, const char *);

            if (ip != NULL) {
                if (st_cidr_parse(ip, &e->ip) != 0) {
                    return -ST_EPARSE;
                }
                e->has_ip = true;
            }
        } else if (AT(m, pb->quantifier_offset, protobuf_c_boolean)) {
            e->has_port = true;
            e->port = (uint16_t)AT(m, pb->offset, uint32_t);
        }
    }
    return 0;
}

/* Fills the DP struct ent of kind k from message m, by the descriptions' offsets,
 * resolving references against s (their kinds parsed and sorted before k). */
static int
ent_from_msg(struct arena *a, const struct st_snapshot *s, enum st_entity_kind k,
             const ProtobufCMessage *m, void *ent, struct st_err *err)
{
    const struct plan_kind *pk = plan_of(k);

    for (size_t i = 0; i < pk->n_fields; i++) {
        const struct st_field *f = pk->fields[i].f;
        const ProtobufCFieldDescriptor *pb = pk->fields[i].pb;
        /* a field m lacks is its default */
        const ProtobufCMessage *src = msg_has(pb, m) || pk->fields[i].dflt == NULL ? m : pk->dflt;
        bool has = msg_has(pb, src);
        size_t cnt = 0;
        void *const *arr = NULL;

        if (pb->label == PROTOBUF_C_LABEL_REPEATED) {
            cnt = AT(src, pb->quantifier_offset, size_t);
            arr = AT(src, pb->offset, void *const *);
        }
        switch (f->dp) {
        case ST_DP_NONE:
            break;
        case ST_DP_STR:
            AT(ent, f->dp_off, const char *) = arena_str(a, AT(src, pb->offset, const char *));
            break;
        case ST_DP_U16:
            AT(ent, f->dp_off, uint16_t) = has ? (uint16_t)AT(src, pb->offset, uint32_t) : 0;
            break;
        case ST_DP_U32:
            AT(ent, f->dp_off, uint32_t) = has ? AT(src, pb->offset, uint32_t) : 0;
            break;
        case ST_DP_I64:
            AT(ent, f->dp_off, int64_t) = has ? AT(src, pb->offset, int64_t) : 0;
            break;
        case ST_DP_BOOL:
            AT(ent, f->dp_off, bool) = has && AT(src, pb->offset, protobuf_c_boolean);
            break;
        case ST_DP_TRISTATE:
            AT(ent, f->dp_off, int) = has ? (AT(src, pb->offset, protobuf_c_boolean) ? 1 : 0) : -1;
            break;
        case ST_DP_INT:
            AT(ent, f->dp_off, int) = has ? (int)(int64_t)AT(src, pb->offset, uint32_t) : -1;
            break;
        case ST_DP_PROTO: {
            unsigned flags = 0;

            if (pb->label != PROTOBUF_C_LABEL_REPEATED) {
                flags = st_proto_parse(AT(src, pb->offset, const char *));
            }
            for (size_t j = 0; j < cnt; j++) {
                flags |= st_proto_parse(arr[j]);
            }
            AT(ent, f->dp_off, unsigned) = flags;
            break;
        }
        case ST_DP_STRS: {
            const char **v = arena_alloc(a, (cnt + 1) * sizeof(*v));

            for (size_t j = 0; j < cnt; j++) {
                v[j] = arena_str(a, arr[j]);
            }
            AT(ent, f->dp_off, const char **) = v;
            AT(ent, f->dp_off2, size_t) = cnt;
            break;
        }
        case ST_DP_ENDPOINTS: {
            struct st_endpoint *v = arena_alloc(a, (cnt + 1) * sizeof(*v));

            AT(ent, f->dp_off, struct st_endpoint *) = v;
            AT(ent, f->dp_off2, size_t) = cnt;
            for (size_t j = 0; j < cnt; j++) {
                if (endpoint_from_msg(pk->fields[i].sub, pk->fields[i].n_sub, arr[j], &v[j]) != 0) {
                    return st_err_set(err, -ST_EPARSE, st_entity_name(k), "%s %s: bad ip",
                                      st_entities[k]->singular, AT(ent, 0, const char *));
                }
            }
            break;
        }
        case ST_DP_REF: {
            const char *id = AT(src, pb->offset, const char *);

            if (id == NULL) {
                break;
            }
            AT(ent, f->dp_off, const void *) = find_entity(s, f->ref->kind, id);
            if (AT(ent, f->dp_off, const void *) == NULL) {
                return ref_missing(k, f, AT(ent, 0, const char *), id, err);
            }
            if (f->dp_off2 != ST_DP_NO_OFF) {
                AT(ent, f->dp_off2, const char *) = arena_str(a, id);
            }
            break;
        }
        case ST_DP_REFS: {
            const void **v = arena_alloc(a, (cnt + 1) * sizeof(*v));

            AT(ent, f->dp_off, const void **) = v;
            for (size_t j = 0; j < cnt; j++) {
                v[j] = find_entity(s, f->ref->kind, arr[j]);
                if (v[j] == NULL) {
                    return ref_missing(k, f, AT(ent, 0, const char *), arr[j], err);
                }
                AT(ent, f->dp_off2, size_t) = j + 1;
            }
            break;
        }
        }
    }
    return 0;
}

/* ---- each kind, generically ---------------------------------------------- */

/* The id of an entity message (the descriptions' first field). */
static const char *
msg_id(const struct plan_kind *pk, const ProtobufCMessage *m)
{
    return AT(m, pk->fields[0].pb->offset, const char *);
}

/* Checks message m of kind k as the CP would: its JSON shape through st_schema, as a
 * stored entity (what was valid when written stays valid, e.g. a CA certificate that
 * has expired since). *same tells whether validation left that JSON as it was; when it
 * did not (a buggy or hostile CP: a set with repeats, a CA certificate's digest that is
 * not its cert's), *mp becomes the message of what validation left, in ps->scratch. */
static int
check_msg(struct parse *ps, enum st_entity_kind k, const struct plan_kind *pk,
          const ProtobufCMessage **mp, bool *same, struct st_err *err)
{
    const ProtobufCMessage *m = *mp;
    json_t *obj = msg_to_json(pk->fields, pk->n_fields, m);
    json_t *fields = NULL;
    char msg[512];

    if (obj == NULL) {
        return st_err_set(err, -ST_EPARSE, st_entity_name(k), "%s %.40s: a string is not UTF-8",
                          st_entities[k]->singular, msg_id(pk, m));
    }
    if (st_schema_validate_ex(k, obj, ST_SCHEMA_F_STORED, &fields) != 0) {
        st_schema_message(fields, msg, sizeof(msg));
        json_decref(fields);
        json_decref(obj);
        return st_err_set(err, -ST_ESCHEMA, st_entity_name(k), "%s %.40s: %s",
                          st_entities[k]->singular, msg_id(pk, m), msg);
    }
    *same = msg_json_same(pk->fields, pk->n_fields, m, obj);
    if (*same) {
        json_decref(obj);
    } else {
        *mp = msg_new_from_json(&ps->scratch, pk->msg, pk->fields, pk->n_fields, obj);
        ps->pending = obj; /* strings of *mp point into obj: the caller fills before obj goes */
    }
    return 0;
}

/* A required unique string the DP keeps (snis' name: certificate choice relies on it)
 * appears once among the n entities of kind k at base. */
static int
required_unique(enum st_entity_kind k, const struct plan_kind *pk, const char *base, size_t n,
                struct st_err *err)
{
    const unsigned want = ST_FIELD_F_REQUIRED | ST_FIELD_F_UNIQUE;

    for (size_t i = 0; i < pk->n_fields; i++) {
        const struct st_field *f = pk->fields[i].f;
        const char **v, *dup;

        if ((f->flags & want) != want || f->dp != ST_DP_STR) {
            continue;
        }
        v = st_xcalloc(n + 1, sizeof(*v));
        for (size_t j = 0; j < n; j++) {
            v[j] = AT(base + j * st_entities[k]->dp_size, f->dp_off, const char *);
        }
        dup = sort_find_repeat(v, n, sizeof(*v));
        free(v); /* dup is the entity's string */
        if (dup != NULL) {
            return st_err_set(err, -ST_EUNIQUE, st_entity_name(k), "%s %s %s appears twice",
                              st_entities[k]->singular, f->name, dup);
        }
    }
    return 0;
}

/* The entities of kind k in cfg into ps->s (sorted by id, references resolved). */
static int
parse_kind(struct parse *ps, const ProtobufCMessage *cfg, enum st_entity_kind k, struct st_err *err)
{
    const struct plan_kind *pk = plan_of(k);
    size_t n = AT(cfg, pk->list->quantifier_offset, size_t);
    ProtobufCMessage *const *msgs = AT(cfg, pk->list->offset, ProtobufCMessage *const *);
    size_t size = st_entities[k]->dp_size;
    char *base = st_xcalloc(n + 1, size);
    const char *dup;
    int rc;

    ps->s->lists[k].items = base;
    for (size_t i = 0; i < n; i++) {
        size_t d = digest_add(&ps->d, k, msgs[i]);
        const ProtobufCMessage *m = msgs[i];
        bool same = true;

        if (!passed_has(ps->memo, &ps->d.v[d])) {
            rc = check_msg(ps, k, pk, &m, &same, err);
            if (rc != 0) {
                return rc;
            }
        }
        rc = ent_from_msg(ps->a, ps->s, k, m, base + i * size, err);
        json_decref(ps->pending);
        ps->pending = NULL;
        arena_reset(&ps->scratch);
        if (rc != 0) {
            return rc;
        }
        /* remembered only when the message alone gives the entity */
        ps->d.ok[d] = same;
    }
    ps->s->lists[k].n = n;
    dup = sort_find_repeat(base, n, size);
    if (dup != NULL) {
        return st_err_set(err, -ST_EUNIQUE, st_entity_name(k), "%s %s appears twice",
                          st_entities[k]->singular, dup);
    }
    return required_unique(k, pk, base, n, err);
}

/* ---- build ---------------------------------------------------------------- */

/* Encodes the Config of the sorted entities into a malloc'd buffer. */
static uint8_t *
encode_config(struct build *b, size_t *len)
{
    Strait__V1__Config cfg = STRAIT__V1__CONFIG__INIT;
    uint8_t *buf;

    for (int k = 0; k < ST_ENT__COUNT; k++) {
        const struct plan_kind *pk = plan_of((enum st_entity_kind)k);
        ProtobufCMessage **v = arena_alloc(&b->a, (b->n[k] + 1) * sizeof(*v));

        for (size_t i = 0; i < b->n[k]; i++) {
            v[i] = msg_new_from_json(&b->a, pk->msg, pk->fields, pk->n_fields, b->ents[k][i].o);
        }
        AT(&cfg, pk->list->quantifier_offset, size_t) = b->n[k];
        AT(&cfg, pk->list->offset, ProtobufCMessage **) = v;
    }
    *len = strait__v1__config__get_packed_size(&cfg);
    buf = st_xmalloc(*len + 1);
    strait__v1__config__pack(&cfg, buf);
    return buf;
}

size_t
st_snapshot_entity_size(enum st_entity_kind k, const json_t *obj)
{
    const struct plan_kind *pk = plan_of(k);
    struct arena a = {0};
    ProtobufCMessage *m = msg_new_from_json(&a, pk->msg, pk->fields, pk->n_fields, obj);
    size_t n;

    if (msg_id(pk, m) == NULL) {
        AT(m, pk->fields[0].pb->offset, const char *) = ""; /* a required field */
    }
    n = protobuf_c_message_get_packed_size(m);
    arena_fini(&a);
    return 1 + st_snapshot_varint_size(n) + n; /* Config's field tag (1 to 5), length, message */
}

int
st_snapshot_build(uint64_t version, json_t *const lists[ST_ENT__COUNT], uint8_t **out,
                  size_t *outlen, char hash[65], struct st_err *err)
{
    struct build b = {0};
    Strait__V1__Snapshot snap = STRAIT__V1__SNAPSHOT__INIT;
    uint8_t *cbuf = NULL;
    size_t clen = 0;
    int rc = 0;

    *out = NULL;
    for (int k = 0; k < ST_ENT__COUNT && rc == 0; k++) {
        rc = sorted_entities(lists != NULL ? lists[k] : NULL, st_entity_name(k), &b.ents[k],
                             &b.n[k], err);
    }
    if (rc != 0) {
        goto out;
    }
    cbuf = encode_config(&b, &clen);
    st_ssl_sha256_hex(cbuf, clen, hash);

    snap.version = version;
    snap.hash = hash;
    snap.config.data = cbuf;
    snap.config.len = clen;
    snap.has_created_at_ms = 1;
    snap.created_at_ms = st_time_ms();
    *outlen = strait__v1__snapshot__get_packed_size(&snap);
    *out = st_xmalloc(*outlen + 1);
    strait__v1__snapshot__pack(&snap, *out);

out:
    free(cbuf);
    build_fini(&b);
    return rc;
}

int
st_snapshot_parse(const uint8_t *p, size_t len, struct st_snapshot_memo *memo,
                  struct st_snapshot **out, struct st_err *err)
{
    Strait__V1__Snapshot *snap;
    Strait__V1__Config *cfg = NULL;
    struct st_snapshot *s = NULL;
    struct parse ps = {0};
    char got[65];
    size_t n = 0;
    int rc = 0;

    *out = NULL;
    snap = strait__v1__snapshot__unpack(NULL, len, p);
    if (snap == NULL) {
        return st_err_set(err, -ST_EPARSE, NULL,
                          "snapshot: %zu bytes that are not a valid Snapshot message", len);
    }
    st_ssl_sha256_hex(snap->config.data, snap->config.len, got);
    if (strcmp(snap->hash, got) != 0) {
        rc = st_err_set(err, -ST_EHASH, NULL,
                        "snapshot hash mismatch: says %.64s, bytes hash to %s", snap->hash, got);
        goto out;
    }
    cfg = strait__v1__config__unpack(NULL, snap->config.len, snap->config.data);
    if (cfg == NULL) {
        rc = st_err_set(err, -ST_EPARSE, NULL,
                        "snapshot: its config (%zu bytes) is not a valid Config message",
                        snap->config.len);
        goto out;
    }
    s = st_xcalloc(1, sizeof(*s));
    s->version = snap->version;
    memcpy(s->hash, got, sizeof(s->hash));
    s->priv = st_xcalloc(1, sizeof(struct arena));
    ps.s = s;
    ps.a = s->priv;
    ps.memo = memo;
    for (int k = 0; k < ST_ENT__COUNT; k++) {
        n += AT(&cfg->base, plan_of((enum st_entity_kind)k)->list->quantifier_offset, size_t);
    }
    ps.d.v = st_xcalloc(n + 1, sizeof(*ps.d.v));
    ps.d.ok = st_xcalloc(n + 1, sizeof(*ps.d.ok));
    /* referenced kinds first (st_entity_order), so each reference resolves against a
     * sorted array */
    for (int i = 0; i < ST_ENT__COUNT && rc == 0; i++) {
        rc = parse_kind(&ps, &cfg->base, plan.order[i], err);
    }
    if (rc == 0 && memo != NULL) {
        passed_set(memo, &ps.d);
    }

out:
    free(ps.d.v);
    free(ps.d.ok);
    arena_fini(&ps.scratch);
    if (cfg != NULL) {
        strait__v1__config__free_unpacked(cfg, NULL);
    }
    strait__v1__snapshot__free_unpacked(snap, NULL);
    if (rc != 0) {
        st_snapshot_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void
st_snapshot_free(struct st_snapshot *s)
{
    if (s == NULL) {
        return;
    }
    for (int k = 0; k < ST_ENT__COUNT; k++) {
        free(s->lists[k].items);
    }
    if (s->priv != NULL) {
        arena_fini(s->priv);
        free(s->priv);
    }
    free(s);
}

int
st_snapshot_peek(const uint8_t *p, size_t len, uint64_t *version, char hash[65])
{
    Strait__V1__Snapshot *snap = strait__v1__snapshot__unpack(NULL, len, p);

    if (snap == NULL) {
        return -ST_EPARSE;
    }
    *version = snap->version;
    st_snprintf(hash, 65, "%.64s", snap->hash);
    strait__v1__snapshot__free_unpacked(snap, NULL);
    return 0;
}
