/* Unit tests of window_state: the keyed window table of window_aggregate.
 * Expectations are hand-computed or come from a naive reference (plain
 * arrays searched linearly) run side by side with the table. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "operators/window_state.h"
#include "rv_hash.h"

/* ---- helpers ---- */

typedef struct keybuf {
    uint8_t *buf;
    size_t len, cap;
    uint64_t hash;
} keybuf;

/* Encodes and hashes row `row` of key columns cols. */
static void key_of(const rv_column *cols, int ncols, uint32_t row, keybuf *k)
{
    k->len = 0;
    rv_key_encode(cols, ncols, row, &k->buf, &k->len, &k->cap);
    uint64_t *h = calloc(row + 1, sizeof(uint64_t));
    uint8_t *scratch = NULL;
    size_t scratch_cap = 0;
    rv_hash_rows(cols, ncols, row + 1, h, &scratch, &scratch_cap);
    k->hash = h[row];
    free(scratch);
    free(h);
}

/* One int64 key value as an encoded key. */
static void int_key(int64_t v, keybuf *k)
{
    rv_column c;
    rv_col_init(&c, RV_T_INT64, 1);
    rv_col_set_i64(&c, 0, v);
    key_of(&c, 1, 0, k);
    rv_col_fini(&c);
}

static uint32_t upsert_int(rv_window_state *ws, int64_t key, int64_t start)
{
    keybuf k = {0};
    int_key(key, &k);
    uint32_t id = rv_window_state_upsert(ws, k.buf, (uint32_t)k.len, k.hash, start);
    free(k.buf);
    return id;
}

static uint32_t find_int(const rv_window_state *ws, int64_t key, int64_t start)
{
    keybuf k = {0};
    int_key(key, &k);
    uint32_t id = rv_window_state_find(ws, k.buf, (uint32_t)k.len, k.hash, start);
    free(k.buf);
    return id;
}

static rv_agg_call call_of(rv_agg_kind kind, rv_type arg, rv_type res)
{
    rv_agg_call c;
    memset(&c, 0, sizeof(c));
    c.kind = kind;
    c.arg_type = arg;
    c.result_type = res;
    return c;
}

/* Reads row r of an int64 result column: value, or INT64_MIN for null. */
static int64_t res_i(const rv_column *c, uint32_t r)
{
    return rv_col_is_null(c, r) ? INT64_MIN : c->d.i64[r];
}

/* ---- table ---- */

Test(window_state, upsert_then_find_returns_same_entry)
{
    rv_agg_call calls[] = {call_of(RV_AGG_COUNT, RV_T_NULL, RV_T_INT64)};
    rv_window_state *ws = rv_window_state_new(calls, 1);
    uint32_t a = upsert_int(ws, 7, 0);
    uint32_t b = upsert_int(ws, 8, 0);
    uint32_t c = upsert_int(ws, 7, 1000); /* same key, other window */
    cr_expect_neq(a, b);
    cr_expect_neq(a, c);
    cr_expect_eq(upsert_int(ws, 7, 0), a);
    cr_expect_eq(find_int(ws, 7, 0), a);
    cr_expect_eq(find_int(ws, 8, 0), b);
    cr_expect_eq(find_int(ws, 7, 1000), c);
    cr_expect_eq(find_int(ws, 8, 1000), RV_WINDOW_NONE);
    cr_expect_eq(find_int(ws, 9, 0), RV_WINDOW_NONE);
    cr_expect_eq(rv_window_state_count(ws), 3);
    cr_expect_eq(rv_window_state_nwindows(ws), 2);
    rv_window_state_free(ws);
}

