/* rv_state_snap: full snapshots of one operator instance's keyed state
 * (see rv_state.h), the building block of checkpoints and savepoints.
 *
 * Stream format (integers little-endian):
 *   "RVSTATE2"
 *   'E' u32 key length, i64 expiry, u32 value length, full key, value
 *                                   (one per entry; full keys as in rv_state.h)
 *   'T' u8 domain, i64 time, u16 key group, u32 key length, u64 key hash,
 *       i64 namespace, key          (one per timer, in firing order)
 *   'D' u32 key length, full key    (incremental snapshots: an entry the
 *                                    RocksDB checkpoint holds was deleted)
 *   'B' u8 domain, i64 time, u64 timers, u64 first and u64 end spilled
 *       chunk, u32 head length, head
 *                                   (incremental snapshots: one per timer
 *                                    bucket instead of 'T' records; its
 *                                    timers are the head's records, then
 *                                    those of its spilled chunks, which
 *                                    are in the RocksDB checkpoint)
 *   'Z' u64 entries, u64 timers, u64 XXH3 of every byte before this field
 * Restoring checks the magic, every length against the bytes left, the
 * counts and the checksum, so a truncated or corrupted file is an error,
 * never wrong state. Entries and timers outside the wanted key-group
 * range are skipped, so one snapshot can be split among new instances
 * (rescaling) and several merged into one. */
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "rv_mem.h"
#include "rv_state_db.h"
#include "rv_state_int.h"

#define MAGIC "RVSTATE2" /* 2: full keys end with the user-key length */
#define MAX_KEY (64u << 20)
#define MAX_VALUE (1u << 31)

/* Fields go through a local buffer, hashed and written a chunk at a time:
 * a call per field into stdio and XXH3 would cost more than the copying. */
#define CHUNK (64 * 1024)

/* ---- writing ---- */

typedef struct writer {
    FILE *f;
    XXH3_state_t *h;
    uint64_t bytes, entries, timers;
    bool failed;
    size_t len;
    uint8_t *buf; /* CHUNK bytes */
} writer;

static void write_out(writer *w, const void *p, size_t n)
{
    if (!n || w->failed)
        return;
    XXH3_64bits_update(w->h, p, n);
    if (fwrite(p, 1, n, w->f) != n)
        w->failed = true;
}

static void flush_chunk(writer *w)
{
    write_out(w, w->buf, w->len);
    w->len = 0;
}

static void put(writer *w, const void *p, size_t n)
{
    if (!n)
        return;
    w->bytes += n;
    if (n > CHUNK - w->len) {
        flush_chunk(w);
        if (n >= CHUNK) {
            write_out(w, p, n);
            return;
        }
    }
    memcpy(w->buf + w->len, p, n);
    w->len += n;
}

static void put_u8(writer *w, uint8_t v) { put(w, &v, 1); }
static void put_u16(writer *w, uint16_t v) { put(w, &v, 2); }
static void put_u32(writer *w, uint32_t v) { put(w, &v, 4); }
static void put_u64(writer *w, uint64_t v) { put(w, &v, 8); }

static rv_err *write_entry(void *arg, const uint8_t *fk, uint32_t n, int64_t expiry, const uint8_t *v, uint32_t vlen)
{
    writer *w = arg;
    put_u8(w, 'E');
    put_u32(w, n);
    put_u64(w, (uint64_t)expiry);
    put_u32(w, vlen);
    put(w, fk, n);
    put(w, v, vlen);
    w->entries++;
    return NULL;
}

typedef struct timer_writer {
    writer *w;
    int domain;
} timer_writer;

static rv_err *write_timer(void *arg, int64_t time, uint16_t kg, const uint8_t *key, uint32_t klen, uint64_t khash,
                           int64_t ns)
{
    timer_writer *tw = arg;
    writer *w = tw->w;
    put_u8(w, 'T');
    put_u8(w, (uint8_t)tw->domain);
    put_u64(w, (uint64_t)time);
    put_u16(w, kg);
    put_u32(w, klen);
    put_u64(w, khash);
    put_u64(w, (uint64_t)ns);
    put(w, key, klen);
    w->timers++;
    return NULL;
}

static rv_err *write_delete(void *arg, const uint8_t *fk, uint32_t n)
{
    writer *w = arg;
    put_u8(w, 'D');
    put_u32(w, n);
    put(w, fk, n);
    w->entries++;
    return NULL;
}

static rv_err *write_bucket(void *arg, int64_t time, uint64_t count, const uint8_t *head, uint32_t head_len,
                           uint64_t sp_lo, uint64_t sp_hi)
{
    timer_writer *tw = arg;
    writer *w = tw->w;
    put_u8(w, 'B');
    put_u8(w, (uint8_t)tw->domain);
    put_u64(w, (uint64_t)time);
    put_u64(w, count);
    put_u64(w, sp_lo);
    put_u64(w, sp_hi);
    put_u32(w, head_len);
    put(w, head, head_len);
    w->timers += count;
    return NULL;
}

