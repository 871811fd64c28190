/* rv_jobspec: YAML job file -> validated, planned logical graph.
 *
 * Parsing happens in passes so each error can be precise: (1) job-level
 * keys through a config table; (2) each node's common keys (id, type,
 * inputs, parallelism, key_by, schema, event_time, on_error) and then its
 * plugin's config table; (3) input resolution and a topological sort that
 * reports cycles; (4) planning in topological order: key expressions are
 * type-checked and each plugin computes its output schema from its inputs. */
#include "rv_jobspec.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rv_config.h"
#include "rv_expr.h"
#include "rv_file.h"
#include "rv_mem.h"

typedef struct job_keys {
    char *name;
    int64_t parallelism;
    int64_t max_parallelism;
    int64_t buffer_timeout_ms;
    int64_t channel_capacity;
    const rv_ynode *sources, *operators, *sinks, *state, *checkpointing, *restart;
} job_keys;

static const rv_cfg_key job_table[] = {
    {"name", RV_CFG_STRING, NULL, offsetof(job_keys, name), "Job name, shown by the CLI and in logs.", NULL, RV_CFG_REQUIRED, 0, 0},
    {"parallelism", RV_CFG_INT, "1", offsetof(job_keys, parallelism), "Default number of parallel instances of every node.", NULL, 0, 1, 1024},
    {"max_parallelism", RV_CFG_INT, "128", offsetof(job_keys, max_parallelism), "Number of key groups: the upper bound of any keyed node's parallelism, fixed for the life of the job's state.", NULL, 0, 1, 32768},
    {"buffer_timeout", RV_CFG_DURATION, "5ms", offsetof(job_keys, buffer_timeout_ms), "Longest time a partly filled output buffer waits before it is sent (bounds latency at low load).", NULL, 0, 0, 60000},
    {"channel_capacity", RV_CFG_INT, "8", offsetof(job_keys, channel_capacity), "Batches a local channel holds before its producer blocks (backpressure).", NULL, 0, 1, 4096},
    {"state", RV_CFG_NODE, NULL, offsetof(job_keys, state), "Keyed state settings of every stateful operator: `{backend: rocksdb, memory_budget: 256MiB}` (keys below).", NULL, 0, 0, 0},
    {"checkpointing", RV_CFG_NODE, NULL, offsetof(job_keys, checkpointing), "Periodic checkpoints for exactly-once recovery: `{interval: 10s, mode: exactly_once}` (keys below). Absent: no checkpoints; a failed job fails.", NULL, 0, 0, 0},
    {"restart", RV_CFG_NODE, NULL, offsetof(job_keys, restart), "What happens when a subtask fails or a task manager is lost: `{strategy: fixed_delay, attempts: 10, delay: 1s}` (keys below). Every restart resumes from the latest completed checkpoint.", NULL, 0, 0, 0},
    {"sources", RV_CFG_NODE, NULL, offsetof(job_keys, sources), "List of sources.", NULL, RV_CFG_REQUIRED, 0, 0},
    {"operators", RV_CFG_NODE, NULL, offsetof(job_keys, operators), "List of operators (may be empty).", NULL, 0, 0, 0},
    {"sinks", RV_CFG_NODE, NULL, offsetof(job_keys, sinks), "List of sinks.", NULL, RV_CFG_REQUIRED, 0, 0},
};
#define NJOB_KEYS (sizeof(job_table) / sizeof(job_table[0]))

static const char *const backend_names[] = {"rocksdb", "memory", NULL};

typedef struct state_keys {
    int backend;
    int64_t memory_budget;
} state_keys;

static const rv_cfg_key state_table[] = {
    {"backend", RV_CFG_ENUM, "rocksdb", offsetof(state_keys, backend), "`rocksdb`: hot keys in memory, the rest spills to RocksDB in the task manager's state directory; `memory`: everything in memory (fastest; the job needs memory for all of its state).", backend_names, 0, 0, 0},
    {"memory_budget", RV_CFG_SIZE, "256MiB", offsetof(state_keys, memory_budget), "Memory for the in-memory state cache of each stateful operator instance. Past it, `rocksdb` evicts cold entries to disk; `memory` logs a warning once.", NULL, 0, 65536, (int64_t)1 << 50},
};
#define NSTATE_KEYS (sizeof(state_table) / sizeof(state_table[0]))

static rv_err *parse_state(const rv_ynode *v, rv_state_conf *out)
{
    out->backend = RV_STATE_ROCKSDB;
    out->memory_budget = RV_STATE_DEFAULT_BUDGET;
    if (!v)
        return NULL;
    if (v->kind != RV_YAML_MAP)
        return rv_yerr(v, RV_ERR_INVALID, "'state' must be a map, e.g. {backend: rocksdb, memory_budget: 256MiB}");
    state_keys sk;
    memset(&sk, 0, sizeof(sk));
    rv_err *err = rv_config_apply(state_table, NSTATE_KEYS, v, NULL, "state", &sk);
    if (err)
        return err;
    out->backend = sk.backend == 1 ? RV_STATE_MEMORY : RV_STATE_ROCKSDB;
    out->memory_budget = sk.memory_budget;
    return NULL;
}

static const char *const chk_mode_names[] = {"exactly_once", "at_least_once", NULL};

typedef struct chk_keys {
    int64_t interval, timeout, min_pause, retained;
    int mode;
} chk_keys;

static const rv_cfg_key chk_table[] = {
    {"interval", RV_CFG_DURATION, NULL, offsetof(chk_keys, interval), "Time between the starts of two checkpoints.", NULL, RV_CFG_REQUIRED, 10, 86400000},
    {"mode", RV_CFG_ENUM, "exactly_once", offsetof(chk_keys, mode), "`exactly_once`: subtasks with several inputs align barriers (an input that delivered the barrier waits for the others), so state reflects each record once; `at_least_once`: no alignment (lower latency under skew; records after a barrier may be replayed after recovery).", chk_mode_names, 0, 0, 0},
    {"timeout", RV_CFG_DURATION, "10m", offsetof(chk_keys, timeout), "A checkpoint not complete by then is abandoned (logged); the next one starts after `min_pause`.", NULL, 0, 100, 86400000},
    {"min_pause", RV_CFG_DURATION, "0", offsetof(chk_keys, min_pause), "Least time from the end of one checkpoint to the start of the next.", NULL, 0, 0, 86400000},
    {"retained", RV_CFG_INT, "2", offsetof(chk_keys, retained), "Completed checkpoints kept in the checkpoint directory; older ones are deleted.", NULL, 0, 1, 100},
};
#define NCHK_KEYS (sizeof(chk_table) / sizeof(chk_table[0]))

