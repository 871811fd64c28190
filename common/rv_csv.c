/* rv_csv: CSV (RFC 4180) lines to and from batch rows.
 *
 * A line is split into cells first: a cell is either unquoted (everything
 * up to the next delimiter; a '"' inside it is taken literally) or quoted
 * ('"' ... '"', with "" standing for one quote, delimiters and line breaks
 * allowed inside); a single trailing '\r' is dropped. Cells are then
 * converted like JSON values and staged, and the row is appended only when
 * every cell was accepted (see rv_record_int.h). The header maps columns to
 * schema fields by name; without a header the columns are the schema's
 * fields in order. The reader does not join physical lines: a record with a
 * line break inside a quoted cell must be passed whole.
 *
 * The writer ends lines with "\n" (not CRLF), writes null as an empty cell
 * and an empty string as "", NaN and infinities as null, and quotes any
 * cell that contains the delimiter, a quote, CR or LF. */
#include <assert.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "rv_mem.h"
#include "rv_record.h"
#include "rv_record_int.h"

/* One cell of the current line: in the line (p != NULL) or in scratch. */
typedef struct cell {
    const char *p;
    size_t off, len;
    bool quoted;
} cell;

struct rv_csv_reader {
    rv_schema *schema; /* one reference */
    char delim;
    size_t ncols;   /* columns a line must have */
    int *col_field; /* ncols entries: schema field or -1 */
    rv_slot *slots;
    rv_buf scratch; /* unescaped quoted cells of the current line */
    cell *cells;
    size_t cells_cap;
    char reason[320];
};

rv_csv_reader *rv_csv_reader_new(rv_schema *schema, char delimiter)
{
    assert(delimiter != '"' && delimiter != '\r' && delimiter != '\n' && delimiter != '\0');
    rv_csv_reader *r = rv_xcalloc(1, sizeof(*r));
    r->schema = rv_schema_ref(schema);
    r->delim = delimiter;
    r->ncols = (size_t)schema->nfields;
    r->col_field = rv_xcalloc(r->ncols + 1, sizeof(int));
    for (size_t i = 0; i < r->ncols; i++)
        r->col_field[i] = (int)i;
    r->slots = rv_xcalloc((size_t)schema->nfields + 1, sizeof(rv_slot));
    return r;
}

void rv_csv_reader_free(rv_csv_reader *r)
{
    if (!r)
        return;
    rv_schema_unref(r->schema);
    free(r->col_field);
    free(r->slots);
    free(r->cells);
    rv_buf_fini(&r->scratch);
    free(r);
}

static bool fail(rv_csv_reader *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool fail(rv_csv_reader *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->reason, sizeof(r->reason), fmt, ap);
    va_end(ap);
    return false;
}

static const char *cell_text(const rv_csv_reader *r, const cell *c)
{
    return c->p ? c->p : r->scratch.data + c->off;
}

/* Reads a quoted cell at *pp (the opening quote) into *c. */
static bool quoted_cell(rv_csv_reader *r, const char *line, const char **pp, const char *end, cell *c)
{
    const char *open = *pp, *q = open + 1;
    bool copied = false;
    c->quoted = true;
    for (;;) {
        const char *close = memchr(q, '"', (size_t)(end - q));
        if (!close)
            return fail(r, "unterminated quoted cell starting at byte %zu", (size_t)(open - line));
        bool doubled = close + 1 < end && close[1] == '"';
        if (!doubled && !copied) {
            c->p = open + 1;
            c->len = (size_t)(close - c->p);
            q = close + 1;
            break;
        }
        if (!copied) {
            c->p = NULL;
            c->off = r->scratch.len;
            copied = true;
        }
        /* Keep one quote of a doubled pair. */
        rv_buf_append(&r->scratch, q, (size_t)(close - q) + (doubled ? 1 : 0));
        q = close + (doubled ? 2 : 1);
        if (!doubled) {
            c->len = r->scratch.len - c->off;
            break;
        }
    }
    if (q < end && *q != r->delim)
        return fail(r, "unexpected character after closing quote at byte %zu", (size_t)(q - line));
    *pp = q;
    return true;
}

