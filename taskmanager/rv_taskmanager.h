/* rv_taskmanager: a task manager's runtime — offers slots, runs the
 * subtasks placed on it, wires their channels (local rings between its
 * own subtasks, remote channels through the data plane to other task
 * managers) and reports when a job's subtasks here have ended.
 *
 * It knows nothing of the control plane: rv_tm_client turns coordinator
 * messages into these calls. Thread-safe: any thread may call any
 * function, except as noted. */
#ifndef RV_TASKMANAGER_H
#define RV_TASKMANAGER_H

#include "rv_dataplane.h"
#include "rv_graph.h"
#include "rv_task.h"

typedef struct rv_tm rv_tm;

/* Called once per deployed job, from a subtask thread, when all of the
 * job's subtasks here have ended: FINISHED if all finished, FAILED if the
 * job failed (error says why), else CANCELED. */
typedef void (*rv_tm_job_done_fn)(void *arg, const char *job_id, rv_task_state state, const char *error);

/* dp may be NULL when every job runs entirely on this task manager.
 * state_dir: where keyed state spills (RocksDB), one directory per job
 * below it, removed when the job is released; NULL: a private directory
 * under $TMPDIR (or /tmp), removed by rv_tm_free. */
rv_tm *rv_tm_new(const char *name, int slots, rv_dataplane *dp, const char *state_dir);
/* Stops every job (cancel, join; their done callbacks are no longer
 * called) and frees the task manager. Not from a subtask thread. */
void rv_tm_free(rv_tm *tm);
const char *rv_tm_name(const rv_tm *tm);
int rv_tm_slots(const rv_tm *tm);
int rv_tm_free_slots(const rv_tm *tm);

/* Where a job's subtasks run. */
typedef struct rv_deployment {
    const char *job_id;
    rv_job_graph *g;             /* taken by rv_tm_deploy on success */
    const int *tm_of_subtask;    /* per subtask, task-major order; NULL: all here */
    int my_index;                /* this task manager's index in tm_of_subtask */
    const char *const *peer_urls; /* data-plane URL of each task manager index */
    int npeers;
    /* Checkpointing (rv_job_run_set_checkpointing): chk_root NULL or ""
     * = off; restore_dir NULL or "" = a fresh start. */
    const char *chk_root, *chk_job, *restore_dir;
    rv_job_chk_ack_fn ack;
    void *ack_arg;
} rv_deployment;

/* Deploys the subtasks of d placed here and starts them. */
rv_err *rv_tm_deploy(rv_tm *tm, const rv_deployment *d, rv_tm_job_done_fn done, void *arg);
/* Checkpoint id of the job is triggered / complete. Unknown ids are
 * ignored. */
void rv_tm_trigger_checkpoint(rv_tm *tm, const char *job_id, uint64_t id, const char *dir, bool savepoint);
void rv_tm_checkpoint_complete(rv_tm *tm, const char *job_id, uint64_t id);
/* rv_job_run_drain of the job; unknown ids are ignored. */
void rv_tm_drain(rv_tm *tm, const char *job_id);
/* Asks the job's subtasks to stop; done follows. Unknown ids are ignored. */
void rv_tm_cancel(rv_tm *tm, const char *job_id);
/* Cancels every job (e.g. the coordinator is gone). */
void rv_tm_cancel_all(rv_tm *tm);
/* After done: joins the job's threads and frees its resources. Never call
 * it from a subtask thread or a done callback (it would join itself). */
void rv_tm_release(rv_tm *tm, const char *job_id);

/* Calls fn for every subtask of the job here with its metrics. False if
 * the job is unknown. */
typedef void (*rv_tm_metrics_fn)(void *arg, const char *job_id, int task, int subtask, const rv_subtask_metrics *m);
bool rv_tm_each_metrics(rv_tm *tm, const char *job_id, rv_tm_metrics_fn fn, void *arg);
/* The same for every job. */
void rv_tm_each_job_metrics(rv_tm *tm, rv_tm_metrics_fn fn, void *arg);

#endif
