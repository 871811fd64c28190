/* Unit tests of rv_channel: order, blocking when full, cancellation and
 * wake-ups across threads. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <unistd.h>

#include "rv_channel.h"

typedef struct {
    rv_channel *ch;
    int n;
    atomic_bool cancel;
} prod_arg;

static void *producer(void *p)
{
    prod_arg *a = p;
    for (int i = 0; i < a->n; i++) {
        rv_elem el = {.kind = RV_EL_WATERMARK, .u.wm = i};
        cr_assert_eq(rv_channel_push(a->ch, el, &a->cancel, NULL), RV_OK);
    }
    rv_elem eos = {.kind = RV_EL_EOS};
    rv_channel_push(a->ch, eos, &a->cancel, NULL);
    return NULL;
}

Test(rv_channel, keeps_order_across_threads_with_a_sleeping_consumer)
{
    rv_doorbell bell;
    rv_doorbell_init(&bell);
    prod_arg a = {.ch = rv_channel_new(4, &bell), .n = 50000};
    atomic_init(&a.cancel, false);
    pthread_t t;
    pthread_create(&t, NULL, producer, &a);
    int64_t expect = 0;
    for (;;) {
        rv_elem el;
        if (!rv_channel_pop(a.ch, &el)) {
            rv_doorbell_prepare(&bell);
            if (rv_channel_len(a.ch) > 0) {
                rv_doorbell_cancel_wait(&bell);
                continue;
            }
            rv_doorbell_sleep(&bell, rv_now_ns() + 1000000000LL);
            continue;
        }
        if (el.kind == RV_EL_EOS)
            break;
        cr_assert_eq(el.u.wm, expect, "element %lld arrived in place of %lld", (long long)el.u.wm, (long long)expect);
        expect++;
    }
    cr_assert_eq(expect, a.n);
    pthread_join(t, NULL);
    rv_channel_free(a.ch);
    rv_doorbell_fini(&bell);
}

Test(rv_channel, capacity_rounds_up_to_a_power_of_two)
{
    rv_doorbell bell;
    rv_doorbell_init(&bell);
    rv_channel *ch = rv_channel_new(5, &bell);
    cr_assert_eq(rv_channel_capacity(ch), 8);
    rv_channel_free(ch);
    rv_doorbell_fini(&bell);
}

static void *cancel_later(void *p)
{
    usleep(100000);
    atomic_store((atomic_bool *)p, true);
    return NULL;
}

Test(rv_channel, full_channel_blocks_the_producer_until_canceled)
{
    rv_doorbell bell;
    rv_doorbell_init(&bell);
    rv_channel *ch = rv_channel_new(2, &bell);
    atomic_bool cancel;
    atomic_init(&cancel, false);
    rv_elem el = {.kind = RV_EL_WATERMARK, .u.wm = 1};
    cr_assert_eq(rv_channel_push(ch, el, &cancel, NULL), RV_OK);
    cr_assert_eq(rv_channel_push(ch, el, &cancel, NULL), RV_OK);
    pthread_t t;
    pthread_create(&t, NULL, cancel_later, &cancel);
    uint64_t blocked = 0;
    int64_t t0 = rv_now_ns();
    cr_assert_eq(rv_channel_push(ch, el, &cancel, &blocked), RV_ERR_CANCELED);
    cr_assert_geq(rv_now_ns() - t0, 90 * 1000000LL, "the push waited for the cancel");
    cr_assert_eq(rv_channel_len(ch), 2);
    pthread_join(t, NULL);
    rv_channel_free(ch);
    rv_doorbell_fini(&bell);
}

typedef struct {
    rv_channel *ch;
    int popped;
} cons_arg;

static void *slow_consumer(void *p)
{
    cons_arg *a = p;
    usleep(100000);
    rv_elem el;
    while (a->popped < 3) {
        if (rv_channel_pop(a->ch, &el))
            a->popped++;
        else
            usleep(1000);
    }
    return NULL;
}

Test(rv_channel, blocked_producer_resumes_when_the_consumer_pops)
{
    rv_doorbell bell;
    rv_doorbell_init(&bell);
    rv_channel *ch = rv_channel_new(2, &bell);
    atomic_bool cancel;
    atomic_init(&cancel, false);
    rv_elem el = {.kind = RV_EL_WATERMARK, .u.wm = 7};
    rv_channel_push(ch, el, &cancel, NULL);
    rv_channel_push(ch, el, &cancel, NULL);
    cons_arg a = {.ch = ch};
    pthread_t t;
    pthread_create(&t, NULL, slow_consumer, &a);
    uint64_t blocked = 0;
    cr_assert_eq(rv_channel_push(ch, el, &cancel, &blocked), RV_OK);
    cr_assert_geq(blocked, 50 * 1000000ULL, "backpressure time is accounted (%llu ns)", (unsigned long long)blocked);
    pthread_join(t, NULL);
    cr_assert_eq(a.popped, 3);
    rv_channel_free(ch);
    rv_doorbell_fini(&bell);
}

Test(rv_channel, free_releases_queued_batches)
{
    rv_doorbell bell;
    rv_doorbell_init(&bell);
    rv_channel *ch = rv_channel_new(4, &bell);
    rv_schema *s = rv_schema_new();
    rv_schema_add(s, "x", RV_T_INT64);
    rv_elem el = {.kind = RV_EL_BATCH, .u.b = rv_batch_new(s, 16)};
    cr_assert_eq(rv_channel_push(ch, el, NULL, NULL), RV_OK);
    rv_schema_unref(s);
    rv_channel_free(ch); /* ASan reports a leak if the batch is not freed */
    rv_doorbell_fini(&bell);
}
