/* Data-plane registry (see cp_registry.h). Entries live in a small array: a CP
 * serves tens to thousands of DPs, and each lookup is per sync request. */
#include "cp_registry.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "st_log.h"
#include "st_syncmsg.h"
#include "st_util.h"

#define CP_HASH_NONE "0000000000000000000000000000000000000000000000000000000000000000"

/* With the shared records at hand, this CP lists its own entries seen within this long
 * only: older ones are in the database already (cp_registry_share saves every second). */
#define CP_REGISTRY_SAVED_MS 5000

/* Kong's default cluster_data_plane_purge_delay (14 days), in ms */
#define CP_PURGE_DELAY_DEFAULT_MS (1209600LL * 1000)

/* A DP names itself, so a peer with the cluster certificate could invent ids without end:
 * past this many entries, a new id replaces the entry silent the longest (issue 14). */
#define CP_REGISTRY_MAX_DEFAULT 65536

/* At most one "forgot" warning this often; the next one counts those in between. */
#define CP_REGISTRY_EVICT_WARN_MS 60000

/* Where a DP's health report rides in its record (the shared registry's doc too). */
#define HEALTH_KEY "upstream_health"

struct cp_dp {
    char *id;
    char *ip;
    char *hostname;
    char *version;
    char *config_hash;
    char *last_error; /* sync_error: the DP's apply error, or why it is incompatible */
    json_t *labels;
    json_t *health; /* the DP's last upstream health report (NULL: none) */
    int64_t cert_expiry;
    int64_t last_seen_ms; /* unix ms */
    uint64_t seen_seq;    /* r->seq at the last request: orders entries by recency */
    enum cp_registry_sync status;
    bool unsaved; /* changed since cp_registry_take() */
};

struct cp_registry {
    pthread_mutex_t mu;
    struct cp_dp *v;
    size_t n, cap;
    size_t max;                       /* entries at most (cp_registry_set_max) */
    uint64_t seq;                     /* counts requests, for seen_seq */
    uint64_t evicted;                 /* entries forgotten since the last warning */
    int64_t evict_warned_ms;          /* st_mono_ms() of that warning, 0: never */
    int64_t purge_ms;                 /* entries older than this are dropped */
    bool purge_forced;                /* STRAIT_TEST_PURGE_DELAY_MS */
    cp_registry_change_fn *on_change; /* wait_for_sync (cp_registry_on_change) */
    void *on_change_arg;
    json_t *gone; /* goodbyes since cp_registry_take(): [{"id", "at_ms"}] */
    bool shared;  /* cp_registry_take() runs (cp_registry_share): keep the goodbyes */
};

static void notify_locked(struct cp_registry *r);

struct cp_registry *
cp_registry_new(void)
{
    struct cp_registry *r = st_xcalloc(1, sizeof(*r));
    const char *knob = getenv("STRAIT_TEST_PURGE_DELAY_MS");

    pthread_mutex_init(&r->mu, NULL);
    r->purge_ms = CP_PURGE_DELAY_DEFAULT_MS;
    r->max = CP_REGISTRY_MAX_DEFAULT;
    r->gone = json_array();
    if (knob != NULL && *knob != '\0') {
        char *end = NULL;
        long long ms = strtoll(knob, &end, 10);

        if (end != knob && *end == '\0' && ms >= 1) {
            r->purge_ms = ms;
            r->purge_forced = true;
            st_log(ST_LOG_WARN, 0,
                   "cluster: STRAIT_TEST_PURGE_DELAY_MS=%lld: silent data planes leave the "
                   "list after %lld ms (a test knob)",
                   ms, ms);
        } else {
            st_log(ST_LOG_WARN, 0,
                   "cluster: STRAIT_TEST_PURGE_DELAY_MS='%s' ignored: not a "
                   "positive number of milliseconds",
                   knob);
        }
    }
    return r;
}

void
cp_registry_set_purge_delay(struct cp_registry *r, int64_t seconds)
{
    pthread_mutex_lock(&r->mu);
    if (!r->purge_forced && seconds > 0) {
        r->purge_ms = seconds * 1000;
    }
    pthread_mutex_unlock(&r->mu);
}

