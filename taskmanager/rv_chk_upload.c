/* rv_chk_upload: the upload thread of a job run's snapshots. */
#include "rv_chk_upload.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rv_checkpoint.h"
#include "rv_file.h"
#include "rv_log.h"
#include "rv_mem.h"
#include "rv_time.h"

typedef struct upload {
    uint64_t id;
    int task, subtask;
    char *dir;
    Rivulet__StateHandle **hs;
    size_t n;
    rv_chk_blob *blobs;
    size_t nblobs;
    uint64_t sync_us;
    struct upload *next;
} upload;

/* A shared file this uploader already stored (SST files never change). */
typedef struct shared_file {
    char *stored;
    uint64_t size, checksum;
} shared_file;

struct rv_chk_uploader {
    char *tag;
    shared_file *shared;
    size_t nshared, shared_cap;
    rv_chk_upload_done_fn done;
    void *arg;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    upload *head, *tail;
    bool stopping;
};

void rv_chk_blobs_free(rv_chk_blob *blobs, size_t n, const char *tag)
{
    for (size_t i = 0; i < n; i++) {
        if (blobs[i].db_dir) {
            rv_err *err = rv_file_remove_tree(blobs[i].db_dir);
            if (err) {
                RV_LOG_WARN(tag, "%s", rv_err_msg(err));
                rv_err_free(err);
            }
        }
        free(blobs[i].db_dir);
        free(blobs[i].db_prefix);
        free(blobs[i].name);
        free(blobs[i].data);
    }
    free(blobs);
}

void rv_chk_handles_free(Rivulet__StateHandle **hs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < hs[i]->n_db_files; k++) {
            free(hs[i]->db_files[k]->name);
            free(hs[i]->db_files[k]->stored);
            free(hs[i]->db_files[k]);
        }
        free(hs[i]->db_files);
        free(hs[i]->node);
        if (hs[i]->file != protobuf_c_empty_string)
            free(hs[i]->file);
        free(hs[i]->operator_state.data);
        free(hs[i]);
    }
    free(hs);
}

static rv_err *write_blob(const char *dir, rv_chk_blob *b, Rivulet__StateHandle *h)
{
    rv_chk_file *cf = NULL;
    rv_err *err = rv_chk_file_open(dir, b->name, &cf);
    if (err)
        return err;
    if (b->len && fwrite(b->data, 1, b->len, rv_chk_file_stream(cf)) != b->len) {
        rv_chk_file_abort(cf);
        return rv_err_new(RV_ERR_IO, "writing %s/%s failed", dir, b->name);
    }
    if ((err = rv_chk_file_commit(cf, &h->size, &h->checksum)))
        return err;
    h->file = b->name;
    b->name = NULL;
    return NULL;
}

/* Copies path into dir/name (temporary, fsync, rename); *size, *checksum
 * describe it. */
