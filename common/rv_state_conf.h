/* rv_state_conf: a job's `state` settings (backend and memory budget),
 * parsed by the job spec and used by the state store
 * (taskmanager/state/rv_state.h). */
#ifndef RV_STATE_CONF_H
#define RV_STATE_CONF_H

#include <stdint.h>

typedef enum { RV_STATE_ROCKSDB = 0, RV_STATE_MEMORY = 1 } rv_state_backend;

typedef struct rv_state_conf {
    rv_state_backend backend;
    int64_t memory_budget; /* bytes of cache per operator instance */
} rv_state_conf;

/* Defaults: rocksdb, 256 MiB. */
#define RV_STATE_DEFAULT_BUDGET ((int64_t)256 << 20)

#endif
