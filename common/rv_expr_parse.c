/* rv_expr_parse: the lexer and recursive-descent parser of the expression
 * language (grammar in rv_expr.h). It produces an untyped tree of rv_enode
 * in which every node records the byte range it came from, so that the
 * checker can point at the offending token. Names are not resolved here:
 * an identifier followed by '(' is a call, any other identifier (or a
 * backquoted name) a field. A '-' directly before a number literal is
 * folded into it, which makes -9223372036854775808 expressible. */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rv_expr_internal.h"
#include "rv_mem.h"

/* Limits that keep recursion (here, in the checker and the evaluator)
 * far from the end of the stack: parenthesis/unary nesting, and the
 * height of the tree, which chains such as a+b+c+... grow without nesting. */
#define MAX_DEPTH 200
#define MAX_HEIGHT 1000

typedef enum tok_kind {
    T_END, T_INT, T_FLOAT, T_STR, T_IDENT, T_QIDENT,
    T_LPAREN, T_RPAREN, T_LBRACK, T_RBRACK, T_COMMA,
    T_OR, T_AND, T_NOT, T_EQ, T_NE, T_LT, T_LE, T_GT, T_GE,
    T_PLUS, T_MINUS, T_STAR, T_SLASH, T_PERCENT,
} tok_kind;

typedef struct tok {
    tok_kind kind;
    size_t pos, end;
    uint64_t u;    /* T_INT magnitude */
    bool too_big;  /* T_INT above 2^63 */
    double f;      /* T_FLOAT */
    char *s;       /* T_STR decoded bytes, T_QIDENT name (owned) */
    size_t slen;
} tok;

typedef struct parser {
    const char *src;
    size_t len;
    size_t p;
    tok t;
    rv_err *err;
    size_t err_off;
    int depth;
} parser;

rv_enode *rv_enode_new(rv_enode_kind kind, size_t pos)
{
    rv_enode *n = rv_xcalloc(1, sizeof(*n));
    n->kind = kind;
    n->pos = pos;
    n->end = pos;
    n->op_pos = pos;
    n->field = -1;
    return n;
}

void rv_enode_free(rv_enode *n)
{
    if (!n)
        return;
    for (int k = 0; k < n->nargs; k++)
        rv_enode_free(n->args[k]);
    free(n->args);
    free(n->str);
    free(n->name);
    free(n->list_i);
    free(n->list_f);
    free(n->list_s);
    free(n->list_len);
    if (n->re) {
        regfree(n->re);
        free(n->re);
    }
    free(n->pm);
    free(n->buf);
    if (n->res_ready)
        rv_col_fini(&n->res);
    free(n->argv);
    free(n);
}

static void add_arg(rv_enode *n, rv_enode *a)
{
    n->args = rv_xrealloc(n->args, (size_t)(n->nargs + 1) * sizeof(*n->args));
    n->args[n->nargs++] = a;
    if (a->height + 1 > n->height)
        n->height = a->height + 1;
}

__attribute__((format(printf, 4, 5)))
static bool fail(parser *ps, size_t off, rv_code code, const char *fmt, ...)
{
    if (!ps->err) {
        va_list ap;
        va_start(ap, fmt);
        char *msg = rv_xvasprintf(fmt, ap);
        va_end(ap);
        ps->err = rv_err_new(code, "%s", msg);
        ps->err_off = off;
        free(msg);
    }
    return false;
}

/* Describes the current token for "found X" messages. */
static const char *tok_desc(const parser *ps, char *buf, size_t cap)
{
    const tok *t = &ps->t;
    if (t->kind == T_END)
        return "end of input";
    size_t n = t->end - t->pos;
    if (n > 40)
        n = 40;
    snprintf(buf, cap, "'%.*s'%s", (int)n, ps->src + t->pos, t->end - t->pos > 40 ? "..." : "");
    return buf;
}

static bool ident_start(int c) { return isalpha(c) || c == '_'; }
static bool ident_char(int c) { return isalnum(c) || c == '_'; }

