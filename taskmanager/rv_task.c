/* rv_task: subtask threads, operator chains and the runtime context. */
#include "rv_task.h"
#include "rv_task_int.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rv_file.h"
#include "rv_log.h"
#include "rv_mem.h"
#include "rv_plugin.h"
#include "rv_state.h"

/* How long an idle loop sleeps at most before re-checking cancel. */
#define IDLE_WAIT_NS (50 * 1000000LL)
/* Dead letters are sent in batches of at most this many rows. */
#define DEAD_LETTER_ROWS 256

const char *rv_task_state_name(rv_task_state s)
{
    switch (s) {
    case RV_TASK_RUNNING: return "RUNNING";
    case RV_TASK_FINISHED: return "FINISHED";
    case RV_TASK_FAILED: return "FAILED";
    case RV_TASK_CANCELED: return "CANCELED";
    }
    return "?";
}

/* ---- job run ---- */

rv_job_run *rv_job_run_new(const char *job_id, rv_job_graph *g, const char *tm_name, const char *state_dir)
{
    rv_job_run *jr = rv_xcalloc(1, sizeof(*jr));
    jr->id = rv_xstrdup(job_id);
    jr->tm_name = rv_xstrdup(tm_name);
    jr->state_dir = rv_xasprintf("%s/%s", state_dir, job_id);
    jr->g = g;
    atomic_init(&jr->cancel, false);
    atomic_init(&jr->drain, false);
    pthread_mutex_init(&jr->mu, NULL);
    rv_job_chk_init(&jr->chk);
    return jr;
}

void rv_job_run_free(rv_job_run *jr)
{
    if (!jr)
        return;
    rv_err_free(jr->err);
    rv_err *err = rv_file_remove_tree(jr->state_dir);
    if (err) {
        RV_LOG_WARN(jr->tm_name, "%s", rv_err_msg(err));
        rv_err_free(err);
    }
    free(jr->state_dir);
    rv_job_chk_fini(&jr->chk);
    free(jr->subtasks);
    pthread_mutex_destroy(&jr->mu);
    free(jr->id);
    free(jr->tm_name);
    free(jr);
}

void rv_job_run_cancel(rv_job_run *jr) { atomic_store(&jr->cancel, true); }
void rv_job_run_drain(rv_job_run *jr) { atomic_store(&jr->drain, true); }

void rv_job_run_fail(rv_job_run *jr, rv_err *err)
{
    pthread_mutex_lock(&jr->mu);
    if (!jr->err)
        jr->err = err;
    else
        rv_err_free(err);
    pthread_mutex_unlock(&jr->mu);
    rv_job_run_cancel(jr);
}

const char *rv_job_run_error(rv_job_run *jr)
{
    pthread_mutex_lock(&jr->mu);
    const char *msg = jr->err ? rv_err_msg(jr->err) : NULL;
    pthread_mutex_unlock(&jr->mu);
    return msg;
}

const atomic_bool *rv_job_run_cancel_flag(rv_job_run *jr) { return &jr->cancel; }
const char *rv_job_run_id(const rv_job_run *jr) { return jr->id; }

static bool canceled(const rv_subtask *st) { return atomic_load(&st->jr->cancel); }

/* ---- subtask construction ---- */

rv_subtask *rv_subtask_new(rv_job_run *jr, int task, int index)
{
    rv_subtask *st = rv_xcalloc(1, sizeof(*st));
    st->jr = jr;
    st->task = task;
    st->index = index;
    st->td = &jr->g->tasks[task];
    st->js = jr->g->spec;
    st->nops = st->td->nnodes;
    st->ops = rv_xcalloc((size_t)st->nops, sizeof(op_inst));
    st->wm = RV_WATERMARK_MIN;
    atomic_init(&st->m_wm, RV_WATERMARK_MIN);
    st->src_max_ts = INT64_MIN;
    st->src_wm_sent = RV_WATERMARK_MIN;
    rv_doorbell_init(&st->bell);
    jr->subtasks = rv_xrealloc(jr->subtasks, (size_t)(jr->nsubtasks + 1) * sizeof(rv_subtask *));
    jr->subtasks[jr->nsubtasks++] = st;
    for (int k = 0; k < st->nops; k++) {
        op_inst *op = &st->ops[k];
        op->node = &st->js->nodes[st->td->nodes[k]];
        op->pl = op->node->plugin;
        op->pos = k;
        op->ctx.st = st;
        op->ctx.op = op;
        snprintf(op->tag, sizeof(op->tag), "%s %s#%d", jr->tm_name, op->node->id, index);
    }
    return st;
}

