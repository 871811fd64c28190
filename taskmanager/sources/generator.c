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
 * may block.
 *
 * Checkpoints: an instance's position is the record number of its next
 * record, plus the wall-clock start of every event_time field with
 * `start: now` (so resumed records keep the event times of the original
 * run; everything else about a record follows from seed, i and the field).
 * The blob (all integers little-endian):
 *   "RVGN" | u8 version (1) | u64 next | u32 n | n x (u32 field index | i64 start ms)
 * Restoring picks the state written by the instance with the same subtask
 * and continues right after the last record emitted before the snapshot.
 * The parallelism cannot change when resuming: an instance's records are
 * s, s+P, ... and the old instances stopped at different points, so the
 * records still owed would no longer be a simple stride of any new
 * instance; restore() fails with an error saying so. Pacing (`rate`) is
 * processing time and is not restored: a resumed instance starts pacing
 * afresh from its next record (no burst to catch up on the downtime). */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gen_fields.h"
#include "rv_log.h"
#include "rv_mem.h"
#include "rv_record.h" /* rv_buf */
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
    bool resumed;    /* restored from a checkpoint: pacing starts at `next` */
    int64_t t0_ns, last_emit_ns;
} gen_state;

#define STATE_MAGIC "RVGN"
#define STATE_VERSION 1

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
            if (st->resumed) /* record `next` is due now */
                st->t0_ns = now - due_ns(st, st->next);
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

/* ---- checkpoints ---- */

static void put_u32(rv_buf *out, uint32_t v)
{
    unsigned char b[4];
    for (int k = 0; k < 4; k++)
        b[k] = (unsigned char)(v >> (8 * k));
    rv_buf_append(out, b, 4);
}

static void put_u64(rv_buf *out, uint64_t v)
{
    unsigned char b[8];
    for (int k = 0; k < 8; k++)
        b[k] = (unsigned char)(v >> (8 * k));
    rv_buf_append(out, b, 8);
}

/* Reads n little-endian bytes at *pos of p[0..len) into *v; false when
 * fewer are left. */
static bool get_le(const unsigned char *p, size_t len, size_t *pos, int n, uint64_t *v)
{
    if (len - *pos < (size_t)n)
        return false;
    uint64_t x = 0;
    for (int k = 0; k < n; k++)
        x |= (uint64_t)p[*pos + (size_t)k] << (8 * k);
    *pos += (size_t)n;
    *v = x;
    return true;
}

static rv_err *gen_snapshot(void *state, rv_op_ctx *ctx, uint64_t id, rv_buf *out)
{
    (void)ctx;
    (void)id;
    gen_state *st = state;
    rv_buf_append(out, STATE_MAGIC, 4);
    unsigned char version = STATE_VERSION;
    rv_buf_append(out, &version, 1);
    put_u64(out, st->next);
    uint32_t n = 0;
    int64_t start;
    for (int f = 0; f < rv_gen_nfields(st->gen); f++)
        n += rv_gen_start_is_now(st->gen, f, &start);
    put_u32(out, n);
    for (int f = 0; f < rv_gen_nfields(st->gen); f++) {
        if (rv_gen_start_is_now(st->gen, f, &start)) {
            put_u32(out, (uint32_t)f);
            put_u64(out, (uint64_t)start);
        }
    }
    return NULL;
}

/* Decodes one instance's state: *next and the starts (field, ms) of the
 * `now` event_time fields (*starts is allocated, *nstarts entries). */
