/* Connecting to Postgres: the one place that turns the pg_* keys into a libpq
 * connection (the store's pool, its migrations and the LISTEN connection all use it). */
#ifndef STRAIT_CP_PG_H
#define STRAIT_CP_PG_H

#include <libpq-fe.h>

struct st_conf;
struct st_err;

/* The channel every commit that changed the configuration notifies (payload: the new
 * config version in decimal), so CPs sharing the database rebuild at once. */
#define CP_PG_CHANNEL "strait_config"

/* Connects with the pg_* keys: sslmode from pg_ssl/pg_ssl_verify (disable, require,
 * verify-full with pg_ssl_ca as root), connect_timeout and statement_timeout from
 * pg_timeout, application_name strait-cp. Returns 0 and a connection the caller PQfinish()es,
 * or -ST_EDB with err naming the server and libpq's reason. */
int cp_pg_connect(const struct st_conf *conf, PGconn **out, struct st_err *err);

/* Whether a failed result or connection means the server is unreachable (the connection
 * broke, or the server is shutting down), as opposed to an error in the statement. */
int cp_pg_is_down(PGconn *conn, const PGresult *res);

/* Whether the schema is the one this strait-cp knows (cp_store_pg_schema.c). Returns 0, or
 * -ST_EDB with err naming the command to run ("strait-cp migrations bootstrap" or
 * "... up"), or -ST_EDBDOWN. */
int cp_pg_schema_check(PGconn *conn, struct st_err *err);

#endif
