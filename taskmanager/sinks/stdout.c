/* stdout sink: prints rows as JSON lines or CSV on the process's standard
 * output, for debugging and quick starts (`rivulet run job.yaml | jq`).
 *
 * Every parallel instance formats into its own buffer and writes whole
 * buffers with one locked write loop, so lines of different subtasks never
 * interleave mid-line. The buffer is written at the end of every process()
 * call (and earlier, between rows, once it exceeds 64 KiB): this sink
 * favours latency over the number of syscalls. A failed write (EPIPE when
 * the reader went away, with SIGPIPE ignored; EIO; ENOSPC on a redirected
 * stdout) fails the job. A CSV header must come first and once, which only
 * a single instance can guarantee: with `header: true` the sink runs with
 * parallelism 1. */
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "rv_log.h"
#include "rv_mem.h"
#include "rv_plugin.h"
#include "rv_record.h"
#include "sinks/row_writer.h"

#define STDOUT_FLUSH_BYTES (64 * 1024)

typedef struct stdout_cfg {
    rv_row_opts fmt;
} stdout_cfg;

static const rv_cfg_key stdout_keys[] = {
    RV_ROW_OPTS_KEYS(stdout_cfg, fmt,
                     "CSV only: print a header line with the field names first; the sink "
                     "then runs as one instance (set false to print from parallel instances)."),
};

typedef struct stdout_state {
    rv_row_writer w;
    rv_buf buf;
} stdout_state;

/* Standard output is one process-wide resource shared by every instance of
 * every stdout sink (and each instance runs on its own thread), so this
 * lock, not per-instance state, is what keeps their lines whole. */
static pthread_mutex_t stdout_lock = PTHREAD_MUTEX_INITIALIZER;

/* Writes buf[0..len) to fd 1 under the lock, retrying short writes and
 * EINTR. Returns 0 or an errno value. */
static int write_stdout(const char *p, size_t len)
{
    int rc = 0;
    pthread_mutex_lock(&stdout_lock);
    while (len > 0) {
        ssize_t n = write(STDOUT_FILENO, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = errno;
            break;
        }
        p += n;
        len -= (size_t)n;
    }
    pthread_mutex_unlock(&stdout_lock);
    return rc;
}

/* Writes and empties the instance's buffer; fails the job on error. */
static rv_code flush(stdout_state *st, rv_op_ctx *ctx)
{
    if (st->buf.len == 0)
        return RV_OK;
    int e = write_stdout(st->buf.data, st->buf.len);
    st->buf.len = 0;
    if (e != 0) {
        rv_ctx_fail(ctx, rv_err_new(RV_ERR_IO, "writing to standard output: %s", strerror(e)));
        return RV_ERR_IO;
    }
    return RV_OK;
}

static rv_err *stdout_plan(rv_plan *p)
{
    const stdout_cfg *cfg = p->config;
    char what[160];
    snprintf(what, sizeof(what), "sink '%s'", p->id);
    rv_row_writer w;
    rv_err *err = rv_row_writer_init(&w, &cfg->fmt, p->node, what);
    /* Parallel instances open and start concurrently, so only a single
     * instance can guarantee that one header precedes every row. */
    if (!err && w.header)
        p->max_parallelism = 1;
    return err;
}

static rv_err *stdout_open(void *state, rv_op_ctx *ctx)
{
    stdout_state *st = state;
    const stdout_cfg *cfg = rv_ctx_config(ctx);
    /* The runtime prefixes open() errors with the sink's id. */
    rv_err *err = rv_row_writer_init(&st->w, &cfg->fmt, NULL, NULL);
    if (err)
        return err;
    /* One header for the whole output: plan() limits a sink with a header
     * to one instance. */
    if (rv_ctx_subtask(ctx) == 0) {
        rv_row_writer_header(&st->w, rv_ctx_input_schema(ctx, 0), &st->buf);
        if (st->buf.len > 0) {
            int e = write_stdout(st->buf.data, st->buf.len);
            st->buf.len = 0;
            if (e != 0) {
                rv_buf_fini(&st->buf); /* close() is not called when open() fails */
                return rv_err_new(RV_ERR_IO, "writing to standard output: %s", strerror(e));
            }
        }
    }
    return NULL;
}

static rv_code stdout_process(void *state, rv_op_ctx *ctx, int input, const rv_batch *in)
{
    stdout_state *st = state;
    uint32_t row = 0;
    while (row < in->nrows) {
        row = rv_row_writer_rows(&st->w, in, row, STDOUT_FLUSH_BYTES, &st->buf);
        rv_code rc = flush(st, ctx);
        if (rc != RV_OK)
            return rc;
    }
    return RV_OK;
}

static rv_code stdout_finish(void *state, rv_op_ctx *ctx)
{
    return flush(state, ctx);
}

static void stdout_close(void *state, rv_op_ctx *ctx)
{
    stdout_state *st = state;
    rv_buf_fini(&st->buf);
}

const rv_plugin rv_sink_stdout = {
    .name = "stdout",
    .abi = RV_PLUGIN_ABI,
    .kind = RV_PLUGIN_SINK,
    .doc = "Prints every row on the standard output of the process running the subtask, as JSON "
           "lines or CSV: meant for debugging and quick starts (`rivulet run job.yaml | jq .`). "
           "Output is written at the end of every input batch, so rows appear with low latency; "
           "lines of parallel subtasks never interleave mid-line, but their order across "
           "subtasks is arbitrary. A write error (for example a closed pipe) fails the job. "
           "Delivery is at-least-once: rows printed before a failure are printed again after a "
           "restart from a checkpoint.",
    .config = stdout_keys,
    .nconfig = sizeof(stdout_keys) / sizeof(stdout_keys[0]),
    .config_size = sizeof(stdout_cfg),
    .state_size = sizeof(stdout_state),
    .plan = stdout_plan,
    .open = stdout_open,
    .process = stdout_process,
    .finish = stdout_finish,
    .close = stdout_close,
};
