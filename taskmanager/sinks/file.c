/* file sink: writes rows as JSON lines or CSV into rolling part files in a
 * directory, so that readers of the directory only ever see finished files;
 * with checkpointing, each row is published exactly once (two-phase
 * commit over the checkpoint hooks of rv_plugin.h).
 *
 * Names. Each subtask writes its own files `<prefix>-<subtask>-<n>.<ext>`,
 * n counting from 0, or from one past the highest n of that subtask already
 * in the directory (finished or hidden), so a new run never overwrites an
 * old one. A part file is created on its first row under the hidden name
 * `.<prefix>-<subtask>-<n>.<ext>.inprogress` and keeps that name until it
 * is published by one rename to its final name (without replacing an
 * existing file), followed by an fsync of the directory. Rows go through a
 * 256 KiB buffer, so there is no syscall per row. A part file is rolled
 * (closed, and a new one started at the next row) when it reaches
 * roll_size (checked after each batch) or when roll_interval has elapsed
 * (checked on each batch and by a processing-time timer, so an idle stream
 * still rolls). Any I/O error fails the job with the path and the
 * system's reason.
 *
 * Without checkpointing (rv_ctx_checkpointing() false) a rolled file is
 * fsync'ed, closed and published at once, and so is the last one at
 * finish(). close() without finish() (cancel, failure) leaves the current
 * file hidden under its in-progress name: its rows are kept for inspection
 * but never published. A restarted job starts from scratch.
 *
 * With checkpointing, publishing waits for the checkpoint that covers the
 * rows (two-phase commit; DESIGN.md §9):
 *  - Pre-commit. A rolled file is fsync'ed and closed and becomes *pending*:
 *    it keeps its hidden `.inprogress` name (a pending file and one still
 *    being written differ only in the sink's state, not in the directory),
 *    and the sink remembers (final name, hidden name, byte size). At
 *    snapshot(id) the current file, if it has rows, is pre-committed the
 *    same way, every pending file not yet tied to a checkpoint is tied to
 *    `id`, the directory is fsync'ed (so the hidden files' names are
 *    durable too), and the state blob lists every pending file not yet
 *    published, with its checkpoint id, and the subtask's next part number.
 *    finish() pre-commits the last file instead of publishing it: the
 *    runtime takes one more checkpoint, whose completion publishes it.
 *  - Commit. checkpoint_complete(id) renames every pending file of
 *    checkpoint <= id to its final name and fsyncs the directory.
 *  - Recovery. restore() (after open(), when the job resumes from a
 *    completed checkpoint) takes the blobs of the old subtasks s with
 *    s % parallelism == this subtask (so a changed parallelism works, given
 *    a directory shared by the task managers concerned), checks them all,
 *    then commits every file they list: a hidden file is truncated to its
 *    recorded size, fsync'ed and renamed; a file whose final name already
 *    exists was published before the failure and is left alone; a file
 *    found under neither name is an error (its rows would be lost). Then
 *    every other hidden part file of those old subtasks is deleted: it
 *    holds rows written after the checkpoint, which the sources replay.
 *    Part numbers continue past the checkpoint's next number and past
 *    every part file of this subtask in the directory at open(), so no
 *    published name is reused. Restoring the same blobs twice is harmless.
 * So a reader of the directory sees only complete, durable files, and each
 * row in exactly one of them, once the first checkpoint taken after the sink
 * received the row has completed (so output lags by up to one checkpoint
 * interval plus the checkpoint's duration); rows the sink received after
 * the checkpoint a job is restored from appear once the restored job has
 * received them again. Hidden files in the directory are files being
 * written, files waiting for their checkpoint, or leftovers of a failed
 * attempt that no restore has cleaned up (for instance when the job was
 * restarted without a checkpoint): readers must ignore names starting with
 * '.'.
 *
 * State blob (all integers little-endian):
 *   "RVFS" | u32 version (1) | u64 next part number | u32 count |
 *   count x (u64 checkpoint id | u64 byte size |
 *            u16 length, final name | u16 length, hidden name) |
 *   u32 FNV-1a of everything before it.
 * Names are relative to the directory; restore() rejects a blob that is
 * truncated, has trailing bytes, a bad checksum or a name that could leave
 * the directory. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
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
#define HIDDEN_SUFFIX ".inprogress"

/* State blob layout (see the header comment). */
#define BLOB_MAGIC "RVFS"
#define BLOB_VERSION 1u
#define BLOB_HEAD (4 + 4 + 8 + 4)
#define BLOB_CHECKSUM 4

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
     "Roll the part file (publish it; with checkpointing, at the next completed checkpoint) and "
     "start a new one once it holds this many bytes (checked after each batch).",
     NULL, 0, 0, 0},
    {"roll_interval", RV_CFG_DURATION, "0", offsetof(file_cfg, roll_interval),
     "Roll the part file (as for `roll_size`) once it has been open this long, even when no rows "
     "arrive; 0 = never.",
     NULL, 0, 0, 366LL * 24 * 3600 * 1000},
    {"prefix", RV_CFG_STRING, "part", offsetof(file_cfg, prefix),
     "Start of the file names: `<prefix>-<subtask>-<n>.json` or `.csv`.", NULL, 0, 0, 0},
};

