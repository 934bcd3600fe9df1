/* strait.conf and STRAIT_<KEY> loading.
 *
 * One table (conf_defs[], Redis static_configs style) drives the defaults, the
 * `key = value` file, the environment override, the unknown-key error, --help,
 * docs/configuration.md and GET /. Loading collects the text of every key (default,
 * then file, then environment, then -p), converts it into a temporary struct,
 * checks the keys of the plane being started, and only then hands the struct to the
 * caller: nothing is applied unless all of it validates.
 *
 * This module reads files and the environment; it opens no sockets and does not
 * look inside certificate files. */
#include "st_conf.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "st_cidr.h"
#include "st_err.h"
#include "st_plugin.h"
#include "st_str.h"
#include "st_util.h"

#define DEFAULT_PREFIX  "/usr/local/strait"
#define WORKERS_MAX     512
#define ENV_PREFIX      "STRAIT_"
#define KEY_MAX         64
#define CONF_F_SECRET   (1u << 0) /* never shown by st_conf_key_at (GET /) */
#define CONF_F_IN_PREFX (1u << 1) /* a relative path is taken under the prefix */
#define CONF_F_SSL_OK   (1u << 2) /* a listen key that accepts the `ssl` flag */
#define TOKEN_MAX       1024

enum conf_type {
    T_STR = 0,
    T_INT,
    T_INT64,
    T_BOOL,
    T_LISTEN_STREAM,
    T_LISTEN_HTTP,
    T_MTLS,
    T_LOGLEVEL,
    T_WORKERS,
    T_DATABASE,
    T_CIPHER_SUITE,
    T_PROTOCOLS,
    T_HOSTPORTS,
    T_CIDRS,
    T_TOKEN,
    T_AUTO_INT, /* "auto" (stored as 0: derived at start) or a number in min..max */
    T_SYNCHRONOUS,
    T_NAMESERVERS, /* "ip[:port],..." */
    T_DNS_ORDER,   /* "LAST,SRV,A,CNAME" */
    T_PLUGINS,     /* "bundled", "off" or names (st_plugin.h) */
};

struct conf_def {
    const char *name;
    enum conf_type type;
    size_t off;       /* offsetof(struct st_conf, field) */
    const char *dflt; /* text, as if written in the file; NULL: unset */
    enum st_plane plane;
    const char *desc;
    int64_t min, max;      /* T_INT, T_INT64 */
    const char *range_msg; /* instead of the generic range message */
    unsigned flags;
};

#define OFF(field) offsetof(struct st_conf, field)

