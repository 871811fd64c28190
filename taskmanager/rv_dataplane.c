/* rv_dataplane: remote channels over NNG with credit-based flow control
 * (the contract is in rv_dataplane.h, the frames in rv_frame.h; the sender
 * thread is in rv_dataplane_send.c).
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
 * so a reconnected pipe never carries frames without a HELLO first. A
 * connection no channel uses stays open for later jobs until the data
 * plane is freed (NNG 1.5 closes sockets unreliably; see the free).
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

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "rv_codec.h"
#include "rv_dataplane_int.h"
#include "rv_frame.h"
#include "rv_log.h"
#include "rv_mem.h"
#include "rv_nng.h"

#define MAX_ANNOUNCES 65536            /* announcements kept for inboxes not yet open */
#define MAX_CREDIT (UINT64_C(1) << 24) /* more credit than this is a protocol error */
#define RECV_TIMEOUT_MS 100            /* how soon the receiver notices a stop */

static bool key_eq(rv_chan_key a, rv_chan_key b) { return a.job == b.job && a.chan == b.chan; }

/* ---- tables (mu held) ---- */

static rv_dp_peer *peer_get(rv_dataplane *dp, const char *url)
{
    for (rv_dp_peer *p = dp->peers; p; p = p->next)
        if (strcmp(p->url, url) == 0)
            return p;
    rv_dp_peer *p = rv_xcalloc(1, sizeof(*p));
    p->dp = dp;
    p->url = rv_xstrdup(url);
    p->next = dp->peers;
    dp->peers = p;
    return p;
}

static rv_dp_lpipe *lpipe_find(rv_dataplane *dp, uint32_t id)
{
    for (rv_dp_lpipe *lp = dp->lpipes; lp; lp = lp->next)
        if (lp->id == id)
            return lp;
    return NULL;
}

static rv_dp_outbox *outbox_find(rv_dataplane *dp, rv_chan_key key)
{
    for (rv_dp_outbox *ob = dp->outs; ob; ob = ob->next)
        if (key_eq(ob->key, key))
            return ob;
    return NULL;
}

static rv_dp_inbox *inbox_find(rv_dataplane *dp, rv_chan_key key)
{
    for (rv_dp_inbox *ib = dp->ins; ib; ib = ib->next)
        if (key_eq(ib->key, key))
            return ib;
    return NULL;
}

static void outbox_release_peer(rv_dp_outbox *ob)
{
    if (ob->holds_ref) {
        ob->peer->refs--;
        ob->holds_ref = false;
    }
}

static void inbox_release_peer(rv_dp_inbox *ib)
{
    if (ib->holds_ref) {
        ib->peer->refs--;
        ib->holds_ref = false;
    }
}

static void inbox_bind(rv_dp_inbox *ib, uint32_t lpipe_id, rv_dp_peer *p, uint32_t backlog)
{
    ib->lpipe = lpipe_id;
    ib->peer = p;
    ib->holds_ref = true;
    ib->backlog = backlog;
    p->refs++;
}

/* Drops what the outbox holds; it stays dead until close_job. */
bool rv_dp_outbox_drain(rv_dp_outbox *ob)
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

void rv_dp_outbox_kill(rv_dp_outbox *ob)
{
    ob->dead = true;
    outbox_release_peer(ob);
}

void rv_dp_outbox_free(rv_dp_outbox *ob)
{
    outbox_release_peer(ob);
    rv_channel_free(ob->ch);
    rv_batch_unref(ob->carry);
    rv_schema_unref(ob->schema);
    free(ob);
}

/* Marks ib failed and queues its callback for run_failures (mu held). */
static void fail_inbox(rv_dp_failures *fs, rv_dp_inbox *ib, rv_err *err)
{
    if (ib->failed || ib->closed) {
        rv_err_free(err);
        return;
    }
    ib->failed = true;
    ib->busy++;
    inbox_release_peer(ib);
    rv_xgrow((void **)&fs->v, &fs->cap, fs->n + 1, sizeof(rv_dp_failure));
    fs->v[fs->n++] = (rv_dp_failure){ib, err};
}

