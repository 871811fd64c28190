/* rv_coord_chk: checkpoint coordination — the coordinator's side of
 * DESIGN.md §9.
 *
 * Per job at most one checkpoint is in progress. On the loop tick a
 * RUNNING job whose interval has passed (and min_pause since the last one
 * ended) gets checkpoint n triggered on every task manager of its current
 * attempt. Each subtask acknowledges with the handles of its state; when
 * all have, `_metadata` is written atomically into chk-<n> (the
 * checkpoint is complete from then on), old checkpoints are deleted down
 * to `retained`, and the task managers are told, so two-phase sinks
 * publish. A checkpoint that misses its timeout, or that a subtask could
 * not write, is abandoned with a log line; the job goes on. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "rv_checkpoint.h"
#include "rv_coord_int.h"
#include "rv_log.h"
#include "rv_mem.h"
#include "rv_time.h"

#define TAG "coordinator"

bool rv_coord_chk_on(const rv_coord *c, const job *j)
{
    return j->g->spec->checkpointing.interval_ms > 0 && c->cfg.checkpoint_dir && c->cfg.checkpoint_dir[0];
}

static void clear_pending(job *j)
{
    job_chk *k = &j->chk;
    for (size_t i = 0; i < k->nhandles; i++)
        rivulet__state_handle__free_unpacked(k->handles[i], NULL);
    free(k->handles);
    k->handles = NULL;
    k->nhandles = k->hcap = 0;
    free(k->acked);
    k->acked = NULL;
    k->nacked = 0;
    free(k->pending_dir);
    k->pending_dir = NULL;
    k->pending = 0;
    k->pending_savepoint = false;
    k->max_sync_us = k->max_async_us = 0;
}

/* Answers the client waiting for a savepoint (path, or the error). */
static void answer_savepoint(rv_coord *c, job *j, const char *path, const char *error)
{
    job_chk *k = &j->chk;
    Rivulet__Reply r = RIVULET__REPLY__INIT;
    r.ok = error == NULL;
    r.error = (char *)(error ? error : "");
    r.job_id = j->id;
    r.path = (char *)(path ? path : "");
    rv_coord_reply(c, k->sp_pipe, k->sp_request_id, &r);
    k->sp_requested = false;
    k->sp_stop = false;
    free(k->sp_parent);
    k->sp_parent = NULL;
}

void rv_coord_chk_abort(rv_coord *c, job *j, const char *why)
{
    job_chk *k = &j->chk;
    if (k->sp_requested && (k->pending_savepoint || !k->pending)) {
        char msg[1200];
        snprintf(msg, sizeof(msg), "savepoint of job %s failed: %s", j->id, why);
        answer_savepoint(c, j, NULL, msg);
    }
    if (!k->pending)
        return;
    RV_LOG_WARN(TAG, "job %s: %s %" PRIu64 " abandoned: %s", j->id, k->pending_savepoint ? "savepoint" : "checkpoint",
                k->pending, why);
    clear_pending(j);
    k->last_end_ms = rv_now_ms();
}

void rv_coord_chk_free(job *j)
{
    clear_pending(j);
    free(j->chk.sp_parent);
}

static void trigger(rv_coord *c, job *j, int64_t now)
{
    job_chk *k = &j->chk;
    uint64_t id = k->next_id++;
    k->pending = id;
    k->pending_savepoint = k->sp_requested;
    if (k->sp_requested)
        k->pending_dir = rv_xasprintf("%s/savepoint-%s-%" PRIu64, k->sp_parent, j->id, id);
    else
        k->pending_dir = rv_chk_dir(c->cfg.checkpoint_dir, j->id, id);
    k->pending_start_ms = now;
    k->last_trigger_ms = now;
    k->acked = rv_xcalloc((size_t)j->nsubtasks, sizeof(bool));
    Rivulet__TriggerCheckpoint t = RIVULET__TRIGGER_CHECKPOINT__INIT;
    t.job_id = j->id;
    t.attempt = j->attempt;
    t.id = id;
    t.dir = k->pending_dir;
    t.savepoint = k->pending_savepoint;
    rv_envelope env;
    rv_proto_init(&env);
    env.body_case = RIVULET__ENVELOPE__BODY_TRIGGER_CHECKPOINT;
    env.trigger_checkpoint = &t;
    rv_coord_send_parts(c, j, &env);
    RV_LOG_DEBUG(TAG, "job %s: %s %" PRIu64 " triggered", j->id, k->pending_savepoint ? "savepoint" : "checkpoint", id);
}