Test(window_state, grows_and_keeps_every_key)
{
    rv_agg_call calls[] = {call_of(RV_AGG_COUNT, RV_T_NULL, RV_T_INT64)};
    rv_window_state *ws = rv_window_state_new(calls, 1);
    enum { N = 20000 };
    uint32_t *ids = malloc(N * sizeof(uint32_t));
    for (int i = 0; i < N; i++)
        ids[i] = upsert_int(ws, (int64_t)i * 7919 - 50000, 0);
    cr_assert_eq(rv_window_state_count(ws), N);
    for (int i = 0; i < N; i++)
        cr_assert_eq(find_int(ws, (int64_t)i * 7919 - 50000, 0), ids[i], "key %d", i);
    cr_expect_eq(find_int(ws, 1, 0), RV_WINDOW_NONE);
    free(ids);
    rv_window_state_free(ws);
}

Test(window_state, entries_keep_insertion_order)
{
    rv_agg_call calls[] = {call_of(RV_AGG_COUNT, RV_T_NULL, RV_T_INT64)};
    rv_window_state *ws = rv_window_state_new(calls, 1);
    int64_t keys[] = {42, -1, 7, 1000000, 3};
    for (int i = 0; i < 5; i++)
        upsert_int(ws, keys[i], 500);
    upsert_int(ws, 7, 500); /* existing: no new entry */
    const uint32_t *ids;
    uint32_t n = rv_window_state_entries(ws, 500, &ids);
    cr_assert_eq(n, 5);
    rv_column kc;
    rv_col_init(&kc, RV_T_INT64, 1);
    rv_window_state_keys(ws, ids, n, &kc, 1);
    for (int i = 0; i < 5; i++)
        cr_expect_eq(kc.d.i64[i], keys[i]);
    rv_col_fini(&kc);
    cr_expect_eq(rv_window_state_entries(ws, 0, &ids), 0);
    rv_window_state_free(ws);
}

Test(window_state, windows_are_listed_by_start)
{
    rv_agg_call calls[] = {call_of(RV_AGG_COUNT, RV_T_NULL, RV_T_INT64)};
    rv_window_state *ws = rv_window_state_new(calls, 1);
    int64_t start;
    cr_expect_not(rv_window_state_first(ws, &start));
    upsert_int(ws, 1, 3000);
    upsert_int(ws, 1, -2000);
    upsert_int(ws, 1, 1000);
    cr_assert(rv_window_state_first(ws, &start));
    cr_expect_eq(start, -2000);
    rv_window_state_remove(ws, -2000);
    cr_assert(rv_window_state_first(ws, &start));
    cr_expect_eq(start, 1000);
    rv_window_state_remove(ws, 12345); /* not open: no-op */
    cr_expect_eq(rv_window_state_nwindows(ws), 2);
    rv_window_state_free(ws);
}

Test(window_state, decodes_mixed_keys_with_nulls)
{
    rv_agg_call calls[] = {call_of(RV_AGG_COUNT, RV_T_NULL, RV_T_INT64)};
    rv_window_state *ws = rv_window_state_new(calls, 1);
    rv_column cols[4];
    rv_col_init(&cols[0], RV_T_STRING, 4);
    rv_col_init(&cols[1], RV_T_INT64, 4);
    rv_col_init(&cols[2], RV_T_BOOL, 4);
    rv_col_init(&cols[3], RV_T_FLOAT64, 4);
    const char *s[] = {"alpha", "", NULL, "a longer string value"};
    for (uint32_t r = 0; r < 4; r++) {
        if (s[r])
            rv_col_set_str(&cols[0], r, s[r], strlen(s[r]));
        else
            rv_col_set_null(&cols[0], r);
        if (r == 1)
            rv_col_set_null(&cols[1], r);
        else
            rv_col_set_i64(&cols[1], r, (int64_t)r * -3);
        rv_col_set_bool(&cols[2], r, r % 2);
        rv_col_set_f64(&cols[3], r, 0.5 * r);
    }
    keybuf k = {0};
    for (uint32_t r = 0; r < 4; r++) {
        key_of(cols, 4, r, &k);
        rv_window_state_upsert(ws, k.buf, (uint32_t)k.len, k.hash, 0);
    }
    free(k.buf);
    const uint32_t *ids;
    uint32_t n = rv_window_state_entries(ws, 0, &ids);
    cr_assert_eq(n, 4);
    rv_column out[4];
    rv_col_init(&out[0], RV_T_STRING, 1);
    rv_col_init(&out[1], RV_T_INT64, 1);
    rv_col_init(&out[2], RV_T_BOOL, 1);
    rv_col_init(&out[3], RV_T_FLOAT64, 1);
    rv_window_state_keys(ws, ids, n, out, 4);
    for (uint32_t r = 0; r < 4; r++) {
        if (s[r]) {
            uint32_t len;
            const char *p = rv_col_str(&out[0], r, &len);
            cr_expect(!rv_col_is_null(&out[0], r));
            cr_expect_eq(len, strlen(s[r]));
            cr_expect(memcmp(p, s[r], len) == 0);
        } else {
            cr_expect(rv_col_is_null(&out[0], r));
        }
        cr_expect_eq(rv_col_is_null(&out[1], r), r == 1);
        if (r != 1)
            cr_expect_eq(out[1].d.i64[r], (int64_t)r * -3);
        cr_expect_eq(out[2].d.b[r], r % 2);
        cr_expect_eq(out[3].d.f64[r], 0.5 * r);
    }
    for (int i = 0; i < 4; i++) {
        rv_col_fini(&cols[i]);
        rv_col_fini(&out[i]);
    }
    rv_window_state_free(ws);
}

