/* strait-dp: the data plane. Parses the command line, loads the configuration, builds
 * the workers, the sync client and the status listener, then waits for signals:
 * SIGTERM/SIGINT stop at once, SIGQUIT stops accepting and drains. */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dp_cache.h"
#include "dp_ctx.h"
#include "dp_dns.h"
#include "dp_health.h"
#include "dp_log.h"
#include "dp_runtime.h"
#include "dp_status.h"
#include "dp_sync.h"
#include "dp_tls.h"
#include "dp_worker.h"
#include "st_conf.h"
#include "st_err.h"
#include "st_file.h"
#include "st_log.h"
#include "st_util.h"

enum dp_cmd {
    DP_CMD_START = 0,
    DP_CMD_CHECK,
};

struct dp_args {
    enum dp_cmd cmd;
    const char *conf_path;
    const char *prefix;
};

static void
usage(FILE *f)
{
    fprintf(f, "Usage: strait-dp start [-c FILE] [-p PREFIX]   run a data plane in the foreground\n"
               "       strait-dp check [-c FILE] [-p PREFIX]   validate the configuration\n"
               "       strait-dp --help | --version\n\n"
               "Configuration keys (strait.conf, or STRAIT_<KEY> in the environment):\n");
}

/* Returns 0, 1 when the process should exit 0 (help, version), or 2 on bad usage. */
static int
parse_args(int argc, char **argv, struct dp_args *a)
{
    int i = 2;

    memset(a, 0, sizeof(*a));
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        st_conf_print_keys(stdout, ST_PLANE_DP);
        return 1;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        printf("strait-dp %s\n", STRAIT_VERSION);
        return 1;
    }
    if (strcmp(argv[1], "start") == 0) {
        a->cmd = DP_CMD_START;
    } else if (strcmp(argv[1], "check") == 0) {
        a->cmd = DP_CMD_CHECK;
    } else {
        fprintf(stderr, "strait: unknown command '%s'\n", argv[1]);
        usage(stderr);
        return 2;
    }
    for (; i < argc; i++) {
        if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--conf") == 0) && i + 1 < argc) {
            a->conf_path = argv[++i];
        } else if ((strcmp(argv[i], "-p") == 0 || strcmp(argv[i], "--prefix") == 0) &&
                   i + 1 < argc) {
            a->prefix = argv[++i];
        } else {
            fprintf(stderr, "strait: unexpected argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    return 0;
}

/* Listener features of later issues are refused, never accepted and ignored. */
static int
check_listeners(const struct st_conf *c, struct st_err *err)
{
    for (size_t i = 0; i < c->stream_listen.n; i++) {
        const struct st_listen *li = &c->stream_listen.v[i];

        if (li->flags & (ST_LISTEN_F_PROXY | ST_LISTEN_F_UDP)) {
            return st_err_set(err, -ST_EUNSUPPORTED, "stream_listen",
                              "stream_listen: %s: '%s' is not supported yet", li->text,
                              li->flags & ST_LISTEN_F_PROXY ? "proxy_protocol" : "udp");
        }
    }
    return 0;
}

static void
load_cache(struct dp_ctx *ctx, struct dp_sync *sync)
{
    struct st_err err = {0};
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc;

    rc = dp_cache_read(ctx->conf->prefix, dp_cache_max(ctx->conf->cluster_max_payload), &buf, &len,
                       &err);
    if (rc == -ENOENT) {
        st_log(ST_LOG_NOTICE, 0, "config.cache: none; waiting for the control plane");
        return;
    }
    if (rc == 0) {
        rc = dp_sync_apply(sync, buf, len, true, &err);
    }
    if (rc < 0) {
        st_log(ST_LOG_ERR, 0, "config.cache: refused: %s", err.msg);
    }
    free(buf);
}

/* Files of earlier starts (or the operator's) that hold secrets but are open to other
 * users: one line each. New files are 0600 (ST_FILE_UMASK, explicit modes). */
static void
warn_exposed_files(const struct st_conf *c)
{
    st_file_warn_prefix(c->prefix);
    st_file_warn_exposed_in(c->prefix, "config.cache", "the configuration's private keys");
    st_file_warn_exposed_in(c->prefix, "strait.id", "this data plane's id");
    st_file_warn_exposed_in(c->prefix, "ssl/strait-default.key", "a private key");
    st_file_warn_exposed_in(c->prefix, "ssl/strait-default-ecdsa.key", "a private key");
    st_file_warn_exposed(c->cluster_cert_key, "the cluster private key (cluster_cert_key)");
    st_file_warn_exposed_list(c->ssl_cert_key, "a private key (ssl_cert_key)");
}

/* Test knobs are environment variables, never conf keys (DESIGN.md), read once here. */
static void
read_test_knobs(struct dp_ctx *ctx)
{
    const char *v = getenv("STRAIT_TEST_NO_SPLICE");

    ctx->no_splice = v != NULL && strcmp(v, "1") == 0;
    if (ctx->no_splice) {
        st_log(ST_LOG_NOTICE, 0, "STRAIT_TEST_NO_SPLICE=1: proxying by copy, never splice");
    }
    v = getenv("STRAIT_TEST_TICKET_ROTATE_MS");
    if (v != NULL && *v != '\0') {
        char *end = NULL;
        long long ms = strtoll(v, &end, 10);

        if (*end != '\0' || ms <= 0) {
            st_log(ST_LOG_WARN, 0,
                   "STRAIT_TEST_TICKET_ROTATE_MS='%s' is not a positive number "
                   "of ms: ignored",
                   v);
        } else {
            ctx->ticket_rotate_ms = ms;
            st_log(ST_LOG_NOTICE, 0, "STRAIT_TEST_TICKET_ROTATE_MS=%lld: ticket keys rotate faster",
                   ms);
        }
    }
}

struct dp_proc {
    struct dp_ctx ctx;
    struct dp_sync *sync;
    struct dp_health *health; /* active health checks (dp_health.h) */
    struct dp_status *status;
};

static int
proc_build(struct dp_proc *p, const struct st_conf *conf, struct st_err *err)
{
    struct dp_ctx *ctx = &p->ctx;
    size_t n = conf->worker_processes > 0 ? (size_t)conf->worker_processes : 1;
    int rc;

    ctx->conf = conf;
    read_test_knobs(ctx);
    dp_ctx_max_sessions_init(ctx, n); /* after st_file_raise_nofile(): auto reads the limit */
    pthread_mutex_init(&ctx->lock, NULL);
    pthread_mutex_init(&ctx->build_lock, NULL);
    memset(ctx->hash, '0', 64);
    if (gethostname(ctx->hostname, sizeof(ctx->hostname) - 1) == -1) {
        (void)st_snprintf(ctx->hostname, sizeof(ctx->hostname), "unknown");
    }
    rc = st_file_prefix_make(conf->prefix, err);
    if (rc < 0) {
        return rc;
    }
    warn_exposed_files(conf);
    rc = dp_cache_id(conf->prefix, ctx->id, err);
    if (rc < 0) {
        return rc;
    }
    rc = dp_tls_init(conf, ctx->ticket_rotate_ms, err); /* before any runtime is built */
    if (rc < 0) {
        return rc;
    }
    ctx->dns = dp_dns_new(conf, err); /* before any thread starts (dp_dns.h) */
    if (ctx->dns == NULL) {
        return -ST_ECONF;
    }
    p->sync = dp_sync_new(ctx, err);
    if (p->sync == NULL) {
        return -ST_ECONF;
    }
    ctx->logger = dp_logger_new(n, err);
    if (ctx->logger == NULL) {
        return -ENOMEM;
    }
    ctx->workers = st_xcalloc(n, sizeof(*ctx->workers));
    for (size_t i = 0; i < n; i++) {
        ctx->workers[i] = dp_worker_new(ctx, i, err);
        if (ctx->workers[i] == NULL) {
            return -EADDRINUSE;
        }
        ctx->n_workers++;
    }
    load_cache(ctx, p->sync);
    return dp_status_start(ctx, &p->status, err);
}

static int
proc_start(struct dp_proc *p, struct st_err *err)
{
    int rc;

    for (size_t i = 0; i < p->ctx.n_workers; i++) {
        rc = dp_worker_start(p->ctx.workers[i]);
        if (rc < 0) {
            return st_err_set(err, rc, NULL, "cannot start worker: %s", strerror(-rc));
        }
    }
    rc = dp_sync_start(p->sync);
    if (rc < 0) {
        return st_err_set(err, rc, NULL, "cannot start sync: %s", strerror(-rc));
    }
    rc = dp_dns_start(p->ctx.dns, dp_ctx_rebuild, &p->ctx);
    if (rc < 0) {
        return st_err_set(err, rc, NULL, "cannot start the DNS refresher: %s", strerror(-rc));
    }
    p->health = dp_health_start(&p->ctx, p->sync, err);
    return p->health != NULL ? 0 : -ST_ECONF;
}

static void
proc_free(struct dp_proc *p)
{
    struct dp_ctx *ctx = &p->ctx;

    for (size_t i = 0; i < ctx->n_workers; i++) {
        dp_worker_stop(ctx->workers[i]);
    }
    st_log(ST_LOG_DEBUG, 0, "stopping: health checks");
    dp_health_stop(p->health);
    p->health = NULL;
    st_log(ST_LOG_DEBUG, 0, "stopping: status");
    dp_status_stop(p->status);
    p->status = NULL;
    st_log(ST_LOG_DEBUG, 0, "stopping: sync");
    if (p->sync != NULL) {
        dp_sync_stop(p->sync, true);
        dp_sync_free(p->sync);
        p->sync = NULL;
    }
    st_log(ST_LOG_DEBUG, 0, "stopping: DNS");
    dp_dns_free(ctx->dns); /* after the sync's last build; before the workers its rebuilds
                            * publish to are freed */
    ctx->dns = NULL;
    st_log(ST_LOG_DEBUG, 0, "stopping: workers");
    for (size_t i = 0; i < ctx->n_workers; i++) {
        dp_worker_join(ctx->workers[i]); /* all, before any is freed: they wake each other */
    }
    for (size_t i = 0; i < ctx->n_workers; i++) {
        dp_worker_free(ctx->workers[i]);
    }
    dp_logger_free(ctx->logger); /* after the workers: their last lines get out */
    ctx->logger = NULL;
    st_log(ST_LOG_DEBUG, 0, "stopped");
    free(ctx->workers);
    ctx->workers = NULL;
    ctx->n_workers = 0;
    dp_runtime_unref(ctx->rt);
    ctx->rt = NULL;
    dp_tls_fini();
    pthread_mutex_destroy(&ctx->lock);
    pthread_mutex_destroy(&ctx->build_lock);
}

static bool
all_finished(struct dp_ctx *ctx)
{
    for (size_t i = 0; i < ctx->n_workers; i++) {
        if (!dp_worker_is_finished(ctx->workers[i])) {
            return false;
        }
    }
    return true;
}

/* Waits for SIGTERM/SIGINT (stop now) or SIGQUIT (drain, then stop). */
static void
wait_signals(struct dp_proc *p, const sigset_t *set)
{
    bool draining = false;

    for (;;) {
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 100 * 1000 * 1000};
        int sig = draining ? sigtimedwait(set, NULL, &ts) : sigwaitinfo(set, NULL);

        if (sig == SIGTERM || sig == SIGINT) {
            st_log(ST_LOG_NOTICE, 0, "received %s, stopping",
                   sig == SIGTERM ? "SIGTERM" : "SIGINT");
            return;
        }
        if (sig == SIGQUIT && !draining) {
            st_log(ST_LOG_NOTICE, 0, "received SIGQUIT, draining for up to %d s",
                   p->ctx.conf->drain_timeout);
            for (size_t i = 0; i < p->ctx.n_workers; i++) {
                dp_worker_drain(p->ctx.workers[i]);
            }
            draining = true;
        }
        if (draining && all_finished(&p->ctx)) {
            st_log(ST_LOG_NOTICE, 0, "drained, stopping");
            return;
        }
    }
}

