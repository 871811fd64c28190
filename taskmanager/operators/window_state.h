/* window_state: the in-memory keyed window table of window_aggregate.
 *
 * Maps (key, window start) to one entry of accumulators, one accumulator
 * per aggregate call (count, sum, min, max, avg). Keys are the canonical
 * key encoding of rv_key_encode() and are looked up by the key hash of
 * rv_hash_rows() mixed with the window start, in one open-addressing
 * (linear probing) table: one probe sequence per row, accumulators updated
 * in place, no allocation per row. Key bytes and string min/max values
 * live in an arena per window, so firing a window frees all its memory at
 * once; entry storage is compacted and the table shrunk when windows are
 * removed, so a long-running job does not grow without bound.
 *
 * Entries are identified by a uint32 id, valid until the next
 * rv_window_state_remove(). Each window lists its entries in insertion
 * order, which makes the output order deterministic for a given input.
 *
 * Threads: one table is used by one thread (an operator instance). */
#ifndef RV_WINDOW_STATE_H
#define RV_WINDOW_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rv_batch.h"
#include "rv_expr.h"

typedef struct rv_window_state rv_window_state;

/* Returned by rv_window_state_find() for an absent entry. */
#define RV_WINDOW_NONE UINT32_MAX

/* A new empty table with one accumulator per call: only kind, arg_type
 * (RV_T_NULL or arg == NULL for count()) and result_type of calls[] are
 * read, and copied. The caller frees the table with rv_window_state_free. */
rv_window_state *rv_window_state_new(const rv_agg_call *calls, int ncalls);
void rv_window_state_free(rv_window_state *ws); /* accepts NULL */

/* The entry of (key, start), inserted with empty accumulators if absent.
 * key/klen: the key's rv_key_encode() bytes (copied on insert); hash: its
 * rv_hash_rows() hash. Returns the entry id. */
uint32_t rv_window_state_upsert(rv_window_state *ws, const uint8_t *key, uint32_t klen,
                                uint64_t hash, int64_t start);
/* The entry of (key, start), or RV_WINDOW_NONE. */
uint32_t rv_window_state_find(const rv_window_state *ws, const uint8_t *key, uint32_t klen,
                              uint64_t hash, int64_t start);

/* Folds rows[k] of `arg` into the accumulator of call `call` of entry
 * ids[k], for k in [0, n). `arg` has the call's arg_type; it is NULL only
 * for count() (which counts rows). Nulls are skipped. */
void rv_window_state_accumulate(rv_window_state *ws, int call, const rv_column *arg,
                                const uint32_t *rows, const uint32_t *ids, uint32_t n);

/* Live entries, and open windows. */
size_t rv_window_state_count(const rv_window_state *ws);
int rv_window_state_nwindows(const rv_window_state *ws);
/* The smallest start among open windows; false if there is none. */
bool rv_window_state_first(const rv_window_state *ws, int64_t *start);
/* The entry ids of window `start` in insertion order: stores a pointer
 * into the table in *ids (valid until the next upsert or remove) and
 * returns their number (0 if the window is not open). */
uint32_t rv_window_state_entries(const rv_window_state *ws, int64_t start, const uint32_t **ids);

/* Writes the keys of entries ids[0..n) as rows 0..n) of the key columns
 * cols[0..ncols), which the caller initialised with the key types (they
 * are reset first). */
void rv_window_state_keys(const rv_window_state *ws, const uint32_t *ids, uint32_t n,
                          rv_column *cols, int ncols);
/* Writes the value of call `call` for entries ids[0..n) as rows 0..n) of
 * `out`, initialised with the call's result_type (reset first). count()
 * is never null; sum/min/max/avg of no non-null value is null. */
void rv_window_state_results(const rv_window_state *ws, int call, const uint32_t *ids, uint32_t n,
                             rv_column *out);

/* Removes window `start` with its entries and frees its memory. Entry ids
 * of other windows may change. No-op if the window is not open. */
void rv_window_state_remove(rv_window_state *ws, int64_t start);

/* Approximate bytes held (table, entries, arenas). */
size_t rv_window_state_bytes(const rv_window_state *ws);

#endif
