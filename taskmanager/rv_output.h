/* rv_output: the producer side of one task edge for one subtask — routes
 * the batches a node emits to the channels of the consuming subtasks.
 *
 * forward: one channel; rebalance: whole batches round-robin; broadcast:
 * a shared reference to every channel; hash: rows are split by key group
 * into per-target buffers that are sent when full (RV_OUTPUT_ROWS rows) or
 * when the buffer timeout expires, so batches stay large under load and
 * latency stays bounded when it is low. Control elements (watermarks,
 * idle, end-of-stream) flush the buffers first, so they never overtake
 * data, and go to every channel. Used by one subtask thread only. */
#ifndef RV_OUTPUT_H
#define RV_OUTPUT_H

#include <stdatomic.h>

#include "rv_channel.h"
#include "rv_graph.h"

#define RV_OUTPUT_ROWS 4096

typedef struct rv_output rv_output;

/* chans[0..nchans) are the consumer subtasks' channels in subtask order
 * (forward: exactly one). For hash, consumer_node names the keyed node
 * whose key_by expressions are evaluated here on `schema`. */
rv_err *rv_output_new(rv_partitioning part, rv_channel **chans, int nchans, const rv_jobspec *js, int consumer_node,
                      rv_schema *schema, const atomic_bool *cancel, rv_output **out);
void rv_output_free(rv_output *o);
/* Routes b (borrowed). */
rv_code rv_output_batch(rv_output *o, const rv_batch *b);
/* Flushes and sends a control element to every channel. */
rv_code rv_output_control(rv_output *o, rv_elem el);
/* Sends buffers older than the timeout (all buffers if force). */
rv_code rv_output_flush(rv_output *o, int64_t now_ns, bool force);
/* Monotonic time (ns) at which a buffer must be sent, or INT64_MAX. */
int64_t rv_output_deadline(const rv_output *o);
/* Time the producer spent blocked on full channels. */
uint64_t rv_output_blocked_ns(const rv_output *o);

#endif
