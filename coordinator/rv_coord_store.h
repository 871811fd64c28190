/* rv_coord_store: the coordinator's durable directory (`state_dir`) —
 * one sealed record per job (jobs/<job id>.job, a protobuf JobRecord
 * written atomically), rewritten when the job changes state or completes a
 * checkpoint. A coordinator started on the same directory loads them and
 * resumes every job that had not ended from its latest checkpoint. */
#ifndef RV_COORD_STORE_H
#define RV_COORD_STORE_H

#include <stddef.h>

#include "rivulet.pb-c.h"
#include "rv_err.h"

typedef Rivulet__JobRecord rv_job_record;

/* Writes (replaces) the record of r->job_id under dir. */
rv_err *rv_coord_store_put(const char *dir, const rv_job_record *r);
/* Loads every record under dir (none when dir has no jobs yet). A damaged
 * record is skipped with a warning naming it. Free with
 * rv_coord_store_free. */
rv_err *rv_coord_store_load(const char *dir, rv_job_record ***out, size_t *n);
void rv_coord_store_free(rv_job_record **records, size_t n);

#endif
