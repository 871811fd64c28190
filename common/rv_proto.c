/* rv_proto: packing and validated unpacking of control-plane envelopes.
 * protobuf-c checks the encoding; this module checks everything the
 * encoding cannot express (limits, ranges, references between fields), so
 * the coordinator, task managers and the CLI may trust every field of a
 * message that rv_proto_unpack returned. Each rule's error names the field
 * ("register_tm.slots = 0 is out of range 1..4096"). */
#include "rv_proto.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rv_mem.h"
#include "rv_nng.h"

#define MAX_SLOTS 4096
#define MAX_PARALLELISM 1024
#define MAX_TASK 65535            /* task and subtask numbers */
#define MAX_HEARTBEAT_MS 600000   /* ten minutes */
#define MAX_PATH_LEN 4096         /* a job file's name (a path, not an id) */
#define PATH_BUF 96               /* "deploy_job.placements[65535].tm_index" */

void rv_proto_init(rv_envelope *env)
{
    assert(env);
    rivulet__envelope__init(env);
    env->version = RV_PROTO_VERSION;
}

rv_err *rv_proto_pack(const rv_envelope *env, void **buf, size_t *len)
{
    assert(env && env->base.descriptor == &rivulet__envelope__descriptor && buf && len);
    size_t n = rivulet__envelope__get_packed_size(env);
    if (n > RV_PROTO_MAX_MSG)
        return rv_err_new(RV_ERR_INVALID, "%s message of %zu bytes exceeds the control message limit of %u bytes",
                          rv_proto_body_name(env), n, RV_PROTO_MAX_MSG);
    uint8_t *out = malloc(n ? n : 1);
    if (!out)
        return rv_err_new(RV_ERR_NOMEM, "out of memory packing a %s message of %zu bytes", rv_proto_body_name(env),
                          n);
    size_t packed = rivulet__envelope__pack(env, out);
    assert(packed == n);
    *buf = out;
    *len = packed;
    return NULL;
}

void rv_proto_free(rv_envelope *env)
{
    if (env)
        rivulet__envelope__free_unpacked(env, NULL);
}

const char *rv_proto_body_name(const rv_envelope *env)
{
    if (!env)
        return "none";
    switch (env->body_case) {
    case RIVULET__ENVELOPE__BODY__NOT_SET: return "none";
    case RIVULET__ENVELOPE__BODY_REGISTER_TM: return "register_tm";
    case RIVULET__ENVELOPE__BODY_REGISTER_ACK: return "register_ack";
    case RIVULET__ENVELOPE__BODY_HEARTBEAT: return "heartbeat";
    case RIVULET__ENVELOPE__BODY_DEPLOY_JOB: return "deploy_job";
    case RIVULET__ENVELOPE__BODY_CANCEL_JOB: return "cancel_job";
    case RIVULET__ENVELOPE__BODY_JOB_DONE: return "job_done";
    case RIVULET__ENVELOPE__BODY_RELEASE_JOB: return "release_job";
    case RIVULET__ENVELOPE__BODY_SUBMIT_JOB: return "submit_job";
    case RIVULET__ENVELOPE__BODY_LIST_JOBS: return "list_jobs";
    case RIVULET__ENVELOPE__BODY_GET_JOB: return "get_job";
    case RIVULET__ENVELOPE__BODY_CANCEL_REQUEST: return "cancel_request";
    case RIVULET__ENVELOPE__BODY_REPLY: return "reply";
    case RIVULET__ENVELOPE__BODY_TRIGGER_CHECKPOINT: return "trigger_checkpoint";
    case RIVULET__ENVELOPE__BODY_CHECKPOINT_ACK: return "checkpoint_ack";
    case RIVULET__ENVELOPE__BODY_CHECKPOINT_COMPLETE: return "checkpoint_complete";
    case RIVULET__ENVELOPE__BODY_SAVEPOINT_REQUEST: return "savepoint_request";
    case RIVULET__ENVELOPE__BODY_DRAIN_JOB: return "drain_job";
    default: return "unknown";
    }
}

/* ---- field rules (field is the full path, e.g. "deploy_job.tms[2].name") ---- */

static rv_err *bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static rv_err *bad(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = rv_xvasprintf(fmt, ap);
    va_end(ap);
    rv_err *err = rv_err_new(RV_ERR_CORRUPT, "%s", msg);
    free(msg);
    return err;
}

/* An optional text of at most max bytes. */
static rv_err *check_len(const char *field, const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n > max)
        return bad("%s is %zu bytes, over the limit of %zu", field, n, max);
    return NULL;
}

