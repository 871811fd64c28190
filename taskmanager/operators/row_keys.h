/* row_keys: the state keys of a stateful operator's rows.
 *
 * The node's key_by expressions are compiled once (a bare field is read
 * from the input without evaluation); per batch they are evaluated column
 * by column, hashed with rv_hash_rows and encoded with rv_key_encode into
 * one rv_skey per row (key bytes, hash, key group). A node without
 * key_by gets the empty key in key group 0 for every row. */
#ifndef ROW_KEYS_H
#define ROW_KEYS_H

#include "rv_plugin.h"
#include "rv_state.h"

typedef struct rv_row_keys rv_row_keys;

/* For the instance behind ctx (its input 0 and key_by). */
rv_err *rv_row_keys_new(rv_op_ctx *ctx, rv_row_keys **out);
void rv_row_keys_free(rv_row_keys *rk); /* accepts NULL */
/* The keys of rows 0..in->nrows) (valid until the next call). */
const rv_skey *rv_row_keys_eval(rv_row_keys *rk, const rv_batch *in);

#endif
