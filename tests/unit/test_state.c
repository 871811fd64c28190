/* Unit tests of rv_state, the keyed state store of one operator instance,
 * run against both backends (memory and rocksdb).
 *
 * Expectations come from a plain reference model kept in the test (arrays
 * indexed by state id, key, namespace and map user key; a linear list of
 * pending timers) to which the same random operations are applied side by
 * side with the store, and from small hand-computed cases. RocksDB runs use
 * a tiny memory budget so entries really are evicted and read back; the
 * tests check through rv_state_get_stats() that this happened. Every test
 * works in its own mkdtemp directory under /tmp, removed by the fini.
 * Time-to-live and timers are tested in test_state_time.c; the helpers
 * both use are in state_test_util.h. */
#include "state_test_util.h"

TestSuite(state, .init = tmp_init, .fini = tmp_fini, .timeout = 60);

/* ---- configuration ---- */

Test(state, conf_defaults_and_names)
{
    rv_state_conf c;
    memset(&c, 0x5A, sizeof(c));
    rv_state_conf_default(&c);
    cr_assert_eq(c.backend, RV_STATE_ROCKSDB);
    cr_assert_eq(c.memory_budget, (int64_t)256 << 20);
    cr_assert_eq(c.memory_budget, RV_STATE_DEFAULT_BUDGET);
    cr_assert_str_eq(rv_state_backend_name(RV_STATE_ROCKSDB), "rocksdb");
    cr_assert_str_eq(rv_state_backend_name(RV_STATE_MEMORY), "memory");
}

/* ---- randomized model test ---- */

#define NK 300
#define NNS 5
#define NUK 8
#define NSID 6
#define MAXHELD 64

static const int64_t NSS[NNS] = {0, 1, -1, INT64_MIN, INT64_MAX};
enum { KIND_VALUE, KIND_LIST, KIND_MAP };
static const int SIDS[NSID] = {0, 1, 17, 2, 3, RV_STATE_MAX_IDS - 1};
static const int KINDS[NSID] = {KIND_VALUE, KIND_VALUE, KIND_VALUE, KIND_LIST, KIND_MAP, KIND_MAP};
static const struct {
    const char *p;
    uint32_t n;
} UKS[NUK] = {
    {"", 0},
    {"a", 1},
    {"b", 1},
    {"ab", 2},
    {"\0", 1},
    {"a\0", 2},
    {"\x80\0\0\0\0\0\0\x01", 8}, /* looks like an encoded namespace 1 */
    {"a-rather-long-map-user-key-0123456789", 37},
};

typedef struct mval {
    bool present;
    uint32_t len;
    uint8_t *d; /* lists: elements as 4-byte length + bytes (the test's own framing) */
} mval;

typedef struct model {
    mval v[NSID][NK][NNS];
    mval m[NSID][NK][NNS][NUK];
} model;

typedef struct held {
    uint8_t *p;
    int si, ki, ni;
} held;

typedef struct mrun {
    rv_state *s;
    model *M;
    tkey keys[NK];
    rng r;
    long op;
    held held[MAXHELD];
    int nheld;
} mrun;

static void mval_set(mval *m, const uint8_t *p, uint32_t n)
{
    m->d = realloc(m->d, n ? n : 1);
    cr_assert_not_null(m->d);
    if (n)
        memcpy(m->d, p, n);
    m->len = n;
    m->present = true;
}

static void mval_clear(mval *m)
{
    free(m->d);
    m->d = NULL;
    m->len = 0;
    m->present = false;
}

static const char *kind_name(int si)
{
    return KINDS[si] == KIND_VALUE ? "value" : KINDS[si] == KIND_LIST ? "list" : "map";
}

