/* Unit tests of the file sink's two-phase commit (taskmanager/sinks/file.c)
 * driven through its plugin callbacks with the fake runtime context of
 * op_harness.h: publishing on roll without checkpointing; with it, files
 * visible only after checkpoint_complete(); a crash after two snapshots
 * restored from either snapshot's state; idempotent restores; restoring two
 * old subtasks into one instance (and the subtask mapping with the same
 * parallelism); and rejected state blobs (truncated, flipped bits, crafted
 * bad entries, files missing or cut short).
 *
 * Every test works in a fresh temporary directory. Row i is (id i, s "w<i>")
 * and is written as the CSV line "i,wi" (header off): the expected visible
 * content is the model's text of the rows fed, in order, computed here from
 * the row numbers; the directory is read back by concatenating a subtask's
 * visible part files in part-number order. The state blob is decoded here
 * from its documented layout (file.c's header comment) with a checksum
 * computed here. */
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "op_harness.h"
#include "rv_file.h"
#include "rv_record.h"

extern const rv_plugin rv_sink_file;

/* op_harness.h helpers this file does not need. */
static void (*const unused_helpers_[])(void) __attribute__((unused)) = {
    (void (*)(void))dump, (void (*)(void))describe};

static char dir_tmpl[64];
static char *root; /* per test */

static void setup(void)
{
    strcpy(dir_tmpl, "/tmp/rv_sink_2pc_XXXXXX");
    root = mkdtemp(dir_tmpl);
    cr_assert_not_null(root);
}

static void teardown(void)
{
    rv_err_free(rv_file_remove_tree(root));
}

TestSuite(sink_2pc, .init = setup, .fini = teardown);

#define EXPECT_ERR(err, substr)                                                                \
    do {                                                                                       \
        cr_assert_not_null(err, "an error containing '%s'", substr);                           \
        cr_expect(strstr(rv_err_msg(err), substr) != NULL, "'%s' not in: %s", substr,          \
                  rv_err_msg(err));                                                            \
    } while (0)

/* ---- the model ---- */

/* The CSV text of rows [from, to) in order. */
static char *rows_text(int from, int to)
{
    rv_buf b = {0};
    rv_buf_append(&b, "", 0); /* "" when empty */
    for (int i = from; i < to; i++)
        rv_buf_printf(&b, "%d,w%d\n", i, i);
    return b.data;
}

/* ---- driving the sink ---- */

/* A new directory under root. */
static char *new_dir(const char *name)
{
    char *d = rv_xasprintf("%s/%s", root, name);
    cr_assert_eq(mkdir(d, 0777), 0);
    return d;
}

static void sink_open(op_run *r, const char *dir, const char *extra, bool checkpointing,
                      int subtask, int parallelism)
{
    char *yaml = rv_xasprintf("path: %s\nformat: csv\nheader: false\n%s", dir, extra ? extra : "");
    rv_err *err = op_plan(r, &rv_sink_file, yaml, "id:int64,s:string", NULL, NULL, NULL, NULL);
    cr_assert_null(err, "%s", err ? rv_err_msg(err) : "");
    free(yaml);
    r->ctx.checkpointing = checkpointing;
    r->ctx.subtask = subtask;
    r->ctx.parallelism = parallelism;
    op_open(r);
}

/* Feeds rows [from, to) in batches of `per` rows. */
static void feed(op_run *r, int from, int to, int per)
{
    for (int i = from; i < to; i += per) {
        rv_batch *b = rv_batch_new(r->ctx.in[0], (uint32_t)per);
        for (int k = i; k < to && k < i + per; k++) {
            char row[64];
            snprintf(row, sizeof(row), "%d|w%d", k, k);
            add_row(b, row);
        }
        rv_code rc = r->pl->process(r->state, &r->ctx, 0, b);
        cr_assert_eq(rc, RV_OK, "process: %s", r->ctx.failed ? rv_err_msg(r->ctx.failed) : "?");
        rv_batch_unref(b);
    }
}

static rv_buf snap(op_run *r, uint64_t id)
{
    rv_buf out = {0};
    rv_err *err = r->pl->snapshot(r->state, &r->ctx, id, &out);
    cr_assert_null(err, "snapshot %" PRIu64 ": %s", id, err ? rv_err_msg(err) : "");
    return out;
}

