/* Unit tests for line_reader: splitting into lines (partial last line, CRLF,
 * empty lines), the line-length limit (lines within, at and beyond it, and
 * lines far larger than the buffer), data arriving in pieces through a
 * non-blocking pipe, tail mode on a growing file with byte offsets, read
 * errors, a large input against a reference split, and the line decoder
 * (JSON and CSV rows, headers, bad lines). */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rv_batch.h"
#include "sources/line_reader.h"

/* A file in a fresh temporary directory holding `data`; returns an fd open
 * for reading at offset 0. */
static int temp_fd(const char *data, size_t len, char *path_out)
{
    char path[] = "/tmp/rv_lr_XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    cr_assert_eq(write(fd, data, len), (ssize_t)len);
    cr_assert_eq(lseek(fd, 0, SEEK_SET), 0);
    if (path_out)
        strcpy(path_out, path);
    else
        unlink(path);
    return fd;
}

static void expect_line(rv_line_reader *r, const char *want)
{
    const char *line;
    size_t len;
    rv_line_status st = rv_line_next(r, &line, &len);
    cr_assert_eq(st, RV_LINE_OK, "status %d, wanted line '%s'", st, want);
    cr_assert_eq(len, strlen(want), "got '%.*s', wanted '%s'", (int)len, line, want);
    cr_assert(memcmp(line, want, len) == 0, "got '%.*s', wanted '%s'", (int)len, line, want);
}

static void expect_status(rv_line_reader *r, rv_line_status want)
{
    const char *line;
    size_t len;
    rv_line_status st = rv_line_next(r, &line, &len);
    cr_assert_eq(st, want, "status %d, wanted %d", st, want);
}

static void expect_too_long(rv_line_reader *r, const char *prefix)
{
    const char *line;
    size_t len;
    cr_assert_eq(rv_line_next(r, &line, &len), RV_LINE_TOO_LONG);
    cr_assert_eq(len, strlen(prefix));
    cr_assert(memcmp(line, prefix, len) == 0);
}

Test(rv_line_reader, splits_lines_and_returns_partial_last_line)
{
    const char *data = "one\ntwo\n\nthree";
    int fd = temp_fd(data, strlen(data), NULL);
    rv_line_reader *r = rv_line_reader_new(fd, 0, false);
    expect_line(r, "one");
    expect_line(r, "two");
    expect_line(r, "");
    expect_line(r, "three");
    expect_status(r, RV_LINE_EOF);
    expect_status(r, RV_LINE_EOF);
    cr_assert_eq(rv_line_reader_offset(r), strlen(data));
    rv_line_reader_free(r);
    close(fd);
}

Test(rv_line_reader, empty_input_is_eof)
{
    int fd = temp_fd("", 0, NULL);
    rv_line_reader *r = rv_line_reader_new(fd, 0, false);
    expect_status(r, RV_LINE_EOF);
    rv_line_reader_free(r);
    close(fd);
}

Test(rv_line_reader, strips_crlf_but_keeps_inner_cr)
{
    const char *data = "a\r\nb\rc\r\n\r\nlast\r";
    int fd = temp_fd(data, strlen(data), NULL);
    rv_line_reader *r = rv_line_reader_new(fd, 0, false);
    expect_line(r, "a");
    expect_line(r, "b\rc");
    expect_line(r, "");
    expect_line(r, "last");
    expect_status(r, RV_LINE_EOF);
    rv_line_reader_free(r);
    close(fd);
}

Test(rv_line_reader, line_limit_is_on_content)
{
    /* max 10: 10 bytes pass, also with CRLF; 11 do not. */
    const char *data = "0123456789\n0123456789\r\n0123456789A\nok\n0123456789AB";
    int fd = temp_fd(data, strlen(data), NULL);
    rv_line_reader *r = rv_line_reader_new(fd, 10, false);
    expect_line(r, "0123456789");
    expect_line(r, "0123456789");
    expect_too_long(r, "0123456789");
    expect_line(r, "ok");
    expect_too_long(r, "0123456789"); /* unterminated and too long */
    expect_status(r, RV_LINE_EOF);
    cr_assert_eq(rv_line_reader_offset(r), strlen(data));
    rv_line_reader_free(r);
    close(fd);
}

