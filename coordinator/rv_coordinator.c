/* rv_coordinator: the coordinator's event loop, job table, task-manager
 * registry and scheduling. */
#include "rv_coordinator.h"
#include "rv_coord_int.h"

#include <assert.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rv_coord_store.h"
#include "rv_ctl.h"
#include "rv_graph.h"
#include "rv_jobspec.h"
#include "rv_log.h"
#include "rv_mem.h"
#include "rv_time.h"

#define TAG "coordinator"
#define LOOP_TICK_MS 100

const rv_cfg_key rv_coord_config_keys[] = {
    {"listen", RV_CFG_STRING, "tcp://127.0.0.1:6123", offsetof(rv_coord_config, listen), "Control address task managers and the CLI connect to (`tcp://HOST:PORT`; port 0 picks a free port).", NULL, 0, 0, 0},
    {"heartbeat_interval", RV_CFG_DURATION, "1s", offsetof(rv_coord_config, heartbeat_interval_ms), "How often task managers send heartbeats.", NULL, 0, 10, 600000},
    {"heartbeat_timeout", RV_CFG_DURATION, "10s", offsetof(rv_coord_config, heartbeat_timeout_ms), "A task manager silent this long is lost (a closed connection is noticed at once).", NULL, 0, 50, 3600000},
    {"slot_wait_timeout", RV_CFG_DURATION, "30s", offsetof(rv_coord_config, slot_wait_timeout_ms), "How long a job waits for enough free slots before it fails.", NULL, 0, 0, 86400000},
    {"state_dir", RV_CFG_STRING, NULL, offsetof(rv_coord_config, state_dir), "Durable directory for job definitions and their latest checkpoints: a coordinator restarted on it resumes its unfinished jobs from their latest checkpoints once task managers register. Also --state-dir.", NULL, 0, 0, 0},
    {"checkpoint_dir", RV_CFG_STRING, NULL, offsetof(rv_coord_config, checkpoint_dir), "Checkpoint storage: `<dir>/<job id>/chk-<n>/`. Every task manager must see the same directory (one machine, or a shared file system). Required by jobs with `checkpointing`. Also --checkpoint-dir.", NULL, 0, 0, 0},
};
const size_t rv_coord_config_nkeys = sizeof(rv_coord_config_keys) / sizeof(rv_coord_config_keys[0]);

const char *rv_job_state_name(rv_job_state s)
{
    static const char *names[] = {"CREATED", "RUNNING", "CANCELING", "RESTARTING", "FINISHED", "FAILED", "CANCELED"};
    return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "?";
}

/* ---- mailbox ---- */

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

static void call(rv_coord *c, msg *m)
{
    post(c, m);
    pthread_mutex_lock(&c->mu);
    while (!m->done)
        pthread_cond_wait(&c->changed, &c->mu);
    pthread_mutex_unlock(&c->mu);
}

static void reply_done(rv_coord *c, msg *m)
{
    pthread_mutex_lock(&c->mu);
    m->done = true;
    pthread_cond_broadcast(&c->changed);
    pthread_mutex_unlock(&c->mu);
}

static void on_ctl_msg(void *arg, rv_envelope *env, uint32_t pipe)
{
    msg *m = rv_xcalloc(1, sizeof(*m));
    m->kind = MSG_NET;
    m->env = env;
    m->pipe = pipe;
    m->tm = -1;
    post(arg, m);
}

static void on_ctl_pipe(void *arg, uint32_t pipe, bool added)
{
    if (added)
        return;
    msg *m = rv_xcalloc(1, sizeof(*m));
    m->kind = MSG_PIPE_GONE;
    m->pipe = pipe;
    m->tm = -1;
    post(arg, m);
}

static void on_session_msg(void *arg, rv_envelope *env, uint32_t pipe)
{
    tm_session *s = arg;
    msg *m = rv_xcalloc(1, sizeof(*m));
    m->kind = MSG_NET;
    m->env = env;
    m->tm = s->tm;
    m->gen = s->gen;
    post(s->c, m);
}

static void on_session_pipe(void *arg, uint32_t pipe, bool added)
{
    tm_session *s = arg;
    if (added)
        return;
    msg *m = rv_xcalloc(1, sizeof(*m));
    m->kind = MSG_PIPE_GONE;
    m->tm = s->tm;
    m->gen = s->gen;
    post(s->c, m);
}

/* Closes task manager tm's session (its callbacks have returned after). */
static void close_session(rv_coord *c, int tm)
{
    tm_rec *t = &c->tms[tm];
    rv_ctl_close(t->session);
    free(t->session_ref);
    t->session = NULL;
    t->session_ref = NULL;
}

/* Opens a session listener for task manager tm: a one-to-one socket next
 * to the main one (same host, any port; inproc: a name derived from it). */
static rv_err *open_session(rv_coord *c, int tm)
{
    tm_rec *t = &c->tms[tm];
    close_session(c, tm);
    t->gen++;
    const char *main_url = rv_ctl_url(c->ctl);
    char *url;
    const char *colon = strrchr(main_url, ':');
    if (strncmp(main_url, "tcp://", 6) == 0 && colon)
        url = rv_xasprintf("%.*s:0", (int)(colon - main_url), main_url);
    else
        url = rv_xasprintf("%s-tm%d-%u", main_url, tm, t->gen);
    t->session_ref = rv_xcalloc(1, sizeof(*t->session_ref));
    *t->session_ref = (tm_session){.c = c, .tm = tm, .gen = t->gen};
    rv_ctl_handlers h = {.on_msg = on_session_msg, .on_pipe = on_session_pipe, .arg = t->session_ref, .tag = TAG};
    rv_err *err = rv_ctl_listen_session(url, &h, &t->session);
    free(url);
    if (err) {
        free(t->session_ref);
        t->session_ref = NULL;
    }
    return err;
}

/* ---- helpers (loop thread) ---- */