static void complete(op_run *r, uint64_t id)
{
    rv_err *err = r->pl->checkpoint_complete(r->state, &r->ctx, id);
    cr_assert_null(err, "checkpoint_complete %" PRIu64 ": %s", id, err ? rv_err_msg(err) : "");
}

static void finish(op_run *r)
{
    cr_assert_eq(r->pl->finish(r->state, &r->ctx), RV_OK);
}

static rv_op_state state_of(const rv_buf *b, int subtask, int parallelism)
{
    return (rv_op_state){.subtask = subtask, .parallelism = parallelism, .data = b->data,
                         .len = b->len};
}

/* ---- reading the directory back ---- */

typedef struct part {
    int sub;
    uint64_t n;
    char name[256];
} part;

typedef struct dir_view {
    char *text[4];   /* per subtask 0..3: its visible files concatenated in n order */
    int files[4];    /* visible files per subtask */
    int nhidden;     /* names starting with '.' (but . and ..) */
    int nother;      /* anything else */
    char hidden[64][256];
} dir_view;

static int part_cmp(const void *a, const void *b)
{
    const part *x = a, *y = b;
    if (x->sub != y->sub)
        return x->sub < y->sub ? -1 : 1;
    return x->n < y->n ? -1 : x->n > y->n;
}

static char *read_whole(const char *dir, const char *name)
{
    char *p = rv_xasprintf("%s/%s", dir, name), *text;
    size_t len;
    rv_err *err = rv_file_read(p, 1 << 20, &text, &len);
    cr_assert_null(err, "%s", err ? rv_err_msg(err) : "");
    free(p);
    return text;
}

static void view(const char *dir, dir_view *v)
{
    memset(v, 0, sizeof(*v));
    part parts[256];
    int np = 0;
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        const char *name = de->d_name;
        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
            continue;
        if (name[0] == '.') {
            cr_assert_lt(v->nhidden, 64);
            snprintf(v->hidden[v->nhidden++], 256, "%s", name);
            continue;
        }
        part p;
        int end = 0;
        if (sscanf(name, "part-%d-%" SCNu64 ".csv%n", &p.sub, &p.n, &end) == 2 &&
            end == (int)strlen(name) && p.sub >= 0 && p.sub < 4) {
            snprintf(p.name, sizeof(p.name), "%s", name);
            cr_assert_lt(np, 256);
            parts[np++] = p;
        } else {
            v->nother++;
        }
    }
    closedir(d);
    qsort(parts, (size_t)np, sizeof(part), part_cmp);
    rv_buf b[4] = {{0}};
    for (int s = 0; s < 4; s++)
        rv_buf_append(&b[s], "", 0);
    for (int i = 0; i < np; i++) {
        char *t = read_whole(dir, parts[i].name);
        cr_expect_gt(strlen(t), 0, "%s is empty", parts[i].name);
        rv_buf_append(&b[parts[i].sub], t, strlen(t));
        v->files[parts[i].sub]++;
        free(t);
    }
    for (int s = 0; s < 4; s++)
        v->text[s] = b[s].data;
}

static void view_free(dir_view *v)
{
    for (int s = 0; s < 4; s++)
        free(v->text[s]);
}

/* Subtask `sub` of dir shows exactly rows [from, to) (and nothing else
 * shows for it). */
static void expect_visible(const char *dir, int sub, int from, int to, int nhidden)
{
    dir_view v;
    view(dir, &v);
    char *want = rows_text(from, to);
    cr_expect_str_eq(v.text[sub], want, "subtask %d in %s", sub, dir);
    if (nhidden >= 0)
        cr_expect_eq(v.nhidden, nhidden, "hidden files in %s: %d (first: %s)", dir, v.nhidden,
                     v.nhidden ? v.hidden[0] : "-");
    cr_expect_eq(v.nother, 0, "unexpected names in %s", dir);
    free(want);
    view_free(&v);
}

/* ---- the blob, decoded independently from its documented layout ---- */

static uint32_t fnv(const uint8_t *p, size_t n)
{
    uint32_t h = 0x811c9dc5u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x01000193u;
    return h;
}

static uint64_t le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

typedef struct entry {
    uint64_t chk, size;
    char final[256], hidden[256];
} entry;

