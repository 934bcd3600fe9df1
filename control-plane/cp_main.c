/* strait-cp: the control plane's main(). Parses the command line, loads the
 * configuration and runs the command; `start` wires store, snapshot builder, sync
 * server and admin API together and waits for SIGTERM/SIGINT/SIGQUIT (all a clean stop:
 * SIGQUIT is a container's stop signal, the DP's drain, and the CP has nothing to drain). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cp_cli.h"
#include "cp_ctx.h"
#include "cp_decl_load.h"
#include "cp_http.h"
#include "cp_migrate.h"
#include "cp_pg_listen.h"
#include "cp_registry.h"
#include "cp_registry_share.h"
#include "cp_snapshot.h"
#include "cp_store.h"
#include "cp_store_pool.h"
#include "cp_sync.h"
#include "st_conf.h"
#include "st_decl.h"
#include "st_err.h"
#include "st_file.h"
#include "st_log.h"
#include "st_ssl.h"
#include "st_util.h"

#define EXIT_CONFIG 2

/* Prints the error; the exit code of a start-up failure: configuration problems are 2,
 * the rest 1. */
static int
fail(int rc, const struct st_err *err)
{
    fprintf(stderr, "strait: %s\n", err->msg[0] != '\0' ? err->msg : st_strerror(rc));
    return rc == -ST_ECONF || rc == -ST_EUNSUPPORTED || rc == -ST_EPARSE ? EXIT_CONFIG
                                                                         : EXIT_FAILURE;
}

/* Whatever went wrong, it is the configuration: exit 2. */
static int
load_conf(struct st_conf *conf, const struct cp_args *a, struct st_err *err)
{
    return st_conf_load(conf, a->conf_path, a->prefix, ST_PLANE_CP, err) < 0 ? -ST_ECONF : 0;
}

/* Files of earlier starts (or the operator's) that hold secrets but are open to other
 * users: one line each. SQLite gives -wal and -shm the mode of the database file. */