Test(rv_line_reader, huge_line_is_skipped_without_buffering_it)
{
    size_t big = 3u << 20; /* 3 MiB, far more than the 1 KiB limit */
    char *data = malloc(big + 64);
    memset(data, 'x', big);
    data[0] = 'S';
    size_t n = big;
    n += (size_t)sprintf(data + n, "\nafter\n");
    int fd = temp_fd(data, n, NULL);
    rv_line_reader *r = rv_line_reader_new(fd, 1024, false);
    const char *line;
    size_t len;
    cr_assert_eq(rv_line_next(r, &line, &len), RV_LINE_TOO_LONG);
    cr_assert_eq(len, 1024);
    cr_assert_eq(line[0], 'S');
    cr_assert(rv_line_reader_pending(r) <= 1026);
    expect_line(r, "after");
    expect_status(r, RV_LINE_EOF);
    cr_assert_eq(rv_line_reader_offset(r), n);
    rv_line_reader_free(r);
    close(fd);
    free(data);
}

static void put(int fd, const char *s)
{
    cr_assert_eq(write(fd, s, strlen(s)), (ssize_t)strlen(s));
}

Test(rv_line_reader, pipe_pieces_nonblocking)
{
    int p[2];
    cr_assert_eq(pipe2(p, O_NONBLOCK), 0);
    rv_line_reader *r = rv_line_reader_new(p[0], 8, false);
    expect_status(r, RV_LINE_AGAIN);
    put(p[1], "ab");
    expect_status(r, RV_LINE_AGAIN);
    put(p[1], "c\nde");
    expect_line(r, "abc");
    expect_status(r, RV_LINE_AGAIN);
    put(p[1], "\r");
    expect_status(r, RV_LINE_AGAIN);
    put(p[1], "\n12345");
    expect_line(r, "de");
    put(p[1], "6789");  /* 9 bytes: over the limit of 8 */
    expect_too_long(r, "12345678");
    put(p[1], "more of the long line");
    expect_status(r, RV_LINE_AGAIN);
    put(p[1], " still\nfine\nlast");
    expect_line(r, "fine");
    expect_status(r, RV_LINE_AGAIN);
    close(p[1]);
    expect_line(r, "last");
    expect_status(r, RV_LINE_EOF);
    rv_line_reader_free(r);
    close(p[0]);
}

Test(rv_line_reader, tail_mode_keeps_partial_line_until_newline)
{
    char path[64];
    int fd = temp_fd("a\nb", 3, path);
    int wfd = open(path, O_WRONLY | O_APPEND);
    cr_assert(wfd >= 0);
    rv_line_reader *r = rv_line_reader_new(fd, 0, true);
    expect_line(r, "a");
    expect_status(r, RV_LINE_EOF);
    cr_assert_eq(rv_line_reader_offset(r), 2);
    cr_assert_eq(rv_line_reader_pending(r), 1);
    expect_status(r, RV_LINE_EOF); /* still nothing new */
    put(wfd, "c\r");
    expect_status(r, RV_LINE_EOF);
    put(wfd, "\nd\n");
    expect_line(r, "bc");
    expect_line(r, "d");
    expect_status(r, RV_LINE_EOF);
    cr_assert_eq(rv_line_reader_offset(r), 8);
    cr_assert_eq(rv_line_reader_pending(r), 0);
    rv_line_reader_free(r);
    close(fd);
    close(wfd);

    /* Reopening at the offset continues where the reader stopped. */
    fd = open(path, O_RDONLY);
    wfd = open(path, O_WRONLY | O_APPEND);
    put(wfd, "e\n");
    cr_assert_eq(lseek(fd, 8, SEEK_SET), 8);
    r = rv_line_reader_new(fd, 0, true);
    expect_line(r, "e");
    expect_status(r, RV_LINE_EOF);
    cr_assert_eq(rv_line_reader_offset(r), 2);
    rv_line_reader_free(r);
    close(fd);
    close(wfd);
    unlink(path);
}

