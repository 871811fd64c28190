/* rv_checkpoint: checkpoint directories, safe files, _metadata (see
 * rv_checkpoint.h). A state file's checksum is computed while it is
 * written (a glibc fopencookie stream that hashes what passes through),
 * so committing never reads the file back. */
#include "rv_checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "rv_file.h"
#include "rv_log.h"
#include "rv_mem.h"

#define META_MAGIC "RVCHK001"
#define META_NAME "_metadata"
#define META_MAX (256u << 20)

char *rv_chk_dir(const char *root, const char *job, uint64_t id)
{
    return rv_xasprintf("%s/%s/chk-%" PRIu64, root, job, id);
}

static rv_err *fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        return rv_err_new(RV_ERR_IO, "cannot open %s: %s", dir, strerror(errno));
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    return rc == 0 ? NULL : rv_err_new(RV_ERR_IO, "cannot sync %s: %s", dir, strerror(e));
}

/* ---- state files ---- */

struct rv_chk_file {
    int fd;
    FILE *f;
    XXH3_state_t *h;
    uint64_t size;
    int err; /* errno of the first failed write */
    char *tmp, *path, *dir;
};

static ssize_t cookie_write(void *c, const char *buf, size_t n)
{
    rv_chk_file *cf = c;
    size_t done = 0;
    while (done < n) {
        ssize_t w = write(cf->fd, buf + done, n - done);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (!cf->err)
                cf->err = errno;
            return -1;
        }
        done += (size_t)w;
    }
    XXH3_64bits_update(cf->h, buf, n);
    cf->size += n;
    return (ssize_t)n;
}

static int cookie_close(void *c)
{
    (void)c;
    return 0; /* the descriptor is closed by commit/abort */
}

