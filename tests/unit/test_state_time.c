/* Unit tests of rv_state's handling of time: time-to-live (expiry on
 * read, after eviction to RocksDB, and older RocksDB copies never coming
 * back) and timers (pop order, domains, spilling far-future timers and
 * reading them back). Both backends; expectations from hand-computed
 * cases and a reference list of pending timers kept by the test. */
#include "state_test_util.h"

TestSuite(state_time, .init = tmp_init, .fini = tmp_fini, .timeout = 60);

/* ---- time-to-live ---- */

static void ttl_basic(rv_state_backend backend)
{
    rv_state *s = open_state(backend, SMALL_BUDGET);
    tkey k[13] = {{0}};
    for (int i = 0; i < 13; i++)
        tkey_int(&k[i], 100 + i);
    uint8_t v[16];
    /* k[i] (i < 10) expires at 10 * i */
    for (int i = 0; i < 13; i++) {
        memset(v, 'a' + i, sizeof(v));
        put_bytes(s, 0, &k[i], 0, v, sizeof(v));
        rv_skey x = skc(&k[i]);
        if (i < 10)
            rv_value_set_expiry(s, 0, &x, 0, 10 * i);
        else if (i == 10) { /* set, then cleared again */
            rv_value_set_expiry(s, 0, &x, 0, 5);
            rv_value_set_expiry(s, 0, &x, 0, RV_STATE_NO_EXPIRY);
        }
        scrub();
    }
    int64_t clock = INT64_MIN;
    int64_t steps[] = {0, 45, 30 /* back: ignored */, 50, 89, 1000000};
    for (size_t st = 0; st < sizeof(steps) / sizeof(steps[0]); st++) {
        rv_state_advance_time(s, steps[st]);
        if (steps[st] > clock)
            clock = steps[st];
        for (int pass = 0; pass < 2; pass++) {
            for (int i = 0; i < 13; i++) {
                char what[64];
                snprintf(what, sizeof(what), "ttl: key %d at time %lld (pass %d)", i, (long long)steps[st],
                         pass);
                bool expired = i < 10 && 10 * i <= clock;
                memset(v, 'a' + i, sizeof(v));
                expect_value(s, 0, &k[i], 0, expired ? NULL : v, sizeof(v), what);
            }
            maintain_ok(s); /* frees the expired ones; the answers must not change */
        }
    }
    /* an expired entry is absent: upsert creates it afresh and it stays */
    rv_skey x = skc(&k[0]);
    uint32_t len = 0;
    bool created = false;
    uint8_t *p = rv_value_upsert(s, 0, &x, 0, 4, &len, &created);
    scrub();
    cr_assert(created && len == 4 && p, "upsert of an expired entry: created %d len %u", created, len);
    cr_assert(p[0] == 0 && p[1] == 0 && p[2] == 0 && p[3] == 0, "upsert of an expired entry kept old bytes");
    memcpy(p, "new!", 4);
    expect_value(s, 0, &k[0], 0, "new!", 4, "re-created after expiry");
    maintain_ok(s);
    expect_value(s, 0, &k[0], 0, "new!", 4, "re-created after expiry, after maintain");
    /* setting the expiry of an expired or absent entry does not bring it back */
    x = skc(&k[1]);
    rv_value_set_expiry(s, 0, &x, 0, RV_STATE_NO_EXPIRY);
    scrub();
    expect_value(s, 0, &k[1], 0, NULL, 0, "set_expiry on an expired entry");
    x = skc(&k[1]);
    rv_value_set_expiry(s, 1, &x, 0, RV_STATE_NO_EXPIRY);
    scrub();
    expect_value(s, 1, &k[1], 0, NULL, 0, "set_expiry on an absent entry");
    maintain_ok(s);
    expect_value(s, 0, &k[1], 0, NULL, 0, "set_expiry on an expired entry, after maintain");

    /* a list with an expiry: after it, adding starts a new list */
    x = skc(&k[2]);
    rv_list_add(s, 2, &x, 7, "one", 3);
    rv_list_add(s, 2, &x, 7, "two", 3);
    rv_value_set_expiry(s, 2, &x, 7, clock + 10);
    scrub();
    rv_state_advance_time(s, clock + 10);
    expect_value(s, 2, &k[2], 7, NULL, 0, "expired list");
    x = skc(&k[2]);
    rv_list_add(s, 2, &x, 7, "three", 5);
    scrub();
    x = skc(&k[2]);
    const uint8_t *l = rv_value_get(s, 2, &x, 7, &len);
    scrub();
    cr_assert_not_null(l, "list re-created after expiry is absent");
    uint32_t off = 0, elen = 0;
    const uint8_t *e = NULL;
    cr_assert(rv_list_next(l, len, &off, &e, &elen) && elen == 5 && memcmp(e, "three", 5) == 0,
              "list re-created after expiry: wrong first element");
    cr_assert(!rv_list_next(l, len, &off, &e, &elen), "list re-created after expiry kept its old elements");

    /* the clock never goes back: an expired entry stays absent */
    int64_t t0 = clock + 100;
    memset(v, 'z', sizeof(v));
    put_bytes(s, 5, &k[11], 0, v, sizeof(v));
    x = skc(&k[11]);
    rv_value_set_expiry(s, 5, &x, 0, t0 + 60);
    scrub();
    rv_state_advance_time(s, t0 + 70);
    expect_value(s, 5, &k[11], 0, NULL, 0, "expired at t0 + 70");
    rv_state_advance_time(s, t0 + 55);
    expect_value(s, 5, &k[11], 0, NULL, 0, "after moving the clock back to t0 + 55");
    maintain_ok(s);
    expect_value(s, 5, &k[11], 0, NULL, 0, "after moving the clock back and maintain");
    rv_state_close(s);
    for (int i = 0; i < 13; i++)
        tkey_free(&k[i]);
}