Test(rv_line_reader, read_error_is_reported)
{
    int fd = open("/tmp", O_RDONLY | O_DIRECTORY);
    cr_assert(fd >= 0);
    rv_line_reader *r = rv_line_reader_new(fd, 0, false);
    expect_status(r, RV_LINE_ERROR);
    cr_assert_str_eq(rv_line_reader_error(r), strerror(EISDIR));
    rv_line_reader_free(r);
    close(fd);
}

Test(rv_line_reader, large_input_matches_reference_split)
{
    /* ~4 MiB of lines of pseudo-random length 0..300, some CRLF, crossing
     * many buffer boundaries; limit 200 so some lines are too long. */
    size_t cap = 8u << 20, n = 0;
    char *data = malloc(cap);
    uint64_t x = 12345;
    int nlines = 0;
    while (n < (4u << 20)) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        size_t len = (size_t)(x >> 33) % 301;
        for (size_t k = 0; k < len; k++)
            data[n++] = (char)('a' + (k + (size_t)nlines) % 26);
        if ((x >> 20) & 1)
            data[n++] = '\r';
        data[n++] = '\n';
        nlines++;
    }
    int fd = temp_fd(data, n, NULL);
    rv_line_reader *r = rv_line_reader_new(fd, 200, false);
    size_t pos = 0;
    int got = 0;
    for (;;) {
        const char *line;
        size_t len;
        rv_line_status st = rv_line_next(r, &line, &len);
        if (st == RV_LINE_EOF)
            break;
        /* reference: the next line of data */
        char *nl = memchr(data + pos, '\n', n - pos);
        size_t want = (size_t)(nl - (data + pos));
        if (want > 0 && data[pos + want - 1] == '\r')
            want--;
        if (want > 200) {
            cr_assert_eq(st, RV_LINE_TOO_LONG);
            cr_assert_eq(len, 200);
        } else {
            cr_assert_eq(st, RV_LINE_OK);
            cr_assert_eq(len, want);
        }
        cr_assert(memcmp(line, data + pos, len) == 0);
        pos = (size_t)(nl - data) + 1;
        got++;
    }
    cr_assert_eq(got, nlines);
    cr_assert_eq(rv_line_reader_offset(r), n);
    rv_line_reader_free(r);
    close(fd);
    free(data);
}

/* ---- decoder ---- */

static rv_schema *schema2(void)
{
    rv_schema *s = rv_schema_new();
    rv_schema_add(s, "name", RV_T_STRING);
    rv_schema_add(s, "n", RV_T_INT64);
    return s;
}

static rv_dec_result dec(rv_line_decoder *d, rv_batch *b, const char *line, const char **reason)
{
    size_t raw_len = 0;
    rv_dec_result res = rv_line_decode(d, RV_LINE_OK, line, strlen(line), b, reason, &raw_len);
    cr_assert_eq(raw_len, strlen(line));
    return res;
}

Test(rv_line_decoder, json_rows_empty_and_bad_lines)
{
    rv_schema *s = schema2();
    rv_batch *b = rv_batch_new(s, 4);
    rv_line_decoder d;
    rv_line_decoder_init(&d, s, false, ',', 100);
    const char *reason = NULL;
    cr_assert_eq(dec(&d, b, "{\"name\": \"a\", \"n\": 1}", &reason), RV_DEC_ROW);
    cr_assert_eq(dec(&d, b, "", &reason), RV_DEC_EMPTY);
    cr_assert_eq(dec(&d, b, "{\"name\": \"b\", \"n\": \"x\"}", &reason), RV_DEC_BAD);
    cr_assert(reason && *reason);
    cr_assert_eq(dec(&d, b, "not json", &reason), RV_DEC_BAD);
    cr_assert_eq(dec(&d, b, "{\"n\": 2}", &reason), RV_DEC_ROW);
    cr_assert_eq(b->nrows, 2);
    cr_assert_eq(b->cols[1].d.i64[0], 1);
    cr_assert_eq(b->cols[1].d.i64[1], 2);
    cr_assert(rv_col_is_null(&b->cols[0], 1));

    char big[5000];
    memset(big, 'x', sizeof(big));
    size_t raw_len = 0;
    cr_assert_eq(rv_line_decode(&d, RV_LINE_TOO_LONG, big, sizeof(big), b, &reason, &raw_len), RV_DEC_BAD);
    cr_assert_str_eq(reason, "line longer than 100 bytes");
    cr_assert_eq(raw_len, 4096);
    cr_assert_eq(b->nrows, 2);
    rv_line_decoder_fini(&d);
    rv_batch_unref(b);
    rv_schema_unref(s);
}

