/* Unit tests of rv_dset, the flat exact set of count_distinct. The
 * expectations come from a naive reference (every distinct value kept in
 * an array, searched linearly, compared after sort + unique) run side by
 * side with the set. The set's buffer is grown the way the state store
 * does it: a new buffer at another address holding the old bytes, then
 * zeros. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rv_dset.h"
#include "rv_hash.h"

/* ---- helpers ---- */

/* A set buffer as the state store would own it. */
typedef struct sbuf {
    uint8_t *p;
    uint32_t len;
    int regrows;
} sbuf;

static void sbuf_init(sbuf *s)
{
    s->len = rv_dset_init_size();
    s->p = calloc(s->len, 1);
    s->regrows = 0;
    rv_dset_init(s->p, s->len);
}

/* Moves the set to a new buffer of new_len bytes (prefix kept, rest
 * zeroed) at a different address, poisoning and freeing the old one. */
static void sbuf_move(sbuf *s, uint32_t new_len)
{
    uint8_t *np = malloc(new_len);
    memcpy(np, s->p, s->len);
    memset(np + s->len, 0, new_len - s->len);
    memset(s->p, 0xA5, s->len);
    free(s->p);
    s->p = np;
}

/* Adds a value following the documented protocol; returns 1 or 0. */
static int sbuf_add_h(sbuf *s, const void *v, uint32_t n, uint64_t hash)
{
    int r = rv_dset_add(s->p, s->len, v, n, hash);
    if (r >= 0)
        return r;
    cr_assert_eq(r, -1);
    uint32_t nl = rv_dset_grow_size(s->p, s->len, n);
    cr_assert_geq(nl, 2 * (uint64_t)s->len, "grow %u -> %u", s->len, nl);
    /* Alternate the two ways the store may enlarge: move, or realloc. */
    if (s->regrows++ % 2 == 0) {
        sbuf_move(s, nl);
    } else {
        s->p = realloc(s->p, nl);
        memset(s->p + s->len, 0, nl - s->len);
    }
    rv_dset_regrow(s->p, s->len, nl);
    s->len = nl;
    r = rv_dset_add(s->p, s->len, v, n, hash);
    cr_assert_eq(r, 1, "add after regrow must succeed");
    return r;
}

static int sbuf_add(sbuf *s, const void *v, uint32_t n)
{
    return sbuf_add_h(s, v, n, rv_hash_bytes(v, n, 0));
}

/* Naive reference: distinct values in an array. */
typedef struct val {
    uint8_t *p;
    uint32_t n;
} val;

typedef struct ref {
    val *v;
    size_t n, cap;
} ref;

static bool ref_has(const ref *r, const void *p, uint32_t n)
{
    for (size_t i = 0; i < r->n; i++)
        if (r->v[i].n == n && (n == 0 || memcmp(r->v[i].p, p, n) == 0))
            return true;
    return false;
}

/* Adds to the reference; returns 1 if new, 0 if present (rv_dset_add's
 * contract). */
static int ref_add(ref *r, const void *p, uint32_t n)
{
    if (ref_has(r, p, n))
        return 0;
    if (r->n == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 64;
        r->v = realloc(r->v, r->cap * sizeof(val));
    }
    r->v[r->n].p = malloc(n ? n : 1);
    if (n)
        memcpy(r->v[r->n].p, p, n);
    r->v[r->n].n = n;
    r->n++;
    return 1;
}

static void ref_free(ref *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->v[i].p);
    free(r->v);
}

static int val_cmp(const void *a, const void *b)
{
    const val *x = a, *y = b;
    uint32_t n = x->n < y->n ? x->n : y->n;
    int c = n ? memcmp(x->p, y->p, n) : 0;
    if (c)
        return c;
    return x->n < y->n ? -1 : x->n > y->n;
}

/* Iterates the set and checks it holds exactly the reference's values:
 * both lists sorted, the set's made unique (so a duplicate in the set
 * shows as a count mismatch). */
