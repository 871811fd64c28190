/* rv_state_db: RocksDB store of one operator instance (see rv_state_db.h).
 *
 * Options, sized from the cache budget so RocksDB's own memory stays a
 * fraction of it: memtables of budget/8 (1-64 MiB, two of them), a block
 * cache of budget/8 (1-256 MiB), bloom filters (10 bits per key, also in
 * the memtable) so Gets of absent keys usually skip the data, no
 * compression but at the bottom level (LZ4), no WAL. */
#include "rv_state_db.h"

#include <rocksdb/c.h>
#include <stdlib.h>
#include <string.h>

#include "rv_mem.h"

struct rv_sdb {
    rocksdb_t *db;
    rocksdb_options_t *opts;
    rocksdb_block_based_table_options_t *table;
    rocksdb_cache_t *cache;
    rocksdb_readoptions_t *ropts;
    rocksdb_writeoptions_t *wopts;
    rocksdb_writebatch_t *batch;
    rocksdb_compactionfilter_t *filter;
    char *dir;
};

/* ---- TTL compaction filter ---- */

static void filter_destroy(void *state) { (void)state; }

static const char *filter_name(void *state)
{
    (void)state;
    return "rivulet.ttl";
}

static unsigned char filter_drop(void *state, int level, const char *key, size_t klen,
                                 const char *val, size_t vlen, char **new_val, size_t *new_vlen,
                                 unsigned char *changed)
{
    (void)level;
    (void)key;
    (void)klen;
    (void)new_val;
    (void)new_vlen;
    *changed = 0;
    if (vlen < 8)
        return 0;
    int64_t expiry;
    memcpy(&expiry, val, 8);
    const _Atomic int64_t *clock = state;
    return expiry != INT64_MAX /* RV_STATE_NO_EXPIRY */ && expiry <= atomic_load_explicit(clock, memory_order_relaxed);
}

static int64_t clamp(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : v > hi ? hi : v; }

rv_err *rv_sdb_open(const char *dir, int64_t budget, const _Atomic int64_t *clock, rv_sdb **out)
{
    rv_sdb *db = rv_xcalloc(1, sizeof(*db));
    db->dir = rv_xstrdup(dir);
    db->opts = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(db->opts, 1);
    rocksdb_options_set_write_buffer_size(db->opts, (size_t)clamp(budget / 8, 1 << 20, 64 << 20));
    rocksdb_options_set_max_write_buffer_number(db->opts, 2);
    /* Uncompressed upper levels (reads of hot spilled state), LZ4 at the bottom. */
    rocksdb_options_set_compression(db->opts, rocksdb_no_compression);
    rocksdb_options_set_bottommost_compression(db->opts, rocksdb_lz4_compression);
    /* A bloom filter in the memtable too: most Gets of absent keys end there. */
    rocksdb_options_set_memtable_whole_key_filtering(db->opts, 1);
    rocksdb_options_set_memtable_prefix_bloom_size_ratio(db->opts, 0.1);
    rocksdb_options_set_max_background_jobs(db->opts, 2);
    rocksdb_options_set_max_open_files(db->opts, 256);
    db->cache = rocksdb_cache_create_lru((size_t)clamp(budget / 8, 1 << 20, 256 << 20));
    db->table = rocksdb_block_based_options_create();
    rocksdb_block_based_options_set_block_cache(db->table, db->cache);
    rocksdb_block_based_options_set_filter_policy(db->table, rocksdb_filterpolicy_create_bloom_full(10));
    rocksdb_options_set_block_based_table_factory(db->opts, db->table);
    db->filter = rocksdb_compactionfilter_create((void *)clock, filter_destroy, filter_drop, filter_name);
    rocksdb_options_set_compaction_filter(db->opts, db->filter);
    db->ropts = rocksdb_readoptions_create();
    db->wopts = rocksdb_writeoptions_create();
    rocksdb_writeoptions_disable_WAL(db->wopts, 1);
    db->batch = rocksdb_writebatch_create();
    char *msg = NULL;
    db->db = rocksdb_open(db->opts, dir, &msg);
    if (!db->db) {
        rv_err *err = rv_err_new(RV_ERR_IO, "cannot open RocksDB state in %s: %s", dir, msg ? msg : "?");
        free(msg);
        rv_sdb_close(db);
        return err;
    }
    *out = db;
    return NULL;
}

void rv_sdb_close(rv_sdb *db)
{
    if (!db)
        return;
    if (db->db)
        rocksdb_close(db->db);
    rocksdb_writebatch_destroy(db->batch);
    rocksdb_writeoptions_destroy(db->wopts);
    rocksdb_readoptions_destroy(db->ropts);
    rocksdb_options_destroy(db->opts);
    rocksdb_compactionfilter_destroy(db->filter);
    rocksdb_block_based_options_destroy(db->table);
    rocksdb_cache_destroy(db->cache);
    free(db->dir);
    free(db);
}

