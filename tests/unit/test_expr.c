/* Unit tests for rv_expr: every operator and function (with nulls), type
 * rules, compile errors with their exact text and offset, and a randomized
 * comparison of vectorised evaluation against a scalar reference written
 * here. Expected values are computed by hand (see the row table below). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rv_batch.h"
#include "rv_expr.h"
#include "rv_schema.h"

/* The standard test batch:
 * row | s       | i          | f     | b     | ts        | k    | t    | c
 * 0   | "hello" | 7          | 2.5   | true  | 90000005  | 2    | "l"  | true
 * 1   | null    | -7         | -0.5  | false | 0         | 0    | ""   | null
 * 2   | "World" | null       | null  | null  | null      | -3   | null | false
 * 3   | ""      | INT64_MAX  | 1e300 | true  | -1        | null | "o"  | true
 * (90000005 ms = 25 h + 5 ms.) */
#define NF 8
static const rv_value VN = {.type = RV_T_NULL, .is_null = true};

static rv_value VI(int64_t x) { rv_value v = {.type = RV_T_INT64}; v.v.i = x; return v; }
static rv_value VT(int64_t x) { rv_value v = {.type = RV_T_TIMESTAMP}; v.v.i = x; return v; }
static rv_value VF(double x) { rv_value v = {.type = RV_T_FLOAT64}; v.v.f = x; return v; }
static rv_value VB(bool x) { rv_value v = {.type = RV_T_BOOL}; v.v.b = x; return v; }
static rv_value VS(const char *s)
{
    rv_value v = {.type = RV_T_STRING};
    v.v.s.ptr = s;
    v.v.s.len = (uint32_t)strlen(s);
    return v;
}

static rv_schema *std_schema(void)
{
    rv_schema *sc = rv_schema_new();
    rv_schema_add(sc, "s", RV_T_STRING);
    rv_schema_add(sc, "i", RV_T_INT64);
    rv_schema_add(sc, "f", RV_T_FLOAT64);
    rv_schema_add(sc, "b", RV_T_BOOL);
    rv_schema_add(sc, "ts", RV_T_TIMESTAMP);
    rv_schema_add(sc, "k", RV_T_INT64);
    rv_schema_add(sc, "t", RV_T_STRING);
    rv_schema_add(sc, "c", RV_T_BOOL);
    return sc;
}

static rv_batch *mk_batch(rv_schema *sc, uint32_t nrows, const rv_value *vals)
{
    rv_batch *b = rv_batch_new(sc, nrows);
    for (uint32_t r = 0; r < nrows; r++)
        for (int f = 0; f < sc->nfields; f++)
            rv_col_set_value(&b->cols[f], r, &vals[r * (uint32_t)sc->nfields + (uint32_t)f]);
    b->nrows = nrows;
    return b;
}

static rv_batch *std_batch(uint32_t nrows)
{
    const rv_value rows[4 * NF] = {
        VS("hello"), VI(7),         VF(2.5),   VB(true),  VT(90000005), VI(2),  VS("l"), VB(true),
        VN,          VI(-7),        VF(-0.5),  VB(false), VT(0),        VI(0),  VS(""),  VN,
        VS("World"), VN,            VN,        VN,        VN,           VI(-3), VN,      VB(false),
        VS(""),      VI(INT64_MAX), VF(1e300), VB(true),  VT(-1),       VN,     VS("o"), VB(true),
    };
    rv_schema *sc = std_schema();
    rv_batch *b = mk_batch(sc, nrows, rows);
    rv_schema_unref(sc);
    return b;
}

static void render(const rv_column *c, uint32_t n, char *out, size_t cap)
{
    size_t off = 0;
    out[0] = '\0';
    for (uint32_t r = 0; r < n && off < cap; r++) {
        const char *sep = r ? "," : "";
        rv_value v = rv_col_get_value(c, r);
        if (v.is_null) {
            off += (size_t)snprintf(out + off, cap - off, "%snull", sep);
            continue;
        }
        switch (c->type) {
        case RV_T_BOOL: off += (size_t)snprintf(out + off, cap - off, "%s%s", sep, v.v.b ? "true" : "false"); break;
        case RV_T_INT64:
        case RV_T_TIMESTAMP: off += (size_t)snprintf(out + off, cap - off, "%s%lld", sep, (long long)v.v.i); break;
        case RV_T_FLOAT64: off += (size_t)snprintf(out + off, cap - off, "%s%g", sep, v.v.f); break;
        case RV_T_STRING:
            off += (size_t)snprintf(out + off, cap - off, "%s\"%.*s\"", sep, (int)v.v.s.len, v.v.s.ptr);
            break;
        case RV_T_NULL: break;
        }
    }
}

static rv_expr *compile_ok(const char *src, const rv_schema *sc)
{
    rv_expr *e = NULL;
    size_t off = 0;
    rv_err *err = rv_expr_compile(src, sc, &e, &off);
    cr_assert_null(err, "compile '%s': %s at %zu", src, rv_err_msg(err), off);
    return e;
}

/* Evaluates src over b (twice, to exercise scratch reuse) and compares
 * the rendering; bool results are also checked through rv_expr_select. */
static void check_on(const rv_batch *b, const char *src, const char *expected)
{
    rv_expr *e = compile_ok(src, b->schema);
    rv_type t = rv_expr_type(e);
    rv_column col;
    rv_col_init(&col, t == RV_T_NULL ? RV_T_INT64 : t, 1);
    char got[2048], again[2048];
    cr_assert_eq(rv_expr_eval(e, b, &col), RV_OK);
    render(&col, b->nrows, got, sizeof(got));
    cr_assert_str_eq(got, expected, "'%s' gave %s, expected %s", src, got, expected);
    cr_assert_eq(rv_expr_eval(e, b, &col), RV_OK);
    render(&col, b->nrows, again, sizeof(again));
    cr_assert_str_eq(again, expected, "'%s' second evaluation", src);
    if (t == RV_T_BOOL || t == RV_T_NULL) {
        uint32_t sel[64], n = rv_expr_select(e, b, sel), k = 0;
        for (uint32_t r = 0; r < b->nrows; r++) {
            rv_value v = rv_col_get_value(&col, r);
            if (!v.is_null && t == RV_T_BOOL && v.v.b) {
                cr_assert_lt(k, n, "'%s': select missed row %u", src, r);
                cr_assert_eq(sel[k], r, "'%s': select row %u", src, r);
                k++;
            }
        }
        cr_assert_eq(k, n, "'%s': select count", src);
    }
    rv_col_fini(&col);
    rv_expr_free(e);
}

