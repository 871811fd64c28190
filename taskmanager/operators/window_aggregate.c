/* window_aggregate operator: keyed tumbling, sliding and session window
 * aggregation in event time or processing time, with allowed lateness and
 * a side output for late rows. All state lives in the instance's keyed
 * state (rv_state.h), so it spills to RocksDB past the memory budget.
 *
 * State per key (key_by tuple), namespace = window start (tumbling,
 * sliding) or session id:
 *   SID_ACC   an 8-byte header (flags) then the accumulators of every
 *             aggregate call (window_acc.h; their variable parts use the
 *             state ids from SID_VAR on)
 *   SID_SESS  (namespace 0) the key's open sessions: {start, end, id}
 * and one event-time (or processing-time) timer per window at end - 1
 * that fires it, plus one at end - 1 + allowed_lateness that frees it.
 * Timers pop in (time, registration) order, so windows fire in end order
 * and the rows of one window come in the order their keys first appeared:
 * the output is deterministic for a given sequence of input batches and
 * watermarks, and identical for both state backends. (How many update
 * rows allowed lateness produces depends on that batching — one per batch
 * that touches a fired window — but the last row of a window does not.)
 *
 * Per batch the work is column-wise: keys and arguments are evaluated over
 * the batch, each (row, window) pair costs one state probe, then the
 * accumulators are folded call by call. Sessions: a row opens [t, t + gap)
 * and merges every session of its key it overlaps (a late row can bridge
 * two sessions); the merged session keeps the smallest id.
 *
 * Event time: a window fires when the watermark reaches its end - 1. A row
 * is late for a window when the watermark has passed end - 1 +
 * allowed_lateness; a row late for all of its windows goes to the late
 * output (`<id>.late`) and is counted. A row for a window that fired but is
 * within the lateness updates it, and the window's row is emitted again
 * (is_update = true) after the batch. Rows with a null event time are
 * dropped and counted. Processing time: windows come from the wall clock
 * when a batch arrives and processing-time timers fire them. */
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rv_expr.h"
#include "rv_hash.h"
#include "rv_log.h"
#include "rv_mem.h"
#include "rv_plugin.h"
#include "rv_state.h"
#include "row_keys.h"
#include "window_acc.h"

#define OUT_ROWS 4096u
/* Window sizes up to ~139 years and event times within +-2^62 ms keep
 * every window bound computation inside int64. */
#define MAX_SIZE_MS ((int64_t)1 << 42)
#define MAX_TS ((int64_t)1 << 62)
/* A row belongs to size/slide sliding windows: bound the work per row. */
#define MAX_OVERLAP 1000

enum { TIME_EVENT = 0, TIME_PROCESSING = 1 };
static const char *const time_choices[] = {"event", "processing", NULL};

typedef struct wagg_cfg {
    const rv_ynode *window;
    int time;
    const rv_ynode *aggregates;
    char *event_time_field;
    int64_t allowed_lateness;
    char *late_output;
} wagg_cfg;

static const rv_cfg_key wagg_keys[] = {
    {.name = "window",
     .type = RV_CFG_NODE,
     .offset = offsetof(wagg_cfg, window),
     .doc = "The window: `{tumbling: 10s}`, `{sliding: {size: 1m, slide: 10s}}` (slide <= size; "
            "starts are multiples of the slide since the epoch; the slide need not divide the size) "
            "or `{session: {gap: 30s}}` (per key, rows less than `gap` apart are one session).",
     .flags = RV_CFG_REQUIRED},
    {.name = "time",
     .type = RV_CFG_ENUM,
     .def = "event",
     .offset = offsetof(wagg_cfg, time),
     .doc = "`event`: windows by the rows' event time, fired by watermarks; `processing`: by the "
            "wall clock when rows arrive, fired by timers.",
     .choices = time_choices},
    {.name = "aggregates",
     .type = RV_CFG_NODE,
     .offset = offsetof(wagg_cfg, aggregates),
     .doc = "Map of output field name to aggregate expression, in output order: count() "
            "count(x) sum(x) min(x) max(x) avg(x) first(x) last(x) count_distinct(x) "
            "approx_count_distinct(x) combined with operators and literals, e.g. "
            "`{qps: sum(requests) / 10, n: count()}`. Nulls are ignored; sum/min/max/avg/first/last "
            "of no value is null. first/last: the value of the row with the smallest/largest event "
            "time (ties: arrival order). approx_count_distinct: HyperLogLog with 4096 registers "
            "(standard error about 1.6%; exact-ish below a few hundred values).",
     .flags = RV_CFG_REQUIRED},
    {.name = "event_time_field",
     .type = RV_CFG_STRING,
     .offset = offsetof(wagg_cfg, event_time_field),
     .doc = "Timestamp field holding event time (default: the `event_time` field of the "
            "sources, when it reaches this operator unchanged)."},
    {.name = "allowed_lateness",
     .type = RV_CFG_DURATION,
     .def = "0",
     .offset = offsetof(wagg_cfg, allowed_lateness),
     .doc = "Event time: how long after a window fired its state is kept. A row arriving in that "
            "time updates its window and the window's row is emitted again with the full updated "
            "aggregates. When set (> 0) the output has a last column `is_update` (false for the "
            "first firing of a window, true for re-emissions); a consumer keeps the last row per key "
            "and window.",
     .min = 0,
     .max = MAX_SIZE_MS},
    {.name = "late_output",
     .type = RV_CFG_STRING,
     .offset = offsetof(wagg_cfg, late_output),
     .doc = "Id of a sink (or operator) that receives the rows too late for every window they "
            "belong to (past allowed_lateness), unchanged; that node takes no `input` of its own. "
            "Equivalent: `input: <this id>.late` on the sink. Late rows are counted either way."},
};

/* What plan() and open() both derive from the config. */
enum { WIN_TUMBLING, WIN_SLIDING, WIN_SESSION };

typedef struct wspec {
    int kind;
    int64_t size, slide; /* tumbling, sliding */
    int64_t gap;         /* session */
    int64_t lateness;
    bool processing;
    int ts_field; /* event time: index in the input; -1 otherwise */
    int naggs;
    rv_agg_expr **aggs;
    const char **names; /* point into the YAML tree */
} wspec;

