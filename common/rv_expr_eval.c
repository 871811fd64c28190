/* rv_expr_eval: vectorised evaluation of a checked expression tree. Each
 * node is evaluated once per batch into a column (its own scratch column,
 * kept in the node and reused, or the caller's output for the root);
 * fields and literals are not copied but viewed (rv_vec). The type switch
 * happens once per node per batch; the loops inside are plain loops over
 * arrays that the compiler can vectorise, with separate loops for
 * column-op-column and column-op-literal so that `latency_ms > 100` reads
 * one array. Nulls travel as byte maps combined with OR. Integer + - *
 * wrap (computed in uint64_t), integer / and % by zero give null. */
#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rv_expr_internal.h"
#include "rv_mem.h"

static const uint8_t all_null_byte = 1;

void rv_col_prepare(rv_column *c, uint32_t nrows)
{
    rv_col_reset(c);
    rv_col_reserve(c, nrows ? nrows : 1);
    if (c->offsets)
        c->offsets[0] = 0;
}

uint8_t *rv_col_nulls_raw(rv_column *c)
{
    if (!c->nulls)
        c->nulls = rv_xmalloc(c->cap);
    c->has_nulls = true;
    return c->nulls;
}

void rv_vec_of_col(const rv_column *c, rv_vec *v)
{
    v->type = c->type;
    v->m = UINT32_MAX;
    v->nulls = c->has_nulls ? c->nulls : NULL;
    v->d.b = c->d.b;
    v->off = c->offsets;
    v->data = c->data ? c->data : "";
}

static void vec_of_lit(const rv_enode *n, rv_vec *v)
{
    v->type = n->type;
    v->m = 0;
    v->nulls = n->is_null ? &all_null_byte : NULL;
    switch (n->type) {
    case RV_T_INT64:
    case RV_T_TIMESTAMP: v->d.i = &n->i; break;
    case RV_T_FLOAT64: v->d.f = &n->f; break;
    default: v->d.b = &n->b; break;
    }
    v->off = n->soff;
    v->data = n->str ? n->str : "";
}

void rv_col_nulls_or(rv_column *c, uint32_t n, const rv_vec *a, const rv_vec *b)
{
    const uint8_t *an = a->nulls, *bn = b ? b->nulls : NULL;
    if (!an && !bn) {
        c->has_nulls = false;
        return;
    }
    uint8_t *out = rv_col_nulls_raw(c);
    if ((an && !a->m) || (bn && !b->m)) {
        memset(out, 1, n); /* a scalar null: every row is null */
    } else if (an && bn) {
        for (uint32_t i = 0; i < n; i++)
            out[i] = an[i] | bn[i];
    } else {
        memcpy(out, an ? an : bn, n);
    }
}

