/* union operator: merges several inputs of one schema into one stream.
 *
 * The inputs are listed with `inputs: [a, b, ...]` (handled by the job
 * spec). Validation requires identical schemas (same names and types in
 * the same order) and names the first field that differs. At run time
 * every input batch is passed on as it is (no copy); batches of different
 * inputs interleave in arrival order, and the runtime takes the minimum of
 * the inputs' watermarks. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "rv_plugin.h"

/* The YAML node naming input k (the k-th item of `inputs`), or the
 * operator's node when that cannot be found. */
static const rv_ynode *input_node(const rv_plan *p, int k)
{
    const rv_ynode *list = rv_ymap_get(p->node, "inputs");
    if (list && list->kind == RV_YAML_SEQ && (size_t)k < list->n)
        return list->vals[k];
    return list ? list : p->node;
}

/* Compares input k's schema with input 0's; a positioned error naming the
 * first difference, or NULL. */
static rv_err *check_same(const rv_plan *p, int k)
{
    const rv_schema *a = p->inputs[0], *b = p->inputs[k];
    const char *ia = p->input_ids[0], *ib = p->input_ids[k];
    const rv_ynode *at = input_node(p, k);
    int n = a->nfields < b->nfields ? a->nfields : b->nfields;
    for (int i = 0; i < n; i++) {
        const rv_field *fa = &a->fields[i], *fb = &b->fields[i];
        if (strcmp(fa->name, fb->name) != 0)
            return rv_yerr(at, RV_ERR_TYPE,
                           "operator '%s': inputs must have the same schema: field %d is '%s' "
                           "(%s) in input '%s' but '%s' (%s) in input '%s'",
                           p->id, i + 1, fa->name, rv_type_name(fa->type), ia, fb->name,
                           rv_type_name(fb->type), ib);
        if (fa->type != fb->type)
            return rv_yerr(at, RV_ERR_TYPE,
                           "operator '%s': inputs must have the same schema: field '%s' is %s in "
                           "input '%s' but %s in input '%s'",
                           p->id, fa->name, rv_type_name(fa->type), ia, rv_type_name(fb->type),
                           ib);
    }
    if (a->nfields > n)
        return rv_yerr(at, RV_ERR_TYPE,
                       "operator '%s': inputs must have the same schema: field '%s' (%s) of "
                       "input '%s' is missing from input '%s'",
                       p->id, a->fields[n].name, rv_type_name(a->fields[n].type), ia, ib);
    if (b->nfields > n)
        return rv_yerr(at, RV_ERR_TYPE,
                       "operator '%s': inputs must have the same schema: input '%s' has a field "
                       "'%s' (%s) that input '%s' does not have",
                       p->id, ib, b->fields[n].name, rv_type_name(b->fields[n].type), ia);
    return NULL;
}

static rv_err *union_plan(rv_plan *p)
{
    if (p->ninputs < 1)
        return rv_yerr(p->node, RV_ERR_INVALID, "operator '%s': union needs 'inputs'", p->id);
    for (int k = 1; k < p->ninputs; k++) {
        rv_err *err = check_same(p, k);
        if (err)
            return err;
    }
    p->output = rv_schema_ref(p->inputs[0]);
    return NULL;
}

static rv_err *union_open(void *state, rv_op_ctx *ctx)
{
    return NULL;
}

static rv_code union_process(void *state, rv_op_ctx *ctx, int input, const rv_batch *in)
{
    return rv_ctx_emit(ctx, rv_batch_ref((rv_batch *)in));
}

const rv_plugin rv_op_union = {
    .name = "union",
    .abi = RV_PLUGIN_ABI,
    .kind = RV_PLUGIN_OPERATOR,
    .flags = RV_PLUGIN_MULTI_INPUT,
    .doc = "Merges the streams listed in `inputs` into one. All inputs must have the same "
           "schema: the same field names with the same types in the same order (use a `map` "
           "to align them first). Rows are passed on unchanged, without copying; rows of "
           "different inputs interleave in arrival order, and the event-time watermark is the "
           "minimum over the inputs.",
    .config = NULL,
    .nconfig = 0,
    .config_size = 0,
    .state_size = 0,
    .plan = union_plan,
    .open = union_open,
    .process = union_process,
};
