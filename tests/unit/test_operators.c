/* Unit tests of the operators (filter, map, union, window_aggregate),
 * driven directly through their plugin callbacks with a fake runtime
 * context (op_harness.h: emitted batches are kept
 * for inspection, processing time and timers are controlled by the test).
 * Expectations are hand-computed, or for window_aggregate also come from a
 * naive reference aggregation over random input. */
#include "op_harness.h"

#define EXPECT_ERR(err, substr) do { cr_assert_not_null(err); \
    cr_expect(strstr(rv_err_msg(err), substr) != NULL, "got: %s", rv_err_msg(err)); \
    rv_err_free(err); } while (0)

/* ---------------- filter ---------------- */
Test(filter, keeps_matching_rows)
{
    op_run r;
    cr_assert_null(op_plan(&r, &rv_op_filter, "where: status == \"ok\" && n > 1\n", "status:string,n:int64", NULL, NULL, NULL, NULL));
    cr_expect_str_eq(describe(r.ctx.out), "status:string, n:int64");
    op_open(&r);
    rv_batch *b = rv_batch_new(r.ctx.in[0], 4);
    add_row(b, "ok|5"); add_row(b, "bad|5"); add_row(b, "ok|~"); add_row(b, "ok|2");
    cr_assert_eq(r.pl->process(r.state, &r.ctx, 0, b), RV_OK);
    char *s = dump(&r);
    cr_expect_str_eq(s, "ok|5\nok|2\n");
    free(s);
    /* all pass: same batch forwarded */
    rv_batch *b2 = rv_batch_new(r.ctx.in[0], 4);
    add_row(b2, "ok|5"); add_row(b2, "ok|7");
    r.pl->process(r.state, &r.ctx, 0, b2);
    cr_expect_eq(r.ctx.nemitted, 2);
    cr_expect_eq(r.ctx.emitted[1], b2);
    /* none pass */
    rv_batch *b3 = rv_batch_new(r.ctx.in[0], 4);
    add_row(b3, "no|5");
    r.pl->process(r.state, &r.ctx, 0, b3);
    cr_expect_eq(r.ctx.nemitted, 2);
    rv_batch_unref(b); rv_batch_unref(b2); rv_batch_unref(b3);
    op_free(&r);
}

Test(filter, rejects_non_bool_and_unknown_field)
{
    op_run r;
    rv_err *err = op_plan(&r, &rv_op_filter, "id: errors\nwhere: n + 1\n", "status:string,n:int64", NULL, NULL, NULL, NULL);
    EXPECT_ERR(err, "job.yaml:2:8: operator 'op': 'where' must be a bool expression, but this one is int64");
    op_free(&r);
    err = op_plan(&r, &rv_op_filter, "id: errors\nwhere: stauts == \"x\"\n", "status:string,n:int64", NULL, NULL, NULL, NULL);
    EXPECT_ERR(err, "job.yaml:2:8:");
    op_free(&r);
    err = op_plan(&r, &rv_op_filter, "id: errors\nwhere: n == 1 &&  stauts == \"x\"\n", "status:string,n:int64", NULL, NULL, NULL, NULL);
    EXPECT_ERR(err, "job.yaml:2:19:");
    op_free(&r);
    err = op_plan(&r, &rv_op_filter, "id: errors\nwhere: null\n", "status:string,n:int64", NULL, NULL, NULL, NULL);
    EXPECT_ERR(err, "must be a bool");
    op_free(&r);
}

/* ---------------- map ---------------- */
Test(map, star_replaces_in_place_and_appends)
{
    op_run r;
    cr_assert_null(op_plan(&r, &rv_op_map,
        "select:\n  up: upper(s)\n  \"*\": true\n  n: n * 2\n  copy: s\n", "s:string,n:int64,f:float64", NULL, NULL, NULL, NULL));
    cr_expect_str_eq(describe(r.ctx.out), "s:string, n:int64, f:float64, up:string, copy:string");
    op_open(&r);
    rv_batch *b = rv_batch_new(r.ctx.in[0], 4);
    add_row(b, "ab|1|0.5"); add_row(b, "~|~|~"); add_row(b, "xyz|-3|2");
    r.pl->process(r.state, &r.ctx, 0, b);
    char *s = dump(&r);
    cr_expect_str_eq(s, "ab|2|0.5|AB|ab\n~|~|~|~|~\nxyz|-6|2|XYZ|xyz\n");
    free(s);
    rv_batch_unref(b);
    op_free(&r);
}

