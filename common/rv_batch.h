/* rv_batch: columnar record batches, the unit operators work on.
 *
 * A batch holds up to `cap` rows of one schema as typed column vectors:
 * bool (one byte a value), int64 / timestamp, float64, and strings as
 * offsets into one byte buffer. Each column has a null map of one byte a
 * row (1 = null), valid only when `has_nulls` is true; a byte map rather
 * than a bitmap keeps vectorised loops branch-free (the wire codec packs it
 * into bits).
 *
 * Ownership: a batch has one owner; passing it on transfers ownership. A
 * shared (broadcast) batch is reference counted and read-only: call
 * rv_batch_ref() for every extra reader, rv_batch_unref() when done, and
 * never modify a batch whose refs > 1. Not thread-safe except for ref
 * counting. */
#ifndef RV_BATCH_H
#define RV_BATCH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rv_schema.h"

#define RV_BATCH_DEFAULT_ROWS 4096
/* Producers stop filling a batch once its string data passes this, which
 * keeps every string offset (uint32) far from overflowing: a batch holds
 * at most this plus one row (rows are bounded by max_line_bytes <= 1 GiB). */
#define RV_BATCH_MAX_STRING_BYTES (64u << 20)

typedef struct rv_column {
    rv_type type;
    bool has_nulls;
    uint32_t cap;   /* rows allocated */
    uint8_t *nulls; /* cap bytes when allocated, 1 = null */
    union {
        uint8_t *b;   /* BOOL */
        int64_t *i64; /* INT64, TIMESTAMP */
        double *f64;  /* FLOAT64 */
    } d;
    /* STRING only: row r is data[offsets[r] .. offsets[r+1]); cap+1 offsets. */
    uint32_t *offsets;
    char *data;
    size_t data_len, data_cap;
} rv_column;

typedef struct rv_batch {
    rv_schema *schema; /* one reference held */
    uint32_t nrows;
    uint32_t cap;
    rv_column *cols; /* schema->nfields */
    atomic_int refs;
} rv_batch;

/* Columns on their own (expression results, scratch). */
void rv_col_init(rv_column *c, rv_type type, uint32_t cap);
void rv_col_fini(rv_column *c);
/* Grows the column to hold at least cap rows (keeps contents). */
void rv_col_reserve(rv_column *c, uint32_t cap);
/* Forgets all rows (keeps memory). */
void rv_col_reset(rv_column *c);

/* Row setters. Rows of a STRING column must be set in increasing row order,
 * each exactly once (set_null included), because they append to `data`. */
void rv_col_set_null(rv_column *c, uint32_t row);
static inline void rv_col_set_i64(rv_column *c, uint32_t row, int64_t v) { c->d.i64[row] = v; if (c->has_nulls) c->nulls[row] = 0; }
static inline void rv_col_set_f64(rv_column *c, uint32_t row, double v) { c->d.f64[row] = v; if (c->has_nulls) c->nulls[row] = 0; }
static inline void rv_col_set_bool(rv_column *c, uint32_t row, bool v) { c->d.b[row] = v; if (c->has_nulls) c->nulls[row] = 0; }
void rv_col_set_str(rv_column *c, uint32_t row, const char *p, size_t len);
/* Sets from a scalar (type must match the column, or value be null). */
void rv_col_set_value(rv_column *c, uint32_t row, const rv_value *v);

static inline bool rv_col_is_null(const rv_column *c, uint32_t row) { return c->has_nulls && c->nulls[row]; }
static inline const char *rv_col_str(const rv_column *c, uint32_t row, uint32_t *len)
{
    *len = c->offsets[row + 1] - c->offsets[row];
    return c->data + c->offsets[row];
}
/* Reads row as a scalar; strings point into the column. */
rv_value rv_col_get_value(const rv_column *c, uint32_t row);
/* Ensures the null map exists (all zero for existing rows) and has_nulls. */
void rv_col_enable_nulls(rv_column *c);

/* Batches. rv_batch_new takes a new reference to schema. */
rv_batch *rv_batch_new(rv_schema *schema, uint32_t cap);
rv_batch *rv_batch_ref(rv_batch *b);
/* Drops one reference; frees at zero. Accepts NULL. */
void rv_batch_unref(rv_batch *b);
static inline void rv_batch_free(rv_batch *b) { rv_batch_unref(b); }
/* Grows every column to hold at least cap rows. */
void rv_batch_reserve(rv_batch *b, uint32_t cap);
/* Empties the batch for reuse (keeps memory). */
void rv_batch_clear(rv_batch *b);
/* Appends rows sel[0..n) of src (same schema) to dst; sel NULL means rows
 * 0..n). Grows dst as needed. */
void rv_batch_append_rows(rv_batch *dst, const rv_batch *src, const uint32_t *sel, uint32_t n);
/* Replaces column i of b with *c (moved: *c is left empty/initialised to
 * nothing and must not be used but may be rv_col_fini'd). */
void rv_batch_put_column(rv_batch *b, int i, rv_column *c);
/* Deep copy (refs = 1). */
rv_batch *rv_batch_copy(const rv_batch *b);
/* True when b has max_rows rows or RV_BATCH_MAX_STRING_BYTES of string
 * data: the producer should send it and start another. */
bool rv_batch_is_full(const rv_batch *b, uint32_t max_rows);
/* Approximate bytes held by the batch's buffers. */
size_t rv_batch_bytes(const rv_batch *b);

#endif