void rv_subtask_add_input(rv_subtask *st, rv_channel *ch, int input)
{
    st->ins = rv_xrealloc(st->ins, (size_t)(st->nins + 1) * sizeof(in_chan));
    st->ins[st->nins++] = (in_chan){.ch = ch, .input = input, .wm = RV_WATERMARK_MIN};
}

rv_doorbell *rv_subtask_doorbell(rv_subtask *st) { return &st->bell; }

void rv_subtask_add_output(rv_subtask *st, int node, int port, rv_output *o)
{
    int k = 0;
    while (k < st->nops && st->td->nodes[k] != node)
        k++;
    assert(k < st->nops && "the producing node is in this subtask's chain");
    op_inst *op = &st->ops[k];
    op->outs[port] = rv_xrealloc(op->outs[port], (size_t)(op->nouts[port] + 1) * sizeof(rv_output *));
    op->outs[port][op->nouts[port]++] = o;
    st->outs = rv_xrealloc(st->outs, (size_t)(st->nouts + 1) * sizeof(rv_output *));
    st->outs[st->nouts++] = o;
}

int rv_subtask_task(const rv_subtask *st) { return st->task; }
int rv_subtask_index(const rv_subtask *st) { return st->index; }

void rv_subtask_get_metrics(const rv_subtask *st, rv_subtask_metrics *m)
{
    memset(m, 0, sizeof(*m));
    rv_subtask *w = (rv_subtask *)st; /* atomics are read-only here */
    m->records_in = atomic_load_explicit(&w->m_in, memory_order_relaxed);
    m->records_out = atomic_load_explicit(&w->m_out, memory_order_relaxed);
    m->bad_records = atomic_load_explicit(&w->m_bad, memory_order_relaxed);
    m->busy_ns = atomic_load_explicit(&w->m_busy_ns, memory_order_relaxed);
    m->idle_ns = atomic_load_explicit(&w->m_idle_ns, memory_order_relaxed);
    for (int i = 0; i < st->nouts; i++)
        m->backpressured_ns += rv_output_blocked_ns(st->outs[i]);
    m->watermark = atomic_load_explicit(&w->m_wm, memory_order_relaxed);
}

void rv_subtask_free(rv_subtask *st)
{
    if (!st)
        return;
    for (int i = 0; i < st->nouts; i++)
        rv_output_free(st->outs[i]);
    free(st->outs);
    for (int k = 0; k < st->nops; k++) {
        for (int p = 0; p < RV_NPORTS; p++)
            free(st->ops[k].outs[p]);
        free(st->ops[k].state);
    }
    free(st->ops);
    free(st->ins);
    free(st->timers);
    rv_batch_unref(st->dead_letters);
    rv_subtask_chk_free(st);
    rv_doorbell_fini(&st->bell);
    free(st);
}

/* ---- runtime context (rv_plugin.h) ---- */

const void *rv_ctx_config(const rv_op_ctx *ctx) { return ctx->op->node->config; }
const char *rv_ctx_id(const rv_op_ctx *ctx) { return ctx->op->node->id; }
const char *rv_ctx_tag(const rv_op_ctx *ctx) { return ctx->op->tag; }
int rv_ctx_subtask(const rv_op_ctx *ctx) { return ctx->st->index; }
int rv_ctx_parallelism(const rv_op_ctx *ctx) { return ctx->st->td->parallelism; }
int rv_ctx_max_parallelism(const rv_op_ctx *ctx) { return ctx->st->js->max_parallelism; }
int rv_ctx_ninputs(const rv_op_ctx *ctx) { return ctx->op->node->ninputs; }

rv_schema *rv_ctx_input_schema(const rv_op_ctx *ctx, int input)
{
    const rv_node *n = ctx->op->node;
    if (input < 0 || input >= n->ninputs)
        return NULL;
    return rv_jobspec_port_schema(ctx->st->js, n->inputs[input]);
}

