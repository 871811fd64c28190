/* discard sink: counts the rows it receives and drops them. Benchmarks use
 * it to measure a pipeline without the cost of formatting output; the
 * count is logged when the input ends. */
#include <inttypes.h>

#include "rv_log.h"
#include "rv_plugin.h"

typedef struct discard_state {
    uint64_t rows, batches;
} discard_state;

static rv_err *discard_open(void *state, rv_op_ctx *ctx) { return NULL; }

static rv_code discard_process(void *state, rv_op_ctx *ctx, int input, const rv_batch *in)
{
    discard_state *st = state;
    st->rows += in->nrows;
    st->batches++;
    return RV_OK;
}

static rv_code discard_finish(void *state, rv_op_ctx *ctx)
{
    const discard_state *st = state;
    RV_LOG_INFO(rv_ctx_tag(ctx), "discard sink '%s': %" PRIu64 " rows in %" PRIu64 " batches",
                rv_ctx_id(ctx), st->rows, st->batches);
    return RV_OK;
}

static void discard_close(void *state, rv_op_ctx *ctx) {}

const rv_plugin rv_sink_discard = {
    .name = "discard",
    .abi = RV_PLUGIN_ABI,
    .kind = RV_PLUGIN_SINK,
    .doc = "Counts the rows it receives and drops them; logs the count (per subtask, at INFO) "
           "when the input ends. Meant for benchmarks and for trying out a pipeline without "
           "output.",
    .config = NULL,
    .nconfig = 0,
    .config_size = 0,
    .state_size = sizeof(discard_state),
    .open = discard_open,
    .process = discard_process,
    .finish = discard_finish,
    .close = discard_close,
};
