/* rv_hash: key hashing (XXH3 over a canonical key encoding), key groups. */
#include "rv_hash.h"

#include <assert.h>
#include <endian.h>
#include <stdlib.h>
#include <string.h>
/* Inlined: the hot path hashes one short key per row (XXH3 of 9 bytes is a
 * few instructions when inlined, a library call otherwise). Same results as
 * the library. */
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "rv_mem.h"

uint64_t rv_hash_bytes(const void *p, size_t len, uint64_t seed)
{
    return XXH3_64bits_withSeed(p, len, seed);
}

static void put(uint8_t **buf, size_t *len, size_t *cap, const void *p, size_t n)
{
    rv_xgrow((void **)buf, cap, *len + n, 1);
    if (n) /* an empty string's bytes may be NULL */
        memcpy(*buf + *len, p, n);
    *len += n;
}

void rv_key_encode(const rv_column *cols, int ncols, uint32_t row, uint8_t **buf, size_t *len,
                   size_t *cap)
{
    for (int k = 0; k < ncols; k++) {
        const rv_column *c = &cols[k];
        uint8_t tag = (uint8_t)c->type;
        if (rv_col_is_null(c, row)) {
            tag |= 0x80;
            put(buf, len, cap, &tag, 1);
            continue;
        }
        put(buf, len, cap, &tag, 1);
        switch (c->type) {
        case RV_T_BOOL: put(buf, len, cap, &c->d.b[row], 1); break;
        case RV_T_INT64:
        case RV_T_TIMESTAMP: {
            uint64_t le = htole64((uint64_t)c->d.i64[row]);
            put(buf, len, cap, &le, 8);
            break;
        }
        case RV_T_FLOAT64: {
            double f = c->d.f64[row];
            if (f == 0)
                f = 0; /* -0.0 and 0.0 are one key */
            uint64_t bits;
            memcpy(&bits, &f, 8);
            bits = htole64(bits);
            put(buf, len, cap, &bits, 8);
            break;
        }
        case RV_T_STRING: {
            uint32_t n;
            const char *s = rv_col_str(c, row, &n);
            uint32_t le = htole32(n);
            put(buf, len, cap, &le, 4);
            put(buf, len, cap, s, n);
            break;
        }
        case RV_T_NULL: break;
        }
    }
}

void rv_hash_rows(const rv_column *cols, int ncols, uint32_t nrows, uint64_t *out, uint8_t **scratch,
                  size_t *scratch_cap)
{
    /* Fast path: one non-null int64 key needs no encoding buffer. */
    if (ncols == 1 && rv_type_is_int(cols[0].type) && !cols[0].has_nulls) {
        for (uint32_t r = 0; r < nrows; r++) {
            uint8_t enc[9];
            enc[0] = (uint8_t)cols[0].type;
            uint64_t le = htole64((uint64_t)cols[0].d.i64[r]);
            memcpy(enc + 1, &le, 8);
            out[r] = XXH3_64bits(enc, 9);
        }
        return;
    }
    for (uint32_t r = 0; r < nrows; r++) {
        size_t len = 0;
        rv_key_encode(cols, ncols, r, scratch, &len, scratch_cap);
        out[r] = XXH3_64bits(*scratch, len);
    }
}

void rv_key_group_range(int subtask, int max_parallelism, int parallelism, int *first, int *end)
{
    /* Smallest kg with kg * p / maxp >= subtask. */
    *first = (int)(((int64_t)subtask * max_parallelism + parallelism - 1) / parallelism);
    *end = (int)(((int64_t)(subtask + 1) * max_parallelism + parallelism - 1) / parallelism);
}

void rv_key_decode(const uint8_t **pp, rv_column *cols, int ncols, uint32_t row)
{
    const uint8_t *p = *pp;
    for (int k = 0; k < ncols; k++) {
        rv_column *c = &cols[k];
        uint8_t tag = *p++;
        assert((rv_type)(tag & 0x7f) == c->type);
        if (tag & 0x80) {
            rv_col_set_null(c, row);
            continue;
        }
        switch ((rv_type)(tag & 0x7f)) {
        case RV_T_BOOL: rv_col_set_bool(c, row, *p != 0); p += 1; break;
        case RV_T_INT64:
        case RV_T_TIMESTAMP: {
            uint64_t v;
            memcpy(&v, p, 8);
            rv_col_set_i64(c, row, (int64_t)le64toh(v));
            p += 8;
            break;
        }
        case RV_T_FLOAT64: {
            uint64_t bits;
            memcpy(&bits, p, 8);
            bits = le64toh(bits);
            double v;
            memcpy(&v, &bits, 8);
            rv_col_set_f64(c, row, v);
            p += 8;
            break;
        }
        case RV_T_STRING: {
            uint32_t len;
            memcpy(&len, p, 4);
            len = le32toh(len);
            rv_col_set_str(c, row, (const char *)p + 4, len);
            p += 4 + len;
            break;
        }
        case RV_T_NULL: rv_col_set_null(c, row); break;
        }
    }
    *pp = p;
}
