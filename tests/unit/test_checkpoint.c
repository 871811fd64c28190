/* Unit tests of checkpoint storage (rv_checkpoint): files published only
 * on commit with the size and checksum of what was written, _metadata
 * round trip, damaged checkpoints (a flipped byte in a state file, a
 * truncated _metadata, a missing file) skipped in favour of the previous
 * one, incomplete checkpoints ignored, and retention. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "rv_checkpoint.h"
#include "rv_file.h"
#include "rv_mem.h"

static char root_tmpl[64];
static char *root;

static void setup(void)
{
    strcpy(root_tmpl, "/tmp/rv_chk_test_XXXXXX");
    root = mkdtemp(root_tmpl);
    cr_assert_not_null(root);
}

static void teardown(void)
{
    rv_err_free(rv_file_remove_tree(root));
}

TestSuite(checkpoint, .init = setup, .fini = teardown);

static bool exists(const char *dir, const char *name)
{
    char *p = rv_xasprintf("%s/%s", dir, name);
    bool ok = access(p, F_OK) == 0;
    free(p);
    return ok;
}

static size_t count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

/* Writes checkpoint `id` of job "j" with two state files whose bytes
 * depend on id; returns its directory. */
static char *write_checkpoint(uint64_t id)
{
    char *dir = rv_chk_dir(root, "j", id);
    rv_chk_state st[2];
    rv_chk_state *sts[2] = {&st[0], &st[1]};
    char names[2][32];
    for (int i = 0; i < 2; i++) {
        rivulet__state_handle__init(&st[i]);
        snprintf(names[i], sizeof(names[i]), "w-%d.state", i);
        rv_chk_file *cf = NULL;
        rv_err *err = rv_chk_file_open(dir, names[i], &cf);
        cr_assert_null(err, "%s", err ? rv_err_msg(err) : "");
        char buf[1000];
        for (size_t k = 0; k < sizeof(buf); k++)
            buf[k] = (char)(k * 31 + id * 7 + (uint64_t)i);
        for (int rep = 0; rep < 100; rep++)
            fwrite(buf, 1, sizeof(buf), rv_chk_file_stream(cf));
        cr_assert_not(exists(dir, names[i]), "a file is not visible before commit");
        uint64_t size = 0, sum = 0;
        err = rv_chk_file_commit(cf, &size, &sum);
        cr_assert_null(err, "%s", err ? rv_err_msg(err) : "");
        cr_assert_eq(size, 100 * sizeof(buf));
        /* The checksum is of the bytes written, computed independently here. */
        char *all = rv_xmalloc(100 * sizeof(buf));
        for (int rep = 0; rep < 100; rep++)
            memcpy(all + rep * sizeof(buf), buf, sizeof(buf));
        cr_assert_eq(sum, XXH3_64bits(all, 100 * sizeof(buf)));
        free(all);
        st[i].node = "w";
        st[i].subtask = (uint32_t)i;
        st[i].kg_first = (uint32_t)i * 64;
        st[i].kg_end = (uint32_t)i * 64 + 64;
        st[i].file = names[i];
        st[i].size = size;
        st[i].checksum = sum;
    }
    rv_chk_meta m;
    rivulet__checkpoint_metadata__init(&m);
    m.id = id;
    m.job_id = "j";
    m.job_name = "test job";
    m.time_ms = 1700000000000 + (int64_t)id;
    m.max_parallelism = 128;
    m.n_states = 2;
    m.states = sts;
    m.job_yaml = "name: test job\n";
    rv_err *err = rv_chk_write_metadata(dir, &m);
    cr_assert_null(err, "%s", err ? rv_err_msg(err) : "");
    return dir;
}

