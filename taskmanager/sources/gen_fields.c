/* gen_fields: per-field value generators of the `generator` source (see
 * gen_fields.h for the exact formulas, which are the interface). Specs are
 * parsed with one rv_config table per kind, so unknown keys get the usual
 * "did you mean" errors and the docs come from the same tables. Filling a
 * column runs one tight loop per kind; rv_gen_value() computes the same
 * values one at a time and is what tests compare against. */
#include "gen_fields.h"

#include <assert.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "rv_config.h"
#include "rv_mem.h"
#include "rv_time.h"
#include "rv_record.h"

typedef enum {
    K_SEQUENCE,
    K_UNIFORM_INT,
    K_UNIFORM_FLOAT,
    K_CHOICE,
    K_STRING,
    K_EVENT_TIME,
    K_CONSTANT,
} gen_kind;

/* One field's generator, ready to run. */
typedef struct gen_field {
    gen_kind kind;
    rv_type type;
    uint64_t key_val, key_null; /* mix(2^62 + 2f), mix(2^62 + 2f + 1) */
    uint64_t null_thr;          /* null when unull % 1000000 < null_thr */
    int64_t start, step;        /* sequence; event_time start */
    int64_t imin;
    uint64_t irange;            /* max - min + 1; 0 = full range */
    double fmin, fspan;
    uint32_t nvalues;           /* choice (1 for constant) */
    rv_value *values;           /* strings point into strs */
    char **strs;
    uint64_t *cum;              /* cumulative weights, NULL = uniform */
    uint64_t total;
    uint32_t min_len, max_len;
    char *alphabet;
    uint32_t alen;
    double rate;
    int64_t jitter;
    bool start_now;             /* event_time with `start: now` */
} gen_field;

struct rv_gen {
    uint64_t seed;
    int nfields;
    gen_field *f;
};

/* ---- formulas ---- */

