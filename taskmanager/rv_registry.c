/* rv_registry: the one list of every source, operator and sink. Adding a
 * plugin means writing its file and adding one line here. */
#include <string.h>

#include "rv_plugin.h"

extern const rv_plugin rv_source_generator, rv_source_file, rv_source_socket;
extern const rv_plugin rv_op_filter, rv_op_map, rv_op_union, rv_op_window_aggregate, rv_op_dedup, rv_op_top_n;
extern const rv_plugin rv_sink_stdout, rv_sink_file, rv_sink_discard;

static const rv_plugin *const registry[] = {
    &rv_source_generator, &rv_source_file, &rv_source_socket,
    &rv_op_filter, &rv_op_map, &rv_op_union, &rv_op_window_aggregate, &rv_op_dedup, &rv_op_top_n,
    &rv_sink_stdout, &rv_sink_file, &rv_sink_discard,
    NULL,
};

const rv_plugin *rv_plugin_find(const char *name, rv_plugin_kind kind)
{
    for (const rv_plugin *const *p = registry; *p; p++)
        if ((*p)->kind == kind && strcmp((*p)->name, name) == 0)
            return *p;
    return NULL;
}

const rv_plugin *const *rv_plugin_all(void) { return registry; }

const char *rv_plugin_kind_name(rv_plugin_kind kind)
{
    switch (kind) {
    case RV_PLUGIN_SOURCE: return "source";
    case RV_PLUGIN_OPERATOR: return "operator";
    case RV_PLUGIN_SINK: return "sink";
    }
    return "?";
}
