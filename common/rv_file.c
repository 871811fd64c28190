/* rv_file: whole-file reads with a size limit; mkdir -p and rm -rf. */
#include "rv_file.h"

#include <errno.h>
#include <stdbool.h>
#include <ftw.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

rv_err *rv_file_mkdirs(const char *path)
{
    char *p = rv_xstrdup(path);
    for (char *c = p + 1;; c++) {
        if (*c != '/' && *c != '\0')
            continue;
        char saved = *c;
        *c = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST) {
            rv_err *err = rv_err_new(RV_ERR_IO, "cannot create directory %s: %s", p, strerror(errno));
            free(p);
            return err;
        }
        *c = saved;
        if (saved == '\0')
            break;
    }
    free(p);
    return NULL;
}

static int remove_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb;
    (void)type;
    (void)ftw;
    return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

rv_err *rv_file_remove_tree(const char *path)
{
    struct stat sb;
    if (lstat(path, &sb) != 0 && errno == ENOENT)
        return NULL;
    if (nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0)
        return rv_err_new(RV_ERR_IO, "cannot remove %s: %s", path, strerror(errno));
    return NULL;
}

rv_err *rv_file_link_or_copy(const char *src, const char *dst)
{
    if (link(src, dst) == 0)
        return NULL;
    if (errno != EXDEV && errno != EPERM && errno != EMLINK)
        return rv_err_new(RV_ERR_IO, "cannot link %s to %s: %s", src, dst, strerror(errno));
    FILE *in = fopen(src, "rb");
    if (!in)
        return rv_err_new(RV_ERR_IO, "cannot open %s: %s", src, strerror(errno));
    FILE *out = fopen(dst, "wbx");
    if (!out) {
        rv_err *err = rv_err_new(RV_ERR_IO, "cannot create %s: %s", dst, strerror(errno));
        fclose(in);
        return err;
    }
    char *buf = rv_xmalloc(1 << 20);
    size_t n;
    bool ok = true;
    while (ok && (n = fread(buf, 1, 1 << 20, in)) > 0)
        ok = fwrite(buf, 1, n, out) == n;
    ok = ok && !ferror(in);
    free(buf);
    fclose(in);
    if (fclose(out) != 0)
        ok = false;
    return ok ? NULL : rv_err_new(RV_ERR_IO, "copying %s to %s failed: %s", src, dst, strerror(errno));
}
