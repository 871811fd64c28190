/* rv_timers: time buckets of keyed timers (see rv_timers.h).
 *
 * A bucket's records, in order, are: the rest of `cur` (the chunk being
 * read, from `rd_off`), then its spilled chunks numbered [sp_lo, sp_hi)
 * (in RocksDB under chunk_key), then its in-memory `tail` chunks. Adding
 * appends to the last tail chunk (a chunk doubles from 256 bytes up to
 * RV_TIMER_CHUNK); spilling moves the whole tail to RocksDB as the next
 * numbers, so a bucket's memory does not grow with the number of spills;
 * popping reads cur, then loads the spilled chunks one by one, then takes
 * the tail. The bucket heap holds bucket indices ordered by time; `index`
 * is a linear-probing table of bucket index + 1 by time (0 = empty),
 * cleaned by backward shift. */
#include "rv_timers.h"

#include <stdlib.h>
#include <string.h>

#include "rv_hash.h"
#include "rv_mem.h"

#define REC_HEAD 22u /* kg 2, klen 4, khash 8, ns 8 */
#define FIRST_CHUNK 256u

typedef struct chunk {
    uint8_t *data;
    uint32_t len, cap;
} chunk;

typedef struct bucket {
    int64_t time;
    chunk cur;        /* being read (data NULL: none) */
    uint32_t rd_off;
    uint64_t sp_lo, sp_hi;
    chunk *tail;
    uint32_t ntail, tail_cap;
    size_t count;
    int heap_pos;
} bucket;

struct rv_timers {
    int domain;
    bucket *b;
    size_t nb, bcap;
    uint32_t *free_b;
    size_t nfree, free_cap;
    uint32_t *heap;
    size_t nheap, heap_cap;
    uint32_t *index;
    size_t mask;
    size_t count, bytes;
    size_t tail_bytes; /* of that, in tail chunks: what spilling can free */
    uint8_t *popped; /* key of the last pop */
    size_t popped_cap;
};

rv_timers *rv_timers_new(int domain)
{
    rv_timers *t = rv_xcalloc(1, sizeof(*t));
    t->domain = domain;
    t->mask = 63;
    t->index = rv_xcalloc(64, sizeof(uint32_t));
    return t;
}

static void bucket_fini(bucket *b)
{
    free(b->cur.data);
    for (uint32_t c = 0; c < b->ntail; c++)
        free(b->tail[c].data);
    free(b->tail);
    memset(b, 0, sizeof(*b));
}

/* Memory of a bucket that spilling cannot free. */
static size_t bucket_fixed(const bucket *b) { return sizeof(bucket) + 3 * sizeof(uint32_t) + b->tail_cap * sizeof(chunk); }

void rv_timers_free(rv_timers *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->nheap; i++)
        bucket_fini(&t->b[t->heap[i]]);
    free(t->b);
    free(t->free_b);
    free(t->heap);
    free(t->index);
    free(t->popped);
    free(t);
}

/* ---- heap of buckets ---- */

static void heap_set(rv_timers *t, size_t i, uint32_t id)
{
    t->heap[i] = id;
    t->b[id].heap_pos = (int)i;
}

static void sift_up(rv_timers *t, size_t i)
{
    uint32_t id = t->heap[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (t->b[t->heap[p]].time <= t->b[id].time)
            break;
        heap_set(t, i, t->heap[p]);
        i = p;
    }
    heap_set(t, i, id);
}

static void sift_down(rv_timers *t, size_t i)
{
    uint32_t id = t->heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= t->nheap)
            break;
        if (c + 1 < t->nheap && t->b[t->heap[c + 1]].time < t->b[t->heap[c]].time)
            c++;
        if (t->b[t->heap[c]].time >= t->b[id].time)
            break;
        heap_set(t, i, t->heap[c]);
        i = c;
    }
    heap_set(t, i, id);
}

/* ---- index: time -> bucket ---- */