/* A closed, fsync'ed part file waiting under its hidden name for the
 * completion of its checkpoint. */
typedef struct pending_file {
    char *final_name;
    char *hidden_name;
    uint64_t size;
    uint64_t chk;  /* checkpoint id, when has_chk */
    bool has_chk;  /* false until the next snapshot() */
} pending_file;

typedef struct file_state {
    const file_cfg *cfg;
    rv_row_writer w;
    rv_schema *schema; /* borrowed from the runtime */
    char *dir;         /* cfg->path without trailing slashes */
    int dirfd;         /* -1 until opened */
    int subtask;
    bool two_phase;  /* rv_ctx_checkpointing(): publish on checkpoint_complete() */
    uint64_t next_n; /* n of the next part file */
    /* The current part file, fd -1 when none is open. */
    int fd;
    char *tmp_name;   /* ".part-0-3.json.inprogress" (relative to dir) */
    char *final_name; /* "part-0-3.json" */
    int64_t file_bytes; /* written + buffered */
    uint64_t file_rows;
    int64_t deadline_ms; /* roll_interval deadline, INT64_MAX when none */
    rv_buf buf;
    /* Two-phase: pre-committed files not yet published, oldest first. */
    pending_file *pend;
    size_t npend, cap_pend;
    bool dir_dirty; /* hidden files created since the directory's last fsync */
    bool failed;
    uint64_t rows_total, files_total;
} file_state;

/* "<action> <dir>/<name>: <strerror(e)>" (the runtime prefixes "sink
 * '<id>': "). */
static rv_err *io_err(const file_state *st, const char *action, const char *name, int e)
{
    return rv_err_new(RV_ERR_IO, "%s %s/%s: %s", action, st->dir, name, strerror(e));
}

static rv_err *dir_sync(const file_state *st)
{
    if (fsync(st->dirfd) != 0)
        return rv_err_new(RV_ERR_IO, "syncing directory %s: %s", st->dir, strerror(errno));
    return NULL;
}

