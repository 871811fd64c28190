/* rv_dataplane: remote channels over NNG with credit-based flow control
 * (the contract is in rv_dataplane.h, the frames in rv_frame.h).
 *
 * Connections. Each data plane listens on one polyamorous PAIR1 socket and
 * only receives on it. For every peer it sends to, it dials one ordinary
 * (monogamous) PAIR1 socket and only sends on that: polyamorous PAIR1 in
 * NNG drops a message whenever the per-pipe send queue (two messages) is
 * full, which a busy data channel hits constantly, while a monogamous
 * socket queues (NNG_OPT_SENDBUF) and never drops. So two task managers
 * that exchange data use one connection per direction; the first frame on
 * each is HELLO with the dialer's listen URL, which tells the receiving
 * side where to send its credits. A dial socket is used for one connection
 * only: when its pipe goes away the socket is closed and a new one dialed,
 * so a reconnected pipe never carries frames without a HELLO first.
 *
 * Channels. An outbox sends ANNOUNCE once its socket exists; the receiver
 * binds the inbox to the connection the ANNOUNCE came on (or keeps the
 * announcement until open_in) and grants credits over its own dial socket
 * to the announcer. Credits: outstanding = granted - received; a grant is
 * (capacity - queued - outstanding), sent once it reaches half the
 * capacity, so the inbox can never overflow and CREDIT frames stay rare.
 * A channel is bound to the connections it used; when either goes away
 * (pipe removal callbacks), its inbox fails through the fail callback and
 * its outbox is marked dead and drained, so no producer blocks forever.
 *
 * Threads. One sender thread owns the dial sockets and their queues: it
 * sleeps on one doorbell rung by outbox pushes, inbox pops (pop bell),
 * credit arrivals and connection changes, and per pass sends at most one
 * element per outbox (round robin), with non-blocking sends; a frame NNG
 * cannot take yet waits in the peer's queue. One receiver thread decodes
 * and pushes into inboxes. `mu` guards the channel, peer and pipe tables;
 * nothing blocks while holding it and no NNG socket operation runs under it
 * (NNG's pipe callbacks take it, so that would invite a deadlock). */
#include "rv_dataplane.h"

#include <assert.h>
#include <inttypes.h>
#include <nng/nng.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "rv_codec.h"
#include "rv_frame.h"
#include "rv_log.h"
#include "rv_mem.h"
#include "rv_nng.h"
#include "rv_record.h"
#include "rv_time.h"

#define MAX_BATCH_BYTES ((size_t)16 << 20) /* largest rv_codec payload in one frame */
#define MAX_ANNOUNCES 65536                /* announcements kept for inboxes not yet open */
#define MAX_CREDIT (UINT64_C(1) << 24)     /* more credit than this is a protocol error */
#define SEND_QUEUE 8192                    /* NNG_OPT_SENDBUF of dial sockets (NNG's maximum) */
#define IDLE_SLEEP_NS (100 * 1000000LL)
#define RETRY_SLEEP_NS (1000000LL)         /* while a peer's queue waits for NNG */
#define REDIAL_NS (1000 * 1000000LL)       /* after a failed socket set-up */
#define RECV_TIMEOUT_MS 200

typedef struct peer {
    struct peer *next;
    rv_dataplane *dp;
    char *url;          /* its listen URL: where we dial */
    int refs;           /* live channels sending through it (mu) */
    bool has_sock;      /* (mu; written by the sender thread) */
    bool sock_dead;     /* its connection was lost (mu) */
    bool hello_queued;  /* (mu) */
    int sock_id;        /* (mu) */
    int64_t retry_at;   /* (sender thread) */
    enum { ACT_NONE, ACT_OPEN, ACT_CLOSE } act; /* (sender thread) */
    nng_socket sock;    /* (sender thread) */
    nng_msg **q;        /* frames NNG has not taken yet (sender thread) */
    size_t qhead, qlen, qcap;
} peer;

/* A pipe of the listening socket whose HELLO arrived. */
typedef struct lpipe {
    struct lpipe *next;
    uint32_t id;
    peer *peer; /* the sender's URL: where credits go */
} lpipe;

typedef struct outbox {
    struct outbox *next;
    rv_chan_key key;
    peer *peer;
    bool holds_ref; /* on peer */
    rv_channel *ch;
    rv_schema *schema;
    uint32_t lpipe;  /* connection its credits arrive on (0 before the first) */
    uint64_t credit; /* elements it may send */
    bool announced, dead, closed;
    int busy;        /* elements being sent by the sender thread */
    rv_batch *carry; /* an oversized batch sent in slices (sender thread) */
    uint32_t carry_off;
} outbox;

