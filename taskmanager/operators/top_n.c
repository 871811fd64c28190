/* top_n operator: the best n rows of each window (per key when keyed),
 * ranked by `order_by`, emitted when the watermark passes the window.
 *
 * The input comes from a windowed operator (window_aggregate): every row
 * carries timestamps window_start and window_end. Rows are grouped by
 * (key, window_end); with key_by the key is the key_by tuple, without it
 * one empty key in key group 0 (plan() then asks for parallelism 1).
 *
 * State (keyed value state, id 0, namespace window_end) holds the group's
 * current best rows, best first:
 *   u32 count | u32 offset of the last entry | entries
 *   entry: u32 sort-key length | u32 row length | sort key | row
 * (u32 little-endian). The row is rv_key_encode() of all input columns and
 * is decoded with rv_key_decode() when the window fires. The sort key is an
 * order-preserving byte string of the order_by fields, so ranking is
 * memcmp: per field a null flag (0, or 1 for null, so nulls come last in
 * either direction) then the value - bool as one byte, int64 and timestamp
 * big-endian with the sign bit flipped, float64 as its IEEE bits made
 * monotonic (-0 = 0, NaN above every number), strings with 0x00 escaped as
 * 00 FF and terminated by 00 00 - with every value byte inverted for desc.
 * A candidate that is not strictly better than the worst of a full group
 * costs one probe and one memcmp; otherwise it is inserted after the rows
 * that compare equal (ties: the earlier row wins) and the worst is dropped.
 *
 * The first row of a group registers an event-time timer at
 * window_end - 1 (namespace window_end). on_watermark(wm) pops the timers
 * <= wm and emits each group's rows in rank order with a 1-based int64
 * rank appended; timers pop in (time, registration) order, so windows come
 * in window_end order and groups of a window in the order their first rows
 * arrived. finish() fires the rest. Rows for a window whose timer already
 * fired (window_end - 1 <= watermark) and rows with a null window_end are
 * dropped and counted (logged once at finish). */
#include <endian.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "rv_expr.h"
#include "rv_hash.h"
#include "rv_log.h"
#include "rv_mem.h"
#include "rv_plugin.h"
#include "rv_state.h"
#include "row_keys.h"

#define OUT_ROWS RV_BATCH_DEFAULT_ROWS
#define MAX_N 10000
/* window_end within +-2^62 ms keeps window_end - 1 far from overflow. */
#define MAX_TS ((int64_t)1 << 62)
/* State id of the per-(key, window) best rows. */
#define SID_ROWS 0
#define HDR 8  /* count, offset of the last entry */
#define EHDR 8 /* sort-key length, row length */

typedef struct topn_cfg {
    int64_t n;
    char *order_by;
    char *rank_field;
} topn_cfg;

static const rv_cfg_key topn_keys[] = {
    {.name = "n",
     .type = RV_CFG_INT,
     .offset = offsetof(topn_cfg, n),
     .doc = "How many rows to keep per window (and key).",
     .flags = RV_CFG_REQUIRED,
     .min = 1,
     .max = MAX_N},
    {.name = "order_by",
     .type = RV_CFG_STRING,
     .offset = offsetof(topn_cfg, order_by),
     .doc = "Comma-separated input fields, each optionally followed by `asc` (the default) or "
            "`desc`, e.g. `hits desc, domain asc`; later fields break ties of earlier ones. "
            "Fields may be numbers, timestamps, bools or strings (byte order); nulls come last "
            "and NaN above every number. Names that are not identifiers go in backquotes.",
     .flags = RV_CFG_REQUIRED},
    {.name = "rank_field",
     .type = RV_CFG_STRING,
     .def = "rank",
     .offset = offsetof(topn_cfg, rank_field),
     .doc = "Name of the int64 output field holding the rank (1 = best), appended after the "
            "input fields."},
};

/* What plan() and open() both derive from the config. */
typedef struct tspec {
    int64_t n;
    int nord;
    int *ord_field; /* input field of each order_by entry */
    bool *ord_desc;
    int we_field;
    const char *rank; /* points into the config */
} tspec;

typedef struct topn_state {
    tspec sp;
    char what[160];
    rv_schema *out;
    int nin;
    rv_row_keys *rk; /* keys (none: one empty key in key group 0) */
    /* per-batch scratch */
    uint8_t *skbuf, *rowbuf;
    size_t skcap, rowcap;
    rv_batch *pending; /* output being filled while firing */
    int64_t wm;
    uint64_t late, no_window;
} topn_state;

