/* rv_task_chk: checkpoints of subtasks — barrier alignment, snapshots of
 * an operator chain, acknowledgements, completion notices, and restoring a
 * chain when a job resumes.
 *
 * Snapshots run on the subtask's own thread between two elements, so no
 * operator is in the middle of a callback and no lock is taken on the
 * processing path: keyed state is serialised with rv_state_snapshot into
 * memory, the plugin's snapshot hook fills the handle's operator_state,
 * and the barrier goes on; the job run's upload thread (rv_chk_upload)
 * then writes <chk dir>/<node>-<subtask>.state and acknowledges. A source
 * handle also records the watermark it sent and the largest event time it
 * read, so a restored source goes on with the same watermarks. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rv_file.h"
#include "rv_hash.h"
#include "rv_log.h"
#include "rv_mem.h"
#include "rv_record.h"
#include "rv_task_int.h"
#include "rv_time.h"

void rv_job_chk_init(job_chk *c)
{
    memset(c, 0, sizeof(*c));
    atomic_init(&c->trigger, 0);
    atomic_init(&c->complete, 0);
    pthread_mutex_init(&c->mu, NULL);
}

void rv_job_chk_fini(job_chk *c)
{
    rv_chk_uploader_free(c->uploader); /* writes and acknowledges what is queued */
    free(c->root);
    free(c->job);
    free(c->restore_dir);
    rv_chk_meta_free(c->restore);
    for (size_t i = 0; i < sizeof(c->dirs) / sizeof(c->dirs[0]); i++)
        free(c->dirs[i].dir);
    pthread_mutex_destroy(&c->mu);
}

/* The upload thread wrote a subtask's part: acknowledge it. */
static void uploaded(void *arg, uint64_t id, int task, int subtask, Rivulet__StateHandle **hs, size_t n,
                     const char *error, uint64_t sync_us, uint64_t async_us)
{
    rv_job_run *jr = arg;
    RV_LOG_DEBUG(jr->tm_name, "checkpoint %" PRIu64 ": subtask %d.%d acknowledged (%zu state handle(s), %.1f ms "
                 "paused, %.1f ms writing)", id, task, subtask, n, (double)sync_us / 1000.0, (double)async_us / 1000.0);
    jr->chk.ack(jr->chk.ack_arg, jr->id, id, task, subtask, hs, n, error, sync_us, async_us);
}

rv_err *rv_job_run_set_checkpointing(rv_job_run *jr, const char *root, const char *job, rv_chk_mode mode,
                                     const char *restore_dir, rv_job_chk_ack_fn ack, void *ack_arg)
{
    job_chk *c = &jr->chk;
    if (restore_dir && restore_dir[0]) {
        rv_err *err = rv_chk_read_metadata(restore_dir, &c->restore);
        if (err)
            return rv_err_wrap(err, "resuming job %s", job);
        c->restore_dir = rv_xstrdup(restore_dir);
    }
    if (root && root[0]) {
        c->on = true;
        c->root = rv_xstrdup(root);
        c->job = rv_xstrdup(job);
        c->mode = mode;
        c->ack = ack;
        c->ack_arg = ack_arg;
        c->uploader = rv_chk_uploader_new(jr->tm_name, uploaded, jr);
        c->uid = rv_mix64((uint64_t)rv_now_ns() ^ (uint64_t)(uintptr_t)jr ^ ((uint64_t)getpid() << 32));
    }
    return NULL;
}

static void ring_all(rv_job_run *jr)
{
    for (int i = 0; i < jr->nsubtasks; i++)
        rv_doorbell_ring(&jr->subtasks[i]->bell);
}

static void ack(rv_subtask *st, uint64_t id, Rivulet__StateHandle **hs, size_t n, const char *error, uint64_t sync_us)
{
    job_chk *c = &st->jr->chk;
    RV_LOG_DEBUG(st->ops[0].tag, "checkpoint %" PRIu64 ": acknowledged%s (%zu state handle(s))", id,
                 st->finished ? " as ended" : "", n);
    if (c->ack)
        c->ack(c->ack_arg, st->jr->id, id, st->task, st->index, hs, n, error, sync_us, 0);
}

