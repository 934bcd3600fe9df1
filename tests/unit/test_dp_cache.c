/* dp_cache (issue 14, defects 6 and 10): config.cache and strait.id are written 0600; a
 * symlink planted at the temporary's name is not followed (the write would otherwise land
 * in the symlink's target); the read limit follows cluster_max_payload, so whatever
 * snapshot the DP accepted it can read back, and a file over the limit is refused with
 * one line naming both sizes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dp_cache.h"
#include "st_err.h"

struct fx {
    char dir[64];
};

static int
setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/test_dp_cache.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    static const char *const names[] = {"config.cache", "config.cache.tmp", "strait.id", "victim"};
    struct fx *f = *state;
    char p[128];

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(p, sizeof(p), "%s/%s", f->dir, names[i]);
        unlink(p);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

static void
path_of(const struct fx *f, const char *name, char *out, size_t size)
{
    assert_true((size_t)snprintf(out, size, "%s/%s", f->dir, name) < size);
}

static void
write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");

    assert_non_null(fp);
    assert_int_equal(fputs(text, fp) >= 0, 1);
    assert_int_equal(fclose(fp), 0);
}

static mode_t
mode_of(const char *path)
{
    struct stat st;

    assert_int_equal(lstat(path, &st), 0);
    return st.st_mode;
}

/* Whatever the umask, both files are for this user only. */
static void
test_files_are_private(void **state)
{
    struct fx *f = *state;
    struct st_err err = {0};
    char id[37], p[128];
    mode_t old = umask(022);

    assert_int_equal(dp_cache_write(f->dir, (const uint8_t *)"abc", 3, &err), 0);
    path_of(f, "config.cache", p, sizeof(p));
    assert_int_equal(mode_of(p) & 0777, 0600);
    assert_int_equal(dp_cache_id(f->dir, id, &err), 0);
    path_of(f, "strait.id", p, sizeof(p));
    assert_int_equal(mode_of(p) & 0777, 0600);
    umask(old);
}

/* A symlink at config.cache.tmp pointing elsewhere: the write replaces the symlink, the
 * file it points to is untouched, and config.cache is a regular file with the bytes. */
static void
test_planted_symlink_not_followed(void **state)
{
    struct fx *f = *state;
    struct st_err err = {0};
    char victim[128], tmp[128], cache[128];
    uint8_t *buf = NULL;
    size_t len = 0;
    FILE *fp;
    char got[64] = "";

    path_of(f, "victim", victim, sizeof(victim));
    path_of(f, "config.cache.tmp", tmp, sizeof(tmp));
    path_of(f, "config.cache", cache, sizeof(cache));
    write_file(victim, "untouched");
    assert_int_equal(symlink(victim, tmp), 0);

    assert_int_equal(dp_cache_write(f->dir, (const uint8_t *)"snapshot", 8, &err), 0);
    fp = fopen(victim, "r");
    assert_non_null(fp);
    assert_non_null(fgets(got, sizeof(got), fp));
    fclose(fp);
    assert_string_equal(got, "untouched");
    assert_true(S_ISREG(mode_of(cache)));
    assert_int_equal(access(tmp, F_OK), -1);
    assert_int_equal(dp_cache_read(f->dir, dp_cache_max(4194304), &buf, &len, &err), 0);
    assert_int_equal(len, 8);
    assert_memory_equal(buf, "snapshot", 8);
    free(buf);
}

/* The limit is cluster_max_payload plus a header's room: the largest payload the key
 * allows (2147483647) is cacheable, where a fixed 256 MiB limit refused it. */
static void
test_limit_follows_max_payload(void **state)
{
    (void)state;
    assert_true(dp_cache_max(16777216) > 16777216);
    assert_true(dp_cache_max(16777216) <= 16777216 + 1024 * 1024);
    assert_true(dp_cache_max(2147483647) > 2147483647ULL);
    assert_true(dp_cache_max(2147483647) > dp_cache_max(16777216));
}

/* One byte over the limit: refused with -EFBIG, one line with both sizes, nothing read. */
static void
test_read_refuses_over_limit(void **state)
{
    struct fx *f = *state;
    struct st_err err = {0};
    uint8_t *buf = NULL;
    size_t len = 0;
    char p[128];

    path_of(f, "config.cache", p, sizeof(p));
    write_file(p, "0123456789");
    assert_int_equal(dp_cache_read(f->dir, 10, &buf, &len, &err), 0);
    assert_int_equal(len, 10);
    free(buf);
    buf = NULL;
    assert_int_equal(dp_cache_read(f->dir, 9, &buf, &len, &err), -EFBIG);
    assert_null(buf);
    assert_non_null(strstr(err.msg, "config.cache: 10 bytes, more than the 9"));
    assert_null(strchr(err.msg, '\n'));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_files_are_private, setup, teardown),
        cmocka_unit_test_setup_teardown(test_planted_symlink_not_followed, setup, teardown),
        cmocka_unit_test(test_limit_follows_max_payload),
        cmocka_unit_test_setup_teardown(test_read_refuses_over_limit, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
