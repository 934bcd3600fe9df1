/* Unit tests for st_conf: defaults, the strait.conf format (comments, "\#"), the
 * STRAIT_<KEY> override winning over the file, unknown keys and bad values named with
 * file:line or the variable, listen keys, the plane's required keys, the admin API's
 * security rules (issue 5: ssl listeners, admin_token, admin_ssl_client_ca, the refusal
 * of an exposed admin_listen and admin_allow_insecure), nothing applied on failure, raw
 * values with secrets hidden, and --help output. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "st_conf.h"
#include "st_err.h"

/* A scratch folder with strait.conf and two fake certificate files. */
struct fixture {
    char dir[64];
    char conf[128];
    char cert[128];
    char key[128];
};

/* Every variable a test may set; cleared around each test so none leaks. */
static const char *const env_used[] = {
    "STRAIT_LOG_LEVEL",
    "STRAIT_PG_PORT",
    "STRAIT_STREAM_LISTEN",
    "STRAIT_CLUSTER_MTLS",
    "STRAIT_PREFIX",
    "STRAIT_PG_PASSWORD",
    "STRAIT_SQLITE_PATH",
    "STRAIT_NOT_A_KEY",
    "STRAIT_TEST_CORRUPT_SNAPSHOT",
    "STRAIT_ADMIN_TOKEN",
    "STRAIT_CLUSTER_CONTROL_PLANE",
    "STRAIT_CLUSTER_MTLS",
};

static void
clear_env(void)
{
    for (size_t i = 0; i < sizeof(env_used) / sizeof(env_used[0]); i++) {
        unsetenv(env_used[i]);
    }
}

static void
write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

static int
setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));

    snprintf(fx->dir, sizeof(fx->dir), "/tmp/st_conf_test.XXXXXX");
    if (mkdtemp(fx->dir) == NULL) {
        free(fx);
        return -1;
    }
    snprintf(fx->conf, sizeof(fx->conf), "%s/strait.conf", fx->dir);
    snprintf(fx->cert, sizeof(fx->cert), "%s/cluster.crt", fx->dir);
    snprintf(fx->key, sizeof(fx->key), "%s/cluster.key", fx->dir);
    write_text(fx->cert, "not parsed by st_conf\n");
    write_text(fx->key, "not parsed by st_conf\n");
    clear_env();
    *state = fx;
    return 0;
}

static int
teardown(void **state)
{
    struct fixture *fx = *state;

    clear_env();
    unlink(fx->conf);
    unlink(fx->cert);
    unlink(fx->key);
    rmdir(fx->dir);
    free(fx);
    return 0;
}

/* Writes the file and loads it for plane. */
static int
load(struct fixture *fx, const char *text, enum st_plane plane, struct st_conf *c,
     struct st_err *err)
{
    write_text(fx->conf, text);
    memset(err, 0, sizeof(*err));
    return st_conf_load(c, fx->conf, NULL, plane, err);
}

static void
expect_error(struct fixture *fx, const char *text, enum st_plane plane, const char *field,
             const char *msg_prefix)
{
    struct st_conf c;
    struct st_err err;

    if (load(fx, text, plane, &c, &err) != -ST_ECONF) {
        fail_msg("expected an error for:\n%s", text);
    }
    assert_int_equal(err.code, -ST_ECONF);
    assert_string_equal(err.field, field);
    if (strncmp(err.msg, msg_prefix, strlen(msg_prefix)) != 0) {
        fail_msg("got '%s'\nwant prefix '%s'", err.msg, msg_prefix);
    }
    assert_null(c.raw);
}

static int
port_of(const struct st_listen *l)
{
    return ntohs(((const struct sockaddr_in *)&l->addr)->sin_port);
}

static void
test_defaults(void **state)
{
    struct fixture *fx = *state;
    struct st_conf c;
    struct st_err err;

    assert_int_equal(load(fx, "cluster_mtls = off\n", ST_PLANE_CP, &c, &err), 0);
    assert_string_equal(c.prefix, "/usr/local/strait");
    assert_string_equal(c.conf_path, fx->conf);
    assert_int_equal(c.admin_listen.n, 1);
    assert_string_equal(c.admin_listen.v[0].text, "127.0.0.1:8001");
    assert_string_equal(c.database, "sqlite");
    assert_string_equal(c.sqlite_path, "/usr/local/strait/strait.db");
    assert_string_equal(c.pg_host, "127.0.0.1");
    assert_int_equal(c.pg_port, 5432);
    assert_string_equal(c.pg_user, "strait");
    assert_null(c.pg_password);
    assert_string_equal(c.pg_database, "strait");
    assert_false(c.pg_ssl);
    assert_false(c.pg_ssl_verify);
    assert_null(c.pg_ssl_ca);
    assert_int_equal(c.pg_pool_size, 4);
    assert_int_equal(c.pg_timeout, 5000);
    assert_int_equal(c.cluster_listen.n, 1);
    assert_string_equal(c.cluster_listen.v[0].text, "0.0.0.0:8005");
    assert_false(c.admin_allow_insecure);
    assert_int_equal(c.cluster_data_plane_purge_delay, 1209600);
    assert_null(c.cluster_control_plane);
    /* Kong's DNS defaults */
    assert_null(c.dns_resolver);
    assert_string_equal(c.dns_hostsfile, "/etc/hosts");
    assert_string_equal(c.dns_order, "LAST,SRV,A,CNAME");
    assert_int_equal(c.dns_valid_ttl, 0);
    assert_int_equal(c.dns_stale_ttl, 3600);
    assert_int_equal(c.dns_not_found_ttl, 30);
    assert_int_equal(c.dns_error_ttl, 1);
    assert_int_equal(c.stream_listen.n, 0);
    assert_string_equal(c.ssl_protocols, "TLSv1.2 TLSv1.3");
    assert_string_equal(c.ssl_cipher_suite, "intermediate");
    assert_true(c.ssl_session_tickets);
    assert_null(c.trusted_ips);
    assert_int_equal(c.status_listen.n, 1);
    assert_string_equal(c.status_listen.v[0].text, "127.0.0.1:8007");
    assert_true(c.worker_processes >= 1);
    assert_int_equal(c.worker_processes, (int)sysconf(_SC_NPROCESSORS_ONLN));
    assert_int_equal(c.preread_timeout, 30000);
    assert_int_equal(c.drain_timeout, 30);
    assert_null(c.cluster_cert);
    assert_int_equal(c.cluster_mtls, ST_MTLS_OFF);
    assert_int_equal(c.cluster_max_payload, 16777216);
    assert_int_equal(c.cluster_heartbeat, 30);
    assert_int_equal(c.log_level, ST_LOG_NOTICE);
    /* issue 14's limits */
    assert_false(c.sqlite_synchronous_full);
    assert_int_equal(c.admin_max_connections, 512);
    assert_int_equal(c.admin_max_connections_per_ip, 64);
    assert_int_equal(c.admin_header_timeout, 10);
    assert_int_equal(c.cluster_handshake_timeout, 10);
    assert_int_equal(c.cluster_max_pending, 256);
    assert_int_equal(c.status_max_connections, 64);
    assert_int_equal(c.stream_max_sessions, 0); /* auto */
    st_conf_fini(&c);
    assert_null(c.raw);
    assert_null(c.prefix);
}

