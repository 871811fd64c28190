/* rv_tm_client: registration, heartbeats and job control of a task
 * manager, over the control plane. */
#include "rv_tm_client.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rv_ctl.h"
#include "rv_dataplane.h"
#include "rv_jobspec.h"
#include "rv_log.h"
#include "rv_mem.h"
#include "rv_taskmanager.h"
#include "rv_time.h"

#define UNREGISTERED_RETRY_MS 200

const rv_cfg_key rv_tm_config_keys[] = {
    {"coordinator", RV_CFG_STRING, "tcp://127.0.0.1:6123", offsetof(rv_tm_config, coordinator), "Control address of the coordinator.", NULL, 0, 0, 0},
    {"slots", RV_CFG_INT, "2", offsetof(rv_tm_config, slots), "Slots offered: one slot runs one parallel instance of every task of a job.", NULL, 0, 1, 4096},
    {"data_listen", RV_CFG_STRING, "tcp://127.0.0.1:0", offsetof(rv_tm_config, data_listen), "Data-plane address other task managers connect to (port 0 = any free port). Use an address the other machines can reach.", NULL, 0, 0, 0},
    {"name", RV_CFG_STRING, NULL, offsetof(rv_tm_config, name), "Unique name of this task manager (default tm-<host>-<pid>).", NULL, 0, 0, 0},
    {"state_dir", RV_CFG_STRING, NULL, offsetof(rv_tm_config, state_dir), "Directory for keyed state that spills to RocksDB, one subdirectory per job and operator instance (default: a private directory under $TMPDIR, removed at exit). Also --state-dir.", NULL, 0, 0, 0},
};
const size_t rv_tm_config_nkeys = sizeof(rv_tm_config_keys) / sizeof(rv_tm_config_keys[0]);

typedef struct done_job {
    char *id;
    Rivulet__JobOnTmDone__State state;
    char *error;
    struct done_job *next;
} done_job;

struct rv_tm_client {
    char *name;
    char *coordinator; /* the URL dialed */
    rv_dataplane *dp;
    rv_tm *tm;
    rv_ctl *ctl;       /* registration (and fallback) connection */
    rv_ctl *session;   /* the one-to-one session after registering; under send_mu */
    rv_ctl *stale_session; /* a session the coordinator dropped, for the heartbeat thread to close; under send_mu */
    bool resend_done;  /* registered anew: report the unreleased ended jobs again; under mu */
    char *session_url; /* the session the latest acknowledgement names; under mu */
    unsigned session_gen; /* bumped when a session is replaced; under mu */
    pthread_mutex_t send_mu; /* held while sending; guards ctl_closed and session */
    bool ctl_closed;
    pthread_t hb_thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stopping;
    bool registered;
    bool lost;              /* the coordinator connection went away */
    int64_t hb_interval_ms;
    done_job *done;         /* jobs ended here, not yet released */
    uint32_t gone[16];      /* connections reported closed (ring) */
    unsigned ngone;
};

const char *rv_tm_client_name(const rv_tm_client *c) { return c->name; }

/* The runtime knows a job's attempt by its run id "<job id>.<attempt>":
 * a task manager may still hold an ending attempt when the next starts. */
static char *run_id(const char *job_id, uint32_t attempt) { return rv_xasprintf("%s.%u", job_id, (unsigned)attempt); }

/* Splits a run id into a new job id string and the attempt. */
static char *split_run_id(const char *run, uint32_t *attempt)
{
    const char *dot = strrchr(run, '.');
    *attempt = dot ? (uint32_t)strtoul(dot + 1, NULL, 10) : 0;
    return dot ? rv_xstrndup(run, (size_t)(dot - run)) : rv_xstrdup(run);
}

/* Any thread (subtask threads report job ends). Over the session once
 * there is one: it never drops a message. */
