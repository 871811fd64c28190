/* Unit tests of rv_dataplane: two or three data planes in this process talk
 * over real TCP on 127.0.0.1 (ports chosen at run time). Covered: order and
 * content of many batches over several channels, credit backpressure, a
 * slow channel beside a fast one, corrupt and hostile frames (from a raw
 * PAIR1 socket that plays a misbehaving peer), a lost peer, opening the
 * inbox after the sender pushed, oversized batches split into frames, and
 * closing a job with data in flight. Expected batches are regenerated from
 * their seed by the consumer, independently of what was sent. */
#include <criterion/criterion.h>
#include <nng/nng.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rv_codec.h"
#include "rv_dataplane.h"
#include "rv_frame.h"
#include "rv_log.h"
#include "rv_nng.h"
#include "rv_time.h"

#define URL "tcp://127.0.0.1:0"

static void quiet(rv_log_level lvl, const char *line, void *arg) { (void)lvl, (void)line, (void)arg; }

static void setup(void) { rv_log_set_sink(quiet, NULL); }

static rv_dataplane *dp_new(const char *name)
{
    rv_dataplane *dp = NULL;
    rv_err *err = rv_dataplane_new(URL, name, &dp);
    cr_assert_null(err, "%s", rv_err_msg(err));
    cr_assert(strncmp(rv_dataplane_url(dp), "tcp://127.0.0.1:", 16) == 0);
    cr_assert_neq(strcmp(rv_dataplane_url(dp), URL), 0, "the bound port must be resolved");
    return dp;
}

static rv_schema *test_schema(void)
{
    rv_schema *s = rv_schema_new();
    rv_schema_add(s, "id", RV_T_INT64);
    rv_schema_add(s, "name", RV_T_STRING);
    rv_schema_add(s, "ts", RV_T_TIMESTAMP);
    return s;
}

/* ---- failure recording ---- */

typedef struct failrec {
    pthread_mutex_t mu;
    int calls;
    char msg[1024];
} failrec;

static void failrec_init(failrec *f)
{
    pthread_mutex_init(&f->mu, NULL);
    f->calls = 0;
    f->msg[0] = '\0';
}

static void on_fail(void *arg, rv_err *err)
{
    failrec *f = arg;
    pthread_mutex_lock(&f->mu);
    f->calls++;
    snprintf(f->msg, sizeof(f->msg), "%s", rv_err_msg(err));
    pthread_mutex_unlock(&f->mu);
    rv_err_free(err);
}

static int fail_calls(failrec *f)
{
    pthread_mutex_lock(&f->mu);
    int n = f->calls;
    pthread_mutex_unlock(&f->mu);
    return n;
}

static bool wait_fail(failrec *f, int ms)
{
    int64_t end = rv_now_ns() + (int64_t)ms * 1000000;
    while (rv_now_ns() < end) {
        if (fail_calls(f) > 0)
            return true;
        usleep(2000);
    }
    return fail_calls(f) > 0;
}

/* ---- deterministic batches ---- */

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

/* Batch number i of channel c: 1..16 random rows, about a quarter null. */
static rv_batch *make_batch(rv_schema *s, uint64_t c, uint64_t i)
{
    uint64_t st = mix(c * 1000003u + i + 1);
    uint32_t n = 1 + (uint32_t)(st % 16);
    rv_batch *b = rv_batch_new(s, n);
    for (uint32_t r = 0; r < n; r++) {
        st = mix(st);
        if (st % 4 == 0)
            rv_col_set_null(&b->cols[0], r);
        else
            rv_col_set_i64(&b->cols[0], r, (int64_t)st);
        st = mix(st);
        if (st % 5 == 0) {
            rv_col_set_null(&b->cols[1], r);
        } else {
            char str[24];
            int len = snprintf(str, sizeof(str), "s%llu", (unsigned long long)(st % 100000000));
            rv_col_set_str(&b->cols[1], r, str, (size_t)len);
        }
        st = mix(st);
        if (st % 6 == 0)
            rv_col_set_null(&b->cols[2], r);
        else
            rv_col_set_i64(&b->cols[2], r, 1700000000000LL + (int64_t)(st % 100000000));
    }
    b->nrows = n;
    return b;
}

static void assert_batch_eq(const rv_batch *got, const rv_batch *want, const char *what)
{
    cr_assert(rv_schema_equal(got->schema, want->schema), "%s: schema", what);
    cr_assert_eq(got->nrows, want->nrows, "%s: %u rows, expected %u", what, got->nrows, want->nrows);
    for (int c = 0; c < want->schema->nfields; c++) {
        for (uint32_t r = 0; r < want->nrows; r++) {
            rv_value x = rv_col_get_value(&got->cols[c], r), y = rv_col_get_value(&want->cols[c], r);
            cr_assert_eq(x.is_null, y.is_null, "%s: col %d row %u null", what, c, r);
            if (x.is_null)
                continue;
            if (want->cols[c].type == RV_T_STRING) {
                uint32_t lx, ly;
                const char *px = rv_col_str(&got->cols[c], r, &lx), *py = rv_col_str(&want->cols[c], r, &ly);
                cr_assert(lx == ly && memcmp(px, py, lx) == 0, "%s: col %d row %u string", what, c, r);
            } else {
                cr_assert_eq(got->cols[c].d.i64[r], want->cols[c].d.i64[r], "%s: col %d row %u", what, c, r);
            }
        }
    }
}

