/* rv_taskmanager: slots, deployment and channel wiring of subtasks. */
#include "rv_taskmanager.h"

#include <assert.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rv_file.h"
#include "rv_hash.h"
#include "rv_log.h"
#include "rv_mem.h"

typedef struct tm_job {
    char *id;
    uint64_t key;        /* data-plane job key */
    rv_job_graph *g;
    rv_job_run *run;
    rv_subtask **subtasks; /* task-major; NULL where the subtask runs elsewhere */
    int nsubtasks;
    rv_channel **chans;    /* local channels and inboxes (ours to free) */
    int nchans;
    int slots;
    int running;         /* local subtasks not yet ended; under tm->mu */
    rv_task_state worst; /* FINISHED < CANCELED < FAILED */
    rv_tm_job_done_fn done;
    void *done_arg;
    rv_tm *tm;
    struct tm_job *next;
} tm_job;

struct rv_tm {
    char *name;
    int slots, used;
    rv_dataplane *dp;
    char *state_dir;
    bool own_state_dir; /* created by us: removed by rv_tm_free */
    pthread_mutex_t mu;
    tm_job *jobs;
};

rv_tm *rv_tm_new(const char *name, int slots, rv_dataplane *dp, const char *state_dir)
{
    rv_tm *tm = rv_xcalloc(1, sizeof(*tm));
    tm->name = rv_xstrdup(name);
    if (state_dir) {
        tm->state_dir = rv_xstrdup(state_dir);
    } else {
        const char *tmp = getenv("TMPDIR");
        tm->state_dir = rv_xasprintf("%s/rivulet-state-%s-%d", tmp && *tmp ? tmp : "/tmp", name, (int)getpid());
        tm->own_state_dir = true;
    }
    tm->slots = slots;
    tm->dp = dp;
    pthread_mutex_init(&tm->mu, NULL);
    return tm;
}

const char *rv_tm_name(const rv_tm *tm) { return tm->name; }
int rv_tm_slots(const rv_tm *tm) { return tm->slots; }

int rv_tm_free_slots(const rv_tm *tm)
{
    pthread_mutex_lock((pthread_mutex_t *)&tm->mu);
    int n = tm->slots - tm->used;
    pthread_mutex_unlock((pthread_mutex_t *)&tm->mu);
    return n;
}

static void job_free(tm_job *j)
{
    /* Join every thread before freeing any subtask: a running producer
     * rings doorbells inside its consumers. */
    for (int i = 0; i < j->nsubtasks; i++)
        if (j->subtasks[i])
            rv_subtask_join(j->subtasks[i]);
    /* The data plane stops touching the job's inboxes and frees its
     * outboxes before the channels go. */
    if (j->tm && j->tm->dp)
        rv_dataplane_close_job(j->tm->dp, j->key);
    for (int i = 0; i < j->nsubtasks; i++)
        rv_subtask_free(j->subtasks[i]);
    free(j->subtasks);
    for (int i = 0; i < j->nchans; i++)
        rv_channel_free(j->chans[i]);
    free(j->chans);
    rv_job_run_free(j->run);
    rv_job_graph_free(j->g);
    free(j->id);
    free(j);
}

static int rank(rv_task_state s) { return s == RV_TASK_FAILED ? 3 : s == RV_TASK_CANCELED ? 2 : 1; }

static void on_subtask_done(void *arg, rv_subtask *st, rv_task_state state, const char *error)
{
    tm_job *j = arg;
    rv_tm *tm = j->tm;
    pthread_mutex_lock(&tm->mu);
    if (rank(state) > rank(j->worst))
        j->worst = state;
    bool last = --j->running == 0;
    rv_task_state final = j->worst;
    rv_tm_job_done_fn done = j->done;
    pthread_mutex_unlock(&tm->mu);
    if (state == RV_TASK_FAILED)
        RV_LOG_DEBUG(tm->name, "job %s subtask %d.%d failed: %s", j->id, rv_subtask_task(st), rv_subtask_index(st), error);
    if (last && done)
        done(j->done_arg, j->id, final, final == RV_TASK_FAILED ? rv_job_run_error(j->run) : NULL);
}

static void on_remote_fail(void *arg, rv_err *err)
{
    rv_job_run_fail(arg, err);
}