typedef struct decoded {
    uint64_t next_n;
    int n;
    entry e[64];
} decoded;

static void decode(const rv_buf *b, decoded *out)
{
    const uint8_t *p = (const uint8_t *)b->data;
    cr_assert_geq(b->len, 24);
    cr_assert(memcmp(p, "RVFS", 4) == 0);
    cr_assert_eq(le(p + 4, 4), 1);
    cr_assert_eq(le(p + b->len - 4, 4), fnv(p, b->len - 4), "checksum");
    out->next_n = le(p + 8, 8);
    out->n = (int)le(p + 16, 4);
    cr_assert_leq(out->n, 64);
    size_t off = 20;
    for (int i = 0; i < out->n; i++) {
        entry *e = &out->e[i];
        e->chk = le(p + off, 8);
        e->size = le(p + off + 8, 8);
        off += 16;
        for (int k = 0; k < 2; k++) {
            size_t len = (size_t)le(p + off, 2);
            off += 2;
            cr_assert_lt(len, 256);
            memcpy(k ? e->hidden : e->final, p + off, len);
            (k ? e->hidden : e->final)[len] = 0;
            off += len;
        }
    }
    cr_assert_eq(off, b->len - 4, "entries end where the checksum starts");
}

/* Builds a blob of the documented layout with a correct checksum. */
static rv_buf craft(uint32_t version, uint64_t next_n, int n, const entry *e, const char *trailer)
{
    rv_buf b = {0};
    uint8_t t[8];
#define PUT(v, nb)                                                                             \
    do {                                                                                       \
        for (int i_ = 0; i_ < (nb); i_++)                                                      \
            t[i_] = (uint8_t)((uint64_t)(v) >> (8 * i_));                                      \
        rv_buf_append(&b, t, (nb));                                                            \
    } while (0)
    rv_buf_append(&b, "RVFS", 4);
    PUT(version, 4);
    PUT(next_n, 8);
    PUT(n, 4);
    for (int i = 0; i < n; i++) {
        PUT(e[i].chk, 8);
        PUT(e[i].size, 8);
        PUT(strlen(e[i].final), 2);
        rv_buf_append(&b, e[i].final, strlen(e[i].final));
        PUT(strlen(e[i].hidden), 2);
        rv_buf_append(&b, e[i].hidden, strlen(e[i].hidden));
    }
    if (trailer)
        rv_buf_append(&b, trailer, strlen(trailer));
    PUT(fnv((const uint8_t *)b.data, b.len), 4);
#undef PUT
    return b;
}

static int64_t file_size(const char *dir, const char *name)
{
    char *p = rv_xasprintf("%s/%s", dir, name);
    struct stat sb;
    int rc = stat(p, &sb);
    free(p);
    return rc == 0 ? (int64_t)sb.st_size : -1;
}

/* ---------------- (1) without checkpointing ---------------- */

Test(sink_2pc, without_checkpointing_publishes_on_roll_and_finish)
{
    char *dir = new_dir("out");
    op_run r;
    /* roll_size 1: every batch fills a file, which is published at once. */
    sink_open(&r, dir, "roll_size: 1\n", false, 0, 1);
    for (int k = 0; k < 4; k++) {
        feed(&r, 3 * k, 3 * k + 3, 3);
        expect_visible(dir, 0, 0, 3 * k + 3, 0);
        dir_view v;
        view(dir, &v);
        cr_expect_eq(v.files[0], k + 1, "one file per batch");
        view_free(&v);
    }
    finish(&r);
    op_free(&r);
    expect_visible(dir, 0, 0, 12, 0);

    /* Large roll_size: hidden until finish(), then one file. */
    char *dir2 = new_dir("out2");
    sink_open(&r, dir2, NULL, false, 0, 1);
    feed(&r, 0, 10, 4);
    expect_visible(dir2, 0, 0, 0, 1);
    finish(&r);
    expect_visible(dir2, 0, 0, 10, 0);
    op_free(&r);
    /* Canceled (no finish): the rows stay in the hidden file. */
    char *dir3 = new_dir("out3");
    sink_open(&r, dir3, NULL, false, 0, 1);
    feed(&r, 0, 5, 5);
    op_free(&r);
    expect_visible(dir3, 0, 0, 0, 1);
    dir_view v;
    view(dir3, &v);
    char *t = read_whole(dir3, v.hidden[0]), *want = rows_text(0, 5);
    cr_expect_str_eq(t, want);
    free(t);
    free(want);
    view_free(&v);
    free(dir);
    free(dir2);
    free(dir3);
}