Test(checkpoint, metadata_round_trip_and_verify)
{
    char *dir = write_checkpoint(3);
    rv_chk_meta *m = NULL;
    rv_err *err = rv_chk_read_metadata(dir, &m);
    cr_assert_null(err, "%s", err ? rv_err_msg(err) : "");
    cr_assert_eq(m->id, 3);
    cr_assert_str_eq(m->job_name, "test job");
    cr_assert_eq(m->n_states, 2);
    cr_assert_str_eq(m->states[1]->file, "w-1.state");
    cr_assert_eq(m->states[1]->kg_first, 64);
    err = rv_chk_verify(dir, m);
    cr_assert_null(err, "%s", err ? rv_err_msg(err) : "");
    cr_assert_eq(count_entries(dir), 3, "two state files and _metadata, no temporaries");
    rv_chk_meta_free(m);
    free(dir);
}

Test(checkpoint, abort_leaves_nothing)
{
    char *dir = rv_chk_dir(root, "j", 1);
    rv_chk_file *cf = NULL;
    rv_err *err = rv_chk_file_open(dir, "x", &cf);
    cr_assert_null(err);
    fputs("partial", rv_chk_file_stream(cf));
    rv_chk_file_abort(cf);
    cr_assert_eq(count_entries(dir), 0);
    free(dir);
}

static void flip_byte(const char *dir, const char *name, long at)
{
    char *p = rv_xasprintf("%s/%s", dir, name);
    FILE *f = fopen(p, "r+b");
    cr_assert_not_null(f);
    fseek(f, at, SEEK_SET);
    int c = fgetc(f);
    fseek(f, at, SEEK_SET);
    fputc(c ^ 0x10, f);
    fclose(f);
    free(p);
}

static uint64_t latest_id(void)
{
    uint64_t id = 0;
    char *dir = NULL;
    rv_chk_meta *m = NULL;
    rv_err *err = rv_chk_latest(root, "j", &id, &dir, &m);
    if (err) {
        rv_err_free(err);
        return 0;
    }
    cr_assert_eq(m->id, id);
    rv_chk_meta_free(m);
    free(dir);
    return id;
}

Test(checkpoint, damaged_and_incomplete_checkpoints_are_skipped)
{
    cr_assert_eq(latest_id(), 0, "no checkpoint yet");
    for (uint64_t id = 1; id <= 4; id++)
        free(write_checkpoint(id));
    cr_assert_eq(latest_id(), 4);
    /* 5 is incomplete: files but no _metadata */
    char *d5 = rv_chk_dir(root, "j", 5);
    rv_chk_file *cf = NULL;
    cr_assert_null(rv_chk_file_open(d5, "w-0.state", &cf));
    uint64_t size, sum;
    cr_assert_null(rv_chk_file_commit(cf, &size, &sum));
    cr_assert_eq(latest_id(), 4, "an incomplete checkpoint is not used");
    /* a flipped byte in a state file of 4 */
    char *d4 = rv_chk_dir(root, "j", 4);
    flip_byte(d4, "w-1.state", 5000);
    cr_assert_eq(latest_id(), 3, "a corrupted state file: the previous checkpoint is used");
    /* a truncated _metadata in 3 */
    char *d3 = rv_chk_dir(root, "j", 3);
    char *mp = rv_xasprintf("%s/_metadata", d3);
    cr_assert_eq(truncate(mp, 10), 0);
    cr_assert_eq(latest_id(), 2, "truncated metadata: the previous checkpoint is used");
    /* a missing state file in 2 */
    char *d2 = rv_chk_dir(root, "j", 2);
    char *sp = rv_xasprintf("%s/w-0.state", d2);
    cr_assert_eq(unlink(sp), 0);
    cr_assert_eq(latest_id(), 1);
    /* a flipped byte inside _metadata of 1 */
    char *d1 = rv_chk_dir(root, "j", 1);
    flip_byte(d1, "_metadata", 20);
    cr_assert_eq(latest_id(), 0, "nothing intact is left");
    free(mp);
    free(sp);
    free(d1);
    free(d2);
    free(d3);
    free(d4);
    free(d5);
}