static int subtask_base(const rv_job_graph *g, int task)
{
    int base = 0;
    for (int t = 0; t < task; t++)
        base += g->tasks[t].parallelism;
    return base;
}

typedef struct placement {
    const rv_deployment *d;
    const rv_job_graph *g;
} placement;

static int where(const placement *pl, int task, int subtask)
{
    return pl->d->tm_of_subtask ? pl->d->tm_of_subtask[subtask_base(pl->g, task) + subtask] : pl->d->my_index;
}

static void keep_channel(tm_job *j, rv_channel *ch)
{
    j->chans = rv_xrealloc(j->chans, (size_t)(j->nchans + 1) * sizeof(rv_channel *));
    j->chans[j->nchans++] = ch;
}

/* Channels of every edge that touches a subtask placed here: a local ring
 * when both ends are here, an outbox when only the producer is, an inbox
 * when only the consumer is. */
static rv_err *wire(tm_job *j, const placement *pl)
{
    rv_job_graph *g = j->g;
    const rv_jobspec *js = g->spec;
    int me = pl->d->my_index;
    for (int e = 0; e < g->nedges; e++) {
        const rv_task_edge *ed = &g->edges[e];
        int np = g->tasks[ed->from_task].parallelism, nc = g->tasks[ed->to_task].parallelism;
        rv_schema *schema = rv_jobspec_port_schema(js, (rv_input_ref){ed->from_node, ed->from_port});
        int consumer_node = g->tasks[ed->to_task].nodes[0];
        for (int p = 0; p < np; p++) {
            bool prod_here = where(pl, ed->from_task, p) == me;
            int first = ed->part == RV_PART_FORWARD ? p : 0, count = ed->part == RV_PART_FORWARD ? 1 : nc;
            rv_channel **chans = rv_xcalloc((size_t)count, sizeof(rv_channel *));
            for (int k = 0; k < count; k++) {
                int c = first + k;
                int cons_tm = where(pl, ed->to_task, c);
                bool cons_here = cons_tm == me;
                rv_subtask *cons = cons_here ? j->subtasks[subtask_base(g, ed->to_task) + c] : NULL;
                rv_chan_key key = {.job = j->key, .chan = ((uint64_t)e << 40) | ((uint64_t)p << 20) | (uint64_t)c};
                rv_err *err = NULL;
                if (prod_here && cons_here) {
                    chans[k] = rv_channel_new((uint32_t)js->channel_capacity, rv_subtask_doorbell(cons));
                    keep_channel(j, chans[k]);
                    rv_subtask_add_input(cons, chans[k], ed->to_input);
                } else if (prod_here) {
                    if (!j->tm->dp || cons_tm < 0 || cons_tm >= pl->d->npeers)
                        err = rv_err_new(RV_ERR_INTERNAL, "no data plane to reach task manager %d", cons_tm);
                    else
                        err = rv_dataplane_open_out(j->tm->dp, key, pl->d->peer_urls[cons_tm], schema,
                                                    (uint32_t)js->channel_capacity, &chans[k]);
                } else if (cons_here) {
                    rv_channel *in = rv_channel_new((uint32_t)js->channel_capacity, rv_subtask_doorbell(cons));
                    keep_channel(j, in);
                    rv_subtask_add_input(cons, in, ed->to_input);
                    if (!j->tm->dp)
                        err = rv_err_new(RV_ERR_INTERNAL, "no data plane to receive from other task managers");
                    else
                        err = rv_dataplane_open_in(j->tm->dp, key, in, schema, on_remote_fail, j->run);
                }
                if (err) {
                    free(chans);
                    return err;
                }
            }
            if (prod_here) {
                rv_output *o = NULL;
                rv_err *err = rv_output_new(ed->part, chans, count, js, consumer_node, schema, rv_job_run_cancel_flag(j->run), &o);
                if (err) {
                    free(chans);
                    return err;
                }
                rv_subtask_add_output(j->subtasks[subtask_base(g, ed->from_task) + p], ed->from_node, ed->from_port, o);
            }
            free(chans);
        }
    }
    return NULL;
}