static const char *const restart_names[] = {"none", "fixed_delay", "exponential", NULL};

typedef struct restart_keys {
    int strategy;
    int64_t attempts, delay, max_delay;
} restart_keys;

static const rv_cfg_key restart_table[] = {
    {"strategy", RV_CFG_ENUM, "fixed_delay", offsetof(restart_keys, strategy), "`none`: the first failure fails the job; `fixed_delay`: wait `delay` before every restart; `exponential`: the delay doubles after every restart, up to `max_delay`. Without a `restart` key: `fixed_delay` when the job checkpoints, `none` when it does not.", restart_names, 0, 0, 0},
    {"attempts", RV_CFG_INT, "10", offsetof(restart_keys, attempts), "Restarts before the job is FAILED with the last cause.", NULL, 0, 0, 1000000},
    {"delay", RV_CFG_DURATION, "1s", offsetof(restart_keys, delay), "Wait before a restart (exponential: before the first).", NULL, 0, 0, 86400000},
    {"max_delay", RV_CFG_DURATION, "1m", offsetof(restart_keys, max_delay), "`exponential`: the longest wait.", NULL, 0, 0, 86400000},
};
#define NRESTART_KEYS (sizeof(restart_table) / sizeof(restart_table[0]))

static rv_err *parse_recovery(const rv_ynode *chk, const rv_ynode *restart, rv_chk_conf *c, rv_restart_conf *r)
{
    memset(c, 0, sizeof(*c));
    memset(r, 0, sizeof(*r));
    if (chk) {
        if (chk->kind != RV_YAML_MAP)
            return rv_yerr(chk, RV_ERR_INVALID, "'checkpointing' must be a map, e.g. {interval: 10s, mode: exactly_once}");
        chk_keys ck;
        memset(&ck, 0, sizeof(ck));
        rv_err *err = rv_config_apply(chk_table, NCHK_KEYS, chk, NULL, "checkpointing", &ck);
        if (err)
            return err;
        *c = (rv_chk_conf){.interval_ms = ck.interval, .mode = ck.mode == 1 ? RV_CHK_AT_LEAST_ONCE : RV_CHK_EXACTLY_ONCE,
                           .timeout_ms = ck.timeout, .min_pause_ms = ck.min_pause, .retained = (int)ck.retained};
    }
    restart_keys rk;
    memset(&rk, 0, sizeof(rk));
    if (restart && restart->kind != RV_YAML_MAP)
        return rv_yerr(restart, RV_ERR_INVALID, "'restart' must be a map, e.g. {strategy: fixed_delay, attempts: 10, delay: 1s}");
    /* Absent: the defaults of the table (applied to an empty map). */
    rv_err *err = rv_config_apply(restart_table, NRESTART_KEYS, restart, NULL, "restart", &rk);
    if (err)
        return err;
    r->strategy = (rv_restart_strategy)rk.strategy;
    if (!restart && !chk)
        r->strategy = RV_RESTART_NONE;
    r->attempts = (int)rk.attempts;
    r->delay_ms = rk.delay;
    r->max_delay_ms = rk.max_delay < rk.delay ? rk.delay : rk.max_delay;
    return NULL;
}

static const char *const on_error_names[] = {"fail", "skip", "dead_letter", NULL};
static const char *const port_names[RV_NPORTS] = {"", "dead_letter", "late"};

const char *rv_port_name(int port) { return port > 0 && port < RV_NPORTS ? port_names[port] : ""; }

/* Keys every node may carry, by kind. */
static const char *const source_common[] = {"id", "type", "parallelism", "schema", "event_time", "on_error", NULL};
static const char *const operator_common[] = {"id", "type", "parallelism", "input", "inputs", "key_by", NULL};
static const char *const sink_common[] = {"id", "type", "parallelism", "input", "inputs", NULL};
static const char *const all_common[] = {"id", "type", "parallelism", "input", "inputs", "key_by", "schema", "event_time", "on_error", NULL};


static bool in_list(const char *s, const char *const *list)
{
    for (; *list; list++)
        if (strcmp(s, *list) == 0)
            return true;
    return false;
}

static void node_fini(rv_node *n)
{
    if (n->config && n->plugin)
        rv_config_free(n->plugin->config, n->plugin->nconfig, n->config);
    free(n->config);
    free(n->id);
    free(n->inputs);
    free(n->key_exprs);
    rv_schema_unref(n->key_schema);
    rv_schema_unref(n->declared);
    for (int p = 0; p < RV_NPORTS; p++)
        rv_schema_unref(n->outputs[p]);
    free(n->event_time_field);
    free(n->input_event_time_field);
}

rv_jobspec *rv_jobspec_ref(rv_jobspec *js)
{
    atomic_fetch_add(&js->refs, 1);
    return js;
}

void rv_jobspec_unref(rv_jobspec *js)
{
    if (!js || atomic_fetch_sub(&js->refs, 1) != 1)
        return;
    for (int i = 0; i < js->nnodes; i++)
        node_fini(&js->nodes[i]);
    free(js->nodes);
    free(js->name);
    rv_ydoc_free(js->doc);
    free(js);
}

int rv_jobspec_find(const rv_jobspec *js, const char *id)
{
    for (int i = 0; i < js->nnodes; i++)
        if (js->nodes[i].id && strcmp(js->nodes[i].id, id) == 0)
            return i;
    return -1;
}