static rv_err *copy_file(const char *path, const char *dir, const char *name, uint64_t *size, uint64_t *checksum)
{
    FILE *in = fopen(path, "rb");
    if (!in)
        return rv_err_new(RV_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    rv_chk_file *cf = NULL;
    rv_err *err = rv_chk_file_open(dir, name, &cf);
    char *buf = rv_xmalloc(1 << 20);
    size_t n;
    while (!err && (n = fread(buf, 1, 1 << 20, in)) > 0)
        if (fwrite(buf, 1, n, rv_chk_file_stream(cf)) != n)
            err = rv_err_new(RV_ERR_IO, "writing %s/%s failed", dir, name);
    if (!err && ferror(in))
        err = rv_err_new(RV_ERR_IO, "reading %s failed", path);
    free(buf);
    fclose(in);
    if (err) {
        rv_chk_file_abort(cf);
        return err;
    }
    return rv_chk_file_commit(cf, size, checksum);
}

/* Uploads the RocksDB checkpoint b->db_dir: new SST files into shared/,
 * the rest into dir; lists them all in h. */
static rv_err *upload_db(rv_chk_uploader *u, const char *dir, rv_chk_blob *b, Rivulet__StateHandle *h)
{
    char *shared_dir = rv_xasprintf("%s/../shared", dir);
    DIR *d = opendir(b->db_dir);
    rv_err *err = d ? NULL : rv_err_new(RV_ERR_IO, "cannot read %s: %s", b->db_dir, strerror(errno));
    size_t cap = 0;
    struct dirent *e;
    while (!err && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        size_t l = strlen(e->d_name);
        bool shared = l > 4 && strcmp(e->d_name + l - 4, ".sst") == 0;
        Rivulet__DbFile *f = rv_xcalloc(1, sizeof(*f));
        rivulet__db_file__init(f);
        f->name = rv_xstrdup(e->d_name);
        f->shared = shared;
        f->stored = shared ? rv_xasprintf("%s-%s", b->db_prefix, e->d_name) : rv_xasprintf("%s-%s", b->name, e->d_name);
        rv_xgrow((void **)&h->db_files, &cap, h->n_db_files + 1, sizeof(*h->db_files));
        h->db_files[h->n_db_files++] = f;
        const shared_file *known = NULL;
        for (size_t i = 0; shared && i < u->nshared && !known; i++)
            if (strcmp(u->shared[i].stored, f->stored) == 0)
                known = &u->shared[i];
        if (known) {
            f->size = known->size;
            f->checksum = known->checksum;
            continue;
        }
        char *src = rv_xasprintf("%s/%s", b->db_dir, e->d_name);
        err = copy_file(src, shared ? shared_dir : dir, f->stored, &f->size, &f->checksum);
        free(src);
        if (!err) {
            h->uploaded += f->size;
            if (shared) {
                rv_xgrow((void **)&u->shared, &u->shared_cap, u->nshared + 1, sizeof(*u->shared));
                u->shared[u->nshared++] = (shared_file){rv_xstrdup(f->stored), f->size, f->checksum};
            }
        }
    }
    if (d)
        closedir(d);
    free(shared_dir);
    return err;
}

static void run_one(rv_chk_uploader *u, upload *w)
{
    int64_t t0 = rv_now_ns();
    rv_err *err = NULL;
    for (size_t i = 0; i < w->nblobs && !err; i++) {
        rv_chk_blob *b = &w->blobs[i];
        if (b->db_dir)
            err = upload_db(u, w->dir, b, w->hs[b->handle]);
        if (!err)
            err = write_blob(w->dir, b, w->hs[b->handle]);
    }
    uint64_t async_us = (uint64_t)(rv_now_ns() - t0) / 1000;
    if (err) {
        RV_LOG_WARN(u->tag, "checkpoint %llu: writing the state of subtask %d.%d failed: %s", (unsigned long long)w->id,
                    w->task, w->subtask, rv_err_msg(err));
        u->done(u->arg, w->id, w->task, w->subtask, NULL, 0, rv_err_msg(err), w->sync_us, async_us);
        rv_err_free(err);
    } else {
        u->done(u->arg, w->id, w->task, w->subtask, w->hs, w->n, NULL, w->sync_us, async_us);
    }
    rv_chk_blobs_free(w->blobs, w->nblobs, u->tag);
    rv_chk_handles_free(w->hs, w->n);
    free(w->dir);
    free(w);
}

static void *upload_main(void *arg)
{
    rv_chk_uploader *u = arg;
    pthread_mutex_lock(&u->mu);
    for (;;) {
        while (!u->head && !u->stopping)
            pthread_cond_wait(&u->cv, &u->mu);
        upload *w = u->head;
        if (!w)
            break; /* stopping and drained */
        u->head = w->next;
        if (!u->head)
            u->tail = NULL;
        pthread_mutex_unlock(&u->mu);
        run_one(u, w);
        pthread_mutex_lock(&u->mu);
    }
    pthread_mutex_unlock(&u->mu);
    return NULL;
}

rv_chk_uploader *rv_chk_uploader_new(const char *tag, rv_chk_upload_done_fn done, void *arg)
{
    rv_chk_uploader *u = rv_xcalloc(1, sizeof(*u));
    u->tag = rv_xstrdup(tag);
    u->done = done;
    u->arg = arg;
    pthread_mutex_init(&u->mu, NULL);
    pthread_cond_init(&u->cv, NULL);
    int rc = pthread_create(&u->thread, NULL, upload_main, u);
    if (rc != 0) {
        fprintf(stderr, "rivulet: cannot start a checkpoint upload thread: %s\n", strerror(rc));
        abort(); /* like an allocation failure: nothing sensible to go on with */
    }
    return u;
}

void rv_chk_uploader_put(rv_chk_uploader *u, uint64_t id, int task, int subtask, char *dir, Rivulet__StateHandle **hs,
                         size_t n, rv_chk_blob *blobs, size_t nblobs, uint64_t sync_us)
{
    upload *w = rv_xcalloc(1, sizeof(*w));
    *w = (upload){.id = id, .task = task, .subtask = subtask, .dir = dir, .hs = hs, .n = n, .blobs = blobs,
                  .nblobs = nblobs, .sync_us = sync_us};
    pthread_mutex_lock(&u->mu);
    if (u->tail)
        u->tail->next = w;
    else
        u->head = w;
    u->tail = w;
    pthread_cond_signal(&u->cv);
    pthread_mutex_unlock(&u->mu);
}

void rv_chk_uploader_free(rv_chk_uploader *u)
{
    if (!u)
        return;
    pthread_mutex_lock(&u->mu);
    u->stopping = true;
    pthread_cond_signal(&u->cv);
    pthread_mutex_unlock(&u->mu);
    pthread_join(u->thread, NULL);
    pthread_cond_destroy(&u->cv);
    pthread_mutex_destroy(&u->mu);
    for (size_t i = 0; i < u->nshared; i++)
        free(u->shared[i].stored);
    free(u->shared);
    free(u->tag);
    free(u);
}
