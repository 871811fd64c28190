/* Unit tests of keyed-state snapshots (rv_state_snapshot / rv_state_restore):
 * round trips between both backends (with state and timers spilled to
 * RocksDB), splitting one snapshot by key-group ranges as rescaling does,
 * expired entries left out, and truncated or corrupted streams rejected.
 * Expectations come from a model kept by the test. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rv_file.h"
#include "rv_hash.h"
#include "rv_mem.h"
#include "rv_state.h"

#define MAXP 128
#define NKEYS 400
#define NNS 3

typedef struct tkey {
    uint8_t buf[16];
    size_t len;
    uint64_t hash;
    uint16_t kg;
} tkey;

static tkey keys[NKEYS];

static void make_keys(void)
{
    for (int i = 0; i < NKEYS; i++) {
        rv_column c;
        rv_col_init(&c, RV_T_INT64, 1);
        rv_col_set_i64(&c, 0, i * 7919);
        uint8_t *buf = NULL;
        size_t len = 0, cap = 0;
        rv_key_encode(&c, 1, 0, &buf, &len, &cap);
        memcpy(keys[i].buf, buf, len);
        keys[i].len = len;
        uint8_t *scratch = NULL;
        size_t scap = 0;
        rv_hash_rows(&c, 1, 1, &keys[i].hash, &scratch, &scap);
        keys[i].kg = (uint16_t)rv_key_group(keys[i].hash, MAXP);
        free(buf);
        free(scratch);
        rv_col_fini(&c);
    }
}

static rv_skey sk(int i)
{
    return (rv_skey){.key = keys[i].buf, .len = (uint32_t)keys[i].len, .kg = keys[i].kg, .hash = keys[i].hash};
}

/* The model: value[i][ns] (length 0 = absent), and the timers in the order registered. */
typedef struct model {
    char value[NKEYS][NNS][40];
    int64_t expires[NKEYS][NNS];
    struct {
        int d, key;
        int64_t ns, time;
    } timers[4000];
    int ntimers;
} model;

static char dir_tmpl[] = "/tmp/rv_snap_test_XXXXXX";
static char *dir;

static void setup(void)
{
    strcpy(dir_tmpl, "/tmp/rv_snap_test_XXXXXX");
    dir = mkdtemp(dir_tmpl);
    cr_assert_not_null(dir);
    make_keys();
}

static void teardown(void)
{
    rv_err *err = rv_file_remove_tree(dir);
    rv_err_free(err);
}

TestSuite(state_snap, .init = setup, .fini = teardown);

static rv_state *open_state(rv_state_backend b, int64_t budget, const char *name)
{
    rv_state_conf conf = {.backend = b, .memory_budget = budget};
    char *path = rv_xasprintf("%s/%s", dir, name);
    rv_state *s = NULL;
    rv_err *err = rv_state_open(&conf, path, "snap-test", &s);
    free(path);
    cr_assert_null(err, "%s", err ? rv_err_msg(err) : "");
    return s;
}

static void maintain(rv_state *s)
{
    rv_err *err = rv_state_maintain(s);
    cr_assert_null(err, "%s", err ? rv_err_msg(err) : "");
}

/* Fills s and m with values (some with an expiry) and timers. */
static void fill(rv_state *s, model *m, unsigned seed)
{
    memset(m, 0, sizeof(*m));
    srand(seed);
    for (int op = 0; op < 6000; op++) {
        int i = rand() % NKEYS, ns = rand() % NNS;
        rv_skey k = sk(i);
        if (rand() % 10 == 0) {
            rv_value_delete(s, 0, &k, ns);
            m->value[i][ns][0] = 0;
        } else {
            snprintf(m->value[i][ns], sizeof(m->value[i][ns]), "v%d-%d-%d", i, ns, op);
            rv_value_put(s, 0, &k, ns, m->value[i][ns], (uint32_t)strlen(m->value[i][ns]));
            m->expires[i][ns] = rand() % 5 == 0 ? 1000 + rand() % 1000 : RV_STATE_NO_EXPIRY;
            rv_value_set_expiry(s, 0, &k, ns, m->expires[i][ns]);
        }
        if (op % 2 == 0 && m->ntimers < 4000) {
            int d = rand() % 2;
            int64_t t = rand() % 50;
            rv_timer_register(s, (rv_timer_domain)d, &k, ns, t);
            m->timers[m->ntimers].d = d;
            m->timers[m->ntimers].key = i;
            m->timers[m->ntimers].ns = ns;
            m->timers[m->ntimers].time = t;
            m->ntimers++;
        }
        if (op % 50 == 0)
            maintain(s);
    }
    maintain(s);
}

