/* The plugins Strait knows (issue 18): each built-in plugin's name, PRIORITY, default
 * `protocols` and config schema (a record description, checked by the same walk as every
 * entity: st_schema through the plugins kind, common/st_ent_plugin.c), and the set of
 * them the `plugins` configuration key enables in this process. No plugin validates
 * itself: its description does. */
#ifndef STRAIT_ST_PLUGIN_H
#define STRAIT_ST_PLUGIN_H

#include <stdbool.h>
#include <stddef.h>

#include "st_entity.h"

struct st_plugin_desc {
    const char *name;              /* "ip-restriction" */
    int priority;                  /* Kong's PRIORITY: higher runs first */
    const char *protocols_default; /* JSON text: Kong's default `protocols` */
    const struct st_field *config; /* the config record's fields (NULL-terminated) */
    /* Kong's entity_checks of the plugin's schema: add "@entity" errors to fields; run
     * only when the config record itself passed. */
    st_entity_check_fn *checks;
    const char *checks_schema; /* the same in Kong's entity_checks form, JSON text */
};

/* The built-in plugins, in name order. */
extern const struct st_plugin_desc st_plugin_ip_restriction;
extern const struct st_plugin_desc *const st_plugins_bundled[];
extern const size_t st_plugins_bundled_n;

/* The built-in plugin `name`, or NULL. */
const struct st_plugin_desc *st_plugin_builtin(const char *name);

/* The plugin `name` when this process enables it (the `plugins` key), else NULL. */
const struct st_plugin_desc *st_plugin_enabled(const char *name);

/* Kong's message for a plugin name this process does not enable. */
#define ST_PLUGIN_NOT_ENABLED_FMT                                                                  \
    "plugin '%s' not enabled; add it to the 'plugins' configuration property"

/* Checks a `plugins` value ("bundled", "off", or names separated by commas; "bundled"
 * may be one of the names): 0, or -1 with a message in why. */
int st_plugin_conf_check(const char *value, char *why, size_t size);

/* Enables the plugins a checked `plugins` value names (NULL: the default, "bundled").
 * Called once at start, before any thread reads the set. */
void st_plugin_conf_apply(const char *value);

/* The enabled plugins' names, in name order, into out[st_plugins_bundled_n]; their count. */
size_t st_plugin_enabled_list(const char **out);

#endif
