/* rv_recovery_conf: a job's `checkpointing` and `restart` settings,
 * parsed by the job spec (common/rv_jobspec.c) and used by the coordinator
 * (when to trigger checkpoints, how to restart after a failure) and the
 * task managers (barrier alignment). */
#ifndef RV_RECOVERY_CONF_H
#define RV_RECOVERY_CONF_H

#include <stdint.h>

typedef enum { RV_CHK_EXACTLY_ONCE = 0, RV_CHK_AT_LEAST_ONCE = 1 } rv_chk_mode;

typedef struct rv_chk_conf {
    int64_t interval_ms; /* 0: the job takes no checkpoints */
    rv_chk_mode mode;
    int64_t timeout_ms;   /* a checkpoint not complete by then is abandoned */
    int64_t min_pause_ms; /* from the end of one checkpoint to the next trigger */
    int retained;         /* completed checkpoints kept on disk */
} rv_chk_conf;

typedef enum { RV_RESTART_NONE = 0, RV_RESTART_FIXED_DELAY = 1, RV_RESTART_EXPONENTIAL = 2 } rv_restart_strategy;

typedef struct rv_restart_conf {
    rv_restart_strategy strategy;
    int attempts;         /* restarts before the job fails */
    int64_t delay_ms;     /* before the first restart (fixed: before each) */
    int64_t max_delay_ms; /* exponential: the delay doubles up to this */
} rv_restart_conf;

#endif
