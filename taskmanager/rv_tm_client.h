/* rv_tm_client: a task manager process's link to the coordinator — the
 * control-plane side of rv_taskmanager.
 *
 * It starts the task manager's data plane and runtime, dials the
 * coordinator (in the background: it reconnects when the coordinator
 * restarts), registers with its slots and data address, heartbeats with
 * the metrics of its subtasks, turns DeployJob / CancelJob / ReleaseJob
 * into runtime calls (every task manager plans the job text itself, so
 * operator ids and key groups agree everywhere), and reports each job's
 * end with final metrics. When the coordinator connection is lost, the
 * task manager cancels its jobs (their coordinator cannot track them any
 * more) and frees their slots. */
#ifndef RV_TM_CLIENT_H
#define RV_TM_CLIENT_H

#include <stdint.h>

#include "rv_config.h"
#include "rv_err.h"

typedef struct rv_tm_config {
    char *coordinator; /* control address of the coordinator */
    int64_t slots;
    char *data_listen; /* data-plane address (port 0 = any free port) */
    char *name;        /* unique name; default tm-<host>-<pid> */
    char *state_dir;   /* keyed state spill directory; NULL: private temp dir */
} rv_tm_config;

extern const rv_cfg_key rv_tm_config_keys[];
extern const size_t rv_tm_config_nkeys;

typedef struct rv_tm_client rv_tm_client;

rv_err *rv_tm_client_start(const rv_tm_config *cfg, rv_tm_client **out);
/* Cancels local jobs, disconnects, frees. */
void rv_tm_client_stop(rv_tm_client *c);
const char *rv_tm_client_name(const rv_tm_client *c);

#endif