/* Fails the job with err from a data-path callback. */
static rv_code fail(file_state *st, rv_op_ctx *ctx, rv_err *err)
{
    rv_code rc = rv_err_code(err);
    st->failed = true;
    rv_ctx_fail(ctx, err);
    return rc;
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

/* If name is a part file `<prefix>-<subtask>-<n>.*` or its hidden form
 * `.<prefix>-<subtask>-<n>.*.inprogress`, returns true with *subtask, *n
 * and whether it is hidden. */
static bool parse_part_name(const char *name, const char *prefix, int *subtask, uint64_t *n,
                            bool *hidden)
{
    *hidden = name[0] == '.';
    if (*hidden) {
        size_t len = strlen(name);
        static const char suffix[] = HIDDEN_SUFFIX;
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
    if (errno || *end != '-' || t > INT_MAX)
        return false;
    s = end + 1;
    if (*s < '0' || *s > '9')
        return false;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end != '.')
        return false;
    *subtask = (int)t;
    *n = v;
    return true;
}

/* Calls fn(st, name, arg) for every entry of the directory; stops at the
 * first error fn returns. */
static rv_err *list_dir(file_state *st, rv_err *(*fn)(file_state *, const char *, void *),
                        void *arg)
{
    int fd = openat(st->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return rv_err_new(RV_ERR_IO, "listing %s: %s", st->dir, strerror(e));
    }
    rv_err *err = NULL;
    struct dirent *de;
    while (!err && (errno = 0, de = readdir(d)) != NULL)
        err = fn(st, de->d_name, arg);
    int e = errno;
    closedir(d);
    if (!err && e)
        err = rv_err_new(RV_ERR_IO, "listing %s: %s", st->dir, strerror(e));
    return err;
}

static rv_err *scan_entry(file_state *st, const char *name, void *arg)
{
    uint64_t *next = arg, n;
    int sub;
    bool hidden;
    if (parse_part_name(name, st->cfg->prefix, &sub, &n, &hidden) && sub == st->subtask &&
        n + 1 > *next)
        *next = n + 1;
    return NULL;
}

/* Sets st->next_n to one past the highest n of this subtask in the dir. */
static rv_err *scan_dir(file_state *st)
{
    uint64_t next = 0;
    rv_err *err = list_dir(st, scan_entry, &next);
    if (!err)
        st->next_n = next;
    return err;
}

/* ---- part files ---- */

static void set_names(file_state *st, uint64_t n)
{
    const char *ext = rv_row_writer_ext(&st->w);
    free(st->tmp_name);
    free(st->final_name);
    st->final_name = rv_xasprintf("%s-%d-%" PRIu64 ".%s", st->cfg->prefix, st->subtask, n, ext);
    st->tmp_name = rv_xasprintf(".%s" HIDDEN_SUFFIX, st->final_name);
}

/* Writes out the buffer to the current part file. */
static rv_err *write_buf(file_state *st)
{
    const char *p = st->buf.data;
    size_t len = st->buf.len;
    while (len > 0) {
        ssize_t n = write(st->fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return io_err(st, "writing", st->tmp_name, errno);
        }
        p += n;
        len -= (size_t)n;
    }
    st->buf.len = 0;
    return NULL;
}

/* Creates the next in-progress part file, skipping names that exist. */
static rv_err *part_open(file_state *st, rv_op_ctx *ctx)
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
            return io_err(st, "creating", st->tmp_name, errno);
        st->fd = fd;
        st->dir_dirty = true;
        st->file_rows = 0;
        st->buf.len = 0;
        rv_row_writer_header(&st->w, st->schema, &st->buf);
        st->file_bytes = (int64_t)st->buf.len;
        st->deadline_ms = INT64_MAX;
        if (st->cfg->roll_interval > 0) {
            st->deadline_ms = rv_ctx_now_ms(ctx) + st->cfg->roll_interval;
            rv_ctx_timer_at(ctx, st->deadline_ms);
        }
        return NULL;
    }
    return rv_err_new(RV_ERR_IO,
                      "no free part file name in %s after %d tries (is another sink writing "
                      "there with prefix '%s'?)",
                      st->dir, FILE_NAME_TRIES, st->cfg->prefix);
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

/* Publishes the hidden file `hidden` as `final` (rename without replace);
 * the caller fsyncs the directory. */
static rv_err *publish_name(const file_state *st, const char *hidden, const char *final)
{
    int e = rename_noreplace(st->dirfd, hidden, final);
    if (e == EEXIST)
        return rv_err_new(RV_ERR_IO,
                          "cannot publish %s/%s: the file already exists (is another sink "
                          "writing there with prefix '%s'?); the rows are kept in %s",
                          st->dir, final, st->cfg->prefix, hidden);
    if (e != 0)
        return io_err(st, "renaming", hidden, e);
    return NULL;
}

/* Ends the current part file: flush, fsync, close. A file without rows is
 * removed instead (*size = -1). */
static rv_err *part_close(file_state *st, int64_t *size)
{
    rv_err *err = write_buf(st);
    if (err)
        return err;
    int fd = st->fd;
    st->fd = -1;
    *size = -1;
    if (st->file_rows == 0) {
        close(fd);
        unlinkat(st->dirfd, st->tmp_name, 0);
        return NULL;
    }
    struct stat sb;
    if (fsync(fd) != 0 || fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return io_err(st, "syncing", st->tmp_name, e);
    }
    if (close(fd) != 0)
        return io_err(st, "closing", st->tmp_name, errno);
    *size = (int64_t)sb.st_size;
    return NULL;
}