/* ---- configuration ---- */

typedef struct sliding_cfg {
    int64_t size, slide;
} sliding_cfg;

typedef struct session_cfg {
    int64_t gap;
} session_cfg;

static const rv_cfg_key session_keys[] = {
    {.name = "gap", .type = RV_CFG_DURATION, .offset = offsetof(session_cfg, gap),
     .doc = "Inactivity that ends a session.", .flags = RV_CFG_REQUIRED, .min = 1, .max = MAX_SIZE_MS},
};

static const rv_cfg_key sliding_keys[] = {
    {.name = "size", .type = RV_CFG_DURATION, .offset = offsetof(sliding_cfg, size),
     .doc = "Window length.", .flags = RV_CFG_REQUIRED, .min = 1, .max = MAX_SIZE_MS},
    {.name = "slide", .type = RV_CFG_DURATION, .offset = offsetof(sliding_cfg, slide),
     .doc = "Distance between window starts.", .flags = RV_CFG_REQUIRED, .min = 1,
     .max = MAX_SIZE_MS},
};

static rv_err *parse_window(const rv_ynode *w, const char *id, const rv_ynode *node, wspec *sp)
{
    static const char *const kinds[] = {"tumbling", "sliding", "session"};
    if (!w)
        return rv_yerr(node, RV_ERR_INVALID, "operator '%s': missing required key 'window'", id);
    if (w->kind != RV_YAML_MAP || w->n != 1)
        return rv_yerr(w, RV_ERR_INVALID,
                       "operator '%s': 'window' must name one kind of window, e.g. "
                       "{tumbling: 10s} or {sliding: {size: 1m, slide: 10s}}",
                       id);
    const rv_ynode *k = w->keys[0], *v = w->vals[0];
    if (strcmp(k->str, "tumbling") == 0) {
        rv_err *err = rv_ynode_duration(v, &sp->size);
        if (err) {
            rv_err_free(err);
            return rv_yerr(v, RV_ERR_INVALID,
                           "operator '%s': a tumbling window needs a duration such as 10s, 1m "
                           "or 500ms, e.g. {tumbling: 10s}",
                           id);
        }
        if (sp->size < 1 || sp->size > MAX_SIZE_MS)
            return rv_yerr(v, RV_ERR_INVALID,
                           "operator '%s': a window size must be between 1ms and %" PRId64 "ms",
                           id, MAX_SIZE_MS);
        sp->slide = sp->size;
        sp->kind = WIN_TUMBLING;
        return NULL;
    }
    if (strcmp(k->str, "sliding") == 0) {
        if (v->kind != RV_YAML_MAP)
            return rv_yerr(v, RV_ERR_INVALID,
                           "operator '%s': a sliding window is written {size: 1m, slide: 10s}", id);
        char what[160];
        snprintf(what, sizeof(what), "operator '%s': sliding window", id);
        sliding_cfg sc;
        memset(&sc, 0, sizeof(sc));
        rv_err *err = rv_config_apply(sliding_keys, 2, v, NULL, what, &sc);
        if (err)
            return err;
        if (sc.slide > sc.size)
            return rv_yerr(v, RV_ERR_INVALID, "%s: slide must not exceed size", what);
        if (sc.size / sc.slide > MAX_OVERLAP)
            return rv_yerr(v, RV_ERR_INVALID,
                           "%s: size/slide is %" PRId64 "; at most %d windows may overlap", what,
                           sc.size / sc.slide, MAX_OVERLAP);
        sp->size = sc.size;
        sp->slide = sc.slide;
        sp->kind = WIN_SLIDING;
        return NULL;
    }
    if (strcmp(k->str, "session") == 0) {
        if (v->kind != RV_YAML_MAP)
            return rv_yerr(v, RV_ERR_INVALID, "operator '%s': a session window is written {gap: 30s}", id);
        char what[160];
        snprintf(what, sizeof(what), "operator '%s': session window", id);
        session_cfg sc;
        memset(&sc, 0, sizeof(sc));
        rv_err *err = rv_config_apply(session_keys, 1, v, NULL, what, &sc);
        if (err)
            return err;
        sp->gap = sc.gap;
        sp->kind = WIN_SESSION;
        return NULL;
    }
    const char *hint = rv_suggest(k->str, kinds, 3);
    if (hint)
        return rv_yerr(k, RV_ERR_INVALID,
                       "operator '%s': unknown window kind '%s' (did you mean '%s'?)", id, k->str,
                       hint);
    return rv_yerr(k, RV_ERR_INVALID,
                   "operator '%s': unknown window kind '%s' (expected tumbling, sliding or session)", id,
                   k->str);
}

static bool reserved_name(const char *name, const rv_schema *keys)
{
    return strcmp(name, "window_start") == 0 || strcmp(name, "window_end") == 0 || strcmp(name, "is_update") == 0 ||
           (keys && rv_schema_find(keys, name) >= 0);
}

static rv_err *parse_aggregates(const rv_ynode *a, const rv_schema *in, const rv_schema *keys,
                                const char *id, const rv_ynode *node, wspec *sp)
{
    if (!a)
        return rv_yerr(node, RV_ERR_INVALID, "operator '%s': missing required key 'aggregates'",
                       id);
    if (a->kind != RV_YAML_MAP || a->n == 0)
        return rv_yerr(a, RV_ERR_INVALID,
                       "operator '%s': 'aggregates' must map output names to aggregate "
                       "expressions, e.g. {n: count(), qps: sum(requests) / 10}",
                       id);
    sp->aggs = rv_xcalloc(a->n, sizeof(rv_agg_expr *));
    sp->names = rv_xcalloc(a->n, sizeof(char *));
    for (size_t i = 0; i < a->n; i++) {
        const rv_ynode *k = a->keys[i], *v = a->vals[i];
        if (k->len == 0)
            return rv_yerr(k, RV_ERR_INVALID, "operator '%s': an aggregate needs a name", id);
        if (reserved_name(k->str, keys))
            return rv_yerr(k, RV_ERR_INVALID,
                           "operator '%s': output field '%s' is already a key or window bound; "
                           "choose another name",
                           id, k->str);
        if (v->kind != RV_YAML_SCALAR)
            return rv_yerr(v, RV_ERR_INVALID,
                           "operator '%s': aggregate '%s' must be an expression, not a %s", id,
                           k->str, rv_ynode_kind_name(v->kind));
        size_t off = 0;
        rv_err *err = rv_expr_compile_agg(v->str, in, &sp->aggs[i], &off);
        if (err) {
            rv_err *pos = rv_yerr_at(v, off, rv_err_code(err), "operator '%s': %s", id,
                                     rv_err_msg(err));
            rv_err_free(err);
            return pos;
        }
        sp->naggs = (int)i + 1;
        sp->names[i] = k->str;
        if (rv_expr_type(sp->aggs[i]->final) == RV_T_NULL)
            return rv_yerr(v, RV_ERR_TYPE,
                           "operator '%s': aggregate '%s' has no type; cast it, e.g. "
                           "int(null)",
                           id, k->str);
    }
    return NULL;
}

