/* row_keys: key_by evaluation for stateful operators (see row_keys.h). */
#include "row_keys.h"

#include <stdlib.h>
#include <string.h>

#include "rv_expr.h"
#include "rv_hash.h"
#include "rv_mem.h"

#define SCRATCH_ROWS 4096u

struct rv_row_keys {
    int nkeys, maxp;
    rv_expr **exprs;
    int *field;           /* input field of a bare field key, else -1 */
    rv_column *scratch;   /* evaluated keys */
    rv_column *cols;      /* this batch's key columns (shallow copies) */
    uint64_t *hashes;
    size_t hash_cap;
    uint8_t *kbuf;        /* every row's key bytes */
    size_t kcap;
    size_t *offs;
    size_t off_cap;
    rv_skey *keys;
    size_t key_cap;
};

void rv_row_keys_free(rv_row_keys *rk)
{
    if (!rk)
        return;
    for (int k = 0; k < rk->nkeys; k++) {
        rv_expr_free(rk->exprs[k]);
        rv_col_fini(&rk->scratch[k]);
    }
    free(rk->exprs);
    free(rk->field);
    free(rk->scratch);
    free(rk->cols);
    free(rk->hashes);
    free(rk->kbuf);
    free(rk->offs);
    free(rk->keys);
    free(rk);
}

rv_err *rv_row_keys_new(rv_op_ctx *ctx, rv_row_keys **out)
{
    const rv_schema *in = rv_ctx_input_schema(ctx, 0);
    rv_row_keys *rk = rv_xcalloc(1, sizeof(*rk));
    rk->nkeys = rv_ctx_nkeys(ctx);
    rk->maxp = rv_ctx_max_parallelism(ctx);
    rk->exprs = rv_xcalloc((size_t)rk->nkeys + 1, sizeof(rv_expr *));
    rk->field = rv_xcalloc((size_t)rk->nkeys + 1, sizeof(int));
    rk->scratch = rv_xcalloc((size_t)rk->nkeys + 1, sizeof(rv_column));
    rk->cols = rv_xcalloc((size_t)rk->nkeys + 1, sizeof(rv_column));
    for (int k = 0; k < rk->nkeys; k++) {
        size_t off = 0;
        rv_err *err = rv_expr_compile(rv_ctx_key_expr(ctx, k), in, &rk->exprs[k], &off);
        if (err) {
            rk->nkeys = k;
            rv_row_keys_free(rk);
            return rv_err_wrap(err, "key_by '%s'", rv_ctx_key_expr(ctx, k));
        }
        const char *f = rv_expr_field_name(rk->exprs[k]);
        rk->field[k] = f ? rv_schema_find(in, f) : -1;
        rv_col_init(&rk->scratch[k], rv_expr_type(rk->exprs[k]), SCRATCH_ROWS);
    }
    *out = rk;
    return NULL;
}

const rv_skey *rv_row_keys_eval(rv_row_keys *rk, const rv_batch *in)
{
    uint32_t n = in->nrows;
    rv_xgrow((void **)&rk->keys, &rk->key_cap, (size_t)n + 1, sizeof(rv_skey));
    if (rk->nkeys == 0) {
        uint64_t h = rv_hash_bytes("", 0, 0);
        for (uint32_t r = 0; r < n; r++)
            rk->keys[r] = (rv_skey){.key = (const uint8_t *)"", .len = 0, .kg = 0, .hash = h};
        return rk->keys;
    }
    for (int k = 0; k < rk->nkeys; k++) {
        if (rk->field[k] >= 0) {
            rk->cols[k] = in->cols[rk->field[k]];
        } else {
            rv_expr_eval(rk->exprs[k], in, &rk->scratch[k]);
            rk->cols[k] = rk->scratch[k];
        }
    }
    rv_xgrow((void **)&rk->hashes, &rk->hash_cap, (size_t)n + 1, sizeof(uint64_t));
    rv_xgrow((void **)&rk->offs, &rk->off_cap, (size_t)n + 1, sizeof(size_t));
    rv_hash_rows(rk->cols, rk->nkeys, n, rk->hashes, &rk->kbuf, &rk->kcap);
    size_t len = 0;
    for (uint32_t r = 0; r < n; r++) {
        rk->offs[r] = len;
        rv_key_encode(rk->cols, rk->nkeys, r, &rk->kbuf, &len, &rk->kcap);
    }
    rk->offs[n] = len;
    for (uint32_t r = 0; r < n; r++)
        rk->keys[r] = (rv_skey){.key = rk->kbuf + rk->offs[r], .len = (uint32_t)(rk->offs[r + 1] - rk->offs[r]),
                                .kg = (uint16_t)rv_key_group(rk->hashes[r], rk->maxp), .hash = rk->hashes[r]};
    return rk->keys;
}