/* ---------------- (2) with checkpointing ---------------- */

static void publish_after_complete(const char *extra)
{
    char *dir = new_dir("out");
    op_run r;
    sink_open(&r, dir, extra, true, 0, 1);
    feed(&r, 0, 10, 3);
    expect_visible(dir, 0, 0, 0, -1);
    rv_buf b1 = snap(&r, 1);
    expect_visible(dir, 0, 0, 0, -1);
    feed(&r, 10, 20, 3);
    expect_visible(dir, 0, 0, 0, -1);
    complete(&r, 1);
    expect_visible(dir, 0, 0, 10, -1); /* exactly the rows before snapshot(1) */
    feed(&r, 20, 25, 3);
    rv_buf b2 = snap(&r, 2);
    feed(&r, 25, 30, 3);
    rv_buf b3 = snap(&r, 3);
    expect_visible(dir, 0, 0, 10, -1);
    complete(&r, 2); /* not 3's files */
    expect_visible(dir, 0, 0, 25, -1);
    complete(&r, 2); /* again: nothing left for 2 */
    expect_visible(dir, 0, 0, 25, -1);
    feed(&r, 30, 33, 3);
    complete(&r, 3);
    expect_visible(dir, 0, 0, 30, 1); /* 30..32 are still in the in-progress file */
    /* finish() pre-commits the last file; the final checkpoint publishes it. */
    finish(&r);
    expect_visible(dir, 0, 0, 30, 1);
    rv_buf b4 = snap(&r, 4);
    expect_visible(dir, 0, 0, 30, 1);
    complete(&r, 4);
    expect_visible(dir, 0, 0, 33, 0);
    op_free(&r);
    expect_visible(dir, 0, 0, 33, 0);
    rv_buf_fini(&b1);
    rv_buf_fini(&b2);
    rv_buf_fini(&b3);
    rv_buf_fini(&b4);
    free(dir);
}

Test(sink_2pc, checkpointing_publishes_only_on_complete)
{
    publish_after_complete(NULL);
}

Test(sink_2pc, checkpointing_rolled_files_wait_for_their_checkpoint)
{
    /* roll_size 20: a file rolls every few rows, between snapshots too. */
    publish_after_complete("roll_size: 20\n");
}

Test(sink_2pc, checkpointing_roll_interval_timer_does_not_publish)
{
    char *dir = new_dir("out");
    op_run r;
    sink_open(&r, dir, "roll_interval: 1s\n", true, 0, 1);
    r.ctx.now = 1000;
    feed(&r, 0, 4, 4);
    cr_assert_eq(r.ctx.ntimers, 1);
    cr_assert_eq(r.ctx.timers[0], 2000);
    r.ctx.now = 2000;
    cr_assert_eq(r.pl->on_timer(r.state, &r.ctx, 2000), RV_OK);
    expect_visible(dir, 0, 0, 0, 1); /* rolled: pending, hidden */
    feed(&r, 4, 6, 2);               /* a new file */
    expect_visible(dir, 0, 0, 0, 2);
    rv_buf b = snap(&r, 7);
    decoded d;
    decode(&b, &d);
    cr_expect_eq(d.n, 2, "the rolled file and the current one");
    cr_expect(d.e[0].chk == 7 && d.e[1].chk == 7);
    complete(&r, 6); /* an older checkpoint: nothing */
    expect_visible(dir, 0, 0, 0, 2);
    complete(&r, 7);
    expect_visible(dir, 0, 0, 6, 0);
    dir_view v;
    view(dir, &v);
    cr_expect_eq(v.files[0], 2);
    view_free(&v);
    rv_buf_fini(&b);
    op_free(&r);
    free(dir);
}

/* ---------------- (3) crash and restore ---------------- */

/* Rows [0,10) | snapshot(1) | [10,20) | snapshot(2) | [20,30) | crash, with
 * checkpoint 2 never completed (and 1 completed when complete1). */