/* ---- accumulators ---- */

Test(window_state, int_aggregates_skip_nulls)
{
    rv_agg_call calls[] = {
        call_of(RV_AGG_COUNT, RV_T_NULL, RV_T_INT64),   /* count() */
        call_of(RV_AGG_COUNT, RV_T_INT64, RV_T_INT64),  /* count(x) */
        call_of(RV_AGG_SUM, RV_T_INT64, RV_T_INT64),
        call_of(RV_AGG_MIN, RV_T_INT64, RV_T_INT64),
        call_of(RV_AGG_MAX, RV_T_INT64, RV_T_INT64),
        call_of(RV_AGG_AVG, RV_T_INT64, RV_T_FLOAT64),
    };
    rv_window_state *ws = rv_window_state_new(calls, 6);
    /* Rows: key a gets 5, null, -2, 9; key b gets null, null. */
    uint32_t a = upsert_int(ws, 1, 0), b = upsert_int(ws, 2, 0);
    rv_column x;
    rv_col_init(&x, RV_T_INT64, 6);
    int64_t vals[] = {5, 0, -2, 0, 9, 0};
    bool nul[] = {false, true, false, true, false, true};
    uint32_t ids[] = {a, a, a, b, a, b};
    uint32_t rows[] = {0, 1, 2, 3, 4, 5};
    for (uint32_t r = 0; r < 6; r++) {
        if (nul[r])
            rv_col_set_null(&x, r);
        else
            rv_col_set_i64(&x, r, vals[r]);
    }
    /* Two batches: rows 0..2 then 3..5, to check state carries over. */
    for (int c = 0; c < 6; c++) {
        const rv_column *arg = c == 0 ? NULL : &x;
        rv_window_state_accumulate(ws, c, arg, rows, ids, 3);
        rv_window_state_accumulate(ws, c, arg, rows + 3, ids + 3, 3);
    }
    uint32_t q[] = {a, b};
    rv_column out;
    rv_col_init(&out, RV_T_INT64, 2);
    rv_window_state_results(ws, 0, q, 2, &out);
    cr_expect_eq(res_i(&out, 0), 4);
    cr_expect_eq(res_i(&out, 1), 2);
    rv_window_state_results(ws, 1, q, 2, &out);
    cr_expect_eq(res_i(&out, 0), 3);
    cr_expect_eq(res_i(&out, 1), 0);
    rv_window_state_results(ws, 2, q, 2, &out);
    cr_expect_eq(res_i(&out, 0), 12);
    cr_expect_eq(res_i(&out, 1), INT64_MIN); /* null */
    rv_window_state_results(ws, 3, q, 2, &out);
    cr_expect_eq(res_i(&out, 0), -2);
    cr_expect(rv_col_is_null(&out, 1));
    rv_window_state_results(ws, 4, q, 2, &out);
    cr_expect_eq(res_i(&out, 0), 9);
    cr_expect(rv_col_is_null(&out, 1));
    rv_col_fini(&out);
    rv_col_init(&out, RV_T_FLOAT64, 2);
    rv_window_state_results(ws, 5, q, 2, &out);
    cr_expect_float_eq(out.d.f64[0], 4.0, 1e-12);
    cr_expect(rv_col_is_null(&out, 1));
    rv_col_fini(&out);
    rv_col_fini(&x);
    rv_window_state_free(ws);
}

