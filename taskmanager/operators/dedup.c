/* dedup operator: drops (or marks) rows whose key was already seen.
 *
 * Rows are keyed by the node's key_by expressions. For each key the time
 * of its first occurrence, t0, is kept in keyed value state (state id 0,
 * namespace 0, 8 bytes little-endian) with the state expiry t0 + ttl, so
 * the state's TTL clock frees keys nobody can repeat any more: the clock is
 * the watermark in event time and the wall clock in processing time. A row
 * at time t whose key is remembered with t0 is a duplicate when
 * t < t0 + ttl (always when ttl is 0); otherwise it is a new first
 * occurrence and the key is remembered from t. The comparison is made here
 * as well, since the clock may lag a row's time.
 *
 * Rows with a null event time are compared by key only: a duplicate when
 * the key is remembered at all, else a first occurrence remembered without
 * a time (stored as INT64_MIN), which never expires and makes every later
 * row of the key a duplicate.
 *
 * Work is column-wise per batch: keys are evaluated over the batch and
 * hashed with rv_hash_rows; each row then costs one state probe (plus a
 * write for first occurrences). Without `mark`, first occurrences are
 * gathered with a selection vector (the input batch is passed on as is
 * when every row is new); with `mark`, every row is kept and a bool
 * column is appended. Output rows keep the input order. */
#include <endian.h>
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

/* TTLs up to ~139 years keep t0 + ttl inside int64 for any sane time. */
#define MAX_TTL_MS ((int64_t)1 << 42)
/* State id of the per-key first-occurrence time. */
#define SID_FIRST 0
/* Stored t0 of a key remembered by a row without event time. */
#define NO_TIME INT64_MIN

enum { TIME_EVENT = 0, TIME_PROCESSING = 1 };
static const char *const time_choices[] = {"event", "processing", NULL};

typedef struct dedup_cfg {
    int64_t ttl;
    char *mark;
    int time;
} dedup_cfg;

static const rv_cfg_key dedup_keys[] = {
    {.name = "ttl",
     .type = RV_CFG_DURATION,
     .def = "0",
     .offset = offsetof(dedup_cfg, ttl),
     .doc = "How long a key's first occurrence is remembered, e.g. `10m`: a row of the same key "
            "less than `ttl` after it is a duplicate, a later one counts as new. 0 remembers "
            "every key for the life of the job.",
     .min = 0,
     .max = MAX_TTL_MS},
    {.name = "mark",
     .type = RV_CFG_STRING,
     .offset = offsetof(dedup_cfg, mark),
     .doc = "Name of a new bool output field. When set, every row is kept and this field is "
            "true for duplicates and false for first occurrences; when not set, duplicates are "
            "dropped and the output has the input's schema."},
    {.name = "time",
     .type = RV_CFG_ENUM,
     .offset = offsetof(dedup_cfg, time),
     .doc = "Clock of `ttl`. `event`: the rows' event time (the watermark frees expired keys); "
            "`processing`: the wall clock when a batch arrives. Default: `event` when the input "
            "carries an event-time field, else `processing`.",
     .choices = time_choices},
};

/* What plan() and open() both derive from the config. */
typedef struct dspec {
    bool processing;
    int ts_field; /* event time: index in the input; -1 otherwise */
    int64_t ttl;
    const char *mark; /* points into the config; NULL when not marking */
} dspec;

typedef struct dedup_state {
    dspec sp;
    char what[160];
    rv_schema *out;
    int nin; /* input fields */
    rv_row_keys *rk;
    /* per-batch scratch */
    uint32_t *sel;
    uint32_t cap;
    rv_column mark_col;
    rv_column *view_cols; /* nin + 1: input columns and mark_col */
    int64_t wm;
    uint64_t rows, dups, no_time;
} dedup_state;

/* ---- configuration ---- */

