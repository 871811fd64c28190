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
 * was replaced and is read from the start. A CSV file whose header was
 * rejected keeps rejecting its rows (until it is truncated or replaced).
 *
 * Checkpoints: snapshot() writes, for every file of the instance that it
 * has started on, its name (as listed: the file name in a directory, the
 * path otherwise), inode, the byte offset of the first line not yet
 * emitted (lines the reader has buffered but not returned are not
 * counted, nor is an unterminated last line in follow mode), the line
 * count (for `path:line` of bad records), whether it is finished (bounded
 * mode) or inside a too-long line being skipped, and the CSV header state
 * (the accepted header line, or that it was rejected). A poll emits whole
 * batches and the snapshot comes between polls, so every line up to the
 * offset has been emitted (or reported as a bad record) and none after it.
 * The blob (integers little-endian):
 *   "RVFL" | u8 version (1) | u32 n | n x (u32 name length | name | u64 inode
 *   | u64 offset | u64 line count | u8 flags (1 finished, 2 skipping a long
 *   line, 4 has header, 8 header rejected) | [u32 length | header line])
 * Files not started are not written: no entry means "from the start".
 * restore() merges the entries of all old instances (any parallelism) and
 * applies those of the files this instance owns now under the current
 * assignment (k % P or the name hash, as above); the other files start
 * from 0. A finished file stays finished (bounded mode; follow mode reads
 * on from the offset). An unfinished file whose inode changed, or that is
 * now shorter than its offset, is read from the start, with a warning. A
 * file named in the state that is gone is skipped with a warning. A
 * corrupt or truncated blob fails the restore with an error naming the
 * source. */
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
#include "rv_record.h" /* rv_buf */

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
    bool header_bad; /* CSV: the header line was rejected */
    bool pending;    /* has (maybe) unread data */
    bool done;       /* bounded: read to its end */
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
            f->header_bad = false;
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
            while (st->next < st->nfiles && !f) {
                f = &st->files[st->next++];
                if (f->done) /* finished before a checkpoint we resumed from */
                    f = NULL;
            }
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
        else if (f->header_bad && !f->header) {
            /* Its header was rejected: its rows still are. */
            st->dec.need_header = false;
            st->dec.header_bad = true;
        }
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
    rv_dec_result res = rv_line_decode(&st->dec, ls, line, len, st->b, &reason, &raw_len);
    f->header_bad = st->dec.header_bad;
    switch (res) {
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
            if (!st->cfg->follow)
                st->cur->done = true;
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

/* ---- checkpoints ---- */

#define STATE_MAGIC "RVFL"
#define STATE_VERSION 1
#define F_DONE 1u
#define F_SKIPPING 2u
#define F_HEADER 4u
#define F_HEADER_BAD 8u

static void put_le(rv_buf *out, uint64_t v, int n)
{
    unsigned char b[8];
    for (int k = 0; k < n; k++)
        b[k] = (unsigned char)(v >> (8 * k));
    rv_buf_append(out, b, (size_t)n);
}

static rv_err *file_snapshot(void *state, rv_op_ctx *ctx, uint64_t id, rv_buf *out)
{
    (void)ctx;
    (void)id;
    file_state *st = state;
    uint32_t n = 0;
    for (size_t k = 0; k < st->nfiles; k++) {
        const src_file *f = &st->files[k];
        n += f == st->cur || f->offset || f->lineno || f->done || f->header || f->header_bad ||
             f->skipping;
    }
    rv_buf_append(out, STATE_MAGIC, 4);
    put_le(out, STATE_VERSION, 1);
    put_le(out, n, 4);
    for (size_t k = 0; k < st->nfiles; k++) {
        const src_file *f = &st->files[k];
        uint64_t offset = f->offset;
        bool skipping = f->skipping;
        if (f == st->cur) {
            /* Lines returned by the reader were all emitted (a poll emits
             * what it decoded); what it buffered beyond them was not. */
            offset += rv_line_reader_offset(st->lr);
            skipping = rv_line_reader_skipping(st->lr);
        } else if (!(offset || f->lineno || f->done || f->header || f->header_bad || skipping)) {
            continue;
        }
        size_t name_len = strlen(f->name);
        put_le(out, name_len, 4);
        rv_buf_append(out, f->name, name_len);
        put_le(out, (uint64_t)f->ino, 8);
        put_le(out, offset, 8);
        put_le(out, f->lineno, 8);
        unsigned flags = (f->done ? F_DONE : 0) | (skipping ? F_SKIPPING : 0) |
                         (f->header ? F_HEADER : 0) | (f->header_bad ? F_HEADER_BAD : 0);
        put_le(out, flags, 1);
        if (f->header) {
            put_le(out, f->header_len, 4);
            rv_buf_append(out, f->header, f->header_len);
        }
    }
    return NULL;
}

/* One file's position as read from a state (pointers into the blob). */
typedef struct saved_file {
    const char *name;
    size_t name_len;
    uint64_t ino, offset, lineno;
    unsigned flags;
    const char *header;
    size_t header_len;
    int subtask; /* the old instance that wrote it */
} saved_file;

typedef struct blob_reader {
    const unsigned char *p;
    size_t len, pos;
} blob_reader;

static bool get_le(blob_reader *r, int n, uint64_t *v)
{
    if (r->len - r->pos < (size_t)n)
        return false;
    uint64_t x = 0;
    for (int k = 0; k < n; k++)
        x |= (uint64_t)r->p[r->pos + (size_t)k] << (8 * k);
    r->pos += (size_t)n;
    *v = x;
    return true;
}

static bool get_bytes(blob_reader *r, uint64_t n, const char **out)
{
    if (r->len - r->pos < n)
        return false;
    *out = (const char *)r->p + r->pos;
    r->pos += (size_t)n;
    return true;
}

/* Appends the entries of one old instance's state to *saved. */
static rv_err *decode_state(const rv_op_state *s, const char *id, saved_file **saved,
                            size_t *nsaved, size_t *cap)
{
    blob_reader r = {.p = s->data, .len = s->data ? s->len : 0, .pos = 0};
    uint64_t version = 0, n = 0;
    const char *magic = NULL;
    if (!get_bytes(&r, 4, &magic) || memcmp(magic, STATE_MAGIC, 4) != 0)
        return rv_err_new(RV_ERR_CORRUPT, "source '%s': checkpoint state of instance %d is not "
                          "a file source state (%zu bytes, bad header)", id, s->subtask, r.len);
    if (!get_le(&r, 1, &version))
        return rv_err_new(RV_ERR_CORRUPT, "source '%s': checkpoint state of instance %d is "
                          "truncated (%zu bytes)", id, s->subtask, r.len);
    if (version != STATE_VERSION)
        return rv_err_new(RV_ERR_CORRUPT, "source '%s': checkpoint state of instance %d has "
                          "version %llu; this build reads version %d", id, s->subtask,
                          (unsigned long long)version, STATE_VERSION);
    if (!get_le(&r, 4, &n))
        return rv_err_new(RV_ERR_CORRUPT, "source '%s': checkpoint state of instance %d is "
                          "truncated (%zu bytes)", id, s->subtask, r.len);
    for (uint64_t k = 0; k < n; k++) {
        saved_file e = {.subtask = s->subtask};
        uint64_t name_len = 0, flags = 0, header_len = 0;
        const char *what = NULL;
        if (!get_le(&r, 4, &name_len) || !get_bytes(&r, name_len, &e.name))
            what = "its name";
        else if (name_len == 0 || memchr(e.name, '\0', (size_t)name_len))
            what = "its name (empty or with a NUL byte)";
        else if (!get_le(&r, 8, &e.ino) || !get_le(&r, 8, &e.offset) ||
                 !get_le(&r, 8, &e.lineno) || !get_le(&r, 1, &flags))
            what = "its position";
        else if (flags & ~(uint64_t)(F_DONE | F_SKIPPING | F_HEADER | F_HEADER_BAD))
            what = "its flags (unknown bits)";
        else if ((flags & F_HEADER) &&
                 (!get_le(&r, 4, &header_len) || !get_bytes(&r, header_len, &e.header)))
            what = "its CSV header";
        if (what)
            return rv_err_new(RV_ERR_CORRUPT, "source '%s': checkpoint state of instance %d is "
                              "truncated or corrupt at file entry %llu of %llu (%s)", id,
                              s->subtask, (unsigned long long)k + 1, (unsigned long long)n, what);
        e.name_len = (size_t)name_len;
        e.flags = (unsigned)flags;
        e.header_len = (size_t)header_len;
        rv_xgrow((void **)saved, cap, *nsaved + 1, sizeof(saved_file));
        (*saved)[(*nsaved)++] = e;
    }
    if (r.pos != r.len)
        return rv_err_new(RV_ERR_CORRUPT, "source '%s': checkpoint state of instance %d is "
                          "corrupt: %zu bytes after its last file entry", id, s->subtask,
                          r.len - r.pos);
    return NULL;
}

static bool name_is(const saved_file *e, const char *name)
{
    return strlen(name) == e->name_len && memcmp(name, e->name, e->name_len) == 0;
}

/* The more advanced of two entries for one file (in case two old
 * instances both listed it). */
static bool ahead_of(const saved_file *a, const saved_file *b)
{
    if ((a->flags & F_DONE) != (b->flags & F_DONE))
        return a->flags & F_DONE;
    return a->offset > b->offset;
}

/* Copies the saved position e into f. */
static void set_position(src_file *f, const saved_file *e)
{
    f->offset = f->seen = e->offset;
    f->lineno = e->lineno;
    f->skipping = e->flags & F_SKIPPING;
    f->header_bad = e->flags & F_HEADER_BAD;
    free(f->header);
    f->header = NULL;
    f->header_len = 0;
    if (e->flags & F_HEADER) {
        f->header = rv_xstrndup(e->header, e->header_len);
        f->header_len = e->header_len;
    }
}

/* Puts file f at the saved position e (f is fresh from open()). */
static void apply_saved(file_state *st, src_file *f, const saved_file *e)
{
    if (!st->cfg->follow && (e->flags & F_DONE)) {
        set_position(f, e);
        f->done = true; /* finished stays finished */
        f->pending = false;
        return;
    }
    struct stat sb;
    if (stat(f->path, &sb) != 0) {
        RV_LOG_WARN(st->tag, "%s: cannot check it against the checkpoint (%s); reading it "
                    "from the start", f->path, strerror(errno));
        return;
    }
    f->ino = sb.st_ino;
    if ((uint64_t)sb.st_ino != e->ino || (uint64_t)sb.st_size < e->offset) {
        RV_LOG_WARN(st->tag, "%s was %s since the checkpoint; reading it from the start",
                    f->path, (uint64_t)sb.st_ino != e->ino ? "replaced" : "truncated");
        return;
    }
    set_position(f, e);
    f->pending = true;
}

static rv_err *file_restore(void *state, rv_op_ctx *ctx, const rv_op_state *states, int n)
{
    file_state *st = state;
    const char *id = rv_ctx_id(ctx);
    saved_file *saved = NULL;
    size_t nsaved = 0, cap = 0;
    for (int k = 0; k < n; k++) {
        rv_err *err = decode_state(&states[k], id, &saved, &nsaved, &cap);
        if (err) {
            free(saved);
            return err;
        }
    }
    for (size_t k = 0; k < nsaved; k++) {
        const saved_file *e = &saved[k];
        bool superseded = false;
        for (size_t j = 0; j < nsaved && !superseded; j++)
            superseded = j != k && e->name_len == saved[j].name_len &&
                         memcmp(e->name, saved[j].name, e->name_len) == 0 &&
                         (ahead_of(&saved[j], e) || (j < k && !ahead_of(e, &saved[j])));
        if (superseded)
            continue;
        src_file *f = NULL;
        for (size_t j = 0; j < st->nfiles && !f; j++)
            if (name_is(e, st->files[j].name))
                f = &st->files[j];
        if (f) {
            apply_saved(st, f, e);
            continue;
        }
        /* Not ours now: another instance's, no longer matching, or gone.
         * One instance reports a gone file. */
        char *name = rv_xstrndup(e->name, e->name_len);
        char *path = st->is_dir ? rv_xasprintf("%s/%s", st->cfg->path, name) : rv_xstrdup(name);
        struct stat sb;
        bool reporter = st->cfg->follow && st->is_dir
                            ? is_mine(st, name, 0)
                            : e->subtask % st->par == st->subtask;
        if (stat(path, &sb) != 0 && errno == ENOENT && reporter)
            RV_LOG_WARN(st->tag, "%s is in the checkpoint but gone now; skipped", path);
        free(name);
        free(path);
    }
    free(saved);
    return NULL;
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
    .snapshot = file_snapshot,
    .restore = file_restore,
};
