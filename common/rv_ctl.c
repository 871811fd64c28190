/* rv_ctl: control-plane endpoints over NNG PAIR1 (polyamorous). */
#include "rv_ctl.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rv_log.h"
#include "rv_mem.h"
#include "rv_nng.h"

#define RECV_POLL_MS 50
#define SEND_TIMEOUT_MS 2000

struct rv_ctl {
    nng_socket sock;
    rv_ctl_handlers h;
    char *url;
    char *tag;
    pthread_t thread;
    atomic_bool closing;
};

static void pipe_event(nng_pipe p, nng_pipe_ev ev, void *arg)
{
    rv_ctl *c = arg;
    if (c->h.on_pipe && !atomic_load(&c->closing))
        c->h.on_pipe(c->h.arg, nng_pipe_id(p), ev == NNG_PIPE_EV_ADD_POST);
}

static void *receiver(void *arg)
{
    rv_ctl *c = arg;
    while (!atomic_load(&c->closing)) {
        nng_msg *m = NULL;
        int rv = nng_recvmsg(c->sock, &m, 0);
        if (rv == NNG_ETIMEDOUT)
            continue;
        if (rv != 0) {
            if (rv == NNG_ECLOSED)
                break;
            continue;
        }
        nng_pipe p = nng_msg_get_pipe(m);
        rv_envelope *env = NULL;
        rv_err *err = rv_proto_unpack(nng_msg_body(m), nng_msg_len(m), &env);
        nng_msg_free(m);
        if (err) {
            RV_LOG_WARN(c->tag, "dropping connection %u: %s", (unsigned)nng_pipe_id(p), rv_err_msg(err));
            rv_err_free(err);
            nng_pipe_close(p);
            continue;
        }
        c->h.on_msg(c->h.arg, env, nng_pipe_id(p));
    }
    return NULL;
}

static rv_err *start(rv_ctl *c)
{
    nng_pipe_notify(c->sock, NNG_PIPE_EV_ADD_POST, pipe_event, c);
    nng_pipe_notify(c->sock, NNG_PIPE_EV_REM_POST, pipe_event, c);
    int rc = pthread_create(&c->thread, NULL, receiver, c);
    if (rc != 0)
        return rv_err_new(RV_ERR_INTERNAL, "cannot start the control receiver thread: %s", strerror(rc));
    return NULL;
}

/* The listener (the coordinator) has many peers: polyamorous. A dialer
 * has one peer and uses a monogamous socket: NNG 1.5.2's polyamorous
 * PAIR1 moves each message into a per-peer queue only two deep and drops
 * it when that is full, so a burst (every subtask acknowledging a
 * checkpoint at once) would lose messages; a monogamous socket blocks
 * (up to the send timeout) instead. */
static const rv_nng_opts listen_opts = {
    .max_msg = RV_PROTO_MAX_MSG,
    .send_timeout_ms = SEND_TIMEOUT_MS,
    .recv_timeout_ms = RECV_POLL_MS,
    .poly = true,
};
static const rv_nng_opts dial_opts = { /* also a session's listener */
    .max_msg = RV_PROTO_MAX_MSG,
    .send_timeout_ms = SEND_TIMEOUT_MS,
    .recv_timeout_ms = RECV_POLL_MS,
    .poly = false,
    .queue_depth = 1024,
};

static rv_ctl *ctl_alloc(const rv_ctl_handlers *h)
{
    rv_ctl *c = rv_xcalloc(1, sizeof(*c));
    c->h = *h;
    c->tag = rv_xstrdup(h->tag ? h->tag : "ctl");
    c->h.tag = c->tag;
    atomic_init(&c->closing, false);
    return c;
}

static void ctl_free(rv_ctl *c)
{
    free(c->url);
    free(c->tag);
    free(c);
}

static rv_err *listen_with(const char *url, const rv_nng_opts *opts, const rv_ctl_handlers *h, rv_ctl **out)
{
    rv_ctl *c = ctl_alloc(h);
    rv_err *err = rv_nng_listen(url, opts, &c->sock, &c->url);
    if (err) {
        ctl_free(c);
        return err;
    }
    if ((err = start(c))) {
        nng_close(c->sock);
        ctl_free(c);
        return err;
    }
    *out = c;
    return NULL;
}

rv_err *rv_ctl_listen(const char *url, const rv_ctl_handlers *h, rv_ctl **out)
{
    return listen_with(url, &listen_opts, h, out);
}

