/* rv_client: the CLI's cluster commands — submit, list, status, cancel —
 * as request/reply exchanges with a coordinator (rv_ctl_request). Each
 * returns the process exit code. */
#ifndef RV_CLIENT_H
#define RV_CLIENT_H

#include <stddef.h>
#include <stdint.h>

int rv_cli_submit(int argc, char **argv);
int rv_cli_list(int argc, char **argv);
int rv_cli_status(int argc, char **argv);
int rv_cli_cancel(int argc, char **argv);
int rv_cli_savepoint(int argc, char **argv);
int rv_cli_stop(int argc, char **argv);
/* savepoint inspect PATH (rv_savepoint_inspect.c): local, no coordinator. */
int rv_cli_savepoint_inspect(int argc, char **argv);

/* Epoch milliseconds as ISO-8601 ("-" for none); a watermark likewise,
 * "end" for the final one. */
void rv_cli_format_time(int64_t ms, char *buf, size_t cap);
void rv_cli_format_watermark(int64_t wm, char *buf, size_t cap);

#endif
