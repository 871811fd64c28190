/* rv_coord_store: job records in the coordinator's state directory. */
#include "rv_coord_store.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "rv_checkpoint.h"
#include "rv_file.h"
#include "rv_log.h"
#include "rv_mem.h"

#define RECORD_MAGIC "RVJOB001"
#define RECORD_MAX (16u << 20)
#define SUFFIX ".job"

rv_err *rv_coord_store_put(const char *dir, const rv_job_record *r)
{
    size_t len = rivulet__job_record__get_packed_size(r);
    uint8_t *buf = rv_xmalloc(len ? len : 1);
    rivulet__job_record__pack(r, buf);
    char *jobs = rv_xasprintf("%s/jobs", dir);
    char *name = rv_xasprintf("%s%s", r->job_id, SUFFIX);
    rv_err *err = rv_chk_write_sealed(jobs, name, RECORD_MAGIC, buf, len);
    free(name);
    free(jobs);
    free(buf);
    return err;
}

rv_err *rv_coord_store_load(const char *dir, rv_job_record ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    char *jobs = rv_xasprintf("%s/jobs", dir);
    rv_err *err = rv_file_mkdirs(jobs);
    DIR *d = err ? NULL : opendir(jobs);
    if (!err && !d)
        err = rv_err_new(RV_ERR_IO, "cannot read %s: %s", jobs, strerror(errno));
    size_t cap = 0;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (e->d_name[0] == '.' || l <= strlen(SUFFIX) || strcmp(e->d_name + l - strlen(SUFFIX), SUFFIX) != 0)
            continue;
        char *path = rv_xasprintf("%s/%s", jobs, e->d_name);
        void *data = NULL;
        size_t len = 0;
        rv_err *rerr = rv_chk_read_sealed(path, RECORD_MAGIC, RECORD_MAX, &data, &len);
        rv_job_record *r = rerr ? NULL : rivulet__job_record__unpack(NULL, len, data);
        if (!rerr && !r)
            rerr = rv_err_new(RV_ERR_CORRUPT, "%s does not decode", path);
        if (rerr) {
            RV_LOG_WARN("coordinator", "skipping a damaged job record: %s", rv_err_msg(rerr));
            rv_err_free(rerr);
        } else {
            rv_xgrow((void **)out, &cap, *n + 1, sizeof(**out));
            (*out)[(*n)++] = r;
        }
        free(data);
        free(path);
    }
    if (d)
        closedir(d);
    free(jobs);
    return err;
}

void rv_coord_store_free(rv_job_record **records, size_t n)
{
    for (size_t i = 0; i < n; i++)
        rivulet__job_record__free_unpacked(records[i], NULL);
    free(records);
}