static void crash_run(const char *dir, const char *extra, int subtask, int parallelism, int base,
                      bool complete1, rv_buf *b1, rv_buf *b2)
{
    op_run r;
    sink_open(&r, dir, extra, true, subtask, parallelism);
    feed(&r, base + 0, base + 10, 3);
    *b1 = snap(&r, 1);
    if (complete1)
        complete(&r, 1);
    feed(&r, base + 10, base + 20, 3);
    *b2 = snap(&r, 2);
    feed(&r, base + 20, base + 30, 3);
    op_free(&r); /* close without finish */
}

/* The blob lists exactly the hidden files of the pre-committed rows, with
 * their sizes, and a next part number past them. */
static void check_blob_matches_dir(const char *dir, const rv_buf *b, uint64_t max_chk)
{
    decoded d;
    decode(b, &d);
    cr_expect_gt(d.n, 0);
    for (int i = 0; i < d.n; i++) {
        entry *e = &d.e[i];
        char *hidden = rv_xasprintf(".%s.inprogress", e->final);
        cr_expect_str_eq(e->hidden, hidden);
        free(hidden);
        cr_expect(e->chk >= 1 && e->chk <= max_chk, "checkpoint id %" PRIu64, e->chk);
        cr_expect_eq(file_size(dir, e->hidden), (int64_t)e->size, "%s", e->hidden);
        int sub;
        uint64_t n;
        cr_assert_eq(sscanf(e->final, "part-%d-%" SCNu64 ".csv", &sub, &n), 2);
        cr_expect_gt(d.next_n, n);
    }
}

static void crash_and_restore(const char *extra)
{
    for (int k = 1; k <= 2; k++) {
        char name[32];
        snprintf(name, sizeof(name), "from%d", k);
        char *dir = new_dir(name);
        rv_buf b[2];
        crash_run(dir, extra, 0, 1, 0, false, &b[0], &b[1]);
        expect_visible(dir, 0, 0, 0, -1);
        if (k == 2)
            check_blob_matches_dir(dir, &b[1], 2);
        op_run r;
        sink_open(&r, dir, extra, true, 0, 1);
        rv_op_state s = state_of(&b[k - 1], 0, 1);
        rv_err *err = r.pl->restore(r.state, &r.ctx, &s, 1);
        cr_assert_null(err, "%s", err ? rv_err_msg(err) : "");
        /* Exactly the rows up to snapshot k, nothing hidden left. */
        expect_visible(dir, 0, 0, 10 * k, 0);
        /* The sources replay the rest; it is published once, after it. */
        feed(&r, 10 * k, 30, 4);
        finish(&r);
        rv_buf last = snap(&r, 3);
        complete(&r, 3);
        expect_visible(dir, 0, 0, 30, 0);
        op_free(&r);
        rv_buf_fini(&last);
        rv_buf_fini(&b[0]);
        rv_buf_fini(&b[1]);
        free(dir);
    }
}

Test(sink_2pc, crash_restore_from_either_snapshot)
{
    crash_and_restore(NULL);
}

Test(sink_2pc, crash_restore_from_either_snapshot_with_rolls)
{
    crash_and_restore("roll_size: 20\n");
}

Test(sink_2pc, restore_discards_bytes_written_after_the_snapshot)
{
    /* A pre-committed file that grew after the snapshot (not done by the
     * sink itself, which never reopens it) is cut back to its size. */
    char *dir = new_dir("out");
    rv_buf b1, b2;
    crash_run(dir, NULL, 0, 1, 0, false, &b1, &b2);
    decoded d;
    decode(&b1, &d);
    cr_assert_eq(d.n, 1);
    char *p = rv_xasprintf("%s/%s", dir, d.e[0].hidden);
    FILE *f = fopen(p, "a");
    cr_assert_not_null(f);
    fputs("99,w99\n", f);
    fclose(f);
    free(p);
    op_run r;
    sink_open(&r, dir, NULL, true, 0, 1);
    rv_op_state s = state_of(&b1, 0, 1);
    rv_err *err = r.pl->restore(r.state, &r.ctx, &s, 1);
    cr_assert_null(err, "%s", err ? rv_err_msg(err) : "");
    expect_visible(dir, 0, 0, 10, 0);
    op_free(&r);
    rv_buf_fini(&b1);
    rv_buf_fini(&b2);
    free(dir);
}

