/* window_acc: accumulators in keyed state (see window_acc.h).
 *
 * Every fixed slot is made of 8-byte little-endian words read and written
 * with memcpy (state values have no alignment): word 0 is the value (or
 * the sum), word 1 the count of non-null inputs, word 2 the time of
 * first/last. Booleans and timestamps are kept as int64. */
#include "window_acc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rv_dset.h"
#include "rv_hash.h"
#include "rv_hll.h"
#include "rv_mem.h"

typedef struct wcall {
    rv_agg_kind kind;
    rv_type arg, res;
    uint32_t off;  /* of the fixed slot */
    int sid;       /* var part, or -1 */
} wcall;

struct rv_wacc {
    int ncalls;
    wcall *calls;
    uint32_t size;
};

static bool is_float(rv_type t) { return t == RV_T_FLOAT64; }

rv_wacc *rv_wacc_new(const rv_agg_call *calls, int ncalls, int sid_var)
{
    rv_wacc *w = rv_xcalloc(1, sizeof(*w));
    w->ncalls = ncalls;
    w->calls = rv_xcalloc((size_t)ncalls + 1, sizeof(wcall));
    uint32_t off = 0;
    for (int c = 0; c < ncalls; c++) {
        wcall *wc = &w->calls[c];
        wc->kind = calls[c].kind;
        wc->arg = calls[c].arg ? calls[c].arg_type : RV_T_NULL;
        wc->res = calls[c].result_type;
        wc->sid = -1;
        wc->off = off;
        bool str = wc->arg == RV_T_STRING;
        uint32_t words = 0;
        switch (wc->kind) {
        case RV_AGG_COUNT: words = 1; break;
        case RV_AGG_SUM:
        case RV_AGG_AVG: words = 2; break;
        case RV_AGG_MIN:
        case RV_AGG_MAX: words = 2; break;
        case RV_AGG_FIRST:
        case RV_AGG_LAST: words = 3; break;
        case RV_AGG_COUNT_DISTINCT:
        case RV_AGG_APPROX_COUNT_DISTINCT: words = 0; break;
        }
        if (str || wc->kind == RV_AGG_COUNT_DISTINCT || wc->kind == RV_AGG_APPROX_COUNT_DISTINCT)
            wc->sid = sid_var + c;
        off += words * 8;
    }
    w->size = off;
    return w;
}

void rv_wacc_free(rv_wacc *w)
{
    if (!w)
        return;
    free(w->calls);
    free(w);
}

uint32_t rv_wacc_size(const rv_wacc *w) { return w->size; }

/* ---- words ---- */

static inline int64_t rd_i(const uint8_t *p, int word)
{
    int64_t v;
    memcpy(&v, p + 8 * word, 8);
    return v;
}

static inline double rd_f(const uint8_t *p, int word)
{
    double v;
    memcpy(&v, p + 8 * word, 8);
    return v;
}

static inline void wr_i(uint8_t *p, int word, int64_t v) { memcpy(p + 8 * word, &v, 8); }
static inline void wr_f(uint8_t *p, int word, double v) { memcpy(p + 8 * word, &v, 8); }

/* The canonical bytes of row r of c for distinct counting (strings as
 * their bytes, everything else as 8 bytes). */
static const uint8_t *value_bytes(const rv_column *c, uint32_t r, uint8_t tmp[8], uint32_t *n)
{
    if (c->type == RV_T_STRING) {
        const char *p = rv_col_str(c, r, n);
        return (const uint8_t *)p;
    }
    int64_t v = c->type == RV_T_BOOL ? (int64_t)c->d.b[r] : c->d.i64[r];
    if (c->type == RV_T_FLOAT64) {
        double d = c->d.f64[r];
        if (d == 0)
            d = 0; /* -0.0 and 0.0 are one value */
        memcpy(&v, &d, 8);
    }
    memcpy(tmp, &v, 8);
    *n = 8;
    return tmp;
}

static inline int64_t int_of(const rv_column *c, uint32_t r)
{
    return c->type == RV_T_BOOL ? (int64_t)c->d.b[r] : c->d.i64[r];
}

/* ---- folding ---- */

