/* discard sink: counts the rows it receives and drops them. Benchmarks use
 * it to measure a pipeline without the cost of formatting output; the
 * count is logged when the input ends.
 *
 * With `latency_of: <timestamp field>` it also measures, per row, the wall
 * clock at arrival minus that field (rows of a batch share one arrival
 * time) into a histogram of 1 ms buckets up to 60 s (later ones in an
 * overflow bucket) and logs p50, p90, p99, p99.9 and the maximum at the
 * end. With a paced generator whose event time starts `now`, that is the
 * end-to-end latency of each row (or, with window_end, the delay from a
 * window's end to its result). */
#include <inttypes.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "rv_log.h"
#include "rv_mem.h"
#include "rv_plugin.h"

#define LAT_BUCKETS 60001 /* 0 .. 60000 ms; the last also holds everything later */

typedef struct discard_cfg {
    char *latency_of;
} discard_cfg;

static const rv_cfg_key discard_keys[] = {
    {.name = "latency_of",
     .type = RV_CFG_STRING,
     .offset = offsetof(discard_cfg, latency_of),
     .doc = "A timestamp field: log percentiles of (arrival wall clock - field) per row at the end, "
            "e.g. `ts` after a paced generator with `start: now`, or `window_end` after a window."},
};

typedef struct discard_state {
    uint64_t rows, batches;
    int lat_field; /* -1: no latency measurement */
    uint64_t *hist;
    int64_t max_ms, min_ms;
    uint64_t measured, nulls;
} discard_state;

static rv_err *discard_plan(rv_plan *p)
{
    const discard_cfg *cfg = p->config;
    if (!cfg->latency_of)
        return NULL;
    int f = rv_schema_find(p->inputs[0], cfg->latency_of);
    if (f < 0 || p->inputs[0]->fields[f].type != RV_T_TIMESTAMP)
        return rv_yerr(rv_ymap_get_or_self(p->node, "latency_of"), RV_ERR_INVALID,
                       "sink '%s': latency_of needs a timestamp field of the input%s", p->id,
                       f < 0 ? " (no such field)" : "");
    return NULL;
}

static rv_err *discard_open(void *state, rv_op_ctx *ctx)
{
    discard_state *st = state;
    const discard_cfg *cfg = rv_ctx_config(ctx);
    st->lat_field = cfg && cfg->latency_of ? rv_schema_find(rv_ctx_input_schema(ctx, 0), cfg->latency_of) : -1;
    if (st->lat_field >= 0)
        st->hist = rv_xcalloc(LAT_BUCKETS, sizeof(uint64_t));
    st->max_ms = INT64_MIN;
    st->min_ms = INT64_MAX;
    return NULL;
}

static rv_code discard_process(void *state, rv_op_ctx *ctx, int input, const rv_batch *in)
{
    discard_state *st = state;
    st->rows += in->nrows;
    st->batches++;
    if (st->lat_field < 0)
        return RV_OK;
    int64_t now = rv_ctx_now_ms(ctx);
    const rv_column *c = &in->cols[st->lat_field];
    for (uint32_t r = 0; r < in->nrows; r++) {
        if (rv_col_is_null(c, r)) {
            st->nulls++;
            continue;
        }
        int64_t lat = now - c->d.i64[r];
        if (lat > st->max_ms)
            st->max_ms = lat;
        if (lat < st->min_ms)
            st->min_ms = lat;
        st->hist[lat < 0 ? 0 : lat >= LAT_BUCKETS ? LAT_BUCKETS - 1 : lat]++;
        st->measured++;
    }
    return RV_OK;
}

/* The smallest bucket at or below which a fraction q of the rows fell. */
static int64_t percentile(const discard_state *st, double q)
{
    uint64_t want = (uint64_t)((double)st->measured * q + 0.5), seen = 0;
    if (want == 0)
        want = 1;
    for (int64_t b = 0; b < LAT_BUCKETS; b++) {
        seen += st->hist[b];
        if (seen >= want)
            return b;
    }
    return LAT_BUCKETS - 1;
}

static rv_code discard_finish(void *state, rv_op_ctx *ctx)
{
    const discard_state *st = state;
    RV_LOG_INFO(rv_ctx_tag(ctx), "discard sink '%s': %" PRIu64 " rows in %" PRIu64 " batches", rv_ctx_id(ctx), st->rows,
                st->batches);
    if (st->lat_field >= 0 && st->measured)
        RV_LOG_INFO(rv_ctx_tag(ctx),
                    "discard sink '%s': latency_ms p50=%" PRId64 " p90=%" PRId64 " p99=%" PRId64 " p99.9=%" PRId64
                    " max=%" PRId64 " min=%" PRId64 " rows=%" PRIu64 " (%" PRIu64 " without a time)",
                    rv_ctx_id(ctx), percentile(st, 0.5), percentile(st, 0.9), percentile(st, 0.99),
                    percentile(st, 0.999), st->max_ms, st->min_ms, st->measured, st->nulls);
    return RV_OK;
}

static void discard_close(void *state, rv_op_ctx *ctx)
{
    discard_state *st = state;
    free(st->hist);
    st->hist = NULL;
}

const rv_plugin rv_sink_discard = {
    .name = "discard",
    .abi = RV_PLUGIN_ABI,
    .kind = RV_PLUGIN_SINK,
    .doc = "Counts the rows it receives and drops them; logs the count (per subtask, at INFO) "
           "when the input ends. Meant for benchmarks and for trying out a pipeline without "
           "output. With `latency_of` it also logs latency percentiles (below 0 ms counts as 0; "
           "1 ms resolution).",
    .config = discard_keys,
    .nconfig = sizeof(discard_keys) / sizeof(discard_keys[0]),
    .config_size = sizeof(discard_cfg),
    .state_size = sizeof(discard_state),
    .plan = discard_plan,
    .open = discard_open,
    .process = discard_process,
    .finish = discard_finish,
    .close = discard_close,
};