/* Publishes the current part file: close, rename, fsync the directory. */
static rv_err *part_publish(file_state *st, rv_op_ctx *ctx)
{
    int64_t size;
    rv_err *err = part_close(st, &size);
    if (err || size < 0)
        return err;
    if ((err = publish_name(st, st->tmp_name, st->final_name)) || (err = dir_sync(st)))
        return err;
    st->files_total++;
    RV_LOG_DEBUG(rv_ctx_tag(ctx),
                 "file sink: published %s/%s (%" PRIu64 " rows, %" PRId64 " bytes)", st->dir,
                 st->final_name, st->file_rows, st->file_bytes);
    return NULL;
}

static void pending_add(file_state *st, const char *final, const char *hidden, uint64_t size)
{
    if (st->npend == st->cap_pend) {
        st->cap_pend = st->cap_pend ? 2 * st->cap_pend : 8;
        st->pend = rv_xrealloc(st->pend, st->cap_pend * sizeof(*st->pend));
    }
    st->pend[st->npend++] = (pending_file){
        .final_name = rv_xstrdup(final), .hidden_name = rv_xstrdup(hidden), .size = size};
}

static void pending_free(pending_file *p)
{
    free(p->final_name);
    free(p->hidden_name);
}

/* Pre-commits the current part file: close it and make it pending (for the
 * next snapshot). */
static rv_err *part_precommit(file_state *st, rv_op_ctx *ctx)
{
    int64_t size;
    rv_err *err = part_close(st, &size);
    if (err || size < 0)
        return err;
    pending_add(st, st->final_name, st->tmp_name, (uint64_t)size);
    RV_LOG_DEBUG(rv_ctx_tag(ctx),
                 "file sink: pre-committed %s/%s (%" PRIu64 " rows, %" PRId64 " bytes)",
                 st->dir, st->tmp_name, st->file_rows, size);
    return NULL;
}

/* Rolls the current part file: published now, or with checkpointing at the
 * completion of the checkpoint that covers it. */
static rv_err *part_roll(file_state *st, rv_op_ctx *ctx)
{
    return st->two_phase ? part_precommit(st, ctx) : part_publish(st, ctx);
}

/* ---- state blob ---- */

static void put_u16(rv_buf *b, uint16_t v)
{
    uint8_t p[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    rv_buf_append(b, p, sizeof(p));
}

static void put_u32(rv_buf *b, uint32_t v)
{
    uint8_t p[4];
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
    rv_buf_append(b, p, sizeof(p));
}

static void put_u64(rv_buf *b, uint64_t v)
{
    uint8_t p[8];
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
    rv_buf_append(b, p, sizeof(p));
}

static void put_name(rv_buf *b, const char *s)
{
    size_t len = strlen(s); /* a file name: at most NAME_MAX bytes */
    put_u16(b, (uint16_t)len);
    rv_buf_append(b, s, len);
}

static uint32_t fnv1a(const uint8_t *p, size_t len)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 16777619u;
    }
    return h;
}

/* Reading a blob: every get_* checks the length first. */
typedef struct blob_reader {
    const uint8_t *p;
    size_t len, off;
} blob_reader;

static bool get_u64(blob_reader *r, int nbytes, uint64_t *v)
{
    if (r->len - r->off < (size_t)nbytes)
        return false;
    *v = 0;
    for (int i = 0; i < nbytes; i++)
        *v |= (uint64_t)r->p[r->off + (size_t)i] << (8 * i);
    r->off += (size_t)nbytes;
    return true;
}

/* A name from a blob: non-empty, at most NAME_MAX bytes, no '/' or NUL, not
 * "." or "..", hidden (starting with '.') or not as asked. */