/* The issue 14 limits' own value forms: auto or a number, normal or full. */
static void
test_limit_values(void **state)
{
    struct fixture *fx = *state;
    struct st_conf c;
    struct st_err err;

    assert_int_equal(load(fx,
                          "cluster_mtls = off\nstream_max_sessions = 1000\n"
                          "sqlite_synchronous = full\ncluster_max_pending = 1\n",
                          ST_PLANE_CP, &c, &err),
                     0);
    assert_int_equal(c.stream_max_sessions, 1000);
    assert_true(c.sqlite_synchronous_full);
    assert_int_equal(c.cluster_max_pending, 1);
    st_conf_fini(&c);
    expect_error(fx, "cluster_mtls = off\nstream_max_sessions = 0\n", ST_PLANE_CP,
                 "stream_max_sessions",
                 "strait.conf:2: stream_max_sessions: '0' is not auto or a number between 1 "
                 "and 2147483647");
    expect_error(fx, "cluster_mtls = off\nstream_max_sessions = lots\n", ST_PLANE_CP,
                 "stream_max_sessions", "strait.conf:2: stream_max_sessions: 'lots' is not auto");
    expect_error(fx, "cluster_mtls = off\nsqlite_synchronous = off\n", ST_PLANE_CP,
                 "sqlite_synchronous",
                 "strait.conf:2: sqlite_synchronous: 'off' is not one of: normal, full");
    expect_error(fx, "cluster_mtls = off\nadmin_header_timeout = 0\n", ST_PLANE_CP,
                 "admin_header_timeout",
                 "strait.conf:2: admin_header_timeout: must be between 1 and 3600");
    expect_error(fx, "cluster_mtls = off\ncluster_max_pending = 0\n", ST_PLANE_CP,
                 "cluster_max_pending",
                 "strait.conf:2: cluster_max_pending: must be between 1 and 65536");
}

static void
test_no_file(void **state)
{
    struct st_conf c;
    struct st_err err;

    (void)state;
    setenv("STRAIT_CLUSTER_MTLS", "off", 1);
    assert_int_equal(st_conf_load(&c, NULL, "/srv/strait/", ST_PLANE_CP, &err), 0);
    assert_null(c.conf_path);
    assert_string_equal(c.prefix, "/srv/strait");
    assert_string_equal(c.sqlite_path, "/srv/strait/strait.db");
    st_conf_fini(&c);

    assert_int_equal(st_conf_load(&c, "/nonexistent/dir/strait.conf", NULL, ST_PLANE_CP, &err),
                     -ST_ECONF);
    assert_string_equal(err.msg, "no file at: /nonexistent/dir/strait.conf");
}

static void
test_file_format(void **state)
{
    struct fixture *fx = *state;
    struct st_conf c;
    struct st_err err;
    char text[1024];

    snprintf(text, sizeof(text),
             "# a comment line\n"
             "\n"
             "   # indented comment\n"
             "log_level=debug\n"
             "  pg_port   =   6543   # trailing comment\n"
             "pg_password = pa\\#ss # the \\# is literal\n"
             "cluster_dp_labels = region:eu,zone:a\r\n"
             "sqlite_path = data/s.db\n"
             "pg_user = first\n"
             "pg_user = second\n"
             "cluster_cert = %s\n"
             "cluster_cert_key = %s\n"
             "cluster_max_payload = 4194304\n"
             "cluster_data_plane_purge_delay = 60\n"
             "admin_allow_insecure = true\n"
             "pg_ssl = on\n"
             "ssl_session_tickets = false\n"
             "trusted_ips = 10.0.0.0/8, ::1\n"
             "worker_processes = 3\n"
             "ssl_protocols = TLSv1.3\n",
             fx->cert, fx->key);
    assert_int_equal(load(fx, text, ST_PLANE_CP, &c, &err), 0);
    assert_int_equal(c.log_level, ST_LOG_DEBUG);
    assert_int_equal(c.pg_port, 6543);
    assert_string_equal(c.pg_password, "pa#ss");
    assert_string_equal(c.cluster_dp_labels, "region:eu,zone:a");
    assert_string_equal(c.sqlite_path, "/usr/local/strait/data/s.db");
    assert_string_equal(c.pg_user, "second");
    assert_string_equal(c.cluster_cert, fx->cert);
    assert_int_equal(c.cluster_mtls, ST_MTLS_SHARED);
    assert_int_equal(c.cluster_max_payload, 4194304);
    assert_int_equal(c.cluster_data_plane_purge_delay, 60);
    assert_true(c.admin_allow_insecure);
    assert_true(c.pg_ssl);
    assert_false(c.ssl_session_tickets);
    assert_string_equal(c.trusted_ips, "10.0.0.0/8, ::1");
    assert_int_equal(c.worker_processes, 3);
    assert_string_equal(c.ssl_protocols, "TLSv1.3");
    st_conf_fini(&c);
}