job *rv_coord_find_job(rv_coord *c, const char *id)
{
    for (job *j = c->jobs; j; j = j->next)
        if (strcmp(j->id, id) == 0)
            return j;
    return NULL;
}

static int find_tm_by_pipe(rv_coord *c, uint32_t pipe)
{
    for (int i = 0; i < c->ntms; i++)
        if (c->tms[i].alive && c->tms[i].pipe == pipe)
            return i;
    return -1;
}

static rv_err *plan_job(rv_coord *c, const char *id, const char *file, const char *yaml, size_t len, int parallelism,
                        job **out);
static void add_job(rv_coord *c, job *j);

void rv_coord_persist(rv_coord *c, job *j)
{
    if (!c->cfg.state_dir)
        return;
    rv_job_record r = RIVULET__JOB_RECORD__INIT;
    r.job_id = j->id;
    r.name = j->name;
    r.file = j->file;
    r.yaml = j->yaml;
    r.parallelism = (uint32_t)(j->parallelism > 0 ? j->parallelism : 0);
    r.state = (char *)rv_job_state_name(j->state);
    r.error = j->error ? j->error : "";
    r.submit_ms = j->submit_ms;
    r.start_ms = j->start_ms;
    r.end_ms = j->end_ms;
    r.attempt = j->attempt;
    r.restarts = (uint32_t)j->restarts;
    r.last_failure = j->last_failure ? j->last_failure : "";
    r.next_checkpoint = j->chk.next_id;
    r.last_checkpoint = j->chk.last_id;
    r.last_checkpoint_ms = j->chk.last_ms;
    r.initial_restore = j->initial_restore ? j->initial_restore : "";
    rv_err *err = rv_coord_store_put(c->cfg.state_dir, &r);
    if (err) {
        RV_LOG_WARN(TAG, "job %s: cannot record it in the state directory: %s", j->id, rv_err_msg(err));
        rv_err_free(err);
    }
}

/* A job recorded by an earlier coordinator: ended ones are listed, the
 * others resume from their latest checkpoint once there are slots. */
static void load_job(rv_coord *c, const rv_job_record *r)
{
    job *j = NULL;
    rv_err *err = plan_job(c, r->job_id, r->file, r->yaml, strlen(r->yaml), (int)r->parallelism, &j);
    if (err) {
        RV_LOG_WARN(TAG, "cannot resume job %s (%s): %s", r->job_id, r->name, rv_err_msg(err));
        rv_err_free(err);
        return;
    }
    j->submit_ms = r->submit_ms;
    j->start_ms = r->start_ms;
    j->end_ms = r->end_ms;
    j->error = r->error[0] ? rv_xstrdup(r->error) : NULL;
    j->restarts = (int)r->restarts;
    j->last_failure = r->last_failure[0] ? rv_xstrdup(r->last_failure) : NULL;
    j->initial_restore = r->initial_restore[0] ? rv_xstrdup(r->initial_restore) : NULL;
    j->chk.next_id = r->next_checkpoint;
    j->chk.last_id = r->last_checkpoint;
    j->chk.last_ms = r->last_checkpoint_ms;
    j->attempt = r->attempt + 1;
    j->state = RV_JOB_RESTARTING; /* unless it had ended */
    for (rv_job_state s = RV_JOB_FINISHED; s <= RV_JOB_CANCELED; s++)
        if (strcmp(r->state, rv_job_state_name(s)) == 0)
            j->state = s;
    if (!rv_job_state_final(j->state)) {
        j->state = RV_JOB_RESTARTING;
        j->restarting = true;
        j->restart_at_ms = rv_wall_ms();
        j->wait_deadline_ms = j->restart_at_ms + c->cfg.slot_wait_timeout_ms;
        RV_LOG_INFO(TAG, "job %s (%s) resumes from its latest checkpoint once task managers register", j->id, j->name);
    }
    add_job(c, j);
}

static void set_state(rv_coord *c, job *j, rv_job_state s, const char *error)
{
    pthread_mutex_lock(&c->mu);
    j->state = s;
    if (error && !j->error)
        j->error = rv_xstrdup(error);
    if (rv_job_state_final(s))
        j->end_ms = rv_wall_ms();
    pthread_cond_broadcast(&c->changed);
    pthread_mutex_unlock(&c->mu);
    rv_coord_persist(c, j);
    if (s == RV_JOB_FAILED)
        RV_LOG_WARN(TAG, "job %s (%s) is FAILED: %s", j->id, j->name, j->error ? j->error : "?");
    else
        RV_LOG_INFO(TAG, "job %s (%s) is %s", j->id, j->name, rv_job_state_name(s));
}

void rv_coord_send(rv_coord *c, int tm, rv_envelope *env)
{
    tm_rec *t = &c->tms[tm];
    rv_err *err = t->session ? rv_ctl_send(t->session, 0, env) : rv_ctl_send(c->ctl, t->pipe, env);
    if (err) {
        RV_LOG_WARN(TAG, "to task manager %s: %s", c->tms[tm].name, rv_err_msg(err));
        rv_err_free(err);
    }
}

static void send_job_msg(rv_coord *c, int tm, const char *job_id, uint32_t attempt, bool release)
{
    rv_envelope env;
    rv_proto_init(&env);
    if (release) {
        Rivulet__ReleaseJob r = RIVULET__RELEASE_JOB__INIT;
        r.job_id = (char *)job_id;
        r.attempt = attempt;
        env.body_case = RIVULET__ENVELOPE__BODY_RELEASE_JOB;
        env.release_job = &r;
        rv_coord_send(c, tm, &env);
    } else {
        Rivulet__CancelJob r = RIVULET__CANCEL_JOB__INIT;
        r.job_id = (char *)job_id;
        r.attempt = attempt;
        env.body_case = RIVULET__ENVELOPE__BODY_CANCEL_JOB;
        env.cancel_job = &r;
        rv_coord_send(c, tm, &env);
    }
}