void
cp_registry_set_max(struct cp_registry *r, size_t max)
{
    pthread_mutex_lock(&r->mu);
    r->max = max > 0 ? max : 1;
    pthread_mutex_unlock(&r->mu);
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
    json_decref(d->health);
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
    json_decref(r->gone);
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

/* Drops the entry for id; a shared registry forgets it too (cp_registry_take). */
static void
remove_locked(struct cp_registry *r, const char *id, int64_t now_ms)
{
    struct cp_dp *d = find(r, id);

    if (r->shared) {
        json_array_append_new(r->gone,
                              json_pack("{s:s,s:I}", "id", id, "at_ms", (json_int_t)now_ms));
    }
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

/* Drops the entries not seen for the purge delay. Called with mu held. */
static void
purge_locked(struct cp_registry *r, int64_t now_ms)
{
    size_t i = 0;

    while (i < r->n) {
        if (now_ms - r->v[i].last_seen_ms >= r->purge_ms) {
            dp_fini(&r->v[i]);
            r->v[i] = r->v[--r->n];
        } else {
            i++;
        }
    }
}

/* Full, with a new id knocking: forgets the entry silent the longest, as a goodbye (a
 * shared registry deletes its record too). A DP still talking comes back at its next
 * request; the warning is rate-limited, since a flood of ids is what fills the registry. */
static void
evict_locked(struct cp_registry *r, const char *new_id, int64_t now_ms)
{
    const int64_t mono = st_mono_ms();
    size_t old = 0;

    for (size_t i = 1; i < r->n; i++) {
        if (r->v[i].seen_seq < r->v[old].seen_seq) {
            old = i;
        }
    }
    r->evicted++;
    if (r->evict_warned_ms == 0 || mono - r->evict_warned_ms >= CP_REGISTRY_EVICT_WARN_MS) {
        st_log(ST_LOG_WARN, 0,
               "cluster: the registry holds its maximum of %zu data planes: forgot %.64s "
               "(silent for %lld s) for the new %.64s (%llu forgotten since the last such line)",
               r->max, r->v[old].id, (long long)((now_ms - r->v[old].last_seen_ms) / 1000), new_id,
               (unsigned long long)r->evicted);
        r->evicted = 0;
        r->evict_warned_ms = mono;
    }
    remove_locked(r, r->v[old].id, now_ms);
}

void
cp_registry_seen(struct cp_registry *r, const struct st_sync_req *req, const char *ip,
                 enum cp_registry_sync status, const char *why)
{
    const int64_t now_ms = st_time_ms();
    struct cp_dp *d;

    if (req->dp_id == NULL || req->dp_id[0] == '\0') {
        return;
    }
    pthread_mutex_lock(&r->mu);
    purge_locked(r, now_ms);
    if (req->goodbye) {
        remove_locked(r, req->dp_id, now_ms);
        notify_locked(r);
        pthread_mutex_unlock(&r->mu);
        return;
    }
    d = find(r, req->dp_id);
    if (d == NULL) {
        while (r->n >= r->max) {
            evict_locked(r, req->dp_id, now_ms);
        }
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
    d->status = status;
    if (status != CP_REGISTRY_SYNC_NORMAL) {
        d->last_error = why != NULL ? st_xstrdup(why) : NULL;
    } else if (req->last_error != NULL && req->last_error[0] != '\0') {
        d->last_error = st_xstrdup(req->last_error);
    }
    d->labels = json_object();
    for (size_t i = 0; i < req->n_labels; i++) {
        json_object_set_new(d->labels, req->labels[i].key, json_string(req->labels[i].value));
    }
    d->cert_expiry = req->cert_expiry;
    d->health = req->upstream_health != NULL ? json_loads(req->upstream_health, 0, NULL) : NULL;
    if (d->health != NULL && !json_is_object(d->health)) {
        json_decref(d->health);
        d->health = NULL;
    }
    d->last_seen_ms = now_ms;
    d->seen_seq = ++r->seq;
    d->unsaved = true;
    notify_locked(r);
    pthread_mutex_unlock(&r->mu);
}

void
cp_registry_remove(struct cp_registry *r, const char *id)
{
    pthread_mutex_lock(&r->mu);
    remove_locked(r, id, st_time_ms());
    notify_locked(r);
    pthread_mutex_unlock(&r->mu);
}

static const char *
status_name(const struct cp_dp *d)
{
    if (d->status == CP_REGISTRY_SYNC_VERSION_INCOMPATIBLE) {
        return "kong_version_incompatible";
    }
    return d->last_error != NULL ? "apply_failed" : "normal";
}

/* One entry in Kong's shape, but for ttl (which depends on when it is read). */
static json_t *
entry_doc(const struct cp_dp *d)
{
    json_t *o = json_object();
    json_t *cert = json_object();

    json_object_set_new(o, "id", json_string(d->id));
    json_object_set_new(o, "ip", json_string(d->ip));
    json_object_set_new(o, "hostname", json_string(d->hostname));
    json_object_set_new(o, "version", json_string(d->version));
    json_object_set_new(o, "sync_status", json_string(status_name(d)));
    json_object_set_new(o, "sync_error",
                        d->last_error != NULL ? json_string(d->last_error) : json_null());
    json_object_set_new(o, "config_hash", json_string(d->config_hash));
    json_object_set_new(o, "last_seen", json_integer(d->last_seen_ms / 1000));
    json_object_set_new(o, "updated_at", json_integer(d->last_seen_ms / 1000));
    json_object_set_new(o, "labels", json_deep_copy(d->labels));
    if (d->cert_expiry > 0) {
        json_object_set_new(cert, "expiry_timestamp", json_integer(d->cert_expiry));
    }
    json_object_set_new(o, "cert_details", cert);
    if (d->health != NULL) {
        /* for the fleet's health view; never listed (cp_registry_list drops it) */
        json_object_set(o, HEALTH_KEY, d->health);
    }
    return o;
}

/* A record as the shared registry stores it: {"id", "last_seen_ms", "doc"}. */
static json_t *
entry_record(const struct cp_dp *d)
{
    return json_pack("{s:s,s:I,s:o}", "id", d->id, "last_seen_ms", (json_int_t)d->last_seen_ms,
                     "doc", entry_doc(d));
}

/* One entry of the list, local or shared: id, when it was last seen and its record (local
 * entries get theirs when they make the page). */
struct listed {
    const char *id;
    int64_t seen_ms;
    const struct cp_dp *local;
    const json_t *doc; /* shared: the stored doc */
};

/* By id, and the most recently seen first among equal ids. */
static int
by_id_then_newest(const void *a, const void *b)
{
    const struct listed *x = a;
    const struct listed *y = b;
    int c = strcmp(x->id, y->id);

    if (c != 0) {
        return c;
    }
    return x->seen_ms > y->seen_ms ? -1 : x->seen_ms < y->seen_ms;
}

static json_t *
list(struct cp_registry *r, const json_t *shared, const char *after, size_t size, bool *more,
     bool health)
{
    const int64_t now_ms = st_time_ms();
    json_t *arr = json_array();
    struct listed *sel;
    size_t n = 0, out = 0, i;
    const json_t *rec;

    if (more != NULL) {
        *more = false;
    }
    pthread_mutex_lock(&r->mu);
    purge_locked(r, now_ms);
    sel = st_xcalloc(r->n + json_array_size(shared) + 1, sizeof(*sel));
    for (i = 0; i < r->n; i++) {
        /* with the shared records at hand, this CP's older entries are in them already
         * (saved within a second): a DP that moved on and said goodbye elsewhere is gone */
        if (shared != NULL && now_ms - r->v[i].last_seen_ms > CP_REGISTRY_SAVED_MS) {
            continue;
        }
        if (after == NULL || strcmp(r->v[i].id, after) > 0) {
            sel[n++] = (struct listed){r->v[i].id, r->v[i].last_seen_ms, &r->v[i], NULL};
        }
    }
    json_array_foreach(shared, i, rec)
    {
        const char *id = json_string_value(json_object_get(rec, "id"));
        int64_t seen = json_integer_value(json_object_get(rec, "last_seen_ms"));
        const json_t *doc = json_object_get(rec, "doc");

        if (id != NULL && json_is_object(doc) && now_ms - seen < r->purge_ms &&
            (after == NULL || strcmp(id, after) > 0)) {
            sel[n++] = (struct listed){id, seen, NULL, doc};
        }
    }
    qsort(sel, n, sizeof(*sel), by_id_then_newest);
    for (i = 0; i < n; i++) {
        json_t *o;
        int64_t left;

        if (i > 0 && strcmp(sel[i].id, sel[i - 1].id) == 0) {
            continue; /* an older record of the same DP (it moved between CPs) */
        }
        if (out == size) {
            if (more != NULL) {
                *more = true;
            }
            break;
        }
        o = sel[i].local != NULL ? entry_doc(sel[i].local) : json_deep_copy(sel[i].doc);
        if (!health) {
            json_object_del(o, HEALTH_KEY);
        }
        left = r->purge_ms - (now_ms - sel[i].seen_ms);
        json_object_set_new(o, "ttl", json_integer(left > 0 ? (left + 999) / 1000 : 0));
        json_array_append_new(arr, o);
        out++;
    }
    pthread_mutex_unlock(&r->mu);
    free(sel);
    return arr;
}

json_t *
cp_registry_list(struct cp_registry *r, const json_t *shared, const char *after, size_t size,
                 bool *more)
{
    return list(r, shared, after, size, more, false);
}

json_t *
cp_registry_health(struct cp_registry *r, const json_t *shared)
{
    json_t *all = list(r, shared, NULL, SIZE_MAX, NULL, true);
    json_t *out = json_object();
    size_t i;
    json_t *e;

    json_array_foreach(all, i, e)
    {
        json_t *h = json_object_get(e, HEALTH_KEY);

        json_object_set_new(out, json_string_value(json_object_get(e, "id")),
                            h != NULL ? json_incref(h) : json_null());
    }
    json_decref(all);
    return out;
}

json_t *
cp_registry_status(struct cp_registry *r, const json_t *shared)
{
    static const char *const keys[] = {"config_hash", "hostname", "ip", "last_seen"};
    json_t *map = json_object();
    json_t *all = cp_registry_list(r, shared, NULL, SIZE_MAX, NULL);
    size_t i;
    json_t *e;

    json_array_foreach(all, i, e)
    {
        json_t *o = json_object();

        for (size_t k = 0; k < ST_ARRAY_SIZE(keys); k++) {
            json_t *v = json_object_get(e, keys[k]);

            json_object_set(o, keys[k], v != NULL ? v : json_null());
        }
        json_object_set_new(map, json_string_value(json_object_get(e, "id")), o);
    }
    json_decref(all);
    return map;
}

int64_t
cp_registry_purge_ms(struct cp_registry *r)
{
    int64_t ms;

    pthread_mutex_lock(&r->mu);
    ms = r->purge_ms;
    pthread_mutex_unlock(&r->mu);
    return ms;
}

void
cp_registry_take(struct cp_registry *r, json_t **seen, json_t **gone)
{
    *seen = json_array();
    pthread_mutex_lock(&r->mu);
    r->shared = true;
    for (size_t i = 0; i < r->n; i++) {
        if (r->v[i].unsaved) {
            json_array_append_new(*seen, entry_record(&r->v[i]));
            r->v[i].unsaved = false;
        }
    }
    *gone = r->gone;
    r->gone = json_array();
    pthread_mutex_unlock(&r->mu);
}

/* ------------------------------------------------------------------------- */
/* wait_for_sync (cp_sync_wait) */

static void
notify_locked(struct cp_registry *r)
{
    if (r->on_change != NULL) {
        r->on_change(r->on_change_arg);
    }
}

void
cp_registry_on_change(struct cp_registry *r, cp_registry_change_fn *fn, void *arg)
{
    pthread_mutex_lock(&r->mu);
    r->on_change = fn;
    r->on_change_arg = arg;
    pthread_mutex_unlock(&r->mu);
}

json_t *
cp_registry_acks(struct cp_registry *r, int64_t since_ms)
{
    json_t *map = json_object();

    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->n; i++) {
        const struct cp_dp *d = &r->v[i];

        if (d->last_seen_ms < since_ms) {
            continue;
        }
        json_object_set_new(map, d->id,
                            json_pack("{s:s,s:s,s:I}", "config_hash", d->config_hash, "sync_status",
                                      status_name(d), "last_seen_ms", (json_int_t)d->last_seen_ms));
    }
    pthread_mutex_unlock(&r->mu);
    return map;
}