Test(window_state, integer_sum_wraps)
{
    rv_agg_call calls[] = {call_of(RV_AGG_SUM, RV_T_INT64, RV_T_INT64)};
    rv_window_state *ws = rv_window_state_new(calls, 1);
    uint32_t a = upsert_int(ws, 1, 0);
    rv_column x;
    rv_col_init(&x, RV_T_INT64, 2);
    rv_col_set_i64(&x, 0, INT64_MAX);
    rv_col_set_i64(&x, 1, 2);
    uint32_t rows[] = {0, 1}, ids[] = {a, a};
    rv_window_state_accumulate(ws, 0, &x, rows, ids, 2);
    rv_column out;
    rv_col_init(&out, RV_T_INT64, 1);
    rv_window_state_results(ws, 0, &a, 1, &out);
    cr_expect_eq(out.d.i64[0], INT64_MIN + 1);
    rv_col_fini(&out);
    rv_col_fini(&x);
    rv_window_state_free(ws);
}

Test(window_state, float_aggregates_order_nan_last)
{
    rv_agg_call calls[] = {
        call_of(RV_AGG_SUM, RV_T_FLOAT64, RV_T_FLOAT64),
        call_of(RV_AGG_MIN, RV_T_FLOAT64, RV_T_FLOAT64),
        call_of(RV_AGG_MAX, RV_T_FLOAT64, RV_T_FLOAT64),
        call_of(RV_AGG_AVG, RV_T_FLOAT64, RV_T_FLOAT64),
    };
    rv_window_state *ws = rv_window_state_new(calls, 4);
    /* Key 1: NaN first, then 2.5, -1.0. Key 2: 2.5, -1.0, then NaN. */
    uint32_t a = upsert_int(ws, 1, 0), b = upsert_int(ws, 2, 0);
    rv_column x;
    rv_col_init(&x, RV_T_FLOAT64, 3);
    rv_col_set_f64(&x, 0, NAN);
    rv_col_set_f64(&x, 1, 2.5);
    rv_col_set_f64(&x, 2, -1.0);
    uint32_t ra[] = {0, 1, 2}, rb[] = {1, 2, 0};
    uint32_t ia[] = {a, a, a}, ib[] = {b, b, b};
    for (int c = 0; c < 4; c++) {
        rv_window_state_accumulate(ws, c, &x, ra, ia, 3);
        rv_window_state_accumulate(ws, c, &x, rb, ib, 3);
    }
    uint32_t q[] = {a, b};
    rv_column out;
    rv_col_init(&out, RV_T_FLOAT64, 2);
    rv_window_state_results(ws, 1, q, 2, &out);
    cr_expect_eq(out.d.f64[0], -1.0);
    cr_expect_eq(out.d.f64[1], -1.0);
    rv_window_state_results(ws, 2, q, 2, &out);
    cr_expect(isnan(out.d.f64[0]));
    cr_expect(isnan(out.d.f64[1]));
    rv_window_state_results(ws, 0, q, 2, &out);
    cr_expect(isnan(out.d.f64[0]));
    rv_col_fini(&out);
    rv_col_fini(&x);
    rv_window_state_free(ws);
}

