/* Unit tests for rv_expr_compile_agg: extraction of aggregate calls, their
 * argument and result types, the final schema and expression, sharing of
 * identical calls, and the errors (fields outside aggregates, nesting,
 * arity, argument types). Expected values are written by hand. */
#include <criterion/criterion.h>
#include <string.h>

#include "rv_batch.h"
#include "rv_expr.h"
#include "rv_schema.h"

static rv_schema *in_schema(void)
{
    rv_schema *sc = rv_schema_new();
    rv_schema_add(sc, "crawler_id", RV_T_STRING);
    rv_schema_add(sc, "requests", RV_T_INT64);
    rv_schema_add(sc, "latency", RV_T_FLOAT64);
    rv_schema_add(sc, "ok", RV_T_BOOL);
    rv_schema_add(sc, "ts", RV_T_TIMESTAMP);
    return sc;
}

static rv_agg_expr *compile_ok(const char *src)
{
    rv_schema *sc = in_schema();
    rv_agg_expr *a = NULL;
    size_t off = 0;
    rv_err *err = rv_expr_compile_agg(src, sc, &a, &off);
    cr_assert_null(err, "'%s': %s at %zu", src, rv_err_msg(err), off);
    rv_schema_unref(sc);
    return a;
}

static void schema_is(const rv_schema *s, const char *expected)
{
    char buf[256];
    cr_assert_str_eq(rv_schema_describe(s, buf, sizeof(buf)), expected);
}

Test(rv_expr_agg, sum_divided_by_constant)
{
    rv_agg_expr *a = compile_ok("sum(requests) / 10");
    cr_assert_eq(a->ncalls, 1);
    cr_assert_eq(a->calls[0].kind, RV_AGG_SUM);
    cr_assert_eq(a->calls[0].arg_type, RV_T_INT64);
    cr_assert_eq(a->calls[0].result_type, RV_T_INT64);
    cr_assert_str_eq(rv_expr_field_name(a->calls[0].arg), "requests");
    schema_is(a->final_schema, "$0:int64");
    cr_assert_eq(rv_expr_type(a->final), RV_T_INT64);

    /* The final expression runs over finished aggregates. */
    rv_batch *b = rv_batch_new(a->final_schema, 2);
    rv_col_set_i64(&b->cols[0], 0, 250);
    rv_col_set_null(&b->cols[0], 1);
    b->nrows = 2;
    rv_column out;
    rv_col_init(&out, RV_T_INT64, 2);
    cr_assert_eq(rv_expr_eval(a->final, b, &out), RV_OK);
    cr_assert_eq(out.d.i64[0], 25);
    cr_assert(rv_col_is_null(&out, 1));
    rv_col_fini(&out);
    rv_batch_unref(b);
    rv_agg_expr_free(a);
}

Test(rv_expr_agg, float_division_gives_float)
{
    rv_agg_expr *a = compile_ok("sum(requests) / 10.0 < 10");
    schema_is(a->final_schema, "$0:int64");
    cr_assert_eq(rv_expr_type(a->final), RV_T_BOOL);
    rv_batch *b = rv_batch_new(a->final_schema, 3);
    rv_col_set_i64(&b->cols[0], 0, 99);
    rv_col_set_i64(&b->cols[0], 1, 100);
    rv_col_set_i64(&b->cols[0], 2, 101);
    b->nrows = 3;
    uint32_t sel[3];
    cr_assert_eq(rv_expr_select(a->final, b, sel), 1u);
    cr_assert_eq(sel[0], 0u);
    rv_batch_unref(b);
    rv_agg_expr_free(a);
}

Test(rv_expr_agg, count_forms)
{
    static const char *const srcs[] = {"count()", "count(*)", " count( * ) "};
    for (size_t k = 0; k < 3; k++) {
        rv_agg_expr *a = compile_ok(srcs[k]);
        cr_assert_eq(a->ncalls, 1, "%s", srcs[k]);
        cr_assert_eq(a->calls[0].kind, RV_AGG_COUNT);
        cr_assert_null(a->calls[0].arg);
        cr_assert_eq(a->calls[0].arg_type, RV_T_NULL);
        cr_assert_eq(a->calls[0].result_type, RV_T_INT64);
        cr_assert_str_eq(rv_expr_field_name(a->final), "$0");
        rv_agg_expr_free(a);
    }
    rv_agg_expr *a = compile_ok("count(crawler_id)");
    cr_assert_eq(a->calls[0].kind, RV_AGG_COUNT);
    cr_assert_not_null(a->calls[0].arg);
    cr_assert_eq(a->calls[0].arg_type, RV_T_STRING);
    cr_assert_eq(a->calls[0].result_type, RV_T_INT64);
    rv_agg_expr_free(a);
}

