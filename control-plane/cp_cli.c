/* strait-cp argument parsing (see cp_cli.h and DESIGN.md "Command line"). */
#include "cp_cli.h"

#include <stdlib.h>
#include <string.h>

#include "st_conf.h"
#include "st_err.h"

#define CP_DEFAULT_DAYS 1095

static const char *const migration_cmds[] = {"bootstrap", "up", "finish", "list", "reset"};
static const char *const config_cmds[] = {"db_import", "db_export", "parse"};

void
cp_cli_usage(FILE *f)
{
    fprintf(f, "Usage: strait-cp COMMAND [OPTIONS]\n"
               "\n"
               "Commands:\n"
               "  start [-c FILE] [-p PREFIX]         run the control plane in the foreground\n"
               "  check [-c FILE] [-p PREFIX]         validate the configuration and exit\n"
               "  migrations bootstrap|up|finish|list|reset [--yes] [-c FILE]\n"
               "                                      database = postgres: create (bootstrap), "
               "upgrade (up, finish),\n"
               "                                      show (list: exit 3 when not "
               "bootstrapped, 5 when migrations\n"
               "                                      are pending) or drop (reset --yes) "
               "the schema; SQLite\n"
               "                                      migrates itself at start\n"
               "  config db_import FILE [-c FILE] [-p PREFIX]\n"
               "                                      load a declarative file (YAML or JSON, "
               "\"-\": stdin) into the\n"
               "                                      database in one transaction, all or "
               "nothing: as Kong, each\n"
               "                                      entity is upserted (by id, or by name "
               "when the file gives\n"
               "                                      no id); entities the file does not "
               "name are kept\n"
               "  config db_export FILE [-c FILE] [-p PREFIX]\n"
               "                                      write the database as a declarative "
               "YAML file (\"-\": stdout);\n"
               "                                      an existing FILE is not overwritten\n"
               "  config parse FILE                   validate a declarative file without "
               "loading it\n"
               "  cluster gen_cert [CERT KEY] [--days N]\n"
               "                                      write a cluster certificate pair "
               "(default ./cluster.crt ./cluster.key, 1095 days)\n"
               "\n"
               "Options:\n"
               "  -c FILE     strait.conf to load (every key can also be set as STRAIT_<KEY>)\n"
               "  -p PREFIX   working folder (default /usr/local/strait)\n"
               "  --help      this text\n"
               "  --version   print the version\n"
               "\n"
               "Configuration keys (control plane):\n");
    st_conf_print_keys(f, ST_PLANE_CP);
}

static int
parse_days(const char *v, int *days, struct st_err *err)
{
    char *end = NULL;
    long n = v != NULL ? strtol(v, &end, 10) : 0;

    if (v == NULL || *v == '\0' || *end != '\0' || n < 1 || n > 36500) {
        return st_err_set(err, -ST_EPARSE, "days", "--days needs a number of days (1-36500)");
    }
    *days = (int)n;
    return 0;
}

/* Options shared by every command; returns 1 when argv[*i] was one, 0 if not, <0 on error. */
static int
common_opt(int argc, char **argv, int *i, struct cp_args *a, struct st_err *err)
{
    const char *o = argv[*i];

    if (strcmp(o, "-c") == 0 || strcmp(o, "-p") == 0) {
        if (*i + 1 >= argc) {
            return st_err_set(err, -ST_EPARSE, NULL, "%s needs a value", o);
        }
        *(o[1] == 'c' ? &a->conf_path : &a->prefix) = argv[++*i];
        return 1;
    }
    if (strcmp(o, "--help") == 0 || strcmp(o, "-h") == 0) {
        a->cmd = CP_CMD_HELP;
        return 1;
    }
    if (strcmp(o, "--version") == 0 || strcmp(o, "-v") == 0) {
        a->cmd = CP_CMD_VERSION;
        return 1;
    }
    return 0;
}

static int
parse_gen_cert(int argc, char **argv, int i, struct cp_args *a, struct st_err *err)
{
    const char *pos[2] = {NULL, NULL};
    int npos = 0;
    int rc;

    for (; i < argc; i++) {
        if (strcmp(argv[i], "--days") == 0 || strcmp(argv[i], "-d") == 0) {
            rc = parse_days(i + 1 < argc ? argv[++i] : NULL, &a->days, err);
        } else if (strncmp(argv[i], "--days=", 7) == 0) {
            rc = parse_days(argv[i] + 7, &a->days, err);
        } else if ((rc = common_opt(argc, argv, &i, a, err)) != 0) {
            /* handled */
        } else if (argv[i][0] != '-' && npos < 2) {
            pos[npos++] = argv[i];
        } else {
            rc = st_err_set(err, -ST_EPARSE, NULL, "cluster gen_cert: unexpected '%s'", argv[i]);
        }
        if (rc < 0) {
            return rc;
        }
    }
    if (npos == 1) {
        return st_err_set(err, -ST_EPARSE, NULL,
                          "cluster gen_cert: give both CERT and KEY paths, or neither");
    }
    if (npos == 2) {
        a->cert_path = pos[0];
        a->key_path = pos[1];
    }
    return 0;
}