/* clang-format off */
static const struct conf_def conf_defs[] = {
    {"prefix", T_STR, OFF(prefix), DEFAULT_PREFIX, ST_PLANE_BOTH,
     "working folder: SQLite file, DP id and config cache (-p wins)", 0, 0, NULL, 0},
    {"log_level", T_LOGLEVEL, OFF(log_level), "notice", ST_PLANE_BOTH,
     "debug, info, notice, warn, error, crit, alert or emerg", 0, 0, NULL, 0},

    {"admin_listen", T_LISTEN_HTTP, OFF(admin_listen), "127.0.0.1:8001", ST_PLANE_CP,
     "admin API address(es), each with or without ssl, or off", 0, 0, NULL, CONF_F_SSL_OK},
    {"admin_ssl_cert", T_STR, OFF(admin_ssl_cert), NULL, ST_PLANE_CP,
     "certificate of ssl admin listeners (PEM file; required by one)", 0, 0, NULL, 0},
    {"admin_ssl_cert_key", T_STR, OFF(admin_ssl_cert_key), NULL, ST_PLANE_CP,
     "key of admin_ssl_cert (PEM file)", 0, 0, NULL, CONF_F_SECRET},
    {"admin_ssl_client_ca", T_STR, OFF(admin_ssl_client_ca), NULL, ST_PLANE_CP,
     "CA(s) (PEM file): ssl admin listeners require a client certificate it signed",
     0, 0, NULL, 0},
    {"admin_token", T_TOKEN, OFF(admin_token), NULL, ST_PLANE_CP,
     "token every admin request must send (Kong-Admin-Token or Authorization: Bearer)",
     0, 0, NULL, CONF_F_SECRET},
    {"admin_allow_insecure", T_BOOL, OFF(admin_allow_insecure), "off", ST_PLANE_CP,
     "start even if a non-loopback admin_listen lacks ssl plus admin_token or "
     "admin_ssl_client_ca", 0, 0, NULL, 0},
    {"admin_max_connections", T_INT, OFF(admin_max_connections), "512", ST_PLANE_CP,
     "open admin connections at most (a client whose request is read displaces one that "
     "has not sent its request head yet)", 1, 65536, NULL, 0},
    {"admin_max_connections_per_ip", T_INT, OFF(admin_max_connections_per_ip), "64",
     ST_PLANE_CP, "open admin connections from one client address at most", 1, 65536, NULL, 0},
    {"admin_header_timeout", T_INT, OFF(admin_header_timeout), "10", ST_PLANE_CP,
     "seconds from accept for a request's head to arrive whole (absolute)", 1, 3600, NULL, 0},
    {"database", T_DATABASE, OFF(database), "sqlite", ST_PLANE_CP,
     "store: sqlite (embedded, one CP) or postgres (a fleet of CPs)", 0, 0, NULL, 0},
    {"sqlite_path", T_STR, OFF(sqlite_path), "strait.db", ST_PLANE_CP,
     "SQLite database file; a relative path is under the prefix", 0, 0, NULL,
     CONF_F_IN_PREFX},
    {"sqlite_synchronous", T_SYNCHRONOUS, OFF(sqlite_synchronous_full), "normal", ST_PLANE_CP,
     "normal (a crash loses nothing, a power loss may lose the last writes) or full "
     "(fsync on every commit)", 0, 0, NULL, 0},
    {"pg_host", T_STR, OFF(pg_host), "127.0.0.1", ST_PLANE_CP,
     "Postgres host", 0, 0, NULL, 0},
    {"pg_port", T_INT, OFF(pg_port), "5432", ST_PLANE_CP,
     "Postgres port", 1, 65535, NULL, 0},
    {"pg_user", T_STR, OFF(pg_user), "strait", ST_PLANE_CP,
     "Postgres user", 0, 0, NULL, 0},
    {"pg_password", T_STR, OFF(pg_password), NULL, ST_PLANE_CP,
     "Postgres password", 0, 0, NULL, CONF_F_SECRET},
    {"pg_database", T_STR, OFF(pg_database), "strait", ST_PLANE_CP,
     "Postgres database", 0, 0, NULL, 0},
    {"pg_ssl", T_BOOL, OFF(pg_ssl), "off", ST_PLANE_CP,
     "TLS to Postgres", 0, 0, NULL, 0},
    {"pg_ssl_verify", T_BOOL, OFF(pg_ssl_verify), "off", ST_PLANE_CP,
     "with pg_ssl: verify the server's certificate and host name (CA: pg_ssl_ca)", 0, 0,
     NULL, 0},
    {"pg_ssl_ca", T_STR, OFF(pg_ssl_ca), NULL, ST_PLANE_CP,
     "CA file for pg_ssl_verify (PEM)", 0, 0, NULL, 0},
    {"pg_pool_size", T_INT, OFF(pg_pool_size), "4", ST_PLANE_CP,
     "Postgres connections of the admin API", 1, 1000, NULL, 0},
    {"pg_timeout", T_INT, OFF(pg_timeout), "5000", ST_PLANE_CP,
     "Postgres connect and query timeout (ms)", 1, INT_MAX, NULL, 0},
    {"cluster_listen", T_LISTEN_HTTP, OFF(cluster_listen), "0.0.0.0:8005", ST_PLANE_CP,
     "address data planes connect to", 0, 0, NULL, 0},
    {"cluster_data_plane_purge_delay", T_INT64, OFF(cluster_data_plane_purge_delay), "1209600",
     ST_PLANE_CP, "seconds a silent data plane stays listed", 60, INT64_MAX,
     "must be 60 or greater", 0},
    {"cluster_handshake_timeout", T_INT, OFF(cluster_handshake_timeout), "10", ST_PLANE_CP,
     "seconds from accept for a data plane to finish the cluster TLS handshake (absolute)",
     1, 3600, NULL, 0},
    {"cluster_max_pending", T_INT, OFF(cluster_max_pending), "256", ST_PLANE_CP,
     "cluster connections still in their handshake at most (the oldest is closed for a new "
     "one)", 1, 65536, NULL, 0},

    {"cluster_control_plane", T_HOSTPORTS, OFF(cluster_control_plane), NULL, ST_PLANE_DP,
     "host:port[,host:port...]: control planes' cluster_listen (required on a DP; several: "
     "failover)", 0, 0, NULL, 0},
    {"cluster_dp_labels", T_STR, OFF(cluster_dp_labels), NULL, ST_PLANE_DP,
     "labels reported to the control plane, key:value list", 0, 0, NULL, 0},
    {"cluster_server_name", T_STR, OFF(cluster_server_name), NULL, ST_PLANE_DP,
     "with cluster_mtls = pki: the name the CP certificate must carry (default: the host "
     "of cluster_control_plane)", 0, 0, NULL, 0},
    {"stream_listen", T_LISTEN_STREAM, OFF(stream_listen), "off", ST_PLANE_DP,
     "proxy listener(s): <ip>:<port> [flags], ..., or off", 0, 0, NULL, 0},
    {"ssl_cert", T_STR, OFF(ssl_cert), NULL, ST_PLANE_DP,
     "default certificate for ssl listeners (PEM file)", 0, 0, NULL, 0},
    {"ssl_cert_key", T_STR, OFF(ssl_cert_key), NULL, ST_PLANE_DP,
     "key of ssl_cert (PEM file)", 0, 0, NULL, CONF_F_SECRET},
    {"ssl_protocols", T_PROTOCOLS, OFF(ssl_protocols), "TLSv1.2 TLSv1.3", ST_PLANE_DP,
     "TLS versions offered to clients", 0, 0, NULL, 0},
    {"ssl_cipher_suite", T_CIPHER_SUITE, OFF(ssl_cipher_suite), "intermediate", ST_PLANE_DP,
     "modern, intermediate, old or fips", 0, 0, NULL, 0},
    {"ssl_session_tickets", T_BOOL, OFF(ssl_session_tickets), "on", ST_PLANE_DP,
     "TLS session tickets", 0, 0, NULL, 0},
    {"trusted_ips", T_CIDRS, OFF(trusted_ips), NULL, ST_PLANE_DP,
     "IPs/CIDRs whose PROXY protocol headers are believed", 0, 0, NULL, 0},
    {"status_listen", T_LISTEN_HTTP, OFF(status_listen), "127.0.0.1:8007", ST_PLANE_DP,
     "status and metrics listener(s), or off", 0, 0, NULL, 0},
    {"status_max_connections", T_INT, OFF(status_max_connections), "64", ST_PLANE_DP,
     "open status connections at most, over every status_listen entry", 1, 65536, NULL, 0},
    {"stream_max_sessions", T_AUTO_INT, OFF(stream_max_sessions), "auto", ST_PLANE_DP,
     "proxied sessions at most: auto (from the descriptor limit, two descriptors a "
     "session) or a number", 1, INT_MAX, NULL, 0},
    {"worker_processes", T_WORKERS, OFF(worker_processes), "auto", ST_PLANE_DP,
     "epoll worker threads: auto (one per core) or a number", 1, WORKERS_MAX, NULL, 0},
    {"preread_timeout", T_INT, OFF(preread_timeout), "30000", ST_PLANE_DP,
     "ms for a ClientHello or PROXY header to arrive", 1, INT_MAX, NULL, 0},
    {"drain_timeout", T_INT, OFF(drain_timeout), "30", ST_PLANE_DP,
     "seconds open sessions may finish after SIGQUIT", 0, INT_MAX, NULL, 0},
    {"dns_resolver", T_NAMESERVERS, OFF(dns_resolver), NULL, ST_PLANE_DP,
     "name servers, ip[:port][,ip[:port]...] (default: those of /etc/resolv.conf)", 0, 0,
     NULL, 0},
    {"dns_hostsfile", T_STR, OFF(dns_hostsfile), "/etc/hosts", ST_PLANE_DP,
     "hosts file consulted before the name servers", 0, 0, NULL, 0},
    {"dns_order", T_DNS_ORDER, OFF(dns_order), "LAST,SRV,A,CNAME", ST_PLANE_DP,
     "record types tried in order (LAST: the type that last answered for the name)", 0, 0,
     NULL, 0},
    {"dns_valid_ttl", T_INT, OFF(dns_valid_ttl), NULL, ST_PLANE_DP,
     "seconds every answer is kept, instead of its TTL (unset: the records' TTL)", 1,
     INT_MAX, NULL, 0},
    {"dns_stale_ttl", T_INT, OFF(dns_stale_ttl), "3600", ST_PLANE_DP,
     "seconds past its TTL an answer is still used while the name servers fail", 0,
     INT_MAX, NULL, 0},
    {"dns_not_found_ttl", T_INT, OFF(dns_not_found_ttl), "30", ST_PLANE_DP,
     "seconds before a name that does not exist (or has no records) is asked again", 0,
     INT_MAX, NULL, 0},
    {"dns_error_ttl", T_INT, OFF(dns_error_ttl), "1", ST_PLANE_DP,
     "seconds before a name whose lookup failed is asked again", 0, INT_MAX, NULL, 0},

    {"plugins", T_PLUGINS, OFF(plugins), "bundled", ST_PLANE_BOTH,
     "plugins this node runs: bundled (every built-in one: ip-restriction), names separated "
     "by commas, or off; a plugin entity naming another is refused",
     0, 0, NULL, 0},
    {"cluster_mtls", T_MTLS, OFF(cluster_mtls), "shared", ST_PLANE_BOTH,
     "shared (one certificate for all), pki (signed by cluster_ca_cert), or off "
     "(plaintext, local development only)", 0, 0, NULL, 0},
    {"cluster_cert", T_STR, OFF(cluster_cert), NULL, ST_PLANE_BOTH,
     "cluster certificate (PEM file; required unless cluster_mtls = off)", 0, 0, NULL, 0},
    {"cluster_cert_key", T_STR, OFF(cluster_cert_key), NULL, ST_PLANE_BOTH,
     "key of cluster_cert (PEM file)", 0, 0, NULL, CONF_F_SECRET},
    {"cluster_ca_cert", T_STR, OFF(cluster_ca_cert), NULL, ST_PLANE_BOTH,
     "CA that signs the cluster certificates (PEM file; required when cluster_mtls = pki, "
     "not used in shared mode)", 0, 0, NULL, 0},
    {"cluster_max_payload", T_INT64, OFF(cluster_max_payload), "16777216", ST_PLANE_BOTH,
     "largest snapshot accepted over the cluster link (bytes; 100k routes with their "
     "services and 10k certificates are about 41 MiB: set 64 MiB)",
     4194304, INT32_MAX, "must be 4194304 (4MB) or greater", 0},
    {"cluster_heartbeat", T_INT, OFF(cluster_heartbeat), "30", ST_PLANE_BOTH,
     "seconds a CP may hold a DP's sync request", 1, 3600, NULL, 0},
};
/* clang-format on */

