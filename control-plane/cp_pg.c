/* Connecting to Postgres (see cp_pg.h). */
#include "cp_pg.h"

#include <stdio.h>
#include <string.h>

#include "st_conf.h"
#include "st_err.h"
#include "st_util.h"

int
cp_pg_connect(const struct st_conf *conf, PGconn **out, struct st_err *err)
{
    const char *keys[12];
    const char *vals[12];
    char port[16];
    char connect_timeout[16];
    char options[64];
    /* libpq counts whole seconds (at least 2); round pg_timeout up */
    int secs = conf->pg_timeout / 1000 + (conf->pg_timeout % 1000 != 0);
    int n = 0;
    PGconn *conn;

    *out = NULL;
    st_snprintf(port, sizeof(port), "%d", conf->pg_port);
    st_snprintf(connect_timeout, sizeof(connect_timeout), "%d", secs < 2 ? 2 : secs);
    st_snprintf(options, sizeof(options), "-c statement_timeout=%d", conf->pg_timeout);
    keys[n] = "host", vals[n++] = conf->pg_host;
    keys[n] = "port", vals[n++] = port;
    keys[n] = "user", vals[n++] = conf->pg_user;
    keys[n] = "dbname", vals[n++] = conf->pg_database;
    if (conf->pg_password != NULL) {
        keys[n] = "password", vals[n++] = conf->pg_password;
    }
    keys[n] = "sslmode", vals[n++] = !conf->pg_ssl         ? "disable"
                                     : conf->pg_ssl_verify ? "verify-full"
                                                           : "require";
    if (conf->pg_ssl && conf->pg_ssl_verify && conf->pg_ssl_ca != NULL) {
        keys[n] = "sslrootcert", vals[n++] = conf->pg_ssl_ca;
    }
    keys[n] = "connect_timeout", vals[n++] = connect_timeout;
    keys[n] = "options", vals[n++] = options;
    keys[n] = "application_name", vals[n++] = "strait-cp";
    keys[n] = NULL, vals[n] = NULL;
    conn = PQconnectdbParams(keys, vals, 0);
    if (conn == NULL || PQstatus(conn) != CONNECTION_OK) {
        char msg[256];
        size_t len;

        st_snprintf(msg, sizeof(msg), "%s", conn != NULL ? PQerrorMessage(conn) : "out of memory");
        len = strlen(msg);
        while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == ' ')) {
            msg[--len] = '\0';
        }
        PQfinish(conn);
        return st_err_set(err, -ST_EDB, "pg_host", "postgres: cannot connect to %s:%d: %s",
                          conf->pg_host, conf->pg_port, msg);
    }
    *out = conn;
    return 0;
}

int
cp_pg_is_down(PGconn *conn, const PGresult *res)
{
    const char *state;

    if (conn == NULL || PQstatus(conn) != CONNECTION_OK) {
        return 1;
    }
    state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    /* class 08: connection exception; 57P01..57P03: admin shutdown, crash shutdown,
     * cannot connect now */
    return state != NULL && (strncmp(state, "08", 2) == 0 || strncmp(state, "57P0", 4) == 0);
}
