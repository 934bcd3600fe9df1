/* Declarative configuration into and out of the store (see cp_decl_load.h).
 * Kong's sources: kong/db/declarative/import.lua (load_into_db upserts every entity by
 * primary key, in dependency order), kong/db/declarative/init.lua (pretty_print_error),
 * kong/db/errors.lua (messages). */
#include "cp_decl_load.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cp_dberr.h"
#include "cp_snapshot.h"
#include "cp_store.h"
#include "st_decl.h"
#include "st_json.h"
#include "st_snapshot.h"
#include "st_str.h"
#include "st_util.h"

/* A name the parse asked the store about, and the answer. */
struct seen {
    enum st_entity_kind k;
    char *name;
    bool found;
    char id[37];
    int64_t created_at_ms;
};

/* The names a parse looked up (before the write lock: replayed under it when another
 * write committed meanwhile). */
struct lookups {
    struct cp_store *st;
    struct seen *v;
    size_t n;
    size_t cap;
    int rc; /* the first store error (not "not found"), 0 if none */
};

/* The stored entity of kind k named name: 1 and id/created_at set, 0 when there is
 * none, or a store error. */
static int
store_find(struct cp_store *st, enum st_entity_kind k, const char *name, char id[37],
           int64_t *created_at_ms)
{
    json_t *o = NULL;
    const char *v;
    int rc = cp_store_get(st, k, name, &o);

    if (rc == -ST_ENOTFOUND) {
        return 0;
    }
    if (rc < 0) {
        return rc;
    }
    v = json_string_value(json_object_get(o, "id"));
    rc = 0;
    if (v != NULL && strlen(v) == 36) {
        memcpy(id, v, 37);
        *created_at_ms = json_integer_value(json_object_get(o, "created_at"));
        rc = 1;
    }
    json_decref(o);
    return rc;
}

/* st_decl_lookup_fn over the store, recording every answer. */
static int
lookup(void *arg, enum st_entity_kind k, const char *name, char id[37], int64_t *created_at_ms)
{
    struct lookups *l = arg;
    struct seen *s;
    int rc = store_find(l->st, k, name, id, created_at_ms);

    if (rc < 0) {
        l->rc = l->rc < 0 ? l->rc : rc;
        return -1;
    }
    if (l->n == l->cap) {
        l->cap = l->cap > 0 ? l->cap * 2 : 64;
        l->v = st_xrealloc(l->v, l->cap * sizeof(*l->v));
    }
    s = &l->v[l->n++];
    *s = (struct seen){.k = k, .name = st_xstrdup(name), .found = rc == 1};
    if (s->found) {
        memcpy(s->id, id, 37);
        s->created_at_ms = *created_at_ms;
    }
    return s->found ? 0 : -1;
}

/* Whether every answer the parse got is still the store's. Returns 1, 0, or a store
 * error. */
static int
lookups_hold(struct lookups *l)
{
    for (size_t i = 0; i < l->n; i++) {
        const struct seen *s = &l->v[i];
        char id[37] = "";
        int64_t created = 0;
        int rc = store_find(l->st, s->k, s->name, id, &created);

        if (rc < 0) {
            return rc;
        }
        if ((rc == 1) != s->found ||
            (s->found && (strcmp(id, s->id) != 0 || created != s->created_at_ms))) {
            return 0;
        }
    }
    return 1;
}

static void
lookups_reset(struct lookups *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i].name);
    }
    l->n = 0;
    l->rc = 0;
}

/* Kong's upsert by primary key. An entity whose created_at is the load's default (the
 * document gave none) keeps the stored one. */
static int
upsert_one(struct cp_store *st, enum st_entity_kind k, json_t *o, int64_t now, struct st_err *err)
{
    const char *id = json_string_value(json_object_get(o, "id"));
    json_t *old = NULL;
    json_t *created;
    int rc;

    rc = cp_store_get(st, k, id != NULL ? id : "", &old);
    if (rc == -ST_ENOTFOUND) {
        return cp_store_insert(st, k, o, err);
    }
    if (rc < 0) {
        return rc;
    }
    created = json_object_get(old, "created_at");
    if (json_integer_value(json_object_get(o, "created_at")) == now && json_is_integer(created)) {
        json_object_set(o, "created_at", created);
    }
    json_decref(old);
    return cp_store_update(st, k, o, err);
}

/* Every entity, kinds in st_entity_order's order: foreign keys point backwards in it, so
 * inserting in it never dangles. */
