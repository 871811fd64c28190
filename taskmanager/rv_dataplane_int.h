/* rv_dataplane_int: the state shared by the two halves of the data plane —
 * rv_dataplane.c (tables, receiver thread, public API) and
 * rv_dataplane_send.c (sender thread and dial sockets). The locking rules
 * are in rv_dataplane.c's file comment: fields marked (mu) need dp->mu,
 * fields marked (sender thread) belong to the sender thread. Not a public
 * header. */
#ifndef RV_DATAPLANE_INT_H
#define RV_DATAPLANE_INT_H

#include <nng/nng.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "rv_channel.h"
#include "rv_dataplane.h"
#include "rv_record.h"

#define RV_DP_MAX_BATCH_BYTES ((size_t)16 << 20) /* largest rv_codec payload in one frame */

typedef struct rv_dp_peer {
    struct rv_dp_peer *next;
    rv_dataplane *dp;
    char *url;          /* its listen URL: where we dial */
    int refs;           /* live channels sending through it (mu) */
    bool has_sock;      /* (mu; written by the sender thread) */
    bool sock_dead;     /* its connection was lost (mu) */
    bool hello_queued;  /* (mu) */
    int sock_id;        /* (mu) */
    int64_t retry_at;   /* (sender thread) */
    enum { RV_DP_ACT_NONE, RV_DP_ACT_OPEN, RV_DP_ACT_CLOSE } act; /* (sender thread) */
    nng_socket sock;    /* (sender thread) */
    nng_msg **q;        /* frames NNG has not taken yet (sender thread) */
    size_t qhead, qlen, qcap;
} rv_dp_peer;

/* A pipe of the listening socket whose HELLO arrived. */
typedef struct rv_dp_lpipe {
    struct rv_dp_lpipe *next;
    uint32_t id;
    rv_dp_peer *peer; /* the sender's URL: where credits go */
} rv_dp_lpipe;

typedef struct rv_dp_outbox {
    struct rv_dp_outbox *next;
    rv_chan_key key;
    rv_dp_peer *peer;
    bool holds_ref; /* on peer */
    rv_channel *ch;
    rv_schema *schema;
    uint32_t lpipe;  /* connection its credits arrive on (0 before the first) */
    uint64_t credit; /* elements it may send */
    bool announced, dead, closed;
    int busy;        /* elements being sent by the sender thread */
    rv_batch *carry; /* an oversized batch sent in slices (sender thread) */
    uint32_t carry_off;
} rv_dp_outbox;

typedef struct rv_dp_inbox {
    struct rv_dp_inbox *next;
    rv_chan_key key;
    rv_channel *ch; /* the caller's */
    rv_schema *schema;
    rv_dataplane_fail_fn fail;
    void *arg;
    uint32_t lpipe; /* connection that announced it (0 = not yet) */
    rv_dp_peer *peer; /* where credits go */
    bool holds_ref;
    uint64_t granted, received;
    uint32_t backlog; /* the sender's last report */
    bool failed, closed;
    int busy; /* a decode or a fail callback in progress (waited for by close) */
} rv_dp_inbox;

typedef struct rv_dp_announce {
    struct rv_dp_announce *next;
    rv_chan_key key;
    uint32_t lpipe;
    rv_dp_peer *peer;
    uint32_t backlog;
} rv_dp_announce;

typedef struct rv_dp_failure {
    rv_dp_inbox *ib;
    rv_err *err;
} rv_dp_failure;

typedef struct rv_dp_failures {
    rv_dp_failure *v;
    size_t n, cap;
} rv_dp_failures;

typedef struct rv_dp_work {
    rv_dp_outbox *ob;
    rv_dp_peer *p;
    rv_elem el;
    bool carry; /* the next slice of ob->carry */
    uint32_t backlog;
    bool too_big;
} rv_dp_work;

struct rv_dataplane {
    char *name, *url;
    nng_socket lsock;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* an inbox's busy dropped */
    rv_doorbell bell;  /* wakes the sender thread */
    rv_dp_peer *peers;
    rv_dp_lpipe *lpipes;
    rv_dp_outbox *outs;
    rv_dp_inbox *ins;
    rv_dp_announce *anns;
    size_t nanns;
    bool stopping; /* (mu) */
    atomic_bool stop, rx_cancel;
    pthread_t sender, receiver;
    rv_buf scratch; /* frame encoding (sender thread) */
    rv_dp_work *work; /* (sender thread) */
    size_t work_cap;
    atomic_uint_fast64_t frames_sent, frames_received, bytes_sent, bytes_received, frames_rejected;
};

static inline void rv_dp_stat_add(atomic_uint_fast64_t *s, uint64_t n)
{
    atomic_fetch_add_explicit(s, n, memory_order_relaxed);
}

/* Helpers of rv_dataplane.c; mu held unless said otherwise. */
/* Drops what a dead outbox holds; true if it dropped anything. */
bool rv_dp_outbox_drain(rv_dp_outbox *ob);
/* Marks an outbox dead (its connection is gone). */
void rv_dp_outbox_kill(rv_dp_outbox *ob);
/* Frees an outbox that is no longer listed and not busy. */
void rv_dp_outbox_free(rv_dp_outbox *ob);
/* Fails every channel bound to listening pipe lpipe_id (when not 0) or to
 * the dial socket of p (when not NULL); callbacks are queued in fs. */
void rv_dp_connection_lost(rv_dataplane *dp, rv_dp_failures *fs, uint32_t lpipe_id, rv_dp_peer *p, const char *what);
/* Runs the callbacks queued in fs (mu NOT held). */
void rv_dp_run_failures(rv_dataplane *dp, rv_dp_failures *fs);

/* Of rv_dataplane_send.c. */
/* Frees the frames queued for p (sender thread, or after it ended). */
void rv_dp_peer_drop_queue(rv_dp_peer *p);
/* The sender thread (arg: the data plane). */
void *rv_dp_sender_main(void *arg);

#endif
