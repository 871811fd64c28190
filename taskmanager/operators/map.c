/* map operator: computes the output fields from expressions over the
 * input fields (projection and enrichment).
 *
 * `select` is a YAML map of output name to expression, in output order.
 * The entry `"*": true` keeps every input field in input order; a selected
 * name equal to an input field then replaces that field in place and the
 * other selected names are appended after. Output types are the
 * expressions' types. Each output column is either computed by evaluating
 * its expression over the whole input batch straight into the new batch's
 * column, or, for a kept field or a bare field reference, copied from the
 * input column with a few memcpy calls. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "rv_expr.h"
#include "rv_mem.h"
#include "rv_plugin.h"

typedef struct map_cfg {
    const rv_ynode *select;
} map_cfg;

static const rv_cfg_key map_keys[] = {
    {.name = "select",
     .type = RV_CFG_NODE,
     .offset = offsetof(map_cfg, select),
     .doc = "Map of output field name to expression, in output order, e.g. `{domain: "
            "lower(domain), slow: latency_ms > 1000}`. `\"*\": true` keeps all input fields "
            "(a selected name equal to an input field replaces it in place; others are "
            "appended).",
     .flags = RV_CFG_REQUIRED},
};

/* How one output column is produced. */
typedef struct map_col {
    int field;    /* >= 0: copy this input field */
    rv_expr *expr; /* else evaluate this */
} map_col;

typedef struct map_prog {
    rv_schema *out;
    int ncols;
    map_col *cols;
} map_prog;

typedef struct map_state {
    map_prog prog;
} map_state;

static void prog_fini(map_prog *pr)
{
    for (int i = 0; i < pr->ncols; i++)
        rv_expr_free(pr->cols[i].expr);
    free(pr->cols);
    rv_schema_unref(pr->out);
    memset(pr, 0, sizeof(*pr));
}

/* Compiles one selected expression; NULL-typed results are rejected
 * because the output field needs a type. */
static rv_err *compile_one(const rv_ynode *name, const rv_ynode *val, const rv_schema *in,
                           const char *id, rv_expr **out)
{
    if (val->kind != RV_YAML_SCALAR)
        return rv_yerr(val, RV_ERR_INVALID, "operator '%s': '%s' must be an expression, not a %s",
                       id, name->str, rv_ynode_kind_name(val->kind));
    rv_expr *e = NULL;
    size_t off = 0;
    rv_err *err = rv_expr_compile(val->str, in, &e, &off);
    if (err) {
        rv_err *pos = rv_yerr_at(val, off, rv_err_code(err), "operator '%s': %s", id,
                                 rv_err_msg(err));
        rv_err_free(err);
        return pos;
    }
    if (rv_expr_type(e) == RV_T_NULL) {
        rv_expr_free(e);
        return rv_yerr(val, RV_ERR_TYPE,
                       "operator '%s': '%s' has no type; cast it, e.g. string(null)", id,
                       name->str);
    }
    *out = e;
    return NULL;
}

/* Sets col to produce `name` from e: a bare field reference becomes a
 * column copy (e is freed), anything else is evaluated. */
static void set_col(map_col *col, rv_expr *e, const rv_schema *in)
{
    const char *f = rv_expr_field_name(e);
    int j = f ? rv_schema_find(in, f) : -1;
    if (col->expr)
        rv_expr_free(col->expr);
    if (j >= 0) {
        rv_expr_free(e);
        col->field = j;
        col->expr = NULL;
    } else {
        col->field = -1;
        col->expr = e;
    }
}

/* Builds the output schema and column program from `select`. node: the
 * operator's YAML map (for errors when `select` is absent). */