/* Calls the queued fail callbacks (mu not held). */
void rv_dp_run_failures(rv_dataplane *dp, rv_dp_failures *fs)
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
void rv_dp_connection_lost(rv_dataplane *dp, rv_dp_failures *fs, uint32_t lpipe_id, rv_dp_peer *p, const char *what)
{
    for (rv_dp_inbox *ib = dp->ins; ib; ib = ib->next) {
        if (ib->failed || ib->lpipe == 0 || !((lpipe_id && ib->lpipe == lpipe_id) || (p && ib->peer == p)))
            continue;
        fail_inbox(fs, ib,
                   rv_err_retry(RV_ERR_CLOSED, "data plane %s: channel %016" PRIx64 "/%" PRIu64 ": %s", dp->name,
                                ib->key.job, ib->key.chan, what));
    }
    for (rv_dp_outbox *ob = dp->outs; ob; ob = ob->next)
        if (!ob->dead && ((lpipe_id && ob->lpipe == lpipe_id) || (p && ob->peer == p)))
            rv_dp_outbox_kill(ob);
    if (lpipe_id)
        for (rv_dp_announce **a = &dp->anns; *a;) {
            if ((*a)->lpipe == lpipe_id) {
                rv_dp_announce *dead = *a;
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
    rv_dp_failures fs = {0};
    uint32_t id = (uint32_t)nng_pipe_id(pipe);
    pthread_mutex_lock(&dp->mu);
    for (rv_dp_lpipe **l = &dp->lpipes; !dp->stopping && *l; l = &(*l)->next) {
        if ((*l)->id != id)
            continue;
        rv_dp_lpipe *lp = *l;
        *l = lp->next;
        char *what = rv_xasprintf("connection from %s lost", lp->peer->url);
        rv_dp_connection_lost(dp, &fs, id, NULL, what);
        free(what);
        free(lp);
        break;
    }
    pthread_mutex_unlock(&dp->mu);
    rv_dp_run_failures(dp, &fs);
    rv_doorbell_ring(&dp->bell);
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
        rv_dp_lpipe *lp = rv_xcalloc(1, sizeof(*lp));
        lp->id = pid;
        lp->peer = peer_get(dp, url);
        lp->next = dp->lpipes;
        dp->lpipes = lp;
    }
    free(url);
}

static void on_announce(rv_dataplane *dp, rv_dp_failures *fs, uint32_t pid, rv_dp_peer *from, const rv_frame *f)
{
    rv_chan_key key = {f->job, f->chan};
    rv_dp_inbox *ib = inbox_find(dp, key);
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
    for (rv_dp_announce *a = dp->anns; a; a = a->next) {
        if (key_eq(a->key, key)) {
            a->lpipe = pid;
            a->peer = from;
            a->backlog = f->count;
            return;
        }
    }
    if (dp->nanns >= MAX_ANNOUNCES) {
        rv_dp_stat_add(&dp->frames_rejected, 1);
        return;
    }
    rv_dp_announce *a = rv_xcalloc(1, sizeof(*a));
    *a = (rv_dp_announce){.next = dp->anns, .key = key, .lpipe = pid, .peer = from, .backlog = f->count};
    dp->anns = a;
    dp->nanns++;
}

static void on_credit(rv_dataplane *dp, uint32_t pid, const rv_frame *f)
{
    rv_dp_outbox *ob = outbox_find(dp, (rv_chan_key){f->job, f->chan});
    if (!ob || ob->dead || (ob->lpipe && ob->lpipe != pid) || ob->credit + f->count > MAX_CREDIT) {
        rv_dp_stat_add(&dp->frames_rejected, 1);
        return;
    }
    ob->lpipe = pid;
    ob->credit += f->count;
    rv_doorbell_ring(&dp->bell);
}

/* A DATA frame (mu held; released while the batch decodes). */
static void on_data(rv_dataplane *dp, rv_dp_failures *fs, uint32_t pid, const rv_frame *f)
{
    rv_chan_key key = {f->job, f->chan};
    rv_dp_inbox *ib = inbox_find(dp, key);
    if (!ib || ib->failed) { /* closed, failed, or never opened here */
        rv_dp_stat_add(&dp->frames_rejected, 1);
        return;
    }
    const char *problem = NULL;
    if (ib->lpipe != pid)
        problem = "an element from a connection that did not announce the channel (protocol error)";
    else if (ib->received >= ib->granted)
        problem = "more elements than the credits granted (protocol error)";
    if (problem) {
        rv_dp_stat_add(&dp->frames_rejected, 1);
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
            rv_dp_stat_add(&dp->frames_rejected, 1);
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
    case RV_FRAME_BARRIER: el = (rv_elem){.kind = RV_EL_BARRIER, .u.chk = (uint64_t)f->wm}; break;
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
    rv_dp_stat_add(&dp->frames_received, 1);
    rv_dp_stat_add(&dp->bytes_received, len);
    rv_frame f;
    rv_err *err = rv_frame_decode(nng_msg_body(m), len, &f);
    if (err) {
        rv_dp_stat_add(&dp->frames_rejected, 1);
        RV_LOG_WARN(dp->name, "data plane: %s; closing the connection", rv_err_msg(err));
        rv_err_free(err);
        nng_pipe_close(pipe);
        return;
    }
    rv_dp_failures fs = {0};
    bool close_pipe = false;
    pthread_mutex_lock(&dp->mu);
    rv_dp_lpipe *lp = lpipe_find(dp, pid);
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
        rv_dp_stat_add(&dp->frames_rejected, 1);
        nng_pipe_close(pipe);
    }
    rv_dp_run_failures(dp, &fs);
}

static void *receiver_main(void *arg)
{
    rv_dataplane *dp = arg;
    while (!atomic_load(&dp->rx_cancel)) {
        nng_msg *m;
        int rv = nng_recvmsg(dp->lsock, &m, 0);
        if (rv == NNG_ETIMEDOUT)
            continue;
        if (rv == NNG_ECLOSED) /* not expected: the socket closes after this thread ends */
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
    rv_nng_opts opts = {.max_msg = RV_FRAME_HEADER_SIZE + RV_DP_MAX_BATCH_BYTES, .send_timeout_ms = 1000,
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
    } else if ((rc = pthread_create(&dp->sender, NULL, rv_dp_sender_main, dp)) != 0) {
        atomic_store(&dp->rx_cancel, true);
        pthread_join(dp->receiver, NULL);
        nng_close(s);
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
    /* The receiver leaves at its next receive timeout. Closing a socket
     * while a thread is blocked receiving on it can deadlock NNG 1.5's
     * reaper (nanomsg/nng#1813, fixed in 1.8), so it must be gone first. */
    pthread_join(dp->receiver, NULL);
    nng_close(dp->lsock);
    for (rv_dp_peer *p = dp->peers; p; p = p->next)
        if (p->has_sock)
            nng_close(p->sock);

    pthread_mutex_lock(&dp->mu);
    for (rv_dp_inbox *ib = dp->ins; ib; ib = ib->next)
        while (ib->busy) /* fail callbacks still running */
            pthread_cond_wait(&dp->cv, &dp->mu);
    pthread_mutex_unlock(&dp->mu);

    while (dp->outs) {
        rv_dp_outbox *ob = dp->outs;
        dp->outs = ob->next;
        rv_dp_outbox_free(ob);
    }
    while (dp->ins) {
        rv_dp_inbox *ib = dp->ins;
        dp->ins = ib->next;
        rv_channel_set_pop_bell(ib->ch, NULL);
        rv_schema_unref(ib->schema);
        free(ib);
    }
    while (dp->anns) {
        rv_dp_announce *a = dp->anns;
        dp->anns = a->next;
        free(a);
    }
    while (dp->lpipes) {
        rv_dp_lpipe *lp = dp->lpipes;
        dp->lpipes = lp->next;
        free(lp);
    }
    while (dp->peers) {
        rv_dp_peer *p = dp->peers;
        dp->peers = p->next;
        rv_dp_peer_drop_queue(p);
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
    rv_dp_outbox *ob = rv_xcalloc(1, sizeof(*ob));
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
    rv_dp_inbox *ib = rv_xcalloc(1, sizeof(*ib));
    ib->key = key;
    ib->ch = inbox_ch;
    ib->schema = rv_schema_ref(schema);
    ib->fail = fail;
    ib->arg = arg;
    rv_channel_set_pop_bell(inbox_ch, &dp->bell);
    for (rv_dp_announce **a = &dp->anns; *a; a = &(*a)->next) {
        if (key_eq((*a)->key, key)) {
            rv_dp_announce *found = *a;
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
    rv_dp_inbox *gone = NULL;
    pthread_mutex_lock(&dp->mu);
    for (rv_dp_outbox **o = &dp->outs; *o;) {
        rv_dp_outbox *ob = *o;
        if (ob->key.job != job) {
            o = &ob->next;
            continue;
        }
        *o = ob->next;
        if (ob->busy) { /* the sender thread frees it when done */
            ob->closed = true;
            outbox_release_peer(ob);
        } else {
            rv_dp_outbox_free(ob);
        }
    }
    for (rv_dp_inbox **i = &dp->ins; *i;) {
        rv_dp_inbox *ib = *i;
        if (ib->key.job != job) {
            i = &ib->next;
            continue;
        }
        *i = ib->next;
        ib->closed = true;
        ib->next = gone;
        gone = ib;
    }
    for (rv_dp_announce **a = &dp->anns; *a;) {
        if ((*a)->key.job == job) {
            rv_dp_announce *dead = *a;
            *a = dead->next;
            dp->nanns--;
            free(dead);
        } else {
            a = &(*a)->next;
        }
    }
    while (gone) {
        rv_dp_inbox *ib = gone;
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
