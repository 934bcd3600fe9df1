/* Helpers the libFuzzer targets share (header only; not a target: tests/fuzz/CMakeLists.txt
 * registers fuzz_<name>.c files by name). Inputs are cut into fields with a cursor, so a
 * target reads "the next line" or "the next byte" without caring how much is left. */
#ifndef STRAIT_TESTS_FUZZ_UTIL_H
#define STRAIT_TESTS_FUZZ_UTIL_H

#include <dirent.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "cp_form.h"

/* A position in the input. */
struct fz_in {
    const uint8_t *p;
    const uint8_t *end;
};

/* The next byte, or 0 once the input is used up. */
__attribute__((unused)) static uint8_t
fz_byte(struct fz_in *in)
{
    return in->p < in->end ? *in->p++ : 0;
}

/* A new NUL-terminated copy of the bytes up to the next `sep` (consumed) or the end;
 * NUL bytes inside it stay, so C-string code sees a shorter string. The caller frees. */
__attribute__((unused)) static char *
fz_field(struct fz_in *in, uint8_t sep, size_t *len)
{
    const uint8_t *e = memchr(in->p, sep, (size_t)(in->end - in->p));
    size_t n = (size_t)((e != NULL ? e : in->end) - in->p);
    char *s = malloc(n + 1);

    if (s == NULL) {
        abort();
    }
    memcpy(s, in->p, n);
    s[n] = '\0';
    in->p += n + (e != NULL);
    if (len != NULL) {
        *len = n;
    }
    return s;
}

/* The rest of the input as a new NUL-terminated string. */
__attribute__((unused)) static char *
fz_rest(struct fz_in *in, size_t *len)
{
    size_t n = (size_t)(in->end - in->p);
    char *s = malloc(n + 1);

    if (s == NULL) {
        abort();
    }
    memcpy(s, in->p, n);
    s[n] = '\0';
    in->p = in->end;
    if (len != NULL) {
        *len = n;
    }
    return s;
}

static char fz_dir[64];

/* Removes the folder of fz_tmpdir() and the files in it (at exit). */
__attribute__((unused)) static void
fz_tmpdir_clean(void)
{
    DIR *d = opendir(fz_dir);
    struct dirent *e;
    char path[384];

    while (d != NULL && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            snprintf(path, sizeof(path), "%s/%s", fz_dir, e->d_name);
            unlink(path);
        }
    }
    if (d != NULL) {
        closedir(d);
    }
    rmdir(fz_dir);
}

/* A private temporary folder, made once per process and removed at exit (a crash
 * leaves it: /tmp/strait-fuzz.*). */
__attribute__((unused)) static const char *
fz_tmpdir(void)
{
    if (fz_dir[0] == '\0') {
        snprintf(fz_dir, sizeof(fz_dir), "/tmp/strait-fuzz.XXXXXX");
        if (mkdtemp(fz_dir) == NULL) {
            abort();
        }
        atexit(fz_tmpdir_clean);
    }
    return fz_dir;
}

/* Writes p[0..n) to dir/name (created 0600, truncated). */
__attribute__((unused)) static void
fz_write_file(const char *dir, const char *name, const void *p, size_t n)
{
    char path[256];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "wb");
    if (f == NULL || (n > 0 && fwrite(p, 1, n, f) != n) || fclose(f) != 0) {
        abort();
    }
}

/* --- requests as cp_http hands them to cp_admin (fuzz_cp_admin, fuzz_cp_paging) --- */

/* Percent-decodes s in place as cp_http's libmicrohttpd unescape callback does. */
__attribute__((unused)) static void
fz_http_unescape(char *s)
{
    (void)cp_form_url_unescape(s);
}

/* The query string q (modified) as cp_http's scan_arg makes it: cut at '&' and the first
 * '=', each part decoded, values kept as bytes. */
__attribute__((unused)) static json_t *
fz_http_query(char *q)
{
    json_t *o = json_object();

    while (q != NULL && *q != '\0') {
        char *amp = strchr(q, '&');
        char *eq;

        if (amp != NULL) {
            *amp = '\0';
        }
        eq = strchr(q, '=');
        if (eq != NULL) {
            *eq = '\0';
            fz_http_unescape(eq + 1);
        }
        fz_http_unescape(q);
        (void)json_object_set_new(
            o, q, json_stringn_nocheck(eq != NULL ? eq + 1 : "", eq != NULL ? strlen(eq + 1) : 0));
        q = amp != NULL ? amp + 1 : NULL;
    }
    return o;
}

#endif