rv_schema *rv_dead_letter_schema(void)
{
    rv_schema *s = rv_schema_new();
    rv_schema_add(s, "source", RV_T_STRING);
    rv_schema_add(s, "location", RV_T_STRING);
    rv_schema_add(s, "reason", RV_T_STRING);
    rv_schema_add(s, "raw", RV_T_STRING);
    rv_schema_add(s, "time", RV_T_TIMESTAMP);
    return s;
}

rv_schema *rv_jobspec_port_schema(const rv_jobspec *js, rv_input_ref ref)
{
    return js->nodes[ref.node].outputs[ref.port];
}

/* ---- pass 2: one node ---- */

typedef struct raw_node {
    const rv_ynode *map;
    rv_plugin_kind section;
    const rv_ynode *input_nodes; /* `input` scalar or `inputs` list */
} raw_node;

static rv_err *parse_schema(const rv_ynode *v, const char *what, rv_schema **out)
{
    if (v->kind != RV_YAML_MAP)
        return rv_yerr(v, RV_ERR_INVALID, "%s: 'schema' must be a map of field: type", what);
    if (v->n == 0)
        return rv_yerr(v, RV_ERR_INVALID, "%s: 'schema' has no fields", what);
    static const char *const type_names[] = {"bool", "int64", "float64", "string", "timestamp", "int", "float", "double", "boolean", "long", "str"};
    rv_schema *s = rv_schema_new();
    for (size_t i = 0; i < v->n; i++) {
        const rv_ynode *t = v->vals[i];
        rv_type ty;
        if (t->kind != RV_YAML_SCALAR || !rv_type_parse(t->str, &ty)) {
            const char *hint = t->kind == RV_YAML_SCALAR ? rv_suggest(t->str, type_names, sizeof(type_names) / sizeof(type_names[0])) : NULL;
            rv_err *err = rv_yerr(t, RV_ERR_INVALID, "%s: field '%s' has unknown type '%s'%s%s%s", what, v->keys[i]->str,
                                  t->kind == RV_YAML_SCALAR ? t->str : rv_ynode_kind_name(t->kind),
                                  hint ? " (did you mean '" : " (types: bool, int64, float64, string, timestamp",
                                  hint ? hint : "", hint ? "'?)" : ")");
            rv_schema_unref(s);
            return err;
        }
        rv_schema_add(s, v->keys[i]->str, ty);
    }
    *out = s;
    return NULL;
}

/* A duration-valued key, with the error positioned first. */
static rv_err *duration_key(const rv_ynode *v, const char *what, const char *key, int64_t *ms)
{
    if (v->kind != RV_YAML_SCALAR || !rv_duration_parse(v->str, ms))
        return rv_yerr(v, RV_ERR_INVALID, "%s: '%s' expects a duration such as 500ms, 10s, 1m or 1h, got '%s'", what, key,
                       v->kind == RV_YAML_SCALAR ? v->str : rv_ynode_kind_name(v->kind));
    return NULL;
}

static rv_err *parse_event_time(rv_node *n, const rv_ynode *v, const char *what)
{
    if (v->kind != RV_YAML_MAP)
        return rv_yerr(v, RV_ERR_INVALID, "%s: 'event_time' must be a map with field, max_out_of_orderness, idle_timeout", what);
    static const char *const keys[] = {"field", "max_out_of_orderness", "idle_timeout"};
    for (size_t i = 0; i < v->n; i++) {
        if (!in_list(v->keys[i]->str, (const char *const[]){"field", "max_out_of_orderness", "idle_timeout", NULL})) {
            const char *hint = rv_suggest(v->keys[i]->str, keys, 3);
            return rv_yerr(v->keys[i], RV_ERR_INVALID, "%s: unknown key 'event_time.%s'%s%s%s", what, v->keys[i]->str,
                           hint ? " (did you mean '" : " (valid keys: field, max_out_of_orderness, idle_timeout", hint ? hint : "", hint ? "'?)" : ")");
        }
    }
    const rv_ynode *f = rv_ymap_get(v, "field");
    if (!f)
        return rv_yerr(v, RV_ERR_INVALID, "%s: 'event_time' needs 'field'", what);
    char fwhat[256];
    snprintf(fwhat, sizeof(fwhat), "%s: event_time.field", what);
    rv_err *err = rv_ynode_scalar(f, fwhat);
    if (err)
        return err;
    if (!n->declared)
        return rv_yerr(v, RV_ERR_INVALID, "%s: 'event_time' needs a 'schema'", what);
    int idx = rv_schema_find(n->declared, f->str);
    if (idx < 0)
        return rv_yerr(f, RV_ERR_INVALID, "%s: event_time field '%s' is not in the schema", what, f->str);
    if (n->declared->fields[idx].type != RV_T_TIMESTAMP)
        return rv_yerr(f, RV_ERR_TYPE, "%s: event_time field '%s' must have type timestamp, not %s", what, f->str,
                       rv_type_name(n->declared->fields[idx].type));
    n->has_event_time = true;
    n->event_time_index = idx;
    const rv_ynode *ooo = rv_ymap_get(v, "max_out_of_orderness");
    if (ooo && (err = duration_key(ooo, what, "event_time.max_out_of_orderness", &n->max_out_of_orderness_ms)))
        return err;
    const rv_ynode *idle = rv_ymap_get(v, "idle_timeout");
    if (idle && (err = duration_key(idle, what, "event_time.idle_timeout", &n->idle_timeout_ms)))
        return err;
    return NULL;
}

static rv_err *parse_key_by(rv_node *n, const rv_ynode *v, const char *what)
{
    /* key_by: expr | [expr | {name: expr}, ...] */
    size_t count = v->kind == RV_YAML_SEQ ? v->n : 1;
    if (v->kind == RV_YAML_MAP)
        return rv_yerr(v, RV_ERR_INVALID, "%s: 'key_by' must be an expression or a list of expressions", what);
    if (count == 0)
        return rv_yerr(v, RV_ERR_INVALID, "%s: 'key_by' is empty", what);
    n->nkeys = (int)count;
    n->key_exprs = rv_xcalloc(count, sizeof(char *));
    return NULL;
}

