/* cp_sync_wait (issue 7, point 5: wait_for_sync) over a real SQLite store, snapshot
 * builder and registry: a wait ends when every DP connected at its start reports the
 * hash of the write's version (or of a later one) without an error, at its deadline with
 * the DPs still pending (those that reported an error marked failed), at once when no DP
 * is connected, when the last pending DP says goodbye, and at stop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cp_registry.h"
#include "cp_snapshot.h"
#include "cp_store.h"
#include "cp_sync_wait.h"
#include "st_err.h"
#include "st_schema.h"
#include "st_syncmsg.h"
#include "st_util.h"

#define WINDOW_MS 40000

/* What a callback reported. */
struct outcome {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int calls;
    size_t n_waited, n_pending;
    char pending[4][64];
    bool failed[4];
    pthread_t thread;
};

struct fx {
    char dir[64];
    char path[128];
    struct cp_store *w; /* the "admin" handle that writes */
    struct cp_snapshot *sn;
    struct cp_registry *reg;
    struct cp_sync_wait *sw;
    struct outcome out;
    int n_services;
};

static void
on_done(void *arg, const struct cp_sync_wait_result *res)
{
    struct outcome *o = arg;

    pthread_mutex_lock(&o->mu);
    o->calls++;
    o->n_waited = res->n_waited;
    o->n_pending = res->n_pending;
    for (size_t i = 0; i < res->n_pending && i < 4; i++) {
        snprintf(o->pending[i], sizeof(o->pending[i]), "%s", res->pending[i].id);
        o->failed[i] = res->pending[i].failed;
    }
    o->thread = pthread_self();
    pthread_cond_broadcast(&o->cv);
    pthread_mutex_unlock(&o->mu);
}

/* Waits up to 10 s for the callback; returns how many calls came. */
static int
await(struct outcome *o)
{
    struct timespec ts;
    int calls;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 10;
    pthread_mutex_lock(&o->mu);
    while (o->calls == 0) {
        if (pthread_cond_timedwait(&o->cv, &o->mu, &ts) != 0) {
            break;
        }
    }
    calls = o->calls;
    pthread_mutex_unlock(&o->mu);
    return calls;
}

static int
calls(struct outcome *o)
{
    int n;

    pthread_mutex_lock(&o->mu);
    n = o->calls;
    pthread_mutex_unlock(&o->mu);
    return n;
}

/* A request from DP id reporting hash (NULL: none) and err (NULL: none). */
static void
report(struct fx *f, const char *id, const char *hash, const char *err, bool goodbye)
{
    struct st_sync_req req = {
        .dp_id = (char *)id,
        .hostname = (char *)"host",
        .dp_version = (char *)"0.1.0",
        .have_hash = (char *)hash,
        .last_error = (char *)err,
        .goodbye = goodbye,
    };

    cp_registry_seen(f->reg, &req, "127.0.0.1", CP_REGISTRY_SYNC_NORMAL, NULL);
}

/* Inserts one more service through the admin handle; returns the committed version. */
static uint64_t
write_one(struct fx *f)
{
    struct st_err err = {0};
    json_t *fields = NULL;
    char id[37];
    char name[32];
    uint64_t v = 0;
    json_t *o;

    f->n_services++;
    snprintf(id, sizeof(id), "00000000-0000-4000-8000-%012d", f->n_services);
    snprintf(name, sizeof(name), "svc%d", f->n_services);
    o = json_pack("{s:s,s:s,s:i,s:i,s:s,s:s,s:i}", "id", id, "name", name, "created_at", 1000,
                  "updated_at", 1000, "protocol", "tcp", "host", "127.0.0.1", "port", 80);
    assert_int_equal(st_schema_validate(ST_ENT_SERVICE, o, &fields), 0);
    assert_int_equal(cp_store_begin(f->w, true), 0);
    assert_int_equal(cp_store_insert(f->w, ST_ENT_SERVICE, o, &err), 0);
    assert_int_equal(cp_store_commit(f->w), 0);
    json_decref(o);
    assert_int_equal(cp_store_version(f->w, &v), 0);
    return v;
}

static void
current_hash(struct fx *f, char hash[65])
{
    struct cp_snapshot_blob *b = cp_snapshot_acquire(f->sn);

    memcpy(hash, b->hash, 65);
    cp_snapshot_blob_unref(b);
}

/* The hash of the current configuration, built now. */
static void
built_hash(struct fx *f, char hash[65])
{
    assert_int_equal(cp_snapshot_refresh(f->sn), 0);
    current_hash(f, hash);
}

