/* rv_dataplane_send: the sender thread of the data plane and the dial
 * sockets it owns (see rv_dataplane.c for the design). Per pass it opens
 * the connections channels need and replaces lost ones, queues HELLO,
 * ANNOUNCE and due CREDIT frames, takes at most one element from every
 * outbox that has credit (round robin), encodes outside the lock, and
 * hands the frames to NNG with non-blocking sends; a frame NNG cannot take
 * yet waits in the peer's own queue, and no data is taken for that peer
 * until the queue drains. Batches too big for one frame go out in slices,
 * one credit each. */
#include <assert.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "rv_codec.h"
#include "rv_dataplane_int.h"
#include "rv_frame.h"
#include "rv_log.h"
#include "rv_mem.h"
#include "rv_nng.h"
#include "rv_time.h"

#define SEND_QUEUE 8192              /* NNG_OPT_SENDBUF of dial sockets (NNG's maximum) */
#define IDLE_SLEEP_NS (100 * 1000000LL)
#define RETRY_SLEEP_NS (1000000LL)   /* while a peer's queue waits for NNG */
#define REDIAL_NS (1000 * 1000000LL) /* after a failed socket set-up */

static const rv_nng_opts DIAL_OPTS = {.max_msg = 4096, .send_timeout_ms = 1000, .recv_timeout_ms = 1000};

/* A dial socket lost its connection (NNG thread). */
static void dial_pipe_cb(nng_pipe pipe, nng_pipe_ev ev, void *arg)
{
    rv_dp_peer *p = arg;
    rv_dataplane *dp = p->dp;
    if (ev != NNG_PIPE_EV_REM_POST)
        return;
    rv_dp_failures fs = {0};
    int sock_id = nng_socket_id(nng_pipe_socket(pipe));
    pthread_mutex_lock(&dp->mu);
    if (!dp->stopping && p->has_sock && !p->sock_dead && p->sock_id == sock_id) {
        p->sock_dead = true;
        char *what = rv_xasprintf("connection to %s lost", p->url);
        rv_dp_connection_lost(dp, &fs, 0, p, what);
        free(what);
    }
    pthread_mutex_unlock(&dp->mu);
    rv_dp_run_failures(dp, &fs);
    rv_doorbell_ring(&dp->bell);
}

static nng_msg *frame_msg(rv_dataplane *dp, const rv_frame *f, const rv_batch *b)
{
    dp->scratch.len = 0;
    if (b) {
        uint8_t h[RV_FRAME_HEADER_SIZE];
        rv_frame_put_header(f, h);
        rv_buf_append(&dp->scratch, h, sizeof(h));
        rv_codec_encode(b, &dp->scratch);
    } else {
        rv_frame_encode(f, &dp->scratch);
    }
    nng_msg *m;
    if (nng_msg_alloc(&m, dp->scratch.len) != 0) {
        RV_LOG_ERROR(dp->name, "data plane: out of memory allocating a %zu-byte frame", dp->scratch.len);
        abort();
    }
    memcpy(nng_msg_body(m), dp->scratch.data, dp->scratch.len);
    return m;
}

static void peer_queue(rv_dp_peer *p, nng_msg *m)
{
    if (p->qlen == p->qcap)
        rv_xgrow((void **)&p->q, &p->qcap, p->qlen + 1, sizeof(nng_msg *));
    p->q[p->qlen++] = m;
}

void rv_dp_peer_drop_queue(rv_dp_peer *p)
{
    for (size_t i = p->qhead; i < p->qlen; i++)
        nng_msg_free(p->q[i]);
    p->qhead = p->qlen = 0;
}