/* The stream: every entry and every timer, or (incremental, after
 * rv_state_checkpoint_db) the dirty entries — what the RocksDB checkpoint
 * lacks or holds in an older version — and the timer buckets. */
static rv_err *write_stream(rv_state *s, FILE *out, const char *what, uint64_t *bytes, bool incremental)
{
    writer w = {.f = out, .h = XXH3_createState(), .buf = rv_xmalloc(CHUNK)};
    XXH3_64bits_reset(w.h);
    put(&w, MAGIC, 8);
    rv_err *err = incremental ? rv_state_each_dirty(s, write_entry, write_delete, &w)
                              : rv_state_each_entry(s, write_entry, &w);
    for (int d = 0; d < 2 && !err; d++) {
        timer_writer tw = {&w, d};
        err = incremental ? rv_state_each_timer_bucket(s, d, write_bucket, &tw)
                          : rv_state_each_timer(s, d, write_timer, &tw);
    }
    if (!err) {
        put_u8(&w, 'Z');
        put_u64(&w, w.entries);
        put_u64(&w, w.timers);
        flush_chunk(&w);
        uint64_t sum = XXH3_64bits_digest(w.h);
        if (fwrite(&sum, 1, 8, out) != 8)
            w.failed = true;
        w.bytes += 8;
        if (fflush(out) != 0)
            w.failed = true;
    }
    XXH3_freeState(w.h);
    free(w.buf);
    if (!err && w.failed)
        err = rv_err_new(RV_ERR_IO, "%s: writing the state snapshot failed (disk full?)", what);
    if (!err && bytes)
        *bytes = w.bytes;
    return err;
}

rv_err *rv_state_snapshot(rv_state *s, FILE *out, const char *what, uint64_t *bytes)
{
    return write_stream(s, out, what, bytes, false);
}

rv_err *rv_state_snapshot_incremental(rv_state *s, const char *db_dir, FILE *out, const char *what, uint64_t *bytes,
                                      bool *done)
{
    rv_state_stats st;
    rv_state_get_stats(s, &st);
    *done = st.db_open;
    if (!st.db_open)
        return NULL;
    rv_err *err = rv_state_checkpoint_db(s, db_dir);
    return err ? rv_err_wrap(err, "%s", what) : write_stream(s, out, what, bytes, true);
}

typedef struct db_loader {
    rv_state *s;
    uint64_t n;
} db_loader;

static rv_err *load_db_entry(void *arg, const uint8_t *key, size_t klen, int64_t expiry, const uint8_t *val,
                             uint32_t vlen)
{
    db_loader *l = arg;
    if (!rv_state_full_key_ok(key, (uint32_t)klen))
        return rv_err_new(RV_ERR_CORRUPT, "a malformed key");
    rv_state_load_entry(l->s, key, (uint32_t)klen, expiry, val, vlen);
    /* Restoring state larger than the budget spills as it goes. */
    return ++l->n % 1024 == 0 ? rv_state_maintain(l->s) : NULL;
}

rv_err *rv_state_restore_db(rv_state *s, const char *db_dir, const char *what, int kg_first, int kg_end)
{
    uint8_t lo[2] = {(uint8_t)(kg_first >> 8), (uint8_t)kg_first}, hi[2] = {(uint8_t)(kg_end >> 8), (uint8_t)kg_end};
    db_loader l = {.s = s};
    rv_err *err = rv_sdb_each_in(db_dir, lo, 2, hi, 2, load_db_entry, &l);
    return err ? rv_err_wrap(err, "%s", what) : NULL;
}

/* ---- reading ---- */

typedef struct reader {
    FILE *f;
    XXH3_state_t *h;
    const char *what;
    uint8_t *buf; /* one entry or timer key */
    size_t cap;
    uint8_t *in;  /* CHUNK bytes read ahead; [hpos, pos) consumed but not hashed yet */
    size_t pos, len, hpos;
    bool nohash;  /* reading the checksum itself */
} reader;

static void hash_consumed(reader *r)
{
    if (!r->nohash)
        XXH3_64bits_update(r->h, r->in + r->hpos, r->pos - r->hpos);
    r->hpos = r->pos;
}

static rv_err *get(reader *r, void *p, size_t n)
{
    uint8_t *d = p;
    while (n) {
        if (r->pos == r->len) {
            hash_consumed(r);
            r->pos = r->hpos = 0;
            r->len = fread(r->in, 1, CHUNK, r->f);
            if (r->len == 0)
                return rv_err_new(RV_ERR_CORRUPT, "%s: the state snapshot is truncated", r->what);
        }
        size_t k = n < r->len - r->pos ? n : r->len - r->pos;
        memcpy(d, r->in + r->pos, k);
        r->pos += k;
        d += k;
        n -= k;
    }
    return NULL;
}