/* The event-time field: checks it exists as a timestamp. */
static rv_err *resolve_time(const wagg_cfg *cfg, const rv_schema *in, const char *etf_default,
                            const char *id, const rv_ynode *node, wspec *sp)
{
    sp->ts_field = -1;
    if (sp->processing)
        return NULL;
    const char *name = cfg->event_time_field ? cfg->event_time_field : etf_default;
    const rv_ynode *at = node ? rv_ymap_get(node, "event_time_field") : NULL;
    if (!at && node) {
        at = rv_ymap_key(node, "time");
        if (!at)
            at = rv_ymap_key(node, "window");
        if (!at)
            at = node;
    }
    int idx = name ? rv_schema_find(in, name) : -1;
    if (idx >= 0 && in->fields[idx].type == RV_T_TIMESTAMP) {
        sp->ts_field = idx;
        return NULL;
    }
    char detail[200] = "";
    if (name && idx < 0)
        snprintf(detail, sizeof(detail), " ('%s' is not an input field)", name);
    else if (name)
        snprintf(detail, sizeof(detail), " ('%s' is %s)", name,
                 rv_type_name(in->fields[idx].type));
    return rv_yerr(at, RV_ERR_TYPE,
                   "window_aggregate '%s': event time needs a timestamp field%s; set event_time "
                   "on the source or event_time_field here",
                   id, detail);
}

static void spec_fini(wspec *sp)
{
    for (int i = 0; i < sp->naggs; i++)
        rv_agg_expr_free(sp->aggs[i]);
    free(sp->aggs);
    free(sp->names);
    memset(sp, 0, sizeof(*sp));
}

/* node: the operator's YAML map, for positions (NULL at run time). */
static rv_err *spec_build(const wagg_cfg *cfg, const rv_schema *in, const rv_schema *keys,
                          const char *etf_default, const char *id, const rv_ynode *node,
                          wspec *sp)
{
    memset(sp, 0, sizeof(*sp));
    sp->processing = cfg->time == TIME_PROCESSING;
    sp->lateness = sp->processing ? 0 : cfg->allowed_lateness;
    rv_err *err = parse_window(cfg->window, id, node, sp);
    if (!err)
        err = resolve_time(cfg, in, etf_default, id, node, sp);
    if (!err)
        err = parse_aggregates(cfg->aggregates, in, keys, id, node, sp);
    int ncalls = 0;
    for (int a = 0; !err && a < sp->naggs; a++)
        ncalls += sp->aggs[a]->ncalls;
    if (!err && ncalls > RV_WACC_MAX_CALLS)
        err = rv_yerr(cfg->aggregates, RV_ERR_INVALID, "operator '%s': %d aggregate calls; at most %d are supported", id,
                      ncalls, RV_WACC_MAX_CALLS);
    if (err)
        spec_fini(sp);
    return err;
}

static rv_err *wagg_plan(rv_plan *p)
{
    wspec sp;
    rv_err *err = spec_build(p->config, p->inputs[0], p->keys, p->event_time_field, p->id,
                             p->node, &sp);
    if (err)
        return err;
    for (int k = 0; p->keys && k < p->keys->nfields; k++) {
        const char *name = p->keys->fields[k].name;
        if (strcmp(name, "window_start") == 0 || strcmp(name, "window_end") == 0) {
            spec_fini(&sp);
            const rv_ynode *kb = rv_ymap_get(p->node, "key_by");
            return rv_yerr(kb ? kb : p->node, RV_ERR_INVALID,
                           "operator '%s': a key cannot be named '%s' (an output field of "
                           "window_aggregate); name it, e.g. key_by: [{ws: %s}]",
                           p->id, name, name);
        }
    }
    rv_schema *out = rv_schema_new();
    for (int k = 0; p->keys && k < p->keys->nfields; k++)
        rv_schema_add(out, p->keys->fields[k].name, p->keys->fields[k].type);
    rv_schema_add(out, "window_start", RV_T_TIMESTAMP);
    rv_schema_add(out, "window_end", RV_T_TIMESTAMP);
    for (int a = 0; a < sp.naggs; a++)
        rv_schema_add(out, sp.names[a], rv_expr_type(sp.aggs[a]->final));
    if (sp.lateness > 0)
        rv_schema_add(out, "is_update", RV_T_BOOL);
    p->output = out;
    if (!sp.processing)
        p->late_output = rv_schema_ref(p->inputs[0]);
    spec_fini(&sp);
    return NULL;
}

/* ---- instance ---- */

enum { SID_ACC = 0, SID_SESS = 1, SID_VAR = 2 };
/* Header of a window's accumulators: flags, then (8 bytes at offset 8)
 * the window end its row was last emitted for. */
#define HDR 16u
#define F_EMITTED 1u /* the window's row was emitted at least once */
#define F_PENDING 2u /* an update row is due after this batch */

static int64_t fired_end(const uint8_t *acc)
{
    int64_t e;
    memcpy(&e, acc + 8, 8);
    return e;
}

static void set_fired_end(uint8_t *acc, int64_t e) { memcpy(acc + 8, &e, 8); }

typedef struct session {
    int64_t start, end, id;
} session;

/* A window to emit: its key (bytes in fire_keys), namespace and bounds. */
typedef struct fire_item {
    size_t koff;
    uint32_t klen;
    uint16_t kg;
    uint64_t hash;
    int64_t ns, start, end;
    bool update, drop;
} fire_item;

