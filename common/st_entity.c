/* The registry of entity kinds and what is derived from their descriptions (see
 * st_entity.h): lookups by name, the endpoint and parent fields, references, the
 * dependency order. Each description lives in common/st_ent_<kind>.c. */
#include "st_entity.h"

#include <string.h>

const struct st_entity_desc *const st_entities[ST_ENT__COUNT] = {
    [ST_ENT_SERVICE] = &st_ent_service,
    [ST_ENT_ROUTE] = &st_ent_route,
    [ST_ENT_CERTIFICATE] = &st_ent_certificate,
    [ST_ENT_SNI] = &st_ent_sni,
    [ST_ENT_CA_CERTIFICATE] = &st_ent_ca_certificate,
    [ST_ENT_UPSTREAM] = &st_ent_upstream,
    [ST_ENT_TARGET] = &st_ent_target,
    [ST_ENT_PLUGIN] = &st_ent_plugin,
};

const char *
st_entity_name(enum st_entity_kind k)
{
    if ((unsigned)k >= ST_ENT__COUNT) {
        return "unknown";
    }
    return st_entities[k]->name;
}

bool
st_entity_by_name(const char *name, enum st_entity_kind *k)
{
    for (int i = 0; i < ST_ENT__COUNT; i++) {
        if (strcmp(name, st_entities[i]->name) == 0) {
            *k = (enum st_entity_kind)i;
            return true;
        }
    }
    return false;
}

const struct st_field *
st_entity_field(enum st_entity_kind k, const char *name)
{
    for (const struct st_field *f = st_entities[k]->fields; f->name != NULL; f++) {
        if (strcmp(f->name, name) == 0) {
            return f;
        }
    }
    return NULL;
}

/* The first field of kind k with every flag of `flags`, or NULL. */
static const struct st_field *
field_flagged(enum st_entity_kind k, unsigned flags)
{
    for (const struct st_field *f = st_entities[k]->fields; f->name != NULL; f++) {
        if ((f->flags & flags) == flags) {
            return f;
        }
    }
    return NULL;
}

const struct st_field *
st_entity_endpoint(enum st_entity_kind k)
{
    return field_flagged(k, ST_FIELD_F_ENDPOINT);
}

const struct st_field *
st_entity_parent(enum st_entity_kind k)
{
    return field_flagged(k, ST_FIELD_F_PARENT);
}

const struct st_field *
st_entity_parent_in(enum st_entity_kind k, enum st_entity_kind parent)
{
    for (const struct st_field *f = st_entities[k]->fields; f->name != NULL; f++) {
        if ((f->flags & ST_FIELD_F_PARENT) && f->type == ST_FT_FOREIGN && f->ref->kind == parent) {
            return f;
        }
    }
    return NULL;
}

const struct st_entity_desc *
st_entity_ref(enum st_entity_kind k, const char *field)
{
    const struct st_field *f = st_entity_field(k, field);

    return f != NULL && (f->type == ST_FT_FOREIGN || f->type == ST_FT_FOREIGN_SET) ? f->ref : NULL;
}

size_t
st_entity_nests(enum st_entity_kind parent, struct st_entity_nest *out)
{
    size_t n = 0;

    for (int pass = 0; pass < 2; pass++) {
        unsigned want = pass == 0 ? ST_FIELD_F_PARENT : 0;

        for (int k = 0; k < ST_ENT__COUNT; k++) {
            for (const struct st_field *f = st_entities[k]->fields; f->name != NULL; f++) {
                if (f->type == ST_FT_FOREIGN && f->ref->kind == parent &&
                    (f->flags & ST_FIELD_F_PARENT) == want) {
                    out[n++] = (struct st_entity_nest){st_entities[k], f};
                }
            }
        }
    }
    return n;
}

/* Appends k to out after the kinds it references (depth first). */
static void
order_visit(enum st_entity_kind k, bool done[ST_ENT__COUNT], enum st_entity_kind *out, int *n)
{
    if (done[k]) {
        return;
    }
    done[k] = true; /* a cycle (none today) would stop here rather than loop */
    for (const struct st_field *f = st_entities[k]->fields; f->name != NULL; f++) {
        if (f->type == ST_FT_FOREIGN || f->type == ST_FT_FOREIGN_SET) {
            order_visit(f->ref->kind, done, out, n);
        }
    }
    out[(*n)++] = k;
}

void
st_entity_order(enum st_entity_kind out[ST_ENT__COUNT])
{
    bool done[ST_ENT__COUNT] = {false};
    int n = 0;

    for (int k = 0; k < ST_ENT__COUNT; k++) {
        order_visit((enum st_entity_kind)k, done, out, &n);
    }
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
