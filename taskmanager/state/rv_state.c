/* rv_state: the keyed-state cache and its backends (see rv_state.h).
 *
 * Entries live in an array addressed by id (free ids reused); each owns
 * one allocation holding its full state key followed by its value. A
 * linear-probing table of (id + 1, hash tag) slots, at most half full and
 * cleaned by backward shift, finds entries by full key. The full key is
 * what RocksDB stores:
 *   kg (2, big-endian) | sid (1) | key | ns (8, big-endian, sign flipped) |
 *   user key | user key length (4, big-endian)
 * and is found by a hash made from the key's own hash (no bytes hashed
 * again per access; full_key_hash() rebuilds it from the bytes). Flags: DIRTY (differs from RocksDB), REF (used since the clock hand last
 * passed), IN_DB (RocksDB may hold a version), TOMB (deleted, the delete
 * not yet written to RocksDB).
 *
 * Memory: each entry is charged its struct, two slots, its allocation
 * and malloc's overhead; timers are charged what they hold. Above the
 * budget maintain() runs the clock hand and evicts unreferenced entries
 * down to 7/8 of the budget, writing dirty ones in one WriteBatch. */
#include "rv_state.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "rv_file.h"
#include "rv_hash.h"
#include "rv_log.h"
#include "rv_mem.h"
#include "rv_state_db.h"
#include "rv_state_int.h"
#include "rv_timers.h"

#define F_DIRTY 1u
#define F_REF 2u
#define F_IN_DB 4u
#define F_TOMB 8u
#define F_LIVE 16u

#define MIN_SLOTS 64u
#define MALLOC_OVERHEAD 16u
/* Entries examined per maintain() for expired ones. */
#define EXPIRE_SWEEP 512u

typedef struct entry {
    uint64_t hash;
    uint8_t *blk; /* full key, then value */
    uint32_t klen, vlen, vcap;
    uint8_t flags;
    int64_t expires;
} entry;

typedef struct slot {
    uint32_t id1; /* entry id + 1; 0 = empty */
    uint32_t tag; /* low 32 bits of the hash */
} slot;

struct rv_state {
    rv_state_conf conf;
    char *dir, *what;
    entry *ents;
    size_t nents, ents_cap, live;
    uint32_t *free_ids;
    size_t nfree, free_cap;
    slot *slots;
    size_t mask;
    size_t bytes; /* entries, counted as in the header comment */
    size_t hand, sweep;
    size_t clean; /* write-back cursor (trickle_write_back) */
    uint8_t *kbuf; /* scratch full key */
    size_t kcap;
    uint64_t *pf_hash; /* prefetch scratch */
    uint32_t *pf_id;
    size_t pf_cap;
    _Atomic int64_t clock;
    rv_timers *timers[2];
    rv_sdb *db;
    bool db_used; /* something was written to RocksDB */
    bool any_expiry; /* some entry got an expiry: maintain() sweeps for expired ones */
    bool warned;
    rv_err *err; /* sticky, returned by maintain() */
    uint64_t evicted, db_reads, db_hits;
};

void rv_state_conf_default(rv_state_conf *c)
{
    c->backend = RV_STATE_ROCKSDB;
    c->memory_budget = RV_STATE_DEFAULT_BUDGET;
}

const char *rv_state_backend_name(rv_state_backend b) { return b == RV_STATE_MEMORY ? "memory" : "rocksdb"; }


static size_t total_bytes(const rv_state *s);

static size_t entry_charge(const entry *e)
{
    return sizeof(entry) + 2 * sizeof(slot) + e->klen + e->vcap + MALLOC_OVERHEAD;
}

rv_err *rv_state_open(const rv_state_conf *conf, const char *dir, const char *what, rv_state **out)
{
    rv_state *s = rv_xcalloc(1, sizeof(*s));
    s->conf = *conf;
    s->dir = rv_xstrdup(dir);
    s->what = rv_xstrdup(what);
    s->mask = MIN_SLOTS - 1;
    s->slots = rv_xcalloc(MIN_SLOTS, sizeof(slot));
    atomic_init(&s->clock, INT64_MIN);
    s->timers[0] = rv_timers_new(0);
    s->timers[1] = rv_timers_new(1);
    *out = s;
    return NULL;
}