Test(map, without_star_yaml_order)
{
    op_run r;
    cr_assert_null(op_plan(&r, &rv_op_map,
        "select: {b: n > 1, a: s, c: len(s)}\n", "s:string,n:int64", NULL, NULL, NULL, NULL));
    cr_expect_str_eq(describe(r.ctx.out), "b:bool, a:string, c:int64");
    op_open(&r);
    rv_batch *b = rv_batch_new(r.ctx.in[0], 4);
    add_row(b, "hello|1"); add_row(b, "|2");
    r.pl->process(r.state, &r.ctx, 0, b);
    char *s = dump(&r);
    cr_expect_str_eq(s, "false|hello|5\ntrue||0\n");
    free(s);
    rv_batch_unref(b);
    op_free(&r);
}

Test(map, string_copy_of_sliced_offsets)
{
    /* a batch whose string column was built by append_rows with a selection */
    op_run r;
    cr_assert_null(op_plan(&r, &rv_op_map, "select: {\"*\": true}\n", "s:string", NULL, NULL, NULL, NULL));
    op_open(&r);
    rv_batch *b = rv_batch_new(r.ctx.in[0], 2);
    for (int i = 0; i < 5000; i++) { char buf[32]; sprintf(buf, "v%d", i); add_row(b, buf); }
    r.pl->process(r.state, &r.ctx, 0, b);
    cr_assert_eq(r.ctx.nemitted, 1);
    cr_expect_eq(r.ctx.emitted[0]->nrows, 5000);
    uint32_t len; const char *p = rv_col_str(&r.ctx.emitted[0]->cols[0], 4999, &len);
    cr_expect_eq(len, 5); cr_expect(memcmp(p, "v4999", 5) == 0);
    rv_batch_unref(b);
    op_free(&r);
}

Test(map, errors)
{
    op_run r;
    rv_err *err = op_plan(&r, &rv_op_map, "select:\n  x: null\n", "s:string", NULL, NULL, NULL, NULL);
    EXPECT_ERR(err, "job.yaml:2:6: operator 'op': 'x' has no type; cast it, e.g. string(null)");
    op_free(&r);
    err = op_plan(&r, &rv_op_map, "select:\n  x: lower(nme)\n", "name:string", NULL, NULL, NULL, NULL);
    EXPECT_ERR(err, "job.yaml:2:12:");
    op_free(&r);
    err = op_plan(&r, &rv_op_map, "select: [a, b]\n", "name:string", NULL, NULL, NULL, NULL);
    EXPECT_ERR(err, "'select' must be a map");
    op_free(&r);
    err = op_plan(&r, &rv_op_map, "select: {\"*\": maybe}\n", "name:string", NULL, NULL, NULL, NULL);
    EXPECT_ERR(err, "'*' must be true");
    op_free(&r);
    err = op_plan(&r, &rv_op_map, "select: {x: {y: 1}}\n", "name:string", NULL, NULL, NULL, NULL);
    EXPECT_ERR(err, "must be an expression");
    op_free(&r);
    err = op_plan(&r, &rv_op_map, "selct: {x: 1}\n", "name:string", NULL, NULL, NULL, NULL);
    EXPECT_ERR(err, "did you mean 'select'");
    op_free(&r);
}

/* ---------------- union ---------------- */
Test(union_op, schemas)
{
    op_run r;
    cr_assert_null(op_plan(&r, &rv_op_union, "inputs: [a, b]\n", "x:int64,y:string", "x:int64,y:string", NULL, NULL, NULL));
    op_open(&r);
    rv_batch *b = rv_batch_new(r.ctx.in[1], 1);
    add_row(b, "1|q");
    r.pl->process(r.state, &r.ctx, 1, b);
    cr_expect_eq(r.ctx.emitted[0], b);
    rv_batch_unref(b);
    op_free(&r);
    rv_err *err = op_plan(&r, &rv_op_union, "inputs: [a, b]\n", "x:int64,y:string", "x:int64,y:int64", NULL, NULL, NULL);
    EXPECT_ERR(err, "job.yaml:1:13: operator 'op': inputs must have the same schema: field 'y' is string in input 'a' but int64 in input 'b'");
    op_free(&r);
    err = op_plan(&r, &rv_op_union, "inputs: [a, b]\n", "x:int64,y:string", "x:int64,z:string", NULL, NULL, NULL);
    EXPECT_ERR(err, "field 2 is 'y'");
    op_free(&r);
    err = op_plan(&r, &rv_op_union, "inputs: [a, b]\n", "x:int64,y:string", "x:int64", NULL, NULL, NULL);
    EXPECT_ERR(err, "missing from input 'b'");
    op_free(&r);
    err = op_plan(&r, &rv_op_union, "inputs: [a, b]\n", "x:int64", "x:int64,y:bool", NULL, NULL, NULL);
    EXPECT_ERR(err, "input 'b' has a field 'y' (bool)");
    op_free(&r);
}

