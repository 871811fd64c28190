/* Unit tests of rv_record: the byte buffer, ISO-8601 timestamps, and the
 * JSON-lines and CSV readers and writers. Expected values are hand-computed
 * (timestamps cross-checked with Python's datetime) or come from a simple
 * reference implementation in this file. */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rv_batch.h"
#include "rv_record.h"

/* ---- helpers ---- */

enum { F_B, F_I, F_F, F_S, F_TS };

static rv_schema *schema5(void)
{
    rv_schema *s = rv_schema_new();
    rv_schema_add(s, "b", RV_T_BOOL);
    rv_schema_add(s, "i", RV_T_INT64);
    rv_schema_add(s, "f", RV_T_FLOAT64);
    rv_schema_add(s, "s", RV_T_STRING);
    rv_schema_add(s, "ts", RV_T_TIMESTAMP);
    return s;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15u;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static bool str_is(const rv_batch *b, int col, uint32_t row, const char *p, size_t n)
{
    uint32_t len;
    const char *s = rv_col_str(&b->cols[col], row, &len);
    return !rv_col_is_null(&b->cols[col], row) && len == n && (n == 0 || memcmp(s, p, n) == 0);
}

/* Parses one line into a fresh batch of schema5; returns the reason or NULL. */
static const char *json1(const char *line, rv_batch **out)
{
    static char reason[400];
    rv_schema *s = schema5();
    rv_json_reader *r = rv_json_reader_new(s);
    rv_batch *b = rv_batch_new(s, 4);
    const char *why = NULL;
    bool ok = rv_json_parse_row(r, line, strlen(line), b, &why);
    const char *ret = NULL;
    if (!ok) {
        snprintf(reason, sizeof(reason), "%s", why);
        ret = reason;
        cr_assert_eq(b->nrows, 0);
    } else {
        cr_assert_eq(b->nrows, 1);
    }
    rv_json_reader_free(r);
    rv_schema_unref(s);
    if (out)
        *out = b;
    else
        rv_batch_unref(b);
    return ret;
}

static void json_err(const char *line, const char *want)
{
    const char *got = json1(line, NULL);
    cr_assert_not_null(got, "line %s was accepted", line);
    cr_assert_str_eq(got, want, "line %s", line);
}

/* Value-equality of two batches (floats bitwise). */
static void assert_batches_equal(const rv_batch *a, const rv_batch *b)
{
    cr_assert(rv_schema_equal(a->schema, b->schema));
    cr_assert_eq(a->nrows, b->nrows);
    for (int i = 0; i < a->schema->nfields; i++) {
        for (uint32_t r = 0; r < a->nrows; r++) {
            rv_value x = rv_col_get_value(&a->cols[i], r), y = rv_col_get_value(&b->cols[i], r);
            cr_assert_eq(x.is_null, y.is_null, "col %d row %u", i, r);
            if (x.is_null)
                continue;
            switch (x.type) {
            case RV_T_BOOL: cr_assert_eq(x.v.b, y.v.b); break;
            case RV_T_INT64:
            case RV_T_TIMESTAMP: cr_assert_eq(x.v.i, y.v.i, "col %d row %u", i, r); break;
            case RV_T_FLOAT64: cr_assert(memcmp(&x.v.f, &y.v.f, 8) == 0, "col %d row %u: %.17g vs %.17g", i, r, x.v.f, y.v.f); break;
            case RV_T_STRING:
                cr_assert_eq(x.v.s.len, y.v.s.len, "col %d row %u", i, r);
                cr_assert(x.v.s.len == 0 || memcmp(x.v.s.ptr, y.v.s.ptr, x.v.s.len) == 0);
                break;
            case RV_T_NULL: break;
            }
        }
    }
}

/* ---- rv_buf ---- */

Test(rv_buf, append_grows_and_terminates)
{
    rv_buf b = {0};
    char expect[5000];
    for (int i = 0; i < 1000; i++) {
        rv_buf_append(&b, "abcde", 5);
        memcpy(expect + 5 * i, "abcde", 5);
    }
    cr_assert_eq(b.len, 5000);
    cr_assert(b.cap > b.len);
    cr_assert(memcmp(b.data, expect, 5000) == 0);
    cr_assert_eq(b.data[b.len], '\0');
    rv_buf_fini(&b);
    cr_assert_null(b.data);
    cr_assert_eq(b.len, 0);
    rv_buf_fini(NULL);
}

Test(rv_buf, printf_longer_than_free_space)
{
    rv_buf b = {0};
    rv_buf_printf(&b, "%d-%s", 42, "x");
    char big[3000];
    memset(big, 'q', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    rv_buf_printf(&b, "[%s]", big);
    cr_assert_eq(b.len, 4 + 3001);
    cr_assert(strncmp(b.data, "42-x[qqq", 8) == 0);
    cr_assert_eq(b.data[b.len - 1], ']');
    cr_assert_eq(strlen(b.data), b.len);
    rv_buf_fini(&b);
}

/* ---- timestamps ---- */

static int64_t ts(const char *s)
{
    int64_t ms = 12345;
    cr_assert(rv_ts_parse_iso8601(s, strlen(s), &ms), "rejected %s", s);
    return ms;
}

static void ts_bad(const char *s)
{
    int64_t ms = 777;
    cr_assert_not(rv_ts_parse_iso8601(s, strlen(s), &ms), "accepted %s", s);
    cr_assert_eq(ms, 777, "out-parameter written on failure");
}

static char *ts_fmt(int64_t ms, char *buf)
{
    rv_buf b = {0};
    rv_ts_format_iso8601(ms, &b);
    strcpy(buf, b.data);
    rv_buf_fini(&b);
    return buf;
}

Test(rv_ts, parse_known_values)
{
    cr_assert_eq(ts("1970-01-01T00:00:00Z"), 0);
    cr_assert_eq(ts("2024-02-29T12:34:56.789Z"), INT64_C(1709210096789));
    cr_assert_eq(ts("1969-12-31T23:59:59.999Z"), -1);
    cr_assert_eq(ts("2024-05-01T12:00:00Z"), INT64_C(1714564800000));
    cr_assert_eq(ts("0001-01-01T00:00:00Z"), INT64_C(-62135596800000));
    cr_assert_eq(ts("9999-12-31T23:59:59.999Z"), INT64_C(253402300799999));
    cr_assert_eq(ts("1900-03-01T00:00:00Z"), INT64_C(-2203891200000));
    cr_assert_eq(ts("1600-02-29T23:59:59.000Z"), INT64_C(-11670912001000));
    cr_assert_eq(ts("2000-02-29"), INT64_C(951782400000));
}

Test(rv_ts, parse_variants_of_the_same_instant)
{
    const int64_t noon = INT64_C(1714564800000); /* 2024-05-01T12:00:00Z */
    cr_assert_eq(ts("2024-05-01T12:00:00"), noon);
    cr_assert_eq(ts("2024-05-01 12:00:00"), noon);
    cr_assert_eq(ts("2024-05-01t12:00:00z"), noon);
    cr_assert_eq(ts("2024-05-01T12:00"), noon);
    cr_assert_eq(ts("2024-05-01T14:00:00+02:00"), noon);
    cr_assert_eq(ts("2024-05-01T14:00:00+0200"), noon);
    cr_assert_eq(ts("2024-05-01T14:00:00+02"), noon);
    cr_assert_eq(ts("2024-05-01T06:30:00-0530"), noon);
    cr_assert_eq(ts("2024-05-01T06:30:00.000-05:30"), noon);
    cr_assert_eq(ts("2024-05-02T01:45:00+13:45"), noon);
}

Test(rv_ts, parse_fraction_truncates_to_ms)
{
    const int64_t noon = INT64_C(1714564800000);
    cr_assert_eq(ts("2024-05-01T12:00:00.1Z"), noon + 100);
    cr_assert_eq(ts("2024-05-01T12:00:00.12Z"), noon + 120);
    cr_assert_eq(ts("2024-05-01T12:00:00,5Z"), noon + 500);
    cr_assert_eq(ts("2024-05-01T12:00:00.123456789Z"), noon + 123);
    cr_assert_eq(ts("2024-05-01T12:00:00.999999999"), noon + 999);
    /* Before 1970 the fraction still counts forwards from the second. */
    cr_assert_eq(ts("1969-12-31T23:59:59.5Z"), -500);
}

Test(rv_ts, parse_rejects_invalid)
{
    const char *bad[] = {
        "", "yesterday", "2024", "2024-05", "2024-5-01", "2024-05-1", "0000-01-01T00:00:00Z",
        "2023-02-29T00:00:00Z", "1900-02-29", "2024-13-01", "2024-00-10", "2024-04-31", "2024-01-00",
        "2024-01-01T24:00:00Z", "2024-01-01T23:60:00Z", "2024-01-01T23:59:60Z", "2024-01-01T1:00:00Z",
        "2024-01-01T10", "2024-01-01T10:", "2024-01-01T10:00:", "2024-01-01T10:00:00.Z",
        "2024-01-01T10:00:00.1234567890Z", "2024-01-01T10:00:00Zx", "2024-01-01T10:00:00+2:00",
        "2024-01-01T10:00:00+24:00", "2024-01-01T10:00:00+05:60", "2024-01-01T10:00:00+05:",
        "2024-01-01T10:00:00+05:3", " 2024-01-01", "2024-01-01 ", "2024-01-01X10:00:00",
        "2024-01-01Z", "+2024-01-01", "2024/01/01",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ts_bad(bad[i]);
    /* The length bounds the text: a valid prefix of a longer buffer. */
    int64_t ms;
    cr_assert(rv_ts_parse_iso8601("2000-02-29T99", 10, &ms));
    cr_assert_eq(ms, INT64_C(951782400000));
    cr_assert_not(rv_ts_parse_iso8601("2000-02-29", 9, &ms));
}

Test(rv_ts, format_known_values)
{
    char buf[64];
    cr_assert_str_eq(ts_fmt(0, buf), "1970-01-01T00:00:00.000Z");
    cr_assert_str_eq(ts_fmt(-1, buf), "1969-12-31T23:59:59.999Z");
    cr_assert_str_eq(ts_fmt(INT64_C(1709210096789), buf), "2024-02-29T12:34:56.789Z");
    cr_assert_str_eq(ts_fmt(INT64_C(-62135596800000), buf), "0001-01-01T00:00:00.000Z");
    cr_assert_str_eq(ts_fmt(INT64_C(253402300799999), buf), "9999-12-31T23:59:59.999Z");
    cr_assert_str_eq(ts_fmt(INT64_C(-11670912001000), buf), "1600-02-29T23:59:59.000Z");
    /* Outside 0001..9999: expanded years (same as java.time.Instant). */
    cr_assert_str_eq(ts_fmt(INT64_MAX, buf), "+292278994-08-17T07:12:55.807Z");
    cr_assert_str_eq(ts_fmt(INT64_MIN, buf), "-292275055-05-16T16:47:04.192Z");
    cr_assert_str_eq(ts_fmt(INT64_C(253402300800000), buf), "+10000-01-01T00:00:00.000Z");
}

/* Reference: days from 0001-01-01 counted by whole years and months. */
static int64_t ref_days(int y, int m, int d)
{
    static const int cum[12] = {0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334};
    int64_t yy = y - 1;
    int64_t days = 365 * yy + yy / 4 - yy / 100 + yy / 400 + cum[m - 1] + d - 1;
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (leap && m > 2)
        days++;
    return days - 719162; /* 1970-01-01 */
}

Test(rv_ts, random_instants_match_reference_and_round_trip)
{
    static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    for (int k = 0; k < 20000; k++) {
        int y = 1 + (int)(rnd() % 9999), m = 1 + (int)(rnd() % 12);
        bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        int d = 1 + (int)(rnd() % (uint64_t)(dim[m - 1] + (m == 2 && leap)));
        int h = (int)(rnd() % 24), mi = (int)(rnd() % 60), s = (int)(rnd() % 60), ms = (int)(rnd() % 1000);
        char text[64], back[64];
        snprintf(text, sizeof(text), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", y, m, d, h, mi, s, ms);
        int64_t want = ref_days(y, m, d) * 86400000 + ((int64_t)h * 3600 + mi * 60 + s) * 1000 + ms;
        cr_assert_eq(ts(text), want, "%s", text);
        cr_assert_str_eq(ts_fmt(want, back), text);
    }
}

/* ---- JSON reader ---- */

Test(rv_json, parse_every_type)
{
    rv_batch *b;
    cr_assert_null(json1("{\"b\":true,\"i\":-42,\"f\":1.5e3,\"s\":\"hi\",\"ts\":1700000000000}", &b));
    cr_assert_eq(b->cols[F_B].d.b[0], 1);
    cr_assert_eq(b->cols[F_I].d.i64[0], -42);
    cr_assert_eq(b->cols[F_F].d.f64[0], 1500.0);
    cr_assert(str_is(b, F_S, 0, "hi", 2));
    cr_assert_eq(b->cols[F_TS].d.i64[0], INT64_C(1700000000000));
    for (int i = 0; i < 5; i++)
        cr_assert_not(rv_col_is_null(&b->cols[i], 0));
    rv_batch_unref(b);

    cr_assert_null(json1("{\"b\":false,\"f\":-0.25,\"ts\":\"2024-02-29T12:34:56.789Z\",\"i\":0}", &b));
    cr_assert_eq(b->cols[F_B].d.b[0], 0);
    cr_assert_eq(b->cols[F_F].d.f64[0], -0.25);
    cr_assert_eq(b->cols[F_TS].d.i64[0], INT64_C(1709210096789));
    cr_assert_eq(b->cols[F_I].d.i64[0], 0);
    cr_assert(rv_col_is_null(&b->cols[F_S], 0));
    rv_batch_unref(b);
}

Test(rv_json, missing_and_null_members_are_null)
{
    rv_batch *b;
    cr_assert_null(json1("{\"i\":null,\"s\":null}", &b));
    for (int i = 0; i < 5; i++)
        cr_assert(rv_col_is_null(&b->cols[i], 0), "field %d", i);
    rv_batch_unref(b);
    cr_assert_null(json1("{}", &b));
    for (int i = 0; i < 5; i++)
        cr_assert(rv_col_is_null(&b->cols[i], 0));
    rv_batch_unref(b);
    cr_assert_null(json1("  \t{ }  ", NULL));
}

Test(rv_json, extra_members_of_any_shape_are_skipped)
{
    rv_batch *b;
    const char *line = "{\"x\":{\"a\":[1,{\"b\":\"}\"}],\"c\":null,\"d\":{}},\"i\":5,"
                       "\"y\":[[],{},[true,false,null,-1.5e-3,\"]\\\"\"]],\"z\":\"\\\"}\","
                       "\"w\":-0,\"v\":\"\\ud83d\\ude00\",\"s\":\"ok\"}";
    cr_assert_null(json1(line, &b));
    cr_assert_eq(b->cols[F_I].d.i64[0], 5);
    cr_assert(str_is(b, F_S, 0, "ok", 2));
    rv_batch_unref(b);
}

Test(rv_json, whitespace_everywhere)
{
    rv_batch *b;
    cr_assert_null(json1(" \t{ \"i\" :\n1 ,\r\"b\"\t: false , \"s\" : \"a b\" }\r\n", &b));
    cr_assert_eq(b->cols[F_I].d.i64[0], 1);
    cr_assert_eq(b->cols[F_B].d.b[0], 0);
    cr_assert(str_is(b, F_S, 0, "a b", 3));
    rv_batch_unref(b);
}

Test(rv_json, string_escapes_decode_to_utf8)
{
    rv_batch *b;
    cr_assert_null(json1("{\"s\":\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t|\\u00e9\\u20AC\\ud83d\\ude00\\u0000z\"}", &b));
    const char want[] = "a\"b\\c/d\b\f\n\r\t|\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\0z";
    cr_assert(str_is(b, F_S, 0, want, sizeof(want) - 1));
    rv_batch_unref(b);
    /* Raw UTF-8 passes through. */
    cr_assert_null(json1("{\"s\":\"caf\xC3\xA9\"}", &b));
    cr_assert(str_is(b, F_S, 0, "caf\xC3\xA9", 5));
    rv_batch_unref(b);
    /* Escaped member names are matched after decoding. */
    cr_assert_null(json1("{\"\\u0069\":7,\"t\\u0073\":3}", &b));
    cr_assert_eq(b->cols[F_I].d.i64[0], 7);
    cr_assert_eq(b->cols[F_TS].d.i64[0], 3);
    rv_batch_unref(b);
}

Test(rv_json, duplicate_member_last_wins)
{
    rv_batch *b;
    cr_assert_null(json1("{\"i\":1,\"s\":\"a\\n\",\"i\":2,\"s\":\"b\",\"f\":1,\"f\":null}", &b));
    cr_assert_eq(b->cols[F_I].d.i64[0], 2);
    cr_assert(str_is(b, F_S, 0, "b", 1));
    cr_assert(rv_col_is_null(&b->cols[F_F], 0));
    cr_assert_eq(b->cols[F_S].data_len, 1);
    rv_batch_unref(b);
}

Test(rv_json, integer_limits_and_integral_floats)
{
    rv_batch *b;
    cr_assert_null(json1("{\"i\":9223372036854775807,\"ts\":-9223372036854775808}", &b));
    cr_assert_eq(b->cols[F_I].d.i64[0], INT64_MAX);
    cr_assert_eq(b->cols[F_TS].d.i64[0], INT64_MIN);
    rv_batch_unref(b);
    cr_assert_null(json1("{\"i\":2.0,\"ts\":1.7e12}", &b));
    cr_assert_eq(b->cols[F_I].d.i64[0], 2);
    cr_assert_eq(b->cols[F_TS].d.i64[0], INT64_C(1700000000000));
    rv_batch_unref(b);
    cr_assert_null(json1("{\"i\":-1E3}", &b));
    cr_assert_eq(b->cols[F_I].d.i64[0], -1000);
    rv_batch_unref(b);
    json_err("{\"i\":9223372036854775808}", "field 'i': number 9223372036854775808 out of range for int64");
    json_err("{\"i\":-9223372036854775809}", "field 'i': number -9223372036854775809 out of range for int64");
    json_err("{\"i\":9.3e18}", "field 'i': number 9.3e18 out of range for int64");
    json_err("{\"i\":2.5}", "field 'i': expected int64, got non-integer number 2.5");
    json_err("{\"ts\":1.5}", "field 'ts': expected timestamp, got non-integer number 1.5");
}

Test(rv_json, floats_parse_exactly)
{
    rv_batch *b;
    cr_assert_null(json1("{\"f\":0.1}", &b));
    cr_assert_eq(b->cols[F_F].d.f64[0], 0.1);
    rv_batch_unref(b);
    cr_assert_null(json1("{\"f\":12345678901234567890}", &b));
    cr_assert_eq(b->cols[F_F].d.f64[0], 12345678901234567890.0);
    rv_batch_unref(b);
    cr_assert_null(json1("{\"f\":-7}", &b));
    cr_assert_eq(b->cols[F_F].d.f64[0], -7.0);
    rv_batch_unref(b);
    cr_assert_null(json1("{\"f\":4.9e-324}", &b));
    cr_assert_eq(b->cols[F_F].d.f64[0], 4.9e-324);
    rv_batch_unref(b);
    /* Numbers longer than any on-stack copy. */
    char line[600];
    int n = snprintf(line, sizeof(line), "{\"f\":0.25");
    for (int i = 0; i < 500; i++)
        line[n++] = '0';
    strcpy(line + n, "}");
    cr_assert_null(json1(line, &b));
    cr_assert_eq(b->cols[F_F].d.f64[0], 0.25);
    rv_batch_unref(b);
    n = snprintf(line, sizeof(line), "{\"f\":0.");
    for (int i = 0; i < 300; i++)
        line[n++] = '0';
    strcpy(line + n, "1}");
    cr_assert_null(json1(line, &b));
    cr_assert_eq(b->cols[F_F].d.f64[0], 1e-301);
    rv_batch_unref(b);
    json_err("{\"f\":1e999}", "field 'f': number 1e999 out of range for float64");
}

Test(rv_json, syntax_error_reasons)
{
    json_err("[1]", "line is not a JSON object");
    json_err("", "line is not a JSON object");
    json_err("   ", "line is not a JSON object");
    json_err("42", "line is not a JSON object");
    json_err("\"x\"", "line is not a JSON object");
    json_err("{\"i\" 1}", "invalid JSON at byte 5: expected ':'");
    json_err("{\"latency_ms\"  , 5}", "invalid JSON at byte 15: expected ':'");
    json_err("{\"i\":1 \"b\":true}", "invalid JSON at byte 7: expected ',' or '}'");
    json_err("{\"i\":}", "invalid JSON at byte 5: expected value");
    json_err("{,}", "invalid JSON at byte 1: expected member name or '}'");
    json_err("{\"i\":1,}", "invalid JSON at byte 7: expected member name");
    json_err("{\"i\":1", "invalid JSON at byte 6: unexpected end of line");
    json_err("{\"i\":", "invalid JSON at byte 5: unexpected end of line");
    json_err("{", "invalid JSON at byte 1: unexpected end of line");
    json_err("{\"s\":\"abc", "invalid JSON at byte 5: unterminated string");
    json_err("{\"s\":\"a\\", "invalid JSON at byte 7: unterminated string");
    json_err("{\"s\":\"a\\qb\"}", "invalid JSON at byte 7: invalid escape sequence");
    json_err("{\"s\":\"\\u12G4\"}", "invalid JSON at byte 6: invalid \\u escape");
    json_err("{\"s\":\"\\u12\"}", "invalid JSON at byte 6: invalid \\u escape");
    json_err("{\"s\":\"\\ud83d\"}", "invalid JSON at byte 6: unpaired surrogate in \\u escape");
    json_err("{\"s\":\"\\ud83d\\u0041\"}", "invalid JSON at byte 6: unpaired surrogate in \\u escape");
    json_err("{\"s\":\"\\ude00\"}", "invalid JSON at byte 6: unpaired surrogate in \\u escape");
    json_err("{\"s\":\"a\tb\"}", "invalid JSON at byte 7: control character in string");
    json_err("{\"i\":01}", "invalid JSON at byte 6: expected ',' or '}'");
    json_err("{\"i\":-}", "invalid JSON at byte 6: invalid number");
    json_err("{\"i\":1.}", "invalid JSON at byte 7: invalid number");
    json_err("{\"i\":1e}", "invalid JSON at byte 7: invalid number");
    json_err("{\"i\":+1}", "invalid JSON at byte 5: expected value");
    json_err("{\"b\":tru}", "invalid JSON at byte 5: expected value");
    json_err("{\"b\":tru", "invalid JSON at byte 8: unexpected end of line");
    json_err("{\"b\":nul}", "invalid JSON at byte 5: expected value");
    json_err("{\"x\":[1,2}", "invalid JSON at byte 9: expected ',' or ']'");
    json_err("{\"x\":{\"a\" 1}}", "invalid JSON at byte 10: expected ':'");
    json_err("{\"x\":{1:2}}", "invalid JSON at byte 6: expected member name");
    json_err("{\"x\":'a'}", "invalid JSON at byte 5: expected value");
    json_err("{\"i\":1} x", "invalid JSON at byte 8: unexpected data after the object");
    json_err("{\"i\":1}{}", "invalid JSON at byte 7: unexpected data after the object");
}

Test(rv_json, nesting_is_bounded)
{
    char line[1000];
    int n = snprintf(line, sizeof(line), "{\"x\":");
    for (int i = 0; i < 300; i++)
        line[n++] = '[';
    line[n] = '\0';
    json_err(line, "invalid JSON at byte 132: nesting too deep");
    /* 100 levels are fine. */
    n = snprintf(line, sizeof(line), "{\"x\":");
    for (int i = 0; i < 100; i++)
        line[n++] = '[';
    for (int i = 0; i < 100; i++)
        line[n++] = ']';
    strcpy(line + n, ",\"i\":3}");
    cr_assert_null(json1(line, NULL));
}

Test(rv_json, type_error_reasons)
{
    json_err("{\"i\":\"5\"}", "field 'i': expected int64, got string");
    json_err("{\"b\":1}", "field 'b': expected bool, got number");
    json_err("{\"b\":\"true\"}", "field 'b': expected bool, got string");
    json_err("{\"s\":1}", "field 's': expected string, got number");
    json_err("{\"s\":true}", "field 's': expected string, got bool");
    json_err("{\"i\":{}}", "field 'i': expected int64, got object");
    json_err("{\"f\":[1]}", "field 'f': expected float64, got array");
    json_err("{\"ts\":false}", "field 'ts': expected timestamp, got bool");
    json_err("{\"ts\":\"yesterday\"}", "field 'ts': invalid timestamp 'yesterday'");
    json_err("{\"ts\":\"2024-02-30T00:00:00Z\"}", "field 'ts': invalid timestamp '2024-02-30T00:00:00Z'");
    json_err("{\"ts\":\"a\\nb\"}", "field 'ts': invalid timestamp 'a?b'");
    json_err("{\"ts\":\"0123456789012345678901234567890123456789XYZ\"}",
             "field 'ts': invalid timestamp '0123456789012345678901234567890123456789...'");
    /* A type error is reported even if the line is broken further on. */
    json_err("{\"i\":true,", "field 'i': expected int64, got bool");
}

Test(rv_json, timestamp_strings_may_hold_epoch_ms)
{
    rv_batch *b;
    cr_assert_null(json1("{\"ts\":\"-1\"}", &b));
    cr_assert_eq(b->cols[F_TS].d.i64[0], -1);
    rv_batch_unref(b);
}

/* A rejected line must leave the batch byte-for-byte as it was. */
Test(rv_json, failed_line_leaves_batch_unchanged)
{
    rv_schema *s = schema5();
    rv_json_reader *r = rv_json_reader_new(s);
    rv_batch *b = rv_batch_new(s, 1);
    const char *why;
    const char *good = "{\"s\":\"abc\",\"i\":1,\"b\":true,\"f\":0.5,\"ts\":9}";
    cr_assert(rv_json_parse_row(r, good, strlen(good), b, &why));
    const char *bad[] = {
        "{\"s\":\"zzzzzz\",\"i\":\"x\"}", "{\"s\":\"zz\\nzz\",\"b\":null,\"i\":1", "{\"b\":null,\"s\":\"q\",\"f\":[}",
    };
    for (size_t k = 0; k < 3; k++) {
        cr_assert_not(rv_json_parse_row(r, bad[k], strlen(bad[k]), b, &why));
        cr_assert_eq(b->nrows, 1);
        cr_assert_eq(b->cols[F_S].data_len, 3);
        cr_assert_eq(b->cols[F_S].offsets[1], 3);
        cr_assert_not(b->cols[F_B].has_nulls, "null map enabled by a rejected line");
        cr_assert(str_is(b, F_S, 0, "abc", 3));
        cr_assert_eq(b->cap, 1);
    }
    const char *next = "{\"s\":\"de\",\"i\":2}";
    cr_assert(rv_json_parse_row(r, next, strlen(next), b, &why));
    cr_assert_eq(b->nrows, 2);
    cr_assert(str_is(b, F_S, 1, "de", 2));
    cr_assert_eq(b->cols[F_I].d.i64[1], 2);
    rv_batch_unref(b);
    rv_json_reader_free(r);
    rv_schema_unref(s);
}

Test(rv_json, many_rows_grow_the_batch)
{
    rv_schema *s = schema5();
    rv_json_reader *r = rv_json_reader_new(s);
    rv_batch *b = rv_batch_new(s, 2);
    const char *why;
    char line[128];
    for (int k = 0; k < 5000; k++) {
        int n = snprintf(line, sizeof(line), "{\"i\":%d,\"s\":\"r%d\",\"b\":%s}", k * 3, k, k % 2 ? "true" : "null");
        cr_assert(rv_json_parse_row(r, line, (size_t)n, b, &why), "%s", why);
    }
    cr_assert_eq(b->nrows, 5000);
    for (uint32_t k = 0; k < 5000; k++) {
        char want[16];
        int n = snprintf(want, sizeof(want), "r%u", k);
        cr_assert_eq(b->cols[F_I].d.i64[k], (int64_t)k * 3);
        cr_assert(str_is(b, F_S, k, want, (size_t)n));
        cr_assert_eq(rv_col_is_null(&b->cols[F_B], k), k % 2 == 0);
    }
    rv_batch_unref(b);
    rv_json_reader_free(r);
    rv_schema_unref(s);
}

Test(rv_json, every_strict_prefix_is_rejected)
{
    const char *line = "{\"b\":true,\"i\":-42,\"f\":1.5e3,\"s\":\"h\\u00e9\\n\",\"ts\":\"2024-02-29T12:34:56Z\","
                       "\"x\":[{\"y\":null}]}";
    rv_schema *s = schema5();
    rv_json_reader *r = rv_json_reader_new(s);
    rv_batch *b = rv_batch_new(s, 1);
    const char *why;
    size_t len = strlen(line);
    for (size_t n = 0; n < len; n++) {
        /* An exact-size heap copy lets ASan catch any read past the end. */
        char *copy = malloc(n ? n : 1);
        memcpy(copy, line, n);
        cr_assert_not(rv_json_parse_row(r, copy, n, b, &why), "prefix %zu accepted", n);
        cr_assert_eq(b->nrows, 0);
        free(copy);
    }
    cr_assert(rv_json_parse_row(r, line, len, b, &why), "%s", why);
    rv_batch_unref(b);
    rv_json_reader_free(r);
    rv_schema_unref(s);
}

Test(rv_json, random_garbage_never_crashes)
{
    rv_schema *s = schema5();
    rv_json_reader *r = rv_json_reader_new(s);
    rv_batch *b = rv_batch_new(s, 1);
    const char *why;
    const char *seed = "{\"b\":true,\"i\":-42,\"f\":1.5e3,\"s\":\"h\\u00e9\\ud83d\\ude00\",\"ts\":\"2024-02-29T12:34:56Z\","
                       "\"x\":[{\"y\":null,\"z\":[1,2,\"]\"]}]}";
    size_t seed_len = strlen(seed);
    static const char alphabet[] = "{}[]\":,\\u0123456789eE+-.tfnrl \t\"abd";
    for (int k = 0; k < 20000; k++) {
        size_t n = (size_t)(rnd() % 120);
        char *line = malloc(n ? n : 1);
        int mode = k % 3;
        for (size_t i = 0; i < n; i++) {
            if (mode == 0)
                line[i] = (char)rnd();
            else if (mode == 1)
                line[i] = alphabet[rnd() % (sizeof(alphabet) - 1)];
            else
                line[i] = i < seed_len ? seed[i] : '}';
        }
        if (mode == 2 && n) {
            for (int m = 0; m < 3; m++)
                line[rnd() % n] = (char)(rnd() % 4 ? alphabet[rnd() % (sizeof(alphabet) - 1)] : (char)rnd());
        }
        uint32_t before = b->nrows;
        bool ok = rv_json_parse_row(r, line, n, b, &why);
        cr_assert_eq(b->nrows, before + (ok ? 1 : 0));
        if (!ok)
            cr_assert(why && *why);
        free(line);
        if (b->nrows > 1000)
            rv_batch_clear(b);
    }
    rv_batch_unref(b);
    rv_json_reader_free(r);
    rv_schema_unref(s);
}

/* ---- JSON writer ---- */

static rv_batch *sample_batch(void)
{
    rv_schema *s = schema5();
    rv_batch *b = rv_batch_new(s, 2);
    rv_schema_unref(s);
    rv_col_set_bool(&b->cols[F_B], 0, true);
    rv_col_set_i64(&b->cols[F_I], 0, -42);
    rv_col_set_f64(&b->cols[F_F], 0, 1.5);
    const char str[] = "a\"b\\c\n\x01\xC3\xA9,\r\t";
    rv_col_set_str(&b->cols[F_S], 0, str, sizeof(str) - 1);
    rv_col_set_i64(&b->cols[F_TS], 0, INT64_C(1709210096789));
    for (int i = 0; i < 5; i++)
        rv_col_set_null(&b->cols[i], 1);
    b->nrows = 2;
    return b;
}

Test(rv_json, format_exact_output)
{
    rv_batch *b = sample_batch();
    rv_buf out = {0};
    rv_json_format_row(b, 0, RV_TS_EPOCH_MS, &out);
    cr_assert_str_eq(out.data,
                     "{\"b\":true,\"i\":-42,\"f\":1.5,\"s\":\"a\\\"b\\\\c\\n\\u0001\xC3\xA9,\\r\\t\",\"ts\":1709210096789}\n");
    out.len = 0;
    rv_json_format_row(b, 0, RV_TS_ISO8601, &out);
    cr_assert_str_eq(out.data, "{\"b\":true,\"i\":-42,\"f\":1.5,\"s\":\"a\\\"b\\\\c\\n\\u0001\xC3\xA9,\\r\\t\","
                               "\"ts\":\"2024-02-29T12:34:56.789Z\"}\n");
    out.len = 0;
    rv_json_format_row(b, 1, RV_TS_ISO8601, &out);
    cr_assert_str_eq(out.data, "{\"b\":null,\"i\":null,\"f\":null,\"s\":null,\"ts\":null}\n");
    rv_buf_fini(&out);
    rv_batch_unref(b);
}

static void f64_text(double v, const char *want)
{
    rv_schema *s = rv_schema_new();
    rv_schema_add(s, "x", RV_T_FLOAT64);
    rv_batch *b = rv_batch_new(s, 1);
    rv_col_set_f64(&b->cols[0], 0, v);
    b->nrows = 1;
    rv_buf out = {0};
    rv_json_format_row(b, 0, RV_TS_EPOCH_MS, &out);
    char expect[80];
    snprintf(expect, sizeof(expect), "{\"x\":%s}\n", want);
    cr_assert_str_eq(out.data, expect);
    rv_buf_fini(&out);
    rv_batch_unref(b);
    rv_schema_unref(s);
}

Test(rv_json, format_floats)
{
    f64_text(0.1, "0.1");
    f64_text(2.0, "2.0");
    f64_text(-0.0, "-0.0");
    f64_text(1.0 / 3.0, "0.3333333333333333");
    f64_text(0.1 + 0.2, "0.30000000000000004");
    f64_text(1e20, "1e+20");
    f64_text(1e-7, "1e-07");
    f64_text(123456789012.5, "123456789012.5");
    f64_text(5e-324, "4.94065645841247e-324"); /* 15 digits suffice for the smallest denormal */
    f64_text(NAN, "null");
    f64_text(INFINITY, "null");
    f64_text(-INFINITY, "null");
}

Test(rv_json, format_escapes_names_and_all_control_chars)
{
    rv_schema *s = rv_schema_new();
    rv_schema_add(s, "we\"ird", RV_T_STRING);
    rv_batch *b = rv_batch_new(s, 1);
    char all[32];
    for (int i = 0; i < 32; i++)
        all[i] = (char)i;
    rv_col_set_str(&b->cols[0], 0, all, 32);
    b->nrows = 1;
    rv_buf out = {0};
    rv_json_format_row(b, 0, RV_TS_EPOCH_MS, &out);
    cr_assert_str_eq(out.data, "{\"we\\\"ird\":\"\\u0000\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007"
                               "\\b\\t\\n\\u000b\\f\\r\\u000e\\u000f\\u0010\\u0011\\u0012\\u0013\\u0014\\u0015"
                               "\\u0016\\u0017\\u0018\\u0019\\u001a\\u001b\\u001c\\u001d\\u001e\\u001f\"}\n");
    rv_buf_fini(&out);
    rv_batch_unref(b);
    rv_schema_unref(s);
}

/* Writer output read back by the reader gives the same batch. */
Test(rv_json, round_trip_random_rows)
{
    rv_schema *s = schema5();
    rv_batch *src = rv_batch_new(s, 16), *dst = rv_batch_new(s, 16);
    rv_json_reader *r = rv_json_reader_new(s);
    for (uint32_t k = 0; k < 3000; k++) {
        rv_batch_reserve(src, k + 1);
        for (int i = 0; i < 5; i++) {
            if (rnd() % 7 == 0) {
                rv_col_set_null(&src->cols[i], k);
                continue;
            }
            switch (i) {
            case F_B: rv_col_set_bool(&src->cols[i], k, rnd() & 1); break;
            case F_I: rv_col_set_i64(&src->cols[i], k, (int64_t)rnd()); break;
            case F_F: {
                double v;
                do {
                    uint64_t bits = rnd();
                    memcpy(&v, &bits, 8);
                } while (!isfinite(v));
                rv_col_set_f64(&src->cols[i], k, k % 2 ? v : (double)(int64_t)(rnd() % 100000) / 100);
                break;
            }
            case F_S: {
                char str[40];
                size_t n = rnd() % sizeof(str);
                for (size_t j = 0; j < n; j++)
                    str[j] = (char)(rnd() % 256);
                rv_col_set_str(&src->cols[i], k, str, n);
                break;
            }
            case F_TS: rv_col_set_i64(&src->cols[i], k, (int64_t)(rnd() % INT64_C(315537897600000)) - INT64_C(62135596800000)); break;
            }
        }
        src->nrows = k + 1;
    }
    rv_buf out = {0};
    for (uint32_t k = 0; k < src->nrows; k++) {
        out.len = 0;
        rv_json_format_row(src, k, k % 2 ? RV_TS_ISO8601 : RV_TS_EPOCH_MS, &out);
        cr_assert_eq(out.data[out.len - 1], '\n');
        const char *why;
        cr_assert(rv_json_parse_row(r, out.data, out.len - 1, dst, &why), "row %u: %s: %s", k, why, out.data);
    }
    assert_batches_equal(src, dst);
    rv_buf_fini(&out);
    rv_json_reader_free(r);
    rv_batch_unref(src);
    rv_batch_unref(dst);
    rv_schema_unref(s);
}

/* ---- CSV ---- */

static rv_schema *schema_csv(void)
{
    rv_schema *s = rv_schema_new();
    rv_schema_add(s, "i", RV_T_INT64);
    rv_schema_add(s, "s", RV_T_STRING);
    rv_schema_add(s, "f", RV_T_FLOAT64);
    rv_schema_add(s, "b", RV_T_BOOL);
    rv_schema_add(s, "ts", RV_T_TIMESTAMP);
    return s;
}
enum { C_I, C_S, C_F, C_B, C_TS };

/* Reader with the given header; parses line into *out (fresh batch). */
static const char *csv1(const char *header, char delim, const char *line, rv_batch **out)
{
    static char reason[400];
    rv_schema *s = schema_csv();
    rv_csv_reader *r = rv_csv_reader_new(s, delim);
    rv_batch *b = rv_batch_new(s, 1);
    const char *why = NULL, *ret = NULL;
    if (header)
        cr_assert(rv_csv_set_header(r, header, strlen(header), &why), "%s", why);
    if (!rv_csv_parse_row(r, line, strlen(line), b, &why)) {
        snprintf(reason, sizeof(reason), "%s", why);
        ret = reason;
        cr_assert_eq(b->nrows, 0);
    } else {
        cr_assert_eq(b->nrows, 1);
    }
    rv_csv_reader_free(r);
    rv_schema_unref(s);
    if (out)
        *out = b;
    else
        rv_batch_unref(b);
    return ret;
}

static void csv_err(const char *header, const char *line, const char *want)
{
    const char *got = csv1(header, ',', line, NULL);
    cr_assert_not_null(got, "line %s was accepted", line);
    cr_assert_str_eq(got, want);
}

Test(rv_csv, header_maps_columns_by_name)
{
    rv_batch *b;
    cr_assert_null(csv1("s,extra,i,b\r", ',', "\"a,b\",x,5,TRUE\r", &b));
    cr_assert(str_is(b, C_S, 0, "a,b", 3));
    cr_assert_eq(b->cols[C_I].d.i64[0], 5);
    cr_assert_eq(b->cols[C_B].d.b[0], 1);
    cr_assert(rv_col_is_null(&b->cols[C_F], 0));
    cr_assert(rv_col_is_null(&b->cols[C_TS], 0));
    rv_batch_unref(b);
    /* A UTF-8 byte order mark before the header is ignored. */
    cr_assert_null(csv1("\xEF\xBB\xBFi,s", ',', "7,x", &b));
    cr_assert_eq(b->cols[C_I].d.i64[0], 7);
    rv_batch_unref(b);
}

Test(rv_csv, no_header_means_schema_order)
{
    rv_batch *b;
    cr_assert_null(csv1(NULL, ',', "1,one,2.5,0,2024-02-29T12:34:56.789Z", &b));
    cr_assert_eq(b->cols[C_I].d.i64[0], 1);
    cr_assert(str_is(b, C_S, 0, "one", 3));
    cr_assert_eq(b->cols[C_F].d.f64[0], 2.5);
    cr_assert_eq(b->cols[C_B].d.b[0], 0);
    cr_assert_eq(b->cols[C_TS].d.i64[0], INT64_C(1709210096789));
    rv_batch_unref(b);
}

Test(rv_csv, rfc4180_quoting)
{
    rv_batch *b;
    cr_assert_null(csv1("s,i", ',', "\"he said \"\"hi\"\"\",1", &b));
    cr_assert(str_is(b, C_S, 0, "he said \"hi\"", 12));
    rv_batch_unref(b);
    cr_assert_null(csv1("s,i", ',', "\"line1\nline2\r\n,\",2", &b));
    cr_assert(str_is(b, C_S, 0, "line1\nline2\r\n,", 14));
    rv_batch_unref(b);
    cr_assert_null(csv1("s,i", ',', "\"\"\"\",3", &b));
    cr_assert(str_is(b, C_S, 0, "\"", 1));
    rv_batch_unref(b);
    /* A quote inside an unquoted cell is literal. */
    cr_assert_null(csv1("s,i", ',', "5\" screen,4", &b));
    cr_assert(str_is(b, C_S, 0, "5\" screen", 9));
    rv_batch_unref(b);
}

Test(rv_csv, other_delimiters)
{
    rv_batch *b;
    cr_assert_null(csv1("i;s;f", ';', "3;a,b;1e3", &b));
    cr_assert_eq(b->cols[C_I].d.i64[0], 3);
    cr_assert(str_is(b, C_S, 0, "a,b", 3));
    cr_assert_eq(b->cols[C_F].d.f64[0], 1000.0);
    rv_batch_unref(b);
    cr_assert_null(csv1("s\ti", '\t', "\"x\ty\"\t9", &b));
    cr_assert(str_is(b, C_S, 0, "x\ty", 3));
    cr_assert_eq(b->cols[C_I].d.i64[0], 9);
    rv_batch_unref(b);
}

Test(rv_csv, empty_cells)
{
    rv_batch *b;
    cr_assert_null(csv1("i,s,f,b,ts", ',', ",,,,", &b));
    for (int i = 0; i < 5; i++)
        cr_assert(rv_col_is_null(&b->cols[i], 0));
    rv_batch_unref(b);
    /* A quoted empty cell is an empty string, and null for other types. */
    cr_assert_null(csv1("i,s,f,b,ts", ',', "\"\",\"\",\"\",\"\",\"\"", &b));
    cr_assert(str_is(b, C_S, 0, "", 0));
    cr_assert(rv_col_is_null(&b->cols[C_I], 0));
    cr_assert(rv_col_is_null(&b->cols[C_TS], 0));
    rv_batch_unref(b);
}

Test(rv_csv, conversions)
{
    rv_batch *b;
    cr_assert_null(csv1("b,i,ts,f", ',', "1,-9223372036854775808,-1,-0.5", &b));
    cr_assert_eq(b->cols[C_B].d.b[0], 1);
    cr_assert_eq(b->cols[C_I].d.i64[0], INT64_MIN);
    cr_assert_eq(b->cols[C_TS].d.i64[0], -1);
    cr_assert_eq(b->cols[C_F].d.f64[0], -0.5);
    rv_batch_unref(b);
    cr_assert_null(csv1("b,i,ts", ',', "False,+12,1969-12-31T23:59:59.999Z", &b));
    cr_assert_eq(b->cols[C_B].d.b[0], 0);
    cr_assert_eq(b->cols[C_I].d.i64[0], 12);
    cr_assert_eq(b->cols[C_TS].d.i64[0], -1);
    rv_batch_unref(b);
    cr_assert_null(csv1("i", ',', "3.0", &b));
    cr_assert_eq(b->cols[C_I].d.i64[0], 3);
    rv_batch_unref(b);
}

Test(rv_csv, error_reasons)
{
    csv_err("i,s,f,b", "1,2,3", "expected 4 columns, got 3");
    csv_err("i,s", "1,2,3", "expected 2 columns, got 3");
    csv_err("s,i", "\"abc,1", "unterminated quoted cell starting at byte 0");
    csv_err("i,s", "1,\"ab\"c", "unexpected character after closing quote at byte 6");
    csv_err("b", "yes", "field 'b': invalid bool 'yes'");
    csv_err("i", "12a", "field 'i': invalid int64 '12a'");
    csv_err("i", " 12", "field 'i': invalid int64 ' 12'");
    csv_err("i", "2.5", "field 'i': invalid int64 '2.5'");
    csv_err("i", "9223372036854775808", "field 'i': number 9223372036854775808 out of range for int64");
    csv_err("f", "abc", "field 'f': invalid float64 'abc'");
    csv_err("f", "0x10", "field 'f': invalid float64 '0x10'");
    csv_err("f", "1e999", "field 'f': number 1e999 out of range for float64");
    csv_err("ts", "yesterday", "field 'ts': invalid timestamp 'yesterday'");
    csv_err("s,ts", "\"a\",\"2024-01-01T25:00:00Z\"", "field 'ts': invalid timestamp '2024-01-01T25:00:00Z'");
}

Test(rv_csv, header_errors)
{
    rv_schema *s = schema_csv();
    rv_csv_reader *r = rv_csv_reader_new(s, ',');
    const char *why;
    cr_assert_not(rv_csv_set_header(r, "i,s,i", 5, &why));
    cr_assert_str_eq(why, "duplicate column 'i' in header");
    cr_assert_not(rv_csv_set_header(r, "x,y", 3, &why));
    cr_assert_str_eq(why, "header names none of the schema's fields (i:int64, s:string, f:float64, b:bool, ts:timestamp)");
    cr_assert_not(rv_csv_set_header(r, "\"i,s", 4, &why));
    cr_assert_str_eq(why, "unterminated quoted cell starting at byte 0");
    /* A failed header leaves the positional mapping in place. */
    rv_batch *b = rv_batch_new(s, 1);
    cr_assert(rv_csv_parse_row(r, "1,a,2,true,3", 12, b, &why), "%s", why);
    cr_assert_eq(b->cols[C_TS].d.i64[0], 3);
    rv_batch_unref(b);
    rv_csv_reader_free(r);
    rv_schema_unref(s);
}

Test(rv_csv, failed_line_leaves_batch_unchanged)
{
    rv_schema *s = schema_csv();
    rv_csv_reader *r = rv_csv_reader_new(s, ',');
    rv_batch *b = rv_batch_new(s, 1);
    const char *why;
    cr_assert(rv_csv_parse_row(r, "1,abc,0.5,1,2", 13, b, &why), "%s", why);
    const char *bad = "2,zzzzzz,,maybe,0";
    cr_assert_not(rv_csv_parse_row(r, bad, strlen(bad), b, &why));
    cr_assert_str_eq(why, "field 'b': invalid bool 'maybe'");
    cr_assert_eq(b->nrows, 1);
    cr_assert_eq(b->cols[C_S].data_len, 3);
    cr_assert_eq(b->cols[C_S].offsets[1], 3);
    cr_assert_not(b->cols[C_F].has_nulls);
    cr_assert_eq(b->cap, 1);
    rv_batch_unref(b);
    rv_csv_reader_free(r);
    rv_schema_unref(s);
}

Test(rv_csv, format_exact_output)
{
    rv_batch *b = sample_batch(); /* schema5: b,i,f,s,ts */
    rv_buf out = {0};
    rv_csv_format_header(b->schema, ',', &out);
    cr_assert_str_eq(out.data, "b,i,f,s,ts\n");
    out.len = 0;
    rv_csv_format_row(b, 0, ',', RV_TS_EPOCH_MS, &out);
    cr_assert_str_eq(out.data, "true,-42,1.5,\"a\"\"b\\c\n\x01\xC3\xA9,\r\t\",1709210096789\n");
    out.len = 0;
    rv_csv_format_row(b, 0, ';', RV_TS_ISO8601, &out);
    cr_assert_str_eq(out.data, "true;-42;1.5;\"a\"\"b\\c\n\x01\xC3\xA9,\r\t\";2024-02-29T12:34:56.789Z\n");
    out.len = 0;
    rv_csv_format_row(b, 1, ',', RV_TS_ISO8601, &out);
    cr_assert_str_eq(out.data, ",,,,\n");
    /* Delimiters that occur in numbers and dates force quotes. */
    out.len = 0;
    rv_csv_format_row(b, 0, '-', RV_TS_ISO8601, &out);
    cr_assert_str_eq(out.data, "true-\"-42\"-1.5-\"a\"\"b\\c\n\x01\xC3\xA9,\r\t\"-\"2024-02-29T12:34:56.789Z\"\n");
    rv_buf_fini(&out);
    rv_batch_unref(b);
}

Test(rv_csv, format_empty_string_nan_and_header_quoting)
{
    rv_schema *s = rv_schema_new();
    rv_schema_add(s, "a,b", RV_T_STRING);
    rv_schema_add(s, "q\"", RV_T_FLOAT64);
    rv_schema_add(s, "plain", RV_T_STRING);
    rv_batch *b = rv_batch_new(s, 1);
    rv_col_set_str(&b->cols[0], 0, "", 0);
    rv_col_set_f64(&b->cols[1], 0, NAN);
    rv_col_set_str(&b->cols[2], 0, "x y", 3);
    b->nrows = 1;
    rv_buf out = {0};
    rv_csv_format_header(s, ',', &out);
    rv_csv_format_row(b, 0, ',', RV_TS_EPOCH_MS, &out);
    cr_assert_str_eq(out.data, "\"a,b\",\"q\"\"\",plain\n\"\",,x y\n");
    rv_buf_fini(&out);
    rv_batch_unref(b);
    rv_schema_unref(s);
}

Test(rv_csv, round_trip_with_quoting)
{
    rv_schema *s = schema_csv();
    rv_batch *src = rv_batch_new(s, 1), *dst = rv_batch_new(s, 1);
    static const char pool[] = "ab,;\"\r\n x\t";
    for (uint32_t k = 0; k < 2000; k++) {
        rv_batch_reserve(src, k + 1);
        char str[24];
        size_t n = rnd() % sizeof(str);
        for (size_t j = 0; j < n; j++)
            str[j] = pool[rnd() % (sizeof(pool) - 1)];
        if (rnd() % 9 == 0)
            rv_col_set_null(&src->cols[C_S], k);
        else
            rv_col_set_str(&src->cols[C_S], k, str, n);
        rv_col_set_i64(&src->cols[C_I], k, (int64_t)rnd());
        rv_col_set_f64(&src->cols[C_F], k, (double)(int64_t)rnd() / 1024.0);
        if (k % 5 == 0)
            rv_col_set_null(&src->cols[C_B], k);
        else
            rv_col_set_bool(&src->cols[C_B], k, k % 3 == 0);
        rv_col_set_i64(&src->cols[C_TS], k, (int64_t)(rnd() % INT64_C(300000000000000)) - INT64_C(62135596800000));
        src->nrows = k + 1;
    }
    const char delims[] = {',', ';', '\t', '|'};
    for (size_t d = 0; d < sizeof(delims); d++) {
        rv_csv_reader *r = rv_csv_reader_new(s, delims[d]);
        rv_buf out = {0};
        const char *why;
        rv_csv_format_header(s, delims[d], &out);
        cr_assert(rv_csv_set_header(r, out.data, out.len - 1, &why), "%s", why);
        rv_batch_clear(dst);
        for (uint32_t k = 0; k < src->nrows; k++) {
            out.len = 0;
            rv_csv_format_row(src, k, delims[d], k % 2 ? RV_TS_ISO8601 : RV_TS_EPOCH_MS, &out);
            cr_assert(rv_csv_parse_row(r, out.data, out.len - 1, dst, &why), "row %u: %s: %s", k, why, out.data);
        }
        assert_batches_equal(src, dst);
        rv_buf_fini(&out);
        rv_csv_reader_free(r);
    }
    rv_batch_unref(src);
    rv_batch_unref(dst);
    rv_schema_unref(s);
}

Test(rv_csv, random_garbage_never_crashes)
{
    rv_schema *s = schema_csv();
    rv_csv_reader *r = rv_csv_reader_new(s, ',');
    rv_batch *b = rv_batch_new(s, 1);
    const char *why;
    static const char alphabet[] = "\",\r\n0123456789.-eTZ:tf ";
    for (int k = 0; k < 20000; k++) {
        size_t n = (size_t)(rnd() % 60);
        char *line = malloc(n ? n : 1);
        for (size_t i = 0; i < n; i++)
            line[i] = k % 2 ? (char)rnd() : alphabet[rnd() % (sizeof(alphabet) - 1)];
        uint32_t before = b->nrows;
        bool ok = k % 100 == 0 ? rv_csv_set_header(r, line, n, &why) : rv_csv_parse_row(r, line, n, b, &why);
        if (k % 100 != 0)
            cr_assert_eq(b->nrows, before + (ok ? 1 : 0));
        free(line);
        if (b->nrows > 1000)
            rv_batch_clear(b);
    }
    rv_batch_unref(b);
    rv_csv_reader_free(r);
    rv_schema_unref(s);
}
