/* Unit tests of rv_batch: column setters and getters, nulls, strings,
 * appending rows with and without a selection, growth, copies, column
 * replacement. Expectations come from a row-wise model kept by the test. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rv_batch.h"

static uint64_t rng_state = 0xD1B54A32D192ED03u;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

enum { F_B, F_I, F_F, F_S, F_TS };

static rv_schema *schema5(void)
{
    rv_schema *s = rv_schema_new();
    rv_schema_add(s, "b", RV_T_BOOL);
    rv_schema_add(s, "i", RV_T_INT64);
    rv_schema_add(s, "f", RV_T_FLOAT64);
    rv_schema_add(s, "s", RV_T_STRING);
    rv_schema_add(s, "ts", RV_T_TIMESTAMP);
    return s;
}

/* The model of one row: what the batch should hold. */
typedef struct mrow {
    bool null[5];
    bool b;
    int64_t i, ts;
    double f;
    char s[12];
    size_t slen;
} mrow;

static mrow random_row(bool nulls)
{
    mrow m;
    memset(&m, 0, sizeof(m));
    for (int k = 0; k < 5; k++)
        m.null[k] = nulls && rnd() % 3 == 0;
    m.b = rnd() & 1;
    m.i = (int64_t)rnd();
    m.ts = (int64_t)(rnd() % 1000000);
    m.f = (double)(int64_t)rnd() / 7.0;
    m.slen = rnd() % sizeof(m.s);
    for (size_t k = 0; k < m.slen; k++)
        m.s[k] = (char)('a' + rnd() % 26);
    return m;
}

/* Appends a model row with the row setters (growing first). */
static void put_row(rv_batch *b, const mrow *m)
{
    uint32_t r = b->nrows;
    rv_batch_reserve(b, r + 1);
    if (m->null[F_B]) rv_col_set_null(&b->cols[F_B], r); else rv_col_set_bool(&b->cols[F_B], r, m->b);
    if (m->null[F_I]) rv_col_set_null(&b->cols[F_I], r); else rv_col_set_i64(&b->cols[F_I], r, m->i);
    if (m->null[F_F]) rv_col_set_null(&b->cols[F_F], r); else rv_col_set_f64(&b->cols[F_F], r, m->f);
    if (m->null[F_S]) rv_col_set_null(&b->cols[F_S], r); else rv_col_set_str(&b->cols[F_S], r, m->s, m->slen);
    if (m->null[F_TS]) rv_col_set_null(&b->cols[F_TS], r); else rv_col_set_i64(&b->cols[F_TS], r, m->ts);
    b->nrows = r + 1;
}

static void check_row(const rv_batch *b, uint32_t r, const mrow *m)
{
    for (int k = 0; k < 5; k++)
        cr_assert_eq(rv_col_is_null(&b->cols[k], r), m->null[k], "row %u col %d", r, k);
    if (!m->null[F_B])
        cr_assert_eq(b->cols[F_B].d.b[r], m->b, "row %u", r);
    if (!m->null[F_I])
        cr_assert_eq(b->cols[F_I].d.i64[r], m->i, "row %u", r);
    if (!m->null[F_F])
        cr_assert_eq(b->cols[F_F].d.f64[r], m->f, "row %u", r);
    if (!m->null[F_TS])
        cr_assert_eq(b->cols[F_TS].d.i64[r], m->ts, "row %u", r);
    uint32_t len;
    const char *p = rv_col_str(&b->cols[F_S], r, &len);
    if (m->null[F_S]) {
        cr_assert_eq(len, 0, "null string row %u has bytes", r);
    } else {
        cr_assert_eq(len, m->slen, "row %u", r);
        cr_assert(len == 0 || memcmp(p, m->s, len) == 0, "row %u", r);
    }
}

/* String column invariants: offsets monotonic, data_len at the end. */
static void check_strings(const rv_batch *b)
{
    const rv_column *c = &b->cols[F_S];
    cr_assert_eq(c->offsets[0], 0);
    for (uint32_t r = 0; r < b->nrows; r++)
        cr_assert(c->offsets[r] <= c->offsets[r + 1]);
    cr_assert_eq(c->offsets[b->nrows], c->data_len);
    cr_assert(c->data_len <= c->data_cap);
    for (int k = 0; k < 5; k++)
        cr_assert(b->cols[k].cap >= b->cap);
}