static void expect_same(const uint8_t *set, uint32_t len, const ref *r)
{
    cr_assert_eq(rv_dset_count(set, len), r->n);
    val *got = malloc((r->n + 1) * sizeof(val));
    size_t ngot = 0;
    uint32_t it = 0;
    const uint8_t *v;
    uint32_t n;
    while (rv_dset_next(set, len, &it, &v, &n)) {
        cr_assert_lt(ngot, r->n, "iteration returns more values than the set holds");
        got[ngot].p = (uint8_t *)v;
        got[ngot].n = n;
        ngot++;
    }
    cr_assert_eq(ngot, r->n);
    qsort(got, ngot, sizeof(val), val_cmp);
    size_t uniq = 0;
    for (size_t i = 0; i < ngot; i++)
        if (i == 0 || val_cmp(&got[i - 1], &got[i]) != 0)
            got[uniq++] = got[i];
    cr_assert_eq(uniq, r->n, "iteration returned duplicates");
    val *want = malloc((r->n + 1) * sizeof(val));
    memcpy(want, r->v, r->n * sizeof(val));
    qsort(want, r->n, sizeof(val), val_cmp);
    for (size_t i = 0; i < r->n; i++)
        cr_assert_eq(val_cmp(&got[i], &want[i]), 0, "value %zu differs", i);
    free(got);
    free(want);
}

/* Deterministic xorshift generator. */
static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* A random string of 0..maxlen bytes over a 3-letter alphabet, so short
 * strings repeat often and long ones share prefixes. */
static uint32_t random_value(uint64_t *rng, uint8_t *buf, uint32_t maxlen)
{
    uint32_t n = (uint32_t)(rng_next(rng) % (maxlen + 1));
    for (uint32_t i = 0; i < n; i++)
        buf[i] = (uint8_t)('a' + rng_next(rng) % 3);
    return n;
}

/* ---- tests ---- */

Test(dset, empty_set)
{
    sbuf s;
    sbuf_init(&s);
    cr_expect_eq(rv_dset_count(s.p, s.len), 0);
    uint32_t it = 0, n;
    const uint8_t *v;
    cr_expect_not(rv_dset_next(s.p, s.len, &it, &v, &n));
    free(s.p);
}

Test(dset, add_reports_new_and_present_values)
{
    sbuf s;
    sbuf_init(&s);
    cr_expect_eq(sbuf_add(&s, "a", 1), 1);
    cr_expect_eq(sbuf_add(&s, "a", 1), 0);
    cr_expect_eq(sbuf_add(&s, "", 0), 1);
    cr_expect_eq(sbuf_add(&s, NULL, 0), 0); /* the empty string again */
    cr_expect_eq(sbuf_add(&s, "ab", 2), 1);
    cr_expect_eq(sbuf_add(&s, "a\0", 2), 1); /* bytes, not C strings */
    cr_expect_eq(sbuf_add(&s, "ab", 2), 0);
    cr_expect_eq(rv_dset_count(s.p, s.len), 4);
    /* Iteration yields insertion order. */
    const char *want[] = {"a", "", "ab", "a\0"};
    uint32_t wn[] = {1, 0, 2, 2};
    uint32_t it = 0, n;
    const uint8_t *v;
    for (int i = 0; i < 4; i++) {
        cr_assert(rv_dset_next(s.p, s.len, &it, &v, &n));
        cr_expect_eq(n, wn[i]);
        cr_expect(memcmp(v, want[i], n) == 0);
    }
    cr_expect_not(rv_dset_next(s.p, s.len, &it, &v, &n));
    free(s.p);
}