static void check_value(mrun *R, int si, int ki, int ni)
{
    mval *m = &R->M->v[si][ki][ni];
    rv_skey x = skc(&R->keys[ki]);
    uint32_t len = 0xDEADBEEF;
    const uint8_t *p = rv_value_get(R->s, SIDS[si], &x, NSS[ni], &len);
    scrub();
    if (!m->present) {
        cr_assert_null(p, "op %ld: %s sid %d key %d ns %lld: expected absent, got %u bytes", R->op,
                       kind_name(si), SIDS[si], ki, (long long)NSS[ni], len);
        return;
    }
    cr_assert_not_null(p, "op %ld: %s sid %d key %d ns %lld: expected %u bytes, got absent", R->op,
                       kind_name(si), SIDS[si], ki, (long long)NSS[ni], m->len);
    if (KINDS[si] == KIND_VALUE) {
        cr_assert_eq(len, m->len, "op %ld: value sid %d key %d ns %lld: expected length %u, got %u", R->op,
                     SIDS[si], ki, (long long)NSS[ni], m->len, len);
        cr_assert(memcmp(p, m->d, len) == 0, "op %ld: value sid %d key %d ns %lld: contents differ", R->op,
                  SIDS[si], ki, (long long)NSS[ni]);
        return;
    }
    /* a list: walk both */
    uint32_t off = 0, moff = 0;
    int idx = 0;
    while (moff < m->len) {
        uint32_t elen;
        memcpy(&elen, m->d + moff, 4);
        const uint8_t *e = NULL;
        uint32_t glen = 0;
        bool more = rv_list_next(p, len, &off, &e, &glen);
        cr_assert(more, "op %ld: list sid %d key %d ns %lld: ended at element %d", R->op, SIDS[si], ki,
                  (long long)NSS[ni], idx);
        cr_assert_eq(glen, elen, "op %ld: list sid %d key %d ns %lld element %d: expected length %u, got %u",
                     R->op, SIDS[si], ki, (long long)NSS[ni], idx, elen, glen);
        cr_assert(elen == 0 || memcmp(e, m->d + moff + 4, elen) == 0,
                  "op %ld: list sid %d key %d ns %lld element %d: contents differ", R->op, SIDS[si], ki,
                  (long long)NSS[ni], idx);
        moff += 4 + elen;
        idx++;
    }
    const uint8_t *e;
    uint32_t glen;
    cr_assert(!rv_list_next(p, len, &off, &e, &glen),
              "op %ld: list sid %d key %d ns %lld: more than %d elements", R->op, SIDS[si], ki,
              (long long)NSS[ni], idx);
}

static void check_map(mrun *R, int si, int ki, int ni, int u)
{
    mval *m = &R->M->m[si][ki][ni][u];
    rv_skey x = skc(&R->keys[ki]);
    uint32_t len = 0xDEADBEEF;
    const uint8_t *p = rv_map_get(R->s, SIDS[si], &x, NSS[ni], UKS[u].p, UKS[u].n, &len);
    scrub();
    if (!m->present) {
        cr_assert_null(p, "op %ld: map sid %d key %d ns %lld uk %d: expected absent, got %u bytes", R->op,
                       SIDS[si], ki, (long long)NSS[ni], u, len);
        return;
    }
    cr_assert_not_null(p, "op %ld: map sid %d key %d ns %lld uk %d: expected %u bytes, got absent", R->op,
                       SIDS[si], ki, (long long)NSS[ni], u, m->len);
    cr_assert_eq(len, m->len, "op %ld: map sid %d key %d ns %lld uk %d: expected length %u, got %u", R->op,
                 SIDS[si], ki, (long long)NSS[ni], u, m->len, len);
    cr_assert(memcmp(p, m->d, len) == 0, "op %ld: map sid %d key %d ns %lld uk %d: contents differ", R->op,
              SIDS[si], ki, (long long)NSS[ni], u);
}

static void drop_held(mrun *R, int si, int ki, int ni)
{
    for (int i = 0; i < R->nheld; i++)
        if (R->held[i].si == si && R->held[i].ki == ki && R->held[i].ni == ni)
            R->held[i].p = NULL;
}

static void maybe_hold(mrun *R, uint8_t *p, int si, int ki, int ni)
{
    if (p && R->nheld < MAXHELD && rbelow(&R->r, 2) == 0)
        R->held[R->nheld++] = (held){p, si, ki, ni};
}

/* End of a "batch": every held pointer must still show the entry's current
 * value; then one more write goes through it (into the model as well). */
static void finish_batch(mrun *R)
{
    for (int i = 0; i < R->nheld; i++) {
        held *h = &R->held[i];
        if (!h->p)
            continue;
        mval *m = &R->M->v[h->si][h->ki][h->ni];
        cr_assert(m->present);
        cr_assert(memcmp(h->p, m->d, m->len) == 0,
                  "op %ld: pointer held for value sid %d key %d ns %lld no longer shows its value", R->op,
                  SIDS[h->si], h->ki, (long long)NSS[h->ni]);
        if (m->len) {
            rfill(&R->r, m->d, m->len);
            memcpy(h->p, m->d, m->len);
        }
    }
    R->nheld = 0;
}

static void check_all(mrun *R)
{
    long n = 0;
    for (int si = 0; si < NSID; si++)
        for (int ki = 0; ki < NK; ki++)
            for (int ni = 0; ni < NNS; ni++) {
                if (KINDS[si] == KIND_MAP) {
                    for (int u = 0; u < NUK; u++)
                        check_map(R, si, ki, ni, u);
                    n += NUK;
                } else {
                    check_value(R, si, ki, ni);
                    n++;
                }
                if (n >= 1000) {
                    maintain_ok(R->s);
                    n = 0;
                }
            }
    maintain_ok(R->s);
}

static int pick_sid(mrun *R, int kind)
{
    int c[NSID], n = 0;
    for (int i = 0; i < NSID; i++)
        if (KINDS[i] == kind)
            c[n++] = i;
    return c[rbelow(&R->r, (uint32_t)n)];
}

