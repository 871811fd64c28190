/* rv_timers: the timer service of one operator instance's keyed state (see
 * rv_state.h): timers per (key, namespace, time) in one domain, popped in
 * (time, registration) order.
 *
 * Timers of one time share a bucket: an append-only byte log of
 * {kg, key length, key hash, namespace, key bytes} records in chunks of
 * RV_TIMER_CHUNK bytes, read front to back when the time comes, so the
 * many timers of a window end cost a few bytes each and are read
 * sequentially. Buckets are ordered by a min-heap on time, and found by
 * time through a hash table.
 *
 * Spilling: rv_timers_spill() writes whole chunks of the buckets furthest
 * in the future to RocksDB (key: 0xFFFF | 'T' | domain | time | chunk
 * number, outside every key group's range) and frees them; popping a
 * bucket reads its spilled chunks back in order. So timers stay within
 * the state's memory budget too. */
#ifndef RV_TIMERS_H
#define RV_TIMERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rv_err.h"
#include "rv_state_db.h"

#define RV_TIMER_CHUNK 16384u

typedef struct rv_timers rv_timers;

rv_timers *rv_timers_new(int domain);
void rv_timers_free(rv_timers *t); /* accepts NULL */

/* Adds a timer (key bytes copied). Adding the same timer twice makes it
 * pop twice. */
void rv_timers_add(rv_timers *t, uint16_t kg, const uint8_t *key, uint32_t klen, uint64_t khash,
                   int64_t ns, int64_t time);
/* Removes the earliest timer with time <= upto. Its key stays valid until
 * the next pop. False if there is none (or a spilled chunk could not be
 * read: then *err is set). */
bool rv_timers_pop(rv_timers *t, rv_sdb *db, int64_t upto, uint16_t *kg, const uint8_t **key,
                   uint32_t *klen, uint64_t *khash, int64_t *ns, int64_t *time, rv_err **err);
int64_t rv_timers_next(const rv_timers *t); /* INT64_MAX when empty */
size_t rv_timers_count(const rv_timers *t);
/* Bytes held in memory. */
size_t rv_timers_bytes(const rv_timers *t);
/* The part of it spilling cannot free: about 90 bytes per distinct time
 * (bucket, heap and index slots, chunk list). */
size_t rv_timers_fixed_bytes(const rv_timers *t);
/* Calls fn for every pending timer in pop order (time, then registration),
 * reading spilled chunks from db; stops at the first error fn returns. */
typedef rv_err *(*rv_timers_fn)(void *arg, int64_t time, uint16_t kg, const uint8_t *key, uint32_t klen,
                                uint64_t khash, int64_t ns);
rv_err *rv_timers_each(const rv_timers *t, rv_sdb *db, rv_timers_fn fn, void *arg);

/* Spills full chunks, latest times first, until at most `keep` bytes
 * stay in memory (or nothing more can go). Writes go to db's batch. */
void rv_timers_spill(rv_timers *t, rv_sdb *db, size_t keep);

/* ---- incremental checkpoints ----
 * rv_timers_spill_all moves every in-memory tail chunk into db's batch, so
 * a RocksDB checkpoint taken after the batch is written holds every timer
 * but the unread rest of the chunk each bucket is reading; buckets are
 * then described by that rest and their spilled chunk range
 * (rv_timers_each_bucket) and rebuilt from the same two on an instance
 * that took the database over (rv_timers_import). Elsewhere the chunks are
 * read from the checkpoint (keys from rv_timers_chunk_key) and decoded. */
void rv_timers_spill_all(rv_timers *t, rv_sdb *db);
typedef rv_err *(*rv_timers_bucket_fn)(void *arg, int64_t time, uint64_t count, const uint8_t *head,
                                       uint32_t head_len, uint64_t sp_lo, uint64_t sp_hi);
/* Buckets in pop order; call after rv_timers_spill_all (no tail chunks). */
rv_err *rv_timers_each_bucket(const rv_timers *t, rv_timers_bucket_fn fn, void *arg);
void rv_timers_import(rv_timers *t, int64_t time, uint64_t count, const uint8_t *head, uint32_t head_len,
                      uint64_t sp_lo, uint64_t sp_hi);
/* The timers of raw chunk bytes (a head or a spilled chunk), in order. */
rv_err *rv_timers_decode(const uint8_t *p, uint32_t len, int64_t time, rv_timers_fn fn, void *arg);
/* The RocksDB key of spilled chunk n of (domain, time). */
void rv_timers_chunk_key(int domain, int64_t time, uint64_t n, uint8_t out[20]);

#endif