rv_schema *rv_ctx_output_schema(const rv_op_ctx *ctx) { return ctx->op->node->outputs[RV_PORT_MAIN]; }
int rv_ctx_nkeys(const rv_op_ctx *ctx) { return ctx->op->node->nkeys; }
const char *rv_ctx_key_expr(const rv_op_ctx *ctx, int i) { return ctx->op->node->key_exprs[i]; }
const rv_schema *rv_ctx_key_schema(const rv_op_ctx *ctx) { return ctx->op->node->key_schema; }

const char *rv_ctx_event_time_field(const rv_op_ctx *ctx)
{
    const rv_node *n = ctx->op->node;
    return n->ninputs == 0 ? n->event_time_field : n->input_event_time_field;
}

int64_t rv_ctx_now_ms(const rv_op_ctx *ctx) { return rv_wall_ms(); }
int64_t rv_ctx_watermark(const rv_op_ctx *ctx) { return ctx->st->wm; }
bool rv_ctx_canceled(const rv_op_ctx *ctx) { return canceled(ctx->st); }
bool rv_ctx_checkpointing(const rv_op_ctx *ctx) { return ctx->st->jr->chk.on; }
uint64_t rv_ctx_bad_records(const rv_op_ctx *ctx)
{
    return atomic_load_explicit(&ctx->st->m_bad, memory_order_relaxed);
}

static void add_relaxed(atomic_uint_fast64_t *a, uint64_t v) { atomic_fetch_add_explicit(a, v, memory_order_relaxed); }

void rv_ctx_fail(rv_op_ctx *ctx, rv_err *err)
{
    rv_job_run_fail(ctx->st->jr, rv_err_wrap(err, "%s '%s'", rv_plugin_kind_name(ctx->op->pl->kind), ctx->op->node->id));
}

void rv_ctx_timer_at(rv_op_ctx *ctx, int64_t when_ms)
{
    rv_subtask *st = ctx->st;
    size_t lo = 0, hi = st->ntimers;
    while (lo < hi) { /* sorted by (when, op) */
        size_t mid = (lo + hi) / 2;
        timer *t = &st->timers[mid];
        if (t->when < when_ms || (t->when == when_ms && t->op < ctx->op->pos))
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < st->ntimers && st->timers[lo].when == when_ms && st->timers[lo].op == ctx->op->pos)
        return;
    rv_xgrow((void **)&st->timers, &st->timers_cap, st->ntimers + 1, sizeof(timer));
    memmove(&st->timers[lo + 1], &st->timers[lo], (st->ntimers - lo) * sizeof(timer));
    st->timers[lo] = (timer){.when = when_ms, .op = ctx->op->pos};
    st->ntimers++;
}

static void update_source_time(rv_subtask *st, const rv_batch *b)
{
    const rv_node *n = st->ops[0].node;
    const rv_column *c = &b->cols[n->event_time_index];
    int64_t mx = st->src_max_ts;
    for (uint32_t r = 0; r < b->nrows; r++)
        if (!rv_col_is_null(c, r) && c->d.i64[r] > mx)
            mx = c->d.i64[r];
    st->src_max_ts = mx;
}

static rv_code send_to_outputs(op_inst *op, int port, const rv_batch *b)
{
    for (int i = 0; i < op->nouts[port]; i++) {
        rv_code rc = rv_output_batch(op->outs[port][i], b);
        if (rc != RV_OK)
            return rc;
    }
    return RV_OK;
}

/* Makes sure a failing callback's code fails the job with a message,
 * even if the plugin did not call rv_ctx_fail(). Returns rc. */
static rv_code fail_code(rv_subtask *st, op_inst *op, rv_code rc, const char *what)
{
    if (rc != RV_OK && rc != RV_ERR_CANCELED && !rv_job_run_error(st->jr))
        rv_job_run_fail(st->jr, rv_err_new(rc, "%s '%s' failed in %s: %s", rv_plugin_kind_name(op->pl->kind),
                                           op->node->id, what, rv_code_name(rc)));
    return rc;
}

/* After a callback of op returned rc: keeps op's keyed state within its
 * budget (rv_state_maintain); a state failure fails the job. */