typedef struct inbox {
    struct inbox *next;
    rv_chan_key key;
    rv_channel *ch; /* the caller's */
    rv_schema *schema;
    rv_dataplane_fail_fn fail;
    void *arg;
    uint32_t lpipe; /* connection that announced it (0 = not yet) */
    peer *peer;     /* where credits go */
    bool holds_ref;
    uint64_t granted, received;
    uint32_t backlog; /* the sender's last report */
    bool failed, closed;
    int busy; /* a decode or a fail callback in progress (waited for by close) */
} inbox;

typedef struct announce {
    struct announce *next;
    rv_chan_key key;
    uint32_t lpipe;
    peer *peer;
    uint32_t backlog;
} announce;

typedef struct failure {
    inbox *ib;
    rv_err *err;
} failure;

typedef struct failures {
    failure *v;
    size_t n, cap;
} failures;

typedef struct work {
    outbox *ob;
    peer *p;
    rv_elem el;
    bool carry; /* the next slice of ob->carry */
    uint32_t backlog;
    bool too_big;
} work;

struct rv_dataplane {
    char *name, *url;
    nng_socket lsock;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* an inbox's busy dropped */
    rv_doorbell bell;  /* wakes the sender thread */
    peer *peers;
    lpipe *lpipes;
    outbox *outs;
    inbox *ins;
    announce *anns;
    size_t nanns;
    bool stopping;                 /* (mu) */
    atomic_bool stop, rx_cancel;
    pthread_t sender, receiver;
    rv_buf scratch; /* frame encoding (sender thread) */
    work *work;     /* (sender thread) */
    size_t work_cap;
    atomic_uint_fast64_t frames_sent, frames_received, bytes_sent, bytes_received, frames_rejected;
};

static const rv_nng_opts DIAL_OPTS = {.max_msg = 4096, .send_timeout_ms = 1000, .recv_timeout_ms = 1000};

static inline void stat_add(atomic_uint_fast64_t *s, uint64_t n) { atomic_fetch_add_explicit(s, n, memory_order_relaxed); }

static bool key_eq(rv_chan_key a, rv_chan_key b) { return a.job == b.job && a.chan == b.chan; }

/* ---- tables (mu held) ---- */

static peer *peer_get(rv_dataplane *dp, const char *url)
{
    for (peer *p = dp->peers; p; p = p->next)
        if (strcmp(p->url, url) == 0)
            return p;
    peer *p = rv_xcalloc(1, sizeof(*p));
    p->dp = dp;
    p->url = rv_xstrdup(url);
    p->next = dp->peers;
    dp->peers = p;
    return p;
}

static lpipe *lpipe_find(rv_dataplane *dp, uint32_t id)
{
    for (lpipe *lp = dp->lpipes; lp; lp = lp->next)
        if (lp->id == id)
            return lp;
    return NULL;
}

static outbox *outbox_find(rv_dataplane *dp, rv_chan_key key)
{
    for (outbox *ob = dp->outs; ob; ob = ob->next)
        if (key_eq(ob->key, key))
            return ob;
    return NULL;
}

static inbox *inbox_find(rv_dataplane *dp, rv_chan_key key)
{
    for (inbox *ib = dp->ins; ib; ib = ib->next)
        if (key_eq(ib->key, key))
            return ib;
    return NULL;
}

static void outbox_release_peer(outbox *ob)
{
    if (ob->holds_ref) {
        ob->peer->refs--;
        ob->holds_ref = false;
    }
}

static void inbox_release_peer(inbox *ib)
{
    if (ib->holds_ref) {
        ib->peer->refs--;
        ib->holds_ref = false;
    }
}

static void inbox_bind(inbox *ib, uint32_t lpipe_id, peer *p, uint32_t backlog)
{
    ib->lpipe = lpipe_id;
    ib->peer = p;
    ib->holds_ref = true;
    ib->backlog = backlog;
    p->refs++;
}

/* Drops what the outbox holds; it stays dead until close_job. */
static bool outbox_drain(outbox *ob)
{
    bool any = false;
    rv_elem el;
    while (rv_channel_pop(ob->ch, &el)) {
        if (el.kind == RV_EL_BATCH)
            rv_batch_unref(el.u.b);
        any = true;
    }
    if (ob->carry && !ob->busy) {
        rv_batch_unref(ob->carry);
        ob->carry = NULL;
    }
    return any;
}

static void outbox_kill(outbox *ob)
{
    ob->dead = true;
    outbox_release_peer(ob);
}

static void outbox_free(outbox *ob)
{
    outbox_release_peer(ob);
    rv_channel_free(ob->ch);
    rv_batch_unref(ob->carry);
    rv_schema_unref(ob->schema);
    free(ob);
}