/* Reads the trailing checksum (not covered by itself). */
static rv_err *get_checksum(reader *r, uint64_t *sum)
{
    hash_consumed(r);
    r->nohash = true;
    rv_err *err = get(r, sum, 8);
    r->hpos = r->pos;
    return err;
}

static bool at_end(reader *r) { return r->pos == r->len && fgetc(r->f) == EOF; }

/* Timers of one bucket in key groups [lo, hi), registered in order. */
typedef struct timer_loader {
    rv_state *s;
    int d, lo, hi;
    uint64_t n;
} timer_loader;

static rv_err *load_timer(void *arg, int64_t time, uint16_t kg, const uint8_t *key, uint32_t klen, uint64_t khash,
                          int64_t ns)
{
    timer_loader *l = arg;
    l->n++;
    if (kg >= l->lo && kg < l->hi) {
        rv_skey k = {.key = key, .len = klen, .kg = kg, .hash = khash};
        rv_timer_register(l->s, (rv_timer_domain)l->d, &k, ns, time);
    }
    return NULL;
}

typedef struct chunk_loader {
    timer_loader *tl;
    int64_t time;
} chunk_loader;

static rv_err *load_chunk(void *arg, const uint8_t *key, size_t klen, int64_t expiry, const uint8_t *val,
                          uint32_t vlen)
{
    chunk_loader *c = arg;
    return rv_timers_decode(val, vlen, c->time, load_timer, c->tl);
}

/* A 'B' record: its timers from the head and the checkpoint's chunks
 * (db_dir), or the bucket itself when the database was adopted. */
static rv_err *restore_bucket(rv_state *s, int d, int64_t time, uint64_t count, const uint8_t *head, uint32_t head_len,
                              uint64_t sp_lo, uint64_t sp_hi, const char *db_dir, bool adopted, int lo, int hi)
{
    if (adopted) {
        rv_state_import_timer_bucket(s, d, time, count, head, head_len, sp_lo, sp_hi);
        return NULL;
    }
    if (!db_dir)
        return rv_err_new(RV_ERR_CORRUPT, "an incremental snapshot restored without its RocksDB checkpoint");
    timer_loader tl = {.s = s, .d = d, .lo = lo, .hi = hi};
    rv_err *err = rv_timers_decode(head, head_len, time, load_timer, &tl);
    if (!err && sp_lo < sp_hi) {
        uint8_t from[20], to[20];
        rv_timers_chunk_key(d, time, sp_lo, from);
        rv_timers_chunk_key(d, time, sp_hi, to);
        chunk_loader cl = {&tl, time};
        err = rv_sdb_each_in(db_dir, from, sizeof(from), to, sizeof(to), load_chunk, &cl);
    }
    if (!err && tl.n != count)
        err = rv_err_new(RV_ERR_CORRUPT, "a timer bucket holds %llu timers, its snapshot says %llu",
                         (unsigned long long)tl.n, (unsigned long long)count);
    return err;
}

static rv_err *restore_stream(rv_state *s, FILE *in, const char *what, int kg_first, int kg_end, const char *db_dir,
                              bool adopted);

rv_err *rv_state_restore(rv_state *s, FILE *in, const char *what, int kg_first, int kg_end)
{
    return restore_stream(s, in, what, kg_first, kg_end, NULL, false);
}

rv_err *rv_state_restore_incremental(rv_state *s, FILE *in, const char *what, int kg_first, int kg_end,
                                     const char *db_dir, bool adopted)
{
    return restore_stream(s, in, what, kg_first, kg_end, db_dir, adopted);
}