static void
test_env_wins(void **state)
{
    struct fixture *fx = *state;
    struct st_conf c;
    struct st_err err;

    setenv("STRAIT_LOG_LEVEL", "warn", 1);
    setenv("STRAIT_PG_PORT", " 7000 ", 1);
    setenv("STRAIT_PREFIX", "/opt/st", 1);
    setenv("STRAIT_SQLITE_PATH", "/var/lib/strait.db", 1);
    /* not a key: never read, never an unknown-key error */
    setenv("STRAIT_NOT_A_KEY", "1", 1);
    setenv("STRAIT_TEST_CORRUPT_SNAPSHOT", "1", 1);
    assert_int_equal(
        load(fx, "cluster_mtls = off\nlog_level = debug\npg_port = 6000\n", ST_PLANE_CP, &c, &err),
        0);
    assert_int_equal(c.log_level, ST_LOG_WARN);
    assert_int_equal(c.pg_port, 7000);
    assert_string_equal(c.prefix, "/opt/st");
    assert_string_equal(c.sqlite_path, "/var/lib/strait.db");
    st_conf_fini(&c);

    /* -p wins over STRAIT_PREFIX */
    write_text(fx->conf, "cluster_mtls = off\n");
    assert_int_equal(st_conf_load(&c, fx->conf, "/p", ST_PLANE_CP, &err), 0);
    assert_string_equal(c.prefix, "/p");
    st_conf_fini(&c);

    /* a bad environment value names the variable */
    setenv("STRAIT_LOG_LEVEL", "loud", 1);
    expect_error(fx, "log_level = debug\n", ST_PLANE_CP, "log_level",
                 "STRAIT_LOG_LEVEL: 'loud' is not one of: debug, info, notice, warn, error, "
                 "crit, alert, emerg");
}

static void
test_unknown_key(void **state)
{
    struct fixture *fx = *state;

    expect_error(fx, "# x\nlog_level = info\nfoo_bar = 1\n", ST_PLANE_CP, "foo_bar",
                 "strait.conf:3: foo_bar: unknown configuration key");
    expect_error(fx, "Log_Level = info\n", ST_PLANE_DP, "Log_Level",
                 "strait.conf:1: Log_Level: unknown configuration key");
    expect_error(fx, "\n\njust words\n", ST_PLANE_CP, "",
                 "strait.conf:3: expected 'key = value', got 'just words'");
    expect_error(fx, "= 3\n", ST_PLANE_CP, "", "strait.conf:1: expected 'key = value'");
}