/* Splits line into r->cells; *n is the number of cells. */
static bool split(rv_csv_reader *r, const char *line, size_t len, size_t *n)
{
    if (len && line[len - 1] == '\r')
        len--;
    const char *p = line, *end = line + len;
    size_t k = 0;
    r->scratch.len = 0;
    for (;;) {
        if (k == r->cells_cap)
            rv_xgrow((void **)&r->cells, &r->cells_cap, k + 1, sizeof(cell));
        cell *c = &r->cells[k];
        if (p < end && *p == '"') {
            if (!quoted_cell(r, line, &p, end, c))
                return false;
        } else {
            const char *d = memchr(p, r->delim, (size_t)(end - p));
            if (!d)
                d = end;
            c->p = p;
            c->len = (size_t)(d - p);
            c->quoted = false;
            p = d;
        }
        k++;
        if (p == end)
            break;
        p++; /* the delimiter */
    }
    *n = k;
    return true;
}

bool rv_csv_set_header(rv_csv_reader *r, const char *line, size_t len, const char **reason)
{
    size_t n;
    /* A UTF-8 byte order mark, as written by spreadsheets. */
    if (len >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0) {
        line += 3;
        len -= 3;
    }
    if (!split(r, line, len, &n)) {
        *reason = r->reason;
        return false;
    }
    int *map = rv_xcalloc(n, sizeof(int));
    int mapped = 0;
    for (size_t k = 0; k < n; k++) {
        const char *name = cell_text(r, &r->cells[k]);
        size_t nl = r->cells[k].len;
        map[k] = -1;
        for (int f = 0; f < r->schema->nfields; f++) {
            const char *fname = r->schema->fields[f].name;
            if (strlen(fname) == nl && memcmp(fname, name, nl) == 0) {
                map[k] = f;
                break;
            }
        }
        if (map[k] < 0)
            continue;
        for (size_t e = 0; e < k; e++) {
            if (map[e] == map[k]) {
                fail(r, "duplicate column '%s' in header", r->schema->fields[map[k]].name);
                free(map);
                *reason = r->reason;
                return false;
            }
        }
        mapped++;
    }
    if (mapped == 0 && r->schema->nfields > 0) {
        free(map);
        char desc[200];
        rv_schema_describe(r->schema, desc, sizeof(desc));
        fail(r, "header names none of the schema's fields (%s)", desc);
        *reason = r->reason;
        return false;
    }
    free(r->col_field);
    r->col_field = map;
    r->ncols = n;
    return true;
}

static bool is_word(const char *s, size_t n, const char *w)
{
    return strlen(w) == n && strncasecmp(s, w, n) == 0;
}

/* Converts cell c into the slot of schema field fi. */
static bool convert(rv_csv_reader *r, const cell *c, int fi)
{
    rv_type t = r->schema->fields[fi].type;
    rv_slot *slot = &r->slots[fi];
    const char *s = cell_text(r, c), *name = r->schema->fields[fi].name;
    char ex[64];
    if (c->len == 0 && (!c->quoted || t != RV_T_STRING)) {
        slot->state = RV_SLOT_NULL;
        return true;
    }
    rv_num_status st = RV_NUM_OK;
    switch (t) {
    case RV_T_STRING:
        slot->v.s.p = c->p;
        slot->v.s.off = c->off;
        slot->v.s.len = c->len;
        break;
    case RV_T_BOOL:
        if (is_word(s, c->len, "true") || is_word(s, c->len, "1")) {
            slot->v.b = true;
        } else if (is_word(s, c->len, "false") || is_word(s, c->len, "0")) {
            slot->v.b = false;
        } else {
            rv_text_excerpt(s, c->len, ex, sizeof(ex));
            return fail(r, "field '%s': invalid bool '%s'", name, ex);
        }
        break;
    case RV_T_INT64: st = rv_text_parse_int_or_integral(s, c->len, &slot->v.i); break;
    case RV_T_FLOAT64: st = rv_text_parse_f64(s, c->len, &slot->v.f); break;
    case RV_T_TIMESTAMP:
        if (!rv_ts_parse_text(s, c->len, &slot->v.i)) {
            rv_text_excerpt(s, c->len, ex, sizeof(ex));
            return fail(r, "field '%s': invalid timestamp '%s'", name, ex);
        }
        break;
    case RV_T_NULL: slot->state = RV_SLOT_NULL; return true;
    }
    if (st != RV_NUM_OK) {
        rv_text_excerpt(s, c->len, ex, sizeof(ex));
        if (st == RV_NUM_RANGE)
            return fail(r, "field '%s': number %s out of range for %s", name, ex, rv_type_name(t));
        return fail(r, "field '%s': invalid %s '%s'", name, rv_type_name(t), ex);
    }
    slot->state = RV_SLOT_VALUE;
    return true;
}