static void one_op(mrun *R, uint8_t *buf)
{
    rng *r = &R->r;
    /* half of the operations go to 30 hot keys */
    int ki = rbelow(r, 2) ? (int)rbelow(r, 30) : (int)rbelow(r, NK);
    int ni = (int)rbelow(r, NNS);
    int64_t ns = NSS[ni];
    rv_skey x = skc(&R->keys[ki]);
    uint32_t c = rbelow(r, 100);
    if (c < 12) { /* value get */
        check_value(R, pick_sid(R, KIND_VALUE), ki, ni);
    } else if (c < 28) { /* value upsert, then write part of it in place */
        int si = pick_sid(R, KIND_VALUE);
        mval *m = &R->M->v[si][ki][ni];
        uint32_t init = rlen(r), len = 0xDEADBEEF;
        bool created = !m->present;
        uint8_t *p = rv_value_upsert(R->s, SIDS[si], &x, ns, init, &len, &created);
        scrub();
        cr_assert_eq(created, !m->present, "op %ld: upsert sid %d key %d ns %lld: created = %d, expected %d",
                     R->op, SIDS[si], ki, (long long)ns, created, !m->present);
        if (!m->present) {
            cr_assert_eq(len, init, "op %ld: upsert created %u bytes, asked for %u", R->op, len, init);
            memset(buf, 0, init);
            mval_set(m, buf, init);
        }
        cr_assert_eq(len, m->len, "op %ld: upsert sid %d key %d ns %lld: expected length %u, got %u", R->op,
                     SIDS[si], ki, (long long)ns, m->len, len);
        cr_assert(len == 0 || p != NULL, "op %ld: upsert returned NULL", R->op);
        cr_assert(len == 0 || memcmp(p, m->d, len) == 0,
                  "op %ld: upsert sid %d key %d ns %lld: contents differ (created %d)", R->op, SIDS[si], ki,
                  (long long)ns, created);
        if (len) {
            uint32_t a = rbelow(r, len), b = a + rbelow(r, len - a + 1);
            rfill(r, m->d + a, b - a);
            memcpy(p + a, m->d + a, b - a);
        }
        maybe_hold(R, p, si, ki, ni);
    } else if (c < 40) { /* value put with bytes */
        int si = pick_sid(R, KIND_VALUE);
        mval *m = &R->M->v[si][ki][ni];
        uint32_t len = rlen(r);
        rfill(r, buf, len);
        drop_held(R, si, ki, ni);
        uint8_t *p = rv_value_put(R->s, SIDS[si], &x, ns, buf, len);
        scrub();
        mval_set(m, buf, len);
        cr_assert(len == 0 || (p && memcmp(p, buf, len) == 0),
                  "op %ld: put sid %d key %d ns %lld returned wrong bytes", R->op, SIDS[si], ki,
                  (long long)ns);
        maybe_hold(R, p, si, ki, ni);
    } else if (c < 45) { /* value put NULL: keep the prefix, zero the rest */
        int si = pick_sid(R, KIND_VALUE);
        mval *m = &R->M->v[si][ki][ni];
        uint32_t len = rlen(r);
        memset(buf, 0, len);
        if (m->present)
            memcpy(buf, m->d, m->len < len ? m->len : len);
        drop_held(R, si, ki, ni);
        uint8_t *p = rv_value_put(R->s, SIDS[si], &x, ns, NULL, len);
        scrub();
        mval_set(m, buf, len);
        cr_assert(len == 0 || (p && memcmp(p, buf, len) == 0),
                  "op %ld: put(NULL, %u) sid %d key %d ns %lld: expected old prefix and zeros", R->op, len,
                  SIDS[si], ki, (long long)ns);
        maybe_hold(R, p, si, ki, ni);
    } else if (c < 52) { /* value delete */
        int si = pick_sid(R, KIND_VALUE);
        drop_held(R, si, ki, ni);
        rv_value_delete(R->s, SIDS[si], &x, ns);
        scrub();
        mval_clear(&R->M->v[si][ki][ni]);
    } else if (c < 62) { /* list add */
        int si = pick_sid(R, KIND_LIST);
        mval *m = &R->M->v[si][ki][ni];
        if (m->present && m->len > 1500) { /* keep lists bounded */
            rv_value_delete(R->s, SIDS[si], &x, ns);
            scrub();
            mval_clear(m);
            return;
        }
        uint32_t elen = rbelow(r, 10) ? rbelow(r, 40) : rbelow(r, 600);
        uint32_t old = m->present ? m->len : 0;
        memcpy(buf, m->present ? m->d : buf, old);
        memcpy(buf + old, &elen, 4);
        rfill(r, buf + old + 4, elen);
        rv_list_add(R->s, SIDS[si], &x, ns, buf + old + 4, elen);
        scrub();
        mval_set(m, buf, old + 4 + elen);
    } else if (c < 68) { /* list get */
        check_value(R, pick_sid(R, KIND_LIST), ki, ni);
    } else if (c < 71) { /* list delete */
        int si = pick_sid(R, KIND_LIST);
        rv_value_delete(R->s, SIDS[si], &x, ns);
        scrub();
        mval_clear(&R->M->v[si][ki][ni]);
    } else if (c < 84) { /* map put */
        int si = pick_sid(R, KIND_MAP), u = (int)rbelow(r, NUK);
        mval *m = &R->M->m[si][ki][ni][u];
        uint32_t len = rlen(r);
        rfill(r, buf, len);
        bool was_absent = rv_map_put(R->s, SIDS[si], &x, ns, UKS[u].p, UKS[u].n, buf, len);
        scrub();
        cr_assert_eq(was_absent, !m->present,
                     "op %ld: map put sid %d key %d ns %lld uk %d returned %d, expected %d", R->op, SIDS[si],
                     ki, (long long)ns, u, was_absent, !m->present);
        mval_set(m, buf, len);
    } else if (c < 94) { /* map get */
        check_map(R, pick_sid(R, KIND_MAP), ki, ni, (int)rbelow(r, NUK));
    } else { /* map remove */
        int si = pick_sid(R, KIND_MAP), u = (int)rbelow(r, NUK);
        rv_map_remove(R->s, SIDS[si], &x, ns, UKS[u].p, UKS[u].n);
        scrub();
        mval_clear(&R->M->m[si][ki][ni][u]);
    }
}

