/* Unit tests of the checkpoint positions of the generator and file sources
 * (their snapshot/restore hooks), driven through their plugin callbacks
 * with the fake runtime context of op_harness.h.
 *
 * The pattern: run a source uninterrupted and compare its output with a
 * reference model written here (generator: the gen_fields.h formulas; file:
 * the lines the test wrote); then run it again, snapshot after k polls,
 * close, open a fresh instance, restore the blob and run to the end: the
 * rows before the snapshot followed by the rows after the restore must be
 * exactly the uninterrupted output, for several k. Rows are compared as
 * exact text (floats with 17 significant digits). Further tests: rescaling
 * (file source over a directory, parallelism 2 -> 1 and 3; the generator
 * refuses), follow mode with data appended after the snapshot, finished,
 * gone and replaced files, and corrupt or truncated blobs. */
/* The harness's operator helpers (op_plan, add_row, dump, describe) are not
 * used by source tests. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "op_harness.h"
#pragma GCC diagnostic pop

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "rv_record.h"
#include "rv_time.h"
#include "sources/gen_fields.h"

extern const rv_plugin rv_source_generator, rv_source_file;

#define EXPECT_ERR(expr, substr) do { rv_err *err_ = (expr); cr_assert_not_null(err_); \
    cr_expect(strstr(rv_err_msg(err_), substr) != NULL, "got: %s", rv_err_msg(err_)); \
    rv_err_free(err_); } while (0)

/* ---------------- helpers ---------------- */

/* Parses the source node's YAML, applies its config and plans it with the
 * declared schema, as instance `subtask` of `par`. */
static void src_plan(op_run *r, const rv_plugin *pl, const char *id, const char *yaml,
                     const char *schema, int subtask, int par)
{
    memset(r, 0, sizeof(*r));
    r->pl = pl;
    rv_err *err = rv_yaml_parse(yaml, strlen(yaml), "job.yaml", &r->doc);
    cr_assert_null(err, "%s", err ? rv_err_msg(err) : "");
    const rv_ynode *root = rv_ydoc_root(r->doc);
    r->cfg = rv_xcalloc(1, pl->config_size ? pl->config_size : 1);
    char what[128];
    snprintf(what, sizeof(what), "source '%s'", id);
    err = rv_config_apply(pl->config, pl->nconfig, root, common_keys, what, r->cfg);
    cr_assert_null(err, "%s", err ? rv_err_msg(err) : "");
    r->ctx.cfg = r->cfg;
    r->ctx.id = id;
    r->ctx.subtask = subtask;
    r->ctx.parallelism = par;
    r->ctx.checkpointing = true;
    r->ctx.wm = RV_WATERMARK_MIN;
    rv_schema *declared = mk_schema(schema);
    rv_plan p;
    memset(&p, 0, sizeof(p));
    p.id = id;
    p.config = r->cfg;
    p.node = root;
    p.declared = declared;
    err = pl->plan(&p);
    cr_assert_null(err, "%s", err ? rv_err_msg(err) : "");
    r->ctx.out = p.output;
    rv_schema_unref(declared);
}

static void src_start(op_run *r, const rv_plugin *pl, const char *id, const char *yaml,
                      const char *schema, int subtask, int par)
{
    src_plan(r, pl, id, yaml, schema, subtask, par);
    op_open(r);
}

/* Rows emitted from batch `from` on, one line each, fields separated by
 * '|', null as '~', floats with 17 significant digits. */
static char *rows_from(const op_run *r, int from)
{
    rv_buf out = {0};
    rv_buf_append(&out, "", 1);
    out.len = 0;
    for (int k = from; k < r->ctx.nemitted; k++) {
        const rv_batch *b = r->ctx.emitted[k];
        for (uint32_t row = 0; row < b->nrows; row++) {
            for (int i = 0; i < b->schema->nfields; i++) {
                rv_value v = rv_col_get_value(&b->cols[i], row);
                if (i)
                    rv_buf_append(&out, "|", 1);
                if (v.is_null) {
                    rv_buf_append(&out, "~", 1);
                    continue;
                }
                switch (v.type) {
                case RV_T_BOOL: rv_buf_printf(&out, "%s", v.v.b ? "true" : "false"); break;
                case RV_T_INT64:
                case RV_T_TIMESTAMP: rv_buf_printf(&out, "%" PRId64, v.v.i); break;
                case RV_T_FLOAT64: rv_buf_printf(&out, "%.17g", v.v.f); break;
                case RV_T_STRING: rv_buf_append(&out, v.v.s.ptr, v.v.s.len); break;
                default: break;
                }
            }
            rv_buf_append(&out, "\n", 1);
        }
    }
    rv_buf_append(&out, "", 1); /* NUL */
    return out.data;
}

static char *rows(const op_run *r) { return rows_from(r, 0); }

static size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* Whether text has a row whose first field is `name`. */
static bool has_rows_of(const char *text, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = text; *p; p = strchr(p, '\n') + 1)
        if (strncmp(p, name, n) == 0 && p[n] == '|')
            return true;
    return false;
}

static char *concat(const char *a, const char *b)
{
    return rv_xasprintf("%s%s", a, b);
}

/* Polls k times (fewer if it ends). Returns the last status. */
static rv_src_status poll_times(op_run *r, int k)
{
    rv_src_status s = RV_SRC_MORE;
    for (int i = 0; i < k; i++) {
        s = r->pl->poll(r->state, &r->ctx);
        cr_assert_neq(s, RV_SRC_FAILED, "%s", r->ctx.failed ? rv_err_msg(r->ctx.failed) : "");
        if (s == RV_SRC_END)
            break;
    }
    return s;
}

static void run_to_end(op_run *r)
{
    int64_t deadline = rv_now_ms() + 20000;
    while (poll_times(r, 1) != RV_SRC_END)
        cr_assert_lt(rv_now_ms(), deadline, "bounded source did not end");
}

