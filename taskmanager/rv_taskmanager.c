/* rv_taskmanager: slots, deployment and channel wiring of subtasks. */
#include "rv_taskmanager.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "rv_log.h"
#include "rv_mem.h"

typedef struct tm_job {
    char *id;
    rv_job_graph *g;
    rv_job_run *run;
    rv_subtask **subtasks;
    int nsubtasks;
    rv_channel **chans;
    int nchans;
    int slots;
    int running;         /* subtasks not yet ended; under tm->mu */
    rv_task_state worst; /* FINISHED < CANCELED < FAILED */
    rv_tm_job_done_fn done;
    void *done_arg;
    rv_tm *tm;
    struct tm_job *next;
} tm_job;

struct rv_tm {
    char *name;
    int slots, used;
    pthread_mutex_t mu;
    tm_job *jobs;
};

rv_tm *rv_tm_new(const char *name, int slots)
{
    rv_tm *tm = rv_xcalloc(1, sizeof(*tm));
    tm->name = rv_xstrdup(name);
    tm->slots = slots;
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
        rv_subtask_join(j->subtasks[i]);
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

static int subtask_slot(const rv_job_graph *g, int task, int index)
{
    int base = 0;
    for (int t = 0; t < task; t++)
        base += g->tasks[t].parallelism;
    return base + index;
}

static rv_err *wire(tm_job *j)
{
    rv_job_graph *g = j->g;
    const rv_jobspec *js = g->spec;
    for (int e = 0; e < g->nedges; e++) {
        const rv_task_edge *ed = &g->edges[e];
        int np = g->tasks[ed->from_task].parallelism, nc = g->tasks[ed->to_task].parallelism;
        rv_schema *schema = rv_jobspec_port_schema(js, (rv_input_ref){ed->from_node, ed->from_port});
        int consumer_node = g->tasks[ed->to_task].nodes[0];
        for (int p = 0; p < np; p++) {
            rv_subtask *prod = j->subtasks[subtask_slot(g, ed->from_task, p)];
            int first = 0, count = nc;
            if (ed->part == RV_PART_FORWARD) {
                first = p;
                count = 1;
            }
            rv_channel **chans = rv_xcalloc((size_t)count, sizeof(rv_channel *));
            for (int c = 0; c < count; c++) {
                rv_subtask *cons = j->subtasks[subtask_slot(g, ed->to_task, first + c)];
                rv_channel *ch = rv_channel_new((uint32_t)js->channel_capacity, rv_subtask_doorbell(cons));
                j->chans = rv_xrealloc(j->chans, (size_t)(j->nchans + 1) * sizeof(rv_channel *));
                j->chans[j->nchans++] = ch;
                rv_subtask_add_input(cons, ch, ed->to_input);
                chans[c] = ch;
            }
            rv_output *o = NULL;
            rv_err *err = rv_output_new(ed->part, chans, count, js, consumer_node, schema, rv_job_run_cancel_flag(j->run), &o);
            free(chans);
            if (err)
                return err;
            rv_subtask_add_output(prod, ed->from_node, ed->from_port, o);
        }
    }
    return NULL;
}

rv_err *rv_tm_deploy(rv_tm *tm, const char *job_id, rv_job_graph *g, rv_tm_job_done_fn done, void *arg)
{
    int need = rv_job_graph_slots(g);
    pthread_mutex_lock(&tm->mu);
    if (tm->slots - tm->used < need) {
        int freeslots = tm->slots - tm->used;
        pthread_mutex_unlock(&tm->mu);
        return rv_err_retry(RV_ERR_AGAIN, "job needs %d slots, task manager %s has %d free", need, tm->name, freeslots);
    }
    tm->used += need;
    pthread_mutex_unlock(&tm->mu);

    tm_job *j = rv_xcalloc(1, sizeof(*j));
    j->id = rv_xstrdup(job_id);
    j->g = g;
    j->tm = tm;
    j->slots = need;
    j->done = done;
    j->done_arg = arg;
    j->worst = RV_TASK_FINISHED;
    j->run = rv_job_run_new(job_id, g, tm->name);
    j->nsubtasks = rv_job_graph_nsubtasks(g);
    j->subtasks = rv_xcalloc((size_t)j->nsubtasks, sizeof(rv_subtask *));
    for (int t = 0, k = 0; t < g->ntasks; t++)
        for (int i = 0; i < g->tasks[t].parallelism; i++)
            j->subtasks[k++] = rv_subtask_new(j->run, t, i);
    rv_err *err = wire(j);
    if (err) {
        j->g = NULL; /* stays with the caller */
        job_free(j);
        pthread_mutex_lock(&tm->mu);
        tm->used -= need;
        pthread_mutex_unlock(&tm->mu);
        return err;
    }
    pthread_mutex_lock(&tm->mu);
    j->running = j->nsubtasks;
    j->next = tm->jobs;
    tm->jobs = j;
    pthread_mutex_unlock(&tm->mu);
    RV_LOG_INFO(tm->name, "deploying job %s: %d subtasks, %d channels", job_id, j->nsubtasks, j->nchans);
    for (int i = 0; i < j->nsubtasks; i++) {
        if ((err = rv_subtask_start(j->subtasks[i], on_subtask_done, j))) {
            /* Unstarted subtasks never report: account for them here. */
            rv_job_run_fail(j->run, rv_err_wrap(err, "deploying job %s", job_id));
            for (int k = i; k < j->nsubtasks; k++)
                on_subtask_done(j, j->subtasks[k], RV_TASK_FAILED, rv_job_run_error(j->run));
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

void rv_tm_cancel(rv_tm *tm, const char *job_id)
{
    pthread_mutex_lock(&tm->mu);
    tm_job *j = find(tm, job_id, NULL);
    if (j)
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

bool rv_tm_job_metrics(rv_tm *tm, const char *job_id, rv_subtask_metrics *sum)
{
    memset(sum, 0, sizeof(*sum));
    pthread_mutex_lock(&tm->mu);
    tm_job *j = find(tm, job_id, NULL);
    if (j) {
        for (int i = 0; i < j->nsubtasks; i++) {
            rv_subtask_metrics m;
            rv_subtask_get_metrics(j->subtasks[i], &m);
            if (j->g->spec->nodes[j->g->tasks[rv_subtask_task(j->subtasks[i])].nodes[0]].plugin->kind == RV_PLUGIN_SOURCE)
                sum->records_in += m.records_in;
            sum->records_out += m.records_out;
            sum->bad_records += m.bad_records;
            sum->busy_ns += m.busy_ns;
            sum->idle_ns += m.idle_ns;
            sum->backpressured_ns += m.backpressured_ns;
        }
    }
    pthread_mutex_unlock(&tm->mu);
    return j != NULL;
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
    free(tm->name);
    free(tm);
}