/* Runs nops random operations against a fresh store and the model. */
static void model_run(rv_state_backend backend, int64_t budget, uint64_t seed, long nops)
{
    mrun *R = calloc(1, sizeof(*R));
    R->M = calloc(1, sizeof(model));
    cr_assert(R && R->M);
    R->r.s = seed;
    bool kgs[MAX_PAR] = {0};
    int nkg = 0;
    for (int i = 0; i < NK; i++) {
        if (i % 3 == 2) {
            char str[32];
            int n = snprintf(str, sizeof(str), "key-%d", i);
            tkey_str(&R->keys[i], str, (size_t)n);
        } else {
            tkey_int(&R->keys[i], (int64_t)i * 1000003 - 150000);
        }
        if (!kgs[R->keys[i].kg]) {
            kgs[R->keys[i].kg] = true;
            nkg++;
        }
    }
    cr_assert(nkg >= 50, "test keys fall in only %d key groups", nkg);

    R->s = open_state(backend, budget);
    uint8_t *buf = malloc(8192);
    cr_assert_not_null(buf);
    bool small_db = backend == RV_STATE_ROCKSDB && budget <= SMALL_BUDGET;
    int64_t max_bytes = 0;
    long until_maintain = 1 + rbelow(&R->r, 40);
    for (R->op = 0; R->op < nops; R->op++) {
        one_op(R, buf);
        if (--until_maintain == 0) {
            finish_batch(R);
            maintain_ok(R->s);
            until_maintain = 1 + rbelow(&R->r, 40);
            rv_state_stats st = get_stats(R->s);
            if ((int64_t)st.bytes > max_bytes)
                max_bytes = (int64_t)st.bytes;
            if (small_db)
                cr_assert((int64_t)st.bytes <= budget + slack_of(budget),
                          "op %ld: after maintain the cache holds %zu bytes, budget %lld", R->op, st.bytes,
                          (long long)budget);
        }
        if (R->op % 25000 == 24999) {
            finish_batch(R);
            check_all(R);
        }
    }
    finish_batch(R);
    maintain_ok(R->s);
    check_all(R);

    /* the model's live data, to show the small budget really was exceeded */
    int64_t live = 0;
    for (int si = 0; si < NSID; si++)
        for (int ki = 0; ki < NK; ki++)
            for (int ni = 0; ni < NNS; ni++) {
                live += R->M->v[si][ki][ni].len;
                for (int u = 0; u < NUK; u++)
                    live += R->M->m[si][ki][ni][u].len;
            }

    rv_state_stats st = get_stats(R->s);
    if (backend == RV_STATE_MEMORY || budget > SMALL_BUDGET) {
        cr_assert_eq(st.evicted, 0, "%s backend, budget %lld: %llu entries evicted",
                     rv_state_backend_name(backend), (long long)budget, (unsigned long long)st.evicted);
        cr_assert_eq(st.db_reads, 0, "unexpected RocksDB reads: %llu", (unsigned long long)st.db_reads);
        cr_assert(!st.db_open, "RocksDB opened although nothing was evicted");
        cr_assert(!path_exists(g_dir), "state directory %s created although RocksDB is not needed", g_dir);
        if (backend == RV_STATE_MEMORY && budget <= SMALL_BUDGET)
            cr_assert(max_bytes > budget,
                      "memory backend: model test never exceeded the budget (max %lld bytes)",
                      (long long)max_bytes);
    } else {
        cr_assert(live > 4 * budget, "test data (%lld bytes) too small for budget %lld", (long long)live,
                  (long long)budget);
        cr_assert(st.evicted > 0, "rocksdb, budget %lld: nothing was evicted", (long long)budget);
        cr_assert(st.db_hits > 0, "rocksdb, budget %lld: nothing was read back from RocksDB",
                  (long long)budget);
        cr_assert(st.db_reads >= st.db_hits);
        cr_assert(st.db_open);
        cr_assert(path_exists(g_dir), "state directory %s missing while RocksDB is open", g_dir);
    }
    rv_state_close(R->s);
    cr_assert(!path_exists(g_dir), "rv_state_close left %s behind", g_dir);

    for (int i = 0; i < NK; i++)
        tkey_free(&R->keys[i]);
    for (int si = 0; si < NSID; si++)
        for (int ki = 0; ki < NK; ki++)
            for (int ni = 0; ni < NNS; ni++) {
                mval_clear(&R->M->v[si][ki][ni]);
                for (int u = 0; u < NUK; u++)
                    mval_clear(&R->M->m[si][ki][ni][u]);
            }
    free(buf);
    free(R->M);
    free(R);
}

