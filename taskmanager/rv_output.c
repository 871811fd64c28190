/* rv_output: partitioning of a subtask's output onto channels. */
#include "rv_output.h"

#include <stdlib.h>
#include <string.h>

#include "rv_expr.h"
#include "rv_hash.h"
#include "rv_mem.h"

struct rv_output {
    rv_partitioning part;
    int nchans;
    rv_channel **chans;
    const atomic_bool *cancel;
    int next; /* rebalance cursor */
    uint64_t blocked_ns;
    /* hash */
    int max_parallelism;
    int64_t timeout_ns;
    int nkeys;
    rv_expr **keys;
    rv_column *key_cols;
    uint64_t *hashes;
    uint8_t *key_buf; /* key encoding scratch */
    size_t key_buf_cap;
    uint32_t **sel;   /* per target: row indices of the current batch */
    uint32_t *nsel;
    rv_batch **pending;
    int64_t *pending_since;
    rv_schema *schema;
    uint32_t cap;
};

rv_err *rv_output_new(rv_partitioning part, rv_channel **chans, int nchans, const rv_jobspec *js, int consumer_node,
                      rv_schema *schema, const atomic_bool *cancel, rv_output **out)
{
    rv_output *o = rv_xcalloc(1, sizeof(*o));
    o->part = part;
    o->nchans = nchans;
    o->chans = rv_xcalloc((size_t)nchans, sizeof(rv_channel *));
    memcpy(o->chans, chans, (size_t)nchans * sizeof(rv_channel *));
    o->cancel = cancel;
    o->schema = rv_schema_ref(schema);
    if (part == RV_PART_HASH) {
        const rv_node *n = &js->nodes[consumer_node];
        o->max_parallelism = js->max_parallelism;
        o->timeout_ns = js->buffer_timeout_ms * 1000000;
        o->nkeys = n->nkeys;
        o->keys = rv_xcalloc((size_t)n->nkeys, sizeof(rv_expr *));
        o->key_cols = rv_xcalloc((size_t)n->nkeys, sizeof(rv_column));
        for (int k = 0; k < n->nkeys; k++) {
            rv_err *err = rv_expr_compile(n->key_exprs[k], schema, &o->keys[k], NULL);
            if (err) {
                rv_output_free(o);
                return rv_err_wrap(err, "key of '%s'", n->id);
            }
            rv_col_init(&o->key_cols[k], rv_expr_type(o->keys[k]), RV_OUTPUT_ROWS);
        }
        o->sel = rv_xcalloc((size_t)nchans, sizeof(uint32_t *));
        o->nsel = rv_xcalloc((size_t)nchans, sizeof(uint32_t));
        o->pending = rv_xcalloc((size_t)nchans, sizeof(rv_batch *));
        o->pending_since = rv_xcalloc((size_t)nchans, sizeof(int64_t));
    }
    *out = o;
    return NULL;
}

void rv_output_free(rv_output *o)
{
    if (!o)
        return;
    for (int k = 0; k < o->nkeys; k++) {
        rv_expr_free(o->keys[k]);
        rv_col_fini(&o->key_cols[k]);
    }
    free(o->keys);
    free(o->key_cols);
    free(o->hashes);
    free(o->key_buf);
    if (o->sel)
        for (int c = 0; c < o->nchans; c++) {
            free(o->sel[c]);
            rv_batch_unref(o->pending[c]);
        }
    free(o->sel);
    free(o->nsel);
    free(o->pending);
    free(o->pending_since);
    free(o->chans);
    rv_schema_unref(o->schema);
    free(o);
}

static rv_code push(rv_output *o, int c, rv_batch *b)
{
    rv_elem el = {.kind = RV_EL_BATCH, .u.b = b};
    rv_code rc = rv_channel_push(o->chans[c], el, o->cancel, &o->blocked_ns);
    if (rc != RV_OK)
        rv_batch_unref(b);
    return rc;
}

