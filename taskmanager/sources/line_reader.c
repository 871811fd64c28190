/* line_reader: newline-delimited records from a file descriptor (see
 * line_reader.h). One buffer holds the unreturned bytes [start, end); it
 * grows up to max_line_bytes + 2 (content, "\r", "\n") so that any line
 * within the limit fits, and a line that does not fit is detected as soon as
 * the buffer holds more than the limit without a newline. The decoder
 * below only dispatches to the JSON and CSV readers of rv_record. */
#include "line_reader.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rv_mem.h"

#define INITIAL_CAP ((size_t)64 << 10)

struct rv_line_reader {
    int fd;
    size_t max;     /* longest accepted line content */
    bool tail;
    bool eof;       /* bounded reader saw end of input */
    bool skipping;  /* discarding the rest of a too-long line */
    char *buf;
    size_t cap;
    size_t start, end; /* unreturned bytes */
    size_t scan;       /* no "\n" in [start, scan) */
    uint64_t consumed;
    char err[128];
};

rv_line_reader *rv_line_reader_new(int fd, size_t max_line_bytes, bool tail)
{
    rv_line_reader *r = rv_xcalloc(1, sizeof(*r));
    r->fd = fd;
    r->max = max_line_bytes ? max_line_bytes : RV_LINE_MAX_DEFAULT;
    r->tail = tail;
    r->cap = r->max + 2 < INITIAL_CAP ? r->max + 2 : INITIAL_CAP;
    r->buf = rv_xmalloc(r->cap);
    return r;
}

void rv_line_reader_free(rv_line_reader *r)
{
    if (!r)
        return;
    free(r->buf);
    free(r);
}

uint64_t rv_line_reader_offset(const rv_line_reader *r) { return r->consumed; }

size_t rv_line_reader_pending(const rv_line_reader *r) { return r->end - r->start; }

const char *rv_line_reader_error(const rv_line_reader *r) { return r->err; }

bool rv_line_reader_skipping(const rv_line_reader *r) { return r->skipping; }

void rv_line_reader_skip_line(rv_line_reader *r) { r->skipping = true; }

/* Makes room for more input: moves the unreturned bytes to the front, and
 * grows the buffer when it is full (never beyond what a line can need). */
static void make_room(rv_line_reader *r)
{
    if (r->start > 0) {
        size_t n = r->end - r->start;
        memmove(r->buf, r->buf + r->start, n);
        r->scan -= r->start;
        r->end = n;
        r->start = 0;
    }
    if (r->end == r->cap) {
        size_t cap = r->cap * 2;
        if (cap > r->max + 2)
            cap = r->max + 2;
        if (cap < r->cap + 1)
            cap = r->cap + 1;
        r->buf = rv_xrealloc(r->buf, cap);
        r->cap = cap;
    }
}

/* Reads once. Returns RV_LINE_OK when bytes arrived (or, for a bounded
 * reader, end of input was reached and the caller should flush). */