Test(checkpoint, retention_keeps_the_newest_complete_ones)
{
    for (uint64_t id = 1; id <= 5; id++)
        free(write_checkpoint(id));
    /* 6 incomplete (in progress), and 0 an old incomplete one */
    for (uint64_t id = 0; id <= 6; id += 6) {
        char *d = rv_chk_dir(root, "j", id);
        cr_assert_null(rv_file_mkdirs(d));
        free(d);
    }
    rv_err *err = rv_chk_retain(root, "j", 2);
    cr_assert_null(err, "%s", err ? rv_err_msg(err) : "");
    char *jobdir = rv_xasprintf("%s/j", root);
    cr_assert_eq(count_entries(jobdir), 3, "chk-6 (in progress), chk-5 and chk-4");
    for (uint64_t id = 0; id <= 6; id++) {
        char name[16];
        snprintf(name, sizeof(name), "chk-%d", (int)id);
        cr_assert_eq(exists(jobdir, name), id >= 4, "chk-%d", (int)id);
    }
    cr_assert_eq(latest_id(), 5);
    free(jobdir);
}

/* ---- incremental (shared) files ---- */

/* Writes shared/<name> with bytes derived from the name; *size, *sum describe it. */
static void write_shared(const char *name, uint64_t *size, uint64_t *sum)
{
    char *dir = rv_xasprintf("%s/j/%s", root, RV_CHK_SHARED);
    cr_assert_null(rv_file_mkdirs(dir));
    char *path = rv_xasprintf("%s/%s", dir, name);
    char buf[3000];
    for (size_t k = 0; k < sizeof(buf); k++)
        buf[k] = (char)(k + (size_t)name[0] * 13);
    FILE *f = fopen(path, "wb");
    fwrite(buf, 1, sizeof(buf), f);
    fclose(f);
    *size = sizeof(buf);
    *sum = XXH3_64bits(buf, sizeof(buf));
    free(path);
    free(dir);
}

/* A complete checkpoint whose one handle refers to the shared files names. */
static void write_incremental(uint64_t id, const char *const *names, size_t n)
{
    char *dir = rv_chk_dir(root, "j", id);
    cr_assert_null(rv_file_mkdirs(dir));
    rv_chk_state st;
    rivulet__state_handle__init(&st);
    st.node = "w";
    Rivulet__DbFile files[8], *ptrs[8];
    for (size_t i = 0; i < n; i++) {
        rivulet__db_file__init(&files[i]);
        files[i].name = (char *)names[i];
        files[i].stored = (char *)names[i];
        files[i].shared = true;
        write_shared(names[i], &files[i].size, &files[i].checksum);
        ptrs[i] = &files[i];
    }
    st.n_db_files = n;
    st.db_files = ptrs;
    rv_chk_state *sts[1] = {&st};
    rv_chk_meta m;
    rivulet__checkpoint_metadata__init(&m);
    m.id = id;
    m.job_id = "j";
    m.n_states = 1;
    m.states = sts;
    rv_err *err = rv_chk_write_metadata(dir, &m);
    cr_assert_null(err, "%s", err ? rv_err_msg(err) : "");
    free(dir);
}

Test(checkpoint, shared_files_that_no_retained_checkpoint_needs_are_deleted)
{
    const char *c1[] = {"a.sst"}, *c2[] = {"a.sst", "b.sst"}, *c3[] = {"b.sst", "c.sst"};
    write_incremental(1, c1, 1);
    write_incremental(2, c2, 2);
    write_incremental(3, c3, 2);
    uint64_t size, sum;
    write_shared("orphan.sst", &size, &sum);
    rv_err *err = rv_chk_retain(root, "j", 2);
    cr_assert_null(err, "%s", err ? rv_err_msg(err) : "");
    char *shared = rv_xasprintf("%s/j/%s", root, RV_CHK_SHARED);
    /* chk-2 and chk-3 stay: a, b, c are referred to; the orphan is not. */
    cr_assert(exists(shared, "a.sst") && exists(shared, "b.sst") && exists(shared, "c.sst"));
    cr_assert_not(exists(shared, "orphan.sst"));
    err = rv_chk_retain(root, "j", 1);
    cr_assert_null(err, "%s", err ? rv_err_msg(err) : "");
    cr_assert_not(exists(shared, "a.sst"), "only chk-2 needed a.sst");
    cr_assert(exists(shared, "b.sst") && exists(shared, "c.sst"));
    /* Verification reads shared files too: a damaged one is found. */
    char *d3 = rv_chk_dir(root, "j", 3);
    rv_chk_meta *m = NULL;
    cr_assert_null(rv_chk_read_metadata(d3, &m));
    cr_assert_null(rv_chk_verify(d3, m));
    flip_byte(shared, "c.sst", 100);
    err = rv_chk_verify(d3, m);
    cr_assert_not_null(err);
    cr_assert(strstr(rv_err_msg(err), "c.sst") && strstr(rv_err_msg(err), "checksum"), "%s", rv_err_msg(err));
    rv_err_free(err);
    rv_chk_meta_free(m);
    free(d3);
    free(shared);
}

