/* The built-in plugins' descriptions (Kong 3.10's kong/plugins/<name>/schema.lua and
 * handler.lua's PRIORITY) and the set the `plugins` key enables (see st_plugin.h).
 *
 * ip-restriction: Kong's config record (allow, deny: arrays of ip_or_cidr; status: a
 * number; message: a string) and its entity check (at least one of allow and deny); its
 * default protocols are the one stream-including default Kong has. */
#include "st_plugin.h"

#include <float.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "st_check.h"
#include "st_cidr.h"
#include "st_str.h"
#include "st_util.h"

/* ------------------------------------------------------------------------ */
/* ip-restriction                                                             */

/* typedefs.ip_or_cidr: Kong's message names the value. */
static json_t *
ip_or_cidr(json_t *el)
{
    struct st_cidr c;

    if (!json_is_string(el)) {
        return json_string("expected a string");
    }
    if (st_cidr_parse(json_string_value(el), &c) != 0) {
        return st_check_errf("invalid ip or cidr range: '%.400s'", json_string_value(el));
    }
    return NULL;
}

static json_t *
check_ip_list(json_t *obj, const struct st_field *f, json_t *v)
{
    (void)obj;
    (void)f;
    return st_check_array(v, "an array", ip_or_cidr);
}

static json_t *
check_status(json_t *obj, const struct st_field *f, json_t *v)
{
    return st_check_number_range(obj, f->name, v, -DBL_MAX, DBL_MAX);
}

/* Kong: at_least_one_of = {"config.allow", "config.deny"} */
static void
ipr_checks(json_t *obj, json_t *fields, unsigned flags)
{
    json_t *config = json_object_get(obj, "config");

    (void)flags;
    if (!st_check_is_nonempty(json_object_get(config, "allow")) &&
        !st_check_is_nonempty(json_object_get(config, "deny"))) {
        st_check_entity_err(fields, "at least one of these fields must be non-empty: "
                                    "'config.allow', 'config.deny'");
    }
}

/* clang-format off */
static const struct st_field ipr_config[] = {
    {"allow", ST_FT_ARRAY, 0, check_ip_list, NULL,
     .schema = "\"elements\": {\"type\": \"string\"}"},
    {"deny", ST_FT_ARRAY, 0, check_ip_list, NULL,
     .schema = "\"elements\": {\"type\": \"string\"}"},
    {"status", ST_FT_NUMBER, 0, check_status, NULL, .dp = ST_DP_NONE},
    {"message", ST_FT_STRING, 0, NULL, NULL, .dp = ST_DP_NONE},
    {.name = NULL},
};
/* clang-format on */

const struct st_plugin_desc st_plugin_ip_restriction = {
    .name = "ip-restriction",
    .priority = 990,
    .protocols_default = "[\"http\", \"https\", \"tcp\", \"tls\", \"grpc\", \"grpcs\"]",
    .config = ipr_config,
    .checks = ipr_checks,
    .checks_schema = "[{\"at_least_one_of\": [\"config.allow\", \"config.deny\"]}]",
};

/* ------------------------------------------------------------------------ */
/* the registry and the `plugins` key                                         */

const struct st_plugin_desc *const st_plugins_bundled[] = {
    &st_plugin_ip_restriction,
};
const size_t st_plugins_bundled_n = ST_ARRAY_SIZE(st_plugins_bundled);

/* Which built-ins are enabled, by index in st_plugins_bundled; all of them until
 * st_plugin_conf_apply (the default, "bundled"). Written once at start. */
static bool enabled[ST_ARRAY_SIZE(st_plugins_bundled)];
static bool enabled_set;

const struct st_plugin_desc *
st_plugin_builtin(const char *name)
{
    for (size_t i = 0; name != NULL && i < st_plugins_bundled_n; i++) {
        if (strcmp(st_plugins_bundled[i]->name, name) == 0) {
            return st_plugins_bundled[i];
        }
    }
    return NULL;
}

const struct st_plugin_desc *
st_plugin_enabled(const char *name)
{
    for (size_t i = 0; name != NULL && i < st_plugins_bundled_n; i++) {
        if (strcmp(st_plugins_bundled[i]->name, name) == 0) {
            return !enabled_set || enabled[i] ? st_plugins_bundled[i] : NULL;
        }
    }
    return NULL;
}

/* Calls fn for each name of value (trimmed, empty ones skipped); stops at a non-zero. */
static int
each_name(const char *value, int (*fn)(const char *name, void *arg), void *arg)
{
    char *copy = st_xstrdup(value);
    char *save = NULL;
    int rc = 0;

    for (char *t = strtok_r(copy, ",", &save); t != NULL && rc == 0;
         t = strtok_r(NULL, ",", &save)) {
        t = st_str_trim(t);
        if (t[0] != '\0') {
            rc = fn(t, arg);
        }
    }
    free(copy);
    return rc;
}

struct why {
    char *buf;
    size_t size;
    size_t n, off; /* names seen, "off" among them */
};

static int
name_check(const char *name, void *arg)
{
    struct why *w = arg;

    w->n++;
    if (strcmp(name, "off") == 0) {
        w->off++;
        return 0;
    }
    if (strcmp(name, "bundled") == 0 || st_plugin_builtin(name) != NULL) {
        return 0;
    }
    (void)st_snprintf(w->buf, w->size,
                      "'%s' is not a plugin Strait has (built in: ip-restriction; custom plugins "
                      "are not supported yet)",
                      name);
    return -1;
}

int
st_plugin_conf_check(const char *value, char *why, size_t size)
{
    struct why w = {why, size, 0, 0};

    if (value == NULL) {
        return 0;
    }
    if (each_name(value, name_check, &w) != 0) {
        return -1;
    }
    if (w.off > 0 && w.n > 1) {
        (void)st_snprintf(why, size, "'off' cannot be listed with other plugins");
        return -1;
    }
    return 0;
}

static int
name_enable(const char *name, void *arg)
{
    (void)arg;
    for (size_t i = 0; i < st_plugins_bundled_n; i++) {
        if (strcmp(name, "bundled") == 0 || strcmp(name, st_plugins_bundled[i]->name) == 0) {
            enabled[i] = true;
        }
    }
    return 0;
}

void
st_plugin_conf_apply(const char *value)
{
    for (size_t i = 0; i < st_plugins_bundled_n; i++) {
        enabled[i] = value == NULL; /* the default: bundled */
    }
    enabled_set = true;
    if (value != NULL) {
        (void)each_name(value, name_enable, NULL);
    }
}

size_t
st_plugin_enabled_list(const char **out)
{
    size_t n = 0;

    for (size_t i = 0; i < st_plugins_bundled_n; i++) {
        if (!enabled_set || enabled[i]) {
            out[n++] = st_plugins_bundled[i]->name;
        }
    }
    return n;
}
