/* rv_codec: batches to and from the wire format of remote channels (the
 * layout is in rv_codec.h).
 *
 * Encoding computes the exact size first, reserves it once and copies the
 * column buffers with memcpy (on a little-endian host); the null byte maps
 * are packed into bitmaps (bit r%8 of byte r/8 is row r, padding bits 0).
 * Decoding runs in two passes: the first validates the whole frame against
 * its length without allocating anything sized by the frame, the second
 * allocates the batch and copies. Frames come from the network, so every
 * length, offset, type code and flag is checked and anything unexpected,
 * including trailing bytes, is RV_ERR_CORRUPT; a frame whose schema differs
 * from the expected one is RV_ERR_INVALID. Thread-safe (no shared state). */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "rv_codec.h"
#include "rv_mem.h"
#include "rv_record_int.h"

#define HEADER_BYTES 16
#define MAX_ROWS (UINT32_C(16) << 20)
#define MAX_FIELDS 4096
#define MAX_TYPE RV_T_TIMESTAMP

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define HOST_LE 1
#else
#define HOST_LE 0
#endif

static const char MAGIC[4] = {'R', 'V', 'B', '1'};

static inline void st16(uint8_t *w, uint16_t v)
{
    w[0] = (uint8_t)v;
    w[1] = (uint8_t)(v >> 8);
}
static inline void st32(uint8_t *w, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        w[i] = (uint8_t)(v >> (8 * i));
}
static inline void st64(uint8_t *w, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        w[i] = (uint8_t)(v >> (8 * i));
}
static inline uint16_t ld16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline uint32_t ld32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t ld64(const uint8_t *p) { return (uint64_t)ld32(p) | (uint64_t)ld32(p + 4) << 32; }

static size_t bitmap_bytes(uint32_t nrows) { return ((size_t)nrows + 7) / 8; }

static size_t column_size(const rv_column *c, uint32_t nrows)
{
    size_t n = 1 + (c->has_nulls ? bitmap_bytes(nrows) : 0);
    switch (c->type) {
    case RV_T_BOOL: return n + nrows;
    case RV_T_INT64:
    case RV_T_TIMESTAMP:
    case RV_T_FLOAT64: return n + (size_t)8 * nrows;
    case RV_T_STRING: return n + 4 + (size_t)4 * (nrows + 1) + (c->offsets[nrows] - c->offsets[0]);
    case RV_T_NULL: return n;
    }
    return n;
}

size_t rv_codec_size(const rv_batch *b)
{
    size_t n = HEADER_BYTES;
    for (int i = 0; i < b->schema->nfields; i++)
        n += 3 + strlen(b->schema->fields[i].name) + column_size(&b->cols[i], b->nrows);
    return n;
}

static uint8_t *pack_nulls(uint8_t *w, const uint8_t *nulls, uint32_t nrows)
{
    uint32_t r = 0;
    for (; r + 8 <= nrows; r += 8, nulls += 8) {
        *w++ = (uint8_t)((nulls[0] != 0) | (nulls[1] != 0) << 1 | (nulls[2] != 0) << 2 |
                         (nulls[3] != 0) << 3 | (nulls[4] != 0) << 4 | (nulls[5] != 0) << 5 |
                         (nulls[6] != 0) << 6 | (nulls[7] != 0) << 7);
    }
    if (r < nrows) {
        uint8_t last = 0;
        for (uint32_t k = 0; r + k < nrows; k++)
            last |= (uint8_t)((nulls[k] != 0) << k);
        *w++ = last;
    }
    return w;
}

static uint8_t *put_words(uint8_t *w, const void *src, size_t n, size_t width)
{
    if (HOST_LE) {
        if (n)
            memcpy(w, src, n * width);
        return w + n * width;
    }
    for (size_t i = 0; i < n; i++, w += width) {
        if (width == 8)
            st64(w, ((const uint64_t *)src)[i]);
        else
            st32(w, ((const uint32_t *)src)[i]);
    }
    return w;
}

