/* rv_client: cluster commands of the CLI.
 *
 * The coordinator address comes from --coordinator, else
 * $RIVULET_COORDINATOR, else tcp://127.0.0.1:6123. An unreachable
 * coordinator is a one-line error within CONNECT_WAIT_MS, never a hang. */
#include "rv_client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rv_ctl.h"
#include "rv_file.h"
#include "rv_jobspec.h"
#include "rv_mem.h"
#include "rv_override.h"
#include "rv_record.h"

#define DEFAULT_COORDINATOR "tcp://127.0.0.1:6123"
#define CONNECT_WAIT_MS 3000
#define REPLY_TIMEOUT_MS 10000
#define WAIT_POLL_MS 200
#define SAVEPOINT_TIMEOUT_MS (30 * 60 * 1000)

typedef struct cli_opts {
    const char *coordinator;
    const char *arg;  /* the positional argument */
    const char *arg2; /* an optional second one (savepoint DIR) */
    bool wait, all, json;
    int parallelism;
    const char *sets[64];
    int nsets;
    const char *savepoint, *from_savepoint;
    bool drain, allow_non_restored;
    int64_t reply_ms;
} cli_opts;

/* Parses the flags shared by the cluster commands (want_arg: 1 = one
 * positional argument, 2 = one and an optional second). Returns 0 or an
 * exit code. */
static int parse(const char *cmd, int argc, char **argv, int want_arg, cli_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->reply_ms = REPLY_TIMEOUT_MS;
    o->coordinator = getenv("RIVULET_COORDINATOR");
    if (!o->coordinator || !*o->coordinator)
        o->coordinator = DEFAULT_COORDINATOR;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--coordinator") == 0 && i + 1 < argc)
            o->coordinator = argv[++i];
        else if (strcmp(a, "--wait") == 0)
            o->wait = true;
        else if (strcmp(a, "--all") == 0)
            o->all = true;
        else if (strcmp(a, "--json") == 0)
            o->json = true;
        else if (strcmp(a, "--drain") == 0)
            o->drain = true;
        else if (strcmp(a, "--allow-non-restored-state") == 0)
            o->allow_non_restored = true;
        else if (strcmp(a, "--savepoint") == 0 && i + 1 < argc)
            o->savepoint = argv[++i];
        else if (strcmp(a, "--from-savepoint") == 0 && i + 1 < argc)
            o->from_savepoint = argv[++i];
        else if (strcmp(a, "--set") == 0 && i + 1 < argc) {
            if (o->nsets == 64) {
                fprintf(stderr, "rivulet %s: at most 64 --set options\n", cmd);
                return 2;
            }
            o->sets[o->nsets++] = argv[++i];
        } else if ((strcmp(a, "-p") == 0 || strcmp(a, "--parallelism") == 0) && i + 1 < argc) {
            o->parallelism = atoi(argv[++i]);
            if (o->parallelism < 1 || o->parallelism > 1024) {
                fprintf(stderr, "rivulet %s: --parallelism needs a number between 1 and 1024\n", cmd);
                return 2;
            }
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "rivulet %s: unknown option '%s' (try 'rivulet help')\n", cmd, a);
            return 2;
        } else if (want_arg && !o->arg) {
            o->arg = a;
        } else if (want_arg == 2 && !o->arg2) {
            o->arg2 = a;
        } else {
            fprintf(stderr, "rivulet %s: unexpected argument '%s'\n", cmd, a);
            return 2;
        }
    }
    if (want_arg && !o->arg) {
        fprintf(stderr, "rivulet %s: missing argument (try 'rivulet help')\n", cmd);
        return 2;
    }
    return 0;
}

/* Sends req; on success *reply is an ok Reply. Prints errors. */
static int exchange(const char *cmd, const cli_opts *o, rv_envelope *req, rv_envelope **reply)
{
    rv_err *err = rv_ctl_request(o->coordinator, CONNECT_WAIT_MS, o->reply_ms, req, reply);
    if (err) {
        fprintf(stderr, "rivulet %s: cannot reach the coordinator at %s: %s\n", cmd, o->coordinator, rv_err_msg(err));
        rv_err_free(err);
        return 1;
    }
    if (!(*reply)->reply->ok) {
        fprintf(stderr, "rivulet %s: %s\n", cmd, (*reply)->reply->error);
        rv_proto_free(*reply);
        *reply = NULL;
        return 1;
    }
    return 0;
}