static int
write_all(struct cp_store *st, enum cp_decl_mode mode, int64_t now, struct cp_decl_result *r)
{
    enum st_entity_kind order[ST_ENT__COUNT];
    int rc = 0;

    st_entity_order(order);
    if (mode == CP_DECL_REPLACE) {
        rc = cp_store_clear(st);
    }
    for (size_t i = 0; rc == 0 && i < ST_ENT__COUNT; i++) {
        enum st_entity_kind k = order[i];
        size_t j;
        json_t *o;

        r->kind = k;
        json_array_foreach(r->lists[k], j, o)
        {
            rc = mode == CP_DECL_REPLACE ? cp_store_insert(st, k, o, &r->err)
                                         : upsert_one(st, k, o, now, &r->err);
            if (rc < 0) {
                break;
            }
        }
    }
    return rc;
}

static void
lists_drop(json_t *lists[ST_ENT__COUNT])
{
    for (int k = 0; k < ST_ENT__COUNT; k++) {
        json_decref(lists[k]);
        lists[k] = NULL;
    }
}

/* POST /config replaces everything: the snapshot after it is the document's, whatever
 * is stored, so a document that would not fit is refused before the lock. */
static int
replace_fits(const struct cp_decl_limits *lim, struct cp_decl_result *r)
{
    size_t size = ST_SNAPSHOT_ENVELOPE_MAX + CP_SNAPSHOT_SEND_SLACK;
    size_t i;
    json_t *o;

    for (int k = 0; k < ST_ENT__COUNT; k++) {
        json_array_foreach(r->lists[k], i, o)
        {
            size += st_snapshot_entity_size((enum st_entity_kind)k, o);
        }
    }
    if ((int64_t)size <= lim->max_payload) {
        return 0;
    }
    return st_err_set(&r->err, -ST_ETOOBIG, NULL,
                      "the configuration would be sent to data planes as %zu bytes, beyond "
                      "cluster_max_payload (%lld bytes): raise cluster_max_payload on the "
                      "control plane and every data plane",
                      size, (long long)lim->max_payload);
}

/* The parse (no transaction open unless `locked`). */
static int
parse(const char *text, size_t len, struct lookups *l, int64_t now, struct cp_decl_result *r)
{
    struct st_decl_opts o = {.lookup = lookup, .lookup_arg = l, .now_ms = now};
    int rc;

    lookups_reset(l);
    cp_decl_result_fini(r);
    rc = st_decl_parse(text, len, &o, r->lists, &r->error);
    if (rc == 0 && l->rc < 0) {
        /* an id the store could not be asked for would be a new one: not a load */
        lists_drop(r->lists);
        return l->rc;
    }
    if (rc < 0) {
        if (r->error == NULL) {
            r->error =
                json_pack("{s:i,s:s,s:s}", "code", 14, "name", "invalid declarative configuration",
                          "message", "declarative config is invalid");
        }
        return -ST_ESCHEMA;
    }
    return 0;
}

/* The writes and the commit, inside the transaction. */
static int
write_commit(struct cp_store *st, enum cp_decl_mode mode, int64_t now,
             const struct cp_decl_limits *lim, struct cp_decl_result *r)
{
    struct cp_snapshot_fit fit = {0};
    int rc = write_all(st, mode, now, r);

    if (rc == 0 && lim != NULL && lim->snap != NULL) {
        rc = cp_snapshot_fit(lim->snap, st, lim->max_payload, &fit, &r->err);
    }
    if (rc < 0) {
        cp_store_rollback(st);
        return rc;
    }
    rc = cp_store_commit(st);
    if (rc == 0 && lim != NULL && lim->snap != NULL) {
        cp_snapshot_fit_commit(lim->snap, &fit);
    }
    return rc;
}

/* One parse and write: the parse before the lock, unless `locked` (then under it).
 * Returns 0, a negative code (nothing changed), or 1 when another write changed what the
 * parse read (nothing changed: parse again). */
static int
load_once(struct cp_store *st, const char *text, size_t len, enum cp_decl_mode mode,
          const struct cp_decl_limits *lim, bool locked, struct lookups *l, int64_t now,
          struct cp_decl_result *r)
{
    uint64_t seen = 0;
    uint64_t version = 0;
    int rc = locked ? cp_store_begin(st, true) : cp_store_version(st, &seen);

    if (rc < 0) {
        return rc;
    }
    rc = parse(text, len, l, now, r);
    if (rc == 0 && mode == CP_DECL_REPLACE && lim != NULL) {
        rc = replace_fits(lim, r);
    }
    if (rc == 0 && !locked) {
        rc = cp_store_begin(st, true);
        if (rc < 0) {
            return rc;
        }
        locked = true;
        /* whether what the parse read (at version `seen`) still holds: 1, 0 (parse again)
         * or a store error */
        rc = cp_store_version(st, &version);
        rc = rc < 0 ? rc : version == seen ? 1 : lookups_hold(l);
        if (rc == 0) {
            cp_store_rollback(st);
            return 1;
        }
        rc = rc > 0 ? 0 : rc;
    }
    if (rc < 0) {
        if (locked) {
            cp_store_rollback(st);
        }
        return rc;
    }
    return write_commit(st, mode, now, lim, r);
}

