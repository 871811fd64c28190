/* file sink: writes rows as JSON lines or CSV into rolling part files in a
 * directory, so that readers of the directory only ever see finished files.
 *
 * Each subtask writes its own files `<prefix>-<subtask>-<n>.<ext>`, n
 * counting from 0, or from one past the highest n of that subtask already
 * in the directory (finished or in-progress), so a new run never
 * overwrites an old one. A part file is created on its first row as the
 * hidden `.<prefix>-<subtask>-<n>.<ext>.inprogress`; when it reaches
 * roll_size (checked after each batch), when roll_interval has elapsed
 * (checked on each batch and by a processing-time timer, so an idle stream
 * still rolls) and at finish(), it is fsync'ed, closed, renamed to its final
 * name and the directory is fsync'ed: a published file is complete and
 * durable. Rows go through a 256 KiB buffer, so there is no syscall per
 * row. close() without finish() (cancel, failure) leaves the current file
 * hidden under its in-progress name: its rows are kept for inspection but
 * never published. Any I/O error fails the job with the path and the
 * system's reason.
 *
 * Delivery is at-least-once across restarts: the plugin ABI has no
 * checkpoint callbacks yet, so a restarted job writes again what it wrote
 * after its last checkpoint (the two-phase in-progress / pending / final
 * protocol of DESIGN.md §9 needs snapshot and notify-complete hooks). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rv_log.h"
#include "rv_mem.h"
#include "rv_plugin.h"
#include "rv_record.h"
#include "sinks/row_writer.h"

#define FILE_BUF_BYTES (256 * 1024)
/* Names taken by someone else (another sink with the same directory and
 * prefix) are skipped; this bounds the search. */
#define FILE_NAME_TRIES 1000

typedef struct file_cfg {
    char *path;
    rv_row_opts fmt;
    int64_t roll_size;
    int64_t roll_interval;
    char *prefix;
} file_cfg;

static const rv_cfg_key file_keys[] = {
    {"path", RV_CFG_STRING, NULL, offsetof(file_cfg, path),
     "Directory the part files are written to, on the machine running each subtask (created "
     "with its parents if missing).",
     NULL, RV_CFG_REQUIRED, 0, 0},
    RV_ROW_OPTS_KEYS(file_cfg, fmt, "CSV only: start every part file with a header line of the "
                                    "field names."),
    {"roll_size", RV_CFG_SIZE, "128MiB", offsetof(file_cfg, roll_size),
     "Publish the part file and start a new one once it holds this many bytes (checked after "
     "each batch).",
     NULL, 0, 0, 0},
    {"roll_interval", RV_CFG_DURATION, "0", offsetof(file_cfg, roll_interval),
     "Publish the part file and start a new one once it has been open this long, even when no "
     "rows arrive; 0 = never.",
     NULL, 0, 0, 366LL * 24 * 3600 * 1000},
    {"prefix", RV_CFG_STRING, "part", offsetof(file_cfg, prefix),
     "Start of the file names: `<prefix>-<subtask>-<n>.json` or `.csv`.", NULL, 0, 0, 0},
};

typedef struct file_state {
    const file_cfg *cfg;
    rv_row_writer w;
    rv_schema *schema; /* borrowed from the runtime */
    char *dir;         /* cfg->path without trailing slashes */
    int dirfd;         /* -1 until opened */
    int subtask;
    uint64_t next_n; /* n of the next part file */
    /* The current part file, fd -1 when none is open. */
    int fd;
    char *tmp_name;   /* ".part-0-3.json.inprogress" (relative to dir) */
    char *final_name; /* "part-0-3.json" */
    int64_t file_bytes; /* written + buffered */
    uint64_t file_rows;
    int64_t deadline_ms; /* roll_interval deadline, INT64_MAX when none */
    rv_buf buf;
    bool failed;
    uint64_t rows_total, files_total;
} file_state;

/* Fails the job with "<action> <dir>/<name>: <strerror(e)>" (the runtime
 * prefixes "sink '<id>': "). */
static rv_code io_fail(file_state *st, rv_op_ctx *ctx, const char *action, const char *name, int e)
{
    st->failed = true;
    rv_ctx_fail(ctx, rv_err_new(RV_ERR_IO, "%s %s/%s: %s", action, st->dir, name, strerror(e)));
    return RV_ERR_IO;
}

/* ---- configuration ---- */

