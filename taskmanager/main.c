/* rivulet-taskmanager: a task manager as a process.
 *   rivulet-taskmanager [--config FILE] [--coordinator URL] [--slots N]
 *                       [--data-listen URL] [--name NAME] [-v|-q]
 * Flags win over the config file's keys (the same names with '_'). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rv_daemon.h"
#include "rv_log.h"
#include "rv_tm_client.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: rivulet-taskmanager [--config FILE] [options]\n\noptions (also keys of the config file):\n");
    rv_daemon_usage(rv_tm_config_keys, rv_tm_config_nkeys, out);
    fprintf(out, "  %-22s %s\n  %-22s %s\n", "-v, --verbose", "log debug messages", "-q, --quiet", "log warnings and errors only");
}

int main(int argc, char **argv)
{
    rv_daemon_block_signals();
    const char *config = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            config = argv[++i];
    }
    rv_tm_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    rv_err *err = rv_daemon_load_config(rv_tm_config_keys, rv_tm_config_nkeys, config, "task manager config", &cfg);
    for (int i = 1; !err && i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0) {
            i++;
        } else if (strcmp(argv[i], "-v") == 0 || strcmp(argv[i], "--verbose") == 0) {
            rv_log_set_level(RV_LOG_LVL_DEBUG);
        } else if (strcmp(argv[i], "-q") == 0 || strcmp(argv[i], "--quiet") == 0) {
            rv_log_set_level(RV_LOG_LVL_WARN);
        } else if (strncmp(argv[i], "--", 2) == 0 && i + 1 < argc) {
            err = rv_daemon_set(rv_tm_config_keys, rv_tm_config_nkeys, argv[i] + 2, argv[i + 1], "option", &cfg);
            i++;
        } else {
            err = rv_err_new(RV_ERR_INVALID, "unexpected argument '%s' (try --help)", argv[i]);
        }
    }
    rv_tm_client *c = NULL;
    if (!err)
        err = rv_tm_client_start(&cfg, &c);
    if (err) {
        fprintf(stderr, "rivulet-taskmanager: %s\n", rv_err_msg(err));
        rv_err_free(err);
        rv_config_free(rv_tm_config_keys, rv_tm_config_nkeys, &cfg);
        return 2;
    }
    int sig = rv_daemon_wait_signal();
    RV_LOG_INFO(rv_tm_client_name(c), "signal %d: stopping", sig);
    rv_tm_client_stop(c);
    rv_config_free(rv_tm_config_keys, rv_tm_config_nkeys, &cfg);
    return 0;
}
