/* generator: the `generator` source, deterministic synthetic records for
 * tests, demos and benchmarks.
 *
 * Record number i (0-based over the whole source) is made by instance
 * i % P of P; field values come from gen_fields (a pure function of seed, i
 * and the field's index), so the output is the same for any parallelism and
 * batch size. With `rate` set, record i is due rate-relative to the first
 * poll (at i / rate seconds); the source sleeps until enough records are due
 * to fill a batch, or at most LINGER_NS after the last emitted batch so that
 * a slow rate still sees each record promptly, and never longer than a poll
 * may block. */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <time.h>

#include "gen_fields.h"
#include "rv_mem.h"
#include "rv_time.h" /* rv_now_ns */
#include "rv_plugin.h"

#define LINGER_NS INT64_C(10000000)   /* 10 ms: longest a due record waits */
#define MAX_SLEEP_NS INT64_C(20000000) /* a poll returns within ~20 ms */

typedef struct gen_config {
    int64_t seed;
    int64_t count;
    double rate;
    int64_t batch_size;
    const rv_ynode *fields;
} gen_config;

typedef struct gen_state {
    rv_gen *gen;
    uint64_t next;   /* record number of this instance's next record */
    uint64_t stride; /* parallelism */
    uint64_t count;  /* 0 = unbounded */
    uint32_t batch;
    double rate;     /* records per second over all instances; 0 = unpaced */
    bool started;
    int64_t t0_ns, last_emit_ns;
} gen_state;

static const rv_cfg_key gen_keys[] = {
    {.name = "seed", .type = RV_CFG_INT, .def = "0", .offset = offsetof(gen_config, seed),
     .doc = "Seed of all field generators; equal seeds give equal records."},
    {.name = "count", .type = RV_CFG_INT, .def = "0", .offset = offsetof(gen_config, count),
     .doc = "Number of records over all instances; 0 = unbounded.", .min = 0, .max = INT64_MAX},
    {.name = "rate", .type = RV_CFG_FLOAT, .def = "0", .offset = offsetof(gen_config, rate),
     .doc = "Records per second over all instances; 0 = as fast as possible."},
    {.name = "batch_size", .type = RV_CFG_INT, .def = "4096", .offset = offsetof(gen_config, batch_size),
     .doc = "Most records per emitted batch.", .min = 1, .max = 1 << 20},
    {.name = "fields", .type = RV_CFG_NODE, .offset = offsetof(gen_config, fields),
     .flags = RV_CFG_REQUIRED,
     .doc = "Map of schema field name to its generator `{kind: ..., ...}` (see the kinds below)."},
};

