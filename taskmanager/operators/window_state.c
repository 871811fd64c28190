/* window_state: keyed window table of window_aggregate (see window_state.h).
 *
 * Layout: `ents` is an array of fixed-size entries (a header followed by
 * one 16-byte accumulator per aggregate call) addressed by id; `slots` is
 * a power-of-two linear-probing table of (id + 1, low 32 bits of the
 * hash), 0 meaning empty, kept at most half full; `wins` lists the open
 * windows sorted by start, each with its entry ids in insertion order and
 * an arena of chunks holding key bytes and string min/max values. Removing
 * a window deletes its slots by backward shift (no tombstones), or, once
 * dead entries outnumber live ones, rebuilds the entry array and the table
 * compactly, which is what returns memory after bursts. */
#include "window_state.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rv_hash.h"
#include "rv_mem.h"

#define MIN_SLOTS 64u
#define MIN_ENTS 64u
#define CHUNK_FIRST 1024u
#define CHUNK_MAX (1u << 20)

typedef struct chunk {
    struct chunk *next;
    size_t used, cap;
    char data[];
} chunk;

typedef struct window {
    int64_t start;
    uint32_t *ids; /* insertion order */
    size_t nids, idcap;
    chunk *arena;
    size_t arena_bytes;
} window;

typedef struct slot {
    uint32_t id1; /* entry id + 1; 0 = empty */
    uint32_t tag; /* low 32 bits of the mixed hash (gives the home slot) */
} slot;

typedef struct ehead {
    uint64_t hash; /* key hash mixed with the window start */
    int64_t start;
    const uint8_t *key; /* in the window's arena */
    uint32_t klen;
    uint32_t pad;
} ehead;

/* One accumulator. Integer-like sums and min/max use i, float sums, avg
 * and float min/max use f (n counts the non-null inputs), strings use s
 * (p == NULL means no value yet; cap is the room at p). */
typedef union acc {
    struct {
        int64_t v, n;
    } i;
    struct {
        double v;
        int64_t n;
    } f;
    struct {
        char *p;
        uint32_t len, cap;
    } s;
} acc;

typedef struct call {
    rv_agg_kind kind;
    rv_type arg, res;
} call;

struct rv_window_state {
    int ncalls;
    call *calls;
    size_t stride; /* bytes per entry */
    uint8_t *ents;
    size_t nents, ents_cap; /* ids in use (live or dead), allocated */
    size_t live;
    slot *slots;
    size_t mask; /* number of slots - 1 */
    window *wins;
    size_t nwins, wcap;
    /* Caches: the mix of the last start seen, and the last window used. */
    int64_t mix_start;
    uint64_t mix_val;
    size_t last_win;
};

static uint64_t mix64(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ull;
    k ^= k >> 33;
    return k;
}

static inline ehead *ent(const rv_window_state *ws, uint32_t id)
{
    return (ehead *)(void *)(ws->ents + (size_t)id * ws->stride);
}

static inline acc *ent_acc(const rv_window_state *ws, uint32_t id, int c)
{
    return (acc *)(void *)(ws->ents + (size_t)id * ws->stride + sizeof(ehead)) + c;
}

static uint64_t mixed_hash(rv_window_state *ws, uint64_t hash, int64_t start)
{
    if (start != ws->mix_start) {
        ws->mix_start = start;
        ws->mix_val = mix64((uint64_t)start);
    }
    return hash ^ ws->mix_val;
}

static size_t pow2_at_least(size_t n, size_t min)
{
    size_t p = min;
    while (p < n)
        p *= 2;
    return p;
}

rv_window_state *rv_window_state_new(const rv_agg_call *calls, int ncalls)
{
    assert(ncalls >= 0);
    rv_window_state *ws = rv_xcalloc(1, sizeof(*ws));
    ws->ncalls = ncalls;
    ws->calls = rv_xcalloc((size_t)(ncalls ? ncalls : 1), sizeof(call));
    for (int c = 0; c < ncalls; c++) {
        ws->calls[c].kind = calls[c].kind;
        ws->calls[c].arg = calls[c].arg_type;
        ws->calls[c].res = calls[c].result_type;
    }
    ws->stride = sizeof(ehead) + (size_t)ncalls * sizeof(acc);
    ws->mask = MIN_SLOTS - 1;
    ws->slots = rv_xcalloc(MIN_SLOTS, sizeof(slot));
    ws->mix_start = 0;
    ws->mix_val = mix64(0);
    return ws;
}