/* ---- producer and consumer helpers ---- */

static void push_ok(rv_channel *ch, rv_elem el)
{
    atomic_bool never;
    atomic_init(&never, false);
    cr_assert_eq(rv_channel_push(ch, el, &never, NULL), RV_OK);
}

static rv_elem wm_elem(int64_t wm) { return (rv_elem){.kind = RV_EL_WATERMARK, .u.wm = wm}; }

/* Pops from ch, sleeping on bell, for at most ms. */
static bool pop_wait(rv_channel *ch, rv_doorbell *bell, rv_elem *el, int ms)
{
    int64_t end = rv_now_ns() + (int64_t)ms * 1000000;
    for (;;) {
        if (rv_channel_pop(ch, el))
            return true;
        int64_t now = rv_now_ns();
        if (now >= end)
            return false;
        rv_doorbell_prepare(bell);
        if (rv_channel_len(ch) > 0) {
            rv_doorbell_cancel_wait(bell);
            continue;
        }
        rv_doorbell_sleep(bell, now + 20 * 1000000 < end ? now + 20 * 1000000 : end);
    }
}

static void free_elem(rv_elem el)
{
    if (el.kind == RV_EL_BATCH)
        rv_batch_unref(el.u.b);
}

/* ---- 1: many batches over three channels ---- */

#define NCHAN 3
#define NBATCH 10000
#define WM_EVERY 500

typedef struct producer {
    rv_channel *out;
    rv_schema *schema;
    uint64_t chan;
    uint64_t n; /* for produce_n */
} producer;

/* Pushes batches 0..n) of p->chan, nothing else. */
static void *produce_n(void *arg)
{
    producer *p = arg;
    for (uint64_t i = 0; i < p->n; i++)
        push_ok(p->out, (rv_elem){.kind = RV_EL_BATCH, .u.b = make_batch(p->schema, p->chan, i)});
    return NULL;
}

static void *produce(void *arg)
{
    producer *p = arg;
    for (uint64_t i = 0; i < NBATCH; i++) {
        push_ok(p->out, (rv_elem){.kind = RV_EL_BATCH, .u.b = make_batch(p->schema, p->chan, i)});
        if ((i + 1) % WM_EVERY == 0)
            push_ok(p->out, wm_elem((int64_t)(i + 1)));
    }
    push_ok(p->out, (rv_elem){.kind = RV_EL_IDLE});
    push_ok(p->out, wm_elem(INT64_MAX));
    push_ok(p->out, (rv_elem){.kind = RV_EL_EOS});
    return NULL;
}

Test(rv_dataplane, many_batches_on_three_channels_arrive_in_order_and_equal, .init = setup, .timeout = 60)
{
    rv_dataplane *a = dp_new("a"), *b = dp_new("b");
    rv_schema *s = test_schema();
    rv_doorbell bell;
    rv_doorbell_init(&bell);
    failrec fr;
    failrec_init(&fr);
    rv_channel *in[NCHAN];
    producer prod[NCHAN];
    pthread_t th[NCHAN];
    for (int c = 0; c < NCHAN; c++) {
        rv_chan_key key = {.job = 0xabcdef, .chan = (uint64_t)c};
        in[c] = rv_channel_new(16, &bell);
        rv_err *err = rv_dataplane_open_in(b, key, in[c], s, on_fail, &fr);
        cr_assert_null(err, "%s", rv_err_msg(err));
        prod[c] = (producer){.schema = s, .chan = (uint64_t)c};
        err = rv_dataplane_open_out(a, key, rv_dataplane_url(b), s, 16, &prod[c].out);
        cr_assert_null(err, "%s", rv_err_msg(err));
    }
    for (int c = 0; c < NCHAN; c++)
        pthread_create(&th[c], NULL, produce, &prod[c]);

    /* One consumer reads the three inboxes like an input gate. */
    uint64_t next[NCHAN] = {0};
    int stage[NCHAN] = {0}; /* 0 data, 1 idle seen, 2 final watermark seen, 3 eos */
    int done = 0;
    int64_t deadline = rv_now_ns() + 50LL * 1000000000;
    while (done < NCHAN) {
        bool any = false;
        for (int c = 0; c < NCHAN; c++) {
            rv_elem el;
            if (!rv_channel_pop(in[c], &el))
                continue;
            any = true;
            char what[64];
            snprintf(what, sizeof(what), "channel %d element after batch %llu", c, (unsigned long long)next[c]);
            if (stage[c] == 0 && el.kind == RV_EL_BATCH) {
                rv_batch *want = make_batch(s, (uint64_t)c, next[c]);
                assert_batch_eq(el.u.b, want, what);
                rv_batch_unref(want);
                next[c]++;
            } else if (stage[c] == 0 && el.kind == RV_EL_WATERMARK && el.u.wm != INT64_MAX) {
                cr_assert_eq(next[c] % WM_EVERY, 0, "%s: watermark out of place", what);
                cr_assert_eq(el.u.wm, (int64_t)next[c], "%s", what);
            } else if (stage[c] == 0 && el.kind == RV_EL_IDLE) {
                cr_assert_eq(next[c], NBATCH, "%s: idle before the last batch", what);
                stage[c] = 1;
            } else if (stage[c] == 1 && el.kind == RV_EL_WATERMARK) {
                cr_assert_eq(el.u.wm, INT64_MAX, "%s", what);
                stage[c] = 2;
            } else if (stage[c] == 2 && el.kind == RV_EL_EOS) {
                stage[c] = 3;
                done++;
            } else {
                cr_assert_fail("%s: unexpected element kind %d in stage %d", what, el.kind, stage[c]);
            }
            free_elem(el);
        }
        if (!any) {
            cr_assert(rv_now_ns() < deadline, "timed out: got %llu, %llu, %llu batches",
                      (unsigned long long)next[0], (unsigned long long)next[1], (unsigned long long)next[2]);
            rv_doorbell_prepare(&bell);
            bool ready = false;
            for (int c = 0; c < NCHAN; c++)
                ready |= rv_channel_len(in[c]) > 0;
            if (ready)
                rv_doorbell_cancel_wait(&bell);
            else
                rv_doorbell_sleep(&bell, rv_now_ns() + 100 * 1000000);
        }
    }
    for (int c = 0; c < NCHAN; c++)
        pthread_join(th[c], NULL);
    cr_assert_eq(fail_calls(&fr), 0, "unexpected failure: %s", fr.msg);

    rv_dataplane_stats sa, sb;
    rv_dataplane_get_stats(a, &sa);
    rv_dataplane_get_stats(b, &sb);
    uint64_t elements = NCHAN * (NBATCH + NBATCH / WM_EVERY + 3);
    /* a sends HELLO, 3 ANNOUNCE and every element; b receives exactly that. */
    cr_assert_eq(sa.frames_sent, 1 + NCHAN + elements);
    cr_assert_eq(sb.frames_received, sa.frames_sent);
    cr_assert_eq(sb.bytes_received, sa.bytes_sent);
    cr_assert_eq(sb.frames_rejected, 0);
    for (int i = 0; i < 500 && sa.frames_received != sb.frames_sent; i++) { /* the last credits may be in flight */
        usleep(2000);
        rv_dataplane_get_stats(a, &sa);
        rv_dataplane_get_stats(b, &sb);
    }
    cr_assert_eq(sa.frames_received, sb.frames_sent, "credits sent by b all arrive");
    cr_assert(sb.frames_sent < elements / 4, "credits are batched: %llu CREDIT frames for %llu elements",
              (unsigned long long)sb.frames_sent, (unsigned long long)elements);

    rv_dataplane_close_job(a, 0xabcdef);
    rv_dataplane_close_job(b, 0xabcdef);
    rv_dataplane_free(a);
    rv_dataplane_free(b);
    for (int c = 0; c < NCHAN; c++)
        rv_channel_free(in[c]);
    rv_doorbell_fini(&bell);
    rv_schema_unref(s);
}

