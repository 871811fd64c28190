/* rv_chk_upload: the upload thread of a job run's snapshots. */
#include "rv_chk_upload.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rv_checkpoint.h"
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

struct rv_chk_uploader {
    char *tag;
    rv_chk_upload_done_fn done;
    void *arg;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    upload *head, *tail;
    bool stopping;
};

void rv_chk_handles_free(Rivulet__StateHandle **hs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
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

static void run_one(rv_chk_uploader *u, upload *w)
{
    int64_t t0 = rv_now_ns();
    rv_err *err = NULL;
    for (size_t i = 0; i < w->nblobs && !err; i++)
        err = write_blob(w->dir, &w->blobs[i], w->hs[w->blobs[i].handle]);
    uint64_t async_us = (uint64_t)(rv_now_ns() - t0) / 1000;
    if (err) {
        RV_LOG_WARN(u->tag, "checkpoint %llu: writing the state of subtask %d.%d failed: %s", (unsigned long long)w->id,
                    w->task, w->subtask, rv_err_msg(err));
        u->done(u->arg, w->id, w->task, w->subtask, NULL, 0, rv_err_msg(err), w->sync_us, async_us);
        rv_err_free(err);
    } else {
        u->done(u->arg, w->id, w->task, w->subtask, w->hs, w->n, NULL, w->sync_us, async_us);
    }
    for (size_t i = 0; i < w->nblobs; i++) {
        free(w->blobs[i].name);
        free(w->blobs[i].data);
    }
    free(w->blobs);
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
    free(u->tag);
    free(u);
}