static rv_code after_callback(rv_subtask *st, op_inst *op, rv_code rc)
{
    if (rc != RV_OK || !op->kstate)
        return rc;
    rv_err *err = rv_state_maintain(op->kstate);
    if (!err)
        return RV_OK;
    rv_job_run_fail(st->jr, rv_err_wrap(err, "operator '%s'", op->node->id));
    return RV_ERR_IO;
}

rv_state *rv_ctx_state(rv_op_ctx *ctx) { return ctx->op->kstate; }

rv_code rv_ctx_emit_late(rv_op_ctx *ctx, rv_batch *b)
{
    rv_subtask *st = ctx->st;
    rv_code rc = b->nrows ? send_to_outputs(ctx->op, RV_PORT_LATE, b) : RV_OK;
    rv_batch_unref(b);
    if (rc == RV_OK && canceled(st))
        rc = RV_ERR_CANCELED;
    return rc;
}

rv_code rv_ctx_emit(rv_op_ctx *ctx, rv_batch *b)
{
    rv_subtask *st = ctx->st;
    op_inst *op = ctx->op;
    if (b->nrows == 0) {
        rv_batch_unref(b);
        return canceled(st) ? RV_ERR_CANCELED : RV_OK;
    }
    op->rows_out += b->nrows;
    rv_code rc;
    if (op->pos == 0 && op->pl->kind == RV_PLUGIN_SOURCE) {
        add_relaxed(&st->m_in, b->nrows);
        if (op->node->has_event_time)
            update_source_time(st, b);
    }
    if (op->pos + 1 < st->nops) {
        op_inst *next = &st->ops[op->pos + 1];
        next->rows_in += b->nrows;
        rc = fail_code(st, next, after_callback(st, next, next->pl->process(next->state, &next->ctx, 0, b)), "process");
    } else {
        add_relaxed(&st->m_out, b->nrows);
        rc = send_to_outputs(op, RV_PORT_MAIN, b);
    }
    rv_batch_unref(b);
    if (rc == RV_OK && canceled(st))
        rc = RV_ERR_CANCELED;
    return rc;
}

rv_code rv_ctx_bad_record(rv_op_ctx *ctx, const char *raw, size_t len, const char *reason, const char *where)
{
    rv_subtask *st = ctx->st;
    const rv_node *n = ctx->op->node;
    uint64_t bad = atomic_fetch_add_explicit(&st->m_bad, 1, memory_order_relaxed) + 1;
    switch (n->on_error) {
    case RV_ON_ERROR_FAIL:
        rv_ctx_fail(ctx, rv_err_new(RV_ERR_INVALID, "bad record at %s: %s (set on_error: skip or dead_letter to continue past bad records)",
                                    where, reason));
        return RV_ERR_INVALID;
    case RV_ON_ERROR_SKIP:
        if ((bad & (bad - 1)) == 0) /* the 1st, 2nd, 4th, 8th, ... */
            RV_LOG_WARN(ctx->op->tag, "skipped %llu bad record(s); latest at %s: %s", (unsigned long long)bad, where, reason);
        return RV_OK;
    case RV_ON_ERROR_DEAD_LETTER:
        if (!st->dead_letters)
            st->dead_letters = rv_batch_new(n->outputs[RV_PORT_DEAD_LETTER], DEAD_LETTER_ROWS);
        {
            rv_batch *d = st->dead_letters;
            uint32_t r = d->nrows;
            rv_batch_reserve(d, r + 1);
            rv_col_set_str(&d->cols[0], r, n->id, strlen(n->id));
            rv_col_set_str(&d->cols[1], r, where, strlen(where));
            rv_col_set_str(&d->cols[2], r, reason, strlen(reason));
            rv_col_set_str(&d->cols[3], r, raw, len);
            rv_col_set_i64(&d->cols[4], r, rv_wall_ms());
            d->nrows++;
        }
        return RV_OK;
    }
    return RV_ERR_INTERNAL;
}

/* ---- the loops ---- */