/* A required id or name: 1..RV_PROTO_MAX_NAME bytes. */
static rv_err *check_name(const char *field, const char *s)
{
    if (s[0] == '\0')
        return bad("%s is empty", field);
    return check_len(field, s, RV_PROTO_MAX_NAME);
}

static rv_err *check_url(const char *field, const char *s)
{
    rv_err *err = check_name(field, s);
    if (err)
        return err;
    if (!rv_nng_url_valid(s))
        return bad("%s \"%s\" is not a valid URL (tcp://host:port, ipc://path or inproc://name)", field, s);
    return NULL;
}

static rv_err *check_range(const char *field, uint32_t v, uint32_t lo, uint32_t hi)
{
    if (v < lo || v > hi)
        return bad("%s = %u is out of range %u..%u", field, (unsigned)v, (unsigned)lo, (unsigned)hi);
    return NULL;
}

static rv_err *check_count(const char *field, size_t n)
{
    if (n > RV_PROTO_MAX_ITEMS)
        return bad("%s has %zu entries, over the limit of %u", field, n, (unsigned)RV_PROTO_MAX_ITEMS);
    return NULL;
}

static rv_err *check_yaml(const char *field, const char *s)
{
    if (s[0] == '\0')
        return bad("%s is empty", field);
    return check_len(field, s, RV_PROTO_MAX_YAML);
}

/* `--set` overrides: "key=value" with a non-empty key. */
static rv_err *check_sets(const char *body, char **set, size_t n)
{
    char f[PATH_BUF];
    snprintf(f, sizeof(f), "%s.set", body);
    rv_err *err = check_count(f, n);
    for (size_t i = 0; !err && i < n; i++) {
        const char *eq = strchr(set[i], '=');
        if (!eq || eq == set[i]) {
            snprintf(f, sizeof(f), "%s.set[%zu]", body, i);
            err = bad("%s \"%.64s\" is not key=value", f, set[i]);
        }
    }
    return err;
}

static rv_err *check_metrics(const char *body, Rivulet__SubtaskMetrics **m, size_t n)
{
    char f[PATH_BUF];
    snprintf(f, sizeof(f), "%s.metrics", body);
    rv_err *err = check_count(f, n);
    for (size_t i = 0; !err && i < n; i++) {
        snprintf(f, sizeof(f), "%s.metrics[%zu].job_id", body, i);
        err = check_name(f, m[i]->job_id);
        if (!err) {
            snprintf(f, sizeof(f), "%s.metrics[%zu].task", body, i);
            err = check_range(f, m[i]->task, 0, MAX_TASK);
        }
        if (!err) {
            snprintf(f, sizeof(f), "%s.metrics[%zu].subtask", body, i);
            err = check_range(f, m[i]->subtask, 0, MAX_TASK);
        }
    }
    return err;
}

/* ---- bodies ---- */

static rv_err *check_register_tm(const Rivulet__RegisterTm *m)
{
    rv_err *err = check_name("register_tm.name", m->name);
    if (!err)
        err = check_range("register_tm.slots", m->slots, 1, MAX_SLOTS);
    if (!err)
        err = check_url("register_tm.data_url", m->data_url);
    return err;
}

static rv_err *check_register_ack(const Rivulet__RegisterAck *m)
{
    rv_err *err = check_range("register_ack.tm_index", m->tm_index, 0, RV_PROTO_MAX_ITEMS - 1);
    if (!err)
        err = check_range("register_ack.heartbeat_interval_ms", m->heartbeat_interval_ms, 1, MAX_HEARTBEAT_MS);
    if (!err && m->session_url[0])
        err = check_url("register_ack.session_url", m->session_url);
    return err;
}

static rv_err *check_deploy_tms(const Rivulet__DeployJob *m)
{
    char f[PATH_BUF];
    rv_err *err = check_count("deploy_job.tms", m->n_tms);
    for (size_t i = 0; !err && i < m->n_tms; i++) {
        snprintf(f, sizeof(f), "deploy_job.tms[%zu].name", i);
        err = check_name(f, m->tms[i]->name);
        if (!err) {
            snprintf(f, sizeof(f), "deploy_job.tms[%zu].data_url", i);
            err = check_url(f, m->tms[i]->data_url);
        }
    }
    if (!err && m->your_index >= m->n_tms)
        err = bad("deploy_job.your_index = %u names no task manager (tms has %zu)", (unsigned)m->your_index,
                  m->n_tms);
    return err;
}

