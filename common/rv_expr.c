/* rv_expr: the public face of the expression compiler (see rv_expr.h for
 * the language). Compiling parses (rv_expr_parse.c), checks and folds
 * (rv_expr_check.c); evaluation is vectorised (rv_expr_eval.c,
 * rv_expr_func.c). This comment completes the specification in rv_expr.h
 * with the details it leaves open:
 *
 * - Errors: syntax errors are RV_ERR_PARSE, unknown fields and functions
 *   RV_ERR_NOT_FOUND (with a "did you mean" suggestion when one is close),
 *   type errors RV_ERR_TYPE. The offset points at the operator token for
 *   operator errors, at the field or function name, or at the offending
 *   argument or list item.
 * - Literals: integers are decimal; one that does not fit int64 is an error
 *   (-9223372036854775808 is accepted: a '-' before a number literal is
 *   part of it). Floats need digits on both sides of '.', or an exponent.
 *   Strings also accept \' and \r. `count(*)` means count().
 * - Comparisons do not chain (`a < b < c` is an error). int64 meets float64
 *   as float64; timestamps compare with timestamps or ints. Strings compare
 *   bytewise (memcmp, then length). Bools compare false < true.
 * - `+` also concatenates two strings. Integer % takes the sign of the
 *   dividend (as C and Java); INT64_MIN / -1 wraps to INT64_MIN. float %
 *   is fmod().
 * - `x in [..]`: items are literals (constant expressions that fold to one
 *   are accepted) of a type comparable with x; null items are an error.
 * - if(c,a,b) and coalesce() unify their branches: equal types, null with
 *   anything, int64 with float64 (float64), int64 with timestamp
 *   (timestamp).
 * - lower/upper map ASCII letters only; len counts bytes; contains,
 *   starts_with and ends_with with an empty pattern are true.
 * - substr(s, start[, len]) is 1-based like SQL: substr("hello",2,3) =
 *   "ell". start < 1, start > len(s), or len <= 0 give ""; len past the end
 *   is clipped; no len means to the end.
 * - split_index(s, sep, i) is 0-based like Flink's SPLIT_INDEX; i < 0, i
 *   past the last piece, or an empty separator give null.
 * - regex_extract(s, pattern[, group]) uses POSIX extended regular
 *   expressions. The pattern must be a string literal, compiled once; a
 *   bad pattern is a compile error. group must be an integer literal
 *   between 0 (whole match) and the number of groups; the default is 1, or
 *   0 when the pattern has no group. No match, or a group that took no
 *   part in the match, gives null. Rows are matched up to their first NUL.
 * - abs(INT64_MIN) wraps to INT64_MIN. round(x) rounds half away from
 *   zero; round(x, d) to d decimal digits (d < 0 rounds to tens,
 *   hundreds...); round of an int64 is an int64.
 * - hour(ts) is the hour of day in UTC, 0-23, also for times before 1970;
 *   it accepts int64 epoch ms too.
 * - int(x): float64 truncates toward zero (NaN and out of range give
 *   null); strings parse as optionally signed decimal integers with
 *   surrounding blanks allowed (anything else, or overflow, gives null);
 *   bool gives 0/1; timestamp its epoch ms. float(x): strings parse with
 *   strtod (whole string but surrounding blanks; "inf" and "nan" too). bool(x): numbers are != 0 (NaN gives null);
 *   strings "true"/"false" (any case) and "1"/"0", else null.
 *   string(x): bool as true/false, ints and timestamps in decimal (epoch
 *   ms), floats as the shortest of %.15g/%.16g/%.17g that reads back
 *   exactly. timestamp(x): ints are epoch ms, floats truncate, strings are
 *   ISO-8601: YYYY-MM-DD, optionally followed by T (or t or a space)
 *   HH:MM[:SS[.fraction]] and Z or an offset +HH[:MM]; no offset means
 *   UTC; fractions beyond milliseconds are truncated; anything else gives
 *   null.
 * - Constant subexpressions are computed once at compile time, so
 *   rv_expr_is_const() is also true for e.g. `x + null` (always null).
 * - Aggregates: count() counts rows, count(x) non-null values of x. sum of
 *   int64 is int64, of float64 float64; avg is float64; min and max take
 *   int64, float64, timestamp or string and keep the type. Identical calls
 *   (same source text) share one slot. */
#include "rv_expr.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rv_expr_internal.h"
#include "rv_mem.h"

struct rv_expr {
    rv_enode *root;
    rv_type type;
};

/* Checks a parsed tree (taking it) and wraps it into an rv_expr. */
static rv_err *compile_tree(rv_enode *root, const rv_schema *in, const rv_schema *agg_schema, rv_expr **out,
                            size_t *err_offset)
{
    rv_echeck c;
    memset(&c, 0, sizeof(c));
    c.in = in;
    c.agg_schema = agg_schema;
    rv_err *err = rv_expr_check(&c, &root);
    if (err) {
        rv_enode_free(root);
        if (err_offset)
            *err_offset = c.err_offset;
        return err;
    }
    rv_expr *e = rv_xcalloc(1, sizeof(*e));
    e->root = root;
    e->type = root->type;
    *out = e;
    return NULL;
}

