/* The Postgres store's schema: its versioned migrations, `strait-cp migrations ...`
 * (cp_migrate.h) and the check a CP makes before it serves (cp_pg_schema_check).
 *
 * The layout follows cp_store_sqlite.c (one table per entity, `doc` holds the entity as
 * JSON text) with what Postgres can enforce more of: ids and names compare bytewise
 * (COLLATE "C", the order SQLite and the snapshot use), tags are jsonb (GIN-indexed for
 * the tag filters), and a service's ca_certificates are rows of services_ca_certificates,
 * so that a CA certificate in use cannot be deleted even by a racing CP. */
#include "cp_migrate.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cp_pg.h"
#include "cp_store_int.h"
#include "st_conf.h"
#include "st_err.h"
#include "st_log.h"
#include "st_util.h"

/* pg_advisory_lock key of migrations ("Strm", 0x5374726d; cp_store_pg.c's writer lock is
 * "Strw"). */
#define LOCK_MIGRATIONS "1400140397"

static const struct cp_store_migration migrations[] = {
    {1, "000_base",
     "CREATE TABLE meta (key TEXT PRIMARY KEY, value BIGINT NOT NULL);"
     "INSERT INTO meta (key, value) VALUES ('config_version', 0);"
     "CREATE TABLE services ("
     " id TEXT COLLATE \"C\" PRIMARY KEY, name TEXT COLLATE \"C\" UNIQUE,"
     " created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL, tags JSONB, doc TEXT NOT NULL);"
     "CREATE INDEX services_tags_idx ON services USING gin (tags);"
     "CREATE TABLE routes ("
     " id TEXT COLLATE \"C\" PRIMARY KEY, name TEXT COLLATE \"C\" UNIQUE,"
     " created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL,"
     " service_id TEXT COLLATE \"C\" REFERENCES services (id) ON DELETE RESTRICT,"
     " tags JSONB, doc TEXT NOT NULL);"
     "CREATE INDEX routes_service_id_idx ON routes (service_id);"
     "CREATE INDEX routes_tags_idx ON routes USING gin (tags);"},
    {2, "001_certificates",
     "CREATE TABLE certificates ("
     " id TEXT COLLATE \"C\" PRIMARY KEY, created_at BIGINT NOT NULL,"
     " updated_at BIGINT NOT NULL, tags JSONB, doc TEXT NOT NULL);"
     "CREATE INDEX certificates_tags_idx ON certificates USING gin (tags);"
     "CREATE TABLE snis ("
     " id TEXT COLLATE \"C\" PRIMARY KEY, name TEXT COLLATE \"C\" NOT NULL UNIQUE,"
     " created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL,"
     " certificate_id TEXT COLLATE \"C\" NOT NULL REFERENCES certificates (id)"
     " ON DELETE CASCADE, tags JSONB, doc TEXT NOT NULL);"
     "CREATE INDEX snis_certificate_id_idx ON snis (certificate_id);"
     "CREATE INDEX snis_tags_idx ON snis USING gin (tags);"
     "CREATE TABLE ca_certificates ("
     " id TEXT COLLATE \"C\" PRIMARY KEY, cert_digest TEXT COLLATE \"C\" NOT NULL UNIQUE,"
     " created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL, tags JSONB, doc TEXT NOT NULL);"
     "CREATE INDEX ca_certificates_tags_idx ON ca_certificates USING gin (tags);"
     "ALTER TABLE services ADD COLUMN client_certificate_id TEXT COLLATE \"C\""
     " REFERENCES certificates (id) ON DELETE RESTRICT;"
     "CREATE INDEX services_client_certificate_id_idx ON services (client_certificate_id);"
     "CREATE TABLE services_ca_certificates ("
     " service_id TEXT COLLATE \"C\" NOT NULL REFERENCES services (id) ON DELETE CASCADE,"
     " ca_certificate_id TEXT COLLATE \"C\" NOT NULL REFERENCES ca_certificates (id)"
     " ON DELETE RESTRICT, PRIMARY KEY (service_id, ca_certificate_id));"
     "CREATE INDEX services_ca_certificates_ca_idx"
     " ON services_ca_certificates (ca_certificate_id);"},
    /* the data-plane registry every CP sharing the database reads (cp_registry_share.c):
     * doc is the entry in Kong's shape, last_seen_ms orders updates and drives the purge */
    {3, "002_clustering_data_planes",
     "CREATE TABLE clustering_data_planes ("
     " id TEXT COLLATE \"C\" PRIMARY KEY, last_seen_ms BIGINT NOT NULL, doc TEXT NOT NULL);"
     "CREATE INDEX clustering_data_planes_last_seen_idx"
     " ON clustering_data_planes (last_seen_ms);"},
    /* a target's (upstream, target) is unique regardless of case, as host names are */
    {4, "003_upstreams",
     "CREATE TABLE upstreams ("
     " id TEXT COLLATE \"C\" PRIMARY KEY, name TEXT COLLATE \"C\" NOT NULL UNIQUE,"
     " created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL, tags JSONB, doc TEXT NOT NULL,"
     " client_certificate_id TEXT COLLATE \"C\" REFERENCES certificates (id)"
     " ON DELETE RESTRICT);"
     "CREATE INDEX upstreams_client_certificate_id_idx ON upstreams (client_certificate_id);"
     "CREATE INDEX upstreams_tags_idx ON upstreams USING gin (tags);"
     "CREATE TABLE targets ("
     " id TEXT COLLATE \"C\" PRIMARY KEY, created_at BIGINT NOT NULL,"
     " updated_at BIGINT NOT NULL, tags JSONB, doc TEXT NOT NULL,"
     " upstream_id TEXT COLLATE \"C\" NOT NULL REFERENCES upstreams (id) ON DELETE CASCADE,"
     " target TEXT COLLATE \"C\" NOT NULL);"
     "CREATE UNIQUE INDEX targets_upstream_id_target_key ON targets (upstream_id, lower(target));"
     "CREATE INDEX targets_tags_idx ON targets USING gin (tags);"},
    /* plugins (issue 18): unique per (name, route, service, consumer) with NULLs equal, as
     * Kong's cache_key (the store checks it under the writer's lock; the index makes the
     * database refuse a duplicate too) */
    {5, "004_plugins",
     "CREATE TABLE plugins ("
     " id TEXT COLLATE \"C\" PRIMARY KEY, created_at BIGINT NOT NULL,"
     " updated_at BIGINT NOT NULL, tags JSONB, doc TEXT NOT NULL,"
     " name TEXT COLLATE \"C\" NOT NULL, instance_name TEXT COLLATE \"C\" UNIQUE,"
     " route_id TEXT COLLATE \"C\" REFERENCES routes (id) ON DELETE CASCADE,"
     " service_id TEXT COLLATE \"C\" REFERENCES services (id) ON DELETE CASCADE,"
     " consumer TEXT COLLATE \"C\");"
     "CREATE UNIQUE INDEX plugins_name_route_id_service_id_consumer_key ON plugins"
     " (name, coalesce(route_id, ''), coalesce(service_id, ''), coalesce(consumer, ''));"
     "CREATE INDEX plugins_route_id_idx ON plugins (route_id);"
     "CREATE INDEX plugins_service_id_idx ON plugins (service_id);"
     "CREATE INDEX plugins_tags_idx ON plugins USING gin (tags);"},
};