/* Values of key groups [lo, hi) in s equal the model's at TTL clock `now`. */
static void check_values(rv_state *s, const model *m, int64_t now, int lo, int hi)
{
    for (int i = 0; i < NKEYS; i++) {
        rv_skey k = sk(i);
        bool mine = k.kg >= lo && k.kg < hi;
        for (int ns = 0; ns < NNS; ns++) {
            uint32_t len = 0;
            const uint8_t *v = rv_value_get(s, 0, &k, ns, &len);
            bool live = m->value[i][ns][0] && m->expires[i][ns] > now;
            if (!mine || !live) {
                cr_assert_null(v, "key %d ns %d (kg %d, range [%d,%d)) should be absent", i, ns, k.kg, lo, hi);
                continue;
            }
            cr_assert_not_null(v, "key %d ns %d missing", i, ns);
            cr_assert_eq(len, strlen(m->value[i][ns]));
            cr_assert(memcmp(v, m->value[i][ns], len) == 0, "key %d ns %d: value differs", i, ns);
        }
    }
}

/* The timers of domain d and key groups [lo, hi) pop from s in the model's order. */
static void check_timers(rv_state *s, const model *m, int d, int lo, int hi)
{
    /* Model order: by time, then registration. */
    int order[4000], n = 0;
    for (int64_t t = 0; t < 50; t++)
        for (int j = 0; j < m->ntimers; j++)
            if (m->timers[j].d == d && m->timers[j].time == t && keys[m->timers[j].key].kg >= lo &&
                keys[m->timers[j].key].kg < hi)
                order[n++] = j;
    rv_skey k;
    int64_t ns, time;
    for (int j = 0; j < n; j++) {
        cr_assert(rv_timer_pop(s, (rv_timer_domain)d, INT64_MAX, &k, &ns, &time), "timer %d of %d missing", j, n);
        int want = order[j];
        cr_assert_eq(time, m->timers[want].time, "timer %d: time", j);
        cr_assert_eq(ns, m->timers[want].ns, "timer %d: ns", j);
        cr_assert_eq(k.len, keys[m->timers[want].key].len);
        cr_assert(memcmp(k.key, keys[m->timers[want].key].buf, k.len) == 0, "timer %d: key", j);
    }
    cr_assert_not(rv_timer_pop(s, (rv_timer_domain)d, INT64_MAX, &k, &ns, &time), "no timers beyond the model's");
}

static char *snapshot_to_file(rv_state *s, const char *name, uint64_t *bytes)
{
    char *path = rv_xasprintf("%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    rv_err *err = rv_state_snapshot(s, f, "snap-test", bytes);
    cr_assert_null(err, "%s", err ? rv_err_msg(err) : "");
    fclose(f);
    return path;
}

static rv_err *restore_from(rv_state *s, const char *path, int lo, int hi)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f);
    rv_err *err = rv_state_restore(s, f, "snap-test", lo, hi);
    fclose(f);
    return err;
}

static rv_err *restore_incremental(rv_state *s, const char *path, int lo, int hi, const char *db, bool adopted)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f);
    rv_err *err = rv_state_restore_incremental(s, f, "snap-test", lo, hi, db, adopted);
    fclose(f);
    return err;
}

static void round_trip(rv_state_backend from, int64_t from_budget, rv_state_backend to, int64_t to_budget)
{
    static model m;
    rv_state *src = open_state(from, from_budget, "src");
    fill(src, &m, 42);
    rv_state_advance_time(src, 1500); /* some entries expire before the snapshot */
    uint64_t bytes = 0;
    char *path = snapshot_to_file(src, "snap", &bytes);
    cr_assert_gt(bytes, 8);
    rv_state *dst = open_state(to, to_budget, "dst");
    rv_err *err = restore_from(dst, path, 0, MAXP);
    cr_assert_null(err, "%s", err ? rv_err_msg(err) : "");
    maintain(dst);
    check_values(dst, &m, 1500, 0, MAXP);
    check_values(src, &m, 1500, 0, MAXP); /* the snapshot left the source intact */
    for (int d = 0; d < 2; d++) {
        check_timers(dst, &m, d, 0, MAXP);
        check_timers(src, &m, d, 0, MAXP);
    }
    rv_state_close(src);
    rv_state_close(dst);
    free(path);
}

