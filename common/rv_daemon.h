/* rv_daemon: what the rivulet-coordinator and rivulet-taskmanager
 * processes share: a YAML config file read through a config table (so
 * every flag has a key and both are documented from one table), flags
 * that win over the file, and waiting for SIGINT/SIGTERM. */
#ifndef RV_DAEMON_H
#define RV_DAEMON_H

#include <stdio.h>

#include "rv_config.h"

/* The whole command line of a daemon: --config FILE (read first), then
 * every "--key value" flag of the table, -v/--verbose and -q/--quiet (log
 * levels). Returns 0 when the daemon should run, 1 after printing --help
 * to stdout, 2 after printing an error to stderr. `prog` names the
 * program in messages and usage. */
int rv_daemon_args(int argc, char **argv, const char *prog, const rv_cfg_key *keys, size_t n, void *obj);
/* Applies one "--key value" flag (key as in the table, '-' or '_'),
 * converting value like the YAML would be. */
rv_err *rv_daemon_set(const rv_cfg_key *keys, size_t n, const char *key, const char *value, const char *what, void *obj);
/* Blocks SIGINT/SIGTERM in the calling thread (call first, before threads
 * start, so every thread inherits it) and later waits for one of them. */
void rv_daemon_block_signals(void);
int rv_daemon_wait_signal(void);
/* Starts a watchdog for the shutdown that follows a signal: if the process
 * has not exited after `seconds`, it logs a warning and exits with status
 * 0. By then jobs are canceled and state released; what can remain is
 * NNG 1.5.2's nng_close, which can hang while peers are reconnecting
 * (an upstream bug fixed in later NNG releases). A daemon must not ignore
 * SIGTERM because of it. */
void rv_daemon_exit_watchdog(int seconds, const char *prog);
/* Prints "  --key VALUE   doc (default ...)" lines for usage text. */
void rv_daemon_usage(const rv_cfg_key *keys, size_t n, FILE *out);

#endif
