/* rv_batch: columnar batches (see rv_batch.h for the memory layout). */
#include "rv_batch.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "rv_mem.h"

static size_t type_width(rv_type t)
{
    switch (t) {
    case RV_T_BOOL: return 1;
    case RV_T_INT64:
    case RV_T_TIMESTAMP: return 8;
    case RV_T_FLOAT64: return 8;
    default: return 0;
    }
}

void rv_col_init(rv_column *c, rv_type type, uint32_t cap)
{
    memset(c, 0, sizeof(*c));
    c->type = type;
    rv_col_reserve(c, cap ? cap : 1);
}

void rv_col_fini(rv_column *c)
{
    if (!c)
        return;
    free(c->nulls);
    free(c->d.b);
    free(c->offsets);
    free(c->data);
    memset(c, 0, sizeof(*c));
}

void rv_col_reserve(rv_column *c, uint32_t cap)
{
    if (cap <= c->cap)
        return;
    assert(cap <= UINT32_MAX / 2);
    uint32_t n = c->cap ? c->cap : 16;
    while (n < cap)
        n *= 2;
    size_t w = type_width(c->type);
    if (w)
        c->d.b = rv_xrealloc(c->d.b, (size_t)n * w);
    if (c->type == RV_T_STRING) {
        bool fresh = c->offsets == NULL;
        c->offsets = rv_xrealloc(c->offsets, ((size_t)n + 1) * sizeof(uint32_t));
        if (fresh)
            c->offsets[0] = 0;
    }
    if (c->nulls) {
        c->nulls = rv_xrealloc(c->nulls, n);
        memset(c->nulls + c->cap, 0, n - c->cap);
    }
    c->cap = n;
}

void rv_col_reset(rv_column *c)
{
    c->has_nulls = false;
    c->data_len = 0;
    if (c->offsets)
        c->offsets[0] = 0;
}

void rv_col_enable_nulls(rv_column *c)
{
    if (c->has_nulls)
        return;
    if (!c->nulls)
        c->nulls = rv_xmalloc(c->cap);
    memset(c->nulls, 0, c->cap);
    c->has_nulls = true;
}

void rv_col_set_null(rv_column *c, uint32_t row)
{
    rv_col_enable_nulls(c);
    c->nulls[row] = 1;
    if (c->type == RV_T_STRING)
        c->offsets[row + 1] = c->offsets[row];
    else if (type_width(c->type))
        memset(c->d.b + row * type_width(c->type), 0, type_width(c->type));
}

void rv_col_set_str(rv_column *c, uint32_t row, const char *p, size_t len)
{
    assert(c->type == RV_T_STRING);
    size_t start = c->offsets[row];
    assert(start + len <= UINT32_MAX && "producers cut batches at RV_BATCH_MAX_STRING_BYTES");
    rv_xgrow((void **)&c->data, &c->data_cap, start + len, 1);
    if (len)
        memcpy(c->data + start, p, len);
    c->data_len = start + len;
    c->offsets[row + 1] = (uint32_t)(start + len);
    if (c->has_nulls)
        c->nulls[row] = 0;
}

void rv_col_set_value(rv_column *c, uint32_t row, const rv_value *v)
{
    if (v->is_null || v->type == RV_T_NULL) {
        rv_col_set_null(c, row);
        return;
    }
    switch (c->type) {
    case RV_T_BOOL: rv_col_set_bool(c, row, v->v.b); break;
    case RV_T_INT64:
    case RV_T_TIMESTAMP: rv_col_set_i64(c, row, v->v.i); break;
    case RV_T_FLOAT64: rv_col_set_f64(c, row, v->type == RV_T_FLOAT64 ? v->v.f : (double)v->v.i); break;
    case RV_T_STRING: rv_col_set_str(c, row, v->v.s.ptr, v->v.s.len); break;
    case RV_T_NULL: rv_col_set_null(c, row); break;
    }
}

rv_value rv_col_get_value(const rv_column *c, uint32_t row)
{
    rv_value v;
    memset(&v, 0, sizeof(v));
    v.type = c->type;
    if (rv_col_is_null(c, row)) {
        v.is_null = true;
        return v;
    }
    switch (c->type) {
    case RV_T_BOOL: v.v.b = c->d.b[row]; break;
    case RV_T_INT64:
    case RV_T_TIMESTAMP: v.v.i = c->d.i64[row]; break;
    case RV_T_FLOAT64: v.v.f = c->d.f64[row]; break;
    case RV_T_STRING: v.v.s.ptr = rv_col_str(c, row, &v.v.s.len); break;
    case RV_T_NULL: v.is_null = true; break;
    }
    return v;
}

rv_batch *rv_batch_new(rv_schema *schema, uint32_t cap)
{
    rv_batch *b = rv_xcalloc(1, sizeof(*b));
    b->schema = rv_schema_ref(schema);
    b->cap = cap ? cap : 1;
    atomic_init(&b->refs, 1);
    b->cols = rv_xcalloc((size_t)(schema->nfields ? schema->nfields : 1), sizeof(rv_column));
    for (int i = 0; i < schema->nfields; i++)
        rv_col_init(&b->cols[i], schema->fields[i].type, b->cap);
    return b;
}