Test(rv_expr_agg, result_types)
{
    static const struct {
        const char *src;
        rv_agg_kind kind;
        rv_type arg, result;
    } cases[] = {
        {"sum(requests)", RV_AGG_SUM, RV_T_INT64, RV_T_INT64},
        {"sum(latency)", RV_AGG_SUM, RV_T_FLOAT64, RV_T_FLOAT64},
        {"sum(requests * 2 + 1)", RV_AGG_SUM, RV_T_INT64, RV_T_INT64},
        {"sum(if(ok, 1, 0))", RV_AGG_SUM, RV_T_INT64, RV_T_INT64},
        {"avg(requests)", RV_AGG_AVG, RV_T_INT64, RV_T_FLOAT64},
        {"avg(latency)", RV_AGG_AVG, RV_T_FLOAT64, RV_T_FLOAT64},
        {"min(requests)", RV_AGG_MIN, RV_T_INT64, RV_T_INT64},
        {"max(latency)", RV_AGG_MAX, RV_T_FLOAT64, RV_T_FLOAT64},
        {"min(ts)", RV_AGG_MIN, RV_T_TIMESTAMP, RV_T_TIMESTAMP},
        {"max(crawler_id)", RV_AGG_MAX, RV_T_STRING, RV_T_STRING},
        {"count(ok)", RV_AGG_COUNT, RV_T_BOOL, RV_T_INT64},
        {"count(null)", RV_AGG_COUNT, RV_T_NULL, RV_T_INT64},
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        rv_agg_expr *a = compile_ok(cases[k].src);
        cr_assert_eq(a->ncalls, 1, "%s", cases[k].src);
        cr_assert_eq(a->calls[0].kind, cases[k].kind, "%s", cases[k].src);
        cr_assert_eq(a->calls[0].arg_type, cases[k].arg, "%s", cases[k].src);
        cr_assert_eq(a->calls[0].result_type, cases[k].result, "%s", cases[k].src);
        cr_assert_eq(a->final_schema->fields[0].type, cases[k].result, "%s", cases[k].src);
        cr_assert_eq(rv_expr_type(a->final), cases[k].result, "%s", cases[k].src);
        rv_agg_expr_free(a);
    }
}

Test(rv_expr_agg, several_calls_and_sharing)
{
    rv_agg_expr *a = compile_ok("sum(latency) / count() + sum(latency) + float(max(ts) - min(ts))");
    cr_assert_eq(a->ncalls, 4);
    cr_assert_eq(a->calls[0].kind, RV_AGG_SUM);
    cr_assert_eq(a->calls[1].kind, RV_AGG_COUNT);
    cr_assert_eq(a->calls[2].kind, RV_AGG_MAX);
    cr_assert_eq(a->calls[3].kind, RV_AGG_MIN);
    schema_is(a->final_schema, "$0:float64, $1:int64, $2:timestamp, $3:timestamp");
    rv_agg_expr_free(a);

    a = compile_ok("avg(latency) * 1000 + avg(latency)");
    cr_assert_eq(a->ncalls, 1);
    rv_batch *b = rv_batch_new(a->final_schema, 1);
    rv_col_set_f64(&b->cols[0], 0, 0.5);
    b->nrows = 1;
    rv_column out;
    rv_col_init(&out, RV_T_FLOAT64, 1);
    rv_expr_eval(a->final, b, &out);
    cr_assert_float_eq(out.d.f64[0], 500.5, 1e-12);
    rv_col_fini(&out);
    rv_batch_unref(b);
    rv_agg_expr_free(a);
}

