/* rv_nng: the adapter between NNG and Rivulet. It turns NNG's integer
 * results into rv_err objects, and opens every PAIR1 socket the same way
 * (maximum receive size, send and receive timeouts, optional polyamorous
 * mode), so no caller can forget a limit. Dialing with a wait is bounded:
 * NNG's blocking dial has no timeout of its own (a filtered peer or one that
 * accepts TCP but never answers the SP handshake would block it for
 * minutes), so the attempt runs on a short-lived helper thread that the
 * caller abandons at the deadline by closing the socket. */
#include "rv_nng.h"

#include <assert.h>
#include <errno.h>
#include <nng/protocol/pair1/pair.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rv_mem.h"
#include "rv_time.h"

/* NNG counts the PAIR1 header (a 32-bit hop count) against
 * NNG_OPT_RECVMAXSZ; callers limit the body. */
#define PAIR1_HEADER 4

/* Pause between dial attempts while waiting (NNG's own reconnect minimum). */
#define DIAL_RETRY_NS (100 * 1000000LL)

rv_err *rv_nng_err(int rv, const char *fmt, ...)
{
    rv_code code = RV_ERR_IO;
    bool retriable = false;
    switch (rv) {
    case NNG_ETIMEDOUT:
        code = RV_ERR_TIMEOUT;
        retriable = true;
        break;
    case NNG_ECLOSED: /* our own object was closed: retrying it cannot help */
        code = RV_ERR_CLOSED;
        break;
    case NNG_ECONNSHUT:
    case NNG_ECONNRESET:
        code = RV_ERR_CLOSED;
        retriable = true;
        break;
    case NNG_EAGAIN:
        code = RV_ERR_AGAIN;
        retriable = true;
        break;
    case NNG_ENOMEM:
        code = RV_ERR_NOMEM;
        break;
    case NNG_ECONNREFUSED:
    case NNG_EUNREACHABLE:
    case NNG_EADDRINUSE: /* a port that another process may soon release */
    case NNG_EBUSY:
    case NNG_ENOFILES:
        retriable = true;
        break;
    default:
        break;
    }
    va_list ap;
    va_start(ap, fmt);
    char *ctx = rv_xvasprintf(fmt, ap);
    va_end(ap);
    rv_err *err = retriable ? rv_err_retry(code, "%s: %s", ctx, nng_strerror(rv))
                            : rv_err_new(code, "%s: %s", ctx, nng_strerror(rv));
    free(ctx);
    return err;
}

/* ---- URLs ---- */

static bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static bool port_valid(const char *p)
{
    size_t n = strlen(p);
    if (n == 0 || n > 5)
        return false;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        v = v * 10 + (unsigned)(p[i] - '0');
    }
    return v <= 65535;
}

static bool host_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '-' || c == '_';
}