static uint8_t *encode_column(uint8_t *w, const rv_column *c, uint32_t nrows)
{
    *w++ = c->has_nulls ? 1 : 0;
    if (c->has_nulls)
        w = pack_nulls(w, c->nulls, nrows);
    switch (c->type) {
    case RV_T_BOOL:
        for (uint32_t r = 0; r < nrows; r++)
            w[r] = c->d.b[r] != 0;
        return w + nrows;
    case RV_T_INT64:
    case RV_T_TIMESTAMP:
    case RV_T_FLOAT64: return put_words(w, c->d.i64, nrows, 8);
    case RV_T_STRING: {
        uint32_t base = c->offsets[0], dlen = c->offsets[nrows] - base;
        st32(w, dlen);
        w += 4;
        if (base == 0) {
            w = put_words(w, c->offsets, (size_t)nrows + 1, 4);
        } else {
            for (uint32_t r = 0; r <= nrows; r++, w += 4)
                st32(w, c->offsets[r] - base);
        }
        if (dlen)
            memcpy(w, c->data + base, dlen);
        return w + dlen;
    }
    case RV_T_NULL: return w;
    }
    return w;
}

void rv_codec_encode(const rv_batch *b, rv_buf *out)
{
    const rv_schema *s = b->schema;
    /* The encoder never writes a frame its own decoder would refuse. */
    assert(s->nfields <= MAX_FIELDS && b->nrows <= MAX_ROWS);
    size_t size = rv_codec_size(b);
    rv_buf_reserve(out, size);
    uint8_t *start = (uint8_t *)out->data + out->len, *w = start;
    memcpy(w, MAGIC, 4);
    st16(w + 4, RV_CODEC_VERSION);
    st16(w + 6, (uint16_t)s->nfields);
    st32(w + 8, b->nrows);
    st32(w + 12, 0); /* flags: none defined */
    w += HEADER_BYTES;
    for (int i = 0; i < s->nfields; i++) {
        size_t nl = strlen(s->fields[i].name);
        assert(nl <= UINT16_MAX);
        *w++ = (uint8_t)s->fields[i].type;
        st16(w, (uint16_t)nl);
        memcpy(w + 2, s->fields[i].name, nl);
        w += 2 + nl;
    }
    for (int i = 0; i < s->nfields; i++)
        w = encode_column(w, &b->cols[i], b->nrows);
    assert((size_t)(w - start) == size);
    out->len += size;
    out->data[out->len] = '\0';
}

/* ---- decoding ---- */

typedef struct rd {
    const uint8_t *p;
    size_t len, pos;
} rd;

static bool take(rd *r, size_t n, const uint8_t **out)
{
    if (n > r->len - r->pos)
        return false;
    *out = r->p + r->pos;
    r->pos += n;
    return true;
}

/* What pass one learned about a field and its column. */
typedef struct colinfo {
    rv_type type;
    const uint8_t *name;
    uint16_t name_len;
    bool has_nulls;
    const uint8_t *bitmap, *values, *offsets, *data;
    uint32_t data_len;
} colinfo;

static rv_err *corrupt_col(const colinfo *ci, const char *what)
{
    return rv_err_new(RV_ERR_CORRUPT, "corrupt batch frame: column '%.*s': %s", (int)ci->name_len,
                      (const char *)ci->name, what);
}