void rv_vec_materialize(const rv_vec *v, uint32_t n, rv_column *c)
{
    rv_col_prepare(c, n);
    if (v->nulls) {
        uint8_t *nl = rv_col_nulls_raw(c);
        if (v->m)
            memcpy(nl, v->nulls, n);
        else
            memset(nl, v->nulls[0], n);
    } else {
        c->has_nulls = false;
    }
    if (v->type == RV_T_NULL) {
        /* An untyped null: zero values of the column's own type. */
        if (c->type == RV_T_STRING) {
            memset(c->offsets, 0, ((size_t)n + 1) * sizeof(uint32_t));
            c->data_len = 0;
        } else if (c->d.b) {
            memset(c->d.b, 0, (size_t)n * (c->type == RV_T_BOOL ? 1 : 8));
        }
        return;
    }
    assert(v->type == c->type || (rv_type_is_int(v->type) && rv_type_is_int(c->type)));
    switch (c->type) {
    case RV_T_BOOL:
        if (v->m)
            memcpy(c->d.b, v->d.b, n);
        else
            memset(c->d.b, v->d.b[0] != 0, n);
        break;
    case RV_T_INT64:
    case RV_T_TIMESTAMP:
        if (v->m) {
            memcpy(c->d.i64, v->d.i, (size_t)n * 8);
        } else {
            for (uint32_t i = 0; i < n; i++)
                c->d.i64[i] = v->d.i[0];
        }
        break;
    case RV_T_FLOAT64:
        if (v->m) {
            memcpy(c->d.f64, v->d.f, (size_t)n * 8);
        } else {
            for (uint32_t i = 0; i < n; i++)
                c->d.f64[i] = v->d.f[0];
        }
        break;
    case RV_T_STRING:
        if (v->m) {
            uint32_t base = v->off[0], bytes = v->off[n] - base;
            memcpy(rv_col_str_room(c, bytes), v->data + base, bytes);
            for (uint32_t i = 0; i < n; i++)
                c->offsets[i + 1] = v->off[i + 1] - base;
            c->data_len = bytes;
        } else {
            uint32_t len;
            const char *p = rv_vec_str(v, 0, &len);
            char *dst = rv_col_str_room(c, (size_t)len * n);
            for (uint32_t i = 0; i < n; i++) {
                memcpy(dst + (size_t)i * len, p, len);
                c->offsets[i + 1] = (uint32_t)((size_t)(i + 1) * len);
            }
            c->data_len = (size_t)len * n;
        }
        break;
    case RV_T_NULL: break;
    }
}

/* Loops for column-op-column, column-op-scalar and scalar-op-column. The
 * last one indexes through the mask so that scalar-op-scalar (only seen
 * when folding constants, one row) stays in bounds. EXPR reads x and y. */
#define BIN_LOOP(N, OUT, TA, A, AM, TB, B, BM, EXPR)                                                    \
    do {                                                                                              \
        if ((AM) && (BM)) {                                                                           \
            for (uint32_t i = 0; i < (N); i++) {                                                      \
                TA x = (A)[i];                                                                        \
                TB y = (B)[i];                                                                        \
                (OUT)[i] = (EXPR);                                                                    \
            }                                                                                         \
        } else if (AM) {                                                                              \
            TB y = (B)[0];                                                                            \
            for (uint32_t i = 0; i < (N); i++) {                                                      \
                TA x = (A)[i];                                                                        \
                (OUT)[i] = (EXPR);                                                                    \
            }                                                                                         \
        } else {                                                                                      \
            TA x = (A)[0];                                                                            \
            for (uint32_t i = 0; i < (N); i++) {                                                      \
                TB y = (B)[i & (BM)];                                                                 \
                (OUT)[i] = (EXPR);                                                                    \
            }                                                                                         \
        }                                                                                             \
    } while (0)

#define WRAP_ADD(x, y) ((int64_t)((uint64_t)(x) + (uint64_t)(y)))
#define WRAP_SUB(x, y) ((int64_t)((uint64_t)(x) - (uint64_t)(y)))
#define WRAP_MUL(x, y) ((int64_t)((uint64_t)(x) * (uint64_t)(y)))

#define CMP_LOOPS(N, OUT, T, A, AM, B, BM, X, Y)                                 \
    do {                                                                         \
        switch (op) {                                                            \
        case RV_OP_EQ: BIN_LOOP(N, OUT, T, A, AM, T, B, BM, (uint8_t)(X == Y)); break; \
        case RV_OP_NE: BIN_LOOP(N, OUT, T, A, AM, T, B, BM, (uint8_t)(X != Y)); break; \
        case RV_OP_LT: BIN_LOOP(N, OUT, T, A, AM, T, B, BM, (uint8_t)(X < Y)); break;  \
        case RV_OP_LE: BIN_LOOP(N, OUT, T, A, AM, T, B, BM, (uint8_t)(X <= Y)); break; \
        case RV_OP_GT: BIN_LOOP(N, OUT, T, A, AM, T, B, BM, (uint8_t)(X > Y)); break;  \
        default: BIN_LOOP(N, OUT, T, A, AM, T, B, BM, (uint8_t)(X >= Y)); break;       \
        }                                                                        \
    } while (0)