static int get_job(const cli_opts *o, const char *id, rv_envelope **reply)
{
    Rivulet__GetJob g = RIVULET__GET_JOB__INIT;
    g.job_id = (char *)id;
    rv_envelope env;
    rv_proto_init(&env);
    env.body_case = RIVULET__ENVELOPE__BODY_GET_JOB;
    env.get_job = &g;
    return exchange("status", o, &env, reply);
}

/* path made absolute against the working directory (the coordinator and
 * task managers run elsewhere). */
static char *absolute_path(const char *path)
{
    if (path[0] == '/')
        return rv_xstrdup(path);
    char cwd[4096];
    if (!getcwd(cwd, sizeof(cwd)))
        return rv_xstrdup(path);
    return rv_xasprintf("%s/%s", cwd, path);
}

static bool final_state(const char *s)
{
    return strcmp(s, "FINISHED") == 0 || strcmp(s, "FAILED") == 0 || strcmp(s, "CANCELED") == 0;
}

int rv_cli_submit(int argc, char **argv)
{
    cli_opts o;
    int rc = parse("submit", argc, argv, 1, &o);
    if (rc)
        return rc;
    char *raw = NULL, *text = NULL;
    size_t rawlen = 0, len = 0;
    rv_err *err = rv_file_read(o.arg, RV_JOBSPEC_MAX_BYTES, &raw, &rawlen);
    if (!err)
        err = rv_override_apply(raw, rawlen, o.arg, o.sets, o.nsets, &text, &len);
    free(raw);
    if (err) {
        fprintf(stderr, "rivulet submit: %s\n", rv_err_msg(err));
        rv_err_free(err);
        return 2;
    }
    Rivulet__SubmitJob s = RIVULET__SUBMIT_JOB__INIT;
    s.job_file = (char *)o.arg;
    s.job_yaml = text;
    s.parallelism = (uint32_t)o.parallelism;
    char *from = o.from_savepoint ? absolute_path(o.from_savepoint) : NULL;
    s.from_savepoint = from ? from : "";
    s.allow_non_restored_state = o.allow_non_restored;
    rv_envelope env;
    rv_proto_init(&env);
    env.body_case = RIVULET__ENVELOPE__BODY_SUBMIT_JOB;
    env.submit_job = &s;
    rv_envelope *reply = NULL;
    rc = exchange("submit", &o, &env, &reply);
    free(text);
    free(from);
    if (rc)
        return rc;
    char *id = rv_xstrdup(reply->reply->job_id);
    rv_proto_free(reply);
    printf("%s\n", id);
    fflush(stdout);
    if (!o.wait) {
        free(id);
        return 0;
    }
    for (;;) {
        rv_envelope *r = NULL;
        if ((rc = get_job(&o, id, &r)))
            break;
        const Rivulet__JobInfo *j = r->reply->n_jobs ? r->reply->jobs[0] : NULL;
        if (j && final_state(j->state)) {
            rc = strcmp(j->state, "FINISHED") == 0 ? 0 : 1;
            if (rc)
                fprintf(stderr, "rivulet: job %s %s%s%s\n", id, j->state, j->error[0] ? ": " : "", j->error);
            rv_proto_free(r);
            break;
        }
        rv_proto_free(r);
        usleep(WAIT_POLL_MS * 1000);
    }
    free(id);
    return rc;
}

void rv_cli_format_time(int64_t ms, char *buf, size_t cap)
{
    if (ms <= 0) {
        snprintf(buf, cap, "-");
        return;
    }
    rv_buf b = {0};
    rv_ts_format_iso8601(ms, &b);
    snprintf(buf, cap, "%.*s", (int)b.len, b.data);
    rv_buf_fini(&b);
}

/* A watermark: "-" before the first, "end" for the final one, else ISO-8601. */
void rv_cli_format_watermark(int64_t wm, char *buf, size_t cap)
{
    if (wm == INT64_MIN)
        snprintf(buf, cap, "-");
    else if (wm == INT64_MAX)
        snprintf(buf, cap, "end");
    else {
        rv_buf b = {0};
        rv_ts_format_iso8601(wm, &b);
        snprintf(buf, cap, "%.*s", (int)b.len, b.data);
        rv_buf_fini(&b);
    }
}

