/* rv_timefmt: timestamp text (ISO-8601 and epoch milliseconds) and the
 * strict number-from-text conversions that the JSON and CSV readers share.
 *
 * Calendar arithmetic is done with the proleptic Gregorian "days from
 * civil" method (counting 400-year eras from 0000-03-01) so that it needs
 * no timegm(), no time zone database and no locale, and works before 1970
 * (negative epoch values). Everything here is pure and thread-safe. */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rv_record.h"
#include "rv_record_int.h"

#define MS_PER_DAY INT64_C(86400000)

/* Days since 1970-01-01 of y-m-d (m 1..12, d 1..31). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    /* Shift the year to start in March so the leap day is last. */
    if (m <= 2)
        y -= 1;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;                              /* 0..399 */
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1; /* 0..365 */
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;      /* 0..146096 */
    return era * 146097 + doe - 719468;
}

/* Inverse of days_from_civil. */
static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static bool is_leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

static int days_in_month(int y, int m)
{
    static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && is_leap(y) ? 29 : dim[m - 1];
}

/* Reads exactly n decimal digits at *p (bounded by end). */
static bool digits(const char **p, const char *end, int n, int *out)
{
    if (end - *p < n)
        return false;
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9')
            return false;
        v = v * 10 + (c - '0');
    }
    *p += n;
    *out = v;
    return true;
}

/* Grammar: YYYY-MM-DD [ (T|t|' ') hh:mm [:ss [(.|,)f{1,9}]] [Z|z|(+|-)hh[[:]mm]] ].
 * Seconds 60 (leap seconds) and hour 24 are rejected. */
bool rv_ts_parse_iso8601(const char *s, size_t len, int64_t *ms)
{
    const char *p = s, *end = s + len;
    int y, mo, d, h = 0, mi = 0, sec = 0, frac_ms = 0;
    int64_t offset_min = 0;

    if (!digits(&p, end, 4, &y) || y < 1 || p == end || *p++ != '-')
        return false;
    if (!digits(&p, end, 2, &mo) || mo < 1 || mo > 12 || p == end || *p++ != '-')
        return false;
    if (!digits(&p, end, 2, &d) || d < 1 || d > days_in_month(y, mo))
        return false;
    if (p == end)
        goto done;
    if (*p != 'T' && *p != 't' && *p != ' ')
        return false;
    p++;
    if (!digits(&p, end, 2, &h) || h > 23 || p == end || *p++ != ':')
        return false;
    if (!digits(&p, end, 2, &mi) || mi > 59)
        return false;
    if (p < end && *p == ':') {
        p++;
        if (!digits(&p, end, 2, &sec) || sec > 59)
            return false;
        if (p < end && (*p == '.' || *p == ',')) {
            p++;
            int n = 0;
            for (; p < end && *p >= '0' && *p <= '9'; p++, n++) {
                if (n < 3)
                    frac_ms = frac_ms * 10 + (*p - '0');
            }
            if (n < 1 || n > 9)
                return false;
            for (; n < 3; n++)
                frac_ms *= 10;
        }
    }
    if (p < end && (*p == 'Z' || *p == 'z')) {
        p++;
    } else if (p < end && (*p == '+' || *p == '-')) {
        int sign = *p++ == '-' ? -1 : 1;
        int oh, om = 0;
        if (!digits(&p, end, 2, &oh) || oh > 23)
            return false;
        if (p < end) {
            if (*p == ':')
                p++;
            if (!digits(&p, end, 2, &om) || om > 59)
                return false;
        }
        offset_min = sign * (oh * 60 + om);
    }
    if (p != end)
        return false;
done:;
    int64_t t = days_from_civil(y, mo, d) * MS_PER_DAY;
    t += ((int64_t)h * 3600 + mi * 60 + sec) * 1000 + frac_ms;
    *ms = t - offset_min * 60000;
    return true;
}

/* Writes v (>= 0) as exactly n decimal digits. */
static void put_digits(char *w, int n, int v)
{
    for (int i = n - 1; i >= 0; i--, v /= 10)
        w[i] = (char)('0' + v % 10);
}

