/* rv_expr_func: the built-in functions of the expression language, their
 * signatures (used by the checker) and their vectorised implementations.
 * Each function is evaluated for a whole batch: the switch on the
 * function happens once, then a loop over the rows. Arguments arrive as
 * views (rv_vec) which may be columns or literals; row i of a view is at
 * index (i & m). Exact semantics (1-based substr, 0-based split_index,
 * ISO-8601 parsing, float formatting) are documented in rv_expr.c. */
#include <assert.h>
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "rv_expr_internal.h"
#include "rv_mem.h"

#define S RV_TM(RV_T_STRING)
#define I RV_TM(RV_T_INT64)
#define B RV_TM(RV_T_BOOL)
#define TS RV_TM(RV_T_TIMESTAMP)

static const rv_efunc_info funcs[] = {
    {"if", RV_FN_IF, 3, 3, {B, RV_TM_ANY, RV_TM_ANY}, false},
    {"coalesce", RV_FN_COALESCE, 1, -1, {RV_TM_ANY, RV_TM_ANY, RV_TM_ANY}, false},
    {"lower", RV_FN_LOWER, 1, 1, {S, 0, 0}, false},
    {"upper", RV_FN_UPPER, 1, 1, {S, 0, 0}, false},
    {"len", RV_FN_LEN, 1, 1, {S, 0, 0}, false},
    {"contains", RV_FN_CONTAINS, 2, 2, {S, S, 0}, false},
    {"starts_with", RV_FN_STARTS_WITH, 2, 2, {S, S, 0}, false},
    {"ends_with", RV_FN_ENDS_WITH, 2, 2, {S, S, 0}, false},
    {"substr", RV_FN_SUBSTR, 2, 3, {S, I, I}, false},
    {"split_index", RV_FN_SPLIT_INDEX, 3, 3, {S, S, I}, false},
    {"regex_extract", RV_FN_REGEX_EXTRACT, 2, 3, {S, S, I}, false},
    {"abs", RV_FN_ABS, 1, 1, {RV_TM_NUM, 0, 0}, false},
    {"round", RV_FN_ROUND, 1, 2, {RV_TM_NUM, I, 0}, false},
    {"hour", RV_FN_HOUR, 1, 1, {TS | I, 0, 0}, false},
    {"int", RV_FN_INT, 1, 1, {B | RV_TM_NUM | S | TS, 0, 0}, false},
    {"float", RV_FN_FLOAT, 1, 1, {B | RV_TM_NUM | S | TS, 0, 0}, false},
    {"string", RV_FN_STRING, 1, 1, {RV_TM_ANY, 0, 0}, false},
    {"bool", RV_FN_BOOL, 1, 1, {B | RV_TM_NUM | S, 0, 0}, false},
    {"timestamp", RV_FN_TIMESTAMP, 1, 1, {RV_TM_NUM | S | TS, 0, 0}, false},
    {"count", RV_FN_COUNT, 0, 1, {RV_TM_ANY, 0, 0}, true},
    {"sum", RV_FN_SUM, 1, 1, {RV_TM_ANY, 0, 0}, true},
    {"min", RV_FN_MIN, 1, 1, {RV_TM_ANY, 0, 0}, true},
    {"max", RV_FN_MAX, 1, 1, {RV_TM_ANY, 0, 0}, true},
    {"avg", RV_FN_AVG, 1, 1, {RV_TM_ANY, 0, 0}, true},
    {"first", RV_FN_FIRST, 1, 1, {RV_TM_ANY, 0, 0}, true},
    {"last", RV_FN_LAST, 1, 1, {RV_TM_ANY, 0, 0}, true},
    {"count_distinct", RV_FN_COUNT_DISTINCT, 1, 1, {RV_TM_ANY, 0, 0}, true},
    {"approx_count_distinct", RV_FN_APPROX_COUNT_DISTINCT, 1, 1, {RV_TM_ANY, 0, 0}, true},
};

#undef S
#undef I
#undef B
#undef TS

#define NFUNCS (sizeof(funcs) / sizeof(funcs[0]))