static rv_code flush_dead_letters(rv_subtask *st)
{
    rv_batch *d = st->dead_letters;
    if (!d || d->nrows == 0)
        return RV_OK;
    /* Outputs may keep references to the batch: start a new one. */
    st->dead_letters = NULL;
    rv_code rc = send_to_outputs(&st->ops[0], RV_PORT_DEAD_LETTER, d);
    rv_batch_unref(d);
    return rc;
}

rv_code rv_task_control_all(rv_subtask *st, rv_elem el)
{
    for (int i = 0; i < st->nouts; i++) {
        rv_code rc = rv_output_control(st->outs[i], el);
        if (rc != RV_OK)
            return rc;
    }
    return RV_OK;
}

static rv_code flush_outputs(rv_subtask *st, bool force)
{
    int64_t now = rv_now_ns();
    for (int i = 0; i < st->nouts; i++) {
        rv_code rc = rv_output_flush(st->outs[i], now, force);
        if (rc != RV_OK)
            return rc;
    }
    return RV_OK;
}

static int64_t output_deadline(rv_subtask *st)
{
    int64_t d = INT64_MAX;
    for (int i = 0; i < st->nouts; i++) {
        int64_t x = rv_output_deadline(st->outs[i]);
        if (x < d)
            d = x;
    }
    return d;
}

/* Event time advanced to wm: each operator from `from` on reacts (and may
 * emit into its successors), then the watermark goes downstream. */
static rv_code advance_watermark(rv_subtask *st, int64_t wm, int from)
{
    st->wm = wm;
    atomic_store_explicit(&st->m_wm, wm, memory_order_relaxed);
    for (int k = from; k < st->nops; k++) {
        op_inst *op = &st->ops[k];
        if (op->pl->on_watermark) {
            rv_code rc = after_callback(st, op, op->pl->on_watermark(op->state, &op->ctx, wm));
            if (rc != RV_OK)
                return fail_code(st, op, rc, "on_watermark");
        }
    }
    return rv_task_control_all(st, (rv_elem){.kind = RV_EL_WATERMARK, .u.wm = wm});
}

static rv_code fire_timers(rv_subtask *st)
{
    if (!st->ntimers)
        return RV_OK;
    int64_t now = rv_wall_ms();
    while (st->ntimers && st->timers[0].when <= now) {
        timer t = st->timers[0];
        memmove(&st->timers[0], &st->timers[1], (st->ntimers - 1) * sizeof(timer));
        st->ntimers--;
        op_inst *op = &st->ops[t.op];
        if (op->pl->on_timer) {
            rv_code rc = after_callback(st, op, op->pl->on_timer(op->state, &op->ctx, t.when));
            if (rc != RV_OK)
                return fail_code(st, op, rc, "on_timer");
        }
    }
    return RV_OK;
}

/* End of all input: final watermark, finish() down the chain, flush, EOS. */
static rv_code finish_chain(rv_subtask *st, int from)
{
    rv_code rc = RV_OK;
    if (st->wm < RV_WATERMARK_MAX && (rc = advance_watermark(st, RV_WATERMARK_MAX, from)) != RV_OK)
        return rc;
    for (int k = 0; k < st->nops; k++) {
        op_inst *op = &st->ops[k];
        if (op->pl->finish && (rc = after_callback(st, op, op->pl->finish(op->state, &op->ctx))) != RV_OK)
            return fail_code(st, op, rc, "finish");
    }
    if ((rc = flush_dead_letters(st)) != RV_OK || (rc = flush_outputs(st, true)) != RV_OK)
        return rc;
    return rv_task_control_all(st, (rv_elem){.kind = RV_EL_EOS});
}

/* After the end of input, a chain with a two-phase-commit operator waits
 * for one more checkpoint: it takes it when triggered (its sinks list the
 * last output as pre-committed) and ends once it is complete, so the last
 * output becomes visible exactly when a checkpoint covers it. */
static rv_code await_final_checkpoint(rv_subtask *st)
{
    uint64_t final = 0;
    for (;;) {
        if (canceled(st))
            return RV_ERR_CANCELED;
        rv_doorbell_prepare(&st->bell);
        uint64_t t = rv_subtask_trigger_pending(st);
        bool done = final && atomic_load(&st->jr->chk.complete) >= final;
        if (!t && !done) {
            rv_doorbell_sleep(&st->bell, rv_now_ns() + IDLE_WAIT_NS);
            continue;
        }
        rv_doorbell_cancel_wait(&st->bell);
        rv_code rc;
        if (t) {
            if ((rc = rv_subtask_checkpoint(st, t)) != RV_OK)
                return rc;
            final = t;
        }
        if (done)
            return rv_subtask_notify_complete(st);
    }
}

