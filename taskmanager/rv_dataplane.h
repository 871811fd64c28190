/* rv_dataplane: remote channels between task managers — one NNG
 * connection per pair of task managers carrying many logical channels,
 * with credit-based flow control (as Flink's network stack).
 *
 * A remote channel is two local rv_channels joined by the network:
 *   producer subtask --push--> outbox (sender TM) ==frames==> inbox (receiver TM) --pop--> consumer
 * The producer and consumer code is the same as for a local channel: a
 * full outbox blocks the producer (backpressure). The receiver grants
 * credits: one credit is one free slot in the inbox; the sender sends an
 * element (batch, watermark, idle marker, end of stream) only against a
 * credit, and reports its backlog (elements waiting in the outbox), so a
 * slow consumer slows its producers without filling memory or blocking
 * other channels on the same connection. Batches travel in the rv_codec
 * wire format; every frame is validated, and a corrupt frame fails that
 * channel's job (through the fail callback), never the process.
 *
 * Channel keys are chosen by the caller, identical on both sides (job key
 * + channel number). Credits make deployment order irrelevant: a sender
 * waits until the receiver has opened the inbox and granted credit.
 *
 * Threads: all functions are thread-safe. The data plane runs its own I/O
 * thread(s); callbacks (fail) run on them and must not block. */
#ifndef RV_DATAPLANE_H
#define RV_DATAPLANE_H

#include <stdint.h>

#include "rv_channel.h"
#include "rv_err.h"
#include "rv_schema.h"

typedef struct rv_dataplane rv_dataplane;

typedef struct rv_chan_key {
    uint64_t job;  /* identifies the job (e.g. a hash of its id) */
    uint64_t chan; /* identifies the channel within the job */
} rv_chan_key;

/* Listens on listen_url (tcp://host:port; port 0 = any free port) and
 * starts the I/O thread. `name` tags log lines. */
rv_err *rv_dataplane_new(const char *listen_url, const char *name, rv_dataplane **out);
/* Closes every channel and connection, stops the threads, frees. */
void rv_dataplane_free(rv_dataplane *dp);
/* The address peers dial (the bound port resolved). */
const char *rv_dataplane_url(const rv_dataplane *dp);

/* Sender side. Returns the outbox: a channel of `capacity` elements that
 * the producer pushes into (with its cancel flag); the data plane owns it
 * and forwards its elements, in order, to the peer at peer_url, which must
 * open the same key with rv_dataplane_open_in. Batches must have `schema`.
 * The returned channel stays valid until rv_dataplane_close_job. */
rv_err *rv_dataplane_open_out(rv_dataplane *dp, rv_chan_key key, const char *peer_url, rv_schema *schema,
                              uint32_t capacity, rv_channel **outbox);

/* A corrupt or unexpected frame, or a lost connection, for a channel of a
 * job: the job must fail with err (ownership passed). Called at most once
 * per channel, on an I/O thread. */
typedef void (*rv_dataplane_fail_fn)(void *arg, rv_err *err);

/* Receiver side: elements for key are pushed into inbox (created by the
 * caller with the consumer's doorbell; it stays the caller's), never more
 * than its free capacity (credits). Frames are checked against schema. */
rv_err *rv_dataplane_open_in(rv_dataplane *dp, rv_chan_key key, rv_channel *inbox, rv_schema *schema,
                             rv_dataplane_fail_fn fail, void *arg);

/* Forgets every channel of job (both sides) after its subtasks stopped:
 * frees outboxes and whatever they still hold; later frames for the job
 * are dropped. */
void rv_dataplane_close_job(rv_dataplane *dp, uint64_t job);

typedef struct rv_dataplane_stats {
    uint64_t frames_sent, frames_received, bytes_sent, bytes_received;
    uint64_t frames_rejected; /* corrupt, unknown channel, over credit */
} rv_dataplane_stats;
void rv_dataplane_get_stats(rv_dataplane *dp, rv_dataplane_stats *st);

#endif