static void check(const char *src, const char *expected)
{
    rv_batch *b = std_batch(4);
    check_on(b, src, expected);
    rv_batch_unref(b);
}

/* On row 0 only: for constants and single values. */
static void check1(const char *src, const char *expected)
{
    rv_batch *b = std_batch(1);
    check_on(b, src, expected);
    rv_batch_unref(b);
}

static void check_type(const char *src, rv_type t)
{
    rv_schema *sc = std_schema();
    rv_expr *e = compile_ok(src, sc);
    cr_assert_eq(rv_expr_type(e), t, "'%s' has type %s, expected %s", src, rv_type_name(rv_expr_type(e)),
                 rv_type_name(t));
    rv_expr_free(e);
    rv_schema_unref(sc);
}

Test(rv_expr, arithmetic_int)
{
    check("i + k", "9,-7,null,null");
    check("i - k", "5,-7,null,null");
    check("i * k", "14,0,null,null");
    check("i / k", "3,null,null,null");
    check("i % k", "1,null,null,null");
    check("k - 10", "-8,-10,-13,null");
    check("10 - k", "8,10,13,null");
    check("i + 2 * 3", "13,-1,null,-9223372036854775803");
    check("(i + 2) * 3", "27,-15,null,-9223372036854775805");
    check1("-7 / 2", "-3");
    check1("-7 % 2", "-1");
    check1("7 % -2", "1");
    check1("2 - 3 - 4", "-5");
    check1("24 / 4 / 2", "3");
}

Test(rv_expr, integer_overflow_wraps)
{
    check("i + 1", "8,-6,null,-9223372036854775808");
    check("i * 2", "14,-14,null,-2");
    check("-i", "-7,7,null,-9223372036854775807");
    check1("-9223372036854775808 - 1", "9223372036854775807");
    check1("-9223372036854775808 / -1", "-9223372036854775808");
    check1("-9223372036854775808 % -1", "0");
    check1("-(-9223372036854775808)", "-9223372036854775808");
    check("k / -1", "-2,0,3,null");
}

Test(rv_expr, division_by_zero_is_null)
{
    check("i / 0", "null,null,null,null");
    check("i % 0", "null,null,null,null");
    check("k / k", "1,null,1,null");
    check("f / 0", "inf,-inf,null,inf");
    check("f / 0.0", "inf,-inf,null,inf");
    rv_schema *sc = std_schema();
    rv_batch *b = std_batch(1);
    rv_expr *e = compile_ok("0.0 / 0.0", sc);
    rv_column col;
    rv_col_init(&col, RV_T_FLOAT64, 1);
    rv_expr_eval(e, b, &col);
    cr_assert(isnan(col.d.f64[0]));
    cr_assert(!rv_col_is_null(&col, 0));
    rv_col_fini(&col);
    rv_expr_free(e);
    rv_batch_unref(b);
    rv_schema_unref(sc);
}

Test(rv_expr, float_arithmetic_and_promotion)
{
    check("f * 2", "5,-1,null,2e+300");
    check("i + f", "9.5,-7.5,null,1e+300");
    check("f - 1", "1.5,-1.5,null,1e+300");
    check("10 / f", "4,-20,null,1e-299");
    check("f % 2", "0.5,-0.5,null,0");
    check("-f", "-2.5,0.5,null,-1e+300");
    check_type("i + f", RV_T_FLOAT64);
    check_type("i + 1.0", RV_T_FLOAT64);
    check_type("i * 2", RV_T_INT64);
    check1("7 / 2.0", "3.5");
    check1("1.5e2 + 0.5e1 * 0", "150");
}

Test(rv_expr, timestamp_arithmetic)
{
    check("ts + 1000", "90001005,1000,null,999");
    check("1000 + ts", "90001005,1000,null,999");
    check("ts - 5", "90000000,-5,null,-6");
    check("ts - ts", "0,0,null,0");
    check_type("ts + 1", RV_T_TIMESTAMP);
    check_type("ts - 1", RV_T_TIMESTAMP);
    check_type("ts - ts", RV_T_INT64);
    check("ts > 0", "true,false,null,false");
    check("ts == ts", "true,true,null,true");
    check("ts < i", "false,false,null,true");
}

Test(rv_expr, comparisons)
{
    check("i > k", "true,false,null,null");
    check("i >= 7", "true,false,null,true");
    check("i < 7", "false,true,null,false");
    check("i <= -7", "false,true,null,false");
    check("i == 7", "true,false,null,false");
    check("i != 7", "false,true,null,true");
    check("7 < i", "false,false,null,true");
    check("7 == i", "true,false,null,false");
    check("f > i", "false,true,null,true");
    check("f >= 2.5", "true,false,null,true");
    check("b == c", "true,null,null,true");
    check("b != true", "false,true,null,false");
    check("false < b", "true,false,null,true");
}

Test(rv_expr, string_comparisons_are_bytewise)
{
    check("s == \"hello\"", "true,null,false,false");
    check("\"hello\" == s", "true,null,false,false");
    check("s != \"\"", "true,null,true,false");
    check("s < t", "true,null,null,true");
    check("s > \"Zebra\"", "true,null,false,false");
    check("s == t", "false,null,null,false");
    check1("\"abc\" < \"abd\"", "true");
    check1("\"ab\" < \"abc\"", "true");
    check1("\"b\" > \"abc\"", "true");
    check1("'it\\'s' == \"it's\"", "true");
    check1("\"a\\tb\\n\" == 'a\tb\n'", "true");
    check1("len(\"\\\\\\\"\")", "2");
}

Test(rv_expr, string_equality_with_short_and_long_literals)
{
    /* Rows long enough for the word-at-a-time path, and a tail that is not. */
    static const char *const words[] = {"abcdefghij", "abcdefghijk", "abcdefghiX", "abc", "", "abcdefgh",
                                        "abcdefghij", "abcdefgh", "abc"};
    enum { NW = sizeof(words) / sizeof(words[0]) };
    rv_schema *sc = rv_schema_new();
    rv_schema_add(sc, "w", RV_T_STRING);
    rv_value rows[NW];
    for (size_t k = 0; k < NW; k++)
        rows[k] = VS(words[k]);
    rv_batch *b = mk_batch(sc, NW, rows);
    check_on(b, "w == \"abcdefghij\"", "true,false,false,false,false,false,true,false,false");
    check_on(b, "w == \"abcdefgh\"", "false,false,false,false,false,true,false,true,false");
    check_on(b, "w != \"abc\"", "true,true,true,false,true,true,true,true,false");
    check_on(b, "w == \"\"", "false,false,false,false,true,false,false,false,false");
    check_on(b, "w == \"abcdefghiX\"", "false,false,true,false,false,false,false,false,false");
    check_on(b, "\"abcdefgh\" != w", "true,true,true,true,true,false,true,false,true");
    check_on(b, "w in [\"abc\", \"abcdefghijk\"]", "false,true,false,true,false,false,false,false,true");
    rv_batch_unref(b);
    rv_schema_unref(sc);
}

