/* rivulet: the command-line interface.
 *
 *   rivulet run job.yaml       run a job on the embedded mini-cluster
 *                              (coordinator and one task manager in this
 *                              process) until it finishes or Ctrl-C
 *   rivulet validate job.yaml  check a job file without running it
 *   rivulet plan job.yaml      print the tasks (chains), parallelism and
 *                              partitioning; --dot for Graphviz
 *   rivulet doc                print the job-spec reference of every plugin
 *
 * Exit codes: 0 success, 1 the job failed, 2 bad usage or invalid job
 * file, 130 canceled by a signal. */
#include <getopt.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "rv_coordinator.h"
#include "rv_graph.h"
#include "rv_jobspec.h"
#include "rv_log.h"
#include "rv_mem.h"
#include "rv_override.h"
#include "rv_plugin.h"
#include "rv_client.h"
#include "rv_file.h"
#include "rv_time.h"
#include "rv_tm_client.h"

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: rivulet <command> [options]\n"
            "\n"
            "commands:\n"
            "  run <job.yaml>       run a job on the embedded mini-cluster until it ends\n"
            "      -p, --parallelism N   override the job's default parallelism\n"
            "      --set KEY=VALUE       override a key: a job key, or <node id>.<key> (repeatable)\n"
            "      -q, --quiet           log warnings and errors only\n"
            "      -v, --verbose         log debug messages\n"
            "      --stats               print records, time and CPU per record at the end\n"
            "      --state-dir DIR       where keyed state spills to RocksDB (default: a temp dir, removed)\n"
            "      --checkpoint-dir DIR  where checkpoints go (default: a temp dir, removed at exit)\n"
            "  validate <job.yaml>  check a job file and report every problem's line:column\n"
            "  plan <job.yaml>      print tasks, chaining, parallelism and partitioning\n"
            "      --dot                 as a Graphviz graph\n"
            "  submit <job.yaml>    submit a job to a cluster; prints its id\n"
            "      --wait                block until the job ends; exit 0 only if it FINISHED\n"
            "      -p, --parallelism N   override the job's default parallelism\n"
            "      --set KEY=VALUE       override a key (as for run)\n"
            "      --from-savepoint PATH resume from a savepoint (or a checkpoint's chk-<n> directory)\n"
            "      --allow-non-restored-state  drop state of nodes the job no longer has\n"
            "  list [--all]         jobs of the cluster (--all: also ended ones)\n"
            "  status <job> [--json]  state, start time, subtasks, where they run, records in/out\n"
            "  cancel <job>         stop a job\n"
            "  savepoint <job> [DIR]  take a savepoint (into DIR/savepoint-<job>-<n>); prints its path\n"
            "  savepoint inspect PATH  operators, key groups, state sizes, positions and watermarks of a savepoint\n"
            "  stop <job> --savepoint DIR [--drain]  take a savepoint, then end the job (FINISHED);\n"
            "                       --drain: sources end first, so every window fires before the savepoint\n"
            "      (cluster commands: --coordinator URL or $RIVULET_COORDINATOR, default tcp://127.0.0.1:6123)\n"
            "  doc                  print the job spec reference of every source, operator and sink\n"
            "  help                 this text\n");
}

/* Reads a job file, applies --set overrides and the parallelism (> 0),
 * and plans it. Prints the error and returns 2 if anything is wrong. On
 * success *js is the plan and, if text is not NULL, *text and *len the final
 * job text (freed by the caller). */
static int load_job(const char *path, const char *const *sets, int nsets, int parallelism, char **text, size_t *len,
                    rv_jobspec **js)
{
    char *raw = NULL, *final = NULL;
    size_t n = 0, flen = 0;
    *js = NULL;
    rv_err *err = rv_file_read(path, RV_JOBSPEC_MAX_BYTES, &raw, &n);
    if (err)
        err = rv_err_wrap(err, "job file");
    else
        err = rv_override_apply(raw, n, path, sets, nsets, &final, &flen);
    free(raw);
    if (!err)
        err = rv_jobspec_parse(final, flen, path, js);
    if (!err && parallelism > 0)
        err = rv_jobspec_set_parallelism(*js, parallelism);
    if (err) {
        fprintf(stderr, "%s\n", rv_err_msg(err));
        rv_err_free(err);
        rv_jobspec_unref(*js);
        *js = NULL;
        free(final);
        return 2;
    }
    if (text) {
        *text = final;
        *len = flen;
    } else {
        free(final);
    }
    return 0;
}

static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Removes (and frees) a directory this process created for itself. */
static void remove_own_dir(char *dir)
{
    if (!dir)
        return;
    rv_err *err = rv_file_remove_tree(dir);
    if (err) {
        fprintf(stderr, "rivulet: %s\n", rv_err_msg(err));
        rv_err_free(err);
    }
    free(dir);
}

