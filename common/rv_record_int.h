/* rv_record_int: helpers shared by the record-format files (rv_buf.c,
 * rv_timefmt.c, rv_json.c, rv_csv.c) and the codec; not a public API.
 *
 * A parsed line is first "staged" (one slot per schema field) and appended
 * to the batch only when the whole line was accepted, so that a rejected
 * line leaves the batch exactly as it was. Decoded string bytes live either
 * in the caller's line (no copy) or in a per-reader scratch buffer that may
 * move while the line is parsed, hence offsets rather than pointers. */
#ifndef RV_RECORD_INT_H
#define RV_RECORD_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rv_batch.h"
#include "rv_record.h"

/* Ensures room for `extra` more bytes plus a terminating NUL. */
void rv_buf_reserve(rv_buf *b, size_t extra);
static inline void rv_buf_putc(rv_buf *b, char c)
{
    if (b->cap - b->len < 2)
        rv_buf_reserve(b, 1);
    b->data[b->len++] = c;
    b->data[b->len] = '\0';
}
/* Decimal integer. */
void rv_buf_put_i64(rv_buf *b, int64_t v);
/* "true" or "false". */
static inline void rv_buf_put_bool(rv_buf *b, bool v)
{
    if (v)
        rv_buf_append(b, "true", 4);
    else
        rv_buf_append(b, "false", 5);
}
/* Shortest decimal text that reads back as exactly v ("%.15g" .. "%.17g");
 * an integral value gets ".0" so it still reads as a float. v finite. */
void rv_buf_put_f64(rv_buf *b, double v);

/* Strict decimal integer text: optional sign, digits, nothing else. */
typedef enum { RV_NUM_OK, RV_NUM_SYNTAX, RV_NUM_RANGE } rv_num_status;
rv_num_status rv_text_parse_i64(const char *s, size_t len, int64_t *out);
/* strtod on a bounded copy; the whole text must be consumed. Accepts what
 * strtod accepts except leading blanks and hexadecimal. Overflow to
 * infinity is RV_NUM_RANGE. */
rv_num_status rv_text_parse_f64(const char *s, size_t len, double *out);
/* Integer text, or a number with no fraction that fits int64 ("2.0",
 * "1e3"). */
rv_num_status rv_text_parse_int_or_integral(const char *s, size_t len, int64_t *out);
/* Timestamp text: integer epoch milliseconds or ISO-8601. */
bool rv_ts_parse_text(const char *s, size_t len, int64_t *ms);

/* One staged field value. */
enum { RV_SLOT_MISSING = 0, RV_SLOT_NULL, RV_SLOT_VALUE };
typedef struct rv_slot {
    uint8_t state;
    union {
        bool b;
        int64_t i;
        double f;
        struct {
            const char *p; /* bytes in the caller's line, or NULL: in scratch */
            size_t off, len;
        } s;
    } v;
} rv_slot;

/* Checks that the staged row fits (string data stays under 4 GiB a
 * column, row count under UINT32_MAX); NULL if it does, else a static
 * reason. */
const char *rv_slots_check(const rv_slot *slots, const rv_batch *b);
/* Appends the staged row to b (missing and null slots become nulls). */
void rv_slots_commit(const rv_slot *slots, const rv_buf *scratch, rv_batch *b);

/* Writes a short, printable excerpt of s (at most ~40 bytes, control and
 * non-ASCII bytes as '?', "..." when cut) for error messages. */
void rv_text_excerpt(const char *s, size_t len, char *out, size_t cap);

#endif
