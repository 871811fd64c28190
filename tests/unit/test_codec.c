/* Unit tests of rv_codec: exact frame layout, round trips of every type,
 * and the decoder's validation (every truncation, random bit flips, each
 * corruption with its message). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rv_batch.h"
#include "rv_codec.h"

static uint64_t rng_state = 0x2545F4914F6CDD1Du;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static rv_schema *schema_all(void)
{
    rv_schema *s = rv_schema_new();
    rv_schema_add(s, "b", RV_T_BOOL);
    rv_schema_add(s, "i", RV_T_INT64);
    rv_schema_add(s, "f", RV_T_FLOAT64);
    rv_schema_add(s, "s", RV_T_STRING);
    rv_schema_add(s, "ts", RV_T_TIMESTAMP);
    return s;
}

/* A batch of n random rows; every column gets nulls when with_nulls. */
static rv_batch *random_batch(rv_schema *s, uint32_t n, bool with_nulls)
{
    rv_batch *b = rv_batch_new(s, n ? n : 1);
    for (uint32_t r = 0; r < n; r++) {
        for (int i = 0; i < s->nfields; i++) {
            rv_column *c = &b->cols[i];
            if (with_nulls && rnd() % 4 == 0) {
                rv_col_set_null(c, r);
                continue;
            }
            switch (c->type) {
            case RV_T_BOOL: rv_col_set_bool(c, r, rnd() & 1); break;
            case RV_T_INT64:
            case RV_T_TIMESTAMP: rv_col_set_i64(c, r, (int64_t)rnd()); break;
            case RV_T_FLOAT64: {
                uint64_t bits = rnd();
                double v;
                memcpy(&v, &bits, 8);
                rv_col_set_f64(c, r, v);
                break;
            }
            case RV_T_STRING: {
                char str[16];
                size_t len = rnd() % sizeof(str);
                for (size_t k = 0; k < len; k++)
                    str[k] = (char)rnd();
                rv_col_set_str(c, r, str, len);
                break;
            }
            case RV_T_NULL: break;
            }
        }
    }
    b->nrows = n;
    return b;
}

static void assert_batches_equal(const rv_batch *a, const rv_batch *b)
{
    cr_assert(rv_schema_equal(a->schema, b->schema));
    cr_assert_eq(a->nrows, b->nrows);
    for (int i = 0; i < a->schema->nfields; i++) {
        for (uint32_t r = 0; r < a->nrows; r++) {
            rv_value x = rv_col_get_value(&a->cols[i], r), y = rv_col_get_value(&b->cols[i], r);
            cr_assert_eq(x.is_null, y.is_null, "col %d row %u", i, r);
            if (x.is_null)
                continue;
            switch (x.type) {
            case RV_T_BOOL: cr_assert_eq(x.v.b, y.v.b); break;
            case RV_T_INT64:
            case RV_T_TIMESTAMP: cr_assert_eq(x.v.i, y.v.i); break;
            case RV_T_FLOAT64: cr_assert(memcmp(&x.v.f, &y.v.f, 8) == 0); break;
            case RV_T_STRING:
                cr_assert_eq(x.v.s.len, y.v.s.len);
                cr_assert(x.v.s.len == 0 || memcmp(x.v.s.ptr, y.v.s.ptr, x.v.s.len) == 0);
                break;
            case RV_T_NULL: break;
            }
        }
    }
}

/* Encodes, checks the size, decodes (with and without expect), compares. */
static void round_trip(const rv_batch *b)
{
    rv_buf out = {0};
    rv_buf_append(&out, "xyz", 3); /* encode appends */
    rv_codec_encode(b, &out);
    cr_assert_eq(out.len - 3, rv_codec_size(b));
    rv_batch *d = NULL;
    rv_err *err = rv_codec_decode(out.data + 3, out.len - 3, NULL, &d);
    cr_assert_null(err, "%s", rv_err_msg(err));
    assert_batches_equal(b, d);
    cr_assert_neq(d->schema, b->schema);
    rv_batch_unref(d);
    err = rv_codec_decode(out.data + 3, out.len - 3, b->schema, &d);
    cr_assert_null(err, "%s", rv_err_msg(err));
    cr_assert_eq(d->schema, b->schema);
    assert_batches_equal(b, d);
    rv_batch_unref(d);
    rv_buf_fini(&out);
}