static rv_err *decode_state(const rv_op_state *s, const char *id, uint64_t *next,
                            int64_t (**starts)[2], uint32_t *nstarts)
{
    const unsigned char *p = s->data;
    size_t len = s->len, pos = 5;
    uint64_t v = 0, n = 0;
    *starts = NULL;
    *nstarts = 0;
    if (!p || len < 5 || memcmp(p, STATE_MAGIC, 4) != 0)
        return rv_err_new(RV_ERR_CORRUPT,
                          "source '%s': checkpoint state of instance %d is not a generator "
                          "state (%zu bytes, bad header)", id, s->subtask, len);
    if (p[4] != STATE_VERSION)
        return rv_err_new(RV_ERR_CORRUPT,
                          "source '%s': checkpoint state of instance %d has version %u; this "
                          "build reads version %d", id, s->subtask, p[4], STATE_VERSION);
    if (!get_le(p, len, &pos, 8, next) || !get_le(p, len, &pos, 4, &n))
        return rv_err_new(RV_ERR_CORRUPT, "source '%s': checkpoint state of instance %d is "
                          "truncated (%zu bytes)", id, s->subtask, len);
    if (n > (len - pos) / 12 || len - pos != n * 12)
        return rv_err_new(RV_ERR_CORRUPT, "source '%s': checkpoint state of instance %d is "
                          "%s (%zu bytes for %llu event-time starts)", id, s->subtask,
                          n > (len - pos) / 12 ? "truncated" : "corrupt: trailing bytes", len,
                          (unsigned long long)n);
    *starts = rv_xcalloc(n ? n : 1, sizeof(**starts));
    for (uint32_t k = 0; k < n; k++) {
        get_le(p, len, &pos, 4, &v);
        (*starts)[k][0] = (int64_t)v;
        get_le(p, len, &pos, 8, &v);
        (*starts)[k][1] = (int64_t)v;
    }
    *nstarts = (uint32_t)n;
    return NULL;
}

static rv_err *gen_restore(void *state, rv_op_ctx *ctx, const rv_op_state *states, int n)
{
    gen_state *st = state;
    const char *id = rv_ctx_id(ctx);
    int sub = rv_ctx_subtask(ctx), par = rv_ctx_parallelism(ctx);
    const rv_op_state *mine = NULL;
    for (int k = 0; k < n; k++) {
        if (states[k].parallelism != par)
            return rv_err_new(RV_ERR_INVALID,
                              "source '%s': the generator cannot change parallelism when "
                              "resuming (the checkpoint was taken with parallelism %d, the job "
                              "now has %d); resume it with parallelism %d",
                              id, states[k].parallelism, par, states[k].parallelism);
        if (states[k].subtask < 0 || states[k].subtask >= par)
            return rv_err_new(RV_ERR_CORRUPT, "source '%s': checkpoint state names instance %d "
                              "of %d", id, states[k].subtask, par);
        if (states[k].subtask == sub) {
            if (mine)
                return rv_err_new(RV_ERR_CORRUPT, "source '%s': the checkpoint holds two "
                                  "states of instance %d", id, sub);
            mine = &states[k];
        }
    }
    if (n == 0)
        return NULL; /* nothing was checkpointed: start from the beginning */
    if (!mine)
        return rv_err_new(RV_ERR_CORRUPT, "source '%s': the checkpoint has no state of "
                          "instance %d of %d", id, sub, par);
    uint64_t next = 0;
    int64_t (*starts)[2];
    uint32_t nstarts;
    rv_err *err = decode_state(mine, id, &next, &starts, &nstarts);
    if (err)
        return err;
    if (next % (uint64_t)par != (uint64_t)sub) {
        free(starts);
        return rv_err_new(RV_ERR_CORRUPT, "source '%s': checkpoint state of instance %d is "
                          "corrupt: next record %llu is not one of that instance's", id, sub,
                          (unsigned long long)next);
    }
    for (uint32_t k = 0; k < nstarts; k++) {
        int64_t f = starts[k][0], now_start;
        if (f >= 0 && f < rv_gen_nfields(st->gen) && rv_gen_start_is_now(st->gen, (int)f, &now_start))
            rv_gen_set_start(st->gen, (int)f, starts[k][1]);
        else
            RV_LOG_WARN(rv_ctx_tag(ctx), "source '%s': the checkpoint has an event-time start "
                        "for field %lld, which is no longer an event_time with start: now; "
                        "ignored", id, (long long)f);
    }
    free(starts);
    st->next = next;
    st->resumed = true;
    st->started = false;
    return NULL;
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
    .snapshot = gen_snapshot,
    .restore = gen_restore,
    .doc_more = rv_gen_doc,
};
