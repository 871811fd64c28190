/* rv_log: one-line logging with a component/instance tag and a pluggable
 * sink (tests capture it). Thread-safe. Never log per record. */
#ifndef RV_LOG_H
#define RV_LOG_H

typedef enum { RV_LOG_LVL_ERROR, RV_LOG_LVL_WARN, RV_LOG_LVL_INFO, RV_LOG_LVL_DEBUG } rv_log_level;

/* A sink receives the fully formatted line (no trailing newline). */
typedef void (*rv_log_sink)(rv_log_level lvl, const char *line, void *arg);

void rv_log_set_sink(rv_log_sink sink, void *arg); /* NULL: stderr */
void rv_log_set_level(rv_log_level lvl);           /* default INFO */
rv_log_level rv_log_get_level(void);
void rv_log_write(rv_log_level lvl, const char *tag, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define RV_LOG_ERROR(tag, ...) rv_log_write(RV_LOG_LVL_ERROR, (tag), __VA_ARGS__)
#define RV_LOG_WARN(tag, ...) rv_log_write(RV_LOG_LVL_WARN, (tag), __VA_ARGS__)
#define RV_LOG_INFO(tag, ...) rv_log_write(RV_LOG_LVL_INFO, (tag), __VA_ARGS__)
#define RV_LOG_DEBUG(tag, ...) rv_log_write(RV_LOG_LVL_DEBUG, (tag), __VA_ARGS__)

#endif
