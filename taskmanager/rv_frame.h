/* rv_frame: the frames of the data plane (rv_dataplane) between task
 * managers — a fixed header naming the channel and the element, followed
 * by a payload (a batch in the rv_codec format, or the sender's URL).
 *
 * Header (RV_FRAME_HEADER_SIZE = 40 bytes, integers little-endian):
 *   0  magic "RVF1"        4  u8 version          5  u8 type
 *   6  u16 reserved (0)    8  u64 job             16 u64 chan
 *   24 u32 count           28 u8 kind             29 3 bytes padding (0)
 *   32 i64 watermark       40 payload
 * Types: HELLO (first frame on every connection: u16 URL length + the
 * sender's listen URL; job, chan, count zero), ANNOUNCE (sender -> receiver:
 * an outbox for job/chan exists, count = its backlog), DATA (one element,
 * count = the sender's backlog after it; kind batch carries the rv_codec
 * bytes, watermark carries the watermark, barrier carries the checkpoint
 * id in the watermark field, idle and end-of-stream carry nothing), CREDIT (receiver -> sender: count more elements may be sent).
 * The header is 8-byte aligned so a batch payload starts aligned. The
 * decoder checks every field and length; anything else is RV_ERR_CORRUPT
 * with a message saying what is wrong. Thread-safe (no state). */
#ifndef RV_FRAME_H
#define RV_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "rv_err.h"
#include "rv_record.h"

#define RV_FRAME_VERSION 1
#define RV_FRAME_HEADER_SIZE 40
#define RV_FRAME_MAX_URL 1024

typedef enum rv_frame_type {
    RV_FRAME_HELLO = 1,
    RV_FRAME_ANNOUNCE = 2,
    RV_FRAME_DATA = 3,
    RV_FRAME_CREDIT = 4,
} rv_frame_type;

/* Element kinds of DATA frames (wire values). */
typedef enum rv_frame_kind {
    RV_FRAME_BATCH = 0,
    RV_FRAME_WATERMARK = 1,
    RV_FRAME_IDLE = 2,
    RV_FRAME_EOS = 3,
    RV_FRAME_BARRIER = 4,
} rv_frame_kind;

typedef struct rv_frame {
    rv_frame_type type;
    uint64_t job, chan;
    uint32_t count;     /* ANNOUNCE, DATA: backlog; CREDIT: credits granted (>= 1) */
    rv_frame_kind kind; /* DATA only */
    int64_t wm;         /* DATA watermark, or a barrier's checkpoint id (>= 1) */
    /* DATA batch: the rv_codec bytes; HELLO: the URL (not NUL-terminated).
     * After rv_frame_decode it points into the decoded buffer. */
    const void *payload;
    size_t payload_len;
} rv_frame;

/* Writes the header of f to out[0 .. RV_FRAME_HEADER_SIZE). */
void rv_frame_put_header(const rv_frame *f, uint8_t *out);
/* Appends the whole frame (header and payload) to out. f must be valid
 * (what rv_frame_decode accepts); a HELLO URL is at most
 * RV_FRAME_MAX_URL bytes. */
void rv_frame_encode(const rv_frame *f, rv_buf *out);
/* Validates buf[0..len) and fills *out (payload borrowed from buf).
 * RV_ERR_CORRUPT on any bad magic, version, type, kind, reserved field or
 * length. */
rv_err *rv_frame_decode(const void *buf, size_t len, rv_frame *out);
/* "HELLO", "DATA", ... or "?" for an unknown value. */
const char *rv_frame_type_name(int type);

#endif