static void window_fini(window *w)
{
    chunk *c = w->arena;
    while (c) {
        chunk *next = c->next;
        free(c);
        c = next;
    }
    free(w->ids);
    memset(w, 0, sizeof(*w));
}

void rv_window_state_free(rv_window_state *ws)
{
    if (!ws)
        return;
    for (size_t i = 0; i < ws->nwins; i++)
        window_fini(&ws->wins[i]);
    free(ws->wins);
    free(ws->slots);
    free(ws->ents);
    free(ws->calls);
    free(ws);
}

/* n bytes of the window's arena (never NULL, even for n == 0). */
static char *arena_alloc(window *w, size_t n)
{
    chunk *c = w->arena;
    if (!c || c->cap - c->used < n) {
        size_t cap = c ? c->cap * 2 : CHUNK_FIRST;
        if (cap > CHUNK_MAX)
            cap = CHUNK_MAX;
        if (cap < n)
            cap = n;
        chunk *nc = rv_xmalloc(sizeof(chunk) + cap);
        nc->next = c;
        nc->used = 0;
        nc->cap = cap;
        w->arena = nc;
        w->arena_bytes += sizeof(chunk) + cap;
        c = nc;
    }
    char *p = c->data + c->used;
    c->used += n;
    return p;
}

/* Index of the first window with start >= `start` (binary search). */
static size_t win_lower(const rv_window_state *ws, int64_t start)
{
    size_t lo = 0, hi = ws->nwins;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ws->wins[mid].start < start)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* The open window of `start`, or NULL. */
static window *win_find(rv_window_state *ws, int64_t start)
{
    if (ws->last_win < ws->nwins && ws->wins[ws->last_win].start == start)
        return &ws->wins[ws->last_win];
    size_t i = win_lower(ws, start);
    if (i < ws->nwins && ws->wins[i].start == start) {
        ws->last_win = i;
        return &ws->wins[i];
    }
    return NULL;
}

static window *win_get(rv_window_state *ws, int64_t start)
{
    window *w = win_find(ws, start);
    if (w)
        return w;
    size_t i = win_lower(ws, start);
    rv_xgrow((void **)&ws->wins, &ws->wcap, ws->nwins + 1, sizeof(window));
    memmove(&ws->wins[i + 1], &ws->wins[i], (ws->nwins - i) * sizeof(window));
    ws->nwins++;
    memset(&ws->wins[i], 0, sizeof(window));
    ws->wins[i].start = start;
    ws->last_win = i;
    return &ws->wins[i];
}

/* Places id in the first empty slot of its probe sequence. */
static void slot_place(rv_window_state *ws, uint32_t id, uint64_t h)
{
    size_t i = (size_t)h & ws->mask;
    while (ws->slots[i].id1)
        i = (i + 1) & ws->mask;
    ws->slots[i].id1 = id + 1;
    ws->slots[i].tag = (uint32_t)h;
}

/* Re-creates the slot table with nslots slots from the live entries. */
static void slots_rebuild(rv_window_state *ws, size_t nslots)
{
    assert(nslots <= ((size_t)1 << 32)); /* the tag must give the home slot */
    free(ws->slots);
    ws->slots = rv_xcalloc(nslots, sizeof(slot));
    ws->mask = nslots - 1;
    for (size_t w = 0; w < ws->nwins; w++) {
        const window *win = &ws->wins[w];
        for (size_t k = 0; k < win->nids; k++)
            slot_place(ws, win->ids[k], ent(ws, win->ids[k])->hash);
    }
}

static uint32_t probe(const rv_window_state *ws, uint64_t h, const uint8_t *key, uint32_t klen,
                      int64_t start, size_t *pos)
{
    uint32_t tag = (uint32_t)h;
    size_t i = (size_t)h & ws->mask;
    for (;;) {
        const slot *s = &ws->slots[i];
        if (!s->id1)
            break;
        if (s->tag == tag) {
            const ehead *e = ent(ws, s->id1 - 1);
            if (e->start == start && e->klen == klen && (klen == 0 || memcmp(e->key, key, klen) == 0))
                return s->id1 - 1;
        }
        i = (i + 1) & ws->mask;
    }
    *pos = i;
    return RV_WINDOW_NONE;
}