void rv_job_run_trigger(rv_job_run *jr, uint64_t id, const char *dir, bool savepoint)
{
    job_chk *c = &jr->chk;
    if (!c->on)
        return;
    pthread_mutex_lock(&c->mu);
    size_t slot = id % (sizeof(c->dirs) / sizeof(c->dirs[0]));
    free(c->dirs[slot].dir);
    c->dirs[slot].id = id;
    c->dirs[slot].dir = rv_xstrdup(dir);
    c->dirs[slot].savepoint = savepoint;
    if (id > atomic_load(&c->trigger))
        atomic_store(&c->trigger, id);
    /* Subtasks that ended will never see barrier id: answer for them with
     * the state they ended with. */
    for (int i = 0; i < jr->nsubtasks; i++) {
        rv_subtask *st = jr->subtasks[i];
        if (st->finished)
            ack(st, id, st->final_states, st->nfinal, NULL, 0);
    }
    pthread_mutex_unlock(&c->mu);
    ring_all(jr);
}

void rv_job_run_complete(rv_job_run *jr, uint64_t id)
{
    job_chk *c = &jr->chk;
    uint64_t cur = atomic_load(&c->complete);
    while (id > cur && !atomic_compare_exchange_weak(&c->complete, &cur, id))
        ;
    ring_all(jr);
}

uint64_t rv_subtask_trigger_pending(const rv_subtask *st)
{
    uint64_t t = atomic_load_explicit(&st->jr->chk.trigger, memory_order_acquire);
    return t > st->chk_seen ? t : 0;
}

/* The directory of checkpoint id (the trigger's, or the default), and
 * whether it is a savepoint. */
static char *chk_dir(rv_job_run *jr, uint64_t id, bool *savepoint)
{
    job_chk *c = &jr->chk;
    char *dir = NULL;
    *savepoint = false;
    pthread_mutex_lock(&c->mu);
    size_t slot = id % (sizeof(c->dirs) / sizeof(c->dirs[0]));
    if (c->dirs[slot].id == id && c->dirs[slot].dir) {
        dir = rv_xstrdup(c->dirs[slot].dir);
        *savepoint = c->dirs[slot].savepoint;
    }
    pthread_mutex_unlock(&c->mu);
    return dir ? dir : rv_chk_dir(c->root, c->job, id);
}

static Rivulet__StateHandle *new_handle(rv_subtask *st, op_inst *op)
{
    Rivulet__StateHandle *h = rv_xcalloc(1, sizeof(*h));
    rivulet__state_handle__init(h);
    h->node = rv_xstrdup(op->node->id);
    h->subtask = (uint32_t)st->index;
    h->parallelism = (uint32_t)st->td->parallelism;
    int first = 0, end = 0;
    if (op->kstate)
        rv_key_group_range(st->index, st->js->max_parallelism, st->td->parallelism, &first, &end);
    h->kg_first = (uint32_t)first;
    h->kg_end = (uint32_t)end;
    h->watermark = op->pos == 0 && op->pl->kind == RV_PLUGIN_SOURCE ? st->src_wm_sent : st->wm;
    h->max_event_time = op->pos == 0 && op->pl->kind == RV_PLUGIN_SOURCE ? st->src_max_ts : INT64_MIN;
    return h;
}

/* Serialises op's keyed state into memory (the upload thread writes it).
 * Incremental (not for savepoints, and once RocksDB holds state): the
 * entries go into a local RocksDB checkpoint, hard links of its files,
 * which the upload thread copies (new SST files only), and the stream
 * holds only the timers. */
static rv_err *snapshot_keyed(rv_subtask *st, op_inst *op, uint64_t id, bool savepoint, rv_chk_blob *b)
{
    char *name = rv_xasprintf("%s-%d.state", op->node->id, st->index);
    char *data = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&data, &len);
    if (!f) {
        free(name);
        return rv_err_new(RV_ERR_IO, "cannot open a memory stream: %s", strerror(errno));
    }
    uint64_t bytes = 0;
    rv_err *err = NULL;
    bool incremental = false;
    if (!savepoint) {
        char *db_dir = rv_xasprintf("%s/chk-%" PRIu64 "-%s-%d", st->jr->state_dir, id, op->node->id, st->index);
        if (!(err = rv_file_remove_tree(db_dir)) &&
            !(err = rv_state_snapshot_incremental(op->kstate, db_dir, f, name, &bytes, &incremental)) && incremental) {
            b->db_dir = db_dir;
            b->db_prefix = rv_xasprintf("%s-%d-%016" PRIx64, op->node->id, st->index, st->jr->chk.uid);
            db_dir = NULL;
        }
        free(db_dir);
    }
    if (!err && !incremental)
        err = rv_state_snapshot(op->kstate, f, name, &bytes);
    if (fclose(f) != 0 && !err)
        err = rv_err_new(RV_ERR_IO, "serialising %s: %s", name, strerror(errno));
    if (err) {
        free(name);
        free(data);
        free(b->db_dir);
        free(b->db_prefix);
        b->db_dir = b->db_prefix = NULL;
        return err;
    }
    b->name = name;
    b->data = data;
    b->len = len;
    return NULL;
}