Test(state_snap, memory_to_memory) { round_trip(RV_STATE_MEMORY, 1 << 28, RV_STATE_MEMORY, 1 << 28); }

/* Incremental: spilled state goes into a RocksDB checkpoint plus a timers
 * stream; restoring both (whole, or split in two key-group ranges) gives
 * the model back; state still in memory only is refused (done = false). */
Test(state_snap, incremental_rocksdb_checkpoint_round_trips_and_splits)
{
    static model m;
    rv_state *mem = open_state(RV_STATE_MEMORY, 1 << 28, "mem");
    char *nodb = rv_xasprintf("%s/nodb", dir);
    FILE *f = tmpfile();
    bool done = true;
    uint64_t bytes = 0;
    rv_err *err = rv_state_snapshot_incremental(mem, nodb, f, "snap-test", &bytes, &done);
    cr_assert_null(err);
    cr_assert_not(done, "no RocksDB: nothing incremental to take");
    fclose(f);
    rv_state_close(mem);

    rv_state *src = open_state(RV_STATE_ROCKSDB, 65536, "src");
    fill(src, &m, 7);
    rv_state_advance_time(src, 1500);
    char *db = rv_xasprintf("%s/chkdb", dir), *timers = rv_xasprintf("%s/timers", dir);
    f = fopen(timers, "wb");
    err = rv_state_snapshot_incremental(src, db, f, "snap-test", &bytes, &done);
    cr_assert_null(err, "%s", err ? rv_err_msg(err) : "");
    cr_assert(done, "the spilled state was checkpointed incrementally");
    fclose(f);
    int cut = MAXP / 3;
    for (int part = 0; part < 2; part++) {
        int lo = part ? cut : 0, hi = part ? MAXP : cut;
        rv_state *dst = open_state(RV_STATE_MEMORY, 1 << 28, part ? "dst1" : "dst0");
        err = rv_state_restore_db(dst, db, "snap-test", lo, hi);
        cr_assert_null(err, "%s", err ? rv_err_msg(err) : "");
        err = restore_incremental(dst, timers, lo, hi, db, false);
        cr_assert_null(err, "%s", err ? rv_err_msg(err) : "");
        rv_state_advance_time(dst, 1500);
        maintain(dst);
        check_values(dst, &m, 1500, lo, hi);
        for (int d = 0; d < 2; d++)
            check_timers(dst, &m, d, lo, hi);
        rv_state_close(dst);
    }
    check_values(src, &m, 1500, 0, MAXP); /* the source is intact */
    rv_state *nodb2 = open_state(RV_STATE_MEMORY, 1 << 28, "nodb2");
    err = restore_from(nodb2, timers, 0, MAXP);
    cr_assert(err && strstr(rv_err_msg(err), "without its RocksDB checkpoint"), "%s", err ? rv_err_msg(err) : "");
    rv_err_free(err);
    rv_state_close(nodb2);
    /* The whole range: adopted as the new instance's database. */
    rv_state *adopt = open_state(RV_STATE_ROCKSDB, 65536, "adopt");
    bool adopted = false;
    err = rv_state_adopt_db(adopt, db, &adopted);
    cr_assert_null(err, "%s", err ? rv_err_msg(err) : "");
    cr_assert(adopted);
    err = restore_incremental(adopt, timers, 0, MAXP, NULL, true);
    cr_assert_null(err, "%s", err ? rv_err_msg(err) : "");
    rv_state_advance_time(adopt, 1500);
    check_values(adopt, &m, 1500, 0, MAXP);
    for (int d = 0; d < 2; d++)
        check_timers(adopt, &m, d, 0, MAXP);
    /* Deleting what the snapshot's stream restored over the adopted
     * database's older versions: they must not come back after eviction. */
    for (int i = 0; i < NKEYS; i++) {
        rv_skey k = sk(i);
        for (int ns = 0; ns < NNS; ns++)
            if (i % 2 == 0) {
                rv_value_delete(adopt, 0, &k, ns);
                m.value[i][ns][0] = 0;
            }
        if (i % 50 == 0)
            maintain(adopt);
    }
    maintain(adopt);
    check_values(adopt, &m, 1500, 0, MAXP);
    rv_state_close(adopt);
    rv_state_close(src);
    free(db);
    free(timers);
    free(nodb);
}
Test(state_snap, spilled_rocksdb_to_memory) { round_trip(RV_STATE_ROCKSDB, 65536, RV_STATE_MEMORY, 1 << 28); }
Test(state_snap, memory_to_spilling_rocksdb) { round_trip(RV_STATE_MEMORY, 1 << 28, RV_STATE_ROCKSDB, 65536); }

