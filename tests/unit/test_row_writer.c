/* Unit tests of the sinks' row writer: exact JSON-lines and CSV text for
 * hand-built batches (nulls, escaping, quoting, ISO-8601 timestamps), the
 * chunking contract of rv_row_writer_rows(), option validation, and the
 * shared config keys parsed through rv_config_apply(). Every expected text
 * below is written out by hand. */
#include <criterion/criterion.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rv_config.h"
#include "rv_record.h"
#include "rv_yaml.h"
#include "sinks/row_writer.h"

/* Schema id:int64, name:string, score:float64, ok:bool, ts:timestamp. */
static rv_schema *test_schema(void)
{
    rv_schema *s = rv_schema_new();
    rv_schema_add(s, "id", RV_T_INT64);
    rv_schema_add(s, "name", RV_T_STRING);
    rv_schema_add(s, "score", RV_T_FLOAT64);
    rv_schema_add(s, "ok", RV_T_BOOL);
    rv_schema_add(s, "ts", RV_T_TIMESTAMP);
    return s;
}

typedef struct row {
    bool null_id, null_name, null_score, null_ok, null_ts;
    int64_t id;
    const char *name;
    double score;
    bool ok;
    int64_t ts;
} row;

static rv_batch *make_batch(const row *rows, uint32_t n)
{
    rv_schema *s = test_schema();
    rv_batch *b = rv_batch_new(s, n > 0 ? n : 1);
    rv_schema_unref(s);
    for (uint32_t r = 0; r < n; r++) {
        const row *x = &rows[r];
        if (x->null_id)
            rv_col_set_null(&b->cols[0], r);
        else
            rv_col_set_i64(&b->cols[0], r, x->id);
        if (x->null_name)
            rv_col_set_null(&b->cols[1], r);
        else
            rv_col_set_str(&b->cols[1], r, x->name, strlen(x->name));
        if (x->null_score)
            rv_col_set_null(&b->cols[2], r);
        else
            rv_col_set_f64(&b->cols[2], r, x->score);
        if (x->null_ok)
            rv_col_set_null(&b->cols[3], r);
        else
            rv_col_set_bool(&b->cols[3], r, x->ok);
        if (x->null_ts)
            rv_col_set_null(&b->cols[4], r);
        else
            rv_col_set_i64(&b->cols[4], r, x->ts);
    }
    b->nrows = n;
    return b;
}

/* Three rows: plain values; nulls in every column; strings needing
 * escaping. 1714564800123 = 2024-05-01T12:00:00.123Z. */
static const row sample[] = {
    {.id = 1, .name = "alice", .score = 1.5, .ok = true, .ts = 1714564800123},
    {.null_id = true, .null_name = true, .null_score = true, .null_ok = true, .null_ts = true},
    {.id = -7, .name = "say \"hi\", ok\\\nnext\tx", .score = 2.0, .ok = false, .ts = 0},
};

static rv_row_writer writer(int format, const char *delim, int tsf, bool header)
{
    rv_row_opts o = {.format = format, .delimiter = (char *)delim,
                     .timestamp_format = tsf, .header = header};
    rv_row_writer w;
    rv_err *err = rv_row_writer_init(&w, &o, NULL, "sink 'out'");
    cr_assert_null(err, "%s", err ? rv_err_msg(err) : "");
    return w;
}

/* Header (if any) and all rows of b as one string (caller frees). */
static char *render(const rv_row_writer *w, const rv_batch *b)
{
    rv_buf out = {0};
    rv_row_writer_header(w, b->schema, &out);
    uint32_t next = rv_row_writer_rows(w, b, 0, SIZE_MAX, &out);
    cr_assert_eq(next, b->nrows);
    char *s = strndup(out.data ? out.data : "", out.len);
    rv_buf_fini(&out);
    return s;
}