Test(rv_expr, string_concat)
{
    check("s + \"!\"", "\"hello!\",null,\"World!\",\"!\"");
    check("s + t", "\"hellol\",null,null,\"o\"");
    check("\">\" + s", "\">hello\",null,\">World\",\">\"");
    check_type("s + t", RV_T_STRING);
}

Test(rv_expr, three_valued_logic)
{
    check("b && c", "true,false,false,true");
    check("b || c", "true,null,null,true");
    check("c && b", "true,false,false,true");
    check("c || b", "true,null,null,true");
    check("!b", "false,true,null,false");
    check("!c", "false,null,true,false");
    check("b && null", "null,false,null,null");
    check("b || null", "true,null,null,true");
    check("null && b", "null,false,null,null");
    check("b && true", "true,false,null,true");
    check("b || false", "true,false,null,true");
    check("b && false", "false,false,false,false");
    check("true || b", "true,true,true,true");
    check("!(i > 0) || s == \"World\"", "false,true,true,false");
    check("i > 0 && k > 0 || c", "true,null,false,true");
    check1("null || true", "true");
    check1("null && false", "false");
    check1("!null", "null");
}

Test(rv_expr, null_operands_give_null)
{
    check("i + null", "null,null,null,null");
    check("s == null", "null,null,null,null");
    check("null * f", "null,null,null,null");
    check("-null", "null,null,null,null");
    check_type("i + null", RV_T_INT64);
    check_type("null", RV_T_NULL);
    check_type("s == null", RV_T_BOOL);
    check_type("s + null", RV_T_STRING);
}

Test(rv_expr, in_lists)
{
    check("i in [7, 9223372036854775807]", "true,false,null,true");
    check("i in []", "false,false,null,false");
    check("s in [\"hello\", \"\"]", "true,null,false,true");
    check("f in [2.5, 1]", "true,false,null,false");
    check("i in [7.0, 1.5]", "true,false,null,false");
    check("b in [true]", "true,false,null,true");
    check("b in [false, true]", "true,true,null,true");
    check("ts in [0, -1]", "false,true,null,true");
    check("k in [1, 2, 3, 5, 8, 13, 21, 34, 55, 89, -3]", "true,false,true,null");
    check("k in [-1, 2 * 1]", "true,false,false,null");
    check("k + 1 in [1]", "false,true,false,null");
    check("!(k in [0])", "true,false,true,null");
    check1("null in [1, 2]", "null");
}

Test(rv_expr, if_and_coalesce)
{
    check("if(b, i, k)", "7,0,-3,9223372036854775807");
    check("if(b, s, \"x\")", "\"hello\",\"x\",\"x\",\"\"");
    check("if(c, 1, 2.5)", "1,2.5,2.5,1");
    check("if(b, null, k)", "null,0,-3,null");
    check("if(b, f, null)", "2.5,null,null,1e+300");
    check("if(true, s, t)", "\"hello\",null,\"World\",\"\"");
    check("if(null, 1, 2)", "2,2,2,2");
    check("if(c, ts, 0)", "90000005,0,0,-1");
    check_type("if(c, ts, 0)", RV_T_TIMESTAMP);
    check_type("if(c, 1, 2.5)", RV_T_FLOAT64);
    check("coalesce(i, k, 0)", "7,-7,-3,9223372036854775807");
    check("coalesce(k, i)", "2,0,-3,9223372036854775807");
    check("coalesce(s, t)", "\"hello\",\"\",\"World\",\"\"");
    check("coalesce(t, s)", "\"l\",\"\",\"World\",\"o\"");
    check("coalesce(null, k)", "2,0,-3,null");
    check("coalesce(f, i)", "2.5,-0.5,null,1e+300");
    check("coalesce(c, b)", "true,false,false,true");
    check("coalesce(k, k, k, k, k, k, k, k, i, 5)", "2,0,-3,9223372036854775807");
    check("coalesce(t, t, t, t, t, t, t, t, t, \"?\")", "\"l\",\"\",\"?\",\"o\"");
    check1("coalesce(null, null)", "null");
    check1("coalesce(3, i)", "3");
}

Test(rv_expr, string_functions)
{
    check("lower(s)", "\"hello\",null,\"world\",\"\"");
    check("upper(s)", "\"HELLO\",null,\"WORLD\",\"\"");
    check1("upper(\"a-z_\xc3\xa9\")", "\"A-Z_\xc3\xa9\"");
    check("len(s)", "5,null,5,0");
    check1("len(\"\xc3\xa9\")", "2");
    check("contains(s, t)", "true,null,null,false");
    check("contains(s, \"\")", "true,null,true,true");
    check("starts_with(s, \"he\")", "true,null,false,false");
    check("ends_with(s, \"ld\")", "false,null,true,false");
    check("ends_with(s, s)", "true,null,true,true");
    check1("starts_with(\"a\", \"abc\")", "false");
}

Test(rv_expr, substr_edges)
{
    check("substr(s, 2, 3)", "\"ell\",null,\"orl\",\"\"");
    check("substr(s, 2)", "\"ello\",null,\"orld\",\"\"");
    check("substr(s, 5, 10)", "\"o\",null,\"d\",\"\"");
    check("substr(s, 6)", "\"\",null,\"\",\"\"");
    check("substr(s, k)", "\"ello\",null,\"\",null");
    check1("substr(\"hello\", 0, 2)", "\"\"");
    check1("substr(\"hello\", -1)", "\"\"");
    check1("substr(\"hello\", 1, 0)", "\"\"");
    check1("substr(\"hello\", 1, -1)", "\"\"");
    check1("substr(\"hello\", 1, 9223372036854775807)", "\"hello\"");
    check1("substr(\"hello\", 9223372036854775807, 1)", "\"\"");
    check1("substr(\"hello\", 1, null)", "null");
}

Test(rv_expr, split_index_is_zero_based)
{
    check1("split_index(\"a,b,,c\", \",\", 0)", "\"a\"");
    check1("split_index(\"a,b,,c\", \",\", 1)", "\"b\"");
    check1("split_index(\"a,b,,c\", \",\", 2)", "\"\"");
    check1("split_index(\"a,b,,c\", \",\", 3)", "\"c\"");
    check1("split_index(\"a,b,,c\", \",\", 4)", "null");
    check1("split_index(\"a,b,,c\", \",\", -1)", "null");
    check1("split_index(\"a--b\", \"--\", 1)", "\"b\"");
    check1("split_index(\"abc\", \"\", 0)", "null");
    check1("split_index(\"\", \",\", 0)", "\"\"");
    check("split_index(s, \"l\", 1)", "\"\",null,\"d\",null");
    check("split_index(s, t, 1)", "\"\",null,null,null");
}

