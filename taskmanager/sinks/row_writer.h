/* row_writer: the text output shared by the sinks that write rows as text
 * (stdout, file): JSON lines or CSV, chosen by the keys `format`,
 * `delimiter`, `timestamp_format` and `header`.
 *
 * A sink embeds an rv_row_opts in its config struct, lists the four keys in
 * its config table with RV_ROW_OPTS_KEYS, and turns the parsed options into
 * an rv_row_writer with rv_row_writer_init() (from plan() to reject a bad
 * delimiter at validation time with a positioned error, and again from
 * open()). The writer only formats into an rv_buf (common/rv_record.h); the
 * sink decides when and where the buffer is written. A writer is a few
 * immutable values: any thread may use it. */
#ifndef RV_ROW_WRITER_H
#define RV_ROW_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rv_batch.h"
#include "rv_config.h"
#include "rv_err.h"
#include "rv_record.h"
#include "rv_yaml.h"

typedef enum { RV_ROW_JSON = 0, RV_ROW_CSV = 1 } rv_row_format;

/* The parsed keys, as rv_config_apply() fills them. */
typedef struct rv_row_opts {
    int format;           /* index into rv_row_format_choices (rv_row_format) */
    char *delimiter;      /* CSV separator as written in the YAML */
    int timestamp_format; /* index into rv_row_ts_choices (rv_ts_format) */
    bool header;          /* CSV: write a header line */
} rv_row_opts;

/* NULL-terminated choices of the ENUM keys, in enum order. */
extern const char *const rv_row_format_choices[];
extern const char *const rv_row_ts_choices[];

/* The four config-table entries of an rv_row_opts that is the member
 * `member` of config struct `type`. `header_doc` is the sink's own doc line
 * for `header` (where the header goes differs between sinks). */
#define RV_ROW_OPTS_KEYS(type, member, header_doc)                                              \
    {"format", RV_CFG_ENUM, "json", offsetof(type, member.format),                              \
     "Output format: `json` (one JSON object per line) or `csv` (RFC 4180).",                   \
     rv_row_format_choices, 0, 0, 0},                                                           \
    {"delimiter", RV_CFG_STRING, ",", offsetof(type, member.delimiter),                         \
     "CSV field separator: one character; `tab` or `\\t` for a tab.", NULL, 0, 0, 0},           \
    {"timestamp_format", RV_CFG_ENUM, "epoch_ms", offsetof(type, member.timestamp_format),      \
     "How timestamp fields are written: `epoch_ms` (integer milliseconds) or `iso8601` "        \
     "(`2024-05-01T12:00:00.123Z`, UTC).",                                                      \
     rv_row_ts_choices, 0, 0, 0},                                                               \
    {"header", RV_CFG_BOOL, "true", offsetof(type, member.header), (header_doc), NULL, 0, 0, 0}

typedef struct rv_row_writer {
    rv_row_format format;
    char delim;
    rv_ts_format tsf;
    bool header; /* CSV only; always false for JSON */
} rv_row_writer;

/* Checks o and fills *w (written only on success). `node` is the sink's
 * YAML map, used to position errors (may be NULL); `what` names the sink
 * in messages ("sink 'out'"; NULL for none, when the caller's context
 * already names it). Errors: RV_ERR_INVALID for a delimiter that is not one
 * usable character or an enum out of range. */
rv_err *rv_row_writer_init(rv_row_writer *w, const rv_row_opts *o, const rv_ynode *node,
                           const char *what);

/* A config error "what: key: msg" (just "key: msg" when what is NULL),
 * positioned at the value of `key` in the sink's YAML map `node` if
 * present, else at the map, else unpositioned (node NULL). For the sinks'
 * own keys too. Returns a new RV_ERR_INVALID error. */
rv_err *rv_row_writer_key_err(const rv_ynode *node, const char *what, const char *key,
                              const char *msg);

/* File name extension without the dot: "json" or "csv". Static string. */
const char *rv_row_writer_ext(const rv_row_writer *w);

/* Appends the CSV header line of schema s if the writer writes one
 * (format csv and header true); otherwise appends nothing. */
void rv_row_writer_header(const rv_row_writer *w, const rv_schema *s, rv_buf *out);

/* Appends rows of b (borrowed) starting at `row`, one line each, and stops
 * after the first row that brings out->len to `limit` or more (so at least
 * one row is written when row < b->nrows), or at the end of the batch.
 * Returns the index of the first row not written (b->nrows when done).
 * Pass SIZE_MAX as limit to write the rest of the batch. Lines are always
 * whole: a caller that writes out between calls never splits a line. */
uint32_t rv_row_writer_rows(const rv_row_writer *w, const rv_batch *b, uint32_t row, size_t limit,
                            rv_buf *out);

#endif
