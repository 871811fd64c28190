/* rv_expr_check: name resolution and type checking of a parsed expression
 * tree, then the rewrites that make evaluation simple and fast. After this
 * pass every node has a concrete type; the operands of an arithmetic or
 * comparison node share one storage type (an int64 operand meeting a
 * float64 one is wrapped in an implicit float() conversion); `in` lists are
 * converted to sorted arrays; regex patterns are compiled; constant
 * subtrees are folded into literals (by evaluating them on a one-row batch,
 * so folding cannot disagree with evaluation); and a comparison with a
 * literal on the left is mirrored so the literal is on the right. Errors
 * carry the byte offset of the offending token or node. */
#include <assert.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "rv_config.h"
#include "rv_expr_internal.h"
#include "rv_mem.h"

__attribute__((format(printf, 4, 5)))
static rv_err *errf(rv_echeck *c, size_t off, rv_code code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = rv_xvasprintf(fmt, ap);
    va_end(ap);
    rv_err *err = rv_err_new(code, "%s", msg);
    free(msg);
    c->err_offset = off;
    return err;
}

static const char *op_text(int op)
{
    switch (op) {
    case RV_OP_OR: return "||";
    case RV_OP_AND: return "&&";
    case RV_OP_EQ: return "==";
    case RV_OP_NE: return "!=";
    case RV_OP_LT: return "<";
    case RV_OP_LE: return "<=";
    case RV_OP_GT: return ">";
    case RV_OP_GE: return ">=";
    case RV_OP_ADD: return "+";
    case RV_OP_SUB: return "-";
    case RV_OP_MUL: return "*";
    case RV_OP_DIV: return "/";
    case RV_OP_MOD: return "%";
    case RV_OP_NOT: return "!";
    case RV_OP_NEG: return "-";
    }
    return "?";
}

static const char *op_verb(int op)
{
    switch (op) {
    case RV_OP_ADD: return "add";
    case RV_OP_SUB: return "subtract";
    case RV_OP_MUL: return "multiply";
    case RV_OP_DIV: return "divide";
    default: return "take the remainder of";
    }
}

static bool is_num(rv_type t) { return t == RV_T_INT64 || t == RV_T_FLOAT64; }
static bool is_lit(const rv_enode *n) { return n->kind == RV_EN_LIT; }
static bool is_null_lit(const rv_enode *n) { return n->kind == RV_EN_LIT && n->is_null; }

/* "string", "int64 or float64", ... for a type mask. */
static const char *mask_text(unsigned mask, char *buf, size_t cap)
{
    if (mask == RV_TM_NUM)
        return "a number";
    size_t off = 0;
    buf[0] = '\0';
    int n = 0, total = __builtin_popcount(mask), k = 0;
    for (int t = RV_T_BOOL; t < RV_T_COUNT; t++) {
        if (!(mask & RV_TM(t)))
            continue;
        k++;
        const char *sep = n == 0 ? "" : k == total ? " or " : ", ";
        off += (size_t)snprintf(buf + off, off < cap ? cap - off : 0, "%s%s", sep, rv_type_name((rv_type)t));
        n++;
    }
    return buf;
}

/* A literal replacing n (same source range); n is freed. */
static rv_enode *null_lit_for(rv_enode *n, rv_type t)
{
    rv_enode *l = rv_enode_new(RV_EN_LIT, n->pos);
    l->end = n->end;
    l->type = t;
    l->is_null = true;
    l->null_byte = 1;
    rv_enode_free(n);
    return l;
}

/* Wraps *slot in an implicit conversion (float() or timestamp()). */
static void convert(rv_enode **slot, rv_efn fn, rv_type t)
{
    rv_enode *n = rv_enode_new(RV_EN_CALL, (*slot)->pos);
    n->end = (*slot)->end;
    n->op = fn;
    n->implicit = true;
    n->type = t;
    n->args = rv_xmalloc(sizeof(*n->args));
    n->args[0] = *slot;
    n->nargs = 1;
    n->height = (*slot)->height + 1;
    *slot = n;
}