Test(rv_expr, regex_extract)
{
    check1("regex_extract(\"user=bob id=7\", \"user=([a-z]+)\")", "\"bob\"");
    check1("regex_extract(\"user=bob id=7\", \"user=([a-z]+)\", 0)", "\"user=bob\"");
    check1("regex_extract(\"user=bob id=7\", \"id=([0-9]+)\", 1)", "\"7\"");
    check1("regex_extract(\"nothing\", \"user=([a-z]+)\")", "null");
    check1("regex_extract(\"abc\", \"b\")", "\"b\"");
    check1("regex_extract(\"ac\", \"a(b)?c\", 1)", "null");
    check1("regex_extract(\"ac\", \"a(b)?c\", 0)", "\"ac\"");
    check("regex_extract(s, \"(l+)(o)\", 2)", "\"o\",null,null,null");
    check("regex_extract(s, \"^[A-Z]\")", "null,null,\"W\",null");
    check("regex_extract(s, \"l*$\")", "\"\",null,\"\",\"\"");
}

Test(rv_expr, math_functions)
{
    check("abs(i)", "7,7,null,9223372036854775807");
    check("abs(f)", "2.5,0.5,null,1e+300");
    check1("abs(-9223372036854775808)", "-9223372036854775808");
    check1("round(2.5)", "3");
    check1("round(-2.5)", "-3");
    check1("round(0.49999)", "0");
    check1("round(1.25, 1)", "1.3");
    check1("round(-1.25, 1)", "-1.3");
    check1("round(1234.5, -2)", "1200");
    check1("round(1250, -2)", "1300");
    check1("round(-1250, -2)", "-1300");
    check1("round(1249, -2)", "1200");
    check1("round(7, 2)", "7");
    check1("round(7, -30)", "0");
    check1("round(1.5, 400)", "1.5");
    check("round(f)", "3,-1,null,1e+300");
    check("round(i, k)", "7,-7,null,null");
    check_type("round(i)", RV_T_INT64);
    check_type("round(f, 2)", RV_T_FLOAT64);
    check_type("abs(i)", RV_T_INT64);
}

Test(rv_expr, hour_of_timestamp)
{
    check("hour(ts)", "1,0,null,23");
    check1("hour(timestamp(\"2024-03-10T17:45:00Z\"))", "17");
    check1("hour(timestamp(\"2024-03-10T17:45:00+02:00\"))", "15");
    check1("hour(timestamp(\"1969-12-31T22:30:00Z\"))", "22");
    check1("hour(3600000 * 24 * 365 + 3600000 * 5)", "5");
}

Test(rv_expr, casts_int_and_float)
{
    check1("int(\"12\")", "12");
    check1("int(\" -5 \")", "-5");
    check1("int(\"+5\")", "5");
    check1("int(\"1x\")", "null");
    check1("int(\"\")", "null");
    check1("int(\"-\")", "null");
    check1("int(\"9223372036854775807\")", "9223372036854775807");
    check1("int(\"9223372036854775808\")", "null");
    check1("int(\"-9223372036854775808\")", "-9223372036854775808");
    check1("int(2.9)", "2");
    check1("int(-2.9)", "-2");
    check1("int(1e300)", "null");
    check1("int(true)", "1");
    check("int(b)", "1,0,null,1");
    check("int(ts)", "90000005,0,null,-1");
    check("int(f)", "2,0,null,null");
    check_type("int(ts)", RV_T_INT64);
    check1("float(\"2.5\")", "2.5");
    check1("float(\" 1e3 \")", "1000");
    check1("float(\"abc\")", "null");
    check1("float(\"1.5x\")", "null");
    check1("float(7)", "7");
    check("float(i)", "7,-7,null,9.22337e+18");
    check("float(b)", "1,0,null,1");
    check("float(s)", "null,null,null,null");
}

Test(rv_expr, casts_string_bool_timestamp)
{
    check("string(i)", "\"7\",\"-7\",null,\"9223372036854775807\"");
    check("string(f)", "\"2.5\",\"-0.5\",null,\"1e+300\"");
    check("string(b)", "\"true\",\"false\",null,\"true\"");
    check("string(ts)", "\"90000005\",\"0\",null,\"-1\"");
    check("string(s)", "\"hello\",null,\"World\",\"\"");
    check1("string(0.1)", "\"0.1\"");
    check1("string(1.0 / 3)", "\"0.3333333333333333\"");
    check1("string(-9223372036854775808)", "\"-9223372036854775808\"");
    check1("bool(\"true\")", "true");
    check1("bool(\"FALSE\")", "false");
    check1("bool(\"1\")", "true");
    check1("bool(\"yes\")", "null");
    check1("bool(0)", "false");
    check1("bool(2.5)", "true");
    check1("bool(0.0 / 0.0)", "null");
    check("bool(k)", "true,false,true,null");
    check1("timestamp(\"2024-01-01T00:00:00Z\")", "1704067200000");
    check1("timestamp(\"2024-01-01\")", "1704067200000");
    check1("timestamp(\"2024-01-01 00:00\")", "1704067200000");
    check1("timestamp(\"2024-01-01T01:00:00+01:00\")", "1704067200000");
    check1("timestamp(\"2023-12-31T19:00:00-0500\")", "1704067200000");
    check1("timestamp(\"2024-01-01T00:00:00.123456Z\")", "1704067200123");
    check1("timestamp(\"2024-01-01T00:00:00.5\")", "1704067200500");
    check1("timestamp(\"2024-02-29T00:00:00Z\")", "1709164800000");
    check1("timestamp(\"2023-02-29T00:00:00Z\")", "null");
    check1("timestamp(\"2024-13-01\")", "null");
    check1("timestamp(\"2024-01-01T24:00:00Z\")", "null");
    check1("timestamp(\"2024-01-01T00:00:00Zjunk\")", "null");
    check1("timestamp(\"1969-12-31T23:59:59.999Z\")", "-1");
    check1("timestamp(\"1970-01-01T00:00:00Z\")", "0");
    check1("timestamp(\"not a date\")", "null");
    check1("timestamp(1000)", "1000");
    check1("timestamp(1.9)", "1");
    check_type("timestamp(i)", RV_T_TIMESTAMP);
    check("timestamp(i) - ts", "-89999998,-7,null,-9223372036854775808");
}

