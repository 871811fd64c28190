/* Unit tests of rv_state, the keyed state store of one operator instance,
 * run against both backends (memory and rocksdb).
 *
 * Expectations come from a plain reference model kept in the test (arrays
 * indexed by state id, key, namespace and map user key; a linear list of
 * pending timers) to which the same random operations are applied side by
 * side with the store, and from small hand-computed cases. RocksDB runs use
 * a tiny memory budget so entries really are evicted and read back; the
 * tests check through rv_state_get_stats() that this happened. Every test
 * works in its own mkdtemp directory under /tmp, removed by the fini. */
#include <criterion/criterion.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rv_hash.h"
#include "rv_state.h"

#define MAX_PAR 128
#define SMALL_BUDGET ((int64_t)64 << 10)

/* ---- temporary directories ---- */

static char g_base[128]; /* this test's mkdtemp directory */
static char g_dir[192];  /* the state directory inside it (not created) */

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(p);
    return 0;
}

static void tmp_init(void)
{
    snprintf(g_base, sizeof(g_base), "/tmp/rv_state_test_XXXXXX");
    if (!mkdtemp(g_base)) {
        perror("mkdtemp");
        abort();
    }
    snprintf(g_dir, sizeof(g_dir), "%s/state", g_base);
}

static void tmp_fini(void)
{
    if (g_base[0])
        nftw(g_base, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    g_base[0] = 0;
}

TestSuite(state, .init = tmp_init, .fini = tmp_fini, .timeout = 60);

static bool path_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

/* ---- random numbers (splitmix64; fixed seeds keep runs reproducible) ---- */

typedef struct rng {
    uint64_t s;
} rng;

static uint64_t rnext(rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint32_t rbelow(rng *r, uint32_t n)
{
    return (uint32_t)(rnext(r) % n);
}

static void rfill(rng *r, uint8_t *p, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        p[i] = (uint8_t)rnext(r);
}

/* A value length: mostly small, sometimes medium, rarely large. */
static uint32_t rlen(rng *r)
{
    uint32_t x = rbelow(r, 100);
    if (x < 70)
        return rbelow(r, 33);
    if (x < 96)
        return 33 + rbelow(r, 268);
    return 301 + rbelow(r, 2700);
}

/* ---- keys ---- */

typedef struct tkey {
    uint8_t *buf;
    size_t len, cap;
    uint64_t hash;
    uint16_t kg;
} tkey;

/* Encodes and hashes row 0 of the single key column c. */
static void tkey_col(tkey *k, const rv_column *c)
{
    k->len = 0;
    rv_key_encode(c, 1, 0, &k->buf, &k->len, &k->cap);
    uint64_t h = 0;
    uint8_t *scratch = NULL;
    size_t scap = 0;
    rv_hash_rows(c, 1, 1, &h, &scratch, &scap);
    free(scratch);
    k->hash = h;
    k->kg = (uint16_t)rv_key_group(h, MAX_PAR);
}

static void tkey_int(tkey *k, int64_t v)
{
    rv_column c;
    rv_col_init(&c, RV_T_INT64, 1);
    rv_col_set_i64(&c, 0, v);
    tkey_col(k, &c);
    rv_col_fini(&c);
}

static void tkey_str(tkey *k, const void *p, size_t n)
{
    rv_column c;
    rv_col_init(&c, RV_T_STRING, 1);
    rv_col_set_str(&c, 0, (const char *)p, n);
    tkey_col(k, &c);
    rv_col_fini(&c);
}

static void tkey_free(tkey *k)
{
    free(k->buf);
    memset(k, 0, sizeof(*k));
}

static rv_skey sk(const tkey *k)
{
    rv_skey s = {k->buf, (uint32_t)k->len, k->kg, k->hash};
    return s;
}

/* A copy of the key in a scratch buffer that scrub() overwrites after each
 * call, so a store that keeps the caller's key pointer is caught. */
static uint8_t g_kscratch[512];

static rv_skey skc(const tkey *k)
{
    cr_assert(k->len <= sizeof(g_kscratch));
    memcpy(g_kscratch, k->buf, k->len);
    rv_skey s = {g_kscratch, (uint32_t)k->len, k->kg, k->hash};
    return s;
}

static void scrub(void)
{
    memset(g_kscratch, 0xEE, sizeof(g_kscratch));
}

/* ---- store helpers ---- */

static rv_state *open_state(rv_state_backend b, int64_t budget)
{
    rv_state_conf c;
    rv_state_conf_default(&c);
    c.backend = b;
    c.memory_budget = budget;
    rv_state *s = NULL;
    rv_err *e = rv_state_open(&c, g_dir, "test_state", &s);
    cr_assert_null(e, "rv_state_open(%s): %s", rv_state_backend_name(b), e ? rv_err_msg(e) : "");
    cr_assert_not_null(s);
    return s;
}

static void maintain_ok(rv_state *s)
{
    rv_err *e = rv_state_maintain(s);
    cr_assert_null(e, "rv_state_maintain: %s", e ? rv_err_msg(e) : "");
}

static rv_state_stats get_stats(const rv_state *s)
{
    rv_state_stats st;
    memset(&st, 0xAB, sizeof(st));
    rv_state_get_stats(s, &st);
    return st;
}

/* Bytes the rocksdb cache may exceed its budget by right after maintain. */
static int64_t slack_of(int64_t budget)
{
    return budget / 4;
}

static void put_bytes(rv_state *s, int sid, const tkey *k, int64_t ns, const void *v, uint32_t len)
{
    rv_skey x = skc(k);
    uint8_t *p = rv_value_put(s, sid, &x, ns, v, len);
    scrub();
    if (len)
        cr_assert(p && memcmp(p, v, len) == 0, "rv_value_put returned a value that differs from the input");
}

/* Fills sid `sid` with keys fill_base.. of 256-byte values until `nbytes`
 * were written, calling maintain every 32 puts: pushes everything written
 * earlier out of a small cache. */
static void fill(rv_state *s, int sid, int64_t fill_base, int64_t nbytes)
{
    uint8_t v[256];
    tkey k = {0};
    for (int64_t i = 0; i * (int64_t)sizeof(v) < nbytes; i++) {
        tkey_int(&k, fill_base + i);
        memset(v, (int)(i & 0xff), sizeof(v));
        put_bytes(s, sid, &k, 0, v, sizeof(v));
        if (i % 32 == 31)
            maintain_ok(s);
    }
    maintain_ok(s);
    tkey_free(&k);
}

/* Checks that (sid, k, ns) holds exactly want[0..wlen) (want NULL: absent). */
static void expect_value(rv_state *s, int sid, const tkey *k, int64_t ns, const void *want, uint32_t wlen,
                         const char *what)
{
    rv_skey x = skc(k);
    uint32_t len = 0xDEADBEEF;
    const uint8_t *p = rv_value_get(s, sid, &x, ns, &len);
    scrub();
    if (!want) {
        cr_assert_null(p, "%s: sid %d ns %lld: expected absent, got %u bytes", what, sid, (long long)ns, len);
        return;
    }
    cr_assert_not_null(p, "%s: sid %d ns %lld: expected %u bytes, got absent", what, sid, (long long)ns,
                       wlen);
    cr_assert_eq(len, wlen, "%s: sid %d ns %lld: expected length %u, got %u", what, sid, (long long)ns, wlen,
                 len);
    cr_assert(memcmp(p, want, wlen) == 0, "%s: sid %d ns %lld: contents differ", what, sid, (long long)ns);
}

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

Test(state, ttl_memory)
{
    ttl_basic(RV_STATE_MEMORY);
}

Test(state, ttl_rocksdb)
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

Test(state, ttl_evicted_memory)
{
    ttl_evicted(RV_STATE_MEMORY);
}

Test(state, ttl_evicted_rocksdb)
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

Test(state, timers_basic_memory)
{
    timers_basic(RV_STATE_MEMORY);
}

Test(state, timers_basic_rocksdb)
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

Test(state, timers_random_memory)
{
    timers_random(RV_STATE_MEMORY, 77);
}

Test(state, timers_random_rocksdb)
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

Test(state, timers_many_memory)
{
    timers_many(RV_STATE_MEMORY);
}

Test(state, timers_many_rocksdb_spill)
{
    timers_many(RV_STATE_ROCKSDB);
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