static rv_err *check_cfg(const file_cfg *cfg, const rv_ynode *node, const char *what,
                         rv_row_writer *w)
{
    if (!cfg->path || !cfg->path[0])
        return rv_row_writer_key_err(node, what, "path", "must name a directory");
    if (cfg->roll_size < 1)
        return rv_row_writer_key_err(node, what, "roll_size", "must be at least 1 byte");
    const char *pre = cfg->prefix;
    if (!pre || !pre[0] || strchr(pre, '/') || pre[0] == '.')
        return rv_row_writer_key_err(node, what, "prefix",
                                     "must be a non-empty file name part without '/' that does "
                                     "not start with '.' (hidden names are in-progress files)");
    return rv_row_writer_init(w, &cfg->fmt, node, what);
}

static rv_err *file_plan(rv_plan *p)
{
    char what[160];
    snprintf(what, sizeof(what), "sink '%s'", p->id);
    rv_row_writer w;
    return check_cfg(p->config, p->node, what, &w);
}

/* ---- directory ---- */

/* mkdir -p: creates dir and its missing parents. */
static rv_err *make_dirs(const char *dir)
{
    char *p = rv_xstrdup(dir);
    rv_err *err = NULL;
    for (char *s = p + 1;; s++) {
        if (*s != '/' && *s != '\0')
            continue;
        char c = *s;
        *s = '\0';
        if (mkdir(p, 0777) != 0 && errno != EEXIST) {
            err = rv_err_new(RV_ERR_IO, "creating directory %s: %s", p, strerror(errno));
            break;
        }
        *s = c;
        if (c == '\0')
            break;
    }
    free(p);
    return err;
}

/* If name is this subtask's part file `<prefix>-<subtask>-<n>.*` or its
 * in-progress form `.<prefix>-<subtask>-<n>.*.inprogress`, returns true
 * with *n. */
static bool parse_part_name(const char *name, const char *prefix, int subtask, uint64_t *n)
{
    if (name[0] == '.') {
        size_t len = strlen(name);
        static const char suffix[] = ".inprogress";
        if (len < sizeof(suffix) || strcmp(name + len - (sizeof(suffix) - 1), suffix) != 0)
            return false;
        name++;
    }
    size_t plen = strlen(prefix);
    if (strncmp(name, prefix, plen) != 0 || name[plen] != '-')
        return false;
    const char *s = name + plen + 1;
    char *end;
    errno = 0;
    if (*s < '0' || *s > '9')
        return false;
    unsigned long t = strtoul(s, &end, 10);
    if (errno || *end != '-' || t != (unsigned long)subtask)
        return false;
    s = end + 1;
    if (*s < '0' || *s > '9')
        return false;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end != '.')
        return false;
    *n = v;
    return true;
}

/* Sets st->next_n to one past the highest n of this subtask in the dir. */
static rv_err *scan_dir(file_state *st)
{
    int fd = openat(st->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return rv_err_new(RV_ERR_IO, "listing %s: %s", st->dir, strerror(e));
    }
    uint64_t next = 0;
    struct dirent *de;
    while ((errno = 0, de = readdir(d)) != NULL) {
        uint64_t n;
        if (parse_part_name(de->d_name, st->cfg->prefix, st->subtask, &n) && n + 1 > next)
            next = n + 1;
    }
    int e = errno;
    closedir(d);
    if (e)
        return rv_err_new(RV_ERR_IO, "listing %s: %s", st->dir, strerror(e));
    st->next_n = next;
    return NULL;
}

/* ---- part files ---- */

static void set_names(file_state *st, uint64_t n)
{
    const char *ext = rv_row_writer_ext(&st->w);
    free(st->tmp_name);
    free(st->final_name);
    st->final_name = rv_xasprintf("%s-%d-%" PRIu64 ".%s", st->cfg->prefix, st->subtask, n, ext);
    st->tmp_name = rv_xasprintf(".%s.inprogress", st->final_name);
}

/* Writes out the buffer to the current part file. */
static rv_code write_buf(file_state *st, rv_op_ctx *ctx)
{
    const char *p = st->buf.data;
    size_t len = st->buf.len;
    while (len > 0) {
        ssize_t n = write(st->fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return io_fail(st, ctx, "writing", st->tmp_name, errno);
        }
        p += n;
        len -= (size_t)n;
    }
    st->buf.len = 0;
    return RV_OK;
}