Test(rv_expr, field_names_and_keywords)
{
    rv_schema *sc = rv_schema_new();
    rv_schema_add(sc, "latency ms", RV_T_INT64);
    rv_schema_add(sc, "in", RV_T_INT64);
    rv_schema_add(sc, "True", RV_T_BOOL);
    const rv_value rows[3] = {VI(5), VI(6), VB(false)};
    rv_batch *b = mk_batch(sc, 1, rows);
    check_on(b, "`latency ms` + `in`", "11");
    check_on(b, "True || true", "true");
    check_on(b, "`True`", "false");
    rv_expr *e = compile_ok("`latency ms`", sc);
    cr_assert_str_eq(rv_expr_field_name(e), "latency ms");
    cr_assert_not(rv_expr_is_const(e));
    rv_expr_free(e);
    rv_batch_unref(b);
    rv_schema_unref(sc);
}

Test(rv_expr, const_and_field_name)
{
    rv_schema *sc = std_schema();
    static const struct {
        const char *src;
        bool is_const;
        const char *field;
    } cases[] = {
        {"1 + 2 * 3", true, NULL},
        {"lower(\"ABC\") == \"abc\"", true, NULL},
        {"i", false, "i"},
        {"(s)", false, "s"},
        {"i + 0", false, NULL},
        {"i + null", true, NULL},
        {"if(true, 1, i)", true, NULL},
        {"false && b", true, NULL},
        {"coalesce(null, i)", false, "i"},
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        rv_expr *e = compile_ok(cases[k].src, sc);
        cr_assert_eq(rv_expr_is_const(e), cases[k].is_const, "%s", cases[k].src);
        if (cases[k].field)
            cr_assert_str_eq(rv_expr_field_name(e), cases[k].field, "%s", cases[k].src);
        else
            cr_assert_null(rv_expr_field_name(e), "%s", cases[k].src);
        rv_expr_free(e);
    }
    rv_schema_unref(sc);
}

Test(rv_expr, eval_roots_copy_fields_and_broadcast_literals)
{
    rv_batch *b = std_batch(4);
    check_on(b, "s", "\"hello\",null,\"World\",\"\"");
    check_on(b, "f", "2.5,-0.5,null,1e+300");
    check_on(b, "c", "true,null,false,true");
    check_on(b, "\"x\"", "\"x\",\"x\",\"x\",\"x\"");
    check_on(b, "42", "42,42,42,42");
    check_on(b, "true", "true,true,true,true");
    check_on(b, "null", "null,null,null,null");
    check_on(b, "int(ts)", "90000005,0,null,-1");
    /* A null literal root fills a column of whatever type the caller chose. */
    rv_schema *sc = std_schema();
    rv_expr *e = compile_ok("null", sc);
    rv_column col;
    rv_col_init(&col, RV_T_STRING, 1);
    rv_expr_eval(e, b, &col);
    for (uint32_t r = 0; r < 4; r++)
        cr_assert(rv_col_is_null(&col, r));
    cr_assert_eq(rv_expr_select(e, b, (uint32_t[4]){0}), 0u);
    rv_col_fini(&col);
    rv_expr_free(e);
    rv_schema_unref(sc);
    rv_batch_unref(b);
}

Test(rv_expr, empty_batch)
{
    rv_batch *b = std_batch(0);
    static const char *const srcs[] = {"s + t", "i * k", "lower(s)", "b && c", "coalesce(s, t)", "if(b, s, t)",
                                       "string(f)", "s", "1", "null", "substr(s, 1, 2)", "i in [1, 2]"};
    for (size_t k = 0; k < sizeof(srcs) / sizeof(srcs[0]); k++)
        check_on(b, srcs[k], "");
    rv_batch_unref(b);
}

Test(rv_expr, select_filter)
{
    rv_batch *b = std_batch(4);
    rv_expr *e = compile_ok("s != \"\" && i > 0 || k < 0", b->schema);
    uint32_t sel[4];
    cr_assert_eq(rv_expr_select(e, b, sel), 2u);
    cr_assert_eq(sel[0], 0u);
    cr_assert_eq(sel[1], 2u);
    rv_expr_free(e);
    e = compile_ok("true", b->schema);
    cr_assert_eq(rv_expr_select(e, b, sel), 4u);
    cr_assert_eq(sel[3], 3u);
    rv_expr_free(e);
    e = compile_ok("b", b->schema);
    cr_assert_eq(rv_expr_select(e, b, sel), 2u);
    cr_assert_eq(sel[1], 3u);
    rv_expr_free(e);
    rv_batch_unref(b);
}

/* ---- compile errors ---- */

static rv_schema *err_schema(void)
{
    rv_schema *sc = rv_schema_new();
    rv_schema_add(sc, "status", RV_T_STRING);
    rv_schema_add(sc, "latency_ms", RV_T_INT64);
    rv_schema_add(sc, "ok", RV_T_BOOL);
    rv_schema_add(sc, "ts", RV_T_TIMESTAMP);
    rv_schema_add(sc, "score", RV_T_FLOAT64);
    return sc;
}

typedef struct err_case {
    const char *src;
    rv_code code;
    const char *msg; /* exact, or a prefix when it ends with '*' */
    size_t off;
} err_case;

