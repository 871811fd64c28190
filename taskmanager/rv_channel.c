/* rv_channel: lock-free SPSC ring with sleeping via doorbells.
 *
 * Wake-up protocol (no lost wake-ups): a sleeper first publishes
 * `waiting = 1`, then re-checks for work, then sleeps until `rung`. A
 * waker first publishes its work (the tail/head index), then reads
 * `waiting` and, if set, rings under the mutex. Both sides use
 * sequentially consistent atomics, so either the sleeper sees the work or
 * the waker sees the sleeper. */
#include "rv_channel.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rv_mem.h"

struct rv_channel {
    _Alignas(64) atomic_uint_fast64_t head; /* next to pop (consumer) */
    _Alignas(64) atomic_uint_fast64_t tail; /* next to push (producer) */
    _Alignas(64) uint32_t mask;
    rv_elem *ring;
    rv_doorbell *consumer;
    rv_doorbell *pop_bell; /* optional: rung after every pop */
    rv_doorbell producer;  /* the producer sleeps here when full */
};

void rv_doorbell_init(rv_doorbell *d)
{
    pthread_mutex_init(&d->mu, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&d->cv, &attr);
    pthread_condattr_destroy(&attr);
    atomic_init(&d->waiting, 0);
    d->rung = false;
}

void rv_doorbell_fini(rv_doorbell *d)
{
    pthread_mutex_destroy(&d->mu);
    pthread_cond_destroy(&d->cv);
}

void rv_doorbell_ring(rv_doorbell *d)
{
    if (!atomic_load(&d->waiting))
        return;
    pthread_mutex_lock(&d->mu);
    d->rung = true;
    pthread_cond_signal(&d->cv);
    pthread_mutex_unlock(&d->mu);
}

void rv_doorbell_prepare(rv_doorbell *d) { atomic_store(&d->waiting, 1); }

void rv_doorbell_cancel_wait(rv_doorbell *d) { atomic_store(&d->waiting, 0); }

void rv_doorbell_sleep(rv_doorbell *d, int64_t deadline_ns)
{
    struct timespec ts = {.tv_sec = deadline_ns / 1000000000, .tv_nsec = deadline_ns % 1000000000};
    pthread_mutex_lock(&d->mu);
    while (!d->rung) {
        if (pthread_cond_timedwait(&d->cv, &d->mu, &ts) != 0)
            break;
    }
    d->rung = false;
    pthread_mutex_unlock(&d->mu);
    atomic_store(&d->waiting, 0);
}

rv_channel *rv_channel_new(uint32_t capacity, rv_doorbell *consumer)
{
    uint32_t n = 2;
    while (n < capacity)
        n *= 2;
    /* The struct is cache-line aligned (head and tail on their own lines). */
    rv_channel *ch = aligned_alloc(_Alignof(rv_channel), (sizeof(*ch) + 63) / 64 * 64);
    if (!ch) {
        fprintf(stderr, "rivulet: out of memory allocating a channel\n");
        abort();
    }
    memset(ch, 0, sizeof(*ch));
    ch->mask = n - 1;
    ch->ring = rv_xcalloc(n, sizeof(rv_elem));
    ch->consumer = consumer;
    atomic_init(&ch->head, 0);
    atomic_init(&ch->tail, 0);
    rv_doorbell_init(&ch->producer);
    return ch;
}

void rv_channel_free(rv_channel *ch)
{
    if (!ch)
        return;
    rv_elem el;
    while (rv_channel_pop(ch, &el))
        if (el.kind == RV_EL_BATCH)
            rv_batch_unref(el.u.b);
    rv_doorbell_fini(&ch->producer);
    free(ch->ring);
    free(ch);
}

rv_code rv_channel_push(rv_channel *ch, rv_elem el, const atomic_bool *cancel, uint64_t *blocked_ns)
{
    uint64_t tail = atomic_load_explicit(&ch->tail, memory_order_relaxed);
    if (tail - atomic_load(&ch->head) > ch->mask) {
        int64_t start = rv_now_ns();
        for (;;) {
            rv_doorbell_prepare(&ch->producer);
            if (tail - atomic_load(&ch->head) <= ch->mask) {
                rv_doorbell_cancel_wait(&ch->producer);
                break;
            }
            if (cancel && atomic_load(cancel)) {
                rv_doorbell_cancel_wait(&ch->producer);
                return RV_ERR_CANCELED;
            }
            rv_doorbell_sleep(&ch->producer, rv_now_ns() + 50 * 1000000);
        }
        if (blocked_ns)
            *blocked_ns += (uint64_t)(rv_now_ns() - start);
    }
    ch->ring[tail & ch->mask] = el;
    atomic_store(&ch->tail, tail + 1);
    rv_doorbell_ring(ch->consumer);
    return RV_OK;
}

bool rv_channel_pop(rv_channel *ch, rv_elem *out)
{
    uint64_t head = atomic_load_explicit(&ch->head, memory_order_relaxed);
    if (head == atomic_load(&ch->tail))
        return false;
    *out = ch->ring[head & ch->mask];
    atomic_store(&ch->head, head + 1);
    rv_doorbell_ring(&ch->producer);
    if (ch->pop_bell)
        rv_doorbell_ring(ch->pop_bell);
    return true;
}

uint32_t rv_channel_len(const rv_channel *ch)
{
    return (uint32_t)(atomic_load(&ch->tail) - atomic_load(&ch->head));
}

uint32_t rv_channel_capacity(const rv_channel *ch) { return ch->mask + 1; }

void rv_channel_set_pop_bell(rv_channel *ch, rv_doorbell *bell) { ch->pop_bell = bell; }