static bool ip6_char(char c)
{
    return (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || (c >= '0' && c <= '9') || c == ':' ||
           c == '.';
}

/* "host:port", "[v6]:port" or "*:port" (listen on every address). */
static bool tcp_addr_valid(const char *a)
{
    const char *colon;
    if (a[0] == '[') {
        const char *close = strchr(a, ']');
        if (!close || close == a + 1)
            return false;
        for (const char *c = a + 1; c < close; c++)
            if (!ip6_char(*c))
                return false;
        if (close[1] != ':')
            return false;
        colon = close + 1;
    } else {
        colon = strchr(a, ':');
        if (!colon || colon == a || strchr(colon + 1, ':'))
            return false;
        if (!(colon == a + 1 && a[0] == '*'))
            for (const char *c = a; c < colon; c++)
                if (!host_char(*c))
                    return false;
    }
    return port_valid(colon + 1);
}

bool rv_nng_url_valid(const char *url)
{
    if (!url)
        return false;
    for (const unsigned char *c = (const unsigned char *)url; *c; c++)
        if (*c <= ' ' || *c == 0x7f)
            return false;
    if (starts_with(url, "inproc://"))
        return url[strlen("inproc://")] != '\0';
    if (starts_with(url, "ipc://"))
        return url[strlen("ipc://")] != '\0';
    if (starts_with(url, "tcp://"))
        return tcp_addr_valid(url + strlen("tcp://"));
    return false;
}

static rv_err *invalid_url(const char *what, const char *url)
{
    return rv_err_new(RV_ERR_INVALID,
                      "%s: invalid URL \"%s\" (expected tcp://host:port, ipc://path or inproc://name)",
                      what, url ? url : "(null)");
}

/* ---- sockets ---- */

#define POLY_QUEUE_DEPTH 1024

static rv_err *open_socket(const rv_nng_opts *opts, nng_socket *out)
{
    assert(opts->max_msg > 0 && opts->max_msg < SIZE_MAX - PAIR1_HEADER); /* every socket has a limit */
    nng_socket s;
    int rv = opts->poly ? nng_pair1_open_poly(&s) : nng_pair1_open(&s);
    if (rv != 0)
        return rv_nng_err(rv, "opening a PAIR1 socket");
    const char *opt = NNG_OPT_RECVMAXSZ;
    rv = nng_socket_set_size(s, opt, opts->max_msg + PAIR1_HEADER);
    if (rv == 0) {
        opt = NNG_OPT_SENDTIMEO;
        rv = nng_socket_set_ms(s, opt, opts->send_timeout_ms);
    }
    if (rv == 0) {
        opt = NNG_OPT_RECVTIMEO;
        rv = nng_socket_set_ms(s, opt, opts->recv_timeout_ms);
    }
    /* Socket-level queues, so a sender does not wait for every message to
     * be taken. (A polyamorous socket still drops a message when the
     * peer's own two-deep queue is full: see rv_ctl.h.) */
    int depth = opts->queue_depth > 0 ? opts->queue_depth : opts->poly ? POLY_QUEUE_DEPTH : 0;
    if (rv == 0 && depth > 0) {
        opt = NNG_OPT_SENDBUF;
        rv = nng_socket_set_int(s, opt, depth);
    }
    if (rv == 0 && depth > 0) {
        opt = NNG_OPT_RECVBUF;
        rv = nng_socket_set_int(s, opt, depth);
    }
    if (rv != 0) {
        nng_close(s);
        return rv_nng_err(rv, "setting socket option %s", opt);
    }
    *out = s;
    return NULL;
}

/* url with its port replaced by port ("tcp://host:0" -> "tcp://host:41234"). */
static char *with_port(const char *url, int port)
{
    const char *colon = strrchr(url, ':');
    assert(colon && colon > url + strlen("tcp:/"));
    return rv_xasprintf("%.*s:%d", (int)(colon - url), url, port);
}

rv_err *rv_nng_listen(const char *url, const rv_nng_opts *opts, nng_socket *s, char **bound_url)
{
    assert(opts && s);
    if (!rv_nng_url_valid(url))
        return invalid_url("listening", url);
    nng_socket sock;
    rv_err *err = open_socket(opts, &sock);
    if (err)
        return rv_err_wrap(err, "listening on %s", url);
    nng_listener l;
    int rv = nng_listen(sock, url, &l, 0);
    if (rv != 0) {
        nng_close(sock);
        return rv_nng_err(rv, "listening on %s", url);
    }
    char *bound = NULL;
    if (bound_url) {
        if (starts_with(url, "tcp://")) {
            int port = 0;
            rv = nng_listener_get_int(l, NNG_OPT_TCP_BOUND_PORT, &port);
            if (rv != 0) {
                nng_close(sock);
                return rv_nng_err(rv, "listening on %s: reading the bound port", url);
            }
            bound = with_port(url, port);
        } else {
            bound = rv_xstrdup(url);
        }
        *bound_url = bound;
    }
    *s = sock;
    return NULL;
}

/* ---- dialing with a deadline ---- */

typedef struct dial_wait {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* CLOCK_MONOTONIC */
    nng_socket s;
    const char *url;
    bool stop;    /* the waiter gave up */
    bool done;    /* the dialing thread finished */
    int rv;       /* result of the last finished attempt */
    int attempts; /* finished attempts */
} dial_wait;

/* Errors a later attempt may not repeat (the peer is starting, restarting
 * or briefly overloaded). */
static bool dial_retriable(int rv)
{
    switch (rv) {
    case NNG_ECONNREFUSED:
    case NNG_ECONNRESET:
    case NNG_ECONNSHUT:
    case NNG_ETIMEDOUT:
    case NNG_EUNREACHABLE:
    case NNG_EAGAIN:
        return true;
    default:
        return false;
    }
}

static struct timespec abs_time(int64_t mono_ns)
{
    struct timespec ts = {.tv_sec = (time_t)(mono_ns / 1000000000), .tv_nsec = (long)(mono_ns % 1000000000)};
    return ts;
}

/* Dials until connected, a permanent error, or the waiter stops it. */
static void *dial_loop(void *arg)
{
    dial_wait *w = arg;
    for (;;) {
        int rv = nng_dial(w->s, w->url, NULL, 0);
        pthread_mutex_lock(&w->mu);
        if (!w->stop) { /* after stop, the result is our own abort */
            w->rv = rv;
            w->attempts++;
        }
        if (rv == 0 || w->stop || !dial_retriable(rv))
            break;
        struct timespec until = abs_time(rv_now_ns() + DIAL_RETRY_NS);
        while (!w->stop)
            if (pthread_cond_timedwait(&w->cv, &w->mu, &until) == ETIMEDOUT)
                break;
        if (w->stop)
            break;
        pthread_mutex_unlock(&w->mu);
    }
    w->done = true;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* Dials s to url, retrying refused connections, for at most wait_ms.
 * On failure s is closed. */
static rv_err *dial_wait_for(nng_socket s, const char *url, int32_t wait_ms)
{
    dial_wait w = {.s = s, .url = url};
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&w.cv, &attr);
    pthread_condattr_destroy(&attr);
    pthread_mutex_init(&w.mu, NULL);

    rv_err *err = NULL;
    pthread_t th;
    int rc = pthread_create(&th, NULL, dial_loop, &w);
    if (rc != 0) {
        nng_close(s);
        err = rv_err_new(RV_ERR_INTERNAL, "dialing %s: cannot start a thread: %s", url, strerror(rc));
        goto out;
    }
    struct timespec deadline = abs_time(rv_now_ns() + (int64_t)wait_ms * 1000000);
    pthread_mutex_lock(&w.mu);
    while (!w.done)
        if (pthread_cond_timedwait(&w.cv, &w.mu, &deadline) == ETIMEDOUT)
            break;
    bool timed_out = !w.done;
    w.stop = true;
    pthread_cond_broadcast(&w.cv);
    pthread_mutex_unlock(&w.mu);
    if (timed_out || w.rv != 0)
        nng_close(s); /* aborts an attempt in progress */
    pthread_join(th, NULL);

    if (!timed_out && w.rv == 0)
        goto out;
    if (!timed_out)
        err = rv_nng_err(w.rv, "dialing %s", url);
    else if (w.attempts > 0 && w.rv != 0)
        err = rv_nng_err(w.rv, "dialing %s: no connection within %d ms (%d attempt%s)", url, (int)wait_ms,
                         w.attempts, w.attempts == 1 ? "" : "s");
    else
        err = rv_nng_err(NNG_ETIMEDOUT, "dialing %s: no connection within %d ms", url, (int)wait_ms);
out:
    pthread_mutex_destroy(&w.mu);
    pthread_cond_destroy(&w.cv);
    return err;
}

rv_err *rv_nng_dial(const char *url, const rv_nng_opts *opts, int32_t wait_ms, nng_socket *s)
{
    assert(opts && s);
    if (!rv_nng_url_valid(url))
        return invalid_url("dialing", url);
    nng_socket sock;
    rv_err *err = open_socket(opts, &sock);
    if (err)
        return rv_err_wrap(err, "dialing %s", url);
    if (wait_ms > 0) {
        if ((err = dial_wait_for(sock, url, wait_ms)))
            return err;
    } else {
        int rv = nng_dial(sock, url, NULL, NNG_FLAG_NONBLOCK);
        if (rv != 0) {
            nng_close(sock);
            return rv_nng_err(rv, "dialing %s", url);
        }
    }
    *s = sock;
    return NULL;
}
