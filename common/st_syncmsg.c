/* The sync messages between DP and CP (proto/strait/v1/sync.proto): plain structs
 * <-> protobuf bytes. Decoded values are malloc'd copies, so callers never hold
 * protobuf-c memory. */
#include "st_syncmsg.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "st_err.h"
#include "st_util.h"
#include "strait/v1/sync.pb-c.h"

/* The message's status of each enum st_sync_status. */
static const Strait__V1__SyncResponse__Status statuses[] = {
    [ST_SYNC_OK] = STRAIT__V1__SYNC_RESPONSE__STATUS__OK,
    [ST_SYNC_NOT_MODIFIED] = STRAIT__V1__SYNC_RESPONSE__STATUS__NOT_MODIFIED,
    [ST_SYNC_REFUSED] = STRAIT__V1__SYNC_RESPONSE__STATUS__REFUSED,
};

static char *
dup_or_null(const char *s)
{
    return s != NULL ? st_xstrdup(s) : NULL;
}

int
st_syncmsg_req_encode(const struct st_sync_req *r, uint8_t **out, size_t *len)
{
    Strait__V1__SyncRequest m = STRAIT__V1__SYNC_REQUEST__INIT;
    Strait__V1__Label *lab;
    Strait__V1__Label **labp;

    if (r == NULL || out == NULL || len == NULL) {
        return -EINVAL;
    }
    lab = st_xcalloc(r->n_labels + 1, sizeof(*lab));
    labp = st_xcalloc(r->n_labels + 1, sizeof(*labp));
    for (size_t i = 0; i < r->n_labels; i++) {
        strait__v1__label__init(&lab[i]);
        lab[i].key = r->labels[i].key != NULL ? r->labels[i].key : "";
        lab[i].value = r->labels[i].value != NULL ? r->labels[i].value : "";
        labp[i] = &lab[i];
    }
    m.dp_id = r->dp_id != NULL ? r->dp_id : "";
    m.hostname = r->hostname;
    m.dp_version = r->dp_version;
    m.n_labels = r->n_labels;
    m.labels = labp;
    m.have_hash = r->have_hash;
    m.last_error = r->last_error;
    m.has_cert_expiry = r->cert_expiry != 0;
    m.cert_expiry = r->cert_expiry;
    m.has_max_payload = r->max_payload > 0;
    m.max_payload = r->max_payload;
    m.has_goodbye = r->goodbye;
    m.goodbye = r->goodbye;
    m.upstream_health = r->upstream_health;
    *len = strait__v1__sync_request__get_packed_size(&m);
    *out = st_xmalloc(*len + 1);
    strait__v1__sync_request__pack(&m, *out);
    free(labp);
    free(lab);
    return 0;
}

/* Fills m from r (m points into r). Returns 0 or -EINVAL. */
static int
resp_message(const struct st_sync_resp *r, Strait__V1__SyncResponse *m)
{
    Strait__V1__SyncResponse init = STRAIT__V1__SYNC_RESPONSE__INIT;

    if (r == NULL || (unsigned)r->status >= ST_ARRAY_SIZE(statuses)) {
        return -EINVAL;
    }
    *m = init;
    m->status = statuses[r->status];
    m->reason = r->reason;
    if (r->snapshot != NULL) {
        m->has_snapshot = 1;
        m->snapshot.data = r->snapshot;
        m->snapshot.len = r->snapshot_len;
    }
    return 0;
}

int
st_syncmsg_resp_size(const struct st_sync_resp *r, size_t *len)
{
    Strait__V1__SyncResponse m;
    int rc = resp_message(r, &m);

    if (rc == 0) {
        *len = strait__v1__sync_response__get_packed_size(&m);
    }
    return rc;
}

int
st_syncmsg_resp_pack(const struct st_sync_resp *r, uint8_t *out)
{
    Strait__V1__SyncResponse m;
    int rc = resp_message(r, &m);

    if (rc == 0) {
        strait__v1__sync_response__pack(&m, out);
    }
    return rc;
}

int
st_syncmsg_resp_encode(const struct st_sync_resp *r, uint8_t **out, size_t *len)
{
    int rc;

    if (out == NULL || len == NULL) {
        return -EINVAL;
    }
    if ((rc = st_syncmsg_resp_size(r, len)) < 0) {
        return rc;
    }
    *out = st_xmalloc(*len + 1);
    return st_syncmsg_resp_pack(r, *out);
}

int
st_syncmsg_req_decode(const uint8_t *p, size_t len, struct st_sync_req *r)
{
    Strait__V1__SyncRequest *m;

    memset(r, 0, sizeof(*r));
    m = strait__v1__sync_request__unpack(NULL, len, p);
    if (m == NULL) {
        return -ST_EPARSE;
    }
    r->dp_id = st_xstrdup(m->dp_id);
    r->hostname = dup_or_null(m->hostname);
    r->dp_version = dup_or_null(m->dp_version);
    r->have_hash = dup_or_null(m->have_hash);
    r->last_error = dup_or_null(m->last_error);
    r->cert_expiry = m->has_cert_expiry ? m->cert_expiry : 0;
    r->max_payload = m->has_max_payload && m->max_payload > 0 ? m->max_payload : 0;
    r->goodbye = m->has_goodbye && m->goodbye;
    r->upstream_health = dup_or_null(m->upstream_health);
    r->labels = st_xcalloc(m->n_labels + 1, sizeof(*r->labels));
    r->n_labels = m->n_labels;
    for (size_t i = 0; i < m->n_labels; i++) {
        r->labels[i].key = st_xstrdup(m->labels[i]->key);
        r->labels[i].value = st_xstrdup(m->labels[i]->value);
    }
    strait__v1__sync_request__free_unpacked(m, NULL);
    return 0;
}

int
st_syncmsg_resp_decode(const uint8_t *p, size_t len, struct st_sync_resp *r)
{
    Strait__V1__SyncResponse *m;
    size_t s = 0;

    memset(r, 0, sizeof(*r));
    m = strait__v1__sync_response__unpack(NULL, len, p);
    if (m == NULL) {
        return -ST_EPARSE;
    }
    while (s < ST_ARRAY_SIZE(statuses) && statuses[s] != m->status) {
        s++;
    }
    if (s == ST_ARRAY_SIZE(statuses)) {
        strait__v1__sync_response__free_unpacked(m, NULL);
        return -ST_EPARSE;
    }
    r->status = (enum st_sync_status)s;
    r->reason = dup_or_null(m->reason);
    if (m->has_snapshot) {
        r->snapshot = st_xmalloc(m->snapshot.len + 1);
        if (m->snapshot.len > 0) {
            memcpy(r->snapshot, m->snapshot.data, m->snapshot.len);
        }
        r->snapshot_len = m->snapshot.len;
    }
    strait__v1__sync_response__free_unpacked(m, NULL);
    return 0;
}

void
st_syncmsg_req_fini(struct st_sync_req *r)
{
    if (r == NULL) {
        return;
    }
    free(r->dp_id);
    free(r->hostname);
    free(r->dp_version);
    free(r->have_hash);
    free(r->last_error);
    free(r->upstream_health);
    for (size_t i = 0; i < r->n_labels; i++) {
        free(r->labels[i].key);
        free(r->labels[i].value);
    }
    free(r->labels);
    memset(r, 0, sizeof(*r));
}

void
st_syncmsg_resp_fini(struct st_sync_resp *r)
{
    if (r == NULL) {
        return;
    }
    free(r->reason);
    free(r->snapshot);
    memset(r, 0, sizeof(*r));
}