Test(rv_expr_agg, arguments_evaluate_on_input)
{
    rv_agg_expr *a = compile_ok("sum(requests * 2) + count(ok)");
    cr_assert_eq(a->ncalls, 2);
    rv_schema *sc = in_schema();
    rv_batch *b = rv_batch_new(sc, 2);
    rv_col_set_i64(&b->cols[1], 0, 3);
    rv_col_set_null(&b->cols[1], 1);
    b->nrows = 2;
    rv_column out;
    rv_col_init(&out, a->calls[0].arg_type, 2);
    rv_expr_eval(a->calls[0].arg, b, &out);
    cr_assert_eq(out.d.i64[0], 6);
    cr_assert(rv_col_is_null(&out, 1));
    rv_col_fini(&out);
    rv_batch_unref(b);
    rv_schema_unref(sc);
    rv_agg_expr_free(a);
}

Test(rv_expr_agg, constants_and_no_calls)
{
    rv_agg_expr *a = compile_ok("1 + 2");
    cr_assert_eq(a->ncalls, 0);
    cr_assert_eq(a->final_schema->nfields, 0);
    cr_assert(rv_expr_is_const(a->final));
    rv_agg_expr_free(a);
    a = compile_ok("if(count() > 0, \"some\", \"none\")");
    cr_assert_eq(a->ncalls, 1);
    cr_assert_eq(rv_expr_type(a->final), RV_T_STRING);
    rv_agg_expr_free(a);
}

typedef struct agg_err_case {
    const char *src;
    const char *msg;
    size_t off;
} agg_err_case;

Test(rv_expr_agg, compile_errors)
{
    static const agg_err_case cases[] = {
        {"sum(requests) + requests", "field 'requests' must be inside an aggregate such as sum(requests)", 16},
        {"latency", "field 'latency' must be inside an aggregate such as sum(latency)", 0},
        {"sum(max(requests))", "aggregate max() cannot be nested inside sum()", 4},
        {"count(1 + avg(latency))", "aggregate avg() cannot be nested inside count()", 10},
        {"sum()", "function sum expects 1 argument, got 0", 0},
        {"1 + avg(latency, ok)", "function avg expects 1 argument, got 2", 4},
        {"count(ok, ok)", "function count expects 0 or 1 arguments, got 2", 0},
        {"sum(crawler_id)", "sum() needs a number, got string", 4},
        {"avg(ts)", "avg() needs a number, got timestamp", 4},
        {"min(ok)", "min() needs a number, timestamp or string, got bool", 4},
        {"max(null)", "max() needs a number, timestamp or string, got null", 4},
        {"sum(reqests)", "unknown field 'reqests' (did you mean 'requests'?)", 4},
        {"sum(requests) + nope", "unknown field 'nope'", 16},
        {"sum(requests) + \"a\"", "operator '+' cannot add int64 and string", 14},
        {"sum(lower(requests))", "function lower argument 1 must be string, got int64", 10},
        {"sum(requests", "expected ',' or ')' in the argument list, found end of input", 12},
        {"`$0` + sum(requests)", "unknown field '$0'*", 0},
    };
    rv_schema *sc = in_schema();
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        rv_agg_expr *a = NULL;
        size_t off = 999;
        rv_err *err = rv_expr_compile_agg(cases[k].src, sc, &a, &off);
        cr_assert_not_null(err, "'%s' compiled", cases[k].src);
        cr_assert_null(a);
        size_t ml = strlen(cases[k].msg);
        if (cases[k].msg[ml - 1] == '*') /* a prefix: the rest is a suggestion */
            cr_assert(strncmp(rv_err_msg(err), cases[k].msg, ml - 1) == 0, "'%s': %s", cases[k].src, rv_err_msg(err));
        else
            cr_assert_str_eq(rv_err_msg(err), cases[k].msg, "'%s'", cases[k].src);
        cr_assert_eq(off, cases[k].off, "'%s': offset %zu", cases[k].src, off);
        rv_err_free(err);
    }
    rv_schema_unref(sc);
}

Test(rv_expr_agg, plain_compile_rejects_aggregates)
{
    rv_schema *sc = in_schema();
    rv_expr *e = NULL;
    size_t off = 0;
    rv_err *err = rv_expr_compile("1 + max(latency)", sc, &e, &off);
    cr_assert_not_null(err);
    cr_assert_str_eq(rv_err_msg(err), "aggregate max() is only allowed in window aggregates");
    cr_assert_eq(off, 4u);
    rv_err_free(err);
    err = rv_expr_compile("count()", sc, &e, &off);
    cr_assert_str_eq(rv_err_msg(err), "aggregate count() is only allowed in window aggregates");
    rv_err_free(err);
    rv_schema_unref(sc);
}
