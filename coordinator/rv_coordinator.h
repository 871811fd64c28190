/* rv_coordinator: accepts jobs, builds their job graphs, places them on
 * task managers' slots and tracks them to a final state.
 *
 * One event-loop thread owns all coordinator state; public calls and task
 * manager reports post messages to its mailbox (calls that need an answer
 * wait for it). Job states: CREATED -> RUNNING -> FINISHED | FAILED |
 * CANCELED (via CANCELING). Thread-safe. */
#ifndef RV_COORDINATOR_H
#define RV_COORDINATOR_H

#include <stdint.h>

#include "rv_jobspec.h"
#include "rv_taskmanager.h"

typedef enum {
    RV_JOB_CREATED,
    RV_JOB_RUNNING,
    RV_JOB_CANCELING,
    RV_JOB_FINISHED,
    RV_JOB_FAILED,
    RV_JOB_CANCELED,
} rv_job_state;

const char *rv_job_state_name(rv_job_state s);
static inline bool rv_job_state_final(rv_job_state s) { return s >= RV_JOB_FINISHED; }

typedef struct rv_coord rv_coord;

/* Starts a coordinator (its event-loop thread). */
rv_err *rv_coord_new(rv_coord **out);
/* Cancels running jobs, waits for them, stops the loop. Task managers are
 * not freed (they belong to the caller). */
void rv_coord_free(rv_coord *c);
/* Registers a task manager (embedded: in-process). */
void rv_coord_add_tm(rv_coord *c, rv_tm *tm);

/* Submits a validated job spec; the job keeps its own reference, the
 * caller keeps theirs. On success *job_id is a new string the caller
 * frees. */
rv_err *rv_coord_submit(rv_coord *c, rv_jobspec *js, char **job_id);
/* Asks a job to stop. */
rv_err *rv_coord_cancel(rv_coord *c, const char *job_id);
/* Waits until the job reaches a final state or timeout_ms passes (< 0:
 * forever) and returns the state then. If error is not NULL and the job
 * failed, *error is a copy of the failure message (caller frees). */
rv_job_state rv_coord_wait(rv_coord *c, const char *job_id, int64_t timeout_ms, char **error);
/* Metrics of a job summed over its task managers. */
bool rv_coord_job_metrics(rv_coord *c, const char *job_id, rv_subtask_metrics *m);

#endif
