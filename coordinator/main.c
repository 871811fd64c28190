/* rivulet-coordinator: the coordinator as a process.
 *   rivulet-coordinator [--config FILE] [--listen URL] [--heartbeat-interval D]
 *                       [--heartbeat-timeout D] [--slot-wait-timeout D] [-v|-q]
 * Flags win over the config file's keys (the same names with '_'). */
#include <stdio.h>
#include <string.h>

#include "rv_coordinator.h"
#include "rv_daemon.h"
#include "rv_log.h"

int main(int argc, char **argv)
{
    rv_daemon_block_signals();
    rv_coord_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    int rc = rv_daemon_args(argc, argv, "rivulet-coordinator", rv_coord_config_keys, rv_coord_config_nkeys, &cfg);
    rv_coord *c = NULL;
    if (rc == 0) {
        rv_err *err = rv_coord_new(&cfg, &c);
        if (err) {
            fprintf(stderr, "rivulet-coordinator: %s\n", rv_err_msg(err));
            rv_err_free(err);
            rc = 2;
        }
    }
    if (rc == 0) {
        int sig = rv_daemon_wait_signal();
        rv_daemon_exit_watchdog(3, "rivulet-coordinator");
        RV_LOG_INFO("coordinator", "signal %d: stopping", sig);
        rv_coord_free(c);
    }
    rv_config_free(rv_coord_config_keys, rv_coord_config_nkeys, &cfg);
    return rc == 1 ? 0 : rc;
}
