/* Data-plane registry (see cp_registry.h). Entries live in a small array: a CP
 * serves tens to thousands of DPs, and each lookup is per sync request. */
#include "cp_registry.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "st_syncmsg.h"
#include "st_util.h"

#define CP_HASH_NONE "0000000000000000000000000000000000000000000000000000000000000000"

struct cp_dp {
    char *id;
    char *ip;
    char *hostname;
    char *version;
    char *config_hash;
    char *last_error;
    json_t *labels;
    int64_t cert_expiry;
    int64_t last_seen; /* unix s */
};

struct cp_registry {
    pthread_mutex_t mu;
    struct cp_dp *v;
    size_t n, cap;
};

struct cp_registry *
cp_registry_new(void)
{
    struct cp_registry *r = st_xcalloc(1, sizeof(*r));

    pthread_mutex_init(&r->mu, NULL);
    return r;
}

static void
dp_fini(struct cp_dp *d)
{
    free(d->id);
    free(d->ip);
    free(d->hostname);
    free(d->version);
    free(d->config_hash);
    free(d->last_error);
    json_decref(d->labels);
    memset(d, 0, sizeof(*d));
}

void
cp_registry_free(struct cp_registry *r)
{
    if (r == NULL) {
        return;
    }
    for (size_t i = 0; i < r->n; i++) {
        dp_fini(&r->v[i]);
    }
    free(r->v);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

static struct cp_dp *
find(struct cp_registry *r, const char *id)
{
    for (size_t i = 0; i < r->n; i++) {
        if (strcmp(r->v[i].id, id) == 0) {
            return &r->v[i];
        }
    }
    return NULL;
}

static void
remove_locked(struct cp_registry *r, const char *id)
{
    struct cp_dp *d = find(r, id);

    if (d != NULL) {
        dp_fini(d);
        *d = r->v[--r->n];
    }
}

static char *
dup_or_empty(const char *s)
{
    return st_xstrdup(s != NULL ? s : "");
}

void
cp_registry_seen(struct cp_registry *r, const struct st_sync_req *req, const char *ip)
{
    struct cp_dp *d;

    if (req->dp_id == NULL || req->dp_id[0] == '\0') {
        return;
    }
    pthread_mutex_lock(&r->mu);
    if (req->goodbye) {
        remove_locked(r, req->dp_id);
        pthread_mutex_unlock(&r->mu);
        return;
    }
    d = find(r, req->dp_id);
    if (d == NULL) {
        if (r->n == r->cap) {
            r->cap = r->cap ? r->cap * 2 : 8;
            r->v = st_xrealloc(r->v, r->cap * sizeof(*r->v));
        }
        d = &r->v[r->n++];
        memset(d, 0, sizeof(*d));
        d->id = st_xstrdup(req->dp_id);
    } else {
        char *id = d->id;

        d->id = NULL;
        dp_fini(d);
        d->id = id;
    }
    d->ip = dup_or_empty(ip);
    d->hostname = dup_or_empty(req->hostname);
    d->version = dup_or_empty(req->dp_version);
    d->config_hash = st_xstrdup(req->have_hash != NULL && req->have_hash[0] != '\0' ? req->have_hash
                                                                                    : CP_HASH_NONE);
    d->last_error =
        req->last_error != NULL && req->last_error[0] != '\0' ? st_xstrdup(req->last_error) : NULL;
    d->labels = json_object();
    for (size_t i = 0; i < req->n_labels; i++) {
        json_object_set_new(d->labels, req->labels[i].key, json_string(req->labels[i].value));
    }
    d->cert_expiry = req->cert_expiry;
    d->last_seen = st_time_ms() / 1000;
    pthread_mutex_unlock(&r->mu);
}

void
cp_registry_remove(struct cp_registry *r, const char *id)
{
    pthread_mutex_lock(&r->mu);
    remove_locked(r, id);
    pthread_mutex_unlock(&r->mu);
}

json_t *
cp_registry_list(struct cp_registry *r)
{
    json_t *arr = json_array();

    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->n; i++) {
        const struct cp_dp *d = &r->v[i];
        json_t *o = json_object();
        json_t *cert = json_object();

        json_object_set_new(o, "id", json_string(d->id));
        json_object_set_new(o, "ip", json_string(d->ip));
        json_object_set_new(o, "hostname", json_string(d->hostname));
        json_object_set_new(o, "version", json_string(d->version));
        json_object_set_new(o, "sync_status",
                            json_string(d->last_error != NULL ? "apply_failed" : "normal"));
        json_object_set_new(o, "config_hash", json_string(d->config_hash));
        json_object_set_new(o, "last_seen", json_integer(d->last_seen));
        json_object_set_new(o, "labels", json_deep_copy(d->labels));
        if (d->cert_expiry > 0) {
            json_object_set_new(cert, "expiry_timestamp", json_integer(d->cert_expiry));
        }
        json_object_set_new(o, "cert_details", cert);
        if (d->last_error != NULL) {
            json_object_set_new(o, "last_error", json_string(d->last_error));
        }
        json_array_append_new(arr, o);
    }
    pthread_mutex_unlock(&r->mu);
    return arr;
}

json_t *
cp_registry_status(struct cp_registry *r)
{
    json_t *map = json_object();

    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->n; i++) {
        const struct cp_dp *d = &r->v[i];
        json_t *o = json_object();

        json_object_set_new(o, "config_hash", json_string(d->config_hash));
        json_object_set_new(o, "hostname", json_string(d->hostname));
        json_object_set_new(o, "ip", json_string(d->ip));
        json_object_set_new(o, "last_seen", json_integer(d->last_seen));
        json_object_set_new(map, d->id, o);
    }
    pthread_mutex_unlock(&r->mu);
    return map;
}
