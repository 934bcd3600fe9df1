/* cp_pg_listen: the LISTEN thread. Starting while the server is unreachable succeeds and
 * stops promptly; a NOTIFY on CP_PG_CHANNEL calls back; after its connection is cut
 * (pg_terminate_backend) it reconnects and calls back once without any NOTIFY, and
 * notifications reach it again; started on a database that does not exist yet, it
 * connects once the database is created and calls back once (it may have missed some). Uses a fresh
 * database on the test Postgres (STRAIT_TEST_PG_{HOST,PORT,USER}, scripts/test.sh); without it the
 * Postgres tests fail. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include "cp_pg.h"
#include "cp_pg_listen.h"
#include "st_conf.h"
#include "st_err.h"
#include "st_util.h"

#define PG_MISSING "no test Postgres (STRAIT_TEST_PG_PORT unset): run through scripts/test.sh"
#define WAIT_MS    15000

static int calls; /* __atomic */

static void
count_cb(void *arg)
{
    int *c = arg;

    __atomic_add_fetch(c, 1, __ATOMIC_SEQ_CST);
}

static int
ncalls(void)
{
    return __atomic_load_n(&calls, __ATOMIC_SEQ_CST);
}

static PGconn *
pg_conn(const char *dbname)
{
    const char *port = getenv("STRAIT_TEST_PG_PORT");
    const char *host = getenv("STRAIT_TEST_PG_HOST");
    const char *user = getenv("STRAIT_TEST_PG_USER");
    const char *const keys[] = {"host", "port", "user", "dbname", "connect_timeout", NULL};
    const char *vals[] = {host != NULL ? host : "127.0.0.1",
                          port,
                          user != NULL ? user : "strait",
                          dbname,
                          "10",
                          NULL};
    PGconn *c;

    if (port == NULL || port[0] == '\0') {
        fail_msg("%s", PG_MISSING);
    }
    c = PQconnectdbParams(keys, vals, 0);
    if (PQstatus(c) != CONNECTION_OK) {
        fail_msg("test Postgres at %s:%s: %s", vals[0], port, PQerrorMessage(c));
    }
    return c;
}

static void
pg_exec(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);

    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
        fail_msg("%s: %s", sql, PQerrorMessage(c));
    }
    PQclear(r);
}

/* How many backends of dbname are LISTENing (their last statement). */
static int
listeners(PGconn *c, const char *dbname)
{
    const char *params[] = {dbname};
    PGresult *r = PQexecParams(c,
                               "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 "
                               "AND query = 'LISTEN " CP_PG_CHANNEL "'",
                               1, NULL, params, NULL, NULL, 0);
    int n;

    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        fail_msg("pg_stat_activity: %s", PQerrorMessage(c));
    }
    n = (int)strtol(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return n;
}

/* Waits until cond holds or WAIT_MS passed (then fails naming what). */
#define WAIT_UNTIL(cond, what)                                                                     \
    do {                                                                                           \
        int64_t end_ = st_mono_ms() + WAIT_MS;                                                     \
        while (!(cond)) {                                                                          \
            if (st_mono_ms() > end_) {                                                             \
                fail_msg("timed out waiting for %s", what);                                        \
            }                                                                                      \
            usleep(20 * 1000);                                                                     \
        }                                                                                          \
    } while (0)

static void
test_start_while_down(void **state)
{
    struct st_conf conf;
    struct st_err err = {0};
    struct cp_pg_listen *l = NULL;

    (void)state;
    memset(&conf, 0, sizeof(conf));
    conf.database = "postgres";
    conf.pg_host = "127.0.0.1";
    conf.pg_port = 1; /* privileged, never a Postgres in a test: connection refused */
    conf.pg_user = "strait";
    conf.pg_database = "strait";
    conf.pg_timeout = 5000;
    __atomic_store_n(&calls, 0, __ATOMIC_SEQ_CST);
    assert_int_equal(cp_pg_listen_start(&conf, count_cb, &calls, &l, &err), 0);
    assert_non_null(l);
    usleep(400 * 1000); /* a few reconnect attempts with backoff */
    cp_pg_listen_stop(l);
    assert_int_equal(ncalls(), 0);
    cp_pg_listen_stop(NULL);
}