bool rv_sdb_get(rv_sdb *db, const uint8_t *key, size_t klen, int64_t *expiry, uint8_t **val,
                uint32_t *vlen, rv_err **err)
{
    char *msg = NULL;
    rocksdb_pinnableslice_t *ps = rocksdb_get_pinned(db->db, db->ropts, (const char *)key, klen, &msg);
    if (msg) {
        *err = rv_err_new(RV_ERR_IO, "RocksDB read in %s failed: %s", db->dir, msg);
        free(msg);
        return false;
    }
    if (!ps)
        return false;
    size_t n = 0;
    const char *p = rocksdb_pinnableslice_value(ps, &n);
    bool ok = p && n >= 8;
    if (ok) {
        memcpy(expiry, p, 8);
        *vlen = (uint32_t)(n - 8);
        *val = rv_xmalloc(n - 8 + 1);
        memcpy(*val, p + 8, n - 8);
    } else if (p) {
        *err = rv_err_new(RV_ERR_CORRUPT, "RocksDB state in %s: a value of %zu bytes is too short", db->dir, n);
    }
    rocksdb_pinnableslice_destroy(ps);
    return ok;
}

void rv_sdb_put(rv_sdb *db, const uint8_t *key, size_t klen, int64_t expiry, const uint8_t *val,
                uint32_t vlen)
{
    const char *parts[2] = {(const char *)&expiry, (const char *)val};
    size_t sizes[2] = {8, vlen};
    const char *kp = (const char *)key;
    rocksdb_writebatch_putv(db->batch, 1, &kp, &klen, 2, parts, sizes);
}

void rv_sdb_delete(rv_sdb *db, const uint8_t *key, size_t klen)
{
    rocksdb_writebatch_delete(db->batch, (const char *)key, klen);
}

rv_err *rv_sdb_flush(rv_sdb *db)
{
    if (rocksdb_writebatch_count(db->batch) == 0)
        return NULL;
    char *msg = NULL;
    rocksdb_write(db->db, db->wopts, db->batch, &msg);
    rocksdb_writebatch_clear(db->batch);
    if (msg) {
        rv_err *err = rv_err_new(RV_ERR_IO, "RocksDB write in %s failed: %s", db->dir, msg);
        free(msg);
        return err;
    }
    return NULL;
}

/* Calls fn for the keys of it from its current position up to hi (NULL:
 * the end). */
static rv_err *iterate(rocksdb_iterator_t *it, const char *dir, const uint8_t *hi, size_t hilen, rv_sdb_fn fn,
                       void *arg)
{
    rv_err *err = NULL;
    for (; !err && rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t klen = 0, vlen = 0;
        const char *k = rocksdb_iter_key(it, &klen);
        if (hi) {
            int c = memcmp(k, hi, klen < hilen ? klen : hilen);
            if (c > 0 || (c == 0 && klen >= hilen))
                break;
        }
        const char *v = rocksdb_iter_value(it, &vlen);
        if (vlen < 8) {
            err = rv_err_new(RV_ERR_CORRUPT, "RocksDB state in %s: a value of %zu bytes is too short", dir, vlen);
            break;
        }
        int64_t expiry;
        memcpy(&expiry, v, 8);
        err = fn(arg, (const uint8_t *)k, klen, expiry, (const uint8_t *)v + 8, (uint32_t)(vlen - 8));
    }
    char *msg = NULL;
    if (!err) {
        rocksdb_iter_get_error(it, &msg);
        if (msg) {
            err = rv_err_new(RV_ERR_IO, "reading RocksDB state in %s: %s", dir, msg);
            free(msg);
        }
    }
    return err;
}

rv_err *rv_sdb_each(rv_sdb *db, rv_sdb_fn fn, void *arg)
{
    rocksdb_iterator_t *it = rocksdb_create_iterator(db->db, db->ropts);
    rocksdb_iter_seek_to_first(it);
    rv_err *err = iterate(it, db->dir, NULL, 0, fn, arg);
    rocksdb_iter_destroy(it);
    return err;
}

rv_err *rv_sdb_checkpoint(rv_sdb *db, const char *dir)
{
    char *msg = NULL;
    rocksdb_checkpoint_t *cp = rocksdb_checkpoint_object_create(db->db, &msg);
    if (cp)
        rocksdb_checkpoint_create(cp, dir, 0 /* flush the memtable first: there is no WAL */, &msg);
    rv_err *err = NULL;
    if (msg) {
        err = rv_err_new(RV_ERR_IO, "RocksDB checkpoint of %s into %s failed: %s", db->dir, dir, msg);
        free(msg);
    }
    if (cp)
        rocksdb_checkpoint_object_destroy(cp);
    return err;
}

rv_err *rv_sdb_each_in(const char *dir, const uint8_t *lo, size_t lolen, const uint8_t *hi, size_t hilen,
                       rv_sdb_fn fn, void *arg)
{
    rocksdb_options_t *opts = rocksdb_options_create();
    char *msg = NULL;
    rocksdb_t *db = rocksdb_open_for_read_only(opts, dir, 0, &msg);
    rv_err *err = NULL;
    if (!db) {
        err = rv_err_new(RV_ERR_IO, "cannot open the RocksDB checkpoint in %s: %s", dir, msg ? msg : "?");
        free(msg);
    } else {
        rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
        rocksdb_readoptions_set_fill_cache(ro, 0);
        rocksdb_iterator_t *it = rocksdb_create_iterator(db, ro);
        rocksdb_iter_seek(it, (const char *)lo, lolen);
        err = iterate(it, dir, hi, hilen, fn, arg);
        rocksdb_iter_destroy(it);
        rocksdb_readoptions_destroy(ro);
        rocksdb_close(db);
    }
    rocksdb_options_destroy(opts);
    return err;
}