void rv_coord_chk_tick(rv_coord *c, job *j, int64_t now)
{
    if (j->state != RV_JOB_RUNNING || !rv_coord_chk_on(c, j))
        return;
    const rv_chk_conf *cc = &j->g->spec->checkpointing;
    job_chk *k = &j->chk;
    if (k->pending) {
        if (now - k->pending_start_ms > cc->timeout_ms) {
            char why[96];
            snprintf(why, sizeof(why), "not complete after %lld ms (checkpointing.timeout)", (long long)cc->timeout_ms);
            rv_coord_chk_abort(c, j, why);
        }
        return;
    }
    /* A savepoint goes first, without waiting for the interval. */
    if (k->sp_requested || (now - k->last_trigger_ms >= cc->interval_ms && now - k->last_end_ms >= cc->min_pause_ms))
        trigger(c, j, now);
}

static void complete(rv_coord *c, job *j)
{
    job_chk *k = &j->chk;
    Rivulet__CheckpointMetadata meta = RIVULET__CHECKPOINT_METADATA__INIT;
    meta.id = k->pending;
    meta.job_id = j->id;
    meta.job_name = j->name;
    meta.time_ms = rv_wall_ms();
    meta.max_parallelism = (uint32_t)j->g->spec->max_parallelism;
    meta.states = k->handles;
    meta.n_states = k->nhandles;
    meta.job_yaml = j->yaml;
    meta.savepoint = k->pending_savepoint;
    rv_err *err = rv_chk_write_metadata(k->pending_dir, &meta);
    if (err) {
        rv_coord_chk_abort(c, j, rv_err_msg(err));
        rv_err_free(err);
        return;
    }
    uint64_t bytes = 0, written = 0;
    for (size_t i = 0; i < k->nhandles; i++) {
        bytes += rv_chk_state_bytes(k->handles[i]);
        written += k->handles[i]->n_db_files ? k->handles[i]->size + k->handles[i]->uploaded : k->handles[i]->size;
    }
    int64_t now = rv_now_ms();
    RV_LOG_INFO(TAG, "job %s: %s %" PRIu64 " complete in %lld ms (longest pause of a subtask %.1f ms, longest "
                "write %.1f ms), %" PRIu64 " bytes of state, %" PRIu64 " written",
                j->id, k->pending_savepoint ? "savepoint" : "checkpoint", k->pending, (long long)(now - k->pending_start_ms),
                (double)k->max_sync_us / 1000.0, (double)k->max_async_us / 1000.0, bytes, written);
    uint64_t id = k->pending;
    bool stop = false;
    if (k->pending_savepoint) {
        RV_LOG_INFO(TAG, "job %s: savepoint written to %s", j->id, k->pending_dir);
        stop = k->sp_stop;
        answer_savepoint(c, j, k->pending_dir, NULL);
    }
    k->last_id = id;
    k->last_ms = rv_wall_ms();
    clear_pending(j);
    rv_coord_persist(c, j);
    k->last_end_ms = now;
    if ((err = rv_chk_retain(c->cfg.checkpoint_dir, j->id, j->g->spec->checkpointing.retained))) {
        RV_LOG_WARN(TAG, "job %s: removing old checkpoints: %s", j->id, rv_err_msg(err));
        rv_err_free(err);
    }
    Rivulet__CheckpointComplete m = RIVULET__CHECKPOINT_COMPLETE__INIT;
    m.job_id = j->id;
    m.attempt = j->attempt;
    m.id = id;
    rv_envelope env;
    rv_proto_init(&env);
    env.body_case = RIVULET__ENVELOPE__BODY_CHECKPOINT_COMPLETE;
    env.checkpoint_complete = &m;
    rv_coord_send_parts(c, j, &env);
    if (stop) {
        j->stopped = true;
        rv_coord_stop_parts(c, j);
    }
}