static size_t nrows(const op_run *r)
{
    size_t n = 0;
    for (int k = 0; k < r->ctx.nemitted; k++)
        n += r->ctx.emitted[k]->nrows;
    return n;
}

static size_t total_rows(op_run *const *rs, int n)
{
    size_t t = 0;
    for (int k = 0; k < n; k++)
        t += nrows(rs[k]);
    return t;
}

/* Follow mode: polls the instances round-robin until they emitted `want`
 * rows in all (or 10 s passed), then some more so that extra rows show. */
static void poll_until_rows(op_run *const *rs, int n, size_t want)
{
    int64_t deadline = rv_now_ms() + 10000;
    while (total_rows(rs, n) < want && rv_now_ms() < deadline)
        for (int k = 0; k < n; k++)
            poll_times(rs[k], 1);
    for (int round = 0; round < 5; round++)
        for (int k = 0; k < n; k++)
            poll_times(rs[k], 1);
}

static rv_buf snapshot(op_run *r)
{
    rv_buf b = {0};
    rv_err *err = r->pl->snapshot(r->state, &r->ctx, 7, &b);
    cr_assert_null(err, "%s", err ? rv_err_msg(err) : "");
    return b;
}

static void restore_ok(op_run *r, const rv_op_state *states, int n)
{
    rv_err *err = r->pl->restore(r->state, &r->ctx, states, n);
    cr_assert_null(err, "%s", err ? rv_err_msg(err) : "");
}

static rv_err *restore_blob(op_run *r, const void *data, size_t len, int subtask, int par)
{
    rv_op_state s = {.subtask = subtask, .parallelism = par, .data = data, .len = len};
    return r->pl->restore(r->state, &r->ctx, &s, 1);
}

/* ---------------- generator ---------------- */

#define GEN_SCHEMA "seq:int64,u:int64,ts:timestamp,s:string,x:float64"
#define GEN_YAML(count, batch, extra)                                              \
    "seed: 42\ncount: " #count "\nbatch_size: " #batch "\n" extra "fields:\n"      \
    "  seq: {kind: sequence}\n"                                                    \
    "  u: {kind: uniform_int, min: 0, max: 999}\n"                                 \
    "  ts: {kind: event_time, start: \"2024-01-01T00:00:00Z\", rate: 1000}\n"      \
    "  s: {kind: string, min_len: 0, max_len: 12}\n"                               \
    "  x: {kind: uniform_float, min: 0, max: 1, null_probability: 0.25}\n"

/* Checks the first three fields of every row against the gen_fields.h
 * formulas (seq = i, u = u(i, 1) % 1000, ts = 2024-01-01 + i ms), with
 * i = first, first + stride, ... */
static void check_gen_model(const char *text, uint64_t first, uint64_t stride, size_t n)
{
    const char *p = text;
    for (size_t k = 0; k < n; k++) {
        uint64_t i = first + k * stride;
        char want[128];
        snprintf(want, sizeof(want), "%" PRIu64 "|%" PRIu64 "|%" PRId64 "|", i,
                 rv_gen_u64(42, i, 1, 0) % 1000, INT64_C(1704067200000) + (int64_t)i);
        cr_assert(strncmp(p, want, strlen(want)) == 0, "row %zu: want %s..., got %.60s", k, want, p);
        p = strchr(p, '\n');
        cr_assert_not_null(p);
        p++;
    }
    cr_assert_eq(*p, '\0', "more rows than %zu", n);
}

Test(generator, resume_continues_exactly)
{
    const char *yaml = GEN_YAML(1000, 37, "");
    op_run full;
    src_start(&full, &rv_source_generator, "gen", yaml, GEN_SCHEMA, 0, 1);
    run_to_end(&full);
    char *want = rows(&full);
    check_gen_model(want, 0, 1, 1000);
    op_free(&full);

    const int ks[] = {0, 1, 2, 13, 27, 28, 40};
    for (size_t t = 0; t < sizeof(ks) / sizeof(ks[0]); t++) {
        op_run b, c;
        src_start(&b, &rv_source_generator, "gen", yaml, GEN_SCHEMA, 0, 1);
        poll_times(&b, ks[t]);
        char *pre = rows(&b);
        rv_buf blob = snapshot(&b);
        op_free(&b);
        src_start(&c, &rv_source_generator, "gen", yaml, GEN_SCHEMA, 0, 1);
        restore_ok(&c, &(rv_op_state){.subtask = 0, .parallelism = 1, .data = blob.data, .len = blob.len}, 1);
        rv_buf again = snapshot(&c);
        cr_expect(again.len == blob.len && memcmp(again.data, blob.data, blob.len) == 0,
                  "k=%d: snapshot after restore differs", ks[t]);
        rv_buf_fini(&again);
        run_to_end(&c);
        char *post = rows(&c);
        char *got = concat(pre, post);
        cr_expect_str_eq(got, want, "k=%d", ks[t]);
        cr_expect_eq(count_lines(pre), ks[t] * 37 < 1000 ? (size_t)ks[t] * 37 : (size_t)1000, "k=%d", ks[t]);
        free(pre);
        free(post);
        free(got);
        rv_buf_fini(&blob);
        op_free(&c);
    }
    free(want);
}

Test(generator, restore_of_nothing_starts_from_the_beginning)
{
    const char *yaml = GEN_YAML(100, 16, "");
    op_run c;
    src_start(&c, &rv_source_generator, "gen", yaml, GEN_SCHEMA, 0, 1);
    restore_ok(&c, NULL, 0);
    run_to_end(&c);
    char *got = rows(&c);
    check_gen_model(got, 0, 1, 100);
    free(got);
    op_free(&c);
}