static rv_err *spec_build(const dedup_cfg *cfg, const rv_schema *in, const char *etf,
                          const char *id, const rv_ynode *node, dspec *sp)
{
    memset(sp, 0, sizeof(*sp));
    sp->ts_field = -1;
    sp->ttl = cfg->ttl;
    if (sp->ttl < 0 || sp->ttl > MAX_TTL_MS)
        return rv_yerr(rv_ymap_get_or_self(node, "ttl"), RV_ERR_INVALID,
                       "operator '%s': ttl must be between 0 and %" PRId64 "ms", id, MAX_TTL_MS);
    /* `time` has no table default: absent means event time when the input
     * has it. plan() rejects an explicit `event` without event time, so at
     * run time (no node) event without a field can only mean "absent". */
    sp->processing = cfg->time == TIME_PROCESSING;
    if (!sp->processing) {
        const rv_ynode *tn = node ? rv_ymap_get(node, "time") : NULL;
        int idx = etf ? rv_schema_find(in, etf) : -1;
        if (idx >= 0 && in->fields[idx].type == RV_T_TIMESTAMP) {
            sp->ts_field = idx;
        } else if (tn) {
            return rv_yerr(tn, RV_ERR_INVALID,
                           "operator '%s': time: event needs an event-time field in the input, "
                           "but none reaches this operator (set event_time on the source, or use "
                           "time: processing)",
                           id);
        } else {
            sp->processing = true;
        }
    }
    if (cfg->mark) {
        const rv_ynode *mn = rv_ymap_get_or_self(node, "mark");
        if (cfg->mark[0] == 0)
            return rv_yerr(mn, RV_ERR_INVALID,
                           "operator '%s': 'mark' must name the new bool field, e.g. "
                           "mark: is_duplicate",
                           id);
        if (rv_schema_find(in, cfg->mark) >= 0)
            return rv_yerr(mn, RV_ERR_INVALID,
                           "operator '%s': mark field '%s' is already a field of the input; "
                           "choose another name",
                           id, cfg->mark);
        sp->mark = cfg->mark;
    }
    return NULL;
}

static rv_err *dedup_plan(rv_plan *p)
{
    if (!p->keys || p->keys->nfields == 0)
        return rv_yerr(p->node, RV_ERR_INVALID,
                       "operator '%s': dedup needs 'key_by' (the fields that identify a "
                       "duplicate)",
                       p->id);
    dspec sp;
    rv_err *err = spec_build(p->config, p->inputs[0], p->event_time_field, p->id, p->node, &sp);
    if (err)
        return err;
    if (!sp.mark) {
        p->output = rv_schema_ref(p->inputs[0]);
        return NULL;
    }
    const rv_schema *in = p->inputs[0];
    rv_schema *out = rv_schema_new();
    for (int i = 0; i < in->nfields; i++)
        rv_schema_add(out, in->fields[i].name, in->fields[i].type);
    rv_schema_add(out, sp.mark, RV_T_BOOL);
    p->output = out;
    return NULL;
}

/* ---- instance ---- */

static void dedup_close(void *state, rv_op_ctx *ctx)
{
    dedup_state *st = state;
    rv_row_keys_free(st->rk);
    free(st->sel);
    if (st->sp.mark)
        rv_col_fini(&st->mark_col);
    free(st->view_cols);
    memset(st, 0, sizeof(*st));
}

static rv_err *setup(dedup_state *st, rv_op_ctx *ctx)
{
    const char *id = rv_ctx_id(ctx);
    const rv_schema *in = rv_ctx_input_schema(ctx, 0);
    rv_err *err = spec_build(rv_ctx_config(ctx), in, rv_ctx_event_time_field(ctx), id, NULL,
                             &st->sp);
    if (err)
        return err;
    if (!rv_ctx_state(ctx))
        return rv_err_new(RV_ERR_INTERNAL, "%s: the runtime gave no keyed state", st->what);
    st->nin = in->nfields;
    if (rv_ctx_nkeys(ctx) < 1)
        return rv_err_new(RV_ERR_INVALID, "%s: dedup needs 'key_by'", st->what);
    if ((err = rv_row_keys_new(ctx, &st->rk)))
        return rv_err_wrap(err, "operator '%s'", id);
    if (st->sp.mark) {
        rv_col_init(&st->mark_col, RV_T_BOOL, RV_BATCH_DEFAULT_ROWS);
        st->view_cols = rv_xcalloc((size_t)st->nin + 1, sizeof(rv_column));
    }
    return NULL;
}