static int
setup(void **state)
{
    struct fx *f = st_xcalloc(1, sizeof(*f));
    struct st_err err = {0};
    struct cp_store *b = NULL;

    snprintf(f->dir, sizeof(f->dir), "/tmp/test_cp_sync_wait.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/strait.db", f->dir);
    assert_int_equal(cp_store_sqlite_open(f->path, &f->w, &err), 0);
    assert_int_equal(cp_store_sqlite_open(f->path, &b, &err), 0);
    assert_int_equal(cp_snapshot_new(b, &f->sn, &err), 0);
    f->reg = cp_registry_new();
    assert_int_equal(cp_sync_wait_start(f->reg, f->sn, WINDOW_MS, &f->sw), 0);
    pthread_mutex_init(&f->out.mu, NULL);
    pthread_cond_init(&f->out.cv, NULL);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fx *f = *state;
    static const char *const files[] = {"strait.db", "strait.db-wal", "strait.db-shm"};
    char p[192];

    cp_sync_wait_free(f->sw);
    cp_registry_free(f->reg);
    cp_snapshot_free(f->sn);
    cp_store_close(f->w);
    for (size_t i = 0; i < ST_ARRAY_SIZE(files); i++) {
        snprintf(p, sizeof(p), "%s/%s", f->dir, files[i]);
        unlink(p);
    }
    rmdir(f->dir);
    pthread_cond_destroy(&f->out.cv);
    pthread_mutex_destroy(&f->out.mu);
    free(f);
    return 0;
}

static void
test_no_dp_answers_at_once(void **state)
{
    struct fx *f = *state;
    uint64_t v = write_one(f);

    cp_sync_wait_add(f->sw, v, 60000, on_done, &f->out);
    assert_int_equal(calls(&f->out), 1); /* before add returned */
    assert_true(pthread_equal(f->out.thread, pthread_self()));
    assert_int_equal(f->out.n_waited, 0);
    assert_int_equal(f->out.n_pending, 0);
}

static void
test_ends_when_every_dp_acknowledged(void **state)
{
    struct fx *f = *state;
    char h0[65], h1[65];
    uint64_t v;

    current_hash(f, h0);
    report(f, "dp-a", h0, NULL, false);
    report(f, "dp-b", h0, NULL, false);
    v = write_one(f);
    /* the waiter thread builds the version's snapshot itself (no builder thread here) */
    cp_sync_wait_add(f->sw, v, 60000, on_done, &f->out);
    for (int i = 0; i < 100; i++) {
        current_hash(f, h1);
        if (strcmp(h1, h0) != 0) {
            break;
        }
        usleep(20000);
    }
    assert_string_not_equal(h1, h0);
    report(f, "dp-a", h1, NULL, false);
    report(f, "dp-b", h0, NULL, false); /* a heartbeat with the old hash: still pending */
    usleep(100000);
    assert_int_equal(calls(&f->out), 0);
    report(f, "dp-b", h1, NULL, false);
    assert_int_equal(await(&f->out), 1);
    assert_int_equal(f->out.n_waited, 2);
    assert_int_equal(f->out.n_pending, 0);
}

/* A fake shared registry: what the other CPs' DPs reported (fake_shared: NULL answers
 * as a database that cannot be read). */
struct fake_shared {
    pthread_mutex_t mu;
    json_t *acks;
    bool down;
    bool down_for_thread; /* down for every thread but `adder` (the test's) */
    pthread_t adder;
    int reads;
};

static json_t *
fake_shared_fn(void *arg, int64_t since_ms)
{
    struct fake_shared *fs = arg;
    json_t *out;

    (void)since_ms;
    pthread_mutex_lock(&fs->mu);
    fs->reads++;
    out = fs->down || (fs->down_for_thread && !pthread_equal(pthread_self(), fs->adder))
              ? NULL
              : json_deep_copy(fs->acks);
    pthread_mutex_unlock(&fs->mu);
    return out;
}

static void
fake_report(struct fake_shared *fs, const char *id, const char *hash)
{
    pthread_mutex_lock(&fs->mu);
    json_object_set_new(fs->acks, id,
                        json_pack("{s:s,s:s,s:I}", "config_hash", hash, "sync_status", "normal",
                                  "last_seen_ms", (json_int_t)st_time_ms()));
    pthread_mutex_unlock(&fs->mu);
}

