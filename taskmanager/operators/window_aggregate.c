/* window_aggregate operator: keyed tumbling and sliding window aggregation
 * in event time or processing time.
 *
 * Rows are keyed by the node's key_by expressions and assigned to windows
 * [start, start + size) with start a multiple of the slide (the size for
 * tumbling windows; a row falls in size/slide sliding windows). Each
 * aggregate (`sum(requests) / 10`) is a set of aggregate calls kept as
 * accumulators in the keyed window table (window_state.h), plus an outer
 * expression applied when the window fires. Work per batch is column-wise:
 * key and argument expressions are evaluated over the whole batch, rows are
 * hashed with rv_hash_rows, each row (and window) costs one table probe,
 * and accumulators are updated in place call by call.
 *
 * Event time: a window fires when the watermark reaches its end - 1 (as in
 * Flink); rows of windows that already fired are late and dropped, rows
 * without event time are dropped; both are counted and logged once at
 * finish. Processing time: the window comes from the wall clock when a
 * batch arrives, and a processing-time timer at the window end fires it.
 * finish() fires whatever is left. Output rows: the key fields,
 * window_start, window_end, then the aggregates in YAML order; windows fire
 * in start order and rows of one window come in the order their keys first
 * appeared, so the output is deterministic for a given input order. */
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
#include "window_state.h"

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
} wagg_cfg;

static const rv_cfg_key wagg_keys[] = {
    {.name = "window",
     .type = RV_CFG_NODE,
     .offset = offsetof(wagg_cfg, window),
     .doc = "The window, one of `{tumbling: 10s}` or `{sliding: {size: 1m, slide: 10s}}` "
            "(slide <= size); starts are multiples of the slide since the epoch.",
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
            "count(x) sum(x) min(x) max(x) avg(x) combined with operators and literals, e.g. "
            "`{qps: sum(requests) / 10, n: count()}`. Nulls are ignored; sum/min/max/avg of no "
            "value is null.",
     .flags = RV_CFG_REQUIRED},
    {.name = "event_time_field",
     .type = RV_CFG_STRING,
     .offset = offsetof(wagg_cfg, event_time_field),
     .doc = "Timestamp field holding event time (default: the `event_time` field of the "
            "sources, when it reaches this operator unchanged)."},
};

/* What plan() and open() both derive from the config. */
typedef struct wspec {
    int64_t size, slide;
    bool processing;
    int ts_field; /* event time: index in the input; -1 otherwise */
    int naggs;
    rv_agg_expr **aggs;
    const char **names; /* point into the YAML tree */
} wspec;

typedef struct wagg_state {
    wspec sp;
    char what[160];
    rv_schema *out;
    rv_window_state *ws;
    /* keys */
    int nkeys;
    rv_expr **key_exprs;
    int *key_field;         /* input field of a bare field key, else -1 */
    rv_column *key_scratch; /* evaluated keys */
    rv_column *key_cols;    /* this batch's key columns (shallow copies) */
    /* aggregate calls, flattened over all aggregates */
    int ncalls;
    const rv_agg_call **calls;
    int *call_field;     /* input field of a bare field argument, else -1 */
    rv_column *arg_scratch;
    int *call_base;      /* per aggregate: index of its first call */
    rv_batch **final_in; /* per aggregate: batch of its final_schema, or NULL when direct */
    /* per-batch scratch */
    uint64_t *hashes;
    uint32_t *rows, *ids;
    size_t hash_cap, pair_cap;
    uint8_t *kbuf;
    size_t kcap;
    int64_t wm;
    uint64_t late, no_time;
} wagg_state;

/* ---- configuration ---- */

typedef struct sliding_cfg {
    int64_t size, slide;
} sliding_cfg;

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
        return NULL;
    }
    if (strcmp(k->str, "session") == 0)
        return rv_yerr(k, RV_ERR_INVALID,
                       "operator '%s': session windows are not supported in this version (use "
                       "tumbling or sliding)",
                       id);
    const char *hint = rv_suggest(k->str, kinds, 2);
    if (hint)
        return rv_yerr(k, RV_ERR_INVALID,
                       "operator '%s': unknown window kind '%s' (did you mean '%s'?)", id, k->str,
                       hint);
    return rv_yerr(k, RV_ERR_INVALID,
                   "operator '%s': unknown window kind '%s' (expected tumbling or sliding)", id,
                   k->str);
}