/* Converts *slot (an int64 node) to float64. */
static void to_float(rv_enode **slot)
{
    rv_enode *a = *slot;
    if (a->type == RV_T_FLOAT64)
        return;
    if (is_lit(a)) {
        if (!a->is_null)
            a->f = (double)a->i;
        a->type = RV_T_FLOAT64;
        return;
    }
    convert(slot, RV_FN_FLOAT, RV_T_FLOAT64);
}

/* The common type of two values that may meet in if()/coalesce(), or
 * RV_T_NULL with *ok false when there is none. */
static rv_type unify(rv_type a, rv_type b, bool *ok)
{
    *ok = true;
    if (a == b || b == RV_T_NULL)
        return a;
    if (a == RV_T_NULL)
        return b;
    if (is_num(a) && is_num(b))
        return RV_T_FLOAT64;
    if (rv_type_is_int(a) && rv_type_is_int(b))
        return RV_T_TIMESTAMP;
    *ok = false;
    return RV_T_NULL;
}

/* Gives *slot type t (a unify() result): retypes null literals and
 * converts int64 to float64. */
static void coerce(rv_enode **slot, rv_type t)
{
    rv_enode *a = *slot;
    if (a->type == t)
        return;
    if (is_null_lit(a) || (is_lit(a) && t == RV_T_TIMESTAMP))
        a->type = t;
    else if (t == RV_T_FLOAT64)
        to_float(slot);
    else
        convert(slot, RV_FN_TIMESTAMP, t); /* a view: int64 and timestamp share storage */
}

static rv_err *check_node(rv_echeck *c, rv_enode **np);

static rv_err *unknown_field(rv_echeck *c, const rv_enode *n, const rv_schema *s)
{
    static const char *const keywords[] = {"true", "false", "null", "in"};
    const char *hint = NULL;
    for (size_t k = 0; k < 4 && !hint; k++)
        if (strcasecmp(n->name, keywords[k]) == 0)
            hint = keywords[k];
    const char **names = rv_xcalloc((size_t)s->nfields + 1, sizeof(*names));
    for (int k = 0; k < s->nfields; k++)
        names[k] = s->fields[k].name;
    if (!hint)
        hint = rv_suggest(n->name, names, (size_t)s->nfields);
    rv_err *err = hint ? errf(c, n->pos, RV_ERR_NOT_FOUND, "unknown field '%s' (did you mean '%s'?)", n->name, hint)
                       : errf(c, n->pos, RV_ERR_NOT_FOUND, "unknown field '%s'", n->name);
    free(names);
    return err;
}

static rv_err *check_field(rv_echeck *c, rv_enode *n)
{
    if (n->synthetic) {
        n->type = c->agg_schema->fields[n->field].type;
        return NULL;
    }
    int idx = rv_schema_find(c->in, n->name);
    if (idx < 0)
        return unknown_field(c, n, c->in);
    if (c->agg_schema)
        return errf(c, n->pos, RV_ERR_TYPE, "field '%s' must be inside an aggregate such as sum(%s)", n->name,
                    n->name);
    n->field = idx;
    n->type = c->in->fields[idx].type;
    return NULL;
}

static rv_err *check_unary(rv_echeck *c, rv_enode *n)
{
    rv_type t = n->args[0]->type;
    if (n->op == RV_OP_NOT) {
        if (t != RV_T_BOOL && t != RV_T_NULL)
            return errf(c, n->op_pos, RV_ERR_TYPE, "operator '!' needs a bool operand, got %s", rv_type_name(t));
        n->type = RV_T_BOOL;
        return NULL;
    }
    if (!is_num(t) && t != RV_T_NULL)
        return errf(c, n->op_pos, RV_ERR_TYPE, "operator '-' needs a number, got %s", rv_type_name(t));
    n->type = t;
    return NULL;
}