void rv_state_close(rv_state *s)
{
    if (!s)
        return;
    if (s->db)
        RV_LOG_INFO("state", "%s: %zu entries (%zu bytes) in memory at the end; %" PRIu64 " evicted, %" PRIu64
                    " RocksDB reads (%" PRIu64 " found)",
                    s->what, s->live, total_bytes(s), s->evicted, s->db_reads, s->db_hits);
    for (size_t i = 0; i < s->nents; i++)
        free(s->ents[i].blk);
    free(s->ents);
    free(s->free_ids);
    free(s->slots);
    free(s->kbuf);
    free(s->pf_hash);
    free(s->pf_id);
    rv_timers_free(s->timers[0]);
    rv_timers_free(s->timers[1]);
    rv_sdb_close(s->db);
    if (s->conf.backend == RV_STATE_ROCKSDB) {
        rv_err *err = rv_file_remove_tree(s->dir);
        if (err) {
            RV_LOG_WARN("state", "%s: %s", s->what, rv_err_msg(err));
            rv_err_free(err);
        }
    }
    rv_err_free(s->err);
    free(s->dir);
    free(s->what);
    free(s);
}

/* ---- full keys ---- */

/* The table's hash of (sid, key, ns, uk), from the key's hash (the XXH3 of
 * its bytes, as rv_hash_rows computes it) so the hot path hashes no bytes
 * again; full_key_hash() recomputes it from a full key alone (entries
 * read back from a snapshot). */
static inline uint64_t key_hash(int sid, uint64_t khash, int64_t ns, const void *uk, uint32_t uklen)
{
    uint64_t h = rv_mix64(khash ^ rv_mix64(((uint64_t)ns ^ (1ull << 63)) + (uint64_t)sid * 0x9E3779B97F4A7C15ull));
    return uklen ? h ^ rv_mix64(rv_hash_bytes(uk, uklen, 0)) : h;
}

/* Full key: kg (2, big-endian) | sid | key | ns (8, big-endian, sign
 * flipped) | user key | user key length (4, big-endian), so its parts can
 * be told apart from the bytes alone. */
#define RV_FULL_KEY_LEN(k, uklen) (2 + 1 + (size_t)(k)->len + 8 + (uklen) + 4)

static uint64_t full_key_hash(const uint8_t *p, size_t n)
{
    uint32_t uklen = (uint32_t)p[n - 4] << 24 | (uint32_t)p[n - 3] << 16 | (uint32_t)p[n - 2] << 8 | p[n - 1];
    size_t klen = n - 3 - 8 - uklen - 4;
    const uint8_t *q = p + 3 + klen;
    uint64_t u = 0;
    for (int i = 0; i < 8; i++)
        u = u << 8 | q[i];
    return key_hash(p[2], rv_hash_bytes(p + 3, klen, 0), (int64_t)(u ^ (1ull << 63)), q + 8, uklen);
}

/* Writes the full key of (sid, k, ns, uk) to p (room for
 * RV_FULL_KEY_LEN bytes); returns its length. */
static uint32_t write_full_key(uint8_t *p, int sid, const rv_skey *k, int64_t ns, const void *uk, uint32_t uklen)
{
    p[0] = (uint8_t)(k->kg >> 8);
    p[1] = (uint8_t)k->kg;
    p[2] = (uint8_t)sid;
    memcpy(p + 3, k->key, k->len);
    uint64_t u = (uint64_t)ns ^ (1ull << 63);
    for (int i = 0; i < 8; i++)
        p[3 + k->len + i] = (uint8_t)(u >> (56 - 8 * i));
    uint8_t *q = p + 3 + k->len + 8;
    if (uklen)
        memcpy(q, uk, uklen);
    q[uklen] = (uint8_t)(uklen >> 24);
    q[uklen + 1] = (uint8_t)(uklen >> 16);
    q[uklen + 2] = (uint8_t)(uklen >> 8);
    q[uklen + 3] = (uint8_t)uklen;
    return (uint32_t)RV_FULL_KEY_LEN(k, uklen);
}

/* Builds the full key of (sid, k, ns, uk) in s->kbuf; returns its length
 * and its hash in *hash. */
static uint32_t full_key(rv_state *s, int sid, const rv_skey *k, int64_t ns, const void *uk,
                         uint32_t uklen, uint64_t *hash)
{
    rv_xgrow((void **)&s->kbuf, &s->kcap, RV_FULL_KEY_LEN(k, uklen), 1);
    uint32_t n = write_full_key(s->kbuf, sid, k, ns, uk, uklen);
    *hash = key_hash(sid, k->hash, ns, uk, uklen);
    return n;
}

/* ---- the table ---- */

static uint32_t lookup(const rv_state *s, const uint8_t *fk, uint32_t n, uint64_t h)
{
    for (size_t i = h & s->mask;; i = (i + 1) & s->mask) {
        const slot *sl = &s->slots[i];
        if (!sl->id1)
            return UINT32_MAX;
        if (sl->tag != (uint32_t)h)
            continue;
        const entry *e = &s->ents[sl->id1 - 1];
        if (e->klen == n && memcmp(e->blk, fk, n) == 0)
            return sl->id1 - 1;
    }
}