/* Slots used here: slot i holds subtask i of every task (slot sharing). */
static int local_slots(const placement *pl)
{
    int n = 0;
    int maxp = rv_job_graph_slots(pl->g);
    for (int i = 0; i < maxp; i++) {
        bool here = false;
        for (int t = 0; t < pl->g->ntasks && !here; t++)
            here = i < pl->g->tasks[t].parallelism && where(pl, t, i) == pl->d->my_index;
        n += here;
    }
    return n;
}

rv_err *rv_tm_deploy(rv_tm *tm, const rv_deployment *d, rv_tm_job_done_fn done, void *arg)
{
    rv_job_graph *g = d->g;
    placement pl = {.d = d, .g = g};
    int need = local_slots(&pl);
    pthread_mutex_lock(&tm->mu);
    if (tm->slots - tm->used < need) {
        int freeslots = tm->slots - tm->used;
        pthread_mutex_unlock(&tm->mu);
        return rv_err_retry(RV_ERR_AGAIN, "job needs %d slots here, task manager %s has %d free", need, tm->name, freeslots);
    }
    tm->used += need;
    pthread_mutex_unlock(&tm->mu);

    tm_job *j = rv_xcalloc(1, sizeof(*j));
    j->id = rv_xstrdup(d->job_id);
    j->key = rv_hash_bytes(d->job_id, strlen(d->job_id), 0);
    j->g = g;
    j->tm = tm;
    j->slots = need;
    j->done = done;
    j->done_arg = arg;
    j->worst = RV_TASK_FINISHED;
    j->run = rv_job_run_new(d->job_id, g, tm->name, tm->state_dir);
    j->nsubtasks = rv_job_graph_nsubtasks(g);
    j->subtasks = rv_xcalloc((size_t)j->nsubtasks, sizeof(rv_subtask *));
    rv_err *err = rv_job_run_set_checkpointing(j->run, d->chk_root, d->chk_job, g->spec->checkpointing.mode,
                                               d->restore_dir, d->ack, d->ack_arg);
    if (err) {
        j->g = NULL; /* stays with the caller */
        job_free(j);
        pthread_mutex_lock(&tm->mu);
        tm->used -= need;
        pthread_mutex_unlock(&tm->mu);
        return err;
    }
    int local = 0;
    for (int t = 0, k = 0; t < g->ntasks; t++)
        for (int i = 0; i < g->tasks[t].parallelism; i++, k++)
            if (where(&pl, t, i) == d->my_index) {
                j->subtasks[k] = rv_subtask_new(j->run, t, i);
                local++;
            }
    err = wire(j, &pl);
    if (err) {
        j->g = NULL; /* stays with the caller */
        job_free(j);
        pthread_mutex_lock(&tm->mu);
        tm->used -= need;
        pthread_mutex_unlock(&tm->mu);
        return rv_err_wrap(err, "deploying job %s", d->job_id);
    }
    pthread_mutex_lock(&tm->mu);
    j->running = local;
    j->next = tm->jobs;
    tm->jobs = j;
    pthread_mutex_unlock(&tm->mu);
    RV_LOG_INFO(tm->name, "deploying job %s: %d of %d subtasks here, %d channels", d->job_id, local, j->nsubtasks, j->nchans);
    if (local == 0) {
        if (done)
            done(arg, j->id, RV_TASK_FINISHED, NULL);
        return NULL;
    }
    for (int k = 0; k < j->nsubtasks; k++) {
        if (!j->subtasks[k])
            continue;
        if ((err = rv_subtask_start(j->subtasks[k], on_subtask_done, j))) {
            /* Unstarted subtasks never report: account for them here. */
            rv_job_run_fail(j->run, rv_err_wrap(err, "deploying job %s", d->job_id));
            for (int m = k; m < j->nsubtasks; m++)
                if (j->subtasks[m])
                    on_subtask_done(j, j->subtasks[m], RV_TASK_FAILED, rv_job_run_error(j->run));
            return NULL;
        }
    }
    return NULL;
}

static tm_job *find(rv_tm *tm, const char *id, tm_job ***link)
{
    tm_job **pp = &tm->jobs;
    for (; *pp; pp = &(*pp)->next)
        if (strcmp((*pp)->id, id) == 0) {
            if (link)
                *link = pp;
            return *pp;
        }
    return NULL;
}