/* ---- 2: backpressure ---- */

typedef struct canceller {
    atomic_bool *flag;
    atomic_bool done; /* the push returned: stop early */
    int ms;
} canceller;

static void *cancel_later(void *arg)
{
    canceller *c = arg;
    int64_t end = rv_now_ns() + (int64_t)c->ms * 1000000;
    while (!atomic_load(&c->done) && rv_now_ns() < end)
        usleep(1000);
    atomic_store(c->flag, true);
    return NULL;
}

/* Pushes el with a cancel flag raised after ms; returns the push result. */
static rv_code push_with_timeout(rv_channel *ch, rv_elem el, int ms)
{
    atomic_bool cancel;
    atomic_init(&cancel, false);
    canceller c = {.flag = &cancel, .ms = ms};
    atomic_init(&c.done, false);
    pthread_t t;
    pthread_create(&t, NULL, cancel_later, &c);
    rv_code rc = rv_channel_push(ch, el, &cancel, NULL);
    atomic_store(&c.done, true);
    pthread_join(t, NULL);
    return rc;
}

typedef struct wm_producer {
    rv_channel *out;
    int64_t from, to;
} wm_producer;

static void *produce_wms(void *arg)
{
    wm_producer *p = arg;
    for (int64_t i = p->from; i < p->to; i++)
        push_ok(p->out, wm_elem(i));
    return NULL;
}

Test(rv_dataplane, a_consumer_that_does_not_pop_blocks_the_producer, .init = setup, .timeout = 30)
{
    rv_dataplane *a = dp_new("a"), *b = dp_new("b");
    rv_schema *s = test_schema();
    rv_doorbell bell;
    rv_doorbell_init(&bell);
    failrec fr;
    failrec_init(&fr);
    rv_chan_key key = {.job = 1, .chan = 1};
    rv_channel *in = rv_channel_new(4, &bell), *out = NULL;
    cr_assert_null(rv_dataplane_open_in(b, key, in, s, on_fail, &fr));
    cr_assert_null(rv_dataplane_open_out(a, key, rv_dataplane_url(b), s, 4, &out));

    /* Outbox (4) plus inbox (4) take 8 elements; the 9th must block. */
    for (int i = 0; i < 8; i++)
        cr_assert_eq(push_with_timeout(out, wm_elem(i), 2000), RV_OK, "push %d blocked", i);
    int64_t t0 = rv_now_ns();
    cr_assert_eq(push_with_timeout(out, wm_elem(8), 200), RV_ERR_CANCELED, "push 8 went through");
    cr_assert(rv_now_ns() - t0 >= 190 * 1000000LL);
    cr_assert_eq(rv_channel_len(in), 4, "the inbox holds exactly its capacity");
    cr_assert_eq(rv_channel_len(out), 4);

    /* Popping lets everything flow, in order (the blocked push was cancelled
     * and 8 is pushed again by the producer). */
    wm_producer wp = {.out = out, .from = 8, .to = 40};
    pthread_t t;
    pthread_create(&t, NULL, produce_wms, &wp);
    for (int64_t expect = 0; expect < 40; expect++) {
        cr_assert(rv_channel_len(in) <= 4, "the inbox overflowed");
        rv_elem el;
        cr_assert(pop_wait(in, &bell, &el, 3000), "element %lld missing", (long long)expect);
        cr_assert_eq(el.kind, RV_EL_WATERMARK);
        cr_assert_eq(el.u.wm, expect);
    }
    pthread_join(t, NULL);
    cr_assert_eq(fail_calls(&fr), 0, "%s", fr.msg);
    rv_dataplane_close_job(a, 1);
    rv_dataplane_close_job(b, 1);
    rv_dataplane_free(a);
    rv_dataplane_free(b);
    rv_channel_free(in);
    rv_doorbell_fini(&bell);
    rv_schema_unref(s);
}