static int cmd_run(int argc, char **argv)
{
    int parallelism = 0;
    bool stats = false;
    const char *sets[64];
    int nsets = 0;
    static const struct option opts[] = {{"parallelism", required_argument, NULL, 'p'},
                                         {"set", required_argument, NULL, 'S'},
                                         {"quiet", no_argument, NULL, 'q'},
                                         {"verbose", no_argument, NULL, 'v'},
                                         {"stats", no_argument, NULL, 's'},
                                         {"state-dir", required_argument, NULL, 'D'},
                                         {"checkpoint-dir", required_argument, NULL, 'C'},
                                         {NULL, 0, NULL, 0}};
    const char *state_dir = NULL, *checkpoint_dir = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "p:qv", opts, NULL)) != -1) {
        switch (c) {
        case 'p':
            parallelism = atoi(optarg);
            if (parallelism < 1) {
                fprintf(stderr, "rivulet run: --parallelism needs a number >= 1\n");
                return 2;
            }
            break;
        case 'q': rv_log_set_level(RV_LOG_LVL_WARN); break;
        case 'v': rv_log_set_level(RV_LOG_LVL_DEBUG); break;
        case 's': stats = true; break;
        case 'D': state_dir = optarg; break;
        case 'C': checkpoint_dir = optarg; break;
        case 'S':
            if (nsets == 64) {
                fprintf(stderr, "rivulet run: at most 64 --set options\n");
                return 2;
            }
            sets[nsets++] = optarg;
            break;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "rivulet run: expected one job file\n");
        return 2;
    }
    const char *path = argv[optind];
    char *text = NULL;
    size_t len = 0;
    /* Validate first: a bad file is exit code 2 before anything starts. */
    rv_jobspec *js = NULL;
    int rc = load_job(path, sets, nsets, parallelism, &text, &len, &js);
    if (rc)
        return rc;
    rv_job_graph *g = rv_job_graph_build(js);
    int slots = rv_job_graph_slots(g);
    rv_job_graph_free(g);
    /* Checkpoints without a directory: a private one, gone at exit (they
     * still serve restarts within this run). */
    char *own_chk_dir = NULL;
    if (js->checkpointing.interval_ms > 0 && !checkpoint_dir) {
        const char *tmp = getenv("TMPDIR");
        own_chk_dir = rv_xasprintf("%s/rivulet-checkpoints-%d", tmp && *tmp ? tmp : "/tmp", (int)getpid());
        checkpoint_dir = own_chk_dir;
    }
    rv_jobspec_unref(js);

    /* The embedded mini-cluster: a coordinator and one task manager in
     * this process, talking over inproc:// exactly as a cluster does over
     * tcp://. */
    char coord_url[64], data_url[64];
    snprintf(coord_url, sizeof(coord_url), "inproc://rivulet-%d-coordinator", (int)getpid());
    snprintf(data_url, sizeof(data_url), "inproc://rivulet-%d-data", (int)getpid());
    rv_coord_config ccfg = {.listen = coord_url, .heartbeat_interval_ms = 1000, .heartbeat_timeout_ms = 10000,
                            .slot_wait_timeout_ms = 10000, .checkpoint_dir = (char *)checkpoint_dir};
    rv_tm_config tcfg = {.coordinator = coord_url, .slots = slots, .data_listen = data_url, .name = "tm-0",
                            .state_dir = (char *)state_dir};
    rv_coord *coord = NULL;
    rv_tm_client *tm = NULL;
    rv_err *err = NULL;
    if ((err = rv_coord_new(&ccfg, &coord)) || (err = rv_tm_client_start(&tcfg, &tm))) {
        fprintf(stderr, "rivulet: %s\n", rv_err_msg(err));
        rv_err_free(err);
        rv_coord_free(coord);
        free(text);
        free(own_chk_dir);
        return 1;
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESETHAND; /* a second Ctrl-C ends the process at once */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    double cpu0 = cpu_seconds();
    int64_t t0 = rv_now_ns();
    char *job_id = NULL;
    err = rv_coord_submit(coord, path, text, len, parallelism, &job_id);
    free(text);
    if (err) {
        fprintf(stderr, "rivulet: %s\n", rv_err_msg(err));
        rv_err_free(err);
        rv_coord_free(coord);
        rv_tm_client_stop(tm);
        remove_own_dir(own_chk_dir);
        return 1;
    }
    rv_job_state st;
    bool canceled_by_signal = false;
    char *error = NULL;
    for (;;) {
        st = rv_coord_wait(coord, job_id, 100, &error);
        if (rv_job_state_final(st))
            break;
        if (interrupted && !canceled_by_signal) {
            canceled_by_signal = true;
            fprintf(stderr, "rivulet: canceling job %s (Ctrl-C again to exit at once)\n", job_id);
            rv_err_free(rv_coord_cancel(coord, job_id));
        }
    }
    double wall = (double)(rv_now_ns() - t0) / 1e9;
    double cpu = cpu_seconds() - cpu0;
    if (stats) {
        rv_subtask_metrics m;
        memset(&m, 0, sizeof(m));
        rv_coord_job_metrics(coord, job_id, &m);
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        fprintf(stderr,
                "rivulet: stats: state=%s events=%llu bad_records=%llu wall_s=%.3f cpu_s=%.3f events_per_s=%.0f "
                "events_per_cpu_s=%.0f peak_rss_mib=%.1f\n",
                rv_job_state_name(st), (unsigned long long)m.records_in, (unsigned long long)m.bad_records, wall, cpu,
                wall > 0 ? (double)m.records_in / wall : 0, cpu > 0 ? (double)m.records_in / cpu : 0,
                (double)ru.ru_maxrss / 1024.0);
    }
    if (st == RV_JOB_FAILED)
        fprintf(stderr, "rivulet: job failed: %s\n", error ? error : "unknown error");
    free(error);
    free(job_id);
    rv_tm_client_stop(tm); /* the job is over: nothing runs there any more */
    rv_coord_free(coord);
    remove_own_dir(own_chk_dir);
    if (st == RV_JOB_FINISHED)
        return 0;
    if (st == RV_JOB_CANCELED)
        return canceled_by_signal ? 130 : 1;
    return 1;
}