/* The run of job_id with tm->mu held (the caller unlocks), or NULL. */
static rv_job_run *lock_run(rv_tm *tm, const char *job_id)
{
    pthread_mutex_lock(&tm->mu);
    tm_job *j = find(tm, job_id, NULL);
    return j ? j->run : NULL;
}

void rv_tm_trigger_checkpoint(rv_tm *tm, const char *job_id, uint64_t id, const char *dir, bool savepoint)
{
    rv_job_run *run = lock_run(tm, job_id);
    if (run)
        rv_job_run_trigger(run, id, dir, savepoint);
    pthread_mutex_unlock(&tm->mu);
}

void rv_tm_checkpoint_complete(rv_tm *tm, const char *job_id, uint64_t id)
{
    rv_job_run *run = lock_run(tm, job_id);
    if (run)
        rv_job_run_complete(run, id);
    pthread_mutex_unlock(&tm->mu);
}

void rv_tm_drain(rv_tm *tm, const char *job_id)
{
    rv_job_run *run = lock_run(tm, job_id);
    if (run)
        rv_job_run_drain(run);
    pthread_mutex_unlock(&tm->mu);
}

void rv_tm_cancel(rv_tm *tm, const char *job_id)
{
    rv_job_run *run = lock_run(tm, job_id);
    if (run)
        rv_job_run_cancel(run);
    pthread_mutex_unlock(&tm->mu);
}

void rv_tm_cancel_all(rv_tm *tm)
{
    pthread_mutex_lock(&tm->mu);
    for (tm_job *j = tm->jobs; j; j = j->next)
        rv_job_run_cancel(j->run);
    pthread_mutex_unlock(&tm->mu);
}

void rv_tm_release(rv_tm *tm, const char *job_id)
{
    pthread_mutex_lock(&tm->mu);
    tm_job **link = NULL;
    tm_job *j = find(tm, job_id, &link);
    if (j) {
        *link = j->next;
        tm->used -= j->slots;
    }
    pthread_mutex_unlock(&tm->mu);
    if (j)
        job_free(j);
}

static void each_metrics(tm_job *j, rv_tm_metrics_fn fn, void *arg)
{
    for (int k = 0; k < j->nsubtasks; k++) {
        if (!j->subtasks[k])
            continue;
        rv_subtask_metrics m;
        rv_subtask_get_metrics(j->subtasks[k], &m);
        fn(arg, j->id, rv_subtask_task(j->subtasks[k]), rv_subtask_index(j->subtasks[k]), &m);
    }
}

bool rv_tm_each_metrics(rv_tm *tm, const char *job_id, rv_tm_metrics_fn fn, void *arg)
{
    pthread_mutex_lock(&tm->mu);
    tm_job *j = find(tm, job_id, NULL);
    if (j)
        each_metrics(j, fn, arg);
    pthread_mutex_unlock(&tm->mu);
    return j != NULL;
}

void rv_tm_each_job_metrics(rv_tm *tm, rv_tm_metrics_fn fn, void *arg)
{
    pthread_mutex_lock(&tm->mu);
    for (tm_job *j = tm->jobs; j; j = j->next)
        each_metrics(j, fn, arg);
    pthread_mutex_unlock(&tm->mu);
}

void rv_tm_free(rv_tm *tm)
{
    if (!tm)
        return;
    pthread_mutex_lock(&tm->mu);
    for (tm_job *j = tm->jobs; j; j = j->next) {
        j->done = NULL; /* whoever deployed it may be gone */
        rv_job_run_cancel(j->run);
    }
    tm_job *jobs = tm->jobs;
    tm->jobs = NULL;
    pthread_mutex_unlock(&tm->mu);
    while (jobs) {
        tm_job *next = jobs->next;
        job_free(jobs);
        jobs = next;
    }
    pthread_mutex_destroy(&tm->mu);
    if (tm->own_state_dir) {
        rv_err *err = rv_file_remove_tree(tm->state_dir);
        if (err) {
            RV_LOG_WARN(tm->name, "%s", rv_err_msg(err));
            rv_err_free(err);
        }
    }
    free(tm->state_dir);
    free(tm->name);
    free(tm);
}
