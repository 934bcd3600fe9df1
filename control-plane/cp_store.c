/* Dispatch of the cp_store interface to the backend chosen by `database`, the read cache,
 * the write's growth count, and the kinds' relations (cp_store_rel_of). */
#include "cp_store.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cp_store_int.h"

#include "st_conf.h"
#include "st_err.h"
#include "st_schema.h"
#include "st_snapshot.h"
#include "st_ssl.h"
#include "st_util.h"

int
cp_store_open(const struct st_conf *conf, struct cp_store **out, struct st_err *err)
{
    *out = NULL;
    if (conf->database != NULL && strcmp(conf->database, "postgres") == 0) {
        return cp_store_pg_open(conf, out, err);
    }
    if (conf->database != NULL && strcmp(conf->database, "sqlite") != 0) {
        return st_err_set(err, -ST_ECONF, "database", "database: unknown value '%s'",
                          conf->database);
    }
    return cp_store_sqlite_open_flags(
        conf->sqlite_path, conf->sqlite_synchronous_full ? CP_STORE_SQLITE_F_SYNC_FULL : 0, out,
        err);
}

void
cp_store_close(struct cp_store *s)
{
    if (s != NULL) {
        s->ops->close(s);
    }
}

int
cp_store_begin(struct cp_store *s, bool write)
{
    memset(&s->tx, 0, sizeof(s->tx));
    return s->ops->begin(s, write);
}

int
cp_store_commit(struct cp_store *s)
{
    return s->ops->commit(s);
}

void
cp_store_rollback(struct cp_store *s)
{
    s->ops->rollback(s);
}

int
cp_store_get(struct cp_store *s, enum st_entity_kind k, const char *id_or_name, json_t **out)
{
    return s->ops->get(s, k, id_or_name, out);
}

int
cp_store_get_in(struct cp_store *s, enum st_entity_kind k, const char *parent_field,
                const char *parent_id, const char *key, json_t **out)
{
    *out = NULL;
    if (s->ops->get_in == NULL) {
        return -ST_EUNSUPPORTED;
    }
    return s->ops->get_in(s, k, parent_field, parent_id, key, out);
}

int
cp_store_insert(struct cp_store *s, enum st_entity_kind k, const json_t *obj, struct st_err *err)
{
    int rc = s->ops->write(s, k, obj, true, err);

    if (rc == 0) {
        s->tx.bytes += (int64_t)st_snapshot_entity_size(k, obj);
        s->tx.wrote = true;
    }
    return rc;
}

int
cp_store_update(struct cp_store *s, enum st_entity_kind k, const json_t *obj, struct st_err *err)
{
    const char *id = json_string_value(json_object_get(obj, "id"));
    json_t *old = NULL;
    int64_t before = 0;
    int rc;

    /* by id only: a name would find another entity (ids are UUIDs, names are not) */
    if (id != NULL && st_schema_is_uuid(id) && s->ops->get(s, k, id, &old) == 0) {
        before = (int64_t)st_snapshot_entity_size(k, old);
        json_decref(old);
    }
    rc = s->ops->write(s, k, obj, false, err);
    if (rc == 0) {
        s->tx.bytes += (int64_t)st_snapshot_entity_size(k, obj) - before;
        s->tx.wrote = true;
    }
    return rc;
}

void
cp_store_growth(const struct cp_store *s, struct cp_store_growth *g)
{
    *g = s->tx;
}

int
cp_store_remove(struct cp_store *s, enum st_entity_kind k, const char *id, struct st_err *err)
{
    return s->ops->remove(s, k, id, err);
}

int
cp_store_page(struct cp_store *s, enum st_entity_kind k, const struct cp_page_opts *o,
              json_t **data, char **next_offset, struct st_err *err)
{
    return s->ops->page(s, k, o, data, next_offset, err);
}

int
cp_store_read_all(struct cp_store *s, uint64_t *version, json_t *lists[ST_ENT__COUNT])
{
    return s->ops->read_all(s, NULL, version, lists);
}

/* ------------------------------------------------------------------------ */
/* the read cache */

struct cp_store_cache {
    json_t *last[ST_ENT__COUNT]; /* id -> [digest, object]: the last complete read */
    json_t *next[ST_ENT__COUNT]; /* the read in progress */
    size_t parsed, reused;
};

struct cp_store_cache *
cp_store_cache_new(void)
{
    struct cp_store_cache *c = st_xcalloc(1, sizeof(*c));

    for (int k = 0; k < ST_ENT__COUNT; k++) {
        c->last[k] = json_object();
    }
    return c;
}

void
cp_store_cache_free(struct cp_store_cache *c)
{
    if (c == NULL) {
        return;
    }
    for (int k = 0; k < ST_ENT__COUNT; k++) {
        json_decref(c->last[k]);
        json_decref(c->next[k]);
    }
    free(c);
}