/* ---------------- window_aggregate ---------------- */
static const char *K1[] = {"k"};

Test(window_aggregate, event_time_tumbling)
{
    op_run r;
    cr_assert_null(op_plan(&r, &rv_op_window_aggregate,
        "id: w\nwindow: {tumbling: 10ms}\naggregates:\n  n: count()\n  s: sum(v)\n  q: sum(v) / 10\n  mn: min(name)\n  mx: max(v)\n  av: avg(v)\n  nv: count(v)\n",
        "ts:timestamp,k:int64,v:int64,name:string", NULL, "k:int64", K1, "ts"));
    cr_expect_str_eq(describe(r.ctx.out), "k:int64, window_start:timestamp, window_end:timestamp, n:int64, s:int64, q:int64, mn:string, mx:int64, av:float64, nv:int64");
    op_open(&r);
    rv_batch *b = rv_batch_new(r.ctx.in[0], 8);
    add_row(b, "0|1|5|bob");
    add_row(b, "9|1|7|al");
    add_row(b, "10|1|1|zed");
    add_row(b, "-1|2|~|~");     /* window [-10,0) */
    add_row(b, "3|2|4|~");
    add_row(b, "~|1|100|x");    /* null ts dropped */
    add_row(b, "-10|2|6|c");
    r.pl->process(r.state, &r.ctx, 0, b);
    cr_expect_eq(r.ctx.nemitted, 0);
    r.pl->on_watermark(r.state, &r.ctx, -2);
    cr_expect_eq(r.ctx.nemitted, 0);
    r.pl->on_watermark(r.state, &r.ctx, -1); /* fires [-10, 0) */
    char *s = dump(&r);
    cr_expect_str_eq(s, "2|-10|0|2|6|0|c|6|6|1\n");
    free(s);
    /* late row for [-10,0) is dropped; row for [0,10) accepted */
    rv_batch *b2 = rv_batch_new(r.ctx.in[0], 2);
    add_row(b2, "-5|2|1000|late");
    add_row(b2, "8|1|3|amy");
    r.pl->process(r.state, &r.ctx, 0, b2);
    r.pl->on_watermark(r.state, &r.ctx, 9);
    s = dump(&r);
    cr_expect_str_eq(s, "2|-10|0|2|6|0|c|6|6|1\n1|0|10|3|15|1|al|7|5|3\n2|0|10|1|4|0|~|4|4|1\n");
    free(s);
    r.pl->on_watermark(r.state, &r.ctx, RV_WATERMARK_MAX);
    r.pl->finish(r.state, &r.ctx);
    s = dump(&r);
    cr_expect(strstr(s, "1|10|20|1|1|0|zed|1|1|1\n") != NULL, "%s", s);
    free(s);
    rv_batch_unref(b); rv_batch_unref(b2);
    op_free(&r);
}

Test(window_aggregate, sliding_windows)
{
    op_run r;
    cr_assert_null(op_plan(&r, &rv_op_window_aggregate,
        "id: w\nwindow: {sliding: {size: 30, slide: 10}}\naggregates:\n  n: count()\n",
        "ts:timestamp,k:string", NULL, "k:string", K1, "ts"));
    op_open(&r);
    rv_batch *b = rv_batch_new(r.ctx.in[0], 4);
    add_row(b, "5|a");   /* windows -20, -10, 0 */
    add_row(b, "25|a");  /* windows 0, 10, 20 */
    r.pl->process(r.state, &r.ctx, 0, b);
    r.pl->finish(r.state, &r.ctx);
    char *s = dump(&r);
    cr_expect_str_eq(s, "a|-20|10|1\na|-10|20|1\na|0|30|2\na|10|40|1\na|20|50|1\n");
    free(s);
    rv_batch_unref(b);
    op_free(&r);
}