static rv_err *parse_node(rv_jobspec *js, rv_node *n, raw_node *raw, const rv_ynode *map, rv_plugin_kind section)
{
    const char *sect = rv_plugin_kind_name(section);
    if (map->kind != RV_YAML_MAP)
        return rv_yerr(map, RV_ERR_INVALID, "each %s must be a map with at least 'id' and 'type'", sect);
    n->ynode = map;
    raw->map = map;
    raw->section = section;
    const rv_ynode *id = rv_ymap_get(map, "id");
    if (!id)
        return rv_yerr(map, RV_ERR_INVALID, "%s without 'id'", sect);
    if (id->kind != RV_YAML_SCALAR || id->len == 0)
        return rv_yerr(id, RV_ERR_INVALID, "%s 'id' must be a non-empty name", sect);
    for (const char *c = id->str; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '_' || *c == '-'))
            return rv_yerr(id, RV_ERR_INVALID, "%s id '%s' may contain only letters, digits, '_' and '-'", sect, id->str);
    int dup = rv_jobspec_find(js, id->str);
    if (dup >= 0)
        return rv_yerr(id, RV_ERR_INVALID, "duplicate id '%s' (first defined at line %d)", id->str, js->nodes[dup].ynode->line);
    n->id = rv_xstrdup(id->str);
    char what[200];
    snprintf(what, sizeof(what), "%s '%s'", sect, n->id);

    const rv_ynode *type = rv_ymap_get(map, "type");
    if (!type)
        return rv_yerr(map, RV_ERR_INVALID, "%s: missing 'type'", what);
    if (type->kind != RV_YAML_SCALAR)
        return rv_yerr(type, RV_ERR_INVALID, "%s: 'type' must be a name", what);
    const rv_plugin *pl = rv_plugin_find(type->str, section);
    if (!pl) {
        for (int k = RV_PLUGIN_SOURCE; k <= RV_PLUGIN_SINK; k++) {
            const rv_plugin *other = rv_plugin_find(type->str, (rv_plugin_kind)k);
            if (other)
                return rv_yerr(type, RV_ERR_INVALID, "%s: '%s' is %s %s, not a %s; move it to '%ss'", what, other->name,
                               other->kind == RV_PLUGIN_OPERATOR ? "an" : "a", rv_plugin_kind_name(other->kind), sect,
                               rv_plugin_kind_name(other->kind));
        }
        const char *names[64];
        size_t nn = 0;
        for (const rv_plugin *const *p = rv_plugin_all(); *p && nn < 64; p++)
            if ((*p)->kind == section)
                names[nn++] = (*p)->name;
        const char *hint = rv_suggest(type->str, names, nn);
        char list[512] = "";
        for (size_t i = 0; i < nn; i++)
            snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", i ? ", " : "", names[i]);
        if (hint)
            return rv_yerr(type, RV_ERR_NOT_FOUND, "%s: unknown %s type '%s' (did you mean '%s'?)", what, sect, type->str, hint);
        return rv_yerr(type, RV_ERR_NOT_FOUND, "%s: unknown %s type '%s' (known: %s)", what, sect, type->str, list);
    }
    if (pl->abi != RV_PLUGIN_ABI)
        return rv_yerr(type, RV_ERR_INTERNAL, "%s: plugin '%s' has ABI %d, runtime has %d", what, pl->name, pl->abi, RV_PLUGIN_ABI);
    n->plugin = pl;

    /* Common keys not valid for this kind. */
    const char *const *allowed = section == RV_PLUGIN_SOURCE ? source_common : section == RV_PLUGIN_OPERATOR ? operator_common : sink_common;
    for (size_t i = 0; i < map->n; i++) {
        const char *k = map->keys[i]->str;
        if (in_list(k, all_common) && !in_list(k, allowed)) {
            if (strcmp(k, "input") == 0 || strcmp(k, "inputs") == 0)
                return rv_yerr(map->keys[i], RV_ERR_INVALID, "%s: sources take no '%s'", what, k);
            return rv_yerr(map->keys[i], RV_ERR_INVALID, "%s: '%s' is not valid on a %s", what, k, sect);
        }
    }

    const rv_ynode *v;
    rv_err *err;
    if ((v = rv_ymap_get(map, "parallelism"))) {
        int64_t par = 0;
        rv_err_free(rv_ynode_int(v, &par));
        if (par < 1 || par > 1024)
            return rv_yerr(v, RV_ERR_INVALID, "%s: parallelism must be between 1 and 1024", what);
        n->parallelism = (int)par;
        n->parallelism_set = true;
    }
    if ((v = rv_ymap_get(map, "schema")) && (err = parse_schema(v, what, &n->declared)))
        return err;
    if ((v = rv_ymap_get(map, "event_time")) && (err = parse_event_time(n, v, what)))
        return err;
    if ((v = rv_ymap_get(map, "on_error"))) {
        char owhat[256];
        snprintf(owhat, sizeof(owhat), "%s: on_error", what);
        if ((err = rv_ynode_scalar(v, owhat)))
            return err;
        int k = 0;
        while (on_error_names[k] && strcmp(on_error_names[k], v->str))
            k++;
        if (!on_error_names[k]) {
            const char *hint = rv_suggest(v->str, on_error_names, 3);
            return rv_yerr(v, RV_ERR_INVALID, "%s: on_error must be one of: fail, skip, dead_letter%s%s%s", what,
                           hint ? " (did you mean '" : "", hint ? hint : "", hint ? "'?)" : "");
        }
        n->on_error = (rv_on_error)k;
    }
    const rv_ynode *kb = rv_ymap_get(map, "key_by");
    if (kb && !(pl->flags & (RV_PLUGIN_KEYED | RV_PLUGIN_STATEFUL)))
        return rv_yerr(rv_ymap_key(map, "key_by"), RV_ERR_INVALID, "%s: '%s' is not keyed and takes no 'key_by'", what, pl->name);
    if (!kb && (pl->flags & RV_PLUGIN_KEYED))
        return rv_yerr(map, RV_ERR_INVALID, "%s: '%s' needs 'key_by' (the fields that partition its state)", what, pl->name);
    if (kb && (err = parse_key_by(n, kb, what)))
        return err;

    const rv_ynode *in1 = rv_ymap_get(map, "input"), *inN = rv_ymap_get(map, "inputs");
    if (in1 && inN)
        return rv_yerr(rv_ymap_key(map, "inputs"), RV_ERR_INVALID, "%s: give either 'input' or 'inputs', not both", what);
    if (in1 && in1->kind != RV_YAML_SCALAR)
        return rv_yerr(in1, RV_ERR_INVALID, "%s: 'input' must be one id; use 'inputs' for a list", what);
    if (inN && (inN->kind != RV_YAML_SEQ || inN->n == 0))
        return rv_yerr(inN, RV_ERR_INVALID, "%s: 'inputs' must be a non-empty list of ids", what);
    if (inN && inN->n > 1 && !(pl->flags & RV_PLUGIN_MULTI_INPUT))
        return rv_yerr(inN, RV_ERR_INVALID, "%s: '%s' takes one input; use a 'union' operator to merge streams", what, pl->name);
    raw->input_nodes = in1 ? in1 : inN;

    n->config = rv_xcalloc(1, pl->config_size ? pl->config_size : 1);
    if ((err = rv_config_apply(pl->config, pl->nconfig, map, all_common, what, n->config)))
        return err;
    return NULL;
}

