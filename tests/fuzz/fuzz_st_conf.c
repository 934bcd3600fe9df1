/* libFuzzer target for the configuration loader (issue 14): strait.conf as st_conf_load
 * reads it from a file, and STRAIT_<KEY> environment values, for each plane. Every key's
 * converter runs on what the fuzzer writes: listen lists, host:port lists, CIDR lists,
 * integers, booleans, choices, tokens, paths under the prefix.
 *
 * The input is the file's text; after a NUL byte, lines "key=value" set STRAIT_<KEY> (the
 * key upper-cased) for this input only. The prefix is a temporary folder.
 * Besides memory errors and allocations beyond the run's limits, the target aborts when:
 *   - a refusal has no message, or leaves anything in the struct;
 *   - the loaded values, written back as a file ("key = value", '#' escaped) and loaded
 *     without the environment, do not load or give other values (the file format can say
 *     everything the environment can, but newlines). */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "st_conf.h"
#include "st_err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define ENV_MAX 16

extern char **environ;

/* The variables this input set, to unset after it. */
struct envs {
    char *names[ENV_MAX];
    size_t n;
};

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    /* only what the inputs set: none of the caller's STRAIT_* variables */
    for (size_t i = 0; environ[i] != NULL;) {
        if (strncmp(environ[i], "STRAIT_", 7) == 0) {
            char name[256];
            const char *eq = strchr(environ[i], '=');
            size_t n = eq != NULL ? (size_t)(eq - environ[i]) : strlen(environ[i]);

            snprintf(name, sizeof(name), "%.*s", (int)n, environ[i]);
            unsetenv(name);
            continue;
        }
        i++;
    }
    st_log_set_level(ST_LOG_EMERG);
    return 0;
}

static void
set_envs(struct fz_in *in, struct envs *e)
{
    while (in->p < in->end && e->n < ENV_MAX) {
        char *line = fz_field(in, '\n', NULL);
        char *eq = strchr(line, '=');
        char name[128];
        size_t n = 0;

        if (eq != NULL && eq > line && eq - line < 64) {
            *eq = '\0';
            n = (size_t)snprintf(name, sizeof(name), "STRAIT_");
            for (const char *k = line; *k != '\0' && n < sizeof(name) - 1; k++) {
                name[n++] = (char)toupper((unsigned char)*k);
            }
            name[n] = '\0';
            if (strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZ_0123456789") == n &&
                setenv(name, eq + 1, 1) == 0) {
                e->names[e->n++] = strdup(name);
            }
        }
        free(line);
    }
}

static void
unset_envs(struct envs *e)
{
    for (size_t i = 0; i < e->n; i++) {
        unsetenv(e->names[i]);
        free(e->names[i]);
    }
    e->n = 0;
}

static size_t
n_keys(const struct st_conf *c)
{
    const char *v;
    bool secret;
    size_t n = 0;

    while (st_conf_key_at(c, n, &v, &secret) != NULL) {
        n++;
    }
    return n;
}

/* Writes c's values as a conf file; false when one cannot be written (a newline). */
static bool
write_back(const struct st_conf *c, const char *path)
{
    FILE *f = fopen(path, "w");
    const char *v;
    bool secret, ok = true;

    if (f == NULL) {
        abort();
    }
    for (size_t i = 0; i < n_keys(c) && ok; i++) {
        const char *key = st_conf_key_at(c, i, &v, &secret);

        if (c->raw[i] == NULL) {
            continue;
        }
        ok = strchr(c->raw[i], '\n') == NULL;
        fprintf(f, "%s = ", key);
        for (const char *p = c->raw[i]; *p != '\0'; p++) {
            if (*p == '#') {
                fputc('\\', f);
            }
            fputc(*p, f);
        }
        fputc('\n', f);
    }
    if (fclose(f) != 0) {
        abort();
    }
    return ok;
}

static void
check_loaded(const struct st_conf *c, const char *dir, enum st_plane plane)
{
    struct st_conf again;
    struct st_err err = {0};
    char path[256];
    size_t n = n_keys(c);

    snprintf(path, sizeof(path), "%s/again.conf", dir);
    if (!write_back(c, path)) {
        return;
    }
    if (st_conf_load(&again, path, NULL, plane, &err) != 0) {
        abort();
    }
    for (size_t i = 0; i < n; i++) {
        if ((c->raw[i] == NULL) != (again.raw[i] == NULL) ||
            (c->raw[i] != NULL && strcmp(c->raw[i], again.raw[i]) != 0)) {
            abort();
        }
    }
    st_conf_fini(&again);
}

static void
load(const char *path, const char *dir, enum st_plane plane, struct envs *e)
{
    struct st_conf c;
    struct st_err err = {0};

    memset(&c, 0xa5, sizeof(c));
    if (st_conf_load(&c, path, dir, plane, &err) != 0) {
        if (err.msg[0] == '\0' || c.raw != NULL || c.prefix != NULL) {
            abort();
        }
        return;
    }
    unset_envs(e); /* the file written back must say it all alone */
    check_loaded(&c, dir, plane);
    st_conf_fini(&c);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const enum st_plane planes[] = {ST_PLANE_CP, ST_PLANE_DP};
    struct fz_in in = {data, data + size};
    const char *dir = fz_tmpdir();
    struct envs e = {0};
    size_t n;
    char *text = fz_field(&in, '\0', &n);
    char path[256];

    fz_write_file(dir, "strait.conf", text, n);
    snprintf(path, sizeof(path), "%s/strait.conf", dir);
    for (size_t i = 0; i < 2; i++) {
        struct fz_in env = in;

        set_envs(&env, &e);
        load(path, dir, planes[i], &e);
        unset_envs(&e);
    }
    free(text);
    return 0;
}
