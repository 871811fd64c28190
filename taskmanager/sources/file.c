/* file: the `file` source, JSON lines or CSV from one file or the files of
 * a directory, read once (bounded) or followed like `tail -F`.
 *
 * Each instance keeps a list of the files it is responsible for, with the
 * byte offset of the first unread line, the line count and (CSV) the
 * header. Bounded: a directory's files in sorted name order, file k going
 * to instance k % P, are read one after the other; END after the last.
 * Follow: files are assigned by a hash of their name (so a new file never
 * shifts the others), read to their end, closed, and reopened at their
 * offset when a rescan every poll_interval sees them grow; an unterminated
 * last line stays unread until its newline arrives. A file that shrank was
 * truncated and is read again from the start; a file whose inode changed
 * was replaced and is read from the start. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "line_reader.h"
#include "rv_time.h" /* rv_now_ns */
#include "rv_hash.h"
#include "rv_log.h"
#include "rv_mem.h"
#include "rv_plugin.h"

#define MAX_SLEEP_MS 20

typedef struct file_config {
    char *path;
    int format; /* 0 json, 1 csv */
    char *delimiter;
    bool follow;
    int64_t poll_interval;
    char *pattern;
    int64_t batch_size;
    int64_t max_line_bytes;
} file_config;

typedef struct src_file {
    char *name; /* as listed (file name in a directory, the path otherwise) */
    char *path;
    uint64_t offset; /* bytes consumed as lines */
    uint64_t seen;   /* bytes read up to the last end of file (follow) */
    uint64_t lineno; /* lines consumed */
    bool skipping;   /* the reader stopped inside a too-long line */
    ino_t ino;
    char *header;    /* CSV header line once read */
    size_t header_len;
    bool pending;    /* has (maybe) unread data */
} src_file;

typedef struct file_state {
    const file_config *cfg;
    const char *tag;
    bool is_dir;
    int subtask, par;
    src_file *files;
    size_t nfiles, cap;
    size_t next; /* bounded: index of the next file to read */
    src_file *cur;
    int fd;
    rv_line_reader *lr;
    rv_line_decoder dec;
    rv_batch *b;
    uint32_t batch;
    int64_t next_scan_ms;
} file_state;


static const rv_cfg_key file_keys[] = {
    {.name = "path", .type = RV_CFG_STRING, .offset = offsetof(file_config, path),
     .flags = RV_CFG_REQUIRED, .doc = "A file, or a directory whose files are read."},
    {.name = "format", .type = RV_CFG_ENUM, .def = "json", .offset = offsetof(file_config, format),
     .choices = rv_line_formats, .doc = "`json` (one object per line) or `csv` (first line of each file is its header)."},
    {.name = "delimiter", .type = RV_CFG_STRING, .def = ",", .offset = offsetof(file_config, delimiter),
     .doc = "CSV field separator (one character)."},
    {.name = "follow", .type = RV_CFG_BOOL, .def = "false", .offset = offsetof(file_config, follow),
     .doc = "false: read what is there and end; true: keep reading appended data and new files, never end."},
    {.name = "poll_interval", .type = RV_CFG_DURATION, .def = "100ms",
     .offset = offsetof(file_config, poll_interval), .min = 1, .max = INT64_C(86400000),
     .doc = "With follow: how often to look for appended data and new files."},
    {.name = "pattern", .type = RV_CFG_STRING, .def = "*", .offset = offsetof(file_config, pattern),
     .doc = "Glob on file names in a directory; names starting with '.' are always skipped."},
    RV_LINE_SOURCE_KEYS(file_config),
};

static rv_err *file_plan(rv_plan *p)
{
    const file_config *cfg = p->config;
    char *what = rv_xasprintf("source '%s'", p->id);
    rv_err *err = NULL;
    if (!p->declared)
        err = rv_yerr(p->node, RV_ERR_INVALID, "%s: missing required key 'schema'", what);
    else if (cfg->path[0] == '\0')
        err = rv_yerr(rv_ymap_get_or_self(p->node, "path"), RV_ERR_INVALID, "%s: 'path' is empty", what);
    else if (!rv_csv_delimiter_parse(cfg->delimiter, &(char){0}))
        err = rv_yerr(rv_ymap_get_or_self(p->node, "delimiter"), RV_ERR_INVALID,
                      "%s: 'delimiter' must be one character other than '\"' and a line end",
                      what);
    if (!err)
        p->output = rv_schema_ref(p->declared);
    free(what);
    return err;
}