uint32_t rv_window_state_upsert(rv_window_state *ws, const uint8_t *key, uint32_t klen,
                                uint64_t hash, int64_t start)
{
    uint64_t h = mixed_hash(ws, hash, start);
    size_t pos;
    uint32_t id = probe(ws, h, key, klen, start, &pos);
    if (id != RV_WINDOW_NONE)
        return id;

    window *w = win_get(ws, start);
    assert(ws->nents < UINT32_MAX - 1);
    id = (uint32_t)ws->nents;
    rv_xgrow((void **)&ws->ents, &ws->ents_cap, ws->nents + 1, ws->stride);
    ws->nents++;
    ehead *e = ent(ws, id);
    memset(e, 0, ws->stride);
    e->hash = h;
    e->start = start;
    e->klen = klen;
    char *kp = arena_alloc(w, klen);
    if (klen)
        memcpy(kp, key, klen);
    e->key = (const uint8_t *)kp;
    rv_xgrow((void **)&w->ids, &w->idcap, w->nids + 1, sizeof(uint32_t));
    w->ids[w->nids++] = id;
    ws->live++;

    if (ws->live * 2 > ws->mask + 1)
        slots_rebuild(ws, (ws->mask + 1) * 2);
    else {
        ws->slots[pos].id1 = id + 1;
        ws->slots[pos].tag = (uint32_t)h;
    }
    return id;
}

uint32_t rv_window_state_find(const rv_window_state *ws, const uint8_t *key, uint32_t klen,
                              uint64_t hash, int64_t start)
{
    size_t pos;
    return probe(ws, hash ^ mix64((uint64_t)start), key, klen, start, &pos);
}

/* ---- accumulation ---- */

static inline bool arg_null(const rv_column *c, uint32_t row)
{
    return c->has_nulls && c->nulls[row];
}

/* Integer view of a non-float argument (bool, int64, timestamp). */
static inline int64_t arg_int(const rv_column *c, uint32_t row)
{
    return c->type == RV_T_BOOL ? (int64_t)c->d.b[row] : c->d.i64[row];
}

static inline double arg_float(const rv_column *c, uint32_t row)
{
    return c->type == RV_T_FLOAT64 ? c->d.f64[row] : (double)arg_int(c, row);
}

/* Float order for min/max: NaN above every number, so results do not
 * depend on arrival order. */
static inline bool flt_less(double a, double b)
{
    return a < b || (isnan(b) && !isnan(a));
}

static int str_cmp(const char *a, uint32_t alen, const char *b, uint32_t blen)
{
    uint32_t n = alen < blen ? alen : blen;
    int r = n ? memcmp(a, b, n) : 0;
    if (r)
        return r;
    return alen < blen ? -1 : alen > blen;
}

static void str_store(rv_window_state *ws, uint32_t id, acc *a, const char *p, uint32_t len)
{
    if (!a->s.p || len > a->s.cap) {
        window *w = win_find(ws, ent(ws, id)->start);
        assert(w);
        uint32_t cap = len < 8 ? 8 : len;
        a->s.p = arena_alloc(w, cap);
        a->s.cap = cap;
    }
    if (len)
        memcpy(a->s.p, p, len);
    a->s.len = len;
}

static void acc_count(rv_window_state *ws, int c, const rv_column *arg, const uint32_t *rows,
                      const uint32_t *ids, uint32_t n)
{
    if (!arg || !arg->has_nulls) {
        for (uint32_t k = 0; k < n; k++)
            ent_acc(ws, ids[k], c)->i.n++;
        return;
    }
    for (uint32_t k = 0; k < n; k++)
        ent_acc(ws, ids[k], c)->i.n += !arg->nulls[rows[k]];
}

static void acc_sum(rv_window_state *ws, int c, const rv_column *arg, const uint32_t *rows,
                    const uint32_t *ids, uint32_t n)
{
    if (arg->type == RV_T_FLOAT64) {
        for (uint32_t k = 0; k < n; k++) {
            if (arg_null(arg, rows[k]))
                continue;
            acc *a = ent_acc(ws, ids[k], c);
            a->f.v += arg->d.f64[rows[k]];
            a->f.n++;
        }
        return;
    }
    for (uint32_t k = 0; k < n; k++) {
        if (arg_null(arg, rows[k]))
            continue;
        acc *a = ent_acc(ws, ids[k], c);
        /* Integer sums wrap (two's complement) rather than overflow. */
        a->i.v = (int64_t)((uint64_t)a->i.v + (uint64_t)arg_int(arg, rows[k]));
        a->i.n++;
    }
}

static void acc_avg(rv_window_state *ws, int c, const rv_column *arg, const uint32_t *rows,
                    const uint32_t *ids, uint32_t n)
{
    for (uint32_t k = 0; k < n; k++) {
        if (arg_null(arg, rows[k]))
            continue;
        acc *a = ent_acc(ws, ids[k], c);
        a->f.v += arg_float(arg, rows[k]);
        a->f.n++;
    }
}