static const err_case err_cases[] = {
    {"stauts == \"x\"", RV_ERR_NOT_FOUND, "unknown field 'stauts' (did you mean 'status'?)", 0},
    {"ok && zzzzzzzz", RV_ERR_NOT_FOUND, "unknown field 'zzzzzzzz'", 6},
    {"`no such`", RV_ERR_NOT_FOUND, "unknown field 'no such'", 0},
    {"True", RV_ERR_NOT_FOUND, "unknown field 'True' (did you mean 'true'?)", 0},
    {"lowr(status)", RV_ERR_NOT_FOUND, "unknown function 'lowr' (did you mean 'lower'?)", 0},
    {"1 + frobnicate(2)", RV_ERR_NOT_FOUND, "unknown function 'frobnicate'", 4},
    {"status + 1", RV_ERR_TYPE, "operator '+' cannot add string and int64", 7},
    {"ts + 1.5", RV_ERR_TYPE, "operator '+' cannot add timestamp and float64", 3},
    {"ok * 2", RV_ERR_TYPE, "operator '*' cannot multiply bool and int64", 3},
    {"1 - ts", RV_ERR_TYPE, "operator '-' cannot subtract int64 and timestamp", 2},
    {"null + ok", RV_ERR_TYPE, "operator '+' cannot add null and bool", 5},
    {"latency_ms > \"a\"", RV_ERR_TYPE, "operator '>' cannot compare int64 and string", 11},
    {"latency_ms && ok", RV_ERR_TYPE, "operator '&&' needs bool operands, got int64", 11},
    {"ok || status", RV_ERR_TYPE, "operator '||' needs bool operands, got string", 3},
    {"!latency_ms", RV_ERR_TYPE, "operator '!' needs a bool operand, got int64", 0},
    {"-status", RV_ERR_TYPE, "operator '-' needs a number, got string", 0},
    {"substr(status)", RV_ERR_TYPE, "function substr expects 2 or 3 arguments, got 1", 0},
    {"lower(status, 1)", RV_ERR_TYPE, "function lower expects 1 argument, got 2", 0},
    {"if(ok, 1)", RV_ERR_TYPE, "function if expects 3 arguments, got 2", 0},
    {"coalesce()", RV_ERR_TYPE, "function coalesce expects at least 1 argument, got 0", 0},
    {"lower(latency_ms)", RV_ERR_TYPE, "function lower argument 1 must be string, got int64", 6},
    {"substr(status, 1.5)", RV_ERR_TYPE, "function substr argument 2 must be int64, got float64", 15},
    {"abs(status)", RV_ERR_TYPE, "function abs argument 1 must be a number, got string", 4},
    {"hour(status)", RV_ERR_TYPE, "function hour argument 1 must be int64 or timestamp, got string", 5},
    {"if(latency_ms, 1, 2)", RV_ERR_TYPE, "function if argument 1 must be bool, got int64", 3},
    {"bool(ts)", RV_ERR_TYPE, "function bool argument 1 must be bool, int64, float64 or string, got timestamp", 5},
    {"if(ok, 1, \"a\")", RV_ERR_TYPE, "if() branches have incompatible types int64 and string", 10},
    {"coalesce(latency_ms, status)", RV_ERR_TYPE, "coalesce() arguments have incompatible types int64 and string",
     21},
    {"regex_extract(status, status)", RV_ERR_TYPE, "regex_extract pattern must be a string literal", 22},
    {"regex_extract(status, \"(\")", RV_ERR_TYPE, "invalid regular expression '(': *", 22},
    {"regex_extract(status, \"(a)\", 2)", RV_ERR_TYPE,
     "regex_extract group 2 is out of range: the pattern has 1 group", 29},
    {"regex_extract(status, \"a\", latency_ms)", RV_ERR_TYPE, "regex_extract group must be an integer literal", 27},
    {"latency_ms in [1, \"a\"]", RV_ERR_TYPE, "'in' list item of type string does not match int64", 18},
    {"latency_ms in [1, latency_ms]", RV_ERR_TYPE, "'in' list items must be literals", 18},
    {"status in [null]", RV_ERR_TYPE, "null is not allowed in an 'in' list", 11},
    {"sum(latency_ms) > 1", RV_ERR_TYPE, "aggregate sum() is only allowed in window aggregates", 0},
    {"99999999999999999999 > 1", RV_ERR_PARSE, "integer literal 99999999999999999999 is out of range for int64", 0},
    {"9223372036854775808", RV_ERR_PARSE, "integer literal 9223372036854775808 is out of range for int64", 0},
    {"1 - -9223372036854775809", RV_ERR_PARSE, "integer literal -9223372036854775809 is out of range for int64", 4},
    {"1e999", RV_ERR_PARSE, "float literal 1e999 is out of range", 0},
    {"12abc", RV_ERR_PARSE, "invalid number literal '12abc'", 0},
    {"status == \"abc", RV_ERR_PARSE, "unterminated string literal", 10},
    {"\"a\\q\"", RV_ERR_PARSE, "unknown escape '\\q' in string literal", 2},
    {"`status", RV_ERR_PARSE, "unterminated backquoted field name", 0},
    {"`` == 1", RV_ERR_PARSE, "empty field name in backquotes", 0},
    {"latency_ms > 1 > 0", RV_ERR_PARSE, "comparisons cannot be chained; combine them with && or ||", 15},
    {"status = \"a\"", RV_ERR_PARSE, "unexpected '=' (use '==' to compare)", 7},
    {"ok & ok", RV_ERR_PARSE, "unexpected '&' (use '&&' for and)", 3},
    {"(latency_ms > 1", RV_ERR_PARSE, "expected ')', found end of input", 15},
    {"latency_ms > 1 )", RV_ERR_PARSE, "unexpected ')' after the expression", 15},
    {"", RV_ERR_PARSE, "empty expression", 0},
    {"   ", RV_ERR_PARSE, "empty expression", 0},
    {"ok # 1", RV_ERR_PARSE, "unexpected character '#'", 3},
    {"latency_ms >", RV_ERR_PARSE, "expected a value, found end of input", 12},
    {"lower(status,)", RV_ERR_PARSE, "expected a value, found ')'", 13},
    {"lower(status ok)", RV_ERR_PARSE, "expected ',' or ')' in the argument list, found 'ok'", 13},
    {"latency_ms in (1)", RV_ERR_PARSE, "expected '[' after 'in', found '('", 14},
    {"latency_ms == !ok", RV_ERR_PARSE, "expected a value, found '!'", 14},
};

Test(rv_expr, compile_errors_exact_text_and_offset)
{
    rv_schema *sc = err_schema();
    for (size_t k = 0; k < sizeof(err_cases) / sizeof(err_cases[0]); k++) {
        const err_case *ec = &err_cases[k];
        rv_expr *e = NULL;
        size_t off = 12345;
        rv_err *err = rv_expr_compile(ec->src, sc, &e, &off);
        cr_assert_not_null(err, "'%s' compiled", ec->src);
        cr_assert_null(e, "'%s': out written on error", ec->src);
        size_t ml = strlen(ec->msg);
        if (ec->msg[ml - 1] == '*')
            cr_assert(strncmp(rv_err_msg(err), ec->msg, ml - 1) == 0, "'%s': got \"%s\"", ec->src, rv_err_msg(err));
        else
            cr_assert_str_eq(rv_err_msg(err), ec->msg, "'%s'", ec->src);
        cr_assert_eq(off, ec->off, "'%s': offset %zu, expected %zu", ec->src, off, ec->off);
        cr_assert_eq(rv_err_code(err), ec->code, "'%s': code %s", ec->src, rv_code_name(rv_err_code(err)));
        rv_err_free(err);
    }
    rv_schema_unref(sc);
}