rv_err *rv_ctl_listen_session(const char *url, const rv_ctl_handlers *h, rv_ctl **out)
{
    return listen_with(url, &dial_opts, h, out);
}

rv_err *rv_ctl_dial(const char *url, int32_t wait_ms, const rv_ctl_handlers *h, rv_ctl **out)
{
    rv_ctl *c = ctl_alloc(h);
    c->url = rv_xstrdup(url);
    rv_err *err = NULL;
    err = rv_nng_dial(url, &dial_opts, wait_ms, &c->sock);
    if (err) {
        ctl_free(c);
        return err;
    }
    if ((err = start(c))) {
        nng_close(c->sock);
        ctl_free(c);
        return err;
    }
    /* Notifications start after the dial: a connection made before them
     * is not reported as added (dialers re-send what they must until it is
     * acknowledged, so nothing depends on that first report). */
    *out = c;
    return NULL;
}

const char *rv_ctl_url(const rv_ctl *c) { return c->url; }

rv_err *rv_ctl_send(rv_ctl *c, uint32_t pipe, const rv_envelope *env)
{
    void *buf = NULL;
    size_t len = 0;
    rv_err *err = rv_proto_pack(env, &buf, &len);
    if (err)
        return err;
    nng_msg *m = NULL;
    int rv = nng_msg_alloc(&m, 0);
    if (rv == 0)
        rv = nng_msg_append(m, buf, len);
    free(buf);
    if (rv != 0) {
        nng_msg_free(m);
        return rv_nng_err(rv, "building a %s message", rv_proto_body_name(env));
    }
    if (pipe) {
        nng_pipe p;
        memset(&p, 0, sizeof(p));
        p.id = pipe;
        nng_msg_set_pipe(m, p);
    }
    rv = nng_sendmsg(c->sock, m, 0);
    if (rv != 0) {
        nng_msg_free(m); /* on failure the caller still owns it */
        return rv_nng_err(rv, "sending %s", rv_proto_body_name(env));
    }
    return NULL;
}

void rv_ctl_drop(rv_ctl *c, uint32_t pipe)
{
    nng_pipe p;
    memset(&p, 0, sizeof(p));
    p.id = pipe;
    nng_pipe_close(p);
}

void rv_ctl_close(rv_ctl *c)
{
    if (!c)
        return;
    atomic_store(&c->closing, true);
    /* Join first: the receiver polls with a timeout and sees `closing`;
     * closing the socket under a thread inside nng_recvmsg races in NNG. */
    pthread_join(c->thread, NULL);
    nng_close(c->sock);
    ctl_free(c);
}

/* ---- one request, one reply ---- */

typedef struct waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t id;
    rv_envelope *reply;
} waiter;

static void on_reply(void *arg, rv_envelope *env, uint32_t pipe)
{
    waiter *w = arg;
    pthread_mutex_lock(&w->mu);
    if (!w->reply && env->request_id == w->id && env->body_case == RIVULET__ENVELOPE__BODY_REPLY) {
        w->reply = env;
        env = NULL;
        pthread_cond_signal(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
    rv_proto_free(env);
}

rv_err *rv_ctl_request(const char *url, int32_t wait_ms, int32_t timeout_ms, rv_envelope *req, rv_envelope **reply)
{
    waiter w = {.id = ((uint64_t)time(NULL) << 20) ^ (uint64_t)(uintptr_t)&w};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    rv_ctl_handlers h = {.on_msg = on_reply, .arg = &w, .tag = "cli"};
    rv_ctl *c = NULL;
    rv_err *err = rv_ctl_dial(url, wait_ms, &h, &c);
    if (err)
        goto out;
    req->request_id = w.id;
    if ((err = rv_ctl_send(c, 0, req)))
        goto out;
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += timeout_ms / 1000;
    dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
    if (dl.tv_nsec >= 1000000000) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&w.mu);
    while (!w.reply)
        if (pthread_cond_timedwait(&w.cv, &w.mu, &dl) != 0)
            break;
    *reply = w.reply;
    w.reply = NULL;
    pthread_mutex_unlock(&w.mu);
    if (!*reply)
        err = rv_err_new(RV_ERR_TIMEOUT, "no answer from the coordinator at %s within %d ms", url, (int)timeout_ms);
out:
    rv_ctl_close(c);
    rv_proto_free(w.reply);
    pthread_cond_destroy(&w.cv);
    pthread_mutex_destroy(&w.mu);
    return err;
}