/* Creates the next in-progress part file, skipping names that exist. */
static rv_code part_open(file_state *st, rv_op_ctx *ctx)
{
    for (int tries = 0; tries < FILE_NAME_TRIES; tries++) {
        uint64_t n = st->next_n++;
        set_names(st, n);
        if (faccessat(st->dirfd, st->final_name, F_OK, 0) == 0)
            continue;
        int fd = openat(st->dirfd, st->tmp_name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && errno == EEXIST)
            continue;
        if (fd < 0)
            return io_fail(st, ctx, "creating", st->tmp_name, errno);
        st->fd = fd;
        st->file_rows = 0;
        st->buf.len = 0;
        rv_row_writer_header(&st->w, st->schema, &st->buf);
        st->file_bytes = (int64_t)st->buf.len;
        st->deadline_ms = INT64_MAX;
        if (st->cfg->roll_interval > 0) {
            st->deadline_ms = rv_ctx_now_ms(ctx) + st->cfg->roll_interval;
            rv_ctx_timer_at(ctx, st->deadline_ms);
        }
        return RV_OK;
    }
    st->failed = true;
    rv_ctx_fail(ctx, rv_err_new(RV_ERR_IO,
                                "no free part file name in %s after %d tries (is another sink "
                                "writing there with prefix '%s'?)",
                                st->dir, FILE_NAME_TRIES, st->cfg->prefix));
    return RV_ERR_IO;
}

