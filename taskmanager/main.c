/* rivulet-taskmanager: a task manager as a process.
 *   rivulet-taskmanager [--config FILE] [--coordinator URL] [--slots N]
 *                       [--data-listen URL] [--name NAME] [-v|-q]
 * Flags win over the config file's keys (the same names with '_'). */
#include <stdio.h>
#include <string.h>

#include "rv_daemon.h"
#include "rv_log.h"
#include "rv_tm_client.h"

int main(int argc, char **argv)
{
    rv_daemon_block_signals();
    rv_tm_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    int rc = rv_daemon_args(argc, argv, "rivulet-taskmanager", rv_tm_config_keys, rv_tm_config_nkeys, &cfg);
    rv_tm_client *c = NULL;
    if (rc == 0) {
        rv_err *err = rv_tm_client_start(&cfg, &c);
        if (err) {
            fprintf(stderr, "rivulet-taskmanager: %s\n", rv_err_msg(err));
            rv_err_free(err);
            rc = 2;
        }
    }
    if (rc == 0) {
        int sig = rv_daemon_wait_signal();
        rv_daemon_exit_watchdog(3, "rivulet-taskmanager");
        RV_LOG_INFO(rv_tm_client_name(c), "signal %d: stopping", sig);
        rv_tm_client_stop(c);
    }
    rv_config_free(rv_tm_config_keys, rv_tm_config_nkeys, &cfg);
    return rc == 1 ? 0 : rc;
}
