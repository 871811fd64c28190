/* rv_json: JSON lines to and from batch rows.
 *
 * The reader is a small hand-written recursive-descent parser for one
 * object per line. Members named like a schema field are converted to the
 * field's type as they are read and staged in a slot per field; other
 * members are validated and skipped, whatever they contain (nesting is
 * bounded). Only when the whole line has been accepted is the staged row
 * appended to the batch, so a rejected line leaves the batch untouched.
 * Strings without escapes are not copied until the row is committed.
 * Bytes >= 0x80 are passed through as they are (no UTF-8 validation).
 *
 * A reader holds its own reference to the schema. A timestamp field also
 * accepts a string of epoch milliseconds ("1700000000000").
 *
 * The writer emits the fields in schema order. Strings escape '"', '\\',
 * \b \f \n \r \t in short form and other control characters as \u00XX;
 * floats use the shortest of 15..17 significant digits that reads back
 * exactly, with ".0" added to integral values (2.0 prints as 2.0, not 2);
 * NaN and infinities print as null. Number text assumes the C locale for
 * LC_NUMERIC. The staging helpers at the end are shared with the CSV
 * reader. */
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

/* Deeper nesting inside an ignored member is rejected (bounds recursion). */
#define JSON_MAX_DEPTH 128

struct rv_json_reader {
    rv_schema *schema; /* one reference */
    int nfields;
    size_t *name_len;
    rv_slot *slots;  /* nfields staged values of the current line */
    rv_buf scratch;  /* unescaped field strings of the current line */
    rv_buf tmp;      /* unescaped keys and skipped strings */
    char reason[320];
};

/* A string token: in the line (p != NULL) or at buf->data + off. */
typedef struct span {
    const char *p;
    size_t off, len;
} span;

/* Parser state for one line. */
typedef struct jp {
    const char *s, *p, *end;
    rv_json_reader *r;
    int hint; /* members usually come in schema order */
} jp;

rv_json_reader *rv_json_reader_new(rv_schema *schema)
{
    rv_json_reader *r = rv_xcalloc(1, sizeof(*r));
    r->schema = rv_schema_ref(schema);
    r->nfields = schema->nfields;
    r->name_len = rv_xcalloc((size_t)r->nfields + 1, sizeof(size_t));
    r->slots = rv_xcalloc((size_t)r->nfields + 1, sizeof(rv_slot));
    for (int i = 0; i < r->nfields; i++)
        r->name_len[i] = strlen(schema->fields[i].name);
    return r;
}

void rv_json_reader_free(rv_json_reader *r)
{
    if (!r)
        return;
    rv_schema_unref(r->schema);
    free(r->name_len);
    free(r->slots);
    rv_buf_fini(&r->scratch);
    rv_buf_fini(&r->tmp);
    free(r);
}

static bool syntax_err(jp *j, const char *what)
{
    size_t at = (size_t)(j->p - j->s);
    if (j->p >= j->end)
        what = "unexpected end of line";
    snprintf(j->r->reason, sizeof(j->r->reason), "invalid JSON at byte %zu: %s", at, what);
    return false;
}

static bool field_err(jp *j, int fi, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool field_err(jp *j, int fi, const char *fmt, ...)
{
    char *r = j->r->reason;
    size_t cap = sizeof(j->r->reason);
    int n = snprintf(r, cap, "field '%s': ", j->r->schema->fields[fi].name);
    if (n < 0 || (size_t)n >= cap)
        return false;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r + n, cap - (size_t)n, fmt, ap);
    va_end(ap);
    return false;
}