static int cmp_files(const void *a, const void *b)
{
    return strcmp(((const src_file *)a)->name, ((const src_file *)b)->name);
}

static bool is_mine(const file_state *st, const char *name, size_t index)
{
    if (st->cfg->follow)
        return rv_hash_bytes(name, strlen(name), 0) % (uint64_t)st->par == (uint64_t)st->subtask;
    return index % (size_t)st->par == (size_t)st->subtask;
}

static src_file *find_file(file_state *st, const char *name)
{
    for (size_t k = 0; k < st->nfiles; k++)
        if (strcmp(st->files[k].name, name) == 0)
            return &st->files[k];
    return NULL;
}

static void add_file(file_state *st, const char *name, const char *path, ino_t ino)
{
    rv_xgrow((void **)&st->files, &st->cap, st->nfiles + 1, sizeof(src_file));
    src_file *f = &st->files[st->nfiles++];
    memset(f, 0, sizeof(*f));
    f->name = rv_xstrdup(name);
    f->path = rv_xstrdup(path);
    f->ino = ino;
    f->pending = true;
}

/* Lists the directory's matching regular files (sorted) and adds the
 * instance's new ones. Returns an error only when the directory cannot be
 * read. */
static rv_err *scan_dir(file_state *st)
{
    DIR *d = opendir(st->cfg->path);
    if (!d)
        return rv_err_new(RV_ERR_IO, "cannot read directory '%s': %s",
                          st->cfg->path, strerror(errno));
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.' || fnmatch(st->cfg->pattern, e->d_name, 0) != 0)
            continue;
        rv_xgrow((void **)&names, &cap, n + 1, sizeof(char *));
        names[n++] = rv_xstrdup(e->d_name);
    }
    closedir(d);
    /* Sort by name; regular files only (a directory entry may not say). */
    src_file *tmp = rv_xcalloc(n ? n : 1, sizeof(src_file));
    size_t m = 0;
    for (size_t k = 0; k < n; k++) {
        char *path = rv_xasprintf("%s/%s", st->cfg->path, names[k]);
        struct stat sb;
        if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode)) {
            tmp[m].name = names[k];
            tmp[m].path = path;
            tmp[m].ino = sb.st_ino;
            m++;
        } else {
            free(names[k]);
            free(path);
        }
    }
    free(names);
    qsort(tmp, m, sizeof(src_file), cmp_files);
    for (size_t k = 0; k < m; k++) {
        if (is_mine(st, tmp[k].name, k) && !find_file(st, tmp[k].name))
            add_file(st, tmp[k].name, tmp[k].path, tmp[k].ino);
        free(tmp[k].name);
        free(tmp[k].path);
    }
    free(tmp);
    return NULL;
}

/* Follow: notices growth, truncation and replacement of known files. */
static void check_files(file_state *st)
{
    for (size_t k = 0; k < st->nfiles; k++) {
        src_file *f = &st->files[k];
        struct stat sb;
        if (stat(f->path, &sb) != 0)
            continue; /* gone for now (being rotated) */
        bool replaced = sb.st_ino != f->ino;
        if (replaced || (uint64_t)sb.st_size < f->seen) {
            RV_LOG_INFO(st->tag, "%s was %s; reading it from the start", f->path,
                        replaced ? "replaced" : "truncated");
            f->ino = sb.st_ino;
            f->offset = f->seen = f->lineno = 0;
            free(f->header);
            f->header = NULL;
            f->pending = sb.st_size > 0;
        } else if ((uint64_t)sb.st_size > f->seen) {
            f->pending = true;
        }
    }
}

static void file_close(void *state, rv_op_ctx *ctx);

