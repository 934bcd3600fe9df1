/* GET and POST /config: Kong's declarative configuration endpoint
 * (kong/api/routes/config.lua), on a node with a database. POST replaces the whole
 * configuration in one store transaction (cp_decl_load.c); GET exports it as YAML.
 *
 * The document is parsed before the store's write lock is taken (cp_decl_load), and a
 * document whose snapshot would be beyond cluster_max_payload is refused with Kong's 413
 * for a configuration that does not fit (issue 14).
 *
 * POST takes, as Kong does: the document as the raw body (application/json with a
 * `_format_version`, or application/yaml / text/yaml, accepted here only), or a
 * `config` field holding the document text (JSON, form-urlencoded, multipart); a body
 * with neither is itself parsed as the document. `flatten_errors` (true, 1, on, yes)
 * adds Kong's `flattened_errors` to a 400; `check_hash=1` answers 304 when the same
 * text was the last one loaded and nothing was written since. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cp_admin_int.h"
#include "cp_ctx.h"
#include "cp_decl_load.h"
#include "cp_snapshot.h"
#include "cp_store.h"
#include "cp_store_pool.h"
#include "st_err.h"
#include "st_ssl.h"
#include "st_util.h"

/* The document a POST carries and the options that came with it. */
struct config_in {
    const char *text; /* points into the request or into `own` */
    size_t len;
    char *own; /* malloc'd text, or NULL */
    bool flatten_errors;
    bool check_hash;
};

/* Kong's truthy(): true, 1, "true", "1", "on", "yes" (any case). */
static bool
truthy(const json_t *v)
{
    static const char *const yes[] = {"true", "1", "on", "yes"};
    const char *s = json_string_value(v);

    if (json_is_true(v) || (json_is_integer(v) && json_integer_value(v) == 1)) {
        return true;
    }
    for (size_t i = 0; s != NULL && i < ST_ARRAY_SIZE(yes); i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            return true;
        }
    }
    return false;
}

/* Kong: tostring(check_hash) == "1". */
static bool
is_one(const json_t *v)
{
    return (json_is_integer(v) && json_integer_value(v) == 1) ||
           (json_is_string(v) && strcmp(json_string_value(v), "1") == 0);
}

/* Takes the options out of the query and the body (Kong's self.params holds both). */
static void
take_options(const struct cp_request *rq, json_t *body, struct config_in *in)
{
    static const char *const opts[] = {"flatten_errors", "check_hash"};

    in->flatten_errors =
        truthy(json_object_get(rq->query, opts[0])) || truthy(json_object_get(body, opts[0]));
    in->check_hash =
        is_one(json_object_get(rq->query, opts[1])) || is_one(json_object_get(body, opts[1]));
    for (size_t i = 0; i < ST_ARRAY_SIZE(opts); i++) {
        json_object_del(body, opts[i]);
    }
}

static void
set_own(struct config_in *in, char *text)
{
    in->own = text;
    in->text = text;
    in->len = text != NULL ? strlen(text) : 0;
}

/* The document of a body decoded as an object (JSON, form, multipart). Returns false
 * after replying. */
static bool
from_object(const struct cp_request *rq, json_t *body, struct config_in *in, struct cp_response *rs)
{
    bool raw_json = cp_admin__ct_is(rq->content_type, "application/json");
    size_t keys = json_object_size(body);
    json_t *config;

    take_options(rq, body, in);
    if (json_object_get(body, "_format_version") != NULL) {
        if (raw_json && keys == json_object_size(body)) {
            in->text = rq->body; /* the body is the document, byte for byte */
            in->len = rq->body_len;
        } else {
            set_own(in, json_dumps(body, JSON_COMPACT));
        }
        return true;
    }
    config = json_object_get(body, "config");
    if (json_is_string(config)) {
        set_own(in, st_xstrdup(json_string_value(config)));
        return true;
    }
    if (json_is_object(config)) {
        set_own(in, json_dumps(config, JSON_COMPACT));
        return true;
    }
    if (rq->body_len > 0 && !cp_admin__ct_is(rq->content_type, "multipart/form-data")) {
        in->text = rq->body; /* Kong: the raw body is the document */
        in->len = rq->body_len;
        return true;
    }
    cp_admin__reply_msg(rs, 400, "expected a declarative configuration");
    return false;
}

/* Fills in from the request. Returns false after replying with the error. */
static bool
config_input(const struct cp_request *rq, struct cp_response *rs, struct config_in *in)
{
    json_t *body;
    bool ok;

    memset(in, 0, sizeof(*in));
    if (rq->content_type != NULL && rq->n_content_types <= 1 &&
        (cp_admin__ct_is(rq->content_type, "application/yaml") ||
         cp_admin__ct_is(rq->content_type, "text/yaml"))) {
        take_options(rq, NULL, in);
        in->text = rq->body != NULL ? rq->body : "";
        in->len = rq->body_len;
        if (in->len > 0) {
            return true;
        }
    } else if (rq->content_type != NULL || rq->body_len > 0) {
        body = cp_admin__body(rq, rs); /* 415 for other types, 400 for bad JSON */
        ok = body != NULL && from_object(rq, body, in, rs);
        json_decref(body);
        return ok;
    }
    cp_admin__reply_msg(rs, 400, "expected a declarative configuration");
    return false;
}

