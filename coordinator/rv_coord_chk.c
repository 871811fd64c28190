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
    k->max_sync_us = 0;
}

void rv_coord_chk_abort(job *j, const char *why)
{
    if (!j->chk.pending)
        return;
    RV_LOG_WARN(TAG, "job %s: checkpoint %" PRIu64 " abandoned: %s", j->id, j->chk.pending, why);
    clear_pending(j);
    j->chk.last_end_ms = rv_now_ms();
}

void rv_coord_chk_free(job *j) { clear_pending(j); }

static void trigger(rv_coord *c, job *j, int64_t now)
{
    job_chk *k = &j->chk;
    uint64_t id = k->next_id++;
    k->pending = id;
    k->pending_dir = rv_chk_dir(c->cfg.checkpoint_dir, j->id, id);
    k->pending_start_ms = now;
    k->last_trigger_ms = now;
    k->acked = rv_xcalloc((size_t)j->nsubtasks, sizeof(bool));
    Rivulet__TriggerCheckpoint t = RIVULET__TRIGGER_CHECKPOINT__INIT;
    t.job_id = j->id;
    t.attempt = j->attempt;
    t.id = id;
    t.dir = k->pending_dir;
    rv_envelope env;
    rv_proto_init(&env);
    env.body_case = RIVULET__ENVELOPE__BODY_TRIGGER_CHECKPOINT;
    env.trigger_checkpoint = &t;
    for (int p = 0; p < j->nparts; p++)
        if (c->tms[j->parts[p].tm].alive)
            rv_coord_send(c, j->parts[p].tm, &env);
    RV_LOG_DEBUG(TAG, "job %s: checkpoint %" PRIu64 " triggered", j->id, id);
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
            rv_coord_chk_abort(j, why);
        }
        return;
    }
    if (now - k->last_trigger_ms >= cc->interval_ms && now - k->last_end_ms >= cc->min_pause_ms)
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
    rv_err *err = rv_chk_write_metadata(k->pending_dir, &meta);
    if (err) {
        rv_coord_chk_abort(j, rv_err_msg(err));
        rv_err_free(err);
        return;
    }
    uint64_t bytes = 0;
    for (size_t i = 0; i < k->nhandles; i++)
        bytes += k->handles[i]->size;
    int64_t now = rv_now_ms();
    RV_LOG_INFO(TAG, "job %s: checkpoint %" PRIu64 " complete in %lld ms (longest pause of a subtask %.1f ms), %" PRIu64 " bytes of state",
                j->id, k->pending, (long long)(now - k->pending_start_ms), (double)k->max_sync_us / 1000.0, bytes);
    uint64_t id = k->pending;
    pthread_mutex_lock(&c->mu); /* read by status requests' copies */
    k->last_id = id;
    k->last_ms = rv_wall_ms();
    pthread_mutex_unlock(&c->mu);
    clear_pending(j);
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
    for (int p = 0; p < j->nparts; p++)
        if (c->tms[j->parts[p].tm].alive)
            rv_coord_send(c, j->parts[p].tm, &env);
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
    if (a->attempt != j->attempt || a->id != k->pending || j->state != RV_JOB_RUNNING)
        return; /* late: an abandoned checkpoint or an earlier attempt */
    if (a->task >= (uint32_t)j->g->ntasks || a->subtask >= (uint32_t)j->g->tasks[a->task].parallelism)
        return;
    if (a->error[0]) {
        char why[1200];
        snprintf(why, sizeof(why), "subtask %u.%u: %s", (unsigned)a->task, (unsigned)a->subtask, a->error);
        rv_coord_chk_abort(j, why);
        return;
    }
    int s = rv_coord_subtask_index(j->g, (int)a->task, (int)a->subtask);
    if (k->acked[s])
        return;
    k->acked[s] = true;
    k->nacked++;
    if (a->sync_us > k->max_sync_us)
        k->max_sync_us = a->sync_us;
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
    if (!rv_coord_chk_on(c, j))
        return;
    uint64_t id = 0;
    char *dir = NULL;
    rv_chk_meta *meta = NULL;
    rv_err *err = rv_chk_latest(c->cfg.checkpoint_dir, j->id, &id, &dir, &meta);
    if (err) {
        if (rv_err_code(err) != RV_ERR_NOT_FOUND)
            RV_LOG_WARN(TAG, "job %s: %s; starting from the beginning", j->id, rv_err_msg(err));
        else if (j->attempt > 0)
            RV_LOG_WARN(TAG, "job %s: no complete checkpoint yet; starting from the beginning", j->id);
        rv_err_free(err);
        return;
    }
    rv_chk_meta_free(meta);
    RV_LOG_INFO(TAG, "job %s: resuming from checkpoint %" PRIu64 " (%s)", j->id, id, dir);
    j->restore_dir = dir;
    if (id >= j->chk.next_id)
        j->chk.next_id = id + 1;
}
