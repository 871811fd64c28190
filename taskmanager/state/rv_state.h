/* rv_state: keyed state of one operator instance, behind one interface
 * for both backends.
 *
 * State is scoped to (key group, key, namespace): a key is the canonical
 * rv_key_encode() bytes of one key_by tuple with its rv_hash_rows() hash
 * and key group; a namespace is an int64 chosen by the operator (a window
 * start, 0 for "no namespace"). An operator registers its states by small
 * ids (0..RV_STATE_MAX_IDS-1) and uses them as
 *   value state  one byte string per (key, namespace),
 *   list state   an append-only list of byte strings per (key, namespace),
 *   map state    byte string -> byte string per (key, namespace).
 *
 * Every state lives in an in-memory cache: a hash table of entries under a
 * memory budget. With the `memory` backend the cache is the whole state.
 * With the `rocksdb` backend (the default) the cache sits in front of a
 * RocksDB database in the instance's state directory: when the cache grows
 * past its budget, rv_state_maintain() evicts cold entries (clock order),
 * writing dirty ones back in one WriteBatch; a miss reads the entry back
 * with one Get (only once something was written to RocksDB). RocksDB is
 * opened at the first eviction, so small state never touches the disk.
 * RocksDB keys are
 *   key group (2 bytes, big-endian) | state id (1) | key | namespace (8,
 *   big-endian with the sign bit flipped) | map user key | user key
 *   length (4, big-endian; 0 for value and list state)
 * so one key group is one contiguous range and a key's parts can be told
 * apart from its bytes.
 *
 * Pointers returned by the accessors stay valid until the next
 * rv_state_maintain(), or until the same entry is resized or deleted; an
 * operator calls rv_state_maintain() between batches (never while it holds
 * pointers), so a whole batch can be folded in place.
 *
 * Time-to-live: an entry may carry an expiry time (an int64 in the time
 * domain the operator chooses, e.g. event time). rv_state_advance_time()
 * moves the state's clock; reads treat entries with expiry <= clock as
 * absent, maintain() frees them from memory, and RocksDB drops them in
 * compaction.
 *
 * Timers: per (key, namespace, time) in two domains (event time and
 * processing time), popped in (time, registration) order so firing order
 * is deterministic for a given input (rv_timers.h). They count against the
 * budget; with the rocksdb backend the timers furthest in the future spill
 * to RocksDB in chunks and come back when their time is near.
 *
 * Errors: a RocksDB failure inside an accessor (a failed Get) is
 * remembered; the accessor behaves as if the entry were absent and the next
 * rv_state_maintain() returns the error, which fails the job.
 *
 * Threads: one rv_state is used by one thread (its operator instance). */
#ifndef RV_STATE_H
#define RV_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "rv_err.h"
#include "rv_state_conf.h"

#define RV_STATE_MAX_IDS 64
/* "Never expires". */
#define RV_STATE_NO_EXPIRY INT64_MAX

void rv_state_conf_default(rv_state_conf *c);
const char *rv_state_backend_name(rv_state_backend b);

typedef struct rv_state rv_state;

/* One key of the operator. */
typedef struct rv_skey {
    const uint8_t *key; /* rv_key_encode() bytes */
    uint32_t len;
    uint16_t kg;        /* key group */
    uint64_t hash;      /* rv_hash_rows() hash of the key, which is
                           rv_hash_bytes(key, len, 0) */
} rv_skey;

/* Opens the state of one operator instance. `dir` is the instance's own
 * directory (created when RocksDB is first needed; removed by close);
 * `what` names the instance in errors and logs. */
rv_err *rv_state_open(const rv_state_conf *conf, const char *dir, const char *what, rv_state **out);
/* Frees everything and removes the directory. Accepts NULL. */
void rv_state_close(rv_state *s);

/* ---- value state ---- */

/* The value of (sid, key, ns), or NULL if absent (or expired); *len gets
 * its length. */
const uint8_t *rv_value_get(rv_state *s, int sid, const rv_skey *k, int64_t ns, uint32_t *len);
/* The value of (sid, key, ns) for update in place, created zero-filled
 * with `init_len` bytes if absent (then *created = true; created may be
 * NULL). *len gets the current length. The entry is marked dirty. */
uint8_t *rv_value_upsert(rv_state *s, int sid, const rv_skey *k, int64_t ns, uint32_t init_len,
                         uint32_t *len, bool *created);
/* Sets the value to len bytes: copies v (if not NULL) or keeps the old
 * prefix and zero-fills the rest. Returns the value for in-place writes. */
uint8_t *rv_value_put(rv_state *s, int sid, const rv_skey *k, int64_t ns, const void *v,
                      uint32_t len);
/* Removes the value (no-op if absent). */
void rv_value_delete(rv_state *s, int sid, const rv_skey *k, int64_t ns);
/* Sets the expiry of an existing entry (RV_STATE_NO_EXPIRY: never). */
void rv_value_set_expiry(rv_state *s, int sid, const rv_skey *k, int64_t ns, int64_t expires_at);

/* ---- list state (a value holding length-prefixed elements) ---- */

void rv_list_add(rv_state *s, int sid, const rv_skey *k, int64_t ns, const void *v, uint32_t len);
/* Iterates the elements of a list value got with rv_value_get(): start
 * with *off = 0; false at the end. */