static void slot_insert(rv_state *s, uint32_t id)
{
    uint64_t h = s->ents[id].hash;
    size_t i = h & s->mask;
    while (s->slots[i].id1)
        i = (i + 1) & s->mask;
    s->slots[i] = (slot){.id1 = id + 1, .tag = (uint32_t)h};
}

static void slots_resize(rv_state *s, size_t n)
{
    free(s->slots);
    s->slots = rv_xcalloc(n, sizeof(slot));
    s->mask = n - 1;
    for (size_t id = 0; id < s->nents; id++)
        if (s->ents[id].flags & F_LIVE)
            slot_insert(s, (uint32_t)id);
}

static void slot_remove(rv_state *s, uint32_t id)
{
    size_t i = s->ents[id].hash & s->mask;
    while (s->slots[i].id1 != id + 1)
        i = (i + 1) & s->mask;
    size_t j = i;
    for (;;) {
        j = (j + 1) & s->mask;
        if (!s->slots[j].id1)
            break;
        size_t home = s->ents[s->slots[j].id1 - 1].hash & s->mask;
        if (((j - home) & s->mask) >= ((j - i) & s->mask)) {
            s->slots[i] = s->slots[j];
            i = j;
        }
    }
    s->slots[i] = (slot){0, 0};
}

/* A new entry for full key fk with room for vlen value bytes (zeroed). */
static uint32_t insert(rv_state *s, const uint8_t *fk, uint32_t n, uint64_t h, uint32_t vlen)
{
    uint32_t id;
    if (s->nfree) {
        id = s->free_ids[--s->nfree];
    } else {
        rv_xgrow((void **)&s->ents, &s->ents_cap, s->nents + 1, sizeof(entry));
        id = (uint32_t)s->nents++;
    }
    entry *e = &s->ents[id];
    e->hash = h;
    e->klen = n;
    e->vlen = vlen;
    e->vcap = vlen;
    e->flags = F_LIVE | F_REF;
    e->expires = RV_STATE_NO_EXPIRY;
    e->blk = rv_xcalloc(1, (size_t)n + vlen + 1);
    memcpy(e->blk, fk, n);
    s->live++;
    s->bytes += entry_charge(e);
    if (s->live * 2 > s->mask + 1)
        slots_resize(s, (s->mask + 1) * 2);
    else
        slot_insert(s, id);
    return id;
}

static void drop(rv_state *s, uint32_t id)
{
    entry *e = &s->ents[id];
    slot_remove(s, id);
    s->bytes -= entry_charge(e);
    free(e->blk);
    memset(e, 0, sizeof(*e));
    s->live--;
    rv_xgrow((void **)&s->free_ids, &s->free_cap, s->nfree + 1, sizeof(uint32_t));
    s->free_ids[s->nfree++] = id;
}

static void resize_value(rv_state *s, entry *e, uint32_t len)
{
    if (len > e->vcap) {
        uint32_t cap = e->vcap * 2 > len ? e->vcap * 2 : len;
        s->bytes -= entry_charge(e);
        e->blk = rv_xrealloc(e->blk, (size_t)e->klen + cap + 1);
        e->vcap = cap;
        s->bytes += entry_charge(e);
    }
    if (len > e->vlen)
        memset(e->blk + e->klen + e->vlen, 0, len - e->vlen);
    e->vlen = len;
}

static inline bool expired(const rv_state *s, const entry *e)
{
    return e->expires != RV_STATE_NO_EXPIRY &&
           e->expires <= atomic_load_explicit(&s->clock, memory_order_relaxed);
}

/* The entry of the full key in s->kbuf: cached, or read back from RocksDB.
 * Absent, deleted and expired entries give UINT32_MAX. */
static uint32_t find(rv_state *s, uint32_t n, uint64_t h)
{
    uint32_t id = lookup(s, s->kbuf, n, h);
    if (id != UINT32_MAX) {
        entry *e = &s->ents[id];
        e->flags |= F_REF;
        return (e->flags & F_TOMB) || expired(s, e) ? UINT32_MAX : id;
    }
    if (!s->db_used || s->err)
        return UINT32_MAX;
    s->db_reads++;
    int64_t expiry = RV_STATE_NO_EXPIRY;
    uint8_t *val = NULL;
    uint32_t vlen = 0;
    if (!rv_sdb_get(s->db, s->kbuf, n, &expiry, &val, &vlen, &s->err))
        return UINT32_MAX;
    s->db_hits++;
    id = insert(s, s->kbuf, n, h, vlen);
    entry *e = &s->ents[id];
    memcpy(e->blk + n, val, vlen);
    free(val);
    e->expires = expiry;
    e->flags |= F_IN_DB;
    s->any_expiry |= expiry != RV_STATE_NO_EXPIRY;
    return expired(s, e) ? UINT32_MAX : id;
}