static inline uint64_t mix(uint64_t z)
{
    z += UINT64_C(0x9E3779B97F4A7C15);
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

static uint64_t stream_key(int f, int stream)
{
    return mix((UINT64_C(1) << 62) + 2 * (uint64_t)f + (uint64_t)stream);
}

uint64_t rv_gen_mix(uint64_t x) { return mix(x); }

uint64_t rv_gen_u64(uint64_t seed, uint64_t i, int f, int stream)
{
    return mix(seed ^ mix(i) ^ stream_key(f, stream));
}

static inline int64_t seq_value(const gen_field *gf, uint64_t i)
{
    return (int64_t)((uint64_t)gf->start + i * (uint64_t)gf->step);
}

static inline int64_t uint_value(const gen_field *gf, uint64_t u)
{
    if (gf->irange == 0)
        return (int64_t)u;
    return (int64_t)((uint64_t)gf->imin + u % gf->irange);
}

static inline double ufloat_value(const gen_field *gf, uint64_t u)
{
    return gf->fmin + (double)(u >> 11) * 0x1p-53 * gf->fspan;
}

static inline int64_t etime_value(const gen_field *gf, uint64_t i, uint64_t u)
{
    double d = floor((double)i * 1000.0 / gf->rate);
    uint64_t off = d < 9.2e18 ? (uint64_t)(int64_t)d : (uint64_t)INT64_MAX;
    uint64_t j = gf->jitter > 0 ? u % ((uint64_t)gf->jitter + 1) : 0;
    return (int64_t)((uint64_t)gf->start + off - j);
}

static inline uint32_t choice_index(const gen_field *gf, uint64_t u)
{
    if (!gf->cum)
        return (uint32_t)(u % gf->nvalues);
    uint64_t x = u % gf->total;
    /* first j with x < cum[j] (cum is non-decreasing) */
    uint32_t lo = 0, hi = gf->nvalues - 1;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (x < gf->cum[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

static inline uint32_t string_value(const gen_field *gf, uint64_t u, char *out)
{
    uint32_t len = gf->min_len + (uint32_t)(u % ((uint64_t)gf->max_len - gf->min_len + 1));
    for (uint32_t k = 0; k < len; k++)
        out[k] = gf->alphabet[mix(u + k + 1) % gf->alen];
    return len;
}

static inline bool is_null(const gen_field *gf, uint64_t seed, uint64_t mi)
{
    return gf->null_thr && mix(seed ^ mi ^ gf->key_null) % 1000000 < gf->null_thr;
}

rv_value rv_gen_value(const rv_gen *g, int f, uint64_t i, char *buf, size_t cap)
{
    assert(f >= 0 && f < g->nfields);
    const gen_field *gf = &g->f[f];
    rv_value v;
    memset(&v, 0, sizeof(v));
    v.type = gf->type;
    uint64_t mi = mix(i);
    if (is_null(gf, g->seed, mi)) {
        v.is_null = true;
        return v;
    }
    uint64_t u = mix(g->seed ^ mi ^ gf->key_val);
    switch (gf->kind) {
    case K_SEQUENCE: v.v.i = seq_value(gf, i); break;
    case K_UNIFORM_INT: v.v.i = uint_value(gf, u); break;
    case K_UNIFORM_FLOAT: v.v.f = ufloat_value(gf, u); break;
    case K_EVENT_TIME: v.v.i = etime_value(gf, i, u); break;
    case K_CHOICE: v = gf->values[choice_index(gf, u)]; break;
    case K_CONSTANT: v = gf->values[0]; break;
    case K_STRING:
        assert(cap >= gf->max_len);
        v.v.s.ptr = buf;
        v.v.s.len = string_value(gf, u, buf);
        break;
    }
    return v;
}

/* ---- filling columns ---- */

static void fill_col(const rv_gen *g, const gen_field *gf, const uint64_t *mi, uint64_t first,
                     uint64_t stride, uint32_t n, rv_column *c)
{
    rv_col_reset(c);
    rv_col_reserve(c, n);
    uint64_t seed = g->seed;
    if (gf->null_thr) {
        rv_col_enable_nulls(c);
        for (uint32_t k = 0; k < n; k++)
            c->nulls[k] = is_null(gf, seed, mi[k]);
    }
    switch (gf->kind) {
    case K_SEQUENCE:
        for (uint32_t k = 0; k < n; k++)
            c->d.i64[k] = seq_value(gf, first + k * stride);
        break;
    case K_UNIFORM_INT:
        for (uint32_t k = 0; k < n; k++)
            c->d.i64[k] = uint_value(gf, mix(seed ^ mi[k] ^ gf->key_val));
        break;
    case K_EVENT_TIME:
        for (uint32_t k = 0; k < n; k++)
            c->d.i64[k] = etime_value(gf, first + k * stride, mix(seed ^ mi[k] ^ gf->key_val));
        break;
    case K_UNIFORM_FLOAT:
        for (uint32_t k = 0; k < n; k++)
            c->d.f64[k] = ufloat_value(gf, mix(seed ^ mi[k] ^ gf->key_val));
        break;
    case K_CHOICE:
    case K_CONSTANT:
        if (gf->type == RV_T_STRING) {
            for (uint32_t k = 0; k < n; k++) {
                if (gf->null_thr && c->nulls[k]) {
                    rv_col_set_null(c, k);
                    continue;
                }
                uint32_t j = gf->kind == K_CHOICE ? choice_index(gf, mix(seed ^ mi[k] ^ gf->key_val)) : 0;
                rv_col_set_str(c, k, gf->values[j].v.s.ptr, gf->values[j].v.s.len);
            }
            return;
        }
        for (uint32_t k = 0; k < n; k++) {
            uint32_t j = gf->kind == K_CHOICE ? choice_index(gf, mix(seed ^ mi[k] ^ gf->key_val)) : 0;
            const rv_value *v = &gf->values[j];
            switch (gf->type) {
            case RV_T_BOOL: c->d.b[k] = v->v.b; break;
            case RV_T_FLOAT64: c->d.f64[k] = v->v.f; break;
            default: c->d.i64[k] = v->v.i; break;
            }
        }
        break;
    case K_STRING: {
        char *tmp = rv_xmalloc(gf->max_len ? gf->max_len : 1);
        for (uint32_t k = 0; k < n; k++) {
            if (gf->null_thr && c->nulls[k]) {
                rv_col_set_null(c, k);
                continue;
            }
            uint32_t len = string_value(gf, mix(seed ^ mi[k] ^ gf->key_val), tmp);
            rv_col_set_str(c, k, tmp, len);
        }
        free(tmp);
        return;
    }
    }
    /* Fixed-width columns: null rows hold zero, as rv_col_set_null leaves them. */
    if (gf->null_thr) {
        for (uint32_t k = 0; k < n; k++) {
            if (!c->nulls[k])
                continue;
            if (gf->type == RV_T_BOOL)
                c->d.b[k] = 0;
            else if (gf->type == RV_T_FLOAT64)
                c->d.f64[k] = 0;
            else
                c->d.i64[k] = 0;
        }
    }
}

static uint64_t *mix_rows(uint64_t first, uint64_t stride, uint32_t n)
{
    uint64_t *mi = rv_xmalloc((n ? n : 1) * sizeof(uint64_t));
    for (uint32_t k = 0; k < n; k++)
        mi[k] = mix(first + k * stride);
    return mi;
}

void rv_gen_fill_column(const rv_gen *g, int f, uint64_t first, uint64_t stride, uint32_t n,
                        rv_column *c)
{
    assert(f >= 0 && f < g->nfields && c->type == g->f[f].type);
    uint64_t *mi = mix_rows(first, stride, n);
    fill_col(g, &g->f[f], mi, first, stride, n, c);
    free(mi);
}

void rv_gen_fill_batch(const rv_gen *g, uint64_t first, uint64_t stride, uint32_t n, rv_batch *b)
{
    assert(b->schema->nfields == g->nfields);
    uint64_t *mi = mix_rows(first, stride, n);
    rv_batch_reserve(b, n);
    for (int f = 0; f < g->nfields; f++)
        fill_col(g, &g->f[f], mi, first, stride, n, &b->cols[f]);
    b->nrows = n;
    free(mi);
}

int rv_gen_nfields(const rv_gen *g) { return g->nfields; }

bool rv_gen_start_is_now(const rv_gen *g, int f, int64_t *start_ms)
{
    assert(f >= 0 && f < g->nfields);
    const gen_field *gf = &g->f[f];
    if (gf->kind != K_EVENT_TIME || !gf->start_now)
        return false;
    *start_ms = gf->start;
    return true;
}

void rv_gen_set_start(rv_gen *g, int f, int64_t start_ms)
{
    assert(f >= 0 && f < g->nfields);
    assert(g->f[f].kind == K_EVENT_TIME && g->f[f].start_now);
    g->f[f].start = start_ms;
}

size_t rv_gen_string_max(const rv_gen *g, int f)
{
    assert(f >= 0 && f < g->nfields);
    const gen_field *gf = &g->f[f];
    if (gf->type != RV_T_STRING)
        return 0;
    if (gf->kind == K_STRING)
        return gf->max_len;
    size_t m = 0;
    for (uint32_t j = 0; j < gf->nvalues; j++)
        if (gf->values[j].v.s.len > m)
            m = gf->values[j].v.s.len;
    return m;
}

static void field_fini(gen_field *gf)
{
    if (gf->strs)
        for (uint32_t j = 0; j < gf->nvalues; j++)
            free(gf->strs[j]);
    free(gf->strs);
    free(gf->values);
    free(gf->cum);
    free(gf->alphabet);
}

void rv_gen_free(rv_gen *g)
{
    if (!g)
        return;
    for (int f = 0; f < g->nfields; f++)
        field_fini(&g->f[f]);
    free(g->f);
    free(g);
}

/* ---- parsing ---- */

/* Everything any kind may set; each kind's table uses some of it. */
typedef struct spec_cfg {
    double null_probability;
    const rv_ynode *start;
    int64_t step;
    int64_t imin, imax;
    double fmin, fmax;
    const rv_ynode *values, *weights;
    int64_t min_len, max_len;
    char *alphabet;
    double rate;
    int64_t jitter;
    const rv_ynode *value;
} spec_cfg;

#define OFF(f) offsetof(spec_cfg, f)
#define NULL_KEY                                                                        \
    {.name = "null_probability", .type = RV_CFG_FLOAT, .def = "0", .offset = OFF(null_probability), \
     .doc = "Probability (0..1) that a value is null (decided by an independent stream)."}

static const rv_cfg_key seq_keys[] = {
    {.name = "start", .type = RV_CFG_NODE, .offset = OFF(start),
     .doc = "Value of record 0: an integer (for a timestamp field also ISO-8601 text); default 0."},
    {.name = "step", .type = RV_CFG_INT, .def = "1", .offset = OFF(step),
     .doc = "Added for each record number: value = start + i * step."},
    NULL_KEY,
};
static const rv_cfg_key uint_keys[] = {
    {.name = "min", .type = RV_CFG_INT, .offset = OFF(imin), .flags = RV_CFG_REQUIRED,
     .doc = "Smallest value (inclusive)."},
    {.name = "max", .type = RV_CFG_INT, .offset = OFF(imax), .flags = RV_CFG_REQUIRED,
     .doc = "Largest value (inclusive)."},
    NULL_KEY,
};
static const rv_cfg_key ufloat_keys[] = {
    {.name = "min", .type = RV_CFG_FLOAT, .offset = OFF(fmin), .flags = RV_CFG_REQUIRED,
     .doc = "Smallest value (inclusive)."},
    {.name = "max", .type = RV_CFG_FLOAT, .offset = OFF(fmax), .flags = RV_CFG_REQUIRED,
     .doc = "Upper bound (exclusive unless equal to min)."},
    NULL_KEY,
};
static const rv_cfg_key choice_keys[] = {
    {.name = "values", .type = RV_CFG_NODE, .offset = OFF(values), .flags = RV_CFG_REQUIRED,
     .doc = "List of values of the field's type to pick from."},
    {.name = "weights", .type = RV_CFG_NODE, .offset = OFF(weights),
     .doc = "List of non-negative numbers, one per value (default: all equal)."},
    NULL_KEY,
};
static const rv_cfg_key string_keys[] = {
    {.name = "min_len", .type = RV_CFG_INT, .def = "1", .offset = OFF(min_len),
     .doc = "Shortest string, in bytes.", .min = 0, .max = RV_GEN_STRING_MAX},
    {.name = "max_len", .type = RV_CFG_INT, .def = "16", .offset = OFF(max_len),
     .doc = "Longest string, in bytes.", .min = 0, .max = RV_GEN_STRING_MAX},
    {.name = "alphabet", .type = RV_CFG_STRING, .def = "abcdefghijklmnopqrstuvwxyz",
     .offset = OFF(alphabet), .doc = "Bytes the string is made of (each equally likely)."},
    NULL_KEY,
};
static const rv_cfg_key etime_keys[] = {
    {.name = "start", .type = RV_CFG_NODE, .offset = OFF(start),
     .doc = "Event time of record 0: ISO-8601 text or epoch milliseconds; default 2024-01-01T00:00:00Z. "
            "`now`: the wall clock when the source starts, so that with a paced source (`rate`) event "
            "time follows the wall clock (for latency measurements; not reproducible)."},
    {.name = "rate", .type = RV_CFG_FLOAT, .def = "1000", .offset = OFF(rate),
     .doc = "Records per second of event time (> 0)."},
    {.name = "jitter", .type = RV_CFG_DURATION, .def = "0", .offset = OFF(jitter),
     .doc = "Up to this much is subtracted at random from each time (bounded out-of-orderness)."},
    NULL_KEY,
};
static const rv_cfg_key const_keys[] = {
    {.name = "value", .type = RV_CFG_NODE, .offset = OFF(value), .flags = RV_CFG_REQUIRED,
     .doc = "The value, of the field's type."},
    NULL_KEY,
};

#define TYPE_BIT(t) (1u << (t))
#define ALL_TYPES                                                                       \
    (TYPE_BIT(RV_T_BOOL) | TYPE_BIT(RV_T_INT64) | TYPE_BIT(RV_T_FLOAT64) | TYPE_BIT(RV_T_STRING) | \
     TYPE_BIT(RV_T_TIMESTAMP))

typedef struct kind_info {
    const char *name;
    gen_kind kind;
    unsigned types; /* TYPE_BIT mask of field types it can make */
    const char *types_doc;
    const rv_cfg_key *keys;
    size_t nkeys;
    const char *doc;
} kind_info;

#define KEYS(k) k, sizeof(k) / sizeof(k[0])
static const kind_info kinds[] = {
    {"sequence", K_SEQUENCE, TYPE_BIT(RV_T_INT64) | TYPE_BIT(RV_T_TIMESTAMP), "int64, timestamp",
     KEYS(seq_keys), "Counts with the record number i: start + i * step."},
    {"uniform_int", K_UNIFORM_INT, TYPE_BIT(RV_T_INT64) | TYPE_BIT(RV_T_TIMESTAMP),
     "int64, timestamp", KEYS(uint_keys), "Uniform integers in [min, max]."},
    {"uniform_float", K_UNIFORM_FLOAT, TYPE_BIT(RV_T_FLOAT64), "float64", KEYS(ufloat_keys),
     "Uniform floats in [min, max)."},
    {"choice", K_CHOICE, ALL_TYPES, "any", KEYS(choice_keys),
     "One of `values`, uniformly or in proportion to `weights`."},
    {"string", K_STRING, TYPE_BIT(RV_T_STRING), "string", KEYS(string_keys),
     "Random strings of min_len..max_len bytes drawn from `alphabet`."},
    {"event_time", K_EVENT_TIME, TYPE_BIT(RV_T_TIMESTAMP) | TYPE_BIT(RV_T_INT64), "timestamp, int64",
     KEYS(etime_keys),
     "Event times advancing at `rate` records per second of event time, optionally out of order "
     "by up to `jitter`: start + floor(i * 1000 / rate) - random(0..jitter)."},
    {"constant", K_CONSTANT, ALL_TYPES, "any", KEYS(const_keys), "Always `value`."},
};
#define NKINDS (sizeof(kinds) / sizeof(kinds[0]))

static rv_err *node_double(const rv_ynode *n, const char *what, double *out)
{
    if (n->kind != RV_YAML_SCALAR)
        return rv_yerr(n, RV_ERR_INVALID, "%s: expected a number, not a %s", what,
                       rv_ynode_kind_name(n->kind));
    char *end = NULL;
    double d = strtod(n->str, &end);
    if (n->len == 0 || end != n->str + n->len || !isfinite(d))
        return rv_yerr(n, RV_ERR_INVALID, "%s: expected a number, got '%s'", what, n->str);
    *out = d;
    return NULL;
}

static rv_err *node_int(const rv_ynode *n, const char *what, int64_t *out)
{
    rv_err *err = rv_ynode_int(n, out);
    if (!err)
        return NULL;
    rv_err_free(err);
    return rv_yerr(n, RV_ERR_INVALID, "%s: expected an integer, got '%s'", what,
                   n->kind == RV_YAML_SCALAR ? n->str : rv_ynode_kind_name(n->kind));
}

static rv_err *node_timestamp(const rv_ynode *n, const char *what, int64_t *out)
{
    if (n->kind == RV_YAML_SCALAR && rv_ts_parse_iso8601(n->str, n->len, out))
        return NULL;
    rv_err *err = rv_ynode_int(n, out);
    if (!err)
        return NULL;
    rv_err_free(err);
    return rv_yerr(n, RV_ERR_INVALID,
                   "%s: expected epoch milliseconds or an ISO-8601 timestamp, got '%s'", what,
                   n->kind == RV_YAML_SCALAR ? n->str : rv_ynode_kind_name(n->kind));
}

/* Converts scalar n to a value of type t; a string is copied to *owned. */
static rv_err *node_value(const rv_ynode *n, rv_type t, const char *what, rv_value *v, char **owned)
{
    memset(v, 0, sizeof(*v));
    v->type = t;
    if (n->kind != RV_YAML_SCALAR)
        return rv_yerr(n, RV_ERR_INVALID, "%s: expected a %s value, not a %s", what,
                       rv_type_name(t), rv_ynode_kind_name(n->kind));
    rv_err *err = NULL;
    switch (t) {
    case RV_T_BOOL:
        if ((err = rv_ynode_bool(n, &v->v.b))) {
            rv_err_free(err);
            err = rv_yerr(n, RV_ERR_INVALID, "%s: expected true or false, got '%s'", what, n->str);
        }
        break;
    case RV_T_INT64: err = node_int(n, what, &v->v.i); break;
    case RV_T_FLOAT64: err = node_double(n, what, &v->v.f); break;
    case RV_T_TIMESTAMP: err = node_timestamp(n, what, &v->v.i); break;
    case RV_T_STRING:
        if (n->len > UINT32_MAX)
            return rv_yerr(n, RV_ERR_INVALID, "%s: string too long", what);
        *owned = rv_xstrndup(n->str, n->len);
        v->v.s.ptr = *owned;
        v->v.s.len = (uint32_t)n->len;
        break;
    case RV_T_NULL: break;
    }
    return err;
}

static rv_err *parse_choice(const spec_cfg *cfg, gen_field *gf, const char *what)
{
    const rv_ynode *vals = cfg->values;
    if (vals->kind != RV_YAML_SEQ || vals->n == 0)
        return rv_yerr(vals, RV_ERR_INVALID, "%s: 'values' must be a non-empty list", what);
    if (vals->n > UINT32_MAX / 2)
        return rv_yerr(vals, RV_ERR_INVALID, "%s: too many values", what);
    gf->nvalues = (uint32_t)vals->n;
    gf->values = rv_xcalloc(vals->n, sizeof(rv_value));
    gf->strs = rv_xcalloc(vals->n, sizeof(char *));
    for (size_t j = 0; j < vals->n; j++) {
        rv_err *err = node_value(vals->vals[j], gf->type, what, &gf->values[j], &gf->strs[j]);
        if (err)
            return err;
    }
    const rv_ynode *w = cfg->weights;
    if (!w)
        return NULL;
    if (w->kind != RV_YAML_SEQ || w->n != vals->n)
        return rv_yerr(w, RV_ERR_INVALID, "%s: 'weights' must be a list of %zu numbers, one per value",
                       what, vals->n);
    double *d = rv_xcalloc(w->n, sizeof(double));
    bool frac = false;
    rv_err *err = NULL;
    for (size_t j = 0; j < w->n && !err; j++) {
        err = node_double(w->vals[j], what, &d[j]);
        if (!err && (d[j] < 0 || d[j] > 1e12))
            err = rv_yerr(w->vals[j], RV_ERR_INVALID, "%s: a weight must be between 0 and 1e12",
                          what);
        if (!err && d[j] != floor(d[j]))
            frac = true;
    }
    if (!err) {
        gf->cum = rv_xcalloc(w->n, sizeof(uint64_t));
        uint64_t total = 0;
        for (size_t j = 0; j < w->n && !err; j++) {
            uint64_t wj = frac ? (uint64_t)llround(d[j] * 1000000.0) : (uint64_t)d[j];
            if (__builtin_add_overflow(total, wj, &total))
                err = rv_yerr(w, RV_ERR_INVALID, "%s: the weights add up to more than can be counted; use smaller weights",
                              what);
            gf->cum[j] = total;
        }
        gf->total = total;
        if (!err && total == 0)
            err = rv_yerr(w, RV_ERR_INVALID, "%s: the weights must not all be zero", what);
    }
    free(d);
    return err;
}

/* Kind-specific checks and conversion of cfg into gf. */
static rv_err *build_field(const kind_info *ki, const spec_cfg *cfg, const rv_ynode *spec,
                           gen_field *gf, const char *what)
{
    rv_err *err = NULL;
    switch (ki->kind) {
    case K_SEQUENCE:
        gf->step = cfg->step;
        if (cfg->start)
            err = gf->type == RV_T_TIMESTAMP ? node_timestamp(cfg->start, what, &gf->start)
                                             : node_int(cfg->start, what, &gf->start);
        break;
    case K_UNIFORM_INT:
        if (cfg->imin > cfg->imax)
            return rv_yerr(rv_ymap_get_or_self(spec, "max"), RV_ERR_INVALID, "%s: max (%lld) is below min (%lld)",
                           what, (long long)cfg->imax, (long long)cfg->imin);
        gf->imin = cfg->imin;
        gf->irange = (uint64_t)cfg->imax - (uint64_t)cfg->imin + 1;
        break;
    case K_UNIFORM_FLOAT:
        if (!isfinite(cfg->fmin) || !isfinite(cfg->fmax) || cfg->fmin > cfg->fmax ||
            !isfinite(cfg->fmax - cfg->fmin))
            return rv_yerr(rv_ymap_get_or_self(spec, "max"), RV_ERR_INVALID,
                           "%s: min and max must be finite numbers with min <= max", what);
        gf->fmin = cfg->fmin;
        gf->fspan = cfg->fmax - cfg->fmin;
        break;
    case K_CHOICE: err = parse_choice(cfg, gf, what); break;
    case K_STRING: {
        size_t alen = cfg->alphabet ? strlen(cfg->alphabet) : 0;
        if (cfg->min_len > cfg->max_len)
            return rv_yerr(rv_ymap_get_or_self(spec, "max_len"), RV_ERR_INVALID,
                           "%s: max_len (%lld) is below min_len (%lld)", what,
                           (long long)cfg->max_len, (long long)cfg->min_len);
        if (alen == 0 || alen > UINT32_MAX)
            return rv_yerr(rv_ymap_get_or_self(spec, "alphabet"), RV_ERR_INVALID,
                           "%s: 'alphabet' must not be empty", what);
        gf->min_len = (uint32_t)cfg->min_len;
        gf->max_len = (uint32_t)cfg->max_len;
        gf->alphabet = rv_xstrdup(cfg->alphabet);
        gf->alen = (uint32_t)alen;
        break;
    }
    case K_EVENT_TIME:
        if (!(cfg->rate > 0) || !isfinite(cfg->rate))
            return rv_yerr(rv_ymap_get_or_self(spec, "rate"), RV_ERR_INVALID,
                           "%s: 'rate' must be a positive number of records per second", what);
        if (cfg->jitter < 0)
            return rv_yerr(rv_ymap_get_or_self(spec, "jitter"), RV_ERR_INVALID,
                           "%s: 'jitter' must not be negative", what);
        gf->rate = cfg->rate;
        gf->jitter = cfg->jitter;
        gf->start = INT64_C(1704067200000); /* 2024-01-01T00:00:00Z */
        if (cfg->start && cfg->start->kind == RV_YAML_SCALAR && strcmp(cfg->start->str, "now") == 0) {
            gf->start = rv_wall_ms();
            gf->start_now = true;
        } else if (cfg->start)
            err = node_timestamp(cfg->start, what, &gf->start);
        break;
    case K_CONSTANT:
        gf->nvalues = 1;
        gf->values = rv_xcalloc(1, sizeof(rv_value));
        gf->strs = rv_xcalloc(1, sizeof(char *));
        err = node_value(cfg->value, gf->type, what, &gf->values[0], &gf->strs[0]);
        break;
    }
    return err;
}

static const char *const kind_names[NKINDS + 1] = {
    "sequence", "uniform_int", "uniform_float", "choice", "string", "event_time", "constant", NULL,
};

static rv_err *parse_spec(const rv_ynode *spec, const rv_field *field, int f, const char *source,
                          gen_field *gf)
{
    char *what = rv_xasprintf("%s: field '%s'", source, field->name);
    rv_err *err = NULL;
    spec_cfg cfg;
    memset(&cfg, 0, sizeof(cfg));
    const kind_info *ki = NULL;
    if (spec->kind != RV_YAML_MAP) {
        err = rv_yerr(spec, RV_ERR_INVALID, "%s: expected a generator map such as "
                      "{kind: uniform_int, min: 0, max: 9}, not a %s", what, rv_ynode_kind_name(spec->kind));
        goto out;
    }
    const rv_ynode *kn = rv_ymap_get(spec, "kind");
    if (!kn) {
        err = rv_yerr(spec, RV_ERR_INVALID, "%s: missing required key 'kind' (one of sequence, "
                      "uniform_int, uniform_float, choice, string, event_time, constant)", what);
        goto out;
    }
    for (size_t k = 0; kn->kind == RV_YAML_SCALAR && k < NKINDS; k++)
        if (strcmp(kinds[k].name, kn->str) == 0)
            ki = &kinds[k];
    if (!ki) {
        const char *s = kn->kind == RV_YAML_SCALAR ? rv_suggest(kn->str, kind_names, NKINDS) : NULL;
        err = rv_yerr(kn, RV_ERR_INVALID, "%s: unknown generator kind '%s'%s%s%s", what,
                      kn->kind == RV_YAML_SCALAR ? kn->str : rv_ynode_kind_name(kn->kind),
                      s ? " (did you mean '" : "", s ? s : "", s ? "'?)" : "");
        goto out;
    }
    if (!(ki->types & TYPE_BIT(field->type))) {
        err = rv_yerr(kn, RV_ERR_TYPE, "%s: kind '%s' makes %s values, but the field is %s", what,
                      ki->name, ki->types_doc, rv_type_name(field->type));
        goto out;
    }
    static const char *const skip[] = {"kind", NULL};
    err = rv_config_apply(ki->keys, ki->nkeys, spec, skip, what, &cfg);
    if (err)
        goto out;
    if (!(cfg.null_probability >= 0 && cfg.null_probability <= 1)) {
        err = rv_yerr(rv_ymap_get_or_self(spec, "null_probability"), RV_ERR_INVALID,
                      "%s: 'null_probability' must be between 0 and 1", what);
        goto out;
    }
    gf->kind = ki->kind;
    gf->type = field->type;
    gf->key_val = stream_key(f, 0);
    gf->key_null = stream_key(f, 1);
    gf->null_thr = (uint64_t)llround(cfg.null_probability * 1000000.0);
    err = build_field(ki, &cfg, spec, gf, what);
out:
    if (ki)
        rv_config_free(ki->keys, ki->nkeys, &cfg);
    free(what);
    return err;
}

rv_err *rv_gen_new(const rv_ynode *fields, const rv_schema *schema, uint64_t seed,
                   const char *what, rv_gen **out)
{
    if (!fields)
        return rv_err_new(RV_ERR_INVALID, "%s: missing required key 'fields'", what);
    if (fields->kind != RV_YAML_MAP)
        return rv_yerr(fields, RV_ERR_INVALID,
                       "%s: 'fields' must be a map of field name to generator, not a %s", what,
                       rv_ynode_kind_name(fields->kind));
    const char **names = rv_xcalloc((size_t)schema->nfields + 1, sizeof(char *));
    for (int f = 0; f < schema->nfields; f++)
        names[f] = schema->fields[f].name;
    rv_err *err = NULL;
    for (size_t k = 0; k < fields->n && !err; k++) {
        const rv_ynode *key = fields->keys[k];
        if (rv_schema_find(schema, key->str) >= 0)
            continue;
        const char *s = rv_suggest(key->str, names, (size_t)schema->nfields);
        err = rv_yerr(key, RV_ERR_INVALID, "%s: 'fields' has a generator for '%s', which is not "
                      "a field of the schema%s%s%s", what, key->str,
                      s ? " (did you mean '" : "", s ? s : "", s ? "'?)" : "");
    }
    free(names);
    if (err)
        return err;

    rv_gen *g = rv_xcalloc(1, sizeof(*g));
    g->seed = seed;
    g->nfields = schema->nfields;
    g->f = rv_xcalloc((size_t)(schema->nfields ? schema->nfields : 1), sizeof(gen_field));
    for (int f = 0; f < schema->nfields && !err; f++) {
        const rv_field *field = &schema->fields[f];
        const rv_ynode *spec = rv_ymap_get(fields, field->name);
        if (!spec)
            err = rv_yerr(fields, RV_ERR_INVALID, "%s: schema field '%s' has no generator in "
                          "'fields'", what, field->name);
        else
            err = parse_spec(spec, field, f, what, &g->f[f]);
    }
    if (err) {
        rv_gen_free(g);
        return err;
    }
    *out = g;
    return NULL;
}

void rv_gen_doc(FILE *out)
{
    fprintf(out, "Each schema field has one generator under `fields`, a map with `kind` and the "
                 "kind's keys. Record number i counts from 0 over the whole source; with "
                 "parallelism P, instance s makes records s, s+P, s+2P, ... The value of a field "
                 "depends only on (seed, i, field), so output is identical for any parallelism.\n\n");
    for (size_t k = 0; k < NKINDS; k++) {
        fprintf(out, "#### `kind: %s` (%s)\n\n%s\n\n", kinds[k].name, kinds[k].types_doc,
                kinds[k].doc);
        rv_config_doc(kinds[k].keys, kinds[k].nkeys, out);
        fputc('\n', out);
    }
}