static void
warn_exposed_files(const struct st_conf *c)
{
    static const char *const sfx[] = {"", "-wal", "-shm"};
    char path[4096];

    st_file_warn_prefix(c->prefix);
    if (c->database == NULL || strcmp(c->database, "postgres") != 0) {
        for (size_t i = 0; c->sqlite_path != NULL && i < ST_ARRAY_SIZE(sfx); i++) {
            if (st_snprintf(path, sizeof(path), "%s%s", c->sqlite_path, sfx[i]) == 0) {
                st_file_warn_exposed(path, "the configuration, private keys included");
            }
        }
    }
    st_file_warn_exposed(c->cluster_cert_key, "the cluster private key (cluster_cert_key)");
    st_file_warn_exposed(c->admin_ssl_cert_key, "a private key (admin_ssl_cert_key)");
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

/* cp_pg_listen's callback: a CP sharing the database (or this one) committed a change. */
static void
pg_listen_kick(void *arg)
{
    cp_snapshot_kick(arg);
}

/* Opens everything in order; on failure what was opened stays in cx for stop_all(). */
static int
start_all(struct cp_ctx *cx, struct st_err *err)
{
    struct cp_store *snap_store = NULL;
    int rc;

    rc = st_file_prefix_make(cx->conf.prefix, err);
    if (rc == 0) {
        warn_exposed_files(&cx->conf);
        rc = cp_store_pool_new(&cx->conf, &cx->pool, err);
    }
    if (rc == 0) {
        rc = cp_store_open(&cx->conf, &snap_store, err);
    }
    if (rc == 0) {
        rc = cp_snapshot_new(snap_store, &cx->snap, err);
        snap_store = NULL; /* the builder owns it now, or freed it */
    }
    cx->reg = cp_registry_new();
    cp_registry_set_purge_delay(cx->reg, cx->conf.cluster_data_plane_purge_delay);
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
    if (rc == 0 && cx->conf.database != NULL && strcmp(cx->conf.database, "postgres") == 0) {
        /* CPs sharing the database hear each other's commits */
        rc = cp_pg_listen_start(&cx->conf, pg_listen_kick, cx->snap, &cx->pg_listen, err);
    }
    if (rc == 0) {
        rc = cp_registry_share_start(cx->reg, cx->pool, &cx->reg_share);
        if (rc < 0) {
            st_err_set(err, rc, NULL, "cannot start sharing the data-plane registry");
        }
    }
    if (rc == 0) {
        rc = cp_http_start(cx, &cx->http, err);
    }
    cp_store_close(snap_store);
    return rc;
}

/* A context whose sync socket nng would not close: nng may still call into the sync
 * instance, which uses the context's configuration, snapshot and registry, so they are
 * never freed (the process is exiting anyway). */
static struct cp_ctx *volatile ctx_abandoned; /* volatile: a store never read stays */

/* Stops everything start_all started. Returns false when the context must not be freed
 * (ctx_abandoned). */
static bool
stop_all(struct cp_ctx *cx)
{
    bool closed;

    cp_http_stop(cx->http);
    cx->http = NULL;
    cp_pg_listen_stop(cx->pg_listen); /* its callback kicks the snapshot builder */
    cx->pg_listen = NULL;
    cp_snapshot_stop(cx->snap); /* no more notifications to the sync server */
    closed = cp_sync_stop(cx->sync);
    cx->sync = NULL;
    cp_registry_share_stop(cx->reg_share); /* after the DPs' goodbyes */
    cx->reg_share = NULL;
    if (!closed) {
        ctx_abandoned = cx;
        return false;
    }
    cp_snapshot_free(cx->snap);
    cx->snap = NULL;
    cp_registry_free(cx->reg);
    cx->reg = NULL;
    cp_store_pool_free(cx->pool);
    cx->pool = NULL;
    return true;
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
    sigaddset(&set, SIGQUIT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    pthread_mutex_init(&cx->config_mu, NULL);
    ctx_identity(cx);
    st_file_raise_nofile();
    rc = start_all(cx, &err);
    if (rc == 0) {
        st_log(ST_LOG_NOTICE, 0, "strait-cp %s started (node %s, prefix %s)", STRAIT_VERSION,
               cx->node_id, cx->conf.prefix);
        sigwait(&set, &sig);
        st_log(ST_LOG_NOTICE, 0, "received %s, stopping",
               sig == SIGINT    ? "SIGINT"
               : sig == SIGQUIT ? "SIGQUIT"
                                : "SIGTERM");
    }
    if (stop_all(cx)) {
        pthread_mutex_destroy(&cx->config_mu);
        st_conf_fini(&cx->conf);
        free(cx);
    }
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
    /* what start would refuse in the files the keys name: the admin API's TLS pair */
    rc = cp_http_check(&conf, &err);
    st_conf_fini(&conf);
    if (rc < 0) {
        return fail(-ST_ECONF, &err);
    }
    printf("configuration %s is valid\n", a->conf_path != NULL ? a->conf_path : "(defaults)");
    return 0;
}

/* Postgres's schema commands (cp_migrate.h); SQLite migrates itself at start. */
static int
cmd_migrations(const struct cp_args *a)
{
    struct st_conf conf;
    struct st_err err = {0};
    enum cp_migrate_cmd cmd;
    int code;
    int rc = load_conf(&conf, a, &err);

    if (rc < 0) {
        return fail(rc, &err);
    }
    st_log_set_level(conf.log_level);
    if (cp_migrate_cmd_parse(a->subcommand, &cmd) < 0) {
        st_conf_fini(&conf);
        fprintf(stderr, "strait: migrations: unknown command '%s'\n", a->subcommand);
        return EXIT_CONFIG;
    }
    code = cp_migrate_run(&conf, cmd, a->yes, stdout, &err);
    fflush(stdout);
    if (code != 0 && err.msg[0] != '\0') {
        fprintf(stderr, "strait: %s\n", err.msg);
    }
    st_conf_fini(&conf);
    return code;
}

/* ------------------------------------------------------------------------ */
/* config db_import | db_export | parse (Kong's kong/cmd/config.lua) */

/* Writes p to a new file (never an existing one; "-": stdout), mode 0600: an export holds
 * the certificates' private keys. 0 or -errno. */
static int
write_new_file(const char *path, const char *p, size_t len)
{
    int fd = strcmp(path, "-") == 0 ? STDOUT_FILENO
                                    : open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    size_t off = 0;
    int rc = 0;

    if (fd == -1) {
        return -errno;
    }
    while (off < len) {
        ssize_t w = write(fd, p + off, len - off);

        if (w == -1 && errno == EINTR) {
            continue;
        }
        if (w == -1) {
            rc = -errno;
            break;
        }
        off += (size_t)w;
    }
    if (fd != STDOUT_FILENO) {
        if (rc == 0 && fsync(fd) == -1) {
            rc = -errno;
        }
        if (close(fd) == -1 && rc == 0) {
            rc = -errno;
        }
        if (rc < 0) {
            unlink(path);
        }
    }
    return rc;
}

/* Kong's "Failed parsing:" followed by one line per error. */
static void
print_decl_error(const char *what, const json_t *error)
{
    char *text = cp_decl_error_text(error);

    fprintf(stderr, "strait: %s:\n%s\n", what, text);
    free(text);
}

static int
config_parse(const char *text, size_t len)
{
    struct st_decl_opts o = {.now_ms = st_time_ms() / 1000 * 1000};
    json_t *lists[ST_ENT__COUNT];
    json_t *error = NULL;
    int rc = st_decl_parse(text, len, &o, lists, &error);

    if (rc < 0) {
        print_decl_error("Failed parsing", error);
        json_decref(error);
        return EXIT_FAILURE;
    }
    for (int k = 0; k < ST_ENT__COUNT; k++) {
        json_decref(lists[k]);
    }
    printf("parse successful\n");
    return 0;
}

/* Imports with the size check of every write (issue 14): the snapshot of what is stored,
 * built once through a handle of its own, tells what the import would make of it. */
static int
config_import(const struct st_conf *conf, struct cp_store *st, const char *text, size_t len)
{
    struct cp_decl_limits lim = {.max_payload = conf->cluster_max_payload};
    struct cp_store *snap_store = NULL;
    struct cp_decl_result r;
    struct st_err err = {0};
    enum st_log_level level = ST_LOG_DEBUG;
    char msg[768];
    int rc = cp_store_open(conf, &snap_store, &err);

    while (level > ST_LOG_EMERG && !st_log_enabled(level)) {
        level--;
    }
    if (rc == 0) {
        st_log_set_level(ST_LOG_WARN); /* not the notice of a snapshot no DP will get */
        rc = cp_snapshot_new(snap_store, &lim.snap, &err); /* takes snap_store */
        st_log_set_level(level);
    }
    if (rc < 0) {
        fprintf(stderr, "strait: %s\n", err.msg[0] != '\0' ? err.msg : st_strerror(rc));
        return EXIT_FAILURE;
    }
    rc = cp_decl_load(st, text, len, CP_DECL_UPSERT, &lim, &r);
    cp_snapshot_free(lim.snap);
    if (rc == -ST_ESCHEMA) {
        print_decl_error("Failed parsing", r.error);
    } else if (rc == -ST_ETOOBIG) {
        fprintf(stderr, "strait: Failed importing:\n%s\n", r.err.msg);
    } else if (rc < 0) {
        cp_decl_store_msg(r.kind, rc, &r.err, msg, sizeof(msg));
        fprintf(stderr, "strait: Failed importing:\n%s\n", msg);
    } else {
        printf("parse successful, beginning import\nimport successful:");
        for (int k = 0; k < ST_ENT__COUNT; k++) {
            printf(" %zu %s", json_array_size(r.lists[k]), st_entity_name((enum st_entity_kind)k));
        }
        printf("\n");
    }
    cp_decl_result_fini(&r);
    return rc < 0 ? EXIT_FAILURE : 0;
}

static int
config_export(struct cp_store *st, const char *path)
{
    char *text = NULL;
    size_t len = 0;
    int rc = strcmp(path, "-") != 0 && access(path, F_OK) == 0
                 ? -EEXIST /* checked first too, so that nothing is read for nothing */
                 : cp_decl_export(st, true, &text, &len);

    if (rc == 0) {
        rc = write_new_file(path, text, len);
    }
    free(text);
    if (rc == -EEXIST) {
        fprintf(stderr, "strait: %s already exists. Will not overwrite it.\n", path);
        return EXIT_FAILURE;
    }
    if (rc < 0) {
        fprintf(stderr, "strait: cannot export to %s: %s\n", path, st_strerror(rc));
        return EXIT_FAILURE;
    }
    if (strcmp(path, "-") != 0) {
        printf("exported the configuration to %s\n", path);
    }
    return 0;
}

static int
cmd_config(const struct cp_args *a)
{
    struct st_conf conf;
    struct st_err err = {0};
    struct cp_store *st = NULL;
    bool import = strcmp(a->subcommand, "db_import") == 0;
    char *text = NULL;
    size_t len = 0;
    int rc;

    if (import || strcmp(a->subcommand, "parse") == 0) {
        rc = strcmp(a->file, "-") == 0 ? st_file_read_fd(STDIN_FILENO, SIZE_MAX, &text, &len)
                                       : st_file_read(a->file, SIZE_MAX, &text, &len);
        if (rc < 0) {
            fprintf(stderr, "strait: cannot read %s: %s\n", a->file, st_strerror(rc));
            return EXIT_FAILURE;
        }
    }
    if (!import && strcmp(a->subcommand, "parse") == 0) {
        /* validating a file needs neither the configuration nor the database */
        rc = config_parse(text, len);
        free(text);
        return rc;
    }
    rc = load_conf(&conf, a, &err);
    if (rc < 0) {
        free(text);
        return fail(rc, &err);
    }
    rc = st_file_prefix_make(conf.prefix, &err);
    if (rc == 0) {
        rc = cp_store_open(&conf, &st, &err);
    }
    if (rc < 0) {
        rc = fail(rc, &err);
        goto out;
    }
    rc = import ? config_import(&conf, st, text, len) : config_export(st, a->file);
out:
    cp_store_close(st);
    free(text);
    st_conf_fini(&conf);
    return rc;
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

    umask(ST_FILE_UMASK); /* strait.db, its WAL and exports hold private keys */
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
    case CP_CMD_CONFIG:
        return cmd_config(&a);
    case CP_CMD_GEN_CERT:
        return cmd_gen_cert(&a);
    case CP_CMD_START:
        return cmd_start(&a);
    }
    return EXIT_CONFIG;
}