/* Renames tmp to final without replacing an existing file. */
static int rename_noreplace(int dirfd, const char *from, const char *to)
{
    if (renameat2(dirfd, from, dirfd, to, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != EINVAL && errno != ENOSYS)
        return errno;
    /* The file system cannot refuse to replace: check first (the window
     * only matters if another writer uses the same names). */
    if (faccessat(dirfd, to, F_OK, 0) == 0)
        return EEXIST;
    return renameat(dirfd, from, dirfd, to) == 0 ? 0 : errno;
}

/* Publishes the current part file: flush, fsync, close, rename, fsync the
 * directory. A file without rows is removed instead. */
static rv_code part_publish(file_state *st, rv_op_ctx *ctx)
{
    rv_code rc = write_buf(st, ctx);
    if (rc != RV_OK)
        return rc;
    int fd = st->fd;
    st->fd = -1;
    if (st->file_rows == 0) {
        close(fd);
        unlinkat(st->dirfd, st->tmp_name, 0);
        return RV_OK;
    }
    if (fsync(fd) != 0) {
        int e = errno;
        close(fd);
        return io_fail(st, ctx, "syncing", st->tmp_name, e);
    }
    if (close(fd) != 0)
        return io_fail(st, ctx, "closing", st->tmp_name, errno);
    int e = rename_noreplace(st->dirfd, st->tmp_name, st->final_name);
    if (e == EEXIST) {
        st->failed = true;
        rv_ctx_fail(ctx, rv_err_new(RV_ERR_IO,
                                    "cannot publish %s/%s: the file already exists (is another "
                                    "sink writing there with prefix '%s'?); the rows are kept "
                                    "in %s",
                                    st->dir, st->final_name, st->cfg->prefix, st->tmp_name));
        return RV_ERR_IO;
    }
    if (e != 0)
        return io_fail(st, ctx, "renaming", st->tmp_name, e);
    if (fsync(st->dirfd) != 0) {
        st->failed = true;
        rv_ctx_fail(ctx, rv_err_new(RV_ERR_IO, "syncing directory %s: %s", st->dir,
                                    strerror(errno)));
        return RV_ERR_IO;
    }
    st->files_total++;
    RV_LOG_DEBUG(rv_ctx_tag(ctx),
                 "file sink: published %s/%s (%" PRIu64 " rows, %" PRId64 " bytes)", st->dir,
                 st->final_name, st->file_rows, st->file_bytes);
    return RV_OK;
}

/* ---- callbacks ---- */

/* Releases everything open() acquired (also after a failed open()). */
static void release(file_state *st)
{
    if (st->fd >= 0)
        close(st->fd);
    st->fd = -1;
    if (st->dirfd >= 0)
        close(st->dirfd);
    st->dirfd = -1;
    rv_buf_fini(&st->buf);
    free(st->tmp_name);
    free(st->final_name);
    free(st->dir);
    st->tmp_name = st->final_name = st->dir = NULL;
}

static rv_err *file_open(void *state, rv_op_ctx *ctx)
{
    file_state *st = state;
    st->dirfd = -1;
    st->fd = -1;
    st->cfg = rv_ctx_config(ctx);
    st->subtask = rv_ctx_subtask(ctx);
    st->schema = rv_ctx_input_schema(ctx, 0);
    /* The runtime prefixes open() errors with the sink's id. */
    rv_err *err = check_cfg(st->cfg, NULL, NULL, &st->w);
    if (err)
        return err;

    st->dir = rv_xstrdup(st->cfg->path);
    for (size_t len = strlen(st->dir); len > 1 && st->dir[len - 1] == '/'; len--)
        st->dir[len - 1] = '\0';
    err = make_dirs(st->dir);
    if (!err) {
        st->dirfd = open(st->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (st->dirfd < 0)
            err = rv_err_new(RV_ERR_IO, "opening directory %s: %s", st->dir, strerror(errno));
    }
    if (!err)
        err = scan_dir(st);
    if (err)
        release(st); /* close() is not called when open() fails */
    return err;
}

static rv_code file_process(void *state, rv_op_ctx *ctx, int input, const rv_batch *in)
{
    file_state *st = state;
    rv_code rc;
    if (st->failed)
        return RV_ERR_IO;
    if (st->fd >= 0 && rv_ctx_now_ms(ctx) >= st->deadline_ms) {
        rc = part_publish(st, ctx);
        if (rc != RV_OK)
            return rc;
    }
    if (in->nrows == 0)
        return RV_OK;
    if (st->fd < 0) {
        rc = part_open(st, ctx);
        if (rc != RV_OK)
            return rc;
    }
    int64_t written = st->file_bytes - (int64_t)st->buf.len;
    uint32_t row = 0;
    while (row < in->nrows) {
        row = rv_row_writer_rows(&st->w, in, row, FILE_BUF_BYTES, &st->buf);
        if (st->buf.len >= FILE_BUF_BYTES) {
            written += (int64_t)st->buf.len;
            rc = write_buf(st, ctx);
            if (rc != RV_OK)
                return rc;
        }
    }
    st->file_bytes = written + (int64_t)st->buf.len;
    st->file_rows += in->nrows;
    st->rows_total += in->nrows;
    if (st->file_bytes >= st->cfg->roll_size)
        return part_publish(st, ctx);
    return RV_OK;
}

static rv_code file_on_timer(void *state, rv_op_ctx *ctx, int64_t when_ms)
{
    file_state *st = state;
    if (st->failed)
        return RV_ERR_IO;
    /* Timers of files published earlier (by size) are stale: ignore them. */
    if (st->fd >= 0 && when_ms >= st->deadline_ms)
        return part_publish(st, ctx);
    return RV_OK;
}

static rv_code file_finish(void *state, rv_op_ctx *ctx)
{
    file_state *st = state;
    if (st->failed)
        return RV_ERR_IO;
    if (st->fd >= 0) {
        rv_code rc = part_publish(st, ctx);
        if (rc != RV_OK)
            return rc;
    }
    RV_LOG_INFO(rv_ctx_tag(ctx), "file sink: wrote %" PRIu64 " rows in %" PRIu64 " files to %s",
                st->rows_total, st->files_total, st->dir);
    return RV_OK;
}

static void file_close(void *state, rv_op_ctx *ctx)
{
    file_state *st = state;
    if (st->fd >= 0) {
        /* Not finished (cancel or failure): keep what was received in the
         * hidden file rather than deleting it; best effort. */
        if (!st->failed)
            (void)write_buf(st, ctx);
        RV_LOG_WARN(rv_ctx_tag(ctx), "file sink: input did not end: %s/%s left unpublished",
                    st->dir, st->tmp_name);
    }
    release(st);
}

const rv_plugin rv_sink_file = {
    .name = "file",
    .abi = RV_PLUGIN_ABI,
    .kind = RV_PLUGIN_SINK,
    .doc = "Writes rows as JSON lines or CSV into part files in a directory. Each subtask "
           "writes `<prefix>-<subtask>-<n>.json` (or `.csv`), n counting up from 0 or from past "
           "the highest n already there, so earlier output is never overwritten. A file being "
           "written is hidden as `.<name>.inprogress` and is published (fsync'ed, then renamed) "
           "when it reaches `roll_size`, when `roll_interval` has passed, and when the input "
           "ends, so readers of the directory see only complete files. If the job is canceled "
           "or fails, the current file stays hidden under its in-progress name. Delivery is "
           "at-least-once across restarts.",
    .config = file_keys,
    .nconfig = sizeof(file_keys) / sizeof(file_keys[0]),
    .config_size = sizeof(file_cfg),
    .state_size = sizeof(file_state),
    .plan = file_plan,
    .open = file_open,
    .process = file_process,
    .on_timer = file_on_timer,
    .finish = file_finish,
    .close = file_close,
};
