/* rv_hash: hashing of key rows and the mapping of keys to key groups and
 * key groups to subtasks.
 *
 * A key is the tuple of key_by values of one row. Its hash is XXH3 over a
 * canonical encoding (type tag with a null flag, then the value: numbers as
 * 8 little-endian bytes, strings as a 4-byte little-endian length and the
 * bytes), so equal keys hash equally on every machine and in every
 * operator. key group = hash mod max_parallelism; a subtask owns a
 * contiguous range of key groups (as in Flink):
 *   subtask(kg) = kg * parallelism / max_parallelism. */
#ifndef RV_HASH_H
#define RV_HASH_H

#include <stddef.h>
#include <stdint.h>

#include "rv_batch.h"

/* Hash of arbitrary bytes. */
uint64_t rv_hash_bytes(const void *p, size_t len, uint64_t seed);
/* Hashes of rows 0..nrows) of the key columns cols[0..ncols) into out.
 * *scratch (*scratch_cap bytes, grown with rv_xgrow) is reusable encoding
 * space owned by the caller, so the hot path does not allocate. */
void rv_hash_rows(const rv_column *cols, int ncols, uint32_t nrows, uint64_t *out, uint8_t **scratch,
                  size_t *scratch_cap);
/* Appends the canonical encoding of row `row` of the key columns to
 * *buf (grown with rv_xgrow; *len updated). Equal keys encode to equal
 * bytes; used for hash-table keys and, later, state keys. */
void rv_key_encode(const rv_column *cols, int ncols, uint32_t row, uint8_t **buf, size_t *len,
                   size_t *cap);

/* Decodes one key written by rv_key_encode at *p into row `row` of
 * cols[0..ncols) (whose types must match the encoding) and advances *p.
 * The bytes must come from rv_key_encode (they are trusted). */
void rv_key_decode(const uint8_t **p, rv_column *cols, int ncols, uint32_t row);

/* A 64-bit finalizer (MurmurHash3's fmix64): spreads the bits of an
 * integer, for hash tables keyed by numbers or by combined hashes. */
static inline uint64_t rv_mix64(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ull;
    k ^= k >> 33;
    return k;
}

static inline int rv_key_group(uint64_t hash, int max_parallelism)
{
    return (int)(hash % (uint64_t)max_parallelism);
}

static inline int rv_key_group_subtask(int kg, int max_parallelism, int parallelism)
{
    return (int)((int64_t)kg * parallelism / max_parallelism);
}

/* First and one-past-last key group owned by subtask i. */
void rv_key_group_range(int subtask, int max_parallelism, int parallelism, int *first, int *end);

#endif
