/* state_test_util: what the keyed-state test suites (test_state.c,
 * test_state_time.c) share: a temporary directory per test, a seeded
 * random generator, keys built with rv_key_encode/rv_hash_rows, and store
 * helpers that assert as they go. */
#ifndef STATE_TEST_UTIL_H
#define STATE_TEST_UTIL_H

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

static inline int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(p);
    return 0;
}

static inline void tmp_init(void)
{
    snprintf(g_base, sizeof(g_base), "/tmp/rv_state_test_XXXXXX");
    if (!mkdtemp(g_base)) {
        perror("mkdtemp");
        abort();
    }
    snprintf(g_dir, sizeof(g_dir), "%s/state", g_base);
}

static inline void tmp_fini(void)
{
    if (g_base[0])
        nftw(g_base, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    g_base[0] = 0;
}


static inline bool path_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

/* ---- random numbers (splitmix64; fixed seeds keep runs reproducible) ---- */

typedef struct rng {
    uint64_t s;
} rng;

static inline uint64_t rnext(rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline uint32_t rbelow(rng *r, uint32_t n)
{
    return (uint32_t)(rnext(r) % n);
}

static inline void rfill(rng *r, uint8_t *p, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        p[i] = (uint8_t)rnext(r);
}

/* A value length: mostly small, sometimes medium, rarely large. */
static inline uint32_t rlen(rng *r)
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
static inline void tkey_col(tkey *k, const rv_column *c)
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

static inline void tkey_int(tkey *k, int64_t v)
{
    rv_column c;
    rv_col_init(&c, RV_T_INT64, 1);
    rv_col_set_i64(&c, 0, v);
    tkey_col(k, &c);
    rv_col_fini(&c);
}

static inline void tkey_str(tkey *k, const void *p, size_t n)
{
    rv_column c;
    rv_col_init(&c, RV_T_STRING, 1);
    rv_col_set_str(&c, 0, (const char *)p, n);
    tkey_col(k, &c);
    rv_col_fini(&c);
}

static inline void tkey_free(tkey *k)
{
    free(k->buf);
    memset(k, 0, sizeof(*k));
}

static inline rv_skey sk(const tkey *k)
{
    rv_skey s = {k->buf, (uint32_t)k->len, k->kg, k->hash};
    return s;
}

/* A copy of the key in a scratch buffer that scrub() overwrites after each
 * call, so a store that keeps the caller's key pointer is caught. */
static uint8_t g_kscratch[512];

static inline rv_skey skc(const tkey *k)
{
    cr_assert(k->len <= sizeof(g_kscratch));
    memcpy(g_kscratch, k->buf, k->len);
    rv_skey s = {g_kscratch, (uint32_t)k->len, k->kg, k->hash};
    return s;
}

static inline void scrub(void)
{
    memset(g_kscratch, 0xEE, sizeof(g_kscratch));
}

/* ---- store helpers ---- */

static inline rv_state *open_state(rv_state_backend b, int64_t budget)
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

static inline void maintain_ok(rv_state *s)
{
    rv_err *e = rv_state_maintain(s);
    cr_assert_null(e, "rv_state_maintain: %s", e ? rv_err_msg(e) : "");
}

static inline rv_state_stats get_stats(const rv_state *s)
{
    rv_state_stats st;
    memset(&st, 0xAB, sizeof(st));
    rv_state_get_stats(s, &st);
    return st;
}

/* Bytes the rocksdb cache may exceed its budget by right after maintain. */
static inline int64_t slack_of(int64_t budget)
{
    return budget / 4;
}

static inline void put_bytes(rv_state *s, int sid, const tkey *k, int64_t ns, const void *v, uint32_t len)
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
static inline void fill(rv_state *s, int sid, int64_t fill_base, int64_t nbytes)
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
static inline void expect_value(rv_state *s, int sid, const tkey *k, int64_t ns, const void *want, uint32_t wlen,
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


#endif