Test(rv_row_writer, json_rows_exact)
{
    rv_batch *b = make_batch(sample, 3);
    rv_row_writer w = writer(RV_ROW_JSON, ",", RV_TS_EPOCH_MS, true);
    char *got = render(&w, b);
    const char *want =
        "{\"id\":1,\"name\":\"alice\",\"score\":1.5,\"ok\":true,\"ts\":1714564800123}\n"
        "{\"id\":null,\"name\":null,\"score\":null,\"ok\":null,\"ts\":null}\n"
        "{\"id\":-7,\"name\":\"say \\\"hi\\\", ok\\\\\\nnext\\tx\",\"score\":2.0,\"ok\":false,"
        "\"ts\":0}\n";
    cr_assert_str_eq(got, want);
    free(got);
    rv_batch_unref(b);
}

Test(rv_row_writer, json_iso8601_timestamps)
{
    const row rows[] = {
        {.id = 1, .name = "a", .ts = 1714564800123},
        {.id = 2, .name = "b", .ts = 0},
        {.id = 3, .name = "c", .ts = -1},           /* one ms before the epoch */
        {.id = 4, .name = "d", .ts = 951782400000}, /* 2000-02-29, a leap day */
        {.id = 5, .name = "e", .null_ts = true},
    };
    rv_batch *b = make_batch(rows, 5);
    rv_row_writer w = writer(RV_ROW_JSON, ",", RV_TS_ISO8601, false);
    char *got = render(&w, b);
    const char *want =
        "{\"id\":1,\"name\":\"a\",\"score\":0.0,\"ok\":false,\"ts\":\"2024-05-01T12:00:00.123Z\"}\n"
        "{\"id\":2,\"name\":\"b\",\"score\":0.0,\"ok\":false,\"ts\":\"1970-01-01T00:00:00.000Z\"}\n"
        "{\"id\":3,\"name\":\"c\",\"score\":0.0,\"ok\":false,\"ts\":\"1969-12-31T23:59:59.999Z\"}\n"
        "{\"id\":4,\"name\":\"d\",\"score\":0.0,\"ok\":false,\"ts\":\"2000-02-29T00:00:00.000Z\"}\n"
        "{\"id\":5,\"name\":\"e\",\"score\":0.0,\"ok\":false,\"ts\":null}\n";
    cr_assert_str_eq(got, want);
    free(got);
    rv_batch_unref(b);
}

Test(rv_row_writer, json_ignores_header_option)
{
    rv_batch *b = make_batch(sample, 1);
    rv_row_writer w = writer(RV_ROW_JSON, ",", RV_TS_EPOCH_MS, true);
    cr_assert_not(w.header);
    rv_buf out = {0};
    rv_row_writer_header(&w, b->schema, &out);
    cr_assert_eq(out.len, 0);
    rv_buf_fini(&out);
    rv_batch_unref(b);
}

Test(rv_row_writer, csv_header_and_rows_exact)
{
    rv_batch *b = make_batch(sample, 3);
    rv_row_writer w = writer(RV_ROW_CSV, ",", RV_TS_EPOCH_MS, true);
    char *got = render(&w, b);
    const char *want = "id,name,score,ok,ts\n"
                       "1,alice,1.5,true,1714564800123\n"
                       ",,,,\n"
                       "-7,\"say \"\"hi\"\", ok\\\nnext\tx\",2.0,false,0\n";
    cr_assert_str_eq(got, want);
    free(got);
    rv_batch_unref(b);
}

Test(rv_row_writer, csv_empty_string_is_quoted_unlike_null)
{
    const row rows[] = {
        {.id = 1, .name = "", .score = 0.25, .ok = true, .ts = 5},
        {.id = 2, .null_name = true, .score = 0.25, .ok = true, .ts = 5},
    };
    rv_batch *b = make_batch(rows, 2);
    rv_row_writer w = writer(RV_ROW_CSV, ",", RV_TS_EPOCH_MS, false);
    char *got = render(&w, b);
    cr_assert_str_eq(got, "1,\"\",0.25,true,5\n2,,0.25,true,5\n");
    free(got);
    rv_batch_unref(b);
}