Test(generator, start_now_keeps_the_original_event_times)
{
    const char *yaml = "count: 100\nbatch_size: 10\nfields:\n"
                       "  seq: {kind: sequence}\n"
                       "  ts: {kind: event_time, start: now, rate: 500}\n";
    op_run b, c, d;
    src_start(&b, &rv_source_generator, "gen", yaml, "seq:int64,ts:timestamp", 0, 1);
    poll_times(&b, 3);
    char *pre = rows(&b);
    rv_buf blob = snapshot(&b);
    cr_assert(b.ctx.nemitted > 0);
    int64_t t0 = rv_col_get_value(&b.ctx.emitted[0]->cols[1], 0).v.i; /* record 0: start */
    op_free(&b);
    nanosleep(&(struct timespec){.tv_nsec = 30 * 1000000}, NULL);

    /* A fresh instance now has another start (so the test can tell). */
    src_start(&d, &rv_source_generator, "gen", yaml, "seq:int64,ts:timestamp", 0, 1);
    poll_times(&d, 1);
    cr_assert_geq(rv_col_get_value(&d.ctx.emitted[0]->cols[1], 0).v.i, t0 + 30);
    op_free(&d);

    src_start(&c, &rv_source_generator, "gen", yaml, "seq:int64,ts:timestamp", 0, 1);
    restore_ok(&c, &(rv_op_state){.subtask = 0, .parallelism = 1, .data = blob.data, .len = blob.len}, 1);
    run_to_end(&c);
    char *post = rows(&c);
    char *got = concat(pre, post);
    /* Model: record i has ts = start + floor(i * 1000 / 500). */
    rv_buf want = {0};
    for (int64_t i = 0; i < 100; i++)
        rv_buf_printf(&want, "%" PRId64 "|%" PRId64 "\n", i, t0 + 2 * i);
    rv_buf_append(&want, "", 1);
    cr_expect_str_eq(got, want.data);
    cr_expect_eq(count_lines(pre), 30);
    free(pre);
    free(post);
    free(got);
    rv_buf_fini(&want);
    rv_buf_fini(&blob);
    op_free(&c);
}

Test(generator, parallel_instances_resume_their_own_records)
{
    const char *yaml = GEN_YAML(500, 16, "");
    const int ks[2] = {3, 7};
    rv_buf blobs[2];
    char *pre[2], *want[2];
    for (int s = 0; s < 2; s++) {
        op_run full, b;
        src_start(&full, &rv_source_generator, "gen", yaml, GEN_SCHEMA, s, 2);
        run_to_end(&full);
        want[s] = rows(&full);
        check_gen_model(want[s], (uint64_t)s, 2, 250);
        op_free(&full);
        src_start(&b, &rv_source_generator, "gen", yaml, GEN_SCHEMA, s, 2);
        poll_times(&b, ks[s]);
        pre[s] = rows(&b);
        blobs[s] = snapshot(&b);
        op_free(&b);
    }
    rv_op_state states[2] = {
        {.subtask = 1, .parallelism = 2, .data = blobs[1].data, .len = blobs[1].len},
        {.subtask = 0, .parallelism = 2, .data = blobs[0].data, .len = blobs[0].len},
    };
    for (int s = 0; s < 2; s++) {
        op_run c;
        src_start(&c, &rv_source_generator, "gen", yaml, GEN_SCHEMA, s, 2);
        restore_ok(&c, states, 2); /* every old state: it picks its own */
        run_to_end(&c);
        char *post = rows(&c);
        char *got = concat(pre[s], post);
        cr_expect_str_eq(got, want[s], "instance %d", s);
        free(post);
        free(got);
        op_free(&c);
    }
    /* Changing the parallelism is refused with a clear error. */
    for (int par = 1; par <= 3; par += 2) {
        op_run c;
        src_start(&c, &rv_source_generator, "gen", yaml, GEN_SCHEMA, 0, par);
        rv_err *err = c.pl->restore(c.state, &c.ctx, states, 2);
        cr_assert_not_null(err);
        cr_expect(strstr(rv_err_msg(err), "source 'gen'") != NULL, "got: %s", rv_err_msg(err));
        EXPECT_ERR(err, "cannot change parallelism");
        op_free(&c);
    }
    for (int s = 0; s < 2; s++) {
        free(pre[s]);
        free(want[s]);
        rv_buf_fini(&blobs[s]);
    }
}

Test(generator, paced_source_resumes_exactly)
{
    const char *yaml = GEN_YAML(400, 50, "rate: 20000\n");
    op_run full, b, c;
    src_start(&full, &rv_source_generator, "gen", yaml, GEN_SCHEMA, 0, 1);
    run_to_end(&full);
    char *want = rows(&full);
    check_gen_model(want, 0, 1, 400);
    op_free(&full);

    src_start(&b, &rv_source_generator, "gen", yaml, GEN_SCHEMA, 0, 1);
    int64_t deadline = rv_now_ms() + 10000;
    while (nrows(&b) < 150 && rv_now_ms() < deadline)
        poll_times(&b, 1);
    cr_assert_geq(nrows(&b), 150);
    char *pre = rows(&b);
    rv_buf blob = snapshot(&b);
    op_free(&b);
    src_start(&c, &rv_source_generator, "gen", yaml, GEN_SCHEMA, 0, 1);
    restore_ok(&c, &(rv_op_state){.subtask = 0, .parallelism = 1, .data = blob.data, .len = blob.len}, 1);
    run_to_end(&c);
    char *post = rows(&c);
    char *got = concat(pre, post);
    cr_expect_str_eq(got, want);
    free(want);
    free(pre);
    free(post);
    free(got);
    rv_buf_fini(&blob);
    op_free(&c);
}