Test(rv_batch, new_holds_a_schema_reference)
{
    rv_schema *s = schema5();
    rv_batch *b = rv_batch_new(s, 0);
    cr_assert_eq(atomic_load(&s->refs), 2);
    cr_assert_eq(b->nrows, 0);
    cr_assert_eq(b->cap, 1);
    cr_assert_eq(atomic_load(&b->refs), 1);
    for (int k = 0; k < 5; k++) {
        cr_assert_eq(b->cols[k].type, s->fields[k].type);
        cr_assert_not(b->cols[k].has_nulls);
    }
    rv_batch_ref(b);
    rv_batch_unref(b);
    cr_assert_eq(atomic_load(&s->refs), 2);
    rv_batch_unref(b);
    cr_assert_eq(atomic_load(&s->refs), 1);
    rv_batch_unref(NULL);
    rv_schema_unref(s);
}

Test(rv_batch, setters_and_getters_every_type)
{
    rv_schema *s = schema5();
    rv_batch *b = rv_batch_new(s, 4);
    mrow rows[4];
    for (int r = 0; r < 4; r++) {
        rows[r] = random_row(r == 3);
        if (r == 3)
            for (int k = 0; k < 5; k++)
                rows[r].null[k] = true;
        put_row(b, &rows[r]);
    }
    for (uint32_t r = 0; r < 4; r++)
        check_row(b, r, &rows[r]);
    rv_value v = rv_col_get_value(&b->cols[F_S], 1);
    cr_assert_eq(v.type, RV_T_STRING);
    cr_assert_eq(v.v.s.len, rows[1].slen);
    v = rv_col_get_value(&b->cols[F_I], 3);
    cr_assert(v.is_null);
    cr_assert_eq(v.type, RV_T_INT64);
    /* set_null zeroes fixed-width values. */
    cr_assert_eq(b->cols[F_I].d.i64[3], 0);
    cr_assert_eq(b->cols[F_F].d.f64[3], 0.0);
    check_strings(b);
    rv_batch_unref(b);
    rv_schema_unref(s);
}

Test(rv_batch, set_value_from_scalars)
{
    rv_column c;
    rv_col_init(&c, RV_T_FLOAT64, 2);
    rv_value v = {.type = RV_T_INT64, .v.i = 3};
    rv_col_set_value(&c, 0, &v);
    cr_assert_eq(c.d.f64[0], 3.0);
    v.is_null = true;
    rv_col_set_value(&c, 1, &v);
    cr_assert(rv_col_is_null(&c, 1));
    cr_assert_not(rv_col_is_null(&c, 0));
    rv_col_fini(&c);

    rv_col_init(&c, RV_T_STRING, 1);
    rv_value sv = {.type = RV_T_STRING, .v.s = {"hello", 5}};
    rv_col_set_value(&c, 0, &sv);
    rv_value nv = {.type = RV_T_NULL};
    rv_col_reserve(&c, 3);
    rv_col_set_value(&c, 1, &nv);
    rv_col_set_value(&c, 2, &sv);
    uint32_t len;
    const char *p = rv_col_str(&c, 2, &len);
    cr_assert_eq(len, 5);
    cr_assert(memcmp(p, "hello", 5) == 0);
    cr_assert(rv_col_is_null(&c, 1));
    cr_assert_eq(c.offsets[2], 5);
    cr_assert_eq(c.data_len, 10);
    rv_col_fini(&c);
    rv_col_fini(NULL);
}

Test(rv_batch, enable_nulls_keeps_existing_rows_valid)
{
    rv_column c;
    rv_col_init(&c, RV_T_INT64, 4);
    for (uint32_t r = 0; r < 3; r++)
        rv_col_set_i64(&c, r, r + 10);
    rv_col_set_null(&c, 3);
    cr_assert(c.has_nulls);
    for (uint32_t r = 0; r < 3; r++)
        cr_assert_not(rv_col_is_null(&c, r));
    cr_assert(rv_col_is_null(&c, 3));
    /* After a reset the stale null bytes must not resurface. */
    rv_col_reset(&c);
    cr_assert_not(c.has_nulls);
    rv_col_set_i64(&c, 0, 1);
    rv_col_set_i64(&c, 1, 2);
    rv_col_set_i64(&c, 2, 3);
    rv_col_set_null(&c, 0);
    cr_assert(rv_col_is_null(&c, 0));
    cr_assert_not(rv_col_is_null(&c, 3), "stale null byte from before the reset");
    rv_col_fini(&c);
}