Test(state_time, ttl_memory)
{
    ttl_basic(RV_STATE_MEMORY);
}

Test(state_time, ttl_rocksdb)
{
    ttl_basic(RV_STATE_ROCKSDB);
}

/* Expiry of entries that were evicted to RocksDB. */
static void ttl_evicted(rv_state_backend backend)
{
    enum { N = 200 };
    rv_state *s = open_state(backend, SMALL_BUDGET);
    tkey *k = calloc(N + 4, sizeof(tkey));
    cr_assert_not_null(k);
    for (int i = 0; i < N + 4; i++)
        tkey_int(&k[i], 5000 + i);
    uint8_t v[48];
#define TTL_VAL(i) memset(v, (int)(i) + 1, sizeof(v))
    /* k[i], i < N/2: expires at 1000 + i; N/2 <= i < N: never */
    for (int i = 0; i < N; i++) {
        TTL_VAL(i);
        put_bytes(s, 0, &k[i], 3, v, sizeof(v));
        if (i < N / 2) {
            rv_skey x = skc(&k[i]);
            rv_value_set_expiry(s, 0, &x, 3, 1000 + i);
            scrub();
        }
    }
    /* R = k[N], P = k[N+1], Q = k[N+2]: no expiry yet */
    for (int i = N; i < N + 3; i++) {
        TTL_VAL(i);
        put_bytes(s, 0, &k[i], 3, v, sizeof(v));
    }
    fill(s, 9, 0, 10 * SMALL_BUDGET);
    rv_state_stats st = get_stats(s);
    if (backend == RV_STATE_ROCKSDB)
        cr_assert(st.evicted > 0 && st.db_open);
    uint64_t hits0 = st.db_hits;

    /* P and Q get their expiry while they live in RocksDB only */
    rv_skey x = skc(&k[N + 1]);
    rv_value_set_expiry(s, 0, &x, 3, 1400);
    scrub();
    x = skc(&k[N + 2]);
    rv_value_set_expiry(s, 0, &x, 3, 5000);
    scrub();
    /* R is read back (clean in the cache), then given an expiry */
    TTL_VAL(N);
    expect_value(s, 0, &k[N], 3, v, sizeof(v), "R read back");
    x = skc(&k[N]);
    rv_value_set_expiry(s, 0, &x, 3, 1200);
    scrub();
    maintain_ok(s);

    rv_state_advance_time(s, 1050);
    for (int i = 0; i < N; i++) {
        char what[64];
        snprintf(what, sizeof(what), "evicted entry %d at time 1050", i);
        TTL_VAL(i);
        expect_value(s, 0, &k[i], 3, i < N / 2 && 1000 + i <= 1050 ? NULL : v, sizeof(v), what);
        if (i % 32 == 31)
            maintain_ok(s);
    }
    st = get_stats(s);
    if (backend == RV_STATE_ROCKSDB)
        cr_assert(st.db_hits > hits0, "rocksdb: the entries with expiry were not read back from RocksDB");

    /* R expires, maintain frees it from memory, more data pushes the cache
     * out: R must not come back from its older copy in RocksDB */
    rv_state_advance_time(s, 1500);
    maintain_ok(s);
    fill(s, 9, 100000, 10 * SMALL_BUDGET);
    expect_value(s, 0, &k[N], 3, NULL, 0, "R after expiry and eviction");
    expect_value(s, 0, &k[N + 1], 3, NULL, 0, "P (expiry set while evicted) after expiry");
    TTL_VAL(N + 2);
    expect_value(s, 0, &k[N + 2], 3, v, sizeof(v), "Q (expiry set while evicted) before expiry");
    for (int i = 0; i < N; i++) {
        char what[64];
        snprintf(what, sizeof(what), "entry %d at time 1500", i);
        TTL_VAL(i);
        expect_value(s, 0, &k[i], 3, i < N / 2 ? NULL : v, sizeof(v), what);
    }
    maintain_ok(s);
    rv_state_advance_time(s, 5000);
    expect_value(s, 0, &k[N + 2], 3, NULL, 0, "Q after expiry");
    rv_state_close(s);
    cr_assert(!path_exists(g_dir));
    for (int i = 0; i < N + 4; i++)
        tkey_free(&k[i]);
    free(k);
#undef TTL_VAL
}