/* ---- 3: a slow channel beside a fast one ---- */

typedef struct flood {
    rv_channel *out;
    atomic_bool cancel;
    int pushed;
} flood;

static void *flood_main(void *arg)
{
    flood *f = arg;
    while (rv_channel_push(f->out, wm_elem(f->pushed), &f->cancel, NULL) == RV_OK)
        f->pushed++;
    return NULL;
}

Test(rv_dataplane, a_stalled_channel_does_not_block_another_on_the_same_connection, .init = setup, .timeout = 30)
{
    rv_dataplane *a = dp_new("a"), *b = dp_new("b");
    rv_schema *s = test_schema();
    rv_doorbell slow_bell, fast_bell;
    rv_doorbell_init(&slow_bell);
    rv_doorbell_init(&fast_bell);
    failrec fr;
    failrec_init(&fr);
    rv_chan_key slow = {.job = 2, .chan = 0}, fast = {.job = 2, .chan = 1};
    rv_channel *slow_in = rv_channel_new(8, &slow_bell), *fast_in = rv_channel_new(8, &fast_bell);
    rv_channel *fast_out;
    flood fl = {.pushed = 0};
    atomic_init(&fl.cancel, false);
    cr_assert_null(rv_dataplane_open_in(b, slow, slow_in, s, on_fail, &fr));
    cr_assert_null(rv_dataplane_open_in(b, fast, fast_in, s, on_fail, &fr));
    cr_assert_null(rv_dataplane_open_out(a, slow, rv_dataplane_url(b), s, 8, &fl.out));
    cr_assert_null(rv_dataplane_open_out(a, fast, rv_dataplane_url(b), s, 8, &fast_out));
    pthread_t t;
    pthread_create(&t, NULL, flood_main, &fl);

    /* Nobody pops the slow inbox; the fast channel still carries 3000 batches. */
    producer fast_prod = {.out = fast_out, .schema = s, .chan = 1, .n = 3000};
    pthread_t ft;
    pthread_create(&ft, NULL, produce_n, &fast_prod);
    int got = 0;
    while (got < 3000) {
        rv_elem el;
        cr_assert(pop_wait(fast_in, &fast_bell, &el, 5000), "fast channel stuck at %d", got);
        rv_batch *want = make_batch(s, 1, (uint64_t)got++);
        assert_batch_eq(el.u.b, want, "fast channel");
        rv_batch_unref(want);
        free_elem(el);
    }
    pthread_join(ft, NULL);
    /* The slow channel is full and its producer blocked at outbox + inbox. */
    cr_assert_eq(rv_channel_len(slow_in), 8);
    cr_assert_eq(fl.pushed, 16, "slow producer pushed %d", fl.pushed);
    atomic_store(&fl.cancel, true);
    pthread_join(t, NULL);
    cr_assert_eq(fail_calls(&fr), 0, "%s", fr.msg);

    rv_dataplane_close_job(a, 2);
    rv_dataplane_close_job(b, 2);
    rv_dataplane_free(a);
    rv_dataplane_free(b);
    rv_channel_free(slow_in);
    rv_channel_free(fast_in);
    rv_doorbell_fini(&slow_bell);
    rv_doorbell_fini(&fast_bell);
    rv_schema_unref(s);
}

/* ---- 4: corrupt frames ---- */

static const rv_nng_opts raw_opts = {.max_msg = 1 << 20, .send_timeout_ms = 2000, .recv_timeout_ms = 2000};

static void raw_send(nng_socket s, const void *p, size_t len)
{
    nng_msg *m;
    cr_assert_eq(nng_msg_alloc(&m, len), 0);
    memcpy(nng_msg_body(m), p, len);
    int rv = nng_sendmsg(s, m, 0);
    if (rv != 0)
        nng_msg_free(m);
    cr_assert_eq(rv, 0, "send: %s", nng_strerror(rv));
}

static void raw_send_frame(nng_socket s, const rv_frame *f)
{
    rv_buf b = {0};
    rv_frame_encode(f, &b);
    raw_send(s, b.data, b.len);
    rv_buf_fini(&b);
}

static uint64_t rejected(rv_dataplane *dp)
{
    rv_dataplane_stats st;
    rv_dataplane_get_stats(dp, &st);
    return st.frames_rejected;
}

static bool wait_rejected(rv_dataplane *dp, uint64_t n, int ms)
{
    int64_t end = rv_now_ns() + (int64_t)ms * 1000000;
    while (rejected(dp) < n && rv_now_ns() < end)
        usleep(2000);
    return rejected(dp) >= n;
}