/* Hands queued frames to NNG without blocking. Returns true if it sent any. */
static bool peer_flush(rv_dataplane *dp, rv_dp_peer *p)
{
    bool any = false;
    while (p->qhead < p->qlen) {
        nng_msg *m = p->q[p->qhead];
        size_t len = nng_msg_len(m);
        int rv = nng_sendmsg(p->sock, m, NNG_FLAG_NONBLOCK);
        if (rv == NNG_EAGAIN)
            break;
        p->qhead++;
        any = true;
        if (rv != 0) { /* the socket is unusable: treat as a lost connection */
            nng_msg_free(m);
            rv_dp_failures fs = {0};
            pthread_mutex_lock(&dp->mu);
            if (p->has_sock && !p->sock_dead) {
                p->sock_dead = true;
                char *what = rv_xasprintf("sending to %s: %s", p->url, nng_strerror(rv));
                rv_dp_connection_lost(dp, &fs, 0, p, what);
                free(what);
            }
            pthread_mutex_unlock(&dp->mu);
            rv_dp_run_failures(dp, &fs);
            rv_dp_peer_drop_queue(p);
            break;
        }
        rv_dp_stat_add(&dp->frames_sent, 1);
        rv_dp_stat_add(&dp->bytes_sent, len);
    }
    if (p->qhead == p->qlen)
        p->qhead = p->qlen = 0;
    return any;
}

static bool open_peer_socket(rv_dataplane *dp, rv_dp_peer *p)
{
    nng_socket s;
    rv_err *err = rv_nng_dial(p->url, &DIAL_OPTS, 0, &s);
    int rv = 0;
    if (!err && (rv = nng_socket_set_int(s, NNG_OPT_SENDBUF, SEND_QUEUE)) == 0)
        rv = nng_pipe_notify(s, NNG_PIPE_EV_REM_POST, dial_pipe_cb, p);
    if (!err && rv != 0) {
        nng_close(s);
        err = rv_nng_err(rv, "setting up the connection to %s", p->url);
    }
    if (err) {
        RV_LOG_WARN(dp->name, "data plane: %s (retrying)", rv_err_msg(err));
        rv_err_free(err);
        p->retry_at = rv_now_ns() + REDIAL_NS;
        return false;
    }
    p->sock = s;
    return true;
}

/* Opens the dial sockets that channels need and closes those whose
 * connection was lost. */
static bool maintain_sockets(rv_dataplane *dp)
{
    bool did = false;
    int64_t now = rv_now_ns();
    pthread_mutex_lock(&dp->mu);
    rv_dp_peer *head = dp->peers;
    for (rv_dp_peer *p = head; p; p = p->next) {
        p->act = RV_DP_ACT_NONE;
        /* An unused connection stays open for later jobs: closing sockets
         * is the riskiest NNG operation (see rv_dataplane_free). */
        if (p->has_sock && p->sock_dead) {
            p->has_sock = false;
            p->sock_dead = false;
            p->hello_queued = false;
            p->sock_id = 0;
            p->act = RV_DP_ACT_CLOSE;
        } else if (!p->has_sock && p->refs > 0 && now >= p->retry_at) {
            p->act = RV_DP_ACT_OPEN;
        }
    }
    pthread_mutex_unlock(&dp->mu);
    for (rv_dp_peer *p = head; p; p = p->next) {
        if (p->act == RV_DP_ACT_CLOSE) {
            nng_close(p->sock);
            rv_dp_peer_drop_queue(p);
            did = true;
        } else if (p->act == RV_DP_ACT_OPEN && open_peer_socket(dp, p)) {
            pthread_mutex_lock(&dp->mu);
            p->has_sock = true;
            p->sock_dead = false;
            p->sock_id = nng_socket_id(p->sock);
            pthread_mutex_unlock(&dp->mu);
            did = true;
        }
    }
    return did;
}

static bool sock_ready(const rv_dp_peer *p) { return p && p->has_sock && !p->sock_dead; }

/* Credits to grant ib now, 0 if none are due (mu held). */
static uint32_t grant_due(const rv_dp_inbox *ib)
{
    uint32_t cap = rv_channel_capacity(ib->ch), len = rv_channel_len(ib->ch);
    uint64_t outstanding = ib->granted - ib->received;
    if (len >= cap || cap - len <= outstanding)
        return 0;
    uint32_t g = (uint32_t)(cap - len - outstanding);
    uint32_t threshold = ib->granted == 0 || cap < 2 ? 1 : cap / 2;
    return g >= threshold ? g : 0;
}