/* A popped timer (its key bytes at koff in grp_keys). */
typedef struct timer_item {
    size_t koff;
    rv_skey key;
    int64_t ns, time;
} timer_item;

typedef struct wagg_state {
    wspec sp;
    char what[160];
    rv_schema *out;
    rv_state *s;
    rv_wacc *acc;
    uint32_t acc_size;
    int maxp;
    int nkeys;
    rv_row_keys *rk;
    /* aggregate calls, flattened over all aggregates */
    int ncalls;
    const rv_agg_call **calls;
    int *call_field;     /* input field of a bare field argument, else -1 */
    rv_column *arg_scratch;
    int *call_base;      /* per aggregate: index of its first call */
    rv_batch **final_in; /* per aggregate: batch of its final_schema, or NULL when direct */
    /* per-batch scratch */
    const rv_skey *skeys; /* the rows' keys */
    int64_t *times;
    size_t times_cap;
    rv_skey *pf_keys;    /* the (key, window) pairs of a batch, to prefetch */
    int64_t *pf_ns;
    size_t pf_cap, pf_kcap;
    rv_wacc_pair *pairs;
    size_t npairs, pair_cap;
    uint32_t *late_rows;
    size_t late_cap;
    session *sess;       /* a key's sessions while it is changed */
    size_t sess_cap;
    /* firing */
    fire_item *items;
    size_t nitems, item_cap;
    uint8_t *fire_keys;
    size_t fire_klen, fire_kcap;
    rv_wacc_item *witems;
    size_t witem_cap;
    timer_item *grp;     /* a group of popped timers */
    size_t grp_cap;
    uint8_t *grp_keys;
    size_t grp_kcap;
    rv_skey *grp_skeys;
    size_t grp_scap;
    int64_t *grp_ns;
    size_t grp_nscap;
    int64_t wm;
    uint64_t late, no_time;
} wagg_state;

static void wagg_close(void *state, rv_op_ctx *ctx)
{
    wagg_state *st = state;
    rv_row_keys_free(st->rk);
    for (int c = 0; c < st->ncalls; c++)
        rv_col_fini(&st->arg_scratch[c]);
    free(st->arg_scratch);
    free(st->calls);
    free(st->call_field);
    for (int a = 0; a < st->sp.naggs; a++)
        rv_batch_unref(st->final_in ? st->final_in[a] : NULL);
    free(st->final_in);
    free(st->call_base);
    spec_fini(&st->sp);
    rv_wacc_free(st->acc);
    free(st->times);
    free(st->pf_ns);
    free(st->pf_keys);
    free(st->pairs);
    free(st->late_rows);
    free(st->sess);
    free(st->items);
    free(st->fire_keys);
    free(st->witems);
    free(st->grp);
    free(st->grp_keys);
    free(st->grp_skeys);
    free(st->grp_ns);
    memset(st, 0, sizeof(*st));
}

/* Index of e's field in `in` when e is a bare field reference, else -1. */
static int bare_field(const rv_expr *e, const rv_schema *in)
{
    const char *f = e ? rv_expr_field_name(e) : NULL;
    return f ? rv_schema_find(in, f) : -1;
}

/* True when aggregate a's value is its one call's value unchanged. */
static bool direct_final(const rv_agg_expr *a)
{
    const char *f = rv_expr_field_name(a->final);
    return a->ncalls == 1 && f && strcmp(f, a->final_schema->fields[0].name) == 0;
}

static rv_err *setup(wagg_state *st, rv_op_ctx *ctx)
{
    const char *id = rv_ctx_id(ctx);
    const rv_schema *in = rv_ctx_input_schema(ctx, 0);
    const rv_schema *keys = rv_ctx_key_schema(ctx);
    rv_err *err = spec_build(rv_ctx_config(ctx), in, keys, rv_ctx_event_time_field(ctx), id, NULL,
                             &st->sp);
    if (err)
        return err;
    st->nkeys = rv_ctx_nkeys(ctx);
    if ((err = rv_row_keys_new(ctx, &st->rk)))
        return rv_err_wrap(err, "operator '%s'", id);
    int ncalls = 0;
    for (int a = 0; a < st->sp.naggs; a++)
        ncalls += st->sp.aggs[a]->ncalls;
    st->ncalls = ncalls;
    st->calls = rv_xcalloc((size_t)ncalls + 1, sizeof(rv_agg_call *));
    st->call_field = rv_xcalloc((size_t)ncalls + 1, sizeof(int));
    st->arg_scratch = rv_xcalloc((size_t)ncalls + 1, sizeof(rv_column));
    st->call_base = rv_xcalloc((size_t)st->sp.naggs, sizeof(int));
    st->final_in = rv_xcalloc((size_t)st->sp.naggs, sizeof(rv_batch *));
    rv_agg_call *flat = rv_xcalloc((size_t)ncalls + 1, sizeof(rv_agg_call));
    int c = 0;
    for (int a = 0; a < st->sp.naggs; a++) {
        const rv_agg_expr *ae = st->sp.aggs[a];
        st->call_base[a] = c;
        if (!direct_final(ae))
            st->final_in[a] = rv_batch_new(ae->final_schema, OUT_ROWS);
        for (int j = 0; j < ae->ncalls; j++, c++) {
            st->calls[c] = &ae->calls[j];
            flat[c] = ae->calls[j];
            st->call_field[c] = bare_field(ae->calls[j].arg, in);
            if (ae->calls[j].arg)
                rv_col_init(&st->arg_scratch[c], rv_expr_type(ae->calls[j].arg), OUT_ROWS);
        }
    }
    st->acc = rv_wacc_new(flat, ncalls, SID_VAR);
    st->acc_size = HDR + rv_wacc_size(st->acc);
    free(flat);
    return NULL;
}

static rv_err *wagg_open(void *state, rv_op_ctx *ctx)
{
    wagg_state *st = state;
    snprintf(st->what, sizeof(st->what), "window_aggregate '%s'", rv_ctx_id(ctx));
    st->wm = RV_WATERMARK_MIN;
    st->out = rv_ctx_output_schema(ctx);
    st->s = rv_ctx_state(ctx);
    st->maxp = rv_ctx_max_parallelism(ctx);
    rv_err *err = setup(st, ctx);
    if (err)
        wagg_close(st, ctx); /* close() is not called when open() fails */
    return err;
}