static void acc_minmax(rv_window_state *ws, int c, const rv_column *arg, const uint32_t *rows,
                       const uint32_t *ids, uint32_t n, bool is_max)
{
    switch (arg->type) {
    case RV_T_FLOAT64:
        for (uint32_t k = 0; k < n; k++) {
            if (arg_null(arg, rows[k]))
                continue;
            acc *a = ent_acc(ws, ids[k], c);
            double x = arg->d.f64[rows[k]];
            if (!a->f.n || (is_max ? flt_less(a->f.v, x) : flt_less(x, a->f.v)))
                a->f.v = x;
            a->f.n++;
        }
        break;
    case RV_T_STRING:
        for (uint32_t k = 0; k < n; k++) {
            if (arg_null(arg, rows[k]))
                continue;
            acc *a = ent_acc(ws, ids[k], c);
            uint32_t len;
            const char *p = rv_col_str(arg, rows[k], &len);
            if (a->s.p) {
                int r = str_cmp(p, len, a->s.p, a->s.len);
                if (is_max ? r <= 0 : r >= 0)
                    continue;
            }
            str_store(ws, ids[k], a, p, len);
        }
        break;
    case RV_T_BOOL:
    case RV_T_INT64:
    case RV_T_TIMESTAMP:
        for (uint32_t k = 0; k < n; k++) {
            if (arg_null(arg, rows[k]))
                continue;
            acc *a = ent_acc(ws, ids[k], c);
            int64_t x = arg_int(arg, rows[k]);
            if (!a->i.n || (is_max ? x > a->i.v : x < a->i.v))
                a->i.v = x;
            a->i.n++;
        }
        break;
    case RV_T_NULL:
        break; /* min(null): always null */
    }
}

void rv_window_state_accumulate(rv_window_state *ws, int call, const rv_column *arg,
                                const uint32_t *rows, const uint32_t *ids, uint32_t n)
{
    assert(call >= 0 && call < ws->ncalls);
    const struct call *cl = &ws->calls[call];
    if (cl->kind == RV_AGG_COUNT) {
        acc_count(ws, call, arg, rows, ids, n);
        return;
    }
    assert(arg);
    if (arg->type == RV_T_NULL)
        return; /* an all-null argument adds nothing */
    switch (cl->kind) {
    case RV_AGG_SUM: acc_sum(ws, call, arg, rows, ids, n); break;
    case RV_AGG_AVG: acc_avg(ws, call, arg, rows, ids, n); break;
    case RV_AGG_MIN: acc_minmax(ws, call, arg, rows, ids, n, false); break;
    case RV_AGG_MAX: acc_minmax(ws, call, arg, rows, ids, n, true); break;
    case RV_AGG_COUNT: break;
    }
}

/* ---- reading ---- */

size_t rv_window_state_count(const rv_window_state *ws)
{
    return ws->live;
}

int rv_window_state_nwindows(const rv_window_state *ws)
{
    return (int)ws->nwins;
}

bool rv_window_state_first(const rv_window_state *ws, int64_t *start)
{
    if (!ws->nwins)
        return false;
    *start = ws->wins[0].start;
    return true;
}

uint32_t rv_window_state_entries(const rv_window_state *ws, int64_t start, const uint32_t **ids)
{
    size_t i = win_lower(ws, start);
    if (i >= ws->nwins || ws->wins[i].start != start) {
        *ids = NULL;
        return 0;
    }
    *ids = ws->wins[i].ids;
    return (uint32_t)ws->wins[i].nids;
}

void rv_window_state_keys(const rv_window_state *ws, const uint32_t *ids, uint32_t n,
                          rv_column *cols, int ncols)
{
    for (int k = 0; k < ncols; k++) {
        rv_col_reset(&cols[k]);
        rv_col_reserve(&cols[k], n);
    }
    for (uint32_t r = 0; r < n; r++) {
        const ehead *e = ent(ws, ids[r]);
        const uint8_t *p = e->key;
        rv_key_decode(&p, cols, ncols, r);
        assert(p == e->key + e->klen);
    }
}

static void set_int(rv_column *out, uint32_t r, int64_t v)
{
    if (out->type == RV_T_FLOAT64)
        rv_col_set_f64(out, r, (double)v);
    else if (out->type == RV_T_BOOL)
        rv_col_set_bool(out, r, v != 0);
    else
        rv_col_set_i64(out, r, v);
}