/* A copy of h that outlives the message it came in. */
static Rivulet__StateHandle *copy_handle(const Rivulet__StateHandle *h)
{
    size_t len = rivulet__state_handle__get_packed_size(h);
    uint8_t *buf = rv_xmalloc(len ? len : 1);
    rivulet__state_handle__pack(h, buf);
    Rivulet__StateHandle *x = rivulet__state_handle__unpack(NULL, len, buf);
    free(buf);
    if (!x)
        abort(); /* we just packed it */
    return x;
}

void rv_coord_chk_ack(rv_coord *c, job *j, const Rivulet__CheckpointAck *a)
{
    job_chk *k = &j->chk;
    if (a->attempt != j->attempt || a->id != k->pending || j->state != RV_JOB_RUNNING) {
        /* late: an abandoned checkpoint or an earlier attempt */
        RV_LOG_DEBUG(TAG, "job %s: ignoring an acknowledgement of checkpoint %" PRIu64 " (attempt %u; pending %" PRIu64
                     ", attempt %u)", j->id, a->id, (unsigned)a->attempt, k->pending, (unsigned)j->attempt);
        return;
    }
    if (a->task >= (uint32_t)j->g->ntasks || a->subtask >= (uint32_t)j->g->tasks[a->task].parallelism)
        return;
    if (a->error[0]) {
        char why[1200];
        snprintf(why, sizeof(why), "subtask %u.%u: %s", (unsigned)a->task, (unsigned)a->subtask, a->error);
        rv_coord_chk_abort(c, j, why);
        return;
    }
    int s = rv_coord_subtask_index(j->g, (int)a->task, (int)a->subtask);
    if (k->acked[s])
        return;
    k->acked[s] = true;
    k->nacked++;
    if (a->sync_us > k->max_sync_us)
        k->max_sync_us = a->sync_us;
    if (a->async_us > k->max_async_us)
        k->max_async_us = a->async_us;
    for (size_t i = 0; i < a->n_states; i++) {
        rv_xgrow((void **)&k->handles, &k->hcap, k->nhandles + 1, sizeof(*k->handles));
        k->handles[k->nhandles++] = copy_handle(a->states[i]);
    }
    if (k->nacked == j->nsubtasks)
        complete(c, j);
}

void rv_coord_chk_prepare_deploy(rv_coord *c, job *j)
{
    free(j->restore_dir);
    j->restore_dir = NULL;
    j->chk.last_trigger_ms = j->chk.last_end_ms = rv_now_ms();
    if (j->chk.next_id == 0)
        j->chk.next_id = 1;
    if (!rv_coord_chk_on(c, j)) {
        if (j->initial_restore)
            j->restore_dir = rv_xstrdup(j->initial_restore);
        return;
    }
    uint64_t id = 0;
    char *dir = NULL;
    rv_chk_meta *meta = NULL;
    rv_err *err = rv_chk_latest(c->cfg.checkpoint_dir, j->id, &id, &dir, &meta);
    if (err) {
        const char *from = j->initial_restore ? "its savepoint" : "the beginning";
        if (rv_err_code(err) != RV_ERR_NOT_FOUND)
            RV_LOG_WARN(TAG, "job %s: %s; starting from %s", j->id, rv_err_msg(err), from);
        else if (j->attempt > 0)
            RV_LOG_WARN(TAG, "job %s: no complete checkpoint yet; starting from %s", j->id, from);
        rv_err_free(err);
        if (j->initial_restore)
            j->restore_dir = rv_xstrdup(j->initial_restore);
        return;
    }
    rv_chk_meta_free(meta);
    RV_LOG_INFO(TAG, "job %s: resuming from checkpoint %" PRIu64 " (%s)", j->id, id, dir);
    j->restore_dir = dir;
    if (id >= j->chk.next_id)
        j->chk.next_id = id + 1;
}