/* ---- pass 3: inputs, cycles ---- */

static rv_err *resolve_ref(rv_jobspec *js, const rv_ynode *s, const char *what, rv_input_ref *out)
{
    if (s->kind != RV_YAML_SCALAR)
        return rv_yerr(s, RV_ERR_INVALID, "%s: an input must be a node id", what);
    char *name = rv_xstrdup(s->str);
    int port = RV_PORT_MAIN;
    char *dot = strchr(name, '.');
    if (dot) {
        *dot = '\0';
        for (port = 1; port < RV_NPORTS; port++)
            if (strcmp(dot + 1, port_names[port]) == 0)
                break;
        if (port == RV_NPORTS) {
            rv_err *err = rv_yerr(s, RV_ERR_NOT_FOUND, "%s: unknown output '%s' of '%s' (side outputs: dead_letter of sources, late of window_aggregate)", what, dot + 1, name);
            free(name);
            return err;
        }
    }
    int idx = rv_jobspec_find(js, name);
    if (idx < 0) {
        const char **ids = rv_xcalloc((size_t)js->nnodes + 1, sizeof(char *));
        for (int i = 0; i < js->nnodes; i++)
            ids[i] = js->nodes[i].id;
        const char *hint = rv_suggest(name, ids, (size_t)js->nnodes);
        rv_err *err = rv_yerr(s, RV_ERR_NOT_FOUND, "%s: unknown input '%s'%s%s%s", what, name, hint ? " (did you mean '" : "",
                              hint ? hint : "", hint ? "'?)" : "");
        free(ids);
        free(name);
        return err;
    }
    free(name);
    if (js->nodes[idx].plugin->kind == RV_PLUGIN_SINK)
        return rv_yerr(s, RV_ERR_INVALID, "%s: input '%s' is a sink, which has no output", what, js->nodes[idx].id);
    if (port == RV_PORT_DEAD_LETTER && js->nodes[idx].plugin->kind != RV_PLUGIN_SOURCE)
        return rv_yerr(s, RV_ERR_INVALID, "%s: only sources have a dead_letter output", what);
    out->node = idx;
    out->port = port;
    return NULL;
}

/* `late_output: <id>` on an operator makes node <id> read its late port:
 * late_of[id] = the operator's index (-1 elsewhere). */
static rv_err *resolve_late_outputs(rv_jobspec *js, raw_node *raws, int *late_of)
{
    for (int i = 0; i < js->nnodes; i++)
        late_of[i] = -1;
    for (int i = 0; i < js->nnodes; i++) {
        const rv_ynode *lo = rv_ymap_get(js->nodes[i].ynode, "late_output");
        if (!lo || js->nodes[i].plugin->kind != RV_PLUGIN_OPERATOR)
            continue;
        int t = lo->kind == RV_YAML_SCALAR ? rv_jobspec_find(js, lo->str) : -1;
        if (t < 0 || js->nodes[t].plugin->kind == RV_PLUGIN_SOURCE)
            return rv_yerr(lo, RV_ERR_NOT_FOUND, "operator '%s': late_output must name a sink or operator of this job",
                           js->nodes[i].id);
        if (raws[t].input_nodes)
            return rv_yerr(raws[t].input_nodes, RV_ERR_INVALID,
                           "%s '%s' is the late_output of '%s', so it takes no 'input' of its own",
                           rv_plugin_kind_name(js->nodes[t].plugin->kind), js->nodes[t].id, js->nodes[i].id);
        if (late_of[t] >= 0)
            return rv_yerr(lo, RV_ERR_INVALID, "'%s' is already the late_output of '%s'", js->nodes[t].id,
                           js->nodes[late_of[t]].id);
        late_of[t] = i;
    }
    return NULL;
}

