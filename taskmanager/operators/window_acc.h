/* window_acc: the accumulators of window_aggregate's aggregate calls, kept
 * in keyed state (rv_state.h).
 *
 * One window of one key has a fixed part: the accumulators of every call
 * side by side (zero bytes = no input yet), stored by window_aggregate in a
 * value state of its own. Calls whose accumulator has no fixed size keep a
 * variable part in value state `sid_var + call` under the same key and
 * namespace:
 *   count                  n
 *   sum, avg               sum, n
 *   min, max               value, n          (strings: n; value in the var part)
 *   first, last            value, n, time    (strings: n, time; value in the var part)
 *   count_distinct         -                 (var part: an rv_dset of the values)
 *   approx_count_distinct  -                 (var part: rv_hll registers)
 * first/last take the value of the row with the smallest/largest time
 * (ties: the earliest/latest row folded), where time is the row's event
 * time (processing time: the arrival time). Null arguments are skipped.
 * Values of count_distinct compare by their canonical bytes (numbers and
 * timestamps as 8 bytes, so 1 and 1.0 of different fields never meet; a
 * call has one argument type). */
#ifndef WINDOW_ACC_H
#define WINDOW_ACC_H

#include <stdint.h>

#include "rv_batch.h"
#include "rv_expr.h"
#include "rv_state.h"

typedef struct rv_wacc rv_wacc;

/* Most calls one window_aggregate may have (each may take a state id). */
#define RV_WACC_MAX_CALLS 48

/* calls[]: kind, arg_type and result_type are read and copied. */
rv_wacc *rv_wacc_new(const rv_agg_call *calls, int ncalls, int sid_var);
void rv_wacc_free(rv_wacc *w); /* accepts NULL */
/* Bytes of the fixed part of one window. */
uint32_t rv_wacc_size(const rv_wacc *w);

/* A (row, window) pair of a batch: the window's fixed part (a state
 * pointer, valid within the callback) and namespace. */
typedef struct rv_wacc_pair {
    uint8_t *acc;
    int64_t ns;
    uint32_t row;
} rv_wacc_pair;

/* Folds row pairs[k].row of arg into call `call` of window pairs[k], for k
 * in [0, n). arg: the call's argument column (NULL for count()); time: the
 * rows' times (for first/last); keys: the rows' state keys (for var
 * parts). */
void rv_wacc_fold(rv_wacc *w, rv_state *s, int call, const rv_column *arg, const int64_t *time,
                  const rv_skey *keys, const rv_wacc_pair *pairs, uint32_t n);

/* Merges the accumulators of window (k, src_ns) into (k, dst_ns) (for
 * session windows; src is left as it was). */
void rv_wacc_merge(rv_wacc *w, rv_state *s, const rv_skey *k, uint8_t *dst, int64_t dst_ns,
                   const uint8_t *src, int64_t src_ns);

/* A window to read results from. */
typedef struct rv_wacc_item {
    const uint8_t *acc;
    rv_skey key;
    int64_t ns;
} rv_wacc_item;

/* Writes the value of call `call` for items[0..n) as rows 0..n) of out
 * (initialised with the call's result type; reset first). count and the
 * distinct counts are never null; the others are null without input. */
void rv_wacc_result(rv_wacc *w, rv_state *s, int call, const rv_wacc_item *items, uint32_t n,
                    rv_column *out);

/* Deletes the variable parts of window (k, ns). */
void rv_wacc_clear(rv_wacc *w, rv_state *s, const rv_skey *k, int64_t ns);

#endif