/* Like find(), but creates a zero-filled value of init_len bytes when
 * absent (reusing a cached deleted or expired entry). */
static uint32_t find_or_create(rv_state *s, uint32_t n, uint64_t h, uint32_t init_len, bool *created)
{
    uint32_t id = find(s, n, h);
    *created = id == UINT32_MAX;
    if (id != UINT32_MAX)
        return id;
    id = lookup(s, s->kbuf, n, h);
    if (id == UINT32_MAX)
        return insert(s, s->kbuf, n, h, init_len);
    entry *e = &s->ents[id]; /* a tombstone or an expired entry */
    e->flags &= (uint8_t)~F_TOMB;
    e->expires = RV_STATE_NO_EXPIRY;
    e->vlen = 0;
    resize_value(s, e, init_len);
    return id;
}

/* Removes entry id from the cache; if RocksDB may hold an older version,
 * leaves a tombstone so that version cannot come back. */
static void forget(rv_state *s, uint32_t id)
{
    entry *e = &s->ents[id];
    if (!(e->flags & F_IN_DB)) {
        drop(s, id);
        return;
    }
    e->flags |= F_TOMB | F_DIRTY;
    e->vlen = 0;
}

/* Deletes the full key in s->kbuf. */
static void remove_key(rv_state *s, uint32_t n, uint64_t h)
{
    uint32_t id = lookup(s, s->kbuf, n, h);
    if (id == UINT32_MAX) {
        if (!s->db_used)
            return;
        id = insert(s, s->kbuf, n, h, 0); /* a tombstone for RocksDB's copy */
        s->ents[id].flags |= F_IN_DB;
    }
    forget(s, id);
}

/* ---- value, list and map state ---- */

/* The entry of (sid, k, ns, uk) for writing: found or created with
 * init_len zero bytes, marked dirty; *n gets the full key's length (the
 * value starts at e->blk + *n). */
static entry *write_entry(rv_state *s, int sid, const rv_skey *k, int64_t ns, const void *uk, uint32_t uklen,
                          uint32_t init_len, uint32_t *n, bool *created)
{
    uint64_t h;
    *n = full_key(s, sid, k, ns, uk, uklen, &h);
    uint32_t id = find_or_create(s, *n, h, init_len, created); /* may move s->ents */
    entry *e = &s->ents[id];
    e->flags |= F_DIRTY;
    return e;
}

const uint8_t *rv_value_get(rv_state *s, int sid, const rv_skey *k, int64_t ns, uint32_t *len)
{
    uint64_t h;
    uint32_t n = full_key(s, sid, k, ns, NULL, 0, &h);
    uint32_t id = find(s, n, h);
    if (id == UINT32_MAX)
        return NULL;
    *len = s->ents[id].vlen;
    return s->ents[id].blk + n;
}

uint8_t *rv_value_upsert(rv_state *s, int sid, const rv_skey *k, int64_t ns, uint32_t init_len,
                         uint32_t *len, bool *created)
{
    bool c;
    uint32_t n;
    entry *e = write_entry(s, sid, k, ns, NULL, 0, init_len, &n, &c);
    if (created)
        *created = c;
    if (len)
        *len = e->vlen;
    return e->blk + n;
}

uint8_t *rv_value_put(rv_state *s, int sid, const rv_skey *k, int64_t ns, const void *v, uint32_t len)
{
    bool c;
    uint32_t n;
    entry *e = write_entry(s, sid, k, ns, NULL, 0, 0, &n, &c);
    resize_value(s, e, len);
    if (v && len)
        memcpy(e->blk + n, v, len);
    return e->blk + n;
}

void rv_value_delete(rv_state *s, int sid, const rv_skey *k, int64_t ns)
{
    uint64_t h;
    uint32_t n = full_key(s, sid, k, ns, NULL, 0, &h);
    remove_key(s, n, h);
}

void rv_value_set_expiry(rv_state *s, int sid, const rv_skey *k, int64_t ns, int64_t expires_at)
{
    uint64_t h;
    uint32_t n = full_key(s, sid, k, ns, NULL, 0, &h);
    uint32_t id = find(s, n, h);
    if (id == UINT32_MAX)
        return;
    s->ents[id].expires = expires_at;
    s->ents[id].flags |= F_DIRTY;
    s->any_expiry |= expires_at != RV_STATE_NO_EXPIRY;
}