static int str_cmp(const char *a, uint32_t al, const char *b, uint32_t bl)
{
    int r = memcmp(a, b, al < bl ? al : bl);
    if (r)
        return r;
    return (al > bl) - (al < bl);
}

static uint8_t cmp_result(int op, int r)
{
    switch (op) {
    case RV_OP_EQ: return r == 0;
    case RV_OP_NE: return r != 0;
    case RV_OP_LT: return r < 0;
    case RV_OP_LE: return r <= 0;
    case RV_OP_GT: return r > 0;
    default: return r >= 0;
    }
}

static void cmp_strings(int op, uint32_t n, const rv_vec *a, const rv_vec *b, uint8_t *out)
{
    const uint32_t *ao = a->off, *bo = b->off;
    const char *ad = a->data, *bd = b->data;
    if (a->m && !b->m && (op == RV_OP_EQ || op == RV_OP_NE)) {
        /* The common `field == "literal"`: lengths first, then the first
         * (up to) 8 bytes as one word, then the rest with memcmp. Bytes
         * [ao[0], ao[n]) belong to the column, so a word load that ends
         * there is in bounds; rows nearer the end use memcmp. */
        uint32_t kl = bo[1] - bo[0], wl = kl < 8 ? kl : 8, end = ao[n];
        const char *k = bd + bo[0];
        uint8_t ne = op == RV_OP_NE, mb[8] = {0};
        uint64_t kw = 0, mask;
        memcpy(&kw, k, wl);
        memset(mb, 0xff, wl);
        memcpy(&mask, mb, 8);
        uint32_t i = 0;
        if (kl <= 8) {
            /* Offsets grow, so the rows with a whole word come first. */
            for (; i < n && ao[i] + 8 <= end; i++) {
                uint32_t st = ao[i];
                uint64_t w;
                memcpy(&w, ad + st, 8);
                out[i] = (uint8_t)(((ao[i + 1] - st == kl) & (((w ^ kw) & mask) == 0)) ^ ne);
            }
        } else {
            for (; i < n && ao[i] + 8 <= end; i++) {
                uint32_t st = ao[i];
                uint64_t w;
                memcpy(&w, ad + st, 8);
                uint8_t eq = ao[i + 1] - st == kl && w == kw && memcmp(ad + st + 8, k + 8, kl - 8) == 0;
                out[i] = eq ^ ne;
            }
        }
        for (; i < n; i++) {
            uint32_t st = ao[i];
            uint8_t eq = ao[i + 1] - st == kl && memcmp(ad + st, k, kl) == 0;
            out[i] = eq ^ ne;
        }
        return;
    }
    for (uint32_t i = 0; i < n; i++) {
        uint32_t ia = i & a->m, ib = i & b->m;
        uint32_t as = ao[ia], al = ao[ia + 1] - as, bs = bo[ib], bl = bo[ib + 1] - bs;
        int r;
        if (op == RV_OP_EQ || op == RV_OP_NE)
            r = al != bl ? 1 : memcmp(ad + as, bd + bs, al);
        else
            r = str_cmp(ad + as, al, bd + bs, bl);
        out[i] = cmp_result(op, r);
    }
}

static void concat_strings(uint32_t n, const rv_vec *a, const rv_vec *b, rv_column *c)
{
    size_t total = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t ia = i & a->m, ib = i & b->m;
        total += (size_t)(a->off[ia + 1] - a->off[ia]) + (b->off[ib + 1] - b->off[ib]);
    }
    char *dst = rv_col_str_room(c, total);
    size_t off = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t al, bl;
        const char *ap = rv_vec_str(a, i, &al), *bp = rv_vec_str(b, i, &bl);
        memcpy(dst + off, ap, al);
        memcpy(dst + off + al, bp, bl);
        off += (size_t)al + bl;
        c->offsets[i + 1] = (uint32_t)off;
    }
    c->data_len = off;
}