Test(rv_batch, reserve_growth_keeps_contents)
{
    rv_schema *s = schema5();
    rv_batch *b = rv_batch_new(s, 1);
    mrow *rows = malloc(5000 * sizeof(mrow));
    for (uint32_t r = 0; r < 5000; r++) {
        rows[r] = random_row(r > 100);
        put_row(b, &rows[r]);
    }
    cr_assert_geq(b->cap, 5000);
    for (uint32_t r = 0; r < 5000; r++)
        check_row(b, r, &rows[r]);
    check_strings(b);
    size_t bytes = rv_batch_bytes(b);
    cr_assert_geq(bytes, (size_t)5000 * (1 + 8 + 8 + 8 + 4));
    rv_batch_reserve(b, 3); /* smaller: no-op */
    cr_assert_geq(b->cap, 5000);
    free(rows);
    rv_batch_unref(b);
    rv_schema_unref(s);
}

Test(rv_batch, append_rows_without_selection)
{
    rv_schema *s = schema5();
    rv_batch *src = rv_batch_new(s, 8), *dst = rv_batch_new(s, 2);
    mrow model[300];
    uint32_t nm = 0;
    /* dst starts without nulls, src has them. */
    for (int r = 0; r < 10; r++) {
        model[nm] = random_row(false);
        put_row(dst, &model[nm++]);
    }
    cr_assert_not(dst->cols[F_I].has_nulls);
    for (int r = 0; r < 100; r++) {
        model[nm + (uint32_t)r] = random_row(true);
        put_row(src, &model[nm + (uint32_t)r]);
    }
    rv_batch_append_rows(dst, src, NULL, src->nrows);
    nm += 100;
    cr_assert_eq(dst->nrows, nm);
    /* Now append rows without nulls to a dst that has a null map. */
    rv_batch_clear(src);
    for (int r = 0; r < 50; r++) {
        model[nm + (uint32_t)r] = random_row(false);
        put_row(src, &model[nm + (uint32_t)r]);
    }
    rv_batch_append_rows(dst, src, NULL, 50);
    nm += 50;
    rv_batch_append_rows(dst, src, NULL, 0);
    cr_assert_eq(dst->nrows, nm);
    for (uint32_t r = 0; r < nm; r++)
        check_row(dst, r, &model[r]);
    check_strings(dst);
    rv_batch_unref(src);
    rv_batch_unref(dst);
    rv_schema_unref(s);
}

Test(rv_batch, append_rows_with_selection)
{
    rv_schema *s = schema5();
    rv_batch *src = rv_batch_new(s, 64), *dst = rv_batch_new(s, 1);
    mrow rows[64], first = random_row(true);
    put_row(dst, &first);
    for (int r = 0; r < 64; r++) {
        rows[r] = random_row(true);
        put_row(src, &rows[r]);
    }
    /* Reordered, repeated, sparse. */
    uint32_t sel[200];
    for (int k = 0; k < 200; k++)
        sel[k] = (uint32_t)(rnd() % 64);
    sel[0] = 63;
    sel[1] = 63;
    sel[2] = 0;
    rv_batch_append_rows(dst, src, sel, 200);
    cr_assert_eq(dst->nrows, 201);
    check_row(dst, 0, &first);
    for (uint32_t k = 0; k < 200; k++)
        check_row(dst, k + 1, &rows[sel[k]]);
    check_strings(dst);
    /* The source is untouched. */
    for (uint32_t r = 0; r < 64; r++)
        check_row(src, r, &rows[r]);
    rv_batch_unref(src);
    rv_batch_unref(dst);
    rv_schema_unref(s);
}

Test(rv_batch, append_rows_of_empty_strings)
{
    rv_schema *s = rv_schema_new();
    rv_schema_add(s, "s", RV_T_STRING);
    rv_batch *src = rv_batch_new(s, 4), *dst = rv_batch_new(s, 4);
    for (uint32_t r = 0; r < 3; r++)
        rv_col_set_str(&src->cols[0], r, "", 0);
    src->nrows = 3;
    uint32_t sel[2] = {2, 0};
    rv_batch_append_rows(dst, src, NULL, 3);
    rv_batch_append_rows(dst, src, sel, 2);
    cr_assert_eq(dst->nrows, 5);
    cr_assert_eq(dst->cols[0].data_len, 0);
    for (uint32_t r = 0; r <= 5; r++)
        cr_assert_eq(dst->cols[0].offsets[r], 0);
    rv_batch_unref(src);
    rv_batch_unref(dst);
    rv_schema_unref(s);
}