/* Sends one raw message from a fresh plain PAIR1 socket. */
static void send_raw_once(rv_dataplane *dp, const void *p, size_t len)
{
    nng_socket s;
    rv_err *err = rv_nng_dial(rv_dataplane_url(dp), &raw_opts, 2000, &s);
    cr_assert_null(err, "%s", rv_err_msg(err));
    uint64_t before = rejected(dp);
    raw_send(s, p, len);
    cr_assert(wait_rejected(dp, before + 1, 2000), "the frame was not rejected");
    nng_close(s);
}

/* A round trip of one batch between two data planes (the plane still works). */
static void check_alive(rv_dataplane *a, rv_dataplane *b, uint64_t job)
{
    rv_schema *s = test_schema();
    rv_doorbell bell;
    rv_doorbell_init(&bell);
    failrec fr;
    failrec_init(&fr);
    rv_chan_key key = {.job = job, .chan = 0};
    rv_channel *in = rv_channel_new(4, &bell), *out;
    cr_assert_null(rv_dataplane_open_in(b, key, in, s, on_fail, &fr));
    cr_assert_null(rv_dataplane_open_out(a, key, rv_dataplane_url(b), s, 4, &out));
    push_ok(out, (rv_elem){.kind = RV_EL_BATCH, .u.b = make_batch(s, 9, 9)});
    rv_elem el;
    cr_assert(pop_wait(in, &bell, &el, 3000), "no batch after the corrupt frames");
    rv_batch *want = make_batch(s, 9, 9);
    assert_batch_eq(el.u.b, want, "after corrupt frames");
    rv_batch_unref(want);
    free_elem(el);
    rv_dataplane_close_job(a, job);
    rv_dataplane_close_job(b, job);
    rv_channel_free(in);
    rv_doorbell_fini(&bell);
    rv_schema_unref(s);
}

Test(rv_dataplane, garbage_and_truncated_frames_are_rejected_and_counted, .init = setup, .timeout = 30)
{
    rv_dataplane *a = dp_new("a"), *b = dp_new("b");
    static const char garbage[] = "GET / HTTP/1.1\r\nHost: example\r\n\r\n";
    send_raw_once(b, garbage, sizeof(garbage));
    uint8_t zeros[RV_FRAME_HEADER_SIZE + 100] = {0};
    send_raw_once(b, zeros, sizeof(zeros));
    /* A DATA frame cut inside its header. */
    rv_frame f = {.type = RV_FRAME_DATA, .job = 5, .chan = 1, .kind = RV_FRAME_EOS};
    rv_buf buf = {0};
    rv_frame_encode(&f, &buf);
    send_raw_once(b, buf.data, 20);
    /* A well-formed DATA frame on a connection that never said HELLO. */
    send_raw_once(b, buf.data, buf.len);
    rv_buf_fini(&buf);
    cr_assert_eq(rejected(b), 4);
    check_alive(a, b, 77);
    rv_dataplane_free(a);
    rv_dataplane_free(b);
}

/* A test peer speaking the protocol by hand: it dials dp (sending) and
 * listens for dp's credits. */
typedef struct fake_peer {
    nng_socket tx, rx;
    char *url;
} fake_peer;

static void fake_connect(fake_peer *fp, rv_dataplane *dp)
{
    rv_nng_opts lopts = raw_opts;
    lopts.poly = true;
    rv_err *err = rv_nng_listen(URL, &lopts, &fp->rx, &fp->url);
    cr_assert_null(err, "%s", rv_err_msg(err));
    err = rv_nng_dial(rv_dataplane_url(dp), &raw_opts, 2000, &fp->tx);
    cr_assert_null(err, "%s", rv_err_msg(err));
    rv_frame hello = {.type = RV_FRAME_HELLO, .payload = fp->url, .payload_len = strlen(fp->url)};
    raw_send_frame(fp->tx, &hello);
}

/* Receives the next frame that is not HELLO from dp. */
static rv_frame fake_recv(fake_peer *fp)
{
    for (;;) {
        nng_msg *m;
        int rv = nng_recvmsg(fp->rx, &m, 0);
        cr_assert_eq(rv, 0, "no frame from the data plane: %s", nng_strerror(rv));
        rv_frame f;
        rv_err *err = rv_frame_decode(nng_msg_body(m), nng_msg_len(m), &f);
        cr_assert_null(err, "%s", rv_err_msg(err));
        f.payload = NULL;
        nng_msg_free(m);
        if (f.type != RV_FRAME_HELLO)
            return f;
    }
}

static void fake_close(fake_peer *fp)
{
    nng_close(fp->tx);
    nng_close(fp->rx);
    free(fp->url);
}