/* Kong's 201 body: {"<collection>": {"<id>": entity, ...}, ...}, every kind that has
 * entities, timestamps in seconds. */
static json_t *
created_body(json_t *const lists[ST_ENT__COUNT])
{
    json_t *o = json_object();

    for (int k = 0; k < ST_ENT__COUNT; k++) {
        json_t *m;
        json_t *e;
        size_t i;

        if (json_array_size(lists[k]) == 0) {
            continue;
        }
        m = json_object();
        json_array_foreach(lists[k], i, e)
        {
            const char *id = json_string_value(json_object_get(e, "id"));

            json_object_set_new(m, id != NULL ? id : "", cp_admin__render(e));
        }
        json_object_set_new(o, st_entity_name((enum st_entity_kind)k), m);
    }
    return o;
}

static void
reply_load_error(struct cp_response *rs, int rc, struct cp_decl_result *r, bool flatten)
{
    if (rc == -ST_ESCHEMA) {
        json_t *e = json_incref(r->error);

        if (!flatten) {
            json_object_del(e, "flattened_errors");
        } else if (json_object_get(e, "flattened_errors") == NULL) {
            json_object_set_new(e, "flattened_errors", json_array());
        }
        cp_admin__reply(rs, 400, e);
        return;
    }
    if (rc == -ST_ETOOBIG) {
        /* Kong's 413 for a configuration that does not fit where it goes (its LMDB) */
        cp_admin__reply_msg(rs, 413, r->err.msg);
        return;
    }
    /* a store constraint the parse could not see (Kong's DAO errors), or the database */
    cp_admin__reply_err(rs, r->kind, rc, &r->err, NULL);
}

/* check_hash: the same text as the last load, and no write since (st: a pooled handle). */
static bool
unchanged(struct cp_ctx *cx, struct cp_store *st, const char *sha)
{
    uint64_t last_version = 0;
    uint64_t version = 0;
    bool same;

    pthread_mutex_lock(&cx->config_mu);
    same = cx->config_sha[0] != '\0' && strcmp(cx->config_sha, sha) == 0;
    last_version = cx->config_version;
    pthread_mutex_unlock(&cx->config_mu);
    return same && cp_store_version(st, &version) == 0 && version == last_version;
}

/* After a successful load: remembers (sha, the version after it) when the load's commit
 * was the only write between `before` and `after` (every commit that writes bumps the
 * version by one; an empty document over an empty store writes nothing), else forgets the
 * last load, so that check_hash does not answer 304 over a write another request or
 * another control plane made meanwhile. */
static void
remember(struct cp_ctx *cx, const char *sha, int rc_before, uint64_t before, int rc_after,
         uint64_t after)
{
    pthread_mutex_lock(&cx->config_mu);
    if (rc_before == 0 && rc_after == 0 && (after == before + 1 || after == before)) {
        memcpy(cx->config_sha, sha, sizeof(cx->config_sha));
        cx->config_version = after;
    } else {
        cx->config_sha[0] = '\0';
    }
    pthread_mutex_unlock(&cx->config_mu);
}

static void
post_config(struct cp_ctx *cx, const struct cp_request *rq, struct cp_response *rs)
{
    const struct cp_decl_limits lim = {.snap = cx->snap,
                                       .max_payload = cx->conf.cluster_max_payload};
    struct cp_decl_result r;
    struct config_in in;
    struct cp_store *st;
    uint64_t before = 0;
    uint64_t after = 0;
    int rc_before;
    char sha[65];
    int rc;

    if (!config_input(rq, rs, &in)) {
        return;
    }
    st_ssl_sha256_hex(in.text, in.len, sha);
    st = cp_store_pool_get(cx->pool);
    if (in.check_hash && unchanged(cx, st, sha)) {
        cp_store_pool_put(cx->pool, st);
        free(in.own);
        cp_admin__reply(rs, 304, NULL);
        return;
    }
    rc_before = cp_store_version(st, &before);
    rc = cp_decl_load(st, in.text, in.len, CP_DECL_REPLACE, &lim, &r);
    if (rc == 0) {
        int rc_after = cp_store_version(st, &after);

        remember(cx, sha, rc_before, before, rc_after, after);
    }
    cp_store_pool_put(cx->pool, st);
    free(in.own);
    if (rc < 0) {
        reply_load_error(rs, rc, &r, in.flatten_errors);
        cp_decl_result_fini(&r);
        return;
    }
    if (cx->snap != NULL) {
        cp_snapshot_kick(cx->snap);
    }
    cp_admin__reply(rs, 201, created_body(r.lists));
    cp_decl_result_fini(&r);
}

/* GET exports the configuration as YAML text. */
void
cp_admin__config(struct cp_ctx *cx, const struct cp_request *rq, struct cp_response *rs)
{
    struct cp_store *st;
    char *text = NULL;
    size_t len = 0;
    int rc;

    if (!cp_admin__is(rq, "GET")) {
        post_config(cx, rq, rs);
        return;
    }
    st = cp_store_pool_get(cx->pool);
    rc = cp_decl_export(st, true, &text, &len);
    cp_store_pool_put(cx->pool, st);
    if (rc < 0) {
        cp_admin__reply_db_fail(rs, rc);
        return;
    }
    cp_admin__reply(rs, 200, json_pack("{s:s%}", "config", text, len));
    free(text);
}
