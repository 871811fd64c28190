/* rv_expr: the expression language of job specs, compiled once and
 * evaluated a column at a time.
 *
 * Syntax (precedence low to high):
 *   a || b;  a && b;  !a;  == != < <= > >= , x in [v1, v2, ...];
 *   + - ;  * / % ;  unary - ;  primary
 * primary: literals (123, 1.5, "str" or 'str' with \" \\ \n \t escapes,
 *   true, false, null), field names ([A-Za-z_][A-Za-z0-9_]*, or `any name`
 *   in backquotes), (expr), function calls f(args).
 * Functions: if(c,a,b) coalesce(a,b,...) lower upper len contains
 *   starts_with ends_with substr(s,start[,len]) split_index(s,sep,i)
 *   regex_extract(s,pattern[,group]) abs round(x[,digits]) hour(ts)
 *   casts: int(x) float(x) string(x) bool(x) timestamp(x).
 * Aggregates (only through rv_expr_compile_agg): count() sum(x) min(x)
 *   max(x) avg(x).
 *
 * Semantics: any null operand gives null, except `&&`/`||` (three-valued
 * logic: false && null = false, true || null = true), if() (a null
 * condition picks the else branch), coalesce(), and `in` with a null
 * left side (null). Integer + - * wrap in two's complement (never UB);
 * integer / and % by zero give null; float division by zero follows
 * IEEE 754 (inf/nan). int op float promotes to float. Comparisons need
 * compatible types (numbers with numbers, strings with strings, bools,
 * timestamps with timestamps or ints). Timestamps are int64 epoch ms:
 * ts + int and ts - int give a timestamp, ts - ts an int.
 *
 * Threads: a compiled rv_expr holds scratch buffers, so one rv_expr is
 * used by one thread at a time; compile one per subtask. */
#ifndef RV_EXPR_H
#define RV_EXPR_H

#include <stddef.h>

#include "rv_batch.h"
#include "rv_err.h"
#include "rv_schema.h"

typedef struct rv_expr rv_expr;

/* Compiles src against the fields of `in`. On error returns an error whose
 * message describes the problem without position, and stores the byte
 * offset in src where it was found in *err_offset (if not NULL); callers
 * turn that into "file:line:col". */
rv_err *rv_expr_compile(const char *src, const rv_schema *in, rv_expr **out, size_t *err_offset);
void rv_expr_free(rv_expr *e);

rv_type rv_expr_type(const rv_expr *e);
/* If the expression is a bare field reference, its field name; else NULL. */
const char *rv_expr_field_name(const rv_expr *e);
/* True when the expression reads no field (a constant). */
bool rv_expr_is_const(const rv_expr *e);

/* Evaluates e over all rows of `in` into `out`, which the caller has
 * initialised with rv_col_init(out, rv_expr_type(e), ...); it is reset and
 * grown as needed, and holds in->nrows rows afterwards. A result of type
 * NULL (the literal null) is written as an all-null column of type given
 * at init. Returns RV_OK (evaluation never fails; bad operations yield
 * null as documented). */
rv_code rv_expr_eval(rv_expr *e, const rv_batch *in, rv_column *out);

/* Evaluates a boolean expression into a selection vector: writes the
 * indices of rows where it is true (null counts as false) to sel (capacity
 * in->nrows) and returns their count. */
uint32_t rv_expr_select(rv_expr *e, const rv_batch *in, uint32_t *sel);

/* Aggregate expressions: `src` may contain aggregate calls (count() sum(x)
 * min(x) max(x) avg(x) first(x) last(x) count_distinct(x)
 * approx_count_distinct(x)) combined with ordinary operators and literals,
 * e.g. "sum(requests) / 10". Fields may appear only inside aggregate
 * calls; aggregates may not nest. */
typedef enum {
    RV_AGG_COUNT,
    RV_AGG_SUM,
    RV_AGG_MIN,
    RV_AGG_MAX,
    RV_AGG_AVG,
    RV_AGG_FIRST,
    RV_AGG_LAST,
    RV_AGG_COUNT_DISTINCT,
    RV_AGG_APPROX_COUNT_DISTINCT,
} rv_agg_kind;

typedef struct rv_agg_call {
    rv_agg_kind kind;
    rv_expr *arg;       /* compiled against `in`; NULL for count() */
    rv_type arg_type;   /* RV_T_NULL for count() */
    rv_type result_type; /* count, count_distinct, approx_count_distinct: int64; sum: int64 or float64;
                            min/max/first/last: arg type; avg: float64 */
} rv_agg_call;

typedef struct rv_agg_expr {
    int ncalls;
    rv_agg_call *calls;
    /* The outer expression over a schema with one field per call, named
     * "$0", "$1", ... of the calls' result types; evaluate it on a batch
     * of that schema (final_schema) holding the finished aggregates. */
    rv_expr *final;
    rv_schema *final_schema;
} rv_agg_expr;

rv_err *rv_expr_compile_agg(const char *src, const rv_schema *in, rv_agg_expr **out, size_t *err_offset);
void rv_agg_expr_free(rv_agg_expr *a);

#endif