Test(checkpoint, sealed_files_round_trip_and_refuse_damage)
{
    char *dir = rv_xasprintf("%s/sealed", root);
    const char data[] = "some bytes worth keeping";
    cr_assert_null(rv_chk_write_sealed(dir, "x", "TESTMAG1", data, sizeof(data)));
    char *path = rv_xasprintf("%s/x", dir);
    void *out = NULL;
    size_t len = 0;
    cr_assert_null(rv_chk_read_sealed(path, "TESTMAG1", 1024, &out, &len));
    cr_assert_eq(len, sizeof(data));
    cr_assert(memcmp(out, data, len) == 0);
    free(out);
    rv_err *err = rv_chk_read_sealed(path, "OTHERMAG", 1024, &out, &len);
    cr_assert(err && strstr(rv_err_msg(err), "is not a OTHERMAG file"), "%s", err ? rv_err_msg(err) : "");
    rv_err_free(err);
    flip_byte(dir, "x", 14);
    err = rv_chk_read_sealed(path, "TESTMAG1", 1024, &out, &len);
    cr_assert(err && strstr(rv_err_msg(err), "checksum"), "%s", err ? rv_err_msg(err) : "");
    rv_err_free(err);
    cr_assert_eq(truncate(path, 20), 0);
    err = rv_chk_read_sealed(path, "TESTMAG1", 1024, &out, &len);
    cr_assert(err && strstr(rv_err_msg(err), "truncated"), "%s", err ? rv_err_msg(err) : "");
    rv_err_free(err);
    free(path);
    free(dir);
}

/* ---- the coordinator's job records (same sealed format) ---- */

#include "rv_coord_store.h"

Test(checkpoint, job_records_round_trip_and_a_damaged_one_is_skipped)
{
    char *dir = rv_xasprintf("%s/coord", root);
    const char *ids[] = {"job-a", "job-b"};
    for (int i = 0; i < 2; i++) {
        rv_job_record r = RIVULET__JOB_RECORD__INIT;
        r.job_id = (char *)ids[i];
        r.name = "n";
        r.yaml = "name: n\n";
        r.state = "RUNNING";
        r.attempt = (uint32_t)i + 3;
        r.next_checkpoint = 10 + (uint64_t)i;
        cr_assert_null(rv_coord_store_put(dir, &r));
    }
    rv_job_record **recs = NULL;
    size_t n = 0;
    cr_assert_null(rv_coord_store_load(dir, &recs, &n));
    cr_assert_eq(n, 2);
    for (size_t i = 0; i < n; i++) {
        int k = strcmp(recs[i]->job_id, "job-a") == 0 ? 0 : 1;
        cr_assert_str_eq(recs[i]->job_id, ids[k]);
        cr_assert_eq(recs[i]->attempt, (uint32_t)k + 3);
        cr_assert_eq(recs[i]->next_checkpoint, 10 + (uint64_t)k);
    }
    rv_coord_store_free(recs, n);
    char *jobs = rv_xasprintf("%s/jobs", dir);
    flip_byte(jobs, "job-b.job", 16);
    cr_assert_null(rv_coord_store_load(dir, &recs, &n));
    cr_assert_eq(n, 1, "the damaged record is skipped");
    cr_assert_str_eq(recs[0]->job_id, "job-a");
    rv_coord_store_free(recs, n);
    free(jobs);
    free(dir);
}
