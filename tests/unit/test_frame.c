/* Unit tests of rv_frame: the exact header layout (bytes written by hand),
 * round trips of every frame type, every truncation of every frame refused
 * (for batch frames together with rv_codec), and each malformed field
 * refused with a message naming it. */
#include <criterion/criterion.h>
#include <string.h>

#include "rv_batch.h"
#include "rv_codec.h"
#include "rv_frame.h"

static rv_buf encode(const rv_frame *f)
{
    rv_buf b = {0};
    rv_frame_encode(f, &b);
    return b;
}

/* Decodes and expects failure with a message containing `needle`. */
static void expect_corrupt(const void *buf, size_t len, const char *needle)
{
    rv_frame f;
    rv_err *err = rv_frame_decode(buf, len, &f);
    cr_assert_not_null(err, "accepted a bad frame (expected \"%s\")", needle);
    cr_assert_eq(rv_err_code(err), RV_ERR_CORRUPT);
    cr_assert(strstr(rv_err_msg(err), needle), "message \"%s\" lacks \"%s\"", rv_err_msg(err), needle);
    rv_err_free(err);
}

Test(rv_frame, header_layout_is_little_endian_and_fixed)
{
    rv_frame f = {.type = RV_FRAME_DATA, .job = 0x0102030405060708u, .chan = 0x1112131415161718u,
                  .count = 0x21222324u, .kind = RV_FRAME_WATERMARK, .wm = -2};
    rv_buf b = encode(&f);
    static const uint8_t expect[RV_FRAME_HEADER_SIZE] = {
        'R', 'V', 'F', '1', 1, 3, 0, 0,                         /* magic, version, type, reserved */
        0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,         /* job */
        0x18, 0x17, 0x16, 0x15, 0x14, 0x13, 0x12, 0x11,         /* chan */
        0x24, 0x23, 0x22, 0x21, 1, 0, 0, 0,                     /* count, kind, padding */
        0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,         /* watermark -2 */
    };
    cr_assert_eq(b.len, RV_FRAME_HEADER_SIZE);
    cr_assert_arr_eq(b.data, expect, sizeof(expect));
    rv_buf_fini(&b);
}

Test(rv_frame, hello_carries_a_length_prefixed_url)
{
    const char *url = "tcp://10.0.0.7:6124";
    rv_frame f = {.type = RV_FRAME_HELLO, .payload = url, .payload_len = strlen(url)};
    rv_buf b = encode(&f);
    cr_assert_eq(b.len, RV_FRAME_HEADER_SIZE + 2 + strlen(url));
    cr_assert_eq((uint8_t)b.data[RV_FRAME_HEADER_SIZE], strlen(url));
    cr_assert_eq((uint8_t)b.data[RV_FRAME_HEADER_SIZE + 1], 0);
    rv_frame d;
    rv_err *err = rv_frame_decode(b.data, b.len, &d);
    cr_assert_null(err, "%s", rv_err_msg(err));
    cr_assert_eq(d.type, RV_FRAME_HELLO);
    cr_assert_eq(d.payload_len, strlen(url));
    cr_assert_arr_eq(d.payload, url, strlen(url));
    rv_buf_fini(&b);
}