static rv_err *decode(const void *p, size_t n, rv_schema *expect, rv_batch **out)
{
    /* Exact-size heap copy: ASan sees any read past the end. */
    void *copy = malloc(n ? n : 1);
    memcpy(copy, p, n);
    rv_err *err = rv_codec_decode(copy, n, expect, out);
    free(copy);
    return err;
}

static void expect_err(const void *p, size_t n, rv_schema *expect, rv_code code, const char *msg)
{
    rv_batch *b = (rv_batch *)0x1;
    rv_err *err = decode(p, n, expect, &b);
    cr_assert_not_null(err, "accepted");
    cr_assert_eq(rv_err_code(err), code, "%s", rv_err_msg(err));
    cr_assert_str_eq(rv_err_msg(err), msg);
    cr_assert_eq(b, (rv_batch *)0x1, "out written on failure");
    rv_err_free(err);
}

/* The frame of the hand-written example below. */
static const uint8_t EXAMPLE[] = {
    'R', 'V', 'B', '1', 1, 0, 3, 0, 2, 0, 0, 0, 0, 0, 0, 0,
    2, 1, 0, 'a', /* a: int64 */
    4, 1, 0, 's', /* s: string */
    1, 1, 0, 'b', /* b: bool */
    1, 0x02, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* a = [1, null] */
    0, 2, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 'h', 'i', /* s = ["hi", ""] */
    0, 1, 0, /* b = [true, false] */
};
/* Offsets of interesting bytes in EXAMPLE. */
enum { EX_A_FLAG = 28, EX_A_BITMAP = 29, EX_S_DLEN = 47, EX_S_OFF0 = 51, EX_S_OFF1 = 55, EX_S_OFF2 = 59, EX_B_VAL0 = 66 };

static rv_batch *example_batch(void)
{
    rv_schema *s = rv_schema_new();
    rv_schema_add(s, "a", RV_T_INT64);
    rv_schema_add(s, "s", RV_T_STRING);
    rv_schema_add(s, "b", RV_T_BOOL);
    rv_batch *b = rv_batch_new(s, 2);
    rv_schema_unref(s);
    rv_col_set_i64(&b->cols[0], 0, 1);
    rv_col_set_null(&b->cols[0], 1);
    rv_col_set_str(&b->cols[1], 0, "hi", 2);
    rv_col_set_str(&b->cols[1], 1, "", 0);
    rv_col_set_bool(&b->cols[2], 0, true);
    rv_col_set_bool(&b->cols[2], 1, false);
    b->nrows = 2;
    return b;
}

Test(rv_codec, encodes_the_documented_layout)
{
    rv_batch *b = example_batch();
    rv_buf out = {0};
    rv_codec_encode(b, &out);
    cr_assert_eq(out.len, sizeof(EXAMPLE));
    cr_assert_eq(rv_codec_size(b), sizeof(EXAMPLE));
    for (size_t i = 0; i < sizeof(EXAMPLE); i++)
        cr_assert_eq((uint8_t)out.data[i], EXAMPLE[i], "byte %zu", i);
    cr_assert_eq(EXAMPLE[EX_A_FLAG], 1);
    cr_assert_eq(EXAMPLE[EX_B_VAL0], 1);
    rv_buf_fini(&out);
    rv_batch_unref(b);
}

Test(rv_codec, decodes_the_documented_layout)
{
    rv_batch *b = NULL;
    rv_err *err = decode(EXAMPLE, sizeof(EXAMPLE), NULL, &b);
    cr_assert_null(err, "%s", rv_err_msg(err));
    rv_batch *want = example_batch();
    assert_batches_equal(want, b);
    cr_assert_str_eq(b->schema->fields[1].name, "s");
    cr_assert_eq(b->cols[1].data_len, 2);
    rv_batch_unref(want);
    rv_batch_unref(b);
}

Test(rv_codec, round_trip_every_type)
{
    rv_schema *s = schema_all();
    for (uint32_t n = 0; n <= 33; n++) {
        rv_batch *b = random_batch(s, n, false);
        round_trip(b);
        rv_batch_unref(b);
        b = random_batch(s, n, true);
        round_trip(b);
        rv_batch_unref(b);
    }
    rv_schema_unref(s);
}

Test(rv_codec, round_trip_large_batch)
{
    rv_schema *s = schema_all();
    rv_batch *b = random_batch(s, 70000, true);
    round_trip(b);
    rv_batch_unref(b);
    rv_schema_unref(s);
}

