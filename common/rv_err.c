/* rv_err: error objects with a code, a message and a retriable flag. */
#include "rv_err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rv_mem.h"

struct rv_err {
    rv_code code;
    bool retriable;
    char *msg;
};

static rv_err *err_vnew(rv_code code, bool retriable, const char *fmt, va_list ap)
{
    rv_err *err = rv_xcalloc(1, sizeof(*err));
    err->code = code;
    err->retriable = retriable;
    err->msg = rv_xvasprintf(fmt, ap);
    return err;
}

rv_err *rv_err_new(rv_code code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    rv_err *err = err_vnew(code, false, fmt, ap);
    va_end(ap);
    return err;
}

rv_err *rv_err_retry(rv_code code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    rv_err *err = err_vnew(code, true, fmt, ap);
    va_end(ap);
    return err;
}

rv_err *rv_err_wrap(rv_err *err, const char *fmt, ...)
{
    if (!err)
        return NULL;
    va_list ap;
    va_start(ap, fmt);
    char *ctx = rv_xvasprintf(fmt, ap);
    va_end(ap);
    char *msg = rv_xasprintf("%s: %s", ctx, err->msg);
    free(ctx);
    free(err->msg);
    err->msg = msg;
    return err;
}

rv_code rv_err_code(const rv_err *err) { return err ? err->code : RV_OK; }
const char *rv_err_msg(const rv_err *err) { return err ? err->msg : "ok"; }
bool rv_err_retriable(const rv_err *err) { return err && err->retriable; }

void rv_err_free(rv_err *err)
{
    if (!err)
        return;
    free(err->msg);
    free(err);
}

const char *rv_code_name(rv_code code)
{
    switch (code) {
    case RV_OK: return "ok";
    case RV_ERR_INVALID: return "invalid";
    case RV_ERR_PARSE: return "parse error";
    case RV_ERR_TYPE: return "type error";
    case RV_ERR_NOT_FOUND: return "not found";
    case RV_ERR_IO: return "I/O error";
    case RV_ERR_CORRUPT: return "corrupt data";
    case RV_ERR_NOMEM: return "out of memory";
    case RV_ERR_TIMEOUT: return "timeout";
    case RV_ERR_CLOSED: return "closed";
    case RV_ERR_CANCELED: return "canceled";
    case RV_ERR_AGAIN: return "try again";
    case RV_ERR_INTERNAL: return "internal error";
    }
    return "unknown";
}