Test(generator, corrupt_state_is_an_error)
{
    const char *yaml = "count: 100\nbatch_size: 10\nfields:\n"
                       "  seq: {kind: sequence}\n"
                       "  ts: {kind: event_time, start: now, rate: 500}\n";
    const char *schema = "seq:int64,ts:timestamp";
    op_run b;
    src_start(&b, &rv_source_generator, "gen", yaml, schema, 1, 2);
    poll_times(&b, 2);
    rv_buf blob = snapshot(&b);
    op_free(&b);
    /* The full blob restores; every strict prefix of it is an error. */
    for (size_t len = 0; len <= blob.len; len++) {
        op_run c;
        src_start(&c, &rv_source_generator, "gen", yaml, schema, 1, 2);
        rv_err *err = restore_blob(&c, blob.data, len, 1, 2);
        if (len == blob.len) {
            cr_expect_null(err, "%s", err ? rv_err_msg(err) : "");
            rv_err_free(err);
        } else {
            cr_assert_not_null(err, "prefix of %zu bytes accepted", len);
            cr_expect_eq(rv_err_code(err), RV_ERR_CORRUPT);
            EXPECT_ERR(err, "source 'gen'");
        }
        op_free(&c);
    }
    char *copy = rv_xmalloc(blob.len + 1);
    memcpy(copy, blob.data, blob.len);
    copy[blob.len] = 0;
    op_run c;
    src_start(&c, &rv_source_generator, "gen", yaml, schema, 1, 2);
    EXPECT_ERR(restore_blob(&c, copy, blob.len + 1, 1, 2), "trailing"); /* extra byte */
    copy[0] = 'X';
    EXPECT_ERR(restore_blob(&c, copy, blob.len, 1, 2), "not a generator state");
    copy[0] = blob.data[0];
    copy[4] = 9;
    EXPECT_ERR(restore_blob(&c, copy, blob.len, 1, 2), "version 9");
    copy[4] = blob.data[4];
    /* Instance 1's state handed to instance 0: its record numbers are not
     * instance 0's. */
    op_run c0;
    src_start(&c0, &rv_source_generator, "gen", yaml, schema, 0, 2);
    EXPECT_ERR(restore_blob(&c0, copy, blob.len, 0, 2), "not one of that instance's");
    /* No state for this instance among those given. */
    EXPECT_ERR(restore_blob(&c0, copy, blob.len, 1, 2), "no state of instance 0");
    op_free(&c0);
    op_free(&c);
    free(copy);
    rv_buf_fini(&blob);
}

/* ---------------- file ---------------- */

static char *tmp_dir(void)
{
    char tmpl[] = "/tmp/rv-srcpos-XXXXXX";
    cr_assert_not_null(mkdtemp(tmpl));
    return rv_xstrdup(tmpl);
}

static void rm_dir(char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.')
                continue;
            char *p = rv_xasprintf("%s/%s", dir, e->d_name);
            unlink(p);
            free(p);
        }
        closedir(d);
    }
    rmdir(dir);
    free(dir);
}

static void write_file(const char *path, const char *text, const char *mode)
{
    FILE *f = fopen(path, mode);
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    fputs(text, f);
    cr_assert_eq(fclose(f), 0);
}

/* The model of a JSON-lines file: line j of file `name`, counted from 0,
 * is empty when j % 11 == 5, not JSON when j % 13 == 7, otherwise the
 * record {f: name, n: j, v: "val-j..."} (CRLF when j % 17 == 3). Appends
 * lines [from, to) as file text to *text and the rows they give, in the
 * rows() format, to *rowsv; returns the number of bad lines. */