Test(window_aggregate, processing_time)
{
    op_run r;
    cr_assert_null(op_plan(&r, &rv_op_window_aggregate,
        "id: w\nwindow: {tumbling: 1s}\ntime: processing\naggregates:\n  n: count()\n",
        "k:string", NULL, "k:string", K1, NULL));
    op_open(&r);
    rv_batch *b = rv_batch_new(r.ctx.in[0], 4);
    add_row(b, "a"); add_row(b, "b"); add_row(b, "a");
    r.ctx.now = 1500;
    r.pl->process(r.state, &r.ctx, 0, b);
    cr_expect_eq(r.ctx.ntimers, 1);
    cr_expect_eq(r.ctx.timers[0], 2000);
    r.ctx.now = 2100;
    r.pl->process(r.state, &r.ctx, 0, b);
    r.pl->on_timer(r.state, &r.ctx, 2000);
    char *s = dump(&r);
    cr_expect_str_eq(s, "a|1000|2000|2\nb|1000|2000|1\n");
    free(s);
    r.pl->finish(r.state, &r.ctx);
    s = dump(&r);
    cr_expect_str_eq(s, "a|1000|2000|2\nb|1000|2000|1\na|2000|3000|2\nb|2000|3000|1\n");
    free(s);
    rv_batch_unref(b);
    op_free(&r);
}

Test(window_aggregate, many_keys_split_batches)
{
    op_run r;
    static const char *K2[] = {"k", "lower(s)"};
    cr_assert_null(op_plan(&r, &rv_op_window_aggregate,
        "id: w\nwindow: {tumbling: 1m}\naggregates:\n  total: sum(v)\n",
        "ts:timestamp,k:int64,s:string,v:float64", NULL, "k:int64,key1:string", K2, "ts"));
    op_open(&r);
    rv_batch *b = rv_batch_new(r.ctx.in[0], 10000);
    for (int i = 0; i < 10000; i++) {
        char row[64];
        sprintf(row, "%d|%d|S%d|0.5", i, i % 5000, i % 5000);
        add_row(b, row);
    }
    r.pl->process(r.state, &r.ctx, 0, b);
    r.pl->on_watermark(r.state, &r.ctx, RV_WATERMARK_MAX);
    cr_assert_eq(r.ctx.nemitted, 2);
    cr_expect_eq(r.ctx.emitted[0]->nrows, 4096);
    cr_expect_eq(r.ctx.emitted[1]->nrows, 5000 - 4096);
    const rv_batch *o = r.ctx.emitted[1];
    cr_expect_eq(o->cols[0].d.i64[0], 4096);
    uint32_t len; const char *p = rv_col_str(&o->cols[1], 0, &len);
    cr_expect(len == 5 && memcmp(p, "s4096", 5) == 0);
    cr_expect_eq(o->cols[4].d.f64[0], 1.0);
    rv_batch_unref(b);
    op_free(&r);
}

/* Session windows: a row out of order inside a session that has not fired
 * joins it (it is not late even though its own [t, t + gap) is past the
 * watermark). */
Test(window_aggregate, session_row_inside_an_open_session_is_not_late)
{
    op_run r;
    cr_assert_null(op_plan(&r, &rv_op_window_aggregate, "id: w\nwindow: {session: {gap: 10ms}}\naggregates: {n: count()}\n",
                           "ts:timestamp,k:int64", NULL, "k:int64", K1, "ts"));
    op_open(&r);
    rv_batch *b = rv_batch_new(r.ctx.in[0], 32);
    char row[32];
    for (int t = 0; t <= 90; t += 5) {
        snprintf(row, sizeof(row), "%d|1", t);
        add_row(b, row);
    }
    r.pl->process(r.state, &r.ctx, 0, b);
    r.pl->on_watermark(r.state, &r.ctx, 50);
    rv_batch *b2 = rv_batch_new(r.ctx.in[0], 2);
    add_row(b2, "20|1");
    r.pl->process(r.state, &r.ctx, 0, b2);
    cr_expect_eq(r.ctx.nlate, 0, "the row joined the open session");
    r.pl->on_watermark(r.state, &r.ctx, RV_WATERMARK_MAX);
    char *s = dump(&r);
    cr_expect_str_eq(s, "1|0|100|20\n");
    free(s);
    rv_batch_unref(b);
    rv_batch_unref(b2);
    op_free(&r);
}