static inline int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static inline rv_timer_domain domain(const wagg_state *st)
{
    return st->sp.processing ? RV_TIMER_PROCESSING : RV_TIMER_EVENT;
}

/* ---- sessions of one key ---- */

/* Loads the key's sessions into st->sess; returns their number. */
static size_t sess_load(wagg_state *st, const rv_skey *k)
{
    uint32_t len = 0;
    const uint8_t *p = rv_value_get(st->s, SID_SESS, k, 0, &len);
    size_t n = p ? len / sizeof(session) : 0;
    rv_xgrow((void **)&st->sess, &st->sess_cap, n + 1, sizeof(session));
    if (n)
        memcpy(st->sess, p, n * sizeof(session));
    return n;
}

static void sess_store(wagg_state *st, const rv_skey *k, size_t n)
{
    if (n == 0)
        rv_value_delete(st->s, SID_SESS, k, 0);
    else
        rv_value_put(st->s, SID_SESS, k, 0, st->sess, (uint32_t)(n * sizeof(session)));
}

/* The session with id `id` among st->sess[0..n), or -1. */
static ptrdiff_t sess_find(const wagg_state *st, size_t n, int64_t id)
{
    for (size_t i = 0; i < n; i++)
        if (st->sess[i].id == id)
            return (ptrdiff_t)i;
    return -1;
}

/* The bounds of window (k, ns): false if it no longer exists (a stale
 * timer). */
static bool window_bounds(wagg_state *st, const rv_skey *k, int64_t ns, int64_t *start, int64_t *end)
{
    if (st->sp.kind != WIN_SESSION) {
        *start = ns;
        *end = ns + st->sp.size;
        return true;
    }
    size_t n = sess_load(st, k);
    ptrdiff_t i = sess_find(st, n, ns);
    if (i < 0)
        return false;
    *start = st->sess[i].start;
    *end = st->sess[i].end;
    return true;
}

/* ---- emitting windows ---- */

static void add_item(wagg_state *st, const rv_skey *k, int64_t ns, int64_t start, int64_t end, bool update, bool drop)
{
    rv_xgrow((void **)&st->items, &st->item_cap, st->nitems + 1, sizeof(fire_item));
    rv_xgrow((void **)&st->fire_keys, &st->fire_kcap, st->fire_klen + k->len + 1, 1);
    memcpy(st->fire_keys + st->fire_klen, k->key, k->len);
    st->items[st->nitems++] = (fire_item){.koff = st->fire_klen, .klen = k->len, .kg = k->kg, .hash = k->hash,
                                          .ns = ns, .start = start, .end = end, .update = update, .drop = drop};
    st->fire_klen += k->len;
}

static rv_skey item_key(const wagg_state *st, const fire_item *it)
{
    return (rv_skey){.key = st->fire_keys + it->koff, .len = it->klen, .kg = it->kg, .hash = it->hash};
}

/* Deletes window (k, ns): accumulators, variable parts and, for sessions,
 * its entry in the key's session list. */
static void drop_window(wagg_state *st, const rv_skey *k, int64_t ns)
{
    rv_wacc_clear(st->acc, st->s, k, ns);
    rv_value_delete(st->s, SID_ACC, k, ns);
    if (st->sp.kind == WIN_SESSION) {
        size_t n = sess_load(st, k);
        ptrdiff_t i = sess_find(st, n, ns);
        if (i >= 0) {
            st->sess[i] = st->sess[n - 1];
            sess_store(st, k, n - 1);
        }
    }
}

/* Emits the rows of the windows in st->items (those without drop-only
 * marks), then deletes the windows marked drop. */
static rv_code flush_items(wagg_state *st, rv_op_ctx *ctx)
{
    size_t n = st->nitems;
    rv_xgrow((void **)&st->witems, &st->witem_cap, n + 1, sizeof(rv_wacc_item));
    uint32_t m = 0;
    int nk = st->nkeys;
    rv_batch *b = rv_batch_new(st->out, (uint32_t)(n ? n : 1));
    for (size_t i = 0; i < n; i++) {
        const fire_item *it = &st->items[i];
        if (it->update == false && it->drop && it->end == INT64_MIN)
            continue; /* cleanup only */
        rv_skey k = item_key(st, it);
        uint32_t len = 0;
        const uint8_t *acc = rv_value_get(st->s, SID_ACC, &k, it->ns, &len);
        if (!acc)
            continue;
        st->witems[m] = (rv_wacc_item){.acc = acc + HDR, .key = k, .ns = it->ns};
        const uint8_t *p = k.key;
        rv_key_decode(&p, b->cols, nk, m);
        b->cols[nk].d.i64[m] = it->start;
        b->cols[nk + 1].d.i64[m] = it->end;
        if (st->sp.lateness > 0)
            b->cols[b->schema->nfields - 1].d.b[m] = it->update;
        m++;
    }
    for (int a = 0; a < st->sp.naggs && m; a++) {
        rv_column *dst = &b->cols[nk + 2 + a];
        int base = st->call_base[a];
        rv_batch *fin = st->final_in[a];
        if (!fin) {
            rv_wacc_result(st->acc, st->s, base, st->witems, m, dst);
            continue;
        }
        rv_batch_reserve(fin, m);
        for (int j = 0; j < st->sp.aggs[a]->ncalls; j++)
            rv_wacc_result(st->acc, st->s, base + j, st->witems, m, &fin->cols[j]);
        fin->nrows = m;
        rv_expr_eval(st->sp.aggs[a]->final, fin, dst);
    }
    b->nrows = m;
    for (size_t i = 0; i < n; i++) {
        if (!st->items[i].drop)
            continue;
        rv_skey k = item_key(st, &st->items[i]);
        drop_window(st, &k, st->items[i].ns);
    }
    st->nitems = 0;
    st->fire_klen = 0;
    rv_code rc = rv_ctx_emit(ctx, b);
    /* Firing many windows is one long callback: keep the cache within its
     * budget as it goes (no state pointer is held here). */
    rv_err *err = rc == RV_OK ? rv_state_maintain(st->s) : NULL;
    if (err) {
        rv_ctx_fail(ctx, err);
        return RV_ERR_IO;
    }
    return rc;
}

