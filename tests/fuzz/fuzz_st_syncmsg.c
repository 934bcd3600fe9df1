/* libFuzzer target for the sync messages (issue 14): a SyncRequest as the CP receives it
 * from any client that completed the cluster handshake, and a SyncResponse as a DP
 * receives it from its CP (st_syncmsg.c). A request that decodes goes where cp_sync sends
 * it: into a data-plane registry (cp_registry_seen), whose lists the admin API answers
 * (/clustering/data-planes, /clustering/status, wait_for_sync's acks, the shared records).
 *
 * The first byte picks the message: bit 0 clear, the rest is a SyncRequest (bit 1: the
 * registry records it as version-incompatible); set, a SyncResponse.
 * Besides memory errors and allocations beyond the run's limits, the target aborts when:
 *   - a decoded message, encoded again and decoded again, differs from the first decode;
 *   - a response's snapshot (status OK) differs from the bytes carried;
 *   - the registry's lists are not JSON the admin API can send, or miss the entry of a
 *     request that was not a goodbye. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cp_registry.h"
#include "fuzz_util.h"
#include "st_syncmsg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool
same_str(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static void
same_req(const struct st_sync_req *a, const struct st_sync_req *b)
{
    if (!same_str(a->dp_id, b->dp_id) || !same_str(a->hostname, b->hostname) ||
        !same_str(a->dp_version, b->dp_version) || !same_str(a->have_hash, b->have_hash) ||
        !same_str(a->last_error, b->last_error) || a->cert_expiry != b->cert_expiry ||
        a->goodbye != b->goodbye || a->max_payload != b->max_payload ||
        a->n_labels != b->n_labels) {
        abort();
    }
    for (size_t i = 0; i < a->n_labels; i++) {
        if (!same_str(a->labels[i].key, b->labels[i].key) ||
            !same_str(a->labels[i].value, b->labels[i].value)) {
            abort();
        }
    }
}

/* json_dumps of o, which must succeed; then o is released. */
static void
sendable(json_t *o)
{
    char *text = json_dumps(o, JSON_COMPACT);

    if (text == NULL) {
        abort();
    }
    free(text);
    json_decref(o);
}

static void
registry(const struct st_sync_req *req, bool incompatible)
{
    struct cp_registry *r = cp_registry_new();
    json_t *seen = NULL, *gone = NULL, *list;
    bool more = false;

    cp_registry_take(r, &seen, &gone); /* from now on it keeps records, as a shared one */
    json_decref(seen);
    json_decref(gone);
    cp_registry_seen(r, req, "127.0.0.1",
                     incompatible ? CP_REGISTRY_SYNC_VERSION_INCOMPATIBLE : CP_REGISTRY_SYNC_NORMAL,
                     incompatible ? "version mismatch" : NULL);
    list = cp_registry_list(r, NULL, NULL, 100, &more);
    if (json_array_size(list) != (req->dp_id[0] != '\0' && !req->goodbye ? 1u : 0u) || more) {
        abort();
    }
    sendable(list);
    sendable(cp_registry_list(r, NULL, req->dp_id, 100, NULL));
    sendable(cp_registry_status(r, NULL));
    sendable(cp_registry_acks(r, 0));
    cp_registry_take(r, &seen, &gone);
    sendable(seen);
    sendable(gone);
    cp_registry_remove(r, req->dp_id);
    cp_registry_free(r);
}

static void
request(const uint8_t *p, size_t n, bool incompatible)
{
    struct st_sync_req a, b;
    uint8_t *out = NULL;
    size_t len = 0;

    if (st_syncmsg_req_decode(p, n, &a) != 0) {
        return;
    }
    if (st_syncmsg_req_encode(&a, &out, &len) != 0 || st_syncmsg_req_decode(out, len, &b) != 0) {
        abort();
    }
    same_req(&a, &b);
    registry(&a, incompatible);
    st_syncmsg_req_fini(&a);
    st_syncmsg_req_fini(&b);
    free(out);
}

static void
response(const uint8_t *p, size_t n)
{
    struct st_sync_resp a, b;
    uint8_t *out = NULL;
    size_t len = 0, size = 0;

    if (st_syncmsg_resp_decode(p, n, &a) != 0) {
        return;
    }
    if (st_syncmsg_resp_size(&a, &size) != 0 || st_syncmsg_resp_encode(&a, &out, &len) != 0 ||
        len != size || st_syncmsg_resp_decode(out, len, &b) != 0) {
        abort();
    }
    if (a.status != b.status || !same_str(a.reason, b.reason) || a.snapshot_len != b.snapshot_len ||
        (a.snapshot == NULL) != (b.snapshot == NULL) ||
        (a.snapshot_len > 0 && memcmp(a.snapshot, b.snapshot, a.snapshot_len) != 0)) {
        abort();
    }
    st_syncmsg_resp_fini(&a);
    st_syncmsg_resp_fini(&b);
    free(out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz_in in = {data, data + size};
    uint8_t mode = fz_byte(&in);

    if (mode & 1) {
        response(in.p, (size_t)(in.end - in.p));
    } else {
        request(in.p, (size_t)(in.end - in.p), (mode & 2) != 0);
    }
    return 0;
}