Test(rv_codec, round_trip_zero_rows_zero_fields_and_null_type)
{
    rv_schema *s = rv_schema_new();
    rv_batch *b = rv_batch_new(s, 1);
    round_trip(b);
    b->nrows = 1000; /* rows without columns */
    round_trip(b);
    rv_batch_unref(b);
    rv_schema_add(s, "nothing", RV_T_NULL);
    rv_schema_add(s, "", RV_T_STRING);
    b = rv_batch_new(s, 4);
    for (uint32_t r = 0; r < 3; r++) {
        rv_col_set_null(&b->cols[0], r);
        rv_col_set_str(&b->cols[1], r, "", 0);
    }
    b->nrows = 3;
    round_trip(b);
    rv_batch_unref(b);
    rv_schema_unref(s);
}

Test(rv_codec, null_bitmap_bits)
{
    rv_schema *s = rv_schema_new();
    rv_schema_add(s, "x", RV_T_BOOL);
    rv_batch *b = rv_batch_new(s, 10);
    for (uint32_t r = 0; r < 10; r++) {
        if (r == 0 || r == 3 || r == 9)
            rv_col_set_null(&b->cols[0], r);
        else
            rv_col_set_bool(&b->cols[0], r, r & 1);
    }
    b->nrows = 10;
    rv_buf out = {0};
    rv_codec_encode(b, &out);
    /* 16 header + 4 field; then flag, bitmap (rows 0,3 | row 9), 10 values. */
    cr_assert_eq(out.len, 16 + 4 + 1 + 2 + 10);
    cr_assert_eq((uint8_t)out.data[20], 1);
    cr_assert_eq((uint8_t)out.data[21], 0x09);
    cr_assert_eq((uint8_t)out.data[22], 0x02);
    round_trip(b);
    rv_buf_fini(&out);
    rv_batch_unref(b);
    rv_schema_unref(s);
}

Test(rv_codec, every_truncation_is_corrupt)
{
    rv_schema *s = schema_all();
    rv_batch *b = random_batch(s, 21, true);
    rv_buf out = {0};
    rv_codec_encode(b, &out);
    for (size_t n = 0; n < out.len; n++) {
        rv_batch *d = NULL;
        for (int with_expect = 0; with_expect < 2; with_expect++) {
            rv_err *err = decode(out.data, n, with_expect ? s : NULL, &d);
            cr_assert_not_null(err, "prefix of %zu bytes accepted", n);
            cr_assert_eq(rv_err_code(err), RV_ERR_CORRUPT, "prefix %zu: %s", n, rv_err_msg(err));
            cr_assert_null(d);
            rv_err_free(err);
        }
    }
    expect_err(EXAMPLE, 10, NULL, RV_ERR_CORRUPT, "corrupt batch frame: truncated header (10 bytes)");
    expect_err(EXAMPLE, 22, NULL, RV_ERR_CORRUPT, "corrupt batch frame: truncated field 1");
    expect_err(EXAMPLE, 40, NULL, RV_ERR_CORRUPT, "corrupt batch frame: column 'a': truncated values");
    expect_err(EXAMPLE, 50, NULL, RV_ERR_CORRUPT, "corrupt batch frame: column 's': truncated string data length");
    expect_err(EXAMPLE, 60, NULL, RV_ERR_CORRUPT, "corrupt batch frame: column 's': truncated string offsets");
    expect_err(EXAMPLE, 64, NULL, RV_ERR_CORRUPT, "corrupt batch frame: column 's': truncated string data");
    expect_err(EXAMPLE, 65, NULL, RV_ERR_CORRUPT, "corrupt batch frame: column 'b': truncated");
    rv_buf_fini(&out);
    rv_batch_unref(b);
    rv_schema_unref(s);
}

Test(rv_codec, trailing_bytes_are_corrupt)
{
    uint8_t f[sizeof(EXAMPLE) + 2];
    memcpy(f, EXAMPLE, sizeof(EXAMPLE));
    f[sizeof(EXAMPLE)] = f[sizeof(EXAMPLE) + 1] = 0;
    expect_err(f, sizeof(f), NULL, RV_ERR_CORRUPT, "corrupt batch frame: 2 trailing bytes");
}

/* Writes a little-endian u16/u32 into a copy of EXAMPLE and expects msg. */
static void patch_err(size_t at, uint32_t v, int width, rv_code code, const char *msg)
{
    uint8_t f[sizeof(EXAMPLE)];
    memcpy(f, EXAMPLE, sizeof(f));
    for (int i = 0; i < width; i++)
        f[at + (size_t)i] = (uint8_t)(v >> (8 * i));
    expect_err(f, sizeof(f), NULL, code, msg);
}