Test(rv_batch, copy_is_deep_and_equal)
{
    rv_schema *s = schema5();
    rv_batch *b = rv_batch_new(s, 4);
    mrow rows[40];
    for (int r = 0; r < 40; r++) {
        rows[r] = random_row(true);
        put_row(b, &rows[r]);
    }
    rv_batch *c = rv_batch_copy(b);
    cr_assert_eq(atomic_load(&c->refs), 1);
    cr_assert_eq(c->schema, b->schema);
    cr_assert_eq(c->nrows, 40);
    for (uint32_t r = 0; r < 40; r++)
        check_row(c, r, &rows[r]);
    cr_assert_neq(c->cols[F_S].data, b->cols[F_S].data);
    /* Changing the copy leaves the original alone. */
    c->cols[F_I].d.i64[0] = 12345;
    c->cols[F_S].data[0] ^= 0x20;
    check_row(b, 0, &rows[0]);
    check_strings(c);
    rv_batch_unref(c);
    rv_batch_clear(b);
    c = rv_batch_copy(b);
    cr_assert_eq(c->nrows, 0);
    rv_batch_unref(c);
    rv_batch_unref(b);
    rv_schema_unref(s);
}

Test(rv_batch, clear_allows_reuse)
{
    rv_schema *s = schema5();
    rv_batch *b = rv_batch_new(s, 4);
    for (int r = 0; r < 10; r++) {
        mrow m = random_row(true);
        put_row(b, &m);
    }
    uint32_t cap = b->cap;
    rv_batch_clear(b);
    cr_assert_eq(b->nrows, 0);
    cr_assert_eq(b->cap, cap);
    cr_assert_eq(b->cols[F_S].data_len, 0);
    mrow rows[5];
    for (int r = 0; r < 5; r++) {
        rows[r] = random_row(false);
        put_row(b, &rows[r]);
    }
    for (uint32_t r = 0; r < 5; r++)
        check_row(b, r, &rows[r]);
    check_strings(b);
    rv_batch_unref(b);
    rv_schema_unref(s);
}

Test(rv_batch, put_column_replaces_and_fits_capacity)
{
    rv_schema *s = schema5();
    rv_batch *b = rv_batch_new(s, 8);
    mrow rows[8];
    for (int r = 0; r < 8; r++) {
        rows[r] = random_row(false);
        put_row(b, &rows[r]);
    }
    /* A smaller column is grown to the batch's capacity. */
    rv_column c;
    rv_col_init(&c, RV_T_INT64, 1);
    rv_col_reserve(&c, 8);
    for (uint32_t r = 0; r < 8; r++)
        rv_col_set_i64(&c, r, (int64_t)r * 100);
    rv_batch_put_column(b, F_I, &c);
    cr_assert_null(c.d.i64);
    cr_assert_eq(c.cap, 0);
    cr_assert_geq(b->cols[F_I].cap, b->cap);
    for (uint32_t r = 0; r < 8; r++) {
        cr_assert_eq(b->cols[F_I].d.i64[r], (int64_t)r * 100);
        rows[r].i = (int64_t)r * 100;
        check_row(b, r, &rows[r]);
    }
    /* A larger column grows the whole batch. */
    rv_col_init(&c, RV_T_STRING, 1000);
    for (uint32_t r = 0; r < 8; r++)
        rv_col_set_str(&c, r, "xy", r % 3);
    rv_batch_put_column(b, F_S, &c);
    cr_assert_geq(b->cap, 1000);
    for (int k = 0; k < 5; k++)
        cr_assert_geq(b->cols[k].cap, b->cap, "col %d", k);
    for (uint32_t r = 0; r < 8; r++) {
        memcpy(rows[r].s, "xy", 2);
        rows[r].slen = r % 3;
        check_row(b, r, &rows[r]);
    }
    /* The grown batch takes rows up to its capacity. */
    for (uint32_t r = 8; r < 1000; r++) {
        mrow m = random_row(true);
        put_row(b, &m);
    }
    check_strings(b);
    rv_col_fini(&c);
    rv_batch_unref(b);
    rv_schema_unref(s);
}

Test(rv_batch, bytes_counts_buffers)
{
    rv_schema *s = rv_schema_new();
    rv_schema_add(s, "i", RV_T_INT64);
    rv_batch *b = rv_batch_new(s, 100);
    /* 100 rows round up to 128 int64 values. */
    cr_assert_eq(rv_batch_bytes(b), 128 * 8);
    rv_col_set_null(&b->cols[0], 0);
    cr_assert_eq(rv_batch_bytes(b), 128 * 9);
    rv_batch_unref(b);
    rv_schema_unref(s);
}