rv_err *rv_expr_compile(const char *src, const rv_schema *in, rv_expr **out, size_t *err_offset)
{
    assert(src && in && out);
    rv_enode *root = NULL;
    rv_err *err = rv_expr_parse(src, &root, err_offset);
    if (err)
        return err;
    return compile_tree(root, in, NULL, out, err_offset);
}

void rv_expr_free(rv_expr *e)
{
    if (!e)
        return;
    rv_enode_free(e->root);
    free(e);
}

rv_type rv_expr_type(const rv_expr *e) { return e->type; }

const char *rv_expr_field_name(const rv_expr *e)
{
    return e->root->kind == RV_EN_FIELD ? e->root->name : NULL;
}

bool rv_expr_is_const(const rv_expr *e) { return e->root->kind == RV_EN_LIT; }

rv_code rv_expr_eval(rv_expr *e, const rv_batch *in, rv_column *out)
{
    assert(e->type == RV_T_NULL || out->type == e->type ||
           (rv_type_is_int(out->type) && rv_type_is_int(e->type)));
    rv_enode_eval_root(e->root, in, out);
    return RV_OK;
}

uint32_t rv_expr_select(rv_expr *e, const rv_batch *in, uint32_t *sel)
{
    assert(e->type == RV_T_BOOL || e->type == RV_T_NULL);
    uint32_t n = in->nrows, k = 0;
    rv_vec v;
    rv_enode_eval(e->root, in, NULL, &v);
    if (!v.m) {
        if (rv_vec_null(&v, 0) || !v.d.b[0])
            return 0;
        for (uint32_t i = 0; i < n; i++)
            sel[i] = i;
        return n;
    }
    /* Branch-free: always write, advance only on a selected row. */
    const uint8_t *b = v.d.b, *nl = v.nulls;
    if (!nl) {
        for (uint32_t i = 0; i < n; i++) {
            sel[k] = i;
            k += b[i] != 0;
        }
    } else {
        for (uint32_t i = 0; i < n; i++) {
            sel[k] = i;
            k += (b[i] != 0) & !nl[i];
        }
    }
    return k;
}

/* ---- aggregate expressions ---- */

typedef struct agg_build {
    const char *src;
    const rv_schema *in;
    rv_agg_expr *a;
    size_t *span_pos, *span_len; /* source text of each call, for sharing */
    size_t err_offset;
} agg_build;

static const rv_efunc_info *agg_info(const rv_enode *n)
{
    if (n->kind != RV_EN_CALL || !n->name)
        return NULL;
    const rv_efunc_info *fi = rv_efunc_find(n->name);
    return fi && fi->agg ? fi : NULL;
}

static const rv_enode *find_agg(const rv_enode *n)
{
    if (agg_info(n))
        return n;
    for (int k = 0; k < n->nargs; k++) {
        const rv_enode *f = find_agg(n->args[k]);
        if (f)
            return f;
    }
    return NULL;
}

static rv_err *agg_err(agg_build *ab, size_t off, rv_code code, const char *msg)
{
    ab->err_offset = off;
    return rv_err_new(code, "%s", msg);
}

static rv_type agg_result(rv_efn fn, rv_type t, bool *ok)
{
    *ok = true;
    switch (fn) {
    case RV_FN_COUNT: return RV_T_INT64;
    case RV_FN_SUM:
        *ok = t == RV_T_INT64 || t == RV_T_FLOAT64;
        return t;
    case RV_FN_AVG:
        *ok = t == RV_T_INT64 || t == RV_T_FLOAT64;
        return RV_T_FLOAT64;
    case RV_FN_FIRST:
    case RV_FN_LAST:
        *ok = t != RV_T_NULL;
        return t;
    case RV_FN_COUNT_DISTINCT:
    case RV_FN_APPROX_COUNT_DISTINCT:
        *ok = t != RV_T_NULL;
        return RV_T_INT64;
    default:
        *ok = t == RV_T_INT64 || t == RV_T_FLOAT64 || t == RV_T_TIMESTAMP || t == RV_T_STRING;
        return t;
    }
}

static rv_agg_kind agg_kind(rv_efn fn)
{
    switch (fn) {
    case RV_FN_COUNT: return RV_AGG_COUNT;
    case RV_FN_SUM: return RV_AGG_SUM;
    case RV_FN_MIN: return RV_AGG_MIN;
    case RV_FN_MAX: return RV_AGG_MAX;
    case RV_FN_FIRST: return RV_AGG_FIRST;
    case RV_FN_LAST: return RV_AGG_LAST;
    case RV_FN_COUNT_DISTINCT: return RV_AGG_COUNT_DISTINCT;
    case RV_FN_APPROX_COUNT_DISTINCT: return RV_AGG_APPROX_COUNT_DISTINCT;
    default: return RV_AGG_AVG;
    }
}

/* Compiles the aggregate call *np and replaces it with a reference to its
 * slot "$k"; recurses into other nodes. */