void rv_list_add(rv_state *s, int sid, const rv_skey *k, int64_t ns, const void *v, uint32_t len)
{
    bool c;
    uint32_t n;
    entry *e = write_entry(s, sid, k, ns, NULL, 0, 0, &n, &c);
    uint32_t off = e->vlen;
    resize_value(s, e, off + 4 + len);
    uint8_t *p = e->blk + n + off;
    memcpy(p, &len, 4);
    if (len)
        memcpy(p + 4, v, len);
}

bool rv_list_next(const uint8_t *list, uint32_t list_len, uint32_t *off, const uint8_t **v, uint32_t *len)
{
    if (*off + 4 > list_len)
        return false;
    uint32_t n;
    memcpy(&n, list + *off, 4);
    if (n > list_len - *off - 4)
        return false;
    *v = list + *off + 4;
    *len = n;
    *off += 4 + n;
    return true;
}

const uint8_t *rv_map_get(rv_state *s, int sid, const rv_skey *k, int64_t ns, const void *uk,
                          uint32_t uklen, uint32_t *len)
{
    uint64_t h;
    uint32_t n = full_key(s, sid, k, ns, uk, uklen, &h);
    uint32_t id = find(s, n, h);
    if (id == UINT32_MAX)
        return NULL;
    *len = s->ents[id].vlen;
    return s->ents[id].blk + n;
}

bool rv_map_put(rv_state *s, int sid, const rv_skey *k, int64_t ns, const void *uk, uint32_t uklen,
                const void *v, uint32_t len)
{
    bool created;
    uint32_t n;
    entry *e = write_entry(s, sid, k, ns, uk, uklen, 0, &n, &created);
    resize_value(s, e, len);
    if (len)
        memcpy(e->blk + n, v, len);
    return created;
}

void rv_map_remove(rv_state *s, int sid, const rv_skey *k, int64_t ns, const void *uk, uint32_t uklen)
{
    uint64_t h;
    uint32_t n = full_key(s, sid, k, ns, uk, uklen, &h);
    remove_key(s, n, h);
}

/* Group prefetching: three passes over the batch (slots, then the entries
 * their tags point to, then the entries' allocations), so the misses of
 * one pass overlap instead of following each other. */
void rv_state_prefetch(rv_state *s, int sid, const rv_skey *keys, const int64_t *ns, uint32_t n)
{
    if (n > s->pf_cap) {
        s->pf_cap = (size_t)n * 2;
        s->pf_hash = rv_xrealloc(s->pf_hash, s->pf_cap * sizeof(uint64_t));
        s->pf_id = rv_xrealloc(s->pf_id, s->pf_cap * sizeof(uint32_t));
    }
    for (uint32_t i = 0; i < n; i++) {
        uint64_t h = key_hash(sid, keys[i].hash, ns[i], NULL, 0);
        s->pf_hash[i] = h;
        __builtin_prefetch(&s->slots[h & s->mask]);
    }
    for (uint32_t i = 0; i < n; i++) {
        uint64_t h = s->pf_hash[i];
        uint32_t id = UINT32_MAX;
        for (size_t j = h & s->mask; s->slots[j].id1; j = (j + 1) & s->mask)
            if (s->slots[j].tag == (uint32_t)h) {
                id = s->slots[j].id1 - 1;
                __builtin_prefetch(&s->ents[id]);
                break;
            }
        s->pf_id[i] = id;
    }
    for (uint32_t i = 0; i < n; i++)
        if (s->pf_id[i] != UINT32_MAX)
            __builtin_prefetch(s->ents[s->pf_id[i]].blk);
}

/* ---- time and timers ---- */

void rv_state_advance_time(rv_state *s, int64_t now)
{
    if (now > atomic_load_explicit(&s->clock, memory_order_relaxed))
        atomic_store_explicit(&s->clock, now, memory_order_relaxed);
}

void rv_timer_register(rv_state *s, rv_timer_domain d, const rv_skey *k, int64_t ns, int64_t time)
{
    rv_timers_add(s->timers[d], k->kg, k->key, k->len, k->hash, ns, time);
}

bool rv_timer_pop(rv_state *s, rv_timer_domain d, int64_t upto, rv_skey *k, int64_t *ns, int64_t *time)
{
    rv_err *err = NULL;
    bool ok = rv_timers_pop(s->timers[d], s->db, upto, &k->kg, &k->key, &k->len, &k->hash, ns, time, &err);
    if (err && !s->err)
        s->err = err;
    else
        rv_err_free(err);
    return ok;
}

