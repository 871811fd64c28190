/* Unit tests of rv_nng: error conversion, URL checks, listening on a free
 * port, message round trips over polyamorous PAIR1, the receive size limit,
 * socket timeouts, and dialing with and without a deadline (refused,
 * silent and late peers). Everything runs on 127.0.0.1 with ports chosen at
 * run time. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "rv_nng.h"
#include "rv_time.h"

static const rv_nng_opts poly_opts = {.max_msg = 1 << 20, .send_timeout_ms = 1000, .recv_timeout_ms = 1000, .poly = true};
static const rv_nng_opts pair_opts = {.max_msg = 1 << 20, .send_timeout_ms = 1000, .recv_timeout_ms = 1000};

/* A raw TCP socket bound to a free port of 127.0.0.1 (listening if backlog
 * >= 0); *port receives the port. */
static int raw_socket(int backlog, int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    if (backlog >= 0)
        cr_assert_eq(listen(fd, backlog), 0);
    socklen_t len = sizeof(a);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

/* A port on which nothing listens (bound, then released). */
static int closed_port(void)
{
    int port;
    close(raw_socket(-1, &port));
    return port;
}

static void send_str(nng_socket s, const char *text, nng_pipe p)
{
    nng_msg *m;
    cr_assert_eq(nng_msg_alloc(&m, 0), 0);
    cr_assert_eq(nng_msg_append(m, text, strlen(text)), 0);
    if (nng_pipe_id(p) > 0)
        nng_msg_set_pipe(m, p);
    int rv = nng_sendmsg(s, m, 0);
    if (rv != 0)
        nng_msg_free(m);
    cr_assert_eq(rv, 0, "send: %s", nng_strerror(rv));
}

/* Receives one message, checks its text, returns its pipe. */
static nng_pipe recv_str(nng_socket s, const char *want)
{
    nng_msg *m = NULL;
    int rv = nng_recvmsg(s, &m, 0);
    cr_assert_eq(rv, 0, "recv: %s", nng_strerror(rv));
    cr_assert_eq(nng_msg_len(m), strlen(want));
    cr_assert(memcmp(nng_msg_body(m), want, strlen(want)) == 0);
    nng_pipe p = nng_msg_get_pipe(m);
    nng_msg_free(m);
    return p;
}

/* ---- errors ---- */

Test(rv_nng_err, codes_retriable_flags_and_messages_follow_the_table)
{
    struct {
        int rv;
        rv_code code;
        bool retriable;
    } cases[] = {
        {NNG_ETIMEDOUT, RV_ERR_TIMEOUT, true},   {NNG_ECLOSED, RV_ERR_CLOSED, false},
        {NNG_ECONNSHUT, RV_ERR_CLOSED, true},    {NNG_ECONNRESET, RV_ERR_CLOSED, true},
        {NNG_ECONNREFUSED, RV_ERR_IO, true},     {NNG_EAGAIN, RV_ERR_AGAIN, true},
        {NNG_ENOMEM, RV_ERR_NOMEM, false},       {NNG_EADDRINVAL, RV_ERR_IO, false},
        {NNG_EPROTO, RV_ERR_IO, false},          {NNG_EADDRINUSE, RV_ERR_IO, true},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        rv_err *err = rv_nng_err(cases[i].rv, "ctx %d", 7);
        cr_assert_eq(rv_err_code(err), cases[i].code, "nng %d", cases[i].rv);
        cr_assert_eq(rv_err_retriable(err), cases[i].retriable, "nng %d", cases[i].rv);
        char want[256];
        snprintf(want, sizeof(want), "ctx 7: %s", nng_strerror(cases[i].rv));
        cr_assert_str_eq(rv_err_msg(err), want);
        rv_err_free(err);
    }
    rv_err *err = rv_nng_err(NNG_ETIMEDOUT, "x");
    cr_assert_str_eq(rv_err_msg(err), "x: Timed out");
    rv_err_free(err);
}

/* ---- URLs ---- */

Test(rv_nng_url, validation_table)
{
    struct {
        const char *url;
        bool ok;
    } cases[] = {
        {"tcp://127.0.0.1:6123", true},
        {"tcp://127.0.0.1:0", true},
        {"tcp://localhost:65535", true},
        {"tcp://tm-1.example.com:80", true},
        {"tcp://[::1]:9000", true},
        {"tcp://*:6123", true},
        {"inproc://rivulet-coord", true},
        {"ipc:///tmp/rivulet.sock", true},
        {NULL, false},
        {"", false},
        {"tcp://", false},
        {"tcp://127.0.0.1", false},     /* no port */
        {"tcp://127.0.0.1:", false},    /* empty port */
        {"tcp://:6123", false},         /* no host */
        {"tcp://127.0.0.1:65536", false},
        {"tcp://127.0.0.1:123456", false},
        {"tcp://127.0.0.1:12a", false},
        {"tcp://127.0.0.1:-1", false},
        {"tcp://127.0.0.1:80/path", false},
        {"tcp://a:b:80", false},
        {"tcp://[::1]9000", false},     /* no colon after the bracket */
        {"tcp://[]:9000", false},
        {"tcp://[::g]:9000", false},
        {"tcp://ho st:80", false},
        {"tcp://host:80\n", false},
        {"tcp://a*:80", false},
        {"http://127.0.0.1:80", false},
        {"tcp:/127.0.0.1:80", false},
        {"127.0.0.1:80", false},
        {"inproc://", false},
        {"ipc://", false},
        {"TCP://127.0.0.1:80", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        cr_assert_eq(rv_nng_url_valid(cases[i].url), cases[i].ok, "%s", cases[i].url ? cases[i].url : "NULL");
}

Test(rv_nng_listen, invalid_url_is_refused_before_any_socket)
{
    nng_socket s = NNG_SOCKET_INITIALIZER;
    char *bound = (char *)"untouched";
    rv_err *err = rv_nng_listen("tcp://nohost", &poly_opts, &s, &bound);
    cr_assert_eq(rv_err_code(err), RV_ERR_INVALID);
    cr_assert_str_eq(rv_err_msg(err), "listening: invalid URL \"tcp://nohost\" (expected tcp://host:port, "
                                      "ipc://path or inproc://name)");
    cr_assert_str_eq(bound, "untouched");
    cr_assert_eq(nng_socket_id(s), -1);
    rv_err_free(err);
    err = rv_nng_dial("udp://1.2.3.4:5", &poly_opts, 100, &s);
    cr_assert_eq(rv_err_code(err), RV_ERR_INVALID);
    rv_err_free(err);
}

/* ---- listening ---- */

Test(rv_nng_listen, port_zero_binds_a_real_port_and_reports_it)
{
    nng_socket s;
    char *bound = NULL;
    rv_err *err = rv_nng_listen("tcp://127.0.0.1:0", &poly_opts, &s, &bound);
    cr_assert_null(err, "%s", rv_err_msg(err));
    cr_assert_not_null(bound);
    int port = 0;
    cr_assert_eq(sscanf(bound, "tcp://127.0.0.1:%d", &port), 1, "%s", bound);
    cr_assert(port > 0 && port < 65536, "%s", bound);
    char want[64];
    snprintf(want, sizeof(want), "tcp://127.0.0.1:%d", port);
    cr_assert_str_eq(bound, want);
    /* A plain TCP connect reaches it: the port is really bound. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    close(fd);
    /* Listening again on the bound address fails: address in use. */
    nng_socket s2;
    err = rv_nng_listen(bound, &poly_opts, &s2, NULL);
    cr_assert_eq(rv_err_code(err), RV_ERR_IO);
    cr_assert(rv_err_retriable(err));
    cr_assert(strstr(rv_err_msg(err), bound) != NULL, "%s", rv_err_msg(err));
    rv_err_free(err);
    free(bound);
    nng_close(s);
}

Test(rv_nng_listen, inproc_bound_url_is_the_url)
{
    nng_socket s;
    char *bound = NULL;
    rv_err *err = rv_nng_listen("inproc://test-nng-bound", &poly_opts, &s, &bound);
    cr_assert_null(err, "%s", rv_err_msg(err));
    cr_assert_str_eq(bound, "inproc://test-nng-bound");
    free(bound);
    nng_close(s);
}

/* ---- round trips ---- */

static void round_trip(const char *url)
{
    nng_socket ls, d1, d2;
    char *bound = NULL;
    rv_err *err = rv_nng_listen(url, &poly_opts, &ls, &bound);
    cr_assert_null(err, "%s", rv_err_msg(err));
    cr_assert_null((err = rv_nng_dial(bound, &pair_opts, 1000, &d1)), "%s", rv_err_msg(err));
    cr_assert_null((err = rv_nng_dial(bound, &pair_opts, 1000, &d2)), "%s", rv_err_msg(err));
    nng_pipe none = NNG_PIPE_INITIALIZER;

    send_str(d1, "from one", none);
    nng_pipe p1 = recv_str(ls, "from one");
    send_str(d2, "from two", none);
    nng_pipe p2 = recv_str(ls, "from two");
    cr_assert_neq(nng_pipe_id(p1), nng_pipe_id(p2));

    /* Replies go to the pipe set on the message, in either order. */
    send_str(ls, "to two", p2);
    send_str(ls, "to one", p1);
    recv_str(d1, "to one");
    recv_str(d2, "to two");

    /* Nothing else arrived at either dialer. */
    nng_msg *m = NULL;
    cr_assert_eq(nng_recvmsg(d1, &m, NNG_FLAG_NONBLOCK), NNG_EAGAIN);
    cr_assert_eq(nng_recvmsg(d2, &m, NNG_FLAG_NONBLOCK), NNG_EAGAIN);
    free(bound);
    nng_close(d1);
    nng_close(d2);
    nng_close(ls);
}

Test(rv_nng_dial, poly_pair_round_trips_both_ways_over_tcp) { round_trip("tcp://127.0.0.1:0"); }

Test(rv_nng_dial, poly_pair_round_trips_both_ways_over_inproc) { round_trip("inproc://test-nng-rt"); }

/* ---- limits and timeouts ---- */

typedef struct pipe_count {
    atomic_int added, removed;
} pipe_count;

static void count_pipe(nng_pipe p, nng_pipe_ev ev, void *arg)
{
    (void)p;
    pipe_count *pc = arg;
    if (ev == NNG_PIPE_EV_ADD_POST)
        atomic_fetch_add(&pc->added, 1);
    else if (ev == NNG_PIPE_EV_REM_POST)
        atomic_fetch_add(&pc->removed, 1);
}

Test(rv_nng_listen, message_over_max_msg_drops_the_connection)
{
    rv_nng_opts small = poly_opts;
    small.max_msg = 1024;
    small.recv_timeout_ms = 300;
    nng_socket ls, d;
    char *bound = NULL;
    rv_err *err = rv_nng_listen("tcp://127.0.0.1:0", &small, &ls, &bound);
    cr_assert_null(err, "%s", rv_err_msg(err));
    pipe_count pc = {0};
    nng_pipe_notify(ls, NNG_PIPE_EV_ADD_POST, count_pipe, &pc);
    nng_pipe_notify(ls, NNG_PIPE_EV_REM_POST, count_pipe, &pc);
    cr_assert_null((err = rv_nng_dial(bound, &pair_opts, 1000, &d)), "%s", rv_err_msg(err));

    /* Exactly the limit is delivered (NNG's own header does not count). */
    char *big = malloc(2048);
    memset(big, 'x', 2048);
    nng_msg *m;
    cr_assert_eq(nng_msg_alloc(&m, 0), 0);
    nng_msg_append(m, big, 1024);
    cr_assert_eq(nng_sendmsg(d, m, 0), 0);
    cr_assert_eq(nng_recvmsg(ls, &m, 0), 0);
    cr_assert_eq(nng_msg_len(m), 1024);
    nng_msg_free(m);
    cr_assert_eq(atomic_load(&pc.removed), 0);

    /* One byte more: the receiver never sees it and drops the pipe. */
    cr_assert_eq(nng_msg_alloc(&m, 0), 0);
    nng_msg_append(m, big, 1025);
    cr_assert_eq(nng_sendmsg(d, m, 0), 0);
    cr_assert_eq(nng_recvmsg(ls, &m, 0), NNG_ETIMEDOUT);
    int64_t until = rv_now_ms() + 2000;
    while (atomic_load(&pc.removed) == 0 && rv_now_ms() < until)
        usleep(5000);
    cr_assert_eq(atomic_load(&pc.removed), 1);
    free(big);
    free(bound);
    nng_close(d);
    nng_close(ls);
}

Test(rv_nng_dial, socket_timeouts_are_applied)
{
    rv_nng_opts o = pair_opts;
    o.send_timeout_ms = 150;
    o.recv_timeout_ms = 100;
    nng_socket s;
    /* A background dial to nowhere: sends have no peer and block. */
    char url[64];
    snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", closed_port());
    rv_err *err = rv_nng_dial(url, &o, 0, &s);
    cr_assert_null(err, "%s", rv_err_msg(err));
    nng_msg *m;
    nng_msg_alloc(&m, 4);
    int64_t t0 = rv_now_ms();
    cr_assert_eq(nng_sendmsg(s, m, 0), NNG_ETIMEDOUT);
    int64_t t1 = rv_now_ms();
    nng_msg_free(m);
    cr_assert(t1 - t0 >= 140 && t1 - t0 < 1000, "send blocked %lld ms", (long long)(t1 - t0));
    cr_assert_eq(nng_recvmsg(s, &m, 0), NNG_ETIMEDOUT);
    int64_t t2 = rv_now_ms();
    cr_assert(t2 - t1 >= 90 && t2 - t1 < 1000, "recv blocked %lld ms", (long long)(t2 - t1));
    nng_close(s);
}

/* ---- dialing ---- */

Test(rv_nng_dial, closed_port_fails_within_the_wait_with_a_clear_message)
{
    char url[64];
    snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", closed_port());
    nng_socket s = NNG_SOCKET_INITIALIZER;
    int64_t t0 = rv_now_ms();
    rv_err *err = rv_nng_dial(url, &pair_opts, 300, &s);
    int64_t took = rv_now_ms() - t0;
    cr_assert_not_null(err);
    cr_assert(took >= 250 && took < 1000, "took %lld ms", (long long)took);
    cr_assert_eq(rv_err_code(err), RV_ERR_IO);
    cr_assert(rv_err_retriable(err));
    char want[160];
    snprintf(want, sizeof(want), "dialing %s: no connection within 300 ms (", url);
    cr_assert(strncmp(rv_err_msg(err), want, strlen(want)) == 0, "%s", rv_err_msg(err));
    cr_assert(strstr(rv_err_msg(err), "attempts): Connection refused") != NULL, "%s", rv_err_msg(err));
    cr_assert_eq(nng_socket_id(s), -1, "the out-parameter is untouched");
    rv_err_free(err);
}

Test(rv_nng_dial, silent_peer_times_out_within_the_wait)
{
    /* A TCP listener that never speaks: NNG's blocking dial alone would
     * wait for the SP handshake far longer than the wait. */
    int port;
    int fd = raw_socket(16, &port);
    char url[64];
    snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", port);
    nng_socket s;
    int64_t t0 = rv_now_ms();
    rv_err *err = rv_nng_dial(url, &pair_opts, 300, &s);
    int64_t took = rv_now_ms() - t0;
    cr_assert_not_null(err);
    cr_assert(took >= 250 && took < 1000, "took %lld ms", (long long)took);
    cr_assert_eq(rv_err_code(err), RV_ERR_TIMEOUT, "%s", rv_err_msg(err));
    cr_assert(rv_err_retriable(err));
    char want[160];
    snprintf(want, sizeof(want), "dialing %s: no connection within 300 ms: Timed out", url);
    cr_assert_str_eq(rv_err_msg(err), want);
    rv_err_free(err);
    close(fd);
}

typedef struct late_listener {
    char url[64];
    int delay_ms;
    nng_socket s;
} late_listener;

static void *listen_late(void *arg)
{
    late_listener *ll = arg;
    usleep((useconds_t)ll->delay_ms * 1000);
    rv_err *err = rv_nng_listen(ll->url, &poly_opts, &ll->s, NULL);
    cr_assert_null(err, "%s", rv_err_msg(err));
    return NULL;
}

Test(rv_nng_dial, a_peer_that_starts_within_the_wait_is_reached)
{
    late_listener ll = {.delay_ms = 250};
    snprintf(ll.url, sizeof(ll.url), "tcp://127.0.0.1:%d", closed_port());
    pthread_t th;
    pthread_create(&th, NULL, listen_late, &ll);
    nng_socket d;
    int64_t t0 = rv_now_ms();
    rv_err *err = rv_nng_dial(ll.url, &pair_opts, 3000, &d);
    int64_t took = rv_now_ms() - t0;
    pthread_join(th, NULL);
    cr_assert_null(err, "%s", rv_err_msg(err));
    cr_assert(took >= 200 && took < 1500, "took %lld ms", (long long)took);
    send_str(d, "late", (nng_pipe)NNG_PIPE_INITIALIZER);
    recv_str(ll.s, "late");
    nng_close(d);
    nng_close(ll.s);
}

Test(rv_nng_dial, zero_wait_dials_in_the_background_and_connects_later)
{
    late_listener ll = {.delay_ms = 200};
    snprintf(ll.url, sizeof(ll.url), "tcp://127.0.0.1:%d", closed_port());
    nng_socket d;
    int64_t t0 = rv_now_ms();
    rv_err *err = rv_nng_dial(ll.url, &pair_opts, 0, &d);
    cr_assert_null(err, "%s", rv_err_msg(err));
    cr_assert(rv_now_ms() - t0 < 100, "a background dial returns at once");
    pthread_t th;
    pthread_create(&th, NULL, listen_late, &ll);
    pthread_join(th, NULL);
    /* The send waits (up to its timeout) for the reconnect. */
    send_str(d, "eventually", (nng_pipe)NNG_PIPE_INITIALIZER);
    recv_str(ll.s, "eventually");
    nng_close(d);
    nng_close(ll.s);
}

Test(rv_nng_dial, permanent_errors_fail_at_once)
{
    /* An ipc path longer than a Unix socket address holds is not retried
     * until the deadline. */
    char url[256] = "ipc:///tmp/";
    memset(url + strlen(url), 'p', 200);
    nng_socket s;
    int64_t t0 = rv_now_ms();
    rv_err *err = rv_nng_dial(url, &pair_opts, 3000, &s);
    int64_t took = rv_now_ms() - t0;
    cr_assert_not_null(err);
    cr_assert(took < 500, "took %lld ms", (long long)took);
    char want[300];
    snprintf(want, sizeof(want), "dialing %s: %s", url, nng_strerror(NNG_EADDRINVAL));
    cr_assert_str_eq(rv_err_msg(err), want);
    cr_assert_not(rv_err_retriable(err));
    rv_err_free(err);
}

/* ---- rv_ctl sessions: bursts are never dropped ---- */

#include <stdatomic.h>

#include "rv_ctl.h"

typedef struct burst_rx {
    atomic_int n;
    atomic_uint last_pipe;
} burst_rx;

static void burst_msg(void *arg, rv_envelope *env, uint32_t pipe)
{
    burst_rx *rx = arg;
    atomic_store(&rx->last_pipe, pipe);
    atomic_fetch_add(&rx->n, 1);
    rv_proto_free(env);
}

static void burst_heartbeat(rv_ctl *from, uint32_t pipe, int n)
{
    Rivulet__Heartbeat hb = RIVULET__HEARTBEAT__INIT;
    rv_envelope env;
    rv_proto_init(&env);
    env.body_case = RIVULET__ENVELOPE__BODY_HEARTBEAT;
    env.heartbeat = &hb;
    for (int i = 0; i < n; i++) {
        rv_err *err = rv_ctl_send(from, pipe, &env);
        cr_assert_null(err, "%s", err ? rv_err_msg(err) : "");
    }
}

static void wait_count(burst_rx *rx, int want)
{
    for (int i = 0; i < 500 && atomic_load(&rx->n) < want; i++)
        usleep(10000);
}

/* NNG 1.5.2's polyamorous sockets drop what does not fit a peer's two-deep
 * queue; the monogamous dialer and session sockets must deliver all of a
 * burst, in both directions. */
Test(rv_ctl, bursts_over_a_session_and_from_a_dialer_all_arrive)
{
    enum { BURST = 300 };
    burst_rx at_main = {0}, at_session = {0}, at_dialer = {0};
    rv_ctl_handlers hm = {.on_msg = burst_msg, .arg = &at_main, .tag = "main"};
    rv_ctl_handlers hs = {.on_msg = burst_msg, .arg = &at_session, .tag = "session"};
    rv_ctl_handlers hd = {.on_msg = burst_msg, .arg = &at_dialer, .tag = "dialer"};
    rv_ctl *main_l = NULL, *session_l = NULL, *dialer = NULL, *session_d = NULL;
    cr_assert_null(rv_ctl_listen("tcp://127.0.0.1:0", &hm, &main_l));
    cr_assert_null(rv_ctl_listen_session("tcp://127.0.0.1:0", &hs, &session_l));
    cr_assert_null(rv_ctl_dial(rv_ctl_url(main_l), 2000, &hd, &dialer));
    cr_assert_null(rv_ctl_dial(rv_ctl_url(session_l), 2000, &hd, &session_d));
    burst_heartbeat(dialer, 0, BURST); /* dialer -> polyamorous listener */
    wait_count(&at_main, BURST);
    cr_expect_eq(atomic_load(&at_main.n), BURST, "dialer -> listener: %d of %d", atomic_load(&at_main.n), BURST);
    burst_heartbeat(session_l, 0, BURST); /* session listener -> its dialer */
    burst_heartbeat(session_d, 0, BURST); /* and back */
    wait_count(&at_dialer, BURST);
    wait_count(&at_session, BURST);
    cr_expect_eq(atomic_load(&at_dialer.n), BURST, "session -> dialer: %d of %d", atomic_load(&at_dialer.n), BURST);
    cr_expect_eq(atomic_load(&at_session.n), BURST, "dialer -> session: %d of %d", atomic_load(&at_session.n), BURST);
    rv_ctl_close(session_d);
    rv_ctl_close(dialer);
    rv_ctl_close(session_l);
    rv_ctl_close(main_l);
}