static rv_err *check_binary(rv_echeck *c, rv_enode *n)
{
    rv_type l = n->args[0]->type, r = n->args[1]->type;
    int op = n->op;
    if (op == RV_OP_AND || op == RV_OP_OR) {
        rv_type bad = l != RV_T_BOOL && l != RV_T_NULL ? l : r != RV_T_BOOL && r != RV_T_NULL ? r : RV_T_NULL;
        if (bad != RV_T_NULL)
            return errf(c, n->op_pos, RV_ERR_TYPE, "operator '%s' needs bool operands, got %s", op_text(op),
                        rv_type_name(bad));
        n->type = RV_T_BOOL;
        return NULL;
    }
    /* A null operand stands for a null of the other operand's type. */
    rv_type lt = l == RV_T_NULL ? r : l, rt = r == RV_T_NULL ? l : r;
    if (op >= RV_OP_EQ && op <= RV_OP_GE) {
        bool ok = lt == rt || lt == RV_T_NULL || (is_num(lt) && is_num(rt)) ||
                  (rv_type_is_int(lt) && rv_type_is_int(rt));
        if (!ok)
            return errf(c, n->op_pos, RV_ERR_TYPE, "operator '%s' cannot compare %s and %s", op_text(op),
                        rv_type_name(l), rv_type_name(r));
        if (lt == RV_T_FLOAT64 || rt == RV_T_FLOAT64) {
            to_float(&n->args[0]);
            to_float(&n->args[1]);
        }
        n->type = RV_T_BOOL;
        return NULL;
    }
    rv_type res = RV_T_NULL;
    bool ok = true;
    if (l == RV_T_NULL || r == RV_T_NULL) {
        /* The result is null; only the other side's type is checked. */
        res = lt;
        ok = lt == RV_T_NULL || is_num(lt) || (op == RV_OP_ADD && lt == RV_T_STRING) ||
             (op <= RV_OP_SUB && lt == RV_T_TIMESTAMP);
    } else if (lt == RV_T_INT64 && rt == RV_T_INT64)
        res = RV_T_INT64;
    else if (is_num(lt) && is_num(rt))
        res = RV_T_FLOAT64;
    else if (op == RV_OP_ADD && lt == RV_T_STRING && rt == RV_T_STRING)
        res = RV_T_STRING;
    else if (op == RV_OP_ADD && rv_type_is_int(lt) && rv_type_is_int(rt) && lt != rt)
        res = RV_T_TIMESTAMP;
    else if (op == RV_OP_SUB && lt == RV_T_TIMESTAMP && rt == RV_T_INT64)
        res = RV_T_TIMESTAMP;
    else if (op == RV_OP_SUB && lt == RV_T_TIMESTAMP && rt == RV_T_TIMESTAMP)
        res = RV_T_INT64;
    else
        ok = false;
    if (!ok)
        return errf(c, n->op_pos, RV_ERR_TYPE, "operator '%s' cannot %s %s and %s", op_text(op), op_verb(op),
                    rv_type_name(l), rv_type_name(r));
    if (res == RV_T_FLOAT64) {
        to_float(&n->args[0]);
        to_float(&n->args[1]);
    }
    n->type = res;
    return NULL;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int cmp_f64(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static rv_err *check_in(rv_echeck *c, rv_enode *n)
{
    rv_type lt = n->args[0]->type;
    bool any_float = false;
    for (int k = 1; k < n->nargs; k++) {
        rv_enode *it = n->args[k];
        if (!is_lit(it))
            return errf(c, it->pos, RV_ERR_TYPE, "'in' list items must be literals");
        if (it->is_null)
            return errf(c, it->pos, RV_ERR_TYPE, "null is not allowed in an 'in' list");
        rv_type t = it->type;
        bool ok = lt == RV_T_NULL || t == lt || (is_num(t) && is_num(lt)) ||
                  (rv_type_is_int(t) && rv_type_is_int(lt));
        if (!ok)
            return errf(c, it->pos, RV_ERR_TYPE, "'in' list item of type %s does not match %s", rv_type_name(t),
                        rv_type_name(lt));
        any_float |= t == RV_T_FLOAT64;
    }
    n->type = RV_T_BOOL;
    if (lt == RV_T_NULL)
        return NULL; /* folded to null by the caller */
    if (lt == RV_T_INT64 && any_float)
        to_float(&n->args[0]);
    lt = n->args[0]->type;
    int m = n->nargs - 1;
    n->nlist = 0;
    if (lt == RV_T_FLOAT64) {
        n->list_f = rv_xcalloc((size_t)m + 1, sizeof(double));
        for (int k = 0; k < m; k++) {
            const rv_enode *it = n->args[k + 1];
            double v = it->type == RV_T_FLOAT64 ? it->f : (double)it->i;
            if (!isnan(v)) /* NaN equals nothing */
                n->list_f[n->nlist++] = v;
        }
        qsort(n->list_f, (size_t)n->nlist, sizeof(double), cmp_f64);
    } else if (lt == RV_T_STRING) {
        n->list_s = rv_xcalloc((size_t)m + 1, sizeof(char *));
        n->list_len = rv_xcalloc((size_t)m + 1, sizeof(uint32_t));
        for (int k = 0; k < m; k++) {
            const rv_enode *it = n->args[k + 1];
            n->list_s[k] = it->str ? it->str : (char *)"";
            n->list_len[k] = it->soff[1];
        }
        n->nlist = m;
    } else {
        n->list_i = rv_xcalloc((size_t)m + 1, sizeof(int64_t));
        for (int k = 0; k < m; k++) {
            const rv_enode *it = n->args[k + 1];
            n->list_i[k] = lt == RV_T_BOOL ? (int64_t)it->b : it->i;
        }
        n->nlist = m;
        qsort(n->list_i, (size_t)m, sizeof(int64_t), cmp_i64);
    }
    return NULL;
}

static rv_err *check_regex(rv_echeck *c, rv_enode *n)
{
    rv_enode *pat = n->args[1];
    if (!is_lit(pat) || pat->is_null)
        return errf(c, pat->pos, RV_ERR_TYPE, "regex_extract pattern must be a string literal");
    n->re = rv_xcalloc(1, sizeof(regex_t));
    int rc = regcomp(n->re, pat->str ? pat->str : "", REG_EXTENDED);
    if (rc != 0) {
        char msg[128];
        regerror(rc, n->re, msg, sizeof(msg));
        free(n->re);
        n->re = NULL;
        return errf(c, pat->pos, RV_ERR_TYPE, "invalid regular expression '%s': %s", pat->str ? pat->str : "", msg);
    }
    int64_t ngroups = (int64_t)n->re->re_nsub;
    if (n->nargs == 3) {
        rv_enode *g = n->args[2];
        if (!is_lit(g) || g->is_null)
            return errf(c, g->pos, RV_ERR_TYPE, "regex_extract group must be an integer literal");
        if (g->i < 0 || g->i > ngroups)
            return errf(c, g->pos, RV_ERR_TYPE, "regex_extract group %lld is out of range: the pattern has %lld group%s",
                        (long long)g->i, (long long)ngroups, ngroups == 1 ? "" : "s");
        n->group = (int)g->i;
    } else {
        n->group = ngroups >= 1 ? 1 : 0;
    }
    n->pm = rv_xcalloc((size_t)n->group + 1, sizeof(regmatch_t));
    n->type = RV_T_STRING;
    return NULL;
}

static rv_err *check_call(rv_echeck *c, rv_enode *n)
{
    const rv_efunc_info *fi = rv_efunc_find(n->name);
    if (!fi) {
        size_t nn = 0;
        const char *const *names = rv_efunc_names(&nn);
        const char *hint = rv_suggest(n->name, names, nn);
        if (hint)
            return errf(c, n->pos, RV_ERR_NOT_FOUND, "unknown function '%s' (did you mean '%s'?)", n->name, hint);
        return errf(c, n->pos, RV_ERR_NOT_FOUND, "unknown function '%s'", n->name);
    }
    if (fi->agg)
        return errf(c, n->pos, RV_ERR_TYPE, "aggregate %s() is only allowed in window aggregates", fi->name);
    n->op = fi->fn;
    int na = n->nargs;
    if (na < fi->min_args || (fi->max_args >= 0 && na > fi->max_args)) {
        if (fi->max_args < 0)
            return errf(c, n->pos, RV_ERR_TYPE, "function %s expects at least %d argument%s, got %d", fi->name,
                        fi->min_args, fi->min_args == 1 ? "" : "s", na);
        if (fi->max_args == fi->min_args)
            return errf(c, n->pos, RV_ERR_TYPE, "function %s expects %d argument%s, got %d", fi->name,
                        fi->min_args, fi->min_args == 1 ? "" : "s", na);
        return errf(c, n->pos, RV_ERR_TYPE, "function %s expects %d or %d arguments, got %d", fi->name, fi->min_args,
                    fi->max_args, na);
    }
    for (int k = 0; k < na; k++) {
        rv_err *err = check_node(c, &n->args[k]);
        if (err)
            return err;
        unsigned mask = fi->arg_mask[k < 3 ? k : 2];
        rv_type t = n->args[k]->type;
        if (t != RV_T_NULL && !(mask & RV_TM(t))) {
            char buf[64];
            return errf(c, n->args[k]->pos, RV_ERR_TYPE, "function %s argument %d must be %s, got %s", fi->name,
                        k + 1, mask_text(mask, buf, sizeof(buf)), rv_type_name(t));
        }
    }
    rv_type a0 = na > 0 ? n->args[0]->type : RV_T_NULL;
    bool ok = true;
    switch (fi->fn) {
    case RV_FN_IF: {
        rv_type t = unify(n->args[1]->type, n->args[2]->type, &ok);
        if (!ok)
            return errf(c, n->args[2]->pos, RV_ERR_TYPE, "if() branches have incompatible types %s and %s",
                        rv_type_name(n->args[1]->type), rv_type_name(n->args[2]->type));
        coerce(&n->args[1], t);
        coerce(&n->args[2], t);
        n->type = t;
        return NULL;
    }
    case RV_FN_COALESCE: {
        rv_type t = RV_T_NULL;
        for (int k = 0; k < na; k++) {
            rv_type u = unify(t, n->args[k]->type, &ok);
            if (!ok)
                return errf(c, n->args[k]->pos, RV_ERR_TYPE, "coalesce() arguments have incompatible types %s and %s",
                            rv_type_name(t), rv_type_name(n->args[k]->type));
            t = u;
        }
        for (int k = 0; k < na; k++)
            coerce(&n->args[k], t);
        n->type = t;
        return NULL;
    }
    case RV_FN_LOWER:
    case RV_FN_UPPER:
    case RV_FN_SUBSTR:
    case RV_FN_SPLIT_INDEX:
    case RV_FN_STRING: n->type = RV_T_STRING; return NULL;
    case RV_FN_LEN:
    case RV_FN_HOUR:
    case RV_FN_INT: n->type = RV_T_INT64; return NULL;
    case RV_FN_CONTAINS:
    case RV_FN_STARTS_WITH:
    case RV_FN_ENDS_WITH:
    case RV_FN_BOOL: n->type = RV_T_BOOL; return NULL;
    case RV_FN_FLOAT: n->type = RV_T_FLOAT64; return NULL;
    case RV_FN_TIMESTAMP: n->type = RV_T_TIMESTAMP; return NULL;
    case RV_FN_ABS:
    case RV_FN_ROUND: n->type = a0; return NULL;
    case RV_FN_REGEX_EXTRACT: return check_regex(c, n);
    default: break;
    }
    return errf(c, n->pos, RV_ERR_INTERNAL, "function %s has no type rule", fi->name);
}

/* Evaluates a node whose operands are all literals and returns the
 * literal that replaces it. */
static rv_enode *fold_eval(rv_enode *n)
{
    rv_batch one;
    memset(&one, 0, sizeof(one));
    one.nrows = 1;
    rv_vec v;
    rv_enode_eval(n, &one, NULL, &v);
    rv_enode *l = rv_enode_new(RV_EN_LIT, n->pos);
    l->end = n->end;
    l->type = n->type;
    if (rv_vec_null(&v, 0)) {
        l->is_null = true;
        l->null_byte = 1;
    } else {
        switch (n->type) {
        case RV_T_BOOL: l->b = v.d.b[0] != 0; break;
        case RV_T_INT64:
        case RV_T_TIMESTAMP: l->i = v.d.i[0]; break;
        case RV_T_FLOAT64: l->f = v.d.f[0]; break;
        case RV_T_STRING: {
            uint32_t len;
            const char *p = rv_vec_str(&v, 0, &len);
            l->str = rv_xstrndup(p, len);
            l->soff[1] = len;
            break;
        }
        case RV_T_NULL: l->is_null = true; l->null_byte = 1; break;
        }
    }
    rv_enode_free(n);
    return l;
}

/* Replaces n by its argument k (freeing the rest). */
static rv_enode *take_arg(rv_enode *n, int k)
{
    rv_enode *a = n->args[k];
    n->args[k] = NULL;
    if (is_null_lit(a))
        a->type = n->type;
    assert(a->type == n->type);
    rv_enode_free(n);
    return a;
}

static bool lit_bool(const rv_enode *n, bool v) { return is_lit(n) && !n->is_null && n->b == v; }

static rv_enode *fold(rv_enode *n)
{
    if (n->kind == RV_EN_LIT || n->kind == RV_EN_FIELD)
        return n;
    if (n->type == RV_T_NULL)
        return null_lit_for(n, RV_T_NULL);
    bool strict = true, all_lit = true, any_null = false;
    for (int k = 0; k < n->nargs; k++) {
        all_lit &= is_lit(n->args[k]);
        any_null |= is_null_lit(n->args[k]);
    }
    if (n->kind == RV_EN_IN) {
        any_null = is_null_lit(n->args[0]);
        all_lit = is_lit(n->args[0]);
    } else if (n->kind == RV_EN_BINARY && (n->op == RV_OP_AND || n->op == RV_OP_OR)) {
        strict = false;
        bool absorb = n->op == RV_OP_OR; /* true || x = true; false && x = false */
        for (int k = 0; k < 2; k++)
            if (lit_bool(n->args[k], absorb))
                return take_arg(n, k);
        for (int k = 0; k < 2; k++)
            if (lit_bool(n->args[k], !absorb))
                return take_arg(n, 1 - k);
    } else if (n->kind == RV_EN_CALL && n->op == RV_FN_IF) {
        strict = false;
        rv_enode *cond = n->args[0];
        if (is_lit(cond))
            return take_arg(n, !cond->is_null && cond->b ? 1 : 2);
    } else if (n->kind == RV_EN_CALL && n->op == RV_FN_COALESCE) {
        strict = false;
        int w = 0;
        for (int k = 0; k < n->nargs; k++) {
            if (is_null_lit(n->args[k]))
                rv_enode_free(n->args[k]);
            else
                n->args[w++] = n->args[k];
        }
        n->nargs = w;
        if (w == 0)
            return null_lit_for(n, n->type);
        if (w == 1 || is_lit(n->args[0]))
            return take_arg(n, 0);
    }
    if (strict && any_null)
        return null_lit_for(n, n->type);
    if (all_lit)
        return fold_eval(n);
    return n;
}

/* Puts a literal operand of a comparison or of a commutative arithmetic
 * operator on the right, where the evaluator has its fast loops. */
static void literal_right(rv_enode *n)
{
    if (n->kind != RV_EN_BINARY || !is_lit(n->args[0]) || is_lit(n->args[1]))
        return;
    int op = n->op;
    switch (op) {
    case RV_OP_LT: op = RV_OP_GT; break;
    case RV_OP_LE: op = RV_OP_GE; break;
    case RV_OP_GT: op = RV_OP_LT; break;
    case RV_OP_GE: op = RV_OP_LE; break;
    case RV_OP_EQ:
    case RV_OP_NE:
    case RV_OP_MUL: break;
    case RV_OP_ADD:
        if (n->type == RV_T_STRING)
            return;
        break;
    default: return;
    }
    rv_enode *t = n->args[0];
    n->args[0] = n->args[1];
    n->args[1] = t;
    n->op = op;
}

static rv_err *check_node(rv_echeck *c, rv_enode **np)
{
    rv_enode *n = *np;
    rv_err *err = NULL;
    switch (n->kind) {
    case RV_EN_LIT: return NULL;
    case RV_EN_FIELD: return check_field(c, n);
    case RV_EN_CALL: err = check_call(c, n); break;
    default:
        for (int k = 0; k < n->nargs && !err; k++)
            err = check_node(c, &n->args[k]);
        if (err)
            return err;
        if (n->kind == RV_EN_UNARY)
            err = check_unary(c, n);
        else if (n->kind == RV_EN_BINARY)
            err = check_binary(c, n);
        else
            err = check_in(c, n);
        break;
    }
    if (err)
        return err;
    n = fold(n);
    literal_right(n);
    *np = n;
    return NULL;
}

rv_err *rv_expr_check(rv_echeck *c, rv_enode **root) { return check_node(c, root); }