/* Integer / and %: a zero divisor gives null; INT64_MIN / -1 wraps. */
static void int_divmod(int op, uint32_t n, const rv_vec *a, const rv_vec *b, rv_column *c)
{
    int64_t *out = c->d.i64;
    const int64_t *A = a->d.i, *B = b->d.i;
    uint32_t am = a->m, bm = b->m;
    bool had = c->has_nulls;
    uint8_t *nl = rv_col_nulls_raw(c);
    if (!had)
        memset(nl, 0, n);
    bool div = op == RV_OP_DIV;
    if (!bm && B[0] != 0 && B[0] != -1) {
        if (div)
            BIN_LOOP(n, out, int64_t, A, am, int64_t, B, bm, x / y);
        else
            BIN_LOOP(n, out, int64_t, A, am, int64_t, B, bm, x % y);
        return;
    }
    for (uint32_t i = 0; i < n; i++) {
        int64_t x = A[i & am], y = B[i & bm];
        nl[i] |= y == 0;
        if (y == 0)
            out[i] = 0;
        else if (y == -1)
            out[i] = div ? WRAP_SUB(0, x) : 0;
        else
            out[i] = div ? x / y : x % y;
    }
}

static void eval_binary(rv_enode *n, uint32_t nr, const rv_vec *a, const rv_vec *b, rv_column *c)
{
    int op = n->op;
    uint32_t am = a->m, bm = b->m;
    if (op == RV_OP_AND || op == RV_OP_OR) {
        /* Three-valued logic, branch-free. Values of null rows are ignored. */
        uint8_t *out = c->d.b, *nl;
        const uint8_t *A = a->d.b, *B = b->d.b, *AN = a->nulls, *BN = b->nulls;
        if (!AN && !BN) {
            c->has_nulls = false;
            if (op == RV_OP_AND)
                BIN_LOOP(nr, out, uint8_t, A, am, uint8_t, B, bm, (uint8_t)((x != 0) & (y != 0)));
            else
                BIN_LOOP(nr, out, uint8_t, A, am, uint8_t, B, bm, (uint8_t)((x != 0) | (y != 0)));
            return;
        }
        nl = rv_col_nulls_raw(c);
        bool is_and = op == RV_OP_AND;
        for (uint32_t i = 0; i < nr; i++) {
            uint8_t an = AN ? AN[i & am] : 0, bn = BN ? BN[i & bm] : 0;
            uint8_t av = (A[i & am] != 0) & !an, bv = (B[i & bm] != 0) & !bn;
            /* known: the side decides alone (false for &&, true for ||) */
            uint8_t decided = is_and ? (uint8_t)((!an & !av) | (!bn & !bv)) : (uint8_t)(av | bv);
            out[i] = is_and ? (uint8_t)(av & bv) : (uint8_t)(av | bv);
            nl[i] = (uint8_t)((decided ^ 1) & (an | bn));
        }
        return;
    }
    rv_col_nulls_or(c, nr, a, b);
    if (op >= RV_OP_EQ && op <= RV_OP_GE) {
        uint8_t *out = c->d.b;
        switch (a->type) {
        case RV_T_INT64:
        case RV_T_TIMESTAMP: CMP_LOOPS(nr, out, int64_t, a->d.i, am, b->d.i, bm, x, y); break;
        case RV_T_FLOAT64: CMP_LOOPS(nr, out, double, a->d.f, am, b->d.f, bm, x, y); break;
        case RV_T_BOOL: CMP_LOOPS(nr, out, uint8_t, a->d.b, am, b->d.b, bm, (x != 0), (y != 0)); break;
        case RV_T_STRING: cmp_strings(op, nr, a, b, out); break;
        case RV_T_NULL: memset(out, 0, nr); break;
        }
        return;
    }
    if (c->type == RV_T_STRING) {
        concat_strings(nr, a, b, c);
        return;
    }
    if (c->type == RV_T_FLOAT64) {
        double *out = c->d.f64;
        const double *A = a->d.f, *B = b->d.f;
        switch (op) {
        case RV_OP_ADD: BIN_LOOP(nr, out, double, A, am, double, B, bm, x + y); break;
        case RV_OP_SUB: BIN_LOOP(nr, out, double, A, am, double, B, bm, x - y); break;
        case RV_OP_MUL: BIN_LOOP(nr, out, double, A, am, double, B, bm, x * y); break;
        case RV_OP_DIV: BIN_LOOP(nr, out, double, A, am, double, B, bm, x / y); break;
        default: BIN_LOOP(nr, out, double, A, am, double, B, bm, fmod(x, y)); break;
        }
        return;
    }
    int64_t *out = c->d.i64;
    const int64_t *A = a->d.i, *B = b->d.i;
    switch (op) {
    case RV_OP_ADD: BIN_LOOP(nr, out, int64_t, A, am, int64_t, B, bm, WRAP_ADD(x, y)); break;
    case RV_OP_SUB: BIN_LOOP(nr, out, int64_t, A, am, int64_t, B, bm, WRAP_SUB(x, y)); break;
    case RV_OP_MUL: BIN_LOOP(nr, out, int64_t, A, am, int64_t, B, bm, WRAP_MUL(x, y)); break;
    default: int_divmod(op, nr, a, b, c); break;
    }
}