static bool reserved_name(const char *name, const rv_schema *keys)
{
    return strcmp(name, "window_start") == 0 || strcmp(name, "window_end") == 0 ||
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
    rv_err *err = parse_window(cfg->window, id, node, sp);
    if (!err)
        err = resolve_time(cfg, in, etf_default, id, node, sp);
    if (!err)
        err = parse_aggregates(cfg->aggregates, in, keys, id, node, sp);
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
    spec_fini(&sp);
    p->output = out;
    return NULL;
}

/* ---- instance ---- */

static void wagg_close(void *state, rv_op_ctx *ctx)
{
    wagg_state *st = state;
    for (int k = 0; k < st->nkeys; k++) {
        rv_expr_free(st->key_exprs[k]);
        rv_col_fini(&st->key_scratch[k]);
    }
    free(st->key_exprs);
    free(st->key_field);
    free(st->key_scratch);
    free(st->key_cols);
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
    rv_window_state_free(st->ws);
    free(st->hashes);
    free(st->rows);
    free(st->ids);
    free(st->kbuf);
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
    st->key_exprs = rv_xcalloc((size_t)st->nkeys + 1, sizeof(rv_expr *));
    st->key_field = rv_xcalloc((size_t)st->nkeys + 1, sizeof(int));
    st->key_scratch = rv_xcalloc((size_t)st->nkeys + 1, sizeof(rv_column));
    st->key_cols = rv_xcalloc((size_t)st->nkeys + 1, sizeof(rv_column));
    for (int k = 0; k < st->nkeys; k++) {
        size_t off = 0;
        err = rv_expr_compile(rv_ctx_key_expr(ctx, k), in, &st->key_exprs[k], &off);
        if (err)
            return rv_err_wrap(err, "operator '%s': key_by '%s'", id, rv_ctx_key_expr(ctx, k));
        st->key_field[k] = bare_field(st->key_exprs[k], in);
        rv_col_init(&st->key_scratch[k], rv_expr_type(st->key_exprs[k]), OUT_ROWS);
    }
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
    st->ws = rv_window_state_new(flat, ncalls);
    free(flat);
    return NULL;
}

static rv_err *wagg_open(void *state, rv_op_ctx *ctx)
{
    wagg_state *st = state;
    snprintf(st->what, sizeof(st->what), "window_aggregate '%s'", rv_ctx_id(ctx));
    st->wm = RV_WATERMARK_MIN;
    st->out = rv_ctx_output_schema(ctx);
    rv_err *err = setup(st, ctx);
    if (err)
        wagg_close(st, ctx); /* close() is not called when open() fails */
    return err;
}

/* ---- firing ---- */

/* Emits window `start` (in batches of up to OUT_ROWS rows) and removes it. */
static rv_code fire(wagg_state *st, rv_op_ctx *ctx, int64_t start)
{
    const uint32_t *ids;
    uint32_t n = rv_window_state_entries(st->ws, start, &ids);
    int nk = st->nkeys;
    rv_code rc = RV_OK;
    for (uint32_t off = 0; off < n && rc == RV_OK; off += OUT_ROWS) {
        uint32_t cnt = n - off < OUT_ROWS ? n - off : OUT_ROWS;
        rv_batch *b = rv_batch_new(st->out, cnt);
        rv_window_state_keys(st->ws, ids + off, cnt, b->cols, nk);
        for (uint32_t r = 0; r < cnt; r++) {
            b->cols[nk].d.i64[r] = start;
            b->cols[nk + 1].d.i64[r] = start + st->sp.size;
        }
        for (int a = 0; a < st->sp.naggs; a++) {
            rv_column *dst = &b->cols[nk + 2 + a];
            int base = st->call_base[a];
            rv_batch *fin = st->final_in[a];
            if (!fin) {
                rv_window_state_results(st->ws, base, ids + off, cnt, dst);
                continue;
            }
            for (int j = 0; j < st->sp.aggs[a]->ncalls; j++)
                rv_window_state_results(st->ws, base + j, ids + off, cnt, &fin->cols[j]);
            fin->nrows = cnt;
            rv_expr_eval(st->sp.aggs[a]->final, fin, dst);
        }
        b->nrows = cnt;
        rc = rv_ctx_emit(ctx, b);
    }
    rv_window_state_remove(st->ws, start);
    return rc;
}