int64_t rv_timer_next(const rv_state *s, rv_timer_domain d) { return rv_timers_next(s->timers[d]); }

size_t rv_timer_count(const rv_state *s, rv_timer_domain d) { return rv_timers_count(s->timers[d]); }

/* ---- maintenance ---- */

static size_t total_bytes(const rv_state *s)
{
    return s->bytes + s->mask * sizeof(slot) / 2 + rv_timers_bytes(s->timers[0]) +
           rv_timers_bytes(s->timers[1]);
}

/* Frees expired entries among the next EXPIRE_SWEEP ids. Their RocksDB
 * copies are left to the compaction filter. */
static void sweep_expired(rv_state *s)
{
    if (s->nents == 0 || !s->any_expiry)
        return;
    for (size_t k = 0; k < EXPIRE_SWEEP && k < s->nents; k++) {
        if (s->sweep >= s->nents)
            s->sweep = 0;
        uint32_t id = (uint32_t)s->sweep++;
        entry *e = &s->ents[id];
        if ((e->flags & F_LIVE) && !(e->flags & F_TOMB) && expired(s, e))
            forget(s, id);
    }
}

static rv_err *open_db(rv_state *s)
{
    rv_err *err = rv_file_mkdirs(s->dir);
    if (!err)
        err = rv_sdb_open(s->dir, s->conf.memory_budget, &s->clock, &s->db);
    if (err)
        return rv_err_wrap(err, "%s: state spills past memory_budget", s->what);
    RV_LOG_INFO("state", "%s: state passed memory_budget (%" PRId64 " bytes); spilling to RocksDB in %s",
                s->what, s->conf.memory_budget, s->dir);
    return NULL;
}

rv_err *rv_state_adopt_db(rv_state *s, const char *db_dir, bool *done)
{
    *done = false;
    if (s->conf.backend != RV_STATE_ROCKSDB || s->db || !rv_state_is_empty(s))
        return NULL;
    rv_err *err = rv_file_remove_tree(s->dir);
    if (err)
        return err;
    if (rename(db_dir, s->dir) != 0)
        return rv_err_new(RV_ERR_IO, "%s: cannot move %s to %s: %s", s->what, db_dir, s->dir, strerror(errno));
    if ((err = rv_sdb_open(s->dir, s->conf.memory_budget, &s->clock, &s->db)))
        return rv_err_wrap(err, "%s: restoring", s->what);
    s->db_used = true;
    *done = true;
    RV_LOG_INFO("state", "%s: restored by taking over the checkpoint's RocksDB files (entries load on first use)",
                s->what);
    return NULL;
}

/* Evicts down to 7/8 of the budget: timers beyond a quarter of the
 * budget spill (latest first), then unreferenced entries go in clock
 * order. */
static rv_err *evict(rv_state *s)
{
    if (!s->db) {
        rv_err *err = open_db(s);
        if (err)
            return err;
    }
    size_t budget = (size_t)s->conf.memory_budget;
    for (int d = 0; d < 2; d++)
        rv_timers_spill(s->timers[d], s->db, budget / 8);
    /* Entries get what the timers left of 7/8 of the budget, but never less
     * than an eighth of it: timers at very many distinct times keep ~90
     * bytes each in memory, and evicting every hot entry would not help. */
    size_t timers = rv_timers_bytes(s->timers[0]) + rv_timers_bytes(s->timers[1]);
    size_t target = budget / 8 * 7 > timers + budget / 8 ? budget / 8 * 7 - timers : budget / 8;
    if (timers > budget / 2 && !s->warned) {
        RV_LOG_WARN("state", "%s: %zu bytes of timers stay in memory (%zu timers; %zu bytes of them cannot spill: "
                    "about 90 per distinct timer time); memory_budget is %" PRId64,
                    s->what, timers, rv_timers_count(s->timers[0]) + rv_timers_count(s->timers[1]),
                    rv_timers_fixed_bytes(s->timers[0]) + rv_timers_fixed_bytes(s->timers[1]), s->conf.memory_budget);
        s->warned = true;
    }
    size_t passes = 0;
    while (s->bytes + s->mask * sizeof(slot) / 2 > target && s->live > 0 && passes < 2 * s->nents + 2) {
        if (s->hand >= s->nents)
            s->hand = 0;
        uint32_t id = (uint32_t)s->hand++;
        passes++;
        entry *e = &s->ents[id];
        if (!(e->flags & F_LIVE))
            continue;
        if (e->flags & F_REF) {
            e->flags &= (uint8_t)~F_REF;
            continue;
        }
        if (e->flags & F_DIRTY) {
            if ((e->flags & F_TOMB) || expired(s, e))
                rv_sdb_delete(s->db, e->blk, e->klen);
            else
                rv_sdb_put(s->db, e->blk, e->klen, e->expires, e->blk + e->klen, e->vlen);
            s->db_used = true;
        }
        drop(s, id);
        s->evicted++;
    }
    s->db_used = true; /* timers may have spilled too */
    if (s->live * 8 < s->mask + 1 && s->mask + 1 > MIN_SLOTS)
        slots_resize(s, (s->mask + 1) / 2);
    return rv_sdb_flush(s->db);
}

