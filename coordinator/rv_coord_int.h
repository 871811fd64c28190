/* rv_coord_int: the coordinator's internal structures, shared by its event
 * loop (rv_coordinator.c), its answers to CLI requests (rv_coord_client.c)
 * and its checkpoint coordination (rv_coord_chk.c). Everything here
 * belongs to the loop thread unless a comment says otherwise. */
#ifndef RV_COORD_INT_H
#define RV_COORD_INT_H

#include <pthread.h>

#include "rv_coordinator.h"
#include "rv_ctl.h"
#include "rv_graph.h"
#include "rv_proto.h"

typedef enum { MSG_NET, MSG_PIPE_GONE, MSG_SUBMIT, MSG_CANCEL, MSG_SHUTDOWN, MSG_STOP } msg_kind;

typedef struct msg {
    msg_kind kind;
    rv_envelope *env; /* NET */
    uint32_t pipe;    /* NET, PIPE_GONE on the main socket */
    int tm;           /* NET, PIPE_GONE on task manager tm's session (else -1) */
    unsigned gen;     /* ... of that session */
    /* SUBMIT */
    const char *file, *yaml;
    size_t len;
    int parallelism;
    const char *job_id; /* CANCEL */
    /* reply */
    bool done;
    rv_err *err;
    char *reply_id;
    struct msg *next;
} msg;

/* Identifies a task manager's session in callbacks of its socket. */
typedef struct tm_session {
    struct rv_coord *c;
    int tm;
    unsigned gen;
} tm_session;

typedef struct tm_rec {
    char *name;
    uint32_t pipe;       /* its registration connection on the main socket */
    rv_ctl *session;     /* its session (every message after registering) */
    tm_session *session_ref;
    unsigned gen;        /* sessions opened so far */
    int slots, used;
    char *data_url;
    int64_t last_hb_ms;
    bool alive;
} tm_rec;

typedef struct job_part {
    int tm; /* index into c->tms */
    bool done;
    int slots;
} job_part;

/* A job's checkpoints (rv_coord_chk.c). */
typedef struct job_chk {
    uint64_t next_id;        /* id of the next checkpoint */
    uint64_t pending;        /* in progress, 0 = none */
    char *pending_dir;
    int64_t pending_start_ms;
    bool *acked;             /* per subtask, task-major */
    int nacked;
    Rivulet__StateHandle **handles; /* acknowledged parts (owned) */
    size_t nhandles, hcap;
    uint64_t max_sync_us, max_async_us; /* longest pause / file writing of a subtask */
    int64_t last_trigger_ms, last_end_ms;
    uint64_t last_id;        /* latest completed */
    int64_t last_ms;
    bool pending_savepoint;  /* the pending one is a savepoint */
    /* a savepoint requested by a client, answered when it completes */
    bool sp_requested;
    char *sp_parent;         /* where it goes (savepoint-<job>-<id> below) */
    bool sp_stop;            /* then stop the job */
    uint32_t sp_pipe;
    uint64_t sp_request_id;
} job_chk;

typedef struct job {
    char *id, *name, *file, *yaml;
    int parallelism;
    rv_job_state state;
    char *error;
    rv_job_graph *g;
    int slots;
    int *slot_tm; /* slot -> tm index, once placed */
    job_part *parts;
    int nparts;
    int64_t submit_ms, start_ms, end_ms, wait_deadline_ms;
    rv_subtask_metrics *metrics; /* per subtask, in task-major order */
    int nsubtasks;
    bool cancel_requested;
    bool part_canceled; /* a task manager stopped its part without an error */
    /* recovery */
    uint32_t attempt;      /* deployments so far - 1 */
    int restarts;
    char *last_failure;    /* cause of the latest restart */
    bool restarting;       /* stopping the attempt that failed, or waiting to redeploy */
    int64_t restart_at_ms; /* redeploy no earlier than this */
    char *restore_dir;     /* what the next deployment resumes from (NULL: a fresh start) */
    char *initial_restore; /* the savepoint it was submitted from, used until it has a checkpoint */
    bool stopped;          /* ended by `stop`: FINISHED, not CANCELED */
    job_chk chk;
    struct job *next;
} job;