static rv_frame_kind frame_kind(rv_elem_kind k)
{
    switch (k) {
    case RV_EL_BATCH: return RV_FRAME_BATCH;
    case RV_EL_WATERMARK: return RV_FRAME_WATERMARK;
    case RV_EL_IDLE: return RV_FRAME_IDLE;
    case RV_EL_EOS: return RV_FRAME_EOS;
    case RV_EL_BARRIER: return RV_FRAME_BARRIER;
    }
    return RV_FRAME_EOS;
}

/* Rows [off, off + n) of src as a new batch. */
static rv_batch *batch_slice(const rv_batch *src, uint32_t off, uint32_t n)
{
    uint32_t *sel = rv_xmalloc((size_t)n * sizeof(uint32_t));
    for (uint32_t i = 0; i < n; i++)
        sel[i] = off + i;
    rv_batch *b = rv_batch_new(src->schema, n);
    rv_batch_append_rows(b, src, sel, n);
    free(sel);
    return b;
}

/* The next slice of ob->carry that fits in a frame; NULL when one row
 * alone is too big. */
static rv_batch *next_slice(rv_dp_outbox *ob)
{
    const rv_batch *src = ob->carry;
    uint32_t left = src->nrows - ob->carry_off;
    size_t per_row = rv_codec_size(src) / (src->nrows ? src->nrows : 1) + 1;
    uint64_t n = (uint64_t)(RV_DP_MAX_BATCH_BYTES - RV_DP_MAX_BATCH_BYTES / 8) / per_row;
    if (n > left)
        n = left;
    if (n == 0)
        n = 1;
    for (;;) {
        rv_batch *b = batch_slice(src, ob->carry_off, (uint32_t)n);
        if (rv_codec_size(b) <= RV_DP_MAX_BATCH_BYTES) {
            ob->carry_off += (uint32_t)n;
            return b;
        }
        rv_batch_unref(b);
        if (n == 1)
            return NULL;
        n /= 2;
    }
}

/* Encodes one work item into its peer's queue (no lock: the outbox is busy). */
static void send_work(rv_dataplane *dp, rv_dp_work *w)
{
    rv_dp_outbox *ob = w->ob;
    rv_frame f = {.type = RV_FRAME_DATA, .job = ob->key.job, .chan = ob->key.chan, .count = w->backlog};
    rv_batch *b = NULL;
    if (!w->carry && w->el.kind == RV_EL_BATCH) {
        assert(rv_schema_equal(w->el.u.b->schema, ob->schema)); /* the producer's contract */
        if (rv_codec_size(w->el.u.b) <= RV_DP_MAX_BATCH_BYTES) {
            b = w->el.u.b;
        } else {
            ob->carry = w->el.u.b;
            ob->carry_off = 0;
            w->carry = true;
        }
    }
    if (w->carry) {
        rv_batch *slice = next_slice(ob);
        if (!slice) {
            RV_LOG_ERROR(dp->name, "data plane: channel %016" PRIx64 "/%" PRIu64 ": a row is bigger than a frame (%zu bytes); the channel stops",
                         ob->key.job, ob->key.chan, RV_DP_MAX_BATCH_BYTES);
            w->too_big = true;
            return;
        }
        if (ob->carry_off == ob->carry->nrows) {
            rv_batch_unref(ob->carry);
            ob->carry = NULL;
        }
        peer_queue(w->p, frame_msg(dp, &f, slice));
        rv_batch_unref(slice);
        return;
    }
    f.kind = frame_kind(w->el.kind);
    if (w->el.kind == RV_EL_WATERMARK)
        f.wm = w->el.u.wm;
    else if (w->el.kind == RV_EL_BARRIER)
        f.wm = (int64_t)w->el.u.chk;
    peer_queue(w->p, frame_msg(dp, &f, b));
    rv_batch_unref(b);
}