/* Once RocksDB is in use and nothing needs evicting, a few dirty entries
 * are written back per call, round the table: incremental checkpoints
 * carry every dirty entry in their stream, and entries that stay dirty
 * without changing would otherwise go into every checkpoint. */
#define TRICKLE_SCAN 256u
static rv_err *trickle_write_back(rv_state *s)
{
    bool any = false;
    for (size_t n = 0; n < TRICKLE_SCAN && s->nents; n++) {
        if (s->clean >= s->nents)
            s->clean = 0;
        uint32_t id = (uint32_t)s->clean++;
        entry *e = &s->ents[id];
        if (!(e->flags & F_LIVE) || !(e->flags & F_DIRTY))
            continue;
        if ((e->flags & F_TOMB) || expired(s, e)) {
            rv_sdb_delete(s->db, e->blk, e->klen);
            drop(s, id);
        } else {
            rv_sdb_put(s->db, e->blk, e->klen, e->expires, e->blk + e->klen, e->vlen);
            e->flags = (uint8_t)((e->flags & ~F_DIRTY) | F_IN_DB);
        }
        any = true;
    }
    return any ? rv_sdb_flush(s->db) : NULL;
}

rv_err *rv_state_maintain(rv_state *s)
{
    if (s->err) {
        rv_err *err = s->err;
        s->err = NULL;
        return rv_err_wrap(err, "%s", s->what);
    }
    sweep_expired(s);
    if (total_bytes(s) <= (size_t)s->conf.memory_budget) {
        /* Under eviction pressure evict() writes cold entries back anyway. */
        rv_err *err = s->db ? trickle_write_back(s) : NULL;
        return err ? rv_err_wrap(err, "%s", s->what) : NULL;
    }
    if (s->conf.backend == RV_STATE_MEMORY) {
        if (!s->warned)
            RV_LOG_WARN("state", "%s: state is over memory_budget (%" PRId64
                        " bytes); the memory backend keeps it all in memory (use backend: rocksdb to spill)",
                        s->what, s->conf.memory_budget);
        s->warned = true;
        return NULL;
    }
    return evict(s);
}

void rv_state_get_stats(const rv_state *s, rv_state_stats *out)
{
    out->entries = s->live;
    out->bytes = total_bytes(s);
    out->evicted = s->evicted;
    out->db_reads = s->db_reads;
    out->db_hits = s->db_hits;
    out->db_open = s->db != NULL;
}

/* ---- for snapshots (rv_state_int.h) ---- */

/* Writes every dirty entry to RocksDB; afterwards RocksDB holds the whole
 * state and the cache only clean copies. */
static rv_err *write_back(rv_state *s)
{
    for (size_t id = 0; id < s->nents; id++) {
        entry *e = &s->ents[id];
        if (!(e->flags & F_LIVE) || !(e->flags & F_DIRTY))
            continue;
        if ((e->flags & F_TOMB) || expired(s, e)) {
            rv_sdb_delete(s->db, e->blk, e->klen);
            drop(s, (uint32_t)id);
            continue;
        }
        rv_sdb_put(s->db, e->blk, e->klen, e->expires, e->blk + e->klen, e->vlen);
        e->flags = (uint8_t)((e->flags & ~F_DIRTY) | F_IN_DB);
    }
    s->db_used = true;
    return rv_sdb_flush(s->db);
}

rv_err *rv_state_checkpoint_db(rv_state *s, const char *dir)
{
    for (int d = 0; d < 2; d++)
        rv_timers_spill_all(s->timers[d], s->db);
    rv_err *err = rv_sdb_flush(s->db);
    return err ? err : rv_sdb_checkpoint(s->db, dir);
}

