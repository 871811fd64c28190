/* rv_state_db: the RocksDB side of the rocksdb state backend (see
 * rv_state.h): one database per operator instance, written without a WAL
 * (durability comes from checkpoints), values stored as an 8-byte
 * little-endian expiry followed by the value bytes, and a compaction filter
 * that drops values whose expiry has passed the instance's TTL clock.
 *
 * Threads: calls come from the owning operator thread; RocksDB's background
 * compaction reads the TTL clock atomically. */
#ifndef RV_STATE_DB_H
#define RV_STATE_DB_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rv_err.h"

typedef struct rv_sdb rv_sdb;

/* Opens (creating) a database in dir, sized for a cache budget of
 * `budget` bytes (memtables and block cache are a fraction of it). clock:
 * the TTL clock, read by compactions. */
rv_err *rv_sdb_open(const char *dir, int64_t budget, const _Atomic int64_t *clock, rv_sdb **out);
/* Closes the database. Accepts NULL. */
void rv_sdb_close(rv_sdb *db);

/* Looks key up. Found: true, *expiry and a copy of the value in *val
 * (rv_xmalloc'd, *vlen bytes; the caller frees it). Absent: false. A
 * failure returns false and sets *err. */
bool rv_sdb_get(rv_sdb *db, const uint8_t *key, size_t klen, int64_t *expiry, uint8_t **val,
                uint32_t *vlen, rv_err **err);

/* Write-back: puts and deletes are collected, then written at once. */
void rv_sdb_put(rv_sdb *db, const uint8_t *key, size_t klen, int64_t expiry, const uint8_t *val,
                uint32_t vlen);
void rv_sdb_delete(rv_sdb *db, const uint8_t *key, size_t klen);
rv_err *rv_sdb_flush(rv_sdb *db);

/* Calls fn for every stored key (in key order) with its expiry and value;
 * stops at the first error fn returns. Pending writes are not seen:
 * flush first. */
typedef rv_err *(*rv_sdb_fn)(void *arg, const uint8_t *key, size_t klen, int64_t expiry, const uint8_t *val,
                             uint32_t vlen);
rv_err *rv_sdb_each(rv_sdb *db, rv_sdb_fn fn, void *arg);

/* Writes a RocksDB checkpoint of the database into dir (which must not
 * exist): the memtable is flushed, SST files are hard-linked, the rest is
 * copied. Pending writes are not included: flush first. */
rv_err *rv_sdb_checkpoint(rv_sdb *db, const char *dir);
/* Opens the database files in dir read-only and calls fn for every key in
 * [lo, hi), in key order. */
rv_err *rv_sdb_each_in(const char *dir, const uint8_t *lo, size_t lolen, const uint8_t *hi, size_t hilen,
                       rv_sdb_fn fn, void *arg);

#endif
