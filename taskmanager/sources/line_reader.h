/* line_reader: buffered reading of newline-delimited records from a file
 * descriptor, shared by the file and socket sources.
 *
 * Lines end with "\n"; a "\r" just before it is dropped (CRLF input). A
 * line whose content is longer than max_line_bytes is reported once as
 * RV_LINE_TOO_LONG (with its first max_line_bytes bytes) and the rest of it
 * is discarded without being buffered, so memory stays bounded by the limit.
 * Non-blocking descriptors are supported (RV_LINE_AGAIN when read() would
 * block). At end of input a bounded reader returns an unterminated last line
 * as a line; a tail reader keeps it buffered, because the writer may still
 * be appending to it, and reports RV_LINE_EOF so the caller can try again
 * later (after the file grew). The reader never closes or seeks the fd.
 *
 * A line decoder turns the lines of one stream (a file, a connection) into
 * rows of a batch, as JSON lines or CSV with a header, and says why a line
 * was rejected; the source reports rejected lines with rv_ctx_bad_record().
 * Not thread-safe; one reader/decoder per stream and thread. */
#ifndef RV_LINE_READER_H
#define RV_LINE_READER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rv_batch.h"
#include "rv_record.h"

/* Default max_line_bytes of the sources: 1 MiB. */
#define RV_LINE_MAX_DEFAULT ((size_t)1 << 20)

typedef enum rv_line_status {
    RV_LINE_OK = 0,   /* *line, *len hold one line (without "\n" / "\r\n") */
    RV_LINE_TOO_LONG, /* a line exceeded the limit; *line, *len hold its first max bytes */
    RV_LINE_AGAIN,    /* no complete line now; the fd would block */
    RV_LINE_EOF,      /* end of input (tail: for now; the caller may retry later) */
    RV_LINE_ERROR,    /* read() failed: see rv_line_reader_error() */
} rv_line_status;

typedef struct rv_line_reader rv_line_reader;

/* New reader of fd (borrowed: the caller closes it after freeing the
 * reader). max_line_bytes 0 means RV_LINE_MAX_DEFAULT. tail: see above.
 * Never fails (aborts on out-of-memory). */
rv_line_reader *rv_line_reader_new(int fd, size_t max_line_bytes, bool tail);
/* Accepts NULL. Does not close the fd. */
void rv_line_reader_free(rv_line_reader *r);

/* Next line. On RV_LINE_OK and RV_LINE_TOO_LONG, *line (not NUL-terminated)
 * and *len are valid until the next call on r. Reads from the fd only when
 * no complete line is buffered. Empty lines are returned (len 0). */
rv_line_status rv_line_next(rv_line_reader *r, const char **line, size_t *len);

/* Bytes of the fd consumed by the lines returned so far (including their
 * newlines and discarded too-long remainders), counted from where the fd was
 * when the reader was made. A tail reader's buffered partial line is not
 * counted, so a caller can reopen the file later and seek to this offset. */
uint64_t rv_line_reader_offset(const rv_line_reader *r);
/* Bytes read from the fd but not yet returned as lines. */
size_t rv_line_reader_pending(const rv_line_reader *r);
/* strerror() text of the failed read after RV_LINE_ERROR (reader-owned). */
const char *rv_line_reader_error(const rv_line_reader *r);

/* ---- decoding lines into rows ---- */

typedef enum rv_dec_result {
    RV_DEC_ROW,    /* one row was appended to the batch */
    RV_DEC_EMPTY,  /* an empty line: skipped */
    RV_DEC_HEADER, /* CSV: the line was taken as the stream's header */
    RV_DEC_BAD,    /* rejected: *reason says why (nothing appended) */
} rv_dec_result;

typedef struct rv_line_decoder {
    rv_json_reader *json; /* format json (exactly one of json and csv) */
    rv_csv_reader *csv;   /* format csv */
    bool need_header;     /* csv: the next non-empty line is the header */
    bool header_bad;      /* csv: the header was rejected, rows cannot be read */
    char too_long[64];    /* reason given for RV_LINE_TOO_LONG */
    char reason[256];
} rv_line_decoder;

/* The delimiter character of a validated `delimiter` key (see
 * rv_csv_delimiter_parse; sources check it when the job is planned). */
char rv_line_delimiter(const char *delim);

/* Prepares d for rows of schema (a reference is taken by the readers) in
 * CSV (delimiter) or JSON lines. max_line_bytes is the reader's limit (0:
 * default), for the too-long reason. The stream starts as after
 * rv_line_decoder_restart(d, NULL, 0). */
void rv_line_decoder_init(rv_line_decoder *d, rv_schema *schema, bool csv, char delimiter,
                          size_t max_line_bytes);
void rv_line_decoder_fini(rv_line_decoder *d);
/* Starts a new stream. CSV: with header NULL the stream's first non-empty
 * line is its header; otherwise header[0..len) is used (a final "\n" or
 * "\r\n" is ignored). Returns false with *reason (valid until the next
 * call on d) when that header is unusable; rows are then rejected. JSON:
 * nothing to do. */
bool rv_line_decoder_restart(rv_line_decoder *d, const char *header, size_t len,
                             const char **reason);
/* Decodes one line as returned by rv_line_next (ls is RV_LINE_OK or
 * RV_LINE_TOO_LONG) and appends a row to b (of the decoder's schema) when
 * it is a record. On RV_DEC_BAD, *reason (valid until the next call on d)
 * says why and *raw_len is how much of the line to keep as the raw text
 * (too-long lines are cut to 4 KiB). */
rv_dec_result rv_line_decode(rv_line_decoder *d, rv_line_status ls, const char *line, size_t len,
                             rv_batch *b, const char **reason, size_t *raw_len);

/* Whether the reader is dropping the rest of a too-long line; a reader
 * reopened at the same offset continues that with rv_line_reader_skip_line
 * (so the tail of the long line is not read as a record). */
bool rv_line_reader_skipping(const rv_line_reader *r);
void rv_line_reader_skip_line(rv_line_reader *r);

/* Config-table entries shared by the line-based sources (file, socket):
 * `batch_size` and `max_line_bytes` of cfg_struct (int64_t fields of
 * those names), and the names of the record formats (index 0 json, 1 csv). */
#define RV_LINE_SOURCE_KEYS(cfg_struct)                                                                       \
    {.name = "batch_size", .type = RV_CFG_INT, .def = "4096", .offset = offsetof(cfg_struct, batch_size),     \
     .min = 1, .max = 1 << 20, .doc = "Most records per emitted batch."},                               \
    {.name = "max_line_bytes", .type = RV_CFG_SIZE, .def = "1MiB", .offset = offsetof(cfg_struct, max_line_bytes), \
     .min = 1, .max = INT64_C(1) << 30, .doc = "Longer lines are bad records (\"line longer than N bytes\")."}
extern const char *const rv_line_formats[];

#endif