static const char *const func_names[] = {
    "if", "coalesce", "lower", "upper", "len", "contains", "starts_with", "ends_with",
    "substr", "split_index", "regex_extract", "abs", "round", "hour", "int", "float",
    "string", "bool", "timestamp", "count", "sum", "min", "max", "avg",
    "first", "last", "count_distinct", "approx_count_distinct",
};

_Static_assert(sizeof(func_names) / sizeof(func_names[0]) == NFUNCS, "one name per function");

const rv_efunc_info *rv_efunc_find(const char *name)
{
    for (size_t k = 0; k < NFUNCS; k++)
        if (strcmp(funcs[k].name, name) == 0)
            return &funcs[k];
    return NULL;
}

const char *const *rv_efunc_names(size_t *n)
{
    *n = NFUNCS;
    return func_names;
}

/* ---- scalar helpers ---- */

static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
    /* Days since 1970-01-01 in the proleptic Gregorian calendar, counting
     * years from March so that the leap day ends the year. */
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static bool digits(const char *s, size_t len, size_t *p, int n, int *out)
{
    int v = 0;
    for (int k = 0; k < n; k++) {
        if (*p >= len || !isdigit((unsigned char)s[*p]))
            return false;
        v = v * 10 + (s[(*p)++] - '0');
    }
    *out = v;
    return true;
}

bool rv_expr_parse_iso8601(const char *s, size_t len, int64_t *ms)
{
    size_t p = 0;
    int y, mo, d, h = 0, mi = 0, sec = 0, frac = 0;
    if (!digits(s, len, &p, 4, &y) || p >= len || s[p++] != '-' || !digits(s, len, &p, 2, &mo) || p >= len ||
        s[p++] != '-' || !digits(s, len, &p, 2, &d))
        return false;
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] + (mo == 2 && leap))
        return false;
    int64_t off_min = 0;
    if (p < len) {
        if (s[p] != 'T' && s[p] != 't' && s[p] != ' ')
            return false;
        p++;
        if (!digits(s, len, &p, 2, &h) || p >= len || s[p++] != ':' || !digits(s, len, &p, 2, &mi))
            return false;
        if (p < len && s[p] == ':') {
            p++;
            if (!digits(s, len, &p, 2, &sec))
                return false;
            if (p < len && (s[p] == '.' || s[p] == ',')) {
                p++;
                int nd = 0;
                while (p < len && isdigit((unsigned char)s[p])) {
                    if (nd < 3)
                        frac = frac * 10 + (s[p] - '0');
                    nd++;
                    p++;
                }
                if (nd == 0)
                    return false;
                for (; nd < 3; nd++)
                    frac *= 10;
            }
        }
        if (h > 23 || mi > 59 || sec > 59)
            return false;
        if (p < len && (s[p] == 'Z' || s[p] == 'z')) {
            p++;
        } else if (p < len && (s[p] == '+' || s[p] == '-')) {
            int sign = s[p++] == '-' ? -1 : 1, oh, om = 0;
            if (!digits(s, len, &p, 2, &oh))
                return false;
            if (p < len && s[p] == ':')
                p++;
            if (p < len && !digits(s, len, &p, 2, &om))
                return false;
            if (oh > 23 || om > 59)
                return false;
            off_min = sign * (oh * 60 + om);
        }
        if (p != len)
            return false;
    }
    int64_t days = days_from_civil(y, mo, d);
    *ms = ((days * 24 + h) * 60 + mi) * 60000 + (int64_t)sec * 1000 + frac - off_min * 60000;
    return true;
}

static void trim(const char **s, uint32_t *len)
{
    while (*len && isspace((unsigned char)**s)) {
        (*s)++;
        (*len)--;
    }
    while (*len && isspace((unsigned char)(*s)[*len - 1]))
        (*len)--;
}

