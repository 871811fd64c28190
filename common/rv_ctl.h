/* rv_ctl: a control-plane endpoint — an NNG PAIR1 socket that sends and
 * receives validated envelopes (rv_proto).
 *
 * A receiver thread unpacks every incoming message; a message that fails
 * validation (garbage, truncated, oversized, another protocol version) is
 * logged and its connection dropped, and never reaches the callback.
 * Connections (pipes) are reported as they come and go, which is how the
 * coordinator notices a lost task manager at once. Sending is
 * thread-safe. The coordinator listens (polyamorous: registrations and CLI
 * requests from many peers); task managers and the CLI dial
 * (monogamous). NNG 1.5.2's polyamorous PAIR1 drops messages to a peer
 * whose two-deep queue is full, so anything that may come in bursts goes
 * over a monogamous pair, which blocks instead: each task manager's
 * session with the coordinator (rv_ctl_listen_session). */
#ifndef RV_CTL_H
#define RV_CTL_H

#include <stdbool.h>
#include <stdint.h>

#include "rv_err.h"
#include "rv_proto.h"

typedef struct rv_ctl rv_ctl;

/* A valid message from connection `pipe`; the callback owns env. */
typedef void (*rv_ctl_msg_fn)(void *arg, rv_envelope *env, uint32_t pipe);
/* A connection appeared (added) or went away. */
typedef void (*rv_ctl_pipe_fn)(void *arg, uint32_t pipe, bool added);

typedef struct rv_ctl_handlers {
    rv_ctl_msg_fn on_msg;
    rv_ctl_pipe_fn on_pipe; /* may be NULL */
    void *arg;
    const char *tag;        /* log tag, e.g. "coordinator" */
} rv_ctl_handlers;

/* Listens on url (tcp://host:port, port 0 = any; inproc://name). */
rv_err *rv_ctl_listen(const char *url, const rv_ctl_handlers *h, rv_ctl **out);
/* Listens on url for exactly one peer (monogamous: sends block while the
 * peer is slow, never drop). */
rv_err *rv_ctl_listen_session(const char *url, const rv_ctl_handlers *h, rv_ctl **out);
/* Dials url. wait_ms > 0: fail if not connected within wait_ms; 0: keep
 * dialing in the background (reconnects after the peer restarts). */
rv_err *rv_ctl_dial(const char *url, int32_t wait_ms, const rv_ctl_handlers *h, rv_ctl **out);
/* The address this endpoint listens on (port resolved), or the dialed URL. */
const char *rv_ctl_url(const rv_ctl *c);
/* Sends env to connection `pipe` (0: the only/any connection). */
rv_err *rv_ctl_send(rv_ctl *c, uint32_t pipe, const rv_envelope *env);
/* Drops a connection (e.g. a peer that misbehaved). */
void rv_ctl_drop(rv_ctl *c, uint32_t pipe);
/* Stops the receiver thread and closes the socket. Callbacks have
 * returned when this returns. Accepts NULL. */
void rv_ctl_close(rv_ctl *c);

/* One request/reply exchange for the CLI: dials url (failing within
 * wait_ms if nobody answers), sends req with a fresh request_id, and
 * waits up to timeout_ms for the Reply with that id. */
rv_err *rv_ctl_request(const char *url, int32_t wait_ms, int32_t timeout_ms, rv_envelope *req, rv_envelope **reply);

#endif