static rv_err *dedup_open(void *state, rv_op_ctx *ctx)
{
    dedup_state *st = state;
    snprintf(st->what, sizeof(st->what), "dedup '%s'", rv_ctx_id(ctx));
    st->wm = RV_WATERMARK_MIN;
    st->out = rv_ctx_output_schema(ctx);
    rv_err *err = setup(st, ctx);
    if (err)
        dedup_close(st, ctx); /* close() is not called when open() fails */
    return err;
}

/* ---- processing ---- */

static inline int64_t add_sat(int64_t a, int64_t b)
{
    return a > INT64_MAX - b ? INT64_MAX : a + b; /* b >= 0 */
}

static void ensure_scratch(dedup_state *st, uint32_t n)
{
    if (n <= st->cap)
        return;
    free(st->sel);
    st->sel = rv_xmalloc((size_t)n * sizeof(uint32_t));
    st->cap = n;
}

/* Decides one row of key k at time t (has_t false: null event time) and
 * remembers a first occurrence. Returns true for a duplicate. */
static bool probe(dedup_state *st, rv_state *s, const rv_skey *k, bool has_t, int64_t t)
{
    uint32_t len = 0;
    const uint8_t *v = rv_value_get(s, SID_FIRST, k, 0, &len);
    if (v && len == 8) {
        uint64_t le;
        memcpy(&le, v, 8);
        int64_t t0 = (int64_t)le64toh(le);
        if (!has_t || st->sp.ttl == 0 || t0 == NO_TIME || t < add_sat(t0, st->sp.ttl))
            return true;
    }
    int64_t t0 = has_t ? t : NO_TIME;
    uint64_t le = htole64((uint64_t)t0);
    rv_value_put(s, SID_FIRST, k, 0, &le, 8);
    if (st->sp.ttl > 0)
        rv_value_set_expiry(s, SID_FIRST, k, 0,
                            has_t ? add_sat(t, st->sp.ttl) : RV_STATE_NO_EXPIRY);
    return false;
}

static rv_code emit_marked(dedup_state *st, rv_op_ctx *ctx, const rv_batch *in)
{
    uint32_t n = in->nrows;
    memcpy(st->view_cols, in->cols, (size_t)st->nin * sizeof(rv_column));
    st->view_cols[st->nin] = st->mark_col;
    rv_batch view;
    memset(&view, 0, sizeof(view));
    view.schema = st->out;
    view.nrows = n;
    view.cap = n;
    view.cols = st->view_cols;
    rv_batch *out = rv_batch_new(st->out, n);
    rv_batch_append_rows(out, &view, NULL, n);
    return rv_ctx_emit(ctx, out);
}

static rv_code dedup_process(void *state, rv_op_ctx *ctx, int input, const rv_batch *in)
{
    dedup_state *st = state;
    uint32_t n = in->nrows;
    if (n == 0)
        return RV_OK;
    rv_state *s = rv_ctx_state(ctx);
    int64_t now = 0;
    if (st->sp.processing) {
        now = rv_ctx_now_ms(ctx);
        if (st->sp.ttl > 0)
            rv_state_advance_time(s, now);
    }
    ensure_scratch(st, n);
    const rv_skey *keys = rv_row_keys_eval(st->rk, in);
    if (st->sp.mark) {
        rv_col_reset(&st->mark_col);
        rv_col_reserve(&st->mark_col, n);
    }
    const rv_column *ts = st->sp.ts_field >= 0 ? &in->cols[st->sp.ts_field] : NULL;
    uint32_t m = 0; /* first occurrences */
    for (uint32_t r = 0; r < n; r++) {
        bool has_t = true;
        int64_t t = now;
        if (ts) {
            has_t = !rv_col_is_null(ts, r);
            t = ts->d.i64[r];
            if (t == NO_TIME)
                t = NO_TIME + 1; /* INT64_MIN marks "no time" in the state */
        }
        bool dup = probe(st, s, &keys[r], has_t, t);
        if (!has_t)
            st->no_time++;
        if (dup)
            st->dups++;
        else
            st->sel[m++] = r;
        if (st->sp.mark)
            st->mark_col.d.b[r] = dup;
    }
    st->rows += n;
    if (st->sp.mark)
        return emit_marked(st, ctx, in);
    if (m == 0)
        return RV_OK;
    if (m == n)
        return rv_ctx_emit(ctx, rv_batch_ref((rv_batch *)in));
    rv_batch *out = rv_batch_new(st->out, m);
    rv_batch_append_rows(out, in, st->sel, m);
    return rv_ctx_emit(ctx, out);
}

