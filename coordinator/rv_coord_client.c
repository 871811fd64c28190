/* rv_coord_client: the coordinator's answers to CLI requests — submit,
 * list, get (status), cancel and savepoint — on its event-loop thread. */
#include <stdlib.h>
#include <string.h>

#include "rv_coord_int.h"
#include "rv_log.h"
#include "rv_mem.h"

#define TAG "coordinator"

static void fill_job_info(rv_coord *c, job *j, Rivulet__JobInfo *info, bool details)
{
    rivulet__job_info__init(info);
    info->job_id = j->id;
    info->name = j->name;
    info->state = (char *)rv_job_state_name(j->state);
    info->start_time_ms = j->start_ms ? j->start_ms : j->submit_ms;
    info->end_time_ms = j->end_ms;
    info->error = j->error ? j->error : "";
    info->restarts = (uint32_t)j->restarts;
    info->last_failure = j->last_failure ? j->last_failure : "";
    info->last_checkpoint = j->chk.last_id;
    info->last_checkpoint_ms = j->chk.last_ms;
    if (!details)
        return;
    info->n_subtasks = (size_t)j->nsubtasks;
    info->subtasks = rv_xcalloc((size_t)j->nsubtasks, sizeof(Rivulet__SubtaskInfo *));
    int k = 0;
    for (int t = 0; t < j->g->ntasks; t++) {
        char chain[512] = "";
        for (int n = 0; n < j->g->tasks[t].nnodes; n++)
            snprintf(chain + strlen(chain), sizeof(chain) - strlen(chain), "%s%s", n ? " -> " : "",
                     j->g->spec->nodes[j->g->tasks[t].nodes[n]].id);
        for (int i = 0; i < j->g->tasks[t].parallelism; i++, k++) {
            Rivulet__SubtaskInfo *s = rv_xcalloc(1, sizeof(*s));
            rivulet__subtask_info__init(s);
            s->task = (uint32_t)t;
            s->subtask = (uint32_t)i;
            s->chain = rv_xstrdup(chain);
            s->tm = rv_xstrdup(j->slot_tm ? c->tms[j->slot_tm[i]].name : "");
            s->records_in = j->metrics[k].records_in;
            s->records_out = j->metrics[k].records_out;
            s->watermark = j->metrics[k].watermark;
            info->subtasks[k] = s;
        }
    }
}

static void free_job_info(Rivulet__JobInfo *info)
{
    for (size_t k = 0; k < info->n_subtasks; k++) {
        free(info->subtasks[k]->chain);
        free(info->subtasks[k]->tm);
        free(info->subtasks[k]);
    }
    free(info->subtasks);
}

void rv_coord_reply(rv_coord *c, uint32_t pipe, uint64_t request_id, Rivulet__Reply *r)
{
    rv_envelope env;
    rv_proto_init(&env);
    env.request_id = request_id;
    env.body_case = RIVULET__ENVELOPE__BODY_REPLY;
    env.reply = r;
    rv_err *err = rv_ctl_send(c->ctl, pipe, &env);
    if (err) {
        RV_LOG_WARN(TAG, "replying to a client: %s", rv_err_msg(err));
        rv_err_free(err);
    }
}

void rv_coord_handle_client(rv_coord *c, const rv_envelope *env, uint32_t pipe)
{
    Rivulet__Reply r = RIVULET__REPLY__INIT;
    rv_err *err = NULL;
    Rivulet__JobInfo *infos = NULL;
    Rivulet__JobInfo **ptrs = NULL;
    switch (env->body_case) {
    case RIVULET__ENVELOPE__BODY_SUBMIT_JOB: {
        const Rivulet__SubmitJob *s = env->submit_job;
        job *j = NULL;
        /* `--set` overrides are applied by the CLI before sending. */
        err = rv_coord_create_job(c, s->job_file, s->job_yaml, strlen(s->job_yaml), (int)s->parallelism, s->from_savepoint,
                         s->allow_non_restored_state, &j);
        if (!err) {
            r.job_id = j->id;
            rv_coord_schedule(c);
        }
        break;
    }
    case RIVULET__ENVELOPE__BODY_LIST_JOBS:
    case RIVULET__ENVELOPE__BODY_GET_JOB: {
        bool get = env->body_case == RIVULET__ENVELOPE__BODY_GET_JOB;
        int n = 0;
        for (job *j = c->jobs; j; j = j->next)
            n++;
        infos = rv_xcalloc((size_t)n + 1, sizeof(*infos));
        ptrs = rv_xcalloc((size_t)n + 1, sizeof(*ptrs));
        int k = 0;
        for (job *j = c->jobs; j; j = j->next) {
            if (get ? strcmp(j->id, env->get_job->job_id) != 0 : (!env->list_jobs->all && rv_job_state_final(j->state)))
                continue;
            fill_job_info(c, j, &infos[k], get);
            ptrs[k] = &infos[k];
            k++;
        }
        if (get && k == 0)
            err = rv_err_new(RV_ERR_NOT_FOUND, "no job with id %s", env->get_job->job_id);
        r.n_jobs = (size_t)k;
        r.jobs = ptrs;
        break;
    }
    case RIVULET__ENVELOPE__BODY_CANCEL_REQUEST:
        err = rv_coord_cancel_job(c, env->cancel_request->job_id);
        break;
    case RIVULET__ENVELOPE__BODY_SAVEPOINT_REQUEST: {
        job *j = rv_coord_find_job(c, env->savepoint_request->job_id);
        if (!j)
            err = rv_err_new(RV_ERR_NOT_FOUND, "no job with id %s", env->savepoint_request->job_id);
        else if (!(err = rv_coord_chk_savepoint(c, j, env->savepoint_request, pipe, env->request_id)))
            return; /* answered when the savepoint completes or fails */
        break;
    }
    default:
        err = rv_err_new(RV_ERR_INVALID, "unexpected %s from a client", rv_proto_body_name(env));
        break;
    }
    r.ok = err == NULL;
    r.error = err ? (char *)rv_err_msg(err) : "";
    rv_coord_reply(c, pipe, env->request_id, &r);
    rv_err_free(err);
    if (infos) {
        for (size_t k = 0; k < r.n_jobs; k++)
            free_job_info(&infos[k]);
        free(infos);
        free(ptrs);
    }
}