Test(state, model_memory)
{
    model_run(RV_STATE_MEMORY, SMALL_BUDGET, 0x1234, 150000);
}

Test(state, model_rocksdb_small_budget)
{
    model_run(RV_STATE_ROCKSDB, SMALL_BUDGET, 0x5678, 150000);
}

Test(state, model_rocksdb_small_budget_other_seed)
{
    model_run(RV_STATE_ROCKSDB, SMALL_BUDGET, 0x9abcdef, 60000);
}

Test(state, model_rocksdb_large_budget)
{
    model_run(RV_STATE_ROCKSDB, RV_STATE_DEFAULT_BUDGET, 0x4242, 100000);
}

/* ---- pointer stability ---- */

static uint8_t pat(int i, uint32_t j, int round)
{
    return (uint8_t)(i * 31 + (int)j * 7 + round * 101 + 1);
}

static void pointers_run(rv_state_backend backend)
{
    enum { N = 5000 };
    rv_state *s = open_state(backend, SMALL_BUDGET);
    tkey *keys = calloc(N, sizeof(tkey));
    uint8_t **ptrs = calloc(N, sizeof(uint8_t *));
    cr_assert(keys && ptrs);
    for (int i = 0; i < N; i++)
        tkey_int(&keys[i], (int64_t)i * 7 + 3);
#define PLEN(i) (uint32_t)(24 + (i) % 40)
#define PNS(i) ((int64_t)((i) % 3) - 1)

    /* many creations (growing whatever tables there are), no maintain */
    for (int i = 0; i < N; i++) {
        rv_skey x = skc(&keys[i]);
        uint32_t len = 0;
        bool created = false;
        ptrs[i] = rv_value_upsert(s, 4, &x, PNS(i), PLEN(i), &len, &created);
        scrub();
        cr_assert(created && len == PLEN(i) && ptrs[i], "upsert %d: created %d len %u", i, created, len);
        for (uint32_t j = 0; j < len; j++) {
            cr_assert_eq(ptrs[i][j], 0, "upsert %d: byte %u not zero-filled", i, j);
            ptrs[i][j] = pat(i, j, 0);
        }
    }
    for (int i = 0; i < N; i++) {
        for (uint32_t j = 0; j < PLEN(i); j++)
            cr_assert_eq(ptrs[i][j], pat(i, j, 0), "pointer %d no longer shows what was written through it",
                         i);
        for (uint32_t j = 0; j < PLEN(i); j++)
            ptrs[i][j] = pat(i, j, 1);
    }
    uint8_t want[64];
    for (int i = 0; i < N; i++) {
        for (uint32_t j = 0; j < PLEN(i); j++)
            want[j] = pat(i, j, 1);
        expect_value(s, 4, &keys[i], PNS(i), want, PLEN(i), "write through held pointer, before maintain");
    }
    maintain_ok(s);
    rv_state_stats st = get_stats(s);
    if (backend == RV_STATE_ROCKSDB)
        cr_assert(st.evicted > 0, "rocksdb: %d entries over a 64 KiB budget, nothing evicted", N);
    else
        cr_assert_eq(st.evicted, 0);

    /* again over entries that now come back from RocksDB, interleaved with
     * reads of other entries and new entries */
    tkey other = {0};
    uint64_t hits0 = st.db_hits;
    for (int i = 0; i < N; i += 2) {
        rv_skey x = skc(&keys[i]);
        uint32_t len = 0;
        bool created = true;
        ptrs[i] = rv_value_upsert(s, 4, &x, PNS(i), 5, &len, &created);
        scrub();
        cr_assert(!created && len == PLEN(i) && ptrs[i], "re-upsert %d: created %d len %u", i, created, len);
        for (uint32_t j = 0; j < len; j++)
            cr_assert_eq(ptrs[i][j], pat(i, j, 1), "re-upsert %d: byte %u lost", i, j);
        for (uint32_t j = 0; j < len; j++)
            ptrs[i][j] = pat(i, j, 2);
        if (i + 1 < N) {
            for (uint32_t j = 0; j < PLEN(i + 1); j++)
                want[j] = pat(i + 1, j, 1);
            expect_value(s, 4, &keys[i + 1], PNS(i + 1), want, PLEN(i + 1), "read of an evicted entry");
        }
        tkey_int(&other, 1000000 + i);
        put_bytes(s, 5, &other, 0, want, 32);
    }
    for (int i = 0; i < N; i += 2)
        for (uint32_t j = 0; j < PLEN(i); j++)
            cr_assert_eq(ptrs[i][j], pat(i, j, 2), "pointer %d lost its contents before maintain", i);
    maintain_ok(s);
    for (int i = 0; i < N; i++) {
        for (uint32_t j = 0; j < PLEN(i); j++)
            want[j] = pat(i, j, i % 2 ? 1 : 2);
        expect_value(s, 4, &keys[i], PNS(i), want, PLEN(i), "after maintain");
        if (i % 64 == 63)
            maintain_ok(s);
    }
    st = get_stats(s);
    if (backend == RV_STATE_ROCKSDB)
        cr_assert(st.db_hits > hits0, "rocksdb: no entry was read back from RocksDB");
    rv_state_close(s);
    tkey_free(&other);
    for (int i = 0; i < N; i++)
        tkey_free(&keys[i]);
    free(keys);
    free(ptrs);
#undef PLEN
#undef PNS
}