/* A timer of window (k, ns) at `time` popped: fire it (time = end - 1) or
 * free it (time = end - 1 + lateness). */
static rv_code on_window_timer(wagg_state *st, rv_op_ctx *ctx, const rv_skey *k, int64_t ns, int64_t time)
{
    int64_t start, end;
    uint32_t len = 0;
    if (!rv_value_get(st->s, SID_ACC, k, ns, &len) || !window_bounds(st, k, ns, &start, &end))
        return RV_OK; /* stale: the window is gone */
    int64_t lat = st->sp.lateness;
    if (time == end - 1) {
        uint8_t *acc = rv_value_upsert(st->s, SID_ACC, k, ns, st->acc_size, NULL, NULL);
        bool update = (acc[0] & F_EMITTED) != 0;
        if (update && fired_end(acc) == end)
            return RV_OK; /* already emitted for this end */
        acc[0] = (uint8_t)((acc[0] | F_EMITTED) & ~F_PENDING);
        set_fired_end(acc, end);
        add_item(st, k, ns, start, end, update, lat == 0);
        if (lat > 0)
            rv_timer_register(st->s, domain(st), k, ns, end - 1 + lat);
    } else if (lat > 0 && time == end - 1 + lat) {
        add_item(st, k, ns, start, INT64_MIN, false, true);
    } else {
        return RV_OK; /* stale: the session grew since */
    }
    return st->nitems >= OUT_ROWS ? flush_items(st, ctx) : RV_OK;
}

/* Fires every window whose timer is at or before `upto`. Timers are
 * popped in groups whose windows are prefetched together. */
static rv_code fire_timers(wagg_state *st, rv_op_ctx *ctx, int64_t upto)
{
    rv_code rc = RV_OK;
    for (;;) {
        size_t g = 0, klen = 0;
        rv_skey k;
        int64_t ns, time;
        while (g < OUT_ROWS && rv_timer_pop(st->s, domain(st), upto, &k, &ns, &time)) {
            rv_xgrow((void **)&st->grp, &st->grp_cap, g + 1, sizeof(st->grp[0]));
            rv_xgrow((void **)&st->grp_keys, &st->grp_kcap, klen + k.len + 1, 1);
            memcpy(st->grp_keys + klen, k.key, k.len);
            st->grp[g] = (timer_item){.koff = klen, .key = k, .ns = ns, .time = time};
            klen += k.len;
            g++;
        }
        if (g == 0)
            break;
        rv_xgrow((void **)&st->grp_skeys, &st->grp_scap, g, sizeof(rv_skey));
        rv_xgrow((void **)&st->grp_ns, &st->grp_nscap, g, sizeof(int64_t));
        for (size_t i = 0; i < g; i++) {
            st->grp_skeys[i] = st->grp[i].key;
            st->grp_skeys[i].key = st->grp_keys + st->grp[i].koff;
            st->grp_ns[i] = st->grp[i].ns;
        }
        rv_state_prefetch(st->s, SID_ACC, st->grp_skeys, st->grp_ns, (uint32_t)g);
        for (size_t i = 0; i < g && rc == RV_OK; i++)
            rc = on_window_timer(st, ctx, &st->grp_skeys[i], st->grp_ns[i], st->grp[i].time);
        if (rc != RV_OK)
            return rc;
    }
    if (st->nitems)
        rc = flush_items(st, ctx);
    return rc;
}

/* ---- processing ---- */

static void ensure_scratch(wagg_state *st, uint32_t n)
{
    rv_xgrow((void **)&st->times, &st->times_cap, n, sizeof(int64_t));
    size_t per = st->sp.kind == WIN_SLIDING ? (size_t)(st->sp.size / st->sp.slide + 1) : 1;
    rv_xgrow((void **)&st->pf_ns, &st->pf_cap, (size_t)n * per, sizeof(int64_t));
    rv_xgrow((void **)&st->pf_keys, &st->pf_kcap, (size_t)n * per, sizeof(rv_skey));
    rv_xgrow((void **)&st->late_rows, &st->late_cap, n, sizeof(uint32_t));
    rv_xgrow((void **)&st->pairs, &st->pair_cap, (size_t)n * per, sizeof(rv_wacc_pair));
}

/* Folds the pending (row, window) pairs into every call. */
static void fold_pairs(wagg_state *st, const rv_batch *in)
{
    if (!st->npairs)
        return;
    for (int c = 0; c < st->ncalls; c++) {
        const rv_column *arg = NULL;
        if (st->call_field[c] >= 0) {
            arg = &in->cols[st->call_field[c]];
        } else if (st->calls[c]->arg) {
            rv_expr_eval(st->calls[c]->arg, in, &st->arg_scratch[c]);
            arg = &st->arg_scratch[c];
        }
        rv_wacc_fold(st->acc, st->s, c, arg, st->times, st->skeys, st->pairs, (uint32_t)st->npairs);
    }
    st->npairs = 0;
}

/* The window (k, ns) got a row: creates it (registering its firing timer
 * at end - 1) and notes an update when it was emitted already. */
static uint8_t *touch_window(wagg_state *st, rv_op_ctx *ctx, const rv_skey *k, int64_t ns, int64_t end)
{
    bool created;
    uint8_t *acc = rv_value_upsert(st->s, SID_ACC, k, ns, st->acc_size, NULL, &created);
    if (created) {
        rv_timer_register(st->s, domain(st), k, ns, end - 1);
        if (st->sp.processing)
            rv_ctx_timer_at(ctx, end);
        if (!st->sp.processing && end - 1 <= st->wm) {
            /* Past its end already (a late row within allowed lateness): its
             * row goes out after this batch, not at the next watermark. */
            acc[0] |= F_PENDING;
            add_item(st, k, ns, 0, 0, false, false);
        }
    } else if ((acc[0] & (F_EMITTED | F_PENDING)) == F_EMITTED && end - 1 <= st->wm) {
        acc[0] |= F_PENDING;
        add_item(st, k, ns, 0, 0, true, false); /* bounds are read when the update is emitted */
    }
    return acc;
}