/* ---- configuration ---- */

static void spec_fini(tspec *sp)
{
    free(sp->ord_field);
    free(sp->ord_desc);
    memset(sp, 0, sizeof(*sp));
}

/* A positioned error at byte `off` of scalar `n`, or an unpositioned one
 * when n is NULL (at run time). */
static rv_err *at_err(const rv_ynode *n, size_t off, rv_code code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static rv_err *at_err(const rv_ynode *n, size_t off, rv_code code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = rv_xvasprintf(fmt, ap);
    va_end(ap);
    rv_err *err = n && n->kind == RV_YAML_SCALAR ? rv_yerr_at(n, off, code, "%s", msg)
                                                 : rv_yerr(n, code, "%s", msg);
    free(msg);
    return err;
}

static bool ident_start(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static bool ident_char(char c)
{
    return ident_start(c) || (c >= '0' && c <= '9');
}

static size_t skip_ws(const char *s, size_t i)
{
    while (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')
        i++;
    return i;
}

/* The input field closest to `name`, for "did you mean". */
static const char *suggest_field(const char *name, const rv_schema *in)
{
    const char **names = rv_xcalloc((size_t)in->nfields + 1, sizeof(char *));
    for (int i = 0; i < in->nfields; i++)
        names[i] = in->fields[i].name;
    const char *hint = rv_suggest(name, names, (size_t)in->nfields);
    free(names);
    return hint;
}

/* Parses "field [asc|desc], ..." into sp->ord_*. `at` is the order_by
 * scalar (NULL at run time). */
static rv_err *parse_order_by(const char *src, const rv_schema *in, const char *id,
                              const rv_ynode *at, tspec *sp)
{
    sp->ord_field = rv_xcalloc((size_t)in->nfields + 1, sizeof(int));
    sp->ord_desc = rv_xcalloc((size_t)in->nfields + 1, sizeof(bool));
    size_t i = skip_ws(src, 0);
    if (!src[i])
        return at_err(at, 0, RV_ERR_INVALID,
                      "operator '%s': 'order_by' is empty; name the fields to rank by, e.g. "
                      "order_by: \"hits desc\"",
                      id);
    for (;;) {
        /* field name */
        size_t start = i, nlen;
        const char *name;
        if (src[i] == '`') {
            const char *close = strchr(src + i + 1, '`');
            if (!close)
                return at_err(at, i, RV_ERR_PARSE,
                              "operator '%s': order_by: unterminated backquoted field name", id);
            name = src + i + 1;
            nlen = (size_t)(close - name);
            i = (size_t)(close - src) + 1;
        } else if (ident_start(src[i])) {
            name = src + i;
            while (ident_char(src[i]))
                i++;
            nlen = i - start;
        } else if (src[i]) {
            return at_err(at, i, RV_ERR_PARSE,
                          "operator '%s': order_by: expected a field name, found '%c'", id,
                          src[i]);
        } else {
            return at_err(at, i, RV_ERR_PARSE,
                          "operator '%s': order_by: expected a field name after ','", id);
        }
        char *fname = rv_xstrndup(name, nlen);
        int idx = rv_schema_find(in, fname);
        if (idx < 0) {
            const char *hint = suggest_field(fname, in);
            char fields[512];
            rv_err *err = hint ? at_err(at, start, RV_ERR_NOT_FOUND,
                                        "operator '%s': order_by: no input field '%s' (did you "
                                        "mean '%s'?)",
                                        id, fname, hint)
                               : at_err(at, start, RV_ERR_NOT_FOUND,
                                        "operator '%s': order_by: no input field '%s'; the "
                                        "input has: %s",
                                        id, fname, rv_schema_describe(in, fields, sizeof(fields)));
            free(fname);
            return err;
        }
        for (int k = 0; k < sp->nord; k++)
            if (sp->ord_field[k] == idx) {
                rv_err *err = at_err(at, start, RV_ERR_INVALID,
                                     "operator '%s': order_by: field '%s' is named twice", id,
                                     fname);
                free(fname);
                return err;
            }
        free(fname);
        sp->ord_field[sp->nord] = idx;
        /* direction */
        i = skip_ws(src, i);
        bool desc = false;
        if (ident_start(src[i])) {
            size_t ws = i;
            while (ident_char(src[i]))
                i++;
            char *word = rv_xstrndup(src + ws, i - ws);
            if (strcasecmp(word, "desc") == 0) {
                desc = true;
            } else if (strcasecmp(word, "asc") != 0) {
                static const char *const dirs[] = {"asc", "desc"};
                const char *hint = rv_suggest(word, dirs, 2);
                /* "dsc" is as close to asc as to desc: trust the first letter. */
                if (hint && (word[0] | 0x20) == 'd')
                    hint = "desc";
                else if (hint && (word[0] | 0x20) == 'a')
                    hint = "asc";
                if (rv_schema_find(in, word) >= 0)
                    hint = NULL; /* a field: a missing comma */
                rv_err *err = at_err(at, ws, RV_ERR_PARSE,
                                     "operator '%s': order_by: expected asc or desc after field "
                                     "'%s', found '%s'%s%s%s",
                                     id, in->fields[idx].name, word,
                                     hint ? " (did you mean '" : "", hint ? hint : "",
                                     hint ? "'?)" : " (separate fields with ',')");
                free(word);
                return err;
            }
            free(word);
        }
        sp->ord_desc[sp->nord++] = desc;
        i = skip_ws(src, i);
        if (!src[i])
            return NULL;
        if (src[i] != ',') {
            size_t e = i + 1;
            while (ident_start(src[i]) && ident_char(src[e]))
                e++;
            return at_err(at, i, RV_ERR_PARSE,
                          "operator '%s': order_by: expected ',' or the end after '%s%s', "
                          "found '%.*s' (write e.g. \"hits desc, domain asc\")",
                          id, in->fields[idx].name, desc ? " desc" : "", (int)(e - i), src + i);
        }
        i = skip_ws(src, i + 1);
    }
}

/* The node to blame for the input's schema: its `input` (or `inputs`). */
static const rv_ynode *input_node(const rv_ynode *node)
{
    const rv_ynode *n = rv_ymap_get(node, "input");
    return n ? n : rv_ymap_get_or_self(node, "inputs");
}

static rv_err *check_window_fields(const rv_schema *in, const char *id, const rv_ynode *node,
                                   tspec *sp)
{
    static const char *const names[] = {"window_start", "window_end"};
    for (int w = 0; w < 2; w++) {
        int idx = rv_schema_find(in, names[w]);
        if (idx >= 0 && in->fields[idx].type == RV_T_TIMESTAMP) {
            if (w == 1)
                sp->we_field = idx;
            continue;
        }
        char fields[512], detail[160];
        if (idx < 0)
            snprintf(detail, sizeof(detail), "there is no '%s'", names[w]);
        else
            snprintf(detail, sizeof(detail), "'%s' is %s", names[w],
                     rv_type_name(in->fields[idx].type));
        return rv_yerr(input_node(node), RV_ERR_INVALID,
                       "operator '%s': top_n ranks the rows of each window, so its input needs "
                       "timestamp fields window_start and window_end (as produced by "
                       "window_aggregate), but %s; the input has: %s",
                       id, detail, rv_schema_describe(in, fields, sizeof(fields)));
    }
    return NULL;
}

/* node: the operator's YAML map, for positions (NULL at run time). */
static rv_err *spec_build(const topn_cfg *cfg, const rv_schema *in, const char *id,
                          const rv_ynode *node, tspec *sp)
{
    memset(sp, 0, sizeof(*sp));
    sp->n = cfg->n;
    if (sp->n < 1 || sp->n > MAX_N) {
        return rv_yerr(rv_ymap_get_or_self(node, "n"), RV_ERR_INVALID,
                       "operator '%s': n must be between 1 and %d", id, MAX_N);
    }
    rv_err *err = check_window_fields(in, id, node, sp);
    if (err)
        return err;
    if (!cfg->order_by)
        return rv_yerr(node, RV_ERR_INVALID,
                       "operator '%s': missing required key 'order_by' (e.g. order_by: \"hits "
                       "desc\")",
                       id);
    if ((err = parse_order_by(cfg->order_by, in, id, rv_ymap_get(node, "order_by"), sp))) {
        spec_fini(sp);
        return err;
    }
    const char *rank = cfg->rank_field ? cfg->rank_field : "rank";
    const rv_ynode *rn = rv_ymap_get_or_self(node, "rank_field");
    if (rank[0] == 0) {
        spec_fini(sp);
        return rv_yerr(rn, RV_ERR_INVALID, "operator '%s': 'rank_field' must not be empty", id);
    }
    if (rv_schema_find(in, rank) >= 0) {
        spec_fini(sp);
        return rv_yerr(rn, RV_ERR_INVALID,
                       "operator '%s': the rank field '%s' is already a field of the input; set "
                       "rank_field to another name",
                       id, rank);
    }
    sp->rank = rank;
    return NULL;
}

static rv_err *topn_plan(rv_plan *p)
{
    tspec sp;
    rv_err *err = spec_build(p->config, p->inputs[0], p->id, p->node, &sp);
    if (err)
        return err;
    const rv_schema *in = p->inputs[0];
    rv_schema *out = rv_schema_new();
    for (int i = 0; i < in->nfields; i++)
        rv_schema_add(out, in->fields[i].name, in->fields[i].type);
    rv_schema_add(out, sp.rank, RV_T_INT64);
    spec_fini(&sp);
    p->output = out;
    /* Unkeyed: one group per window, so one instance sees every row. */
    if (!p->keys || p->keys->nfields == 0)
        p->max_parallelism = 1;
    return NULL;
}

/* ---- instance ---- */

static void topn_close(void *state, rv_op_ctx *ctx)
{
    topn_state *st = state;
    rv_row_keys_free(st->rk);
    free(st->skbuf);
    free(st->rowbuf);
    rv_batch_unref(st->pending);
    spec_fini(&st->sp);
    memset(st, 0, sizeof(*st));
}

static rv_err *setup(topn_state *st, rv_op_ctx *ctx)
{
    const char *id = rv_ctx_id(ctx);
    const rv_schema *in = rv_ctx_input_schema(ctx, 0);
    rv_err *err = spec_build(rv_ctx_config(ctx), in, id, NULL, &st->sp);
    if (err)
        return err;
    if (!rv_ctx_state(ctx))
        return rv_err_new(RV_ERR_INTERNAL, "%s: the runtime gave no keyed state", st->what);
    st->nin = in->nfields;
    if ((err = rv_row_keys_new(ctx, &st->rk)))
        return rv_err_wrap(err, "operator '%s'", id);
    return NULL;
}

static rv_err *topn_open(void *state, rv_op_ctx *ctx)
{
    topn_state *st = state;
    snprintf(st->what, sizeof(st->what), "top_n '%s'", rv_ctx_id(ctx));
    st->wm = RV_WATERMARK_MIN;
    st->out = rv_ctx_output_schema(ctx);
    rv_err *err = setup(st, ctx);
    if (err)
        topn_close(st, ctx); /* close() is not called when open() fails */
    return err;
}

/* ---- sort keys and the state value ---- */

static inline uint32_t rd32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return le32toh(v);
}

static inline void wr32(uint8_t *p, uint32_t v)
{
    v = htole32(v);
    memcpy(p, &v, 4);
}

static inline void put_be64(uint8_t *p, uint64_t v)
{
    v = htobe64(v);
    memcpy(p, &v, 8);
}

/* Appends the order-preserving sort key of row r (see the file comment). */
static void encode_sort_key(topn_state *st, const rv_batch *in, uint32_t r, size_t *len)
{
    uint8_t **buf = &st->skbuf;
    size_t *cap = &st->skcap;
    *len = 0;
    for (int o = 0; o < st->sp.nord; o++) {
        const rv_column *c = &in->cols[st->sp.ord_field[o]];
        rv_xgrow((void **)buf, cap, *len + 10, 1);
        uint8_t *b = *buf;
        if (rv_col_is_null(c, r)) {
            b[(*len)++] = 1;
            continue;
        }
        b[(*len)++] = 0;
        size_t start = *len;
        switch (c->type) {
        case RV_T_BOOL: b[(*len)++] = c->d.b[r] ? 1 : 0; break;
        case RV_T_INT64:
        case RV_T_TIMESTAMP:
            put_be64(b + *len, (uint64_t)c->d.i64[r] ^ ((uint64_t)1 << 63));
            *len += 8;
            break;
        case RV_T_FLOAT64: {
            double f = c->d.f64[r];
            uint64_t bits;
            if (f != f) {
                bits = 0x7ff8000000000000ull; /* one NaN, above +inf */
            } else {
                if (f == 0)
                    f = 0; /* -0 ties with 0 */
                memcpy(&bits, &f, 8);
            }
            bits = (bits >> 63) ? ~bits : bits ^ ((uint64_t)1 << 63);
            put_be64(b + *len, bits);
            *len += 8;
            break;
        }
        case RV_T_STRING: {
            uint32_t slen;
            const char *s = rv_col_str(c, r, &slen);
            rv_xgrow((void **)buf, cap, *len + 2 * (size_t)slen + 2, 1);
            b = *buf;
            for (uint32_t j = 0; j < slen; j++) {
                b[(*len)++] = (uint8_t)s[j];
                if (s[j] == 0)
                    b[(*len)++] = 0xff;
            }
            b[(*len)++] = 0;
            b[(*len)++] = 0;
            break;
        }
        case RV_T_NULL: break;
        }
        if (st->sp.ord_desc[o])
            for (size_t j = start; j < *len; j++)
                b[j] = (uint8_t)~b[j];
    }
}

static inline int sk_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    if (c)
        return c;
    return alen < blen ? -1 : alen > blen ? 1 : 0;
}

static void write_entry(uint8_t *p, const uint8_t *sk, size_t sklen, const uint8_t *row,
                        size_t rowlen)
{
    wr32(p, (uint32_t)sklen);
    wr32(p + 4, (uint32_t)rowlen);
    memcpy(p + EHDR, sk, sklen);
    memcpy(p + EHDR + sklen, row, rowlen);
}

static inline uint32_t entry_len(const uint8_t *e)
{
    return EHDR + rd32(e) + rd32(e + 4);
}

/* Offers row r (sort key in st->skbuf) to group (k, we). */
static void offer(topn_state *st, rv_state *s, const rv_skey *k, int64_t we, const rv_batch *in,
                  uint32_t r, size_t sklen)
{
    uint32_t vlen = 0;
    const uint8_t *v = rv_value_get(s, SID_ROWS, k, we, &vlen);
    uint32_t count = 0, last = 0, pos = HDR, used = HDR;
    if (v && vlen >= HDR + EHDR) {
        count = rd32(v);
        last = rd32(v + 4);
        used = vlen;
        const uint8_t *worst = v + last;
        if (count >= st->sp.n && sk_cmp(st->skbuf, sklen, worst + EHDR, rd32(worst)) >= 0)
            return; /* not better than the worst of a full group */
        for (uint32_t i = 0; i < count; i++) {
            if (sk_cmp(st->skbuf, sklen, v + pos + EHDR, rd32(v + pos)) < 0)
                break; /* after the rows that compare equal: earlier rows win ties */
            pos += entry_len(v + pos);
        }
        if (count >= st->sp.n) {
            used = last; /* drop the worst (pos <= last: the candidate beats it) */
            count--;
        }
    } else {
        /* A new group: fire it when the watermark passes the window. */
        rv_timer_register(s, RV_TIMER_EVENT, k, we, we - 1);
    }
    size_t rowlen = 0;
    rv_key_encode(in->cols, st->nin, r, &st->rowbuf, &rowlen, &st->rowcap);
    uint32_t ins = (uint32_t)(EHDR + sklen + rowlen);
    uint8_t *p = rv_value_put(s, SID_ROWS, k, we, NULL, used + ins);
    memmove(p + pos + ins, p + pos, used - pos);
    write_entry(p + pos, st->skbuf, sklen, st->rowbuf, rowlen);
    count++;
    uint32_t off = HDR, lastoff = HDR;
    for (uint32_t i = 0; i < count; i++) {
        lastoff = off;
        off += entry_len(p + off);
    }
    wr32(p, count);
    wr32(p + 4, lastoff);
}

/* ---- processing ---- */

static rv_code topn_process(void *state, rv_op_ctx *ctx, int input, const rv_batch *in)
{
    topn_state *st = state;
    uint32_t n = in->nrows;
    if (n == 0)
        return RV_OK;
    rv_state *s = rv_ctx_state(ctx);
    const rv_skey *keys = rv_row_keys_eval(st->rk, in);
    const rv_column *wec = &in->cols[st->sp.we_field];
    for (uint32_t r = 0; r < n; r++) {
        int64_t we = wec->d.i64[r];
        if (rv_col_is_null(wec, r) || we < -MAX_TS || we > MAX_TS) {
            st->no_window++;
            continue;
        }
        if (we - 1 <= st->wm) {
            st->late++; /* its window already fired */
            continue;
        }
        size_t sklen = 0;
        encode_sort_key(st, in, r, &sklen);
        offer(st, s, &keys[r], we, in, r, sklen);
    }
    return RV_OK;
}

static rv_code flush_pending(topn_state *st, rv_op_ctx *ctx)
{
    rv_batch *b = st->pending;
    st->pending = NULL;
    return b ? rv_ctx_emit(ctx, b) : RV_OK;
}

/* Emits the groups whose timers are <= upto, in timer order, and removes
 * them. */
static rv_code fire_upto(topn_state *st, rv_op_ctx *ctx, int64_t upto)
{
    rv_state *s = rv_ctx_state(ctx);
    rv_skey k;
    int64_t ns, time;
    rv_code rc = RV_OK;
    while (rc == RV_OK && rv_timer_pop(s, RV_TIMER_EVENT, upto, &k, &ns, &time)) {
        uint32_t vlen = 0;
        const uint8_t *v = rv_value_get(s, SID_ROWS, &k, ns, &vlen);
        uint32_t count = v && vlen >= HDR ? rd32(v) : 0, off = HDR;
        for (uint32_t i = 0; i < count && i < st->sp.n && rc == RV_OK; i++) {
            if (!st->pending)
                st->pending = rv_batch_new(st->out, OUT_ROWS);
            rv_batch *b = st->pending;
            uint32_t row = b->nrows;
            rv_batch_reserve(b, row + 1);
            const uint8_t *rp = v + off + EHDR + rd32(v + off);
            rv_key_decode(&rp, b->cols, st->nin, row);
            rv_col_set_i64(&b->cols[st->nin], row, (int64_t)i + 1);
            b->nrows++;
            off += entry_len(v + off);
            if (rv_batch_is_full(b, OUT_ROWS))
                rc = flush_pending(st, ctx);
        }
        rv_value_delete(s, SID_ROWS, &k, ns);
    }
    if (rc == RV_OK)
        rc = flush_pending(st, ctx);
    return rc;
}

static rv_code topn_on_watermark(void *state, rv_op_ctx *ctx, int64_t wm)
{
    topn_state *st = state;
    if (wm <= st->wm)
        return RV_OK;
    st->wm = wm;
    return fire_upto(st, ctx, wm);
}

static rv_code topn_finish(void *state, rv_op_ctx *ctx)
{
    topn_state *st = state;
    st->wm = RV_WATERMARK_MAX;
    rv_code rc = fire_upto(st, ctx, INT64_MAX);
    if (st->late || st->no_window)
        RV_LOG_INFO(rv_ctx_tag(ctx),
                    "%s: dropped %" PRIu64 " rows of windows that had already fired and %" PRIu64
                    " rows without a usable window_end",
                    st->what, st->late, st->no_window);
    return rc;
}

const rv_plugin rv_op_top_n = {
    .name = "top_n",
    .abi = RV_PLUGIN_ABI,
    .kind = RV_PLUGIN_OPERATOR,
    .flags = RV_PLUGIN_STATEFUL,
    .doc = "Keeps the best `n` rows of each window by `order_by` and emits them, ranked, when "
           "the window is complete. The input must have timestamp fields `window_start` and "
           "`window_end`, as produced by window_aggregate; rows are grouped by `window_end` "
           "and, with `key_by`, by key as well (top n per key and window); without `key_by` "
           "the node runs with parallelism 1. Rows are compared field by field as `order_by` "
           "says (nulls last); of rows that compare equal the one that arrived first ranks "
           "higher, so ranks are 1, 2, 3, ... without gaps or repeats. A window fires when the "
           "watermark reaches `window_end - 1` (or the input ends), emitting its rows best "
           "first: the input fields, then the int64 `rank_field`. Windows fire in "
           "`window_end` order; with `key_by` the keys of one window come in the order their "
           "first rows arrived. Rows for a window that already fired and rows with a null "
           "`window_end` are dropped (counted and logged when the job ends). State: up to `n` "
           "encoded rows per key and open window.",
    .config = topn_keys,
    .nconfig = sizeof(topn_keys) / sizeof(topn_keys[0]),
    .config_size = sizeof(topn_cfg),
    .state_size = sizeof(topn_state),
    .plan = topn_plan,
    .open = topn_open,
    .process = topn_process,
    .on_watermark = topn_on_watermark,
    .finish = topn_finish,
    .close = topn_close,
};