static rv_err *check_deploy_placements(const Rivulet__DeployJob *m)
{
    char f[PATH_BUF];
    rv_err *err = check_count("deploy_job.placements", m->n_placements);
    for (size_t i = 0; !err && i < m->n_placements; i++) {
        const Rivulet__Placement *p = m->placements[i];
        snprintf(f, sizeof(f), "deploy_job.placements[%zu].task", i);
        err = check_range(f, p->task, 0, MAX_TASK);
        if (!err) {
            snprintf(f, sizeof(f), "deploy_job.placements[%zu].subtask", i);
            err = check_range(f, p->subtask, 0, MAX_TASK);
        }
        if (!err && p->tm_index >= m->n_tms)
            err = bad("deploy_job.placements[%zu].tm_index = %u names no task manager (tms has %zu)", i,
                      (unsigned)p->tm_index, m->n_tms);
    }
    return err;
}

static rv_err *check_deploy_job(const Rivulet__DeployJob *m)
{
    rv_err *err = check_name("deploy_job.job_id", m->job_id);
    if (!err)
        err = check_len("deploy_job.job_file", m->job_file, MAX_PATH_LEN);
    if (!err)
        err = check_yaml("deploy_job.job_yaml", m->job_yaml);
    if (!err)
        err = check_range("deploy_job.parallelism", m->parallelism, 0, MAX_PARALLELISM);
    if (!err)
        err = check_sets("deploy_job", m->set, m->n_set);
    if (!err)
        err = check_deploy_tms(m);
    if (!err)
        err = check_deploy_placements(m);
    if (!err)
        err = check_len("deploy_job.checkpoint_root", m->checkpoint_root, MAX_PATH_LEN);
    if (!err)
        err = check_len("deploy_job.restore_dir", m->restore_dir, MAX_PATH_LEN);
    return err;
}

static rv_err *check_trigger(const Rivulet__TriggerCheckpoint *m)
{
    rv_err *err = check_name("trigger_checkpoint.job_id", m->job_id);
    if (!err && m->id == 0)
        err = bad("trigger_checkpoint.id is 0 (checkpoint ids start at 1)");
    if (!err && (m->dir[0] == 0 || strlen(m->dir) > MAX_PATH_LEN))
        err = bad("trigger_checkpoint.dir is empty or longer than %d bytes", MAX_PATH_LEN);
    return err;
}

static rv_err *check_ack(const Rivulet__CheckpointAck *m)
{
    char f[PATH_BUF];
    rv_err *err = check_name("checkpoint_ack.job_id", m->job_id);
    if (!err && m->id == 0)
        err = bad("checkpoint_ack.id is 0 (checkpoint ids start at 1)");
    if (!err)
        err = check_range("checkpoint_ack.task", m->task, 0, MAX_TASK);
    if (!err)
        err = check_range("checkpoint_ack.subtask", m->subtask, 0, MAX_TASK);
    if (!err)
        err = check_count("checkpoint_ack.states", m->n_states);
    for (size_t i = 0; !err && i < m->n_states; i++) {
        const Rivulet__StateHandle *h = m->states[i];
        snprintf(f, sizeof(f), "checkpoint_ack.states[%zu].node", i);
        err = check_name(f, h->node);
        if (!err) {
            snprintf(f, sizeof(f), "checkpoint_ack.states[%zu].file", i);
            err = check_len(f, h->file, RV_PROTO_MAX_NAME);
        }
        if (!err && (h->kg_first > h->kg_end || h->kg_end > 32768))
            err = bad("checkpoint_ack.states[%zu]: key groups [%u, %u) are out of range", i, (unsigned)h->kg_first,
                      (unsigned)h->kg_end);
        if (!err && h->file[0] && (strchr(h->file, '/') || h->file[0] == '.'))
            err = bad("checkpoint_ack.states[%zu].file '%s' is not a plain file name", i, h->file);
    }
    return err;
}

static rv_err *check_job_done(const Rivulet__JobOnTmDone *m)
{
    rv_err *err = check_name("job_done.job_id", m->job_id);
    if (!err && m->state != RIVULET__JOB_ON_TM_DONE__STATE__FINISHED &&
        m->state != RIVULET__JOB_ON_TM_DONE__STATE__FAILED && m->state != RIVULET__JOB_ON_TM_DONE__STATE__CANCELED)
        err = bad("job_done.state = %d is not FINISHED, FAILED or CANCELED", (int)m->state);
    if (!err)
        err = check_metrics("job_done", m->metrics, m->n_metrics);
    return err;
}

static rv_err *check_submit_job(const Rivulet__SubmitJob *m)
{
    rv_err *err = check_len("submit_job.job_file", m->job_file, MAX_PATH_LEN);
    if (!err)
        err = check_len("submit_job.from_savepoint", m->from_savepoint, MAX_PATH_LEN);
    if (!err)
        err = check_yaml("submit_job.job_yaml", m->job_yaml);
    if (!err)
        err = check_range("submit_job.parallelism", m->parallelism, 0, MAX_PARALLELISM);
    if (!err)
        err = check_sets("submit_job", m->set, m->n_set);
    return err;
}