static int
parse_migrations(int argc, char **argv, int i, struct cp_args *a, struct st_err *err)
{
    int rc;

    for (; i < argc; i++) {
        if (strcmp(argv[i], "--yes") == 0 || strcmp(argv[i], "-y") == 0) {
            a->yes = true;
            continue;
        }
        rc = common_opt(argc, argv, &i, a, err);
        if (rc < 0) {
            return rc;
        }
        if (rc == 0 && a->subcommand == NULL) {
            for (size_t k = 0; k < sizeof(migration_cmds) / sizeof(migration_cmds[0]); k++) {
                if (strcmp(argv[i], migration_cmds[k]) == 0) {
                    a->subcommand = argv[i];
                }
            }
        }
        if (rc == 0 && a->subcommand != argv[i]) {
            return st_err_set(err, -ST_EPARSE, NULL, "migrations: unexpected '%s'", argv[i]);
        }
    }
    if (a->subcommand == NULL && a->cmd == CP_CMD_MIGRATIONS) {
        return st_err_set(err, -ST_EPARSE, NULL,
                          "migrations needs one of bootstrap, up, finish, list, reset");
    }
    return 0;
}

static int
parse_config(int argc, char **argv, int i, struct cp_args *a, struct st_err *err)
{
    for (; i < argc; i++) {
        int rc = strcmp(argv[i], "-") == 0 ? 0 : common_opt(argc, argv, &i, a, err);

        if (rc < 0) {
            return rc;
        }
        if (rc == 1) {
            continue;
        }
        if (a->subcommand == NULL) {
            for (size_t k = 0; k < sizeof(config_cmds) / sizeof(config_cmds[0]); k++) {
                if (strcmp(argv[i], config_cmds[k]) == 0) {
                    a->subcommand = argv[i];
                }
            }
            if (a->subcommand == NULL) {
                return st_err_set(err, -ST_EPARSE, NULL,
                                  "config: unknown command '%s' (db_import, db_export, parse)",
                                  argv[i]);
            }
        } else if (a->file == NULL && (argv[i][0] != '-' || argv[i][1] == '\0')) {
            a->file = argv[i];
        } else {
            return st_err_set(err, -ST_EPARSE, NULL, "config: unexpected '%s'", argv[i]);
        }
    }
    if (a->cmd != CP_CMD_CONFIG) {
        return 0; /* --help or --version */
    }
    if (a->subcommand == NULL) {
        return st_err_set(err, -ST_EPARSE, NULL, "config needs one of db_import, db_export, parse");
    }
    if (a->file == NULL) {
        return st_err_set(err, -ST_EPARSE, NULL, "config %s needs a FILE", a->subcommand);
    }
    return 0;
}

static int
parse_plain(int argc, char **argv, int i, struct cp_args *a, struct st_err *err)
{
    for (; i < argc; i++) {
        int rc = common_opt(argc, argv, &i, a, err);

        if (rc < 0) {
            return rc;
        }
        if (rc == 0) {
            return st_err_set(err, -ST_EPARSE, NULL, "unexpected argument '%s'", argv[i]);
        }
    }
    return 0;
}

int
cp_cli_parse(int argc, char **argv, struct cp_args *a, struct st_err *err)
{
    const char *cmd;

    memset(a, 0, sizeof(*a));
    a->cmd = CP_CMD_HELP;
    a->cert_path = "cluster.crt";
    a->key_path = "cluster.key";
    a->days = CP_DEFAULT_DAYS;
    if (argc < 2) {
        return st_err_set(err, -ST_EPARSE, NULL, "missing command (try --help)");
    }
    cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        return 0;
    }
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "-v") == 0 || strcmp(cmd, "version") == 0) {
        a->cmd = CP_CMD_VERSION;
        return 0;
    }
    if (strcmp(cmd, "start") == 0 || strcmp(cmd, "check") == 0) {
        a->cmd = cmd[0] == 's' ? CP_CMD_START : CP_CMD_CHECK;
        return parse_plain(argc, argv, 2, a, err);
    }
    if (strcmp(cmd, "migrations") == 0) {
        a->cmd = CP_CMD_MIGRATIONS;
        return parse_migrations(argc, argv, 2, a, err);
    }
    if (strcmp(cmd, "config") == 0) {
        a->cmd = CP_CMD_CONFIG;
        return parse_config(argc, argv, 2, a, err);
    }
    if (strcmp(cmd, "cluster") == 0) {
        if (argc < 3 || strcmp(argv[2], "gen_cert") != 0) {
            return st_err_set(err, -ST_EPARSE, NULL, "cluster: the command is gen_cert");
        }
        a->cmd = CP_CMD_GEN_CERT;
        return parse_gen_cert(argc, argv, 3, a, err);
    }
    return st_err_set(err, -ST_EPARSE, NULL, "unknown command '%s' (try --help)", cmd);
}
