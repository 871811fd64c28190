/* rv_record: text record formats (JSON lines, CSV) to and from batch rows,
 * and timestamp text (epoch milliseconds, ISO-8601).
 *
 * Parsing appends one row to a batch of a declared schema and reports a
 * precise reason when a line does not fit (bad syntax, missing field,
 * wrong type); the row is then not appended (the batch is left exactly as
 * before). Formatting writes rows to a growing byte buffer. Used by the
 * file and socket sources and the stdout and file sinks. Not thread-safe
 * per object; distinct objects may be used on distinct threads. */
#ifndef RV_RECORD_H
#define RV_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rv_batch.h"

/* A growing byte buffer. */
typedef struct rv_buf {
    char *data;
    size_t len, cap;
} rv_buf;
void rv_buf_append(rv_buf *b, const void *p, size_t n);
void rv_buf_printf(rv_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void rv_buf_fini(rv_buf *b);

/* Timestamps. Accepts "2024-05-01T12:00:00Z", "2024-05-01T12:00:00.123Z",
 * "2024-05-01 12:00:00", offsets "+02:00"/"-0530"; no zone means UTC. */
bool rv_ts_parse_iso8601(const char *s, size_t len, int64_t *ms);
/* Writes "2024-05-01T12:00:00.123Z" (always milliseconds, always Z). */
void rv_ts_format_iso8601(int64_t ms, rv_buf *out);

typedef enum { RV_TS_EPOCH_MS, RV_TS_ISO8601 } rv_ts_format;

/* JSON lines. A line must be one JSON object. Fields of the schema are
 * looked up by name; fields missing from the object, or JSON null, are
 * null; extra members are ignored. Conversions: int64 accepts integers
 * (a float with no fraction too); float64 accepts any number; bool
 * true/false; string accepts strings (other scalars are an error);
 * timestamp accepts integer epoch ms or an ISO-8601 string. */
typedef struct rv_json_reader rv_json_reader;
rv_json_reader *rv_json_reader_new(rv_schema *schema);
void rv_json_reader_free(rv_json_reader *r);
/* Parses line[0..len) (no newline) and appends a row to b (schema must be
 * the reader's). Returns true, or false with a static-or-reader-owned
 * message in *reason valid until the next call. */
bool rv_json_parse_row(rv_json_reader *r, const char *line, size_t len, rv_batch *b, const char **reason);

/* Appends row `row` of b as one JSON object line (with '\n'). Nulls are
 * written as null; floats with up to 17 significant digits, NaN/inf as
 * null. */
void rv_json_format_row(const rv_batch *b, uint32_t row, rv_ts_format tsf, rv_buf *out);

/* CSV (RFC 4180: quotes, doubled quotes, separators inside quotes). The
 * header names the columns; schema fields are matched to header columns
 * by name (fields missing from the header are null). An empty unquoted
 * cell is null. */
typedef struct rv_csv_reader rv_csv_reader;
rv_csv_reader *rv_csv_reader_new(rv_schema *schema, char delimiter);
void rv_csv_reader_free(rv_csv_reader *r);
/* Reads the header line. False with *reason if it is not usable. */
bool rv_csv_set_header(rv_csv_reader *r, const char *line, size_t len, const char **reason);
bool rv_csv_parse_row(rv_csv_reader *r, const char *line, size_t len, rv_batch *b, const char **reason);
/* A CSV delimiter as written in a job file: one character other than a
 * quote, CR or LF, or `tab` / "\t" for a tab. False if unusable. */
bool rv_csv_delimiter_parse(const char *s, char *out);
/* Header line for a schema, and rows (quoting where needed). */
void rv_csv_format_header(const rv_schema *s, char delimiter, rv_buf *out);
void rv_csv_format_row(const rv_batch *b, uint32_t row, char delimiter, rv_ts_format tsf, rv_buf *out);

#endif