Test(rv_dataplane, a_corrupt_batch_fails_the_channel_with_a_clear_message, .init = setup, .timeout = 30)
{
    rv_dataplane *dp = dp_new("rx");
    rv_schema *s = test_schema();
    rv_doorbell bell;
    rv_doorbell_init(&bell);
    failrec fr;
    failrec_init(&fr);
    rv_chan_key key = {.job = 0x42, .chan = 3};
    rv_channel *in = rv_channel_new(8, &bell);
    cr_assert_null(rv_dataplane_open_in(dp, key, in, s, on_fail, &fr));

    fake_peer fp;
    fake_connect(&fp, dp);
    rv_frame ann = {.type = RV_FRAME_ANNOUNCE, .job = key.job, .chan = key.chan, .count = 1};
    raw_send_frame(fp.tx, &ann);
    rv_frame credit = fake_recv(&fp);
    cr_assert_eq(credit.type, RV_FRAME_CREDIT);
    cr_assert_eq(credit.job, key.job);
    cr_assert_eq(credit.chan, key.chan);
    cr_assert_eq(credit.count, 8, "the first grant is the inbox capacity");

    /* A good batch first, then one whose codec header is damaged. */
    rv_batch *good = make_batch(s, 0, 0);
    rv_frame df = {.type = RV_FRAME_DATA, .job = key.job, .chan = key.chan, .kind = RV_FRAME_BATCH};
    uint8_t h[RV_FRAME_HEADER_SIZE];
    rv_frame_put_header(&df, h);
    rv_buf buf = {0};
    rv_buf_append(&buf, h, sizeof(h));
    rv_codec_encode(good, &buf);
    raw_send(fp.tx, buf.data, buf.len);
    rv_elem el;
    cr_assert(pop_wait(in, &bell, &el, 2000));
    assert_batch_eq(el.u.b, good, "good batch");
    free_elem(el);
    buf.data[RV_FRAME_HEADER_SIZE + 4] = 9; /* codec version */
    raw_send(fp.tx, buf.data, buf.len);
    cr_assert(wait_fail(&fr, 2000), "the fail callback did not run");
    cr_assert(strstr(fr.msg, "channel 0000000000000042/3"), "message: %s", fr.msg);
    cr_assert(strstr(fr.msg, "batch frame version 9"), "message: %s", fr.msg);
    cr_assert(strstr(fr.msg, fp.url), "message names the sender: %s", fr.msg);
    cr_assert_eq(rv_channel_len(in), 0, "nothing of the corrupt batch arrives");

    /* Later frames are dropped and counted; the callback ran once. */
    uint64_t before = rejected(dp);
    raw_send(fp.tx, buf.data, buf.len);
    cr_assert(wait_rejected(dp, before + 1, 2000));
    cr_assert_eq(fail_calls(&fr), 1);
    rv_buf_fini(&buf);
    rv_batch_unref(good);

    fake_close(&fp);
    rv_dataplane_close_job(dp, key.job);
    rv_dataplane_free(dp);
    rv_channel_free(in);
    rv_doorbell_fini(&bell);
    rv_schema_unref(s);
}

Test(rv_dataplane, elements_beyond_the_credit_fail_the_channel, .init = setup, .timeout = 30)
{
    rv_dataplane *dp = dp_new("rx");
    rv_schema *s = test_schema();
    rv_doorbell bell;
    rv_doorbell_init(&bell);
    failrec fr;
    failrec_init(&fr);
    rv_chan_key key = {.job = 0x43, .chan = 0};
    rv_channel *in = rv_channel_new(4, &bell);
    fake_peer fp;
    fake_connect(&fp, dp);
    /* Announce first: the inbox binds when it opens. */
    rv_frame ann = {.type = RV_FRAME_ANNOUNCE, .job = key.job, .chan = key.chan};
    raw_send_frame(fp.tx, &ann);
    usleep(50000);
    cr_assert_null(rv_dataplane_open_in(dp, key, in, s, on_fail, &fr));
    rv_frame credit = fake_recv(&fp);
    cr_assert_eq(credit.type, RV_FRAME_CREDIT);
    cr_assert_eq(credit.count, 4);
    for (int i = 0; i < 5; i++) {
        rv_frame w = {.type = RV_FRAME_DATA, .job = key.job, .chan = key.chan, .kind = RV_FRAME_WATERMARK, .wm = i};
        raw_send_frame(fp.tx, &w);
    }
    cr_assert(wait_fail(&fr, 2000));
    cr_assert(strstr(fr.msg, "more elements than the credits granted"), "message: %s", fr.msg);
    cr_assert_eq(rv_channel_len(in), 4, "the granted elements arrived, the extra one did not");
    fake_close(&fp);
    rv_dataplane_close_job(dp, key.job);
    rv_dataplane_free(dp);
    rv_channel_free(in);
    rv_doorbell_fini(&bell);
    rv_schema_unref(s);
}

/* ---- 5: a peer goes away ---- */