static void send_on(rv_tm_client *c, rv_envelope *env, bool registration)
{
    pthread_mutex_lock(&c->send_mu);
    rv_ctl *to = c->session && !registration ? c->session : c->ctl;
    rv_err *err = c->ctl_closed ? NULL : rv_ctl_send(to, 0, env);
    pthread_mutex_unlock(&c->send_mu);
    if (err) {
        RV_LOG_DEBUG(c->name, "to the coordinator: %s", rv_err_msg(err));
        rv_err_free(err);
    }
}

static void send_env(rv_tm_client *c, rv_envelope *env) { send_on(c, env, false); }

/* ---- metrics ---- */

typedef struct metrics_acc {
    Rivulet__SubtaskMetrics **items;
    size_t n, cap;
    char **ids;
} metrics_acc;

static void add_metrics(void *arg, const char *job_id, int task, int subtask, const rv_subtask_metrics *m)
{
    metrics_acc *a = arg;
    rv_xgrow((void **)&a->items, &a->cap, a->n + 1, sizeof(*a->items));
    Rivulet__SubtaskMetrics *x = rv_xcalloc(1, sizeof(*x));
    rivulet__subtask_metrics__init(x);
    x->job_id = split_run_id(job_id, &x->attempt);
    x->task = (uint32_t)task;
    x->subtask = (uint32_t)subtask;
    x->records_in = m->records_in;
    x->records_out = m->records_out;
    x->bad_records = m->bad_records;
    x->watermark = m->watermark;
    a->items[a->n++] = x;
}

static void free_metrics(metrics_acc *a)
{
    for (size_t i = 0; i < a->n; i++) {
        free(a->items[i]->job_id);
        free(a->items[i]);
    }
    free(a->items);
}

/* ---- runtime -> coordinator ---- */

/* Reports the end of a job run's part here (metrics may be NULL). */
static void send_job_done(rv_tm_client *c, const char *run, Rivulet__JobOnTmDone__State state, const char *error,
                          const metrics_acc *metrics)
{
    Rivulet__JobOnTmDone d = RIVULET__JOB_ON_TM_DONE__INIT;
    d.job_id = split_run_id(run, &d.attempt);
    d.state = state;
    d.error = (char *)(error ? error : "");
    if (metrics) {
        d.n_metrics = metrics->n;
        d.metrics = metrics->items;
    }
    rv_envelope env;
    rv_proto_init(&env);
    env.body_case = RIVULET__ENVELOPE__BODY_JOB_DONE;
    env.job_done = &d;
    send_env(c, &env);
    free(d.job_id);
}

static void on_checkpoint_ack(void *arg, const char *run, uint64_t id, int task, int subtask,
                              Rivulet__StateHandle **states, size_t nstates, const char *error, uint64_t sync_us,
                              uint64_t async_us)
{
    rv_tm_client *c = arg;
    Rivulet__CheckpointAck a = RIVULET__CHECKPOINT_ACK__INIT;
    a.job_id = split_run_id(run, &a.attempt);
    a.id = id;
    a.task = (uint32_t)task;
    a.subtask = (uint32_t)subtask;
    a.states = states;
    a.n_states = nstates;
    a.error = (char *)(error ? error : "");
    a.sync_us = sync_us;
    a.async_us = async_us;
    rv_envelope env;
    rv_proto_init(&env);
    env.body_case = RIVULET__ENVELOPE__BODY_CHECKPOINT_ACK;
    env.checkpoint_ack = &a;
    send_env(c, &env);
    free(a.job_id);
}