static rv_err *resolve_node_inputs(rv_jobspec *js, raw_node *raws, const int *late_of)
{
    for (int i = 0; i < js->nnodes; i++) {
        rv_node *n = &js->nodes[i];
        char what[200];
        snprintf(what, sizeof(what), "%s '%s'", rv_plugin_kind_name(n->plugin->kind), n->id);
        if (n->plugin->kind == RV_PLUGIN_SOURCE)
            continue;
        const rv_ynode *in = raws[i].input_nodes;
        if (!in && late_of[i] >= 0) {
            n->ninputs = 1;
            n->inputs = rv_xcalloc(1, sizeof(rv_input_ref));
            n->inputs[0] = (rv_input_ref){.node = late_of[i], .port = RV_PORT_LATE};
            continue;
        }
        if (!in) {
            /* Default: the node listed just before this one. */
            if (i == 0 || js->nodes[i - 1].plugin->kind == RV_PLUGIN_SINK) {
                /* The previous node is a sink: nothing to default to. */
                return rv_yerr(n->ynode, RV_ERR_INVALID, "%s: no 'input' given and the node before it is %s; add 'input: <id>'",
                               what, i == 0 ? "missing" : "a sink");
            }
            n->ninputs = 1;
            n->inputs = rv_xcalloc(1, sizeof(rv_input_ref));
            n->inputs[0].node = i - 1;
            continue;
        }
        size_t cnt = in->kind == RV_YAML_SEQ ? in->n : 1;
        n->ninputs = (int)cnt;
        n->inputs = rv_xcalloc(cnt, sizeof(rv_input_ref));
        for (size_t k = 0; k < cnt; k++) {
            const rv_ynode *s = in->kind == RV_YAML_SEQ ? in->vals[k] : in;
            rv_err *err = resolve_ref(js, s, what, &n->inputs[k]);
            if (err)
                return err;
            if (n->inputs[k].node == i)
                return rv_yerr(s, RV_ERR_INVALID, "%s: a node cannot be its own input", what);
            for (size_t j = 0; j < k; j++)
                if (n->inputs[j].node == n->inputs[k].node && n->inputs[j].port == n->inputs[k].port)
                    return rv_yerr(s, RV_ERR_INVALID, "%s: input '%s' is listed twice", what, s->str);
        }
    }
    return NULL;
}

static rv_err *resolve_inputs(rv_jobspec *js, raw_node *raws)
{
    int *late_of = rv_xcalloc((size_t)js->nnodes + 1, sizeof(int));
    rv_err *err = resolve_late_outputs(js, raws, late_of);
    if (!err)
        err = resolve_node_inputs(js, raws, late_of);
    free(late_of);
    return err;
}

/* Kahn's algorithm; on a cycle, walks it to name every node on it. */
static rv_err *topo_sort(rv_jobspec *js, raw_node *raws)
{
    int n = js->nnodes;
    int *indeg = rv_xcalloc((size_t)n, sizeof(int)), *order = rv_xcalloc((size_t)n, sizeof(int));
    int *pos = rv_xcalloc((size_t)n, sizeof(int));
    for (int i = 0; i < n; i++)
        indeg[i] = js->nodes[i].ninputs;
    int head = 0, tail = 0;
    for (int i = 0; i < n; i++)
        if (indeg[i] == 0)
            order[tail++] = i;
    while (head < tail) {
        int u = order[head++];
        for (int v = 0; v < n; v++)
            for (int k = 0; k < js->nodes[v].ninputs; k++)
                if (js->nodes[v].inputs[k].node == u && --indeg[v] == 0)
                    order[tail++] = v;
    }
    rv_err *err = NULL;
    if (tail < n) {
        /* Some node with indeg > 0 lies on or behind a cycle: follow inputs
         * until a node repeats. */
        int start = 0;
        while (indeg[start] == 0)
            start++;
        int *seen = rv_xcalloc((size_t)n, sizeof(int));
        int u = start;
        while (!seen[u]) {
            seen[u] = 1;
            for (int k = 0; k < js->nodes[u].ninputs; k++)
                if (indeg[js->nodes[u].inputs[k].node] > 0) {
                    u = js->nodes[u].inputs[k].node;
                    break;
                }
        }
        char path[1024] = "";
        int v = u;
        do {
            snprintf(path + strlen(path), sizeof(path) - strlen(path), "%s <- ", js->nodes[v].id);
            for (int k = 0; k < js->nodes[v].ninputs; k++)
                if (indeg[js->nodes[v].inputs[k].node] > 0 && seen[js->nodes[v].inputs[k].node]) {
                    v = js->nodes[v].inputs[k].node;
                    break;
                }
        } while (v != u);
        snprintf(path + strlen(path), sizeof(path) - strlen(path), "%s", js->nodes[u].id);
        err = rv_yerr(js->nodes[u].ynode, RV_ERR_INVALID, "cycle in the job graph: %s", path);
        free(seen);
        goto out;
    }
    /* Reorder nodes (and remap input references). */
    for (int i = 0; i < n; i++)
        pos[order[i]] = i;
    rv_node *sorted = rv_xcalloc((size_t)n, sizeof(rv_node));
    raw_node *rsorted = rv_xcalloc((size_t)n, sizeof(raw_node));
    for (int i = 0; i < n; i++) {
        sorted[pos[i]] = js->nodes[i];
        rsorted[pos[i]] = raws[i];
    }
    for (int i = 0; i < n; i++)
        for (int k = 0; k < sorted[i].ninputs; k++)
            sorted[i].inputs[k].node = pos[sorted[i].inputs[k].node];
    free(js->nodes);
    js->nodes = sorted;
    memcpy(raws, rsorted, (size_t)n * sizeof(raw_node));
    free(rsorted);
out:
    free(indeg);
    free(order);
    free(pos);
    return err;
}

/* ---- pass 4: planning ---- */

static rv_err *expr_error(const rv_ynode *node, rv_err *err, size_t off, const char *what)
{
    rv_err *out = rv_yerr_at(node, off, rv_err_code(err), "%s: %s", what, rv_err_msg(err));
    rv_err_free(err);
    return out;
}