Test(window_state, bool_and_timestamp_min_max)
{
    rv_agg_call calls[] = {
        call_of(RV_AGG_MIN, RV_T_BOOL, RV_T_BOOL),
        call_of(RV_AGG_MAX, RV_T_BOOL, RV_T_BOOL),
        call_of(RV_AGG_MAX, RV_T_TIMESTAMP, RV_T_TIMESTAMP),
        call_of(RV_AGG_SUM, RV_T_NULL, RV_T_INT64), /* sum(null) */
    };
    rv_window_state *ws = rv_window_state_new(calls, 4);
    uint32_t a = upsert_int(ws, 1, 0);
    rv_column bc, tc, nc;
    rv_col_init(&bc, RV_T_BOOL, 2);
    rv_col_init(&tc, RV_T_TIMESTAMP, 2);
    rv_col_init(&nc, RV_T_NULL, 2);
    rv_col_set_bool(&bc, 0, true);
    rv_col_set_bool(&bc, 1, false);
    rv_col_set_i64(&tc, 0, -5);
    rv_col_set_i64(&tc, 1, 1700000000000);
    rv_col_set_null(&nc, 0);
    rv_col_set_null(&nc, 1);
    uint32_t rows[] = {0, 1}, ids[] = {a, a};
    rv_window_state_accumulate(ws, 0, &bc, rows, ids, 2);
    rv_window_state_accumulate(ws, 1, &bc, rows, ids, 2);
    rv_window_state_accumulate(ws, 2, &tc, rows, ids, 2);
    rv_window_state_accumulate(ws, 3, &nc, rows, ids, 2);
    rv_column ob, ot, oi;
    rv_col_init(&ob, RV_T_BOOL, 1);
    rv_col_init(&ot, RV_T_TIMESTAMP, 1);
    rv_col_init(&oi, RV_T_INT64, 1);
    rv_window_state_results(ws, 0, &a, 1, &ob);
    cr_expect_eq(ob.d.b[0], 0);
    rv_window_state_results(ws, 1, &a, 1, &ob);
    cr_expect_eq(ob.d.b[0], 1);
    rv_window_state_results(ws, 2, &a, 1, &ot);
    cr_expect_eq(ot.d.i64[0], 1700000000000);
    rv_window_state_results(ws, 3, &a, 1, &oi);
    cr_expect(rv_col_is_null(&oi, 0));
    rv_col_fini(&bc);
    rv_col_fini(&tc);
    rv_col_fini(&nc);
    rv_col_fini(&ob);
    rv_col_fini(&ot);
    rv_col_fini(&oi);
    rv_window_state_free(ws);
}

/* Reference string min/max by a plain scan. */
static const char *ref_pick(const char *const *v, int n, bool is_max)
{
    const char *best = NULL;
    for (int i = 0; i < n; i++) {
        if (!v[i])
            continue;
        if (!best || (is_max ? strcmp(v[i], best) > 0 : strcmp(v[i], best) < 0))
            best = v[i];
    }
    return best;
}

Test(window_state, string_min_max_keep_own_copy)
{
    rv_agg_call calls[] = {
        call_of(RV_AGG_MIN, RV_T_STRING, RV_T_STRING),
        call_of(RV_AGG_MAX, RV_T_STRING, RV_T_STRING),
    };
    rv_window_state *ws = rv_window_state_new(calls, 2);
    uint32_t a = upsert_int(ws, 1, 0), b = upsert_int(ws, 2, 0);
    /* Values grow longer so stored copies must move; prefixes test length order. */
    const char *va[] = {"m", NULL, "mm", "b", "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz", "", "zz"};
    const char *vb[] = {NULL, NULL};
    rv_column x;
    rv_col_init(&x, RV_T_STRING, 7);
    for (uint32_t r = 0; r < 7; r++) {
        if (va[r])
            rv_col_set_str(&x, r, va[r], strlen(va[r]));
        else
            rv_col_set_null(&x, r);
    }
    for (uint32_t r = 0; r < 7; r++) {
        uint32_t id = a;
        rv_window_state_accumulate(ws, 0, &x, &r, &id, 1);
        rv_window_state_accumulate(ws, 1, &x, &r, &id, 1);
    }
    uint32_t nr[] = {1, 1}, nid[] = {b, b};
    rv_window_state_accumulate(ws, 0, &x, nr, nid, 2);
    rv_window_state_accumulate(ws, 1, &x, nr, nid, 2);
    /* The input column is gone before results are read. */
    rv_col_fini(&x);
    uint32_t q[] = {a, b};
    rv_column out;
    rv_col_init(&out, RV_T_STRING, 2);
    for (int c = 0; c < 2; c++) {
        rv_window_state_results(ws, c, q, 2, &out);
        const char *want = ref_pick(va, 7, c == 1);
        uint32_t len;
        const char *p = rv_col_str(&out, 0, &len);
        cr_expect_eq(len, strlen(want));
        cr_expect(len == 0 || memcmp(p, want, len) == 0, "call %d", c);
        cr_expect(!rv_col_is_null(&out, 0));
        cr_expect(rv_col_is_null(&out, 1));
        cr_expect_null(ref_pick(vb, 2, c == 1));
    }
    rv_col_fini(&out);
    rv_window_state_free(ws);
}