rv_err *rv_coord_chk_check_savepoint(const job *j, const char *dir, bool allow_non_restored)
{
    rv_chk_meta *meta = NULL;
    rv_err *err = rv_chk_read_metadata(dir, &meta);
    if (!err)
        err = rv_chk_verify(dir, meta);
    if (err) {
        rv_chk_meta_free(meta);
        return rv_err_wrap(err, "savepoint %s", dir);
    }
    const rv_jobspec *js = j->g->spec;
    if ((int)meta->max_parallelism != js->max_parallelism)
        err = rv_err_new(RV_ERR_INVALID,
                         "savepoint %s was taken with max_parallelism %u, the job has %d: key groups cannot be "
                         "redistributed across a different max_parallelism",
                         dir, (unsigned)meta->max_parallelism, js->max_parallelism);
    for (size_t i = 0; !err && !allow_non_restored && i < meta->n_states; i++) {
        const Rivulet__StateHandle *h = meta->states[i];
        bool found = false;
        for (int n = 0; n < js->nnodes && !found; n++)
            found = strcmp(js->nodes[n].id, h->node) == 0;
        if (!found && (h->file[0] || h->operator_state.len))
            err = rv_err_new(RV_ERR_INVALID,
                             "savepoint %s has state of node '%s', which the job does not have (rename the node "
                             "back, or pass --allow-non-restored-state to drop that state)",
                             dir, h->node);
    }
    rv_chk_meta_free(meta);
    return err;
}

rv_err *rv_coord_chk_savepoint(rv_coord *c, job *j, const Rivulet__SavepointRequest *r, uint32_t pipe,
                               uint64_t request_id)
{
    job_chk *k = &j->chk;
    if (j->state != RV_JOB_RUNNING)
        return rv_err_new(RV_ERR_INVALID, "job %s is %s; savepoints are taken of RUNNING jobs", j->id,
                          rv_job_state_name(j->state));
    if (!rv_coord_chk_on(c, j))
        return rv_err_new(RV_ERR_INVALID,
                          "job %s has no 'checkpointing'; a savepoint needs it (sources record positions and "
                          "two-phase sinks pre-commit at barriers only then)", j->id);
    if (k->sp_requested)
        return rv_err_new(RV_ERR_AGAIN, "job %s is already taking a savepoint", j->id);
    k->sp_requested = true;
    k->sp_parent = r->dir[0] ? rv_xstrdup(r->dir) : rv_xasprintf("%s/%s/savepoints", c->cfg.checkpoint_dir, j->id);
    k->sp_stop = r->stop && !r->drain; /* a drained job ends by itself */
    k->sp_pipe = pipe;
    k->sp_request_id = request_id;
    if (r->drain) {
        j->stopped = true;
        Rivulet__DrainJob d = RIVULET__DRAIN_JOB__INIT;
        d.job_id = j->id;
        d.attempt = j->attempt;
        rv_envelope env;
        rv_proto_init(&env);
        env.body_case = RIVULET__ENVELOPE__BODY_DRAIN_JOB;
        env.drain_job = &d;
        rv_coord_send_parts(c, j, &env);
    }
    RV_LOG_INFO(TAG, "job %s: savepoint requested into %s%s", j->id, k->sp_parent,
                r->drain ? " (draining first)" : r->stop ? " (then stopping)" : "");
    rv_coord_chk_tick(c, j, rv_now_ms());
    return NULL;
}
