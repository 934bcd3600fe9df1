/* Dispatch of the cp_store interface to the backend chosen by `database`. */
#include "cp_store.h"

#include <string.h>

#include "st_conf.h"
#include "st_err.h"

int
cp_store_open(const struct st_conf *conf, struct cp_store **out, struct st_err *err)
{
    *out = NULL;
    if (conf->database != NULL && strcmp(conf->database, "postgres") == 0) {
        return st_err_set(err, -ST_EUNSUPPORTED, "database",
                          "database = postgres is not supported yet");
    }
    if (conf->database != NULL && strcmp(conf->database, "sqlite") != 0) {
        return st_err_set(err, -ST_ECONF, "database", "database: unknown value '%s'",
                          conf->database);
    }
    return cp_store_sqlite_open(conf->sqlite_path, out, err);
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
    return s->ops->insert(s, k, obj, err);
}

int
cp_store_update(struct cp_store *s, enum st_entity_kind k, const json_t *obj, struct st_err *err)
{
    return s->ops->update(s, k, obj, err);
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
    return s->ops->read_all(s, version, lists);
}

int
cp_store_version(struct cp_store *s, uint64_t *version)
{
    return s->ops->version(s, version);
}

int
cp_store_clear(struct cp_store *s)
{
    return s->ops->clear(s);
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