Test(state, pointers_stay_valid_until_maintain_memory)
{
    pointers_run(RV_STATE_MEMORY);
}

Test(state, pointers_stay_valid_until_maintain_rocksdb)
{
    pointers_run(RV_STATE_ROCKSDB);
}

/* ---- memory budget ---- */

/* Writes 10x the budget in 200-byte values, maintaining every 64 puts, and
 * reads everything back. */
static void budget_run(rv_state_backend backend)
{
    const int64_t budget = 128 << 10;
    const uint32_t vlen = 200;
    const int n = (int)(10 * budget / vlen) + 1;
    rv_state *s = open_state(backend, budget);
    tkey k = {0};
    uint8_t v[200];
    for (int i = 0; i < n; i++) {
        tkey_int(&k, (int64_t)i * 13 - 7);
        for (uint32_t j = 0; j < vlen; j++)
            v[j] = pat(i, j, 3);
        put_bytes(s, 7, &k, (int64_t)i % 5, v, vlen);
        if (i % 64 == 63 || i == n - 1) {
            maintain_ok(s);
            rv_state_stats st = get_stats(s);
            if (backend == RV_STATE_ROCKSDB) {
                cr_assert((int64_t)st.bytes <= budget + slack_of(budget),
                          "after %d puts and maintain: %zu bytes cached, budget %lld", i + 1, st.bytes,
                          (long long)budget);
            } else {
                cr_assert_eq(st.evicted, 0, "memory backend evicted %llu entries",
                             (unsigned long long)st.evicted);
                cr_assert(st.entries >= (size_t)(i + 1), "memory backend holds %zu entries after %d puts",
                          st.entries, i + 1);
            }
        }
    }
    rv_state_stats st = get_stats(s);
    if (backend == RV_STATE_MEMORY) {
        cr_assert((int64_t)st.bytes >= (int64_t)n * vlen,
                  "memory backend counts %zu bytes for %lld bytes of values", st.bytes, (long long)n * vlen);
        cr_assert(!st.db_open && st.db_reads == 0);
        cr_assert(!path_exists(g_dir), "memory backend created %s", g_dir);
    } else {
        cr_assert(st.db_open && st.evicted > 0);
        cr_assert(st.bytes > 0, "rocksdb: cache emptied completely");
    }
    uint64_t hits0 = st.db_hits;
    for (int i = 0; i < n; i++) {
        tkey_int(&k, (int64_t)i * 13 - 7);
        for (uint32_t j = 0; j < vlen; j++)
            v[j] = pat(i, j, 3);
        expect_value(s, 7, &k, (int64_t)i % 5, v, vlen, "read back");
        /* the same key in another namespace and state id is absent */
        expect_value(s, 7, &k, (int64_t)i % 5 + 1, NULL, 0, "other namespace");
        expect_value(s, 8, &k, (int64_t)i % 5, NULL, 0, "other state id");
        if (i % 64 == 63) {
            maintain_ok(s);
            st = get_stats(s);
            if (backend == RV_STATE_ROCKSDB)
                cr_assert((int64_t)st.bytes <= budget + slack_of(budget),
                          "reading back: %zu bytes cached after maintain, budget %lld", st.bytes,
                          (long long)budget);
        }
    }
    st = get_stats(s);
    if (backend == RV_STATE_ROCKSDB)
        cr_assert(st.db_hits - hits0 >= (uint64_t)n / 2, "rocksdb: only %llu of %d reads came from RocksDB",
                  (unsigned long long)(st.db_hits - hits0), n);
    else
        cr_assert_eq(st.evicted, 0);
    rv_state_close(s);
    cr_assert(!path_exists(g_dir));
    tkey_free(&k);
}