/* With a shared registry, a wait covers the DPs of the other CPs too: they count as
 * connected at the write and acknowledge through their reports, read again while the
 * wait lasts (nothing pokes for them); a read that fails keeps the last answer, so such
 * a DP is not mistaken for one that left. */
static void
test_shared_dps_are_waited_for(void **state)
{
    struct fx *f = *state;
    struct fake_shared fs = {.acks = json_object()};
    char h0[65], h1[65];
    uint64_t v;

    pthread_mutex_init(&fs.mu, NULL);
    cp_sync_wait_share(f->sw, fake_shared_fn, &fs);
    current_hash(f, h0);
    report(f, "dp-local", h0, NULL, false);
    fake_report(&fs, "dp-remote", h0);
    v = write_one(f);
    built_hash(f, h1);
    assert_string_not_equal(h1, h0);
    cp_sync_wait_add(f->sw, v, 60000, on_done, &f->out);
    report(f, "dp-local", h1, NULL, false);
    usleep(3 * CP_SYNC_WAIT_SHARED_MS * 1000);
    assert_int_equal(calls(&f->out), 0); /* the remote DP has not acknowledged */
    pthread_mutex_lock(&fs.mu);
    fs.down = true;
    pthread_mutex_unlock(&fs.mu);
    usleep(3 * CP_SYNC_WAIT_SHARED_MS * 1000);
    assert_int_equal(calls(&f->out), 0); /* unreadable: still waited for */
    fake_report(&fs, "dp-remote", h1);
    pthread_mutex_lock(&fs.mu);
    fs.down = false;
    pthread_mutex_unlock(&fs.mu);
    assert_int_equal(await(&f->out), 1); /* no poke: the thread reads again by itself */
    assert_int_equal(f->out.n_waited, 2);
    assert_int_equal(f->out.n_pending, 0);
    cp_sync_wait_stop(f->sw); /* before fs goes */
    assert_true(fs.reads >= 3);
    json_decref(fs.acks);
    pthread_mutex_destroy(&fs.mu);
}

/* Another CP's DP is taken for gone only by a read of the shared reports made after the
 * wait began: here the waiter thread's last good read (from an earlier wait) predates a
 * DP that the add saw, and its reads fail since; the DP stays pending to the deadline. */
static void
test_shared_dp_not_gone_by_an_old_read(void **state)
{
    struct fx *f = *state;
    struct fake_shared fs = {.acks = json_object(), .adder = pthread_self()};
    char h0[65], h1[65];
    uint64_t v;

    pthread_mutex_init(&fs.mu, NULL);
    cp_sync_wait_share(f->sw, fake_shared_fn, &fs);
    current_hash(f, h0);
    fake_report(&fs, "dp-r1", h0);
    v = write_one(f);
    built_hash(f, h1);
    cp_sync_wait_add(f->sw, v, 60000, on_done, &f->out);
    fake_report(&fs, "dp-r1", h1);
    assert_int_equal(await(&f->out), 1); /* the thread's last good read: dp-r1 only */
    assert_int_equal(f->out.n_waited, 1);

    pthread_mutex_lock(&fs.mu);
    json_object_del(fs.acks, "dp-r1"); /* it left; dp-r2 came, through another CP */
    fs.down_for_thread = true;
    pthread_mutex_unlock(&fs.mu);
    fake_report(&fs, "dp-r2", h1);
    f->out.calls = 0;
    v = write_one(f);
    cp_sync_wait_add(f->sw, v, 1500, on_done, &f->out);
    assert_int_equal(await(&f->out), 1);
    assert_int_equal(f->out.n_waited, 1);
    assert_int_equal(f->out.n_pending, 1); /* at the deadline, not at once */
    assert_string_equal(f->out.pending[0], "dp-r2");
    assert_false(f->out.failed[0]);
    cp_sync_wait_stop(f->sw);
    json_decref(fs.acks);
    pthread_mutex_destroy(&fs.mu);
}

static void
test_a_later_configuration_acknowledges(void **state)
{
    struct fx *f = *state;
    char h0[65], h2[65];
    uint64_t v1;

    current_hash(f, h0);
    report(f, "dp-a", h0, NULL, false);
    v1 = write_one(f);
    cp_sync_wait_add(f->sw, v1, 60000, on_done, &f->out);
    write_one(f);
    built_hash(f, h2);
    report(f, "dp-a", h2, NULL, false);
    assert_int_equal(await(&f->out), 1);
    assert_int_equal(f->out.n_pending, 0);
}