static int
run(const struct st_conf *conf)
{
    struct dp_proc p = {0};
    struct st_err err = {0};
    sigset_t set;
    int rc;

    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGQUIT);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* every thread inherits the mask */
    signal(SIGPIPE, SIG_IGN);
    st_file_raise_nofile();
    if (conf->cluster_mtls == ST_MTLS_OFF) {
        st_log(ST_LOG_WARN, 0,
               "cluster_mtls = off: the link to the control plane is not "
               "encrypted nor authenticated; use it for local development only");
    }
    rc = proc_build(&p, conf, &err);
    if (rc == 0) {
        rc = proc_start(&p, &err);
    }
    if (rc < 0) {
        st_log(ST_LOG_CRIT, 0, "%s", err.msg);
        proc_free(&p);
        return rc == -ST_ECONF ? 2 : 1;
    }
    st_log(ST_LOG_NOTICE, 0, "strait-dp %s started: id %s, %zu workers, %zu stream listeners",
           STRAIT_VERSION, p.ctx.id, p.ctx.n_workers, conf->stream_listen.n);
    wait_signals(&p, &set);
    proc_free(&p);
    dp_sync_lib_fini();
    st_log(ST_LOG_DEBUG, 0, "exit");
    return 0;
}

int
main(int argc, char **argv)
{
    struct dp_args a;
    struct st_conf conf = {0};
    struct st_err err = {0};
    int rc;

    umask(ST_FILE_UMASK); /* config.cache and the keys hold secrets */
    rc = parse_args(argc, argv, &a);
    if (rc != 0) {
        return rc == 1 ? 0 : 2;
    }
    if (st_conf_load(&conf, a.conf_path, a.prefix, ST_PLANE_DP, &err) < 0 ||
        check_listeners(&conf, &err) < 0) {
        fprintf(stderr, "strait: %s\n", err.msg);
        st_conf_fini(&conf);
        return 2;
    }
    st_log_set_level(conf.log_level);
    if (a.cmd == DP_CMD_CHECK) {
        printf("configuration%s%s is valid\n", a.conf_path ? " at " : "",
               a.conf_path ? a.conf_path : "");
        st_conf_fini(&conf);
        return 0;
    }
    rc = run(&conf);
    st_conf_fini(&conf);
    return rc;
}