/* Tumbling and sliding windows of row r at time t. */
static void assign_fixed(wagg_state *st, rv_op_ctx *ctx, uint32_t r, int64_t t)
{
    const rv_skey *k = &st->skeys[r];
    int64_t last = floor_div(t, st->sp.slide) * st->sp.slide;
    for (int64_t s = last; s > t - st->sp.size; s -= st->sp.slide) {
        if (!st->sp.processing && s + st->sp.size - 1 + st->sp.lateness <= st->wm)
            break; /* this and every earlier window is past its lateness */
        uint8_t *acc = touch_window(st, ctx, k, s, s + st->sp.size);
        st->pairs[st->npairs++] = (rv_wacc_pair){.acc = acc + HDR, .ns = s, .row = r};
    }
}

/* The session window of row r at time t, merging the sessions it bridges.
 * False when the row is late: it joins no open session and its own would
 * be past allowed lateness (an open session is never past it: it is freed
 * when it gets there). */
static bool assign_session(wagg_state *st, rv_op_ctx *ctx, const rv_batch *in, uint32_t r, int64_t t)
{
    const rv_skey *k = &st->skeys[r];
    int64_t lo = t, hi = t + st->sp.gap;
    size_t n = sess_load(st, k);
    ptrdiff_t surv = -1;
    size_t nover = 0;
    for (size_t i = 0; i < n; i++) {
        if (st->sess[i].start < hi && lo < st->sess[i].end) {
            nover++;
            if (surv < 0 || st->sess[i].id < st->sess[surv].id)
                surv = (ptrdiff_t)i;
        }
    }
    if (surv < 0 && !st->sp.processing && hi - 1 + st->sp.lateness <= st->wm)
        return false;
    if (surv < 0) {
        st->sess[n] = (session){.start = lo, .end = hi, .id = t};
        sess_store(st, k, n + 1);
        uint8_t *acc = touch_window(st, ctx, k, t, hi);
        st->pairs[st->npairs++] = (rv_wacc_pair){.acc = acc + HDR, .ns = t, .row = r};
        return true;
    }
    session sv = st->sess[surv];
    int64_t old_end = sv.end;
    if (nover > 1) {
        /* Merging deletes windows that pending pairs may point to. */
        fold_pairs(st, in);
        uint8_t *dst = rv_value_upsert(st->s, SID_ACC, k, sv.id, st->acc_size, NULL, NULL);
        size_t w = 0;
        for (size_t i = 0; i < n; i++) {
            session o = st->sess[i];
            bool merge = (ptrdiff_t)i != surv && o.start < hi && lo < o.end;
            if (!merge) {
                st->sess[w++] = o;
                continue;
            }
            uint32_t len = 0;
            const uint8_t *src = rv_value_get(st->s, SID_ACC, k, o.id, &len);
            if (src) {
                rv_wacc_merge(st->acc, st->s, k, dst + HDR, sv.id, src + HDR, o.id);
                dst[0] |= (uint8_t)(src[0] & F_EMITTED);
            }
            rv_wacc_clear(st->acc, st->s, k, o.id);
            rv_value_delete(st->s, SID_ACC, k, o.id);
            if (o.start < sv.start)
                sv.start = o.start;
            if (o.end > sv.end)
                sv.end = o.end;
        }
        n = w;
        surv = sess_find(st, n, sv.id);
    }
    if (lo < sv.start)
        sv.start = lo;
    if (hi > sv.end)
        sv.end = hi;
    st->sess[surv] = sv;
    sess_store(st, k, n);
    uint8_t *acc = rv_value_upsert(st->s, SID_ACC, k, sv.id, st->acc_size, NULL, NULL);
    if (sv.end != old_end) {
        rv_timer_register(st->s, domain(st), k, sv.id, sv.end - 1);
        if (st->sp.processing)
            rv_ctx_timer_at(ctx, sv.end);
    }
    if ((acc[0] & (F_EMITTED | F_PENDING)) == F_EMITTED && sv.end - 1 <= st->wm) {
        acc[0] |= F_PENDING;
        add_item(st, k, sv.id, 0, 0, true, false);
    }
    st->pairs[st->npairs++] = (rv_wacc_pair){.acc = acc + HDR, .ns = sv.id, .row = r};
    return true;
}

/* Emits the rows noted while folding the batch: updates of fired windows,
 * and windows created already past their end (within allowed lateness). */
static rv_code emit_updates(wagg_state *st, rv_op_ctx *ctx)
{
    size_t w = 0;
    for (size_t i = 0; i < st->nitems; i++) {
        fire_item *it = &st->items[i];
        rv_skey k = item_key(st, it);
        uint32_t len = 0;
        if (!rv_value_get(st->s, SID_ACC, &k, it->ns, &len))
            continue; /* merged into another session since */
        uint8_t *acc = rv_value_upsert(st->s, SID_ACC, &k, it->ns, st->acc_size, NULL, NULL);
        acc[0] = (uint8_t)((acc[0] | F_EMITTED) & ~F_PENDING);
        if (window_bounds(st, &k, it->ns, &it->start, &it->end)) {
            /* Emitted for this end now: its firing timer will find it done,
             * so the cleanup timer for this end is set here. */
            if (fired_end(acc) != it->end && st->sp.lateness > 0)
                rv_timer_register(st->s, domain(st), &k, it->ns, it->end - 1 + st->sp.lateness);
            set_fired_end(acc, it->end);
            st->items[w++] = *it;
        }
    }
    st->nitems = w;
    return w ? flush_items(st, ctx) : RV_OK;
}

static rv_code send_late(wagg_state *st, rv_op_ctx *ctx, const rv_batch *in, uint32_t nlate)
{
    st->late += nlate;
    if (!nlate)
        return RV_OK;
    rv_batch *b = rv_batch_new(in->schema, nlate);
    rv_batch_append_rows(b, in, st->late_rows, nlate);
    return rv_ctx_emit_late(ctx, b);
}

/* Brings in the state the batch's rows will touch (their windows, or for
 * sessions their keys' session lists) before it is used, a batch at a
 * time (rv_state_prefetch). */
