/* rv_codec: the wire format of batches for remote channels.
 *
 * A frame is a small versioned header followed by the column buffers back
 * to back (no per-row encoding):
 *   magic "RVB1" | u16 version | u16 nfields | u32 nrows | u32 flags
 *   per field: u8 type | u16 name length | name bytes
 *   per column: u8 has_nulls | [null bitmap, ceil(nrows/8) bytes]
 *               | values (bool: nrows bytes; int64/ts/float64: 8*nrows)
 *               | string: u32 data length | (nrows+1) u32 offsets | data
 * All integers little-endian. The decoder validates every length, offset
 * and type before trusting it, and rejects a corrupt or truncated frame
 * with RV_ERR_CORRUPT and a message saying what is wrong. */
#ifndef RV_CODEC_H
#define RV_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "rv_batch.h"
#include "rv_err.h"
#include "rv_record.h"

#define RV_CODEC_VERSION 1

/* Appends the encoding of b to out. */
void rv_codec_encode(const rv_batch *b, rv_buf *out);
/* Exact encoded size of b. */
size_t rv_codec_size(const rv_batch *b);
/* Decodes buf[0..len). When `expect` is not NULL the frame's schema must
 * equal it and the batch uses `expect` (one new reference); otherwise a
 * new schema is built from the frame. */
rv_err *rv_codec_decode(const void *buf, size_t len, rv_schema *expect, rv_batch **out);

#endif