Test(rv_codec, header_errors_have_exact_messages)
{
    patch_err(4, 7, 2, RV_ERR_CORRUPT, "unsupported batch frame version 7 (this build reads version 1)");
    patch_err(4, 0, 2, RV_ERR_CORRUPT, "unsupported batch frame version 0 (this build reads version 1)");
    patch_err(0, 'X', 1, RV_ERR_CORRUPT, "not a batch frame (bad magic)");
    patch_err(3, '2', 1, RV_ERR_CORRUPT, "not a batch frame (bad magic)");
    patch_err(6, 4097, 2, RV_ERR_CORRUPT, "corrupt batch frame: 4097 fields (at most 4096)");
    patch_err(8, (16u << 20) + 1, 4, RV_ERR_CORRUPT, "corrupt batch frame: 16777217 rows (at most 16777216)");
    patch_err(8, UINT32_MAX, 4, RV_ERR_CORRUPT, "corrupt batch frame: 4294967295 rows (at most 16777216)");
    patch_err(12, 4, 4, RV_ERR_CORRUPT, "corrupt batch frame: unknown flags 0x4");
    patch_err(16, 6, 1, RV_ERR_CORRUPT, "corrupt batch frame: field 0 has unknown type code 6");
    patch_err(24, 255, 1, RV_ERR_CORRUPT, "corrupt batch frame: field 2 has unknown type code 255");
    patch_err(23, 0, 1, RV_ERR_CORRUPT, "corrupt batch frame: field 1 name contains a NUL byte");
    /* A name length running past the end. */
    patch_err(17, 60000, 2, RV_ERR_CORRUPT, "corrupt batch frame: truncated field 0");
    /* More rows than the columns hold. */
    patch_err(8, 100, 4, RV_ERR_CORRUPT, "corrupt batch frame: column 'a': truncated values");
    /* A short magic prefix is a truncation, a wrong one is bad magic. */
    expect_err("RVB", 3, NULL, RV_ERR_CORRUPT, "corrupt batch frame: truncated header (3 bytes)");
    expect_err("", 0, NULL, RV_ERR_CORRUPT, "corrupt batch frame: truncated header (0 bytes)");
    expect_err("{\"a\":1}", 7, NULL, RV_ERR_CORRUPT, "not a batch frame (bad magic)");
}

Test(rv_codec, column_errors_have_exact_messages)
{
    patch_err(EX_A_FLAG, 2, 1, RV_ERR_CORRUPT, "corrupt batch frame: column 'a': invalid null flag");
    patch_err(EX_A_BITMAP, 0x06, 1, RV_ERR_CORRUPT, "corrupt batch frame: column 'a': null bitmap padding bits set");
    patch_err(EX_B_VAL0, 2, 1, RV_ERR_CORRUPT, "corrupt batch frame: column 'b': bool value is not 0 or 1");
    patch_err(EX_S_OFF0, 1, 4, RV_ERR_CORRUPT, "corrupt batch frame: column 's': string offsets do not start at 0");
    patch_err(EX_S_OFF1, 3, 4, RV_ERR_CORRUPT, "corrupt batch frame: column 's': string offsets are not monotonic");
    patch_err(EX_S_OFF2, 3, 4, RV_ERR_CORRUPT,
              "corrupt batch frame: column 's': string offsets do not end at the data length");
    patch_err(EX_S_DLEN, 3, 4, RV_ERR_CORRUPT,
              "corrupt batch frame: column 's': string offsets do not end at the data length");
    patch_err(EX_S_DLEN, UINT32_MAX, 4, RV_ERR_CORRUPT,
              "corrupt batch frame: column 's': string offsets do not end at the data length");
}

Test(rv_codec, schema_mismatch_names_the_field)
{
    rv_schema *s = rv_schema_new();
    rv_schema_add(s, "a", RV_T_INT64);
    rv_schema_add(s, "str", RV_T_STRING);
    rv_schema_add(s, "b", RV_T_BOOL);
    expect_err(EXAMPLE, sizeof(EXAMPLE), s, RV_ERR_INVALID,
               "batch frame schema mismatch: field 1 is 's' (string), expected 'str' (string)");
    rv_schema_unref(s);
    s = rv_schema_new();
    rv_schema_add(s, "a", RV_T_TIMESTAMP);
    rv_schema_add(s, "s", RV_T_STRING);
    rv_schema_add(s, "b", RV_T_BOOL);
    expect_err(EXAMPLE, sizeof(EXAMPLE), s, RV_ERR_INVALID,
               "batch frame schema mismatch: field 0 is 'a' (int64), expected 'a' (timestamp)");
    rv_schema_add(s, "c", RV_T_BOOL);
    expect_err(EXAMPLE, sizeof(EXAMPLE), s, RV_ERR_INVALID,
               "batch frame schema mismatch: frame has 3 fields, expected 4");
    rv_schema_unref(s);
}