static void dset_add(rv_state *s, int sid, const rv_skey *k, int64_t ns, const uint8_t *v, uint32_t n, uint64_t h)
{
    uint32_t len;
    bool created;
    uint8_t *set = rv_value_upsert(s, sid, k, ns, rv_dset_init_size(), &len, &created);
    if (created)
        rv_dset_init(set, len);
    if (rv_dset_add(set, len, v, n, h) >= 0)
        return;
    uint32_t nl = rv_dset_grow_size(set, len, n);
    if (nl == 0)
        return; /* past RV_DSET_MAX_LEN: documented as the limit of count_distinct */
    set = rv_value_put(s, sid, k, ns, NULL, nl);
    rv_dset_regrow(set, len, nl);
    rv_dset_add(set, nl, v, n, h);
}

static void fold_string(const wcall *wc, rv_state *s, const rv_column *arg, const int64_t *time, const rv_skey *keys,
                        const rv_wacc_pair *pairs, uint32_t n)
{
    for (uint32_t k = 0; k < n; k++) {
        uint32_t r = pairs[k].row;
        if (rv_col_is_null(arg, r))
            continue;
        uint8_t *a = pairs[k].acc + wc->off;
        const rv_skey *key = &keys[r];
        uint32_t len;
        const char *v = rv_col_str(arg, r, &len);
        int64_t cnt = rd_i(a, 1);
        bool take = cnt == 0;
        if (!take && (wc->kind == RV_AGG_MIN || wc->kind == RV_AGG_MAX)) {
            uint32_t cl = 0;
            const uint8_t *cur = rv_value_get(s, wc->sid, key, pairs[k].ns, &cl);
            if (!cur)
                cl = 0;
            size_t m = len < cl ? len : cl;
            int c = m ? memcmp(v, cur, m) : 0;
            if (c == 0)
                c = len < cl ? -1 : len > cl ? 1 : 0;
            take = wc->kind == RV_AGG_MIN ? c < 0 : c > 0;
        } else if (!take) {
            int64_t t = time[r], ct = rd_i(a, 2);
            take = wc->kind == RV_AGG_FIRST ? t < ct : t >= ct;
        }
        wr_i(a, 1, cnt + 1);
        if (!take)
            continue;
        if (wc->kind == RV_AGG_FIRST || wc->kind == RV_AGG_LAST)
            wr_i(a, 2, time[r]);
        rv_value_put(s, wc->sid, key, pairs[k].ns, v, len);
    }
}

void rv_wacc_fold(rv_wacc *w, rv_state *s, int call, const rv_column *arg, const int64_t *time,
                  const rv_skey *keys, const rv_wacc_pair *pairs, uint32_t n)
{
    const wcall *wc = &w->calls[call];
    uint32_t off = wc->off;
    if (wc->kind == RV_AGG_COUNT) {
        for (uint32_t k = 0; k < n; k++) {
            uint8_t *a = pairs[k].acc + off;
            if (!arg || !rv_col_is_null(arg, pairs[k].row))
                wr_i(a, 0, rd_i(a, 0) + 1);
        }
        return;
    }
    if (wc->kind == RV_AGG_COUNT_DISTINCT || wc->kind == RV_AGG_APPROX_COUNT_DISTINCT) {
        for (uint32_t k = 0; k < n; k++) {
            uint32_t r = pairs[k].row;
            if (rv_col_is_null(arg, r))
                continue;
            uint8_t tmp[8];
            uint32_t len;
            const uint8_t *v = value_bytes(arg, r, tmp, &len);
            uint64_t h = rv_hash_bytes(v, len, 0x5eed);
            if (wc->kind == RV_AGG_COUNT_DISTINCT) {
                dset_add(s, wc->sid, &keys[r], pairs[k].ns, v, len, h);
            } else {
                uint8_t *regs = rv_value_upsert(s, wc->sid, &keys[r], pairs[k].ns, RV_HLL_BYTES, NULL, NULL);
                rv_hll_add(regs, h);
            }
        }
        return;
    }
    if (wc->arg == RV_T_STRING) {
        fold_string(wc, s, arg, time, keys, pairs, n);
        return;
    }
    bool f = is_float(wc->arg);
    for (uint32_t k = 0; k < n; k++) {
        uint32_t r = pairs[k].row;
        if (rv_col_is_null(arg, r))
            continue;
        uint8_t *a = pairs[k].acc + off;
        int64_t cnt = rd_i(a, 1);
        switch (wc->kind) {
        case RV_AGG_SUM:
            if (f)
                wr_f(a, 0, rd_f(a, 0) + arg->d.f64[r]);
            else
                wr_i(a, 0, (int64_t)((uint64_t)rd_i(a, 0) + (uint64_t)arg->d.i64[r])); /* wraps */
            break;
        case RV_AGG_AVG:
            wr_f(a, 0, rd_f(a, 0) + (f ? arg->d.f64[r] : (double)arg->d.i64[r]));
            break;
        case RV_AGG_MIN:
        case RV_AGG_MAX: {
            bool mn = wc->kind == RV_AGG_MIN;
            if (f) {
                double v = arg->d.f64[r], c = rd_f(a, 0);
                if (cnt == 0 || (mn ? v < c : v > c))
                    wr_f(a, 0, v);
            } else {
                int64_t v = int_of(arg, r), c = rd_i(a, 0);
                if (cnt == 0 || (mn ? v < c : v > c))
                    wr_i(a, 0, v);
            }
            break;
        }
        case RV_AGG_FIRST:
        case RV_AGG_LAST: {
            int64_t t = time[r], ct = rd_i(a, 2);
            bool take = cnt == 0 || (wc->kind == RV_AGG_FIRST ? t < ct : t >= ct);
            if (take) {
                if (f)
                    wr_f(a, 0, arg->d.f64[r]);
                else
                    wr_i(a, 0, int_of(arg, r));
                wr_i(a, 2, t);
            }
            break;
        }
        default: break;
        }
        wr_i(a, 1, cnt + 1);
    }
}

