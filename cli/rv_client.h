/* rv_client: the CLI's cluster commands — submit, list, status, cancel —
 * as request/reply exchanges with a coordinator (rv_ctl_request). Each
 * returns the process exit code. */
#ifndef RV_CLIENT_H
#define RV_CLIENT_H

int rv_cli_submit(int argc, char **argv);
int rv_cli_list(int argc, char **argv);
int rv_cli_status(int argc, char **argv);
int rv_cli_cancel(int argc, char **argv);

#endif
