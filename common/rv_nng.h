/* rv_nng: the one adapter between NNG and Rivulet — error conversion and
 * the socket set-up every control- and data-plane socket shares.
 *
 * Sockets are PAIR1 in polyamorous mode: one socket talks to many peers,
 * each a pipe; a received message names its pipe, and a reply is sent by
 * setting that pipe on the message. NNG 1.5.2 drops a polyamorous send
 * when the peer's queue is full instead of blocking, so poly sockets get
 * deep per-peer queues and carry only small control traffic; bulk data
 * (the data plane) sends on ordinary PAIR1 sockets, which block. Every socket gets a maximum receive
 * size and send/receive timeouts, so a silent or hostile peer can neither
 * exhaust memory nor hang a caller. */
#ifndef RV_NNG_H
#define RV_NNG_H

#include <nng/nng.h>
#include <stdbool.h>
#include <stdint.h>

#include "rv_err.h"

/* An error for NNG result rv, prefixed with a printf-style context. */
rv_err *rv_nng_err(int rv, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

typedef struct rv_nng_opts {
    size_t max_msg;         /* largest message body (the 4-byte PAIR1 header excluded);
                               bigger messages drop the connection */
    int32_t send_timeout_ms;
    int32_t recv_timeout_ms;
    bool poly;              /* PAIR1 polyamorous */
    int queue_depth;        /* > 0: socket send and receive buffers of this many messages */
} rv_nng_opts;

/* Opens a PAIR1 socket with opts and listens on url (tcp:// or inproc://).
 * A tcp port 0 binds a free port: *bound_url (if not NULL) receives the
 * actual address, a new string the caller frees. */
rv_err *rv_nng_listen(const char *url, const rv_nng_opts *opts, nng_socket *s, char **bound_url);
/* Opens a PAIR1 socket with opts and dials url. With wait_ms > 0 waits up
 * to that long for the connection (an unreachable peer is an error within
 * wait_ms); with 0 dials in the background and reconnects as NNG does. */
rv_err *rv_nng_dial(const char *url, const rv_nng_opts *opts, int32_t wait_ms, nng_socket *s);
/* "tcp://127.0.0.1:6123"-style URL check (scheme tcp, inproc or ipc;
 * host and port present for tcp). */
bool rv_nng_url_valid(const char *url);

#endif