static void index_insert(rv_timers *t, uint32_t id)
{
    size_t i = rv_mix64((uint64_t)t->b[id].time) & t->mask;
    while (t->index[i])
        i = (i + 1) & t->mask;
    t->index[i] = id + 1;
}

static void index_grow(rv_timers *t)
{
    size_t n = (t->mask + 1) * 2;
    free(t->index);
    t->index = rv_xcalloc(n, sizeof(uint32_t));
    t->mask = n - 1;
    for (size_t i = 0; i < t->nheap; i++)
        index_insert(t, t->heap[i]);
}

static void index_remove(rv_timers *t, uint32_t id)
{
    size_t i = rv_mix64((uint64_t)t->b[id].time) & t->mask;
    while (t->index[i] != id + 1)
        i = (i + 1) & t->mask;
    size_t j = i;
    for (;;) {
        j = (j + 1) & t->mask;
        if (!t->index[j])
            break;
        size_t home = rv_mix64((uint64_t)t->b[t->index[j] - 1].time) & t->mask;
        if (((j - home) & t->mask) >= ((j - i) & t->mask)) {
            t->index[i] = t->index[j];
            i = j;
        }
    }
    t->index[i] = 0;
}

static bucket *bucket_of(rv_timers *t, int64_t time)
{
    for (size_t i = rv_mix64((uint64_t)time) & t->mask; t->index[i]; i = (i + 1) & t->mask)
        if (t->b[t->index[i] - 1].time == time)
            return &t->b[t->index[i] - 1];
    uint32_t id;
    if (t->nfree) {
        id = t->free_b[--t->nfree];
    } else {
        rv_xgrow((void **)&t->b, &t->bcap, t->nb + 1, sizeof(bucket));
        id = (uint32_t)t->nb++;
    }
    memset(&t->b[id], 0, sizeof(bucket));
    t->b[id].time = time;
    rv_xgrow((void **)&t->heap, &t->heap_cap, t->nheap + 1, sizeof(uint32_t));
    t->nheap++;
    heap_set(t, t->nheap - 1, id);
    sift_up(t, t->nheap - 1);
    if (t->nheap * 2 > t->mask + 1)
        index_grow(t);
    else
        index_insert(t, id);
    t->bytes += bucket_fixed(&t->b[id]);
    return &t->b[id];
}

static void bucket_remove(rv_timers *t, uint32_t id)
{
    bucket *b = &t->b[id];
    t->bytes -= bucket_fixed(b) + b->cur.cap;
    for (uint32_t c = 0; c < b->ntail; c++) {
        t->bytes -= b->tail[c].cap;
        t->tail_bytes -= b->tail[c].cap;
    }
    index_remove(t, id);
    size_t pos = (size_t)b->heap_pos;
    t->nheap--;
    if (pos < t->nheap) {
        heap_set(t, pos, t->heap[t->nheap]);
        sift_down(t, pos);
        sift_up(t, (size_t)t->b[t->heap[pos]].heap_pos);
    }
    bucket_fini(&t->b[id]);
    rv_xgrow((void **)&t->free_b, &t->free_cap, t->nfree + 1, sizeof(uint32_t));
    t->free_b[t->nfree++] = id;
}

/* ---- adding and popping ---- */