static bool lex_number(parser *ps)
{
    const char *s = ps->src;
    size_t p = ps->p, start = p;
    tok *t = &ps->t;
    while (p < ps->len && isdigit((unsigned char)s[p]))
        p++;
    bool is_float = false;
    if (p + 1 < ps->len && s[p] == '.' && isdigit((unsigned char)s[p + 1])) {
        is_float = true;
        p++;
        while (p < ps->len && isdigit((unsigned char)s[p]))
            p++;
    }
    if (p < ps->len && (s[p] == 'e' || s[p] == 'E')) {
        size_t q = p + 1;
        if (q < ps->len && (s[q] == '+' || s[q] == '-'))
            q++;
        if (q < ps->len && isdigit((unsigned char)s[q])) {
            is_float = true;
            p = q;
            while (p < ps->len && isdigit((unsigned char)s[p]))
                p++;
        }
    }
    t->pos = start;
    t->end = p;
    ps->p = p;
    char text[64];
    size_t n = p - start;
    if ((p < ps->len && (ident_char((unsigned char)s[p]) || s[p] == '.')) || (is_float && n >= sizeof(text))) {
        while (p < ps->len && (ident_char((unsigned char)s[p]) || s[p] == '.'))
            p++;
        char lit[48];
        snprintf(lit, sizeof(lit), "%.*s", (int)(p - start > 40 ? 40 : p - start), s + start);
        return fail(ps, start, RV_ERR_PARSE, "invalid number literal '%s'", lit);
    }
    if (is_float) {
        memcpy(text, s + start, n);
        text[n] = '\0';
        t->kind = T_FLOAT;
        t->f = strtod(text, NULL);
        if (isinf(t->f))
            return fail(ps, start, RV_ERR_PARSE, "float literal %s is out of range", text);
        return true;
    }
    t->kind = T_INT;
    t->u = 0;
    t->too_big = false;
    for (size_t k = start; k < p; k++) {
        uint64_t d = (uint64_t)(s[k] - '0');
        if (t->u > (UINT64_MAX - d) / 10) {
            t->too_big = true;
            break;
        }
        t->u = t->u * 10 + d;
    }
    if (t->u > (uint64_t)INT64_MAX + 1)
        t->too_big = true;
    return true;
}

static bool lex_string(parser *ps)
{
    const char *s = ps->src;
    char q = s[ps->p];
    size_t start = ps->p, p = ps->p + 1;
    size_t cap = 16, n = 0;
    char *out = rv_xmalloc(cap);
    for (;;) {
        if (p >= ps->len) {
            free(out);
            return fail(ps, start, RV_ERR_PARSE, "unterminated string literal");
        }
        char c = s[p];
        if (c == q) {
            p++;
            break;
        }
        if (c == '\\') {
            if (p + 1 >= ps->len) {
                free(out);
                return fail(ps, start, RV_ERR_PARSE, "unterminated string literal");
            }
            char e = s[p + 1];
            switch (e) {
            case '"': c = '"'; break;
            case '\'': c = '\''; break;
            case '\\': c = '\\'; break;
            case 'n': c = '\n'; break;
            case 't': c = '\t'; break;
            case 'r': c = '\r'; break;
            default: {
                char esc[3] = {'\\', e, '\0'};
                free(out);
                return fail(ps, p, RV_ERR_PARSE, "unknown escape '%s' in string literal", esc);
            }
            }
            p += 2;
        } else {
            p++;
        }
        rv_xgrow((void **)&out, &cap, n + 2, 1);
        out[n++] = c;
    }
    out[n] = '\0';
    ps->t.kind = T_STR;
    ps->t.s = out;
    ps->t.slen = n;
    ps->t.pos = start;
    ps->t.end = p;
    ps->p = p;
    return true;
}