/* ---- merging (session windows) ---- */

void rv_wacc_merge(rv_wacc *w, rv_state *s, const rv_skey *k, uint8_t *dst, int64_t dst_ns,
                   const uint8_t *src, int64_t src_ns)
{
    for (int c = 0; c < w->ncalls; c++) {
        const wcall *wc = &w->calls[c];
        uint8_t *d = dst + wc->off;
        const uint8_t *x = src + wc->off;
        bool f = is_float(wc->arg);
        switch (wc->kind) {
        case RV_AGG_COUNT: wr_i(d, 0, rd_i(d, 0) + rd_i(x, 0)); continue;
        case RV_AGG_SUM:
        case RV_AGG_AVG:
            if (f || wc->kind == RV_AGG_AVG)
                wr_f(d, 0, rd_f(d, 0) + rd_f(x, 0));
            else
                wr_i(d, 0, (int64_t)((uint64_t)rd_i(d, 0) + (uint64_t)rd_i(x, 0)));
            wr_i(d, 1, rd_i(d, 1) + rd_i(x, 1));
            continue;
        case RV_AGG_COUNT_DISTINCT: {
            uint32_t len = 0, it = 0, n;
            const uint8_t *set = rv_value_get(s, wc->sid, k, src_ns, &len), *v;
            if (!set)
                continue;
            /* Copy first: adding to dst may move src's entry's neighbours, not src itself,
             * but keep the iteration independent of the state anyway. */
            uint8_t *copy = rv_xmalloc(len ? len : 1);
            memcpy(copy, set, len);
            while (rv_dset_next(copy, len, &it, &v, &n))
                dset_add(s, wc->sid, k, dst_ns, v, n, rv_hash_bytes(v, n, 0x5eed));
            free(copy);
            continue;
        }
        case RV_AGG_APPROX_COUNT_DISTINCT: {
            uint32_t len = 0;
            const uint8_t *regs = rv_value_get(s, wc->sid, k, src_ns, &len);
            if (regs && len == RV_HLL_BYTES) {
                uint8_t copy[RV_HLL_BYTES];
                memcpy(copy, regs, RV_HLL_BYTES);
                uint8_t *dr = rv_value_upsert(s, wc->sid, k, dst_ns, RV_HLL_BYTES, NULL, NULL);
                rv_hll_merge(dr, copy);
            }
            continue;
        }
        default: break;
        }
        /* min, max, first, last */
        int64_t dn = rd_i(d, 1), xn = rd_i(x, 1);
        if (xn == 0)
            continue;
        bool take = dn == 0;
        if (!take && (wc->kind == RV_AGG_FIRST || wc->kind == RV_AGG_LAST))
            take = wc->kind == RV_AGG_FIRST ? rd_i(x, 2) < rd_i(d, 2) : rd_i(x, 2) > rd_i(d, 2);
        uint32_t xl = 0, dl = 0;
        const uint8_t *xs = NULL, *ds = NULL;
        if (wc->arg == RV_T_STRING) {
            xs = rv_value_get(s, wc->sid, k, src_ns, &xl);
            if (!xs)
                xl = 0;
        }
        if (!take && (wc->kind == RV_AGG_MIN || wc->kind == RV_AGG_MAX)) {
            int c;
            if (wc->arg == RV_T_STRING) {
                ds = rv_value_get(s, wc->sid, k, dst_ns, &dl);
                if (!ds)
                    dl = 0;
                size_t m = xl < dl ? xl : dl;
                c = m ? memcmp(xs, ds, m) : 0;
                if (c == 0)
                    c = xl < dl ? -1 : xl > dl ? 1 : 0;
            } else if (f) {
                double a = rd_f(x, 0), b = rd_f(d, 0);
                c = a < b ? -1 : a > b ? 1 : 0;
            } else {
                int64_t a = rd_i(x, 0), b = rd_i(d, 0);
                c = a < b ? -1 : a > b ? 1 : 0;
            }
            take = wc->kind == RV_AGG_MIN ? c < 0 : c > 0;
        }
        wr_i(d, 1, dn + xn);
        if (!take)
            continue;
        memcpy(d, x, 8);
        if (wc->kind == RV_AGG_FIRST || wc->kind == RV_AGG_LAST)
            memcpy(d + 16, x + 16, 8);
        if (wc->arg == RV_T_STRING) {
            uint8_t *copy = rv_xmalloc(xl ? xl : 1);
            if (xl)
                memcpy(copy, xs, xl);
            rv_value_put(s, wc->sid, k, dst_ns, copy, xl);
            free(copy);
        }
    }
}