rv_err *rv_chk_file_open(const char *dir, const char *name, rv_chk_file **out)
{
    static atomic_uint seq;
    rv_err *err = rv_file_mkdirs(dir);
    if (err)
        return err;
    rv_chk_file *cf = rv_xcalloc(1, sizeof(*cf));
    cf->dir = rv_xstrdup(dir);
    cf->path = rv_xasprintf("%s/%s", dir, name);
    cf->tmp = rv_xasprintf("%s/.%s.tmp-%d-%u", dir, name, (int)getpid(), atomic_fetch_add(&seq, 1));
    cf->fd = open(cf->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (cf->fd < 0) {
        err = rv_err_new(RV_ERR_IO, "cannot create %s: %s", cf->tmp, strerror(errno));
        free(cf->dir);
        free(cf->path);
        free(cf->tmp);
        free(cf);
        return err;
    }
    cf->h = XXH3_createState();
    XXH3_64bits_reset(cf->h);
    cookie_io_functions_t io = {.write = cookie_write, .close = cookie_close};
    cf->f = fopencookie(cf, "w", io);
    if (!cf->f) {
        err = rv_err_new(RV_ERR_IO, "cannot open a stream on %s: %s", cf->tmp, strerror(errno));
        rv_chk_file_abort(cf);
        return err;
    }
    setvbuf(cf->f, NULL, _IOFBF, 1 << 16);
    *out = cf;
    return NULL;
}

FILE *rv_chk_file_stream(rv_chk_file *cf) { return cf->f; }

static void file_free(rv_chk_file *cf)
{
    if (cf->f)
        fclose(cf->f);
    if (cf->fd >= 0)
        close(cf->fd);
    XXH3_freeState(cf->h);
    free(cf->dir);
    free(cf->path);
    free(cf->tmp);
    free(cf);
}

rv_err *rv_chk_file_commit(rv_chk_file *cf, uint64_t *size, uint64_t *checksum)
{
    rv_err *err = NULL;
    if (fflush(cf->f) != 0 || cf->err)
        err = rv_err_new(RV_ERR_IO, "writing %s failed: %s", cf->path, strerror(cf->err ? cf->err : errno));
    else if (fsync(cf->fd) != 0)
        err = rv_err_new(RV_ERR_IO, "cannot sync %s: %s", cf->path, strerror(errno));
    else if (rename(cf->tmp, cf->path) != 0)
        err = rv_err_new(RV_ERR_IO, "cannot rename %s: %s", cf->tmp, strerror(errno));
    else
        err = fsync_dir(cf->dir);
    if (!err) {
        *size = cf->size;
        *checksum = XXH3_64bits_digest(cf->h);
    } else {
        unlink(cf->tmp);
    }
    file_free(cf);
    return err;
}

void rv_chk_file_abort(rv_chk_file *cf)
{
    if (!cf)
        return;
    unlink(cf->tmp);
    file_free(cf);
}

/* ---- _metadata ---- */

/* A file name without directories ("" allowed when may_be_empty). */
static bool plain_name(const char *s, bool may_be_empty)
{
    if (!s[0])
        return may_be_empty;
    return !strchr(s, '/') && strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

rv_err *rv_chk_write_sealed(const char *dir, const char *name, const char *magic, const void *data, size_t dlen)
{
    size_t len = 8 + 4 + dlen + 8;
    uint8_t *buf = rv_xmalloc(len);
    memcpy(buf, magic, 8);
    uint32_t l32 = (uint32_t)dlen;
    memcpy(buf + 8, &l32, 4);
    memcpy(buf + 12, data, dlen);
    uint64_t sum = XXH3_64bits(buf, 12 + dlen);
    memcpy(buf + 12 + dlen, &sum, 8);
    rv_chk_file *cf = NULL;
    rv_err *err = rv_chk_file_open(dir, name, &cf);
    if (!err) {
        uint64_t size, checksum;
        if (fwrite(buf, 1, len, rv_chk_file_stream(cf)) != len) {
            err = rv_err_new(RV_ERR_IO, "writing %s/%s failed", dir, name);
            rv_chk_file_abort(cf);
        } else {
            err = rv_chk_file_commit(cf, &size, &checksum);
        }
    }
    free(buf);
    return err;
}

rv_err *rv_chk_read_sealed(const char *path, const char *magic, size_t max, void **out, size_t *out_len)
{
    char *data = NULL;
    size_t len = 0;
    rv_err *err = rv_file_read(path, max + 20, &data, &len);
    if (err)
        return err;
    const uint8_t *p = (const uint8_t *)data;
    uint32_t plen = 0;
    if (len >= 12)
        memcpy(&plen, p + 8, 4);
    uint64_t sum = 0;
    if (len < 20 || memcmp(p, magic, 8) != 0) {
        err = rv_err_new(RV_ERR_CORRUPT, "%s is not a %.8s file", path, magic);
    } else if ((size_t)plen + 20 != len) {
        err = rv_err_new(RV_ERR_CORRUPT, "%s is truncated or has extra bytes", path);
    } else {
        memcpy(&sum, p + 12 + plen, 8);
        if (sum != XXH3_64bits(p, 12 + plen))
            err = rv_err_new(RV_ERR_CORRUPT, "%s is corrupt (checksum mismatch)", path);
    }
    if (err) {
        free(data);
        return err;
    }
    memmove(data, data + 12, plen);
    *out = data;
    *out_len = plen;
    return NULL;
}

rv_err *rv_chk_write_metadata(const char *dir, const rv_chk_meta *meta)
{
    size_t plen = rivulet__checkpoint_metadata__get_packed_size(meta);
    if (plen > META_MAX)
        return rv_err_new(RV_ERR_INVALID, "checkpoint metadata of %zu bytes is too large", plen);
    uint8_t *buf = rv_xmalloc(plen ? plen : 1);
    rivulet__checkpoint_metadata__pack(meta, buf);
    rv_err *err = rv_chk_write_sealed(dir, META_NAME, META_MAGIC, buf, plen);
    free(buf);
    return err;
}

rv_err *rv_chk_read_metadata(const char *dir, rv_chk_meta **out)
{
    char *path = rv_xasprintf("%s/%s", dir, META_NAME);
    void *data = NULL;
    size_t plen = 0;
    rv_err *err = rv_chk_read_sealed(path, META_MAGIC, META_MAX, &data, &plen);
    if (!err) {
        rv_chk_meta *m = rivulet__checkpoint_metadata__unpack(NULL, plen, data);
        if (!m)
            err = rv_err_new(RV_ERR_CORRUPT, "%s does not decode", path);
        for (size_t i = 0; m && !err && i < m->n_states; i++) {
            if (!plain_name(m->states[i]->file, true))
                err = rv_err_new(RV_ERR_CORRUPT, "%s names a file outside its directory", path);
            for (size_t k = 0; !err && k < m->states[i]->n_db_files; k++)
                if (!plain_name(m->states[i]->db_files[k]->stored, false) ||
                    !plain_name(m->states[i]->db_files[k]->name, false))
                    err = rv_err_new(RV_ERR_CORRUPT, "%s names a file outside its directory", path);
        }
        if (err)
            rv_chk_meta_free(m);
        else
            *out = m;
    }
    free(data);
    free(path);
    return err;
}

void rv_chk_meta_free(rv_chk_meta *meta)
{
    if (meta)
        rivulet__checkpoint_metadata__free_unpacked(meta, NULL);
}

uint64_t rv_chk_state_bytes(const rv_chk_state *h)
{
    uint64_t n = h->size;
    for (size_t k = 0; k < h->n_db_files; k++)
        n += h->db_files[k]->size;
    return n;
}

/* Checks that path has size bytes with XXH3 checksum. */
static rv_err *verify_file(const char *path, uint64_t want_size, uint64_t want_sum, uint8_t *buf)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return rv_err_new(RV_ERR_NOT_FOUND, "%s is missing: %s", path, strerror(errno));
    XXH3_state_t *h = XXH3_createState();
    XXH3_64bits_reset(h);
    uint64_t size = 0;
    size_t n;
    while ((n = fread(buf, 1, 1 << 16, f)) > 0) {
        XXH3_64bits_update(h, buf, n);
        size += n;
    }
    rv_err *err = NULL;
    if (size != want_size)
        err = rv_err_new(RV_ERR_CORRUPT, "%s has %" PRIu64 " bytes, the checkpoint says %" PRIu64, path, size, want_size);
    else if (XXH3_64bits_digest(h) != want_sum)
        err = rv_err_new(RV_ERR_CORRUPT, "%s is corrupt (checksum mismatch)", path);
    XXH3_freeState(h);
    fclose(f);
    return err;
}

rv_err *rv_chk_verify(const char *dir, const rv_chk_meta *meta)
{
    uint8_t *buf = rv_xmalloc(1 << 16);
    rv_err *err = NULL;
    for (size_t i = 0; i < meta->n_states && !err; i++) {
        const rv_chk_state *st = meta->states[i];
        if (st->file[0]) {
            char *path = rv_xasprintf("%s/%s", dir, st->file);
            err = verify_file(path, st->size, st->checksum, buf);
            free(path);
        }
        for (size_t k = 0; k < st->n_db_files && !err; k++) {
            const Rivulet__DbFile *f = st->db_files[k];
            char *path = f->shared ? rv_xasprintf("%s/../%s/%s", dir, RV_CHK_SHARED, f->stored)
                                   : rv_xasprintf("%s/%s", dir, f->stored);
            err = verify_file(path, f->size, f->checksum, buf);
            free(path);
        }
    }
    free(buf);
    return err;
}

/* ---- finding and retaining ---- */

static int cmp_desc(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* The chk-<n> ids under <root>/<job>, newest first. */
static size_t list_ids(const char *root, const char *job, uint64_t **ids)
{
    char *jobdir = rv_xasprintf("%s/%s", root, job);
    DIR *d = opendir(jobdir);
    free(jobdir);
    *ids = NULL;
    size_t n = 0, cap = 0;
    if (!d)
        return 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        char *end = NULL;
        if (strncmp(e->d_name, "chk-", 4) != 0 || !e->d_name[4])
            continue;
        uint64_t id = strtoull(e->d_name + 4, &end, 10);
        if (*end)
            continue;
        rv_xgrow((void **)ids, &cap, n + 1, sizeof(uint64_t));
        (*ids)[n++] = id;
    }
    closedir(d);
    if (n)
        qsort(*ids, n, sizeof(uint64_t), cmp_desc);
    return n;
}

rv_err *rv_chk_latest(const char *root, const char *job, uint64_t *id, char **dir, rv_chk_meta **meta)
{
    uint64_t *ids;
    size_t n = list_ids(root, job, &ids);
    for (size_t i = 0; i < n; i++) {
        char *d = rv_chk_dir(root, job, ids[i]);
        char *mpath = rv_xasprintf("%s/%s", d, META_NAME);
        bool complete = access(mpath, F_OK) == 0;
        free(mpath);
        rv_chk_meta *m = NULL;
        rv_err *err = complete ? rv_chk_read_metadata(d, &m) : NULL;
        if (complete && !err && (err = rv_chk_verify(d, m))) {
            rv_chk_meta_free(m);
            m = NULL;
        }
        if (complete && !err) {
            *id = ids[i];
            *dir = d;
            *meta = m;
            free(ids);
            return NULL;
        }
        if (err) {
            RV_LOG_WARN("checkpoint", "checkpoint %" PRIu64 " of job %s is damaged, trying an older one: %s", ids[i],
                        job, rv_err_msg(err));
            rv_err_free(err);
        }
        free(d);
    }
    free(ids);
    return rv_err_new(RV_ERR_NOT_FOUND, "job %s has no complete checkpoint in %s", job, root);
}

/* Deletes the files of <root>/<job>/shared/ that no checkpoint left in
 * <root>/<job> refers to (complete ones by their metadata; an incomplete
 * one is newer than every complete one and keeps what it may use: files
 * it refers to already existed or are written by it, so nothing it needs
 * is older than the newest complete checkpoint's files — but to stay
 * safe, nothing is deleted while an incomplete checkpoint exists). */
static rv_err *remove_unreferenced_shared(const char *root, const char *job)
{
    char *shared = rv_xasprintf("%s/%s/%s", root, job, RV_CHK_SHARED);
    DIR *d = opendir(shared);
    if (!d) {
        free(shared);
        return NULL; /* no incremental state */
    }
    uint64_t *ids;
    size_t n = list_ids(root, job, &ids);
    char **refs = NULL;
    size_t nrefs = 0, cap = 0;
    bool incomplete = false;
    for (size_t i = 0; i < n && !incomplete; i++) {
        char *cd = rv_chk_dir(root, job, ids[i]);
        rv_chk_meta *m = NULL;
        rv_err *err = rv_chk_read_metadata(cd, &m);
        if (err) {
            incomplete = true; /* or damaged: keep everything */
            rv_err_free(err);
        }
        for (size_t s = 0; m && s < m->n_states; s++)
            for (size_t k = 0; k < m->states[s]->n_db_files; k++)
                if (m->states[s]->db_files[k]->shared) {
                    rv_xgrow((void **)&refs, &cap, nrefs + 1, sizeof(*refs));
                    refs[nrefs++] = rv_xstrdup(m->states[s]->db_files[k]->stored);
                }
        rv_chk_meta_free(m);
        free(cd);
    }
    free(ids);
    rv_err *err = NULL;
    struct dirent *e;
    while (!incomplete && !err && (e = readdir(d))) {
        if (e->d_name[0] == '.' && (e->d_name[1] == 0 || (e->d_name[1] == '.' && e->d_name[2] == 0)))
            continue;
        bool used = false;
        for (size_t i = 0; i < nrefs && !used; i++)
            used = strcmp(refs[i], e->d_name) == 0;
        if (used)
            continue;
        char *p = rv_xasprintf("%s/%s", shared, e->d_name);
        if (unlink(p) != 0 && errno != ENOENT)
            err = rv_err_new(RV_ERR_IO, "cannot remove %s: %s", p, strerror(errno));
        free(p);
    }
    closedir(d);
    for (size_t i = 0; i < nrefs; i++)
        free(refs[i]);
    free(refs);
    free(shared);
    return err;
}

rv_err *rv_chk_retain(const char *root, const char *job, int retained)
{
    uint64_t *ids;
    size_t n = list_ids(root, job, &ids);
    int complete = 0;
    rv_err *err = NULL;
    for (size_t i = 0; i < n && !err; i++) {
        char *d = rv_chk_dir(root, job, ids[i]);
        char *mpath = rv_xasprintf("%s/%s", d, META_NAME);
        bool is_complete = access(mpath, F_OK) == 0;
        free(mpath);
        /* Keep the newest `retained` complete ones and anything newer than
         * the newest complete one (it may still be in progress). */
        bool keep = is_complete ? complete < retained : complete == 0;
        if (is_complete)
            complete++;
        if (!keep)
            err = rv_file_remove_tree(d);
        free(d);
    }
    free(ids);
    return err ? err : remove_unreferenced_shared(root, job);
}