Test(dset, full_set_is_left_unchanged)
{
    /* -1 must not touch the buffer; values already present are still
     * found (0) without room. */
    uint32_t len = rv_dset_init_size();
    uint8_t *set = calloc(len, 1);
    uint8_t *copy = malloc(len);
    rv_dset_init(set, len);
    char v[8] = "value_0";
    int added = 0;
    for (;;) {
        memcpy(copy, set, len);
        int r = rv_dset_add(set, len, v, 7, rv_hash_bytes(v, 7, 0));
        if (r < 0)
            break;
        cr_assert_eq(r, 1);
        added++;
        v[6]++;
    }
    cr_expect_geq(added, 1);
    cr_expect(memcmp(copy, set, len) == 0);
    cr_expect_eq(rv_dset_count(set, len), added);
    cr_expect_eq(rv_dset_add(set, len, "value_0", 7, rv_hash_bytes("value_0", 7, 0)), 0);
    free(set);
    free(copy);
}

Test(dset, small_sets_are_compact)
{
    /* Ten encoded integers (9 bytes each) take well under 200 bytes. */
    sbuf s;
    sbuf_init(&s);
    for (int i = 0; i < 10; i++) {
        uint8_t enc[9] = {2};
        enc[1] = (uint8_t)(i * 37);
        cr_assert_eq(sbuf_add(&s, enc, 9), 1);
    }
    cr_expect_lt(s.len, 200, "10 values take %u bytes", s.len);
    cr_expect_lt(rv_dset_init_size(), 64);
    free(s.p);
}

/* Random values with many duplicates against the reference, through many
 * regrows (small set, then table), with the buffer moving each time. */
static void random_run(uint64_t seed, int nadds, uint32_t maxlen, bool bad_hash)
{
    sbuf s;
    sbuf_init(&s);
    ref r = {0};
    uint64_t rng = seed;
    uint8_t *buf = malloc(maxlen + 1);
    for (int i = 0; i < nadds; i++) {
        uint32_t n = random_value(&rng, buf, maxlen);
        /* A bad hash (the length only) forces long probe chains and equal
         * stored hashes for different values. */
        uint64_t h = bad_hash ? n : rv_hash_bytes(buf, n, 0);
        int want = ref_add(&r, buf, n);
        cr_assert_eq(sbuf_add_h(&s, buf, n, h), want, "add %d (len %u)", i, n);
        if (i % 1000 == 999)
            expect_same(s.p, s.len, &r);
    }
    expect_same(s.p, s.len, &r);
    /* Every value is found again (0), and values never added are new. */
    for (size_t i = 0; i < r.n; i++) {
        uint64_t h = bad_hash ? r.v[i].n : rv_hash_bytes(r.v[i].p, r.v[i].n, 0);
        cr_assert_eq(rv_dset_add(s.p, s.len, r.v[i].p, r.v[i].n, h), 0);
    }
    cr_expect_gt(s.regrows, 3);
    free(buf);
    ref_free(&r);
    free(s.p);
}

Test(dset, random_values_match_reference)
{
    random_run(0x9E3779B97F4A7C15ull, 20000, 10, false);
}

Test(dset, random_long_values_match_reference)
{
    /* Lengths cross the 1-byte / 5-byte length encoding at 255. */
    random_run(12345, 3000, 600, false);
}

Test(dset, colliding_hashes_match_reference)
{
    random_run(777, 4000, 8, true);
}

Test(dset, many_distinct_values)
{
    /* 100000 distinct integers, each added twice, the second time after
     * all the others. */
    sbuf s;
    sbuf_init(&s);
    enum { N = 100000 };
    for (int pass = 0; pass < 2; pass++)
        for (int64_t i = 0; i < N; i++) {
            int64_t v = i * 2654435761 - 7;
            cr_assert_eq(sbuf_add(&s, &v, sizeof(v)), pass == 0 ? 1 : 0, "value %lld",
                         (long long)i);
        }
    cr_expect_eq(rv_dset_count(s.p, s.len), N);
    /* Iteration gives every value once, in insertion order. */
    uint32_t it = 0, n;
    const uint8_t *v;
    int64_t i = 0;
    while (rv_dset_next(s.p, s.len, &it, &v, &n)) {
        int64_t x;
        cr_assert_eq(n, sizeof(x));
        memcpy(&x, v, sizeof(x));
        cr_assert_eq(x, i * 2654435761 - 7);
        i++;
    }
    cr_expect_eq(i, N);
    /* Memory stays proportional: at most 64 bytes per 8-byte value
     * (entries take 13, the table ~5-11, doubling at most 2x). */
    cr_expect_leq(s.len, 64u * N, "%u bytes", s.len);
    free(s.p);
}