Test(rv_row_writer, csv_custom_delimiter_and_iso8601)
{
    const row rows[] = {
        {.id = 1, .name = "a,b", .score = 3.0, .ok = true, .ts = 1714564800123},
        {.id = 2, .name = "a;b", .score = -0.5, .ok = false, .ts = -1},
    };
    rv_batch *b = make_batch(rows, 2);
    rv_row_writer w = writer(RV_ROW_CSV, ";", RV_TS_ISO8601, true);
    char *got = render(&w, b);
    /* A comma needs no quotes with ';' as separator; a ';' does. */
    const char *want = "id;name;score;ok;ts\n"
                       "1;a,b;3.0;true;2024-05-01T12:00:00.123Z\n"
                       "2;\"a;b\";-0.5;false;1969-12-31T23:59:59.999Z\n";
    cr_assert_str_eq(got, want);
    free(got);
    rv_batch_unref(b);
}

Test(rv_row_writer, csv_without_header)
{
    rv_batch *b = make_batch(sample, 1);
    rv_row_writer w = writer(RV_ROW_CSV, ",", RV_TS_EPOCH_MS, false);
    char *got = render(&w, b);
    cr_assert_str_eq(got, "1,alice,1.5,true,1714564800123\n");
    free(got);
    rv_batch_unref(b);
}

Test(rv_row_writer, tab_delimiter_spellings)
{
    const char *spellings[] = {"tab", "\\t", "\t"};
    for (size_t i = 0; i < 3; i++) {
        rv_row_writer w = writer(RV_ROW_CSV, spellings[i], RV_TS_EPOCH_MS, true);
        cr_assert_eq(w.delim, '\t', "spelling %zu", i);
    }
    rv_row_writer w = writer(RV_ROW_CSV, NULL, RV_TS_EPOCH_MS, true);
    cr_assert_eq(w.delim, ',', "NULL delimiter means the default");
}

Test(rv_row_writer, rejects_unusable_delimiters)
{
    const char *bad[] = {"", "ab", ";;", "\"", "\n", "\r", "tabs"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        rv_row_opts o = {.format = RV_ROW_CSV, .delimiter = (char *)bad[i]};
        rv_row_writer w = {.format = RV_ROW_JSON, .delim = 'x'};
        rv_err *err = rv_row_writer_init(&w, &o, NULL, "sink 'out'");
        cr_assert_not_null(err, "delimiter #%zu accepted", i);
        cr_assert_eq(rv_err_code(err), RV_ERR_INVALID);
        cr_assert(strstr(rv_err_msg(err), "sink 'out': delimiter:") != NULL, "%s",
                  rv_err_msg(err));
        cr_assert_eq(w.delim, 'x', "out-parameter written on failure");
        rv_err_free(err);
    }
}

Test(rv_row_writer, error_without_what_names_only_the_key)
{
    rv_row_opts o = {.format = RV_ROW_CSV, .delimiter = "::"};
    rv_row_writer w;
    rv_err *err = rv_row_writer_init(&w, &o, NULL, NULL);
    cr_assert_not_null(err);
    cr_assert_str_eq(rv_err_msg(err),
                     "delimiter: must be one character other than a quote or line break (`tab` or \"\\t\" for a tab)");
    rv_err_free(err);
}

Test(rv_row_writer, key_err_positions_at_value_then_map)
{
    rv_ydoc *doc = NULL;
    const char *text = "id: out\nprefix: x/y\n";
    rv_err *err = rv_yaml_parse(text, strlen(text), "j.yaml", &doc);
    cr_assert_null(err);
    err = rv_row_writer_key_err(rv_ydoc_root(doc), "sink 'out'", "prefix", "bad");
    cr_assert_str_eq(rv_err_msg(err), "j.yaml:2:9: sink 'out': prefix: bad");
    rv_err_free(err);
    /* A key that is absent: the map's own position. */
    err = rv_row_writer_key_err(rv_ydoc_root(doc), "sink 'out'", "path", "required");
    cr_assert_str_eq(rv_err_msg(err), "j.yaml:1:1: sink 'out': path: required");
    rv_err_free(err);
    err = rv_row_writer_key_err(NULL, NULL, "path", "required");
    cr_assert_str_eq(rv_err_msg(err), "path: required");
    cr_assert_eq(rv_err_code(err), RV_ERR_INVALID);
    rv_err_free(err);
    rv_ydoc_free(doc);
}