Test(rv_expr, deep_nesting_is_an_error_not_a_crash)
{
    rv_schema *sc = err_schema();
    size_t n = 5000;
    char *src = malloc(2 * n + 2);
    memset(src, '(', n);
    src[n] = '1';
    memset(src + n + 1, ')', n);
    src[2 * n + 1] = '\0';
    rv_expr *e = NULL;
    rv_err *err = rv_expr_compile(src, sc, &e, NULL);
    cr_assert_not_null(err);
    cr_assert_str_eq(rv_err_msg(err), "expression is nested too deeply");
    rv_err_free(err);
    memset(src, '-', n);
    err = rv_expr_compile(src, sc, &e, NULL);
    cr_assert_not_null(err);
    rv_err_free(err);
    /* Long operator chains nest without parentheses; they are bounded too. */
    n = 3000;
    char *chain = malloc(4 * n + 1);
    for (size_t k = 0; k < n; k++)
        memcpy(chain + 4 * k, k ? " + 1" : "   1", 4);
    chain[4 * n] = '\0';
    err = rv_expr_compile(chain, sc, &e, NULL);
    cr_assert_not_null(err);
    cr_assert_str_eq(rv_err_msg(err), "expression is too long (more than 1000 operators deep)");
    rv_err_free(err);
    chain[4 * 900] = '\0';
    err = rv_expr_compile(chain, sc, &e, NULL);
    cr_assert_null(err);
    cr_assert(rv_expr_is_const(e));
    rv_expr_free(e);
    free(chain);
    /* Moderate nesting is fine. */
    err = rv_expr_compile("((((((((((latency_ms))))))))))+ - - -1", sc, &e, NULL);
    cr_assert_null(err);
    rv_expr_free(e);
    free(src);
    rv_schema_unref(sc);
}

/* ---- randomized comparison against a scalar reference ---- */

typedef struct nv {
    bool null;
    int64_t i;
    double f;
    bool b;
    const char *s;
    size_t len;
} nv;

#define RN 1000

typedef struct rand_data {
    rv_batch *b;
    int64_t i[RN], k[RN];
    double f[RN];
    bool bb[RN], cc[RN];
    const char *s[RN];
    bool ni[RN], nk[RN], nf[RN], nb[RN], nc[RN], ns[RN];
} rand_data;

static uint64_t rng_next(uint64_t *st)
{
    *st ^= *st << 13;
    *st ^= *st >> 7;
    *st ^= *st << 17;
    return *st;
}

static void rand_fill(rand_data *d, uint32_t nrows, uint64_t seed)
{
    static const char *const words[] = {"", "a", "bb", "abc", "Hello", "x,y,z", "bb,a"};
    static const int64_t edge[] = {0, 1, -1, 2, 3, 7, INT64_MAX, INT64_MIN, 1000};
    rv_schema *sc = rv_schema_new();
    rv_schema_add(sc, "i", RV_T_INT64);
    rv_schema_add(sc, "k", RV_T_INT64);
    rv_schema_add(sc, "f", RV_T_FLOAT64);
    rv_schema_add(sc, "b", RV_T_BOOL);
    rv_schema_add(sc, "c", RV_T_BOOL);
    rv_schema_add(sc, "s", RV_T_STRING);
    rv_value *vals = calloc((size_t)nrows * 6, sizeof(rv_value));
    uint64_t st = seed;
    for (uint32_t r = 0; r < nrows; r++) {
        uint64_t x = rng_next(&st);
        d->ni[r] = x % 7 == 0;
        d->nk[r] = (x >> 3) % 9 == 0;
        d->nf[r] = (x >> 7) % 8 == 0;
        d->nb[r] = (x >> 11) % 6 == 0;
        d->nc[r] = (x >> 13) % 5 == 0;
        d->ns[r] = (x >> 17) % 10 == 0;
        uint64_t y = rng_next(&st);
        d->i[r] = y % 4 == 0 ? edge[(y >> 8) % 9] : (int64_t)((y >> 16) % 201) - 100;
        d->k[r] = (int64_t)((y >> 32) % 11) - 5;
        d->f[r] = (double)((int64_t)(rng_next(&st) % 20001) - 10000) / 100.0;
        d->bb[r] = (y >> 40) & 1;
        d->cc[r] = (y >> 41) & 1;
        d->s[r] = words[(y >> 44) % 7];
        rv_value *row = &vals[r * 6];
        row[0] = d->ni[r] ? VN : VI(d->i[r]);
        row[1] = d->nk[r] ? VN : VI(d->k[r]);
        row[2] = d->nf[r] ? VN : VF(d->f[r]);
        row[3] = d->nb[r] ? VN : VB(d->bb[r]);
        row[4] = d->nc[r] ? VN : VB(d->cc[r]);
        row[5] = d->ns[r] ? VN : VS(d->s[r]);
    }
    d->b = mk_batch(sc, nrows, vals);
    free(vals);
    rv_schema_unref(sc);
}

static int64_t wadd(int64_t a, int64_t b) { return (int64_t)((uint64_t)a + (uint64_t)b); }
static int64_t wsub(int64_t a, int64_t b) { return (int64_t)((uint64_t)a - (uint64_t)b); }
static int64_t wmul(int64_t a, int64_t b) { return (int64_t)((uint64_t)a * (uint64_t)b); }