Test(dset, large_values)
{
    sbuf s;
    sbuf_init(&s);
    ref r = {0};
    uint32_t sizes[] = {0, 1, 254, 255, 256, 1000, 65535, 65536, 65536, 254, 70000};
    uint8_t *buf = malloc(70000);
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        /* Values of the same size differ in their last byte only. */
        memset(buf, 'x', sizes[k]);
        if (sizes[k])
            buf[sizes[k] - 1] = (uint8_t)k;
        cr_assert_eq(sbuf_add(&s, buf, sizes[k]), ref_add(&r, buf, sizes[k]));
    }
    /* And the very same bytes as value 7 again. */
    memset(buf, 'x', 65536);
    buf[65535] = 7;
    cr_expect_eq(sbuf_add(&s, buf, 65536), 0);
    expect_same(s.p, s.len, &r);
    free(buf);
    ref_free(&r);
    free(s.p);
}

Test(dset, merging_two_sets_by_iteration)
{
    sbuf a, b;
    sbuf_init(&a);
    sbuf_init(&b);
    ref r = {0};
    char v[16];
    for (int i = 0; i < 500; i++) {
        int n = snprintf(v, sizeof(v), "k%d", i);
        sbuf_add(&a, v, (uint32_t)n);
        ref_add(&r, v, (uint32_t)n);
    }
    for (int i = 300; i < 900; i++) {
        int n = snprintf(v, sizeof(v), "k%d", i);
        sbuf_add(&b, v, (uint32_t)n);
        ref_add(&r, v, (uint32_t)n);
    }
    uint32_t it = 0, n;
    const uint8_t *p;
    int added = 0;
    while (rv_dset_next(b.p, b.len, &it, &p, &n))
        added += sbuf_add(&a, p, n);
    cr_expect_eq(added, 400);
    expect_same(a.p, a.len, &r);
    ref_free(&r);
    free(a.p);
    free(b.p);
}

Test(dset, copied_bytes_are_the_same_set)
{
    /* No pointers inside: a byte copy (as read back from RocksDB) works. */
    sbuf s;
    sbuf_init(&s);
    for (int i = 0; i < 1000; i++)
        sbuf_add(&s, &i, sizeof(i));
    uint8_t *copy = malloc(s.len);
    memcpy(copy, s.p, s.len);
    memset(s.p, 0, s.len);
    free(s.p);
    for (int i = 0; i < 1000; i++)
        cr_assert_eq(rv_dset_add(copy, s.len, &i, sizeof(i), rv_hash_bytes(&i, sizeof(i), 0)), 0);
    cr_expect_eq(rv_dset_count(copy, s.len), 1000);
    free(copy);
}

Test(dset, grow_size_refuses_past_the_limit)
{
    uint32_t len = rv_dset_init_size();
    uint8_t *set = calloc(len, 1);
    rv_dset_init(set, len);
    cr_expect_eq(rv_dset_grow_size(set, len, RV_DSET_MAX_LEN), 0);
    cr_expect_eq(rv_dset_grow_size(set, len, UINT32_MAX), 0);
    /* A value that fits below the limit gets a size that holds it. */
    uint32_t big = 1u << 20;
    uint32_t nl = rv_dset_grow_size(set, len, big);
    cr_assert_geq(nl, big);
    cr_assert_leq(nl, RV_DSET_MAX_LEN);
    set = realloc(set, nl);
    memset(set + len, 0, nl - len);
    rv_dset_regrow(set, len, nl);
    uint8_t *v = calloc(big, 1);
    cr_expect_eq(rv_dset_add(set, nl, v, big, 1), 1);
    cr_expect_eq(rv_dset_add(set, nl, v, big, 1), 0);
    free(v);
    free(set);
}