Test(state_time, ttl_evicted_memory)
{
    ttl_evicted(RV_STATE_MEMORY);
}

Test(state_time, ttl_evicted_rocksdb)
{
    ttl_evicted(RV_STATE_ROCKSDB);
}

/* ---- timers ---- */

static void expect_pop(rv_state *s, rv_timer_domain d, int64_t upto, const tkey *wk, int64_t wns, int64_t wt,
                       const char *what)
{
    rv_skey k;
    memset(&k, 0, sizeof(k));
    int64_t ns = -777, t = -777;
    bool got = rv_timer_pop(s, d, upto, &k, &ns, &t);
    if (!wk) {
        cr_assert(!got, "%s: pop(upto %lld) returned a timer at %lld, expected none", what, (long long)upto,
                  (long long)t);
        return;
    }
    cr_assert(got, "%s: pop(upto %lld) returned nothing, expected time %lld", what, (long long)upto,
              (long long)wt);
    cr_assert_eq(t, wt, "%s: popped time %lld, expected %lld", what, (long long)t, (long long)wt);
    cr_assert_eq(ns, wns, "%s: popped namespace %lld, expected %lld", what, (long long)ns, (long long)wns);
    cr_assert(k.len == wk->len && k.key && memcmp(k.key, wk->buf, wk->len) == 0, "%s: popped the wrong key",
              what);
    cr_assert_eq(k.hash, wk->hash, "%s: popped key has the wrong hash", what);
    cr_assert_eq(k.kg, wk->kg, "%s: popped key has the wrong key group", what);
}

