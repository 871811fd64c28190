/* rv_timers: time buckets of keyed timers (see rv_timers.h).
 *
 * A bucket's chunks are read front to back: `rd_chunk`/`rd_off` mark the
 * next record. A chunk is either in memory (`data`) or spilled (`data` ==
 * NULL, its bytes under its RocksDB key). The bucket heap holds bucket
 * indices ordered by time; `index` is a linear-probing table of bucket
 * index + 1 by time (0 = empty), cleaned by backward shift. */
#include "rv_timers.h"

#include <stdlib.h>
#include <string.h>

#include "rv_mem.h"

#define REC_HEAD 22u /* kg 2, klen 4, khash 8, ns 8 */

typedef struct chunk {
    uint8_t *data; /* NULL: spilled */
    uint32_t len, cap;
} chunk;

typedef struct bucket {
    int64_t time;
    chunk *chunks;
    size_t nchunks, cap;
    size_t rd_chunk;
    uint32_t rd_off;
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
    uint8_t *popped; /* key of the last pop */
    size_t popped_cap;
    uint8_t *loaded; /* a spilled chunk being read */
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
    for (size_t c = 0; c < b->nchunks; c++)
        free(b->chunks[c].data);
    free(b->chunks);
    memset(b, 0, sizeof(*b));
}

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
    free(t->loaded);
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
    size_t i = mix64((uint64_t)t->b[id].time) & t->mask;
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
    size_t i = mix64((uint64_t)t->b[id].time) & t->mask;
    while (t->index[i] != id + 1)
        i = (i + 1) & t->mask;
    size_t j = i;
    for (;;) {
        j = (j + 1) & t->mask;
        if (!t->index[j])
            break;
        size_t home = mix64((uint64_t)t->b[t->index[j] - 1].time) & t->mask;
        if (((j - home) & t->mask) >= ((j - i) & t->mask)) {
            t->index[i] = t->index[j];
            i = j;
        }
    }
    t->index[i] = 0;
}

static bucket *bucket_of(rv_timers *t, int64_t time)
{
    for (size_t i = mix64((uint64_t)time) & t->mask; t->index[i]; i = (i + 1) & t->mask)
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
    t->bytes += sizeof(bucket) + 3 * sizeof(uint32_t);
    return &t->b[id];
}

static void bucket_remove(rv_timers *t, uint32_t id)
{
    bucket *b = &t->b[id];
    for (size_t c = 0; c < b->nchunks; c++)
        if (b->chunks[c].data)
            t->bytes -= b->chunks[c].cap + sizeof(chunk);
    index_remove(t, id);
    size_t pos = (size_t)t->b[id].heap_pos;
    t->nheap--;
    if (pos < t->nheap) {
        heap_set(t, pos, t->heap[t->nheap]);
        sift_down(t, pos);
        sift_up(t, (size_t)t->b[t->heap[pos]].heap_pos);
    }
    bucket_fini(&t->b[id]);
    t->bytes -= sizeof(bucket) + 3 * sizeof(uint32_t);
    rv_xgrow((void **)&t->free_b, &t->free_cap, t->nfree + 1, sizeof(uint32_t));
    t->free_b[t->nfree++] = id;
}

/* ---- adding and popping ---- */