static bool name_ok(const char *s, size_t len, bool hidden)
{
    if (len == 0 || len > NAME_MAX || memchr(s, '/', len) || memchr(s, '\0', len))
        return false;
    if ((len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.'))
        return false;
    return (s[0] == '.') == hidden;
}

/* One decoded blob. */
typedef struct file_blob {
    uint64_t next_n;
    pending_file *files;
    size_t nfiles;
} file_blob;

static void blob_free(file_blob *b)
{
    for (size_t i = 0; i < b->nfiles; i++)
        pending_free(&b->files[i]);
    free(b->files);
    b->files = NULL;
    b->nfiles = 0;
}

/* Decodes the blob of st (NULL data with len 0 is an empty blob, also an
 * error). On error, the message names the sink and the old subtask. */
static rv_err *blob_decode(rv_op_ctx *ctx, const rv_op_state *s, file_blob *out)
{
    memset(out, 0, sizeof(*out));
    const char *id = rv_ctx_id(ctx);
    blob_reader r = {.p = s->data, .len = s->len};
#define BLOB_ERR(...)                                                                          \
    do {                                                                                       \
        char why_[200];                                                                        \
        snprintf(why_, sizeof(why_), __VA_ARGS__);                                             \
        blob_free(out);                                                                        \
        return rv_err_new(RV_ERR_CORRUPT,                                                      \
                          "checkpoint state of file sink '%s' (old subtask %d of %d, %zu "    \
                          "bytes) is unusable: %s",                                            \
                          id, s->subtask, s->parallelism, s->len, why_);                       \
    } while (0)
    if (s->len < BLOB_HEAD + BLOB_CHECKSUM)
        BLOB_ERR("truncated (a valid state has at least %d bytes)", BLOB_HEAD + BLOB_CHECKSUM);
    if (memcmp(r.p, BLOB_MAGIC, 4) != 0)
        BLOB_ERR("it does not start with \"%s\" (not written by the file sink?)", BLOB_MAGIC);
    r.off = 4;
    uint64_t version = 0, count = 0, sum = 0;
    get_u64(&r, 4, &version);
    if (version != BLOB_VERSION)
        BLOB_ERR("format version %" PRIu64 " is not supported (only %u)", version, BLOB_VERSION);
    get_u64(&r, 8, &out->next_n);
    get_u64(&r, 4, &count);
    /* The count is bounded by the room left (an entry has at least
     * 8 + 8 + 2 + 1 + 2 + 1 bytes) before anything is allocated, and the
     * checksum is checked before the entries are read. */
    size_t body = s->len - BLOB_CHECKSUM;
    r.len = body;
    if (count > (body - r.off) / 22)
        BLOB_ERR("truncated: it lists %" PRIu64 " files but has room for at most %zu", count,
                 (body - r.off) / 22);
    blob_reader tail = {.p = s->data, .len = s->len, .off = body};
    get_u64(&tail, 4, &sum);
    if (sum != fnv1a(r.p, body))
        BLOB_ERR("checksum mismatch (truncated or damaged)");
    out->files = rv_xcalloc(count ? count : 1, sizeof(*out->files));
    for (uint64_t i = 0; i < count; i++) {
        pending_file *f = &out->files[out->nfiles];
        uint64_t len[2];
        const char *name[2];
        if (!get_u64(&r, 8, &f->chk) || !get_u64(&r, 8, &f->size))
            BLOB_ERR("truncated in file entry %" PRIu64, i);
        f->has_chk = true;
        for (int k = 0; k < 2; k++) {
            if (!get_u64(&r, 2, &len[k]) || r.len - r.off < len[k])
                BLOB_ERR("truncated in file entry %" PRIu64, i);
            name[k] = (const char *)r.p + r.off;
            r.off += len[k];
            if (!name_ok(name[k], len[k], k == 1))
                BLOB_ERR("file entry %" PRIu64 " has a bad %s name", i, k ? "hidden" : "final");
        }
        f->final_name = rv_xasprintf("%.*s", (int)len[0], name[0]);
        f->hidden_name = rv_xasprintf("%.*s", (int)len[1], name[1]);
        out->nfiles++;
    }
    if (r.off != body)
        BLOB_ERR("%zu unexpected bytes after the last file entry", body - r.off);
#undef BLOB_ERR
    return NULL;
}

/* ---- recovery ---- */

/* Commits one file a restored checkpoint pre-committed. */
static rv_err *restore_commit(file_state *st, const pending_file *f, int old_subtask,
                              bool *committed)
{
    *committed = false;
    int fd = openat(st->dirfd, f->hidden_name, O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno != ENOENT)
            return io_err(st, "opening", f->hidden_name, errno);
        if (faccessat(st->dirfd, f->final_name, F_OK, 0) == 0)
            return NULL; /* published before the failure */
        if (errno != ENOENT)
            return io_err(st, "checking", f->final_name, errno);
        return rv_err_new(RV_ERR_NOT_FOUND,
                          "checkpoint %" PRIu64 " of subtask %d pre-committed %s/%s (%" PRIu64
                          " bytes) but neither it nor %s exists (was the directory changed, or "
                          "is it not shared by the task managers?)",
                          f->chk, old_subtask, st->dir, f->hidden_name, f->size, f->final_name);
    }
    struct stat sb;
    rv_err *err = NULL;
    if (fstat(fd, &sb) != 0)
        err = io_err(st, "inspecting", f->hidden_name, errno);
    else if ((uint64_t)sb.st_size < f->size)
        err = rv_err_new(RV_ERR_CORRUPT,
                         "%s/%s has %lld bytes but checkpoint %" PRIu64 " recorded %" PRIu64
                         " (the file was cut short after the checkpoint)",
                         st->dir, f->hidden_name, (long long)sb.st_size, f->chk, f->size);
    else if ((uint64_t)sb.st_size > f->size && ftruncate(fd, (off_t)f->size) != 0)
        err = io_err(st, "truncating", f->hidden_name, errno);
    else if (fsync(fd) != 0)
        err = io_err(st, "syncing", f->hidden_name, errno);
    if (close(fd) != 0 && !err)
        err = io_err(st, "closing", f->hidden_name, errno);
    if (!err)
        err = publish_name(st, f->hidden_name, f->final_name);
    *committed = !err;
    return err;
}

typedef struct sweep_arg {
    const int *subtasks;     /* old subtasks mapped to this instance */
    const uint64_t *next_ns; /* ... and their next part numbers at the checkpoint */
    int nsubtasks;
    char **names; /* files to delete */
    size_t nnames, cap;
    size_t npublished; /* of which published */
} sweep_arg;

/* Files of the restored subtasks that the checkpoint does not know: hidden
 * ones hold rows written after it; published ones numbered past its next
 * part number were published by a newer checkpoint that cannot be used
 * (damaged): their rows are replayed too, so they go as well. */
static rv_err *sweep_entry(file_state *st, const char *name, void *arg)
{
    sweep_arg *a = arg;
    uint64_t n;
    int sub;
    bool hidden;
    if (!parse_part_name(name, st->cfg->prefix, &sub, &n, &hidden))
        return NULL;
    int idx = -1;
    for (int i = 0; i < a->nsubtasks && idx < 0; i++)
        if (a->subtasks[i] == sub)
            idx = i;
    if (idx < 0 || (st->fd >= 0 && strcmp(name, st->tmp_name) == 0))
        return NULL;
    if (!hidden) {
        if (n < a->next_ns[idx])
            return NULL;
        a->npublished++;
    }
    for (size_t i = 0; i < st->npend; i++)
        if (strcmp(name, st->pend[i].hidden_name) == 0)
            return NULL;
    if (a->nnames == a->cap) {
        a->cap = a->cap ? 2 * a->cap : 16;
        a->names = rv_xrealloc(a->names, a->cap * sizeof(*a->names));
    }
    a->names[a->nnames++] = rv_xstrdup(name);
    return NULL;
}

static rv_err *file_restore(void *state, rv_op_ctx *ctx, const rv_op_state *states, int n)
{
    file_state *st = state;
    int par = rv_ctx_parallelism(ctx);
    file_blob *blobs = rv_xcalloc(n > 0 ? (size_t)n : 1, sizeof(*blobs));
    int *subs = rv_xcalloc(n > 0 ? (size_t)n : 1, sizeof(*subs));
    uint64_t *next_ns = rv_xcalloc(n > 0 ? (size_t)n : 1, sizeof(*next_ns));
    int nsubs = 0;
    rv_err *err = NULL;
    /* Check every blob before touching a file. */
    for (int i = 0; i < n && !err; i++) {
        if (states[i].subtask < 0 || states[i].subtask % par != st->subtask)
            continue;
        if ((err = blob_decode(ctx, &states[i], &blobs[i])))
            break;
        next_ns[nsubs] = blobs[i].next_n;
        subs[nsubs++] = states[i].subtask;
        if (states[i].subtask == st->subtask && blobs[i].next_n > st->next_n)
            st->next_n = blobs[i].next_n;
    }
    size_t ncommitted = 0, nlisted = 0;
    for (int i = 0; i < n && !err; i++) {
        for (size_t k = 0; k < blobs[i].nfiles && !err; k++) {
            bool done;
            err = restore_commit(st, &blobs[i].files[k], states[i].subtask, &done);
            ncommitted += done;
            nlisted++;
        }
    }
    if (!err && ncommitted > 0)
        err = dir_sync(st);
    /* What else those subtasks wrote came after the checkpoint and is
     * replayed: drop it (sweep_entry). */
    sweep_arg sw = {.subtasks = subs, .next_ns = next_ns, .nsubtasks = nsubs};
    if (!err && nsubs > 0)
        err = list_dir(st, sweep_entry, &sw);
    size_t ndeleted = 0;
    for (size_t i = 0; i < sw.nnames; i++) {
        if (!err && unlinkat(st->dirfd, sw.names[i], 0) != 0 && errno != ENOENT)
            err = io_err(st, "deleting", sw.names[i], errno);
        else if (!err)
            ndeleted++;
        free(sw.names[i]);
    }
    free(sw.names);
    if (!err && ndeleted > 0)
        err = dir_sync(st);
    for (int i = 0; i < n; i++)
        blob_free(&blobs[i]);
    free(blobs);
    free(subs);
    free(next_ns);
    if (!err && sw.npublished)
        RV_LOG_WARN(rv_ctx_tag(ctx),
                    "file sink: deleted %zu published part file(s) newer than the checkpoint being restored "
                    "(a newer checkpoint was unusable); their rows are written again",
                    sw.npublished);
    if (err) {
        st->failed = true;
        return err;
    }
    RV_LOG_INFO(rv_ctx_tag(ctx),
                "file sink: restored the state of %d old subtask(s): published %zu of %zu "
                "pre-committed files (the others already were), deleted %zu hidden files "
                "written after the checkpoint; next part number %" PRIu64,
                nsubs, ncommitted, nlisted, ndeleted, st->next_n);
    return NULL;
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
    for (size_t i = 0; i < st->npend; i++)
        pending_free(&st->pend[i]);
    free(st->pend);
    st->pend = NULL;
    st->npend = st->cap_pend = 0;
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
    st->two_phase = rv_ctx_checkpointing(ctx);
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
    rv_err *err;
    if (st->failed)
        return RV_ERR_IO;
    if (st->fd >= 0 && rv_ctx_now_ms(ctx) >= st->deadline_ms && (err = part_roll(st, ctx)))
        return fail(st, ctx, err);
    if (in->nrows == 0)
        return RV_OK;
    if (st->fd < 0 && (err = part_open(st, ctx)))
        return fail(st, ctx, err);
    int64_t written = st->file_bytes - (int64_t)st->buf.len;
    uint32_t row = 0;
    while (row < in->nrows) {
        row = rv_row_writer_rows(&st->w, in, row, FILE_BUF_BYTES, &st->buf);
        if (st->buf.len >= FILE_BUF_BYTES) {
            written += (int64_t)st->buf.len;
            if ((err = write_buf(st)))
                return fail(st, ctx, err);
        }
    }
    st->file_bytes = written + (int64_t)st->buf.len;
    st->file_rows += in->nrows;
    st->rows_total += in->nrows;
    if (st->file_bytes >= st->cfg->roll_size && (err = part_roll(st, ctx)))
        return fail(st, ctx, err);
    return RV_OK;
}

static rv_code file_on_timer(void *state, rv_op_ctx *ctx, int64_t when_ms)
{
    file_state *st = state;
    if (st->failed)
        return RV_ERR_IO;
    /* Timers of files rolled earlier (by size) are stale: ignore them. */
    rv_err *err;
    if (st->fd >= 0 && when_ms >= st->deadline_ms && (err = part_roll(st, ctx)))
        return fail(st, ctx, err);
    return RV_OK;
}

static rv_err *file_snapshot(void *state, rv_op_ctx *ctx, uint64_t id, rv_buf *out)
{
    file_state *st = state;
    if (st->failed)
        return rv_err_new(RV_ERR_IO, "file sink cannot take checkpoint %" PRIu64
                                     " after an earlier error in %s", id, st->dir);
    rv_err *err = NULL;
    if (st->two_phase && st->fd >= 0)
        err = part_precommit(st, ctx);
    if (!err && st->dir_dirty && !(err = dir_sync(st)))
        st->dir_dirty = false;
    if (err) {
        st->failed = true;
        return err;
    }
    size_t start = out->len;
    rv_buf_append(out, BLOB_MAGIC, 4);
    put_u32(out, BLOB_VERSION);
    put_u64(out, st->next_n);
    put_u32(out, (uint32_t)st->npend);
    for (size_t i = 0; i < st->npend; i++) {
        pending_file *p = &st->pend[i];
        if (!p->has_chk) {
            p->chk = id;
            p->has_chk = true;
        }
        put_u64(out, p->chk);
        put_u64(out, p->size);
        put_name(out, p->final_name);
        put_name(out, p->hidden_name);
    }
    put_u32(out, fnv1a((const uint8_t *)out->data + start, out->len - start));
    return NULL;
}

static rv_err *file_checkpoint_complete(void *state, rv_op_ctx *ctx, uint64_t id)
{
    file_state *st = state;
    rv_err *err = NULL;
    size_t keep = 0, published = 0;
    for (size_t i = 0; i < st->npend; i++) {
        pending_file *p = &st->pend[i];
        if (!err && p->has_chk && p->chk <= id &&
            !(err = publish_name(st, p->hidden_name, p->final_name))) {
            RV_LOG_DEBUG(rv_ctx_tag(ctx), "file sink: checkpoint %" PRIu64 " published %s/%s",
                         id, st->dir, p->final_name);
            pending_free(p);
            published++;
            continue;
        }
        st->pend[keep++] = *p;
    }
    st->npend = keep;
    st->files_total += published;
    rv_err *serr = published > 0 ? dir_sync(st) : NULL;
    if (!err)
        err = serr;
    else
        rv_err_free(serr);
    if (err)
        st->failed = true;
    return err;
}

static rv_code file_finish(void *state, rv_op_ctx *ctx)
{
    file_state *st = state;
    if (st->failed)
        return RV_ERR_IO;
    rv_err *err;
    if (st->fd >= 0 && (err = part_roll(st, ctx)))
        return fail(st, ctx, err);
    if (st->two_phase)
        RV_LOG_INFO(rv_ctx_tag(ctx),
                    "file sink: wrote %" PRIu64 " rows to %s; %zu files wait for the final "
                    "checkpoint to be published",
                    st->rows_total, st->dir, st->npend);
    else
        RV_LOG_INFO(rv_ctx_tag(ctx),
                    "file sink: wrote %" PRIu64 " rows in %" PRIu64 " files to %s",
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
            rv_err_free(write_buf(st));
        RV_LOG_WARN(rv_ctx_tag(ctx), "file sink: input did not end: %s/%s left unpublished",
                    st->dir, st->tmp_name);
    }
    if (st->npend > 0)
        RV_LOG_WARN(rv_ctx_tag(ctx),
                    "file sink: %zu pre-committed files in %s stay hidden: their checkpoint "
                    "did not complete (a restore from it publishes them)",
                    st->npend, st->dir);
    release(st);
}

const rv_plugin rv_sink_file = {
    .name = "file",
    .abi = RV_PLUGIN_ABI,
    .kind = RV_PLUGIN_SINK,
    .doc = "Writes rows as JSON lines or CSV into part files in a directory. Each subtask "
           "writes `<prefix>-<subtask>-<n>.json` (or `.csv`), n counting up from 0 or from past "
           "the highest n already there, so earlier output is never overwritten. A file being "
           "written is hidden as `.<name>.inprogress` and is rolled (fsync'ed and closed) when "
           "it reaches `roll_size`, when `roll_interval` has passed, and when the input ends; "
           "readers of the directory see only complete files, published by a rename. Without "
           "checkpointing a rolled file is published at once; if the job is canceled or fails, "
           "the current file stays hidden under its in-progress name. With checkpointing "
           "(exactly-once), a rolled file stays hidden until the checkpoint that covers it "
           "completes, and each checkpoint also rolls the current file, so rows appear about "
           "one checkpoint interval late; a job restored from a checkpoint publishes what the "
           "checkpoint covered and deletes the hidden files written after it, whose rows are "
           "written again.",
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
    .snapshot = file_snapshot,
    .restore = file_restore,
    .checkpoint_complete = file_checkpoint_complete,
};