void rv_coord_send_parts(rv_coord *c, job *j, rv_envelope *env)
{
    for (int p = 0; p < j->nparts; p++)
        if (c->tms[j->parts[p].tm].alive)
            rv_coord_send(c, j->parts[p].tm, env);
}

void rv_coord_stop_parts(rv_coord *c, job *j)
{
    for (int p = 0; p < j->nparts; p++)
        if (!j->parts[p].done && c->tms[j->parts[p].tm].alive)
            send_job_msg(c, j->parts[p].tm, j->id, j->attempt, false);
}
static void job_free(job *j);

/* Frees the slots of the job's current attempt on its task managers. */
static void release_parts(rv_coord *c, job *j)
{
    for (int p = 0; p < j->nparts; p++) {
        tm_rec *t = &c->tms[j->parts[p].tm];
        t->used -= j->parts[p].slots;
        if (t->alive)
            send_job_msg(c, j->parts[p].tm, j->id, j->attempt, true);
    }
}

/* Delay before restart number n (1-based) of the job's strategy. */
static int64_t restart_delay(const rv_restart_conf *r, int n)
{
    if (r->strategy != RV_RESTART_EXPONENTIAL)
        return r->delay_ms;
    int64_t d = r->delay_ms;
    for (int i = 1; i < n && d < r->max_delay_ms; i++)
        d *= 2;
    return d < r->max_delay_ms ? d : r->max_delay_ms;
}

/* Every part of a failed attempt has stopped: schedule the next one. */
static void schedule_restart(rv_coord *c, job *j)
{
    release_parts(c, j);
    rv_coord_chk_abort(c, j, "the job is restarting");
    free(j->parts);
    j->parts = NULL;
    j->nparts = 0;
    free(j->slot_tm);
    j->slot_tm = NULL;
    j->part_canceled = false;
    j->attempt++;
    int64_t delay = restart_delay(&j->g->spec->restart, j->restarts);
    j->restart_at_ms = rv_wall_ms() + delay;
    j->wait_deadline_ms = j->restart_at_ms + c->cfg.slot_wait_timeout_ms;
    RV_LOG_INFO(TAG, "job %s (%s): restart %d of %d in %lld ms", j->id, j->name, j->restarts,
                j->g->spec->restart.attempts, (long long)delay);
    rv_coord_schedule(c);
}

/* Every part reported: final state, release the task managers' slots. */
static void finish_job(rv_coord *c, job *j)
{
    if (j->restarting) {
        schedule_restart(c, j);
        return;
    }
    rv_coord_chk_abort(c, j, "the job ended");
    release_parts(c, j);
    /* A cancel that raced with the end of the job changes nothing: only a
     * part that actually stopped early makes it CANCELED. */
    rv_job_state s = RV_JOB_FINISHED;
    if (j->error)
        s = RV_JOB_FAILED;
    else if (j->part_canceled && !j->stopped)
        s = RV_JOB_CANCELED;
    set_state(c, j, s, NULL);
    rv_coord_schedule(c);
}

static void part_done(rv_coord *c, job *j, int p)
{
    if (j->parts[p].done)
        return;
    j->parts[p].done = true;
    for (int k = 0; k < j->nparts; k++)
        if (!j->parts[k].done)
            return;
    finish_job(c, j);
}

/* A job fails: record the error and stop its other parts — then either
 * restart it (its strategy allows another attempt) or end it FAILED. */
static void fail_job(rv_coord *c, job *j, const char *error)
{
    if (j->restarting)
        return; /* the attempt is already being stopped */
    const rv_restart_conf *r = &j->g->spec->restart;
    bool restart = j->state == RV_JOB_RUNNING && !j->cancel_requested && !c->stopping &&
                   r->strategy != RV_RESTART_NONE && j->restarts < r->attempts;
    pthread_mutex_lock(&c->mu);
    if (restart) {
        j->restarting = true;
        j->restarts++;
        free(j->last_failure);
        j->last_failure = rv_xstrdup(error);
    } else if (!j->error) {
        if (r->strategy != RV_RESTART_NONE && j->restarts > 0)
            j->error = rv_xasprintf("%s (gave up after %d restart%s)", error, j->restarts, j->restarts == 1 ? "" : "s");
        else
            j->error = rv_xstrdup(error);
    }
    pthread_mutex_unlock(&c->mu);
    if (restart) {
        RV_LOG_WARN(TAG, "job %s (%s) failed: %s; restarting", j->id, j->name, error);
        set_state(c, j, RV_JOB_RESTARTING, NULL);
        rv_coord_stop_parts(c, j);
        return;
    }
    if (j->state == RV_JOB_RUNNING || j->state == RV_JOB_CANCELING) {
        set_state(c, j, RV_JOB_CANCELING, NULL);
        rv_coord_stop_parts(c, j);
    }
}

int rv_coord_subtask_index(const rv_job_graph *g, int task, int subtask)
{
    int k = 0;
    for (int t = 0; t < task; t++)
        k += g->tasks[t].parallelism;
    return k + subtask;
}

/* ---- scheduling ---- */

static void describe_slots(rv_coord *c, char *buf, size_t cap)
{
    size_t off = 0;
    int alive = 0;
    for (int i = 0; i < c->ntms; i++)
        if (c->tms[i].alive)
            alive++;
    off += (size_t)snprintf(buf + off, cap - off, "%d task manager%s", alive, alive == 1 ? "" : "s");
    bool first = true;
    for (int i = 0; i < c->ntms && off < cap; i++)
        if (c->tms[i].alive) {
            off += (size_t)snprintf(buf + off, cap - off, "%s%s %d of %d free", first ? ": " : ", ", c->tms[i].name,
                                    c->tms[i].slots - c->tms[i].used, c->tms[i].slots);
            first = false;
        }
}