bool rv_list_next(const uint8_t *list, uint32_t list_len, uint32_t *off, const uint8_t **v,
                  uint32_t *len);

/* ---- map state ---- */

const uint8_t *rv_map_get(rv_state *s, int sid, const rv_skey *k, int64_t ns, const void *uk,
                          uint32_t uklen, uint32_t *len);
/* Sets map[uk] = v. Returns true if uk was absent. */
bool rv_map_put(rv_state *s, int sid, const rv_skey *k, int64_t ns, const void *uk,
                uint32_t uklen, const void *v, uint32_t len);
void rv_map_remove(rv_state *s, int sid, const rv_skey *k, int64_t ns, const void *uk,
                   uint32_t uklen);

/* ---- time, timers, maintenance ---- */

/* Moves the TTL clock forward (never back). */
void rv_state_advance_time(rv_state *s, int64_t now);

typedef enum { RV_TIMER_EVENT = 0, RV_TIMER_PROCESSING = 1 } rv_timer_domain;

/* Registers a timer. Timers are not deduplicated (a check would cost a
 * random memory access per registration): register once, e.g. when the
 * state the timer is for is created, and treat a timer whose state is gone
 * as stale. */
void rv_timer_register(rv_state *s, rv_timer_domain d, const rv_skey *k, int64_t ns, int64_t time);
/* Pops the earliest timer of domain d with time <= upto into *k (its key
 * bytes stay valid until the next pop), *ns and *time; false if none. */
bool rv_timer_pop(rv_state *s, rv_timer_domain d, int64_t upto, rv_skey *k, int64_t *ns,
                  int64_t *time);
/* The earliest timer time of domain d, or INT64_MAX. */
int64_t rv_timer_next(const rv_state *s, rv_timer_domain d);
size_t rv_timer_count(const rv_state *s, rv_timer_domain d);

/* Hints that value (sid, keys[i], ns[i]) will be accessed soon, for i in
 * [0, n): brings the cache lines of those entries in, a batch at a time,
 * so the accesses that follow do not each wait for memory. Optional. */
void rv_state_prefetch(rv_state *s, int sid, const rv_skey *keys, const int64_t *ns, uint32_t n);

/* Between batches: frees expired entries and, above the memory budget,
 * evicts cold entries to RocksDB. Invalidates pointers from accessors. */
rv_err *rv_state_maintain(rv_state *s);

/* ---- snapshots (rv_state_snap.c) ---- */

/* Writes the whole state (entries and timers) to out as one self-checking
 * stream; with RocksDB, dirty entries are written back first. `what` names
 * it in errors; *bytes gets the size. */
rv_err *rv_state_snapshot(rv_state *s, FILE *out, const char *what, uint64_t *bytes);
/* Adds the entries and timers of key groups [kg_first, kg_end) of a
 * snapshot stream to s (call once per stream when instances are merged).
 * A truncated or corrupted stream is an error; s must then be closed. */
rv_err *rv_state_restore(rv_state *s, FILE *in, const char *what, int kg_first, int kg_end);

/* Incremental snapshots (RocksDB backend, once RocksDB holds state): the
 * entries and the timers (their chunks are moved to RocksDB first) go
 * into a RocksDB checkpoint in db_dir (which must not exist; its SST files
 * are hard links, shared with later checkpoints) and `out` gets a stream
 * describing the timer buckets (what each is reading and its chunk range). False in *done when
 * RocksDB is not in use: then nothing was written (take a full snapshot). */
rv_err *rv_state_snapshot_incremental(rv_state *s, const char *db_dir, FILE *out, const char *what, uint64_t *bytes,
                                      bool *done);
/* Adds the entries of key groups [kg_first, kg_end) of a RocksDB
 * checkpoint in db_dir to s (then restore the timers stream with
 * rv_state_restore). */
rv_err *rv_state_restore_db(rv_state *s, const char *db_dir, const char *what, int kg_first, int kg_end);
/* rv_state_restore of the stream of an incremental snapshot: its timers
 * refer to chunks in the RocksDB checkpoint, read from db_dir, or already
 * in the instance's own database when it adopted that checkpoint
 * (rv_state_adopt_db: adopted true, db_dir NULL). */
rv_err *rv_state_restore_incremental(rv_state *s, FILE *in, const char *what, int kg_first, int kg_end,
                                     const char *db_dir, bool adopted);
/* Faster when the checkpoint in db_dir holds exactly this instance's key
 * groups: s (RocksDB backend, still empty) takes the database over as its
 * own — db_dir is moved into the instance's directory on the same file
 * system and entries are read on first access. False in *done (nothing
 * changed) when s cannot (memory backend, not empty). */
rv_err *rv_state_adopt_db(rv_state *s, const char *db_dir, bool *done);

/* Statistics. */
typedef struct rv_state_stats {
    size_t entries;       /* in the cache */
    size_t bytes;         /* cache and timers, as counted against the budget */
    uint64_t evicted;     /* entries evicted so far */
    uint64_t db_reads;    /* Gets that went to RocksDB */
    uint64_t db_hits;     /* ... and found the entry */
    bool db_open;
} rv_state_stats;
void rv_state_get_stats(const rv_state *s, rv_state_stats *out);

#endif
