/* rv_task: the runtime of one subtask — a thread running one parallel
 * instance of a task's operator chain (Flink's mailbox model).
 *
 * The thread owns every operator instance of its chain, so operator code
 * takes no locks. A source-headed subtask loops over the source's poll();
 * any other subtask reads its input gate (all input channels, sharing one
 * doorbell), merges watermarks (minimum over active inputs), fires
 * processing-time timers and sends buffered output when its timeout
 * expires. Emitting inside a chain is a direct call of the next operator;
 * at the chain's end batches go to rv_outputs. End of stream: the final
 * watermark, then finish() down the chain, then end-of-stream downstream.
 *
 * rv_job_run holds what the subtasks of one job on one task manager share:
 * the job graph, the cancel flag and the first error. */
#ifndef RV_TASK_H
#define RV_TASK_H

#include <pthread.h>
#include <stdatomic.h>

#include "rivulet.pb-c.h"
#include "rv_channel.h"
#include "rv_graph.h"
#include "rv_output.h"

typedef enum { RV_TASK_RUNNING, RV_TASK_FINISHED, RV_TASK_FAILED, RV_TASK_CANCELED } rv_task_state;
const char *rv_task_state_name(rv_task_state s);

typedef struct rv_job_run rv_job_run;
typedef struct rv_subtask rv_subtask;

/* Called on the subtask's thread when it ends (state FINISHED, FAILED or
 * CANCELED; error is the job's error message for FAILED, else NULL). */
typedef void (*rv_subtask_done_fn)(void *arg, rv_subtask *st, rv_task_state state, const char *error);

/* state_dir: the task manager's state directory; the job's state goes to
 * <state_dir>/<job_id>/<node>-<subtask>/ and is removed by rv_job_run_free. */
rv_job_run *rv_job_run_new(const char *job_id, rv_job_graph *g, const char *tm_name, const char *state_dir);
void rv_job_run_free(rv_job_run *jr);
/* Sets the cancel flag: every subtask of the job stops soon. Any thread. */
void rv_job_run_cancel(rv_job_run *jr);
/* Records err as the job's error (the first one wins; takes ownership) and
 * cancels the job. Any thread. */
void rv_job_run_fail(rv_job_run *jr, rv_err *err);
/* The job's first error message, or NULL. */
const char *rv_job_run_error(rv_job_run *jr);
const atomic_bool *rv_job_run_cancel_flag(rv_job_run *jr);
const char *rv_job_run_id(const rv_job_run *jr);

/* ---- checkpoints (rv_task_chk.c; DESIGN.md §9) ----
 * Sources take checkpoint n between two polls once it is triggered, then
 * send barrier n downstream after their data; a subtask with several
 * inputs aligns (exactly_once: an input that delivered barrier n is not
 * read until every open input has), snapshots its chain — keyed state
 * serialised in memory, operator state (positions, pre-committed output)
 * inline — and forwards the barrier; the job run's upload thread then
 * writes <root>/<job>/chk-<n>/<node>-<subtask>.state and acknowledges. */

/* Called from a subtask thread (or the triggering thread, for subtasks
 * that already ended) with one subtask's part of checkpoint id: a handle
 * per operator with state (borrowed for the call), or an error message.
 * run_id is the job run's id (rv_job_run_new); sync_us is how long the
 * subtask paused for it, async_us how long writing its files took after. */
typedef void (*rv_job_chk_ack_fn)(void *arg, const char *run_id, uint64_t id, int task, int subtask,
                                  Rivulet__StateHandle **states, size_t nstates, const char *error, uint64_t sync_us,
                                  uint64_t async_us);

/* Turns checkpointing on for the run (before any subtask starts): root is
 * the checkpoint root, job the job's id below it. restore_dir, if not
 * NULL, is a checkpoint or savepoint to resume from: its metadata is read
 * and checked here, and each subtask restores its chain from it. */
rv_err *rv_job_run_set_checkpointing(rv_job_run *jr, const char *root, const char *job, rv_chk_mode mode,
                                     const char *restore_dir, rv_job_chk_ack_fn ack, void *ack_arg);
/* Checkpoint id is triggered; its files go to dir. A savepoint is
 * self-contained (full snapshots, no shared files). Any thread. */
void rv_job_run_trigger(rv_job_run *jr, uint64_t id, const char *dir, bool savepoint);
/* Checkpoint id is complete (two-phase sinks publish). Any thread. */
void rv_job_run_complete(rv_job_run *jr, uint64_t id);
/* The job's sources end now, as if their input were exhausted (stop
 * --drain): every window fires and the job finishes. Any thread. */
void rv_job_run_drain(rv_job_run *jr);

rv_subtask *rv_subtask_new(rv_job_run *jr, int task, int index);
/* Wiring before start. The subtask does not own channels (the task
 * manager frees them after every subtask of the job has stopped). */
void rv_subtask_add_input(rv_subtask *st, rv_channel *ch, int input);
rv_doorbell *rv_subtask_doorbell(rv_subtask *st);
/* Attaches an output to node `node` (of this chain), port `port`. Takes
 * ownership of o. */
void rv_subtask_add_output(rv_subtask *st, int node, int port, rv_output *o);
/* Starts the thread. done is called from it at the end. */
rv_err *rv_subtask_start(rv_subtask *st, rv_subtask_done_fn done, void *arg);
/* Waits for the thread to end. Never from a subtask thread. */
void rv_subtask_join(rv_subtask *st);
void rv_subtask_free(rv_subtask *st);
int rv_subtask_task(const rv_subtask *st);
int rv_subtask_index(const rv_subtask *st);

/* Per-subtask metrics, readable after join (and approximately while
 * running). */
typedef struct rv_subtask_metrics {
    uint64_t records_in, records_out, bad_records;
    uint64_t busy_ns, idle_ns, backpressured_ns;
    int64_t watermark;
} rv_subtask_metrics;
void rv_subtask_get_metrics(const rv_subtask *st, rv_subtask_metrics *m);

#endif