static int cmd_validate(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "rivulet validate: expected one job file\n");
        return 2;
    }
    rv_jobspec *js = NULL;
    int rc = load_job(argv[1], NULL, 0, 0, NULL, NULL, &js);
    if (rc)
        return rc;
    printf("%s: ok (job '%s', %d nodes)\n", argv[1], js->name, js->nnodes);
    rv_jobspec_unref(js);
    return 0;
}

static int cmd_plan(int argc, char **argv)
{
    bool dot = false;
    const char *file = NULL;
    int parallelism = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--dot") == 0)
            dot = true;
        else if ((strcmp(argv[i], "-p") == 0 || strcmp(argv[i], "--parallelism") == 0) && i + 1 < argc) {
            parallelism = atoi(argv[++i]);
            if (parallelism < 1) {
                fprintf(stderr, "rivulet plan: --parallelism needs a number >= 1\n");
                return 2;
            }
        }
        else if (!file)
            file = argv[i];
        else {
            fprintf(stderr, "rivulet plan: unexpected argument '%s'\n", argv[i]);
            return 2;
        }
    }
    if (!file) {
        fprintf(stderr, "rivulet plan: expected a job file\n");
        return 2;
    }
    rv_jobspec *js = NULL;
    int rc = load_job(file, NULL, 0, parallelism, NULL, NULL, &js);
    if (rc)
        return rc;
    rv_job_graph *g = rv_job_graph_build(js);
    if (dot)
        rv_job_graph_dot(g, stdout);
    else
        rv_job_graph_print(g, stdout);
    rv_job_graph_free(g);
    rv_jobspec_unref(js);
    return 0;
}

static int cmd_doc(void)
{
    static const char *const kinds[] = {"Sources", "Operators", "Sinks"};
    printf("## Job keys\n\n");
    rv_jobspec_doc(stdout);
    printf("\n");
    for (int k = 0; k < 3; k++) {
        printf("## %s\n\n", kinds[k]);
        for (const rv_plugin *const *p = rv_plugin_all(); *p; p++) {
            if ((int)(*p)->kind != k)
                continue;
            printf("### `%s`\n\n%s\n\n", (*p)->name, (*p)->doc ? (*p)->doc : "");
            if ((*p)->nconfig)
                rv_config_doc((*p)->config, (*p)->nconfig, stdout);
            else
                printf("No keys of its own.\n");
            printf("\n");
            if ((*p)->doc_more) {
                (*p)->doc_more(stdout);
                printf("\n");
            }
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "run") == 0)
        return cmd_run(argc - 1, argv + 1);
    if (strcmp(cmd, "validate") == 0)
        return cmd_validate(argc - 1, argv + 1);
    if (strcmp(cmd, "plan") == 0)
        return cmd_plan(argc - 1, argv + 1);
    if (strcmp(cmd, "doc") == 0)
        return cmd_doc();
    if (strcmp(cmd, "submit") == 0)
        return rv_cli_submit(argc - 1, argv + 1);
    if (strcmp(cmd, "list") == 0)
        return rv_cli_list(argc - 1, argv + 1);
    if (strcmp(cmd, "status") == 0)
        return rv_cli_status(argc - 1, argv + 1);
    if (strcmp(cmd, "cancel") == 0)
        return rv_cli_cancel(argc - 1, argv + 1);
    if (strcmp(cmd, "savepoint") == 0)
        return rv_cli_savepoint(argc - 1, argv + 1);
    if (strcmp(cmd, "stop") == 0)
        return rv_cli_stop(argc - 1, argv + 1);
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "rivulet: unknown command '%s' (try 'rivulet help')\n", cmd);
    return 2;
}