void rv_window_state_results(const rv_window_state *ws, int call, const uint32_t *ids, uint32_t n,
                             rv_column *out)
{
    assert(call >= 0 && call < ws->ncalls);
    const struct call *cl = &ws->calls[call];
    rv_col_reset(out);
    rv_col_reserve(out, n);
    bool flt = cl->arg == RV_T_FLOAT64;
    for (uint32_t r = 0; r < n; r++) {
        const acc *a = ent_acc(ws, ids[r], call);
        switch (cl->kind) {
        case RV_AGG_COUNT: set_int(out, r, a->i.n); continue;
        case RV_AGG_AVG:
            if (!a->f.n)
                rv_col_set_null(out, r);
            else
                rv_col_set_f64(out, r, a->f.v / (double)a->f.n);
            continue;
        case RV_AGG_SUM:
        case RV_AGG_MIN:
        case RV_AGG_MAX: break;
        }
        if (cl->arg == RV_T_STRING) {
            if (a->s.p)
                rv_col_set_str(out, r, a->s.p, a->s.len);
            else
                rv_col_set_null(out, r);
        } else if (cl->arg == RV_T_NULL || (flt ? a->f.n : a->i.n) == 0) {
            rv_col_set_null(out, r);
        } else if (flt) {
            if (out->type == RV_T_FLOAT64)
                rv_col_set_f64(out, r, a->f.v);
            else
                rv_col_set_i64(out, r, (int64_t)a->f.v);
        } else {
            set_int(out, r, a->i.v);
        }
    }
}

/* ---- removal ---- */

/* Deletes the slot holding id by backward shift, keeping every probe
 * sequence unbroken without tombstones. */
static void slot_delete(rv_window_state *ws, uint32_t id)
{
    size_t i = (size_t)ent(ws, id)->hash & ws->mask;
    while (ws->slots[i].id1 != id + 1) {
        assert(ws->slots[i].id1);
        i = (i + 1) & ws->mask;
    }
    for (;;) {
        ws->slots[i].id1 = 0;
        size_t j = i;
        for (;;) {
            j = (j + 1) & ws->mask;
            if (!ws->slots[j].id1)
                return;
            size_t home = (size_t)ws->slots[j].tag & ws->mask;
            /* Slot j may move to i unless its home lies cyclically in (i, j]. */
            bool home_between = i <= j ? (i < home && home <= j) : (i < home || home <= j);
            if (!home_between)
                break;
        }
        ws->slots[i] = ws->slots[j];
        i = j;
    }
}

/* Copies the live entries (window by window, in insertion order) into a
 * right-sized array and rebuilds the slot table. */
static void compact(rv_window_state *ws)
{
    size_t cap = pow2_at_least(ws->live * 2, MIN_ENTS);
    uint8_t *ents = rv_xmalloc(cap * ws->stride);
    size_t j = 0;
    for (size_t w = 0; w < ws->nwins; w++) {
        window *win = &ws->wins[w];
        for (size_t k = 0; k < win->nids; k++) {
            memcpy(ents + j * ws->stride, ent(ws, win->ids[k]), ws->stride);
            win->ids[k] = (uint32_t)j++;
        }
    }
    assert(j == ws->live);
    free(ws->ents);
    ws->ents = ents;
    ws->ents_cap = cap;
    ws->nents = j;
    slots_rebuild(ws, pow2_at_least(ws->live * 4, MIN_SLOTS));
}

void rv_window_state_remove(rv_window_state *ws, int64_t start)
{
    size_t i = win_lower(ws, start);
    if (i >= ws->nwins || ws->wins[i].start != start)
        return;
    window *w = &ws->wins[i];
    size_t live_after = ws->live - w->nids;
    size_t dead_after = ws->nents - live_after;
    bool rebuild = ws->nents > MIN_ENTS && dead_after > live_after;
    if (!rebuild) {
        for (size_t k = 0; k < w->nids; k++)
            slot_delete(ws, w->ids[k]);
    }
    ws->live = live_after;
    window_fini(w);
    memmove(&ws->wins[i], &ws->wins[i + 1], (ws->nwins - i - 1) * sizeof(window));
    ws->nwins--;
    ws->last_win = 0;
    if (rebuild)
        compact(ws);
    else if (ws->live == 0)
        ws->nents = 0; /* every id is free again */
}

size_t rv_window_state_bytes(const rv_window_state *ws)
{
    size_t n = sizeof(*ws) + (ws->mask + 1) * sizeof(slot) + ws->ents_cap * ws->stride +
               ws->wcap * sizeof(window);
    for (size_t i = 0; i < ws->nwins; i++)
        n += ws->wins[i].arena_bytes + ws->wins[i].idcap * sizeof(uint32_t);
    return n;
}