static rv_err *file_open(void *state, rv_op_ctx *ctx)
{
    file_state *st = state;
    st->cfg = rv_ctx_config(ctx);
    st->tag = rv_ctx_tag(ctx);
    st->subtask = rv_ctx_subtask(ctx);
    st->par = rv_ctx_parallelism(ctx);
    st->batch = (uint32_t)st->cfg->batch_size;
    st->fd = -1;
    rv_line_decoder_init(&st->dec, rv_ctx_output_schema(ctx), st->cfg->format == 1,
                         rv_line_delimiter(st->cfg->delimiter), (size_t)st->cfg->max_line_bytes);
    struct stat sb;
    if (stat(st->cfg->path, &sb) != 0) {
        rv_err *err = rv_err_new(RV_ERR_IO, "cannot read '%s': %s", st->cfg->path,
                                 strerror(errno));
        file_close(st, ctx);
        return err;
    }
    st->is_dir = S_ISDIR(sb.st_mode);
    if (st->is_dir) {
        rv_err *err = scan_dir(st);
        if (err) {
            file_close(st, ctx);
            return err;
        }
        if (st->nfiles == 0 && !st->cfg->follow && st->subtask == 0)
            RV_LOG_WARN(st->tag, "no files matching '%s' in '%s'", st->cfg->pattern,
                        st->cfg->path);
    } else if (st->subtask == 0) {
        add_file(st, st->cfg->path, st->cfg->path, sb.st_ino);
    }
    st->next_scan_ms = rv_now_ms() + st->cfg->poll_interval;
    return NULL;
}

/* Opens the next file with unread data. False when there is none now. */
static bool open_next(file_state *st, rv_op_ctx *ctx, bool *failed)
{
    while (!st->cur) {
        src_file *f = NULL;
        if (!st->cfg->follow) {
            if (st->next < st->nfiles)
                f = &st->files[st->next++];
        } else {
            for (size_t k = 0; k < st->nfiles && !f; k++)
                if (st->files[k].pending)
                    f = &st->files[k];
        }
        if (!f)
            return false;
        f->pending = false;
        int fd = open(f->path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || (f->offset && lseek(fd, (off_t)f->offset, SEEK_SET) < 0)) {
            int e = errno;
            if (fd >= 0)
                close(fd);
            if (!st->cfg->follow) {
                rv_ctx_fail(ctx, rv_err_new(RV_ERR_IO, "cannot read '%s': %s",
                                            f->path, strerror(e)));
                *failed = true;
                return false;
            }
            RV_LOG_WARN(st->tag, "cannot read '%s' (will retry): %s", f->path,
                        strerror(e));
            continue;
        }
        const char *why = NULL;
        if (!rv_line_decoder_restart(&st->dec, f->header, f->header_len, &why))
            RV_LOG_WARN(st->tag, "%s: %s", f->path, why);
        st->fd = fd;
        st->cur = f;
        st->lr = rv_line_reader_new(fd, (size_t)st->cfg->max_line_bytes, st->cfg->follow);
        if (f->skipping)
            rv_line_reader_skip_line(st->lr);
    }
    return true;
}

static void close_cur(file_state *st)
{
    src_file *f = st->cur;
    f->offset += rv_line_reader_offset(st->lr);
    f->seen = f->offset + rv_line_reader_pending(st->lr);
    f->skipping = rv_line_reader_skipping(st->lr);
    rv_line_reader_free(st->lr);
    close(st->fd);
    st->lr = NULL;
    st->fd = -1;
    st->cur = NULL;
}

/* Handles one line of the current file. False when the job must fail. */
static bool on_line(file_state *st, rv_op_ctx *ctx, rv_line_status ls, const char *line, size_t len)
{
    src_file *f = st->cur;
    f->lineno++;
    const char *reason = NULL;
    size_t raw_len = 0;
    switch (rv_line_decode(&st->dec, ls, line, len, st->b, &reason, &raw_len)) {
    case RV_DEC_ROW:
    case RV_DEC_EMPTY: return true;
    case RV_DEC_HEADER:
        free(f->header);
        f->header = rv_xstrndup(line, len);
        f->header_len = len;
        return true;
    case RV_DEC_BAD: break;
    }
    char where[512];
    snprintf(where, sizeof(where), "%s:%llu", f->path, (unsigned long long)f->lineno);
    return rv_ctx_bad_record(ctx, line, raw_len, reason, where) == RV_OK;
}