static void eval_unary(rv_enode *n, uint32_t nr, const rv_vec *a, rv_column *c)
{
    rv_col_nulls_or(c, nr, a, NULL);
    uint32_t am = a->m;
    if (n->op == RV_OP_NOT) {
        for (uint32_t i = 0; i < nr; i++)
            c->d.b[i] = a->d.b[i & am] == 0;
    } else if (c->type == RV_T_FLOAT64) {
        for (uint32_t i = 0; i < nr; i++)
            c->d.f64[i] = -a->d.f[i & am];
    } else {
        for (uint32_t i = 0; i < nr; i++)
            c->d.i64[i] = WRAP_SUB(0, a->d.i[i & am]);
    }
}

/* Index of the first element >= x in sorted v[0..n). */
#define LOWER_BOUND(v, n, x, out)                  \
    do {                                           \
        uint32_t lo_ = 0, hi_ = (uint32_t)(n);     \
        while (lo_ < hi_) {                        \
            uint32_t mid_ = (lo_ + hi_) / 2;       \
            if ((v)[mid_] < (x))                   \
                lo_ = mid_ + 1;                    \
            else                                   \
                hi_ = mid_;                        \
        }                                          \
        (out) = lo_;                               \
    } while (0)

static void eval_in(rv_enode *n, uint32_t nr, const rv_vec *a, rv_column *c)
{
    rv_col_nulls_or(c, nr, a, NULL);
    uint8_t *out = c->d.b;
    uint32_t am = a->m, k = (uint32_t)n->nlist;
    switch (a->type) {
    case RV_T_FLOAT64: {
        const double *L = n->list_f;
        for (uint32_t i = 0; i < nr; i++) {
            double x = a->d.f[i & am];
            uint32_t p;
            LOWER_BOUND(L, k, x, p);
            out[i] = p < k && L[p] == x;
        }
        break;
    }
    case RV_T_STRING:
        for (uint32_t i = 0; i < nr; i++) {
            uint32_t len;
            const char *s = rv_vec_str(a, i, &len);
            uint8_t hit = 0;
            for (uint32_t j = 0; j < k && !hit; j++)
                hit = n->list_len[j] == len && memcmp(n->list_s[j], s, len) == 0;
            out[i] = hit;
        }
        break;
    case RV_T_BOOL: {
        uint8_t has[2] = {0, 0};
        for (uint32_t j = 0; j < k; j++)
            has[n->list_i[j] != 0] = 1;
        for (uint32_t i = 0; i < nr; i++)
            out[i] = has[a->d.b[i & am] != 0];
        break;
    }
    default: {
        const int64_t *L = n->list_i;
        if (k <= 8) {
            for (uint32_t i = 0; i < nr; i++) {
                int64_t x = a->d.i[i & am];
                uint8_t hit = 0;
                for (uint32_t j = 0; j < k; j++)
                    hit |= L[j] == x;
                out[i] = hit;
            }
        } else {
            for (uint32_t i = 0; i < nr; i++) {
                int64_t x = a->d.i[i & am];
                uint32_t p;
                LOWER_BOUND(L, k, x, p);
                out[i] = p < k && L[p] == x;
            }
        }
        break;
    }
    }
}