/* Between two elements or polls: a completed checkpoint is passed to the
 * two-phase operators; sources take a triggered checkpoint. */
static rv_code checkpoint_point(rv_subtask *st, bool source)
{
    if (!st->jr->chk.on)
        return RV_OK;
    rv_code rc = rv_subtask_notify_complete(st);
    uint64_t t;
    if (rc == RV_OK && source && (t = rv_subtask_trigger_pending(st))) {
        if ((rc = flush_dead_letters(st)) == RV_OK)
            rc = rv_subtask_checkpoint(st, t);
    }
    return rc;
}

static rv_code end_of_input(rv_subtask *st, int from)
{
    rv_code rc = finish_chain(st, from);
    if (rc == RV_OK && rv_subtask_needs_final_checkpoint(st))
        rc = await_final_checkpoint(st);
    return rc;
}

static rv_code run_source(rv_subtask *st)
{
    op_inst *src = &st->ops[0];
    const rv_node *n = src->node;
    st->src_last_data_ms = rv_wall_ms();
    /* Resumed from a checkpoint: downstream learns the watermark first. */
    rv_code rc0 = st->src_wm_sent > RV_WATERMARK_MIN ? advance_watermark(st, st->src_wm_sent, 1) : RV_OK;
    if (rc0 != RV_OK)
        return rc0;
    for (;;) {
        if (canceled(st))
            return RV_ERR_CANCELED;
        /* Drained before a checkpoint triggered after the drain request. */
        if (atomic_load(&st->jr->drain))
            return end_of_input(st, 1);
        if ((rc0 = checkpoint_point(st, true)) != RV_OK)
            return rc0;
        int64_t t0 = rv_now_ns();
        rv_src_status s = src->pl->poll(src->state, &src->ctx);
        int64_t t1 = rv_now_ns();
        rv_code rc = flush_dead_letters(st);
        if (rc != RV_OK)
            return rc;
        if (s == RV_SRC_FAILED) {
            if (!rv_job_run_error(st->jr) && !canceled(st))
                rv_job_run_fail(st->jr, rv_err_new(RV_ERR_INTERNAL, "source '%s' failed", n->id));
            return RV_ERR_INVALID;
        }
        if (s == RV_SRC_IDLE) {
            add_relaxed(&st->m_idle_ns, (uint64_t)(t1 - t0));
            if (n->idle_timeout_ms > 0 && !st->src_idle_sent && rv_wall_ms() - st->src_last_data_ms >= n->idle_timeout_ms) {
                st->src_idle_sent = true;
                if ((rc = flush_outputs(st, true)) != RV_OK || (rc = rv_task_control_all(st, (rv_elem){.kind = RV_EL_IDLE})) != RV_OK)
                    return rc;
            }
        } else {
            add_relaxed(&st->m_busy_ns, (uint64_t)(t1 - t0));
            if (s == RV_SRC_MORE) {
                st->src_last_data_ms = rv_wall_ms();
                st->src_idle_sent = false;
            }
        }
        if (n->has_event_time && st->src_max_ts != INT64_MIN) {
            int64_t wm;
            if (__builtin_sub_overflow(st->src_max_ts, n->max_out_of_orderness_ms + 1, &wm))
                wm = RV_WATERMARK_MIN;
            if (wm > st->src_wm_sent) {
                st->src_wm_sent = wm;
                if ((rc = advance_watermark(st, wm, 1)) != RV_OK)
                    return rc;
            }
        }
        if ((rc = fire_timers(st)) != RV_OK || (rc = flush_outputs(st, false)) != RV_OK)
            return rc;
        if (s == RV_SRC_END)
            return end_of_input(st, 1);
    }
}

/* The input gate's watermark, as Flink's watermark valve: the minimum
 * over inputs that have not gone idle, where an ended input counts as the
 * end of time (it will never send anything older). When every open input
 * is idle (and none has ended), the maximum of their watermarks: an idle
 * input must not hold time back. *all_idle tells whether every open input
 * is idle. */
