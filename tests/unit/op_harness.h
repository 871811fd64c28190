/* op_harness: runs one plugin instance outside the runtime for unit tests
 * — a recording rv_op_ctx (emitted batches, timers, failures), planning
 * from YAML, open/free and row builders. Include it from exactly one
 * source file per test executable (it defines the rv_ctx_* functions). */
#ifndef OP_HARNESS_H
#define OP_HARNESS_H
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rv_config.h"
#include "rv_mem.h"
#include "rv_plugin.h"
#include "rv_state.h"
#include "rv_yaml.h"

struct rv_op_ctx {
    const void *cfg;
    const char *id;
    int ninputs;
    rv_schema *in[4];
    rv_schema *out;
    int nkeys;
    const char *key_exprs[4];
    rv_schema *keys;
    const char *etf;
    int64_t now, wm;
    rv_batch *emitted[10000];
    int nemitted;
    int64_t timers[1000];
    int ntimers;
    rv_err *failed;
    rv_state *state;
    rv_schema *late_schema;
    rv_batch *late[1000];
    int nlate;
    int subtask, parallelism; /* 0, 0 = instance 0 of 1 */
    bool checkpointing;
    uint64_t bad;
};

const void *rv_ctx_config(const rv_op_ctx *ctx) { return ctx->cfg; }
const char *rv_ctx_id(const rv_op_ctx *ctx) { return ctx->id; }
const char *rv_ctx_tag(const rv_op_ctx *ctx) { return "test"; }
int rv_ctx_subtask(const rv_op_ctx *ctx) { return ctx->subtask; }
int rv_ctx_parallelism(const rv_op_ctx *ctx) { return ctx->parallelism ? ctx->parallelism : 1; }
int rv_ctx_max_parallelism(const rv_op_ctx *ctx) { return 128; }
int rv_ctx_ninputs(const rv_op_ctx *ctx) { return ctx->ninputs; }
rv_schema *rv_ctx_input_schema(const rv_op_ctx *ctx, int i) { return ctx->in[i]; }
rv_schema *rv_ctx_output_schema(const rv_op_ctx *ctx) { return ctx->out; }
int rv_ctx_nkeys(const rv_op_ctx *ctx) { return ctx->nkeys; }
const char *rv_ctx_key_expr(const rv_op_ctx *ctx, int i) { return ctx->key_exprs[i]; }
const rv_schema *rv_ctx_key_schema(const rv_op_ctx *ctx) { return ctx->keys; }
const char *rv_ctx_event_time_field(const rv_op_ctx *ctx) { return ctx->etf; }
rv_code rv_ctx_emit(rv_op_ctx *ctx, rv_batch *b)
{
    if (b->nrows == 0) { rv_batch_unref(b); return RV_OK; }
    cr_assert_lt(ctx->nemitted, 10000);
    ctx->emitted[ctx->nemitted++] = b;
    return RV_OK;
}
rv_code rv_ctx_emit_late(rv_op_ctx *ctx, rv_batch *b)
{
    if (b->nrows == 0) { rv_batch_unref(b); return RV_OK; }
    cr_assert_lt(ctx->nlate, 1000);
    ctx->late[ctx->nlate++] = b;
    return RV_OK;
}
rv_state *rv_ctx_state(rv_op_ctx *ctx) { return ctx->state; }
int64_t rv_ctx_now_ms(const rv_op_ctx *ctx) { return ctx->now; }
int64_t rv_ctx_watermark(const rv_op_ctx *ctx) { return ctx->wm; }
void rv_ctx_timer_at(rv_op_ctx *ctx, int64_t when)
{
    for (int i = 0; i < ctx->ntimers; i++)
        if (ctx->timers[i] == when) return;
    ctx->timers[ctx->ntimers++] = when;
}
void rv_ctx_fail(rv_op_ctx *ctx, rv_err *err) { if (!ctx->failed) ctx->failed = err; else rv_err_free(err); }
bool rv_ctx_canceled(const rv_op_ctx *ctx) { return false; }
bool rv_ctx_checkpointing(const rv_op_ctx *ctx) { return ctx->checkpointing; }
rv_code rv_ctx_bad_record(rv_op_ctx *ctx, const char *raw, size_t len, const char *reason, const char *where)
{
    ctx->bad++;
    return RV_OK;
}
uint64_t rv_ctx_bad_records(const rv_op_ctx *ctx) { return ctx->bad; }

