/* rv_coordinator: the coordinator's event loop, job table and scheduling. */
#include "rv_coordinator.h"

#include <assert.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rv_channel.h"
#include "rv_graph.h"
#include "rv_log.h"
#include "rv_mem.h"

typedef enum { MSG_SUBMIT, MSG_CANCEL, MSG_JOB_DONE, MSG_STOP } msg_kind;

typedef struct msg {
    msg_kind kind;
    rv_jobspec *js;     /* SUBMIT */
    char *job_id;       /* CANCEL, JOB_DONE */
    rv_task_state state; /* JOB_DONE */
    char *error;        /* JOB_DONE */
    /* reply (SUBMIT, CANCEL): the caller waits on done */
    bool done;
    rv_err *err;
    char *reply_id;
    struct msg *next;
} msg;

typedef struct job {
    char *id;
    char *name;
    rv_job_state state;
    char *error;
    rv_tm *tm;
    bool has_final_metrics;
    rv_subtask_metrics final_metrics; /* kept when the job's subtasks are released */
    struct job *next;
} job;

struct rv_coord {
    pthread_t thread;
    pthread_mutex_t mu; /* mailbox, job states for readers, replies */
    pthread_cond_t cv;  /* mailbox has messages */
    pthread_cond_t changed; /* a reply is ready or a job state changed */
    msg *head, *tail;
    job *jobs;          /* written by the loop thread under mu */
    rv_tm **tms;
    int ntms;
    unsigned seq;
};

const char *rv_job_state_name(rv_job_state s)
{
    static const char *names[] = {"CREATED", "RUNNING", "CANCELING", "FINISHED", "FAILED", "CANCELED"};
    return (unsigned)s < 6 ? names[s] : "?";
}

