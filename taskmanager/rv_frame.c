/* rv_frame: encoding and validation of data-plane frames (the layout is in
 * rv_frame.h). Frames come from the network, so the decoder trusts nothing:
 * each type has exact rules for which header fields may be set and how long
 * its payload is, and a frame that breaks any of them is refused with a
 * message naming the field. The batch inside a DATA frame is validated
 * later by rv_codec_decode against the channel's schema. */
#include "rv_frame.h"

#include <assert.h>
#include <inttypes.h>
#include <string.h>

static const char MAGIC[4] = {'R', 'V', 'F', '1'};

static void st16(uint8_t *w, uint16_t v)
{
    w[0] = (uint8_t)v;
    w[1] = (uint8_t)(v >> 8);
}
static void st32(uint8_t *w, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        w[i] = (uint8_t)(v >> (8 * i));
}
static void st64(uint8_t *w, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        w[i] = (uint8_t)(v >> (8 * i));
}
static uint16_t ld16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t ld32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t ld64(const uint8_t *p) { return (uint64_t)ld32(p) | (uint64_t)ld32(p + 4) << 32; }

const char *rv_frame_type_name(int type)
{
    switch (type) {
    case RV_FRAME_HELLO: return "HELLO";
    case RV_FRAME_ANNOUNCE: return "ANNOUNCE";
    case RV_FRAME_DATA: return "DATA";
    case RV_FRAME_CREDIT: return "CREDIT";
    default: return "?";
    }
}

void rv_frame_put_header(const rv_frame *f, uint8_t *out)
{
    memset(out, 0, RV_FRAME_HEADER_SIZE);
    memcpy(out, MAGIC, 4);
    out[4] = RV_FRAME_VERSION;
    out[5] = (uint8_t)f->type;
    st64(out + 8, f->job);
    st64(out + 16, f->chan);
    st32(out + 24, f->count);
    out[28] = (uint8_t)f->kind;
    st64(out + 32, (uint64_t)f->wm);
}

void rv_frame_encode(const rv_frame *f, rv_buf *out)
{
    uint8_t h[RV_FRAME_HEADER_SIZE];
    rv_frame_put_header(f, h);
    rv_buf_append(out, h, sizeof(h));
    if (f->type == RV_FRAME_HELLO) {
        assert(f->payload_len <= RV_FRAME_MAX_URL);
        uint8_t l[2];
        st16(l, (uint16_t)f->payload_len);
        rv_buf_append(out, l, 2);
    }
    if (f->payload_len)
        rv_buf_append(out, f->payload, f->payload_len);
}

static bool url_char(uint8_t c) { return c > ' ' && c < 0x7f; }