/* ---------------- (4) idempotence ---------------- */

Test(sink_2pc, restore_leaves_files_committed_before_the_crash)
{
    /* Checkpoint 1 completed (its files published) before the crash. */
    char *dir = new_dir("out");
    rv_buf b1, b2;
    crash_run(dir, "roll_size: 20\n", 0, 1, 0, true, &b1, &b2);
    expect_visible(dir, 0, 0, 10, -1);
    op_run r;
    sink_open(&r, dir, NULL, true, 0, 1);
    rv_op_state s = state_of(&b1, 0, 1);
    rv_err *err = r.pl->restore(r.state, &r.ctx, &s, 1);
    cr_assert_null(err, "%s", err ? rv_err_msg(err) : "");
    expect_visible(dir, 0, 0, 10, 0);
    op_free(&r);

    /* The same again from snapshot 2 (whose blob no longer lists 1's
     * files), restored twice as after a second failure during recovery. */
    char *dir2 = new_dir("out2");
    rv_buf c1, c2;
    crash_run(dir2, "roll_size: 20\n", 0, 1, 0, true, &c1, &c2);
    for (int round = 0; round < 2; round++) {
        sink_open(&r, dir2, NULL, true, 0, 1);
        s = state_of(&c2, 0, 1);
        err = r.pl->restore(r.state, &r.ctx, &s, 1);
        cr_assert_null(err, "round %d: %s", round, err ? rv_err_msg(err) : "");
        expect_visible(dir2, 0, 0, 20, 0);
        op_free(&r);
    }
    rv_buf_fini(&b1);
    rv_buf_fini(&b2);
    rv_buf_fini(&c1);
    rv_buf_fini(&c2);
    free(dir);
    free(dir2);
}

Test(sink_2pc, restore_twice_from_the_same_snapshot)
{
    char *dir = new_dir("out");
    rv_buf b1, b2;
    crash_run(dir, "roll_size: 20\n", 0, 1, 0, false, &b1, &b2);
    for (int round = 0; round < 3; round++) {
        op_run r;
        sink_open(&r, dir, NULL, true, 0, 1);
        rv_op_state s = state_of(&b2, 0, 1);
        rv_err *err = r.pl->restore(r.state, &r.ctx, &s, 1);
        cr_assert_null(err, "round %d: %s", round, err ? rv_err_msg(err) : "");
        expect_visible(dir, 0, 0, 20, 0);
        op_free(&r);
    }
    rv_buf_fini(&b1);
    rv_buf_fini(&b2);
    free(dir);
}

/* ---------------- (5) rescaling ---------------- */

Test(sink_2pc, rescale_two_subtasks_into_one)
{
    char *dir = new_dir("out");
    rv_buf a1, a2, c1, c2;
    /* Old parallelism 2: subtask 0 rows 0.., subtask 1 rows 1000.. */
    crash_run(dir, "roll_size: 20\n", 0, 2, 0, false, &a1, &a2);
    crash_run(dir, "roll_size: 20\n", 1, 2, 1000, false, &c1, &c2);
    op_run r;
    sink_open(&r, dir, "roll_size: 20\n", true, 0, 1);
    rv_op_state s[2] = {state_of(&a1, 0, 2), state_of(&c2, 1, 2)}; /* mixed on purpose */
    rv_err *err = r.pl->restore(r.state, &r.ctx, s, 2);
    cr_assert_null(err, "%s", err ? rv_err_msg(err) : "");
    expect_visible(dir, 0, 0, 10, 0);
    expect_visible(dir, 1, 1000, 1020, 0);
    /* The new instance writes its own files after the old ones. */
    feed(&r, 10, 30, 3);
    finish(&r);
    rv_buf last = snap(&r, 3);
    complete(&r, 3);
    expect_visible(dir, 0, 0, 30, 0);
    expect_visible(dir, 1, 1000, 1020, 0);
    op_free(&r);
    rv_buf_fini(&last);
    rv_buf_fini(&a1);
    rv_buf_fini(&a2);
    rv_buf_fini(&c1);
    rv_buf_fini(&c2);
    free(dir);
}