Test(rv_frame, control_frames_round_trip)
{
    rv_frame in[] = {
        {.type = RV_FRAME_ANNOUNCE, .job = 7, .chan = 3, .count = 12},
        {.type = RV_FRAME_CREDIT, .job = UINT64_MAX, .chan = 0, .count = 64},
        {.type = RV_FRAME_DATA, .job = 1, .chan = 2, .count = 0, .kind = RV_FRAME_WATERMARK, .wm = INT64_MIN},
        {.type = RV_FRAME_DATA, .job = 1, .chan = 2, .count = 5, .kind = RV_FRAME_IDLE},
        {.type = RV_FRAME_DATA, .job = 1, .chan = 2, .count = 0, .kind = RV_FRAME_EOS},
        {.type = RV_FRAME_DATA, .job = 1, .chan = 2, .count = 3, .kind = RV_FRAME_BARRIER, .wm = 42},
    };
    for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
        rv_buf b = encode(&in[i]);
        cr_assert_eq(b.len, RV_FRAME_HEADER_SIZE);
        rv_frame d;
        rv_err *err = rv_frame_decode(b.data, b.len, &d);
        cr_assert_null(err, "frame %zu: %s", i, rv_err_msg(err));
        cr_assert_eq(d.type, in[i].type);
        cr_assert_eq(d.job, in[i].job);
        cr_assert_eq(d.chan, in[i].chan);
        cr_assert_eq(d.count, in[i].count);
        cr_assert_eq(d.kind, in[i].kind);
        cr_assert_eq(d.wm, in[i].wm);
        cr_assert_eq(d.payload_len, 0);
        rv_buf_fini(&b);
    }
}

static rv_batch *small_batch(void)
{
    rv_schema *s = rv_schema_new();
    rv_schema_add(s, "id", RV_T_INT64);
    rv_schema_add(s, "name", RV_T_STRING);
    rv_batch *b = rv_batch_new(s, 3);
    rv_schema_unref(s);
    for (uint32_t r = 0; r < 3; r++) {
        rv_col_set_i64(&b->cols[0], r, 100 + r);
        rv_col_set_str(&b->cols[1], r, "abc", r);
    }
    b->nrows = 3;
    return b;
}

/* A DATA frame with an encoded batch, as the data plane builds it. */
static rv_buf batch_frame(const rv_batch *b)
{
    rv_frame f = {.type = RV_FRAME_DATA, .job = 9, .chan = 4, .count = 2, .kind = RV_FRAME_BATCH};
    uint8_t h[RV_FRAME_HEADER_SIZE];
    rv_frame_put_header(&f, h);
    rv_buf out = {0};
    rv_buf_append(&out, h, sizeof(h));
    rv_codec_encode(b, &out);
    return out;
}

Test(rv_frame, batch_frame_payload_decodes_with_the_codec)
{
    rv_batch *b = small_batch();
    rv_buf buf = batch_frame(b);
    rv_frame d;
    rv_err *err = rv_frame_decode(buf.data, buf.len, &d);
    cr_assert_null(err, "%s", rv_err_msg(err));
    cr_assert_eq(d.kind, RV_FRAME_BATCH);
    cr_assert_eq(d.payload_len, rv_codec_size(b));
    cr_assert_eq((const char *)d.payload, buf.data + RV_FRAME_HEADER_SIZE);
    rv_batch *out = NULL;
    err = rv_codec_decode(d.payload, d.payload_len, b->schema, &out);
    cr_assert_null(err, "%s", rv_err_msg(err));
    cr_assert_eq(out->nrows, 3);
    cr_assert_eq(out->cols[0].d.i64[2], 102);
    uint32_t len;
    const char *p = rv_col_str(&out->cols[1], 2, &len);
    cr_assert_eq(len, 2);
    cr_assert_arr_eq(p, "ab", 2);
    rv_batch_unref(out);
    rv_batch_unref(b);
    rv_buf_fini(&buf);
}