/* A fired session extended by a row within allowed lateness is emitted
 * again, then freed at its new end + lateness: no state is left. */
Test(window_aggregate, session_extended_after_firing_is_freed)
{
    op_run r;
    cr_assert_null(op_plan(&r, &rv_op_window_aggregate,
                           "id: w\nwindow: {session: {gap: 10ms}}\nallowed_lateness: 100ms\naggregates: {n: count()}\n",
                           "ts:timestamp,k:int64", NULL, "k:int64", K1, "ts"));
    op_open(&r);
    rv_batch *b = rv_batch_new(r.ctx.in[0], 2);
    add_row(b, "0|1");
    r.pl->process(r.state, &r.ctx, 0, b);
    r.pl->on_watermark(r.state, &r.ctx, 20);
    rv_batch *b2 = rv_batch_new(r.ctx.in[0], 2);
    add_row(b2, "5|1");
    r.pl->process(r.state, &r.ctx, 0, b2);
    r.pl->on_watermark(r.state, &r.ctx, 30);
    r.pl->on_watermark(r.state, &r.ctx, 1000000);
    char *s = dump(&r);
    cr_expect_str_eq(s, "1|0|10|1|false\n1|0|15|2|true\n");
    free(s);
    rv_state_stats st;
    rv_state_get_stats(r.ctx.state, &st);
    cr_expect_eq(st.entries, 0, "%zu state entries left", st.entries);
    cr_expect_eq(rv_timer_count(r.ctx.state, RV_TIMER_EVENT), 0);
    rv_batch_unref(b);
    rv_batch_unref(b2);
    op_free(&r);
}

/* A window first seen after its end (within allowed lateness) is emitted
 * right after the batch, not at the next watermark. */
Test(window_aggregate, window_created_within_lateness_is_emitted_after_the_batch)
{
    op_run r;
    cr_assert_null(op_plan(&r, &rv_op_window_aggregate,
                           "id: w\nwindow: {tumbling: 10ms}\nallowed_lateness: 100ms\naggregates: {n: count()}\n",
                           "ts:timestamp,k:int64", NULL, "k:int64", K1, "ts"));
    op_open(&r);
    r.pl->on_watermark(r.state, &r.ctx, 50);
    rv_batch *b = rv_batch_new(r.ctx.in[0], 2);
    add_row(b, "5|3");
    r.pl->process(r.state, &r.ctx, 0, b);
    char *s = dump(&r);
    cr_expect_str_eq(s, "3|0|10|1|false\n");
    free(s);
    r.pl->on_watermark(r.state, &r.ctx, 51); /* its firing timer finds it emitted */
    r.pl->on_watermark(r.state, &r.ctx, RV_WATERMARK_MAX);
    s = dump(&r);
    cr_expect_str_eq(s, "3|0|10|1|false\n");
    free(s);
    rv_state_stats st;
    rv_state_get_stats(r.ctx.state, &st);
    cr_expect_eq(st.entries, 0);
    rv_batch_unref(b);
    op_free(&r);
}