static rv_err *plan_keys(rv_jobspec *js, rv_node *n, rv_schema *in, const char *what)
{
    const rv_ynode *kb = rv_ymap_get(n->ynode, "key_by");
    n->key_schema = rv_schema_new();
    for (int k = 0; k < n->nkeys; k++) {
        const rv_ynode *item = kb->kind == RV_YAML_SEQ ? kb->vals[k] : kb;
        const rv_ynode *src = item;
        const char *name = NULL;
        if (item->kind == RV_YAML_MAP) {
            if (item->n != 1)
                return rv_yerr(item, RV_ERR_INVALID, "%s: a named key is written '- name: expression'", what);
            name = item->keys[0]->str;
            src = item->vals[0];
        }
        if (src->kind != RV_YAML_SCALAR)
            return rv_yerr(src, RV_ERR_INVALID, "%s: a key must be an expression", what);
        rv_expr *e = NULL;
        size_t off = 0;
        rv_err *err = rv_expr_compile(src->str, in, &e, &off);
        if (err)
            return expr_error(src, err, off, what);
        char gen[256];
        if (!name) {
            /* A bare field keeps its name; other expressions are key<i>. */
            const char *field = rv_expr_field_name(e);
            if (field)
                snprintf(gen, sizeof(gen), "%s", field);
            else
                snprintf(gen, sizeof(gen), "key%d", k);
            name = gen;
        }
        if (rv_schema_find(n->key_schema, name) >= 0) {
            rv_expr_free(e);
            return rv_yerr(src, RV_ERR_INVALID, "%s: key name '%s' is used twice", what, name);
        }
        rv_type t = rv_expr_type(e);
        rv_expr_free(e);
        if (t == RV_T_NULL)
            return rv_yerr(src, RV_ERR_TYPE, "%s: a key cannot be the literal null", what);
        rv_schema_add(n->key_schema, name, t);
        n->key_exprs[k] = src->str;
    }
    (void)js;
    return NULL;
}

static rv_err *plan_node(rv_jobspec *js, rv_node *n)
{
    char what[200];
    snprintf(what, sizeof(what), "%s '%s'", rv_plugin_kind_name(n->plugin->kind), n->id);
    rv_schema *ins[64];
    const char *in_ids[64];
    if (n->ninputs > 64)
        return rv_yerr(n->ynode, RV_ERR_INVALID, "%s: too many inputs (at most 64)", what);
    for (int k = 0; k < n->ninputs; k++) {
        ins[k] = rv_jobspec_port_schema(js, n->inputs[k]);
        in_ids[k] = js->nodes[n->inputs[k].node].id;
        if (!ins[k]) {
            const rv_ynode *at = rv_ymap_get(n->ynode, "input");
            return rv_yerr(at ? at : n->ynode, RV_ERR_INVALID, "%s: '%s' has no %s output (only window_aggregate has one)",
                           what, in_ids[k], rv_port_name(n->inputs[k].port));
        }
    }
    if (n->plugin->kind == RV_PLUGIN_SOURCE && !n->declared)
        return rv_yerr(n->ynode, RV_ERR_INVALID, "%s: missing required key 'schema'", what);
    /* Event-time field carried from the inputs. */
    const char *etf = NULL;
    if (n->plugin->kind == RV_PLUGIN_SOURCE) {
        if (n->has_event_time)
            etf = n->declared->fields[n->event_time_index].name;
    } else {
        for (int k = 0; k < n->ninputs; k++) {
            const char *f = n->inputs[k].port == RV_PORT_MAIN ? js->nodes[n->inputs[k].node].event_time_field : NULL;
            if (!f || (k > 0 && (!etf || strcmp(f, etf)))) {
                etf = NULL;
                break;
            }
            etf = f;
        }
    }
    rv_err *err;
    if (n->nkeys && (err = plan_keys(js, n, ins[0], what)))
        return err;
    rv_plan p;
    memset(&p, 0, sizeof(p));
    p.id = n->id;
    p.config = n->config;
    p.node = n->ynode;
    p.ninputs = n->ninputs;
    p.inputs = ins;
    p.input_ids = in_ids;
    p.declared = n->declared;
    p.keys = n->key_schema;
    p.event_time_field = etf;
    if (n->ninputs > 0 && etf)
        n->input_event_time_field = rv_xstrdup(etf);
    if (n->plugin->plan && (err = n->plugin->plan(&p))) {
        rv_schema_unref(p.output);
        return err;
    }
    if (n->plugin->kind != RV_PLUGIN_SINK && !p.output)
        return rv_err_new(RV_ERR_INTERNAL, "%s: plugin '%s' planned no output schema", what, n->plugin->name);
    n->outputs[RV_PORT_MAIN] = p.output;
    n->outputs[RV_PORT_LATE] = p.late_output;
    if (n->plugin->kind == RV_PLUGIN_SOURCE)
        n->outputs[RV_PORT_DEAD_LETTER] = rv_dead_letter_schema();
    if (etf && p.output) {
        int idx = rv_schema_find(p.output, etf);
        if (idx >= 0 && p.output->fields[idx].type == RV_T_TIMESTAMP)
            n->event_time_field = rv_xstrdup(etf);
    }
    if (p.max_parallelism == 1 && n->parallelism > 1) {
        if (n->parallelism_set)
            return rv_yerr(rv_ymap_get(n->ynode, "parallelism"), RV_ERR_INVALID, "%s: '%s' runs with parallelism 1 only", what, n->plugin->name);
        n->parallelism = 1;
    }
    /* A node after single-instance nodes (an unkeyed top_n) stays single
     * unless told otherwise, so their ordered output is not spread out. */
    bool after_single = n->ninputs > 0 && !n->nkeys;
    for (int k = 0; k < n->ninputs; k++)
        after_single = after_single && js->nodes[n->inputs[k].node].single;
    n->single = p.max_parallelism == 1 || (after_single && !n->parallelism_set);
    if (n->single)
        n->parallelism = 1;
    if (n->nkeys && n->parallelism > js->max_parallelism)
        return rv_yerr(n->ynode, RV_ERR_INVALID, "%s: parallelism %d exceeds max_parallelism %d", what, n->parallelism, js->max_parallelism);
    return NULL;
}