rv_err *rv_state_each_dirty(rv_state *s, rv_state_entry_fn put, rv_state_delete_fn del, void *arg)
{
    for (size_t id = 0; id < s->nents; id++) {
        const entry *e = &s->ents[id];
        if (!(e->flags & F_LIVE) || !(e->flags & F_DIRTY))
            continue;
        rv_err *err;
        if ((e->flags & F_TOMB) || expired(s, e))
            err = (e->flags & F_IN_DB) ? del(arg, e->blk, e->klen) : NULL;
        else
            err = put(arg, e->blk, e->klen, e->expires, e->blk + e->klen, e->vlen);
        if (err)
            return err;
    }
    return NULL;
}

void rv_state_load_delete(rv_state *s, const uint8_t *fk, uint32_t n)
{
    uint64_t h = full_key_hash(fk, n);
    uint32_t id = lookup(s, fk, n, h);
    if (id == UINT32_MAX) {
        if (!s->db_used)
            return; /* nothing anywhere to delete */
        id = insert(s, fk, n, h, 0); /* a tombstone for the database's copy */
        s->ents[id].flags |= F_IN_DB;
    }
    forget(s, id);
}

rv_err *rv_state_each_timer_bucket(rv_state *s, int d, rv_timers_bucket_fn fn, void *arg)
{
    return rv_timers_each_bucket(s->timers[d], fn, arg);
}

void rv_state_import_timer_bucket(rv_state *s, int d, int64_t time, uint64_t count, const uint8_t *head,
                                  uint32_t head_len, uint64_t sp_lo, uint64_t sp_hi)
{
    rv_timers_import(s->timers[d], time, count, head, head_len, sp_lo, sp_hi);
}

typedef struct each_ctx {
    rv_state_entry_fn fn;
    void *arg;
    int64_t clock;
} each_ctx;

static rv_err *each_db_entry(void *arg, const uint8_t *key, size_t klen, int64_t expiry, const uint8_t *val,
                             uint32_t vlen)
{
    each_ctx *c = arg;
    if (klen >= 2 && key[0] == 0xFF && key[1] == 0xFF)
        return NULL; /* spilled timers, outside every key group */
    if (expiry != RV_STATE_NO_EXPIRY && expiry <= c->clock)
        return NULL;
    return c->fn(c->arg, key, (uint32_t)klen, expiry, val, vlen);
}

rv_err *rv_state_each_entry(rv_state *s, rv_state_entry_fn fn, void *arg)
{
    if (s->db) {
        rv_err *err = write_back(s);
        if (err)
            return err;
        each_ctx c = {fn, arg, atomic_load_explicit(&s->clock, memory_order_relaxed)};
        return rv_sdb_each(s->db, each_db_entry, &c);
    }
    for (size_t id = 0; id < s->nents; id++) {
        const entry *e = &s->ents[id];
        if (!(e->flags & F_LIVE) || (e->flags & F_TOMB) || expired(s, e))
            continue;
        rv_err *err = fn(arg, e->blk, e->klen, e->expires, e->blk + e->klen, e->vlen);
        if (err)
            return err;
    }
    return NULL;
}

rv_err *rv_state_each_timer(rv_state *s, int d, rv_timers_fn fn, void *arg)
{
    return rv_timers_each(s->timers[d], s->db, fn, arg);
}

bool rv_state_full_key_ok(const uint8_t *fk, uint32_t n)
{
    if (n < 3 + 8 + 4)
        return false;
    uint32_t uklen = (uint32_t)fk[n - 4] << 24 | (uint32_t)fk[n - 3] << 16 | (uint32_t)fk[n - 2] << 8 | fk[n - 1];
    return uklen <= n - (3 + 8 + 4);
}

void rv_state_load_entry(rv_state *s, const uint8_t *fk, uint32_t n, int64_t expiry, const uint8_t *v, uint32_t vlen)
{
    uint64_t h = full_key_hash(fk, n);
    uint32_t id = lookup(s, fk, n, h);
    if (id == UINT32_MAX)
        id = insert(s, fk, n, h, 0);
    entry *e = &s->ents[id];
    e->flags = (uint8_t)((e->flags & ~F_TOMB) | F_DIRTY);
    /* RocksDB may hold an older version (an adopted checkpoint's): a later
     * delete must reach it. */
    if (s->db_used)
        e->flags |= F_IN_DB;
    e->expires = expiry;
    s->any_expiry |= expiry != RV_STATE_NO_EXPIRY;
    e->vlen = 0;
    resize_value(s, e, vlen);
    if (vlen)
        memcpy(e->blk + n, v, vlen);
}

bool rv_state_is_empty(const rv_state *s)
{
    return s->live == 0 && !s->db_used && rv_timers_count(s->timers[0]) == 0 && rv_timers_count(s->timers[1]) == 0;
}