static void on_job_done(void *arg, const char *job_id, rv_task_state state, const char *error)
{
    rv_tm_client *c = arg;
    metrics_acc acc = {0};
    rv_tm_each_metrics(c->tm, job_id, add_metrics, &acc);
    send_job_done(c, job_id,
                  state == RV_TASK_FINISHED ? RIVULET__JOB_ON_TM_DONE__STATE__FINISHED
                  : state == RV_TASK_FAILED ? RIVULET__JOB_ON_TM_DONE__STATE__FAILED
                                            : RIVULET__JOB_ON_TM_DONE__STATE__CANCELED,
                  error, &acc);
    free_metrics(&acc);
    done_job *dj = rv_xcalloc(1, sizeof(*dj));
    dj->id = rv_xstrdup(job_id);
    dj->state = state == RV_TASK_FINISHED ? RIVULET__JOB_ON_TM_DONE__STATE__FINISHED
                : state == RV_TASK_FAILED ? RIVULET__JOB_ON_TM_DONE__STATE__FAILED
                                          : RIVULET__JOB_ON_TM_DONE__STATE__CANCELED;
    dj->error = error ? rv_xstrdup(error) : NULL;
    pthread_mutex_lock(&c->mu);
    dj->next = c->done;
    c->done = dj;
    pthread_cond_signal(&c->cv); /* the heartbeat thread releases it if the coordinator is gone */
    pthread_mutex_unlock(&c->mu);
}

static void release(rv_tm_client *c, const char *job_id)
{
    pthread_mutex_lock(&c->mu);
    done_job **pp = &c->done;
    while (*pp && strcmp((*pp)->id, job_id) != 0)
        pp = &(*pp)->next;
    done_job *dj = *pp;
    if (dj)
        *pp = dj->next;
    pthread_mutex_unlock(&c->mu);
    if (dj) {
        free(dj->id);
        free(dj->error);
        free(dj);
    }
    rv_tm_release(c->tm, job_id);
}

/* ---- coordinator -> runtime ---- */

static void report_failure(rv_tm_client *c, const char *job_id, rv_err *err)
{
    RV_LOG_WARN(c->name, "job %s: %s", job_id, rv_err_msg(err));
    send_job_done(c, job_id, RIVULET__JOB_ON_TM_DONE__STATE__FAILED, rv_err_msg(err), NULL);
    rv_err_free(err);
}

static void handle_deploy(rv_tm_client *c, const Rivulet__DeployJob *d)
{
    rv_jobspec *js = NULL;
    rv_err *err = rv_jobspec_parse(d->job_yaml, strlen(d->job_yaml), d->job_file, &js);
    if (!err && d->parallelism > 0)
        err = rv_jobspec_set_parallelism(js, (int)d->parallelism);
    if (err) {
        rv_jobspec_unref(js);
        char *run = run_id(d->job_id, d->attempt);
        report_failure(c, run, err);
        free(run);
        return;
    }
    rv_job_graph *g = rv_job_graph_build(js);
    rv_jobspec_unref(js);
    int n = rv_job_graph_nsubtasks(g);
    int *where = rv_xcalloc((size_t)n, sizeof(int));
    for (int k = 0; k < n; k++)
        where[k] = -1;
    for (size_t i = 0; i < d->n_placements; i++) {
        const Rivulet__Placement *p = d->placements[i];
        if ((int)p->task >= g->ntasks || (int)p->subtask >= g->tasks[p->task].parallelism)
            continue;
        int base = 0;
        for (uint32_t t = 0; t < p->task; t++)
            base += g->tasks[t].parallelism;
        where[base + (int)p->subtask] = (int)p->tm_index;
    }
    for (int k = 0; k < n && !err; k++)
        if (where[k] < 0)
            err = rv_err_new(RV_ERR_CORRUPT, "the deployment places no task manager for subtask %d", k);
    const char **urls = rv_xcalloc(d->n_tms + 1, sizeof(char *));
    for (size_t i = 0; i < d->n_tms; i++)
        urls[i] = d->tms[i]->data_url;
    char *run = run_id(d->job_id, d->attempt);
    if (!err) {
        rv_deployment dep = {.job_id = run, .g = g, .tm_of_subtask = where, .my_index = (int)d->your_index,
                             .peer_urls = urls, .npeers = (int)d->n_tms, .chk_root = d->checkpoint_root,
                             .chk_job = d->job_id, .restore_dir = d->restore_dir, .ack = on_checkpoint_ack, .ack_arg = c};
        err = rv_tm_deploy(c->tm, &dep, on_job_done, c);
    }
    free(urls);
    free(where);
    if (err) {
        rv_job_graph_free(g);
        report_failure(c, run, err);
    }
    free(run);
}