Test(state_snap, split_by_key_group_ranges)
{
    static model m;
    rv_state *src = open_state(RV_STATE_ROCKSDB, 65536, "src");
    fill(src, &m, 7);
    char *path = snapshot_to_file(src, "snap", NULL);
    rv_state_close(src);
    /* Rescaling to three instances: each takes its range of key groups. */
    int first, end;
    for (int i = 0; i < 3; i++) {
        rv_key_group_range(i, MAXP, 3, &first, &end);
        char name[16];
        snprintf(name, sizeof(name), "dst%d", i);
        rv_state *dst = open_state(i == 1 ? RV_STATE_MEMORY : RV_STATE_ROCKSDB, 65536, name);
        rv_err *err = restore_from(dst, path, first, end);
        cr_assert_null(err, "%s", err ? rv_err_msg(err) : "");
        check_values(dst, &m, INT64_MIN, first, end);
        for (int d = 0; d < 2; d++)
            check_timers(dst, &m, d, first, end);
        rv_state_close(dst);
    }
    free(path);
}

Test(state_snap, truncated_or_corrupted_streams_are_rejected)
{
    static model m;
    rv_state *src = open_state(RV_STATE_MEMORY, 1 << 28, "src");
    fill(src, &m, 3);
    uint64_t bytes = 0;
    char *path = snapshot_to_file(src, "snap", &bytes);
    rv_state_close(src);
    size_t len = 0;
    char *data = NULL;
    rv_err *err = rv_file_read(path, 1 << 30, &data, &len);
    cr_assert_null(err);
    cr_assert_eq(len, bytes);
    char *bad = rv_xasprintf("%s/bad", dir);
    /* Truncations at many lengths, and single flipped bytes. */
    for (int trial = 0; trial < 40; trial++) {
        size_t cut = trial < 20 ? (size_t)rand() % len : len;
        FILE *f = fopen(bad, "wb");
        fwrite(data, 1, cut, f);
        if (trial >= 20) {
            size_t at = (size_t)rand() % len;
            fseek(f, (long)at, SEEK_SET);
            fputc(data[at] ^ (1 << (trial % 8)), f);
        }
        fclose(f);
        rv_state *dst = open_state(RV_STATE_MEMORY, 1 << 28, "dst");
        err = restore_from(dst, bad, 0, MAXP);
        cr_assert_not_null(err, "trial %d: a damaged snapshot was accepted", trial);
        cr_assert(strstr(rv_err_msg(err), "snap-test: ") == rv_err_msg(err), "%s", rv_err_msg(err));
        rv_err_free(err);
        rv_state_close(dst);
    }
    /* Bytes after the end. */
    FILE *f = fopen(bad, "wb");
    fwrite(data, 1, len, f);
    fputc('x', f);
    fclose(f);
    rv_state *dst = open_state(RV_STATE_MEMORY, 1 << 28, "dst");
    err = restore_from(dst, bad, 0, MAXP);
    cr_assert_not_null(err);
    cr_assert(strstr(rv_err_msg(err), "after its end"), "%s", rv_err_msg(err));
    rv_err_free(err);
    rv_state_close(dst);
    free(bad);
    free(data);
    free(path);
}

/* An entry the incremental stream restores over an older version in an
 * adopted database, then deleted, stays deleted after eviction. */