static bool deploy(rv_coord *c, job *j)
{
    int free_total = 0;
    for (int i = 0; i < c->ntms; i++)
        if (c->tms[i].alive)
            free_total += c->tms[i].slots - c->tms[i].used;
    if (free_total < j->slots)
        return false;
    /* Spread slots: each goes to the task manager with the most free
     * slots left after what this job already took there. */
    int *took = rv_xcalloc((size_t)(c->ntms ? c->ntms : 1), sizeof(int));
    j->slot_tm = rv_xcalloc((size_t)j->slots, sizeof(int));
    for (int s = 0; s < j->slots; s++) {
        int best = -1;
        for (int i = 0; i < c->ntms; i++) {
            if (!c->tms[i].alive)
                continue;
            int left = c->tms[i].slots - c->tms[i].used - took[i];
            if (left > 0 && (best < 0 || left > c->tms[best].slots - c->tms[best].used - took[best]))
                best = i;
        }
        assert(best >= 0);
        j->slot_tm[s] = best;
        took[best]++;
    }
    for (int i = 0; i < c->ntms; i++)
        if (took[i]) {
            j->parts = rv_xrealloc(j->parts, (size_t)(j->nparts + 1) * sizeof(job_part));
            j->parts[j->nparts++] = (job_part){.tm = i, .slots = took[i]};
            c->tms[i].used += took[i];
        }
    free(took);

    /* One DeployJob per task manager: the job text, every task manager
     * taking part, and where every subtask runs (slot sharing: subtask i of
     * every task runs in slot i). */
    Rivulet__TmAddress *addrs = rv_xcalloc((size_t)j->nparts, sizeof(*addrs));
    Rivulet__TmAddress **addr_ptrs = rv_xcalloc((size_t)j->nparts, sizeof(*addr_ptrs));
    for (int p = 0; p < j->nparts; p++) {
        rivulet__tm_address__init(&addrs[p]);
        addrs[p].name = c->tms[j->parts[p].tm].name;
        addrs[p].data_url = c->tms[j->parts[p].tm].data_url;
        addr_ptrs[p] = &addrs[p];
    }
    int np = rv_job_graph_nsubtasks(j->g);
    Rivulet__Placement *pl = rv_xcalloc((size_t)np, sizeof(*pl));
    Rivulet__Placement **pl_ptrs = rv_xcalloc((size_t)np, sizeof(*pl_ptrs));
    int k = 0;
    for (int t = 0; t < j->g->ntasks; t++)
        for (int i = 0; i < j->g->tasks[t].parallelism; i++, k++) {
            rivulet__placement__init(&pl[k]);
            pl[k].task = (uint32_t)t;
            pl[k].subtask = (uint32_t)i;
            int tm = j->slot_tm[i];
            int part = 0;
            while (j->parts[part].tm != tm)
                part++;
            pl[k].tm_index = (uint32_t)part;
            pl_ptrs[k] = &pl[k];
        }
    rv_coord_chk_prepare_deploy(c, j);
    pthread_mutex_lock(&c->mu);
    j->state = RV_JOB_RUNNING;
    j->restarting = false;
    if (!j->start_ms)
        j->start_ms = rv_wall_ms();
    pthread_cond_broadcast(&c->changed);
    pthread_mutex_unlock(&c->mu);
    RV_LOG_INFO(TAG, "job %s (%s) is RUNNING on %d task manager(s), %d slot(s)%s%s", j->id, j->name, j->nparts, j->slots,
                j->restore_dir ? ", resuming from " : "", j->restore_dir ? j->restore_dir : "");
    bool failed = false;
    for (int p = 0; p < j->nparts; p++) {
        if (failed) {
            j->parts[p].done = true; /* never deployed: nothing to stop there */
            continue;
        }
        Rivulet__DeployJob d = RIVULET__DEPLOY_JOB__INIT;
        d.job_id = j->id;
        d.job_file = j->file;
        d.job_yaml = j->yaml;
        d.parallelism = (uint32_t)(j->parallelism > 0 ? j->parallelism : 0);
        d.n_tms = (size_t)j->nparts;
        d.tms = addr_ptrs;
        d.n_placements = (size_t)np;
        d.placements = pl_ptrs;
        d.your_index = (uint32_t)p;
        d.attempt = j->attempt;
        d.checkpoint_root = rv_coord_chk_on(c, j) ? c->cfg.checkpoint_dir : "";
        d.restore_dir = j->restore_dir ? j->restore_dir : "";
        rv_envelope env;
        rv_proto_init(&env);
        env.body_case = RIVULET__ENVELOPE__BODY_DEPLOY_JOB;
        env.deploy_job = &d;
        rv_err *err = rv_ctl_send(c->ctl, c->tms[j->parts[p].tm].pipe, &env);
        if (err) {
            char buf[512];
            snprintf(buf, sizeof(buf), "deploying to task manager %s: %s", c->tms[j->parts[p].tm].name, rv_err_msg(err));
            rv_err_free(err);
            j->parts[p].done = true; /* it never got the job */
            failed = true;
            fail_job(c, j, buf);
        }
    }
    free(addrs);
    free(addr_ptrs);
    free(pl);
    free(pl_ptrs);
    bool all_done = true;
    for (int p = 0; p < j->nparts; p++)
        all_done = all_done && j->parts[p].done;
    if (all_done)
        finish_job(c, j);
    return true;
}

