/* Dispatch of the cp_store interface to the backend chosen by `database`, and what the
 * backends share (cp_store_int.h). */
#include "cp_store.h"

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
/* shared by the backends */

const struct cp_store_kind cp_store_kinds[ST_ENT__COUNT] = {
    [ST_ENT_SERVICE] = {"services", true, "client_certificate_id", "client_certificate",
                        "certificates", NULL},
    [ST_ENT_ROUTE] = {"routes", true, "service_id", "service", "services", NULL},
    [ST_ENT_CERTIFICATE] = {"certificates", false, NULL, NULL, NULL, NULL},
    [ST_ENT_SNI] = {"snis", true, "certificate_id", "certificate", "certificates", NULL},
    [ST_ENT_CA_CERTIFICATE] = {"ca_certificates", false, NULL, NULL, NULL, "cert_digest"},
};

/* Children before parents, so that no foreign key refuses a delete. */
const enum st_entity_kind cp_store_clear_order[ST_ENT__COUNT] = {
    ST_ENT_ROUTE, ST_ENT_SNI, ST_ENT_SERVICE, ST_ENT_CERTIFICATE, ST_ENT_CA_CERTIFICATE,
};

void
cp_store_cols_from(enum st_entity_kind k, const json_t *obj, struct cp_store_cols *c)
{
    const struct cp_store_kind *d = &cp_store_kinds[k];
    const json_t *tags = json_object_get(obj, "tags");

    memset(c, 0, sizeof(*c));
    c->id = json_string_value(json_object_get(obj, "id"));
    if (d->has_name) {
        c->name = json_string_value(json_object_get(obj, "name"));
    }
    c->created_at = json_integer_value(json_object_get(obj, "created_at"));
    c->updated_at = json_integer_value(json_object_get(obj, "updated_at"));
    if (d->fk_col != NULL) {
        const json_t *ref = json_object_get(obj, d->fk_field);

        if (json_is_object(ref)) {
            c->fk_id = json_string_value(json_object_get(ref, "id"));
        }
    }
    if (d->uniq_col != NULL) {
        c->uniq = json_string_value(json_object_get(obj, d->uniq_col));
    }
    if (json_is_array(tags)) {
        c->tags = json_dumps(tags, JSON_COMPACT);
    }
    c->doc = json_dumps(obj, JSON_COMPACT);
}

void
cp_store_cols_fini(struct cp_store_cols *c)
{
    free(c->tags);
    free(c->doc);
}

static int
write_sql(enum st_entity_kind k, bool insert, char *sql, size_t size)
{
    const struct cp_store_kind *d = &cp_store_kinds[k];
    const char *name = d->has_name ? "name" : NULL;

    if (insert) {
        return st_snprintf(sql, size,
                           "INSERT INTO %s (id, created_at, updated_at, tags, doc%s%s%s%s%s%s)"
                           " VALUES (?6, ?2, ?3, ?4, ?5%s%s%s)",
                           d->table, name != NULL ? ", " : "", name != NULL ? name : "",
                           d->fk_col != NULL ? ", " : "", d->fk_col != NULL ? d->fk_col : "",
                           d->uniq_col != NULL ? ", " : "", d->uniq_col != NULL ? d->uniq_col : "",
                           name != NULL ? ", ?1" : "", d->fk_col != NULL ? ", ?7" : "",
                           d->uniq_col != NULL ? ", ?8" : "");
    }
    return st_snprintf(sql, size,
                       "UPDATE %s SET created_at = ?2, updated_at = ?3, tags = ?4, doc = ?5"
                       "%s%s%s%s%s%s%s WHERE id = ?6",
                       d->table, name != NULL ? ", name = ?1" : "", d->fk_col != NULL ? ", " : "",
                       d->fk_col != NULL ? d->fk_col : "", d->fk_col != NULL ? " = ?7" : "",
                       d->uniq_col != NULL ? ", " : "", d->uniq_col != NULL ? d->uniq_col : "",
                       d->uniq_col != NULL ? " = ?8" : "");
}