json_t *
cp_store_cache_doc(struct cp_store_cache *c, enum st_entity_kind k, const char *id,
                   const char *text, size_t len)
{
    json_error_t jerr;
    char digest[65];
    const json_t *hit;
    json_t *doc;

    if (c == NULL) {
        return json_loadb(text, len, 0, &jerr);
    }
    st_ssl_sha256_hex(text, len, digest);
    hit = json_object_get(c->last[k], id);
    if (hit != NULL && strcmp(json_string_value(json_array_get(hit, 0)), digest) == 0) {
        json_object_set(c->next[k], id, (json_t *)hit); /* the same entry, shared */
        c->reused++;
        return json_incref(json_array_get(hit, 1));
    }
    if ((doc = json_loadb(text, len, 0, &jerr)) == NULL) {
        return NULL;
    }
    c->parsed++;
    json_object_set_new(c->next[k], id, json_pack("[s,O]", digest, doc));
    return doc;
}

int
cp_store_read_all_cached(struct cp_store *s, struct cp_store_cache *c, uint64_t *version,
                         json_t *lists[ST_ENT__COUNT], size_t *parsed, size_t *reused)
{
    int rc;

    c->parsed = c->reused = 0;
    for (int k = 0; k < ST_ENT__COUNT; k++) {
        json_decref(c->next[k]);
        c->next[k] = json_object();
    }
    rc = s->ops->read_all(s, c, version, lists);
    for (int k = 0; k < ST_ENT__COUNT; k++) {
        if (rc == 0) { /* what this read saw replaces the last one: deleted rows go */
            json_decref(c->last[k]);
            c->last[k] = c->next[k];
        } else {
            json_decref(c->next[k]);
        }
        c->next[k] = NULL;
    }
    if (parsed != NULL) {
        *parsed = c->parsed;
    }
    if (reused != NULL) {
        *reused = c->reused;
    }
    return rc;
}

int
cp_store_version(struct cp_store *s, uint64_t *version)
{
    return s->ops->version(s, version);
}

int
cp_store_clear(struct cp_store *s)
{
    int rc = s->ops->clear(s);

    if (rc == 0) {
        s->tx.bytes = 0;
        s->tx.cleared = true;
    }
    return rc;
}

int
cp_store_count(struct cp_store *s, enum st_entity_kind k, uint64_t *n)
{
    return s->ops->count(s, k, n);
}

int
cp_store_tags_page(struct cp_store *s, const char *tag, size_t size, const char *offset,
                   json_t **data, char **next_offset, struct st_err *err)
{
    return s->ops->tags_page(s, tag, size, offset, data, next_offset, err);
}

bool
cp_store_dps_shared(const struct cp_store *s)
{
    return s->ops->dps_save != NULL && s->ops->dps_page != NULL;
}

int
cp_store_dps_save(struct cp_store *s, const json_t *seen, const json_t *gone,
                  int64_t purge_before_ms)
{
    if (!cp_store_dps_shared(s)) {
        return -ST_EUNSUPPORTED;
    }
    return s->ops->dps_save(s, seen, gone, purge_before_ms);
}

int
cp_store_dps_page(struct cp_store *s, const char *after, size_t limit, int64_t seen_since_ms,
                  json_t **rows)
{
    *rows = NULL;
    if (!cp_store_dps_shared(s)) {
        return -ST_EUNSUPPORTED;
    }
    return s->ops->dps_page(s, after, limit, seen_since_ms, rows);
}

/* ------------------------------------------------------------------------ */
/* the kinds' relations */

/* The kinds' relations, derived once from their descriptions (st_entities[]): a column
 * for every unique or endpoint string field and every foreign key (<field>_id, nullable
 * unless required, cascade when the field says so, scoped when it is the parent), a key
 * for every unique field and the kind's composite key, a join table for every set of
 * references (<kinds>_<field>). The DDL of both backends (cp_store_sqlite.c,
 * cp_store_pg_schema.c) creates what this derives. */

#define REL_NAME_MAX 64

/* The names a derivation composes, beside the descriptions' own strings. */
struct rel_names {
    char cols[CP_REL_COLS_MAX][REL_NAME_MAX];
    char sets[CP_REL_SETS_MAX][3][REL_NAME_MAX]; /* join, own_col, ref_col */
};

static struct cp_rel rels[ST_ENT__COUNT];
static struct rel_names rel_names[ST_ENT__COUNT];
static pthread_once_t rels_once = PTHREAD_ONCE_INIT;

static const char *
compose(char *buf, const char *a, const char *sep, const char *b)
{
    int n = snprintf(buf, REL_NAME_MAX, "%s%s%s", a, sep, b);
    ST_ASSERT(n > 0 && n < REL_NAME_MAX);
    return buf;
}

/* The column that holds field `field` of r, or NULL. */
static const char *
rel_col_of(const struct cp_rel *r, const char *field)
{
    for (const struct cp_rel_col *c = r->cols; c->name != NULL; c++) {
        if (strcmp(c->field, field) == 0) {
            return c->name;
        }
    }
    return NULL;
}