static bool truthy(const rv_vec *c, uint32_t i) { return c->d.b[i & c->m] != 0 && !rv_vec_null(c, i); }

static void eval_if(uint32_t nr, const rv_vec *cond, const rv_vec *a, const rv_vec *b, rv_column *c)
{
    if (a->nulls || b->nulls) {
        uint8_t *nl = rv_col_nulls_raw(c);
        for (uint32_t i = 0; i < nr; i++)
            nl[i] = truthy(cond, i) ? rv_vec_null(a, i) : rv_vec_null(b, i);
    } else {
        c->has_nulls = false;
    }
    switch (c->type) {
    case RV_T_BOOL:
        for (uint32_t i = 0; i < nr; i++)
            c->d.b[i] = truthy(cond, i) ? a->d.b[i & a->m] : b->d.b[i & b->m];
        break;
    case RV_T_INT64:
    case RV_T_TIMESTAMP:
        for (uint32_t i = 0; i < nr; i++)
            c->d.i64[i] = truthy(cond, i) ? a->d.i[i & a->m] : b->d.i[i & b->m];
        break;
    case RV_T_FLOAT64:
        for (uint32_t i = 0; i < nr; i++)
            c->d.f64[i] = truthy(cond, i) ? a->d.f[i & a->m] : b->d.f[i & b->m];
        break;
    case RV_T_STRING: {
        size_t total = 0;
        for (uint32_t i = 0; i < nr; i++) {
            const rv_vec *v = truthy(cond, i) ? a : b;
            uint32_t k = i & v->m;
            total += v->off[k + 1] - v->off[k];
        }
        char *dst = rv_col_str_room(c, total);
        size_t off = 0;
        for (uint32_t i = 0; i < nr; i++) {
            uint32_t len;
            const char *p = truthy(cond, i) ? rv_vec_str(a, i, &len) : rv_vec_str(b, i, &len);
            memcpy(dst + off, p, len);
            off += len;
            c->offsets[i + 1] = (uint32_t)off;
        }
        c->data_len = off;
        break;
    }
    case RV_T_NULL: break;
    }
}

/* Index of the first argument not null at row i, or na when all are. */
static int first_non_null(const rv_vec *args, int na, uint32_t i)
{
    int k = 0;
    while (k < na && rv_vec_null(&args[k], i))
        k++;
    return k;
}

#define COALESCE_LOOP(OUTARR, FIELD)                                 \
    do {                                                             \
        for (uint32_t i = 0; i < nr; i++) {                          \
            int k = first_non_null(args, na, i);                     \
            nl[i] = k == na;                                         \
            const rv_vec *v = &args[k == na ? na - 1 : k];           \
            (OUTARR)[i] = v->d.FIELD[i & v->m];                      \
        }                                                            \
    } while (0)

static void eval_coalesce(uint32_t nr, const rv_vec *args, int na, rv_column *c)
{
    uint8_t *nl = rv_col_nulls_raw(c);
    switch (c->type) {
    case RV_T_BOOL: COALESCE_LOOP(c->d.b, b); break;
    case RV_T_INT64:
    case RV_T_TIMESTAMP: COALESCE_LOOP(c->d.i64, i); break;
    case RV_T_FLOAT64: COALESCE_LOOP(c->d.f64, f); break;
    case RV_T_STRING:
        for (uint32_t i = 0; i < nr; i++) {
            int k = first_non_null(args, na, i);
            nl[i] = k == na;
            uint32_t len = 0;
            const char *p = k == na ? "" : rv_vec_str(&args[k], i, &len);
            memcpy(rv_col_str_room(c, len), p, len);
            rv_col_str_commit(c, i, len);
        }
        break;
    case RV_T_NULL: break;
    }
}