Test(state_snap, deleting_a_restored_entry_hides_the_adopted_databases_older_version)
{
    rv_state *src = open_state(RV_STATE_ROCKSDB, 65536, "src");
    char v[100];
    for (int i = 0; i < NKEYS; i++)
        for (int ns = 0; ns < NNS; ns++) {
            rv_skey k = sk(i);
            memset(v, 'a' + ns, sizeof(v));
            rv_value_put(src, 0, &k, ns, v, sizeof(v));
            maintain(src); /* most entries go to RocksDB */
        }
    for (int i = 0; i < 50; i++) { /* newer versions, still dirty in the cache */
        rv_skey k = sk(i);
        rv_value_put(src, 0, &k, 0, "new", 3);
    }
    char *db = rv_xasprintf("%s/chkdb", dir), *stream = rv_xasprintf("%s/stream", dir);
    FILE *f = fopen(stream, "wb");
    bool done = false;
    uint64_t bytes = 0;
    rv_err *err = rv_state_snapshot_incremental(src, db, f, "snap-test", &bytes, &done);
    cr_assert_null(err, "%s", err ? rv_err_msg(err) : "");
    cr_assert(done);
    fclose(f);
    rv_state_close(src);
    rv_state *dst = open_state(RV_STATE_ROCKSDB, 65536, "dst");
    cr_assert_null(rv_state_adopt_db(dst, db, &done));
    cr_assert(done);
    cr_assert_null(restore_incremental(dst, stream, 0, MAXP, NULL, true));
    for (int i = 0; i < 50; i++) {
        rv_skey k = sk(i);
        uint32_t len = 0;
        const uint8_t *got = rv_value_get(dst, 0, &k, 0, &len);
        cr_assert(got && len == 3 && memcmp(got, "new", 3) == 0, "key %d: the stream's version", i);
        rv_value_delete(dst, 0, &k, 0);
    }
    for (int i = 0; i < NKEYS; i++) { /* churn: evicts the deletions */
        rv_skey k = sk(i);
        uint32_t len = 0;
        rv_value_get(dst, 0, &k, 1, &len);
        maintain(dst);
    }
    for (int i = 0; i < 50; i++) {
        rv_skey k = sk(i);
        uint32_t len = 0;
        cr_assert_null(rv_value_get(dst, 0, &k, 0, &len), "key %d: deleted, the older version must not come back", i);
    }
    rv_state_close(dst);
    free(db);
    free(stream);
}

/* Restoring state larger than the budget spills as it goes. */
Test(state_snap, restoring_more_than_the_budget_spills)
{
    rv_state *src = open_state(RV_STATE_MEMORY, (int64_t)1 << 30, "src");
    char value[1000];
    for (int i = 0; i < NKEYS; i++)
        for (int ns = 0; ns < 100; ns++) {
            rv_skey k = sk(i);
            memset(value, 'a' + (i + ns) % 26, sizeof(value));
            rv_value_put(src, 0, &k, ns, value, sizeof(value));
        }
    char *path = snapshot_to_file(src, "big", NULL);
    rv_state_close(src);
    int64_t budget = 1 << 20;
    rv_state *dst = open_state(RV_STATE_ROCKSDB, budget, "dst");
    rv_err *err = restore_from(dst, path, 0, MAXP);
    cr_assert_null(err, "%s", err ? rv_err_msg(err) : "");
    maintain(dst);
    rv_state_stats st;
    rv_state_get_stats(dst, &st);
    cr_assert_leq(st.bytes, (size_t)budget, "%zu bytes in memory after restoring 40 MB", st.bytes);
    cr_assert_gt(st.evicted, 30000);
    for (int i = 0; i < NKEYS; i += 37)
        for (int ns = 0; ns < 100; ns += 13) {
            rv_skey k = sk(i);
            uint32_t len = 0;
            const uint8_t *v = rv_value_get(dst, 0, &k, ns, &len);
            cr_assert_not_null(v, "key %d ns %d", i, ns);
            cr_assert_eq(len, sizeof(value));
            cr_assert_eq(v[0], 'a' + (i + ns) % 26);
        }
    rv_state_close(dst);
    free(path);
}

/* Timers at very many distinct times keep ~90 bytes each in memory: hot
 * entries still keep a share of the budget instead of all being evicted
 * on every maintain. */
Test(state_snap, many_distinct_timer_times_leave_room_for_hot_entries)
{
    int64_t budget = 1 << 20;
    rv_state *s = open_state(RV_STATE_ROCKSDB, budget, "timers");
    for (int t = 0; t < 20000; t++) {
        rv_skey k = sk(t % NKEYS);
        rv_timer_register(s, RV_TIMER_EVENT, &k, 0, 1000000 + t);
    }
    for (int round = 0; round < 5; round++) {
        for (int i = 0; i < NKEYS; i++) {
            rv_skey k = sk(i);
            rv_value_put(s, 0, &k, 0, "hot", 3);
        }
        maintain(s);
    }
    rv_state_stats st;
    rv_state_get_stats(s, &st);
    cr_assert_gt(st.entries, NKEYS / 2, "only %zu of %d hot entries stayed in memory", st.entries, NKEYS);
    cr_assert_eq(rv_timer_count(s, RV_TIMER_EVENT), 20000);
    rv_state_close(s);
}
