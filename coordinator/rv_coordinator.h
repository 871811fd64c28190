/* rv_coordinator: accepts jobs, plans them, places their subtasks on the
 * slots of registered task managers, and tracks them to a final state.
 *
 * One event-loop thread owns all coordinator state. Control-plane messages
 * (task managers registering, heartbeating and reporting; CLI requests)
 * arrive on an rv_ctl endpoint and are posted to its mailbox, as are calls
 * of the C API below (the embedded mini-cluster uses both: its task
 * manager connects over inproc://, so the embedded and the distributed
 * cluster differ only in addresses).
 *
 * Job states: CREATED (waiting for slots) -> RUNNING -> FINISHED | FAILED |
 * CANCELED (via CANCELING). A task manager is lost when its connection
 * closes or its heartbeats stop for heartbeat_timeout. When a subtask
 * fails or a task manager is lost, a job whose restart strategy allows it
 * goes RESTARTING: every part of the attempt is stopped, and after the
 * strategy's delay the job is placed again on the free slots (waiting for
 * them as a new job would) and resumes from its latest complete
 * checkpoint; otherwise it is FAILED with the cause. Jobs with
 * `checkpointing` get checkpoints triggered, acknowledged and completed
 * here (rv_coord_chk.c). A job that needs more slots than are free waits up to
 * slot_wait_timeout, then fails naming what was missing. Thread-safe. */
#ifndef RV_COORDINATOR_H
#define RV_COORDINATOR_H

#include <stddef.h>
#include <stdint.h>

#include "rv_config.h"
#include "rv_task.h"

typedef enum {
    RV_JOB_CREATED,
    RV_JOB_RUNNING,
    RV_JOB_CANCELING,
    RV_JOB_RESTARTING,
    RV_JOB_FINISHED,
    RV_JOB_FAILED,
    RV_JOB_CANCELED,
} rv_job_state;

const char *rv_job_state_name(rv_job_state s);
static inline bool rv_job_state_final(rv_job_state s) { return s >= RV_JOB_FINISHED; }

typedef struct rv_coord_config {
    char *listen;                  /* control address, tcp://HOST:PORT or inproc://NAME */
    int64_t heartbeat_interval_ms; /* how often task managers heartbeat */
    int64_t heartbeat_timeout_ms;  /* silence after which a task manager is lost */
    int64_t slot_wait_timeout_ms;  /* how long a job waits for free slots */
    char *checkpoint_dir;          /* checkpoint root (<dir>/<job>/chk-<n>); NULL: jobs cannot checkpoint */
    char *state_dir;               /* durable job records; NULL: jobs do not survive a coordinator restart */
} rv_coord_config;

/* The config table of the coordinator (daemon YAML keys and docs). */
extern const rv_cfg_key rv_coord_config_keys[];
extern const size_t rv_coord_config_nkeys;

typedef struct rv_coord rv_coord;

/* Starts a coordinator listening on cfg->listen. */
rv_err *rv_coord_new(const rv_coord_config *cfg, rv_coord **out);
/* Cancels running jobs, waits for them (bounded), stops. */
void rv_coord_free(rv_coord *c);
/* The control address task managers and the CLI dial (port resolved). */
const char *rv_coord_url(const rv_coord *c);

/* Submits a job file's text (validated here; errors are file:line:col).
 * parallelism > 0 overrides the job's default. On success *job_id is a new
 * string the caller frees. */
rv_err *rv_coord_submit(rv_coord *c, const char *file, const char *yaml, size_t len, int parallelism, char **job_id);
/* Asks a job to stop. */
rv_err *rv_coord_cancel(rv_coord *c, const char *job_id);
/* Waits until the job is final or timeout_ms passes (< 0: forever);
 * returns its state then. *error (if not NULL) gets a copy of a failed
 * job's message. */
rv_job_state rv_coord_wait(rv_coord *c, const char *job_id, int64_t timeout_ms, char **error);
/* Metrics of a job summed over its subtasks (final once the job is). */
bool rv_coord_job_metrics(rv_coord *c, const char *job_id, rv_subtask_metrics *m);

#endif