static rv_err *prog_build(const map_cfg *cfg, const rv_schema *in, const char *id,
                          const rv_ynode *node, map_prog *pr)
{
    memset(pr, 0, sizeof(*pr));
    const rv_ynode *sel = cfg->select;
    if (!sel)
        return rv_yerr(node, RV_ERR_INVALID, "operator '%s': missing required key 'select'", id);
    if (sel->kind != RV_YAML_MAP || sel->n == 0)
        return rv_yerr(sel, RV_ERR_INVALID,
                       "operator '%s': 'select' must be a map of output name to expression, "
                       "e.g. {domain: lower(domain)}",
                       id);
    bool star = false;
    for (size_t i = 0; i < sel->n; i++) {
        const rv_ynode *k = sel->keys[i];
        if (strcmp(k->str, "*") != 0)
            continue;
        rv_err *err = rv_ynode_bool(sel->vals[i], &star);
        if (err) {
            rv_err_free(err);
            return rv_yerr(sel->vals[i], RV_ERR_INVALID,
                           "operator '%s': '*' must be true (keeps all input fields)", id);
        }
    }

    rv_err *err = NULL;
    pr->cols = rv_xcalloc(sel->n + (size_t)in->nfields, sizeof(map_col));
    if (star) {
        for (int j = 0; j < in->nfields; j++)
            pr->cols[pr->ncols++] = (map_col){.field = j, .expr = NULL};
    }
    /* Output position of each selected entry, to derive names and types. */
    int *pos = rv_xcalloc(sel->n, sizeof(int));
    for (size_t i = 0; i < sel->n; i++) {
        const rv_ynode *k = sel->keys[i];
        pos[i] = -1;
        if (strcmp(k->str, "*") == 0)
            continue;
        if (k->len == 0) {
            err = rv_yerr(k, RV_ERR_INVALID, "operator '%s': an output field needs a name", id);
            goto out;
        }
        rv_expr *e = NULL;
        if ((err = compile_one(k, sel->vals[i], in, id, &e)))
            goto out;
        int at = star ? rv_schema_find(in, k->str) : -1;
        if (at < 0)
            at = pr->ncols++;
        pos[i] = at;
        set_col(&pr->cols[at], e, in);
    }
    /* Names: input names for kept fields, selected names elsewhere. */
    {
        const char **names = rv_xcalloc((size_t)pr->ncols, sizeof(char *));
        rv_type *types = rv_xcalloc((size_t)pr->ncols, sizeof(rv_type));
        for (int c = 0; c < pr->ncols; c++) {
            names[c] = c < (star ? in->nfields : 0) ? in->fields[c].name : NULL;
        }
        for (size_t i = 0; i < sel->n; i++)
            if (pos[i] >= 0)
                names[pos[i]] = sel->keys[i]->str;
        pr->out = rv_schema_new();
        for (int c = 0; c < pr->ncols; c++) {
            const map_col *col = &pr->cols[c];
            types[c] = col->expr ? rv_expr_type(col->expr) : in->fields[col->field].type;
            rv_schema_add(pr->out, names[c], types[c]);
        }
        free(names);
        free(types);
    }
out:
    free(pos);
    if (err)
        prog_fini(pr);
    return err;
}

static rv_err *map_plan(rv_plan *p)
{
    map_prog pr;
    rv_err *err = prog_build(p->config, p->inputs[0], p->id, p->node, &pr);
    if (err)
        return err;
    p->output = rv_schema_ref(pr.out);
    prog_fini(&pr);
    return NULL;
}

static rv_err *map_open(void *state, rv_op_ctx *ctx)
{
    map_state *st = state;
    return prog_build(rv_ctx_config(ctx), rv_ctx_input_schema(ctx, 0), rv_ctx_id(ctx), NULL,
                      &st->prog);
}

/* Copies rows 0..n) of src into dst (same type, initialised). */
static void copy_column(rv_column *dst, const rv_column *src, uint32_t n)
{
    rv_col_reset(dst);
    rv_col_reserve(dst, n);
    if (src->has_nulls) {
        rv_col_enable_nulls(dst);
        memcpy(dst->nulls, src->nulls, n);
    }
    switch (src->type) {
    case RV_T_BOOL: memcpy(dst->d.b, src->d.b, n); break;
    case RV_T_INT64:
    case RV_T_TIMESTAMP: memcpy(dst->d.i64, src->d.i64, (size_t)n * sizeof(int64_t)); break;
    case RV_T_FLOAT64: memcpy(dst->d.f64, src->d.f64, (size_t)n * sizeof(double)); break;
    case RV_T_STRING: {
        uint32_t base = src->offsets[0];
        size_t bytes = src->offsets[n] - base;
        rv_xgrow((void **)&dst->data, &dst->data_cap, bytes ? bytes : 1, 1);
        if (bytes)
            memcpy(dst->data, src->data + base, bytes);
        dst->data_len = bytes;
        for (uint32_t r = 0; r <= n; r++)
            dst->offsets[r] = src->offsets[r] - base;
        break;
    }
    case RV_T_NULL: break;
    }
}

static rv_code map_process(void *state, rv_op_ctx *ctx, int input, const rv_batch *in)
{
    map_state *st = state;
    if (in->nrows == 0)
        return RV_OK;
    rv_batch *out = rv_batch_new(rv_ctx_output_schema(ctx), in->nrows);
    for (int c = 0; c < st->prog.ncols; c++) {
        const map_col *col = &st->prog.cols[c];
        if (col->expr)
            rv_expr_eval(col->expr, in, &out->cols[c]);
        else
            copy_column(&out->cols[c], &in->cols[col->field], in->nrows);
    }
    out->nrows = in->nrows;
    return rv_ctx_emit(ctx, out);
}

static void map_close(void *state, rv_op_ctx *ctx)
{
    map_state *st = state;
    prog_fini(&st->prog);
}

const rv_plugin rv_op_map = {
    .name = "map",
    .abi = RV_PLUGIN_ABI,
    .kind = RV_PLUGIN_OPERATOR,
    .doc = "Computes each output row from the input row: `select` maps output field names to "
           "expressions over the input fields, and the output has exactly these fields in this "
           "order, typed by their expressions. With the entry `\"*\": true` every input field "
           "is kept in input order, a selected name equal to an input field replaces that "
           "field in place, and the other selected names are appended. An expression that is "
           "the literal null has no type and must be cast (`string(null)`).",
    .config = map_keys,
    .nconfig = sizeof(map_keys) / sizeof(map_keys[0]),
    .config_size = sizeof(map_cfg),
    .state_size = sizeof(map_state),
    .plan = map_plan,
    .open = map_open,
    .process = map_process,
    .close = map_close,
};