Test(rv_row_writer, rejects_out_of_range_enums)
{
    rv_row_opts o = {.format = 2, .delimiter = ","};
    rv_row_writer w;
    rv_err *err = rv_row_writer_init(&w, &o, NULL, "sink 'out'");
    cr_assert_not_null(err);
    cr_assert(strstr(rv_err_msg(err), "format") != NULL);
    rv_err_free(err);
    o.format = RV_ROW_JSON;
    o.timestamp_format = 7;
    err = rv_row_writer_init(&w, &o, NULL, "sink 'out'");
    cr_assert_not_null(err);
    cr_assert(strstr(rv_err_msg(err), "timestamp_format") != NULL);
    rv_err_free(err);
}

Test(rv_row_writer, ext_follows_format)
{
    rv_row_writer j = writer(RV_ROW_JSON, ",", RV_TS_EPOCH_MS, true);
    rv_row_writer c = writer(RV_ROW_CSV, ",", RV_TS_EPOCH_MS, true);
    cr_assert_str_eq(rv_row_writer_ext(&j), "json");
    cr_assert_str_eq(rv_row_writer_ext(&c), "csv");
}

Test(rv_row_writer, rows_stop_after_limit_on_whole_lines)
{
    const row rows[] = {
        {.id = 10, .name = "x", .ts = 1}, {.id = 20, .name = "y", .ts = 2},
        {.id = 30, .name = "z", .ts = 3},
    };
    rv_batch *b = make_batch(rows, 3);
    rv_row_writer w = writer(RV_ROW_CSV, ",", RV_TS_EPOCH_MS, false);
    rv_buf out = {0};
    /* Each line is 17 bytes ("10,x,0.0,false,1\n"): a limit of 20 is
     * crossed by the second row, so two rows are written. */
    uint32_t next = rv_row_writer_rows(&w, b, 0, 20, &out);
    cr_assert_eq(next, 2);
    cr_assert_str_eq(out.data, "10,x,0.0,false,1\n20,y,0.0,false,2\n");
    /* A limit already reached still writes one row (progress). */
    next = rv_row_writer_rows(&w, b, next, 1, &out);
    cr_assert_eq(next, 3);
    cr_assert_str_eq(out.data + 34, "30,z,0.0,false,3\n");
    /* Past the end: nothing. */
    size_t len = out.len;
    cr_assert_eq(rv_row_writer_rows(&w, b, 3, 1, &out), 3);
    cr_assert_eq(out.len, len);
    rv_buf_fini(&out);
    rv_batch_unref(b);
}

Test(rv_row_writer, chunked_output_equals_one_pass)
{
    enum { N = 1000 };
    row *rows = calloc(N, sizeof(row));
    char (*names)[16] = calloc(N, 16);
    for (int i = 0; i < N; i++) {
        snprintf(names[i], 16, "n\"%d,", i);
        rows[i] = (row){.id = i, .name = names[i], .score = i / 4.0, .ok = i % 2,
                        .ts = 1000LL * i, .null_score = i % 7 == 0};
    }
    rv_batch *b = make_batch(rows, N);
    for (int f = 0; f < 2; f++) {
        rv_row_writer w = writer(f, ",", RV_TS_ISO8601, false);
        char *whole = render(&w, b);
        rv_buf acc = {0}, chunk = {0};
        uint32_t row = 0;
        int calls = 0;
        while (row < b->nrows) {
            row = rv_row_writer_rows(&w, b, row, 500, &chunk);
            cr_assert(chunk.len >= 500 || row == b->nrows);
            rv_buf_append(&acc, chunk.data, chunk.len);
            chunk.len = 0;
            calls++;
        }
        cr_assert_gt(calls, 10);
        cr_assert_eq(acc.len, strlen(whole));
        cr_assert(memcmp(acc.data, whole, acc.len) == 0);
        rv_buf_fini(&acc);
        rv_buf_fini(&chunk);
        free(whole);
    }
    rv_batch_unref(b);
    free(rows);
    free(names);
}