void rv_coord_schedule(rv_coord *c)
{
    /* Oldest first: jobs are pushed at the head, so walk to the end. */
    int n = 0;
    for (job *j = c->jobs; j; j = j->next)
        n++;
    job **order = rv_xcalloc((size_t)n + 1, sizeof(job *));
    int k = n;
    for (job *j = c->jobs; j; j = j->next)
        order[--k] = j;
    int64_t now = rv_wall_ms();
    for (int i = 0; i < n; i++) {
        job *j = order[i];
        bool restart_due = j->state == RV_JOB_RESTARTING && j->nparts == 0 && now >= j->restart_at_ms;
        if (j->state != RV_JOB_CREATED && !restart_due)
            continue;
        if (!deploy(c, j) && rv_wall_ms() >= j->wait_deadline_ms) {
            char desc[1024], msgbuf[1400];
            describe_slots(c, desc, sizeof(desc));
            snprintf(msgbuf, sizeof(msgbuf), "not enough free slots: job '%s' needs %d, the cluster has %s (waited %lld ms)%s%s",
                     j->name, j->slots, desc, (long long)c->cfg.slot_wait_timeout_ms,
                     j->restarting ? " to restart after: " : "", j->restarting ? j->last_failure : "");
            pthread_mutex_lock(&c->mu);
            j->error = rv_xstrdup(msgbuf);
            pthread_mutex_unlock(&c->mu);
            set_state(c, j, RV_JOB_FAILED, NULL);
        }
    }
    free(order);
}

static void tm_lost(rv_coord *c, int tm, const char *why)
{
    tm_rec *t = &c->tms[tm];
    if (!t->alive)
        return;
    t->alive = false;
    int affected = 0;
    for (job *j = c->jobs; j; j = j->next)
        for (int p = 0; p < j->nparts; p++)
            affected += !rv_job_state_final(j->state) && j->parts[p].tm == tm && !j->parts[p].done;
    if (affected)
        RV_LOG_WARN(TAG, "task manager %s lost: %s", t->name, why);
    else
        RV_LOG_INFO(TAG, "task manager %s left: %s", t->name, why);
    rv_ctl_drop(c->ctl, t->pipe);
    close_session(c, tm);
    for (job *j = c->jobs; j; j = j->next) {
        if (rv_job_state_final(j->state))
            continue;
        for (int p = 0; p < j->nparts; p++) {
            if (j->parts[p].tm != tm || j->parts[p].done)
                continue;
            char buf[512];
            snprintf(buf, sizeof(buf), "task manager %s lost (%s)", t->name, why);
            fail_job(c, j, buf);
            part_done(c, j, p);
            break;
        }
    }
}

/* ---- job creation ---- */

/* Plans job text; the job structure is not yet in the table. */
static rv_err *plan_job(rv_coord *c, const char *id, const char *file, const char *yaml, size_t len, int parallelism,
                        job **out)
{
    rv_jobspec *js = NULL;
    rv_err *err = rv_jobspec_parse(yaml, len, file, &js);
    if (!err && parallelism > 0)
        err = rv_jobspec_set_parallelism(js, parallelism);
    if (err) {
        rv_jobspec_unref(js);
        return err;
    }
    if (js->checkpointing.interval_ms > 0 && !(c->cfg.checkpoint_dir && c->cfg.checkpoint_dir[0])) {
        err = rv_err_new(RV_ERR_INVALID,
                         "%s: job '%s' sets 'checkpointing' but the coordinator has no checkpoint directory "
                         "(start it with --checkpoint-dir DIR or set checkpoint_dir in its config)",
                         file, js->name);
        rv_jobspec_unref(js);
        return err;
    }
    job *j = rv_xcalloc(1, sizeof(*j));
    j->id = rv_xstrdup(id);
    j->name = rv_xstrdup(js->name);
    j->file = rv_xstrdup(file);
    j->yaml = rv_xstrndup(yaml, len);
    j->parallelism = parallelism;
    j->g = rv_job_graph_build(js);
    rv_jobspec_unref(js);
    j->slots = rv_job_graph_slots(j->g);
    j->nsubtasks = rv_job_graph_nsubtasks(j->g);
    j->metrics = rv_xcalloc((size_t)j->nsubtasks, sizeof(rv_subtask_metrics));
    *out = j;
    return NULL;
}

static void add_job(rv_coord *c, job *j)
{
    pthread_mutex_lock(&c->mu);
    j->next = c->jobs;
    c->jobs = j;
    pthread_mutex_unlock(&c->mu);
}

rv_err *rv_coord_create_job(rv_coord *c, const char *file, const char *yaml, size_t len, int parallelism,
                          const char *from_savepoint, bool allow_non_restored, job **out)
{
    if (c->stopping)
        return rv_err_new(RV_ERR_CLOSED, "the coordinator is stopping");
    char id[40];
    snprintf(id, sizeof(id), "%08x%04x%04x", (unsigned)time(NULL), c->id_salt & 0xffff, ++c->seq & 0xffff);
    job *j = NULL;
    rv_err *err = plan_job(c, id, file, yaml, len, parallelism, &j);
    if (!err && from_savepoint && from_savepoint[0] &&
        !(err = rv_coord_chk_check_savepoint(j, from_savepoint, allow_non_restored)))
        j->initial_restore = rv_xstrdup(from_savepoint);
    if (err) {
        if (j)
            job_free(j);
        return err;
    }
    j->submit_ms = rv_wall_ms();
    j->wait_deadline_ms = j->submit_ms + c->cfg.slot_wait_timeout_ms;
    j->state = RV_JOB_CREATED;
    add_job(c, j);
    RV_LOG_INFO(TAG, "job %s (%s) submitted: %d subtasks, needs %d slot(s)%s%s", j->id, j->name, j->nsubtasks, j->slots,
                j->initial_restore ? ", from savepoint " : "", j->initial_restore ? j->initial_restore : "");
    rv_coord_persist(c, j);
    *out = j;
    return NULL;
}