Test(rv_dataplane, a_freed_peer_fails_inboxes_and_frees_producers, .init = setup, .timeout = 30)
{
    rv_dataplane *a = dp_new("a"), *b = dp_new("b");
    rv_schema *s = test_schema();
    rv_doorbell bell;
    rv_doorbell_init(&bell);
    failrec fr;
    failrec_init(&fr);
    /* b -> a (inbox on a) and a -> b (inbox on b, never popped). */
    rv_chan_key ba = {.job = 3, .chan = 0}, ab = {.job = 3, .chan = 1};
    rv_channel *a_in = rv_channel_new(4, &bell), *b_in = rv_channel_new(4, &bell), *b_out, *a_out;
    failrec frb;
    failrec_init(&frb);
    cr_assert_null(rv_dataplane_open_in(a, ba, a_in, s, on_fail, &fr));
    cr_assert_null(rv_dataplane_open_in(b, ab, b_in, s, on_fail, &frb));
    cr_assert_null(rv_dataplane_open_out(b, ba, rv_dataplane_url(a), s, 4, &b_out));
    cr_assert_null(rv_dataplane_open_out(a, ab, rv_dataplane_url(b), s, 4, &a_out));
    push_ok(b_out, wm_elem(1));
    rv_elem el;
    cr_assert(pop_wait(a_in, &bell, &el, 3000));
    for (int i = 0; i < 8; i++) /* fills b's inbox and a's outbox */
        cr_assert_eq(push_with_timeout(a_out, wm_elem(i), 2000), RV_OK);
    cr_assert_eq(fail_calls(&fr), 0);

    rv_dataplane_free(b);
    cr_assert(wait_fail(&fr, 3000), "a's inbox did not learn that b is gone");
    cr_assert(strstr(fr.msg, "lost"), "message: %s", fr.msg);
    cr_assert(strstr(fr.msg, "channel 0000000000000003/0"), "message: %s", fr.msg);
    cr_assert_eq(fail_calls(&frb), 0, "no callback of a freed data plane runs");
    /* The outbox to b is dead: pushes no longer block. */
    for (int i = 0; i < 50; i++)
        cr_assert_eq(push_with_timeout(a_out, wm_elem(100 + i), 3000), RV_OK, "push %d blocked", i);
    usleep(20000);
    cr_assert_eq(fail_calls(&fr), 1, "the callback runs once");

    rv_dataplane_close_job(a, 3);
    rv_dataplane_free(a);
    rv_channel_free(a_in);
    rv_channel_free(b_in);
    rv_doorbell_fini(&bell);
    rv_schema_unref(s);
}

/* ---- 6: deployment order ---- */

Test(rv_dataplane, an_inbox_opened_after_the_sender_pushed_gets_everything, .init = setup, .timeout = 30)
{
    rv_dataplane *a = dp_new("a"), *b = dp_new("b");
    rv_schema *s = test_schema();
    rv_doorbell bell;
    rv_doorbell_init(&bell);
    failrec fr;
    failrec_init(&fr);
    rv_chan_key key = {.job = 4, .chan = 2};
    rv_channel *out, *in = rv_channel_new(2, &bell);
    cr_assert_null(rv_dataplane_open_out(a, key, rv_dataplane_url(b), s, 8, &out));
    for (uint64_t i = 0; i < 6; i++)
        push_ok(out, (rv_elem){.kind = RV_EL_BATCH, .u.b = make_batch(s, 4, i)});
    push_ok(out, (rv_elem){.kind = RV_EL_EOS});
    usleep(100000);
    cr_assert_eq(rv_channel_len(out), 7, "nothing leaves without credit");
    cr_assert_null(rv_dataplane_open_in(b, key, in, s, on_fail, &fr));
    for (uint64_t i = 0; i < 6; i++) {
        rv_elem el;
        cr_assert(pop_wait(in, &bell, &el, 3000), "batch %llu missing", (unsigned long long)i);
        cr_assert_eq(el.kind, RV_EL_BATCH);
        rv_batch *want = make_batch(s, 4, i);
        assert_batch_eq(el.u.b, want, "late inbox");
        rv_batch_unref(want);
        free_elem(el);
    }
    rv_elem el;
    cr_assert(pop_wait(in, &bell, &el, 3000));
    cr_assert_eq(el.kind, RV_EL_EOS);
    rv_dataplane_close_job(a, 4);
    rv_dataplane_close_job(b, 4);
    rv_dataplane_free(a);
    rv_dataplane_free(b);
    rv_channel_free(in);
    rv_doorbell_fini(&bell);
    rv_schema_unref(s);
}

/* ---- oversized batches, closing with data in flight, API errors ---- */

Test(rv_dataplane, a_batch_bigger_than_a_frame_arrives_in_slices, .init = setup, .timeout = 60)
{
    rv_dataplane *a = dp_new("a"), *b = dp_new("b");
    rv_schema *s = rv_schema_new();
    rv_schema_add(s, "n", RV_T_INT64);
    rv_schema_add(s, "blob", RV_T_STRING);
    rv_doorbell bell;
    rv_doorbell_init(&bell);
    failrec fr;
    failrec_init(&fr);
    const uint32_t rows = 40, blob = 1 << 20; /* 40 MiB of strings */
    char *payload = malloc(blob);
    rv_batch *big = rv_batch_new(s, rows);
    for (uint32_t r = 0; r < rows; r++) {
        memset(payload, 'a' + (int)(r % 26), blob);
        rv_col_set_i64(&big->cols[0], r, r);
        rv_col_set_str(&big->cols[1], r, payload, blob);
    }
    big->nrows = rows;
    free(payload);
    rv_chan_key key = {.job = 6, .chan = 0};
    rv_channel *out, *in = rv_channel_new(4, &bell);
    cr_assert_null(rv_dataplane_open_in(b, key, in, s, on_fail, &fr));
    cr_assert_null(rv_dataplane_open_out(a, key, rv_dataplane_url(b), s, 4, &out));
    push_ok(out, (rv_elem){.kind = RV_EL_BATCH, .u.b = rv_batch_ref(big)});
    push_ok(out, (rv_elem){.kind = RV_EL_EOS});
    uint32_t row = 0;
    int slices = 0;
    for (;;) {
        rv_elem el;
        cr_assert(pop_wait(in, &bell, &el, 10000), "stuck after %u rows", row);
        if (el.kind == RV_EL_EOS)
            break;
        cr_assert_eq(el.kind, RV_EL_BATCH);
        slices++;
        for (uint32_t r = 0; r < el.u.b->nrows; r++, row++) {
            cr_assert_eq(el.u.b->cols[0].d.i64[r], row);
            uint32_t len;
            const char *p = rv_col_str(&el.u.b->cols[1], r, &len);
            cr_assert_eq(len, blob);
            cr_assert(p[0] == 'a' + (int)(row % 26) && p[len - 1] == p[0]);
        }
        free_elem(el);
    }
    cr_assert_eq(row, rows);
    cr_assert(slices >= 3, "40 MiB in frames of at most 16 MiB needs at least 3, got %d", slices);
    cr_assert_eq(fail_calls(&fr), 0, "%s", fr.msg);
    rv_batch_unref(big);
    rv_dataplane_close_job(a, 6);
    rv_dataplane_close_job(b, 6);
    rv_dataplane_free(a);
    rv_dataplane_free(b);
    rv_channel_free(in);
    rv_doorbell_fini(&bell);
    rv_schema_unref(s);
}