static bool parse_i64(const char *s, uint32_t len, int64_t *out)
{
    trim(&s, &len);
    uint32_t p = 0;
    bool neg = false;
    if (p < len && (s[p] == '+' || s[p] == '-'))
        neg = s[p++] == '-';
    if (p == len)
        return false;
    uint64_t v = 0, lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; p < len; p++) {
        if (!isdigit((unsigned char)s[p]))
            return false;
        uint64_t d = (uint64_t)(s[p] - '0');
        if (v > (lim - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = (int64_t)(neg ? 0u - v : v);
    return true;
}

/* NUL-terminated copy of a row in the node's scratch buffer. */
static const char *cstr(rv_enode *n, const char *s, uint32_t len)
{
    rv_xgrow((void **)&n->buf, &n->buf_cap, (size_t)len + 1, 1);
    memcpy(n->buf, s, len);
    n->buf[len] = '\0';
    return n->buf;
}

static bool parse_f64(rv_enode *n, const char *s, uint32_t len, double *out)
{
    trim(&s, &len);
    if (len == 0)
        return false;
    const char *z = cstr(n, s, len);
    char *end;
    *out = strtod(z, &end);
    return end == z + len;
}

/* float64 -> int64 truncating toward zero; false when out of range. */
static bool f64_to_i64(double f, int64_t *out)
{
    if (!(f >= -9223372036854775808.0 && f < 9223372036854775808.0))
        return false;
    *out = (int64_t)f;
    return true;
}

static size_t fmt_i64(int64_t x, char *buf)
{
    char tmp[24];
    size_t n = 0;
    uint64_t u = x < 0 ? 0u - (uint64_t)x : (uint64_t)x;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    size_t k = 0;
    if (x < 0)
        buf[k++] = '-';
    while (n)
        buf[k++] = tmp[--n];
    return k;
}

/* Shortest of %.15g, %.16g, %.17g that reads back as the same double. */
static size_t fmt_f64(double x, char *buf, size_t cap)
{
    int len = 0;
    for (int prec = 15; prec <= 17; prec++) {
        len = snprintf(buf, cap, "%.*g", prec, x);
        if (prec == 17 || strtod(buf, NULL) == x)
            break;
    }
    return (size_t)len;
}

static double round_digits(double x, int64_t d)
{
    if (d == 0)
        return round(x);
    if (d > 0) {
        if (d > 330)
            return x;
        double p = pow(10.0, (double)d), y = x * p;
        return isfinite(y) ? round(y) / p : x;
    }
    if (d < -330)
        return x * 0.0;
    double p = pow(10.0, (double)-d);
    return round(x / p) * p;
}

static int64_t round_int(int64_t x, int64_t d)
{
    if (d >= 0)
        return x;
    if (d <= -19)
        return 0;
    int64_t p = 1;
    for (int64_t k = 0; k < -d; k++)
        p *= 10;
    int64_t q = x / p, r = x % p;
    int64_t ar = r < 0 ? -r : r;
    if (ar >= p - ar)
        q += x < 0 ? -1 : 1;
    return (int64_t)((uint64_t)q * (uint64_t)p);
}

/* ---- null maps ---- */

/* Null map of c = OR of the arguments'. With force, the map always exists
 * (all zero when no argument is null) so that rows can be added to it. */
static uint8_t *args_nulls(rv_column *c, uint32_t nr, const rv_vec *args, int na, bool force)
{
    bool any = false;
    for (int k = 0; k < na; k++)
        any |= args[k].nulls != NULL;
    if (!any && !force) {
        c->has_nulls = false;
        return NULL;
    }
    uint8_t *nl = rv_col_nulls_raw(c);
    memset(nl, 0, nr);
    for (int k = 0; k < na; k++) {
        const rv_vec *v = &args[k];
        if (!v->nulls)
            continue;
        if (!v->m) {
            if (v->nulls[0])
                memset(nl, 1, nr);
        } else {
            for (uint32_t i = 0; i < nr; i++)
                nl[i] |= v->nulls[i];
        }
    }
    return nl;
}

/* ---- string functions ---- */

static void case_map(const rv_vec *a, uint32_t nr, rv_column *c, bool upper)
{
    char lo = upper ? 'a' : 'A', hi = upper ? 'z' : 'Z';
    if (a->m) {
        /* A column: map its bytes in one pass and rebase the offsets. */
        uint32_t base = a->off[0], total = a->off[nr] - base;
        char *dst = rv_col_str_room(c, total);
        const char *src = a->data + base;
        for (uint32_t j = 0; j < total; j++) {
            char ch = src[j];
            dst[j] = (char)(ch >= lo && ch <= hi ? ch ^ 0x20 : ch);
        }
        for (uint32_t i = 0; i < nr; i++)
            c->offsets[i + 1] = a->off[i + 1] - base;
        c->data_len = total;
        return;
    }
    uint32_t len;
    const char *s = rv_vec_str(a, 0, &len);
    char *dst = rv_col_str_room(c, (size_t)len * nr);
    for (uint32_t i = 0; i < nr; i++) {
        for (uint32_t j = 0; j < len; j++) {
            char ch = s[j];
            dst[(size_t)i * len + j] = (char)(ch >= lo && ch <= hi ? ch ^ 0x20 : ch);
        }
        c->offsets[i + 1] = (uint32_t)((size_t)(i + 1) * len);
    }
    c->data_len = (size_t)len * nr;
}

/* Total bytes of a string view over nr rows: an upper bound for the
 * output of functions that return a part of each row. */
static size_t str_total(const rv_vec *a, uint32_t nr)
{
    if (a->m)
        return a->off[nr] - a->off[0];
    return (size_t)(a->off[1] - a->off[0]) * nr;
}

static void match_fn(rv_efn fn, const rv_vec *a, const rv_vec *b, uint32_t nr, uint8_t *out)
{
    for (uint32_t i = 0; i < nr; i++) {
        uint32_t sl, pl;
        const char *s = rv_vec_str(a, i, &sl), *p = rv_vec_str(b, i, &pl);
        uint8_t r;
        if (pl > sl)
            r = 0;
        else if (fn == RV_FN_STARTS_WITH)
            r = memcmp(s, p, pl) == 0;
        else if (fn == RV_FN_ENDS_WITH)
            r = memcmp(s + sl - pl, p, pl) == 0;
        else
            r = pl == 0 || memmem(s, sl, p, pl) != NULL;
        out[i] = r;
    }
}

static void substr_fn(const rv_vec *args, int na, uint32_t nr, rv_column *c)
{
    char *dst = rv_col_str_room(c, str_total(&args[0], nr));
    size_t off = 0;
    for (uint32_t i = 0; i < nr; i++) {
        uint32_t sl;
        const char *s = rv_vec_str(&args[0], i, &sl);
        int64_t st = args[1].d.i[i & args[1].m];
        int64_t ln = na == 3 ? args[2].d.i[i & args[2].m] : INT64_MAX;
        size_t take = 0, from = 0;
        if (st >= 1 && st <= (int64_t)sl && ln > 0) {
            from = (size_t)(st - 1);
            take = sl - from;
            if ((uint64_t)ln < take)
                take = (size_t)ln;
        }
        memcpy(dst + off, s + from, take);
        off += take;
        c->offsets[i + 1] = (uint32_t)off;
    }
    c->data_len = off;
}

static void split_index_fn(const rv_vec *args, uint32_t nr, rv_column *c, uint8_t *nl)
{
    char *dst = rv_col_str_room(c, str_total(&args[0], nr));
    size_t off = 0;
    for (uint32_t i = 0; i < nr; i++) {
        uint32_t sl, pl;
        const char *s = rv_vec_str(&args[0], i, &sl), *sep = rv_vec_str(&args[1], i, &pl);
        int64_t want = args[2].d.i[i & args[2].m];
        size_t from = 0, to = 0;
        bool found = false;
        if (!nl[i] && pl > 0 && want >= 0) {
            size_t pos = 0;
            for (int64_t piece = 0;; piece++) {
                const char *hit = memmem(s + pos, sl - pos, sep, pl);
                size_t end = hit ? (size_t)(hit - s) : sl;
                if (piece == want) {
                    from = pos;
                    to = end;
                    found = true;
                    break;
                }
                if (!hit)
                    break;
                pos = end + pl;
            }
        }
        nl[i] |= !found;
        memcpy(dst + off, s + from, to - from);
        off += to - from;
        c->offsets[i + 1] = (uint32_t)off;
    }
    c->data_len = off;
}

static void regex_fn(rv_enode *n, const rv_vec *args, uint32_t nr, rv_column *c, uint8_t *nl)
{
    for (uint32_t i = 0; i < nr; i++) {
        size_t from = 0, to = 0;
        uint32_t sl = 0;
        const char *s = NULL;
        if (!nl[i]) {
            s = rv_vec_str(&args[0], i, &sl);
            const char *z = cstr(n, s, sl);
            regmatch_t *g = &n->pm[n->group];
            if (regexec(n->re, z, (size_t)n->group + 1, n->pm, 0) == 0 && g->rm_so >= 0) {
                from = (size_t)g->rm_so;
                to = (size_t)g->rm_eo;
            } else {
                nl[i] = 1;
            }
        }
        memcpy(rv_col_str_room(c, to - from), s ? s + from : "", to - from);
        rv_col_str_commit(c, i, to - from);
    }
}

/* ---- conversions ---- */

static void to_string_fn(const rv_vec *a, uint32_t nr, rv_column *c)
{
    enum { MAXLEN = 40 }; /* longest formatted value, with room */
    char *dst = rv_col_str_room(c, (size_t)nr * MAXLEN);
    size_t off = 0;
    uint32_t m = a->m;
    switch (a->type) {
    case RV_T_BOOL:
        for (uint32_t i = 0; i < nr; i++) {
            bool v = a->d.b[i & m] != 0;
            memcpy(dst + off, v ? "true" : "false", 5);
            off += v ? 4 : 5;
            c->offsets[i + 1] = (uint32_t)off;
        }
        break;
    case RV_T_INT64:
    case RV_T_TIMESTAMP:
        for (uint32_t i = 0; i < nr; i++) {
            off += fmt_i64(a->d.i[i & m], dst + off);
            c->offsets[i + 1] = (uint32_t)off;
        }
        break;
    case RV_T_FLOAT64:
        for (uint32_t i = 0; i < nr; i++) {
            off += fmt_f64(a->d.f[i & m], dst + off, MAXLEN);
            c->offsets[i + 1] = (uint32_t)off;
        }
        break;
    default: assert(!"string() of a string is a view"); break;
    }
    c->data_len = off;
}

static bool parse_bool(const char *s, uint32_t len, uint8_t *out)
{
    trim(&s, &len);
    if ((len == 4 && strncasecmp(s, "true", 4) == 0) || (len == 1 && s[0] == '1'))
        *out = 1;
    else if ((len == 5 && strncasecmp(s, "false", 5) == 0) || (len == 1 && s[0] == '0'))
        *out = 0;
    else
        return false;
    return true;
}

/* int(), float(), bool(), timestamp() between different storage types. */
static void convert_fn(rv_enode *n, const rv_vec *a, uint32_t nr, rv_column *c)
{
    rv_type to = n->type, from = a->type;
    uint32_t m = a->m;
    if (to == RV_T_FLOAT64 && rv_type_is_int(from)) {
        args_nulls(c, nr, a, 1, false);
        for (uint32_t i = 0; i < nr; i++)
            c->d.f64[i] = (double)a->d.i[i & m];
        return;
    }
    if (to == RV_T_FLOAT64 && from == RV_T_BOOL) {
        args_nulls(c, nr, a, 1, false);
        for (uint32_t i = 0; i < nr; i++)
            c->d.f64[i] = a->d.b[i & m] != 0;
        return;
    }
    if (rv_type_is_int(to) && from == RV_T_BOOL) {
        args_nulls(c, nr, a, 1, false);
        for (uint32_t i = 0; i < nr; i++)
            c->d.i64[i] = a->d.b[i & m] != 0;
        return;
    }
    if (to == RV_T_BOOL && rv_type_is_int(from)) {
        args_nulls(c, nr, a, 1, false);
        for (uint32_t i = 0; i < nr; i++)
            c->d.b[i] = a->d.i[i & m] != 0;
        return;
    }
    /* The rest can produce nulls of their own. */
    uint8_t *nl = args_nulls(c, nr, a, 1, true);
    for (uint32_t i = 0; i < nr; i++) {
        uint32_t k = i & m;
        bool ok = true;
        if (nl[i]) {
            ok = false;
        } else if (from == RV_T_FLOAT64) {
            double f = a->d.f[k];
            if (to == RV_T_BOOL) {
                ok = !isnan(f);
                c->d.b[i] = f != 0.0;
            } else {
                ok = f64_to_i64(f, &c->d.i64[i]);
            }
        } else {
            assert(from == RV_T_STRING);
            uint32_t len;
            const char *s = rv_vec_str(a, i, &len);
            switch (to) {
            case RV_T_INT64: ok = parse_i64(s, len, &c->d.i64[i]); break;
            case RV_T_FLOAT64: ok = parse_f64(n, s, len, &c->d.f64[i]); break;
            case RV_T_BOOL: ok = parse_bool(s, len, &c->d.b[i]); break;
            case RV_T_TIMESTAMP: ok = rv_expr_parse_iso8601(s, len, &c->d.i64[i]); break;
            default: ok = false; break;
            }
        }
        if (!ok) {
            nl[i] = 1;
            if (to == RV_T_BOOL)
                c->d.b[i] = 0;
            else if (to == RV_T_FLOAT64)
                c->d.f64[i] = 0.0;
            else
                c->d.i64[i] = 0;
        }
    }
}

void rv_efunc_eval(rv_enode *n, const rv_vec *args, uint32_t nr, rv_column *c)
{
    const rv_vec *a = &args[0];
    uint32_t m = a->m;
    switch ((rv_efn)n->op) {
    case RV_FN_LOWER:
    case RV_FN_UPPER:
        args_nulls(c, nr, args, 1, false);
        case_map(a, nr, c, n->op == RV_FN_UPPER);
        break;
    case RV_FN_LEN:
        args_nulls(c, nr, args, 1, false);
        for (uint32_t i = 0; i < nr; i++)
            c->d.i64[i] = a->off[(i & m) + 1] - a->off[i & m];
        break;
    case RV_FN_CONTAINS:
    case RV_FN_STARTS_WITH:
    case RV_FN_ENDS_WITH:
        args_nulls(c, nr, args, 2, false);
        match_fn((rv_efn)n->op, a, &args[1], nr, c->d.b);
        break;
    case RV_FN_SUBSTR:
        args_nulls(c, nr, args, n->nargs, false);
        substr_fn(args, n->nargs, nr, c);
        break;
    case RV_FN_SPLIT_INDEX:
        split_index_fn(args, nr, c, args_nulls(c, nr, args, 3, true));
        break;
    case RV_FN_REGEX_EXTRACT:
        regex_fn(n, args, nr, c, args_nulls(c, nr, args, 1, true));
        break;
    case RV_FN_ABS:
        args_nulls(c, nr, args, 1, false);
        if (c->type == RV_T_FLOAT64) {
            for (uint32_t i = 0; i < nr; i++)
                c->d.f64[i] = fabs(a->d.f[i & m]);
        } else {
            for (uint32_t i = 0; i < nr; i++) {
                int64_t x = a->d.i[i & m];
                c->d.i64[i] = x < 0 ? (int64_t)(0u - (uint64_t)x) : x;
            }
        }
        break;
    case RV_FN_ROUND: {
        args_nulls(c, nr, args, n->nargs, false);
        const rv_vec *d = n->nargs == 2 ? &args[1] : NULL;
        if (c->type == RV_T_FLOAT64) {
            for (uint32_t i = 0; i < nr; i++)
                c->d.f64[i] = round_digits(a->d.f[i & m], d ? d->d.i[i & d->m] : 0);
        } else {
            for (uint32_t i = 0; i < nr; i++)
                c->d.i64[i] = round_int(a->d.i[i & m], d ? d->d.i[i & d->m] : 0);
        }
        break;
    }
    case RV_FN_HOUR:
        args_nulls(c, nr, args, 1, false);
        for (uint32_t i = 0; i < nr; i++) {
            int64_t x = a->d.i[i & m], h = x / 3600000;
            if (x % 3600000 < 0)
                h--;
            h %= 24;
            c->d.i64[i] = h < 0 ? h + 24 : h;
        }
        break;
    case RV_FN_STRING:
        args_nulls(c, nr, args, 1, false);
        to_string_fn(a, nr, c);
        break;
    case RV_FN_INT:
    case RV_FN_FLOAT:
    case RV_FN_BOOL:
    case RV_FN_TIMESTAMP: convert_fn(n, a, nr, c); break;
    default: assert(!"not a row function"); break;
    }
}