rv_err *rv_coord_cancel_job(rv_coord *c, const char *id)
{
    job *j = rv_coord_find_job(c, id);
    if (!j)
        return rv_err_new(RV_ERR_NOT_FOUND, "no job with id %s", id);
    if (rv_job_state_final(j->state))
        return NULL;
    j->cancel_requested = true;
    if (j->state == RV_JOB_RESTARTING) {
        j->restarting = false; /* stop here: finish_job ends it CANCELED */
        j->part_canceled = true;
    }
    if (j->state == RV_JOB_CREATED || (j->state == RV_JOB_RESTARTING && j->nparts == 0)) {
        set_state(c, j, RV_JOB_CANCELED, NULL);
        return NULL;
    }
    set_state(c, j, RV_JOB_CANCELING, NULL);
    rv_coord_stop_parts(c, j);
    return NULL;
}

/* ---- network messages ---- */

static void store_metrics(rv_coord *c, job *j, Rivulet__SubtaskMetrics **ms, size_t n)
{
    pthread_mutex_lock(&c->mu); /* rv_coord_job_metrics reads them */
    for (size_t i = 0; i < n; i++) {
        const Rivulet__SubtaskMetrics *m = ms[i];
        if (m->task >= (uint32_t)j->g->ntasks || m->subtask >= (uint32_t)j->g->tasks[m->task].parallelism)
            continue;
        rv_subtask_metrics *d = &j->metrics[rv_coord_subtask_index(j->g, (int)m->task, (int)m->subtask)];
        d->records_in = m->records_in;
        d->records_out = m->records_out;
        d->bad_records = m->bad_records;
        d->watermark = m->watermark;
    }
    pthread_mutex_unlock(&c->mu);
}

/* The part of job j running on task manager tm, or -1. */
static int part_of(const job *j, int tm)
{
    for (int p = 0; p < j->nparts; p++)
        if (j->parts[p].tm == tm)
            return p;
    return -1;
}

static void handle_register(rv_coord *c, const Rivulet__RegisterTm *r, uint32_t pipe)
{
    for (int i = 0; i < c->ntms; i++) {
        if (!c->tms[i].alive || strcmp(c->tms[i].name, r->name) != 0 || c->tms[i].pipe == pipe)
            continue;
        if (rv_now_ms() - c->tms[i].last_hb_ms <= c->cfg.heartbeat_timeout_ms) {
            /* Two processes with one name would keep replacing each other. */
            RV_LOG_WARN(TAG, "refusing a second task manager named %s (the first is alive); give each a unique --name",
                        r->name);
            rv_ctl_drop(c->ctl, pipe);
            return;
        }
        tm_lost(c, i, "it registered again on a new connection");
    }
    int idx = find_tm_by_pipe(c, pipe);
    if (idx < 0) {
        /* Reuse the entry of a task manager of that name that is gone. */
        for (int i = 0; i < c->ntms && idx < 0; i++)
            if (!c->tms[i].alive && strcmp(c->tms[i].name, r->name) == 0)
                idx = i;
        if (idx < 0) {
            c->tms = rv_xrealloc(c->tms, (size_t)(c->ntms + 1) * sizeof(tm_rec));
            idx = c->ntms++;
            memset(&c->tms[idx], 0, sizeof(tm_rec));
            c->tms[idx].name = rv_xstrdup(r->name);
        }
        free(c->tms[idx].data_url);
        c->tms[idx].data_url = rv_xstrdup(r->data_url);
        c->tms[idx].slots = (int)r->slots;
        c->tms[idx].pipe = pipe;
        c->tms[idx].alive = true;
        RV_LOG_INFO(TAG, "task manager %s registered: %d slots, data %s", r->name, (int)r->slots, r->data_url);
    }
    c->tms[idx].last_hb_ms = rv_now_ms();
    /* A repeated registration (the acknowledgement crossed it) gets the
     * same session. */
    rv_err *err = c->tms[idx].session ? NULL : open_session(c, idx);
    if (err) {
        RV_LOG_WARN(TAG, "task manager %s: cannot open its session: %s", r->name, rv_err_msg(err));
        rv_err_free(err);
        tm_lost(c, idx, "no session");
        return;
    }
    Rivulet__RegisterAck ack = RIVULET__REGISTER_ACK__INIT;
    ack.tm_index = (uint32_t)idx;
    ack.heartbeat_interval_ms = (uint32_t)c->cfg.heartbeat_interval_ms;
    ack.session_url = (char *)rv_ctl_url(c->tms[idx].session);
    rv_envelope env;
    rv_proto_init(&env);
    env.body_case = RIVULET__ENVELOPE__BODY_REGISTER_ACK;
    env.register_ack = &ack;
    if ((err = rv_ctl_send(c->ctl, pipe, &env))) {
        RV_LOG_WARN(TAG, "to task manager %s: %s", r->name, rv_err_msg(err));
        rv_err_free(err);
    }
    rv_coord_schedule(c);
}

/* A message from the main socket's connection `pipe`, or (session >= 0)
 * from that task manager's session. */