Test(sink_2pc, each_instance_restores_only_its_old_subtasks)
{
    char *dir = new_dir("out");
    rv_buf a1, a2, c1, c2;
    crash_run(dir, NULL, 0, 2, 0, false, &a1, &a2);
    crash_run(dir, NULL, 1, 2, 1000, false, &c1, &c2);
    rv_op_state s[2] = {state_of(&a2, 0, 2), state_of(&c2, 1, 2)};
    op_run r;
    /* Instance 1 of 2 gets both states and takes only old subtask 1's. */
    sink_open(&r, dir, NULL, true, 1, 2);
    rv_err *err = r.pl->restore(r.state, &r.ctx, s, 2);
    cr_assert_null(err, "%s", err ? rv_err_msg(err) : "");
    expect_visible(dir, 1, 1000, 1020, -1);
    expect_visible(dir, 0, 0, 0, -1);
    dir_view v;
    view(dir, &v);
    for (int i = 0; i < v.nhidden; i++)
        cr_expect(strncmp(v.hidden[i], ".part-0-", 8) == 0, "left: %s", v.hidden[i]);
    cr_expect_gt(v.nhidden, 0, "subtask 0's files are not touched");
    view_free(&v);
    op_free(&r);
    sink_open(&r, dir, NULL, true, 0, 2);
    err = r.pl->restore(r.state, &r.ctx, s, 2);
    cr_assert_null(err, "%s", err ? rv_err_msg(err) : "");
    expect_visible(dir, 0, 0, 20, 0);
    expect_visible(dir, 1, 1000, 1020, 0);
    op_free(&r);
    rv_buf_fini(&a1);
    rv_buf_fini(&a2);
    rv_buf_fini(&c1);
    rv_buf_fini(&c2);
    free(dir);
}

/* ---------------- (6) bad state ---------------- */

/* Restoring `bad` fails with `substr` in the message and changes nothing in
 * dir (which holds `hidden` hidden files and no visible one). */
static void expect_rejected(op_run *r, const char *dir, const void *data, size_t len,
                            const char *substr, int hidden)
{
    rv_op_state s = {.subtask = 0, .parallelism = 1, .data = data, .len = len};
    rv_err *err = r->pl->restore(r->state, &r->ctx, &s, 1);
    EXPECT_ERR(err, substr);
    if (err && strstr(rv_err_msg(err), "file sink 'op'") == NULL)
        cr_expect_fail("the error names the sink: %s", rv_err_msg(err));
    rv_err_free(err);
    expect_visible(dir, 0, 0, 0, hidden);
}

Test(sink_2pc, truncated_or_damaged_state_is_rejected)
{
    char *dir = new_dir("out");
    rv_buf b1, b2;
    crash_run(dir, "roll_size: 20\n", 0, 1, 0, false, &b1, &b2);
    dir_view v;
    view(dir, &v);
    int hidden = v.nhidden;
    view_free(&v);
    op_run r;
    sink_open(&r, dir, NULL, true, 0, 1);
    for (size_t cut = 0; cut < b2.len; cut++)
        expect_rejected(&r, dir, cut ? b2.data : NULL, cut, "unusable", hidden);
    expect_rejected(&r, dir, b2.data, 10, "truncated", hidden);
    uint8_t *copy = rv_xmalloc(b2.len);
    for (size_t i = 0; i < b2.len; i++) {
        memcpy(copy, b2.data, b2.len);
        copy[i] ^= (uint8_t)(1u << (i % 8));
        expect_rejected(&r, dir, copy, b2.len, "unusable", hidden);
    }
    /* Longer than written: trailing garbage. */
    rv_buf longer = {0};
    rv_buf_append(&longer, b2.data, b2.len);
    rv_buf_append(&longer, "xyz", 3);
    expect_rejected(&r, dir, longer.data, longer.len, "unusable", hidden);
    op_free(&r);
    /* The genuine blob still works. */
    sink_open(&r, dir, NULL, true, 0, 1);
    rv_op_state s = state_of(&b2, 0, 1);
    rv_err *err = r.pl->restore(r.state, &r.ctx, &s, 1);
    cr_assert_null(err, "%s", err ? rv_err_msg(err) : "");
    expect_visible(dir, 0, 0, 20, 0);
    op_free(&r);
    free(copy);
    rv_buf_fini(&longer);
    rv_buf_fini(&b1);
    rv_buf_fini(&b2);
    free(dir);
}