#define N_MIGRATIONS ((int)ST_ARRAY_SIZE(migrations))

#define NEEDS_BOOTSTRAP "the database needs bootstrapping; run 'strait-cp migrations bootstrap'"

/* What `reset` drops: every table the migrations create, and their record. */
static const char reset_sql[] =
    "DROP TABLE IF EXISTS plugins, targets, upstreams, services_ca_certificates, routes, snis, "
    "services,"
    " certificates,"
    " ca_certificates, clustering_data_planes, meta, schema_migrations CASCADE";

/* ------------------------------------------------------------------------ */
/* reading the state */

/* What the database records of the migrations. */
struct state {
    uint64_t applied;  /* a bitmask over 1..N_MIGRATIONS (bit v) */
    bool bootstrapped; /* schema_migrations exists */
    bool newer;        /* it records a version this strait-cp does not know */
};

/* Runs a query of schema_migrations: 0 and *r (PQclear it), or -ST_EDB or -ST_EDBDOWN. */
static int
query(PGconn *conn, const char *sql, PGresult **r)
{
    int rc;

    *r = PQexec(conn, sql);
    if (PQresultStatus(*r) == PGRES_TUPLES_OK) {
        return 0;
    }
    rc = cp_pg_is_down(conn, *r) ? -ST_EDBDOWN : -ST_EDB;
    st_log(ST_LOG_ERR, 0, "postgres: schema_migrations: %s", PQerrorMessage(conn));
    PQclear(*r);
    return rc;
}