static void queue_control(rv_dataplane *dp, rv_dp_peer *p, rv_frame_type type, rv_chan_key key, uint32_t count)
{
    rv_frame f = {.type = type, .job = key.job, .chan = key.chan, .count = count};
    peer_queue(p, frame_msg(dp, &f, NULL));
}

/* One round: control frames, at most one element per outbox, flush. */
static bool sender_pass(rv_dataplane *dp, bool *waiting)
{
    bool did = maintain_sockets(dp);
    size_t nw = 0;

    pthread_mutex_lock(&dp->mu);
    rv_dp_peer *head = dp->peers;
    for (rv_dp_peer *p = head; p; p = p->next) {
        if (sock_ready(p) && !p->hello_queued) {
            rv_frame f = {.type = RV_FRAME_HELLO, .payload = dp->url, .payload_len = strlen(dp->url)};
            peer_queue(p, frame_msg(dp, &f, NULL));
            p->hello_queued = true;
            did = true;
        }
    }
    for (rv_dp_outbox *ob = dp->outs; ob; ob = ob->next) {
        if (ob->dead) {
            did |= rv_dp_outbox_drain(ob);
            continue;
        }
        rv_dp_peer *p = ob->peer;
        if (!sock_ready(p))
            continue;
        if (!ob->announced) {
            queue_control(dp, p, RV_FRAME_ANNOUNCE, ob->key, rv_channel_len(ob->ch));
            ob->announced = true;
            did = true;
        }
        if (ob->credit == 0 || ob->busy || p->qhead < p->qlen)
            continue;
        rv_elem el = {.kind = RV_EL_EOS};
        if (!ob->carry && !rv_channel_pop(ob->ch, &el))
            continue;
        rv_xgrow((void **)&dp->work, &dp->work_cap, nw + 1, sizeof(rv_dp_work));
        dp->work[nw++] = (rv_dp_work){.ob = ob, .p = p, .el = el, .carry = ob->carry != NULL,
                                .backlog = rv_channel_len(ob->ch)};
        ob->credit--;
        ob->busy++;
    }
    for (rv_dp_inbox *ib = dp->ins; ib; ib = ib->next) {
        if (ib->failed || !sock_ready(ib->peer))
            continue;
        uint32_t g = grant_due(ib);
        if (g) {
            queue_control(dp, ib->peer, RV_FRAME_CREDIT, ib->key, g);
            ib->granted += g;
            did = true;
        }
    }
    pthread_mutex_unlock(&dp->mu);

    for (size_t i = 0; i < nw; i++)
        send_work(dp, &dp->work[i]);
    *waiting = false;
    for (rv_dp_peer *p = head; p; p = p->next) {
        if (!p->has_sock)
            continue;
        did |= peer_flush(dp, p);
        if (p->qhead < p->qlen)
            *waiting = true;
    }

    if (nw) {
        pthread_mutex_lock(&dp->mu);
        for (size_t i = 0; i < nw; i++) {
            rv_dp_outbox *ob = dp->work[i].ob;
            ob->busy--;
            if (dp->work[i].too_big && !ob->dead)
                rv_dp_outbox_kill(ob);
            if (ob->closed && ob->busy == 0)
                rv_dp_outbox_free(ob);
        }
        pthread_mutex_unlock(&dp->mu);
        did = true;
    }
    return did;
}

void *rv_dp_sender_main(void *arg)
{
    rv_dataplane *dp = arg;
    while (!atomic_load(&dp->stop)) {
        bool waiting = false;
        rv_doorbell_prepare(&dp->bell);
        if (sender_pass(dp, &waiting)) {
            rv_doorbell_cancel_wait(&dp->bell);
            continue;
        }
        if (atomic_load(&dp->stop)) {
            rv_doorbell_cancel_wait(&dp->bell);
            break;
        }
        rv_doorbell_sleep(&dp->bell, rv_now_ns() + (waiting ? RETRY_SLEEP_NS : IDLE_SLEEP_NS));
    }
    return NULL;
}