static rv_err *check_column(rd *r, colinfo *ci, uint32_t nrows)
{
    const uint8_t *p;
    if (!take(r, 1, &p))
        return corrupt_col(ci, "truncated");
    if (*p > 1)
        return corrupt_col(ci, "invalid null flag");
    ci->has_nulls = *p;
    if (ci->has_nulls) {
        size_t nb = bitmap_bytes(nrows);
        if (!take(r, nb, &ci->bitmap))
            return corrupt_col(ci, "truncated null bitmap");
        if (nrows % 8 && ci->bitmap[nb - 1] >> (nrows % 8))
            return corrupt_col(ci, "null bitmap padding bits set");
    }
    switch (ci->type) {
    case RV_T_BOOL:
        if (!take(r, nrows, &ci->values))
            return corrupt_col(ci, "truncated values");
        for (uint32_t i = 0; i < nrows; i++)
            if (ci->values[i] > 1)
                return corrupt_col(ci, "bool value is not 0 or 1");
        return NULL;
    case RV_T_INT64:
    case RV_T_TIMESTAMP:
    case RV_T_FLOAT64:
        if (!take(r, (size_t)8 * nrows, &ci->values))
            return corrupt_col(ci, "truncated values");
        return NULL;
    case RV_T_STRING:
        if (!take(r, 4, &p))
            return corrupt_col(ci, "truncated string data length");
        ci->data_len = ld32(p);
        if (!take(r, (size_t)4 * (nrows + 1), &ci->offsets))
            return corrupt_col(ci, "truncated string offsets");
        if (ld32(ci->offsets) != 0)
            return corrupt_col(ci, "string offsets do not start at 0");
        for (uint32_t i = 0; i < nrows; i++)
            if (ld32(ci->offsets + 4 * ((size_t)i + 1)) < ld32(ci->offsets + 4 * (size_t)i))
                return corrupt_col(ci, "string offsets are not monotonic");
        if (ld32(ci->offsets + 4 * (size_t)nrows) != ci->data_len)
            return corrupt_col(ci, "string offsets do not end at the data length");
        if (!take(r, ci->data_len, &ci->data))
            return corrupt_col(ci, "truncated string data");
        return NULL;
    case RV_T_NULL: return NULL;
    }
    return corrupt_col(ci, "unknown type");
}

static rv_err *check_schema(const colinfo *ci, int nfields, const rv_schema *expect)
{
    if (nfields != expect->nfields)
        return rv_err_new(RV_ERR_INVALID, "batch frame schema mismatch: frame has %d fields, expected %d",
                          nfields, expect->nfields);
    for (int i = 0; i < nfields; i++) {
        const rv_field *f = &expect->fields[i];
        if (ci[i].type != f->type || strlen(f->name) != ci[i].name_len ||
            memcmp(f->name, ci[i].name, ci[i].name_len) != 0)
            return rv_err_new(RV_ERR_INVALID,
                              "batch frame schema mismatch: field %d is '%.*s' (%s), expected '%s' (%s)",
                              i, (int)ci[i].name_len, (const char *)ci[i].name, rv_type_name(ci[i].type),
                              f->name, rv_type_name(f->type));
    }
    return NULL;
}

static void decode_column(rv_column *c, const colinfo *ci, uint32_t nrows)
{
    if (ci->has_nulls) {
        rv_col_enable_nulls(c);
        for (uint32_t r = 0; r < nrows; r++)
            c->nulls[r] = (ci->bitmap[r >> 3] >> (r & 7)) & 1;
    }
    switch (ci->type) {
    case RV_T_BOOL:
        if (nrows)
            memcpy(c->d.b, ci->values, nrows);
        break;
    case RV_T_INT64:
    case RV_T_TIMESTAMP:
    case RV_T_FLOAT64:
        if (HOST_LE && nrows)
            memcpy(c->d.i64, ci->values, (size_t)8 * nrows);
        for (uint32_t r = 0; !HOST_LE && r < nrows; r++)
            ((uint64_t *)c->d.i64)[r] = ld64(ci->values + 8 * (size_t)r);
        break;
    case RV_T_STRING:
        if (HOST_LE)
            memcpy(c->offsets, ci->offsets, (size_t)4 * (nrows + 1));
        for (uint32_t r = 0; !HOST_LE && r <= nrows; r++)
            c->offsets[r] = ld32(ci->offsets + 4 * (size_t)r);
        rv_xgrow((void **)&c->data, &c->data_cap, ci->data_len, 1);
        if (ci->data_len)
            memcpy(c->data, ci->data, ci->data_len);
        c->data_len = ci->data_len;
        break;
    case RV_T_NULL: break;
    }
}