static rv_err *check_reply(const Rivulet__Reply *m)
{
    char f[PATH_BUF];
    rv_err *err = check_len("reply.job_id", m->job_id, RV_PROTO_MAX_NAME);
    if (!err)
        err = check_count("reply.jobs", m->n_jobs);
    for (size_t i = 0; !err && i < m->n_jobs; i++) {
        snprintf(f, sizeof(f), "reply.jobs[%zu].job_id", i);
        err = check_name(f, m->jobs[i]->job_id);
        if (!err) {
            snprintf(f, sizeof(f), "reply.jobs[%zu].subtasks", i);
            err = check_count(f, m->jobs[i]->n_subtasks);
        }
    }
    return err;
}

static rv_err *check_body(const rv_envelope *env)
{
    switch (env->body_case) {
    case RIVULET__ENVELOPE__BODY_REGISTER_TM: return check_register_tm(env->register_tm);
    case RIVULET__ENVELOPE__BODY_REGISTER_ACK: return check_register_ack(env->register_ack);
    case RIVULET__ENVELOPE__BODY_HEARTBEAT:
        return check_metrics("heartbeat", env->heartbeat->metrics, env->heartbeat->n_metrics);
    case RIVULET__ENVELOPE__BODY_DEPLOY_JOB: return check_deploy_job(env->deploy_job);
    case RIVULET__ENVELOPE__BODY_CANCEL_JOB: return check_name("cancel_job.job_id", env->cancel_job->job_id);
    case RIVULET__ENVELOPE__BODY_JOB_DONE: return check_job_done(env->job_done);
    case RIVULET__ENVELOPE__BODY_RELEASE_JOB: return check_name("release_job.job_id", env->release_job->job_id);
    case RIVULET__ENVELOPE__BODY_SUBMIT_JOB: return check_submit_job(env->submit_job);
    case RIVULET__ENVELOPE__BODY_LIST_JOBS: return NULL;
    case RIVULET__ENVELOPE__BODY_GET_JOB: return check_name("get_job.job_id", env->get_job->job_id);
    case RIVULET__ENVELOPE__BODY_CANCEL_REQUEST:
        return check_name("cancel_request.job_id", env->cancel_request->job_id);
    case RIVULET__ENVELOPE__BODY_REPLY: return check_reply(env->reply);
    case RIVULET__ENVELOPE__BODY_TRIGGER_CHECKPOINT: return check_trigger(env->trigger_checkpoint);
    case RIVULET__ENVELOPE__BODY_CHECKPOINT_ACK: return check_ack(env->checkpoint_ack);
    case RIVULET__ENVELOPE__BODY_CHECKPOINT_COMPLETE:
        return check_name("checkpoint_complete.job_id", env->checkpoint_complete->job_id);
    case RIVULET__ENVELOPE__BODY_SAVEPOINT_REQUEST: {
        rv_err *err = check_name("savepoint_request.job_id", env->savepoint_request->job_id);
        return err ? err : check_len("savepoint_request.dir", env->savepoint_request->dir, MAX_PATH_LEN);
    }
    case RIVULET__ENVELOPE__BODY_DRAIN_JOB: return check_name("drain_job.job_id", env->drain_job->job_id);
    default: return bad("unknown body %d", (int)env->body_case);
    }
}

rv_err *rv_proto_unpack(const void *buf, size_t len, rv_envelope **out)
{
    assert(out && (buf || len == 0));
    if (len > RV_PROTO_MAX_MSG)
        return rv_err_new(RV_ERR_CORRUPT, "control message of %zu bytes exceeds the limit of %u bytes", len,
                          RV_PROTO_MAX_MSG);
    rv_envelope *env = rivulet__envelope__unpack(NULL, len, buf);
    if (!env)
        return rv_err_new(RV_ERR_CORRUPT, "control message of %zu bytes is not a valid protobuf envelope", len);
    rv_err *err = NULL;
    if (env->version != RV_PROTO_VERSION)
        err = rv_err_new(RV_ERR_INVALID, "protocol version %u from peer, this build speaks version %d",
                         (unsigned)env->version, RV_PROTO_VERSION);
    else if (env->body_case == RIVULET__ENVELOPE__BODY__NOT_SET)
        err = rv_err_new(RV_ERR_CORRUPT, "control message has no body");
    else if ((err = check_body(env)))
        err = rv_err_wrap(err, "invalid %s message", rv_proto_body_name(env));
    if (err) {
        rv_proto_free(env);
        return err;
    }
    *out = env;
    return NULL;
}