/* Reference for each expression, row by row. */
static nv ref_row(int which, const rand_data *d, uint32_t r)
{
    nv v = {0};
    switch (which) {
    case 0: /* i + k * 3 - i / k */
        if (d->ni[r] || d->nk[r] || d->k[r] == 0)
            return (nv){.null = true};
        {
            int64_t q = d->k[r] == -1 ? wsub(0, d->i[r]) : d->i[r] / d->k[r];
            v.i = wsub(wadd(d->i[r], wmul(d->k[r], 3)), q);
        }
        return v;
    case 1: { /* i % k == 1 || b && !c */
        bool ln = d->ni[r] || d->nk[r] || d->k[r] == 0;
        bool lv = !ln && (d->k[r] == -1 ? 0 : d->i[r] % d->k[r]) == 1;
        bool rn = false, rvv;
        /* b && !c */
        bool bn = d->nb[r], cn = d->nc[r];
        bool bv = d->bb[r], ncv = !d->cc[r];
        if ((!bn && !bv) || (!cn && !ncv)) {
            rvv = false;
        } else if (bn || cn) {
            rn = true;
            rvv = false;
        } else {
            rvv = true;
        }
        if ((!ln && lv) || (!rn && rvv))
            v.b = true;
        else if (ln || rn)
            v.null = true;
        return v;
    }
    case 2: /* f * 2.0 + i > k */
        if (d->nf[r] || d->ni[r] || d->nk[r])
            return (nv){.null = true};
        v.b = d->f[r] * 2.0 + (double)d->i[r] > (double)d->k[r];
        return v;
    case 3: /* if(b, len(s), k) */
        if (!d->nb[r] && d->bb[r]) {
            if (d->ns[r])
                return (nv){.null = true};
            v.i = (int64_t)strlen(d->s[r]);
        } else {
            if (d->nk[r])
                return (nv){.null = true};
            v.i = d->k[r];
        }
        return v;
    case 4: /* coalesce(s, "none") + "/" + upper(s) */
        if (d->ns[r])
            return (nv){.null = true};
        {
            static char buf[64];
            size_t n = strlen(d->s[r]);
            snprintf(buf, sizeof(buf), "%s/", d->s[r]);
            for (size_t j = 0; j < n; j++) {
                char ch = d->s[r][j];
                buf[n + 1 + j] = ch >= 'a' && ch <= 'z' ? (char)(ch - 32) : ch;
            }
            buf[2 * n + 1] = '\0';
            v.s = buf;
            v.len = 2 * n + 1;
        }
        return v;
    case 5: /* substr(s, k, 2) */
        if (d->ns[r] || d->nk[r])
            return (nv){.null = true};
        {
            size_t n = strlen(d->s[r]);
            int64_t st = d->k[r];
            v.s = "";
            v.len = 0;
            if (st >= 1 && (size_t)st <= n) {
                v.s = d->s[r] + st - 1;
                v.len = n - (size_t)(st - 1) < 2 ? n - (size_t)(st - 1) : 2;
            }
        }
        return v;
    case 6: { /* i in [1, 2, 3, 5, 8, 13, 21, 34, 55, 89, -100] || s in ["a", "bb"] */
        static const int64_t L[] = {1, 2, 3, 5, 8, 13, 21, 34, 55, 89, -100};
        bool ln = d->ni[r], lv = false;
        for (size_t j = 0; j < 11 && !ln; j++)
            lv |= d->i[r] == L[j];
        bool rn = d->ns[r], rvv = !rn && (strcmp(d->s[r], "a") == 0 || strcmp(d->s[r], "bb") == 0);
        if ((!ln && lv) || (!rn && rvv))
            v.b = true;
        else if (ln || rn)
            v.null = true;
        return v;
    }
    case 7: /* int(f) + abs(k) */
        if (d->nf[r] || d->nk[r])
            return (nv){.null = true};
        v.i = wadd((int64_t)d->f[r], d->k[r] < 0 ? -d->k[r] : d->k[r]);
        return v;
    case 8: /* split_index(s, ",", k) */
        if (d->ns[r] || d->nk[r] || d->k[r] < 0)
            return (nv){.null = true};
        {
            const char *p = d->s[r];
            for (int64_t j = 0; j < d->k[r]; j++) {
                p = strchr(p, ',');
                if (!p)
                    return (nv){.null = true};
                p++;
            }
            const char *e = strchr(p, ',');
            v.s = p;
            v.len = e ? (size_t)(e - p) : strlen(p);
        }
        return v;
    default: /* -i * 2 < k - 1 && !(f >= 0.5) */
    {
        bool ln = d->ni[r] || d->nk[r], lv = !ln && wmul(wsub(0, d->i[r]), 2) < d->k[r] - 1;
        bool rn = d->nf[r], rvv = !rn && !(d->f[r] >= 0.5);
        if ((!ln && !lv) || (!rn && !rvv))
            v.b = false;
        else if (ln || rn)
            v.null = true;
        else
            v.b = true;
        return v;
    }
    }
}

static const char *const rand_exprs[] = {
    "i + k * 3 - i / k",
    "i % k == 1 || b && !c",
    "f * 2.0 + i > k",
    "if(b, len(s), k)",
    "coalesce(s, \"none\") + \"/\" + upper(s)",
    "substr(s, k, 2)",
    "i in [1, 2, 3, 5, 8, 13, 21, 34, 55, 89, -100] || s in [\"a\", \"bb\"]",
    "int(f) + abs(k)",
    "split_index(s, \",\", k)",
    "-i * 2 < k - 1 && !(f >= 0.5)",
};

static void compare_rand(const rand_data *d, rv_expr *e, int which, rv_column *col)
{
    const rv_batch *b = d->b;
    cr_assert_eq(rv_expr_eval(e, b, col), RV_OK);
    uint32_t *sel = calloc(b->nrows + 1, sizeof(uint32_t)), nsel = 0, k = 0;
    if (rv_expr_type(e) == RV_T_BOOL)
        nsel = rv_expr_select(e, b, sel);
    for (uint32_t r = 0; r < b->nrows; r++) {
        nv want = ref_row(which, d, r);
        rv_value got = rv_col_get_value(col, r);
        cr_assert_eq(got.is_null, want.null, "'%s' row %u: null %d, expected %d", rand_exprs[which], r, got.is_null,
                     want.null);
        if (want.null)
            continue;
        switch (rv_expr_type(e)) {
        case RV_T_INT64: cr_assert_eq(got.v.i, want.i, "'%s' row %u", rand_exprs[which], r); break;
        case RV_T_BOOL:
            cr_assert_eq(got.v.b, want.b, "'%s' row %u", rand_exprs[which], r);
            if (want.b) {
                cr_assert_lt(k, nsel);
                cr_assert_eq(sel[k], r, "'%s' select row %u", rand_exprs[which], r);
                k++;
            }
            break;
        case RV_T_STRING:
            cr_assert(got.v.s.len == want.len && memcmp(got.v.s.ptr, want.s, want.len) == 0,
                      "'%s' row %u: \"%.*s\" vs \"%.*s\"", rand_exprs[which], r, (int)got.v.s.len, got.v.s.ptr,
                      (int)want.len, want.s);
            break;
        default: cr_assert_fail("unexpected type");
        }
    }
    if (rv_expr_type(e) == RV_T_BOOL)
        cr_assert_eq(k, nsel, "'%s' select count", rand_exprs[which]);
    free(sel);
}

Test(rv_expr, randomized_against_scalar_reference)
{
    rand_data *big = calloc(1, sizeof(*big)), *small = calloc(1, sizeof(*small));
    rand_fill(big, RN, 0x9e3779b97f4a7c15ull);
    rand_fill(small, 13, 12345);
    for (int w = 0; w < (int)(sizeof(rand_exprs) / sizeof(rand_exprs[0])); w++) {
        rv_expr *e = compile_ok(rand_exprs[w], big->b->schema);
        rv_column col;
        rv_col_init(&col, rv_expr_type(e), 1);
        /* Big, small, big again: scratch columns grow and are reused. */
        compare_rand(big, e, w, &col);
        compare_rand(small, e, w, &col);
        compare_rand(big, e, w, &col);
        rv_col_fini(&col);
        rv_expr_free(e);
    }
    rv_batch_unref(big->b);
    rv_batch_unref(small->b);
    free(big);
    free(small);
}