static int64_t gate_watermark(const rv_subtask *st, bool *all_idle)
{
    int64_t min_active = RV_WATERMARK_MAX, max_idle = RV_WATERMARK_MIN;
    bool any_open = false, any_active = false, any_ended = false;
    for (int i = 0; i < st->nins; i++) {
        const in_chan *in = &st->ins[i];
        if (in->ended) {
            any_ended = true;
            continue;
        }
        any_open = true;
        if (in->idle) {
            if (in->wm > max_idle)
                max_idle = in->wm;
            continue;
        }
        any_active = true;
        if (in->wm < min_active)
            min_active = in->wm;
    }
    *all_idle = any_open && !any_active;
    if (any_active || any_ended)
        return min_active;
    return any_open ? max_idle : st->wm;
}

static rv_code on_element(rv_subtask *st, in_chan *in, rv_elem el)
{
    op_inst *head = &st->ops[0];
    rv_code rc = RV_OK;
    switch (el.kind) {
    case RV_EL_BATCH:
        in->idle = false;
        st->idle_sent = false;
        add_relaxed(&st->m_in, el.u.b->nrows);
        head->rows_in += el.u.b->nrows;
        rc = after_callback(st, head, head->pl->process(head->state, &head->ctx, in->input, el.u.b));
        rv_batch_unref(el.u.b);
        return fail_code(st, head, rc, "process");
    case RV_EL_WATERMARK:
        in->idle = false;
        st->idle_sent = false;
        if (el.u.wm > in->wm)
            in->wm = el.u.wm;
        break;
    case RV_EL_IDLE: in->idle = true; break;
    case RV_EL_EOS:
        in->ended = true;
        if ((rc = rv_subtask_check_alignment(st)) != RV_OK)
            return rc;
        break;
    case RV_EL_BARRIER: return rv_subtask_on_barrier(st, in, el.u.chk);
    }
    bool all_idle;
    int64_t wm = gate_watermark(st, &all_idle);
    if (wm > st->wm && (rc = advance_watermark(st, wm, 0)) != RV_OK)
        return rc;
    /* Every open input is idle: so is this subtask's output. */
    if (all_idle && !st->idle_sent) {
        st->idle_sent = true;
        rc = rv_task_control_all(st, (rv_elem){.kind = RV_EL_IDLE});
    }
    return rc;
}

static bool all_inputs_ended(const rv_subtask *st)
{
    for (int i = 0; i < st->nins; i++)
        if (!st->ins[i].ended)
            return false;
    return true;
}

static rv_code run_inputs(rv_subtask *st)
{
    int rr = 0; /* round-robin start, so no input starves another */
    while (!all_inputs_ended(st)) {
        if (canceled(st))
            return RV_ERR_CANCELED;
        bool got = false;
        int64_t t0 = rv_now_ns();
        for (int k = 0; k < st->nins; k++) {
            in_chan *in = &st->ins[(rr + k) % st->nins];
            if (in->ended || rv_subtask_input_blocked(st, in))
                continue;
            /* Take a few elements per channel per round. */
            for (int burst = 0; burst < 4; burst++) {
                rv_elem el;
                if (!rv_channel_pop(in->ch, &el))
                    break;
                got = true;
                rv_code rc = on_element(st, in, el);
                if (rc != RV_OK)
                    return rc;
                if (in->ended || rv_subtask_input_blocked(st, in))
                    break;
            }
        }
        rr = (rr + 1) % (st->nins ? st->nins : 1);
        rv_code rc;
        if ((rc = fire_timers(st)) != RV_OK || (rc = flush_outputs(st, false)) != RV_OK ||
            (rc = checkpoint_point(st, false)) != RV_OK)
            return rc;
        if (got) {
            add_relaxed(&st->m_busy_ns, (uint64_t)(rv_now_ns() - t0));
            continue;
        }
        /* Nothing to read: sleep until data, the next timer or the next
         * output deadline. */
        int64_t deadline = rv_now_ns() + IDLE_WAIT_NS;
        int64_t od = output_deadline(st);
        if (od < deadline)
            deadline = od;
        if (st->ntimers) {
            int64_t td = rv_now_ns() + (st->timers[0].when - rv_wall_ms()) * 1000000;
            if (td < deadline)
                deadline = td;
        }
        rv_doorbell_prepare(&st->bell);
        bool pending = false;
        for (int i = 0; i < st->nins && !pending; i++)
            pending = !st->ins[i].ended && !rv_subtask_input_blocked(st, &st->ins[i]) && rv_channel_len(st->ins[i].ch) > 0;
        pending = pending || atomic_load(&st->jr->chk.complete) > st->notified;
        if (pending || deadline <= rv_now_ns()) {
            rv_doorbell_cancel_wait(&st->bell);
            continue;
        }
        int64_t s0 = rv_now_ns();
        rv_doorbell_sleep(&st->bell, deadline);
        add_relaxed(&st->m_idle_ns, (uint64_t)(rv_now_ns() - s0));
    }
    return end_of_input(st, 0);
}