static rv_err *check_consumers(rv_jobspec *js)
{
    for (int i = 0; i < js->nnodes; i++) {
        rv_node *n = &js->nodes[i];
        if (n->plugin->kind != RV_PLUGIN_SOURCE)
            continue;
        bool dl_used = false;
        for (int j = 0; j < js->nnodes; j++)
            for (int k = 0; k < js->nodes[j].ninputs; k++)
                if (js->nodes[j].inputs[k].node == i && js->nodes[j].inputs[k].port == RV_PORT_DEAD_LETTER)
                    dl_used = true;
        if (n->on_error == RV_ON_ERROR_DEAD_LETTER && !dl_used)
            return rv_yerr(rv_ymap_get(n->ynode, "on_error"), RV_ERR_INVALID,
                           "source '%s': on_error: dead_letter needs a sink reading 'input: %s.dead_letter'", n->id, n->id);
        if (dl_used && n->on_error != RV_ON_ERROR_DEAD_LETTER)
            return rv_yerr(n->ynode, RV_ERR_INVALID, "source '%s': '%s.dead_letter' is read but on_error is not dead_letter", n->id, n->id);
    }
    return NULL;
}

static rv_err *parse_section(rv_jobspec *js, raw_node **raws, const rv_ynode *list, rv_plugin_kind kind, const char *key)
{
    if (!list)
        return NULL;
    if (list->kind != RV_YAML_SEQ)
        return rv_yerr(list, RV_ERR_INVALID, "'%s' must be a list (items start with '- ')", key);
    for (size_t i = 0; i < list->n; i++) {
        js->nodes = rv_xrealloc(js->nodes, (size_t)(js->nnodes + 1) * sizeof(rv_node));
        *raws = rv_xrealloc(*raws, (size_t)(js->nnodes + 1) * sizeof(raw_node));
        rv_node *n = &js->nodes[js->nnodes];
        memset(n, 0, sizeof(*n));
        memset(&(*raws)[js->nnodes], 0, sizeof(raw_node));
        n->parallelism = js->parallelism;
        js->nnodes++;
        rv_err *err = parse_node(js, n, &(*raws)[js->nnodes - 1], list->vals[i], kind);
        if (err)
            return err;
    }
    return NULL;
}

static rv_err *plan_all(rv_jobspec *js)
{
    for (int i = 0; i < js->nnodes; i++) {
        rv_node *n = &js->nodes[i];
        for (int p = 0; p < RV_NPORTS; p++) {
            rv_schema_unref(n->outputs[p]);
            n->outputs[p] = NULL;
        }
        rv_schema_unref(n->key_schema);
        n->key_schema = NULL;
        free(n->event_time_field);
        n->event_time_field = NULL;
        free(n->input_event_time_field);
        n->input_event_time_field = NULL;
        rv_err *err = plan_node(js, n);
        if (err)
            return err;
    }
    return NULL;
}

rv_err *rv_jobspec_parse(const char *text, size_t len, const char *file, rv_jobspec **out)
{
    rv_jobspec *js = rv_xcalloc(1, sizeof(*js));
    atomic_init(&js->refs, 1);
    raw_node *raws = NULL;
    job_keys jk;
    memset(&jk, 0, sizeof(jk));
    rv_err *err = rv_yaml_parse(text, len, file, &js->doc);
    if (err)
        goto fail;
    const rv_ynode *root = rv_ydoc_root(js->doc);
    if (root->kind != RV_YAML_MAP) {
        err = rv_yerr(root, RV_ERR_INVALID, "a job file must be a map with name, sources, operators and sinks");
        goto fail;
    }
    if ((err = rv_config_apply(job_table, NJOB_KEYS, root, NULL, "job", &jk)))
        goto fail;
    js->name = jk.name;
    jk.name = NULL;
    js->parallelism = (int)jk.parallelism;
    js->max_parallelism = (int)jk.max_parallelism;
    js->buffer_timeout_ms = jk.buffer_timeout_ms;
    js->channel_capacity = (int)jk.channel_capacity;
    if ((err = parse_state(jk.state, &js->state)) ||
        (err = parse_recovery(jk.checkpointing, jk.restart, &js->checkpointing, &js->restart)))
        goto fail;
    if ((err = parse_section(js, &raws, jk.sources, RV_PLUGIN_SOURCE, "sources")) ||
        (err = parse_section(js, &raws, jk.operators, RV_PLUGIN_OPERATOR, "operators")) ||
        (err = parse_section(js, &raws, jk.sinks, RV_PLUGIN_SINK, "sinks")))
        goto fail;
    if (jk.sources->n == 0) {
        err = rv_yerr(jk.sources, RV_ERR_INVALID, "a job needs at least one source");
        goto fail;
    }
    if (jk.sinks->n == 0) {
        err = rv_yerr(jk.sinks, RV_ERR_INVALID, "a job needs at least one sink");
        goto fail;
    }
    if ((err = resolve_inputs(js, raws)) || (err = topo_sort(js, raws)) || (err = check_consumers(js)) ||
        (err = plan_all(js)))
        goto fail;
    free(raws);
    *out = js;
    return NULL;
fail:
    free(jk.name);
    free(raws);
    rv_jobspec_unref(js);
    return err;
}

rv_err *rv_jobspec_load(const char *path, rv_jobspec **out)
{
    char *text = NULL;
    size_t len = 0;
    rv_err *err = rv_file_read(path, RV_JOBSPEC_MAX_BYTES, &text, &len);
    if (err)
        return rv_err_wrap(err, "job file");
    err = rv_jobspec_parse(text, len, path, out);
    free(text);
    return err;
}

rv_err *rv_jobspec_set_parallelism(rv_jobspec *js, int p)
{
    if (p < 1 || p > 1024)
        return rv_err_new(RV_ERR_INVALID, "parallelism must be between 1 and 1024, got %d", p);
    js->parallelism = p;
    for (int i = 0; i < js->nnodes; i++)
        if (!js->nodes[i].parallelism_set)
            js->nodes[i].parallelism = p;
    return plan_all(js);
}

void rv_jobspec_doc(FILE *out)
{
    rv_config_doc(job_table, NJOB_KEYS, out);
    fprintf(out, "\nKeys of `state`:\n\n");
    rv_config_doc(state_table, NSTATE_KEYS, out);
    fprintf(out, "\nKeys of `checkpointing`:\n\n");
    rv_config_doc(chk_table, NCHK_KEYS, out);
    fprintf(out, "\nKeys of `restart`:\n\n");
    rv_config_doc(restart_table, NRESTART_KEYS, out);
}