Test(rv_line_decoder, csv_header_per_stream)
{
    rv_schema *s = schema2();
    rv_batch *b = rv_batch_new(s, 4);
    rv_line_decoder d;
    rv_line_decoder_init(&d, s, true, ';', 0);
    const char *reason = NULL;
    cr_assert_eq(dec(&d, b, "", &reason), RV_DEC_EMPTY); /* empty lines before the header */
    cr_assert_eq(dec(&d, b, "n;name", &reason), RV_DEC_HEADER);
    cr_assert_eq(dec(&d, b, "5;five", &reason), RV_DEC_ROW);
    cr_assert_eq(dec(&d, b, "x;bad", &reason), RV_DEC_BAD);
    cr_assert_eq(b->nrows, 1);
    cr_assert_eq(b->cols[1].d.i64[0], 5);

    /* A new stream needs its own header; this one is given (schema order). */
    cr_assert(rv_line_decoder_restart(&d, "name;n\r\n", 8, &reason));
    cr_assert_eq(dec(&d, b, "six;6", &reason), RV_DEC_ROW);
    cr_assert_eq(b->cols[1].d.i64[1], 6);

    /* And this one reads it from its first line. */
    cr_assert(rv_line_decoder_restart(&d, NULL, 0, &reason));
    cr_assert_eq(dec(&d, b, "name;n", &reason), RV_DEC_HEADER);
    cr_assert_eq(dec(&d, b, "seven;7", &reason), RV_DEC_ROW);
    cr_assert_eq(b->nrows, 3);
    rv_line_decoder_fini(&d);
    rv_batch_unref(b);
    rv_schema_unref(s);
}

Test(rv_line_decoder, csv_bad_header_rejects_rows)
{
    rv_schema *s = schema2();
    rv_batch *b = rv_batch_new(s, 4);
    rv_line_decoder d;
    rv_line_decoder_init(&d, s, true, ',', 0);
    const char *reason = NULL;
    cr_assert_eq(dec(&d, b, "\"unterminated,n", &reason), RV_DEC_BAD);
    cr_assert(strncmp(reason, "bad CSV header: ", 16) == 0, "reason '%s'", reason);
    cr_assert_eq(dec(&d, b, "a,1", &reason), RV_DEC_BAD);
    cr_assert_str_eq(reason, "no usable CSV header");
    cr_assert_not(rv_line_decoder_restart(&d, "\"x", 2, &reason));
    cr_assert(strncmp(reason, "bad CSV header: ", 16) == 0);
    cr_assert_eq(dec(&d, b, "a,1", &reason), RV_DEC_BAD);
    cr_assert_eq(b->nrows, 0);
    rv_line_decoder_fini(&d);
    rv_batch_unref(b);
    rv_schema_unref(s);
}

Test(rv_csv_delimiter, accepts_one_safe_character_or_tab_names)
{
    struct {
        const char *in;
        bool ok;
        char want;
    } cases[] = {
        {",", true, ','}, {"\t", true, '\t'}, {"tab", true, '\t'}, {"\\t", true, '\t'}, {";", true, ';'},
        {"", false, 0},   {",,", false, 0},     {"\"", false, 0},   {"\n", false, 0},    {"\r", false, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char got = 0;
        cr_assert_eq(rv_csv_delimiter_parse(cases[i].in, &got), cases[i].ok, "case %zu", i);
        if (cases[i].ok) {
            cr_assert_eq(got, cases[i].want, "case %zu", i);
            cr_assert_eq(rv_line_delimiter(cases[i].in), cases[i].want, "case %zu", i);
        }
    }
}