/* Marks ib failed and queues its callback for run_failures (mu held). */
static void fail_inbox(failures *fs, inbox *ib, rv_err *err)
{
    if (ib->failed || ib->closed) {
        rv_err_free(err);
        return;
    }
    ib->failed = true;
    ib->busy++;
    inbox_release_peer(ib);
    rv_xgrow((void **)&fs->v, &fs->cap, fs->n + 1, sizeof(failure));
    fs->v[fs->n++] = (failure){ib, err};
}

/* Calls the queued fail callbacks (mu not held). */
static void run_failures(rv_dataplane *dp, failures *fs)
{
    if (fs->n == 0)
        return;
    for (size_t i = 0; i < fs->n; i++)
        fs->v[i].ib->fail(fs->v[i].ib->arg, fs->v[i].err);
    pthread_mutex_lock(&dp->mu);
    for (size_t i = 0; i < fs->n; i++)
        fs->v[i].ib->busy--;
    pthread_cond_broadcast(&dp->cv);
    pthread_mutex_unlock(&dp->mu);
    free(fs->v);
    fs->v = NULL;
    fs->n = fs->cap = 0;
}

/* A connection went away: fails every channel bound to it — the listening
 * pipe lpipe_id (when not 0) or the dial socket of p (when not NULL). */
static void connection_lost(rv_dataplane *dp, failures *fs, uint32_t lpipe_id, peer *p, const char *what)
{
    for (inbox *ib = dp->ins; ib; ib = ib->next) {
        if (ib->failed || ib->lpipe == 0 || !((lpipe_id && ib->lpipe == lpipe_id) || (p && ib->peer == p)))
            continue;
        fail_inbox(fs, ib,
                   rv_err_retry(RV_ERR_CLOSED, "data plane %s: channel %016" PRIx64 "/%" PRIu64 ": %s", dp->name,
                                ib->key.job, ib->key.chan, what));
    }
    for (outbox *ob = dp->outs; ob; ob = ob->next)
        if (!ob->dead && ((lpipe_id && ob->lpipe == lpipe_id) || (p && ob->peer == p)))
            outbox_kill(ob);
    if (lpipe_id)
        for (announce **a = &dp->anns; *a;) {
            if ((*a)->lpipe == lpipe_id) {
                announce *dead = *a;
                *a = dead->next;
                free(dead);
                dp->nanns--;
            } else {
                a = &(*a)->next;
            }
        }
}

/* ---- pipe callbacks (NNG threads) ---- */

static void listen_pipe_cb(nng_pipe pipe, nng_pipe_ev ev, void *arg)
{
    rv_dataplane *dp = arg;
    if (ev != NNG_PIPE_EV_REM_POST)
        return;
    failures fs = {0};
    uint32_t id = (uint32_t)nng_pipe_id(pipe);
    pthread_mutex_lock(&dp->mu);
    for (lpipe **l = &dp->lpipes; !dp->stopping && *l; l = &(*l)->next) {
        if ((*l)->id != id)
            continue;
        lpipe *lp = *l;
        *l = lp->next;
        char *what = rv_xasprintf("connection from %s lost", lp->peer->url);
        connection_lost(dp, &fs, id, NULL, what);
        free(what);
        free(lp);
        break;
    }
    pthread_mutex_unlock(&dp->mu);
    run_failures(dp, &fs);
    rv_doorbell_ring(&dp->bell);
}

static void dial_pipe_cb(nng_pipe pipe, nng_pipe_ev ev, void *arg)
{
    peer *p = arg;
    rv_dataplane *dp = p->dp;
    if (ev != NNG_PIPE_EV_REM_POST)
        return;
    failures fs = {0};
    int sock_id = nng_socket_id(nng_pipe_socket(pipe));
    pthread_mutex_lock(&dp->mu);
    if (!dp->stopping && p->has_sock && !p->sock_dead && p->sock_id == sock_id) {
        p->sock_dead = true;
        char *what = rv_xasprintf("connection to %s lost", p->url);
        connection_lost(dp, &fs, 0, p, what);
        free(what);
    }
    pthread_mutex_unlock(&dp->mu);
    run_failures(dp, &fs);
    rv_doorbell_ring(&dp->bell);
}

/* ---- sender thread ---- */

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

static void peer_queue(peer *p, nng_msg *m)
{
    if (p->qlen == p->qcap)
        rv_xgrow((void **)&p->q, &p->qcap, p->qlen + 1, sizeof(nng_msg *));
    p->q[p->qlen++] = m;
}

static void peer_drop_queue(peer *p)
{
    for (size_t i = p->qhead; i < p->qlen; i++)
        nng_msg_free(p->q[i]);
    p->qhead = p->qlen = 0;
}