Test(window_aggregate, plan_errors)
{
    op_run r;
    rv_err *err = op_plan(&r, &rv_op_window_aggregate, "id: w\nwindow: {tumbling: 10s}\naggregates: {n: count()}\n",
                          "ts:string,k:int64", NULL, "k:int64", K1, NULL);
    EXPECT_ERR(err, "window_aggregate 'op': event time needs a timestamp field; set event_time on the source or event_time_field here");
    op_free(&r);
    err = op_plan(&r, &rv_op_window_aggregate, "id: w\nwindow: {tumbling: 10s}\naggregates: {n: count()}\nevent_time_field: ts\n",
                          "ts:string,k:int64", NULL, "k:int64", K1, NULL);
    EXPECT_ERR(err, "job.yaml:4:19: window_aggregate 'op': event time needs a timestamp field ('ts' is string)");
    op_free(&r);
    err = op_plan(&r, &rv_op_window_aggregate, "id: w\nwindow: {session: 10s}\naggregates: {n: count()}\n",
                          "ts:timestamp,k:int64", NULL, "k:int64", K1, "ts");
    EXPECT_ERR(err, "job.yaml:2:19: operator 'op': a session window is written {gap: 30s}");
    op_free(&r);
    err = op_plan(&r, &rv_op_window_aggregate, "id: w\nwindow: {tumblin: 10s}\naggregates: {n: count()}\n",
                          "ts:timestamp,k:int64", NULL, "k:int64", K1, "ts");
    EXPECT_ERR(err, "did you mean 'tumbling'");
    op_free(&r);
    err = op_plan(&r, &rv_op_window_aggregate, "id: w\nwindow: {tumbling: 10 s}\naggregates: {n: count()}\n",
                          "ts:timestamp,k:int64", NULL, "k:int64", K1, "ts");
    EXPECT_ERR(err, "needs a duration");
    op_free(&r);
    err = op_plan(&r, &rv_op_window_aggregate, "id: w\nwindow: {sliding: {size: 10s, slid: 1s}}\naggregates: {n: count()}\n",
                          "ts:timestamp,k:int64", NULL, "k:int64", K1, "ts");
    EXPECT_ERR(err, "slide");
    op_free(&r);
    err = op_plan(&r, &rv_op_window_aggregate, "id: w\nwindow: {tumbling: 10s}\naggregates:\n  n: sum(reqests) / 10\n",
                          "ts:timestamp,k:int64,requests:int64", NULL, "k:int64", K1, "ts");
    EXPECT_ERR(err, "job.yaml:4:10:");
    op_free(&r);
    err = op_plan(&r, &rv_op_window_aggregate, "id: w\nwindow: {tumbling: 10s}\naggregates:\n  k: count()\n",
                          "ts:timestamp,k:int64", NULL, "k:int64", K1, "ts");
    EXPECT_ERR(err, "already a key");
    op_free(&r);
    err = op_plan(&r, &rv_op_window_aggregate, "id: w\nwindow: {tumbling: 10s}\naggregates:\n  x: requests\n",
                          "ts:timestamp,k:int64,requests:int64", NULL, "k:int64", K1, "ts");
    cr_expect_not_null(err, "a bare field outside an aggregate must be rejected");
    rv_err_free(err);
    op_free(&r);
}

/* Reference for random_input_matches_reference: one (key, window) bucket. */
typedef struct ref_bucket {
    int64_t key, start, n, nv, sum, min, max;
    int seq;
    bool emitted;
} ref_bucket;

static int ref_cmp(const void *a, const void *b)
{
    const ref_bucket *x = *(ref_bucket *const *)a, *y = *(ref_bucket *const *)b;
    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    return x->seq - y->seq;
}

/* Appends, in firing order, the reference rows of every bucket whose window
 * ends at or before wm + 1. */
static void ref_fire(ref_bucket *bk, int nb, int64_t size, int64_t wm, char **out, size_t *len)
{
    ref_bucket **due = malloc((size_t)(nb + 1) * sizeof(*due));
    int nd = 0;
    for (int i = 0; i < nb; i++)
        if (!bk[i].emitted && bk[i].start + size - 1 <= wm)
            due[nd++] = &bk[i];
    qsort(due, (size_t)nd, sizeof(*due), ref_cmp);
    for (int i = 0; i < nd; i++) {
        ref_bucket *b = due[i];
        b->emitted = true;
        *out = rv_xrealloc(*out, *len + 200);
        if (b->nv)
            *len += (size_t)sprintf(*out + *len, "%" PRId64 "|%" PRId64 "|%" PRId64 "|%" PRId64
                                    "|%" PRId64 "|%" PRId64 "|%" PRId64 "\n",
                                    b->key, b->start, b->start + size, b->n, b->sum, b->min, b->max);
        else
            *len += (size_t)sprintf(*out + *len, "%" PRId64 "|%" PRId64 "|%" PRId64 "|%" PRId64
                                    "|~|~|~\n",
                                    b->key, b->start, b->start + size, b->n);
    }
    free(due);
}

static int64_t ref_floor(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && a < 0) ? q - 1 : q;
}

