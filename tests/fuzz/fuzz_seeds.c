/* Seeds made with the project's own encoders (not a fuzz target; tests/fuzz/README.md says
 * how the committed seeds were made):
 *
 *   fuzz_seeds snapshot OUTDIR FILE...
 *     each declarative file (YAML or JSON, as POST /config takes it) is parsed with
 *     st_decl and built into a snapshot with st_snapshot_build, as the CP does; its
 *     encoded Config goes to OUTDIR/<file name>.cfg behind a 0 byte (fuzz_st_snapshot's
 *     mode "Config, wrapped with its hash"), and the whole Snapshot, as a SyncResponse
 *     carries it, to OUTDIR/<file name>.snap behind a 1 byte (mode "Snapshot as is").
 *     A file that does not parse is an error: the seeds must be real configurations.
 *   fuzz_seeds syncmsg OUTDIR [SNAPSHOT_FILE]
 *     SyncRequests and SyncResponses as st_syncmsg encodes them (the DP's first request,
 *     one with labels and a last error, a goodbye; OK with the Snapshot in SNAPSHOT_FILE
 *     after its mode byte, not modified, refused), each behind fuzz_st_syncmsg's mode
 *     byte. */
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "st_decl.h"
#include "st_err.h"
#include "st_snapshot.h"
#include "st_syncmsg.h"
#include "strait/v1/snapshot.pb-c.h"

static char *
slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long n;

    if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 ||
        fseek(f, 0, SEEK_SET) != 0) {
        fprintf(stderr, "%s: cannot read\n", path);
        exit(1);
    }
    buf = malloc((size_t)n + 1);
    if (buf == NULL || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        fprintf(stderr, "%s: cannot read\n", path);
        exit(1);
    }
    buf[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return buf;
}

/* Writes mode and p[0..n) to OUTDIR/name. */
static void
put(const char *outdir, const char *name, int mode, const void *p, size_t n)
{
    char out[512];
    FILE *f;

    snprintf(out, sizeof(out), "%s/%s", outdir, name);
    f = fopen(out, "wb");
    if (f == NULL || fputc(mode, f) == EOF || (n > 0 && fwrite(p, 1, n, f) != n) ||
        fclose(f) != 0) {
        fprintf(stderr, "%s: cannot write\n", out);
        exit(1);
    }
    printf("%s: %zu bytes\n", out, n + 1);
}

static void
seed(const char *outdir, const char *path)
{
    struct st_decl_opts o = {.now_ms = 1700000000000LL};
    json_t *lists[ST_ENT__COUNT];
    json_t *error = NULL;
    struct st_err err = {0};
    Strait__V1__Snapshot *snap;
    char hash[65], out[256], *name, *copy;
    uint8_t *bytes = NULL;
    size_t len, blen = 0;
    char *text = slurp(path, &len);

    if (st_decl_parse(text, len, &o, lists, &error) != 0) {
        char *e = json_dumps(error, JSON_COMPACT);

        fprintf(stderr, "%s: %s\n", path, e != NULL ? e : "does not parse");
        exit(1);
    }
    if (st_snapshot_build(7, lists, &bytes, &blen, hash, &err) != 0) {
        fprintf(stderr, "%s: %s\n", path, err.msg);
        exit(1);
    }
    snap = strait__v1__snapshot__unpack(NULL, blen, bytes);
    if (snap == NULL) {
        fprintf(stderr, "%s: the built snapshot does not decode\n", path);
        exit(1);
    }
    copy = strdup(path);
    name = basename(copy);
    snprintf(out, sizeof(out), "%s.cfg", name);
    put(outdir, out, 0, snap->config.data, snap->config.len);
    snprintf(out, sizeof(out), "%s.snap", name);
    put(outdir, out, 1, bytes, blen);
    strait__v1__snapshot__free_unpacked(snap, NULL);
    for (int k = 0; k < ST_ENT__COUNT; k++) {
        json_decref(lists[k]);
    }
    free(copy);
    free(bytes);
    free(text);
}

static void
put_req(const char *outdir, const char *name, int mode, const struct st_sync_req *r)
{
    uint8_t *p = NULL;
    size_t n = 0;

    if (st_syncmsg_req_encode(r, &p, &n) != 0) {
        exit(1);
    }
    put(outdir, name, mode, p, n);
    free(p);
}

static void
put_resp(const char *outdir, const char *name, const struct st_sync_resp *r)
{
    uint8_t *p = NULL;
    size_t n = 0;

    if (st_syncmsg_resp_encode(r, &p, &n) != 0) {
        exit(1);
    }
    put(outdir, name, 1, p, n);
    free(p);
}

static void
syncmsg(const char *outdir, const char *snapshot_file)
{
    static const char id[] = "5f7c1b9e-8a4d-4c2e-9f3a-1d2b3c4d5e6f";
    static const char hash[] = "a3f5c0b2d4e6f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7081";
    struct st_label labels[] = {{"deployment", "eu-west"}, {"region", "fra1"}};
    struct st_sync_req first = {.dp_id = (char *)id,
                                .hostname = "dp-1.example.net",
                                .dp_version = "3.9.0",
                                .have_hash = "",
                                .max_payload = 16777216};
    struct st_sync_req failed = first;
    struct st_sync_req bye = first;
    struct st_sync_resp ok = {.status = ST_SYNC_OK};
    struct st_sync_resp same = {.status = ST_SYNC_NOT_MODIFIED};
    struct st_sync_resp refused = {.status = ST_SYNC_REFUSED,
                                   .reason = "data plane version 2.8.0 is incompatible"};
    size_t len = 0;

    failed.labels = labels;
    failed.n_labels = 2;
    failed.have_hash = (char *)hash;
    failed.last_error = "snapshot hash mismatch: says 00, bytes hash to 11";
    failed.cert_expiry = 1767225600;
    bye.have_hash = (char *)hash;
    bye.goodbye = true;
    put_req(outdir, "req_first", 0, &first);
    put_req(outdir, "req_failed_labels", 0, &failed);
    put_req(outdir, "req_incompatible", 2, &first);
    put_req(outdir, "req_goodbye", 0, &bye);
    put_resp(outdir, "resp_not_modified", &same);
    put_resp(outdir, "resp_refused", &refused);
    if (snapshot_file != NULL) {
        char *snap = slurp(snapshot_file, &len);

        /* after fuzz_st_snapshot's mode byte */
        ok.snapshot = (uint8_t *)snap + 1;
        ok.snapshot_len = len > 0 ? len - 1 : 0;
        put_resp(outdir, "resp_ok_snapshot", &ok);
        free(snap);
    }
}

int
main(int argc, char **argv)
{
    if (argc >= 4 && strcmp(argv[1], "snapshot") == 0) {
        for (int i = 3; i < argc; i++) {
            seed(argv[2], argv[i]);
        }
        return 0;
    }
    if ((argc == 3 || argc == 4) && strcmp(argv[1], "syncmsg") == 0) {
        syncmsg(argv[2], argc == 4 ? argv[3] : NULL);
        return 0;
    }
    fprintf(stderr, "usage: fuzz_seeds snapshot OUTDIR FILE... | syncmsg OUTDIR [SNAPSHOT]\n");
    return 2;
}