static rv_code dedup_on_watermark(void *state, rv_op_ctx *ctx, int64_t wm)
{
    dedup_state *st = state;
    if (st->sp.ttl == 0)
        return RV_OK;
    if (st->sp.processing) {
        rv_state_advance_time(rv_ctx_state(ctx), rv_ctx_now_ms(ctx));
        return RV_OK;
    }
    if (wm <= st->wm)
        return RV_OK;
    st->wm = wm;
    /* Rows with t <= wm are late; a key whose t0 + ttl <= wm cannot be
     * repeated by an on-time row. Stop short of INT64_MAX, which would
     * expire RV_STATE_NO_EXPIRY entries too. */
    rv_state_advance_time(rv_ctx_state(ctx), wm < INT64_MAX ? wm : INT64_MAX - 1);
    return RV_OK;
}

static rv_code dedup_finish(void *state, rv_op_ctx *ctx)
{
    dedup_state *st = state;
    if (st->rows)
        RV_LOG_INFO(rv_ctx_tag(ctx),
                    "%s: %" PRIu64 " rows, %" PRIu64 " duplicates, %" PRIu64
                    " rows without event time (compared by key only)",
                    st->what, st->rows, st->dups, st->no_time);
    return RV_OK;
}

const rv_plugin rv_op_dedup = {
    .name = "dedup",
    .abi = RV_PLUGIN_ABI,
    .kind = RV_PLUGIN_OPERATOR,
    .flags = RV_PLUGIN_KEYED | RV_PLUGIN_STATEFUL,
    .doc = "Drops repeated rows: a row is a duplicate when a row with the same key (`key_by`) "
           "occurred shortly before. Each key's first occurrence, at time t0, is remembered "
           "until t0 + `ttl`; a later row of the key with time t < t0 + ttl is a duplicate, and "
           "one with t >= t0 + ttl is a new first occurrence, remembered from t (with `ttl: 0`, "
           "the default, every repeat is a duplicate). \"First\" means first to arrive: in "
           "event time a row whose time is earlier than the remembered t0 is a duplicate too. "
           "Time is the row's event time (`time: event`; keys are forgotten once the watermark "
           "passes t0 + ttl, so a row older than the watermark by more than `ttl` may be taken "
           "as new) or the wall clock when the row arrives (`time: processing`). A row whose "
           "event time is null is compared by key only: it is a duplicate when its key is "
           "remembered, and otherwise passes and remembers its key without expiry (later rows "
           "of that key are duplicates). Without `mark`, duplicates are dropped and the output "
           "has the input's schema; with `mark: name`, every row is kept and the bool field "
           "`name` is appended (true for duplicates). Rows keep their input order. State: one "
           "8-byte value per remembered key.",
    .config = dedup_keys,
    .nconfig = sizeof(dedup_keys) / sizeof(dedup_keys[0]),
    .config_size = sizeof(dedup_cfg),
    .state_size = sizeof(dedup_state),
    .plan = dedup_plan,
    .open = dedup_open,
    .process = dedup_process,
    .on_watermark = dedup_on_watermark,
    .finish = dedup_finish,
    .close = dedup_close,
};