static inline void skip_ws(jp *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static int hex4(const char *q)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = q[i];
        int d = c >= '0' && c <= '9' ? c - '0'
              : c >= 'a' && c <= 'f' ? c - 'a' + 10
              : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

static void put_utf8(rv_buf *b, uint32_t cp)
{
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xC0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        u[0] = (char)(0xF0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        u[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    rv_buf_append(b, u, n);
}

static inline bool plain_char(char c) { return c != '"' && c != '\\' && (unsigned char)c >= 0x20; }

/* Decodes one escape at *q (a backslash) into dst and advances *q. */
static bool unescape(jp *j, const char **q, rv_buf *dst)
{
    const char *e = *q;
    j->p = e;
    if (j->end - e < 2)
        return syntax_err(j, "unterminated string");
    static const char simple_in[] = "\"\\/bfnrt", simple_out[] = "\"\\/\b\f\n\r\t";
    const char *k = e[1] ? strchr(simple_in, e[1]) : NULL;
    if (k) {
        rv_buf_putc(dst, simple_out[k - simple_in]);
        *q = e + 2;
        return true;
    }
    if (e[1] != 'u')
        return syntax_err(j, "invalid escape sequence");
    int cp = j->end - e >= 6 ? hex4(e + 2) : -1;
    if (cp < 0)
        return syntax_err(j, "invalid \\u escape");
    if (cp >= 0xDC00 && cp <= 0xDFFF)
        return syntax_err(j, "unpaired surrogate in \\u escape");
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        int lo = j->end - e >= 12 && e[6] == '\\' && e[7] == 'u' ? hex4(e + 8) : -1;
        if (lo < 0xDC00 || lo > 0xDFFF)
            return syntax_err(j, "unpaired surrogate in \\u escape");
        put_utf8(dst, 0x10000 + (((uint32_t)cp - 0xD800) << 10) + ((uint32_t)lo - 0xDC00));
        *q = e + 12;
        return true;
    }
    put_utf8(dst, (uint32_t)cp);
    *q = e + 6;
    return true;
}

/* Reads a string token (j->p at the opening quote). Unescaped strings are
 * returned in place; others are decoded into dst. */
static bool lex_string(jp *j, rv_buf *dst, span *out)
{
    const char *open = j->p, *start = open + 1, *q = start;
    while (q < j->end && plain_char(*q))
        q++;
    if (q < j->end && *q == '"') {
        out->p = start;
        out->len = (size_t)(q - start);
        j->p = q + 1;
        return true;
    }
    out->p = NULL;
    out->off = dst->len;
    rv_buf_append(dst, start, (size_t)(q - start));
    for (;;) {
        if (q >= j->end) {
            j->p = open;
            return syntax_err(j, "unterminated string");
        }
        if (*q == '"')
            break;
        if (*q == '\\') {
            if (!unescape(j, &q, dst))
                return false;
            continue;
        }
        if ((unsigned char)*q < 0x20) {
            j->p = q;
            return syntax_err(j, "control character in string");
        }
        const char *run = q;
        while (q < j->end && plain_char(*q))
            q++;
        rv_buf_append(dst, run, (size_t)(q - run));
    }
    out->len = dst->len - out->off;
    j->p = q + 1;
    return true;
}

/* Reads a number token per the JSON grammar; *is_int when it has neither
 * fraction nor exponent. */
static bool lex_number(jp *j, span *out, bool *is_int)
{
    const char *q = j->p, *end = j->end;
    *is_int = true;
    if (q < end && *q == '-')
        q++;
    if (q < end && *q == '0') {
        q++;
    } else if (q < end && *q >= '1' && *q <= '9') {
        while (q < end && *q >= '0' && *q <= '9')
            q++;
    } else {
        j->p = q;
        return syntax_err(j, "invalid number");
    }
    if (q < end && *q == '.') {
        q++;
        *is_int = false;
        if (q >= end || *q < '0' || *q > '9') {
            j->p = q;
            return syntax_err(j, "invalid number");
        }
        while (q < end && *q >= '0' && *q <= '9')
            q++;
    }
    if (q < end && (*q == 'e' || *q == 'E')) {
        q++;
        *is_int = false;
        if (q < end && (*q == '+' || *q == '-'))
            q++;
        if (q >= end || *q < '0' || *q > '9') {
            j->p = q;
            return syntax_err(j, "invalid number");
        }
        while (q < end && *q >= '0' && *q <= '9')
            q++;
    }
    out->p = j->p;
    out->len = (size_t)(q - j->p);
    j->p = q;
    return true;
}

/* Consumes the literal word w at j->p, or fails with a syntax error. */
static bool lex_word(jp *j, const char *w, size_t n)
{
    size_t avail = (size_t)(j->end - j->p);
    if (avail >= n && memcmp(j->p, w, n) == 0) {
        j->p += n;
        return true;
    }
    if (avail < n && memcmp(j->p, w, avail) == 0)
        j->p = j->end; /* a truncated literal: report the end of line */
    return syntax_err(j, "expected value");
}

static bool skip_value(jp *j, int depth);

static bool skip_container(jp *j, int depth, char close)
{
    if (depth >= JSON_MAX_DEPTH)
        return syntax_err(j, "nesting too deep");
    j->p++;
    skip_ws(j);
    if (j->p < j->end && *j->p == close) {
        j->p++;
        return true;
    }
    for (;;) {
        skip_ws(j);
        if (close == '}') {
            span k;
            if (j->p >= j->end || *j->p != '"')
                return syntax_err(j, "expected member name");
            j->r->tmp.len = 0;
            if (!lex_string(j, &j->r->tmp, &k))
                return false;
            skip_ws(j);
            if (j->p >= j->end || *j->p != ':')
                return syntax_err(j, "expected ':'");
            j->p++;
        }
        if (!skip_value(j, depth + 1))
            return false;
        skip_ws(j);
        if (j->p < j->end && *j->p == ',') {
            j->p++;
            continue;
        }
        if (j->p < j->end && *j->p == close) {
            j->p++;
            return true;
        }
        return syntax_err(j, close == '}' ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

static bool skip_value(jp *j, int depth)
{
    span s;
    bool is_int;
    skip_ws(j);
    if (j->p >= j->end)
        return syntax_err(j, "expected value");
    switch (*j->p) {
    case '"': j->r->tmp.len = 0; return lex_string(j, &j->r->tmp, &s);
    case '{': return skip_container(j, depth, '}');
    case '[': return skip_container(j, depth, ']');
    case 't': return lex_word(j, "true", 4);
    case 'f': return lex_word(j, "false", 5);
    case 'n': return lex_word(j, "null", 4);
    default:
        if (*j->p == '-' || (*j->p >= '0' && *j->p <= '9'))
            return lex_number(j, &s, &is_int);
        return syntax_err(j, "expected value");
    }
}

static int find_field(jp *j, const char *k, size_t n)
{
    rv_json_reader *r = j->r;
    for (int i = 0; i < r->nfields; i++) {
        int f = j->hint + i;
        if (f >= r->nfields)
            f -= r->nfields;
        if (r->name_len[f] == n && memcmp(r->schema->fields[f].name, k, n) == 0) {
            j->hint = f + 1 < r->nfields ? f + 1 : 0;
            return f;
        }
    }
    return -1;
}

static bool number_field(jp *j, int fi, rv_type t, rv_slot *slot)
{
    span num;
    bool is_int;
    char ex[64];
    if (!lex_number(j, &num, &is_int))
        return false;
    if (t == RV_T_FLOAT64) {
        rv_num_status st = is_int ? rv_text_parse_i64(num.p, num.len, &slot->v.i) : RV_NUM_SYNTAX;
        if (st == RV_NUM_OK && slot->v.i > -(INT64_C(1) << 53) && slot->v.i < (INT64_C(1) << 53)) {
            slot->v.f = (double)slot->v.i; /* exact; avoids strtod */
        } else if (rv_text_parse_f64(num.p, num.len, &slot->v.f) != RV_NUM_OK) {
            rv_text_excerpt(num.p, num.len, ex, sizeof(ex));
            return field_err(j, fi, "number %s out of range for float64", ex);
        }
        slot->state = RV_SLOT_VALUE;
        return true;
    }
    if (t != RV_T_INT64 && t != RV_T_TIMESTAMP)
        return field_err(j, fi, "expected %s, got %s", rv_type_name(t), "number");
    rv_num_status st = is_int ? rv_text_parse_i64(num.p, num.len, &slot->v.i)
                              : rv_text_parse_int_or_integral(num.p, num.len, &slot->v.i);
    if (st == RV_NUM_OK) {
        slot->state = RV_SLOT_VALUE;
        return true;
    }
    rv_text_excerpt(num.p, num.len, ex, sizeof(ex));
    if (st == RV_NUM_RANGE)
        return field_err(j, fi, "number %s out of range for %s", ex, rv_type_name(t));
    return field_err(j, fi, "expected %s, got non-integer number %s", rv_type_name(t), ex);
}

/* Parses the value of schema field fi into its slot. */
static bool field_value(jp *j, int fi)
{
    rv_json_reader *r = j->r;
    rv_type t = r->schema->fields[fi].type;
    rv_slot *slot = &r->slots[fi];
    const char *got;
    if (j->p >= j->end)
        return syntax_err(j, "expected value");
    switch (*j->p) {
    case '"': {
        span s;
        if (!lex_string(j, &r->scratch, &s))
            return false;
        if (t == RV_T_STRING) {
            slot->state = RV_SLOT_VALUE;
            slot->v.s.p = s.p;
            slot->v.s.off = s.off;
            slot->v.s.len = s.len;
            return true;
        }
        if (t == RV_T_TIMESTAMP) {
            const char *text = s.p ? s.p : r->scratch.data + s.off;
            char ex[64];
            if (rv_ts_parse_text(text, s.len, &slot->v.i)) {
                slot->state = RV_SLOT_VALUE;
                return true;
            }
            rv_text_excerpt(text, s.len, ex, sizeof(ex));
            return field_err(j, fi, "invalid timestamp '%s'", ex);
        }
        got = "string";
        break;
    }
    case 't':
    case 'f': {
        bool v = *j->p == 't';
        if (!lex_word(j, v ? "true" : "false", v ? 4 : 5))
            return false;
        if (t == RV_T_BOOL) {
            slot->state = RV_SLOT_VALUE;
            slot->v.b = v;
            return true;
        }
        got = "bool";
        break;
    }
    case 'n':
        if (!lex_word(j, "null", 4))
            return false;
        slot->state = RV_SLOT_NULL;
        return true;
    case '{': got = "object"; break;
    case '[': got = "array"; break;
    default:
        if (*j->p == '-' || (*j->p >= '0' && *j->p <= '9'))
            return number_field(j, fi, t, slot);
        return syntax_err(j, "expected value");
    }
    return field_err(j, fi, "expected %s, got %s", rv_type_name(t), got);
}

static bool parse_object(jp *j)
{
    rv_json_reader *r = j->r;
    j->p++; /* '{' */
    skip_ws(j);
    if (j->p < j->end && *j->p == '}') {
        j->p++;
        return true;
    }
    for (bool first = true;; first = false) {
        span k;
        skip_ws(j);
        if (j->p >= j->end || *j->p != '"')
            return syntax_err(j, first ? "expected member name or '}'" : "expected member name");
        r->tmp.len = 0;
        if (!lex_string(j, &r->tmp, &k))
            return false;
        int fi = find_field(j, k.p ? k.p : r->tmp.data + k.off, k.len);
        skip_ws(j);
        if (j->p >= j->end || *j->p != ':')
            return syntax_err(j, "expected ':'");
        j->p++;
        skip_ws(j);
        if (!(fi >= 0 ? field_value(j, fi) : skip_value(j, 1)))
            return false;
        skip_ws(j);
        if (j->p < j->end && *j->p == ',') {
            j->p++;
            continue;
        }
        if (j->p < j->end && *j->p == '}') {
            j->p++;
            return true;
        }
        return syntax_err(j, "expected ',' or '}'");
    }
}

bool rv_json_parse_row(rv_json_reader *r, const char *line, size_t len, rv_batch *b, const char **reason)
{
    assert(b->schema->nfields == r->nfields);
    jp j = {.s = line, .p = line, .end = line + len, .r = r, .hint = 0};
    memset(r->slots, 0, (size_t)r->nfields * sizeof(rv_slot));
    r->scratch.len = 0;
    skip_ws(&j);
    if (j.p >= j.end || *j.p != '{') {
        *reason = "line is not a JSON object";
        return false;
    }
    if (!parse_object(&j)) {
        *reason = r->reason;
        return false;
    }
    skip_ws(&j);
    if (j.p != j.end) {
        syntax_err(&j, "unexpected data after the object");
        *reason = r->reason;
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

/* Writes s as a JSON string: '"' and '\\' escaped, \b \f \n \r \t in short
 * form, other control characters as \u00XX; everything else (including
 * bytes >= 0x80) as is. */
static void put_json_str(rv_buf *out, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    rv_buf_reserve(out, n + 2);
    rv_buf_putc(out, '"');
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        rv_buf_append(out, s + run, i - run);
        run = i + 1;
        char esc[6] = {'\\', 0, 0, 0, 0, 0};
        size_t en = 2;
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            en = 6;
        }
        rv_buf_append(out, esc, en);
    }
    rv_buf_append(out, s + run, n - run);
    rv_buf_putc(out, '"');
}

void rv_json_format_row(const rv_batch *b, uint32_t row, rv_ts_format tsf, rv_buf *out)
{
    assert(row < b->nrows);
    const rv_schema *s = b->schema;
    rv_buf_putc(out, '{');
    for (int i = 0; i < s->nfields; i++) {
        const rv_column *c = &b->cols[i];
        if (i)
            rv_buf_putc(out, ',');
        put_json_str(out, s->fields[i].name, strlen(s->fields[i].name));
        rv_buf_putc(out, ':');
        if (rv_col_is_null(c, row)) {
            rv_buf_append(out, "null", 4);
            continue;
        }
        switch (c->type) {
        case RV_T_BOOL: rv_buf_put_bool(out, c->d.b[row]); break;
        case RV_T_INT64: rv_buf_put_i64(out, c->d.i64[row]); break;
        case RV_T_FLOAT64:
            if (isfinite(c->d.f64[row]))
                rv_buf_put_f64(out, c->d.f64[row]);
            else
                rv_buf_append(out, "null", 4);
            break;
        case RV_T_STRING: {
            uint32_t n;
            const char *p = rv_col_str(c, row, &n);
            put_json_str(out, p, n);
            break;
        }
        case RV_T_TIMESTAMP:
            if (tsf == RV_TS_ISO8601) {
                rv_buf_putc(out, '"');
                rv_ts_format_iso8601(c->d.i64[row], out);
                rv_buf_putc(out, '"');
            } else {
                rv_buf_put_i64(out, c->d.i64[row]);
            }
            break;
        case RV_T_NULL: rv_buf_append(out, "null", 4); break;
        }
    }
    rv_buf_append(out, "}\n", 2);
}

const char *rv_slots_check(const rv_slot *slots, const rv_batch *b)
{
    if (b->nrows == UINT32_MAX)
        return "batch is full";
    for (int i = 0; i < b->schema->nfields; i++) {
        const rv_column *c = &b->cols[i];
        if (c->type == RV_T_STRING && slots[i].state == RV_SLOT_VALUE &&
            slots[i].v.s.len > UINT32_MAX - (size_t)c->offsets[b->nrows])
            return "string data of this batch would exceed 4 GiB";
    }
    return NULL;
}

void rv_slots_commit(const rv_slot *slots, const rv_buf *scratch, rv_batch *b)
{
    uint32_t row = b->nrows;
    rv_batch_reserve(b, row + 1);
    for (int i = 0; i < b->schema->nfields; i++) {
        rv_column *c = &b->cols[i];
        const rv_slot *sl = &slots[i];
        if (sl->state != RV_SLOT_VALUE) {
            rv_col_set_null(c, row);
            continue;
        }
        switch (c->type) {
        case RV_T_BOOL: rv_col_set_bool(c, row, sl->v.b); break;
        case RV_T_INT64:
        case RV_T_TIMESTAMP: rv_col_set_i64(c, row, sl->v.i); break;
        case RV_T_FLOAT64: rv_col_set_f64(c, row, sl->v.f); break;
        case RV_T_STRING:
            rv_col_set_str(c, row, sl->v.s.p ? sl->v.s.p : scratch->data + sl->v.s.off, sl->v.s.len);
            break;
        case RV_T_NULL: rv_col_set_null(c, row); break;
        }
    }
    b->nrows = row + 1;
}