int rv_cli_list(int argc, char **argv)
{
    cli_opts o;
    int rc = parse("list", argc, argv, 0, &o);
    if (rc)
        return rc;
    Rivulet__ListJobs l = RIVULET__LIST_JOBS__INIT;
    l.all = o.all;
    rv_envelope env;
    rv_proto_init(&env);
    env.body_case = RIVULET__ENVELOPE__BODY_LIST_JOBS;
    env.list_jobs = &l;
    rv_envelope *reply = NULL;
    if ((rc = exchange("list", &o, &env, &reply)))
        return rc;
    printf("%-14s %-10s %-25s %s\n", "JOB", "STATE", "STARTED", "NAME");
    for (size_t i = 0; i < reply->reply->n_jobs; i++) {
        const Rivulet__JobInfo *j = reply->reply->jobs[i];
        char t[40];
        rv_cli_format_time(j->start_time_ms, t, sizeof(t));
        printf("%-14s %-10s %-25s %s\n", j->job_id, j->state, t, j->name);
    }
    rv_proto_free(reply);
    return 0;
}

static void json_str(const char *s, rv_buf *out)
{
    rv_buf_append(out, "\"", 1);
    for (const char *p = s; *p; p++) {
        if (*p == '"' || *p == '\\')
            rv_buf_printf(out, "\\%c", *p);
        else if ((unsigned char)*p < 0x20)
            rv_buf_printf(out, "\\u%04x", (unsigned char)*p);
        else
            rv_buf_append(out, p, 1);
    }
    rv_buf_append(out, "\"", 1);
}

int rv_cli_status(int argc, char **argv)
{
    cli_opts o;
    int rc = parse("status", argc, argv, 1, &o);
    if (rc)
        return rc;
    rv_envelope *reply = NULL;
    if ((rc = get_job(&o, o.arg, &reply)))
        return rc;
    if (reply->reply->n_jobs == 0) {
        fprintf(stderr, "rivulet status: no job with id %s\n", o.arg);
        rv_proto_free(reply);
        return 1;
    }
    const Rivulet__JobInfo *j = reply->reply->jobs[0];
    if (o.json) {
        rv_buf b = {0};
        rv_buf_append(&b, "{\"job_id\":", 10);
        json_str(j->job_id, &b);
        rv_buf_append(&b, ",\"name\":", 8);
        json_str(j->name, &b);
        rv_buf_append(&b, ",\"state\":", 9);
        json_str(j->state, &b);
        rv_buf_printf(&b, ",\"start_time_ms\":%lld,\"end_time_ms\":%lld,\"error\":", (long long)j->start_time_ms,
                      (long long)j->end_time_ms);
        json_str(j->error, &b);
        rv_buf_printf(&b, ",\"restarts\":%u,\"last_failure\":", (unsigned)j->restarts);
        json_str(j->last_failure, &b);
        rv_buf_printf(&b, ",\"last_checkpoint\":%llu,\"last_checkpoint_ms\":%lld", (unsigned long long)j->last_checkpoint,
                      (long long)j->last_checkpoint_ms);
        rv_buf_append(&b, ",\"subtasks\":[", 13);
        for (size_t i = 0; i < j->n_subtasks; i++) {
            const Rivulet__SubtaskInfo *s = j->subtasks[i];
            rv_buf_printf(&b, "%s{\"task\":%u,\"subtask\":%u,\"chain\":", i ? "," : "", s->task, s->subtask);
            json_str(s->chain, &b);
            rv_buf_append(&b, ",\"taskmanager\":", 15);
            json_str(s->tm, &b);
            rv_buf_printf(&b, ",\"records_in\":%llu,\"records_out\":%llu,\"watermark\":", (unsigned long long)s->records_in,
                          (unsigned long long)s->records_out);
            if (s->watermark == INT64_MIN)
                rv_buf_append(&b, "null}", 5);
            else
                rv_buf_printf(&b, "%lld}", (long long)s->watermark);
        }
        rv_buf_append(&b, "]}\n", 3);
        fwrite(b.data, 1, b.len, stdout);
        rv_buf_fini(&b);
    } else {
        char t0[40], t1[40];
        rv_cli_format_time(j->start_time_ms, t0, sizeof(t0));
        rv_cli_format_time(j->end_time_ms, t1, sizeof(t1));
        printf("job %s (%s): %s\nstarted %s, ended %s\n", j->job_id, j->name, j->state, t0, t1);
        if (j->error[0])
            printf("error: %s\n", j->error);
        if (j->restarts)
            printf("restarts: %u, last failure: %s\n", (unsigned)j->restarts, j->last_failure);
        if (j->last_checkpoint) {
            char tc[40];
            rv_cli_format_time(j->last_checkpoint_ms, tc, sizeof(tc));
            printf("last checkpoint: %llu at %s\n", (unsigned long long)j->last_checkpoint, tc);
        }
        printf("%-5s %-8s %-28s %12s %12s  %-24s  %s\n", "TASK", "SUBTASK", "TASK MANAGER", "RECORDS IN", "RECORDS OUT",
               "WATERMARK", "CHAIN");
        for (size_t i = 0; i < j->n_subtasks; i++) {
            const Rivulet__SubtaskInfo *s = j->subtasks[i];
            char wm[40];
            rv_cli_format_watermark(s->watermark, wm, sizeof(wm));
            printf("%-5u %-8u %-28s %12llu %12llu  %-24s  %s\n", s->task, s->subtask, s->tm[0] ? s->tm : "-",
                   (unsigned long long)s->records_in, (unsigned long long)s->records_out, wm, s->chain);
        }
    }
    rv_proto_free(reply);
    return 0;
}