static void post(rv_coord *c, msg *m)
{
    pthread_mutex_lock(&c->mu);
    m->next = NULL;
    if (c->tail)
        c->tail->next = m;
    else
        c->head = m;
    c->tail = m;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

/* Posts m and waits for the loop's reply. */
static void call(rv_coord *c, msg *m)
{
    post(c, m);
    pthread_mutex_lock(&c->mu);
    while (!m->done)
        pthread_cond_wait(&c->changed, &c->mu);
    pthread_mutex_unlock(&c->mu);
}

static void reply(rv_coord *c, msg *m)
{
    pthread_mutex_lock(&c->mu);
    m->done = true;
    pthread_cond_broadcast(&c->changed);
    pthread_mutex_unlock(&c->mu);
}

static job *find_job(rv_coord *c, const char *id)
{
    for (job *j = c->jobs; j; j = j->next)
        if (strcmp(j->id, id) == 0)
            return j;
    return NULL;
}

static void set_state(rv_coord *c, job *j, rv_job_state s, const char *error)
{
    pthread_mutex_lock(&c->mu);
    j->state = s;
    if (error && !j->error)
        j->error = rv_xstrdup(error);
    pthread_cond_broadcast(&c->changed);
    pthread_mutex_unlock(&c->mu);
    RV_LOG_INFO("coordinator", "job %s (%s) is %s%s%s", j->id, j->name, rv_job_state_name(s), error ? ": " : "", error ? error : "");
}

static void on_tm_job_done(void *arg, const char *job_id, rv_task_state state, const char *error)
{
    rv_coord *c = arg;
    msg *m = rv_xcalloc(1, sizeof(*m));
    m->kind = MSG_JOB_DONE;
    m->job_id = rv_xstrdup(job_id);
    m->state = state;
    m->error = error ? rv_xstrdup(error) : NULL;
    post(c, m);
}

static void handle_submit(rv_coord *c, msg *m)
{
    rv_jobspec *js = m->js;
    char id[64];
    snprintf(id, sizeof(id), "%08x%04x", (unsigned)time(NULL), ++c->seq & 0xffff);
    job *j = rv_xcalloc(1, sizeof(*j));
    j->id = rv_xstrdup(id);
    j->name = rv_xstrdup(js->name);
    j->state = RV_JOB_CREATED;
    rv_job_graph *g = rv_job_graph_build(js);
    /* Slot sharing: a job of parallelism N needs N slots on one task
     * manager in the embedded cluster; the cluster spreads them. */
    rv_tm *tm = NULL;
    int need = rv_job_graph_slots(g);
    pthread_mutex_lock(&c->mu);
    for (int i = 0; i < c->ntms && !tm; i++)
        if (rv_tm_free_slots(c->tms[i]) >= need)
            tm = c->tms[i];
    pthread_mutex_unlock(&c->mu);
    if (!tm) {
        m->err = rv_err_new(RV_ERR_AGAIN, "job '%s' needs %d free slots; no task manager has them", js->name, need);
        rv_job_graph_free(g);
        free(j->id);
        free(j->name);
        free(j);
        return;
    }
    pthread_mutex_lock(&c->mu);
    j->next = c->jobs;
    c->jobs = j;
    pthread_mutex_unlock(&c->mu);
    j->tm = tm;
    rv_err *err = rv_tm_deploy(tm, id, g, on_tm_job_done, c);
    if (err) {
        rv_job_graph_free(g);
        set_state(c, j, RV_JOB_FAILED, rv_err_msg(err));
        m->err = err;
        return;
    }
    set_state(c, j, RV_JOB_RUNNING, NULL);
    m->reply_id = rv_xstrdup(id);
}

static void *loop(void *arg)
{
    rv_coord *c = arg;
    for (;;) {
        pthread_mutex_lock(&c->mu);
        while (!c->head)
            pthread_cond_wait(&c->cv, &c->mu);
        msg *m = c->head;
        c->head = m->next;
        if (!c->head)
            c->tail = NULL;
        pthread_mutex_unlock(&c->mu);
        switch (m->kind) {
        case MSG_SUBMIT:
            handle_submit(c, m);
            reply(c, m);
            break;
        case MSG_CANCEL: {
            job *j = find_job(c, m->job_id);
            if (!j)
                m->err = rv_err_new(RV_ERR_NOT_FOUND, "no job with id %s", m->job_id);
            else if (!rv_job_state_final(j->state)) {
                set_state(c, j, RV_JOB_CANCELING, NULL);
                rv_tm_cancel(j->tm, j->id);
            }
            reply(c, m);
            break;
        }
        case MSG_JOB_DONE: {
            job *j = find_job(c, m->job_id);
            if (j) {
                rv_subtask_metrics fm;
                bool have = rv_tm_job_metrics(j->tm, j->id, &fm);
                pthread_mutex_lock(&c->mu);
                j->final_metrics = fm;
                j->has_final_metrics = have;
                pthread_mutex_unlock(&c->mu);
                rv_tm_release(j->tm, j->id);
                rv_job_state s = m->state == RV_TASK_FINISHED ? RV_JOB_FINISHED : m->state == RV_TASK_FAILED ? RV_JOB_FAILED : RV_JOB_CANCELED;
                set_state(c, j, s, m->error);
            }
            free(m->job_id);
            free(m->error);
            free(m);
            break;
        }
        case MSG_STOP: {
            /* rv_coord_free waited for every job to be final, so at most
             * stray reports are left: drop them. */
            pthread_mutex_lock(&c->mu);
            msg *rest = c->head;
            c->head = c->tail = NULL;
            pthread_mutex_unlock(&c->mu);
            while (rest) {
                msg *next = rest->next;
                assert(rest->kind == MSG_JOB_DONE);
                free(rest->job_id);
                free(rest->error);
                free(rest);
                rest = next;
            }
            reply(c, m);
            return NULL;
        }
        }
    }
}

rv_err *rv_coord_new(rv_coord **out)
{
    rv_coord *c = rv_xcalloc(1, sizeof(*c));
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    pthread_cond_init(&c->changed, NULL);
    int rc = pthread_create(&c->thread, NULL, loop, c);
    if (rc != 0) {
        pthread_cond_destroy(&c->cv);
        pthread_cond_destroy(&c->changed);
        pthread_mutex_destroy(&c->mu);
        free(c);
        return rv_err_new(RV_ERR_INTERNAL, "cannot start the coordinator thread: %s", strerror(rc));
    }
    *out = c;
    return NULL;
}

void rv_coord_add_tm(rv_coord *c, rv_tm *tm)
{
    pthread_mutex_lock(&c->mu);
    c->tms = rv_xrealloc(c->tms, (size_t)(c->ntms + 1) * sizeof(rv_tm *));
    c->tms[c->ntms++] = tm;
    pthread_mutex_unlock(&c->mu);
    RV_LOG_INFO("coordinator", "task manager %s registered with %d slots", rv_tm_name(tm), rv_tm_slots(tm));
}

rv_err *rv_coord_submit(rv_coord *c, rv_jobspec *js, char **job_id)
{
    msg m = {.kind = MSG_SUBMIT, .js = js};
    call(c, &m);
    if (m.err)
        return m.err;
    *job_id = m.reply_id;
    return NULL;
}

rv_err *rv_coord_cancel(rv_coord *c, const char *job_id)
{
    msg m = {.kind = MSG_CANCEL, .job_id = (char *)job_id};
    call(c, &m);
    return m.err;
}

rv_job_state rv_coord_wait(rv_coord *c, const char *job_id, int64_t timeout_ms, char **error)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    if (timeout_ms >= 0) {
        dl.tv_sec += timeout_ms / 1000;
        dl.tv_nsec += (timeout_ms % 1000) * 1000000;
        if (dl.tv_nsec >= 1000000000) {
            dl.tv_sec++;
            dl.tv_nsec -= 1000000000;
        }
    }
    pthread_mutex_lock(&c->mu);
    rv_job_state s = RV_JOB_FAILED;
    for (;;) {
        job *j = find_job(c, job_id);
        if (!j)
            break;
        s = j->state;
        if (rv_job_state_final(s)) {
            if (error && j->error)
                *error = rv_xstrdup(j->error);
            break;
        }
        if (timeout_ms < 0)
            pthread_cond_wait(&c->changed, &c->mu);
        else if (pthread_cond_timedwait(&c->changed, &c->mu, &dl) != 0)
            break;
    }
    pthread_mutex_unlock(&c->mu);
    return s;
}

