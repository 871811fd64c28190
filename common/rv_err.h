/* rv_err: the one error object of Rivulet.
 *
 * Control-plane and setup code returns `rv_err *` (NULL means success). An
 * error carries a code, a human message and whether retrying can help.
 * Context is added on the way up with rv_err_wrap(), so the final message
 * reads "restoring operator x: rocksdb: IO error: ...". Hot paths return a
 * plain rv_code and allocate nothing. */
#ifndef RV_ERR_H
#define RV_ERR_H

#include <stdbool.h>

typedef enum rv_code {
    RV_OK = 0,
    RV_ERR_INVALID,   /* bad argument or bad user input (YAML, records) */
    RV_ERR_PARSE,     /* syntax error in an input text */
    RV_ERR_TYPE,      /* expression type error */
    RV_ERR_NOT_FOUND, /* a named thing does not exist */
    RV_ERR_IO,        /* file or socket failure */
    RV_ERR_CORRUPT,   /* a buffer or frame failed validation */
    RV_ERR_NOMEM,     /* an allocation sized by input failed */
    RV_ERR_TIMEOUT,
    RV_ERR_CLOSED,    /* the other end is gone */
    RV_ERR_CANCELED,
    RV_ERR_AGAIN,     /* nothing now, try later */
    RV_ERR_INTERNAL,
} rv_code;

typedef struct rv_err rv_err;

/* Returns a new error (never NULL; aborts on out-of-memory). */
rv_err *rv_err_new(rv_code code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Like rv_err_new, and marks the error retriable. */
rv_err *rv_err_retry(rv_code code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Prefixes "context: " to err's message and returns err. NULL in, NULL out. */
rv_err *rv_err_wrap(rv_err *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
rv_code rv_err_code(const rv_err *err);
const char *rv_err_msg(const rv_err *err);
bool rv_err_retriable(const rv_err *err);
void rv_err_free(rv_err *err);
const char *rv_code_name(rv_code code);

#endif