static void on_msg(void *arg, rv_envelope *env, uint32_t pipe)
{
    rv_tm_client *c = arg;
    switch (env->body_case) {
    case RIVULET__ENVELOPE__BODY_REGISTER_ACK:
        pthread_mutex_lock(&c->mu);
        for (unsigned i = 0; i < 16 && i < c->ngone; i++)
            if (c->gone[i] == pipe) {
                /* Queued on a connection that has since closed. */
                pthread_mutex_unlock(&c->mu);
                rv_proto_free(env);
                return;
            }
        if (!c->registered)
            c->resend_done = true;
        c->registered = true;
        c->lost = false;
        c->hb_interval_ms = env->register_ack->heartbeat_interval_ms;
        if (!c->session_url || strcmp(c->session_url, env->register_ack->session_url) != 0) {
            free(c->session_url);
            c->session_url = rv_xstrdup(env->register_ack->session_url);
        }
        pthread_cond_signal(&c->cv); /* the heartbeat thread dials the session */
        pthread_mutex_unlock(&c->mu);
        RV_LOG_INFO(c->name, "registered with the coordinator at %s", rv_ctl_url(c->ctl));
        break;
    case RIVULET__ENVELOPE__BODY_DEPLOY_JOB: handle_deploy(c, env->deploy_job); break;
    case RIVULET__ENVELOPE__BODY_CANCEL_JOB: {
        char *run = run_id(env->cancel_job->job_id, env->cancel_job->attempt);
        rv_tm_cancel(c->tm, run);
        free(run);
        break;
    }
    case RIVULET__ENVELOPE__BODY_RELEASE_JOB: {
        char *run = run_id(env->release_job->job_id, env->release_job->attempt);
        release(c, run);
        free(run);
        break;
    }
    case RIVULET__ENVELOPE__BODY_TRIGGER_CHECKPOINT: {
        const Rivulet__TriggerCheckpoint *t = env->trigger_checkpoint;
        char *run = run_id(t->job_id, t->attempt);
        rv_tm_trigger_checkpoint(c->tm, run, t->id, t->dir, t->savepoint);
        free(run);
        break;
    }
    case RIVULET__ENVELOPE__BODY_DRAIN_JOB: {
        char *run = run_id(env->drain_job->job_id, env->drain_job->attempt);
        rv_tm_drain(c->tm, run);
        free(run);
        break;
    }
    case RIVULET__ENVELOPE__BODY_CHECKPOINT_COMPLETE: {
        const Rivulet__CheckpointComplete *t = env->checkpoint_complete;
        char *run = run_id(t->job_id, t->attempt);
        rv_tm_checkpoint_complete(c->tm, run, t->id);
        free(run);
        break;
    }
    default:
        RV_LOG_WARN(c->name, "unexpected %s from the coordinator; ignored", rv_proto_body_name(env));
        break;
    }
    rv_proto_free(env);
}

/* The coordinator is gone (or dropped us): cancel local jobs, register
 * again. Under nothing. */
static void coordinator_lost(rv_tm_client *c, uint32_t pipe)
{
    /* Nothing more goes to the old session: until the next one, messages
     * (job ends) go over the registration connection. */
    pthread_mutex_lock(&c->send_mu);
    if (c->session) {
        rv_ctl *old = c->stale_session;
        c->stale_session = c->session;
        c->session = NULL;
        if (old)
            RV_LOG_DEBUG(c->name, "two dropped sessions at once");
    }
    pthread_mutex_unlock(&c->send_mu);
    pthread_mutex_lock(&c->mu);
    bool was = c->registered, stopping = c->stopping;
    free(c->session_url); /* the heartbeat thread closes the session */
    c->session_url = NULL;
    c->gone[c->ngone++ % 16] = pipe;
    c->registered = false;
    c->lost = true;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    if (was && !stopping) {
        RV_LOG_WARN(c->name, "lost the coordinator; canceling local jobs and reconnecting");
        rv_tm_cancel_all(c->tm);
    }
}

