/* filter operator: keeps the rows for which a boolean expression is true.
 *
 * The `where` expression is compiled against the input schema (once at
 * validation for its type, once per instance to run), evaluated a batch at
 * a time into a selection vector, and the selected rows are copied into a
 * new batch. Two cheap cases avoid the copy: when every row passes, the
 * input batch itself is passed on (batches are read-only once emitted),
 * and when none passes nothing is emitted. */
#include <stddef.h>
#include <stdlib.h>

#include "rv_expr.h"
#include "rv_mem.h"
#include "rv_plugin.h"

typedef struct filter_cfg {
    rv_cfg_expr where;
} filter_cfg;

static const rv_cfg_key filter_keys[] = {
    {.name = "where",
     .type = RV_CFG_EXPR,
     .offset = offsetof(filter_cfg, where),
     .doc = "Boolean expression over the input fields; a row passes when it is true (null counts "
            "as false), e.g. `status == \"error\" && latency_ms > 100`.",
     .flags = RV_CFG_REQUIRED},
};

typedef struct filter_state {
    rv_expr *where;
    uint32_t *sel;
    uint32_t sel_cap;
} filter_state;

/* Compiles `where` against `in` and checks it is boolean; errors point at
 * the place in the YAML. */
static rv_err *compile_where(const filter_cfg *cfg, const rv_schema *in, const char *id,
                             const rv_ynode *node, rv_expr **out)
{
    if (!cfg->where.src)
        return rv_yerr(node, RV_ERR_INVALID, "operator '%s': missing required key 'where'", id);
    rv_expr *e = NULL;
    size_t off = 0;
    rv_err *err = rv_expr_compile(cfg->where.src, in, &e, &off);
    if (err) {
        rv_err *pos = rv_yerr_at(cfg->where.node, off, rv_err_code(err), "operator '%s': %s", id,
                                 rv_err_msg(err));
        rv_err_free(err);
        return pos;
    }
    if (rv_expr_type(e) != RV_T_BOOL) {
        rv_type t = rv_expr_type(e);
        rv_expr_free(e);
        return rv_yerr(cfg->where.node, RV_ERR_TYPE,
                       "operator '%s': 'where' must be a bool expression, but this one is %s", id,
                       rv_type_name(t));
    }
    *out = e;
    return NULL;
}

static rv_err *filter_plan(rv_plan *p)
{
    rv_expr *e = NULL;
    rv_err *err = compile_where(p->config, p->inputs[0], p->id, p->node, &e);
    if (err)
        return err;
    rv_expr_free(e);
    p->output = rv_schema_ref(p->inputs[0]);
    return NULL;
}

static rv_err *filter_open(void *state, rv_op_ctx *ctx)
{
    filter_state *st = state;
    return compile_where(rv_ctx_config(ctx), rv_ctx_input_schema(ctx, 0), rv_ctx_id(ctx), NULL,
                         &st->where);
}

static rv_code filter_process(void *state, rv_op_ctx *ctx, int input, const rv_batch *in)
{
    filter_state *st = state;
    if (in->nrows == 0)
        return RV_OK;
    if (in->nrows > st->sel_cap) {
        free(st->sel);
        st->sel = rv_xmalloc((size_t)in->nrows * sizeof(uint32_t));
        st->sel_cap = in->nrows;
    }
    uint32_t n = rv_expr_select(st->where, in, st->sel);
    if (n == 0)
        return RV_OK;
    if (n == in->nrows)
        return rv_ctx_emit(ctx, rv_batch_ref((rv_batch *)in));
    rv_batch *out = rv_batch_new(rv_ctx_output_schema(ctx), n);
    rv_batch_append_rows(out, in, st->sel, n);
    return rv_ctx_emit(ctx, out);
}

static void filter_close(void *state, rv_op_ctx *ctx)
{
    filter_state *st = state;
    rv_expr_free(st->where);
    free(st->sel);
}

const rv_plugin rv_op_filter = {
    .name = "filter",
    .abi = RV_PLUGIN_ABI,
    .kind = RV_PLUGIN_OPERATOR,
    .doc = "Keeps the rows for which the `where` expression is true and drops the others (a "
           "null result drops the row). The output has the input's schema. The expression is "
           "type-checked when the job is validated: it must be boolean, and every field it "
           "names must exist in the input. Batches in which every row passes are forwarded "
           "without a copy.",
    .config = filter_keys,
    .nconfig = sizeof(filter_keys) / sizeof(filter_keys[0]),
    .config_size = sizeof(filter_cfg),
    .state_size = sizeof(filter_state),
    .plan = filter_plan,
    .open = filter_open,
    .process = filter_process,
    .close = filter_close,
};