#define N_KEYS ST_ARRAY_SIZE(conf_defs)

/* Where a key's current text came from, to name it in errors. */
enum conf_src_kind {
    SRC_DEFAULT = 0,
    SRC_FILE,
    SRC_ENV,
    SRC_CLI,
};

struct conf_src {
    enum conf_src_kind kind;
    int line;
};

struct loader {
    struct st_conf *c;
    const char *file_base;
    struct conf_src src[N_KEYS];
    struct st_err *err;
};

/* ------------------------------------------------------------------------- */
/* Errors */

/* "STRAIT_LOG_LEVEL" for "log_level". */
static void
env_name(const char *key, char *buf, size_t size)
{
    size_t n = strlen(ENV_PREFIX);

    ST_ASSERT(size > n + strlen(key));
    memcpy(buf, ENV_PREFIX, n);
    for (; *key != '\0'; key++) {
        buf[n++] = (char)toupper((unsigned char)*key);
    }
    buf[n] = '\0';
}

/* Fills err with "<where>: <reason>", where names the file line, the environment
 * variable, or the key. A reason too long for err->msg loses its tail after "; "
 * (listen errors carry Kong's long form text there). */
static int
conf_fail(struct loader *ld, size_t i, const char *reason)
{
    char where[160], msg[sizeof(ld->err->msg)];
    const char *name = conf_defs[i].name;
    const char *semi;

    switch (ld->src[i].kind) {
    case SRC_FILE:
        snprintf(where, sizeof(where), "%s:%d: %s", ld->file_base, ld->src[i].line, name);
        break;
    case SRC_ENV:
        env_name(name, where, sizeof(where));
        break;
    case SRC_CLI:
        snprintf(where, sizeof(where), "-p");
        break;
    default:
        snprintf(where, sizeof(where), "%s", name);
        break;
    }
    if (st_snprintf(msg, sizeof(msg), "%s: %s", where, reason) != 0 &&
        (semi = strstr(reason, "; ")) != NULL) {
        /* Still too long after the cut: keep what fits, the reason comes first. */
        (void)st_snprintf(msg, sizeof(msg), "%s: %.*s", where, (int)(semi - reason), reason);
    }
    return st_err_set(ld->err, -ST_ECONF, name, "%s", msg);
}