static void handle_net(rv_coord *c, rv_envelope *env, uint32_t pipe, int session)
{
    int tm = session >= 0 ? session : find_tm_by_pipe(c, pipe);
    switch (env->body_case) {
    case RIVULET__ENVELOPE__BODY_REGISTER_TM: handle_register(c, env->register_tm, pipe); break;
    case RIVULET__ENVELOPE__BODY_HEARTBEAT:
        if (tm < 0) {
            /* Not registered on this connection (e.g. a stale
             * acknowledgement reached it): make it reconnect and register. */
            RV_LOG_INFO(TAG, "heartbeat from an unregistered connection %u; dropping it", (unsigned)pipe);
            rv_ctl_drop(c->ctl, pipe);
            break;
        }
        c->tms[tm].last_hb_ms = rv_now_ms();
        for (size_t i = 0; i < env->heartbeat->n_metrics; i++) {
            job *j = rv_coord_find_job(c, env->heartbeat->metrics[i]->job_id);
            int p = j && env->heartbeat->metrics[i]->attempt == j->attempt ? part_of(j, tm) : -1;
            /* A heartbeat sent before the final report must not undo it. */
            if (p >= 0 && !j->parts[p].done)
                store_metrics(c, j, &env->heartbeat->metrics[i], 1);
        }
        break;
    case RIVULET__ENVELOPE__BODY_JOB_DONE: {
        if (tm < 0) {
            rv_ctl_drop(c->ctl, pipe);
            break;
        }
        const Rivulet__JobOnTmDone *d = env->job_done;
        job *j = rv_coord_find_job(c, d->job_id);
        int p = j && d->attempt == j->attempt ? part_of(j, tm) : -1;
        if (p < 0 || j->parts[p].done) {
            /* A job this task manager ran under an earlier connection, an
             * earlier attempt or an earlier coordinator: let it free the
             * slots. */
            send_job_msg(c, tm, d->job_id, d->attempt, true);
            break;
        }
        store_metrics(c, j, d->metrics, d->n_metrics);
        if (d->state == RIVULET__JOB_ON_TM_DONE__STATE__FAILED)
            fail_job(c, j, d->error[0] ? d->error : "a task manager reported a failure");
        else if (d->state == RIVULET__JOB_ON_TM_DONE__STATE__CANCELED)
            j->part_canceled = true;
        for (int p = 0; p < j->nparts; p++)
            if (j->parts[p].tm == tm)
                part_done(c, j, p);
        break;
    }
    case RIVULET__ENVELOPE__BODY_CHECKPOINT_ACK: {
        job *j = tm >= 0 ? rv_coord_find_job(c, env->checkpoint_ack->job_id) : NULL;
        if (j)
            rv_coord_chk_ack(c, j, env->checkpoint_ack);
        break;
    }
    case RIVULET__ENVELOPE__BODY_SUBMIT_JOB:
    case RIVULET__ENVELOPE__BODY_LIST_JOBS:
    case RIVULET__ENVELOPE__BODY_GET_JOB:
    case RIVULET__ENVELOPE__BODY_CANCEL_REQUEST:
    case RIVULET__ENVELOPE__BODY_SAVEPOINT_REQUEST: rv_coord_handle_client(c, env, pipe); break;
    default:
        RV_LOG_WARN(TAG, "unexpected %s on connection %u; dropping it", rv_proto_body_name(env), (unsigned)pipe);
        if (session >= 0)
            tm_lost(c, session, "it sent an unexpected message");
        else
            rv_ctl_drop(c->ctl, pipe);
        break;
    }
    rv_proto_free(env);
}

static void check_timers(rv_coord *c)
{
    int64_t now = rv_now_ms();
    for (int i = 0; i < c->ntms; i++)
        if (c->tms[i].alive && now - c->tms[i].last_hb_ms > c->cfg.heartbeat_timeout_ms) {
            char why[128];
            snprintf(why, sizeof(why), "no heartbeat for %lld ms", (long long)(now - c->tms[i].last_hb_ms));
            tm_lost(c, i, why);
        }
    int64_t wall = rv_wall_ms();
    for (job *j = c->jobs; j; j = j->next)
        rv_coord_chk_tick(c, j, now);
    for (job *j = c->jobs; j; j = j->next)
        if (j->state == RV_JOB_CREATED || (j->state == RV_JOB_RESTARTING && j->nparts == 0 && wall >= j->restart_at_ms)) {
            rv_coord_schedule(c);
            break;
        }
}

static void *loop(void *arg)
{
    rv_coord *c = arg;
    for (;;) {
        pthread_mutex_lock(&c->mu);
        if (!c->head) {
            struct timespec dl;
            clock_gettime(CLOCK_REALTIME, &dl);
            dl.tv_nsec += LOOP_TICK_MS * 1000000L;
            if (dl.tv_nsec >= 1000000000) {
                dl.tv_sec++;
                dl.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&c->cv, &c->mu, &dl);
        }
        msg *m = c->head;
        if (m) {
            c->head = m->next;
            if (!c->head)
                c->tail = NULL;
        }
        pthread_mutex_unlock(&c->mu);
        if (!m) {
            check_timers(c);
            continue;
        }
        switch (m->kind) {
        case MSG_NET:
            if (m->tm >= 0 && (m->tm >= c->ntms || c->tms[m->tm].gen != m->gen || !c->tms[m->tm].alive))
                rv_proto_free(m->env); /* from a session that has been replaced */
            else
                handle_net(c, m->env, m->pipe, m->tm);
            free(m);
            break;
        case MSG_PIPE_GONE: {
            int tm = m->tm >= 0 ? (m->tm < c->ntms && c->tms[m->tm].gen == m->gen ? m->tm : -1)
                                : find_tm_by_pipe(c, m->pipe);
            if (tm >= 0)
                tm_lost(c, tm, "connection closed");
            free(m);
            break;
        }
        case MSG_SUBMIT: {
            job *j = NULL;
            m->err = rv_coord_create_job(c, m->file, m->yaml, m->len, m->parallelism, NULL, false, &j);
            if (!m->err) {
                m->reply_id = rv_xstrdup(j->id);
                rv_coord_schedule(c);
            }
            reply_done(c, m);
            break;
        }
        case MSG_CANCEL:
            m->err = rv_coord_cancel_job(c, m->job_id);
            reply_done(c, m);
            break;
        case MSG_SHUTDOWN:
            c->stopping = true;
            reply_done(c, m);
            break;
        case MSG_STOP: {
            /* Answer whatever else is queued; callers of the C API wait. */
            pthread_mutex_lock(&c->mu);
            msg *rest = c->head;
            c->head = c->tail = NULL;
            pthread_mutex_unlock(&c->mu);
            while (rest) {
                msg *next = rest->next;
                if (rest->kind == MSG_SUBMIT || rest->kind == MSG_CANCEL) {
                    rest->err = rv_err_new(RV_ERR_CLOSED, "the coordinator is stopping");
                    reply_done(c, rest);
                } else {
                    if (rest->kind == MSG_NET)
                        rv_proto_free(rest->env);
                    free(rest);
                }
                rest = next;
            }
            reply_done(c, m);
            return NULL;
        }
        }
        check_timers(c);
    }
}