/* 0, -ST_EDB or -ST_EDBDOWN. */
static int
read_state(PGconn *conn, struct state *st)
{
    PGresult *r;
    int rc;

    memset(st, 0, sizeof(*st));
    if ((rc = query(conn, "SELECT to_regclass('schema_migrations') IS NOT NULL", &r)) < 0) {
        return rc;
    }
    st->bootstrapped = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    if (!st->bootstrapped) {
        return 0;
    }
    if ((rc = query(conn, "SELECT version FROM schema_migrations", &r)) < 0) {
        return rc;
    }
    for (int i = 0; i < PQntuples(r); i++) {
        long v = strtol(PQgetvalue(r, i, 0), NULL, 10);

        if (v >= 1 && v <= N_MIGRATIONS) {
            st->applied |= UINT64_C(1) << v;
        } else {
            st->newer = true;
        }
    }
    PQclear(r);
    return 0;
}

static bool
is_applied(uint64_t applied, int version)
{
    return (applied & (UINT64_C(1) << version)) != 0;
}

static int
n_pending(uint64_t applied)
{
    int n = 0;

    for (int i = 0; i < N_MIGRATIONS; i++) {
        n += !is_applied(applied, migrations[i].version);
    }
    return n;
}

int
cp_pg_schema_check(PGconn *conn, struct st_err *err)
{
    struct state st;
    int rc = read_state(conn, &st);

    if (rc < 0) {
        return st_err_set(err, rc, "database", "postgres: cannot read the schema version: %s",
                          PQerrorMessage(conn));
    }
    if (!st.bootstrapped) {
        return st_err_set(err, -ST_EDB, "database", "postgres: " NEEDS_BOOTSTRAP);
    }
    if (n_pending(st.applied) > 0) {
        return st_err_set(err, -ST_EDB, "database",
                          "postgres: the database has %d pending migration(s); run "
                          "'strait-cp migrations up'",
                          n_pending(st.applied));
    }
    if (st.newer) {
        return st_err_set(err, -ST_EDB, "database",
                          "postgres: the database schema is newer than this strait-cp (%s) "
                          "knows; upgrade strait-cp",
                          STRAIT_VERSION);
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* running them */

static int
exec_ok(PGconn *conn, const char *sql)
{
    PGresult *r = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(r);
    int rc = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? 0
             : cp_pg_is_down(conn, r)                        ? -ST_EDBDOWN
                                                             : -ST_EDB;

    PQclear(r);
    return rc;
}

/* Takes the migration lock, saying so when another strait-cp holds it. Waits up to a
 * minute (Kong's --lock-timeout default). */
static int
lock_migrations(PGconn *conn, FILE *out)
{
    PGresult *r = PQexec(conn, "SELECT pg_try_advisory_lock(" LOCK_MIGRATIONS ")");
    bool got = PQresultStatus(r) == PGRES_TUPLES_OK && strcmp(PQgetvalue(r, 0, 0), "t") == 0;

    PQclear(r);
    if (got) {
        return 0;
    }
    fprintf(out, "waiting for another strait-cp to finish its migrations...\n");
    fflush(out);
    if (exec_ok(conn, "SET statement_timeout = 60000") < 0) {
        return -ST_EDB;
    }
    return exec_ok(conn, "SELECT pg_advisory_lock(" LOCK_MIGRATIONS ")");
}

/* Test knob: STRAIT_TEST_MIGRATION_DELAY_MS, a pause while holding the lock. */
static void
test_delay(void)
{
    const char *v = getenv("STRAIT_TEST_MIGRATION_DELAY_MS");
    long ms = v != NULL ? strtol(v, NULL, 10) : 0;

    if (ms > 0 && ms <= 60000) {
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

        nanosleep(&ts, NULL);
    }
}

/* Test knob: STRAIT_TEST_MIGRATION_TARGET, the highest version to apply (to build a
 * database that is behind). */
static int
target_version(void)
{
    const char *v = getenv("STRAIT_TEST_MIGRATION_TARGET");
    long t = v != NULL ? strtol(v, NULL, 10) : 0;

    return t >= 1 && t <= N_MIGRATIONS ? (int)t : N_MIGRATIONS;
}

/* Applies one migration and records it, in one transaction. */
static int
apply(PGconn *conn, const struct cp_store_migration *m, FILE *out)
{
    char ver[16];
    char at[24];
    const char *params[3] = {ver, m->name, at};
    PGresult *r;
    int rc;

    rc = exec_ok(conn, "BEGIN");
    if (rc == 0) {
        rc = exec_ok(conn, m->sql);
    }
    if (rc == 0) {
        st_snprintf(ver, sizeof(ver), "%d", m->version);
        st_snprintf(at, sizeof(at), "%lld", (long long)st_time_ms());
        r = PQexecParams(conn,
                         "INSERT INTO schema_migrations (version, name, applied_at)"
                         " VALUES ($1, $2, $3)",
                         3, NULL, params, NULL, NULL, 0);
        rc = PQresultStatus(r) == PGRES_COMMAND_OK ? 0 : -ST_EDB;
        PQclear(r);
    }
    if (rc == 0) {
        rc = exec_ok(conn, "COMMIT");
    }
    if (rc < 0) {
        st_log(ST_LOG_ERR, 0, "postgres: migration %s: %s", m->name, PQerrorMessage(conn));
        exec_ok(conn, "ROLLBACK");
        return rc;
    }
    fprintf(out, "core migrated up to: %s (executed)\n", m->name);
    return 0;
}

/* bootstrap and up: under the lock, re-read what is applied and apply the rest. */
static int
migrate(PGconn *conn, enum cp_migrate_cmd cmd, FILE *out, struct st_err *err)
{
    struct state st;
    int done = 0;
    int rc;

    rc = lock_migrations(conn, out);
    if (rc < 0) {
        return st_err_set(err, rc, NULL, "cannot take the migration lock: %s",
                          PQerrorMessage(conn));
    }
    test_delay();
    rc = read_state(conn, &st);
    if (rc == 0 && cmd == CP_MIGRATE_BOOTSTRAP && st.bootstrapped) {
        fprintf(out, "database already bootstrapped\n");
        goto out;
    }
    if (rc == 0 && cmd == CP_MIGRATE_UP && !st.bootstrapped) {
        rc = st_err_set(err, -ST_EDB, NULL, NEEDS_BOOTSTRAP);
        goto out;
    }
    if (rc == 0 && !st.bootstrapped) {
        fprintf(out, "bootstrapping database...\n");
        rc = exec_ok(conn, "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY,"
                           " name TEXT NOT NULL, applied_at BIGINT NOT NULL)");
    }
    for (int i = 0; rc == 0 && i < N_MIGRATIONS && migrations[i].version <= target_version(); i++) {
        if (!is_applied(st.applied, migrations[i].version)) {
            rc = apply(conn, &migrations[i], out);
            done += rc == 0;
        }
    }
    if (rc < 0) {
        st_err_set(err, rc, NULL, "migration failed: %s", PQerrorMessage(conn));
        goto out;
    }
    if (done == 0) {
        fprintf(out, "database is already up-to-date\n");
    } else {
        fprintf(out, "%d migration%s processed\n%d executed\ndatabase is up-to-date\n", done,
                done == 1 ? "" : "s", done);
    }
out:
    exec_ok(conn, "SELECT pg_advisory_unlock(" LOCK_MIGRATIONS ")");
    return rc;
}

/* The names of the migrations that are (or are not) applied, comma-separated. */
static void
print_names(FILE *out, uint64_t applied, bool are)
{
    const char *sep = "";

    for (int i = 0; i < N_MIGRATIONS; i++) {
        if (is_applied(applied, migrations[i].version) == are) {
            fprintf(out, "%s%s", sep, migrations[i].name);
            sep = ", ";
        }
    }
}

static int
list(PGconn *conn, FILE *out, struct st_err *err)
{
    struct state st;
    int rc = read_state(conn, &st);

    if (rc < 0) {
        st_err_set(err, rc, NULL, "cannot read the migrations: %s", PQerrorMessage(conn));
        return 1;
    }
    if (!st.bootstrapped) {
        fprintf(out, "database needs bootstrapping; run 'strait-cp migrations bootstrap'\n");
        return CP_MIGRATE_EXIT_NEEDS_BOOTSTRAP;
    }
    fprintf(out, "executed migrations:\ncore: ");
    print_names(out, st.applied, true);
    fprintf(out, "\n");
    if (n_pending(st.applied) == 0) {
        fprintf(out, "database is up-to-date\n");
        return 0;
    }
    fprintf(out, "new migrations available:\ncore: ");
    print_names(out, st.applied, false);
    fprintf(out, "\nrun 'strait-cp migrations up' to proceed\n");
    return CP_MIGRATE_EXIT_PENDING;
}

static int
reset(PGconn *conn, bool yes, FILE *out, struct st_err *err)
{
    struct state st;
    int rc;

    if (!yes) {
        st_err_set(err, -ST_EPARSE, NULL,
                   "reset drops every table and all data; run it with --yes to confirm");
        return 1;
    }
    rc = lock_migrations(conn, out);
    if (rc == 0) {
        rc = read_state(conn, &st);
    }
    if (rc == 0 && !st.bootstrapped) {
        fprintf(out, "database not bootstrapped, nothing to reset\n");
    } else if (rc == 0) {
        rc = exec_ok(conn, reset_sql);
        if (rc == 0) {
            fprintf(out, "database reset\n");
        }
    }
    exec_ok(conn, "SELECT pg_advisory_unlock(" LOCK_MIGRATIONS ")");
    if (rc < 0) {
        st_err_set(err, rc, NULL, "reset failed: %s", PQerrorMessage(conn));
        return 1;
    }
    return 0;
}

int
cp_migrate_cmd_parse(const char *name, enum cp_migrate_cmd *out)
{
    static const char *const names[] = {
        [CP_MIGRATE_BOOTSTRAP] = "bootstrap", [CP_MIGRATE_UP] = "up",
        [CP_MIGRATE_FINISH] = "finish",       [CP_MIGRATE_LIST] = "list",
        [CP_MIGRATE_RESET] = "reset",
    };

    for (size_t i = 0; name != NULL && i < ST_ARRAY_SIZE(names); i++) {
        if (strcmp(name, names[i]) == 0) {
            *out = (enum cp_migrate_cmd)i;
            return 0;
        }
    }
    return -ST_EPARSE;
}

int
cp_migrate_run(const struct st_conf *conf, enum cp_migrate_cmd cmd, bool yes, FILE *out,
               struct st_err *err)
{
    PGconn *conn = NULL;
    int code = 0;
    int rc;

    if (conf->database == NULL || strcmp(conf->database, "postgres") != 0) {
        fprintf(out, "nothing to do: database = sqlite migrates itself when strait-cp starts\n");
        return 0;
    }
    rc = cp_pg_connect(conf, &conn, err);
    if (rc < 0) {
        return 1;
    }
    /* migrations may outlast pg_timeout; the lock wait has its own limit */
    exec_ok(conn, "SET statement_timeout = 0");
    exec_ok(conn, "SET client_min_messages = warning");
    switch (cmd) {
    case CP_MIGRATE_BOOTSTRAP:
    case CP_MIGRATE_UP:
        code = migrate(conn, cmd, out, err) < 0 ? 1 : 0;
        break;
    case CP_MIGRATE_FINISH: {
        struct state st;

        rc = read_state(conn, &st);
        if (rc < 0 || !st.bootstrapped) {
            st_err_set(err, rc < 0 ? rc : -ST_EDB, NULL,
                       rc < 0 ? "cannot read the migrations" : NEEDS_BOOTSTRAP);
            code = 1;
        } else {
            /* Strait's migrations are all additive: `up` completes them */
            fprintf(out, "no pending migrations to finish\n");
        }
        break;
    }
    case CP_MIGRATE_LIST:
        code = list(conn, out, err);
        break;
    case CP_MIGRATE_RESET:
        code = reset(conn, yes, out, err);
        break;
    }
    PQfinish(conn);
    return code;
}