static void
test_deadline_names_the_pending_and_failed(void **state)
{
    struct fx *f = *state;
    char h0[65], h1[65];
    uint64_t v;

    current_hash(f, h0);
    report(f, "dp-c", h0, NULL, false);
    report(f, "dp-a", h0, NULL, false);
    report(f, "dp-b", h0, NULL, false);
    v = write_one(f);
    built_hash(f, h1);
    cp_sync_wait_add(f->sw, v, 300, on_done, &f->out);
    report(f, "dp-b", h1, NULL, false);
    report(f, "dp-c", h0, "cannot apply", false);
    assert_int_equal(await(&f->out), 1);
    assert_int_equal(f->out.n_waited, 3);
    assert_int_equal(f->out.n_pending, 2);
    assert_string_equal(f->out.pending[0], "dp-a"); /* sorted */
    assert_false(f->out.failed[0]);
    assert_string_equal(f->out.pending[1], "dp-c");
    assert_true(f->out.failed[1]);
}

static void
test_an_error_with_the_right_hash_is_no_ack(void **state)
{
    struct fx *f = *state;
    char h1[65];
    uint64_t v;

    report(f, "dp-a", NULL, NULL, false);
    v = write_one(f);
    built_hash(f, h1);
    cp_sync_wait_add(f->sw, v, 300, on_done, &f->out);
    report(f, "dp-a", h1, "the next one failed", false);
    assert_int_equal(await(&f->out), 1);
    assert_int_equal(f->out.n_pending, 1);
    assert_true(f->out.failed[0]);
}

static void
test_goodbye_is_not_waited_for(void **state)
{
    struct fx *f = *state;
    uint64_t v;

    report(f, "dp-a", NULL, NULL, false);
    v = write_one(f);
    cp_sync_wait_add(f->sw, v, 60000, on_done, &f->out);
    usleep(50000);
    assert_int_equal(calls(&f->out), 0);
    report(f, "dp-a", NULL, NULL, true);
    assert_int_equal(await(&f->out), 1);
    assert_int_equal(f->out.n_waited, 1);
    assert_int_equal(f->out.n_pending, 0);
}

static void
test_unchanged_hash_acknowledges_at_once(void **state)
{
    struct fx *f = *state;
    char h0[65];
    uint64_t v = 0;

    /* a version with the configuration the DP already runs (a commit that wrote nothing
     * keeps the version: ask for the current one) */
    current_hash(f, h0);
    assert_int_equal(cp_store_version(f->w, &v), 0);
    report(f, "dp-a", h0, NULL, false);
    cp_sync_wait_add(f->sw, v, 60000, on_done, &f->out);
    assert_int_equal(await(&f->out), 1);
    assert_int_equal(f->out.n_pending, 0);
    assert_int_equal(f->out.n_waited, 1);
}

static void
test_stop_ends_every_wait(void **state)
{
    struct fx *f = *state;
    struct outcome later = {.calls = 0};
    uint64_t v;

    pthread_mutex_init(&later.mu, NULL);
    pthread_cond_init(&later.cv, NULL);
    report(f, "dp-a", NULL, NULL, false);
    v = write_one(f);
    cp_sync_wait_add(f->sw, v, 60000, on_done, &f->out);
    usleep(50000);
    assert_int_equal(calls(&f->out), 0);
    cp_sync_wait_stop(f->sw);
    assert_int_equal(calls(&f->out), 1);
    assert_int_equal(f->out.n_pending, 1);
    assert_string_equal(f->out.pending[0], "dp-a");
    /* after the stop, an add answers at once, every DP pending */
    cp_sync_wait_add(f->sw, v, 60000, on_done, &later);
    assert_int_equal(calls(&later), 1);
    assert_int_equal(later.n_pending, 1);
    /* the registry no longer calls into the stopped instance */
    report(f, "dp-a", NULL, NULL, false);
    cp_sync_wait_stop(f->sw);
    pthread_cond_destroy(&later.cv);
    pthread_mutex_destroy(&later.mu);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_no_dp_answers_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ends_when_every_dp_acknowledged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_later_configuration_acknowledges, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deadline_names_the_pending_and_failed, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_an_error_with_the_right_hash_is_no_ack, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_goodbye_is_not_waited_for, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unchanged_hash_acknowledges_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_ends_every_wait, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shared_dps_are_waited_for, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shared_dp_not_gone_by_an_old_read, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
