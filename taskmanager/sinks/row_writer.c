/* row_writer: JSON-lines / CSV formatting options shared by the text sinks.
 * Validates the `format`/`delimiter`/`timestamp_format`/`header` keys once
 * and dispatches rows to the formatters of common/rv_record.h, so stdout
 * and file sinks write byte-identical text for the same options. */
#include "sinks/row_writer.h"

#include <assert.h>
#include <string.h>

const char *const rv_row_format_choices[] = {"json", "csv", NULL};
const char *const rv_row_ts_choices[] = {"epoch_ms", "iso8601", NULL};

/* The ENUM indexes are used as the enums directly. */
_Static_assert(RV_TS_EPOCH_MS == 0 && RV_TS_ISO8601 == 1, "rv_row_ts_choices order");

rv_err *rv_row_writer_key_err(const rv_ynode *node, const char *what, const char *key,
                              const char *msg)
{
    const rv_ynode *at = node ? rv_ymap_get(node, key) : NULL;
    if (!at)
        at = node;
    const char *sep = what ? ": " : "";
    what = what ? what : "";
    if (at)
        return rv_yerr(at, RV_ERR_INVALID, "%s%s%s: %s", what, sep, key, msg);
    return rv_err_new(RV_ERR_INVALID, "%s%s%s: %s", what, sep, key, msg);
}

rv_err *rv_row_writer_init(rv_row_writer *w, const rv_row_opts *o, const rv_ynode *node,
                           const char *what)
{
    assert(w && o);
    if (o->format != RV_ROW_JSON && o->format != RV_ROW_CSV)
        return rv_row_writer_key_err(node, what, "format", "must be json or csv");
    if (o->timestamp_format != RV_TS_EPOCH_MS && o->timestamp_format != RV_TS_ISO8601)
        return rv_row_writer_key_err(node, what, "timestamp_format", "must be epoch_ms or iso8601");

    char delim;
    if (!rv_csv_delimiter_parse(o->delimiter ? o->delimiter : ",", &delim))
        return rv_row_writer_key_err(node, what, "delimiter",
                       "must be one character other than a quote or line break (`tab` or \"\\t\" for a tab)");

    w->format = (rv_row_format)o->format;
    w->delim = delim;
    w->tsf = (rv_ts_format)o->timestamp_format;
    w->header = w->format == RV_ROW_CSV && o->header;
    return NULL;
}

const char *rv_row_writer_ext(const rv_row_writer *w)
{
    return w->format == RV_ROW_CSV ? "csv" : "json";
}

void rv_row_writer_header(const rv_row_writer *w, const rv_schema *s, rv_buf *out)
{
    if (w->header)
        rv_csv_format_header(s, w->delim, out);
}

uint32_t rv_row_writer_rows(const rv_row_writer *w, const rv_batch *b, uint32_t row, size_t limit,
                            rv_buf *out)
{
    /* The format is decided once per call, not per row. */
    if (w->format == RV_ROW_CSV) {
        while (row < b->nrows) {
            rv_csv_format_row(b, row++, w->delim, w->tsf, out);
            if (out->len >= limit)
                break;
        }
    } else {
        while (row < b->nrows) {
            rv_json_format_row(b, row++, w->tsf, out);
            if (out->len >= limit)
                break;
        }
    }
    return row;
}