void rv_timers_add(rv_timers *t, uint16_t kg, const uint8_t *key, uint32_t klen, uint64_t khash,
                   int64_t ns, int64_t time)
{
    bucket *b = bucket_of(t, time);
    uint32_t need = REC_HEAD + klen;
    chunk *c = b->ntail ? &b->tail[b->ntail - 1] : NULL;
    if (c && c->len + need > c->cap && c->cap < RV_TIMER_CHUNK && c->len + need <= RV_TIMER_CHUNK) {
        uint32_t cap = c->cap;
        while (cap < c->len + need)
            cap *= 2;
        if (cap > RV_TIMER_CHUNK)
            cap = RV_TIMER_CHUNK;
        c->data = rv_xrealloc(c->data, cap);
        t->bytes += cap - c->cap;
        t->tail_bytes += cap - c->cap;
        c->cap = cap;
    }
    if (!c || c->len + need > c->cap) {
        if (b->ntail == b->tail_cap) { /* from 1: most buckets have one chunk */
            uint32_t cap = b->tail_cap ? b->tail_cap * 2 : 1;
            b->tail = rv_xrealloc(b->tail, cap * sizeof(chunk));
            t->bytes += (cap - b->tail_cap) * sizeof(chunk);
            b->tail_cap = cap;
        }
        c = &b->tail[b->ntail++];
        uint32_t size = need <= FIRST_CHUNK ? FIRST_CHUNK : need > RV_TIMER_CHUNK ? need : RV_TIMER_CHUNK;
        c->data = rv_xmalloc(size);
        c->len = 0;
        c->cap = size;
        t->bytes += size;
        t->tail_bytes += size;
    }
    uint8_t *p = c->data + c->len;
    memcpy(p, &kg, 2);
    memcpy(p + 2, &klen, 4);
    memcpy(p + 6, &khash, 8);
    memcpy(p + 14, &ns, 8);
    memcpy(p + REC_HEAD, key, klen);
    c->len += need;
    b->count++;
    t->count++;
}

void rv_timers_chunk_key(int domain, int64_t time, uint64_t n, uint8_t out[20])
{
    out[0] = 0xFF;
    out[1] = 0xFF;
    out[2] = 'T';
    out[3] = (uint8_t)domain;
    uint64_t u = (uint64_t)time ^ (1ull << 63);
    for (int i = 0; i < 8; i++)
        out[4 + i] = (uint8_t)(u >> (56 - 8 * i));
    uint64_t c = n;
    for (int i = 0; i < 8; i++)
        out[12 + i] = (uint8_t)(c >> (56 - 8 * i));
}

/* Makes b->cur the next chunk to read: the next spilled one (read back
 * and deleted from RocksDB) or the first tail chunk. False at the end. */
static bool next_chunk(rv_timers *t, bucket *b, rv_sdb *db, rv_err **err)
{
    t->bytes -= b->cur.cap;
    free(b->cur.data);
    b->cur = (chunk){0};
    b->rd_off = 0;
    if (b->sp_lo < b->sp_hi) {
        uint8_t k[20];
        rv_timers_chunk_key(t->domain, b->time, b->sp_lo, k);
        int64_t expiry;
        uint8_t *val = NULL;
        uint32_t vlen = 0;
        if (!db || !rv_sdb_get(db, k, sizeof(k), &expiry, &val, &vlen, err)) {
            if (!*err)
                *err = rv_err_new(RV_ERR_CORRUPT, "a spilled timer chunk is missing from RocksDB");
            return false;
        }
        rv_sdb_delete(db, k, sizeof(k));
        b->sp_lo++;
        b->cur = (chunk){.data = val, .len = vlen, .cap = vlen};
        t->bytes += vlen;
        return true;
    }
    if (b->ntail == 0)
        return false;
    b->cur = b->tail[0];
    t->tail_bytes -= b->cur.cap;
    memmove(b->tail, b->tail + 1, (b->ntail - 1) * sizeof(chunk));
    b->ntail--;
    return true;
}

bool rv_timers_pop(rv_timers *t, rv_sdb *db, int64_t upto, uint16_t *kg, const uint8_t **key,
                   uint32_t *klen, uint64_t *khash, int64_t *ns, int64_t *time, rv_err **err)
{
    for (;;) {
        if (t->nheap == 0)
            return false;
        uint32_t id = t->heap[0];
        bucket *b = &t->b[id];
        if (b->time > upto)
            return false;
        if (b->count == 0) {
            bucket_remove(t, id);
            continue;
        }
        while (!b->cur.data || b->rd_off + REC_HEAD > b->cur.len)
            if (!next_chunk(t, b, db, err))
                return false;
        const uint8_t *p = b->cur.data + b->rd_off;
        memcpy(kg, p, 2);
        memcpy(klen, p + 2, 4);
        memcpy(khash, p + 6, 8);
        memcpy(ns, p + 14, 8);
        rv_xgrow((void **)&t->popped, &t->popped_cap, (size_t)*klen + 1, 1);
        memcpy(t->popped, p + REC_HEAD, *klen);
        *key = t->popped;
        *time = b->time;
        b->rd_off += REC_HEAD + *klen;
        b->count--;
        t->count--;
        if (b->count == 0)
            bucket_remove(t, id); /* so rv_timers_next() moves on */
        return true;
    }
}