static void
test_bad_values(void **state)
{
    struct fixture *fx = *state;
    static const struct {
        const char *text, *field, *msg;
    } cases[] = {
        {"cluster_mtls = off\n\npg_port = 70000\n", "pg_port",
         "strait.conf:3: pg_port: must be between 1 and 65535"},
        {"cluster_mtls = off\npg_port = 12ab\n", "pg_port",
         "strait.conf:2: pg_port: '12ab' is not a number"},
        {"cluster_mtls = off\npg_port =\n", "pg_port", "strait.conf:2: pg_port: empty value"},
        {"cluster_mtls = off\npg_ssl = yes\n", "pg_ssl",
         "strait.conf:2: pg_ssl: 'yes' is not a boolean (on, off, true, false)"},
        {"cluster_mtls = off\ncluster_max_payload = 4194303\n", "cluster_max_payload",
         "strait.conf:2: cluster_max_payload: must be 4194304 (4MB) or greater"},
        {"cluster_mtls = off\ncluster_max_payload = 2147483648\n", "cluster_max_payload",
         "strait.conf:2: cluster_max_payload: must be between 4194304 and 2147483647"},
        {"cluster_mtls = off\ncluster_data_plane_purge_delay = 59\n",
         "cluster_data_plane_purge_delay",
         "strait.conf:2: cluster_data_plane_purge_delay: must be 60 or greater"},
        {"cluster_mtls = sometimes\n", "cluster_mtls",
         "strait.conf:1: cluster_mtls: 'sometimes' is not one of: shared, pki, off"},
        {"cluster_mtls = off\nworker_processes = 0\n", "worker_processes",
         "strait.conf:2: worker_processes: '0' is not auto or a number between 1 and 512"},
        {"cluster_mtls = off\ncluster_heartbeat = 0\n", "cluster_heartbeat",
         "strait.conf:2: cluster_heartbeat: must be between 1 and 3600"},
        {"cluster_mtls = off\npg_ssl_verify = on\n", "pg_ssl_verify",
         "strait.conf:2: pg_ssl_verify: needs pg_ssl = on"},
        {"cluster_mtls = off\npg_ssl = on\npg_ssl_ca = /nonexistent.pem\n", "pg_ssl_ca",
         "strait.conf:3: pg_ssl_ca: needs pg_ssl_verify = on"},
        {"cluster_mtls = off\ndatabase = mysql\n", "database",
         "strait.conf:2: database: 'mysql' is not one of: sqlite, postgres"},
        {"cluster_mtls = off\ntrusted_ips = 10.0.0.0/8, 10.0.0.0/33\n", "trusted_ips",
         "strait.conf:2: trusted_ips: '10.0.0.0/33' is not an IP address or CIDR block"},
        {"cluster_mtls = off\nssl_protocols = SSLv3\n", "ssl_protocols",
         "strait.conf:2: ssl_protocols: unknown protocol 'SSLv3'"},
        {"cluster_mtls = off\nssl_cipher_suite = weak\n", "ssl_cipher_suite",
         "strait.conf:2: ssl_cipher_suite: 'weak' is not one of"},
        {"cluster_mtls = off\nprefix =\n", "prefix", "strait.conf:2: prefix: empty value"},
        {"cluster_mtls = off\ndns_resolver = 127.0.0.1:53, dns.example:53\n", "dns_resolver",
         "strait.conf:2: dns_resolver: 'dns.example:53' is not an IP address with an optional "
         ":port"},
        {"cluster_mtls = off\ndns_resolver = 127.0.0.1:0\n", "dns_resolver",
         "strait.conf:2: dns_resolver: '127.0.0.1:0' is not an IP address"},
        {"cluster_mtls = off\ndns_resolver = 127.0.0.1,,::1\n", "dns_resolver",
         "strait.conf:2: dns_resolver: entry 2 of the list is empty"},
        {"cluster_mtls = off\ndns_order = LAST,MX\n", "dns_order",
         "strait.conf:2: dns_order: 'MX' is not one of LAST, SRV, A, AAAA, CNAME"},
        {"cluster_mtls = off\ndns_order = A,a\n", "dns_order",
         "strait.conf:2: dns_order: 'a' is listed twice"},
        {"cluster_mtls = off\ndns_valid_ttl = 0\n", "dns_valid_ttl",
         "strait.conf:2: dns_valid_ttl: must be 1 or greater"},
        {"cluster_mtls = off\ndns_stale_ttl = -1\n", "dns_stale_ttl",
         "strait.conf:2: dns_stale_ttl: must be 0 or greater"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        expect_error(fx, cases[i].text, ST_PLANE_CP, cases[i].field, cases[i].msg);
    }
}

/* Kong's DNS keys: name servers with or without a port, record types in any case. */
static void
test_dns_keys(void **state)
{
    struct fixture *fx = *state;
    struct st_conf c;
    struct st_err err;

    assert_int_equal(load(fx,
                          "cluster_mtls = off\ncluster_control_plane = cp.example:8005\n"
                          "dns_resolver = 127.0.0.1:5353 , [::1]:53,::1\n"
                          "dns_order = last, srv ,A\ndns_valid_ttl = 7\n",
                          ST_PLANE_DP, &c, &err),
                     0);
    assert_string_equal(c.dns_resolver, "127.0.0.1:5353,[::1]:53,::1");
    assert_string_equal(c.dns_order, "last,srv,A");
    assert_int_equal(c.dns_valid_ttl, 7);
    st_conf_fini(&c);
}

static void
test_listen_keys(void **state)
{
    struct fixture *fx = *state;
    struct st_conf c;
    struct st_err err;

    assert_int_equal(load(fx,
                          "cluster_mtls = off\ncluster_control_plane = cp.example:8005\n"
                          "stream_listen = 0.0.0.0:5555, [::1]:5556 reuseport backlog=64\n"
                          "status_listen = off\n",
                          ST_PLANE_DP, &c, &err),
                     0);
    assert_int_equal(c.stream_listen.n, 2);
    assert_string_equal(c.stream_listen.v[0].text, "0.0.0.0:5555");
    assert_int_equal(port_of(&c.stream_listen.v[0]), 5555);
    assert_string_equal(c.stream_listen.v[1].text, "[::1]:5556");
    assert_int_equal(c.stream_listen.v[1].flags, ST_LISTEN_F_REUSEPORT);
    assert_int_equal(c.stream_listen.v[1].backlog, 64);
    assert_int_equal(c.status_listen.n, 0);
    assert_string_equal(c.cluster_control_plane, "cp.example:8005");
    st_conf_fini(&c);

    expect_error(fx,
                 "cluster_mtls = off\n# 2\n# 3\n# 4\n# 5\n# 6\n# 7\n# 8\n# 9\n# 10\n# 11\n"
                 "stream_listen = 0.0.0.0:5555 sssl\n",
                 ST_PLANE_DP, "stream_listen",
                 "strait.conf:12: stream_listen: unknown flag 'sssl'");
    expect_error(fx, "cluster_mtls = off\nstream_listen = 0.0.0.0:5555 udp\n", ST_PLANE_DP,
                 "stream_listen",
                 "strait.conf:2: stream_listen: the 'udp' flag is not supported yet");
    /* ssl listeners terminate or pass TLS through */
    assert_int_equal(load(fx,
                          "cluster_mtls = off\ncluster_control_plane = cp.example:8005\n"
                          "stream_listen = 0.0.0.0:5555, 0.0.0.0:5556 ssl\nstatus_listen = off\n",
                          ST_PLANE_DP, &c, &err),
                     0);
    assert_int_equal(c.stream_listen.v[0].flags, 0);
    assert_int_equal(c.stream_listen.v[1].flags, ST_LISTEN_F_SSL);
    st_conf_fini(&c);
    expect_error(fx, "cluster_mtls = off\nstream_listen = 0.0.0.0:5555 proxy_protocol\n",
                 ST_PLANE_DP, "stream_listen",
                 "strait.conf:2: stream_listen: the 'proxy_protocol' flag is not supported yet");
    /* ssl is an admin_listen flag only (test_admin_security) */
    expect_error(fx, "cluster_mtls = off\nstatus_listen = 127.0.0.1:8444 ssl\n", ST_PLANE_DP,
                 "status_listen",
                 "strait.conf:2: status_listen: the 'ssl' flag is not supported yet");
    expect_error(fx, "cluster_mtls = off\ncluster_listen = 127.0.0.1:8005 ssl\n", ST_PLANE_CP,
                 "cluster_listen",
                 "strait.conf:2: cluster_listen: the 'ssl' flag is not supported yet");
    expect_error(fx, "cluster_mtls = off\nadmin_listen = 127.0.0.1:8444 ssl http2\n", ST_PLANE_CP,
                 "admin_listen",
                 "strait.conf:2: admin_listen: the 'http2' flag is not supported yet");
    expect_error(fx, "cluster_mtls = off\nstream_listen = 0.0.0.0:0\n", ST_PLANE_DP,
                 "stream_listen", "strait.conf:2: stream_listen: bad port in '0.0.0.0:0'");
    expect_error(fx, "cluster_mtls = off\nstatus_listen =\n", ST_PLANE_DP, "status_listen",
                 "strait.conf:2: status_listen: empty value");

    /* the environment names itself */
    setenv("STRAIT_STREAM_LISTEN", "0.0.0.0:5555 udp", 1);
    expect_error(fx, "cluster_mtls = off\n", ST_PLANE_DP, "stream_listen",
                 "STRAIT_STREAM_LISTEN: the 'udp' flag is not supported yet");
}

/* cluster_mtls = pki (issue 7): the pair as in shared mode, and a readable
 * cluster_ca_cert (Kong's message, at the line that asked for pki), on both planes. */
static void
test_cluster_mtls_pki(void **state)
{
    struct fixture *fx = *state;
    static const enum st_plane planes[] = {ST_PLANE_CP, ST_PLANE_DP};
    struct st_conf c;
    struct st_err err;
    char text[768];

    for (size_t i = 0; i < 2; i++) {
        snprintf(text, sizeof(text),
                 "cluster_control_plane = 127.0.0.1:8005\ncluster_mtls = pki\n"
                 "cluster_cert = %s\ncluster_cert_key = %s\n",
                 fx->cert, fx->key);
        expect_error(fx, text, planes[i], "cluster_mtls",
                     "strait.conf:2: cluster_mtls: cluster_ca_cert must be specified when "
                     "cluster_mtls = \"pki\"");
        /* the pair is checked first, with the same message as in shared mode */
        expect_error(fx,
                     "cluster_control_plane = 127.0.0.1:8005\ncluster_mtls = pki\n"
                     "cluster_ca_cert = /nonexistent/ca.crt\n",
                     planes[i], "cluster_cert",
                     "cluster_cert: cluster certificate and key must be provided to use Hybrid "
                     "mode");
        snprintf(text, sizeof(text),
                 "cluster_control_plane = 127.0.0.1:8005\ncluster_mtls = pki\n"
                 "cluster_cert = %s\ncluster_cert_key = %s\ncluster_ca_cert = %s/no-ca.crt\n",
                 fx->cert, fx->key, fx->dir);
        expect_error(fx, text, planes[i], "cluster_ca_cert",
                     "strait.conf:5: cluster_ca_cert: no file at: ");
        snprintf(text, sizeof(text),
                 "cluster_control_plane = 127.0.0.1:8005\ncluster_mtls = pki\n"
                 "cluster_cert = %s\ncluster_cert_key = %s\ncluster_ca_cert = %s\n"
                 "cluster_server_name = cp.example\n",
                 fx->cert, fx->key, fx->cert);
        assert_int_equal(load(fx, text, planes[i], &c, &err), 0);
        assert_int_equal(c.cluster_mtls, ST_MTLS_PKI);
        assert_string_equal(c.cluster_ca_cert, fx->cert);
        assert_string_equal(c.cluster_server_name, "cp.example");
        st_conf_fini(&c);
    }
    /* the environment asks for pki as well as the file does */
    setenv("STRAIT_CLUSTER_MTLS", "pki", 1);
    snprintf(text, sizeof(text), "cluster_cert = %s\ncluster_cert_key = %s\n", fx->cert, fx->key);
    expect_error(fx, text, ST_PLANE_CP, "cluster_mtls",
                 "STRAIT_CLUSTER_MTLS: cluster_ca_cert must be specified when cluster_mtls = "
                 "\"pki\"");
    unsetenv("STRAIT_CLUSTER_MTLS");
    /* off needs none of the files; shared ignores cluster_ca_cert */
    assert_int_equal(load(fx, "cluster_mtls = off\ncluster_ca_cert = /nonexistent/ca.crt\n",
                          ST_PLANE_CP, &c, &err),
                     0);
    st_conf_fini(&c);
    snprintf(text, sizeof(text),
             "cluster_cert = %s\ncluster_cert_key = %s\ncluster_ca_cert = /nonexistent/ca.crt\n",
             fx->cert, fx->key);
    assert_int_equal(load(fx, text, ST_PLANE_CP, &c, &err), 0);
    assert_int_equal(c.cluster_mtls, ST_MTLS_SHARED);
    st_conf_fini(&c);
}

static void
test_plane_requirements(void **state)
{
    struct fixture *fx = *state;
    struct st_conf c;
    struct st_err err;
    char text[512];

    /* shared mTLS (the default) needs the pair, on both planes */
    expect_error(fx, "cluster_control_plane = 127.0.0.1:8005\n", ST_PLANE_DP, "cluster_cert",
                 "cluster_cert: cluster certificate and key must be provided to use Hybrid mode");
    snprintf(text, sizeof(text), "cluster_cert = %s\n", fx->cert);
    expect_error(fx, text, ST_PLANE_CP, "cluster_cert_key",
                 "cluster_cert_key: cluster certificate and key must be provided to use Hybrid "
                 "mode");
    snprintf(text, sizeof(text), "cluster_cert = %s/missing.crt\ncluster_cert_key = %s\n", fx->dir,
             fx->key);
    expect_error(fx, text, ST_PLANE_CP, "cluster_cert",
                 "strait.conf:1: cluster_cert: no file at: ");

    snprintf(text, sizeof(text),
             "cluster_cert = %s\ncluster_cert_key = %s\ncluster_control_plane = "
             "[::1]:8005\n",
             fx->cert, fx->key);
    assert_int_equal(load(fx, text, ST_PLANE_DP, &c, &err), 0);
    assert_int_equal(c.cluster_mtls, ST_MTLS_SHARED);
    st_conf_fini(&c);

    /* a DP needs its control plane; a CP does not */
    expect_error(fx, "cluster_mtls = off\n", ST_PLANE_DP, "cluster_control_plane",
                 "cluster_control_plane: must be set on a data plane");
    expect_error(fx, "cluster_mtls = off\ncluster_control_plane = nohost\n", ST_PLANE_DP,
                 "cluster_control_plane",
                 "strait.conf:2: cluster_control_plane: 'nohost' is not host:port");
    /* a failover list: trimmed and joined; a bad list names its bad entry */
    assert_int_equal(load(fx,
                          "cluster_mtls = off\ncluster_control_plane = a:1, [::1]:8005 ,"
                          "cp-2.example:8005\n",
                          ST_PLANE_DP, &c, &err),
                     0);
    assert_string_equal(c.cluster_control_plane, "a:1,[::1]:8005,cp-2.example:8005");
    st_conf_fini(&c);
    expect_error(fx, "cluster_mtls = off\ncluster_control_plane = a:1,,b:2\n", ST_PLANE_DP,
                 "cluster_control_plane",
                 "strait.conf:2: cluster_control_plane: entry 2 of the list is empty "
                 "(host:port[,host:port...])");
    expect_error(fx, "cluster_mtls = off\ncluster_control_plane = a:1, b:2,\n", ST_PLANE_DP,
                 "cluster_control_plane",
                 "strait.conf:2: cluster_control_plane: entry 3 of the list is empty");
    expect_error(fx, "cluster_mtls = off\ncluster_control_plane = a:1, b\n", ST_PLANE_DP,
                 "cluster_control_plane",
                 "strait.conf:2: cluster_control_plane: 'b' is not host:port (port 1-65535)");
    expect_error(fx, "cluster_mtls = off\ncluster_control_plane = a:1, b:70000\n", ST_PLANE_DP,
                 "cluster_control_plane",
                 "strait.conf:2: cluster_control_plane: 'b:70000' is not host:port");
    expect_error(fx, "cluster_mtls = off\ncluster_control_plane = a:1;b:2\n", ST_PLANE_DP,
                 "cluster_control_plane",
                 "strait.conf:2: cluster_control_plane: 'a:1;b:2' is not host:port");
    expect_error(fx, "cluster_mtls = off\ncluster_control_plane = a:1, b:2, a:1\n", ST_PLANE_DP,
                 "cluster_control_plane",
                 "strait.conf:2: cluster_control_plane: 'a:1' is listed twice");
    setenv("STRAIT_CLUSTER_CONTROL_PLANE", "a:1,b:2,", 1);
    expect_error(fx, "cluster_mtls = off\n", ST_PLANE_DP, "cluster_control_plane",
                 "STRAIT_CLUSTER_CONTROL_PLANE: entry 3 of the list is empty");
    setenv("STRAIT_CLUSTER_CONTROL_PLANE", "b:2 , a:1", 1);
    assert_int_equal(load(fx, "cluster_mtls = off\n", ST_PLANE_DP, &c, &err), 0);
    assert_string_equal(c.cluster_control_plane, "b:2,a:1");
    st_conf_fini(&c);
    unsetenv("STRAIT_CLUSTER_CONTROL_PLANE");
    assert_int_equal(load(fx, "cluster_mtls = off\n", ST_PLANE_CP, &c, &err), 0);
    st_conf_fini(&c);

    /* the CP's own checks do not apply to a DP */
    expect_error(fx, "cluster_mtls = off\ncluster_listen = off\n", ST_PLANE_CP, "cluster_listen",
                 "strait.conf:2: cluster_listen: must be set on a control plane");
    assert_int_equal(load(fx,
                          "cluster_mtls = off\ncluster_listen = off\ncluster_control_plane = "
                          "127.0.0.1:8005\n",
                          ST_PLANE_DP, &c, &err),
                     0);
    st_conf_fini(&c);

    /* a non-loopback admin API needs the explicit opt-in */
    expect_error(fx, "cluster_mtls = off\nadmin_listen = 127.0.0.1:8001, 0.0.0.0:8002\n",
                 ST_PLANE_CP, "admin_listen",
                 "strait.conf:2: admin_listen: 0.0.0.0:8002 is not a loopback address");
    assert_int_equal(load(fx,
                          "cluster_mtls = off\nadmin_listen = 0.0.0.0:8001\n"
                          "admin_allow_insecure = on\n",
                          ST_PLANE_CP, &c, &err),
                     0);
    st_conf_fini(&c);
}

/* Loads text (CP plane) that must succeed; the caller finishes c. */
static void
expect_ok(struct fixture *fx, const char *text, struct st_conf *c)
{
    struct st_err err;

    if (load(fx, text, ST_PLANE_CP, c, &err) != 0) {
        fail_msg("unexpected error '%s' for:\n%s", err.msg, text);
    }
}

/* issue 5, point 4: ssl admin listeners, admin_token, admin_ssl_client_ca, and the
 * start-up refusal of an exposed admin API unless admin_allow_insecure. */
static void
test_admin_security(void **state)
{
    struct fixture *fx = *state;
    struct st_conf c;
    const char *missing = NULL;
    char text[1024];

    /* each listener with or without ssl; ssl needs the pair, and the files */
    expect_error(fx, "cluster_mtls = off\nadmin_listen = 127.0.0.1:8001, 127.0.0.1:8444 ssl\n",
                 ST_PLANE_CP, "admin_ssl_cert",
                 "admin_ssl_cert: admin_ssl_cert and admin_ssl_cert_key must be set when an "
                 "admin_listen entry has the ssl flag");
    snprintf(text, sizeof(text),
             "cluster_mtls = off\nadmin_listen = 127.0.0.1:8444 ssl\nadmin_ssl_cert = %s\n",
             fx->cert);
    expect_error(fx, text, ST_PLANE_CP, "admin_ssl_cert_key",
                 "admin_ssl_cert_key: admin_ssl_cert and admin_ssl_cert_key must be set");
    snprintf(text, sizeof(text),
             "cluster_mtls = off\nadmin_listen = 127.0.0.1:8444 ssl\n"
             "admin_ssl_cert = %s/missing.crt\nadmin_ssl_cert_key = %s\n",
             fx->dir, fx->key);
    expect_error(fx, text, ST_PLANE_CP, "admin_ssl_cert",
                 "strait.conf:3: admin_ssl_cert: no file at: ");
    snprintf(text, sizeof(text),
             "cluster_mtls = off\nadmin_listen = 127.0.0.1:8001, [::1]:8444 ssl\n"
             "admin_ssl_cert = %s\nadmin_ssl_cert_key = %s\n",
             fx->cert, fx->key);
    expect_ok(fx, text, &c);
    assert_int_equal(c.admin_listen.n, 2);
    assert_int_equal(c.admin_listen.v[0].flags, 0);
    assert_int_equal(c.admin_listen.v[1].flags, ST_LISTEN_F_SSL);
    assert_string_equal(c.admin_ssl_cert, fx->cert);
    assert_string_equal(c.admin_ssl_cert_key, fx->key);
    assert_false(st_conf_admin_is_exposed(&c, &c.admin_listen.v[0], &missing));
    assert_false(st_conf_admin_is_exposed(&c, &c.admin_listen.v[1], &missing));
    st_conf_fini(&c);
    /* the pair without an ssl listener is harmless */
    snprintf(text, sizeof(text), "cluster_mtls = off\nadmin_ssl_cert = %s/missing.crt\n", fx->dir);
    expect_ok(fx, text, &c);
    st_conf_fini(&c);

    /* client certificates are checked on ssl listeners only */
    snprintf(text, sizeof(text), "cluster_mtls = off\nadmin_ssl_client_ca = %s\n", fx->cert);
    expect_error(fx, text, ST_PLANE_CP, "admin_ssl_client_ca",
                 "strait.conf:2: admin_ssl_client_ca: needs an admin_listen entry with the ssl "
                 "flag");
    snprintf(text, sizeof(text),
             "cluster_mtls = off\nadmin_listen = 127.0.0.1:8444 ssl\nadmin_ssl_cert = %s\n"
             "admin_ssl_cert_key = %s\nadmin_ssl_client_ca = %s/nope.pem\n",
             fx->cert, fx->key, fx->dir);
    expect_error(fx, text, ST_PLANE_CP, "admin_ssl_client_ca",
                 "strait.conf:5: admin_ssl_client_ca: no file at: ");

    /* a non-loopback listener: one line naming it, what it lacks and the way out */
    expect_error(fx, "cluster_mtls = off\nadmin_listen = 127.0.0.1:8001, 0.0.0.0:8002\n",
                 ST_PLANE_CP, "admin_listen",
                 "strait.conf:2: admin_listen: 0.0.0.0:8002 is not a loopback address and lacks "
                 "the ssl flag and admin_token or admin_ssl_client_ca (set admin_allow_insecure "
                 "= on to allow it anyway)");
    expect_error(fx, "cluster_mtls = off\nadmin_listen = [::]:8002\nadmin_token = abc\n",
                 ST_PLANE_CP, "admin_listen",
                 "strait.conf:2: admin_listen: [::]:8002 is not a loopback address and lacks "
                 "the ssl flag (set admin_allow_insecure = on to allow it anyway)");
    snprintf(text, sizeof(text),
             "cluster_mtls = off\nadmin_listen = 10.1.2.3:8444 ssl\nadmin_ssl_cert = %s\n"
             "admin_ssl_cert_key = %s\n",
             fx->cert, fx->key);
    expect_error(fx, text, ST_PLANE_CP, "admin_listen",
                 "strait.conf:2: admin_listen: 10.1.2.3:8444 is not a loopback address and lacks "
                 "admin_token or admin_ssl_client_ca (set admin_allow_insecure = on to allow it "
                 "anyway)");
    /* ssl and a token, or ssl and a client CA: allowed */
    snprintf(text, sizeof(text),
             "cluster_mtls = off\nadmin_listen = 127.0.0.1:8001, 0.0.0.0:8444 ssl\n"
             "admin_ssl_cert = %s\nadmin_ssl_cert_key = %s\nadmin_token = s3cret\n",
             fx->cert, fx->key);
    expect_ok(fx, text, &c);
    assert_false(st_conf_admin_is_exposed(&c, &c.admin_listen.v[1], NULL));
    st_conf_fini(&c);
    snprintf(text, sizeof(text),
             "cluster_mtls = off\nadmin_listen = 0.0.0.0:8444 ssl\n"
             "admin_ssl_cert = %s\nadmin_ssl_cert_key = %s\nadmin_ssl_client_ca = %s\n",
             fx->cert, fx->key, fx->cert);
    expect_ok(fx, text, &c);
    assert_string_equal(c.admin_ssl_client_ca, fx->cert);
    assert_null(c.admin_token);
    st_conf_fini(&c);
    /* ... but a client CA does not protect a plain listener */
    snprintf(text, sizeof(text),
             "cluster_mtls = off\nadmin_listen = 0.0.0.0:8001, 127.0.0.1:8444 ssl\n"
             "admin_ssl_cert = %s\nadmin_ssl_cert_key = %s\nadmin_ssl_client_ca = %s\n",
             fx->cert, fx->key, fx->cert);
    expect_error(fx, text, ST_PLANE_CP, "admin_listen",
                 "strait.conf:2: admin_listen: 0.0.0.0:8001 is not a loopback address and lacks "
                 "the ssl flag (set");

    /* the opt-out: loads, and the listener still reports itself exposed (cp_http warns) */
    expect_ok(fx, "cluster_mtls = off\nadmin_listen = 0.0.0.0:8001\nadmin_allow_insecure = on\n",
              &c);
    assert_true(c.admin_allow_insecure);
    assert_true(st_conf_admin_is_exposed(&c, &c.admin_listen.v[0], &missing));
    assert_string_equal(missing, "the ssl flag and admin_token or admin_ssl_client_ca");
    st_conf_fini(&c);

    /* loopback, IPv4-mapped included, needs nothing */
    expect_ok(fx,
              "cluster_mtls = off\nadmin_listen = 127.0.0.2:8001, [::1]:8002, "
              "[::ffff:127.0.0.1]:8003\n",
              &c);
    for (size_t i = 0; i < c.admin_listen.n; i++) {
        assert_false(st_conf_admin_is_exposed(&c, &c.admin_listen.v[i], NULL));
    }
    st_conf_fini(&c);

    /* the token: a header value, from the file or the environment; empty means unset */
    expect_error(fx, "cluster_mtls = off\nadmin_token = two words\n", ST_PLANE_CP, "admin_token",
                 "strait.conf:2: admin_token: only visible ASCII characters are allowed");
    expect_ok(fx, "cluster_mtls = off\nadmin_token =\n", &c);
    assert_null(c.admin_token);
    st_conf_fini(&c);
    setenv("STRAIT_ADMIN_TOKEN", "from-env", 1);
    expect_ok(fx, "cluster_mtls = off\nadmin_token = from-file\n", &c);
    assert_string_equal(c.admin_token, "from-env");
    st_conf_fini(&c);
}

static void
test_failure_leaves_nothing(void **state)
{
    struct fixture *fx = *state;
    struct st_conf c;
    struct st_err err;

    memset(&c, 0xa5, sizeof(c));
    assert_int_equal(
        load(fx, "cluster_mtls = off\nlog_level = debug\npg_port = 0\n", ST_PLANE_CP, &c, &err),
        -ST_ECONF);
    assert_null(c.raw);
    assert_null(c.prefix);
    assert_null(c.database);
    assert_int_equal(c.admin_listen.n, 0);
    assert_null(c.admin_listen.v);
    assert_int_equal(c.log_level, 0);
    st_conf_fini(&c); /* harmless on the zeroed struct */
}

static void
test_raw_and_secrets(void **state)
{
    struct fixture *fx = *state;
    struct st_conf c;
    struct st_err err;
    const char *name, *value;
    bool secret, seen_pw = false, seen_level = false, seen_key = false, seen_sqlite = false;
    bool seen_token = false;
    size_t i;
    char text[512];

    snprintf(text, sizeof(text),
             "cluster_cert = %s\ncluster_cert_key = %s\npg_password = s3cret\n"
             "log_level = info\nadmin_token = t0ken-value\n",
             fx->cert, fx->key);
    assert_int_equal(load(fx, text, ST_PLANE_CP, &c, &err), 0);
    for (i = 0; (name = st_conf_key_at(&c, i, &value, &secret)) != NULL; i++) {
        if (strcmp(name, "pg_password") == 0) {
            seen_pw = true;
            assert_true(secret);
            assert_null(value);
            assert_string_equal(c.raw[i], "s3cret");
        } else if (strcmp(name, "cluster_cert_key") == 0 || strcmp(name, "ssl_cert_key") == 0 ||
                   strcmp(name, "admin_ssl_cert_key") == 0) {
            seen_key = true;
            assert_true(secret);
            assert_null(value);
        } else if (strcmp(name, "admin_token") == 0) {
            seen_token = true;
            assert_true(secret);
            assert_null(value);
            assert_string_equal(c.raw[i], "t0ken-value");
            assert_string_equal(c.admin_token, "t0ken-value");
        } else if (strcmp(name, "log_level") == 0) {
            seen_level = true;
            assert_false(secret);
            assert_string_equal(value, "info");
        } else if (strcmp(name, "sqlite_path") == 0) {
            seen_sqlite = true;
            assert_string_equal(value, "/usr/local/strait/strait.db");
        } else {
            assert_false(secret);
        }
    }
    assert_true(seen_pw && seen_level && seen_key && seen_sqlite && seen_token);
    assert_true(i > 30);
    assert_null(st_conf_key_at(&c, i, &value, &secret));
    st_conf_fini(&c);
}

static void
test_print_keys(void **state)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f;

    (void)state;
    f = open_memstream(&buf, &len);
    assert_non_null(f);
    st_conf_print_keys(f, ST_PLANE_DP);
    fclose(f);
    assert_non_null(strstr(buf, "  stream_listen = off "));
    assert_non_null(strstr(buf, "  cluster_mtls = shared "));
    assert_non_null(strstr(buf, "  log_level = notice "));
    assert_null(strstr(buf, "admin_listen"));
    assert_null(strstr(buf, "sqlite_path"));
    free(buf);

    f = open_memstream(&buf, &len);
    assert_non_null(f);
    st_conf_print_keys(f, ST_PLANE_CP);
    fclose(f);
    assert_non_null(strstr(buf, "  admin_listen = 127.0.0.1:8001 "));
    assert_non_null(strstr(buf, "  sqlite_path = PREFIX/strait.db "));
    assert_null(strstr(buf, "stream_listen"));
    free(buf);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dns_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_env_wins, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limit_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_listen_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plane_requirements, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cluster_mtls_pki, setup, teardown),
        cmocka_unit_test_setup_teardown(test_admin_security, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failure_leaves_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_raw_and_secrets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_print_keys, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
