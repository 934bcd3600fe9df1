/* cp_cli: strait-cp's command line, with the `config` commands (issue 5, point 3), and
 * the error text those commands print (cp_decl_error_text, cp_decl_store_msg: Kong's
 * pretty_print_error and kong/db/errors.lua messages). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cp_cli.h"
#include "cp_decl_load.h"
#include "st_err.h"

#define ARGC(a) ((int)(sizeof(a) / sizeof((a)[0])))

static void
test_config_commands(void **state)
{
    char *imp[] = {"strait-cp", "config", "db_import", "kong.yml", "-c", "s.conf", "-p", "/x"};
    char *exp[] = {"strait-cp", "config", "-p", "/y", "db_export", "-"};
    char *parse[] = {"strait-cp", "config", "parse", "f.json"};
    struct st_err err = {0};
    struct cp_args a;

    (void)state;
    assert_int_equal(cp_cli_parse(ARGC(imp), imp, &a, &err), 0);
    assert_int_equal(a.cmd, CP_CMD_CONFIG);
    assert_string_equal(a.subcommand, "db_import");
    assert_string_equal(a.file, "kong.yml");
    assert_string_equal(a.conf_path, "s.conf");
    assert_string_equal(a.prefix, "/x");

    assert_int_equal(cp_cli_parse(ARGC(exp), exp, &a, &err), 0);
    assert_string_equal(a.subcommand, "db_export");
    assert_string_equal(a.file, "-");
    assert_string_equal(a.prefix, "/y");

    assert_int_equal(cp_cli_parse(ARGC(parse), parse, &a, &err), 0);
    assert_string_equal(a.subcommand, "parse");
    assert_string_equal(a.file, "f.json");
    assert_null(a.conf_path);
}

static void
test_config_usage_errors(void **state)
{
    char *none[] = {"strait-cp", "config"};
    char *nofile[] = {"strait-cp", "config", "db_import"};
    char *unknown[] = {"strait-cp", "config", "init", "x"};
    char *two[] = {"strait-cp", "config", "parse", "a", "b"};
    char *opt[] = {"strait-cp", "config", "parse", "a", "--force"};
    char *novalue[] = {"strait-cp", "config", "parse", "a", "-c"};
    char *help[] = {"strait-cp", "config", "--help"};
    struct st_err err = {0};
    struct cp_args a;

    (void)state;
    assert_int_equal(cp_cli_parse(ARGC(none), none, &a, &err), -ST_EPARSE);
    assert_non_null(strstr(err.msg, "db_import, db_export, parse"));
    assert_int_equal(cp_cli_parse(ARGC(nofile), nofile, &a, &err), -ST_EPARSE);
    assert_string_equal(err.msg, "config db_import needs a FILE");
    assert_int_equal(cp_cli_parse(ARGC(unknown), unknown, &a, &err), -ST_EPARSE);
    assert_non_null(strstr(err.msg, "'init'"));
    assert_int_equal(cp_cli_parse(ARGC(two), two, &a, &err), -ST_EPARSE);
    assert_non_null(strstr(err.msg, "'b'"));
    assert_int_equal(cp_cli_parse(ARGC(opt), opt, &a, &err), -ST_EPARSE);
    assert_int_equal(cp_cli_parse(ARGC(novalue), novalue, &a, &err), -ST_EPARSE);
    assert_int_equal(cp_cli_parse(ARGC(help), help, &a, &err), 0);
    assert_int_equal(a.cmd, CP_CMD_HELP);
}

static void
test_usage_mentions_config(void **state)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    (void)state;
    assert_non_null(f);
    cp_cli_usage(f);
    fclose(f);
    assert_non_null(strstr(buf, "config db_import FILE"));
    assert_non_null(strstr(buf, "config db_export FILE"));
    assert_non_null(strstr(buf, "config parse FILE"));
    assert_non_null(strstr(buf, "not overwritten"));
    free(buf);
}

/* Kong's pretty_print_error, keys sorted, entries 1-based, clean entries skipped. */
static void
test_error_text(void **state)
{
    json_error_t jerr;
    json_t *e = json_loads("{\"code\":14,\"message\":\"declarative config is invalid: ...\","
                           "\"fields\":{\"services\":[null,{\"port\":\"value should be between 0 "
                           "and 65535\",\"host\":\"required field missing\"}],"
                           "\"_format_version\":\"required field missing\"}}",
                           0, &jerr);
    char *text;

    (void)state;
    assert_non_null(e);
    text = cp_decl_error_text(e);
    assert_string_equal(text, "in '_format_version': required field missing\n"
                              "in 'services':\n"
                              "  - in entry 2 of 'services':\n"
                              "    in 'host': required field missing\n"
                              "    in 'port': value should be between 0 and 65535");
    free(text);
    json_decref(e);

    e = json_pack("{s:i,s:s}", "code", 14, "message", "declarative config is invalid: boom");
    text = cp_decl_error_text(e);
    assert_string_equal(text, "declarative config is invalid: boom");
    free(text);
    json_decref(e);
}

static void
test_store_msg(void **state)
{
    struct st_err err = {0};
    char buf[512];

    (void)state;
    st_err_set(&err, -ST_EUNIQUE, "name", "gamma");
    cp_decl_store_msg(ST_ENT_SERVICE, -ST_EUNIQUE, &err, buf, sizeof(buf));
    assert_string_equal(buf, "UNIQUE violation detected on '{name=\"gamma\"}'");
    st_err_set(&err, -ST_EFOREIGN, "client_certificate", "0b5e1ba4-0000-4000-8000-000000000001");
    cp_decl_store_msg(ST_ENT_SERVICE, -ST_EFOREIGN, &err, buf, sizeof(buf));
    assert_string_equal(buf, "the foreign key '{id=\"0b5e1ba4-0000-4000-8000-000000000001\"}' "
                             "does not reference an existing 'certificates' entity.");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_commands),
        cmocka_unit_test(test_config_usage_errors),
        cmocka_unit_test(test_usage_mentions_config),
        cmocka_unit_test(test_error_text),
        cmocka_unit_test(test_store_msg),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