rv_batch *rv_batch_ref(rv_batch *b)
{
    atomic_fetch_add(&b->refs, 1);
    return b;
}

void rv_batch_unref(rv_batch *b)
{
    if (!b)
        return;
    if (atomic_fetch_sub(&b->refs, 1) != 1)
        return;
    for (int i = 0; i < b->schema->nfields; i++)
        rv_col_fini(&b->cols[i]);
    free(b->cols);
    rv_schema_unref(b->schema);
    free(b);
}

void rv_batch_reserve(rv_batch *b, uint32_t cap)
{
    if (cap <= b->cap)
        return;
    assert(cap <= UINT32_MAX / 2);
    uint32_t n = b->cap;
    while (n < cap)
        n *= 2;
    for (int i = 0; i < b->schema->nfields; i++)
        rv_col_reserve(&b->cols[i], n);
    b->cap = n;
}

void rv_batch_clear(rv_batch *b)
{
    assert(atomic_load(&b->refs) == 1);
    b->nrows = 0;
    for (int i = 0; i < b->schema->nfields; i++)
        rv_col_reset(&b->cols[i]);
}

static void append_col(rv_column *dst, uint32_t at, const rv_column *src, const uint32_t *sel, uint32_t n)
{
    size_t w = type_width(src->type);
    if (src->has_nulls) {
        rv_col_enable_nulls(dst);
        for (uint32_t k = 0; k < n; k++)
            dst->nulls[at + k] = src->nulls[sel ? sel[k] : k];
    } else if (dst->has_nulls) {
        memset(dst->nulls + at, 0, n);
    }
    if (src->type == RV_T_STRING) {
        size_t bytes = 0;
        if (!sel) {
            bytes = src->offsets[n] - src->offsets[0];
        } else {
            for (uint32_t k = 0; k < n; k++)
                bytes += src->offsets[sel[k] + 1] - src->offsets[sel[k]];
        }
        size_t start = dst->offsets[at];
        rv_xgrow((void **)&dst->data, &dst->data_cap, start + bytes, 1);
        size_t off = start;
        if (!sel) {
            if (bytes)
                memcpy(dst->data + off, src->data + src->offsets[0], bytes);
            for (uint32_t k = 0; k < n; k++)
                dst->offsets[at + k + 1] = (uint32_t)(start + (src->offsets[k + 1] - src->offsets[0]));
            off += bytes;
        } else {
            for (uint32_t k = 0; k < n; k++) {
                uint32_t r = sel[k];
                uint32_t len = src->offsets[r + 1] - src->offsets[r];
                if (len)
                    memcpy(dst->data + off, src->data + src->offsets[r], len);
                off += len;
                dst->offsets[at + k + 1] = (uint32_t)off;
            }
        }
        dst->data_len = off;
        return;
    }
    if (!w)
        return;
    if (!sel) {
        memcpy(dst->d.b + (size_t)at * w, src->d.b, (size_t)n * w);
    } else if (w == 8) {
        for (uint32_t k = 0; k < n; k++)
            dst->d.i64[at + k] = src->d.i64[sel[k]];
    } else {
        for (uint32_t k = 0; k < n; k++)
            dst->d.b[at + k] = src->d.b[sel[k]];
    }
}

void rv_batch_append_rows(rv_batch *dst, const rv_batch *src, const uint32_t *sel, uint32_t n)
{
    assert(dst->schema->nfields == src->schema->nfields);
    if (n == 0)
        return;
    rv_batch_reserve(dst, dst->nrows + n);
    for (int i = 0; i < src->schema->nfields; i++)
        append_col(&dst->cols[i], dst->nrows, &src->cols[i], sel, n);
    dst->nrows += n;
}

void rv_batch_put_column(rv_batch *b, int i, rv_column *c)
{
    assert(i >= 0 && i < b->schema->nfields);
    assert(c->type == b->schema->fields[i].type);
    rv_col_fini(&b->cols[i]);
    b->cols[i] = *c;
    memset(c, 0, sizeof(*c));
    if (b->cols[i].cap < b->cap)
        rv_col_reserve(&b->cols[i], b->cap);
    else if (b->cols[i].cap > b->cap) {
        /* Keep every column at least b->cap rows. */
        rv_batch_reserve(b, b->cols[i].cap);
    }
}

rv_batch *rv_batch_copy(const rv_batch *b)
{
    rv_batch *c = rv_batch_new(b->schema, b->nrows ? b->nrows : 1);
    rv_batch_append_rows(c, b, NULL, b->nrows);
    return c;
}

bool rv_batch_is_full(const rv_batch *b, uint32_t max_rows)
{
    if (b->nrows >= max_rows)
        return true;
    size_t bytes = 0;
    for (int i = 0; i < b->schema->nfields; i++)
        bytes += b->cols[i].data_len;
    return bytes >= RV_BATCH_MAX_STRING_BYTES;
}

size_t rv_batch_bytes(const rv_batch *b)
{
    size_t n = 0;
    for (int i = 0; i < b->schema->nfields; i++) {
        const rv_column *c = &b->cols[i];
        n += (size_t)c->cap * (type_width(c->type) + (c->nulls ? 1 : 0));
        if (c->type == RV_T_STRING)
            n += (size_t)(c->cap + 1) * 4 + c->data_cap;
    }
    return n;
}