static void sleep_ns(int64_t ns)
{
    if (ns <= 0)
        return;
    struct timespec ts = {.tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static rv_err *gen_plan(rv_plan *p)
{
    const gen_config *cfg = p->config;
    char *what = rv_xasprintf("source '%s'", p->id);
    rv_err *err = NULL;
    if (!(cfg->rate >= 0) || !isfinite(cfg->rate)) {
        err = rv_yerr(rv_ymap_get_or_self(p->node, "rate"), RV_ERR_INVALID,
                      "%s: 'rate' must be a number of records per second >= 0", what);
    } else if (!p->declared) {
        err = rv_yerr(p->node, RV_ERR_INVALID, "%s: missing required key 'schema'", what);
    } else {
        rv_gen *g = NULL;
        err = rv_gen_new(cfg->fields, p->declared, (uint64_t)cfg->seed, what, &g);
        rv_gen_free(g);
    }
    if (!err)
        p->output = rv_schema_ref(p->declared);
    free(what);
    return err;
}

static rv_err *gen_open(void *state, rv_op_ctx *ctx)
{
    gen_state *st = state;
    const gen_config *cfg = rv_ctx_config(ctx);
    char *what = rv_xasprintf("source '%s'", rv_ctx_id(ctx));
    rv_err *err = rv_gen_new(cfg->fields, rv_ctx_output_schema(ctx), (uint64_t)cfg->seed, what,
                             &st->gen);
    free(what);
    if (err)
        return err;
    st->next = (uint64_t)rv_ctx_subtask(ctx);
    st->stride = (uint64_t)rv_ctx_parallelism(ctx);
    st->count = (uint64_t)cfg->count;
    st->batch = (uint32_t)cfg->batch_size;
    /* Keep a batch's string data under RV_BATCH_MAX_STRING_BYTES (string
     * offsets are 32-bit): fewer rows when rows can be long. */
    size_t row_bytes = 0;
    for (int f = 0; f < rv_gen_nfields(st->gen); f++)
        row_bytes += rv_gen_string_max(st->gen, f);
    if (row_bytes && RV_BATCH_MAX_STRING_BYTES / row_bytes < st->batch)
        st->batch = (uint32_t)(RV_BATCH_MAX_STRING_BYTES / row_bytes ? RV_BATCH_MAX_STRING_BYTES / row_bytes : 1);
    st->rate = cfg->rate;
    return NULL;
}

/* Due time of record i, relative to the first poll. */
static int64_t due_ns(const gen_state *st, uint64_t i)
{
    double t = (double)i * 1e9 / st->rate;
    return t < 9e18 ? (int64_t)t : INT64_MAX / 2;
}

/* How many of this instance's records are due at `elapsed`, at most max. */
static uint32_t due_count(const gen_state *st, int64_t elapsed, uint32_t max)
{
    double last = floor((double)elapsed * st->rate / 1e9); /* last due record number */
    if (last < (double)st->next)
        return 0;
    double n = floor((last - (double)st->next) / (double)st->stride) + 1;
    return n >= max ? max : (uint32_t)n;
}

static rv_src_status gen_poll(void *state, rv_op_ctx *ctx)
{
    gen_state *st = state;
    uint32_t n = st->batch;
    if (st->count) {
        if (st->next >= st->count)
            return RV_SRC_END;
        uint64_t left = (st->count - st->next + st->stride - 1) / st->stride;
        if (left < n)
            n = (uint32_t)left;
    }
    if (st->rate > 0) {
        int64_t now = rv_now_ns();
        if (!st->started) {
            st->started = true;
            st->t0_ns = st->last_emit_ns = now;
        }
        uint32_t due = due_count(st, now - st->t0_ns, n);
        if (due < n && (due == 0 || now - st->last_emit_ns < LINGER_NS)) {
            /* Sleep until the batch is full or the linger time is up. */
            int64_t full = st->t0_ns + due_ns(st, st->next + (uint64_t)(n - 1) * st->stride);
            int64_t linger = st->last_emit_ns + LINGER_NS;
            if (due == 0) {
                int64_t first = st->t0_ns + due_ns(st, st->next);
                if (first > linger)
                    linger = first;
            }
            int64_t wake = full < linger ? full : linger;
            int64_t wait = wake - now;
            sleep_ns(wait < MAX_SLEEP_NS ? wait : MAX_SLEEP_NS);
            return RV_SRC_IDLE;
        }
        n = due;
        st->last_emit_ns = now;
    }
    rv_batch *b = rv_batch_new(rv_ctx_output_schema(ctx), n);
    rv_gen_fill_batch(st->gen, st->next, st->stride, n, b);
    st->next += (uint64_t)n * st->stride;
    if (rv_ctx_emit(ctx, b) != RV_OK)
        return RV_SRC_IDLE; /* canceled: the runtime stops polling */
    return RV_SRC_MORE;
}

static void gen_close(void *state, rv_op_ctx *ctx)
{
    gen_state *st = state;
    rv_gen_free(st->gen);
    st->gen = NULL;
}

const rv_plugin rv_source_generator = {
    .name = "generator",
    .abi = RV_PLUGIN_ABI,
    .kind = RV_PLUGIN_SOURCE,
    .doc = "Deterministic synthetic records. Each schema field gets a generator under `fields` "
           "(sequence, uniform_int, uniform_float, choice, string, event_time, constant, each "
           "with an optional null_probability). Record number i counts from 0 over the whole "
           "source and instance s of P makes records s, s+P, s+2P, ...; a value depends only "
           "on (seed, i, field index), so the output is identical for every parallelism and "
           "batch size. Bounded when `count` is set; paced when `rate` is set.",
    .config = gen_keys,
    .nconfig = sizeof(gen_keys) / sizeof(gen_keys[0]),
    .config_size = sizeof(gen_config),
    .state_size = sizeof(gen_state),
    .plan = gen_plan,
    .open = gen_open,
    .poll = gen_poll,
    .close = gen_close,
    .doc_more = rv_gen_doc,
};