/* A tags offset is the hex of the JSON text ["<tag>", "<entity_name>", "<entity_id>"] of
 * the last pair of the page before: opaque to clients and safe in a query string. */
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

static int
hex_nibble(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1;
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
    if (json_array_size(a) != 3 || !json_is_string(json_array_get(a, 0)) ||
        !json_is_string(json_array_get(a, 1)) || !json_is_string(json_array_get(a, 2))) {
        json_decref(a);
        return NULL;
    }
    return a;
}

int
cp_store_write_sql(enum st_entity_kind k, bool insert, char ph, char *sql, size_t size)
{
    int rc = write_sql(k, insert, sql, size);

    /* written with SQLite's ?N; the statements hold no other '?' */
    for (char *p = sql; rc == 0 && *p != '\0'; p++) {
        if (*p == '?') {
            *p = ph;
        }
    }
    return rc;
}

/* Every id of a service's ca_certificates must name an existing CA certificate. */
static int
check_cas(const struct cp_store_probe *p, const json_t *obj, struct st_err *err)
{
    const json_t *cas = json_object_get(obj, "ca_certificates");
    const json_t *v;
    size_t i;
    int rc;

    json_array_foreach(cas, i, v)
    {
        const char *id = json_string_value(v);

        if (id == NULL) {
            continue; /* the schema refuses it */
        }
        rc = p->exists(p->ctx, "ca_certificates", "id", id, NULL);
        if (rc == 0) {
            return st_err_set(err, -ST_EFOREIGN, "ca_certificates", "%s", id);
        }
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

int
cp_store_check_write(const struct cp_store_probe *p, enum st_entity_kind k, const json_t *obj,
                     const struct cp_store_cols *c, bool insert, struct st_err *err)
{
    const struct cp_store_kind *d = &cp_store_kinds[k];
    int rc;

    if (insert) {
        rc = p->exists(p->ctx, d->table, "id", c->id, NULL);
        if (rc != 0) {
            return rc < 0 ? rc : st_err_set(err, -ST_EPKEY, "id", "%s", c->id);
        }
    }
    if (c->name != NULL) {
        rc = p->exists(p->ctx, d->table, "name", c->name, c->id);
        if (rc != 0) {
            return rc < 0 ? rc : st_err_set(err, -ST_EUNIQUE, "name", "%s", c->name);
        }
    }
    if (c->uniq != NULL) {
        rc = p->exists(p->ctx, d->table, d->uniq_col, c->uniq, c->id);
        if (rc != 0) {
            return rc < 0 ? rc : st_err_set(err, -ST_EUNIQUE, d->uniq_col, "%s", c->uniq);
        }
    }
    if (c->fk_id != NULL) {
        rc = p->exists(p->ctx, d->fk_table, "id", c->fk_id, NULL);
        if (rc == 0) {
            return st_err_set(err, -ST_EFOREIGN, d->fk_field, "%s", c->fk_id);
        }
        if (rc < 0) {
            return rc;
        }
    }
    if (k == ST_ENT_SERVICE) {
        return check_cas(p, obj, err);
    }
    return 0;
}

int
cp_store_check_refs(const struct cp_store_probe *p, enum st_entity_kind k, const char *id,
                    struct st_err *err)
{
    char sid[64];
    int rc = 0;

    switch (k) {
    case ST_ENT_SERVICE:
        rc = p->exists(p->ctx, "routes", "service_id", id, NULL);
        if (rc > 0) {
            rc = st_err_set(err, -ST_EREFERENCED, "routes", "routes");
        }
        break;
    case ST_ENT_CERTIFICATE:
        rc = p->exists(p->ctx, "services", "client_certificate_id", id, NULL);
        if (rc > 0) {
            rc = st_err_set(err, -ST_EREFERENCED, "services", "services");
        }
        break;
    case ST_ENT_CA_CERTIFICATE:
        rc = p->ca_user(p->ctx, id, sid);
        if (rc > 0) {
            rc = st_err_set(err, -ST_EREFERENCED, "services",
                            "ca certificate %s is still referenced by services (id = %s)", id, sid);
        }
        break;
    default:
        break;
    }
    return rc;
}