/* ---- results ---- */

void rv_wacc_result(rv_wacc *w, rv_state *s, int call, const rv_wacc_item *items, uint32_t n, rv_column *out)
{
    const wcall *wc = &w->calls[call];
    rv_col_reset(out);
    rv_col_reserve(out, n);
    for (uint32_t k = 0; k < n; k++) {
        const uint8_t *a = items[k].acc + wc->off;
        switch (wc->kind) {
        case RV_AGG_COUNT: rv_col_set_i64(out, k, rd_i(a, 0)); continue;
        case RV_AGG_COUNT_DISTINCT:
        case RV_AGG_APPROX_COUNT_DISTINCT: {
            uint32_t len = 0;
            const uint8_t *p = rv_value_get(s, wc->sid, &items[k].key, items[k].ns, &len);
            uint64_t cnt = 0;
            if (p && wc->kind == RV_AGG_COUNT_DISTINCT)
                cnt = rv_dset_count(p, len);
            else if (p && len == RV_HLL_BYTES)
                cnt = rv_hll_estimate(p);
            rv_col_set_i64(out, k, (int64_t)cnt);
            continue;
        }
        default: break;
        }
        int64_t cnt = rd_i(a, 1);
        if (cnt == 0) {
            rv_col_set_null(out, k);
            continue;
        }
        if (wc->kind == RV_AGG_AVG) {
            rv_col_set_f64(out, k, rd_f(a, 0) / (double)cnt);
        } else if (wc->res == RV_T_STRING) {
            uint32_t len = 0;
            const uint8_t *p = rv_value_get(s, wc->sid, &items[k].key, items[k].ns, &len);
            rv_col_set_str(out, k, p ? (const char *)p : "", p ? len : 0);
        } else if (wc->res == RV_T_FLOAT64) {
            rv_col_set_f64(out, k, rd_f(a, 0));
        } else if (wc->res == RV_T_BOOL) {
            rv_col_set_bool(out, k, rd_i(a, 0) != 0);
        } else {
            rv_col_set_i64(out, k, rd_i(a, 0));
        }
    }
}

void rv_wacc_clear(rv_wacc *w, rv_state *s, const rv_skey *k, int64_t ns)
{
    for (int c = 0; c < w->ncalls; c++)
        if (w->calls[c].sid >= 0)
            rv_value_delete(s, w->calls[c].sid, k, ns);
}