/* schema from "a:int64,b:string" */
static rv_schema *mk_schema(const char *spec)
{
    rv_schema *s = rv_schema_new();
    char *dup = rv_xstrdup(spec), *save = NULL;
    for (char *tok = strtok_r(dup, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *colon = strchr(tok, ':');
        *colon = 0;
        rv_type t;
        cr_assert(rv_type_parse(colon + 1, &t));
        rv_schema_add(s, tok, t);
    }
    free(dup);
    return s;
}

static const char *const common_keys[] = {"id", "type", "input", "inputs", "key_by", "parallelism", "schema", "event_time", "on_error", NULL};

typedef struct op_run {
    const rv_plugin *pl;
    rv_ydoc *doc;
    void *cfg;
    void *state;
    rv_op_ctx ctx;
    bool opened;
} op_run;

/* Parses the yaml of the operator node, applies config, plans. Returns plan error or NULL. */
static rv_err *op_plan(op_run *r, const rv_plugin *pl, const char *yaml, const char *in_spec,
                       const char *in_spec2, const char *keys_spec, const char *const *key_exprs,
                       const char *etf)
{
    memset(r, 0, sizeof(*r));
    r->pl = pl;
    rv_err *err = rv_yaml_parse(yaml, strlen(yaml), "job.yaml", &r->doc);
    cr_assert_null(err, "%s", err ? rv_err_msg(err) : "");
    const rv_ynode *root = rv_ydoc_root(r->doc);
    r->cfg = rv_xcalloc(1, pl->config_size ? pl->config_size : 1);
    if ((err = rv_config_apply(pl->config, pl->nconfig, root, common_keys, "operator 'op'", r->cfg)))
        return err;
    r->ctx.cfg = r->cfg;
    r->ctx.id = "op";
    r->ctx.in[0] = mk_schema(in_spec);
    r->ctx.ninputs = 1;
    if (in_spec2) { r->ctx.in[1] = mk_schema(in_spec2); r->ctx.ninputs = 2; }
    if (keys_spec) {
        r->ctx.keys = mk_schema(keys_spec);
        r->ctx.nkeys = r->ctx.keys->nfields;
        for (int i = 0; i < r->ctx.nkeys; i++) r->ctx.key_exprs[i] = key_exprs[i];
    }
    r->ctx.etf = etf;
    r->ctx.wm = RV_WATERMARK_MIN;
    rv_plan p;
    memset(&p, 0, sizeof(p));
    p.id = "op";
    p.config = r->cfg;
    p.node = root;
    p.ninputs = r->ctx.ninputs;
    p.inputs = r->ctx.in;
    static const char *ids[] = {"a", "b"};
    p.input_ids = ids;
    p.keys = r->ctx.keys;
    p.event_time_field = etf;
    if ((err = pl->plan(&p)))
        return err;
    r->ctx.out = p.output;
    r->ctx.late_schema = p.late_output;
    return NULL;
}

static void op_open(op_run *r)
{
    r->state = rv_xcalloc(1, r->pl->state_size ? r->pl->state_size : 1);
    rv_err *err = NULL;
    if (r->pl->flags & RV_PLUGIN_STATEFUL) {
        rv_state_conf conf = {.backend = RV_STATE_MEMORY, .memory_budget = RV_STATE_DEFAULT_BUDGET};
        err = rv_state_open(&conf, "/tmp/rivulet-test-operators-unused", "op", &r->ctx.state);
        cr_assert_null(err, "%s", err ? rv_err_msg(err) : "");
    }
    err = r->pl->open(r->state, &r->ctx);
    cr_assert_null(err, "%s", err ? rv_err_msg(err) : "");
    r->opened = true;
}

static void op_free(op_run *r)
{
    if (r->opened && r->pl->close)
        r->pl->close(r->state, &r->ctx);
    free(r->state);
    rv_state_close(r->ctx.state);
    for (int i = 0; i < r->ctx.nemitted; i++) rv_batch_unref(r->ctx.emitted[i]);
    for (int i = 0; i < r->ctx.nlate; i++) rv_batch_unref(r->ctx.late[i]);
    rv_schema_unref(r->ctx.late_schema);
    rv_config_free(r->pl->config, r->pl->nconfig, r->cfg);
    free(r->cfg);
    for (int i = 0; i < 4; i++) rv_schema_unref(r->ctx.in[i]);
    rv_schema_unref(r->ctx.out);
    rv_schema_unref(r->ctx.keys);
    rv_ydoc_free(r->doc);
}

/* Appends a row from "v1|v2|..." with "~" = null */
static void add_row(rv_batch *b, const char *row)
{
    char *dup = rv_xstrdup(row), *p = dup;
    uint32_t r = b->nrows;
    rv_batch_reserve(b, r + 1);
    for (int i = 0; i < b->schema->nfields; i++) {
        char *bar = strchr(p, '|');
        if (bar) *bar = 0;
        rv_column *c = &b->cols[i];
        if (strcmp(p, "~") == 0) rv_col_set_null(c, r);
        else switch (c->type) {
        case RV_T_BOOL: rv_col_set_bool(c, r, strcmp(p, "true") == 0); break;
        case RV_T_INT64: case RV_T_TIMESTAMP: rv_col_set_i64(c, r, strtoll(p, NULL, 10)); break;
        case RV_T_FLOAT64: rv_col_set_f64(c, r, strtod(p, NULL)); break;
        case RV_T_STRING: rv_col_set_str(c, r, p, strlen(p)); break;
        default: break;
        }
        p = bar ? bar + 1 : p + strlen(p);
    }
    b->nrows++;
    free(dup);
}

/* Rows of the batches emitted from index `from` on, as "v|v|v\n" text. */
static char *dump_from(const op_run *r, int from)
{
    size_t cap = 1 << 20, len = 0;
    char *out = rv_xmalloc(cap);
    out[0] = 0;
    for (int k = from; k < r->ctx.nemitted; k++) {
        const rv_batch *b = r->ctx.emitted[k];
        for (uint32_t row = 0; row < b->nrows; row++) {
            for (int i = 0; i < b->schema->nfields; i++) {
                if (len + 256 > cap) { cap *= 2; out = rv_xrealloc(out, cap); }
                rv_value v = rv_col_get_value(&b->cols[i], row);
                const char *sep = i ? "|" : "";
                if (v.is_null) len += (size_t)sprintf(out + len, "%s~", sep);
                else switch (v.type) {
                case RV_T_BOOL: len += (size_t)sprintf(out + len, "%s%s", sep, v.v.b ? "true" : "false"); break;
                case RV_T_INT64: case RV_T_TIMESTAMP: len += (size_t)sprintf(out + len, "%s%" PRId64, sep, v.v.i); break;
                case RV_T_FLOAT64: len += (size_t)sprintf(out + len, "%s%g", sep, v.v.f); break;
                case RV_T_STRING:
                    while (len + v.v.s.len + 8 > cap) { cap *= 2; out = rv_xrealloc(out, cap); }
                    len += (size_t)sprintf(out + len, "%s%.*s", sep, (int)v.v.s.len, v.v.s.ptr); break;
                default: break;
                }
            }
            len += (size_t)sprintf(out + len, "\n");
        }
    }
    return out;
}

/* All emitted rows. */
static char *dump(const op_run *r)
{
    return dump_from(r, 0);
}

static char *describe(const rv_schema *s)
{
    static char buf[1024];
    return rv_schema_describe(s, buf, sizeof(buf));
}

/* ---- tests ---- */


extern const rv_plugin rv_op_filter, rv_op_map, rv_op_union, rv_op_window_aggregate;

#endif
