/* The plugins of a runtime (issue 18): built once per snapshot on the sync thread, read by
 * the workers. For each route, the plugin instance that applies to its sessions, chosen
 * with Kong's scope precedence (route + service, route, service, global) among the enabled
 * ones whose protocols include the session's; a session asks with one NULL check when the
 * configuration has no plugin. Only
 * ip-restriction exists so far; its lists are matched in O(log n) (st_cidr_set). */
#ifndef STRAIT_DP_PLUGINS_H
#define STRAIT_DP_PLUGINS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "st_cidr.h"

struct st_snapshot;
struct st_err;

/* One ip-restriction instance, parsed. */
struct dp_ipr {
    const char *id;     /* the plugin's id (the snapshot's) */
    unsigned protocols; /* ST_PROTO_* the instance runs on */
    struct st_cidr_set allow, deny;
    bool has_allow, has_deny; /* a non-empty list was given */
    int status;               /* 403 unless configured */
    const char *message;      /* NULL: Kong's "IP address not allowed: <ip>" */
};

struct dp_plugins;

/* The plugins of snap, or NULL (and 0) when none is enabled. Returns 0 or < 0 with err
 * filled (a config the schema passed that does not parse: not expected). */
int dp_plugins_new(const struct st_snapshot *snap, struct dp_plugins **out, struct st_err *err);

void dp_plugins_free(struct dp_plugins *p);

/* The session protocols plugins are chosen for: tcp, tls, tls_passthrough. */
#define DP_PLUGINS_PROTOS 3

/* The ip-restriction instance for sessions of route index `route` whose protocol is proto
 * (one ST_PROTO_*), or NULL. Instances whose protocols leave proto out are not candidates,
 * so a less specific one applies instead (as Kong leaves out those of another subsystem). */
const struct dp_ipr *dp_plugins_ipr(const struct dp_plugins *p, size_t route, unsigned proto);

/* Whether ip-restriction refuses client address sa: deny first, then allow (Kong's
 * handler). */
bool dp_ipr_refuses(const struct dp_ipr *ipr, const struct sockaddr *sa);

#endif