/* Snapshots every operator of the chain with state: handles, and the
 * keyed state to write as blobs (NULL: none wanted). id 0: the final state
 * of a subtask that ended (operator state only). */
static rv_err *snapshot_chain(rv_subtask *st, uint64_t id, bool savepoint, Rivulet__StateHandle ***out, size_t *nout,
                              rv_chk_blob **blobs_out, size_t *nblobs_out)
{
    Rivulet__StateHandle **hs = rv_xcalloc((size_t)st->nops, sizeof(*hs));
    rv_chk_blob *blobs = rv_xcalloc((size_t)st->nops, sizeof(*blobs));
    size_t n = 0, nblobs = 0;
    rv_err *err = NULL;
    for (int k = 0; k < st->nops && !err; k++) {
        op_inst *op = &st->ops[k];
        bool source = k == 0 && op->pl->kind == RV_PLUGIN_SOURCE;
        if (!op->kstate && !op->pl->snapshot && !source)
            continue;
        Rivulet__StateHandle *h = new_handle(st, op);
        hs[n++] = h;
        h->finished = id == 0;
        if (op->kstate && id != 0 && blobs_out) {
            blobs[nblobs].handle = n - 1;
            if (!(err = snapshot_keyed(st, op, id, savepoint, &blobs[nblobs])))
                nblobs++;
        }
        if (!err && op->pl->snapshot) {
            rv_buf b = {0};
            err = op->pl->snapshot(op->state, &op->ctx, id, &b);
            h->operator_state.data = (uint8_t *)b.data;
            h->operator_state.len = b.len;
            if (err)
                err = rv_err_wrap(err, "%s '%s'", rv_plugin_kind_name(op->pl->kind), op->node->id);
        }
    }
    if (err || !blobs_out) {
        rv_chk_blobs_free(blobs, nblobs, st->ops[0].tag);
        blobs = NULL;
        nblobs = 0;
    }
    if (err) {
        rv_chk_handles_free(hs, n);
        return err;
    }
    *out = hs;
    *nout = n;
    if (blobs_out) {
        *blobs_out = blobs;
        *nblobs_out = nblobs;
    }
    return NULL;
}

rv_code rv_subtask_checkpoint(rv_subtask *st, uint64_t id)
{
    int64_t t0 = rv_now_ns();
    st->chk_seen = id;
    st->aligning = 0;
    for (int i = 0; i < st->nins; i++)
        st->ins[i].barrier = false;
    Rivulet__StateHandle **hs = NULL;
    rv_chk_blob *blobs = NULL;
    size_t n = 0, nblobs = 0;
    bool savepoint;
    char *dir = chk_dir(st->jr, id, &savepoint);
    rv_err *err = snapshot_chain(st, id, savepoint, &hs, &n, &blobs, &nblobs);
    /* The barrier follows the data the snapshot covers. */
    rv_code rc = rv_task_control_all(st, (rv_elem){.kind = RV_EL_BARRIER, .u.chk = id});
    uint64_t sync_us = (uint64_t)(rv_now_ns() - t0) / 1000;
    if (err) {
        RV_LOG_WARN(st->ops[0].tag, "checkpoint %" PRIu64 " failed here: %s", id, rv_err_msg(err));
        ack(st, id, NULL, 0, rv_err_msg(err), sync_us);
        rv_err_free(err);
        free(dir);
    } else {
        rv_chk_uploader_put(st->jr->chk.uploader, id, st->task, st->index, dir, hs, n, blobs, nblobs, sync_us);
    }
    return rc;
}

static bool aligned(const rv_subtask *st)
{
    for (int i = 0; i < st->nins; i++)
        if (!st->ins[i].ended && !st->ins[i].barrier)
            return false;
    return true;
}