void rv_ts_format_iso8601(int64_t ms, rv_buf *out)
{
    int64_t days = ms / MS_PER_DAY, rem = ms % MS_PER_DAY;
    if (rem < 0) {
        rem += MS_PER_DAY;
        days--;
    }
    int64_t y;
    int m, d;
    civil_from_days(days, &y, &m, &d);
    int h = (int)(rem / 3600000), mi = (int)(rem / 60000 % 60), s = (int)(rem / 1000 % 60);
    int f = (int)(rem % 1000);
    /* Years outside 0000..9999 use ISO-8601's expanded, signed form. */
    if (y < 0 || y > 9999) {
        rv_buf_printf(out, "%+" PRId64 "-%02d-%02dT%02d:%02d:%02d.%03dZ", y, m, d, h, mi, s, f);
        return;
    }
    /* Sinks format a timestamp a row: avoid printf. */
    char t[] = "0000-00-00T00:00:00.000Z";
    put_digits(t, 4, (int)y);
    put_digits(t + 5, 2, m);
    put_digits(t + 8, 2, d);
    put_digits(t + 11, 2, h);
    put_digits(t + 14, 2, mi);
    put_digits(t + 17, 2, s);
    put_digits(t + 20, 3, f);
    rv_buf_append(out, t, sizeof(t) - 1);
}

rv_num_status rv_text_parse_i64(const char *s, size_t len, int64_t *out)
{
    size_t i = 0;
    bool neg = false;
    if (i < len && (s[i] == '-' || s[i] == '+'))
        neg = s[i++] == '-';
    if (i == len)
        return RV_NUM_SYNTAX;
    uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    uint64_t v = 0;
    bool range = false;
    for (; i < len; i++) {
        unsigned dgt = (unsigned)(unsigned char)s[i] - '0';
        if (dgt > 9)
            return RV_NUM_SYNTAX;
        if (v > (limit - dgt) / 10)
            range = true; /* keep scanning: junk later is a syntax error */
        else
            v = v * 10 + dgt;
    }
    if (range)
        return RV_NUM_RANGE;
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return RV_NUM_OK;
}

rv_num_status rv_text_parse_f64(const char *s, size_t len, double *out)
{
    char small[64];
    if (len == 0 || s[0] == ' ' || s[0] == '\t' || memchr(s, 'x', len) || memchr(s, 'X', len))
        return RV_NUM_SYNTAX;
    /* strtod needs a terminated string; the text is usually short. */
    char *copy = small;
    if (len >= sizeof(small)) {
        copy = malloc(len + 1);
        if (!copy)
            return RV_NUM_RANGE;
    }
    memcpy(copy, s, len);
    copy[len] = '\0';
    char *endp;
    errno = 0;
    double v = strtod(copy, &endp);
    bool whole = endp == copy + len, range = errno == ERANGE && isinf(v);
    if (copy != small)
        free(copy);
    if (!whole)
        return RV_NUM_SYNTAX;
    if (range)
        return RV_NUM_RANGE;
    *out = v;
    return RV_NUM_OK;
}

rv_num_status rv_text_parse_int_or_integral(const char *s, size_t len, int64_t *out)
{
    rv_num_status st = rv_text_parse_i64(s, len, out);
    if (st != RV_NUM_SYNTAX)
        return st;
    double v;
    st = rv_text_parse_f64(s, len, &v);
    if (st != RV_NUM_OK)
        return st;
    if (!(v == trunc(v)))
        return RV_NUM_SYNTAX; /* a fraction, or NaN */
    /* 2^63 is exactly representable; INT64_MAX is not. */
    if (!(v >= -9223372036854775808.0 && v < 9223372036854775808.0))
        return RV_NUM_RANGE;
    *out = (int64_t)v;
    return RV_NUM_OK;
}

bool rv_ts_parse_text(const char *s, size_t len, int64_t *ms)
{
    int64_t v;
    rv_num_status st = rv_text_parse_int_or_integral(s, len, &v);
    if (st == RV_NUM_OK) {
        *ms = v;
        return true;
    }
    if (st == RV_NUM_RANGE)
        return false;
    return rv_ts_parse_iso8601(s, len, ms);
}

void rv_text_excerpt(const char *s, size_t len, char *out, size_t cap)
{
    assert(cap >= 48);
    size_t n = len;
    bool cut = false;
    if (n > 40) {
        n = 40;
        /* Do not split a UTF-8 sequence. */
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
        cut = true;
    }
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        out[o++] = c < 0x20 || c == 0x7f ? '?' : (char)c;
    }
    if (cut) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
}