static bool eval_call(rv_enode *n, const rv_batch *in, rv_column *c, rv_vec *out)
{
    uint32_t nr = in->nrows;
    rv_vec args[8];
    if (n->nargs > 8 && !n->argv)
        n->argv = rv_xmalloc((size_t)n->nargs * sizeof(rv_vec));
    rv_vec *av = n->nargs <= 8 ? args : n->argv;
    for (int k = 0; k < n->nargs; k++)
        rv_enode_eval(n->args[k], in, NULL, &av[k]);
    bool wrote = true;
    rv_efn fn = (rv_efn)n->op;
    bool same_storage = n->nargs == 1 &&
                        (av[0].type == n->type || (rv_type_is_int(av[0].type) && rv_type_is_int(n->type)));
    if ((fn == RV_FN_INT || fn == RV_FN_FLOAT || fn == RV_FN_STRING || fn == RV_FN_BOOL || fn == RV_FN_TIMESTAMP) &&
        same_storage) {
        /* A conversion that changes nothing but the type: a view. */
        *out = av[0];
        out->type = n->type;
        wrote = false;
    } else if (fn == RV_FN_IF) {
        rv_col_prepare(c, nr);
        eval_if(nr, &av[0], &av[1], &av[2], c);
    } else if (fn == RV_FN_COALESCE) {
        rv_col_prepare(c, nr);
        eval_coalesce(nr, av, n->nargs, c);
    } else {
        rv_col_prepare(c, nr);
        rv_efunc_eval(n, av, nr, c);
    }
    return wrote;
}

/* Returns true when the result was written into dst (or n->res). */
static bool eval_node(rv_enode *n, const rv_batch *in, rv_column *dst, rv_vec *out)
{
    if (n->kind == RV_EN_LIT) {
        vec_of_lit(n, out);
        return false;
    }
    if (n->kind == RV_EN_FIELD) {
        assert(n->field >= 0 && n->field < in->schema->nfields && in->cols[n->field].type == n->type);
        rv_vec_of_col(&in->cols[n->field], out);
        out->type = n->type;
        return false;
    }
    uint32_t nr = in->nrows;
    if (!dst) {
        if (!n->res_ready) {
            rv_col_init(&n->res, n->type, nr);
            n->res_ready = true;
        }
        dst = &n->res;
    }
    assert(dst->type == n->type);
    if (n->kind == RV_EN_CALL) {
        if (!eval_call(n, in, dst, out))
            return false;
        rv_vec_of_col(dst, out);
        return true;
    }
    rv_vec a, b;
    rv_enode_eval(n->args[0], in, NULL, &a);
    if (n->kind == RV_EN_BINARY)
        rv_enode_eval(n->args[1], in, NULL, &b);
    rv_col_prepare(dst, nr);
    switch (n->kind) {
    case RV_EN_UNARY: eval_unary(n, nr, &a, dst); break;
    case RV_EN_BINARY: eval_binary(n, nr, &a, &b, dst); break;
    case RV_EN_IN: eval_in(n, nr, &a, dst); break;
    default: assert(0); break;
    }
    rv_vec_of_col(dst, out);
    return true;
}

void rv_enode_eval(rv_enode *n, const rv_batch *in, rv_column *dst, rv_vec *out) { (void)eval_node(n, in, dst, out); }

/* Evaluates the root: into `out` directly when possible, else copies. */
void rv_enode_eval_root(rv_enode *n, const rv_batch *in, rv_column *out)
{
    rv_vec v;
    bool wrote = n->kind != RV_EN_LIT && n->type == out->type && eval_node(n, in, out, &v);
    if (!wrote) {
        if (n->kind == RV_EN_LIT)
            vec_of_lit(n, &v);
        else if (n->type != out->type)
            eval_node(n, in, NULL, &v);
        rv_vec_materialize(&v, in->nrows, out);
    }
}