static int conf_failf(struct loader *ld, size_t i, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
conf_failf(struct loader *ld, size_t i, const char *fmt, ...)
{
    char reason[256];
    va_list ap;

    va_start(ap, fmt);
    if (vsnprintf(reason, sizeof(reason), fmt, ap) < 0) {
        reason[0] = '\0';
    }
    va_end(ap);
    return conf_fail(ld, i, reason);
}

static ssize_t
key_index(const char *name)
{
    for (size_t i = 0; i < N_KEYS; i++) {
        if (strcmp(conf_defs[i].name, name) == 0) {
            return (ssize_t)i;
        }
    }
    return -1;
}

/* ------------------------------------------------------------------------- */
/* Value conversion: text -> field. Each returns 0, or -1 with a reason in why. */

struct conv {
    const struct conf_def *d;
    const char *text;
    void *field;
    char why[256];
};

static int conv_why(struct conv *cv, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
conv_why(struct conv *cv, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    if (vsnprintf(cv->why, sizeof(cv->why), fmt, ap) < 0) {
        cv->why[0] = '\0';
    }
    va_end(ap);
    return -1;
}

/* Decimal integer, optional '-', nothing else. Returns 0 or -1. */
static int
parse_i64(const char *s, int64_t *out)
{
    char *end;
    long long v;

    if (*s == '\0' || (!isdigit((unsigned char)*s) && *s != '-')) {
        return -1;
    }
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0') {
        return -1;
    }
    *out = (int64_t)v;
    return 0;
}

static int
conv_int(struct conv *cv)
{
    const struct conf_def *d = cv->d;
    int64_t v;

    if (parse_i64(cv->text, &v) != 0) {
        return conv_why(cv, "'%s' is not a number", cv->text);
    }
    if (v < d->min || v > d->max) {
        if (d->range_msg != NULL && v < d->min) {
            return conv_why(cv, "%s", d->range_msg);
        }
        if ((d->type != T_INT64 && d->max == INT_MAX) || d->max == INT64_MAX) {
            return conv_why(cv, "must be %lld or greater", (long long)d->min);
        }
        return conv_why(cv, "must be between %lld and %lld", (long long)d->min, (long long)d->max);
    }
    if (d->type == T_INT64) {
        *(int64_t *)cv->field = v;
    } else {
        *(int *)cv->field = (int)v;
    }
    return 0;
}

static int
conv_bool(struct conv *cv)
{
    const char *t = cv->text;

    if (strcmp(t, "on") == 0 || strcmp(t, "true") == 0) {
        *(bool *)cv->field = true;
    } else if (strcmp(t, "off") == 0 || strcmp(t, "false") == 0) {
        *(bool *)cv->field = false;
    } else {
        return conv_why(cv, "'%s' is not a boolean (on, off, true, false)", t);
    }
    return 0;
}

/* Flags of Kong's syntax that no part of Strait implements yet, per listener kind:
 * refused rather than accepted and ignored. */
static int
refuse_listen_flags(struct conv *cv, const struct st_listen_set *set, unsigned refused)
{
    static const struct {
        unsigned flag;
        const char *name;
    } names[] = {
        {ST_LISTEN_F_UDP, "udp"},
        {ST_LISTEN_F_SSL, "ssl"},
        {ST_LISTEN_F_HTTP2, "http2"},
        {ST_LISTEN_F_PROXY, "proxy_protocol"},
    };

    for (size_t i = 0; i < set->n; i++) {
        for (size_t j = 0; j < ST_ARRAY_SIZE(names); j++) {
            if (set->v[i].flags & refused & names[j].flag) {
                return conv_why(cv, "the '%s' flag is not supported yet", names[j].name);
            }
        }
    }
    return 0;
}

static int
conv_listen(struct conv *cv)
{
    struct st_listen_set *set = cv->field;
    enum st_listen_kind kind = cv->d->type == T_LISTEN_STREAM ? ST_LISTEN_STREAM : ST_LISTEN_HTTP;
    unsigned refused = kind == ST_LISTEN_STREAM
                           ? (ST_LISTEN_F_UDP | ST_LISTEN_F_PROXY)
                           : (ST_LISTEN_F_SSL | ST_LISTEN_F_HTTP2 | ST_LISTEN_F_PROXY);
    struct st_err e = {0};

    if (cv->d->flags & CONF_F_SSL_OK) {
        refused &= ~ST_LISTEN_F_SSL;
    }

    if (st_listen_parse(cv->d->name, cv->text, kind, set, &e) != 0) {
        return conv_why(cv, "%s", e.msg);
    }
    if (refuse_listen_flags(cv, set, refused) != 0) {
        st_listen_set_fini(set);
        return -1;
    }
    return 0;
}

static int
conv_loglevel(struct conv *cv)
{
    if (st_log_level_parse(cv->text, cv->field) != 0) {
        return conv_why(cv,
                        "'%s' is not one of: debug, info, notice, warn, error, crit, "
                        "alert, emerg",
                        cv->text);
    }
    return 0;
}

/* T_AUTO_INT, and T_WORKERS whose "auto" is the number of cores. */
static int
conv_auto_int(struct conv *cv)
{
    const struct conf_def *d = cv->d;
    int64_t v;

    if (strcmp(cv->text, "auto") == 0) {
        long n = 0;

        if (d->type == T_WORKERS) {
            n = sysconf(_SC_NPROCESSORS_ONLN);
            n = n < 1 ? 1 : (n > d->max ? (long)d->max : n);
        }
        *(int *)cv->field = (int)n;
        return 0;
    }
    if (parse_i64(cv->text, &v) != 0 || v < d->min || v > d->max) {
        return conv_why(cv, "'%s' is not auto or a number between %lld and %lld", cv->text,
                        (long long)d->min, (long long)d->max);
    }
    *(int *)cv->field = (int)v;
    return 0;
}

/* The words of the choice types (in the order of enum st_mtls for T_MTLS) and how an
 * error lists them. */
static const struct {
    const char *words[5];
    const char *list;
} conf_choices[] = {
    [T_MTLS] = {{"shared", "pki", "off"}, "shared, pki, off"},
    [T_DATABASE] = {{"sqlite", "postgres"}, "sqlite, postgres"},
    [T_CIPHER_SUITE] = {{"modern", "intermediate", "old", "fips"},
                        "modern, intermediate, old, fips"},
    [T_SYNCHRONOUS] = {{"normal", "full"}, "normal, full"},
};

/* T_MTLS (an enum st_mtls), T_SYNCHRONOUS (true for full), T_DATABASE and T_CIPHER_SUITE
 * (the word, kept as it is). */
static int
conv_choice(struct conv *cv)
{
    const char *const *words = conf_choices[cv->d->type].words;
    int i = 0;

    while (words[i] != NULL && strcmp(cv->text, words[i]) != 0) {
        i++;
    }
    if (words[i] == NULL) {
        return conv_why(cv, "'%s' is not one of: %s", cv->text, conf_choices[cv->d->type].list);
    }
    if (cv->d->type == T_MTLS) {
        *(enum st_mtls *)cv->field = (enum st_mtls)i;
    } else if (cv->d->type == T_SYNCHRONOUS) {
        *(bool *)cv->field = i == 1;
    } else {
        *(char **)cv->field = st_xstrdup(cv->text);
    }
    return 0;
}

static int
conv_protocols(struct conv *cv)
{
    static const char *const ok[] = {"TLSv1.1", "TLSv1.2", "TLSv1.3"};
    char *copy = st_xstrdup(cv->text);
    char *save = NULL;
    int n = 0, rc = 0;

    for (char *t = strtok_r(copy, " \t", &save); t != NULL; t = strtok_r(NULL, " \t", &save)) {
        size_t j = 0;

        while (j < ST_ARRAY_SIZE(ok) && strcmp(t, ok[j]) != 0) {
            j++;
        }
        if (j == ST_ARRAY_SIZE(ok)) {
            rc = conv_why(cv, "unknown protocol '%s' (TLSv1.1, TLSv1.2, TLSv1.3)", t);
            break;
        }
        n++;
    }
    free(copy);
    if (rc == 0 && n == 0) {
        rc = conv_why(cv, "no protocol given (TLSv1.1, TLSv1.2, TLSv1.3)");
    }
    if (rc == 0) {
        *(char **)cv->field = st_xstrdup(cv->text);
    }
    return rc;
}

/* "host:port" where host is a name, an IPv4 address or [IPv6]. */
static bool
is_host_port(const char *s)
{
    const char *colon = strrchr(s, ':');
    const char *p;
    long port = 0;

    if (colon == NULL || colon == s || colon[1] == '\0' || strlen(colon + 1) > 5) {
        return false;
    }
    for (p = colon + 1; *p != '\0'; p++) {
        if (!isdigit((unsigned char)*p)) {
            return false;
        }
        port = port * 10 + (*p - '0');
    }
    if (port < 1 || port > 65535) {
        return false;
    }
    if (s[0] == '[') {
        return colon[-1] == ']' && colon - s > 2;
    }
    for (p = s; p < colon; p++) {
        if (!isalnum((unsigned char)*p) && *p != '.' && *p != '-' && *p != '_') {
            return false;
        }
    }
    return true;
}

/* A comma list each of whose entries passes ok (what: the form an entry must have,
 * form: the list's), stored trimmed and joined by ',' (no spaces); an empty entry, a bad
 * one or one listed twice is refused, naming it. */
static int
conv_list(struct conv *cv, bool (*ok)(const char *), const char *what, const char *form)
{
    char *copy = st_xstrdup(cv->text);
    char *out = st_xmalloc(strlen(cv->text) + 1);
    char *p = copy;
    size_t n = 0, len = 0;
    int rc = 0;

    for (;;) {
        char *comma = strchr(p, ',');
        char *t;

        if (comma != NULL) {
            *comma = '\0';
        }
        t = st_str_trim(p);
        n++;
        if (*t == '\0') {
            rc = conv_why(cv, "entry %zu of the list is empty (%s)", n, form);
            break;
        }
        if (!ok(t)) {
            rc = conv_why(cv, "'%s' is not %s", t, what);
            break;
        }
        for (const char *q = out; q < out + len;) {
            size_t qn = strcspn(q, ",");

            if (qn == strlen(t) && strncasecmp(q, t, qn) == 0) {
                rc = conv_why(cv, "'%s' is listed twice", t);
                break;
            }
            q += qn + 1;
        }
        if (rc != 0) {
            break;
        }
        if (len > 0) {
            out[len++] = ',';
        }
        memcpy(out + len, t, strlen(t) + 1);
        len += strlen(t);
        if (comma == NULL) {
            break;
        }
        p = comma + 1;
    }
    free(copy);
    if (rc != 0) {
        free(out);
        return rc;
    }
    *(char **)cv->field = out;
    return 0;
}

/* cluster_control_plane: "host:port[,host:port...]", the control planes a DP may use
 * (failover, dp_sync.c). */
static int
conv_hostports(struct conv *cv)
{
    return conv_list(cv, is_host_port, "host:port (port 1-65535)", "host:port[,host:port...]");
}

/* An IP literal, alone or with ":port" ([v6]:port), as c-ares takes a name server. */
static bool
is_nameserver(const char *s)
{
    unsigned char buf[sizeof(struct in6_addr)];
    char host[64];
    const char *colon = strrchr(s, ':');
    size_t n;

    if (inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1) {
        return true;
    }
    if (colon == NULL || !is_host_port(s)) {
        return false;
    }
    n = (size_t)(colon - s);
    if (s[0] == '[') {
        s++;
        n -= 2;
    }
    if (n >= sizeof(host)) {
        return false;
    }
    memcpy(host, s, n);
    host[n] = '\0';
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

/* dns_resolver: Kong's "ip[:port],..." name servers (port 53 when omitted). */
static int
conv_nameservers(struct conv *cv)
{
    return conv_list(cv, is_nameserver, "an IP address with an optional :port",
                     "ip[:port][,ip[:port]...]");
}

static bool
is_dns_type(const char *s)
{
    static const char *const types[] = {"LAST", "SRV", "A", "AAAA", "CNAME"};

    for (size_t i = 0; i < ST_ARRAY_SIZE(types); i++) {
        if (strcasecmp(s, types[i]) == 0) {
            return true;
        }
    }
    return false;
}

/* dns_order: Kong's record types to try, in order (case-insensitive). */
static int
conv_dns_order(struct conv *cv)
{
    return conv_list(cv, is_dns_type, "one of LAST, SRV, A, AAAA, CNAME", "type[,type...]");
}

static int
conv_cidrs(struct conv *cv)
{
    char *copy = st_xstrdup(cv->text);
    char *save = NULL;
    int rc = 0;

    for (char *t = strtok_r(copy, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save)) {
        struct st_cidr cidr;

        t = st_str_trim(t);
        if (st_cidr_parse(t, &cidr) != 0) {
            rc = conv_why(cv, "'%s' is not an IP address or CIDR block", t);
            break;
        }
    }
    free(copy);
    if (rc == 0) {
        *(char **)cv->field = st_xstrdup(cv->text);
    }
    return rc;
}

/* plugins: checked against the built-in plugins (st_plugin.h) */
static int
conv_plugins(struct conv *cv)
{
    char why[256];

    if (st_plugin_conf_check(cv->text, why, sizeof(why)) != 0) {
        return conv_why(cv, "%s", why);
    }
    *(char **)cv->field = st_xstrdup(cv->text);
    return 0;
}

/* A token travels in an HTTP header (and as a Bearer token): visible ASCII, no spaces. */
static int
conv_token(struct conv *cv)
{
    size_t n = strlen(cv->text);

    if (n > TOKEN_MAX) {
        return conv_why(cv, "longer than %d characters", TOKEN_MAX);
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)cv->text[i];

        if (ch < 0x21 || ch > 0x7e) {
            return conv_why(cv, "only visible ASCII characters are allowed, without spaces "
                                "(it is sent in an HTTP header)");
        }
    }
    *(char **)cv->field = st_xstrdup(cv->text);
    return 0;
}

static int
conv_str(struct conv *cv)
{
    *(char **)cv->field = st_xstrdup(cv->text);
    return 0;
}

typedef int conv_fn(struct conv *cv);

static conv_fn *const conv_by_type[] = {
    [T_STR] = conv_str,
    [T_INT] = conv_int,
    [T_INT64] = conv_int,
    [T_BOOL] = conv_bool,
    [T_LISTEN_STREAM] = conv_listen,
    [T_LISTEN_HTTP] = conv_listen,
    [T_MTLS] = conv_choice,
    [T_LOGLEVEL] = conv_loglevel,
    [T_WORKERS] = conv_auto_int,
    [T_DATABASE] = conv_choice,
    [T_CIPHER_SUITE] = conv_choice,
    [T_PROTOCOLS] = conv_protocols,
    [T_HOSTPORTS] = conv_hostports,
    [T_CIDRS] = conv_cidrs,
    [T_TOKEN] = conv_token,
    [T_AUTO_INT] = conv_auto_int,
    [T_SYNCHRONOUS] = conv_choice,
    [T_NAMESERVERS] = conv_nameservers,
    [T_DNS_ORDER] = conv_dns_order,
    [T_PLUGINS] = conv_plugins,
};

/* String-valued types: an empty value means unset (NULL). */
static bool
is_string_type(enum conf_type t)
{
    return t == T_STR || t == T_HOSTPORTS || t == T_CIDRS || t == T_TOKEN || t == T_NAMESERVERS ||
           t == T_DNS_ORDER || t == T_PLUGINS;
}

static int
convert_all(struct loader *ld)
{
    for (size_t i = 0; i < N_KEYS; i++) {
        const struct conf_def *d = &conf_defs[i];
        const char *text = ld->c->raw[i];
        struct conv cv = {.d = d, .text = text, .field = (char *)ld->c + d->off};

        if (text == NULL || (text[0] == '\0' && is_string_type(d->type))) {
            continue;
        }
        if (text[0] == '\0') {
            return conf_fail(ld, i, "empty value");
        }
        if (conv_by_type[d->type](&cv) != 0) {
            return conf_fail(ld, i, cv.why);
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------- */
/* Sources: file, environment */

static void
set_raw(struct loader *ld, size_t i, const char *text, enum conf_src_kind kind, int line)
{
    free(ld->c->raw[i]);
    ld->c->raw[i] = st_xstrdup(text);
    ld->src[i].kind = kind;
    ld->src[i].line = line;
}

/* Strips a trailing "# comment" in place and turns "\#" into "#" (Kong's format). */
static void
strip_comment(char *s)
{
    char *w = s;

    for (char *r = s; *r != '\0'; r++) {
        if (r[0] == '\\' && r[1] == '#') {
            *w++ = '#';
            r++;
            continue;
        }
        if (*r == '#') {
            break;
        }
        *w++ = *r;
    }
    *w = '\0';
}

static int
parse_line(struct loader *ld, char *line, int lineno)
{
    char *eq, *key, *value;
    ssize_t i;

    strip_comment(line);
    line = st_str_trim(line);
    if (*line == '\0') {
        return 0;
    }
    eq = strchr(line, '=');
    if (eq == NULL || eq == line) {
        return st_err_set(ld->err, -ST_ECONF, "", "%s:%d: expected 'key = value', got '%.60s'",
                          ld->file_base, lineno, line);
    }
    *eq = '\0';
    key = st_str_trim(line);
    value = st_str_trim(eq + 1);
    i = key_index(key);
    if (i < 0) {
        return st_err_set(ld->err, -ST_ECONF, key, "%s:%d: %.64s: unknown configuration key",
                          ld->file_base, lineno, key);
    }
    set_raw(ld, (size_t)i, value, SRC_FILE, lineno);
    return 0;
}

static int
read_file(struct loader *ld, const char *path)
{
    FILE *f = fopen(path, "re");
    char *line = NULL;
    size_t cap = 0;
    int lineno = 0, rc = 0;

    if (f == NULL) {
        int e = errno;

        if (e == ENOENT) {
            return st_err_set(ld->err, -ST_ECONF, "", "no file at: %s", path);
        }
        return st_err_set(ld->err, -ST_ECONF, "", "cannot read %s: %s", path, strerror(e));
    }
    while (getline(&line, &cap, f) != -1) {
        rc = parse_line(ld, line, ++lineno);
        if (rc != 0) {
            break;
        }
    }
    if (rc == 0 && ferror(f)) {
        rc = st_err_set(ld->err, -ST_ECONF, "", "cannot read %s: %s", path, strerror(errno));
    }
    free(line);
    fclose(f);
    return rc;
}

static void
read_env(struct loader *ld)
{
    char name[KEY_MAX + 8];

    for (size_t i = 0; i < N_KEYS; i++) {
        const char *v;

        env_name(conf_defs[i].name, name, sizeof(name));
        v = getenv(name);
        if (v != NULL) {
            char *copy = st_xstrdup(v);

            set_raw(ld, i, st_str_trim(copy), SRC_ENV, 0);
            free(copy);
        }
    }
}

/* ------------------------------------------------------------------------- */
/* Resolution and the checks of one plane */

/* Relative paths of CONF_F_IN_PREFX keys go under the prefix; raw shows the result. */
static void
resolve_paths(struct loader *ld)
{
    struct st_conf *c = ld->c;
    size_t plen = strlen(c->prefix);

    size_t pi = (size_t)key_index("prefix");

    while (plen > 1 && c->prefix[plen - 1] == '/') {
        c->prefix[--plen] = '\0';
    }
    free(c->raw[pi]);
    c->raw[pi] = st_xstrdup(c->prefix);
    for (size_t i = 0; i < N_KEYS; i++) {
        char **field = (char **)((char *)c + conf_defs[i].off);
        size_t n;
        char *abs;

        if (!(conf_defs[i].flags & CONF_F_IN_PREFX) || *field == NULL || (*field)[0] == '/') {
            continue;
        }
        n = plen + 1 + strlen(*field) + 1;
        abs = st_xmalloc(n);
        snprintf(abs, n, "%s/%s", c->prefix, *field);
        free(*field);
        *field = abs;
        free(c->raw[i]);
        c->raw[i] = st_xstrdup(abs);
    }
}

static int
check_readable(struct loader *ld, const char *key)
{
    size_t i = (size_t)key_index(key);
    const char *path = *(char **)((char *)ld->c + conf_defs[i].off);

    if (access(path, R_OK) == -1) {
        int e = errno;

        if (e == ENOENT) {
            return conf_failf(ld, i, "no file at: %s", path);
        }
        return conf_failf(ld, i, "cannot read %s: %s", path, strerror(e));
    }
    return 0;
}

/* 127.0.0.0/8, ::1 and ::ffff:127.0.0.0/104 (st_cidr matches an IPv4 block mapped). */
static bool
listen_is_loopback(const struct st_listen *l)
{
    static const char *const blocks[] = {"127.0.0.0/8", "::1/128"};
    struct st_cidr c;

    for (size_t i = 0; i < ST_ARRAY_SIZE(blocks); i++) {
        if (st_cidr_parse(blocks[i], &c) == 0 &&
            st_cidr_match(&c, (const struct sockaddr *)&l->addr)) {
            return true;
        }
    }
    return false;
}

static int
check_cluster_certs(struct loader *ld)
{
    struct st_conf *c = ld->c;
    int rc;

    if (c->cluster_mtls == ST_MTLS_OFF) {
        return 0;
    }
    if (c->cluster_cert == NULL || c->cluster_cert_key == NULL) {
        const char *key = c->cluster_cert == NULL ? "cluster_cert" : "cluster_cert_key";

        return conf_fail(ld, (size_t)key_index(key),
                         "cluster certificate and key must be provided to use Hybrid mode "
                         "(or cluster_mtls = off, for local development only)");
    }
    if (c->cluster_mtls == ST_MTLS_PKI && c->cluster_ca_cert == NULL) {
        /* Kong's text; the line that asked for pki is where to look */
        return conf_fail(ld, (size_t)key_index("cluster_mtls"),
                         "cluster_ca_cert must be specified when cluster_mtls = \"pki\"");
    }
    rc = check_readable(ld, "cluster_cert");
    if (rc == 0) {
        rc = check_readable(ld, "cluster_cert_key");
    }
    if (rc == 0 && c->cluster_mtls == ST_MTLS_PKI) {
        rc = check_readable(ld, "cluster_ca_cert");
    }
    return rc;
}

static bool
admin_has_ssl(const struct st_conf *c)
{
    for (size_t i = 0; i < c->admin_listen.n; i++) {
        if (c->admin_listen.v[i].flags & ST_LISTEN_F_SSL) {
            return true;
        }
    }
    return false;
}

/* The admin API's TLS files exist when an ssl listener needs them; the parsing (and
 * whether the key matches) is cp_http's, at start. */
static int
check_admin_files(struct loader *ld)
{
    struct st_conf *c = ld->c;
    int rc = 0;

    if (admin_has_ssl(c)) {
        if (c->admin_ssl_cert == NULL || c->admin_ssl_cert_key == NULL) {
            const char *key = c->admin_ssl_cert == NULL ? "admin_ssl_cert" : "admin_ssl_cert_key";

            return conf_fail(ld, (size_t)key_index(key),
                             "admin_ssl_cert and admin_ssl_cert_key must be set when an "
                             "admin_listen entry has the ssl flag");
        }
        rc = check_readable(ld, "admin_ssl_cert");
        if (rc == 0) {
            rc = check_readable(ld, "admin_ssl_cert_key");
        }
    }
    if (rc == 0 && c->admin_ssl_client_ca != NULL) {
        if (!admin_has_ssl(c)) {
            return conf_fail(ld, (size_t)key_index("admin_ssl_client_ca"),
                             "needs an admin_listen entry with the ssl flag (client "
                             "certificates are checked during the TLS handshake)");
        }
        rc = check_readable(ld, "admin_ssl_client_ca");
    }
    return rc;
}

static int
check_cp(struct loader *ld)
{
    struct st_conf *c = ld->c;
    size_t ci = (size_t)key_index("cluster_listen");
    size_t ai = (size_t)key_index("admin_listen");
    const char *missing;
    int rc;

    if (c->cluster_listen.n == 0) {
        return conf_fail(ld, ci, "must be set on a control plane");
    }
    if (c->cluster_listen.n > 1) {
        return conf_fail(ld, ci, "only one address is supported");
    }
    rc = check_admin_files(ld);
    if (rc != 0) {
        return rc;
    }
    if (c->pg_ssl_verify && !c->pg_ssl) {
        return conf_fail(ld, (size_t)key_index("pg_ssl_verify"), "needs pg_ssl = on");
    }
    if (c->pg_ssl_ca != NULL) {
        if (!c->pg_ssl_verify) {
            return conf_fail(ld, (size_t)key_index("pg_ssl_ca"), "needs pg_ssl_verify = on");
        }
        rc = check_readable(ld, "pg_ssl_ca");
        if (rc != 0) {
            return rc;
        }
    }
    for (size_t i = 0; i < c->admin_listen.n && !c->admin_allow_insecure; i++) {
        if (st_conf_admin_is_exposed(c, &c->admin_listen.v[i], &missing)) {
            return conf_failf(ld, ai,
                              "%s is not a loopback address and lacks %s (set "
                              "admin_allow_insecure = on to allow it anyway)",
                              c->admin_listen.v[i].text, missing);
        }
    }
    return 0;
}

static int
check_plane(struct loader *ld, enum st_plane plane)
{
    int rc = check_cluster_certs(ld);

    if (rc == 0 && (plane & ST_PLANE_CP)) {
        rc = check_cp(ld);
    }
    if (rc == 0 && (plane & ST_PLANE_DP) && ld->c->cluster_control_plane == NULL) {
        rc = conf_fail(ld, (size_t)key_index("cluster_control_plane"),
                       "must be set on a data plane (host:port of the control plane's "
                       "cluster_listen)");
    }
    return rc;
}

/* ------------------------------------------------------------------------- */
/* API */

int
st_conf_load(struct st_conf *c, const char *conf_path, const char *prefix, enum st_plane plane,
             struct st_err *err)
{
    struct st_conf tmp = {0};
    struct st_err dummy;
    struct loader ld = {.c = &tmp};
    int rc;

    ld.err = err != NULL ? err : &dummy;
    tmp.raw = st_xcalloc(N_KEYS, sizeof(*tmp.raw));
    for (size_t i = 0; i < N_KEYS; i++) {
        if (conf_defs[i].dflt != NULL) {
            set_raw(&ld, i, conf_defs[i].dflt, SRC_DEFAULT, 0);
        }
    }
    if (conf_path != NULL) {
        const char *slash = strrchr(conf_path, '/');

        tmp.conf_path = st_xstrdup(conf_path);
        ld.file_base = slash != NULL ? slash + 1 : conf_path;
        rc = read_file(&ld, conf_path);
        if (rc != 0) {
            goto out;
        }
    }
    read_env(&ld);
    if (prefix != NULL) {
        set_raw(&ld, (size_t)key_index("prefix"), prefix, SRC_CLI, 0);
    }
    if (tmp.raw[(size_t)key_index("prefix")][0] == '\0') {
        rc = conf_fail(&ld, (size_t)key_index("prefix"), "empty value");
        goto out;
    }
    rc = convert_all(&ld);
    if (rc != 0) {
        goto out;
    }
    resolve_paths(&ld);
    rc = check_plane(&ld, plane);
out:
    if (rc != 0) {
        st_conf_fini(&tmp);
        memset(c, 0, sizeof(*c));
        return rc;
    }
    *c = tmp;
    /* the plugins this process enables: read by every entity check from now on */
    st_plugin_conf_apply(c->plugins);
    return 0;
}

void
st_conf_fini(struct st_conf *c)
{
    if (c == NULL) {
        return;
    }
    for (size_t i = 0; i < N_KEYS; i++) {
        enum conf_type t = conf_defs[i].type;
        void *field = (char *)c + conf_defs[i].off;

        if (t == T_LISTEN_STREAM || t == T_LISTEN_HTTP) {
            st_listen_set_fini(field);
        } else if (is_string_type(t) || t == T_DATABASE || t == T_CIPHER_SUITE ||
                   t == T_PROTOCOLS) {
            free(*(char **)field); /* the struct is zeroed below */
        }
        if (c->raw != NULL) {
            free(c->raw[i]);
        }
    }
    free(c->raw);
    free(c->conf_path);
    memset(c, 0, sizeof(*c));
}

static const char *
shown_default(const struct conf_def *d, char *buf, size_t size)
{
    if (d->dflt == NULL) {
        return "(none)";
    }
    if (d->flags & CONF_F_IN_PREFX) {
        snprintf(buf, size, "PREFIX/%s", d->dflt);
        return buf;
    }
    return d->dflt;
}

void
st_conf_print_keys(FILE *f, enum st_plane plane)
{
    for (size_t i = 0; i < N_KEYS; i++) {
        const struct conf_def *d = &conf_defs[i];
        char kv[128], buf[64];

        if (!(d->plane & plane)) {
            continue;
        }
        snprintf(kv, sizeof(kv), "%s = %s", d->name, shown_default(d, buf, sizeof(buf)));
        fprintf(f, "  %-46s %s\n", kv, d->desc);
    }
}

bool
st_conf_admin_is_exposed(const struct st_conf *c, const struct st_listen *l, const char **missing)
{
    bool ssl = (l->flags & ST_LISTEN_F_SSL) != 0;
    bool auth = c->admin_token != NULL || c->admin_ssl_client_ca != NULL;
    const char *why;

    /* admin_ssl_client_ca counts only with ssl, which both branches below require */
    if (listen_is_loopback(l) || (ssl && auth)) {
        return false;
    }
    if (!ssl && !auth) {
        why = "the ssl flag and admin_token or admin_ssl_client_ca";
    } else if (!ssl) {
        why = "the ssl flag";
    } else {
        why = "admin_token or admin_ssl_client_ca";
    }
    if (missing != NULL) {
        *missing = why;
    }
    return true;
}

const char *
st_conf_key_at(const struct st_conf *c, size_t i, const char **value, bool *is_secret)
{
    bool secret;

    if (i >= N_KEYS) {
        return NULL;
    }
    secret = (conf_defs[i].flags & CONF_F_SECRET) != 0;
    if (value != NULL) {
        *value = secret || c == NULL || c->raw == NULL ? NULL : c->raw[i];
    }
    if (is_secret != NULL) {
        *is_secret = secret;
    }
    return conf_defs[i].name;
}