int rv_cli_cancel(int argc, char **argv)
{
    cli_opts o;
    int rc = parse("cancel", argc, argv, 1, &o);
    if (rc)
        return rc;
    Rivulet__CancelJobRequest c = RIVULET__CANCEL_JOB_REQUEST__INIT;
    c.job_id = (char *)o.arg;
    rv_envelope env;
    rv_proto_init(&env);
    env.body_case = RIVULET__ENVELOPE__BODY_CANCEL_REQUEST;
    env.cancel_request = &c;
    rv_envelope *reply = NULL;
    if ((rc = exchange("cancel", &o, &env, &reply)))
        return rc;
    rv_proto_free(reply);
    printf("cancel requested for job %s\n", o.arg);
    return 0;
}

/* savepoint JOB [DIR] and stop JOB --savepoint DIR [--drain]: one request,
 * answered when the savepoint is complete. */
static int request_savepoint(const char *cmd, const cli_opts *o, const char *dir, bool stop)
{
    Rivulet__SavepointRequest r = RIVULET__SAVEPOINT_REQUEST__INIT;
    r.job_id = (char *)o->arg;
    char *abs = dir ? absolute_path(dir) : NULL;
    r.dir = abs ? abs : "";
    r.stop = stop;
    r.drain = o->drain;
    rv_envelope env;
    rv_proto_init(&env);
    env.body_case = RIVULET__ENVELOPE__BODY_SAVEPOINT_REQUEST;
    env.savepoint_request = &r;
    rv_envelope *reply = NULL;
    cli_opts wait = *o;
    wait.reply_ms = SAVEPOINT_TIMEOUT_MS;
    int rc = exchange(cmd, &wait, &env, &reply);
    free(abs);
    if (rc)
        return rc;
    printf("%s\n", reply->reply->path);
    rv_proto_free(reply);
    return 0;
}

int rv_cli_savepoint(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "inspect") == 0)
        return rv_cli_savepoint_inspect(argc - 1, argv + 1);
    cli_opts o;
    int rc = parse("savepoint", argc, argv, 2, &o);
    if (rc)
        return rc;
    if (o.drain || o.savepoint) {
        fprintf(stderr, "rivulet savepoint: --drain and --savepoint belong to 'rivulet stop'\n");
        return 2;
    }
    return request_savepoint("savepoint", &o, o.arg2, false);
}

int rv_cli_stop(int argc, char **argv)
{
    cli_opts o;
    int rc = parse("stop", argc, argv, 1, &o);
    if (rc)
        return rc;
    if (!o.savepoint) {
        fprintf(stderr, "rivulet stop: --savepoint DIR is required (to stop without one, use 'rivulet cancel')\n");
        return 2;
    }
    return request_savepoint("stop", &o, o.savepoint, true);
}