/* Frame and codec validation together refuse every prefix of every frame. */
Test(rv_frame, every_truncation_is_refused)
{
    const char *url = "tcp://127.0.0.1:1";
    rv_frame fs[] = {
        {.type = RV_FRAME_HELLO, .payload = url, .payload_len = strlen(url)},
        {.type = RV_FRAME_ANNOUNCE, .job = 1, .chan = 1, .count = 1},
        {.type = RV_FRAME_CREDIT, .job = 1, .chan = 1, .count = 1},
        {.type = RV_FRAME_DATA, .job = 1, .chan = 1, .kind = RV_FRAME_EOS},
    };
    for (size_t i = 0; i < sizeof(fs) / sizeof(fs[0]); i++) {
        rv_buf b = encode(&fs[i]);
        for (size_t k = 0; k < b.len; k++) {
            rv_frame d;
            rv_err *err = rv_frame_decode(b.data, k, &d);
            cr_assert_not_null(err, "%s frame: prefix of %zu of %zu bytes accepted", rv_frame_type_name(fs[i].type), k,
                               b.len);
            rv_err_free(err);
        }
        rv_buf_fini(&b);
    }
    rv_batch *batch = small_batch();
    rv_buf b = batch_frame(batch);
    for (size_t k = 0; k < b.len; k++) {
        rv_frame d;
        rv_err *err = rv_frame_decode(b.data, k, &d);
        if (!err) {
            rv_batch *out = NULL;
            err = rv_codec_decode(d.payload, d.payload_len, batch->schema, &out);
            cr_assert_null(out);
        }
        cr_assert_not_null(err, "batch frame: prefix of %zu of %zu bytes accepted", k, b.len);
        rv_err_free(err);
    }
    rv_buf_fini(&b);
    rv_batch_unref(batch);
}

Test(rv_frame, bad_magic_version_type_and_kind_are_refused)
{
    rv_frame f = {.type = RV_FRAME_DATA, .job = 1, .chan = 2, .kind = RV_FRAME_IDLE};
    rv_buf b = encode(&f);
    uint8_t *p = (uint8_t *)b.data;
    uint8_t save;

    save = p[0], p[0] = 'X';
    expect_corrupt(p, b.len, "bad magic");
    p[0] = save;
    save = p[4], p[4] = 2;
    expect_corrupt(p, b.len, "version 2");
    p[4] = save;
    for (unsigned t = 0; t < 256; t++) {
        if (t >= RV_FRAME_HELLO && t <= RV_FRAME_CREDIT)
            continue;
        p[5] = (uint8_t)t;
        expect_corrupt(p, b.len, "unknown type");
    }
    p[5] = RV_FRAME_DATA;
    for (unsigned k = RV_FRAME_BARRIER + 1; k < 256; k++) {
        p[28] = (uint8_t)k;
        expect_corrupt(p, b.len, "unknown element kind");
    }
    p[28] = RV_FRAME_IDLE;
    rv_frame ok;
    rv_err *err = rv_frame_decode(p, b.len, &ok);
    cr_assert_null(err, "the restored frame must decode: %s", rv_err_msg(err));
    rv_buf_fini(&b);
}

Test(rv_frame, reserved_bytes_must_be_zero)
{
    rv_frame f = {.type = RV_FRAME_CREDIT, .job = 1, .chan = 2, .count = 3};
    rv_buf b = encode(&f);
    uint8_t *p = (uint8_t *)b.data;
    int reserved[] = {6, 7, 29, 30, 31};
    for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++) {
        p[reserved[i]] = 1;
        expect_corrupt(p, b.len, "reserved");
        p[reserved[i]] = 0;
    }
    rv_buf_fini(&b);
}