static void
rel_derive(const struct st_entity_desc *d, struct cp_rel *r, struct rel_names *nm)
{
    size_t nc = 0, nk = 0, ns = 0;

    r->table = d->name;
    r->singular = d->singular;
    r->nested_only = d->nested_only;
    for (const struct st_field *f = d->fields; f->name != NULL; f++) {
        bool in_unique = false;
        for (const char *const *u = d->unique; u != NULL && *u != NULL; u++) {
            in_unique = in_unique || strcmp(*u, f->name) == 0;
        }
        if (f->flags & ST_FIELD_F_ENDPOINT) {
            r->endpoint = f->name;
        }
        if (f->type == ST_FT_FOREIGN) {
            ST_ASSERT(nc < CP_REL_COLS_MAX);
            const char *col = compose(nm->cols[nc], f->name, "_", "id");
            r->cols[nc++] = (struct cp_rel_col){
                .name = col,
                .field = f->name,
                .ref = f->ref->name,
                .nullable = !(f->flags & ST_FIELD_F_REQUIRED),
                .on_delete = (f->flags & ST_FIELD_F_CASCADE) ? CP_REL_CASCADE : CP_REL_RESTRICT,
                .parent = (f->flags & ST_FIELD_F_PARENT) != 0,
            };
        } else if (f->type == ST_FT_FOREIGN_SET) {
            ST_ASSERT(ns < CP_REL_SETS_MAX);
            r->sets[ns] = (struct cp_rel_set){
                .field = f->name,
                .ref = f->ref->name,
                .join = compose(nm->sets[ns][0], d->name, "_", f->name),
                .own_col = compose(nm->sets[ns][1], d->singular, "_", "id"),
                .ref_col = compose(nm->sets[ns][2], f->ref->singular, "_", "id"),
            };
            ns++;
        } else if (f->flags & (ST_FIELD_F_UNIQUE | ST_FIELD_F_ENDPOINT) || in_unique) {
            ST_ASSERT(nc < CP_REL_COLS_MAX);
            r->cols[nc++] = (struct cp_rel_col){.name = f->name, .field = f->name};
        }
        if (f->flags & ST_FIELD_F_UNIQUE) {
            ST_ASSERT(nk < CP_REL_KEYS_MAX);
            r->keys[nk++].cols[0] = rel_col_of(r, f->name);
        }
    }
    if (d->unique != NULL) {
        size_t i = 0;
        ST_ASSERT(nk < CP_REL_KEYS_MAX);
        for (const char *const *u = d->unique; *u != NULL; u++) {
            ST_ASSERT(i < CP_REL_KEY_COLS);
            r->keys[nk].cols[i] = rel_col_of(r, *u);
            ST_ASSERT(r->keys[nk].cols[i] != NULL);
            i++;
        }
        nk++;
    }
}

static void
rels_derive(void)
{
    for (size_t k = 0; k < ST_ENT__COUNT; k++) {
        rel_derive(st_entities[k], &rels[k], &rel_names[k]);
    }
}

const struct cp_rel *
cp_store_rel_of(enum st_entity_kind k)
{
    ST_ASSERT((unsigned)k < ST_ENT__COUNT);
    int rc = pthread_once(&rels_once, rels_derive);
    ST_ASSERT(rc == 0);
    (void)rc;
    return &rels[k];
}

/* ------------------------------------------------------------------------ */
/* GET /tags offsets */

char *
cp_store_tags_offset_make(const char *tag, const char *entity_name, const char *entity_id)
{
    json_t *a = json_pack("[sss]", tag, entity_name, entity_id);
    char *text = a != NULL ? json_dumps(a, JSON_COMPACT) : NULL;
    char *out = NULL;

    if (text != NULL) {
        out = st_xmalloc(strlen(text) * 2 + 1);
        st_hex((const uint8_t *)text, strlen(text), out);
    }
    free(text);
    json_decref(a);
    return out;
}

/* c is not NUL. */
static int
hex_nibble(char c)
{
    static const char digits[] = "0123456789abcdef";
    const char *p = strchr(digits, c);

    return p != NULL ? (int)(p - digits) : -1;
}

/* Decodes an offset into a new array of three strings, or NULL when it is not one. */
json_t *
cp_store_tags_offset_parse(const char *offset)
{
    size_t len = strlen(offset);
    char *text;
    json_t *a = NULL;
    json_error_t jerr;
    size_t i;

    if (len == 0 || len % 2 != 0) {
        return NULL;
    }
    text = st_xmalloc(len / 2 + 1);
    for (i = 0; i < len / 2; i++) {
        int hi = hex_nibble(offset[2 * i]);
        int lo = hex_nibble(offset[2 * i + 1]);

        if (hi < 0 || lo < 0) {
            break;
        }
        text[i] = (char)(hi << 4 | lo);
    }
    if (i == len / 2) {
        a = json_loadb(text, len / 2, JSON_REJECT_DUPLICATES, &jerr);
    }
    free(text);
    if (a == NULL || json_unpack_ex(a, NULL, JSON_VALIDATE_ONLY, "[sss!]") != 0) {
        json_decref(a);
        return NULL;
    }
    return a;
}
