/* rv_log: leveled one-line logging to a replaceable sink. */
#include "rv_log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static rv_log_sink log_sink;
static void *log_sink_arg;
static atomic_int log_level = RV_LOG_LVL_INFO;

static const char *level_names[] = {"ERROR", "WARN", "INFO", "DEBUG"};

void rv_log_set_sink(rv_log_sink sink, void *arg)
{
    pthread_mutex_lock(&log_lock);
    log_sink = sink;
    log_sink_arg = arg;
    pthread_mutex_unlock(&log_lock);
}

void rv_log_set_level(rv_log_level lvl) { atomic_store(&log_level, (int)lvl); }
rv_log_level rv_log_get_level(void) { return (rv_log_level)atomic_load(&log_level); }

void rv_log_write(rv_log_level lvl, const char *tag, const char *fmt, ...)
{
    if ((int)lvl > atomic_load(&log_level))
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    char line[1200];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(line, sizeof(line), "%02d:%02d:%02d.%03ld %-5s [%s] %s", tm.tm_hour, tm.tm_min,
             tm.tm_sec, ts.tv_nsec / 1000000, level_names[lvl], tag ? tag : "-", msg);
    pthread_mutex_lock(&log_lock);
    if (log_sink)
        log_sink(lvl, line, log_sink_arg);
    else
        fprintf(stderr, "%s\n", line);
    pthread_mutex_unlock(&log_lock);
}