rv_code rv_subtask_on_barrier(rv_subtask *st, in_chan *in, uint64_t id)
{
    if (id <= st->chk_seen)
        return RV_OK; /* a checkpoint already taken or given up */
    if (id > st->aligning) {
        if (st->aligning)
            RV_LOG_INFO(st->ops[0].tag, "checkpoint %" PRIu64 " overtaken by %" PRIu64 " before its barriers aligned",
                        st->aligning, id);
        /* A newer barrier: the older checkpoint was given up upstream. */
        for (int i = 0; i < st->nins; i++)
            st->ins[i].barrier = false;
        st->aligning = id;
    } else if (id < st->aligning) {
        return RV_OK;
    }
    in->barrier = true;
    return rv_subtask_check_alignment(st);
}

rv_code rv_subtask_check_alignment(rv_subtask *st)
{
    if (!st->aligning || !aligned(st))
        return RV_OK;
    return rv_subtask_checkpoint(st, st->aligning);
}

rv_code rv_subtask_notify_complete(rv_subtask *st)
{
    uint64_t done = atomic_load_explicit(&st->jr->chk.complete, memory_order_acquire);
    if (done <= st->notified)
        return RV_OK;
    st->notified = done;
    for (int k = 0; k < st->nops; k++) {
        op_inst *op = &st->ops[k];
        if (!op->pl->checkpoint_complete)
            continue;
        rv_err *err = op->pl->checkpoint_complete(op->state, &op->ctx, done);
        if (err) {
            rv_ctx_fail(&op->ctx, rv_err_wrap(err, "committing checkpoint %" PRIu64, done));
            return RV_ERR_IO;
        }
    }
    return RV_OK;
}

bool rv_subtask_needs_final_checkpoint(const rv_subtask *st)
{
    if (!st->jr->chk.on)
        return false;
    for (int k = 0; k < st->nops; k++)
        if (st->ops[k].pl->checkpoint_complete)
            return true;
    return false;
}

void rv_subtask_chk_finished(rv_subtask *st)
{
    job_chk *c = &st->jr->chk;
    if (!c->on)
        return;
    Rivulet__StateHandle **hs = NULL;
    size_t n = 0;
    rv_err *err = snapshot_chain(st, 0, false, &hs, &n, NULL, NULL);
    if (err) {
        /* Later checkpoints could not include this subtask: the attempt
         * fails and the job resumes from its latest checkpoint. */
        rv_job_run_fail(st->jr, rv_err_wrap(err, "recording the final state of a subtask"));
        return;
    }
    pthread_mutex_lock(&c->mu);
    st->final_states = hs;
    st->nfinal = n;
    st->finished = true;
    uint64_t pending = atomic_load(&c->trigger);
    if (pending > st->chk_seen)
        ack(st, pending, st->final_states, st->nfinal, NULL, 0);
    pthread_mutex_unlock(&c->mu);
}

void rv_subtask_chk_free(rv_subtask *st)
{
    rv_chk_handles_free(st->final_states, st->nfinal);
    st->final_states = NULL;
    st->nfinal = 0;
}

/* ---- restore ---- */

/* Restores the stream file of handle h (and with a database dir, its
 * incremental timers from there or the adopted database). */
