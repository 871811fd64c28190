/* rv_checkpoint: checkpoint storage — the directory layout, state files
 * written safely, and the `_metadata` file that makes a checkpoint
 * complete.
 *
 * Layout (DESIGN §9): <root>/<job id>/chk-<n>/ holds the files of
 * checkpoint n: one state file per stateful subtask (written by the task
 * managers, e.g. with rv_state_snapshot) and `_metadata` (written last by
 * the coordinator). A file is written to a hidden temporary name, fsynced
 * and renamed, so a crash never leaves a half-written file under its real
 * name; `_metadata` carries the size and XXH3 checksum of every state
 * file and a checksum of its own, so a damaged checkpoint is detected on
 * restore and the previous one is used (rv_chk_latest).
 *
 * Incremental keyed state: SST files of RocksDB checkpoints go once into
 * <root>/<job id>/shared/ and are referred to by every later checkpoint
 * that still has them (StateHandle.db_files); rv_chk_retain deletes the
 * shared files no remaining checkpoint refers to.
 *
 * `_metadata` format: "RVCHK001", u32 little-endian length, a protobuf
 * CheckpointMetadata (proto/rivulet.proto) of that length, then u64 XXH3
 * of every preceding byte.
 *
 * Threads: functions are independent; different checkpoints may be
 * written from different threads and processes (files have distinct
 * names). */
#ifndef RV_CHECKPOINT_H
#define RV_CHECKPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "rivulet.pb-c.h"
#include "rv_err.h"

typedef Rivulet__CheckpointMetadata rv_chk_meta;

#define RV_CHK_SHARED "shared" /* <root>/<job>/shared/ */
typedef Rivulet__StateHandle rv_chk_state;

/* "<root>/<job>/chk-<id>" (rv_xasprintf'd). */
char *rv_chk_dir(const char *root, const char *job, uint64_t id);

/* A file being written into a checkpoint directory: write to f, then
 * rv_chk_file_commit (fsync + rename) or rv_chk_file_abort. */
typedef struct rv_chk_file rv_chk_file;
rv_err *rv_chk_file_open(const char *dir, const char *name, rv_chk_file **out);
FILE *rv_chk_file_stream(rv_chk_file *cf);
/* Publishes the file; *size and *checksum describe it (for _metadata). */
rv_err *rv_chk_file_commit(rv_chk_file *cf, uint64_t *size, uint64_t *checksum);
void rv_chk_file_abort(rv_chk_file *cf); /* removes the temporary; accepts NULL */

/* A small sealed file: 8 magic bytes, u32 little-endian length, the data,
 * u64 XXH3 of every preceding byte. Written atomically as dir/name
 * (temporary, fsync, rename); read back with every part checked (a
 * damaged file is RV_ERR_CORRUPT naming the path). *out (malloc'd) holds
 * the data. */
rv_err *rv_chk_write_sealed(const char *dir, const char *name, const char *magic, const void *data, size_t len);
rv_err *rv_chk_read_sealed(const char *path, const char *magic, size_t max, void **out, size_t *len);

/* Writes dir/_metadata atomically (temporary, fsync, rename, fsync of the
 * directory): the checkpoint is complete once this returns. */
rv_err *rv_chk_write_metadata(const char *dir, const rv_chk_meta *meta);
/* Reads and checks dir/_metadata; *out is freed with rv_chk_meta_free. */
rv_err *rv_chk_read_metadata(const char *dir, rv_chk_meta **out);
void rv_chk_meta_free(rv_chk_meta *meta); /* accepts NULL */
/* Bytes of keyed state a handle refers to (its stream and database files). */
uint64_t rv_chk_state_bytes(const rv_chk_state *h);
/* Checks that every state file of meta exists in dir with its size and
 * checksum. */
rv_err *rv_chk_verify(const char *dir, const rv_chk_meta *meta);

/* The newest complete and intact checkpoint of a job: *id, its directory
 * and metadata. Damaged ones are skipped with a warning naming them.
 * RV_ERR_NOT_FOUND when there is none. */
rv_err *rv_chk_latest(const char *root, const char *job, uint64_t *id, char **dir, rv_chk_meta **meta);

/* Deletes the job's checkpoints older than the newest `retained` complete
 * ones, and incomplete ones older than the newest complete one. */
rv_err *rv_chk_retain(const char *root, const char *job, int retained);

#endif
