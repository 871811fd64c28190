/* rv_file: whole-file reads with a size limit. */
#include "rv_file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rv_mem.h"

rv_err *rv_file_read(const char *path, size_t max, char **text, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return rv_err_new(RV_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    char *buf = NULL;
    size_t n = 0, cap = 0;
    char chunk[65536];
    size_t r;
    while ((r = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (n + r > max) {
            fclose(f);
            free(buf);
            return rv_err_new(RV_ERR_INVALID, "%s is larger than %zu bytes", path, max);
        }
        rv_xgrow((void **)&buf, &cap, n + r + 1, 1);
        memcpy(buf + n, chunk, r);
        n += r;
    }
    bool bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return rv_err_new(RV_ERR_IO, "reading %s failed", path);
    }
    if (!buf)
        buf = rv_xcalloc(1, 1);
    buf[n] = '\0';
    *text = buf;
    *len = n;
    return NULL;
}
