/* rv_task_int: the structures behind rv_task.h, shared by the subtask
 * runtime (rv_task.c) and its checkpointing (rv_task_chk.c). */
#ifndef RV_TASK_INT_H
#define RV_TASK_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "rv_checkpoint.h"
#include "rv_chk_upload.h"
#include "rv_plugin.h"
#include "rv_state.h"
#include "rv_task.h"

/* A job run's checkpointing (all empty when the job takes none). */
typedef struct job_chk {
    bool on;
    char *root, *job; /* checkpoints go to rv_chk_dir(root, job, id) */
    rv_chk_mode mode;
    rv_job_chk_ack_fn ack;
    void *ack_arg;
    rv_chk_uploader *uploader; /* writes the subtasks' state files, then acknowledges */
    char *restore_dir;     /* resuming from this checkpoint, or NULL */
    rv_chk_meta *restore;  /* its metadata */
    atomic_uint_fast64_t trigger; /* latest checkpoint triggered */
    atomic_uint_fast64_t complete; /* latest checkpoint completed */
    pthread_mutex_t mu;    /* trigger vs. subtasks finishing; dirs */
    struct { uint64_t id; char *dir; bool savepoint; } dirs[8]; /* recent triggers */
    uint64_t uid; /* names this run's shared checkpoint files apart from other runs' */
} job_chk;

struct rv_job_run {
    char *id;
    char *tm_name;
    char *state_dir; /* <task manager state dir>/<job id> */
    rv_job_graph *g;
    atomic_bool cancel;
    atomic_bool drain;
    pthread_mutex_t mu;
    rv_err *err;
    /* the subtasks of this run here, to wake them (checkpoints) */
    rv_subtask **subtasks;
    int nsubtasks;
    job_chk chk;
};

typedef struct op_inst op_inst;

struct rv_op_ctx {
    rv_subtask *st;
    op_inst *op;
};

struct op_inst {
    const rv_node *node;
    const rv_plugin *pl;
    int pos;
    void *state;
    rv_state *kstate; /* RV_PLUGIN_STATEFUL operators */
    bool opened;
    rv_op_ctx ctx;
    rv_output **outs[RV_NPORTS];
    int nouts[RV_NPORTS];
    char tag[128];
    uint64_t rows_in, rows_out;
};

typedef struct in_chan {
    rv_channel *ch;
    int input;
    int64_t wm;
    bool idle, ended;
    bool barrier; /* delivered the barrier being aligned (exactly-once: not read until alignment ends) */
} in_chan;

typedef struct timer {
    int64_t when;
    int op;
} timer;

struct rv_subtask {
    rv_job_run *jr;
    int task, index;
    const rv_task_def *td;
    const rv_jobspec *js;
    op_inst *ops;
    int nops;
    in_chan *ins;
    int nins;
    rv_doorbell bell;
    int64_t wm; /* current input watermark */
    timer *timers;
    size_t ntimers, timers_cap;
    /* source state */
    int64_t src_max_ts, src_wm_sent, src_last_data_ms;
    bool src_idle_sent;
    rv_batch *dead_letters;
    bool idle_sent; /* every input is idle and IDLE went downstream */
    /* checkpoints (rv_task_chk.c) */
    uint64_t chk_seen;  /* latest checkpoint snapshotted (or given up) here */
    uint64_t aligning;  /* checkpoint whose barriers are being aligned, 0 = none */
    uint64_t notified;  /* latest completion passed to checkpoint_complete hooks */
    bool finished;      /* ended normally (under jr->chk.mu) */
    Rivulet__StateHandle **final_states; /* its state at the end, for later checkpoints */
    size_t nfinal;
    /* metrics: written by the subtask thread, read by any (relaxed) */
    atomic_uint_fast64_t m_in, m_out, m_bad, m_busy_ns, m_idle_ns;
    atomic_int_fast64_t m_wm;
    /* all outputs of the chain, for control elements and flushing */
    rv_output **outs;
    int nouts;
    pthread_t thread;
    bool started;
    rv_subtask_done_fn done;
    void *done_arg;
};


/* rv_task.c: sends el to every output of the chain. */
rv_code rv_task_control_all(rv_subtask *st, rv_elem el);

/* ---- rv_task_chk.c ---- */
void rv_job_chk_init(job_chk *c);
void rv_job_chk_fini(job_chk *c);
/* Takes checkpoint id: snapshots every operator of the chain, forwards the
 * barrier and acknowledges. Failures are reported in the acknowledgement
 * (the checkpoint is abandoned, the job goes on); RV_OK unless forwarding
 * the barrier failed. */
rv_code rv_subtask_checkpoint(rv_subtask *st, uint64_t id);
/* Sources and finished subtasks: the triggered checkpoint this subtask has
 * not taken yet, or 0. */
uint64_t rv_subtask_trigger_pending(const rv_subtask *st);
/* Calls checkpoint_complete hooks if a newer checkpoint completed. */
rv_code rv_subtask_notify_complete(rv_subtask *st);
/* After open(): restores the chain from the checkpoint being resumed. */
rv_err *rv_subtask_restore(rv_subtask *st);
/* A barrier arrived on input in: aligns, and checkpoints once every open
 * input delivered it. */
rv_code rv_subtask_on_barrier(rv_subtask *st, in_chan *in, uint64_t id);
/* An input ended: the alignment in progress may now be complete. */
rv_code rv_subtask_check_alignment(rv_subtask *st);
/* Whether input in must not be read now (exactly-once alignment). */
static inline bool rv_subtask_input_blocked(const rv_subtask *st, const in_chan *in)
{
    return in->barrier && st->jr->chk.mode == RV_CHK_EXACTLY_ONCE;
}
/* Whether the chain has a two-phase-commit operator, which must see one
 * more checkpoint complete after the end of its input. */
bool rv_subtask_needs_final_checkpoint(const rv_subtask *st);
/* The subtask ended normally: keeps its final operator states and
 * acknowledges the checkpoint it will now never see a barrier of. */
void rv_subtask_chk_finished(rv_subtask *st);
/* Frees what rv_subtask_chk_finished kept. */
void rv_subtask_chk_free(rv_subtask *st);

#endif
