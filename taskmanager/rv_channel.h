/* rv_channel: bounded single-producer single-consumer queues of stream
 * elements between subtasks of one task manager.
 *
 * An element is a batch, a watermark, an idle marker, a checkpoint
 * barrier or end-of-stream;
 * elements keep their order, so control elements are never overtaken by
 * data. A full channel blocks its producer (backpressure). The consumer
 * usually reads several channels (its input gate); they share one
 * doorbell, so it can sleep until any of them has data. Push and pop take
 * no lock on the fast path; locks are used only to sleep and wake. */
#ifndef RV_CHANNEL_H
#define RV_CHANNEL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "rv_batch.h"
#include "rv_err.h"
#include "rv_time.h"

typedef enum { RV_EL_BATCH, RV_EL_WATERMARK, RV_EL_IDLE, RV_EL_EOS, RV_EL_BARRIER } rv_elem_kind;

typedef struct rv_elem {
    rv_elem_kind kind;
    union {
        rv_batch *b;  /* RV_EL_BATCH: owned by whoever holds the element */
        int64_t wm;   /* RV_EL_WATERMARK */
        uint64_t chk; /* RV_EL_BARRIER: the checkpoint id */
    } u;
} rv_elem;

/* Wakes a consumer sleeping on several channels. */
typedef struct rv_doorbell {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_int waiting;
    bool rung; /* under mu */
} rv_doorbell;

void rv_doorbell_init(rv_doorbell *d);
void rv_doorbell_fini(rv_doorbell *d);
/* Rings the bell (wakes the consumer if it sleeps). Any thread. */
void rv_doorbell_ring(rv_doorbell *d);
/* Consumer: announce the intent to sleep. Then re-check the channels; if
 * still nothing, call rv_doorbell_sleep, else rv_doorbell_cancel_wait. */
void rv_doorbell_prepare(rv_doorbell *d);
void rv_doorbell_cancel_wait(rv_doorbell *d);
/* Sleeps until rung or until the CLOCK_MONOTONIC deadline (ns). */
void rv_doorbell_sleep(rv_doorbell *d, int64_t deadline_ns);

typedef struct rv_channel rv_channel;

/* capacity: elements (rounded up to a power of two). The consumer's
 * doorbell is rung on every push that finds the consumer waiting. */
rv_channel *rv_channel_new(uint32_t capacity, rv_doorbell *consumer);
/* Also rings `bell` after every pop that frees a slot, for a network
 * bridge that grants credits as the consumer makes room. Before use. */
void rv_channel_set_pop_bell(rv_channel *ch, rv_doorbell *bell);
/* Frees the channel and any batches still in it. No thread may use it. */
void rv_channel_free(rv_channel *ch);

/* Producer: appends el, blocking while the channel is full. Returns
 * RV_ERR_CANCELED (and leaves el with the caller) if *cancel becomes true
 * while waiting. Adds the time spent blocked to *blocked_ns if not NULL. */
rv_code rv_channel_push(rv_channel *ch, rv_elem el, const atomic_bool *cancel, uint64_t *blocked_ns);
/* Consumer: takes the oldest element if any. Never blocks. */
bool rv_channel_pop(rv_channel *ch, rv_elem *out);
/* Elements queued (approximate when read by another thread). */
uint32_t rv_channel_len(const rv_channel *ch);
uint32_t rv_channel_capacity(const rv_channel *ch);

#endif