static void prefetch_windows(wagg_state *st, const rv_column *ts, int64_t now, uint32_t n)
{
    size_t m = 0;
    for (uint32_t r = 0; r < n; r++) {
        int64_t t = ts ? ts->d.i64[r] : now;
        if (t < -MAX_TS || t > MAX_TS)
            continue;
        if (st->sp.kind == WIN_SESSION) {
            st->pf_keys[m] = st->skeys[r];
            st->pf_ns[m++] = 0;
            continue;
        }
        int64_t last = floor_div(t, st->sp.slide) * st->sp.slide;
        for (int64_t s = last; s > t - st->sp.size; s -= st->sp.slide) {
            st->pf_keys[m] = st->skeys[r];
            st->pf_ns[m++] = s;
        }
    }
    rv_state_prefetch(st->s, st->sp.kind == WIN_SESSION ? SID_SESS : SID_ACC, st->pf_keys, st->pf_ns, (uint32_t)m);
}

static rv_code wagg_process(void *state, rv_op_ctx *ctx, int input, const rv_batch *in)
{
    wagg_state *st = state;
    uint32_t n = in->nrows;
    if (n == 0)
        return RV_OK;
    ensure_scratch(st, n);
    st->skeys = rv_row_keys_eval(st->rk, in);
    st->npairs = 0;
    uint32_t nlate = 0;
    const rv_column *ts = st->sp.processing ? NULL : &in->cols[st->sp.ts_field];
    int64_t now = st->sp.processing ? rv_ctx_now_ms(ctx) : 0;
    prefetch_windows(st, ts, now, n);
    for (uint32_t r = 0; r < n; r++) {
        int64_t t = now;
        if (ts) {
            t = ts->d.i64[r];
            if (rv_col_is_null(ts, r) || t < -MAX_TS || t > MAX_TS) {
                st->no_time++;
                continue;
            }
            /* Late: even the latest window holding t is past its lateness
             * (sessions decide in assign_session). */
            if (st->sp.kind != WIN_SESSION &&
                floor_div(t, st->sp.slide) * st->sp.slide + st->sp.size - 1 + st->sp.lateness <= st->wm) {
                st->late_rows[nlate++] = r;
                continue;
            }
        }
        st->times[r] = t;
        if (st->sp.kind != WIN_SESSION)
            assign_fixed(st, ctx, r, t);
        else if (!assign_session(st, ctx, in, r, t))
            st->late_rows[nlate++] = r;
    }
    fold_pairs(st, in);
    rv_code rc = st->nitems ? emit_updates(st, ctx) : RV_OK;
    if (rc == RV_OK)
        rc = send_late(st, ctx, in, nlate);
    return rc;
}

static rv_code wagg_on_watermark(void *state, rv_op_ctx *ctx, int64_t wm)
{
    wagg_state *st = state;
    if (wm <= st->wm)
        return RV_OK;
    st->wm = wm;
    if (st->sp.processing)
        return RV_OK;
    return fire_timers(st, ctx, wm);
}

static rv_code wagg_on_timer(void *state, rv_op_ctx *ctx, int64_t when_ms)
{
    wagg_state *st = state;
    if (!st->sp.processing)
        return RV_OK;
    rv_code rc = fire_timers(st, ctx, when_ms - 1);
    /* Windows restored from a checkpoint have no wake-up of their own:
     * chain them, one after the other. */
    int64_t next = rv_timer_next(st->s, RV_TIMER_PROCESSING);
    if (rc == RV_OK && next != INT64_MAX)
        rv_ctx_timer_at(ctx, next + 1);
    return rc;
}

static rv_code wagg_finish(void *state, rv_op_ctx *ctx)
{
    wagg_state *st = state;
    rv_code rc = fire_timers(st, ctx, INT64_MAX);
    if (rc != RV_OK)
        return rc;
    if (st->late || st->no_time)
        RV_LOG_INFO(rv_ctx_tag(ctx),
                    "%s: %" PRIu64 " late rows (past allowed_lateness) and %" PRIu64
                    " rows without a usable event time were not aggregated",
                    st->what, st->late, st->no_time);
    return RV_OK;
}

const rv_plugin rv_op_window_aggregate = {
    .name = "window_aggregate",
    .abi = RV_PLUGIN_ABI,
    .kind = RV_PLUGIN_OPERATOR,
    .flags = RV_PLUGIN_KEYED | RV_PLUGIN_STATEFUL,
    .doc = "Aggregates rows per key (`key_by`) and time window. Tumbling windows `[start, "
           "start + size)` have starts at multiples of the size (epoch-aligned); sliding windows "
           "start every `slide` and a row counts in each window that contains it; a session window "
           "of a key spans its rows that are less than `gap` apart, `[first row, last row + gap)`, "
           "and a row arriving out of order that bridges two sessions merges them. In event "
           "time (the default) a window fires when the watermark reaches its end - 1. With "
           "`allowed_lateness` its state is kept that much longer: a row for it in that time updates "
           "it and the window's row is emitted again with `is_update: true`. A row too late for every "
           "window it belongs to (for sessions: a row that joins no open session and whose own `[t, "
           "t + gap)` is past the lateness) goes to `late_output` (or `input: <id>.late`) if a node "
           "reads it, and is counted; rows with a null event time are dropped and counted (both logged when "
           "the job ends). In processing time rows go to the window of the wall clock at arrival "
           "and a timer fires it at its end. When the input ends every remaining window fires. "
           "Each firing emits one row per key: the key fields, `window_start`, `window_end` "
           "(timestamps), then the aggregates in the order written, with the types of their "
           "expressions (then `is_update` with allowed_lateness). Windows fire in end order; rows "
           "of one window in the order their keys first appeared. State lives in the job's state "
           "backend (`state:`), so it may exceed memory with `rocksdb`.",
    .config = wagg_keys,
    .nconfig = sizeof(wagg_keys) / sizeof(wagg_keys[0]),
    .config_size = sizeof(wagg_cfg),
    .state_size = sizeof(wagg_state),
    .plan = wagg_plan,
    .open = wagg_open,
    .process = wagg_process,
    .on_watermark = wagg_on_watermark,
    .on_timer = wagg_on_timer,
    .finish = wagg_finish,
    .close = wagg_close,
};