Test(state, rocksdb_keeps_cache_near_budget)
{
    budget_run(RV_STATE_ROCKSDB);
}

Test(state, memory_never_evicts)
{
    budget_run(RV_STATE_MEMORY);
}

/* ---- keys that look alike ---- */

/* Keys whose encodings, namespaces and map user keys are built to resemble
 * each other. With force_hash, all of them carry the same hash (and so the
 * same key group), as a hash collision would. */
static void lookalike_run(rv_state_backend backend, bool force_hash)
{
    enum { NCK = 12, NCNS = 6 };
    static const int64_t cns[NCNS] = {0, 1, -1, 256, INT64_MIN, INT64_MAX};
    tkey k[NCK];
    memset(k, 0, sizeof(k));
    tkey_str(&k[0], "a", 1);
    tkey_str(&k[1], "a\0", 2);
    tkey_str(&k[2], "a\x80\0\0\0\0\0\0\x01", 9); /* "a" followed by namespace 1 as stored */
    tkey_str(&k[3], "", 0);
    tkey_str(&k[4], "\0", 1);
    tkey_str(&k[5], "\x01", 1);
    tkey_str(&k[6], "aa", 2);
    tkey_int(&k[7], 0);
    tkey_int(&k[8], 1);
    tkey_int(&k[9], 'a');
    tkey_int(&k[10], -1);
    tkey_int(&k[11], 256);
    if (force_hash)
        for (int i = 0; i < NCK; i++) {
            k[i].hash = 0x0123456789abcdefull;
            k[i].kg = (uint16_t)rv_key_group(k[i].hash, MAX_PAR);
        }
    rv_state *s = open_state(backend, SMALL_BUDGET);
    static const int vsids[2] = {0, 1};
    const int msid = 3;
    char buf[64];
#define VAL(ki, ni, sj) snprintf(buf, sizeof(buf), "v/%d/%d/%d", (ki), (ni), (sj))
#define MVAL(ki, ni, u) snprintf(buf, sizeof(buf), "m/%d/%d/%d", (ki), (ni), (u))
    for (int ki = 0; ki < NCK; ki++)
        for (int ni = 0; ni < NCNS; ni++) {
            for (int sj = 0; sj < 2; sj++) {
                int n = VAL(ki, ni, sj);
                put_bytes(s, vsids[sj], &k[ki], cns[ni], buf, (uint32_t)n);
            }
            for (int u = 0; u < NUK; u++) {
                int n = MVAL(ki, ni, u);
                rv_skey x = skc(&k[ki]);
                bool fresh = rv_map_put(s, msid, &x, cns[ni], UKS[u].p, UKS[u].n, buf, (uint32_t)n);
                scrub();
                cr_assert(fresh, "look-alike map put key %d ns %lld uk %d: reported an existing entry", ki,
                          (long long)cns[ni], u);
            }
        }
    for (int round = 0; round < 3; round++) {
        /* round 0: all in memory; 1: after eviction; 2: after deleting half
         * and evicting again */
        if (round == 1)
            maintain_ok(s);
        if (round > 0)
            fill(s, 9, round * 1000000, 10 * SMALL_BUDGET);
        uint64_t hits0 = get_stats(s).db_hits;
        for (int ki = 0; ki < NCK; ki++)
            for (int ni = 0; ni < NCNS; ni++) {
                char what[96];
                for (int sj = 0; sj < 2; sj++) {
                    bool gone = round == 2 && (ki + ni + sj) % 2 == 0;
                    int n = VAL(ki, ni, sj);
                    snprintf(what, sizeof(what), "look-alike round %d key %d ns %lld", round, ki,
                             (long long)cns[ni]);
                    expect_value(s, vsids[sj], &k[ki], cns[ni], gone ? NULL : buf, (uint32_t)n, what);
                }
                for (int u = 0; u < NUK; u++) {
                    bool gone = round == 2 && (ki + ni + u) % 2 == 1;
                    int n = MVAL(ki, ni, u);
                    rv_skey x = skc(&k[ki]);
                    uint32_t len = 0;
                    const uint8_t *p = rv_map_get(s, msid, &x, cns[ni], UKS[u].p, UKS[u].n, &len);
                    scrub();
                    if (gone)
                        cr_assert_null(p, "look-alike round %d key %d ns %lld uk %d: removed entry present",
                                       round, ki, (long long)cns[ni], u);
                    else
                        cr_assert(p && len == (uint32_t)n && memcmp(p, buf, len) == 0,
                                  "look-alike round %d key %d ns %lld uk %d: expected %s, got %s%.*s", round,
                                  ki, (long long)cns[ni], u, buf, p ? "" : "(absent)", p ? (int)len : 0,
                                  p ? (const char *)p : "");
                }
            }
        if (round > 0 && backend == RV_STATE_ROCKSDB)
            cr_assert(get_stats(s).db_hits > hits0, "look-alike round %d: nothing read back from RocksDB",
                      round);
        if (round == 1) {
            for (int ki = 0; ki < NCK; ki++)
                for (int ni = 0; ni < NCNS; ni++) {
                    rv_skey x = skc(&k[ki]);
                    for (int sj = 0; sj < 2; sj++)
                        if ((ki + ni + sj) % 2 == 0)
                            rv_value_delete(s, vsids[sj], &x, cns[ni]);
                    for (int u = 0; u < NUK; u++)
                        if ((ki + ni + u) % 2 == 1)
                            rv_map_remove(s, msid, &x, cns[ni], UKS[u].p, UKS[u].n);
                    scrub();
                }
        }
        maintain_ok(s);
    }
#undef VAL
#undef MVAL
    rv_state_close(s);
    for (int i = 0; i < NCK; i++)
        tkey_free(&k[i]);
}