/* ---- removal ---- */

Test(window_state, remove_frees_window_and_keeps_others)
{
    rv_agg_call calls[] = {call_of(RV_AGG_SUM, RV_T_INT64, RV_T_INT64)};
    rv_window_state *ws = rv_window_state_new(calls, 1);
    rv_column x;
    rv_col_init(&x, RV_T_INT64, 1);
    uint32_t row = 0;
    /* Window 0: 50000 keys; window 1000: 100 keys with sum = key * 3. */
    for (int64_t k = 0; k < 50000; k++) {
        uint32_t id = upsert_int(ws, k, 0);
        rv_col_set_i64(&x, 0, 1);
        rv_window_state_accumulate(ws, 0, &x, &row, &id, 1);
    }
    size_t big = rv_window_state_bytes(ws);
    for (int64_t k = 0; k < 100; k++) {
        uint32_t id = upsert_int(ws, k, 1000);
        rv_col_set_i64(&x, 0, k * 3);
        rv_window_state_accumulate(ws, 0, &x, &row, &id, 1);
    }
    rv_window_state_remove(ws, 0);
    cr_expect_eq(rv_window_state_count(ws), 100);
    cr_expect_eq(rv_window_state_nwindows(ws), 1);
    cr_expect_lt(rv_window_state_bytes(ws), big / 20, "%zu vs %zu", rv_window_state_bytes(ws), big);
    cr_expect_eq(find_int(ws, 5, 0), RV_WINDOW_NONE);
    rv_column out;
    rv_col_init(&out, RV_T_INT64, 1);
    for (int64_t k = 0; k < 100; k++) {
        uint32_t id = find_int(ws, k, 1000);
        cr_assert_neq(id, RV_WINDOW_NONE);
        rv_window_state_results(ws, 0, &id, 1, &out);
        cr_expect_eq(out.d.i64[0], k * 3);
    }
    /* Insertion order survives compaction. */
    const uint32_t *ids;
    uint32_t n = rv_window_state_entries(ws, 1000, &ids);
    cr_assert_eq(n, 100);
    rv_column kc;
    rv_col_init(&kc, RV_T_INT64, 1);
    rv_window_state_keys(ws, ids, n, &kc, 1);
    for (uint32_t i = 0; i < n; i++)
        cr_expect_eq(kc.d.i64[i], (int64_t)i);
    rv_col_fini(&kc);
    rv_col_fini(&out);
    rv_col_fini(&x);
    rv_window_state_free(ws);
}

