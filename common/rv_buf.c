/* rv_buf: the growing byte buffer the record formatters and the batch codec
 * write into. A zero-initialised rv_buf is empty and valid; after any
 * append, data is NUL-terminated (the NUL is not counted in len), so text
 * output can be used as a C string. Growth doubles and aborts on
 * out-of-memory like every small internal allocation. */
#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rv_mem.h"
#include "rv_record.h"
#include "rv_record_int.h"

void rv_buf_reserve(rv_buf *b, size_t extra)
{
    assert(extra < SIZE_MAX - b->len - 1);
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return;
    size_t n = b->cap ? b->cap : 64;
    while (n < need)
        n *= 2;
    b->data = rv_xrealloc(b->data, n);
    b->cap = n;
}

void rv_buf_append(rv_buf *b, const void *p, size_t n)
{
    rv_buf_reserve(b, n);
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void rv_buf_printf(rv_buf *b, const char *fmt, ...)
{
    va_list ap;
    rv_buf_reserve(b, 64);
    va_start(ap, fmt);
    int n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    assert(n >= 0);
    if ((size_t)n >= b->cap - b->len) {
        rv_buf_reserve(b, (size_t)n);
        va_start(ap, fmt);
        vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)n;
}

void rv_buf_fini(rv_buf *b)
{
    if (!b)
        return;
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

void rv_buf_put_i64(rv_buf *b, int64_t v)
{
    char tmp[24];
    char *p = tmp + sizeof(tmp);
    /* Negate in unsigned arithmetic so INT64_MIN works. */
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--p = '-';
    rv_buf_append(b, p, (size_t)(tmp + sizeof(tmp) - p));
}

void rv_buf_put_f64(rv_buf *b, double v)
{
    assert(isfinite(v));
    char tmp[40];
    int n = 0;
    /* Most values written by people and sensors round-trip at 15 digits;
     * 17 always does. */
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(tmp, sizeof(tmp), "%.*g", prec, v);
        if (prec == 17 || strtod(tmp, NULL) == v)
            break;
    }
    assert(n > 0 && (size_t)n < sizeof(tmp));
    rv_buf_append(b, tmp, (size_t)n);
    if (strspn(tmp, "-0123456789") == (size_t)n)
        rv_buf_append(b, ".0", 2);
}