int64_t rv_timers_next(const rv_timers *t) { return t->nheap ? t->b[t->heap[0]].time : INT64_MAX; }

size_t rv_timers_count(const rv_timers *t) { return t->count; }

size_t rv_timers_bytes(const rv_timers *t) { return t->bytes + t->mask * sizeof(uint32_t); }

size_t rv_timers_fixed_bytes(const rv_timers *t)
{
    size_t fixed = t->mask * sizeof(uint32_t);
    for (size_t i = 0; i < t->nheap; i++)
        fixed += bucket_fixed(&t->b[t->heap[i]]);
    return fixed;
}

static int by_time_asc(const void *a, const void *b, void *arg)
{
    const rv_timers *t = arg;
    int64_t x = t->b[*(const uint32_t *)a].time, y = t->b[*(const uint32_t *)b].time;
    return x < y ? -1 : x > y ? 1 : 0;
}

/* The records of one chunk from offset `from`. */
static rv_err *each_record(const uint8_t *p, uint32_t len, uint32_t from, int64_t time, rv_timers_fn fn, void *arg);

/* The buckets in pop order (a new array the caller frees). */
static uint32_t *buckets_by_time(const rv_timers *t)
{
    uint32_t *order = rv_xmalloc(t->nheap * sizeof(uint32_t));
    memcpy(order, t->heap, t->nheap * sizeof(uint32_t));
    qsort_r(order, t->nheap, sizeof(uint32_t), by_time_asc, (void *)t);
    return order;
}

rv_err *rv_timers_decode(const uint8_t *p, uint32_t len, int64_t time, rv_timers_fn fn, void *arg)
{
    return each_record(p, len, 0, time, fn, arg);
}

static rv_err *each_record(const uint8_t *p, uint32_t len, uint32_t from, int64_t time, rv_timers_fn fn, void *arg)
{
    for (uint32_t off = from; off + REC_HEAD <= len;) {
        uint16_t kg;
        uint32_t klen;
        uint64_t khash;
        int64_t ns;
        memcpy(&kg, p + off, 2);
        memcpy(&klen, p + off + 2, 4);
        memcpy(&khash, p + off + 6, 8);
        memcpy(&ns, p + off + 14, 8);
        if (klen > len - off - REC_HEAD)
            return rv_err_new(RV_ERR_CORRUPT, "a timer record overruns its chunk");
        rv_err *err = fn(arg, time, kg, p + off + REC_HEAD, klen, khash, ns);
        if (err)
            return err;
        off += REC_HEAD + klen;
    }
    return NULL;
}

rv_err *rv_timers_each(const rv_timers *t, rv_sdb *db, rv_timers_fn fn, void *arg)
{
    if (t->nheap == 0)
        return NULL;
    uint32_t *order = buckets_by_time(t);
    rv_err *err = NULL;
    for (size_t i = 0; i < t->nheap && !err; i++) {
        const bucket *b = &t->b[order[i]];
        if (b->cur.data)
            err = each_record(b->cur.data, b->cur.len, b->rd_off, b->time, fn, arg);
        for (uint64_t n = b->sp_lo; n < b->sp_hi && !err; n++) {
            uint8_t k[20];
            rv_timers_chunk_key(t->domain, b->time, n, k);
            int64_t expiry;
            uint8_t *val = NULL;
            uint32_t vlen = 0;
            if (!db || !rv_sdb_get(db, k, sizeof(k), &expiry, &val, &vlen, &err)) {
                if (!err)
                    err = rv_err_new(RV_ERR_CORRUPT, "a spilled timer chunk is missing from RocksDB");
                break;
            }
            err = each_record(val, vlen, 0, b->time, fn, arg);
            free(val);
        }
        for (uint32_t c = 0; c < b->ntail && !err; c++)
            err = each_record(b->tail[c].data, b->tail[c].len, 0, b->time, fn, arg);
    }
    free(order);
    return err;
}