struct rv_coord {
    rv_coord_config cfg;
    rv_ctl *ctl;
    pthread_t thread;
    pthread_mutex_t mu;     /* mailbox; job fields read by other threads */
    pthread_cond_t cv;      /* mailbox has messages */
    pthread_cond_t changed; /* a reply is ready or a job state changed */
    msg *head, *tail;
    job *jobs;
    tm_rec *tms;
    int ntms;
    unsigned seq;
    unsigned id_salt; /* differs between coordinator runs */
    bool stopping;    /* rv_coord_free began: no new jobs (loop thread) */
};


/* rv_coordinator.c */
job *rv_coord_find_job(rv_coord *c, const char *id);
/* Plans a submitted job (from_savepoint may be NULL) and adds it CREATED. */
rv_err *rv_coord_create_job(rv_coord *c, const char *file, const char *yaml, size_t len, int parallelism,
                            const char *from_savepoint, bool allow_non_restored, job **out);
rv_err *rv_coord_cancel_job(rv_coord *c, const char *id);
/* Deploys waiting jobs (oldest first) that have their slots now. */
void rv_coord_schedule(rv_coord *c);
void rv_coord_send(rv_coord *c, int tm, rv_envelope *env);
/* Sends a job message of the current attempt to every part on a live task manager. */
void rv_coord_send_parts(rv_coord *c, job *j, rv_envelope *env);
/* Stops the job's parts (cancel); the job ends when they have. */
void rv_coord_stop_parts(rv_coord *c, job *j);
/* Writes the job's record to the state directory (if the coordinator has one). */
void rv_coord_persist(rv_coord *c, job *j);
int rv_coord_subtask_index(const rv_job_graph *g, int task, int subtask);

/* ---- rv_coord_client.c ---- */
/* Answers a CLI request (submit, list, get, cancel, savepoint) from pipe. */
void rv_coord_handle_client(rv_coord *c, const rv_envelope *env, uint32_t pipe);
/* Sends r as the reply to request request_id on pipe. */
void rv_coord_reply(rv_coord *c, uint32_t pipe, uint64_t request_id, Rivulet__Reply *r);

/* ---- rv_coord_chk.c ---- */
/* Whether the job takes checkpoints. */
bool rv_coord_chk_on(const rv_coord *c, const job *j);
/* Loop tick: triggers due checkpoints and abandons overdue ones. */
void rv_coord_chk_tick(rv_coord *c, job *j, int64_t now_ms);
/* A task manager acknowledged its part of a checkpoint. */
void rv_coord_chk_ack(rv_coord *c, job *j, const Rivulet__CheckpointAck *a);
/* Gives up the checkpoint in progress (the job stops or restarts). */
void rv_coord_chk_abort(rv_coord *c, job *j, const char *why);
/* A client asks for a savepoint (see SavepointRequest); the reply to
 * (pipe, request_id) comes when it is complete or failed. An error here
 * means it cannot start (the caller replies). */
rv_err *rv_coord_chk_savepoint(rv_coord *c, job *j, const Rivulet__SavepointRequest *r, uint32_t pipe,
                               uint64_t request_id);
void rv_coord_chk_free(job *j);
/* Before a (re)deployment: picks the latest intact checkpoint to resume
 * from (j->restore_dir) and the next checkpoint id. */
void rv_coord_chk_prepare_deploy(rv_coord *c, job *j);
/* Checks that a savepoint (or checkpoint) directory is complete and fits
 * the job: every node with state there exists in the job, unless
 * allow_non_restored. */
rv_err *rv_coord_chk_check_savepoint(const job *j, const char *dir, bool allow_non_restored);

#endif