/* ---- public API ---- */

rv_err *rv_coord_new(const rv_coord_config *cfg, rv_coord **out)
{
    rv_coord *c = rv_xcalloc(1, sizeof(*c));
    c->cfg = *cfg;
    c->cfg.listen = rv_xstrdup(cfg->listen ? cfg->listen : "tcp://127.0.0.1:6123");
    c->cfg.checkpoint_dir = cfg->checkpoint_dir && cfg->checkpoint_dir[0] ? rv_xstrdup(cfg->checkpoint_dir) : NULL;
    c->cfg.state_dir = cfg->state_dir && cfg->state_dir[0] ? rv_xstrdup(cfg->state_dir) : NULL;
    c->id_salt = (unsigned)(rv_now_ns() ^ ((int64_t)getpid() << 16)) * 2654435761u >> 16;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    pthread_cond_init(&c->changed, NULL);
    rv_ctl_handlers h = {.on_msg = on_ctl_msg, .on_pipe = on_ctl_pipe, .arg = c, .tag = TAG};
    rv_err *err = rv_ctl_listen(c->cfg.listen, &h, &c->ctl);
    if (err)
        goto fail;
    if (c->cfg.state_dir) {
        rv_job_record **recs = NULL;
        size_t n = 0;
        if ((err = rv_coord_store_load(c->cfg.state_dir, &recs, &n))) {
            rv_ctl_close(c->ctl);
            goto fail;
        }
        for (size_t i = 0; i < n; i++)
            load_job(c, recs[i]);
        rv_coord_store_free(recs, n);
    }
    int rc = pthread_create(&c->thread, NULL, loop, c);
    if (rc != 0) {
        err = rv_err_new(RV_ERR_INTERNAL, "cannot start the coordinator thread: %s", strerror(rc));
        rv_ctl_close(c->ctl);
        goto fail;
    }
    RV_LOG_INFO(TAG, "listening on %s", rv_ctl_url(c->ctl));
    *out = c;
    return NULL;
fail:
    pthread_cond_destroy(&c->cv);
    pthread_cond_destroy(&c->changed);
    pthread_mutex_destroy(&c->mu);
    free(c->cfg.listen);
    free(c->cfg.checkpoint_dir);
    free(c->cfg.state_dir);
    free(c);
    return rv_err_wrap(err, "starting the coordinator");
}

const char *rv_coord_url(const rv_coord *c) { return rv_ctl_url(c->ctl); }

rv_err *rv_coord_submit(rv_coord *c, const char *file, const char *yaml, size_t len, int parallelism, char **job_id)
{
    msg m = {.kind = MSG_SUBMIT, .file = file, .yaml = yaml, .len = len, .parallelism = parallelism};
    call(c, &m);
    if (m.err)
        return m.err;
    *job_id = m.reply_id;
    return NULL;
}

rv_err *rv_coord_cancel(rv_coord *c, const char *job_id)
{
    msg m = {.kind = MSG_CANCEL, .job_id = job_id};
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
        job *j = rv_coord_find_job(c, job_id);
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
    memset(m, 0, sizeof(*m));
    pthread_mutex_lock(&c->mu);
    job *j = rv_coord_find_job(c, job_id);
    if (j) {
        int k = 0;
        for (int t = 0; t < j->g->ntasks; t++) {
            bool source = j->g->spec->nodes[j->g->tasks[t].nodes[0]].plugin->kind == RV_PLUGIN_SOURCE;
            for (int i = 0; i < j->g->tasks[t].parallelism; i++, k++) {
                if (source)
                    m->records_in += j->metrics[k].records_in;
                m->records_out += j->metrics[k].records_out;
                m->bad_records += j->metrics[k].bad_records;
            }
        }
    }
    pthread_mutex_unlock(&c->mu);
    return j != NULL;
}

static void job_free(job *j)
{
    free(j->id);
    free(j->name);
    free(j->file);
    free(j->yaml);
    free(j->error);
    free(j->last_failure);
    free(j->restore_dir);
    free(j->initial_restore);
    rv_coord_chk_free(j);
    free(j->slot_tm);
    free(j->parts);
    free(j->metrics);
    rv_job_graph_free(j->g);
    free(j);
}

void rv_coord_free(rv_coord *c)
{
    if (!c)
        return;
    msg shut = {.kind = MSG_SHUTDOWN};
    call(c, &shut); /* no new jobs from here on */
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
    for (int i = 0; i < n; i++)
        rv_err_free(rv_coord_cancel(c, ids[i]));
    int64_t deadline = rv_now_ms() + 5000;
    for (int i = 0; i < n; i++) {
        int64_t left = deadline - rv_now_ms();
        rv_coord_wait(c, ids[i], left > 0 ? left : 0, NULL);
        free(ids[i]);
    }
    free(ids);
    msg m = {.kind = MSG_STOP};
    call(c, &m);
    pthread_join(c->thread, NULL);
    rv_ctl_close(c->ctl); /* no callbacks after this */
    for (int i = 0; i < c->ntms; i++)
        close_session(c, i);
    while (c->head) {
        msg *x = c->head;
        c->head = x->next;
        if (x->kind == MSG_NET)
            rv_proto_free(x->env);
        free(x);
    }
    while (c->jobs) {
        job *j = c->jobs;
        c->jobs = j->next;
        job_free(j);
    }
    for (int i = 0; i < c->ntms; i++) {
        free(c->tms[i].name);
        free(c->tms[i].data_url);
    }
    free(c->tms);
    pthread_cond_destroy(&c->cv);
    pthread_cond_destroy(&c->changed);
    pthread_mutex_destroy(&c->mu);
    free(c->cfg.listen);
    free(c->cfg.checkpoint_dir);
    free(c->cfg.state_dir);
    free(c);
}