Test(window_aggregate, random_input_matches_reference)
{
    enum { NROWS = 20000, BATCH = 100, SIZE = 100, LAG = 40 };
    op_run r;
    cr_assert_null(op_plan(&r, &rv_op_window_aggregate,
                           "window: {tumbling: 100ms}\naggregates:\n  n: count()\n  s: sum(v)\n"
                           "  mn: min(v)\n  mx: max(v)\n",
                           "ts:timestamp,k:int64,v:int64", NULL, "k:int64", K1, "ts"));
    op_open(&r);
    ref_bucket *bk = calloc(NROWS, sizeof(ref_bucket));
    int nb = 0, seq = 0;
    char *want = rv_xmalloc(1);
    size_t wlen = 0;
    want[0] = 0;
    char *got = rv_xmalloc(1);
    size_t glen = 0;
    got[0] = 0;
    int seen = 0;
    int64_t wm = RV_WATERMARK_MIN, max_ts = INT64_MIN;
    uint64_t seed = 99;
    rv_batch *b = rv_batch_new(r.ctx.in[0], BATCH);
    for (int i = 0; i < NROWS; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        uint32_t x = (uint32_t)(seed >> 33);
        /* Times run from -5000 upwards with up to 60 ms of disorder, so a
         * few rows arrive after their window fired (lag 40). */
        int64_t ts = -5000 + i / 2 - (int64_t)(x % 61);
        int64_t key = (int64_t)((x >> 8) % 17) - 3;
        bool vnull = (x >> 16) % 10 == 0;
        int64_t v = (int64_t)((x >> 20) % 1000) - 500;
        char row[96];
        if (vnull)
            sprintf(row, "%" PRId64 "|%" PRId64 "|~", ts, key);
        else
            sprintf(row, "%" PRId64 "|%" PRId64 "|%" PRId64, ts, key, v);
        add_row(b, row);
        /* reference */
        if (ts > max_ts)
            max_ts = ts;
        int64_t start = ref_floor(ts, SIZE) * SIZE;
        if (start + SIZE - 1 > wm) {
            int j;
            for (j = 0; j < nb; j++)
                if (!bk[j].emitted && bk[j].key == key && bk[j].start == start)
                    break;
            if (j == nb)
                bk[nb++] = (ref_bucket){.key = key, .start = start, .seq = seq++};
            bk[j].n++;
            if (!vnull) {
                bk[j].sum += v;
                bk[j].min = bk[j].nv ? (v < bk[j].min ? v : bk[j].min) : v;
                bk[j].max = bk[j].nv ? (v > bk[j].max ? v : bk[j].max) : v;
                bk[j].nv++;
            }
        }
        if (b->nrows == BATCH) {
            cr_assert_eq(r.pl->process(r.state, &r.ctx, 0, b), RV_OK);
            rv_batch_unref(b);
            b = rv_batch_new(r.ctx.in[0], BATCH);
            wm = max_ts - LAG;
            cr_assert_eq(r.pl->on_watermark(r.state, &r.ctx, wm), RV_OK);
            ref_fire(bk, nb, SIZE, wm, &want, &wlen);
            /* What fired at this watermark, then a marker, on both sides. */
            char *part = dump_from(&r, seen);
            seen = r.ctx.nemitted;
            got = rv_xrealloc(got, glen + strlen(part) + 32);
            glen += (size_t)sprintf(got + glen, "%s@%" PRId64 "\n", part, wm);
            free(part);
            want = rv_xrealloc(want, wlen + 32);
            wlen += (size_t)sprintf(want + wlen, "@%" PRId64 "\n", wm);
        }
    }
    rv_batch_unref(b);
    cr_assert_eq(r.pl->on_watermark(r.state, &r.ctx, RV_WATERMARK_MAX), RV_OK);
    cr_assert_eq(r.pl->finish(r.state, &r.ctx), RV_OK);
    ref_fire(bk, nb, SIZE, RV_WATERMARK_MAX, &want, &wlen);
    char *part = dump_from(&r, seen);
    got = rv_xrealloc(got, glen + strlen(part) + 1);
    strcpy(got + glen, part);
    free(part);
    cr_expect_gt(wlen, 1000);
    cr_expect_str_eq(got, want);
    free(got);
    free(want);
    free(bk);
    op_free(&r);
}

Test(window_aggregate, key_named_like_window_bound_is_rejected)
{
    op_run r;
    static const char *KW[] = {"window_start"};
    rv_err *err = op_plan(&r, &rv_op_window_aggregate,
                          "key_by: [window_start]\nwindow: {tumbling: 10s}\naggregates: {n: count()}\n",
                          "ts:timestamp,window_start:timestamp", NULL, "window_start:timestamp", KW,
                          "ts");
    EXPECT_ERR(err, "job.yaml:1:9: operator 'op': a key cannot be named 'window_start'");
    op_free(&r);
}
