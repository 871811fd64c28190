/* rv_taskmanager: a task manager — offers slots, runs the subtasks the
 * coordinator deploys to it, wires their channels and reports when a job's
 * subtasks have ended.
 *
 * In the embedded mini-cluster (`rivulet run`) the coordinator calls these
 * functions directly; the cluster transport carries the same calls as
 * control messages. Thread-safe: any thread may call any function. */
#ifndef RV_TASKMANAGER_H
#define RV_TASKMANAGER_H

#include "rv_graph.h"
#include "rv_task.h"

typedef struct rv_tm rv_tm;

/* Called once per deployed job, from a subtask thread, when all of the
 * job's subtasks on this task manager have ended. state: FINISHED if all
 * finished, FAILED if the job failed (error says why), else CANCELED. */
typedef void (*rv_tm_job_done_fn)(void *arg, const char *job_id, rv_task_state state, const char *error);

rv_tm *rv_tm_new(const char *name, int slots);
/* Stops every job (cancel, join; their done callbacks are no longer
 * called) and frees the task manager. Not from a subtask thread. */
void rv_tm_free(rv_tm *tm);
const char *rv_tm_name(const rv_tm *tm);
int rv_tm_slots(const rv_tm *tm);
int rv_tm_free_slots(const rv_tm *tm);

/* Deploys every subtask of g here (takes ownership of g on success) and
 * starts them. */
rv_err *rv_tm_deploy(rv_tm *tm, const char *job_id, rv_job_graph *g, rv_tm_job_done_fn done, void *arg);
/* Asks the job's subtasks to stop; done follows. Unknown ids are ignored. */
void rv_tm_cancel(rv_tm *tm, const char *job_id);
/* After done: joins the job's threads and frees its resources. Never call
 * it (or rv_tm_free) from a subtask thread or a done callback: it would
 * join its own thread. */
void rv_tm_release(rv_tm *tm, const char *job_id);

/* Sums the metrics of a job's subtasks. False if the job is unknown. */
bool rv_tm_job_metrics(rv_tm *tm, const char *job_id, rv_subtask_metrics *sum);

#endif