Test(rv_codec, decode_with_expect_shares_the_schema)
{
    rv_batch *ex = example_batch();
    rv_schema *s = ex->schema;
    int refs = atomic_load(&s->refs);
    rv_batch *b = NULL;
    rv_err *err = decode(EXAMPLE, sizeof(EXAMPLE), s, &b);
    cr_assert_null(err);
    cr_assert_eq(b->schema, s);
    cr_assert_eq(atomic_load(&s->refs), refs + 1);
    rv_batch_unref(b);
    cr_assert_eq(atomic_load(&s->refs), refs);
    rv_batch_unref(ex);
}

/* A frame that decodes must be a valid batch whose encoding is the very
 * same frame (the format is canonical); all others must be rejected. */
static void check_flipped(const uint8_t *f, size_t n, rv_schema *expect)
{
    rv_batch *d = NULL;
    rv_err *err = decode(f, n, expect, &d);
    if (err) {
        cr_assert(rv_err_code(err) == RV_ERR_CORRUPT || rv_err_code(err) == RV_ERR_INVALID);
        rv_err_free(err);
        return;
    }
    for (int i = 0; i < d->schema->nfields; i++) {
        const rv_column *c = &d->cols[i];
        cr_assert(c->cap >= d->nrows);
        if (c->type == RV_T_STRING) {
            cr_assert_eq(c->offsets[0], 0);
            for (uint32_t r = 0; r < d->nrows; r++)
                cr_assert(c->offsets[r] <= c->offsets[r + 1]);
            cr_assert_eq(c->offsets[d->nrows], c->data_len);
        }
        if (c->type == RV_T_BOOL)
            for (uint32_t r = 0; r < d->nrows; r++)
                cr_assert(c->d.b[r] <= 1);
    }
    rv_buf again = {0};
    rv_codec_encode(d, &again);
    cr_assert_eq(again.len, n);
    cr_assert(memcmp(again.data, f, n) == 0);
    rv_buf_fini(&again);
    rv_batch_unref(d);
}

Test(rv_codec, random_bit_flips_never_crash)
{
    rv_schema *s = schema_all();
    rv_batch *b = random_batch(s, 13, true);
    rv_buf out = {0};
    rv_codec_encode(b, &out);
    uint8_t *f = malloc(out.len);
    int accepted = 0;
    /* Every bit of the frame once, then random multi-bit damage. */
    for (size_t bit = 0; bit < out.len * 8; bit++) {
        memcpy(f, out.data, out.len);
        f[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        check_flipped(f, out.len, bit % 2 ? s : NULL);
    }
    for (int k = 0; k < 3000; k++) {
        memcpy(f, out.data, out.len);
        int flips = 1 + (int)(rnd() % 4);
        for (int m = 0; m < flips; m++)
            f[rnd() % out.len] ^= (uint8_t)(1u << (rnd() % 8));
        rv_batch *d = NULL;
        rv_err *err = decode(f, out.len, NULL, &d);
        accepted += err == NULL;
        rv_err_free(err);
        rv_batch_unref(d);
        check_flipped(f, out.len, NULL);
    }
    /* Flips in float and int payloads are legitimately accepted. */
    cr_assert(accepted > 0);
    free(f);
    rv_buf_fini(&out);
    rv_batch_unref(b);
    rv_schema_unref(s);
}

Test(rv_codec, bit_flips_in_the_example)
{
    uint8_t f[sizeof(EXAMPLE)];
    for (size_t bit = 0; bit < sizeof(EXAMPLE) * 8; bit++) {
        memcpy(f, EXAMPLE, sizeof(f));
        f[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        check_flipped(f, sizeof(f), NULL);
    }
}

Test(rv_codec, max_rows_without_columns)
{
    uint8_t f[16] = {'R', 'V', 'B', '1', 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0};
    rv_batch *b = NULL;
    rv_err *err = decode(f, sizeof(f), NULL, &b);
    cr_assert_null(err, "%s", rv_err_msg(err));
    cr_assert_eq(b->nrows, 16u << 20);
    cr_assert_eq(b->schema->nfields, 0);
    rv_batch_unref(b);
}