static void timers_basic(rv_state_backend backend)
{
    rv_state *s = open_state(backend, SMALL_BUDGET);
    tkey a = {0}, b = {0}, c = {0};
    tkey_int(&a, 1);
    tkey_str(&b, "b", 1);
    tkey_int(&c, -3);
    rv_skey ka = sk(&a), kb = sk(&b), kc = sk(&c);
    cr_assert_eq(rv_timer_count(s, RV_TIMER_EVENT), 0);
    cr_assert_eq(rv_timer_next(s, RV_TIMER_EVENT), INT64_MAX);
    cr_assert_eq(rv_timer_next(s, RV_TIMER_PROCESSING), INT64_MAX);
    rv_timer_register(s, RV_TIMER_EVENT, &ka, 0, 10);
    rv_timer_register(s, RV_TIMER_EVENT, &kb, 0, 5);
    rv_timer_register(s, RV_TIMER_EVENT, &kc, 0, 10);
    rv_timer_register(s, RV_TIMER_EVENT, &ka, 0, 10); /* again: not deduplicated, pops twice */
    rv_timer_register(s, RV_TIMER_EVENT, &ka, 1, 10); /* other namespace */
    rv_timer_register(s, RV_TIMER_EVENT, &kb, 0, 5);  /* again */
    rv_timer_register(s, RV_TIMER_PROCESSING, &ka, 0, 1);
    rv_timer_register(s, RV_TIMER_PROCESSING, &ka, 0, 10); /* same as an event timer, other domain */
    cr_assert_eq(rv_timer_count(s, RV_TIMER_EVENT), 6);
    cr_assert_eq(rv_timer_count(s, RV_TIMER_PROCESSING), 2);
    cr_assert_eq(rv_timer_next(s, RV_TIMER_EVENT), 5);
    cr_assert_eq(rv_timer_next(s, RV_TIMER_PROCESSING), 1);
    maintain_ok(s);
    expect_pop(s, RV_TIMER_EVENT, 4, NULL, 0, 0, "event, nothing due");
    cr_assert_eq(rv_timer_count(s, RV_TIMER_EVENT), 6);
    expect_pop(s, RV_TIMER_EVENT, 5, &b, 0, 5, "event 1");
    cr_assert_eq(rv_timer_next(s, RV_TIMER_EVENT), 5, "next after event 1: %lld",
                 (long long)rv_timer_next(s, RV_TIMER_EVENT));
    expect_pop(s, RV_TIMER_EVENT, 5, &b, 0, 5, "event 2");
    cr_assert_eq(rv_timer_count(s, RV_TIMER_EVENT), 4);
    cr_assert_eq(rv_timer_next(s, RV_TIMER_EVENT), 10,
                 "next after popping both timers at 5 (4 left at 10): %lld, expected 10",
                 (long long)rv_timer_next(s, RV_TIMER_EVENT));
    expect_pop(s, RV_TIMER_EVENT, 9, NULL, 0, 0, "event, nothing due at 9");
    cr_assert_eq(rv_timer_next(s, RV_TIMER_EVENT), 10);
    expect_pop(s, RV_TIMER_EVENT, 100, &a, 0, 10, "event 3");
    expect_pop(s, RV_TIMER_EVENT, 100, &c, 0, 10, "event 4");
    expect_pop(s, RV_TIMER_EVENT, 100, &a, 0, 10, "event 5");
    expect_pop(s, RV_TIMER_EVENT, 100, &a, 1, 10, "event 6");
    cr_assert_eq(rv_timer_count(s, RV_TIMER_EVENT), 0);
    cr_assert_eq(rv_timer_next(s, RV_TIMER_EVENT), INT64_MAX,
                 "next after popping the last event timer: %lld, expected INT64_MAX",
                 (long long)rv_timer_next(s, RV_TIMER_EVENT));
    expect_pop(s, RV_TIMER_EVENT, INT64_MAX, NULL, 0, 0, "event, empty");
    cr_assert_eq(rv_timer_next(s, RV_TIMER_EVENT), INT64_MAX);
    /* the processing-time timers are untouched */
    cr_assert_eq(rv_timer_count(s, RV_TIMER_PROCESSING), 2);
    expect_pop(s, RV_TIMER_PROCESSING, INT64_MAX, &a, 0, 1, "processing 1");
    /* a fired timer can be registered again */
    rv_timer_register(s, RV_TIMER_EVENT, &ka, 0, 10);
    cr_assert_eq(rv_timer_count(s, RV_TIMER_EVENT), 1);
    cr_assert_eq(rv_timer_next(s, RV_TIMER_EVENT), 10);
    expect_pop(s, RV_TIMER_EVENT, 10, &a, 0, 10, "event re-registered");
    expect_pop(s, RV_TIMER_PROCESSING, 10, &a, 0, 10, "processing 2");
    cr_assert_eq(rv_timer_count(s, RV_TIMER_PROCESSING), 0);
    expect_pop(s, RV_TIMER_PROCESSING, INT64_MAX, NULL, 0, 0, "processing, empty");
    cr_assert_eq(rv_timer_next(s, RV_TIMER_PROCESSING), INT64_MAX);

    /* timers count against the budget */
    rv_state_stats st0 = get_stats(s);
    for (int i = 0; i < 2000; i++)
        rv_timer_register(s, RV_TIMER_PROCESSING, &kc, i, 1000 + i);
    rv_state_stats st1 = get_stats(s);
    cr_assert(st1.bytes >= st0.bytes + 2000 * 16, "2000 timers raised the counted bytes from %zu to %zu only",
              st0.bytes, st1.bytes);
    rv_state_close(s);
    tkey_free(&a);
    tkey_free(&b);
    tkey_free(&c);
}