Test(window_state, many_windows_do_not_grow_memory)
{
    rv_agg_call calls[] = {call_of(RV_AGG_COUNT, RV_T_NULL, RV_T_INT64)};
    rv_window_state *ws = rv_window_state_new(calls, 1);
    size_t peak_early = 0, peak_late = 0;
    /* 400 tumbling windows of 500 keys, two open at a time. */
    for (int w = 0; w < 400; w++) {
        for (int64_t k = 0; k < 500; k++)
            upsert_int(ws, k + w, (int64_t)w * 10);
        if (w > 0)
            rv_window_state_remove(ws, (int64_t)(w - 1) * 10);
        size_t b = rv_window_state_bytes(ws);
        if (w < 50 && b > peak_early)
            peak_early = b;
        if (w >= 350 && b > peak_late)
            peak_late = b;
    }
    cr_expect_leq(peak_late, peak_early, "%zu > %zu", peak_late, peak_early);
    cr_expect_eq(rv_window_state_count(ws), 500);
    rv_window_state_remove(ws, 3990);
    cr_expect_eq(rv_window_state_count(ws), 0);
    cr_expect_eq(rv_window_state_nwindows(ws), 0);
    rv_window_state_free(ws);
}

/* Random upserts, accumulations and removals against a linear reference. */
typedef struct ref_ent {
    int64_t key, start, sum, n;
    bool live;
} ref_ent;

Test(window_state, random_ops_match_reference)
{
    rv_agg_call calls[] = {
        call_of(RV_AGG_SUM, RV_T_INT64, RV_T_INT64),
        call_of(RV_AGG_COUNT, RV_T_NULL, RV_T_INT64),
    };
    rv_window_state *ws = rv_window_state_new(calls, 2);
    enum { CAP = 20000 };
    ref_ent *ref = calloc(CAP, sizeof(ref_ent));
    int nref = 0;
    uint64_t seed = 12345;
    rv_column x, out;
    rv_col_init(&x, RV_T_INT64, 1);
    rv_col_init(&out, RV_T_INT64, 1);
    uint32_t row = 0;
    for (int step = 0; step < 60000; step++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        uint32_t r = (uint32_t)(seed >> 33);
        if (r % 500 == 0) {
            /* Remove the oldest window, in the reference too. */
            int64_t start;
            if (rv_window_state_first(ws, &start)) {
                rv_window_state_remove(ws, start);
                for (int i = 0; i < nref; i++)
                    if (ref[i].live && ref[i].start == start)
                        ref[i].live = false;
            }
            continue;
        }
        int64_t key = (int64_t)(r % 211) - 100;
        int64_t start = (int64_t)((r >> 10) % 5) * 100 + (int64_t)(step / 2000) * 100;
        int64_t v = (int64_t)(r % 13) - 6;
        int i;
        for (i = 0; i < nref; i++)
            if (ref[i].live && ref[i].key == key && ref[i].start == start)
                break;
        if (i == nref) {
            cr_assert_lt(nref, CAP);
            ref[nref++] = (ref_ent){key, start, 0, 0, true};
        }
        ref[i].sum += v;
        ref[i].n++;
        uint32_t id = upsert_int(ws, key, start);
        rv_col_set_i64(&x, 0, v);
        rv_window_state_accumulate(ws, 0, &x, &row, &id, 1);
        rv_window_state_accumulate(ws, 1, NULL, &row, &id, 1);
    }
    size_t live = 0;
    for (int i = 0; i < nref; i++) {
        if (!ref[i].live) {
            bool again = false; /* the same (key, start) came back later */
            for (int j = i + 1; j < nref; j++)
                again |= ref[j].key == ref[i].key && ref[j].start == ref[i].start;
            if (!again)
                cr_expect_eq(find_int(ws, ref[i].key, ref[i].start), RV_WINDOW_NONE);
            continue;
        }
        live++;
        uint32_t id = find_int(ws, ref[i].key, ref[i].start);
        cr_assert_neq(id, RV_WINDOW_NONE, "key %ld start %ld", (long)ref[i].key, (long)ref[i].start);
        rv_window_state_results(ws, 0, &id, 1, &out);
        cr_expect_eq(out.d.i64[0], ref[i].sum);
        rv_window_state_results(ws, 1, &id, 1, &out);
        cr_expect_eq(out.d.i64[0], ref[i].n);
    }
    cr_expect_eq(rv_window_state_count(ws), live);
    rv_col_fini(&x);
    rv_col_fini(&out);
    free(ref);
    rv_window_state_free(ws);
}