static rv_err *restore_stream(rv_state *s, FILE *in, const char *what, int kg_first, int kg_end, const char *db_dir,
                              bool adopted)
{
    reader r = {.f = in, .h = XXH3_createState(), .what = what, .in = rv_xmalloc(CHUNK)};
    XXH3_64bits_reset(r.h);
    uint64_t entries = 0, timers = 0;
    char magic[8];
    rv_err *err = get(&r, magic, 8);
    if (!err && memcmp(magic, MAGIC, 8) != 0)
        err = rv_err_new(RV_ERR_CORRUPT, "%s: not a state snapshot (bad magic)", what);
    while (!err) {
        uint8_t tag;
        if ((err = get(&r, &tag, 1)))
            break;
        if (tag == 'E') {
            uint32_t n, vlen;
            int64_t expiry;
            if ((err = get(&r, &n, 4)) || (err = get(&r, &expiry, 8)) || (err = get(&r, &vlen, 4)))
                break;
            if (n < 3 || n > MAX_KEY || vlen > MAX_VALUE) {
                err = rv_err_new(RV_ERR_CORRUPT, "%s: the state snapshot has an entry of impossible size", what);
                break;
            }
            rv_xgrow((void **)&r.buf, &r.cap, (size_t)n + vlen + 1, 1);
            if ((err = get(&r, r.buf, (size_t)n + vlen)))
                break;
            if (!rv_state_full_key_ok(r.buf, n)) {
                err = rv_err_new(RV_ERR_CORRUPT, "%s: the state snapshot has a malformed key", what);
                break;
            }
            int kg = (r.buf[0] << 8) | r.buf[1];
            if (kg >= kg_first && kg < kg_end)
                rv_state_load_entry(s, r.buf, n, expiry, r.buf + n, vlen);
            /* Restoring state larger than the budget spills as it goes. */
            if (++entries % 1024 == 0 && (err = rv_state_maintain(s)))
                break;
        } else if (tag == 'T') {
            uint8_t d;
            int64_t time, ns;
            uint16_t kg;
            uint32_t klen;
            uint64_t khash;
            if ((err = get(&r, &d, 1)) || (err = get(&r, &time, 8)) || (err = get(&r, &kg, 2)) ||
                (err = get(&r, &klen, 4)) || (err = get(&r, &khash, 8)) || (err = get(&r, &ns, 8)))
                break;
            if (d > 1 || klen > MAX_KEY) {
                err = rv_err_new(RV_ERR_CORRUPT, "%s: the state snapshot has a malformed timer", what);
                break;
            }
            rv_xgrow((void **)&r.buf, &r.cap, (size_t)klen + 1, 1);
            if ((err = get(&r, r.buf, klen)))
                break;
            if (kg >= kg_first && kg < kg_end) {
                rv_skey k = {.key = r.buf, .len = klen, .kg = kg, .hash = khash};
                rv_timer_register(s, (rv_timer_domain)d, &k, ns, time);
            }
            timers++;
        } else if (tag == 'D') {
            uint32_t n;
            if ((err = get(&r, &n, 4)))
                break;
            if (n < 3 || n > MAX_KEY) {
                err = rv_err_new(RV_ERR_CORRUPT, "%s: the state snapshot has a deletion of impossible size", what);
                break;
            }
            rv_xgrow((void **)&r.buf, &r.cap, (size_t)n + 1, 1);
            if ((err = get(&r, r.buf, n)))
                break;
            if (!rv_state_full_key_ok(r.buf, n)) {
                err = rv_err_new(RV_ERR_CORRUPT, "%s: the state snapshot has a malformed key", what);
                break;
            }
            int kg = (r.buf[0] << 8) | r.buf[1];
            if (kg >= kg_first && kg < kg_end)
                rv_state_load_delete(s, r.buf, n);
            entries++;
        } else if (tag == 'B') {
            uint8_t d;
            int64_t time;
            uint64_t count, sp_lo, sp_hi;
            uint32_t hlen;
            if ((err = get(&r, &d, 1)) || (err = get(&r, &time, 8)) || (err = get(&r, &count, 8)) ||
                (err = get(&r, &sp_lo, 8)) || (err = get(&r, &sp_hi, 8)) || (err = get(&r, &hlen, 4)))
                break;
            if (d > 1 || hlen > MAX_KEY || sp_lo > sp_hi) {
                err = rv_err_new(RV_ERR_CORRUPT, "%s: the state snapshot has a malformed timer bucket", what);
                break;
            }
            rv_xgrow((void **)&r.buf, &r.cap, (size_t)hlen + 1, 1);
            if ((err = get(&r, r.buf, hlen)))
                break;
            if ((err = restore_bucket(s, d, time, count, r.buf, hlen, sp_lo, sp_hi, db_dir, adopted, kg_first, kg_end))) {
                err = rv_err_wrap(err, "%s", what);
                break;
            }
            timers += count;
        } else if (tag == 'Z') {
            uint64_t ne, nt, sum;
            if ((err = get(&r, &ne, 8)) || (err = get(&r, &nt, 8)))
                break;
            hash_consumed(&r);
            uint64_t want = XXH3_64bits_digest(r.h);
            if ((err = get_checksum(&r, &sum))) {
                break;
            } else if (sum != want || ne != entries || nt != timers) {
                err = rv_err_new(RV_ERR_CORRUPT, "%s: the state snapshot is corrupt (checksum mismatch)", what);
            } else if (!at_end(&r)) {
                err = rv_err_new(RV_ERR_CORRUPT, "%s: the state snapshot has bytes after its end", what);
            }
            break;
        } else {
            err = rv_err_new(RV_ERR_CORRUPT, "%s: the state snapshot is corrupt (unknown record)", what);
        }
    }
    XXH3_freeState(r.h);
    free(r.buf);
    free(r.in);
    return err;
}
