/* rv_daemon: config files, flags and signals of the daemons. */
#include "rv_daemon.h"

#include <ctype.h>
#include <signal.h>
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "rv_log.h"
#include "rv_mem.h"
#include "rv_record.h"
#include "rv_yaml.h"

static rv_err *load_config(const rv_cfg_key *keys, size_t n, const char *path, const char *what, void *obj)
{
    if (!path)
        return rv_config_apply(keys, n, NULL, NULL, what, obj);
    rv_ydoc *doc = NULL;
    rv_err *err = rv_yaml_parse_file(path, &doc);
    if (!err)
        err = rv_config_apply(keys, n, rv_ydoc_root(doc), NULL, what, obj);
    rv_ydoc_free(doc);
    return err;
}

rv_err *rv_daemon_set(const rv_cfg_key *keys, size_t n, const char *key, const char *value, const char *what, void *obj)
{
    char *k = rv_xstrdup(key);
    for (char *p = k; *p; p++)
        if (*p == '-')
            *p = '_';
    const rv_cfg_key *found = NULL;
    for (size_t i = 0; i < n; i++)
        if (strcmp(keys[i].name, k) == 0)
            found = &keys[i];
    if (!found) {
        const char **names = rv_xcalloc(n + 1, sizeof(char *));
        for (size_t i = 0; i < n; i++)
            names[i] = keys[i].name;
        const char *hint = rv_suggest(k, names, n);
        rv_err *err = rv_err_new(RV_ERR_INVALID, "unknown option --%s%s%s%s", key, hint ? " (did you mean --" : "",
                                 hint ? hint : "", hint ? "?)" : "");
        free(names);
        free(k);
        return err;
    }
    /* Convert through the same table code: a one-key YAML map (plain
     * scalar when that is safe, single-quoted otherwise). */
    bool plain = value[0] != '\0';
    for (const char *p = value; *p; p++)
        if (!(isalnum((unsigned char)*p) || strchr("_./:+-@", *p)))
            plain = false;
    rv_buf text = {0};
    rv_buf_printf(&text, "%s: ", k);
    if (plain) {
        rv_buf_append(&text, value, strlen(value));
    } else {
        rv_buf_append(&text, "'", 1);
        for (const char *p = value; *p; p++) {
            rv_buf_append(&text, p, 1);
            if (*p == '\'')
                rv_buf_append(&text, "'", 1); /* '' is a quote inside '...' */
        }
        rv_buf_append(&text, "'", 1);
    }
    rv_buf_append(&text, "\n", 1);
    rv_ydoc *doc = NULL;
    rv_err *err = rv_yaml_parse(text.data, text.len, "--option", &doc);
    if (!err) {
        if (found->type == RV_CFG_STRING) {
            free(*(char **)((char *)obj + found->offset));
            *(char **)((char *)obj + found->offset) = NULL;
        }
        /* A one-key table writes just that field. */
        err = rv_config_apply(found, 1, rv_ydoc_root(doc), NULL, what, obj);
        if (err) {
            /* The position inside the one-line document means nothing to
             * the user: keep the explanation after "what: ". */
            const char *why = strstr(rv_err_msg(err), ": key ");
            rv_err *e2 = rv_err_new(rv_err_code(err), "--%s %s: %s", key, value, why ? why + 2 : rv_err_msg(err));
            rv_err_free(err);
            err = e2;
        }
    }
    rv_ydoc_free(doc);
    rv_buf_fini(&text);
    free(k);
    return err;
}

void rv_daemon_block_signals(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
}

int rv_daemon_wait_signal(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    int sig = 0;
    sigwait(&set, &sig);
    return sig;
}

void rv_daemon_usage(const rv_cfg_key *keys, size_t n, FILE *out)
{
    for (size_t i = 0; i < n; i++) {
        char flag[64];
        snprintf(flag, sizeof(flag), "--%s", keys[i].name);
        for (char *p = flag + 2; *p; p++)
            if (*p == '_')
                *p = '-';
        fprintf(out, "  %-22s %s%s%s%s\n", flag, keys[i].doc, keys[i].def ? " (default " : "", keys[i].def ? keys[i].def : "",
                keys[i].def ? ")" : "");
    }
}

int rv_daemon_args(int argc, char **argv, const char *prog, const rv_cfg_key *keys, size_t n, void *obj)
{
    const char *config = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: %s [--config FILE] [options]\n\noptions (also keys of the config file):\n", prog);
            rv_daemon_usage(keys, n, stdout);
            printf("  %-22s %s\n  %-22s %s\n", "-v, --verbose", "log debug messages", "-q, --quiet",
                   "log warnings and errors only");
            return 1;
        }
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            config = argv[++i];
    }
    char what[128];
    snprintf(what, sizeof(what), "%s config", prog);
    rv_err *err = load_config(keys, n, config, what, obj);
    for (int i = 1; !err && i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0) {
            i++;
        } else if (strcmp(argv[i], "-v") == 0 || strcmp(argv[i], "--verbose") == 0) {
            rv_log_set_level(RV_LOG_LVL_DEBUG);
        } else if (strcmp(argv[i], "-q") == 0 || strcmp(argv[i], "--quiet") == 0) {
            rv_log_set_level(RV_LOG_LVL_WARN);
        } else if (strncmp(argv[i], "--", 2) == 0 && i + 1 < argc) {
            err = rv_daemon_set(keys, n, argv[i] + 2, argv[i + 1], "option", obj);
            i++;
        } else {
            err = rv_err_new(RV_ERR_INVALID, "unexpected argument '%s' (try --help)", argv[i]);
        }
    }
    if (!err)
        return 0;
    fprintf(stderr, "%s: %s\n", prog, rv_err_msg(err));
    rv_err_free(err);
    return 2;
}

typedef struct watchdog {
    int seconds;
    const char *prog;
} watchdog;

static void *watchdog_main(void *arg)
{
    watchdog *w = arg;
    sleep((unsigned)w->seconds);
    fprintf(stderr, "%s: shutdown did not finish within %d s (a known NNG close hang); exiting\n", w->prog, w->seconds);
    _exit(0);
    return NULL;
}

void rv_daemon_exit_watchdog(int seconds, const char *prog)
{
    static watchdog w; /* one per process, lives until exit */
    w.seconds = seconds;
    w.prog = prog;
    pthread_t t;
    if (pthread_create(&t, NULL, watchdog_main, &w) == 0)
        pthread_detach(t);
}