static rv_line_status fill(rv_line_reader *r)
{
    make_room(r);
    for (;;) {
        ssize_t n = read(r->fd, r->buf + r->end, r->cap - r->end);
        if (n > 0) {
            r->end += (size_t)n;
            return RV_LINE_OK;
        }
        if (n == 0) {
            if (r->tail)
                return RV_LINE_EOF;
            r->eof = true;
            return RV_LINE_OK;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return RV_LINE_AGAIN;
        snprintf(r->err, sizeof(r->err), "%s", strerror(errno));
        return RV_LINE_ERROR;
    }
}

/* Returns buf[start, start+n) as a line (dropping a final "\r") and
 * consumes `used` bytes. */
static rv_line_status take(rv_line_reader *r, size_t n, size_t used, const char **line, size_t *len)
{
    const char *p = r->buf + r->start;
    if (n > 0 && p[n - 1] == '\r')
        n--;
    r->start += used;
    r->scan = r->start;
    r->consumed += used;
    *line = p;
    if (n > r->max) {
        *len = r->max;
        return RV_LINE_TOO_LONG;
    }
    *len = n;
    return RV_LINE_OK;
}

rv_line_status rv_line_next(rv_line_reader *r, const char **line, size_t *len)
{
    for (;;) {
        if (r->skipping) {
            char *nl = memchr(r->buf + r->start, '\n', r->end - r->start);
            size_t upto = nl ? (size_t)(nl - r->buf) + 1 : r->end;
            r->consumed += upto - r->start;
            r->start = r->scan = upto;
            if (nl) {
                r->skipping = false;
                continue; /* lines may follow in the buffer: scan before reading */
            }
        } else {
            char *nl = memchr(r->buf + r->scan, '\n', r->end - r->scan);
            if (nl) {
                size_t n = (size_t)(nl - (r->buf + r->start));
                return take(r, n, n + 1, line, len);
            }
            r->scan = r->end;
            size_t pending = r->end - r->start;
            /* Content beyond max, unless the byte past max is a "\r"
             * that a "\n" may still follow. */
            if (pending > r->max + 1 || (pending == r->max + 1 && r->buf[r->end - 1] != '\r')) {
                /* Report now, drop the rest of the line as it arrives. */
                r->skipping = true;
                *line = r->buf + r->start;
                *len = r->max;
                r->consumed += pending;
                r->start = r->scan = r->end;
                return RV_LINE_TOO_LONG;
            }
            if (r->eof) {
                if (pending == 0)
                    return RV_LINE_EOF;
                return take(r, pending, pending, line, len);
            }
        }
        if (r->eof)
            return RV_LINE_EOF;
        rv_line_status st = fill(r);
        if (st != RV_LINE_OK)
            return st;
    }
}

/* ---- decoding ---- */

#define RAW_MAX 4096

char rv_line_delimiter(const char *delim)
{
    char c = ',';
    rv_csv_delimiter_parse(delim, &c); /* validated at planning */
    return c;
}

void rv_line_decoder_init(rv_line_decoder *d, rv_schema *schema, bool csv, char delimiter,
                          size_t max_line_bytes)
{
    memset(d, 0, sizeof(*d));
    if (csv)
        d->csv = rv_csv_reader_new(schema, delimiter);
    else
        d->json = rv_json_reader_new(schema);
    d->need_header = csv;
    snprintf(d->too_long, sizeof(d->too_long), "line longer than %zu bytes",
             max_line_bytes ? max_line_bytes : RV_LINE_MAX_DEFAULT);
}

void rv_line_decoder_fini(rv_line_decoder *d)
{
    rv_json_reader_free(d->json);
    rv_csv_reader_free(d->csv);
    memset(d, 0, sizeof(*d));
}

bool rv_line_decoder_restart(rv_line_decoder *d, const char *header, size_t len,
                             const char **reason)
{
    d->header_bad = false;
    d->need_header = d->csv && !header;
    if (!d->csv || !header)
        return true;
    if (len > 0 && header[len - 1] == '\n')
        len--;
    if (len > 0 && header[len - 1] == '\r')
        len--;
    const char *why = NULL;
    if (rv_csv_set_header(d->csv, header, len, &why))
        return true;
    d->header_bad = true;
    snprintf(d->reason, sizeof(d->reason), "bad CSV header: %s", why ? why : "unusable");
    *reason = d->reason;
    return false;
}

rv_dec_result rv_line_decode(rv_line_decoder *d, rv_line_status ls, const char *line, size_t len,
                             rv_batch *b, const char **reason, size_t *raw_len)
{
    assert(ls == RV_LINE_OK || ls == RV_LINE_TOO_LONG);
    *raw_len = len;
    if (ls == RV_LINE_TOO_LONG) {
        if (*raw_len > RAW_MAX)
            *raw_len = RAW_MAX;
        *reason = d->too_long;
        return RV_DEC_BAD;
    }
    if (len == 0)
        return RV_DEC_EMPTY;
    const char *why = NULL;
    if (d->json) {
        if (rv_json_parse_row(d->json, line, len, b, &why))
            return RV_DEC_ROW;
        *reason = why ? why : "bad record";
        return RV_DEC_BAD;
    }
    if (d->need_header) {
        d->need_header = false;
        if (rv_csv_set_header(d->csv, line, len, &why)) {
            d->header_bad = false;
            return RV_DEC_HEADER;
        }
        d->header_bad = true;
        snprintf(d->reason, sizeof(d->reason), "bad CSV header: %s", why ? why : "unusable");
        *reason = d->reason;
        return RV_DEC_BAD;
    }
    if (d->header_bad) {
        *reason = "no usable CSV header";
        return RV_DEC_BAD;
    }
    if (rv_csv_parse_row(d->csv, line, len, b, &why))
        return RV_DEC_ROW;
    *reason = why ? why : "bad record";
    return RV_DEC_BAD;
}

const char *const rv_line_formats[] = {"json", "csv", NULL};
