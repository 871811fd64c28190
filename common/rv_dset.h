/* rv_dset: an exact set of byte strings in one flat, relocatable byte
 * buffer, for the aggregate count_distinct(x).
 *
 * The buffer holds no pointers (only offsets), so it is stored in RocksDB
 * as is and may be moved to another address between any two calls. It is
 * owned by the caller, who can only grow it keeping its prefix:
 *
 *   r = rv_dset_add(set, len, v, n, hash);
 *   if (r < 0) {
 *       uint32_t nl = rv_dset_grow_size(set, len, n);  -- 0: limit reached
 *       set = <a buffer of nl bytes: the old len bytes, then zeros>;
 *       rv_dset_regrow(set, len, nl);
 *       len = nl;
 *       r = rv_dset_add(set, len, v, n, hash);       -- now succeeds
 *   }
 *
 * `hash` is a 64-bit hash of the bytes (e.g. rv_hash_bytes); equal values
 * must always be given equal hashes, also across restarts (the set is
 * persisted), so use a stable function such as XXH3. The set keeps
 * hash32 = low ^ high 32 bits of it per value, so that it can rebuild its
 * table when it grows. A poor hash only makes the set slower.
 *
 * Layout (all integers little-endian u32, read and written byte by byte,
 * so neither alignment nor host byte order matters):
 *   [count][nslots][used]         12-byte header
 *   [nslots x u32]                open-addressing table (linear probing);
 *                                 0 = empty, else offset of the entry + 1
 *   [data: used bytes, then free] entries in insertion order:
 *                                 [hash32][len][bytes], len is 1 byte if
 *                                 < 255, else 0xFF then a u32
 * A set of fewer than RV_DSET_SMALL values has no table (nslots = 0) and
 * is searched linearly, comparing the stored hash32 first: a value of 9
 * bytes (an encoded integer) costs 14 bytes, so 10 of them fit in 160
 * bytes (the buffer goes 40, 80, 160). From RV_DSET_SMALL values on the
 * table is sized at regrow time for both the values present and the ones
 * the new data area can take (load at most 3/4). Measured with 9-byte
 * values: 16 values 640 bytes, 100 values 2.5 KiB, 10^4 values 320 KiB,
 * 10^6 values 20 MiB, i.e. 20..33 bytes per value (14 for the entry, the
 * rest table and not yet used room); 50..120 ns per add.
 *
 * Limit: the whole set stays at most RV_DSET_MAX_LEN (2 GiB) bytes, well
 * inside RocksDB's value size limit and u32 offsets. When a value cannot
 * fit within it, rv_dset_grow_size() returns 0 and the value cannot be
 * added (the caller reports an error). */
#ifndef RV_DSET_H
#define RV_DSET_H

#include <stdbool.h>
#include <stdint.h>

#define RV_DSET_MAX_LEN (1u << 31)
#define RV_DSET_SMALL 16u

/* Bytes of a new empty set. */
uint32_t rv_dset_init_size(void);
/* Makes set[0..len) an empty set; len >= rv_dset_init_size(). */
void rv_dset_init(uint8_t *set, uint32_t len);
/* Adds value v[0..n). Returns 1 if added, 0 if already present, -1 if
 * there is no room (the set is unchanged): grow it as shown above and add
 * again. v may be NULL when n == 0. */
int rv_dset_add(uint8_t *set, uint32_t len, const void *v, uint32_t n, uint64_t hash);
/* Size to grow the set to so that one more value of n_needed bytes fits:
 * at least twice len (capped at RV_DSET_MAX_LEN), or 0 if it cannot fit
 * within RV_DSET_MAX_LEN. Any larger size works too. */
uint32_t rv_dset_grow_size(const uint8_t *set, uint32_t len, uint32_t n_needed);
/* Re-lays out the set after the caller enlarged its buffer from old_len to
 * new_len bytes (prefix kept, the rest zeroed). */
void rv_dset_regrow(uint8_t *set, uint32_t old_len, uint32_t new_len);
/* Number of values. */
uint64_t rv_dset_count(const uint8_t *set, uint32_t len);
/* Iterates the values in insertion order: *it starts at 0; each call sets
 * *v, *n to the next value (pointing into set) and returns true, or
 * returns false at the end. */
bool rv_dset_next(const uint8_t *set, uint32_t len, uint32_t *it, const uint8_t **v, uint32_t *n);

#endif