/* Fires, in start order, every window whose end is <= `end`. */
static rv_code fire_until(wagg_state *st, rv_op_ctx *ctx, int64_t end)
{
    int64_t start;
    while (rv_window_state_first(st->ws, &start) && start + st->sp.size <= end) {
        rv_code rc = fire(st, ctx, start);
        if (rc != RV_OK)
            return rc;
    }
    return RV_OK;
}

/* ---- processing ---- */

static inline int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static void ensure_scratch(wagg_state *st, uint32_t n)
{
    if (n > st->hash_cap) {
        free(st->hashes);
        st->hashes = rv_xmalloc((size_t)n * sizeof(uint64_t));
        st->hash_cap = n;
    }
    size_t pairs = (size_t)n * (size_t)(st->sp.size / st->sp.slide + 1);
    if (pairs > st->pair_cap) {
        free(st->rows);
        free(st->ids);
        st->rows = rv_xmalloc(pairs * sizeof(uint32_t));
        st->ids = rv_xmalloc(pairs * sizeof(uint32_t));
        st->pair_cap = pairs;
    }
}

/* Evaluates the key columns of `in` into st->key_cols. */
static void eval_keys(wagg_state *st, const rv_batch *in)
{
    for (int k = 0; k < st->nkeys; k++) {
        if (st->key_field[k] >= 0) {
            st->key_cols[k] = in->cols[st->key_field[k]];
        } else {
            rv_expr_eval(st->key_exprs[k], in, &st->key_scratch[k]);
            st->key_cols[k] = st->key_scratch[k];
        }
    }
}

/* Folds the (row, entry) pairs rows/ids[0..m) into every call. */
static void accumulate(wagg_state *st, const rv_batch *in, uint32_t m)
{
    for (int c = 0; c < st->ncalls; c++) {
        const rv_column *arg = NULL;
        if (st->call_field[c] >= 0) {
            arg = &in->cols[st->call_field[c]];
        } else if (st->calls[c]->arg) {
            rv_expr_eval(st->calls[c]->arg, in, &st->arg_scratch[c]);
            arg = &st->arg_scratch[c];
        }
        rv_window_state_accumulate(st->ws, c, arg, st->rows, st->ids, m);
    }
}

/* Upserts the entries of row r in every window containing time t whose
 * end is past `wm`; appends the pairs at *m. Returns how many. */
static uint32_t assign(wagg_state *st, uint32_t r, int64_t t, int64_t wm, uint32_t klen,
                       uint32_t *m)
{
    uint32_t added = 0;
    int64_t last = floor_div(t, st->sp.slide) * st->sp.slide;
    for (int64_t s = last; s > t - st->sp.size; s -= st->sp.slide) {
        if (s + st->sp.size - 1 <= wm)
            break; /* this and every earlier window already fired */
        st->ids[*m] = rv_window_state_upsert(st->ws, st->kbuf, klen, st->hashes[r], s);
        st->rows[*m] = r;
        (*m)++;
        added++;
    }
    return added;
}