Test(state_time, timers_basic_memory)
{
    timers_basic(RV_STATE_MEMORY);
}

Test(state_time, timers_basic_rocksdb)
{
    timers_basic(RV_STATE_ROCKSDB);
}

typedef struct mtimer {
    int d, ki, ni;
    int64_t time;
    long seq;
} mtimer;

static void timers_random(rv_state_backend backend, uint64_t seed)
{
    enum { TK = 40, TNS = 3, NOPS = 8000 };
    static const int64_t tns[TNS] = {0, 7, -3};
    rv_state *s = open_state(backend, SMALL_BUDGET);
    tkey keys[TK];
    memset(keys, 0, sizeof(keys));
    for (int i = 0; i < TK; i++) {
        if (i % 2)
            tkey_int(&keys[i], i * 77);
        else {
            char str[16];
            int n = snprintf(str, sizeof(str), "t%d", i);
            tkey_str(&keys[i], str, (size_t)n);
        }
    }
    mtimer *tm = calloc(NOPS, sizeof(mtimer));
    cr_assert_not_null(tm);
    int ntm = 0;
    long seq = 0;
    rng r = {seed};
    tkey filler = {0};
    uint8_t v[200];
    memset(v, 7, sizeof(v));
    long pops = 0;
    for (int op = 0; op < NOPS; op++) {
        uint32_t c = rbelow(&r, 100);
        if (c < 55) {
            int d = (int)rbelow(&r, 2), ki = (int)rbelow(&r, TK), ni = (int)rbelow(&r, TNS);
            int64_t t = (int64_t)rbelow(&r, 300) - 50;
            if (ntm > 0 && rbelow(&r, 10) == 0) { /* the same timer again: it pops twice */
                const mtimer *o = &tm[rbelow(&r, (uint32_t)ntm)];
                d = o->d;
                ki = o->ki;
                ni = o->ni;
                t = o->time;
            }
            rv_skey x = skc(&keys[ki]);
            rv_timer_register(s, (rv_timer_domain)d, &x, tns[ni], t);
            scrub();
            tm[ntm++] = (mtimer){d, ki, ni, t, seq++};
        } else if (c < 90) {
            int d = (int)rbelow(&r, 2);
            int64_t upto = rbelow(&r, 10) ? (int64_t)rbelow(&r, 320) - 60 : INT64_MAX;
            int best = -1;
            for (int i = 0; i < ntm; i++)
                if (tm[i].d == d && tm[i].time <= upto &&
                    (best < 0 || tm[i].time < tm[best].time ||
                     (tm[i].time == tm[best].time && tm[i].seq < tm[best].seq)))
                    best = i;
            char what[64];
            snprintf(what, sizeof(what), "op %d: pop domain %d", op, d);
            if (best < 0) {
                expect_pop(s, (rv_timer_domain)d, upto, NULL, 0, 0, what);
            } else {
                expect_pop(s, (rv_timer_domain)d, upto, &keys[tm[best].ki], tns[tm[best].ni], tm[best].time,
                           what);
                tm[best] = tm[--ntm];
                pops++;
            }
        } else if (c < 97) { /* state traffic, so maintain evicts around the timers */
            tkey_int(&filler, op);
            put_bytes(s, 9, &filler, 0, v, sizeof(v));
        } else {
            maintain_ok(s);
        }
        for (int d = 0; d < 2; d++) {
            int64_t next = INT64_MAX;
            size_t cnt = 0;
            for (int i = 0; i < ntm; i++)
                if (tm[i].d == d) {
                    cnt++;
                    if (tm[i].time < next)
                        next = tm[i].time;
                }
            cr_assert_eq(rv_timer_count(s, (rv_timer_domain)d), cnt,
                         "op %d: domain %d: count %zu, expected %zu", op, d,
                         rv_timer_count(s, (rv_timer_domain)d), cnt);
            cr_assert_eq(rv_timer_next(s, (rv_timer_domain)d), next,
                         "op %d: domain %d: next %lld, expected %lld", op, d,
                         (long long)rv_timer_next(s, (rv_timer_domain)d), (long long)next);
        }
    }
    cr_assert(pops > 1000, "only %ld timers popped", pops);
    rv_state_stats st = get_stats(s);
    if (backend == RV_STATE_ROCKSDB)
        cr_assert(st.evicted > 0, "rocksdb: state traffic evicted nothing");
    rv_state_close(s);
    tkey_free(&filler);
    for (int i = 0; i < TK; i++)
        tkey_free(&keys[i]);
    free(tm);
}