static size_t json_model(const char *name, int from, int to, rv_buf *text, rv_buf *rowsv)
{
    size_t bad = 0;
    for (int j = from; j < to; j++) {
        if (j % 11 == 5) {
            rv_buf_append(text, "\n", 1);
        } else if (j % 13 == 7) {
            rv_buf_printf(text, "{\"f\": \"%s\", \"n\": %d,\n", name, j);
            bad++;
        } else {
            rv_buf_printf(text, "{\"f\": \"%s\", \"n\": %d, \"v\": \"val-%d-%.*s\"}%s\n", name, j,
                          j, j % 23, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", j % 17 == 3 ? "\r" : "");
            rv_buf_printf(rowsv, "%s|%d|val-%d-%.*s\n", name, j, j, j % 23,
                          "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
        }
    }
    return bad;
}

static char *cstr(rv_buf *b)
{
    rv_buf_append(b, "", 1);
    b->len--;
    return b->data;
}

#define JSON_SCHEMA "f:string,n:int64,v:string"

/* One file, bounded: snapshot after k polls, restore, compare. */
static void check_file_resume(const char *yaml, const char *schema, const char *want,
                              size_t want_bad, const int *ks, size_t nks)
{
    op_run full;
    src_start(&full, &rv_source_file, "src", yaml, schema, 0, 1);
    run_to_end(&full);
    char *got = rows(&full);
    cr_assert_str_eq(got, want);
    cr_assert_eq(full.ctx.bad, want_bad);
    free(got);
    op_free(&full);
    for (size_t t = 0; t < nks; t++) {
        op_run b, c;
        src_start(&b, &rv_source_file, "src", yaml, schema, 0, 1);
        poll_times(&b, ks[t]);
        char *pre = rows(&b);
        uint64_t bad_pre = b.ctx.bad;
        rv_buf blob = snapshot(&b);
        op_free(&b);
        src_start(&c, &rv_source_file, "src", yaml, schema, 0, 1);
        restore_ok(&c, &(rv_op_state){.subtask = 0, .parallelism = 1, .data = blob.data, .len = blob.len}, 1);
        /* Restored and not yet polled, it is where the snapshot was. */
        rv_buf again = snapshot(&c);
        cr_expect(again.len == blob.len && memcmp(again.data, blob.data, blob.len) == 0,
                  "k=%d: snapshot after restore differs", ks[t]);
        rv_buf_fini(&again);
        run_to_end(&c);
        char *post = rows(&c);
        got = concat(pre, post);
        cr_expect_str_eq(got, want, "k=%d", ks[t]);
        cr_expect_eq(bad_pre + c.ctx.bad, want_bad, "k=%d: %" PRIu64 " + %" PRIu64 " bad records",
                     ks[t], bad_pre, c.ctx.bad);
        free(pre);
        free(post);
        free(got);
        rv_buf_fini(&blob);
        op_free(&c);
    }
}

Test(file, json_resume_continues_exactly)
{
    char *dir = tmp_dir();
    char *path = rv_xasprintf("%s/in.json", dir);
    rv_buf text = {0}, want = {0};
    size_t bad = json_model("in", 0, 400, &text, &want);
    write_file(path, cstr(&text), "w");
    char *yaml = rv_xasprintf("path: %s\nbatch_size: 7\n", path);
    /* 400 lines fit the reader's buffer at once: most positions are
     * inside buffered, unreturned lines. */
    const int ks[] = {0, 1, 2, 3, 10, 25, 41, 42, 43, 200};
    check_file_resume(yaml, JSON_SCHEMA, cstr(&want), bad, ks, sizeof(ks) / sizeof(ks[0]));
    free(yaml);
    rv_buf_fini(&text);
    rv_buf_fini(&want);
    free(path);
    rm_dir(dir);
}

Test(file, large_json_resume_across_reader_buffers)
{
    char *dir = tmp_dir();
    char *path = rv_xasprintf("%s/big.json", dir);
    rv_buf text = {0}, want = {0};
    size_t bad = json_model("big", 0, 5000, &text, &want);
    cr_assert_gt(text.len, (size_t)200 << 10); /* several 64 KiB reads */
    write_file(path, cstr(&text), "w");
    char *yaml = rv_xasprintf("path: %s\nbatch_size: 101\n", path);
    const int ks[] = {1, 7, 20, 33};
    check_file_resume(yaml, JSON_SCHEMA, cstr(&want), bad, ks, sizeof(ks) / sizeof(ks[0]));
    free(yaml);
    rv_buf_fini(&text);
    rv_buf_fini(&want);
    free(path);
    rm_dir(dir);
}

Test(file, csv_resume_keeps_the_header)
{
    char *dir = tmp_dir();
    char *path = rv_xasprintf("%s/in.csv", dir);
    /* Header in another order than the schema; empty and bad rows. */
    rv_buf text = {0}, want = {0};
    size_t bad = 0;
    rv_buf_printf(&text, "\nv;n;f\n");
    for (int j = 0; j < 120; j++) {
        if (j % 9 == 4) {
            rv_buf_printf(&text, "\n");
        } else if (j % 10 == 6) {
            rv_buf_printf(&text, "v%d;not-a-number;c\n", j);
            bad++;
        } else {
            rv_buf_printf(&text, "\"v;%d\";%d;csv\n", j, j);
            rv_buf_printf(&want, "csv|%d|v;%d\n", j, j);
        }
    }
    write_file(path, cstr(&text), "w");
    char *yaml = rv_xasprintf("path: %s\nformat: csv\ndelimiter: \";\"\nbatch_size: 5\n", path);
    const int ks[] = {0, 1, 2, 9, 17, 21, 22, 30};
    check_file_resume(yaml, JSON_SCHEMA, cstr(&want), bad, ks, sizeof(ks) / sizeof(ks[0]));
    free(yaml);
    rv_buf_fini(&text);
    rv_buf_fini(&want);
    free(path);
    rm_dir(dir);
}

Test(file, csv_rejected_header_stays_rejected)
{
    char *dir = tmp_dir();
    char *path = rv_xasprintf("%s/bad.csv", dir);
    /* The header names no schema field, so every row is rejected; the next
     * line would be a good header if it were taken as one. */
    write_file(path, "x,y\n\n\n\nn,v,f\n5,a,b\n", "w");
    char *yaml = rv_xasprintf("path: %s\nformat: csv\nbatch_size: 1\n", path);
    op_run b, c;
    src_start(&b, &rv_source_file, "src", yaml, JSON_SCHEMA, 0, 1);
    poll_times(&b, 1); /* 4 lines: the header and three empty ones */
    cr_assert_eq(b.ctx.bad, 1);
    cr_assert_eq(nrows(&b), 0);
    rv_buf blob = snapshot(&b);
    op_free(&b);
    src_start(&c, &rv_source_file, "src", yaml, JSON_SCHEMA, 0, 1);
    restore_ok(&c, &(rv_op_state){.subtask = 0, .parallelism = 1, .data = blob.data, .len = blob.len}, 1);
    run_to_end(&c);
    cr_expect_eq(nrows(&c), 0);
    cr_expect_eq(c.ctx.bad, 2);
    rv_buf_fini(&blob);
    op_free(&c);
    free(yaml);
    free(path);
    rm_dir(dir);
}

Test(file, snapshot_inside_a_too_long_line)
{
    char *dir = tmp_dir();
    char *path = rv_xasprintf("%s/long.json", dir);
    /* batch_size 1 allows 4 lines per poll: the first poll ends right
     * after reporting the too-long line, while the reader is still
     * discarding its rest. */
    rv_buf text = {0}, want = {0};
    rv_buf_printf(&text, "\n\n\n");
    for (int k = 0; k < 1000; k++)
        rv_buf_append(&text, "x", 1);
    rv_buf_append(&text, "\n", 1);
    for (int j = 0; j < 5; j++) {
        rv_buf_printf(&text, "{\"f\": \"long\", \"n\": %d, \"v\": \"w\"}\n", j);
        rv_buf_printf(&want, "long|%d|w\n", j);
    }
    write_file(path, cstr(&text), "w");
    char *yaml = rv_xasprintf("path: %s\nbatch_size: 1\nmax_line_bytes: 100\n", path);
    const int ks[] = {1, 2};
    check_file_resume(yaml, JSON_SCHEMA, cstr(&want), 1, ks, 2);
    free(yaml);
    rv_buf_fini(&text);
    rv_buf_fini(&want);
    free(path);
    rm_dir(dir);
}

/* The lines of `all` that start with prefix. */
static char *lines_with_prefix(const char *all, const char *prefix, rv_buf *out)
{
    size_t pl = strlen(prefix);
    for (const char *p = all; *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) + 1 : strlen(p);
        if (strncmp(p, prefix, pl) == 0)
            rv_buf_append(out, p, len);
        p += len;
    }
    return cstr(out);
}

/* A directory of files read at parallelism 2, snapshotted after k0 and k1
 * polls, then restored at parallelism new_par (every new instance gets
 * both states). For each file, its rows before the snapshot (from whichever
 * old instance) followed by its rows after it (from whichever new one) are
 * exactly the file's rows. */
static void check_dir_rescale(bool follow, int k0, int k1, int new_par)
{
    static const char *const names[] = {"a", "b", "c", "d", "e", "f"};
    static const int counts[] = {0, 3, 50, 120, 77, 31};
    const int nfiles = 6;
    char *dir = tmp_dir();
    rv_buf all_want = {0};
    char *want[6];
    size_t bad = 0;
    for (int k = 0; k < nfiles; k++) {
        rv_buf text = {0}, w = {0};
        bad += json_model(names[k], 0, counts[k], &text, &w);
        char *path = rv_xasprintf("%s/%s.json", dir, names[k]);
        write_file(path, text.data ? cstr(&text) : "", "w");
        free(path);
        want[k] = cstr(&w);
        rv_buf_append(&all_want, w.data ? w.data : "", w.len);
        rv_buf_fini(&text);
    }
    char *other = rv_xasprintf("%s/skip.txt", dir);
    write_file(other, "{\"f\": \"skip\", \"n\": 1, \"v\": \"no\"}\n", "w");
    free(other);
    size_t total = count_lines(cstr(&all_want));
    char *yaml = rv_xasprintf("path: %s\npattern: \"*.json\"\nbatch_size: 6\n%s", dir,
                              follow ? "follow: true\npoll_interval: 5ms\n" : "");
    const int ks[2] = {k0, k1};
    rv_buf blobs[2];
    char *pre[2];
    uint64_t bad_total = 0;
    for (int s = 0; s < 2; s++) {
        op_run b;
        src_start(&b, &rv_source_file, "src", yaml, JSON_SCHEMA, s, 2);
        poll_times(&b, ks[s]);
        pre[s] = rows(&b);
        bad_total += b.ctx.bad;
        blobs[s] = snapshot(&b);
        op_free(&b);
    }
    rv_op_state states[2] = {
        {.subtask = 0, .parallelism = 2, .data = blobs[0].data, .len = blobs[0].len},
        {.subtask = 1, .parallelism = 2, .data = blobs[1].data, .len = blobs[1].len},
    };
    op_run *cs[3];
    char *post[3];
    size_t done = count_lines(pre[0]) + count_lines(pre[1]);
    for (int s = 0; s < new_par; s++) {
        cs[s] = rv_xcalloc(1, sizeof(op_run));
        src_start(cs[s], &rv_source_file, "src", yaml, JSON_SCHEMA, s, new_par);
        restore_ok(cs[s], states, 2);
    }
    if (follow) {
        poll_until_rows(cs, new_par, total - done);
    } else {
        for (int s = 0; s < new_par; s++)
            run_to_end(cs[s]);
    }
    for (int s = 0; s < new_par; s++) {
        post[s] = rows(cs[s]);
        bad_total += cs[s]->ctx.bad;
    }
    for (int k = 0; k < nfiles; k++) {
        rv_buf got = {0};
        char *prefix = rv_xasprintf("%s|", names[k]);
        for (int s = 0; s < 2; s++)
            lines_with_prefix(pre[s], prefix, &got);
        for (int s = 0; s < new_par; s++)
            lines_with_prefix(post[s], prefix, &got);
        cr_expect_str_eq(got.data ? cstr(&got) : "", want[k],
                         "file %s, follow %d, k %d/%d, parallelism 2 -> %d", names[k], follow, k0,
                         k1, new_par);
        free(prefix);
        rv_buf_fini(&got);
    }
    size_t post_lines = 0;
    for (int s = 0; s < new_par; s++)
        post_lines += count_lines(post[s]);
    cr_expect_eq(done + post_lines, total, "no row twice or from elsewhere");
    cr_expect_eq(bad_total, bad, "bad records reported once each");
    for (int s = 0; s < new_par; s++) {
        free(post[s]);
        op_free(cs[s]);
        free(cs[s]);
    }
    for (int s = 0; s < 2; s++) {
        free(pre[s]);
        rv_buf_fini(&blobs[s]);
    }
    for (int k = 0; k < nfiles; k++)
        free(want[k]);
    rv_buf_fini(&all_want);
    free(yaml);
    rm_dir(dir);
}

static const int rescale_ks[][2] = {{0, 0}, {1, 3}, {5, 9}, {20, 2}, {1000, 1000}};

Test(file, directory_rescaled_to_one)
{
    for (size_t t = 0; t < sizeof(rescale_ks) / sizeof(rescale_ks[0]); t++)
        check_dir_rescale(false, rescale_ks[t][0], rescale_ks[t][1], 1);
}

Test(file, directory_rescaled_to_three)
{
    for (size_t t = 0; t < sizeof(rescale_ks) / sizeof(rescale_ks[0]); t++)
        check_dir_rescale(false, rescale_ks[t][0], rescale_ks[t][1], 3);
}

Test(file, followed_directory_rescaled, .timeout = 60)
{
    /* Follow never ends: the old instances stop after k polls. */
    const int ks[][2] = {{1, 3}, {5, 9}, {40, 40}};
    for (size_t t = 0; t < 3; t++) {
        check_dir_rescale(true, ks[t][0], ks[t][1], 1);
        check_dir_rescale(true, ks[t][0], ks[t][1], 3);
    }
}

/* Follow: a file with a partial last line is read, snapshotted after
 * `polls` polls (0: after everything there), then more data is appended;
 * the restored instance reads exactly the rest. */
static void check_follow_append(int polls)
{
    char *dir = tmp_dir();
    char *path = rv_xasprintf("%s/log.json", dir);
    rv_buf text = {0}, want = {0};
    json_model("log", 0, 60, &text, &want);
    char *all = cstr(&text);
    /* Split inside line 40: the writer has not finished it yet. */
    const char *cut = all;
    for (int j = 0; j < 40; j++)
        cut = strchr(cut, '\n') + 1;
    size_t first_len = (size_t)(cut - all) + 9;
    char *first = rv_xstrndup(all, first_len);
    write_file(path, first, "w");
    size_t rows_first = 0; /* rows of lines 0..39 */
    {
        rv_buf t2 = {0}, w2 = {0};
        json_model("log", 0, 40, &t2, &w2);
        rows_first = count_lines(cstr(&w2));
        rv_buf_fini(&t2);
        rv_buf_fini(&w2);
    }
    char *yaml = rv_xasprintf("path: %s\nfollow: true\npoll_interval: 5ms\nbatch_size: 4\n", path);
    op_run b, c;
    src_start(&b, &rv_source_file, "src", yaml, JSON_SCHEMA, 0, 1);
    if (polls > 0) {
        poll_times(&b, polls);
        cr_assert_lt(nrows(&b), rows_first);
    } else {
        op_run *bs[1] = {&b};
        poll_until_rows(bs, 1, rows_first);
        cr_assert_eq(nrows(&b), rows_first);
    }
    char *pre = rows(&b);
    rv_buf blob = snapshot(&b);
    op_free(&b);
    write_file(path, all + first_len, "a");
    src_start(&c, &rv_source_file, "src", yaml, JSON_SCHEMA, 0, 1);
    restore_ok(&c, &(rv_op_state){.subtask = 0, .parallelism = 1, .data = blob.data, .len = blob.len}, 1);
    op_run *cs[1] = {&c};
    size_t want_rows = count_lines(cstr(&want));
    poll_until_rows(cs, 1, want_rows - count_lines(pre));
    char *post = rows(&c);
    char *got = concat(pre, post);
    cr_expect_str_eq(got, cstr(&want), "polls %d", polls);
    free(got);
    free(pre);
    free(post);
    free(first);
    free(yaml);
    rv_buf_fini(&blob);
    rv_buf_fini(&text);
    rv_buf_fini(&want);
    op_free(&c);
    free(path);
    rm_dir(dir);
}

Test(file, follow_reads_exactly_what_was_appended, .timeout = 60)
{
    check_follow_append(0);
    check_follow_append(1);
    check_follow_append(3);
}

Test(file, finished_file_stays_finished)
{
    char *dir = tmp_dir();
    char *pa = rv_xasprintf("%s/a.json", dir), *pb = rv_xasprintf("%s/b.json", dir);
    rv_buf ta = {0}, wa = {0}, tb = {0}, wb = {0};
    json_model("a", 0, 10, &ta, &wa);
    json_model("b", 0, 100, &tb, &wb);
    write_file(pa, cstr(&ta), "w");
    write_file(pb, cstr(&tb), "w");
    char *yaml = rv_xasprintf("path: %s\nbatch_size: 5\n", dir);
    op_run b, c;
    src_start(&b, &rv_source_file, "src", yaml, JSON_SCHEMA, 0, 1);
    /* Poll until a is done and b is started. */
    for (;;) {
        char *sofar = rows(&b);
        bool b_started = has_rows_of(sofar, "b");
        free(sofar);
        if (b_started)
            break;
        cr_assert_neq(poll_times(&b, 1), RV_SRC_END);
    }
    char *pre = rows(&b);
    rv_buf blob = snapshot(&b);
    op_free(&b);
    /* Both files grow after the snapshot. */
    rv_buf ta2 = {0}, wa2 = {0}, tb2 = {0}, wb2 = {0};
    json_model("a", 10, 30, &ta2, &wa2);
    json_model("b", 100, 130, &tb2, &wb2);
    write_file(pa, cstr(&ta2), "a");
    write_file(pb, cstr(&tb2), "a");
    src_start(&c, &rv_source_file, "src", yaml, JSON_SCHEMA, 0, 1);
    restore_ok(&c, &(rv_op_state){.subtask = 0, .parallelism = 1, .data = blob.data, .len = blob.len}, 1);
    run_to_end(&c);
    char *post = rows(&c);
    /* a was finished: nothing more of it; b goes on to its new end. */
    rv_buf want = {0};
    rv_buf_append(&want, wa.data, wa.len);
    rv_buf_append(&want, wb.data, wb.len);
    rv_buf_append(&want, wb2.data, wb2.len);
    char *got = concat(pre, post);
    cr_expect_str_eq(got, cstr(&want));
    cr_expect(!has_rows_of(post, "a"));
    free(got);
    free(pre);
    free(post);
    free(yaml);
    rv_buf_fini(&want);
    rv_buf_fini(&blob);
    rv_buf_fini(&ta); rv_buf_fini(&wa); rv_buf_fini(&tb); rv_buf_fini(&wb);
    rv_buf_fini(&ta2); rv_buf_fini(&wa2); rv_buf_fini(&tb2); rv_buf_fini(&wb2);
    op_free(&c);
    free(pa);
    free(pb);
    rm_dir(dir);
}

Test(file, gone_file_is_skipped_and_replaced_file_reread)
{
    char *dir = tmp_dir();
    char *pa = rv_xasprintf("%s/a.json", dir), *pb = rv_xasprintf("%s/b.json", dir),
         *pc = rv_xasprintf("%s/c.json", dir);
    rv_buf ta = {0}, wa = {0}, tb = {0}, wb = {0}, tc = {0}, wc = {0};
    json_model("a", 0, 40, &ta, &wa);
    json_model("b", 0, 40, &tb, &wb);
    json_model("c", 0, 40, &tc, &wc);
    write_file(pa, cstr(&ta), "w");
    write_file(pb, cstr(&tb), "w");
    write_file(pc, cstr(&tc), "w");
    /* Parallelism 2: instance 0 reads a and c, instance 1 reads b. */
    char *yaml = rv_xasprintf("path: %s\nbatch_size: 5\n", dir);
    op_run b0, b1, c;
    src_start(&b0, &rv_source_file, "src", yaml, JSON_SCHEMA, 0, 2);
    src_start(&b1, &rv_source_file, "src", yaml, JSON_SCHEMA, 1, 2);
    poll_times(&b0, 2);
    poll_times(&b1, 2);
    char *pre0 = rows(&b0), *pre1 = rows(&b1);
    cr_assert(has_rows_of(pre0, "a") && has_rows_of(pre1, "b"));
    rv_buf blob0 = snapshot(&b0), blob1 = snapshot(&b1);
    op_free(&b0);
    op_free(&b1);
    /* a is replaced by a new file (new inode), b is deleted. */
    rv_buf ta2 = {0}, wa2 = {0};
    json_model("a", 100, 125, &ta2, &wa2);
    char *tmp = rv_xasprintf("%s/.new", dir);
    write_file(tmp, cstr(&ta2), "w");
    cr_assert_eq(rename(tmp, pa), 0);
    cr_assert_eq(unlink(pb), 0);
    rv_op_state states[2] = {
        {.subtask = 0, .parallelism = 2, .data = blob0.data, .len = blob0.len},
        {.subtask = 1, .parallelism = 2, .data = blob1.data, .len = blob1.len},
    };
    src_start(&c, &rv_source_file, "src", yaml, JSON_SCHEMA, 0, 1);
    restore_ok(&c, states, 2);
    run_to_end(&c);
    char *post = rows(&c);
    /* The new a from its start, nothing of b, all of c. */
    rv_buf want = {0};
    rv_buf_append(&want, wa2.data, wa2.len);
    rv_buf_append(&want, wc.data, wc.len);
    cr_expect_str_eq(post, cstr(&want));
    free(pre0);
    free(pre1);
    free(post);
    free(tmp);
    free(yaml);
    rv_buf_fini(&want);
    rv_buf_fini(&blob0);
    rv_buf_fini(&blob1);
    rv_buf_fini(&ta); rv_buf_fini(&wa); rv_buf_fini(&tb); rv_buf_fini(&wb);
    rv_buf_fini(&tc); rv_buf_fini(&wc); rv_buf_fini(&ta2); rv_buf_fini(&wa2);
    op_free(&c);
    free(pa);
    free(pb);
    free(pc);
    rm_dir(dir);
}

Test(file, truncated_file_is_reread)
{
    char *dir = tmp_dir();
    char *path = rv_xasprintf("%s/t.json", dir);
    rv_buf t = {0}, w = {0};
    json_model("t", 0, 200, &t, &w);
    write_file(path, cstr(&t), "w");
    char *yaml = rv_xasprintf("path: %s\nbatch_size: 10\n", path);
    op_run b, c;
    src_start(&b, &rv_source_file, "src", yaml, JSON_SCHEMA, 0, 1);
    poll_times(&b, 10);
    rv_buf blob = snapshot(&b);
    op_free(&b);
    rv_buf t2 = {0}, w2 = {0};
    json_model("t", 500, 520, &t2, &w2); /* shorter than the offset */
    write_file(path, cstr(&t2), "w");
    src_start(&c, &rv_source_file, "src", yaml, JSON_SCHEMA, 0, 1);
    restore_ok(&c, &(rv_op_state){.subtask = 0, .parallelism = 1, .data = blob.data, .len = blob.len}, 1);
    run_to_end(&c);
    char *post = rows(&c);
    cr_expect_str_eq(post, cstr(&w2));
    free(post);
    free(yaml);
    rv_buf_fini(&blob);
    rv_buf_fini(&t); rv_buf_fini(&w); rv_buf_fini(&t2); rv_buf_fini(&w2);
    op_free(&c);
    free(path);
    rm_dir(dir);
}

Test(file, corrupt_state_is_an_error)
{
    char *dir = tmp_dir();
    char *path = rv_xasprintf("%s/in.csv", dir);
    write_file(path, "n,f,v\n1,a,x\n2,b,y\n3,c,z\n4,d,w\n", "w");
    char *yaml = rv_xasprintf("path: %s\nformat: csv\nbatch_size: 2\n", path);
    op_run b;
    src_start(&b, &rv_source_file, "src", yaml, JSON_SCHEMA, 0, 1);
    poll_times(&b, 1);
    rv_buf blob = snapshot(&b);
    op_free(&b);
    for (size_t len = 0; len <= blob.len; len++) {
        op_run c;
        src_start(&c, &rv_source_file, "src", yaml, JSON_SCHEMA, 0, 1);
        rv_err *err = restore_blob(&c, blob.data, len, 0, 1);
        if (len == blob.len) {
            cr_expect_null(err, "%s", err ? rv_err_msg(err) : "");
            rv_err_free(err);
            run_to_end(&c);
            char *post = rows(&c);
            cr_expect_str_eq(post, "c|3|z\nd|4|w\n");
            free(post);
        } else {
            cr_assert_not_null(err, "prefix of %zu bytes accepted", len);
            cr_expect_eq(rv_err_code(err), RV_ERR_CORRUPT);
            EXPECT_ERR(err, "source 'src'");
        }
        op_free(&c);
    }
    char *copy = rv_xmalloc(blob.len + 1);
    memcpy(copy, blob.data, blob.len);
    copy[blob.len] = 0;
    op_run c;
    src_start(&c, &rv_source_file, "src", yaml, JSON_SCHEMA, 0, 1);
    EXPECT_ERR(restore_blob(&c, copy, blob.len + 1, 0, 1), "after its last file entry");
    copy[1] = 'x';
    EXPECT_ERR(restore_blob(&c, copy, blob.len, 0, 1), "not a file source state");
    copy[1] = blob.data[1];
    copy[4] = 3;
    EXPECT_ERR(restore_blob(&c, copy, blob.len, 0, 1), "version 3");
    copy[4] = blob.data[4];
    /* The flags byte of the only entry: after magic, version, count, name
     * length, name and three u64. */
    size_t flags_at = 4 + 1 + 4 + 4 + strlen(path) + 24;
    copy[flags_at] = (char)0x80;
    EXPECT_ERR(restore_blob(&c, copy, blob.len, 0, 1), "unknown bits");
    op_free(&c);
    free(copy);
    rv_buf_fini(&blob);
    free(yaml);
    free(path);
    rm_dir(dir);
}