static void on_pipe(void *arg, uint32_t pipe, bool added)
{
    if (!added)
        coordinator_lost(arg, pipe);
}

typedef struct session_ref {
    rv_tm_client *c;
    unsigned gen;
} session_ref;

static void on_session_msg(void *arg, rv_envelope *env, uint32_t pipe)
{
    on_msg(((session_ref *)arg)->c, env, pipe);
}

static void on_session_pipe(void *arg, uint32_t pipe, bool added)
{
    session_ref *r = arg;
    if (added)
        return;
    pthread_mutex_lock(&r->c->mu);
    bool current = r->gen == r->c->session_gen;
    pthread_mutex_unlock(&r->c->mu);
    if (current)
        coordinator_lost(r->c, 0);
}

/* The session URL as this task manager can reach it: a wildcard host is
 * replaced by the host it dialed the coordinator at. */
static char *session_dial_url(const char *coordinator, const char *session)
{
    const char *wild[] = {"tcp://0.0.0.0:", "tcp://*:", "tcp://[::]:"};
    for (size_t i = 0; i < sizeof(wild) / sizeof(wild[0]); i++) {
        size_t n = strlen(wild[i]);
        const char *colon = strrchr(coordinator, ':');
        if (strncmp(session, wild[i], n) == 0 && strncmp(coordinator, "tcp://", 6) == 0 && colon)
            return rv_xasprintf("%.*s:%s", (int)(colon - coordinator), coordinator, session + n);
    }
    return rv_xstrdup(session);
}

/* Heartbeat thread: switches to the session the latest acknowledgement
 * names (closing the previous one). */
static void update_session(rv_tm_client *c, session_ref **ref)
{
    pthread_mutex_lock(&c->send_mu);
    rv_ctl *stale = c->stale_session;
    c->stale_session = NULL;
    pthread_mutex_unlock(&c->send_mu);
    if (stale) {
        pthread_mutex_lock(&c->mu);
        c->session_gen++; /* its pipe events are stale */
        pthread_mutex_unlock(&c->mu);
        rv_ctl_close(stale);
        free(*ref);
        *ref = NULL;
    }
    pthread_mutex_lock(&c->mu);
    char *want = c->session_url && c->session_url[0] ? rv_xstrdup(c->session_url) : NULL;
    pthread_mutex_unlock(&c->mu);
    pthread_mutex_lock(&c->send_mu);
    const char *have = c->session ? rv_ctl_url(c->session) : NULL;
    char *dial = want ? session_dial_url(c->coordinator, want) : NULL;
    bool same = (!dial && !have) || (dial && have && strcmp(dial, have) == 0);
    rv_ctl *old = NULL;
    if (!same) {
        old = c->session;
        c->session = NULL;
    }
    pthread_mutex_unlock(&c->send_mu);
    if (same) {
        free(dial);
        free(want);
        return;
    }
    pthread_mutex_lock(&c->mu);
    c->session_gen++; /* the old one's pipe events are stale now */
    unsigned gen = c->session_gen;
    pthread_mutex_unlock(&c->mu);
    rv_ctl_close(old);
    free(*ref);
    *ref = NULL;
    if (dial) {
        session_ref *r = rv_xcalloc(1, sizeof(*r));
        *r = (session_ref){.c = c, .gen = gen};
        rv_ctl *s = NULL;
        rv_ctl_handlers h = {.on_msg = on_session_msg, .on_pipe = on_session_pipe, .arg = r, .tag = c->name};
        rv_err *err = rv_ctl_dial(dial, 0, &h, &s);
        if (err) {
            RV_LOG_WARN(c->name, "cannot dial the coordinator's session %s: %s", dial, rv_err_msg(err));
            rv_err_free(err);
            free(r);
        } else {
            *ref = r;
            pthread_mutex_lock(&c->send_mu);
            c->session = s;
            pthread_mutex_unlock(&c->send_mu);
        }
    }
    free(dial);
    free(want);
}

