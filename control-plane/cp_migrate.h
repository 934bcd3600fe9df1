/* `strait-cp migrations bootstrap|up|finish|list|reset` (Kong's kong/cmd/migrations.lua)
 * for the Postgres store, and the check a Postgres CP makes before it starts. The
 * versioned SQL lives in cp_store_pg_schema.c; SQLite migrates itself at open and these
 * commands only say so. Two CPs migrating at once queue on a Postgres advisory lock, and
 * each re-reads what is applied once it holds the lock, so a migration runs once. */
#ifndef STRAIT_CP_MIGRATE_H
#define STRAIT_CP_MIGRATE_H

#include <stdbool.h>
#include <stdio.h>

struct st_conf;
struct st_err;

enum cp_migrate_cmd {
    CP_MIGRATE_BOOTSTRAP,
    CP_MIGRATE_UP,
    CP_MIGRATE_FINISH,
    CP_MIGRATE_LIST,
    CP_MIGRATE_RESET,
};

/* Kong's exit codes of `migrations list`: the database needs bootstrapping (3), or has
 * pending migrations (5). */
#define CP_MIGRATE_EXIT_NEEDS_BOOTSTRAP 3
#define CP_MIGRATE_EXIT_PENDING         5

/* Parses "bootstrap" .. "reset". Returns 0 or -ST_EPARSE. */
int cp_migrate_cmd_parse(const char *name, enum cp_migrate_cmd *out);

/* Runs one command against conf's database, printing what it did to out (Kong's lines:
 * "database already bootstrapped", "database is up to date", ...). reset refuses without
 * yes. Returns the process exit code: 0, 1 on an error (err filled), or for list the
 * codes above. The environment knob STRAIT_TEST_MIGRATION_DELAY_MS makes bootstrap/up
 * sleep that long while holding the lock (tests force two runs to overlap with it). */
int cp_migrate_run(const struct st_conf *conf, enum cp_migrate_cmd cmd, bool yes, FILE *out,
                   struct st_err *err);

#endif