/* ---- the shared config keys, through rv_config_apply ---- */

typedef struct cfg {
    int64_t other;
    rv_row_opts fmt;
} cfg;

static const rv_cfg_key keys[] = {
    RV_ROW_OPTS_KEYS(cfg, fmt, "test header doc"),
};

static rv_err *apply_yaml(const char *text, cfg *c, rv_ydoc **doc)
{
    rv_err *err = rv_yaml_parse(text, strlen(text), "job.yaml", doc);
    cr_assert_null(err, "%s", err ? rv_err_msg(err) : "");
    return rv_config_apply(keys, sizeof(keys) / sizeof(keys[0]), rv_ydoc_root(*doc), NULL,
                           "sink 'out'", c);
}

Test(rv_row_writer, config_defaults)
{
    cfg c;
    memset(&c, 0, sizeof(c));
    rv_err *err = rv_config_apply(keys, 4, NULL, NULL, "sink 'out'", &c);
    cr_assert_null(err, "%s", err ? rv_err_msg(err) : "");
    cr_assert_eq(c.fmt.format, RV_ROW_JSON);
    cr_assert_str_eq(c.fmt.delimiter, ",");
    cr_assert_eq(c.fmt.timestamp_format, RV_TS_EPOCH_MS);
    cr_assert(c.fmt.header);
    rv_config_free(keys, 4, &c);
}

Test(rv_row_writer, config_all_keys)
{
    cfg c;
    memset(&c, 0, sizeof(c));
    rv_ydoc *doc = NULL;
    rv_err *err = apply_yaml("format: csv\ndelimiter: '|'\ntimestamp_format: iso8601\n"
                             "header: false\n",
                             &c, &doc);
    cr_assert_null(err, "%s", err ? rv_err_msg(err) : "");
    rv_row_writer w;
    err = rv_row_writer_init(&w, &c.fmt, rv_ydoc_root(doc), "sink 'out'");
    cr_assert_null(err);
    cr_assert_eq(w.format, RV_ROW_CSV);
    cr_assert_eq(w.delim, '|');
    cr_assert_eq(w.tsf, RV_TS_ISO8601);
    cr_assert_not(w.header);
    rv_config_free(keys, 4, &c);
    rv_ydoc_free(doc);
}

Test(rv_row_writer, config_bad_delimiter_error_is_positioned)
{
    cfg c;
    memset(&c, 0, sizeof(c));
    rv_ydoc *doc = NULL;
    rv_err *err = apply_yaml("format: csv\ndelimiter: ab\n", &c, &doc);
    cr_assert_null(err, "%s", err ? rv_err_msg(err) : "");
    rv_row_writer w;
    err = rv_row_writer_init(&w, &c.fmt, rv_ydoc_root(doc), "sink 'out'");
    cr_assert_not_null(err);
    /* The value `ab` is at line 2, column 12. */
    cr_assert(strncmp(rv_err_msg(err), "job.yaml:2:12: sink 'out': delimiter:", 37) == 0, "%s",
              rv_err_msg(err));
    rv_err_free(err);
    rv_config_free(keys, 4, &c);
    rv_ydoc_free(doc);
}

Test(rv_row_writer, config_unknown_format_rejected)
{
    cfg c;
    memset(&c, 0, sizeof(c));
    rv_ydoc *doc = NULL;
    rv_err *err = apply_yaml("format: xml\n", &c, &doc);
    cr_assert_not_null(err);
    cr_assert(strstr(rv_err_msg(err), "job.yaml:1:") != NULL, "%s", rv_err_msg(err));
    rv_err_free(err);
    rv_config_free(keys, 4, &c);
    rv_ydoc_free(doc);
}
