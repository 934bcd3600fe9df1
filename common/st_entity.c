/* Entity kinds and protocol names shared by the schema, the snapshot codec and the
 * data plane's router. The structs themselves are filled by st_snapshot. */
#include "st_entity.h"

#include <string.h>

static const char *const entity_names[ST_ENT__COUNT] = {
    [ST_ENT_SERVICE] = "services",
    [ST_ENT_ROUTE] = "routes",
    [ST_ENT_CERTIFICATE] = "certificates",
    [ST_ENT_SNI] = "snis",
    [ST_ENT_CA_CERTIFICATE] = "ca_certificates",
};

const char *
st_entity_name(enum st_entity_kind k)
{
    if ((unsigned)k >= ST_ENT__COUNT) {
        return "unknown";
    }
    return entity_names[k];
}

unsigned
st_proto_parse(const char *name)
{
    static const struct {
        const char *name;
        unsigned flag;
    } protos[] = {
        {"tcp", ST_PROTO_TCP},
        {"tls", ST_PROTO_TLS},
        {"tls_passthrough", ST_PROTO_TLS_PASSTHROUGH},
        {"udp", ST_PROTO_UDP},
    };

    if (name == NULL) {
        return 0;
    }
    for (size_t i = 0; i < sizeof(protos) / sizeof(protos[0]); i++) {
        if (strcmp(name, protos[i].name) == 0) {
            return protos[i].flag;
        }
    }
    return 0;
}