static rv_code wagg_process(void *state, rv_op_ctx *ctx, int input, const rv_batch *in)
{
    wagg_state *st = state;
    uint32_t n = in->nrows;
    if (n == 0)
        return RV_OK;
    ensure_scratch(st, n);
    eval_keys(st, in);
    rv_hash_rows(st->key_cols, st->nkeys, n, st->hashes, &st->kbuf, &st->kcap);

    uint32_t m = 0;
    if (st->sp.processing) {
        int64_t now = rv_ctx_now_ms(ctx);
        for (uint32_t r = 0; r < n; r++) {
            size_t klen = 0;
            rv_key_encode(st->key_cols, st->nkeys, r, &st->kbuf, &klen, &st->kcap);
            assign(st, r, now, RV_WATERMARK_MIN, (uint32_t)klen, &m);
        }
        int64_t last = floor_div(now, st->sp.slide) * st->sp.slide;
        for (int64_t s = last; s > now - st->sp.size; s -= st->sp.slide)
            rv_ctx_timer_at(ctx, s + st->sp.size);
    } else {
        const rv_column *ts = &in->cols[st->sp.ts_field];
        int64_t wm = st->wm;
        for (uint32_t r = 0; r < n; r++) {
            int64_t t = ts->d.i64[r];
            if (rv_col_is_null(ts, r) || t < -MAX_TS || t > MAX_TS) {
                st->no_time++;
                continue;
            }
            /* Late: the latest window holding t ended at or before the watermark. */
            if (floor_div(t, st->sp.slide) * st->sp.slide + st->sp.size - 1 <= wm) {
                st->late++;
                continue;
            }
            size_t klen = 0;
            rv_key_encode(st->key_cols, st->nkeys, r, &st->kbuf, &klen, &st->kcap);
            assign(st, r, t, wm, (uint32_t)klen, &m);
        }
    }
    accumulate(st, in, m);
    return RV_OK;
}

static rv_code wagg_on_watermark(void *state, rv_op_ctx *ctx, int64_t wm)
{
    wagg_state *st = state;
    if (wm <= st->wm)
        return RV_OK;
    st->wm = wm;
    if (st->sp.processing)
        return RV_OK;
    /* Fire windows with end - 1 <= wm (written so wm = INT64_MAX cannot overflow). */
    int64_t start;
    while (rv_window_state_first(st->ws, &start) && start + st->sp.size - 1 <= wm) {
        rv_code rc = fire(st, ctx, start);
        if (rc != RV_OK)
            return rc;
    }
    return RV_OK;
}

static rv_code wagg_on_timer(void *state, rv_op_ctx *ctx, int64_t when_ms)
{
    wagg_state *st = state;
    if (!st->sp.processing)
        return RV_OK;
    return fire_until(st, ctx, when_ms);
}

static rv_code wagg_finish(void *state, rv_op_ctx *ctx)
{
    wagg_state *st = state;
    int64_t start;
    while (rv_window_state_first(st->ws, &start)) {
        rv_code rc = fire(st, ctx, start);
        if (rc != RV_OK)
            return rc;
    }
    if (st->late || st->no_time)
        RV_LOG_INFO(rv_ctx_tag(ctx),
                    "%s: dropped %" PRIu64 " late rows and %" PRIu64
                    " rows without a usable event time",
                    st->what, st->late, st->no_time);
    return RV_OK;
}

const rv_plugin rv_op_window_aggregate = {
    .name = "window_aggregate",
    .abi = RV_PLUGIN_ABI,
    .kind = RV_PLUGIN_OPERATOR,
    .flags = RV_PLUGIN_KEYED,
    .doc = "Aggregates rows per key (`key_by`) and time window. Tumbling windows `[start, "
           "start + size)` have starts at multiples of the size (epoch-aligned); sliding windows "
           "start every `slide` and a row counts in each window that contains it. In event "
           "time (the default) a window fires when the watermark reaches its end - 1; a row "
           "is not added to windows that already fired (a row with no open window left is "
           "late and dropped), and rows with a null event time are dropped (both are counted and logged when the job ends). In processing "
           "time rows go to the window of the wall clock at arrival and a timer fires it at "
           "its end. When the input ends every remaining window fires. Each firing emits one "
           "row per key: the key fields, `window_start`, `window_end` (timestamps), then the "
           "aggregates in the order written, with the types of their expressions.",
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