Test(rv_frame, fields_that_a_type_does_not_use_must_be_empty)
{
    /* A watermark or a kind on a control frame. */
    rv_frame f = {.type = RV_FRAME_ANNOUNCE, .job = 1, .chan = 2};
    rv_buf b = encode(&f);
    b.data[32] = 5;
    expect_corrupt(b.data, b.len, "element kind or watermark");
    b.data[32] = 0;
    b.data[28] = 1;
    expect_corrupt(b.data, b.len, "element kind or watermark");
    b.data[28] = 0;
    /* A payload on ANNOUNCE. */
    rv_buf_append(&b, "x", 1);
    expect_corrupt(b.data, b.len, "unexpected payload");
    rv_buf_fini(&b);

    /* Zero credits. */
    rv_frame c = {.type = RV_FRAME_CREDIT, .job = 1, .chan = 2, .count = 0};
    b = encode(&c);
    expect_corrupt(b.data, b.len, "zero credits");
    rv_buf_fini(&b);

    /* A watermark value on EOS, a payload on a watermark, a batch without one. */
    rv_frame e = {.type = RV_FRAME_DATA, .kind = RV_FRAME_EOS, .wm = 1};
    b = encode(&e);
    expect_corrupt(b.data, b.len, "watermark set on a control element");
    rv_buf_fini(&b);
    rv_frame w = {.type = RV_FRAME_DATA, .kind = RV_FRAME_WATERMARK, .wm = 1, .payload = "ab", .payload_len = 2};
    b = encode(&w);
    expect_corrupt(b.data, b.len, "payload bytes after a control element");
    rv_buf_fini(&b);
    rv_frame nb = {.type = RV_FRAME_DATA, .kind = RV_FRAME_BATCH};
    b = encode(&nb);
    expect_corrupt(b.data, b.len, "without a batch");
    rv_buf_fini(&b);
    rv_frame b0 = {.type = RV_FRAME_DATA, .kind = RV_FRAME_BARRIER, .wm = 0};
    b = encode(&b0);
    expect_corrupt(b.data, b.len, "barrier with checkpoint id 0");
    rv_buf_fini(&b);
    rv_frame bw = {.type = RV_FRAME_DATA, .kind = RV_FRAME_BATCH, .wm = 3, .payload = "RVB1", .payload_len = 4};
    b = encode(&bw);
    expect_corrupt(b.data, b.len, "watermark set on a batch");
    rv_buf_fini(&b);
}

Test(rv_frame, hello_urls_are_checked)
{
    rv_frame f = {.type = RV_FRAME_HELLO, .payload = "tcp://h:1", .payload_len = 9};
    rv_buf b = encode(&f);
    /* Length prefix disagreeing with the payload, both ways. */
    b.data[RV_FRAME_HEADER_SIZE] = 8;
    expect_corrupt(b.data, b.len, "payload bytes for a 8-byte URL");
    b.data[RV_FRAME_HEADER_SIZE] = 10;
    expect_corrupt(b.data, b.len, "payload bytes for a 10-byte URL");
    b.data[RV_FRAME_HEADER_SIZE] = 0;
    expect_corrupt(b.data, b.len, "URL length 0");
    b.data[RV_FRAME_HEADER_SIZE] = 9;
    /* A control character in the URL. */
    b.data[RV_FRAME_HEADER_SIZE + 2 + 3] = '\n';
    expect_corrupt(b.data, b.len, "URL byte 3 is 0x0a");
    b.data[RV_FRAME_HEADER_SIZE + 2 + 3] = ':';
    /* Channel fields on HELLO. */
    b.data[8] = 1;
    expect_corrupt(b.data, b.len, "channel fields set");
    rv_buf_fini(&b);

    /* Longer than the maximum. */
    static char longurl[RV_FRAME_MAX_URL + 1];
    memset(longurl, 'a', sizeof(longurl));
    rv_buf l = {0};
    rv_frame h = {.type = RV_FRAME_HELLO};
    uint8_t hdr[RV_FRAME_HEADER_SIZE];
    rv_frame_put_header(&h, hdr);
    rv_buf_append(&l, hdr, sizeof(hdr));
    uint8_t len[2] = {(uint8_t)(sizeof(longurl) & 0xff), (uint8_t)(sizeof(longurl) >> 8)};
    rv_buf_append(&l, len, 2);
    rv_buf_append(&l, longurl, sizeof(longurl));
    expect_corrupt(l.data, l.len, "URL length 1025");
    rv_buf_fini(&l);
}

Test(rv_frame, type_names)
{
    cr_assert_str_eq(rv_frame_type_name(RV_FRAME_HELLO), "HELLO");
    cr_assert_str_eq(rv_frame_type_name(RV_FRAME_CREDIT), "CREDIT");
    cr_assert_str_eq(rv_frame_type_name(0), "?");
}