rv_err *rv_codec_decode(const void *buf, size_t len, rv_schema *expect, rv_batch **out)
{
    rd r = {.p = buf, .len = len, .pos = 0};
    const uint8_t *h;
    colinfo *ci = NULL;
    rv_err *err = NULL;

    if (len >= 4 && memcmp(buf, MAGIC, 4) != 0)
        return rv_err_new(RV_ERR_CORRUPT, "not a batch frame (bad magic)");
    if (!take(&r, HEADER_BYTES, &h))
        return rv_err_new(RV_ERR_CORRUPT, "corrupt batch frame: truncated header (%zu bytes)", len);
    uint16_t version = ld16(h + 4), nfields = ld16(h + 6);
    uint32_t nrows = ld32(h + 8), flags = ld32(h + 12);
    if (version != RV_CODEC_VERSION)
        return rv_err_new(RV_ERR_CORRUPT, "unsupported batch frame version %u (this build reads version %d)",
                          (unsigned)version, RV_CODEC_VERSION);
    if (flags != 0)
        return rv_err_new(RV_ERR_CORRUPT, "corrupt batch frame: unknown flags 0x%x", (unsigned)flags);
    if (nfields > MAX_FIELDS)
        return rv_err_new(RV_ERR_CORRUPT, "corrupt batch frame: %u fields (at most %d)", (unsigned)nfields,
                          MAX_FIELDS);
    if (nrows > MAX_ROWS)
        return rv_err_new(RV_ERR_CORRUPT, "corrupt batch frame: %u rows (at most %u)", (unsigned)nrows,
                          (unsigned)MAX_ROWS);

    ci = rv_xcalloc(nfields ? nfields : 1, sizeof(*ci));
    for (int i = 0; i < nfields; i++) {
        const uint8_t *p;
        if (!take(&r, 3, &p) || !take(&r, ld16(p + 1), &ci[i].name)) {
            err = rv_err_new(RV_ERR_CORRUPT, "corrupt batch frame: truncated field %d", i);
            goto out;
        }
        ci[i].name_len = ld16(p + 1);
        if (p[0] > MAX_TYPE) {
            err = rv_err_new(RV_ERR_CORRUPT, "corrupt batch frame: field %d has unknown type code %u", i,
                             (unsigned)p[0]);
            goto out;
        }
        ci[i].type = (rv_type)p[0];
        if (memchr(ci[i].name, 0, ci[i].name_len)) {
            err = rv_err_new(RV_ERR_CORRUPT, "corrupt batch frame: field %d name contains a NUL byte", i);
            goto out;
        }
    }
    if (expect && (err = check_schema(ci, nfields, expect)) != NULL)
        goto out;
    for (int i = 0; i < nfields; i++)
        if ((err = check_column(&r, &ci[i], nrows)) != NULL)
            goto out;
    if (r.pos != len) {
        err = rv_err_new(RV_ERR_CORRUPT, "corrupt batch frame: %zu trailing bytes", len - r.pos);
        goto out;
    }

    rv_schema *schema = expect;
    if (!schema) {
        schema = rv_schema_new();
        for (int i = 0; i < nfields; i++) {
            char *name = rv_xstrndup((const char *)ci[i].name, ci[i].name_len);
            rv_schema_add(schema, name, ci[i].type);
            free(name);
        }
    }
    rv_batch *b = rv_batch_new(schema, nrows ? nrows : 1);
    if (!expect)
        rv_schema_unref(schema); /* the batch holds it */
    for (int i = 0; i < nfields; i++)
        decode_column(&b->cols[i], &ci[i], nrows);
    b->nrows = nrows;
    *out = b;
out:
    free(ci);
    return err;
}