static void *subtask_main(void *arg)
{
    rv_subtask *st = arg;
    rv_code rc = RV_OK;
    int opened = 0;
    for (; opened < st->nops; opened++) {
        op_inst *op = &st->ops[opened];
        op->state = rv_xcalloc(1, op->pl->state_size ? op->pl->state_size : 1);
        rv_err *err = NULL;
        if (op->pl->flags & RV_PLUGIN_STATEFUL) {
            char *dir = rv_xasprintf("%s/%s-%d", st->jr->state_dir, op->node->id, st->index);
            err = rv_state_open(&st->js->state, dir, op->tag, &op->kstate);
            free(dir);
        }
        if (!err && op->pl->open)
            err = op->pl->open(op->state, &op->ctx);
        if (err) {
            rv_ctx_fail(&op->ctx, rv_err_wrap(err, "opening"));
            rc = RV_ERR_INVALID;
            break;
        }
        op->opened = true;
    }
    if (rc == RV_OK) {
        rv_err *err = rv_subtask_restore(st);
        if (err) {
            rv_job_run_fail(st->jr, err);
            rc = RV_ERR_INVALID;
        }
    }
    if (rc == RV_OK)
        rc = st->ops[0].pl->kind == RV_PLUGIN_SOURCE ? run_source(st) : run_inputs(st);
    /* A checkpoint that completed just before a cancel (stop --savepoint)
     * is still published: its output is durable and belongs to it. */
    if (opened == st->nops && st->jr->chk.on)
        rv_subtask_notify_complete(st);
    if (rc == RV_OK && !rv_job_run_error(st->jr) && !canceled(st))
        rv_subtask_chk_finished(st); /* before close(): it asks the operators for their state */
    for (int k = 0; k < st->nops; k++) {
        op_inst *op = &st->ops[k];
        if (op->opened && op->pl->close)
            op->pl->close(op->state, &op->ctx);
        op->opened = false;
        rv_state_close(op->kstate);
        op->kstate = NULL;
        RV_LOG_DEBUG(op->tag, "rows in %llu, out %llu", (unsigned long long)op->rows_in, (unsigned long long)op->rows_out);
    }
    rv_task_state state = RV_TASK_FINISHED;
    const char *err = rv_job_run_error(st->jr);
    if (err)
        state = RV_TASK_FAILED;
    else if (rc != RV_OK || canceled(st))
        state = RV_TASK_CANCELED;
    /* A subtask that stops early must not leave its consumers waiting. */
    if (state != RV_TASK_FINISHED)
        rv_job_run_cancel(st->jr);
    if (st->done)
        st->done(st->done_arg, st, state, err);
    return NULL;
}

rv_err *rv_subtask_start(rv_subtask *st, rv_subtask_done_fn done, void *arg)
{
    st->done = done;
    st->done_arg = arg;
    int rc = pthread_create(&st->thread, NULL, subtask_main, st);
    if (rc != 0)
        return rv_err_new(RV_ERR_INTERNAL, "cannot start subtask thread: %s", strerror(rc));
    st->started = true;
    return NULL;
}

void rv_subtask_join(rv_subtask *st)
{
    if (st->started) {
        pthread_join(st->thread, NULL);
        st->started = false;
    }
}