Test(state_time, timers_random_memory)
{
    timers_random(RV_STATE_MEMORY, 77);
}

Test(state_time, timers_random_rocksdb)
{
    timers_random(RV_STATE_ROCKSDB, 78);
}

static int mtimer_cmp(const void *a, const void *b)
{
    const mtimer *x = a, *y = b;
    if (x->time != y->time)
        return x->time < y->time ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Pops every timer of domain d up to `upto` and checks them against the
 * model's due timers in (time, registration) order; removes them from the
 * model. */
static void drain(rv_state *s, int d, int64_t upto, mtimer *tm, int *ntm, const tkey *keys,
                  const int64_t *tns, mtimer *scratch)
{
    int ndue = 0, nkeep = 0;
    for (int i = 0; i < *ntm; i++) {
        if (tm[i].d == d && tm[i].time <= upto)
            scratch[ndue++] = tm[i];
        else
            tm[nkeep++] = tm[i];
    }
    *ntm = nkeep;
    qsort(scratch, (size_t)ndue, sizeof(mtimer), mtimer_cmp);
    for (int i = 0; i < ndue; i++) {
        char what[96];
        snprintf(what, sizeof(what), "domain %d upto %lld: timer %d of %d due", d, (long long)upto, i, ndue);
        expect_pop(s, (rv_timer_domain)d, upto, &keys[scratch[i].ki], tns[scratch[i].ni], scratch[i].time,
                   what);
    }
    char what[96];
    snprintf(what, sizeof(what), "domain %d upto %lld: after the %d due timers", d, (long long)upto, ndue);
    expect_pop(s, (rv_timer_domain)d, upto, NULL, 0, 0, what);
}

static void check_timer_summary(rv_state *s, const mtimer *tm, int ntm, const char *what)
{
    for (int d = 0; d < 2; d++) {
        int64_t next = INT64_MAX;
        size_t cnt = 0;
        for (int i = 0; i < ntm; i++)
            if (tm[i].d == d) {
                cnt++;
                if (tm[i].time < next)
                    next = tm[i].time;
            }
        cr_assert_eq(rv_timer_count(s, (rv_timer_domain)d), cnt, "%s: domain %d: count %zu, expected %zu",
                     what, d, rv_timer_count(s, (rv_timer_domain)d), cnt);
        cr_assert_eq(rv_timer_next(s, (rv_timer_domain)d), next, "%s: domain %d: next %lld, expected %lld",
                     what, d, (long long)rv_timer_next(s, (rv_timer_domain)d), (long long)next);
    }
}

/* Far more timers than the budget holds (rocksdb spills the latest ones
 * and reads them back when they come due), with registrations into
 * spilled and partly popped times while popping goes on. */
static void timers_many(rv_state_backend backend)
{
    enum { TK = 200, TNS = 3, N0 = 40000, ROUND_ADD = 600, MAXT = 80000 };
    static const int64_t tns[TNS] = {0, 1, -1};
    const int64_t budget = 256 << 10;
    rv_state *s = open_state(backend, budget);
    tkey *keys = calloc(TK, sizeof(tkey));
    mtimer *tm = calloc(MAXT, sizeof(mtimer)), *scratch = calloc(MAXT, sizeof(mtimer));
    cr_assert(keys && tm && scratch);
    for (int i = 0; i < TK; i++)
        tkey_int(&keys[i], (int64_t)i * 3 + 1);
    int ntm = 0;
    long seq = 0;
    rng r = {4711};
    size_t bytes0 = get_stats(s).bytes;
    for (int i = 0; i < N0; i++) {
        int d = (int)rbelow(&r, 2), ki = (int)rbelow(&r, TK), ni = (int)rbelow(&r, TNS);
        int64_t t = 1000 + (int64_t)rbelow(&r, 200) * 10;
        rv_skey x = skc(&keys[ki]);
        rv_timer_register(s, (rv_timer_domain)d, &x, tns[ni], t);
        scrub();
        tm[ntm++] = (mtimer){d, ki, ni, t, seq++};
        if (i % 500 == 499) {
            maintain_ok(s);
            if (backend == RV_STATE_ROCKSDB) {
                rv_state_stats st = get_stats(s);
                cr_assert((int64_t)st.bytes <= budget + slack_of(budget),
                          "%d timers registered: %zu bytes counted after maintain, budget %lld", i + 1,
                          st.bytes, (long long)budget);
            }
        }
    }
    maintain_ok(s);
    check_timer_summary(s, tm, ntm, "after registering");
    rv_state_stats st = get_stats(s);
    if (backend == RV_STATE_ROCKSDB) {
        cr_assert(st.db_open, "rocksdb: %d timers, RocksDB never opened", N0);
    } else {
        cr_assert((int64_t)st.bytes >= (int64_t)N0 * 16, "memory backend: %d timers counted as %zu bytes", N0,
                  st.bytes);
    }
    for (int64_t upto = 950; upto < 3500; upto += 37) {
        for (int d = 0; d < 2; d++)
            drain(s, d, upto, tm, &ntm, keys, tns, scratch);
        check_timer_summary(s, tm, ntm, "after draining");
        /* more timers: some already due, many into spilled times, some again */
        for (int i = 0; i < ROUND_ADD && ntm < MAXT; i++) {
            int d = (int)rbelow(&r, 2), ki = (int)rbelow(&r, TK), ni = (int)rbelow(&r, TNS);
            int64_t t = upto - 40 + (int64_t)rbelow(&r, 160) * 10;
            if (ntm > 0 && rbelow(&r, 8) == 0) {
                const mtimer *o = &tm[rbelow(&r, (uint32_t)ntm)];
                d = o->d;
                ki = o->ki;
                ni = o->ni;
                t = o->time;
            }
            rv_skey x = skc(&keys[ki]);
            rv_timer_register(s, (rv_timer_domain)d, &x, tns[ni], t);
            scrub();
            tm[ntm++] = (mtimer){d, ki, ni, t, seq++};
        }
        check_timer_summary(s, tm, ntm, "after registering more");
        maintain_ok(s);
        if (backend == RV_STATE_ROCKSDB) {
            st = get_stats(s);
            cr_assert((int64_t)st.bytes <= budget + slack_of(budget),
                      "upto %lld: %zu bytes counted after maintain, budget %lld", (long long)upto, st.bytes,
                      (long long)budget);
        }
    }
    for (int d = 0; d < 2; d++)
        drain(s, d, INT64_MAX, tm, &ntm, keys, tns, scratch);
    cr_assert_eq(ntm, 0);
    check_timer_summary(s, tm, ntm, "at the end");
    maintain_ok(s);
    /* every timer is gone: what they were charged is given back (up to
     * lookup tables that do not shrink) */
    st = get_stats(s);
    cr_assert(st.bytes <= bytes0 + (64 << 10),
              "all timers popped: %zu bytes still counted, %zu before any timer", st.bytes, bytes0);
    rv_state_close(s);
    cr_assert(!path_exists(g_dir));
    for (int i = 0; i < TK; i++)
        tkey_free(&keys[i]);
    free(keys);
    free(tm);
    free(scratch);
}

Test(state_time, timers_many_memory)
{
    timers_many(RV_STATE_MEMORY);
}

Test(state_time, timers_many_rocksdb_spill)
{
    timers_many(RV_STATE_ROCKSDB);
}