static rv_code send_pending(rv_output *o, int c)
{
    rv_batch *b = o->pending[c];
    if (!b || b->nrows == 0)
        return RV_OK;
    o->pending[c] = NULL;
    return push(o, c, b);
}

static rv_code route_hash(rv_output *o, const rv_batch *b)
{
    uint32_t n = b->nrows;
    if (n > o->cap) {
        o->hashes = rv_xrealloc(o->hashes, n * sizeof(uint64_t));
        for (int c = 0; c < o->nchans; c++)
            o->sel[c] = rv_xrealloc(o->sel[c], n * sizeof(uint32_t));
        o->cap = n;
    }
    for (int k = 0; k < o->nkeys; k++)
        rv_expr_eval(o->keys[k], b, &o->key_cols[k]);
    rv_hash_rows(o->key_cols, o->nkeys, n, o->hashes, &o->key_buf, &o->key_buf_cap);
    for (int c = 0; c < o->nchans; c++)
        o->nsel[c] = 0;
    for (uint32_t r = 0; r < n; r++) {
        int kg = rv_key_group(o->hashes[r], o->max_parallelism);
        int c = rv_key_group_subtask(kg, o->max_parallelism, o->nchans);
        o->sel[c][o->nsel[c]++] = r;
    }
    int64_t now = rv_now_ns();
    for (int c = 0; c < o->nchans; c++) {
        if (!o->nsel[c])
            continue;
        if (!o->pending[c]) {
            o->pending[c] = rv_batch_new(o->schema, RV_OUTPUT_ROWS);
            o->pending_since[c] = now;
        }
        rv_batch_append_rows(o->pending[c], b, o->sel[c], o->nsel[c]);
        if (rv_batch_is_full(o->pending[c], RV_OUTPUT_ROWS)) {
            rv_code rc = send_pending(o, c);
            if (rc != RV_OK)
                return rc;
        }
    }
    return RV_OK;
}

rv_code rv_output_batch(rv_output *o, const rv_batch *b)
{
    if (b->nrows == 0)
        return RV_OK;
    switch (o->part) {
    case RV_PART_FORWARD: return push(o, 0, rv_batch_ref((rv_batch *)b));
    case RV_PART_REBALANCE: {
        int c = o->next;
        o->next = (o->next + 1) % o->nchans;
        return push(o, c, rv_batch_ref((rv_batch *)b));
    }
    case RV_PART_BROADCAST:
        for (int c = 0; c < o->nchans; c++) {
            rv_code rc = push(o, c, rv_batch_ref((rv_batch *)b));
            if (rc != RV_OK)
                return rc;
        }
        return RV_OK;
    case RV_PART_HASH: return route_hash(o, b);
    }
    return RV_ERR_INTERNAL;
}

rv_code rv_output_flush(rv_output *o, int64_t now_ns, bool force)
{
    if (o->part != RV_PART_HASH)
        return RV_OK;
    for (int c = 0; c < o->nchans; c++) {
        if (o->pending[c] && (force || now_ns - o->pending_since[c] >= o->timeout_ns)) {
            rv_code rc = send_pending(o, c);
            if (rc != RV_OK)
                return rc;
        }
    }
    return RV_OK;
}

int64_t rv_output_deadline(const rv_output *o)
{
    int64_t d = INT64_MAX;
    if (o->part == RV_PART_HASH)
        for (int c = 0; c < o->nchans; c++)
            if (o->pending[c] && o->pending_since[c] + o->timeout_ns < d)
                d = o->pending_since[c] + o->timeout_ns;
    return d;
}

rv_code rv_output_control(rv_output *o, rv_elem el)
{
    rv_code rc = rv_output_flush(o, 0, true);
    if (rc != RV_OK)
        return rc;
    for (int c = 0; c < o->nchans; c++) {
        rc = rv_channel_push(o->chans[c], el, o->cancel, &o->blocked_ns);
        if (rc != RV_OK)
            return rc;
    }
    return RV_OK;
}

uint64_t rv_output_blocked_ns(const rv_output *o) { return o->blocked_ns; }
