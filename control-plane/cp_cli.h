/* strait-cp's command line: which command, with which options. No I/O beyond
 * printing the usage. */
#ifndef STRAIT_CP_CLI_H
#define STRAIT_CP_CLI_H

#include <stdbool.h>
#include <stdio.h>

struct st_err;

enum cp_cmd {
    CP_CMD_START = 0,
    CP_CMD_CHECK,
    CP_CMD_GEN_CERT,
    CP_CMD_MIGRATIONS,
    CP_CMD_CONFIG,
    CP_CMD_HELP,
    CP_CMD_VERSION,
};

struct cp_args {
    enum cp_cmd cmd;
    const char *conf_path;  /* -c, or NULL */
    const char *prefix;     /* -p, or NULL (the default) */
    const char *cert_path;  /* gen_cert */
    const char *key_path;   /* gen_cert */
    int days;               /* gen_cert --days */
    const char *subcommand; /* migrations bootstrap|up|finish|list|reset;
                             * config db_import|db_export|parse */
    const char *file;       /* config: the declarative file ("-": stdin/stdout) */
    bool yes;               /* migrations --yes / -y */
};

/* Parses argv (argv[0] is the program). Returns 0, or -ST_EPARSE with err->msg saying
 * what is wrong (the caller prints it and exits 2). Pointers point into argv. */
int cp_cli_parse(int argc, char **argv, struct cp_args *a, struct st_err *err);

/* Prints the usage: commands, options and the configuration keys of the CP. */
void cp_cli_usage(FILE *f);

#endif