static rv_err *restore_stream(rv_subtask *st, op_inst *op, const Rivulet__StateHandle *h, int first, int end,
                              const char *db_dir, bool adopted)
{
    char *path = rv_xasprintf("%s/%s", st->jr->chk.restore_dir, h->file);
    FILE *f = fopen(path, "rb");
    rv_err *err = NULL;
    if (!f) {
        err = rv_err_new(RV_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    } else {
        err = rv_state_restore_incremental(op->kstate, f, path, first, end, db_dir, adopted);
        fclose(f);
    }
    free(path);
    return err;
}

/* An incremental handle h (number i): rebuilds its RocksDB checkpoint in a
 * scratch directory (hard links where the file system allows, else
 * copies); when it holds exactly this instance's key groups (`whole`) the
 * instance adopts it as its database, else its entries and timers of key
 * groups [first, end) are loaded from it. */
static rv_err *restore_db(rv_subtask *st, op_inst *op, const Rivulet__StateHandle *h, size_t i, int first, int end,
                          bool whole)
{
    job_chk *c = &st->jr->chk;
    char *scratch = rv_xasprintf("%s/restore-%s-%d-%zu", st->jr->state_dir, op->node->id, st->index, i);
    rv_err *err = rv_file_remove_tree(scratch);
    if (!err)
        err = rv_file_mkdirs(scratch);
    for (size_t k = 0; !err && k < h->n_db_files; k++) {
        const Rivulet__DbFile *f = h->db_files[k];
        char *src = f->shared ? rv_xasprintf("%s/../%s/%s", c->restore_dir, RV_CHK_SHARED, f->stored)
                              : rv_xasprintf("%s/%s", c->restore_dir, f->stored);
        char *dst = rv_xasprintf("%s/%s", scratch, f->name);
        err = rv_file_link_or_copy(src, dst);
        free(src);
        free(dst);
    }
    bool adopted = false;
    if (!err && whole)
        err = rv_state_adopt_db(op->kstate, scratch, &adopted);
    if (!err && !adopted)
        err = rv_state_restore_db(op->kstate, scratch, h->file, first, end);
    if (!err)
        err = restore_stream(st, op, h, first, end, adopted ? NULL : scratch, adopted);
    rv_err *rerr = rv_file_remove_tree(scratch);
    if (rerr && !err)
        err = rerr;
    else
        rv_err_free(rerr);
    free(scratch);
    return err;
}

static rv_err *restore_keyed(rv_subtask *st, op_inst *op)
{
    job_chk *c = &st->jr->chk;
    int first = 0, end = 0;
    rv_key_group_range(st->index, st->js->max_parallelism, st->td->parallelism, &first, &end);
    for (size_t i = 0; i < c->restore->n_states; i++) {
        const Rivulet__StateHandle *h = c->restore->states[i];
        if (strcmp(h->node, op->node->id) != 0 || !h->file[0] || (int)h->kg_end <= first || (int)h->kg_first >= end)
            continue;
        bool whole = (int)h->kg_first == first && (int)h->kg_end == end;
        rv_err *err = h->n_db_files ? restore_db(st, op, h, i, first, end, whole)
                                    : restore_stream(st, op, h, first, end, NULL, false);
        if (err)
            return err;
    }
    return NULL;
}

rv_err *rv_subtask_restore(rv_subtask *st)
{
    job_chk *c = &st->jr->chk;
    if (!c->restore)
        return NULL;
    for (int k = 0; k < st->nops; k++) {
        op_inst *op = &st->ops[k];
        rv_err *err = NULL;
        if (op->kstate && (err = restore_keyed(st, op)))
            return rv_err_wrap(err, "restoring '%s'", op->node->id);
        /* Restored processing-time timers need a wake-up of the runtime
         * (a timer at t fires at the wake-up t + 1, as operators set them). */
        if (op->kstate && rv_timer_count(op->kstate, RV_TIMER_PROCESSING) > 0)
            rv_ctx_timer_at(&op->ctx, rv_timer_next(op->kstate, RV_TIMER_PROCESSING) + 1);
        rv_op_state *states = rv_xcalloc(c->restore->n_states + 1, sizeof(*states));
        int n = 0;
        bool source = k == 0 && op->pl->kind == RV_PLUGIN_SOURCE;
        int64_t wm_min = INT64_MAX;
        bool exact = false;
        for (size_t i = 0; i < c->restore->n_states; i++) {
            const Rivulet__StateHandle *h = c->restore->states[i];
            if (strcmp(h->node, op->node->id) != 0)
                continue;
            states[n++] = (rv_op_state){.subtask = (int)h->subtask, .parallelism = (int)h->parallelism,
                                        .data = h->operator_state.data, .len = h->operator_state.len};
            if (!source)
                continue;
            /* The same instance: its own watermark; else the least of
             * them, so no record that was on time becomes late. */
            if ((int)h->subtask == st->index && (int)h->parallelism == st->td->parallelism) {
                st->src_wm_sent = h->watermark;
                st->src_max_ts = h->max_event_time;
                exact = true;
            }
            if (h->watermark < wm_min)
                wm_min = h->watermark;
        }
        if (source && !exact && n > 0)
            st->src_wm_sent = wm_min;
        if (op->pl->restore)
            err = op->pl->restore(op->state, &op->ctx, states, n);
        free(states);
        if (err)
            return rv_err_wrap(err, "restoring %s '%s'", rv_plugin_kind_name(op->pl->kind), op->node->id);
    }
    return NULL;
}
