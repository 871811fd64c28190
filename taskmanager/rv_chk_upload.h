/* rv_chk_upload: the asynchronous half of subtask snapshots. A subtask
 * serialises its keyed state into memory at the barrier (the short
 * synchronous part) and hands the buffers here; one thread per job run
 * writes them into the checkpoint directory (temporary name, fsync,
 * rename; size and checksum into the handles) and then acknowledges the
 * subtask's part of the checkpoint, while the subtask goes on processing.
 *
 * At most one checkpoint is in flight per job (the coordinator triggers
 * the next only after the previous completed or was abandoned), so the
 * memory held here is bounded by one snapshot of the run's state. */
#ifndef RV_CHK_UPLOAD_H
#define RV_CHK_UPLOAD_H

#include <stddef.h>
#include <stdint.h>

#include "rivulet.pb-c.h"

typedef struct rv_chk_uploader rv_chk_uploader;

/* Called on the upload thread when a subtask's part is written (or failed:
 * error set, hs NULL). The handles are borrowed for the call. */
typedef void (*rv_chk_upload_done_fn)(void *arg, uint64_t id, int task, int subtask, Rivulet__StateHandle **hs,
                                      size_t n, const char *error, uint64_t sync_us, uint64_t async_us);

/* One buffer to write as dir/name; its size and checksum go to handle
 * hs[handle] (whose `file` becomes name). With db_dir, also a local
 * RocksDB checkpoint to upload: its SST files go to <dir>/../shared/ as
 * <db_prefix>-<name> (once: later checkpoints refer to them), the rest
 * into dir; they are listed in the handle's db_files and db_dir is removed
 * afterwards. */
typedef struct rv_chk_blob {
    size_t handle;
    char *name; /* owned */
    char *data; /* owned (malloc'd) */
    size_t len;
    char *db_dir;    /* owned, or NULL */
    char *db_prefix; /* owned, or NULL */
} rv_chk_blob;

rv_chk_uploader *rv_chk_uploader_new(const char *tag, rv_chk_upload_done_fn done, void *arg);
/* Queues a subtask's part of checkpoint id. Takes dir, hs (and each
 * handle, freed with rv_chk_handles_free) and blobs. */
void rv_chk_uploader_put(rv_chk_uploader *u, uint64_t id, int task, int subtask, char *dir, Rivulet__StateHandle **hs,
                         size_t n, rv_chk_blob *blobs, size_t nblobs, uint64_t sync_us);
/* Writes what is queued, then stops the thread and frees. Accepts NULL. */
void rv_chk_uploader_free(rv_chk_uploader *u);

/* Frees blobs (and removes their local RocksDB checkpoints); tag names
 * the caller in a warning if one cannot be removed. Accepts NULL. */
void rv_chk_blobs_free(rv_chk_blob *blobs, size_t n, const char *tag);
/* Frees handles built by the runtime (node, file, operator_state and
 * db_files owned). */
void rv_chk_handles_free(Rivulet__StateHandle **hs, size_t n);

#endif