Test(state, lookalike_keys_memory)
{
    lookalike_run(RV_STATE_MEMORY, false);
    tmp_fini();
    tmp_init();
    lookalike_run(RV_STATE_MEMORY, true);
}

Test(state, lookalike_keys_rocksdb)
{
    lookalike_run(RV_STATE_ROCKSDB, false);
}

Test(state, lookalike_keys_rocksdb_same_hash)
{
    lookalike_run(RV_STATE_ROCKSDB, true);
}

/* ---- close and errors ---- */

Test(state, close_removes_directory)
{
    rv_state_close(NULL);
    rv_state *s = open_state(RV_STATE_ROCKSDB, SMALL_BUDGET);
    tkey k = {0};
    tkey_int(&k, 1);
    put_bytes(s, 0, &k, 0, "x", 1);
    maintain_ok(s);
    cr_assert(!get_stats(s).db_open, "RocksDB opened for one small entry");
    cr_assert(!path_exists(g_dir), "state directory created for one small entry");
    fill(s, 9, 0, 4 * SMALL_BUDGET);
    cr_assert(get_stats(s).db_open, "RocksDB not open after eviction");
    cr_assert(path_exists(g_dir), "state directory missing after eviction");
    expect_value(s, 0, &k, 0, "x", 1, "small entry after eviction");
    rv_state_close(s);
    cr_assert(!path_exists(g_dir), "rv_state_close left %s behind", g_dir);
    cr_assert(path_exists(g_base), "rv_state_close removed the parent directory");

    s = open_state(RV_STATE_MEMORY, SMALL_BUDGET);
    fill(s, 9, 0, 4 * SMALL_BUDGET);
    cr_assert(!path_exists(g_dir), "memory backend created %s", g_dir);
    rv_state_close(s);
    cr_assert(!path_exists(g_dir));
    tkey_free(&k);
}

/* RocksDB cannot be created (the directory's parent is a file): the
 * failure surfaces as an error from open or from maintain, not a crash. */
Test(state, rocksdb_open_failure_is_reported)
{
    char file[192];
    snprintf(file, sizeof(file), "%s/file", g_base);
    FILE *f = fopen(file, "w");
    cr_assert_not_null(f);
    fputs("not a directory\n", f);
    fclose(f);
    snprintf(g_dir, sizeof(g_dir), "%s/file/state", g_base);
    rv_state_conf c;
    rv_state_conf_default(&c);
    c.memory_budget = SMALL_BUDGET;
    rv_state *s = NULL;
    rv_err *e = rv_state_open(&c, g_dir, "test_state", &s);
    if (e) {
        rv_err_free(e);
        return;
    }
    tkey k = {0};
    uint8_t v[256];
    memset(v, 1, sizeof(v));
    bool failed = false;
    for (int i = 0; i < 4 * SMALL_BUDGET / 256 && !failed; i++) {
        tkey_int(&k, i);
        put_bytes(s, 0, &k, 0, v, sizeof(v));
        if (i % 32 == 31) {
            e = rv_state_maintain(s);
            if (e) {
                failed = true;
                rv_err_free(e);
            }
        }
    }
    cr_assert(failed, "RocksDB could not be created, yet neither open nor maintain reported an error");
    rv_state_close(s);
    tkey_free(&k);
    cr_assert(path_exists(file), "the file in the way was removed");
}