static rv_src_status file_poll(void *state, rv_op_ctx *ctx)
{
    file_state *st = state;
    if (!st->b)
        st->b = rv_batch_new(rv_ctx_output_schema(ctx), st->batch);
    uint32_t budget = 4 * st->batch; /* lines per poll, bad and empty ones included */
    bool failed = false, busy = false;
    while (!rv_batch_is_full(st->b, st->batch)) {
        if (budget == 0) {
            busy = true;
            break;
        }
        if (!st->cur && !open_next(st, ctx, &failed))
            break;
        const char *line;
        size_t len;
        rv_line_status ls = rv_line_next(st->lr, &line, &len);
        if (ls == RV_LINE_OK || ls == RV_LINE_TOO_LONG) {
            budget--;
            if (!on_line(st, ctx, ls, line, len))
                return RV_SRC_FAILED;
        } else if (ls == RV_LINE_ERROR) {
            rv_ctx_fail(ctx, rv_err_new(RV_ERR_IO, "reading '%s': %s",
                                        st->cur->path, rv_line_reader_error(st->lr)));
            return RV_SRC_FAILED;
        } else {
            close_cur(st); /* end of this file (for now) */
        }
    }
    if (failed)
        return RV_SRC_FAILED;
    if (st->b->nrows > 0) {
        rv_batch *b = st->b;
        st->b = NULL;
        if (rv_ctx_emit(ctx, b) != RV_OK)
            return RV_SRC_IDLE; /* canceled: the runtime stops polling */
        return RV_SRC_MORE;
    }
    if (busy || st->cur)
        return RV_SRC_MORE;
    if (!st->cfg->follow)
        return RV_SRC_END;
    int64_t now = rv_now_ms();
    if (now >= st->next_scan_ms) {
        st->next_scan_ms = now + st->cfg->poll_interval;
        if (st->is_dir) {
            rv_err *err = scan_dir(st);
            if (err) {
                RV_LOG_WARN(st->tag, "%s", rv_err_msg(err));
                rv_err_free(err);
            }
        }
        check_files(st);
        for (size_t k = 0; k < st->nfiles; k++)
            if (st->files[k].pending)
                return RV_SRC_MORE;
    }
    int64_t wait = st->next_scan_ms - rv_now_ms();
    if (wait > 0)
        poll(NULL, 0, (int)(wait < MAX_SLEEP_MS ? wait : MAX_SLEEP_MS));
    return RV_SRC_IDLE;
}

static void file_close(void *state, rv_op_ctx *ctx)
{
    file_state *st = state;
    if (st->cur)
        close_cur(st);
    for (size_t k = 0; k < st->nfiles; k++) {
        free(st->files[k].name);
        free(st->files[k].path);
        free(st->files[k].header);
    }
    free(st->files);
    rv_line_decoder_fini(&st->dec);
    rv_batch_unref(st->b);
    memset(st, 0, sizeof(*st));
}

const rv_plugin rv_source_file = {
    .name = "file",
    .abi = RV_PLUGIN_ABI,
    .kind = RV_PLUGIN_SOURCE,
    .doc = "Reads JSON lines or CSV from a file or from the files of a directory (sorted by "
           "name, matching `pattern`). Bounded by default: it ends after the last file. With "
           "`follow: true` it keeps reading data appended to the files and new files, like "
           "`tail -F`, and never ends; an unterminated last line waits for its newline. With "
           "parallelism P, a directory's files are shared out: file k (in name order) goes to "
           "instance k % P, or with follow the instance given by a hash of the name; a single "
           "file is read by instance 0. Empty lines are skipped; lines that do not parse are "
           "bad records located as `path:line`.",
    .config = file_keys,
    .nconfig = sizeof(file_keys) / sizeof(file_keys[0]),
    .config_size = sizeof(file_config),
    .state_size = sizeof(file_state),
    .plan = file_plan,
    .open = file_open,
    .poll = file_poll,
    .close = file_close,
};