void rv_timers_add(rv_timers *t, uint16_t kg, const uint8_t *key, uint32_t klen, uint64_t khash,
                   int64_t ns, int64_t time)
{
    bucket *b = bucket_of(t, time);
    uint32_t need = REC_HEAD + klen;
    chunk *c = b->nchunks ? &b->chunks[b->nchunks - 1] : NULL;
    if (c && c->data && c->len + need > c->cap && c->cap < RV_TIMER_CHUNK && c->len + need <= RV_TIMER_CHUNK) {
        /* A small first chunk (or one read back from RocksDB) grows to a full one. */
        c->data = rv_xrealloc(c->data, RV_TIMER_CHUNK);
        t->bytes += RV_TIMER_CHUNK - c->cap;
        c->cap = RV_TIMER_CHUNK;
    }
    if (!c || !c->data || c->len + need > c->cap) {
        rv_xgrow((void **)&b->chunks, &b->cap, b->nchunks + 1, sizeof(chunk));
        c = &b->chunks[b->nchunks++];
        /* Chunks start small (most buckets of session windows hold one
         * timer) and grow to RV_TIMER_CHUNK above. */
        uint32_t size = need <= 256 ? 256 : need > RV_TIMER_CHUNK ? need : RV_TIMER_CHUNK;
        c->data = rv_xmalloc(size);
        c->len = 0;
        c->cap = size;
        t->bytes += size + sizeof(chunk);
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

static void chunk_key(const rv_timers *t, int64_t time, size_t n, uint8_t out[20])
{
    out[0] = 0xFF;
    out[1] = 0xFF;
    out[2] = 'T';
    out[3] = (uint8_t)t->domain;
    uint64_t u = (uint64_t)time ^ (1ull << 63);
    for (int i = 0; i < 8; i++)
        out[4 + i] = (uint8_t)(u >> (56 - 8 * i));
    uint64_t c = n;
    for (int i = 0; i < 8; i++)
        out[12 + i] = (uint8_t)(c >> (56 - 8 * i));
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
        if (b->rd_chunk >= b->nchunks) {
            bucket_remove(t, id);
            continue;
        }
        chunk *c = &b->chunks[b->rd_chunk];
        if (!c->data) {
            uint8_t k[20];
            chunk_key(t, b->time, b->rd_chunk, k);
            int64_t expiry;
            uint8_t *val = NULL;
            uint32_t vlen = 0;
            if (!rv_sdb_get(db, k, sizeof(k), &expiry, &val, &vlen, err)) {
                if (!*err)
                    *err = rv_err_new(RV_ERR_CORRUPT, "a spilled timer chunk is missing from RocksDB");
                return false;
            }
            rv_sdb_delete(db, k, sizeof(k));
            c->data = val;
            c->len = vlen;
            c->cap = vlen;
            t->bytes += c->cap + sizeof(chunk);
        }
        if (b->rd_off >= c->len) {
            t->bytes -= c->cap + sizeof(chunk);
            free(c->data);
            c->data = NULL;
            c->len = 0;
            c->cap = 0;
            b->rd_chunk++;
            b->rd_off = 0;
            continue;
        }
        const uint8_t *p = c->data + b->rd_off;
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

static int by_time_asc(const void *a, const void *b, void *arg)
{
    const rv_timers *t = arg;
    int64_t x = t->b[*(const uint32_t *)a].time, y = t->b[*(const uint32_t *)b].time;
    return x < y ? -1 : x > y ? 1 : 0;
}

/* The records of one chunk from offset `from`. */
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
    uint32_t *order = rv_xmalloc((t->nheap + 1) * sizeof(uint32_t));
    memcpy(order, t->heap, t->nheap * sizeof(uint32_t));
    qsort_r(order, t->nheap, sizeof(uint32_t), by_time_asc, (void *)t);
    rv_err *err = NULL;
    for (size_t i = 0; i < t->nheap && !err; i++) {
        const bucket *b = &t->b[order[i]];
        for (size_t c = b->rd_chunk; c < b->nchunks && !err; c++) {
            const chunk *ch = &b->chunks[c];
            uint32_t from = c == b->rd_chunk ? b->rd_off : 0;
            if (ch->data) {
                err = each_record(ch->data, ch->len, from, b->time, fn, arg);
                continue;
            }
            uint8_t k[20];
            chunk_key(t, b->time, c, k);
            int64_t expiry;
            uint8_t *val = NULL;
            uint32_t vlen = 0;
            if (!db || !rv_sdb_get(db, k, sizeof(k), &expiry, &val, &vlen, &err)) {
                if (!err)
                    err = rv_err_new(RV_ERR_CORRUPT, "a spilled timer chunk is missing from RocksDB");
                break;
            }
            err = each_record(val, vlen, from, b->time, fn, arg);
            free(val);
        }
    }
    free(order);
    return err;
}

static int by_time_desc(const void *a, const void *b, void *arg)
{
    const rv_timers *t = arg;
    int64_t x = t->b[*(const uint32_t *)a].time, y = t->b[*(const uint32_t *)b].time;
    return x < y ? 1 : x > y ? -1 : 0;
}

void rv_timers_spill(rv_timers *t, rv_sdb *db, size_t keep)
{
    if (rv_timers_bytes(t) <= keep || t->nheap < 2)
        return;
    /* Latest buckets first; the earliest bucket stays (it fires next). */
    uint32_t *order = rv_xmalloc(t->nheap * sizeof(uint32_t));
    memcpy(order, t->heap, t->nheap * sizeof(uint32_t));
    qsort_r(order, t->nheap, sizeof(uint32_t), by_time_desc, t);
    for (size_t i = 0; i + 1 < t->nheap && rv_timers_bytes(t) > keep; i++) {
        bucket *b = &t->b[order[i]];
        for (size_t c = b->rd_chunk; c < b->nchunks && rv_timers_bytes(t) > keep; c++) {
            chunk *ch = &b->chunks[c];
            if (!ch->data || (c == b->rd_chunk && b->rd_off > 0))
                continue;
            uint8_t k[20];
            chunk_key(t, b->time, c, k);
            rv_sdb_put(db, k, sizeof(k), INT64_MAX, ch->data, ch->len);
            t->bytes -= ch->cap + sizeof(chunk);
            free(ch->data);
            ch->data = NULL;
            ch->cap = 0;
            /* A spilled last chunk is not appended to: the next add starts a new one. */
        }
    }
    free(order);
}