rv_err *rv_frame_decode(const void *buf, size_t len, rv_frame *out)
{
    const uint8_t *p = buf;
    if (len < RV_FRAME_HEADER_SIZE)
        return rv_err_new(RV_ERR_CORRUPT, "truncated frame: %zu bytes, the header alone is %d", len,
                          RV_FRAME_HEADER_SIZE);
    if (memcmp(p, MAGIC, 4) != 0)
        return rv_err_new(RV_ERR_CORRUPT, "not a data-plane frame (bad magic)");
    if (p[4] != RV_FRAME_VERSION)
        return rv_err_new(RV_ERR_CORRUPT, "unsupported frame version %u (this build speaks version %d)",
                          (unsigned)p[4], RV_FRAME_VERSION);
    if (ld16(p + 6) != 0 || p[29] || p[30] || p[31])
        return rv_err_new(RV_ERR_CORRUPT, "corrupt frame: reserved header bytes are not zero");
    rv_frame f = {
        .type = (rv_frame_type)p[5],
        .job = ld64(p + 8),
        .chan = ld64(p + 16),
        .count = ld32(p + 24),
        .kind = (rv_frame_kind)p[28],
        .wm = (int64_t)ld64(p + 32),
        .payload = p + RV_FRAME_HEADER_SIZE,
        .payload_len = len - RV_FRAME_HEADER_SIZE,
    };
    const char *tn = rv_frame_type_name(p[5]);
    if (p[5] < RV_FRAME_HELLO || p[5] > RV_FRAME_CREDIT)
        return rv_err_new(RV_ERR_CORRUPT, "corrupt frame: unknown type %u", (unsigned)p[5]);
    if (f.type != RV_FRAME_DATA && (p[28] != 0 || f.wm != 0))
        return rv_err_new(RV_ERR_CORRUPT, "corrupt %s frame: element kind or watermark set", tn);

    switch (f.type) {
    case RV_FRAME_HELLO: {
        if (f.job || f.chan || f.count)
            return rv_err_new(RV_ERR_CORRUPT, "corrupt HELLO frame: channel fields set");
        if (f.payload_len < 2)
            return rv_err_new(RV_ERR_CORRUPT, "truncated HELLO frame: no URL length");
        size_t ulen = ld16(p + RV_FRAME_HEADER_SIZE);
        if (ulen == 0 || ulen > RV_FRAME_MAX_URL)
            return rv_err_new(RV_ERR_CORRUPT, "corrupt HELLO frame: URL length %zu (1 to %d)", ulen,
                              RV_FRAME_MAX_URL);
        if (f.payload_len != 2 + ulen)
            return rv_err_new(RV_ERR_CORRUPT, "corrupt HELLO frame: %zu payload bytes for a %zu-byte URL",
                              f.payload_len, ulen);
        const uint8_t *u = p + RV_FRAME_HEADER_SIZE + 2;
        for (size_t i = 0; i < ulen; i++)
            if (!url_char(u[i]))
                return rv_err_new(RV_ERR_CORRUPT, "corrupt HELLO frame: URL byte %zu is 0x%02x", i, (unsigned)u[i]);
        f.payload = u;
        f.payload_len = ulen;
        break;
    }
    case RV_FRAME_ANNOUNCE:
    case RV_FRAME_CREDIT:
        if (f.payload_len != 0)
            return rv_err_new(RV_ERR_CORRUPT, "corrupt %s frame: %zu unexpected payload bytes", tn, f.payload_len);
        if (f.type == RV_FRAME_CREDIT && f.count == 0)
            return rv_err_new(RV_ERR_CORRUPT, "corrupt CREDIT frame: zero credits");
        break;
    case RV_FRAME_DATA:
        switch (p[28]) {
        case RV_FRAME_BATCH:
            if (f.payload_len == 0)
                return rv_err_new(RV_ERR_CORRUPT, "truncated DATA frame: batch element without a batch");
            if (f.wm != 0)
                return rv_err_new(RV_ERR_CORRUPT, "corrupt DATA frame: watermark set on a batch element");
            break;
        case RV_FRAME_WATERMARK:
        case RV_FRAME_IDLE:
        case RV_FRAME_EOS:
        case RV_FRAME_BARRIER:
            if (f.payload_len != 0)
                return rv_err_new(RV_ERR_CORRUPT, "corrupt DATA frame: %zu payload bytes after a control element",
                                  f.payload_len);
            if (p[28] == RV_FRAME_BARRIER && f.wm <= 0)
                return rv_err_new(RV_ERR_CORRUPT, "corrupt DATA frame: barrier with checkpoint id %" PRId64, f.wm);
            if ((p[28] == RV_FRAME_IDLE || p[28] == RV_FRAME_EOS) && f.wm != 0)
                return rv_err_new(RV_ERR_CORRUPT, "corrupt DATA frame: watermark set on a control element");
            break;
        default: return rv_err_new(RV_ERR_CORRUPT, "corrupt DATA frame: unknown element kind %u", (unsigned)p[28]);
        }
        break;
    }
    if (f.payload_len == 0)
        f.payload = NULL;
    *out = f;
    return NULL;
}
