/* rv_state_int: what the snapshot code (rv_state_snap.c) needs from the
 * state's cache and backends (rv_state.c). Not for operators. */
#ifndef RV_STATE_INT_H
#define RV_STATE_INT_H

#include "rv_state.h"
#include "rv_timers.h"

/* Full keys and values of every live, unexpired entry: with RocksDB
 * open, dirty entries are written back first and RocksDB is read in key
 * order; otherwise the cache is read in table order. */
typedef rv_err *(*rv_state_entry_fn)(void *arg, const uint8_t *fk, uint32_t n, int64_t expiry, const uint8_t *v,
                                     uint32_t vlen);
rv_err *rv_state_each_entry(rv_state *s, rv_state_entry_fn fn, void *arg);
/* Every pending timer of domain d in pop order. */
rv_err *rv_state_each_timer(rv_state *s, int d, rv_timers_fn fn, void *arg);
/* Whether fk[0..n) has the shape of a full key (rv_state.h). */
bool rv_state_full_key_ok(const uint8_t *fk, uint32_t n);
/* Adds an entry by its full key (dirty: it reaches RocksDB when evicted);
 * the key must pass rv_state_full_key_ok. */
void rv_state_load_entry(rv_state *s, const uint8_t *fk, uint32_t n, int64_t expiry, const uint8_t *v, uint32_t vlen);
/* With RocksDB open: moves the timers' chunks to RocksDB and checkpoints
 * the database into dir (rv_sdb_checkpoint). Dirty cache entries are not
 * in it: rv_state_each_dirty lists them. */
rv_err *rv_state_checkpoint_db(rv_state *s, const char *dir);
/* Every dirty cache entry: put (live) or del (deleted or expired, and
 * RocksDB may hold an older version). */
typedef rv_err *(*rv_state_delete_fn)(void *arg, const uint8_t *fk, uint32_t n);
rv_err *rv_state_each_dirty(rv_state *s, rv_state_entry_fn put, rv_state_delete_fn del, void *arg);
/* Deletes an entry by its full key (a tombstone when RocksDB may hold it). */
void rv_state_load_delete(rv_state *s, const uint8_t *fk, uint32_t n);
/* The timer buckets of domain d (after rv_state_checkpoint_db) and, on an
 * instance that adopted that checkpoint, one bucket back. */
rv_err *rv_state_each_timer_bucket(rv_state *s, int d, rv_timers_bucket_fn fn, void *arg);
void rv_state_import_timer_bucket(rv_state *s, int d, int64_t time, uint64_t count, const uint8_t *head,
                                  uint32_t head_len, uint64_t sp_lo, uint64_t sp_hi);
/* No entry and no timer. */
bool rv_state_is_empty(const rv_state *s);

#endif