/* Hands queued frames to NNG without blocking. Returns true if it sent any. */
static bool peer_flush(rv_dataplane *dp, peer *p)
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
            failures fs = {0};
            pthread_mutex_lock(&dp->mu);
            if (p->has_sock && !p->sock_dead) {
                p->sock_dead = true;
                char *what = rv_xasprintf("sending to %s: %s", p->url, nng_strerror(rv));
                connection_lost(dp, &fs, 0, p, what);
                free(what);
            }
            pthread_mutex_unlock(&dp->mu);
            run_failures(dp, &fs);
            peer_drop_queue(p);
            break;
        }
        stat_add(&dp->frames_sent, 1);
        stat_add(&dp->bytes_sent, len);
    }
    if (p->qhead == p->qlen)
        p->qhead = p->qlen = 0;
    return any;
}

static bool open_peer_socket(rv_dataplane *dp, peer *p)
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

/* Opens the dial sockets that channels need, closes dead and unused ones. */
static bool maintain_sockets(rv_dataplane *dp)
{
    bool did = false;
    int64_t now = rv_now_ns();
    pthread_mutex_lock(&dp->mu);
    peer *head = dp->peers;
    for (peer *p = head; p; p = p->next) {
        p->act = ACT_NONE;
        if (p->has_sock && (p->sock_dead || p->refs == 0)) {
            p->has_sock = false;
            p->sock_dead = false;
            p->hello_queued = false;
            p->sock_id = 0;
            p->act = ACT_CLOSE;
        } else if (!p->has_sock && p->refs > 0 && now >= p->retry_at) {
            p->act = ACT_OPEN;
        }
    }
    pthread_mutex_unlock(&dp->mu);
    for (peer *p = head; p; p = p->next) {
        if (p->act == ACT_CLOSE) {
            nng_close(p->sock);
            peer_drop_queue(p);
            did = true;
        } else if (p->act == ACT_OPEN && open_peer_socket(dp, p)) {
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

static bool sock_ready(const peer *p) { return p && p->has_sock && !p->sock_dead; }

/* Credits to grant ib now, 0 if none are due (mu held). */
static uint32_t grant_due(const inbox *ib)
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
static rv_batch *next_slice(outbox *ob)
{
    const rv_batch *src = ob->carry;
    uint32_t left = src->nrows - ob->carry_off;
    size_t per_row = rv_codec_size(src) / (src->nrows ? src->nrows : 1) + 1;
    uint64_t n = (uint64_t)(MAX_BATCH_BYTES - MAX_BATCH_BYTES / 8) / per_row;
    if (n > left)
        n = left;
    if (n == 0)
        n = 1;
    for (;;) {
        rv_batch *b = batch_slice(src, ob->carry_off, (uint32_t)n);
        if (rv_codec_size(b) <= MAX_BATCH_BYTES) {
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
static void send_work(rv_dataplane *dp, work *w)
{
    outbox *ob = w->ob;
    rv_frame f = {.type = RV_FRAME_DATA, .job = ob->key.job, .chan = ob->key.chan, .count = w->backlog};
    rv_batch *b = NULL;
    if (!w->carry && w->el.kind == RV_EL_BATCH) {
        assert(rv_schema_equal(w->el.u.b->schema, ob->schema)); /* the producer's contract */
        if (rv_codec_size(w->el.u.b) <= MAX_BATCH_BYTES) {
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
                         ob->key.job, ob->key.chan, MAX_BATCH_BYTES);
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
    peer_queue(w->p, frame_msg(dp, &f, b));
    rv_batch_unref(b);
}

static void queue_control(rv_dataplane *dp, peer *p, rv_frame_type type, rv_chan_key key, uint32_t count)
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
    peer *head = dp->peers;
    for (peer *p = head; p; p = p->next) {
        if (sock_ready(p) && !p->hello_queued) {
            rv_frame f = {.type = RV_FRAME_HELLO, .payload = dp->url, .payload_len = strlen(dp->url)};
            peer_queue(p, frame_msg(dp, &f, NULL));
            p->hello_queued = true;
            did = true;
        }
    }
    for (outbox *ob = dp->outs; ob; ob = ob->next) {
        if (ob->dead) {
            did |= outbox_drain(ob);
            continue;
        }
        peer *p = ob->peer;
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
        rv_xgrow((void **)&dp->work, &dp->work_cap, nw + 1, sizeof(work));
        dp->work[nw++] = (work){.ob = ob, .p = p, .el = el, .carry = ob->carry != NULL,
                                .backlog = rv_channel_len(ob->ch)};
        ob->credit--;
        ob->busy++;
    }
    for (inbox *ib = dp->ins; ib; ib = ib->next) {
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
    for (peer *p = head; p; p = p->next) {
        if (!p->has_sock)
            continue;
        did |= peer_flush(dp, p);
        if (p->qhead < p->qlen)
            *waiting = true;
    }

    if (nw) {
        pthread_mutex_lock(&dp->mu);
        for (size_t i = 0; i < nw; i++) {
            outbox *ob = dp->work[i].ob;
            ob->busy--;
            if (dp->work[i].too_big && !ob->dead)
                outbox_kill(ob);
            if (ob->closed && ob->busy == 0)
                outbox_free(ob);
        }
        pthread_mutex_unlock(&dp->mu);
        did = true;
    }
    return did;
}

static void *sender_main(void *arg)
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

/* ---- receiver thread ---- */

static void on_hello(rv_dataplane *dp, uint32_t pid, const rv_frame *f, bool *close_pipe)
{
    char *url = rv_xstrndup(f->payload, f->payload_len);
    if (lpipe_find(dp, pid)) {
        RV_LOG_WARN(dp->name, "data plane: second HELLO on a connection from %s; closing it", url);
        *close_pipe = true;
    } else if (!rv_nng_url_valid(url)) {
        RV_LOG_WARN(dp->name, "data plane: HELLO with an invalid URL \"%s\"; closing the connection", url);
        *close_pipe = true;
    } else {
        lpipe *lp = rv_xcalloc(1, sizeof(*lp));
        lp->id = pid;
        lp->peer = peer_get(dp, url);
        lp->next = dp->lpipes;
        dp->lpipes = lp;
    }
    free(url);
}

static void on_announce(rv_dataplane *dp, failures *fs, uint32_t pid, peer *from, const rv_frame *f)
{
    rv_chan_key key = {f->job, f->chan};
    inbox *ib = inbox_find(dp, key);
    if (ib) {
        if (ib->failed)
            return;
        if (ib->lpipe == 0) {
            inbox_bind(ib, pid, from, f->count);
            rv_doorbell_ring(&dp->bell);
        } else if (ib->lpipe != pid) {
            fail_inbox(fs, ib,
                       rv_err_new(RV_ERR_CORRUPT,
                                  "data plane %s: channel %016" PRIx64 "/%" PRIu64 ": announced again by %s (protocol error)",
                                  dp->name, key.job, key.chan, from->url));
        }
        return;
    }
    for (announce *a = dp->anns; a; a = a->next) {
        if (key_eq(a->key, key)) {
            a->lpipe = pid;
            a->peer = from;
            a->backlog = f->count;
            return;
        }
    }
    if (dp->nanns >= MAX_ANNOUNCES) {
        stat_add(&dp->frames_rejected, 1);
        return;
    }
    announce *a = rv_xcalloc(1, sizeof(*a));
    *a = (announce){.next = dp->anns, .key = key, .lpipe = pid, .peer = from, .backlog = f->count};
    dp->anns = a;
    dp->nanns++;
}

static void on_credit(rv_dataplane *dp, uint32_t pid, const rv_frame *f)
{
    outbox *ob = outbox_find(dp, (rv_chan_key){f->job, f->chan});
    if (!ob || ob->dead || (ob->lpipe && ob->lpipe != pid) || ob->credit + f->count > MAX_CREDIT) {
        stat_add(&dp->frames_rejected, 1);
        return;
    }
    ob->lpipe = pid;
    ob->credit += f->count;
    rv_doorbell_ring(&dp->bell);
}

/* A DATA frame (mu held; released while the batch decodes). */
static void on_data(rv_dataplane *dp, failures *fs, uint32_t pid, const rv_frame *f)
{
    rv_chan_key key = {f->job, f->chan};
    inbox *ib = inbox_find(dp, key);
    if (!ib || ib->failed) { /* closed, failed, or never opened here */
        stat_add(&dp->frames_rejected, 1);
        return;
    }
    const char *problem = NULL;
    if (ib->lpipe != pid)
        problem = "an element from a connection that did not announce the channel (protocol error)";
    else if (ib->received >= ib->granted)
        problem = "more elements than the credits granted (protocol error)";
    if (problem) {
        stat_add(&dp->frames_rejected, 1);
        fail_inbox(fs, ib,
                   rv_err_new(RV_ERR_CORRUPT, "data plane %s: channel %016" PRIx64 "/%" PRIu64 ": %s", dp->name,
                              key.job, key.chan, problem));
        return;
    }
    rv_elem el = {.kind = RV_EL_EOS};
    switch (f->kind) {
    case RV_FRAME_BATCH: {
        ib->busy++;
        pthread_mutex_unlock(&dp->mu);
        rv_batch *b = NULL;
        rv_err *err = rv_codec_decode(f->payload, f->payload_len, ib->schema, &b);
        pthread_mutex_lock(&dp->mu);
        ib->busy--;
        pthread_cond_broadcast(&dp->cv);
        if (err) {
            stat_add(&dp->frames_rejected, 1);
            fail_inbox(fs, ib,
                       rv_err_wrap(err, "data plane %s: channel %016" PRIx64 "/%" PRIu64 ": batch from %s", dp->name,
                                   key.job, key.chan, ib->peer ? ib->peer->url : "?"));
            return;
        }
        if (ib->closed || ib->failed) {
            rv_batch_unref(b);
            return;
        }
        el = (rv_elem){.kind = RV_EL_BATCH, .u.b = b};
        break;
    }
    case RV_FRAME_WATERMARK: el = (rv_elem){.kind = RV_EL_WATERMARK, .u.wm = f->wm}; break;
    case RV_FRAME_IDLE: el.kind = RV_EL_IDLE; break;
    case RV_FRAME_EOS: el.kind = RV_EL_EOS; break;
    }
    /* Credits guarantee room; a full inbox means the accounting broke. */
    if (rv_channel_len(ib->ch) >= rv_channel_capacity(ib->ch) ||
        rv_channel_push(ib->ch, el, &dp->rx_cancel, NULL) != RV_OK) {
        if (el.kind == RV_EL_BATCH)
            rv_batch_unref(el.u.b);
        fail_inbox(fs, ib,
                   rv_err_new(RV_ERR_INTERNAL, "data plane %s: channel %016" PRIx64 "/%" PRIu64 ": inbox full", dp->name,
                              key.job, key.chan));
        return;
    }
    ib->received++;
    ib->backlog = f->count;
}

static void handle_frame(rv_dataplane *dp, nng_msg *m)
{
    nng_pipe pipe = nng_msg_get_pipe(m);
    uint32_t pid = (uint32_t)nng_pipe_id(pipe);
    size_t len = nng_msg_len(m);
    stat_add(&dp->frames_received, 1);
    stat_add(&dp->bytes_received, len);
    rv_frame f;
    rv_err *err = rv_frame_decode(nng_msg_body(m), len, &f);
    if (err) {
        stat_add(&dp->frames_rejected, 1);
        RV_LOG_WARN(dp->name, "data plane: %s; closing the connection", rv_err_msg(err));
        rv_err_free(err);
        nng_pipe_close(pipe);
        return;
    }
    failures fs = {0};
    bool close_pipe = false;
    pthread_mutex_lock(&dp->mu);
    lpipe *lp = lpipe_find(dp, pid);
    if (f.type == RV_FRAME_HELLO) {
        on_hello(dp, pid, &f, &close_pipe);
    } else if (!lp) {
        RV_LOG_WARN(dp->name, "data plane: %s frame before HELLO; closing the connection", rv_frame_type_name(f.type));
        close_pipe = true;
    } else if (f.type == RV_FRAME_ANNOUNCE) {
        on_announce(dp, &fs, pid, lp->peer, &f);
    } else if (f.type == RV_FRAME_CREDIT) {
        on_credit(dp, pid, &f);
    } else {
        on_data(dp, &fs, pid, &f);
    }
    pthread_mutex_unlock(&dp->mu);
    if (close_pipe) {
        stat_add(&dp->frames_rejected, 1);
        nng_pipe_close(pipe);
    }
    run_failures(dp, &fs);
}

static void *receiver_main(void *arg)
{
    rv_dataplane *dp = arg;
    while (!atomic_load(&dp->rx_cancel)) {
        nng_msg *m;
        int rv = nng_recvmsg(dp->lsock, &m, 0);
        if (rv == NNG_ETIMEDOUT)
            continue;
        if (rv == NNG_ECLOSED)
            break;
        if (rv != 0) {
            RV_LOG_WARN(dp->name, "data plane: receiving: %s", nng_strerror(rv));
            continue;
        }
        handle_frame(dp, m);
        nng_msg_free(m);
    }
    return NULL;
}

/* ---- public API ---- */

rv_err *rv_dataplane_new(const char *listen_url, const char *name, rv_dataplane **out)
{
    rv_nng_opts opts = {.max_msg = RV_FRAME_HEADER_SIZE + MAX_BATCH_BYTES, .send_timeout_ms = 1000,
                        .recv_timeout_ms = RECV_TIMEOUT_MS, .poly = true};
    nng_socket s;
    char *url = NULL;
    rv_err *err = rv_nng_listen(listen_url, &opts, &s, &url);
    if (err)
        return rv_err_wrap(err, "data plane");
    rv_dataplane *dp = rv_xcalloc(1, sizeof(*dp));
    dp->name = rv_xstrdup(name ? name : "dataplane");
    dp->url = url;
    dp->lsock = s;
    pthread_mutex_init(&dp->mu, NULL);
    pthread_cond_init(&dp->cv, NULL);
    rv_doorbell_init(&dp->bell);
    atomic_init(&dp->stop, false);
    atomic_init(&dp->rx_cancel, false);
    int rv = nng_pipe_notify(s, NNG_PIPE_EV_REM_POST, listen_pipe_cb, dp);
    if (rv != 0) {
        err = rv_nng_err(rv, "data plane: watching connections on %s", url);
        nng_close(s);
        goto fail;
    }
    int rc = pthread_create(&dp->receiver, NULL, receiver_main, dp);
    if (rc != 0) {
        nng_close(s);
    } else if ((rc = pthread_create(&dp->sender, NULL, sender_main, dp)) != 0) {
        atomic_store(&dp->rx_cancel, true);
        nng_close(s);
        pthread_join(dp->receiver, NULL);
    }
    if (rc != 0) {
        err = rv_err_new(RV_ERR_INTERNAL, "data plane: cannot start a thread: %s", strerror(rc));
        goto fail;
    }
    *out = dp;
    return NULL;
fail:
    rv_doorbell_fini(&dp->bell);
    pthread_cond_destroy(&dp->cv);
    pthread_mutex_destroy(&dp->mu);
    free(dp->name);
    free(dp->url);
    free(dp);
    return err;
}

const char *rv_dataplane_url(const rv_dataplane *dp) { return dp->url; }

void rv_dataplane_free(rv_dataplane *dp)
{
    if (!dp)
        return;
    pthread_mutex_lock(&dp->mu);
    dp->stopping = true;
    pthread_mutex_unlock(&dp->mu);
    atomic_store(&dp->stop, true);
    atomic_store(&dp->rx_cancel, true);
    rv_doorbell_ring(&dp->bell);
    pthread_join(dp->sender, NULL);
    nng_close(dp->lsock);
    pthread_join(dp->receiver, NULL);
    for (peer *p = dp->peers; p; p = p->next)
        if (p->has_sock)
            nng_close(p->sock);

    pthread_mutex_lock(&dp->mu);
    for (inbox *ib = dp->ins; ib; ib = ib->next)
        while (ib->busy) /* fail callbacks still running */
            pthread_cond_wait(&dp->cv, &dp->mu);
    pthread_mutex_unlock(&dp->mu);

    while (dp->outs) {
        outbox *ob = dp->outs;
        dp->outs = ob->next;
        outbox_free(ob);
    }
    while (dp->ins) {
        inbox *ib = dp->ins;
        dp->ins = ib->next;
        rv_channel_set_pop_bell(ib->ch, NULL);
        rv_schema_unref(ib->schema);
        free(ib);
    }
    while (dp->anns) {
        announce *a = dp->anns;
        dp->anns = a->next;
        free(a);
    }
    while (dp->lpipes) {
        lpipe *lp = dp->lpipes;
        dp->lpipes = lp->next;
        free(lp);
    }
    while (dp->peers) {
        peer *p = dp->peers;
        dp->peers = p->next;
        peer_drop_queue(p);
        free(p->q);
        free(p->url);
        free(p);
    }
    rv_buf_fini(&dp->scratch);
    free(dp->work);
    rv_doorbell_fini(&dp->bell);
    pthread_cond_destroy(&dp->cv);
    pthread_mutex_destroy(&dp->mu);
    free(dp->name);
    free(dp->url);
    free(dp);
}

rv_err *rv_dataplane_open_out(rv_dataplane *dp, rv_chan_key key, const char *peer_url, rv_schema *schema,
                              uint32_t capacity, rv_channel **outbox_out)
{
    if (!rv_nng_url_valid(peer_url))
        return rv_err_new(RV_ERR_INVALID, "data plane: channel %016" PRIx64 "/%" PRIu64 ": invalid peer URL \"%s\"",
                          key.job, key.chan, peer_url ? peer_url : "(null)");
    if (strlen(peer_url) > RV_FRAME_MAX_URL || strlen(dp->url) > RV_FRAME_MAX_URL)
        return rv_err_new(RV_ERR_INVALID, "data plane: URL longer than %d bytes", RV_FRAME_MAX_URL);
    if (!schema || capacity == 0)
        return rv_err_new(RV_ERR_INVALID, "data plane: channel %016" PRIx64 "/%" PRIu64 ": no schema or zero capacity",
                          key.job, key.chan);
    pthread_mutex_lock(&dp->mu);
    if (outbox_find(dp, key)) {
        pthread_mutex_unlock(&dp->mu);
        return rv_err_new(RV_ERR_INVALID, "data plane: outbox %016" PRIx64 "/%" PRIu64 " is already open", key.job,
                          key.chan);
    }
    outbox *ob = rv_xcalloc(1, sizeof(*ob));
    ob->key = key;
    ob->peer = peer_get(dp, peer_url);
    ob->peer->refs++;
    ob->holds_ref = true;
    ob->ch = rv_channel_new(capacity, &dp->bell);
    ob->schema = rv_schema_ref(schema);
    ob->next = dp->outs;
    dp->outs = ob;
    pthread_mutex_unlock(&dp->mu);
    rv_doorbell_ring(&dp->bell);
    *outbox_out = ob->ch;
    return NULL;
}

rv_err *rv_dataplane_open_in(rv_dataplane *dp, rv_chan_key key, rv_channel *inbox_ch, rv_schema *schema,
                             rv_dataplane_fail_fn fail, void *arg)
{
    if (!inbox_ch || !schema || !fail)
        return rv_err_new(RV_ERR_INVALID, "data plane: inbox %016" PRIx64 "/%" PRIu64 ": missing channel, schema or fail callback",
                          key.job, key.chan);
    pthread_mutex_lock(&dp->mu);
    if (inbox_find(dp, key)) {
        pthread_mutex_unlock(&dp->mu);
        return rv_err_new(RV_ERR_INVALID, "data plane: inbox %016" PRIx64 "/%" PRIu64 " is already open", key.job,
                          key.chan);
    }
    inbox *ib = rv_xcalloc(1, sizeof(*ib));
    ib->key = key;
    ib->ch = inbox_ch;
    ib->schema = rv_schema_ref(schema);
    ib->fail = fail;
    ib->arg = arg;
    rv_channel_set_pop_bell(inbox_ch, &dp->bell);
    for (announce **a = &dp->anns; *a; a = &(*a)->next) {
        if (key_eq((*a)->key, key)) {
            announce *found = *a;
            *a = found->next;
            dp->nanns--;
            inbox_bind(ib, found->lpipe, found->peer, found->backlog);
            free(found);
            break;
        }
    }
    ib->next = dp->ins;
    dp->ins = ib;
    pthread_mutex_unlock(&dp->mu);
    rv_doorbell_ring(&dp->bell);
    return NULL;
}

void rv_dataplane_close_job(rv_dataplane *dp, uint64_t job)
{
    inbox *gone = NULL;
    pthread_mutex_lock(&dp->mu);
    for (outbox **o = &dp->outs; *o;) {
        outbox *ob = *o;
        if (ob->key.job != job) {
            o = &ob->next;
            continue;
        }
        *o = ob->next;
        if (ob->busy) { /* the sender thread frees it when done */
            ob->closed = true;
            outbox_release_peer(ob);
        } else {
            outbox_free(ob);
        }
    }
    for (inbox **i = &dp->ins; *i;) {
        inbox *ib = *i;
        if (ib->key.job != job) {
            i = &ib->next;
            continue;
        }
        *i = ib->next;
        ib->closed = true;
        ib->next = gone;
        gone = ib;
    }
    for (announce **a = &dp->anns; *a;) {
        if ((*a)->key.job == job) {
            announce *dead = *a;
            *a = dead->next;
            dp->nanns--;
            free(dead);
        } else {
            a = &(*a)->next;
        }
    }
    while (gone) {
        inbox *ib = gone;
        while (ib->busy) /* a decode or fail callback in progress */
            pthread_cond_wait(&dp->cv, &dp->mu);
        gone = ib->next;
        rv_channel_set_pop_bell(ib->ch, NULL);
        inbox_release_peer(ib);
        rv_schema_unref(ib->schema);
        free(ib);
    }
    pthread_mutex_unlock(&dp->mu);
    rv_doorbell_ring(&dp->bell);
}

void rv_dataplane_get_stats(rv_dataplane *dp, rv_dataplane_stats *st)
{
    st->frames_sent = atomic_load_explicit(&dp->frames_sent, memory_order_relaxed);
    st->frames_received = atomic_load_explicit(&dp->frames_received, memory_order_relaxed);
    st->bytes_sent = atomic_load_explicit(&dp->bytes_sent, memory_order_relaxed);
    st->bytes_received = atomic_load_explicit(&dp->bytes_received, memory_order_relaxed);
    st->frames_rejected = atomic_load_explicit(&dp->frames_rejected, memory_order_relaxed);
}
