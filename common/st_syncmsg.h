/* The sync messages between DP and CP (proto/strait/v1/sync.proto). */
#ifndef STRAIT_ST_SYNCMSG_H
#define STRAIT_ST_SYNCMSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct st_label {
    char *key;
    char *value;
};

struct st_sync_req {
    char *dp_id;
    char *hostname;
    char *dp_version;
    struct st_label *labels;
    size_t n_labels;
    char *have_hash;     /* "" or NULL: none */
    char *last_error;    /* NULL: none */
    int64_t cert_expiry; /* 0: unknown */
    bool goodbye;
    int64_t max_payload;   /* the DP's cluster_max_payload; 0: not said */
    char *upstream_health; /* JSON (sync.proto); NULL: none */
};

enum st_sync_status {
    ST_SYNC_OK = 0,
    ST_SYNC_NOT_MODIFIED,
    ST_SYNC_REFUSED,
};

struct st_sync_resp {
    enum st_sync_status status;
    char *reason;      /* NULL: none */
    uint8_t *snapshot; /* encoded Snapshot with ST_SYNC_OK */
    size_t snapshot_len;
};

/* Encoders return 0 and a malloc'd buffer in *out (caller frees), or a negative code. */
int st_syncmsg_req_encode(const struct st_sync_req *r, uint8_t **out, size_t *len);
int st_syncmsg_resp_encode(const struct st_sync_resp *r, uint8_t **out, size_t *len);

/* The response in two steps, to pack it straight into a buffer the caller owns (the
 * CP packs into the nng message: one copy of a large snapshot per send, not two):
 * its size, then its bytes (out holds at least that size). Return 0 or -EINVAL. */
int st_syncmsg_resp_size(const struct st_sync_resp *r, size_t *len);
int st_syncmsg_resp_pack(const struct st_sync_resp *r, uint8_t *out);

/* Decoders fill *r with malloc'd copies (free with the _fini functions).
 * Return 0 or -ST_EPARSE. */
int st_syncmsg_req_decode(const uint8_t *p, size_t len, struct st_sync_req *r);
int st_syncmsg_resp_decode(const uint8_t *p, size_t len, struct st_sync_resp *r);
void st_syncmsg_req_fini(struct st_sync_req *r);
void st_syncmsg_resp_fini(struct st_sync_resp *r);

#endif