static rv_err *extract_aggs(agg_build *ab, rv_enode **np)
{
    rv_enode *n = *np;
    const rv_efunc_info *fi = agg_info(n);
    if (!fi) {
        for (int k = 0; k < n->nargs; k++) {
            rv_err *err = extract_aggs(ab, &n->args[k]);
            if (err)
                return err;
        }
        return NULL;
    }
    char msg[160];
    if (n->nargs < fi->min_args || n->nargs > fi->max_args) {
        if (fi->min_args == fi->max_args)
            snprintf(msg, sizeof(msg), "function %s expects %d argument%s, got %d", fi->name, fi->min_args,
                     fi->min_args == 1 ? "" : "s", n->nargs);
        else
            snprintf(msg, sizeof(msg), "function %s expects %d or %d arguments, got %d", fi->name, fi->min_args,
                     fi->max_args, n->nargs);
        return agg_err(ab, n->pos, RV_ERR_TYPE, msg);
    }
    if (n->nargs == 1) {
        const rv_enode *inner = find_agg(n->args[0]);
        if (inner) {
            snprintf(msg, sizeof(msg), "aggregate %s() cannot be nested inside %s()", inner->name, fi->name);
            return agg_err(ab, inner->pos, RV_ERR_TYPE, msg);
        }
    }
    rv_agg_expr *a = ab->a;
    size_t len = n->end - n->pos;
    int slot = -1;
    for (int k = 0; k < a->ncalls && slot < 0; k++)
        if (ab->span_len[k] == len && memcmp(ab->src + ab->span_pos[k], ab->src + n->pos, len) == 0)
            slot = k;
    if (slot < 0) {
        rv_expr *arg = NULL;
        rv_type at = RV_T_NULL;
        size_t arg_pos = n->pos;
        if (n->nargs == 1) {
            rv_enode *an = n->args[0];
            arg_pos = an->pos;
            n->nargs = 0; /* the argument now belongs to its own rv_expr */
            rv_err *err = compile_tree(an, ab->in, NULL, &arg, &ab->err_offset);
            if (err)
                return err;
            at = arg->type;
        }
        bool ok;
        rv_type rt = agg_result(fi->fn, at, &ok);
        if (!ok) {
            rv_expr_free(arg);
            snprintf(msg, sizeof(msg), "%s() needs %s, got %s", fi->name,
                     fi->fn == RV_FN_SUM || fi->fn == RV_FN_AVG                             ? "a number"
                     : fi->fn == RV_FN_MIN || fi->fn == RV_FN_MAX ? "a number, timestamp or string"
                                                                  : "a typed value (cast a bare null, e.g. int(null))",
                     rv_type_name(at));
            return agg_err(ab, arg_pos, RV_ERR_TYPE, msg);
        }
        size_t nc = (size_t)a->ncalls + 1;
        a->calls = rv_xrealloc(a->calls, nc * sizeof(rv_agg_call));
        ab->span_pos = rv_xrealloc(ab->span_pos, nc * sizeof(size_t));
        ab->span_len = rv_xrealloc(ab->span_len, nc * sizeof(size_t));
        slot = a->ncalls++;
        a->calls[slot] = (rv_agg_call){.kind = agg_kind(fi->fn), .arg = arg, .arg_type = at, .result_type = rt};
        ab->span_pos[slot] = n->pos;
        ab->span_len[slot] = len;
        char name[16];
        snprintf(name, sizeof(name), "$%d", slot);
        rv_schema_add(a->final_schema, name, rt);
    }
    rv_enode *ref = rv_enode_new(RV_EN_FIELD, n->pos);
    ref->end = n->end;
    ref->synthetic = true;
    ref->field = slot;
    ref->name = rv_xasprintf("$%d", slot);
    rv_enode_free(n);
    *np = ref;
    return NULL;
}

rv_err *rv_expr_compile_agg(const char *src, const rv_schema *in, rv_agg_expr **out, size_t *err_offset)
{
    assert(src && in && out);
    rv_enode *root = NULL;
    rv_err *err = rv_expr_parse(src, &root, err_offset);
    if (err)
        return err;
    agg_build ab;
    memset(&ab, 0, sizeof(ab));
    ab.src = src;
    ab.in = in;
    ab.a = rv_xcalloc(1, sizeof(rv_agg_expr));
    ab.a->final_schema = rv_schema_new();
    err = extract_aggs(&ab, &root);
    if (err) {
        rv_enode_free(root);
        if (err_offset)
            *err_offset = ab.err_offset;
    } else {
        err = compile_tree(root, in, ab.a->final_schema, &ab.a->final, err_offset);
    }
    free(ab.span_pos);
    free(ab.span_len);
    if (err) {
        rv_agg_expr_free(ab.a);
        return err;
    }
    *out = ab.a;
    return NULL;
}

void rv_agg_expr_free(rv_agg_expr *a)
{
    if (!a)
        return;
    for (int k = 0; k < a->ncalls; k++)
        rv_expr_free(a->calls[k].arg);
    free(a->calls);
    rv_expr_free(a->final);
    rv_schema_unref(a->final_schema);
    free(a);
}