/* Moves bucket b's tail chunks to db as its next spilled chunks. */
static void spill_tail(rv_timers *t, bucket *b, rv_sdb *db)
{
    for (uint32_t c = 0; c < b->ntail; c++) {
        uint8_t k[20];
        rv_timers_chunk_key(t->domain, b->time, b->sp_hi++, k);
        rv_sdb_put(db, k, sizeof(k), INT64_MAX, b->tail[c].data, b->tail[c].len);
        t->bytes -= b->tail[c].cap;
        t->tail_bytes -= b->tail[c].cap;
        free(b->tail[c].data);
    }
    b->ntail = 0;
}

static int by_time_desc(const void *a, const void *b, void *arg)
{
    const rv_timers *t = arg;
    int64_t x = t->b[*(const uint32_t *)a].time, y = t->b[*(const uint32_t *)b].time;
    return x < y ? 1 : x > y ? -1 : 0;
}

void rv_timers_spill(rv_timers *t, rv_sdb *db, size_t keep)
{
    if (rv_timers_bytes(t) <= keep || t->nheap < 2 || t->tail_bytes < RV_TIMER_CHUNK)
        return; /* within bounds, or too little to spill to be worth sorting the buckets */
    /* Latest buckets first; the earliest bucket stays (it fires next). */
    uint32_t *order = rv_xmalloc(t->nheap * sizeof(uint32_t));
    memcpy(order, t->heap, t->nheap * sizeof(uint32_t));
    qsort_r(order, t->nheap, sizeof(uint32_t), by_time_desc, t);
    for (size_t i = 0; i + 1 < t->nheap && rv_timers_bytes(t) > keep; i++)
        spill_tail(t, &t->b[order[i]], db);
    free(order);
}

void rv_timers_spill_all(rv_timers *t, rv_sdb *db)
{
    for (size_t i = 0; i < t->nheap; i++)
        spill_tail(t, &t->b[t->heap[i]], db);
}

rv_err *rv_timers_each_bucket(const rv_timers *t, rv_timers_bucket_fn fn, void *arg)
{
    if (t->nheap == 0)
        return NULL;
    uint32_t *order = buckets_by_time(t);
    rv_err *err = NULL;
    for (size_t i = 0; i < t->nheap && !err; i++) {
        const bucket *b = &t->b[order[i]];
        const uint8_t *head = b->cur.data ? b->cur.data + b->rd_off : NULL;
        uint32_t head_len = b->cur.data ? b->cur.len - b->rd_off : 0;
        err = fn(arg, b->time, b->count, head, head_len, b->sp_lo, b->sp_hi);
    }
    free(order);
    return err;
}

void rv_timers_import(rv_timers *t, int64_t time, uint64_t count, const uint8_t *head, uint32_t head_len,
                      uint64_t sp_lo, uint64_t sp_hi)
{
    bucket *b = bucket_of(t, time);
    /* A new bucket (a snapshot holds each time once): reading starts with
     * the head, then the spilled range. */
    if (head_len) {
        b->cur = (chunk){.data = rv_xmalloc(head_len), .len = head_len, .cap = head_len};
        memcpy(b->cur.data, head, head_len);
        t->bytes += head_len;
    }
    b->sp_lo = sp_lo;
    b->sp_hi = sp_hi;
    b->count += count;
    t->count += count;
}