/* Reads the next token into ps->t. */
static bool next(parser *ps)
{
    const char *s = ps->src;
    free(ps->t.s);
    memset(&ps->t, 0, sizeof(ps->t));
    while (ps->p < ps->len && isspace((unsigned char)s[ps->p]))
        ps->p++;
    tok *t = &ps->t;
    t->pos = ps->p;
    if (ps->p >= ps->len) {
        t->kind = T_END;
        t->end = ps->p;
        return true;
    }
    unsigned char c = (unsigned char)s[ps->p];
    unsigned char c2 = ps->p + 1 < ps->len ? (unsigned char)s[ps->p + 1] : 0;
    if (isdigit(c))
        return lex_number(ps);
    if (c == '"' || c == '\'')
        return lex_string(ps);
    if (ident_start(c)) {
        size_t p = ps->p;
        while (p < ps->len && ident_char((unsigned char)s[p]))
            p++;
        t->kind = T_IDENT;
        t->end = p;
        ps->p = p;
        return true;
    }
    if (c == '`') {
        const char *close = memchr(s + ps->p + 1, '`', ps->len - ps->p - 1);
        if (!close)
            return fail(ps, ps->p, RV_ERR_PARSE, "unterminated backquoted field name");
        size_t n = (size_t)(close - (s + ps->p + 1));
        if (n == 0)
            return fail(ps, ps->p, RV_ERR_PARSE, "empty field name in backquotes");
        t->kind = T_QIDENT;
        t->s = rv_xstrndup(s + ps->p + 1, n);
        t->slen = n;
        ps->p += n + 2;
        t->end = ps->p;
        return true;
    }
    size_t w = 1;
    switch (c) {
    case '(': t->kind = T_LPAREN; break;
    case ')': t->kind = T_RPAREN; break;
    case '[': t->kind = T_LBRACK; break;
    case ']': t->kind = T_RBRACK; break;
    case ',': t->kind = T_COMMA; break;
    case '+': t->kind = T_PLUS; break;
    case '-': t->kind = T_MINUS; break;
    case '*': t->kind = T_STAR; break;
    case '/': t->kind = T_SLASH; break;
    case '%': t->kind = T_PERCENT; break;
    case '<': t->kind = c2 == '=' ? T_LE : T_LT; w = c2 == '=' ? 2 : 1; break;
    case '>': t->kind = c2 == '=' ? T_GE : T_GT; w = c2 == '=' ? 2 : 1; break;
    case '!': t->kind = c2 == '=' ? T_NE : T_NOT; w = c2 == '=' ? 2 : 1; break;
    case '=':
        if (c2 != '=')
            return fail(ps, ps->p, RV_ERR_PARSE, "unexpected '=' (use '==' to compare)");
        t->kind = T_EQ;
        w = 2;
        break;
    case '&':
        if (c2 != '&')
            return fail(ps, ps->p, RV_ERR_PARSE, "unexpected '&' (use '&&' for and)");
        t->kind = T_AND;
        w = 2;
        break;
    case '|':
        if (c2 != '|')
            return fail(ps, ps->p, RV_ERR_PARSE, "unexpected '|' (use '||' for or)");
        t->kind = T_OR;
        w = 2;
        break;
    default: {
        char ch[8];
        if (isprint(c))
            snprintf(ch, sizeof(ch), "'%c'", c);
        else
            snprintf(ch, sizeof(ch), "0x%02x", c);
        return fail(ps, ps->p, RV_ERR_PARSE, "unexpected character %s", ch);
    }
    }
    ps->p += w;
    t->end = ps->p;
    return true;
}

static bool is_word(const parser *ps, const char *w)
{
    size_t n = strlen(w);
    return ps->t.kind == T_IDENT && ps->t.end - ps->t.pos == n && memcmp(ps->src + ps->t.pos, w, n) == 0;
}

static bool expect(parser *ps, tok_kind k, const char *what)
{
    if (ps->t.kind == k)
        return next(ps);
    char buf[64];
    return fail(ps, ps->t.pos, RV_ERR_PARSE, "expected %s, found %s", what, tok_desc(ps, buf, sizeof(buf)));
}

static rv_enode *parse_or(parser *ps);