bool rv_csv_parse_row(rv_csv_reader *r, const char *line, size_t len, rv_batch *b, const char **reason)
{
    assert(b->schema->nfields == r->schema->nfields);
    size_t n;
    *reason = r->reason;
    if (!split(r, line, len, &n))
        return false;
    if (n != r->ncols)
        return fail(r, "expected %zu columns, got %zu", r->ncols, n);
    memset(r->slots, 0, (size_t)r->schema->nfields * sizeof(rv_slot));
    for (size_t k = 0; k < n; k++) {
        if (r->col_field[k] >= 0 && !convert(r, &r->cells[k], r->col_field[k]))
            return false;
    }
    const char *full = rv_slots_check(r->slots, b);
    if (full) {
        *reason = full;
        return false;
    }
    rv_slots_commit(r->slots, &r->scratch, b);
    return true;
}

/* Appends one cell, quoted when it contains the delimiter, a quote, CR or
 * LF, or when it is empty and must not read back as null. */
static void put_cell(rv_buf *out, const char *s, size_t n, char delim, bool quote_empty)
{
    bool quote = n == 0 ? quote_empty : false;
    for (size_t i = 0; i < n && !quote; i++)
        quote = s[i] == delim || s[i] == '"' || s[i] == '\r' || s[i] == '\n';
    if (!quote) {
        rv_buf_append(out, s, n);
        return;
    }
    rv_buf_reserve(out, n + 2);
    rv_buf_putc(out, '"');
    const char *q = s, *end = s + n;
    while (q < end) {
        const char *dq = memchr(q, '"', (size_t)(end - q));
        if (!dq) {
            rv_buf_append(out, q, (size_t)(end - q));
            break;
        }
        rv_buf_append(out, q, (size_t)(dq - q) + 1);
        rv_buf_putc(out, '"');
        q = dq + 1;
    }
    rv_buf_putc(out, '"');
}

void rv_csv_format_header(const rv_schema *s, char delimiter, rv_buf *out)
{
    for (int i = 0; i < s->nfields; i++) {
        if (i)
            rv_buf_putc(out, delimiter);
        put_cell(out, s->fields[i].name, strlen(s->fields[i].name), delimiter, false);
    }
    rv_buf_putc(out, '\n');
}

void rv_csv_format_row(const rv_batch *b, uint32_t row, char delimiter, rv_ts_format tsf, rv_buf *out)
{
    assert(row < b->nrows);
    for (int i = 0; i < b->schema->nfields; i++) {
        const rv_column *c = &b->cols[i];
        if (i)
            rv_buf_putc(out, delimiter);
        if (rv_col_is_null(c, row))
            continue;
        size_t start = out->len;
        switch (c->type) {
        case RV_T_BOOL: rv_buf_put_bool(out, c->d.b[row]); break;
        case RV_T_INT64: rv_buf_put_i64(out, c->d.i64[row]); break;
        case RV_T_FLOAT64:
            if (isfinite(c->d.f64[row]))
                rv_buf_put_f64(out, c->d.f64[row]);
            break;
        case RV_T_STRING: {
            uint32_t n;
            const char *p = rv_col_str(c, row, &n);
            put_cell(out, p, n, delimiter, true);
            continue;
        }
        case RV_T_TIMESTAMP:
            if (tsf == RV_TS_ISO8601)
                rv_ts_format_iso8601(c->d.i64[row], out);
            else
                rv_buf_put_i64(out, c->d.i64[row]);
            break;
        case RV_T_NULL: break;
        }
        /* A delimiter such as '-', '.' or ':' can occur in formatted
         * numbers and timestamps: quote the cell then. */
        if (out->len > start && memchr(out->data + start, delimiter, out->len - start)) {
            char tmp[64];
            size_t n = out->len - start;
            assert(n < sizeof(tmp));
            memcpy(tmp, out->data + start, n);
            out->len = start;
            put_cell(out, tmp, n, delimiter, false);
        }
    }
    rv_buf_putc(out, '\n');
}

bool rv_csv_delimiter_parse(const char *s, char *out)
{
    if (strcmp(s, "tab") == 0 || strcmp(s, "\\t") == 0 || strcmp(s, "\t") == 0) {
        *out = '\t';
        return true;
    }
    if (strlen(s) != 1 || s[0] == '"' || s[0] == '\n' || s[0] == '\r')
        return false;
    *out = s[0];
    return true;
}