bool rv_coord_job_metrics(rv_coord *c, const char *job_id, rv_subtask_metrics *m)
{
    pthread_mutex_lock(&c->mu);
    job *j = find_job(c, job_id);
    if (j && j->has_final_metrics) {
        *m = j->final_metrics;
        pthread_mutex_unlock(&c->mu);
        return true;
    }
    rv_tm *tm = j && !rv_job_state_final(j->state) ? j->tm : NULL;
    pthread_mutex_unlock(&c->mu);
    return tm && rv_tm_job_metrics(tm, job_id, m);
}

void rv_coord_free(rv_coord *c)
{
    if (!c)
        return;
    /* Cancel what still runs and wait for it. */
    pthread_mutex_lock(&c->mu);
    int n = 0;
    for (job *j = c->jobs; j; j = j->next)
        n++;
    char **ids = rv_xcalloc((size_t)n + 1, sizeof(char *));
    n = 0;
    for (job *j = c->jobs; j; j = j->next)
        if (!rv_job_state_final(j->state))
            ids[n++] = rv_xstrdup(j->id);
    pthread_mutex_unlock(&c->mu);
    for (int i = 0; i < n; i++) {
        rv_err_free(rv_coord_cancel(c, ids[i]));
        rv_coord_wait(c, ids[i], -1, NULL);
        free(ids[i]);
    }
    free(ids);
    msg m = {.kind = MSG_STOP};
    call(c, &m);
    pthread_join(c->thread, NULL);
    while (c->jobs) {
        job *j = c->jobs;
        c->jobs = j->next;
        free(j->id);
        free(j->name);
        free(j->error);
        free(j);
    }
    free(c->tms);
    pthread_cond_destroy(&c->cv);
    pthread_cond_destroy(&c->changed);
    pthread_mutex_destroy(&c->mu);
    free(c);
}