static rv_enode *int_literal(parser *ps, bool neg, size_t pos)
{
    tok *t = &ps->t;
    if (t->too_big || (!neg && t->u > (uint64_t)INT64_MAX)) {
        char lit[48];
        size_t n = t->end - t->pos;
        snprintf(lit, sizeof(lit), "%s%.*s", neg ? "-" : "", (int)(n > 40 ? 40 : n), ps->src + t->pos);
        fail(ps, pos, RV_ERR_PARSE, "integer literal %s is out of range for int64", lit);
        return NULL;
    }
    rv_enode *n = rv_enode_new(RV_EN_LIT, pos);
    n->type = RV_T_INT64;
    /* Negate in unsigned arithmetic: 2^63 becomes INT64_MIN without UB. */
    n->i = (int64_t)(neg ? 0u - t->u : t->u);
    n->end = t->end;
    return n;
}

static rv_enode *parse_call(parser *ps, size_t name_pos, size_t name_end)
{
    rv_enode *n = rv_enode_new(RV_EN_CALL, name_pos);
    n->name = rv_xstrndup(ps->src + name_pos, name_end - name_pos);
    n->op = -1;
    if (!next(ps)) /* '(' */
        goto fail;
    /* count(*) is count(): the row count, as in SQL. */
    if (strcmp(n->name, "count") == 0 && ps->t.kind == T_STAR) {
        if (!next(ps))
            goto fail;
        n->end = ps->t.end;
        if (!expect(ps, T_RPAREN, "')' after count(*"))
            goto fail;
        return n;
    }
    if (ps->t.kind != T_RPAREN) {
        for (;;) {
            rv_enode *a = parse_or(ps);
            if (!a)
                goto fail;
            add_arg(n, a);
            if (ps->t.kind == T_COMMA) {
                if (!next(ps))
                    goto fail;
                continue;
            }
            break;
        }
    }
    n->end = ps->t.end;
    if (!expect(ps, T_RPAREN, "',' or ')' in the argument list"))
        goto fail;
    return n;
fail:
    rv_enode_free(n);
    return NULL;
}

static rv_enode *parse_primary(parser *ps)
{
    tok *t = &ps->t;
    size_t pos = t->pos;
    rv_enode *n = NULL;
    char buf[64];
    switch (t->kind) {
    case T_INT:
        n = int_literal(ps, false, pos);
        break;
    case T_FLOAT:
        n = rv_enode_new(RV_EN_LIT, pos);
        n->type = RV_T_FLOAT64;
        n->f = t->f;
        n->end = t->end;
        break;
    case T_STR:
        n = rv_enode_new(RV_EN_LIT, pos);
        n->type = RV_T_STRING;
        n->str = t->s;
        n->soff[1] = (uint32_t)t->slen;
        t->s = NULL;
        n->end = t->end;
        break;
    case T_QIDENT:
        n = rv_enode_new(RV_EN_FIELD, pos);
        n->name = t->s;
        t->s = NULL;
        n->end = t->end;
        break;
    case T_IDENT: {
        size_t end = t->end;
        if (is_word(ps, "true") || is_word(ps, "false")) {
            n = rv_enode_new(RV_EN_LIT, pos);
            n->type = RV_T_BOOL;
            n->b = is_word(ps, "true");
        } else if (is_word(ps, "null")) {
            n = rv_enode_new(RV_EN_LIT, pos);
            n->type = RV_T_NULL;
            n->is_null = true;
            n->null_byte = 1;
        } else if (is_word(ps, "in")) {
            fail(ps, pos, RV_ERR_PARSE, "expected a value, found 'in'");
            return NULL;
        } else {
            if (!next(ps))
                return NULL;
            if (ps->t.kind == T_LPAREN)
                return parse_call(ps, pos, end);
            n = rv_enode_new(RV_EN_FIELD, pos);
            n->name = rv_xstrndup(ps->src + pos, end - pos);
            n->end = end;
            return n;
        }
        n->end = end;
        break;
    }
    case T_LPAREN: {
        if (!next(ps))
            return NULL;
        n = parse_or(ps);
        if (!n)
            return NULL;
        if (!expect(ps, T_RPAREN, "')'")) {
            rv_enode_free(n);
            return NULL;
        }
        return n;
    }
    default:
        fail(ps, pos, RV_ERR_PARSE, "expected a value, found %s", tok_desc(ps, buf, sizeof(buf)));
        return NULL;
    }
    if (!n)
        return NULL;
    if (!next(ps)) {
        rv_enode_free(n);
        return NULL;
    }
    return n;
}