static void
test_notify_and_reconnect(void **state)
{
    struct st_conf conf;
    struct st_err err = {0};
    struct cp_pg_listen *l = NULL;
    char name[64];
    char sql[256];
    PGconn *admin = pg_conn("strait");
    PGconn *db;
    int before;

    (void)state;
    st_snprintf(name, sizeof(name), "strait_l%ld", (long)getpid());
    st_snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", name);
    pg_exec(admin, sql);
    st_snprintf(sql, sizeof(sql), "CREATE DATABASE %s", name);
    pg_exec(admin, sql);
    db = pg_conn(name);

    memset(&conf, 0, sizeof(conf));
    conf.database = "postgres";
    conf.pg_host =
        getenv("STRAIT_TEST_PG_HOST") != NULL ? getenv("STRAIT_TEST_PG_HOST") : "127.0.0.1";
    conf.pg_port = (int)strtol(getenv("STRAIT_TEST_PG_PORT"), NULL, 10);
    conf.pg_user = getenv("STRAIT_TEST_PG_USER") != NULL ? getenv("STRAIT_TEST_PG_USER") : "strait";
    conf.pg_database = name;
    conf.pg_timeout = 5000;
    __atomic_store_n(&calls, 0, __ATOMIC_SEQ_CST);
    assert_int_equal(cp_pg_listen_start(&conf, count_cb, &calls, &l, &err), 0);
    WAIT_UNTIL(listeners(admin, name) == 1, "the listener's LISTEN");
    assert_int_equal(ncalls(), 0); /* the first connection calls nobody */

    /* a burst in one transaction */
    pg_exec(db, "BEGIN");
    for (int i = 0; i < 20; i++) {
        st_snprintf(sql, sizeof(sql), "NOTIFY " CP_PG_CHANNEL ", '%d'", i + 1);
        pg_exec(db, sql);
    }
    pg_exec(db, "COMMIT");
    WAIT_UNTIL(ncalls() >= 1, "the callback after NOTIFY");
    assert_in_range(ncalls(), 1, 20);

    /* cut its connection: it reconnects and calls back once with no NOTIFY */
    before = ncalls();
    st_snprintf(sql, sizeof(sql),
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '%s' "
                "AND query = 'LISTEN " CP_PG_CHANNEL "'",
                name);
    pg_exec(admin, sql);
    WAIT_UNTIL(ncalls() == before + 1, "the callback after reconnecting");
    WAIT_UNTIL(listeners(admin, name) == 1, "the listener's LISTEN again");

    before = ncalls();
    pg_exec(db, "NOTIFY " CP_PG_CHANNEL ", '99'");
    WAIT_UNTIL(ncalls() > before, "the callback after NOTIFY on the new connection");

    cp_pg_listen_stop(l);
    PQfinish(db);
    WAIT_UNTIL(listeners(admin, name) == 0, "the listener to disconnect");
    st_snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", name);
    pg_exec(admin, sql);
    PQfinish(admin);
}

static void
test_connects_later(void **state)
{
    struct st_conf conf;
    struct st_err err = {0};
    struct cp_pg_listen *l = NULL;
    char name[64];
    char sql[256];
    PGconn *admin = pg_conn("strait");

    (void)state;
    st_snprintf(name, sizeof(name), "strait_m%ld", (long)getpid());
    st_snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", name);
    pg_exec(admin, sql);
    memset(&conf, 0, sizeof(conf));
    conf.database = "postgres";
    conf.pg_host =
        getenv("STRAIT_TEST_PG_HOST") != NULL ? getenv("STRAIT_TEST_PG_HOST") : "127.0.0.1";
    conf.pg_port = (int)strtol(getenv("STRAIT_TEST_PG_PORT"), NULL, 10);
    conf.pg_user = getenv("STRAIT_TEST_PG_USER") != NULL ? getenv("STRAIT_TEST_PG_USER") : "strait";
    conf.pg_database = name;
    conf.pg_timeout = 5000;
    __atomic_store_n(&calls, 0, __ATOMIC_SEQ_CST);
    assert_int_equal(cp_pg_listen_start(&conf, count_cb, &calls, &l, &err), 0);
    usleep(300 * 1000); /* a few refused attempts */
    assert_int_equal(ncalls(), 0);
    st_snprintf(sql, sizeof(sql), "CREATE DATABASE %s", name);
    pg_exec(admin, sql);
    WAIT_UNTIL(listeners(admin, name) == 1, "the listener's LISTEN once the database exists");
    WAIT_UNTIL(ncalls() == 1, "one callback after connecting late");
    cp_pg_listen_stop(l);
    st_snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", name);
    pg_exec(admin, sql);
    PQfinish(admin);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_start_while_down),
        cmocka_unit_test(test_notify_and_reconnect),
        cmocka_unit_test(test_connects_later),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
