/* strait-cp: the control plane's main(). Parses the command line, loads the
 * configuration and runs the command; `start` wires store, snapshot builder, sync
 * server and admin API together and waits for SIGTERM/SIGINT. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cp_cli.h"
#include "cp_ctx.h"
#include "cp_http.h"
#include "cp_registry.h"
#include "cp_snapshot.h"
#include "cp_store.h"
#include "cp_sync.h"
#include "st_conf.h"
#include "st_err.h"
#include "st_log.h"
#include "st_ssl.h"
#include "st_util.h"

#define EXIT_CONFIG 2

/* Exit code for a start-up failure: configuration problems are 2, the rest 1. */
static int
exit_code(int rc)
{
    return rc == -ST_ECONF || rc == -ST_EUNSUPPORTED || rc == -ST_EPARSE ? EXIT_CONFIG
                                                                         : EXIT_FAILURE;
}

static int
fail(int rc, const struct st_err *err)
{
    fprintf(stderr, "strait: %s\n", err->msg[0] != '\0' ? err->msg : st_strerror(rc));
    return exit_code(rc);
}

static int
load_conf(struct st_conf *conf, const struct cp_args *a, struct st_err *err)
{
    int rc = st_conf_load(conf, a->conf_path, a->prefix, ST_PLANE_CP, err);

    if (rc < 0) {
        return -ST_ECONF; /* whatever went wrong, it is the configuration: exit 2 */
    }
    if (conf->database != NULL && strcmp(conf->database, "postgres") == 0) {
        st_conf_fini(conf);
        return st_err_set(err, -ST_EUNSUPPORTED, "database",
                          "database = postgres is not supported yet");
    }
    return 0;
}

static int
make_prefix(const char *prefix, struct st_err *err)
{
    if (mkdir(prefix, 0755) == -1 && errno != EEXIST) {
        int e = errno;

        return st_err_set(err, -e, "prefix", "cannot create prefix %s: %s", prefix, strerror(e));
    }
    return 0;
}

static void
ctx_identity(struct cp_ctx *cx)
{
    if (gethostname(cx->hostname, sizeof(cx->hostname) - 1) == -1) {
        st_snprintf(cx->hostname, sizeof(cx->hostname), "localhost");
    }
    if (st_ssl_uuid(cx->node_id) < 0) {
        st_snprintf(cx->node_id, sizeof(cx->node_id), "00000000-0000-4000-8000-000000000000");
    }
}

/* Opens everything in order; on failure what was opened stays in cx for stop_all(). */
static int
start_all(struct cp_ctx *cx, struct st_err *err)
{
    struct cp_store *snap_store = NULL;
    int rc;

    rc = make_prefix(cx->conf.prefix, err);
    if (rc == 0) {
        rc = cp_store_open(&cx->conf, &cx->store, err);
    }
    if (rc == 0) {
        rc = cp_store_open(&cx->conf, &snap_store, err);
    }
    if (rc == 0) {
        rc = cp_snapshot_new(snap_store, &cx->snap, err);
        snap_store = NULL; /* the builder owns it now, or freed it */
    }
    cx->reg = cp_registry_new();
    if (rc == 0) {
        rc = cp_sync_start(&cx->conf, cx->snap, cx->reg, &cx->sync, err);
    }
    if (rc == 0) {
        cp_snapshot_on_change(cx->snap, cp_sync_notify_cb, cx->sync);
        rc = cp_snapshot_start(cx->snap);
        if (rc < 0) {
            st_err_set(err, rc, NULL, "cannot start the snapshot builder");
        }
    }
    if (rc == 0) {
        rc = cp_http_start(cx, &cx->http, err);
    }
    cp_store_close(snap_store);
    return rc;
}

static void
stop_all(struct cp_ctx *cx)
{
    cp_http_stop(cx->http);
    cx->http = NULL;
    cp_snapshot_stop(cx->snap); /* no more notifications to the sync server */
    cp_sync_stop(cx->sync);
    cx->sync = NULL;
    cp_snapshot_free(cx->snap);
    cx->snap = NULL;
    cp_registry_free(cx->reg);
    cx->reg = NULL;
    cp_store_close(cx->store);
    cx->store = NULL;
}

static int
cmd_start(const struct cp_args *a)
{
    struct cp_ctx *cx = st_xcalloc(1, sizeof(*cx));
    struct st_err err = {0};
    sigset_t set;
    int sig = 0;
    int rc;

    rc = load_conf(&cx->conf, a, &err);
    if (rc < 0) {
        free(cx);
        return fail(rc, &err);
    }
    st_log_set_level(cx->conf.log_level);
    signal(SIGPIPE, SIG_IGN);
    /* every thread inherits the mask; only sigwait below takes these signals */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    pthread_mutex_init(&cx->store_mu, NULL);
    ctx_identity(cx);
    rc = start_all(cx, &err);
    if (rc == 0) {
        st_log(ST_LOG_NOTICE, 0, "strait-cp %s started (node %s, prefix %s)", STRAIT_VERSION,
               cx->node_id, cx->conf.prefix);
        sigwait(&set, &sig);
        st_log(ST_LOG_NOTICE, 0, "received %s, stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
    }
    stop_all(cx);
    pthread_mutex_destroy(&cx->store_mu);
    st_conf_fini(&cx->conf);
    free(cx);
    if (rc < 0) {
        return fail(rc, &err);
    }
    st_log(ST_LOG_NOTICE, 0, "strait-cp stopped");
    return 0;
}

static int
cmd_check(const struct cp_args *a)
{
    struct st_conf conf;
    struct st_err err = {0};
    int rc = load_conf(&conf, a, &err);

    if (rc < 0) {
        return fail(rc, &err);
    }
    printf("configuration %s is valid\n", a->conf_path != NULL ? a->conf_path : "(defaults)");
    st_conf_fini(&conf);
    return 0;
}

/* SQLite migrates itself at start; Postgres (which needs these) is not built yet. */
static int
cmd_migrations(const struct cp_args *a)
{
    printf("migrations %s: not available with database = sqlite: SQLite migrates itself at "
           "start\n",
           a->subcommand);
    return 0;
}

static int
cmd_gen_cert(const struct cp_args *a)
{
    struct st_err err = {0};
    int rc = st_ssl_gen_cluster_cert(a->cert_path, a->key_path, a->days, &err);

    if (rc < 0) {
        fprintf(stderr, "strait: %s\n", err.msg[0] != '\0' ? err.msg : st_strerror(rc));
        return EXIT_FAILURE;
    }
    printf("wrote %s and %s (valid %d days)\n", a->cert_path, a->key_path, a->days);
    return 0;
}

int
main(int argc, char **argv)
{
    struct cp_args a;
    struct st_err err = {0};

    if (cp_cli_parse(argc, argv, &a, &err) < 0) {
        fprintf(stderr, "strait: %s\n", err.msg);
        return EXIT_CONFIG;
    }
    switch (a.cmd) {
    case CP_CMD_HELP:
        cp_cli_usage(stdout);
        return 0;
    case CP_CMD_VERSION:
        printf("strait-cp %s\n", STRAIT_VERSION);
        return 0;
    case CP_CMD_CHECK:
        return cmd_check(&a);
    case CP_CMD_MIGRATIONS:
        return cmd_migrations(&a);
    case CP_CMD_GEN_CERT:
        return cmd_gen_cert(&a);
    case CP_CMD_START:
        return cmd_start(&a);
    }
    return EXIT_CONFIG;
}