static rv_enode *parse_unary(parser *ps)
{
    if (ps->t.kind != T_MINUS)
        return parse_primary(ps);
    size_t pos = ps->t.pos;
    if (++ps->depth > MAX_DEPTH) {
        fail(ps, pos, RV_ERR_PARSE, "expression is nested too deeply");
        return NULL;
    }
    if (!next(ps))
        return NULL;
    rv_enode *n;
    if (ps->t.kind == T_INT || ps->t.kind == T_FLOAT) {
        if (ps->t.kind == T_INT) {
            n = int_literal(ps, true, pos);
        } else {
            n = rv_enode_new(RV_EN_LIT, pos);
            n->type = RV_T_FLOAT64;
            n->f = -ps->t.f;
            n->end = ps->t.end;
        }
        if (n && !next(ps)) {
            rv_enode_free(n);
            n = NULL;
        }
    } else {
        rv_enode *a = parse_unary(ps);
        if (!a)
            return NULL;
        n = rv_enode_new(RV_EN_UNARY, pos);
        n->op = RV_OP_NEG;
        n->end = a->end;
        add_arg(n, a);
    }
    ps->depth--;
    return n;
}

static rv_enode *binary(parser *ps, int op, size_t op_pos, rv_enode *l, rv_enode *r)
{
    rv_enode *n = rv_enode_new(RV_EN_BINARY, l->pos);
    n->op = op;
    n->op_pos = op_pos;
    n->end = r->end;
    add_arg(n, l);
    add_arg(n, r);
    if (n->height > MAX_HEIGHT) {
        fail(ps, op_pos, RV_ERR_PARSE, "expression is too long (more than %d operators deep)", MAX_HEIGHT);
        rv_enode_free(n);
        return NULL;
    }
    return n;
}

static int mul_op(tok_kind k)
{
    return k == T_STAR ? RV_OP_MUL : k == T_SLASH ? RV_OP_DIV : k == T_PERCENT ? RV_OP_MOD : 0;
}

static int add_op(tok_kind k) { return k == T_PLUS ? RV_OP_ADD : k == T_MINUS ? RV_OP_SUB : 0; }

static int cmp_op(tok_kind k)
{
    switch (k) {
    case T_EQ: return RV_OP_EQ;
    case T_NE: return RV_OP_NE;
    case T_LT: return RV_OP_LT;
    case T_LE: return RV_OP_LE;
    case T_GT: return RV_OP_GT;
    case T_GE: return RV_OP_GE;
    default: return 0;
    }
}

static rv_enode *parse_mul(parser *ps)
{
    rv_enode *l = parse_unary(ps);
    int op;
    while (l && (op = mul_op(ps->t.kind))) {
        size_t op_pos = ps->t.pos;
        rv_enode *r = NULL;
        if (!next(ps) || !(r = parse_unary(ps))) {
            rv_enode_free(l);
            return NULL;
        }
        l = binary(ps, op, op_pos, l, r);
    }
    return l;
}

static rv_enode *parse_add(parser *ps)
{
    rv_enode *l = parse_mul(ps);
    int op;
    while (l && (op = add_op(ps->t.kind))) {
        size_t op_pos = ps->t.pos;
        rv_enode *r = NULL;
        if (!next(ps) || !(r = parse_mul(ps))) {
            rv_enode_free(l);
            return NULL;
        }
        l = binary(ps, op, op_pos, l, r);
    }
    return l;
}