/* ---- heartbeat thread ---- */

static void send_register(rv_tm_client *c)
{
    Rivulet__RegisterTm r = RIVULET__REGISTER_TM__INIT;
    r.name = c->name;
    r.slots = (uint32_t)rv_tm_slots(c->tm);
    r.data_url = (char *)rv_dataplane_url(c->dp);
    rv_envelope env;
    rv_proto_init(&env);
    env.body_case = RIVULET__ENVELOPE__BODY_REGISTER_TM;
    env.register_tm = &r;
    send_on(c, &env, true);
}

static void send_heartbeat(rv_tm_client *c)
{
    metrics_acc acc = {0};
    rv_tm_each_job_metrics(c->tm, add_metrics, &acc);
    Rivulet__Heartbeat hb = RIVULET__HEARTBEAT__INIT;
    hb.n_metrics = acc.n;
    hb.metrics = acc.items;
    rv_envelope env;
    rv_proto_init(&env);
    env.body_case = RIVULET__ENVELOPE__BODY_HEARTBEAT;
    env.heartbeat = &hb;
    send_env(c, &env);
    free_metrics(&acc);
}

/* Registered anew: the coordinator may have missed the ends of jobs that
 * ran here (the reports went to a connection that was gone). Reported
 * again, they are released (or completed, if it still waits for them). */
static void resend_job_ends(rv_tm_client *c)
{
    pthread_mutex_lock(&c->mu);
    size_t n = 0;
    for (done_job *dj = c->done; dj; dj = dj->next)
        n++;
    done_job *copy = rv_xcalloc(n + 1, sizeof(*copy));
    size_t k = 0;
    for (done_job *dj = c->done; dj; dj = dj->next, k++)
        copy[k] = (done_job){rv_xstrdup(dj->id), dj->state, dj->error ? rv_xstrdup(dj->error) : NULL, NULL};
    pthread_mutex_unlock(&c->mu);
    for (k = 0; k < n; k++) {
        send_job_done(c, copy[k].id, copy[k].state, copy[k].error, NULL);
        free(copy[k].id);
        free(copy[k].error);
    }
    free(copy);
}

static void *heartbeat_main(void *arg)
{
    rv_tm_client *c = arg;
    session_ref *ref = NULL;
    pthread_mutex_lock(&c->mu);
    while (!c->stopping) {
        bool registered = c->registered, lost = c->lost;
        int64_t interval = registered ? c->hb_interval_ms : UNREGISTERED_RETRY_MS;
        /* Jobs that ended while the coordinator was gone are released here:
         * nobody else will. */
        done_job *orphans = NULL;
        if (lost) {
            orphans = c->done;
            c->done = NULL;
        }
        bool resend = registered && c->resend_done;
        c->resend_done = false;
        pthread_mutex_unlock(&c->mu);
        update_session(c, &ref);
        if (resend)
            resend_job_ends(c);
        for (done_job *dj = orphans; dj;) {
            done_job *next = dj->next;
            rv_tm_release(c->tm, dj->id);
            free(dj->id);
            free(dj->error);
            free(dj);
            dj = next;
        }
        if (registered)
            send_heartbeat(c);
        else
            send_register(c);
        pthread_mutex_lock(&c->mu);
        struct timespec dl;
        clock_gettime(CLOCK_REALTIME, &dl);
        dl.tv_sec += interval / 1000;
        dl.tv_nsec += (long)(interval % 1000) * 1000000;
        if (dl.tv_nsec >= 1000000000) {
            dl.tv_sec++;
            dl.tv_nsec -= 1000000000;
        }
        if (!c->stopping)
            pthread_cond_timedwait(&c->cv, &c->mu, &dl);
    }
    free(c->session_url);
    c->session_url = NULL;
    pthread_mutex_unlock(&c->mu);
    update_session(c, &ref); /* closes it */
    return NULL;
}