int
cp_decl_load(struct cp_store *st, const char *text, size_t len, enum cp_decl_mode mode,
             const struct cp_decl_limits *lim, struct cp_decl_result *r)
{
    struct lookups l = {.st = st};
    /* whole seconds, as the admin API writes them: an export re-imported hashes the same */
    int64_t now = st_time_ms() / 1000 * 1000;
    int attempt = 1;
    int rc;

    memset(r, 0, sizeof(*r));
    do {
        /* the last attempt, when writes kept changing the names this document uses,
         * parses under the lock */
        rc = load_once(st, text, len, mode, lim, attempt == CP_DECL_ATTEMPTS, &l, now, r);
    } while (rc == 1 && ++attempt <= CP_DECL_ATTEMPTS);
    lookups_reset(&l);
    free(l.v);
    if (rc < 0) {
        lists_drop(r->lists);
    }
    return rc;
}

void
cp_decl_result_fini(struct cp_decl_result *r)
{
    lists_drop(r->lists);
    json_decref(r->error);
    r->error = NULL;
}

int
cp_decl_export(struct cp_store *st, bool yaml, char **out, size_t *len)
{
    json_t *lists[ST_ENT__COUNT];
    uint64_t version = 0;
    int rc;

    *out = NULL;
    *len = 0;
    rc = cp_store_read_all(st, &version, lists);
    if (rc < 0) {
        return rc;
    }
    rc = st_decl_export(lists, yaml, out, len);
    lists_drop(lists);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* messages */

void
cp_decl_store_msg(enum st_entity_kind k, int rc, const struct st_err *err, char *buf, size_t size)
{
    struct cp_dberr d;

    if (rc == -ST_EUNIQUE || rc == -ST_EPKEY || rc == -ST_EFOREIGN) {
        cp_dberr_of(k, rc, err, &d);
        json_decref(d.fields);
        st_snprintf(buf, size, "%s", d.msg);
        return;
    }
    st_snprintf(buf, size, "%s: %s", st_entity_name(k),
                err->msg[0] != '\0' ? err->msg : st_strerror(rc));
}

static void pretty(struct st_str *t, const json_t *v, const char *item, int depth);

/* One line: the key, then either the message or a colon and the nested errors. */
static void
pretty_entry(struct st_str *t, const char *prettykey, const json_t *v, const char *item, int depth)
{
    bool nested = json_is_object(v) || json_is_array(v);
    char line[1024];
    char *dump;

    if (json_is_null(v)) {
        return; /* an entry of a list without errors */
    }
    dump = nested || json_is_string(v) ? NULL : json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    st_snprintf(line, sizeof(line), "%*s%s:%s%s", depth * 2, "", prettykey, nested ? "" : " ",
                nested              ? ""
                : json_is_string(v) ? json_string_value(v)
                : dump != NULL      ? dump
                                    : "?");
    free(dump);
    st_str_add(t, t->len > 0 ? "\n" : "");
    st_str_add(t, line);
    if (nested) {
        pretty(t, v, item, depth + 1);
    }
}

/* Kong's pretty_print_error: objects give "in '<key>'", lists "- in entry N of '<item>'"
 * (1-based). Keys come sorted so the output is stable. */
static void
pretty(struct st_str *t, const json_t *v, const char *item, int depth)
{
    char key[320];

    if (json_is_array(v)) {
        size_t i;
        const json_t *e;

        json_array_foreach(v, i, e)
        {
            st_snprintf(key, sizeof(key), "- in entry %zu of '%s'", i + 1, item);
            pretty_entry(t, key, e, item, depth);
        }
        return;
    }
    if (json_is_object(v)) {
        size_t n;
        const char **keys = st_json_keys(v, &n);

        for (size_t i = 0; i < n; i++) {
            st_snprintf(key, sizeof(key), "in '%s'", keys[i]);
            pretty_entry(t, key, json_object_get(v, keys[i]), keys[i], depth);
        }
        free(keys);
    }
}

char *
cp_decl_error_text(const json_t *error)
{
    const json_t *fields = json_object_get(error, "fields");
    struct st_str t = {0};

    st_str_add(&t, "");
    if (json_is_object(fields) && json_object_size(fields) > 0) {
        pretty(&t, fields, "", 0);
    }
    if (t.len == 0) {
        const char *msg = json_string_value(json_object_get(error, "message"));

        st_str_add(&t, msg != NULL ? msg : "declarative config is invalid");
    }
    return t.p;
}