static rv_enode *parse_in_list(parser *ps, rv_enode *l)
{
    rv_enode *n = rv_enode_new(RV_EN_IN, l->pos);
    n->op_pos = ps->t.pos;
    add_arg(n, l);
    if (!next(ps) || !expect(ps, T_LBRACK, "'[' after 'in'"))
        goto fail;
    if (ps->t.kind != T_RBRACK) {
        for (;;) {
            rv_enode *a = parse_add(ps);
            if (!a)
                goto fail;
            add_arg(n, a);
            if (ps->t.kind != T_COMMA)
                break;
            if (!next(ps))
                goto fail;
        }
    }
    n->end = ps->t.end;
    if (!expect(ps, T_RBRACK, "',' or ']' in the 'in' list"))
        goto fail;
    return n;
fail:
    rv_enode_free(n);
    return NULL;
}

static rv_enode *parse_cmp(parser *ps)
{
    rv_enode *l = parse_add(ps);
    if (!l)
        return NULL;
    int op = cmp_op(ps->t.kind);
    if (op) {
        size_t op_pos = ps->t.pos;
        rv_enode *r = NULL;
        if (!next(ps) || !(r = parse_add(ps))) {
            rv_enode_free(l);
            return NULL;
        }
        l = binary(ps, op, op_pos, l, r);
        if (!l)
            return NULL;
    } else if (is_word(ps, "in")) {
        l = parse_in_list(ps, l);
        if (!l)
            return NULL;
    } else {
        return l;
    }
    if (cmp_op(ps->t.kind) || is_word(ps, "in")) {
        fail(ps, ps->t.pos, RV_ERR_PARSE, "comparisons cannot be chained; combine them with && or ||");
        rv_enode_free(l);
        return NULL;
    }
    return l;
}

static rv_enode *parse_not(parser *ps)
{
    if (ps->t.kind != T_NOT)
        return parse_cmp(ps);
    size_t pos = ps->t.pos;
    if (++ps->depth > MAX_DEPTH) {
        fail(ps, pos, RV_ERR_PARSE, "expression is nested too deeply");
        return NULL;
    }
    rv_enode *a = NULL;
    if (!next(ps) || !(a = parse_not(ps)))
        return NULL;
    ps->depth--;
    rv_enode *n = rv_enode_new(RV_EN_UNARY, pos);
    n->op = RV_OP_NOT;
    n->end = a->end;
    add_arg(n, a);
    return n;
}

static rv_enode *parse_and(parser *ps)
{
    rv_enode *l = parse_not(ps);
    while (l && ps->t.kind == T_AND) {
        size_t op_pos = ps->t.pos;
        rv_enode *r = NULL;
        if (!next(ps) || !(r = parse_not(ps))) {
            rv_enode_free(l);
            return NULL;
        }
        l = binary(ps, RV_OP_AND, op_pos, l, r);
    }
    return l;
}

static rv_enode *parse_or(parser *ps)
{
    if (++ps->depth > MAX_DEPTH) {
        fail(ps, ps->t.pos, RV_ERR_PARSE, "expression is nested too deeply");
        return NULL;
    }
    rv_enode *l = parse_and(ps);
    while (l && ps->t.kind == T_OR) {
        size_t op_pos = ps->t.pos;
        rv_enode *r = NULL;
        if (!next(ps) || !(r = parse_and(ps))) {
            rv_enode_free(l);
            return NULL;
        }
        l = binary(ps, RV_OP_OR, op_pos, l, r);
    }
    ps->depth--;
    return l;
}

rv_err *rv_expr_parse(const char *src, rv_enode **out, size_t *err_offset)
{
    parser ps;
    memset(&ps, 0, sizeof(ps));
    ps.src = src;
    ps.len = strlen(src);
    rv_enode *n = NULL;
    if (next(&ps)) {
        if (ps.t.kind == T_END) {
            fail(&ps, 0, RV_ERR_PARSE, "empty expression");
        } else if ((n = parse_or(&ps)) && ps.t.kind != T_END) {
            char buf[64];
            fail(&ps, ps.t.pos, RV_ERR_PARSE, "unexpected %s after the expression", tok_desc(&ps, buf, sizeof(buf)));
        }
    }
    free(ps.t.s);
    if (ps.err) {
        rv_enode_free(n);
        if (err_offset)
            *err_offset = ps.err_off;
        return ps.err;
    }
    *out = n;
    return NULL;
}