Test(sink_2pc, crafted_bad_entries_are_rejected)
{
    char *dir = new_dir("out");
    /* A real pending file to point at. */
    char *pending = rv_xasprintf("%s/.part-0-0.csv.inprogress", dir);
    int fd = open(pending, O_CREAT | O_WRONLY, 0666);
    free(pending);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, "1,w1\n", 5), 5);
    close(fd);
    op_run r;
    sink_open(&r, dir, NULL, true, 0, 1);
    entry good = {.chk = 1, .size = 5, .final = "part-0-0.csv",
                  .hidden = ".part-0-0.csv.inprogress"};
    struct {
        entry e;
        uint32_t version;
        const char *trailer;
        const char *substr;
    } cases[] = {
        {good, 2, NULL, "version 2"},
        {good, 1, "x", "1 unexpected bytes"},
        {{1, 5, "part-0-0.csv", "../.part-0-0.csv.inprogress"}, 1, NULL, "bad hidden name"},
        {{1, 5, "part-0-0.csv", "part-0-0.csv.inprogress"}, 1, NULL, "bad hidden name"},
        {{1, 5, "../part-0-0.csv", ".part-0-0.csv.inprogress"}, 1, NULL, "bad final name"},
        {{1, 5, ".part-0-0.csv", ".part-0-0.csv.inprogress"}, 1, NULL, "bad final name"},
        {{1, 5, "..", ".part-0-0.csv.inprogress"}, 1, NULL, "bad final name"},
        {{1, 5, "part-0-0.csv", ".."}, 1, NULL, "bad hidden name"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        rv_buf b = craft(cases[i].version, 1, 1, &cases[i].e, cases[i].trailer);
        expect_rejected(&r, dir, b.data, b.len, cases[i].substr, 1);
        rv_buf_fini(&b);
    }
    /* An empty final name (length 0). */
    entry empty = good;
    empty.final[0] = 0;
    rv_buf b = craft(1, 1, 1, &empty, NULL);
    expect_rejected(&r, dir, b.data, b.len, "bad final name", 1);
    rv_buf_fini(&b);
    /* Wrong magic. */
    b = craft(1, 1, 1, &good, NULL);
    b.data[0] = 'X';
    expect_rejected(&r, dir, b.data, b.len, "does not start with", 1);
    rv_buf_fini(&b);
    op_free(&r);
    /* The crafted good one commits the file (the layout is as documented). */
    sink_open(&r, dir, NULL, true, 0, 1);
    b = craft(1, 1, 1, &good, NULL);
    rv_op_state s = state_of(&b, 0, 1);
    rv_err *err = r.pl->restore(r.state, &r.ctx, &s, 1);
    cr_assert_null(err, "%s", err ? rv_err_msg(err) : "");
    expect_visible(dir, 0, 1, 2, 0);
    rv_buf_fini(&b);
    op_free(&r);
    free(dir);
}

Test(sink_2pc, missing_or_short_pending_file_is_an_error)
{
    char *dir = new_dir("out");
    op_run r;
    sink_open(&r, dir, NULL, true, 0, 1);
    entry gone = {.chk = 4, .size = 5, .final = "part-0-7.csv",
                  .hidden = ".part-0-7.csv.inprogress"};
    rv_buf b = craft(1, 8, 1, &gone, NULL);
    rv_op_state s = state_of(&b, 0, 1);
    rv_err *err = r.pl->restore(r.state, &r.ctx, &s, 1);
    char *path = rv_xasprintf("%s/.part-0-7.csv.inprogress", dir);
    EXPECT_ERR(err, path);
    EXPECT_ERR(err, "neither it nor part-0-7.csv exists");
    rv_err_free(err);
    /* Shorter than recorded: the checkpointed rows are gone. */
    int fd = open(path, O_CREAT | O_WRONLY, 0666);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, "1,w", 3), 3);
    close(fd);
    err = r.pl->restore(r.state, &r.ctx, &s, 1);
    EXPECT_ERR(err, path);
    EXPECT_ERR(err, "has 3 bytes but checkpoint 4 recorded 5");
    rv_err_free(err);
    expect_visible(dir, 0, 0, 0, 1);
    op_free(&r);
    rv_buf_fini(&b);
    free(path);
    free(dir);
}