Test(rv_dataplane, close_job_with_data_in_flight_frees_everything, .init = setup, .timeout = 30)
{
    rv_dataplane *a = dp_new("a"), *b = dp_new("b");
    rv_schema *s = test_schema();
    rv_doorbell bell;
    rv_doorbell_init(&bell);
    failrec fr;
    failrec_init(&fr);
    rv_chan_key key = {.job = 8, .chan = 0}, other = {.job = 9, .chan = 0};
    rv_channel *out, *in = rv_channel_new(4, &bell);
    cr_assert_null(rv_dataplane_open_in(b, key, in, s, on_fail, &fr));
    cr_assert_null(rv_dataplane_open_out(a, key, rv_dataplane_url(b), s, 8, &out));
    for (uint64_t i = 0; i < 12; i++)
        push_ok(out, (rv_elem){.kind = RV_EL_BATCH, .u.b = make_batch(s, 8, i)});
    for (int i = 0; i < 1000 && rv_channel_len(in) < 4; i++)
        usleep(2000);
    cr_assert_eq(rv_channel_len(in), 4);
    /* The receiver closes first: a frame for the closed job is dropped and counted. */
    rv_dataplane_close_job(b, 8);
    rv_elem el;
    while (rv_channel_pop(in, &el))
        free_elem(el);
    fake_peer fp;
    fake_connect(&fp, b);
    uint64_t before = rejected(b);
    rv_frame late = {.type = RV_FRAME_DATA, .job = key.job, .chan = key.chan, .kind = RV_FRAME_EOS};
    raw_send_frame(fp.tx, &late);
    cr_assert(wait_rejected(b, before + 1, 2000), "frames for a closed job must be counted");
    fake_close(&fp);
    rv_dataplane_close_job(a, 8); /* frees the outbox and the batches it holds (ASan checks) */
    /* Reopening the same key on a fresh job key works. */
    rv_channel *out2, *in2 = rv_channel_new(4, &bell);
    cr_assert_null(rv_dataplane_open_in(b, other, in2, s, on_fail, &fr));
    cr_assert_null(rv_dataplane_open_out(a, other, rv_dataplane_url(b), s, 4, &out2));
    push_ok(out2, wm_elem(5));
    cr_assert(pop_wait(in2, &bell, &el, 3000));
    cr_assert_eq(el.u.wm, 5);
    cr_assert_eq(fail_calls(&fr), 0, "%s", fr.msg);
    rv_dataplane_free(a); /* closes job 9 too */
    rv_dataplane_free(b);
    rv_channel_free(in);
    rv_channel_free(in2);
    rv_doorbell_fini(&bell);
    rv_schema_unref(s);
}

Test(rv_dataplane, bad_arguments_are_errors, .init = setup)
{
    rv_dataplane *dp = NULL;
    rv_err *err = rv_dataplane_new("http://x", "x", &dp);
    cr_assert_not_null(err);
    cr_assert_null(dp);
    rv_err_free(err);

    dp = dp_new("a");
    rv_schema *s = test_schema();
    rv_channel *out;
    rv_chan_key key = {1, 1};
    err = rv_dataplane_open_out(dp, key, "nonsense", s, 4, &out);
    cr_assert_not_null(err);
    cr_assert(strstr(rv_err_msg(err), "invalid peer URL"), "%s", rv_err_msg(err));
    rv_err_free(err);
    cr_assert_null(rv_dataplane_open_out(dp, key, "tcp://127.0.0.1:1", s, 4, &out));
    err = rv_dataplane_open_out(dp, key, "tcp://127.0.0.1:1", s, 4, &out);
    cr_assert(err && strstr(rv_err_msg(err), "already open"));
    rv_err_free(err);
    rv_doorbell bell;
    rv_doorbell_init(&bell);
    rv_channel *in = rv_channel_new(2, &bell);
    failrec fr;
    failrec_init(&fr);
    cr_assert_null(rv_dataplane_open_in(dp, key, in, s, on_fail, &fr));
    err = rv_dataplane_open_in(dp, key, in, s, on_fail, &fr);
    cr_assert(err && strstr(rv_err_msg(err), "already open"));
    rv_err_free(err);
    /* An unreachable peer: the outbox just waits; close and free do not hang. */
    push_ok(out, wm_elem(1));
    rv_dataplane_close_job(dp, 1);
    rv_dataplane_free(dp);
    rv_channel_free(in);
    rv_doorbell_fini(&bell);
    rv_schema_unref(s);
}