rv_err *rv_tm_client_start(const rv_tm_config *cfg, rv_tm_client **out)
{
    rv_tm_client *c = rv_xcalloc(1, sizeof(*c));
    pthread_mutex_init(&c->mu, NULL);
    pthread_mutex_init(&c->send_mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    c->hb_interval_ms = 1000;
    if (cfg->name && cfg->name[0]) {
        c->name = rv_xstrdup(cfg->name);
    } else {
        char host[128] = "host";
        gethostname(host, sizeof(host) - 1);
        c->name = rv_xasprintf("tm-%s-%d", host, (int)getpid());
    }
    rv_err *err = NULL;
    /* Peers dial back the address we listen on: a wildcard cannot work. */
    if (strstr(cfg->data_listen, "://0.0.0.0:") || strstr(cfg->data_listen, "://*:") || strstr(cfg->data_listen, "://[::]:")) {
        err = rv_err_new(RV_ERR_INVALID, "data_listen %s: use an address the other task managers can reach, not a wildcard",
                         cfg->data_listen);
        goto fail;
    }
    err = rv_dataplane_new(cfg->data_listen, c->name, &c->dp);
    if (err)
        goto fail;
    c->tm = rv_tm_new(c->name, (int)cfg->slots, c->dp, cfg->state_dir);
    c->coordinator = rv_xstrdup(cfg->coordinator);
    rv_ctl_handlers h = {.on_msg = on_msg, .on_pipe = on_pipe, .arg = c, .tag = c->name};
    if ((err = rv_ctl_dial(cfg->coordinator, 0, &h, &c->ctl)))
        goto fail;
    int rc = pthread_create(&c->hb_thread, NULL, heartbeat_main, c);
    if (rc != 0) {
        err = rv_err_new(RV_ERR_INTERNAL, "cannot start the heartbeat thread: %s", strerror(rc));
        goto fail;
    }
    RV_LOG_INFO(c->name, "task manager with %d slots, data plane %s, coordinator %s", (int)cfg->slots,
                rv_dataplane_url(c->dp), cfg->coordinator);
    *out = c;
    return NULL;
fail:
    rv_ctl_close(c->ctl);
    rv_tm_free(c->tm);
    rv_dataplane_free(c->dp);
    free(c->name);
    free(c->coordinator);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->send_mu);
    pthread_mutex_destroy(&c->mu);
    free(c);
    return rv_err_wrap(err, "starting the task manager");
}

void rv_tm_client_stop(rv_tm_client *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    c->stopping = true;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->hb_thread, NULL);
    pthread_mutex_lock(&c->send_mu);
    c->ctl_closed = true; /* subtask threads send no more */
    pthread_mutex_unlock(&c->send_mu);
    rv_ctl_close(c->ctl); /* no more control messages */
    rv_tm_free(c->tm);    /* cancels and joins every job */
    rv_dataplane_stats ds;
    rv_dataplane_get_stats(c->dp, &ds);
    RV_LOG_INFO(c->name, "data plane: sent %llu frames (%llu bytes), received %llu frames (%llu bytes), rejected %llu",
                (unsigned long long)ds.frames_sent, (unsigned long long)ds.bytes_sent, (unsigned long long)ds.frames_received,
                (unsigned long long)ds.bytes_received, (unsigned long long)ds.frames_rejected);
    rv_dataplane_free(c->dp);
    while (c->done) {
        done_job *dj = c->done;
        c->done = dj->next;
        free(dj->id);
        free(dj->error);
        free(dj);
    }
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->send_mu);
    pthread_mutex_destroy(&c->mu);
    free(c->name);
    free(c->coordinator);
    free(c);
}
